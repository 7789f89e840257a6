"""Test matrices with chosen singular values (``tests/`` is on pytest's ``pythonpath``)."""

import numpy as np


def with_singular_values(shape, spread, seed):
    """``(U, s, V, W)``: random orthonormal ``U`` (m, k) and ``V`` (n, k), ``k = min(shape)``,
    singular values ``s`` from 10 down to ``10 * spread`` (geometric) and ``W = U diag(s)
    V^T``."""
    rng = np.random.default_rng(seed)
    k = min(shape)
    U = np.linalg.qr(rng.normal(size=(shape[0], k)))[0]
    V = np.linalg.qr(rng.normal(size=(shape[1], k)))[0]
    s = np.geomspace(10.0, 10.0 * spread, k)
    return U, s, V, (U * s) @ V.T
