"""MultiTaskKFold: every task in every training fold, balanced folds, routing of task_ids."""

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.linear_model import Ridge
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    StratifiedKFold,
    cross_val_score,
    cross_validate,
)

from skmtl import IndependentTasks
from skmtl.model_selection import MultiTaskKFold


def fold_of(cv, X, y, **params):
    """Test fold of each row; checks that the test folds partition the rows."""
    n = len(y)
    folds = np.full(n, -1)
    splits = list(cv.split(X, y, **params))
    assert len(splits) == cv.get_n_splits(X, y, **params) == cv.n_splits
    for k, (train, test) in enumerate(splits):
        assert np.all(folds[test] == -1), "a row is in two test folds"
        folds[test] = k
        np.testing.assert_array_equal(np.sort(np.concatenate((train, test))), np.arange(n))
        assert np.intersect1d(train, test).size == 0
    assert np.all(folds >= 0), "a row is in no test fold"
    return folds


def per_fold(folds, rows, K):
    return np.bincount(folds[rows], minlength=K)


def random_wide(seed, *, binary):
    """Random wide Y, 70 % of labels missing; every task has >= 2 labels (of each class)."""
    rng = np.random.RandomState(seed)
    n, T, K = rng.randint(30, 160), rng.randint(2, 12), rng.randint(2, 7)
    Y = (rng.uniform(size=(n, T)) < 0.35).astype(float) if binary else rng.normal(size=(n, T))
    Y[rng.uniform(size=(n, T)) < 0.7] = np.nan
    for t in range(T):
        if binary:
            for value in (0.0, 1.0):
                while (Y[:, t] == value).sum() < 2:
                    Y[rng.randint(n), t] = value
        while (~np.isnan(Y[:, t])).sum() < 2:
            Y[rng.randint(n), t] = 0.5
    return Y, K


def long_data(seed, *, binary=False):
    """65 tasks of 2 to 60 rows each, rows of a task not contiguous."""
    rng = np.random.RandomState(seed)
    sizes = np.concatenate(([2, 2, 3, 60], rng.randint(2, 61, size=61)))
    task_ids = rng.permutation(np.repeat(np.arange(65), sizes))
    if binary:  # >= 1 label of each class per task: first rows 0, 1 then random
        y = rng.randint(0, 2, size=task_ids.size)
        for t in range(65):
            rows = np.flatnonzero(task_ids == t)
            y[rows[:2]] = [0, 1]
    else:
        y = rng.normal(size=task_ids.size) + task_ids
    X = rng.normal(size=(task_ids.size, 3))
    return X, y, task_ids


@pytest.mark.parametrize("seed", range(40))
def test_wide_regression_keeps_every_task_in_every_training_fold(seed):
    Y, K = random_wide(seed, binary=False)
    cv = MultiTaskKFold(K, shuffle=seed % 2 == 0, random_state=seed if seed % 2 == 0 else None)
    folds = fold_of(cv, np.zeros((len(Y), 2)), Y)
    sizes = np.bincount(folds, minlength=K)
    assert sizes.max() - sizes.min() <= 1
    for t in range(Y.shape[1]):
        counts = per_fold(folds, ~np.isnan(Y[:, t]), K)
        assert np.all(counts.sum() - counts >= 1), f"task {t} missing from a training fold"
        if counts.sum() >= K:
            assert np.all(counts >= 1), f"task {t} missing from a test fold"
        assert counts.max() - counts.min() <= 2


@pytest.mark.parametrize("seed", range(40))
def test_wide_binary_keeps_both_classes_in_every_training_fold(seed):
    Y, K = random_wide(100 + seed, binary=True)
    cv = MultiTaskKFold(K, shuffle=seed % 2 == 1, random_state=seed if seed % 2 == 1 else None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "single class" warning: every class has >= 2
        folds = fold_of(cv, np.zeros((len(Y), 2)), Y)
    sizes = np.bincount(folds, minlength=K)
    assert sizes.max() - sizes.min() <= 1
    for t in range(Y.shape[1]):
        counts = per_fold(folds, ~np.isnan(Y[:, t]), K)
        if counts.sum() >= K:
            assert np.all(counts >= 1), f"task {t} missing from a test fold"
        for value in (0.0, 1.0):
            class_counts = per_fold(folds, Y[:, t] == value, K)
            assert np.all(class_counts.sum() - class_counts >= 1), (
                f"class {value} of task {t} missing from a training fold")


@pytest.mark.parametrize("seed", range(150))
def test_wide_splits_whenever_a_valid_split_exists(seed):
    # Small overlapping tasks of 2-3 labels: brute force over all balanced assignments says
    # whether a split keeping every task in every training fold exists; the splitter must
    # find one exactly then, and otherwise raise.
    rng = np.random.RandomState(seed)
    n, T, K = rng.randint(5, 9), rng.randint(2, 7), rng.choice([2, 3])
    mask = np.zeros((n, T), dtype=bool)
    for t in range(T):
        mask[rng.choice(n, rng.randint(2, 4), replace=False), t] = True
    Y = np.where(mask, rng.normal(size=(n, T)), np.nan)
    assignments = np.array(list(itertools.product(range(K), repeat=n)))
    sizes = np.stack([(assignments == k).sum(axis=1) for k in range(K)], axis=1)
    assignments = assignments[sizes.max(axis=1) - sizes.min(axis=1) <= 1]
    valid = np.ones(len(assignments), dtype=bool)
    for t in range(T):
        task_folds = assignments[:, mask[:, t]]
        valid &= (task_folds != task_folds[:, :1]).any(axis=1)
    cv = MultiTaskKFold(K)
    if valid.any():
        folds = fold_of(cv, Y, Y)
        for t in range(T):
            assert len(np.unique(folds[mask[:, t]])) >= 2
    else:
        with pytest.raises(ValueError, match="found no split"):
            list(cv.split(Y, Y))


def test_wide_without_a_valid_split_names_the_tasks():
    # three tasks of two labels on three rows, pairwise overlapping: no 2-colouring
    Y = np.array([[1.0, np.nan, 2.0], [1.5, 3.0, np.nan], [np.nan, 3.5, 2.5]])
    Y = pd.DataFrame(Y, columns=["ab", "bc", "ac"])
    with pytest.raises(ValueError, match=r"n_splits=2 in which task\(s\) 'a"):
        list(MultiTaskKFold(2).split(Y, Y))


@pytest.mark.parametrize("shuffle", [False, True])
def test_long_data_spreads_each_task_evenly(shuffle):
    X, y, task_ids = long_data(0)
    K = 5
    cv = MultiTaskKFold(K, shuffle=shuffle, random_state=3 if shuffle else None)
    folds = fold_of(cv, X, y, task_ids=task_ids)
    sizes = np.bincount(folds, minlength=K)
    assert sizes.max() - sizes.min() <= 1
    for t in range(65):
        counts = per_fold(folds, task_ids == t, K)
        assert counts.max() - counts.min() <= 1  # exact for long data
        assert np.all(counts.sum() - counts >= 1)  # in every training fold
        if counts.sum() >= K:
            assert np.all(counts >= 1)  # in every test fold


@pytest.mark.parametrize("seed", range(10))
def test_long_binary_spreads_each_class_of_each_task_evenly(seed):
    X, y, task_ids = long_data(seed, binary=True)
    K = 2 + seed % 5
    cv = MultiTaskKFold(K, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tasks with a class of one label
        folds = fold_of(cv, X, y, task_ids=task_ids)
    sizes = np.bincount(folds, minlength=K)
    assert sizes.max() - sizes.min() <= 1
    for t in range(65):
        rows = task_ids == t
        task_counts = per_fold(folds, rows, K)
        assert task_counts.max() - task_counts.min() <= 1
        n_classes_in_train = 0
        for value in (0, 1):
            counts = per_fold(folds, rows & (y == value), K)
            assert counts.max() - counts.min() <= 1
            if counts.sum() >= 2:
                assert np.all(counts.sum() - counts >= 1)
            n_classes_in_train += (counts.sum() - counts) >= 1
        if all((rows & (y == value)).sum() >= 2 for value in (0, 1)):
            assert np.all(n_classes_in_train == 2)


def test_single_task_regression_without_shuffle_is_kfold():
    y = np.random.RandomState(0).normal(size=23)
    for K in (2, 3, 5):
        ours = [test for _, test in MultiTaskKFold(K).split(y[:, None], y)]
        theirs = [test for _, test in KFold(K).split(y[:, None], y)]
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a, b)


def test_complete_wide_regression_without_shuffle_is_kfold():
    Y = np.random.RandomState(0).normal(size=(17, 3))
    ours = [test for _, test in MultiTaskKFold(4).split(Y, Y)]
    for a, (_, b) in zip(ours, KFold(4).split(Y)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shuffle", [False, True])
def test_single_task_classes_are_stratified_like_stratified_kfold(shuffle):
    y = np.array(["a"] * 13 + ["b"] * 7 + ["c"] * 4)
    K = 4
    cv = MultiTaskKFold(K, shuffle=shuffle, random_state=0 if shuffle else None)
    folds = fold_of(cv, y[:, None], y)
    reference = StratifiedKFold(K).split(y[:, None], y)
    for k, (_, test) in enumerate(reference):
        assert np.sum(folds == k) == test.size  # same fold sizes
    for label in "abc":
        counts = per_fold(folds, y == label, K)
        assert counts.max() - counts.min() <= 1


def test_classes_are_contiguous_runs_without_shuffle():
    y = np.array([0] * 6 + [1] * 6)
    folds = fold_of(MultiTaskKFold(3), y[:, None], y)
    np.testing.assert_array_equal(folds, [0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2])


def test_deterministic_and_seeded():
    Y, K = random_wide(7, binary=True)
    X = np.zeros((len(Y), 1))

    def folds(cv):
        return fold_of(cv, X, Y)

    np.testing.assert_array_equal(folds(MultiTaskKFold(K)), folds(MultiTaskKFold(K)))
    seeded = folds(MultiTaskKFold(K, shuffle=True, random_state=1))
    np.testing.assert_array_equal(seeded, folds(MultiTaskKFold(K, shuffle=True, random_state=1)))
    assert not np.array_equal(seeded, folds(MultiTaskKFold(K, shuffle=True, random_state=2)))
    assert not np.array_equal(seeded, folds(MultiTaskKFold(K)))
    # one cv object, split twice with an int seed: same folds (a search may split twice)
    cv = MultiTaskKFold(K, shuffle=True, random_state=5)
    np.testing.assert_array_equal(folds(cv), folds(cv))


def test_shuffle_changes_long_folds():
    X, y, task_ids = long_data(1)
    a = fold_of(MultiTaskKFold(4, shuffle=True, random_state=0), X, y, task_ids=task_ids)
    b = fold_of(MultiTaskKFold(4, shuffle=True, random_state=1), X, y, task_ids=task_ids)
    c = fold_of(MultiTaskKFold(4), X, y, task_ids=task_ids)
    assert not np.array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(c, fold_of(MultiTaskKFold(4), X, y, task_ids=task_ids))


def test_wide_strings_with_missing_labels_and_rows_without_labels():
    Y = np.array([["x", "u"], ["y", None], [None, "v"], ["x", "v"], [None, None],
                  ["y", "u"], [None, None], ["x", None]], dtype=object)
    folds = fold_of(MultiTaskKFold(2), np.zeros((8, 1)), Y)
    assert sorted(np.bincount(folds)) == [4, 4]
    observed = pd.isna(Y) == False  # noqa: E712
    for t in range(2):
        for label in np.unique(Y[observed[:, t], t]):
            counts = per_fold(folds, observed[:, t] & (Y[:, t] == label), 2)
            assert np.all(counts >= 1)  # each class in both training (and test) folds


def test_integer_regression_targets_with_classification_false():
    # integer-valued regression target: "auto" sees classes (a value seen once is a class
    # of one label, hence the warning); False sees one stratum, as KFold does
    y = np.array([1, 1, 2, 1, 1, 1, 1, 1, 1, 1])
    with pytest.warns(UserWarning, match=r"single class of task\(s\) 0"):
        list(MultiTaskKFold(2).split(y[:, None], y))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folds = fold_of(MultiTaskKFold(2, classification=False), y[:, None], y)
    np.testing.assert_array_equal(folds, [0] * 5 + [1] * 5)


def test_classification_true_rejects_continuous_labels():
    y = np.linspace(0, 1, 10)
    with pytest.raises(ValueError, match="continuous"):
        list(MultiTaskKFold(2, classification=True).split(y[:, None], y))


def test_warns_when_a_training_fold_has_a_single_class():
    # task 0 has one label of class 1: the training fold without it holds class 0 only
    Y = np.array([[0, 0], [0, 1], [0, 0], [1, 1], [0, 0], [0, 1]], dtype=float)
    with pytest.warns(UserWarning, match=r"single class of task\(s\) 0"):
        list(MultiTaskKFold(2).split(Y, Y))


def test_single_class_warning_names_tasks_by_label_and_says_who_fails():
    # long data: task "s5" has one label of class 1, at position 2 of the sorted tasks
    task_ids = np.repeat(["s0", "s1", "s5"], 6)
    y = np.array([0, 1] * 3 + [1, 0] * 3 + [0] * 5 + [1])
    with pytest.warns(UserWarning) as record:
        list(MultiTaskKFold(2).split(y[:, None], y, task_ids=task_ids))
    message = " ".join(str(w.message) for w in record)
    assert "single class of task(s) 's5'," in message
    # the advice is true: skmtl's classifiers fit a one-class fold, IndependentTasks of a
    # two-class scikit-learn classifier does not
    assert "skmtl's linear and deep multi-task classifiers fit such folds" in message
    assert "IndependentTasks(LogisticRegression()), fails on them" in message
    assert "may fail" not in message
    # a wide DataFrame: the column name
    Y = pd.DataFrame({"refund": y[12:], "upgrade": y[:6]})
    with pytest.warns(UserWarning, match=r"single class of task\(s\) 'refund',"):
        list(MultiTaskKFold(2).split(Y, Y))


def test_task_with_two_labels_and_more_folds_than_labels():
    # 2 <= n_t < n_splits: the two labels go to two different test folds
    y = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2])
    task_ids = np.array(["s"] * 2 + ["l"] * 10)
    folds = fold_of(MultiTaskKFold(5), y[:, None], y, task_ids=task_ids)
    assert folds[0] != folds[1]


def test_errors():
    with pytest.raises(ValueError, match="n_splits must be >= 2"):
        MultiTaskKFold(1)
    with pytest.raises(ValueError, match="n_splits must be an integer"):
        MultiTaskKFold(2.5)
    with pytest.raises(TypeError, match="shuffle must be True or False"):
        MultiTaskKFold(2, shuffle="yes")
    with pytest.raises(ValueError, match="random_state has no effect"):
        MultiTaskKFold(2, random_state=0)
    with pytest.raises(ValueError, match="classification must be"):
        MultiTaskKFold(2, classification="yes")
    y = np.arange(4.5, step=1.5)
    with pytest.raises(ValueError, match="n_splits=5 greater than the number of samples: "
                                         "n_samples=3"):
        list(MultiTaskKFold(5).split(y[:, None], y))
    with pytest.raises(ValueError, match="needs y"):
        list(MultiTaskKFold(2).split(np.zeros((4, 1)), None))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        list(MultiTaskKFold(2).split(np.zeros((5, 1)), np.arange(4.0) / 3))


def test_task_with_fewer_than_two_labels_is_named():
    Y = pd.DataFrame({"ok": [0.1, 0.2, 0.3, 0.4], "lonely": [np.nan, 0.5, np.nan, np.nan],
                      "empty": [np.nan] * 4})
    with pytest.raises(ValueError, match=r"Task\(s\) 'lonely', 'empty' have fewer than 2 "
                                         r"observed labels \('lonely': 1, 'empty': 0\)"):
        list(MultiTaskKFold(2).split(Y, Y))
    y = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    with pytest.raises(ValueError, match=r"Task\(s\) 'b' have fewer than 2"):
        list(MultiTaskKFold(2).split(y[:, None], y, task_ids=["a", "a", "a", "a", "b"]))


def test_metadata_routing_requests_task_ids():
    cv = MultiTaskKFold()
    assert cv.get_metadata_routing().consumes("split", ["task_ids", "groups"]) == {"task_ids"}
    assert "MultiTaskKFold(" in repr(cv)


def test_cross_validate_routes_task_ids_to_the_splitter():
    X, y, task_ids = long_data(2)
    cv = MultiTaskKFold(4, shuffle=True, random_state=0)
    expected = [test for _, test in cv.split(X, y, task_ids=task_ids)]
    with sklearn.config_context(enable_metadata_routing=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # R^2 undefined on a test fold with 1 label
            result = cross_validate(IndependentTasks(Ridge()), X, y, cv=cv,
                                    params={"task_ids": task_ids}, return_indices=True,
                                    error_score="raise")
    for a, b in zip(result["indices"]["test"], expected):
        np.testing.assert_array_equal(a, b)
    assert np.all(np.isfinite(result["test_score"]))


def test_grid_search_on_long_data_with_routing():
    # Sorted tasks, half of them of two rows: a split that ignored task_ids would leave a task
    # out of a training fold, and predicting it would raise (error_score="raise").
    rng = np.random.RandomState(0)
    task_ids = np.repeat(np.arange(30), [2, 9] * 15)
    X = rng.normal(size=(task_ids.size, 2))
    y = X @ [1.0, -1.0] + 0.2 * task_ids + 0.1 * rng.normal(size=task_ids.size)
    with sklearn.config_context(enable_metadata_routing=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # R^2 undefined on tasks with 1 test label
            search = GridSearchCV(IndependentTasks(Ridge()), {"estimator__alpha": [0.01, 10.0]},
                                  cv=MultiTaskKFold(3), error_score="raise")
            search.fit(X, y, task_ids=task_ids)
    assert search.n_splits_ == 3
    assert search.best_params_ == {"estimator__alpha": 0.01}
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


def test_wide_y_with_nan_in_cross_validate_and_grid_search():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 3))
    Y = X @ rng.normal(size=(3, 4)) + 0.1 * rng.normal(size=(60, 4))
    Y[rng.uniform(size=Y.shape) < 0.7] = np.nan
    cv = MultiTaskKFold(5, shuffle=True, random_state=0)
    scores = cross_val_score(IndependentTasks(Ridge()), X, Y, cv=cv, error_score="raise")
    assert scores.shape == (5,) and np.all(np.isfinite(scores))
    result = cross_validate(IndependentTasks(Ridge()), X, Y, cv=cv, return_indices=True)
    for train in result["indices"]["train"]:
        assert np.all((~np.isnan(Y[train])).sum(axis=0) >= 1)
    search = GridSearchCV(IndependentTasks(Ridge()), {"estimator__alpha": [0.01, 100.0]},
                          cv=cv, error_score="raise").fit(X, Y)
    assert search.best_params_ == {"estimator__alpha": 0.01}


def test_auto_stratifies_classes_only_in_tasks_with_class_labels():
    # rows 0-7 observe task 0 (continuous), rows 8-15 task 1 (classes 0 then 1)
    Y = np.full((16, 2), np.nan)
    Y[:8, 0] = np.linspace(1.0, 0.0, 8) + 0.05
    Y[8:, 1] = [0, 0, 0, 0, 1, 1, 1, 1]
    auto = fold_of(MultiTaskKFold(4), Y, Y)
    np.testing.assert_array_equal(auto, [0, 0, 1, 1, 2, 2, 3, 3] + [0, 1, 2, 3] * 2)
    regression = fold_of(MultiTaskKFold(4, classification=False), Y, Y)
    np.testing.assert_array_equal(regression, [0, 0, 1, 1, 2, 2, 3, 3] * 2)


def test_targets_the_classification_setting_cannot_read_are_errors_saying_so():
    """A text task beside a continuous one, read with "auto", raised the library's "Y must be
    numeric for a regressor" (no regressor involved); text with classification=False, a bare
    "could not convert string to float"."""
    rng = np.random.RandomState(0)
    mixed = pd.DataFrame({"species": rng.choice(["cat", "dog"], 12),
                          "weight": rng.normal(size=12)})
    with pytest.raises(ValueError, match=(
            r"^MultiTaskKFold\(classification='auto'\) cannot read y as numbers \(.*\) nor as "
            r"class labels \(Task 'weight': Unknown label type: continuous.*\)\. .*split a "
            "target that mixes text classes with continuous tasks in parts.$")):
        list(MultiTaskKFold(3).split(np.zeros((12, 1)), mixed))
    with pytest.raises(ValueError, match=(r"^MultiTaskKFold\(classification=False\) reads the "
                                          "labels as numbers: could not convert string")):
        list(MultiTaskKFold(2, classification=False).split(np.zeros((6, 1)), list("aabbaa")))
    with pytest.raises(ValueError, match=(r"^MultiTaskKFold\(classification=True\) reads the "
                                          "labels as class labels: Unknown label type")):
        list(MultiTaskKFold(2, classification=True).split(np.zeros((4, 1)),
                                                          [0.5, 1.5, 2.5, 0.1]))
    # what it can read is unchanged: text classes in every task, numbers task by task
    text = pd.DataFrame({"a": rng.choice(["x", "y"], 12), "b": rng.choice(["u", "v"], 12)})
    assert len(list(MultiTaskKFold(3).split(np.zeros((12, 1)), text))) == 3
