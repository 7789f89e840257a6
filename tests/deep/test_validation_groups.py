"""fit(..., groups=) of the deep estimators: the rows held out for early stopping are whole
groups (a molecule's scaffold, a sample's rows of long data), stratified on the tasks, every
task keeping training labels; the groups reach fit through metadata routing and through
skmtl's cross-validation."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import sklearn  # noqa: E402
from sklearn.model_selection import GridSearchCV, GroupKFold  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from skmtl.deep import (  # noqa: E402
    FocusedTaskClassifier,
    FocusedTaskRegressor,
    MultiTaskClassifier,
    MultiTaskRegressor,
)
from skmtl.deep._base import group_validation_split, stratified_validation_split  # noqa: E402
from skmtl.deep._labels import TaskLabels  # noqa: E402
from skmtl.model_selection import MultiTaskGroupKFold, transfer_report  # noqa: E402
from skmtl.model_selection._transfer import _fit_groups  # noqa: E402

SMALL = dict(hidden_layer_sizes=(6,), max_epochs=3, batch_size=16, lr=1e-2)


def _split(labels, sizes, fraction, groups, seed):
    train, valid = group_validation_split(labels, sizes, fraction, groups,
                                          np.random.RandomState(seed))
    assert np.intersect1d(train, valid).size == 0
    np.testing.assert_array_equal(np.union1d(train, valid), np.arange(labels.n_samples))
    # every group whole on one side
    assert np.intersect1d(groups[train], groups[valid]).size == 0
    return train, valid


def _wide(seed, n=600, n_tasks=6, n_groups=150):
    """Wide labels, scaffold-like groups of very different sizes, tasks of different sizes,
    binary classes (codes) on some tasks."""
    rng = np.random.RandomState(seed)
    groups = np.minimum(rng.zipf(1.6, size=n) - 1, n_groups - 1)
    groups = np.unique(groups, return_inverse=True)[1]
    mask = rng.uniform(size=(n, n_tasks)) < np.linspace(0.9, 0.1, n_tasks)
    sizes = np.array([1, 2] * (n_tasks // 2))
    codes = np.where(mask, rng.randint(2, size=(n, n_tasks)) % sizes, 0)
    return TaskLabels.from_wide(codes, mask), sizes, groups, mask, codes


@pytest.mark.parametrize("seed", range(4))
def test_group_split_keeps_groups_whole_every_stratum_in_training_and_near_the_fraction(seed):
    labels, sizes, groups, mask, codes = _wide(seed)
    fraction = 0.2
    train, valid = _split(labels, sizes, fraction, groups, seed)
    assert valid.size > 0
    for t, size in enumerate(sizes):
        for k in range(size):
            stratum = mask[:, t] & (codes[:, t] == k)
            in_groups = np.unique(groups[stratum]).size
            if in_groups >= 2:  # a stratum in two groups or more keeps training labels
                assert stratum[train].any(), (t, k)
            else:  # in one group: all of it in training
                assert not stratum[valid].any(), (t, k)
            # as near the fraction as the stratum's largest group allows
            largest = np.bincount(groups[stratum]).max() if stratum.any() else 0
            held = stratum[valid].sum()
            assert abs(held - fraction * stratum.sum()) <= max(largest, 1.5), (t, k, held)


def test_group_split_with_one_row_per_group_on_long_data_is_the_row_split():
    """Long data (one label per row) with every row its own group: the same split as the
    row split (the same random order, the same counts per task), row for row."""
    rng = np.random.RandomState(3)
    n, n_tasks = 500, 7
    task = rng.randint(n_tasks, size=n)
    task[:n_tasks] = np.arange(n_tasks)
    labels = TaskLabels.from_long(np.zeros(n), task, n_tasks)
    sizes = [1] * n_tasks
    for fraction in (0.05, 0.1, 0.3):
        for seed in range(3):
            expected = stratified_validation_split(labels, sizes, fraction,
                                                   np.random.RandomState(seed))
            got = _split(labels, sizes, fraction, np.arange(n), seed)
            for a, b in zip(got, expected, strict=True):
                np.testing.assert_array_equal(a, b)


def test_group_split_is_reproducible_and_moves_with_the_seed():
    labels, sizes, groups, *_ = _wide(0)
    first = _split(labels, sizes, 0.1, groups, 7)[1]
    np.testing.assert_array_equal(first, _split(labels, sizes, 0.1, groups, 7)[1])
    assert not np.array_equal(first, _split(labels, sizes, 0.1, groups, 8)[1])


def test_group_split_fills_with_unlabelled_groups_and_holds_out_one_group_at_least():
    # task 0 labelled in groups 0-3 only (3 rows each); groups 4-9 unlabelled
    n = 30
    groups = np.arange(n) // 3
    mask = np.zeros((n, 1), dtype=bool)
    mask[:12] = True
    labels = TaskLabels.from_wide(np.zeros((n, 1), dtype=np.intp), mask)
    train, valid = _split(labels, [1], 0.5, groups, 0)
    assert valid.size == 15  # ceil(0.5 * 30) rows, whole groups of 3
    assert 3 <= mask[valid].sum() <= 9 and mask[train].sum() >= 3
    # a fraction too small for any stratum's target: one labelled group still held out
    train, valid = _split(labels, [1], 0.01, groups, 0)
    assert valid.size == 3 and mask[valid].all()
    # ... also where an unlabelled group fills the rows (3 of ceil(0.1 * 30)): the
    # validation loss needs labels
    train, valid = _split(labels, [1], 0.1, groups, 0)
    assert mask[valid].sum() == 3 and (~mask[valid]).sum() == 3


def test_group_split_that_would_take_a_tasks_only_group_raises():
    # two tasks, each labelled in one group only: neither group can be held out
    groups = np.repeat([0, 1], 5)
    mask = np.zeros((10, 2), dtype=bool)
    mask[:5, 0] = mask[5:, 1] = True
    labels = TaskLabels.from_wide(np.zeros((10, 2), dtype=np.intp), mask)
    with pytest.raises(ValueError, match="each of the 2 groups holds the only training labels "
                                         "of some task or class"):
        group_validation_split(labels, [1, 1], 0.1, groups, np.random.RandomState(0))


def test_split_errors_say_whether_by_groups_and_survive_pickling():
    """The three validation-split errors are _ValidationSplitError (a ValueError) with
    ``reason`` (the message without the estimator's advice) and ``by_groups``, which a
    parallel backend's pickling keeps: skmtl compare gives its own advice from them."""
    import pickle

    from skmtl.utils.validation import _ValidationSplitError

    groups = np.repeat([0, 1], 5)
    mask = np.zeros((10, 2), dtype=bool)
    mask[:5, 0] = mask[5:, 1] = True
    labels = TaskLabels.from_wide(np.zeros((10, 2), dtype=np.intp), mask)
    rng = np.random.RandomState(0)
    X = np.arange(6.0).reshape(3, 2)
    Y = np.array([[1.0, np.nan], [np.nan, 2.0], [np.nan, np.nan]])  # one label per task
    cases = [
        (lambda: group_validation_split(labels, [1, 1], 0.1, groups, rng), True,
         "groups: early stopping holds out whole groups, but each of the 2 groups holds the "
         "only training labels of some task or class"),
        (lambda: group_validation_split(labels, [1, 1], 0.1, np.zeros(10, dtype=int), rng),
         True, "groups has a single group: early stopping holds out whole groups for its "
               "validation loss, so it needs 2 groups or more"),
        (lambda: MultiTaskRegressor(**SMALL).fit(X, Y), False,
         "Early stopping holds out validation labels, but none of the 2 labels can be held "
         "out without taking the last training label of a task (or of a class of one)"),
    ]
    for call, by_groups, reason in cases:
        with pytest.raises(_ValidationSplitError) as info:
            call()
        error = pickle.loads(pickle.dumps(info.value))
        assert isinstance(error, ValueError) and type(error) is _ValidationSplitError
        assert (error.by_groups, error.reason) == (by_groups, reason)
        assert str(error).startswith(reason + "; ") and "early_stopping=False" in str(error)


# -- the estimators -----------------------------------------------------------------------------


def _data(n=120, n_tasks=3, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 4))
    Y = X @ rng.normal(size=(4, n_tasks)) + 0.1 * rng.normal(size=(n, n_tasks))
    Y[rng.uniform(size=Y.shape) < 0.2] = np.nan
    groups = np.array([f"scaffold-{g}" for g in rng.randint(30, size=n)])
    return X, Y, groups


def _valid_rows(estimator):
    return estimator.net_.train_split.keywords["valid_ds"].rows_


@pytest.mark.parametrize("cls", [MultiTaskRegressor, MultiTaskClassifier])
def test_fit_holds_out_whole_groups_as_the_split_of_the_groups_codes(cls):
    X, Y, groups = _data()
    if cls is MultiTaskClassifier:
        Y = np.where(np.isnan(Y), np.nan, (Y > 0).astype(float))
    model = cls(**SMALL, random_state=0).fit(X, Y, groups=groups)
    valid = _valid_rows(model)
    train = np.setdiff1d(np.arange(len(X)), valid)
    assert valid.size > 0 and np.intersect1d(groups[valid], groups[train]).size == 0
    # without groups: rows of a group on both sides (the default split is by rows)
    rows = _valid_rows(cls(**SMALL, random_state=0).fit(X, Y))
    assert np.intersect1d(groups[rows], groups[np.setdiff1d(np.arange(len(X)), rows)]).size


def test_long_data_rows_of_a_sample_stay_together():
    """Long data with a row per (molecule, target): the molecule's rows on one side."""
    X, Y, _ = _data(n=80)
    rows, tasks = np.nonzero(~np.isnan(Y))
    model = MultiTaskRegressor(**SMALL, random_state=1).fit(
        X[rows], Y[rows, tasks], task_ids=tasks, groups=rows)
    valid = _valid_rows(model)
    train = np.setdiff1d(np.arange(rows.size), valid)
    assert np.intersect1d(rows[valid], rows[train]).size == 0
    assert np.unique(rows[valid]).size >= 2


@pytest.mark.parametrize("strategy", ["single_task", "multi_task", "finetune"])
def test_focused_estimators_hold_out_whole_groups(strategy):
    X, Y, groups = _data(seed=2)
    model = FocusedTaskRegressor(focus_task=1, strategy=strategy, **SMALL, random_state=0)
    model.fit(X, Y, groups=groups)
    valid = _valid_rows(model)
    # single_task trains on the focus task's labelled rows: its split is of those rows
    rows = np.flatnonzero(~np.isnan(Y[:, 1])) if strategy == "single_task" else np.arange(
        len(X))
    train = np.setdiff1d(np.arange(rows.size), valid)
    assert np.intersect1d(groups[rows][valid], groups[rows][train]).size == 0


def test_groups_without_a_validation_split_change_nothing():
    X, Y, groups = _data()
    plain = MultiTaskRegressor(**SMALL, early_stopping=False, random_state=0).fit(X, Y)
    grouped = MultiTaskRegressor(**SMALL, early_stopping=False, random_state=0).fit(
        X, Y, groups=groups)
    np.testing.assert_array_equal(grouped.predict(X), plain.predict(X))


@pytest.mark.parametrize("groups, match", [
    (np.zeros(120), "groups has a single group: early stopping holds out whole groups"),
    (np.arange(119), "groups has 119 entries but the data have 120 rows"),
    (np.r_[np.arange(119), np.nan], r"groups contains missing values \(rows \[119\]\)"),
    (np.array([1, "a"] * 60, dtype=object), "groups mixes types that cannot be ordered"),
])
def test_bad_groups_raise_naming_the_problem(groups, match):
    X, Y, _ = _data()
    with pytest.raises(ValueError, match=match):
        MultiTaskRegressor(**SMALL).fit(X, Y, groups=groups)


def test_classifier_focus_task_in_one_group_keeps_it_for_training():
    X, Y, groups = _data(n=90, seed=4)
    Y = np.where(np.isnan(Y), np.nan, (Y > 0).astype(float))
    Y[:, 2] = np.nan
    Y[:6, 2] = [0, 1, 0, 1, 0, 1]
    groups[:6] = "scaffold-only"
    groups[6:][groups[6:] == "scaffold-only"] = "scaffold-other"
    model = FocusedTaskClassifier(focus_task=2, strategy="multi_task", **SMALL,
                                  random_state=0).fit(X, Y, groups=groups)
    assert not np.isin(np.arange(6), _valid_rows(model)).any()
    assert np.isfinite(model.net_.history[-1, "train_loss_task_2"])


# -- routing and skmtl's cross-validation ------------------------------------------------------


def test_groups_are_requested_by_default_and_routed_by_a_search():
    X, Y, groups = _data()
    assert _fit_groups(MultiTaskRegressor(), groups) is groups
    assert _fit_groups(make_pipeline(StandardScaler(), MultiTaskRegressor()), groups) is groups
    with sklearn.config_context(enable_metadata_routing=True):
        assert _fit_groups(MultiTaskRegressor().set_fit_request(groups=False), groups) is None
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(MultiTaskRegressor(**SMALL, random_state=0),
                              {"lr": [1e-2]}, cv=GroupKFold(3)).fit(X, Y, groups=groups)
    valid = _valid_rows(search.best_estimator_)  # the refit on all rows, with the groups
    train = np.setdiff1d(np.arange(len(X)), valid)
    assert np.intersect1d(groups[valid], groups[train]).size == 0


def test_transfer_report_fits_each_training_fold_with_its_groups():
    """transfer_report's scores are those of fits given each training fold's groups, not
    those of fits that stop early on rows."""
    X, Y, groups = _data(n=150, seed=5)
    cv = MultiTaskGroupKFold(3, shuffle=True, random_state=0)
    model = MultiTaskRegressor(**SMALL, random_state=0)
    report = transfer_report(model, X, Y, cv=cv, groups=groups,
                             scoring="neg_mean_squared_error")
    folds = list(cv.split(X, Y, groups=groups))
    by_hand, by_rows = [], []
    for train, test in folds:
        for fit_groups, out in ((groups[train], by_hand), (None, by_rows)):
            fitted = MultiTaskRegressor(**SMALL, random_state=0).fit(
                X[train], Y[train], groups=fit_groups)
            error = (fitted.predict(X[test]) - Y[test]) ** 2
            out.append(-np.nanmean(error, axis=0))
    np.testing.assert_allclose(report["score"], np.mean(by_hand, axis=0), rtol=1e-6)
    assert not np.allclose(report["score"], np.mean(by_rows, axis=0))


def test_group_split_holds_out_a_group_with_a_label_of_a_watched_task():
    """As the row split: the watched task's share rounds to no group, one of its groups
    (whose other labels all keep a group in training) is held out; with a single group it
    cannot be, which names the task."""
    n = 200
    groups = np.arange(n) // 2
    mask = np.column_stack([np.ones(n, dtype=bool), np.zeros(n, dtype=bool)])
    mask[[0, 10, 20, 30], 1] = True  # four groups with a label of task 1
    codes = np.zeros((n, 2), dtype=np.intp)
    labels = TaskLabels.from_wide(codes, mask)
    _, valid = _split(labels, [1, 1], 0.1, groups, 0)
    assert mask[valid, 1].sum() == 0
    train, valid = group_validation_split(labels, [1, 1], 0.1, groups,
                                          np.random.RandomState(0),
                                          (np.array([False, True]), "task 'b'"))
    assert mask[valid, 1].sum() == 1 and mask[train, 1].sum() == 3
    assert np.intersect1d(groups[train], groups[valid]).size == 0
    one = mask.copy()
    one[[10, 20, 30], 1] = False
    with pytest.raises(ValueError, match="trains task 'b' alone watches its validation loss, "
                                         "but no group of its 1 labels"):
        group_validation_split(TaskLabels.from_wide(codes, one), [1, 1], 0.1, groups,
                               np.random.RandomState(0), (np.array([False, True]), "task 'b'"))
