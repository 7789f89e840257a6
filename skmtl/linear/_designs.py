"""Designs: X seen through the observed (row, task) pairs of each task.

Both model families keep X once and each task's observed rows as indices into it; a
per-observation vector (targets, residuals, linear predictors) has one entry per observed pair,
never an ``(n_samples, n_tasks)`` array.

- :class:`MaskedDesign` (block-sparse and trace-norm solvers): X dense (Fortran-ordered) or
  CSC sparse, never densified, read one column at a time by numba kernels (block coordinate
  descent); or, for a solver that reads whole tasks (``row_major=True``), a dense X read row
  by row: the observed rows as a row-major copy in task order, X itself C-ordered, or BLAS
  products with the shared X, by the labels' shape.
- The mean-clustered designs (exact solvers), read with BLAS: all tasks on the same dense rows
  (:class:`SharedDense`), tasks on their own dense rows stacked by size (:class:`GroupedDense`)
  and sparse X with a column block per task (:class:`SparseDesign`).
"""

import numpy as np
import scipy.sparse as sp
from numba import njit, uint64

from skmtl.linear._linalg import _SYRK_WORK, _mirror_lower, _syrk_lower

__all__ = [
    "GroupedDense",
    "MaskedDesign",
    "Problem",
    "SharedDense",
    "SparseDesign",
    "check_no_empty_task",
    "observed_pairs",
    "predict_rows",
    "shifted_row_blocks",
    "sparse_column_moments",
]


def observed_pairs(mask):
    """The observed ``(rows, tasks)`` of a mask in task-major order (by task, then row)."""
    tasks, rows = np.nonzero(mask.T)
    return rows, tasks


def check_wide(X, Y, mask):
    """Wide targets of a solver as 2-D ``Y`` and its boolean ``mask`` (all True when None),
    checked against X; raises if a task has no observed label."""
    if Y.ndim == 1:
        Y = Y[:, None]
    mask = np.ones(Y.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != Y.shape or Y.shape[0] != X.shape[0]:
        raise ValueError(
            f"X {X.shape}, Y {Y.shape} and mask {mask.shape} must have the same number of rows, "
            "and Y and mask the same shape."
        )
    check_no_empty_task(mask.any(axis=0))
    return Y, mask


def check_no_empty_task(observed):
    """Raise when a task (False in ``observed``, one entry per task) has no observed label."""
    empty = np.flatnonzero(~observed)
    if empty.size:
        raise ValueError(f"Task(s) {empty[:5].tolist()} have no observed label.")


@njit(cache=True)
def _sparse_column_moments(data, indices, indptr, by_column, weights, mean, square):
    """Weighted sums of each column of a CSC (``by_column``) or CSR matrix and of its squares,
    without a copy of the matrix."""
    for major in range(indptr.shape[0] - 1):
        for p in range(indptr[major], indptr[major + 1]):
            column, row = (major, indices[p]) if by_column else (indices[p], major)
            x = data[p] * weights[row]
            mean[column] += x
            square[column] += x * data[p]


def sparse_column_moments(X, weights):
    """``(X, mean, square)``: the ``weights``-weighted sums of each column of a sparse ``X``
    and of its squares, in one pass without a copy of X (which is returned as a canonical
    CSR or CSC matrix: it is copied only when it has another format or duplicate entries,
    whose squares must be summed first)."""
    if X.format not in ("csr", "csc") or not X.has_canonical_format:
        X = sp.csr_matrix(X, copy=True)
        X.sum_duplicates()
    mean, square = np.zeros(X.shape[1]), np.zeros(X.shape[1])
    _sparse_column_moments(X.data, X.indices, X.indptr, X.format == "csc",
                           np.asarray(weights, dtype=np.float64), mean, square)
    return X, mean, square


# entries of X per block of rows in shifted_row_blocks (8 MiB of float64)
_BLOCK_ENTRIES = 2**20


def shifted_row_blocks(X, shift):
    """``(rows, X[rows] - shift)`` over consecutive blocks of rows of a dense or sparse X, each
    a dense array of at most about ``_BLOCK_ENTRIES`` entries (at least one row): moments of X
    from a shift (its column means) without a copy of X, where raw moments of a column far
    from its zero would cancel."""
    step = max(1, _BLOCK_ENTRIES // max(X.shape[1], 1))
    for start in range(0, X.shape[0], step):
        rows = slice(start, start + step)
        block = X[rows]
        yield rows, (block.toarray() if sp.issparse(block) else block) - shift


def _center_large_mean_columns(X, weights):
    """Sparse ``X`` (CSR or CSC) with its columns whose weighted mean exceeds their weighted
    standard deviation centred (dense columns of a sparse matrix: a column of years, a
    constant), and the mean of every column. Such a column is a near copy of the
    intercepts, which a solver that steps one column at a time resolves very slowly. X is
    returned as it is (not copied) when no column is centred; otherwise as a CSC copy."""
    X, mean, square = sparse_column_moments(X, weights)
    large = mean**2 > np.maximum(square - mean**2, 0.0)
    if not large.any():
        return X, mean, large
    X = sp.csc_matrix(X)
    columns = np.flatnonzero(large)
    centred = sp.csc_matrix(X[:, columns].toarray() - mean[columns])
    kept = X @ sp.diags((~large).astype(np.float64))  # the other columns, unchanged
    placed = centred @ sp.csr_matrix((np.ones(columns.size), (np.arange(columns.size),
                                                              columns)),
                                     shape=(columns.size, X.shape[1]))
    out = sp.csc_matrix(kept + placed)
    out.sum_duplicates()
    return out, mean, large


class MaskedDesign:
    """X with the observed (row, task) pairs of a label mask.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        Design. Dense X is copied to a Fortran-ordered float64 array when it is not one already
        (or when ``center`` asks for a shifted copy); sparse X is kept sparse (CSC).
    mask : ndarray of bool of shape (n_samples, n_tasks)
        Observed labels.
    center : {False, True, "columns"}, default=False
        Dense X: subtract the mean of the observed rows from every column (``x_shift``).
        Better conditioning for a model with intercepts, which absorb the shift. Sparse X:
        ``"columns"`` subtracts it from the columns whose mean exceeds their standard
        deviation (at least half of their entries are nonzero, so centring them at most
        doubles their storage; other columns stay as they are).
    row_major : bool, default=False
        Dense X only, for solvers that only read whole tasks (a task's observed rows read one
        after the other, each row contiguously: 2 to 3 times faster than the Fortran-ordered
        columns of 1,000 tasks of 20 rows). The column-wise kernels (block coordinate
        descent) read a Fortran-ordered X and do not ask for it. Three layouts, by the
        labels' shape:

        - no more observations than rows (long data, or one task per row): the observed
          rows, in observation order, as a row-major copy (at most the size of X);
        - wide data with labels on a quarter of its (row, task) pairs or more: X is not
          copied and ``shared`` is True: :meth:`predict_obs` and :meth:`correlations` (all
          features) are then BLAS products of X with ``(n_tasks, n_samples)`` arrays;
        - wide data with fewer labels (bioactivity: most molecules measured on a few
          targets): X kept C-ordered (no copy when it already is), each observation's row
          read through its index. A Fortran-ordered X read task by task gathers a few rows
          of every column, one cache line per entry (MoleculeACE, 6,667 rows of 2,048
          features, 9,052 labels of 30 targets: 145 ms a pass, 10 times this layout's).

        ``row_major`` is True for the first and last (the row-wise kernels read them).
    """

    def __init__(self, X, mask, *, center=False, row_major=False):
        mask = np.asarray(mask, dtype=bool)
        if sp.issparse(X):
            # row-major: a sparse column is read once, each entry feeds its row's observations
            rows, tasks = np.nonzero(mask)
        else:
            # task-major: each task reads its own rows of a dense column (a gathered dot)
            rows, tasks = observed_pairs(mask)
        self._build(X, rows, tasks, mask.shape[1], mask.sum(axis=1), center, row_major)

    @classmethod
    def from_long(cls, X, task_index, n_tasks, *, center=False, row_major=False):
        """The design of long data, one observation per row (row ``i`` of task
        ``task_index[i]``), without forming an ``(n_samples, n_tasks)`` mask."""
        self = cls.__new__(cls)
        task_index = np.asarray(task_index, dtype=np.intp)
        rows = (np.arange(X.shape[0]) if sp.issparse(X)
                else np.argsort(task_index, kind="stable"))  # the two orders of __init__
        self._build(X, rows, task_index[rows], n_tasks, np.ones(X.shape[0]), center, row_major)
        return self

    def _build(self, X, rows, tasks, n_tasks, counts, center, row_major=False):
        """The design from the observed pairs (row-major for sparse X, task-major for dense)
        and each row's number of observations."""
        self.n_samples, self.n_tasks = X.shape[0], n_tasks
        self.n_features = X.shape[1]
        self.sparse = sp.issparse(X)
        self.obs_row = rows.astype(np.int64)
        self.obs_task = tasks.astype(np.int64)
        self.n_obs = rows.shape[0]
        self.obs_ptr = np.zeros(self.n_samples + 1, dtype=np.int64)
        self.n_t = np.bincount(self.obs_task, minlength=self.n_tasks).astype(np.float64)
        self.task_ptr = np.zeros(self.n_tasks + 1, dtype=np.int64)
        np.cumsum(self.n_t.astype(np.int64), out=self.task_ptr[1:])
        if self.sparse:
            np.cumsum(counts, out=self.obs_ptr[1:])
            self.contiguous = np.zeros(self.n_tasks, dtype=np.bool_)
        row_major = row_major and not self.sparse and self.n_features > 0
        copy = row_major and self.n_obs <= self.n_samples
        # wide data whose labels cover a quarter of its (row, task) pairs or more, for a solver
        # that reads whole tasks: predictions and correlations as two BLAS products of the
        # shared X with (T, n_samples) arrays, the size of the Y given, 3 to 4 times faster
        # than the kernels' dot products task by task (yeast, 14 tasks on the same rows)
        self.shared = (row_major and not copy
                       and 4 * self.n_obs >= self.n_samples * self.n_tasks)
        self.row_major = row_major and not self.shared
        # the rows the kernels read: observation k is row k of the row-major copy, or row
        # obs_row[k] of X itself
        self._rows = np.arange(self.n_obs, dtype=np.int64) if copy else self.obs_row
        self._indexed = (self._rows, not copy)  # (the row-wise kernels' arguments)
        if not self.sparse:
            # tasks whose rows are consecutive rows of X (sorted long data): plain dot products
            first, last = self.task_ptr[:-1], self.task_ptr[1:] - 1
            n_last = max(self.n_obs - 1, 0)
            span = self._rows[np.clip(last, 0, n_last)] - self._rows[np.clip(first, 0, n_last)]
            self.contiguous = (last >= first) & (span == last - first)
        self.x_shift = np.zeros(self.n_features)
        if self.sparse:
            X = sp.csc_matrix(X)
            X.sum_duplicates()
            if center == "columns" and self.n_obs:
                X, mean, large = _center_large_mean_columns(X, counts / self.n_obs)
                self.x_shift = np.where(large, mean, 0.0)
            index_dtype = np.int32 if X.nnz < 2**31 - 1 else np.int64
            self.data = np.require(X.data, dtype=np.float64, requirements=["C", "W"])
            self.indices = np.require(X.indices, dtype=index_dtype, requirements=["C", "W"])
            self.indptr = np.require(X.indptr, dtype=index_dtype, requirements=["C", "W"])
            self.X = np.zeros((0, 0), order="F")
        else:
            if center and self.n_obs:
                weights = counts / self.n_obs
                self.x_shift = weights @ np.asarray(X, dtype=np.float64)
            order = "C" if self.row_major else "F"
            if copy:  # one copy of the observed rows (X is C-ordered afterwards)
                self.X = np.ascontiguousarray(np.asarray(X)[self.obs_row], dtype=np.float64)
                if center and self.n_obs:
                    self.X -= self.x_shift
            elif center and self.n_obs:
                self.X = np.empty(X.shape, dtype=np.float64, order=order)
                np.subtract(X, self.x_shift, out=self.X)
            else:
                self.X = np.require(X, dtype=np.float64, requirements=[order, "W"])
            self.data = np.zeros(0)
            self.indices = np.zeros(0, dtype=np.int32)
            self.indptr = np.zeros(1, dtype=np.int32)

    def _args(self):
        return (self.X, self.data, self.indices, self.indptr, self.sparse, self.obs_ptr,
                self.obs_task, self.task_ptr, self._rows, self.contiguous)

    def _task_rows(self, v):
        """A per-observation vector as a ``(T, n_samples)`` array, zero where unobserved."""
        if self.n_obs == self.n_samples * self.n_tasks:  # every pair, in task-major order
            return np.reshape(v, (self.n_tasks, self.n_samples))
        out = np.zeros((self.n_tasks, self.n_samples))
        out[self.obs_task, self.obs_row] = v
        return out

    def correlations(self, v, features=None):
        """``C[t, k] = sum over task t's observations i of X[i, features[k]] * v_i``."""
        if features is None:
            if self.shared:
                return self._task_rows(v) @ self.X
            if self.row_major:
                out = np.empty((self.n_tasks, self.n_features))
                _rowwise_correlations(self.X, self.task_ptr, *self._indexed, v, out)
                return out
            features = np.arange(self.n_features)
        out = np.zeros((self.n_tasks, len(features)))
        _correlations(*self._args(), v, np.asarray(features, dtype=np.int64), out)
        return out

    def task_moments(self):
        """Per-task sums of each column and of its squares over the observed rows, (T, d)."""
        s1 = np.zeros((self.n_tasks, self.n_features))
        s2 = np.zeros((self.n_tasks, self.n_features))
        if self.row_major:
            _rowwise_task_moments(self.X, self.task_ptr, *self._indexed, s1, s2)
        else:
            _masked_task_moments(*self._args(), s1, s2)
        return s1, s2

    def predict_obs(self, W):
        """``x_i w_t`` of every observation (i, t) (the shifted X when centred)."""
        W = np.ascontiguousarray(W, dtype=np.float64)
        if self.shared:
            Z = W @ self.X.T  # (T, n_samples)
            return Z.ravel() if Z.size == self.n_obs else Z[self.obs_task, self.obs_row]
        if self.row_major:
            out = np.empty(self.n_obs)
            _rowwise_predict(self.X, self.task_ptr, *self._indexed, W, out)
            return out
        out = np.zeros(self.n_obs)
        nonzero = np.flatnonzero(np.any(W != 0, axis=0)).astype(np.int64)
        _predict_obs(*self._args(), W, nonzero, out)
        return out

    def residual_correlations(self, W, y):
        """``(v, C)``: the residuals ``v_i = y_i - x_i w_t`` of every observation (i, t) and
        their correlations ``C = correlations(v)``, in one pass over a dense X (each task's
        rows are read once, while in cache: X is read from memory once, not twice)."""
        if self.sparse or self.shared:
            v = y - self.predict_obs(W)
            return v, self.correlations(v)
        v, out = np.empty(self.n_obs), np.empty((self.n_tasks, self.n_features))
        W = np.ascontiguousarray(W, dtype=np.float64)
        if self.row_major:
            _rowwise_residual_correlations(self.X, self.task_ptr, *self._indexed, W, y, v,
                                           out)
        else:
            _dense_residual_correlations(self.X, self.task_ptr, self._rows, self.contiguous, W,
                                         y, v, out)
        return v, out

    def task_sums(self, v):
        """Per-task sums of a per-observation vector, (T,)."""
        if self.sparse:
            return np.bincount(self.obs_task, weights=v, minlength=self.n_tasks)
        out = np.empty(self.n_tasks)
        _segment_sums(self.task_ptr, np.asarray(v, dtype=np.float64), out)
        return out


# -- numba kernels --------------------------------------------------------------------------
# X is dense (Fortran-ordered) or CSC (data, indices, indptr). Sparse: observations in row-major
# order, those of row i are obs_ptr[i] .. obs_ptr[i + 1] - 1 with tasks obs_task[k]. Dense:
# task-major order, task t's are task_ptr[t] .. task_ptr[t + 1] - 1 with rows obs_row[k]
# (consecutive rows when contiguous[t]).
_FAST = {"reassoc", "contract", "nsz"}


# Unsigned indices spare numba's negative-index wraparound, which blocks vectorisation.
@njit(cache=True, fastmath=_FAST)
def _dense_task_dot(X, j, obs_row, contiguous, v, t, start, stop):
    acc = 0.0
    jj = uint64(j)
    if contiguous[t]:
        shift = uint64(obs_row[start] - start)
        for k in range(uint64(start), uint64(stop)):
            acc += X[shift + k, jj] * v[k]
    else:
        for k in range(uint64(start), uint64(stop)):
            acc += X[uint64(obs_row[k]), jj] * v[k]
    return acc


@njit(cache=True, fastmath=_FAST)
def _dense_task_axpy(X, j, obs_row, contiguous, scale, v, t, start, stop):
    """v[k] += scale * X[row_k, j] over task t's observations."""
    jj = uint64(j)
    if contiguous[t]:
        shift = uint64(obs_row[start] - start)
        for k in range(uint64(start), uint64(stop)):
            v[k] += scale * X[shift + k, jj]
    else:
        for k in range(uint64(start), uint64(stop)):
            v[k] += scale * X[uint64(obs_row[k]), jj]


@njit(cache=True)
def _column_corr(X, data, indices, indptr, sparse, obs_ptr, obs_task, task_ptr, obs_row,
                 contiguous, v, j, out):
    """out[t] = sum over task t's observations k of X[row_k, j] * v[k]."""
    if sparse:
        out[:] = 0.0
        for p in range(indptr[j], indptr[j + 1]):
            i = indices[p]
            x = data[p]
            for k in range(obs_ptr[i], obs_ptr[i + 1]):
                out[obs_task[k]] += x * v[k]
    else:
        for t in range(out.shape[0]):
            out[t] = _dense_task_dot(X, j, obs_row, contiguous, v, t, task_ptr[t],
                                     task_ptr[t + 1])


@njit(cache=True)
def _correlations(X, data, indices, indptr, sparse, obs_ptr, obs_task, task_ptr, obs_row,
                  contiguous, v, features, out):
    if sparse:
        tmp = np.zeros(out.shape[0])
        for m in range(features.shape[0]):
            _column_corr(X, data, indices, indptr, sparse, obs_ptr, obs_task, task_ptr,
                         obs_row, contiguous, v, features[m], tmp)
            out[:, m] = tmp
    else:
        _dense_correlations(X, task_ptr, obs_row, contiguous, v, features, out)


@njit(cache=True, fastmath=_FAST)
def _masked_task_moments(X, data, indices, indptr, sparse, obs_ptr, obs_task, task_ptr, obs_row,
                  contiguous, s1, s2):
    T, d = s1.shape
    for j in range(d):
        if sparse:
            for p in range(indptr[j], indptr[j + 1]):
                i = indices[p]
                x = data[p]
                for k in range(obs_ptr[i], obs_ptr[i + 1]):
                    s1[obs_task[k], j] += x
                    s2[obs_task[k], j] += x * x
        else:
            for t in range(T):
                a1 = 0.0
                a2 = 0.0
                for k in range(uint64(task_ptr[t]), uint64(task_ptr[t + 1])):
                    x = X[uint64(obs_row[k]), uint64(j)]
                    a1 += x
                    a2 += x * x
                s1[t, j] = a1
                s2[t, j] = a2


@njit(cache=True)
def _predict_obs(X, data, indices, indptr, sparse, obs_ptr, obs_task, task_ptr, obs_row,
                 contiguous, W, features, out):
    if sparse:
        for m in range(features.shape[0]):
            j = features[m]
            for p in range(indptr[j], indptr[j + 1]):
                i = indices[p]
                x = data[p]
                for k in range(obs_ptr[i], obs_ptr[i + 1]):
                    out[k] += x * W[obs_task[k], j]
    else:
        _dense_predict_obs(X, task_ptr, obs_row, contiguous, W, features, out)


# Dense X, task by task: a task's rows of every column are read while in cache, and the loops
# are written out (a call per (task, column) pair cost more than its 20-row dot product). 3 to
# 4 times faster than column by column on 1,000 tasks of 20 rows; the same sums, the
# correlations' rounded differently (the compiler groups a reduction's terms as it vectorises).
@njit(cache=True, fastmath=_FAST)
def _task_correlate(X, obs_row, contiguous, v, features, out, t, start, stop):
    """``out[t, m] = sum over task t's observations k of X[row_k, features[m]] * v[k]``."""
    shift = uint64(obs_row[start] - start) if stop > start else uint64(0)
    for m in range(features.shape[0]):
        j = uint64(features[m])
        acc = 0.0
        if contiguous[t]:
            for k in range(start, stop):
                acc += X[shift + k, j] * v[k]
        else:
            for k in range(start, stop):
                acc += X[uint64(obs_row[k]), j] * v[k]
        out[t, m] = acc


@njit(cache=True, fastmath=_FAST)
def _task_predict(X, obs_row, contiguous, W, features, out, t, start, stop):
    """``out[k] += X[row_k, features] @ W[t, features]`` over task t's observations k."""
    shift = uint64(obs_row[start] - start) if stop > start else uint64(0)
    for m in range(features.shape[0]):
        j = uint64(features[m])
        w = W[t, j]
        if w == 0.0:
            continue
        if contiguous[t]:
            for k in range(start, stop):
                out[k] += X[shift + k, j] * w
        else:
            for k in range(start, stop):
                out[k] += X[uint64(obs_row[k]), j] * w


@njit(cache=True, fastmath=_FAST)
def _dense_correlations(X, task_ptr, obs_row, contiguous, v, features, out):
    for t in range(out.shape[0]):
        _task_correlate(X, obs_row, contiguous, v, features, out, t, uint64(task_ptr[t]),
                        uint64(task_ptr[t + 1]))


@njit(cache=True, fastmath=_FAST)
def _dense_predict_obs(X, task_ptr, obs_row, contiguous, W, features, out):
    for t in range(W.shape[0]):
        _task_predict(X, obs_row, contiguous, W, features, out, t, uint64(task_ptr[t]),
                      uint64(task_ptr[t + 1]))


@njit(cache=True, fastmath=_FAST)
def _dense_residual_correlations(X, task_ptr, obs_row, contiguous, W, y, v, out):
    """Task by task: ``v = y - X_t w_t`` on its observations, then their correlations."""
    features = np.arange(W.shape[1])
    for t in range(W.shape[0]):
        start, stop = uint64(task_ptr[t]), uint64(task_ptr[t + 1])
        for k in range(start, stop):
            v[k] = 0.0
        _task_predict(X, obs_row, contiguous, W, features, v, t, start, stop)
        for k in range(start, stop):
            v[k] = y[k] - v[k]
        _task_correlate(X, obs_row, contiguous, v, features, out, t, start, stop)


# Row-major X (``MaskedDesign(row_major=True)``): task t's observations are k = task_ptr[t] ..
# task_ptr[t + 1] - 1, observation k is row rows[k] of X if indexed, else row k (the row-major
# copy in observation order, one contiguous block per task: no index to load, a residual pass
# on Exam's 4,059 rows of 10 features 24 us with it, 20 without); each row read contiguously.
@njit(cache=True, inline="always")
def _row_of(rows, indexed, k):
    """The row of X that observation ``k`` reads."""
    return uint64(rows[k]) if indexed else k


@njit(cache=True, fastmath=_FAST, inline="always")
def _row_dot(X, i, W, t):
    """``X[i] . W[t]``."""
    acc = 0.0
    for j in range(uint64(X.shape[1])):
        acc += X[i, j] * W[t, j]
    return acc


@njit(cache=True, fastmath=_FAST, inline="always")
def _row_accumulate(X, i, r, out, t):
    """``out[t] += r * X[i]``."""
    for j in range(uint64(X.shape[1])):
        out[t, j] += X[i, j] * r


@njit(cache=True, fastmath=_FAST)
def _rowwise_residual_correlations(X, task_ptr, rows, indexed, W, y, v, out):
    """``v = y - X_t w_t`` on each task's rows and ``out[t] = X_t^T v_t``, one pass per row
    (its residual only needs that row)."""
    out[:] = 0.0
    for t in range(uint64(W.shape[0])):
        for k in range(uint64(task_ptr[t]), uint64(task_ptr[t + 1])):
            i = _row_of(rows, indexed, k)
            r = y[k] - _row_dot(X, i, W, t)
            v[k] = r
            _row_accumulate(X, i, r, out, t)


@njit(cache=True, fastmath=_FAST)
def _rowwise_correlations(X, task_ptr, rows, indexed, v, out):
    out[:] = 0.0
    for t in range(uint64(out.shape[0])):
        for k in range(uint64(task_ptr[t]), uint64(task_ptr[t + 1])):
            _row_accumulate(X, _row_of(rows, indexed, k), v[k], out, t)


@njit(cache=True, fastmath=_FAST)
def _rowwise_predict(X, task_ptr, rows, indexed, W, out):
    for t in range(uint64(W.shape[0])):
        for k in range(uint64(task_ptr[t]), uint64(task_ptr[t + 1])):
            out[k] = _row_dot(X, _row_of(rows, indexed, k), W, t)


@njit(cache=True, fastmath=_FAST)
def _rowwise_task_moments(X, task_ptr, rows, indexed, s1, s2):
    """``s1[t] += X[i]``, ``s2[t] += X[i]**2`` over task t's observed rows i."""
    for t in range(uint64(s1.shape[0])):
        for k in range(uint64(task_ptr[t]), uint64(task_ptr[t + 1])):
            i = _row_of(rows, indexed, k)
            for j in range(uint64(X.shape[1])):
                x = X[i, j]
                s1[t, j] += x
                s2[t, j] += x * x


@njit(cache=True)
def _segment_sums(task_ptr, v, out):
    """``out[t] = sum of v[task_ptr[t] : task_ptr[t + 1]]`` (observations in task-major
    order)."""
    for t in range(out.shape[0]):
        acc = 0.0
        for k in range(task_ptr[t], task_ptr[t + 1]):
            acc += v[k]
        out[t] = acc


# == mean-clustered designs ==================================================================
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


class Problem:
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
        Y, mask = check_wide(X, Y, mask)
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
        check_no_empty_task(np.bincount(task_index, minlength=n_tasks) > 0)
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
            rows, tasks = observed_pairs(self._mask)
            self._flat = (rows, tasks, np.bincount(tasks, minlength=self.n_tasks))
        return self._flat

    def flat_targets(self):
        """float64 targets in the order of :meth:`flat_groups` (task by task)."""
        rows, tasks, _ = self.flat_groups()
        return (self._y[rows] if self.long else self._Y[rows, tasks]).astype(np.float64)

    def shared_targets(self):
        """float64 targets (n_rows, T) of the shared rows (only when ``shared_rows``)."""
        if self.long:
            return self._y.astype(np.float64)[:, None]
        return self._Y[self.shared_rows].astype(np.float64)

    def design(self, at_mean=False):
        """The per-task view of X: shared dense rows, grouped dense rows or sparse.

        ``at_mean``: the rows shifted by the mean of the observed rows, ``x_origin`` (each
        row counted once per task that observes it), so that the intercepts of the design
        are those at the mean of X, where the classifiers pull them together; ``b - W @
        x_origin`` are those of X. Dense rows are centred; a sparse X is centred
        implicitly (:class:`ShiftedSparse`), but for its columns whose mean exceeds their
        spread, which are centred in a copy (see :func:`_center_large_mean_columns`).
        """
        X, x_origin = self.X, np.zeros(self.X.shape[1])
        if at_mean:
            rows, _, _ = self.flat_groups()
            weights = np.bincount(rows, minlength=X.shape[0]) / max(rows.shape[0], 1)
            if sp.issparse(X):
                X, x_origin, large = _center_large_mean_columns(X, weights)
                design = ShiftedSparse(SparseDesign(X, self.groups),
                                       np.where(large, 0.0, x_origin))
                design.x_origin = x_origin
                return design
            x_origin = weights @ X
        if self.shared_rows is not None and not sp.issparse(X):
            design = SharedDense(X[self.shared_rows], self.shared_rows, self.n_tasks)
            own = not np.shares_memory(design.X, X)  # the rows are X itself, or a copy
        elif sp.issparse(X):
            design = SparseDesign(X, self.groups)
        else:  # (GroupedDense.centered leaves the stacks that are views of X alone)
            design, own = GroupedDense.from_flat(X, *self.flat_groups()), True
        if at_mean:
            design = design.centered(np.broadcast_to(x_origin, (self.n_tasks, X.shape[1])),
                                     own=own)
        design.x_origin = x_origin
        return design

    def targets(self, design):
        """float64 targets in the design's observation order."""
        if isinstance(design, SharedDense):
            return design.take(self.shared_targets())
        if self.long:
            return self._y[design.obs_rows].astype(np.float64)
        return self._Y[design.obs_rows, design.obs_tasks].astype(np.float64)


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
    rows, tasks = observed_pairs(mask)
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
    non-negative per-observation weights ``w`` (all ones when None); ``pooled_gram(w)`` their
    sum over tasks, ``sum_t X_t^T diag(w_t) X_t`` (d, d), without the (T, d, d) array.
    """

    def segment_sum(self, v):
        """Per-task sums of a per-observation vector, shape (n_tasks,)."""
        return np.bincount(self.obs_tasks, weights=v, minlength=self.n_tasks)

    def centered(self, means, own=False):
        """The design with each task's rows shifted by ``-means[t]``, or None (sparse);
        ``own``: the caller owns this design's rows, which may be shifted in place."""
        return None


class SharedDense(_Design):
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

    def pooled_gram(self, w=None):
        if w is None:
            return self.n_tasks * (self.X.T @ self.X)
        # one weight a row: the sum of its tasks' weights
        return self.X.T @ (w.reshape(self.n_tasks, -1).sum(axis=0)[:, None] * self.X)

    def centered(self, means, own=False):
        """The design centred by ``means[0]``; ``own``: in place (this design is not used
        afterwards, and its rows are not the user's X)."""
        return SharedDense(_shifted(self.X, means[0], own), self.rows, self.n_tasks)


class GroupedDense(_Design):
    """Tasks with their own dense rows, as zero-padded stacks of tasks of similar size.

    The stacks are the tasks' rows of X gathered through row indices. When they hold at most
    two copies of X (long data: every row belongs to one task) they are gathered once and
    kept; otherwise (wide data, where every row belongs to many tasks) each method gathers
    them again, a chunk of at most a quarter of X at a time (and at least one task), so that a
    fit never holds every task's rows at once. A stack of consecutive tasks whose rows are
    consecutive rows of X (long data sorted by task) is a view of X, never a copy.

    X may also be sparse (CSR): the stacks are then dense copies of its rows, gathered at
    every read (never kept), in chunks of at most a quarter of its stored entries (at least
    one task), so that the row-based solvers of wide data read a sparse X as they read a
    dense one (:meth:`SparseDesign.stacks`).
    """

    def __init__(self, X, obs_rows, obs_tasks, n_tasks, chunks, shift=None):
        self.X = X
        self.obs_rows = obs_rows
        self.obs_tasks = obs_tasks
        self.n_tasks = n_tasks
        self.n_features = X.shape[1]
        self.n_obs = obs_rows.shape[0]
        self.counts = np.bincount(obs_tasks, minlength=n_tasks)
        self.chunks = chunks  # (tasks, positions in the observations, valid slots, stack|None)
        self.shift = shift  # per-task row shift (T, d) of a centred design, or None

    @classmethod
    def from_groups(cls, X, groups):
        """The design of the observed rows ``groups`` (one sorted index array per task) of X."""
        return cls.from_flat(X, *_flatten_groups(groups))

    @classmethod
    def from_flat(cls, X, obs_rows, obs_tasks, counts):
        """:meth:`from_groups` from the flattened groups (see :func:`_flatten_groups`).

        Tasks are grouped by size (padding wastes < half a stack); a group is split into
        chunks of tasks of at most ``max(X.size // 4, _MIN_CHUNK)`` stacked entries.
        """
        n_obs, n_tasks, d = obs_rows.shape[0], counts.shape[0], X.shape[1]
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        in_order = (n_obs == X.shape[0] and not sp.issparse(X)
                    and np.array_equal(obs_rows, np.arange(n_obs)))
        size_class = np.ceil(np.log2(counts)).astype(np.intp)
        budget = max(X.size // 4, _MIN_CHUNK)
        chunks, n_gathered = [], 0
        for size in np.unique(size_class):
            tasks = np.flatnonzero(size_class == size)
            width = counts[tasks].max()
            slot = np.arange(width)
            valid = slot < counts[tasks][:, None]
            pos = np.where(valid, starts[tasks][:, None] + slot, n_obs)
            if in_order and valid.all() and tasks[-1] - tasks[0] == tasks.shape[0] - 1:
                first = starts[tasks[0]]  # consecutive tasks of one size: a view of X
                view = X[first:first + tasks.shape[0] * width].reshape(-1, width, d)
                chunks.append((tasks, pos, valid, view))
                continue
            step = max(1, budget // (width * d))
            chunks.extend((tasks[k:k + step], pos[k:k + step], valid[k:k + step], None)
                          for k in range(0, tasks.shape[0], step))
            n_gathered += tasks.shape[0] * width * d
        design = cls(X, obs_rows, obs_tasks, n_tasks, chunks)
        if n_gathered <= 2 * X.size:  # at most two copies of X: gather once, keep them
            design.chunks = list(design._gathered())
        return design

    def stacks(self):
        """The stacks as ``(tasks, positions, valid slots, stack)``, gathered (and centred)
        chunk by chunk as they are read: iterate, do not keep them all."""
        return self._gathered(self.shift)

    def _gathered(self, shift=None, own=False):
        """The chunks' stacks, gathered from X when not kept, centred by ``shift`` (T, d):
        in place when the stack was just gathered, or is kept and ``own`` (the caller owns
        the kept stacks), except a stack that is a view of X."""
        last = max(self.n_obs - 1, 0)
        for tasks, pos, valid, stack in self.chunks:
            fresh = stack is None
            if fresh:
                rows = np.where(valid, self.obs_rows[np.minimum(pos, last)], 0)
                stack = (self.X[rows.ravel()].toarray().reshape(*rows.shape, -1)
                         if sp.issparse(self.X) else self.X[rows])
            if shift is not None:
                stack = _shifted(stack, shift[tasks][:, None, :],
                                 own=fresh or (own and not np.shares_memory(stack, self.X)))
            if (fresh or shift is not None) and not valid.all():
                stack[~valid] = 0.0
            yield tasks, pos, valid, stack

    def matvec(self, W):
        z = np.empty(self.n_obs)
        for tasks, pos, valid, stack in self.stacks():
            z[pos[valid]] = np.matmul(stack, W[tasks][:, :, None])[..., 0][valid]
        return z

    def rmatvec(self, v):
        out = np.empty((self.n_tasks, self.n_features))
        v = np.append(v, 0.0)
        for tasks, pos, _, stack in self.stacks():
            out[tasks] = np.matmul(v[pos][:, None, :], stack)[:, 0]
        return out

    def gram(self, w=None):
        d = self.n_features
        out = np.zeros((self.n_tasks, d, d))
        w = None if w is None else np.append(w, 0.0)
        for tasks, pos, _, stack in self.stacks():
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

    def pooled_gram(self, w=None):
        """From the stacks, or, where they are gathered at every read and every task's rows
        are shifted alike (wide data), from X's observed rows, each once, weighted by the
        sum of the weights of the tasks observing it (their number when ``w`` is None):
        10,000 rows for the 13,581 labels of 30 MoleculeACE targets."""
        d = self.n_features
        out = np.zeros((d, d))
        shift = self.shift
        kept = all(stack is not None for *_, stack in self.chunks)
        if kept or (shift is not None and not (shift == shift[0]).all()):
            root = None if w is None else np.sqrt(np.append(w, 0.0))
            for _, pos, _, stack in self.stacks():  # the padding rows are zeros
                rows = stack if root is None else stack * root[pos][..., None]
                _syrk_lower(out, rows.reshape(-1, d), add=True)
            return _mirror_lower(out[None])[0]
        row_weight = np.bincount(self.obs_rows, weights=w, minlength=self.X.shape[0])
        rows = np.flatnonzero(row_weight)  # (a row of weight 0 adds nothing)
        step = max(1, max(self.X.size // 4, _MIN_CHUNK) // max(d, 1))
        for start in range(0, rows.shape[0], step):
            chunk = rows[start:start + step]
            block = self.X[chunk]
            block = block.toarray() if sp.issparse(block) else block
            if shift is not None:
                block = block - shift[0]
            _syrk_lower(out, block * np.sqrt(row_weight[chunk])[:, None], add=True)
        return _mirror_lower(out[None])[0]

    def centered(self, means, own=False):
        """The design centred by ``means`` (T, d); ``own``: its kept stacks (not views of X)
        may be centred in place, this design is not used afterwards."""
        if self.shift is not None:
            means = self.shift + means
        if all(stack is not None for *_, stack in self.chunks):  # kept stacks: centre them once
            return GroupedDense(self.X, self.obs_rows, self.obs_tasks, self.n_tasks,
                                list(self._gathered(means, own=own)))
        return GroupedDense(self.X, self.obs_rows, self.obs_tasks, self.n_tasks, self.chunks,
                            shift=means)


def _shifted(A, shift, own):
    """``A - shift``: in place when the caller owns ``A``, else a new array."""
    if own:
        A -= shift
        return A
    return A - shift


# Fewest stacked entries (512 KiB) in a gathered chunk of tasks: small problems stay batched.
_MIN_CHUNK = 2**16


class SparseDesign(_Design):
    """Sparse X: one CSR matrix (n_obs, T * d), observation k's row in the block of its task.

    :meth:`stacks` and :attr:`chunks` give the tasks' rows as a :class:`GroupedDense` does,
    densified chunk by chunk as they are read, for the solvers that read wide data's tasks
    row by row (``_kernel_form``): with 2,048 bits, per-task moments from the one product
    took ``T d^2`` (1 GB for 30 MoleculeACE targets, three such arrays in a fit)."""

    def __init__(self, X, groups):
        self.obs_rows, self.obs_tasks, self.counts = _flatten_groups(groups)
        self.n_tasks = n_tasks = len(groups)
        self.n_features = d = X.shape[1]
        X_obs = sp.csr_matrix(X)[self.obs_rows]
        X_obs.sum_duplicates()
        self._X_obs, self._rows = X_obs, None  # (the observed rows, in observation order)
        per_row = np.diff(X_obs.indptr)
        columns = X_obs.indices.astype(np.int64) + d * np.repeat(
            self.obs_tasks.astype(np.int64), per_row)
        self.B = sp.csr_matrix((X_obs.data, columns, X_obs.indptr.astype(np.int64)),
                               shape=(self.obs_rows.shape[0], n_tasks * d))

    def _grouped(self):
        """The :class:`GroupedDense` layout of the observed rows (built on first use)."""
        if self._rows is None:
            n_obs = self.obs_rows.shape[0]
            self._rows = GroupedDense.from_flat(self._X_obs, np.arange(n_obs),
                                                self.obs_tasks, self.counts)
        return self._rows

    @property
    def chunks(self):
        """The chunks of :meth:`GroupedDense.from_flat` over the observed rows."""
        return self._grouped().chunks

    def stacks(self):
        """The tasks' rows as dense zero-padded stacks, ``(tasks, positions, valid slots,
        stack)`` (:meth:`GroupedDense.stacks`), densified as they are read."""
        return self._grouped().stacks()

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

    def pooled_gram(self, w=None):
        weighted = self._X_obs if w is None else sp.diags(w) @ self._X_obs
        return (self._X_obs.T @ weighted).toarray()

    def task_row_grams(self):
        """Each task's ``X_t X_t^T`` (n_t x n_t, dense) from the sparse product of its rows,
        as ``(start, stop, gram)`` over the tasks in order, ``start:stop`` its observations."""
        stops = np.cumsum(self.counts)
        for start, stop in zip(stops - self.counts, stops):
            rows = self._X_obs[start:stop]
            yield start, stop, (rows @ rows.T).toarray()


class ShiftedSparse(_Design):
    """A :class:`SparseDesign` with every row shifted by ``-shift`` (the same for all tasks),
    never formed: products and Gram matrices from those of the sparse rows. Meant for a
    shift no larger than each column's spread (``Problem.design(at_mean=True)`` centres the
    other columns in the sparse matrix), so that the Gram matrices' corrections cancel
    nothing larger than the result."""

    def __init__(self, base, shift):
        self.base, self.shift = base, np.asarray(shift, dtype=np.float64)
        self.obs_rows, self.obs_tasks, self.counts = base.obs_rows, base.obs_tasks, base.counts
        self.n_tasks, self.n_features = base.n_tasks, base.n_features

    @property
    def chunks(self):
        return self.base.chunks

    def stacks(self):
        """The base's stacks less the shift (the padding left at 0), new arrays: the base
        keeps its stacks when they hold at most twice its stored entries."""
        for tasks, pos, valid, stack in self.base.stacks():
            stack = stack - self.shift
            if not valid.all():
                stack[~valid] = 0.0
            yield tasks, pos, valid, stack

    def matvec(self, W):
        return self.base.matvec(W) - (W @ self.shift)[self.obs_tasks]

    def rmatvec(self, v):
        return self.base.rmatvec(v) - np.outer(self.segment_sum(v), self.shift)

    def gram(self, w=None):
        """``(X_t - shift)^T diag(w_t) (X_t - shift) = G_t - s_t m^T - m s_t^T + c_t m m^T``
        with ``s_t = X_t^T w_t`` and ``c_t`` the sum of ``w_t``."""
        w_obs = np.ones(self.obs_tasks.shape[0]) if w is None else w
        return _unshifted(self.base.gram(w), self.base.rmatvec(w_obs),
                          self.segment_sum(w_obs), self.shift)

    def pooled_gram(self, w=None):
        """``sum_t (X_t - shift)^T diag(w_t) (X_t - shift)``, as :meth:`gram` over all
        observations."""
        w_obs = np.ones(self.obs_tasks.shape[0]) if w is None else w
        return _unshifted(self.base.pooled_gram(w), self.base._X_obs.T @ w_obs,
                          w_obs.sum(), self.shift)

    def task_row_grams(self):
        """:meth:`SparseDesign.task_row_grams` of the shifted rows: ``X_t X_t^T - a 1^T - 1
        a^T + |shift|^2``, ``a = X_t shift``."""
        for start, stop, gram in self.base.task_row_grams():
            a = self.base._X_obs[start:stop] @ self.shift
            gram -= a[:, None]
            gram -= a
            gram += self.shift @ self.shift
            yield start, stop, gram


def _unshifted(G, s, c, m):
    """``G - s m^T - m s^T + c m m^T`` in place, over the leading axes of ``G`` (..., d, d),
    ``s`` (..., d) and ``c`` (...): the Gram matrix of rows shifted by ``-m`` from that of the
    rows ``G``, their sums ``s`` and their count ``c`` (weighted alike)."""
    work = np.multiply(s[..., :, None], m)  # one array of G's shape, reused
    G -= work
    G -= np.swapaxes(work, -1, -2)
    G += np.multiply(np.asarray(c)[..., None, None], np.outer(m, m), out=work)
    return G


@njit(cache=True)
def _sparse_row_dots(data, indices, indptr, by_column, W, task_index, out):
    """``out[i] = x_i . W[task_index[i]]`` from a CSR (or, ``by_column``, CSC) matrix's stored
    entries, in their order (duplicates summed)."""
    for major in range(indptr.shape[0] - 1):
        if by_column:
            for p in range(indptr[major], indptr[major + 1]):
                i = indices[p]
                out[i] += data[p] * W[task_index[i], major]
        else:
            acc = 0.0
            for p in range(indptr[major], indptr[major + 1]):
                acc += data[p] * W[task_index[major], indices[p]]
            out[major] = acc


def predict_rows(X, W, b, task_index):
    """``x_i . w_{t_i} + b_{t_i}`` for each row's own task (no (n, n_tasks) array, and no
    (n, n_features) one for a sparse X: its stored entries times their rows' coefficients,
    ``O(n)`` memory; a dense X block by block of rows)."""
    task_index = np.asarray(task_index, dtype=np.intp)
    W = np.asarray(W, dtype=np.float64)
    dot = np.zeros(X.shape[0])
    if sp.issparse(X):
        if X.format not in ("csr", "csc"):
            X = sp.csr_matrix(X)
        _sparse_row_dots(np.asarray(X.data, dtype=np.float64), X.indices, X.indptr,
                         X.format == "csc", W, task_index, dot)
    else:
        step = max(1, _BLOCK_ENTRIES // max(X.shape[1], 1))
        for start in range(0, X.shape[0], step):
            rows = slice(start, start + step)
            dot[rows] = np.einsum("ij,ij->i", X[rows], W[task_index[rows]])
    return dot + b[task_index]
