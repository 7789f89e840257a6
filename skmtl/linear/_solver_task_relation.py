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
  no T x T matrix; only the returned Omega is formed, once;
- the ``W`` step, for a fixed ``Omega``, is the mean-clustered problem with a general T x T
  coupling ``P = lam_1 I + lam_2 Omega^-1``: ``A_t w_t + (P W)_t = r_t`` (squared loss,
  intercepts eliminated by centring each task's rows) or one such system per Newton step
  (logistic loss). The ``T d`` system is solved by conjugate gradients preconditioned by the
  Kronecker sum ``P (x) I + I (x) A_bar`` (``A_bar`` the mean of the ``A_t``), applied exactly
  through the eigendecompositions of ``P`` (factored as above) and ``A_bar``, to a relative
  residual that follows ``tol`` (:func:`_cg_rtol`; ``1e-12`` for the logistic Newton
  systems). When all tasks observe the same rows,
  the preconditioner is the system itself (one iteration, an exact solve); otherwise it
  captures the whole coupling and only the differences between the tasks' moments are left
  to the iterations. On the complement of the range of W (``T > d``), where ``P`` is
  ``lam_1 + lam_2 total / sqrt(eps)``, a curvature that all but freezes the task subspace,
  the W step uses the objective's own curvature there instead (a Newton-like step, same
  fixed point; :class:`_Coupling`), and falls back to the exact W step when that does not
  lower the objective.

The iterations stop when the objective falls by less than ``tol`` times its value over a sweep
(W step then Omega step); each sweep decreases the objective.
"""

import warnings

import numpy as np
from scipy.sparse.linalg import LinearOperator, cg
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning

from skmtl.linear._designs import Problem
from skmtl.linear._linalg import _blas_threads_for
from skmtl.linear._solver_mean_clustered import _task_moments

__all__ = ["relation_weights", "solve_task_relation", "solve_task_relation_logistic"]

_EPS_SCALE = 1e-14  # the final eps, times the mean squared norm of the first task vectors
_CG_RTOL = 1e-12  # the tightest CG tolerance (see _cg_rtol)


def relation_weights(alpha, relation_ratio, n_tasks):
    """``(lam_1, lam_2)`` of the objective: ``alpha (1 - r)`` and ``alpha r / T``."""
    return alpha * (1.0 - relation_ratio), alpha * relation_ratio / n_tasks


def _task_eigen(W):
    """``(U, sigma, V)``: ``W W^T`` on a subspace holding its range, from the thin SVD of ``W``.

    ``U`` (T, k) orthonormal eigenvectors of ``W W^T``, ``sigma`` (k,) their eigenvalues and
    ``V`` (d, k) the matching right singular vectors of ``W``, ``k = min(T, d)``, in
    ``O(T d k)``; ``W W^T`` is zero on the orthogonal complement of ``U`` (dimension T - k).
    """
    U, s, Vt = np.linalg.svd(W, full_matrices=False)
    return U, s * s, Vt.T


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

    def __init__(self, W, lam_1, lam_2, eps):
        U, sigma, V = _task_eigen(W)
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
        self.complement = self.p_0 * np.eye(n_features)
        return self

    def _set(self, U, omega, omega_0, lam_1, lam_2, eps):
        """Eigenvalues ``omega`` of Omega on ``U`` and ``omega_0`` on its complement."""
        self.U, self._omega, self._omega_0 = U, omega, omega_0
        self._n_0 = U.shape[0] - U.shape[1]  # dimension of the complement
        self.p = lam_1 + lam_2 / omega  # eigenvalues of P on U
        self.p_0 = lam_1 + lam_2 / omega_0 if self._n_0 else 0.0
        self._inv_omega_trace = float(np.sum(1.0 / omega)) + self._n_0 / omega_0
        self.lam_2, self.eps = lam_2, eps

    def majorizer(self):
        """The same coupling with ``M_0 = p_0 I``: the W step then minimises the objective."""
        if self.complement is None:
            return self
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.complement = self.p_0 * np.eye(self.complement.shape[0])
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

    @property
    def omega(self):
        """The T x T task covariance (formed on request)."""
        UI, rest = self.split(np.eye(self.U.shape[0]))
        omega = self.U @ (self._omega[:, None] * UI)
        if rest is not None:
            omega += self._omega_0 * rest
        return 0.5 * (omega + omega.T)

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


def _cg_rtol(tol):
    """CG tolerance of the W steps for an objective tolerance ``tol``.

    A W step solved to a relative residual ``rtol`` misses its minimum by about ``rtol^2``
    relative to the objective, so ``1e-3 sqrt(tol)`` keeps that far below ``tol`` (``1e-8``
    at the default ``tol = 1e-10``: half the CG iterations of ``1e-12``; on benchmark case
    (d) W moves by 6e-8 of 2, as much as from ``tol = 1e-10`` to ``1e-13``).
    """
    return max(1e-3 * np.sqrt(tol), _CG_RTOL)


def _solve_coupled(G, coupling, R, W0, c=None, h=None, kappa=0.0, r_b=None, rtol=_CG_RTOL):
    """Solve ``G_t w_t + (P W)_t + c_t db_t = R_t``, ``c_t . w_t + (H_bb db)_t = r_b`` by CG.

    ``G`` (T, d, d) per-task blocks; with ``c`` (T, d), ``h`` (T,) the intercept coordinate
    of each task, whose block ``H_bb = diag(h) + kappa (I - 1 1^T / T)`` is eliminated exactly
    (Sherman-Morrison): CG runs on the Schur complement in ``W``, from ``W0`` to a relative
    residual ``rtol``. Returns ``(W, db, n_cg)``.
    """
    T, d = R.shape
    if c is not None:
        E = h + kappa
        denom = 1.0 - kappa / T * np.sum(1.0 / E)

        def hinv(v):
            u = v / E
            return u + (kappa / T) * np.sum(u) / denom / E if kappa else u
        rhs = R - c * hinv(r_b)[:, None]
        G_bar = np.mean(G - c[:, :, None] * c[:, None, :] / h[:, None, None], axis=0)
    else:
        rhs = R
        G_bar = G.mean(axis=0)

    def matvec(v):
        W = v.reshape(T, d)
        out = (G @ W[:, :, None])[:, :, 0] + coupling.apply(W)
        if c is not None:
            out -= c * hinv(np.einsum("td,td->t", c, W))[:, None]
        return out.ravel()

    a, V = np.linalg.eigh(0.5 * (G_bar + G_bar.T))
    a = np.maximum(a, 0.0)
    denominators = coupling.p[:, None] + a[None, :]
    if coupling.complement is not None:  # outside U: (I (x) (M_0 + A_bar))^-1
        inverse_0 = np.linalg.inv(coupling.complement + (V * a) @ V.T)

    def precondition(v):
        UZ, rest = coupling.split(v.reshape(T, d))
        out = coupling.U @ (((UZ @ V) / denominators) @ V.T)
        if rest is not None:
            out += rest @ inverse_0
        return out.ravel()

    n_cg = [0]

    def count(_):
        n_cg[0] += 1

    op = LinearOperator((T * d, T * d), matvec=matvec, dtype=np.float64)
    M = LinearOperator((T * d, T * d), matvec=precondition, dtype=np.float64)
    x, info = cg(op, rhs.ravel(), x0=W0.ravel(), rtol=rtol, atol=0.0,
              maxiter=10 * T * d + 20, M=M, callback=count)
    W = x.reshape(T, d)
    db = None if c is None else hinv(r_b - np.einsum("td,td->t", c, W))
    return W, db, n_cg[0]


def _epsilon(W):
    scale = float(np.mean(np.einsum("td,td->t", W, W))) if W.size else 0.0
    return max(_EPS_SCALE * scale, np.finfo(np.float64).tiny)


def _alternate(w_step, loss, W, b, lam_1, lam_2, tol, max_iter):
    """Block coordinate descent on ``(W, b)`` and ``Omega``, with safeguarded extrapolation.

    ``w_step(W, b, coupling)`` minimises over ``(W, b)`` for a fixed Omega; ``loss(W, b)`` is
    the data term (with any intercept pull). For a given ``eps``, the objective tracked is the
    minimum over Omega, ``loss + lam_1 / 2 ||W||^2 + lam_2 / 2 (tr (W W^T + eps I)^(1/2))^2``,
    and each sweep lowers it. ``eps`` starts at ``1e-2`` times the mean squared norm of the
    first (ridge) task vectors and is divided by 1000 whenever a sweep lowers the objective by
    at most ``tol`` times its value, down to ``1e-14`` times that scale (continuation): with a
    tiny ``eps`` from the start, a singular value of ``W`` that collapses early freezes the
    task subspace (its direction in ``Omega^-1`` is penalised by ``1 / sqrt(eps)``), and the
    alternation stalls short of the optimum. Each W step uses the coupling's default
    curvature outside the range of W (:class:`_Coupling`) and is redone with the majoriser
    when it does not lower the objective. After each sweep the step from the previous point
    is stretched by ``size`` > 1 when that lowers the objective further (adaptive
    over-relaxation), so the descent stays monotone for each ``eps``. Stops when a sweep at the
    final ``eps`` lowers the objective by at most ``tol`` times its value.
    """
    with _blas_threads_for(min(W.shape)):  # T x min(T, d) products: threads only stall
        return _descend(w_step, loss, W, b, lam_1, lam_2, tol, max_iter)


def _descend(w_step, loss, W, b, lam_1, lam_2, tol, max_iter):
    W, b = w_step(W, b, _Coupling.initial(*W.shape, lam_1, lam_2))
    scale = _epsilon(W) / _EPS_SCALE
    stages = iter(scale * 10.0 ** np.arange(-2, -14.5, -3))
    eps = next(stages)

    def value_of(W, b):
        coupling = _Coupling(W, lam_1, lam_2, eps)
        value = loss(W, b) + 0.5 * lam_1 * float(np.sum(W * W)) + coupling.relation_value
        return value, coupling

    value, coupling = value_of(W, b)
    n_iter, change, size = 1, np.inf, 2.0
    while n_iter < max_iter:
        new_W, new_b = w_step(W, b, coupling)
        new_value, new_coupling = value_of(new_W, new_b)
        if new_value > value and coupling.complement is not None:  # the majoriser descends
            new_W, new_b = w_step(W, b, coupling.majorizer())
            new_value, new_coupling = value_of(new_W, new_b)
        if size > 1.0:
            far_W = W + size * (new_W - W)
            far_b = None if b is None else b + size * (new_b - b)
            far_value, far_coupling = value_of(far_W, far_b)
            if far_value < new_value:
                new_W, new_b, new_value, new_coupling = far_W, far_b, far_value, far_coupling
                size *= 1.5
            else:
                size = 2.0
        n_iter += 1
        change = (value - new_value) / max(abs(new_value), np.finfo(np.float64).tiny)
        if change >= 0:
            W, b, value, coupling = new_W, new_b, new_value, new_coupling
        if change <= tol:  # converged for this eps (a negative change: rounding)
            eps = next(stages, None)
            if eps is None:
                break
            value, coupling = value_of(W, b)
    else:
        _not_converged(max_iter, change, tol)
    return W, b, coupling.omega, n_iter


def _not_converged(max_iter, change, tol):
    warnings.warn(
        f"Multi-task relationship learning did not converge in max_iter={max_iter} sweeps "
        f"(last relative decrease of the objective {change:.3g} > tol = {tol:g}). Increase "
        "max_iter.",
        ConvergenceWarning,
    )


def solve_task_relation(X, Y, mask, alpha, relation_ratio, *, fit_intercept=True, tol=1e-10,
                        max_iter=1000, task_index=None, n_tasks=None):
    """Multi-task relationship learning with the squared loss.

    Minimises over ``W``, ``b`` and ``Omega`` (positive semi-definite, unit trace)::

        sum_t 1 / (2 n_t) ||y_t - X_t w_t - b_t||^2
        + lam_1 / 2 ||W||_F^2 + lam_2 / 2 tr(W^T Omega^-1 W)

    with ``lam_1 = alpha (1 - relation_ratio)``, ``lam_2 = alpha relation_ratio / T``, by
    alternating the W step (one linear system, see the module docstring) and the closed-form
    Omega step. Wide ``(X, Y, mask)`` or long ``(X, y, None, task_index=...)`` data.

    Returns
    -------
    W : ndarray of shape (n_tasks, n_features)
    b : ndarray of shape (n_tasks,)
    omega : ndarray of shape (n_tasks, n_tasks)
        The task covariance at the solution.
    n_iter : int
        Number of sweeps (W step and Omega step).
    """
    problem = Problem(X, Y, mask, task_index=task_index, n_tasks=n_tasks)
    design = problem.design()
    y = problem.targets(design)
    T = design.n_tasks
    A, r, x_mean, y_mean = _task_moments(design, y, fit_intercept)
    residual = y - y_mean[design.obs_tasks] if fit_intercept else y
    constant = 0.5 * design.segment_sum(residual**2 / design.counts[design.obs_tasks]).sum()
    lam_1, lam_2 = relation_weights(alpha, relation_ratio, T)

    def loss(W):
        quad = float(np.sum(W * (A @ W[:, :, None])[:, :, 0]))
        return 0.5 * quad - float(np.sum(r * W)) + constant

    def w_step(W, b, coupling):
        return _solve_coupled(A, coupling, r, W, rtol=_cg_rtol(tol))[0], b

    W, _, omega, n_iter = _alternate(w_step, lambda W, b: loss(W), np.zeros_like(r), None,
                                     lam_1, lam_2, tol, max_iter)
    b = y_mean - np.einsum("td,td->t", W, x_mean)
    return W, b, omega, n_iter


def solve_task_relation_logistic(X, Y, mask, alpha, relation_ratio, *, fit_intercept=True,
                                 tol=1e-10, max_iter=1000, newton_max_iter=50, task_index=None,
                                 n_tasks=None):
    """Multi-task relationship learning with the binary logistic loss.

    Minimises over ``W``, ``b`` and ``Omega`` (positive semi-definite, unit trace)::

        sum_t 1 / n_t sum_{i in task t} log(1 + exp(-s_i (x_i w_t + b_t)))
        + lam_1 / 2 ||W||_F^2 + lam_2 / 2 tr(W^T Omega^-1 W)
        + alpha / 2 sum_t (b_t - b_bar)^2

    with ``s_i = 2 y_i - 1``, ``lam_1 = alpha (1 - relation_ratio)``,
    ``lam_2 = alpha relation_ratio / T`` and ``b_bar`` the mean intercept (the last term, only
    with intercepts and more than one task, keeps the intercept of a task that saw one class
    finite). The W step (for a fixed Omega) runs Newton's method with a backtracking line
    search to a Newton decrement below ``1e-3 tol`` times the objective; each Newton system is
    solved as the regressor's W step, with the intercepts eliminated exactly.

    Returns
    -------
    W, b, omega, n_iter
        As :func:`solve_task_relation`.
    """
    problem = Problem(X, Y, mask, task_index=task_index, n_tasks=n_tasks)
    design = problem.design()
    y = problem.targets(design)
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("Y must hold 0 / 1 labels on the observed entries.")
    T, d = design.n_tasks, design.n_features
    tasks = design.obs_tasks
    inv_n = 1.0 / design.counts[tasks]
    lam_1, lam_2 = relation_weights(alpha, relation_ratio, T)
    kappa = alpha if (fit_intercept and T > 1) else 0.0
    W = np.zeros((T, d))
    if fit_intercept:  # each task's log-odds, a half label of each class added
        rate = (design.segment_sum(y) + 0.5) / (design.counts + 1.0)
        b = np.log(rate / (1.0 - rate))
    else:
        b = np.zeros(T)

    def objective(z, W, b, coupling):
        value = float(np.sum(inv_n * (np.logaddexp(0.0, z) - y * z))) + coupling.quadratic(W)
        return value + 0.5 * kappa * float(np.sum((b - b.mean()) ** 2))

    def newton(W, b, coupling):
        z = design.matvec(W) + b[tasks]
        value = objective(z, W, b, coupling)
        for _ in range(newton_max_iter):
            p = expit(z)
            res = (p - y) * inv_n
            weight = p * (1.0 - p) * inv_n
            grad_W = design.rmatvec(res) + coupling.apply(W)
            H = design.gram(weight)
            if fit_intercept:
                grad_b = design.segment_sum(res) + kappa * (b - b.mean())
                dW, db, _ = _solve_coupled(H, coupling, -grad_W, np.zeros_like(W),
                                           c=design.rmatvec(weight),
                                           h=design.segment_sum(weight), kappa=kappa,
                                           r_b=-grad_b)
                decrement = -float(np.sum(grad_W * dW) + np.sum(grad_b * db))
            else:
                dW, _, _ = _solve_coupled(H, coupling, -grad_W, np.zeros_like(W))
                db, decrement = np.zeros(T), -float(np.sum(grad_W * dW))
            dz = design.matvec(dW) + db[tasks]
            if 0.5 * decrement <= 1e-3 * tol * max(abs(value), 1e-300):
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

    def loss(W, b):
        z = design.matvec(W) + b[tasks]
        value = float(np.sum(inv_n * (np.logaddexp(0.0, z) - y * z)))
        return value + 0.5 * kappa * float(np.sum((b - b.mean()) ** 2))

    return _alternate(w_step, loss, W, b, lam_1, lam_2, tol, max_iter)
