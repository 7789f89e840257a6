"""Empirical Bayes for the hierarchical linear model: the profiled likelihood of a mixed model.

The model, per task ``t`` with rows ``X_t`` (fixed-effects design, ``p`` columns) and ``Z_t``
(random-effects design, ``q`` columns, a subset of the fixed ones)::

    y_t = X_t beta + Z_t u_t + e_t,   u_t ~ N(0, sigma^2 L L^T),   e_t ~ N(0, sigma^2 I)

with ``L`` (q x q) lower triangular, the relative Cholesky factor of the random effects'
covariance ``Sigma = sigma^2 L L^T`` (Bates et al., 2015, "Fitting linear mixed-effects models
using lme4"). For a given ``L`` the maximum over ``beta`` and ``sigma^2`` is closed form, so
the likelihood is maximised over the ``q (q + 1) / 2`` entries of ``L`` only (the *profiled*
deviance). Two optimisers share the work:

- Newton's method on ``Psi = L L^T`` (:meth:`MixedModel.newton`), with the exact Hessian of
  the profiled deviance (:meth:`MixedModel.hessian`; the expected information while the
  Hessian is indefinite, far from the optimum, summed over a systematic sample of 256 tasks
  or more), for an optimum inside the cone of positive definite ``Psi``: 7 iterations on
  1,000 tasks with 31 random effects, where L-BFGS-B took 44. The Hessian costs one
  product of two ``T x q (q + 1) / 2`` matrices, ``T q^4 / 4`` multiply-adds, so it runs up
  to ``q = 44`` (``_NEWTON_PAIRS``).
- A variance that is zero at the optimum (frequent on real data: Exam, Hsb82 and chem97 all
  have one) puts ``Psi`` on the boundary of the cone, where Newton's steps are cut to keep
  it positive definite. When a cut step leaves ``Psi``'s smallest eigenvalue below 1e-3 of
  its largest, Newton goes on on a factor ``B`` (q x r) of ``Psi = B B^T``
  (:meth:`MixedModel._factor_newton`): ``r`` is the rank of the Newton point projected on
  the positive semi-definite cone, its eigenvalues below 1e-3 of the largest dropped, and
  any ``B`` is a covariance, so no step is cut and the optimum of that rank (its subspace
  too) is reached at Newton's rate (for a diagonal ``Psi``, on the standard deviations
  kept: Exam, Hsb82 and 1,000 tasks with 15 slopes constant in 11 to 17 iterations, where
  the barrier took 45 to 61). If the gradient in ``Psi`` there says a variance left
  at 0 should grow, Newton resumes from a point along it, one rank up. On 1,000 tasks with
  15 of 30 slopes constant: 17 iterations in all (2 resumptions), where the barrier below
  took 56 and L-BFGS-B 923; Exam, Hsb82 and chem97 in 12 to 15, where the barrier took 45
  to 71.
- Where that fails (neither of its Hessians positive definite, or stopped at rounding
  level), Newton goes on along the central path of the barrier ``- mu log |Psi|`` (``mu``
  divided by 10 per stage, from ``tr(H Psi) / q``) until the deviance's own gradient meets
  the tolerance. Near a variance at zero that gradient
  shrinks only as ``sqrt(mu)`` (in the factor's column for it), so the stages usually end at
  rounding level instead (a Newton step that lowers the objective by at most 1e-13 of its
  scale without going all the way or halving the gradient, ``_ROUNDING``): the eigenvalues
  of ``Psi`` then below 1e-12 of its largest are set to exactly 0 (``_ZERO_VARIANCE``, kept
  only if the deviance agrees to rounding), where the gradient in ``L`` meets the
  tolerance.
- L-BFGS-B on the entries of ``L`` with its exact gradient and the diagonal of ``L`` bounded
  below by 0 finishes from where Newton stopped (at once, when Newton reached the tolerance)
  and checks that no variance left at zero should grow; it does the whole fit above
  ``_NEWTON_PAIRS`` or where neither Hessian is positive definite (collinear random
  effects). Expectation-maximisation creeps towards a boundary for thousands of iterations.

With ``M_t = I + L^T A_t L``, ``A_t = Z_t^T Z_t``, ``K_t = L M_t^-1 L^T`` and the Gram matrix
of ``[X, y]`` weighted by the inverse marginal covariances (Woodbury)::

    S = [X y]^T [X y] - sum_t [X_t y_t]^T Z_t K_t Z_t^T [X_t y_t]

``beta = S_XX^-1 S_Xy``, ``r^2 = S_yy - S_yX beta`` (the penalised residual sum of squares) and
the deviances, up to constants, are::

    ML:    N log r^2 + sum_t log |M_t|
    REML:  (N - p) log r^2 + sum_t log |M_t| + log |S_XX|

with ``sigma^2 = r^2 / N`` (ML) or ``r^2 / (N - p)`` (REML). Their gradient with respect to
``L`` is ``2 sum_t [A_t - (I - A_t K_t) G_t] L M_t^-1 = 2 H L`` with::

    H = sum_t A_t R_t - R_t^T G_t R_t,   R_t = (I + L L^T A_t)^-1,   R_t^T = I - A_t K_t

(``L M_t^-1 = R_t L``; ``H`` is the gradient in ``Psi = L L^T``), ``G_t = (N' / r^2) c_t c_t^T``
(plus ``C_t S_XX^-1 C_t^T`` for REML), ``c_t = Z_t^T (y_t - X_t beta)``, ``C_t = Z_t^T X_t``
and ``N' = N`` or ``N - p``. Each task's random effects are then the posterior means (BLUPs)
``u_t = K_t c_t``.

Everything is computed from per-task moments of ``[X, 1, y]``, once. Per evaluation, with
``N_t = Z_t^T [X_t y_t]`` (q x (p + 1), ``A_t`` its first columns) and ``M_t = Q_t Q_t^T``
(Cholesky), one triangular solve per task, ``W_t = Q_t^-1 L^T N_t``, gives everything else by
products over the stack of all tasks, no ``(T, q, q)`` inverse and no per-task ``G_t``::

    sum_t N_t^T K_t N_t = sum_t W_t^T W_t                 (S, and sum_t A_t K_t A_t)
    R_t^T N_t = N_t - A_t K_t N_t = N_t - W_t[:, :q]^T W_t
    sum_t R_t^T G_t R_t = sum_t P_t P_t^T,   P_t = R_t^T N_t F

with ``F F^T = (N' / r^2) w w^T (+ B S_XX^-1 B^T)``, ``w = [-beta, 1]`` (``N_t w = c_t``) and
``B`` the basis of the fixed effects padded with a zero row (``N_t B = C_t``). A deviance
costs ``O(T q^2 (q + p))``, whatever the number of rows. Where ``Psi`` is well conditioned
(Newton's iterates), ``M_t`` is replaced by ``C_t = Psi^-1 + A_t`` (``K_t = C_t^-1``,
``|M_t| = |Psi| |C_t|``, ``W_t = Q_t^-1 N_t`` with ``C_t = Q_t Q_t^T``): the same ``S``, ``W_t^T
W_t`` and gradient without the two products with ``L`` per task.
"""

from typing import NamedTuple

import numpy as np
import scipy.linalg
from numba import njit, uint64
from scipy.optimize import minimize

from skmtl.linear._linalg import _FAST, _solve_cholesky, _solve_lower, _threads_outside

__all__ = ["MixedModel", "MomentRows", "factor_entries", "minimize_covariance", "psd_factor",
           "range_basis", "standardized_moments", "task_moments"]

_BOUND = 1e4
# REML's second curvature term costs T (q rank)^2, or (T q)^2 rank + T^2 q^4 through the task
# pairs: exact where either is at most this, left out above (many tasks: it is of relative
# order rank / T there; the Newton steps then converge linearly at about that rate)
_REML_CURVATURE = 5e7
# Newton's method on Psi up to this many covariance entries (q = 44): its Hessian costs
# T q^4 / 4, against T q^2 (q + p) for a deviance
_NEWTON_PAIRS = 990
# the deviance through Psi^-1 + A_t (two products fewer per task) where the diagonal of L
# spans less than this ratio: Psi's condition number below about 1e8
_WELL_CONDITIONED = 1e-4
# the expected information (Newton's direction far from the optimum) from a systematic sample
# of at least this many tasks, where there are twice as many: its relative sampling error is
# then about 1 / sqrt(256) = 6%; the exact Hessian, which finishes, uses every task
_INFORMATION_TASKS = 256
# Newton goes on to the barrier's stages when a step is cut to keep Psi positive definite
# and leaves its smallest eigenvalue below this fraction of its largest
_NEAR_SINGULAR = 1e-3
# then the barrier mu log |Psi| is divided by 10 at each stage, until the deviance's own
# gradient meets tol
_BARRIER_STEP = 0.1
# the barrier's last stages leave a variance at zero about mu / (its slope) in standardised
# units: an eigenvalue of Psi below this times the largest is set to 0 (if the deviance agrees)
_ZERO_VARIANCE = 1e-12
# Newton on a factor of Psi resumed after an escape keeps Psi's eigenvalues above this times
# the largest (the escape's Cholesky factor adds 1e-10 of the trace)
_RESUMED = 1e-8
# a Newton step that lowers the objective by at most this times its scale has reached the
# rounding level of the deviance (a sum of T log-determinants): Newton stops there, where the
# gradient cannot meet a tolerance below its own rounding (near a variance at zero)
_ROUNDING = 1e-13


class MomentRows(NamedTuple):
    """The rows ``columns`` (sorted) of every task's moments, ``rows[t, a] = (D_t^T
    D_t)[columns[a]]`` (T, k, p), and their sum over tasks, ``total = sum_t D_t^T D_t`` (p,
    p): what :class:`MixedModel` reads of the moments, ``T k p`` entries where the whole
    moments have ``T p^2`` (a random intercept beside 2,048 fingerprint bits: 30 targets'
    moments took 1 GB an array)."""

    rows: np.ndarray
    columns: np.ndarray
    total: np.ndarray


def task_moments(problem, fit_intercept, rows=None):
    """Per-task moments ``(A, c, s, n)`` of ``D_t = [X_t, 1]`` (the ones only with
    ``fit_intercept``): ``D_t^T D_t`` (T, p, p), ``D_t^T y_t`` (T, p), ``y_t^T y_t`` and the
    row counts (T,), from the per-task design of a :class:`~._designs.Problem` (wide or long
    data, dense or sparse X; no per-task copy of X), and ``(x_origin, y_origin)``.

    ``rows`` (sorted indices of columns of ``D``, the intercept's among them with
    ``fit_intercept``): ``A`` is then their :class:`MomentRows`, the rows of the features
    from two passes over the tasks' rows each, the sum over tasks from one Gram matrix.

    With ``fit_intercept`` the moments are those of ``X - x_origin`` and ``y - y_origin``, the
    means over the observed labels (``Problem.design(at_mean=True)``): a model with an
    intercept is the same fitted from any origin, and raw moments of a column or a target far
    from its zero cancel in the congruence that standardises them (y shifted by 1e7 moved the
    predictions by 0.15 and the log-likelihood by 36). ``[X - x_origin, 1] = [X, 1] C`` with
    ``C`` the identity but for its last row, ``[-x_origin, 1]``.
    """
    design = problem.design(at_mean=fit_intercept)
    y = problem.targets(design)
    x_origin, y_origin = design.x_origin, 0.0
    if fit_intercept and y.size:
        y_origin = float(y.mean())
        y = y - y_origin
    c, n = design.rmatvec(y), design.counts.astype(np.float64)
    sums = design.rmatvec(np.ones_like(y)) if fit_intercept else None
    A = design.gram() if rows is None else _moment_rows(design, np.asarray(rows), sums, n)
    if fit_intercept:
        if rows is None:  # bordered by the column of ones: its sums and the row counts
            A = _bordered(A, sums, n)
        c = np.column_stack([c, design.segment_sum(y)])
    return A, c, design.segment_sum(y * y), n, (x_origin, y_origin)


def _bordered(A, sums, n):
    """``[[A_t, s_t], [s_t^T, n_t]]`` for every task (``A`` (T, d, d) or (d, d))."""
    d = A.shape[-1]
    out = np.empty((*A.shape[:-2], d + 1, d + 1))
    out[..., :d, :d] = A
    out[..., :d, d] = out[..., d, :d] = sums
    out[..., d, d] = n
    return out


def _moment_rows(design, rows, sums, n):
    """:class:`MomentRows` of ``rows`` of ``[X, 1]`` (the intercept, ``d``, bordering with
    ``sums`` and ``n`` unless None): a feature's row ``X_t^T x_tj`` from its observed values
    (``matvec`` of a unit row) and ``rmatvec``."""
    n_tasks, d = design.n_tasks, design.n_features
    unit = np.zeros((n_tasks, d))
    out = np.empty((n_tasks, len(rows), d + (sums is not None)))
    for k, j in enumerate(rows):
        if j == d:  # the intercept's row: the sums and the counts
            out[:, k, :d], out[:, k, d] = sums, n
            continue
        unit[:, j] = 1.0
        out[:, k, :d] = design.rmatvec(design.matvec(unit))
        unit[:, j] = 0.0
        if sums is not None:
            out[:, k, d] = sums[:, j]
    total = design.pooled_gram()
    if sums is not None:
        total = _bordered(total, sums.sum(axis=0), n.sum())
    return MomentRows(out, rows, total)


def standardized_moments(A, J):
    """``J^T A_t J`` for every task, for ``J`` diagonal but for its last row (the
    standardising map of the features, the intercept last): ``O(T p^2)``, where a product per
    task would be two per task. ``A`` may be :class:`MomentRows`, whose rows then hold the
    last one wherever that row of ``J`` is not diagonal."""
    g, h = np.diag(J).copy(), J[-1].copy()
    h[-1] = 0.0
    if not np.array_equal(J, np.diag(g) + np.outer(np.eye(len(g))[-1], h)):
        raise ValueError("J must be diagonal but for its last row.")
    if not isinstance(A, MomentRows):
        return _congruent(A, g, h)
    # (J^T A_t J)_ij = g_i (A_t J)_ij + h_i (A_t J)_Lj for the rows i kept, L the last
    rows, columns = A.rows, A.columns
    right = rows * g + rows[:, :, -1:] * h  # (A_t J)_ij
    out = g[columns][:, None] * right
    if np.any(h[columns]):
        last = np.flatnonzero(columns == len(g) - 1)
        if not last.size:
            raise ValueError("The moments' rows must hold the last one: J's last row is not "
                             "diagonal.")
        out += h[columns][:, None] * right[:, last]
    return MomentRows(out, columns, _congruent(A.total[None], g, h)[0])


@njit(cache=True)
def _congruent(A, g, h):
    """``(J^T A_t J)_ij = g_i g_j A_ij + g_i h_j A_iL + h_i g_j A_Lj + h_i h_j A_LL`` for ``J =
    diag(g) + e_L h^T`` (``L`` the last index, ``h_L = 0``)."""
    n_tasks, p, _ = A.shape
    out = np.empty_like(A)
    last = p - 1
    for t in range(n_tasks):
        a = A[t]
        for i in range(p):
            for j in range(p):
                out[t, i, j] = (g[i] * (g[j] * a[i, j] + h[j] * a[i, last])
                                + h[i] * (g[j] * a[last, j] + h[j] * a[last, last]))
    return out


class _Evaluation(NamedTuple):
    """What :meth:`MixedModel._evaluate` leaves for the Hessian and the estimates at the same
    ``theta``: ``W_t`` and ``Q_t^T`` (``M``'s upper triangles) of the per-task factorisation,
    ``L`` when it went through ``I + L^T A_t L`` (None through ``Psi^-1 + A_t``; the BLUPs
    ``K_t c_t = [L] Q_t^-T W_t w`` multiply by it), the fixed effects, ``r^2``, the Cholesky
    factor of ``S_XX``, and when the gradient formed them the ``(R_t^T N_t)^T`` stack (REML)
    and the ``P_t^T`` (T, k, q): ``Z_t^T V_t^-1 X_t basis Q^-T`` transposed (REML, ``rank``
    rows), then ``c_t^T / sqrt(s2)``."""

    theta: np.ndarray
    value: float
    W: np.ndarray
    M: np.ndarray
    L: np.ndarray | None
    gamma: np.ndarray
    r2: float
    Sxx_chol: np.ndarray
    RtNT: np.ndarray | None
    P: np.ndarray | None = None


class MixedModel:
    """The profiled deviance of the model above, from per-task moments.

    Parameters
    ----------
    A, c, s, n : ndarray
        Per-task moments of the fixed-effects design ``D`` and targets (:func:`task_moments`),
        in the coordinates the model is fitted in; ``A`` may be their :class:`MomentRows`
        holding the rows ``random`` (at least).
    random : ndarray of int
        Columns of ``D`` that also have a random effect (``Z_t = D_t[:, random]``).
    reml : bool
        Restricted (REML) or plain (ML) likelihood.
    diagonal : bool, default=False
        Independent random effects: ``L`` (so ``Psi``) diagonal, ``theta`` its ``q``
        diagonal entries (the standard deviations relative to the noise's) instead of the
        lower triangle. The coordinates of Newton's method are then the ``q`` variances
        (the pairs ``(i, i)``): its Hessian is ``4 sum_t X_t o Y_t`` (elementwise) plus the
        profiling terms, the barrier's ``mu (Psi^-1)_ik^2``, and :meth:`_snap` zeroes
        variances. On 1,000 tasks with 31 random effects: 7 iterations, 0.21 s, where
        L-BFGS-B alone took 21 iterations, 0.64 s.
    """

    def __init__(self, A, c, s, n, random, reml, diagonal=False):
        self.random = np.asarray(random)
        self.reml = reml
        self.diagonal = diagonal
        self.n = float(n.sum())
        # a rank-deficient fixed design (one-hot columns beside the intercept, a constant
        # column): fit beta in an orthonormal basis of the range of D^T D, beta = basis @ gamma
        if isinstance(A, MomentRows):
            total, rows = A.total, np.searchsorted(A.columns, self.random)
            if not np.array_equal(A.columns[np.minimum(rows, len(A.columns) - 1)],
                                  self.random):
                raise ValueError("The moments' rows must hold the random columns.")
            A = A.rows
        else:
            total, rows = A.sum(axis=0), self.random
        self.basis = range_basis(total, A.shape[2])
        self.rank = self.basis.shape[1]
        self.p = A.shape[2]
        self.q = len(self.random)
        # N_t = Z_t^T [D_t, y_t] (T, q, p + 1), the columns of D permuted to put Z's first
        order = np.concatenate([self.random, np.setdiff1d(np.arange(self.p), self.random)])
        self.N = np.empty((len(A), self.q, self.p + 1))
        self.N[:, :, :-1] = A[:, rows[:, None], order]
        self.N[:, :, -1] = c[:, self.random]
        self._basis_ordered = self.basis[order]
        self.Azz = total[np.ix_(self.random, self.random)]  # sum_t A_t, q x q
        self.Gxx = self.basis.T @ total @ self.basis
        self.Gxy = self.basis.T @ c.sum(axis=0)
        self.Gyy = float(s.sum())
        self._tril = factor_entries(self.q, diagonal)
        # E_a = e_i e_j^T + e_j e_i^T for the pair a = (i, j) of the lower triangle, half of
        # that on the diagonal
        self._half = np.where(self._tril[0] == self._tril[1], 0.5, 1.0)
        self._last = None  # (theta, value, H) of the last gradient, for covariance_gradient
        self._state = None  # the last evaluation (_Evaluation), for the Hessian and estimates

    def start(self):
        """``theta`` of ``Psi = I``, the fit's start."""
        return np.eye(self.q)[self._tril]

    def factor(self, theta):
        """The lower-triangular ``L`` of a parameter vector (its lower triangle, row-major; its
        diagonal if ``diagonal``)."""
        L = np.zeros((self.q, self.q))
        L[self._tril] = theta
        return L

    def _dof(self):
        return self.n - self.rank if self.reml else self.n

    def _evaluate(self, theta, gradient, inverse=False):
        """``(value, H, gamma, r2)`` at ``theta``: the deviance, its gradient ``H`` in ``Psi``
        (None unless ``gradient``), the fixed effects in the basis and ``r^2``. ``inverse``:
        through ``Psi^-1 + A_t`` where ``L`` is well conditioned (the same values to
        rounding)."""
        L = self.factor(theta)
        p, q, basis = self.p, self.q, self._basis_ordered
        diagonal = np.abs(np.diag(L))
        L_inverse = None
        if inverse and diagonal.min() > _WELL_CONDITIONED * diagonal.max():
            # K_t = (Psi^-1 + A_t)^-1 and |M_t| = |Psi| |Psi^-1 + A_t|: no product with L
            L_inverse = _inverse_lower(L)
            M, W = np.empty((len(self.N), q, q)), np.empty_like(self.N)  # W_t = Q_t^-1 N_t
            logdet = _shifted_factor_solve(self.N, M, W, L_inverse.T @ L_inverse)
            logdet += 2.0 * len(M) * np.log(diagonal).sum()
        elif self.diagonal:  # L^T N_t and L^T A_t L scale rows and columns
            scale = np.diag(L)
            W = self.N * scale[:, None]
            M = W[:, :, :q] * scale
            M[:, np.arange(q), np.arange(q)] += 1.0
            logdet = _factor_solve(M, W)
        else:
            W = L.T @ self.N  # L^T N_t, (T, q, p + 1)
            M = (W[:, :, :q].reshape(-1, q) @ L).reshape(-1, q, q)  # L^T A_t L (one product)
            M[:, np.arange(q), np.arange(q)] += 1.0
            logdet = _factor_solve(M, W)  # W_t <- Q_t^-1 L^T N_t
        if not np.isfinite(logdet):
            raise np.linalg.LinAlgError("I + L^T A_t L is not positive definite")
        flat = W.reshape(-1, p + 1)
        # S = sum_t N_t^T K_t N_t = flat^T flat, in the basis of the fixed effects
        if self._wide(len(flat)):  # the rows into the basis, not S (p^3)
            rotated = flat[:, :p] @ basis
            Sxx = self.Gxx - rotated.T @ rotated
            Sxy = self.Gxy - rotated.T @ flat[:, p]
            Syy = self.Gyy - float(flat[:, p] @ flat[:, p])
            Szz = flat[:, :q].T @ flat[:, :q]
        else:
            S = flat.T @ flat
            Sxx = self.Gxx - basis.T @ S[:p, :p] @ basis
            Sxy = self.Gxy - basis.T @ S[:p, p]
            Syy = self.Gyy - float(S[p, p])
            Szz = S[:q, :q]
        Sxx_chol = _cholesky(0.5 * (Sxx + Sxx.T))
        gamma = _solve_cholesky(Sxx_chol, Sxy)
        # floored at rounding level: data the fixed effects fit exactly keep a finite deviance
        r2 = max(Syy - float(Sxy @ gamma), np.finfo(float).eps * max(self.Gyy, 1.0))
        dof = self._dof()
        value = dof * np.log(r2) + logdet
        if self.reml:
            value += 2.0 * np.log(np.diag(Sxx_chol)).sum()
        self._state = _Evaluation(np.array(theta, dtype=np.float64), float(value), W, M,
                                  L if L_inverse is None else None, gamma, r2, Sxx_chol, None)
        if not gradient:
            return float(value), None, gamma, r2
        # sum_t R_t^T G_t R_t = sum_t P_t P_t^T, P_t = R_t^T N_t F with F F^T = (N' / r^2) w w^T
        # (+ basis S_XX^-1 basis^T, REML), w = [-beta, 1] (N_t w = c_t, N_t basis = C_t), and
        # R_t^T N_t = N_t - A_t K_t N_t, A_t K_t N_t = W_t[:, :q]^T W_t
        F = np.append(-basis @ gamma, 1.0)[:, None] * np.sqrt(dof / r2)
        if self.reml:  # rank + 1 columns: through (R_t^T N_t)^T, kept for the Hessian
            RtNT = _transposed_rtn(self.N, W)
            # the P_t^T stacked, (T (rank + 1), q): Q^-1 basis^T R_t^T C_t, then w's row
            if self._wide(len(flat)):
                P = np.concatenate([self._whitened(Sxx_chol, RtNT[:, :p]),
                                    np.matmul(F.T, RtNT)], axis=1)
            else:
                F = np.column_stack([np.vstack([_solve_lower(Sxx_chol, basis.T).T,
                                                np.zeros(self.rank)]), F])
                P = np.matmul(F.T, RtNT)
        else:  # one column: P_t = N_t F - W_t[:, :q]^T (W_t F), (T, q)
            RtNT = None
            P = self.N.reshape(-1, p + 1) @ F[:, 0]
            P = P.reshape(-1, q) - (W[:, :, :q].transpose(0, 2, 1)
                                    @ (flat @ F).reshape(-1, q, 1)).reshape(-1, q)
            P = P.reshape(-1, 1, q)
        H = self.Azz - Szz - P.reshape(-1, q).T @ P.reshape(-1, q)
        H = 0.5 * (H + H.T)
        self._last = (self._state.theta, float(value), H)
        self._state = self._state._replace(RtNT=RtNT, P=P)
        return float(value), H, gamma, r2

    def hessian(self, expected=False):
        """The Hessian of the deviance in ``Psi``, at the last ``theta`` evaluated, in the
        coordinates ``Psi = sum_a delta_a E_a`` of the lower triangle (:meth:`symmetric`):
        ``(n_pairs, n_pairs)``.

        The ML deviance, ``beta`` and ``sigma^2`` profiled, is exact::

            d2 = sum_t tr[(2 c_t c_t^T / s2 - B_t) E B_t E'] - <C, E> <C, E'> / (N' s2^2)
                 - (2 / s2) m(E)^T S_XX^-1 m(E')

        with ``B_t = Z_t^T V_t^-1 Z_t = R_t^T A_t``, ``c_t = R_t^T Z_t^T r_t`` (``V_t = I + Z_t
        Psi Z_t^T``), ``s2 = r^2 / N'``, ``C = sum_t c_t c_t^T`` and ``m(E) = sum_t c_t^T E
        Z_t^T V_t^-1 X_t`` (the second term profiles ``sigma^2``, the third ``beta``). REML's
        ``log |S_XX|`` adds ``2 sum_t tr(F_t F_t^T E B_t E') - tr(S_XX^-1 D(E) S_XX^-1
        D(E'))`` with ``F_t = Z_t^T V_t^-1 X_t`` (times ``S_XX^-1/2``) and ``D(E) = sum_t
        X_t^T V_t^-1 Z_t E Z_t^T V_t^-1 X_t``; the second part costs ``T (q rank)^2``, or
        ``(T q)^2 rank + T^2 q^4`` through the task pairs (:func:`_reml_curvature`), and is
        left out where both exceed ``_REML_CURVATURE`` (many tasks: it is then of relative
        order ``rank / T``, and Newton's steps converge linearly at about that rate).
        ``expected``: ``c_t c_t^T`` replaced by its mean ``s2 B_t`` (the expected information
        of the ML part, positive semi-definite where the exact Hessian is not; the REML part
        kept), its sums over tasks taken over every k-th task and scaled by ``T`` over the
        tasks kept, ``k = T // _INFORMATION_TASKS`` (it only gives Newton's directions far
        from the optimum: on 1,000 tasks with 31 random effects, the first 4 of the 7 steps,
        which the sample leaves as many).
        """
        if self._state.P is None:  # the last evaluation was the deviance's alone
            self._evaluate(self._state.theta, True)
        state = self._state
        W, r2, RtNT, P = state.W, state.r2, state.RtNT, state.P
        q = self.q
        rows, cols = self._tril
        s2 = r2 / self._dof()
        if RtNT is None:
            RtNT = _transposed_rtn(self.N, W)
        # the expected information from every k-th task, k = T // _INFORMATION_TASKS, its
        # sums over tasks scaled by T / (tasks kept): a direction far from the optimum
        stride = max(len(RtNT) // _INFORMATION_TASKS, 1) if expected else 1
        weight = len(RtNT) / len(range(0, len(RtNT), stride))
        B = RtNT[::stride, :q]  # R_t^T A_t, symmetric
        # the gradient's P_t^T: F_t^T = (Z_t^T V_t^-1 X_t basis Q^-T)^T (REML; S_XX = Q Q^T),
        # then c_t^T / sqrt(s2), so that X_t = (2 / s2) c_t c_t^T + 2 F_t F_t^T - B_t (the
        # REML part but for the expected information's c_t c_t^T, whose mean is s2 B_t)
        P = P[::stride]
        k = P.shape[1] - 1  # F's rows: rank with REML, none with ML
        c = P[:, k] * np.sqrt(s2)
        used = k if expected else k + 1
        if self.diagonal:  # pairs (i, i), (k, k): 4 sum_t X_t[i, k] Y_t[i, k], Y_t = B_t
            X = 2.0 * np.matmul(P[:, :used].transpose(0, 2, 1), P[:, :used])
            X = X + B if expected else X - B
            hess = 4.0 * weight * np.einsum("tik,tik->ik", X, B)
        else:
            # sum_t tr(X_t E_a Y_t E_b) over the pairs a = (i, j), b = (k, m), from
            # G = sum_t vec(X_t) vec(Y_t)^T over the lower triangles
            Y = B[:, rows, cols]
            X = 2.0 * _pair_grams(P, used, rows, cols)
            X = X + Y if expected else X - Y
            with _threads_outside():
                gram = X.T @ Y
            hess = weight * _gather_pairs(gram, rows, cols)
        if expected:
            C = weight * s2 * B.sum(axis=0)
        else:
            C = c.T @ c
            # beta profiled: m(E_a) S_XX^-1 m(E_b), m(E_a) = sum_t c_t^T E_a Z_t^T V_t^-1 X_t
            if self.reml:
                F = P[:, :k]
            elif self._wide(len(c) * q):
                F = self._whitened(state.Sxx_chol, RtNT[::stride, :self.p])
            else:  # (T, rank, q)
                F = np.matmul(_solve_lower(state.Sxx_chol, self._basis_ordered.T),
                              RtNT[::stride, :self.p])
            m = (c.T @ F.reshape(len(c), -1)).reshape(q, self.rank, q).transpose(0, 2, 1)
            m = m[rows, cols] + m[cols, rows]
            hess -= (2.0 / s2) * (m @ m.T)
        C = 2.0 * C[rows, cols]
        hess -= np.outer(C, C) / (self._dof() * s2**2)
        if self.reml:
            # ... - tr(S_XX^-1 D(E) S_XX^-1 D(E')), D(E) = sum_t X_t^T V_t^-1 Z_t E Z_t^T V_t^-1 X_t
            curvature = _reml_curvature(P[:, :k].transpose(0, 2, 1), weight, rows, cols)
            if curvature is not None:
                hess -= curvature
        hess *= np.outer(self._half, self._half)
        return 0.5 * (hess + hess.T)

    def _wide(self, n_columns):
        """Fewer columns of the tasks' stack (``T q``, or a sample's) than fixed effects (wide
        X, few tasks): products with ``S``, ``S_XX^-1`` and ``basis`` then go through the
        stack's columns, ``O(T q p^2)``, not through ``p x p`` products, ``O(p^3)`` (2,049
        fixed effects: 94 s a fit, 8.6 GFLOP a triangular solve, where 30 targets with a
        random intercept give 30 columns)."""
        return n_columns < self.p

    def _whitened(self, Sxx_chol, V):
        """``Q^-1 basis^T V_t`` for every task, (T, rank, q), with ``S_XX = Q Q^T`` and ``V``
        (T, p, q), by one solve with every task's columns as right-hand sides (:meth:`_wide`
        data; otherwise ``Q^-1 basis^T`` is formed once)."""
        n_tasks, p, q = V.shape
        columns = self._basis_ordered.T @ V.transpose(1, 0, 2).reshape(p, -1)
        return _solve_lower(Sxx_chol, columns).reshape(-1, n_tasks, q).transpose(1, 0, 2)

    def symmetric(self, delta):
        """The symmetric ``sum_a delta_a E_a`` of coordinates over the lower triangle."""
        D = np.zeros((self.q, self.q))
        D[self._tril] = delta
        return D + np.tril(D, -1).T

    def value(self, theta):
        """The profiled deviance (up to a constant), without its gradient."""
        return self._evaluate(theta, False)[0]

    def deviance(self, theta):
        """The profiled deviance (up to a constant) and its gradient in ``theta``: the lower
        triangle of ``2 H L``."""
        value, H, _, _ = self._evaluate(theta, True)
        return value, (2.0 * H @ self.factor(theta))[self._tril]

    def covariance_gradient(self, theta):
        """The gradient of the deviance in the relative covariance ``Psi = L L^T``.

        ``H = sum_t A_t R_t - R_t^T G_t R_t`` with ``R_t = (I + Psi A_t)^-1`` (``R_t^T = I -
        A_t K_t``); the gradient in ``L`` is twice this times ``L``, so it vanishes wherever a
        column of ``L`` is zero whether or not that variance should grow: this one tells.
        """
        last = self._last
        if last is not None and np.array_equal(last[0], theta):
            return last[1], last[2]
        value, H, _, _ = self._evaluate(theta, True)
        return value, H

    def fit(self, theta0, *, max_iter, tol):
        """Minimise the deviance from ``theta0``: ``(theta, n_iter)``.

        Newton's method in ``Psi`` first (:meth:`newton`, up to ``_NEWTON_PAIRS`` covariance
        entries): done when it converges inside the positive definite cone. Where its steps
        head for the boundary (``_boundary``), Newton on a factor of the rank they head for
        (:meth:`_factor_newton`), resumed one rank up from :func:`_escape`'s point while a
        variance left at 0 should grow. Where that fails, Newton on the deviance minus ``mu
        log |Psi|``, ``mu`` divided by 10 per stage from ``tr(H Psi) / q`` (the barrier's own
        gradient there), until the deviance's gradient in ``theta`` meets ``tol`` or the
        stages reach rounding level; then the variances at rounding level are set to 0
        (:meth:`_snap`). Then :func:`minimize_covariance` from where it stopped, within what
        is left of ``max_iter`` (``n_iter <= max_iter``).
        """
        theta, n_iter = np.asarray(theta0, dtype=np.float64), 0
        if len(theta) <= _NEWTON_PAIRS:
            theta, n_iter, converged = self.newton(theta, max_iter=max_iter, tol=tol)
            if converged:
                return theta, n_iter
            scale = self._scale
            if self._boundary:  # Newton on a factor of the rank its steps head for
                found, more, converged = self._factor_newton(
                    theta, max_iter=max_iter - n_iter, tol=tol, scale=scale)
                n_iter += more
                for _ in range(self.q):  # a variance left at 0 that should grow: resume
                    escape = converged and _escape(self.value, self.covariance_gradient,
                                                   found, 0, self.q, self.diagonal)
                    if not escape or n_iter >= max_iter:
                        break
                    found, more, converged = self._factor_newton(
                        escape[0], max_iter=max_iter - n_iter, tol=tol, scale=scale,
                        project=False)
                    n_iter += more
                # out of iterations short of convergence: keep its last point if lower (any
                # factor is a covariance; otherwise the barrier below goes on from theta, inside)
                if converged or n_iter >= max_iter and self.value(found) < self.value(theta):
                    theta = found
                self._boundary = not converged
            if self._boundary:  # towards the boundary along the central path
                H = self.covariance_gradient(theta)[1]
                L = self.factor(theta)
                mu = max(abs(np.trace(H @ L @ L.T)) / self.q, np.finfo(float).eps * scale)
                while n_iter < max_iter:
                    mu *= _BARRIER_STEP
                    theta, more, settled = self.newton(
                        theta, max_iter=max_iter - n_iter, tol=tol, mu=mu, scale=scale)
                    n_iter += more
                    H = self.covariance_gradient(theta)[1]
                    gradient = 2.0 * (H @ self.factor(theta))[self._tril]
                    # done, or stalled at rounding level: L-BFGS-B finishes
                    if (np.abs(gradient).max() <= tol * scale or not (settled or more)
                            or mu < np.finfo(float).eps * scale):
                        break
                theta = self._snap(theta)
        if n_iter >= max_iter:
            return theta, n_iter
        theta, more = minimize_covariance(
            self.deviance, self.covariance_gradient, theta, 0, self.q,
            max_iter=max_iter - n_iter, tol=tol, value=self.value, diagonal=self.diagonal)
        return theta, n_iter + more

    def _factor_newton(self, theta, *, max_iter, tol, scale, project=True):
        """Newton's method on a rank-``r`` factor ``B`` (q x r) of ``Psi = B B^T``, from
        ``theta`` where Newton on ``Psi`` stopped at the boundary: ``(theta, n_iter,
        converged)``.

        ``r`` counts the eigenvalues at least ``_NEAR_SINGULAR`` times the largest of the
        Newton point from ``theta`` projected on the positive semi-definite cone
        (:meth:`_projected_newton`; the others, heading for 0, are set to 0), or with
        ``project=False`` (after an escape) those of ``Psi`` itself at least ``_RESUMED``
        times its largest. Any ``B`` gives a positive semi-definite
        ``Psi``, so no step is cut; the face of rank ``r`` is searched whole (its subspace
        too, which a fixed basis would not), and at its optimum the gradient ``2 H B`` is 0,
        so ``H`` vanishes on the range of ``Psi``. ``B`` is kept lower trapezoidal after a
        row permutation (pivoted QR: ``B`` and ``B Q`` give the same ``Psi``), whose entries
        are the coordinates: the Hessian is then positive definite at an optimum of rank
        ``r``. With ``J`` the Jacobian of ``vech(B B^T)`` in them::

            d2 f = J^T hess J + 2 (H (x) I_r),     grad = 2 H B

        (``hess`` :meth:`hessian`'s, in ``Psi``; the second term the curvature of ``B B^T``;
        the expected information's ``J^T hess J`` while that is not positive definite). For
        a diagonal ``Psi``, ``B``'s columns are the unit vectors of the variances kept times
        their standard deviations, which are the coordinates (:func:`_diagonal_entries`).
        A step halves until the deviance falls by ``1e-4`` times the predicted decrease; a
        direction of ``B`` whose variance falls below ``_ZERO_VARIANCE`` times the largest is
        set to 0 (``r`` lowered). Converged when the gradient in ``theta`` (the Cholesky
        factor of ``Psi``, zero columns past ``r``) meets ``tol * scale``; it stops
        unconverged at rounding level or when neither Hessian is positive definite. The
        variances it leaves at 0 are then checked by :func:`minimize_covariance`.
        """
        if project:
            B = self._projected_newton(theta)
        else:  # from an escape: Psi's eigenvalues past the Cholesky factor's jitter
            B = self._psd_factor(self._psi(theta), _RESUMED)
        if B is None:  # no positive variance: the barrier's stages, or L-BFGS-B, go on
            return theta, 0, False
        theta = self._theta_of(B)
        value, H = self._objective(theta, 0.0)
        flat, gradient_size, step = False, np.inf, 1.0
        for n_iter in range(max_iter):
            last_size = gradient_size
            gradient_size = np.abs(2.0 * (H @ self.factor(theta))[self._tril]).max()
            if gradient_size <= tol * scale:
                return theta, n_iter, True
            if flat and (step < 1.0 or gradient_size > 0.5 * last_size):
                return theta, n_iter, False
            B, free = _diagonal_entries(B) if self.diagonal else _trapezoidal(B)
            grad = (2.0 * H @ B).ravel()[free]
            delta, _ = _newton_step((grad, self._factor_system(B, free, H, expected))
                                    for expected in (False, True))
            if delta is None:
                return theta, n_iter, False
            decrease = float(grad @ delta)
            direction = np.zeros(B.size)
            direction[free] = delta
            direction = direction.reshape(B.shape)
            step = 1.0
            for _ in range(20):
                trial_B = B + step * direction
                trial = self._theta_of(trial_B)
                new_value, new_H = self._objective(trial, 0.0)
                if new_value <= value + 1e-4 * step * decrease:
                    break
                step *= 0.5
            else:
                return theta, n_iter, False
            flat = value - new_value <= _ROUNDING * scale
            # a direction whose variance reached rounding level is set to 0
            kept = self._psd_factor(trial_B @ trial_B.T, _ZERO_VARIANCE)
            if kept is None:  # every variance at 0
                return theta, n_iter + 1, False
            if kept.shape[1] < trial_B.shape[1]:
                trial_B, trial = kept, self._theta_of(kept)
                new_value, new_H = self._objective(trial, 0.0)
            B, theta, value, H = trial_B, trial, new_value, new_H
        return theta, max_iter, False

    def _factor_system(self, B, free, H, expected):
        """The Hessian of the deviance in the entries ``free`` of ``B`` (flat indices;
        :func:`_trapezoidal`), ``Psi = B B^T`` the last one evaluated with gradient ``H``
        (there ``2 H B``): ``J^T hess J + 2 (H (x) I_r)`` (``J^T hess J`` alone with
        ``expected``, :meth:`hessian`'s expected information)."""
        rows, cols = self._tril
        q, r = B.shape
        J = np.zeros((len(rows), q, r))  # d vech(B B^T)_(i, j) / dB_km
        J[np.arange(len(rows)), rows] += B[cols]
        J[np.arange(len(rows)), cols] += B[rows]
        J = J.reshape(len(rows), -1)[:, free]
        hess = self.hessian(expected)
        with _threads_outside():
            system = J.T @ hess @ J
        if not expected:  # the curvature of B B^T: 2 tr(dB^T H dB), (H (x) I_r) on free
            # entries (k, m) and (k', m') of B: H[k, k'] where m = m', without the (q r)^2
            # Kronecker product (101 random effects, diagonal: 0.8 GB and 0.14 s a step)
            k, m = np.divmod(free, r)
            system += 2.0 * H[np.ix_(k, k)] * (m[:, None] == m)
        return 0.5 * (system + system.T)

    def _projected_newton(self, theta):
        """A factor ``B`` of the Newton point ``Psi + Delta`` from ``theta`` (the exact
        Hessian, or the expected information where that is not positive definite) projected
        on the positive semi-definite cone, its eigenvalues below ``_NEAR_SINGULAR`` times
        the largest set to 0: the face of the boundary the step was heading for. None if
        neither Hessian is positive definite or no eigenvalue is positive."""
        _, H = self.covariance_gradient(theta)  # (Newton's last evaluation: the same theta)
        if not np.array_equal(self._state.theta, theta):  # the Hessian's evaluation
            self._evaluate(theta, True)
        grad = 2.0 * self._half * H[self._tril]
        delta, _ = _newton_step((grad, self.hessian(expected)) for expected in (False, True))
        if delta is None:
            return None
        return self._psd_factor(self._psi(theta) + self.symmetric(delta), _NEAR_SINGULAR)

    def _psd_factor(self, Psi, threshold):
        """``B`` with ``B B^T`` the projection of the symmetric ``Psi`` on the positive
        semi-definite cone, its eigenvalues below ``threshold`` times the largest set to 0
        (one column per eigenvalue kept; for a diagonal model, per diagonal entry kept, each
        column a multiple of a unit vector). None if no eigenvalue is positive."""
        if self.diagonal:
            return _kept_factor(np.diag(Psi), np.eye(self.q), threshold)
        return psd_factor(Psi, threshold)

    def _theta_of(self, B):
        """``theta`` of ``Psi = B B^T``: its Cholesky factor's lower triangle (with zero
        columns where ``B`` has fewer than ``q``), or the square roots of its diagonal."""
        if self.diagonal:
            return np.sqrt(np.sum(B * B, axis=1))
        return _lower_factor(B)[self._tril]

    def _psi(self, theta):
        """``Psi = L L^T``."""
        L = self.factor(theta)
        return L @ L.T

    def _snap(self, theta):
        """``theta`` with the eigenvalues of ``Psi`` below ``_ZERO_VARIANCE`` times its largest
        set to 0 (the variances the barrier's stages took to rounding level; the factor from
        :func:`_lower_factor`, a column exactly 0 per eigenvalue set to 0), where that raises
        the deviance by at most its rounding level. Near a variance at zero, the gradient in
        the factor's columns for it shrinks only as ``sqrt(mu)``; on the face where it is
        exactly zero, ``H L = 0`` at the optimum (``H Psi = 0``) whatever factor of ``Psi``."""
        B = self._psd_factor(self._psi(theta), _ZERO_VARIANCE)
        if B is None or B.shape[1] == self.q:
            return theta
        snapped = self._theta_of(B)
        if self.value(snapped) <= self.value(theta) + _ROUNDING * self._scale:
            return snapped
        return theta

    def newton(self, theta, *, max_iter, tol, mu=0.0, scale=None):
        """Newton's method on the deviance in ``Psi = L L^T`` from ``theta``, while ``Psi``
        stays positive definite: ``(theta, n_iter, converged)``.

        Each step solves ``hess delta = -grad`` in the coordinates of :meth:`hessian` (the
        expected information first, and wherever the Hessian is not positive definite; the
        exact Hessian first once a step with the expected one was taken whole), then halves
        ``Psi + s Delta`` from ``s = 1`` until ``Psi`` is positive definite and the deviance
        falls by at least ``1e-4 s`` times the decrease the model predicts. ``converged``:
        the gradient in ``theta`` is at most ``tol`` times ``scale`` (default ``max(1,
        |deviance at the start|)``, L-BFGS-B's criterion). ``mu > 0``: the deviance minus
        ``mu log |Psi|`` (a barrier that keeps ``Psi`` inside the cone). Without it, it stops
        unconverged when a step is cut to keep ``Psi`` positive definite and leaves its
        smallest eigenvalue below ``_NEAR_SINGULAR`` times its largest (a variance heading
        for 0; ``self._boundary`` is then True), when neither matrix is positive definite, or
        at rounding level: when 20 halvings find no step, or when a step lowered the
        objective by at most ``_ROUNDING`` times ``scale`` and was cut or did not halve the
        gradient (the barrier's stages then go on with a smaller ``mu``).
        """
        half = self._half
        self._boundary = False
        value, H = self._objective(theta, mu)
        scale = max(1.0, abs(value)) if scale is None else scale
        self._scale = scale
        order = (True, False)  # the expected information first, from a start far off
        flat, gradient_size, step = False, np.inf, 1.0
        for n_iter in range(max_iter):
            L = self.factor(theta)
            last_size, gradient_size = gradient_size, np.abs(2.0 * (H @ L)[self._tril]).max()
            if gradient_size <= tol * scale:
                return theta, n_iter, True
            # the last step lowered the objective by rounding only, and neither went all the
            # way nor halved the gradient: at rounding level
            if flat and (step < 1.0 or gradient_size > 0.5 * last_size):
                return theta, n_iter, False
            grad = 2.0 * half * H[self._tril]  # tr(H E_a)
            barrier = 0.0
            if mu:  # its Hessian, mu tr(Psi^-1 E_a Psi^-1 E_b)
                inverse = _inverse_lower(L)
                P = inverse.T @ inverse
                if self.diagonal:  # mu (Psi^-1)_ik^2
                    barrier = mu * P**2
                else:
                    P = P[self._tril]
                    barrier = (mu * _gather_pairs(np.outer(P, P), *self._tril)
                               * np.outer(half, half))
            delta, used = _newton_step((grad, self.hessian(expected) + barrier)
                                       for expected in order)
            if delta is None:
                return theta, n_iter, False
            decrease, Psi, direction = float(grad @ delta), L @ L.T, self.symmetric(delta)
            step, cut = 1.0, False
            for _ in range(20):
                try:
                    trial = np.linalg.cholesky(Psi + step * direction)[self._tril]
                    new_value, new_H = self._objective(trial, mu)
                    if new_value <= value + 1e-4 * step * decrease:
                        break
                except np.linalg.LinAlgError:  # not positive definite
                    cut = True
                step *= 0.5
            else:  # no step lowers the objective: at rounding level
                return theta, n_iter, False
            if cut and not mu:  # a variance heading for zero?
                eigenvalues = np.linalg.eigvalsh(Psi + step * direction)
                if eigenvalues[0] < _NEAR_SINGULAR * eigenvalues[-1]:
                    self._boundary = True
                    return trial, n_iter + 1, False
            flat = value - new_value <= _ROUNDING * scale
            theta, value, H = trial, new_value, new_H
            # the exact Hessian first once the expected one takes full steps
            order = (False, True) if step == 1.0 or not order[used] else (True, False)
        return theta, max_iter, False

    def _objective(self, theta, mu):
        """The deviance minus ``mu log |Psi|`` and its gradient in ``Psi``, through ``Psi^-1
        + A_t`` (the Hessian then at the same ``theta``)."""
        value, H, _, _ = self._evaluate(theta, True, inverse=True)
        if mu:
            L = self.factor(theta)
            inverse = _inverse_lower(L)
            value -= 2.0 * mu * np.log(np.abs(np.diag(L))).sum()
            H = H - mu * (inverse.T @ inverse)
        return value, H

    def _at(self, theta):
        """The evaluation at ``theta`` (:attr:`_state`), from the last one when it was there."""
        theta = np.asarray(theta, dtype=np.float64)
        if self._state is None or not np.array_equal(self._state.theta, theta):
            self._evaluate(theta, False)
        return self._state

    def estimates(self, theta):
        """``(beta, sigma2, Sigma, U)`` at ``theta``: fixed effects (in the coordinates
        of ``D``), noise variance, covariance of the random effects, the BLUPs ``U`` (T, q),
        ``u_t = K_t c_t`` from the evaluation's factors (that of the optimiser's last step)."""
        state = self._at(theta)
        sigma2 = state.r2 / self._dof()
        L = self.factor(theta)
        beta = self.basis @ state.gamma
        # K_t c_t = [L] Q_t^-T (W_t w), W_t w = Q_t^-1 [L^T] c_t, w = [-beta, 1]
        U = _back_solve(state.M, state.W @ np.append(-self._basis_ordered @ state.gamma, 1.0))
        if state.L is not None:
            U = U @ L.T
        return beta, sigma2, sigma2 * (L @ L.T), U

    def residual_share(self, theta):
        """``r^2`` at ``theta`` over that of the fixed effects alone (``Psi = 0``, pooled least
        squares), in ``[0, 1]``: near 0 where the random effects fit every task almost
        exactly (the noise variance then heads for 0, where the likelihood has no maximum
        or has it on the boundary); 1 if the fixed effects fit exactly."""
        pooled = self.Gyy - float(self.Gxy @ _solve_cholesky(_cholesky(self.Gxx), self.Gxy))
        if pooled <= np.finfo(float).eps * max(self.Gyy, 1.0):  # (r^2's floor)
            return 1.0
        return min(self._at(theta).r2 / pooled, 1.0)

    def log_likelihood(self, theta):
        """The maximised (restricted) log-likelihood at ``theta``, constants included."""
        value = self._at(theta).value
        dof = self._dof()
        return -0.5 * (value + dof * (1.0 + np.log(2.0 * np.pi / dof)))


def _reml_curvature(F, weight, rows, cols):
    """REML's second curvature term ``tr(S_XX^-1 D(E_a) S_XX^-1 D(E_b))`` over the pairs
    ``a = (i, j)``, ``b = (k, m)`` of the lower triangle (``rows``, ``cols``), from ``F``
    (T, q, rank), ``F_t = Z_t^T V_t^-1 X_t basis Q^-T``, its sums over tasks times
    ``weight``; None where it costs more than ``_REML_CURVATURE``.

    With ``M_ik = weight sum_t F_t[i] F_t[k]^T`` (rank x rank), ``D(E_a)`` whitened is ``M_ij
    + M_ji`` and the term is ``<M_ij + M_ji, M_km + M_mk>``. Through the rank: the ``(q
    rank)^2`` matrix of every ``M_ik``, ``T (q rank)^2`` work. Through the task pairs, where
    that is less work (fewer tasks than the rank, as on wide data): ``<M_ij, M_km> = weight^2
    sum_ts G_ts[i, k] G_ts[j, m]`` with ``G_ts = F_t F_s^T`` (q x q), ``(T q)^2 rank + T^2
    q^4`` work and ``(T q)^2 + q^4`` memory (6 tasks, 4 random effects and 321 fixed effects:
    576 + 256 entries, where the ``M_ik`` took 1.65 million, 13 times the input).
    """
    n_tasks, q, rank = F.shape
    by_rank = n_tasks * (q * rank) ** 2
    by_pairs = (n_tasks * q) ** 2 * rank + (n_tasks * q**2) ** 2
    if min(by_rank, by_pairs) > _REML_CURVATURE:
        return None
    if by_rank <= by_pairs:
        D = F.reshape(n_tasks, -1)
        D = (weight * (D.T @ D)).reshape(q, rank, q, rank).transpose(0, 2, 1, 3)
        D = (D[rows, cols] + D[cols, rows]).reshape(len(rows), -1)
        return D @ D.T
    flat = F.reshape(-1, rank)
    G = (flat @ flat.T).reshape(n_tasks, q, n_tasks, q).transpose(0, 2, 1, 3)
    G = G.reshape(n_tasks**2, q * q)
    P = (weight**2 * (G.T @ G)).reshape(q, q, q, q)  # P[i, k, j, m] = <M_ij, M_km>
    i, j, k, m = rows[:, None], cols[:, None], rows[None, :], cols[None, :]
    return P[i, k, j, m] + P[i, m, j, k] + P[j, k, i, m] + P[j, m, i, k]


# unsigned indices spare numba's negative-index wraparound, which blocks vectorisation
@njit(cache=True)
def _factor_solve(M, W):
    """In place, per task: ``M_t`` (symmetric positive definite; its upper triangle is read)
    to ``Q_t^T`` in its upper triangle, ``M_t = Q_t Q_t^T`` (Cholesky), and ``W_t <- Q_t^-1
    W_t``. Returns ``sum_t log |M_t|``, NaN if some ``M_t`` is not numerically positive
    definite."""
    logdet = 0.0
    for t in range(M.shape[0]):
        logdet += _factor_solve_task(M[t], W[t])
        if not np.isfinite(logdet):
            return np.nan
    return logdet


@njit(cache=True)
def _shifted_factor_solve(N, M, W, shift):
    """:func:`_factor_solve` of ``M_t = N_t[:, :q] + shift`` and ``W_t = N_t``, written into
    ``M`` (its upper triangle) and ``W``: the inputs formed task by task, while in cache,
    rather than by two passes over the stack."""
    n_tasks, q, m = W.shape
    n_tasks, q, m = uint64(n_tasks), uint64(q), uint64(m)
    logdet = 0.0
    for t in range(n_tasks):
        U, B, source = M[t], W[t], N[t]
        for i in range(q):
            for k in range(i, q):
                U[i, k] = source[i, k] + shift[i, k]
            for k in range(m):
                B[i, k] = source[i, k]
        logdet += _factor_solve_task(U, B)
        if not np.isfinite(logdet):
            return np.nan
    return logdet


@njit(cache=True, inline="always")
def _factor_solve_task(U, B):
    """One task of :func:`_factor_solve`: ``log |M|``, NaN at a pivot that is not positive."""
    q, m = B.shape
    q, m = uint64(q), uint64(m)
    logdet = 0.0
    for j in range(q):  # row j of U = Q^T, then eliminate it from the rows below
        pivot = U[j, j]
        if not pivot > 0.0:
            return np.nan
        logdet += np.log(pivot)
        inverse = 1.0 / np.sqrt(pivot)
        for k in range(j, q):
            U[j, k] *= inverse
        for k in range(m):
            B[j, k] *= inverse
        for i in range(j + uint64(1), q):
            a = U[j, i]
            for k in range(i, q):
                U[i, k] -= a * U[j, k]
            for k in range(m):
                B[i, k] -= a * B[j, k]
    return logdet


@njit(cache=True)
def _back_solve(M, V):
    """Per task, ``x_t = Q_t^-T v_t`` with ``Q_t^T`` in the upper triangle of ``M_t``
    (:func:`_factor_solve`): ``(T, q)``."""
    n_tasks, q = V.shape
    n_tasks, q = uint64(n_tasks), uint64(q)
    out = np.empty((n_tasks, q))
    for t in range(n_tasks):
        U, x = M[t], out[t]
        for step in range(q):
            i = q - uint64(1) - step
            total = V[t, i]
            for k in range(i + uint64(1), q):
                total -= U[i, k] * x[k]
            x[i] = total / U[i, i]
    return out


def _inverse_lower(L):
    return _solve_lower(L, np.eye(len(L)))


def _transposed_rtn(N, W):
    """``(R_t^T N_t)^T = N_t^T - W_t^T W_t[:, :q]``, (T, p + 1, q)."""
    out = W.transpose(0, 2, 1) @ W[:, :, :N.shape[1]]
    return np.subtract(N.transpose(0, 2, 1), out, out=out)


@njit(cache=True, fastmath=_FAST)
def _pair_grams(P, k, rows, cols):
    """``out[t, a] = sum_{r < k} P[t, r, i] P[t, r, j]`` over the pairs ``a = (i, j)`` of the
    lower triangle (``i >= j``): each task's ``P_t^T P_t`` from its first ``k`` rows, formed
    row by row (contiguous), then gathered."""
    n_tasks, _, q = P.shape
    out = np.empty((n_tasks, len(rows)))
    G = np.empty((q, q))
    for t in range(n_tasks):
        G[:] = 0.0
        for r in range(k):
            row = P[t, r]
            for i in range(q):
                a = row[i]
                for j in range(i + 1):
                    G[i, j] += a * row[j]
        for a in range(len(rows)):
            out[t, a] = G[rows[a], cols[a]]
    return out


@njit(cache=True)
def _gather_pairs(G, rows, cols):
    """``H[a, b] = sum_t tr(X_t E_a Y_t E_b)`` with ``E_a = e_i e_j^T + e_j e_i^T`` for the
    pairs ``a = (i, j)``, ``b = (k, m)`` of the lower triangle, from ``G = sum_t vec(X_t)
    vec(Y_t)^T`` over the lower triangles of the symmetric ``X_t``, ``Y_t``::

        H[a, b] = G[(m, i), (j, k)] + G[(k, i), (j, m)] + G[(m, j), (i, k)] + G[(k, j), (i, m)]
    """
    n = len(rows)
    q = rows[n - 1] + 1
    pair = np.empty((q, q), dtype=np.intp)
    for a in range(n):
        pair[rows[a], cols[a]] = a
        pair[cols[a], rows[a]] = a
    H = np.empty((n, n))
    for a in range(n):
        i, j = rows[a], cols[a]
        for b in range(a + 1):
            k, m = rows[b], cols[b]
            value = (G[pair[m, i], pair[j, k]] + G[pair[k, i], pair[j, m]]
                     + G[pair[m, j], pair[i, k]] + G[pair[k, j], pair[i, m]])
            H[a, b] = value
            H[b, a] = value
    return H


def factor_entries(q, diagonal):
    """The entries of the ``q x q`` factor ``L`` that a parameter vector holds: its lower
    triangle (row-major), or its diagonal."""
    return np.diag_indices(q) if diagonal else np.tril_indices(q)


def _escape(value_of, covariance_gradient, x, n_free, q, diagonal=False):
    """A better starting point than ``x`` if it stopped where a variance at zero should grow
    (the gradient ``H`` in the covariance has a negative eigenvalue; with ``diagonal``, a
    negative diagonal entry), else None.

    Returns ``(x', f(x'))`` or None. The search is along ``Psi(s) = Psi + s D``, ``D = v v^T``
    with ``v`` the eigenvector of the smallest eigenvalue of ``H`` (with ``diagonal``, ``D``
    diagonal, ``D_jj = max(-H_jj, 0) / max_k(-H_kk)``: every variance that should grow, at
    once, and ``Psi`` stays diagonal; one at a time took 7 L-BFGS-B runs on yeast), with the
    slope ``lambda = tr(H D)`` of the deviance at ``s = 0``: from ``s = max(1, tr Psi)``, each
    step that does not lower the deviance is replaced by the minimiser of the quadratic
    through ``f(0)``, the slope ``lambda`` and ``f(s)``, kept within ``[s / 10, s / 2]``,
    until the decrease it promises, ``-lambda s``, is below the deviance's rounding level.
    """
    value, grad = covariance_gradient(x)
    if diagonal:  # every variance whose slope is negative at once, in proportion to it
        slopes = np.diag(grad)
        if slopes.min() >= -1e-8 * max(1.0, abs(value)):
            return None
        direction = np.diag(np.maximum(-slopes, 0.0) / -slopes.min())
        slope = float(slopes @ np.diag(direction))
    else:
        eigenvalues, vectors = np.linalg.eigh(grad)
        slope = eigenvalues[0]
        if slope >= -1e-8 * max(1.0, abs(value)):
            return None
        direction = np.outer(vectors[:, 0], vectors[:, 0])
    tril = factor_entries(q, diagonal)
    L = np.zeros((q, q))
    L[tril] = x[n_free:]
    psi = L @ L.T
    rounding = 1e-12 * max(1.0, abs(value))
    step = max(1.0, np.trace(psi))
    for _ in range(40):
        trial = psi + step * direction
        if diagonal:
            factor = np.diag(np.sqrt(np.diag(trial)))
        else:
            factor = np.linalg.cholesky(trial + 1e-10 * np.trace(trial) * np.eye(q))
        candidate = np.concatenate([x[:n_free], factor[tril]])
        trial_value = value_of(candidate)
        if trial_value < value:
            return candidate, trial_value
        # f(s) ~ f(0) + lambda s + c s^2 / 2 through f(step): minimiser -lambda / c <= step / 2
        curvature = 2.0 * (trial_value - value - slope * step) / step**2
        step = max(-slope / curvature, 0.1 * step) if np.isfinite(curvature) else 0.1 * step
        if -slope * step < rounding:
            return None
    return None


def minimize_covariance(fun, covariance_gradient, x0, n_free, q, *, max_iter, tol,
                        bound=_BOUND, free_bound=None, value=None, diagonal=False, scale=None):
    """Minimise ``fun`` over ``x = [free parameters (n_free), lower triangle of L (q x q)]``
    (``diagonal``: the diagonal of a diagonal ``L``, ``q`` entries).

    L-BFGS-B with the exact gradient, the diagonal of ``L`` in ``[0, bound]`` and its other
    entries in ``[-bound, bound]`` (by default standard deviations of the random effects up to
    1e4 times the noise's, in standardised coordinates), the free parameters in
    ``[-free_bound, free_bound]`` (None: unbounded). A zero column of ``L`` is a stationary
    point of any function of ``L L^T`` whether or not that variance should grow, so where
    L-BFGS-B stops,
    ``covariance_gradient(x)`` (the gradient in ``Psi = L L^T``, with the value) is checked:
    a negative eigenvalue (``diagonal``: diagonal entry) restarts it from a point along its
    eigenvector (unit vector; at most ``q`` times). ``tol`` is L-BFGS-B's projected-gradient
    tolerance on ``fun / scale``, ``scale = max(1, |fun(x0)|)`` unless given (a fit resumed
    from where another stopped keeps its start's).
    ``value`` is ``fun``'s value alone, where cheaper (None: ``fun(x)[0]``), for the search
    along the eigenvector. Returns ``(x, n_iter)``.
    """
    if value is None:
        def value(x):
            return fun(x)[0]
    tril = factor_entries(q, diagonal)
    free = None if free_bound is None else -free_bound
    bounds = [(free, free_bound)] * n_free + [
        (0.0, bound) if on else (-bound, bound) for on in tril[0] == tril[1]]
    x, n_iter = np.asarray(x0, dtype=np.float64), 0
    start = value(x) if scale is None else None  # (only for the scale)
    fixed_scale = scale
    for _ in range(q + 1):
        scale = max(1.0, abs(start)) if fixed_scale is None else fixed_scale
        result = minimize(
            lambda x, scale=scale: tuple(v / scale for v in fun(x)), x, jac=True,
            method="L-BFGS-B",
            bounds=bounds, options={"maxiter": max(max_iter - n_iter, 1), "gtol": tol,
                                    "ftol": 0.0, "maxcor": 50})
        x, n_iter = result.x, n_iter + result.nit
        restart = (_escape(value, covariance_gradient, x, n_free, q, diagonal)
                   if n_iter < max_iter else None)
        if restart is None:
            break
        x, start = restart
    return x, n_iter


def _newton_step(systems):
    """``(-S^-1 g, k)`` for the first ``(g, S)`` of ``systems`` whose ``S`` is positive
    definite, ``k`` its position (a generator: the later ``S`` are formed only if needed);
    ``(None, None)`` if none is."""
    for k, (grad, system) in enumerate(systems):
        try:
            chol = np.linalg.cholesky(system)
        except np.linalg.LinAlgError:
            continue
        return -_solve_cholesky(chol, grad), k
    return None, None


def _diagonal_entries(B):
    """``(B, free)`` for a diagonal model's factor, each column a multiple of a unit vector:
    the flat indices of those entries, its coordinates."""
    return B, np.argmax(np.abs(B), axis=0) * B.shape[1] + np.arange(B.shape[1])


def _trapezoidal(B):
    """``(B Q, free)``: ``B`` (q x r) times an orthogonal ``Q`` (the same ``B B^T``) lower
    trapezoidal after a row permutation (pivoted QR of ``B^T``, its largest rows first), and
    the flat indices of its entries on and below that diagonal, the coordinates of Newton's
    method on the factor (the rotations ``B Q`` left out, so that its Hessian is positive
    definite at an optimum of rank ``r``)."""
    q, r = B.shape
    _, R, pivots = scipy.linalg.qr(B.T, mode="economic", pivoting=True)
    out = np.empty((q, r))
    out[pivots] = R.T
    k, m = np.tril_indices(q, 0, r)
    return out, pivots[k] * r + m


def range_basis(G, p):
    """An orthonormal basis (columns) of the range of the symmetric positive semi-definite
    ``G``, its eigenvalues above ``p * eps`` times the largest: the fixed effects' basis of a
    rank-deficient design of ``p`` columns (:class:`MixedModel`), and that of collinear
    random columns (``_RandomRange`` and the classifier's ``_random_range``)."""
    values, vectors = np.linalg.eigh(G)
    return vectors[:, values > values.max() * p * np.finfo(float).eps]


def psd_factor(Psi, threshold):
    """``B`` (q x r) with ``B B^T`` the projection of the symmetric ``Psi`` on the positive
    semi-definite cone, its eigenvalues below ``threshold`` times the largest set to 0 (a
    column per eigenvalue kept); None if no eigenvalue is positive."""
    return _kept_factor(*np.linalg.eigh(Psi), threshold)


def _kept_factor(values, vectors, threshold):
    if not values.max() > 0.0:
        return None
    keep = values >= threshold * values.max()
    return vectors[:, keep] * np.sqrt(values[keep])


def _lower_factor(B):
    """A lower-triangular ``L`` (q x q) with ``L L^T = B B^T`` for ``B`` (q x r), ``r <= q``:
    the transposed ``R`` of the QR factorisation of ``B^T`` (Householder: exact to rounding,
    where a Cholesky factorisation of the singular ``B B^T`` is not), its last ``q - r``
    columns zero, its diagonal made non-negative by column signs."""
    q, r = B.shape
    L = np.zeros((q, q))
    L[:, :r] = np.linalg.qr(B.T, mode="r").T
    L[:, :r] *= np.where(np.diag(L)[:r] < 0.0, -1.0, 1.0)
    return L


def _cholesky(S):
    """Cholesky factor of a symmetric positive semi-definite ``S``, eigenvalues below
    ``eps * max`` (rounding: huge random-effect variances leave the fixed effects almost
    unidentified) raised to that floor."""
    try:
        return np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(S)
        floor = max(values.max(), np.finfo(float).tiny) * S.shape[0] * np.finfo(float).eps
        return np.linalg.cholesky((vectors * np.maximum(values, floor)) @ vectors.T)

