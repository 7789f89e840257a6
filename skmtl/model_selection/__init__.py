"""Model selection for multi-task learning: splitters that keep every task observed."""

from skmtl.model_selection._split import MultiTaskKFold

__all__ = ["MultiTaskKFold"]
