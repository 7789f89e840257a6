"""The stacked linear algebra shared by the solvers, against numpy's one-block routines."""

import warnings

import numpy as np
import pytest
from scipy.linalg import cho_solve, solve_triangular

from skmtl.linear._linalg import (
    _pcg,
    _solve_cholesky,
    _solve_lower,
    _spd_inverse,
    _threads_outside,
)


def _spd_stack(n_blocks, p, seed=0):
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n_blocks, p + 3, p))
    return np.einsum("tni,tnj->tij", Z, Z) + 0.1 * np.eye(p)


@pytest.mark.parametrize("n_blocks, p", [(5, 30), (100, 30), (40, 12), (3, 4)])
def test_spd_inverse_equals_numpy(n_blocks, p):
    # 100 x 30 and 40 x 12 take the compiled kernel (many blocks), 5 x 30 the LAPACK loop,
    # 3 x 4 numpy's batched inverse
    K = _spd_stack(n_blocks, p)
    expected = np.linalg.inv(K)
    np.testing.assert_allclose(_spd_inverse(K), expected, rtol=1e-10, atol=1e-12)
    # a non-contiguous view gives the same inverses, K untouched; a float32 stack is
    # inverted in float64 (numpy's batched inverse of tiny blocks keeps float32)
    view = np.swapaxes(np.swapaxes(K, 0, 2).copy(), 0, 2)
    kept = view.copy()
    np.testing.assert_allclose(_spd_inverse(view), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(view, kept)
    if p > 8:
        np.testing.assert_allclose(_spd_inverse(K.astype(np.float32)),
                                   np.linalg.inv(K.astype(np.float32).astype(np.float64)),
                                   rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("n_blocks", [5, 100])
def test_spd_inverse_in_place_and_a_singular_block(n_blocks):
    """With ``rebuild`` the stack is overwritten by its inverses; a block that is not
    positive definite gets the pseudo-inverse of its original, from ``rebuild``."""
    K = _spd_stack(n_blocks, 30, seed=1)
    v = np.arange(1.0, 31.0)
    K[3] = np.outer(v, v)  # rank one
    original = K.copy()
    out = _spd_inverse(K, rebuild=lambda t: original[t])
    assert out is K
    np.testing.assert_allclose(out[3], np.linalg.pinv(original[3], hermitian=True),
                               rtol=1e-8, atol=1e-14)
    others = np.delete(np.arange(n_blocks), 3)
    np.testing.assert_allclose(out[others], np.linalg.inv(original[others]), rtol=1e-10,
                               atol=1e-12)


@pytest.mark.parametrize("k", [1, 4, 31, 200])
@pytest.mark.parametrize("shape", [(), (3,), "square"])
def test_triangular_solves_equal_scipy(k, shape):
    """The compiled substitutions the hierarchical solver uses instead of scipy's (one BLAS
    thread pool): ``L^-1 B``, ``L^-T B`` and ``(L L^T)^-1 B``, B a vector, a matrix or the
    identity (the inverse), against scipy's ``solve_triangular`` and ``cho_solve``; B is
    left as it was."""
    L = np.linalg.cholesky(_spd_stack(1, k, seed=k)[0])
    B = np.eye(k) if shape == "square" else np.random.default_rng(1).normal(size=(k, *shape))
    kept = B.copy()
    for transposed in (False, True):
        np.testing.assert_allclose(
            _solve_lower(L, B, transposed=transposed),
            solve_triangular(L, B, lower=True, trans=int(transposed)), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(_solve_cholesky(L, B), cho_solve((L, True), B),
                               rtol=1e-10, atol=1e-14)
    assert _solve_lower(L, B).shape == B.shape
    np.testing.assert_array_equal(B, kept)


def test_pcg_matches_scipy_cg():
    # same iterates and stopping rule as scipy's cg; U^T of the search directions carried
    from scipy.sparse.linalg import cg

    rng = np.random.default_rng(6)
    T, d, k = 12, 3, 2
    F = rng.standard_normal((T * d, T * d))
    A = F @ F.T + T * d * np.eye(T * d)
    M = np.diag(1.0 / np.diag(A))
    U = np.linalg.qr(rng.standard_normal((T, k)))[0]
    b, x0 = rng.standard_normal((T, d)), rng.standard_normal((T, d))

    def matvec(x, Ux):
        if Ux is not None:
            np.testing.assert_allclose(Ux, U.T @ x, atol=1e-12)
        return (A @ x.ravel()).reshape(T, d)

    def precondition(r):
        z = (M @ r.ravel()).reshape(T, d)
        return z, U.T @ z

    counts = []
    x_ref, _ = cg(A, b.ravel(), x0=x0.ravel(), rtol=1e-10, atol=0.0, M=M,
                  callback=lambda _: counts.append(1))
    x, n_iter = _pcg(matvec, precondition, b, x0, 1e-10, maxiter=1000)
    assert n_iter == len(counts)
    np.testing.assert_allclose(x.ravel(), x_ref, rtol=1e-12, atol=1e-14)


def _blas_threads():
    from threadpoolctl import threadpool_info

    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


@pytest.mark.parametrize("name", ["TaskRelationRegressor", "ClusteredTasksClassifier",
                                  "LowRankRegressorCV", "HierarchicalRegressor",
                                  "HierarchicalClassifier"])
def test_small_relation_fits_run_on_one_blas_thread(name, monkeypatch):
    """Their fits are many small products, where OpenBLAS's threads wait for a core another
    process uses: HierarchicalRegressor() on 1,000 tasks x 20 rows x 30 features took 13.6 s
    instead of 0.95 s beside two busy processes on two cores. Up to 512 features the fit
    runs on one BLAS thread (but for the few large products, on the threads from outside);
    beyond (wide designs, whose products are large), on the default; the user's setting is
    back after the fit."""
    from skmtl import linear

    before = _blas_threads()
    if before == {1}:
        pytest.skip("one BLAS thread by default: nothing to tell apart")
    Estimator = getattr(linear, name)
    seen = []
    for hook in ("_fit_multitask", "_fit_long"):
        original = getattr(Estimator, hook)

        def spy(self, *args, original=original):
            with _threads_outside():  # (for one large product: the threads from outside)
                outside = _blas_threads()
            seen.append((_blas_threads(), outside))
            return original(self, *args)

        monkeypatch.setattr(Estimator, hook, spy)
    rng = np.random.default_rng(0)
    task_ids = np.repeat(np.arange(4), 15)
    y = rng.normal(size=60)
    if "Classifier" in name:
        y = (y > 0).astype(int)
    for n_features, threads in ((3, {1}), (513, before)):
        seen.clear()
        model = Estimator(**({"alphas": [1.0]} if name.endswith("CV") else {}))
        if name.startswith("Hierarchical"):
            model.set_params(random_slopes=None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (513 features on 60 rows: convergence aside)
            try:
                model.fit(rng.normal(size=(60, n_features)), y, task_ids=task_ids)
            except ValueError:  # a model that refuses more features than labels
                pass
        assert seen == [(threads, before)]
        assert _blas_threads() == before
