"""Per-task datafits on the observed rows of each task.

Task ``t`` sees the ``n_t`` rows where ``mask[:, t]`` is True (its own rows in long data, the
rows with a label in wide data). A datafit is the sum over tasks of the per-task mean loss:

- :class:`Quadratic`: ``sum_t 1 / (2 n_t) ||y_t - X_t w_t - b_t||^2``;
- :class:`Logistic`: ``sum_t 1 / n_t sum_i log(1 + exp(-s_i (x_i w_t + b_t)))``, ``s_i = +-1``.

Data live in a :class:`MaskedDesign`: X (dense, Fortran-ordered, or CSC sparse; never
densified) plus the observed (row, task) pairs in row-major order, so a column of X is read once
to get the correlations of all tasks with it. Per-observation vectors (residuals, linear
predictors) have one entry per observed pair, never an ``(n, n_tasks)`` array.

A datafit gives its value, the negative gradient ``G`` (n_tasks, n_features) for any set of
features, per-feature per-task Lipschitz constants (the exact curvature for least squares) and
the state the solver updates in place after a block step.
"""

import numpy as np
import scipy.sparse as sp
from numba import njit, uint64

__all__ = ["Logistic", "MaskedDesign", "Quadratic"]

# A per-task curvature below this fraction of the feature's largest one counts as zero.
_RELATIVE_TINY = 1e-13


class MaskedDesign:
    """X with the observed (row, task) pairs of a label mask.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        Design. Dense X is copied to a Fortran-ordered float64 array when it is not one already
        (or when ``center`` asks for a shifted copy); sparse X is kept sparse (CSC).
    mask : ndarray of bool of shape (n_samples, n_tasks)
        Observed labels.
    center : bool, default=False
        Dense X only: subtract the mean of the observed rows from every column (``x_shift``).
        Better conditioning for a model with intercepts, which absorb the shift.
    """

    def __init__(self, X, mask, *, center=False):
        mask = np.asarray(mask, dtype=bool)
        self.n_samples, self.n_tasks = mask.shape
        self.n_features = X.shape[1]
        self.sparse = sp.issparse(X)
        counts = mask.sum(axis=1)
        if self.sparse:
            # row-major: a sparse column is read once, each entry feeds its row's observations
            rows, tasks = np.nonzero(mask)
        else:
            # task-major: each task reads its own rows of a dense column (a gathered dot)
            tasks, rows = np.nonzero(mask.T)
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
        else:
            # tasks whose rows are consecutive rows of X (sorted long data): plain dot products
            first, last = self.task_ptr[:-1], self.task_ptr[1:] - 1
            n_last = max(self.n_obs - 1, 0)
            span = self.obs_row[np.clip(last, 0, n_last)] - self.obs_row[np.clip(first, 0, n_last)]
            self.contiguous = (last >= first) & (span == last - first)
        self.x_shift = np.zeros(self.n_features)
        if self.sparse:
            X = sp.csc_matrix(X)
            X.sum_duplicates()
            index_dtype = np.int32 if X.nnz < 2**31 - 1 else np.int64
            self.data = np.require(X.data, dtype=np.float64, requirements=["C", "W"])
            self.indices = np.require(X.indices, dtype=index_dtype, requirements=["C", "W"])
            self.indptr = np.require(X.indptr, dtype=index_dtype, requirements=["C", "W"])
            self.X = np.zeros((0, 0), order="F")
        else:
            if center and self.n_obs:
                weights = counts / self.n_obs
                shift = weights @ np.asarray(X, dtype=np.float64)
                self.X = np.empty(X.shape, dtype=np.float64, order="F")
                np.subtract(X, shift, out=self.X)
                self.x_shift = shift
            else:
                self.X = np.require(X, dtype=np.float64, requirements=["F", "W"])
            self.data = np.zeros(0)
            self.indices = np.zeros(0, dtype=np.int32)
            self.indptr = np.zeros(1, dtype=np.int32)

    def _args(self):
        return (self.X, self.data, self.indices, self.indptr, self.sparse, self.obs_ptr,
                self.obs_task, self.task_ptr, self.obs_row, self.contiguous)

    def correlations(self, v, features=None):
        """``C[t, k] = sum over task t's observations i of X[i, features[k]] * v_i``."""
        if features is None:
            features = np.arange(self.n_features)
        out = np.zeros((self.n_tasks, len(features)))
        _correlations(*self._args(), v, np.asarray(features, dtype=np.int64), out)
        return out

    def task_moments(self):
        """Per-task sums of each column and of its squares over the observed rows, (T, d)."""
        s1 = np.zeros((self.n_tasks, self.n_features))
        s2 = np.zeros((self.n_tasks, self.n_features))
        _task_moments(*self._args(), s1, s2)
        return s1, s2

    def predict_obs(self, W):
        """``x_i w_t`` of every observation (i, t) (the shifted X when centred)."""
        out = np.zeros(self.n_obs)
        nonzero = np.flatnonzero(np.any(W != 0, axis=0)).astype(np.int64)
        _predict_obs(*self._args(), np.ascontiguousarray(W, dtype=np.float64), nonzero, out)
        return out

    def task_sums(self, v):
        """Per-task sums of a per-observation vector, (T,)."""
        return np.bincount(self.obs_task, weights=v, minlength=self.n_tasks)


def _curvature_threshold(L):
    return L * (L > _RELATIVE_TINY * L.max(axis=0, initial=0.0))


class Quadratic:
    """Least squares ``sum_t 1 / (2 n_t) ||y_t - X_t w_t - b_t||^2`` on observed rows.

    With ``fit_intercept``, the intercepts are eliminated exactly (``b_t = mean(y_t) -
    mean(X_t) w_t``): the loss is that of the per-task centred data, handled implicitly so a
    sparse X stays sparse. The state is ``v`` (n_obs,) and ``c`` (n_tasks,) with residual
    ``r_i = v_i + c_t``: a step ``delta`` on feature j subtracts ``x_ij delta_t`` from ``v``
    and adds ``mu_tj delta_t`` to ``c``.

    Parameters
    ----------
    design : MaskedDesign
    y_obs : ndarray of shape (n_obs,)
        The observed targets, in the design's observation order.
    fit_intercept : bool
    """

    logistic = False

    def __init__(self, design, y_obs, fit_intercept):
        self.design = design
        self.fit_intercept = fit_intercept
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
        self.lipschitz = _curvature_threshold(np.maximum(L, 0.0))
        self.y_centered = y_obs - self.y_mean[design.obs_task]

    def init_state(self, W, b=None):
        """``(v, c)`` for coefficients W (the intercepts are the optimal ones)."""
        v = self.y_centered - self.design.predict_obs(W)
        c = np.einsum("tj,tj->t", self.mu, W)
        return v, c

    def residuals(self, v, c):
        return v + c[self.design.obs_task]

    def value(self, v, c):
        r = self.residuals(v, c)
        return 0.5 * float(np.sum(self.design.task_sums(r * r) / self.design.n_t))

    def neg_gradient(self, v, c, features=None):
        """``-d loss / d W[:, features]``, shape (n_tasks, len(features))."""
        corr = self.design.correlations(v, features)
        mu = self.mu if features is None else self.mu[:, features]
        return corr / self.design.n_t[:, None] + c[:, None] * mu

    def intercept(self, W, v, c):
        return self.y_mean - np.einsum("tj,tj->t", self.mu, W)

    def dual_value(self, v, c, scale):
        """Dual objective at ``theta_t = r_t / (n_t * scale)``."""
        r = self.residuals(v, c)
        design = self.design
        first = design.task_sums(r * self.y_centered) / design.n_t
        second = design.task_sums(r * r) / design.n_t
        return float(np.sum(first / scale - 0.5 * second / scale**2))


class Logistic:
    """Binary logistic loss ``sum_t 1 / n_t sum_i log(1 + exp(-s_i (x_i w_t + b_t)))``.

    ``s_i = 2 y_i - 1`` for labels ``y_i`` in {0, 1}. The state is the linear predictor ``z``
    (n_obs,), its loss derivative ``v = -s sigmoid(-s z)`` (n_obs,) and the intercepts ``b``.
    Lipschitz constants ``||X_t[:, j]||^2 / (4 n_t)`` (the centred ones when X is centred).

    Parameters
    ----------
    design : MaskedDesign
    y_obs : ndarray of shape (n_obs,)
        Observed labels in {0, 1}, in the design's observation order.
    fit_intercept : bool
    """

    logistic = True

    def __init__(self, design, y_obs, fit_intercept):
        self.design = design
        self.fit_intercept = fit_intercept
        self.signs = np.where(np.asarray(y_obs) > 0, 1.0, -1.0)
        _, s2 = design.task_moments()
        self.lipschitz = _curvature_threshold(s2 / (4.0 * design.n_t[:, None]))
        self.mu = np.zeros((design.n_tasks, design.n_features))

    def init_state(self, W, b):
        z = self.design.predict_obs(W) + b[self.design.obs_task]
        return z, self.derivative(z)

    def derivative(self, z):
        s = self.signs
        return -s * _expit(-s * z)

    def value(self, z):
        losses = np.logaddexp(0.0, -self.signs * z)
        return float(np.sum(self.design.task_sums(losses) / self.design.n_t))

    def neg_gradient(self, v, features=None):
        return -self.design.correlations(v, features) / self.design.n_t[:, None]

    def intercept_gradient(self, v):
        return self.design.task_sums(v) / self.design.n_t


def _expit(x):
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
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
    tmp = np.zeros(out.shape[0])
    for m in range(features.shape[0]):
        _column_corr(X, data, indices, indptr, sparse, obs_ptr, obs_task, task_ptr, obs_row,
                     contiguous, v, features[m], tmp)
        out[:, m] = tmp


@njit(cache=True, fastmath=_FAST)
def _task_moments(X, data, indices, indptr, sparse, obs_ptr, obs_task, task_ptr, obs_row,
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
    for m in range(features.shape[0]):
        j = features[m]
        if sparse:
            for p in range(indptr[j], indptr[j + 1]):
                i = indices[p]
                x = data[p]
                for k in range(obs_ptr[i], obs_ptr[i + 1]):
                    out[k] += x * W[obs_task[k], j]
        else:
            for t in range(W.shape[0]):
                if W[t, j] != 0.0:
                    _dense_task_axpy(X, j, obs_row, contiguous, W[t, j], out, t, task_ptr[t],
                                     task_ptr[t + 1])
