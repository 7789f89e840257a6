"""Block coordinate descent for block-sparse multi-task linear models, for any datafit.

Problem (``W`` of shape (n_tasks, n_features), intercepts ``b`` of shape (n_tasks,))::

    min_{W, b}  sum_t loss_t(y_t, X_t w_t + b_t)  +  alpha * sum_j ||W[:, j]||_q

where task t's loss is its mean loss over its own observed rows (a datafit, see
:mod:`._datafits`: the solver only calls its interface) and ``q`` is 2 or inf (see
:mod:`._penalties`). The data are a :class:`~skmtl.linear._designs.MaskedDesign`.

The solver is block coordinate descent (BCD) over features with working sets and Anderson
acceleration:

- a block is one feature's coefficients in all tasks; its step is the exact minimiser of the
  block's quadratic model with the datafit's per-task curvature (a 1-D root find for q = 2, a
  sorted threshold for q = inf): the exact block minimiser for least squares, a block
  proximal-gradient step with per-task Lipschitz constants otherwise;
- the datafit's per-observation state (residuals, linear predictors) is kept per observed
  (row, task) pair and updated after each block step, so a step costs one pass over the
  feature's column of X (dense or sparse); the intercepts are the datafit's business (least
  squares eliminates them exactly, the logistic loss takes a step after each epoch);
- an outer loop ranks the features by their KKT violation, solves the problem restricted to the
  support plus the worst violators (growing the set), and stops on the duality gap of the full
  problem when the datafit has a dual (least squares: the residuals rescaled into a feasible
  dual point; the reported gap is relative, ``(primal - dual) / primal``), else on the relative
  KKT violation;
- every few epochs an Anderson extrapolation of the last iterates is kept when it lowers the
  objective.

Where the problem is exactly scikit-learn's :class:`~sklearn.linear_model.MultiTaskLasso`
(least squares, q = 2, dense X, every label observed), :func:`solve_block_sparse` calls it
instead (``solver="auto"``) and checks its duality gap with the formula used here.
"""

import sys
import types
import warnings
import zlib

import numpy as np
import scipy.sparse as sp
from numba import njit
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import MultiTaskLasso

from skmtl.linear import _designs, _penalties
from skmtl.linear._datafits import Datafit, Logistic, Quadratic
from skmtl.linear._designs import (
    MaskedDesign,
    _column_corr,
    _dense_task_axpy,
    _groups_from_mask,
    check_wide,
)
from skmtl.linear._penalties import BlockPenalty, _prox_block, block_norms
from skmtl.utils.validation import group_rows_by_task

__all__ = ["bcd_epoch", "block_sparse_alpha_max", "solve_block_sparse"]

_DATAFITS = {"quadratic": Quadratic, "logistic": Logistic}
_ANDERSON_K = 5
_CHECK_EVERY = 5


def _datafit_class(datafit):
    """The :class:`~skmtl.linear._datafits.Datafit` subclass of a name (or the class)."""
    if not (isinstance(datafit, type) and issubclass(datafit, Datafit)):
        if datafit not in _DATAFITS:
            raise ValueError(f"datafit must be one of {sorted(_DATAFITS)}; got {datafit!r}.")
        datafit = _DATAFITS[datafit]
    return datafit


def _check_inputs(X, Y, mask, q, datafit):
    if q not in (2, np.inf):
        raise ValueError(f"q must be 2 or np.inf; got {q!r}.")
    datafit = _datafit_class(datafit)
    Y, mask = check_wide(X, np.asarray(Y, dtype=np.float64), mask)
    return Y, mask, datafit


def _setup(X, Y, mask, datafit, fit_intercept, task_index=None, n_tasks=None, row_major=False):
    """The design and the datafit (a :class:`~skmtl.linear._datafits.Datafit` subclass), of
    wide ``Y`` and ``mask``, or (``task_index`` given, ``mask`` None) of long ``Y`` (n,);
    ``row_major`` for a solver that reads whole tasks only (see ``MaskedDesign``)."""
    if task_index is None:
        center = datafit.center_design(fit_intercept, mask.shape[1])
        design = MaskedDesign(X, mask, center=center, row_major=row_major)
        return design, datafit(design, Y[design.obs_row, design.obs_task], fit_intercept)
    center = datafit.center_design(fit_intercept, n_tasks)
    design = MaskedDesign.from_long(X, task_index, n_tasks, center=center, row_major=row_major)
    return design, datafit(design, np.asarray(Y, dtype=np.float64)[design.obs_row],
                           fit_intercept)


def block_sparse_alpha_max(X, Y, mask=None, q=2, fit_intercept=True, datafit="quadratic", *,
                           task_index=None, n_tasks=None):
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
    task_index, n_tasks : ndarray of int of shape (n_samples,) and int, default=None
        Long data: ``Y`` is then 1-D (one label per row, of task ``task_index[i]``) and
        ``mask`` None, as for :func:`solve_block_sparse`.

    Returns
    -------
    alpha_max : float

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.linear._solver_bcd import block_sparse_alpha_max, solve_block_sparse
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    >>> Y = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])
    >>> alpha_max = block_sparse_alpha_max(X, Y)
    >>> W, b, gap, n_iter = solve_block_sparse(X, Y, None, alpha_max)
    >>> bool(np.all(W == 0))
    True
    """
    if task_index is None:
        Y, mask, datafit = _check_inputs(X, Y, mask, q, datafit)
    else:
        _check_inputs(X, np.zeros((X.shape[0], 1)), None, q, datafit)  # q and datafit only
        datafit = _datafit_class(datafit)
    _, fit = _setup(X, Y, mask, datafit, fit_intercept, task_index, n_tasks)
    G = _gradient_at_zero(fit)
    return float(np.max(BlockPenalty(1.0, q).dual_norms(G), initial=0.0))


# the relative duality gap certifies a fit where alpha exceeds this times the dual norm of the
# gradient at zero (alpha_max): below, the gradient's rounding, about eps alpha_max, is above
# tol * alpha, the dual point is scaled to nothing and the gap stays near 1 (alpha = 1e-16
# alpha_max ran max_iter with a ConvergenceWarning at the alpha = 0 solution); the relative
# KKT violation, alpha = 0's criterion, is used there
GAP_ALPHA = 1e-10


def _gradient_at_zero(datafit):
    """The negative gradient at ``W = 0`` and the intercept-only optimum."""
    design = datafit.design
    return datafit.neg_gradient(datafit.init_state(np.zeros((design.n_tasks, design.n_features))))


def solve_block_sparse(X, Y, mask, alpha, *, q=2, datafit="quadratic", fit_intercept=True,
                       W0=None, b0=None, tol=1e-6, max_iter=1000, solver="auto",
                       task_index=None, n_tasks=None):
    """Solve the block-sparse multi-task problem; warm-startable.

    Minimises over ``W`` (n_tasks, n_features) and ``b`` (n_tasks,)::

        sum_t 1 / n_t sum_{i observed in t} loss(y_it, x_i w_t + b_t)
            + alpha * sum_j ||W[:, j]||_q

    with ``loss(y, z) = (y - z)^2 / 2`` (``"quadratic"``) or ``log(1 + exp(-s z))``,
    ``s = 2 y - 1`` (``"logistic"``, y in {0, 1}); ``n_t`` is task t's number of observed rows.
    The logistic loss with intercepts and two tasks or more adds the pull of the intercepts
    at the mean of X, ``sum_t kappa_t / 2 (c_t - c_bar)^2`` with ``c_t = b_t + x_bar w_t``
    (``x_bar`` the mean of the observed rows), ``kappa_t = 1 / (4 n_t)`` and ``c_bar`` their
    kappa-weighted mean (see :class:`~skmtl.linear.BlockSparseClassifier`): it keeps the
    intercept of a task whose labels are all one class finite. A dense X is centred, a sparse
    one implicitly (:class:`~skmtl.linear._datafits.Logistic`); ``b`` is returned for the
    given X.

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
    datafit : {"quadratic", "logistic"} or Datafit subclass, default="quadratic"
        Loss of each task (a :class:`~skmtl.linear._datafits.Datafit` subclass for others).
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
    task_index, n_tasks : ndarray of int of shape (n_samples,) and int, default=None
        Long data: ``Y`` is then 1-D (one label per row, of task ``task_index[i]``) and
        ``mask`` None; no ``(n_samples, n_tasks)`` array is formed (block coordinate descent).

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
    if task_index is None:
        Y, mask, datafit = _check_inputs(X, Y, mask, q, datafit)
        n_tasks = Y.shape[1]
    else:
        _check_inputs(X, np.zeros((X.shape[0], 1)), None, q, datafit)  # q and datafit only
        datafit = _datafit_class(datafit)
    n_features = X.shape[1]
    W0 = np.zeros((n_tasks, n_features)) if W0 is None else np.array(W0, dtype=np.float64)
    b0 = None if b0 is None else np.array(b0, dtype=np.float64)
    if W0.shape != (n_tasks, n_features) or (b0 is not None and b0.shape != (n_tasks,)):
        raise ValueError(
            f"W0 must have shape {(n_tasks, n_features)} and b0 {(n_tasks,)}; got {W0.shape} "
            f"and {None if b0 is None else b0.shape}."
        )
    sklearn_case = (task_index is None and datafit is Quadratic and q == 2
                    and not sp.issparse(X) and mask.all() and alpha > 0)
    if sklearn_case and solver != "sklearn":
        # MultiTaskLasso is stopped by the duality gap, which cannot certify alpha below
        # GAP_ALPHA alpha_max: our solver's KKT criterion does. alpha_max from X^T Y_c (Y_c
        # centred: X needs no centring, nor a copy)
        Yc = Y - Y.mean(axis=0) if fit_intercept else Y
        G0 = (np.asarray(X, dtype=np.float64).T @ Yc).T / X.shape[0]
        sklearn_case = alpha > GAP_ALPHA * float(np.max(block_norms(G0, 2), initial=0.0))
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
                                       tol, max_iter, task_index, n_tasks)
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
    dual = float(np.sum(R * Yc)) / (n * scale) - 0.5 * float(np.sum(R * R)) / n / scale / scale
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


# The epoch is written once, against the compiled half of the datafit interface (the names
# _df_*, see skmtl.linear._datafits.Datafit), and compiled once per datafit class by bcd_epoch
# with that class's kernels as globals, so they are inlined: no flag, no indirect call per
# observation. Each variant is a function of its own name, hence its own on-disk numba cache.
def _epoch_template(X, data, indices, indptr, sparse, obs_ptr, obs_task, task_ptr, obs_row,
                    contiguous, n_t, Wt, Lt, alpha, q_inf, ws, state):
    """One pass of block coordinate descent over the features in ws (in place).

    Wt, Lt are (n_features, n_tasks); ``state`` is the datafit's (updated in place).
    """
    T = Wt.shape[1]
    corr = np.empty(T)
    a = np.empty(T)
    new = np.empty(T)
    delta = np.empty(T)
    g = _df_gradient_vector(state)  # noqa: F821
    moving, sign = _df_moving(state)  # noqa: F821
    for m in range(ws.shape[0]):
        j = ws[m]
        _column_corr(X, data, indices, indptr, sparse, obs_ptr, obs_task, task_ptr, obs_row,
                     contiguous, g, j, corr)
        for t in range(T):
            if Lt[j, t] > 0.0:
                a[t] = Lt[j, t] * Wt[j, t] + _df_block_neg_gradient(  # noqa: F821
                    state, corr[t], n_t[t], j, t)
            else:
                a[t] = 0.0
        _prox_block(a, Lt[j], alpha, q_inf, new)
        changed = False
        for t in range(T):
            delta[t] = new[t] - Wt[j, t]
            if delta[t] != 0.0:
                changed = True
            Wt[j, t] = new[t]
            _df_block_step(state, j, t, delta[t])  # noqa: F821
        if not changed:
            continue
        if sparse:
            for p in range(indptr[j], indptr[j + 1]):
                i = indices[p]
                x = data[p]
                for k in range(obs_ptr[i], obs_ptr[i + 1]):
                    dt = delta[obs_task[k]]
                    if dt != 0.0:
                        moving[k] += sign * x * dt
                        _df_refresh(state, k, k + 1)  # noqa: F821
        else:
            for t in range(T):
                if delta[t] == 0.0:
                    continue
                start, stop = task_ptr[t], task_ptr[t + 1]
                _dense_task_axpy(X, j, obs_row, contiguous, sign * delta[t], moving, t, start,
                                 stop)
                _df_refresh(state, start, stop)  # noqa: F821


_KERNELS = ("gradient_vector", "block_neg_gradient", "block_step", "moving", "refresh")
_EPOCHS = {}


def bcd_epoch(datafit):
    """The BCD epoch compiled for a datafit class (its kernels inlined); built once per class.

    Compiled on first use, then loaded from numba's disk cache when the datafit allows it
    (``cache_kernels``): about 3 s of compilation per datafit once, not in every process.
    """
    epoch = _EPOCHS.get(datafit)
    if epoch is None:
        namespace = dict(globals())
        namespace.update({f"_df_{name}": getattr(datafit, name) for name in _KERNELS})
        function = types.FunctionType(_epoch_template.__code__, namespace, "_bcd_epoch")
        name = f"_bcd_epoch_{datafit.__name__}"
        if datafit.cache_kernels:
            # numba invalidates a cached function by its own file's time stamp only; the
            # kernels it inlines live in other files, whose checksum goes into its name
            sources = {sys.modules[datafit.__module__], _designs, _penalties}
            name += f"_{_checksum(sorted(module.__file__ for module in sources)):08x}"
        function.__qualname__ = function.__name__ = name
        epoch = _EPOCHS[datafit] = njit(cache=datafit.cache_kernels)(function)
    return epoch


def _checksum(paths):
    crc = 0
    for path in paths:
        with open(path, "rb") as file:
            crc = zlib.crc32(file.read(), crc)
    return crc


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
    """State and criteria of one BCD solve, for any datafit."""

    def __init__(self, design, datafit, penalty, W0, b0):
        self.design, self.datafit, self.penalty = design, datafit, penalty
        self.Wt = np.ascontiguousarray(W0.T, dtype=np.float64)
        self.Lt = np.ascontiguousarray(datafit.lipschitz.T)
        self.state = datafit.init_state(W0, b0)
        self.run_epoch = bcd_epoch(type(datafit))
        self.kkt_scale = None

    @property
    def W(self):
        return self.Wt.T

    def epoch(self, ws):
        d = self.design
        self.run_epoch(*d._args(), d.n_t, self.Wt, self.Lt, self.penalty.alpha,
                       self.penalty.q_inf, ws, self.state)
        self.datafit.update_intercepts(self.state)

    def objective(self):
        return self.datafit.value(self.state) + self.penalty.value(self.W)

    # Anderson: coefficients from (W[ws], free intercepts); the extrapolated state is affine in
    # them.
    def anderson_vector(self, ws):
        return np.concatenate([self.Wt[ws].ravel(), self.datafit.intercept_vector(self.state)])

    def anderson_state(self):
        return self.datafit.extrapolated(self.state)

    def try_extrapolation(self, ws, acc):
        out = acc.extrapolate()
        if out is None:
            return
        x_acc, state_acc = out
        saved = (self.Wt[ws].copy(), [s.copy() for s in self.anderson_state()])
        before = self.objective()
        n_ws = len(ws) * self.Wt.shape[1]
        self.Wt[ws] = x_acc[:n_ws].reshape(len(ws), -1)
        self.datafit.set_extrapolated(self.state, state_acc)
        if not self.objective() < before:
            self.Wt[ws] = saved[0]
            self.datafit.set_extrapolated(self.state, saved[1])

    # -- stopping criteria --------------------------------------------------------------------
    def criterion(self, features=None):
        """Relative duality gap (datafits with a dual, alpha above ``GAP_ALPHA alpha_max``)
        or relative KKT violation."""
        G = self.datafit.neg_gradient(self.state, features)
        W = self.W if features is None else self.W[:, features]
        alpha = self.penalty.alpha
        if self.kkt_scale is None:
            self.kkt_scale = self._kkt_scale()
        if self.datafit.has_dual and alpha > GAP_ALPHA * self.kkt_scale:
            primal = self.objective()
            if primal <= 0.0:
                return 0.0, G
            dual_norm = float(np.max(self.penalty.dual_norms(G), initial=0.0))
            scale = max(1.0, dual_norm / alpha)
            dual = self.datafit.dual_value(self.state, scale)
            return max(primal - dual, 0.0) / primal, G
        kkt = float(np.max(self.penalty.subdiff_distance(W, G), initial=0.0))
        g_b = self.datafit.intercept_gradient(self.state)
        if g_b is not None:
            kkt = max(kkt, float(np.max(np.abs(g_b))))
        return kkt / self.kkt_scale, G

    def _kkt_scale(self):
        G0 = _gradient_at_zero(self.datafit)
        scale = float(np.max(self.penalty.dual_norms(G0), initial=0.0))
        return scale if scale > 0 else 1.0

    def intercepts(self):
        return self.datafit.intercepts(self.W, self.state) - self.W @ self.design.x_shift


def _solve_bcd(X, Y, mask, alpha, q, datafit, fit_intercept, W0, b0, tol, max_iter,
               task_index=None, n_tasks=None):
    design, fit = _setup(X, Y, mask, datafit, fit_intercept, task_index, n_tasks)
    penalty = BlockPenalty(alpha, q)
    pb = _BCDProblem(design, fit, penalty, W0, b0)
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


# -- relaxed fits (glmnet's relax=True): the unpenalised refit on a support ------------------
def _support(W):
    """The features with a nonzero coefficient in some task."""
    return np.flatnonzero(np.any(W != 0, axis=0))


def _task_rows(mask, task_index=None, n_tasks=None):
    """The observed rows of each task: of a wide ``mask``, or of long data's ``task_index``
    (one sort, no (n_samples, n_tasks) array)."""
    if task_index is None:
        return _groups_from_mask(mask)
    return group_rows_by_task(task_index, n_tasks)


def _refit_size_ok(support, rows, fit_intercept):
    """Whether every task has as many observed rows (``rows``, :func:`_task_rows`) as
    unknowns of its refit on ``support``."""
    return support.size + int(fit_intercept) <= min(len(r) for r in rows)


def _support_least_squares(X, Y, rows, support, fit_intercept):
    """Per-task unpenalised least squares on the columns ``support``: ``(W, b)``.

    Task ``t`` is fitted on its observed rows ``rows[t]`` (:func:`_task_rows`; ``Y`` wide, or
    long data's 1-D targets) only, with an intercept (by centring) if ``fit_intercept``; the
    coefficients off the support are 0. :func:`numpy.linalg.lstsq` gives the minimum-norm
    solution when a task's design is rank deficient.
    """
    n_tasks = len(rows)
    W, b = np.zeros((n_tasks, X.shape[1])), np.zeros(n_tasks)
    columns = X[:, support]
    columns = columns.toarray() if sp.issparse(columns) else np.asarray(columns)
    for t, rows_t in enumerate(rows):
        X_t, y_t = columns[rows_t], (Y[rows_t] if Y.ndim == 1 else Y[rows_t, t])
        if fit_intercept:
            x_mean, y_mean = X_t.mean(axis=0), y_t.mean()
            X_t, y_t = X_t - x_mean, y_t - y_mean
        w = np.linalg.lstsq(X_t, y_t)[0] if support.size else np.zeros(0)
        W[t, support] = w
        if fit_intercept:
            b[t] = y_mean - x_mean @ w
    return W, b


def _relaxed(gamma, fit, refit):
    """glmnet's relaxed fit: ``gamma * fit + (1 - gamma) * refit``, coefficients and intercepts."""
    return tuple(gamma * a + (1.0 - gamma) * r for a, r in zip(fit, refit))
