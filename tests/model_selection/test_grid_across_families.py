"""One GridSearchCV across the model families: single-task, mean-clustered, block-sparse, the
learned task relationships (clusters, low rank, task covariance, hierarchical) and deep MTL
(sharing strategies x loss weightings), as the steps of one Pipeline, on wide Y with missing
labels and on long data (task_ids through metadata routing)."""

import numpy as np
import pytest
import sklearn

torch = pytest.importorskip("torch")

from sklearn.base import clone  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from skmtl import IndependentTasks  # noqa: E402
from skmtl.datasets import make_multitask_regression  # noqa: E402
from skmtl.deep import MultiTaskRegressor  # noqa: E402
from skmtl.linear import (  # noqa: E402
    BlockSparseRegressor,
    ClusteredTasksRegressor,
    HierarchicalRegressor,
    LowRankRegressor,
    MeanClusteredRegressor,
    TaskRelationRegressor,
)
from skmtl.metrics import r2_score  # noqa: E402
from skmtl.model_selection import MultiTaskKFold  # noqa: E402

DEEP = dict(hidden_layer_sizes=(8,), max_epochs=3, batch_size=16, lr=1e-2, random_state=0)


def families():
    """The grid: one entry per family, each with its own parameters."""
    alphas = [0.3, 0.03]
    return [
        {"model": [IndependentTasks(Ridge())], "model__estimator__alpha": [1.0, 10.0]},
        {"model": [MeanClusteredRegressor()], "model__cluster_strength": [0.1, 10.0]},
        {"model": [BlockSparseRegressor()], "model__alpha": alphas},
        {"model": [ClusteredTasksRegressor(random_state=0)], "model__alpha": alphas},
        {"model": [LowRankRegressor()], "model__alpha": alphas},
        {"model": [TaskRelationRegressor()], "model__alpha": alphas},
        {"model": [HierarchicalRegressor()]},
        {"model": [MultiTaskRegressor(**DEEP)], "model__sharing": ["hard", "cross_stitch"],
         "model__weighting": ["equal", "uncertainty"]},
    ]


def _name(params):
    return type(params["model"]).__name__


def _check_search(search, n_candidates):
    results = search.cv_results_
    assert len(results["params"]) == n_candidates
    for key in ("split0_test_score", "split1_test_score", "split2_test_score"):
        assert np.all(np.isfinite(results[key])), key
    assert {_name(p) for p in results["params"]} == {
        "IndependentTasks", "MeanClusteredRegressor", "BlockSparseRegressor",
        "ClusteredTasksRegressor", "LowRankRegressor", "TaskRelationRegressor",
        "HierarchicalRegressor", "MultiTaskRegressor"}
    assert search.best_index_ == int(np.argmax(results["mean_test_score"]))


def test_one_search_across_the_families_on_wide_data_with_missing_labels():
    """17 candidates, every score finite; the best one's score of fold 0 equals the masked R^2
    of the same pipeline refitted on that fold by hand, and it beats the single-task
    reference (related tasks, 60 % of the labels missing)."""
    X, Y = make_multitask_regression(n_samples=80, n_features=6, n_tasks=6, n_informative=3,
                                     task_std=0.2, noise=1.0, missing_rate=0.6, random_state=0)
    pipe = Pipeline([("scale", StandardScaler()), ("model", IndependentTasks(Ridge()))])
    cv = MultiTaskKFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(pipe, families(), cv=cv, error_score="raise").fit(X, Y)
    _check_search(search, 17)
    results = search.cv_results_
    train, test = next(cv.split(X, Y))
    refit = clone(pipe).set_params(**search.best_params_).fit(X[train], Y[train])
    assert results["split0_test_score"][search.best_index_] == pytest.approx(
        r2_score(Y[test], refit.predict(X[test])), abs=1e-12)
    stl = max(s for s, p in zip(results["mean_test_score"], results["params"])
              if _name(p) == "IndependentTasks")
    assert search.best_score_ > stl + 0.02
    assert search.best_estimator_.predict(X[:4]).shape == (4, 6)


def test_one_search_across_the_families_on_long_data():
    """The same grid on long data, task_ids routed to every fit and score."""
    X, y, task_ids = make_multitask_regression(
        n_samples=25, n_features=6, n_tasks=6, n_informative=3, task_std=0.2, noise=1.0,
        format="long", random_state=1)
    pipe = Pipeline([("scale", StandardScaler()), ("model", IndependentTasks(Ridge()))])
    cv = MultiTaskKFold(3, shuffle=True, random_state=0)
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(pipe, families(), cv=cv, error_score="raise").fit(
            X, y, task_ids=task_ids)
        _check_search(search, 17)
        train, test = next(cv.split(X, y, task_ids=task_ids))
        refit = clone(pipe).set_params(**search.best_params_).fit(
            X[train], y[train], task_ids=task_ids[train])
        by_hand = r2_score(y[test], refit.predict(X[test], task_ids=task_ids[test]),
                           task_ids=task_ids[test])
        assert search.cv_results_["split0_test_score"][search.best_index_] == pytest.approx(
            by_hand, abs=1e-12)
        assert search.best_estimator_.predict(X[:3], task_ids=task_ids[:3]).shape == (3,)
