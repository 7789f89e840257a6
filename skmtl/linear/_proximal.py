"""The accelerated proximal gradient loop shared by the trace-norm solver and the task-relation
solver's polish."""

import numpy as np

__all__ = ["accelerated_proximal_gradient"]


def accelerated_proximal_gradient(x, L, *, extrapolate, gradient, prox, majorized, criterion,
                                  tol, max_steps, start=np.inf, info=None, check_every=1):
    """FISTA with backtracking and gradient restart, on ``f(x) + g(x)`` (``f`` smooth).

    Each step extrapolates ``y = x_k + beta_k (x_k - x_{k-1})`` (Beck & Teboulle, 2009:
    ``beta_k = (m_k - 1) / m_{k+1}``, ``m_{k+1} = (1 + sqrt(1 + 4 m_k^2)) / 2``, ``m_1 = 1``),
    then takes the proximal step ``x_{k+1} = prox_{g / L}(y - grad f(y) / L)``, doubling ``L``
    until ``f(x_{k+1})`` lies below the quadratic model of ``f`` around ``y`` with curvature
    ``L`` (``L`` only grows: it starts at a lower bound of the Lipschitz constant of ``grad
    f``). The momentum restarts (``m_{k+1} = 1``) when the gradient mapping ``L (y -
    x_{k+1})`` turns against it, ``<x_{k+1} - y, x_{k+1} - x_k> < 0`` (O'Donoghue & Candes,
    2015), which keeps the iterates from oscillating around the optimum.

    Parameters
    ----------
    x : point
        The start. Points have the attributes ``W`` (ndarray) and ``b`` (ndarray or None, the
        variables that enter the restart test beside ``W``).
    L : float
        The starting curvature, > 0.
    extrapolate : callable ``(x, x_prev, beta) -> y``
    gradient : callable ``y -> grad``
        Whatever ``prox`` and ``majorized`` read of ``f``'s gradient at ``y``.
    prox : callable ``(y, grad, L) -> (new, info)``
        The proximal step from ``y`` with step ``1 / L``; ``info`` is passed to ``criterion``.
    majorized : callable ``(y, new, grad, L) -> bool``
        Whether ``f(new)`` is at most the quadratic model of ``f`` around ``y``.
    criterion : callable ``(new, info) -> float``
        The stopping criterion at the new point (a relative duality gap, a KKT violation).
    tol : float
        Stop as soon as the criterion is at most ``tol``...
    max_steps : int
        ... or after this many steps.
    start : float, default=inf
        The criterion at ``x`` (inf: not known, at least one step is taken).
    info : object, default=None
        ``x``'s ``info``, returned when no step is taken.
    check_every : int, default=1
        Evaluate the criterion after every ``check_every`` steps (and after the last one):
        for a criterion that costs a pass over the data the step itself does not need.

    Returns
    -------
    x : point
        The last point.
    info : object
        Its ``info``.
    criterion : float
        Its criterion (``start`` when no step was taken).
    n_steps : int
    """
    x_prev, momentum, value, n_steps = x, 1.0, start, 0
    while value > tol and n_steps < max_steps:
        n_steps += 1
        next_momentum = (1.0 + np.sqrt(1.0 + 4.0 * momentum**2)) / 2.0
        beta = (momentum - 1.0) / next_momentum
        y = x if beta == 0.0 else extrapolate(x, x_prev, beta)
        grad = gradient(y)
        while True:
            new, info = prox(y, grad, L)
            if majorized(y, new, grad, L):
                break
            L *= 2.0
        if _turn(y, new, x) < 0.0:  # gradient restart
            next_momentum = 1.0
        x_prev, x, momentum = x, new, next_momentum
        if n_steps % check_every == 0 or n_steps == max_steps:
            value = criterion(x, info)
    return x, info, value, n_steps


def _turn(y, new, x):
    """``<new - y, new - x>`` over ``W`` and ``b``."""
    turn = float(np.vdot(new.W - y.W, new.W - x.W))
    if new.b is not None and new.b.size:
        turn += float(np.vdot(new.b - y.b, new.b - x.b))
    return turn
