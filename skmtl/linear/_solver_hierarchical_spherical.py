"""The spherical hierarchical model: every task's slopes around a mean with one variance, the
mean's slopes with a prior of their own, all three variances learned by empirical Bayes.

In standardised coordinates (features centred and scaled to unit variance over the labels, the
targets centred), with ``sigma^2`` the noise variance::

    y_t = X_t (beta + u_t) + (b + v_t) 1 + e_t,
    beta ~ N(0, sigma^2 a I),  u_t ~ N(0, sigma^2 c I),  v_t ~ N(0, sigma^2 nu),
    e_t ~ N(0, sigma^2 I),  b flat

so ``y ~ N(b 1, sigma^2 C)`` with ``C = K + a X X^T`` and ``K = blockdiag(K_t)``, ``K_t = I +
c X_t X_t^T + nu 1 1^T``: the Gaussian model whose posterior mode is the mean-clustered ridge
penalty (:class:`~skmtl.linear.MeanClusteredRegressor`), its two penalties and the intercepts'
learned from the likelihood instead of a grid. ``sigma^2`` and ``b`` are profiled (REML
integrates ``b`` out), leaving a deviance in ``theta = log(a, c, nu)``.

Each task is held as its thin singular value decomposition ``X_t = U_t diag(s_t) V_t^T``
(``r_t = min(n_t, d)`` components, from the smaller of the two Gram matrices): ``K_t`` is then
``I + c U_t diag(s_t^2) U_t^T`` plus a rank-one intercept term (Sherman-Morrison), and ``C``'s
shared part ``a X X^T`` goes through the ``d x d`` system ``I / a + X^T K^-1 X`` (Woodbury).
An evaluation costs ``O(d^2 sum_t r_t + d^3)``, and the factors ``d sum_t r_t`` numbers (at
most ``d`` times the labels).
"""

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack, solve_triangular
from scipy.optimize import minimize

from skmtl.linear._linalg import _syrk_lower

__all__ = ["SphericalModel"]

# the variance ratios a, c, nu (to the noise variance, per standardised coefficient) are
# searched in [exp(_LOG_LOW), exp(_LOG_HIGH)]; a ratio at the low end is a variance of 0 to
# any precision the data carry (1e-10 of the noise's on a coefficient of a unit feature)
_LOG_LOW, _LOG_HIGH = np.log(1e-10), np.log(1e8)


class _TaskFactors:
    """The tasks' thin decompositions, stacked by rows: ``P`` (R, d) the rows of every
    ``diag(s_t) V_t^T`` (``R = sum_t r_t``), ``lam`` (R,) the ``s_t^2``, ``owner`` (R,) the
    task of each row (sorted), ``UB`` (R, k) the ``U_t^T B_t`` of ``B_t = [y_t, 1]`` (``k =
    2``; ``[y_t]`` without an intercept), ``BB`` (T, k, k) the ``B_t^T B_t`` and ``M`` (T, d)
    the ``1^T X_t``."""

    def __init__(self, X, mean, scale, rows, tasks, y, n_tasks, fit_intercept):
        d = X.shape[1]
        k = 2 if fit_intercept else 1
        order = np.argsort(tasks, kind="stable")
        rows, tasks, y = rows[order], tasks[order], y[order]
        bounds = np.searchsorted(tasks, np.arange(n_tasks + 1))
        P, lam, owner, UB = [], [], [], []
        self.BB = np.zeros((n_tasks, k, k))
        self.counts = np.bincount(tasks, minlength=n_tasks)
        self.M = np.zeros((n_tasks, d))
        for t in range(n_tasks):
            part = rows[bounds[t]:bounds[t + 1]]
            if not len(part):
                continue
            Xt = X[part]
            Xt = (Xt.toarray() if sp.issparse(Xt) else np.asarray(Xt, dtype=np.float64))
            Xt = (Xt - mean) / scale
            B = y[bounds[t]:bounds[t + 1], None]
            if fit_intercept:
                B = np.column_stack([B, np.ones(len(part))])
            self.BB[t] = B.T @ B
            self.M[t] = Xt.sum(axis=0)
            if len(part) <= d:  # U from X_t X_t^T; diag(s) V^T = U^T X_t
                values, U = np.linalg.eigh(Xt @ Xt.T)
                keep = values > _rank_floor(values)
                U = U[:, keep]
                Pt, UBt = U.T @ Xt, U.T @ B
            else:  # V from X_t^T X_t; U^T B = diag(1 / s) V^T X_t^T B
                values, V = np.linalg.eigh(Xt.T @ Xt)
                keep = values > _rank_floor(values)
                V, s = V[:, keep], np.sqrt(values[keep])
                Pt, UBt = (V * s).T, (V.T @ (Xt.T @ B)) / s[:, None]
            P.append(Pt)
            lam.append(values[keep])
            owner.append(np.full(int(keep.sum()), t))
            UB.append(UBt)
        self.P = np.ascontiguousarray(np.vstack(P)) if P else np.zeros((0, d))
        self.lam = np.concatenate(lam) if lam else np.zeros(0)
        self.owner = np.concatenate(owner) if owner else np.zeros(0, dtype=int)
        self.UB = np.vstack(UB) if UB else np.zeros((0, k))
        self.n_tasks = n_tasks
        # the rows of each task, as the row pointers of a (T, R) CSR matrix
        self._indptr = np.searchsorted(self.owner, np.arange(n_tasks + 1))

    def ranks(self):
        """The rank of each task's rows (T,)."""
        return np.bincount(self.owner, minlength=self.n_tasks)

    def sums(self, values):
        """``values`` (R,) summed over each task's rows: (T,)."""
        return np.bincount(self.owner, weights=values, minlength=self.n_tasks)

    def weighted(self, weights):
        """The (T, R) CSR matrix of ``weights`` on each task's rows."""
        return sp.csr_matrix((weights, np.arange(len(weights)), self._indptr),
                             shape=(self.n_tasks, len(weights)))

    def rows_times(self, weights, P=None):
        """``sum_{j in t} weights_j P_j`` for every task ``t``: (T, d)."""
        return np.asarray(self.weighted(weights) @ (self.P if P is None else P))


def _cholesky_lower(S):
    """The lower Cholesky factor of the symmetric matrix whose lower triangle ``S`` holds, in
    place (LAPACK ``dpotrf`` on ``S.T``, the Fortran matrix whose upper triangle that is)."""
    factor, info = lapack.dpotrf(S.T, lower=0, overwrite_a=1, clean=1)
    if info != 0:
        raise np.linalg.LinAlgError("I / a + X^T K^-1 X is not positive definite")
    return factor.T


def _rank_floor(values):
    top = values.max(initial=0.0)
    return max(top, 1.0) * len(values) * np.finfo(float).eps * 10.0


class _State(NamedTuple):
    """One evaluation at the ratios ``(a, c, nu)``: ``w = 1 / (1 + c lam)``; per task ``h_t =
    1^T K0_t^-1 1`` and ``g_t = nu / (1 + nu h_t)`` (zeros without an intercept), ``gamma = w
    U^T 1`` (``X_t^T K0_t^-1 1 = P_t^T gamma_t``), ``G`` (T, d) those vectors; ``L`` the
    Cholesky factor of ``A = I / a + S``, ``S = X^T K^-1 X``; ``z = A^-1 X^T K^-1 B`` (d, k),
    ``Q = B^T C^-1 B`` (k, k), ``logdet = log |C|``."""

    ratios: tuple
    w: np.ndarray
    h: np.ndarray
    g: np.ndarray
    gamma: np.ndarray
    G: np.ndarray
    L: np.ndarray
    z: np.ndarray
    Q: np.ndarray
    logdet: float


class SphericalModel:
    """The deviance of the model above in ``theta = log(a, c, nu)`` (``nu`` left out without
    an intercept, ``c`` and ``nu`` with one task), its gradient, its minimisation and the
    posterior means.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_rows, d)
        The user's features (standardised here, task by task).
    mean, scale : ndarray of shape (d,)
        ``X_std = (X - mean) / scale``.
    rows, tasks, y : ndarray of shape (n,)
        The labels: row of X, task index, value.
    n_tasks : int
    fit_intercept, reml : bool
    """

    def __init__(self, X, mean, scale, rows, tasks, y, n_tasks, fit_intercept, reml):
        self.fit_intercept = fit_intercept
        self.reml = reml and fit_intercept  # REML integrates out the intercept, if any
        self.y_origin = float(y.mean()) if fit_intercept else 0.0
        self.n = len(y)
        self.d = X.shape[1]
        self.single = n_tasks == 1  # one task: c and nu are not identifiable, held at 0
        self.factors = _TaskFactors(X, mean, scale, rows, tasks, y - self.y_origin, n_tasks,
                                    fit_intercept)
        self._last = None

    def interpolates(self):
        """Whether no task has more labels than random effects (the rank of its rows, and the
        intercept): the deviations can then fit every task exactly."""
        f = self.factors
        return bool(np.all(f.counts <= f.ranks() + self.fit_intercept))

    def n_params(self):
        return 1 if self.single else (3 if self.fit_intercept else 2)

    def ratios(self, theta):
        """``(a, c, nu)`` of ``theta`` (0 for those not fitted)."""
        values = np.exp(np.asarray(theta, dtype=np.float64))
        c = 0.0 if self.single else values[1]
        nu = values[2] if self.fit_intercept and not self.single else 0.0
        return values[0], c, nu

    def dof(self):
        return self.n - 1 if self.reml else self.n

    # -- one evaluation -------------------------------------------------------------------
    def _state(self, theta):
        theta = np.array(theta, dtype=np.float64)
        if self._last is not None and np.array_equal(self._last[0], theta):
            return self._last[1]
        a, c, nu = self.ratios(theta)
        f = self.factors
        w = 1.0 / (1.0 + c * f.lam)  # K0_t^-1 = I - U diag(c lam w) U^T, K0_t = I + c X_t X_t^T
        shrink = c * f.lam * w
        # B_t^T K0_t^-1 B_t, and X_t^T K0_t^-1 B_t = P_t^T diag(w) U_t^T B_t
        BKB = f.BB - np.asarray(f.weighted(shrink) @ (
            f.UB[:, :, None] * f.UB[:, None, :]).reshape(len(w), -1)).reshape(f.BB.shape)
        coef = f.UB * w[:, None]
        logdet = float(np.log1p(c * f.lam).sum())
        S = np.zeros((self.d, self.d))  # its lower triangle: X^T K^-1 X + I / a
        _syrk_lower(S, f.P * np.sqrt(w)[:, None])
        h = g = np.zeros(f.n_tasks)
        gamma, G = np.zeros(len(w)), np.zeros((f.n_tasks, self.d))
        if self.fit_intercept:
            # K_t^-1 = K0_t^-1 - g_t K0_t^-1 1 1^T K0_t^-1 (Sherman-Morrison)
            h = BKB[:, 1, 1]
            g = nu / (1.0 + nu * h)
            logdet += float(np.log1p(nu * h).sum())
            row = BKB[:, 1, :]  # 1^T K0_t^-1 B_t (T, k)
            BKB = BKB - g[:, None, None] * row[:, :, None] * row[:, None, :]
            gamma = coef[:, 1].copy()
            G = f.rows_times(gamma)
            _syrk_lower(S, G * np.sqrt(g)[:, None], alpha=-1.0)
            coef = coef - (g[f.owner] * gamma)[:, None] * row[f.owner]
        F = f.P.T @ coef  # X^T K^-1 B (d, k)
        S[np.diag_indices_from(S)] += 1.0 / a
        L = _cholesky_lower(S)
        logdet += 2.0 * float(np.log(np.diag(L)).sum()) + self.d * np.log(a)
        V = solve_triangular(L, F, lower=True, check_finite=False)
        Q = BKB.sum(axis=0) - V.T @ V
        z = solve_triangular(L.T, V, lower=False, check_finite=False)
        state = _State((a, c, nu), w, h, g, gamma, G, L, z, 0.5 * (Q + Q.T), logdet)
        self._last = (theta, state)
        return state

    def _profile(self, Q):
        """``(b, r^2)``: the intercept and ``r^T C^-1 r`` at it."""
        tiny = np.finfo(float).eps * max(abs(Q[0, 0]), 1.0)
        if not self.fit_intercept:
            return 0.0, max(Q[0, 0], tiny)
        b = Q[0, 1] / Q[1, 1]
        return b, max(Q[0, 0] - b * Q[0, 1], tiny)

    def _solved(self, state, kappa):
        """For ``x_t = B_t kappa``: ``(z, XCx, oCx)``, ``z = A^-1 X^T K^-1 x`` (d,), ``XCx``
        (T, d) the ``X_t^T (C^-1 x)_t`` and ``oCx`` (T,) the ``1^T (C^-1 x)_t``, from
        ``C^-1 x = K^-1 (x - X z)`` (Woodbury)."""
        f = self.factors
        a, c, nu = state.ratios
        z = state.z @ kappa
        Ux = f.UB @ kappa - f.P @ z  # U_t^T (x_t - X_t z), as U_t^T X_t = P_t
        XCx = f.rows_times(state.w * Ux)
        oCx = np.zeros(f.n_tasks)
        if self.fit_intercept:
            ones_x = f.BB[:, 1, :] @ kappa - f.M @ z
            oK0x = ones_x - f.sums(f.UB[:, 1] * c * f.lam * state.w * Ux)
            XCx -= state.G * (state.g * oK0x)[:, None]
            oCx = oK0x / (1.0 + nu * state.h)
        return z, XCx, oCx

    def _quadratics(self, state, kappa):
        """``x^T C^-1 C_i C^-1 x`` for ``C_i = dC / d theta_i``, ``x = B kappa``."""
        a, c, nu = state.ratios
        z, XCx, oCx = self._solved(state, kappa)
        # X^T C^-1 x = z / a, so a |X^T C^-1 x|^2 = |z|^2 / a
        return np.array([z @ z / a, c * np.sum(XCx**2), nu * oCx @ oCx][:self.n_params()])

    def _traces(self, state):
        """``tr(C^-1 C_i)`` for the ``theta_i``."""
        f = self.factors
        a, c, nu = state.ratios
        L_inverse, _ = lapack.dtrtri(state.L, lower=1)
        out = [self.d - np.einsum("ij,ij->", L_inverse, L_inverse) / a]  # tr(I - A^-1 / a)
        del L_inverse
        if self.single:
            return np.array(out)
        # c sum_t tr(X_t^T (C^-1)_tt X_t) = c sum_t [tr(S_t) - tr(A^-1 S_t S_t)], S_t = P_t^T
        # H_t P_t, H_t = diag(w) - g_t gamma_t gamma_t^T, P_t P_t^T = diag(lam), E = L^-1 P^T
        w, g, gamma, lam = state.w, state.g, state.gamma, f.lam
        E = solve_triangular(state.L, f.P.T, lower=True, check_finite=False)  # (d, R)
        norms = np.einsum("ij,ij->j", E, E)
        E_gamma = f.rows_times(gamma, E.T)  # (T, d): L^-1 X_t^T K0_t^-1 1
        E_mixed = f.rows_times(w * lam * gamma, E.T)
        lam_gamma = f.sums(lam * gamma**2)
        trace_S = f.sums(lam * w) - g * lam_gamma
        trace_SAS = (f.sums(w**2 * lam * norms)
                     - 2.0 * g * np.einsum("ij,ij->i", E_mixed, E_gamma)
                     + g**2 * lam_gamma * np.einsum("ij,ij->i", E_gamma, E_gamma))
        out.append(c * float(np.sum(trace_S - trace_SAS)))
        if self.fit_intercept:
            # nu sum_t 1^T (C^-1)_tt 1 = nu sum_t [h / (1 + nu h) - |L^-1 G_t|^2 / (1 + nu h)^2]
            shrunk = 1.0 / (1.0 + nu * state.h)
            out.append(nu * float(np.sum(state.h * shrunk - np.einsum(
                "ij,ij->i", E_gamma, E_gamma) * shrunk**2)))
        return np.array(out)

    # -- the deviance ---------------------------------------------------------------------
    def deviance(self, theta, gradient=False):
        """``dof log r^2 + log |C|`` (``+ log 1^T C^-1 1``, REML): minus twice the
        (restricted) log-likelihood, ``sigma^2`` and ``b`` profiled, up to constants; with
        ``gradient``, also its gradient in ``theta``::

            - dof r'^T C_i r' / r^2 + tr(C^-1 C_i) (- 1'^T C_i 1' / 1^T C^-1 1, REML)

        with ``r' = C^-1 r``, ``1' = C^-1 1`` and ``C_i = dC / d theta_i`` (``a X X^T``, ``c
        blockdiag(X_t X_t^T)``, ``nu blockdiag(1 1^T)``)."""
        state = self._state(theta)
        b, r2 = self._profile(state.Q)
        dof = self.dof()
        value = dof * np.log(r2) + state.logdet
        if self.reml:
            value += np.log(state.Q[1, 1])
        if not gradient:
            return float(value)
        kappa = np.array([1.0, -b]) if self.fit_intercept else np.ones(1)
        grad = -dof * self._quadratics(state, kappa) / r2 + self._traces(state)
        if self.reml:
            grad -= self._quadratics(state, np.array([0.0, 1.0])) / state.Q[1, 1]
        return float(value), grad

    def log_likelihood(self, theta):
        """The maximised (restricted) log-likelihood at ``theta``, constants included."""
        dof = self.dof()
        return -0.5 * (self.deviance(theta) + dof * (1.0 + np.log(2.0 * np.pi / dof)))

    # -- the fit --------------------------------------------------------------------------
    def fit(self, *, max_iter, tol):
        """Minimise the deviance over ``theta`` by L-BFGS-B with its gradient, from every
        ratio at 1: ``(theta, n_iter)``; it stops when the projected gradient is at most
        ``tol`` times the degrees of freedom (the labels). It minimises the deviance less its
        value at the start, so that the fit of ``k y`` is that of ``y`` to rounding."""
        start = np.zeros(self.n_params())
        scale = float(max(self.dof(), 1))  # (not the deviance: it moves with the units of y)
        # the deviance less its value at the start: the units of y add dof log k^2 to it,
        # whose rounding would otherwise steer the line search near the optimum (fits of y
        # and 1e6 y stopped 1e-7 apart)
        origin = self.deviance(start)

        def fun(theta):
            value, grad = self.deviance(theta, gradient=True)
            return (value - origin) / scale, grad / scale

        result = minimize(fun, start, jac=True, method="L-BFGS-B",
                          bounds=[(_LOG_LOW, _LOG_HIGH)] * len(start),
                          options={"maxiter": max_iter, "gtol": tol, "ftol": 0.0})
        return result.x, max(int(result.nit), 1)

    def estimates(self, theta):
        """``(beta, b, sigma2, (a, c, nu), W, v)`` at ``theta`` in the standardised
        coordinates: the mean task's slopes and intercept (of the targets minus
        ``y_origin``), the noise variance, the ratios, the tasks' slopes ``beta + E[u_t |
        y]`` (T, d) and intercept deviations ``E[v_t | y]`` (T,).

        With ``r = y - b 1``: ``E[beta | y] = a X^T C^-1 r = z``, ``E[u_t | y] = c X_t^T (C^-1
        r)_t`` and ``E[v_t | y] = nu 1^T (C^-1 r)_t``."""
        state = self._state(theta)
        a, c, nu = state.ratios
        b, r2 = self._profile(state.Q)
        kappa = np.array([1.0, -b]) if self.fit_intercept else np.ones(1)
        beta, XCx, oCx = self._solved(state, kappa)
        return beta, b, r2 / self.dof(), (a, c, nu), beta + c * XCx, nu * oCx
