"""MultiTaskGroupKFold: groups whole, every task in every training fold, labels spread."""

import itertools
import warnings

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import GroupKFold
from sklearn.utils.metadata_routing import get_routing_for_object

from skmtl import IndependentTasks
from skmtl.model_selection import MultiTaskGroupKFold, cross_val_predict, transfer_report


def fold_of_rows(cv, y, groups, task_ids=None):
    """The test fold of each row, checking that the test folds partition the rows."""
    folds = np.full(len(groups), -1)
    extra = {} if task_ids is None else {"task_ids": task_ids}
    for k, (train, test) in enumerate(cv.split(np.zeros((len(groups), 1)), y, groups=groups,
                                               **extra)):
        assert (folds[test] == -1).all()
        folds[test] = k
        np.testing.assert_array_equal(np.sort(np.r_[train, test]), np.arange(len(groups)))
    assert (folds >= 0).all()
    return folds


def random_wide(seed, n=300, n_groups=60, n_tasks=6, missing=0.8, classes=None):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n_groups, size=n)
    Y = (rng.integers(0, classes, size=(n, n_tasks)).astype(float) if classes
         else rng.normal(size=(n, n_tasks)))
    Y[rng.random((n, n_tasks)) < missing] = np.nan
    return Y, groups


def label_counts(Y, folds, K):
    """(n_tasks, K) labels of each task in each test fold."""
    mask = ~np.isnan(Y)
    return np.array([[mask[folds == k, t].sum() for k in range(K)]
                     for t in range(Y.shape[1])])


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("classes", [None, 3])
def test_groups_whole_and_every_task_in_every_training_fold(seed, classes):
    Y, groups = random_wide(seed, classes=classes)
    cv = MultiTaskGroupKFold(4, classification=classes is not None)
    folds = fold_of_rows(cv, Y, groups)
    for g in np.unique(groups):
        assert np.unique(folds[groups == g]).size == 1
    counts = label_counts(Y, folds, 4)
    assert ((counts.sum(axis=1, keepdims=True) - counts) > 0).all()  # labels in training
    assert np.bincount(folds, minlength=4).min() > 0
    if classes:  # every class with labels in two groups or more is in every training fold
        for t in range(Y.shape[1]):
            for c in range(classes):
                rows = Y[:, t] == c
                if np.unique(groups[rows]).size >= 2:
                    assert all(np.any(rows & (folds != k)) for k in range(4))


@pytest.mark.parametrize("seed", range(3))
def test_spreads_each_task_and_the_rows_better_than_group_kfold(seed):
    Y, groups = random_wide(seed, n=600, n_groups=120, n_tasks=8, missing=0.85)
    K = 5

    def spread(folds):
        counts = label_counts(Y, folds, K)
        n = counts.sum(axis=1, keepdims=True)
        return ((counts - n / K) ** 2 / n).sum()

    ours = fold_of_rows(MultiTaskGroupKFold(K), Y, groups)
    theirs = fold_of_rows(GroupKFold(K), Y, groups)
    assert spread(ours) < 0.4 * spread(theirs)
    sizes = np.bincount(ours, minlength=K)
    # within the largest group of the even share
    assert np.abs(sizes - len(Y) / K).max() <= np.bincount(groups).max()


def test_keeps_a_rare_task_in_training_where_group_kfold_does_not():
    rng = np.random.default_rng(0)  # a case where GroupKFold confines the rare task
    groups = rng.integers(0, 12, size=40)
    Y = np.full((40, 2), np.nan)
    Y[:, 0] = rng.normal(size=40)
    Y[np.isin(groups, rng.choice(np.unique(groups), 2, replace=False)), 1] = 1.0
    assert any(np.isnan(Y[train, 1]).all()
               for train, _ in GroupKFold(3).split(Y, Y, groups))
    folds = fold_of_rows(MultiTaskGroupKFold(3), Y, groups)
    assert label_counts(Y, folds, 3)[1].max() < np.sum(~np.isnan(Y[:, 1]))


def test_finds_a_split_whenever_one_exists():
    """Brute force over every assignment of groups to folds, on small random cases."""
    n_cases = 0
    for seed in range(150):
        rng = np.random.default_rng(seed)
        n_groups, K = int(rng.integers(3, 7)), int(rng.integers(2, 4))
        if K > n_groups:
            continue
        n = int(rng.integers(n_groups, 14))
        groups = np.r_[np.arange(n_groups), rng.integers(0, n_groups, n - n_groups)]
        n_tasks = int(rng.integers(1, 4))
        Y = rng.normal(size=(n, n_tasks))
        Y[rng.random((n, n_tasks)) < 0.6] = np.nan
        for t in range(n_tasks):
            if np.sum(~np.isnan(Y[:, t])) < 2:
                Y[rng.choice(n, 2, replace=False), t] = 1.0
        mask = ~np.isnan(Y)
        exists = any(
            len(set(a)) == K and all(mask[np.asarray(a)[groups] != k].any(axis=0).all()
                                     for k in range(K))
            for a in itertools.product(range(K), repeat=n_groups))
        if not exists:
            continue
        n_cases += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            folds = fold_of_rows(MultiTaskGroupKFold(K), Y, groups)
        counts = label_counts(Y, folds, K)
        assert ((counts.sum(axis=1, keepdims=True) - counts) > 0).all(), seed
    assert n_cases > 100


def test_long_data_with_the_samples_as_groups():
    rng = np.random.default_rng(1)
    sample = np.repeat(np.arange(30), 3)
    task_ids = np.tile(np.array(["a", "b", "c"]), 30)
    keep = rng.random(90) < 0.7  # not every sample measured on every task
    sample, task_ids = sample[keep], task_ids[keep]
    y = rng.normal(size=sample.size)
    folds = fold_of_rows(MultiTaskGroupKFold(3, shuffle=True, random_state=0), y, sample,
                       task_ids=task_ids)
    for s in np.unique(sample):
        assert np.unique(folds[sample == s]).size == 1
    for task in "abc":
        per_fold = np.bincount(folds[task_ids == task], minlength=3)
        assert per_fold.min() > 0 and per_fold.max() - per_fold.min() <= 3


def test_a_task_in_a_single_group_is_named():
    Y, groups = random_wide(0, n_tasks=3)
    Y[:, 2] = np.nan
    Y[groups == groups[0], 2] = 1.0  # task 2 observed in one group only
    with pytest.raises(ValueError, match=r"MultiTaskGroupKFold found no split with "
                                         r"n_splits=3 in which task\(s\) 2 keep observed labels "
                                         r"in every training fold: their labels sit in too few "
                                         r"groups."):
        list(MultiTaskGroupKFold(3).split(Y, Y, groups=groups))


@pytest.mark.parametrize("groups, message", [
    (None, "MultiTaskGroupKFold.split needs groups, the group of each row"),
    (np.arange(5) % 2, "groups has 5 entries but the data have 6 rows"),
    (np.array([0, 0, 1, 1, 2, np.nan]), r"groups contains missing values \(rows \[5\]\)"),
    (np.array([0, 0, 0, 1, 1, 1]), "Cannot have number of splits n_splits=3 greater than "
                                   "the number of groups: n_groups=2."),
    (np.array([0, "a", 1, "b", 2, "c"], dtype=object), "groups mixes types that cannot be "
                                                       "ordered"),
])
def test_bad_groups(groups, message):
    y = np.arange(6.0)
    with pytest.raises(ValueError, match=message):
        list(MultiTaskGroupKFold(3).split(None, y, groups=groups))


def test_deterministic_and_seeded():
    Y, groups = random_wide(3)
    first = fold_of_rows(MultiTaskGroupKFold(4), Y, groups)
    np.testing.assert_array_equal(first, fold_of_rows(MultiTaskGroupKFold(4), Y, groups))
    a = fold_of_rows(MultiTaskGroupKFold(4, shuffle=True, random_state=1), Y, groups)
    b = fold_of_rows(MultiTaskGroupKFold(4, shuffle=True, random_state=1), Y, groups)
    c = fold_of_rows(MultiTaskGroupKFold(4, shuffle=True, random_state=2), Y, groups)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    with pytest.raises(ValueError, match="Setting a random_state has no effect"):
        MultiTaskGroupKFold(4, random_state=0)


def test_requests_groups_and_task_ids_and_serves_the_cross_validation_functions():
    requests = get_routing_for_object(MultiTaskGroupKFold()).split.requests
    assert requests == {"groups": True, "task_ids": True}
    Y, groups = random_wide(4, n_tasks=3, missing=0.5)
    X = np.random.default_rng(4).normal(size=(len(Y), 4))
    cv = MultiTaskGroupKFold(3)
    model = IndependentTasks(Ridge())
    report = transfer_report(model, X, Y, reference=IndependentTasks(Ridge(alpha=10.0)), cv=cv,
                             groups=groups)
    explicit = transfer_report(model, X, Y, reference=IndependentTasks(Ridge(alpha=10.0)),
                               cv=list(cv.split(X, Y, groups=groups)))
    np.testing.assert_array_equal(report["gain"], explicit["gain"])
    pred = cross_val_predict(model, X, Y, cv=cv, groups=groups)
    expected = np.empty_like(Y)
    for train, test in cv.split(X, Y, groups=groups):
        expected[test] = IndependentTasks(Ridge()).fit(X[train], Y[train]).predict(X[test])
    np.testing.assert_allclose(pred, expected, rtol=1e-12)
