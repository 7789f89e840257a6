"""Scorers for search objects: a masked metric applied to a fitted multi-task estimator."""

from functools import partial
from inspect import Parameter, signature

import numpy as np
from sklearn import get_config
from sklearn.utils.metadata_routing import MetadataRequest, get_routing_for_object

from skmtl.metrics._masked import (
    accuracy_score,
    average_precision_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)
from skmtl.utils._sklearn_compat import _MetadataRequester, _num_samples, _safe_indexing
from skmtl.utils.validation import (
    _format_tasks,
    _is_frame,
    check_task_columns,
    check_task_ids,
    encode_task_ids,
)

__all__ = ["get_multitask_scorer", "make_multitask_scorer"]

# name -> (metric, greater_is_better, response_method)
_SCORERS = {
    "r2": (r2_score, True, "predict"),
    "neg_mean_squared_error": (mean_squared_error, False, "predict"),
    "neg_mean_absolute_error": (mean_absolute_error, False, "predict"),
    "accuracy": (accuracy_score, True, "predict"),
    "roc_auc": (roc_auc_score, True, "predict_proba"),
    "average_precision": (average_precision_score, True, "predict_proba"),
    "neg_log_loss": (log_loss, False, "predict_proba"),
}

_RESPONSE_METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function")

# Metadata a scorer consumes in ``score`` and its default request: task_ids is routed by
# default (as the estimators request it), sample_weight only once requested.
_DEFAULT_SCORE_REQUEST = {"task_ids": True, "sample_weight": None}


def _name_of(func):
    if isinstance(func, partial):
        return repr(func)
    return getattr(func, "__name__", repr(func))


def _accepts(func, param):
    try:
        params = signature(func).parameters
    except (TypeError, ValueError):  # builtins without a signature: assume they accept it
        return True
    return param in params or any(p.kind == Parameter.VAR_KEYWORD for p in params.values())


def _inner(estimator):
    """The last step of a pipeline or the best estimator of a fitted search; None otherwise."""
    if hasattr(estimator, "steps"):
        return estimator.steps[-1][1]
    return getattr(estimator, "best_estimator_", None)


def _final_step(estimator):
    """The estimator at the end of ``estimator``'s pipelines and fitted search objects."""
    while (inner := _inner(estimator)) is not None:
        estimator = inner
    return estimator


def _final_step_attr(estimator, name):
    """``estimator.name``, looking through pipelines and fitted search objects."""
    while estimator is not None:
        if hasattr(estimator, name):
            return getattr(estimator, name)
        estimator = _inner(estimator)
    return None


def _best_estimator(estimator):
    """The estimator a fitted search object predicts with (through nested searches)."""
    while (best := getattr(estimator, "best_estimator_", None)) is not None:
        estimator = best
    return estimator


def _respond(estimator, method, X, task_ids):
    """``estimator.<method>(X)``, or with ``task_ids`` the prediction of each row's own task.

    A fitted search object's methods are its ``best_estimator_``'s but take no ``task_ids``:
    with them, the best estimator is called directly.
    """
    if task_ids is None:
        return getattr(estimator, method)(X)
    return getattr(_best_estimator(estimator), method)(X, task_ids=task_ids)


def _focused_step(estimator):
    """The final step of ``estimator`` if it serves one focus task (FocusedTask*), else None."""
    final = _final_step(estimator)
    return final if hasattr(final, "_focus_target") else None


def _tasks_scored(estimator, task_ids):
    """``(present, tasks, index)``: the sorted unique ``task_ids`` (the tasks a masked metric
    scores, in its order), the estimator's ``tasks_`` (None without), and each present task's
    index in ``tasks_`` (-1 for a task not seen in fit, which only an estimator with
    ``unknown_task="shared"`` predicts; None without ``tasks_``)."""
    present = np.unique(check_task_ids(task_ids, len(task_ids)))
    tasks = _final_step_attr(estimator, "tasks_")
    if tasks is None:
        return present, None, None
    shared = _final_step_attr(estimator, "unknown_task") == "shared"
    return present, tasks, encode_task_ids(present, tasks, allow_unknown=shared)


def _task_weights(estimator, weights, task_ids):
    """``multioutput`` task weights given per task of the estimator's ``tasks_``, restricted to
    the tasks of long ``task_ids`` (a test fold may lack some); as given otherwise."""
    if task_ids is None or isinstance(weights, str):
        return weights
    weights = np.asarray(weights, dtype=np.float64)
    present, tasks, index = _tasks_scored(estimator, task_ids)
    if tasks is None or weights.shape != (len(tasks),):
        return weights  # the metric checks them against the tasks it scores
    if np.any(index < 0):
        unseen = present[index < 0]
        raise ValueError(
            f"multioutput weights are one per task seen in fit ({len(tasks)}, in the order of "
            f"tasks_), but task_ids has task(s) not seen in fit, which have no weight: "
            f"{_format_tasks(unseen)}."
        )
    return weights[index]


def _task_labels(estimator, task_ids):
    """The classes of each task scored, aligned with the tasks the masked metric sees.

    The metric orders tasks as the columns of a wide y, or as the sorted unique ``task_ids``
    of long data (which may be a subset of the tasks seen in fit, or name tasks not seen in
    fit, which an estimator with ``unknown_task="shared"`` predicts from its shared part).
    """
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        return None
    per_task = list(classes) if isinstance(classes, list) else [classes]
    if task_ids is None:
        return per_task
    present, tasks, index = _tasks_scored(estimator, task_ids)
    if tasks is not None and len(tasks) == len(per_task):
        # an unseen task (index -1) has the classes of the shared part's probabilities
        return [per_task[t] if t >= 0 else _final_step_attr(estimator, "_shared_classes")
                for t in index]
    first = np.asarray(per_task[0])
    if all(np.array_equal(np.asarray(c), first) for c in per_task):
        return [first] * len(present)
    raise ValueError(
        "Cannot tell which classes_ belong to which task of task_ids: the estimator has no "
        "tasks_ attribute. Pass labels= (the classes of each task, in sorted task order) to "
        "make_multitask_scorer."
    )


class _MultiTaskScorer(_MetadataRequester):
    """A masked multi-task metric applied to an estimator's predictions.

    Built by :func:`make_multitask_scorer`; see there for the parameters.
    """

    def __init__(self, metric, sign, response_method, kwargs, name=None):
        self._metric = metric
        self._sign = sign
        self._response_method = response_method
        self._kwargs = kwargs
        self._name = name

    # -- representation ------------------------------------------------------------------------
    def __repr__(self):
        if self._name is not None:
            head = repr(self._name)
        else:
            head = _name_of(self._metric)
            if self._sign < 0:
                head += ", greater_is_better=False"
            if self._response_method != "predict":
                head += f", response_method={self._response_method!r}"
        extra = "".join(f", {k}={v!r}" for k, v in self._kwargs.items())
        return f"make_multitask_scorer({head}{extra})"

    def _routing_repr(self):
        return repr(self)

    # -- scoring -------------------------------------------------------------------------------
    def _response(self, estimator):
        methods = self._response_method
        methods = (methods,) if isinstance(methods, str) else methods
        for name in methods:
            method = getattr(estimator, name, None)
            if method is not None:
                return name, method
        raise AttributeError(
            f"{self!r} needs the estimator's {' or '.join(methods)}, which "
            f"{type(estimator).__name__} does not have."
        )

    def _predict(self, estimator, X, task_ids):
        """The response method's name and output (see :func:`_respond`)."""
        name, _ = self._response(estimator)
        return name, _respond(estimator, name, X, task_ids)

    def _metric_kwargs(self, estimator, response, task_ids):
        """The metric's keyword arguments; for scores, ``labels`` defaults to the classes of
        each task scored."""
        kwargs = dict(self._kwargs)
        if "multioutput" in kwargs:
            kwargs["multioutput"] = _task_weights(estimator, kwargs["multioutput"], task_ids)
        if response != "predict" and "labels" not in kwargs and _accepts(self._metric, "labels"):
            labels = _task_labels(estimator, task_ids)
            if labels is not None:
                kwargs["labels"] = labels
        return kwargs

    def __call__(self, estimator, X, y_true, *, task_ids=None, sample_weight=None):
        """Score a fitted estimator on ``X`` against ``y_true``.

        Parameters
        ----------
        estimator : estimator object
            A fitted estimator with the response method (``predict``, ``predict_proba``, ...)
            of this scorer. When ``task_ids`` is given it is called as
            ``method(X, task_ids=task_ids)``, so each row is predicted for its own task; a
            fitted search object's method is then its ``best_estimator_``'s (through nested
            searches). A focused estimator (:class:`~skmtl.deep.FocusedTaskRegressor`,
            :class:`~skmtl.deep.FocusedTaskClassifier`, also at the end of a pipeline) is
            scored on its focus task only, as its ``score`` does.
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Test samples.
        y_true : array-like of shape (n_samples,) or (n_samples, n_tasks)
            True labels in any format of the data contract.
        task_ids : array-like of shape (n_samples,), default=None
            The task of each row, for long-format ``y_true``. Routed by default when metadata
            routing is enabled.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights. With metadata routing enabled, routed only after
            ``set_score_request(sample_weight=True)``.

        Returns
        -------
        score : float
            The metric, negated when lower values are better.
        """
        focused = _focused_step(estimator)
        if focused is not None:
            # it predicts its focus task only: score that task's labels, as its score() does
            y_true, rows = focused._focus_target(y_true, task_ids, _num_samples(X))
            if rows is not None:
                X = _safe_indexing(X, rows)
                if sample_weight is not None:
                    sample_weight = _safe_indexing(sample_weight, rows)
            task_ids = None
        name, y_pred = self._predict(estimator, X, task_ids)
        if focused is None:
            self._check_target(estimator, y_true, y_pred, task_ids,
                               probabilistic=name != "predict")
        elif np.ndim(y_true) == 2:  # the focus task as the one column of y_true
            y_pred = np.asarray(y_pred)[:, None] if name == "predict" else [y_pred]
        kwargs = self._metric_kwargs(estimator, name, task_ids)
        if sample_weight is not None:
            kwargs["sample_weight"] = sample_weight
        return self._sign * float(self._metric(y_true, y_pred, task_ids=task_ids, **kwargs))

    @staticmethod
    def _check_target(estimator, y_true, y_pred, task_ids, *, probabilistic):
        if task_ids is not None:
            return
        if np.ndim(y_true) == 1:
            many = isinstance(y_pred, list) or (not probabilistic and np.ndim(y_pred) == 2)
            if many:
                n_tasks = len(y_pred) if isinstance(y_pred, list) else np.shape(y_pred)[1]
                raise ValueError(
                    f"{type(estimator).__name__} predicts {n_tasks} tasks but y is 1-D and no "
                    "task_ids were given. For long-format data pass task_ids; search objects "
                    "and cross_validate route it to the scorer only with metadata routing on: "
                    "sklearn.set_config(enable_metadata_routing=True)."
                )
            return
        tasks = _final_step_attr(estimator, "tasks_")
        if _is_frame(y_true) and tasks is not None:
            check_task_columns(y_true, tasks)

    # -- metadata routing ----------------------------------------------------------------------
    def _accept_sample_weight(self):
        # Used by scikit-learn when metadata routing is off to decide whether a search object
        # forwards fit's sample_weight to the scorer.
        return _accepts(self._metric, "sample_weight")

    def set_score_request(self, **kwargs):
        """Set which metadata search objects route to this scorer.

        Only available with metadata routing enabled
        (``sklearn.set_config(enable_metadata_routing=True)``). By default ``task_ids`` is
        requested and ``sample_weight`` is not (passing it then raises an error).

        Parameters
        ----------
        **kwargs : {True, False, None, str}
            ``task_ids=...`` and / or ``sample_weight=...``: True to request the metadata,
            False to not request it, None to raise if it is passed, or a string alias.

        Returns
        -------
        self : object
            The scorer, with updated requests.
        """
        if not get_config().get("enable_metadata_routing", False):
            raise RuntimeError(
                "set_score_request is only available when metadata routing is enabled: "
                "sklearn.set_config(enable_metadata_routing=True)."
            )
        unknown = sorted(set(kwargs) - set(_DEFAULT_SCORE_REQUEST))
        if unknown:
            raise TypeError(
                f"Unexpected metadata {unknown} for {self!r}; a multi-task scorer consumes "
                f"{sorted(_DEFAULT_SCORE_REQUEST)}."
            )
        requests = self._get_metadata_request()
        for param, alias in kwargs.items():
            requests.score.add_request(param=param, alias=alias)
        self._metadata_request = requests
        return self

    def _get_metadata_request(self):
        if hasattr(self, "_metadata_request"):
            return get_routing_for_object(self._metadata_request)
        requests = MetadataRequest(owner=self)
        for param, alias in _DEFAULT_SCORE_REQUEST.items():
            requests.score.add_request(param=param, alias=alias)
        return requests

    def get_metadata_routing(self):
        """Metadata routing of this scorer: what its ``score`` (``__call__``) consumes.

        Returns
        -------
        routing : MetadataRequest
            ``task_ids`` requested by default, ``sample_weight`` as set by
            :meth:`set_score_request`.
        """
        return self._get_metadata_request()


def make_multitask_scorer(metric, *, response_method="predict", greater_is_better=True,
                          **kwargs):
    """Make a scorer for search objects from a masked multi-task metric.

    The scorer can be passed as ``scoring=`` to :class:`~sklearn.model_selection.GridSearchCV`,
    :func:`~sklearn.model_selection.cross_validate` or
    :func:`~sklearn.model_selection.cross_val_score`, alone or in a dict of several scorers.
    ``scorer(estimator, X, y, task_ids=None, sample_weight=None)`` computes::

        y_pred = estimator.<response_method>(X, task_ids=task_ids)
        sign * metric(y, y_pred, task_ids=task_ids, sample_weight=sample_weight, **kwargs)

    so long-format data is predicted for each row's own task and every task is scored on its
    observed labels only. ``task_ids`` is passed to the response method only when given, so
    plain scikit-learn estimators can be scored too; a fitted search object (GridSearchCV,
    ...), whose methods take no ``task_ids``, is then predicted with its ``best_estimator_``
    (through nested searches), which is what its own ``predict`` does: nested
    cross-validation of a search on long data works. For a metric on scores (any response
    method other than ``predict``), ``labels`` defaults to the estimator's ``classes_`` (per
    task, aligned with the tasks being scored), so a class missing from a test fold is still
    handled correctly; a task not seen in fit, which an estimator with
    ``unknown_task="shared"`` predicts from its shared part, gets the shared part's classes.

    A focused estimator (:class:`~skmtl.deep.FocusedTaskRegressor` /
    :class:`~skmtl.deep.FocusedTaskClassifier`, alone or at the end of a pipeline) predicts
    its focus task only, and is scored there, on the labels its ``score`` uses: the focus
    column of a wide ``y`` (by name in a DataFrame), or the rows of long data whose
    ``task_ids`` is the focus task (only those rows are predicted). ``"r2"`` and
    ``"accuracy"`` then equal its ``score``.

    The scorer takes part in metadata routing: with
    ``sklearn.set_config(enable_metadata_routing=True)``, search objects route ``task_ids`` to
    it by default, and ``sample_weight`` once requested with
    ``scorer.set_score_request(sample_weight=True)``.

    Parameters
    ----------
    metric : str or callable
        A masked metric with the signature of :func:`skmtl.metrics.r2_score`:
        ``metric(y_true, y_pred, *, task_ids=None, sample_weight=None, **kwargs)``, returning a
        float. Or the name of one: ``"r2"``, ``"neg_mean_squared_error"``,
        ``"neg_mean_absolute_error"``, ``"accuracy"`` (on ``predict``), ``"roc_auc"``,
        ``"average_precision"``, ``"neg_log_loss"`` (on ``predict_proba``). A name fixes the
        sign and the response method.
    response_method : str or tuple of str, default="predict"
        The estimator method giving ``y_pred``: ``"predict"``, ``"predict_proba"``,
        ``"predict_log_proba"`` or ``"decision_function"``; for a tuple, the first one the
        estimator has. With a metric name, leave the default (or give the name's method).
    greater_is_better : bool, default=True
        Whether higher metric values are better; if False the scorer returns the negated
        metric (scikit-learn's ``neg_`` convention), so search objects always maximize. Must
        stay True with a metric name.
    **kwargs
        Extra keyword arguments of ``metric``, e.g. ``multioutput`` task weights or ``labels``.
        ``multioutput="raw_values"`` is refused: a scorer returns one number. With long data,
        weights given one per task of the estimator's ``tasks_`` (sorted task order) are
        restricted to the tasks of the scored rows' ``task_ids`` (a test fold may lack a small
        task); a task not seen in fit has no weight then, which raises a ValueError naming it.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y, *, task_ids=None, sample_weight=None)`` returning a float,
        with ``set_score_request`` and ``get_metadata_routing`` for metadata routing.

    Raises
    ------
    ValueError
        For an unknown metric name, a name combined with ``greater_is_better=False`` or another
        response method, an unknown response method, ``multioutput="raw_values"``, or
        ``task_ids`` / ``sample_weight`` given as fixed keyword arguments.

    See Also
    --------
    get_multitask_scorer : The scorer of a metric name.
    skmtl.metrics.per_task_scores : Per-task values of any single-task metric.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import Ridge
    >>> from sklearn.model_selection import GridSearchCV, KFold
    >>> from skmtl import IndependentTasks
    >>> from skmtl.metrics import make_multitask_scorer
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(40, 3))
    >>> Y = X @ rng.normal(size=(3, 2))
    >>> Y[::4, 1] = np.nan  # missing labels of task 1
    >>> scorer = make_multitask_scorer("neg_mean_squared_error")
    >>> scorer
    make_multitask_scorer('neg_mean_squared_error')
    >>> search = GridSearchCV(IndependentTasks(Ridge()), {"estimator__alpha": [0.01, 100.0]},
    ...                       scoring=scorer, cv=KFold(3)).fit(X, Y)
    >>> search.best_params_
    {'estimator__alpha': 0.01}
    >>> bool(search.best_score_ < 0)
    True

    Long-format data: with metadata routing on, ``task_ids`` reaches both the estimator and
    the scorer, so each test row is predicted and scored for its own task. Here task 0 gets
    twice the weight of task 1 in the average:

    >>> import sklearn
    >>> from sklearn.model_selection import cross_val_score
    >>> from skmtl.metrics import r2_score
    >>> rows, tasks = np.nonzero(~np.isnan(Y))
    >>> scorer = make_multitask_scorer(r2_score, multioutput=[2.0, 1.0])
    >>> scorer
    make_multitask_scorer(r2_score, multioutput=[2.0, 1.0])
    >>> with sklearn.config_context(enable_metadata_routing=True):
    ...     scores = cross_val_score(IndependentTasks(Ridge(alpha=0.01)), X[rows], Y[rows, tasks],
    ...                              params={"task_ids": tasks}, scoring=scorer,
    ...                              cv=KFold(3, shuffle=True, random_state=0))
    >>> bool(scores.min() > 0.99)
    True
    """
    name = None
    if isinstance(metric, str):
        if metric not in _SCORERS:
            raise ValueError(
                f"{metric!r} is not a multi-task scorer name; valid names are "
                f"{sorted(_SCORERS)}. Pass a callable masked metric for anything else."
            )
        if not greater_is_better:
            raise ValueError(
                f"The scorer name {metric!r} fixes the sign (greater_is_better); pass the "
                "metric function to choose it."
            )
        name, (metric, greater_is_better, default_method) = metric, _SCORERS[metric]
        if response_method not in ("predict", default_method):
            raise ValueError(
                f"The scorer name {name!r} uses response_method={default_method!r}; pass the "
                f"metric function to use {response_method!r}."
            )
        response_method = default_method
    elif not callable(metric):
        raise ValueError(f"metric must be a metric name or a callable; got {metric!r}.")
    methods = (response_method,) if isinstance(response_method, str) else response_method
    if (not isinstance(methods, tuple | list) or not methods
            or any(m not in _RESPONSE_METHODS for m in methods)):
        raise ValueError(
            f"response_method must be one of {list(_RESPONSE_METHODS)} or a tuple of them; "
            f"got {response_method!r}."
        )
    if isinstance(response_method, list):
        response_method = tuple(response_method)
    reserved = sorted(set(kwargs) & set(_DEFAULT_SCORE_REQUEST))
    if reserved:
        raise ValueError(
            f"{reserved} are passed at scoring time (metadata), not fixed in "
            "make_multitask_scorer."
        )
    if isinstance(kwargs.get("multioutput"), str) and kwargs["multioutput"] == "raw_values":
        raise ValueError(
            "multioutput='raw_values' gives one value per task, but a scorer must return one "
            "number; use the metric itself for per-task values."
        )
    return _MultiTaskScorer(metric, 1 if greater_is_better else -1, response_method, kwargs,
                            name=name)


def get_multitask_scorer(name):
    """The multi-task scorer of a metric name.

    Parameters
    ----------
    name : str
        One of ``"r2"``, ``"neg_mean_squared_error"``, ``"neg_mean_absolute_error"``,
        ``"accuracy"``, ``"roc_auc"``, ``"average_precision"``, ``"neg_log_loss"``.

    Returns
    -------
    scorer : callable
        A new scorer, as ``make_multitask_scorer(name)``.

    Examples
    --------
    >>> from skmtl.metrics import get_multitask_scorer
    >>> get_multitask_scorer("roc_auc")
    make_multitask_scorer('roc_auc')
    """
    if not isinstance(name, str):
        raise ValueError(f"name must be a string; got {name!r}.")
    return make_multitask_scorer(name)
