"""Feature and target magnitudes that overflow float64 raise an error naming the problem.

Every fit runs under ``warnings.simplefilter("error")``: no numpy RuntimeWarning (overflow,
invalid value) may escape skmtl's code, and no model may predict inf or NaN.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression, Ridge

from skmtl import IndependentTasks, PooledTasks
from skmtl.linear import (
    BlockSparseClassifier,
    BlockSparseClassifierCV,
    BlockSparseRegressor,
    BlockSparseRegressorCV,
    GridEdgeWarning,
    MeanClusteredClassifier,
    MeanClusteredClassifierCV,
    MeanClusteredRegressor,
    MeanClusteredRegressorCV,
)
from skmtl.linear._standardize import column_scales
from skmtl.utils.validation import check_finite_squares

N, D = 30, 3
HUGE_X = 1e200  # its square, 1e400, is beyond float64 (1.8e308)
HUGE_Y = 1e300
X_MESSAGE = "X has entries up to .* in magnitude \\(feature .*\\): .* overflow float64"
STANDARDISE_X = "Standardise the features: standardize=True"


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(N, D))
    Y = X @ rng.normal(size=(D, 2)) + 0.3 * rng.normal(size=(N, 2))
    Y[::5, 1] = np.nan
    return X, pd.DataFrame(Y, columns=["north", "south"])


def binary(Y):
    return pd.DataFrame(np.where(np.isnan(Y), np.nan, Y > 0), columns=Y.columns)


def fit_strictly(model, X, Y):
    """Fit and predict with every warning an error (but a grid-edge notice of a CV search on
    these few rows); predictions must be finite."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=GridEdgeWarning)
        model.fit(X, Y)
        pred = model.predict(X)
    assert np.isfinite(np.asarray(pred, dtype=np.float64)).all()
    return model


# -- the bound ----------------------------------------------------------------------------------
def test_the_bound_is_the_fourth_root_of_the_largest_float_over_root_n():
    limit = np.finfo(np.float64).max ** 0.25 / np.sqrt(16)
    X = np.zeros((16, 2))
    X[3, 1] = 0.999 * limit
    check_finite_squares(X)
    X[3, 1] = 1.001 * limit
    with pytest.raises(ValueError, match="\\(feature 1\\): with 16 observed labels"):
        check_finite_squares(X)
    with pytest.raises(ValueError, match="\\(feature 1\\)"):
        check_finite_squares(sp.csr_matrix(X))
    with pytest.raises(ValueError, match="\\(feature 1\\)"):
        check_finite_squares(-X)
    # a row counts once per task observing it: two tasks, twice the terms
    X[3, 1] = 0.8 * limit
    check_finite_squares(X)
    with pytest.raises(ValueError, match="with 32 observed labels"):
        check_finite_squares(X, mask=np.ones((16, 2), dtype=bool))


def test_targets_name_their_task_wide_and_long():
    X, y = np.ones((4, 1)), np.array([1.0, -HUGE_Y, 2.0, 3.0])
    message = "The targets of task\\(s\\) {} reach 1e\\+300 in magnitude: .* Rescale the targets"
    with pytest.raises(ValueError, match=message.format("'b'")):
        check_finite_squares(X, y, task_index=np.array([0, 1, 0, 1]),
                             tasks=np.array(["a", "b"]))
    Y = np.column_stack([y[::-1], y])
    with pytest.raises(ValueError, match=message.format("0, 1")):
        check_finite_squares(X, Y, mask=np.ones((4, 2), dtype=bool))
    check_finite_squares(X, Y / HUGE_Y, mask=np.ones((4, 2), dtype=bool))


# -- the linear estimators ----------------------------------------------------------------------
BLOCK_SPARSE = [BlockSparseRegressor(alpha=0.01), BlockSparseClassifier(alpha=0.01),
                BlockSparseRegressorCV(n_alphas=3, cv=3, standardize=False),
                BlockSparseClassifierCV(n_alphas=3, cv=3, standardize=False)]
MEAN_CLUSTERED = [MeanClusteredRegressor(), MeanClusteredClassifier(),
                  MeanClusteredRegressorCV(n_alphas=3, cv=3, standardize=False),
                  MeanClusteredClassifierCV(n_alphas=3, cv=3, standardize=False)]


def _target(model, Y):
    return binary(Y) if "Classifier" in type(model).__name__ else Y


@pytest.mark.parametrize("model", BLOCK_SPARSE + MEAN_CLUSTERED,
                         ids=lambda m: type(m).__name__)
def test_features_too_large_to_square_raise_naming_x(data, model):
    X, Y = data
    with pytest.raises(ValueError, match=X_MESSAGE) as info:
        fit_strictly(model, X * HUGE_X, _target(model, Y))
    assert STANDARDISE_X in str(info.value) and "MaxAbsScaler" in str(info.value)


REGRESSORS = [BlockSparseRegressor(alpha=0.01, standardize=True),
              BlockSparseRegressorCV(n_alphas=3, cv=3),
              MeanClusteredRegressor(standardize=True), MeanClusteredRegressorCV(n_alphas=3, cv=3)]


@pytest.mark.parametrize("model", REGRESSORS, ids=lambda m: type(m).__name__)
def test_targets_too_large_to_square_raise_naming_the_task(data, model):
    X, Y = data
    Y = Y.assign(south=Y["south"] * HUGE_Y)
    with pytest.raises(ValueError, match="The targets of task\\(s\\) 'south' reach .* "
                                         "overflow float64 .* Rescale the targets: divide y "
                                         "by one number for all tasks"):
        fit_strictly(model, X, Y)


STANDARDIZING = [BlockSparseRegressor(alpha=0.01, standardize=True),
                 BlockSparseClassifier(alpha=0.01, standardize=True),
                 MeanClusteredRegressor(standardize=True),
                 MeanClusteredClassifier(standardize=True)]


@pytest.mark.parametrize("model", STANDARDIZING, ids=lambda m: type(m).__name__)
def test_standardize_fits_huge_features_as_it_fits_the_same_features_in_small_units(data,
                                                                                      model):
    X, Y = data
    Y = _target(model, Y)
    small = fit_strictly(model.__class__(**model.get_params()), X, Y)
    huge = fit_strictly(model, X * HUGE_X, Y)
    np.testing.assert_allclose(huge.coef_ * HUGE_X, small.coef_, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(np.asarray(huge.predict(X * HUGE_X), dtype=float),
                               np.asarray(small.predict(X), dtype=float), rtol=1e-6)


@pytest.mark.parametrize("model", [BlockSparseRegressorCV(n_alphas=3, cv=3),
                                   BlockSparseClassifierCV(n_alphas=3, cv=3),
                                   MeanClusteredRegressorCV(n_alphas=3, cv=3),
                                   MeanClusteredClassifierCV(n_alphas=3, cv=3)],
                         ids=lambda m: type(m).__name__)
def test_cv_estimators_standardize_huge_features_by_default(data, model):
    X, Y = data
    fit_strictly(model, X * HUGE_X, _target(model, Y))


def test_column_scales_of_huge_columns_scale_with_them():
    rng = np.random.RandomState(1)
    X, weight = rng.normal(size=(20, 3)), rng.randint(1, 3, size=20).astype(float)
    X[:, 2] = 5.0  # constant: scale 1, or the power of two that brings huge entries near 1
    for center in (True, False):
        expected = column_scales(X, weight, center)
        for fmt in (np.asarray, sp.csr_matrix):
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                huge = column_scales(fmt(X * HUGE_X), weight, center)
            if center:
                np.testing.assert_allclose(huge[:2], expected[:2] * HUGE_X, rtol=1e-12)
                assert 0.5 < 5.0 * HUGE_X / huge[2] <= 1.0
            else:
                np.testing.assert_allclose(huge, expected * HUGE_X, rtol=1e-12)


# -- the wrappers: scikit-learn's own behaviour, no warning from skmtl's code --------------------
@pytest.mark.parametrize("model", [IndependentTasks(Ridge()), PooledTasks(Ridge()),
                                   IndependentTasks(LogisticRegression()),
                                   PooledTasks(LogisticRegression())],
                         ids=lambda m: f"{type(m).__name__}({type(m.estimator).__name__})")
@pytest.mark.parametrize("scale", ["X", "Y"])
def test_wrappers_leave_overflow_to_the_wrapped_estimator(data, model, scale):
    X, Y = data
    if "Logistic" in type(model.estimator).__name__:
        if scale == "Y":
            pytest.skip("class labels have no magnitude")
        Y = binary(Y)
    X, Y = (X * HUGE_X, Y) if scale == "X" else (X, Y * HUGE_Y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.fit(X, Y).predict(X)
        except ValueError:
            pass  # scikit-learn's own refusal of the wrapped fit
    ours = [w for w in caught if "/skmtl/" in w.filename.replace("\\", "/")
            and issubclass(w.category, RuntimeWarning)]
    assert not ours, [str(w.message) for w in ours]


@pytest.mark.parametrize("sparse", [False, True])
def test_deep_estimators_name_features_beyond_float32(sparse):
    pytest.importorskip("torch")
    from skmtl.deep import MultiTaskClassifier, MultiTaskRegressor

    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 3))
    Y = X @ rng.normal(size=(3, 2))
    X[7, 2] = -1e200  # inf in float32: every loss would be NaN
    X = sp.csr_matrix(X) if sparse else X
    for model, target in ((MultiTaskRegressor(max_epochs=1), Y),
                          (MultiTaskClassifier(max_epochs=1), (Y > 0).astype(float))):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ValueError, match=r"X has entries up to 1e\+200 in magnitude "
                               r"\(feature 2\), beyond float32's range .* MaxAbsScaler"):
                model.fit(X, target)
