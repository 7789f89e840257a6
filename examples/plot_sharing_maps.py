"""
===========================================================
The sharing strategies, drawn from the networks themselves
===========================================================

Which parameters of a multi-task network serve which tasks? :class:`~skmtl.plotting.SharingDisplay`
answers from the network itself: it builds (or reads) the network, takes the gradient of each
task's outputs with respect to every parameter, and groups the entries of each parameter by
the set of tasks whose outputs depend on them. A row of the map is one such group (the
parameter's name and its number of entries); a filled cell says that the task reads it.

The maps below are drawn for every value of ``sharing`` on a tiny network: 5 features, three
tasks, two hidden layers of 4 and 3 units (4 and 4 for ``"sluice"``, which splits layers in two
subspaces), linear heads. They are the diagrams of the user guide's
:ref:`sharing strategies <deep_sharing_strategies>`.
"""

# %%
# Every strategy, as built
# ------------------------
# ``"low_supervision"`` is drawn with ``task_depths=(1, 2, 2)``: task 0's head reads the first
# hidden layer, so the second layer serves tasks 1 and 2 only (with every task at the top it is
# ``"hard"`` sharing). ``"tensor_factorisation"`` uses its default rank, ``ceil(3 / 2) = 2``
# mixes of shared weights (the core) for three tasks. ``"adaptive"`` is drawn before its split:
# a thin shared network, with room for the branches it may grow (unused).

import matplotlib.pyplot as plt
import numpy as np
import torch

from skmtl.deep.modules import SHARING, build_module
from skmtl.plotting import SharingDisplay

torch.set_num_threads(1)
OPTIONS = {
    "low_supervision": dict(task_depths=(1, 2, 2)),
    "sluice": dict(hidden_layer_sizes=(4, 4)),
}


def tiny(sharing):
    torch.manual_seed(0)
    params = {"hidden_layer_sizes": (4, 3), **OPTIONS.get(sharing, {})}
    return build_module(sharing, 5, [1, 1, 1], **params)


fig, axes = plt.subplots(4, 3, figsize=(13, 19))
displays = {}
for ax, sharing in zip(axes.flat, SHARING):
    displays[sharing] = SharingDisplay.from_module(tiny(sharing), ax=ax, title=sharing)
axes.flat[-1].set_visible(False)
fig.tight_layout()

# %%
# What the maps say, checked
# --------------------------
# ``"hard"``: the trunk serves every task, each head one task. ``"independent"`` and ``"soft"``:
# every tower parameter serves one task (the soft penalty ties them in the loss, not in the
# network). ``"cross_stitch"`` and ``"sluice"``: the mixing units make every tower serve every
# task. ``"conditioned"``: one network for all, one embedding per task. ``"stacked"``: level
# ``k`` serves its task and every task above it.


def row_sets(display):
    """The set of tasks of every drawn row."""
    return [frozenset(np.flatnonzero(row)) for row in display.cells_]


everyone = frozenset({0, 1, 2})
for sharing in ("hard", "relationship"):
    assert everyone in row_sets(displays[sharing])
for sharing in ("independent", "soft"):
    assert everyone not in row_sets(displays[sharing])
for sharing in ("cross_stitch", "sluice", "conditioned", "tensor_factorisation", "stacked"):
    assert everyone in row_sets(displays[sharing])
assert frozenset({1, 2}) in row_sets(displays["low_supervision"])
assert frozenset({1, 2}) in row_sets(displays["stacked"])

# %%
# ``"adaptive"`` after its split
# ------------------------------
# The adaptive network branches once its thin version has trained, by the tasks' gradient
# affinity. Here the split is given an affinity in which tasks 0 and 1 agree and task 2
# conflicts with both: the top layer splits into the branches {0, 1} and {2}; the first layer,
# with ``ceil(2 / 2) = 1`` branch, stays shared.

adaptive = tiny("adaptive")
affinity = np.array([[1.0, 0.8, -0.4], [0.8, 1.0, -0.4], [-0.4, -0.4, 1.0]])
adaptive.split(affinity)
print("branches, bottom to top:", adaptive.branches())
fig, ax = plt.subplots(figsize=(6, 5))
split = SharingDisplay.from_module(adaptive, ax=ax, title="adaptive, after the split")
fig.tight_layout()
assert adaptive.branches() == [[[0, 1, 2]], [[0, 1], [2]]]
assert frozenset({0, 1}) in row_sets(split) and everyone in row_sets(split)
