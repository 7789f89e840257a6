"""Cross-validation machinery shared by the linear ``*CV`` estimators.

The pieces every ``*CV`` estimator needs, whatever its model: the two data layouts (wide
``(X, Y, mask)`` and long ``(X, y, task_index)``) with their fold subsets and test folds, the
folds themselves (:class:`~skmtl.model_selection.MultiTaskKFold` by default, every task in
every training fold), fast masked scores computed from coefficients (no estimator built), a
fitted estimator for a user's scorer, and the ``cv_results_`` table with the choice of the
best grid point.
"""

import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata
from sklearn.base import is_classifier
from sklearn.exceptions import ConvergenceWarning, UndefinedMetricWarning
from sklearn.model_selection import check_cv
from sklearn.utils.metadata_routing import MetadataRouter, MethodMapping
from sklearn.utils.parallel import Parallel, delayed

from skmtl.base import _column_labels, _row_labels
from skmtl.linear._designs import predict_rows
from skmtl.linear._solver_mean_clustered import _largest_moment_eigenvalue
from skmtl.metrics import get_multitask_scorer
from skmtl.model_selection import MultiTaskKFold
from skmtl.model_selection._folds import check_training_folds, describe_cv, split_params
from skmtl.utils._docstring import SHARED_DOCS, Substitution
from skmtl.utils._sklearn_compat import Interval
from skmtl.utils.validation import (
    _format_tasks,
    check_finite_squares,
    check_groups,
    common_label_dtype,
)


# -- the two data layouts -----------------------------------------------------------------------
class _WideData:
    """Wide data ``(X, Y, mask)``: fold subsets, the splitter's target, test observations."""

    def __init__(self, X, Y, mask, layout, tasks):
        self.X, self.Y, self.mask, self.layout = X, Y, mask, layout
        self.n_tasks = mask.shape[1]
        self.tasks = tasks

    def _kept(self, rows):
        """The tasks the splitter sees: two labels or more on ``rows``."""
        return self.mask[rows].sum(axis=0) >= 2

    def split_args(self, rows=slice(None)):
        if self.layout == "1d":
            return self.Y[rows, 0], {}
        mask = self.mask[rows]
        return np.where(mask, self.Y[rows], np.nan)[:, self._kept(rows)], {}

    def split_tasks(self, rows=slice(None)):
        """The names of the columns of :meth:`split_args`' target, for the splitter's
        messages (the user's, not their positions among the columns kept)."""
        return self.tasks[:1] if self.layout == "1d" else self.tasks[self._kept(rows)]

    def train_counts(self, train):
        return self.mask[train].sum(axis=0)

    def undefined_r2(self, test):
        """The tasks whose R^2 is undefined on the ``test`` rows: fewer than two labels."""
        return self.mask[test].sum(axis=0) < 2

    def row_weight(self, rows=slice(None)):
        """How many labels each row holds (its weight in the feature scales)."""
        return self.mask[rows].sum(axis=1)

    def rows_of(self, tasks):
        return np.flatnonzero(self.mask[:, tasks].any(axis=1))

    def check_finite_squares(self, X, tasks, *, targets):
        """:func:`~skmtl.utils.validation.check_finite_squares` on ``X`` (the features the
        solver sees) and, when ``targets``, the regression targets."""
        check_finite_squares(X, self.Y if targets else None, mask=self.mask, tasks=tasks)

    def fit_args(self, rows=None):
        """``(args, kwargs)`` of a solver ``solve(X, Y, mask, ..., **kwargs)`` on these rows."""
        if rows is None:
            return (self.X, self.Y, self.mask), {}
        return (self.X[rows], self.Y[rows], self.mask[rows]), {}

    def test_fold(self, test):
        return _WideTest(self.X[test], self.Y[test], self.mask[test], self.layout)

    def observations(self):
        rows, tasks = np.nonzero(self.mask)
        return rows, tasks


class _LongData:
    """Long data ``(X, y, task_index)``: nothing of shape (n_samples, n_tasks) is built."""

    def __init__(self, X, y, task_index, tasks):
        self.X, self.y, self.task_index, self.tasks = X, y, task_index, tasks
        self.n_tasks = tasks.shape[0]

    def split_args(self, rows=slice(None)):
        # the user's task labels (sorted as the positions are: the same folds), so that the
        # splitter's warnings name the tasks as the user does
        return self.y[rows], {"task_ids": self.tasks[self.task_index[rows]]}

    def split_tasks(self, rows=slice(None)):
        """None: :meth:`split_args` passes the user's task labels."""
        return None

    def train_counts(self, train):
        return np.bincount(self.task_index[train], minlength=self.n_tasks)

    def undefined_r2(self, test):
        """The tasks whose R^2 is undefined on the ``test`` rows: one label (a task without
        any is not scored there, as by the scorer, which sees the fold's task_ids only)."""
        return np.bincount(self.task_index[test], minlength=self.n_tasks) == 1

    def row_weight(self, rows=slice(None)):
        """One label per row."""
        return np.ones(self.y[rows].shape[0])

    def rows_of(self, tasks):
        return np.flatnonzero(np.isin(self.task_index, tasks))

    def check_finite_squares(self, X, tasks, *, targets):
        """As :meth:`_WideData.check_finite_squares`, one label a row."""
        check_finite_squares(X, self.y if targets else None, task_index=self.task_index,
                             tasks=tasks)

    def fit_args(self, rows=None):
        """``(args, kwargs)`` of a solver ``solve(X, y, None, ..., task_index=, n_tasks=)``."""
        if rows is None:
            return (self.X, self.y, None), {"task_index": self.task_index,
                                            "n_tasks": self.n_tasks}
        return (self.X[rows], self.y[rows], None), {"task_index": self.task_index[rows],
                                                    "n_tasks": self.n_tasks}

    def test_fold(self, test):
        return _LongTest(self.X[test], self.y[test], self.task_index[test], self.tasks)

    def observations(self):
        return np.arange(self.y.shape[0]), self.task_index


class _WideTest:
    """A wide test fold: its labels as the default criterion reads them (``y``, float64
    targets or class codes of the observed ``(rows, tasks)``) and as a scorer does."""

    def __init__(self, X, Y, mask, layout):
        self.X, self.layout = X, layout
        self.rows, self.tasks = np.nonzero(mask)
        self.y = Y[self.rows, self.tasks].astype(np.float64)
        self._Y, self._mask = Y, mask
        self._truth = None  # the scorer's y_true, built at its first call

    def predict(self, W, b):
        return _decision(self.X, W, b)[self.rows, self.tasks]

    def scorer_args(self, classes):
        """``(args, kwargs)`` of ``scorer(estimator, *args, **kwargs)``: the test rows and the
        user's targets, or with ``classes`` (a classifier's, per task) the user's labels
        ``classes[t][code]``, NaN where missing (None unless the labels are floats)."""
        if self._truth is None:
            self._truth = (_wide_labels(self._Y, self._mask, classes) if classes is not None
                           else np.where(self._mask, self._Y, np.nan))
            if self.layout == "1d":
                self._truth = self._truth[:, 0]
        return (self.X, self._truth), {}


class _LongTest:
    """A long test fold: each row's label (``y``, float64 target or class code) and task."""

    def __init__(self, X, y, task_index, tasks):
        self.X, self.y, self.tasks = X, y.astype(np.float64), task_index
        self.task_ids = tasks[task_index]
        self._codes = y
        self._truth = None  # the scorer's y_true, built at its first call

    def predict(self, W, b):
        return predict_rows(self.X, W, b, self.tasks)

    def scorer_args(self, classes):
        """As :meth:`_WideTest.scorer_args`: one target or label a row, with ``task_ids``."""
        if self._truth is None:
            self._truth = (self.y if classes is None
                           else _row_labels(self._codes, self.tasks, classes))
        return (self.X, self._truth), {"task_ids": self.task_ids}


def _wide_labels(codes, mask, classes):
    """The wide matrix of the user's labels, ``classes[t][codes[:, t]]``, missing where
    ``mask`` is False: NaN in a float array for float labels, None in an object array for
    the others (the missing labels :mod:`skmtl.metrics` skips), the labels' own dtype
    where none is missing."""
    dtype = common_label_dtype(classes)
    complete = bool(mask.all())
    if not complete and dtype.kind != "f":
        dtype = np.dtype(object)
    labels = _column_labels(codes, classes, dtype)
    if not complete:
        labels[~mask] = np.nan if dtype.kind == "f" else None
    return labels


def _decision(X, W, b):
    product = X @ W.T
    return (product.toarray() if sp.issparse(product) else np.asarray(product)) + b


# -- scores -------------------------------------------------------------------------------------
def _masked_r2(y, pred, tasks, n_tasks):
    """Mean over tasks of R^2 on a task's observations, as :func:`skmtl.metrics.r2_score`.

    A task with fewer than two observations has no R^2 and is left out; a constant target
    scores 1 if predicted exactly, else 0 (scikit-learn's ``force_finite``). NaN if no task
    has an R^2.
    """
    counts = np.bincount(tasks, minlength=n_tasks)
    mean = np.bincount(tasks, weights=y, minlength=n_tasks) / np.maximum(counts, 1)
    ss_tot = np.bincount(tasks, weights=(y - mean[tasks]) ** 2, minlength=n_tasks)
    ss_res = np.bincount(tasks, weights=(y - pred) ** 2, minlength=n_tasks)
    defined = counts >= 2
    if not defined.any():
        return np.nan
    ss_tot, ss_res = ss_tot[defined], ss_res[defined]
    constant = ss_tot == 0
    r2 = np.where(constant, (ss_res == 0).astype(float),
                  1.0 - ss_res / np.where(constant, 1.0, ss_tot))
    return float(r2.mean())


def _masked_neg_log_loss(y, decision, tasks, n_tasks):
    """Minus the mean over tasks of the binary log loss on a task's observations.

    ``y`` holds class codes in {0, 1} and ``decision`` the logits of class 1. The loss of an
    observation is ``log(1 + exp(-s z))`` with ``s = 2 y - 1``, computed without overflow and
    without clipping the probabilities (scikit-learn's ``log_loss`` clips them at machine
    epsilon: the two agree unless ``|z| > 36``). Tasks without observations are left out.
    """
    losses = np.logaddexp(0.0, -(2.0 * y - 1.0) * decision)
    counts = np.bincount(tasks, minlength=n_tasks)
    seen = counts > 0
    per_task = np.bincount(tasks, weights=losses, minlength=n_tasks)[seen] / counts[seen]
    return -float(per_task.mean())


def _pooled_squared_error(y, pred, tasks, n_tasks):
    """``(-sum of squared errors, number of labels)``: the fold's part of the held-out MSE."""
    return -float(np.sum((y - pred) ** 2)), float(y.shape[0])


def _pooled_log_loss(y, decision, tasks, n_tasks):
    """``(-sum of binary log losses, number of labels)``, codes ``y`` in {0, 1}, logits of
    class 1 (computed without overflow or clipping)."""
    return -float(np.sum(np.logaddexp(0.0, -(2.0 * y - 1.0) * decision))), float(y.shape[0])


# what the default criteria measure, for messages
_DEFAULT_CRITERIA = {_pooled_squared_error: "squared error", _pooled_log_loss: "log loss"}

# scoring names computed from the coefficients (no estimator built), each equal to the scorer
# of that name (``skmtl.metrics.get_multitask_scorer``)
_FAST_SCORES = {"r2": _masked_r2}


def _warn_undefined_r2(data, splits):
    """One UndefinedMetricWarning for ``scoring="r2"`` computed from the coefficients
    (:func:`_masked_r2`), naming the tasks with a single label in some test folds (of wide
    data, also none), whose R^2 is undefined there: the scorer of that name warns at every
    grid point of every fold (1,080 warnings for one fit), this path said nothing."""
    undefined = np.zeros(data.n_tasks, dtype=np.intp)
    for _, test in splits:
        undefined += data.undefined_r2(test)
    if not undefined.any():
        return
    tasks = np.flatnonzero(undefined)
    warnings.warn(
        f"scoring='r2': R^2 is undefined for task(s) {_format_tasks(data.tasks[tasks])} in "
        f"{int(undefined.max())} of {len(splits)} test folds (fewer than two of their labels "
        "there); a fold's score is the mean over its other tasks, as skmtl.metrics.r2_score "
        "leaves an undefined task out of its average.", UndefinedMetricWarning, stacklevel=4)


def _check_scoring(scoring):
    """A scorer callable (or None for the estimator's built-in score) from ``scoring``."""
    if isinstance(scoring, str):
        return _FAST_SCORES.get(scoring) or get_multitask_scorer(scoring)
    return scoring


def _fold_score(fold, W, b, n_tasks, scorer, default, make_estimator):
    """Test score of ``(W, b)`` on ``fold``, as ``(value, weight)``.

    ``scorer`` None: ``default(y, decision, tasks, n_tasks)`` from the coefficients, itself a
    ``(value, weight)`` pair (a sum over the fold's labels and their number: the split score
    is ``value / weight`` and the mean over folds weighs every label the same). A fast score
    of :data:`_FAST_SCORES`: its value, weight 1. Else ``scorer`` called on
    ``make_estimator(W, b)`` with the fold's rows and the user's targets or labels (a
    classifier's class codes decoded with its ``classes_``), weight 1.

    A fold without any test label (wide rows with no label, which a splitter may put
    together) has no score, whatever the criterion: ``(NaN, 0)``, left out of the mean
    (:func:`_cv_results`); a scorer is not called on it.
    """
    if fold.y.shape[0] == 0:
        return np.nan, 0.0
    if scorer is None:
        return default(fold.y, fold.predict(W, b), fold.tasks, n_tasks)
    if scorer in _FAST_SCORES.values():
        return scorer(fold.y, fold.predict(W, b), fold.tasks, n_tasks), 1.0
    estimator = make_estimator(W, b)
    classes = estimator._task_classes if is_classifier(estimator) else None
    args, kwargs = fold.scorer_args(classes)
    return scorer(estimator, *args, **kwargs), 1.0


def _as_fitted(estimator, source, W, b):
    """``estimator`` fitted with ``coef_ = W``, ``intercept_ = b`` and ``source``'s task and
    feature attributes, as if fitted on ``source``'s data (for a scorer)."""
    estimator.coef_, estimator.intercept_ = W, b
    for name in ("tasks_", "n_tasks_", "n_features_in_", "feature_names_in_", "classes_",
                 "_layout"):
        if hasattr(source, name):
            setattr(estimator, name, getattr(source, name))
    return estimator


# -- folds --------------------------------------------------------------------------------------
def _multitask_kfold_splits(X, data, splitter):
    """MultiTaskKFold's splits, with the rows of single-label tasks in every training fold.

    A task with one label cannot keep a training label in every fold and also be tested; such
    a task (common in the training part of an outer cross-validation) is only trained on.
    """
    single = np.flatnonzero(data.train_counts(slice(None)) < 2)
    # (splitter._split: split, naming wide data's tasks as the user does)
    if single.size == 0:
        y_split, params = data.split_args()
        return list(splitter._split(X, y_split, tasks=data.split_tasks(), **params))
    always = data.rows_of(single)
    rest = np.setdiff1d(np.arange(X.shape[0]), always)
    if rest.size < splitter.n_splits:
        raise ValueError(
            f"Cannot cross-validate with n_splits={splitter.n_splits}: only {rest.size} of "
            f"n_samples={X.shape[0]} rows are labels of tasks with two or more labels (a task "
            "with one label is only trained on)."
        )
    y_split, params = data.split_args(rest)
    return [(np.sort(np.concatenate([rest[train], always])), rest[test])
            for train, test in splitter._split(X[rest], y_split, tasks=data.split_tasks(rest),
                                               **params)]


def _cv_splits(cv, X, data, tasks, *, classification, groups=None):
    """The ``(train, test)`` index pairs of ``cv``; every training fold must see every task.

    An int (or None: 5) is the number of folds of a MultiTaskKFold (stratified on the
    classes of each task when ``classification``); any other ``cv`` goes through
    :func:`~sklearn.model_selection.check_cv` and gets ``task_ids`` for long data when its
    ``split`` accepts it, and ``groups`` (one per row of X) when it splits by groups.
    """
    multitask_kfold = cv is None or isinstance(cv, Integral)
    described = describe_cv(cv, multitask_kfold=multitask_kfold)
    if groups is not None:
        groups = check_groups(groups, X.shape[0])
    if multitask_kfold:
        if groups is not None:  # the error of a splitter that ignores groups
            split_params(MultiTaskKFold(), described, groups=groups)
        splits = _multitask_kfold_splits(
            X, data, MultiTaskKFold(5 if cv is None else cv, classification=classification))
    else:
        splitter = check_cv(cv)
        y_split, params = data.split_args()
        params = split_params(splitter, described, task_ids=params.get("task_ids"),
                              groups=groups, routed=_ROUTED)
        if isinstance(splitter, MultiTaskKFold):  # its messages name the tasks as the user does
            folds = splitter._split(X, y_split, tasks=data.split_tasks(), **params)
        else:
            folds = splitter.split(X, y_split, **params)
        splits = [(np.asarray(train), np.asarray(test)) for train, test in folds]
    check_training_folds(splits, data.train_counts, tasks, described)
    return splits


# how groups reach a *CV estimator's fit inside a search or cross_validate
_ROUTED = (" In GridSearchCV or cross_validate, groups reach the estimator's fit with metadata "
           "routing: sklearn.set_config(enable_metadata_routing=True).")


class _GroupsFitMixin:
    """``fit(X, y, task_ids=, groups=)``: the groups of the rows for a group splitter as
    ``cv``, and metadata routing that passes a search's ``groups`` to ``fit`` when ``cv``
    requests them (as scikit-learn's ``LassoCV`` does)."""

    __metadata_request__fit = {"groups": False}
    _groups = None  # fit's groups, read by _splits while it runs

    @Substitution(**SHARED_DOCS)
    def fit(self, X, y, *, task_ids=None, groups=None):
        """Fit the model, its regularisation chosen by cross-validation on ``cv``'s folds.

        Parameters
        ----------
        {fit_data}
        groups : array-like of shape (n_samples,), default=None
            The group of each row (a molecule's scaffold; a sample's id in long data), for a
            group splitter as ``cv`` (:class:`~skmtl.model_selection.MultiTaskGroupKFold`,
            :class:`~sklearn.model_selection.GroupKFold`, ...), which keeps each group in one
            fold; an error with any other ``cv``. With metadata routing enabled, a search or
            ``cross_validate`` passes its ``groups`` here when ``cv`` requests them.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self._groups = groups
        try:
            return super().fit(X, y, task_ids=task_ids)
        except _UndefinedScores as error:
            raise ValueError(self._undefined_scores_message(error.no_label)) from None
        finally:
            del self._groups

    def _undefined_scores_message(self, no_label):
        """The error of a fit where every grid point's mean test score is NaN, naming the
        criterion (the default one, or ``scoring``) and why it is undefined."""
        if self.scoring is None:
            criterion = (f"the default criterion, minus the held-out "
                         f"{_DEFAULT_CRITERIA[self._default_score]} pooled over all test labels")
        else:
            criterion = f"scoring={self.scoring!r}"
        if no_label:
            why = "no test fold holds a label. Pass a cv whose test folds hold labels."
        elif isinstance(self.scoring, str) and self.scoring == "r2":
            why = ("no test fold held a task with two or more labels (R^2 needs two). Use "
                   "fewer folds.")
        else:
            why = ("the scorer returned NaN on a test fold at every grid point (a NaN split "
                   "score makes the grid point's mean NaN, as in GridSearchCV). Use fewer "
                   "folds, or another scoring.")
        return (f"Every grid point has an undefined (NaN) cross-validated score "
                f"({criterion}): {why}")

    def get_metadata_routing(self):
        """Get metadata routing of this object: ``fit``'s own request (``task_ids``) and the
        parameters ``cv``'s ``split`` requests (``groups`` for a group splitter).

        Returns
        -------
        routing : MetadataRouter
            A :class:`~sklearn.utils.metadata_routing.MetadataRouter` encapsulating routing
            information.
        """
        router = MetadataRouter(owner=self).add_self_request(self)
        if self.cv is not None and not isinstance(self.cv, Integral) and not hasattr(
                self.cv, "split"):
            return router  # folds given as an iterable: nothing to route (nor to consume)
        splitter = MultiTaskKFold() if not hasattr(self.cv, "split") else self.cv
        return router.add(splitter=splitter,
                          method_mapping=MethodMapping().add(caller="fit", callee="split"))

    def _splits(self, X, data):
        splits = _cv_splits(self.cv, X, data, self.tasks_, classification=is_classifier(self),
                            groups=self._groups)
        if isinstance(self.scoring, str) and self.scoring in _FAST_SCORES:
            _warn_undefined_r2(data, splits)
        return splits


# -- results ------------------------------------------------------------------------------------
def _positive(values, name):
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0 or not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(f"{name} must be a non-empty list of finite numbers > 0; got {values}.")
    return values


class _UndefinedScores(ValueError):
    """Every grid point has a NaN mean test score (:func:`_cv_results`); the estimator's fit
    reraises it naming its criterion (:meth:`_GroupsFitMixin.fit`). ``no_label``: because no
    test fold holds a label."""

    def __init__(self, no_label):
        super().__init__("Every grid point has an undefined (NaN) cross-validated score.")
        self.no_label = no_label


def _cv_results(scores, params, weights=None):
    """GridSearchCV's ``cv_results_`` and the index of the best grid point.

    ``scores`` has shape (n_splits, n_points); ``params`` maps each parameter name to its
    value at each grid point. ``weights`` (same shape, default all 1): the mean test score is
    the weighted mean of the split scores (the number of test labels of each split for a
    pooled criterion, so that it is the criterion over the test labels of all folds
    together). A split of weight 0 (a test fold without any label) has no score: it keeps
    its NaN in ``split{k}_test_score`` and is left out of the mean and the standard deviation.
    Any other NaN split score makes its grid point's mean NaN, as in GridSearchCV. The best
    point is the first of the highest mean test score (as GridSearchCV); a NaN mean ranks
    last; :class:`_UndefinedScores` if every mean is NaN.
    """
    n_splits = scores.shape[0]
    if weights is None:
        weights = np.ones_like(scores)
    scored = weights > 0
    if not scored.any():
        raise _UndefinedScores(no_label=True)
    total, count = np.sum(weights, axis=0), np.sum(scored, axis=0)
    undefined = np.full(scores.shape[1], np.nan)
    mean = np.divide(np.sum(np.where(scored, scores * weights, 0.0), axis=0), total,
                     out=undefined.copy(), where=total > 0)
    plain = np.divide(np.sum(np.where(scored, scores, 0.0), axis=0), count,
                      out=undefined.copy(), where=count > 0)
    std = np.sqrt(np.divide(np.sum(np.where(scored, (scores - plain) ** 2, 0.0), axis=0),
                            count, out=undefined.copy(), where=count > 0))
    if np.isnan(mean).all():
        raise _UndefinedScores(no_label=False)
    ranked = np.where(np.isnan(mean), -np.inf, mean)  # NaN: worst
    rank = rankdata(-ranked, method="min").astype(np.int32)  # ties share the best rank
    best = int(np.argmax(ranked))  # the first of the best, as GridSearchCV
    results = {f"param_{name}": np.asarray(values) for name, values in params.items()}
    results["params"] = [{name: float(values[i]) for name, values in params.items()}
                         for i in range(mean.shape[0])]
    for k in range(n_splits):
        results[f"split{k}_test_score"] = scores[k]
    results.update(mean_test_score=mean, std_test_score=std, rank_test_score=rank)
    return results, best


# -- grid edges -----------------------------------------------------------------------------------
class GridEdgeWarning(ConvergenceWarning):
    """The cross-validated optimum of a parameter is at an edge of the grid tried.

    Raised by the linear ``*CV`` estimators when the best value of ``alpha`` or
    ``cluster_strength`` is the largest or smallest of the grid and the score still improves
    towards it: the optimum may lie beyond. A default grid is first extended (a bounded number
    of times); a grid the user passed is not. A subclass of
    :class:`~sklearn.exceptions.ConvergenceWarning` (the search has not converged).
    """


# At most this many rounds of extension of a default grid.
MAX_EXTENSIONS = 3
# An edge whose best score beats the best of the rest of the grid by less than this (relative)
# is a plateau: the model's limit there (e.g. all tasks pooled, or along a valley of equal
# models), not an optimum beyond the grid.
_PLATEAU = 1e-4


def edge_of(means, best, axis, n_values):
    """Which edge of ``axis`` (0 or 1 of a (n_0, n_1) grid of mean scores) holds the best
    point while improving on the rest of the grid: ``"first"``, ``"last"`` or None (inside,
    a one-value axis, or a plateau: dropping that edge's slice loses less than ``_PLATEAU``).
    """
    if n_values < 2:
        return None
    index = np.unravel_index(best, means.shape)
    position = index[axis]
    if position not in (0, n_values - 1):
        return None
    gain = means[index] - np.max(np.delete(means, position, axis=axis))
    # relative throughout: an absolute floor hid every edge of scores in small units (a
    # held-out MSE of 1e-12 for targets of 1e-6)
    finite = np.abs(means[np.isfinite(means)])
    if not gain > _PLATEAU * abs(means[index]) + 1e-12 * finite.max(initial=0.0):
        return None
    return "first" if position == 0 else "last"


def flat_grid(means):
    """Whether the finite mean scores of a grid (two or more) all lie within ``_PLATEAU``
    (relative) of the best: a grid whose values are all in one of the model's limits."""
    finite = means[np.isfinite(means)]
    if finite.size < 2:
        return False
    spread = finite.max() - finite.min()
    return bool(spread <= _PLATEAU * abs(finite.max()) + 1e-12 * np.abs(finite).max())


def warn_flat(names, grids):
    """Warn that the grid passed of each parameter of ``names`` (its values ``grids``) scores
    the same everywhere (:func:`flat_grid`)."""
    passed = ", ".join(f"{name} from {np.min(values):.4g} to {np.max(values):.4g}"
                       for name, values in zip(names, grids))
    warnings.warn(
        f"The cross-validated score is the same, to a relative {_PLATEAU:g}, at every point of "
        f"the grid passed ({passed}): its values may all lie where the model no longer "
        f"changes (coefficients shrunk all the way, or no regularisation left), and the "
        f"optimum elsewhere. Pass a grid reaching further, or None for the default grid.",
        GridEdgeWarning, stacklevel=4,
    )


def warn_edge(name, value, values, *, extended):
    """Warn that parameter ``name`` is at an edge of its grid (``values``)."""
    side = "largest" if value == np.max(values) else "smallest"
    how = (f"after extending the default grid {MAX_EXTENSIONS} times"
           if extended else "of the grid passed")
    warnings.warn(
        f"The best {name} ({value:.4g}) is the {side} value tried ({how}) and the "
        f"cross-validated score still improves towards it: the optimum may lie beyond. "
        f"Pass a grid of {name} values reaching further.",
        GridEdgeWarning, stacklevel=4,
    )


def extend_geometric(alphas, edge):
    """A decreasing geometric grid grown by one decade beyond its ``"first"`` (largest) or
    ``"last"`` (smallest) value, with its own ratio."""
    ratio = alphas[0] / alphas[1]
    # (a ratio of 10^(1/2) up to rounding is two steps a decade, not three)
    n_new = int(np.ceil(np.log(10.0) / np.log(ratio) - 1e-9))
    steps = ratio ** np.arange(1, n_new + 1)
    if edge == "first":
        return np.concatenate([(alphas[0] * steps)[::-1], alphas])
    return np.concatenate([alphas, alphas[-1] / steps])


# -- the units-free default grid ------------------------------------------------------------------
# At the largest default alpha, the weakest curvature of the penalty is this many times the
# largest curvature of the average task's loss.
ALPHA_MAX_RATIO = 10.0


def curvature_alphas(estimator, data, X, weakest):
    """The default grid of alphas of a quadratic-like penalty, from the scaled data ``X``.

    ``n_alphas`` values log-spaced from ``alpha_max`` down to ``eps * alpha_max``: at
    ``alpha_max`` the penalty's weakest curvature, ``weakest * alpha``, is
    :data:`ALPHA_MAX_RATIO` times the largest curvature of the average task's loss,
    ``estimator._curvature`` (1 for least squares, 1 / 4 for the logistic loss) times the
    largest eigenvalue of the tasks' mean (per-task centred when ``fit_intercept``) second
    moments.
    """
    e_max = _largest_moment_eigenvalue(X, *data.observations(), data.n_tasks,
                                       estimator.fit_intercept)
    alpha_max = ALPHA_MAX_RATIO * estimator._curvature * e_max / weakest
    return np.geomspace(alpha_max, estimator.eps * alpha_max, estimator.n_alphas)


# -- one alpha along a path ---------------------------------------------------------------------
def _alpha_path_scores(estimator, data, train, test, alphas, scorer):
    """``(n_alphas, 2)`` of (value, weight): one training fold's test scores along ``alphas``."""
    (X, Y, mask), kwargs = data.fit_args(train)
    X, scale = estimator._scaled(X, data.row_weight(train))
    solve = estimator._path(X, Y, mask, kwargs)
    fold = data.test_fold(test)
    out = np.empty((len(alphas), 2))
    for k, alpha in enumerate(alphas):
        W, b = solve(alpha)
        W = W if scale is None else W / scale
        out[k] = _fold_score(fold, W, b, data.n_tasks, scorer, estimator._default_score,
                             lambda W, b, alpha=alpha: estimator._fitted(alpha, W, b))
    return out


def alpha_cv_constraints(model_constraints):
    """The ``_parameter_constraints`` of a model's alpha search: the model's without ``alpha``,
    with those of the grid and of the search."""
    return {
        **{name: constraint for name, constraint in model_constraints.items()
           if name != "alpha"},
        "alphas": ["array-like", None],
        "n_alphas": [Interval(Integral, 1, None, closed="left")],
        "eps": [Interval(Real, 0, 1, closed="right")],
        "cv": ["cv_object"],
        "scoring": [None, str, callable],
        "n_jobs": [None, Integral],
    }


class _AlphaPathCVMixin(_GroupsFitMixin):
    """``alpha`` chosen by cross-validation, the model's other parameters fixed.

    Wide or long data are wrapped for the folds; the grid is the given one or the units-free
    default (:func:`curvature_alphas`), extended by a decade while its optimum is at an edge
    (at most :data:`MAX_EXTENSIONS` times); each training fold fits the grid in decreasing
    order; ``cv_results_``, ``alpha_``, ``best_score_`` and ``alphas_`` are set and the best
    alpha is refitted on all the data. Left of the fixed-alpha model's mixin (``_scaled``).
    Each estimator defines (and may define ``_check_fixed``):

    - ``_model``: the fixed-alpha estimator (a scorer's fitted model);
    - ``_default_score``: the pooled criterion, (value, weight) per fold;
    - ``_curvature``: the loss's largest curvature per unit of ``x w``;
    - ``_weakest_curvature(n_tasks)``: the penalty's weakest curvature per unit of alpha;
    - ``_path(X, Y, mask, kwargs)``: ``alpha -> (W, b)`` on one (scaled) training set, fitted
      in decreasing order of alpha (so it may warm-start);
    - ``_refit(args, kwargs, scale)``: the fit at ``alpha_`` on all the (scaled) data.
    """

    _model = None
    _default_score = None
    _curvature = 1.0

    def _fit_multitask(self, X, Y, mask):
        self._fit_cv(X, _WideData(X, Y, mask, self._layout, self.tasks_))

    def _fit_long(self, X, y, task_index):
        self._fit_cv(X, _LongData(X, y, task_index, self.tasks_))

    def _check_fixed(self):
        """Checks of the fixed parameters beyond ``_parameter_constraints`` (none by default)."""

    def _fit_cv(self, X, data):
        self._check_fixed()
        classification = is_classifier(self)
        X_all, scale = self._scaled(X, data.row_weight())
        data.check_finite_squares(X_all, self.tasks_, targets=not classification)
        default = self.alphas is None
        alphas = (curvature_alphas(self, data, X_all, self._weakest_curvature(data.n_tasks))
                  if default else np.unique(_positive(self.alphas, "alphas"))[::-1])
        scorer = _check_scoring(self.scoring)
        splits = self._splits(X, data)
        cache = {}  # alpha -> (n_splits, 2) of (value, weight)
        for extension in range(MAX_EXTENSIONS + 1):
            new = [alpha for alpha in alphas if alpha not in cache]
            if new:
                results = Parallel(n_jobs=self.n_jobs)(
                    delayed(_alpha_path_scores)(self, data, train, test, new, scorer)
                    for train, test in splits)
                for k, alpha in enumerate(new):
                    cache[alpha] = np.array([out[k] for out in results])
            values = np.stack([cache[alpha] for alpha in alphas], axis=1)
            self.cv_results_, best = _cv_results(values[..., 0] / values[..., 1],
                                                 {"alpha": alphas}, values[..., 1])
            means = self.cv_results_["mean_test_score"]
            edge = edge_of(np.where(np.isnan(means), -np.inf, means), best, 0, alphas.size)
            if edge is None or not default or extension == MAX_EXTENSIONS:
                break
            alphas = extend_geometric(alphas, edge)
        self.alpha_ = float(alphas[best])
        self.best_score_ = float(self.cv_results_["mean_test_score"][best])
        self.alphas_ = alphas
        if edge is not None:
            warn_edge("alpha", self.alpha_, alphas, extended=default)
        elif not default and flat_grid(means):
            warn_flat(["alpha"], [alphas])
        args, kwargs = data.fit_args()
        self._refit((X_all,) + args[1:], kwargs, scale)

    def _fitted(self, alpha, W, b):
        """A fitted fixed-alpha model with these coefficients, for a scorer."""
        model = self._model()
        shared = {name: value for name, value in self.get_params(deep=False).items()
                  if name in model.get_params(deep=False)}
        return _as_fitted(model.set_params(**shared, alpha=alpha), self, W, b)
