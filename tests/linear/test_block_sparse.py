"""BlockSparseRegressor / BlockSparseClassifier: references, data formats, fitted attributes."""

import warnings

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso, LinearRegression, LogisticRegression, MultiTaskLasso

from skmtl.linear import BlockSparseClassifier, BlockSparseRegressor
from skmtl.linear._solver_bcd import block_sparse_alpha_max

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


@pytest.mark.parametrize("scale", [1e-4, 1e-6])
def test_classifier_above_alpha_max_in_small_units_stops_at_its_start(scale):
    """All coefficients zero (alpha above alpha_max): the start, the pulled intercepts, is
    optimal in any units of X. Their Newton steps searched a decrease the loss cannot show
    and stalled with gradients of about 1e-9, which the criterion (relative to alpha_max,
    small with X) kept above tol: 1000 epochs and a ConvergenceWarning at X * 1e-4."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    Y = (X @ rng.normal(size=(3, 2)) + 0.1 * rng.normal(size=(40, 2)) > 0).astype(int)
    reference = BlockSparseClassifier(alpha=1.0).fit(X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = BlockSparseClassifier(alpha=1.0).fit(X * scale, Y)
    assert reference.n_iter_ == model.n_iter_ == 0
    assert np.all(model.coef_ == 0) and np.all(reference.coef_ == 0)
    np.testing.assert_allclose(model.intercept_, reference.intercept_, rtol=1e-13)
    # the intercepts' gradient: each task's mean residual and the pull, kappa_t = 1 / (4 n_t)
    p, n_t = 1.0 / (1.0 + np.exp(-model.intercept_)), len(Y)
    kappa = np.full(Y.shape[1], 1.0 / (4.0 * n_t))
    pull = kappa * (model.intercept_ - kappa @ model.intercept_ / kappa.sum())
    np.testing.assert_allclose(p - Y.mean(axis=0) + pull, 0.0, atol=1e-15)


@pytest.mark.parametrize("alpha", [1e-16, 1e-200, 1e-320])
@pytest.mark.parametrize("missing", [False, True])
def test_a_tiny_alpha_is_the_unpenalised_fit_without_a_warning(alpha, missing):
    """Below 1e-10 alpha_max the duality gap cannot certify a fit: alpha = 1e-16 ran max_iter
    with a ConvergenceWarning (MultiTaskLasso's route, complete Y, and ours), 1e-200 raised an
    OverflowError (the dual's scale squared), and the classifier a ZeroDivisionError (the
    prox's Newton started at s = 0, where alpha^2 underflows). The KKT criterion stops them
    at the alpha = 0 fit: least squares per task, and the classifier's alpha = 0 fit."""
    X, Y = _regression()
    Y = Y.astype(float)
    if missing:
        Y[::7, 0] = np.nan  # our solver, not MultiTaskLasso
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = BlockSparseRegressor(alpha, tol=1e-10).fit(X, Y)
    assert model.n_iter_ < 100 and model.dual_gap_ <= 1e-10
    for t in range(Y.shape[1]):
        rows = ~np.isnan(Y[:, t])
        ols = LinearRegression().fit(X[rows], Y[rows, t])
        np.testing.assert_allclose(model.coef_[t], ols.coef_, rtol=1e-8, atol=1e-9)
        assert model.intercept_[t] == pytest.approx(ols.intercept_, rel=1e-8, abs=1e-9)
    Xc, Yc = _classification(n=200, d=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiny = BlockSparseClassifier(alpha, tol=1e-10).fit(Xc, Yc)
        zero = BlockSparseClassifier(0.0, tol=1e-10).fit(Xc, Yc)
    np.testing.assert_allclose(tiny.coef_, zero.coef_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(tiny.intercept_, zero.intercept_, rtol=1e-7, atol=1e-9)


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


def pulled_objective(theta, X, Y, mask, alpha, q):
    """The classifier's objective, written out: mean logistic loss of each task, the block
    penalty, and the pull of the intercepts at the mean of X, sum_t kappa_t / 2 (b'_t -
    b'_bar)^2 with b'_t = b_t + x_mean w_t (x_mean over the observed (row, task) pairs),
    kappa_t = 1 / (4 n_t) and b'_bar their kappa-weighted mean."""
    T, d = Y.shape[1], X.shape[1]
    W, b = theta[:T * d].reshape(T, d), theta[T * d:]
    value = 0.0
    for t in range(T):
        rows = mask[:, t]
        z = X[rows] @ W[t] + b[t]
        value += np.mean(np.logaddexp(0.0, z) - Y[rows, t] * z)
    kappa = 1.0 / (4.0 * mask.sum(axis=0))
    x_mean = sum(X[mask[:, t]].sum(axis=0) for t in range(T)) / mask.sum()
    pulled = b + W @ x_mean
    value += 0.5 * kappa @ (pulled - kappa @ pulled / kappa.sum()) ** 2
    norms = np.sqrt(np.sum(W**2, axis=0)) if q == 2 else np.abs(W).max(axis=0)
    return value + alpha * norms.sum()


@pytest.mark.parametrize("q", [2, np.inf])
@pytest.mark.parametrize("label", [0, 1])
def test_classifier_fits_a_task_with_one_class_at_the_optimum(label, q):
    # a binary problem: task 2 saw one class only; its intercept is pulled, hence finite
    X, Y = _classification(n=60, d=4)
    Y = Y.astype(float)
    Y[:, 2] = np.where(np.arange(len(Y)) < 5, np.nan, label)
    mask = ~np.isnan(Y)
    alpha = 0.02
    model = BlockSparseClassifier(alpha, q=q, tol=1e-12).fit(X, Y)
    np.testing.assert_array_equal(model.classes_[2], [0.0, 1.0])
    proba = model.predict_proba(X)[2]
    assert proba.shape == (len(Y), 2) and np.all(np.isfinite(proba))
    assert np.all(proba[:, label] > 0.5) and np.all(proba[:, label] < 1.0)
    assert model.dual_gap_ <= 1e-12  # the KKT conditions, the pull's gradient included
    # no direction lowers the objective written out (a brute-force search from ours)
    ours = np.concatenate([model.coef_.ravel(), model.intercept_])
    value = pulled_objective(ours, X, np.nan_to_num(Y), mask, alpha, q)
    result = scipy.optimize.minimize(pulled_objective, ours + 0.05,
                                     args=(X, np.nan_to_num(Y), mask, alpha, q),
                                     method="Powell",
                                     options={"xtol": 1e-10, "ftol": 1e-15, "maxfev": 100_000})
    assert value <= result.fun + 1e-10
    if q == 2:  # (Powell's search stalls on the kinks of the l-inf norm before the optimum)
        np.testing.assert_allclose(result.x, ours, atol=1e-4)


def test_classifier_pull_is_invisible_for_one_task():
    # one task: b_t = b_bar, no pull; the l1 logistic regression of scikit-learn
    X, Y = _classification()
    one = BlockSparseClassifier(0.01, tol=TIGHT).fit(X, Y[:, 0])
    reference = LogisticRegression(l1_ratio=1, C=1 / (X.shape[0] * 0.01), solver="saga",
                                   tol=1e-12, max_iter=100_000).fit(X, Y[:, 0])
    np.testing.assert_allclose(one.intercept_, reference.intercept_, atol=1e-5)
    np.testing.assert_allclose(one.coef_, reference.coef_, atol=1e-5)


# -- standardize ---------------------------------------------------------------------------------
@pytest.mark.parametrize("Estimator", [BlockSparseRegressor, BlockSparseClassifier])
def test_standardize_fits_the_scaled_columns_and_reports_the_users_units(Estimator):
    X, Y = _regression() if Estimator is BlockSparseRegressor else _classification()
    X = X * np.r_[100.0, 0.01, np.ones(X.shape[1] - 2)]
    if Estimator is BlockSparseRegressor:  # (with the classifier's pulled intercepts, a
        # constant column is a nearly flat direction of the objective)
        X = np.column_stack([X, np.full(len(X), 3.0)])  # constant: never divided by zero
    model = Estimator(0.05, standardize=True, tol=TIGHT).fit(X, Y)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    plain = Estimator(0.05, tol=TIGHT).fit(X / scale, Y)
    np.testing.assert_allclose(model.coef_, plain.coef_ / scale, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(model.intercept_, plain.intercept_, rtol=1e-6, atol=1e-9)
    sparse = Estimator(0.05, standardize=True, tol=TIGHT).fit(sp.csr_matrix(X), Y)
    np.testing.assert_allclose(sparse.coef_, model.coef_, rtol=1e-6, atol=1e-9)


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


@pytest.mark.parametrize("Estimator", [BlockSparseRegressor, BlockSparseClassifier])
@pytest.mark.parametrize("sparse", [False, True])
def test_long_data_read_directly_equals_the_wide_fit(Estimator, sparse):
    """The fixed-alpha models read long data without an (n_samples, n_tasks) mask (their
    ``_fit_long``): the same fit as the wide data, dense or sparse X."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 5))
    Y = X[:, :2] @ rng.normal(size=(2, 3)) + 0.3 * rng.normal(size=(60, 3))
    if Estimator is BlockSparseClassifier:
        Y = (Y > 0).astype(float)
    Y[rng.rand(60, 3) < 0.3] = np.nan
    rows, tasks = np.nonzero(~np.isnan(Y))
    X_long = sp.csr_matrix(X[rows]) if sparse else X[rows]
    long = Estimator(alpha=0.02, tol=1e-10).fit(X_long, Y[rows, tasks], task_ids=tasks)
    wide = Estimator(alpha=0.02, tol=1e-10).fit(X, Y)
    np.testing.assert_allclose(long.coef_, wide.coef_, atol=1e-7)
    np.testing.assert_allclose(long.intercept_, wide.intercept_, atol=1e-7)
