"""Block penalties on the columns of the task matrix ``W`` (n_tasks, n_features).

``alpha * sum_j ||W[:, j]||_q`` with ``q = 2`` (the l2,1 or group-lasso norm) or ``q = inf``
(the l-inf,1 norm). Every feature ``j`` is one block holding its coefficients in all tasks, so a
feature is used by all tasks or by none.

A penalty gives:

- its value;
- the exact minimiser of a block model with a different curvature per task (the "weighted block
  prox" used by block coordinate descent, :func:`_prox_block`);
- the dual norm of each block (``q* = 2`` for ``q = 2``, ``q* = 1`` for ``q = inf``), which
  makes a dual point feasible and gives ``alpha_max``;
- the distance of a negative gradient to ``alpha`` times the subdifferential of each block (a
  KKT violation, used to rank features for the working set and as the logistic stopping rule).
"""

import numpy as np
from numba import njit

__all__ = ["BlockPenalty"]

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
    s = 0.0
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
