"""Block-sparse solvers: block prox, alpha_max, duality gap, and agreement with references."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import minimize
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso, LogisticRegression, MultiTaskLasso

from skmtl.linear._penalties import BlockPenalty, _prox_block
from skmtl.linear._solver_bcd import block_sparse_alpha_max, solve_block_sparse

TIGHT = 1e-12


def _data(n=60, d=8, T=3, missing=0.3, seed=0, classification=False, offset=1.0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, d)) + offset
    W = np.zeros((T, d))
    W[:, :3] = rng.normal(size=(T, 3))
    Y = X @ W.T + 0.5 * rng.normal(size=(n, T)) + rng.normal(size=T)
    if classification:
        Y = (Y > np.median(Y, axis=0)).astype(float)
    mask = rng.uniform(size=(n, T)) > missing
    mask[:10] = True
    return X, Y, mask


def _observed_mean(X, mask):
    """The mean of X over the observed (row, task) pairs, where the intercepts are pulled."""
    return sum(X[mask[:, t]].sum(axis=0) for t in range(mask.shape[1])) / mask.sum()


def _objective(X, Y, mask, W, b, alpha, q, datafit):
    total = 0.0
    for t in range(Y.shape[1]):
        rows = mask[:, t]
        z = X[rows] @ W[t] + b[t]
        if datafit == "quadratic":
            total += 0.5 * np.mean((Y[rows, t] - z) ** 2)
        else:
            s = 2 * Y[rows, t] - 1
            total += np.mean(np.logaddexp(0, -s * z))
    if datafit == "logistic" and Y.shape[1] > 1:  # the pull of the intercepts at the mean
        kappa = 1.0 / (4.0 * mask.sum(axis=0))
        pulled = b + W @ _observed_mean(X, mask)
        total += 0.5 * kappa @ (pulled - kappa @ pulled / kappa.sum()) ** 2
    norms = np.abs(W).max(axis=0) if q == np.inf else np.linalg.norm(W, axis=0)
    return total + alpha * norms.sum()


def _block_prox_scalar(V, step_alpha, q):
    """prox of step_alpha * sum_j ||V[:, j]||_q (plain, same step for every task)."""
    out = np.empty_like(V)
    for j in range(V.shape[1]):
        v = V[:, j]
        if q == 2:
            norm = np.linalg.norm(v)
            out[:, j] = 0 if norm <= step_alpha else v * (1 - step_alpha / norm)
        else:  # Moreau: v - projection onto the l1 ball of radius step_alpha
            if np.abs(v).sum() <= step_alpha:
                out[:, j] = 0
                continue
            u = np.sort(np.abs(v))[::-1]
            css = np.cumsum(u)
            k = np.nonzero(u * np.arange(1, len(u) + 1) > css - step_alpha)[0][-1]
            theta = (css[k] - step_alpha) / (k + 1)
            out[:, j] = v - np.sign(v) * np.maximum(np.abs(v) - theta, 0)
    return out


def _reference(X, Y, mask, alpha, q, datafit, n_iter=20000):
    """Long-run FISTA with restarts on (W, b): an independent brute-force solution."""
    T, d = Y.shape[1], X.shape[1]
    n_t = mask.sum(axis=0)
    Xa = np.hstack([X, np.ones((X.shape[0], 1))])
    lip = max(np.linalg.norm(Xa[mask[:, t]], 2) ** 2 / n_t[t] for t in range(T))
    pull = datafit == "logistic" and T > 1
    kappa = 1.0 / (4.0 * n_t)
    x_mean = _observed_mean(X, mask)
    if datafit == "logistic":
        lip = lip / 4 + (kappa.max() * (1.0 + x_mean @ x_mean) if pull else 0.0)
    step = 1.0 / lip

    def grad(V):
        G = np.zeros_like(V)
        for t in range(T):
            rows = mask[:, t]
            z = Xa[rows] @ V[t]
            if datafit == "quadratic":
                resid = z - Y[rows, t]
            else:
                s = 2 * Y[rows, t] - 1
                resid = -s / (1 + np.exp(s * z))
            G[t] = Xa[rows].T @ resid / n_t[t]
        if pull:  # kappa_t (b'_t - b'_bar) at b' = b + W x_mean, the kappa-weighted mean
            b = V[:, d] + V[:, :d] @ x_mean
            g = kappa * (b - kappa @ b / kappa.sum())
            G[:, d] += g
            G[:, :d] += np.outer(g, x_mean)
        return G

    def prox(V):
        out = V.copy()
        out[:, :d] = _block_prox_scalar(V[:, :d], step * alpha, q)
        return out

    V = np.zeros((T, d + 1))
    Z, tk = V.copy(), 1.0
    for _ in range(n_iter):
        V_new = prox(Z - step * grad(Z))
        t_new = (1 + np.sqrt(1 + 4 * tk**2)) / 2
        Z = V_new + (tk - 1) / t_new * (V_new - V)
        if np.sum((Z - V_new) * (V_new - V)) > 0:  # gradient restart
            Z, t_new = V_new.copy(), 1.0
        V, tk = V_new, t_new
    return V[:, :d], V[:, d]


@pytest.mark.parametrize("q_inf", [False, True])
def test_prox_block_is_exact_minimiser(q_inf):
    rng = np.random.RandomState(0)
    for _ in range(30):
        T = rng.randint(1, 5)
        a, L, alpha = 3 * rng.normal(size=T), rng.uniform(0.1, 2, size=T), rng.uniform(0, 3)
        out = np.zeros(T)
        _prox_block(a, L, alpha, q_inf, out)

        def f(w, a=a, L=L, alpha=alpha):
            norm = np.abs(w).max() if q_inf else np.linalg.norm(w)
            return 0.5 * np.sum(L * w * w) - a @ w + alpha * norm

        best = min(
            (minimize(f, x0, method="Nelder-Mead",
                      options=dict(xatol=1e-10, fatol=1e-13, maxiter=20000))
             for x0 in (out + 1e-3, np.zeros(T), a / L)),
            key=lambda r: r.fun,
        )
        assert f(out) <= best.fun + 1e-10


def test_prox_block_zero_curvature_task_stays_zero():
    out = np.zeros(2)
    _prox_block(np.array([5.0, 0.0]), np.array([1.0, 0.0]), 1.0, False, out)
    np.testing.assert_allclose(out, [4.0, 0.0])


def test_penalty_values_and_dual_norms():
    W = np.array([[3.0, 0.0], [-4.0, 1.0]])
    assert BlockPenalty(2.0, 2).value(W) == pytest.approx(2.0 * (5.0 + 1.0))
    assert BlockPenalty(2.0, np.inf).value(W) == pytest.approx(2.0 * (4.0 + 1.0))
    np.testing.assert_allclose(BlockPenalty(1.0, np.inf).dual_norms(W), [7.0, 1.0])
    with pytest.raises(ValueError, match="q must be 2 or np.inf"):
        BlockPenalty(1.0, 3)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_complete_y_matches_multitask_lasso_sklearn_and_ours(fit_intercept):
    X, Y, _ = _data(missing=0.0)
    alpha = block_sparse_alpha_max(X, Y, None, fit_intercept=fit_intercept) / 10
    ref = MultiTaskLasso(alpha=alpha, fit_intercept=fit_intercept, tol=1e-14,
                         max_iter=100_000).fit(X, Y)
    for solver, Xs in (("sklearn", X), ("bcd", X), ("auto", sp.csr_matrix(X))):
        W, b, gap, _ = solve_block_sparse(X=Xs, Y=Y, mask=None, alpha=alpha, tol=TIGHT,
                                          fit_intercept=fit_intercept, solver=solver)
        np.testing.assert_allclose(W, ref.coef_, atol=1e-6, err_msg=solver)
        np.testing.assert_allclose(b, np.broadcast_to(ref.intercept_, (3,)), atol=1e-6)
        assert 0 <= gap <= TIGHT


def test_sklearn_solver_requires_its_problem():
    X, Y, mask = _data()
    with pytest.raises(ValueError, match="MultiTaskLasso"):
        solve_block_sparse(X, Y, mask, 0.1, solver="sklearn")


@pytest.mark.parametrize("q", [2, np.inf])
def test_one_task_is_lasso(q):
    X, Y, _ = _data(T=1, missing=0.0)
    alpha = 0.05
    ref = Lasso(alpha=alpha, tol=1e-14, max_iter=100_000).fit(X, Y[:, 0])
    W, b, _, _ = solve_block_sparse(X, Y, None, alpha, q=q, tol=TIGHT, solver="bcd")
    np.testing.assert_allclose(W[0], ref.coef_, atol=1e-7)
    np.testing.assert_allclose(b[0], ref.intercept_, atol=1e-7)


@pytest.mark.parametrize("q", [2, np.inf])
def test_one_task_logistic_is_l1_logistic_regression(q):
    # sklearn: ||w||_1 + C sum_i log-loss  ==  (1 / (n alpha)) * [ours]  for C = 1 / (n alpha)
    X, Y, _ = _data(n=80, T=1, missing=0.0, classification=True, offset=0.0)
    n, alpha = X.shape[0], 0.02
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = LogisticRegression(l1_ratio=1.0, C=1 / (n * alpha), solver="saga", tol=1e-13,
                                 max_iter=200_000).fit(X, Y[:, 0])
    W, b, gap, _ = solve_block_sparse(X, Y, None, alpha, q=q, datafit="logistic",
                                      tol=TIGHT)
    np.testing.assert_allclose(W[0], ref.coef_[0], atol=1e-6)
    np.testing.assert_allclose(b[0], ref.intercept_[0], atol=1e-6)
    assert 0 <= gap <= TIGHT


@pytest.mark.parametrize("q", [2, np.inf])
@pytest.mark.parametrize("datafit", ["quadratic", "logistic"])
def test_missing_labels_match_brute_force_objective(q, datafit):
    X, Y, mask = _data(n=40, d=5, classification=datafit == "logistic")
    alpha = block_sparse_alpha_max(X, Y, mask, q=q, datafit=datafit) / 8
    W, b, gap, _ = solve_block_sparse(X, Y, mask, alpha, q=q, datafit=datafit, tol=TIGHT)
    W_ref, b_ref = _reference(X, Y, mask, alpha, q, datafit)
    ours = _objective(X, Y, mask, W, b, alpha, q, datafit)
    ref = _objective(X, Y, mask, W_ref, b_ref, alpha, q, datafit)
    assert ours <= ref + 1e-9 * abs(ref)
    assert ours == pytest.approx(ref, rel=1e-6)
    assert np.any(W != 0)


def test_per_task_rows_long_data_match_brute_force():
    # long data: every row belongs to exactly one task, tasks of different sizes
    rng = np.random.RandomState(3)
    sizes = [7, 15, 30]
    task = np.repeat(np.arange(3), sizes)
    X = rng.normal(size=(len(task), 6))
    y = X[:, 0] * (task + 1) + rng.normal(size=len(task))
    Y = np.zeros((len(task), 3))
    mask = np.zeros_like(Y, dtype=bool)
    Y[np.arange(len(task)), task] = y
    mask[np.arange(len(task)), task] = True
    alpha = block_sparse_alpha_max(X, Y, mask) / 5
    W, b, _, _ = solve_block_sparse(X, Y, mask, alpha, tol=TIGHT)
    W_ref, b_ref = _reference(X, Y, mask, alpha, 2, "quadratic")
    assert _objective(X, Y, mask, W, b, alpha, 2, "quadratic") == pytest.approx(
        _objective(X, Y, mask, W_ref, b_ref, alpha, 2, "quadratic"), rel=1e-6)


@pytest.mark.parametrize("q", [2, np.inf])
@pytest.mark.parametrize("datafit", ["quadratic", "logistic"])
def test_sparse_equals_dense_and_mask_hides_values(q, datafit):
    X, Y, mask = _data(classification=datafit == "logistic")
    X[X < 1.0] = 0.0
    alpha = block_sparse_alpha_max(X, Y, mask, q=q, datafit=datafit) / 10
    dense = solve_block_sparse(X, Y, mask, alpha, q=q, datafit=datafit, tol=TIGHT)
    sparse = solve_block_sparse(sp.csc_matrix(X), Y, mask, alpha, q=q, datafit=datafit,
                                tol=TIGHT)
    garbage = np.where(mask, Y, np.random.RandomState(1).randint(0, 2, size=Y.shape) * 1e3)
    if datafit == "logistic":
        garbage = np.where(mask, Y, 1 - Y)
    hidden = solve_block_sparse(X, garbage, mask, alpha, q=q, datafit=datafit, tol=TIGHT)
    for other in (sparse, hidden):
        np.testing.assert_allclose(other[0], dense[0], atol=1e-7)
        np.testing.assert_allclose(other[1], dense[1], atol=1e-7)


def test_sparse_x_is_never_densified(monkeypatch):
    rng = np.random.RandomState(0)
    n, d = 200, 50_000  # dense would be 80 MB
    X = sp.random(n, d, density=5e-5, format="csr", random_state=rng)
    X = X + sp.csr_matrix((np.ones(n), (np.arange(n), np.arange(n) % 5)), shape=(n, d))
    signal = np.asarray(X[:, :5].sum(axis=1)).ravel()
    Y = np.column_stack([signal + rng.normal(size=n), 2 * signal + rng.normal(size=n)])
    mask = rng.uniform(size=Y.shape) > 0.2

    def refuse(*args, **kwargs):
        raise AssertionError("sparse X was densified")

    for cls in (sp.csr_matrix, sp.csc_matrix):
        monkeypatch.setattr(cls, "toarray", refuse)
        monkeypatch.setattr(cls, "todense", refuse)
    alpha = block_sparse_alpha_max(X, Y, mask) / 5
    W, _, gap, _ = solve_block_sparse(X, Y, mask, alpha, tol=1e-8)
    assert W.shape == (2, d) and gap <= 1e-8
    assert 0 < np.count_nonzero(np.any(W != 0, axis=0)) <= 50


@pytest.mark.parametrize("q", [2, np.inf])
@pytest.mark.parametrize("datafit", ["quadratic", "logistic"])
def test_alpha_max_is_the_smallest_alpha_with_zero_coef(q, datafit):
    X, Y, mask = _data(classification=datafit == "logistic")
    alpha_max = block_sparse_alpha_max(X, Y, mask, q=q, datafit=datafit)
    W, b, _, _ = solve_block_sparse(X, Y, mask, alpha_max, q=q, datafit=datafit)
    assert np.all(W == 0)
    if datafit == "quadratic":  # the intercepts are the observed means
        means = [Y[mask[:, t], t].mean() for t in range(Y.shape[1])]
        np.testing.assert_allclose(b, means)
    W, _, _, _ = solve_block_sparse(X, Y, mask, 0.99 * alpha_max, q=q, datafit=datafit,
                                    tol=1e-10)
    assert np.any(W != 0)


def test_gap_is_nonnegative_and_below_tol_at_convergence():
    X, Y, mask = _data(d=20)
    alpha = block_sparse_alpha_max(X, Y, mask) / 20
    for tol in (1e-4, 1e-8):
        _, _, gap, _ = solve_block_sparse(X, Y, mask, alpha, tol=tol)
        assert 0 <= gap <= tol


def test_convergence_warning_when_max_iter_is_reached():
    X, Y, mask = _data(d=20)
    alpha = block_sparse_alpha_max(X, Y, mask) / 20
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        _, _, gap, n_iter = solve_block_sparse(X, Y, mask, alpha, tol=1e-10, max_iter=1)
    assert n_iter == 1 and gap > 1e-10


@pytest.mark.parametrize("datafit", ["quadratic", "logistic"])
def test_warm_start_needs_fewer_epochs(datafit):
    X, Y, mask = _data(n=100, d=40, classification=datafit == "logistic")
    alpha = block_sparse_alpha_max(X, Y, mask, datafit=datafit) / 10
    W, b, _, cold = solve_block_sparse(X, Y, mask, alpha, datafit=datafit, tol=1e-10)
    # the next point of a path, at the default tolerance (the logistic solver converges
    # linearly, so at 1e-10 the tail of the iterations dominates both counts)
    W2, _, _, warm = solve_block_sparse(X, Y, mask, 0.95 * alpha, datafit=datafit, W0=W,
                                        b0=b, tol=1e-6)
    _, _, _, cold2 = solve_block_sparse(X, Y, mask, 0.95 * alpha, datafit=datafit, tol=1e-6)
    assert warm < cold2
    _, _, _, again = solve_block_sparse(X, Y, mask, alpha, datafit=datafit, W0=W, b0=b,
                                        tol=1e-10)
    assert again <= 5 < cold


def test_input_errors():
    X, Y, mask = _data()
    with pytest.raises(ValueError, match="q must be"):
        solve_block_sparse(X, Y, mask, 0.1, q=1)
    with pytest.raises(ValueError, match="same shape"):
        solve_block_sparse(X, Y, mask[:, :2], 0.1)
    with pytest.raises(ValueError, match="no observed label"):
        solve_block_sparse(X, Y, np.zeros_like(mask), 0.1)
    with pytest.raises(ValueError, match="0 or 1"):
        solve_block_sparse(X, Y, mask, 0.1, datafit="logistic")
    with pytest.raises(ValueError, match="W0 must have shape"):
        solve_block_sparse(X, Y, mask, 0.1, W0=np.zeros(3))


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_lanczos_moment_eigenvalue_of_sparse_X_equals_the_dense_one(fit_intercept):
    """The largest eigenvalue behind the default alphas, for a sparse X from
    _LANCZOS_FEATURES features, by Lanczos iterations on products with X, equals the
    eigenvalue of the d x d moments it no longer forms (20,000 features: 3.2 GB), a column
    of one large constant value left out with an intercept as before."""
    from skmtl.linear import _solver_mean_clustered as solver

    rng = np.random.default_rng(0)
    n, d, T = 700, 400, 6
    X = sp.random(n, d, density=0.05, format="lil", random_state=rng)
    X[:, 5] = 1e4
    X = sp.csr_matrix(X)
    rows = np.concatenate([np.arange(n), rng.choice(n, 200, replace=False)])
    tasks = np.concatenate([rng.integers(T, size=n), rng.integers(T, size=200)])
    assert d > solver._LANCZOS_FEATURES
    value = solver._largest_moment_eigenvalue(X, rows, tasks, T, fit_intercept)
    weights = 1.0 / np.bincount(tasks, minlength=T)[tasks]
    dense = X.toarray()
    moments = np.zeros((d, d))
    for t in range(T):
        Xt = dense[rows[tasks == t]]
        if fit_intercept:
            Xt = Xt - Xt.mean(axis=0)
        moments += Xt.T @ Xt * weights[tasks == t][0]
    if fit_intercept:  # the constant column's centred moment is rounding: left out
        moments[5, :] = moments[:, 5] = 0.0
    expected = np.linalg.eigvalsh(moments / T)[-1]
    assert value == pytest.approx(expected, rel=1e-12)


def test_lanczos_moment_eigenvalue_takes_arpacks_estimate_when_short_of_rounding(monkeypatch):
    """Where ARPACK stops short of its rounding-level tolerance, its best estimate of the
    largest eigenvalue is the scale of the grid (a scale, not a solution: 1e-6 is ample)
    rather than an error out of a fit."""
    import scipy.sparse.linalg as sla

    from skmtl.linear import _solver_mean_clustered as solver

    rng = np.random.default_rng(1)
    X = sp.random(300, 300, density=0.05, format="csr", random_state=rng)
    rows, tasks = np.arange(300), rng.integers(3, size=300)
    expected = solver._largest_moment_eigenvalue(X, rows, tasks, 3, True)
    original = sla.eigsh

    def short(*args, **kwargs):
        values = original(*args, **{**kwargs, "tol": 1e-6})
        raise sla.ArpackNoConvergence("short", values, None)

    monkeypatch.setattr(sla, "eigsh", short)
    assert solver._largest_moment_eigenvalue(X, rows, tasks, 3, True) == pytest.approx(
        expected, rel=1e-6)
