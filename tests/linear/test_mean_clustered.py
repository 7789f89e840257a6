"""MeanClusteredRegressor / MeanClusteredClassifier against explicit references.

References: the (d + 1) T normal equations of the objective solved by numpy.linalg.solve,
scikit-learn's Ridge and LogisticRegression at the two extremes of cluster_strength, and a
tight L-BFGS minimisation of the logistic objective written out below.
"""

import warnings

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from test_clustered_tasks import _few_rows  # tasks of 5 to 45 rows on 40 features

from skmtl.linear import MeanClusteredClassifier, MeanClusteredRegressor, _solver_mean_clustered
from skmtl.linear._designs import (
    GroupedDense,
    Problem,
    SharedDense,
    SparseDesign,
    _groups_from_mask,
)
from skmtl.linear._linalg import _SYRK_WORK
from skmtl.linear._solver_mean_clustered import (
    MeanClusteredLeastSquares,
    _least_squares_tasks,
    _task_moments,
    solve_mean_clustered,
    solve_mean_clustered_logistic,
)


def make_regression(n=50, d=5, n_tasks=4, missing=0.3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + 2.0  # off-centre: the intercepts matter
    W = rng.normal(size=d) + 0.5 * rng.normal(size=(n_tasks, d))
    Y = X @ W.T + rng.normal(size=n_tasks) + 0.3 * rng.normal(size=(n, n_tasks))
    mask = rng.uniform(size=Y.shape) >= missing
    mask[:3] = True
    return X, np.where(mask, Y, np.nan), mask


def make_classification(n=60, d=4, n_tasks=3, missing=0.3, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    W = rng.normal(size=d) + 0.5 * rng.normal(size=(n_tasks, d))
    Y = (X @ W.T + rng.normal(size=(n, n_tasks)) > 0).astype(float)
    mask = rng.uniform(size=Y.shape) >= missing
    mask[:10] = True
    Y[:2] = [0.0] * n_tasks, [1.0] * n_tasks  # both classes in every task
    return X, np.where(mask, Y, np.nan), mask


def normal_equations_solution(X, Y, mask, alpha, c, fit_intercept=True):
    """Minimiser of the least-squares objective from its full gradient = 0, solved directly."""
    d, T = X.shape[1], Y.shape[1]
    p = d + fit_intercept
    H, g = np.zeros((T * p, T * p)), np.zeros(T * p)
    for t in range(T):
        rows = mask[:, t]
        Xt = np.column_stack([X[rows], np.ones(rows.sum())]) if fit_intercept else X[rows]
        H[t * p:(t + 1) * p, t * p:(t + 1) * p] = Xt.T @ Xt / rows.sum()
        g[t * p:(t + 1) * p] = Xt.T @ Y[rows, t] / rows.sum()
    # alpha * (||w_bar||^2 + c / T * sum_t ||w_t - w_bar||^2) = alpha * w^T P w, with
    # w_bar = (1^T / T (x) I) w and the deviations (J (x) I) w, J = I - 1 1^T / T.
    one = np.ones((T, 1))
    J = np.eye(T) - one @ one.T / T
    P = np.kron(one @ one.T / T**2, np.eye(d)) + c / T * np.kron(J, np.eye(d))
    coef = np.zeros((T * p, T * d))
    for t in range(T):
        coef[t * p:t * p + d, t * d:(t + 1) * d] = np.eye(d)
    H += coef @ (2 * alpha * P) @ coef.T
    solution = np.linalg.solve(H, g).reshape(T, p)
    return solution[:, :d], solution[:, d] if fit_intercept else np.zeros(T)


def logistic_objective(theta, X, Y, mask, alpha, c, pull=True):
    """Value and gradient of the mean-clustered logistic objective, task by task, with the
    intercepts at the mean of X, ``c_t = b_t + x_bar w_t`` (``x_bar`` over the observed
    labels), pulled towards their mean by ``alpha * c / T * sum_t (c_t - c_bar)^2``."""
    T, d = Y.shape[1], X.shape[1]
    W, b = theta[:T * d].reshape(T, d), theta[T * d:]
    x_bar = sum(X[mask[:, t]].sum(axis=0) for t in range(T)) / mask.sum()
    value, grad_W, grad_b = 0.0, np.zeros((T, d)), np.zeros(T)
    for t in range(T):
        rows = mask[:, t]
        z = X[rows] @ W[t] + b[t]
        y = Y[rows, t]
        value += np.mean(np.logaddexp(0.0, z) - y * z)
        residual = (1.0 / (1.0 + np.exp(-z)) - y) / rows.sum()
        grad_W[t], grad_b[t] = X[rows].T @ residual, residual.sum()
    w_bar = W.mean(axis=0)
    value += alpha * (w_bar @ w_bar + c / T * np.sum((W - w_bar) ** 2))
    grad_W += alpha * (2 * w_bar / T + 2 * c / T * (W - w_bar))
    if pull:
        pulled = b + W @ x_bar
        value += alpha * c / T * np.sum((pulled - pulled.mean()) ** 2)
        grad_pulled = 2 * alpha * c / T * (pulled - pulled.mean())
        grad_b += grad_pulled
        grad_W += np.outer(grad_pulled, x_bar)
    return value, np.concatenate([grad_W.ravel(), grad_b])


def spread(W):
    return np.sum((W - W.mean(axis=0)) ** 2)


# -- least squares ------------------------------------------------------------------------------
@pytest.mark.parametrize("n_features", [5, 12])  # small blocks: batched numpy; larger: LAPACK
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("cluster_strength", [0.2, 1.0, 3.0, 100.0])
@pytest.mark.parametrize("missing", [0.3, 0.0], ids=["own-rows", "shared-X"])
def test_regressor_solves_the_normal_equations(missing, cluster_strength, fit_intercept,
                                               n_features):
    X, Y, mask = make_regression(d=n_features, missing=missing)
    model = MeanClusteredRegressor(alpha=0.7, cluster_strength=cluster_strength,
                                   fit_intercept=fit_intercept).fit(X, Y)
    W, b = normal_equations_solution(X, Y, mask, 0.7, cluster_strength, fit_intercept)
    np.testing.assert_allclose(model.coef_, W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.intercept_, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.predict(X), X @ W.T + b, rtol=1e-10)


def test_cluster_strength_one_is_a_ridge_per_task_with_alpha_2_n_t_alpha_over_T():
    X, Y, mask = make_regression(n_tasks=5)
    alpha, T = 0.3, Y.shape[1]
    model = MeanClusteredRegressor(alpha=alpha, cluster_strength=1.0).fit(X, Y)
    for t in range(T):
        rows = mask[:, t]
        ridge = Ridge(alpha=2 * rows.sum() * alpha / T).fit(X[rows], Y[rows, t])
        np.testing.assert_allclose(model.coef_[t], ridge.coef_, rtol=1e-10)
        np.testing.assert_allclose(model.intercept_[t], ridge.intercept_, rtol=1e-10)


@pytest.mark.parametrize("missing", [0.3, 0.0], ids=["own-rows", "shared-X"])
def test_huge_cluster_strength_is_the_pooled_ridge_with_per_task_intercepts(missing):
    # c -> inf: one w, objective sum_t 1/(2 n_t) ||y_t - X_t w - b_t||^2 + alpha ||w||^2.
    # Eliminating b_t centres each task's rows; times 2 it is Ridge(alpha=2 alpha) on the
    # centred rows with sample_weight 1 / n_t, and b_t = mean(y_t) - mean(X_t) w.
    X, Y, mask = make_regression(missing=missing)
    alpha = 0.05
    model = MeanClusteredRegressor(alpha=alpha, cluster_strength=1e8).fit(X, Y)
    rows, tasks = np.nonzero(mask)
    n_t = mask.sum(axis=0)
    x_mean = np.array([X[mask[:, t]].mean(axis=0) for t in range(Y.shape[1])])
    y_mean = np.array([Y[mask[:, t], t].mean() for t in range(Y.shape[1])])
    ridge = Ridge(alpha=2 * alpha, fit_intercept=False).fit(
        X[rows] - x_mean[tasks], Y[rows, tasks] - y_mean[tasks], sample_weight=1.0 / n_t[tasks])
    np.testing.assert_allclose(model.coef_, np.tile(ridge.coef_, (Y.shape[1], 1)), atol=1e-5)
    np.testing.assert_allclose(model.intercept_, y_mean - x_mean @ ridge.coef_, atol=1e-5)


def test_larger_cluster_strength_pulls_the_tasks_together():
    X, Y, _ = make_regression()
    spreads = [spread(MeanClusteredRegressor(alpha=0.5, cluster_strength=c).fit(X, Y).coef_)
               for c in [0.1, 0.5, 1.0, 2.0, 10.0, 100.0, 1e4]]
    assert np.all(np.diff(spreads) < 0), spreads
    assert spreads[-1] < 1e-4 * spreads[2]


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("missing", [0.3, 0.0], ids=["own-rows", "shared-X"])
def test_sparse_X_gives_the_dense_fit(missing, fmt):
    X, Y, _ = make_regression(missing=missing)
    X[np.abs(X - 2.0) < 0.5] = 0.0
    dense = MeanClusteredRegressor(alpha=0.2, cluster_strength=5.0).fit(X, Y)
    sparse = MeanClusteredRegressor(alpha=0.2, cluster_strength=5.0).fit(
        sp.csr_matrix(X).asformat(fmt), Y)
    np.testing.assert_allclose(sparse.coef_, dense.coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sparse.intercept_, dense.intercept_, rtol=1e-9)
    np.testing.assert_allclose(sparse.predict(sp.csr_matrix(X)), dense.predict(X), rtol=1e-9)


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("cluster_strength", [0.5, 1.0, 7.0])
def test_shared_X_svd_path_equals_the_general_path(cluster_strength, fit_intercept):
    X, Y, mask = make_regression(missing=0.0)
    args = (0.4, cluster_strength, fit_intercept)
    W, b = solve_mean_clustered(X, Y, mask, *args[:2], fit_intercept=fit_intercept)
    assert MeanClusteredLeastSquares(X, Y, mask).shared_rows
    groups = _groups_from_mask(mask)
    for design in (GroupedDense.from_groups(X, groups),
                   SparseDesign(sp.csr_matrix(X), groups)):
        y = Y[design.obs_rows, design.obs_tasks]
        W_general, b_general = _least_squares_tasks(design, y, *args)
        np.testing.assert_allclose(W, W_general, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(b, b_general, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("missing", [0.3, 0.0], ids=["own-rows", "shared-X"])
def test_cached_decomposition_serves_a_grid_of_parameters(missing):
    X, Y, mask = make_regression(missing=missing)
    for X_in in (X, sp.csr_matrix(X)):
        path = MeanClusteredLeastSquares(X_in, Y, mask)
        assert path.shared_rows == (missing == 0.0)
        for alpha in [1e-3, 0.1, 10.0]:
            for c in [0.3, 1.0, 30.0]:
                W, b = path.solve(alpha, c)
                W_ref, b_ref = normal_equations_solution(X, Y, mask, alpha, c)
                np.testing.assert_allclose(W, W_ref, rtol=1e-8, atol=1e-10)
                np.testing.assert_allclose(b, b_ref, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("layout", ["long", "wide"])
def test_cached_row_space_decomposition_serves_a_grid_of_parameters(layout, fit_intercept,
                                                                   monkeypatch):
    # tasks with fewer rows than features keep the thin SVD of their rows (V_t, d x n_t), not
    # the (T, d, d) moments and eigenvectors: the same solutions as the normal equations, with
    # both kinds of tasks mixed (long: a task of 45 rows next to 5 to 30, d = 40)
    monkeypatch.setattr(_solver_mean_clustered, "_KERNEL_MIN_COEF", 1)
    if layout == "long":
        X, y, tasks = _few_rows(seed=4)
        path = MeanClusteredLeastSquares(X, y, task_index=tasks, fit_intercept=fit_intercept)
        mask = tasks[:, None] == np.arange(tasks.max() + 1)
        Y = np.where(mask, y[:, None], np.nan)
    else:
        X, Y, mask = make_regression(n=30, d=60, n_tasks=5, missing=0.4, seed=2)
        path = MeanClusteredLeastSquares(X, Y, mask, fit_intercept=fit_intercept)
        assert not path.shared_rows
    d, counts = X.shape[1], mask.sum(axis=0)
    thin = path._thin  # every row of a task with fewer than d, once
    np.testing.assert_array_equal(thin.tasks, np.flatnonzero(counts < d))
    assert thin._Vt.shape == (counts[counts < d].sum(), d)
    assert (path._square is None) == (layout == "wide")
    if layout == "long":
        np.testing.assert_array_equal(path._square[0], [8])  # 45 rows
    for alpha in [1e-3, 0.1, 10.0]:
        for c in [0.3, 1.0, 30.0]:
            W, b = path.solve(alpha, c)
            W_ref, b_ref = normal_equations_solution(X, Y, mask, alpha, c, fit_intercept)
            # (atol: at alpha = 1e-3 more features than rows leave the system's condition
            # at 1e5; the moments' eigendecomposition is off by 1e-10 there too)
            np.testing.assert_allclose(W, W_ref, rtol=1e-8, atol=1e-9)
            np.testing.assert_allclose(b, b_ref, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("solver", ["cg", "fallback"])
def test_thin_tasks_coupled_system_by_conjugate_gradients(solver, monkeypatch):
    """Many features and thin tasks (here from 1 feature; 512 by default): the coupled d x d
    system by conjugate gradients on the tasks' rows, started from the last solution of the
    same cluster_strength, instead of forming and factoring it: the normal equations'
    solutions over a grid walked as a CV walks it (alphas decreasing, every cluster_strength
    at each), with cluster strengths below 1, of 1 (no system) and up to 1,000 (the system's
    condition number). ``fallback``: CG that never reaches its tolerance hands over to the
    direct solve, whose solutions these are too."""
    monkeypatch.setattr(_solver_mean_clustered, "_KERNEL_MIN_COEF", 1)
    monkeypatch.setattr(_solver_mean_clustered, "_CG_MIN_FEATURES", 1)
    if solver == "fallback":
        monkeypatch.setattr(_solver_mean_clustered, "_CG_RTOL", 0.0)
    X, Y, mask = make_regression(n=30, d=60, n_tasks=5, missing=0.4, seed=2)
    path = MeanClusteredLeastSquares(X, Y, mask)
    assert path._square is None
    calls = []  # (iterations, budget) of each CG solve
    solve = _solver_mean_clustered._pcg

    def recorded(*args):
        v, n_iter = solve(*args)
        calls.append((n_iter, args[-1]))
        return v, n_iter

    monkeypatch.setattr(_solver_mean_clustered, "_pcg", recorded)
    strengths = [0.3, 1.0, 3.0, 1000.0]
    for alpha in [10.0, 0.1, 1e-3]:
        for c in strengths:
            W, b = path.solve(alpha, c)
            W_ref, b_ref = normal_equations_solution(X, Y, mask, alpha, c, True)
            np.testing.assert_allclose(W, W_ref, rtol=1e-8, atol=1e-9)
            np.testing.assert_allclose(b, b_ref, rtol=1e-8, atol=1e-9)
    assert len(calls) == 9  # (none at c = 1)
    assert all((n_iter == budget) == (solver == "fallback") for n_iter, budget in calls)
    assert sorted(path._last_v) == ([] if solver == "fallback" else [0.3, 3.0, 1000.0])


def test_values_behind_the_mask_are_never_read():
    X, Y, mask = make_regression()
    garbage = np.where(mask, Y, np.random.default_rng(3).normal(scale=1e6, size=Y.shape))
    zeros = np.where(mask, Y, 0.0)
    for solve_X in (X, sp.csr_matrix(X)):
        W1, b1 = solve_mean_clustered(solve_X, garbage, mask, 0.3, 4.0)
        W2, b2 = solve_mean_clustered(solve_X, zeros, mask, 0.3, 4.0)
        np.testing.assert_array_equal(W1, W2)
        np.testing.assert_array_equal(b1, b2)
    Xc, Yc, maskc = make_classification()
    garbage = np.where(maskc, Yc, 7.0)
    W1, b1, _ = solve_mean_clustered_logistic(Xc, garbage, maskc, 0.1, 4.0)
    W2, b2, _ = solve_mean_clustered_logistic(Xc, np.where(maskc, Yc, 0.0), maskc, 0.1, 4.0)
    np.testing.assert_array_equal(W1, W2)
    np.testing.assert_array_equal(b1, b2)


def test_long_format_gives_the_wide_fit_and_row_wise_predictions():
    X, Y, mask = make_regression()
    rows, tasks = np.nonzero(mask)
    wide = MeanClusteredRegressor(alpha=0.3, cluster_strength=3.0).fit(X, Y)
    long = MeanClusteredRegressor(alpha=0.3, cluster_strength=3.0).fit(
        X[rows], Y[rows, tasks], task_ids=tasks)
    np.testing.assert_allclose(long.coef_, wide.coef_, rtol=1e-10)
    np.testing.assert_allclose(long.intercept_, wide.intercept_, rtol=1e-10)
    expected = wide.predict(X)[rows, tasks]
    np.testing.assert_allclose(long.predict(X[rows], task_ids=tasks), expected, rtol=1e-10)
    np.testing.assert_allclose(long.predict(sp.csr_matrix(X[rows]), task_ids=tasks), expected,
                               rtol=1e-10)


def test_one_dimensional_y_is_one_task():
    X, Y, _ = make_regression(missing=0.0)
    model = MeanClusteredRegressor(alpha=0.2).fit(X, Y[:, 0])
    ridge = Ridge(alpha=2 * X.shape[0] * 0.2).fit(X, Y[:, 0])  # T = 1
    assert model.coef_.shape == (1, X.shape[1]) and model.predict(X).shape == (X.shape[0],)
    np.testing.assert_allclose(model.predict(X), ridge.predict(X), rtol=1e-10)


@pytest.mark.parametrize("params", [{"cluster_strength": 0.0}, {"cluster_strength": -1.0},
                                    {"alpha": 0.0}])
def test_parameters_outside_the_convex_well_posed_range_are_rejected(params):
    X, Y, _ = make_regression()
    name = next(iter(params))
    for Estimator in (MeanClusteredRegressor, MeanClusteredClassifier):
        with pytest.raises(ValueError, match=f"'{name}' parameter .* must be a float in the range"):
            Estimator(**params).fit(X, np.nan_to_num(Y) > 2)
    with pytest.raises(ValueError, match="> 0"):
        solve_mean_clustered(X, Y, ~np.isnan(Y), params.get("alpha", 1.0),
                             params.get("cluster_strength", 1.0))


# -- logistic -----------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.003, 0.1, 2.0])
def test_one_task_is_logistic_regression_with_C_1_over_2_n_alpha(alpha):
    # ours: 1/n sum log-loss + alpha ||w||^2 (T = 1); divided by 2 alpha it is scikit-learn's
    # 0.5 ||w||^2 + C sum log-loss with C = 1 / (2 n alpha).
    X, Y, _ = make_classification(missing=0.0)
    y = Y[:, 0]
    model = MeanClusteredClassifier(alpha=alpha).fit(X, y)
    reference = LogisticRegression(C=1 / (2 * X.shape[0] * alpha), tol=1e-12,
                                   max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(model.coef_[0], reference.coef_[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model.intercept_, reference.intercept_, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model.predict_proba(X), reference.predict_proba(X), atol=1e-7)
    np.testing.assert_array_equal(model.predict(X), reference.predict(X))


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_cluster_strength_one_is_a_logistic_regression_per_task(fit_intercept):
    # the estimator pulls the intercepts towards their mean, which couples the tasks through
    # them: without intercepts (estimator), or without that pull (solver), c = 1 decouples
    X, Y, mask = make_classification(n_tasks=4)
    alpha, T = 0.05, Y.shape[1]
    if fit_intercept:
        W, b, _ = solve_mean_clustered_logistic(X, np.nan_to_num(Y), mask, alpha, 1.0,
                                                tol=1e-14, pull_intercepts=False)
    else:
        model = MeanClusteredClassifier(alpha=alpha, fit_intercept=False).fit(X, Y)
        W, b = model.coef_, model.intercept_
    for t in range(T):
        rows = mask[:, t]
        reference = LogisticRegression(C=T / (2 * rows.sum() * alpha), tol=1e-12,
                                       fit_intercept=fit_intercept,
                                       max_iter=10_000).fit(X[rows], Y[rows, t])
        np.testing.assert_allclose(W[t], reference.coef_[0], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(b[t], reference.intercept_[0], atol=1e-7)


@pytest.mark.parametrize("n_features", [4, 10])
@pytest.mark.parametrize("cluster_strength", [0.4, 1.0, 5.0])
@pytest.mark.parametrize("missing", [0.3, 0.0], ids=["own-rows", "shared-X"])
def test_classifier_matches_a_tight_lbfgs_minimisation(missing, cluster_strength, n_features):
    X, Y, mask = make_classification(d=n_features, missing=missing)
    alpha = 0.02
    model = MeanClusteredClassifier(alpha=alpha, cluster_strength=cluster_strength).fit(X, Y)
    T, d = Y.shape[1], X.shape[1]
    result = scipy.optimize.minimize(
        logistic_objective, np.zeros(T * (d + 1)), args=(X, Y, mask, alpha, cluster_strength),
        jac=True, method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10_000})
    np.testing.assert_allclose(model.coef_.ravel(), result.x[:T * d], atol=1e-6)
    np.testing.assert_allclose(model.intercept_, result.x[T * d:], atol=1e-6)
    ours = np.concatenate([model.coef_.ravel(), model.intercept_])
    value, grad = logistic_objective(ours, X, Y, mask, alpha, cluster_strength)
    assert value <= result.fun + 1e-12
    assert np.abs(grad).max() < 1e-8


def test_a_thousand_tasks_converge_in_fewer_than_ten_newton_steps():
    rng = np.random.default_rng(0)
    T, n_t, d = 1000, 20, 5
    X = rng.normal(size=(T * n_t, d))
    task_ids = np.repeat(np.arange(T), n_t)
    W = rng.normal(size=d) + 0.3 * rng.normal(size=(T, d))
    y = (np.einsum("ij,ij->i", X, W[task_ids]) + 0.5 * rng.normal(size=T * n_t) > 0)
    y[::n_t], y[1::n_t] = False, True  # both classes in every task
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = MeanClusteredClassifier(alpha=1.0, cluster_strength=10.0).fit(
            X, y.astype(int), task_ids=task_ids)
    assert model.n_iter_ < 10
    assert model.coef_.shape == (T, d)
    assert model.score(X, y.astype(int), task_ids=task_ids) > 0.8


@pytest.mark.parametrize("missing", [0.3, 0.0], ids=["own-rows", "shared-X"])
def test_classifier_sparse_X_gives_the_dense_fit(missing):
    X, Y, _ = make_classification(missing=missing)
    X[np.abs(X) < 0.4] = 0.0
    dense = MeanClusteredClassifier(alpha=0.05, cluster_strength=3.0).fit(X, Y)
    sparse = MeanClusteredClassifier(alpha=0.05, cluster_strength=3.0).fit(sp.csr_matrix(X), Y)
    np.testing.assert_allclose(sparse.coef_, dense.coef_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(sparse.intercept_, dense.intercept_, rtol=1e-8, atol=1e-10)
    for p_sparse, p_dense in zip(sparse.predict_proba(sp.csr_matrix(X)), dense.predict_proba(X)):
        np.testing.assert_allclose(p_sparse, p_dense, rtol=1e-8)


def test_classifier_long_format_gives_the_wide_fit():
    X, Y, mask = make_classification()
    rows, tasks = np.nonzero(mask)
    labels = np.array(["no", "yes"])
    wide = MeanClusteredClassifier(alpha=0.05, cluster_strength=2.0).fit(X, Y)
    long = MeanClusteredClassifier(alpha=0.05, cluster_strength=2.0).fit(
        X[rows], labels[Y[rows, tasks].astype(int)], task_ids=tasks)
    np.testing.assert_allclose(long.coef_, wide.coef_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(long.intercept_, wide.intercept_, rtol=1e-8, atol=1e-10)
    predicted = long.predict(X[rows], task_ids=tasks)
    np.testing.assert_array_equal(predicted, labels[wide.predict(X)[rows, tasks].astype(int)])


def test_huge_cluster_strength_classifier_shares_one_coefficient_vector():
    X, Y, _ = make_classification()
    model = MeanClusteredClassifier(alpha=0.05, cluster_strength=1e8).fit(X, Y)
    assert spread(model.coef_) < 1e-10 * np.sum(model.coef_**2)


@pytest.mark.parametrize("alpha", [1e12, 1e20, 1e30])
def test_overwhelming_alpha_classifier_fits_the_null_model_without_warning(alpha):
    # everything pulled to 0 but the free mean intercept: sum_t (sigmoid(b) - rate_t) = 0.
    # From the tasks' own log-odds, the pull's gradient (1e19 at alpha 1e20) left the mean
    # intercept's Newton step at rounding noise (-2,480), then a singular system.
    X, Y, _ = make_classification()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = MeanClusteredClassifier(alpha=alpha).fit(X, Y)
    rate = np.nanmean(Y, axis=0).mean()
    assert np.abs(model.coef_).max() < 1e-10
    np.testing.assert_allclose(model.intercept_, np.log(rate / (1.0 - rate)), atol=1e-5)


def test_a_task_with_three_classes_raises_naming_it():
    X, Y, _ = make_classification()
    three = np.nan_to_num(Y)
    three[5, 1] = 2.0
    with pytest.raises(ValueError, match="Only binary classification is supported: Task 1"):
        MeanClusteredClassifier().fit(X, three)


def test_newton_stops_at_max_iter_with_a_convergence_warning():
    X, Y, _ = make_classification()
    with pytest.warns(ConvergenceWarning, match="did not converge in max_iter=1"):
        model = MeanClusteredClassifier(alpha=0.01, max_iter=1).fit(X, Y)
    assert model.n_iter_ == 1


# -- long format: per-task row groups, never the dense (n_samples, n_tasks) target -------------
def wide_to_long(X, Y, mask, seed=None):
    """The observed entries of (X, Y) as long rows; shuffled rows when a seed is given."""
    rows, tasks = np.nonzero(mask)
    order = np.arange(rows.size) if seed is None else np.random.default_rng(seed).permutation(
        rows.size)
    return X[rows[order]], Y[rows[order], tasks[order]], tasks[order]


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("cluster_strength", [0.3, 1.0, 8.0])
@pytest.mark.parametrize("seed", [None, 0], ids=["task-sorted", "shuffled"])
@pytest.mark.parametrize("n_features", [5, 12])
def test_regressor_long_fit_equals_the_wide_fit(n_features, seed, cluster_strength,
                                                fit_intercept, sparse):
    X, Y, mask = make_regression(n=80, d=n_features, n_tasks=6, seed=3)
    mask[1::2, 2] = False  # tasks of different sizes: several stacks
    X_long, y_long, tasks = wide_to_long(X, Y, mask, seed)
    params = dict(alpha=0.4, cluster_strength=cluster_strength, fit_intercept=fit_intercept)
    convert = sp.csr_matrix if sparse else np.asarray
    wide = MeanClusteredRegressor(**params).fit(convert(X), np.where(mask, Y, np.nan))
    long = MeanClusteredRegressor(**params).fit(convert(X_long), y_long,
                                                task_ids=np.array([f"t{t}" for t in tasks]))
    np.testing.assert_allclose(long.coef_, wide.coef_, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(long.intercept_, wide.intercept_, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("seed", [None, 0], ids=["task-sorted", "shuffled"])
@pytest.mark.parametrize("n_features", [4, 10])
def test_classifier_long_fit_equals_the_wide_fit(n_features, seed):
    X, Y, mask = make_classification(d=n_features, seed=4)
    X_long, y_long, tasks = wide_to_long(X, Y, mask, seed)
    wide = MeanClusteredClassifier(alpha=0.05, cluster_strength=3.0).fit(X, Y)
    long = MeanClusteredClassifier(alpha=0.05, cluster_strength=3.0).fit(
        X_long, y_long.astype(int), task_ids=tasks)
    np.testing.assert_allclose(long.coef_, wide.coef_, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(long.intercept_, wide.intercept_, rtol=1e-10, atol=1e-10)
    assert long.n_iter_ == wide.n_iter_


def test_one_task_long_data_is_the_one_task_fit():
    X, Y, _ = make_regression(missing=0.0)
    long = MeanClusteredRegressor(alpha=0.2, cluster_strength=3.0).fit(
        X, Y[:, 0], task_ids=np.zeros(X.shape[0], dtype=int))
    single = MeanClusteredRegressor(alpha=0.2, cluster_strength=3.0).fit(X, Y[:, 0])
    np.testing.assert_allclose(long.coef_, single.coef_, rtol=1e-12)


def test_solvers_accept_long_data_directly():
    X, Y, mask = make_regression()
    X_long, y_long, tasks = wide_to_long(X, Y, mask, seed=1)
    W, b = solve_mean_clustered(X, Y, mask, 0.3, 4.0)
    W_long, b_long = solve_mean_clustered(X_long, y_long, None, 0.3, 4.0, task_index=tasks)
    np.testing.assert_allclose(W_long, W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b_long, b, rtol=1e-10, atol=1e-12)
    path = MeanClusteredLeastSquares(X_long, y_long, task_index=tasks)
    W_path, b_path = path.solve(0.3, 4.0)
    np.testing.assert_allclose(W_path, W, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(b_path, b, rtol=1e-8, atol=1e-10)
    with pytest.raises(ValueError, match=r"Task\(s\) \[1\] have no observed label"):
        solve_mean_clustered(X_long, y_long, None, 0.3, 4.0, task_index=2 * (tasks > 0),
                             n_tasks=3)
    with pytest.raises(ValueError, match="mask must be None with task_index"):
        solve_mean_clustered(X_long, y_long, mask, 0.3, 4.0, task_index=tasks)


def test_groups_from_the_mask_equal_the_long_groups():
    from skmtl.utils.validation import group_rows_by_task

    _, Y, mask = make_regression()
    rows, tasks = np.nonzero(mask)
    order = np.lexsort((rows, tasks))
    expected = group_rows_by_task(tasks[order], mask.shape[1])
    for got, want in zip(_groups_from_mask(mask), expected):
        np.testing.assert_array_equal(got, rows[order][want])


def test_task_sorted_long_data_is_stacked_without_copying_X():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    groups = [np.arange(0, 20), np.arange(20, 40), np.arange(40, 60)]
    stacks = list(GroupedDense.from_groups(X, groups).stacks())
    assert len(stacks) == 1 and np.shares_memory(stacks[0][3], X)
    shuffled = list(GroupedDense.from_groups(X, [groups[1], groups[0], groups[2]]).stacks())
    assert not np.shares_memory(shuffled[0][3], X)


@pytest.mark.parametrize("order", ["C", "F"])
def test_every_design_gives_the_weighted_gram_matrices(order):
    """``gram(w)`` is ``X_t^T diag(w_t) X_t`` per task: from one rank-k update (dsyrk) per
    task for shared rows and large tasks (C or Fortran X), from a batched product for stacks
    of small tasks, from one sparse product for sparse X. ``pooled_gram()`` is their sum
    over tasks (unweighted): from the kept stacks, or from X's rows weighted by the number
    of tasks observing them where the stacks are gathered at every read (wide data)."""
    rng = np.random.default_rng(0)
    n, d = 400, 40
    X = np.asarray(rng.normal(size=(n, d)), order=order)
    X[rng.uniform(size=X.shape) < 0.5] = 0.0
    sizes = [400, 150, 10, 5]  # one stack each; the first two above _SYRK_WORK
    groups = [np.sort(rng.permutation(n)[:size]) for size in sizes]
    grouped = GroupedDense.from_groups(X, groups)
    assert [stack.shape[1] * d * d >= _SYRK_WORK for *_, stack in grouped.stacks()] == [
        False, False, True, True]  # blocks in increasing size
    shared = SharedDense(X, slice(None), 3)
    for design, rows in ((grouped, groups), (SparseDesign(sp.csr_matrix(X), groups), groups),
                         (shared, [np.arange(n)] * 3)):
        w = rng.uniform(size=design.obs_tasks.shape[0])
        for weights in (w, None):
            gram = design.gram(weights)
            for t, task_rows in enumerate(rows):
                w_t = np.ones(task_rows.size) if weights is None else w[design.obs_tasks == t]
                expected = X[task_rows].T @ (w_t[:, None] * X[task_rows])
                np.testing.assert_allclose(gram[t], expected, rtol=0, atol=1e-10)
        np.testing.assert_allclose(design.pooled_gram(), design.gram().sum(axis=0), rtol=0,
                                   atol=1e-9)
        np.testing.assert_allclose(design.pooled_gram(w), design.gram(w).sum(axis=0), rtol=0,
                                   atol=1e-9)
    wide = GroupedDense.from_groups(X, groups * 3)  # 3 copies of each task: not kept
    assert all(stack is None for *_, stack in wide.chunks)
    expected = 3 * sum(X[rows].T @ X[rows] for rows in groups)
    np.testing.assert_allclose(wide.pooled_gram(), expected, rtol=0, atol=1e-9)
    w = rng.uniform(size=wide.obs_tasks.shape[0])  # a row's weight: its tasks' weights summed
    np.testing.assert_allclose(wide.pooled_gram(w), wide.gram(w).sum(axis=0), rtol=0,
                               atol=1e-9)


@pytest.mark.parametrize("layout", ["shared", "grouped", "long", "sparse"])
def test_designs_at_the_mean_of_x_are_the_centred_rows(layout):
    """``Problem.design(at_mean=True)`` (the classifiers' pulled intercepts): the rows shifted
    by the mean of the observed rows (a row counted once per task that observes it), as
    products and weighted Gram matrices of the explicitly centred rows. A sparse X keeps
    columns whose mean is below their spread sparse (centred implicitly) and centres the
    others (a column of years) in its copy: the Gram matrices stay exact to rounding where
    the implicit correction would cancel terms 1e8 times larger. So is ``pooled_gram()``,
    the sum of the tasks' Gram matrices (wide dense data: from the rows of X, each once)."""
    rng = np.random.default_rng(1)
    n, d, T = 90, 5, 3
    X = rng.normal(size=(n, d)) * (rng.uniform(size=(n, d)) < 0.4)  # mostly zeros
    X[:, 1] = 2000.0 + rng.integers(0, 20, size=n)  # a year: mean far above its spread
    mask = rng.uniform(size=(n, T)) < 0.6 if layout != "shared" else np.ones((n, T), bool)
    mask[:3] = True
    if layout == "long":
        rows, tasks = np.nonzero(mask)
        problem = Problem(X[rows], np.zeros(rows.size), task_index=tasks, n_tasks=T)
        X_rows, groups = X[rows], [np.flatnonzero(tasks == t) for t in range(T)]
    else:
        problem = Problem(sp.csr_matrix(X) if layout == "sparse" else X, np.zeros((n, T)), mask)
        X_rows, groups = X, [np.flatnonzero(mask[:, t]) for t in range(T)]
    design = problem.design(at_mean=True)
    assert type(design).__name__ == {"shared": "SharedDense", "grouped": "GroupedDense",
                                     "long": "GroupedDense", "sparse": "ShiftedSparse"}[layout]
    mean = np.concatenate([X_rows[g] for g in groups]).mean(axis=0)
    np.testing.assert_allclose(design.x_origin, mean, rtol=1e-13)
    if layout == "sparse":  # the year column is centred in the copy, the others implicitly
        np.testing.assert_array_equal(design.shift != 0, np.arange(d) != 1)
    W = rng.normal(size=(T, d))
    v, w = rng.normal(size=design.obs_tasks.size), rng.uniform(size=design.obs_tasks.size)
    z, corr, gram = design.matvec(W), design.rmatvec(v), design.gram(w)
    for t, g in enumerate(groups):
        centred, own = X_rows[g] - mean, design.obs_tasks == t
        np.testing.assert_allclose(z[own], centred @ W[t], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(corr[t], centred.T @ v[own], rtol=1e-9, atol=1e-9)
        expected = centred.T @ (w[own][:, None] * centred)
        np.testing.assert_allclose(gram[t], expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())
    centred = np.concatenate([X_rows[g] for g in groups]) - mean
    expected = centred.T @ centred
    np.testing.assert_allclose(design.pooled_gram(), expected, rtol=1e-11,
                               atol=1e-11 * np.abs(expected).max())
    weighted = centred.T @ (w[:, None] * centred)  # (observations in task order)
    np.testing.assert_allclose(design.pooled_gram(w), weighted, rtol=1e-11,
                               atol=1e-11 * np.abs(weighted).max())
    if layout == "sparse":  # each task's row Gram matrix X_t X_t^T, its rows never densified
        grams = list(design.task_row_grams())
        assert [(start, stop) for start, stop, _ in grams] == [
            (int(design.counts[:t].sum()), int(design.counts[:t + 1].sum())) for t in range(T)]
        for (_, _, gram), g in zip(grams, groups):
            expected_rows = (X_rows[g] - mean) @ (X_rows[g] - mean).T
            np.testing.assert_allclose(gram, expected_rows, rtol=1e-11,
                                       atol=1e-11 * np.abs(expected_rows).max())
    if layout == "grouped":  # 4 copies of the tasks: the stacks gathered at every read
        wide = Problem(X, np.zeros((n, 4 * T)), np.tile(mask, 4)).design(at_mean=True)
        assert all(stack is None for *_, stack in wide.chunks)
        np.testing.assert_allclose(wide.pooled_gram(), 4 * expected, rtol=1e-11,
                                   atol=1e-11 * np.abs(expected).max())
        w4 = np.tile(w, 4)  # the 4 copies of each observation, weighted alike
        np.testing.assert_allclose(wide.pooled_gram(w4), 4 * weighted, rtol=1e-11,
                                   atol=1e-11 * np.abs(weighted).max())


@pytest.mark.parametrize("density", [0.1, 0.7])
@pytest.mark.parametrize("at_mean", [False, True])
def test_sparse_designs_stack_each_tasks_rows_as_dense_rows(at_mean, density):
    """A sparse X's design (and its shift to the mean of X) gives the tasks' rows as the
    dense design does, densified chunk by chunk as they are read: every task's rows in its
    stack, the padding 0, no chunk of more than a quarter of the stored entries (but for
    one task), kept only when they hold at most twice the stored entries (70% non-zeros),
    the same at every read; and the same kernel-form decision on wide data."""
    rng = np.random.default_rng(2)
    n, d, T = 300, 200, 6
    X = np.where(rng.uniform(size=(n, d)) < density, rng.normal(size=(n, d)), 0.0)
    mask = rng.uniform(size=(n, T)) < 0.15
    mask[:, 5] = rng.uniform(size=n) < 0.9  # one task with more rows than features / 2
    dense = Problem(X, np.zeros((n, T)), mask).design(at_mean=at_mean)
    sparse = Problem(sp.csr_matrix(X), np.zeros((n, T)), mask).design(at_mean=at_mean)
    assert type(sparse).__name__ == ("ShiftedSparse" if at_mean else "SparseDesign")
    mean = dense.x_origin if at_mean else np.zeros(d)
    seen = np.zeros(T, dtype=int)
    for _ in range(2):  # (a kept stack is not shifted in place)
        for tasks, pos, _, stack in sparse.stacks():
            assert stack.shape == (tasks.size, pos.shape[1], d)
            assert tasks.size == 1 or stack.size <= max(sp.csr_matrix(X)[
                sparse.obs_rows].nnz // 4, 2**16)
            for k, t in enumerate(tasks):
                rows = np.flatnonzero(mask[:, t])
                np.testing.assert_allclose(stack[k, :rows.size], X[rows] - mean, rtol=0,
                                           atol=1e-15)
                assert not stack[k, rows.size:].any()
                seen[t] += 1
    np.testing.assert_array_equal(seen, 2)
    kept = [stack is not None for *_, stack in sparse.chunks]
    assert all(kept) if density > 0.5 else not any(kept)  # else gathered at every read
    for n_coef in (d, 2 * n):  # wide for the thin tasks; none thin enough past 2 n
        assert _solver_mean_clustered._kernel_form(sparse, n_coef) == (
            _solver_mean_clustered._kernel_form(dense, n_coef))
    assert _solver_mean_clustered._kernel_form(sparse, d)


@pytest.mark.parametrize("name", ["MeanClusteredRegressor", "MeanClusteredRegressorCV",
                                  "MeanClusteredClassifier", "ClusteredTasksRegressor",
                                  "ClusteredTasksClassifier", "TaskRelationRegressor",
                                  "TaskRelationClassifier"])
def test_wide_sparse_X_is_fitted_from_its_rows_as_dense_X(name, monkeypatch):
    """160 sparse features, 5 tasks of 40 to 70 labels: the sparse X's tasks go through the
    row-based solvers of wide data, as a dense X's do (per-task moments from one sparse
    product took ``T d^2`` memory: on 30 MoleculeACE targets of 2,048 bits, 1 GB an array),
    and give the dense fit."""
    from skmtl import linear

    rng = np.random.default_rng(0)
    n, d, T = 150, 160, 5
    X = np.where(rng.uniform(size=(n, d)) < 0.1, rng.normal(size=(n, d)), 0.0)
    Y = X @ (rng.normal(size=d) + 0.3 * rng.normal(size=(T, d))).T + rng.normal(size=(n, T))
    if "Classifier" in name:
        Y = (Y > np.median(Y, axis=0)).astype(float)
    Y[rng.uniform(size=Y.shape) < 0.6] = np.nan
    decided = []
    kernel_form = _solver_mean_clustered._kernel_form

    def spy(design, n_coef):
        decided.append((type(design).__name__, kernel_form(design, n_coef)))
        return decided[-1][1]

    for module in ("_solver_mean_clustered", "_solver_clustered_tasks", "_solver_task_relation"):
        monkeypatch.setattr(getattr(linear, module), "_kernel_form", spy)
    params = {"random_state": 0, "n_clusters": 2} if "ClusteredTasks" in name else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dense = getattr(linear, name)(**params).fit(X, Y)
        decided.clear()
        sparse = getattr(linear, name)(**params).fit(sp.csr_matrix(X), Y)
    assert decided and all(form for _, form in decided)
    assert {kind for kind, _ in decided} <= {"SparseDesign", "ShiftedSparse"}
    np.testing.assert_allclose(sparse.coef_, dense.coef_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(sparse.intercept_, dense.intercept_, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("d", [6, 40])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_every_design_gives_the_centred_task_moments(fit_intercept, dtype, d):
    """``_task_moments``: ``A_t = F_t^T F_t``, ``r_t = F_t^T u_t`` with ``F_t``, ``u_t`` task t's
    rows and targets (centred with an intercept) over ``sqrt(n_t)``, and the means: from one
    compiled pass per stack for dense rows (tasks of several sizes, rows in task order or
    scattered; with 40 features the two largest stacks by BLAS rank-n_t updates), from the
    design's products for sparse X and shared rows."""
    rng = np.random.default_rng(1)
    n = 300
    X = (rng.normal(size=(n, d)) * 3.0 + 5.0).astype(dtype)  # off-centre
    y = rng.normal(size=n)
    sizes = [120, 90, 40, 7, 3]  # several stacks, padded
    groups = [np.sort(rng.permutation(n)[:size]) for size in sizes]
    order = np.concatenate([np.arange(0, 120), np.arange(120, 210), np.arange(210, 250),
                            np.arange(250, 257), np.arange(257, 260)])
    in_order = [order[a:b] for a, b in ((0, 120), (120, 210), (210, 250), (250, 257),
                                        (257, 260))]
    designs = [(GroupedDense.from_groups(X, groups), groups),
               (GroupedDense.from_groups(X, in_order), in_order),
               (SharedDense(X, slice(None), 3), [np.arange(n)] * 3),
               (SparseDesign(sp.csr_matrix(X), groups), groups)]
    if dtype == np.float32:  # the products of sparse and shared rows keep X's dtype
        designs = designs[:2 + fit_intercept]  # (shared rows centred: float64)
    for design, rows in designs:
        targets = y[design.obs_rows] if hasattr(design, "obs_rows") else np.tile(y, 3)
        A, r, x_mean, y_mean = _task_moments(design, targets, fit_intercept)
        for t, task_rows in enumerate(rows):
            X_t, y_t = X[task_rows].astype(np.float64), y[task_rows]
            mean_x = X_t.mean(axis=0) if fit_intercept else np.zeros(d)
            mean_y = y_t.mean() if fit_intercept else 0.0
            F, u = X_t - mean_x, y_t - mean_y
            scale = np.abs(X_t).max() ** 2
            np.testing.assert_allclose(A[t], F.T @ F / len(task_rows), rtol=0,
                                       atol=1e-13 * scale)
            np.testing.assert_allclose(r[t], F.T @ u / len(task_rows), rtol=0,
                                       atol=1e-13 * scale)
            np.testing.assert_allclose(x_mean[t], mean_x, rtol=1e-14)
            assert y_mean[t] == pytest.approx(mean_y, rel=1e-14, abs=1e-15)
            np.testing.assert_array_equal(A[t], A[t].T)


def test_long_fits_never_build_the_dense_target(monkeypatch):
    from skmtl.utils.validation import MultiTaskTarget

    def refuse(self):
        raise AssertionError("the dense (n_samples, n_tasks) form was built for long data")

    monkeypatch.setattr(MultiTaskTarget, "values", property(refuse))
    monkeypatch.setattr(MultiTaskTarget, "mask", property(refuse))
    rng = np.random.default_rng(0)
    task_ids = rng.permutation(np.repeat(np.arange(300), 6))
    X = rng.normal(size=(task_ids.size, 4))
    y = X @ [1.0, -1.0, 0.5, 0.0] + rng.normal(size=task_ids.size)
    for X_in in (X, sp.csr_matrix(X)):
        model = MeanClusteredRegressor(alpha=0.5, cluster_strength=3.0).fit(
            X_in, y, task_ids=task_ids)
        assert model.coef_.shape == (300, 4)
        assert np.isfinite(model.score(X_in, y, task_ids=task_ids))
    labels = (y > np.median(y)).astype(int)
    labels[::6], labels[1::6] = 0, 1  # both classes in every task
    order = np.argsort(task_ids, kind="stable")
    labels[order[::6]], labels[order[1::6]] = 0, 1
    model = MeanClusteredClassifier(alpha=0.5, cluster_strength=3.0).fit(
        X, labels, task_ids=task_ids)
    assert model.score(X, labels, task_ids=task_ids) > 0.6


# -- standardize --------------------------------------------------------------------------------
def pooled_std(X, mask):
    """Standard deviation of each column over the observed (row, task) pairs, written out."""
    rows = np.nonzero(mask)[0]
    return X[rows].std(axis=0)


@pytest.mark.parametrize("Estimator", [MeanClusteredRegressor, MeanClusteredClassifier])
def test_standardize_fits_the_scaled_columns_and_reports_the_users_units(Estimator):
    if Estimator is MeanClusteredRegressor:
        X, Y, mask = make_regression()
    else:
        X, Y, mask = make_classification()
    X = X * np.array([1.0, 100.0, 0.01, 3.0, 1.0])[: X.shape[1]]
    X = np.column_stack([X, np.full(X.shape[0], 7.0)])  # a constant column: never divided by 0
    params = dict(alpha=0.1, cluster_strength=3.0)
    model = Estimator(**params, standardize=True).fit(X, Y)
    scale = pooled_std(X, mask)
    scale[-1] = 1.0
    plain = Estimator(**params).fit(X / scale, Y)
    np.testing.assert_allclose(model.coef_, plain.coef_ / scale, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(model.intercept_, plain.intercept_, rtol=1e-7, atol=1e-10)
    assert np.all(np.isfinite(model.coef_))
    # rescaling a column changes nothing but that column's coefficients
    rescaled = X.copy()
    rescaled[:, 1] *= 100.0
    again = Estimator(**params, standardize=True).fit(rescaled, Y)
    np.testing.assert_allclose(again.coef_[:, 1] * 100.0, model.coef_[:, 1], rtol=1e-7)
    if Estimator is MeanClusteredRegressor:
        np.testing.assert_allclose(again.predict(rescaled), model.predict(X), rtol=1e-8)


def test_standardize_keeps_sparse_X_sparse_and_gives_the_dense_fit():
    X, Y, _ = make_regression()
    X[np.abs(X - 2.0) < 0.5] = 0.0
    dense = MeanClusteredRegressor(alpha=0.1, cluster_strength=3.0, standardize=True).fit(X, Y)
    sparse = MeanClusteredRegressor(alpha=0.1, cluster_strength=3.0, standardize=True).fit(
        sp.csr_matrix(X), Y)
    np.testing.assert_allclose(sparse.coef_, dense.coef_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(sparse.intercept_, dense.intercept_, rtol=1e-8, atol=1e-12)


def test_standardize_false_is_the_default_and_keeps_the_ridge_equivalence():
    assert MeanClusteredRegressor().standardize is False
    assert MeanClusteredClassifier().standardize is False


# -- the shared part: a new task gets the mean model --------------------------------------------
@pytest.mark.parametrize("long", [False, True], ids=["wide", "long"])
def test_unknown_task_shared_predicts_the_mean_model(long):
    X, Y, mask = make_regression()
    if long:
        X_fit, y_fit, task_ids = wide_to_long(X, Y, mask)
        fit = {"task_ids": task_ids}
    else:
        X_fit, y_fit, fit = X, Y, {}
    model = MeanClusteredRegressor(alpha=0.1, cluster_strength=5.0, unknown_task="shared",
                                   standardize=True).fit(X_fit, y_fit, **fit)
    np.testing.assert_allclose(model.shared_coef_, model.coef_.mean(axis=0), rtol=1e-12)
    assert model.shared_intercept_ == pytest.approx(model.intercept_.mean(), rel=1e-12)
    assert isinstance(model.shared_intercept_, float)
    new = 99
    pred = model.predict(X[:6], task_ids=[new, 0, new, 1, 3, new])
    reference = X[:6] @ model.shared_coef_ + model.shared_intercept_
    np.testing.assert_allclose(pred[[0, 2, 5]], reference[[0, 2, 5]], rtol=1e-12)
    known = model.predict(X[:6], task_ids=[0, 0, 1, 1, 3, 3])
    np.testing.assert_allclose(pred[[1, 3, 4]], known[[1, 3, 4]], rtol=1e-12)
    # under "error" (the default) a new task raises
    from skmtl import UnknownTaskError

    with pytest.raises(UnknownTaskError, match="99"):
        model.set_params(unknown_task="error").predict(X[:1], task_ids=[99])


def test_unknown_task_shared_classifier_gives_the_sigmoid_of_the_mean_model():
    X, Y, _ = make_classification()
    model = MeanClusteredClassifier(alpha=0.05, cluster_strength=3.0,
                                    unknown_task="shared").fit(X, Y)
    proba = model.predict_proba(X[:5], task_ids=["new"] * 5)
    p = 1.0 / (1.0 + np.exp(-(X[:5] @ model.coef_.mean(axis=0) + model.intercept_.mean())))
    np.testing.assert_allclose(proba, np.column_stack([1 - p, p]), rtol=1e-12)
    np.testing.assert_array_equal(model.predict(X[:5], task_ids=["new"] * 5),
                                  model.classes_[0][(p > 0.5).astype(int)])


# -- one-class tasks ----------------------------------------------------------------------------
@pytest.mark.parametrize("label", [0.0, 1.0])
@pytest.mark.parametrize("cluster_strength", [0.5, 1.0, 10.0])
def test_a_task_with_one_class_is_fitted_at_the_optimum(cluster_strength, label):
    # a binary problem: task 2 saw one class only, and still has both (the shared label set)
    X, Y, mask = make_classification(missing=0.2)
    Y[:, 2] = np.where(mask[:, 2], label, np.nan)
    alpha = 0.02
    model = MeanClusteredClassifier(alpha=alpha, cluster_strength=cluster_strength).fit(X, Y)
    np.testing.assert_array_equal(model.classes_[2], [0.0, 1.0])
    proba = model.predict_proba(X)[2]
    assert proba.shape == (X.shape[0], 2) and np.all(np.isfinite(proba))
    assert np.all((proba > 0) & (proba < 1))
    assert np.all(np.isfinite(model.intercept_))
    # the objective's gradient vanishes at the solution, which a tight L-BFGS also reaches
    T, d = Y.shape[1], X.shape[1]
    ours = np.concatenate([model.coef_.ravel(), model.intercept_])
    value, grad = logistic_objective(ours, X, Y, mask, alpha, cluster_strength)
    assert np.abs(grad).max() < 1e-8
    result = scipy.optimize.minimize(
        logistic_objective, np.zeros(T * (d + 1)), args=(X, Y, mask, alpha, cluster_strength),
        jac=True, method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10_000})
    assert value <= result.fun + 1e-12
    np.testing.assert_allclose(ours, result.x, atol=1e-5)
    # the task's probability of its only class is high, not 1
    assert np.all(proba[mask[:, 2], int(label)] > 0.5)
