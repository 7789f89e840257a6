"""
=====================================================================
GridSearchCV over sharing strategies and weightings in a Pipeline
=====================================================================

How the tasks share parameters (``sharing``) and how their losses are combined
(``weighting``) are ordinary, flat parameters of :class:`~skmtl.deep.MultiTaskClassifier`.
A :class:`~sklearn.model_selection.GridSearchCV` can therefore search them like any other
hyper-parameter, here through a :class:`~sklearn.pipeline.Pipeline` with a scaler, over all
eleven sharing strategies and all nine weightings: 99 cells.

The data: five binary tasks with related decision functions, half of the labels missing.
The folds come from :class:`~skmtl.model_selection.MultiTaskKFold`, which keeps every task
(and both classes of every task) in every training fold, and the score is the macro ROC-AUC
over the tasks, each on its observed test labels.
"""

# %%
# The data: a wide Y with missing labels
# --------------------------------------

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skmtl.datasets import make_multitask_classification
from skmtl.deep import SHARING, WEIGHTINGS, MultiTaskClassifier
from skmtl.deep.weighting import FixedWeighting
from skmtl.metrics import make_multitask_scorer, roc_auc_score
from skmtl.model_selection import MultiTaskKFold

torch.set_num_threads(1)  # small networks: one thread is as fast

X, Y = make_multitask_classification(
    n_samples=240, n_features=20, n_tasks=5, n_informative=5, task_std=0.3, noise=1.0,
    missing_rate=0.5, random_state=0,
)
X_train, X_test, Y_train, Y_test = train_test_split(X, Y, test_size=0.3, random_state=0)
n_tasks = Y.shape[1]
print(f"Y: {Y.shape}, {np.isnan(Y).mean():.0%} of the labels missing; "
      f"training labels per task: {(~np.isnan(Y_train)).sum(axis=0).tolist()}")

# %%
# The search
# ----------
# ``"fixed"`` weighting needs its ``task_weights``: it enters the grid as a
# ``FixedWeighting(task_weights=...)`` instance (a weighting is a small estimator, cloned at
# fit), beside the names of the other weightings. For illustration, the fixed weights double
# the weight of the last task. Every cell is a small network (one hidden layer of 16 units,
# 15 epochs, no dropout and no early stopping: with about 40 training rows per task and fold,
# the default 10 % validation split would hold four labels of a task) with the same
# ``random_state``, so the cells differ only by the searched parameters. ``"conditioned"``
# sharing uses its default ``conditioning="concat"``; add
# ``"model__conditioning": ["concat", "sum", "multiplicative"]`` to a grid to search it too.

pipe = Pipeline([
    ("scale", StandardScaler()),
    ("model", MultiTaskClassifier(hidden_layer_sizes=(16,), max_epochs=15, batch_size=32,
                                  lr=1e-2, dropout=0.0, early_stopping=False,
                                  random_state=0)),
])
fixed = FixedWeighting(task_weights=[1.0] * (n_tasks - 1) + [2.0])
param_grid = {
    "model__sharing": list(SHARING),
    "model__weighting": [w if w != "fixed" else fixed for w in WEIGHTINGS],
}
search = GridSearchCV(
    pipe, param_grid, scoring=make_multitask_scorer("roc_auc"),
    cv=MultiTaskKFold(2, shuffle=True, random_state=0),
).fit(X_train, Y_train)
print(f"{len(search.cv_results_['params'])} cells; best: {search.best_params_}, "
      f"mean CV ROC-AUC {search.best_score_:.3f}")

# %%
# The mean CV score of every cell
# -------------------------------

def name_of(weighting):
    """The column of a weighting: its name, or "fixed" for the FixedWeighting instance."""
    return weighting if isinstance(weighting, str) else "fixed"


results = search.cv_results_
scores = np.full((len(SHARING), len(WEIGHTINGS)), np.nan)
for params, score in zip(results["params"], results["mean_test_score"]):
    scores[SHARING.index(params["model__sharing"]),
           WEIGHTINGS.index(name_of(params["model__weighting"]))] = score
assert np.all(np.isfinite(scores))

fig, ax = plt.subplots(figsize=(8, 4.5))
image = ax.imshow(scores, cmap="viridis", aspect="auto")
ax.set_xticks(np.arange(len(WEIGHTINGS)), WEIGHTINGS, rotation=35, ha="right")
ax.set_yticks(np.arange(len(SHARING)), SHARING)
ax.set_xlabel("weighting")
ax.set_ylabel("sharing")
middle = (np.nanmax(scores) + np.nanmin(scores)) / 2
for i in range(len(SHARING)):
    for j in range(len(WEIGHTINGS)):
        ax.text(j, i, f"{scores[i, j]:.3f}", ha="center", va="center", fontsize=8,
                color="black" if scores[i, j] > middle else "white")
fig.colorbar(image, ax=ax, label="mean CV ROC-AUC")
ax.set_title("GridSearchCV: sharing x weighting")
fig.tight_layout()

# %%
# Reading the grid
# ----------------
# The rows differ far more than the columns: on these related tasks, *how* the tasks share
# parameters matters more than how their losses are weighted. Every sharing strategy but
# ``"adaptive"`` beats independent networks, whatever the weighting. ``"adaptive"`` is at their
# level in the search: in a 2-fold cell its thin network trains for 7 epochs on about 40
# labels per task, the gradient affinity it then branches on is mostly noise, and it splits
# tasks that are related, each branch then learning from fewer labels. Refitted on all the
# training rows, its affinities are all positive and it stays one network: branching needs
# enough data to measure the affinity. Most weightings stay close to equal weighting here, as
# expected with five tasks of the same kind and size; ``"minimax"``, which trains on the
# worst task of each batch only, is the exception and costs every strategy.

independent_row = SHARING.index("independent")
others = [i for i, sharing in enumerate(SHARING) if sharing not in ("independent", "adaptive")]
for j, weighting in enumerate(WEIGHTINGS):
    assert np.all(scores[others, j] > scores[independent_row, j]), weighting
adaptive = clone(pipe).set_params(model__sharing="adaptive").fit(X_train, Y_train)[-1]
print("adaptive's branches on all the training rows:", adaptive.branches_)
assert adaptive.branches_ == [[list(range(n_tasks))]]  # one branch: never split
row_spread = np.ptp(scores.mean(axis=1))
column_spread = np.ptp(np.delete(scores, WEIGHTINGS.index("minimax"), axis=1).mean(axis=0))
print(f"spread of the sharing means: {row_spread:.3f}; of the weighting means "
      f"(minimax left out): {column_spread:.3f}")
assert row_spread > 5 * column_spread

# %%
# The refitted best model on held-out data
# ----------------------------------------
# ``best_estimator_`` is the whole pipeline, refitted on all the training rows. It predicts
# one column per task, and is scored on the held-out rows' observed labels. Independent
# networks with the same settings are the reference. Both score higher than in the search,
# whose 2-fold models saw only half of the training rows.

best = search.best_estimator_
print("predictions:", best.predict(X_test).shape)
reference = clone(pipe).set_params(model__sharing="independent", model__weighting="equal")
reference.fit(X_train, Y_train)
test_scores = {
    "best cell": roc_auc_score(Y_test, best.predict_proba(X_test)),
    "independent, equal": roc_auc_score(Y_test, reference.predict_proba(X_test)),
}
for name, value in test_scores.items():
    print(f"{name:>20}: held-out macro ROC-AUC {value:.3f}")
assert test_scores["best cell"] > test_scores["independent, equal"]
plt.show()
