"""A sparse X on long data: predictions from its stored entries, and the thin tasks kept as
their n_t x n_t Gram eigenvectors (TaskRelationRegressor, mean-clustered least squares and
its CV), give what the dense X gives."""

import numpy as np
import pytest
import scipy.sparse as sp

from skmtl.linear._designs import Problem, predict_rows
from skmtl.linear._solver_task_relation import RowSpaceBlocks, solve_task_relation


def _data(seed=0, n=600, d=300, T=6):
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=0.05, format="lil", random_state=rng)
    X[:, 3] = 5.0 + 0.1 * rng.normal(size=(n, 1))  # a column whose mean exceeds its spread
    X = sp.csr_matrix(X)
    task_ids = rng.integers(T, size=n)
    task_ids[:350] = 0  # task 0 has more rows than features (its moments are formed)
    task_ids[350:350 + T] = np.arange(T)
    return X, rng.normal(size=n), task_ids


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_predict_rows_of_sparse_X_matches_the_dense_rows(fmt):
    X, _, task_ids = _data()
    rng = np.random.default_rng(1)
    W, b = rng.normal(size=(6, X.shape[1])), rng.normal(size=6)
    expected = np.einsum("ij,ij->i", X.toarray(), W[task_ids]) + b[task_ids]
    np.testing.assert_allclose(predict_rows(X.asformat(fmt), W, b, task_ids), expected,
                               rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(predict_rows(X.toarray(), W, b, task_ids), expected,
                               rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_row_space_blocks_of_sparse_X_match_the_dense_rows(fit_intercept):
    X, y, task_ids = _data()
    blocks = []
    for X_ in (X, X.toarray()):
        problem = Problem(X_, y, None, task_index=task_ids)
        design = problem.design()
        blocks.append(RowSpaceBlocks(design, problem.targets(design), fit_intercept))
    sparse, dense = blocks
    assert sparse._lazy is not None and dense._lazy is None
    rng = np.random.default_rng(2)
    W, shift = rng.normal(size=(6, X.shape[1])), rng.uniform(0.1, 2.0, size=6)
    for name in ("r", "x_mean", "y_mean"):
        np.testing.assert_allclose(getattr(sparse, name), getattr(dense, name), atol=1e-12)
    np.testing.assert_allclose(sparse.products(W), dense.products(W), atol=1e-12)
    np.testing.assert_allclose(sparse.solve_shifted(shift, W), dense.solve_shifted(shift, W),
                               atol=1e-12)
    np.testing.assert_allclose(sparse.mean(), dense.mean(), atol=1e-12)
    assert sparse.largest_eigenvalue() == pytest.approx(dense.largest_eigenvalue(), rel=1e-12)
    assert sparse.diagonal_max() == pytest.approx(dense.diagonal_max(), rel=1e-12)
    # the absolute products bound those of the blocks (the floor of the products' rounding)
    assert np.all(sparse.products(W, absolute=True) >= np.abs(dense.products(W)) - 1e-12)


@pytest.mark.parametrize("alpha", [0.1, 1.0])
def test_task_relation_fit_of_sparse_long_X_matches_dense(alpha):
    X, y, task_ids = _data()
    W, b, _, gap, _ = solve_task_relation(X, y, None, alpha, 0.5, task_index=task_ids)
    W_d, b_d, _, _, _ = solve_task_relation(X.toarray(), y, None, alpha, 0.5,
                                            task_index=task_ids)
    assert gap <= 1e-12
    np.testing.assert_allclose(W, W_d, atol=1e-10)
    np.testing.assert_allclose(b, b_d, atol=1e-10)


@pytest.mark.parametrize("n_features", [300, 600])  # a direct coupled solve; CG (>= 512)
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_mean_clustered_path_of_sparse_long_X_matches_dense(n_features, fit_intercept):
    """MeanClusteredLeastSquares on a sparse X keeps its thin tasks' rows sparse
    (_SparseThinTasks; task 0, with more rows than features, formed as moments) and solves
    to the dense X's solution, through the direct d x d system and through CG, for
    independent, coupled and nearly pooled tasks."""
    from skmtl.linear._solver_mean_clustered import (
        MeanClusteredLeastSquares,
        _SparseThinTasks,
        _ThinTasks,
    )

    X, y, task_ids = _data(d=n_features, n=900 if n_features == 600 else 600)
    if n_features == 600:
        task_ids[:650] = 0
    sparse, dense = (MeanClusteredLeastSquares(A, y, task_index=task_ids, n_tasks=6,
                                               fit_intercept=fit_intercept)
                     for A in (X, X.toarray()))
    assert isinstance(sparse._thin, _SparseThinTasks) and isinstance(dense._thin, _ThinTasks)
    assert sparse._square is not None
    for alpha, strength in [(1e-2, 1.0), (1e-2, 5.0), (1.0, 0.5), (1e-4, 1e3)]:
        W, b = sparse.solve(alpha, strength)
        W_dense, b_dense = dense.solve(alpha, strength)
        scale = np.abs(W_dense).max()
        np.testing.assert_allclose(W, W_dense, rtol=0, atol=1e-11 * scale)
        np.testing.assert_allclose(b, b_dense, rtol=0, atol=1e-11 * max(scale, 1.0))


def test_mean_clustered_cv_of_sparse_long_X_chooses_and_fits_as_dense():
    """MeanClusteredRegressorCV and a coupled MeanClusteredRegressor on a sparse long X
    give the dense X's choice, coefficients and intercepts (the default alphas' scale from
    Lanczos iterations on the sparse moments equals the dense eigenvalue)."""
    from skmtl.linear import MeanClusteredRegressor, MeanClusteredRegressorCV

    X, y, task_ids = _data()
    y = y + np.asarray(X @ np.random.default_rng(2).normal(size=X.shape[1])).ravel()
    for make in (lambda: MeanClusteredRegressorCV(n_alphas=6, cv=3),
                 lambda: MeanClusteredRegressor(alpha=0.1, cluster_strength=5.0)):
        sparse = make().fit(X, y, task_ids=task_ids)
        dense = make().fit(X.toarray(), y, task_ids=task_ids)
        if hasattr(dense, "alphas_"):
            np.testing.assert_allclose(sparse.alphas_, dense.alphas_, rtol=1e-12)
            assert sparse.alpha_ == pytest.approx(dense.alpha_, rel=1e-12)
            assert sparse.cluster_strength_ == dense.cluster_strength_
        np.testing.assert_allclose(sparse.coef_, dense.coef_, rtol=0,
                                   atol=1e-10 * np.abs(dense.coef_).max())
        np.testing.assert_allclose(sparse.intercept_, dense.intercept_, rtol=0, atol=1e-10)
