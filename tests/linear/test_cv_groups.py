"""A group splitter as the inner ``cv`` of the linear ``*CV`` estimators: ``fit(..., groups=)``
gives it the groups, the grid is scored on its folds (the same as those folds passed by hand),
and a search or ``cross_validate`` routes its ``groups`` there with metadata routing."""

import numpy as np
import pandas as pd
import pytest
import sklearn
from _instances import INSTANCES
from sklearn.base import clone
from sklearn.model_selection import (
    GridSearchCV,
    GroupKFold,
    KFold,
    LeaveOneGroupOut,
    cross_validate,
)

from skmtl.datasets import make_multitask_classification, make_multitask_regression
from skmtl.linear import MeanClusteredRegressorCV
from skmtl.model_selection import MultiTaskGroupKFold

# every linear *CV estimator, as the common tests build it (small grids), with cv set per test
CV_NAMES = sorted(name for name in INSTANCES if name.endswith("CV"))


def instance(name, cv):
    return clone(INSTANCES[name][0]).set_params(cv=cv)


def data(name):
    """Wide data with missing labels and 15 groups of 6 consecutive rows."""
    if "Classifier" in name:
        X, Y = make_multitask_classification(n_samples=90, n_features=5, n_tasks=3,
                                             missing_rate=0.2, random_state=0)
    else:
        X, Y = make_multitask_regression(n_samples=90, n_features=5, n_tasks=3, noise=0.5,
                                         missing_rate=0.2, random_state=0)
    return X, Y, np.arange(90) // 6


def same_search(a, b):
    for key in ("mean_test_score", "split0_test_score", "split2_test_score"):
        np.testing.assert_allclose(a.cv_results_[key], b.cv_results_[key], rtol=1e-9)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-9, atol=1e-12)


def assert_whole_groups(folds, groups):
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])


@pytest.mark.parametrize("name", CV_NAMES)
def test_group_splitter_scores_its_own_folds(name):
    X, Y, groups = data(name)
    splitter = GroupKFold(3, shuffle=True, random_state=0)
    folds = list(splitter.split(X, Y, groups))
    assert_whole_groups(folds, groups)
    model = instance(name, splitter).fit(X, Y, groups=groups)
    same_search(model, instance(name, folds).fit(X, Y))


def test_multitask_group_kfold_on_long_data_keeps_samples_together():
    """Long data, a row per (sample, task): the sample is the group, and MultiTaskGroupKFold
    receives the task ids as well."""
    X_wide, Y = make_multitask_regression(n_samples=60, n_features=5, n_tasks=3, noise=0.5,
                                          random_state=1)
    sample = np.repeat(np.arange(60), 3)
    task_ids = np.tile(np.array(["a", "b", "c"]), 60)
    X, y = X_wide[sample], Y[sample, np.tile(np.arange(3), 60)]
    splitter = MultiTaskGroupKFold(3, shuffle=True, random_state=0)
    folds = list(splitter.split(X, y, task_ids=task_ids, groups=sample))
    assert_whole_groups(folds, sample)
    model = MeanClusteredRegressorCV(alphas=(1.0, 0.01), cluster_strengths=(1.0,), cv=splitter)
    model.fit(X, y, task_ids=task_ids, groups=sample)
    reference = clone(model).set_params(cv=folds).fit(X, y, task_ids=task_ids)
    same_search(model, reference)


@pytest.mark.parametrize("cv, described", [(3, "cv=3"), (None, "cv=None"),
                                           (KFold(3), "cv=KFold")])
def test_groups_with_a_splitter_that_ignores_them_raises(cv, described):
    X, Y, groups = data("MeanClusteredRegressorCV")
    with pytest.raises(ValueError, match=rf"groups is given, but {described}.* does not split "
                                         r"by groups"):
        instance("MeanClusteredRegressorCV", cv).fit(X, Y, groups=groups)


def test_group_splitter_without_groups_raises_and_names_routing():
    X, Y, _ = data("LowRankRegressorCV")
    with pytest.raises(ValueError, match=r"splits by groups: pass groups.*"
                                         r"enable_metadata_routing=True"):
        instance("LowRankRegressorCV", GroupKFold(3)).fit(X, Y)


def test_groups_of_the_wrong_length_raise():
    X, Y, groups = data("MeanClusteredRegressorCV")
    with pytest.raises(ValueError, match=r"groups has 89 entries but the data have 90 rows"):
        instance("MeanClusteredRegressorCV", GroupKFold(3)).fit(X, Y, groups=groups[:-1])


def test_a_group_split_without_a_task_in_training_names_fold_and_task():
    X, Y, groups = data("MeanClusteredRegressorCV")
    Y[:, 1] = np.nan
    Y[:6, 1] = np.arange(6.0)  # task 1 only in group 0, the first test fold
    with pytest.raises(ValueError, match=r"Training fold 0 of cv=LeaveOneGroupOut\(\) has no "
                                         r"label of task\(s\) 1"):
        instance("MeanClusteredRegressorCV", LeaveOneGroupOut()).fit(X, Y, groups=groups)


def test_the_estimator_routes_groups_to_its_splitter():
    router = instance("TaskRelationRegressorCV", GroupKFold(3)).get_metadata_routing()
    assert router.consumes("fit", ["groups", "task_ids"]) == {"groups", "task_ids"}
    # an int cv is a MultiTaskKFold, which takes task_ids and no groups
    router = instance("TaskRelationRegressorCV", 3).get_metadata_routing()
    assert router.consumes("fit", ["groups", "task_ids"]) == {"task_ids"}
    # folds given as a generator: the routing neither routes to it nor consumes it
    X, Y, _ = data("MeanClusteredRegressorCV")
    model = instance("MeanClusteredRegressorCV", (fold for fold in KFold(3).split(X)))
    assert model.get_metadata_routing().consumes("fit", ["groups"]) == set()
    assert "split2_test_score" in model.fit(X, Y).cv_results_


def test_search_routes_groups_to_the_inner_splitter():
    """GridSearchCV's groups reach both its own splitter and the model's inner one; the refit
    is the model fitted on all rows with those groups."""
    name = "MeanClusteredRegressorCV"
    X, Y, groups = data(name)
    inner = GroupKFold(3, shuffle=True, random_state=1)
    search = GridSearchCV(instance(name, inner), {"cluster_strengths": [(1.0,), (5.0,)]},
                          cv=GroupKFold(3))
    with sklearn.config_context(enable_metadata_routing=True):
        search.fit(X, Y, groups=groups)
    direct = instance(name, inner).set_params(**search.best_params_).fit(X, Y, groups=groups)
    same_search(search.best_estimator_, direct)
    # without routing the inner splitter gets no groups, and the error says how to route them
    with pytest.raises(ValueError, match="enable_metadata_routing=True"):
        clone(search).set_params(error_score="raise").fit(X, Y, groups=groups)


def test_search_with_an_int_inner_cv_takes_outer_groups():
    """With routing on, a search's groups go to its group splitter only; the model's int cv
    (MultiTaskKFold) does not request them, so they are not passed (and not an error)."""
    name = "LowRankRegressorCV"
    X, Y, groups = data(name)
    search = GridSearchCV(instance(name, 3), {"fit_intercept": [True]}, cv=GroupKFold(3))
    with sklearn.config_context(enable_metadata_routing=True):
        search.fit(X, Y, groups=groups)
    np.testing.assert_allclose(search.best_estimator_.coef_,
                               instance(name, 3).fit(X, Y).coef_, rtol=1e-9)


def test_cross_validate_routes_groups_to_both_splitters():
    name = "ClusteredTasksRegressorCV"
    X, Y, groups = data(name)
    outer, inner = GroupKFold(3), GroupKFold(3, shuffle=True, random_state=2)
    with sklearn.config_context(enable_metadata_routing=True):
        scores = cross_validate(instance(name, inner), X, Y, cv=outer,
                                params={"groups": groups})["test_score"]
    expected = [instance(name, inner).fit(X[train], Y[train], groups=groups[train])
                .score(X[test], Y[test]) for train, test in outer.split(X, Y, groups)]
    np.testing.assert_allclose(scores, expected, rtol=1e-9)


def test_multitask_group_kfold_names_the_users_task():
    """A task whose labels lie in one group cannot be in every training fold: the message
    names it by the user's column, not by its position among the columns the fit kept."""
    X, Y, groups = data("MeanClusteredRegressorCV")
    Y = pd.DataFrame(Y, columns=["alpha", "beta", "gamma"])
    Y.iloc[6:, 2] = np.nan  # gamma only in group 0
    with pytest.raises(ValueError, match=r"task\(s\) 'gamma' keep observed labels"):
        instance("MeanClusteredRegressorCV", MultiTaskGroupKFold(3)).fit(X, Y, groups=groups)
