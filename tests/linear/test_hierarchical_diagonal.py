"""Hierarchical*(covariance_type="diag"): independent random effects, against statsmodels,
the full model where they coincide, optimality conditions and a generic optimiser."""

import warnings

import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.exceptions import ConvergenceWarning
from test_hierarchical import _binary, _laplace, _long, _moments

from skmtl.linear import HierarchicalClassifier, HierarchicalRegressor
from skmtl.linear._solver_hierarchical import MixedModel, minimize_covariance


def _centred_covariance(model, X):
    """``task_covariance_`` in the coordinates ``[X - mean, 1]`` (the ones it is diagonal in):
    ``[X, 1] = [X - mean, 1] C``, so a deviation ``u`` of ``[X, 1]`` is ``C u`` there."""
    d = X.shape[1]
    C = np.eye(d + 1)
    C[d, :d] = X.mean(axis=0)
    return C @ model.task_covariance_ @ C.T


@pytest.mark.parametrize("method", ["ml", "reml"])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_statsmodels_mixedlm_with_independent_random_effects(method, seed):
    """statsmodels' MixedLM with its covariance held diagonal (``free``) on the random design
    ``[X - mean, 1]``: the same log-likelihood, fixed effects, BLUPs (as predictions),
    variances and noise."""
    sm = pytest.importorskip("statsmodels.regression.mixed_linear_model")
    X, y, task_ids = _long(T=40, seed=seed)  # correlated deviations: diag is misspecified
    model = HierarchicalRegressor(covariance_type="diag", method=method).fit(
        X, y, task_ids=task_ids)
    D = np.column_stack([X, np.ones(len(y))])
    Z = np.column_stack([X - X.mean(axis=0), np.ones(len(y))])
    free = sm.MixedLMParams.from_components(np.ones(3), np.eye(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = sm.MixedLM(y, D, groups=task_ids, exog_re=Z).fit(reml=method == "reml",
                                                                 free=free)
    assert ref.converged
    assert model.log_likelihood_ >= ref.llf - 1e-6
    assert model.log_likelihood_ == pytest.approx(ref.llf, abs=1e-4)
    np.testing.assert_allclose(model.shared_coef_, ref.fe_params[:2], atol=1e-4)
    blups = np.array([ref.random_effects[t] for t in range(40)])
    expected = D @ ref.fe_params + np.einsum("ij,ij->i", Z, blups[task_ids])
    np.testing.assert_allclose(model.predict(X, task_ids=task_ids), expected, atol=1e-4)
    centred = _centred_covariance(model, X)
    np.testing.assert_allclose(centred - np.diag(np.diag(centred)), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.diag(centred), np.diag(ref.cov_re), rtol=1e-3, atol=1e-6)
    assert model.noise_variance_ == pytest.approx(ref.scale, rel=1e-4)
    # the full covariance fits at least as well
    full = HierarchicalRegressor(method=method).fit(X, y, task_ids=task_ids)
    assert full.log_likelihood_ >= model.log_likelihood_


@pytest.mark.parametrize("Estimator", [HierarchicalRegressor, HierarchicalClassifier])
def test_one_random_effect_is_the_full_model(Estimator):
    """With a random intercept only, a diagonal covariance is the full one."""
    if Estimator is HierarchicalRegressor:
        X, y, task_ids = _long(T=20, seed=3)
    else:
        X, y, task_ids, _ = _binary(T=12, seed=3)
    diag = Estimator(random_slopes=None, covariance_type="diag", tol=1e-12).fit(
        X, y, task_ids=task_ids)
    full = Estimator(random_slopes=None, tol=1e-12).fit(X, y, task_ids=task_ids)
    np.testing.assert_allclose(diag.coef_, full.coef_, atol=1e-6)
    np.testing.assert_allclose(diag.intercept_, full.intercept_, atol=1e-6)
    np.testing.assert_allclose(diag.task_covariance_, full.task_covariance_, atol=1e-6)
    assert diag.log_likelihood_ == pytest.approx(full.log_likelihood_, abs=1e-8)


@pytest.mark.parametrize("path", ["factor", "barrier"])
@pytest.mark.parametrize("method", ["ml", "reml"])
def test_optimality_over_diagonal_covariances(method, path, monkeypatch):
    """At the fit (Newton's method, a variance at 0 reached by Newton on the standard
    deviations kept, or along the barrier's path where that fails: forced here), each
    variance is a minimum over the variances >= 0: the deviance's slope in it (the diagonal of
    its gradient in Psi) is 0 where it is positive and >= 0 where it is 0. L-BFGS-B alone from
    Psi = 0, a stationary point in the standard deviations (every slope in them is 0 there),
    reaches the same optimum: the variances that should grow grow (all at once)."""
    if path == "barrier":
        monkeypatch.setattr(MixedModel, "_factor_newton",
                            lambda self, theta, **kwargs: (theta, 0, False))
    rng = np.random.RandomState(5)
    task_ids = np.repeat(np.arange(40), 10)
    X = rng.normal(size=(400, 3))
    # slopes: the first the same in every task, the second varying much, the third a little
    slopes = np.array([1.0, -1.0, 0.5]) + rng.normal(size=(40, 3)) * [0.0, 1.5, 0.3]
    y = (np.einsum("ij,ij->i", X, slopes[task_ids]) + rng.normal(size=40)[task_ids]
         + rng.normal(size=400))
    _, (A, c, s, n) = _moments(X, y, task_ids)
    model = MixedModel(A, c, s, n, [0, 1, 2, 3], reml=method == "reml", diagonal=True)
    theta, _ = model.fit(model.start(), max_iter=500, tol=1e-10)
    value, H = model.covariance_gradient(theta)
    slopes, variances = np.diag(H), theta**2
    assert np.all(slopes >= -1e-6 * abs(value))
    np.testing.assert_allclose(slopes * variances, 0.0, atol=1e-6 * abs(value))
    assert variances[1] > 1.0  # the varying slope, in standardised units
    assert variances[0] < 0.05 * variances[1]
    # no better point along any variance
    for j in range(4):
        for step in (1e-3, -1e-3):
            trial = variances.copy()
            trial[j] += step
            if trial[j] >= 0.0:
                assert model.value(np.sqrt(trial)) >= value - 1e-9
    assert variances[2] == 0.0  # set exactly to 0 (dropped, or at the barrier's end)
    other, _ = minimize_covariance(model.deviance, model.covariance_gradient, np.zeros(4), 0, 4,
                                   max_iter=500, tol=1e-10, value=model.value, diagonal=True)
    np.testing.assert_allclose(other**2, variances, rtol=1e-5, atol=1e-8)


def test_laplace_diagonal_gradient_and_optimum():
    """The classifier's objective in ``[beta, diag(L)]``: its gradient against central
    differences, and the fit against a derivative-free optimiser started there."""
    X, y, task_ids, counts = _binary(T=15, seed=2)
    model = _laplace(X, y, task_ids, counts, [0, 2], prior_scale=2.0, diagonal=True)
    x = np.array([0.3, -0.4, 0.2, 0.7, 0.9])
    _, grad = model.objective(x)
    h = 1e-6
    numeric = [(model.objective(x + h * e)[0] - model.objective(x - h * e)[0]) / (2 * h)
               for e in np.eye(len(x))]
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6 * np.abs(grad).max())

    fitted, _ = minimize_covariance(model.objective, model.covariance_gradient,
                                    np.array([0, 0, 0, 1.0, 1.0]), 3, 2, max_iter=500,
                                    tol=1e-12, diagonal=True)
    value, grad = model.objective(fitted)
    assert np.abs(grad[fitted != 0]).max() < 1e-5
    other = minimize(lambda z: model.objective(z)[0], fitted + 0.05, method="Nelder-Mead",
                     options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000})
    assert other.fun >= value - 1e-8
    np.testing.assert_allclose(np.abs(other.x), np.abs(fitted), atol=1e-3)


def test_classifier_diagonal_is_diagonal_at_the_features_mean():
    """The classifier's ``task_covariance_`` is diagonal in ``[X - mean, 1]``, whatever the
    features' origin and scale, and the fit does not move with them."""
    X, y, task_ids, _ = _binary(T=12, seed=4)
    model = HierarchicalClassifier(covariance_type="diag", tol=1e-10).fit(
        X, y, task_ids=task_ids)
    centred = _centred_covariance(model, X)
    np.testing.assert_allclose(centred - np.diag(np.diag(centred)), 0.0, atol=1e-12)
    shifted = HierarchicalClassifier(covariance_type="diag", tol=1e-10).fit(
        3.0 * X + 100.0, y, task_ids=task_ids)
    np.testing.assert_allclose(shifted.predict_proba(3.0 * X + 100.0, task_ids=task_ids),
                               model.predict_proba(X, task_ids=task_ids), atol=1e-6)


def test_factor_hessian_without_the_kronecker_product():
    """The factor Newton's Hessian ``J^T hess J + 2 (H (x) I_r)`` on the free entries of
    ``B``, its second term formed on those entries only: equal to the Kronecker product's,
    and for a diagonal model of 61 random effects (every variance kept) a peak far below the
    product's ``(q r)^2`` entries, 110 MB (101 random effects: 0.8 GB, and 3 times the fit's
    time)."""
    import tracemalloc

    from skmtl.linear._solver_hierarchical import _diagonal_entries, _trapezoidal

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 60))
    task_ids = np.repeat(np.arange(5), 40)
    y = X[:, 0] + rng.normal(size=200)
    _, (A, c, s, n) = _moments(X, y, task_ids)
    for diagonal in (True, False):
        random = np.arange(61) if diagonal else np.arange(4)
        model = MixedModel(A, c, s, n, random, True, diagonal=diagonal)
        q = len(random)
        if diagonal:
            B, free = _diagonal_entries(np.diag(rng.uniform(0.5, 1.5, size=q)))
        else:
            B, free = _trapezoidal(rng.normal(size=(q, 2)))
        r = B.shape[1]
        _, H = model.covariance_gradient(model._theta_of(B))
        hess = model.hessian(False)
        rows, cols = model._tril  # d vech(B B^T) / dB, as the solver forms it
        J = np.zeros((len(rows), q, r))
        J[np.arange(len(rows)), rows] += B[cols]
        J[np.arange(len(rows)), cols] += B[rows]
        J = J.reshape(len(rows), -1)[:, free]
        reference = J.T @ hess @ J + 2.0 * np.kron(H, np.eye(r))[np.ix_(free, free)]
        reference = 0.5 * (reference + reference.T)
        tracemalloc.start()
        system = model._factor_system(B, free, H, expected=False)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        np.testing.assert_allclose(system, reference, rtol=1e-12,
                                   atol=1e-12 * np.abs(reference).max())
        if diagonal:  # the Hessian in Psi (q^2 entries) and J, not (q r)^2
            assert peak < 8 * (q * r) ** 2 / 10


def test_more_iterations_never_return_a_lower_likelihood():
    """30 tasks of 15 rows, 41 independent random effects: Newton on Psi stops at the
    boundary after 6 iterations; Newton on a factor of Psi reaches its rank's optimum in 13
    and then, one rank up, goes on slowly. When max_iter ran out in a factor phase, the fit
    returned Newton's point on Psi and dropped the factor's progress: max_iter=15, 30 and 60
    gave the same log-likelihood, -1074.995. It now keeps the factor's point where its
    likelihood is higher (-1071.76 at 30, -1070.92 at 60)."""
    rng = np.random.RandomState(0)
    task_ids = np.repeat(np.arange(30), 15)
    X = rng.normal(size=(450, 40))
    W = 1.0 + 0.5 * rng.normal(size=(30, 40))
    y = (np.einsum("ij,ij->i", X, W[task_ids]) + rng.normal(size=30)[task_ids]
         + 0.5 * rng.normal(size=450))
    values = []
    for max_iter in (15, 30, 60):
        with pytest.warns(ConvergenceWarning, match=f"stopped after max_iter={max_iter} "):
            model = HierarchicalRegressor(covariance_type="diag", max_iter=max_iter).fit(
                X, y, task_ids=task_ids)
        values.append(model.log_likelihood_)
    assert values[0] < values[1] - 1.0 and values[1] < values[2] - 0.5
