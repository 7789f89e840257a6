"""The Laplace approximation of the hierarchical logistic model (a binomial mixed model).

The model, per task ``t`` with observed rows ``x_ti`` and labels ``y_ti`` in {0, 1}::

    P(y_ti = 1) = sigmoid(d_ti^T beta + z_ti^T u_t),   u_t = L v_t,   v_t ~ N(0, I)

with ``d_ti = [x_ti, 1]``, ``z_ti`` its random-effects columns and ``L`` lower triangular (the
covariance of the random effects is ``L L^T``). The likelihood integrates each ``v_t`` out;
the Laplace approximation (lme4's ``glmer`` default) replaces each task's integral by a
Gaussian one around the mode ``v_t*`` of its integrand, giving the objective (minus the
approximate log-likelihood)::

    F(beta, L) = sum_t [ -l_t(beta, L v_t*) + |v_t*|^2 / 2 + log |M_t| / 2 ],
    M_t = I + L^T Z_t^T W_t Z_t L

with ``l_t`` the task's Bernoulli log-likelihood and ``W_t = diag(mu (1 - mu))`` at the mode.
``F`` is minimised over ``beta`` and ``L`` jointly by L-BFGS-B with its exact gradient
(:func:`._solver_hierarchical.minimize_covariance`); every evaluation first finds the modes by
Newton's method (one ``q x q`` system per task, warm-started). The gradient: the first two
terms by the envelope theorem, the log-determinant through ``W`` and the modes' dependence on
``(beta, L)`` (implicit differentiation of the mode's equation ``v = L^T Z^T (y - mu)``)::

    a_i = w'_i h_i / 2,   h_i = z_i^T L M_t^-1 L^T z_i,   w' = mu (1 - mu) (1 - 2 mu)
    b_t = M_t^-1 L^T Z_t^T a_t,   a~ = a - W Z_t L b_t,   r = y - mu
    dF/dbeta = sum_t D_t^T (a~_t - r_t)
    dF/dL    = sum_t [Z_t^T (a~_t - r_t) v_t^T + Z_t^T r_t b_t^T + Z_t^T W_t Z_t L M_t^-1]
"""

import numpy as np
from numba import njit
from scipy.special import expit
from sklearn.utils.extmath import safe_sparse_dot

from skmtl.linear._datafits import _log1pexp
from skmtl.linear._linalg import _FAST, _threadpools
from skmtl.linear._solver_hierarchical import factor_entries, minimize_covariance, range_basis

__all__ = ["BOUND", "LaplaceMixedModel"]

BOUND = 100.0
# the modes' Newton iterations stop when every task's Newton decrement is at most (this times
# eps times its objective)^2: modes exact to about 1e-13 relative. The decrement's own
# rounding floor is about (eps times the objective)^2, which a bound at eps itself straddles
# (with 31 random effects, on 50 to 200 tasks of 20 labels, the modes ran into their 50-step
# limit at every evaluation, where 4 to 8 steps reach 1e-26); Newton's quadratic convergence
# takes a decrement of 1e-13 below either bound in one step.
_MODE_ROUNDING = 1e3
# the per-task sums over the observations (Z_t^T W_t Z_t, z_i^T K_t z_i) by one BLAS product
# per task where the tasks have this many observations on average, by compiled loops below
# (a call per task costs more than the loop on tasks of 20 labels; on yeast's 14 tasks of
# 1,900 labels with 104 random effects, the loops took 76 and 187 ms a call, the products 17
# and 17 ms: a fit 2.8 times faster)
_BLAS_ROWS = 64


class LaplaceMixedModel:
    """The objective above on one data set, its gradient, and the fit.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        The features (the user's rows; a row may be observed by several tasks).
    labels : ndarray of shape (n_obs,)
        0 / 1 labels of the observations, grouped by task (task 0's first).
    rows : ndarray of int of shape (n_obs,)
        The row of X of each observation.
    counts : ndarray of int of shape (n_tasks,)
        Number of observations of each task.
    random : ndarray of int
        Columns of ``D = [X, 1]`` with a random effect.
    J : ndarray of shape (p, p)
        The fit is made in the coordinates ``D J`` (standardised), for the optimiser's sake.
    fit_intercept : bool
        Whether ``D`` has the column of ones (else ``D = X``).
    prior_scale : float or None
        ``s``: adds ``(|beta_std|^2 + |L_std|_F^2) / (2 s^2)`` to ``F``, a Gaussian prior of
        standard deviation ``s`` on the standardised slopes (not the intercept) and on the
        entries of the standardised ``L`` (``|L|_F^2 = tr(L L^T)``, a function of the
        covariance only). None: the plain Laplace likelihood.
    diagonal : bool, default=False
        Independent random effects (in the standardised coordinates): ``L`` diagonal, the
        parameters ``[beta, diag(L)]``.
    """

    def __init__(self, X, labels, rows, counts, random, J, fit_intercept, prior_scale=None,
                 diagonal=False):
        self.X, self.y, self.rows = X, labels.astype(np.float64), rows
        self.prior = 0.0 if prior_scale is None else 1.0 / prior_scale**2
        self.fit_intercept = fit_intercept
        self.d = X.shape[1]
        self.p = self.d + fit_intercept
        self.random = np.asarray(random)
        self.q = len(self.random)
        self.J = J
        self.J_random = J[np.ix_(self.random, self.random)]
        self.starts = np.concatenate([[0], np.cumsum(counts)])
        self.task = np.repeat(np.arange(len(counts)), counts)
        columns = self.random[self.random < self.d]
        Z = X[rows][:, columns]
        Z = Z.toarray() if hasattr(Z, "toarray") else np.asarray(Z, dtype=np.float64)
        if fit_intercept:
            Z = np.column_stack([Z, np.ones(len(rows))])
        self.Z = Z  # (n_obs, q): the random columns of each observation
        self._blas = len(rows) >= _BLAS_ROWS * len(counts)
        self.diagonal = diagonal
        self._range = None if diagonal else self._random_range()
        if self._range is not None:  # the random effects of Z W, W = J_random V (q x r)
            self.Z = self.Z @ self._range
            self.q = self._range.shape[1]
            self.J_random = np.eye(self.q)
        self.V = np.zeros((len(counts), self.q))  # the modes, warm-started between calls
        self._tril = factor_entries(self.q, diagonal)

    def _random_range(self):
        """``J_random V`` (q x r), ``V`` an orthonormal basis of the range of the
        standardised random columns ``Z J_random`` (the regressor's ``_RandomRange``
        tolerance), where they are collinear (chem97's ``gcsecnt``, ``gcsescore`` minus a
        constant, beside the intercept); None where they are independent. The covariance of
        the effects of ``Z J_random`` is then ``V Sigma' V^T``: the prior's ``tr(Sigma)``
        is ``tr(Sigma')``, so the optimum is the collinear model's, whose prior puts no
        variance on the combination that is zero on every row, in fewer iterations (binary
        chem97: 338 L-BFGS-B iterations and 31 s, against 85 and 4.6 s without
        ``gcsecnt``)."""
        standardized = self.Z @ self.J_random
        V = range_basis(standardized.T @ standardized, len(self.J))
        return None if V.shape[1] == self.q else self.J_random @ V

    def _coordinates(self, x):
        """``(beta, L)`` in the coordinates of ``D`` from the parameters in ``D J``'s."""
        L = np.zeros((self.q, self.q))
        L[self._tril] = x[self.p:]
        return self.J @ x[:self.p], self.J_random @ L

    def _fixed(self, beta):
        """``D beta`` of each observation."""
        eta = np.asarray(safe_sparse_dot(self.X, beta[:self.d], dense_output=True)).ravel()
        if self.fit_intercept:
            eta = eta + beta[self.d]
        return eta[self.rows]

    def _task_sums(self, values):
        """Per-task sums of per-observation rows (values grouped by task)."""
        return np.add.reduceat(values, self.starts[:-1], axis=0) if len(values) else values

    def _hessians(self, w):
        """``Z_t^T W_t Z_t`` of every task, (T, q, q)."""
        return (_task_grams_blas if self._blas else _task_grams)(self.Z, w, self.starts)

    def _modes(self, fixed, L, *, max_iter=50):
        """Newton's method for every task's mode ``v_t`` (halving a task's step while its
        objective rises), to rounding level (the gradient assumes exact modes; Newton's
        quadratic convergence makes the last steps cheap; :data:`_MODE_ROUNDING`): returns
        ``(V, eta, mu, H, M, ZL)``, ``ZL`` the rows of ``Z L``; the steps taken are left in
        ``mode_steps``."""
        V = self.V
        ZL = self.Z @ L

        def state(V):
            eta = fixed + np.einsum("ij,ij->i", ZL, V[self.task])
            loss = _log1pexp(eta) - self.y * eta
            return eta, self._task_sums(loss) + 0.5 * np.einsum("ti,ti->t", V, V)

        def curvature(eta):
            mu = expit(eta)
            H = self._hessians(mu * (1.0 - mu))
            return mu, H, np.eye(self.q) + L.T @ H @ L

        eta, value = state(V)
        mu, H, M = curvature(eta)
        steps = 0
        for _ in range(max_iter):
            grad = V - self._task_sums(ZL * (self.y - mu)[:, None])
            step = np.linalg.solve(M, grad[..., None])[..., 0]
            decrement = np.einsum("ti,ti->t", grad, step)
            rounding = _MODE_ROUNDING * np.finfo(float).eps * max(1.0, np.abs(value).max())
            if decrement.max() <= rounding**2:
                break
            scale = np.ones(len(V))
            for _ in range(40):
                trial = V - scale[:, None] * step
                trial_eta, trial_value = state(trial)
                worse = trial_value > value + 1e-12 * np.abs(value)
                if not worse.any():
                    break
                scale[worse] *= 0.5
            V, eta, value = trial, trial_eta, trial_value
            mu, H, M = curvature(eta)
            steps += 1
        self.V, self.mode_steps = V, steps
        return V, eta, mu, H, M, ZL

    def _evaluate(self, x):
        """``(F, dF/dbeta, dF/dL)`` in the standardised coordinates (the whole ``q x q``
        gradient in ``L``, not only its lower triangle)."""
        beta, L = self._coordinates(x)
        V, eta, mu, H, M, ZL = self._modes(self._fixed(beta), L)
        value = float(np.sum(_log1pexp(eta) - self.y * eta) + 0.5 * np.sum(V * V)
                      + 0.5 * np.linalg.slogdet(M)[1].sum())
        w = mu * (1.0 - mu)
        r = self.y - mu
        LMinv = L @ np.linalg.inv(M)  # (T, q, q): L M_t^-1
        K = LMinv @ L.T  # L M_t^-1 L^T
        # z_i^T K_t z_i, no (n_obs, q, q) array
        h = (_task_quadratics_blas if self._blas else _task_quadratics)(self.Z, K, self.starts)
        a = 0.5 * w * (1.0 - 2.0 * mu) * h
        b = np.einsum("tji,tj->ti", LMinv, self._task_sums(self.Z * a[:, None]))  # M^-1 L^T Z^T a
        a_tilde = a - w * np.einsum("ij,ij->i", ZL, b[self.task])
        e = a_tilde - r
        per_row = np.bincount(self.rows, weights=e, minlength=self.X.shape[0])
        grad_beta = np.asarray(safe_sparse_dot(self.X.T, per_row, dense_output=True)).ravel()
        if self.fit_intercept:
            grad_beta = np.append(grad_beta, e.sum())
        grad_L = (np.einsum("ti,tj->ij", self._task_sums(self.Z * e[:, None]), V)
                  + np.einsum("ti,tj->ij", self._task_sums(self.Z * r[:, None]), b)
                  + np.einsum("tij,tjk->ik", H, LMinv))
        grad_beta, grad_L = self.J.T @ grad_beta, self.J_random.T @ grad_L
        if self.prior:
            slopes = x[:self.d]
            L_std = np.zeros((self.q, self.q))
            L_std[self._tril] = x[self.p:]
            value += 0.5 * self.prior * (slopes @ slopes + np.sum(L_std**2))
            grad_beta[:self.d] += self.prior * slopes
            grad_L += self.prior * L_std
        return value, grad_beta, grad_L

    def objective(self, x):
        """``F`` and its gradient in the (standardised) parameters ``x = [beta, tril(L)]``
        (``[beta, diag(L)]`` if ``diagonal``)."""
        value, grad_beta, grad_L = self._evaluate(x)
        return value, np.concatenate([grad_beta, grad_L[self._tril]])

    def covariance_gradient(self, x, eps=1e-6):
        """``(F, dF/dPsi)`` with ``Psi = L L^T`` (standardised coordinates): ``F`` depends on
        ``L`` through ``Psi`` only, so ``dF/dL = 2 (dF/dPsi) L``; taken at ``L + eps I``
        (invertible) where ``L`` is singular."""
        L = np.zeros((self.q, self.q))
        L[self._tril] = x[self.p:]
        L += eps * max(1.0, np.abs(L).max()) * np.eye(self.q)
        shifted = np.concatenate([x[:self.p], L[self._tril]])
        value, _, grad_L = self._evaluate(shifted)
        grad = 0.5 * np.linalg.solve(L.T, grad_L.T).T  # grad_L L^-1 / 2
        return self._evaluate(x)[0], 0.5 * (grad + grad.T)

    def fit(self, *, max_iter, tol):
        """Minimise ``F`` from ``beta = 0``, ``L = I``: ``(x, n_iter)``.

        Every parameter is bounded by :data:`BOUND` in the standardised coordinates (a change
        of the log-odds of 100 per standard deviation of a feature): separable labels have no
        finite maximum, and the fit then stops on the bound (:meth:`at_bound` says so).
        """
        x0 = np.concatenate([np.zeros(self.p), np.eye(self.q)[self._tril]])
        # one BLAS thread: the evaluations are per-task q x q products, where threads only
        # wait, and L-BFGS-B's steps go through scipy's OpenBLAS, a second pool beside
        # numpy's (200 tasks of 20 labels, 31 random effects, 100 iterations: 4.2 s with one
        # thread, 6.1 s with two, on two cores)
        with _threadpools().limit(limits=1, user_api="blas"):
            return minimize_covariance(self.objective, self.covariance_gradient, x0, self.p,
                                       self.q, max_iter=max_iter, tol=tol, bound=BOUND,
                                       free_bound=BOUND, diagonal=self.diagonal)

    @staticmethod
    def at_bound(x):
        """Whether a parameter is on its bound (the labels are, or nearly are, separable)."""
        return bool(np.any(np.abs(x) >= BOUND * (1 - 1e-6)))

    def estimates(self, x):
        """``(beta, Sigma, U, F)`` at ``x``, in the coordinates of ``D``: the fixed effects,
        the random effects' covariance ``L L^T`` and their modes ``U`` (T, q; of the
        ``random`` columns, also where they are collinear)."""
        beta, L = self._coordinates(x)
        value = self.objective(x)[0]  # (also sets the modes at x)
        if self._range is not None:  # from the effects of Z W to those of Z
            L = self._range @ L
        return beta, L @ L.T, self.V @ L.T, value


@njit(cache=True, fastmath=_FAST)
def _task_grams(Z, w, starts):
    """``sum_i w_i z_i z_i^T`` over each task's observations (rows ``starts[t]`` to
    ``starts[t + 1]`` of ``Z``): (T, q, q). Not ``GroupedDense.gram``: on tasks of unequal
    sizes that design keeps a padded copy of ``Z`` (peak memory of the benchmark's fit 5.2x
    the input instead of 4.0x, for the same time)."""
    n_tasks, q = len(starts) - 1, Z.shape[1]
    out = np.zeros((n_tasks, q, q))
    for t in range(n_tasks):
        G = out[t]
        for i in range(starts[t], starts[t + 1]):
            for a in range(q):
                scaled = w[i] * Z[i, a]
                for b in range(a + 1):
                    G[a, b] += scaled * Z[i, b]
        for a in range(q):
            for b in range(a):
                G[b, a] = G[a, b]
    return out


@njit(cache=True, fastmath=_FAST)
def _task_quadratics(Z, K, starts):
    """``z_i^T K_t z_i`` for every observation ``i`` of every task ``t``: (n_obs,), where
    indexing ``K`` by the observations' tasks would build an (n_obs, q, q) array."""
    q = Z.shape[1]
    out = np.empty(Z.shape[0])
    for t in range(len(starts) - 1):
        for i in range(starts[t], starts[t + 1]):
            total = 0.0
            for a in range(q):
                inner = 0.0
                for b in range(q):
                    inner += K[t, a, b] * Z[i, b]
                total += Z[i, a] * inner
            out[i] = total
    return out


def _task_grams_blas(Z, w, starts):
    """:func:`_task_grams` by one product per task (tasks of many observations)."""
    out = np.empty((len(starts) - 1, Z.shape[1], Z.shape[1]))
    for t in range(len(starts) - 1):
        rows = Z[starts[t]:starts[t + 1]]
        out[t] = rows.T @ (rows * w[starts[t]:starts[t + 1], None])
    return out


def _task_quadratics_blas(Z, K, starts):
    """:func:`_task_quadratics` by one product per task (tasks of many observations)."""
    out = np.empty(Z.shape[0])
    for t in range(len(starts) - 1):
        rows = Z[starts[t]:starts[t + 1]]
        out[starts[t]:starts[t + 1]] = np.einsum("ij,ij->i", rows @ K[t], rows)
    return out
