"""Model selection for multi-task learning: splitters that keep every task observed, and
transfer analysis (where sharing helps a task and where it hurts)."""

from skmtl.model_selection._split import MultiTaskKFold
from skmtl.model_selection._transfer import pairwise_transfer, transfer_report

__all__ = ["MultiTaskKFold", "pairwise_transfer", "transfer_report"]
