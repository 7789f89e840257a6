"""The accelerated proximal gradient loop (shared by the trace-norm solver and the task-relation
polish), on the lasso against scikit-learn's coordinate descent."""

from typing import NamedTuple

import numpy as np
import pytest
from sklearn.linear_model import Lasso

from skmtl.linear._proximal import accelerated_proximal_gradient


class _Point(NamedTuple):
    W: np.ndarray
    b: np.ndarray | None


def _lasso(X, y, alpha, *, intercept, L0, tol=1e-13, max_steps=20000, start=None,
           check_every=1, checked=None):
    """``1 / (2 n) ||y - X w - b||^2 + alpha ||w||_1`` through the loop: ``(point, n_steps,
    criterion)``. The criterion is the norm of the gradient mapping at the new point."""
    n, d = X.shape

    def residual(p):
        return y - X @ p.W[0] - (p.b[0] if intercept else 0.0)

    def loss(p):
        r = residual(p)
        return 0.5 * float(r @ r) / n

    def gradient(p):
        r = residual(p)
        return -(X.T @ r)[None] / n, (np.array([-r.sum() / n]) if intercept else None)

    def prox(p, grad, L):
        G_W, G_b = grad
        z = p.W - G_W / L
        W = np.sign(z) * np.maximum(np.abs(z) - alpha / L, 0.0)
        return _Point(W, None if G_b is None else p.b - G_b / L), None

    def majorized(p, new, grad, L):
        steps = [(grad[0], new.W - p.W)] + ([] if grad[1] is None else [(grad[1], new.b - p.b)])
        model = loss(p) + sum(float(np.vdot(G, D)) + 0.5 * L * float(np.vdot(D, D))
                              for G, D in steps)
        return loss(new) <= model + 1e-14 * loss(p)

    def criterion(p, _):
        if checked is not None:
            checked.append(p)
        moved, _ = prox(p, gradient(p), 1.0)
        size = np.abs(moved.W - p.W).max()
        return size if moved.b is None else max(size, np.abs(moved.b - p.b).max())

    x0 = _Point(np.zeros((1, d)), np.zeros(1) if intercept else None)
    kwargs = {} if start is None else {"start": start(x0, criterion), "info": "start"}
    x, info, crit, n_steps = accelerated_proximal_gradient(
        x0, L0, extrapolate=lambda x, x_prev, beta: _Point(*(
            None if u is None else u + beta * (u - v) for u, v in zip(x, x_prev))),
        gradient=gradient, prox=prox, majorized=majorized, criterion=criterion, tol=tol,
        max_steps=max_steps, check_every=check_every, **kwargs)
    return x, info, crit, n_steps


def _data(seed=0, n=60, d=12):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, d)) @ np.diag(np.linspace(0.2, 3.0, d)) + 1.0
    w = np.where(np.arange(d) < 4, rng.normal(size=d), 0.0)
    return X, X @ w + 2.0 + 0.3 * rng.normal(size=n)


@pytest.mark.parametrize("intercept", [False, True])
@pytest.mark.parametrize("L0", [1e-6, None])
def test_lasso_equals_coordinate_descent(intercept, L0):
    """The minimiser equals scikit-learn's Lasso, with the intercept as an unpenalised
    variable of the loop, from a curvature far below the Lipschitz constant (backtracking
    raises it) or at it."""
    X, y = _data()
    alpha = 0.05
    lipschitz = np.linalg.eigvalsh(np.column_stack([X, np.ones(len(X))]).T
                                   @ np.column_stack([X, np.ones(len(X))]))[-1] / len(X)
    x, _, crit, n_steps = _lasso(X, y, alpha, intercept=intercept,
                                 L0=lipschitz if L0 is None else L0)
    reference = Lasso(alpha=alpha, fit_intercept=intercept, tol=1e-14, max_iter=100000).fit(X, y)
    assert crit <= 1e-13
    assert 0 < n_steps < 20000
    np.testing.assert_allclose(x.W[0], reference.coef_, atol=1e-9)
    np.testing.assert_array_equal(x.W[0] == 0.0, reference.coef_ == 0.0)
    if intercept:
        assert x.b[0] == pytest.approx(reference.intercept_, abs=1e-9)


def test_no_step_when_the_start_meets_tol():
    """A start whose criterion is already at most tol is returned as it is, with its info."""
    X, y = _data()
    x, info, crit, n_steps = _lasso(X, y, 1e3, intercept=False, L0=1.0,
                                    start=lambda x0, criterion: criterion(x0, None))
    assert n_steps == 0 and info == "start" and crit == 0.0
    np.testing.assert_array_equal(x.W, 0.0)


def test_max_steps_bounds_the_steps():
    X, y = _data()
    _, _, crit, n_steps = _lasso(X, y, 0.01, intercept=True, L0=1.0, max_steps=3)
    assert n_steps == 3 and crit > 1e-13


@pytest.mark.parametrize("max_steps", [20000, 13])
def test_check_every_evaluates_the_criterion_every_few_steps_and_at_the_last(max_steps):
    """``check_every=5``: the criterion is evaluated after steps 5, 10, ... and after the last
    step, on the returned point; the run takes the steps of ``check_every=1`` rounded up to a
    multiple of 5 (the iterates are the same), and reaches the same minimiser."""
    X, y = _data()
    every, checked = [], []
    x_1, _, crit_1, n_1 = _lasso(X, y, 0.05, intercept=True, L0=1.0, max_steps=max_steps,
                                 checked=every)
    x_5, _, crit_5, n_5 = _lasso(X, y, 0.05, intercept=True, L0=1.0, max_steps=max_steps,
                                 check_every=5, checked=checked)
    assert len(every) == n_1
    if max_steps == 13:  # stopped by the limit: checks after steps 5, 10 and 13
        assert n_1 == n_5 == 13 and len(checked) == 3 and crit_5 == crit_1 > 1e-13
        np.testing.assert_array_equal(x_5.W, x_1.W)
    else:
        assert n_5 == 5 * -(-n_1 // 5) and len(checked) == n_5 // 5
        assert crit_5 <= 1e-13
        np.testing.assert_allclose(x_5.W, x_1.W, atol=1e-9)
    assert checked[-1] is x_5  # the returned criterion is the returned point's
