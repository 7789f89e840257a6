"""
=====================================================================
A scaffold split: folds that keep groups of molecules together
=====================================================================

A model of bioactivity is used on molecules that chemists have not made yet, which often
belong to new chemical series. Random cross-validation folds put molecules of one series
(one *scaffold*, the ring system and linkers at the core of the molecule) both in training
and in test, so the test molecules look like training ones and the scores come out too good.
A *scaffold split* keeps every scaffold in one fold: the model is judged on series it has
not seen.

:func:`~skmtl.model_selection.transfer_report` (like
:func:`~skmtl.model_selection.cross_val_predict`, :func:`~skmtl.model_selection.pairwise_transfer`
and the transfer displays) takes ``groups=`` with a group splitter as ``cv``, as
scikit-learn's :func:`~sklearn.model_selection.cross_validate` does. Here the groups are the
Murcko scaffolds of MoleculeACE molecules measured on four aminergic targets, split by
:class:`~skmtl.model_selection.MultiTaskGroupKFold` (scikit-learn's GroupKFold balances the
rows, not each target's labels), and we compare random folds with scaffold folds, for
single-task ridge regressions and for one ridge regression pooled over the four targets, and
finally inner folds of molecules with inner folds of scaffolds for choosing the ridge's alpha.
"""

# %%
# The data and the scaffolds
# --------------------------
# Rows are molecules, columns targets (pKi; NaN where a molecule was not measured on a
# target). rdkit, which :func:`~skmtl.datasets.load_moleculeace` uses to compute the
# fingerprints, gives each molecule's Murcko scaffold as a SMILES string: molecules with the
# same string form one group.

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from rdkit.Chem.Scaffolds import MurckoScaffold
from sklearn.linear_model import Ridge
from sklearn.model_selection import GroupKFold

from skmtl import IndependentTasks, PooledTasks
from skmtl.datasets import load_moleculeace
from skmtl.model_selection import MultiTaskGroupKFold, MultiTaskKFold, transfer_report
from skmtl.plotting import StrategyComparisonDisplay

names = {"CHEMBL219_Ki": "D4", "CHEMBL234_Ki": "D3", "CHEMBL214_Ki": "5-HT1A",
         "CHEMBL228_Ki": "SERT"}
mace = load_moleculeace(targets=list(names), n_bits=1024)
X = mace.data
Y = pd.DataFrame(mace.target, columns=[names[t] for t in mace.task_names])
scaffold = np.array([MurckoScaffold.MurckoScaffoldSmiles(s) for s in mace.smiles])
sizes = pd.Series(scaffold).value_counts()
print(f"{X.shape[0]} molecules, {Y.isna().to_numpy().mean():.0%} of Y missing; "
      f"{sizes.size} scaffolds, {int((sizes == 1).sum())} of them with one molecule, the "
      f"largest with {sizes.iloc[0]}")

# %%
# Random folds against scaffold folds
# -----------------------------------
# The random folds are :class:`~skmtl.model_selection.MultiTaskKFold`'s (shuffled), which
# balance every target's labels over the folds. The scaffold folds are
# :class:`~skmtl.model_selection.MultiTaskGroupKFold`'s on the scaffolds (shuffled too):
# each scaffold in one fold, every target's labels spread over the folds as evenly as whole
# scaffolds allow. Every scaffold of a test fold is then new to its training fold.

random_folds = MultiTaskKFold(5, shuffle=True, random_state=0)
scaffold_folds = MultiTaskGroupKFold(5, shuffle=True, random_state=0)
for train, test in scaffold_folds.split(X, Y, groups=scaffold):
    assert not set(scaffold[train]) & set(scaffold[test])

# %%
# The labels of each target in each test fold, against scikit-learn's GroupKFold on the same
# scaffolds: both keep scaffolds whole, but GroupKFold only balances the number of rows: a
# target's test folds differ by 99 to 292 labels with it here, by at most 27 with
# MultiTaskGroupKFold.


def labels_per_fold(splitter):
    counts = [Y.iloc[test].notna().sum() for _, test in splitter.split(X, Y, groups=scaffold)]
    return pd.DataFrame(counts, index=[f"fold {k}" for k in range(len(counts))]).T


ours = labels_per_fold(scaffold_folds)
theirs = labels_per_fold(GroupKFold(5, shuffle=True, random_state=0))
print("MultiTaskGroupKFold:", ours.to_string(), "GroupKFold:", theirs.to_string(), sep="\n")
spread = ours.max(axis=1) - ours.min(axis=1)
assert (spread < theirs.max(axis=1) - theirs.min(axis=1)).all()

single = IndependentTasks(Ridge(alpha=10.0))
pooled = PooledTasks(Ridge(alpha=10.0))
reports = {
    "random folds": transfer_report(pooled, X, Y, reference=single, cv=random_folds),
    "scaffold folds": transfer_report(pooled, X, Y, reference=single, cv=scaffold_folds,
                                      groups=scaffold),
}
scores = pd.DataFrame({
    split: report.set_index("task")["reference_score"] for split, report in reports.items()
})
print("Single-task ridge, mean test R^2 per target:")
print(scores.round(3).to_string())

# %%
# Every target scores lower on new scaffolds: the random folds flatter the single-task
# models by 0.10 to 0.21 R^2 here. That is the number to quote for molecules of new
# series.

ax = scores.plot.bar(rot=0)
ax.set_ylabel("single-task ridge, test R^2")
ax.set_title("The same models, judged on random or on scaffold folds")
plt.show()
assert (scores["scaffold folds"] < scores["random folds"]).all()

# %%
# What pooling the targets does, on either split
# ----------------------------------------------
# The gain of the pooled ridge over the single-task ones, per target, with whiskers of one
# standard error over the folds (hatched: negative transfer). Pooling four targets whose
# potencies differ hurts each of them on either split: the split changes how good every
# model looks, and here not which one to prefer.

display = StrategyComparisonDisplay.from_reports(reports)
display.ax_.set_title("Gain of one ridge pooled over the targets")
plt.show()
gains = pd.DataFrame({split: report["gain"].to_numpy() for split, report in reports.items()},
                     index=scores.index)
print(gains.round(3).to_string())
assert (gains < 0).all().all()

# %%
# Choosing alpha on scaffold folds too
# ------------------------------------
# Above, alpha was fixed. A model that chooses its own regularisation by cross-validation
# (scikit-learn's ``RidgeCV``, skmtl's linear ``*CV`` estimators) faces the same question
# inside each training fold: on folds of molecules, the alpha that predicts other molecules
# of known scaffolds best; on folds of scaffolds, the one that predicts new scaffolds best.
# Give it a group splitter as its ``cv``: :func:`~skmtl.model_selection.transfer_report`
# passes each training fold's scaffolds to a model whose ``fit`` takes them, and
# :class:`~skmtl.IndependentTasks` passes each target's search the scaffolds of its rows.
# Both models below are judged on the same scaffold folds; they differ only in their inner
# folds.

from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold

alphas = [10.0, 30.0, 100.0]
inner_rows = IndependentTasks(RidgeCV(alphas=alphas, cv=KFold(3, shuffle=True, random_state=0)))
inner_scaffolds = IndependentTasks(RidgeCV(alphas=alphas,
                                           cv=GroupKFold(3, shuffle=True, random_state=0)))
tuned = transfer_report(inner_scaffolds, X, Y, reference=inner_rows, cv=scaffold_folds,
                        groups=scaffold)
print(tuned[["task", "score", "reference_score", "gain", "gain_se"]].round(4).to_string())

# %%
# Tuned on scaffold folds, every target scores higher on new scaffolds (``gain``, in R^2),
# by 0.007 to 0.022 in the run behind these words: the inner scaffold folds choose a
# stronger ridge than the inner folds of molecules, which reward fitting the known series
# closely.

assert (tuned["gain"] > 0).all()

# %%
# Early stopping on scaffolds, for the deep models
# ------------------------------------------------
# A deep estimator chooses its number of epochs on a held-out tenth of its training rows, the
# same question once more. ``fit(X, Y, groups=...)`` holds out whole scaffolds instead, and
# ``transfer_report`` gives each training fold's scaffolds to a deep model (alone or in a
# Pipeline) as it does to the ``*CV`` models above. On these four targets
# (``benchmarks/scaffold_early_stopping.py``, ``MultiTaskRegressor()`` on the 5 scaffold
# folds) the loss on rows held out at random was 0.363 against 0.548 on the test fold's new
# scaffolds; on held-out scaffolds it was 0.531 against 0.542. Training stopped after 29
# epochs instead of 52, with the same test R^2 within its noise. The fits take minutes, so
# they are not run here; the deep user guide has the details ("Early stopping and
# validation data").
