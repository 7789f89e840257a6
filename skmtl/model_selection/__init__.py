"""Model selection for multi-task learning: splitters that keep every task observed,
out-of-fold predictions, and transfer analysis (where sharing helps a task and where it hurts)."""

from skmtl.model_selection._predict import cross_val_predict
from skmtl.model_selection._split import MultiTaskGroupKFold, MultiTaskKFold
from skmtl.model_selection._transfer import pairwise_transfer, transfer_report

__all__ = ["MultiTaskGroupKFold", "MultiTaskKFold", "cross_val_predict", "pairwise_transfer",
           "transfer_report"]
