"""
=====================================================================
Learning how tasks relate: clusters, low rank, a task covariance
=====================================================================

Thirty regression tasks fall into three groups of ten: the tasks of a group share one
coefficient vector (up to small differences), the groups do not. Each task has only 25 rows
to learn from, 8 features and noisy labels. One ridge regression per task
(:class:`~skmtl.IndependentTasks` around :class:`~sklearn.linear_model.RidgeCV`) learns each
task from its 25 rows alone; the three models below learn which tasks resemble which, and
borrow strength from them:

- :class:`~skmtl.linear.ClusteredTasksRegressorCV` looks for ``n_clusters`` groups and pulls
  each task towards its group's mean;
- :class:`~skmtl.linear.LowRankRegressorCV` penalises the trace norm of the coefficient
  matrix: thirty tasks spread around three vectors make a matrix close to rank three;
- :class:`~skmtl.linear.TaskRelationRegressorCV` learns a task covariance (Zhang & Yeung,
  2010) and penalises the coefficients through it.

We compare their held-out explained variance, check that the clusters are found, look at how
many directions the low-rank model keeps, and draw the task correlation the relationship
model learned.
"""

# %%
# Three groups of ten tasks
# -------------------------

import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.metrics import adjusted_rand_score, explained_variance_score

from skmtl import IndependentTasks
from skmtl.linear import (
    ClusteredTasksRegressorCV,
    LowRankRegressor,
    LowRankRegressorCV,
    TaskRelationRegressorCV,
)
from skmtl.plotting import AffinityDisplay

rng = np.random.default_rng(0)
n_groups, per_group, n_rows, n_features = 3, 10, 25, 8
n_tasks = n_groups * per_group
group = np.repeat(np.arange(n_groups), per_group)
centres = 2.0 * rng.normal(size=(n_groups, n_features))
coef = centres[group] + 0.2 * rng.normal(size=(n_tasks, n_features))


def draw(rows_per_task):
    task_ids = np.repeat(np.arange(n_tasks), rows_per_task)
    X = rng.normal(size=(task_ids.size, n_features))
    y = np.einsum("ij,ij->i", X, coef[task_ids]) + 2.0 * rng.normal(size=task_ids.size)
    return X, y, task_ids


X, y, task_ids = draw(n_rows)
X_test, y_test, test_ids = draw(200)
print(f"{n_tasks} tasks in {n_groups} groups, {n_rows} training rows each")

# %%
# Four models, scored on held-out rows
# ------------------------------------
# The three multi-task models choose their strength ``alpha`` by 3-fold cross-validation on
# the training rows (the clustered one is told there are three groups; the relationship model
# keeps its default ``relation_ratio=0.5``, which its CV variant does not search).

models = {
    "IndependentTasks(RidgeCV())": IndependentTasks(RidgeCV()),
    "ClusteredTasksRegressorCV": ClusteredTasksRegressorCV(n_clusters=3, cv=3, random_state=0),
    "LowRankRegressorCV": LowRankRegressorCV(cv=3),
    "TaskRelationRegressorCV": TaskRelationRegressorCV(cv=3),
}
scores = {}
for name, model in models.items():
    model.fit(X, y, task_ids=task_ids)
    scores[name] = explained_variance_score(y_test, model.predict(X_test, task_ids=test_ids))
    print(f"{name:<28} held-out explained variance {scores[name]:.3f}")

reference = scores["IndependentTasks(RidgeCV())"]
assert all(score > reference for name, score in scores.items() if name != next(iter(models)))

clusters = models["ClusteredTasksRegressorCV"].task_clusters_
ari = adjusted_rand_score(group, clusters)
print(f"clusters found: adjusted Rand index {ari:.2f} against the true groups")
assert ari >= 0.9

# %%
# How many directions the low-rank model keeps
# --------------------------------------------
# ``rank_`` counts the nonzero singular values of ``coef_``, and the alpha that predicts best
# keeps more than three: as a cross-validated (group) lasso selects more features than the
# true ones, a cross-validated trace norm keeps small singular values whose directions
# compensate the shrinkage of the large ones. The three directions show in the gap after the
# third singular value. An ``alpha`` large enough to give rank three (2.5 times the chosen
# one, on the same standardised features) shrinks the three directions too, and predicts
# worse.

low_rank = models["LowRankRegressorCV"]
print(f"rank_ {low_rank.rank_}; singular values {np.round(low_rank.singular_values_, 2)}")
assert low_rank.singular_values_[2] > 5 * low_rank.singular_values_[3]  # the gap after three
stronger = LowRankRegressor(alpha=2.5 * low_rank.alpha_, standardize=True)
stronger.fit(X, y, task_ids=task_ids)
stronger_score = explained_variance_score(y_test, stronger.predict(X_test, task_ids=test_ids))
print(f"alpha 2.5 times the chosen one: rank_ {stronger.rank_}, "
      f"held-out explained variance {stronger_score:.3f}")
assert stronger.rank_ == 3 and stronger_score < scores["LowRankRegressorCV"]

# %%
# The task correlation the relationship model learned
# ---------------------------------------------------
# :class:`~skmtl.plotting.AffinityDisplay` orders the tasks by a hierarchical clustering of
# the matrix: the three blocks of strongly correlated tasks are the three groups.

fig, ax = plt.subplots(figsize=(6.5, 5.5))
AffinityDisplay.from_estimator(models["TaskRelationRegressorCV"], ax=ax, include_values=False)
ax.set_title("TaskRelationRegressorCV: task_correlation_")
fig.tight_layout()
