"""Masked per-task metrics: a scikit-learn metric computed on each task's observed labels."""

import warnings

import numpy as np
from numba import njit
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from skmtl.utils._docstring import Substitution, join_blocks
from skmtl.utils.validation import (
    _format_tasks,
    _hashable,
    _task_error,
    _tasks_by_classes,
    _tighten,
    check_multitask_target,
)

__all__ = [
    "accuracy_score",
    "average_precision_score",
    "log_loss",
    "mean_absolute_error",
    "mean_squared_error",
    "per_task_scores",
    "r2_score",
    "roc_auc_score",
]

_TASK_IDS = """
task_ids : array-like of shape (n_samples,), default=None
    Task of each row for long-format data.
"""
_SAMPLE_WEIGHT = """
sample_weight : array-like of shape (n_samples,), default=None
    Row weights.
"""
_MULTIOUTPUT = """
multioutput : {"uniform_average", "raw_values"} or array-like of shape (n_tasks,), \
default="uniform_average"
    How the per-task values are combined: their mean over the tasks where the metric is
    defined, the per-task values themselves (NaN where undefined), or a weighted mean.
"""
_ROWS_PARAMS = join_blocks(_TASK_IDS, _SAMPLE_WEIGHT, _MULTIOUTPUT)

# The parameters of the metrics, each written once and substituted into the docstrings.
_DOCS = {
    "multioutput": _MULTIOUTPUT,
    "rows_params": _ROWS_PARAMS,
    "value_params": join_blocks("""
y_true : array-like of shape (n_samples,) or (n_samples, n_tasks)
    True values; NaN marks a missing label in wide data.
y_pred : array-like of shape (n_samples,) or (n_samples, n_tasks)
    Predicted values, same layout as ``y_true``.
""", _ROWS_PARAMS),
    "score_params": join_blocks("""
y_true : array-like of shape (n_samples,) or (n_samples, n_tasks)
    True class labels; NaN / None marks a missing label in wide data.
y_score : array-like or list of array-like
    Wide data: a list of ``n_tasks`` arrays of shape (n_samples, n_classes_t) (the output
    of ``predict_proba``) or, for binary tasks, an (n_samples, n_tasks) array of
    positive-class scores. 1-D or long data: (n_samples, n_classes) or, binary,
    (n_samples,).
""", _TASK_IDS, """
labels : list of array-like, default=None
    The classes of each task (``estimator.classes_``), in the order of y_score's columns.
    Needed when a class is absent from y_true; default: the sorted observed labels.
""", _SAMPLE_WEIGHT),
}


class _Columns(list):
    """The columns of a wide ``y_pred`` array, which is kept as ``matrix`` (its observed
    entries are then gathered by one index, not one per task)."""

    matrix = None


def _task_predictions(y_pred, target, *, probabilistic):
    """Split predictions into one array per task column, matching ``target``'s layout."""
    n = target.n_samples
    if target.layout == "wide":
        if isinstance(y_pred, (list, tuple)):
            if len(y_pred) != target.n_tasks:
                raise ValueError(
                    f"y_pred is a list of {len(y_pred)} arrays but y_true has "
                    f"{target.n_tasks} tasks."
                )
            parts = [np.atleast_1d(p) for p in y_pred]
        else:
            y_pred = np.asarray(y_pred)
            if y_pred.ndim != 2 or y_pred.shape[1] != target.n_tasks:
                raise ValueError(
                    f"y_pred must have shape ({n}, {target.n_tasks}) like y_true; "
                    f"got {y_pred.shape}."
                )
            parts = _Columns(y_pred[:, t] for t in range(target.n_tasks))
            parts.matrix = y_pred
        for part in parts:
            if part.shape[0] != n:
                raise ValueError(f"y_pred has {part.shape[0]} rows but y_true has {n}.")
        return parts
    if isinstance(y_pred, (list, tuple)) and not probabilistic:
        y_pred = np.asarray(y_pred)
    y_pred = np.atleast_1d(y_pred)
    if probabilistic and (y_pred.ndim not in (1, 2) or y_pred.shape[0] != n):
        raise ValueError(
            f"y_score must have shape ({n},) or ({n}, n_classes) like y_true's {n} rows; "
            f"got {y_pred.shape}."
        )
    if y_pred.shape[0] != n or (y_pred.ndim > 1 and not probabilistic):
        raise ValueError(
            f"y_pred must have shape ({n},) like y_true; got {y_pred.shape}."
            + (" For wide Y pass a 2-D y_true." if y_pred.ndim == 2 else "")
        )
    return [y_pred] * target.n_tasks


def per_task_scores(
    metric,
    y_true,
    y_pred,
    *,
    task_ids=None,
    sample_weight=None,
    y_numeric=True,
    probabilistic=False,
    min_samples=1,
    min_classes=1,
):
    """Apply a single-task metric to every task's observed labels.

    Parameters
    ----------
    metric : callable
        ``metric(y_true_t, y_pred_t, sample_weight=sw_t, task=t)`` for one task's observed
        rows; ``task`` is the task's position. A ``metric.check_labels(y_true_t, task=t)``,
        where the metric has one, is called first on every task, also where the score is
        undefined (too few labels or classes): a ValueError there is raised. A
        ``metric.vectorized(y, p, w, tasks, n_tasks)`` (the observed labels, predictions,
        weights and task positions) may score every task at once, returning ``(scores,
        pending)`` with ``pending`` the tasks left to ``metric``, or None for all of them
        (the built-in metrics do, but for multiclass ROC-AUC and average precision: one
        scikit-learn call costs about 4 ms of validation). It is used with ``min_classes >
        1`` or a ``check_labels`` only where its ``checks_labels`` is True: it then leaves
        pending every task with fewer classes or a label the check could refuse.
    y_true : array-like of shape (n_samples,) or (n_samples, n_tasks)
        True labels: 1-D (one task), wide with NaN / None as missing, or long with
        ``task_ids``.
    y_pred : array-like or list of array-like
        Predictions of the same layout: ``(n_samples, n_tasks)`` (or a list of ``n_tasks``
        arrays with ``n_samples`` rows) for wide ``y_true``, ``(n_samples, ...)`` otherwise.
    task_ids : array-like of shape (n_samples,), default=None
        Task of each row, for long-format ``y_true``.
    sample_weight : array-like of shape (n_samples,), default=None
        Row weights.
    y_numeric : bool, default=True
        Whether y_true holds numbers (regression) or class labels.
    probabilistic : bool, default=False
        Whether y_pred holds scores / probabilities with a column per class.
    min_samples : int, default=1
        A task with fewer observed labels gets NaN.
    min_classes : int, default=1
        A task with fewer distinct observed labels gets NaN.

    Returns
    -------
    tasks : ndarray of shape (n_tasks,)
        Task labels: column positions (or DataFrame column names) for wide ``y_true``, the
        sorted unique ``task_ids`` for long data.
    scores : ndarray of shape (n_tasks,)
        The metric per task; NaN for a task with no observed label (or too few samples or
        classes), with an :class:`~sklearn.exceptions.UndefinedMetricWarning`.

    Raises
    ------
    ValueError
        For an empty ``y_true`` (0 rows), predictions whose shape does not match it, or a
        ValueError of ``metric`` on a task, re-raised with the task's label in front.
    """
    target = check_multitask_target(y_true, task_ids, y_numeric=y_numeric, require_all_tasks=False)
    preds = _task_predictions(y_pred, target, probabilistic=probabilistic)
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=np.float64)
        if sample_weight.shape != (target.n_samples,):
            raise ValueError(
                f"sample_weight must have shape ({target.n_samples},); "
                f"got {sample_weight.shape}."
            )
    scores = np.full(target.n_tasks, np.nan)
    undefined = []
    # a check of the labels that holds even where the score is undefined (an unknown class)
    check = getattr(metric, "check_labels", None)
    pending = range(target.n_tasks)  # the tasks scored one call of ``metric`` each
    vectorized = getattr(metric, "vectorized", None)
    if vectorized is not None and (getattr(vectorized, "checks_labels", False)
                                   or check is None and min_classes <= 1):
        done = _vectorized_scores(vectorized, target, preds, sample_weight, min_samples)
        if done is not None:
            scores, pending = done
    task_rows = target.task_rows() if len(pending) else []
    for t in pending:
        rows = task_rows[t]
        y_t = _tighten(target.task_labels(t, rows))
        try:
            if check is not None:
                check(y_t, task=t)
            if y_t.shape[0] < min_samples or np.unique(y_t).shape[0] < min_classes:
                undefined.append(target.tasks[t])
                continue
            sw = None if sample_weight is None else sample_weight[rows]
            scores[t] = metric(y_t, _tighten(preds[t][rows]), sample_weight=sw, task=t)
        except ValueError as exc:
            if target.layout == "1d":
                raise
            raise _task_error(target.tasks[t], exc) from exc
    if undefined:
        warnings.warn(
            f"The metric is undefined for task(s) {_format_tasks(undefined)} (too few observed "
            "labels or classes); their score is NaN and they are left out of the average.",
            UndefinedMetricWarning,
            stacklevel=3,
        )
    return target.tasks, scores


def _vectorized_scores(vectorized, target, preds, sample_weight, min_samples):
    """Every task's score at once from sums over its observed labels: ``(scores, pending)``,
    ``pending`` the tasks left to one call of the metric each (too few labels, or a case
    the sums do not decide, :func:`_regression_sums`); None where the labels or predictions
    are not of a type the sums take (the per-task calls then raise or score them). One call
    of a scikit-learn metric costs about 4 ms of validation: 4.4 s to score 1,000 tasks."""
    rows, tasks, y = target.observations()
    y = _tighten(y)
    if target.layout == "long":
        p = preds[0]
    elif getattr(preds, "matrix", None) is not None:
        p = preds.matrix[rows, tasks]
    else:
        parts = [np.asarray(part) for part in preds]
        if any(part.ndim not in (1, 2) or part.shape[1:] != parts[0].shape[1:]
               for part in parts):
            return None
        try:
            p = np.empty((len(rows), *parts[0].shape[1:]), dtype=np.result_type(*parts))
        except TypeError:  # (no common dtype: the per-task calls)
            return None
        order = np.argsort(tasks, kind="stable")
        bounds = np.searchsorted(tasks[order], np.arange(target.n_tasks + 1))
        for t, part in enumerate(parts):
            index = order[bounds[t]:bounds[t + 1]]
            p[index] = part[rows[index]]
    p = np.asarray(p)
    p = _tighten(p) if p.ndim == 1 else p
    if p.shape[:1] != y.shape:
        return None
    w = np.ones(len(rows)) if sample_weight is None else sample_weight[rows]
    result = vectorized(y, p, w, tasks, target.n_tasks)
    if result is None:
        return None
    scores, pending = result
    counts = np.bincount(tasks, minlength=target.n_tasks)
    pending = pending | (counts < min_samples)
    scores[pending] = np.nan
    return scores, np.flatnonzero(pending)


def _weighted_means(values, w, tasks, n_tasks):
    """Each task's ``sum w v / sum w`` and whether that is left to the per-task call (a sum
    of weights of 0, or weights or values that are not finite: its errors)."""
    total = np.bincount(tasks, weights=w, minlength=n_tasks)
    bad = np.bincount(tasks, weights=~(np.isfinite(values) & np.isfinite(w)),
                      minlength=n_tasks) > 0
    pending = bad | (total == 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.bincount(tasks, weights=np.where(pending[tasks], 0.0, w * values),
                            minlength=n_tasks) / total
    return means, pending


def _regression_sums(kind):
    """The per-task squared or absolute error, or R^2, of numeric labels and predictions from
    sums (:func:`_vectorized_scores`), as scikit-learn's functions compute them. R^2 of a
    task whose labels are all equal is left to scikit-learn (its ``force_finite`` rule
    depends on how its mean of equal values rounds)."""

    def vectorized(y, p, w, tasks, n_tasks):
        if p.ndim != 1 or y.dtype.kind not in "biuf" or p.dtype.kind not in "biuf":
            return None
        y, p = y.astype(np.float64, copy=False), p.astype(np.float64, copy=False)
        error = y - p
        if kind == "absolute":
            return _weighted_means(np.abs(error), w, tasks, n_tasks)
        mse, pending = _weighted_means(error * error, w, tasks, n_tasks)
        if kind == "squared":
            return mse, pending
        mean, _ = _weighted_means(y, w, tasks, n_tasks)
        spread, _ = _weighted_means((y - mean[tasks]) ** 2, w, tasks, n_tasks)
        first = np.zeros(n_tasks)
        present, where = np.unique(tasks, return_index=True)
        first[present] = y[where]  # each task's first label
        constant = np.bincount(tasks, weights=y != first[tasks], minlength=n_tasks) == 0
        pending = pending | constant | ~(spread > 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return 1.0 - mse / spread, pending

    return vectorized


def _accuracy_sums(y, p, w, tasks, n_tasks):
    """Per-task accuracy from sums (:func:`_vectorized_scores`) where scikit-learn's checks
    pass for sure: both numeric (floats whole numbers), or both strings."""
    numeric = y.dtype.kind in "biuf" and p.dtype.kind in "biuf"
    if p.ndim != 1 or not (numeric or y.dtype.kind == p.dtype.kind == "U"):
        return None
    if numeric and any(v.dtype.kind == "f" and not np.all(np.isfinite(v) & (v == np.round(v)))
                       for v in (y, p)):
        return None
    return _weighted_means((y == p).astype(np.float64), w, tasks, n_tasks)


def _class_columns(y, tasks, n_tasks, labels):
    """Each observed label's column among its task's classes, as the per-task metric orders
    them (``labels[t]``, or the task's sorted distinct labels), -1 for a label not among
    them; with each task's number of classes and of distinct labels observed. None where the
    labels do not sort (mixed types) or ``labels`` is not one array per task: the per-task
    calls then score or refuse them."""
    try:
        values, codes = np.unique(y, return_inverse=True)
    except TypeError:
        return None
    k = np.int64(max(len(values), 1))
    keys = tasks.astype(np.int64) * k + codes.ravel()
    pairs = np.unique(keys)  # (task, label) pairs, sorted: each task's labels in order
    observed = np.bincount(pairs // k, minlength=n_tasks)
    if labels is None:  # the label's rank among its task's distinct labels
        first = np.searchsorted(pairs, np.arange(n_tasks, dtype=np.int64) * k)
        return np.searchsorted(pairs, keys) - first[tasks], observed, observed
    if len(labels) != n_tasks:
        return None
    column = np.full(len(y), -1)
    n_classes = np.array([len(task_labels) for task_labels in labels])
    groups = _tasks_by_classes(labels)
    group = np.empty(n_tasks, dtype=np.intp)
    for g, (_, members) in enumerate(groups):
        group[members] = g
    row_group = group[tasks]
    for g, (classes, _) in enumerate(groups):
        classes = _tighten(classes)
        comparable = (y.dtype.kind in "biuf" and classes.dtype.kind in "biuf"
                      or y.dtype.kind == classes.dtype.kind)
        if not comparable or len(set(classes.tolist())) != len(classes):
            continue  # unknown: the per-task check names the labels
        rows = np.flatnonzero(row_group == g)
        for j, label in enumerate(classes):
            column[rows[y[rows] == label]] = j
    return column, n_classes, observed


def _score_sums(kind, labels):
    """Per-task ROC-AUC (``"roc_auc"``) or average precision (``"average_precision"``) of
    binary tasks, or log loss (``"log_loss"``), at once (:func:`_vectorized_scores`), as
    scikit-learn computes them: the positive class is the task's last, a task with a label
    outside its classes, fewer or more classes than the metric takes, scores that are not
    finite, or weights that are negative or leave a class without weight is left to the
    per-task call (its value, warning or error)."""

    def vectorized(y, p, w, tasks, n_tasks):
        if p.dtype.kind not in "biuf":
            return None
        found = _class_columns(y, tasks, n_tasks, labels)
        if found is None:
            return None
        column, n_classes, observed = found
        p = p.astype(np.float64, copy=False)
        if kind == "log_loss":
            return _log_loss_sums(p, w, column, tasks, n_tasks, n_classes, observed)
        if p.ndim == 2:  # one column per class: the positive (last) one's
            if p.shape[1] != 2:
                return None
            p = p[:, 1]
        bad = ~(np.isfinite(p) & np.isfinite(w) & (w >= 0.0)) | (column < 0)
        pending = ((np.bincount(tasks, weights=bad, minlength=n_tasks) > 0)
                   | (n_classes != 2) | (observed != 2))
        kept = ~pending[tasks] & (w != 0.0)  # (scikit-learn drops rows of weight 0)
        # each task's rows by decreasing score, ties together
        order = np.flatnonzero(kept)
        order = order[np.lexsort((-p[order], tasks[order]))]
        bounds = np.searchsorted(tasks[order], np.arange(n_tasks + 1))
        scores = _ranked_binary(bounds, p[order], column[order] == 1, w[order],
                                kind == "roc_auc")
        return scores, pending | np.isnan(scores)

    vectorized.checks_labels = True
    return vectorized


@njit(cache=True)
def _ranked_binary(bounds, score, positive, w, roc):
    """Per task (rows ``bounds[t]:bounds[t + 1]`` by decreasing ``score``): the area under
    the ROC curve (trapezoids between the thresholds, ties one threshold) or the average
    precision (``sum_k (R_k - R_k-1) P_k`` over the thresholds); NaN where a class has no
    weight."""
    n_tasks = len(bounds) - 1
    out = np.full(n_tasks, np.nan)
    for t in range(n_tasks):
        start, stop = bounds[t], bounds[t + 1]
        positives, negatives = 0.0, 0.0
        for i in range(start, stop):
            if positive[i]:
                positives += w[i]
            else:
                negatives += w[i]
        if not (positives > 0.0 and negatives > 0.0):
            continue
        tp, fp, total, recall = 0.0, 0.0, 0.0, 0.0
        i = start
        while i < stop:
            tp_next, fp_next, j = tp, fp, i
            while j < stop and score[j] == score[i]:
                if positive[j]:
                    tp_next += w[j]
                else:
                    fp_next += w[j]
                j += 1
            if roc:
                total += (fp_next - fp) * (tp_next + tp)
            else:
                recall_next = tp_next / positives
                total += (recall_next - recall) * (tp_next / (tp_next + fp_next))
                recall = recall_next
            tp, fp, i = tp_next, fp_next, j
        out[t] = total / (2.0 * positives * negatives) if roc else max(total, 0.0)
    return out


def _log_loss_sums(p, w, column, tasks, n_tasks, n_classes, observed):
    """Per-task log loss, ``-sum w log clip(p_y) / sum w`` with ``p`` clipped to ``[eps, 1 -
    eps]``; probabilities outside [0, 1] or whose rows do not sum to 1 (scikit-learn's error
    and warning) and single-class tasks without ``labels`` are left to the per-task call."""
    if p.ndim == 1:  # the positive class's probability
        p = np.column_stack([1.0 - p, p])
    eps = np.finfo(np.float64).eps
    with np.errstate(invalid="ignore"):
        bad = ~(np.all((p >= 0.0) & (p <= 1.0), axis=1)
                & np.isclose(p.sum(axis=1), 1.0, rtol=np.sqrt(eps), atol=1e-8)) | (column < 0)
    pending = ((np.bincount(tasks, weights=bad, minlength=n_tasks) > 0)
               | (n_classes != p.shape[1]) | (n_classes < 2) | (observed < 1))
    chosen = p[np.arange(len(p)), np.maximum(column, 0)]
    losses, undecided = _weighted_means(-np.log(np.clip(chosen, eps, 1.0 - eps)), w, tasks,
                                        n_tasks)
    return losses, pending | undecided


def _aggregate(scores, multioutput):
    if isinstance(multioutput, str):
        if multioutput == "raw_values":
            return scores
        if multioutput != "uniform_average":
            raise ValueError(
                "multioutput must be 'uniform_average', 'raw_values' or an array of task "
                f"weights; got {multioutput!r}."
            )
        defined = scores[~np.isnan(scores)]
        return float(defined.mean()) if defined.size else float("nan")
    weights = np.asarray(multioutput, dtype=np.float64)
    if weights.shape != scores.shape:
        raise ValueError(
            f"multioutput weights must have shape {scores.shape} (one per task); "
            f"got {weights.shape}."
        )
    defined = ~np.isnan(scores)
    if weights[defined].sum() == 0:  # no defined task, or only zero-weight ones
        return float("nan")
    return float(np.average(scores[defined], weights=weights[defined]))


def _masked_metric(metric, y_true, y_pred, task_ids, sample_weight, multioutput, **options):
    """``metric`` per task through :func:`per_task_scores`, combined by ``multioutput``."""
    _, scores = per_task_scores(metric, y_true, y_pred, task_ids=task_ids,
                                sample_weight=sample_weight, **options)
    return _aggregate(scores, multioutput)


def _label_metric(func, vectorized=None, **fixed):
    def metric(y_t, p_t, *, sample_weight, task):
        return func(y_t, p_t, sample_weight=sample_weight, **fixed)

    metric.vectorized = vectorized  # every task at once, where it can (per_task_scores)
    return metric


def r2_score(y_true, y_pred, *, task_ids=None, sample_weight=None,
             multioutput="uniform_average"):
    """Coefficient of determination R^2 per task, on observed labels only.

    For each task, :func:`sklearn.metrics.r2_score` on the rows where that task's label is
    observed. A task with fewer than two observed labels has no R^2 (NaN, left out of the
    average). A task whose observed labels are all equal gets scikit-learn's convention
    (``force_finite``): 1.0 when the predictions equal them exactly, else 0.0, so rounding
    errors of 1e-15 decide between the two; score such data with the squared error.

    Parameters
    ----------
    {value_params}

    Returns
    -------
    score : float or ndarray of shape (n_tasks,)

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.metrics import r2_score
    >>> Y = np.array([[1.0, 2.0], [2.0, np.nan], [3.0, 4.0], [4.0, 5.0]])
    >>> P = np.array([[1.0, 2.0], [2.0, 9.0], [3.0, 5.0], [4.0, 4.0]])
    >>> r2_score(Y, P, multioutput="raw_values")  # task 1 scored on rows 0, 2, 3 only
    array([1.        , 0.57142857])
    """
    metric = _label_metric(skm.r2_score, _regression_sums("r2"))
    return _masked_metric(metric, y_true, y_pred, task_ids,
                          sample_weight, multioutput, min_samples=2)


def mean_squared_error(y_true, y_pred, *, task_ids=None, sample_weight=None,
                       multioutput="uniform_average"):
    """Mean squared error per task, on observed labels only.

    Parameters
    ----------
    {value_params}

    Returns
    -------
    loss : float or ndarray of shape (n_tasks,)

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.metrics import mean_squared_error
    >>> mean_squared_error([1.0, 2.0, 3.0], [1.0, 2.0, 5.0], task_ids=["a", "b", "b"],
    ...                    multioutput="raw_values")
    array([0., 2.])
    """
    metric = _label_metric(skm.mean_squared_error, _regression_sums("squared"))
    return _masked_metric(metric, y_true, y_pred, task_ids,
                          sample_weight, multioutput)


def mean_absolute_error(y_true, y_pred, *, task_ids=None, sample_weight=None,
                        multioutput="uniform_average"):
    """Mean absolute error per task, on observed labels only.

    Parameters
    ----------
    {value_params}

    Returns
    -------
    loss : float or ndarray of shape (n_tasks,)

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.metrics import mean_absolute_error
    >>> mean_absolute_error(np.array([[1.0, np.nan], [3.0, 1.0]]),
    ...                     np.array([[2.0, 0.0], [3.0, 3.0]]))
    1.25
    """
    metric = _label_metric(skm.mean_absolute_error, _regression_sums("absolute"))
    return _masked_metric(metric, y_true, y_pred, task_ids,
                          sample_weight, multioutput)


def accuracy_score(y_true, y_pred, *, task_ids=None, sample_weight=None,
                   multioutput="uniform_average"):
    """Accuracy per task on observed labels; by default their mean (never subset accuracy).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,) or (n_samples, n_tasks)
        True class labels; NaN / None marks a missing label in wide data.
    y_pred : array-like of shape (n_samples,) or (n_samples, n_tasks)
        Predicted labels, same layout as ``y_true``.
    {rows_params}

    Returns
    -------
    score : float or ndarray of shape (n_tasks,)

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.metrics import accuracy_score
    >>> Y = np.array([["a", "x"], ["b", None], ["b", "y"]], dtype=object)
    >>> P = np.array([["a", "y"], ["b", "y"], ["a", "y"]], dtype=object)
    >>> accuracy_score(Y, P, multioutput="raw_values")
    array([0.66666667, 0.5       ])
    """
    metric = _label_metric(skm.accuracy_score, _accuracy_sums)
    return _masked_metric(metric, y_true, y_pred, task_ids,
                          sample_weight, multioutput, y_numeric=False)


def _n_tasks_of(y_true, task_ids):
    """Number of tasks the masked metric will see, without validating y_true (None if unsure)."""
    try:
        if task_ids is not None:
            return len(np.unique(np.asarray(task_ids)))
        return 1 if np.ndim(y_true) == 1 else np.shape(y_true)[1]
    except (TypeError, ValueError, IndexError):
        return None


def _check_labels(labels, y_true, task_ids):
    """``labels`` as one 1-D array of classes per task (a flat list is one task's classes)."""
    if labels is None:
        return None
    if isinstance(labels, np.ndarray) and labels.ndim == 1 and labels.dtype != object:
        labels = [labels]
    elif all(np.ndim(c) == 0 for c in labels):
        labels = [np.asarray(labels)]
    labels = [np.asarray(c) for c in labels]
    for task, task_labels in enumerate(labels):
        if task_labels.ndim != 1 or task_labels.shape[0] == 0:
            raise ValueError(
                "labels must hold one non-empty 1-D array of classes per task; entry "
                f"{task} has shape {task_labels.shape}."
            )
    n_tasks = _n_tasks_of(y_true, task_ids)
    if n_tasks is not None and len(labels) != n_tasks:
        raise ValueError(
            f"labels has classes for {len(labels)} task(s) but y_true has {n_tasks}; pass one "
            "array of classes per task (for long data, in sorted task_ids order)."
        )
    return labels


def _check_known_classes(y_t, task_labels):
    """Raise for a true label outside the task's classes (the model has no score for it)."""
    known = {_hashable(c) for c in task_labels}
    unseen = [c for c in np.unique(y_t) if _hashable(c) not in known]
    if unseen:
        raise ValueError(
            f"y_true holds class(es) {_format_tasks(unseen)} that are not among the task's "
            f"classes {task_labels.tolist()} (labels, e.g. the estimator's classes_): the "
            "model never saw them and has no score for them."
        )


def _score_metric(func, labels, *, positive_only, vectorized=None, **fixed):
    """Wrap a metric on scores: binary tasks get the positive-class column.

    With ``labels`` (the model's classes), a true label outside a task's classes raises, for
    every metric on scores alike (roc_auc, average_precision, log_loss); per_task_scores puts
    the task's name in front of the message.
    """

    def metric(y_t, s_t, *, sample_weight, task):
        task_labels = np.unique(y_t) if labels is None else labels[task]
        s_t = np.asarray(s_t, dtype=np.float64)
        if s_t.ndim == 1 and task_labels.shape[0] > 2:
            raise ValueError(
                f"y_score is 1-D but the task has {task_labels.shape[0]} classes "
                f"{task_labels.tolist()}; pass one score column per class (predict_proba)."
            )
        if s_t.ndim == 2:
            if s_t.shape[1] != task_labels.shape[0]:
                raise ValueError(
                    f"y_score has {s_t.shape[1]} columns but the task has "
                    f"{task_labels.shape[0]} classes {task_labels.tolist()}; pass labels= "
                    "(e.g. estimator.classes_) when a class is absent from y_true."
                )
            if task_labels.shape[0] == 2 and positive_only:
                s_t = s_t[:, 1]
        if s_t.ndim == 2:
            return func(y_t, s_t, sample_weight=sample_weight, labels=task_labels, **fixed)
        if positive_only:
            return func(y_t == task_labels[-1], s_t, sample_weight=sample_weight, **fixed)
        return func(y_t, s_t, sample_weight=sample_weight, labels=task_labels, **fixed)

    if labels is not None:
        # per_task_scores calls it first, also on a task whose score is undefined (one class)
        metric.check_labels = lambda y_t, *, task: _check_known_classes(y_t, labels[task])
    metric.vectorized = vectorized  # every task at once, where it can (per_task_scores)
    return metric


def roc_auc_score(y_true, y_score, *, task_ids=None, labels=None, sample_weight=None,
                  multioutput="uniform_average"):
    """Area under the ROC curve per task, on observed labels only.

    Binary tasks use the positive (last) class's score; multiclass tasks use one-vs-rest
    averaging (:func:`sklearn.metrics.roc_auc_score` with ``multi_class="ovr"``). A task whose
    observed labels hold a single class has no AUC (NaN, left out of the average).

    Parameters
    ----------
    {score_params}
    {multioutput}

    Returns
    -------
    score : float or ndarray of shape (n_tasks,)

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.metrics import roc_auc_score
    >>> Y = np.array([[0, 1], [1, np.nan], [1, 0], [0, 1]])
    >>> S = np.array([[0.1, 0.8], [0.9, 0.5], [0.4, 0.3], [0.5, 0.2]])
    >>> roc_auc_score(Y, S, multioutput="raw_values")
    array([0.75, 0.5 ])
    """
    labels = _check_labels(labels, y_true, task_ids)
    metric = _score_metric(_roc_auc, labels, positive_only=True,
                           vectorized=_score_sums("roc_auc", labels))
    return _masked_metric(metric, y_true, y_score, task_ids, sample_weight, multioutput,
                          y_numeric=False, probabilistic=True, min_classes=2)


def _roc_auc(y, s, *, sample_weight, labels=None):
    if s.ndim == 2:
        return skm.roc_auc_score(y, s, sample_weight=sample_weight, labels=labels,
                                 multi_class="ovr")
    return skm.roc_auc_score(y, s, sample_weight=sample_weight)


def average_precision_score(y_true, y_score, *, task_ids=None, labels=None, sample_weight=None,
                            multioutput="uniform_average"):
    """Average precision (area under the precision-recall curve) per task.

    Binary tasks use the positive (last) class's score; multiclass tasks are scored one class
    against the rest and macro-averaged. A task whose observed labels hold a single class has
    no value (NaN, left out of the average).

    Parameters
    ----------
    {score_params}
    {multioutput}

    Returns
    -------
    score : float or ndarray of shape (n_tasks,)

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.metrics import average_precision_score
    >>> average_precision_score([0, 1, 1, 0], [0.1, 0.9, 0.4, 0.5], task_ids=[0, 0, 1, 1],
    ...                         multioutput="raw_values")
    array([1. , 0.5])
    """
    labels = _check_labels(labels, y_true, task_ids)
    metric = _score_metric(_average_precision, labels, positive_only=True,
                           vectorized=_score_sums("average_precision", labels))
    return _masked_metric(metric, y_true, y_score, task_ids, sample_weight, multioutput,
                          y_numeric=False, probabilistic=True, min_classes=2)


def _average_precision(y, s, *, sample_weight, labels=None):
    if s.ndim == 2:
        onehot = (np.asarray(y)[:, None] == np.asarray(labels)[None, :]).astype(int)
        return skm.average_precision_score(onehot, s, sample_weight=sample_weight,
                                           average="macro")
    return skm.average_precision_score(y, s, sample_weight=sample_weight)


def log_loss(y_true, y_score, *, task_ids=None, labels=None, sample_weight=None,
             multioutput="uniform_average"):
    """Cross-entropy (log loss) per task, on observed labels only.

    Parameters
    ----------
    {score_params}
    {multioutput}

    Returns
    -------
    loss : float or ndarray of shape (n_tasks,)

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.metrics import log_loss
    >>> float(np.round(log_loss([1, 0], [[0.2, 0.8], [0.6, 0.4]]), 4))
    0.367
    """
    labels = _check_labels(labels, y_true, task_ids)
    metric = _score_metric(_log_loss, labels, positive_only=False,
                           vectorized=_score_sums("log_loss", labels))
    return _masked_metric(metric, y_true, y_score, task_ids, sample_weight, multioutput,
                          y_numeric=False, probabilistic=True)


def _log_loss(y, s, *, sample_weight, labels):
    if s.ndim == 1:
        s = np.column_stack([1.0 - s, s])
    try:
        order = np.argsort(labels, kind="stable")
    except TypeError:  # labels that do not sort: scikit-learn's error
        order = np.arange(len(labels))
    # the columns follow labels (the contract); scikit-learn reads them in sorted label order
    return skm.log_loss(y, s[:, order], sample_weight=sample_weight,
                        labels=np.asarray(labels)[order])


for _f in (r2_score, mean_squared_error, mean_absolute_error, accuracy_score, roc_auc_score,
           average_precision_score, log_loss):
    Substitution(**_DOCS)(_f)
