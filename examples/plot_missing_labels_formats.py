"""
===========================================
Missing labels and wide vs long formats
===========================================

A multi-task target can be given *wide*, one column per task with NaN for a missing label, or
*long*, one row per observed (sample, task) pair with a ``task_ids`` vector. This example
fits the single-task baseline :class:`~skmtl.IndependentTasks` on both forms of the same data
and checks that they give the same model, that ``predict(X, task_ids=...)`` picks each row's
own task, and that the values hidden behind the missing-label mask never change the fit.
"""

# %%
# Data: four regression tasks, half of the labels missing
# --------------------------------------------------------
# :func:`~skmtl.datasets.make_multitask_regression` draws four linear tasks on the same 10
# features and, with ``missing_rate=0.5``, removes half of the labels at random (NaN in the
# wide ``Y``); every task keeps observed labels. We hold out a quarter of the rows for testing.

import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split

from skmtl import IndependentTasks
from skmtl.datasets import make_multitask_regression
from skmtl.metrics import r2_score

X_all, Y_all = make_multitask_regression(
    n_samples=400,
    n_features=10,
    n_tasks=4,
    task_std=0.5,
    noise=0.5,
    missing_rate=0.5,
    random_state=0,
)
X, X_test, Y, Y_test = train_test_split(X_all, Y_all, test_size=0.25, random_state=0)
missing = np.isnan(Y)
print(f"Y: {Y.shape}, {missing.mean():.0%} of the labels missing")
print(f"observed labels per task: {(~missing).sum(axis=0)}")

# %%
# Fit on the wide target
# ----------------------
# ``Y`` is ``(n_samples, n_tasks)`` with NaN where a label is missing. Each task's Ridge is
# fitted on that task's observed rows only.

wide = IndependentTasks(Ridge(alpha=1.0)).fit(X, Y)
print("tasks_:", wide.tasks_)
print("predict(X) shape:", wide.predict(X).shape)
print(f"score (mean R^2 over tasks, observed labels only): {wide.score(X, Y):.3f}")

# %%
# The same data in long format
# ----------------------------
# Long format keeps one row per observed label: the sample's features, the label and the task
# it belongs to. Samples observed for several tasks appear several times.

sample, task = np.nonzero(~np.isnan(Y))
X_long, y_long, task_ids = X[sample], Y[sample, task], task
print(f"wide: {Y.shape} with {np.isnan(Y).sum()} NaN; long: {y_long.shape[0]} rows")

long = IndependentTasks(Ridge(alpha=1.0)).fit(X_long, y_long, task_ids=task_ids)

# %%
# Both fits learned the same per-task models: same coefficients, same predictions.

coef_wide = np.array([est.coef_ for est in wide.estimators_])
coef_long = np.array([est.coef_ for est in long.estimators_])
assert np.array_equal(long.tasks_, wide.tasks_)
assert np.allclose(coef_wide, coef_long)
assert np.allclose(wide.predict(X), long.predict(X))

# %%
# A long-format model is scored on long data with its ``task_ids`` (without them ``score``
# raises a ValueError, since it cannot know each row's task). Scoring the wide model on the
# wide ``Y`` and the long model on the long rows uses the same observed labels, so the scores
# agree.

score_wide = wide.score(X, Y)
score_long = long.score(X_long, y_long, task_ids=task_ids)
print(f"wide score: {score_wide:.6f}   long score: {score_long:.6f}")
assert np.isclose(score_wide, score_long)

try:
    long.score(X_long, y_long)
except ValueError as exc:
    print(f"score without task_ids: {exc}")

# %%
# Predicting each row's own task
# ------------------------------
# ``predict(X)`` returns every task for every row. With ``task_ids`` it returns one value per
# row: the prediction of that row's task, i.e. one entry of each row of the wide prediction.

pred_own = long.predict(X_long, task_ids=task_ids)
print("predict(X_long, task_ids=...) shape:", pred_own.shape)
assert np.allclose(pred_own, wide.predict(X)[sample, task])

# %%
# Per-task R^2
# ------------
# :func:`skmtl.metrics.r2_score` computes R^2 on each task's observed labels;
# ``multioutput="raw_values"`` returns one value per task instead of their mean. We score the
# held-out rows, which have missing labels too.

per_task = r2_score(Y_test, wide.predict(X_test), multioutput="raw_values")
assert np.isclose(per_task.mean(), wide.score(X_test, Y_test))

fig, ax = plt.subplots(figsize=(5, 3))
ax.bar([f"task {t}" for t in wide.tasks_], per_task, color="tab:blue")
ax.axhline(per_task.mean(), color="black", linestyle="--", label=f"mean {per_task.mean():.3f}")
ax.set_ylabel("test R$^2$ (observed labels)")
ax.set_ylim(0, 1)
ax.set_title("IndependentTasks(Ridge): per-task R$^2$")
ax.legend(loc="lower right")
fig.tight_layout()

# %%
# Values behind the mask never change the fit
# -------------------------------------------
# A missing label may be written as NaN, or as ``None`` in an object array; either way, what
# the model learns depends only on the observed labels. Below, the missing entries are
# replaced by ``None``, and, through the estimator's internal hook, by huge arbitrary numbers
# behind the same mask: the coefficients do not move.

Y_none = Y.astype(object)
Y_none[missing] = None
with_none = IndependentTasks(Ridge(alpha=1.0)).fit(X, Y_none)
assert np.allclose(with_none.predict(X), wide.predict(X))

mask = ~missing
rng = np.random.RandomState(0)
garbage = np.where(mask, Y, rng.normal(scale=1e6, size=Y.shape))
hooked = IndependentTasks(Ridge(alpha=1.0)).fit(X, Y)
hooked._fit_multitask(X, garbage, mask)  # the private hook every estimator implements
coef_hooked = np.array([est.coef_ for est in hooked.estimators_])
assert np.allclose(coef_hooked, coef_wide)
print("max coefficient change with garbage behind the mask:", np.abs(coef_hooked - coef_wide).max())
