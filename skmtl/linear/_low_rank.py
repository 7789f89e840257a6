"""Trace-norm (low-rank) multi-task linear models: the task vectors span a few directions.

The penalty ``alpha * ||W||_*`` (the sum of the singular values of the (n_tasks, n_features)
coefficient matrix; Ji & Ye 2009, Pong et al. 2010) on the per-task mean loss of the observed
rows (:mod:`._datafits`: squared or binary logistic loss), solved by accelerated proximal
gradient (FISTA) with singular value thresholding as the proximal step.

Solver (:func:`solve_low_rank`). The smooth part is the datafit, a function of ``W`` and of
the free intercepts (least squares eliminates its intercepts exactly, so its variable is
``W`` alone; the logistic intercepts are a second block of variables with an identity
proximal step). Each iteration takes a gradient step from the extrapolated point and
thresholds the singular values of ``W`` by ``alpha / L``; ``L`` starts at the largest
per-feature curvature of the datafit (a lower bound of the gradient's Lipschitz constant) and
is doubled until the sufficient-decrease condition of Beck & Teboulle's backtracking holds.
The momentum is restarted whenever the step goes against it (O'Donoghue & Candes' gradient
restart), which keeps the objective from oscillating. The loop is
:func:`~._proximal.accelerated_proximal_gradient`, which the task-relation solver's polish
shares.

Cost of an iteration: one pass over X for the predictions of the new point and its gradient
(also the stopping rule's; least squares on a dense X reads each task's rows once for both,
:meth:`~._designs.MaskedDesign.residual_correlations`). The design reads a dense X row by
row (``MaskedDesign(row_major=True)``): with no more observations than rows (long data) a
row-major copy in task order, so that pass reads each row once and contiguously; on wide data
with labels on a quarter of the (row, task) pairs or more, BLAS products with the shared X;
with fewer (bioactivity: MoleculeACE's molecules are measured on 1.4 of 30 targets on
average), X itself C-ordered, each observation's row through its index (a fit at
``alpha=0.01`` on 6,667 molecules x 2,048 bits, 2,000 iterations: 36 s, where reading the
Fortran-ordered columns took 332 s). The extrapolated point's predictions are the same
combination of the last two points' (no pass over X), and so is its gradient when the
datafit's is affine (least squares). The logistic gradient is not affine:
the step needs it at the extrapolated point (a pass over X), and at the new point only for
the stopping rule, which is therefore evaluated every ``_CHECK_EVERY = 5`` steps (and after
the last one); the new point's gradient is computed when asked for (LowRankClassifierCV on
Exam made binary: 37 s to 28 s, the same alpha, 146 to 150 iterations for the refit). The
thresholding decomposes the small
``k x k`` Gram matrix of ``W`` (``k = min(T, d)``) when that is accurate (:func:`_prox_nuclear`),
and the thresholded ``W`` is one product of ``W`` with a ``k x k`` matrix.

Stopping rule. Least squares: the relative duality gap ``(primal - dual) / primal``. The dual
norm of the trace norm is the spectral norm, so the residuals rescaled by
``max(1, ||G||_2 / alpha)`` (``G`` the negative gradient) are a feasible dual point, and the
datafit's :meth:`~skmtl.linear._datafits.Quadratic.dual_value` gives its dual objective. The
logistic datafit has no dual in skmtl's interface: its criterion is the relative KKT
violation, the Frobenius distance of the negative gradient to ``alpha`` times the trace
norm's subdifferential at ``W`` (computed exactly from ``W``'s thin SVD) together with the
intercept gradient, divided by ``alpha_max``; it is evaluated every fifth step (above), so
a logistic fit may take up to four steps more than the first one below ``tol``.
"""

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.parallel import Parallel, delayed

from skmtl.base import MultiTaskClassifierMixin, MultiTaskRegressorMixin
from skmtl.linear import _cv
from skmtl.linear._binary import _BinaryLogisticMixin
from skmtl.linear._datafits import Logistic, Quadratic
from skmtl.linear._designs import predict_rows
from skmtl.linear._docs import EMPTY_FOLD, LINEAR_DOCS
from skmtl.linear._linalg import _gram_singular, _OneBlasThread
from skmtl.linear._proximal import accelerated_proximal_gradient
from skmtl.linear._solver_bcd import (
    GAP_ALPHA,
    _check_inputs,
    _datafit_class,
    _gradient_at_zero,
    _setup,
)
from skmtl.linear._standardize import column_scales, observation_weights, scale_columns
from skmtl.utils._docstring import Substitution, join_blocks
from skmtl.utils._sklearn_compat import Interval, StrOptions
from skmtl.utils.validation import check_finite_squares

__all__ = [
    "LowRankClassifier",
    "LowRankClassifierCV",
    "LowRankRegressor",
    "LowRankRegressorCV",
    "low_rank_alpha_max",
    "solve_low_rank",
]


# -- maths --------------------------------------------------------------------------------------
# The kept singular values of a thresholding step within this factor of the largest: the
# eigendecomposition of the small Gram matrix gives them, and their vectors, to ~1e-10.
_GRAM_RANGE = 1e-3
# Steps between two evaluations of the logistic stopping rule: its gradient at the new point
# is a pass over X that the steps do not need (they step from the extrapolated point), and
# its distance to the subdifferential an SVD.
_CHECK_EVERY = 5


def _prox_nuclear(W, threshold):
    """Singular value thresholding, the prox of ``threshold * ||.||_*`` at ``W``, as
    ``(P, s, factors)``: the prox ``P`` itself, all thresholded singular values ``s`` (zeros
    included) and a function giving the thin factors ``(U_r, s_r, Vt_r)`` of ``P`` when asked
    (the solver's least squares criterion does not need them).

    A tall (or wide) ``W``, at least 4 times longer than broad, is decomposed through its
    ``k x k`` Gram matrix (``k = min(T, d)``): ``W^T W = V diag(sigma^2) V^T``, three times
    faster than LAPACK's SVD on 1,000 x 30, and ``P = W V diag(s_r / sigma_r) V^T`` (tall;
    ``U U^T``-side for wide) is one product with a ``k x k`` matrix, no ``U = W V / sigma``.
    Squaring loses the small singular values' precision (absolute error ``eps * sigma_max^2 /
    sigma``), so when a kept one is below ``_GRAM_RANGE * sigma_max`` the SVD is taken
    instead.

    From the SVD, ``P`` is formed as ``W - U diag(sigma - s) V^T``, ``W`` less its shrinkage,
    not rebuilt as ``U diag(s) V^T``: ``U`` and ``V`` are orthonormal to rounding only, so the
    product errs by about ``eps sigma_max`` in every direction, and the relative duality gap
    is first-order sensitive to errors outside the range of ``W``; the difference errs by the
    rounding of its entries and ``eps`` times the largest shrinkage (at most ``threshold``):
    within 1.5 ulps of the largest entry of an exact 16 x 16 prox, where the product erred by
    7 to 12. The product held the gap at 3e-12 to 1.8e-11 (``make_multitask_regression(
    n_samples=40, n_features=20, n_tasks=10)``, seeds 0 to 2, ``alpha = 1e-4 alpha_max``:
    rank 10) through 5,000 iterations; the difference reaches ``1e-12`` in 150 to 190 (its
    floor: 7e-13, 3e-13 and 8e-14). The Gram path keeps its product: there the floor lies
    below ``1e-12`` already (1,000 tasks of 20 rows and 30 features, down to 5e-13), and the
    same change (``W - W V diag(1 - s / sigma) V^T``; ``W V`` itself errs by ``eps
    sigma_max``) lowered it by 1 to 12 times but left a badly scaled fit (10 tasks, 60
    features) at 2.6e-5 after 4,000 iterations, against 3.9e-7.
    """
    T, d = W.shape
    k = min(T, d)
    if k and max(T, d) >= 4 * k:
        sigma, vectors, tall = _gram_singular(W)
        s = np.maximum(sigma - threshold, 0.0)
        r = int(np.count_nonzero(s))
        if r == 0 or sigma[r - 1] >= _GRAM_RANGE * sigma[0]:
            V = vectors[:, :r]
            shrink = (V * (s[:r] / sigma[:r])) @ V.T
            P = W @ shrink if tall else shrink @ W

            def factors():
                other = (W @ V if tall else W.T @ V) / sigma[:r]
                return (other, s[:r], V.T) if tall else (V, s[:r], other.T)

            return P, s, factors
    U, sigma, Vt = np.linalg.svd(W, full_matrices=False)
    s = np.maximum(sigma - threshold, 0.0)
    r = int(np.count_nonzero(s))
    # W less its shrinkage, U diag(sigma - s) V^T: the product U diag(s) V^T errs by about
    # eps sigma_max in every direction (U, V orthonormal to rounding only), this by eps times
    # the shrinkage (see the docstring)
    P = W - (U * (sigma - s)) @ Vt
    U, Vt = U[:, :r], Vt[:r]
    return P, s, lambda: (U, s[:r], Vt)


def _spectral_norm(G):
    """``||G||_2``, from the eigenvalues of the small Gram matrix (the largest singular value
    keeps its relative precision there)."""
    if G.size == 0:
        return 0.0
    gram = G.T @ G if G.shape[0] >= G.shape[1] else G @ G.T
    return float(np.sqrt(max(np.linalg.eigvalsh(gram)[-1], 0.0)))


def _nuclear_subdiff_distance(U, Vt, G, alpha):
    """Frobenius distance of ``G`` to ``alpha * d||W||_*`` for ``W = U diag(s) Vt`` (s > 0).

    The subdifferential is ``{U Vt + Z : U^T Z = 0, Z Vt^T = 0, ||Z||_2 <= 1}``; ``G`` splits
    orthogonally into ``U A Vt`` (compared with ``alpha I``), two cross blocks (compared with 0)
    and its part ``P`` orthogonal to both spaces (whose singular values beyond ``alpha`` count).
    """
    A = U.T @ G @ Vt.T
    UG, GV = U.T @ G, G @ Vt.T
    P = G - U @ UG - GV @ Vt + U @ A @ Vt
    excess = np.maximum(np.linalg.svd(P, compute_uv=False) - alpha, 0.0)
    return float(np.sqrt(np.sum((A - alpha * np.eye(A.shape[0])) ** 2)
                         + np.sum((UG - A @ Vt) ** 2) + np.sum((GV - U @ A) ** 2)
                         + np.sum(excess**2)))


class _Iterate:
    """A point ``(W, b)`` of the solver with its datafit state and value (``b`` the free
    intercepts of the design, empty when the datafit has none)."""

    def __init__(self, problem, W, b, state=None):
        self.W, self.b = W, b
        self.neg_grad = None  # the datafit's negative gradient in W, once computed
        if state is None:  # a new point
            b_user = b - W @ problem.shift if b.size else None
            if problem.fit.affine_gradient:  # needed to extrapolate; one pass for both
                state, self.neg_grad = problem.fit.state_and_neg_gradient(W, b_user)
            else:  # computed when asked for: a restart steps from here, or the stopping rule
                state = problem.fit.init_state(W, b_user)
        self.state = state
        self.loss = problem.fit.value(self.state)

    @classmethod
    def extrapolate(cls, problem, x, x_prev, beta):
        """The point ``x + beta (x - x_prev)``; its state by the same combination of the two
        states' affine parts (the predictions, :meth:`Datafit.extrapolated`), no pass over X."""
        fit = problem.fit
        state = tuple(part if i in fit.constant_state else np.array(part, copy=True)
                      for i, part in enumerate(x.state))
        fit.set_extrapolated(state, [a + beta * (a - a_prev) for a, a_prev in zip(
            fit.extrapolated(x.state), fit.extrapolated(x_prev.state))])
        y = cls(problem, x.W + beta * (x.W - x_prev.W), x.b + beta * (x.b - x_prev.b), state)
        if fit.affine_gradient and x.neg_grad is not None and x_prev.neg_grad is not None:
            y.neg_grad = x.neg_grad + beta * (x.neg_grad - x_prev.neg_grad)
        return y

    def neg_gradient(self, problem):
        """The datafit's negative gradient in W and its gradient in the free intercepts."""
        if self.neg_grad is None:
            self.neg_grad = problem.fit.neg_gradient(self.state)
        g_b = problem.fit.intercept_gradient(self.state)
        return self.neg_grad, (np.zeros(0) if g_b is None else g_b)


class _LowRankProblem:
    """The design, the datafit and the criterion of one solve, and the steps of
    :func:`~._proximal.accelerated_proximal_gradient` on it (points: :class:`_Iterate`)."""

    def __init__(self, X, Y, mask, alpha, datafit, fit_intercept, task_index=None,
                 n_tasks=None):
        if task_index is None:
            Y, mask, datafit = _check_inputs(X, Y, mask, 2, datafit)
        else:
            datafit = _datafit_class(datafit)
        self.design, self.fit = _setup(X, Y, mask, datafit, fit_intercept, task_index, n_tasks,
                                       row_major=True)
        self.alpha = alpha
        self._scale = None
        # the free intercepts are those at this point of X's space (centred X)
        self.shift = self.design.x_shift + self.fit.x_mean

    def start(self, W0, b0):
        T, d = self.design.n_tasks, self.design.n_features
        W = np.zeros((T, d)) if W0 is None else np.array(W0, dtype=np.float64)
        state = self.fit.init_state(W, b0)
        free = self.fit.intercept_gradient(state) is not None
        b = self.fit.intercept_vector(state).copy() if free else np.zeros(0)
        return _Iterate(self, W, b)

    def intercepts(self, point):
        return self.fit.intercepts(point.W, point.state) - point.W @ self.design.x_shift

    def extrapolate(self, x, x_prev, beta):
        return _Iterate.extrapolate(self, x, x_prev, beta)

    def gradient(self, point):
        return point.neg_gradient(self)

    def prox(self, y, grad, L):
        """The proximal gradient step from ``y`` (singular value thresholding); its ``info``
        is the singular values and thin factors of the new ``W``."""
        neg_g_W, g_b = grad
        W, sv, factors = _prox_nuclear(y.W + neg_g_W / L, self.alpha / L)
        return _Iterate(self, W, y.b - g_b / L), (sv, factors)

    def majorized(self, y, new, grad, L):
        """The datafit at ``new`` below its quadratic model around ``y`` (to rounding)."""
        neg_g_W, g_b = grad
        dW, db = new.W - y.W, new.b - y.b
        step = float(np.vdot(dW, dW) + db @ db)
        bound = y.loss - float(np.vdot(neg_g_W, dW) - g_b @ db) + 0.5 * L * step
        return new.loss <= bound + 1e-14 * abs(y.loss) or step == 0.0

    def criterion(self, point, info):
        """Relative duality gap (least squares, alpha above ``GAP_ALPHA`` times the spectral
        norm of the gradient at zero) or relative KKT violation, at the point of ``info =
        (singular values, thin factors())``."""
        sv, factors = info
        primal = point.loss + self.alpha * float(sv.sum())
        if point.neg_grad is None:
            point.neg_grad = self.fit.neg_gradient(point.state)
        G = point.neg_grad
        if self._scale is None:
            scale = np.linalg.norm(_gradient_at_zero(self.fit), 2)
            self._scale = scale if scale > 0 else 1.0
        if self.fit.has_dual and self.alpha > GAP_ALPHA * self._scale:
            if primal <= 0.0:
                return 0.0
            scale = max(1.0, _spectral_norm(G) / self.alpha)
            return max(primal - self.fit.dual_value(point.state, scale), 0.0) / primal
        g_b = self.fit.intercept_gradient(point.state)
        U, _, Vt = factors()
        dist = _nuclear_subdiff_distance(U, Vt, G, self.alpha)
        if g_b is not None:
            dist = float(np.hypot(dist, np.linalg.norm(g_b)))
        return dist / self._scale


def solve_low_rank(X, Y, mask, alpha, *, datafit="quadratic", fit_intercept=True, W0=None,
                   b0=None, tol=1e-6, max_iter=2000, task_index=None, n_tasks=None):
    """Solve the trace-norm multi-task problem by FISTA with singular value thresholding.

    Minimises ``sum_t loss_t(y_t, X_t w_t + b_t) + alpha * ||W||_*`` (the per-task mean loss
    of the datafit on its observed rows; intercepts unpenalised). See :mod:`._low_rank`.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_tasks)
        Targets, or labels in {0, 1} for ``datafit="logistic"``; entries behind the mask are
        ignored.
    mask : ndarray of bool of shape (n_samples, n_tasks) or None
        Observed labels (None: all).
    alpha : float
        Penalty strength, >= 0.
    datafit : {"quadratic", "logistic"} or Datafit subclass, default="quadratic"
    fit_intercept : bool, default=True
    W0, b0 : ndarray, default=None
        Warm start: coefficients (n_tasks, n_features) and intercepts (n_tasks,) of X.
    tol : float, default=1e-6
        Stop when the criterion (relative duality gap, or relative KKT violation for a
        datafit without a dual) is at most ``tol``.
    max_iter : int, default=2000
        Maximum number of proximal gradient steps; reaching it warns (ConvergenceWarning).
    task_index, n_tasks : ndarray of int of shape (n_samples,) and int, default=None
        Long data: ``Y`` is then 1-D (one label per row, of task ``task_index[i]``) and
        ``mask`` None; no ``(n_samples, n_tasks)`` array is formed.

    Returns
    -------
    W : ndarray of shape (n_tasks, n_features)
    b : ndarray of shape (n_tasks,)
        Intercepts of the given X.
    singular_values : ndarray of shape (min(n_tasks, n_features),)
        The singular values of ``W``, decreasing (exact zeros beyond its rank).
    criterion : float
    n_iter : int
    """
    pb = _LowRankProblem(X, Y, mask, alpha, datafit, fit_intercept, task_index, n_tasks)
    x = pb.start(W0, b0)
    info = _prox_nuclear(x.W, 0.0)[1:]
    L = max(float(np.max(pb.fit.lipschitz, initial=0.0)), 1e-12)
    x, (sv, _), crit, n_iter = accelerated_proximal_gradient(
        x, L, extrapolate=pb.extrapolate, gradient=pb.gradient, prox=pb.prox,
        majorized=pb.majorized, criterion=pb.criterion, tol=tol, max_steps=max_iter,
        start=pb.criterion(x, info), info=info,
        check_every=1 if pb.fit.affine_gradient else _CHECK_EVERY)
    if crit > tol:
        warnings.warn(
            f"The trace-norm solver did not converge in {max_iter} iterations (criterion "
            f"{crit:.3g} > tol {tol:.3g}); increase max_iter or tol, or scale the features "
            f"(StandardScaler): features of widely different scales slow it down.",
            ConvergenceWarning, stacklevel=3)
    return np.ascontiguousarray(x.W), pb.intercepts(x), sv, float(crit), n_iter


def low_rank_alpha_max(X, Y, mask=None, fit_intercept=True, datafit="quadratic", *,
                       task_index=None, n_tasks=None):
    """Smallest ``alpha`` for which the trace-norm solution is ``W = 0``.

    ``alpha_max = ||G||_2``, the spectral norm (the trace norm's dual norm) of the negative
    gradient ``G`` of the datafit at ``W = 0`` (with the optimal intercepts there).

    Parameters
    ----------
    X, Y, mask, fit_intercept, datafit, task_index, n_tasks
        The data, the labels observed (``mask=None``: all; long data: ``task_index``) and
        the model, as for :func:`solve_low_rank`.

    Returns
    -------
    alpha_max : float
        ``||G||_2``; 0 when the intercepts alone fit every label.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.linear._low_rank import low_rank_alpha_max, solve_low_rank
    >>> rng = np.random.RandomState(0)
    >>> X, Y = rng.normal(size=(20, 3)), rng.normal(size=(20, 4))
    >>> alpha_max = low_rank_alpha_max(X, Y)
    >>> W, *_ = solve_low_rank(X, Y, None, alpha_max)
    >>> bool(np.all(W == 0))
    True
    """
    pb = _LowRankProblem(X, Y, mask, 1.0, datafit, fit_intercept, task_index, n_tasks)
    return float(np.linalg.norm(_gradient_at_zero(pb.fit), 2))


# -- estimators ---------------------------------------------------------------------------------
class _LowRankMixin(_OneBlasThread):
    """Scaling, the solve, the shared (mean) model and the linear predictions."""

    _parameter_constraints = {
        "alpha": [Interval(Real, 0, None, closed="left")],
        "fit_intercept": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "warm_start": ["boolean"],
        "standardize": ["boolean"],
        "unknown_task": [StrOptions({"error", "shared"})],
    }
    _X_dtype = np.float64
    _datafit = None  # a skmtl.linear._datafits.Datafit subclass

    def __init__(self, alpha=1.0, *, fit_intercept=True, tol=1e-6, max_iter=2000,
                 warm_start=False, standardize=False, unknown_task="error"):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start
        self.standardize = standardize
        self.unknown_task = unknown_task

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _scaled(self, X, mask):
        """``(X / scale, scale)`` with ``standardize`` (rows weigh their labels; ``mask`` None:
        long data, one label per row), else ``(X, None)``."""
        weight = observation_weights(mask, X.shape[0])
        scale = column_scales(X, weight, self.fit_intercept) if self.standardize else None
        return (X, None) if scale is None else (scale_columns(X, scale), scale)

    def _solve(self, X, Y, mask, alpha, W0=None, b0=None, **long):
        return solve_low_rank(X, Y, mask, alpha, datafit=self._datafit,
                              fit_intercept=self.fit_intercept, W0=W0, b0=b0, tol=self.tol,
                              max_iter=self.max_iter, **long)

    def _store(self, W, b, sv, scale):
        """``coef_`` in the user's units from ``W`` fitted on ``X / scale``, and the rest."""
        self.coef_ = W / (1.0 if scale is None else scale)
        self.intercept_ = np.asarray(b, dtype=np.float64)
        self.singular_values_ = sv
        self.rank_ = int(np.count_nonzero(sv))
        self.shared_coef_ = self.coef_.mean(axis=0)
        self.shared_intercept_ = float(self.intercept_.mean())

    def _fit_multitask(self, X, Y, mask):
        X, scale = self._scaled(X, mask)
        check_finite_squares(X, None if is_classifier(self) else Y, mask=mask, tasks=self.tasks_)
        self._fit_scaled(X, Y, mask, scale)

    def _fit_long(self, X, y, task_index):
        # long data straight to the design's observations: no (n_samples, n_tasks) array
        X, scale = self._scaled(X, None)
        check_finite_squares(X, None if is_classifier(self) else y, task_index=task_index,
                             tasks=self.tasks_)
        self._fit_scaled(X, y, None, scale, task_index=task_index, n_tasks=self.n_tasks_)

    def _fit_scaled(self, X, Y, mask, scale, **long):
        W0 = b0 = None
        if self.warm_start and getattr(self, "coef_", np.zeros(0)).shape == (self.n_tasks_,
                                                                            X.shape[1]):
            W0, b0 = self.coef_ * (1.0 if scale is None else scale), self.intercept_
        W, b, sv, self.criterion_, self.n_iter_ = self._solve(X, Y, mask, self.alpha, W0, b0,
                                                              **long)
        self._store(W, b, sv, scale)

    def _decision(self, X):
        return np.asarray(safe_sparse_dot(X, self.coef_.T, dense_output=True)) + self.intercept_

    def _shared_decision(self, X):
        shared = safe_sparse_dot(X, self.shared_coef_[:, None], dense_output=True)
        return np.asarray(shared).ravel() + self.shared_intercept_

    _predict_raw = _decision
    _predict_shared = _shared_decision

    def _predict_tasks(self, X, task_index):
        return predict_rows(X, self.coef_, self.intercept_, task_index)


_LOW_RANK_DOCS = {
    **LINEAR_DOCS,
    "low_rank_fit": join_blocks("""
    alpha : float, default=1.0
        Strength of the trace-norm penalty, >= 0. ``alpha`` at or above
        :func:`~skmtl.linear._low_rank.low_rank_alpha_max` gives ``coef_ = 0`` (on yeast's
        standardised features it is 0.92, below the default: as with scikit-learn's
        ``Lasso``, the default is no choice for a given data set; the ``*CV`` variant
        chooses ``alpha``).
    """, LINEAR_DOCS["fit_intercept"], """
    tol : float, default=1e-6
        Stopping tolerance on ``criterion_`` (see Attributes).
    max_iter : int, default=2000
        Maximum number of proximal gradient steps (a ConvergenceWarning when reached); the
        default covers the small alphas of a cross-validated path on ill-conditioned real
        data (Chem97: 2,410 tasks, many of a few pupils; up to about 1,100 steps).
    warm_start : bool, default=False
        Start from the previous ``coef_`` and ``intercept_`` (when the shapes match).
    standardize : bool, default=False
        Fit on the features divided by their standard deviation over the observed rows of
        all tasks pooled (a row counts once per task that observes it; the root mean square
        without intercepts), glmnet's convention, with ``coef_`` reported in the user's
        units. One scale for all tasks: the penalty couples the tasks' coefficients. The
        columns are not centred (sparse X stays sparse).
    unknown_task : {"error", "shared"}, default="error"
        A task id not seen in fit: raise :class:`~skmtl.UnknownTaskError`, or
        (``"shared"``) predict it with the mean task, ``X @ shared_coef_ +
        shared_intercept_`` (the mean of the task vectors, a point of their low-rank span).
    """),
    "low_rank_attributes": """
    coef_ : ndarray of shape (n_tasks, n_features)
        ``W`` in the user's units; row ``t`` is task ``t``'s coefficients (also for a 1-D y).
    intercept_ : ndarray of shape (n_tasks,)
        Per-task intercepts (zeros when ``fit_intercept=False``).
    singular_values_ : ndarray of shape (min(n_tasks, n_features),)
        Singular values of the penalised ``W``, decreasing, exact zeros beyond its rank:
        those of ``coef_`` when ``standardize=False``, else of ``coef_ * scale`` (the
        coefficients of the scaled features, which the penalty sees).
    rank_ : int
        Number of non-zero singular values: the rank of ``coef_`` (scaling the columns does
        not change it).
    shared_coef_ : ndarray of shape (n_features,)
        The mean task ``coef_.mean(axis=0)``: the prediction for a task not seen in fit.
    shared_intercept_ : float
        The mean intercept.
    n_iter_ : int
        Number of proximal gradient (FISTA) steps.
    """,
    "low_rank_solver": """
    Solver: accelerated proximal gradient (FISTA, Beck & Teboulle 2009) with backtracking on
    the step size and gradient-based restart of the momentum; the proximal step is singular
    value thresholding, ``W -> U max(S - alpha / L, 0) V^T``, whose zeros give ``rank_``
    exactly. Each step costs two products with X restricted to the tasks' observed rows and
    one thin SVD of a (n_tasks, n_features) matrix. Dense or sparse X (never densified),
    wide Y with missing labels or long data (one row per label).
    """,
    "classes": """
    classes_ : ndarray or list of ndarray
        The two classes of a 1-D y, else one array of two classes per task (binary tasks).
    """,
    "low_rank_references": """
    References
    ----------
    Ji, S. and Ye, J. (2009). An accelerated gradient method for trace norm minimization.
    ICML 2009.

    Pong, T. K., Tseng, P., Ji, S. and Ye, J. (2010). Trace norm regularization:
    reformulations, algorithms, and multi-task learning. SIAM J. Optim. 20(6).
    """,
}


@Substitution(**_LOW_RANK_DOCS)
class LowRankRegressor(_LowRankMixin, MultiTaskRegressorMixin, BaseEstimator):
    """Multi-task least squares with a trace-norm penalty: the tasks share a low-rank span.

    The optimisation objective, over ``W = coef_`` of shape (n_tasks, n_features) and the
    unpenalised intercepts ``b = intercept_`` of shape (n_tasks,), is::

        sum_t 1 / (2 n_t) * ||y_t - X_t w_t - b_t||^2_2  +  alpha * ||W||_*

    where task ``t`` is fitted on its ``n_t`` observed rows ``(X_t, y_t)`` only (missing labels
    of a wide Y, or the task's rows in long data), ``w_t = W[t]`` and ``||W||_*`` is the trace
    (nuclear) norm, the sum of W's singular values: the convex surrogate of its rank, so the
    task vectors are pulled into a subspace of a few directions learned from all tasks.
    ``alpha`` at or above ``alpha_max = ||G||_2``, the spectral norm of the negative gradient
    ``G`` of the datafit at ``W = 0`` (with the optimal intercepts there), gives ``W = 0``.
    With one task the trace norm is the l2 norm of ``w``: a group lasso with one group.

    Parameters
    ----------
    {low_rank_fit}

    Attributes
    ----------
    criterion_ : float
        The relative duality gap ``(primal - dual) / primal`` at the solution (the residuals
        rescaled into the dual feasible set, whose constraint is ``||X^T theta||_2 <= alpha``
        in the spectral norm, the trace norm's dual). For ``alpha`` at most 1e-10
        ``alpha_max``, whose gap rounding keeps near 1, the relative KKT violation of
        :class:`LowRankClassifier`, as for ``alpha = 0``.
    {low_rank_attributes}
    {task_attributes}

    See Also
    --------
    LowRankClassifier : The same penalty with the logistic loss.
    LowRankRegressorCV : ``alpha`` chosen by cross-validation.
    skmtl.linear.BlockSparseRegressor : Tasks share a sparse support instead.

    Notes
    -----
    {low_rank_solver}
    Stopping rule: the relative duality gap at most ``tol``.

    {low_rank_references}

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.linear import LowRankRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(60, 5))
    >>> W = np.outer(rng.normal(size=6), rng.normal(size=5))  # 6 tasks, rank 1
    >>> Y = X @ W.T + 0.1 * rng.normal(size=(60, 6))
    >>> Y[:20, 0] = np.nan  # missing labels are left out of task 0's loss
    >>> model = LowRankRegressor(alpha=0.1).fit(X, Y)
    >>> model.rank_
    1
    >>> model.predict(X[:2]).shape
    (2, 6)
    """

    _datafit = Quadratic


@Substitution(**_LOW_RANK_DOCS)
class LowRankClassifier(_BinaryLogisticMixin, _LowRankMixin, MultiTaskClassifierMixin,
                        BaseEstimator):
    """Multi-task binary logistic regression with a trace-norm penalty: a low-rank span.

    The optimisation objective, over ``W = coef_`` of shape (n_tasks, n_features) and the
    unpenalised intercepts ``b = intercept_`` of shape (n_tasks,), is::

        sum_t 1 / n_t * sum_{i in task t} log(1 + exp(-s_i (x_i w_t + b_t)))
            +  alpha * ||W||_*
            +  sum_t kappa_t / 2 * (c_t - c_bar)^2,   c_t = b_t + x_bar w_t

    where task ``t`` sees its ``n_t`` observed rows only, ``s_i = +1`` for the task's second
    class (``classes_[t][1]``) and ``-1`` for its first, and ``||W||_*`` is the trace norm
    (the sum of W's singular values). Every task must be binary. The last term (two tasks or
    more) is the datafit's pull of the intercepts at the mean of X (``x_bar``, over the
    observed labels) towards their precision-weighted mean ``c_bar`` with
    ``kappa_t = 1 / (4 n_t)``, which keeps the intercept of a task that saw one class finite
    (see :class:`~skmtl.linear.BlockSparseClassifier`); it does not depend on ``alpha``,
    vanishes for one task, and makes the model independent of where each column's zero is
    (a constant added to a column changes ``intercept_`` only).

    Parameters
    ----------
    {low_rank_fit}

    Attributes
    ----------
    {low_rank_attributes}
    criterion_ : float
        The relative KKT violation at the solution: the Frobenius distance of the negative
        gradient to ``alpha`` times the trace norm's subdifferential at ``W`` together with
        the intercepts' gradient, divided by ``alpha_max`` (0 exactly at the optimum).
    {classes}
    {task_attributes}

    See Also
    --------
    LowRankRegressor : The same penalty with the squared loss.

    Notes
    -----
    {low_rank_solver}
    Stopping rule: the relative KKT violation at most ``tol`` (skmtl's logistic datafit has
    no dual objective, so no duality gap).

    {low_rank_references}

    Examples
    --------
    >>> from skmtl.linear import LowRankClassifier
    >>> import numpy as np
    >>> X = np.random.RandomState(0).normal(size=(100, 4))
    >>> Y = np.column_stack([X[:, 0] > 0, X[:, 0] + X[:, 1] > 0, -X[:, 0] > 0]).astype(int)
    >>> model = LowRankClassifier(alpha=0.05).fit(X, Y)
    >>> model.rank_ <= 2
    True
    >>> [p.shape for p in model.predict_proba(X[:3])]
    [(3, 2), (3, 2), (3, 2)]
    """

    _datafit = Logistic
    _max_classes = 2


# -- cross-validation -----------------------------------------------------------------------------
class _LowRankCVMixin(_cv._GroupsFitMixin):
    """The relative alpha grid, warm-started paths per fold, the choice and the refit.

    Left of the fixed-alpha model (``_model``), whose datafit, tags and predictions it keeps.
    Wide or long data are wrapped for the folds (:class:`~._cv._WideData`,
    :class:`~._cv._LongData`): long data reach the solver as observations, no (n_samples,
    n_tasks) array is built.
    """

    _parameter_constraints = {
        "alphas": ["array-like", None],
        "n_alphas": [Interval(Integral, 1, None, closed="left")],
        "eps": [Interval(Real, 0, 1, closed="right")],
        "fit_intercept": ["boolean"],
        "standardize": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "cv": ["cv_object"],
        "scoring": [None, str, callable],
        "n_jobs": [None, Integral],
        "unknown_task": [StrOptions({"error", "shared"})],
    }
    _model = None
    _default_score = None

    def __init__(self, *, alphas=None, n_alphas=100, eps=1e-3, fit_intercept=True,
                 standardize=True, tol=1e-6, max_iter=2000, cv=5, scoring=None, n_jobs=None,
                 unknown_task="error"):
        self.alphas = alphas
        self.n_alphas = n_alphas
        self.eps = eps
        self.fit_intercept = fit_intercept
        self.standardize = standardize
        self.tol = tol
        self.max_iter = max_iter
        self.cv = cv
        self.scoring = scoring
        self.unknown_task = unknown_task
        self.n_jobs = n_jobs

    def _fit_multitask(self, X, Y, mask):
        self._fit_cv(X, _cv._WideData(X, Y, mask, self._layout, self.tasks_))

    def _fit_long(self, X, y, task_index):
        self._fit_cv(X, _cv._LongData(X, y, task_index, self.tasks_))

    def _fit_cv(self, X, data):
        (_, Y, mask), long = data.fit_args()
        X_all, scale = self._scaled(X, mask)
        data.check_finite_squares(X_all, self.tasks_, targets=not is_classifier(self))
        alpha_max = low_rank_alpha_max(X_all, Y, mask, fit_intercept=self.fit_intercept,
                                       datafit=self._datafit, **long)
        user_grid = self.alphas is not None
        if user_grid:
            alphas = np.unique(_cv._positive(self.alphas, "alphas"))[::-1]
        else:
            tiny = np.finfo(np.float64).resolution
            top = max(alpha_max, tiny)
            alphas = np.geomspace(top, self.eps * top, self.n_alphas)
        scorer = _cv._check_scoring(self.scoring)
        splits = self._splits(X, data)
        paths = [(None, None, np.zeros((0, 2)))] * len(splits)  # (W, b, values) per fold
        for extension in range(_cv.MAX_EXTENSIONS + 1):
            paths = Parallel(n_jobs=self.n_jobs)(
                delayed(self._fold_path)(data, train, test, scorer, alphas, path)
                for (train, test), path in zip(splits, paths))
            values = np.stack([path[2] for path in paths])  # (n_splits, n_alphas, 2)
            self.cv_results_, best = _cv._cv_results(values[..., 0] / values[..., 1],
                                                 {"alpha": alphas}, values[..., 1])
            means = np.nan_to_num(self.cv_results_["mean_test_score"], nan=-np.inf)
            edge = _cv.edge_of(means, best, 0, alphas.size)
            if edge == "first" and alphas[0] >= alpha_max:
                edge = None  # W = 0 there and beyond
            if user_grid or edge != "last" or extension == _cv.MAX_EXTENSIONS:
                break
            alphas = _cv.extend_geometric(alphas, "last")
        self.alpha_ = float(alphas[best])
        self.best_score_ = float(self.cv_results_["mean_test_score"][best])
        self.alphas_ = alphas
        if edge is not None:
            _cv.warn_edge("alpha", self.alpha_, alphas, extended=not user_grid)
        elif user_grid and _cv.flat_grid(means):  # e.g. every alpha >= alpha_max: W = 0
            _cv.warn_flat(["alpha"], [alphas])
        W, b, sv, self.criterion_, self.n_iter_ = self._solve(X_all, Y, mask, self.alpha_,
                                                              **long)
        self._store(W, b, sv, scale)

    def _fold_path(self, data, train, test, scorer, alphas, path):
        """The fold's path continued over the alphas it has not fitted yet: ``(W, b,
        values)``, the last solution (scaled units) and the (value, weight) of every alpha."""
        W, b, values = path
        (X, Y, mask), long = data.fit_args(train)
        X_scaled, scale = self._scaled(X, mask)
        fold = data.test_fold(test)
        new = []
        for alpha in alphas[values.shape[0]:]:
            W, b, *_ = self._solve(X_scaled, Y, mask, alpha, W0=W, b0=b, **long)
            W_user = W if scale is None else W / scale
            estimator = self._model(alpha, fit_intercept=self.fit_intercept)
            new.append(_cv._fold_score(fold, W_user, b, data.n_tasks, scorer, self._default_score,
                                   lambda W_, b_, est=estimator: _cv._as_fitted(est, self, W_, b_)))
        return W, b, np.concatenate([values, np.reshape(new, (-1, 2))])


def _cv_see_also(model):
    return f"""
    See Also
    --------
    {model} : The model, for a fixed alpha.
    skmtl.linear.BlockSparse{model[7:]}CV : Tasks sharing a sparse support instead.
    """


def _cv_doc(model, loss):
    return f"""
    Fits :class:`{model}` (objective in its docstring, the {loss}) along a geometric grid of
    alphas from ``alpha_max`` (the smallest alpha giving ``W = 0``: ``||G||_2``, the spectral
    norm of the negative gradient ``G`` of the datafit at ``W = 0``, with the optimal
    intercepts there, on all the scaled data) down to ``eps * alpha_max``, so that the grid
    does not depend on the data's units. On each training fold of ``cv`` the path is warm-started
    (each alpha starts from the previous alpha's solution); held-out scores come from the
    coefficients; the best alpha is refitted on all the data. A best alpha at the small end
    of the default grid extends it by a decade (at most 3 times), then raises a
    :class:`~skmtl.linear.GridEdgeWarning`; so do an optimum at an edge of a grid passed, and
    a grid passed whose scores are all within a relative 1e-4 (every alpha at least
    ``alpha_max``: ``W = 0`` at each).
    """


_CV_DOCS = {
    **_LOW_RANK_DOCS,
    "low_rank_cv_parameters": """
    alphas : array-like of shape (n_alphas,), default=None
        Values of ``alpha`` to try, all > 0 (decreasing order, never extended). None: the
        default relative grid.
    n_alphas : int, default=100
        Number of alphas of the default grid.
    eps : float, default=1e-3
        ``alpha_min / alpha_max`` of the default grid, in (0, 1].
    fit_intercept : bool, default=True
        Fit one unpenalised intercept per task.
    standardize : bool, default=True
        Scale the features by their pooled standard deviation inside (see the fixed-alpha
        model); ``coef_`` is in the user's units.
    tol : float, default=1e-6
        Tolerance of every fit of the path and of the refit.
    max_iter : int, default=2000
        Maximum number of FISTA steps of every fit (see :class:`LowRankRegressor`).
    cv : int, cross-validation generator, iterable or None, default=5
        An int (None: 5) is the number of folds of a
        :class:`~skmtl.model_selection.MultiTaskKFold` (every task in every training fold);
        any other splitter is used as given.
    scoring : str, callable or None, default=None
        None: minus the held-out loss over all test labels (squared error, or log loss for
        the classifier), every label weighing the same. A str names a multi-task scorer
        (``"r2"`` is computed from the coefficients); a callable is called as
        ``scoring(estimator, X_test, Y_test)`` with the fitted fixed-alpha model (``Y_test``
        in the user's labels or targets, missing ones as NaN, or None for text labels).
""" + EMPTY_FOLD,
    "low_rank_cv_attributes": join_blocks("""
    alpha_ : float
        The chosen alpha (the first, i.e. largest, of the best mean test score).
    alphas_ : ndarray of shape (n_alphas_tried,)
        The alphas tried, decreasing (the default grid with its extensions: more than
        ``n_alphas`` where the grid was extended).
    cv_results_ : dict of ndarray
        As :class:`~sklearn.model_selection.GridSearchCV`'s: ``param_alpha``, ``params``,
        ``split{k}_test_score``, ``mean_test_score``, ``std_test_score``,
        ``rank_test_score``.
    best_score_ : float
        Mean test score of ``alpha_``.
    criterion_ : float
        The stopping criterion of the refit (see the fixed-alpha model).
    """, _LOW_RANK_DOCS["low_rank_attributes"], LINEAR_DOCS["task_attributes"]),
}


@Substitution(**_CV_DOCS, cv_intro=_cv_doc("LowRankRegressor", "squared loss"),
              cv_see_also=_cv_see_also("LowRankRegressor"))
class LowRankRegressorCV(_LowRankCVMixin, LowRankRegressor):
    """Trace-norm multi-task least squares with ``alpha`` chosen by cross-validation.

    Minimises, over ``W = coef_`` and the unpenalised intercepts ``b = intercept_``::

        sum_t 1 / (2 n_t) * ||y_t - X_t w_t - b_t||^2_2  +  alpha * ||W||_*

    {cv_intro}

    Parameters
    ----------
    {low_rank_cv_parameters}
    {cv_n_jobs}
    unknown_task : {"error", "shared"}, default="error"
        A task not seen in fit: raise, or predict it with the mean task.

    Attributes
    ----------
    {low_rank_cv_attributes}

    {cv_see_also}

    Examples
    --------
    >>> from skmtl.linear import LowRankRegressorCV
    >>> import numpy as np
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(80, 8))
    >>> W = rng.normal(size=(10, 2)) @ rng.normal(size=(2, 8))  # 10 tasks, rank 2
    >>> Y = X @ W.T + 0.5 * rng.normal(size=(80, 10))
    >>> model = LowRankRegressorCV(n_alphas=10, eps=1e-2, cv=3).fit(X, Y)
    >>> model.coef_.shape, bool(model.alpha_ < model.alphas_[0])
    ((10, 8), True)
    >>> bool(model.singular_values_[1] > 5 * model.singular_values_[2])  # two directions
    True
    """

    _model = LowRankRegressor
    _default_score = staticmethod(_cv._pooled_squared_error)


@Substitution(**_CV_DOCS, cv_intro=_cv_doc("LowRankClassifier", "logistic loss"),
              cv_see_also=_cv_see_also("LowRankClassifier"))
class LowRankClassifierCV(_LowRankCVMixin, LowRankClassifier):
    """Trace-norm multi-task logistic regression with ``alpha`` chosen by cross-validation.

    Minimises, over ``W = coef_`` and the intercepts ``b = intercept_``::

        sum_t 1 / n_t * sum_{i in task t} log(1 + exp(-s_i (x_i w_t + b_t)))
            +  alpha * ||W||_*  +  sum_t kappa_t / 2 * (c_t - c_bar)^2

    {cv_intro}

    Parameters
    ----------
    {low_rank_cv_parameters}
    {cv_n_jobs}
    unknown_task : {"error", "shared"}, default="error"
        A task not seen in fit: raise, or give it the mean task's probabilities.

    Attributes
    ----------
    {classes}
    {low_rank_cv_attributes}

    {cv_see_also}

    Examples
    --------
    >>> from skmtl.datasets import make_multitask_classification
    >>> from skmtl.linear import LowRankClassifierCV
    >>> X, Y = make_multitask_classification(
    ...     n_samples=120, n_features=4, n_tasks=3, n_informative=2, random_state=0)
    >>> model = LowRankClassifierCV(alphas=[0.003, 0.001, 0.0003], cv=3).fit(X, Y)
    >>> model.coef_.shape, len(model.classes_)
    ((3, 4), 3)
    >>> float(model.alpha_)  # inside the grid: no GridEdgeWarning
    0.001
    """

    _model = LowRankClassifier
    _default_score = staticmethod(_cv._pooled_log_loss)
