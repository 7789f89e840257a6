"""HierarchicalRegressor(covariance_type="spherical"): the deviance, its gradient and the
posterior means against a dense computation over all labels, the fit against a dense
maximisation, one task against scikit-learn's BayesianRidge, and "auto" on many features."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import minimize
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import BayesianRidge, RidgeCV
from sklearn.metrics import r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from skmtl.baselines import IndependentTasks
from skmtl.linear import HierarchicalClassifier, HierarchicalRegressor
from skmtl.linear._solver_hierarchical_spherical import SphericalModel


def _tasks(seed=0, d=7, rows=(3, 5, 9, 12, 2), spread=0.5):
    """Tasks of a few labels (fewer than the features: the row-space factor) and of many (more:
    the feature-space factor), slopes around a mean, an intercept per task."""
    rng = np.random.default_rng(seed)
    task_ids = np.repeat(np.arange(len(rows)), rows)
    X = rng.normal(size=(len(task_ids), d)) * rng.uniform(0.5, 3.0, d) + rng.normal(size=d)
    coef = rng.normal(size=d) + spread * rng.normal(size=(len(rows), d))
    y = (np.einsum("ij,ij->i", X, coef[task_ids]) + rng.normal(size=len(rows))[task_ids]
         + 0.5 * rng.normal(size=len(task_ids)) + 2.0)
    return X, y, task_ids


def _dense(X, y, task_ids, ratios, fit_intercept, reml):
    """The deviance and the posterior means from the ``n x n`` covariance of all labels,
    ``C = I + a X X^T + blockdiag(c X_t X_t^T + nu 1 1^T)``, in standardised coordinates."""
    a, c, nu = ratios
    mean = X.mean(axis=0) if fit_intercept else np.zeros(X.shape[1])
    scale = X.std(axis=0) if fit_intercept else np.sqrt((X**2).mean(axis=0))
    Xs = (X - mean) / scale
    y = y - (y.mean() if fit_intercept else 0.0)
    same = task_ids[:, None] == task_ids[None, :]
    C = np.eye(len(y)) + a * Xs @ Xs.T + same * (c * Xs @ Xs.T + nu)
    inverse = np.linalg.inv(C)
    one = np.ones(len(y))
    b = one @ inverse @ y / (one @ inverse @ one) if fit_intercept else 0.0
    r = y - b
    reml = reml and fit_intercept
    value = (len(y) - reml) * np.log(r @ inverse @ r) + np.linalg.slogdet(C)[1]
    if reml:
        value += np.log(one @ inverse @ one)
    Cr = inverse @ r
    beta = a * Xs.T @ Cr
    tasks = np.unique(task_ids)
    W = np.array([beta + c * Xs[task_ids == t].T @ Cr[task_ids == t] for t in tasks])
    v = np.array([nu * Cr[task_ids == t].sum() for t in tasks])
    return value, beta, b, W, v, (mean, scale)


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("one_task", [False, True])
def test_deviance_gradient_and_posterior_means_against_dense(fit_intercept, reml, one_task):
    X, y, task_ids = _tasks()
    if one_task:
        task_ids = np.zeros_like(task_ids)
    T = len(np.unique(task_ids))
    _, _, _, _, _, (mean, scale) = _dense(X, y, task_ids, (1.0, 1.0, 1.0), fit_intercept,
                                           reml)
    model = SphericalModel(X, mean, scale, np.arange(len(y)), task_ids, y, T, fit_intercept,
                           reml)
    assert model.n_params() == (1 if one_task else 2 + fit_intercept)
    for theta in ([0.3, -1.0, 0.5], [-2.0, 1.5, -3.0], [1.0, 0.0, 2.0]):
        theta = np.array(theta[:model.n_params()])
        ratios = model.ratios(theta)
        value, beta, b, W, v, _ = _dense(X, y, task_ids, ratios, fit_intercept, reml)
        ours, grad = model.deviance(theta, gradient=True)
        np.testing.assert_allclose(ours, value, rtol=1e-12)
        h = 1e-6
        numeric = [(model.deviance(theta + h * e) - model.deviance(theta - h * e)) / (2 * h)
                   for e in np.eye(len(theta))]
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7)
        beta_ours, b_ours, _, _, W_ours, v_ours = model.estimates(theta)
        np.testing.assert_allclose(beta_ours, beta, atol=1e-11)
        np.testing.assert_allclose(b_ours, b, atol=1e-11)
        np.testing.assert_allclose(W_ours, W, atol=1e-11)
        np.testing.assert_allclose(v_ours, v, atol=1e-11)


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_fit_is_the_dense_likelihood_maximum(method):
    """The fitted log-likelihood, ratios and coefficients are those of a Nelder-Mead
    maximisation of the dense likelihood, mapped back to the units of X."""
    X, y, task_ids = _tasks(seed=1, rows=(4, 6, 14, 8, 11, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a task of more labels than features: no warning
        model = HierarchicalRegressor(covariance_type="spherical", method=method).fit(
            X, y, task_ids=task_ids)

    def deviance(theta):
        return _dense(X, y, task_ids, np.exp(theta), True, method == "reml")[0]

    best = minimize(deviance, np.zeros(3), method="Nelder-Mead",
                    options=dict(xatol=1e-10, fatol=1e-13, maxiter=20000, maxfev=20000))
    dof = len(y) - (method == "reml")
    log_likelihood = -0.5 * (best.fun + dof * (1.0 + np.log(2.0 * np.pi / dof)))
    np.testing.assert_allclose(model.log_likelihood_, log_likelihood, rtol=1e-10)
    a, c, nu = np.exp(best.x)
    sigma2 = model.noise_variance_
    np.testing.assert_allclose(model.mean_prior_variance_ / sigma2, a, rtol=1e-5)
    _, _, b, W, v, (mean, scale) = _dense(X, y, task_ids, (a, c, nu), True, method == "reml")
    # the covariance of the deviations: c on every standardised slope, nu on the intercept
    d = X.shape[1]
    J = np.eye(d + 1)
    J[:d, :d] = np.diag(1.0 / scale)
    J[d, :d] = -mean / scale
    np.testing.assert_allclose(model.task_covariance_,
                               J @ np.diag([c] * d + [nu]) @ J.T * sigma2, rtol=1e-4,
                               atol=1e-8)
    np.testing.assert_allclose(model.coef_, W / scale, rtol=1e-5, atol=1e-6)
    intercept = y.mean() + b + v - (W / scale) @ mean
    np.testing.assert_allclose(model.intercept_, intercept, rtol=1e-5, atol=1e-6)
    assert model.covariance_type_ == "spherical"
    np.testing.assert_array_equal(model.random_columns_, np.arange(d + 1))


def test_one_task_ml_is_bayesian_ridge():
    """With one task there are no deviations between tasks: the mean task's slopes with a
    Gaussian prior whose variance maximises the likelihood, scikit-learn's BayesianRidge on
    the standardised features (its Gamma hyperpriors set to flat)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(80, 12)) * rng.uniform(0.5, 4.0, 12) + 3.0
    y = X @ (0.3 * rng.normal(size=12)) + rng.normal(size=80) + 5.0
    ours = HierarchicalRegressor(covariance_type="spherical", method="ml", tol=1e-12).fit(X, y)
    flat = dict(alpha_1=0.0, alpha_2=0.0, lambda_1=0.0, lambda_2=0.0)
    reference = make_pipeline(StandardScaler(), BayesianRidge(tol=1e-14, max_iter=100_000,
                                                              **flat)).fit(X, y)
    ridge = reference[-1]
    np.testing.assert_allclose(ours.coef_[0], ridge.coef_ / reference[0].scale_, rtol=1e-6)
    np.testing.assert_allclose(ours.predict(X), reference.predict(X), rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(ours.noise_variance_, 1.0 / ridge.alpha_, rtol=1e-6)
    np.testing.assert_allclose(ours.mean_prior_variance_, 1.0 / ridge.lambda_, rtol=1e-6)
    np.testing.assert_allclose(ours.task_covariance_, 0.0)


def test_formats_and_sparse_x_give_the_same_fit():
    X, y, task_ids = _tasks(seed=2, rows=(6, 9, 12, 4))
    long = HierarchicalRegressor(covariance_type="spherical").fit(X, y, task_ids=task_ids)
    sparse = HierarchicalRegressor(covariance_type="spherical").fit(
        sp.csr_matrix(X), y, task_ids=task_ids)
    # to the accuracy of L-BFGS-B's stop, whose last line search ends at the deviance's
    # rounding level wherever the rounding of the products leaves it (1.2e-8 of the largest
    # coefficient apart on an AVX-512 machine, closer on another)
    np.testing.assert_allclose(sparse.coef_, long.coef_, rtol=1e-7,
                               atol=1e-7 * np.abs(long.coef_).max())
    # wide: each row labelled for one task, NaN elsewhere
    Y = np.full((len(y), 4), np.nan)
    Y[np.arange(len(y)), task_ids] = y
    wide = HierarchicalRegressor(covariance_type="spherical").fit(X, Y)
    np.testing.assert_allclose(wide.coef_, long.coef_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(wide.log_likelihood_, long.log_likelihood_, rtol=1e-12)


def _many_features(seed, T=30, n=10, d=150):
    """Tasks of ``n`` labels and ``d`` features, slopes around a sparse-ish mean."""
    rng = np.random.default_rng(seed)
    task_ids = np.repeat(np.arange(T), 2 * n)
    X = rng.normal(size=(len(task_ids), d))
    mean = rng.normal(size=d) * (rng.random(d) < 0.2)
    coef = mean + 0.3 * rng.normal(size=(T, d))
    y = np.einsum("ij,ij->i", X, coef[task_ids]) + rng.normal(size=len(task_ids))
    train = np.tile(np.arange(2 * n) < n, T)
    return X, y, task_ids, train


@pytest.mark.parametrize("seed", [0, 1])
def test_auto_on_many_features_fits_the_spherical_model(seed):
    """150 features of 30 tasks of 10 labels: independent slopes would cost T q^3 = 1.03e8 a
    step, over the 1e8 that "auto" takes on, so "auto" fits the spherical model. It beats a
    random intercept only (the former fallback: the slopes shared and unpenalised; held-out
    R^2 0.468 against 0.310, and 0.670 against 0.604) and one tuned ridge per task (-0.07,
    -0.04)."""
    X, y, task_ids, train = _many_features(seed)
    test = ~train
    # 10 labels of 150 features a task: the noise is not told from the tasks' deviations, and
    # the likelihood is largest with (almost) none, which the fit says
    with pytest.warns(ConvergenceWarning, match=r"The noise variance went to .* no task has "
                                                r"more labels \(at most 10\) than random "
                                                r"effects \(the rank of its rows, of 150 "
                                                r"features, and the intercept\)"):
        model = HierarchicalRegressor().fit(X[train], y[train], task_ids=task_ids[train])
    assert model.covariance_type_ == "spherical"
    assert model.noise_variance_ < 1e-4  # the noise's variance is 1
    # the deviations' variance holds the noise's: sigma^2 c d = 150 * 0.3^2 + 1 = 14.5 a label
    deviation = model.task_covariance_[0, 0] * X[train, 0].var()
    assert 0.06 < deviation < 0.11
    scores = {}
    for name, estimator in [
            ("spherical", model),
            ("intercept", HierarchicalRegressor(random_slopes=None)),
            ("stl", IndependentTasks(RidgeCV(alphas=np.logspace(-2, 4, 13))))]:
        if name != "spherical":
            estimator.fit(X[train], y[train], task_ids=task_ids[train])
        prediction = estimator.predict(X[test], task_ids=task_ids[test])
        scores[name] = r2_score(y[test], prediction)
    assert scores["spherical"] > scores["stl"] + 0.4, scores
    assert scores["spherical"] > scores["intercept"] + 0.05, scores


def test_spherical_needs_every_slope_random_and_a_regressor():
    X, y, task_ids = _tasks()
    with pytest.raises(ValueError, match=r"covariance_type='spherical' gives every slope one "
                                         r"variance and needs random_slopes='all'; got "
                                         r"random_slopes=\[0, 1\]"):
        HierarchicalRegressor(covariance_type="spherical", random_slopes=[0, 1]).fit(
            X, y, task_ids=task_ids)
    with pytest.raises(InvalidParameterError, match="covariance_type"):
        HierarchicalClassifier(covariance_type="spherical").fit(X, (y > y.mean()).astype(int),
                                                                task_ids=task_ids)


def test_one_label_per_task_is_refused():
    X, y, _ = _tasks()
    with pytest.raises(ValueError, match="needs a task with two labels or more"):
        HierarchicalRegressor(covariance_type="spherical").fit(X, y,
                                                               task_ids=np.arange(len(y)))


def test_noise_warning_counts_the_intercept_among_the_random_effects():
    """40 features and an intercept: tasks of 41 labels are still fitted exactly by their
    deviations (noise variance 3.4e-5 fitted for a true 1e-4, silently, before); tasks of 45
    are not, and the noise is estimated (1e-4 within 10%) without a warning."""
    rng = np.random.default_rng(0)
    d, T = 40, 30
    for n_t, warns in ((41, True), (45, False)):
        task_ids = np.repeat(np.arange(T), n_t)
        X = rng.normal(size=(len(task_ids), d))
        coef = rng.normal(size=d) + rng.normal(size=(T, d))
        y = np.einsum("ij,ij->i", X, coef[task_ids]) + 1e-2 * rng.normal(size=len(task_ids))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = HierarchicalRegressor(covariance_type="spherical").fit(
                X, y, task_ids=task_ids)
        said = [w for w in caught if "The noise variance went to" in str(w.message)]
        assert bool(said) == warns, (n_t, model.noise_variance_)
        if not warns:
            np.testing.assert_allclose(model.noise_variance_, 1e-4, rtol=0.1)


def test_predictions_scale_with_the_targets():
    """The fit does not depend on the units of y: predictions of k y are those of y times
    k, to the accuracy of the fit's stop. The stopping rule is relative to the labels, not
    the deviance (before, 1e6 y was 2.8e-6 relative apart at the default tol), and L-BFGS-B
    minimises the deviance less its value at the start, so the constant dof log k^2 that
    the units add does not steer its line search (1e3 y was 1.3e-11 apart, then 4e-15 on
    one machine). Its last line search still ends where the deviance's rounding stops it,
    which the rounding of the products decides: on an AVX-512 machine the fits of 1e-6 y
    and y stop 2e-9 apart (tol=1e-12 does not bring them closer)."""
    X, y, task_ids = _tasks(seed=4, rows=(6, 9, 12, 4, 8))
    reference = HierarchicalRegressor(covariance_type="spherical").fit(
        X, y, task_ids=task_ids).predict(X, task_ids=task_ids)
    for k in (1e6, 1e-6, 3.7, 1e3):
        scaled = HierarchicalRegressor(covariance_type="spherical").fit(
            X, k * y, task_ids=task_ids).predict(X, task_ids=task_ids)
        np.testing.assert_allclose(scaled / k, reference, rtol=1e-7, atol=1e-7 * np.abs(
            reference).max())


def test_auto_refuses_a_spherical_system_too_large():
    """4,100 features of 2 tasks: "auto" would fit the spherical model, whose d x d arrays
    take some 0.9 GB beyond 4,096 features: refused before any factor, saying what to pass;
    the hint of the covariance errors names "spherical" only with every slope random."""
    rng = np.random.default_rng(0)
    X = sp.random(60, 4100, density=0.01, format="csr", random_state=0)
    y, task_ids = rng.normal(size=60), np.repeat([0, 1], 30)
    with pytest.raises(ValueError, match=r"covariance_type='auto' would fit the spherical "
                                         r"model on 4,100 features .* Pass "
                                         r"covariance_type='spherical' to fit it anyway"):
        HierarchicalRegressor().fit(X, y, task_ids=task_ids)
    with pytest.raises(ValueError, match="covariance_type='diag'") as error:
        HierarchicalRegressor(random_slopes=list(range(600))).fit(X, y, task_ids=task_ids)
    assert "spherical" not in str(error.value)


def test_a_refit_without_spherical_drops_its_attribute():
    X, y, task_ids = _tasks(seed=5, rows=(6, 9, 12, 8))
    model = HierarchicalRegressor(covariance_type="spherical").fit(X, y, task_ids=task_ids)
    assert model.mean_prior_variance_ > 0
    model.set_params(covariance_type="diag").fit(X, y, task_ids=task_ids)
    assert not hasattr(model, "mean_prior_variance_")
