"""The data contract: every accepted target format, and every bad input's error."""

import warnings

import numpy as np
import pandas as pd
import pytest

from skmtl.utils.validation import (
    UnknownTaskError,
    check_multitask_target,
    check_task_ids,
    encode_target_classes,
    encode_task_classes,
    encode_task_ids,
    missing_mask,
)


def test_missing_mask_recognises_nan_none_and_pd_na():
    values = np.array([1.0, None, np.nan, pd.NA, "a"], dtype=object)
    assert missing_mask(values).tolist() == [False, True, True, True, False]
    assert missing_mask(np.array([1, 2])).tolist() == [False, False]


def test_1d_target_is_one_task():
    target = check_multitask_target([1.0, 2.0, 3.0], y_numeric=True)
    assert target.layout == "1d"
    assert target.values.shape == (3, 1) and target.mask.all()
    assert target.tasks.tolist() == [0]


def test_wide_target_masks_nan_and_fills_zero_behind_mask():
    Y = np.array([[1.0, np.nan], [np.nan, 3.0], [2.0, 4.0]])
    target = check_multitask_target(Y, y_numeric=True)
    assert target.layout == "wide"
    np.testing.assert_array_equal(target.mask, ~np.isnan(Y))
    np.testing.assert_array_equal(target.values, np.nan_to_num(Y))
    assert Y[0, 1] != Y[0, 1], "the caller's Y must not be modified"


def test_wide_fully_observed_float_target_is_not_copied():
    Y = np.arange(6.0).reshape(3, 2)
    assert check_multitask_target(Y, y_numeric=True).values is Y


def test_dataframe_columns_name_the_tasks_and_pd_na_is_missing():
    frame = pd.DataFrame({"maths": [1.0, None, 3.0], "reading": pd.array([1, pd.NA, 2], "Int64")})
    target = check_multitask_target(frame, y_numeric=True)
    assert target.tasks.tolist() == ["maths", "reading"]
    assert target.mask.tolist() == [[True, True], [False, False], [True, True]]
    assert target.values[2].tolist() == [3.0, 2.0]


def test_string_labels_with_none_keep_per_task_classes():
    Y = np.array([["cat", "yes"], ["dog", None], [None, "no"]], dtype=object)
    target = check_multitask_target(Y, y_numeric=False)
    codes, classes = encode_task_classes(target.values, target.mask)
    assert [c.tolist() for c in classes] == [["cat", "dog"], ["no", "yes"]]
    assert codes[target.mask].tolist() == [0, 1, 1, 0]


@pytest.mark.parametrize("kind", ["object", "pandas"])
def test_boolean_labels_with_missing_ones_stay_booleans(kind):
    """True / False with None (or a pandas "boolean" column with pd.NA) are the classes
    False and True, as without missing labels; they were the numbers 0.0 and 1.0, and a
    classifier predicted floats."""
    from skmtl.linear import MeanClusteredClassifier

    values = [[True, False], [None, True], [False, None], [True, True], [False, False]]
    Y = np.array(values, dtype=object)
    if kind == "pandas":
        Y = pd.DataFrame(Y).astype("boolean")
    target = check_multitask_target(Y, y_numeric=False)
    codes, classes = encode_task_classes(target.values, target.mask)
    assert [c.tolist() for c in classes] == [[False, True], [False, True]]
    assert all(c.dtype == bool for c in classes)
    assert codes[target.mask].tolist() == [1, 0, 1, 0, 1, 1, 0, 0]
    X = np.arange(10.0).reshape(5, 2)
    prediction = MeanClusteredClassifier().fit(X, Y).predict(X)
    assert prediction.dtype == bool


def test_long_target_becomes_wide_with_one_observed_entry_per_row():
    target = check_multitask_target([5.0, 6.0, 7.0], task_ids=["b", "a", "b"], y_numeric=True)
    assert target.layout == "long"
    assert target.tasks.tolist() == ["a", "b"]
    assert target.task_index.tolist() == [1, 0, 1]
    assert target.mask.sum(axis=1).tolist() == [1, 1, 1]
    assert target.values[target.mask].tolist() == [5.0, 6.0, 7.0]


@pytest.mark.parametrize(
    ("y", "task_ids", "y_numeric", "message"),
    [
        (np.array([[1.0, np.nan], [2.0, np.nan]]), None, True, r"Task\(s\) 1 have no observed"),
        (np.array([[1.0, np.inf], [2.0, 1.0]]), None, True, r"infinity in task\(s\) 1"),
        ([1.0, np.inf], [0, 1], True, r"infinity for task\(s\) 1"),
        ([1.0, np.nan], None, True, "Input y contains NaN"),
        ([1.0, np.nan], [0, 1], True, "missing labels in long format"),
        (np.ones((2, 2)), [0, 1], True, "task_ids is given, so y must be 1-D"),
        (np.ones((2, 2, 2)), None, True, "1-D or 2-D"),
        ([1.0, 2.0], [0, None], True, "task_ids contains missing values"),
        ([1.0, 2.0], [0, 1, 2], True,
         "task_ids has 3 entries but the data have 2 rows: one task id per row."),
        (np.array([["a", 1.5]], dtype=object), None, True, "must be numeric"),
        (np.array([[0.5, 1.0], [0.25, 0.0]]), None, False, "Task 0: Unknown label type"),
        ([1.0, 2.0], np.array(["a", 1], dtype=object), True, "mixes types"),
    ],
)
def test_bad_targets_raise_errors_naming_the_problem(y, task_ids, y_numeric, message):
    with pytest.raises(ValueError, match=message):
        check_multitask_target(y, task_ids, y_numeric=y_numeric)


@pytest.mark.parametrize(
    ("y", "task_ids", "message"),
    [
        (np.array([[1.0, 0.0], [np.inf, 1.0]]), None, "Task 0: Input y contains infinity"),
        ([0.0, 1.0, np.inf], [0, 0, 1], "Task 1: Input y contains infinity"),
        ([0.0, np.inf], None, "Input y contains infinity; class labels must be finite"),
    ],
)
def test_an_infinite_class_label_raises_without_a_runtime_warning(y, task_ids, message):
    """scikit-learn's check casts an infinite label to an integer (a RuntimeWarning) before it
    raises: the label is refused before that."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=message):
            check_multitask_target(y, task_ids, y_numeric=False)


def test_frame_task_name_is_in_the_error():
    frame = pd.DataFrame({"maths": [1.0, 2.0], "art": [np.nan, np.nan]})
    with pytest.raises(ValueError, match="'art' have no observed label"):
        check_multitask_target(frame, y_numeric=True)


def test_require_all_tasks_false_allows_an_empty_column():
    target = check_multitask_target(np.array([[1.0, np.nan]]), y_numeric=True,
                                    require_all_tasks=False)
    assert target.mask.tolist() == [[True, False]]


def test_encode_task_ids_names_unknown_tasks():
    tasks = np.array(["a", "b"])
    assert encode_task_ids(np.array(["b", "a", "b"]), tasks).tolist() == [1, 0, 1]
    with pytest.raises(UnknownTaskError, match="not seen during fit: 'zz'"):
        encode_task_ids(np.array(["a", "zz"]), tasks)
    assert issubclass(UnknownTaskError, ValueError)


def test_check_task_ids_rejects_2d():
    with pytest.raises(ValueError, match="must be 1-D"):
        check_task_ids(np.zeros((2, 2)), 2)


def test_long_targets_are_not_densified_by_baselines_metrics_and_folds(monkeypatch):
    """Long data stays (n,): fit, predict with task_ids, score and folds never build (n, T)."""
    from sklearn.linear_model import Ridge

    from skmtl import IndependentTasks, PooledTasks
    from skmtl.metrics import r2_score
    from skmtl.model_selection import MultiTaskKFold
    from skmtl.utils.validation import MultiTaskTarget

    def refuse(self):
        raise AssertionError("the dense (n_samples, n_tasks) form was built for long data")

    monkeypatch.setattr(MultiTaskTarget, "values", property(refuse))
    monkeypatch.setattr(MultiTaskTarget, "mask", property(refuse))
    rng = np.random.RandomState(0)
    task_ids = np.repeat(np.arange(300), 4)
    X = rng.normal(size=(task_ids.size, 3))
    y = X @ [1.0, -1.0, 0.5] + rng.normal(size=task_ids.size)
    for model in (IndependentTasks(Ridge()), PooledTasks(Ridge())):
        model.fit(X, y, task_ids=task_ids)
        assert np.isfinite(model.score(X, y, task_ids=task_ids))
    assert r2_score(y, y, task_ids=task_ids) == 1.0
    folds = list(MultiTaskKFold(2).split(X, y, task_ids=task_ids))
    assert len(folds) == 2


def test_long_target_dense_form_matches_its_observations():
    target = check_multitask_target([5.0, 6.0, 7.0], task_ids=["b", "a", "b"], y_numeric=True)
    rows, tasks, labels = target.observations()
    assert rows.tolist() == [0, 1, 2] and tasks.tolist() == [1, 0, 1]
    np.testing.assert_array_equal(target.values[rows, tasks], labels)
    assert [r.tolist() for r in target.task_rows()] == [[1], [0, 2]]


def test_binary_problem_has_one_label_set_and_one_class_tasks_keep_both():
    Y = np.array([["no", "yes"], ["yes", "yes"], ["no", None]], dtype=object)
    target = check_multitask_target(Y, y_numeric=False)
    codes, classes = encode_task_classes(target.values, target.mask)
    assert [c.tolist() for c in classes] == [["no", "yes"], ["no", "yes"]]
    assert codes[target.mask].tolist() == [0, 1, 1, 1, 0]  # row-major observed entries
    # long data: the same codes and classes without densifying
    rows, cols = np.nonzero(target.mask)
    long = check_multitask_target(Y[rows, cols], cols, y_numeric=False)
    long_codes, long_classes = encode_target_classes(long)
    assert [c.tolist() for c in long_classes] == [["no", "yes"], ["no", "yes"]]
    np.testing.assert_array_equal(long_codes, codes[rows, cols])


@pytest.mark.parametrize("Y, expected", [
    # a multiclass problem: each task keeps its own classes, a one-class task included
    (np.array([[0, 2], [1, 2], [2, 2]]), [[0, 1, 2], [2]]),
    # strings and numbers are never one label set
    (np.array([["a", 1], ["b", 1]], dtype=object), [["a", "b"], [1]]),
])
def test_label_sets_stay_per_task_outside_binary_problems(Y, expected):
    target = check_multitask_target(Y, y_numeric=False)
    _, classes = encode_task_classes(target.values, target.mask)
    assert [c.tolist() for c in classes] == expected


def test_a_single_task_with_one_class_is_not_made_binary():
    target = check_multitask_target(np.array([[1], [1]]), y_numeric=False)
    assert [c.tolist() for c in encode_task_classes(target.values, target.mask)[1]] == [[1]]


def test_encode_task_ids_marks_unknown_tasks_when_allowed():
    tasks = np.array(["a", "b"])
    index = encode_task_ids(np.array(["b", "zz", "a"]), tasks, allow_unknown=True)
    assert index.tolist() == [1, -1, 0]


def test_duplicated_task_columns_raise_naming_them_in_fit_and_score():
    from sklearn.linear_model import Ridge

    from skmtl import IndependentTasks

    rng = np.random.RandomState(0)
    X, values = rng.normal(size=(8, 2)), rng.normal(size=(8, 4))
    duplicated = pd.DataFrame(values, columns=["a", "b", "a", "b"])
    message = "Y has duplicated column name\\(s\\) 'a', 'b'; each column is a task"
    with pytest.raises(ValueError, match=message):
        check_multitask_target(duplicated, y_numeric=True)
    with pytest.raises(ValueError, match=message):
        IndependentTasks(Ridge()).fit(X, duplicated)
    model = IndependentTasks(Ridge()).fit(X, pd.DataFrame(values, columns=list("abcd")))
    with pytest.raises(ValueError, match=message):
        model.score(X, duplicated)
    with pytest.raises(ValueError, match="do not match the tasks seen in fit"):
        model.score(X, pd.DataFrame(values, columns=list("abdc")))


@pytest.mark.parametrize("y, task_ids", [(np.zeros(0), None), (np.zeros((0, 3)), None),
                                          (np.zeros(0), np.zeros(0))])
def test_an_empty_target_raises_saying_so(y, task_ids):
    with pytest.raises(ValueError, match="The target is empty \\(0 rows"):
        check_multitask_target(y, task_ids, y_numeric=True)


def test_a_scipy_sparse_target_is_refused_with_the_long_form_that_keeps_its_entries():
    """Its implicit zeros are not missing labels: refused, naming its shape; the advice (its
    stored entries as long data) fits the same model as the wide target they stand for."""
    import scipy.sparse as sp
    from sklearn.linear_model import Ridge

    from skmtl import IndependentTasks

    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 3))
    dense = np.where(rng.uniform(size=(40, 3)) < 0.5, X @ rng.normal(size=(3, 3)), np.nan)
    dense[0] = 0.0  # stored zeros are labels too
    c = sp.coo_matrix((dense[~np.isnan(dense)], np.nonzero(~np.isnan(dense))), shape=dense.shape)
    for y in (c.tocsr(), c):
        with pytest.raises(ValueError, match=r"y is a scipy.sparse matrix of shape \(40, 3\), "
                                             r"which skmtl does not take as a target.*"
                                             r"c = y.tocoo\(\); fit\(X\[c.row\], c.data"):
            check_multitask_target(y, y_numeric=True)
    long = IndependentTasks(Ridge()).fit(X[c.row], c.data, task_ids=c.col)
    wide = IndependentTasks(Ridge()).fit(X, dense)
    np.testing.assert_allclose(long.predict(X), wide.predict(X), rtol=1e-12)


@pytest.mark.parametrize("y_numeric", [True, False])
@pytest.mark.parametrize("layout", ["1d", "wide", "long"])
def test_a_complex_target_is_refused(layout, y_numeric):
    """numpy cast it to real, dropping the imaginary part with a ComplexWarning (the wrappers,
    which leave X to the wrapped estimator, reached that cast first)."""
    y = np.arange(6) + 1j * np.arange(6)
    task_ids = np.arange(6) % 2 if layout == "long" else None
    y = np.c_[y, y] if layout == "wide" else y
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="Complex data not supported: y contains "
                                             "complex values; a target must be real"):
            check_multitask_target(y, task_ids, y_numeric=y_numeric)


@pytest.mark.parametrize(("big", "dtype"), [(10**19, np.uint64), (10**22, object)])
@pytest.mark.parametrize("layout", ["wide", "long"])
def test_whole_number_labels_beyond_int64_are_kept_exactly(big, dtype, layout):
    """10000000000000000001 was an OverflowError (cast to int64); as a float it would be one
    class with 10000000000000000000. Labels take uint64 where they fit, else stay as they
    are (Python ints)."""
    labels = [big + 1, big, big + 1, big, big, big + 1]
    if layout == "wide":
        target = check_multitask_target(np.array([[v, v] for v in labels], dtype=object),
                                        y_numeric=False)
    else:
        target = check_multitask_target(np.array(labels, dtype=object),
                                        task_ids=["a", "b"] * 3, y_numeric=False)
    codes, classes = encode_target_classes(target)
    assert [c.dtype for c in classes] == [np.dtype(dtype)] * 2
    assert [c.tolist() for c in classes] == [[big, big + 1]] * 2
    decoded = (classes[0][codes[:, 0]] if layout == "wide"
               else [classes[t][c] for t, c in zip(target.task_index, codes)])
    assert [int(v) for v in decoded] == labels


def test_encode_task_ids_maps_each_distinct_label_as_a_lookup_per_row_would():
    """One lookup per distinct label (then an index per row) gives every row's position in
    tasks, for strings, integers given as other integer or float types, object arrays of
    Python and numpy numbers, and labels that cannot be ordered (one lookup per row)."""
    rng = np.random.default_rng(0)
    tasks = np.array(["b", "a", "c"], dtype=object)
    labels = rng.choice(["a", "b", "c"], size=1_000)
    expected = [{"b": 0, "a": 1, "c": 2}[v] for v in labels]
    assert encode_task_ids(labels, tasks).tolist() == expected
    ints = rng.integers(5, size=1_000)
    for form in (ints.astype(np.int32), ints.astype(float), ints.astype(object)):
        assert encode_task_ids(form, np.arange(5)).tolist() == ints.tolist()
    mixed = np.array([1, "x", np.int64(1), "x", 2.0], dtype=object)
    index = encode_task_ids(mixed, np.array([1, 2, "x"], dtype=object))
    assert index.tolist() == [0, 2, 0, 2, 1]
    assert encode_task_ids(mixed, np.array([1, "x"], dtype=object),
                           allow_unknown=True).tolist() == [0, 1, 0, 1, -1]
    with pytest.raises(UnknownTaskError, match="not seen during fit: 7"):
        encode_task_ids(np.array([0, 7, 7, 1]), np.arange(5))


def test_class_labels_are_checked_per_task_only_where_needed(monkeypatch):
    """Integers, booleans, strings and whole floats below 2**53 pass scikit-learn's check of
    class labels in every task: one look at them all, wide or long, not one check per task
    (0.4 ms a task). Continuous floats, and floats beyond 2**53, still get the per-task
    check, whose error names the task."""
    import skmtl.utils.validation as validation

    rng = np.random.RandomState(0)
    codes = rng.randint(3, size=(30, 50)).astype(float)
    codes[rng.uniform(size=codes.shape) < 0.3] = np.nan
    calls = []
    original = validation._check_task_classes
    monkeypatch.setattr(validation, "_check_task_classes",
                        lambda labels, task: (calls.append(task), original(labels, task)))
    for Y in (codes, np.where(np.isnan(codes), np.nan, codes - 1e15),
              np.array(["a", "b", "c"])[np.nan_to_num(codes).astype(int)]):
        check_multitask_target(Y, None, y_numeric=False, require_all_tasks=False)
    check_multitask_target(codes[:, :3] > 1, None, y_numeric=False)
    text = np.array(["a", "b", "c"], dtype=object)[np.nan_to_num(codes).astype(int)]
    text[np.isnan(codes)] = None  # strings with None as missing: an object array
    check_multitask_target(text, None, y_numeric=False, require_all_tasks=False)
    assert calls == []
    continuous = codes.copy()
    continuous[np.flatnonzero(~np.isnan(codes[:, 4]))[0], 4] = 0.5
    with pytest.raises(ValueError, match="^Task 4: Unknown label type: continuous"):
        check_multitask_target(continuous, None, y_numeric=False)
    assert calls == [0, 1, 2, 3, 4]
    calls.clear()
    check_multitask_target(np.where(np.isnan(codes), np.nan, codes + 2.0**53), None,
                           y_numeric=False)
    assert len(calls) == 50
    # long data: the same, its labels tightened first (an object column of str or int)
    calls.clear()
    task_ids = np.repeat(np.arange(40), 5)
    for y in (np.arange(200) % 3, (np.arange(200) % 2).astype(object),
              np.array(["a", "b"] * 100, dtype=object), np.arange(200) % 2 == 0):
        check_multitask_target(y, task_ids, y_numeric=False)
    assert calls == []
    y = (np.arange(200) % 3).astype(float)
    y[17] = 0.5
    with pytest.raises(ValueError, match="^Task 3: Unknown label type: continuous"):
        check_multitask_target(y, task_ids, y_numeric=False)
    assert calls == [0, 1, 2, 3]
