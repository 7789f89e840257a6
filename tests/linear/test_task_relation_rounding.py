"""TaskRelationRegressor / TaskRelationClassifier at the rounding level of float64: fits that
converge are not told to raise max_iter, and fits cut short still are."""

import warnings

import numpy as np
import pytest
import scipy.special
from _relation import relation_objective
from sklearn.exceptions import ConvergenceWarning

from skmtl.datasets import make_multitask_classification, make_multitask_regression
from skmtl.linear import _solver_task_relation as solver
from skmtl.linear._solver_task_relation import relation_weights
from skmtl.linear._task_relation import TaskRelationClassifier, TaskRelationRegressor


def _quiet_fit(Est, X, Y, **params):
    """Fit, failing on any ConvergenceWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        return Est(**params).fit(X, Y)


def _default_and_tight(Est, X, Y, **params):
    """The default fit, certified to 1e-12 without a warning, and one to 1e-14."""
    model = _quiet_fit(Est, X, Y, **params)
    assert model.criterion_ <= 1e-12
    tight = _quiet_fit(Est, X, Y, tol=1e-14, max_iter=5000, **params)
    assert tight.criterion_ <= 1e-14
    return model, tight


def _distance_bound(models, X, Y, mask, logistic, modulus):
    """``||W_a - W_b||_F`` bound for two fits of the same problem: the gap certifies
    ``P(W) - P_opt <= criterion_ P(W)``, and an objective ``modulus``-strongly convex in W
    gives ``||W - W_opt||_F^2 <= 2 (P(W) - P_opt) / modulus``."""
    return sum(np.sqrt(2.0 * m.criterion_ * relation_objective(m, X, Y, mask, logistic) / modulus)
               for m in models)


def test_logistic_terms_keep_their_digits_at_large_margins():
    # log(1 + exp(z)) - y z and y - expit(z) cancel for a well-classified y = 1 row (every digit
    # once expit(z) rounds to 1, z > 37): the solver takes both at the margin s z, s = 2 y - 1
    z = np.array([-60.0, -38.0, -20.0, -1.0, 0.0, 1.0, 20.0, 38.0, 60.0])
    for label in (0.0, 1.0):
        y = np.full_like(z, label)
        signs = 2.0 * y - 1.0
        weight = np.linspace(0.5, 1.5, z.size)
        exact_loss = weight * np.logaddexp(0.0, -signs * z)  # log1p(exp(-m)), to rounding
        exact_theta = weight * signs * scipy.special.expit(-signs * z)
        for i in range(z.size):
            assert solver._logistic_loss(z[i:i + 1], signs[i:i + 1], weight[i:i + 1]) == (
                pytest.approx(exact_loss[i], rel=1e-15, abs=0.0))
        np.testing.assert_allclose(solver._logistic_residual(z, signs, weight), exact_theta,
                                   rtol=1e-15, atol=0.0)
        np.testing.assert_allclose(solver._logistic_curvature(z, weight),
                                   weight * scipy.special.expit(z) * scipy.special.expit(-z),
                                   rtol=1e-15, atol=0.0)


def test_separable_classifier_converges_without_warning():
    # three noise-free tasks of 11 to 18 labels and 20 features: separable, margins of 4 to
    # 19 at alpha = 1e-3. The loss taken as log(1 + exp(z)) - y z errs by up to half an ulp
    # of z per term (1.8e-15), above the margin of the polish's decrease test (1e-14 of a loss
    # of 0.012): the test failed on rounding 20 times, the step shrank 2^20-fold, and the gap
    # held at 1.57e-12 > tol through max_iter=1000 (ConvergenceWarning, "increase max_iter").
    # At the margins, the default fit certifies 1e-12 in 326 iterations, and the gap goes on
    # down (1e-14 in 403)
    X, Y = make_multitask_classification(n_samples=30, n_features=20, n_tasks=3,
                                         n_informative=10, task_std=0.0, noise=0.0,
                                         missing_rate=0.5, random_state=9)
    mask = ~np.isnan(Y)
    labels = np.where(mask, Y, 0.0)
    model, tight = _default_and_tight(TaskRelationClassifier, X, Y, alpha=1e-3)
    # the same solution: both within their certified distance of the optimum (lambda_1 > 0)
    lam_1 = relation_weights(1e-3, 0.5, 3)[0]
    bound = _distance_bound((model, tight), X, labels, mask, True, lam_1)
    assert np.linalg.norm(model.coef_ - tight.coef_) <= bound
    # a fit cut short still warns
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        short = TaskRelationClassifier(alpha=1e-3, max_iter=5).fit(X, Y)
    assert short.criterion_ > 1e-12


def test_trace_norm_polish_certifies_below_the_rounding_of_its_factors():
    # relation_ratio=1 (lambda_1 = 0): at the optimum the dual point's top singular value is
    # multiple, and the gap is first-order sensitive to errors in W. A proximal step rebuilt
    # as U diag(sigma) V^T errs by eps ||W||_2 in every direction: the gap stayed at 2.75e-12
    # through max_iter=1000 (and 10,000) with the coefficients still to 3e-13 (warning at
    # 1000 iterations). Formed as the gradient step less its shrinkage, the fit certifies
    # 1e-12 in 35 iterations, 1e-14 in 44
    X, Y = make_multitask_regression(n_samples=200, n_features=20, n_tasks=10,
                                     n_informative=10, task_std=0.3, noise=0.5,
                                     missing_rate=0.3, random_state=0)
    mask = ~np.isnan(Y)
    targets = np.where(mask, Y, 0.0)
    params = dict(alpha=0.01, relation_ratio=1.0)
    model, tight = _default_and_tight(TaskRelationRegressor, X, Y, **params)
    # the same solution. lambda_1 = 0, but each task's centred squared loss (the intercepts
    # eliminated) is strongly convex in w_t with the smallest eigenvalue of its covariance
    modulus = min(np.linalg.eigvalsh(np.cov(X[mask[:, t]], rowvar=False, bias=True))[0]
                  for t in range(Y.shape[1]))
    assert modulus > 0.1
    bound = _distance_bound((model, tight), X, targets, mask, False, modulus)
    assert np.linalg.norm(model.coef_ - tight.coef_) <= bound
    # a fit cut short still warns
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        short = TaskRelationRegressor(max_iter=3, **params).fit(X, Y)
    assert short.criterion_ > 1e-12


def _badly_scaled(seed, n, d, T):
    """Features of scales 100 exp(N(0, 1)), every task observing every row."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * 100.0 * np.exp(rng.standard_normal(d))
    Y = X @ rng.standard_normal((T, d)).T + rng.standard_normal((n, T))
    return X, Y


def test_relation_ratio_one_stops_at_the_rounding_floor_without_warning():
    # lambda_1 = 0 on features of scales up to 1e3: W's own rounding moves the dual point
    # V = r - A W by up to eps |A| |W|, with |A| |W| 5e7 times |V|, and the gap, first-order
    # sensitive to V there, has a rounding bound of 6.5e-10: 10,000 iterations stay above
    # 4e-11. The old fit ran its 1,000 iterations at 2.8e-9 (the factors' rounding on top)
    # and warned, its coefficients 1.3e-13 from these; the fit now stops once the gap has set
    # no new minimum over 50 proximal steps and lies within that bound (90 iterations,
    # 1.4e-10), without a warning, criterion_ above tol
    X, Y = _badly_scaled(0, 120, 6, 4)
    mask = np.ones(Y.shape, dtype=bool)
    params = dict(alpha=1e-3, relation_ratio=1.0)
    model = _quiet_fit(TaskRelationRegressor, X, Y, **params)
    assert 1e-12 < model.criterion_ < 1e-9 and model.n_iter_ < 200
    # the same solution by another rounding path (rows reversed, tighter tol, more
    # iterations): both within their certified distance of the optimum, the squared loss
    # strongly convex in each w_t with the smallest eigenvalue of the covariance of X
    other = _quiet_fit(TaskRelationRegressor, X[::-1], Y[::-1], tol=1e-15, max_iter=10_000,
                       **params)
    assert other.criterion_ < 1e-9
    modulus = np.linalg.eigvalsh(np.cov(X, rowvar=False, bias=True))[0]
    bound = _distance_bound((model, other), X, Y, mask, False, modulus)
    assert np.linalg.norm(model.coef_ - other.coef_) <= bound
    # fits still converging warn: one cut short, and one of the same kind still converging
    # at the default max_iter (1e-7 at 1,000 iterations, its rounding bound 1.3e-9; with
    # max_iter=5000 it stops at its floor, 4.2e-10, after 1,210)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        short = TaskRelationRegressor(max_iter=20, **params).fit(X, Y)
    assert short.criterion_ > 1e-9
    X, Y = _badly_scaled(2, 120, 6, 4)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        slow = TaskRelationRegressor(alpha=1.0, relation_ratio=1.0).fit(X, Y)
    assert slow.criterion_ > 1e-8


@pytest.mark.parametrize("Est", [TaskRelationRegressor, TaskRelationClassifier])
def test_rounding_floor_does_not_stop_a_converging_fit(Est, monkeypatch):
    # the floor is checked after every step that sets no new minimum of the gap (instead of
    # after 50 such steps in a row): on fits that converge it never stops them early
    X, Y = make_multitask_regression(n_samples=80, n_features=5, n_tasks=4, n_informative=3,
                                     task_std=0.3, noise=0.5, missing_rate=0.3, random_state=1)
    if Est is TaskRelationClassifier:
        Y = np.where(np.isnan(Y), np.nan, (Y > np.nanmedian(Y, axis=0)).astype(float))
    params = dict(alpha=0.1, relation_ratio=1.0)
    default = _quiet_fit(Est, X, Y, **params)
    monkeypatch.setattr(solver, "_FLOOR_STEPS", 1)
    checked = _quiet_fit(Est, X, Y, **params)
    assert default.criterion_ <= 1e-12 and checked.criterion_ <= 1e-12
    np.testing.assert_array_equal(checked.coef_, default.coef_)
    assert checked.n_iter_ == default.n_iter_


@pytest.mark.parametrize("relation_ratio", [0.5, 1.0])
@pytest.mark.parametrize("alpha", [1e-20, 1e-100, 1e-200, 1e-320])
def test_a_tiny_alpha_stops_at_the_rounding_floor_at_least_squares(alpha, relation_ratio):
    # the optimum's dual point (about lam W) lies below the rounding of A W, which g^*
    # magnifies by 1 / lam: the gap sits near 2.6e-10 at alpha = 1e-20 (2.6e+70 at 1e-100).
    # The floor missed that second-order term (2.7e-13): the polish ran max_iter and warned,
    # the coefficients least squares' to 7e-16. Now the fit stops at the floor, no warning.
    # Below 1e-160, g^* written with (sum sigma)^2 (about (||s|| / lam)^2) overflowed: an
    # OverflowError; it is s . sigma / 2 at the maximiser
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    Y = X @ rng.normal(size=(3, 2)) + 0.1 * rng.normal(size=(40, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = TaskRelationRegressor(alpha=alpha, relation_ratio=relation_ratio).fit(X, Y)
    assert model.n_iter_ < 100
    for t in range(Y.shape[1]):
        D = np.column_stack([X, np.ones(len(X))])
        ols = np.linalg.lstsq(D, Y[:, t], rcond=None)[0]
        np.testing.assert_allclose(model.coef_[t], ols[:-1], rtol=1e-10, atol=1e-12)
        assert model.intercept_[t] == pytest.approx(ols[-1], rel=1e-10, abs=1e-12)


def test_an_alpha_whose_penalty_weights_round_to_zero_is_refused():
    X, Y = np.ones((4, 1)) * np.arange(4)[:, None], np.arange(8.0).reshape(4, 2)
    for Est in (TaskRelationRegressor, TaskRelationClassifier):
        with pytest.raises(ValueError, match=r"alpha=5e-324 is too small: .* round to 0"):
            Est(alpha=5e-324).fit(X, Y if Est is TaskRelationRegressor else Y // 2 % 2)
