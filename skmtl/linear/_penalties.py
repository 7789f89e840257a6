"""Block penalties on the columns of the task matrix ``W`` (n_tasks, n_features).

``alpha * sum_j ||W[:, j]||_q`` with ``q = 2`` (the l2,1 or group-lasso norm) or ``q = inf``
(the l-inf,1 norm). Every feature ``j`` is one block holding its coefficients in all tasks, so a
feature is used by all tasks or by none.

Next to it, :class:`MeanClusteredPenalty`, the quadratic penalty of the mean-clustered models
on the deviations of the task vectors from their mean (see its docstring).

A block penalty gives:

- its value;
- the exact minimiser of a block model with a different curvature per task (the "weighted block
  prox" used by block coordinate descent, :func:`_prox_block`);
- the dual norm of each block (``q* = 2`` for ``q = 2``, ``q* = 1`` for ``q = inf``), which
  makes a dual point feasible and gives ``alpha_max``;
- the distance of a negative gradient to ``alpha`` times the subdifferential of each block (a
  KKT violation, used to rank features for the working set and as the logistic stopping rule).
"""

import numpy as np
import scipy.linalg
from numba import njit

from skmtl.linear._linalg import _blas_threads_for, _spd_inverse, _spd_solve

__all__ = ["BlockPenalty", "MeanClusteredPenalty"]

class BlockPenalty:
    """The block penalty ``alpha * sum_j ||W[:, j]||_q`` for ``q`` in {2, inf}.

    Parameters
    ----------
    alpha : float
        Regularisation strength, >= 0.
    q : {2, inf}
        Norm of each block (the column ``W[:, j]`` of a feature across tasks).
    """

    def __init__(self, alpha, q):
        if q not in (2, np.inf):
            raise ValueError(f"q must be 2 or np.inf; got {q!r}.")
        self.alpha = float(alpha)
        self.q = q
        self.q_inf = q == np.inf

    def value(self, W):
        """``alpha * sum_j ||W[:, j]||_q`` for W of shape (n_tasks, n_features)."""
        return self.alpha * float(np.sum(block_norms(W, self.q)))

    def dual_norms(self, G):
        """``||G[:, j]||_{q*}`` of every column (``q* = 2`` for q = 2, ``1`` for q = inf)."""
        return block_norms(G, 1 if self.q_inf else 2)

    def subdiff_distance(self, W, G):
        """Distance (in the dual norm) of ``G[:, j]`` to ``alpha * d||W[:, j]||_q``, per feature.

        ``G`` is the negative gradient of the datafit. Zero at an optimum for every feature.
        """
        return _subdiff_distance(np.ascontiguousarray(W), np.ascontiguousarray(G), self.alpha,
                                 self.q_inf)


def block_norms(W, q):
    """``||W[:, j]||_q`` for every column j of a 2-D array (q in {1, 2, inf})."""
    W = np.asarray(W)
    if W.shape[0] == 0:
        return np.zeros(W.shape[1])
    if q == 2:
        return np.sqrt(np.einsum("tj,tj->j", W, W))
    if q == 1:
        return np.abs(W).sum(axis=0)
    return np.abs(W).max(axis=0)


@njit(cache=True)
def _prox_block(a, L, alpha, q_inf, out):
    """Exact minimiser of ``sum_t (L_t / 2) w_t^2 - a_t w_t + alpha ||w||_q``, into ``out``.

    This is the block-coordinate step of a feature: ``L_t`` is task t's curvature on that
    feature (its own, since each task has its own rows) and ``a_t = L_t w_t_old - grad_t``.
    Tasks with ``L_t <= 0`` (a constant column in that task) get ``w_t = 0``.
    """
    T = a.shape[0]
    if alpha <= 0.0:
        for t in range(T):
            out[t] = a[t] / L[t] if L[t] > 0.0 else 0.0
        return
    if q_inf:
        _prox_block_linf(a, L, alpha, out)
    else:
        _prox_block_l2(a, L, alpha, out)


@njit(cache=True)
def _prox_block_l2(a, L, alpha, out):
    # w = 0 iff ||a||_2 <= alpha. Otherwise w_t = a_t s / (L_t s + alpha) with s = ||w||, the
    # root of psi(s) = 1 / ||p(s)|| - 1, p_t(s) = a_t / (L_t s + alpha): a trust-region secular
    # equation, concave and increasing in s, so Newton from s = 0 climbs monotonically to it.
    T = a.shape[0]
    norm2 = 0.0
    for t in range(T):
        if L[t] > 0.0:
            norm2 += a[t] * a[t]
    if norm2 <= alpha * alpha:
        for t in range(T):
            out[t] = 0.0
        return
    # from a lower bound of the root, ||p(s)|| >= ||a|| / (L_max s + alpha) (Newton then
    # climbs to it as from 0): from s = 0 itself, alpha^2 underflowed at tiny alpha (1e-200,
    # a ZeroDivisionError)
    L_max = 0.0
    for t in range(T):
        L_max = max(L_max, L[t])
    s = max((np.sqrt(norm2) - alpha) / L_max, 0.0)
    for _ in range(100):
        phi = 0.0
        dphi = 0.0
        for t in range(T):
            if L[t] > 0.0:
                den = L[t] * s + alpha
                term = a[t] * a[t] / (den * den)
                phi += term
                dphi += term * L[t] / den
        # psi = phi^(-1/2) - 1, psi' = phi^(-3/2) * dphi
        inv_sqrt = 1.0 / np.sqrt(phi)
        step = (1.0 - inv_sqrt) * phi / (inv_sqrt * dphi) if dphi > 0.0 else 0.0
        s_new = s + step
        if not step > 1e-15 * s_new:
            s = s_new
            break
        s = s_new
    for t in range(T):
        out[t] = a[t] * s / (L[t] * s + alpha) if L[t] > 0.0 else 0.0


@njit(cache=True)
def _prox_block_linf(a, L, alpha, out):
    # w = 0 iff ||a||_1 <= alpha. Otherwise w_t = sign(a_t) min(|a_t| / L_t, tau) where tau > 0
    # solves sum_t (|a_t| - L_t tau)_+ = alpha (piecewise linear: walk the sorted breakpoints).
    T = a.shape[0]
    norm1 = 0.0
    for t in range(T):
        if L[t] > 0.0:
            norm1 += abs(a[t])
    if norm1 <= alpha:
        for t in range(T):
            out[t] = 0.0
        return
    brk = np.empty(T)
    for t in range(T):
        brk[t] = abs(a[t]) / L[t] if L[t] > 0.0 else -1.0
    order = np.argsort(-brk)
    s_abs = 0.0
    s_l = 0.0
    tau = 0.0
    for k in range(T):
        t = order[k]
        if brk[t] < 0.0:
            break
        s_abs += abs(a[t])
        s_l += L[t]
        tau = (s_abs - alpha) / s_l
        nxt = brk[order[k + 1]] if k + 1 < T else -1.0
        if tau >= nxt:
            break
    if tau < 0.0:
        tau = 0.0
    for t in range(T):
        if L[t] > 0.0:
            mag = min(abs(a[t]) / L[t], tau)
            out[t] = mag if a[t] > 0.0 else -mag
        else:
            out[t] = 0.0


@njit(cache=True)
def _subdiff_distance(W, G, alpha, q_inf):
    T, d = W.shape
    dist = np.zeros(d)
    for j in range(d):
        wmax = 0.0
        wnorm2 = 0.0
        for t in range(T):
            wmax = max(wmax, abs(W[t, j]))
            wnorm2 += W[t, j] * W[t, j]
        if wmax == 0.0:
            # distance of G_j to the dual ball of radius alpha
            dn = 0.0
            if q_inf:
                for t in range(T):
                    dn += abs(G[t, j])
            else:
                for t in range(T):
                    dn += G[t, j] * G[t, j]
                dn = np.sqrt(dn)
            dist[j] = max(dn - alpha, 0.0)
        elif not q_inf:
            wnorm = np.sqrt(wnorm2)
            acc = 0.0
            for t in range(T):
                diff = G[t, j] - alpha * W[t, j] / wnorm
                acc += diff * diff
            dist[j] = np.sqrt(acc)
        else:
            # l1 distance of G_j to alpha * {u: sum |u_t| = 1, u_t sign(w_t) >= 0 on the
            # arg-max set, u_t = 0 off it}
            acc = 0.0
            pos = 0.0
            for t in range(T):
                if abs(W[t, j]) >= wmax * (1.0 - 1e-10):
                    h = G[t, j] if W[t, j] > 0.0 else -G[t, j]
                    if h < 0.0:
                        acc -= h
                    else:
                        pos += h
                else:
                    acc += abs(G[t, j])
            dist[j] = acc + abs(pos - alpha)
    return dist


# -- mean-clustered penalty ---------------------------------------------------------------------
class MeanClusteredPenalty:
    """``alpha * (||w_bar||^2 + c / T * sum_t ||w_t - w_bar||^2)``, ``c = cluster_strength``.

    ``w_bar`` is the mean of the task vectors ``w_t`` (the rows of W). Equivalently
    ``alpha * ((1 - c) ||w_bar||^2 + c / T sum_t ||w_t||^2)``: a quadratic form whose
    Hessian is ``lam I`` per task plus ``mu / T`` times the coupling of all tasks through the
    mean, ``lam = 2 alpha c / T``, ``mu = 2 alpha (1 - c) / T`` (:meth:`curvatures`).
    Positive definite exactly when ``alpha > 0`` and ``c > 0``. The exact solvers need its
    value and the solution of the structured system "data Hessian blocks plus the penalty's
    Hessian" (:meth:`solve`); the intercepts may be pulled towards their mean alike.

    Parameters
    ----------
    alpha : float
        Regularisation strength, finite and > 0.
    cluster_strength : float
        Weight of the deviations from the mean task, finite and > 0.
    """

    def __init__(self, alpha, cluster_strength):
        _check_parameters(alpha, cluster_strength)
        self.alpha = alpha
        self.cluster_strength = cluster_strength

    def value(self, W, b=None):
        """The penalty of ``W``, plus the pull of the intercepts ``b`` if given."""
        return _penalty(W, self.alpha, self.cluster_strength, b)

    def curvatures(self, n_tasks):
        """``(lam, mu)``: the per-task curvature and the coupling through the mean."""
        alpha, c = self.alpha, self.cluster_strength
        return 2.0 * alpha * c / n_tasks, 2.0 * alpha * (1.0 - c) / n_tasks

    def solve(self, H, rhs, n_penalised, *, pull_last=False):
        """Solve ``(blockdiag(H_t) + penalty Hessian) x = rhs`` (see :func:`_coupled_solve`)."""
        return _coupled_solve(H, rhs, self.alpha, self.cluster_strength, n_penalised,
                              pull_last=pull_last)


def _check_parameters(alpha, cluster_strength):
    if not (np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a finite number > 0; got {alpha!r}.")
    if not (np.isfinite(cluster_strength) and cluster_strength > 0):
        raise ValueError(
            f"cluster_strength must be a finite number > 0; got {cluster_strength!r}."
        )


def _penalty(W, alpha, cluster_strength, b=None):
    """The mean-clustered penalty of ``W``, plus the pull of the intercepts ``b`` if given."""
    deviation = W - W.mean(axis=0)
    value = alpha * (np.sum(W.mean(axis=0) ** 2)
                     + cluster_strength / W.shape[0] * np.sum(deviation**2))
    if b is not None:
        value += alpha * cluster_strength / W.shape[0] * np.sum((b - b.mean()) ** 2)
    return value


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
