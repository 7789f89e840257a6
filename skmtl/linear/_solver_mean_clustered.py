"""Solvers of mean-clustered multi-task learning: every task vector is pulled towards the mean.

The penalty of Evgeniou & Pontil (2004), "Regularized multi-task learning",

    alpha * (||w_bar||^2 + cluster_strength / T * sum_t ||w_t - w_bar||^2),
    w_bar = (1 / T) * sum_t w_t,

on top of the per-task mean loss of the observed rows (squared loss or binary logistic loss),
with an unpenalised intercept per task. Writing ``c = cluster_strength``, the penalty is also

    alpha * ((1 - c) ||w_bar||^2 + c / T * sum_t ||w_t||^2),

a quadratic form in ``W`` whose eigenvalues are ``2 alpha / T`` (the common direction, all
``w_t`` equal) and ``2 alpha c / T`` (the deviations, ``w_bar = 0``): it is positive definite,
so the problem strictly convex, exactly when ``alpha > 0`` and ``c > 0``.

Solvers (plain functions on wide ``(X, Y, mask)`` or long ``(X, y, task_index)`` data, reused
by the estimators and by the CV variants). Their core works from the observed rows of each task:
the mask gives them for wide data, sorting ``task_index`` for long data, so a long fit never
builds an ``(n_samples, n_tasks)`` array.

- :func:`solve_mean_clustered`: squared loss, exact. Every task's intercept is eliminated by
  centring its observed rows; with ``A_t = X_t^T X_t / n_t`` and ``r_t = X_t^T y_t / n_t``
  (centred), the normal equations are ``(A_t + lam I) w_t + mu w_bar = r_t`` with
  ``lam = 2 alpha c / T`` and ``mu = 2 alpha (1 - c) / T``. Eliminating the ``w_t`` leaves one
  d x d system for ``w_bar`` (see ``penalty.solve``); cost ``O(sum_t n_t d^2 + T d^3)``.
  When all tasks observe the same rows (shared X), ``w_bar`` and the deviations ``w_t - w_bar``
  are two ridge fits from one SVD of X.
- :class:`MeanClusteredLeastSquares`: the same, with the decompositions cached so that a grid
  of ``(alpha, cluster_strength)`` costs one factorisation.
- :func:`solve_mean_clustered_logistic`: logistic loss, Newton's method whose every step solves
  the same structured system (intercepts inside the per-task blocks) with a backtracking line
  search; it stops on the Newton decrement.
"""


import warnings
from typing import NamedTuple

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg
from numba import njit
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning

from skmtl.linear._designs import (
    GroupedDense,
    Problem,
    ShiftedSparse,
    SparseDesign,
    shifted_row_blocks,
)
from skmtl.linear._linalg import (
    _SYRK_WORK,
    _blas_threads_for,
    _mirror_lower,
    _pcg,
    _syrk_lower,
)
from skmtl.linear._penalties import MeanClusteredPenalty
from skmtl.utils._docstring import Substitution

__all__ = ["MeanClusteredLeastSquares", "solve_mean_clustered", "solve_mean_clustered_logistic"]

# The long-format parameters of the solvers, written once.
_LONG_FORMAT = """
    task_index : ndarray of int of shape (n_samples,), default=None
        Long format: each row's task position; ``Y`` is then the 1-D target of each row and
        ``mask`` must be None. The rows of each task are found by sorting ``task_index``
        (no ``(n_samples, n_tasks)`` array is built).
    n_tasks : int, default=None
        Long format: the number of tasks, default ``task_index.max() + 1``. Every task needs
        a row.
    """


def _task_moments(design, y, fit_intercept):
    """Centred per-task moments ``A_t = X_t^T X_t / n_t``, ``r_t = X_t^T y_t / n_t``, means.

    Dense per-task rows (:class:`~._designs.GroupedDense`) in one compiled pass over each
    stack of tasks, no centred copy of the rows (:func:`_moments_stack`); otherwise through
    the design's products.
    """
    if isinstance(design, GroupedDense):
        return _stack_moments(design, y, fit_intercept)
    inv_n = 1.0 / design.counts[design.obs_tasks]
    scale = 1.0 / design.counts[:, None, None]
    if not fit_intercept:
        zeros = np.zeros((design.n_tasks, design.n_features))
        A = design.gram() * scale
        return A, design.rmatvec(y * inv_n), zeros, np.zeros(design.n_tasks)
    x_mean = design.rmatvec(inv_n)
    y_mean = design.segment_sum(y * inv_n)
    y_centred = (y - y_mean[design.obs_tasks]) * inv_n
    centred = design.centered(x_mean)
    if centred is not None:  # dense: centre the rows, then multiply
        A = centred.gram()
        A *= scale
        return A, centred.rmatvec(y_centred), x_mean, y_mean
    A = design.gram() * scale - x_mean[:, :, None] * x_mean[:, None, :]
    return A, design.rmatvec(y_centred), x_mean, y_mean


def _stack_moments(design, y, fit_intercept):
    """:func:`_task_moments` of a :class:`~._designs.GroupedDense` design, stack by stack."""
    T, d = design.n_tasks, design.n_features
    out = np.empty((T, d, d)), np.empty((T, d)), np.empty((T, d)), np.empty(T)
    y_slots = np.append(np.asarray(y, dtype=np.float64), 0.0)
    counts = design.counts.astype(np.int64)
    for tasks, pos, _, stack in design.stacks():  # every task is in one stack
        if pos.shape[1] * d * d < _SYRK_WORK:
            _moments_stack(stack, y_slots[pos], tasks.astype(np.int64), counts, fit_intercept,
                           *out)
            continue
        # large tasks: a BLAS rank-n_t update each (the compiled loops ran at about 2 GFlop/s:
        # 16 s on 10,000 MoleculeACE molecules, 2,048 bits)
        A, r, x_mean, y_mean = out
        F, u = np.empty(stack.shape[1:]), np.empty(stack.shape[1])
        with _blas_threads_for(d):
            for k, t in enumerate(tasks):
                n = counts[t]
                y_mean[t] = _center_task(stack[k], y_slots[pos[k]], n, fit_intercept, F, u,
                                         x_mean[t])
                _syrk_lower(A[t], F[:n])
                _mirror_lower(A[t][None])  # (A[t] a view: in place)
                r[t] = u[:n] @ F[:n]
    return out


# -- least squares -----------------------------------------------------------------------------
@Substitution(long_format=_LONG_FORMAT)
class MeanClusteredLeastSquares:
    """Exact least-squares solutions for any ``(alpha, cluster_strength)`` from one decomposition.

    Minimises, over ``W`` (n_tasks, n_features) and per-task intercepts ``b``,

        sum_t 1 / (2 n_t) ||y_t - X_t w_t - b_t||^2
        + alpha * (||w_bar||^2 + cluster_strength / T * sum_t ||w_t - w_bar||^2)

    over the observed rows of each task. The data are reduced once to centred per-task moments
    ``A_t = X_t^T X_t / n_t`` and ``r_t = X_t^T y_t / n_t``, eigendecomposed once, and every
    :meth:`solve` is then a few matrix products:

    - shared X (every task observes the same rows; e.g. a wide Y without missing labels): one
      SVD of the centred X (dense) or eigendecomposition of its Gram matrix (sparse),
      ``A = V diag(e) V^T``. With ``q_t = V^T r_t`` and ``q_bar`` their mean, the solution is
      ``w_t = V (q_bar / (e + 2 alpha / T) + (q_t - q_bar) / (e + 2 alpha c / T))``: the
      mean is a ridge fit of the mean target with penalty ``2 alpha / T`` and the deviations
      are ridge fits with penalty ``2 alpha c / T``. Cost per solve ``O(d T min(n, d))``.
    - otherwise: one eigendecomposition per task, ``A_t = V_t diag(e_t) V_t^T``, then the d x d
      system of ``penalty.solve`` for ``w_bar``. Cost per solve ``O(T d^3)`` in matrix
      products and one d x d Cholesky factorisation. Where tasks have fewer rows than
      features (dense X, from 128 features), a task with ``n_t < d`` rows keeps the thin SVD of
      its centred rows instead (``V_t`` d x n_t; ``(A_t + lam I)^-1`` is ``1 / lam`` off their
      span): memory of the rows, not ``T d^2``, and a solve ``O(sum_t n_t d^2 + d^3)``; from
      512 features, when every task is thin, the d x d system by conjugate gradients on the
      rows, ``O(sum_t n_t d)`` an iteration, each solve started from the last one of the
      same ``cluster_strength`` (MoleculeACE: 3.3 times faster over a grid; see
      ``_coupled``). A sparse X's thin tasks keep their rows sparse and the eigenvectors of
      their ``n_t x n_t`` Gram matrices instead (:class:`_SparseThinTasks`): memory ``sum_t
      n_t^2`` and the sparse rows, not the dense ``V_t``.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Design; sparse X is never densified (the d x d moments of its tasks with at
        least ``d`` rows are).
    Y : ndarray of shape (n_samples, n_tasks) or (n_samples,)
        Targets; values where ``mask`` is False are never read. With ``task_index``, the
        target of each row.
    mask : ndarray of bool of shape (n_samples, n_tasks), default=None
        Observed labels; None means all observed.
    fit_intercept : bool, default=True
        Fit an unpenalised intercept per task.
    {long_format}

    Attributes
    ----------
    shared_rows : bool
        Whether every task observes the same rows (the single-decomposition path).

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.linear._solver_mean_clustered import MeanClusteredLeastSquares
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> Y = np.column_stack([X[:, 0], 3 * X[:, 0]])
    >>> path = MeanClusteredLeastSquares(X, Y)
    >>> W, b = path.solve(alpha=0.1, cluster_strength=1.0)  # independent ridge fits
    >>> W.round(2)
    array([[0.93],
           [2.78]])
    >>> W, b = path.solve(alpha=0.1, cluster_strength=1e6)  # pooled: one shared slope
    >>> W.round(2)
    array([[1.85],
           [1.85]])
    """

    def __init__(self, X, Y, mask=None, *, fit_intercept=True, task_index=None, n_tasks=None):
        problem = Problem(X, Y, mask, task_index=task_index, n_tasks=n_tasks)
        self._setup(problem.n_tasks, problem.X.shape[1], fit_intercept,
                    problem.shared_rows is not None)
        if self.shared_rows:
            self._decompose_shared(problem.X[problem.shared_rows], problem.shared_targets())
        else:
            design = problem.design()
            self._decompose_tasks(design, problem.targets(design))

    @classmethod
    def _of_design(cls, design, y, fit_intercept):
        """The path of a per-task design (not shared rows) and its targets, as
        :func:`solve_mean_clustered` has built them (not a second design beside it)."""
        path = cls.__new__(cls)
        path._setup(design.n_tasks, design.n_features, fit_intercept, False)
        path._decompose_tasks(design, y)
        return path

    def _setup(self, n_tasks, n_features, fit_intercept, shared_rows):
        self.fit_intercept = fit_intercept
        self.n_tasks, self.n_features = n_tasks, n_features
        self.shared_rows = shared_rows
        self._last_v = {}  # cluster_strength -> the last CG solution (the next one's start)

    def _decompose_shared(self, X, Y):
        n_rows = X.shape[0]
        if self.fit_intercept:
            x_mean = np.asarray(X.mean(axis=0)).ravel()
            y_mean = Y.mean(axis=0)
            Y = Y - y_mean
        else:
            x_mean, y_mean = np.zeros(X.shape[1]), np.zeros(Y.shape[1])
        if sp.issparse(X):
            A = (X.T @ X).toarray() / n_rows - np.outer(x_mean, x_mean)
            e, V = scipy.linalg.eigh(A, check_finite=False)
            Q = V.T @ (np.asarray(X.T @ Y) / n_rows)
        else:
            U, s, Vt = _svd(X - x_mean)
            V, e = Vt.T, s**2 / n_rows
            Q = (s[:, None] * (U.T @ Y)) / n_rows
        self._V, self._e, self._Q = V, np.maximum(e, 0.0), Q
        self._x_mean, self._y_mean = x_mean, y_mean

    def _decompose_tasks(self, design, y):
        if _kernel_form(design, self.n_features):  # tasks with fewer rows than features
            if isinstance(design, SparseDesign):  # their rows left sparse
                space = _sparse_row_space(design, y, self.fit_intercept)
                self._x_mean, self._y_mean, self._square = (space.x_mean, space.y_mean,
                                                            space.square)
                self._thin = None if space.thin is None else _SparseThinTasks(design, y, space)
                return
            self._x_mean, self._y_mean, self._square, thin = _row_space_decomposition(
                design, y, self.fit_intercept)
            self._thin = None if thin is None else _ThinTasks(*thin)
            return
        A, r, self._x_mean, self._y_mean = _task_moments(design, y, self.fit_intercept)
        self._square = _eigen_block(slice(None), A, r)
        self._thin = None

    def solve(self, alpha, cluster_strength):
        """Coefficients and intercepts for one ``(alpha, cluster_strength)``.

        Parameters
        ----------
        alpha : float
            Regularisation strength, > 0.
        cluster_strength : float
            Weight of the deviations from the mean task, > 0 (1: independent ridge per task;
            large: one shared coefficient vector).

        Returns
        -------
        W : ndarray of shape (n_tasks, n_features)
            Task coefficients.
        b : ndarray of shape (n_tasks,)
            Task intercepts (zeros when ``fit_intercept=False``).
        """
        penalty = MeanClusteredPenalty(alpha, cluster_strength)
        T = self.n_tasks
        lam, _ = penalty.curvatures(T)
        if self.shared_rows:
            q_bar = self._Q.mean(axis=1, keepdims=True)
            coef = (q_bar / (self._e + 2.0 * alpha / T)[:, None]
                    + (self._Q - q_bar) / (self._e + lam)[:, None])
            W = (self._V @ coef).T
        else:
            with _blas_threads_for(self.n_features):
                W = self._solve_tasks(penalty)
        x_mean = np.broadcast_to(self._x_mean, W.shape)
        return W, self._y_mean - np.einsum("td,td->t", W, x_mean)

    def _solve_tasks(self, penalty):
        c = penalty.cluster_strength
        lam, mu = penalty.curvatures(self.n_tasks)
        d = self.n_features
        W = np.empty((self.n_tasks, d))
        # M_t r_t, M_t = (A_t + lam I)^-1 = V_t diag(g_t) V_t^T (+ 1 / lam off the rows' span)
        if self._square is not None:
            tasks, Vt, e, q = self._square
            W[tasks] = np.matmul((q / (e + lam))[:, None, :], Vt)[:, 0]
        if self._thin is not None:
            W[self._thin.tasks] = self._thin.ridge(lam)
        if c == 1.0:
            return W
        v = self._coupled(c, lam, c * W.sum(axis=0))
        if self._square is not None:  # W_t -= mu M_t v
            tasks, Vt, e, _ = self._square
            p = np.matmul(Vt, v)  # V_t^T v
            W[tasks] -= mu * np.matmul((p / (e + lam))[:, None, :], Vt)[:, 0]
        if self._thin is not None:
            W[self._thin.tasks] -= mu * self._thin.shifted_solve(v, lam)
        return W

    def _coupled(self, c, lam, rhs):
        """``v = ((c - 1) C + T I)^-1 rhs`` with ``C = sum_t A_t M_t = sum_t V_t diag(h_t)
        V_t^T``, ``h_t = e_t / (e_t + lam)``.

        From ``_CG_MIN_FEATURES`` features, where the tasks are thin (the wide data of
        :func:`_row_space_decomposition`), by conjugate gradients on products with the rows
        ``V_t^T`` (``O(N d)`` an iteration over the ``N`` rows; the system's eigenvalues lie
        between ``T min(1, c)`` and ``T max(1, c)``), started from the last solution of the
        same ``cluster_strength`` (the previous alpha of a grid), to a residual of
        ``_CG_RTOL`` relative to ``rhs``; otherwise, or when CG has not converged within
        ``d / 4`` iterations (a direct solve's work), ``C`` is formed (``O(N d^2)``) and
        factored (``O(d^3)``). On an inner fold of MoleculeACE (7,255 rows, 2,048 features):
        12 to 140 iterations, 0.3 to 2.8 s, against about 3 s for the direct solve.
        """
        T, d = self.n_tasks, self.n_features
        thin = self._thin
        if d >= _CG_MIN_FEATURES and self._square is None:
            budget = max(d // 4, 50)
            v, n_iter = _pcg(lambda x, _: T * x + (c - 1.0) * thin.coupling(x, lam),
                             lambda r: (r.copy(), None), rhs, self._last_v.get(c, np.zeros(d)),
                             _CG_RTOL, budget)
            if n_iter < budget:
                self._last_v[c] = v
                return v
        C = np.zeros((d, d))
        if self._square is not None:
            _, Vt, e, _ = self._square
            G = (Vt * np.sqrt(e / (e + lam))[..., None]).reshape(-1, d)
            C += G.T @ G
        if thin is not None:
            thin.add_gram(C, lam)
        system = (c - 1.0) * 0.5 * (C + C.T)
        system[np.arange(d), np.arange(d)] += T
        return scipy.linalg.cho_solve(scipy.linalg.cho_factor(system), rhs)


class _ThinTasks:
    """The tasks with fewer rows than features of :class:`MeanClusteredLeastSquares`, from
    the dense rows of their thin SVDs (:func:`_row_space_decomposition`): ``A_t = V_t
    diag(e_t) V_t^T``, ``q_t = V_t^T r_t``."""

    def __init__(self, tasks, rows, Vt, e, q):
        self.tasks, self._rows, self._Vt, self._e, self._q = tasks, rows, Vt, e, q

    def ridge(self, lam):
        """``(A_t + lam I)^-1 r_t`` for each of the tasks, (T', d)."""
        return self._rows(self._q / (self._e + lam)) @ self._Vt

    def shifted_solve(self, v, lam):
        """``(A_t + lam I)^-1 v`` for each of the tasks (the part of ``v`` orthogonal to a
        task's rows is divided by ``lam``)."""
        p = self._Vt @ v
        return self._rows(p / (self._e + lam)) @ self._Vt + (v - self._rows(p) @ self._Vt) / lam

    def coupling(self, x, lam):
        """``sum_t A_t (A_t + lam I)^-1 x``."""
        return (self._e / (self._e + lam) * (self._Vt @ x)) @ self._Vt

    def add_gram(self, C, lam):
        """``C += sum_t A_t (A_t + lam I)^-1`` (d x d)."""
        G = self._Vt * np.sqrt(self._e / (self._e + lam))[:, None]
        C += G.T @ G


class _SparseThinTasks:
    """:class:`_ThinTasks` from a sparse X's rows, never densified together: each task's
    centred, scaled rows ``F_t = (X_t - 1 m_t^T) / sqrt(n_t)`` (``A_t = F_t^T F_t``, ``r_t =
    F_t^T u_t``) and the eigendecomposition ``F_t F_t^T = U_t diag(e_t) U_t^T`` (n_t x n_t,
    :func:`_sparse_row_space`). With ``K_t(g) = U_t diag(g(e_t)) U_t^T``, the push-through
    identities give, without ``V_t``::

        (A_t + lam I)^-1 r_t       = F_t^T K_t(1 / (e + lam)) u_t
        (A_t + lam I)^-1 v         = v / lam - F_t^T K_t(1 / (lam (e + lam))) F_t v
        A_t (A_t + lam I)^-1       = F_t^T K_t(1 / (e + lam)) F_t

    each a product with the sparse rows and one with the block-diagonal ``U``. Memory: X's
    rows of these tasks and ``sum_t n_t^2``, where the thin SVDs' ``V_t^T`` were X dense
    (5,000 x 2,000 at 1%: 148 times the input for MeanClusteredRegressorCV, now 24)."""

    def __init__(self, design, y, space):
        tasks, U, e = space.thin
        counts = design.counts.astype(np.int64)
        starts = np.cumsum(counts) - counts
        obs = np.concatenate([np.arange(starts[t], starts[t] + counts[t]) for t in tasks])
        self.tasks = tasks
        every = len(obs) == design._X_obs.shape[0]
        self._X = design._X_obs if every else design._X_obs[obs]
        own = design.obs_tasks[obs]
        self._x_mean = space.x_mean[tasks]  # (T', d)
        position = np.zeros(design.n_tasks, dtype=np.intp)
        position[tasks] = np.arange(len(tasks))
        self._owner = position[own]  # each row's place among these tasks
        self._scale = 1.0 / np.sqrt(counts[own])
        self._indptr = np.append(0, np.cumsum(counts[tasks]))
        self._U = _block_diagonal(U, self._indptr)
        self._e = np.concatenate(e)
        u = (np.asarray(y, dtype=np.float64)[obs] - space.y_mean[own]) * self._scale
        self._p = self._U.T @ u  # U_t^T u_t

    def _forward(self, x):
        """``F_t x`` for every task, stacked (one shared ``x``)."""
        return (self._X @ x - (self._x_mean @ x)[self._owner]) * self._scale

    def _kernel(self, z, g):
        return self._U @ (g * (self._U.T @ z))

    def _back(self, z):
        """``F_t^T z_t`` for every task, (T', d)."""
        z = z * self._scale
        rows = sp.csr_array((z, np.arange(len(z)), self._indptr),
                            shape=(len(self.tasks), len(z)))
        sums = np.bincount(self._owner, weights=z, minlength=len(self.tasks))
        return (rows @ self._X).toarray() - sums[:, None] * self._x_mean

    def ridge(self, lam):
        return self._back(self._U @ (self._p / (self._e + lam)))

    def shifted_solve(self, v, lam):
        return v / lam - self._back(self._kernel(self._forward(v),
                                                 1.0 / (lam * (self._e + lam))))

    def coupling(self, x, lam):
        z = self._kernel(self._forward(x), 1.0 / (self._e + lam)) * self._scale
        sums = np.bincount(self._owner, weights=z, minlength=len(self.tasks))
        return self._X.T @ z - sums @ self._x_mean  # sum_t F_t^T z_t

    def add_gram(self, C, lam):
        """One task's dense rows at a time (``n_t d``)."""
        data, g = self._U.data, 1.0 / np.sqrt(self._e + lam)
        for k, (start, stop) in enumerate(zip(self._indptr[:-1], self._indptr[1:],
                                              strict=True)):
            n = stop - start
            F = (self._X[start:stop].toarray() - self._x_mean[k]) * self._scale[start:stop, None]
            U = data[self._U.indptr[start]:self._U.indptr[stop]].reshape(n, n)
            G = (U.T @ F) * g[start:stop, None]
            C += G.T @ G


def _block_diagonal(blocks, indptr):
    """The CSR matrix of the square ``blocks`` on the diagonal (``indptr`` their
    boundaries), written block by block: 12 bytes an entry, where scipy's ``block_diag``
    goes through 64-bit coordinates."""
    sizes = np.diff(indptr)
    ends = np.cumsum(sizes * sizes)
    total = int(ends[-1]) if len(ends) else 0
    index = np.int32 if total < np.iinfo(np.int32).max else np.int64  # (scipy's own rule)
    data, columns = np.empty(total), np.empty(total, dtype=index)
    for block, start, size, end in zip(blocks, indptr[:-1], sizes, ends, strict=True):
        data[end - size * size:end] = block.ravel()
        columns[end - size * size:end] = np.tile(np.arange(start, start + size, dtype=index),
                                                 size)
    row_pointer = np.append(0, np.cumsum(np.repeat(sizes, sizes))).astype(index)
    return sp.csr_array((data, columns, row_pointer), shape=(indptr[-1], indptr[-1]))


# Conjugate gradients for the coupled system of MeanClusteredLeastSquares from this many
# features (thin tasks), to this residual relative to the right-hand side
_CG_MIN_FEATURES, _CG_RTOL = 512, 1e-13


def _eigen_block(tasks, A, r):
    """``(tasks, V_t^T, e_t, V_t^T r_t)`` of the eigendecompositions ``A_t = V_t diag(e_t)
    V_t^T`` of a stack of moments."""
    e, V = np.linalg.eigh(A)
    Vt = V.transpose(0, 2, 1)
    return tasks, Vt, np.maximum(e, 0.0), np.matmul(Vt, r[..., None])[..., 0]


def _row_space_decomposition(design, y, fit_intercept):
    """``(x_mean, y_mean, square, thin)`` of :class:`MeanClusteredLeastSquares` from the
    tasks' rows: the moments of a task with fewer rows than features are never formed.

    Each task is centred and scaled, ``F_t``, ``u_t`` as in :func:`_least_squares_stacks`
    (``A_t = F_t^T F_t``, ``r_t = F_t^T u_t``). A task with ``n_t < d`` rows keeps the thin
    SVD ``F_t = U_t S_t V_t^T`` (``V_t`` d x n_t): ``A_t = V_t diag(e_t) V_t^T`` with ``e_t =
    s_t^2``, ``q_t = V_t^T r_t = S_t U_t^T u_t``, and ``(A_t + lam I)^-1`` is ``1 / lam`` on
    the orthogonal complement of its rows. ``thin`` holds these tasks, a function ``rows(z)``
    (the sparse matrix summing per-row weights ``z`` into their tasks), and every such task's
    rows of ``V_t^T``, ``e_t``, ``q_t`` one after the other; ``square`` the eigendecompositions
    of the other tasks' moments (:func:`_eigen_block`), each None when no task is of its kind.
    Memory: the tasks' rows once, against ``T d^2`` for the moments and as much for their
    eigenvectors (30 MoleculeACE targets of 2,048 bits: 1 GB each).
    """
    T, d = design.n_tasks, design.n_features
    x_mean, y_mean = np.zeros((T, d)), np.zeros(T)
    y_slots = np.append(np.asarray(y, dtype=np.float64), 0.0)
    counts = design.counts.astype(np.int64)
    thin = np.flatnonzero(counts < d)
    square = np.flatnonzero(counts >= d)
    starts = np.zeros(T + 1, dtype=np.int64)
    starts[thin + 1] = counts[thin]
    starts = np.cumsum(starts)
    Vt_rows, e_rows, q_rows = np.empty((starts[-1], d)), np.empty(starts[-1]), np.empty(starts[-1])
    A, r = np.empty((square.size, d, d)), np.empty((square.size, d))
    slot = np.full(T, -1)
    slot[square] = np.arange(square.size)
    for tasks, pos, _, stack in design.stacks():
        F, u = np.empty(stack.shape[1:]), np.empty(stack.shape[1])
        for k, t in enumerate(tasks):
            n = counts[t]
            y_mean[t] = _center_task(stack[k], y_slots[pos[k]], n, fit_intercept, F, u,
                                     x_mean[t])
            if n >= d:
                A[slot[t]] = F[:n].T @ F[:n]
                r[slot[t]] = u[:n] @ F[:n]
                continue
            # F^T = V S U^T: LAPACK's SVD of the tall transpose is the faster (0.49 against
            # 0.65 s for a MoleculeACE target's 982 rows)
            V, s, Ut = _svd(F[:n].T)
            part = slice(starts[t], starts[t + 1])
            Vt_rows[part], e_rows[part], q_rows[part] = V.T, s**2, s * (Ut @ u[:n])
    square_block = _eigen_block(square, A, r) if square.size else None
    if not thin.size:
        return x_mean, y_mean, square_block, None
    columns, indptr = np.arange(starts[-1]), np.append(0, np.cumsum(counts[thin]))

    def rows(z):
        return sp.csr_array((z, columns, indptr), shape=(thin.size, starts[-1]))

    return x_mean, y_mean, square_block, (thin, rows, Vt_rows, e_rows, q_rows)


class SparseRowSpace(NamedTuple):
    """:func:`_sparse_row_space`: a sparse design's tasks as :func:`_row_space_decomposition`
    gives them, the thin tasks' rows left sparse.

    ``x_mean`` (T, d), ``y_mean`` (T,), ``r`` (T, d) ``= F_t^T u_t`` for every task;
    ``square`` the :func:`_eigen_block` of the tasks with ``n_t >= d`` rows (or None);
    ``thin`` the others, ``(tasks, U, e)`` with each such task's eigendecomposition ``F_t
    F_t^T = U_t diag(e_t) U_t^T`` (n_t x n_t: ``F_t = U_t S_t V_t^T`` with ``e_t = s_t^2``,
    whose ``V_t = F_t^T U_t S_t^-1`` is never formed), or None; ``diagonal`` (T, d) the
    diagonals of the ``A_t``."""

    x_mean: np.ndarray
    y_mean: np.ndarray
    r: np.ndarray
    square: tuple | None
    thin: tuple | None
    diagonal: np.ndarray


def _sparse_row_space(design, y, fit_intercept):
    """:class:`SparseRowSpace` of a :class:`~._designs.SparseDesign`: the centred, scaled
    rows ``F_t = (X_t - 1 m_t^T) / sqrt(n_t)`` of :func:`_row_space_decomposition` kept
    as X's sparse rows and ``m_t``. A task with ``n_t < d`` rows keeps the eigendecomposition
    of its n_t x n_t Gram matrix ``F_t F_t^T = (X_t X_t^T - a 1^T - 1 a^T + |m_t|^2) / n_t``
    (``a = X_t m_t``, from the sparse product), not the dense (n_t, d) ``V_t^T``: memory
    ``sum_t n_t^2`` against ``n_obs d`` (all of X, dense, on long data); a task with more rows
    is densified alone for its d x d moments. The Gram matrix's centring loses the digits of
    a column whose mean within the task far exceeds its spread there: its small eigenvalues
    are then exact to ``eps |X_t|^2`` instead of ``eps |F_t|^2`` (they only precondition:
    the products with the ``A_t`` are taken from the sparse rows)."""
    T, d = design.n_tasks, design.n_features
    X, tasks_of = design._X_obs, design.obs_tasks
    counts = design.counts.astype(np.int64)
    stops = np.cumsum(counts)
    starts = stops - counts
    inv_n = 1.0 / counts[tasks_of]
    y = np.asarray(y, dtype=np.float64)
    if fit_intercept:
        x_mean = design.rmatvec(inv_n)
        y_mean = design.segment_sum(y * inv_n)
    else:
        x_mean, y_mean = np.zeros((T, d)), np.zeros(T)
    scale = np.sqrt(inv_n)
    u = (y - y_mean[tasks_of]) * inv_n  # u_t / sqrt(n_t), so F_t^T u_t = (X_t^T - m_t 1^T) u
    r = design.rmatvec(u) - design.segment_sum(u)[:, None] * x_mean
    diagonal = np.maximum((design.B.power(2).T @ inv_n).reshape(T, d) - x_mean**2, 0.0)
    thin = np.flatnonzero(counts < d)
    square = np.flatnonzero(counts >= d)
    A = np.empty((square.size, d, d))
    for k, t in enumerate(square):  # (at least d rows: the moments are no larger)
        F = (X[starts[t]:stops[t]].toarray() - x_mean[t]) * scale[starts[t]]
        A[k] = F.T @ F
    U, e = [], []
    for t in thin:
        rows = X[starts[t]:stops[t]]
        K = (rows @ rows.T).toarray()
        if fit_intercept:
            a = rows @ x_mean[t]
            K -= a[:, None]
            K -= a
            K += x_mean[t] @ x_mean[t]
        K /= counts[t]
        e_t, U_t = scipy.linalg.eigh(K, check_finite=False)
        U.append(U_t)
        e.append(np.maximum(e_t, 0.0))
    return SparseRowSpace(x_mean, y_mean, r,
                          _eigen_block(square, A, r[square]) if square.size else None,
                          (thin, U, e) if thin.size else None, diagonal)


def _svd(X):
    try:
        return scipy.linalg.svd(X, full_matrices=False, check_finite=False)
    except np.linalg.LinAlgError:  # gesdd failed to converge: the slower, robust driver
        return scipy.linalg.svd(X, full_matrices=False, check_finite=False,
                                lapack_driver="gesvd")


@Substitution(long_format=_LONG_FORMAT)
def solve_mean_clustered(X, Y, mask, alpha, cluster_strength, *, fit_intercept=True,
                         task_index=None, n_tasks=None):
    """Exact solution of the mean-clustered least-squares problem.

    Minimises over ``W`` (n_tasks, n_features) and ``b`` (n_tasks,)

        sum_t 1 / (2 n_t) ||y_t - X_t w_t - b_t||^2
        + alpha * (||w_bar||^2 + cluster_strength / T * sum_t ||w_t - w_bar||^2)

    where ``X_t, y_t`` are the ``n_t`` observed rows of task t and ``w_bar`` the mean of the
    ``w_t``. Shared X (all tasks observe the same rows): two ridge fits from one SVD (see
    :class:`MeanClusteredLeastSquares`). Otherwise the per-task moments, one batch of T
    d x d Cholesky inverses and one d x d system (``penalty.solve``):
    ``O(sum_t n_t d^2 + T d^3)``. To solve for many parameter values, use
    :class:`MeanClusteredLeastSquares`.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Design.
    Y : ndarray of shape (n_samples, n_tasks) or (n_samples,)
        Targets; values where ``mask`` is False are never read. With ``task_index``, the
        target of each row.
    mask : ndarray of bool of shape (n_samples, n_tasks) or None
        Observed labels; None means all observed.
    alpha : float
        Regularisation strength, > 0.
    cluster_strength : float
        > 0; 1 is independent ridge per task, large values one shared coefficient vector.
    fit_intercept : bool, default=True
        Fit an unpenalised intercept per task.
    {long_format}

    Returns
    -------
    W : ndarray of shape (n_tasks, n_features)
        Task coefficients.
    b : ndarray of shape (n_tasks,)
        Task intercepts.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.linear._solver_mean_clustered import solve_mean_clustered
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> Y = np.array([[0.0, np.nan], [1.0, 3.0], [2.0, np.nan], [3.0, 9.0]])
    >>> W, b = solve_mean_clustered(X, Y, ~np.isnan(Y), 1e-6, 1.0)
    >>> W.round(3), b.round(3)
    (array([[1.],
           [3.]]), array([0., 0.]))

    The same observations in long format, one row per label with its task:

    >>> rows, tasks = np.nonzero(~np.isnan(Y))
    >>> W_long, b_long = solve_mean_clustered(X[rows], Y[rows, tasks], None, 1e-6, 1.0,
    ...                                       task_index=tasks)
    >>> bool(np.allclose(W_long, W) and np.allclose(b_long, b))
    True
    """
    MeanClusteredPenalty(alpha, cluster_strength)  # validates them first
    problem = Problem(X, Y, mask, task_index=task_index, n_tasks=n_tasks)
    if problem.shared_rows is not None:  # two ridge fits from one SVD
        return MeanClusteredLeastSquares(
            problem.X, Y, mask, fit_intercept=fit_intercept, task_index=task_index,
            n_tasks=n_tasks).solve(alpha, cluster_strength)
    design = problem.design()
    if (cluster_strength != 1.0 and isinstance(design, SparseDesign)
            and _kernel_form(design, design.n_features)):
        # thin tasks of a sparse X, coupled: their rows stay sparse (_SparseThinTasks), where
        # the compiled stacks keep every task's rows dense for the coupled solve (5,000 x
        # 2,000 at 1%, 20 tasks: 147 times the input, against 22; independent ridge fits
        # keep no rows there)
        return MeanClusteredLeastSquares._of_design(
            design, problem.targets(design), fit_intercept).solve(alpha, cluster_strength)
    return _least_squares_tasks(design, problem.targets(design), alpha, cluster_strength,
                                fit_intercept)


def _least_squares_tasks(design, y, alpha, cluster_strength, fit_intercept):
    """The general (per-task rows) least-squares path: moments, then one coupled solve.

    ``y`` holds the targets in the design's observation order. Dense rows, and a sparse X's
    rows on wide data (:func:`_kernel_form`, densified chunk by chunk), go through
    :func:`_least_squares_stacks` (compiled loops over the tasks); other sparse X, and the
    rare dense problem whose factorisations break down numerically, through the per-task
    moments and ``penalty.solve``.
    """
    if isinstance(design, GroupedDense) or _kernel_form(design, design.n_features):
        solution = _least_squares_stacks(design, y, alpha, cluster_strength, fit_intercept)
        if solution is not None:
            return solution
    A, r, x_mean, y_mean = _task_moments(design, y, fit_intercept)
    W = MeanClusteredPenalty(alpha, cluster_strength).solve(A, r, A.shape[1])
    return W, y_mean - np.einsum("td,td->t", W, x_mean)


def _least_squares_stacks(design, y, alpha, cluster_strength, fit_intercept):
    """Mean-clustered least squares on dense per-task rows, one compiled pass per stack.

    Each task t is centred and scaled in turn, ``F_t = (X_t - mean(X_t)) / sqrt(n_t)`` and
    ``u_t = (y_t - mean(y_t)) / sqrt(n_t)`` (so ``A_t = F_t^T F_t``, ``r_t = F_t^T u_t``), and
    its ridge solution ``x_t = (A_t + lam I)^-1 r_t`` is computed in the cheaper of two forms:

    - ``n_t < d`` (the kernel form): with ``P_t = F_t F_t^T + lam I = M_t M_t^T`` (n_t x n_t),
      ``x_t = F_t^T P_t^-1 u_t`` and ``A_t G_t = Q_t^T Q_t`` with ``Q_t = M_t^-1 F_t``,
      ``G_t = (A_t + lam I)^-1``; cost ``O(n_t^2 d)``;
    - otherwise (the primal form): ``A_t + lam I = L_t L_t^T`` (d x d), ``x_t`` by two
      triangular solves and ``A_t G_t = G_t A_t`` by ``d`` more; cost ``O(n_t d^2 + d^3)``.

    The coupling through the mean then needs ``C = sum_t A_t G_t`` (a sum of Gram matrices,
    so no cancellation) and ``G_t v`` for one vector ``v``, as in ``penalty.solve``.
    No per-task Python loop, no inverse, no (T, d, d) array in the kernel form. Returns None
    when a factorisation breaks down (``lam`` below rounding level): the caller then takes
    the path with pseudo-inverse fallbacks.
    """
    n_tasks, d = design.n_tasks, design.n_features
    lam, mu = MeanClusteredPenalty(alpha, cluster_strength).curvatures(n_tasks)
    coupled = cluster_strength != 1.0
    x = np.empty((n_tasks, d))
    x_mean = np.zeros((n_tasks, d))
    y_mean = np.zeros(n_tasks)
    # the coupled d x d system (only with cluster_strength != 1: independent ridge fits
    # otherwise, which a (d, d) array, 200 MB at 5,000 features, would only outweigh)
    C = np.zeros((d, d) if coupled else (0, 0))
    y_slots = np.append(np.asarray(y, dtype=np.float64), 0.0)
    factors = []
    for tasks, pos, _, stack in design.stacks():
        counts = design.counts[tasks].astype(np.int64)
        targets = y_slots[pos]
        n_block, width = pos.shape
        out_x, out_xm, out_ym = np.empty((n_block, d)), np.zeros((n_block, d)), np.zeros(n_block)
        kernel_form = width < d
        if kernel_form:
            factor = np.zeros((n_block, width, d) if coupled else (0, width, d))
            ok = _ridge_stack_kernel(stack, targets, counts, fit_intercept, lam, coupled,
                                     out_x, out_xm, out_ym, factor)
            if ok and coupled:
                flat = factor.reshape(-1, d)
                C += flat.T @ flat
        else:
            factor = np.empty((n_block, d, d))
            ok = _ridge_stack_primal(stack, targets, counts, fit_intercept, lam, coupled,
                                     out_x, out_xm, out_ym, factor, C)
        if not ok:
            return None
        x[tasks], x_mean[tasks], y_mean[tasks] = out_x, out_xm, out_ym
        if coupled:  # kept for the second pass (G_t v) only
            factors.append((tasks, kernel_form, factor))
    if coupled:
        c = cluster_strength
        system = (c - 1.0) * 0.5 * (C + C.T)
        system[np.arange(d), np.arange(d)] += n_tasks
        v = scipy.linalg.cho_solve(scipy.linalg.cho_factor(system), c * x.sum(axis=0))
        for tasks, kernel_form, factor in factors:
            Gv = np.empty((factor.shape[0], d))
            if kernel_form:
                _kernel_solve_stack(factor, v, lam, Gv)
            else:
                _cholesky_solve_stack(factor, v, Gv)
            x[tasks] -= mu * Gv
    return x, y_mean - np.einsum("td,td->t", x, x_mean)


# Compiled per-task loops of :func:`_least_squares_stacks` (row-major, contiguous inner loops).
_FAST = {"reassoc", "contract", "nsz"}


@njit(cache=True, fastmath=_FAST)
def _center_task(X, y, n, center, F, u, x_mean):
    """``F[:n] = (X[:n] - mean) / sqrt(n)``, ``u`` likewise; returns the mean of y."""
    d = X.shape[1]
    y_mean = 0.0
    for j in range(d):
        x_mean[j] = 0.0
    if center:
        for i in range(n):
            y_mean += y[i]
            for j in range(d):
                x_mean[j] += X[i, j]
        y_mean /= n
        for j in range(d):
            x_mean[j] /= n
    scale = 1.0 / np.sqrt(n)
    for i in range(n):
        u[i] = (y[i] - y_mean) * scale
        for j in range(d):
            F[i, j] = (X[i, j] - x_mean[j]) * scale
    return y_mean


@njit(cache=True, fastmath=_FAST)
def _cholesky_lower(P, n):
    """Lower Cholesky factor of ``P[:n, :n]`` in place; False when not positive definite."""
    for i in range(n):
        for k in range(i + 1):
            s = P[i, k]
            for m in range(k):
                s -= P[i, m] * P[k, m]
            if i == k:
                if not s > 0.0:
                    return False
                P[i, i] = np.sqrt(s)
            else:
                P[i, k] = s / P[k, k]
    return True


@njit(cache=True, fastmath=_FAST)
def _cholesky_solve(L, b):
    """``b <- (L L^T)^-1 b`` in place, ``L`` lower triangular."""
    n = b.shape[0]
    for i in range(n):
        s = b[i]
        for m in range(i):
            s -= L[i, m] * b[m]
        b[i] = s / L[i, i]
    for i in range(n - 1, -1, -1):
        b[i] /= L[i, i]
        for m in range(i):
            b[m] -= L[i, m] * b[i]


@njit(cache=True, fastmath=_FAST)
def _ridge_stack_kernel(stack, targets, counts, center, lam, coupled, x, x_mean, y_mean, Q):
    """Kernel form for a stack of tasks with fewer rows than features (see the caller).

    Writes ``x[k]``, the means and, when ``coupled``, ``Q[k] = M_k^-1 F_k`` (rows past
    ``counts[k]`` left zero). Returns False when a Cholesky factorisation fails.
    """
    n_block, width, d = stack.shape
    F = np.empty((width, d))
    u = np.empty(width)
    P = np.empty((width, width))
    for k in range(n_block):
        n = counts[k]
        y_mean[k] = _center_task(stack[k], targets[k], n, center, F, u, x_mean[k])
        for i in range(n):
            for m in range(i + 1):
                s = 0.0
                for j in range(d):
                    s += F[i, j] * F[m, j]
                P[i, m] = s
            P[i, i] += lam
        if not _cholesky_lower(P, n):
            return False
        for i in range(n):  # u <- M^-1 u
            s = u[i]
            for m in range(i):
                s -= P[i, m] * u[m]
            u[i] = s / P[i, i]
        if coupled:  # Q = M^-1 F row by row, then x = Q^T M^-1 u
            Qk = Q[k]
            for i in range(n):
                for j in range(d):
                    Qk[i, j] = F[i, j]
                for m in range(i):
                    coef = P[i, m]
                    for j in range(d):
                        Qk[i, j] -= coef * Qk[m, j]
                inv = 1.0 / P[i, i]
                for j in range(d):
                    Qk[i, j] *= inv
            rows = Qk
        else:  # x = F^T M^-T M^-1 u
            for i in range(n - 1, -1, -1):
                u[i] /= P[i, i]
                for m in range(i):
                    u[m] -= P[i, m] * u[i]
            rows = F
        for j in range(d):
            x[k, j] = 0.0
        for i in range(n):
            coef = u[i]
            for j in range(d):
                x[k, j] += coef * rows[i, j]
    return True


@njit(cache=True, fastmath=_FAST)
def _ridge_stack_primal(stack, targets, counts, center, lam, coupled, x, x_mean, y_mean, L, C):
    """Primal form for a stack of tasks (see the caller).

    Writes ``x[k]``, the means and the Cholesky factor ``L[k]`` of ``A_k + lam I``, and adds
    ``G_k A_k`` to ``C`` when ``coupled``. Returns False when a factorisation fails.
    """
    n_block, width, d = stack.shape
    F = np.empty((width, d))
    u = np.empty(width)
    A = np.empty((d, d))
    col = np.empty(d)
    for k in range(n_block):
        n = counts[k]
        y_mean[k] = _center_task(stack[k], targets[k], n, center, F, u, x_mean[k])
        Lk = L[k]
        _stack_gram(F, u, n, A, x[k])  # A = F^T F, r = F^T u (in x[k])
        for j in range(d):
            for m in range(j + 1):
                Lk[j, m] = A[j, m]
            for m in range(j + 1, d):
                Lk[j, m] = 0.0
            Lk[j, j] += lam
        if not _cholesky_lower(Lk, d):
            return False
        _cholesky_solve(Lk, x[k])
        if coupled:
            for j in range(d):  # C += G A, one column (= row, A symmetric) at a time
                for m in range(d):
                    col[m] = A[j, m]
                _cholesky_solve(Lk, col)
                for m in range(d):
                    C[m, j] += col[m]
    return True


@njit(cache=True, fastmath=_FAST)
def _stack_gram(F, u, n, A, r):
    """``A = F[:n]^T F[:n]`` (both triangles, the lower one summed) and ``r = F[:n]^T u``."""
    d = F.shape[1]
    for j in range(d):
        for m in range(d):
            A[j, m] = 0.0
        r[j] = 0.0
    for i in range(n):
        for j in range(d):
            f = F[i, j]
            r[j] += f * u[i]
            for m in range(j + 1):
                A[j, m] += f * F[i, m]
    for j in range(d):
        for m in range(j):
            A[m, j] = A[j, m]


@njit(cache=True, fastmath=_FAST)
def _moments_stack(stack, targets, tasks, counts, center, A, r, x_mean, y_mean):
    """Per-task moments of a stack of tasks ``tasks``: ``A[t] = F_k^T F_k`` and ``r[t] = F_k^T
    u_k`` for ``t = tasks[k]``, with ``F_k``, ``u_k`` the stack's rows and targets of task t
    (``counts[t]`` of them), centred when ``center``, over ``sqrt(n_t)``
    (:func:`_center_task`), and their means."""
    width, d = stack.shape[1], stack.shape[2]
    F = np.empty((width, d))
    u = np.empty(width)
    for k in range(tasks.shape[0]):
        t = tasks[k]
        y_mean[t] = _center_task(stack[k], targets[k], counts[t], center, F, u, x_mean[t])
        _stack_gram(F, u, counts[t], A[t], r[t])


@njit(cache=True, fastmath=_FAST)
def _kernel_solve_stack(Q, v, lam, out):
    """``out[k] = (A_k + lam I)^-1 v = (v - Q[k]^T Q[k] v) / lam`` (Woodbury, kernel form)."""
    n_block, width, d = Q.shape
    for k in range(n_block):
        Qk = Q[k]
        for j in range(d):
            out[k, j] = v[j]
        for i in range(width):
            s = 0.0
            for j in range(d):
                s += Qk[i, j] * v[j]
            for j in range(d):
                out[k, j] -= s * Qk[i, j]
        for j in range(d):
            out[k, j] /= lam


@njit(cache=True, fastmath=_FAST)
def _cholesky_solve_stack(L, v, out):
    """``out[k] = (L[k] L[k]^T)^-1 v`` for a stack of lower Cholesky factors."""
    for k in range(L.shape[0]):
        for j in range(v.shape[0]):
            out[k, j] = v[j]
        _cholesky_solve(L[k], out[k])


@Substitution(long_format=_LONG_FORMAT)
def solve_mean_clustered_logistic(X, Y, mask, alpha, cluster_strength, *, fit_intercept=True,
                                  tol=1e-8, max_iter=50, coef_init=None, intercept_init=None,
                                  task_index=None, n_tasks=None, pull_intercepts=True):
    """Mean-clustered binary logistic regression by Newton's method.

    Minimises over ``W`` (n_tasks, n_features) and ``b`` (n_tasks,)

        sum_t 1 / n_t sum_{i in task t} log(1 + exp(-s_i (x_i w_t + b_t)))
        + alpha * (||w_bar||^2 + cluster_strength / T * sum_t ||w_t - w_bar||^2)
        + alpha * cluster_strength / T * sum_t (c_t - c_bar)^2,   c_t = b_t + x_bar w_t

    with ``s_i = 2 y_i - 1`` and ``c_bar`` the mean of the intercepts at the mean of X
    (``x_bar``, over the observed labels; free). The last term (dropped with
    ``pull_intercepts=False``) pulls those intercepts towards their mean as the coefficients
    are pulled: it keeps the intercept of a task that saw one class finite. Taken at the
    mean of X, it does not depend on where each column's zero is (the rows are centred, a
    sparse X implicitly, and ``b`` is returned for X).
    Each Newton step solves the full Hessian system exactly with the structure of the
    penalty: per task, the (d + 1) x (d + 1) block of ``[X_t, 1]^T D_t [X_t, 1] / n_t`` (the
    intercept is its last coordinate) plus ``2 alpha c / T`` on the coefficients (and on the
    pulled intercept), coupled through the mean only, and eliminated to one d x d (or
    (d + 1) x (d + 1)) system (``penalty.solve``): ``O(sum_t n_t d^2 + T d^3)`` per step. A
    backtracking (Armijo) line search on the objective guards the step; iterations stop when
    half the squared Newton decrement, ``g^T H^-1 g / 2`` (the quadratic model's estimate of
    the distance to the minimum), is at most ``tol``, after taking that last step.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Design.
    Y : ndarray of shape (n_samples, n_tasks) or (n_samples,)
        0 / 1 labels (1 the positive class); values where ``mask`` is False are never read.
        With ``task_index``, the label of each row.
    mask : ndarray of bool of shape (n_samples, n_tasks) or None
        Observed labels; None means all observed.
    alpha : float
        Regularisation strength, > 0.
    cluster_strength : float
        > 0; 1 is independent l2-penalised logistic regression per task, large values one
        shared coefficient vector.
    fit_intercept : bool, default=True
        Fit an intercept per task (pulled towards the mean intercept, see above).
    tol : float, default=1e-8
        Stop when half the squared Newton decrement is at most ``tol``.
    max_iter : int, default=50
        Maximum number of Newton steps; reaching it raises a ConvergenceWarning.
    coef_init, intercept_init : ndarray, default=None
        Starting point (e.g. the solution at a nearby alpha); default zero coefficients and
        each task's log-odds as intercept.
    {long_format}
    pull_intercepts : bool, default=True
        Pull the intercepts towards their mean (the last term above). Without it, a task
        whose labels are all one class has no finite minimiser.

    Returns
    -------
    W : ndarray of shape (n_tasks, n_features)
        Task coefficients.
    b : ndarray of shape (n_tasks,)
        Task intercepts (zeros when ``fit_intercept=False``).
    n_iter : int
        Number of Newton steps taken.
    """
    penalty = MeanClusteredPenalty(alpha, cluster_strength)
    problem = Problem(X, Y, mask, task_index=task_index, n_tasks=n_tasks)
    pull = pull_intercepts and fit_intercept and problem.n_tasks > 1
    design = problem.design(at_mean=pull)  # the pulled intercepts: those at the mean of X
    origin = design.x_origin
    if intercept_init is not None and coef_init is not None:
        intercept_init = np.asarray(intercept_init) + np.asarray(coef_init) @ origin
    W, b, n_iter = newton_logistic(
        design, problem.targets(design), _MeanPull(penalty, design.n_tasks),
        fit_intercept=fit_intercept, pull=pull, tol=tol, max_iter=max_iter, coef_init=coef_init,
        intercept_init=intercept_init)
    return W, b - W @ origin, n_iter


class _MeanPull:
    """The mean-clustered penalty as :func:`newton_logistic` asks for it: value, gradient
    (added to the data's), and the structured Newton system."""

    def __init__(self, penalty, n_tasks):
        self.penalty = penalty
        self.lam, self.mu = penalty.curvatures(n_tasks)
        self.intercept_curvature = self.lam  # per task, of the intercepts' pull

    def value(self, W, b=None):
        return self.penalty.value(W, b)

    def add_gradient(self, grad, W):
        return grad + self.lam * W + self.mu * W.mean(axis=0)

    def add_intercept_gradient(self, grad, b):
        return grad + _centred(self.lam * (b - b.mean()))

    def solve(self, H, rhs, n_penalised, *, pull_last=False):
        if isinstance(H, RowCurvature):  # the clustered penalty's kernel form, one cluster
            # (its module builds on this one: imported here)
            from skmtl.linear._solver_clustered_tasks import ClusteredTasksPenalty

            c, T = self.penalty.cluster_strength, len(rhs)
            return ClusteredTasksPenalty(self.penalty.alpha, c, c, np.zeros(T, dtype=int)).solve(
                H, rhs, n_penalised, pull_last=pull_last)
        return self.penalty.solve(H, rhs, n_penalised, pull_last=pull_last)


class RowCurvature(NamedTuple):
    """The logistic loss's per-task curvature blocks ``H_t = F_t^T F_t``, ``F_t`` the task's
    rows ``sqrt(weight_i) [x_i, 1]`` (the ones with an intercept), kept as the design and the
    weights instead of a formed (T, p, p) stack: the Newton system is then solved in the
    kernel form (:class:`~._solver_clustered_tasks.KernelBlocks`), where the tasks have
    fewer labels than coefficients (:func:`_kernel_form`)."""

    design: object
    weight: np.ndarray
    fit_intercept: bool

    def dense(self):
        """The (T, p, p) blocks themselves."""
        design, weight = self.design, self.weight
        H = design.gram(weight)
        if self.fit_intercept:
            H = _with_intercept(H, design.rmatvec(weight), design.segment_sum(weight))
        return H


# per-task blocks of fewer coordinates stay dense (at most 128 KB a task): the kernel form's
# per-task loops cost more there (ClusteredTasksRegressorCV on Exam, whose small schools
# have fewer rows than half its columns: 0.43 s dense, 0.63 s in the kernel form)
_KERNEL_MIN_COEF = 128


def _kernel_form(design, n_coef):
    """Whether per-task blocks of ``n_coef`` coordinates are kept in the kernel form
    (:class:`~._solver_clustered_tasks.KernelBlocks`): per-task rows (dense, or a sparse X's
    densified chunk by chunk), at least ``_KERNEL_MIN_COEF`` coordinates and some stack of
    tasks with fewer than half as many rows (there ``T n_coef^2`` of blocks outweigh the
    rows)."""
    return n_coef >= _KERNEL_MIN_COEF and isinstance(
        design, (GroupedDense, SparseDesign, ShiftedSparse)) and any(
        2 * pos.shape[1] < n_coef for _, pos, _, _ in design.chunks)


def _centred(pull):
    """The pull's gradient in the intercepts minus its mean: it sums to zero (the mean
    intercept is free), but the rounding of ``b`` (1e-18) times a curvature of 1e20 does not,
    and the mean intercept's Newton step, which solves for that sum, would follow the
    rounding. Centred, the sum is at the rounding of the gradient itself."""
    return pull - pull.mean()


def _shrunk_log_odds(log_odds, rate, curvature):
    """The tasks' log-odds shrunk towards that of their mean rate by ``h_t / (h_t +
    curvature)``, ``h_t = rate_t (1 - rate_t)`` the curvature of a task's mean logistic loss
    in its intercept there: the pulled intercepts' start.

    From the tasks' own log-odds, a pull far stronger than the data (``alpha`` 1e20) has a
    gradient ``curvature * (b_t - b_bar)`` of order 1e19, and the Newton step of the free mean
    intercept, the small difference of its per-task parts, lost every digit to their rounding
    (a step of -2,480 that zeroed every weight, then a singular system). From here the pull's
    gradient is of the data's order whatever ``alpha``."""
    h = rate * (1.0 - rate)
    mean = rate.mean()
    centre = np.log(mean / (1.0 - mean))
    return centre + h / (h + curvature) * (log_odds - centre)


def newton_logistic(design, y, penalty, *, fit_intercept, pull, tol, max_iter, coef_init=None,
                    intercept_init=None):
    """Binary logistic loss (per-task mean over the observed rows) plus a quadratic penalty
    with per-task blocks coupled across tasks, by Newton's method (see
    :func:`solve_mean_clustered_logistic`).

    ``penalty`` gives ``value(W, b)`` (``b`` None unless the intercepts are pulled),
    ``add_gradient(grad, W)``, ``add_intercept_gradient(grad, b)`` and
    ``solve(H, rhs, d, pull_last=...)``, the Newton system with per-task data blocks ``H``,
    and ``intercept_curvature``, the pull's curvature in one task's intercept (the start of
    pulled intercepts, :func:`_shrunk_log_odds`). Returns ``(W, b, n_iter)``.
    """
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("Y must hold 0 / 1 labels on the observed entries.")
    T, d = design.n_tasks, design.n_features
    tasks = design.obs_tasks
    inv_n = 1.0 / design.counts[tasks]
    W = np.zeros((T, d)) if coef_init is None else np.array(coef_init, dtype=np.float64)
    if intercept_init is not None:
        b = np.array(intercept_init, dtype=np.float64)
    elif fit_intercept:  # each task's log-odds, a half label of each class added
        rate = (design.segment_sum(y) + 0.5) / (design.counts + 1.0)
        b = np.log(rate / (1.0 - rate))
        if pull:  # shrunk towards the log-odds of the mean rate, as one ridge step would
            b = _shrunk_log_odds(b, rate, penalty.intercept_curvature)
    else:
        b = np.zeros(T)
    if not fit_intercept:
        b = np.zeros(T)

    def loss(z):
        return float(np.sum(inv_n * (np.logaddexp(0.0, z) - y * z)))

    def objective(z, W, b):
        return loss(z) + penalty.value(W, b if pull else None)

    z = design.matvec(W) + b[tasks]
    value = objective(z, W, b)
    n_iter, converged, decrement = 0, False, np.inf
    # every coordinate ridged (the intercepts pulled, or none) and few rows per task: the
    # curvature stays in the rows (RowCurvature), no (T, p, p) stack per Newton step
    rows = (pull or not fit_intercept) and _kernel_form(design, d + fit_intercept)
    while n_iter < max_iter:
        p = expit(z)
        residual = (p - y) * inv_n
        weight = p * (1.0 - p) * inv_n
        grad = penalty.add_gradient(design.rmatvec(residual), W)
        H = RowCurvature(design, weight, fit_intercept)
        if not rows:
            H = H.dense()
        if fit_intercept:
            grad_b = design.segment_sum(residual)
            if pull:
                grad_b = penalty.add_intercept_gradient(grad_b, b)
            grad = np.column_stack([grad, grad_b])
        step = penalty.solve(H, -grad, d, pull_last=pull)
        decrement = -float(np.vdot(grad, step))
        dW = step[:, :d]
        dz = design.matvec(dW)
        if fit_intercept:
            dz += step[tasks, d]
        n_iter += 1
        if 0.5 * decrement <= tol:  # the quadratic model is exact enough: full step, done
            W, z = W + dW, z + dz
            if fit_intercept:
                b = b + step[:, d]
            converged = True
            break
        size, slack = 1.0, 1e2 * np.finfo(float).eps * abs(value)
        while True:
            new_W = W + size * dW
            new_b = b + size * step[:, d] if fit_intercept else b
            new_value = objective(z + size * dz, new_W, new_b)
            if new_value <= value - 1e-4 * size * decrement + slack:
                break
            size *= 0.5
            if size < 1e-10:
                warnings.warn(
                    f"Line search failed after {n_iter} Newton steps (objective {value:.6g}, "
                    f"Newton decrement^2 / 2 = {0.5 * decrement:.3g} > tol = {tol:g}); the "
                    "coefficients may be inaccurate.",
                    ConvergenceWarning,
                )
                return W, b, n_iter
        W, z, value = new_W, z + size * dz, new_value
        if fit_intercept:
            b = b + size * step[:, d]
    if not converged:
        warnings.warn(
            f"Newton's method did not converge in max_iter={max_iter} steps (last Newton "
            f"decrement^2 / 2 = {0.5 * decrement:.3g} > tol = {tol:g}). Increase max_iter.",
            ConvergenceWarning,
        )
    return W, b, n_iter


def _with_intercept(H, cross, total):
    """Per-task Hessian blocks with the intercept as the last coordinate."""
    T, d, _ = H.shape
    out = np.empty((T, d + 1, d + 1))
    out[:, :d, :d] = H
    out[:, :d, d] = cross
    out[:, d, :d] = cross
    out[:, d, d] = total
    return out


# -- paths and grids (the CV estimators) -----------------------------------------------------
def _warm_start(alpha, path):
    """The starting point ``(W, b)`` of a Newton fit at ``alpha`` from the last two solutions
    ``(alpha, W, b)`` of its path (``(None, None)`` for the first fit of a path).

    The last solution, moved along the secant through the last two in ``log(alpha)`` when
    ``alpha`` continues a decreasing path (linear extrapolation, by at most the last step):
    its error is second order in the step of ``log(alpha)`` instead of first order, which saves
    about one Newton step per fit on a geometric grid. Otherwise the last solution as it is.
    Only the starting point changes: every fit still stops at the same tolerance.
    """
    if not path:
        return None, None
    alpha_1, W_1, b_1 = path[-1]
    if len(path) < 2 or not path[0][0] > alpha_1 > alpha:
        return W_1, b_1
    alpha_0, W_0, b_0 = path[0]
    ratio = min(1.0, np.log(alpha_1 / alpha) / np.log(alpha_0 / alpha_1))
    return W_1 + ratio * (W_1 - W_0), b_1 + ratio * (b_1 - b_0)


def _largest_moment_eigenvalue(X, rows, tasks, n_tasks, fit_intercept):
    """Largest eigenvalue of ``(1 / T) sum_t X_t^T X_t / n_t`` (columns centred per task).

    From the observations ``(rows, tasks)``: ``X^T diag(w) X`` with each row's weight ``w_i =
    sum_{t observing i} 1 / n_t``, minus ``sum_t mean_t mean_t^T``. The subtraction cancels
    where a column's spread is small against its mean, so a dense X is first shifted by its
    weighted column means (in blocks of rows of 8 MiB, no copy of X; the weights of each task
    sum to 1, so the shift leaves the result unchanged): a column of 3e4 + N(0, 1) keeps its spread
    exactly, as standardising does (it was left out of the scale, and the grid moved with
    where the column starts). What rounding still hides, a column whose per-task centred
    second moment is below 1e-8 of its raw one (sparse X, which is not shifted: a spread
    below 1e-4 of its mean; a column of 1.1e12 +- 1 gave an eigenvalue of 3.6e8 where the
    others were 1.4, and a grid of all-zero models), is left out of the scale.
    """
    counts = np.bincount(tasks, minlength=n_tasks)
    weights = 1.0 / counts[tasks]
    means_of = sp.csr_matrix((weights, (tasks, rows)), shape=(n_tasks, X.shape[0]))
    row_weight = np.bincount(rows, weights=weights, minlength=X.shape[0])
    if sp.issparse(X) and X.shape[1] > _LANCZOS_FEATURES:
        return _largest_sparse_moment_eigenvalue(X, row_weight, means_of, n_tasks,
                                                 fit_intercept)
    if sp.issparse(X):
        second = (X.T @ sp.diags(row_weight) @ X).toarray()
        means = np.asarray((means_of @ X).todense())
    else:
        shift = (row_weight @ X) / row_weight.sum() if fit_intercept else 0.0
        second = np.zeros((X.shape[1], X.shape[1]))
        for rows_block, block in shifted_row_blocks(X, shift):
            second += block.T @ (block * row_weight[rows_block, None])
        means = np.asarray(means_of @ X) - shift
    raw = np.diag(second).copy()
    if fit_intercept:
        second -= means.T @ means
        unmeasured = ~(np.diag(second) > 1e-8 * raw)
        second[unmeasured, :] = 0.0
        second[:, unmeasured] = 0.0
        raw[unmeasured] = 0.0
    e_max = float(np.linalg.eigvalsh(0.5 * (second + second.T) / n_tasks)[-1])
    return e_max if e_max > 1e-12 * max(1.0, float(raw.max(initial=0.0))) else 1.0


# the largest eigenvalue of a sparse X's moments by Lanczos iterations from this many
# features: the d x d moments (20,000 features: 3.2 GB) and their O(d^3) eigenvalues are
# never formed
_LANCZOS_FEATURES = 256


def _largest_sparse_moment_eigenvalue(X, row_weight, means_of, n_tasks, fit_intercept):
    """:func:`_largest_moment_eigenvalue` of a sparse X by Lanczos iterations (ARPACK, to
    rounding) on products with ``X^T diag(w) X - M^T M`` (``M`` the tasks' column means),
    ``O(nnz(X) + T d)`` each; the columns it leaves out, from the diagonal alone."""
    d = X.shape[1]
    X = sp.csr_matrix(X)
    raw = np.asarray(X.multiply(X).T @ row_weight).ravel()
    means = np.asarray((means_of @ X).todense()) if fit_intercept else np.zeros((0, d))
    # the columns whose centred second moment rounding does not hide
    kept = raw - np.einsum("td,td->d", means, means) > 1e-8 * raw
    if not fit_intercept:
        kept[:] = True
    if not np.any(raw[kept] > 0.0):
        return 1.0

    def product(v):
        v = np.where(kept, np.ravel(v), 0.0)
        out = X.T @ (row_weight * (X @ v)) - means.T @ (means @ v)
        return np.where(kept, out, 0.0) / n_tasks

    operator = scipy.sparse.linalg.LinearOperator((d, d), matvec=product, dtype=np.float64)
    start = np.where(kept, np.sqrt(raw), 0.0)
    try:
        e_max = float(scipy.sparse.linalg.eigsh(operator, k=1, which="LA", v0=start,
                                                tol=1e-14, return_eigenvectors=False)[0])
    except scipy.sparse.linalg.ArpackNoConvergence as exc:  # rounding-level tol not met
        if not len(exc.eigenvalues):
            raise
        e_max = float(np.max(exc.eigenvalues))  # (a scale for the grid: ample)
    return e_max if e_max > 1e-12 * max(1.0, float(raw[kept].max())) else 1.0

