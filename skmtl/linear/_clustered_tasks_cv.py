"""Clustered multi-task regression with ``alpha`` chosen by cross-validation.

Per training fold, the per-task moments are computed once (the least-squares W step of
:mod:`._solver_clustered_tasks`) and the alternation is run at every alpha of the grid. The
grid is the units-free one of :class:`MeanClusteredRegressorCV` (features scaled inside, the
largest alpha set by the data's curvature), extended when its optimum is at an edge.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.parallel import Parallel, delayed

from skmtl.base import MultiTaskRegressorMixin
from skmtl.linear import _cv
from skmtl.linear._clustered_tasks import (
    _DOCS,
    ClusteredTasksRegressor,
    _ClusteredTasksMixin,
)
from skmtl.linear._designs import Problem
from skmtl.linear._mean_clustered_cv import _MeanClusteredCVMixin
from skmtl.linear._solver_clustered_tasks import make_step
from skmtl.utils._docstring import Substitution
from skmtl.utils._sklearn_compat import Interval

__all__ = ["ClusteredTasksRegressorCV"]


def _fold_path(estimator, data, train, test, alphas, scorer):
    """``(n_alphas, 2)`` of (value, weight): one training fold's test scores along ``alphas``."""
    (X, Y, mask), kwargs = data.fit_args(train)
    X, scale = estimator._scaled(X, data.row_weight(train))
    problem = Problem(X, Y, mask, **kwargs)
    design = problem.design()
    y = problem.targets(design)
    step, loss = make_step(design, y, logistic=False, fit_intercept=estimator.fit_intercept)
    fold = data.test_fold(test)
    out = np.empty((len(alphas), 2))
    for k, alpha in enumerate(alphas):
        W, b, _, _ = estimator._alternate(step, loss, design, y, alpha)
        W = W if scale is None else W / scale
        out[k] = _cv._fold_score(fold, W, b, data.n_tasks, scorer, _cv._pooled_squared_error,
                             lambda W, b, alpha=alpha: estimator._fitted(alpha, W, b))
    return out


@Substitution(**_DOCS)
class ClusteredTasksRegressorCV(_ClusteredTasksMixin, MultiTaskRegressorMixin, BaseEstimator):
    r"""Clustered multi-task ridge regression with ``alpha`` chosen by cross-validation.

    The model of :class:`ClusteredTasksRegressor`::

        sum_t 1 / (2 n_t) * ||y_t - X_t w_t - b_t||^2_2
        + alpha * (||w_bar||^2_2 + between / T * sum_c n_c ||w_bar_c - w_bar||^2_2
                   + within / T * sum_t ||w_t - w_bar_c(t)||^2_2)

    minimised over ``W``, ``b`` and the partition of the tasks, at each ``alpha`` of a grid;
    the alpha of the best cross-validated score is refitted on all the data. ``between``,
    ``within`` and ``n_clusters`` are fixed (search them with GridSearchCV if needed).

    Parameters
    ----------
    alphas : array-like of float, default=None
        Grid of alphas. None: ``n_alphas`` values log-spaced from ``alpha_max`` down to
        ``eps * alpha_max``, computed on the (scaled) data as for
        :class:`MeanClusteredRegressorCV` with ``cluster_strength = between`` (the penalty's
        weakest curvature, ``2 alpha min(1, between) / T``, is ten times the largest curvature
        of the average task's loss at ``alpha_max``), and extended by a decade while the
        optimum is at an edge (at most 3 times).
    n_alphas : int, default=10
        Number of alphas of the default grid.
    eps : float, default=1e-3
        ``alpha_min / alpha_max`` of the default grid, in (0, 1].
    n_clusters : int, default=2
        Number of clusters of tasks (at most the number of tasks is used).
    between : float, default=1.0
        Weight of the spread of the cluster means around the mean task, > 0.
    within : float, default=10.0
        Weight of the spread of the tasks around their cluster's mean, ``>= between``.
    n_init : int, default=5
        Number of restarts of the alternation per fit.
    max_iter : int, default=100
        Maximum number of alternations per restart.
    cv : int, cross-validation generator or iterable, default=5
        Folds of rows (see :class:`MeanClusteredRegressorCV`).
    {fit_intercept}
    standardize : bool, default=True
        Fit on the features divided by their standard deviation (see
        :class:`MeanClusteredRegressor`), so that the grid does not depend on their units.
    scoring : str, callable or None, default=None
        None: the held-out squared error pooled over the labels of all tasks (every label
        weighs the same); else a scorer of the fitted model, as in
        :class:`MeanClusteredRegressorCV`.
    {cv_n_jobs}
    random_state : int, RandomState instance or None, default=None
        Seeds of the restarts after the first.
    unknown_task : {"error", "shared"}, default="error"
        A task id not seen in fit: raise, or predict it with the overall mean model.

    Attributes
    ----------
    alpha_ : float
        The chosen alpha.
    alphas_ : ndarray
        The grid tried (extended if it was).
    cv_results_ : dict
        GridSearchCV-like results over ``alphas_``.
    best_score_ : float
        Mean cross-validated score of ``alpha_``.
    {mean_clustered_coef}
    {clustered_attributes}
    {task_attributes}

    See Also
    --------
    ClusteredTasksRegressor : A fixed alpha.
    MeanClusteredRegressorCV : One cluster, ``cluster_strength`` searched too.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.linear import ClusteredTasksRegressorCV
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 2))
    >>> Y = X @ np.array([[1.0, 0.0]] * 3 + [[0.0, -1.0]] * 3).T + rng.normal(size=(60, 6))
    >>> model = ClusteredTasksRegressorCV(n_alphas=5, cv=3, random_state=0).fit(X, Y)
    >>> model.task_clusters_
    array([0, 0, 0, 1, 1, 1])
    >>> len(model.alphas_) >= 5
    True
    """

    _parameter_constraints = {
        **{name: constraint for name, constraint
           in _ClusteredTasksMixin._parameter_constraints.items() if name != "alpha"},
        "alphas": ["array-like", None],
        "n_alphas": [Interval(Integral, 1, None, closed="left")],
        "eps": [Interval(Real, 0, 1, closed="right")],
        "cv": ["cv_object"],
        "scoring": [None, str, callable],
        "n_jobs": [None, Integral],
    }
    _curvature = 1.0  # of the squared loss, for the default grid

    def __init__(self, *, alphas=None, n_alphas=10, eps=1e-3, n_clusters=2, between=1.0,
                 within=10.0, n_init=5, max_iter=100, cv=5, fit_intercept=True,
                 standardize=True, scoring=None, n_jobs=None, random_state=None,
                 unknown_task="error"):
        self.alphas = alphas
        self.n_alphas = n_alphas
        self.eps = eps
        self.n_clusters = n_clusters
        self.between = between
        self.within = within
        self.n_init = n_init
        self.max_iter = max_iter
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.standardize = standardize
        self.scoring = scoring
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.unknown_task = unknown_task

    # wide or long data wrapped for the folds, then _fit_cv (as MeanClusteredRegressorCV)
    _fit_multitask = _MeanClusteredCVMixin._fit_multitask
    _fit_long = _MeanClusteredCVMixin._fit_long

    def _fit_cv(self, X, data):
        self._check_strengths()
        X_all, scale = self._scaled(X, data.row_weight())
        data.check_finite_squares(X_all, self.tasks_, targets=True)
        default = self.alphas is None
        # the units-free grid of MeanClusteredRegressorCV, weakest curvature min(1, between)
        alphas = (_MeanClusteredCVMixin._default_alphas(self, data, X_all,
                                                        np.array([self.between]))
                  if default else np.unique(_cv._positive(self.alphas, "alphas"))[::-1])
        scorer = _cv._check_scoring(self.scoring)
        splits = _cv._cv_splits(self.cv, X, data, self.tasks_, classification=False)
        cache = {}  # alpha -> (n_splits, 2) of (value, weight)
        for extension in range(_cv.MAX_EXTENSIONS + 1):
            new = [alpha for alpha in alphas if alpha not in cache]
            if new:
                results = Parallel(n_jobs=self.n_jobs)(
                    delayed(_fold_path)(self, data, train, test, new, scorer)
                    for train, test in splits)
                for k, alpha in enumerate(new):
                    cache[alpha] = np.array([out[k] for out in results])
            values = np.stack([cache[alpha] for alpha in alphas], axis=1)
            self.cv_results_, best = _cv._cv_results(values[..., 0] / values[..., 1],
                                                 {"alpha": alphas}, values[..., 1])
            means = self.cv_results_["mean_test_score"]
            edge = _cv.edge_of(np.where(np.isnan(means), -np.inf, means), best, 0, alphas.size)
            if edge is None or not default or extension == _cv.MAX_EXTENSIONS:
                break
            alphas = _cv.extend_geometric(alphas, edge)
        self.alpha_ = float(alphas[best])
        self.best_score_ = float(self.cv_results_["mean_test_score"][best])
        self.alphas_ = alphas
        if edge is not None:
            _cv.warn_edge("alpha", self.alpha_, alphas, extended=default)
        args, kwargs = data.fit_args()
        self._fit_problem(Problem(X_all, *args[1:], **kwargs), scale, self.alpha_)

    def _fitted(self, alpha, W, b):
        """A fitted fixed-alpha model with these coefficients, for a scorer."""
        estimator = ClusteredTasksRegressor(
            alpha=alpha, n_clusters=self.n_clusters, between=self.between, within=self.within,
            fit_intercept=self.fit_intercept)
        return _cv._as_fitted(estimator, self, W, b)
