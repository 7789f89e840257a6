"""The multi-task data contract: every accepted target format becomes ``(Y, mask)``.

Three target formats are accepted (see the user guide, "Data formats"):

1. 1-D ``y (n,)`` with no ``task_ids``: a single task.
2. Wide ``Y (n, n_tasks)``: a missing label is NaN, or None / ``pd.NA`` in object arrays; a
   DataFrame's columns name the tasks.
3. Long ``y (n,)`` with ``task_ids (n,)``: one row per observed (sample, task) pair.

Internally each becomes a wide ``(n, n_tasks)`` value matrix and a boolean ``mask`` of the
observed entries. Values behind the mask are filled with 0 and must never be read.
"""

import contextlib
import sys

import numpy as np
import scipy.sparse as sp
from sklearn.utils import assert_all_finite
from sklearn.utils.multiclass import check_classification_targets

__all__ = [
    "UnknownTaskError",
    "MultiTaskTarget",
    "check_finite_squares",
    "check_groups",
    "encode_groups",
    "check_multitask_target",
    "check_task_columns",
    "check_task_ids",
    "encode_task_ids",
    "common_label_dtype",
    "encode_target_classes",
    "encode_task_classes",
    "group_rows_by_task",
    "missing_mask",
]

LAYOUTS = ("1d", "wide", "long")


class UnknownTaskError(ValueError):
    """A task label at predict or score time that was not seen during ``fit``.

    Subclass of :class:`ValueError`, so ``except ValueError`` catches it too.
    """


class _ValidationSplitError(ValueError):
    """A deep fit's early stopping cannot hold out validation data from the rows it is given.

    ``reason`` says why, in terms that do not name the estimator's parameters, and
    ``by_groups`` whether the split was by whole groups: for callers that give their own
    advice (``skmtl compare``, whose users set no ``early_stopping``). Set as attributes,
    they survive the pickling of a parallel backend.
    """


def _validation_split_error(reason, advice, *, by_groups):
    """:class:`_ValidationSplitError` with the message ``reason; advice``."""
    error = _ValidationSplitError(f"{reason}; {advice}")
    error.reason, error.by_groups = reason, by_groups
    return error


class MultiTaskTarget:
    """A validated multi-task target.

    Wide and 1-D targets are held as a dense ``(n_samples, n_tasks)`` value matrix and mask.
    Long targets keep their one label per row and each row's task; the dense form is built
    only if asked for (``values`` / ``mask``), so code that works task by task
    (:meth:`task_rows`, :meth:`observations`) never pays ``n_samples * n_tasks`` memory.

    Attributes
    ----------
    tasks : ndarray of shape (n_tasks,)
        Task labels: ``arange(n_tasks)`` for arrays, the column names of a DataFrame, or the
        sorted unique ``task_ids`` of long data.
    layout : {"1d", "wide", "long"}
        The format the user passed.
    labels : ndarray of shape (n_samples,) or None
        Long data: each row's label (float64 for regression). None otherwise.
    task_index : ndarray of intp, shape (n_samples,) or None
        Long data: the position in ``tasks`` of each row's task. None otherwise.
    values : ndarray of shape (n_samples, n_tasks)
        float64 for regression targets; for classification targets the user's labels (any
        dtype). Entries where ``mask`` is False hold 0 (regression) or an arbitrary label.
    mask : ndarray of bool, shape (n_samples, n_tasks)
        True where a label is observed.
    """

    def __init__(self, tasks, layout, *, values=None, mask=None, labels=None, task_index=None):
        self.tasks = tasks
        self.layout = layout
        self.labels = labels
        self.task_index = task_index
        self._values = values
        self._mask = mask

    @property
    def n_tasks(self):
        return self.tasks.shape[0]

    @property
    def n_samples(self):
        return self.labels.shape[0] if self.layout == "long" else self._mask.shape[0]

    @property
    def values(self):
        if self._values is None:  # long data, dense form asked for
            fill = 0.0 if self.labels.dtype.kind == "f" else self.labels[0]
            self._values = np.full((self.n_samples, self.n_tasks), fill, dtype=self.labels.dtype)
            self._values[np.arange(self.n_samples), self.task_index] = self.labels
        return self._values

    @property
    def mask(self):
        if self._mask is None:
            self._mask = np.zeros((self.n_samples, self.n_tasks), dtype=bool)
            self._mask[np.arange(self.n_samples), self.task_index] = True
        return self._mask

    def observations(self):
        """Every observed label as ``(rows, tasks, labels)``, in row-major order."""
        if self.layout == "long":
            return np.arange(self.n_samples), self.task_index, self.labels
        rows, tasks = np.nonzero(self._mask)
        return rows, tasks, self._values[rows, tasks]

    def task_rows(self):
        """The observed rows of each task: a list of ``n_tasks`` sorted index arrays."""
        if self.layout == "long":
            return group_rows_by_task(self.task_index, self.n_tasks)
        return [np.flatnonzero(self._mask[:, t]) for t in range(self.n_tasks)]

    def task_labels(self, t, rows):
        """The labels of task ``t`` at its observed ``rows``."""
        return self.labels[rows] if self.layout == "long" else self._values[rows, t]


def group_rows_by_task(task_index, n_tasks):
    """Row indices of each task, in O(n log n) (not one scan per task).

    Parameters
    ----------
    task_index : ndarray of int, shape (n_samples,)
        Each row's task position.
    n_tasks : int
        Number of tasks.

    Returns
    -------
    groups : list of ndarray
        ``groups[t]`` holds the rows of task ``t`` in increasing order.
    """
    order = np.argsort(task_index, kind="stable")
    bounds = np.cumsum(np.bincount(task_index, minlength=n_tasks))[:-1]
    return np.split(order, bounds)


def missing_mask(values):
    """Boolean mask of the missing entries of an array.

    A missing entry is NaN for float arrays, and None, NaN or ``pd.NA`` (anything
    ``pandas.isna`` calls missing) for object arrays. Other dtypes have no missing entries.

    Parameters
    ----------
    values : ndarray
        Array of any shape.

    Returns
    -------
    mask : ndarray of bool, same shape as ``values``
        True where the entry is missing.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.utils.validation import missing_mask
    >>> missing_mask(np.array([1.0, np.nan]))
    array([False,  True])
    >>> missing_mask(np.array(["a", None], dtype=object))
    array([False,  True])
    """
    values = np.asarray(values)
    if values.dtype.kind in "fc":
        return np.isnan(values)
    if values.dtype.kind != "O":
        return np.zeros(values.shape, dtype=bool)
    pd = sys.modules.get("pandas")
    if pd is not None:
        return np.asarray(pd.isna(values), dtype=bool)
    is_missing = np.frompyfunc(lambda v: v is None or (isinstance(v, float) and v != v), 1, 1)
    return np.asarray(is_missing(values), dtype=bool)


def _is_frame(obj):
    return hasattr(obj, "columns") and hasattr(obj, "iloc") and getattr(obj, "ndim", 0) == 2


def _to_array(y):
    """Convert y (array-like, Series, DataFrame) to a numpy array without copying floats."""
    if _is_frame(y):
        dtypes = list(y.dtypes)
        if all(getattr(d, "kind", "O") in "biuf" for d in dtypes):
            return y.to_numpy(dtype=np.float64 if any(d.kind == "f" for d in dtypes) else None)
        return y.to_numpy(dtype=object)
    if hasattr(y, "to_numpy") and hasattr(y, "dtype"):  # Series / pandas extension arrays
        kind = getattr(y.dtype, "kind", "O")
        if kind in "biuf" and not getattr(y, "hasnans", False):
            return y.to_numpy()
        return y.to_numpy(dtype=np.float64 if kind in "f" else object)
    return np.asarray(y)


def _format_tasks(tasks, limit=5):
    tasks = [repr(t.item() if hasattr(t, "item") else t) for t in tasks]
    shown = ", ".join(tasks[:limit])
    return shown + (f", ... ({len(tasks)} in all)" if len(tasks) > limit else "")


def _task_error(task, exc):
    """``exc`` as a ValueError whose message starts with the task at fault."""
    return ValueError(f"Task {_hashable(task)!r}: {exc}")


def _frame_tasks(y):
    """The task labels a DataFrame's columns name; a ValueError names any duplicated column."""
    columns = y.columns
    if not columns.is_unique:
        duplicated = list(dict.fromkeys(columns[columns.duplicated()]))
        raise ValueError(
            f"Y has duplicated column name(s) {_format_tasks(duplicated)}; each column is a "
            "task and needs a name of its own."
        )
    return np.asarray(list(columns), dtype=object)


def check_task_columns(y, tasks):
    """Check that a DataFrame's columns are the tasks seen in fit (same names, same order).

    Parameters
    ----------
    y : DataFrame of shape (n_samples, n_tasks)
        A wide target at predict or score time.
    tasks : ndarray of shape (n_tasks,)
        The tasks seen in fit (``estimator.tasks_``).

    Raises
    ------
    ValueError
        If a column name is duplicated (the message names it) or the columns differ from
        ``tasks``.
    """
    columns = _frame_tasks(y)
    if columns.shape != np.shape(tasks) or np.any(columns != np.asarray(tasks, dtype=object)):
        raise ValueError(
            f"Y's columns {columns.tolist()[:5]} do not match the tasks seen in fit "
            f"{np.asarray(tasks).tolist()[:5]} (same names, same order)."
        )


def check_task_ids(task_ids, n_samples):
    """Validate a ``task_ids`` vector: 1-D, one entry per row, no missing value.

    Parameters
    ----------
    task_ids : array-like of shape (n_samples,)
        The task of each row (long format).
    n_samples : int
        The number of rows of X and y.

    Returns
    -------
    task_ids : ndarray of shape (n_samples,)

    Raises
    ------
    ValueError
        If task_ids is not 1-D, has the wrong length or contains a missing value.
    """
    return _check_row_labels(task_ids, n_samples, "task_ids", "task", "one task id per row")


def check_groups(groups, n_samples):
    """Validate the ``groups`` of a group splitter: 1-D, one entry per row, no missing value.

    Parameters
    ----------
    groups : array-like of shape (n_samples,)
        The group of each row (e.g. the scaffold of each molecule): a group splitter keeps
        the rows of a group in one fold.
    n_samples : int
        The number of rows of X and y.

    Returns
    -------
    groups : ndarray of shape (n_samples,)

    Raises
    ------
    ValueError
        If groups is not 1-D, has the wrong length or contains a missing value.
    """
    return _check_row_labels(groups, n_samples, "groups", "group", "one group per row")


def encode_groups(groups, n_samples):
    """Validate ``groups`` (:func:`check_groups`) and number them: each row's group as an
    index into the sorted distinct groups.

    Parameters
    ----------
    groups : array-like of shape (n_samples,)
        The group of each row.
    n_samples : int
        The number of rows of X and y.

    Returns
    -------
    codes : ndarray of int of shape (n_samples,)
        The group of each row, ``0 .. n_groups - 1``.
    n_groups : int
        The number of distinct groups.

    Raises
    ------
    ValueError
        As :func:`check_groups`, and if the groups mix types that cannot be ordered.
    """
    groups = check_groups(groups, n_samples)
    try:
        _, codes = np.unique(groups, return_inverse=True)
    except TypeError:
        raise ValueError("groups mixes types that cannot be ordered (e.g. strings and "
                         "numbers): give every group a label of one type.") from None
    codes = codes.ravel()
    return codes, int(codes.max()) + 1 if codes.size else 0


def _check_row_labels(values, n_samples, name, noun, one_per_row):
    """A 1-D vector of labels, one per row, none missing (``task_ids``, ``groups``)."""
    values = _to_array(values)
    if values.ndim != 1:
        raise ValueError(f"{name} must be 1-D with one {noun} per row; got shape {values.shape}.")
    if values.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {values.shape[0]} entries but the data have {n_samples} rows: "
            f"{one_per_row}."
        )
    missing = missing_mask(values)
    if missing.any():
        rows = np.flatnonzero(missing)[:5].tolist()
        raise ValueError(f"{name} contains missing values (rows {rows}); every row needs a "
                         f"{noun}.")
    return values


def _unique_labels(values, what):
    try:
        return np.unique(values)
    except TypeError as exc:
        raise ValueError(
            f"{what} mixes types that cannot be ordered (e.g. strings and numbers): {exc}"
        ) from None


def encode_task_ids(task_ids, tasks, *, allow_unknown=False):
    """Map task labels to their column in ``tasks``, raising for labels not in ``tasks``.

    Parameters
    ----------
    task_ids : ndarray of shape (n_samples,)
        Validated task labels (see :func:`check_task_ids`).
    tasks : ndarray of shape (n_tasks,)
        The known task labels (``estimator.tasks_``).
    allow_unknown : bool, default=False
        Encode a label not in ``tasks`` as -1 instead of raising.

    Returns
    -------
    task_index : ndarray of intp, shape (n_samples,)
        ``tasks[task_index] == task_ids``; -1 for an unknown label when ``allow_unknown``.

    Raises
    ------
    UnknownTaskError
        If a label of ``task_ids`` is not in ``tasks`` and not ``allow_unknown``; the message
        names it.
    """
    lookup = {_hashable(t): i for i, t in enumerate(tasks)}
    # one lookup per distinct label, not per row (100,000 rows: 0.4 s of Python)
    try:
        labels, inverse = np.unique(task_ids, return_inverse=True)
    except TypeError:  # labels that cannot be ordered: one lookup per row
        labels, inverse = task_ids, None
    index = np.fromiter((lookup.get(_hashable(t), -1) for t in labels), dtype=np.intp,
                        count=len(labels))
    if inverse is not None:
        index = index[inverse.ravel()]
    if allow_unknown or not (index < 0).any():
        return index
    unknown = [t for t in _unique_labels(task_ids, "task_ids") if _hashable(t) not in lookup]
    raise UnknownTaskError(
        f"task_ids contains task(s) not seen during fit: {_format_tasks(unknown)}. "
        f"Known tasks: {_format_tasks(tasks)}. Estimators with a shared part predict a "
        "new task from it with unknown_task='shared'."
    )


def _hashable(value):
    return value.item() if isinstance(value, np.generic) else value


def _check_1d_target(y, y_numeric):
    if y_numeric:
        y = np.asarray(y, dtype=np.float64) if y.dtype.kind != "f" else y
        assert_all_finite(y, input_name="y")
        return y
    if missing_mask(y).any():
        raise ValueError("Input y contains NaN (a missing label). A single-task y must be "
                         "fully observed; pass a 2-D Y for missing labels.")
    return y


def _check_numeric(values, where):
    if values.dtype.kind in "biuf":
        return values.astype(np.float64, copy=False)
    try:
        return values.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{where} must be numeric for a regressor; got values of dtype {values.dtype}."
        ) from None


def check_multitask_target(y, task_ids=None, *, y_numeric, require_all_tasks=True):
    """Validate any accepted target format and return it in the internal wide form.

    Parameters
    ----------
    y : array-like of shape (n_samples,) or (n_samples, n_tasks)
        1-D single-task target, wide multi-task target with missing labels as NaN / None /
        ``pd.NA``, or 1-D long-format target (with ``task_ids``).
    task_ids : array-like of shape (n_samples,), default=None
        The task of each row, for long-format data.
    y_numeric : bool
        True for regression targets (converted to float64), False for class labels (kept in
        their own dtype, checked to be class labels).
    require_all_tasks : bool, default=True
        Raise if a column of a wide Y has no observed label (fit). Metrics pass False: a
        test fold may lack a task.

    Returns
    -------
    target : MultiTaskTarget
        ``values`` and ``mask`` of shape (n_samples, n_tasks), ``tasks``, ``layout`` and, for
        long data, ``task_index``.

    Raises
    ------
    ValueError
        For an empty target (0 rows), duplicated DataFrame column names, an infinite label, a
        missing label in 1-D or long data, a task without any observed label, non-numeric
        regression targets, non-class classification targets, a 2-D y with ``task_ids``,
        a y of more than two dimensions, complex values, or a scipy.sparse y. The message
        names the task (or column) at fault.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.utils.validation import check_multitask_target
    >>> t = check_multitask_target(np.array([[1.0, np.nan], [2.0, 3.0]]), y_numeric=True)
    >>> t.values
    array([[1., 0.],
           [2., 3.]])
    >>> t.mask
    array([[ True, False],
           [ True,  True]])
    >>> t = check_multitask_target([5.0, 6.0], task_ids=["b", "a"], y_numeric=True)
    >>> t.tasks, t.layout
    (array(['a', 'b'], dtype='<U1'), 'long')
    """
    if y is None:
        raise ValueError("y is None; a target is required.")
    if sp.issparse(y):
        raise ValueError(
            f"y is a scipy.sparse matrix of shape {y.shape}, which skmtl does not take as a "
            "target: its implicit zeros would be labels of 0, not missing labels. Pass a wide "
            "array with NaN for the missing labels or, when the stored entries are the "
            "labels, long data: c = y.tocoo(); fit(X[c.row], c.data, task_ids=c.col)."
        )
    tasks = _frame_tasks(y) if _is_frame(y) else None
    values = _to_array(y)
    if values.ndim == 0 or values.ndim > 2:
        raise ValueError(f"y must be 1-D or 2-D; got an array of shape {values.shape}.")
    if values.dtype.kind == "c":  # numpy would drop the imaginary part, with a warning
        raise ValueError("Complex data not supported: y contains complex values; a target "
                         "must be real.")
    if values.shape[0] == 0:
        raise ValueError(
            f"The target is empty (0 rows, shape {values.shape}); at least one labelled row "
            "is needed."
        )
    if task_ids is not None:
        if values.ndim != 1:
            raise ValueError(
                "task_ids is given, so y must be 1-D (long format: one row per observed "
                f"(sample, task) pair); got y of shape {values.shape}."
            )
        return _check_long_target(values, check_task_ids(task_ids, values.shape[0]), y_numeric)
    if values.ndim == 1:
        values = _check_1d_target(values, y_numeric)
        if not y_numeric:
            _check_classes(values)
        values = values.reshape(-1, 1)
        return MultiTaskTarget(np.arange(1), "1d", values=values,
                               mask=np.ones(values.shape, dtype=bool))
    if tasks is None:
        tasks = np.arange(values.shape[1])
    if values.shape[1] == 0:
        raise ValueError("Y has 0 columns; at least one task is required.")
    mask = ~missing_mask(values)
    if y_numeric:
        if not mask.all():  # the one copy: missing entries become 0
            values = np.where(mask, values, 0.0)
        values = _check_numeric(values, "Y")
        inf = np.isinf(values).any(axis=0)
        if inf.any():
            raise ValueError(
                f"Input Y contains infinity in task(s) {_format_tasks(tasks[inf])}; labels must "
                "be finite (use NaN for a missing label)."
            )
    empty = ~mask.any(axis=0)
    if require_all_tasks and empty.any():
        raise ValueError(
            f"Task(s) {_format_tasks(tasks[empty])} have no observed label in Y; every task "
            "needs at least one."
        )
    if not y_numeric and not _class_labels_for_sure(_tighten(values[mask])):
        for t, task in enumerate(tasks):
            if not empty[t]:
                _check_task_classes(values[mask[:, t], t], task)
    return MultiTaskTarget(tasks, "wide", values=values, mask=mask)


def _class_labels_for_sure(observed):
    """Whether scikit-learn's check of class labels passes on every task's labels, from one
    look at them all: integers, booleans, strings, or floats that are whole numbers (below
    2**53, which it casts to integers exactly). Otherwise each task is checked (about 0.4 ms
    a task: 0.4 s to fit or score 1,000 tasks)."""
    kind = observed.dtype.kind
    if kind in "biuU":
        return True
    return kind == "f" and bool(np.all((np.abs(observed) < 2.0**53)
                                       & (observed == np.round(observed))))


def _check_task_classes(labels, task):
    try:
        _check_classes(_tighten(labels))
    except ValueError as exc:
        raise _task_error(task, exc) from None


def _check_classes(labels):
    """scikit-learn's check of class labels, an infinite one refused first (the check casts
    it to an integer, with a RuntimeWarning, before it raises). Whole numbers beyond the
    uint64 range (Python ints, which :func:`_tighten` keeps as they are) are class labels,
    which scikit-learn's check calls of an "unknown" type."""
    if labels.dtype.kind == "f" and np.isinf(labels).any():
        raise ValueError("Input y contains infinity; class labels must be finite (use NaN for "
                         "a missing label in a 2-D Y).")
    if (labels.dtype.kind == "O" and labels.size
            and all(isinstance(v, int) and not isinstance(v, bool) for v in labels)
            and any(not -2**63 <= v < 2**64 for v in labels)):
        return
    check_classification_targets(labels)


def _check_long_target(values, task_ids, y_numeric):
    missing = missing_mask(values)
    if missing.any():
        rows = np.flatnonzero(missing)[:5].tolist()
        raise ValueError(
            f"y contains missing labels in long format (rows {rows}). A long-format row is an "
            "observation: drop rows without a label."
        )
    tasks = _unique_labels(task_ids, "task_ids")
    task_index = np.searchsorted(tasks, task_ids)
    if y_numeric:
        values = _check_numeric(values, "y")
        inf = np.isinf(values)
        if inf.any():
            bad = _unique_labels(task_ids[inf], "task_ids")
            raise ValueError(f"Input y contains infinity for task(s) {_format_tasks(bad)}.")
    elif not _class_labels_for_sure(_tighten(values)):
        for task, rows in zip(tasks, group_rows_by_task(task_index, tasks.shape[0])):
            _check_task_classes(values[rows], task)
    return MultiTaskTarget(tasks, "long", labels=values, task_index=task_index)


def encode_target_classes(target):
    """Class codes of a target: ``(codes, classes)``, without densifying long data.

    Parameters
    ----------
    target : MultiTaskTarget
        A classification target.

    Returns
    -------
    codes : ndarray of intp
        Shape (n_samples,) for long data (each row's code in its own task's classes),
        (n_samples, n_tasks) otherwise (see :func:`encode_task_classes`).
    classes : list of ndarray
        Sorted classes of each task.
    """
    if target.layout != "long":
        return encode_task_classes(target.values, target.mask)
    codes = np.zeros(target.n_samples, dtype=np.intp)
    classes = []
    task_rows = target.task_rows()
    for rows in task_rows:
        task_classes, codes[rows] = np.unique(_tighten(target.labels[rows]), return_inverse=True)
        classes.append(task_classes)
    shared = _binary_label_set(classes)
    if shared is not None:
        for rows, task_classes in zip(task_rows, classes):
            codes[rows] = np.searchsorted(shared, task_classes)[codes[rows]]
        classes = [shared] * len(classes)
    return codes, classes


def encode_task_classes(values, mask):
    """Encode each task's labels as integer codes into that task's sorted classes.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_tasks)
        Class labels (any dtype); entries where ``mask`` is False are ignored.
    mask : ndarray of bool, shape (n_samples, n_tasks)
        Observed entries.

    Returns
    -------
    codes : ndarray of intp, shape (n_samples, n_tasks)
        ``classes[t][codes[i, t]] == values[i, t]`` where observed; 0 elsewhere.
    classes : list of ndarray
        Sorted classes of each task. A binary multi-task problem (two tasks or more whose
        labels, all tasks together, take exactly two values) has one label set: every task's
        classes are those two, also for a task that saw only one of them.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.utils.validation import encode_task_classes
    >>> values = np.array([["b", "x"], ["a", None]], dtype=object)
    >>> mask = np.array([[True, True], [True, False]])
    >>> codes, classes = encode_task_classes(values, mask)
    >>> codes
    array([[1, 0],
           [0, 0]])
    >>> [c.tolist() for c in classes]
    [['a', 'b'], ['x']]

    A binary problem: the second task saw only ``1`` and still has both classes.

    >>> codes, classes = encode_task_classes(np.array([[0, 1], [1, 1]]), np.ones((2, 2), bool))
    >>> codes[:, 1], [c.tolist() for c in classes]
    (array([1, 1]), [[0, 1], [0, 1]])
    """
    codes = np.zeros(mask.shape, dtype=np.intp)
    classes = []
    for t in range(mask.shape[1]):
        observed = values[mask[:, t], t]
        task_classes, inverse = np.unique(_tighten(observed), return_inverse=True)
        codes[mask[:, t], t] = inverse
        classes.append(task_classes)
    shared = _binary_label_set(classes)
    if shared is not None:
        for t, task_classes in enumerate(classes):
            codes[mask[:, t], t] = np.searchsorted(shared, task_classes)[codes[mask[:, t], t]]
        classes = [shared] * len(classes)
    return codes, classes


def _tasks_by_classes(classes):
    """The tasks that share each set of classes, ``[(task_classes, tasks), ...]`` in order of
    first appearance (``tasks`` an int array): one lookup per set, not per task."""
    groups = {}
    for t, task_classes in enumerate(classes):
        key = (task_classes.dtype.str, tuple(task_classes.tolist()))
        groups.setdefault(key, (task_classes, []))[1].append(t)
    return [(task_classes, np.asarray(tasks, dtype=np.intp))
            for task_classes, tasks in groups.values()]


def _binary_label_set(classes):
    """The problem's two classes when several tasks' labels take exactly two values, else None.

    A binary multi-task problem has one label set, shared by every task (the data contract);
    multiclass problems keep each task's own classes. Labels of kinds that cannot be ordered
    together (strings and numbers) are never one label set.
    """
    if len(classes) < 2 or any(len(c) > 2 for c in classes):
        return None
    kinds = {c.dtype.kind for c in classes}
    if len(kinds) > 1 and not kinds <= set("biuf"):
        return None
    try:
        union = np.unique(np.concatenate(classes))
    except TypeError:
        return None
    return union if union.shape[0] == 2 else None


def common_label_dtype(classes):
    """The dtype that holds every task's labels: their common numpy type, else object.

    Parameters
    ----------
    classes : list of ndarray
        The classes of each task.

    Returns
    -------
    dtype : numpy.dtype
    """
    if len({c.dtype.kind for c in classes}) > 1:
        return np.dtype(object)
    return np.result_type(*[c.dtype for c in classes])


def _tighten(labels):
    """Give object arrays of uniform type a native dtype (str or number) for np.unique.

    Whole numbers take int64, else uint64 (10000000000000000001), else stay Python ints:
    a float would make neighbouring labels one class."""
    if labels.dtype.kind != "O" or labels.size == 0:
        return labels
    if all(isinstance(v, str) for v in labels):
        return labels.astype(str)
    # booleans stay booleans (an object column of True / False / None, a pandas "boolean"
    # one with pd.NA): as numbers they came back as the classes 0.0 and 1.0
    if all(isinstance(v, (bool, np.bool_)) for v in labels):
        return labels.astype(bool)
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in labels):
        for dtype in (np.int64, np.uint64):
            with contextlib.suppress(OverflowError):
                return labels.astype(dtype)
        return labels
    if all(isinstance(v, (int, float, np.number)) for v in labels):
        return labels.astype(np.float64)
    return labels


def _column_magnitudes(A):
    """The largest absolute entry of each column of a dense or sparse 2-D array (no copy)."""
    if sp.issparse(A):
        high, low = A.max(axis=0).toarray().ravel(), A.min(axis=0).toarray().ravel()
    else:
        high, low = A.max(axis=0), A.min(axis=0)
    return np.maximum(high, -low)


def check_finite_squares(X, y=None, *, mask=None, task_index=None, tasks=None,
                         dtype=np.float64):
    """Raise if X or a task's targets are too large for the squares a solver forms.

    A least-squares or logistic solver sums products of two entries over the observed labels
    (the Gram matrix ``X_t^T X_t`` pooled over the tasks, ``X^T y``, ``||y||^2``, squared
    residuals) and multiplies two such sums with each other (duality gaps, Newton and
    Cholesky steps). All of them stay finite in ``dtype`` when every such sum is at most
    ``sqrt(max)``, ``max`` the largest finite number of ``dtype``; that holds when every
    entry satisfies::

        |entry| <= max ** (1 / 4) / sqrt(n_obs)

    ``n_obs`` the number of observed labels (a row of X counts once per task that observes
    it): ``1.16e77 / sqrt(n_obs)`` in float64. Larger entries would give inf or NaN
    coefficients, predictions and numpy overflow warnings; this raises instead, naming X or
    the tasks at fault and the remedy (standardise).

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        The features the solver sees (after any scaling of the estimator's own).
    y : ndarray of shape (n_samples,) or (n_samples, n_tasks), default=None
        Regression targets: wide (entries behind ``mask`` hold 0) or long (with
        ``task_index``). None for class codes, which are small by construction.
    mask : ndarray of bool, shape (n_samples, n_tasks), default=None
        The observed labels of a wide target; None for 1-D or long data (one label a row).
    task_index : ndarray of int, shape (n_samples,), default=None
        Long data: each row's task position.
    tasks : ndarray of shape (n_tasks,), default=None
        Task labels for the message (``estimator.tasks_``); default: positions.
    dtype : numpy dtype, default=np.float64
        The precision the solver computes in.

    Raises
    ------
    ValueError
        If an entry of X, or of a task's targets, exceeds the bound above.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.utils.validation import check_finite_squares
    >>> check_finite_squares(np.ones((4, 2)), np.ones(4))
    >>> check_finite_squares(np.full((4, 2), 1e200))
    Traceback (most recent call last):
    ...
    ValueError: X has entries up to 1e+200 in magnitude (feature 0): ...
    """
    n_obs = X.shape[0] if mask is None else int(np.count_nonzero(mask))
    limit = np.finfo(dtype).max ** 0.25 / np.sqrt(max(n_obs, 1))
    advice = (f"with {n_obs} observed labels their squares and products overflow "
              f"{np.dtype(dtype).name} (the solver needs magnitudes up to {limit:.3g}).")
    magnitude = _column_magnitudes(X)
    if magnitude.size and not magnitude.max() <= limit:
        j = int(np.argmax(magnitude))
        raise ValueError(
            f"X has entries up to {magnitude[j]:.3g} in magnitude (feature {j}): {advice} "
            "Standardise the features: standardize=True on the linear estimators that have "
            "it, or a MaxAbsScaler before the estimator in a Pipeline (it divides each column "
            "by its largest magnitude without squaring it)."
        )
    if y is None:
        return
    if task_index is not None:
        magnitude = np.zeros(int(task_index.max()) + 1 if tasks is None else len(tasks))
        np.maximum.at(magnitude, task_index, np.abs(y))
    else:
        magnitude = _column_magnitudes(y.reshape(y.shape[0], -1))
    large = ~(magnitude <= limit)
    if large.any():
        names = np.arange(magnitude.size) if tasks is None else np.asarray(tasks)
        raise ValueError(
            f"The targets of task(s) {_format_tasks(names[large])} reach "
            f"{magnitude[large].max():.3g} in magnitude: {advice} Rescale the targets: "
            "divide y by one number for all tasks, such as its standard deviation, and "
            "multiply the predictions back (one scale keeps the tasks comparable, as the "
            "models that share between tasks need; a scale per task would change them)."
        )
