"""Out-of-fold predictions of a multi-task estimator, in the layout of its target.

scikit-learn's :func:`~sklearn.model_selection.cross_val_predict` routes ``task_ids`` to
``fit`` only (so long data gets the wide ``(n, T)`` prediction) and label-encodes each column
of a wide ``Y`` for the probability methods (so a missing label becomes a class).
:func:`cross_val_predict` passes ``task_ids`` to the prediction too and hands the target to
the estimator as given.
"""

import numpy as np
from sklearn.utils.parallel import delayed

from skmtl.model_selection._transfer import (
    _COMMON_CONSTRAINTS,
    _Data,
    _fit_fold,
    _fit_groups,
    _is_focused,
    _routing,
    _run_parallel,
    _take,
)
from skmtl.utils._sklearn_compat import StrOptions, validate_params
from skmtl.utils.validation import _format_tasks

__all__ = ["cross_val_predict"]

_METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function")


def _fit_and_predict(estimator, X, y, task_ids, train, test, method, groups=None):
    """Fit a clone on the ``train`` rows; ``(method's output on the test rows, classes_)``."""
    # a focused estimator predicts its focus task for every row, and takes no task_ids there
    ids_test = None if _is_focused(estimator) else _take(task_ids, test)
    groups = _fit_groups(estimator, groups)
    with _routing(task_ids, groups):
        model, _ = _fit_fold(estimator, X, y, task_ids, train, groups)
        output = getattr(model, method)(_take(X, test),
                                        **({} if ids_test is None else {"task_ids": ids_test}))
    return output, getattr(model, "classes_", None)


def _check_partition(folds, n_samples):
    """The test rows of ``folds`` concatenated; each row must be in exactly one test fold."""
    rows = np.concatenate([np.asarray(test, dtype=np.intp) for _, test in folds])
    counts = np.bincount(rows, minlength=n_samples)
    if counts.size != n_samples or np.any(counts != 1):
        missing, repeated = np.flatnonzero(counts == 0), np.flatnonzero(counts > 1)
        raise ValueError(
            "cross_val_predict needs test folds that partition the rows (each row in exactly "
            f"one test fold); {missing.size} row(s) are in no test fold and {repeated.size} in "
            "several. Use a KFold-like splitter (MultiTaskKFold, KFold, GroupKFold), not "
            "ShuffleSplit.")
    return rows


def _check_classes(fold_classes, tasks):
    """Every fold's model must have the same ``classes_`` (per task), or its probability
    columns would mean different classes in different rows."""
    first = fold_classes[0]
    per_task = isinstance(first, list)
    for k, classes in enumerate(fold_classes[1:], start=1):
        pairs = zip(first, classes) if per_task else [(first, classes)]
        for t, (a, b) in enumerate(pairs):
            if len(a) != len(b) or np.any(np.asarray(a) != np.asarray(b)):
                where = f"task {_format_tasks(tasks[[t]])}" if per_task else "the target"
                raise ValueError(
                    f"The models of folds 0 and {k} have different classes for {where} "
                    f"({list(a)} and {list(b)}): a class is missing from a training fold, so "
                    "their probability columns do not match. Use fewer folds, or a splitter "
                    "stratified on the classes (MultiTaskKFold for classifiers).")


@validate_params(
    {**{key: _COMMON_CONSTRAINTS[key] for key in ("estimator", "X", "Y", "cv", "n_jobs",
                                                  "task_ids", "groups")},
     "method": [StrOptions(set(_METHODS))]},
    prefer_skip_nested_validation=False,  # the estimator is validated when fitted
)
def cross_val_predict(estimator, X, Y, *, task_ids=None, groups=None, cv=5, method="predict",
                      n_jobs=None):
    """Out-of-fold predictions of a multi-task estimator, in the layout of ``Y``.

    For each (train, test) pair of ``cv``, a clone of ``estimator`` is fitted on the training
    rows and ``method`` is called on the test rows; every row gets the prediction of the one
    model that did not see it. The test folds must partition the rows.

    Unlike :func:`sklearn.model_selection.cross_val_predict`:

    - on long data, ``task_ids`` reaches the prediction as well as ``fit``, so each row gets
      its own task's prediction, ``(n_samples,)``, not every task's ``(n_samples, n_tasks)``;
    - a wide ``Y`` reaches the estimator as given, missing labels included (scikit-learn
      label-encodes each column for the probability methods first, and the NaN of a missing
      label becomes a class that is trained on).

    Parameters
    ----------
    estimator : estimator object
        A multi-task estimator (or a :class:`~sklearn.pipeline.Pipeline` ending in one). It
        is cloned for every fold; it need not be fitted.
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Features.
    Y : array-like of shape (n_samples, n_tasks) or (n_samples,)
        Targets in any format of the data contract: a wide ``Y`` with NaN (or None) for
        missing labels, or a long ``y`` with ``task_ids``.
    task_ids : array-like of shape (n_samples,), default=None
        The task of each row, for long-format data. It is passed to ``cv.split`` (when it
        accepts it) and to ``fit`` and ``method`` of each fold's model (through metadata
        routing, enabled for these calls, so a Pipeline forwards it to its final step).
    groups : array-like of shape (n_samples,), default=None
        The group of each row, for a group splitter as ``cv`` (which keeps the rows of a
        group in one fold): as in :func:`~skmtl.model_selection.transfer_report`.
    cv : int, cross-validation generator or iterable, default=5
        An int is the number of folds of a :class:`~skmtl.model_selection.MultiTaskKFold`
        (not shuffled; stratified on the classes of each task for classifiers), which keeps
        every task observed in every training fold. A splitter whose ``split`` accepts
        ``task_ids`` receives it, a group splitter ``groups``. The test folds must partition
        the rows (a ValueError otherwise).
    method : {"predict", "predict_proba", "predict_log_proba", "decision_function"}, \
default="predict"
        The method of each fold's model called on its test rows.
    n_jobs : int, default=None
        Number of folds fitted in parallel by joblib. ``None`` means 1 unless in a
        :func:`joblib.parallel_config` context.

    Returns
    -------
    predictions : ndarray or list of ndarray
        What ``method`` returns for all ``n_samples`` rows, in their order (see the table of
        :doc:`/user_guide/data_formats`):

        - long data: ``(n_samples,)`` for ``predict``, each row's own task; ``(n_samples,
          K)`` for ``predict_proba`` (every task must have ``K`` classes);
        - wide ``Y``: ``(n_samples, n_tasks)`` for ``predict``, every task for every row
          (also where the label is missing); a list of ``n_tasks`` arrays ``(n_samples,
          K_t)`` for ``predict_proba``, in ``tasks_`` order;
        - a focused estimator (:class:`~skmtl.deep.FocusedTaskRegressor`,
          :class:`~skmtl.deep.FocusedTaskClassifier`), long or wide: its focus task's
          prediction for every row, ``(n_samples,)`` (``(n_samples, K)`` for
          ``predict_proba``), as its ``predict`` gives.

    Raises
    ------
    ValueError
        If the test folds do not partition the rows, or, for the probability and decision
        methods, if the folds' models have different classes for a task (a class missing
        from a training fold: its columns would not match between rows).

    See Also
    --------
    transfer_report : Per-task cross-validated scores against a single-task reference.
    sklearn.model_selection.cross_val_predict : The single-task version.

    Examples
    --------
    Long data, two schools: one prediction per row, each for its own school.

    >>> import numpy as np
    >>> from sklearn.linear_model import Ridge
    >>> from skmtl import IndependentTasks
    >>> from skmtl.model_selection import cross_val_predict
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 2))
    >>> task_ids = np.repeat(["a", "b"], 20)
    >>> y = X @ [1.0, -1.0] + np.where(task_ids == "a", 0.0, 5.0) + 0.1 * rng.normal(size=40)
    >>> pred = cross_val_predict(IndependentTasks(Ridge()), X, y, task_ids=task_ids, cv=4)
    >>> pred.shape
    (40,)
    >>> bool(np.abs(pred - y).max() < 1.0)
    True
    """
    if not hasattr(estimator, method):
        raise AttributeError(f"{type(estimator).__name__} has no {method} method.")
    data = _Data(estimator, X, Y, task_ids, groups)
    folds = data.folds(cv)
    rows = _check_partition(folds, data.target.n_samples)
    results = _run_parallel(
        (delayed(_fit_and_predict)(estimator, data.X, data.Y, data.task_ids, train, test,
                                   method, data.groups) for train, test in folds), n_jobs)
    outputs = [output for output, _ in results]
    if method != "predict" and results[0][1] is not None:
        _check_classes([classes for _, classes in results], data.tasks)
    inverse = np.empty_like(rows)
    inverse[rows] = np.arange(rows.size)
    if isinstance(outputs[0], list):  # one array per task (predict_proba of a wide fit)
        return [np.concatenate([out[t] for out in outputs])[inverse]
                for t in range(len(outputs[0]))]
    return np.concatenate([np.asarray(out) for out in outputs])[inverse]
