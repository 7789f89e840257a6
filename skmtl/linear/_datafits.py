"""Per-task datafits on the observed rows of each task, behind one interface.

Task ``t`` sees the ``n_t`` rows where ``mask[:, t]`` is True (its own rows in long data, the
rows with a label in wide data), given as a :class:`~skmtl.linear._designs.MaskedDesign`. A
datafit is the sum over tasks of the per-task mean loss:

- :class:`Quadratic`: ``sum_t 1 / (2 n_t) ||y_t - X_t w_t - b_t||^2``;
- :class:`Logistic`: ``sum_t 1 / n_t sum_i log(1 + exp(-s_i (x_i w_t + b_t)))``, ``s_i = +-1``.

The interface (:class:`Datafit`) has two halves. The Python half works on whole arrays between
epochs: value, negative gradient, per-block curvature, intercepts. The compiled half is five
numba functions (class attributes) that the block coordinate descent epoch calls for one block
step; the solver compiles its epoch once per datafit class with them inlined
(:func:`skmtl.linear._solver_bcd.bcd_epoch`), so it never asks which datafit it runs. A new
datafit is one subclass of :class:`Datafit`.

A datafit's *state* is a tuple of arrays that the solver passes around and the datafit updates
in place (its first entries are per-observation vectors in the design's observation order).
"""

import numpy as np
from numba import njit

__all__ = ["Datafit", "Logistic", "Quadratic"]

# A per-task curvature below this fraction of the feature's largest one counts as zero.
_RELATIVE_TINY = 1e-13


def curvature_threshold(L):
    """Per-task curvatures ``L`` (n_tasks, n_features) with the negligible ones set to zero."""
    return L * (L > _RELATIVE_TINY * L.max(axis=0, initial=0.0))


# -- compiled kernels shared by datafits ------------------------------------------------------
@njit(cache=True)
def _first(state):
    return state[0]


@njit(cache=True)
def _no_block_step(state, j, t, delta):
    pass


@njit(cache=True)
def _no_refresh(state, start, stop):
    pass


class Datafit:
    """The interface of a datafit (subclasses set the attributes and methods below).

    Parameters
    ----------
    design : MaskedDesign
    y_obs : ndarray of shape (n_obs,)
        The observed targets, in the design's observation order.
    fit_intercept : bool

    Attributes
    ----------
    lipschitz : ndarray of shape (n_tasks, n_features)
        Per-task curvature of each feature's block (a Lipschitz constant of the block's
        gradient, or its exact curvature for least squares); zero for a constant column.
    has_dual : bool
        Whether :meth:`dual_value` exists (the solver then stops on the duality gap, else on
        the KKT violation).
    affine_gradient : bool
        Whether :meth:`neg_gradient` (and the intercept gradient) is an affine function of
        the coefficients (least squares): the gradient at an extrapolated point is then the
        same extrapolation of the gradients.
    cache_kernels : bool
        Whether the epoch compiled for this class is cached on disk (next to skmtl's files,
        named after a checksum of the datafit's module): True for skmtl's datafits; False
        by default, so that a datafit defined elsewhere (a test, a notebook) is compiled in
        each process instead.

    Compiled kernels (numba functions stored as static class attributes; ``state`` is the
    tuple from :meth:`init_state`):

    - ``gradient_vector(state)``: the per-observation vector ``g`` whose per-task
      correlations with feature j, ``corr_t = sum_k x_kj g_k``, give the block's gradient;
    - ``block_neg_gradient(state, corr_t, n_t, j, t)``: minus the loss's derivative in
      ``W[t, j]``;
    - ``block_step(state, j, t, delta)``: bookkeeping after ``W[t, j] += delta``;
    - ``moving(state)``: ``(array, sign)``, the per-observation vector that moves by
      ``sign * x_kj * delta_t`` after a block step;
    - ``refresh(state, start, stop)``: recompute what depends on it for observations
      ``start .. stop - 1``.
    """

    has_dual = False
    affine_gradient = False
    cache_kernels = False
    gradient_vector = staticmethod(_first)
    block_step = staticmethod(_no_block_step)
    refresh = staticmethod(_no_refresh)

    def __init__(self, design, y_obs, fit_intercept):
        self.design = design
        self.fit_intercept = fit_intercept
        # the mean subtracted from X implicitly, beyond the design's x_shift (its free
        # intercepts are those at x = x_shift + x_mean)
        self.x_mean = np.zeros(design.n_features)

    @classmethod
    def center_design(cls, fit_intercept, n_tasks):
        """Whether the solver may centre a dense X (the intercepts absorb the shift)."""
        return fit_intercept

    def init_state(self, W, b=None):
        """The state at coefficients ``W`` and intercepts ``b`` (None: the best ones for W, or
        the intercept-only optimum)."""
        raise NotImplementedError

    def value(self, state):
        """The datafit's value."""
        raise NotImplementedError

    def state_and_neg_gradient(self, W, b=None):
        """:meth:`init_state` and :meth:`neg_gradient` (all features) at ``(W, b)``."""
        state = self.init_state(W, b)
        return state, self.neg_gradient(state)

    def neg_gradient(self, state, features=None):
        """``-d loss / d W[:, features]``, shape (n_tasks, len(features))."""
        return -self.design.correlations(state[0], features) / self.design.n_t[:, None]

    def update_intercepts(self, state):
        """Improve the intercepts (in place), after each epoch."""

    def intercept_gradient(self, state):
        """The gradient in the intercepts, or None (none fitted, or eliminated exactly)."""
        return None

    def intercepts(self, W, state):
        """The intercepts (of the design's possibly centred X)."""
        return np.zeros(self.design.n_tasks)

    def intercept_vector(self, state):
        """The free intercepts, extrapolated with the coefficients (Anderson)."""
        return np.zeros(0)

    #: positions of the state's parts that no step changes (shared, never copied)
    constant_state = ()

    def extrapolated(self, state):
        """The state's arrays that are affine in (coefficients, intercepts)."""
        raise NotImplementedError

    def set_extrapolated(self, state, arrays):
        """Set the arrays of :meth:`extrapolated` (and refresh what depends on them)."""
        raise NotImplementedError

    def dual_value(self, state, scale):
        """Dual objective at the dual point given by the state rescaled by ``1 / scale``."""
        raise NotImplementedError


# -- least squares ----------------------------------------------------------------------------
@njit(cache=True)
def _quadratic_block_neg_gradient(state, corr, n_t, j, t):
    return corr / n_t + state[1][t] * state[2][j, t]


@njit(cache=True)
def _quadratic_block_step(state, j, t, delta):
    state[1][t] += state[2][j, t] * delta


@njit(cache=True)
def _quadratic_moving(state):
    return state[0], -1.0


@njit(cache=True)
def _quadratic_residual_sums(v, c, obs_task, y, squares, products):
    """``squares[t] += r_i^2`` (and ``products[t] += r_i y_i`` when it is not empty) over the
    observations, ``r_i = v_i + c_t``."""
    cross = products.shape[0] > 0
    for k in range(v.shape[0]):
        t = obs_task[k]
        r = v[k] + c[t]
        squares[t] += r * r
        if cross:
            products[t] += r * y[k]


@njit(cache=True)
def _quadratic_residual_segment_sums(v, c, task_ptr, y, squares, products):
    """:func:`_quadratic_residual_sums` of observations in task-major order."""
    cross = products.shape[0] > 0
    for t in range(squares.shape[0]):
        ct = c[t]
        acc_squares = 0.0
        acc_products = 0.0
        for k in range(task_ptr[t], task_ptr[t + 1]):
            r = v[k] + ct
            acc_squares += r * r
            if cross:
                acc_products += r * y[k]
        squares[t] = acc_squares
        if cross:
            products[t] = acc_products


class Quadratic(Datafit):
    """Least squares ``sum_t 1 / (2 n_t) ||y_t - X_t w_t - b_t||^2`` on observed rows.

    With ``fit_intercept``, the intercepts are eliminated exactly (``b_t = mean(y_t) -
    mean(X_t) w_t``): the loss is that of the per-task centred data, handled implicitly so a
    sparse X stays sparse. The state is ``(v, c, mu^T)``, residuals ``r_i = v_i + c_t``: a
    step ``delta`` on feature j subtracts ``x_ij delta_t`` from ``v`` and adds
    ``mu_tj delta_t`` to ``c`` (``mu`` the per-task column means, zero without intercepts).
    """

    has_dual = True
    affine_gradient = True
    cache_kernels = True
    constant_state = (2,)  # mu^T
    block_neg_gradient = staticmethod(_quadratic_block_neg_gradient)
    block_step = staticmethod(_quadratic_block_step)
    moving = staticmethod(_quadratic_moving)

    def __init__(self, design, y_obs, fit_intercept):
        super().__init__(design, y_obs, fit_intercept)
        n_t = design.n_t
        s1, s2 = design.task_moments()
        if fit_intercept:
            self.y_mean = design.task_sums(y_obs) / n_t
            self.mu = s1 / n_t[:, None]
            L = s2 / n_t[:, None] - self.mu**2
        else:
            self.y_mean = np.zeros(design.n_tasks)
            self.mu = np.zeros((design.n_tasks, design.n_features))
            L = s2 / n_t[:, None]
        self.lipschitz = curvature_threshold(np.maximum(L, 0.0))
        self.y_centered = y_obs - self.y_mean[design.obs_task]
        self._mut = np.ascontiguousarray(self.mu.T)

    def init_state(self, W, b=None):
        v = self.y_centered - self.design.predict_obs(W)
        c = np.einsum("tj,tj->t", self.mu, W)
        return v, c, self._mut

    def state_and_neg_gradient(self, W, b=None):
        # the residuals and their correlations in one pass over a dense X
        v, corr = self.design.residual_correlations(W, self.y_centered)
        c = np.einsum("tj,tj->t", self.mu, W)
        return (v, c, self._mut), corr / self.design.n_t[:, None] + c[:, None] * self.mu

    def residuals(self, state):
        return state[0] + state[1][self.design.obs_task]

    def _residual_sums(self, state, cross):
        """Per-task sums of ``r_i^2`` and (``cross``) of ``r_i y_i``, y centred: the
        residuals are not formed (the same sums, in the same order, as ``task_sums``)."""
        design = self.design
        T = design.n_tasks
        squares, products = np.zeros(T), np.zeros(T if cross else 0)
        if design.sparse:  # observations in row-major order
            _quadratic_residual_sums(state[0], state[1], design.obs_task, self.y_centered,
                                     squares, products)
        else:  # task-major order: each task's observations are a contiguous range
            _quadratic_residual_segment_sums(state[0], state[1], design.task_ptr,
                                             self.y_centered, squares, products)
        return squares, products

    def value(self, state):
        squares, _ = self._residual_sums(state, False)
        return 0.5 * float(np.sum(squares / self.design.n_t))

    def neg_gradient(self, state, features=None):
        v, c, _ = state
        corr = self.design.correlations(v, features)
        mu = self.mu if features is None else self.mu[:, features]
        return corr / self.design.n_t[:, None] + c[:, None] * mu

    def intercepts(self, W, state):
        if not self.fit_intercept:
            return np.zeros(self.design.n_tasks)
        return self.y_mean - np.einsum("tj,tj->t", self.mu, W)

    def extrapolated(self, state):
        return [state[0], state[1]]

    def set_extrapolated(self, state, arrays):
        state[0][:] = arrays[0]
        state[1][:] = arrays[1]

    def dual_value(self, state, scale):
        """Dual objective at ``theta_t = r_t / (n_t * scale)``."""
        squares, products = self._residual_sums(state, True)
        first = products / self.design.n_t
        second = squares / self.design.n_t
        # divided twice: scale is up to dual_norm / alpha, whose square overflows at tiny
        # alpha (1e-200: an OverflowError)
        return float(np.sum(first / scale - 0.5 * second / scale / scale))


# -- logistic ---------------------------------------------------------------------------------
@njit(cache=True)
def _logistic_derivative(z, s):
    # -s * sigmoid(-s z), computed without overflow
    u = s * z
    if u >= 0.0:
        e = np.exp(-u)
        return -s * e / (1.0 + e)
    return -s / (1.0 + np.exp(u))


@njit(cache=True)
def _logistic_loss(z, s):
    u = -s * z
    if u > 0.0:
        return u + np.log1p(np.exp(-u))
    return np.log1p(np.exp(u))


@njit(cache=True)
def neg_mean_correlation(state, corr, n_t, j, t):
    return -corr / n_t


@njit(cache=True)
def _logistic_block_neg_gradient(state, corr, n_t, j, t):
    # the derivative in W[t, j] with the intercepts of X fixed: the pulled intercept
    # b'_t = b_t + w_t . mu moves with it (mu is zero unless X is centred implicitly)
    mu, kappa, sums = state[4], state[5], state[6]
    pull = kappa[t] * (state[3][t] - sums[0] / sums[1]) if mu[j] != 0.0 else 0.0
    return -corr / n_t - mu[j] * pull


@njit(cache=True)
def _logistic_block_step(state, j, t, delta):
    shift = state[4][j] * delta
    if shift != 0.0:
        state[3][t] += shift
        state[6][0] += state[5][t] * shift


@njit(cache=True)
def predictor_moving(state):
    return state[1], 1.0


@njit(cache=True)
def _logistic_refresh(state, start, stop):
    v, z, signs = state[0], state[1], state[2]
    for k in range(start, stop):
        v[k] = _logistic_derivative(z[k], signs[k])


class Logistic(Datafit):
    """Binary logistic loss ``sum_t 1 / n_t sum_i log(1 + exp(-s_i (x_i w_t + b_t)))``.

    ``s_i = 2 y_i - 1`` for labels ``y_i`` in {0, 1}.

    With intercepts and two tasks or more, the intercepts get the pull
    ``sum_t kappa_t / 2 * (b'_t - b'_bar)^2`` (see :func:`_pull_value`) on the intercepts at
    the mean of X, ``b'_t = b_t + mu w_t`` (``mu`` the mean of the observed rows, each row
    counted once per task that observes it, as the design centres a dense X). Pulling the
    intercepts of the given X instead would make the model depend on where each column's zero
    is: a column of years, or a constant of 1e6, escaped the pull (its coefficients acting as
    free intercepts) and dominated the penalty path and the solvers' step sizes. With this
    pull, adding a constant to a column changes the intercepts only.

    A dense X is centred (``design.x_shift``), so the pulled intercepts are the free ones; a
    sparse X is centred implicitly (``x_mean``), the linear predictors being
    ``z = x w_t - mu w_t + b'_t``, but for its columns whose mean exceeds their spread,
    which the design centres (``center_design`` is ``"columns"``: such a column, a near copy
    of the intercepts, would leave coordinate descent crawling).
    The state is ``(v, z, s, b', mu, kappa, sums)``: the loss derivatives
    ``v = -s sigmoid(-s z)`` of the linear predictors (n_obs,), the signs, the pulled
    intercepts, the implicit mean ``mu`` (zero unless X is sparse and pulled), ``kappa`` and
    ``sums = (kappa . b', sum(kappa))``. A block step of coordinate descent keeps the
    intercepts of X fixed, so ``b'`` moves with ``W`` (``b'_t += mu_j delta``): ``z`` then
    changes on the column's nonzero entries only. Lipschitz constants
    ``||X_t[:, j]||^2 / (4 n_t) + mu_j^2 kappa_t`` (the centred ones when X is centred).

    :meth:`neg_gradient` is the gradient in ``W`` with ``b'`` fixed, that of the centred X:
    the coordinates of a solver that steps all of ``W`` at once (trace norm).
    """

    cache_kernels = True
    constant_state = (2, 4, 5)  # the signs, mu and kappa
    block_neg_gradient = staticmethod(_logistic_block_neg_gradient)
    block_step = staticmethod(_logistic_block_step)
    moving = staticmethod(predictor_moving)
    refresh = staticmethod(_logistic_refresh)

    def __init__(self, design, y_obs, fit_intercept):
        super().__init__(design, y_obs, fit_intercept)
        labels = np.unique(y_obs)
        if not np.all(np.isin(labels, (0.0, 1.0))):
            raise ValueError(f"logistic labels must be 0 or 1; got {labels[:5].tolist()}.")
        self.signs = np.where(np.asarray(y_obs) > 0, 1.0, -1.0)
        s1, s2 = design.task_moments()
        n_t = design.n_t
        pull = fit_intercept and design.n_tasks > 1
        self.pull = 1.0 / (4.0 * n_t) if pull else None
        self.kappa = self.pull if pull else np.zeros(design.n_tasks)
        # the implicit centring of a sparse X (a dense one is centred by the design)
        if pull and design.sparse and design.n_obs:
            self.x_mean = s1.sum(axis=0) / design.n_obs
            self.x_mean[design.x_shift != 0] = 0.0  # columns the design centred
        L = s2 / (4.0 * n_t[:, None]) + self.kappa[:, None] * self.x_mean**2
        self.lipschitz = curvature_threshold(L)

    @classmethod
    def center_design(cls, fit_intercept, n_tasks):
        return "columns" if fit_intercept else False

    def derivative(self, z):
        s = self.signs
        return -s * _expit(-s * z)

    def init_state(self, W, b=None):
        design = self.design
        z = design.predict_obs(W)
        if self.x_mean.any():  # the implicit centring, -mu w_t
            z -= (W @ self.x_mean)[design.obs_task]
        if not self.fit_intercept:
            b = np.zeros(design.n_tasks)
        elif b is not None:  # the intercepts of X, at the mean of X
            b = b + W @ (design.x_shift + self.x_mean)
        elif self.pull is not None:  # W's optimal intercepts
            b = _pulled_intercepts(design, self.signs, z, self.pull)
        else:  # the intercept-only optimum, exact when W = 0
            b = _logit_of_task_means(design, self.signs) + W @ design.x_shift
        z += b[design.obs_task]
        sums = np.array([self.kappa @ b, self.kappa.sum()])
        return self.derivative(z), z, self.signs, b, self.x_mean, self.kappa, sums

    def value(self, state):
        z, b = state[1], state[3]
        losses = _log1pexp(-self.signs * z)
        loss = float(np.sum(self.design.task_sums(losses) / self.design.n_t))
        if self.pull is not None:
            loss += _pull_value(b, self.pull)
        return loss

    def neg_gradient(self, state, features=None):
        G = super().neg_gradient(state, features)
        if self.x_mean.any():
            mean = self.x_mean if features is None else self.x_mean[features]
            G += np.outer(self.design.task_sums(state[0]) / self.design.n_t, mean)
        return G

    def update_intercepts(self, state):
        v, z, signs, b = state[:4]
        design = self.design
        if self.pull is not None:
            v[:] = _pulled_intercept_newton(design, signs, z, b, self.pull)
            state[6][0] = self.kappa @ b
        elif self.fit_intercept:
            _logistic_intercept_step(design.obs_task, design.n_t, z, v, signs, b)

    def intercept_gradient(self, state):
        if not self.fit_intercept:
            return None
        g_b = self.design.task_sums(state[0]) / self.design.n_t
        if self.pull is not None:
            g_b = g_b + _pull_gradient(state[3], self.pull)
        return g_b

    def intercepts(self, W, state):
        if not self.fit_intercept:
            return np.zeros(self.design.n_tasks)
        return state[3] - W @ self.x_mean

    def intercept_vector(self, state):
        return state[3]

    def extrapolated(self, state):
        return [state[1], state[3]]

    def set_extrapolated(self, state, arrays):
        v, z, _, b = state[:4]
        z[:] = arrays[0]
        b[:] = arrays[1]
        v[:] = self.derivative(z)
        state[6][0] = self.kappa @ b


def _expit(x):
    """The logistic sigmoid ``1 / (1 + exp(-x))``, to relative precision for every x (``exp(-x)``
    overflows to inf below -709, giving 0, the sigmoid's value there to double precision); one
    vectorised pass, about 10 times faster than splitting x by sign."""
    with np.errstate(over="ignore"):
        out = np.exp(-np.asarray(x, dtype=np.float64))
    out += 1.0
    return np.reciprocal(out, out=out)


def _log1pexp(x):
    """``log(1 + exp(x))`` without overflow, as ``max(x, 0) + log1p(exp(-|x|))``: the value of
    ``np.logaddexp(0, x)`` to rounding, about 3 times faster."""
    x = np.asarray(x, dtype=np.float64)
    out = np.exp(-np.abs(x))
    np.log1p(out, out=out)
    out += np.maximum(x, 0.0)
    return out


def _logit_of_task_means(design, signs):
    p = design.task_sums((signs > 0).astype(float)) / design.n_t
    with np.errstate(divide="ignore"):
        return np.log(p) - np.log1p(-p)


@njit(cache=True)
def _logistic_intercept_step(obs_task, n_t, z, v, signs, b):
    """One step per task on the intercepts: Newton's, or the Lipschitz (1/4) step when
    Newton's does not lower the task's loss (which the Lipschitz step always does)."""
    T = b.shape[0]
    g = np.zeros(T)
    h = np.zeros(T)
    before = np.zeros(T)
    for k in range(z.shape[0]):
        t = obs_task[k]
        g[t] += v[k]
        p = -v[k] * signs[k]  # sigmoid(-s z)
        h[t] += p * (1.0 - p)
        before[t] += _logistic_loss(z[k], signs[k])
    newton = np.empty(T)
    for t in range(T):
        newton[t] = -g[t] / h[t] if h[t] > 0.0 else -4.0 * g[t] / n_t[t]
    after = np.zeros(T)
    for k in range(z.shape[0]):
        t = obs_task[k]
        after[t] += _logistic_loss(z[k] + newton[t], signs[k])
    step = np.empty(T)
    for t in range(T):
        step[t] = newton[t] if after[t] <= before[t] else -4.0 * g[t] / n_t[t]
        b[t] += step[t]
    for k in range(z.shape[0]):
        z[k] += step[obs_task[k]]
        v[k] = _logistic_derivative(z[k], signs[k])


# -- pulled intercepts (logistic) ---------------------------------------------------------------
# With several tasks, the logistic intercepts at the mean of X (those of the centred X, ``b'``
# in :class:`Logistic`, written b here) get the penalty
#     sum_t kappa_t / 2 * (b_t - b_bar)^2,  kappa_t = 1 / (4 n_t),
#     b_bar = sum_t kappa_t b_t / sum_t kappa_t,
# a Gaussian prior on each intercept around the (precision-weighted) mean intercept worth one
# label of its task (1 / 4 is the curvature of one label's log loss at probability 1 / 2, and
# each label weighs 1 / n_t). It keeps the intercept of a task that saw one class finite, and
# fades as a task's labels grow in number. Its gradient is kappa_t (b_t - b_bar) (the
# derivative through b_bar vanishes) and its Hessian diag(kappa) - kappa kappa^T / sum(kappa).
def _pull_value(b, kappa):
    centre = kappa @ b / kappa.sum()
    return 0.5 * float(kappa @ (b - centre) ** 2)


def _pull_gradient(b, kappa):
    return kappa * (b - kappa @ b / kappa.sum())


# Newton's decrement on the intercepts, relative to the loss, below which a step is taken
# whole: a value can show a decrease of about 1e-16 of itself, per term summed
_SEARCHED_DECREASE = 1e-12


def _pulled_intercept_newton(design, signs, z, b, kappa):
    """One Newton step on the intercepts (W fixed), with a backtracking line search.

    Updates ``z`` and ``b`` in place and returns the new per-observation derivatives ``v``.
    The Hessian ``diag(h + kappa) - kappa kappa^T / sum(kappa)`` is inverted by
    Sherman-Morrison.
    """
    tasks, n_t = design.obs_task, design.n_t
    u = -signs * z
    p = _expit(u)  # sigmoid(-s z)
    v = -signs * p
    g = np.bincount(tasks, weights=v, minlength=b.shape[0]) / n_t + _pull_gradient(b, kappa)
    h = np.bincount(tasks, weights=p * (1.0 - p), minlength=b.shape[0]) / n_t
    D = h + kappa
    Dg, Dk = g / D, kappa / D
    denominator = kappa.sum() - kappa @ Dk
    step = -(Dg + Dk * (kappa @ Dg) / denominator) if denominator > 0 else -Dg

    def value(shift):
        losses = _log1pexp(-signs * (z + shift[tasks]))
        return float(np.sum(np.bincount(tasks, weights=losses, minlength=b.shape[0]) / n_t)
                     ) + _pull_value(b + shift, kappa)

    before, size = value(np.zeros_like(b)), 1.0
    slope = float(g @ step)
    # a decrease the loss cannot show (at its rounding level) is not searched: the full
    # step is then Newton's, well inside its quadratic region. Searched, every halving
    # failed on rounding, and the intercepts stalled with gradients of about 1e-9 (X in
    # small units then left BlockSparseClassifier's criterion, relative to alpha_max,
    # above tol for max_iter epochs)
    if -slope > _SEARCHED_DECREASE * max(abs(before), 1.0):
        while size > 1e-10 and value(size * step) > before + 1e-4 * size * slope:
            size *= 0.5
    if size > 1e-10:
        b += size * step
        z += size * step[tasks]
    return -signs * _expit(-signs * z)


def _pulled_intercepts(design, signs, z, kappa, b=None, max_iter=100):
    """The optimal pulled intercepts for linear predictors ``z`` (without intercepts)."""
    b = np.zeros(design.n_tasks) if b is None else b.copy()
    z = z + b[design.obs_task]
    for _ in range(max_iter):
        before = b.copy()
        _pulled_intercept_newton(design, signs, z, b, kappa)
        if np.max(np.abs(b - before)) <= 1e-12 * max(1.0, np.max(np.abs(b))):
            break
    return b
