"""Binary tasks with a logistic link, shared by the linear classifiers.

A binary multi-task problem has one label set (``skmtl.base``): a task may see one class in
training when the tasks together have two. The class checks and the predictions from the fitted
``coef_`` / ``intercept_`` are the same for every linear classifier, so they live here.
"""

import numpy as np
from scipy.special import expit

from skmtl.linear._designs import predict_rows
from skmtl.utils.validation import _hashable

__all__ = []


def _check_two_classes(estimator, classes):
    """Raise for a task with one class that shares no two-class label set with the others."""
    for task, task_classes in zip(estimator.tasks_, classes):
        where = "y" if estimator._layout == "1d" else f"Task {_hashable(task)!r}"
        if len(task_classes) < 2:
            raise ValueError(
                f"{where} has only one class ({_hashable(task_classes[0])!r}) and no "
                "label set shared with the other tasks; "
                f"{type(estimator).__name__} fits binary tasks: a task may see one class "
                "only when all tasks share two classes."
            )


class _BinaryLogisticMixin:
    """Binary tasks with a logistic link: the class checks and the predictions of the
    fitted ``coef_`` / ``intercept_`` (shared by the fixed-parameter and the CV classifier)."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def _check_n_classes(self, classes):
        super()._check_n_classes(classes)
        _check_two_classes(self, classes)

    def _predict_proba_raw(self, X):
        positive = expit(self._decision(X))
        return [np.column_stack([1.0 - p, p]) for p in positive.T]

    def _predict_proba_tasks(self, X, task_index):
        p = expit(predict_rows(X, self.coef_, self.intercept_, task_index))
        return np.column_stack([1.0 - p, p])

    def _predict_proba_shared(self, X):
        p = expit(self._shared_decision(X))
        return np.column_stack([1.0 - p, p])

    def _predict_codes(self, X):
        return (self._decision(X) > 0).astype(np.intp)

    def _predict_task_codes(self, X, task_index):
        return (predict_rows(X, self.coef_, self.intercept_, task_index) > 0).astype(np.intp)
