"""Hierarchical*: the likelihood against a dense computation and statsmodels, limits, formats."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression

from skmtl.linear import HierarchicalClassifier, HierarchicalRegressor
from skmtl.linear._designs import Problem
from skmtl.linear._solver_hierarchical import (
    MixedModel,
    MomentRows,
    _factor_solve,
    _reml_curvature,
    _shifted_factor_solve,
    factor_entries,
    standardized_moments,
    task_moments,
)


def _long(T=30, d=2, seed=0, noise=0.7, rows=(10, 40)):
    """Tasks with a random intercept and random slopes of a known covariance."""
    rng = np.random.RandomState(seed)
    task_ids = np.repeat(np.arange(T), rng.randint(*rows, T))
    X = rng.normal(size=(len(task_ids), d))
    cov = 0.3 * np.eye(d + 1) + 0.1
    deviations = rng.multivariate_normal(np.zeros(d + 1), cov, size=T)
    coef = np.linspace(1.0, -1.0, d) + deviations[:, :d]
    y = (np.einsum("ij,ij->i", X, coef[task_ids]) + 2.0 + deviations[task_ids, d]
         + noise * rng.normal(size=len(task_ids)))
    return X, y, task_ids


def _moments(X, y, task_ids):
    rows = [np.flatnonzero(task_ids == t) for t in np.unique(task_ids)]
    return rows, task_moments(Problem(X, y, task_index=task_ids), True)[:4]


@pytest.mark.parametrize("diagonal", [False, True], ids=["full", "diag"])
@pytest.mark.parametrize("random", [[2], [0, 2], [0, 1, 2]])
@pytest.mark.parametrize("reml", [False, True])
def test_deviance_gradient_against_finite_differences(random, reml, diagonal):
    X, y, task_ids = _long(T=8)
    _, (A, c, s, n) = _moments(X, y, task_ids)
    model = MixedModel(A, c, s, n, random, reml, diagonal=diagonal)
    theta = np.random.RandomState(1).normal(size=len(model._tril[0]))
    _, grad = model.deviance(theta)
    h = 1e-6
    numeric = [(model.deviance(theta + h * e)[0] - model.deviance(theta - h * e)[0]) / (2 * h)
               for e in np.eye(len(theta))]
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6 * np.abs(grad).max())


def _pair_gradient(model, Psi):
    """The deviance's gradient in the coordinates of :meth:`MixedModel.symmetric`."""
    _, H = model.covariance_gradient(np.linalg.cholesky(Psi)[model._tril])
    rows, cols = model._tril
    return np.where(rows == cols, 1.0, 2.0) * H[rows, cols]


def _positive_definite(q, seed):
    rng = np.random.RandomState(seed)
    L = np.tril(rng.normal(size=(q, q)))
    np.fill_diagonal(L, np.abs(np.diag(L)) + 0.5)
    return L @ L.T


@pytest.mark.parametrize("diagonal", [False, True], ids=["full", "diag"])
@pytest.mark.parametrize("random", [[2], [0, 2], [0, 1, 2]])
@pytest.mark.parametrize("reml", [False, True])
def test_hessian_against_finite_differences(random, reml, diagonal):
    """The Hessian in Psi (beta and sigma^2 profiled, REML's log |S_XX| included) against
    central differences of the exact gradient; the expected information is positive
    semi-definite. ``diagonal``: over the diagonal Psi only (its own formula)."""
    X, y, task_ids = _long(T=8)
    _, (A, c, s, n) = _moments(X, y, task_ids)
    model = MixedModel(A, c, s, n, random, reml, diagonal=diagonal)
    Psi = _positive_definite(len(random), 1)
    if diagonal:
        Psi = np.diag(np.diag(Psi))
    expected = _assert_hessian_is_the_differences(model, Psi)
    assert np.linalg.eigvalsh(expected)[0] > -1e-10 * np.abs(expected).max()


def _assert_hessian_is_the_differences(model, Psi):
    """``model.hessian()`` at ``Psi`` against central differences of the exact gradient;
    returns the expected information there."""
    gradient = _pair_gradient(model, Psi)  # (also the state hessian() reads)
    hessian, expected = model.hessian(), model.hessian(expected=True)
    h = 1e-5
    numeric = np.column_stack([
        (_pair_gradient(model, Psi + h * model.symmetric(e))
         - _pair_gradient(model, Psi - h * model.symmetric(e))) / (2 * h)
        for e in np.eye(len(gradient))])
    np.testing.assert_allclose(hessian, numeric, rtol=1e-6, atol=1e-7 * np.abs(numeric).max())
    return expected


@pytest.mark.parametrize("shape", [(3, 3, 9), (20, 2, 3), (4, 1, 30)],
                         ids=["pairs", "rank", "intercept"])
def test_reml_curvature_through_the_task_pairs_or_the_rank(shape, monkeypatch):
    """REML's second curvature term, ``tr(D(E_a) D(E_b))`` with ``D(E) = weight sum_t F_t^T E
    F_t`` over the pairs of the lower triangle, against those matrices formed pair by pair:
    through the task pairs where there are fewer tasks than the rank (wide data), through the
    ``(q rank)^2`` matrix otherwise; None where both would cost more than the threshold."""
    from skmtl.linear import _solver_hierarchical

    n_tasks, q, rank = shape
    F = np.random.default_rng(0).normal(size=shape)
    rows, cols = factor_entries(q, False)
    D = []
    for i, j in zip(rows, cols):
        E = np.zeros((q, q))
        E[i, j] += 1.0
        E[j, i] += 1.0
        D.append(0.7 * sum(F_t.T @ E @ F_t for F_t in F))
    expected = np.array([[np.sum(D_a * D_b) for D_b in D] for D_a in D])
    by_rank = n_tasks * (q * rank) ** 2
    by_pairs = (n_tasks * q) ** 2 * rank + (n_tasks * q**2) ** 2
    assert (by_pairs < by_rank) == (n_tasks < rank)
    np.testing.assert_allclose(_reml_curvature(F, 0.7, rows, cols), expected, rtol=1e-12,
                               atol=1e-12 * np.abs(expected).max())
    monkeypatch.setattr(_solver_hierarchical, "_REML_CURVATURE", min(by_rank, by_pairs) - 1)
    assert _reml_curvature(F, 0.7, rows, cols) is None


@pytest.mark.parametrize("diagonal", [False, True], ids=["full", "diag"])
def test_hessian_of_few_tasks_on_many_features(diagonal):
    """3 tasks, 8 features and 3 random effects (REML): the second curvature term goes
    through the task pairs, and the Hessian is still the central differences of the
    gradient."""
    X, y, task_ids = _long(T=3, d=8, seed=2, rows=(20, 40))
    _, (A, c, s, n) = _moments(X, y, task_ids)
    model = MixedModel(A, c, s, n, [0, 1, 8], True, diagonal=diagonal)
    assert model.rank == 9
    Psi = _positive_definite(3, 4)
    if diagonal:
        Psi = np.diag(np.diag(Psi))
    _assert_hessian_is_the_differences(model, Psi)


def test_deviance_through_the_inverse_covariance():
    """Through Psi^-1 + A_t (used while Psi is well conditioned) the deviance and its
    gradient are those through L."""
    X, y, task_ids = _long(T=8)
    _, (A, c, s, n) = _moments(X, y, task_ids)
    for reml in (False, True):
        model = MixedModel(A, c, s, n, [0, 1, 2], reml)
        theta = np.linalg.cholesky(_positive_definite(3, 2))[model._tril]
        value, H, gamma, r2 = model._evaluate(theta, True)
        value_inv, H_inv, gamma_inv, r2_inv = model._evaluate(theta, True, inverse=True)
        assert value_inv == pytest.approx(value, rel=1e-13)
        np.testing.assert_allclose(H_inv, H, rtol=1e-10, atol=1e-12 * np.abs(H).max())
        np.testing.assert_allclose(gamma_inv, gamma, rtol=1e-11)
        # the estimates and the log-likelihood from either evaluation's factors (the BLUPs
        # [L] Q_t^-T W_t w), as a fit leaves them, and from a fresh evaluation
        from_inverse = model.estimates(theta), model.log_likelihood(theta)
        model._evaluate(theta, True)
        from_factor = model.estimates(theta), model.log_likelihood(theta)
        model._state = None
        fresh = model.estimates(theta), model.log_likelihood(theta)
        for other in (from_factor, fresh):
            for ours, theirs in zip(from_inverse[0], other[0]):
                np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-13)
            assert from_inverse[1] == pytest.approx(other[1], rel=1e-13)


def test_per_task_factor_and_solve_against_numpy():
    """The per-task kernels: log |M_t|, Q_t^T in the upper triangle and Q_t^-1 W_t, with M_t
    formed from N_t and the shift (the inverse path) or given (only its upper triangle
    read); NaN for a matrix that is not positive definite."""
    rng = np.random.default_rng(0)
    N = rng.normal(size=(6, 4, 7))
    N[:, :, :4] = N[:, :, :4] @ N[:, :, :4].transpose(0, 2, 1)  # A_t, symmetric
    shift = _positive_definite(4, 1)
    expected = N[:, :, :4] + shift
    Q = np.linalg.cholesky(expected)
    upper = np.triu_indices(4)
    M, W = np.empty((6, 4, 4)), np.empty_like(N)
    logdet = _shifted_factor_solve(N, M, W, shift)
    assert logdet == pytest.approx(np.linalg.slogdet(expected)[1].sum(), rel=1e-13)
    np.testing.assert_allclose(M[:, upper[0], upper[1]],
                               Q.transpose(0, 2, 1)[:, upper[0], upper[1]], rtol=1e-12)
    np.testing.assert_allclose(W, np.linalg.solve(Q, N), rtol=1e-10, atol=1e-12)
    lower_garbage = np.triu(expected) + np.tril(np.full((4, 4), np.nan), -1)
    W_given = N.copy()
    assert _factor_solve(lower_garbage, W_given) == pytest.approx(logdet, rel=1e-13)
    np.testing.assert_allclose(W_given, W, rtol=1e-13)
    indefinite = expected.copy()
    indefinite[3] -= 2.0 * np.linalg.eigvalsh(expected[3])[-1] * np.eye(4)
    assert np.isnan(_factor_solve(indefinite, N.copy()))
    assert np.isnan(_shifted_factor_solve(N, M, W, shift - 1e3 * np.eye(4)))


def test_standardized_moments():
    """J^T A_t J through the structure of the standardising J (diagonal but for its last
    row) equals the products; another J is refused."""
    rng = np.random.RandomState(0)
    A = rng.normal(size=(5, 4, 4))
    A = A + A.transpose(0, 2, 1)
    J = np.diag(rng.uniform(0.5, 2.0, 4))
    np.testing.assert_allclose(standardized_moments(A, J), J.T @ A @ J, rtol=1e-13)
    J[3, :3] = rng.normal(size=3)  # the intercept's row: the features centred
    np.testing.assert_allclose(standardized_moments(A, J), J.T @ A @ J, rtol=1e-13)
    J[0, 1] = 1.0
    with pytest.raises(ValueError, match="diagonal but for its last row"):
        standardized_moments(A, J)


@pytest.mark.parametrize("layout", ["long", "wide", "shared", "sparse"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_moment_rows_are_the_rows_of_the_moments(layout, fit_intercept):
    """``task_moments(rows=...)``: the rows of the random columns of every task's moments and
    their sum over tasks, as the whole (T, p, p) moments give them (long, wide with missing
    labels, wide with every label, sparse X; a column far from its zero), the same after the
    standardising congruence; and the same deviance, gradient and Hessian from them."""
    X, y, task_ids = _long(T=6, d=4, seed=4)
    X[:, 1] += 1e4  # far from its zero: the moments are those of the centred columns
    if layout == "long":
        problem = Problem(X, y, task_index=task_ids)
    else:
        Y = np.full((len(y), 6), np.nan)
        Y[np.arange(len(y)), task_ids] = y
        if layout == "shared":
            Y = np.where(np.isnan(Y), y[:, None] + 0.5, Y)
        problem = Problem(sp.csr_matrix(X) if layout == "sparse" else X, np.nan_to_num(Y),
                          np.isfinite(Y))
    A, c, s, n, origins = task_moments(problem, fit_intercept)
    random = np.array([0, 2, 4] if fit_intercept else [0, 2])
    rows, c_rows, s_rows, n_rows, origins_rows = task_moments(problem, fit_intercept,
                                                              rows=random)
    assert isinstance(rows, MomentRows) and rows.rows.shape == (6, len(random), A.shape[1])
    scale = np.abs(A).max()
    np.testing.assert_allclose(rows.rows, A[:, random], rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(rows.total, A.sum(axis=0), rtol=0, atol=1e-12 * scale)
    for ours, theirs in zip((c_rows, s_rows, n_rows, *origins_rows), (c, s, n, *origins)):
        np.testing.assert_array_equal(ours, theirs)
    J = np.diag(np.linspace(0.5, 2.0, A.shape[1]))
    if fit_intercept:
        J[-1, :-1] = [0.3, -0.5, 0.1, 2.0]
    full, kept = standardized_moments(A, J), standardized_moments(rows, J)
    scale = np.abs(full).max()
    np.testing.assert_allclose(kept.rows, full[:, random], rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(kept.total, full.sum(axis=0), rtol=0, atol=1e-10 * scale)
    for reml in (False, True):
        model = MixedModel(full, c @ J, s, n, random, reml)
        from_rows = MixedModel(kept, c @ J, s, n, random, reml)
        theta = np.linalg.cholesky(_positive_definite(len(random), 3))[model._tril]
        for one in (model, from_rows):
            one.value_, one.gradient_ = one.deviance(theta)
            one.hessian_ = one.hessian()
        assert from_rows.value_ == pytest.approx(model.value_, rel=1e-12)
        np.testing.assert_allclose(from_rows.gradient_, model.gradient_, rtol=1e-8,
                                   atol=1e-10 * np.abs(model.gradient_).max())
        np.testing.assert_allclose(from_rows.hessian_, model.hessian_, rtol=1e-8,
                                   atol=1e-10 * np.abs(model.hessian_).max())
    if fit_intercept:  # J's last row reads the intercept's row of the moments
        with pytest.raises(ValueError, match="must hold the last one"):
            standardized_moments(MomentRows(rows.rows[:, :2], random[:2], rows.total), J)
        with pytest.raises(ValueError, match="must hold the random columns"):
            MixedModel(kept, c @ J, s, n, [0, 1], True)


@pytest.mark.parametrize("random", [[10], [0, 3, 10]])
@pytest.mark.parametrize("reml", [False, True])
def test_wide_fixed_effects_through_the_tasks_columns(random, reml, monkeypatch):
    """More fixed effects than columns in the tasks' stack (3 tasks, 10 features, a random
    intercept, or slopes too; a rank-deficient design): the deviance, its gradient and both
    Hessians through the stack's columns (``_wide``, ``O(T q p^2)``) equal those through the
    p x p products."""
    rng = np.random.RandomState(5)
    T, d = 3, 10
    task_ids = np.repeat(np.arange(T), 25)
    X = rng.normal(size=(len(task_ids), d))
    X[:, 9] = X[:, 8] - X[:, 7]  # collinear: fitted in a basis of 9 columns and the intercept
    y = X @ rng.normal(size=d) + rng.normal(size=T)[task_ids] + rng.normal(size=len(task_ids))
    A, c, s, n = task_moments(Problem(X, y, task_index=task_ids), True)[:4]
    model = MixedModel(A, c, s, n, random, reml)
    assert model.rank == d and model._wide(T * len(random))
    theta = np.linalg.cholesky(_positive_definite(len(random), 4))[model._tril]
    results = []
    for wide in (True, False):
        monkeypatch.setattr(MixedModel, "_wide", lambda self, n_columns, wide=wide: wide)
        value, gradient = model.deviance(theta)
        results.append((value, gradient, model.hessian(), model.hessian(expected=True)))
    (value, *arrays), (reference, *references) = results
    assert value == pytest.approx(reference, rel=1e-12)
    for ours, theirs in zip(arrays, references):
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-11 * np.abs(theirs).max())


@pytest.mark.parametrize("diagonal", [False, True], ids=["full", "diag"])
@pytest.mark.parametrize("reml_curvature", ["exact", "partial"])
def test_newton_reaches_the_lbfgs_optimum_in_few_iterations(reml_curvature, diagonal,
                                                            monkeypatch):
    """Newton's method on Psi and L-BFGS-B alone stop at the same optimum (an interior one,
    3 random effects, full or diagonal Psi); Newton in fewer than 10 iterations, where
    L-BFGS-B needs several times as many, also with REML's second curvature term left out
    (as on large problems)."""
    from skmtl.linear import _solver_hierarchical
    from skmtl.linear._solver_hierarchical import minimize_covariance

    if reml_curvature == "partial":
        monkeypatch.setattr(_solver_hierarchical, "_REML_CURVATURE", 0)
    X, y, task_ids = _long(T=60, seed=3)
    _, (A, c, s, n) = _moments(X, y, task_ids)
    for reml in (False, True):
        model = MixedModel(A, c, s, n, [0, 1, 2], reml, diagonal=diagonal)
        start = model.start()
        theta, n_iter, converged = model.newton(start, max_iter=100, tol=1e-10)
        reference, n_lbfgs = minimize_covariance(
            model.deviance, model.covariance_gradient, start, 0, 3, max_iter=1000, tol=1e-10,
            value=model.value, diagonal=diagonal)
        assert converged and n_iter < 10
        if not diagonal:  # (on 3 variances L-BFGS-B is quick too: 10 to 14 iterations)
            assert n_lbfgs > 2 * n_iter
        assert model.value(theta) <= model.value(reference) + 1e-9 * abs(model.value(theta))
        for ours, theirs in zip(model.estimates(theta), model.estimates(reference)):
            np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)
        assert model.fit(start, max_iter=100, tol=1e-10)[1] == n_iter


def test_expected_information_from_a_sample_of_tasks(monkeypatch):
    """Above 2 x 256 tasks the expected information (Newton's first directions) comes from
    every k-th task, k = T // 256: on 1,024 tasks within 5% of the full sum (measured:
    1.7%, spectral norm), positive semi-definite; the fit reaches the same optimum in as
    many iterations as with every task."""
    from skmtl.linear import _solver_hierarchical

    X, y, task_ids = _long(T=1024, seed=5, rows=(5, 15))
    _, (A, c, s, n) = _moments(X, y, task_ids)
    for reml in (False, True):
        model = MixedModel(A, c, s, n, [0, 1, 2], reml)
        start = np.eye(3)[model._tril]
        model._evaluate(start, True, inverse=True)
        sampled = model.hessian(expected=True)
        with monkeypatch.context() as patch:
            patch.setattr(_solver_hierarchical, "_INFORMATION_TASKS", 10**9)
            full = model.hessian(expected=True)  # at the same evaluation
            reference, n_full = model.fit(start, max_iter=100, tol=1e-10)
        theta, n_iter = model.fit(start, max_iter=100, tol=1e-10)
        assert np.linalg.norm(sampled - full, 2) < 0.05 * np.linalg.norm(full, 2)
        assert np.linalg.eigvalsh(sampled)[0] > -1e-10 * np.abs(sampled).max()
        assert n_iter == n_full
        np.testing.assert_allclose(theta, reference, rtol=1e-8, atol=1e-9)


def test_a_boundary_optimum_matches_lbfgs_alone():
    """On Exam (5 random effects) the covariance at the optimum has rank 3: Newton's steps are
    cut to keep Psi positive definite and it stops short, Newton on a factor of lower rank
    takes the fit to the boundary, and it ends at the optimum L-BFGS-B alone reaches from
    the same start, in 11 and 12 iterations (the barrier's path took 67 and 66)."""
    from skmtl.datasets import load_exam
    from skmtl.linear._solver_hierarchical import minimize_covariance

    exam = load_exam()
    codes = np.unique(exam.task_ids, return_inverse=True)[1]
    A, c, s, n = task_moments(Problem(exam.data, exam.target, task_index=codes), True)[:4]
    for reml in (False, True):
        model = MixedModel(A, c, s, n, [0, 6, 7, 8, 10], reml)
        start = np.eye(5)[model._tril]
        assert not model.newton(start, max_iter=100, tol=1e-8)[2]
        theta, n_iter = model.fit(start, max_iter=1000, tol=1e-8)
        assert n_iter <= 20
        reference, _ = minimize_covariance(
            model.deviance, model.covariance_gradient, start, 0, 5, max_iter=1000, tol=1e-8,
            value=model.value)
        assert model.value(theta) <= model.value(reference) + 1e-10 * model.value(reference)
        assert np.linalg.eigvalsh(model.estimates(theta)[2])[1] < 1e-8
        for ours, theirs in zip(model.estimates(theta), model.estimates(reference)):
            np.testing.assert_allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize("path", ["factor", "barrier"])
@pytest.mark.parametrize("reml", [False, True])
def test_many_zero_variances_at_the_boundary(reml, path, monkeypatch):
    """Half the slopes do not vary between tasks (8 random effects, several variances 0 at
    the optimum): Newton hands over to Newton on a factor of the boundary's rank (resumed
    after an escape with REML, where the projected Newton point dropped a variance that
    should grow), or, where that fails (forced here), to the barrier's stages. Both end at
    L-BFGS-B's optimum (alone, from the same start, it needs several times the iterations),
    where the gradient in Psi is positive semi-definite and orthogonal to Psi; the factor
    in 8 and 9 iterations, where the barrier took 56 and 53."""
    from skmtl.linear._solver_hierarchical import minimize_covariance

    if path == "barrier":
        monkeypatch.setattr(MixedModel, "_factor_newton",
                            lambda self, theta, **kwargs: (theta, 0, False))

    rng = np.random.RandomState(0)
    T, n, d = 300, 20, 8
    X = rng.normal(size=(T * n, d))
    task_ids = np.repeat(np.arange(T), n)
    coef = rng.normal(size=d) + np.where(np.arange(d) < 4, 0.3, 0.0) * rng.normal(size=(T, d))
    y = (np.einsum("ij,ij->i", X, coef[task_ids]) + rng.normal(size=T)[task_ids]
         + rng.normal(size=T * n))
    _, (A, c, s, n_rows) = _moments(X, y, task_ids)
    model = MixedModel(A, c, s, n_rows, np.arange(d + 1), reml)
    start = np.eye(d + 1)[model._tril]
    theta, n_iter = model.fit(start, max_iter=1000, tol=1e-8)
    reference, n_lbfgs = minimize_covariance(
        model.deviance, model.covariance_gradient, start, 0, d + 1, max_iter=5000, tol=1e-8,
        value=model.value)
    value = model.value(theta)
    assert value <= model.value(reference) + 1e-10 * abs(value)
    assert n_iter < (15 if path == "factor" else 100) and n_lbfgs > 2 * n_iter
    Psi = model.factor(theta) @ model.factor(theta).T
    assert np.sum(np.linalg.eigvalsh(Psi) < 1e-8) >= 2  # variances at zero
    _, H = model.covariance_gradient(theta)
    assert np.linalg.eigvalsh(H)[0] > -5e-8 * abs(value)
    np.testing.assert_allclose(H @ Psi, 0.0, atol=5e-8 * abs(value))


@pytest.mark.parametrize("diagonal", [False, True], ids=["full", "diag"])
@pytest.mark.parametrize("reml", [False, True])
def test_factor_newton_derivatives_against_finite_differences(reml, diagonal):
    """Newton on a factor ``B`` (q x r) of Psi: in the entries of ``B`` on and below its
    pivoted diagonal (``_trapezoidal``, which keeps ``B B^T``; for a diagonal Psi, the one
    entry of each column), the gradient ``2 H B`` and the Hessian ``J^T hess J + 2 (H (x)
    I_r)`` are central differences of the deviance and of that gradient."""
    from skmtl.linear._solver_hierarchical import _diagonal_entries, _trapezoidal

    X, y, task_ids = _long(T=12, d=2, seed=5)
    _, (A, c, s, n) = _moments(X, y, task_ids)
    model = MixedModel(A, c, s, n, [0, 1, 2], reml, diagonal=diagonal)
    if diagonal:  # the variances of effects 0 and 2, that of 1 at 0
        B, free = _diagonal_entries(np.array([[0.8, 0.0], [0.0, 0.0], [0.0, -1.3]]))
        np.testing.assert_array_equal(free, [0, 5])
    else:
        B0 = np.random.RandomState(1).normal(size=(3, 2))
        B, free = _trapezoidal(B0)
        np.testing.assert_allclose(B @ B.T, B0 @ B0.T, rtol=1e-12)
        assert len(free) == 5 and np.all(B.ravel()[np.setdiff1d(np.arange(6), free)] == 0.0)
    theta = model._theta_of
    np.testing.assert_allclose(model._psi(theta(B)), B @ B.T, atol=1e-12)

    def gradient(B):
        _, H = model.covariance_gradient(theta(B))
        return (2.0 * H @ B).ravel()[free]

    H = model.covariance_gradient(theta(B))[1]
    grad = (2.0 * H @ B).ravel()[free]
    hess = model._factor_system(B, free, H, expected=False)
    h = 1e-5
    steps = [np.zeros(B.size) for _ in free]
    for step, index in zip(steps, free):
        step[index] = h
    value_differences = [(model.value(theta(B + e.reshape(B.shape)))
                          - model.value(theta(B - e.reshape(B.shape)))) / (2 * h)
                         for e in steps]
    np.testing.assert_allclose(grad, value_differences, rtol=1e-6)
    np.testing.assert_allclose(gradient(B), grad, rtol=1e-10)
    differences = np.column_stack([
        (gradient(B + e.reshape(B.shape)) - gradient(B - e.reshape(B.shape))) / (2 * h)
        for e in steps])
    np.testing.assert_allclose(hess, differences, rtol=1e-5, atol=1e-6 * np.abs(hess).max())


def test_log_likelihood_against_dense_marginal_density():
    """At any L, the profiled ML log-likelihood is the Gaussian density of each task's rows
    with the dense marginal covariance sigma^2 (I + Z L L^T Z^T), at the profiled beta and
    sigma^2."""
    X, y, task_ids = _long(T=6, rows=(4, 9))
    rows = [np.flatnonzero(task_ids == t) for t in np.unique(task_ids)]
    A, c, s, n, (x_origin, y_origin) = task_moments(Problem(X, y, task_index=task_ids), True)
    # the moments are those of X and y from their means over the labels
    np.testing.assert_allclose(x_origin, X.mean(axis=0), rtol=1e-12)
    assert y_origin == pytest.approx(y.mean(), rel=1e-12)
    X, y = X - x_origin, y - y_origin
    model = MixedModel(A, c, s, n, [0, 2], reml=False)
    theta = np.array([0.7, -0.4, 1.3])
    beta, sigma2, Sigma, U = model.estimates(theta)
    D = np.column_stack([X, np.ones(len(y))])
    dense = sum(
        multivariate_normal(D[r] @ beta, sigma2 * np.eye(len(r))
                            + D[r][:, [0, 2]] @ Sigma @ D[r][:, [0, 2]].T).logpdf(y[r])
        for r in rows)
    assert model.log_likelihood(theta) == pytest.approx(dense, rel=1e-12)
    # beta is the generalised least squares solution, U the posterior means
    V = [sigma2 * np.eye(len(r)) + D[r][:, [0, 2]] @ Sigma @ D[r][:, [0, 2]].T for r in rows]
    gls = np.linalg.solve(sum(D[r].T @ np.linalg.solve(v, D[r]) for r, v in zip(rows, V)),
                          sum(D[r].T @ np.linalg.solve(v, y[r]) for r, v in zip(rows, V)))
    np.testing.assert_allclose(beta, gls, rtol=1e-10)
    blup = [Sigma @ D[r][:, [0, 2]].T @ np.linalg.solve(v, y[r] - D[r] @ beta)
            for r, v in zip(rows, V)]
    np.testing.assert_allclose(U, blup, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", ["ml", "reml"])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_statsmodels_mixedlm(method, seed):
    """The same random-effects structure as MixedLM: fixed effects, BLUPs, covariance,
    noise and log-likelihood agree (MixedLM's own convergence limits the tolerance)."""
    sm = pytest.importorskip("statsmodels.regression.mixed_linear_model")
    X, y, task_ids = _long(T=40, seed=seed)
    model = HierarchicalRegressor(method=method).fit(X, y, task_ids=task_ids)
    D = np.column_stack([X, np.ones(len(y))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = sm.MixedLM(y, D, groups=task_ids, exog_re=D).fit(reml=method == "reml")
    assert ref.converged
    assert model.log_likelihood_ >= ref.llf - 1e-6  # never worse than statsmodels' optimum
    assert model.log_likelihood_ == pytest.approx(ref.llf, abs=1e-4)
    np.testing.assert_allclose(model.shared_coef_, ref.fe_params[:2], atol=1e-4)
    assert model.shared_intercept_ == pytest.approx(ref.fe_params[2], abs=1e-4)
    blups = np.array([ref.random_effects[t] for t in range(40)])
    np.testing.assert_allclose(model.coef_, ref.fe_params[:2] + blups[:, :2], atol=1e-4)
    np.testing.assert_allclose(model.intercept_, ref.fe_params[2] + blups[:, 2], atol=1e-4)
    np.testing.assert_allclose(model.task_covariance_, ref.cov_re, atol=1e-3)
    assert model.noise_variance_ == pytest.approx(ref.scale, rel=1e-4)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_many_features_few_tasks_match_mixedlm(sparse):
    """Wide data with more features than tasks (5 targets with missing labels on 40 binary
    features, a random intercept: the MoleculeACE regime, where the fit goes through the
    moments' rows and the tasks' columns): the fixed effects, BLUPs, variance, noise and
    REML log-likelihood of MixedLM on the observed labels."""
    sm = pytest.importorskip("statsmodels.regression.mixed_linear_model")
    rng = np.random.RandomState(6)
    n, d, T = 300, 40, 5
    X = (rng.uniform(size=(n, d)) < 0.2).astype(float)
    Y = (X @ rng.normal(size=d))[:, None] + rng.normal(size=T) + rng.normal(size=(n, T))
    Y[rng.uniform(size=Y.shape) < 0.6] = np.nan
    model = HierarchicalRegressor(random_slopes=None).fit(
        sp.csr_matrix(X) if sparse else X, Y)
    rows, tasks = np.nonzero(np.isfinite(Y))
    D = np.column_stack([X[rows], np.ones(len(rows))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = sm.MixedLM(Y[rows, tasks], D, groups=tasks, exog_re=D[:, -1:]).fit()
    np.testing.assert_allclose(model.shared_coef_, ref.fe_params[:d], atol=1e-4)
    assert model.shared_intercept_ == pytest.approx(ref.fe_params[d], abs=1e-4)
    blups = np.array([np.asarray(ref.random_effects[t])[0] for t in range(T)])
    np.testing.assert_allclose(model.intercept_, ref.fe_params[d] + blups, atol=1e-4)
    assert model.task_covariance_[0, 0] == pytest.approx(np.asarray(ref.cov_re)[0, 0], rel=1e-3)
    assert model.noise_variance_ == pytest.approx(ref.scale, rel=1e-4)
    assert model.log_likelihood_ == pytest.approx(ref.llf, abs=1e-4)


def test_matches_mixedlm_random_slope_on_exam():
    """The benchmark's mixed model on the Exam data (random intercept and a random slope on
    standLRT): the same fixed effects and BLUPs, to 1e-4."""
    sm = pytest.importorskip("statsmodels.regression.mixed_linear_model")
    from skmtl.datasets import load_exam

    exam = load_exam()
    slope = exam.feature_names.index("standLRT")
    X, y, task_ids = exam.data, exam.target, exam.task_ids
    model = HierarchicalRegressor(random_slopes=[slope]).fit(X, y, task_ids=task_ids)
    # MixedLM needs a full-rank design: the independent columns, the slope kept
    D = np.column_stack([X, np.ones(len(y))])
    keep = []
    for j in [slope] + [j for j in range(D.shape[1]) if j != slope]:
        if np.linalg.matrix_rank(D[:, keep + [j]]) == len(keep) + 1:
            keep.append(j)
    Z = D[:, [slope, X.shape[1]]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = sm.MixedLM(y, D[:, keep], groups=task_ids, exog_re=Z).fit()
    tasks = model.tasks_
    blups = np.array([ref.random_effects[t] for t in tasks])
    fixed = np.asarray(D[:, keep] @ ref.fe_params)
    random = np.einsum("ij,ij->i", Z, blups[np.searchsorted(tasks, task_ids)])
    np.testing.assert_allclose(model.predict(X, task_ids=task_ids), fixed + random, atol=1e-4)
    np.testing.assert_allclose(model.task_covariance_, ref.cov_re, rtol=1e-3, atol=1e-5)
    # (the REML likelihood of a rank-deficient X depends on the basis of its fixed effects,
    # here a subset of columns against an orthonormal basis: not compared)


@pytest.mark.parametrize("random_slopes", ["all", [1, 2]], ids=["all", "list"])
@pytest.mark.parametrize("method", ["reml", "ml"])
def test_collinear_random_columns_fit_their_range(random_slopes, method):
    """A feature that is another plus a constant (chem97's gcsecnt beside gcsescore): the
    covariance is fitted over the random columns' range, so the fit is the model without
    the redundant feature, mapped back. Its covariance puts no variance on the combination
    that is zero on every row of the standardised columns (there ``x3 = x1``: the two share
    their slopes' variance equally, the intercept takes the shift), and its image on the
    kept columns is the reduced model's."""
    X, y, task_ids = _long(T=40, d=2, seed=4)
    Xc = np.column_stack([X, X[:, 1] + 3.0])  # [x0, x1, x3], x3 - x1 - 3 = 0
    full = HierarchicalRegressor(random_slopes=random_slopes, method=method).fit(
        Xc, y, task_ids=task_ids)
    reduced = HierarchicalRegressor(
        random_slopes=random_slopes if random_slopes == "all" else [1], method=method).fit(
        X, y, task_ids=task_ids)
    np.testing.assert_allclose(full.predict(Xc, task_ids=task_ids),
                               reduced.predict(X, task_ids=task_ids), atol=1e-6)
    if method == "ml":  # (REML's value depends on how aliased columns are coded)
        assert full.log_likelihood_ == pytest.approx(reduced.log_likelihood_, rel=1e-10)
    Sigma = full.task_covariance_
    columns = full.random_columns_.tolist()  # [.., 1, 2, intercept 3]
    null = np.zeros(len(columns))
    null[[columns.index(1), columns.index(2)]] = [1.0, -1.0]
    np.testing.assert_allclose(Sigma @ null, 0.0, atol=1e-8 * np.abs(Sigma).max())
    # (u1, u3, v) act as (u1 + u3, v + 3 u3) on [x1, 1]; u0 as itself
    image = np.zeros((len(columns) - 1, len(columns)))
    for row, column in enumerate(reduced.random_columns_):  # the reduced intercept is 2
        image[row, columns.index(3 if column == 2 else column)] = 1.0
    image[list(reduced.random_columns_).index(1), columns.index(2)] = 1.0
    image[-1, columns.index(2)] = 3.0
    np.testing.assert_allclose(image @ Sigma @ image.T, reduced.task_covariance_,
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("shift", [0.0, 3.0])
def test_a_diagonal_covariance_shares_the_variance_of_equal_columns_equally(shift):
    """A diagonal Sigma with a feature repeated (or shifted by a constant): the likelihood
    depends on the two slopes' variances through their sum only, and the fit's split was
    arbitrary, set by the column order (0.68 and 1.24 with the copy last, 0.96 and 0.96 with
    it first); now equal, with equal coefficients, wherever the copy is, and the same
    likelihood and predictions as before."""
    X, y, task_ids = _long(T=40, d=2, seed=4)
    last = np.column_stack([X, X[:, 0] + shift])
    first = np.column_stack([X[:, 0] + shift, X])
    fits = [HierarchicalRegressor(covariance_type="diag").fit(Z, y, task_ids=task_ids)
            for Z in (last, first)]
    for model, (j, k) in zip(fits, [(0, 2), (1, 0)]):
        Sigma = model.task_covariance_
        position = model.random_columns_.tolist()
        assert Sigma[position.index(j), position.index(j)] == pytest.approx(
            Sigma[position.index(k), position.index(k)], rel=1e-12)
        np.testing.assert_allclose(model.coef_[:, j], model.coef_[:, k], rtol=1e-10)
    a, b = fits
    assert a.log_likelihood_ == pytest.approx(b.log_likelihood_, rel=1e-9)
    np.testing.assert_allclose(a.coef_[:, [0, 1, 2]], b.coef_[:, [1, 2, 0]], atol=1e-6)
    # (two optimiser runs, from columns in another order: equal to its accuracy)
    np.testing.assert_allclose(a.predict(last, task_ids=task_ids),
                               b.predict(first, task_ids=task_ids), atol=1e-6)
    # the split left as the optimiser ended: the same likelihood and predictions
    import skmtl.linear._hierarchical as module

    original = module._shared_equally
    module._shared_equally = lambda gram, theta: theta
    try:
        raw = HierarchicalRegressor(covariance_type="diag").fit(last, y, task_ids=task_ids)
    finally:
        module._shared_equally = original
    assert raw.log_likelihood_ == pytest.approx(a.log_likelihood_, rel=1e-12)
    np.testing.assert_allclose(raw.predict(last, task_ids=task_ids),
                               a.predict(last, task_ids=task_ids), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("params", [{"method": "ml"}, {}, {"random_slopes": None},
                                    {"covariance_type": "full"}])
def test_one_task_is_least_squares(params):
    """One task: the deviations are not identifiable from the mean, their variance is 0
    and the coefficients are ordinary least squares. REML's likelihood does not depend on
    Sigma there: it returned its starting point (variances of 0.95 to 1.7, or the noise
    variance for a random intercept)."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(50, 3))
    y = X @ [1.0, -2.0, 0.5] + 0.3 * rng.normal(size=50) + 1.0
    model = HierarchicalRegressor(**params).fit(X, y)
    ols = LinearRegression().fit(X, y)
    np.testing.assert_allclose(model.coef_[0], ols.coef_, atol=1e-6)
    assert model.intercept_[0] == pytest.approx(ols.intercept_, abs=1e-6)
    np.testing.assert_allclose(model.task_covariance_, 0.0, atol=1e-8)
    # the noise variance: the residual sum of squares over n (ML) or n - 4 (REML)
    rss = np.sum((y - ols.predict(X)) ** 2)
    dof = 50 if params.get("method") == "ml" else 46
    assert model.noise_variance_ == pytest.approx(rss / dof, rel=1e-8)


def test_identical_tasks_share_the_pooled_fit():
    """Tasks with identical data: every BLUP is zero, each task's coefficients are the pooled
    least-squares fit."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(30, 2))
    y = X @ [1.0, 0.5] + 0.5 * rng.normal(size=30)
    Y = np.column_stack([y] * 4)
    model = HierarchicalRegressor().fit(X, Y)
    ols = LinearRegression().fit(X, y)
    np.testing.assert_allclose(model.coef_, np.tile(ols.coef_, (4, 1)), atol=1e-8)
    np.testing.assert_allclose(model.intercept_, ols.intercept_, atol=1e-8)


def test_wide_long_sparse_and_units_agree():
    X, y, task_ids = _long(T=12, seed=3)
    long = HierarchicalRegressor().fit(X, y, task_ids=task_ids)
    Y = np.full((len(y), 12), np.nan)
    Y[np.arange(len(y)), task_ids] = y
    wide = HierarchicalRegressor().fit(X, Y)
    np.testing.assert_allclose(wide.coef_, long.coef_, atol=1e-10)
    np.testing.assert_allclose(wide.intercept_, long.intercept_, atol=1e-10)
    sparse = HierarchicalRegressor().fit(sp.csr_matrix(X), y, task_ids=task_ids)
    np.testing.assert_allclose(sparse.coef_, long.coef_, atol=1e-10)
    # the model is equivariant to the features' units and origin
    scaled = HierarchicalRegressor().fit(X * [100.0, 0.01] + 7.0, y, task_ids=task_ids)
    np.testing.assert_allclose(scaled.predict(X * [100.0, 0.01] + 7.0, task_ids=task_ids),
                               long.predict(X, task_ids=task_ids), atol=1e-6)
    assert scaled.log_likelihood_ == pytest.approx(long.log_likelihood_, abs=1e-6)


@pytest.mark.parametrize("Estimator", [HierarchicalRegressor, HierarchicalClassifier])
def test_features_in_tiny_units_are_not_taken_for_constant(Estimator):
    """X * 1e-16 (masses in kg of molecules: 1e-25) is the same model in other units; the
    test of a constant feature was absolute (spread <= 1e-16), and every slope was dropped:
    predictions moved by 80%. A feature constant to rounding still counts as constant."""
    X, y, task_ids = _long(T=12, seed=3)
    if Estimator is HierarchicalClassifier:
        y = (y > np.median(y)).astype(int)

    def predicted(model, X):
        fitted = model.fit(X, y, task_ids=task_ids)
        if Estimator is HierarchicalClassifier:
            return fitted.predict_proba(X, task_ids=task_ids)[:, 1]
        return fitted.predict(X, task_ids=task_ids)

    reference = predicted(Estimator(), X)
    for factor in (1e-16, 1e-20, 1e-100):
        np.testing.assert_allclose(predicted(Estimator(), X * factor), reference,
                                   rtol=1e-8, atol=1e-10, err_msg=f"X * {factor:g}")
    # a third feature 1e8 plus rounding noise: constant, no slope of 1e16
    noisy = np.column_stack([X, 1e8 + 1e8 * np.finfo(float).eps * (np.arange(len(X)) % 2)])
    model = Estimator(random_slopes=None).fit(noisy, y, task_ids=task_ids)
    assert np.abs(model.coef_[:, 2]).max() < 1e-6  # scaled as a feature, it would be ~1e7
    np.testing.assert_allclose(predicted(Estimator(random_slopes=None), noisy),
                               predicted(Estimator(random_slopes=None), X), atol=1e-8)


def test_shrinkage_beats_separate_and_pooled_fits():
    """Many small tasks around a mean: the posterior means are closer to the true task
    coefficients than each task's own least squares and than the pooled fit."""
    rng = np.random.RandomState(0)
    T, n, d = 150, 6, 2
    task_ids = np.repeat(np.arange(T), n)
    X = rng.normal(size=(T * n, d))
    true = np.array([1.0, -1.0]) + 0.4 * rng.normal(size=(T, d))
    y = np.einsum("ij,ij->i", X, true[task_ids]) + rng.normal(size=T * n)
    model = HierarchicalRegressor(fit_intercept=False).fit(X, y, task_ids=task_ids)
    own = np.array([np.linalg.lstsq(X[task_ids == t], y[task_ids == t], rcond=None)[0]
                    for t in range(T)])
    pooled = np.linalg.lstsq(X, y, rcond=None)[0]
    error = np.mean((model.coef_ - true) ** 2)
    assert error < 0.5 * np.mean((own - true) ** 2)
    assert error < 0.8 * np.mean((pooled - true) ** 2)
    # the learned covariance is near the true 0.16 I
    np.testing.assert_allclose(model.task_covariance_, 0.16 * np.eye(2), atol=0.1)


def test_random_intercept_only_and_unknown_task():
    X, y, task_ids = _long(T=10, seed=2)
    model = HierarchicalRegressor(random_slopes=None, unknown_task="shared").fit(
        X, y, task_ids=task_ids)
    assert model.task_covariance_.shape == (1, 1)
    np.testing.assert_array_equal(model.random_columns_, [2])
    # one slope for all tasks, intercepts that differ
    np.testing.assert_allclose(model.coef_, np.tile(model.shared_coef_, (10, 1)))
    assert np.ptp(model.intercept_) > 0.5
    new = model.predict(X[:5], task_ids=np.full(5, 99))
    np.testing.assert_allclose(new, X[:5] @ model.shared_coef_ + model.shared_intercept_)
    mask = HierarchicalRegressor(random_slopes=[True, False]).fit(X, y, task_ids=task_ids)
    np.testing.assert_array_equal(mask.random_columns_, [0, 2])


@pytest.mark.parametrize("random_slopes, fit_intercept, message", [
    ([5], True, "feature index 5, out of range for 2 features"),
    ([0, 0], True, "repeats a feature index"),
    ([True], True, "one entry per feature"),
    ([0.5], True, "list of feature indices"),
    (None, False, "no random effect"),
])
def test_bad_random_slopes(random_slopes, fit_intercept, message):
    X, y, task_ids = _long(T=4)
    with pytest.raises(ValueError, match=message):
        HierarchicalRegressor(random_slopes=random_slopes, fit_intercept=fit_intercept).fit(
            X, y, task_ids=task_ids)


@pytest.mark.parametrize("Estimator", [HierarchicalRegressor, HierarchicalClassifier])
def test_random_slopes_by_column_name(Estimator):
    """A DataFrame's column names pick the random slopes, as their indices do (and as a
    ColumnTransformer takes them); names need column names, and must be among them."""
    pd = pytest.importorskip("pandas")
    X, y, task_ids = _long(T=12, d=3)
    if Estimator is HierarchicalClassifier:
        y = (y > np.median(y)).astype(int)
    frame = pd.DataFrame(X, columns=["age", "score", "hours"])
    named = Estimator(random_slopes=["hours", "age"]).fit(frame, y, task_ids=task_ids)
    indexed = Estimator(random_slopes=[2, 0]).fit(X, y, task_ids=task_ids)
    np.testing.assert_array_equal(named.random_columns_, [0, 2, 3])
    np.testing.assert_allclose(named.coef_, indexed.coef_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(named.task_covariance_, indexed.task_covariance_, rtol=1e-12,
                               atol=1e-14)
    with pytest.raises(ValueError, match="random_slopes names 'Hours', which is not a column "
                                         "of X \\(its columns: \\['age', 'score', 'hours'\\]\\)"):
        Estimator(random_slopes=["Hours"]).fit(frame, y, task_ids=task_ids)
    with pytest.raises(ValueError, match="random_slopes names columns \\(\\['hours'\\]\\), "
                                         "but X has no column names"):
        Estimator(random_slopes=["hours"]).fit(X, y, task_ids=task_ids)


@pytest.mark.parametrize("random_slopes", ["all", None])
def test_one_label_per_task_is_refused(random_slopes):
    """One label per task: the random intercept's variance and the noise variance enter the
    likelihood only through their sum (the fit returned an arbitrary split, 1.22 and 1.22,
    without a warning); lme4 stops on such data too. One task with a second label is
    enough."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2))
    y = X @ [1.0, 2.0] + rng.normal(size=50) + rng.normal(size=50)
    model = HierarchicalRegressor(random_slopes=random_slopes)
    message = "needs a task with two labels or more: every task has one label"
    with pytest.raises(ValueError, match=message):
        model.fit(X, y, task_ids=np.arange(50))
    Y = np.full((50, 50), np.nan)  # wide: one label per column
    Y[np.arange(50), np.arange(50)] = y
    with pytest.raises(ValueError, match=message):
        model.fit(X, Y)
    task_ids = np.append(np.arange(49), 0)  # task 0 has two labels
    fitted = model.fit(X, y, task_ids=task_ids)
    assert fitted.noise_variance_ > 0 and np.all(np.isfinite(fitted.coef_))


@pytest.mark.parametrize("Estimator", [HierarchicalRegressor, HierarchicalClassifier])
def test_auto_covariance_is_full_up_to_as_many_entries_as_tasks(Estimator):
    """covariance_type="auto" (the default): 2 random slopes and the intercept, a full Sigma
    of 6 entries from 6 tasks, a diagonal one from 5; the fit is then that of the type
    chosen."""
    rng = np.random.default_rng(0)
    for n_tasks, kind in [(6, "full"), (5, "diag")]:
        task_ids = np.repeat(np.arange(n_tasks), 30)
        X = rng.normal(size=(len(task_ids), 2))
        W = rng.normal(size=2) + 0.5 * rng.normal(size=(n_tasks, 2))
        y = np.einsum("ij,ij->i", X, W[task_ids]) + rng.normal(size=len(task_ids))
        if Estimator is HierarchicalClassifier:
            y = (y > 0).astype(int)
        auto = Estimator().fit(X, y, task_ids=task_ids)
        assert auto.covariance_type == "auto" and auto.covariance_type_ == kind
        same = Estimator(covariance_type=kind).fit(X, y, task_ids=task_ids)
        assert same.covariance_type_ == kind
        np.testing.assert_array_equal(auto.coef_, same.coef_)
        np.testing.assert_array_equal(auto.task_covariance_, same.task_covariance_)


def test_auto_covariance_does_not_overfit_few_small_tasks():
    """12 tasks of 6 training rows, 5 features whose slopes do not vary: the full Sigma's 21
    entries overfit (held-out MSE 1.50 over 3 draws, the noise's variance being 1); "auto"
    takes the diagonal one (1.14; a random intercept only, 1.11)."""
    errors = {"auto": [], "full": []}
    for seed in range(3):
        rng = np.random.default_rng(seed)
        task_ids = np.repeat(np.arange(12), 12)
        X = rng.normal(size=(len(task_ids), 5))
        y = (X @ rng.normal(size=5) + rng.normal(size=12)[task_ids]
             + rng.normal(size=len(task_ids)))
        train = np.tile(np.arange(12) < 6, 12)
        for kind in errors:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model = HierarchicalRegressor(covariance_type=kind).fit(
                    X[train], y[train], task_ids=task_ids[train])
            predicted = model.predict(X[~train], task_ids=task_ids[~train])
            errors[kind].append(np.mean((predicted - y[~train]) ** 2))
    assert np.mean(errors["auto"]) < 0.9 * np.mean(errors["full"])


@pytest.mark.parametrize("Estimator", [HierarchicalRegressor, HierarchicalClassifier])
def test_a_full_covariance_with_more_entries_than_labels_is_refused(Estimator):
    """Every slope random on wide data: a full covariance past Newton's 44 random effects with
    more entries than labels is refused before the fit (2,048 fingerprint bits: 2.1 million
    entries, a fit of hours); the error says what to pass instead, and each works. The
    default, covariance_type="auto", fits independent slopes there, as its docstring says
    (before, it was refused as "full" was)."""
    rng = np.random.default_rng(0)
    task_ids = np.repeat(np.arange(10), 20)
    X = rng.normal(size=(200, 60))
    y = X[:, :3] @ [1.0, -1.0, 0.5] + rng.normal(size=10)[task_ids] + rng.normal(size=200)
    if Estimator is HierarchicalClassifier:
        y = (y > 0).astype(int)
    message = (r"covariance of 1,891 entries \(61 random effects, the intercept's and the "
               r"random slopes'\) from 200 labels: .*\(random_slopes=None\)")
    with pytest.raises(ValueError, match=message):
        Estimator(covariance_type="full").fit(X, y, task_ids=task_ids)
    fitted = []
    for params, n_random in [({"random_slopes": None}, 1), ({"random_slopes": [0, 1]}, 3),
                             ({"covariance_type": "diag", "max_iter": 5}, 61),
                             ({"max_iter": 5}, 61)]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # (diag: 5 iterations)
            model = Estimator(**params).fit(X, y, task_ids=task_ids)
        assert model.task_covariance_.shape == (n_random, n_random)
        fitted.append(model)
    # "auto" is "diag" here: the same fit
    assert fitted[-1].covariance_type_ == "diag"
    np.testing.assert_array_equal(fitted[-1].coef_, fitted[-2].coef_)
    np.testing.assert_array_equal(fitted[-1].task_covariance_, fitted[-2].task_covariance_)
    # up to 44 random effects (990 entries), whatever the labels: 231 entries from 40 here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = Estimator().fit(X[:40, :20], y[:40], task_ids=task_ids[:40] // 10)
    assert model.task_covariance_.shape == (21, 21)


@pytest.mark.parametrize("Estimator", [HierarchicalRegressor, HierarchicalClassifier])
def test_auto_refuses_independent_slopes_too_costly_to_fit(Estimator):
    """600 features of 5 tasks: "auto" would fit 601 independent random effects, T q^3 = 1.1e9
    (a fit of many minutes; 2,048 fingerprint bits of 30 targets, hours): the classifier
    refuses before the moments are formed, naming the cost and what to pass instead; the
    regressor fits the spherical model instead (tests/linear/test_hierarchical_spherical.py);
    "diag" is not refused."""
    rng = np.random.default_rng(1)
    X, task_ids = rng.normal(size=(700, 600)), np.repeat(np.arange(5), 140)
    y = X[:, 0] + rng.normal(size=700)
    if Estimator is HierarchicalRegressor:
        assert Estimator().fit(X, y, task_ids=task_ids).covariance_type_ == "spherical"
    else:
        y = (y > 0).astype(int)
        message = (r"covariance_type='auto' would fit 601 independent random effects .* a "
                   r"full one's 180,901 entries outnumber the 5 tasks\), whose fit's steps "
                   r"cost T q\^3 = 1.1e\+09, more than the 1e\+08 .* or pass "
                   r"covariance_type='diag'")
        with pytest.raises(ValueError, match=message):
            Estimator().fit(X, y, task_ids=task_ids)
    assert not Estimator(covariance_type="diag")._covariance_too_large(601, 700, 5)
    assert Estimator()._covariance_too_large(601, 700, 5)
    assert not Estimator()._covariance_too_large(257, 3000, 5)  # 8.5e7: fitted


def _small_data(seed):
    """One of 240 small generated data sets (3 to 100 tasks of 5 to 20 labels, 1 to 5
    features, some slopes varying between tasks): ``(X, y, task_ids)``."""
    rng = np.random.default_rng(seed)
    T, n, d = (int(rng.choice(values)) for values in ([3, 5, 10, 30, 100], [5, 10, 20],
                                                        [1, 2, 3, 5]))
    X, task_ids = rng.normal(size=(T * n, d)), np.repeat(np.arange(T), n)
    spread = rng.choice([0.0, 0.3, 1.0], size=d)
    coef = rng.normal(size=d) + spread * rng.normal(size=(T, d))
    y = (np.einsum("ij,ij->i", X, coef[task_ids])
         + rng.choice([0.0, 1.0]) * rng.normal(size=T)[task_ids] + rng.normal(size=T * n))
    return X, y, task_ids


def test_an_unbounded_likelihood_warns():
    """3 tasks of 5 labels with 6 random effects: on these data the restricted likelihood
    grows without bound as the noise variance goes to 0, each task fitted exactly. The fit
    stops on the bound of the standard deviations relative to the noise's and says why,
    rather than return a near-zero noise variance silently."""
    # a sample where it happens (1 of 300 small fits; which one is a matter of rounding: it
    # was sample 24 before the fits ran on one BLAS thread, and 30 ended short of the bound)
    X, y, task_ids = _small_data(30)
    assert X.shape == (15, 5)
    with pytest.warns(ConvergenceWarning, match="no maximum .* on the bound of 10000 .* 6 "
                                                "random effects are too many for tasks of at "
                                                "most 5 labels and so few"):
        model = HierarchicalRegressor(covariance_type="full").fit(X, y, task_ids=task_ids)
    assert model.noise_variance_ < 1e-6 * np.var(y)


@pytest.mark.parametrize("seed, method", [(24, "reml"), (94, "reml"), (113, "reml"),
                                          (157, "reml"), (112, "ml")])
def test_a_fit_of_every_task_exactly_warns_wherever_it_stops(seed, method):
    """3 or 5 tasks of 5 labels, 6 random effects: fits that end short of the bound, at a
    stationary point where the random effects fit every task almost exactly and the noise
    variance is near 0, say so too (these five returned it silently). Where such a fit
    stops, short of the bound or on it, the rounding of the products decides (on an AVX-512
    machine seeds 24 and 112 reach it, on another none did): the warning is the same but
    for the clause that names the bound."""
    X, y, task_ids = _small_data(seed)
    assert X.shape[0] in (15, 25)
    message = (r"no maximum .* fitted almost exactly .* variance near 0(, on the bound of "
               r"10000 [^.]*)?\. The 6 random effects")
    with pytest.warns(ConvergenceWarning, match=message):
        model = HierarchicalRegressor(method=method, covariance_type="full").fit(
            X, y, task_ids=task_ids)
    assert model.noise_variance_ < 1e-7 * np.var(y)


def test_a_fit_heading_for_an_exact_fit_says_so_when_out_of_iterations():
    """3 tasks of 5 labels, 6 random effects, ML: after max_iter=1,000 the noise variance is
    still falling; the warning says that the likelihood may have no maximum there, which a
    longer fit (1,472 iterations) then reaches and says."""
    X, y, task_ids = _small_data(11)
    assert X.shape == (15, 5)
    with pytest.warns(ConvergenceWarning, match="raise max_iter. Every task has at most as "
                                                "many labels as the 6 random effects"):
        HierarchicalRegressor(method="ml", covariance_type="full").fit(X, y, task_ids=task_ids)
    with pytest.warns(ConvergenceWarning, match="no maximum") as caught:
        model = HierarchicalRegressor(method="ml", covariance_type="full", max_iter=2000).fit(
            X, y, task_ids=task_ids)
    assert len(caught) == 1  # not max_iter's
    assert model.n_iter_ < 2000 and model.noise_variance_ < 1e-8 * np.var(y)


@pytest.mark.parametrize("seed, method", [(30, "ml"), (157, "ml"), (113, "ml"),
                                          (230, "ml"), (230, "reml"), (149, "reml")])
def test_tasks_of_few_labels_with_noise_left_do_not_warn(seed, method):
    """The same shapes (3 to 10 tasks of 5 labels, 6 random effects) where the fit ends at a
    positive noise variance (the residual sum of squares at 1e-2 or more of the fixed
    effects' alone): no warning."""
    X, y, task_ids = _small_data(seed)
    assert X.shape[0] in (15, 25, 50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = HierarchicalRegressor(method=method).fit(X, y, task_ids=task_ids)
    assert model.noise_variance_ > 1e-3 * np.var(y)


@pytest.mark.parametrize("noise", [0.0, 1e-3])
def test_noise_free_targets_warn_and_small_noise_is_fitted(noise):
    """20 tasks of 10 labels, 3 random effects: only noise-free targets are fitted exactly
    (they warn); a noise of standard deviation 1e-3 is estimated, without a warning."""
    rng = np.random.default_rng(0)
    X, task_ids = rng.normal(size=(200, 2)), np.repeat(np.arange(20), 10)
    W = np.array([1.0, -1.0]) + 0.5 * rng.normal(size=(20, 2))
    y = (np.einsum("ij,ij->i", X, W[task_ids]) + rng.normal(size=20)[task_ids]
         + noise * rng.normal(size=200))
    if noise:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model = HierarchicalRegressor().fit(X, y, task_ids=task_ids)
        assert model.noise_variance_ == pytest.approx(noise**2, rel=0.3)
    else:
        with pytest.warns(ConvergenceWarning, match="no maximum .* exact linear functions"):
            model = HierarchicalRegressor().fit(X, y, task_ids=task_ids)
        assert model.noise_variance_ < 1e-8 * np.var(y)


def test_stops_at_a_zero_variance_in_few_iterations():
    """Slopes that do not vary between tasks: their variances are near 0 at the optimum (on
    the bound, or as near as the sample says), reached in a few dozen iterations (EM needs
    thousands) without a warning."""
    rng = np.random.RandomState(0)
    T = 40
    task_ids = np.repeat(np.arange(T), 20)
    X = rng.normal(size=(T * 20, 2))
    y = X @ [1.0, -1.0] + rng.normal(size=T)[task_ids] + 0.5 * rng.normal(size=T * 20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = HierarchicalRegressor(method="ml").fit(X, y, task_ids=task_ids)
    assert model.n_iter_ < 100
    assert model.task_covariance_[0, 0] < 5e-3 and model.task_covariance_[1, 1] < 5e-3
    assert model.task_covariance_[2, 2] == pytest.approx(1.0, rel=0.5)


@pytest.mark.parametrize("n_tasks, seed, method",
                         [(5, 1, "reml"), (5, 2, "reml"), (10, 1, "ml"), (3, 0, "ml")])
def test_few_tasks_stop_at_a_zero_variance_without_a_warning(n_tasks, seed, method):
    """3 to 10 tasks on the same 40 rows, 4 random effects: a variance (or two) is 0 at the
    optimum. The barrier's last stages used to creep at rounding level until max_iter (1,001
    iterations, 2 to 3 s and a ConvergenceWarning, in 10 of 24 such fits); now Newton stops
    where its steps lower the deviance by rounding only, the variances at rounding level are
    set to exactly 0, and the fit meets its own criterion (projected gradient at most tol
    times the deviance's scale) in under 100 iterations, at the optimum L-BFGS-B alone reaches
    with a tolerance of 1e-12."""
    from skmtl.linear._solver_hierarchical import minimize_covariance

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, 3))
    Y = X @ rng.normal(size=(n_tasks, 3)).T + 0.1 * rng.normal(size=(40, n_tasks))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted = HierarchicalRegressor(method=method).fit(X, Y)
    assert fitted.n_iter_ < 100
    task_ids = np.repeat(np.arange(n_tasks), 40)
    _, (A, c, s, n) = _moments(np.tile(X, (n_tasks, 1)), Y.T.ravel(), task_ids)
    model = MixedModel(A, c, s, n, np.arange(4), method == "reml")
    start = np.eye(4)[model._tril]
    theta, n_iter = model.fit(start, max_iter=1000, tol=1e-8)
    reference, _ = minimize_covariance(model.deviance, model.covariance_gradient, start, 0, 4,
                                       max_iter=20000, tol=1e-12, value=model.value)
    value, gradient = model.deviance(theta)
    on_bound = (model._tril[0] == model._tril[1]) & (theta == 0.0) & (gradient >= 0.0)
    assert on_bound.any()  # a column of L exactly 0
    assert np.abs(np.where(on_bound, 0.0, gradient)).max() <= 1e-8 * model.value(start)
    assert value <= model.value(reference) + 1e-12 * abs(value)
    # the fixed effects to 1e-8, the noise variance and BLUPs to 1e-6, the covariance to 1e-5
    # (the deviance's rounding, 1e-13 relative, allows its square root along the flattest
    # directions)
    for ours, theirs, rtol in zip(model.estimates(theta), model.estimates(reference),
                                  (1e-8, 1e-6, 1e-5, 1e-6)):
        np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * np.abs(theirs).max())


def test_lower_factor():
    """``L L^T = B B^T`` to rounding with ``L`` lower triangular, its diagonal non-negative:
    numpy's Cholesky factor for a full-rank ``B``, and for ``B`` of rank 1 and 2 of 4 (with a
    variable of variance 0, or dependent on the others), one zero column per missing rank,
    where numpy's Cholesky factorisation fails."""
    from skmtl.linear._solver_hierarchical import _lower_factor

    rng = np.random.RandomState(0)
    B = rng.normal(size=(4, 4))
    np.testing.assert_allclose(_lower_factor(B), np.linalg.cholesky(B @ B.T), rtol=1e-12,
                               atol=1e-14)
    for rank in (2, 1):
        B = rng.normal(size=(4, rank))
        B[0] = B[1:].sum(axis=0) if rank == 2 else 0.0
        P = B @ B.T
        with pytest.raises(np.linalg.LinAlgError):
            np.linalg.cholesky(P)
        L = _lower_factor(B)
        np.testing.assert_array_equal(L, np.tril(L))
        assert np.all(np.diag(L) >= 0.0)
        np.testing.assert_allclose(L @ L.T, P, atol=1e-14 * np.abs(P).max())
        assert np.sum(np.all(L == 0.0, axis=0)) == 4 - rank


def test_max_iter_bounds_the_iterations():
    """``n_iter_`` never exceeds ``max_iter`` (L-BFGS-B was given at least one iteration after
    Newton had used them all), and reaching it warns."""
    X, y, task_ids = _long(T=20, seed=4)
    for max_iter in (1, 3):
        with pytest.warns(ConvergenceWarning, match=f"max_iter={max_iter}"):
            model = HierarchicalRegressor(max_iter=max_iter).fit(X, y, task_ids=task_ids)
        assert model.n_iter_ == max_iter


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("method", ["ml", "reml"])
def test_optimality_over_covariances(seed, method):
    """The fit is a minimum over positive semi-definite covariances, not only over the Cholesky
    factor: the deviance's gradient in Psi = L L^T is positive semi-definite and orthogonal to
    Psi (a zero column of L is a stationary point in L even where that variance should grow;
    the solver must not stop there). Few rows per task and correlated deviations, where plain
    L-BFGS-B from L = I stopped at such a point."""
    rng = np.random.RandomState(seed)
    T, n = 60, 6
    task_ids = np.repeat(np.arange(T), n)
    X = rng.normal(size=(T * n, 2))
    true = np.array([1.0, -1.0]) + 0.4 * rng.normal(size=(T, 2))
    y = np.einsum("ij,ij->i", X, true[task_ids]) + rng.normal(size=T * n)
    rows, (A, c, s, n_rows) = _moments(X, y, task_ids)
    model = MixedModel(A, c, s, n_rows, [0, 1, 2], reml=method == "reml")
    theta, _ = model.fit(np.eye(3)[model._tril], max_iter=500, tol=1e-10)
    value, grad = model.covariance_gradient(theta)
    L = model.factor(theta)
    assert np.linalg.eigvalsh(grad)[0] > -1e-6 * abs(value)
    np.testing.assert_allclose(grad @ L @ L.T, 0.0, atol=1e-5 * abs(value))
    # no better point nearby in any covariance direction
    for direction in np.eye(3):
        for step in (1e-3, -1e-3):
            trial = L @ L.T + step * np.outer(direction, direction)
            if np.linalg.eigvalsh(trial)[0] > 1e-12:
                assert model.deviance(np.linalg.cholesky(trial)[model._tril])[0] >= value - 1e-9


# -- the classifier: the Laplace approximation ---------------------------------------------------
def _binary(T=12, d=2, seed=0, rows=(10, 30), sd=(0.8, 0.3, 1.0)):
    rng = np.random.RandomState(seed)
    counts = rng.randint(*rows, T)
    task_ids = np.repeat(np.arange(T), counts)
    X = rng.normal(size=(len(task_ids), d))
    deviations = rng.normal(size=(T, d + 1)) * np.resize(sd, d + 1)
    eta = (X @ np.linspace(1.0, -1.0, d) + 0.3
           + np.einsum("ij,ij->i", np.column_stack([X, np.ones(len(X))]),
                       deviations[task_ids]))
    y = (rng.uniform(size=len(eta)) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    return X, y, task_ids, counts


def _laplace(X, y, task_ids, counts, random, prior_scale=None, diagonal=False):
    from skmtl.linear._solver_hierarchical_logistic import LaplaceMixedModel

    J = np.eye(X.shape[1] + 1)
    J[0, 0], J[-1, 0] = 0.5, 0.2  # non-trivial coordinates
    return LaplaceMixedModel(X, y, np.arange(len(y)), counts, np.asarray(random), J, True,
                             prior_scale, diagonal=diagonal)


@pytest.mark.parametrize("random", [[2], [0, 2], [0, 1, 2]])
@pytest.mark.parametrize("prior_scale", [None, 2.0])
def test_laplace_gradient_against_finite_differences(random, prior_scale):
    """The gradient, through the modes (implicit differentiation), against central
    differences of the objective."""
    X, y, task_ids, counts = _binary()
    model = _laplace(X, y, task_ids, counts, random, prior_scale)
    rng = np.random.RandomState(1)
    q = len(random)
    x = np.concatenate([0.3 * rng.normal(size=3), 0.5 * rng.normal(size=q * (q + 1) // 2)])
    _, grad = model.objective(x)
    h = 1e-6
    numeric = [(model.objective(x + h * e)[0] - model.objective(x - h * e)[0]) / (2 * h)
               for e in np.eye(len(x))]
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6 * np.abs(grad).max())


@pytest.mark.parametrize("blas", [False, True])
def test_laplace_factor_of_lower_rank(blas):
    """``F`` at a factor ``B`` (q x r, r < q) of the covariance: the value at the Cholesky
    factor of ``B B^T`` (F depends on ``B B^T`` only), and the gradient in ``B`` against
    central differences (the evaluation the fit's factor phase uses), with either per-task
    kernels."""
    X, y, task_ids, counts = _binary(T=6, rows=(8, 14) if not blas else (70, 80))
    model = _laplace(X, y, task_ids, counts, [0, 1, 2], prior_scale=2.0)
    model._blas = blas
    rng = np.random.RandomState(3)
    beta, B = 0.3 * rng.normal(size=3), 0.6 * rng.normal(size=(3, 2))
    value, grad_beta, grad_B = model._evaluate_factor(beta, B)
    from skmtl.linear._solver_hierarchical import _lower_factor

    L = _lower_factor(B)
    assert model.objective(np.concatenate([beta, L[model._tril]]))[0] == pytest.approx(
        value, rel=1e-12)
    h = 1e-6
    for k in range(B.size):
        step = np.zeros(B.size)
        step[k] = h
        step = step.reshape(B.shape)
        numeric = (model._evaluate_factor(beta, B + step)[0]
                   - model._evaluate_factor(beta, B - step)[0]) / (2 * h)
        assert grad_B.ravel()[k] == pytest.approx(numeric, rel=1e-6, abs=1e-7)
    for k in range(3):
        numeric = (model._evaluate_factor(beta + h * np.eye(3)[k], B)[0]
                   - model._evaluate_factor(beta - h * np.eye(3)[k], B)[0]) / (2 * h)
        assert grad_beta[k] == pytest.approx(numeric, rel=1e-6, abs=1e-7)


def test_laplace_modes_follow_a_change_of_factor():
    """The modes' warm start from one factor of the covariance to another with the same
    range (a rotation, or the Cholesky factor of ``B B^T`` padded with zero columns) keeps
    every task's random effects ``B v_t``; modes of another rank start cold."""
    from skmtl.linear._solver_hierarchical import _lower_factor

    X, y, task_ids, counts = _binary(T=5)
    model = _laplace(X, y, task_ids, counts, [0, 1, 2])
    rng = np.random.RandomState(0)
    B, V = rng.normal(size=(3, 2)), rng.normal(size=(5, 2))
    for new in (B @ np.linalg.qr(rng.normal(size=(2, 2)))[0], _lower_factor(B)):
        model.V = V.copy()
        model._remap_modes(B, new)
        np.testing.assert_allclose(model.V @ new.T, V @ B.T, atol=1e-12)
    model.V = np.ones((5, 3))
    model._remap_modes(B, B)
    np.testing.assert_array_equal(model.V, np.zeros((5, 2)))


@pytest.mark.parametrize(("T", "d", "sd"), [(30, 6, (0.8, 0, 0, 0, 0, 0, 1.0)),
                                            (20, 10, (0.5,) * 3 + (0,) * 7 + (1.0,))])
def test_classifier_factor_phase_reaches_the_lbfgs_optimum(T, d, sd, monkeypatch):
    """Slopes that do not vary between tasks: variances at 0 at the optimum. The factor
    phase (forced after 10 iterations) reaches L-BFGS-B's optimum on the Cholesky factor
    alone (the same objective to 1e-10, probabilities to 1e-4) in fewer iterations (36 and
    42 against 109 and 96), and no variance left at 0 should grow there."""
    from skmtl.linear import HierarchicalClassifier
    from skmtl.linear import _solver_hierarchical_logistic as solver
    from skmtl.linear._solver_hierarchical import _escape

    X, y, task_ids, _ = _binary(T=T, d=d, rows=(20, 40), sd=sd)
    fits = {}
    for after in (10**6, 10):
        monkeypatch.setattr(solver, "_FACTOR_AFTER", after)
        fits[after] = HierarchicalClassifier(covariance_type="full").fit(
            X, y.astype(int), task_ids=task_ids)
    plain, factor = fits[10**6], fits[10]
    assert factor.log_likelihood_ >= plain.log_likelihood_ - 1e-10 * abs(plain.log_likelihood_)
    assert factor.n_iter_ < 0.6 * plain.n_iter_
    np.testing.assert_allclose(factor.predict_proba(X, task_ids=task_ids),
                               plain.predict_proba(X, task_ids=task_ids), atol=1e-4)
    values = np.linalg.eigvalsh(factor.task_covariance_)
    assert np.sum(values > 1e-8 * values.max()) < d + 1
    # the optimality check on the fit's own parameters: no descent along a variance at 0
    captured = {}
    fit = solver.LaplaceMixedModel.fit

    def capture(self, **kwargs):
        captured["model"] = self
        captured["x"], n_iter = fit(self, **kwargs)
        return captured["x"], n_iter

    monkeypatch.setattr(solver.LaplaceMixedModel, "fit", capture)
    HierarchicalClassifier(covariance_type="full").fit(X, y.astype(int), task_ids=task_ids)
    model, x = captured["model"], captured["x"]
    assert _escape(lambda z: model.objective(z)[0], model.covariance_gradient, x, model.p,
                   model.q) is None


@pytest.mark.parametrize("kernels", ["compiled", "blas"])
def test_laplace_per_task_kernels(kernels):
    """The per-task sums and solves (compiled loops for small tasks, a product per task for
    large ones, through ``M_t^-1``): ``Z_t^T W_t Z_t``, and with ``G_i = M_t^-1 zl_i``
    (``M_t`` through its Cholesky factor) ``h_i = zl_i^T G_i``, ``b_t = sum_i s_i h_i G_i``
    and ``sum_i w_i z_i G_i^T``, against numpy, with tasks of unequal sizes and an empty
    one."""
    from skmtl.linear import _solver_hierarchical_logistic as solver
    from skmtl.linear._solver_hierarchical import _factor_solve

    rng = np.random.default_rng(0)
    counts = np.array([3, 0, 7, 1])
    starts = np.concatenate([[0], np.cumsum(counts)])
    Z, w = rng.normal(size=(counts.sum(), 5)), rng.uniform(size=counts.sum())
    ZL, slope = Z[:, :4] @ rng.normal(size=(4, 4)), rng.normal(size=counts.sum())
    M = rng.normal(size=(4, 4, 4))
    M = M @ M.transpose(0, 2, 1) + np.eye(4)
    U = M.copy()
    _factor_solve(U, np.zeros((4, 4, 1)))  # Q_t^T in U's upper triangles
    if kernels == "compiled":
        grams = solver._task_grams(Z, w, starts)
        h, b, weighted = solver._task_solves(U, ZL, Z, w, slope, starts)
    else:
        grams = solver._task_grams_blas(Z, w, starts)
        h, b = solver._task_products(ZL, solver._inverses(U), slope, starts)
        weighted = None
    expected = np.zeros((5, 4))
    for t in range(4):
        rows = slice(starts[t], starts[t + 1])
        np.testing.assert_allclose(grams[t], Z[rows].T @ (w[rows, None] * Z[rows]),
                                   rtol=1e-12, atol=1e-14)
        G = np.linalg.solve(M[t], ZL[rows].T).T
        np.testing.assert_allclose(h[rows], np.einsum("ij,ij->i", ZL[rows], G), rtol=1e-10)
        np.testing.assert_allclose(b[t], (slope[rows] * h[rows]) @ G, rtol=1e-10,
                                   atol=1e-12)
        expected += Z[rows].T @ (w[rows, None] * G)
    if weighted is not None:
        np.testing.assert_allclose(weighted, expected, rtol=1e-10)


def test_laplace_objective_by_either_kernels():
    """Tasks of 64 labels or more on average take the per-task products: the same objective
    and gradient as the compiled loops."""
    X, y, task_ids, counts = _binary(T=4, rows=(70, 90))
    model = _laplace(X, y, task_ids, counts, [0, 2], prior_scale=2.0)
    assert model._blas
    x = np.array([0.3, -0.4, 0.2, 0.7, 0.1, 0.9])
    value, grad = model.objective(x)
    model._blas, model.V = False, np.zeros_like(model.V)
    other_value, other_grad = model.objective(x)
    assert value == pytest.approx(other_value, rel=1e-12)
    np.testing.assert_allclose(grad, other_grad, rtol=1e-9, atol=1e-12)


def test_laplace_modes_stop_in_few_steps():
    """The modes' Newton iterations reach their stationarity equation ``v = L^T Z^T (y -
    mu)`` to rounding level and stop there: 50 tasks of 20 labels, 31 random effects, at the
    fit's start ``L = I``, 7 steps from a cold start and none from the warm start at the
    same parameters (with a bound at eps itself, both calls ran into the 50-step limit)."""
    X, y, task_ids, counts = _binary(T=50, d=30, rows=(20, 21), sd=0.3)
    model = _laplace(X, y, task_ids, counts, list(range(31)), prior_scale=2.5)
    x = np.concatenate([np.zeros(31), np.eye(31)[model._tril]])
    model.objective(x)
    assert model.mode_steps <= 10
    beta, L = model._coordinates(x)
    V, _, mu, _, _, _, _ = model._modes(model._fixed(beta), L)
    assert model.mode_steps <= 1
    residual = V - model._task_sums((model.Z @ L) * (model.y - mu)[:, None])
    assert np.abs(residual).max() < 1e-11 * max(1.0, np.abs(V).max())


def test_classifier_peak_memory_is_a_small_multiple_of_x():
    """No (n_obs, q, q) array: 6,000 labels, 16 random effects, peak traced memory of the
    fit about 5 times X's size (20 times when each observation got its task's q x q
    matrix)."""
    import tracemalloc

    from skmtl.linear import HierarchicalClassifier

    rng = np.random.default_rng(0)
    T, n_t, d = 20, 300, 15
    X, task_ids = rng.normal(size=(T * n_t, d)), np.repeat(np.arange(T), n_t)
    coef = rng.normal(size=d) + 0.3 * rng.normal(size=(T, d))
    y = (np.einsum("ij,ij->i", X, coef[task_ids]) + rng.logistic(size=len(X)) > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        HierarchicalClassifier(max_iter=2).fit(X[:600], y[:600], task_ids=task_ids[:600])
        tracemalloc.start()
        try:
            HierarchicalClassifier(max_iter=3).fit(X, y, task_ids=task_ids)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 8 * X.nbytes


def test_laplace_objective_against_a_direct_computation():
    """F at any parameters: each task's mode found by a generic optimiser, the Hessian of the
    integrand there formed by hand."""
    from scipy.optimize import minimize

    X, y, task_ids, counts = _binary(T=5)
    model = _laplace(X, y, task_ids, counts, [0, 2])
    x = np.array([0.4, -0.2, 0.1, 0.8, -0.3, 0.5])
    beta, L = model._coordinates(x)
    D = np.column_stack([X, np.ones(len(y))])
    total = 0.0
    for t in range(5):
        rows = task_ids == t
        Z = D[rows][:, [0, 2]] @ L

        def integrand(v, rows=rows, Z=Z):
            eta = D[rows] @ beta + Z @ v
            return np.sum(np.logaddexp(0, eta) - y[rows] * eta) + 0.5 * v @ v

        mode = minimize(integrand, np.zeros(2), method="BFGS", options={"gtol": 1e-12}).x
        mu = 1 / (1 + np.exp(-(D[rows] @ beta + Z @ mode)))
        hessian = np.eye(2) + Z.T @ (Z * (mu * (1 - mu))[:, None])
        total += integrand(mode) + 0.5 * np.linalg.slogdet(hessian)[1]
    assert model.objective(x)[0] == pytest.approx(total, rel=1e-9)


def test_classifier_collinear_random_columns_fit_their_range(monkeypatch):
    """A feature that is another plus a constant: the classifier fits the random effects of
    the random columns' range. Its prior on ``tr(Sigma)`` already picked the covariance with
    no variance on the combination that is zero on every (standardised) row, so the optimum
    is the one the collinear parameters reach (forced here), in fewer iterations."""
    from skmtl.linear._solver_hierarchical_logistic import LaplaceMixedModel

    X, y, task_ids, _ = _binary(T=20, seed=6)
    Xc = np.column_stack([X, X[:, 1] + 3.0])
    fitted = HierarchicalClassifier(tol=1e-10).fit(Xc, y, task_ids=task_ids)
    monkeypatch.setattr(LaplaceMixedModel, "_random_range", lambda self: None)
    reference = HierarchicalClassifier(tol=1e-10).fit(Xc, y, task_ids=task_ids)
    assert fitted.log_likelihood_ >= reference.log_likelihood_ - 1e-9 * abs(
        reference.log_likelihood_)
    np.testing.assert_allclose(fitted.predict_proba(Xc, task_ids=task_ids),
                               reference.predict_proba(Xc, task_ids=task_ids), atol=1e-4)
    np.testing.assert_allclose(fitted.task_covariance_, reference.task_covariance_,
                               rtol=1e-3, atol=1e-5)
    Sigma = fitted.task_covariance_  # random columns [0, 1, 2, intercept]
    np.testing.assert_allclose(Sigma @ [0.0, 1.0, -1.0, 0.0], 0.0,
                               atol=1e-8 * np.abs(Sigma).max())
    assert fitted.n_iter_ < reference.n_iter_


def test_laplace_is_close_to_the_exact_likelihood():
    """A random intercept with 40 labels per task: the Laplace approximation of each task's
    integral is within 1e-2 of adaptive Gauss-Hermite quadrature (60 nodes)."""
    X, y, task_ids, counts = _binary(T=6, rows=(40, 41), sd=(0.0, 0.0, 1.0))
    model = _laplace(X, y, task_ids, counts, [2])
    x = np.array([0.5, -0.5, 0.2, 0.9])
    value = model.objective(x)[0]
    beta, L = model._coordinates(x)
    D = np.column_stack([X, np.ones(len(y))])
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)
    exact = 0.0
    for t in range(6):
        rows = task_ids == t
        v, s = model.V[t, 0], 1.0 / np.sqrt(np.linalg.det(
            np.eye(1) + L.T @ (D[rows][:, [2]].T * 0.25) @ D[rows][:, [2]] @ L))
        grid = v + s * nodes  # adaptive: centred on the mode, scaled by its curvature
        eta = (D[rows] @ beta)[:, None] + L[0, 0] * grid[None, :]
        log_lik = -np.sum(np.logaddexp(0, eta) - y[rows][:, None] * eta, axis=0)
        exact += np.log(np.sum(weights * s * np.exp(log_lik - 0.5 * grid**2 + 0.5 * nodes**2))
                        / np.sqrt(2 * np.pi))
    assert -value == pytest.approx(exact, abs=1e-2 * 6)


def test_classifier_optimum_against_a_generic_optimiser():
    """The fitted parameters minimise F: a derivative-free optimiser started there finds no
    better point, and F's gradient vanishes."""
    from scipy.optimize import minimize

    X, y, task_ids, counts = _binary(T=15, sd=(0.0, 0.0, 1.0))
    model = _laplace(X, y, task_ids, counts, [2])
    from skmtl.linear._solver_hierarchical import minimize_covariance

    x, _ = minimize_covariance(model.objective, model.covariance_gradient,
                               np.array([0, 0, 0, 1.0]), 3, 1, max_iter=500, tol=1e-12)
    value, grad = model.objective(x)
    assert np.abs(grad).max() < 1e-5
    other = minimize(lambda z: model.objective(z)[0], x + 0.05, method="Nelder-Mead",
                     options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000})
    assert other.fun >= value - 1e-8
    np.testing.assert_allclose(np.abs(other.x), np.abs(x), atol=1e-3)


def test_classifier_shrinkage_beats_pooled_and_separate_fits():
    """Many small tasks differing by their intercept: held-out log-loss of the hierarchical
    model below pooled and per-task logistic regression; the variance is recovered."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    from skmtl.baselines import IndependentTasks, PooledTasks
    from skmtl.linear import HierarchicalClassifier

    rng = np.random.RandomState(0)
    T, n = 60, 30
    task_ids = np.repeat(np.arange(T), n)
    X = rng.normal(size=(T * n, 2))
    intercepts = 1.0 * rng.normal(size=T)
    y = (X @ [1.0, -1.0] + intercepts[task_ids] + rng.logistic(size=T * n) > 0).astype(int)
    train = np.tile(np.arange(n) < 15, T)  # 15 labels per task (both classes) to learn from
    model = HierarchicalClassifier(random_slopes=None).fit(
        X[train], y[train], task_ids=task_ids[train])
    losses = {}
    for name, est in [("hierarchical", model),
                      ("pooled", PooledTasks(LogisticRegression()).fit(
                          X[train], y[train], task_ids=task_ids[train])),
                      ("separate", IndependentTasks(LogisticRegression()).fit(
                          X[train], y[train], task_ids=task_ids[train]))]:
        proba = est.predict_proba(X[~train], task_ids=task_ids[~train])
        losses[name] = log_loss(y[~train], np.asarray(proba)[:, 1])
    assert losses["hierarchical"] < losses["pooled"] - 0.02
    assert losses["hierarchical"] < losses["separate"] - 0.02
    assert np.sqrt(model.task_covariance_[0, 0]) == pytest.approx(np.std(intercepts), rel=0.25)


def test_default_prior_keeps_nearly_separable_tasks_calibrated():
    """20 tasks of 14 nearly separable training labels, 6 random effects: with the old default
    prior (scale 10) 42% of the held-out probabilities are beyond 0.001 / 0.999 and the
    log-loss is 0.58, above a logistic regression per task (0.51); the default (2.5) brings
    them to 30% and 0.48 at the same AUC (0.92, against 0.82 per task)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss, roc_auc_score

    from skmtl.baselines import IndependentTasks
    from skmtl.linear import HierarchicalClassifier

    rng = np.random.default_rng(0)
    T, n, d = 20, 20, 5
    task_ids = np.repeat(np.arange(T), n)
    X = rng.normal(size=(T * n, d))
    W = (rng.normal(size=d) + 0.5 * rng.normal(size=(T, d))) * 6.0 / np.sqrt(d)
    eta = np.einsum("ij,ij->i", X, W[task_ids]) + 0.3 * rng.normal(size=T)[task_ids]
    y = (rng.random(T * n) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    train = np.tile(np.arange(n) < 14, T)
    results = {}
    # a full Sigma (21 entries from 20 tasks, where "auto" takes a diagonal one)
    for name, model in [("default", HierarchicalClassifier(covariance_type="full")),
                        ("scale 10", HierarchicalClassifier(covariance_type="full",
                                                            prior_scale=10.0)),
                        ("separate", IndependentTasks(LogisticRegression()))]:
        model.fit(X[train], y[train], task_ids=task_ids[train])
        p = model.predict_proba(X[~train], task_ids=task_ids[~train])[:, 1]
        results[name] = (log_loss(y[~train], p), roc_auc_score(y[~train], p),
                         np.mean((p < 1e-3) | (p > 1 - 1e-3)))
    assert results["default"][0] < results["scale 10"][0] - 0.05
    assert results["default"][0] < results["separate"][0] - 0.02
    assert results["default"][1] >= results["scale 10"][1] - 0.01
    assert results["default"][2] < results["scale 10"][2] - 0.05


def test_classifier_formats_and_separable_labels():
    from skmtl.linear import HierarchicalClassifier

    X, y, task_ids, _ = _binary(T=8, seed=4)
    long = HierarchicalClassifier().fit(X, y, task_ids=task_ids)
    Y = np.full((len(y), 8), np.nan)
    Y[np.arange(len(y)), task_ids] = y
    wide = HierarchicalClassifier().fit(X, Y)
    np.testing.assert_allclose(wide.coef_, long.coef_, atol=1e-6)
    sparse = HierarchicalClassifier().fit(sp.csr_matrix(X), y, task_ids=task_ids)
    np.testing.assert_allclose(sparse.coef_, long.coef_, atol=1e-6)
    np.testing.assert_allclose(long.predict_proba(X[:3], task_ids=task_ids[:3])[:, 1],
                               1 / (1 + np.exp(-(np.einsum("ij,ij->i", X[:3], long.coef_[
                                   task_ids[:3]]) + long.intercept_[task_ids[:3]]))))
    # separable labels: no finite maximum without the prior; the fit says so
    separable = (X[:, 0] > 0).astype(int)
    with pytest.warns(ConvergenceWarning, match="labels look separable"):
        HierarchicalClassifier(prior_scale=None, max_iter=100).fit(
            X, separable, task_ids=task_ids)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bounded = HierarchicalClassifier().fit(X, separable, task_ids=task_ids)
    assert np.all(np.abs(bounded.shared_coef_) < 100)


def test_default_passes_the_multitask_checks():
    """The default (every slope random) through the project's multi-task checks but one: with
    the check's 4 tasks for a 6 x 6 covariance, the likelihood is flat to rounding (the fits
    on permuted tasks reach the same log-likelihood to 1e-11 at covariances 3e-6 apart, which
    moves near-zero predictions by 4e-8, above that check's atol of 1e-8)."""
    from skmtl.utils.estimator_checks import check_multitask_estimator

    passed = check_multitask_estimator(HierarchicalRegressor(tol=1e-12), expected_failed_checks={
        "check_task_permutation_equivariance": "singular covariance, see the docstring"})
    assert len(passed) == 8


@pytest.mark.parametrize("Estimator", ["HierarchicalRegressor", "HierarchicalClassifier"])
def test_task_level_features_get_no_random_slope(Estimator):
    """"all" gives a random slope to the features that vary within a task only: a feature
    constant within every task (a school's type) would duplicate the random intercept."""
    import skmtl.linear

    X, y, task_ids = _long(T=12, seed=5)
    level = np.random.RandomState(0).normal(size=12)[task_ids]  # one value per task
    X = np.column_stack([X[:, 0], level, X[:, 1]])
    if Estimator == "HierarchicalClassifier":
        y = (y > np.median(y)).astype(int)
    model = getattr(skmtl.linear, Estimator)().fit(X, y, task_ids=task_ids)
    np.testing.assert_array_equal(model.random_columns_, [0, 2, 3])
    assert model.task_covariance_.shape == (3, 3)
    np.testing.assert_allclose(model.coef_[:, 1], model.shared_coef_[1])
    # asked for by name, it gets one
    chosen = getattr(skmtl.linear, Estimator)(random_slopes=[1]).fit(X, y, task_ids=task_ids)
    np.testing.assert_array_equal(chosen.random_columns_, [1, 3])


def test_targets_far_from_zero_give_the_same_regressor():
    """The moments are taken from the targets' mean: y + 1e7 gives the predictions of y plus
    1e7, the same variances and log-likelihood. (From zero, y'y and y's sums cancelled in
    the profiled deviance: predictions off by 0.15, the noise variance 0.425 for 0.463 and
    the log-likelihood 36 too high.)"""
    X, y, task_ids = _long(T=30, seed=0)
    base = HierarchicalRegressor(method="ml").fit(X, y, task_ids=task_ids)
    for shift in (1e5, 1e7):
        moved = HierarchicalRegressor(method="ml").fit(X, y + shift, task_ids=task_ids)
        np.testing.assert_allclose(moved.predict(X, task_ids=task_ids) - shift,
                                   base.predict(X, task_ids=task_ids), atol=1e-7)
        assert moved.noise_variance_ == pytest.approx(base.noise_variance_, rel=1e-6)
        np.testing.assert_allclose(moved.task_covariance_, base.task_covariance_, rtol=1e-5)
        assert moved.log_likelihood_ == pytest.approx(base.log_likelihood_, abs=1e-6)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("Estimator", ["HierarchicalRegressor", "HierarchicalClassifier"])
def test_a_feature_far_from_zero_keeps_its_random_slope(Estimator, sparse):
    """A feature of 1e6 + N(0, 1) varies within the tasks: "all" gives it a random slope, and
    the model is the one of the feature from 0. (Its within-task variation was measured from
    raw sums of squares, where 1e12 swamped it: the slope was dropped and the predictions
    moved by 2.1, the classifier's probabilities by 0.68.)"""
    import skmtl.linear

    X, y, task_ids = _long(T=30, seed=0)
    if Estimator == "HierarchicalClassifier":
        y = (y > np.median(y)).astype(int)
    shifted = X + [1e6, 0.0]
    base = getattr(skmtl.linear, Estimator)().fit(X, y, task_ids=task_ids)
    moved = getattr(skmtl.linear, Estimator)().fit(
        sp.csr_matrix(shifted) if sparse else shifted, y, task_ids=task_ids)
    np.testing.assert_array_equal(moved.random_columns_, [0, 1, 2])
    if Estimator == "HierarchicalRegressor":
        np.testing.assert_allclose(moved.predict(shifted, task_ids=task_ids),
                                   base.predict(X, task_ids=task_ids), atol=1e-6)
        np.testing.assert_allclose(moved.coef_, base.coef_, atol=1e-6)
    else:  # to the optimiser's tolerance, on a likelihood 1e-5 flat
        np.testing.assert_allclose(moved.predict_proba(shifted, task_ids=task_ids),
                                   base.predict_proba(X, task_ids=task_ids), atol=1e-2)
        assert moved.log_likelihood_ == pytest.approx(base.log_likelihood_, abs=1e-2)
