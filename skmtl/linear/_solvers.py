"""Solvers for block-sparse multi-task linear models.

Problem (``W`` of shape (n_tasks, n_features), intercepts ``b`` of shape (n_tasks,))::

    min_{W, b}  sum_t loss_t(y_t, X_t w_t + b_t)  +  alpha * sum_j ||W[:, j]||_q

where task t's loss is its mean loss over its own observed rows (see :mod:`._datafits`) and
``q`` is 2 or inf (see :mod:`._penalties`).

The solver is block coordinate descent (BCD) over features with working sets and Anderson
acceleration:

- a block is one feature's coefficients in all tasks. For least squares its exact minimiser is
  computed (each task has its own curvature on the feature: a 1-D root find for q = 2, a sorted
  threshold for q = inf); for the logistic loss it is a block proximal-gradient step with
  per-task Lipschitz constants;
- residuals (or linear predictors) are kept per observed (row, task) pair and updated after
  each block step, so a step costs one pass over the feature's column of X (dense or sparse);
- an outer loop ranks the features by their KKT violation, solves the problem restricted to the
  support plus the worst violators (growing the set), and stops on the duality gap of the full
  problem (least squares: the residuals rescaled into a feasible dual point; the reported gap is
  relative, ``(primal - dual) / primal``) or on the relative KKT violation (logistic);
- every few epochs an Anderson extrapolation of the last iterates is kept when it lowers the
  objective.

Where the problem is exactly scikit-learn's :class:`~sklearn.linear_model.MultiTaskLasso`
(least squares, q = 2, dense X, every label observed), :func:`solve_block_sparse` calls it
instead (``solver="auto"``) and checks its duality gap with the formula used here.
"""

import warnings

import numpy as np
import scipy.sparse as sp
from numba import njit
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import MultiTaskLasso

from skmtl.linear._datafits import (
    Logistic,
    MaskedDesign,
    Quadratic,
    _column_corr,
    _dense_task_axpy,
)
from skmtl.linear._penalties import BlockPenalty, _prox_block, block_norms

__all__ = ["block_sparse_alpha_max", "solve_block_sparse"]

_DATAFITS = {"quadratic": Quadratic, "logistic": Logistic}
_ANDERSON_K = 5
_CHECK_EVERY = 5


def _check_inputs(X, Y, mask, q, datafit):
    if q not in (2, np.inf):
        raise ValueError(f"q must be 2 or np.inf; got {q!r}.")
    if datafit not in _DATAFITS:
        raise ValueError(f"datafit must be one of {sorted(_DATAFITS)}; got {datafit!r}.")
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    mask = np.ones(Y.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != Y.shape or X.shape[0] != Y.shape[0]:
        raise ValueError(
            f"X {X.shape}, Y {Y.shape} and mask {mask.shape} must have the same number of rows, "
            "and Y and mask the same shape."
        )
    empty = np.flatnonzero(~mask.any(axis=0))
    if empty.size:
        raise ValueError(f"Task(s) {empty[:5].tolist()} have no observed label.")
    return Y, mask


def _pulls(datafit, fit_intercept, n_tasks):
    """Whether the intercepts are pulled towards their mean (logistic, intercepts, T >= 2)."""
    return datafit == "logistic" and fit_intercept and n_tasks > 1


def _setup(X, Y, mask, datafit, fit_intercept):
    # pulled intercepts are those of the user's X: no centring of the design then
    pull = _pulls(datafit, fit_intercept, mask.shape[1])
    design = MaskedDesign(X, mask, center=fit_intercept and not pull)
    y_obs = Y[design.obs_row, design.obs_task]
    if datafit == "logistic":
        labels = np.unique(y_obs)
        if not np.all(np.isin(labels, (0.0, 1.0))):
            raise ValueError(f"logistic labels must be 0 or 1; got {labels[:5].tolist()}.")
    fit = _DATAFITS[datafit](design, y_obs, fit_intercept)
    fit.pull = 1.0 / (4.0 * design.n_t) if pull else None
    return design, fit


# -- pulled intercepts (logistic) ---------------------------------------------------------------
# With several tasks, the logistic intercepts get the penalty
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


def _pulled_intercept_newton(design, signs, z, b, kappa):
    """One Newton step on the intercepts (W fixed), with a backtracking line search.

    Updates ``z`` and ``b`` in place and returns the new per-observation derivatives ``v``.
    The Hessian ``diag(h + kappa) - kappa kappa^T / sum(kappa)`` is inverted by
    Sherman-Morrison.
    """
    tasks, n_t = design.obs_task, design.n_t
    u = -signs * z
    p = np.exp(-np.logaddexp(0.0, -u))  # sigmoid(-s z)
    v = -signs * p
    g = np.bincount(tasks, weights=v, minlength=b.shape[0]) / n_t + _pull_gradient(b, kappa)
    h = np.bincount(tasks, weights=p * (1.0 - p), minlength=b.shape[0]) / n_t
    D = h + kappa
    Dg, Dk = g / D, kappa / D
    denominator = kappa.sum() - kappa @ Dk
    step = -(Dg + Dk * (kappa @ Dg) / denominator) if denominator > 0 else -Dg

    def value(shift):
        losses = np.logaddexp(0.0, -signs * (z + shift[tasks]))
        return float(np.sum(np.bincount(tasks, weights=losses, minlength=b.shape[0]) / n_t)
                     ) + _pull_value(b + shift, kappa)

    before, size = value(np.zeros_like(b)), 1.0
    slope = float(g @ step)
    while size > 1e-10 and value(size * step) > before + 1e-4 * size * slope:
        size *= 0.5
    if size > 1e-10:
        b += size * step
        z += size * step[tasks]
    return -signs * np.exp(-np.logaddexp(0.0, signs * z))


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


def block_sparse_alpha_max(X, Y, mask=None, q=2, fit_intercept=True, datafit="quadratic"):
    """Smallest ``alpha`` for which the block-sparse solution is ``W = 0``.

    ``alpha_max = max_j ||G[:, j]||_{q*}`` where ``G`` is the negative gradient of the datafit
    at ``W = 0`` (with the optimal intercepts when ``fit_intercept``) and ``q*`` the dual
    exponent (2 for q = 2, 1 for q = inf).

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Design.
    Y : ndarray of shape (n_samples, n_tasks)
        Targets (``datafit="quadratic"``) or labels in {0, 1} (``"logistic"``); entries behind
        the mask are ignored.
    mask : ndarray of bool of shape (n_samples, n_tasks), default=None
        Observed labels; None means all observed.
    q : {2, np.inf}, default=2
        Block norm.
    fit_intercept : bool, default=True
        Whether the model has per-task intercepts.
    datafit : {"quadratic", "logistic"}, default="quadratic"
        Loss of each task.

    Returns
    -------
    alpha_max : float

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.linear._solvers import block_sparse_alpha_max, solve_block_sparse
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    >>> Y = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])
    >>> alpha_max = block_sparse_alpha_max(X, Y)
    >>> W, b, gap, n_iter = solve_block_sparse(X, Y, None, alpha_max)
    >>> bool(np.all(W == 0))
    True
    """
    Y, mask = _check_inputs(X, Y, mask, q, datafit)
    G = _gradient_at_zero(*_setup(X, Y, mask, datafit, fit_intercept), fit_intercept)
    return float(np.max(BlockPenalty(1.0, q).dual_norms(G), initial=0.0))


def _gradient_at_zero(design, datafit, fit_intercept):
    W = np.zeros((design.n_tasks, design.n_features))
    if datafit.logistic:
        b = np.zeros(design.n_tasks)
        if datafit.pull is not None:
            b = _pulled_intercepts(design, datafit.signs, np.zeros(design.n_obs), datafit.pull)
        elif fit_intercept:
            b = _logit_of_task_means(design, datafit)
        _, v = datafit.init_state(W, b)
        return datafit.neg_gradient(v)
    v, c = datafit.init_state(W)
    return datafit.neg_gradient(v, c)


def _logit_of_task_means(design, datafit):
    p = design.task_sums((datafit.signs > 0).astype(float)) / design.n_t
    with np.errstate(divide="ignore"):
        return np.log(p) - np.log1p(-p)


def solve_block_sparse(X, Y, mask, alpha, *, q=2, datafit="quadratic", fit_intercept=True,
                       W0=None, b0=None, tol=1e-6, max_iter=1000, solver="auto"):
    """Solve the block-sparse multi-task problem; warm-startable.

    Minimises over ``W`` (n_tasks, n_features) and ``b`` (n_tasks,)::

        sum_t 1 / n_t sum_{i observed in t} loss(y_it, x_i w_t + b_t)
            + alpha * sum_j ||W[:, j]||_q

    with ``loss(y, z) = (y - z)^2 / 2`` (``"quadratic"``) or ``log(1 + exp(-s z))``,
    ``s = 2 y - 1`` (``"logistic"``, y in {0, 1}); ``n_t`` is task t's number of observed rows.
    The logistic loss with intercepts and two tasks or more adds the pull of the intercepts,
    ``sum_t kappa_t / 2 (b_t - b_bar)^2`` with ``kappa_t = 1 / (4 n_t)`` and ``b_bar`` their
    kappa-weighted mean (see :class:`~skmtl.linear.BlockSparseClassifier`): it keeps the
    intercept of a task whose labels are all one class finite. The design is then not
    centred (the pulled intercepts are those of the given X).

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Design, dense or sparse (never densified).
    Y : ndarray of shape (n_samples, n_tasks)
        Targets or {0, 1} labels; entries behind the mask are never read.
    mask : ndarray of bool of shape (n_samples, n_tasks) or None
        Observed labels; None means all observed. Every task needs one.
    alpha : float
        Regularisation strength (>= 0).
    q : {2, np.inf}, default=2
        Block norm of each feature's column ``W[:, j]``.
    datafit : {"quadratic", "logistic"}, default="quadratic"
        Loss of each task.
    fit_intercept : bool, default=True
        Fit per-task unpenalised intercepts.
    W0, b0 : ndarray, default=None
        Warm start. For least squares only ``W0`` matters (the intercepts are eliminated
        exactly); for the logistic loss, ``b0=None`` starts from the intercept-only optimum.
    tol : float, default=1e-6
        Stop when the relative duality gap ``(primal - dual) / primal`` (least squares) or the
        relative KKT violation (logistic, see ``gap`` below) is at most ``tol``.
    max_iter : int, default=1000
        Maximum number of epochs (passes of block coordinate descent over the working set).
    solver : {"auto", "bcd", "sklearn"}, default="auto"
        ``"auto"`` calls scikit-learn's MultiTaskLasso where it solves exactly this problem
        (least squares, q = 2, dense X, every label observed, alpha > 0) and block coordinate
        descent otherwise; ``"sklearn"`` requires that case; ``"bcd"`` always uses ours.

    Returns
    -------
    W : ndarray of shape (n_tasks, n_features)
    b : ndarray of shape (n_tasks,)
    gap : float
        Least squares: the relative duality gap ``(P(W) - D(theta)) / P(W)`` with ``theta``
        the rescaled residuals. Logistic (and ``alpha = 0``): the largest violation of the
        optimality conditions (distance of the negative gradient to ``alpha`` times the block
        subdifferential, in the dual norm; intercept gradients) divided by ``alpha_max``.
    n_iter : int
        Number of epochs run.

    Warns
    -----
    ConvergenceWarning
        When ``gap > tol`` after ``max_iter`` epochs.
    """
    Y, mask = _check_inputs(X, Y, mask, q, datafit)
    n_tasks, n_features = Y.shape[1], X.shape[1]
    W0 = np.zeros((n_tasks, n_features)) if W0 is None else np.array(W0, dtype=np.float64)
    b0 = None if b0 is None else np.array(b0, dtype=np.float64)
    if W0.shape != (n_tasks, n_features) or (b0 is not None and b0.shape != (n_tasks,)):
        raise ValueError(
            f"W0 must have shape {(n_tasks, n_features)} and b0 {(n_tasks,)}; got {W0.shape} "
            f"and {None if b0 is None else b0.shape}."
        )
    sklearn_case = (datafit == "quadratic" and q == 2 and not sp.issparse(X) and mask.all()
                    and alpha > 0)
    if solver not in ("auto", "bcd", "sklearn"):
        raise ValueError(f"solver must be 'auto', 'bcd' or 'sklearn'; got {solver!r}.")
    if solver == "sklearn" and not sklearn_case:
        raise ValueError(
            "solver='sklearn' needs least squares, q=2, dense X, a fully observed Y and "
            "alpha > 0 (MultiTaskLasso's problem)."
        )
    if sklearn_case and solver != "bcd":
        W, b, gap, n_iter = _solve_sklearn(X, Y, alpha, fit_intercept, W0, tol, max_iter)
    else:
        W, b, gap, n_iter = _solve_bcd(X, Y, mask, alpha, q, datafit, fit_intercept, W0, b0,
                                       tol, max_iter)
    if not gap <= tol:
        warnings.warn(
            f"Block-sparse solver did not converge: gap {gap:.3e} > tol {tol:.1e} after "
            f"{n_iter} epochs. Increase max_iter or alpha, or scale the features.",
            ConvergenceWarning,
            stacklevel=2,
        )
    return W, b, gap, n_iter


# -- scikit-learn's MultiTaskLasso ------------------------------------------------------------


def _dense_gap(X, Y, W, b, alpha, fit_intercept):
    """Relative duality gap for complete Y, dense X (same formula as the BCD solver)."""
    n = X.shape[0]
    R = Y - X @ W.T - b
    Yc = Y
    if fit_intercept:  # centred residuals (the optimal intercepts); exact at sklearn's b
        R -= R.mean(axis=0)
        Yc = Y - Y.mean(axis=0)
    G = (X.T @ R).T / n
    primal = 0.5 * float(np.sum(R * R)) / n + alpha * float(np.sum(block_norms(W, 2)))
    if primal <= 0.0:
        return 0.0
    scale = max(1.0, float(np.max(block_norms(G, 2), initial=0.0)) / alpha)
    dual = float(np.sum(R * Yc)) / (n * scale) - 0.5 * float(np.sum(R * R)) / (
        n * scale**2)
    return max(primal - dual, 0.0) / primal


def _solve_sklearn(X, Y, alpha, fit_intercept, W0, tol, max_iter):
    X = np.asarray(X, dtype=np.float64)
    # MultiTaskLasso stops when its (unscaled) gap < tol_sk * ||Y||_F^2, i.e. when our gap is
    # below tol_sk * ||Y||^2 / n; we want gap / primal <= tol: start lower and adapt.
    model = MultiTaskLasso(alpha=alpha, fit_intercept=fit_intercept, warm_start=True)
    model.coef_ = np.asfortranarray(W0)
    sk_tol = 0.1 * tol
    n_iter = 0
    for _ in range(6):
        model.set_params(tol=sk_tol, max_iter=max(max_iter - n_iter, 1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, Y)
        n_iter += int(model.n_iter_)
        W = np.array(model.coef_, dtype=np.float64)
        b = np.atleast_1d(np.asarray(model.intercept_, dtype=np.float64)) * np.ones(W.shape[0])
        gap = _dense_gap(X, Y, W, b, alpha, fit_intercept)
        if gap <= tol or n_iter >= max_iter:
            break
        sk_tol *= max(0.5 * tol / gap, 1e-3)
    return W, b, gap, n_iter


# -- block coordinate descent -----------------------------------------------------------------


@njit(cache=True)
def _logistic_derivative(z, s):
    # -s * sigmoid(-s z), computed without overflow
    u = s * z
    if u >= 0.0:
        e = np.exp(-u)
        return -s * e / (1.0 + e)
    return -s / (1.0 + np.exp(u))


@njit(cache=True)
def _bcd_epoch(X, data, indices, indptr, sparse, obs_ptr, obs_task, task_ptr, obs_row,
               contiguous, n_t, Wt, v, z, c, signs, mut, Lt, alpha, q_inf, logistic, ws):
    """One pass of block coordinate descent over the features in ws (in place).

    Least squares: v are the residuals without the per-task offsets c (r = v + c[task]).
    Logistic: z the linear predictors, v their loss derivatives; c unused.
    Wt, mut, Lt are (n_features, n_tasks).
    """
    T = Wt.shape[1]
    corr = np.empty(T)
    a = np.empty(T)
    new = np.empty(T)
    delta = np.empty(T)
    for m in range(ws.shape[0]):
        j = ws[m]
        _column_corr(X, data, indices, indptr, sparse, obs_ptr, obs_task, task_ptr, obs_row,
                     contiguous, v, j, corr)
        for t in range(T):
            if Lt[j, t] > 0.0:
                if logistic:
                    ng = -corr[t] / n_t[t]
                else:
                    ng = corr[t] / n_t[t] + c[t] * mut[j, t]
                a[t] = Lt[j, t] * Wt[j, t] + ng
            else:
                a[t] = 0.0
        _prox_block(a, Lt[j], alpha, q_inf, new)
        changed = False
        for t in range(T):
            delta[t] = new[t] - Wt[j, t]
            if delta[t] != 0.0:
                changed = True
            Wt[j, t] = new[t]
            if not logistic:
                c[t] += mut[j, t] * delta[t]
        if not changed:
            continue
        if sparse:
            for p in range(indptr[j], indptr[j + 1]):
                i = indices[p]
                x = data[p]
                for k in range(obs_ptr[i], obs_ptr[i + 1]):
                    dt = delta[obs_task[k]]
                    if dt != 0.0:
                        if logistic:
                            z[k] += x * dt
                            v[k] = _logistic_derivative(z[k], signs[k])
                        else:
                            v[k] -= x * dt
        else:
            for t in range(T):
                if delta[t] == 0.0:
                    continue
                start, stop = task_ptr[t], task_ptr[t + 1]
                if logistic:
                    _dense_task_axpy(X, j, obs_row, contiguous, delta[t], z, t, start, stop)
                    for k in range(start, stop):
                        v[k] = _logistic_derivative(z[k], signs[k])
                else:
                    _dense_task_axpy(X, j, obs_row, contiguous, -delta[t], v, t, start, stop)


@njit(cache=True)
def _logistic_loss(z, s):
    u = -s * z
    if u > 0.0:
        return u + np.log1p(np.exp(-u))
    return np.log1p(np.exp(u))


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


class _Anderson:
    """Anderson extrapolation of the last K + 1 iterates (coefficients from ``x``)."""

    def __init__(self, K):
        self.K = K
        self.xs = []
        self.states = []

    def reset(self):
        self.xs, self.states = [], []

    def push(self, x, state):
        self.xs.append(x.copy())
        self.states.append([s.copy() for s in state])
        if len(self.xs) > self.K + 1:
            self.xs.pop(0)
            self.states.pop(0)

    def extrapolate(self):
        if len(self.xs) < self.K + 1:
            return None
        xs = np.array(self.xs)
        U = np.diff(xs, axis=0)
        M = U @ U.T
        norm = np.linalg.norm(M)
        if not norm > 0.0:
            return None
        try:
            zeta = np.linalg.solve(M / norm, np.ones(self.K))
        except np.linalg.LinAlgError:
            return None
        total = zeta.sum()
        if not np.isfinite(total) or total == 0.0:
            return None
        coefs = zeta / total
        x_acc = coefs @ xs[1:]
        state_acc = [sum(cf * st[i] for cf, st in zip(coefs, self.states[1:]))
                     for i in range(len(self.states[0]))]
        self.reset()
        return x_acc, state_acc


class _BCDProblem:
    """State and criteria of one BCD solve (least squares or logistic)."""

    def __init__(self, design, datafit, penalty, W0, b0, fit_intercept):
        self.design, self.datafit, self.penalty = design, datafit, penalty
        self.fit_intercept = fit_intercept
        self.logistic = datafit.logistic
        self.Wt = np.ascontiguousarray(W0.T, dtype=np.float64)
        self.Lt = np.ascontiguousarray(datafit.lipschitz.T)
        self.mut = np.ascontiguousarray(datafit.mu.T)
        self.pull = getattr(datafit, "pull", None)
        if self.logistic:
            if not fit_intercept:
                self.b = np.zeros(design.n_tasks)
            elif self.pull is not None:  # W0's optimal intercepts, or b0 (no shift)
                self.b = (_pulled_intercepts(design, datafit.signs, design.predict_obs(W0),
                                             self.pull) if b0 is None else b0.copy())
            elif b0 is None:  # the intercept-only optimum, exact when W0 = 0
                self.b = _logit_of_task_means(design, datafit) + W0 @ design.x_shift
            else:
                self.b = b0 + W0 @ design.x_shift
            self.z, self.v = datafit.init_state(W0, self.b)
            self.c = self.b
        else:
            self.v, self.c = datafit.init_state(W0)
            self.z = self.v
        self.signs = datafit.signs if self.logistic else np.zeros(0)
        self.kkt_scale = None

    @property
    def W(self):
        return self.Wt.T

    def epoch(self, ws):
        d = self.design
        _bcd_epoch(*d._args(), d.n_t, self.Wt, self.v, self.z, self.c, self.signs, self.mut,
                   self.Lt, self.penalty.alpha, self.penalty.q_inf, self.logistic, ws)
        if self.pull is not None:
            self.v[:] = _pulled_intercept_newton(d, self.signs, self.z, self.b, self.pull)
        elif self.logistic and self.fit_intercept:
            _logistic_intercept_step(d.obs_task, d.n_t, self.z, self.v, self.signs, self.b)

    def neg_gradient(self, features=None):
        if self.logistic:
            return self.datafit.neg_gradient(self.v, features)
        return self.datafit.neg_gradient(self.v, self.c, features)

    def objective(self):
        loss = self.datafit.value(self.z) if self.logistic else self.datafit.value(self.v, self.c)
        if self.pull is not None:
            loss += _pull_value(self.b, self.pull)
        return loss + self.penalty.value(self.W)

    # Anderson: coefficients from (W[ws], b); the per-observation state is affine in them.
    def anderson_vector(self, ws):
        x = self.Wt[ws].ravel()
        return np.concatenate([x, self.b]) if self.logistic else x

    def anderson_state(self):
        return [self.z, self.c] if self.logistic else [self.v, self.c]

    def try_extrapolation(self, ws, acc):
        out = acc.extrapolate()
        if out is None:
            return
        x_acc, state_acc = out
        saved = (self.Wt[ws].copy(), [s.copy() for s in self.anderson_state()])
        before = self.objective()
        n_ws = len(ws) * self.Wt.shape[1]
        self.Wt[ws] = x_acc[:n_ws].reshape(len(ws), -1)
        self._set_state(state_acc)
        if not self.objective() < before:
            self.Wt[ws] = saved[0]
            self._set_state(saved[1])

    def _set_state(self, state):
        if self.logistic:
            self.z[:] = state[0]
            self.b[:] = state[1]
            self.v[:] = self.datafit.derivative(self.z)
        else:
            self.v[:] = state[0]
            self.c[:] = state[1]

    # -- stopping criteria --------------------------------------------------------------------
    def criterion(self, features=None):
        """Relative duality gap (least squares, alpha > 0) or relative KKT violation."""
        G = self.neg_gradient(features)
        W = self.W if features is None else self.W[:, features]
        alpha = self.penalty.alpha
        if not self.logistic and alpha > 0:
            primal = self.objective()
            if primal <= 0.0:
                return 0.0, G
            dual_norm = float(np.max(self.penalty.dual_norms(G), initial=0.0))
            scale = max(1.0, dual_norm / alpha)
            dual = self.datafit.dual_value(self.v, self.c, scale)
            return max(primal - dual, 0.0) / primal, G
        kkt = float(np.max(self.penalty.subdiff_distance(W, G), initial=0.0))
        if self.logistic and self.fit_intercept:
            g_b = self.datafit.intercept_gradient(self.v)
            if self.pull is not None:
                g_b = g_b + _pull_gradient(self.b, self.pull)
            kkt = max(kkt, float(np.max(np.abs(g_b))))
        if self.kkt_scale is None:
            self.kkt_scale = self._kkt_scale()
        return kkt / self.kkt_scale, G

    def _kkt_scale(self):
        G0 = _gradient_at_zero(self.design, self.datafit, self.fit_intercept)
        scale = float(np.max(self.penalty.dual_norms(G0), initial=0.0))
        return scale if scale > 0 else 1.0

    def intercepts(self):
        if self.logistic:
            b = self.b.copy() if self.fit_intercept else np.zeros(self.design.n_tasks)
        elif self.fit_intercept:
            b = self.datafit.intercept(self.W, self.v, self.c)
        else:
            b = np.zeros(self.design.n_tasks)
        return b - self.W @ self.design.x_shift


def _solve_bcd(X, Y, mask, alpha, q, datafit, fit_intercept, W0, b0, tol, max_iter):
    design, fit = _setup(X, Y, mask, datafit, fit_intercept)
    penalty = BlockPenalty(alpha, q)
    pb = _BCDProblem(design, fit, penalty, W0, b0, fit_intercept)
    n_features = design.n_features
    all_features = np.arange(n_features, dtype=np.int64)
    n_epochs = 0
    p0 = 10
    crit, G = pb.criterion()
    acc = _Anderson(_ANDERSON_K)
    while crit > tol and n_epochs < max_iter:
        # working set: the support plus the worst KKT violators, twice the support's size
        support = np.any(pb.Wt != 0, axis=1)
        score = penalty.subdiff_distance(pb.W, G)
        score[support] = np.inf
        ws_size = min(n_features, max(p0, 2 * int(support.sum())))
        if ws_size >= 0.5 * n_features:
            ws = all_features
        else:
            ws = np.sort(np.argpartition(-score, ws_size - 1)[:ws_size]).astype(np.int64)
        full = ws.shape[0] == n_features
        inner_tol = tol if full else max(0.3 * crit, tol)
        acc.reset()
        crit_in = np.inf
        epoch = 0
        while n_epochs < max_iter:
            pb.epoch(ws)
            n_epochs += 1
            epoch += 1
            acc.push(pb.anderson_vector(ws), pb.anderson_state())
            if epoch % (_ANDERSON_K + 1) == 0:
                pb.try_extrapolation(ws, acc)
            if epoch < _CHECK_EVERY or epoch % _CHECK_EVERY == 0 or n_epochs >= max_iter:
                crit_in, G_in = pb.criterion(None if full else ws)
                if crit_in <= inner_tol:
                    break
        if full:
            crit, G = crit_in, G_in
            if not np.isfinite(crit):
                crit, G = pb.criterion()
        else:
            crit, G = pb.criterion()
            p0 = max(p0, ws_size)
    return np.ascontiguousarray(pb.W), pb.intercepts(), float(crit), n_epochs
