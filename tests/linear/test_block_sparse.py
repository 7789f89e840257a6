"""BlockSparseRegressor / BlockSparseClassifier: references, data formats, fitted attributes."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso, LogisticRegression, MultiTaskLasso

from skmtl.linear import BlockSparseClassifier, BlockSparseRegressor
from skmtl.linear._solvers import block_sparse_alpha_max

TIGHT = 1e-12


def _regression(n=80, d=10, T=3, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, d)) + 0.5
    W = np.zeros((T, d))
    W[:, :3] = rng.normal(size=(T, 3))
    Y = X @ W.T + 0.3 * rng.normal(size=(n, T)) + 2.0
    return X, Y


def _classification(n=120, d=6, T=3, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, d))
    W = np.zeros((T, d))
    W[:, :2] = rng.normal(size=(T, 2)) * 2
    Y = (X @ W.T + 0.5 * rng.normal(size=(n, T)) > 0).astype(int)
    return X, Y


def _bcd(estimator):
    """The same estimator forced onto skmtl's own solver (never MultiTaskLasso)."""
    estimator._solver = "bcd"
    return estimator


def test_complete_y_equals_multitask_lasso_delegated_and_ours():
    X, Y = _regression()
    alpha = 0.05
    ref = MultiTaskLasso(alpha=alpha, tol=1e-14, max_iter=100_000).fit(X, Y)
    delegated = BlockSparseRegressor(alpha, tol=TIGHT).fit(X, Y)
    ours = _bcd(BlockSparseRegressor(alpha, tol=TIGHT)).fit(X, Y)
    ours_sparse = BlockSparseRegressor(alpha, tol=TIGHT).fit(sp.csr_matrix(X), Y)
    for model in (delegated, ours, ours_sparse):
        np.testing.assert_allclose(model.coef_, ref.coef_, atol=1e-6)
        np.testing.assert_allclose(model.intercept_, ref.intercept_, atol=1e-6)
        np.testing.assert_allclose(model.predict(X), ref.predict(X), atol=1e-6)
        assert 0 <= model.dual_gap_ <= TIGHT
    assert np.any(np.all(ours.coef_ == 0, axis=0))  # a feature dropped by every task


@pytest.mark.parametrize("q", [2, np.inf])
def test_one_task_regressor_is_lasso(q):
    X, Y = _regression(T=1)
    y = Y[:, 0]
    ref = Lasso(alpha=0.05, tol=1e-14, max_iter=100_000).fit(X, y)
    model = BlockSparseRegressor(0.05, q=q, tol=TIGHT).fit(X, y)
    assert model.coef_.shape == (1, X.shape[1])
    np.testing.assert_allclose(model.coef_[0], ref.coef_, atol=1e-7)
    np.testing.assert_allclose(model.predict(X), ref.predict(X), atol=1e-7)


def test_one_task_classifier_is_l1_logistic_regression():
    X, Y = _classification(T=1)
    y = np.where(Y[:, 0] == 1, "yes", "no")
    n, alpha = X.shape[0], 0.02
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = LogisticRegression(l1_ratio=1.0, C=1 / (n * alpha), solver="saga", tol=1e-13,
                                 max_iter=200_000).fit(X, y)
    model = BlockSparseClassifier(alpha, tol=TIGHT).fit(X, y)
    np.testing.assert_allclose(model.coef_, ref.coef_, atol=1e-6)
    np.testing.assert_allclose(model.intercept_, ref.intercept_, atol=1e-6)
    np.testing.assert_allclose(model.predict_proba(X), ref.predict_proba(X), atol=1e-6)
    assert list(model.classes_) == ["no", "yes"]
    np.testing.assert_array_equal(model.predict(X), ref.predict(X))


@pytest.mark.parametrize("Estimator", [BlockSparseRegressor, BlockSparseClassifier])
@pytest.mark.parametrize("q", [2, np.inf])
def test_long_equals_wide_and_masked_values_ignored(Estimator, q):
    X, Y = _regression() if Estimator is BlockSparseRegressor else _classification()
    Y = Y.astype(float)
    rng = np.random.RandomState(1)
    missing = rng.uniform(size=Y.shape) < 0.3
    Y_nan = np.where(missing, np.nan, Y)
    model = Estimator(0.02, q=q, tol=1e-10).fit(X, Y_nan)
    rows, tasks = np.nonzero(~missing)
    long = Estimator(0.02, q=q, tol=1e-10).fit(X[rows], Y[rows, tasks], task_ids=tasks)
    np.testing.assert_allclose(long.coef_, model.coef_, atol=1e-7)
    np.testing.assert_allclose(long.intercept_, model.intercept_, atol=1e-7)
    hidden = clone(model)
    hidden.fit(X, Y_nan)
    garbage = np.where(missing, 1 - Y if Estimator is BlockSparseClassifier else 1e3, Y)
    hidden._fit_multitask(X, garbage.astype(int) if Estimator is BlockSparseClassifier
                          else garbage, ~missing)
    np.testing.assert_allclose(hidden.coef_, model.coef_, atol=1e-9)


@pytest.mark.parametrize("Estimator", [BlockSparseRegressor, BlockSparseClassifier])
def test_sparse_equals_dense_with_missing_labels(Estimator):
    X, Y = _regression() if Estimator is BlockSparseRegressor else _classification()
    X[np.abs(X) < 0.5] = 0.0
    Y = Y.astype(float)
    Y[np.random.RandomState(2).uniform(size=Y.shape) < 0.2] = np.nan
    dense = Estimator(0.02, tol=1e-10).fit(X, Y)
    sparse = Estimator(0.02, tol=1e-10).fit(sp.csc_matrix(X), Y)
    np.testing.assert_allclose(sparse.coef_, dense.coef_, atol=1e-7)
    np.testing.assert_allclose(sparse.intercept_, dense.intercept_, atol=1e-7)
    assert sparse.__sklearn_tags__().input_tags.sparse


@pytest.mark.parametrize("Estimator", [BlockSparseRegressor, BlockSparseClassifier])
def test_alpha_max_zeroes_coef(Estimator):
    X, Y = _regression() if Estimator is BlockSparseRegressor else _classification()
    datafit = "quadratic" if Estimator is BlockSparseRegressor else "logistic"
    alpha_max = block_sparse_alpha_max(X, Y, q=np.inf, datafit=datafit)
    assert np.all(Estimator(alpha_max, q=np.inf).fit(X, Y).coef_ == 0)
    assert np.any(Estimator(0.98 * alpha_max, q=np.inf, tol=1e-10).fit(X, Y).coef_ != 0)


@pytest.mark.parametrize("Estimator", [BlockSparseRegressor, BlockSparseClassifier])
def test_warm_start_uses_fewer_iterations(Estimator):
    X, Y = _regression(d=30) if Estimator is BlockSparseRegressor else _classification(d=30)
    Y = Y.astype(float)
    Y[::7, 0] = np.nan  # our solver, not MultiTaskLasso
    model = Estimator(0.02, tol=1e-10, warm_start=True).fit(X, Y)
    cold = model.n_iter_
    coef = model.coef_.copy()
    model.fit(X, Y)
    assert model.n_iter_ < cold
    np.testing.assert_allclose(model.coef_, coef, atol=1e-8)
    assert Estimator(0.02, tol=1e-10).fit(X, Y).n_iter_ == cold


@pytest.mark.parametrize("Estimator", [BlockSparseRegressor, BlockSparseClassifier])
def test_convergence_warning_and_gap(Estimator):
    X, Y = _regression(d=30) if Estimator is BlockSparseRegressor else _classification(d=30)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        model = Estimator(0.01, tol=1e-12, max_iter=1).fit(X, Y)
    assert model.n_iter_ == 1 and model.dual_gap_ > 1e-12
    model = Estimator(0.01, tol=1e-7).fit(X, Y)
    assert 0 <= model.dual_gap_ <= 1e-7


def test_classifier_rejects_non_binary_tasks():
    X, Y = _classification()
    Y = Y.astype(object)
    Y[:3, 1] = 2
    with pytest.raises(ValueError, match="Task 1 has 3 classes"):
        BlockSparseClassifier().fit(X, Y)
    Y = _classification()[1].astype(float)
    Y[:, 2] = np.where(np.arange(len(Y)) < 5, np.nan, 1.0)
    with pytest.raises(ValueError, match="Task 2 has only one class"):
        BlockSparseClassifier().fit(X, Y)


def test_classifier_per_task_classes_and_predictions():
    X, Y = _classification()
    labels = np.empty(Y.shape, dtype=object)
    labels[:, 0] = np.where(Y[:, 0] == 1, "a", "b")
    labels[:, 1] = Y[:, 1]
    labels[:, 2] = np.where(Y[:, 2] == 1, 10, 20)
    model = BlockSparseClassifier(0.01).fit(X, labels)
    assert [list(c) for c in model.classes_] == [["a", "b"], [0, 1], [10, 20]]
    proba = model.predict_proba(X)
    pred = model.predict(X)
    for t in range(3):
        np.testing.assert_array_equal(pred[:, t], model.classes_[t][proba[t].argmax(axis=1)])
    assert model.score(X, labels) > 0.8


def test_invalid_q():
    X, Y = _regression()
    with pytest.raises(ValueError, match="q must be 2 or np.inf"):
        BlockSparseRegressor(q=3).fit(X, Y)
    with pytest.raises(ValueError, match="q"):
        BlockSparseRegressor(q=1).fit(X, Y)
