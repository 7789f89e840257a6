"""Reference models every multi-task result is compared with: no sharing and full pooling."""

import copy
import warnings
from numbers import Integral

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone, is_classifier
from sklearn.utils import get_tags
from sklearn.utils.metadata_routing import (
    MetadataRouter,
    MethodMapping,
    process_routing,
)
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import validate_data

from skmtl.base import MultiTaskMixin, _row_labels, _task_groups
from skmtl.utils._docstring import SHARED_DOCS, Substitution
from skmtl.utils._sklearn_compat import (
    HasMethods,
    StrOptions,
    _num_samples,
    _raise_for_params,
    _safe_indexing,
)
from skmtl.utils.validation import _hashable, common_label_dtype, group_rows_by_task

__all__ = ["IndependentTasks", "PooledTasks"]


class _TaskFitError(ValueError):
    """A task's fit failed: the message names the task; ``task`` (the task as the estimator
    knows it: a wide target's column position or name, or a long target's task id),
    ``detail`` (the estimator's own message) and, where a class is missing from the task's
    training labels, ``seen`` / ``classes`` (the labels seen, the problem's classes) and
    ``n_labels`` say what, for callers that name the task in their own terms (``skmtl
    compare``). Set as attributes, they survive the pickling of a parallel backend."""


def _task_fit_error(message, exc, task, **fields):
    error = _TaskFitError(message)
    error.task, error.detail = task, str(exc)
    error.seen = error.classes = error.n_labels = None
    for name, value in fields.items():
        setattr(error, name, value)
    return error


def _rows_of_params(params, n_samples, rows):
    """The metadata ``params`` routed to the wrapped estimator's ``fit``, at ``rows``: those
    with one entry per row of X (``groups``, ``sample_weight``) are indexed, others passed as
    they are (as scikit-learn's meta-estimators do)."""
    if isinstance(rows, slice) and rows == slice(None):
        return params
    return {name: _safe_indexing(value, rows) if _per_row(value, n_samples) else value
            for name, value in params.items()}


def _per_row(value, n_samples):
    """Whether ``value`` is an array-like with one entry per row of X."""
    if isinstance(value, str) or not hasattr(value, "__len__"):
        return False
    try:
        return _num_samples(value) == n_samples
    except TypeError:  # a dict, a 0-d array: not per row
        return False


def _take_rows(X, rows):
    """The rows of X (an array, a sparse matrix or a DataFrame); all of it, uncopied, for a
    full slice."""
    return X if isinstance(rows, slice) and rows == slice(None) else _safe_indexing(X, rows)


def _fits_on_codes(classes):
    """Whether a task's clone is fitted on class codes rather than on the labels: only for
    labels that scikit-learn classifiers refuse as a target (an object array, e.g. whole
    numbers beyond 64 bits)."""
    return classes.dtype.kind == "O"


def _fit_task(estimator, X, y, rows, task, name_task, classes=None, params=None):
    """Fit one task's clone on its rows; a ValueError names the task (and a missing class, if
    that is it).

    The rows of X and y are taken here, inside the parallel loop, so that only the tasks
    being fitted hold a copy of their rows. ``classes`` (classifiers) are the task's sorted
    classes and ``y`` holds codes into them: the clone is fitted on the labels they stand
    for, as a fit by hand is, so that settings keyed by label (``class_weight``) apply to
    the user's classes. ``params``: the metadata routed to ``fit``, of all rows.
    """
    params = _rows_of_params(params or {}, X.shape[0], rows)
    X, y = _take_rows(X, rows), y[rows]
    codes = y
    if classes is not None and not _fits_on_codes(classes):
        y = classes[codes]
    try:
        return estimator.fit(X, y, **params)
    except ValueError as exc:
        if not name_task:
            raise
        seen = None if classes is None else np.unique(codes)
        if seen is not None and seen.shape[0] < len(classes):
            seen, known = [_hashable(c) for c in classes[seen]], [_hashable(c) for c in classes]
            raise _task_fit_error(
                f"Task {_hashable(task)!r}: only the class(es) {seen} among its {len(y)} "
                f"training labels, of the problem's classes {known}; IndependentTasks fits "
                f"each task alone ({exc}). A model with a shared part (PooledTasks, "
                "MeanClusteredClassifier, MultiTaskClassifier) fits such a task.",
                exc, task, seen=seen, classes=known, n_labels=len(y)) from exc
        raise _task_fit_error(f"Task {_hashable(task)!r}: {exc}", exc, task) from exc


def _observed_rows(mask, t):
    """Row selector of task t: a full slice when every row is observed (no copy of X)."""
    column = mask[:, t]
    return slice(None) if column.all() else np.flatnonzero(column)


class _WrapperMixin(MultiTaskMixin, MetaEstimatorMixin):
    """Tags of a wrapper: estimator type and input capabilities follow the wrapped estimator."""

    _parameter_constraints = {
        "estimator": [HasMethods(["fit", "predict"])],
        "n_jobs": [None, Integral],
    }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator)
        tags.estimator_type = inner.estimator_type
        tags.classifier_tags = copy.deepcopy(inner.classifier_tags)
        tags.regressor_tags = copy.deepcopy(inner.regressor_tags)
        if tags.classifier_tags is not None:
            tags.classifier_tags.multi_label = True
        tags.input_tags.sparse = inner.input_tags.sparse
        tags.input_tags.allow_nan = inner.input_tags.allow_nan
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def _supports_proba(self):
        return hasattr(self.estimator, "predict_proba")

    def _validate_X(self, X, *, reset):
        """Check X's feature count and names only, as scikit-learn's MultiOutputRegressor
        does: its dtype, NaN, infinity and sparse checks are the wrapped estimator's, which
        gets X as given (a DataFrame stays one, for columns selected by name or holding
        text; NaN reaches an imputer in a Pipeline). A list becomes an array; a sparse matrix
        of a format without row indexing, CSR. Where the fitted clones check X themselves
        (they have ``n_features_in_``), they warn of feature names present or missing, as
        in a Pipeline, and the wrapper does not warn a second time."""
        if not hasattr(X, "shape"):
            X = np.asarray(X)
        if len(X.shape) != 2:
            raise ValueError(
                f"{type(self).__name__} expects a 2-D X of shape (n_samples, n_features); "
                f"got an X of shape {X.shape}. Reshape your data with X.reshape(-1, 1) for "
                "a single feature, X.reshape(1, -1) for a single sample."
            )
        with warnings.catch_warnings():
            if not reset and hasattr(self._fitted_clone(), "n_features_in_"):
                warnings.filterwarnings("ignore", message="X (does not have valid|has) feature "
                                        "names", category=UserWarning)
            X = validate_data(self, X, reset=reset, skip_check_array=True)
        if sparse.issparse(X) and X.format not in ("csr", "csc"):
            X = X.tocsr()
        return X

    def _fitted_clone(self):
        """A fitted clone of the wrapped estimator (the first task's), or None."""
        clones = getattr(self, "estimators_", None)
        return clones[0] if clones else getattr(self, "estimator_", None)

    # the metadata routed to the wrapped estimator's fit, of all rows, while fit runs
    _routed = {}

    @Substitution(**SHARED_DOCS)
    def fit(self, X, y, *, task_ids=None, **fit_params):
        """Fit the wrapped estimator(s) on one task, a wide target with missing labels, or
        long data.

        Parameters
        ----------
        {fit_data}
        **fit_params : dict
            Metadata for the wrapped estimator's ``fit`` (``sample_weight``, ``groups`` for
            a ``*CV`` model with a group splitter), with metadata routing enabled
            (``sklearn.set_config(enable_metadata_routing=True)``) and requested by the
            wrapped estimator. Those with one entry per row of X go with the rows each fit
            sees.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        if fit_params:
            _raise_for_params(fit_params, self, "fit")
            self._routed = process_routing(self, "fit", **fit_params).estimator.fit
        try:
            return super().fit(X, y, task_ids=task_ids)
        finally:
            self.__dict__.pop("_routed", None)

    def get_metadata_routing(self):
        """Get metadata routing of this object: ``task_ids`` for this estimator's own methods,
        and the metadata the wrapped estimator's ``fit`` requests.

        Returns
        -------
        routing : MetadataRouter
            A :class:`~sklearn.utils.metadata_routing.MetadataRouter` encapsulating routing
            information.
        """
        return MetadataRouter(owner=self).add_self_request(self).add(
            estimator=self.estimator, method_mapping=MethodMapping().add(caller="fit",
                                                                         callee="fit"))


@Substitution(**SHARED_DOCS)
class IndependentTasks(_WrapperMixin, BaseEstimator):
    """Single-task learning: one clone of an estimator per task, on that task's observed rows.

    The reference every multi-task model is compared with. For task ``t`` with observed rows
    ``R_t``, ``estimators_[t] = clone(estimator).fit(X[R_t], y_t[R_t])``; nothing is shared.
    Works with any scikit-learn regressor or classifier; it is a regressor or a classifier as
    the wrapped estimator is. Each classification task has its own classes, and its clone
    sees the task's labels, so settings keyed by label (``class_weight``) apply as in a fit
    by hand.

    X reaches the wrapped estimator as given, only its number of features and their names
    are checked here: a DataFrame stays one (for a ``ColumnTransformer`` selecting columns
    by name, text columns and their encoder), and NaN, infinity and sparse input are left to
    the wrapped estimator (NaN in X is fine with an imputer first in a ``Pipeline``).

    Parameters
    ----------
    estimator : estimator object
        A scikit-learn regressor or classifier implementing ``fit`` and ``predict``; cloned
        once per task.
    n_jobs : int, default=None
        Number of tasks fitted in parallel with joblib. ``None`` means 1 unless in a
        :func:`joblib.parallel_config` context; ``-1`` uses all processors.

    Attributes
    ----------
    estimators_ : list of estimator objects
        The fitted estimator of each task, in ``tasks_`` order, fitted on the task's own
        labels (its ``classes_`` are those the task saw), as one fitted by hand.
    classes_ : ndarray or list of ndarray
        Classifiers only: the classes of a 1-D y, else one array of classes per task.
    {task_attributes}

    See Also
    --------
    PooledTasks : One model on all tasks' rows, ignoring task identity.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import Ridge
    >>> from skmtl import IndependentTasks
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> Y = np.array([[0.0, 1.0], [1.0, np.nan], [2.0, 5.0], [3.0, 7.0]])
    >>> model = IndependentTasks(Ridge(alpha=1e-9)).fit(X, Y)
    >>> model.predict([[4.0]]).round(3)
    array([[4., 9.]])
    >>> model.predict([[4.0], [4.0]], task_ids=[1, 0]).round(3)
    array([9., 4.])
    """

    def __init__(self, estimator, *, n_jobs=None):
        self.estimator = estimator
        self.n_jobs = n_jobs

    def _fit_multitask(self, X, Y, mask):
        self._fit_tasks(X, ((Y[:, t], _observed_rows(mask, t)) for t in range(self.n_tasks_)))

    def _fit_long(self, X, y, task_index):
        self._fit_tasks(X, ((y, r) for r in group_rows_by_task(task_index, self.n_tasks_)))

    def _fit_tasks(self, X, task_rows):
        """Fit a clone per task; ``task_rows`` yields each task's ``(targets, rows)``.

        The delayed calls are generated as joblib dispatches them and each slices its task's
        rows of X when it runs: with ``n_jobs=1`` one task's copy is alive at a time, never
        every task's at once.
        """
        name_task = self._layout != "1d"
        classes = self._task_classes if is_classifier(self) else [None] * self.n_tasks_
        jobs = (delayed(_fit_task)(clone(self.estimator), X, y, rows, task, name_task, c,
                                   self._routed)
                for (y, rows), task, c in zip(task_rows, self.tasks_, classes))
        self.estimators_ = Parallel(n_jobs=self.n_jobs)(jobs)

    def _predict_raw(self, X):
        return np.column_stack([est.predict(X) for est in self.estimators_]).astype(np.float64)

    def _predict_tasks(self, X, task_index):
        return self._own_task_predictions(X, task_index, np.float64, self._task_prediction)

    def _own_task_predictions(self, X, task_index, dtype, predict, n_columns=None):
        """Each row predicted by its own task's estimator: ``predict(t, X)`` on the rows of
        task t, one call per task present; ``n_columns`` of output per row (None: one
        value)."""
        shape = X.shape[0] if n_columns is None else (X.shape[0], n_columns)
        out = np.empty(shape, dtype=dtype)
        for t, rows in _task_groups(task_index):
            out[rows] = predict(t, _safe_indexing(X, rows))
        return out

    def _task_prediction(self, t, X):
        return self.estimators_[t].predict(X)

    def _task_codes(self, t, X):
        """Task t's predicted labels as codes into its (sorted) classes."""
        labels = self.estimators_[t].predict(X)
        classes = self._task_classes[t]
        if _fits_on_codes(classes):
            return np.asarray(labels, dtype=np.intp)
        return np.searchsorted(classes, labels)

    def _predict_codes(self, X):
        return np.column_stack([self._task_codes(t, X) for t in range(self.n_tasks_)])

    def _predict_task_codes(self, X, task_index):
        return self._own_task_predictions(X, task_index, np.intp, self._task_codes)

    def _predict_proba_raw(self, X):
        return [_proba_with_all_classes(est, X, c)
                for est, c in zip(self.estimators_, self._task_classes)]

    def _predict_proba_tasks(self, X, task_index):
        n_classes = len(self._task_classes[task_index[0]])
        return self._own_task_predictions(X, task_index, np.float64, self._task_proba,
                                          n_classes)

    def _task_proba(self, t, X):
        return _proba_with_all_classes(self.estimators_[t], X, self._task_classes[t])


def _proba_with_all_classes(estimator, X, classes):
    """predict_proba of a task's estimator with a column for each of the task's ``classes``,
    in their order (a column of zeros for a class the estimator did not see)."""
    proba = estimator.predict_proba(X)
    fitted = np.asarray(estimator.classes_)
    columns = (fitted.astype(np.intp) if _fits_on_codes(classes)
               else np.searchsorted(classes, fitted))
    if np.array_equal(columns, np.arange(len(classes))):
        return proba
    full = np.zeros((proba.shape[0], len(classes)))
    full[:, columns] = proba
    return full


@Substitution(**SHARED_DOCS)
class PooledTasks(_WrapperMixin, BaseEstimator):
    """Full pooling: one model fitted on every task's observed rows, ignoring task identity.

    Each observed label ``(i, t)`` contributes the row ``(X[i], y[i, t])`` to one training set,
    and the single fitted model predicts the same for every task. The opposite extreme of
    :class:`IndependentTasks`; good when tasks are identical, poor when they conflict.

    For classifiers, the pooled model is fitted on the tasks' original labels. A task's
    prediction is the arg-max of the pooled probabilities restricted to that task's classes
    (renormalised in ``predict_proba``), so it is always one of the task's own classes. With
    a wrapped classifier that has no ``predict_proba``, all tasks must share the same classes.
    In a binary problem every task has both classes, also a task whose training labels hold
    one class only (the pooled model saw both).

    X reaches the wrapped estimator as given (the observed rows of each task stacked), as in
    :class:`IndependentTasks`: a DataFrame stays one, and NaN, infinity and sparse input are
    left to the wrapped estimator.

    Parameters
    ----------
    estimator : estimator object
        A scikit-learn regressor or classifier implementing ``fit`` and ``predict``.
    n_jobs : int, default=None
        Accepted for a uniform interface with :class:`IndependentTasks`; the single fit does
        not use it (set the wrapped estimator's own ``n_jobs`` instead).
    unknown_task : {"error", "shared"}, default="error"
        What ``predict`` / ``predict_proba`` / ``score`` do with a row whose ``task_ids``
        names a task not seen in ``fit``: raise :class:`~skmtl.UnknownTaskError`, or predict
        it with the pooled model (its probabilities over all the pooled model's classes).

    Attributes
    ----------
    estimator_ : estimator object
        The pooled fitted estimator.
    classes_ : ndarray or list of ndarray
        Classifiers only: the classes of a 1-D y, else one array of classes per task.
    {task_attributes}

    See Also
    --------
    IndependentTasks : One model per task.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LinearRegression
    >>> from skmtl import PooledTasks
    >>> X = np.array([[0.0], [1.0], [2.0]])
    >>> Y = np.array([[0.0, 2.0], [2.0, np.nan], [4.0, 2.0]])
    >>> PooledTasks(LinearRegression()).fit(X, Y).predict([[1.0]]).round(3)
    array([[2., 2.]])
    """

    _parameter_constraints = {
        **_WrapperMixin._parameter_constraints,
        "unknown_task": [StrOptions({"error", "shared"})],
    }

    def __init__(self, estimator, *, n_jobs=None, unknown_task="error"):
        self.estimator = estimator
        self.n_jobs = n_jobs
        self.unknown_task = unknown_task

    def _fit_multitask(self, X, Y, mask):
        rows, tasks = np.nonzero(mask)
        if rows.shape[0] == X.shape[0] and np.array_equal(rows, np.arange(X.shape[0])):
            X_pooled, params = X, self._routed  # one label per row (1-D y): no copy of X
        else:
            X_pooled = _safe_indexing(X, rows)
            params = _rows_of_params(self._routed, X.shape[0], rows)
        self._fit_pooled(X_pooled, Y[rows, tasks], tasks, params)

    def _fit_long(self, X, y, task_index):
        self._fit_pooled(X, y, task_index, self._routed)

    def _fit_pooled(self, X, y, tasks, params):
        """Fit on pooled rows; ``y`` holds targets or class codes of the task ``tasks[i]``,
        ``params`` the routed metadata of the pooled rows."""
        if is_classifier(self):
            self.estimator_ = clone(self.estimator).fit(X, self._pooled_labels(y, tasks),
                                                        **params)
            self._class_columns = self._task_class_columns()
        else:
            self.estimator_ = clone(self.estimator).fit(X, y, **params)

    def _pooled_key(self, label):
        """The pooled model's class for a task label: the label itself, or its string when the
        tasks' labels mix kinds (numbers in one task, strings in another), which scikit-learn
        classifiers refuse as one target."""
        return str(label) if self._mixed_label_kinds else label

    def _pooled_labels(self, codes, tasks):
        classes = self._task_classes
        dtype = common_label_dtype(classes)
        self._mixed_label_kinds = dtype.kind == "O" and len(
            {isinstance(c, str) for task_classes in classes for c in task_classes.tolist()}) > 1
        labels = _row_labels(codes, tasks, classes, dtype)
        if self._mixed_label_kinds:
            labels = labels.astype(str)
        if not self._supports_proba() and len({tuple(c.tolist()) for c in classes}) > 1:
            raise ValueError(
                "PooledTasks needs a wrapped classifier with predict_proba when tasks have "
                "different classes; with predict only, a pooled prediction could be a class "
                "the task does not have."
            )
        return labels

    def _task_class_columns(self):
        pooled = list(self.estimator_.classes_)
        position = {c: i for i, c in enumerate(pooled)}
        return [np.array([position[self._pooled_key(c)] for c in task_classes.tolist()],
                         dtype=np.intp)
                for task_classes in self._task_classes]

    def _predict_raw(self, X):
        pred = np.asarray(self.estimator_.predict(X), dtype=np.float64)
        return np.repeat(pred[:, None], self.n_tasks_, axis=1)

    def _predict_tasks(self, X, task_index):
        return self.estimator_.predict(X)

    def _predict_shared(self, X):
        return self.estimator_.predict(X)

    @property
    def _shared_classes(self):
        return np.asarray(self.estimator_.classes_)

    def _predict_proba_shared(self, X):
        return self.estimator_.predict_proba(X)

    def _shared_labels(self, X):
        return self.estimator_.predict(X)

    def _predict_proba_raw(self, X):
        proba = self.estimator_.predict_proba(X)
        return [_task_share(proba, columns) for columns in self._class_columns]

    def _predict_proba_tasks(self, X, task_index):
        """The pooled probabilities, computed once, of each row's own task's classes."""
        proba = self.estimator_.predict_proba(X)
        out = None
        for columns, rows in self._rows_by_class_columns(task_index):
            part = _task_share(proba[rows], columns)
            if out is None:
                out = np.empty((X.shape[0], part.shape[1]))
            out[rows] = part
        return out

    def _rows_by_class_columns(self, task_index):
        """``(columns, rows)`` for each set of pooled class columns (tasks with the same
        classes share one) the tasks of ``task_index`` use: all rows when one set serves
        every task (a label set common to all tasks)."""
        keys, columns = {}, []
        for task_columns in self._class_columns:
            key = task_columns.tobytes()
            if key not in keys:
                keys[key] = len(columns)
                columns.append(task_columns)
        if len(columns) == 1:
            return [(columns[0], slice(None))]
        set_of_task = np.array([keys[c.tobytes()] for c in self._class_columns], dtype=np.intp)
        return [(columns[k], rows) for k, rows in _task_groups(set_of_task[task_index])]

    def _predict_codes(self, X):
        if self._supports_proba():
            return super()._predict_codes(X)
        pred = self.estimator_.predict(X)
        # all tasks share the same classes (checked in fit)
        return np.repeat(np.searchsorted(self._task_classes[0], pred)[:, None], self.n_tasks_,
                         axis=1)

    def _predict_task_codes(self, X, task_index):
        """Each row's code in its own task's classes, from one pooled prediction."""
        if not self._supports_proba():
            # all tasks share the same classes (checked in fit)
            return np.searchsorted(self._task_classes[0], self.estimator_.predict(X))
        proba = self.estimator_.predict_proba(X)
        codes = np.empty(X.shape[0], dtype=np.intp)
        for columns, rows in self._rows_by_class_columns(task_index):
            codes[rows] = _task_share(proba[rows], columns).argmax(axis=1)
        return codes


def _task_share(proba, columns):
    """The pooled probabilities of a task's classes (``columns``), renormalised to sum to 1
    (uniform where the pooled model gives them no mass)."""
    part = proba[:, columns]
    total = part.sum(axis=1, keepdims=True)
    uniform = np.full_like(part, 1.0 / part.shape[1])
    return np.divide(part, total, out=uniform, where=total > 0)
