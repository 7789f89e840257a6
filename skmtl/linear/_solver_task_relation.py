"""Solvers of multi-task relationship learning (Zhang & Yeung, 2010).

Minimise over ``W`` (n_tasks, n_features), intercepts ``b`` and the task covariance ``Omega``
(T x T)::

    sum_t L_t(w_t, b_t) + lam_1 / 2 ||W||_F^2 + lam_2 / 2 tr(W^T Omega^-1 W)
    subject to Omega positive semi-definite, tr(Omega) = 1

with ``L_t`` the mean loss over task t's observed rows (squared or binary logistic). The
estimators set ``lam_1 = alpha (1 - relation_ratio)`` and ``lam_2 = alpha relation_ratio / T``.
The problem is jointly convex in ``(W, b, Omega)`` and solved by block coordinate descent:

- the ``Omega`` step is closed form, ``Omega = (W W^T + eps I)^(1/2) / tr((W W^T + eps I)^(1/2))``.
  The small ``eps I`` keeps ``Omega`` invertible: for a given ``eps`` the solver minimises
  exactly the problem with ``lam_2 / 2 tr(Omega^-1 (W W^T + eps I))``, still jointly convex,
  whose value at the optimal Omega is ``lam_2 / 2 (tr (W W^T + eps I)^(1/2))^2``
  (``lam_2 / 2 ||W||_*^2``, the squared trace norm, for ``eps = 0``). ``eps`` is decreased
  from ``1e-2`` to ``1e-14`` times the mean squared norm of the first (ridge) task vectors as
  the iterations converge (see :func:`_alternate`: a tiny ``eps`` from the start stalls the
  alternation when the solution is rank-deficient). ``W W^T`` has rank at most
  ``k = min(T, d)``: its eigenvectors on its range come from the thin SVD of ``W`` and its
  eigenvalue on their orthogonal complement is 0, so Omega and ``Omega^-1`` are a scalar times
  the identity plus a rank-k term (:class:`_Coupling`). A sweep costs ``O(T d k)`` and forms
  no T x T matrix; the returned Omega stays factored (:class:`TaskCovariance`);
- the ``W`` step, for a fixed ``Omega``, is the mean-clustered problem with a general T x T
  coupling ``P = lam_1 I + lam_2 Omega^-1``: ``A_t w_t + (P W)_t = r_t`` (squared loss,
  intercepts eliminated by centring each task's rows) or one such system per Newton step
  (logistic loss). The ``T d`` system is solved by conjugate gradients (:func:`_pcg`, which
  carries the coordinates ``U^T`` of its search directions) to a relative residual that
  follows ``tol`` (:func:`_cg_rtol`; ``1e-12`` for the logistic Newton systems), with one of
  two preconditioners (:func:`_solve_coupled`). When the tasks' blocks differ and no
  intercept coordinate is eliminated: block Jacobi, the exact d x d diagonal blocks
  ``A_t + C_tt`` of the system (``C`` the coupling's curvature, :meth:`_Coupling.apply`),
  factored by Cholesky (:func:`_factor_blocks`; the squared loss keeps the factors for a
  whole ``eps`` stage, and into the next stages while the blocks move little,
  :func:`_fresh_enough`: a stale but still positive definite preconditioner), so each task's
  own moments are inverted exactly and the iterations only resolve the coupling between
  tasks (benchmark case (d), 1,000 tasks x 20 rows x 30 features: 21 iterations for the
  whole fit, against 144 with the Kronecker sum); for the first W step (``Omega = I / T``, ridge)
  the blocks are the whole system, solved exactly without iterating. Otherwise the Kronecker
  sum ``P (x) I + I (x) A_bar`` (``A_bar`` the mean of the blocks), applied exactly through
  the eigendecompositions of ``P`` (factored as above) and ``A_bar``: when all tasks observe
  the same rows it is the system itself (one iteration, an exact solve); otherwise it
  captures the whole coupling and only the differences between the tasks' moments are left
  to the iterations. On the complement of the range of W (``T > d``), where ``P`` is
  ``lam_1 + lam_2 total / sqrt(eps)``, a curvature that all but freezes the task subspace,
  the W step uses the objective's own curvature there instead (a Newton-like step, same
  fixed point; :class:`_Coupling`), and falls back to the exact W step when that does not
  lower the objective.

**Wide data** (dense rows, at least 128 features, some tasks with fewer than half as many
rows, no more tasks than features, the tasks not all on the same rows): the least-squares
solver keeps each task's moments as ``A_t = V_t diag(e_t) V_t^T`` from its centred rows
(:class:`RowSpaceBlocks`: the thin SVD of the rows where ``n_t < d``), not as the (T, d, d)
stack. A product ``A_t w`` costs ``O(n_t d)`` and block Jacobi's blocks ``A_t + C_tt`` (here
``A_t`` plus a multiple of the identity: with ``T <= d`` the coupling's ``U`` spans all the
tasks) are inverted exactly for any shift from the same factors, so nothing is factored per
stage. On 10,000 MoleculeACE molecules (30 targets, 2,048 bits, 13,581 labels; ``alpha =
1``) a fit took 14.6 s at a process peak of 1.03 GB, against 40.3 s and 2.78 GB from the
moments (the same 57 sweeps, coefficients within 7e-14). The logistic solver's Newton blocks
``X_t^T diag(weight_t) X_t`` are read from the rows at every use on such data (of any number
of tasks; :class:`WeightedRows`: two passes over the rows a product), never formed. Its
block Jacobi preconditioner comes from the rows too: with the intercepts eliminated, a
task's diagonal block is ``B_t^T B_t + shift_t I`` with ``B_t`` its weighted rows less their
intercept part, inverted by Woodbury from the Cholesky factors of the n_t x n_t ``B_t B_t^T
+ shift_t I`` (:meth:`WeightedRows.factor_shifted`), once per Newton step, where ``C_tt`` is
a multiple of the identity (no more tasks than features, or ``Omega = I / T``); elsewhere,
and once the coupling dominates (as above), the Kronecker sum (one d x d Gram matrix of all
the weighted rows, and its eigendecomposition, kept across Newton steps while CG takes at
most ``_STALE_CG = 2`` times the iterations, plus 2, it took when they were fresh: at
``alpha = 100``, where block Jacobi gives way, recomputing them for every Newton system took
27.5 of a 46 s fit on 5,333 MoleculeACE molecules; the fit now takes 23 s, the same 102
iterations). Where the dense path's Newton systems used the Kronecker sum throughout
(intercepts), MoleculeACE's active / inactive labels (``alpha = 0.01``) took about 150 CG
iterations a Newton step in the first sweep, 2 with these blocks.

Each sweep (W step then Omega step) decreases the objective of the current ``eps``.

**Duality gap.** Minimising over Omega leaves a convex problem in ``(W, b)`` alone::

    J(W, b) = F(z) + g(W) + k(b),   g(W) = lam_1 / 2 ||W||_F^2 + lam_2 / 2 ||W||_*^2

with ``z`` the linear predictors (``z_i = x_i . w_t + b_t`` on task t's rows), ``F(z) = sum_t
L_t`` and ``k`` the classifier's pull of the intercepts (below; 0 for least squares). Let
``theta = -grad F(z)`` (least squares: the residuals over ``n_t``; logistic: ``(y_i - p_i) /
n_t``), ``V_t = X_t^T theta_t`` (a T x d matrix) and ``u_t = sum_{i in t} theta_i``. Fenchel
duality gives the lower bound ``D = -F^*(-theta) - g^*(V) - k^*(u) <= J(W*, b*)``; since
``theta`` is F's own gradient, ``F(z) + F^*(-theta) = -<theta, z> = -<W, V> - <b, u>``, and
the gap splits into two Fenchel-Young gaps, each >= 0 and 0 exactly at the optimum::

    J - D = [g(W) + g^*(V) - <W, V>] + [k(b) + k^*(u) - <b, u>]

``g`` is a function of the singular values alone, ``g(W) = h(s(W))`` with ``h(sigma) =
lam_1 / 2 ||sigma||^2 + lam_2 / 2 (sum sigma)^2``, so ``g^*(V) = h^*(s(V))`` (Lewis, 1995)
with ``h^*(s) = sup_{sigma >= 0} s . sigma - h(sigma)``. Its maximiser (:func:`_shrink`):
``sigma_i = (s_i - lam_2 S)_+ / lam_1``, ``S = sum sigma``; with ``s`` decreasing, ``sigma``
is positive on the ``k`` largest, ``S = (s_1 + ... + s_k) / (lam_1 + k lam_2)`` and ``k``
the largest index with ``s_k > lam_2 S`` (:func:`_penalty_conjugate`). ``lam_1 = 0``
(``relation_ratio = 1``) gives ``h^*(s) = s_1^2 / (2 lam_2)``, the squared spectral norm of
V; ``lam_2 = 0``, ``||s||^2 / (2 lam_1)``.

- Least squares: the intercepts are free (``k = 0``, whose conjugate is 0 at ``u = 0`` and
  ``+inf`` elsewhere: each task's ``theta`` must sum to 0). They are eliminated, ``b_t``
  optimal for ``w_t``, so every task's residuals do sum to 0; ``V_t = r_t - A_t w_t`` from
  the centred moments, and the gap ``g(W) + g^*(V) - <W, V>`` costs ``O(T d)`` given the
  products ``A_t w_t`` the solver keeps, plus the eigenvalues of the d x d ``V^T V``: no
  pass over the rows.
- Logistic: ``k(b) = alpha / 2 ||b - b_bar||^2`` (``b`` the intercepts of the rows centred at
  the mean of X, :meth:`~._designs.Problem.design`) pulls the intercepts' spread, not their
  mean, so ``k^*(u) = ||u||^2 / (2 alpha)`` if ``sum_t u_t = 0`` and ``+inf`` otherwise:
  away from the optimum the dual point of ``(W, b)`` is infeasible. It is taken at ``(W, b +
  c)`` instead, ``c`` the common shift of the intercepts that zeroes ``sum_i theta_i`` (a
  one-dimensional Newton, :func:`_common_shift`; the pull is unchanged): ``J(W, b) - D =
  [F(z) - F(z + c)] + [g(W) + g^*(V) - <W, V>] + ||alpha (b - b_bar) - u||^2 / (2 alpha)``,
  a bound for the returned ``(W, b)``. Without intercepts ``b = 0`` and no ``u`` enters; one
  task has no pull, and the shift makes ``u = 0``.

The criterion is the relative gap ``(J - D) / J``. Computed as the sum of the Fenchel-Young
terms above rather than as ``J - D`` (whose datafit values cancel terms much larger than J on
nearly noise-free data), and with ``V`` entering to second order only near the optimum.

**Stopping rule.** Stop when the relative gap, computed after every sweep, is at most
``tol``: a certificate, ``J(W, b) - J_opt <= tol J(W, b)``, and (``lam_1 > 0``) ``||W -
W*||_F^2 <= 2 tol J / lam_1``. The gap is that of the ``eps = 0`` problem, while a stage's
iterates converge to the ``eps`` problem's optimum: the gap can only fall to a floor of the
order of ``eps`` there (benchmark case (d): 1.2e-4, 1.2e-7, 1.2e-10 and 1.2e-13 in the first
four stages, 11 sweeps to 1.5e-13 where the former rule stopped after 12), so the stages
still end on the objective, when a sweep lowers it by at most ``_STAGE_TOL = 1e-10`` times
its value: ending them at a loose ``tol`` lowers ``eps`` before the stage has converged and
the alternation then crawls (Exam, ``alpha = 0.01``, ``tol = 1e-8``: stages ended at 1e-8
took 112 sweeps without the polish below, 18 sweeps and 33 polish steps with it, against 30
sweeps).
The fit stops in whichever stage first certifies ``tol``; the returned Omega is the closed
form at the final ``eps`` in every case.

**Rounding floor.** The gap is that of ``W`` as stored, each entry to ``eps_64 = 2.2e-16``
of itself; that rounding moves the dual point ``V`` by up to ``delta = eps_64 || |A| |W|
||_F`` (``A_t`` task t's second moments, bounded by ``|V_t| diag(e_t) |V_t|^T`` in the
row-space form; the logistic loss's Hessian, plus its intercept column times ``|b|``) and
the gap by up to ``2 ||W||_* delta``, or ``(1 + sqrt(2))^2 delta^2 / (2 lam_1)`` when that
is smaller (:func:`_rounding_floor`). With ``lam_1 > 0`` the second bound, second order, was
below 1e-15 of ``J`` on every data set tried (3e-12 on badly scaled features with
``relation_ratio = 0.99``); with ``lam_1 = 0`` the gap is first-order sensitive to ``V``
(the top singular value of ``V`` is multiple at the optimum, once per singular value of
``W``), and on a close fit (``|V|`` thousands of times below ``|A| |W|``) the float64
iterations cannot certify ``tol``: five tasks, 20 features, ``alpha = 1e-3``: proximal steps
in 40-digit arithmetic, rounded to float64, reached 2e-13, and the float64 steps, a few
roundings each, sat at 1.4e-12 through 5,000 steps. The polish therefore also stops, without
a warning, once the gap has set no new minimum over ``_FLOOR_STEPS = 50`` steps and is
within that bound of ``J``: on the floors measured (``relation_ratio = 1``, ``alpha`` from
1e-3 to 1, from 1e-12 to 2e-9) the gap lay 3 to 20 times below the bound and 10,000 steps
did not lower it, while fits still converging at ``max_iter`` (and so warned) lay 6 to 1e10
times above it. ``criterion`` is then above ``tol``.

**Polish.** When a sweep at the final ``eps`` lowers the objective by at most ``_STAGE_TOL``
and the gap is still above ``tol``, the alternation has stalled, and accelerated proximal
gradient on the ``eps = 0`` problem finishes (:func:`_polish`; the proximal step of ``g`` is
closed form on the singular values, zeros included). The alternation stalls where the
optimal ``W`` is rank-deficient: a vanishing singular direction has weight ``1 / sqrt(eps)`` in
``Omega^-1``, which freezes the task subspace (six tasks along one direction, ``alpha = 0.1``:
the gap stayed at 1e-7 over 1,000 sweeps, the coefficients 1e-4 from the optimum; the polish
takes 5 steps to 5e-14). It also converges slowly when ``lam_1`` is small (Exam, ``alpha =
0.01``, ``lam_1 = 0.005``: about 50 sweeps per decade of the gap; 37 sweeps and 57 steps to
9e-13). ``lam_1 = 0`` (``relation_ratio = 1``) is not strongly convex and the polish is
slower still (Exam: 1,586 iterations in all to 1e-12). With the squared loss the polish's
curvature is the gradient's Lipschitz constant itself, the largest eigenvalue of any task's
moments (the largest ``e_t`` of the row-space form; formed moments: their eigenvalues, taken
once when the polish starts), so no step is backtracked and the majorisation test takes no
product with the moments. Backtracking from the diagonal bound had doubled it to just below
that constant (311 for 328 on an inner training fold of MoleculeACE, 5,333 molecules), where
every step then paid a second product for the test: at ``alpha = 0.37`` 445 steps in 14.4 s,
now 462 in 9.1 s. The logistic loss keeps the backtracking (its test reads values, no extra
pass).

**Stalled stages.** Where the polish converges fast, it also takes over at any ``eps`` as soon
as the gap has not halved over ``_STALL_SWEEPS = 5`` sweeps: the gap then sits at its stage's
floor while the sweeps converge the ``eps`` problem to ``_STAGE_TOL``, which took most of the
sweeps (yeast, features standardised, 14 logistic tasks, ``alpha = 1``: 95 sweeps, each a
Newton W step, 4.4 s; now 28 sweeps and steps, 0.7 s, to the same gap;
``TaskRelationClassifierCV`` on yeast 172 s to 40 s). A polish step costs two passes over the
rows, far less than a sweep. "Fast" is ``lam_1 > 0`` (strong convexity: a linear rate of
about ``1 - sqrt(lam_1 / L)`` per step) with the datafit's curvature ``L``
(``smooth.curvature()``) at most ``_STALL_CONDITION = 1e3`` times ``lam_1``. Otherwise the
sweeps go on as before: with ``lam_1 = 0`` (``relation_ratio = 1``) handing over early left
gaps up to 1e5 times wider at ``max_iter`` on Chem97, and with ``relation_ratio = 0.99`` and
``alpha = 0.01`` (``L / lam_1`` of 2e4 to 6e4) it hit ``max_iter`` on Exam and Chem97
where the sweeps converge.
"""

import warnings
from functools import cache
from typing import NamedTuple

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from numba import njit
from sklearn.exceptions import ConvergenceWarning

from skmtl.linear._datafits import _expit, _log1pexp
from skmtl.linear._designs import GroupedDense, Problem, SparseDesign
from skmtl.linear._linalg import (
    _POTRF,
    _POTRS,
    _blas_threads_for,
    _cholesky_task_last,
    _gram_singular,
    _pcg,
)
from skmtl.linear._proximal import accelerated_proximal_gradient
from skmtl.linear._solver_mean_clustered import (
    _FAST,
    _kernel_form,
    _row_space_decomposition,
    _sparse_row_space,
    _task_moments,
)

__all__ = ["LeastSquaresData", "TaskCovariance", "least_squares_data", "relation_weights",
           "solve_task_relation", "solve_task_relation_logistic"]

# The smallest singular value of W, relative to the largest, for which the task eigenvectors
# come from the Gram matrix of W (orthonormal to eps / _GRAM_RANGE^2), not from its SVD.
_GRAM_RANGE = 1e-2
_EPS_SCALE = 1e-14  # the final eps, times the mean squared norm of the first task vectors
_CG_RTOL = 1e-12  # the tightest CG tolerance (see _cg_rtol)
_STAGE_TOL = 1e-10  # relative decrease of the objective per sweep that ends an eps stage
# with lam_1 > 0, the sweeps hand over to the polish when the gap has not halved over this
# many of them (stalled at its eps stage's floor), if the datafit's curvature is at most
# _STALL_CONDITION times lam_1: the polish converges at about 1 - sqrt(lam_1 / L) per step,
# some 70 steps a decade of the gap at that bound
_STALL_SWEEPS = 5
_STALL_CONDITION = 1e3
# the polish stops at the gap's rounding floor (see _rounding_floor) once the gap has not
# reached a new minimum over this many steps
_FLOOR_STEPS = 50
_STALE = 1e-2  # relative change of the diagonal blocks up to which their factors are kept
_BLOCK_JACOBI_BUDGET = 20  # CG iterations with block Jacobi before the Kronecker sum takes over
# the Kronecker sum's mean block from the rows is kept while CG takes at most this many times
# the iterations (plus 2) it took when the block was fresh
_STALE_CG = 2
# a dense X with at most this share of non-zero entries takes its products from a sparse copy
# of its rows (the regressor's RowSpaceBlocks on wide data, the classifier's whole design):
# products with the least squares moments 3x faster at 10%, even at 20%
_SPARSE_PRODUCTS = 0.1


def _mostly_zeros(X):
    """Whether ``X`` is dense with at most ``_SPARSE_PRODUCTS`` of its entries non-zero."""
    return not sp.issparse(X) and np.count_nonzero(X) <= _SPARSE_PRODUCTS * X.size


def relation_weights(alpha, relation_ratio, n_tasks):
    """``(lam_1, lam_2)`` of the objective: ``alpha (1 - r)`` and ``alpha r / T``. A
    ValueError where one that should be positive underflows to 0 (``alpha`` a subnormal
    number: the penalty would vanish, and Omega with it)."""
    lam_1, lam_2 = alpha * (1.0 - relation_ratio), alpha * relation_ratio / n_tasks
    if (relation_ratio < 1.0 and lam_1 == 0.0) or (relation_ratio > 0.0 and lam_2 == 0.0):
        raise ValueError(
            f"alpha={alpha!r} is too small: the penalty's weights alpha * (1 - "
            f"relation_ratio) and alpha * relation_ratio / n_tasks ({n_tasks} tasks) round "
            f"to 0. Give alpha >= 1e-300 (the fit is then least squares to rounding).")
    return lam_1, lam_2


def _task_eigen(W):
    """``(U, sigma, V)``: ``W W^T`` on a subspace holding its range, from the thin SVD of ``W``.

    ``U`` (T, k) orthonormal eigenvectors of ``W W^T``, ``sigma`` (k,) their eigenvalues and
    ``V`` (d, k) the matching right singular vectors of ``W``, ``k = min(T, d)``, in
    ``O(T d k)``; ``W W^T`` is zero on the orthogonal complement of ``U`` (dimension T - k).
    A ``W`` at least 4 times longer than broad whose singular values all lie within
    ``_GRAM_RANGE`` of the largest is decomposed through its small Gram matrix
    (:func:`~._linalg._gram_singular`; ``U`` then orthonormal to ``1e-12``), else by the SVD.
    """
    T, d = W.shape
    k = min(T, d)
    if k and max(T, d) >= 4 * k:
        s, vectors, tall = _gram_singular(W)
        if s[-1] >= _GRAM_RANGE * s[0] > 0.0:
            other = (W @ vectors if tall else W.T @ vectors) / s
            U, V = (other, vectors) if tall else (vectors, other)
            return U, s * s, V
    U, s, Vt = np.linalg.svd(W, full_matrices=False)
    return U, s * s, Vt.T


def _singular_values(V):
    """The singular values of ``V`` (T, d), decreasing: from its small Gram matrix
    (:func:`~._linalg._gram_singular`, faster than LAPACK's SVD on 1,000 x 30) when they all
    lie within ``_GRAM_RANGE`` of the largest (each then to about ``1e-12`` relative), else
    the SVD."""
    if not V.size:
        return np.zeros(0)
    s = _gram_singular(V)[0]
    if s[-1] >= _GRAM_RANGE * s[0]:
        return s
    return np.linalg.svd(V, compute_uv=False)


def _shrink(s, a, b):
    """``argmax_{sigma >= 0} s . sigma - a / 2 ||sigma||^2 - b / 2 (sum sigma)^2``.

    ``s`` decreasing and >= 0, ``a > 0``, ``b >= 0``. The maximiser is ``sigma_i = (s_i -
    b S)_+ / a`` with ``S = sum sigma``: over the ``k`` largest ``s_i``, ``S = (s_1 + ... +
    s_k) / (a + k b)``, where ``k`` counts the indices with ``a s_k > b (s_1 + ... + s_k - k
    s_k)`` (an initial segment: the left side decreases with k, the right side increases),
    at least 1. Both the conjugate of the penalty (``a = lam_1``, ``b = lam_2``) and its
    proximal step (``a = 1 + t lam_1``, ``b = t lam_2``) are this maximiser.
    """
    sigma = np.zeros_like(s)
    if not s.size or s[0] <= 0.0:
        return sigma
    sums = np.cumsum(s)
    count = np.arange(1, s.size + 1)
    k = max(int(np.count_nonzero(a * s > b * (sums - count * s))), 1)
    sigma[:k] = np.maximum(s[:k] - b * sums[k - 1] / (a + k * b), 0.0) / a
    return sigma


def _penalty_conjugate(s, lam_1, lam_2):
    """``h^*(s) = sup_{sigma >= 0} s . sigma - lam_1 / 2 ||sigma||^2 - lam_2 / 2 (sum
    sigma)^2`` at singular values ``s`` (decreasing, >= 0): ``g^*(V) = h^*(singular values of
    V)`` (see the module docstring). The sup is reached at :func:`_shrink`'s ``sigma``;
    ``lam_1 = 0`` gives ``s_1^2 / (2 lam_2)`` (the spectral norm of V), ``lam_2 = 0``
    ``||s||^2 / (2 lam_1)``.
    """
    if not s.size or s[0] <= 0.0:
        return 0.0
    if lam_1 == 0.0:
        return 0.5 * float(s[0]) * (float(s[0]) / lam_2)
    # at the maximiser, s . sigma = lam_1 ||sigma||^2 + lam_2 (sum sigma)^2 (its optimality
    # conditions times sigma_i, summed), so h^*(s) = s . sigma / 2: no square of sum sigma
    # (about ||s|| / lam), which overflowed below alpha = 1e-160
    return 0.5 * float(s @ _shrink(s, lam_1, lam_2))


def _penalty_value(W, sigma, lam_1, lam_2):
    """``(||W||_*, g(W))``, ``g(W) = lam_1 / 2 ||W||_F^2 + lam_2 / 2 ||W||_*^2``, from
    ``sigma``, the squared singular values of ``W``."""
    trace = float(np.sqrt(np.maximum(sigma, 0.0)).sum())
    return trace, 0.5 * lam_1 * float(np.vdot(W, W)) + 0.5 * lam_2 * trace**2


def _relative_gap(loss, excess, W, V, sigma, lam_1, lam_2):
    """``(P - D) / P`` with ``P = loss + g(W)`` (``sigma`` the squared singular values of
    ``W``), from the Fenchel-Young gap of the penalty, ``g(W) + g^*(V) - <W, V>`` (see the
    module docstring), plus the datafit's own part ``excess`` (0 for least squares). Written
    so, without the datafit's primal and dual values, the gap carries no cancellation of the
    large terms of either (``V`` enters to second order only near the optimum). 0 when
    ``P <= 0``."""
    penalty = _penalty_value(W, sigma, lam_1, lam_2)[1]
    primal = loss + penalty
    if primal <= 0.0:
        return 0.0
    gap = (excess + penalty + _penalty_conjugate(_singular_values(V), lam_1, lam_2)
           - float(np.vdot(W, V)))
    return max(gap, 0.0) / primal


def _rounding_floor(loss, W, sigma, lam_1, lam_2, change):
    """The rounding floor of the relative gap at ``W``: how far the gap of :func:`_relative_gap`
    can move when ``W`` moves by its own rounding, over ``P`` (the same ``P``).

    ``change`` bounds the Frobenius norm of the resulting change of the dual point ``V``
    (``eps || |A| |W| ||_F`` for least squares: each ``w_tj`` known to ``eps |w_tj|``, each
    product ``A_t w_t`` moves by at most ``|A_t| |w_t| eps``; the logistic loss's Hessian in
    place of ``A``). The gap is ``g(W) + g^*(V) - <W, V>``; a change ``D`` of ``V`` moves
    ``<W, V>`` by at most ``||W||_* ||D||_2`` and ``g^*(V)`` by at most ``||grad g^*||_*
    ||D||_2``, the trace norm of the primal point of ``V``, ``||W||_*`` near the optimum:
    ``2 ||W||_* change``, first order in ``D``. That is the size of the floor with ``lam_1 =
    0`` (``relation_ratio = 1``), where ``g^*(V) = s_1(V)^2 / (2 lam_2)`` and the top singular
    value of ``V`` is multiple at the optimum (one per singular value of ``W``): measured
    floors lie 3 to 20 times below this bound, while fits still converging at ``max_iter``
    sat 6 to 1e10 times above it. With ``lam_1 > 0``, ``g^*`` is ``1 / lam_1``-smooth and the
    first-order terms cancel to ``||grad g^*(V) - W|| change``, at most ``sqrt(2 gap /
    lam_1) change``, plus ``change^2 / (2 lam_1)``: a gap within both is at most ``(1 +
    sqrt(2))^2 change^2 / (2 lam_1)``, the smaller bound then.

    The first-order bound carries its second-order remainder, ``change^2 / (2 lam)`` (``g^*``
    is ``1 / lam_1``-smooth; with ``lam_1 = 0``, ``s_1(V + D)^2 / (2 lam_2) <= (s_1(V) +
    ||D||)^2 / (2 lam_2)``): negligible unless ``change`` exceeds ``lam ||W||_*``, as at a
    tiny ``alpha``, where the optimum's dual point (about ``lam W``) is below the rounding
    of ``A W`` and ``g^*`` magnifies that rounding by ``1 / lam``. Without it, ``alpha =
    1e-20`` polished for ``max_iter`` at a gap of 2.6e-10 against a floor of 2.7e-13, and
    warned, its coefficients least squares' to 7e-16.
    """
    trace, penalty = _penalty_value(W, sigma, lam_1, lam_2)
    primal = loss + penalty
    if primal <= 0.0:
        return 0.0
    curvature = lam_1 if lam_1 > 0.0 else lam_2
    floor = 2.0 * trace * change + change * change / (2.0 * curvature)
    if lam_1 > 0.0:
        floor = min(floor, (1.0 + np.sqrt(2.0)) ** 2 * change**2 / (2.0 * lam_1))
    return floor / primal


def _common_shift(z, y, weight):
    """The shift ``c`` of all the intercepts that zeroes the summed logistic residuals,
    ``sum_i weight_i (y_i - expit(z_i + c)) = 0`` (Newton's method kept inside a bracket, on
    the residuals of :func:`_logistic_residual`); None when no finite shift does (all labels
    equal)."""
    target = float(weight @ y)
    if not 0.0 < target < float(weight.sum()):
        return None
    signs = 2.0 * y - 1.0
    c, low, high = 0.0, -np.inf, np.inf
    for _ in range(100):
        excess = float(np.sum(_logistic_residual(z + c, signs, weight)))
        if excess == 0.0:
            break
        if excess > 0.0:
            low = c
        else:
            high = c
        new = c + excess / max(float(np.sum(_logistic_curvature(z + c, weight))),
                               np.finfo(float).tiny)
        if not low < new < high:  # Newton left the bracket: bisect (or double it)
            if np.isfinite(low) and np.isfinite(high):
                new = 0.5 * (low + high)
            else:
                new = c + (1.0 if excess > 0 else -1.0) * max(1.0, 2.0 * abs(c))
        if abs(new - c) <= 4.0 * np.finfo(float).eps * max(1.0, abs(c)):
            c = new
            break
        c = new
    return c


def _logistic_loss(z, signs, weight):
    """``sum_i weight_i log(1 + exp(-s_i z_i))``, the logistic loss at the margins ``s_i z_i``
    (``s_i = 2 y_i - 1``): each term to relative precision. ``log(1 + exp(z)) - y z`` cancels
    for a well-classified ``y = 1`` row (``z = 30``: ``9.24e-14`` for ``9.36e-14``, half an
    ulp of 30 off), and on separable data such rows make most of the loss: its rounding
    exceeded the margin of the polish's decrease test (``1e-14`` of the value), which then
    failed on rounding alone, and the step shrank (3 tasks of 11 to 18 labels, 20 features,
    ``alpha = 1e-3``: 20 halvings, and the gap held at 1.57e-12 through ``max_iter``; at the
    margins, no halving and 1e-12 in 326 iterations)."""
    return float(np.sum(weight * _log1pexp(-signs * z)))


def _logistic_residual(z, signs, weight):
    """``weight (y - expit(z))`` to relative precision, as ``weight s expit(-s z)`` (``s = 2 y
    - 1``): ``y - expit(z)`` loses every digit once ``expit(z)`` rounds to 1 (``z > 37``)."""
    return signs * _expit(-signs * z) * weight


def _logistic_curvature(z, weight):
    """``weight expit(z) (1 - expit(z))`` to relative precision, as ``weight expit(z)
    expit(-z)``."""
    return _expit(z) * _expit(-z) * weight


class _Coupling:
    """The coupling ``P = lam_1 I + lam_2 Omega^-1`` of a W step, from the closed-form Omega.

    Kept factored, no T x T matrix formed: with ``U`` (T, k) orthonormal eigenvectors of
    ``W W^T`` spanning its range (:func:`_task_eigen`, ``k = min(T, d)``) and ``Q = I - U U^T``
    the projector on their complement, where ``W W^T`` is zero,
    ``Omega = U diag(root / total) U^T + sqrt(eps) / total Q`` and
    ``P = U diag(p) U^T + p_0 Q``, with ``root = sqrt(sigma + eps)``,
    ``total = tr((W W^T + eps I)^(1/2)) = sum(root) + (T - k) sqrt(eps)``,
    ``p = lam_1 + lam_2 total / root`` and ``p_0 = lam_1 + lam_2 total / sqrt(eps)``.

    The W step minimises ``loss + 1 / 2 tr(W^T C W)`` for the curvature ``C`` applied by
    :meth:`apply`: ``C Z = U diag(p) U^T Z + (Q Z) M_0`` with a d x d ``M_0`` acting on the
    rows (the features) of the part of ``Z`` outside ``U``. Every ``M_0`` gives the same fixed
    point (the solution has no part outside ``U``, where the gradient of the objective is
    ``U diag(p) U^T W`` plus the loss gradient). ``M_0 = p_0 I``, :meth:`majorizer`, is the
    exact minimisation over W of the objective at this Omega, a majoriser, so each sweep
    descends; but when ``T > d`` its curvature ``1 / sqrt(eps)`` outside the range of W all
    but freezes that range (the task subspace), and the alternation crawls. The default
    ``M_0 = V diag(p) V^T`` (``V`` the right singular vectors of W) is the curvature of the
    objective itself along ``Q Z``: moving a task vector out of the range of W by ``x``
    changes the singular values of W at second order only, by ``(v_i . x)^2 / 2 root_i`` in
    ``root_i``, so the W step is a Newton-like step there. :func:`_alternate` falls back to
    the majoriser when such a step does not lower the objective. Applying either costs
    ``O(T d k)``.
    """

    def __init__(self, W, lam_1, lam_2, eps, eigen=None):
        self.eigen = _task_eigen(W) if eigen is None else eigen  # reused for another eps
        U, sigma, V = self.eigen
        root = np.sqrt(np.maximum(sigma, 0.0) + eps)
        root_0 = np.sqrt(eps)  # on the complement of U
        n_0 = W.shape[0] - U.shape[1]
        total = root.sum() + n_0 * root_0
        self._set(U, root / total, root_0 / total, lam_1, lam_2, eps)
        self.complement = (V * self.p) @ V.T if n_0 else None
        # lam_2 / 2 tr(Omega^-1 (W W^T + eps I)) at this Omega, from the same eigenvalues
        self.relation_value = 0.5 * lam_2 * total**2

    @classmethod
    def initial(cls, n_tasks, n_features, lam_1, lam_2):
        """``Omega = I / T`` (``P = (lam_1 + T lam_2) I``): the first W step is ridge."""
        self = cls.__new__(cls)
        self._set(np.zeros((n_tasks, 0)), np.zeros(0), 1.0 / n_tasks, lam_1, lam_2, 0.0)
        self.complement = _ScaledIdentity(self.p_0, n_features)
        return self

    def _set(self, U, omega, omega_0, lam_1, lam_2, eps):
        """Eigenvalues ``omega`` of Omega on ``U`` and ``omega_0`` on its complement."""
        self.U, self._omega, self._omega_0 = U, omega, omega_0
        self._n_0 = U.shape[0] - U.shape[1]  # dimension of the complement
        self.p = lam_1 + lam_2 / omega  # eigenvalues of P on U
        self.p_0 = lam_1 + lam_2 / omega_0 if self._n_0 else 0.0
        self._inv_omega_trace = float(np.sum(1.0 / omega)) + self._n_0 / omega_0
        self.lam_2, self.eps = lam_2, eps
        self.strict = False  # M_0 = p_0 I (:meth:`majorizer`)

    def majorizer(self):
        """The same coupling with ``M_0 = p_0 I``: the W step then minimises the objective."""
        if self.complement is None:
            return self
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.complement = _ScaledIdentity(self.p_0, self.complement.shape[0])
        other.strict = True
        return other

    def split(self, V):
        """``(U^T V, Q V)``: coordinates of V on ``U`` and its part on the complement."""
        UV = self.U.T @ V
        return UV, (V - self.U @ UV if self._n_0 else None)

    def apply(self, W):
        """``C W``: ``P W`` on the range of ``U``, ``(Q W) M_0`` outside it."""
        UW, rest = self.split(W)
        out = self.U @ (self.p[:, None] * UW)
        return out if rest is None else out + rest @ self.complement

    def covariance(self):
        """The task covariance Omega, factored (:class:`TaskCovariance`): ``omega_0 I + B B^T``
        with ``B = U diag(omega - omega_0)^(1/2)`` (``omega >= omega_0``)."""
        omega_0 = self._omega_0 if self._n_0 else 0.0
        return TaskCovariance(self.U * np.sqrt(np.maximum(self._omega - omega_0, 0.0)), omega_0)

    def quadratic(self, W):
        """``1 / 2 tr(W^T C W)`` plus the constant ``lam_2 / 2 eps tr(Omega^-1)``.

        With ``M_0 = p_0 I`` (:meth:`majorizer`) and at the W that defined Omega, this is
        ``lam_2 / 2 tr(Omega^-1 (W W^T + eps I))`` plus ``lam_1 / 2 ||W||^2``.
        """
        UW, rest = self.split(W)
        value = float(np.sum(self.p * np.einsum("kd,kd->k", UW, UW)))
        if rest is not None:
            value += float(np.sum(rest * (rest @ self.complement)))
        return 0.5 * value + 0.5 * self.lam_2 * self.eps * self._inv_omega_trace


class _ScaledIdentity:
    """``p I`` (d x d) kept as its scalar ``p``: the curvature ``M_0 = p_0 I`` of the first W
    step and of :meth:`_Coupling.majorizer` outside ``U``, which formed is a d x d array
    (200 MB at 5,000 features, 17 times a sparse input of that width). ``Z @ M`` is ``p Z``;
    :func:`_dense` forms it where a d x d matrix is needed anyway."""

    __array_ufunc__ = None  # (``ndarray @ M`` defers to __rmatmul__)

    def __init__(self, p, n):
        self.p, self.shape = p, (n, n)

    def __rmatmul__(self, Z):
        return self.p * Z


def _dense(M):
    """A d x d ``M_0`` as an array (:class:`_ScaledIdentity` formed)."""
    return M.p * np.eye(M.shape[0]) if isinstance(M, _ScaledIdentity) else M


class TaskCovariance:
    """A T x T task covariance ``floor I + B B^T`` kept as its factor ``B`` (T, k), ``k <=
    min(T, d)``: what the solvers return, so that a fit forms no T x T matrix (8 MB at 1,000
    tasks, 800 MB at 10,000) unless the estimator's ``task_covariance_`` is read."""

    def __init__(self, B, floor):
        self.B, self.floor = B, floor

    def dense(self):
        """The T x T matrix: one symmetric rank-k product."""
        omega = self.B @ self.B.T
        omega.flat[:: omega.shape[0] + 1] += self.floor
        return omega


class _BlockOperator:
    """Per-task d x d blocks kept without their (T, d, d) stack: ``products(W, absolute)``
    (``G_t w_t``, or with ``absolute`` an entrywise bound of ``|G_t| |w_t|``),
    ``diagonal_max()`` and ``mean()`` (the mean block, d x d)."""


class RowSpaceBlocks(_BlockOperator):
    """The tasks' centred moments ``A_t = F_t^T F_t`` (d x d) of wide data, from their rows.

    ``F_t`` the task's centred rows over ``sqrt(n_t)``, as in
    :func:`~._solver_mean_clustered._row_space_decomposition`, which gives each task with
    fewer rows than features the thin SVD ``F_t = U_t S_t V_t^T`` (``V_t`` d x n_t) and the
    others the eigendecomposition of ``A_t``: either way ``A_t = V_t diag(e_t) V_t^T``. A
    product ``A_t w`` then costs ``O(n_t d)`` and a shifted inverse, ``(A_t + s I)^-1 =
    V_t diag(1 / (e_t + s)) V_t^T + (I - V_t V_t^T) / s``, as much for any ``s``: block Jacobi
    factors nothing. Memory: the tasks' rows once (``V_t^T``), against ``T d^2`` for the
    moments and as much again for their factors (30 MoleculeACE targets of 2,048 bits: 1 GB
    each). ``r`` (T, d), ``x_mean``, ``y_mean``: the rest of :func:`_task_moments`.

    ``rows``: the same tasks' rows as a :class:`~._designs.SparseDesign` (the design itself
    when X is sparse; :func:`least_squares_data` gives one for a dense X with at most
    ``_SPARSE_PRODUCTS`` of its entries non-zero), from which the products are taken instead:
    ``F_t^T (F_t w_t)`` in two passes over the stored entries, against two over ``V_t`` (30
    tasks, 8,945 labels, 2,048 bits of which 2.6% are set: 1.2 ms instead of 8.2 ms; 3.3
    against 9.1 ms at 10%, 8.0 against 9.9 ms at 20%).
    """

    def __init__(self, design, y, fit_intercept, rows=None):
        T, d = design.n_tasks, design.n_features
        self.n_features, self.n_tasks = d, T
        self._parts = []  # (task, V_t^T, e_t) in task order
        self._lazy = None  # a sparse design's thin tasks: (tasks, starts, U_t, e_t), diagonals
        if isinstance(design, SparseDesign):  # its rows never densified whole
            space = _sparse_row_space(design, y, fit_intercept)
            self.x_mean, self.y_mean, self.r = space.x_mean, space.y_mean, space.r
            square, thin, rows = space.square, None, design
            if space.thin is not None:
                tasks, U, e = space.thin
                starts = np.cumsum(design.counts) - design.counts
                self._lazy = (tasks, starts[tasks], U, e), space.diagonal.max(axis=1)
        else:
            self.x_mean, self.y_mean, square, thin = _row_space_decomposition(
                design, y, fit_intercept)
            self.r = np.empty((T, d))
        # (sparse design, 1 / n_t per observation, centred), or None
        self._rows = None if rows is None else (
            rows, 1.0 / rows.counts[rows.obs_tasks], fit_intercept)
        if square is not None:
            tasks, Vt, e, q = square
            self._parts += zip(tasks, Vt, e)
            if not isinstance(design, SparseDesign):
                self.r[tasks] = np.matmul(q[:, None, :], Vt)[:, 0]
        if thin is not None:
            tasks, rows, Vt, e, q = thin
            ends = np.cumsum(design.counts[tasks])  # the tasks' rows, one after the other
            self._parts += ((t, Vt[start:end], e[start:end]) for t, start, end in zip(
                tasks, ends - design.counts[tasks], ends))
            self.r[tasks] = rows(q) @ Vt
        self._parts.sort(key=lambda part: part[0])

    def products(self, W, absolute=False):
        """``A_t w_t`` for every task (``absolute``: ``|V_t| diag(e_t) |V_t|^T |w_t|``, or
        from a sparse design's rows ``|F_t|^T |F_t| |w_t|``, the bound of the rounding of its
        products)."""
        if self._rows is not None and (not absolute or self._lazy is not None):
            return self._sparse_products(W, absolute)
        out = np.empty_like(W)
        for t, Vt, e in self._parts:
            if absolute:
                Vt, w = np.abs(Vt), np.abs(W[t])
            else:
                w = W[t]
            out[t] = (e * (Vt @ w)) @ Vt
        return out

    def _sparse_products(self, W, absolute=False):
        """``F_t^T (F_t w_t)`` from a sparse X's rows: ``F_t = (X_t - 1 m_t^T) / sqrt(n_t)``
        (``m_t = 0`` without an intercept); ``absolute``: ``|F_t|^T |F_t| |w_t|`` bounded
        by ``|X_t| + 1 |m_t|^T`` for ``|X_t - 1 m_t^T|``."""
        if absolute:
            return self._absolute_sparse_products(W)
        _, inv_n, _ = self._rows
        return self._back(self._forward(W) * inv_n)

    def _absolute_sparse_products(self, W):
        """``(|X_t| + 1 |m_t|^T)^T (|X_t| + 1 |m_t|^T) |w_t| / n_t``: the bound of the rounding
        of :meth:`_sparse_products`."""
        design, inv_n, centred = self._rows
        W, B = np.abs(W), abs(design.B)
        x_mean = np.abs(self.x_mean)
        z = B @ W.ravel()
        if centred:
            z = z + np.einsum("td,td->t", x_mean, W)[design.obs_tasks]
        z *= inv_n
        out = (B.T @ z).reshape(W.shape)
        if centred:
            out += design.segment_sum(z)[:, None] * x_mean
        return out

    def _forward(self, R):
        """``X_t r_t - m_t . r_t`` per observation of a sparse design (``sqrt(n_t) F_t r_t``)."""
        design, _, centred = self._rows
        z = design.matvec(R)
        if centred:
            z -= np.einsum("td,td->t", self.x_mean, R)[design.obs_tasks]
        return z

    def _back(self, z):
        """``X_t^T z_t - m_t sum(z_t)`` for every task (``sqrt(n_t) F_t^T z_t``) from a
        per-observation ``z``."""
        design, _, centred = self._rows
        out = design.rmatvec(z)
        if centred:
            out -= design.segment_sum(z)[:, None] * self.x_mean
        return out

    def _row_space(self, R):
        """``F_t r_t`` per observation of a sparse design, over ``sqrt(n_t)`` once more (the
        half of :meth:`solve_shifted`'s Woodbury step before the ``U_t``)."""
        _, inv_n, _ = self._rows
        return self._forward(R) * np.sqrt(inv_n)

    def _row_space_back(self, z):
        """``F_t^T z_t`` for every task from a per-observation ``z``."""
        _, inv_n, _ = self._rows
        return self._back(z * np.sqrt(inv_n))

    def diagonal_max(self):
        """The largest diagonal entry of any ``A_t``."""
        top = max((float(np.max(e @ (Vt * Vt))) for _, Vt, e in self._parts), default=0.0)
        if self._lazy is not None:
            (tasks, _, _, _), diagonal = self._lazy
            top = max(top, float(diagonal[tasks].max(initial=0.0)))
        return top

    def largest_eigenvalue(self):
        """The largest eigenvalue of any ``A_t``, the Lipschitz constant of the least squares
        gradient: the largest ``e_t``."""
        parts = [e for _, _, e in self._parts]
        if self._lazy is not None:
            parts += self._lazy[0][3]
        return max((float(e.max()) for e in parts if e.size), default=0.0)

    def solve_shifted(self, shift, R):
        """``(A_t + shift_t I)^-1 r_t`` for every task (``shift > 0``): ``r_t / s - V_t diag(e_t
        / (s (e_t + s))) V_t^T r_t`` (``1 / (e_t + s)`` on the task's rows, ``1 / s`` on their
        complement), two passes over the rows; a sparse design's thin tasks by Woodbury,
        ``(r_t - F_t^T U_t diag(1 / (e_t + s)) U_t^T F_t r_t) / s``, two passes over their
        sparse rows."""
        out = np.empty_like(R)
        for t, Vt, e in self._parts:
            s, p = shift[t], Vt @ R[t]
            if e.size < self.n_features:
                out[t] = R[t] / s - (p * (e / (s * (e + s)))) @ Vt
            else:  # V_t square: no complement
                out[t] = (p / (e + s)) @ Vt
        if self._lazy is not None:
            (tasks, starts, U, e), _ = self._lazy
            z = self._row_space(R)
            y = np.zeros_like(z)
            for t, start, U_t, e_t in zip(tasks, starts, U, e):
                part = slice(start, start + e_t.shape[0])
                y[part] = U_t @ ((z[part] @ U_t) / (e_t + shift[t]))
            out[tasks] = (R[tasks] - self._row_space_back(y)[tasks]) / shift[tasks, None]
        return out

    def mean(self):
        """The mean of the ``A_t`` (d x d), symmetric."""
        total = np.zeros((self.n_features, self.n_features))
        for _, Vt, e in self._parts:
            root = Vt * np.sqrt(e)[:, None]
            total += root.T @ root
        if self._lazy is not None:  # sum_t X_t^T X_t / n_t - m_t m_t^T over the thin tasks
            design, inv_n, _ = self._rows
            tasks = self._lazy[0][0]
            weight = np.where(np.isin(design.obs_tasks, tasks), inv_n, 0.0)
            total += design.pooled_gram(weight)
            total -= self.x_mean[tasks].T @ self.x_mean[tasks]
            total = 0.5 * (total + total.T)
        return total / self.n_tasks


class WeightedRows(_BlockOperator):
    """The logistic Newton system's blocks ``H_t = X_t^T diag(weight_t) X_t`` read from the
    tasks' rows (the design's stacks) at every use, never formed: on wide data (dense rows,
    128 features or more, some tasks with fewer than half as many rows) a product costs two
    passes over the rows, against ``T d^2`` memory and ``O(n_t d^2)`` time a task for the
    blocks. Their mean, for the Kronecker preconditioner, is one d x d Gram matrix of all the
    weighted rows (the design's ``pooled_gram``: one sparse product for a sparse design, X's
    observed rows read once each on wide dense data); block Jacobi's factors come from each
    task's n_t x n_t Gram matrix (:meth:`factor_shifted`). A sparse design (a sparse X, or a
    dense one with at most ``_SPARSE_PRODUCTS`` of its entries non-zero, which the solver
    copies as sparse) takes the products, those Gram matrices and block Jacobi's solves from
    its own sparse products; only :meth:`diagonal_max` and the absolute products densify its
    stacks, a chunk at a time. On MoleculeACE's active labels (10,000 molecules) the fit took
    75.6 s where the solves and the mean densified the rows (99 times on 5,333 molecules),
    40.5 s now, the same coefficients."""

    def __init__(self, design, weight):
        self.design, self.n_tasks = design, design.n_tasks
        self._weight = np.append(weight, 0.0)  # (the stacks' padding reads the last slot)

    def products(self, W, absolute=False):
        if not absolute and not isinstance(self.design, GroupedDense):  # sparse: its products
            return self.design.rmatvec(self._weight[:-1] * self.design.matvec(W))
        out = np.empty_like(W)
        for tasks, pos, _, stack in self.design.stacks():
            if absolute:
                stack = np.abs(stack)
            w = np.abs(W[tasks]) if absolute else W[tasks]
            z = np.matmul(stack, w[:, :, None])[..., 0] * self._weight[pos]
            out[tasks] = np.matmul(z[:, None, :], stack)[:, 0]
        return out

    def diagonal_max(self):
        top = 0.0
        for _, pos, _, stack in self.design.stacks():
            diagonal = np.matmul(self._weight[pos][:, None, :], stack * stack)[:, 0]
            top = max(top, float(np.max(diagonal, initial=0.0)))
        return top

    def mean(self):
        return self.design.pooled_gram(self._weight[:-1]) / self.n_tasks

    def factor_shifted(self, shift, E=None):
        """Block Jacobi's factors (:class:`_RowFactors`) of the Newton system's diagonal
        blocks ``H_t + shift_t I`` (``E`` given: less the eliminated intercept's ``c_t c_t^T /
        E_t``, ``c_t = X_t^T weight_t``, ``E_t >= sum weight_t``).

        With ``u_t = sqrt(weight_t)`` and ``F_t = diag(u_t) X_t`` (n_t x d), ``H_t - c_t c_t^T
        / E_t = F_t^T M_t F_t``, ``M_t = I - u_t u_t^T / E_t = (I - g_t u_t u_t^T)^2`` with
        ``g_t = (1 - sqrt(1 - h_t / E_t)) / h_t``, ``h_t = |u_t|^2``: the block is ``B_t^T B_t +
        shift_t I``, ``B_t = (I - g_t u_t u_t^T) F_t``, whose inverse is ``(I - B_t^T (B_t
        B_t^T + shift_t I)^-1 B_t) / shift_t`` (Woodbury): the n_t x n_t Cholesky factors,
        ``O(n_t^2 d)`` a task from the rows' Gram matrices (a sparse design: ``B_t B_t^T``
        from its sparse ``X_t X_t^T``, :class:`_SparseRowFactors`, its rows never densified).
        """
        if not isinstance(self.design, GroupedDense):
            return self._sparse_factor_shifted(shift, E)
        parts = []
        for tasks, pos, _, stack in self.design.stacks():
            u = np.sqrt(self._weight[pos])  # (n_block, width), 0 on the padding
            F = stack * u[..., None]
            g = _reflector_scale(np.einsum("kn,kn->k", u, u), None if E is None else E[tasks])
            F -= (g[:, None] * u)[..., None] * np.matmul(u[:, None, :], F)  # B
            factors = []
            for k, t in enumerate(tasks):  # each task's own rows (no padding): F F^T by syrk
                rows = F[k, :self.design.counts[t]]
                K = rows @ rows.T
                K.flat[:: K.shape[0] + 1] += shift[t]
                factors.append(scipy.linalg.cholesky(K, lower=True, check_finite=False))
            parts.append((tasks, u, g, factors))
        return _RowFactors(self.design, shift, parts)

    def _sparse_factor_shifted(self, shift, E):
        """:meth:`factor_shifted` of a sparse design: ``B_t B_t^T = P_t K_t P_t`` with ``K_t =
        diag(u_t) X_t X_t^T diag(u_t)`` and ``P_t = I - g_t u_t u_t^T``."""
        u = np.sqrt(self._weight[:-1])
        g = _reflector_scale(self.design.segment_sum(self._weight[:-1]), E)
        factors = []
        for t, (start, stop, K) in enumerate(self.design.task_row_grams()):
            u_t = u[start:stop]
            K *= u_t[:, None] * u_t
            if g[t] > 0.0:
                Ku = K @ u_t
                K -= g[t] * (np.outer(u_t, Ku) + np.outer(Ku, u_t)
                             - g[t] * float(u_t @ Ku) * np.outer(u_t, u_t))
            K.flat[:: K.shape[0] + 1] += shift[t]
            factors.append(scipy.linalg.cholesky(K, lower=True, check_finite=False))
        return _SparseRowFactors(self.design, shift, u, g, factors)


def _reflector_scale(h, E):
    """``g_t = (1 - sqrt(1 - h_t / E_t)) / h_t`` of :meth:`WeightedRows.factor_shifted`
    (``(I - g_t u_t u_t^T)^2 = I - u_t u_t^T / E_t`` for ``|u_t|^2 = h_t``), 0 where ``h_t``
    or ``E_t`` is 0, and everywhere without ``E`` (no intercept eliminated)."""
    g = np.zeros_like(h)
    if E is not None:
        ratio = np.divide(h, E, out=np.zeros_like(h), where=E > 0)
        np.divide(1.0 - np.sqrt(np.maximum(1.0 - ratio, 0.0)), h, out=g, where=h > 0)
    return g


class _RowFactors(NamedTuple):
    """Block Jacobi's factors from the rows (:meth:`WeightedRows.factor_shifted`): per stack
    of tasks ``(tasks, u, g, L)``, ``L`` each task's lower factor of ``B_t B_t^T + shift_t I``
    (n_t x n_t)."""

    design: object
    shift: np.ndarray
    parts: list

    def solve(self, R):
        """``(B_t^T B_t + shift_t I)^-1 r_t`` for every task."""
        out = np.empty_like(R)
        for (tasks, _, _, stack), (_, u, g, L) in zip(self.design.stacks(), self.parts):
            r = R[tasks]
            y = np.matmul(stack, r[:, :, None])[..., 0] * u  # F r
            y -= (g * np.einsum("kn,kn->k", u, y))[:, None] * u  # B r
            z = np.zeros_like(y)
            for k, L_k in enumerate(L):  # (the padding's slots stay 0)
                z[k, :L_k.shape[0]] = scipy.linalg.cho_solve((L_k, True), y[k, :L_k.shape[0]],
                                                            check_finite=False)
            z -= (g * np.einsum("kn,kn->k", u, z))[:, None] * u  # (I - g u u^T) z
            out[tasks] = (r - np.matmul((z * u)[:, None, :], stack)[:, 0]) / self.shift[
                tasks][:, None]
        return out


class _SparseRowFactors(NamedTuple):
    """:class:`_RowFactors` of a sparse design (:meth:`WeightedRows._sparse_factor_shifted`):
    ``u`` per observation, ``g`` and the lower factors ``L`` per task; the products with the
    rows are the design's sparse ones."""

    design: object
    shift: np.ndarray
    u: np.ndarray
    g: np.ndarray
    L: list

    def solve(self, R):
        """``(B_t^T B_t + shift_t I)^-1 r_t`` for every task."""
        design, u, tasks = self.design, self.u, self.design.obs_tasks
        y = design.matvec(R) * u  # F r
        y -= (self.g * design.segment_sum(u * y))[tasks] * u  # B r
        stops = np.cumsum(design.counts)
        for start, stop, L in zip(stops - design.counts, stops, self.L):
            y[start:stop] = scipy.linalg.cho_solve((L, True), y[start:stop],
                                                   check_finite=False)
        y -= (self.g * design.segment_sum(u * y))[tasks] * u  # (I - g u u^T) z
        return (R - design.rmatvec(y * u)) / self.shift[:, None]


class _Shifted(NamedTuple):
    """Block Jacobi on :class:`RowSpaceBlocks`: the blocks ``A_t + shift_t I``."""

    blocks: RowSpaceBlocks
    shift: np.ndarray

    def solve(self, R):
        return self.blocks.solve_shifted(self.shift, R)


def _block_products(G, W, absolute=False):
    """``G_t w_t`` for every task, ``G`` a (T, d, d) stack or a :class:`_BlockOperator`
    (``absolute``: ``|G_t| |w_t|``, or the operator's bound of it)."""
    if isinstance(G, _BlockOperator):
        return G.products(W, absolute)
    if absolute:
        return (np.abs(G) @ np.abs(W)[:, :, None])[:, :, 0]
    return (G @ W[:, :, None])[:, :, 0]


def _diagonal_max(G):
    """The largest diagonal entry of any block."""
    if isinstance(G, _BlockOperator):
        return G.diagonal_max()
    return float(np.max(np.einsum("tii->ti", G), initial=0.0))


def _largest_eigenvalue(G, mean_eigen=None):
    """The largest eigenvalue of any block (``mean_eigen``: the eigendecomposition of the
    block all tasks share, when they do)."""
    if isinstance(G, _BlockOperator):
        return G.largest_eigenvalue()
    if mean_eigen is not None:
        return float(np.max(mean_eigen[0], initial=0.0))
    return float(np.max(np.linalg.eigvalsh(G), initial=0.0))


def _cg_rtol(tol):
    """CG tolerance of the W steps for a relative objective tolerance ``tol``.

    A W step solved to a relative residual ``rtol`` misses its minimum by about ``rtol^2``
    relative to the objective, so ``1e-3 sqrt(tol)`` keeps that far below ``tol``. The
    solver passes ``min(tol, _STAGE_TOL)``: ``1e-8`` for a gap tolerance of ``1e-10`` or
    more (half the CG iterations of ``1e-12``), ``1e-9`` at the default ``tol = 1e-12`` (on
    benchmark case (d) 22 CG iterations in the whole fit instead of 20; the fits of two
    preconditioners, :func:`_fresh_enough`, then end 4e-11 apart instead of 1e-8).
    """
    return max(1e-3 * np.sqrt(tol), _CG_RTOL)


def _solve_coupled(G, coupling, R, W0, c=None, h=None, kappa=0.0, r_b=None, rtol=_CG_RTOL,
                   shared=None, mean_eigen=None, cache=None, GW0=None):
    """Solve ``G_t w_t + (P W)_t + c_t db_t = R_t``, ``c_t . w_t + (H_bb db)_t = r_b`` by CG.

    ``G`` (T, d, d) per-task blocks; with ``c`` (T, d), ``h`` (T,) the intercept coordinate
    of each task, whose block ``H_bb = diag(h) + kappa (I - 1 1^T / T)`` is eliminated exactly
    (Sherman-Morrison): CG runs on the Schur complement in ``W``, from ``W0`` to a relative
    residual ``rtol`` (:func:`_pcg`).

    The preconditioner: without ``c``, when the blocks differ (``shared`` False; None:
    checked), the exact diagonal blocks of the system, ``G_t + C_tt``, each factored by
    Cholesky (block Jacobi: the tasks' own moments, which the iterations would otherwise
    have to recover); else the Kronecker sum with the mean block (see the module docstring;
    exact for shared blocks), from ``mean_eigen`` (:func:`_mean_eigen` of ``G``) when given.
    Blocks kept as rows (wide data, where ``C_tt`` is a multiple of the identity): a
    :class:`RowSpaceBlocks` ``G`` inverts its blocks exactly at any shift (nothing factored
    or cached); a :class:`WeightedRows` ``G`` (the logistic Newton systems) uses block Jacobi
    with ``c`` too, its blocks less the eliminated intercepts' ``c_t c_t^T / (h_t + kappa)``
    (:meth:`WeightedRows.factor_shifted`, once per call), and keeps its Kronecker sum's mean
    block in ``cache`` across calls while CG converges about as fast with it.
    With ``Omega = I / T`` (no subspace ``U`` yet) and no ``c`` the tasks decouple and the
    block solve is exact: ``n_cg = 0``. ``cache`` (a dict, kept by the caller across W steps)
    reuses the block factors for the same ``G`` and kind of :class:`_Coupling`, within an
    ``eps`` stage and across stages while the blocks barely change (:func:`_fresh_enough`):
    a stale preconditioner, still positive definite, so CG reaches the same tolerance; on
    benchmark case (d) it costs no extra iteration in the whole fit and spares 9 of the 12
    factorisations. Keeping the factors across every ``eps`` stage regardless (2
    factorisations) was 10% faster on the school data sets, but the permuted tasks' fit
    then ended 5e-8 away from the fit (tol=1e-13; ``check_task_permutation_equivariance``).
    ``GW0``: the products ``G_t w0_t``, when known.
    Returns ``(W, db, n_cg)``.
    """
    T, d = R.shape
    U, complement = coupling.U, coupling.complement
    factors = None
    if shared is None:
        shared = _all_equal(G)
    block_jacobi = not U.shape[1] or (
        cache is not None and not cache.get("kronecker") and not shared)
    # the blocks from the rows: C_tt = shift_t I, M_0 being p_0 I at Omega = I / T (no U yet)
    # and absent after (T <= d: U spans the tasks; the rows' blocks are not used otherwise)
    rows_shift = (U * U) @ coupling.p if U.shape[1] else np.full(T, coupling.p_0)
    if isinstance(G, WeightedRows):
        if block_jacobi and (complement is None or not U.shape[1]):
            factors = G.factor_shifted(rows_shift, None if c is None else h + kappa)
    elif c is None and block_jacobi and isinstance(G, RowSpaceBlocks):
        factors = _Shifted(G, rows_shift)  # exact for any shift, nothing to factor
        if not U.shape[1]:
            return _solve_diagonal_blocks(factors, R), None, 0
    elif c is None and block_jacobi:
        # C_tt = (U diag(p) U^T)_tt I + (1 - (U U^T)_tt) M_0
        M_0 = np.zeros((d, d)) if complement is None else _dense(complement)
        key = (coupling.eps, coupling.strict)
        blocks = (M_0, np.einsum("tk,tk->t", U, U), (U * U) @ coupling.p)
        if U.shape[1] and cache.get("G") is G and _fresh_enough(cache, key, blocks):
            factors = cache["factors"]
        else:
            factors, factored = _factor_diagonal_blocks(G, *blocks)
            if not factored:
                factors = None
            elif not U.shape[1]:
                return _solve_diagonal_blocks(factors, R), None, 0
            elif cache is not None:
                cache.update(G=G, key=key, factors=factors, blocks=blocks)
    if c is not None:
        E = h + kappa
        denom = 1.0 - kappa / T * np.sum(1.0 / E)

        def hinv(v):
            u = v / E
            return u + (kappa / T) * np.sum(u) / denom / E if kappa else u
        rhs = R - c * hinv(r_b)[:, None]
        a = V = None  # the Kronecker preconditioner's, when it is needed
    else:
        rhs = R
        a, V = mean_eigen if mean_eigen is not None else (None, None)

    # C Z = U (p * U^T Z - (U^T Z) M_0) + Z M_0 (:meth:`_Coupling.apply`)
    p_U = coupling.p[:, None]

    def matvec(W, UW, GW=None):
        """The system applied to ``W``, given ``UW = U^T W`` (None: computed), ``G_t w_t``
        when known."""
        if UW is None:
            UW = U.T @ W
        out = _block_products(G, W) if GW is None else GW.copy()
        if complement is None:
            out += U @ (p_U * UW)
        else:
            out += U @ (p_U * UW - UW @ complement) + W @ complement
        if c is not None:
            out -= c * hinv(np.einsum("td,td->t", c, W))[:, None]
        return out

    if factors is not None:
        def precondition(Z):
            """Block Jacobi applied to ``Z``, and ``U^T`` of the result."""
            out = _solve_diagonal_blocks(factors, Z)
            return out, U.T @ out

        W0, n_block = _pcg(matvec, precondition, rhs, W0, rtol, maxiter=_BLOCK_JACOBI_BUDGET,
                           product=None if GW0 is None else matvec(W0, None, GW0))
        if n_block < _BLOCK_JACOBI_BUDGET:
            return W0, None if c is None else hinv(r_b - np.einsum("td,td->t", c, W0)), n_block
        if cache is not None:  # the coupling dominates: the Kronecker sum from now on
            cache["kronecker"] = True
    else:
        n_block = 0
    # the rows' Newton systems keep the mean block's eigendecomposition (a d x d Gram matrix
    # of all the rows and a d^3 decomposition) while CG converges with it about as fast as
    # when it was fresh: the weights move little between Newton steps
    keep = isinstance(G, WeightedRows) and cache is not None
    stale = keep and a is None and cache.get("mean_eigen_ok", False)
    if stale:
        a, V = cache["mean_eigen"]
    elif a is None:
        a, V = _mean_eigen(G, c, h)
    denominators = coupling.p[:, None] + a[None, :]
    if complement is not None:  # outside U: (I (x) (M_0 + A_bar))^-1
        inverse_0 = np.linalg.inv(_dense(complement) + (V * a) @ V.T)

    def precondition(Z):
        """The Kronecker preconditioner applied to ``Z``, and ``U^T`` of the result."""
        UZ = U.T @ Z
        inner = ((UZ @ V) / denominators) @ V.T  # U^T of the result
        if complement is None:
            return U @ inner, inner
        return U @ (inner - UZ @ inverse_0) + Z @ inverse_0, inner

    W, n_cg = _pcg(matvec, precondition, rhs, W0, rtol, maxiter=10 * T * d + 20)
    if keep and stale:
        cache["mean_eigen_ok"] = n_cg <= _STALE_CG * cache["fresh_cg"] + 2
    elif keep:
        cache.update(mean_eigen=(a, V), fresh_cg=n_cg, mean_eigen_ok=True)
    db = None if c is None else hinv(r_b - np.einsum("td,td->t", c, W))
    return W, db, n_block + n_cg


def _fresh_enough(cache, key, blocks):
    """Whether the cached block-Jacobi factors serve for the coupling of ``key`` (``(eps,
    strict)``) whose diagonal blocks add ``(1 - weight_t) M_0 + shift_t I`` to the tasks'
    moments (``blocks = (M_0, weight, shift)``): always within one ``eps`` stage; across
    stages, when these differ from the cached ones by at most ``_STALE`` (relative to the
    largest entry of ``M_0`` and of ``shift``; ``weight`` is in [0, 1]). On benchmark case
    (d) the blocks of the last three stages are within 4.3e-3 of the second's, and their W
    steps take one or two CG iterations each: a factorisation there cost more than the
    solve.
    """
    cached = cache.get("key")
    if cached is None or cached[1] != key[1]:
        return False
    if cached == key:
        return True
    change = 0.0
    for new, old, absolute in zip(blocks, cache["blocks"], (False, True, False)):
        if new.size:
            scale = 1.0 if absolute else max(float(np.abs(old).max()), np.finfo(float).tiny)
            change = max(change, float(np.abs(new - old).max()) / scale)
    return change <= _STALE


def _mean_eigen(G, c=None, h=None):
    """``(a, V)``: eigenvalues (clipped at 0) and eigenvectors of the mean of the blocks
    (with ``c``, ``h``: of the blocks less the eliminated intercepts' ``c_t c_t^T / h_t``)."""
    G_bar = G.mean() if isinstance(G, _BlockOperator) else G.mean(axis=0)
    if c is not None:
        # (a task whose probabilities all saturated has h = 0 and c = 0: no Schur term, where
        # 0 / 0 put NaN into the preconditioner's eigendecomposition)
        scaled = np.divide(c, h[:, None], out=np.zeros_like(c), where=h[:, None] > 0)
        G_bar = G_bar - (scaled.T @ c) / c.shape[0]
    a, V = np.linalg.eigh(0.5 * (G_bar + G_bar.T))
    return np.maximum(a, 0.0), V


def _all_equal(G):
    """Whether all the blocks ``G_t`` are equal (tasks observing the same rows); blocks kept
    as rows (:class:`_BlockOperator`, never taken for shared rows) are not."""
    return not isinstance(G, _BlockOperator) and bool(np.all(G == G[:1]))


class _TaskFactors(NamedTuple):
    """Block Jacobi's factors task by task, (T, d, d), LAPACK's lower Cholesky factors."""

    L: np.ndarray


def _factor_diagonal_blocks(G, M, weight, shift):
    """:func:`_factor_blocks`, or for few large blocks (``T < 2 d``, ``d > 128``) LAPACK's
    Cholesky task by task (:class:`_TaskFactors`): the task-last kernels loop over the tasks
    innermost, fast for 1,000 blocks of 30 x 30 and while the (d, d, T) factors stay in
    cache, but on 30 blocks of 2,048 x 2,048 (MoleculeACE) a factorisation took 45 s where
    LAPACK takes about 2."""
    T, d = G.shape[0], G.shape[1]
    if T >= 2 * d or d <= 128:
        return _factor_blocks(G, M, weight, shift)
    L = np.empty_like(G)
    with _blas_threads_for(d):
        for t in range(T):
            block = np.add(G[t], (1.0 - weight[t]) * M, out=L[t])
            block[np.arange(d), np.arange(d)] += shift[t]
            # LAPACK on the Fortran view block.T (the same symmetric matrix): its upper factor
            # U = Q^T in the Fortran view is the lower factor Q in the C view
            factor, info = _POTRF(block.T, lower=0, clean=1, overwrite_a=1)
            if info != 0:
                return None, False
            if not np.shares_memory(factor, block):  # (a copy, were LAPACK given one)
                block[...] = factor.T
    return _TaskFactors(L), True


def _solve_diagonal_blocks(factors, R):
    """:func:`_solve_factored` for any kind of factors."""
    if isinstance(factors, (_Shifted, _RowFactors, _SparseRowFactors)):  # blocks as rows
        return factors.solve(R)
    if not isinstance(factors, _TaskFactors):
        return _solve_factored(factors, R)
    out = np.empty_like(R)
    with _blas_threads_for(R.shape[1]):
        for t, L in enumerate(factors.L):
            out[t] = _POTRS(L.T, R[t], lower=0)[0]
    return out


# Block Jacobi kernels. The factors are stored task-last, (d, d, T), so that every step of
# the factorisation and of the triangular solves is one contiguous loop over the T tasks.
@njit(cache=True, fastmath=_FAST)
def _factor_blocks(G, M, weight, shift):
    """Cholesky factors of ``G_t + (1 - weight_t) M + shift_t I``, all tasks at once.

    Returns ``(L, factored)``: ``L[i, j, t]`` (``j < i``) the lower factor of task t and
    ``L[i, i, t]`` the inverse of its diagonal; ``factored`` False when a block is not
    positive definite.
    """
    T, d = G.shape[0], G.shape[1]
    L = np.empty((d, d, T))
    for t in range(T):
        scale = 1.0 - weight[t]
        for i in range(d):
            for j in range(i + 1):
                L[i, j, t] = G[t, i, j] + scale * M[i, j]
            L[i, i, t] += shift[t]
    failed = np.zeros(T, dtype=np.bool_)
    _cholesky_task_last(L, failed)
    return L, not failed.any()


@njit(cache=True, fastmath=_FAST)
def _solve_factored(L, R):
    """``(L_t L_t^T)^-1 R_t`` for each task t, from :func:`_factor_blocks`."""
    T, d = R.shape
    Z = np.empty((d, T))
    for t in range(T):
        for i in range(d):
            Z[i, t] = R[t, i]
    for i in range(d):  # L z = r
        z_i, inverse = Z[i], L[i, i]
        for m in range(i):
            factor, z_m = L[i, m], Z[m]
            for t in range(T):
                z_i[t] -= factor[t] * z_m[t]
        for t in range(T):
            z_i[t] *= inverse[t]
    for i in range(d - 1, -1, -1):  # L^T x = z
        z_i, inverse = Z[i], L[i, i]
        for t in range(T):
            z_i[t] *= inverse[t]
        for m in range(i):
            factor, z_m = L[i, m], Z[m]
            for t in range(T):
                z_m[t] -= factor[t] * z_i[t]
    out = np.empty((T, d))
    for t in range(T):
        for i in range(d):
            out[t, i] = Z[i, t]
    return out


def _epsilon(W):
    scale = float(np.mean(np.einsum("td,td->t", W, W))) if W.size else 0.0
    return max(_EPS_SCALE * scale, np.finfo(np.float64).tiny)


def _alternate(w_step, loss, smooth, W, b, lam_1, lam_2, tol, max_iter, stretched_loss=None):
    """Block coordinate descent on ``(W, b)`` and ``Omega``, then :func:`_polish` if needed.

    ``w_step(W, b, coupling)`` minimises over ``(W, b)`` for a fixed Omega; ``loss(W, b)`` is
    the data term (with any intercept pull); ``smooth`` (:class:`_SmoothPart`) gives the
    relative duality gap of the ``eps = 0`` problem and the polish's gradients. For a given
    ``eps``, the objective tracked is the minimum over Omega, ``loss + lam_1 / 2 ||W||^2 +
    lam_2 / 2 (tr (W W^T + eps I)^(1/2))^2``, and each sweep lowers it. ``eps`` starts at
    ``1e-2`` times the mean squared norm of the first (ridge) task vectors and is divided by
    1000 whenever a sweep lowers the objective by at most ``_STAGE_TOL = 1e-10`` times its
    value, down to ``1e-14`` times that scale (continuation): with a tiny ``eps`` from the
    start, a singular value of ``W`` that collapses early freezes the task subspace (its
    direction in ``Omega^-1`` is penalised by ``1 / sqrt(eps)``), and the alternation stalls
    short of the optimum. Each W step uses the coupling's default curvature outside the range
    of W (:class:`_Coupling`) and is redone with the majoriser when it does not lower the
    objective. After each sweep the step from the previous point is stretched by ``size`` > 1
    when that lowers the objective further (adaptive over-relaxation; the stretched point is
    first screened with the eigenvalues of the d x d ``W^T W``, its SVD computed only when it
    passes), so the descent stays monotone for each ``eps``. When ``eps`` changes, the SVD
    and the data term of the current W carry over.

    Stops as soon as the relative duality gap (computed after every sweep) is at most
    ``tol``, in whichever ``eps`` stage: the gap is that of the ``eps = 0`` problem, a
    certificate for the returned point. When a sweep at the final ``eps`` lowers the
    objective by at most ``_STAGE_TOL`` and the gap is still above ``tol``, the alternation
    has stalled (rank-deficient optima: see the module docstring) and :func:`_polish`
    finishes; with ``lam_1 > 0`` and ``smooth.curvature() <= _STALL_CONDITION lam_1`` it
    also finishes, at any ``eps``, once the gap has not halved over ``_STALL_SWEEPS`` sweeps
    (stuck at the stage's floor). The polish also stops, without a warning, at the gap's
    rounding floor (see the module docstring). ``max_iter`` bounds the sweeps and the
    polish's steps together; reaching it above ``tol`` warns. Returns ``(W, b, omega,
    criterion, n_iter)``, Omega the closed form at the final ``eps``.
    """
    with _blas_threads_for(min(W.shape)):  # T x min(T, d) products: threads only stall
        return _descend(w_step, loss, smooth, W, b, lam_1, lam_2, tol, max_iter,
                        stretched_loss)


def _descend(w_step, loss, smooth, W, b, lam_1, lam_2, tol, max_iter, stretched_loss=None):
    W, b = w_step(W, b, _Coupling.initial(*W.shape, lam_1, lam_2))
    scale = _epsilon(W) / _EPS_SCALE
    stages = list(scale * 10.0 ** np.arange(-2, -14.5, -3))
    eps, final_eps = stages.pop(0), stages[-1]

    def value_of(W, b, eigen=None, base=None):
        """The objective at ``(W, b)``, its coupling and its part outside the relation term."""
        coupling = _Coupling(W, lam_1, lam_2, eps, eigen)
        if base is None:
            base = loss(W, b) + 0.5 * lam_1 * float(np.sum(W * W))
        return base + coupling.relation_value, coupling, base

    def trial_value(far_W, far_b, W, b, new_W, new_b, size):
        """About the value at the stretched point, from the eigenvalues of the d x d
        ``W^T W`` (and its loss combined from the last two points', where the datafit
        allows: ``stretched_loss``)."""
        gram = far_W.T @ far_W if far_W.shape[0] >= far_W.shape[1] else far_W @ far_W.T
        root = np.sqrt(np.maximum(np.linalg.eigvalsh(gram), 0.0) + eps)
        total = root.sum() + (far_W.shape[0] - root.size) * np.sqrt(eps)
        data = (loss(far_W, far_b) if stretched_loss is None
                else stretched_loss(far_W, far_b, W, b, new_W, new_b, size))
        return data + 0.5 * lam_1 * float(np.sum(far_W * far_W)) + 0.5 * lam_2 * total**2

    value, coupling, base = value_of(W, b)
    criterion = smooth.gap(W, b, coupling.eigen[1])
    n_iter, size, gaps = 1, 2.0, [criterion]
    fast_polish = None  # whether the polish may take over a stall (decided at the first)
    while criterion > tol and n_iter < max_iter:
        new_W, new_b = w_step(W, b, coupling)
        new_value, new_coupling, new_base = value_of(new_W, new_b)
        if new_value > value and coupling.complement is not None:  # the majoriser descends
            new_W, new_b = w_step(W, b, coupling.majorizer())
            new_value, new_coupling, new_base = value_of(new_W, new_b)
        if size > 1.0:
            far_W = W + size * (new_W - W)
            far_b = None if b is None else b + size * (new_b - b)
            trial = trial_value(far_W, far_b, W, b, new_W, new_b, size)
            far = value_of(far_W, far_b) if trial < new_value else None
            if far is not None and far[0] < new_value:  # checked on the exact value
                new_W, new_b = far_W, far_b
                new_value, new_coupling, new_base = far
                size *= 1.5
            else:
                size = 2.0
        n_iter += 1
        change = (value - new_value) / max(abs(new_value), np.finfo(np.float64).tiny)
        if change >= 0:
            W, b, value, coupling, base = new_W, new_b, new_value, new_coupling, new_base
            criterion = smooth.gap(W, b, coupling.eigen[1])
        gaps.append(criterion)
        if (lam_1 > 0.0 and len(gaps) > _STALL_SWEEPS
                and criterion > 0.5 * gaps[-1 - _STALL_SWEEPS]):
            if fast_polish is None:
                fast_polish = smooth.curvature() <= _STALL_CONDITION * lam_1
            if fast_polish:
                break  # stalled at this eps's floor: the polish finishes
        if change <= _STAGE_TOL:  # converged for this eps (a negative change: rounding)
            if not stages:
                break
            eps = stages.pop(0)  # same W: its SVD and loss carry over
            value, coupling, base = value_of(W, b, coupling.eigen, base)
    eigen = coupling.eigen
    if criterion > tol and n_iter < max_iter:  # stalled (at the final eps, or handed over)
        W, b, criterion, steps, at_floor = _polish(smooth, W, b, lam_1, lam_2, tol,
                                                   max_iter - n_iter)
        n_iter, eigen = n_iter + steps, None
    else:
        at_floor = False
    if criterion > tol and not at_floor:
        _not_converged(max_iter, criterion, tol)
    return W, b, _Coupling(W, lam_1, lam_2, final_eps, eigen).covariance(), criterion, n_iter


def _not_converged(max_iter, criterion, tol):
    warnings.warn(
        f"Multi-task relationship learning did not converge in max_iter={max_iter} "
        f"iterations (sweeps and proximal gradient steps): relative duality gap "
        f"{criterion:.3g} > tol = {tol:g}. Increase max_iter, or scale the features "
        f"(StandardScaler): features of widely different scales slow it down.",
        ConvergenceWarning,
    )


class _SmoothPart:
    """The data term of the ``eps = 0`` objective, as :func:`_polish` and the gap read it.

    ``state(W, b)``: the datafit's state, linear in ``(W, b)`` (``A_t w_t`` for least squares,
    the linear predictors for the logistic loss), so that an extrapolated point's is the same
    combination of two states; ``gradient(W, b, state)``: ``(G_W, G_b)``, ``G_b`` None when
    ``b`` is not a variable; ``gap(W, b, sigma, state=None)``: the relative duality gap at
    ``(W, b)``, ``sigma`` the squared singular values of ``W``; ``curvature()``: a lower
    bound of the Lipschitz constant of the gradient; ``majorized(y, new, G_W, G_b, L)``:
    whether the datafit at ``new`` is at most its quadratic model around ``y`` (points as
    ``(W, b, state)``) with curvature ``L``; ``floor(W, b, sigma, state=None)``: the gap's
    rounding floor there (:func:`_rounding_floor`); ``lipschitz()``: the Lipschitz constant
    of the gradient, where it can be had exactly (None where not: the logistic loss), the
    polish's curvature then (``majorized`` holds at once).
    """

    def __init__(self, state, gradient, gap, curvature, majorized, floor, lipschitz=None):
        self.state, self.gradient, self.gap = state, gradient, gap
        self.curvature, self.majorized, self.floor = curvature, majorized, floor
        self.lipschitz = lipschitz


class _Point(NamedTuple):
    """A point of :func:`_polish`: ``W``, ``b`` (None when not a variable) and the datafit's
    state there."""

    W: np.ndarray
    b: np.ndarray | None
    state: object


def _polish(smooth, W, b, lam_1, lam_2, tol, max_steps):
    """Accelerated proximal gradient on the ``eps = 0`` objective, from ``(W, b)``.

    FISTA (Beck & Teboulle, 2009) with backtracking on the step ``1 / L`` (from
    ``smooth.curvature()``, doubled until the datafit lies below its quadratic model,
    ``smooth.majorized``; at ``smooth.lipschitz()`` where that is known, which needs no
    doubling) and O'Donoghue & Candes' gradient restart: the loop of
    :func:`~._proximal.accelerated_proximal_gradient`, as in
    :func:`~._low_rank.solve_low_rank`. The proximal step of ``g`` is spectral: the gradient
    step ``Y = U diag(s) V^T`` goes to ``U diag(sigma) V^T`` with ``sigma`` the
    :func:`_shrink` of ``s`` (``a = 1 + lam_1 / L``, ``b = lam_2 / L``), zeros included; the
    intercepts (when variables) take plain gradient steps. Stops when the relative duality
    gap is at most ``tol``; when it has set no new minimum over ``_FLOOR_STEPS`` steps and
    lies within its rounding floor (``smooth.floor``, :func:`_rounding_floor`); or after
    ``max_steps`` steps. Returns ``(W, b, criterion, n_steps, at_floor)``, ``at_floor``
    whether it stopped at the floor.

    The new point is formed as ``Y - U diag(s - sigma) V^T``, the gradient step less its
    shrinkage, not rebuilt from the factors: ``U`` and ``V`` are orthonormal to rounding
    only, so a product ``U diag(sigma) V^T`` errs by about ``eps sigma_1`` in every direction,
    and with ``relation_ratio = 1`` (``lam_1 = 0``) the gap is first-order sensitive to such
    errors (the top singular value of the dual point ``V`` is multiple at the optimum). Its
    fixed point then held the gap at 2.7e-12 (10 tasks, 20 features, ``alpha = 0.01``; at
    1.2e-12 on 200 tasks of 20 rows and 30 features, ``alpha = 1``) through 10,000 steps,
    where proximal steps in 40-digit arithmetic, rounded to float64, reach 3e-15 (the first
    case); the difference errs by ``eps (s - sigma)_max``, the shrinkage, and reaches 1.5e-14
    (35 iterations in all to ``1e-12``, and 242 in the second case).
    """
    def extrapolate(x, x_prev, beta):
        return _Point(*(None if u is None else u + beta * (u - v) for u, v in zip(x, x_prev)))

    def prox(y, grad, L):
        G_W, G_b = grad
        step = y.W - G_W / L
        U, s, Vt = np.linalg.svd(step, full_matrices=False)
        sigma = _shrink(s, 1.0 + lam_1 / L, lam_2 / L)
        # the gradient step less its shrinkage, U diag(s - sigma) V^T: the same point as U
        # diag(sigma) V^T, whose rebuilding from the factors errs by eps ||W||_2 in every
        # direction, while this errs by eps (s - sigma)_max, the shrinkage, far smaller near
        # the optimum (see the docstring)
        new_W = step - (U * (s - sigma)) @ Vt
        new_b = y.b if G_b is None else y.b - G_b / L
        return _Point(new_W, new_b, smooth.state(new_W, new_b)), sigma

    track = {"best": np.inf, "since": 0, "floor": None}

    def criterion(new, sigma):
        """The gap; -1 (below any tol: the loop stops) at the rounding floor, the gap kept."""
        gap = smooth.gap(new.W, new.b, sigma**2, new.state)
        if gap < track["best"]:
            track["best"], track["since"] = gap, 0
            return gap
        track["since"] += 1
        if gap > tol and track["since"] >= _FLOOR_STEPS:
            track["since"] = 0  # (checked again after as many steps)
            if gap <= smooth.floor(new.W, new.b, sigma**2, new.state):
                track["floor"] = gap
                return -1.0
        return gap

    x, _, value, steps = accelerated_proximal_gradient(
        _Point(W, b, smooth.state(W, b)),
        max(smooth.curvature() if smooth.lipschitz is None else smooth.lipschitz(),
            np.finfo(float).tiny),
        extrapolate=extrapolate, gradient=lambda y: smooth.gradient(*y), prox=prox,
        majorized=lambda y, new, grad, L: smooth.majorized(y, new, *grad, L),
        criterion=criterion, tol=tol, max_steps=max_steps)
    at_floor = track["floor"] is not None
    return x.W, x.b, track["floor"] if at_floor else value, steps, at_floor


class LeastSquaresData(NamedTuple):
    """What :func:`solve_task_relation` reads of the data, the same at every ``alpha``
    (:func:`least_squares_data`): the tasks' centred moments ``A`` ((T, d, d), or
    :class:`RowSpaceBlocks` on wide data) and ``r``, the means, the constant of the loss,
    whether the blocks are all equal and then the mean block's eigendecomposition."""

    A: object
    r: np.ndarray
    x_mean: np.ndarray
    y_mean: np.ndarray
    constant: float
    shared: bool
    mean_eigen: tuple | None


def least_squares_data(X, Y, mask, *, fit_intercept=True, task_index=None, n_tasks=None):
    """The :class:`LeastSquaresData` of wide ``(X, Y, mask)`` or long ``(X, y, None,
    task_index=...)`` data: computed once, it serves :func:`solve_task_relation` at any
    ``alpha`` (``TaskRelationRegressorCV``'s path: on wide data the rows' thin SVDs, 4.7 of
    the 14.6 s of a MoleculeACE fit, would otherwise be taken again at every alpha)."""
    problem = Problem(X, Y, mask, task_index=task_index, n_tasks=n_tasks)
    design = problem.design()
    y = problem.targets(design)
    if problem.shared_rows is None and design.n_tasks <= design.n_features and _kernel_form(
            design, design.n_features):  # wide: the tasks' moments from their rows
        X = problem.X  # (a dense X mostly zeros: its products from a sparse copy)
        rows = SparseDesign(X, problem.groups) if _mostly_zeros(X) else None
        A = RowSpaceBlocks(design, y, fit_intercept, rows)
        r, x_mean, y_mean = A.r, A.x_mean, A.y_mean
    else:
        A, r, x_mean, y_mean = _task_moments(design, y, fit_intercept)
    residual = y - y_mean[design.obs_tasks] if fit_intercept else y
    constant = 0.5 * design.segment_sum(residual**2 / design.counts[design.obs_tasks]).sum()
    shared = _all_equal(A)
    return LeastSquaresData(A, r, x_mean, y_mean, constant, shared,
                            _mean_eigen(A) if shared else None)


def solve_task_relation(X, Y, mask, alpha, relation_ratio, *, fit_intercept=True, tol=1e-12,
                        max_iter=1000, task_index=None, n_tasks=None, data=None):
    """Multi-task relationship learning with the squared loss.

    Minimises over ``W``, ``b`` and ``Omega`` (positive semi-definite, unit trace)::

        sum_t 1 / (2 n_t) ||y_t - X_t w_t - b_t||^2
        + lam_1 / 2 ||W||_F^2 + lam_2 / 2 tr(W^T Omega^-1 W)

    with ``lam_1 = alpha (1 - relation_ratio)``, ``lam_2 = alpha relation_ratio / T``, by
    alternating the W step (one linear system, see the module docstring) and the closed-form
    Omega step, finished by :func:`_polish` if the alternation stalls, until the relative
    duality gap is at most ``tol``. Wide ``(X, Y, mask)`` or long ``(X, y, None,
    task_index=...)`` data; ``data``, when given, is their :func:`least_squares_data` (with
    this ``fit_intercept``), and ``X``, ``Y``, ``mask`` are not read.

    Returns
    -------
    W : ndarray of shape (n_tasks, n_features)
    b : ndarray of shape (n_tasks,)
    omega : TaskCovariance
        The task covariance at the solution, factored (``omega.dense()``: the T x T matrix).
    criterion : float
        The relative duality gap ``(P - D) / P`` of the ``eps = 0`` problem at ``W`` (module
        docstring).
    n_iter : int
        Number of sweeps (W step and Omega step) plus proximal gradient steps.
    """
    if data is None:
        data = least_squares_data(X, Y, mask, fit_intercept=fit_intercept,
                                  task_index=task_index, n_tasks=n_tasks)
    A, r, x_mean, y_mean, constant, shared, mean_eigen = data
    T = r.shape[0]
    lam_1, lam_2 = relation_weights(alpha, relation_ratio, T)

    # id -> (W, A W) of the last three W evaluated: the next W step starts from one of them,
    # and a stretched point combines those of the current and the new point
    products = {}

    def loss_of(W, AW):  # 1 / 2 w_t . A_t w_t - r_t . w_t, summed, plus the constant
        if len(products) > 2:
            del products[next(iter(products))]
        products[id(W)] = (W, AW)
        return float(np.vdot(W, 0.5 * AW - r)) + constant

    def loss(W):
        return loss_of(W, _block_products(A, W))

    def stretched_loss(far_W, W, new_W, size):
        """The loss at ``far_W = W + size (new_W - W)``: its products with the blocks are
        those of W and new_W combined, when both are known (no pass over the blocks)."""
        known, new = products.get(id(W)), products.get(id(new_W))
        if known is None or new is None or known[0] is not W or new[0] is not new_W:
            return loss(far_W)
        return loss_of(far_W, known[1] + size * (new[1] - known[1]))

    factors = {}  # the W steps' preconditioner, kept across them

    def w_step(W, b, coupling):
        known = products.get(id(W), (None, None))
        return _solve_coupled(A, coupling, r, W, rtol=_cg_rtol(min(tol, _STAGE_TOL)),
                              shared=shared, mean_eigen=mean_eigen, cache=factors,
                              GW0=known[1] if known[0] is W else None)[0], b

    def products_of(W, b=None):
        known = products.get(id(W))
        return known[1] if known is not None and known[0] is W else _block_products(A, W)

    def gap(W, b, sigma, AW=None):
        """The relative duality gap at W: ``theta_t`` the residuals / ``n_t``, ``V = R - A W``
        (module docstring), from the block products ``A W`` (those :func:`loss_of` keeps
        when not given)."""
        AW = products_of(W) if AW is None else AW
        return _relative_gap(float(np.vdot(W, 0.5 * AW - r)) + constant, 0.0, W, r - AW,
                             sigma, lam_1, lam_2)

    @cache  # the polish's curvature: it then needs no product A D to majorise a step
    def lipschitz():
        """The Lipschitz constant of the gradient, the largest eigenvalue of any ``A_t``
        (on wide data the largest ``e_t``; formed blocks: their eigenvalues, once)."""
        return _largest_eigenvalue(A, mean_eigen)

    def majorized(y, new, G_W, G_b, L):
        """``<D, A D> <= L ||D||^2`` for the step ``D``: the quadratic model's own test, exact
        (the values themselves cancel terms much larger than the objective); true at once
        where ``L`` is at least the Lipschitz constant."""
        if L >= lipschitz():
            return True
        D = new[0] - y[0]
        return float(np.vdot(D, _block_products(A, D))) <= L * float(np.vdot(D, D))

    def floor(W, b, sigma, AW=None):
        """The gap's rounding floor (:func:`_rounding_floor`): ``V = r - A W`` moves by at
        most ``eps |A| |W|`` when W moves by its rounding."""
        AW = products_of(W) if AW is None else AW
        change = np.finfo(float).eps * float(np.linalg.norm(_block_products(A, W, True)))
        return _rounding_floor(float(np.vdot(W, 0.5 * AW - r)) + constant, W, sigma, lam_1,
                               lam_2, change)

    smooth = _SmoothPart(products_of, lambda W, b, AW: (AW - r, None), gap,
                         lambda: _diagonal_max(A), majorized, floor, lipschitz)
    W, _, omega, criterion, n_iter = _alternate(
        w_step, lambda W, b: loss(W), smooth, np.zeros_like(r), None, lam_1, lam_2, tol,
        max_iter, stretched_loss=lambda far_W, far_b, W, b, new_W, new_b, size: stretched_loss(
            far_W, W, new_W, size))
    b = y_mean - np.einsum("td,td->t", W, x_mean)
    return W, b, omega, criterion, n_iter


def solve_task_relation_logistic(X, Y, mask, alpha, relation_ratio, *, fit_intercept=True,
                                 tol=1e-12, max_iter=1000, newton_max_iter=50, task_index=None,
                                 n_tasks=None):
    """Multi-task relationship learning with the binary logistic loss.

    Minimises over ``W``, ``b`` and ``Omega`` (positive semi-definite, unit trace)::

        sum_t 1 / n_t sum_{i in task t} log(1 + exp(-s_i (x_i w_t + b_t)))
        + lam_1 / 2 ||W||_F^2 + lam_2 / 2 tr(W^T Omega^-1 W)
        + alpha / 2 sum_t (c_t - c_bar)^2,   c_t = b_t + x_bar w_t

    with ``s_i = 2 y_i - 1``, ``lam_1 = alpha (1 - relation_ratio)``,
    ``lam_2 = alpha relation_ratio / T``, ``c_t`` the intercepts at the mean of X (``x_bar``,
    over the observed labels) and ``c_bar`` their mean (the last term, only with intercepts
    and more than one task, keeps the intercept of a task that saw one class finite; taken at
    the mean of X, it does not depend on where each column's zero is; the rows are centred
    there, a sparse X implicitly, and ``b`` is returned for X). The W step (for a fixed
    Omega) runs Newton's method with a backtracking line search to a Newton decrement below
    ``1e-3 min(tol, 1e-10)`` times the objective; each Newton system is solved as the
    regressor's W step, with the intercepts eliminated exactly. Stops on the relative
    duality gap, as :func:`solve_task_relation` (the dual point of the common intercept
    shift, see the module docstring).

    Returns
    -------
    W, b, omega, criterion, n_iter
        As :func:`solve_task_relation`.
    """
    problem = Problem(X, Y, mask, task_index=task_index, n_tasks=n_tasks)
    if problem.shared_rows is None and _mostly_zeros(problem.X):
        # fingerprint bits held dense: the products from a sparse copy (see WeightedRows)
        problem = Problem(sp.csr_matrix(problem.X), Y, mask, task_index=task_index,
                          n_tasks=n_tasks)
    # the pulled intercepts are those at the mean of X (``b`` is returned for X)
    design = problem.design(at_mean=fit_intercept and problem.n_tasks > 1)
    y = problem.targets(design)
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("Y must hold 0 / 1 labels on the observed entries.")
    T, d = design.n_tasks, design.n_features
    tasks = design.obs_tasks
    inv_n = 1.0 / design.counts[tasks]
    signs = 2.0 * y - 1.0  # the loss and residuals are taken at the margins s z (see
    # _logistic_loss: to relative precision, also on separable data)
    lam_1, lam_2 = relation_weights(alpha, relation_ratio, T)
    kappa = alpha if (fit_intercept and T > 1) else 0.0
    precision = min(tol, _STAGE_TOL)  # of the Newton steps: as the decrease that ends a stage
    W = np.zeros((T, d))
    if fit_intercept:  # each task's log-odds, a half label of each class added
        rate = (design.segment_sum(y) + 0.5) / (design.counts + 1.0)
        b = np.log(rate / (1.0 - rate))
    else:
        b = np.zeros(T)

    wide = problem.shared_rows is None and _kernel_form(design, d)
    blocks_cache = {} if wide else None  # block Jacobi from the rows until the coupling
    # dominates (the Kronecker sum then)

    def blocks(weight):
        """The loss's Hessian blocks ``X_t^T diag(weight_t) X_t``: from the rows on wide
        data (:class:`WeightedRows`), else formed."""
        return WeightedRows(design, weight) if wide else design.gram(weight)

    def objective(z, W, b, coupling):
        value = _logistic_loss(z, signs, inv_n) + coupling.quadratic(W)
        return value + 0.5 * kappa * float(np.sum((b - b.mean()) ** 2))

    def newton(W, b, coupling):
        z = design.matvec(W) + b[tasks]
        value = objective(z, W, b, coupling)
        for _ in range(newton_max_iter):
            res = -_logistic_residual(z, signs, inv_n)
            weight = _logistic_curvature(z, inv_n)
            grad_W = design.rmatvec(res) + coupling.apply(W)
            H = blocks(weight)
            if fit_intercept:
                grad_b = design.segment_sum(res) + kappa * (b - b.mean())
                dW, db, _ = _solve_coupled(H, coupling, -grad_W, np.zeros_like(W),
                                           c=design.rmatvec(weight),
                                           h=design.segment_sum(weight), kappa=kappa,
                                           r_b=-grad_b, cache=blocks_cache)
                decrement = -float(np.sum(grad_W * dW) + np.sum(grad_b * db))
            else:
                dW, _, _ = _solve_coupled(H, coupling, -grad_W, np.zeros_like(W),
                                          cache=blocks_cache)
                db, decrement = np.zeros(T), -float(np.sum(grad_W * dW))
            dz = design.matvec(dW) + db[tasks]
            if 0.5 * decrement <= 1e-3 * precision * max(abs(value), 1e-300):
                W, b, z = W + dW, b + db, z + dz
                break
            size, slack = 1.0, 1e2 * np.finfo(float).eps * abs(value)
            while size >= 1e-10:
                new_value = objective(z + size * dz, W + size * dW, b + size * db, coupling)
                if new_value <= value - 1e-4 * size * decrement + slack:
                    break
                size *= 0.5
            else:
                break  # no descent left at rounding level
            W, b, z, value = W + size * dW, b + size * db, z + size * dz, new_value
        return W, b, z

    def w_step(W, b, coupling):
        return newton(W, b, coupling)[:2]

    def state(W, b):
        return design.matvec(W) + b[tasks]

    def value(W, b, z):
        value = _logistic_loss(z, signs, inv_n)
        return value + 0.5 * kappa * float(np.sum((b - b.mean()) ** 2))

    def gradient(W, b, z):
        res = -_logistic_residual(z, signs, inv_n)
        G_b = design.segment_sum(res) + kappa * (b - b.mean()) if fit_intercept else None
        return design.rmatvec(res), G_b

    def gap(W, b, sigma, z=None):
        """The relative duality gap at ``(W, b)``, from the dual point of ``(W, b + c)``
        with ``c`` the common intercept shift that makes it feasible (module docstring)."""
        z = state(W, b) if z is None else z
        primal_loss = value(W, b, z)
        shift = _common_shift(z, y, inv_n) if fit_intercept else 0.0
        if shift is None:
            return np.inf
        excess = 0.0
        if shift:
            z = z + shift
            excess = primal_loss - value(W, b, z)  # the pull of b is the same at b + c
        theta = _logistic_residual(z, signs, inv_n)
        if kappa:  # the pull's Fenchel-Young gap, ||kappa (b - b_bar) - u||^2 / (2 kappa)
            u = design.segment_sum(theta)
            excess += 0.5 * float(np.sum((kappa * (b - b.mean()) - (u - u.mean())) ** 2)) / kappa
        return _relative_gap(primal_loss, excess, W, design.rmatvec(theta), sigma, lam_1,
                             lam_2)

    @cache  # the stall test and the polish both ask
    def curvature():
        """A quarter of the largest diagonal entry of the tasks' second moments, and of the
        intercepts' block (``1 / 4 + kappa``): a lower bound of the Lipschitz constant."""
        top = 0.25 * _diagonal_max(blocks(inv_n))
        return max(top, 0.25 + kappa) if fit_intercept else top

    def majorized(y, new, G_W, G_b, L):
        """The sufficient-decrease test on the values (sums of positive terms: their rounding
        stays within the margin ``1e-14`` of the value)."""
        step = [new[0] - y[0]] + ([] if G_b is None else [new[1] - y[1]])
        current = value(*y)
        model = current + sum(float(np.vdot(G, D)) + 0.5 * L * float(np.vdot(D, D))
                              for G, D in zip((G_W, G_b), step))
        return value(*new) <= model + 1e-14 * abs(current)

    def floor(W, b, sigma, z=None):
        """The gap's rounding floor (:func:`_rounding_floor`): ``V = X^T theta`` moves by at
        most ``eps (|H| |W| + |c| |b|)`` when ``(W, b)`` moves by its rounding, ``H_t`` the
        loss's Hessian in ``w_t`` and ``c_t`` its column for ``b_t``."""
        z = state(W, b) if z is None else z
        weight = _logistic_curvature(z, inv_n)
        bound = _block_products(blocks(weight), W, absolute=True)
        if fit_intercept:
            bound += np.abs(design.rmatvec(weight)) * np.abs(b)[:, None]
        change = np.finfo(float).eps * float(np.linalg.norm(bound))
        return _rounding_floor(value(W, b, z), W, sigma, lam_1, lam_2, change)

    smooth = _SmoothPart(state, gradient, gap, curvature, majorized, floor)
    W, b, *rest = _alternate(w_step, lambda W, b: value(W, b, state(W, b)), smooth, W, b,
                             lam_1, lam_2, tol, max_iter)
    return (W, b - W @ design.x_origin, *rest)
