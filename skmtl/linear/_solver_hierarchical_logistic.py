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
(:func:`._solver_hierarchical.minimize_covariance`), then, where variances head for 0, over
``beta`` and a factor ``B`` (q x r) of the covariance ``B B^T`` (:meth:`LaplaceMixedModel.fit`;
everything below holds for any q x r ``L``, the modes then having ``r`` entries). Every
evaluation first finds the modes by Newton's method (one ``r x r`` system per task,
warm-started). The gradient: the first two terms by the envelope theorem, the log-determinant
through ``W`` and the modes' dependence on ``(beta, L)`` (implicit differentiation of the
mode's equation ``v = L^T Z^T (y - mu)``)::

    a_i = w'_i h_i / 2,   h_i = z_i^T L M_t^-1 L^T z_i,   w' = mu (1 - mu) (1 - 2 mu)
    b_t = M_t^-1 L^T Z_t^T a_t,   a~ = a - W Z_t L b_t,   r = y - mu
    dF/dbeta = sum_t D_t^T (a~_t - r_t)
    dF/dL    = sum_t [Z_t^T (a~_t - r_t) v_t^T + Z_t^T r_t b_t^T + Z_t^T W_t Z_t L M_t^-1]

Every product goes through the rows of ``Z L`` (``n_obs x r``): ``M_t`` from them (``n_t r^2``
per task, where ``L^T (Z_t^T W_t Z_t) L`` cost ``n_t q^2 + q^3``), factored once per Newton
step (Cholesky); with ``G_i = M_t^-1 L^T z_i`` by two triangular solves per label, ``h_i = (L^T
z_i)^T G_i``, ``b_t = sum_i a_i G_i`` and the last term ``sum_i w_i z_i G_i^T``, summed label by
label (no ``(n_obs, r)`` or ``(T, q, q)`` array). Tasks of many labels (:data:`_BLAS_ROWS`)
form ``Z_t^T W_t Z_t`` and ``M_t^-1`` instead, by one product per task.
"""

import numpy as np
import scipy.linalg
from numba import njit, uint64
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.utils.extmath import safe_sparse_dot

from skmtl.linear._datafits import _log1pexp
from skmtl.linear._linalg import _FAST, _threadpools
from skmtl.linear._solver_hierarchical import (
    _NEAR_SINGULAR,
    _RESUMED,
    _back_solve,
    _escape,
    _factor_solve,
    _lower_factor,
    _trapezoidal,
    factor_entries,
    minimize_covariance,
    psd_factor,
    range_basis,
)

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
# L-BFGS-B's iterations on the Cholesky factor before the covariance's spectrum is looked at
# (variances on their way to 0: the fit goes on on a factor of lower rank), and the length of
# the runs on that factor
_FACTOR_AFTER = 50


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
        return self.J @ x[:self.p], self.J_random @ self._factor(x)

    def _fixed(self, beta):
        """``D beta`` of each observation."""
        eta = np.asarray(safe_sparse_dot(self.X, beta[:self.d], dense_output=True)).ravel()
        if self.fit_intercept:
            eta = eta + beta[self.d]
        return eta[self.rows]

    def _task_sums(self, values):
        """Per-task sums of per-observation rows (values grouped by task)."""
        return np.add.reduceat(values, self.starts[:-1], axis=0) if len(values) else values

    def _modes(self, fixed, L, *, max_iter=50):
        """Newton's method for every task's mode ``v_t`` (halving a task's step while its
        objective rises; a task whose Newton decrement is at rounding level stays), to
        rounding level (the gradient assumes exact modes; Newton's quadratic convergence
        makes the last steps cheap; :data:`_MODE_ROUNDING`): returns ``(V, eta, mu, U,
        logdet, ZL)``, ``U`` (T, r, r) holding in its upper triangles the Cholesky factors
        ``Q_t^T`` of ``M_t = I + L^T Z_t^T W_t Z_t L`` at the modes (:func:`_factor_solve`),
        ``logdet = sum_t log |M_t|`` and ``ZL`` the rows of ``Z L`` (``L`` is q x r: every
        product is with them, no q x q matrix per task); the steps taken are left in
        ``mode_steps``."""
        V = self.V
        if V.shape[1] != L.shape[1]:  # a factor of another rank: a cold start
            V = np.zeros((len(V), L.shape[1]))
        ZL = self.Z @ L
        diagonal = np.arange(L.shape[1])
        H = None

        def state(V):
            eta = fixed + np.einsum("ij,ij->i", ZL, V[self.task])
            loss = _log1pexp(eta) - self.y * eta
            return eta, self._task_sums(loss) + 0.5 * np.einsum("ti,ti->t", V, V)

        eta, value = state(V)
        steps = 0
        while True:
            mu = expit(eta)
            if self._blas:  # Z_t^T W_t Z_t (the gradient's too), then L^T (.) L: T q^3 more
                H = _task_grams_blas(self.Z, mu * (1.0 - mu), self.starts)
                U = L.T @ H @ L
            else:  # L^T Z_t^T W_t Z_t L from the rows of Z L
                U = _task_grams(ZL, mu * (1.0 - mu), self.starts)
            U[:, diagonal, diagonal] += 1.0
            # M_t = Q_t Q_t^T, solved = Q_t^-1 g_t: the decrement g^T M^-1 g is its square
            solved = (V - _weighted_task_sums(ZL, self.y - mu, self.starts))[:, :, None]
            logdet = _factor_solve(U, solved)
            decrement = np.einsum("tik,tik->t", solved, solved)
            rounding = _MODE_ROUNDING * np.finfo(float).eps * max(1.0, np.abs(value).max())
            moving = decrement > rounding**2
            if not moving.any() or steps == max_iter:
                break
            step = _back_solve(U, solved[:, :, 0]) * moving[:, None]
            scale = np.ones(len(V))
            for _ in range(40):
                trial = V - scale[:, None] * step
                trial_eta, trial_value = state(trial)
                worse = trial_value > value + 1e-12 * np.abs(value)
                if not worse.any():
                    break
                scale[worse] *= 0.5
            V, eta, value = trial, trial_eta, trial_value
            steps += 1
        self.V, self.mode_steps = V, steps
        return V, eta, mu, U, logdet, ZL, H

    def _evaluate(self, x):
        """``(F, dF/dbeta, dF/dL)`` in the standardised coordinates (the whole ``q x q``
        gradient in ``L``, not only its lower triangle)."""
        return self._evaluate_factor(x[:self.p], self._factor(x))

    def _evaluate_factor(self, beta_std, L_std):
        """``(F, dF/dbeta, dF/dL)`` at the standardised ``beta`` and any factor ``L`` (q x r,
        the covariance ``L L^T``; the modes ``v_t`` then have ``r`` entries)."""
        beta, L = self.J @ beta_std, self.J_random @ L_std
        V, eta, mu, U, logdet, ZL, H = self._modes(self._fixed(beta), L)
        value = float(np.sum(_log1pexp(eta) - self.y * eta) + 0.5 * np.sum(V * V)
                      + 0.5 * logdet)
        w = mu * (1.0 - mu)
        r = self.y - mu
        # with G_i = M_t^-1 L^T z_i: h_i = z_i^T L M_t^-1 L^T z_i = (L^T z_i)^T G_i, a_i =
        # slope_i h_i, b_t = sum_i a_i G_i = M_t^-1 L^T Z_t^T a_t and sum_t Z_t^T W_t Z_t L
        # M_t^-1 = sum_i w_i z_i G_i^T, row by row (no (n_obs, r) or (T, q, q) array); tasks
        # of many labels: through M_t^-1 and the modes' Z_t^T W_t Z_t, T q^3 where the rows
        # cost n_obs q^2
        slope = 0.5 * w * (1.0 - 2.0 * mu)
        if self._blas:
            inverses = _inverses(U)
            h, b = _task_products(ZL, inverses, slope, self.starts)
            weighted = np.einsum("tij,tjk->ik", H, L @ inverses)
        else:
            h, b, weighted = _task_solves(U, ZL, self.Z, w, slope, self.starts)
        a = slope * h
        a_tilde = a - w * np.einsum("ij,ij->i", ZL, b[self.task])
        e = a_tilde - r
        per_row = np.bincount(self.rows, weights=e, minlength=self.X.shape[0])
        grad_beta = np.asarray(safe_sparse_dot(self.X.T, per_row, dense_output=True)).ravel()
        if self.fit_intercept:
            grad_beta = np.append(grad_beta, e.sum())
        grad_L = (np.einsum("ti,tj->ij", _weighted_task_sums(self.Z, e, self.starts), V)
                  + np.einsum("ti,tj->ij", _weighted_task_sums(self.Z, r, self.starts), b)
                  + weighted)
        grad_beta, grad_L = self.J.T @ grad_beta, self.J_random.T @ grad_L
        if self.prior:
            slopes = beta_std[:self.d]
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
        L = self._factor(x)
        L += eps * max(1.0, np.abs(L).max()) * np.eye(self.q)
        shifted = np.concatenate([x[:self.p], L[self._tril]])
        value, _, grad_L = self._evaluate(shifted)
        grad = 0.5 * np.linalg.solve(L.T, grad_L.T).T  # grad_L L^-1 / 2
        return self._evaluate(x)[0], 0.5 * (grad + grad.T)

    def fit(self, *, max_iter, tol):
        """Minimise ``F`` from ``beta = 0``, ``L = I``: ``(x, n_iter)``.

        L-BFGS-B on ``[beta, tril(L)]`` (:func:`minimize_covariance`) for up to
        :data:`_FACTOR_AFTER` iterations. Where it has not converged by then and ``L L^T`` has
        eigenvalues below ``_NEAR_SINGULAR`` (1e-3) times its largest (variances on their way
        to 0, which L-BFGS-B approaches only linearly, at the rate of the curvature the prior
        gives them), the fit goes on on a factor of the rank kept (:meth:`_factor_fit`), then
        by L-BFGS-B again if that did not converge. Every parameter is bounded by
        :data:`BOUND` in the standardised coordinates (a change of the log-odds of 100 per
        standard deviation of a feature): separable labels have no finite maximum, and the
        fit then stops on the bound (:meth:`at_bound` says so).
        """
        x0 = np.concatenate([np.zeros(self.p), np.eye(self.q)[self._tril]])
        # one BLAS thread: the evaluations are per-task r x r products, where threads only
        # wait, and L-BFGS-B's steps go through scipy's OpenBLAS, a second pool beside
        # numpy's (200 tasks of 20 labels, 31 random effects, 100 iterations: 4.2 s with one
        # thread, 6.1 s with two, on two cores)
        with _threadpools().limit(limits=1, user_api="blas"):
            scale = max(1.0, abs(self.objective(x0)[0]))  # L-BFGS-B's, for every phase
            if self.diagonal:
                return self._lbfgs(x0, max_iter=max_iter, tol=tol, scale=scale)
            x, n_iter = self._lbfgs(x0, max_iter=min(max_iter, _FACTOR_AFTER), tol=tol,
                                    scale=scale)
            if n_iter < _FACTOR_AFTER or n_iter >= max_iter:  # converged, or out of budget
                return x, n_iter
            x, more, converged = self._factor_fit(x, max_iter=max_iter - n_iter, tol=tol,
                                                  scale=scale)
            n_iter += more
            if converged or n_iter >= max_iter:
                return x, n_iter
            x, more = self._lbfgs(x, max_iter=max_iter - n_iter, tol=tol, scale=scale)
            return x, n_iter + more

    def _lbfgs(self, x, *, max_iter, tol, scale):
        return minimize_covariance(self.objective, self.covariance_gradient, x, self.p, self.q,
                                   max_iter=max_iter, tol=tol, bound=BOUND, free_bound=BOUND,
                                   diagonal=self.diagonal, scale=scale)

    def _factor_fit(self, x, *, max_iter, tol, scale):
        """L-BFGS-B on ``beta`` and a factor ``B`` (q x r) of the covariance, ``Psi = B
        B^T``, from ``x``: ``(x, n_iter, converged)``, ``x`` in the coordinates of
        :meth:`objective` (``L`` the lower-triangular factor of ``B B^T``, zero columns past
        ``r``).

        ``r`` counts ``Psi``'s eigenvalues at least ``_NEAR_SINGULAR`` times its largest
        (those below are set to 0, their directions dropped). ``B`` is lower trapezoidal
        after a row permutation (:func:`_trapezoidal`), its entries on and below that
        diagonal the coordinates: any ``B`` gives a covariance, so only ``BOUND`` bounds
        them, and the zero variances are no longer coordinates that L-BFGS-B must take to
        their bound. Runs of :data:`_FACTOR_AFTER` iterations; after an unconverged run, the
        directions whose variance fell below ``_NEAR_SINGULAR`` times the largest are
        dropped. Converged (L-BFGS-B's projected gradient at most ``tol`` times ``scale``),
        the gradient in ``Psi`` is checked as in :func:`minimize_covariance`: where a variance
        left at 0 should grow, the fit resumes one rank up from :func:`_escape`'s point (its
        eigenvalues above ``_RESUMED`` times the largest kept). Not converged: an L-BFGS-B run
        stopped short of its iterations (a line search that failed), or ``max_iter``.
        """
        p = self.p
        L = self._factor(x)
        B = psd_factor(L @ L.T, _NEAR_SINGULAR)
        if B is None or B.shape[1] == self.q:  # no variance on its way to 0
            return x, 0, False
        n_iter = 0
        while n_iter < max_iter:
            B, free = _trapezoidal(B)
            self._remap_modes(L, B)

            def unpack(entries, free=free, shape=B.shape):  # B from its free entries
                factor = np.zeros(shape[0] * shape[1])
                factor[free] = entries
                return factor.reshape(shape)

            def fun(z, free=free, unpack=unpack):
                value, grad_beta, grad_B = self._evaluate_factor(z[:p], unpack(z[p:]))
                return value / scale, np.concatenate([grad_beta, grad_B.ravel()[free]]) / scale

            runs = min(max_iter - n_iter, _FACTOR_AFTER)
            result = minimize(fun, np.concatenate([x[:p], B.ravel()[free]]), jac=True,
                              method="L-BFGS-B", bounds=[(-BOUND, BOUND)] * (p + len(free)),
                              options={"maxiter": runs, "gtol": tol, "ftol": 0.0,
                                       "maxcor": 50})
            n_iter += result.nit
            B = unpack(result.x[p:])
            L = _lower_factor(B)
            x = np.concatenate([result.x[:p], L[self._tril]])
            self._remap_modes(B, L)
            if result.success:
                escape = _escape(lambda x: self.objective(x)[0], self.covariance_gradient, x,
                                 p, self.q)
                if escape is None:
                    return x, n_iter, True
                x = escape[0]
                L = self._factor(x)
                B = psd_factor(L @ L.T, _RESUMED)
            elif result.nit < runs:  # stopped by its line search
                return x, n_iter, False
            else:  # drop the directions whose variance is on its way to 0
                B = psd_factor(B @ B.T, _NEAR_SINGULAR)
                if B is None:  # every variance at 0: L-BFGS-B goes on
                    return x, n_iter, False
        return x, n_iter, False

    def _factor(self, x):
        """``L`` (q x q) of the parameters ``x``, standardised."""
        L = np.zeros((self.q, self.q))
        L[self._tril] = x[self.p:]
        return L

    def _remap_modes(self, old, new):
        """The warm start of the modes from factor ``old`` to factor ``new`` of the
        (standardised) covariance: ``v_t`` with ``new v_t`` closest to ``old v_t_old`` (a
        cold start where the modes are not of ``old``)."""
        if self.V.shape[1] != old.shape[1]:
            self.V = np.zeros((len(self.V), new.shape[1]))
            return
        effects = self.V @ old.T  # (T, q): the random effects u_t = old v_t
        self.V = np.linalg.lstsq(new, effects.T, rcond=None)[0].T

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
def _weighted_task_sums(R, weights, starts):
    """``sum_i weights_i R_i`` over each task's rows of ``R`` (T, k), without the (n_obs, k)
    product."""
    k = uint64(R.shape[1])
    out = np.zeros((len(starts) - 1, R.shape[1]))
    for t in range(len(starts) - 1):
        total = out[t]
        for i in range(starts[t], starts[t + 1]):
            weight = weights[i]
            for j in range(k):  # (an array expression would allocate per row)
                total[j] += weight * R[i, j]
    return out


@njit(cache=True, fastmath=_FAST)
def _task_solves(U, ZL, Z, w, slope, starts):
    """With ``G_i = M_t^-1 zl_i`` for every observation ``i`` of every task ``t`` (rows of
    ``ZL`` grouped by task; ``Q_t^T``, ``M_t = Q_t Q_t^T``, in the upper triangle of ``U_t``
    from :func:`_factor_solve`; a forward and a back substitution by the rows of ``U_t``):
    ``h_i = zl_i^T G_i`` (n_obs,), ``b_t = sum_i slope_i h_i G_i`` (T, r) and ``sum_i w_i z_i
    G_i^T`` (q, r), without the (n_obs, r) ``G``."""
    r, q = uint64(ZL.shape[1]), uint64(Z.shape[1])
    h = np.empty(ZL.shape[0])
    b = np.zeros((len(starts) - 1, ZL.shape[1]))
    weighted = np.zeros((Z.shape[1], ZL.shape[1]))
    g = np.empty(ZL.shape[1])
    for t in range(len(starts) - 1):
        Q = U[t]
        for i in range(starts[t], starts[t + 1]):
            for k in range(r):
                g[k] = ZL[i, k]
            for j in range(r):  # Q y = zl, Q = U_t^T
                value = g[j] / Q[j, j]
                g[j] = value
                for k in range(j + uint64(1), r):
                    g[k] -= Q[j, k] * value
            for step in range(r):  # U_t g = y
                k = r - uint64(1) - step
                total = g[k]
                for j in range(k + uint64(1), r):
                    total -= Q[k, j] * g[j]
                g[k] = total / Q[k, k]
            quadratic = 0.0
            for k in range(r):
                quadratic += ZL[i, k] * g[k]
            h[i] = quadratic
            scale = slope[i] * quadratic
            for k in range(r):  # (array expressions would allocate per row)
                b[t, k] += scale * g[k]
            for a in range(q):
                scale = w[i] * Z[i, a]
                for k in range(r):
                    weighted[a, k] += scale * g[k]
    return h, b, weighted


def _task_grams_blas(Z, w, starts):
    """:func:`_task_grams` by one product per task (tasks of many observations)."""
    out = np.empty((len(starts) - 1, Z.shape[1], Z.shape[1]))
    for t in range(len(starts) - 1):
        rows = Z[starts[t]:starts[t + 1]]
        out[t] = rows.T @ (rows * w[starts[t]:starts[t + 1], None])
    return out


def _inverses(U):
    """``M_t^-1 = U_t^-1 U_t^-T`` of every task from the factors :func:`_factor_solve` leaves
    in the upper triangles of ``U`` (``M_t = U_t^T U_t``)."""
    identity = np.eye(U.shape[1])
    out = np.empty_like(U)
    for t in range(len(U)):
        inverse = scipy.linalg.solve_triangular(U[t], identity, lower=False)
        out[t] = inverse @ inverse.T
    return out


def _task_products(ZL, inverses, slope, starts):
    """``h`` and ``b`` of :func:`_task_solves` by one product per task with its ``M_t^-1``
    (tasks of many observations)."""
    h = np.empty(len(ZL))
    b = np.empty((len(starts) - 1, ZL.shape[1]))
    for t in range(len(starts) - 1):
        rows = slice(starts[t], starts[t + 1])
        G = ZL[rows] @ inverses[t]
        h[rows] = np.einsum("ij,ij->i", ZL[rows], G)
        b[t] = (slope[rows] * h[rows]) @ G
    return h, b
