"""LowRankRegressor at the rounding level of float64: the singular value thresholding step
keeps its digits, fits that converge are not told to raise max_iter, and fits cut short still
are."""

import warnings

import numpy as np
import pytest
import scipy.linalg
from sklearn.exceptions import ConvergenceWarning

from skmtl.datasets import make_multitask_regression
from skmtl.linear._low_rank import LowRankRegressor, _prox_nuclear, low_rank_alpha_max


def _quiet_fit(X, Y, **params):
    """Fit, failing on any ConvergenceWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        return LowRankRegressor(**params).fit(X, Y)


def _objective(X, Y, model):
    """``sum_t 1 / (2 n_t) ||y_t - X w_t - b_t||^2 + alpha ||W||_*`` (every label observed)."""
    residuals = Y - X @ model.coef_.T - model.intercept_
    return (0.5 * np.mean(residuals**2, axis=0).sum()
            + model.alpha * np.linalg.svd(model.coef_, compute_uv=False).sum())


def _modulus(X):
    """Strong convexity modulus in W of the datafit, intercepts profiled out: the smallest
    eigenvalue of the centred X's covariance (every task sees every row)."""
    centred = X - X.mean(axis=0)
    return float(np.linalg.eigvalsh(centred.T @ centred / X.shape[0])[0])


@pytest.mark.parametrize("seed", range(4))
def test_svd_thresholding_errs_by_the_shrinkage_only(seed):
    # W = Q1 diag(sigma) Q2^T with Q1, Q2 columns of a Hadamard matrix / 4 and sigma, the
    # threshold powers of 2: W and its prox are exact in float64. Rebuilt as U diag(s) V^T
    # (U, V orthonormal to rounding only) the prox erred by 7 to 12 ulps of its largest entry
    # (eps sigma_max in every direction); the gradient step less its shrinkage is within 1.5
    rng = np.random.default_rng(seed)
    H = scipy.linalg.hadamard(16) / 4.0
    Q1, Q2 = H[rng.permutation(16)][:, :8], H[:, rng.permutation(16)[:8]]
    sigma = 2.0 ** np.arange(4, -4, -1)
    W = (Q1 * sigma) @ Q2.T  # 16 x 16, rank 8: the SVD path
    threshold = 2.0**-6
    exact = (Q1 * (sigma - threshold)) @ Q2.T
    P, s, factors = _prox_nuclear(W, threshold)
    np.testing.assert_allclose(s[:8], sigma - threshold, rtol=1e-14)
    np.testing.assert_array_less(s[8:], 1e-14)
    # 3 ulps: up to 2.4 on an AMD EPYC's OpenBLAS kernels (1.5 elsewhere), where rebuilding
    # from U diag(s) V^T errs by 9 to 20 there
    assert np.abs(P - exact).max() <= 3.0 * np.spacing(np.abs(exact).max())
    # a zero threshold leaves W as it is
    np.testing.assert_array_equal(_prox_nuclear(W, 0.0)[0], W)


@pytest.mark.parametrize("seed", [1, 2])
def test_small_alpha_certifies_1e_12_without_warning(seed):
    # 10 tasks of 40 rows and 20 features, alpha = 1e-4 alpha_max: rank 10. W rebuilt as
    # U diag(s) V^T after each thresholding held the gap at 1.75e-11 (seed 1) and 3.98e-12
    # (seed 2) through 5,000 iterations (ConvergenceWarning at tol=1e-12, "increase
    # max_iter"); formed as the gradient step less its shrinkage, 1e-12 in 150 and 156
    X, Y = make_multitask_regression(n_samples=40, n_features=20, n_tasks=10, random_state=seed)
    alpha = 1e-4 * low_rank_alpha_max(X, Y)
    tight = _quiet_fit(X, Y, alpha=alpha, tol=1e-12)
    assert tight.criterion_ <= 1e-12
    assert tight.rank_ == 10
    default = _quiet_fit(X, Y, alpha=alpha)
    assert default.criterion_ <= 1e-6
    # the same solution: both within their certified distance of the optimum (the gap bounds
    # P(W) - P_opt by criterion_ P(W); the datafit is strongly convex in W)
    modulus = _modulus(X)
    assert modulus > 0
    bound = sum(np.sqrt(2.0 * m.criterion_ * _objective(X, Y, m) / modulus)
                for m in (tight, default))
    assert np.linalg.norm(tight.coef_ - default.coef_) <= bound
    # the criterion is the relative gap of the documented objective: its primal is that one
    assert _objective(X, Y, tight) <= _objective(X, Y, default) * (1.0 + 1e-12)


def test_fit_cut_short_still_warns():
    X, Y = make_multitask_regression(n_samples=40, n_features=20, n_tasks=10, random_state=1)
    alpha = 1e-4 * low_rank_alpha_max(X, Y)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        model = LowRankRegressor(alpha=alpha, tol=1e-12, max_iter=50).fit(X, Y)
    assert model.criterion_ > 1e-12
    assert model.n_iter_ == 50
