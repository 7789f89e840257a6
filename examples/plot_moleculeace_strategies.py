"""
=====================================================================
Focused-task strategies on MoleculeACE targets
=====================================================================

In drug discovery one target usually matters most, and the potencies measured on other
targets are a resource, not a goal: they may teach the model something about the molecules
that carries over to the target of interest, or they may pull it the wrong way.
:class:`~skmtl.deep.FocusedTaskRegressor` trains a hard-sharing network on every target and
serves one, the *focus* target; its ``strategy`` decides how the auxiliary targets enter the
training loss, from ignoring them (``"single_task"``) to weighting them batch by batch by how
well their gradients align with the focus target's (``"rmtl"``).

The data are MoleculeACE bioactivities (:func:`~skmtl.datasets.load_moleculeace`): Morgan
fingerprints of the molecules and their pKi on ChEMBL targets, NaN where a molecule was not
measured. The focus target is the dopamine D4 receptor; the auxiliary targets are three more
targets of aminergic ligands and one unrelated kinase. We cross-validate every strategy on
the same folds, compare each with the single-task network, and look at which auxiliary
targets ``"rmtl"`` leans on.

The settings are small on purpose (1,024-bit fingerprints, one hidden layer of 64 units,
15 epochs, 3 folds) so that the example runs in about a minute on a laptop; the numbers
are those of this run, not a benchmark.
"""

# %%
# The data: five targets, one of them in focus
# --------------------------------------------
# MoleculeACE has 30 ChEMBL targets (no dopamine D2 receptor among them). We take
#
# - CHEMBL219, the dopamine D4 receptor: the focus target;
# - CHEMBL234, the dopamine D3 receptor, and CHEMBL214, the serotonin 5-HT1A receptor: two
#   more aminergic G protein-coupled receptors;
# - CHEMBL228, the serotonin transporter, which also binds aminergic ligands;
# - CHEMBL2971, the Janus kinase JAK2: unrelated, and measured on none of the other
#   targets' molecules.
#
# The rows are the molecules measured on at least one of the five targets, so most of ``Y``
# is missing.

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.model_selection import cross_val_score

from skmtl.datasets import load_moleculeace
from skmtl.deep import FocusedTaskRegressor
from skmtl.model_selection import MultiTaskKFold
from skmtl.plotting import StrategyComparisonDisplay

names = {
    "CHEMBL219_Ki": "D4",
    "CHEMBL234_Ki": "D3",
    "CHEMBL214_Ki": "5-HT1A",
    "CHEMBL228_Ki": "SERT",
    "CHEMBL2971_Ki": "JAK2",
}
focus = "D4"
mace = load_moleculeace(targets=list(names), n_bits=1024)
X = mace.data  # fingerprint bits, uint8
Y = pd.DataFrame(mace.target, columns=[names[t] for t in mace.task_names])  # tasks by name
print(f"X: {X.shape}, Y: {Y.shape}, {Y.isna().to_numpy().mean():.0%} of Y missing")

# %%
# How much do the auxiliary targets tell about D4? For each one: the molecules measured on
# both it and D4, and the correlation of the two pKi over those molecules. D3 shares more
# than a thousand molecules with D4, yet over them the two potencies are uncorrelated (a
# close target is not a similar task: molecules measured on both receptors are often made
# to tell them apart). 5-HT1A shares about two hundred, weakly correlated; the serotonin
# transporter only 40, but strongly correlated. JAK2 shares none.

shared = pd.DataFrame({
    "molecules with D4": Y.drop(columns=focus).notna().mul(Y[focus].notna(), axis=0).sum(),
    "pKi correlation": Y.drop(columns=focus).corrwith(Y[focus]),
})
shared.insert(0, "measured", Y.drop(columns=focus).notna().sum())
print(f"{focus}: {Y[focus].notna().sum()} molecules measured")
print(shared.round(2).to_string())

# %%
# The strategies, on the same folds
# ---------------------------------
# Every model is the same small network with the same seed; only ``strategy`` changes:
#
# - ``"multi_task"``: the focus loss plus the auxiliary losses, equal weights;
# - ``"gradnorm"`` and ``"lbtw"``: adaptive task weights (GradNorm, loss-balanced);
# - ``"finetune"``: up to 15 epochs on the auxiliary targets alone, then the shared layer is
#   kept, D4 gets a fresh head and a new optimizer, and up to 15 epochs train it on D4 (the
#   authors' protocol, ``finetune_pretrain="auxiliary"``);
# - ``"rmtl"``: the D4 loss plus, each batch, the auxiliary policy (one auxiliary target, or
#   all of them) whose gradient on the last shared layer points most along D4's, weighted by
#   that cosine (0 when none points its way; ``rmtl_reward="policy"``, the default).
#
# The reference is ``strategy="single_task"``: the same network trained on the D4 molecules
# only. The three folds of :class:`~skmtl.model_selection.MultiTaskKFold` split the
# molecules, so a test molecule's auxiliary potencies are never seen in training.
# :class:`~skmtl.plotting.StrategyComparisonDisplay` cross-validates every model and the
# reference on these folds and draws each model's gain in test R^2 on D4 over the reference,
# with whiskers of one standard error over the folds; a hatched bar is a loss larger than its
# standard error (negative transfer).

params = dict(focus_task=focus, hidden_layer_sizes=(64,), max_epochs=15, batch_size=128,
              lr=1e-3, random_state=0)
strategies = ["multi_task", "gradnorm", "lbtw", "finetune", "rmtl"]
reference = FocusedTaskRegressor(strategy="single_task", **params)
folds = list(MultiTaskKFold(3, shuffle=True, random_state=0).split(X, Y))

comparison = StrategyComparisonDisplay.from_estimators(
    {strategy: FocusedTaskRegressor(strategy=strategy, **params) for strategy in strategies},
    X,
    Y,
    reference=reference,
    cv=folds,
)
comparison.ax_.set_title(f"Gain over single-task learning on {focus} (3 folds)")
plt.show()

# %%
# The display keeps the gains and their standard errors. The reference's own R^2 comes from
# :func:`~sklearn.model_selection.cross_val_score` on the same folds: with its
# ``random_state`` the single-task network is refitted identically, and its ``score`` is the
# R^2 on D4's observed test labels, as in the display. A model's mean R^2 is the reference's
# plus its gain.

reference_r2 = cross_val_score(reference, X, Y, cv=folds)
table = pd.DataFrame({
    "strategy": ["single_task", *comparison.strategy_names],
    f"{focus} R^2": reference_r2.mean() + np.r_[0.0, comparison.gains[:, 0]],
    "gain": np.r_[0.0, comparison.gains[:, 0]],
    "gain SE": np.r_[np.nan, comparison.gain_se[:, 0]],
})
print(f"single_task R^2 per fold: {np.round(reference_r2, 3).tolist()}")
print(table.round(3).to_string(index=False))

# %%
# In this run no strategy beats the single-task network on D4 by more than a standard
# error: with these targets and settings the auxiliary data hardly help it. Training on all
# of them (``"multi_task"``, and ``"lbtw"``, which rebalances the same losses) loses more than
# a standard error (hatched): negative transfer. ``"gradnorm"`` loses a little less.
# ``"rmtl"``, which admits an auxiliary target only when its gradient agrees with D4's, ties
# with the reference, and so does ``"finetune"``, which trains D4 only after pre-training
# on the auxiliary targets. The network's defaults (dropout, weight decay, early stopping on
# a validation split) keep every strategy close to the reference. Three folds make for rough
# standard errors, of the size of the differences between the strategies: read the ranking
# as a tendency of this run, not a verdict on the methods.

gains = dict(zip(comparison.strategy_names, comparison.gains[:, 0]))
assert np.all(comparison.gains[:, 0] < comparison.gain_se[:, 0])  # none beats single-task
assert comparison.negative_transfer[0, 0]  # multi_task
assert gains["rmtl"] > gains["multi_task"]

# %%
# Which targets does rmtl lean on?
# --------------------------------
# On all the molecules, ``aux_weights_history_`` holds, per epoch, the mean weight that
# ``"rmtl"`` gave each auxiliary target's loss (the focus loss has weight 1). The weights are
# small, a few hundredths at most: a batch of 128 holds about 25 D4 molecules, and the
# auxiliary gradients on the last shared layer are mostly unaligned with D4's. rmtl leans
# most on D3, then 5-HT1A. JAK2's molecules are never D4's, yet on the last shared layer
# its gradient is not orthogonal to D4's (the layer's weight gradient couples molecules through
# their shared hidden features), so it gets about as much weight as the transporter; on the
# representation, where each molecule's gradient stays its own, it would get weight only
# through the policy of all targets together.

rmtl = FocusedTaskRegressor(strategy="rmtl", **params).fit(X, Y)
history = pd.DataFrame(rmtl.aux_weights_history_, columns=rmtl.aux_tasks_,
                       index=pd.RangeIndex(1, rmtl.n_iter_ + 1, name="epoch"))
print("mean auxiliary weight over the epochs:")
print(history.mean().round(5).to_string())

fig, ax = plt.subplots(figsize=(6, 4))
for task in history.columns:
    ax.plot(history.index, history[task], marker="o", ms=3, label=task)
ax.set_xlabel("epoch")
ax.set_ylabel("mean weight of the auxiliary loss")
ax.set_title(f"rmtl with focus {focus}: weights of the auxiliary targets")
ax.legend()
fig.tight_layout()
plt.show()

mean_weights = history.mean()
assert mean_weights["JAK2"] < mean_weights[["D3", "5-HT1A"]].min()
assert mean_weights.idxmax() == "D3"
