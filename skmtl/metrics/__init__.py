"""Masked per-task metrics and scorers for multi-task targets.

Every metric accepts the three target formats of the data contract (1-D, wide with missing
labels, long with ``task_ids``), computes the scikit-learn metric on each task's observed labels,
and combines the per-task values with ``multioutput``. :func:`make_multitask_scorer` turns
one into a scorer for search objects, with ``task_ids`` routed by metadata routing.
"""

from skmtl.metrics._masked import (
    accuracy_score,
    average_precision_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    per_task_scores,
    r2_score,
    roc_auc_score,
)
from skmtl.metrics._scorer import get_multitask_scorer, make_multitask_scorer

__all__ = [
    "accuracy_score",
    "average_precision_score",
    "get_multitask_scorer",
    "log_loss",
    "make_multitask_scorer",
    "mean_absolute_error",
    "mean_squared_error",
    "per_task_scores",
    "r2_score",
    "roc_auc_score",
]
