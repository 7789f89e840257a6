"""Masked per-task metrics against scikit-learn's metrics on each task's observed labels."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from skmtl import metrics as mtm
from skmtl.metrics import _masked as masked_module

N, T = 40, 3


@pytest.fixture
def regression():
    rng = np.random.RandomState(0)
    Y = rng.normal(size=(N, T))
    P = Y + rng.normal(scale=0.7, size=(N, T))
    return Y, P


@pytest.fixture
def binary():
    """Binary labels per task, positive-class scores and predicted labels."""
    rng = np.random.RandomState(1)
    S = rng.uniform(size=(N, T))
    Y = (S + rng.normal(scale=0.4, size=(N, T)) > 0.5).astype(float)
    return Y, S, (S > 0.5).astype(float)


@pytest.fixture
def mixed_proba():
    """Two binary tasks and a three-class task, with predict_proba-style probabilities."""
    rng = np.random.RandomState(2)
    n_classes = [2, 3, 2]
    proba = [rng.dirichlet(np.ones(k), size=N) for k in n_classes]
    Y = np.column_stack([
        np.array([rng.choice(k, p=0.5 * p + 0.5 / k) for p in P])
        for k, P in zip(n_classes, proba, strict=True)
    ]).astype(float)
    return Y, proba


def missing(shape, seed=3, rate=0.3):
    mask = np.random.RandomState(seed).uniform(size=shape) > rate
    mask[:6] = True  # enough observed rows (and both classes) everywhere
    return mask


def with_nan(Y, mask):
    Y = Y.astype(float).copy()
    Y[~mask] = np.nan
    return Y


def observed_values(sk_metric, Y, preds, mask, sample_weight=None, **kwargs):
    """Brute force: the scikit-learn metric on each column's observed rows."""
    values = []
    for t in range(Y.shape[1]):
        rows = mask[:, t]
        sw = None if sample_weight is None else sample_weight[rows]
        values.append(sk_metric(Y[rows, t], preds(t)[rows], sample_weight=sw, **kwargs))
    return np.array(values)


def positive_roc_auc(y, s, sample_weight=None):
    return skm.roc_auc_score(y, s, sample_weight=sample_weight)


def proba_roc_auc(y, p, sample_weight=None):
    if p.shape[1] == 2:
        return skm.roc_auc_score(y, p[:, 1], sample_weight=sample_weight)
    return skm.roc_auc_score(y, p, multi_class="ovr", sample_weight=sample_weight)


def proba_average_precision(y, p, sample_weight=None):
    if p.shape[1] == 2:
        return skm.average_precision_score(y, p[:, 1], sample_weight=sample_weight)
    onehot = (y[:, None] == np.arange(p.shape[1])).astype(int)
    return skm.average_precision_score(onehot, p, sample_weight=sample_weight)


def binary_log_loss(y, s, sample_weight=None):
    return skm.log_loss(y, np.column_stack([1 - s, s]), sample_weight=sample_weight,
                        labels=[0, 1])


# (masked metric, scikit-learn reference on one task, fixture, what the metric reads)
CASES = {
    "r2": (mtm.r2_score, skm.r2_score, "regression", "values"),
    "mse": (mtm.mean_squared_error, skm.mean_squared_error, "regression", "values"),
    "mae": (mtm.mean_absolute_error, skm.mean_absolute_error, "regression", "values"),
    "accuracy": (mtm.accuracy_score, skm.accuracy_score, "binary", "labels"),
    "roc_auc_positive": (mtm.roc_auc_score, positive_roc_auc, "binary", "scores"),
    "roc_auc_proba": (mtm.roc_auc_score, proba_roc_auc, "mixed_proba", "proba"),
    "ap_positive": (mtm.average_precision_score, skm.average_precision_score, "binary",
                    "scores"),
    "ap_proba": (mtm.average_precision_score, proba_average_precision, "mixed_proba", "proba"),
    "log_loss_positive": (mtm.log_loss, binary_log_loss, "binary", "scores"),
    "log_loss_proba": (mtm.log_loss, skm.log_loss, "mixed_proba", "proba"),
}


def case_data(name, request):
    metric, reference, fixture, reads = CASES[name]
    data = request.getfixturevalue(fixture)
    if reads == "values":
        Y, P = data
    elif reads == "labels":
        Y, _, P = data
    elif reads == "scores":
        Y, P, _ = data
    else:
        Y, P = data
    return metric, reference, Y, P


def column(P, t):
    return P[t] if isinstance(P, list) else P[:, t]


@pytest.mark.parametrize("name", list(CASES))
def test_fully_observed_equals_sklearn_per_column(name, request):
    metric, reference, Y, P = case_data(name, request)
    expected = np.array([reference(Y[:, t], column(P, t)) for t in range(T)])
    np.testing.assert_allclose(metric(Y, P, multioutput="raw_values"), expected, rtol=1e-12)
    assert metric(Y, P) == pytest.approx(expected.mean(), rel=1e-12)
    weights = np.array([0.2, 0.5, 0.3])
    assert metric(Y, P, multioutput=weights) == pytest.approx(
        np.average(expected, weights=weights), rel=1e-12)


@pytest.mark.parametrize("masked, reference", [
    (mtm.r2_score, skm.r2_score),
    (mtm.mean_squared_error, skm.mean_squared_error),
    (mtm.mean_absolute_error, skm.mean_absolute_error),
])
def test_regression_metrics_equal_sklearn_multioutput(masked, reference, regression):
    Y, P = regression
    weights = [3.0, 1.0, 1.0]
    sw = np.random.RandomState(4).uniform(size=N)
    for multioutput in ("raw_values", "uniform_average", weights):
        np.testing.assert_allclose(masked(Y, P, multioutput=multioutput),
                                   reference(Y, P, multioutput=multioutput), rtol=1e-12)
        np.testing.assert_allclose(
            masked(Y, P, sample_weight=sw, multioutput=multioutput),
            reference(Y, P, sample_weight=sw, multioutput=multioutput), rtol=1e-12)


def test_binary_score_metrics_equal_sklearn_multilabel(binary):
    Y, S, _ = binary
    for masked, reference in [(mtm.roc_auc_score, skm.roc_auc_score),
                              (mtm.average_precision_score, skm.average_precision_score)]:
        np.testing.assert_allclose(masked(Y, S, multioutput="raw_values"),
                                   reference(Y, S, average=None), rtol=1e-12)
        assert masked(Y, S) == pytest.approx(reference(Y, S, average="macro"), rel=1e-12)


def test_predict_proba_list_and_positive_scores_agree(binary):
    Y, S, _ = binary
    proba = [np.column_stack([1 - S[:, t], S[:, t]]) for t in range(T)]
    for metric in (mtm.roc_auc_score, mtm.average_precision_score, mtm.log_loss):
        np.testing.assert_allclose(metric(Y, proba, multioutput="raw_values"),
                                   metric(Y, S, multioutput="raw_values"), rtol=1e-12)


@pytest.mark.parametrize("name", list(CASES))
def test_missing_labels_equal_sklearn_on_observed_rows(name, request):
    metric, reference, Y, P = case_data(name, request)
    mask = missing(Y.shape)
    Y_missing = with_nan(Y, mask)
    expected = observed_values(reference, Y, lambda t: column(P, t), mask)
    raw = metric(Y_missing, P, multioutput="raw_values")
    np.testing.assert_allclose(raw, expected, rtol=1e-12)
    assert metric(Y_missing, P) == pytest.approx(expected.mean(), rel=1e-12)

    sw = np.random.RandomState(5).uniform(0.5, 2.0, size=N)
    expected_weighted = observed_values(reference, Y, lambda t: column(P, t), mask,
                                        sample_weight=sw)
    np.testing.assert_allclose(metric(Y_missing, P, sample_weight=sw, multioutput="raw_values"),
                               expected_weighted, rtol=1e-12)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("garbage", [np.nan, 1e9, -3.0])
def test_predictions_behind_the_mask_never_change_the_result(name, garbage, request):
    metric, _, Y, P = case_data(name, request)
    mask = missing(Y.shape)
    Y_missing = with_nan(Y, mask)
    if isinstance(P, list):
        P_garbage = [p.copy() for p in P]
        for t, p in enumerate(P_garbage):
            p[~mask[:, t]] = garbage
    else:
        P_garbage = P.copy()
        P_garbage[~mask] = garbage
    np.testing.assert_array_equal(metric(Y_missing, P_garbage, multioutput="raw_values"),
                                  metric(Y_missing, P, multioutput="raw_values"))


def to_long(Y, P):
    rows, tasks = np.nonzero(~np.isnan(Y))
    if isinstance(P, list):
        P_long = np.stack([P[t][r] for r, t in zip(rows, tasks, strict=True)])
    else:
        P_long = P[rows, tasks]
    return rows, tasks, Y[rows, tasks], P_long


@pytest.mark.parametrize("name", ["r2", "mse", "accuracy", "roc_auc_positive",
                                  "ap_positive", "log_loss_positive"])
def test_long_format_equals_wide_format(name, request):
    metric, _, Y, P = case_data(name, request)
    Y_missing = with_nan(Y, missing(Y.shape))
    _, tasks, y_long, P_long = to_long(Y_missing, P)
    np.testing.assert_allclose(metric(y_long, P_long, task_ids=tasks, multioutput="raw_values"),
                               metric(Y_missing, P, multioutput="raw_values"), rtol=1e-12)
    assert metric(y_long, P_long, task_ids=tasks) == pytest.approx(metric(Y_missing, P))


def test_long_format_with_proba_rows_equals_wide_list(binary):
    Y, S, _ = binary
    Y_missing = with_nan(Y, missing(Y.shape))
    proba = [np.column_stack([1 - S[:, t], S[:, t]]) for t in range(T)]
    _, tasks, y_long, P_long = to_long(Y_missing, proba)
    assert P_long.shape == (y_long.shape[0], 2)
    for metric in (mtm.roc_auc_score, mtm.log_loss, mtm.average_precision_score):
        np.testing.assert_allclose(
            metric(y_long, P_long, task_ids=tasks, multioutput="raw_values"),
            metric(Y_missing, proba, multioutput="raw_values"), rtol=1e-12)


def test_string_task_ids_give_values_in_sorted_task_order(regression):
    Y, P = regression
    Y_missing = with_nan(Y, missing(Y.shape))
    _, tasks, y_long, p_long = to_long(Y_missing, P)
    names = np.array(["zeta", "alpha", "mu"])[tasks]  # column 0 sorts last
    wide = mtm.mean_squared_error(Y_missing, P, multioutput="raw_values")
    long = mtm.mean_squared_error(y_long, p_long, task_ids=names, multioutput="raw_values")
    np.testing.assert_allclose(long, wide[[1, 2, 0]], rtol=1e-12)
    found, scores = mtm.per_task_scores(
        lambda y, p, sample_weight, task: skm.mean_squared_error(y, p), y_long, p_long,
        task_ids=names)
    assert found.tolist() == ["alpha", "mu", "zeta"]
    np.testing.assert_allclose(scores, long, rtol=1e-12)
    # a weight per task follows the same sorted order
    assert mtm.mean_squared_error(y_long, p_long, task_ids=names,
                                  multioutput=[1.0, 0.0, 0.0]) == pytest.approx(wide[1])


def test_dataframe_columns_name_the_tasks(regression):
    pd = pytest.importorskip("pandas")
    Y, P = regression
    frame = pd.DataFrame(with_nan(Y, missing(Y.shape)), columns=["b", "c", "a"])
    tasks, scores = mtm.per_task_scores(
        lambda y, p, sample_weight, task: skm.r2_score(y, p), frame, P)
    assert tasks.tolist() == ["b", "c", "a"]
    np.testing.assert_allclose(scores, mtm.r2_score(frame.to_numpy(), P,
                                                    multioutput="raw_values"))


def test_r2_of_a_task_with_one_label_is_nan_and_left_out(regression):
    Y, P = regression
    Y = Y.copy()
    Y[1:, 2] = np.nan
    with pytest.warns(UndefinedMetricWarning, match="task\\(s\\) 2"):
        raw = mtm.r2_score(Y, P, multioutput="raw_values")
    assert np.isnan(raw[2])
    expected = [skm.r2_score(Y[:, t], P[:, t]) for t in range(2)]
    np.testing.assert_allclose(raw[:2], expected)
    with pytest.warns(UndefinedMetricWarning):
        assert mtm.r2_score(Y, P) == pytest.approx(np.mean(expected))
    with pytest.warns(UndefinedMetricWarning):
        assert mtm.r2_score(Y, P, multioutput=[1.0, 3.0, 100.0]) == pytest.approx(
            np.average(expected, weights=[1.0, 3.0]))


def test_roc_auc_of_a_task_with_one_class_is_nan_and_left_out(binary):
    Y, S, _ = binary
    Y = Y.copy()
    Y[:, 1] = np.where(Y[:, 1] == 1, np.nan, 0.0)  # only negatives observed
    for metric in (mtm.roc_auc_score, mtm.average_precision_score):
        with pytest.warns(UndefinedMetricWarning, match="left out of the average"):
            raw = metric(Y, S, multioutput="raw_values")
        assert np.isnan(raw[1]) and not np.isnan(raw[[0, 2]]).any()
        with pytest.warns(UndefinedMetricWarning):
            assert metric(Y, S) == pytest.approx(raw[[0, 2]].mean())


def test_a_test_column_without_labels_is_nan(regression, binary):
    Y, P = regression
    Y = Y.copy()
    Y[:, 0] = np.nan
    for metric in (mtm.mean_squared_error, mtm.mean_absolute_error, mtm.r2_score):
        with pytest.warns(UndefinedMetricWarning, match="task\\(s\\) 0"):
            raw = metric(Y, P, multioutput="raw_values")
        assert np.isnan(raw[0]) and not np.isnan(raw[1:]).any()
    Yb, _, Pb = binary
    Yb = Yb.copy()
    Yb[:, 2] = np.nan
    with pytest.warns(UndefinedMetricWarning):
        assert mtm.accuracy_score(Yb, Pb) == pytest.approx(
            np.mean([skm.accuracy_score(Yb[:, t], Pb[:, t]) for t in range(2)]))


def test_no_defined_task_gives_nan_for_every_average():
    Y = np.array([[1.0, np.nan], [np.nan, 2.0]])
    P = np.zeros((2, 2))
    for multioutput in ("uniform_average", [1.0, 1.0]):
        with pytest.warns(UndefinedMetricWarning):
            assert np.isnan(mtm.r2_score(Y, P, multioutput=multioutput))


def test_string_labels_with_none_as_missing():
    Y = np.array([["cat", "x"], ["dog", None], ["dog", "y"], ["cat", "y"], ["dog", "x"],
                  ["cat", None]], dtype=object)
    labels_pred = np.array([["cat", "y"], ["dog", 0], ["cat", "y"], ["cat", "x"], ["dog", "x"],
                            ["dog", 0]], dtype=object)
    S = np.array([[0.2, 0.1], [0.9, 0.8], [0.4, 0.7], [0.6, 0.6], [0.7, 0.2], [0.1, 0.3]])
    observed = [np.arange(6), np.array([0, 2, 3, 4])]
    expected_acc = [skm.accuracy_score(Y[r, t].astype(str), labels_pred[r, t].astype(str))
                    for t, r in enumerate(observed)]
    np.testing.assert_allclose(mtm.accuracy_score(Y, labels_pred, multioutput="raw_values"),
                               expected_acc)
    # the positive class of a binary task is its last sorted label: "dog" and "y"
    expected_auc = [skm.roc_auc_score(Y[r, t].astype(str), S[r, t], labels=None)
                    for t, r in enumerate(observed)]
    np.testing.assert_allclose(mtm.roc_auc_score(Y, S, multioutput="raw_values"),
                               expected_auc)
    proba = [np.column_stack([1 - S[:, t], S[:, t]]) for t in range(2)]
    expected_ll = [skm.log_loss(Y[r, t].astype(str), proba[t][r]) for t, r in enumerate(observed)]
    np.testing.assert_allclose(mtm.log_loss(Y, proba, multioutput="raw_values"), expected_ll)
    assert mtm.log_loss(Y, proba, labels=[["cat", "dog"], ["x", "y"]]) == pytest.approx(
        np.mean(expected_ll))


@pytest.fixture
def absent_class():
    """A three-class task whose test labels miss class 2."""
    rng = np.random.RandomState(6)
    y = np.array([0, 1, 0, 1, 1, 0, 0, 1])
    P = rng.dirichlet(np.ones(3), size=y.shape[0])
    P[np.arange(y.shape[0]), y] += 1.0
    return y, P / P.sum(axis=1, keepdims=True)


def test_multiclass_log_loss_needs_labels_when_a_class_is_absent(absent_class):
    y, P = absent_class
    expected = skm.log_loss(y, P, labels=[0, 1, 2])
    assert mtm.log_loss(y, P, labels=[[0, 1, 2]]) == pytest.approx(expected, rel=1e-12)
    assert mtm.log_loss(y, P, labels=[0, 1, 2]) == pytest.approx(expected, rel=1e-12)
    Y = np.column_stack([y, np.r_[np.nan, y[1:]]])
    expected_second = skm.log_loss(y[1:], P[1:], labels=[0, 1, 2])
    np.testing.assert_allclose(
        mtm.log_loss(Y, [P, P], labels=[[0, 1, 2], [0, 1, 2]], multioutput="raw_values"),
        [expected, expected_second], rtol=1e-12)
    with pytest.raises(ValueError, match="3 columns but the task has 2 classes \\[0, 1\\]"):
        mtm.log_loss(y, P)
    with pytest.raises(ValueError, match="pass labels="):
        mtm.log_loss(Y, [P, P])


def test_multiclass_roc_auc_with_labels(absent_class):
    y, P = absent_class
    with pytest.raises(ValueError, match="3 columns but the task has 2 classes"):
        mtm.roc_auc_score(y, P)
    with pytest.raises(ValueError, match="3 columns but the task has 2 classes"):
        mtm.roc_auc_score(y, P, labels=[[0, 1]])
    # with every class observed, labels name the columns; the value is scikit-learn's
    y_full = np.r_[y, 2, 2]
    P_full = np.vstack([P, [[0.1, 0.1, 0.8], [0.3, 0.2, 0.5]]])
    expected = skm.roc_auc_score(y_full, P_full, multi_class="ovr", labels=[0, 1, 2])
    assert mtm.roc_auc_score(y_full, P_full, labels=[[0, 1, 2]]) == pytest.approx(expected)
    # a class absent from y_true: scikit-learn's one-vs-rest AUC is undefined, so NaN
    with pytest.warns(UndefinedMetricWarning):
        raw = mtm.roc_auc_score(y, P, labels=[[0, 1, 2]], multioutput="raw_values")
    assert raw.shape == (1,) and np.isnan(raw[0])
    with pytest.raises(ValueError, match="y_score is 1-D but the task has 3 classes"):
        mtm.roc_auc_score(y_full, P_full[:, 2])


def test_multiclass_roc_auc_on_long_data_with_labels():
    rng = np.random.RandomState(7)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 1, 0])
    tasks = np.array(["a"] * 6 + ["b"] * 4)
    P = rng.dirichlet(np.ones(3), size=10)
    labels = [[0, 1, 2], [0, 1, 2]]
    raw = mtm.log_loss(y, P, task_ids=tasks, labels=labels, multioutput="raw_values")
    np.testing.assert_allclose(raw, [skm.log_loss(y[:6], P[:6], labels=[0, 1, 2]),
                                     skm.log_loss(y[6:], P[6:], labels=[0, 1, 2])])


def test_shape_errors_name_the_problem(regression, mixed_proba):
    Y, P = regression
    with pytest.raises(ValueError, match="y_pred must have shape \\(40, 3\\)"):
        mtm.r2_score(Y, P[:, :2])
    with pytest.raises(ValueError, match="y_pred must have shape \\(40, 3\\)"):
        mtm.mean_squared_error(Y, P[:, 0])
    with pytest.raises(ValueError, match="y_pred has 39 rows but y_true has 40"):
        mtm.r2_score(Y, [P[:-1, 0], P[:-1, 1], P[:-1, 2]])
    with pytest.raises(ValueError, match="y_pred must have shape \\(40,\\) like y_true"):
        mtm.r2_score(Y[:, 0], P)
    with pytest.raises(ValueError, match="multioutput must be 'uniform_average', 'raw_values'"):
        mtm.mean_absolute_error(Y, P, multioutput="variance_weighted")
    with pytest.raises(ValueError, match="multioutput weights must have shape \\(3,\\)"):
        mtm.r2_score(Y, P, multioutput=[1.0, 2.0])
    with pytest.raises(ValueError, match="sample_weight must have shape \\(40,\\)"):
        mtm.r2_score(Y, P, sample_weight=np.ones(3))
    Yc, proba = mixed_proba
    with pytest.raises(ValueError, match="list of 2 arrays but y_true has 3 tasks"):
        mtm.roc_auc_score(Yc, proba[:2])
    with pytest.raises(ValueError, match="labels has classes for 2 task\\(s\\) but y_true has 3"):
        mtm.log_loss(Yc, proba, labels=[[0, 1], [0, 1, 2]])
    with pytest.raises(ValueError, match="y_score must have shape \\(40,\\) or \\(40, n_"):
        mtm.log_loss(Yc[:, 0], proba[:1])


PUBLIC_METRICS = [mtm.r2_score, mtm.mean_squared_error, mtm.mean_absolute_error,
                  mtm.accuracy_score, mtm.roc_auc_score, mtm.average_precision_score,
                  mtm.log_loss]


@pytest.mark.parametrize("metric", PUBLIC_METRICS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("layout", ["1d", "wide", "long"])
def test_empty_input_raises_a_value_error_saying_so(metric, layout):
    y = np.zeros((0, 2)) if layout == "wide" else np.zeros(0)
    task_ids = np.zeros(0) if layout == "long" else None
    with pytest.raises(ValueError, match="The target is empty \\(0 rows"):
        metric(y, y, task_ids=task_ids)
    if layout == "1d":
        with pytest.raises(ValueError, match="The target is empty"):
            mtm.per_task_scores(skm.r2_score, y, y)


@pytest.mark.parametrize("metric", PUBLIC_METRICS[4:], ids=lambda f: f.__name__)
def test_labels_with_an_empty_task_entry_raise_instead_of_indexing(metric):
    with pytest.raises(ValueError, match="non-empty 1-D array of classes per task; entry 1"):
        metric(np.array([[0, 1], [1, 0]]), np.array([[0.2, 0.8], [0.6, 0.4]]),
               labels=[[0, 1], []])


def test_scalar_predictions_raise_a_shape_error_not_an_index_error():
    with pytest.raises(ValueError, match="y_pred has 1 rows but y_true has 2"):
        mtm.r2_score(np.array([[1.0, 2.0], [2.0, 3.0]]), [0.5, 0.3])
    with pytest.raises(ValueError, match="y_pred must have shape \\(2,\\)"):
        mtm.mean_squared_error([1.0, 2.0], 0.5)


@pytest.mark.parametrize("metric", PUBLIC_METRICS[4:], ids=lambda f: f.__name__)
def test_a_class_the_model_never_saw_raises_naming_the_task(metric):
    """roc_auc and average_precision refuse a true class outside labels, as log_loss does."""
    y = np.array([0, 1, 2, 0, 1, 1])  # class 2 is not among the model's classes [0, 1]
    scores = np.array([0.1, 0.8, 0.7, 0.3, 0.6, 0.9])
    proba = np.column_stack([1 - scores, scores])
    Y = pd.DataFrame({"a": [0, 1, 0, 0, 1, 1], "b": y})
    for y_score in ([proba, proba], np.column_stack([scores, scores])):
        with pytest.raises(ValueError, match="Task 'b': y_true holds class\\(es\\) 2 that are "
                                             "not among the task's classes \\[0, 1\\]"):
            metric(Y, y_score, labels=[[0, 1], [0, 1]])
    with pytest.raises(ValueError, match="^Task 'y': y_true holds class\\(es\\) 2"):
        metric(y, scores, task_ids=["y"] * 6, labels=[[0, 1]])
    with pytest.raises(ValueError, match="^y_true holds class\\(es\\) 2"):
        metric(y, proba, labels=[0, 1])
    # also where the task's score is undefined (one class observed): roc_auc and
    # average_precision returned NaN there, with a warning, where log_loss raised
    one_class = pd.DataFrame({"a": [0, 1, 0, 0, 1, 1], "b": [2] * 6})
    with pytest.raises(ValueError, match="Task 'b': y_true holds class\\(es\\) 2 that are "
                                         "not among the task's classes \\[0, 1\\]"):
        metric(one_class, [proba, proba], labels=[[0, 1], [0, 1]])


# -- every task at once: the sums against one scikit-learn call per task ----------------------
def _per_task(sk_metric, y, p, task_ids, n_tasks, sample_weight=None, min_samples=1):
    """Brute force on long data: scikit-learn's metric on each task's rows (NaN below
    min_samples)."""
    values = np.full(n_tasks, np.nan)
    for t in range(n_tasks):
        rows = task_ids == t
        if rows.sum() >= min_samples:
            sw = None if sample_weight is None else sample_weight[rows]
            values[t] = sk_metric(y[rows], p[rows], sample_weight=sw)
    return values


@pytest.fixture
def many_tasks():
    """300 tasks of 1 to 9 labels on long data (task 0 one label, task 1 two, ...); task 1
    constant and predicted exactly, task 2 constant and predicted wrongly, task 3 constant
    at 0.1, whose mean over its 4 labels rounds away from 0.1 (scikit-learn's R^2 is then
    huge and negative, not 0)."""
    rng = np.random.RandomState(7)
    n_tasks = 300
    task_ids = np.concatenate([np.full(1 + t % 9, t) for t in range(n_tasks)])
    rng.shuffle(task_ids)
    y = rng.normal(size=len(task_ids)) * 10.0 ** rng.randint(-3, 4, size=len(task_ids))
    p = y + rng.normal(size=len(y))
    y[task_ids == 1] = p[task_ids == 1] = 0.5  # constant, predicted exactly
    y[task_ids == 2] = 0.5  # constant, predicted wrongly
    y[task_ids == 3] = 0.1
    return y, p, task_ids, n_tasks


@pytest.mark.parametrize("masked, reference, min_samples", [
    (mtm.r2_score, skm.r2_score, 2),
    (mtm.mean_squared_error, skm.mean_squared_error, 1),
    (mtm.mean_absolute_error, skm.mean_absolute_error, 1),
])
@pytest.mark.parametrize("weighted", [False, True])
def test_regression_sums_equal_sklearn_per_task(masked, reference, min_samples, weighted,
                                                many_tasks):
    """Scores from sums over every task at once (one scikit-learn call per task cost 4 ms:
    4.4 s for the score of 1,000 tasks) equal scikit-learn's on each task, constant tasks
    and tasks of one label included, with and without weights."""
    y, p, task_ids, n_tasks = many_tasks
    weights = np.random.RandomState(8).uniform(0.1, 3.0, size=len(y)) if weighted else None
    expected = _per_task(reference, y, p, task_ids, n_tasks, weights, min_samples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        values = masked(y, p, task_ids=task_ids, sample_weight=weights,
                        multioutput="raw_values")
    np.testing.assert_allclose(values, expected, rtol=1e-11, atol=1e-14)
    if masked is mtm.r2_score:
        assert values[1] == 1.0 and values[2] == 0.0 and np.isnan(values[9])


def test_the_sums_leave_to_sklearn_only_what_they_do_not_decide(many_tasks, monkeypatch):
    """One scikit-learn call per task that the sums leave (here 3 constant tasks: R^2's
    force_finite rule), none for the other 297; and the tasks of one label are NaN with
    the warning naming them."""
    y, p, task_ids, n_tasks = many_tasks
    calls = []
    original = skm.r2_score

    def counted(y_t, p_t, **kwargs):
        calls.append(len(y_t))
        return original(y_t, p_t, **kwargs)

    monkeypatch.setattr(skm, "r2_score", counted)
    with pytest.warns(UndefinedMetricWarning, match=r"task\(s\) 0, 9, 18"):
        mtm.r2_score(y, p, task_ids=task_ids)
    assert len(calls) == 3
    monkeypatch.setattr(skm, "mean_squared_error", lambda *a, **k: pytest.fail("called"))
    mtm.mean_squared_error(y, p, task_ids=task_ids)


def test_the_sums_keep_sklearns_errors_naming_the_task(many_tasks):
    """A non-finite prediction, a task whose weights sum to 0, labels or predictions of a
    type the sums do not take: the task is scored by scikit-learn, whose error (or result)
    is the same as before."""
    y, p, task_ids, n_tasks = many_tasks
    bad = p.copy()
    bad[np.flatnonzero(task_ids == 5)[0]] = np.nan
    with pytest.raises(ValueError, match="^Task 5: .*NaN"):
        mtm.mean_squared_error(y, bad, task_ids=task_ids)
    weights = np.ones(len(y))
    weights[task_ids == 7] = 0.0
    with pytest.raises(Exception) as caught, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        skm.mean_squared_error(y[task_ids == 7], p[task_ids == 7],
                               sample_weight=weights[task_ids == 7])
    with pytest.raises(type(caught.value)), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mtm.mean_squared_error(y, p, task_ids=task_ids, sample_weight=weights)
    with pytest.raises(ValueError, match="^Task 1: "):
        mtm.r2_score(y, np.full(len(y), "x"), task_ids=task_ids)


@pytest.mark.parametrize("kind", ["int", "float", "str", "bool"])
@pytest.mark.parametrize("layout", ["wide", "long"])
def test_accuracy_sums_equal_sklearn_per_task(kind, layout):
    """Accuracy from sums equals scikit-learn's on each task, with weights, for labels that
    are integers, whole floats, strings or booleans, on wide (missing labels) and long
    data."""
    rng = np.random.RandomState(9)
    n, n_tasks = 400, 40
    codes = rng.randint(3 if kind != "bool" else 2, size=(n, n_tasks))
    flips = np.where(rng.uniform(size=codes.shape) < 0.3, 1, 0)
    predicted = (codes + flips) % (3 if kind != "bool" else 2)
    cast = {"int": lambda c: c, "float": lambda c: c.astype(float),
            "str": lambda c: np.array(["a", "b", "c"])[c], "bool": lambda c: c.astype(bool)}
    Y, P = cast[kind](codes), cast[kind](predicted)
    mask = rng.uniform(size=codes.shape) < 0.5
    mask[:2] = True
    weights = rng.uniform(0.5, 2.0, size=n)
    expected = [skm.accuracy_score(Y[mask[:, t], t], P[mask[:, t], t],
                                   sample_weight=weights[mask[:, t]]) for t in range(n_tasks)]
    if layout == "long":
        rows, tasks = np.nonzero(mask)
        values = mtm.accuracy_score(Y[rows, tasks], P[rows, tasks], task_ids=tasks,
                                    sample_weight=weights[rows], multioutput="raw_values")
    else:
        Yw = Y.astype(object)
        Yw[~mask] = None
        values = mtm.accuracy_score(Yw, P, sample_weight=weights, multioutput="raw_values")
    np.testing.assert_allclose(values, expected, rtol=1e-12)


def test_accuracy_of_labels_sklearn_refuses_still_raises():
    """Predictions that are not class labels (continuous), or of another type than the true
    labels: scikit-learn's error, as before, with the task in front."""
    y = np.array([0, 1, 1, 0])
    with pytest.raises(ValueError, match="^Task 0: .*continuous"):
        mtm.accuracy_score(y, [0.2, 0.9, 0.4, 0.1], task_ids=[0, 0, 1, 1])
    with pytest.raises(ValueError, match="^Task 0: "):
        mtm.accuracy_score(y, ["a", "b", "b", "a"], task_ids=[0, 0, 1, 1])


# -- scores of binary tasks and log loss, every task at once ----------------------------------
def _score_tasks(kind, rng, n_tasks=120):
    """Long data of ``n_tasks`` tasks of 2 to 30 labels (``kind`` "int", "str" or "bool"),
    both classes in every task but task 0 (one class: no AUC), scores rounded to one
    decimal (ties within a task), two-column probabilities; returns ``(y, proba, task_ids,
    labels)`` with ``labels`` each task's classes."""
    sizes = 2 + np.arange(n_tasks) % 29
    task_ids = np.repeat(np.arange(n_tasks), sizes)
    codes = rng.randint(2, size=len(task_ids))
    starts = np.cumsum(sizes) - sizes
    codes[starts], codes[starts + 1] = 0, 1
    codes[task_ids == 0] = 1
    positive = np.round(np.clip(0.3 * codes + rng.uniform(0.0, 0.7, size=len(codes)), 0, 1), 1)
    proba = np.column_stack([1.0 - positive, positive])
    classes = {"int": np.array([3, 7]), "str": np.array(["no", "yes"]),
               "bool": np.array([False, True])}[kind]
    order = rng.permutation(len(task_ids))
    return classes[codes][order], proba[order], task_ids[order], [classes] * n_tasks


_SCORE_METRICS = {
    "roc_auc": (mtm.roc_auc_score, lambda y, p, c, sw: skm.roc_auc_score(
        y == c[-1], p[:, 1], sample_weight=sw)),
    "average_precision": (mtm.average_precision_score, lambda y, p, c, sw:
                          skm.average_precision_score(y == c[-1], p[:, 1], sample_weight=sw)),
    "log_loss": (mtm.log_loss, lambda y, p, c, sw: skm.log_loss(y, p, sample_weight=sw,
                                                                 labels=c)),
}


@pytest.mark.parametrize("name", list(_SCORE_METRICS))
@pytest.mark.parametrize("kind", ["int", "str", "bool"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("layout", ["long", "long 1-D", "wide list", "wide 2-D"])
def test_score_sums_equal_sklearn_per_task(name, kind, weighted, layout, monkeypatch):
    """ROC-AUC, average precision and log loss of every task at once equal scikit-learn's on
    each task (tied scores, weights of 0 among them, a one-class task), with and without
    ``labels``, from two-column probabilities or the positive class's score, on long and
    wide data; scikit-learn is called for no task (one call cost 1 to 4 ms: 2.4 s for the
    ROC-AUC of 1,000 tasks)."""
    masked, reference = _SCORE_METRICS[name]
    rng = np.random.RandomState(11)
    y, proba, task_ids, labels = _score_tasks(kind, rng)
    n_tasks = len(labels)
    weights = None
    if weighted:
        weights = rng.uniform(0.2, 3.0, size=len(y))
        weights[rng.uniform(size=len(y)) < 0.1] = 0.0
        for t in range(n_tasks):  # both classes keep some weight
            rows = np.flatnonzero(task_ids == t)
            weights[rows[y[rows] == labels[t][0]][:1]] = 1.0
            weights[rows[y[rows] == labels[t][-1]][:1]] = 1.0
    expected = np.full(n_tasks, np.nan)
    for t in range(n_tasks):
        rows = task_ids == t
        sw = None if weights is None else weights[rows]
        if name == "log_loss" or len(np.unique(y[rows])) == 2:
            expected[t] = reference(y[rows], proba[rows], labels[t], sw)
    for function in ("roc_auc_score", "average_precision_score", "log_loss"):
        monkeypatch.setattr(skm, function, lambda *a, **k: pytest.fail("called"))
    with_labels = layout in ("long", "wide list") or name == "log_loss"
    kwargs = {"sample_weight": weights, "multioutput": "raw_values",
              "labels": labels if with_labels else None}
    if layout.startswith("long"):
        scores = proba if layout == "long" else proba[:, 1]
        kwargs["task_ids"] = task_ids
        target = y
    else:  # one row per label, every other task's label missing there
        target = np.full((len(y), n_tasks), None, dtype=object)
        target[np.arange(len(y)), task_ids] = y
        scores = rng.uniform(size=(len(y), n_tasks))  # behind the mask: never read
        scores[np.arange(len(y)), task_ids] = proba[:, 1]
        if layout == "wide list":
            scores = [np.column_stack([1.0 - s, s]) for s in scores.T]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        values = masked(target, scores, **kwargs)
    np.testing.assert_allclose(values, expected, rtol=1e-12, atol=1e-15)
    assert np.isnan(values[0]) == (name != "log_loss")


def test_score_sums_leave_to_sklearn_what_they_do_not_decide():
    """A task with a NaN score, one whose probabilities do not sum to 1, one with a label
    outside its classes, or more classes than a 1-D score takes is left to scikit-learn (or
    to the check of the labels): the same value, error or warning as before, naming the
    task."""
    rng = np.random.RandomState(12)
    y, proba, task_ids, labels = _score_tasks("int", rng, n_tasks=20)
    bad = proba.copy()
    bad[np.flatnonzero(task_ids == 5)[0]] = np.nan
    for metric in (mtm.roc_auc_score, mtm.average_precision_score, mtm.log_loss):
        with pytest.raises(ValueError, match="^Task 5: .*NaN"):
            metric(y, bad, task_ids=task_ids, labels=labels)
    off = proba.copy()
    off[task_ids == 6] *= 0.5
    with pytest.warns(UserWarning, match="do not sum to one"):
        mtm.log_loss(y, off, task_ids=task_ids, labels=labels)
    other = y.copy()
    other[np.flatnonzero(task_ids == 7)[0]] = 9
    for metric in (mtm.roc_auc_score, mtm.average_precision_score, mtm.log_loss):
        with pytest.raises(ValueError, match=r"^Task 7: y_true holds class\(es\) 9"):
            metric(other, proba, task_ids=task_ids, labels=labels)
    with pytest.raises(ValueError, match="^Task 7: y_score is 1-D but the task has 3"):
        mtm.roc_auc_score(other, proba[:, 1], task_ids=task_ids)
    greater = proba.copy()
    greater[task_ids == 8] *= 2.0
    with pytest.raises(ValueError, match="^Task 8: y_prob contains values greater than 1"):
        mtm.log_loss(y, greater, task_ids=task_ids, labels=labels)


@pytest.mark.parametrize("vectorized", [True, False])
def test_log_loss_reads_the_columns_in_the_order_of_labels(monkeypatch, vectorized):
    """``labels`` name y_score's columns in their order, also out of sorted order (as for
    average precision): the value is scikit-learn's on the columns put in sorted label order,
    with no warning; the same per task and at once."""
    if vectorized:  # every task at once: no per-task call
        monkeypatch.setattr(masked_module, "_log_loss", None)
    else:
        monkeypatch.setattr(masked_module, "_score_sums", lambda kind, labels: None)
    rng = np.random.RandomState(14)
    y = np.array(["pos", "neg", "pos", "neg", "pos", "pos"])
    positive = rng.uniform(0.05, 0.95, size=len(y))
    columns = np.column_stack([positive, 1.0 - positive])  # "pos", then "neg"
    expected = skm.log_loss(y, columns[:, ::-1], labels=["neg", "pos"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mtm.log_loss(y, columns, labels=[["pos", "neg"]]) == pytest.approx(
            expected, rel=1e-12)
        # a 1-D score is the last class's ("neg") probability
        assert mtm.log_loss(y, 1.0 - positive, labels=[["pos", "neg"]]) == pytest.approx(
            expected, rel=1e-12)
    three = np.array(["c", "a", "b"])
    y3 = three[rng.randint(0, 3, size=30)]
    proba = rng.dirichlet(np.ones(3), size=30)  # columns "c", "a", "b"
    order = np.argsort(three)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = mtm.log_loss(y3, proba, labels=[three])
    assert value == pytest.approx(skm.log_loss(y3, proba[:, order], labels=three[order]),
                                  rel=1e-12)


def test_multiclass_scores_with_labels_equal_sklearn_per_task():
    """Three-class tasks: log loss at once, the one-vs-rest ROC-AUC per task, both as
    scikit-learn computes them on each task."""
    rng = np.random.RandomState(13)
    n_tasks, classes = 30, np.array(["a", "b", "c"])
    task_ids = np.repeat(np.arange(n_tasks), 12)
    codes = np.concatenate([rng.permutation(np.tile(np.arange(3), 4)) for _ in range(n_tasks)])
    proba = rng.dirichlet(np.ones(3), size=len(codes))
    y, labels = classes[codes], [classes] * n_tasks
    for masked, reference in ((mtm.log_loss, skm.log_loss),
                              (mtm.roc_auc_score, lambda *a, **k: skm.roc_auc_score(
                                  *a, multi_class="ovr", **k))):
        expected = [reference(y[task_ids == t], proba[task_ids == t], labels=classes)
                    for t in range(n_tasks)]
        values = masked(y, proba, task_ids=task_ids, labels=labels, multioutput="raw_values")
        np.testing.assert_allclose(values, expected, rtol=1e-12)

