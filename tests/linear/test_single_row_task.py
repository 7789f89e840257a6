"""A task with one training row: its intercept fits the row, so the penalty alone sets its
slopes (docs/user_guide/linear.rst, "Tasks with very few rows")."""

import numpy as np
import pytest

from skmtl.linear import (
    ClusteredTasksRegressor,
    HierarchicalRegressor,
    LowRankRegressor,
    MeanClusteredRegressor,
    TaskRelationRegressor,
)


def _one_row_task(seed=0, d=4):
    """Five tasks of 30 rows sharing slopes, and a sixth task with a single row (long data)."""
    rng = np.random.default_rng(seed)
    task_ids = np.repeat(np.arange(6), [30] * 5 + [1])
    X = rng.normal(size=(len(task_ids), d))
    y = X @ rng.normal(size=d) + 0.3 * rng.normal(size=len(task_ids))
    return X, y, task_ids


@pytest.mark.parametrize("model", [TaskRelationRegressor(alpha=0.1),
                                   TaskRelationRegressor(alpha=0.01, relation_ratio=0.9),
                                   LowRankRegressor(alpha=0.01)],
                         ids=["task_relation", "task_relation_mostly_relation", "low_rank"])
def test_penalties_towards_zero_give_it_zero_slopes(model):
    X, y, task_ids = _one_row_task()
    model.fit(X, y, task_ids=task_ids)
    assert np.abs(model.coef_[:5]).min() > 0.05  # the other tasks do have slopes
    np.testing.assert_allclose(model.coef_[5], 0.0, atol=1e-8)
    # its intercept fits its row
    assert X[-1] @ model.coef_[5] + model.intercept_[5] == pytest.approx(y[-1], abs=1e-6)


@pytest.mark.parametrize("strength", [1.0, 5.0, 50.0])
def test_mean_clustered_gives_it_a_fraction_of_the_mean_task(strength):
    # stationarity in w_t with a zero loss gradient: w_bar + c (w_t - w_bar) = 0
    X, y, task_ids = _one_row_task()
    model = MeanClusteredRegressor(alpha=0.1, cluster_strength=strength).fit(
        X, y, task_ids=task_ids)
    np.testing.assert_allclose(model.coef_[5], (1 - 1 / strength) * model.shared_coef_,
                               atol=1e-10)


def test_clustered_tasks_gives_it_a_fraction_of_its_cluster_mean():
    # w_bar + between (w_bar_c - w_bar) + within (w_t - w_bar_c) = 0; one cluster: w_bar_c =
    # w_bar, so w_t = (1 - 1 / within) w_bar_c
    X, y, task_ids = _one_row_task()
    model = ClusteredTasksRegressor(alpha=0.1, n_clusters=1, within=4.0).fit(
        X, y, task_ids=task_ids)
    np.testing.assert_allclose(model.coef_[5], 0.75 * model.cluster_coef_[0], atol=1e-8)
    # alone in its cluster (the default two clusters here), its cluster mean is itself: 0
    model = ClusteredTasksRegressor(alpha=0.1, random_state=0).fit(X, y, task_ids=task_ids)
    assert np.sum(model.task_clusters_ == model.task_clusters_[5]) == 1
    np.testing.assert_allclose(model.coef_[5], 0.0, atol=1e-8)


def test_hierarchical_shrinks_it_to_the_mean_slopes():
    X, y, task_ids = _one_row_task()
    model = HierarchicalRegressor().fit(X, y, task_ids=task_ids)
    deviation = np.linalg.norm(model.coef_ - model.shared_coef_, axis=1)
    # its one residual moves it less from the mean than 30 rows move any other task
    assert deviation[5] < deviation[:5].min()
    assert deviation[5] < 0.01 * np.linalg.norm(model.shared_coef_)
