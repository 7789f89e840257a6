"""Mean-clustered multi-task ridge, ``alpha`` and ``cluster_strength`` chosen by cross-validation.

Each training fold is decomposed once (:class:`MeanClusteredLeastSquares`); every point of the
``(alpha, cluster_strength)`` grid is then a few matrix products on that decomposition, and its
test score is computed from the coefficients directly (no estimator is refitted).
"""

from functools import partial
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator

from skmtl.base import MultiTaskRegressorMixin
from skmtl.linear._cv import (
    _as_fitted,
    _check_scoring,
    _cv_results,
    _cv_splits,
    _fold_score,
    _LongData,
    _masked_r2,
    _multitask_kfold_splits,  # noqa: F401 - imported from here by the tests
    _positive,
    _WideData,
)
from skmtl.linear._mean_clustered import (
    MeanClusteredLeastSquares,
    MeanClusteredRegressor,
    _MeanClusteredMixin,
    _predict_rows,
    solve_mean_clustered,
)
from skmtl.utils._sklearn_compat import Interval

__all__ = ["MeanClusteredRegressorCV"]

# At the largest default alpha, the weakest curvature of the penalty, 2 alpha min(1, c) / T,
# is this many times the largest eigenvalue of the average task's (centred) second moments.
_ALPHA_MAX_RATIO = 10.0


def _fold_scores(data, train, test, alphas, cluster_strengths, fit_intercept, scorer, fitted):
    """Test scores of one fold for the whole grid, shape (n_alphas, n_cluster_strengths)."""
    args, kwargs = data.fit_args(train)
    path = MeanClusteredLeastSquares(*args, fit_intercept=fit_intercept, **kwargs)
    fold = data.test_fold(test)
    scores = np.empty((len(alphas), len(cluster_strengths)))
    for i, alpha in enumerate(alphas):
        for j, cluster_strength in enumerate(cluster_strengths):
            W, b = path.solve(alpha, cluster_strength)
            scores[i, j] = _fold_score(fold, W, b, data.n_tasks, scorer, _masked_r2,
                                       partial(fitted, alpha, cluster_strength))
    return scores


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
    cluster_strengths : array-like, default=(0.5, 1.0, 2.0, 5.0, 10.0, 100.0, 1000.0)
        Values of ``cluster_strength`` to try, all > 0 (1: independent ridge per task; larger:
        tasks pulled together; 1000 is close to one pooled ridge model).
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
    >>> model.cluster_strength_, model.alphas_.shape  # similar tasks: pulled together
    (100.0, (10,))
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
                 cluster_strengths=(0.5, 1.0, 2.0, 5.0, 10.0, 100.0, 1000.0), cv=5,
                 fit_intercept=True, scoring=None, n_jobs=None):
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
        scorer = _check_scoring(self.scoring)
        splits = _cv_splits(self.cv, X, data, self.tasks_, classification=False)
        jobs = (delayed(_fold_scores)(data, train, test, self.alphas_, cluster_strengths,
                                      self.fit_intercept, scorer, self._fitted)
                for train, test in splits)
        scores = np.stack(Parallel(n_jobs=self.n_jobs)(jobs))  # (n_splits, n_alphas, n_c)
        self._store_results(scores, cluster_strengths)
        args, kwargs = data.fit_args()
        self.coef_, self.intercept_ = solve_mean_clustered(
            *args, self.alpha_, self.cluster_strength_, fit_intercept=self.fit_intercept,
            **kwargs)

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
        return _as_fitted(estimator, self, W, b)

    def _store_results(self, scores, cluster_strengths):
        n_splits = scores.shape[0]
        params = {"alpha": np.repeat(self.alphas_, len(cluster_strengths)),
                  "cluster_strength": np.tile(cluster_strengths, len(self.alphas_))}
        self.cv_results_, best = _cv_results(scores.reshape(n_splits, -1), params)
        self.alpha_ = float(params["alpha"][best])
        self.cluster_strength_ = float(params["cluster_strength"][best])
        self.best_score_ = float(self.cv_results_["mean_test_score"][best])

    # -- predict ------------------------------------------------------------------------------
    def _predict_raw(self, X):
        return self._decision(X)

    def _predict_tasks(self, X, task_index):
        return _predict_rows(X, self.coef_, self.intercept_, task_index)


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
