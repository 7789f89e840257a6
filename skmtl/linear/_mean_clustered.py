"""Mean-clustered multi-task learning: every task vector is pulled towards the tasks' mean.

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
  d x d system for ``w_bar`` (see :func:`_coupled_solve`); cost ``O(sum_t n_t d^2 + T d^3)``.
  When all tasks observe the same rows (shared X), ``w_bar`` and the deviations ``w_t - w_bar``
  are two ridge fits from one SVD of X.
- :class:`MeanClusteredLeastSquares`: the same, with the decompositions cached so that a grid
  of ``(alpha, cluster_strength)`` costs one factorisation.
- :func:`solve_mean_clustered_logistic`: logistic loss, Newton's method whose every step solves
  the same structured system (intercepts inside the per-task blocks) with a backtracking line
  search; it stops on the Newton decrement.
"""

import warnings
from contextlib import nullcontext
from functools import cache
from numbers import Integral, Real

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from numba import njit
from scipy.linalg import blas, lapack
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.extmath import safe_sparse_dot
from threadpoolctl import ThreadpoolController

from skmtl.base import MultiTaskClassifierMixin, MultiTaskRegressorMixin
from skmtl.linear._standardize import column_scales, observation_weights, scale_columns
from skmtl.utils._sklearn_compat import Interval, StrOptions
from skmtl.utils.validation import _hashable

__all__ = [
    "MeanClusteredClassifier",
    "MeanClusteredLeastSquares",
    "MeanClusteredRegressor",
    "solve_mean_clustered",
    "solve_mean_clustered_logistic",
]


# -- inputs ------------------------------------------------------------------------------------
# A problem is X with the observed rows of each task ("groups": one sorted index array per task)
# and the targets of those rows. Wide data (Y, mask) gives its groups by one pass over the mask;
# long data (y, task_index) by a stable sort of the task index, so no (n, n_tasks)
# array is ever built for it. Everything downstream (designs, moments, solvers) works from the
# groups and from the targets in observation order (task by task, rows increasing).
def _as_X(X):
    """float64 X, dense or CSR."""
    if sp.issparse(X):
        return sp.csr_matrix(X, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features); got shape {X.shape}.")
    return X


class _Problem:
    """X, the observed rows of each task and their targets, from wide or long data.

    Wide: ``Y`` (n, T) and ``mask``; Y keeps its dtype, only its observed entries are read.
    Long: ``y`` (n,) and ``task_index`` (n,), one observation per row; ``n_tasks`` defaults
    to ``task_index.max() + 1``. Every task needs an observation.
    """

    def __init__(self, X, Y, mask=None, *, task_index=None, n_tasks=None):
        self.X = X = _as_X(X)
        Y = np.asarray(Y)
        self.long = task_index is not None
        if self.long:
            self._init_long(X, Y, mask, np.asarray(task_index), n_tasks)
        else:
            self._init_wide(X, Y, mask)

    def _init_wide(self, X, Y, mask):
        if Y.ndim == 1:
            Y = Y[:, None]
        mask = np.ones(Y.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        if mask.shape != Y.shape or Y.shape[0] != X.shape[0]:
            raise ValueError(
                f"Shapes do not match: X {X.shape}, Y {Y.shape}, mask {mask.shape}; expected "
                "X (n_samples, n_features) and Y, mask (n_samples, n_tasks)."
            )
        _check_no_empty_task(mask.any(axis=0))
        self.n_tasks = Y.shape[1]
        self._Y, self._mask, self._groups, self._flat = Y, mask, None, None
        self.shared_rows = _shared_rows(mask)

    def _init_long(self, X, y, mask, task_index, n_tasks):
        if mask is not None:
            raise ValueError("mask must be None with task_index (long format).")
        if y.ndim != 1 or task_index.shape != y.shape or y.shape[0] != X.shape[0]:
            raise ValueError(
                f"Shapes do not match: X {X.shape}, y {y.shape}, task_index "
                f"{task_index.shape}; expected X (n_samples, n_features) and y, task_index "
                "(n_samples,)."
            )
        if task_index.dtype.kind not in "iu" or (task_index.size and task_index.min() < 0):
            raise ValueError("task_index must hold non-negative integer task positions.")
        if n_tasks is None:
            n_tasks = int(task_index.max()) + 1 if task_index.size else 0
        elif task_index.size and task_index.max() >= n_tasks:
            raise ValueError(f"task_index holds positions >= n_tasks={n_tasks}.")
        task_index = task_index.astype(np.intp, copy=False)
        _check_no_empty_task(np.bincount(task_index, minlength=n_tasks) > 0)
        self.n_tasks = n_tasks
        self._y = y
        # the groups, flattened: rows sorted by task (stable), no list of T arrays
        counts = np.bincount(task_index, minlength=n_tasks)
        self._flat = (np.argsort(task_index, kind="stable"),
                      np.repeat(np.arange(n_tasks), counts), counts)
        self._groups = None
        self.shared_rows = slice(None) if n_tasks == 1 else None  # one task: all the rows

    @property
    def groups(self):
        """The observed rows of each task: a list of sorted index arrays."""
        if self._groups is None:
            if self._flat is None:
                self._groups = _groups_from_mask(self._mask)
            else:
                rows, _, counts = self._flat
                self._groups = np.split(rows, np.cumsum(counts)[:-1])
        return self._groups

    def flat_groups(self):
        """The groups flattened, ``(rows, tasks, counts)``, as :func:`_flatten_groups` gives."""
        if self._flat is None:
            if self._groups is not None:
                return _flatten_groups(self._groups)
            tasks, rows = np.nonzero(self._mask.T)  # task-major: sorted by task, then row
            self._flat = (rows, tasks, np.bincount(tasks, minlength=self.n_tasks))
        return self._flat

    def shared_targets(self):
        """float64 targets (n_rows, T) of the shared rows (only when ``shared_rows``)."""
        if self.long:
            return self._y.astype(np.float64)[:, None]
        return self._Y[self.shared_rows].astype(np.float64)

    def design(self):
        """The per-task view of X: shared dense rows, grouped dense rows or sparse."""
        if self.shared_rows is not None and not sp.issparse(self.X):
            return _SharedDense(self.X[self.shared_rows], self.shared_rows, self.n_tasks)
        if sp.issparse(self.X):
            return _SparseDesign(self.X, self.groups)
        return _GroupedDense.from_flat(self.X, *self.flat_groups())

    def targets(self, design):
        """float64 targets in the design's observation order."""
        if isinstance(design, _SharedDense):
            return design.take(self.shared_targets())
        if self.long:
            return self._y[design.obs_rows].astype(np.float64)
        return self._Y[design.obs_rows, design.obs_tasks].astype(np.float64)


def _check_no_empty_task(observed):
    empty = np.flatnonzero(~observed)
    if empty.size:
        raise ValueError(f"Task(s) {empty[:5].tolist()} have no observed label.")


def _check_parameters(alpha, cluster_strength):
    if not (np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a finite number > 0; got {alpha!r}.")
    if not (np.isfinite(cluster_strength) and cluster_strength > 0):
        raise ValueError(
            f"cluster_strength must be a finite number > 0; got {cluster_strength!r}."
        )


def _shared_rows(mask):
    """The rows all tasks observe when every task observes the same rows, else None."""
    n_samples, n_tasks = mask.shape
    chunk = max(1, 2**20 // n_tasks)
    for start in range(0, n_samples, chunk):  # a row seen by some tasks only: not shared
        block = mask[start:start + chunk]
        if not np.array_equal(block.all(axis=1), block.any(axis=1)):
            return None
    observed = mask[:, 0]
    return slice(None) if observed.all() else np.flatnonzero(observed)


def _groups_from_mask(mask):
    """The observed rows of each task (sorted), as :func:`group_rows_by_task` gives them."""
    tasks, rows = np.nonzero(mask.T)  # task-major: sorted by task, then row
    counts = np.bincount(tasks, minlength=mask.shape[1])
    return np.split(rows, np.cumsum(counts)[:-1])


def _flatten_groups(groups):
    """Observation order of the groups: ``(rows, tasks, counts)``, task by task."""
    counts = np.fromiter((g.shape[0] for g in groups), dtype=np.intp, count=len(groups))
    rows = np.concatenate(groups) if groups else np.zeros(0, dtype=np.intp)
    return rows, np.repeat(np.arange(len(groups)), counts), counts


# -- per-task views of X -----------------------------------------------------------------------
# A design holds X restricted to each task's observed rows. Per-observation vectors (targets,
# weights, linear predictors) have one entry per observed (row, task) pair, sorted by task then
# row. Three layouts: all tasks on the same dense rows (BLAS on X itself), different dense rows
# (tasks grouped by size into zero-padded (tasks, rows, features) stacks) and sparse X (one
# sparse matrix with a column block per task, so that per-task Gram matrices come from one
# product). The last two are built from the groups (the observed rows of each task).
class _Design:
    """The interface of a design (``matvec``, ``rmatvec``, ``gram``, ...).

    ``gram(w)`` gives the per-task Gram matrices ``X_t^T diag(w_t) X_t`` (T, d, d) of
    non-negative per-observation weights ``w`` (all ones when None).
    """

    def segment_sum(self, v):
        """Per-task sums of a per-observation vector, shape (n_tasks,)."""
        return np.bincount(self.obs_tasks, weights=v, minlength=self.n_tasks)

    def centered(self, means):
        """The design with each task's rows shifted by ``-means[t]``, or None (sparse)."""
        return None


class _SharedDense(_Design):
    """All tasks observe the rows ``rows`` of a dense X: observation ``t * n_rows + i``."""

    def __init__(self, X_rows, rows, n_tasks):
        self.X = X_rows
        self.rows = rows
        self.n_tasks = n_tasks
        self.n_features = X_rows.shape[1]
        n_rows = X_rows.shape[0]
        self.counts = np.full(n_tasks, n_rows)
        self.obs_tasks = np.repeat(np.arange(n_tasks), n_rows)

    def take(self, Y_rows):
        """Observation-ordered targets from the (n_rows, n_tasks) targets of the shared rows."""
        return np.ascontiguousarray(Y_rows.T, dtype=np.float64).ravel()

    def matvec(self, W):
        return (self.X @ W.T).T.ravel()

    def rmatvec(self, v):
        return (self.X.T @ v.reshape(self.n_tasks, -1).T).T

    def gram(self, w=None):
        n_rows, d = self.X.shape
        if w is None:
            return np.broadcast_to(self.X.T @ self.X, (self.n_tasks, d, d)).copy()
        root = np.sqrt(w).reshape(self.n_tasks, n_rows)
        out = np.zeros((self.n_tasks, d, d))
        rows = np.empty_like(self.X)  # X's layout (a Fortran X is not copied by dsyrk)
        for t in range(self.n_tasks):  # X^T diag(w_t) X = Z^T Z, Z = diag(sqrt(w_t)) X
            _syrk_lower(out[t], np.multiply(self.X, root[t][:, None], out=rows))
        return _mirror_lower(out)

    def centered(self, means):
        return _SharedDense(self.X - means[0], self.rows, self.n_tasks)


class _GroupedDense(_Design):
    """Tasks with their own dense rows, as zero-padded stacks of tasks of similar size."""

    def __init__(self, obs_rows, obs_tasks, n_tasks, n_features, blocks):
        self.obs_rows = obs_rows
        self.obs_tasks = obs_tasks
        self.n_tasks = n_tasks
        self.n_features = n_features
        self.n_obs = obs_rows.shape[0]
        self.counts = np.bincount(obs_tasks, minlength=n_tasks)
        self.blocks = blocks  # (tasks, positions in the observations, valid slots, stack)

    @classmethod
    def from_groups(cls, X, groups):
        """Stack the rows of each task, tasks grouped by size (padding wastes < half a stack).

        When X is sorted by task (long data in task order), a stack of equally sized tasks is
        a view of X, not a copy.
        """
        return cls.from_flat(X, *_flatten_groups(groups))

    @classmethod
    def from_flat(cls, X, obs_rows, obs_tasks, counts):
        """:meth:`from_groups` from the flattened groups (see :func:`_flatten_groups`)."""
        n_obs, n_tasks = obs_rows.shape[0], counts.shape[0]
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        in_order = n_obs == X.shape[0] and np.array_equal(obs_rows, np.arange(n_obs))
        size_class = np.ceil(np.log2(counts)).astype(np.intp)
        blocks = []
        for size in np.unique(size_class):
            tasks = np.flatnonzero(size_class == size)
            width = counts[tasks].max()
            slot = np.arange(width)
            valid = slot < counts[tasks][:, None]
            pos = np.where(valid, starts[tasks][:, None] + slot, n_obs)
            if in_order and valid.all() and tasks[-1] - tasks[0] == tasks.shape[0] - 1:
                first = starts[tasks[0]]  # consecutive tasks of one size: a view of X
                stack = X[first:first + tasks.shape[0] * width].reshape(-1, width, X.shape[1])
            else:
                stack = X[np.where(valid, obs_rows[np.minimum(pos, n_obs - 1)], 0)]
                if not valid.all():
                    stack[~valid] = 0.0
            blocks.append((tasks, pos, valid, stack))
        return cls(obs_rows, obs_tasks, n_tasks, X.shape[1], blocks)

    def matvec(self, W):
        z = np.empty(self.n_obs)
        for tasks, pos, valid, stack in self.blocks:
            z[pos[valid]] = np.matmul(stack, W[tasks][:, :, None])[..., 0][valid]
        return z

    def rmatvec(self, v):
        out = np.empty((self.n_tasks, self.n_features))
        v = np.append(v, 0.0)
        for tasks, pos, _, stack in self.blocks:
            out[tasks] = np.matmul(v[pos][:, None, :], stack)[:, 0]
        return out

    def gram(self, w=None):
        d = self.n_features
        out = np.zeros((self.n_tasks, d, d))
        w = None if w is None else np.append(w, 0.0)
        for tasks, pos, _, stack in self.blocks:
            if stack.shape[1] * d * d < _SYRK_WORK:  # small tasks: one batched product
                weighted = stack if w is None else stack * w[pos][..., None]
                out[tasks] = np.matmul(stack.transpose(0, 2, 1), weighted)
                continue
            root = None if w is None else np.sqrt(w[pos])
            for k, t in enumerate(tasks):  # a rank-k update per task, its rows only
                rows = stack[k, :self.counts[t]]
                _syrk_lower(out[t], rows if w is None else rows * root[k, :rows.shape[0], None])
            out[tasks] = _mirror_lower(out[tasks])
        return out

    def centered(self, means):
        blocks = []
        for tasks, pos, valid, stack in self.blocks:
            shift = means[tasks][:, None, :]
            blocks.append((tasks, pos, valid,
                           stack - (shift if valid.all() else shift * valid[..., None])))
        return _GroupedDense(self.obs_rows, self.obs_tasks, self.n_tasks, self.n_features, blocks)


class _SparseDesign(_Design):
    """Sparse X: one CSR matrix (n_obs, T * d), observation k's row in the block of its task."""

    def __init__(self, X, groups):
        self.obs_rows, self.obs_tasks, self.counts = _flatten_groups(groups)
        self.n_tasks = n_tasks = len(groups)
        self.n_features = d = X.shape[1]
        X_obs = sp.csr_matrix(X)[self.obs_rows]
        X_obs.sum_duplicates()
        per_row = np.diff(X_obs.indptr)
        columns = X_obs.indices.astype(np.int64) + d * np.repeat(
            self.obs_tasks.astype(np.int64), per_row)
        self.B = sp.csr_matrix((X_obs.data, columns, X_obs.indptr.astype(np.int64)),
                               shape=(self.obs_rows.shape[0], n_tasks * d))

    def matvec(self, W):
        return self.B @ W.ravel()

    def rmatvec(self, v):
        return (self.B.T @ v).reshape(self.n_tasks, self.n_features)

    def gram(self, w=None):
        d = self.n_features
        weighted = self.B if w is None else sp.diags(w) @ self.B
        product = (self.B.T @ weighted).tocoo()
        out = np.zeros((self.n_tasks, d, d))
        out[product.row // d, product.row % d, product.col % d] = product.data
        return out


_SYRK = blas.dsyrk
# Per-task work (rows x features^2) from which one rank-k update per task beats a batched
# product over a stack of tasks (the Python loop's overhead is then negligible).
_SYRK_WORK = 2**17


def _syrk_lower(out, Z):
    """``Z^T Z`` into the lower triangle of the C-contiguous (d, d) ``out`` (zeros), in place.

    A symmetric rank-k update (BLAS ``dsyrk``): half the flops of ``Z.T @ Z``. A Fortran Z is
    passed as it is (``A^T A``), a C-contiguous one as ``Z.T``, the Fortran (d, n) matrix whose
    ``A A^T`` is the same product; ``out.T`` is the Fortran matrix whose upper triangle it
    fills. Nothing is copied.
    """
    if Z.flags.f_contiguous:
        _SYRK(1.0, Z, c=out.T, trans=1, lower=0, overwrite_c=1)
    else:
        _SYRK(1.0, np.ascontiguousarray(Z).T, c=out.T, trans=0, lower=0, overwrite_c=1)


def _mirror_lower(out):
    """Copy the lower triangle of every (d, d) block of ``out`` to its upper triangle."""
    lower, upper = np.tril_indices(out.shape[-1], -1)
    out[:, upper, lower] = out[:, lower, upper]
    return out


def _task_moments(design, y, fit_intercept):
    """Centred per-task moments ``A_t = X_t^T X_t / n_t``, ``r_t = X_t^T y_t / n_t``, means."""
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


# -- the structured linear system --------------------------------------------------------------
_POTRF, _POTRI, _POTRS = lapack.dpotrf, lapack.dpotri, lapack.dpotrs


@cache
def _threadpools():
    return ThreadpoolController()


def _blas_threads_for(block_size):
    """One BLAS thread for blocks of up to a few hundred coordinates, where threads only add
    overhead (and stall on a busy CPU); the default for large blocks.

    A coupled solve alternates between scipy's LAPACK and numpy's products, two OpenBLAS
    thread pools: on two cores, 14 blocks of 104 took 8 to 38 ms with two threads against
    3 ms with one (400: 145 against 105 ms; 800: 510 against 610 ms, where threads pay off).
    """
    if _TINY_BLOCK < block_size <= _SMALL_BLOCK:
        return _threadpools().limit(limits=1, user_api="blas")
    return nullcontext()  # tiny blocks go to numpy's batched routines, large ones to LAPACK


_TINY_BLOCK, _SMALL_BLOCK = 8, 512


def _spd_inverse(K, *, rebuild=None):
    """Inverses of a stack of symmetric positive definite matrices K (T, p, p).

    With ``rebuild``, a C-contiguous float64 K is overwritten by its inverses (no copy), and
    ``rebuild(t)`` must return the original block t (for the rare block whose Cholesky fails).
    """
    n_blocks, p, _ = K.shape
    if p <= _TINY_BLOCK:  # numpy's batched LU beats a Python loop over LAPACK calls
        try:
            return np.linalg.inv(K)
        except np.linalg.LinAlgError:
            return np.linalg.pinv(K, hermitian=True)
    # For larger blocks this loop beats numpy's batched inverse (one gufunc call, LU), whose
    # per-block overhead is larger than these two LAPACK calls (5,000 blocks of 30 x 30: 60 ms
    # against 90 ms); so do numpy's batched Cholesky and solve against the loops below.
    in_place = rebuild is not None and K.flags.c_contiguous and K.dtype == np.float64
    out = K if in_place else np.array(K, dtype=np.float64, order="C", copy=True)
    failed = []
    for t in range(n_blocks):
        # out[t].T is a Fortran view of the symmetric block: Cholesky, then inverse, in place
        # (LAPACK fills its upper triangle, i.e. the lower triangle of out[t]).
        factor, info = _POTRF(out[t].T, lower=0, clean=0, overwrite_a=1)
        if info == 0:
            _, info = _POTRI(factor, lower=0, overwrite_c=1)
        if info != 0:
            failed.append(t)
    upper, lower = np.triu_indices(p, 1)
    out[:, upper, lower] = out[:, lower, upper]
    for t in failed:  # numerically singular block (e.g. saturated logistic weights)
        out[t] = np.linalg.pinv(rebuild(t) if in_place else K[t], hermitian=True)
    return out


def _spd_solve(K, rhs):
    """Solutions of ``K[t] x_t = rhs[t]`` for a stack of symmetric positive definite K."""
    n_blocks, p, _ = K.shape
    if p <= _TINY_BLOCK:
        try:
            return np.linalg.solve(K, rhs[:, :, None])[..., 0]
        except np.linalg.LinAlgError:
            return np.matmul(_spd_inverse(K), rhs[:, :, None])[..., 0]
    out = np.empty((n_blocks, p))
    failed = []
    for t in range(n_blocks):
        factor, info = _POTRF(K[t].T, lower=0, clean=0)
        if info == 0:
            out[t], info = _POTRS(factor, rhs[t], lower=0)
        if info != 0:
            failed.append(t)
    for t in failed:
        out[t] = np.linalg.pinv(K[t], hermitian=True) @ rhs[t]
    return out


def _coupled_solve(H, rhs, alpha, cluster_strength, n_penalised, *, pull_last=False):
    """Solve the mean-clustered system ``(blockdiag(H_t + lam E E^T) + (mu / T) U U^T) x = rhs``.

    ``H`` (T, p, p) are the per-task data Hessians (p = d, or d + 1 with the intercept as the
    last, unpenalised coordinate), ``E`` selects the d penalised coordinates, ``U = 1_T (x) E``,
    ``lam = 2 alpha c / T``, ``mu = 2 alpha (1 - c) / T``: the Hessian of
    ``alpha * ((1 - c) ||w_bar||^2 + c / T sum_t ||w_t||^2)``.

    Elimination: with ``G_t = (H_t + lam E E^T)^-1`` and ``v = w_bar``-part of the solution,
    ``x_t = G_t (rhs_t - mu E v)`` and ``v = (1 / T) sum_t E^T x_t`` give the d x d system
    ``(T I + mu S) v = sum_t E^T G_t rhs_t``, ``S = sum_t E^T G_t E``. Since
    ``lam E^T G_t E = I - E^T H_t G_t E``, it is solved in the form
    ``(T I + (c - 1) C) v = c sum_t E^T G_t rhs_t``, ``C = sum_t E^T H_t G_t E`` (0 <= C <= T I),
    which is positive definite for every c > 0 and free of cancellation as c grows.

    With ``pull_last`` (the classifier's intercepts, ``p = d + 1``), the last coordinate is
    pulled towards its mean too: the Hessian of ``alpha * c / T * sum_t (b_t - b_bar)^2`` adds
    ``lam`` to its diagonal and ``-lam / T`` times the all-ones coupling, its mean being free
    (see :func:`_coupled_solve_pulled`).
    """
    with _blas_threads_for(H.shape[1]):
        if pull_last and H.shape[0] > 1:
            return _coupled_solve_pulled(H, rhs, alpha, cluster_strength)
        return _coupled_solve_blocks(H, rhs, alpha, cluster_strength, n_penalised)


def _ridged(H, lam, n_penalised):
    """``H + lam E E^T`` per block (the first ``n_penalised`` diagonal entries raised by
    ``lam``), a new array, and ``rebuild(t)`` giving block t again (for :func:`_spd_inverse`,
    which may overwrite the array)."""
    diag = np.arange(n_penalised)
    K = H.copy()
    K[:, diag, diag] += lam

    def rebuild(t):
        block = H[t].copy()
        block[diag, diag] += lam
        return block

    return K, rebuild


def _coupled_solve_pulled(H, rhs, alpha, cluster_strength):
    """:func:`_coupled_solve` when every coordinate is penalised per task with ``lam`` and the
    last one's mean is free (``mu_last = -lam``; the others' ``mu = 2 alpha (1 - c) / T``).

    With ``G_t = (H_t + lam I)^-1``, ``x_t = G_t (rhs_t - D v)``, ``D = diag(mu, ..., mu,
    -lam)``, ``v`` the mean of the ``x_t``: ``(T I + S D) v = sum_t G_t rhs_t``, ``S = sum_t
    G_t = (T I - C) / lam``, ``C = sum_t H_t G_t``. Writing ``v = K u``, ``K = diag(c, ...,
    c, 1)``, the system ``(T I + (T I - C) D / lam) K u`` has the columns
    ``T e_j + (c - 1) C e_j`` (coefficients) and ``C e_p`` (the pulled coordinate): no
    cancellation as c grows, and ``C e_p`` is the data's curvature along the free mean.
    """
    n_tasks, p, _ = H.shape
    c = cluster_strength
    lam = 2.0 * alpha * c / n_tasks
    diag = np.arange(p)
    K, rebuild = _ridged(H, lam, p)
    G = _spd_inverse(K, rebuild=rebuild)
    x = np.matmul(G, rhs[:, :, None])[..., 0]
    C = np.ascontiguousarray(G).reshape(n_tasks * p, p).T @ np.ascontiguousarray(H).reshape(
        n_tasks * p, p)
    C = 0.5 * (C + C.T)
    system = (c - 1.0) * C
    system[diag, diag] += n_tasks
    system[:, p - 1] = C[:, p - 1]
    u = np.linalg.solve(system, x.sum(axis=0))
    Dv = u * (2.0 * alpha * (1.0 - c) / n_tasks * c)
    Dv[p - 1] = -lam * u[p - 1]
    return x - np.matmul(G, Dv)


def _coupled_solve_blocks(H, rhs, alpha, cluster_strength, n_penalised):
    n_tasks, p, _ = H.shape
    d = n_penalised
    lam = 2.0 * alpha * cluster_strength / n_tasks
    diag = np.arange(d)
    K, rebuild = _ridged(H, lam, d)
    if cluster_strength == 1.0:  # no coupling: independent ridge-type problems
        return _spd_solve(K, rhs)
    G = _spd_inverse(K, rebuild=rebuild)
    x = np.matmul(G, rhs[:, :, None])[..., 0]
    GE = np.ascontiguousarray(G[:, :, :d]).reshape(n_tasks * p, d)
    C = GE.T @ np.ascontiguousarray(H[:, :, :d]).reshape(n_tasks * p, d)
    system = (cluster_strength - 1.0) * 0.5 * (C + C.T)
    system[diag, diag] += n_tasks
    v = scipy.linalg.cho_solve(scipy.linalg.cho_factor(system),
                               cluster_strength * x[:, :d].sum(axis=0))
    mu = 2.0 * alpha * (1.0 - cluster_strength) / n_tasks
    x -= mu * np.matmul(G[:, :, :d], v)
    return x


# -- least squares -----------------------------------------------------------------------------
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
      system of :func:`_coupled_solve` for ``w_bar``. Cost per solve ``O(T d^3)`` in matrix
      products, no factorisation.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Design; sparse X is never densified (its d x d Gram matrices are).
    Y : ndarray of shape (n_samples, n_tasks) or (n_samples,)
        Targets; values where ``mask`` is False are never read. With ``task_index``, the
        target of each row.
    mask : ndarray of bool of shape (n_samples, n_tasks), default=None
        Observed labels; None means all observed.
    fit_intercept : bool, default=True
        Fit an unpenalised intercept per task.
    task_index : ndarray of int of shape (n_samples,), default=None
        Long format: each row's task position; ``Y`` is then the 1-D target of each row and
        ``mask`` must be None. The rows of each task are found by sorting ``task_index``
        (no ``(n_samples, n_tasks)`` array is built).
    n_tasks : int, default=None
        Long format: the number of tasks, default ``task_index.max() + 1``. Every task needs
        a row.

    Attributes
    ----------
    shared_rows : bool
        Whether every task observes the same rows (the single-decomposition path).

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.linear._mean_clustered import MeanClusteredLeastSquares
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
        problem = _Problem(X, Y, mask, task_index=task_index, n_tasks=n_tasks)
        self.fit_intercept = fit_intercept
        self.n_tasks = problem.n_tasks
        self.n_features = problem.X.shape[1]
        self.shared_rows = problem.shared_rows is not None
        if self.shared_rows:
            self._decompose_shared(problem.X[problem.shared_rows], problem.shared_targets())
        else:
            design = problem.design()
            self._decompose_tasks(design, problem.targets(design))

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
        A, r, self._x_mean, self._y_mean = _task_moments(design, y, self.fit_intercept)
        e, self._V = np.linalg.eigh(A)
        self._e = np.maximum(e, 0.0)
        self._q = np.matmul(r[:, None, :], self._V)[:, 0]  # V_t^T r_t

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
        _check_parameters(alpha, cluster_strength)
        T = self.n_tasks
        lam = 2.0 * alpha * cluster_strength / T
        if self.shared_rows:
            q_bar = self._Q.mean(axis=1, keepdims=True)
            coef = (q_bar / (self._e + 2.0 * alpha / T)[:, None]
                    + (self._Q - q_bar) / (self._e + lam)[:, None])
            W = (self._V @ coef).T
        else:
            with _blas_threads_for(self.n_features):
                W = self._solve_tasks(alpha, cluster_strength, lam)
        x_mean = np.broadcast_to(self._x_mean, W.shape)
        return W, self._y_mean - np.einsum("td,td->t", W, x_mean)

    def _solve_tasks(self, alpha, c, lam):
        V, e, q = self._V, self._e, self._q
        g = 1.0 / (e + lam)
        W = np.matmul(V, (q * g)[:, :, None])[..., 0]  # M_t r_t, M_t = (A_t + lam I)^-1
        if c == 1.0:
            return W
        d = self.n_features
        # C = sum_t A_t M_t = sum_t V_t diag(e_t g_t) V_t^T, one matrix product
        C = np.tensordot(V * (e * g)[:, None, :], V, axes=([0, 2], [0, 2]))
        system = (c - 1.0) * 0.5 * (C + C.T)
        system[np.arange(d), np.arange(d)] += self.n_tasks
        v = scipy.linalg.cho_solve(scipy.linalg.cho_factor(system), c * W.sum(axis=0))
        mu = 2.0 * alpha * (1.0 - c) / self.n_tasks
        Mv = np.matmul(V, (g * (v @ V))[:, :, None])[..., 0]  # M_t v
        return W - mu * Mv


def _svd(X):
    try:
        return scipy.linalg.svd(X, full_matrices=False, check_finite=False)
    except np.linalg.LinAlgError:  # gesdd failed to converge: the slower, robust driver
        return scipy.linalg.svd(X, full_matrices=False, check_finite=False,
                                lapack_driver="gesvd")


def solve_mean_clustered(X, Y, mask, alpha, cluster_strength, *, fit_intercept=True,
                         task_index=None, n_tasks=None):
    """Exact solution of the mean-clustered least-squares problem.

    Minimises over ``W`` (n_tasks, n_features) and ``b`` (n_tasks,)

        sum_t 1 / (2 n_t) ||y_t - X_t w_t - b_t||^2
        + alpha * (||w_bar||^2 + cluster_strength / T * sum_t ||w_t - w_bar||^2)

    where ``X_t, y_t`` are the ``n_t`` observed rows of task t and ``w_bar`` the mean of the
    ``w_t``. Shared X (all tasks observe the same rows): two ridge fits from one SVD (see
    :class:`MeanClusteredLeastSquares`). Otherwise the per-task moments, one batch of T
    d x d Cholesky inverses and one d x d system (:func:`_coupled_solve`):
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
    task_index : ndarray of int of shape (n_samples,), default=None
        Long format: each row's task position; ``Y`` is then the 1-D target of each row and
        ``mask`` must be None. The rows of each task are found by sorting ``task_index``
        (no ``(n_samples, n_tasks)`` array is built).
    n_tasks : int, default=None
        Long format: the number of tasks, default ``task_index.max() + 1``. Every task needs
        a row.

    Returns
    -------
    W : ndarray of shape (n_tasks, n_features)
        Task coefficients.
    b : ndarray of shape (n_tasks,)
        Task intercepts.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.linear._mean_clustered import solve_mean_clustered
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
    _check_parameters(alpha, cluster_strength)
    problem = _Problem(X, Y, mask, task_index=task_index, n_tasks=n_tasks)
    if problem.shared_rows is not None:  # two ridge fits from one SVD
        return MeanClusteredLeastSquares(
            problem.X, Y, mask, fit_intercept=fit_intercept, task_index=task_index,
            n_tasks=n_tasks).solve(alpha, cluster_strength)
    design = problem.design()
    return _least_squares_tasks(design, problem.targets(design), alpha, cluster_strength,
                                fit_intercept)


def _least_squares_tasks(design, y, alpha, cluster_strength, fit_intercept):
    """The general (per-task rows) least-squares path: moments, then one coupled solve.

    ``y`` holds the targets in the design's observation order. Dense rows go through
    :func:`_least_squares_stacks` (compiled loops over the tasks); sparse X, and the rare
    dense problem whose factorisations break down numerically, through the per-task moments
    and :func:`_coupled_solve`.
    """
    if isinstance(design, _GroupedDense):
        solution = _least_squares_stacks(design, y, alpha, cluster_strength, fit_intercept)
        if solution is not None:
            return solution
    A, r, x_mean, y_mean = _task_moments(design, y, fit_intercept)
    W = _coupled_solve(A, r, alpha, cluster_strength, A.shape[1])
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
    so no cancellation) and ``G_t v`` for one vector ``v``, as in :func:`_coupled_solve`.
    No per-task Python loop, no inverse, no (T, d, d) array in the kernel form. Returns None
    when a factorisation breaks down (``lam`` below rounding level): the caller then takes
    the path with pseudo-inverse fallbacks.
    """
    n_tasks, d = design.n_tasks, design.n_features
    lam = 2.0 * alpha * cluster_strength / n_tasks
    coupled = cluster_strength != 1.0
    x = np.empty((n_tasks, d))
    x_mean = np.zeros((n_tasks, d))
    y_mean = np.zeros(n_tasks)
    C = np.zeros((d, d))
    y_slots = np.append(np.asarray(y, dtype=np.float64), 0.0)
    factors = []
    for tasks, pos, _, stack in design.blocks:
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
        factors.append((tasks, kernel_form, factor))
    if coupled:
        c = cluster_strength
        system = (c - 1.0) * 0.5 * (C + C.T)
        system[np.arange(d), np.arange(d)] += n_tasks
        v = scipy.linalg.cho_solve(scipy.linalg.cho_factor(system), c * x.sum(axis=0))
        mu = 2.0 * alpha * (1.0 - c) / n_tasks
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
        for j in range(d):
            for m in range(d):
                A[j, m] = 0.0
            x[k, j] = 0.0
        for i in range(n):  # A = F^T F (lower triangle), r = F^T u
            for j in range(d):
                f = F[i, j]
                x[k, j] += f * u[i]
                for m in range(j + 1):
                    A[j, m] += f * F[i, m]
        for j in range(d):
            for m in range(j + 1):
                Lk[j, m] = A[j, m]
                A[m, j] = A[j, m]
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


# -- logistic ----------------------------------------------------------------------------------
def _penalty(W, alpha, cluster_strength, b=None):
    """The mean-clustered penalty of ``W``, plus the pull of the intercepts ``b`` if given."""
    deviation = W - W.mean(axis=0)
    value = alpha * (np.sum(W.mean(axis=0) ** 2)
                     + cluster_strength / W.shape[0] * np.sum(deviation**2))
    if b is not None:
        value += alpha * cluster_strength / W.shape[0] * np.sum((b - b.mean()) ** 2)
    return value


def solve_mean_clustered_logistic(X, Y, mask, alpha, cluster_strength, *, fit_intercept=True,
                                  tol=1e-8, max_iter=50, coef_init=None, intercept_init=None,
                                  task_index=None, n_tasks=None, pull_intercepts=True):
    """Mean-clustered binary logistic regression by Newton's method.

    Minimises over ``W`` (n_tasks, n_features) and ``b`` (n_tasks,)

        sum_t 1 / n_t sum_{i in task t} log(1 + exp(-s_i (x_i w_t + b_t)))
        + alpha * (||w_bar||^2 + cluster_strength / T * sum_t ||w_t - w_bar||^2)
        + alpha * cluster_strength / T * sum_t (b_t - b_bar)^2

    with ``s_i = 2 y_i - 1`` and ``b_bar`` the mean intercept (free). The last term (dropped
    with ``pull_intercepts=False``) pulls the intercepts towards their mean as the
    coefficients are pulled: it keeps the intercept of a task that saw one class finite.
    Each Newton step solves the full Hessian system exactly with the structure of the
    penalty: per task, the (d + 1) x (d + 1) block of ``[X_t, 1]^T D_t [X_t, 1] / n_t`` (the
    intercept is its last coordinate) plus ``2 alpha c / T`` on the coefficients (and on the
    pulled intercept), coupled through the mean only, and eliminated to one d x d (or
    (d + 1) x (d + 1)) system (:func:`_coupled_solve`): ``O(sum_t n_t d^2 + T d^3)`` per step. A
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
    standardize : bool, default=False
        Fit on the features divided by their standard deviation over the observed rows of
        all tasks pooled (see :class:`MeanClusteredRegressor`); ``coef_`` is reported in the
        user's units.
    tol : float, default=1e-8
        Stop when half the squared Newton decrement is at most ``tol``.
    max_iter : int, default=50
        Maximum number of Newton steps; reaching it raises a ConvergenceWarning.
    coef_init, intercept_init : ndarray, default=None
        Starting point (e.g. the solution at a nearby alpha); default zero coefficients and
        each task's log-odds as intercept.
    task_index : ndarray of int of shape (n_samples,), default=None
        Long format: each row's task position; ``Y`` is then the 1-D target of each row and
        ``mask`` must be None. The rows of each task are found by sorting ``task_index``
        (no ``(n_samples, n_tasks)`` array is built).
    n_tasks : int, default=None
        Long format: the number of tasks, default ``task_index.max() + 1``. Every task needs
        a row.
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
    _check_parameters(alpha, cluster_strength)
    problem = _Problem(X, Y, mask, task_index=task_index, n_tasks=n_tasks)
    design = problem.design()
    y = problem.targets(design)
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
    else:
        b = np.zeros(T)
    if not fit_intercept:
        b = np.zeros(T)
    lam = 2.0 * alpha * cluster_strength / T
    mu = 2.0 * alpha * (1.0 - cluster_strength) / T
    pull = pull_intercepts and fit_intercept and T > 1

    def loss(z):
        return float(np.sum(inv_n * (np.logaddexp(0.0, z) - y * z)))

    def objective(z, W, b):
        return loss(z) + _penalty(W, alpha, cluster_strength, b if pull else None)

    z = design.matvec(W) + b[tasks]
    value = objective(z, W, b)
    n_iter, converged, decrement = 0, False, np.inf
    while n_iter < max_iter:
        p = expit(z)
        residual = (p - y) * inv_n
        weight = p * (1.0 - p) * inv_n
        grad = design.rmatvec(residual) + lam * W + mu * W.mean(axis=0)
        H = design.gram(weight)
        if fit_intercept:
            grad_b = design.segment_sum(residual)
            if pull:
                grad_b = grad_b + lam * (b - b.mean())
            grad = np.column_stack([grad, grad_b])
            H = _with_intercept(H, design.rmatvec(weight), design.segment_sum(weight))
        step = _coupled_solve(H, -grad, alpha, cluster_strength, d, pull_last=pull)
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


# -- estimators --------------------------------------------------------------------------------
def _predict_rows(X, W, b, task_index):
    """``x_i . w_{t_i} + b_{t_i}`` for each row's own task (no (n, n_tasks) array)."""
    coef = W[task_index]
    if sp.issparse(X):
        dot = np.asarray(X.multiply(coef).sum(axis=1)).ravel()
    else:
        dot = np.einsum("ij,ij->i", X, coef)
    return dot + b[task_index]


class _MeanClusteredMixin:
    """Scaling, coefficients in the user's units, the shared (mean) model, predictions."""

    _parameter_constraints = {
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "cluster_strength": [Interval(Real, 0, None, closed="neither")],
        "fit_intercept": ["boolean"],
        "standardize": ["boolean"],
        "unknown_task": [StrOptions({"error", "shared"})],
    }
    _X_dtype = np.float64

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _scaled(self, X, row_weight):
        """``(X / scale, scale)`` with ``standardize``, else ``(X, None)``."""
        if not self.standardize:
            return X, None
        scale = column_scales(X, row_weight, self.fit_intercept)
        return scale_columns(X, scale), scale

    def _set_coef(self, W, b, scale=None):
        """Store coefficients fitted on ``X / scale`` in the user's units, and the mean model."""
        self.coef_ = W if scale is None else W / scale
        self.intercept_ = np.asarray(b, dtype=np.float64)
        self.shared_coef_ = self.coef_.mean(axis=0)
        self.shared_intercept_ = float(self.intercept_.mean())

    def _decision(self, X):
        return np.asarray(safe_sparse_dot(X, self.coef_.T, dense_output=True)) + self.intercept_

    def _shared_decision(self, X):
        return (np.asarray(safe_sparse_dot(X, self.shared_coef_, dense_output=True)).ravel()
                + self.shared_intercept_)


def _check_two_classes(estimator, classes):
    """Raise for a task with one class that shares no two-class label set with the others."""
    for task, task_classes in zip(estimator.tasks_, classes):
        where = "y" if estimator._layout == "1d" else f"Task {_hashable(task)!r}"
        if len(task_classes) < 2:
            raise ValueError(
                f"{where} has only one class ({_hashable(task_classes[0])!r}) and no "
                "label set shared with the other tasks; "
                f"{type(estimator).__name__} fits binary tasks: a task may see one class "
                "only when all tasks share two classes."
            )


class _BinaryLogisticMixin:
    """Binary tasks with a logistic link: the class checks and the predictions of the
    fitted ``coef_`` / ``intercept_`` (shared by the fixed-parameter and the CV classifier)."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def _check_n_classes(self, classes):
        super()._check_n_classes(classes)
        _check_two_classes(self, classes)

    def _predict_proba_raw(self, X):
        positive = expit(self._decision(X))
        return [np.column_stack([1.0 - p, p]) for p in positive.T]

    def _predict_proba_shared(self, X):
        p = expit(self._shared_decision(X))
        return np.column_stack([1.0 - p, p])

    def _predict_codes(self, X):
        return (self._decision(X) > 0).astype(np.intp)

    def _predict_task_codes(self, X, task_index):
        return (_predict_rows(X, self.coef_, self.intercept_, task_index) > 0).astype(np.intp)


class MeanClusteredRegressor(_MeanClusteredMixin, MultiTaskRegressorMixin, BaseEstimator):
    r"""Multi-task ridge regression with every task pulled towards the mean task.

    Minimises over the task coefficients ``W = [w_1, ..., w_T]`` and intercepts ``b``::

        sum_t 1 / (2 n_t) * ||y_t - X_t w_t - b_t||^2_2
        + alpha * (||w_bar||^2_2 + cluster_strength / T * sum_t ||w_t - w_bar||^2_2)

    where ``X_t, y_t`` are the ``n_t`` observed rows of task ``t``, ``T`` is the number of tasks
    and ``w_bar = (1 / T) * sum_t w_t`` is the mean task (a function of ``W``, not a free
    variable). The intercepts are not penalised. This is the regularised multi-task learning
    of Evgeniou & Pontil (2004). The solution is exact (no iterations).

    Parameters
    ----------
    alpha : float, default=1.0
        Regularisation strength, > 0.
    cluster_strength : float, default=1.0
        Weight of the deviations from the mean task, > 0. 1 fits an independent ridge
        regression per task; larger values pull the tasks together and ``-> inf`` gives one
        pooled ridge model with per-task intercepts. See Notes.
    fit_intercept : bool, default=True
        Fit an unpenalised intercept per task.
    standardize : bool, default=False
        Fit on the features divided by their standard deviation over the observed rows of
        all tasks pooled (a row counts once per task that observes it; without intercepts,
        the root mean square), glmnet's convention; ``coef_`` is reported in the user's
        units. One scale for all tasks, not one per task: the penalty compares the tasks'
        coefficients, which must share their units. The columns are not centred (the
        intercepts absorb any shift; sparse X stays sparse) and a constant column is left
        as it is. Off by default, so that the model is exactly the one above on the given
        X (and its equivalences with scikit-learn's Ridge hold); the CV variant scales by
        default.
    unknown_task : {"error", "shared"}, default="error"
        A task id not seen in fit, at predict or score time: raise
        :class:`~skmtl.UnknownTaskError`, or (``"shared"``) predict it with the mean model,
        ``X @ shared_coef_ + shared_intercept_``.

    Attributes
    ----------
    coef_ : ndarray of shape (n_tasks, n_features)
        Task coefficients ``W`` (one row per task, also for a 1-D y).
    intercept_ : ndarray of shape (n_tasks,)
        Task intercepts (zeros when ``fit_intercept=False``).
    shared_coef_ : ndarray of shape (n_features,)
        The mean model ``w_bar = coef_.mean(axis=0)``, what every task is pulled towards:
        the prediction for a task not seen in fit.
    shared_intercept_ : float
        The mean intercept, ``intercept_.mean()``.
    tasks_ : ndarray of shape (n_tasks,)
        Task labels: column positions, a DataFrame's column names or the sorted ``task_ids``.
    n_tasks_ : int
        Number of tasks.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    MeanClusteredClassifier : The same penalty with the logistic loss.
    skmtl.IndependentTasks : One model per task (``cluster_strength=1`` with Ridge).
    skmtl.PooledTasks : One model for all tasks.

    Notes
    -----
    ``c = cluster_strength`` sets how strongly tasks are pulled together. Since
    ``sum_t ||w_t - w_bar||^2 = sum_t ||w_t||^2 - T ||w_bar||^2``, the penalty equals
    ``alpha * ((1 - c) ||w_bar||^2 + c / T * sum_t ||w_t||^2)``, a positive definite quadratic
    form exactly when ``alpha > 0`` and ``c > 0`` (its eigenvalues are ``2 alpha / T`` along
    the mean and ``2 alpha c / T`` across tasks), so both are constrained to be > 0 and the
    solution is unique. ``c < 1`` penalises the deviations less than the mean (tasks drift
    apart), ``c = 1`` decouples the tasks, ``c > 1`` pulls them together:

    - ``c = 1``: the penalty is ``alpha / T * sum_t ||w_t||^2`` and the tasks are independent
      ridge regressions. Multiplying task t's objective by ``2 n_t`` gives scikit-learn's
      scaling: ``Ridge(alpha=2 * n_t * alpha / T)`` on the task's observed rows.
    - ``c -> inf``: all ``w_t`` equal one ``w`` and the objective becomes
      ``sum_t 1 / (2 n_t) ||y_t - X_t w - b_t||^2 + alpha ||w||^2``: one pooled model with
      per-task intercepts, each row weighted by ``1 / n_t``. Eliminating ``b_t`` centres
      every task's rows, so it is ``Ridge(alpha=2 * alpha, fit_intercept=False)`` fitted on
      the per-task centred rows of all tasks with ``sample_weight = 1 / n_t``, then
      ``b_t = mean(y_t) - mean(X_t) w``.

    Solver: each ``b_t`` is eliminated by centring task t's rows; with ``A_t = X_t^T X_t / n_t``
    and ``r_t = X_t^T y_t / n_t`` (centred) the optimality conditions read
    ``(A_t + lam I) w_t + mu w_bar = r_t``, ``lam = 2 alpha c / T``,
    ``mu = 2 alpha (1 - c) / T``. So ``w_t = M_t (r_t - mu w_bar)`` with
    ``M_t = (A_t + lam I)^-1``, and averaging over tasks leaves one d x d system,
    ``(T I + mu sum_t M_t) w_bar = sum_t M_t r_t``, solved in the equivalent form
    ``(T I + (c - 1) sum_t A_t M_t) w_bar = c sum_t M_t r_t`` (positive definite for all
    ``c > 0``, no cancellation for large c). Cost ``O(sum_t n_t d^2 + T d^3)``; sparse X is
    never densified (only the d x d matrices ``A_t`` are dense). When every task observes
    the same rows (a wide Y without missing labels), all ``A_t = A = V diag(e) V^T`` (one SVD
    of X) and the solution is two ridge fits in that basis: with ``q_t = V^T r_t`` and their
    mean ``q_bar``, ``w_t = V (q_bar / (e + 2 alpha / T) + (q_t - q_bar) / (e + lam))``.

    References
    ----------
    T. Evgeniou and M. Pontil, "Regularized multi-task learning", KDD 2004.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.linear import MeanClusteredRegressor
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> Y = np.array([[0.0, 0.0], [1.0, 3.0], [2.0, np.nan], [3.0, 9.0]])
    >>> model = MeanClusteredRegressor(alpha=0.01).fit(X, Y)  # independent ridge fits
    >>> model.coef_.round(2)
    array([[0.99],
           [2.98]])
    >>> model.predict([[4.0]], task_ids=[1]).round(2)
    array([11.95])
    >>> MeanClusteredRegressor(alpha=0.01, cluster_strength=10).fit(X, Y).coef_.round(2)
    array([[1.06],
           [2.93]])
    >>> MeanClusteredRegressor(alpha=0.01, cluster_strength=1e6).fit(X, Y).coef_.round(2)
    array([[2.09],
           [2.09]])
    """

    def __init__(self, alpha=1.0, *, cluster_strength=1.0, fit_intercept=True, standardize=False,
                 unknown_task="error"):
        self.alpha = alpha
        self.cluster_strength = cluster_strength
        self.fit_intercept = fit_intercept
        self.standardize = standardize
        self.unknown_task = unknown_task

    def _fit_multitask(self, X, Y, mask):
        X, scale = self._scaled(X, observation_weights(mask))
        self._set_coef(*solve_mean_clustered(
            X, Y, mask, self.alpha, self.cluster_strength, fit_intercept=self.fit_intercept),
            scale)

    def _fit_long(self, X, y, task_index):
        X, scale = self._scaled(X, observation_weights(None, X.shape[0]))
        self._set_coef(*solve_mean_clustered(
            X, y, None, self.alpha, self.cluster_strength, fit_intercept=self.fit_intercept,
            task_index=task_index, n_tasks=self.n_tasks_), scale)

    def _predict_raw(self, X):
        return self._decision(X)

    def _predict_shared(self, X):
        return self._shared_decision(X)

    def _predict_tasks(self, X, task_index):
        return _predict_rows(X, self.coef_, self.intercept_, task_index)


class MeanClusteredClassifier(_BinaryLogisticMixin, _MeanClusteredMixin, MultiTaskClassifierMixin,
                              BaseEstimator):
    r"""Multi-task binary logistic regression with every task pulled towards the mean task.

    Minimises over the task coefficients ``W = [w_1, ..., w_T]`` and intercepts ``b``::

        sum_t 1 / n_t * sum_{i in task t} log(1 + exp(-s_i (x_i w_t + b_t)))
        + alpha * (||w_bar||^2_2 + cluster_strength / T * sum_t ||w_t - w_bar||^2_2)
        + alpha * cluster_strength / T * sum_t (b_t - b_bar)^2

    where task ``t`` has ``n_t`` observed labels, ``s_i = +1`` for the task's second class
    (``classes_[t][1]``) and ``-1`` for its first, ``T`` is the number of tasks,
    ``w_bar = (1 / T) * sum_t w_t`` is the mean task and ``b_bar`` the mean intercept (free,
    unpenalised). Every task must be binary. In a binary multi-task problem (all tasks share
    two classes) a task may have seen one class only: the last term, which pulls the
    intercepts towards their mean as the coefficients are pulled, keeps its intercept finite
    (without it, the loss of a one-class task falls towards 0 as its intercept runs off to
    infinity). With one task it vanishes.

    Parameters
    ----------
    alpha : float, default=1.0
        Regularisation strength, > 0.
    cluster_strength : float, default=1.0
        Weight of the deviations from the mean task, > 0. 1 fits an independent
        l2-penalised logistic regression per task; larger values pull the tasks together and
        ``-> inf`` gives one pooled model with per-task intercepts. See Notes.
    fit_intercept : bool, default=True
        Fit an intercept per task (pulled towards the mean intercept, see above).
    standardize : bool, default=False
        Fit on the features divided by their standard deviation over the observed rows of
        all tasks pooled (see :class:`MeanClusteredRegressor`); ``coef_`` is reported in the
        user's units.
    tol : float, default=1e-8
        Newton's method stops when half the squared Newton decrement (the quadratic model's
        estimate of the objective's distance to its minimum) is at most ``tol``.
    max_iter : int, default=50
        Maximum number of Newton steps; reaching it raises a ConvergenceWarning.
    unknown_task : {"error", "shared"}, default="error"
        A task id not seen in fit: raise :class:`~skmtl.UnknownTaskError`, or
        (``"shared"``) give it the mean model's probabilities,
        ``sigmoid(X @ shared_coef_ + shared_intercept_)`` for the second class.

    Attributes
    ----------
    coef_ : ndarray of shape (n_tasks, n_features)
        Task coefficients ``W`` (one row per task, also for a 1-D y).
    intercept_ : ndarray of shape (n_tasks,)
        Task intercepts (zeros when ``fit_intercept=False``).
    shared_coef_ : ndarray of shape (n_features,)
        The mean model ``w_bar = coef_.mean(axis=0)``.
    shared_intercept_ : float
        The mean intercept ``b_bar = intercept_.mean()``.
    n_iter_ : int
        Number of Newton steps taken.
    classes_ : ndarray or list of ndarray
        The two classes of a 1-D y, else the two classes of each task.
    tasks_ : ndarray of shape (n_tasks,)
        Task labels: column positions, a DataFrame's column names or the sorted ``task_ids``.
    n_tasks_ : int
        Number of tasks.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    MeanClusteredRegressor : The same penalty with the squared loss.

    Notes
    -----
    ``c = cluster_strength`` sets how strongly tasks are pulled together. Since
    ``sum_t ||w_t - w_bar||^2 = sum_t ||w_t||^2 - T ||w_bar||^2``, the penalty equals
    ``alpha * ((1 - c) ||w_bar||^2 + c / T * sum_t ||w_t||^2)``, a positive definite quadratic
    form exactly when ``alpha > 0`` and ``c > 0`` (its eigenvalues are ``2 alpha / T`` along
    the mean and ``2 alpha c / T`` across tasks), so both are constrained to be > 0 and the
    solution is unique. ``c < 1`` penalises the deviations less than the mean (tasks drift
    apart), ``c = 1`` decouples the tasks, ``c > 1`` pulls them together:

    - ``c = 1``: the coefficients are independent problems
      ``1 / n_t sum log(1 + exp(-s z)) + alpha / T ||w_t||^2``, coupled only through the pull
      of the intercepts. Without intercepts (or without that pull, ``pull_intercepts=False``
      in :func:`solve_mean_clustered_logistic`), dividing by ``2 alpha / T`` gives
      scikit-learn's ``0.5 ||w||^2 + C sum log-loss``:
      ``LogisticRegression(C=T / (2 * n_t * alpha))`` on the task's rows (one task, where
      the pull vanishes: ``C = 1 / (2 n alpha)``).
    - ``c -> inf``: one shared ``w`` with penalty ``alpha ||w||^2`` and one shared
      intercept, each row weighted by ``1 / n_t``.

    Solver: Newton's method. The Hessian is block diagonal over tasks (the
    ``(d + 1) x (d + 1)`` matrix ``[X_t, 1]^T D_t [X_t, 1] / n_t`` with the logistic weights
    ``D_t``, plus ``2 alpha c / T`` on the coefficients, the intercept as the last coordinate)
    plus the coupling of the mean, so every Newton system is solved exactly by the same
    elimination to one d x d system as the regressor's normal equations:
    ``O(sum_t n_t d^2 + T d^3)`` per step, usually below 10 steps. A backtracking line search
    on the objective keeps every step a descent step.

    References
    ----------
    T. Evgeniou and M. Pontil, "Regularized multi-task learning", KDD 2004.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.linear import MeanClusteredClassifier
    >>> X = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    >>> Y = np.array([[0, 1], [0, 1], [1, 0], [1, 0]])
    >>> model = MeanClusteredClassifier(alpha=0.01).fit(X, Y)
    >>> model.predict([[-3.0], [3.0]])
    array([[0, 1],
           [1, 0]])
    >>> model.coef_.round(2)
    array([[ 2.9],
           [-2.9]])
    >>> model.n_iter_
    7
    >>> model.set_params(cluster_strength=5).fit(X, Y).coef_.round(2)
    array([[ 1.85],
           [-1.85]])
    """

    _max_classes = 2

    _parameter_constraints = {
        **_MeanClusteredMixin._parameter_constraints,
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, alpha=1.0, *, cluster_strength=1.0, fit_intercept=True, standardize=False,
                 tol=1e-8, max_iter=50, unknown_task="error"):
        self.alpha = alpha
        self.cluster_strength = cluster_strength
        self.fit_intercept = fit_intercept
        self.standardize = standardize
        self.tol = tol
        self.max_iter = max_iter
        self.unknown_task = unknown_task

    def _fit_multitask(self, X, Y, mask):
        X, scale = self._scaled(X, observation_weights(mask))
        W, b, self.n_iter_ = solve_mean_clustered_logistic(
            X, Y, mask, self.alpha, self.cluster_strength, fit_intercept=self.fit_intercept,
            tol=self.tol, max_iter=self.max_iter)
        self._set_coef(W, b, scale)

    def _fit_long(self, X, y, task_index):
        X, scale = self._scaled(X, observation_weights(None, X.shape[0]))
        W, b, self.n_iter_ = solve_mean_clustered_logistic(
            X, y, None, self.alpha, self.cluster_strength, fit_intercept=self.fit_intercept,
            tol=self.tol, max_iter=self.max_iter, task_index=task_index,
            n_tasks=self.n_tasks_)
        self._set_coef(W, b, scale)


