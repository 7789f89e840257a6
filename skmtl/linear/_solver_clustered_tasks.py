"""Solvers of clustered multi-task learning: tasks fall into groups, each pulled to its mean.

For a partition of the T tasks into clusters c (``n_c`` tasks, mean ``w_bar_c``) the penalty
of Jacob, Bach & Vert (2008),

    alpha * (||w_bar||^2 + between / T * sum_c n_c ||w_bar_c - w_bar||^2
             + within / T * sum_t ||w_t - w_bar_{c(t)}||^2),

is ``alpha / T * tr(W^T M W)`` with the T x T matrix
``M = P_0 + between (P_C - P_0) + within (I - P_C)``, ``P_0 = 1 1^T / T`` and ``P_C`` the
projection onto the cluster indicators (``P_C W`` puts each task's cluster mean in its row).
With one cluster ``P_C = P_0`` and it is the mean-clustered penalty with
``cluster_strength = within``; with one task per cluster, the mean-clustered penalty with
``cluster_strength = between``.

Alternating minimisation (Zhou, Chen & Ye 2011): for a fixed partition the problem is the
mean-clustered one with a block-structured coupling, solved exactly (squared loss) or by
Newton's method (logistic loss, :func:`~._solver_mean_clustered.newton_logistic`); for fixed
``W`` the penalty is ``alpha / T * (between * sum_t ||w_t - w_bar||^2 + (within - between) *
sum_t ||w_t - w_bar_{c(t)}||^2)``, so with ``within >= between`` the best partition is the
k-means partition of the rows of ``W``, improved by Lloyd steps from the current one. Where
the intercepts are pulled alike (the classifier), it is that of the rows of ``[W, b]``: a
partition of ``W`` alone ignored clusters of tasks that differ in their base rate. Neither
step increases the objective.
"""

import warnings

import numpy as np
import scipy.linalg
from numba import njit
from sklearn.cluster import kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from skmtl.linear._linalg import _SYRK, _blas_threads_for, _mirror_lower, _spd_inverse
from skmtl.linear._penalties import _ridged
from skmtl.linear._solver_mean_clustered import (
    _FAST,
    RowCurvature,
    _centred,
    _kernel_form,
    _least_squares_tasks,
    _moments_stack,
    _ridge_stack_kernel,
    _task_moments,
    newton_logistic,
)

__all__ = []


class ClusteredTasksPenalty:
    """The clustered penalty for one partition ``labels`` (see the module docstring).

    Also, when the intercepts are pulled (the classifier), ``alpha / T * b^T (M - P_0) b``:
    the same pull with the overall mean intercept free.

    Parameters
    ----------
    alpha, between, within : float
        > 0.
    labels : ndarray of int of shape (n_tasks,)
        Cluster of each task; the clusters are the distinct labels (none is empty).
    """

    def __init__(self, alpha, between, within, labels):
        self.alpha, self.between, self.within = alpha, between, within
        _, self.labels = np.unique(labels, return_inverse=True)
        self.counts = np.bincount(self.labels).astype(np.float64)
        self.n_tasks = len(self.labels)
        # per task, of the intercepts' pull (the diagonal of its Hessian's within part)
        self.intercept_curvature = 2.0 * alpha * within / self.n_tasks

    def _cluster_means(self, W):
        if W.ndim == 1:
            return cluster_means(W[:, None], self.labels, len(self.counts))[:, 0]
        return cluster_means(W, self.labels, len(self.counts))

    def _spread(self, W):
        """``(||w_bar||^2, sum_c n_c ||w_bar_c - w_bar||^2, sum_t ||w_t - w_bar_c(t)||^2)``."""
        mean, means = W.mean(axis=0), self._cluster_means(W)
        return (np.sum(mean**2), float(np.sum(self.counts @ ((means - mean) ** 2).reshape(
            len(self.counts), -1))), np.sum((W - means[self.labels]) ** 2))

    def value(self, W, b=None):
        """The penalty of ``W``, plus the pull of the intercepts ``b`` if given."""
        T = self.n_tasks
        common, between, within = self._spread(W)
        value = self.alpha * (common + self.between / T * between + self.within / T * within)
        if b is not None:
            _, between, within = self._spread(b)
            value += self.alpha / T * (self.between * between + self.within * within)
        return value

    def _hessian_times(self, W, common):
        """``M W / T`` (``common=True``) or ``(M - P_0) W / T``, times ``2 alpha``."""
        mean, means = W.mean(axis=0), self._cluster_means(W)[self.labels]
        out = (self.within * W + (self.between - self.within) * means
               + ((1.0 - self.between) if common else -self.between) * mean)
        return 2.0 * self.alpha / self.n_tasks * out

    def add_gradient(self, grad, W):
        return grad + self._hessian_times(W, True)

    def add_intercept_gradient(self, grad, b):
        return grad + _centred(self._hessian_times(b, False))

    def solve(self, H, rhs, n_penalised, *, pull_last=False):
        """Solve ``(blockdiag(H_t) + penalty Hessian) x = rhs`` (see :class:`CoupledBlocks`;
        ``H`` a :class:`~._solver_mean_clustered.RowCurvature`: :class:`KernelBlocks`)."""
        if isinstance(H, RowCurvature):
            try:
                blocks = KernelBlocks.from_rows(H, self.alpha, self.within)
            except np.linalg.LinAlgError:  # lam below rounding: the dense blocks' fallbacks
                H = H.dense()
            else:
                return blocks.solve(rhs, self)
        return CoupledBlocks(H, self.alpha, self.within, n_penalised,
                             pull_last=pull_last).solve(rhs, self)


class CoupledBlocks:
    """Per-task blocks ``H_t`` (T, p, p) plus the clustered penalty's Hessian, for any partition.

    The penalty's Hessian is ``lam`` (``lam = 2 alpha within / T``) on the penalised
    coordinates of every task, plus the coupling ``(2 alpha / T) (Z (x) I) B (Z (x) I)^T``
    through the cluster sums (``Z`` the T x K cluster indicators), ``B = sum_j C_j (x) e_j
    e_j^T`` with ``C = (between - within) N^-1 + (1 - between) 1 1^T / T`` on the coefficients
    (``N = diag(n_c)``) and ``(between - within) N^-1 - between 1 1^T / T`` on a pulled
    intercept (the last coordinate). With ``G_t = (H_t + lam E)^-1``, ``x_t = G_t (rhs_t -
    u_c(t))``, ``u = (2 alpha / T) B v`` and ``v_k`` the sum of the ``x_t`` of cluster k, the
    cluster sums solve a Kp x Kp system. Since ``lam G_t E = I - G_t H_t``, it is written as
    ``(J - blockdiag(D_k) B) v = within * s``, ``D_k = sum_{t in k} G_t H_t``,
    ``s_k = sum_{t in k} G_t rhs_t`` and ``J = within I + (N (x) I) B`` in closed form
    (``between I + n (1 - between) / T 1^T`` on the coefficients): as for one cluster in
    :func:`~._penalties._coupled_solve`, no cancellation as ``within`` grows. The blocks are
    factorised once (``O(T p^3)``); each partition then costs ``O(T p^2 + (K p)^3)``.
    """

    def __init__(self, H, alpha, within, n_penalised, *, pull_last=False):
        self.n_tasks, self.p, _ = H.shape
        self.scale = 2.0 * alpha / self.n_tasks
        self.lam = self.scale * within
        self.n_penalised, self.pull_last = n_penalised, pull_last
        with _blas_threads_for(self.p):
            K, rebuild = _ridged(H, self.lam, self.p if pull_last else n_penalised)
            self.G = _spd_inverse(K, rebuild=rebuild)
            # every coordinate ridged: G_t H_t = I - lam G_t, formed per cluster sum (not
            # kept per task: a third (T, p, p) stack, 1 GB on 30 targets of 2,048 bits)
            self.GH = None if n_penalised == self.p else np.matmul(self.G, H)
        self._rhs = self._x = None  # the last right-hand side and its G_t rhs_t
        self._labels = self._D = None  # the last partition and its cluster sums of G_t H_t

    def _apply_G(self, V):
        """``G_t v_t`` for every task, (T, p)."""
        return np.matmul(self.G, V[:, :, None])[..., 0]

    def _cluster_sums_GH(self, labels, n_clusters):
        """``D_k = sum_{t in k} G_t H_t``: updated by the tasks that changed cluster since the
        last partition (Lloyd's alternations move a few), else summed afresh."""
        last = self._labels
        if last is not None and self._D.shape[0] == n_clusters:
            moved = np.flatnonzero(labels != last)
            if moved.size <= self.n_tasks // 4:
                signs = np.zeros((n_clusters, self.n_tasks))
                signs[labels[moved], moved] = 1.0
                signs[last[moved], moved] = -1.0
                self._D = self._D + self._GH_sums(signs)
                self._labels = labels.copy()
                return self._D
        indicator = np.zeros((n_clusters, self.n_tasks))
        indicator[labels, np.arange(self.n_tasks)] = 1.0
        self._D = self._GH_sums(indicator)
        self._labels = labels.copy()
        return self._D

    def _GH_sums(self, weights):
        """``sum_t weights[k, t] G_t H_t`` (K, p, p), over the tasks of non-zero weight."""
        tasks = np.flatnonzero(np.any(weights != 0.0, axis=0))
        if self.GH is None:  # every coordinate ridged: G_t H_t = I - lam G_t
            return _ridged_complement_sums(weights[:, tasks], self.G[tasks], self.lam)
        return _weighted_sums(weights[:, tasks], self.GH[tasks])

    def solve(self, rhs, penalty):
        """The solution ``x`` (T, p) for the right-hand side ``rhs`` (None: that the blocks
        were built with, :class:`KernelBlocks`) and the penalty's partition."""
        labels, n = penalty.labels, penalty.counts
        K, p, d, T = len(n), self.p, self.n_penalised, self.n_tasks
        beta, omega = penalty.between, penalty.within
        # the least-squares step solves for one rhs, many partitions
        if rhs is not None and rhs is not self._rhs:
            self._rhs, self._x = rhs, self._apply_G(rhs)
        x = self._x
        # B and J couple each coordinate j with itself only, through the K x K matrices
        # B_j[k, l] = B[k, j, l, j] and J_j (kept as (p, K, K), not as dense (K p)^2 arrays)
        eye = np.eye(K)
        B, J = np.empty((p, K, K)), np.empty((p, K, K))
        B[:d] = (beta - omega) * eye / n[:, None] + (1.0 - beta) / T
        J[:d] = beta * eye + n[:, None] * (1.0 - beta) / T
        if p > d and self.pull_last:
            B[d:] = (beta - omega) * eye / n[:, None] - beta / T
            J[d:] = beta * eye - n[:, None] * beta / T
        elif p > d:  # unpenalised
            B[d:], J[d:] = 0.0, omega * eye
        D = self._cluster_sums_GH(labels, K)
        s = cluster_sums(x, labels, K)
        # (J - blockdiag(D_k) B)[(k, a), (l, j)] = J_j[k, l] [a = j] - D_k[a, j] B_j[k, l]
        # (an einsum over a dense B took 92 of 128 s on 2,048 features)
        system = np.multiply(D[:, :, None, :], B.transpose(1, 2, 0)[:, None, :, :])
        np.negative(system, out=system)
        diagonal = np.arange(p)
        system[:, diagonal, :, diagonal] += J
        # factored in place as the Fortran matrix system^T, then solved transposed
        lu = scipy.linalg.lu_factor(system.reshape(K * p, K * p).T, overwrite_a=True,
                                    check_finite=False)
        v = scipy.linalg.lu_solve(lu, omega * s.ravel(), trans=1,
                                  check_finite=False).reshape(K, p)
        u = self.scale * np.einsum("jkl,lj->kj", B, v)
        return x - self._apply_G(u[labels])


class KernelBlocks(CoupledBlocks):
    """:class:`CoupledBlocks` of the least-squares W step on dense per-task rows, most tasks
    with fewer rows than features (MoleculeACE: 30 targets of 171 to 982 molecules on 2,048
    bits, where the (T, d, d) moments and inverses took 1 GB each).

    Used from 128 coefficients up (``_kernel_form``). A stack of tasks with fewer than ``d /
    2`` rows (padded) is kept in the kernel form of
    :func:`~._solver_mean_clustered._least_squares_stacks`: ``F_t`` the task's centred rows
    over ``sqrt(n_t)`` (``H_t = A_t = F_t^T F_t``), ``F_t F_t^T + lam I = M_t M_t^T`` and
    ``Q_t = M_t^-1 F_t`` (n_t x d), so that ``G_t v = (v - Q_t^T Q_t v) / lam`` and ``G_t
    H_t = Q_t^T Q_t``: ``O(n_t d)`` memory and ``O(n_t^2 d)`` time a task, and each
    partition's cluster sums ``O(N d^2)`` over the ``N`` labels (sums of Gram matrices: no
    cancellation). Other stacks keep ``G_t`` (``d^2 <= 2 n_t d``). The right-hand side is the
    centred moments' ``r_t = F_t^T u_t``: :meth:`solve` with ``rhs=None``; the means are
    :attr:`x_mean`, :attr:`y_mean`.
    """

    def __init__(self, design, y, alpha, within, fit_intercept):
        T, d = design.n_tasks, design.n_features
        self._setup(design, d, alpha, within)
        self._x, self.x_mean, self.y_mean = np.empty((T, d)), np.zeros((T, d)), np.zeros(T)
        y_slots = np.append(np.asarray(y, dtype=np.float64), 0.0)
        for tasks, pos, _, stack in design.stacks():
            n_block, width = pos.shape
            counts = design.counts[tasks].astype(np.int64)
            x, x_mean, y_mean = np.empty((n_block, d)), np.zeros((n_block, d)), np.zeros(n_block)
            if 2 * width < d:
                factor = np.zeros((n_block, width, d))
                if not _ridge_stack_kernel(stack, y_slots[pos], counts, fit_intercept,
                                           self.lam, True, x, x_mean, y_mean, factor):
                    raise np.linalg.LinAlgError("F_t F_t^T + lam I is not positive definite")
            else:
                A, r = np.empty((n_block, d, d)), np.empty((n_block, d))
                _moments_stack(stack, y_slots[pos], np.arange(n_block), counts, fit_intercept,
                               A, r, x_mean, y_mean)
                with _blas_threads_for(d):
                    K, rebuild = _ridged(A, self.lam, d)
                    factor = _spd_inverse(K, rebuild=rebuild)
                x = np.matmul(factor, r[:, :, None])[..., 0]
            self._x[tasks], self.x_mean[tasks], self.y_mean[tasks] = x, x_mean, y_mean
            self._parts.append((tasks, 2 * width < d, factor))

    def _setup(self, design, p, alpha, within):
        T = design.n_tasks
        # every coordinate ridged: the intercept, if any, pulled (pull_last then only tells
        # CoupledBlocks.solve to couple it as such)
        self.n_tasks, self.p, self.n_penalised = T, p, design.n_features
        self.pull_last = p > design.n_features
        self.scale = 2.0 * alpha / T
        self.lam = self.scale * within
        self.GH = None
        self._rhs, self._x, self._labels, self._D = None, None, None, None
        self._parts = []  # (tasks, True, Q) in the kernel form, (tasks, False, G) else
        self._counts = design.counts

    @classmethod
    def from_rows(cls, curvature, alpha, within):
        """The blocks of the logistic Newton step, ``H_t = F_t^T F_t`` with ``F_t =
        sqrt(weight_i) [x_i, 1]`` (:class:`~._solver_mean_clustered.RowCurvature`), every
        coordinate ridged (the intercepts pulled, or none): the kernel form per stack as
        above, ``Q_t`` by a batched Cholesky factorisation and solve."""
        design, fit_intercept = curvature.design, curvature.fit_intercept
        d = design.n_features
        p = d + fit_intercept
        self = cls.__new__(cls)
        self._setup(design, p, alpha, within)
        root = np.sqrt(np.append(curvature.weight, 0.0))
        for tasks, pos, _, stack in design.stacks():
            n_block, width = pos.shape
            scale = root[pos][:, :, None]
            F = np.empty((n_block, width, p))
            np.multiply(stack, scale, out=F[:, :, :d])
            if fit_intercept:
                F[:, :, d] = scale[:, :, 0]
            kernel = 2 * width < p
            with _blas_threads_for(width if kernel else p):
                if kernel:  # P = F F^T + lam I = M M^T, Q = M^-1 F
                    P = np.matmul(F, F.transpose(0, 2, 1))
                    P[:, np.arange(width), np.arange(width)] += self.lam
                    factor = np.linalg.solve(np.linalg.cholesky(P), F)
                else:
                    K = np.matmul(F.transpose(0, 2, 1), F)
                    K[:, np.arange(p), np.arange(p)] += self.lam
                    factor = _spd_inverse(K)
            self._parts.append((tasks, kernel, factor))
        return self

    def _apply_G(self, V):
        out = np.empty_like(V)
        for tasks, kernel, factor in self._parts:
            v = V[tasks][:, :, None]
            if kernel:  # (v - Q^T Q v) / lam
                out[tasks] = (v - np.matmul(factor.transpose(0, 2, 1),
                                            np.matmul(factor, v)))[..., 0] / self.lam
            else:
                out[tasks] = np.matmul(factor, v)[..., 0]
        return out

    def _GH_sums(self, weights):
        p = self.p
        sums = np.zeros((len(weights), p, p))
        for tasks, kernel, factor in self._parts:
            if not kernel:  # sum_t w_t (I - lam G_t), both triangles
                w = weights[:, tasks]
                chosen = np.flatnonzero(np.any(w != 0.0, axis=0))
                sums += _ridged_complement_sums(w[:, chosen], factor[chosen], self.lam)
                continue
            # sum_t w_t Q_t^T Q_t, rank-n_t updates of the lower triangle
            for k, w in enumerate(weights[:, tasks]):
                for i in np.flatnonzero(w):
                    rows = factor[i, :self._counts[tasks[i]]]
                    _SYRK(float(w[i]), rows.T, beta=1.0, c=sums[k].T, trans=0, lower=0,
                          overwrite_c=1)
        return _mirror_lower(sums)


def _weighted_sums(weights, blocks):
    """``sum_t weights[k, t] blocks[t]`` (K, p, p), one matrix product."""
    n_blocks, p, _ = blocks.shape
    return (weights @ blocks.reshape(n_blocks, p * p)).reshape(len(weights), p, p)


def _ridged_complement_sums(weights, G, lam):
    """``sum_t weights[k, t] (I - lam G_t)`` (K, p, p): the cluster sums of ``G_t H_t`` where
    ``G_t = (H_t + lam I)^-1``."""
    sums = _weighted_sums(weights, G)
    sums *= -lam
    diagonal = np.arange(G.shape[1])
    sums[:, diagonal, diagonal] += weights.sum(axis=1)[:, None]
    return sums


# -- the W step for a fixed partition ------------------------------------------------------------
class _LeastSquaresStep:
    """Least-squares W step: the moments once, the block factorisations once per ``within``
    (they do not depend on the partition), then any partition."""

    pull = False

    def __init__(self, design, y, fit_intercept):
        self._data = design, y, fit_intercept
        self._A = None
        if not _kernel_form(design, design.n_features):
            self._A, self._r, self._x_mean, self._y_mean = _task_moments(design, y,
                                                                         fit_intercept)
        self._key = self._blocks = None

    def __call__(self, penalty, W=None, b=None):
        if len(penalty.counts) == 1:  # the mean-clustered problem (the start, n_clusters=1):
            # its solver's compiled per-task loops, without a factorisation kept for later
            W, b = _least_squares_tasks(*self._data[:2], penalty.alpha, penalty.within,
                                        self._data[2])
            return W, b, 0
        key = (penalty.alpha, penalty.within)
        if key != self._key:  # one alpha's partitions at a time: only its blocks are kept
            self._key, self._blocks = None, None  # (freed before the next are built)
            self._blocks = self._coupled_blocks(*key)
            self._key = key
        blocks = self._blocks
        if isinstance(blocks, KernelBlocks):
            W, x_mean, y_mean = blocks.solve(None, penalty), blocks.x_mean, blocks.y_mean
        else:
            W, x_mean, y_mean = blocks.solve(self._r, penalty), self._x_mean, self._y_mean
        return W, y_mean - np.einsum("td,td->t", W, x_mean), 0

    def _coupled_blocks(self, alpha, within):
        design, y, fit_intercept = self._data
        if self._A is None:
            try:
                return KernelBlocks(design, y, alpha, within, fit_intercept)
            except np.linalg.LinAlgError:  # lam below rounding: the dense blocks' fallbacks
                self._A, self._r, self._x_mean, self._y_mean = _task_moments(design, y,
                                                                             fit_intercept)
        return CoupledBlocks(self._A, alpha, within, self._A.shape[1])


class _LogisticStep:
    """Logistic W step: Newton's method, warm-started from the previous ``(W, b)``."""

    def __init__(self, design, y, fit_intercept, tol, max_iter):
        self._design, self._y = design, y
        self.pull = fit_intercept and design.n_tasks > 1
        self._options = dict(fit_intercept=fit_intercept, tol=tol, max_iter=max_iter,
                             pull=self.pull)

    def __call__(self, penalty, W=None, b=None):
        return newton_logistic(self._design, self._y, penalty, coef_init=W, intercept_init=b,
                               **self._options)


def _least_squares_loss(z, y, inv_n):
    return 0.5 * float(np.sum(inv_n * (y - z) ** 2))


def _logistic_loss(z, y, inv_n):
    return float(np.sum(inv_n * (np.logaddexp(0.0, z) - y * z)))


def clustered_objective(design, y, W, b, penalty, loss, pull=False):
    """The objective at ``(W, b)``: per-task mean loss plus the penalty (and pull of ``b``)."""
    z = design.matvec(W) + b[design.obs_tasks]
    inv_n = 1.0 / design.counts[design.obs_tasks]
    return loss(z, y, inv_n) + penalty.value(W, b if pull else None)


def make_step(design, y, *, logistic, fit_intercept, tol=1e-8, max_iter=50):
    """The W step and the loss for one data set: ``step(penalty, W, b) -> (W, b, n_iter)``."""
    if logistic:
        return _LogisticStep(design, y, fit_intercept, tol, max_iter), _logistic_loss
    return _LeastSquaresStep(design, y, fit_intercept), _least_squares_loss


# -- the assignment step -------------------------------------------------------------------------
def _lloyd(W, labels, n_clusters, max_iter=100):
    """Lloyd steps on the rows of ``W`` from the partition ``labels``: the within-cluster sum
    of squares never increases (a task changes cluster only when strictly closer to another
    mean; an empty cluster takes the task farthest from its mean among clusters of two or more).
    """
    labels = labels.copy()
    for _ in range(max_iter):
        counts = np.bincount(labels, minlength=n_clusters)
        for k in np.flatnonzero(counts == 0):
            means = cluster_means(W, labels, n_clusters)
            far = np.sum((W - means[labels]) ** 2, axis=1)
            far[np.bincount(labels, minlength=n_clusters)[labels] < 2] = -1.0
            labels[np.argmax(far)] = k
        if not _lloyd_step(W, labels, n_clusters):
            break
    return labels


@njit(cache=True, fastmath=_FAST)
def _lloyd_step(W, labels, n_clusters):
    """One Lloyd step on ``labels`` (no empty cluster), in place: the cluster means, then every
    task strictly closer (by a relative 1e-12) to another mean moves to the closest one.
    Returns whether one moved. Compiled: the (T, K, d) differences of the same step in numpy
    took a third of a fit on 1,000 tasks."""
    T, d = W.shape
    means = np.zeros((n_clusters, d))
    counts = np.zeros(n_clusters)
    for t in range(T):
        counts[labels[t]] += 1.0
        for j in range(d):
            means[labels[t], j] += W[t, j]
    for k in range(n_clusters):
        for j in range(d):
            means[k, j] /= max(counts[k], 1.0)
    best = labels.copy()
    moved = False
    for t in range(T):
        current = 0.0
        for j in range(d):
            diff = W[t, j] - means[labels[t], j]
            current += diff * diff
        closest, closest_dist = labels[t], current
        for k in range(n_clusters):
            dist = 0.0
            for j in range(d):
                diff = W[t, j] - means[k, j]
                dist += diff * diff
            if dist < closest_dist:
                closest, closest_dist = k, dist
        if closest_dist < current * (1.0 - 1e-12) - 1e-300:
            best[t] = closest
            moved = True
    labels[:] = best
    return moved


def cluster_sums(values, labels, n_clusters):
    """Sum of the entries ``values[t]`` (arrays of any shape) per cluster, as one product with
    the (n_clusters, T) indicator matrix (``np.add.at`` took most of a fit's time)."""
    indicator = np.zeros((n_clusters, len(labels)))
    indicator[labels, np.arange(len(labels))] = 1.0
    flat = indicator @ values.reshape(len(labels), -1)
    return flat.reshape((n_clusters,) + values.shape[1:])


def cluster_means(W, labels, n_clusters):
    """Mean row of ``W`` per cluster (an empty cluster's: zeros)."""
    sums = cluster_sums(W, labels, n_clusters)
    return sums / np.maximum(np.bincount(labels, minlength=n_clusters), 1)[:, None]


def _initial_labels(W, n_clusters, restart, random_state):
    """First restart: farthest-point seeds (deterministic); the others: k-means++ seeds drawn
    with ``random_state``; then Lloyd steps. Both are equivariant under a permutation of the
    tasks (barring ties), so that the fit does not depend on the order of the tasks."""
    if restart == 0:
        seeds = [int(np.argmax(np.sum((W - W.mean(axis=0)) ** 2, axis=1)))]
        dist = np.sum((W - W[seeds[0]]) ** 2, axis=1)
        for _ in range(1, n_clusters):
            seeds.append(int(np.argmax(dist)))
            dist = np.minimum(dist, np.sum((W - W[seeds[-1]]) ** 2, axis=1))
        centres = W[seeds]
    else:  # drawn over the tasks in a canonical order: equivariant under their permutation
        order = np.argsort(np.sum((W - W.mean(axis=0)) ** 2, axis=1), kind="stable")
        centres, _ = kmeans_plusplus(W[order], n_clusters, random_state=random_state)
    labels = np.argmin(np.sum((W[:, None, :] - centres[None]) ** 2, axis=2), axis=1)
    return _lloyd(labels=labels, W=W, n_clusters=n_clusters)


def fit_clustered(step, loss, design, y, *, alpha, between, within, n_clusters, n_init,
                  max_iter, random_state, tol=1e-10, init_labels=None):
    """Alternating minimisation with restarts (see the module docstring).

    ``init_labels``, if given, is the partition the first restart starts from.

    Returns ``(W, b, labels, n_iter, history)`` of the restart with the lowest objective;
    ``history`` is its objective after each W step (non-increasing).
    """
    T, pull = design.n_tasks, step.pull
    n_clusters = min(n_clusters, T)
    # start: the penalty of one task per cluster (= one cluster with within = between)
    W0, b0, _ = step(ClusteredTasksPenalty(alpha, between, between, np.zeros(T, dtype=int)))
    if n_clusters == 1 or n_clusters == T:
        labels = np.zeros(T, dtype=int) if n_clusters == 1 else np.arange(T)
        penalty = ClusteredTasksPenalty(alpha, between, within, labels)
        W, b, _ = step(penalty, W0, b0)
        value = clustered_objective(design, y, W, b, penalty, loss, pull)
        return W, b, labels, 1, [value]
    rng = check_random_state(random_state)
    best, unsettled = None, 0
    for restart in range(n_init):
        if restart == 0 and init_labels is not None:
            labels = np.asarray(init_labels)
        else:
            labels = _initial_labels(_assigned(W0, b0, pull), n_clusters, restart, rng)
        W, b, history = W0, b0, []
        for _ in range(max_iter):
            penalty = ClusteredTasksPenalty(alpha, between, within, labels)
            W, b, _ = step(penalty, W, b)
            history.append(clustered_objective(design, y, W, b, penalty, loss, pull))
            if len(history) > 1 and history[-2] - history[-1] <= tol * abs(history[-1]):
                break
            new_labels = _lloyd(_assigned(W, b, pull), labels, n_clusters)
            if np.array_equal(new_labels, labels):
                break
            if len(history) == max_iter:  # W stays the solve for the labels it was fitted to
                unsettled += 1
                break
            labels = new_labels
        if best is None or history[-1] < best[4][-1]:
            best = (W, b, _canonical(labels), len(history), history)
    if unsettled:
        warnings.warn(
            f"The partition of the tasks still changed after max_iter={max_iter} alternations "
            f"in {unsettled} of {n_init} restart(s): the model kept is the W step of the last "
            "partition, not a partial optimum. Increase max_iter.", ConvergenceWarning,
            stacklevel=2)
    return best


def _assigned(W, b, pull):
    """The rows the assignment step partitions: ``[W, b]`` when the intercepts are pulled
    (their within-cluster spread is penalised as the coefficients' is, with the same
    weights), else ``W``."""
    return np.column_stack([W, b]) if pull else W


def _canonical(labels):
    """Cluster labels numbered by their first task (a partition has one such labelling)."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse]
