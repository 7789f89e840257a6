"""What a splitter's ``split`` is given, and the check of the folds it returns.

Shared by the cross-validation of :mod:`skmtl.model_selection` (``transfer_report``,
``cross_val_predict``, the displays) and by the inner folds of the linear ``*CV`` estimators:
a splitter gets ``task_ids`` when its ``split`` takes them and ``groups`` when it splits by
groups; a training fold without a label of some task is named before any fit.
"""

from inspect import signature

from sklearn.utils.metadata_routing import get_routing_for_object

from skmtl.utils.validation import _format_tasks

__all__ = ["check_training_folds", "describe_cv", "split_params", "splits_by_groups"]


def describe_cv(cv, *, multitask_kfold=False):
    """``cv`` as the messages name it: ``cv=...`` for a splitter, with ``(a MultiTaskKFold)``
    when it stands for one (an int), or the folds themselves when given as an iterable."""
    if multitask_kfold:
        return f"cv={cv!r} (a MultiTaskKFold)"
    return f"cv={cv!r}" if hasattr(cv, "split") else "cv (an iterable of (train, test) folds)"


def splits_by_groups(cv):
    """Whether the splitter ``cv`` uses ``groups``: its ``split`` requests them (metadata
    routing, as GroupsConsumerMixin sets), or, for an object without metadata routing, its
    ``split`` has a ``groups`` parameter."""
    if not hasattr(cv, "get_metadata_routing"):
        return "groups" in signature(cv.split).parameters
    request = get_routing_for_object(cv).split.requests.get("groups")
    return request is True or (isinstance(request, str) and request.isidentifier())


def split_params(cv, described, *, task_ids=None, groups=None, routed=""):
    """The keyword arguments of ``cv.split``: ``task_ids`` (long data) when its ``split`` takes
    them, and ``groups`` when it splits by groups, which it needs.

    Groups given for a splitter that ignores them are an error: the rows of a group could fall
    in different folds. ``described`` names ``cv`` in the messages; ``routed`` is appended to
    the message for missing groups (how they reach a model's own ``fit``).
    """
    params = {}
    if task_ids is not None and "task_ids" in signature(cv.split).parameters:
        params["task_ids"] = task_ids
    if splits_by_groups(cv):
        if groups is None:
            raise ValueError(
                f"{described} splits by groups: pass groups, the group of each row (e.g. the "
                f"scaffold of each molecule), to keep each group in one fold.{routed}")
        params["groups"] = groups
    elif groups is not None:
        raise ValueError(
            f"groups is given, but {described} does not split by groups, so the rows of a "
            "group could fall in different folds. Pass a group splitter as cv "
            "(MultiTaskGroupKFold, GroupKFold, LeaveOneGroupOut, ...), or leave groups out.")
    return params


def check_training_folds(folds, train_counts, tasks, described):
    """Raise for the first training fold without a label of some task.

    ``train_counts(train)`` gives the number of labels of each task in the training rows
    ``train``; a fit refuses a task without one, and a group splitter (unlike MultiTaskKFold)
    does not keep every task in every training fold.
    """
    for k, (train, _) in enumerate(folds):
        empty = train_counts(train) == 0
        if empty.any():
            raise ValueError(
                f"Training fold {k} of {described} has no label of task(s) "
                f"{_format_tasks(tasks[empty])}: every task needs labels in every training "
                "fold. Use fewer folds, or a splitter that keeps every task in training "
                "(MultiTaskKFold); a group splitter keeps groups together, not tasks: give it "
                "groups that do not hold all of a task's labels.")
