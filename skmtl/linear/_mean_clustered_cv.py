"""Mean-clustered multi-task ridge, ``alpha`` and ``cluster_strength`` chosen by cross-validation.

Each training fold is decomposed once (:class:`MeanClusteredLeastSquares`); every point of the
``(alpha, cluster_strength)`` grid is then a few matrix products on that decomposition, and its
test score is computed from the coefficients directly (no estimator is refitted).
"""

from inspect import signature
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from scipy.stats import rankdata
from sklearn.base import BaseEstimator
from sklearn.model_selection import check_cv

from skmtl.base import MultiTaskRegressorMixin
from skmtl.linear._mean_clustered import (
    MeanClusteredLeastSquares,
    MeanClusteredRegressor,
    _MeanClusteredMixin,
    _predict_rows,
    solve_mean_clustered,
)
from skmtl.metrics import get_multitask_scorer
from skmtl.model_selection import MultiTaskKFold
from skmtl.utils._sklearn_compat import Interval
from skmtl.utils.validation import _format_tasks

__all__ = ["MeanClusteredRegressorCV"]

# At the largest default alpha, the weakest curvature of the penalty, 2 alpha min(1, c) / T,
# is this many times the largest eigenvalue of the average task's (centred) second moments.
_ALPHA_MAX_RATIO = 10.0


# -- the two data layouts -----------------------------------------------------------------------
class _WideData:
    """Wide data ``(X, Y, mask)``: fold subsets, the splitter's target, test observations."""

    def __init__(self, X, Y, mask, layout):
        self.X, self.Y, self.mask, self.layout = X, Y, mask, layout
        self.n_tasks = mask.shape[1]

    def split_args(self, rows=slice(None)):
        if self.layout == "1d":
            return self.Y[rows, 0], {}
        mask = self.mask[rows]
        keep = mask.sum(axis=0) >= 2  # the splitter needs two labels per task it sees
        return np.where(mask, self.Y[rows], np.nan)[:, keep], {}

    def train_counts(self, train):
        return self.mask[train].sum(axis=0)

    def rows_of(self, tasks):
        return np.flatnonzero(self.mask[:, tasks].any(axis=1))

    def path(self, train, fit_intercept):
        return MeanClusteredLeastSquares(self.X[train], self.Y[train], self.mask[train],
                                         fit_intercept=fit_intercept)

    def test_fold(self, test):
        return _WideTest(self.X[test], self.Y[test], self.mask[test], self.layout)

    def refit(self, alpha, cluster_strength, fit_intercept):
        return solve_mean_clustered(self.X, self.Y, self.mask, alpha, cluster_strength,
                                    fit_intercept=fit_intercept)

    def observations(self):
        rows, tasks = np.nonzero(self.mask)
        return rows, tasks


class _LongData:
    """Long data ``(X, y, task_index)``: nothing of shape (n_samples, n_tasks) is built."""

    def __init__(self, X, y, task_index, tasks):
        self.X, self.y, self.task_index, self.tasks = X, y, task_index, tasks
        self.n_tasks = tasks.shape[0]

    def split_args(self, rows=slice(None)):
        return self.y[rows], {"task_ids": self.task_index[rows]}

    def train_counts(self, train):
        return np.bincount(self.task_index[train], minlength=self.n_tasks)

    def rows_of(self, tasks):
        return np.flatnonzero(np.isin(self.task_index, tasks))

    def path(self, train, fit_intercept):
        return MeanClusteredLeastSquares(self.X[train], self.y[train], fit_intercept=fit_intercept,
                                         task_index=self.task_index[train],
                                         n_tasks=self.n_tasks)

    def test_fold(self, test):
        return _LongTest(self.X[test], self.y[test], self.task_index[test], self.tasks)

    def refit(self, alpha, cluster_strength, fit_intercept):
        return solve_mean_clustered(self.X, self.y, None, alpha, cluster_strength,
                                    fit_intercept=fit_intercept, task_index=self.task_index,
                                    n_tasks=self.n_tasks)

    def observations(self):
        return np.arange(self.y.shape[0]), self.task_index


class _WideTest:
    def __init__(self, X, Y, mask, layout):
        self.X, self.layout = X, layout
        self.rows, self.tasks = np.nonzero(mask)
        self.y = Y[self.rows, self.tasks].astype(np.float64)
        self.Y = Y[:, 0] if layout == "1d" else np.where(mask, Y, np.nan)

    def predict(self, W, b):
        return _decision(self.X, W, b)[self.rows, self.tasks]

    def scorer_args(self):
        return (self.X, self.Y), {}


class _LongTest:
    def __init__(self, X, y, task_index, tasks):
        self.X, self.y, self.tasks = X, y.astype(np.float64), task_index
        self.task_ids = tasks[task_index]

    def predict(self, W, b):
        return _predict_rows(self.X, W, b, self.tasks)

    def scorer_args(self):
        return (self.X, self.y), {"task_ids": self.task_ids}


def _decision(X, W, b):
    product = X @ W.T
    return (product.toarray() if sp.issparse(product) else np.asarray(product)) + b


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


def _fold_scores(data, train, test, alphas, cluster_strengths, fit_intercept, scorer, fitted):
    """Test scores of one fold for the whole grid, shape (n_alphas, n_cluster_strengths)."""
    path = data.path(train, fit_intercept)
    fold = data.test_fold(test)
    scores = np.empty((len(alphas), len(cluster_strengths)))
    for i, alpha in enumerate(alphas):
        for j, cluster_strength in enumerate(cluster_strengths):
            W, b = path.solve(alpha, cluster_strength)
            if scorer is None:
                scores[i, j] = _masked_r2(fold.y, fold.predict(W, b), fold.tasks,
                                          data.n_tasks)
            else:
                estimator = fitted(alpha, cluster_strength, W, b)
                args, kwargs = fold.scorer_args()
                scores[i, j] = scorer(estimator, *args, **kwargs)
    return scores


def _multitask_kfold_splits(X, data, splitter):
    """MultiTaskKFold's splits, with the rows of single-label tasks in every training fold.

    A task with one label cannot keep a training label in every fold and also be tested; such
    a task (common in the training part of an outer cross-validation) is only trained on.
    """
    single = np.flatnonzero(data.train_counts(slice(None)) < 2)
    if single.size == 0:
        y_split, params = data.split_args()
        return list(splitter.split(X, y_split, **params))
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
            for train, test in splitter.split(X[rest], y_split, **params)]


def _accepts_task_ids(splitter):
    try:
        parameters = signature(splitter.split).parameters
    except (TypeError, ValueError):
        return False
    return "task_ids" in parameters


class MeanClusteredRegressorCV(_MeanClusteredMixin, MultiTaskRegressorMixin, BaseEstimator):
    r"""Mean-clustered multi-task ridge with ``alpha`` and ``cluster_strength`` chosen by CV.

    Fits :class:`MeanClusteredRegressor`, which minimises::

        sum_t 1 / (2 n_t) * ||y_t - X_t w_t - b_t||^2_2
        + alpha * (||w_bar||^2_2 + cluster_strength / T * sum_t ||w_t - w_bar||^2_2)

    over the grid ``alphas x cluster_strengths``, scores every grid point on the test folds of
    ``cv`` and refits the best point on all the data.

    Parameters
    ----------
    alphas : array-like of shape (n_alphas,), default=None
        Regularisation strengths to try, all > 0 (used in decreasing order). None: a grid of
        ``n_alphas`` values, log-spaced from ``alpha_max`` down to ``eps * alpha_max``; see
        Notes.
    n_alphas : int, default=20
        Number of alphas of the default grid.
    eps : float, default=1e-3
        ``alpha_min / alpha_max`` of the default grid, in (0, 1].
    cluster_strengths : array-like, default=(0.5, 1.0, 2.0, 5.0, 10.0)
        Values of ``cluster_strength`` to try, all > 0 (1: independent ridge per task; larger:
        tasks pulled together).
    cv : int, cross-validation generator, iterable or None, default=5
        An int is the number of folds of a :class:`~skmtl.model_selection.MultiTaskKFold`
        (every task keeps labels in every training fold; ``classification=False``); None
        means 5. The rows of a task with a single label stay in every training fold of that
        splitter (such a task cannot be both trained on in every fold and tested). A
        splitter gets ``task_ids`` (each row's task position) for long data when its
        ``split`` accepts it. Every training fold must hold a label of every task.
    fit_intercept : bool, default=True
        Fit an unpenalised intercept per task.
    scoring : str, callable or None, default=None
        None: the masked mean R^2 over tasks, as :func:`skmtl.metrics.r2_score` (a task with
        fewer than two labels in a test fold is left out of that fold's mean). A str names a
        multi-task scorer (:func:`skmtl.metrics.get_multitask_scorer`). A callable is called
        as ``scoring(estimator, X_test, y_test)`` for wide data and
        ``scoring(estimator, X_test, y_test, task_ids=task_ids_test)`` for long data, with a
        fitted :class:`MeanClusteredRegressor`, like a scorer in a search object; greater is
        better.
    n_jobs : int, default=None
        Number of folds evaluated in parallel with joblib. ``None`` means 1 unless in a
        :func:`joblib.parallel_config` context; ``-1`` uses all processors.

    Attributes
    ----------
    alpha_ : float
        The chosen alpha.
    cluster_strength_ : float
        The chosen cluster_strength.
    alphas_ : ndarray of shape (n_alphas,)
        The alphas tried, decreasing.
    cv_results_ : dict of ndarray
        One entry per grid point, alpha-major (``alphas_`` order) with ``cluster_strengths``
        varying fastest, as :class:`~sklearn.model_selection.GridSearchCV` orders
        ``{"alpha": ..., "cluster_strength": ...}``: ``param_alpha``,
        ``param_cluster_strength``, ``params`` (list of dicts), ``split{k}_test_score``,
        ``mean_test_score``, ``std_test_score`` and ``rank_test_score``. Load it with
        ``pandas.DataFrame(cv_results_)``.
    best_score_ : float
        Mean test score of the chosen grid point.
    coef_ : ndarray of shape (n_tasks, n_features)
        Coefficients refitted on all the data with ``alpha_`` and ``cluster_strength_``.
    intercept_ : ndarray of shape (n_tasks,)
        Intercepts of the refit.
    tasks_ : ndarray of shape (n_tasks,)
        Task labels.
    n_tasks_ : int
        Number of tasks.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    MeanClusteredRegressor : The model, for fixed parameters.
    skmtl.model_selection.MultiTaskKFold : The default splitter.

    Notes
    -----
    **Default alphas.** With ``e_max`` the largest eigenvalue of the average over tasks of the
    (per-task centred, when ``fit_intercept``) second moments ``X_t^T X_t / n_t``, computed on
    all the data, and ``c_min`` the smallest cluster strength tried::

        alpha_max = 10 * T * e_max / (2 * min(1, c_min))

    At ``alpha_max`` the penalty's weakest curvature, ``2 alpha min(1, c) / T``, is ten times
    the largest curvature of the average task's loss, so every grid point's fitted values stay
    within about 10 % of their least-squares spread around the intercepts: the largest useful
    alpha. The grid goes down to ``eps * alpha_max``, where the same direction is barely
    shrunk (curvature ratio ``10 * eps``). If X is constant within every task, ``e_max = 1``.

    **Cost.** Per fold, one decomposition of the training data: one SVD of X when all tasks
    observe the same rows, else one eigendecomposition per task (``O(sum_t n_t d^2 + T d^3)``);
    then each grid point costs ``O(T d^2)`` (shared rows) or ``O(T d^3)`` matrix products,
    plus the test predictions. So the whole grid costs about one fit per fold, plus the refit.
    With a ``scoring`` callable, each grid point also builds a fitted estimator and calls it.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.linear import MeanClusteredRegressorCV
    >>> rng = np.random.default_rng(0)
    >>> task_ids = np.repeat(np.arange(8), 30)
    >>> X = rng.normal(size=(240, 3))
    >>> W = np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=(8, 3))  # similar tasks
    >>> y = np.einsum("ij,ij->i", X, W[task_ids]) + 0.5 * rng.normal(size=240)
    >>> model = MeanClusteredRegressorCV(n_alphas=10).fit(X, y, task_ids=task_ids)
    >>> model.cluster_strength_, model.alphas_.shape
    (10.0, (10,))
    >>> bool(model.best_score_ > 0.9)
    True
    >>> model.predict(X[:2], task_ids=[0, 7]).shape
    (2,)
    """

    _parameter_constraints = {
        "alphas": ["array-like", None],
        "n_alphas": [Interval(Integral, 1, None, closed="left")],
        "eps": [Interval(Real, 0, 1, closed="right")],
        "cluster_strengths": ["array-like"],
        "cv": ["cv_object"],
        "fit_intercept": ["boolean"],
        "scoring": [None, str, callable],
        "n_jobs": [None, Integral],
    }

    def __init__(self, *, alphas=None, n_alphas=20, eps=1e-3,
                 cluster_strengths=(0.5, 1.0, 2.0, 5.0, 10.0), cv=5, fit_intercept=True,
                 scoring=None, n_jobs=None):
        self.alphas = alphas
        self.n_alphas = n_alphas
        self.eps = eps
        self.cluster_strengths = cluster_strengths
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.scoring = scoring
        self.n_jobs = n_jobs

    # -- fit ----------------------------------------------------------------------------------
    def _fit_multitask(self, X, Y, mask):
        self._fit_cv(X, _WideData(X, Y, mask, self._layout))

    def _fit_long(self, X, y, task_index):
        self._fit_cv(X, _LongData(X, y, task_index, self.tasks_))

    def _fit_cv(self, X, data):
        cluster_strengths = _positive(self.cluster_strengths, "cluster_strengths")
        self.alphas_ = (np.sort(_positive(self.alphas, "alphas"))[::-1]
                        if self.alphas is not None else self._default_alphas(data,
                                                                             cluster_strengths))
        scorer = (get_multitask_scorer(self.scoring) if isinstance(self.scoring, str)
                  else self.scoring)
        splits = self._splits(X, data)
        jobs = (delayed(_fold_scores)(data, train, test, self.alphas_, cluster_strengths,
                                      self.fit_intercept, scorer, self._fitted)
                for train, test in splits)
        scores = np.stack(Parallel(n_jobs=self.n_jobs)(jobs))  # (n_splits, n_alphas, n_c)
        self._store_results(scores, cluster_strengths)
        self.coef_, self.intercept_ = data.refit(self.alpha_, self.cluster_strength_,
                                                 self.fit_intercept)

    def _splits(self, X, data):
        if self.cv is None or isinstance(self.cv, Integral):
            splits = _multitask_kfold_splits(
                X, data, MultiTaskKFold(5 if self.cv is None else self.cv, classification=False))
        else:
            splitter = check_cv(self.cv)
            y_split, params = data.split_args()
            if not _accepts_task_ids(splitter):
                params = {}
            splits = [(np.asarray(train), np.asarray(test))
                      for train, test in splitter.split(X, y_split, **params)]
        for k, (train, _) in enumerate(splits):
            missing = data.train_counts(train) == 0
            if missing.any():
                raise ValueError(
                    f"Training fold {k} of cv has no label of task(s) "
                    f"{_format_tasks(self.tasks_[missing])}; every training fold must observe "
                    "every task. Use cv=int or skmtl.model_selection.MultiTaskKFold."
                )
        return splits

    def _default_alphas(self, data, cluster_strengths):
        e_max = _largest_moment_eigenvalue(data.X, *data.observations(), data.n_tasks,
                                           self.fit_intercept)
        alpha_max = (_ALPHA_MAX_RATIO * data.n_tasks * e_max
                     / (2.0 * min(1.0, cluster_strengths.min())))
        return np.geomspace(alpha_max, self.eps * alpha_max, self.n_alphas)

    def _fitted(self, alpha, cluster_strength, W, b):
        """A fitted MeanClusteredRegressor with these coefficients, for a scorer."""
        estimator = MeanClusteredRegressor(alpha=alpha, cluster_strength=cluster_strength,
                                           fit_intercept=self.fit_intercept)
        estimator.coef_, estimator.intercept_ = W, b
        estimator.tasks_, estimator.n_tasks_ = self.tasks_, self.n_tasks_
        estimator.n_features_in_ = self.n_features_in_
        estimator._layout = self._layout
        return estimator

    def _store_results(self, scores, cluster_strengths):
        n_splits = scores.shape[0]
        flat = scores.reshape(n_splits, -1)
        alphas = np.repeat(self.alphas_, len(cluster_strengths))
        strengths = np.tile(cluster_strengths, len(self.alphas_))
        mean, std = flat.mean(axis=0), flat.std(axis=0)
        if np.isnan(mean).all():
            raise ValueError(
                "Every grid point has an undefined (NaN) cross-validated score: no test fold "
                "held a task with two or more labels (R^2 needs two). Use fewer folds."
            )
        ranked = np.where(np.isnan(mean), -np.inf, mean)  # NaN: worst
        rank = rankdata(-ranked, method="min").astype(np.int32)  # ties share the best rank
        best = int(np.argmax(ranked))  # the first of the best, as GridSearchCV
        results = {
            "param_alpha": alphas,
            "param_cluster_strength": strengths,
            "params": [{"alpha": float(a), "cluster_strength": float(c)}
                       for a, c in zip(alphas, strengths)],
        }
        for k in range(n_splits):
            results[f"split{k}_test_score"] = flat[k]
        results.update(mean_test_score=mean, std_test_score=std, rank_test_score=rank)
        self.cv_results_ = results
        self.alpha_, self.cluster_strength_ = float(alphas[best]), float(strengths[best])
        self.best_score_ = float(mean[best])

    # -- predict ------------------------------------------------------------------------------
    def _predict_raw(self, X):
        return self._decision(X)

    def _predict_tasks(self, X, task_index):
        return _predict_rows(X, self.coef_, self.intercept_, task_index)


def _positive(values, name):
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0 or not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(f"{name} must be a non-empty list of finite numbers > 0; got {values}.")
    return values


def _largest_moment_eigenvalue(X, rows, tasks, n_tasks, fit_intercept):
    """Largest eigenvalue of ``(1 / T) sum_t X_t^T X_t / n_t`` (columns centred per task).

    From the observations ``(rows, tasks)`` in one pass over X: ``X^T diag(w) X`` with each
    row's weight ``w_i = sum_{t observing i} 1 / n_t``, minus ``sum_t mean_t mean_t^T``. Only
    a scale for the alpha grid, so the cancellation of this form does not matter.
    """
    counts = np.bincount(tasks, minlength=n_tasks)
    weights = 1.0 / counts[tasks]
    means_of = sp.csr_matrix((weights, (tasks, rows)), shape=(n_tasks, X.shape[0]))
    row_weight = np.bincount(rows, weights=weights, minlength=X.shape[0])
    if sp.issparse(X):
        second = (X.T @ sp.diags(row_weight) @ X).toarray()
        means = np.asarray((means_of @ X).todense())
    else:
        second = X.T @ (X * row_weight[:, None])
        means = np.asarray(means_of @ X)
    if fit_intercept:
        second -= means.T @ means
    e_max = float(np.linalg.eigvalsh(0.5 * (second + second.T) / n_tasks)[-1])
    return e_max if e_max > 1e-12 * max(1.0, float(np.abs(second).max())) else 1.0
