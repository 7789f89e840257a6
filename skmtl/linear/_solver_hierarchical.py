"""Empirical Bayes for the hierarchical linear model: the profiled likelihood of a mixed model.

The model, per task ``t`` with rows ``X_t`` (fixed-effects design, ``p`` columns) and ``Z_t``
(random-effects design, ``q`` columns, a subset of the fixed ones)::

    y_t = X_t beta + Z_t u_t + e_t,   u_t ~ N(0, sigma^2 L L^T),   e_t ~ N(0, sigma^2 I)

with ``L`` (q x q) lower triangular, the relative Cholesky factor of the random effects'
covariance ``Sigma = sigma^2 L L^T`` (Bates et al., 2015, "Fitting linear mixed-effects models
using lme4"). For a given ``L`` the maximum over ``beta`` and ``sigma^2`` is closed form, so
the likelihood is maximised over the ``q (q + 1) / 2`` entries of ``L`` only (the *profiled*
deviance), by L-BFGS-B with its exact gradient and the diagonal of ``L`` bounded below by 0:
a variance that is zero at the optimum sits on a bound, where the optimiser stops in a few
steps (expectation-maximisation creeps towards such a boundary for thousands of iterations).

With ``M_t = I + L^T A_t L``, ``A_t = Z_t^T Z_t``, ``K_t = L M_t^-1 L^T`` and the Gram matrix
of ``[X, y]`` weighted by the inverse marginal covariances (Woodbury)::

    S = [X y]^T [X y] - sum_t [X_t y_t]^T Z_t K_t Z_t^T [X_t y_t]

``beta = S_XX^-1 S_Xy``, ``r^2 = S_yy - S_yX beta`` (the penalised residual sum of squares) and
the deviances, up to constants, are::

    ML:    N log r^2 + sum_t log |M_t|
    REML:  (N - p) log r^2 + sum_t log |M_t| + log |S_XX|

with ``sigma^2 = r^2 / N`` (ML) or ``r^2 / (N - p)`` (REML). Their gradient with respect to
``L`` is ``2 sum_t [A_t - (I - A_t K_t) G_t] L M_t^-1``, with ``G_t = (N' / r^2) c_t c_t^T``
(plus ``C_t S_XX^-1 C_t^T`` for REML), ``c_t = Z_t^T (y_t - X_t beta)``, ``C_t = Z_t^T X_t``
and ``N' = N`` or ``N - p``. Each task's random effects are then the posterior means (BLUPs)
``u_t = K_t c_t``.

Everything is computed from per-task moments of ``[X, 1, y]``, once: a deviance costs
``O(T q^2 (q + p))``, whatever the number of rows.
"""

import numpy as np
from scipy.linalg import cho_solve
from scipy.optimize import minimize

__all__ = ["MixedModel", "minimize_covariance", "task_moments"]

_BOUND = 1e4


def task_moments(problem, fit_intercept):
    """Per-task moments ``(A, c, s, n)`` of ``D_t = [X_t, 1]`` (the ones only with
    ``fit_intercept``): ``D_t^T D_t`` (T, p, p), ``D_t^T y_t`` (T, p), ``y_t^T y_t`` and the
    row counts (T,), from the per-task design of a :class:`~._designs.Problem` (wide or long
    data, dense or sparse X; no per-task copy of X).
    """
    design = problem.design()
    y = problem.targets(design)
    A, c = design.gram(), design.rmatvec(y)
    n = design.counts.astype(np.float64)
    if fit_intercept:
        sums = design.rmatvec(np.ones_like(y))
        A = np.concatenate([np.concatenate([A, sums[:, :, None]], axis=2),
                            np.concatenate([sums, n[:, None]], axis=1)[:, None, :]], axis=1)
        c = np.column_stack([c, design.segment_sum(y)])
    return A, c, design.segment_sum(y * y), n


class MixedModel:
    """The profiled deviance of the model above, from per-task moments.

    Parameters
    ----------
    A, c, s, n : ndarray
        Per-task moments of the fixed-effects design ``D`` and targets (:func:`task_moments`),
        in the coordinates the model is fitted in.
    random : ndarray of int
        Columns of ``D`` that also have a random effect (``Z_t = D_t[:, random]``).
    reml : bool
        Restricted (REML) or plain (ML) likelihood.
    """

    def __init__(self, A, c, s, n, random, reml):
        self.random = np.asarray(random)
        self.reml = reml
        self.n = float(n.sum())
        # a rank-deficient fixed design (one-hot columns beside the intercept, a constant
        # column): fit beta in an orthonormal basis of the range of D^T D, beta = basis @ gamma
        total = A.sum(axis=0)
        values, vectors = np.linalg.eigh(total)
        keep = values > values.max() * A.shape[1] * np.finfo(float).eps
        self.basis = vectors[:, keep]
        self.rank = int(keep.sum())
        self.Azz = A[:, self.random][:, :, self.random]  # (T, q, q)
        self.Czx = A[:, self.random] @ self.basis  # (T, q, r)
        self.czy = c[:, self.random]  # (T, q)
        self.Gxx = self.basis.T @ total @ self.basis
        self.Gxy = self.basis.T @ c.sum(axis=0)
        self.Gyy = float(s.sum())
        self.q = len(self.random)
        self._tril = np.tril_indices(self.q)

    def factor(self, theta):
        """The lower-triangular ``L`` of a parameter vector (its lower triangle, row-major)."""
        L = np.zeros((self.q, self.q))
        L[self._tril] = theta
        return L

    def _solve(self, theta):
        """Everything the deviance and its gradient need at ``theta``."""
        L = self.factor(theta)
        M = np.eye(self.q) + L.T @ self.Azz @ L
        chol = np.linalg.cholesky(M)
        # M^-1 L^T, batched; K = L M^-1 L^T
        MinvLt = np.linalg.solve(M, np.broadcast_to(L.T, M.shape))
        K = L @ MinvLt
        KC = K @ self.Czx  # (T, q, r)
        Kc = np.einsum("tij,tj->ti", K, self.czy)
        Sxx = self.Gxx - np.einsum("tir,tis->rs", self.Czx, KC)
        Sxy = self.Gxy - np.einsum("tir,ti->r", self.Czx, Kc)
        Syy = self.Gyy - float(np.einsum("ti,ti->", self.czy, Kc))
        Sxx_chol = _cholesky(0.5 * (Sxx + Sxx.T))
        gamma = _cho_solve(Sxx_chol, Sxy)
        # floored at rounding level: data the fixed effects fit exactly keep a finite deviance
        r2 = max(Syy - float(Sxy @ gamma), np.finfo(float).eps * max(self.Gyy, 1.0))
        logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum()
        return L, MinvLt, K, gamma, r2, logdet, Sxx_chol

    def _dof(self):
        return self.n - self.rank if self.reml else self.n

    def _gradient_terms(self, theta):
        """``(value, K, G)``: the deviance and the ``K_t``, ``G_t`` of its gradient."""
        L, MinvLt, K, gamma, r2, logdet, Sxx_chol = self._solve(theta)
        dof = self._dof()
        value = dof * np.log(r2) + logdet
        resid = self.czy - self.Czx @ gamma  # c_t = Z_t^T (y_t - X_t beta)
        G = (dof / r2) * np.einsum("ti,tj->tij", resid, resid)
        if self.reml:
            value += 2.0 * np.log(np.diag(Sxx_chol)).sum()
            inverse = _cho_solve(Sxx_chol, np.eye(len(Sxx_chol)))  # S_XX^-1, r x r
            G += self.Czx @ inverse @ self.Czx.transpose(0, 2, 1)
        return float(value), L, MinvLt, K, G

    def deviance(self, theta):
        """The profiled deviance (up to a constant) and its gradient in ``theta``."""
        value, L, MinvLt, K, G = self._gradient_terms(theta)
        IAK = np.eye(self.q) - self.Azz @ K
        grad = 2.0 * np.einsum("tij,tjk->ik", self.Azz - IAK @ G, MinvLt.transpose(0, 2, 1))
        return value, grad[self._tril]

    def covariance_gradient(self, theta):
        """The gradient of the deviance in the relative covariance ``Psi = L L^T``.

        ``sum_t A_t R_t - R_t^T G_t R_t`` with ``R_t = (I + Psi A_t)^-1`` (``R_t^T = I - A_t
        K_t``); the gradient in ``L`` is twice this times ``L``, so it vanishes wherever a
        column of ``L`` is zero whether or not that variance should grow: this one tells.
        """
        value, L, MinvLt, K, G = self._gradient_terms(theta)
        Rt = np.eye(self.q) - self.Azz @ K
        grad = np.einsum("tij,tjk->ik", self.Azz, Rt.transpose(0, 2, 1)) - np.einsum(
            "tij,tjk,tlk->il", Rt, G, Rt)
        return value, 0.5 * (grad + grad.T)

    def fit(self, theta0, *, max_iter, tol):
        """Minimise the deviance from ``theta0``: ``(theta, n_iter)``.

        See :func:`minimize_covariance`.
        """
        return minimize_covariance(self.deviance, self.covariance_gradient, theta0, 0, self.q,
                                   max_iter=max_iter, tol=tol)

    def estimates(self, theta):
        """``(beta, sigma2, Sigma, U, deviance)`` at ``theta``: fixed effects (in the coordinates
        of ``D``), noise variance, covariance of the random effects, the BLUPs ``U`` (T, q)."""
        L, MinvLt, K, gamma, r2, logdet, Sxx_chol = self._solve(theta)
        sigma2 = r2 / self._dof()
        resid = self.czy - self.Czx @ gamma
        U = np.einsum("tij,tj->ti", K, resid)
        return self.basis @ gamma, sigma2, sigma2 * (L @ L.T), U

    def log_likelihood(self, theta):
        """The maximised (restricted) log-likelihood at ``theta``, constants included."""
        value, _ = self.deviance(theta)
        dof = self._dof()
        return -0.5 * (value + dof * (1.0 + np.log(2.0 * np.pi / dof)))


def _escape(fun, covariance_gradient, x, n_free, q):
    """A better starting point than ``x`` if it stopped where a variance at zero should grow
    (the gradient in the covariance has a negative eigenvalue), else None."""
    value, grad = covariance_gradient(x)
    eigenvalues, vectors = np.linalg.eigh(grad)
    if eigenvalues[0] >= -1e-8 * max(1.0, abs(value)):
        return None
    tril = np.tril_indices(q)
    L = np.zeros((q, q))
    L[tril] = x[n_free:]
    psi = L @ L.T
    direction = np.outer(vectors[:, 0], vectors[:, 0])
    step = max(1.0, np.trace(psi))
    for _ in range(40):
        trial = psi + step * direction
        factor = np.linalg.cholesky(trial + 1e-10 * np.trace(trial) * np.eye(q))
        candidate = np.concatenate([x[:n_free], factor[tril]])
        if fun(candidate)[0] < value:
            return candidate
        step *= 0.5
    return None


def minimize_covariance(fun, covariance_gradient, x0, n_free, q, *, max_iter, tol,
                        bound=_BOUND, free_bound=None):
    """Minimise ``fun`` over ``x = [free parameters (n_free), lower triangle of L (q x q)]``.

    L-BFGS-B with the exact gradient, the diagonal of ``L`` in ``[0, bound]`` and its other
    entries in ``[-bound, bound]`` (by default standard deviations of the random effects up to
    1e4 times the noise's, in standardised coordinates), the free parameters in
    ``[-free_bound, free_bound]`` (None: unbounded). A zero column of ``L`` is a stationary
    point of any function of ``L L^T`` whether or not that variance should grow, so where
    L-BFGS-B stops,
    ``covariance_gradient(x)`` (the gradient in ``Psi = L L^T``, with the value) is checked:
    a negative eigenvalue restarts it from a point along its eigenvector (at most ``q``
    times). ``tol`` is L-BFGS-B's projected-gradient tolerance on ``fun / max(1, |fun(x0)|)``.
    Returns ``(x, n_iter)``.
    """
    tril = np.tril_indices(q)
    diagonal = tril[0] == tril[1]
    free = None if free_bound is None else -free_bound
    bounds = [(free, free_bound)] * n_free + [
        (0.0, bound) if on else (-bound, bound) for on in diagonal]
    x, n_iter = np.asarray(x0, dtype=np.float64), 0
    for _ in range(q + 1):
        scale = max(1.0, abs(fun(x)[0]))
        result = minimize(
            lambda x, scale=scale: tuple(v / scale for v in fun(x)), x, jac=True,
            method="L-BFGS-B",
            bounds=bounds, options={"maxiter": max(max_iter - n_iter, 1), "gtol": tol,
                                    "ftol": 0.0, "maxcor": 50})
        x, n_iter = result.x, n_iter + result.nit
        restart = _escape(fun, covariance_gradient, x, n_free, q) if n_iter < max_iter else None
        if restart is None:
            break
        x = restart
    return x, n_iter


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


def _cho_solve(chol, b):
    return cho_solve((chol, True), b)
