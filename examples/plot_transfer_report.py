"""
===========================================
A transfer report with the pairwise matrix
===========================================

Sharing information between tasks helps a task when the others resemble it, and hurts it when
they pull the other way: *negative transfer*. This example builds tasks of both kinds, asks
:func:`~skmtl.model_selection.transfer_report` which tasks gain and which lose when all
tasks are pooled into one model, looks at the task-by-task picture with
:func:`~skmtl.model_selection.pairwise_transfer`, and compares the pooled model with a
mean-clustered model that shares less.
"""

# %%
# Related and conflicting tasks
# -----------------------------
# :func:`~skmtl.datasets.make_multitask_regression` draws eight linear tasks whose
# coefficients scatter around a common mean vector. With ``n_conflicting=2`` the last two
# tasks are centred on *minus* that mean: they contradict the six others. With 100 noisy
# samples for 50 features, each task alone is hard to learn, so the related tasks have much
# to gain from one another.

import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import Ridge

from skmtl import IndependentTasks, PooledTasks
from skmtl.datasets import make_multitask_regression
from skmtl.linear import MeanClusteredRegressorCV
from skmtl.model_selection import pairwise_transfer, transfer_report
from skmtl.plotting import AffinityDisplay, StrategyComparisonDisplay, TransferDisplay

X, Y = make_multitask_regression(
    n_samples=100,
    n_features=50,
    n_informative=20,
    n_tasks=8,
    n_conflicting=2,
    noise=2.0,
    random_state=0,
)
related, conflicting = np.arange(6), np.array([6, 7])
print(f"X: {X.shape}, Y: {Y.shape}; tasks 6 and 7 conflict with the others")

# %%
# The transfer report
# -------------------
# :class:`~skmtl.PooledTasks` fits one ridge regression to the rows of all tasks;
# its single-task reference is :class:`~skmtl.IndependentTasks` with the same ridge, one per
# task. ``transfer_report`` cross-validates both on the same five
# :class:`~skmtl.model_selection.MultiTaskKFold` folds and reports, per task, the mean test
# R^2 of each, the gain (their paired difference), its standard error over the folds, and
# ``negative_transfer``: the gain is below minus one standard error.

report = transfer_report(PooledTasks(Ridge()), X, Y)
print(report.round(3).to_string(index=False))

# %%
# Pooling lifts every related task and wrecks the two conflicting ones: the pooled model
# predicts them with the wrong sign, so their R^2 falls below zero.

assert not report["negative_transfer"][related].any()
assert report["negative_transfer"][conflicting].all()
assert (report["score"][conflicting] < 0).all()

TransferDisplay.from_report(report)
plt.show()

# %%
# Which task helps which
# ----------------------
# The report says *that* tasks 6 and 7 suffer, not *from whom*. ``pairwise_transfer`` trains
# the model on every single task and on every pair of tasks (3 folds here): entry ``[i, j]``
# is the change of task ``i``'s R^2 when task ``j`` joins its training set. The affinity
# display orders the tasks by hierarchical clustering of their rows and columns, so groups
# of tasks that help one another appear as blocks.

matrix = pairwise_transfer(PooledTasks(Ridge()), X, Y, cv=3)
print(matrix.round(2))

# %%
# Two blocks: the related tasks help one another (positive entries), the two conflicting tasks
# help each other, and every pair across the groups hurts.

values = matrix.to_numpy()
assert (values[np.ix_(related, conflicting)] < 0).all()
assert (values[np.ix_(conflicting, related)] < 0).all()
assert values[6, 7] > 0 and values[7, 6] > 0

display = AffinityDisplay.from_report(matrix)
print("tasks in clustering order:", display.order_)
plt.show()

# %%
# Sharing less: mean-clustered learning
# -------------------------------------
# :class:`~skmtl.linear.MeanClusteredRegressorCV` gives every task its own coefficients and
# only pulls them towards the tasks' mean, by an amount chosen by inner cross-validation.
# :class:`~skmtl.plotting.StrategyComparisonDisplay` runs the transfer report of both models
# on the same folds (the shared single-task reference is fitted once per fold) and draws
# their gains side by side; hatched bars are negative transfer.

comparison = StrategyComparisonDisplay.from_estimators(
    {"pooled": PooledTasks(Ridge()), "mean-clustered": MeanClusteredRegressorCV()},
    X,
    Y,
    reference=IndependentTasks(Ridge()),
)
plt.show()

# %%
# The mean-clustered model gains on the related tasks about as much as pooling, and turns
# the large losses of the conflicting tasks into small ones: a task whose data disagree with
# the mean keeps coefficients of its own. (Small losses remain: the pull towards the mean is
# one strength for all tasks, chosen for the tasks on average.)

gains = {name: np.array([bar.get_height() for bar in bars])
         for name, bars in comparison.bars_.items()}
print({name: gain.round(2).tolist() for name, gain in gains.items()})
assert (gains["mean-clustered"][related] > 0).all()
assert (gains["mean-clustered"][conflicting] > gains["pooled"][conflicting] + 0.5).all()
