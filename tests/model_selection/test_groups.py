"""``groups`` for group splitters in transfer_report, pairwise_transfer, cross_val_predict and
the transfer displays: the folds are the splitter's on the groups, no group is split, and a
groups / splitter mismatch is an error that says so."""

import matplotlib
import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.model_selection import GroupKFold, KFold, LeaveOneGroupOut
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmtl import IndependentTasks, PooledTasks
from skmtl.datasets import make_multitask_regression
from skmtl.linear import MeanClusteredRegressor, MeanClusteredRegressorCV
from skmtl.model_selection import (
    MultiTaskGroupKFold,
    cross_val_predict,
    pairwise_transfer,
    transfer_report,
)
from skmtl.plotting import StrategyComparisonDisplay, TransferDisplay

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def wide():
    X, Y = make_multitask_regression(n_samples=90, n_features=6, n_tasks=3, noise=0.5,
                                     missing_rate=0.2, random_state=0)
    groups = np.arange(90) // 6  # 15 groups of 6 consecutive rows (e.g. scaffolds)
    return X, Y, groups


@pytest.fixture(scope="module")
def long_samples():
    """Long data where each of 40 samples has a row per task (3 tasks): the sample is the
    group that keeps its rows together."""
    rng = np.random.default_rng(3)
    X_samples = rng.normal(size=(40, 5))
    W = rng.normal(size=(5, 3))
    Y = X_samples @ W + 0.3 * rng.normal(size=(40, 3))
    sample = np.repeat(np.arange(40), 3)
    task_ids = np.tile(np.array(["a", "b", "c"]), 40)
    y = Y[sample, np.tile(np.arange(3), 40)]
    return X_samples[sample], y, task_ids, sample


def test_transfer_report_uses_the_group_folds(wide):
    X, Y, groups = wide
    model = MeanClusteredRegressor(alpha=0.1)
    folds = list(GroupKFold(3).split(X, Y, groups))
    report = transfer_report(model, X, Y, cv=GroupKFold(3), groups=groups)
    explicit = transfer_report(model, X, Y, cv=folds)
    for field in ("score", "reference_score", "gain", "gain_se"):
        np.testing.assert_array_equal(report[field], explicit[field])
    # and they are not the plain folds' numbers
    plain = transfer_report(model, X, Y, cv=3)
    assert not np.allclose(report["score"], plain["score"])


def test_cross_val_predict_keeps_each_group_in_one_fold(long_samples):
    X, y, task_ids, sample = long_samples
    model = IndependentTasks(Ridge(alpha=1.0))
    pred = cross_val_predict(model, X, y, task_ids=task_ids, groups=sample, cv=GroupKFold(4))
    # by hand: each fold's model predicts its held-out samples' rows
    expected = np.empty_like(y)
    for train, test in GroupKFold(4).split(X, y, sample):
        assert not set(sample[train]) & set(sample[test])
        fitted = sklearn.clone(model).fit(X[train], y[train], task_ids=task_ids[train])
        expected[test] = fitted.predict(X[test], task_ids=task_ids[test])
    np.testing.assert_allclose(pred, expected, rtol=1e-12)


def test_leave_one_group_out_on_pandas_groups(wide):
    X, Y, groups = wide
    series = pd.Series(groups // 5).map({0: "s0", 1: "s1", 2: "s2"})  # 3 groups as text
    pred = cross_val_predict(PooledTasks(Ridge()), X, Y, groups=series, cv=LeaveOneGroupOut())
    expected = np.empty((len(X), Y.shape[1]))
    for train, test in LeaveOneGroupOut().split(X, Y, series):
        expected[test] = PooledTasks(Ridge()).fit(X[train], Y[train]).predict(X[test])
    np.testing.assert_allclose(pred, expected, rtol=1e-12)


def test_pairwise_transfer_long_data_with_groups(long_samples):
    X, y, task_ids, sample = long_samples
    model = PooledTasks(Ridge(alpha=1.0))
    matrix = pairwise_transfer(model, X, y, task_ids=task_ids, groups=sample, cv=GroupKFold(3))
    # every task chosen: the folds are GroupKFold's on all rows
    explicit = pairwise_transfer(model, X, y, task_ids=task_ids,
                                 cv=list(GroupKFold(3).split(X, y, sample)))
    np.testing.assert_array_equal(matrix.to_numpy(), explicit.to_numpy())


def test_pairwise_transfer_subset_of_long_tasks_splits_their_groups(long_samples):
    """Two of three tasks: the groups are cut to those tasks' rows, as the target is."""
    X, y, task_ids, sample = long_samples
    model = PooledTasks(Ridge(alpha=1.0))
    matrix = pairwise_transfer(model, X, y, task_ids=task_ids, groups=sample,
                               cv=GroupKFold(3), tasks=["a", "c"])
    rows = np.flatnonzero(np.isin(task_ids, ["a", "c"]))
    folds = [(rows[train], rows[test])
             for train, test in GroupKFold(3).split(X[rows], y[rows], sample[rows])]

    def fold_scores(train_tasks, task):
        scores = []
        for train, test in folds:
            train = train[np.isin(task_ids[train], train_tasks)]
            test = test[task_ids[test] == task]
            kw = {"task_ids": task_ids[train]} if len(train_tasks) > 1 else {}
            fitted = sklearn.clone(model).fit(X[train], y[train], **kw)
            kw = {"task_ids": task_ids[test]} if len(train_tasks) > 1 else {}
            pred = fitted.predict(X[test], **kw)
            scores.append(sklearn.metrics.r2_score(y[test], pred))
        return np.array(scores)

    gain_a = np.mean(fold_scores(["a", "c"], "a") - fold_scores(["a"], "a"))
    np.testing.assert_allclose(matrix.loc["a", "c"], gain_a, rtol=1e-10)


def test_displays_pass_groups(wide):
    X, Y, groups = wide
    model = MeanClusteredRegressor(alpha=0.1)
    report = transfer_report(model, X, Y, cv=GroupKFold(3), groups=groups)
    display = TransferDisplay.from_estimator(model, X, Y, cv=GroupKFold(3), groups=groups)
    np.testing.assert_array_equal(display.gain, report["gain"])
    both = StrategyComparisonDisplay.from_estimators({"mc": model}, X, Y, cv=GroupKFold(3),
                                                    groups=groups)
    np.testing.assert_array_equal(both.gains[0], report["gain"])


def test_a_splitter_of_our_own_receives_groups(wide):
    """An object with a ``split(X, y, groups)`` and no metadata routing gets the groups."""
    X, Y, groups = wide

    class ByGroupParity:
        def split(self, X, y, groups):
            odd = groups % 2 == 1
            yield np.flatnonzero(~odd), np.flatnonzero(odd)
            yield np.flatnonzero(odd), np.flatnonzero(~odd)

        def get_n_splits(self, X=None, y=None, groups=None):
            return 2

    pred = cross_val_predict(PooledTasks(Ridge()), X, Y, groups=groups, cv=ByGroupParity())
    odd = groups % 2 == 1
    fitted = PooledTasks(Ridge()).fit(X[~odd], Y[~odd])
    np.testing.assert_allclose(pred[odd], fitted.predict(X[odd]), rtol=1e-12)


@pytest.mark.parametrize("cv, described", [
    (3, r"cv=3 \(a MultiTaskKFold\) does not split by groups"),
    (KFold(3), r"cv=KFold\(.*\) does not split by groups"),
    # precomputed folds are named, not printed
    (list(KFold(3).split(np.zeros(90))),
     r"cv \(an iterable of \(train, test\) folds\) does not split by groups"),
])
def test_groups_with_a_splitter_that_ignores_them(wide, cv, described):
    X, Y, groups = wide
    for function in (transfer_report, cross_val_predict, pairwise_transfer):
        with pytest.raises(ValueError, match=f"groups is given, but {described}, so the rows "
                                             "of a group could fall in different folds"):
            function(MeanClusteredRegressor(), X, Y, cv=cv, groups=groups)


def test_group_splitter_without_groups(wide):
    X, Y, _ = wide
    with pytest.raises(ValueError, match=r"cv=GroupKFold\(.*\) splits by groups: pass groups, "
                                         "the group of each row"):
        transfer_report(MeanClusteredRegressor(), X, Y, cv=GroupKFold(3))


@pytest.mark.parametrize("groups, message", [
    (np.arange(89), "groups has 89 entries but the data have 90 rows: one group per row."),
    (np.zeros((90, 2)), r"groups must be 1-D with one group per row; got shape \(90, 2\)."),
    (np.where(np.arange(90) == 7, np.nan, 1.0),
     r"groups contains missing values \(rows \[7\]\); every row needs a group."),
    (np.where(np.arange(90) == 4, None, "g").astype(object),
     r"groups contains missing values \(rows \[4\]\); every row needs a group."),
])
def test_bad_groups(wide, groups, message):
    X, Y, _ = wide
    with pytest.raises(ValueError, match=message):
        cross_val_predict(MeanClusteredRegressor(), X, Y, groups=groups, cv=GroupKFold(3))


def test_a_group_splitter_that_empties_a_wide_task_names_it(wide):
    """A group splitter does not keep every task in every training fold: a wide task whose
    labels all sit in one group is an error naming the fold and the task, before any fit."""
    X, Y, groups = wide
    Y = Y.copy()
    Y[groups != 4, 2] = np.nan  # task 2 observed in group 4 only
    for function in (transfer_report, cross_val_predict):
        with pytest.raises(ValueError, match=r"Training fold \d of cv=LeaveOneGroupOut\(\) has "
                                             r"no label of task\(s\) 2: every task needs"):
            function(MeanClusteredRegressor(), X, Y, groups=groups, cv=LeaveOneGroupOut())


def test_long_task_left_out_of_training_is_unknown(long_samples):
    """On long data the model of a fold without a task raises when asked to predict it..."""
    X, y, task_ids, sample = long_samples
    groups = np.where(task_ids == "c", -1, sample)
    with pytest.raises(ValueError, match="task_ids contains task\\(s\\) not seen during fit: 'c'"):
        cross_val_predict(IndependentTasks(Ridge()), X, y, task_ids=task_ids, groups=groups,
                          cv=LeaveOneGroupOut())


def test_leave_one_task_out_scores_new_tasks(long_samples):
    """... or predicts it from its shared part: groups=task_ids scores each task as new."""
    X, y, task_ids, _ = long_samples
    model = MeanClusteredRegressor(alpha=0.1, unknown_task="shared")
    pred = cross_val_predict(model, X, y, task_ids=task_ids, groups=task_ids,
                             cv=LeaveOneGroupOut())
    for task in ("a", "b", "c"):
        held = task_ids == task
        fitted = sklearn.clone(model).fit(X[~held], y[~held], task_ids=task_ids[~held])
        np.testing.assert_allclose(pred[held], fitted.predict(X[held], task_ids=task_ids[held]),
                                   rtol=1e-12)
        # the shared part: the mean of the other tasks' models
        np.testing.assert_allclose(pred[held], X[held] @ fitted.coef_.mean(axis=0)
                                   + fitted.intercept_.mean(), rtol=1e-8)


def test_any_splitter_that_empties_a_wide_task_is_named_before_fitting(wide):
    """The same check for a splitter without groups (scikit-learn's KFold), where the fit
    itself would only say the task has no label "in Y"."""
    X, Y, _ = wide
    Y = Y.copy()
    Y[30:, 1] = np.nan  # task 1 observed in the first 30 rows only: KFold's first test fold
    with pytest.raises(ValueError, match=r"Training fold 0 of cv=KFold\(.*\) has no label of "
                                         r"task\(s\) 1: every task needs labels"):
        transfer_report(MeanClusteredRegressor(), X, Y, cv=KFold(3))


def test_a_stratified_splitter_on_a_wide_target_says_what_it_needs():
    """StratifiedGroupKFold stratifies a 1-D y: on a wide Y (NaN for missing labels) its own
    error was "Input contains NaN."."""
    from sklearn.model_selection import StratifiedGroupKFold

    from skmtl.datasets import make_multitask_classification
    from skmtl.linear import MeanClusteredClassifier

    X, Y = make_multitask_classification(n_samples=90, n_features=5, n_tasks=3,
                                         missing_rate=0.2, random_state=0)
    groups = np.arange(90) // 6
    with pytest.raises(ValueError, match=r"cv=StratifiedGroupKFold\(.*\) cannot split a wide Y "
                                         r"\(Input contains NaN.\): it stratifies on the "
                                         r"classes of a 1-D y. Use MultiTaskKFold"):
        transfer_report(MeanClusteredClassifier(), X, Y, cv=StratifiedGroupKFold(3),
                        groups=groups)


# -- a model whose own search splits by groups -------------------------------------------------
def test_transfer_report_gives_the_groups_to_a_model_with_a_group_splitter(wide):
    """A linear *CV estimator with a group splitter as its inner cv gets each training fold's
    groups in fit (its inner folds keep the groups together too), as in a loop by hand."""
    X, Y, groups = wide
    model = MeanClusteredRegressorCV(alphas=(1.0, 0.01), cluster_strengths=(1.0, 5.0),
                                     cv=GroupKFold(3, shuffle=True, random_state=0))
    outer = GroupKFold(3)
    report = transfer_report(model, X, Y, cv=outer, groups=groups, scoring="r2")
    scores = []
    for train, test in outer.split(X, Y, groups):
        fitted = sklearn.clone(model).fit(X[train], Y[train], groups=groups[train])
        pred = fitted.predict(X[test])
        observed = ~np.isnan(Y[test])
        scores.append([sklearn.metrics.r2_score(Y[test][observed[:, t], t],
                                                pred[observed[:, t], t]) for t in range(3)])
    np.testing.assert_allclose(report["score"], np.mean(scores, axis=0), rtol=1e-10)


def test_cross_val_predict_routes_groups_through_a_pipeline(long_samples):
    """Long data in a Pipeline: task_ids and the groups reach the *CV estimator's fit."""
    X, y, task_ids, sample = long_samples
    inner = MultiTaskGroupKFold(3, shuffle=True, random_state=0)
    model = make_pipeline(StandardScaler(),
                          MeanClusteredRegressorCV(alphas=(1.0, 0.01), cv=inner))
    outer = MultiTaskGroupKFold(4)
    pred = cross_val_predict(model, X, y, task_ids=task_ids, groups=sample, cv=outer)
    expected = np.empty_like(y)
    for train, test in outer.split(X, y, task_ids=task_ids, groups=sample):
        scaler = StandardScaler().fit(X[train])
        fitted = MeanClusteredRegressorCV(alphas=(1.0, 0.01), cv=inner).fit(
            scaler.transform(X[train]), y[train], task_ids=task_ids[train],
            groups=sample[train])
        expected[test] = fitted.predict(scaler.transform(X[test]), task_ids=task_ids[test])
    np.testing.assert_allclose(pred, expected, rtol=1e-10)


def test_groups_with_models_whose_routing_needs_it_on(wide):
    """RidgeCV's metadata routing recurses while routing is off (scikit-learn 1.9): the check
    of which models take the groups runs with it on, and RidgeCV takes none."""
    X, Y, groups = wide
    model, reference = PooledTasks(RidgeCV()), IndependentTasks(RidgeCV())
    report = transfer_report(model, X, Y, reference=reference, cv=GroupKFold(3), groups=groups)
    explicit = transfer_report(model, X, Y, reference=reference,
                               cv=list(GroupKFold(3).split(X, Y, groups)))
    np.testing.assert_array_equal(report["gain"], explicit["gain"])
