"""Mixins that give every skmtl estimator the multi-task data contract.

A concrete estimator inherits ``MultiTaskRegressorMixin`` or ``MultiTaskClassifierMixin`` (left
of :class:`~sklearn.base.BaseEstimator`), declares ``_parameter_constraints`` and implements
private hooks that receive clean arrays and never re-validate:

``_fit_multitask(X, Y, mask)``
    ``X`` validated by :func:`~sklearn.utils.validation.validate_data`; ``Y`` of shape
    ``(n_samples, n_tasks)``: float64 targets (regression) or integer class codes into
    ``classes_[t]`` (classification); ``mask`` the boolean matrix of observed labels. Entries
    of ``Y`` behind the mask hold 0 and must not change the fit.
``_fit_long(X, y, task_index)`` (optional)
    For long data, when defined, called instead of ``_fit_multitask`` so that the dense
    ``(n_samples, n_tasks)`` form is never built: ``y`` of shape ``(n_samples,)`` holds each
    row's float64 target (regression) or class code (classification) and ``task_index`` each
    row's task position. It must fit the same model as ``_fit_multitask`` on the wide form.
``_predict_raw(X)`` (regression)
    ``(n_samples, n_tasks)`` float64 predictions for every task.
``_predict_proba_raw(X)`` (classification)
    A list of ``n_tasks`` arrays ``(n_samples, n_classes_t)``, columns in ``classes_[t]`` order.
``_predict_codes(X)`` (classification, optional)
    ``(n_samples, n_tasks)`` class codes; default: the arg-max of ``_predict_proba_raw``.
``_predict_tasks(X, task_index)`` / ``_predict_task_codes(X, task_index)`` (optional)
    One prediction per row for the task ``task_index[i]``: ``(n_samples,)`` float64 values
    (regression) or class codes into ``classes_[task_index[i]]`` (classification). Used by
    ``predict`` and ``score`` with ``task_ids``; an estimator should compute each row's own
    task only. Default: computed from all tasks on a few rows at a time (``_predict_raw``,
    ``_predict_codes``), so that no ``(n_samples, n_tasks)`` array is formed.
``_predict_proba_tasks(X, task_index)`` (classification, optional)
    ``(n_samples, n_classes)`` float64: each row's probabilities for its own task, columns in
    ``classes_[task_index[i]]`` order (all the tasks of ``task_index`` have ``n_classes``
    classes; the mixin checks it first). Used by ``predict_proba`` with ``task_ids``.
    Default: from ``_predict_proba_raw`` on a few rows at a time, as above.
``_predict_shared(X)`` / ``_predict_proba_shared(X)`` (estimators with a shared part)
    The shared part's prediction for a task not seen in fit: ``(n_samples,)`` float64
    (regression) or ``(n_samples, n_classes)`` probabilities in ``_shared_classes`` order
    (classification). Such an estimator has the parameter ``unknown_task`` ("error" or
    "shared"); with "shared", rows of ``task_ids`` naming an unseen task get this prediction.

The mixins handle the rest: the three target formats, ``task_ids`` metadata routing (requested
by default for ``fit``, ``predict``, ``predict_proba`` and ``score``, as scikit-learn's
``GroupsConsumerMixin`` requests ``groups``), fitted attributes (``n_features_in_``,
``feature_names_in_``, ``tasks_``, ``n_tasks_``, ``classes_``), output shapes and the masked
``score``.
"""

from contextlib import nullcontext

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin, is_classifier
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, validate_data

from skmtl.metrics import accuracy_score, r2_score
from skmtl.utils._docstring import SHARED_DOCS, Substitution
from skmtl.utils._sklearn_compat import _fit_context, _safe_indexing
from skmtl.utils.validation import (
    _hashable,
    _is_frame,
    _tasks_by_classes,
    check_multitask_target,
    check_task_columns,
    check_task_ids,
    common_label_dtype,
    encode_target_classes,
    encode_task_classes,
    encode_task_ids,
)

__all__ = ["MultiTaskMixin", "MultiTaskRegressorMixin", "MultiTaskClassifierMixin"]


def _has_proba(estimator):
    return is_classifier(estimator) and estimator._supports_proba()


# The number of (row, task) predictions the default per-row hooks compute at a time from a
# hook that predicts every task (``_predict_raw``, ``_predict_codes``, ``_predict_proba_raw``):
# a block of rows times the tasks, 1 MiB of float64, instead of all rows times all tasks.
_ROW_BLOCK_ENTRIES = 2**17


def _row_blocks(n_samples, n_tasks):
    """Slices of consecutive rows, each with at most about ``_ROW_BLOCK_ENTRIES`` (row, task)
    pairs (at least one row)."""
    step = max(1, _ROW_BLOCK_ENTRIES // max(1, n_tasks))
    return [slice(start, min(start + step, n_samples)) for start in range(0, n_samples, step)]


def _task_groups(task_index):
    """``(t, rows)`` for each task ``t`` present in ``task_index``, in increasing order of
    ``t``, with its rows in increasing order: one stable sort, not one scan per task.

    Parameters
    ----------
    task_index : ndarray of int, shape (n_samples,)
        Each row's task position.

    Returns
    -------
    groups : list of (int, ndarray)
    """
    task_index = np.asarray(task_index)
    if task_index.shape[0] == 0:
        return []
    order = np.argsort(task_index, kind="stable")
    ordered = task_index[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    stops = np.r_[starts[1:], ordered.shape[0]]
    return [(int(ordered[a]), order[a:b]) for a, b in zip(starts, stops)]


def _row_labels(codes, task_index, classes, dtype=None):
    """Each row's label ``classes[task_index[i]][codes[i]]`` from its class code, in ``dtype``
    (None: the tasks' common label dtype, as ``predict`` returns them)."""
    labels = np.empty(codes.shape[0],
                      dtype=common_label_dtype(classes) if dtype is None else dtype)
    for t, rows in _task_groups(task_index):
        labels[rows] = classes[t][codes[rows]]
    return labels


def _column_labels(codes, classes, dtype=None):
    """The labels ``classes[t][codes[:, t]]`` of wide class codes, column by column, in
    ``dtype`` (None: the tasks' common label dtype)."""
    labels = np.empty(codes.shape, dtype=common_label_dtype(classes) if dtype is None else dtype)
    # the tasks with the same classes: one lookup each (a binary problem: one)
    for task_classes, columns in _tasks_by_classes(classes):
        if len(columns) == codes.shape[1]:
            labels[:] = task_classes[codes]
        else:
            labels[:, columns] = task_classes[codes[:, columns]]
    return labels


class MultiTaskMixin:
    """Data contract, ``task_ids`` routing and output formatting shared by all estimators.

    Regression or classification follows the estimator type tag, so a meta-estimator whose
    type depends on a wrapped estimator (like :class:`~skmtl.IndependentTasks`) inherits this
    mixin directly; other estimators use :class:`MultiTaskRegressorMixin` or
    :class:`MultiTaskClassifierMixin`.
    """

    __metadata_request__fit = {"task_ids": True}
    __metadata_request__predict = {"task_ids": True}
    __metadata_request__predict_proba = {"task_ids": True}
    __metadata_request__score = {"task_ids": True}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        if tags.classifier_tags is not None:
            tags.classifier_tags.multi_label = True
        return tags

    # dtype(s) X is converted to at the door ("numeric" keeps float32 / float64 as given).
    _X_dtype = "numeric"

    # -- validation at the door -------------------------------------------------------------
    def _validate_X(self, X, *, reset):
        tags = self.__sklearn_tags__()
        return validate_data(
            self,
            X,
            reset=reset,
            accept_sparse=["csr", "csc"] if tags.input_tags.sparse else False,
            ensure_all_finite="allow-nan" if tags.input_tags.allow_nan else True,
            dtype=self._X_dtype,
        )

    def _task_index(self, task_ids, n_samples):
        """Each row's task position; -1 for an unseen task when ``unknown_task="shared"``."""
        if task_ids is None:
            return None
        if self._layout == "1d":
            raise ValueError(
                f"{type(self).__name__} was fitted on a single task (1-D y without task_ids); "
                "task_ids cannot be used to predict or score it."
            )
        shared = getattr(self, "unknown_task", "error") == "shared"
        return encode_task_ids(check_task_ids(task_ids, n_samples), self.tasks_,
                               allow_unknown=shared)

    @property
    def _shared_classes(self):
        """The classes of the shared part's probabilities: the label set common to all tasks."""
        classes = self._task_classes
        if any(c.shape != classes[0].shape or np.any(c != classes[0]) for c in classes[1:]):
            raise ValueError(
                f"unknown_task='shared' needs one label set for all tasks, but the tasks of "
                f"{type(self).__name__} have different classes: a new task's classes are "
                "unknown."
            )
        return classes[0]

    def _split_known(self, X, index, known_rows, shared_rows):
        """Per-row outputs: ``known_rows(X, index)`` for seen tasks, ``shared_rows(X)`` for the
        rows of unseen tasks (index -1). Returns a list of the two parts' (rows, output)."""
        unknown = index < 0
        if not unknown.any():
            return [(slice(None), known_rows(X, index))]
        parts = [(unknown, shared_rows(X[unknown]))]
        if not unknown.all():
            parts.append((~unknown, known_rows(X[~unknown], index[~unknown])))
        return parts

    @_fit_context(prefer_skip_nested_validation=False)
    @Substitution(**SHARED_DOCS)
    def fit(self, X, y, *, task_ids=None):
        """Fit the model on one task, a wide target with missing labels, or long data.

        Parameters
        ----------
        {fit_data}

        Returns
        -------
        self : object
            The fitted estimator.
        """
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        X = self._validate_X(X, reset=True)
        classification = is_classifier(self)
        target = check_multitask_target(y, task_ids, y_numeric=not classification)
        if X.shape[0] != target.n_samples:
            raise ValueError(
                "Found input variables with inconsistent numbers of samples: "
                f"[{X.shape[0]}, {target.n_samples}]"
            )
        self.tasks_ = target.tasks
        self.n_tasks_ = target.n_tasks
        self._layout = target.layout
        long_hook = target.layout == "long" and hasattr(self, "_fit_long")
        if classification:
            codes, classes = encode_target_classes(target) if long_hook else (
                encode_task_classes(target.values, target.mask))
            self._check_n_classes(classes)
            self.classes_ = classes[0] if target.layout == "1d" else classes
        with self._fit_threads(X.shape[1]):
            if long_hook:
                self._fit_long(X, codes if classification else target.labels,
                               target.task_index)
            else:
                self._fit_multitask(X, codes if classification else target.values,
                                    target.mask)
        return self

    def _fit_threads(self, n_features):
        """The context the solver runs in (hook; the BLAS threads of the linear models whose
        work is small blocks): none by default."""
        return nullcontext()

    def _check_n_classes(self, classes):
        """Raise for a task with more classes than the estimator supports (hook)."""

    @property
    def _task_classes(self):
        return [self.classes_] if self._layout == "1d" else self.classes_

    # -- predictions --------------------------------------------------------------------------
    def predict(self, X, *, task_ids=None):
        """Predict every task, or each row's own task when ``task_ids`` is given.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.
        task_ids : array-like of shape (n_samples,), default=None
            The task to predict for each row. A task not seen in ``fit`` raises
            :class:`~skmtl.UnknownTaskError`, unless the estimator has a shared part and
            ``unknown_task="shared"``: such rows get the shared part's prediction.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_tasks)
            ``(n_samples,)`` when fitted on a 1-D y or when ``task_ids`` is given, else one
            column per task (in ``tasks_`` order). Regression predictions are float64.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        index = self._task_index(task_ids, X.shape[0])
        if is_classifier(self):
            return self._predict_labels(X, index)
        if index is not None:
            pred = np.empty(X.shape[0])
            for rows, part in self._split_known(X, index, self._predict_tasks,
                                                lambda X: self._predict_shared(X)):
                pred[rows] = part
            return pred
        pred = np.asarray(self._predict_raw(X), dtype=np.float64)
        return pred[:, 0] if self._layout == "1d" else pred

    def _predict_tasks(self, X, task_index):
        """Fallback: every task's predictions for a block of rows at a time, each row's own
        kept (an estimator that can predict one task per row overrides this)."""
        pred = np.empty(X.shape[0])
        for rows in _row_blocks(X.shape[0], self.n_tasks_):
            block = np.asarray(self._predict_raw(_safe_indexing(X, rows)), dtype=np.float64)
            pred[rows] = block[np.arange(block.shape[0]), task_index[rows]]
        return pred

    def _predict_labels(self, X, index):
        classes = self._task_classes
        dtype = common_label_dtype(classes)
        if index is not None:
            labels = np.empty(X.shape[0], dtype=dtype)
            for rows, part in self._split_known(X, index, self._task_labels,
                                                self._shared_labels):
                labels[rows] = part
            return labels
        labels = _column_labels(self._predict_codes(X), classes, dtype)
        return labels[:, 0] if self._layout == "1d" else labels

    def _task_labels(self, X, index):
        """Labels of each row's own (seen) task."""
        return _row_labels(self._predict_task_codes(X, index), index, self._task_classes)

    def _shared_labels(self, X):
        """Labels the shared part predicts for rows of unseen tasks."""
        return self._shared_classes[self._predict_proba_shared(X).argmax(axis=1)]

    def _predict_codes(self, X):
        return np.column_stack([p.argmax(axis=1) for p in self._predict_proba_raw(X)])

    def _predict_task_codes(self, X, task_index):
        """Fallback: every task's class codes for a block of rows at a time, each row's own
        kept (an estimator that can predict one task per row overrides this)."""
        codes = np.empty(X.shape[0], dtype=np.intp)
        for rows in _row_blocks(X.shape[0], self.n_tasks_):
            block = self._predict_codes(_safe_indexing(X, rows))
            codes[rows] = block[np.arange(block.shape[0]), task_index[rows]]
        return codes

    def _predict_proba_tasks(self, X, task_index):
        """Fallback: every task's probabilities for a block of rows at a time, each row's own
        kept (an estimator that can predict one task per row overrides this)."""
        out = None
        for rows in _row_blocks(X.shape[0], self.n_tasks_):
            proba = self._predict_proba_raw(_safe_indexing(X, rows))
            for t, own in _task_groups(task_index[rows]):
                part = np.asarray(proba[t], dtype=np.float64)[own]
                if out is None:
                    out = np.empty((X.shape[0], part.shape[1]))
                out[rows.start + own] = part
        return out

    def _supports_proba(self):
        """Whether predict_proba is available (hook for meta-estimators)."""
        return True

    @available_if(_has_proba)
    def predict_proba(self, X, *, task_ids=None):
        """Class probabilities of every task, or of each row's own task.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.
        task_ids : array-like of shape (n_samples,), default=None
            The task of each row. All tasks named must have the same number of classes;
            column k is then each row's own task's ``classes_[t][k]``. Rows of a task not
            seen in ``fit`` get the shared part's probabilities when
            ``unknown_task="shared"`` (else :class:`~skmtl.UnknownTaskError`).

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes) or list of ndarray
            ``(n_samples, n_classes)`` when fitted on a 1-D y or when ``task_ids`` is given;
            otherwise a list with one ``(n_samples, n_classes_t)`` array per task.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        index = self._task_index(task_ids, X.shape[0])
        if index is None:
            proba = [np.asarray(p, dtype=np.float64) for p in self._predict_proba_raw(X)]
            return proba[0] if self._layout == "1d" else proba
        present = np.unique(index[index >= 0])
        classes = self._task_classes
        n_classes = {len(classes[t]) for t in present}
        unknown = index < 0
        if unknown.any():
            shared = np.asarray(self._predict_proba_shared(X[unknown]), dtype=np.float64)
            n_classes.add(shared.shape[1])
        if len(n_classes) > 1:
            raise ValueError(
                "predict_proba with task_ids needs every task named to have the same number "
                f"of classes; tasks {self.tasks_[present].tolist()[:5]} have "
                f"{sorted(n_classes)}. Call predict_proba without task_ids for per-task arrays."
            )
        out = np.empty((X.shape[0], n_classes.pop()))
        if not unknown.any():
            out[:] = self._predict_proba_tasks(X, index)
            return out
        out[unknown] = shared
        if not unknown.all():
            known = ~unknown
            out[known] = self._predict_proba_tasks(X[known], index[known])
        return out

    # -- scoring ------------------------------------------------------------------------------
    def _check_score_target(self, y, task_ids):
        if task_ids is None and self._layout == "long" and np.ndim(y) == 1:
            raise ValueError(
                f"{type(self).__name__} was fitted on long-format data: to score it on a 1-D "
                "y, pass task_ids (one task per row). Search objects and cross_validate pass "
                "it only with metadata routing on: "
                "sklearn.set_config(enable_metadata_routing=True)."
            )
        if self._layout == "1d":
            return
        # a wide y names or orders its tasks as tasks_, whether fit saw wide or long data
        if _is_frame(y):
            check_task_columns(y, self.tasks_)
        elif task_ids is None and np.ndim(y) == 2 and np.shape(y)[1] != self.n_tasks_:
            raise ValueError(
                f"y has {np.shape(y)[1]} task column(s); {type(self).__name__} was fitted on "
                f"{self.n_tasks_} tasks (one column each, in the order of tasks_)."
            )

    def score(self, X, y, *, task_ids=None, sample_weight=None):
        """Mean over tasks of R^2 (regression) or accuracy (classification), observed labels only.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Test samples.
        y : array-like of shape (n_samples,) or (n_samples, n_tasks)
            True labels, in any format accepted by ``fit``, whatever the format ``fit`` saw.
            A wide ``y`` has one column per task in ``tasks_`` order; a DataFrame's columns
            must be ``tasks_`` (same names, same order; for a long fit, the sorted task ids),
            else a ValueError.
        task_ids : array-like of shape (n_samples,), default=None
            The task of each row, for long-format ``y``. Required when the estimator was fitted
            on long data and ``y`` is 1-D.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights.

        Returns
        -------
        score : float
            The mean of the per-task scores (tasks without observed labels left out); for a
            1-D fit, the ordinary single-task score.
        """
        check_is_fitted(self)
        self._check_score_target(y, task_ids)
        metric = accuracy_score if is_classifier(self) else r2_score
        y_pred = self.predict(X, task_ids=task_ids)
        return metric(y, y_pred, task_ids=task_ids, sample_weight=sample_weight)


class MultiTaskRegressorMixin(MultiTaskMixin, RegressorMixin):
    """Mixin for multi-task regressors: masked mean R^2 score, float64 predictions."""


class MultiTaskClassifierMixin(MultiTaskMixin, ClassifierMixin):
    """Mixin for multi-task classifiers: per-task classes, masked mean accuracy score.

    ``_max_classes`` (default None: no limit) caps the number of classes of a task; a task with
    more raises a ValueError that names it.
    """

    _max_classes = None

    def _check_n_classes(self, classes):
        if self._max_classes is None:
            return
        prefix = "Only binary classification is supported: " if self._max_classes == 2 else ""
        for task, task_classes in zip(self.tasks_, classes):
            if len(task_classes) > self._max_classes:
                where = "y" if self._layout == "1d" else f"Task {_hashable(task)!r}"
                raise ValueError(
                    f"{prefix}{where} has {len(task_classes)} classes but "
                    f"{type(self).__name__} supports at most {self._max_classes}."
                )
