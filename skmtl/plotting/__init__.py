"""Plots of multi-task results, as scikit-learn style Display objects.

Each Display is built by a ``from_*`` class method (from an estimator, a report or a matrix),
draws with ``plot(ax=None, ...)`` and keeps the matplotlib objects it drew (``ax_``,
``figure_``, the artists). matplotlib is imported only when a Display draws (install it with
``pip install 'skmtl[plot]'``); importing this module does not import it.

- :class:`TransferDisplay`: per-task gain over single-task learning, negative transfer marked.
- :class:`StrategyComparisonDisplay`: the same for several models side by side.
- :class:`AffinityDisplay`: a task x task matrix (gradient affinity, pairwise transfer) as a
  heatmap, tasks ordered by hierarchical clustering.
- :class:`TrainingCurvesDisplay`: per-task training losses and task weights of a deep model.
- :class:`BranchTreeDisplay`: the branch tree of a deep model with ``sharing="adaptive"``.
- :class:`SharingDisplay`: which parameters of a deep network serve which tasks (the sharing
  map, computed by autograd from the network).
"""

from skmtl.plotting._affinity import AffinityDisplay
from skmtl.plotting._branches import BranchTreeDisplay
from skmtl.plotting._sharing import SharingDisplay
from skmtl.plotting._training import TrainingCurvesDisplay
from skmtl.plotting._transfer import StrategyComparisonDisplay, TransferDisplay

__all__ = [
    "AffinityDisplay",
    "BranchTreeDisplay",
    "SharingDisplay",
    "StrategyComparisonDisplay",
    "TrainingCurvesDisplay",
    "TransferDisplay",
]
