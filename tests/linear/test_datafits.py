"""The datafit interface: Quadratic and Logistic against closed forms and finite differences,
and a new datafit (Huber) written as one class, fitted by BlockSparseRegressor and checked
against a brute-force minimisation and the optimality conditions."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.special
from numba import njit
from scipy.optimize import minimize

from skmtl.linear import BlockSparseRegressor
from skmtl.linear._datafits import (
    Datafit,
    Logistic,
    Quadratic,
    _expit,
    _log1pexp,
    curvature_threshold,
    neg_mean_correlation,
    predictor_moving,
)
from skmtl.linear._designs import MaskedDesign


def _data(n=40, d=5, T=3, seed=0, classification=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + 0.5
    Y = X @ rng.normal(size=(d, T)) + rng.normal(size=(n, T))
    if classification:
        Y = (Y > np.median(Y, axis=0)).astype(float)
    mask = rng.uniform(size=(n, T)) > 0.3
    mask[:4] = True
    return X, Y, mask, rng


def _build(cls, X, Y, mask, fit_intercept):
    design = MaskedDesign(X, mask, center=cls.center_design(fit_intercept, mask.shape[1]))
    return cls(design, Y[design.obs_row, design.obs_task], fit_intercept)


# -- the toy Huber datafit: the whole of a new loss (its compiled half reuses two kernels) ----
EPSILON = 1.0  # Huber's threshold (a numba global: frozen when the epoch compiles)


@njit
def _huber_refresh(state, start, stop):
    v, z, y = state[0], state[1], state[2]
    for k in range(start, stop):  # v = d loss / d z = -clip(y - z)
        v[k] = -min(max(y[k] - z[k], -EPSILON), EPSILON)


class Huber(Datafit):
    """``sum_t 1 / n_t sum_i h(y_i - x_i w_t - b_t)``, h Huber's loss; state (v, z, y, b)."""

    block_neg_gradient = staticmethod(neg_mean_correlation)  # -corr_t / n_t
    moving = staticmethod(predictor_moving)  # the linear predictors z move
    refresh = staticmethod(_huber_refresh)

    def __init__(self, design, y_obs, fit_intercept):
        super().__init__(design, y_obs, fit_intercept)
        self.y = np.ascontiguousarray(y_obs, dtype=np.float64)
        self.lipschitz = curvature_threshold(design.task_moments()[1] / design.n_t[:, None])

    def init_state(self, W, b=None):
        b = np.zeros(self.design.n_tasks) if b is None else b + W @ self.design.x_shift
        z = self.design.predict_obs(W) + b[self.design.obs_task]
        state = (np.empty_like(z), z, self.y, b)
        _huber_refresh(state, 0, z.shape[0])
        return state

    def value(self, state):
        r = np.abs(self.y - state[1])
        h = np.where(r <= EPSILON, 0.5 * r**2, EPSILON * r - 0.5 * EPSILON**2)
        return float(np.sum(self.design.task_sums(h) / self.design.n_t))

    def update_intercepts(self, state):  # a gradient step (the curvature in b_t is <= 1)
        if self.fit_intercept:
            step = self.intercept_gradient(state)
            state[3][:] -= step
            state[1][:] -= step[self.design.obs_task]
            _huber_refresh(state, 0, state[1].shape[0])

    def intercept_gradient(self, state):
        return self.design.task_sums(state[0]) / self.design.n_t if self.fit_intercept else None

    def intercepts(self, W, state):
        return state[3].copy()

    def intercept_vector(self, state):
        return state[3]

    def extrapolated(self, state):
        return [state[1], state[3]]

    def set_extrapolated(self, state, arrays):
        state[1][:], state[3][:] = arrays
        _huber_refresh(state, 0, state[1].shape[0])


class HuberBlockSparseRegressor(BlockSparseRegressor):
    _datafit = Huber


def _huber_objective(X, Y, mask, W, b, alpha):
    total = 0.0
    for t in range(Y.shape[1]):
        r = np.abs(Y[mask[:, t], t] - X[mask[:, t]] @ W[t] - b[t])
        total += np.mean(np.where(r <= EPSILON, 0.5 * r**2, EPSILON * r - 0.5 * EPSILON**2))
    return total + alpha * np.sum(np.linalg.norm(W, axis=0))


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_huber_datafit_fits_and_is_optimal(fit_intercept):
    X, _, mask, rng = _data(n=60, d=6, T=3, seed=1)
    Y = X[:, :2] @ rng.normal(size=(2, 3)) + 0.3 * rng.normal(size=(60, 3)) + fit_intercept
    Y[:5] += 8.0 * rng.standard_t(2, size=(5, 3))  # outliers: Huber's loss is not least squares
    alpha = 0.1
    model = HuberBlockSparseRegressor(alpha=alpha, fit_intercept=fit_intercept, tol=1e-10,
                                      max_iter=5000)
    model.fit(X, np.where(mask, Y, np.nan))
    W, b = model.coef_, model.intercept_
    assert model.dual_gap_ <= 1e-10
    assert np.any(W != 0) and np.any(np.all(W == 0, axis=0))  # a shared, proper support
    if not fit_intercept:
        assert np.all(b == 0)

    # optimality: per-feature subgradient conditions and zero intercept gradients
    G = np.zeros_like(W)
    g_b = np.zeros(W.shape[0])
    for t in range(W.shape[0]):
        rows = mask[:, t]
        psi = np.clip(Y[rows, t] - X[rows] @ W[t] - b[t], -EPSILON, EPSILON)
        G[t] = X[rows].T @ psi / rows.sum()
        g_b[t] = psi.mean()
    norms = np.linalg.norm(W, axis=0)
    active = norms > 0
    np.testing.assert_allclose(G[:, active], alpha * W[:, active] / norms[active], atol=1e-7)
    assert np.all(np.linalg.norm(G[:, ~active], axis=0) <= alpha * (1 + 1e-7))
    if fit_intercept:
        np.testing.assert_allclose(g_b, 0.0, atol=1e-8)

    # brute force from several starts: never a lower objective
    T, d = W.shape
    ours = _huber_objective(X, Y, mask, W, b, alpha)

    def objective(theta):
        b_ = theta[T * d:] if fit_intercept else np.zeros(T)
        return _huber_objective(X, Y, mask, theta[:T * d].reshape(T, d), b_, alpha)

    size = T * d + (T if fit_intercept else 0)
    for start in [np.zeros(size), *rng.normal(size=(2, size))]:
        brute = minimize(objective, start, method="Powell",
                         options={"xtol": 1e-10, "ftol": 1e-14, "maxfev": 200_000})
        assert ours <= brute.fun + 1e-9


# -- Quadratic and Logistic obey the same interface -------------------------------------------
def _pulled(cls, fit_intercept, T):
    """Whether the datafit pulls its intercepts (logistic, with intercepts, several tasks)."""
    return cls is Logistic and fit_intercept and T > 1


def _observed_mean(X, mask):
    """The mean of X over the observed (row, task) pairs: the pulled intercepts' origin."""
    return sum(X[mask[:, t]].sum(axis=0) for t in range(mask.shape[1])) / mask.sum()


def _closed_form(cls, X, Y, mask, W, b, fit_intercept):
    """Value and negative gradient in W, written out per task with numpy (logistic with the
    pull: the gradient with the intercepts at the mean of X fixed, that of the centred X)."""
    value, G = 0.0, np.zeros_like(W)
    pulled = _pulled(cls, fit_intercept, W.shape[0])
    x_mean = _observed_mean(X, mask) if pulled else np.zeros(X.shape[1])
    for t in range(W.shape[0]):
        Xt, yt = X[mask[:, t]], Y[mask[:, t], t]
        if cls is Quadratic:
            r = yt - Xt @ W[t]
            r = r - r.mean() if fit_intercept else r  # the optimal intercept
            value += 0.5 * np.mean(r**2)
            G[t] = Xt.T @ r / len(yt)
        else:
            s = 2 * yt - 1
            z = Xt @ W[t] + b[t]
            value += np.mean(np.logaddexp(0, -s * z))
            G[t] = (Xt - x_mean).T @ (s / (1 + np.exp(s * z))) / len(yt)
    if pulled:  # the pull of the intercepts at the mean of X
        kappa = 1 / (4 * mask.sum(axis=0))
        pulled_b = b + W @ x_mean
        value += 0.5 * kappa @ (pulled_b - kappa @ pulled_b / kappa.sum()) ** 2
    return value, G


@pytest.mark.parametrize("cls", [Quadratic, Logistic])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_value_and_gradient_match_closed_forms_and_finite_differences(cls, fit_intercept):
    X, Y, mask, rng = _data(classification=cls is Logistic)
    fit = _build(cls, X, Y, mask, fit_intercept)
    T, d = mask.shape[1], X.shape[1]
    W, b = 0.3 * rng.normal(size=(T, d)), 0.5 * rng.normal(size=T)
    b = b if fit_intercept else np.zeros(T)
    # the gradient is taken with the free intercepts fixed: those at the mean of X when pulled
    x_mean = _observed_mean(X, mask) if _pulled(cls, fit_intercept, T) else np.zeros(d)
    pulled_b = b + W @ x_mean

    def value(W):
        return fit.value(fit.init_state(W, pulled_b - W @ x_mean))

    expected_value, expected_G = _closed_form(cls, X, Y, mask, W, b, fit_intercept)
    state = fit.init_state(W, b)
    assert fit.value(state) == pytest.approx(expected_value, rel=1e-12)
    G = fit.neg_gradient(state)
    np.testing.assert_allclose(G, expected_G, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fit.neg_gradient(state, [3, 1]), G[:, [3, 1]], rtol=1e-12)
    # both at once (least squares: one pass over X), as the two calls
    for sparse in (False, True):
        other = _build(cls, sp.csr_matrix(X) if sparse else X, Y, mask, fit_intercept)
        state_2, G_2 = other.state_and_neg_gradient(W, b)
        assert other.value(state_2) == pytest.approx(expected_value, rel=1e-12)
        np.testing.assert_allclose(G_2, expected_G, rtol=1e-10, atol=1e-12)
    h = 1e-6
    for t, j in [(0, 0), (1, 3), (T - 1, d - 1)]:
        E = np.zeros_like(W)
        E[t, j] = h
        assert -(value(W + E) - value(W - E)) / (2 * h) == pytest.approx(G[t, j], abs=1e-7)
    # the curvature bounds the gradient's change along each block
    assert fit.lipschitz.shape == (T, d) and np.all(fit.lipschitz >= 0)


def _point_and_reference(cls, X, Y, mask, fit_intercept, rng):
    """A random point ``(W, b)``, the closed form's ``(value, negative gradient)`` there, the
    datafit's centring and the Fortran-ordered design of the labels."""
    T, d = mask.shape[1], X.shape[1]
    W, b = 0.3 * rng.normal(size=(T, d)), 0.5 * rng.normal(size=T)
    b = b if fit_intercept else np.zeros(T)
    center = cls.center_design(fit_intercept, T)
    return (W, b, _closed_form(cls, X, Y, mask, W, b, fit_intercept), center,
            MaskedDesign(X, mask, center=center))


def _assert_design_matches(design, column, cls, Y, W, b, fit_intercept, expected, rng):
    """The datafit on a ``design`` read by whole tasks gives the closed form's ``(value,
    negative gradient)`` at ``(W, b)``, and its per-observation vectors, per-task sums and
    moments are those of the Fortran-ordered ``column`` design of the same labels."""
    fit = cls(design, Y[design.obs_row, design.obs_task], fit_intercept)
    start = fit.init_state(W, b)
    for state, G in [(start, fit.neg_gradient(start)), fit.state_and_neg_gradient(W, b)]:
        assert fit.value(state) == pytest.approx(expected[0], rel=1e-12)
        np.testing.assert_allclose(G, expected[1], rtol=1e-10, atol=1e-12)
    v, y = rng.normal(size=design.n_obs), rng.normal(size=design.n_obs)
    np.testing.assert_allclose(design.predict_obs(W), column.predict_obs(W), atol=1e-12)
    np.testing.assert_allclose(design.correlations(v), column.correlations(v), atol=1e-12)
    np.testing.assert_allclose(design.correlations(v, [3, 0]), column.correlations(v, [3, 0]),
                               atol=1e-12)
    for a, b_ in zip(design.residual_correlations(W, y), column.residual_correlations(W, y)):
        np.testing.assert_allclose(a, b_, atol=1e-12)
    np.testing.assert_array_equal(design.task_sums(v),
                                  np.bincount(design.obs_task, v, minlength=design.n_tasks))
    for a, b_ in zip(design.task_moments(), column.task_moments()):
        np.testing.assert_allclose(a, b_, rtol=1e-13)


@pytest.mark.parametrize("cls", [Quadratic, Logistic])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_row_major_design_gives_the_closed_forms(cls, fit_intercept):
    """One task per row (long data, or a wide mask with one label per row): the row-major copy
    (``row_major=True``, read by the row-wise kernels) gives the values and gradients of the
    closed form, of the Fortran-ordered design, and the same per-observation vectors."""
    X, Y, _, rng = _data(n=60, classification=cls is Logistic)
    T, d = Y.shape[1], X.shape[1]
    task_index = rng.permutation(np.arange(60) % T)  # unsorted: each task's rows scattered
    mask = np.zeros(Y.shape, dtype=bool)
    mask[np.arange(60), task_index] = True
    W, b, expected, center, column = _point_and_reference(cls, X, Y, mask, fit_intercept, rng)
    wide = MaskedDesign(X, mask, center=center, row_major=True)
    long = MaskedDesign.from_long(X, task_index, T, center=center, row_major=True)
    assert not column.row_major and wide.row_major and long.row_major
    assert wide.X.flags.c_contiguous and wide.X.shape == (60, d)
    # observation k is row k of the copy, in the order of the Fortran design
    np.testing.assert_array_equal(long.obs_row, column.obs_row)
    np.testing.assert_allclose(wide.X, column.X[column.obs_row], rtol=0, atol=1e-15)
    for design in (wide, long):
        _assert_design_matches(design, column, cls, Y, W, b, fit_intercept, expected, rng)
    if cls is Quadratic and fit_intercept:  # the dual objective of the same residuals
        fits = [cls(design, Y[design.obs_row, design.obs_task], True) for design in (column, wide)]
        duals = [fit.dual_value(fit.init_state(W), 1.7) for fit in fits]
        r = np.concatenate([(Y[mask[:, t], t] - X[mask[:, t]] @ W[t])
                            - (Y[mask[:, t], t] - X[mask[:, t]] @ W[t]).mean() for t in range(T)])
        yc = np.concatenate([Y[mask[:, t], t] - Y[mask[:, t], t].mean() for t in range(T)])
        n_t = np.repeat(mask.sum(axis=0), mask.sum(axis=0))
        expected_dual = np.sum((r * yc / 1.7 - 0.5 * r**2 / 1.7**2) / n_t)
        assert duals == pytest.approx([expected_dual] * 2, rel=1e-12)
    # more observations than rows (two labels on a row, a third of the pairs): X shared, not
    # copied (the Fortran-ordered X is kept)
    mask[0] = True
    assert MaskedDesign(X, mask, center=center, row_major=True).shared


@pytest.mark.parametrize("cls", [Quadratic, Logistic])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_indexed_row_major_design_gives_the_closed_forms(cls, fit_intercept):
    """Wide data with labels on under a quarter of its (row, task) pairs and more labels than
    rows (bioactivity data: most molecules measured on a few targets), for a solver that reads
    whole tasks: X kept C-ordered, each observation's row read through its index (the
    row-wise kernels), with the values and gradients of the closed form and the
    Fortran-ordered design's per-observation vectors; a C-ordered float64 X is not copied
    when the design is not centred."""
    rng = np.random.default_rng(3)
    n, d, T = 50, 6, 8
    X = rng.normal(size=(n, d)) + 0.5
    Y = X @ rng.normal(size=(d, T)) + rng.normal(size=(n, T))
    if cls is Logistic:
        Y = (Y > np.median(Y, axis=0)).astype(float)
    mask = rng.random((n, T)) < 0.1  # with the diagonal below, about 1.7 labels a row
    mask[np.arange(n), np.arange(n) % T] = True  # every row and every task labelled
    assert n < mask.sum() < n * T / 4
    W, b, expected, center, column = _point_and_reference(cls, X, Y, mask, fit_intercept, rng)
    design = MaskedDesign(X, mask, center=center, row_major=True)
    assert design.row_major and not design.shared and design.X.flags.c_contiguous
    assert np.shares_memory(design.X, X) == (not center)
    np.testing.assert_array_equal(design.obs_row, column.obs_row)
    _assert_design_matches(design, column, cls, Y, W, b, fit_intercept, expected, rng)


def test_logistic_functions_match_the_references():
    # the sigmoid and log(1 + exp(x)) of the logistic loss, to relative rounding from the far
    # tails to 0 (below -745 the sigmoid underflows to 0, as scipy's does to a denormal)
    x = np.concatenate([np.linspace(-800.0, 800.0, 4001), [-1e-300, 0.0, 1e-300, 37.0, -37.0]])
    np.testing.assert_allclose(_expit(x), scipy.special.expit(x), rtol=4e-16, atol=1e-300)
    np.testing.assert_allclose(_log1pexp(x), np.logaddexp(0.0, x), rtol=4e-16, atol=0)
    assert _expit(np.array([-800.0]))[0] == 0.0 and _expit(np.array([800.0]))[0] == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning in the tails
        _expit(np.array([-1e4, 1e4]))


@pytest.mark.parametrize("cls", [Quadratic, Logistic])
@pytest.mark.parametrize("missing", [0.0, 0.5])
def test_shared_rows_design_gives_the_closed_forms(cls, missing):
    """Wide data with labels on a quarter of its (row, task) pairs or more, for a solver that
    reads whole tasks (``row_major=True``): the BLAS products with the shared X give the
    values and gradients of the closed form and the Fortran-ordered design's vectors; fewer
    labels, or ``row_major=False``, keep the kernels."""
    X, Y, _, rng = _data(n=60, classification=cls is Logistic)
    T = Y.shape[1]
    mask = rng.random(Y.shape) >= missing
    mask[:T, :] = True  # the first rows labelled in every task
    W, b, expected, center, column = _point_and_reference(cls, X, Y, mask, True, rng)
    shared = MaskedDesign(X, mask, center=center, row_major=True)
    assert shared.shared and not shared.row_major and not column.shared
    _assert_design_matches(shared, column, cls, Y, W, b, True, expected, rng)
    sparse_mask = np.zeros(Y.shape, dtype=bool)  # one label per row: under a quarter
    sparse_mask[np.arange(60), np.arange(60) % T] = True
    assert not MaskedDesign(X, sparse_mask, center=center, row_major=True).shared


@pytest.mark.parametrize("cls", [Quadratic, Logistic])
def test_compiled_kernels_agree_with_the_python_half(cls):
    X, Y, mask, rng = _data(classification=cls is Logistic)
    fit = _build(cls, X, Y, mask, fit_intercept=False)
    design = fit.design
    T, d = mask.shape[1], X.shape[1]
    W = 0.3 * rng.normal(size=(T, d))
    state = fit.init_state(W)
    G = fit.neg_gradient(state)
    j = 2
    corr = design.correlations(cls.gradient_vector(state), [j])[:, 0]
    for t in range(T):
        ng = cls.block_neg_gradient(state, corr[t], design.n_t[t], j, t)
        assert ng == pytest.approx(G[t, j], rel=1e-12)
    # a block step through the kernels lands on the state of the moved coefficients
    delta = rng.normal(size=T)
    moving, sign = cls.moving(state)
    for k in range(design.n_obs):
        t = design.obs_task[k]
        moving[k] += sign * X[design.obs_row[k], j] * delta[t]
    for t in range(T):
        cls.block_step(state, j, t, delta[t])
    cls.refresh(state, 0, design.n_obs)
    W[:, j] += delta
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        moved = fit.init_state(W)
    assert fit.value(state) == pytest.approx(fit.value(moved), rel=1e-12)
    np.testing.assert_allclose(fit.neg_gradient(state), fit.neg_gradient(moved), atol=1e-12)


@pytest.mark.parametrize("sparse", [False, True])
def test_pulled_logistic_kernels_step_with_the_intercepts_of_the_design_fixed(sparse):
    """Coordinate descent on a pulled logistic datafit (several tasks, intercepts): a block
    step keeps the intercepts of the design's X fixed, those of the centred X when X is dense
    and those of X itself when it is sparse (centred implicitly: a step moves only the nonzero
    entries' predictions, and the pulled intercepts). The kernels' block gradient is the
    derivative in those coordinates (finite differences), and a step lands on the state of
    the moved coefficients."""
    X, Y, mask, rng = _data(classification=True)
    X[:, 2] += 1e3  # a column far from its zero: the pull at the mean of X is what matters
    fit = _build(Logistic, sp.csc_matrix(X) if sparse else X, Y, mask, fit_intercept=True)
    design = fit.design
    x_mean = _observed_mean(X, mask)
    np.testing.assert_allclose(design.x_shift + fit.x_mean, x_mean, rtol=1e-12)
    # sparse: the column far from its zero (mean above its spread) is centred by the design,
    # the others implicitly
    assert np.flatnonzero(fit.x_mean == 0).tolist() == ([2] if sparse else list(range(5)))
    stored = (sp.csc_matrix((design.data, design.indices, design.indptr), shape=X.shape)
              .toarray() if sparse else design.X)
    np.testing.assert_allclose(stored, X - design.x_shift, rtol=1e-12, atol=1e-9)
    origin = design.x_shift  # where the intercepts a block step keeps fixed are taken
    T, d = mask.shape[1], X.shape[1]
    W, b = 0.01 * rng.normal(size=(T, d)), 0.5 * rng.normal(size=T)
    fixed = b + W @ origin

    def state_at(W):
        return fit.init_state(W, fixed - W @ origin)

    state, h = state_at(W), 1e-7
    for j in (0, 2):
        corr = design.correlations(Logistic.gradient_vector(state), [j])[:, 0]
        for t in range(T):
            ng = Logistic.block_neg_gradient(state, corr[t], design.n_t[t], j, t)
            E = np.zeros_like(W)
            E[t, j] = h
            finite = (fit.value(state_at(W - E)) - fit.value(state_at(W + E))) / (2 * h)
            assert ng == pytest.approx(finite, rel=1e-5, abs=1e-8)
    for j in (0, 2):
        delta = 1e-3 * rng.normal(size=T)
        moving, sign = Logistic.moving(state)
        for k in range(design.n_obs):
            moving[k] += sign * stored[design.obs_row[k], j] * delta[design.obs_task[k]]
        for t in range(T):
            Logistic.block_step(state, j, t, delta[t])
        Logistic.refresh(state, 0, design.n_obs)
        W[:, j] += delta
        moved = state_at(W)
        assert fit.value(state) == pytest.approx(fit.value(moved), rel=1e-12)
        for part in (0, 1, 3, 6):  # derivatives, predictions, pulled intercepts, their sums
            np.testing.assert_allclose(state[part], moved[part], rtol=1e-10, atol=1e-13)
