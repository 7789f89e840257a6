"""Transfer analysis: per task, does learning with the other tasks help or hurt?

:func:`transfer_report` cross-validates a multi-task estimator and its single-task reference on
the same folds and reports, per task, the gain in score, its standard error over the folds and
a negative-transfer flag. :func:`pairwise_transfer` measures the gain of every task from being
trained together with every other single task.
"""

import time
import warnings
from contextlib import nullcontext
from numbers import Integral

import numpy as np
from sklearn import config_context
from sklearn.base import clone, is_classifier
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.model_selection import (
    RepeatedStratifiedKFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    StratifiedShuffleSplit,
    check_cv,
)
from sklearn.utils.metadata_routing import get_routing_for_object
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import indexable

from skmtl.baselines import IndependentTasks, PooledTasks
from skmtl.metrics import make_multitask_scorer, per_task_scores
from skmtl.metrics._scorer import _final_step_attr, _MultiTaskScorer, _respond
from skmtl.model_selection._folds import check_training_folds, describe_cv, split_params
from skmtl.model_selection._split import MultiTaskKFold
from skmtl.utils._sklearn_compat import HasMethods, validate_params
from skmtl.utils._warnings import warn_at_caller
from skmtl.utils.validation import (
    _format_tasks,
    _hashable,
    _tighten,
    check_groups,
    check_multitask_target,
    check_task_ids,
    encode_task_ids,
    missing_mask,
)

__all__ = ["pairwise_transfer", "transfer_report"]

REPORT_FIELDS = ("task", "score", "reference_score", "gain", "gain_se", "negative_transfer",
                 "n_observed")

_ESTIMATOR = [HasMethods(["fit", "predict"])]
_COMMON_CONSTRAINTS = {
    "estimator": _ESTIMATOR,
    "X": ["array-like", "sparse matrix"],
    "Y": ["array-like"],
    "cv": ["cv_object"],
    "scoring": [None, str, callable],
    "n_jobs": [None, Integral],
    "task_ids": [None, "array-like"],
    "groups": [None, "array-like"],
}


def paired_gain(reference_losses, losses, tasks, n_tasks):
    """Per task, the mean loss decrease over its labels and its standard error (NaN below 2)."""
    diff = reference_losses - losses
    n_obs = np.bincount(tasks, minlength=n_tasks)
    gain = np.bincount(tasks, weights=diff, minlength=n_tasks) / n_obs
    # a gain within the rounding of its sum is a tie, 0: differences that cancel (folds of
    # +1/141 and -1/141 accuracy) left 7.4e-17, which the comparison counted as a win
    size = np.bincount(tasks, weights=np.abs(reference_losses) + np.abs(losses),
                       minlength=n_tasks) / n_obs
    gain[np.abs(gain) <= 4.0 * n_obs * np.finfo(np.float64).eps * size] = 0.0
    squares = np.bincount(tasks, weights=(diff - gain[tasks]) ** 2, minlength=n_tasks)
    many = n_obs > 1
    gain_se = np.full(gain.shape, np.nan)
    gain_se[many] = np.sqrt(squares[many] / (n_obs[many] - 1) / n_obs[many])
    return gain, gain_se


# -- the data, cut into folds -------------------------------------------------------------------
def _take(a, rows):
    """Rows of an array, sparse matrix, DataFrame or Series (None stays None)."""
    if a is None:
        return None
    return a.iloc[rows] if hasattr(a, "iloc") else a[rows]


def _columns(Y, columns):
    """Columns of a wide target (one position gives a 1-D target)."""
    return Y.iloc[:, columns] if hasattr(Y, "iloc") else np.asarray(Y)[:, columns]


class _Data:
    """Validated inputs: X, the target as given (array or DataFrame) and its parsed form, and
    the rows' groups for a group splitter."""

    def __init__(self, estimator, X, Y, task_ids, groups=None):
        self.estimator = estimator
        self.classification = is_classifier(estimator)
        if task_ids is not None:
            task_ids = check_task_ids(task_ids, len(Y))
        if groups is not None:
            groups = check_groups(groups, len(Y))
        X, Y = indexable(X, Y)
        self.X, self.Y, self.task_ids, self.groups = X, Y, task_ids, groups
        self.target = check_multitask_target(Y, task_ids, y_numeric=not self.classification)
        self.tasks = self.target.tasks
        if self.target.layout == "long":
            self.n_observed = np.bincount(self.target.task_index, minlength=self.target.n_tasks)
        else:
            self.n_observed = self.target.mask.sum(axis=0)

    def rows(self, rows):
        """The same data restricted to ``rows`` (long data: the rows of some tasks)."""
        return _Data(self.estimator, _take(self.X, rows), _take(self.Y, rows),
                     _take(self.task_ids, rows), _take(self.groups, rows))

    def folds(self, cv):
        """The (train, test) index pairs of ``cv`` on this data.

        A splitter whose ``split`` takes ``task_ids`` receives them; a group splitter (its
        ``split`` requests ``groups``, as scikit-learn's GroupKFold, StratifiedGroupKFold,
        LeaveOneGroupOut and GroupShuffleSplit do) receives ``groups``, which it needs. Groups
        given for a splitter that ignores them are an error: their rows could be split.
        """
        described = describe_cv(cv, multitask_kfold=isinstance(cv, Integral))
        if isinstance(cv, Integral):
            cv = MultiTaskKFold(cv, classification=self.classification)
        cv = check_cv(cv)
        params = split_params(cv, described, task_ids=self.task_ids, groups=self.groups)
        try:
            folds = list(cv.split(self.X, self.Y, **params))
        except ValueError as exc:
            if self.target.layout != "wide" or not isinstance(cv, _STRATIFIED):
                raise
            raise ValueError(
                f"{described} cannot split a wide Y ({exc}): it stratifies on the classes of "
                "a 1-D y. Use MultiTaskKFold, stratified on the classes of each task, or with "
                "groups MultiTaskGroupKFold; StratifiedGroupKFold takes long data.") from exc
        if self.target.layout != "long":
            self._check_tasks_in_training(folds, described)
        return folds

    def _check_tasks_in_training(self, folds, described):
        """Every task of a wide ``Y`` needs a label in every training fold (a fit refuses a
        task without one), which a group splitter does not ensure; long data may leave a task
        out (an estimator with ``unknown_task="shared"`` predicts it)."""
        check_training_folds(folds, lambda train: self.target.mask[train].sum(axis=0),
                             self.tasks, described)


# scikit-learn's splitters that stratify on a 1-D y
_STRATIFIED = (RepeatedStratifiedKFold, StratifiedGroupKFold, StratifiedKFold,
               StratifiedShuffleSplit)


def _routing(task_ids, groups=None):
    """Long data: ``task_ids`` reaches a model inside a Pipeline only through metadata routing;
    so do the ``groups`` its ``fit`` takes (:func:`_fit_groups`)."""
    on = task_ids is not None or groups is not None
    return config_context(enable_metadata_routing=True) if on else nullcontext()


def _fit_groups(estimator, groups):
    """``groups`` if ``estimator``'s ``fit`` uses them, else None: a linear ``*CV`` estimator
    with a group splitter as its ``cv`` (or a Pipeline or meta-estimator that routes them to
    one) keeps the groups together in its own inner folds too."""
    if groups is None:
        return None
    # read with routing on, as the fit runs (RidgeCV's routing recurses without it)
    with config_context(enable_metadata_routing=True):
        takes = get_routing_for_object(estimator).consumes("fit", ["groups"])
    return groups if takes else None


def _fit_fold(estimator, X, y, task_ids, train, groups=None):
    """A clone of ``estimator`` fitted on the ``train`` rows (their ``task_ids`` and, when given,
    their ``groups`` passed to ``fit``: see :func:`_fit_groups`), and the fit time in seconds.
    Call it inside :func:`_routing`."""
    model = clone(estimator)
    ids_train = _take(task_ids, train)
    fit_params = {} if ids_train is None else {"task_ids": ids_train}
    if groups is not None:
        fit_params["groups"] = _take(groups, train)
    start = time.perf_counter()
    model.fit(_take(X, train), _take(y, train), **fit_params)
    return model, time.perf_counter() - start


def _fit_and_score(estimator, X, y, task_ids, train, test, scorer, tasks, groups=None):
    """Fit a clone on the ``train`` rows, score every task on the ``test`` rows.

    Returns the per-task scores and the fit time in seconds.
    """
    groups = _fit_groups(estimator, groups)
    with _routing(task_ids, groups):
        model, fit_time = _fit_fold(estimator, X, y, task_ids, train, groups)
        return scorer(model, _take(X, test), _take(y, test), _take(task_ids, test),
                      tasks), fit_time


def _run_parallel(jobs, n_jobs, progress=None):
    """The results of joblib ``jobs`` in order; ``progress()`` is called as each one arrives.

    Results stream back (``return_as="generator"``) when there is a ``progress`` to report to
    and the joblib backend can stream (loky, threading, dask; not multiprocessing).
    """
    if progress is None:
        return Parallel(n_jobs=n_jobs)(jobs)
    try:
        parallel = Parallel(n_jobs=n_jobs, return_as="generator")
    except ValueError:  # a backend that cannot stream: progress at the end
        parallel = Parallel(n_jobs=n_jobs)
    results = []
    for result in parallel(jobs):
        results.append(result)
        progress()
    return results


# -- scoring ------------------------------------------------------------------------------------
class _PerTaskScorer:
    """Score a fitted model on each task: ``scorer(model, X, y, task_ids, tasks) -> (n_tasks,)``.

    Built from a masked multi-task scorer (names and :func:`make_multitask_scorer` objects) or
    from a single-task metric ``metric(y_true_t, y_pred_t)`` applied to ``predict``.
    """

    def __init__(self, name, *, scorer=None, task_metric=None, y_numeric=True):
        self.name = name
        self.scorer = scorer
        self.task_metric = task_metric
        self.y_numeric = y_numeric

    def __call__(self, model, X, y, task_ids, tasks):
        focus = _final_step_attr(model, "focus_index_")
        if focus is not None:
            return self._score_focus(model, X, y, task_ids, tasks, focus)
        values = self._scores(model, X, y, task_ids)
        if task_ids is None:
            return values
        # long data: the metric scores the tasks present in the test rows, in sorted order
        out = np.full(len(tasks), np.nan)
        out[encode_task_ids(np.unique(task_ids), tasks)] = values
        return out

    def _score_focus(self, model, X, y, task_ids, tasks, focus):
        """A focused estimator predicts its focus task only: score it there, NaN elsewhere."""
        position = encode_task_ids([_final_step_attr(model, "tasks_")[focus]], tasks)[0]
        if task_ids is not None:
            rows = np.flatnonzero(encode_task_ids(task_ids, tasks) == position)
            y_focus = np.asarray(_take(y, rows))
        elif np.ndim(y) == 2:
            y_focus = np.asarray(_columns(y, position))
            rows = np.flatnonzero(~missing_mask(y_focus))
            y_focus = y_focus[rows]
        else:
            rows, y_focus = np.arange(len(y)), np.asarray(y)
        out = np.full(len(tasks), np.nan)
        if not len(rows):  # no focus label in this test fold: undefined, left out by the caller
            return out
        # the focus column of an object target (labels 0 / 1 read as Python objects, say) is
        # scored as a 1-D target, which must have the labels' own dtype to pass as classes
        out[position] = self._scores(model, _take(X, rows), _tighten(y_focus), None)[0]
        return out

    def _scores(self, model, X, y, task_ids):
        """The metric on each task the metric sees (each column, or each task of task_ids)."""
        with warnings.catch_warnings():
            # a task with too few test labels in a fold: NaN, reported once by the caller
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            if self.scorer is not None:
                values = self._masked_values(model, X, y, task_ids)
            else:
                pred = _respond(model, "predict", X, task_ids)
                _, values = per_task_scores(self._apply_task_metric, y, pred, task_ids=task_ids,
                                            y_numeric=self.y_numeric)
        return np.asarray(values, dtype=np.float64)

    def _apply_task_metric(self, y_t, p_t, *, sample_weight, task):
        return float(self.task_metric(y_t, p_t))

    def _masked_values(self, model, X, y, task_ids):
        scorer = self.scorer
        method_name, pred = scorer._predict(model, X, task_ids)
        kwargs = scorer._metric_kwargs(model, method_name, task_ids)
        kwargs.pop("multioutput", None)
        values = scorer._metric(y, pred, task_ids=task_ids, multioutput="raw_values", **kwargs)
        return scorer._sign * np.atleast_1d(np.asarray(values, dtype=np.float64))


def _check_scoring(scoring, classification):
    if scoring is None:
        scoring = "accuracy" if classification else "r2"
    if isinstance(scoring, str):
        return _PerTaskScorer(scoring, scorer=make_multitask_scorer(scoring))
    if isinstance(scoring, _MultiTaskScorer):
        return _PerTaskScorer(repr(scoring), scorer=scoring)
    name = getattr(scoring, "__name__", type(scoring).__name__)
    return _PerTaskScorer(name, task_metric=scoring, y_numeric=not classification)


# -- the single-task reference ------------------------------------------------------------------
def _final_step(estimator):
    """The last step of (nested) pipelines and the ``__`` parameter path to it."""
    path = []
    while hasattr(estimator, "steps"):
        name, estimator = estimator.steps[-1]
        path.append(name)
    return path, estimator


def _is_focused(estimator):
    """Whether the estimator serves one focus task (FocusedTaskRegressor / -Classifier)."""
    return "focus_task" in _final_step(estimator)[1].get_params(deep=False)


def _single_task_model(final):
    """The single-task counterpart of a final step without ``sharing``, or None."""
    if isinstance(final, PooledTasks):
        return IndependentTasks(clone(final.estimator), n_jobs=final.n_jobs)
    if type(final).__module__.startswith("skmtl.linear."):
        reference = getattr(final, "_single_task_reference", None)
        return IndependentTasks(reference() if reference is not None else clone(final))
    return None


def _default_reference(estimator):
    """The single-task reference of a multi-task estimator (rules in :func:`transfer_report`).

    Raises a TypeError when the estimator has none.
    """
    path, final = _final_step(estimator)
    params = final.get_params(deep=False)
    if "sharing" in params:
        return clone(estimator).set_params(**{"__".join([*path, "sharing"]): "independent"})
    if "focus_task" in params and "strategy" in params:
        return clone(estimator).set_params(**{"__".join([*path, "strategy"]): "single_task"})
    single = _single_task_model(final)
    if single is None:
        raise TypeError(
            f"Cannot tell the single-task reference of {type(final).__name__}: it has neither "
            "a 'sharing' nor a 'strategy' parameter and is neither a linear skmtl model nor "
            "PooledTasks. Pass "
            "reference=, e.g. reference=IndependentTasks(Ridge()) or "
            "IndependentTasks(LogisticRegression())."
        )
    return single if not path else clone(estimator).set_params(**{"__".join(path): single})


# -- aggregation ----------------------------------------------------------------------------------
def _fold_gain(scores, reference_scores):
    """Per task: mean scores over the folds where both are defined, the gain and its SE."""
    both = ~np.isnan(scores) & ~np.isnan(reference_scores)
    _, tasks = np.nonzero(both)
    n_folds = both.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(both, scores, 0.0).sum(axis=0) / n_folds
        reference = np.where(both, reference_scores, 0.0).sum(axis=0) / n_folds
        # a score is a negated loss: the loss decrease of paired_gain is the score increase
        gain, gain_se = paired_gain(-reference_scores[both], -scores[both], tasks,
                                     scores.shape[1])
    return score, reference, gain, gain_se, n_folds


def _warn_undefined(tasks, n_folds, n_splits, what):
    short = n_folds < n_splits
    if short.any():
        warn_at_caller(
            f"{what}: the score of task(s) {_format_tasks(tasks[short])} is undefined in some "
            "test folds (too few test labels or classes); those folds are left out of their "
            "mean, and a task with fewer than 2 defined folds has no standard error (NaN).",
            UndefinedMetricWarning,
        )


def _pandas():
    """pandas, or None when it is not installed (results are then numpy arrays)."""
    try:
        import pandas
    except ImportError:
        return None
    return pandas


def _as_table(columns, attrs):
    """A DataFrame of the columns when pandas is installed, else a structured array."""
    pd = _pandas()
    if pd is None:
        dtype = [(name, values.dtype) for name, values in columns.items()]
        table = np.empty(len(columns["task"]), dtype=dtype)
        for name, values in columns.items():
            table[name] = values
        return table
    frame = pd.DataFrame(columns)
    frame.attrs.update(attrs)
    return frame


def _cross_validate_against_reference(estimators, X, Y, *, reference, cv, scoring, n_jobs,
                                      task_ids, groups=None, fit_groups=None, progress=None):
    """Cross-validate several estimators and their references on the same folds, in one run.

    The engine of :func:`transfer_report`, :meth:`StrategyComparisonDisplay.from_estimators`
    and ``skmtl compare``. Every distinct model (an estimator, or a ``reference`` shared by
    several estimators, or an estimator that is also the reference) is fitted once per fold;
    all (model, fold) fits run in one joblib call. Without ``reference``, each estimator gets
    its default reference (:func:`_default_reference`). ``groups`` go to ``cv`` and to the
    fits that take them; ``fit_groups`` to those fits only (``cv`` the folds themselves).

    Returns
    -------
    tasks : ndarray
        The task labels (:func:`transfer_report`'s row order).
    n_observed : ndarray of int
        Observed labels per task.
    scoring : str
        The name of the per-task score.
    n_splits : int
        Number of folds.
    runs : dict
        ``runs[name]`` is a dict of per-task arrays, ``score``, ``reference_score``, ``gain``,
        ``gain_se``, ``negative_transfer`` (as in :func:`transfer_report`) and ``n_folds``
        (folds where both scores are defined), plus ``fit_time``, the seconds spent fitting
        the estimator, summed over the folds, and ``focused``, whether it serves one focus
        task (scored there only).
    """
    first = next(iter(estimators.values()))
    data = _Data(first, X, Y, task_ids, groups)
    folds = data.folds(cv)
    scorer = _check_scoring(scoring, data.classification)
    references = {name: reference if reference is not None else _default_reference(est)
                  for name, est in estimators.items()}
    models, model_index = [], {}
    for model in [*estimators.values(), *references.values()]:  # each distinct model once
        if id(model) not in model_index:
            model_index[id(model)] = len(models)
            models.append(model)
    fit_groups = data.groups if fit_groups is None else check_groups(fit_groups, len(data.Y))
    jobs = (delayed(_fit_and_score)(model, data.X, data.Y, data.task_ids, train, test, scorer,
                                    data.tasks, fit_groups)
            for model in models for train, test in folds)
    results = _run_parallel(jobs, n_jobs, progress)
    scores = np.asarray([values for values, _ in results], dtype=np.float64).reshape(
        len(models), len(folds), -1)
    fit_times = np.asarray([seconds for _, seconds in results]).reshape(len(models), len(folds))
    runs = {}
    for name, estimator in estimators.items():
        m, r = model_index[id(estimator)], model_index[id(references[name])]
        score, ref_score, gain, gain_se, n_folds = _fold_gain(scores[m], scores[r])
        runs[name] = {
            "score": score,
            "reference_score": ref_score,
            "gain": gain,
            "gain_se": gain_se,
            "negative_transfer": gain < -gain_se,  # False where gain_se is NaN
            "n_folds": n_folds,
            "fit_time": float(fit_times[m].sum()),
            "focused": _is_focused(estimator),
        }
    return data.tasks, data.n_observed.astype(np.int64), scorer.name, len(folds), runs


def _transfer_reports(estimators, X, Y, *, reference, cv, scoring, n_jobs, task_ids,
                      groups=None):
    """:func:`transfer_report` of several estimators on the same folds, in one parallel run.

    A shared ``reference`` is fitted once; without one, each estimator gets its default.
    Returns a dict name -> report.
    """
    tasks, n_observed, scoring, n_splits, runs = _cross_validate_against_reference(
        estimators, X, Y, reference=reference, cv=cv, scoring=scoring, n_jobs=n_jobs,
        task_ids=task_ids, groups=groups)
    reports = {}
    for name, run in runs.items():
        # a focused estimator is scored on its focus task only: one row
        keep = run["n_folds"] > 0 if run["focused"] else np.ones(len(tasks), dtype=bool)
        _warn_undefined(tasks[keep], run["n_folds"][keep], n_splits, "transfer_report")
        columns = {"task": tasks, **{field: run[field] for field in REPORT_FIELDS[1:-1]},
                   "n_observed": n_observed}
        columns = {key: values[keep] for key, values in columns.items()}
        reports[name] = _as_table(columns, {"scoring": scoring, "n_splits": n_splits})
    return reports


@validate_params(
    {**_COMMON_CONSTRAINTS, "reference": [None, *_ESTIMATOR]},
    prefer_skip_nested_validation=False,  # the estimators are validated when fitted
)
def transfer_report(estimator, X, Y, *, reference=None, cv=5, scoring=None, n_jobs=None,
                    task_ids=None, groups=None):
    """Per task, the cross-validated gain of a multi-task estimator over single-task learning.

    The estimator and its single-task ``reference`` are fitted on the same training folds and
    scored, task by task, on the same test folds (observed labels only). For task ``t`` and
    fold ``k`` let ``s_tk`` and ``r_tk`` be the scores of the estimator and of the reference;
    over the ``K_t`` folds where both are defined::

        score_t           = mean_k s_tk
        reference_score_t = mean_k r_tk
        gain_t            = mean_k (s_tk - r_tk) = score_t - reference_score_t
        gain_se_t         = std_k(s_tk - r_tk, ddof=1) / sqrt(K_t)
        negative_transfer_t = gain_t < -gain_se_t

    The folds are paired: both models see the same rows, so fold-to-fold differences in
    difficulty cancel in ``s_tk - r_tk``. A task is flagged when sharing lowers its score by
    more than one standard error of the paired gain; the flag is a screening rule, not a test
    at a fixed level (with five folds, a true gain of zero is flagged about one time in five).
    Test folds overlap in no row, but the training folds do, so the standard error is an
    approximation, as for any cross-validated standard error.

    This is skmtl's one definition of the gain, in the units of ``scoring``: the
    ``skmtl compare`` command (its ``scores.csv`` has these fields and a ``metric`` column)
    and :meth:`~skmtl.plotting.StrategyComparisonDisplay.from_estimators` run the same code.

    Parameters
    ----------
    estimator : estimator object
        The multi-task estimator (or a :class:`~sklearn.pipeline.Pipeline` ending in one). It
        is cloned for every fold; it need not be fitted.
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Features.
    Y : array-like of shape (n_samples, n_tasks) or (n_samples,)
        Targets in any format of the data contract: a wide ``Y`` with NaN (or None) for
        missing labels (a DataFrame's columns name the tasks), or a long ``y`` with
        ``task_ids``.
    reference : estimator object, default=None
        The single-task model to compare with. By default:

        - an estimator with a ``sharing`` parameter (the deep
          :class:`~skmtl.deep.MultiTaskRegressor` / :class:`~skmtl.deep.MultiTaskClassifier`):
          a clone with ``sharing="independent"``, every other parameter unchanged;
        - a focused-task estimator (``focus_task`` and ``strategy`` parameters:
          :class:`~skmtl.deep.FocusedTaskRegressor` / :class:`~skmtl.deep.FocusedTaskClassifier`):
          a clone with ``strategy="single_task"``;
        - a linear skmtl model (:mod:`skmtl.linear`): :class:`~skmtl.IndependentTasks` of the
          same model, fitted on each task alone (the same penalty with one task: ridge for the
          mean-clustered models, the lasso or l1-logistic regression for the block-sparse
          ones; a model's ``_single_task_reference()`` is used when it defines one);
        - :class:`~skmtl.PooledTasks`: :class:`~skmtl.IndependentTasks` of its estimator.

        Inside a :class:`~sklearn.pipeline.Pipeline` the rule applies to the final step and
        the other steps are kept. Any other estimator needs an explicit ``reference`` (a
        TypeError says so).
    cv : int, cross-validation generator or iterable, default=5
        An int is the number of folds of a
        :class:`~skmtl.model_selection.MultiTaskKFold` (not shuffled; stratified on the
        classes of each task for classifiers), which keeps every task observed in every
        training fold. A splitter whose ``split`` accepts ``task_ids`` receives it; a group
        splitter (:class:`~skmtl.model_selection.MultiTaskGroupKFold`, which also keeps every
        task in every training fold, :class:`~sklearn.model_selection.GroupKFold`,
        :class:`~sklearn.model_selection.LeaveOneGroupOut`, ...) receives ``groups``
        (a splitter that stratifies on the classes of a 1-D ``y``, as StratifiedGroupKFold,
        takes long data only: a wide ``Y`` is a ValueError that says so). A group
        splitter of scikit-learn does not keep every task in every training fold: for a wide
        ``Y``, a training fold without a task's labels is a ValueError naming the fold and
        the task, before any fit; on long data the task is then unknown to that fold's
        model, which raises when asked to predict it (or predicts it from its shared part,
        with ``unknown_task="shared"``: leave-one-group-out with ``groups=task_ids`` scores
        new tasks).
    scoring : str or callable, default=None
        The per-task score (greater is better):

        - None: R^2 for regressors, accuracy for classifiers;
        - a name of :func:`~skmtl.metrics.get_multitask_scorer` (``"r2"``,
          ``"neg_mean_squared_error"``, ``"neg_mean_absolute_error"``, ``"accuracy"``,
          ``"roc_auc"``, ``"average_precision"``, ``"neg_log_loss"``), computed per task by
          the masked metric (``predict_proba`` for the last three);
        - a scorer made by :func:`~skmtl.metrics.make_multitask_scorer`: its metric per task
          (its sign and response method; task weights in ``multioutput`` are ignored);
        - any other callable: a single-task metric ``scoring(y_true_t, y_pred_t) -> float``
          applied to each task's observed test labels and the ``predict`` output (e.g.
          :func:`sklearn.metrics.r2_score`). Greater must be better: negate a loss.
    n_jobs : int, default=None
        Number of (model, fold) fits run in parallel by joblib. ``None`` means 1 unless in a
        :func:`joblib.parallel_config` context, so that
        ``with joblib.parallel_config(backend="dask"):`` runs the fits on a dask cluster.
    task_ids : array-like of shape (n_samples,), default=None
        The task of each row, for long-format data. It is passed to ``cv.split`` (when it
        accepts it), to ``fit`` and ``predict`` of both models (through metadata routing,
        enabled for these calls, so a Pipeline forwards it to its final step) and to the
        metric.
    groups : array-like of shape (n_samples,), default=None
        The group of each row, for a group splitter as ``cv``, which keeps the rows of a
        group in one fold: the Murcko scaffold of each molecule (a scaffold split, so that
        test molecules are unlike the training ones), the class of each pupil, or, on long
        data where a sample has a row per task, the sample. Required by a group splitter; a
        ValueError if given with a splitter that does not use it (an int ``cv``
        included), whose folds could split a group.

    Returns
    -------
    report : pandas.DataFrame or numpy structured array
        One row per task, in the order of the estimators' ``tasks_`` (the columns of a wide
        ``Y``, the sorted ``task_ids``); for a focused-task estimator, which predicts its
        focus task only (its fitted ``focus_index_``), one row, the focus task. Fields:

        - ``task``: the task label;
        - ``score``, ``reference_score``: mean test score over the folds;
        - ``gain``, ``gain_se``: see above;
        - ``negative_transfer`` (bool): ``gain < -gain_se``, False where ``gain_se`` is NaN
          (fewer than 2 folds with a defined score);
        - ``n_observed`` (int): the task's observed labels in ``Y``.

        A DataFrame (with ``attrs["scoring"]`` and ``attrs["n_splits"]``) when pandas is
        installed, else a structured array with the same fields (``report["gain"]`` works
        on both).

    Warns
    -----
    UndefinedMetricWarning
        When a task's score is undefined in some test folds (e.g. R^2 with fewer than two test
        labels); those folds are left out for that task.

    See Also
    --------
    pairwise_transfer : Gain of each task from each other single task.
    skmtl.plotting.TransferDisplay : Bar plot of a report.

    Examples
    --------
    Four related tasks and one that contradicts them (its coefficients point the other way):
    pooling all rows into one ridge regression helps the related tasks (100 noisy rows for 50
    features is little for one task alone) and hurts the conflicting one.

    >>> from sklearn.linear_model import Ridge
    >>> from skmtl import PooledTasks
    >>> from skmtl.datasets import make_multitask_regression
    >>> from skmtl.model_selection import transfer_report
    >>> X, Y = make_multitask_regression(n_samples=100, n_features=50, n_informative=20,
    ...                                  n_tasks=5, n_conflicting=1, noise=2.0, random_state=0)
    >>> report = transfer_report(PooledTasks(Ridge()), X, Y)
    >>> report["negative_transfer"].tolist()
    [False, False, False, False, True]
    >>> bool(report["gain"][4] < -1.0 < 0 < report["gain"][0])
    True
    """
    return _transfer_reports({"": estimator}, X, Y, reference=reference, cv=cv, scoring=scoring,
                             n_jobs=n_jobs, task_ids=task_ids, groups=groups)[""]


# -- pairwise transfer ----------------------------------------------------------------------------
def _select_tasks(tasks, all_tasks):
    """Positions of the chosen tasks: labels first; integers that are not labels are positions."""
    if tasks is None:
        return np.arange(len(all_tasks))
    lookup = {_hashable(t): i for i, t in enumerate(all_tasks)}
    chosen = []
    for t in np.asarray(tasks, dtype=object).ravel():
        key = _hashable(t)
        if key in lookup:
            chosen.append(lookup[key])
        elif isinstance(key, Integral) and not isinstance(key, bool) and (
                -len(all_tasks) <= key < len(all_tasks)):
            chosen.append(int(key) % len(all_tasks))
        else:
            raise ValueError(
                f"tasks contains {key!r}, which is neither a task label nor a task position; "
                f"the tasks are {_format_tasks(all_tasks)}."
            )
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"tasks names a task twice: {list(tasks)}.")
    if len(chosen) < 2:
        raise ValueError(f"pairwise_transfer needs at least 2 tasks; got tasks={list(tasks)}.")
    return np.asarray(chosen)


def _subset(data, chosen, columns, rows):
    """Target, task_ids and rows of a training set restricted to some of the chosen tasks.

    ``columns`` are positions in ``chosen``; one position gives a single-task (1-D) target.
    """
    positions = chosen[columns]
    if data.target.layout == "long":
        keep = rows[np.isin(data.target.task_index[rows], positions)]
        return data.Y, (data.task_ids if len(columns) > 1 else None), keep
    mask = data.target.mask[:, positions]
    keep = rows[mask[rows].any(axis=1)]
    y = _columns(data.Y, positions if len(columns) > 1 else positions[0])
    return y, None, keep


@validate_params(
    {**_COMMON_CONSTRAINTS, "tasks": [None, "array-like"]},
    prefer_skip_nested_validation=False,  # the estimator is validated when fitted
)
def pairwise_transfer(estimator, X, Y, *, tasks=None, cv=3, scoring=None, n_jobs=None,
                      task_ids=None, groups=None):
    """Gain of each task from being trained with each other task: a T x T matrix.

    For every task ``i`` the estimator is cross-validated on task ``i`` alone (a 1-D target),
    and for every pair ``{i, j}`` on the two tasks together (one fit gives both ``i``'s and
    ``j``'s scores). With the same folds throughout (``s`` the per-fold score of task ``i``,
    over the folds where both are defined)::

        M[i, j] = mean_k ( s_k(i | trained on {i, j}) - s_k(i | trained on {i}) )
        M[i, i] = 0

    Row ``i`` says which tasks help task ``i`` (positive) or hurt it (negative); column ``j``
    says whom task ``j`` helps. The matrix is not symmetric. It costs
    ``n_splits * T (T + 1) / 2`` fits.

    Parameters
    ----------
    estimator : estimator object
        A multi-task estimator (or a Pipeline ending in one) that accepts a 1-D target (one
        task) and a two-task target, and predicts every task it was fitted on (a
        focused-task estimator raises a TypeError before any fit).
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Features.
    Y : array-like of shape (n_samples, n_tasks) or (n_samples,)
        Wide targets with NaN for missing labels, or long targets with ``task_ids``.
    tasks : array-like, default=None
        The tasks to analyse (at least 2): task labels (the columns of a DataFrame, the values
        of ``task_ids``) or, for integers that are not labels, positions. None: all tasks.
    cv : int, cross-validation generator or iterable, default=3
        As in :func:`transfer_report`; the folds are made on the chosen tasks' data.
    scoring : str or callable, default=None
        As in :func:`transfer_report` (R^2 or accuracy by default).
    n_jobs : int, default=None
        Number of fits run in parallel by joblib (works under
        ``joblib.parallel_config(backend="dask")``).
    task_ids : array-like of shape (n_samples,), default=None
        The task of each row, for long-format data. A single-task fit gets the task's rows
        with a 1-D ``y`` and no ``task_ids``; a pair fit gets the rows of both tasks with their
        ``task_ids``.
    groups : array-like of shape (n_samples,), default=None
        The group of each row, for a group splitter as ``cv``: as in :func:`transfer_report`.

    Returns
    -------
    matrix : pandas.DataFrame or ndarray of shape (n_chosen, n_chosen)
        ``M`` with rows and columns in the order of ``tasks`` (or of all tasks). A DataFrame
        indexed and columned by the task labels (``index.name="task"``,
        ``columns.name="trained_with"``) when pandas is installed, else an ndarray. NaN where
        task ``i``'s score is undefined in every fold.

    See Also
    --------
    transfer_report : Gain of each task from all the others at once.
    skmtl.plotting.AffinityDisplay : Heatmap of the matrix, tasks ordered by clustering.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import Ridge
    >>> from skmtl import PooledTasks
    >>> from skmtl.datasets import make_multitask_regression
    >>> from skmtl.model_selection import pairwise_transfer
    >>> X, Y = make_multitask_regression(n_samples=100, n_features=50, n_informative=20,
    ...                                  n_tasks=5, n_conflicting=1, noise=2.0, random_state=0)
    >>> M = pairwise_transfer(PooledTasks(Ridge()), X, Y, tasks=[0, 1, 4])
    >>> M.shape
    (3, 3)
    >>> np.diag(M).tolist()
    [0.0, 0.0, 0.0]
    >>> (M.to_numpy() > 0).astype(int)  # tasks 0 and 1 help each other; task 4 conflicts
    array([[0, 1, 0],
           [1, 0, 0],
           [0, 0, 0]])
    """
    if _is_focused(estimator):
        name = type(_final_step(estimator)[1]).__name__
        raise TypeError(
            "pairwise_transfer fits the estimator on each task alone and on each pair of "
            f"tasks and scores every task it was fitted on; {name} predicts its focus task "
            "only. Use transfer_report for a focused-task estimator, or pairwise_transfer "
            "with the multi-task estimator it focuses."
        )
    data = _Data(estimator, X, Y, task_ids, groups)
    chosen = _select_tasks(tasks, data.tasks)
    n_chosen = len(chosen)
    if data.target.layout == "long":
        rows = np.flatnonzero(np.isin(data.target.task_index, chosen))
        folds = [(rows[train], rows[test]) for train, test in data.rows(rows).folds(cv)]
    else:
        rows = np.arange(len(data.Y))
        folds = _Data(estimator, data.X, _columns(data.Y, chosen), None,
                      data.groups).folds(cv)
    scorer = _check_scoring(scoring, data.classification)
    subsets = [(i,) for i in range(n_chosen)]
    subsets += [(i, j) for i in range(n_chosen) for j in range(i + 1, n_chosen)]
    jobs = []
    for columns in subsets:
        for train, test in folds:
            y, ids, train_rows = _subset(data, chosen, list(columns), train)
            _, _, test_rows = _subset(data, chosen, list(columns), test)
            jobs.append(delayed(_fit_and_score)(
                estimator, data.X, y, ids, train_rows, test_rows, scorer,
                data.tasks[chosen[list(columns)]], data.groups))
    results = (values for values, _ in Parallel(n_jobs=n_jobs)(jobs))
    n_splits = len(folds)
    single = np.full((n_splits, n_chosen), np.nan)
    pair = np.full((n_splits, n_chosen, n_chosen), np.nan)  # pair[k, i, j]: i's score with j
    for columns in subsets:
        for k in range(n_splits):
            values = next(results)
            if len(columns) == 1:
                single[k, columns[0]] = values[0]
            else:
                i, j = columns
                pair[k, i, j], pair[k, j, i] = values
    _warn_undefined(data.tasks[chosen], (~np.isnan(single)).sum(axis=0), n_splits,
                    "pairwise_transfer")
    diff = pair - single[:, :, None]
    defined = ~np.isnan(diff)
    with np.errstate(invalid="ignore", divide="ignore"):
        matrix = np.where(defined, diff, 0.0).sum(axis=0) / defined.sum(axis=0)
    np.fill_diagonal(matrix, 0.0)
    labels = data.tasks[chosen]
    pd = _pandas()
    if pd is None:
        return matrix
    index = pd.Index(labels, name="task")
    return pd.DataFrame(matrix, index=index, columns=pd.Index(labels, name="trained_with"))

