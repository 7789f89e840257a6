"""Clustered multi-task models with ``alpha`` chosen by cross-validation.

Per training fold, the W step is set up once (the least-squares moments, or the design of the
logistic Newton steps; :mod:`._solver_clustered_tasks`) and the alternation is run at every
alpha of the grid. The grid is the units-free one of :class:`MeanClusteredRegressorCV`
(features scaled inside, the largest alpha set by the data's curvature), extended when its
optimum is at an edge (:class:`~skmtl.linear._cv._AlphaPathCVMixin`).
"""

from sklearn.base import BaseEstimator

from skmtl.base import MultiTaskClassifierMixin, MultiTaskRegressorMixin
from skmtl.linear import _cv
from skmtl.linear._binary import _BinaryLogisticMixin
from skmtl.linear._clustered_tasks import (
    _DOCS,
    ClusteredTasksClassifier,
    ClusteredTasksRegressor,
    _ClusteredTasksMixin,
)
from skmtl.linear._designs import Problem
from skmtl.linear._docs import ALPHA_CV_EDGES, alpha_cv_docs
from skmtl.utils._docstring import Substitution, join_blocks

__all__ = ["ClusteredTasksClassifierCV", "ClusteredTasksRegressorCV"]


class _ClusteredTasksCVMixin(_cv._AlphaPathCVMixin, _ClusteredTasksMixin):
    """The alpha search of the clustered models; ``n_clusters``, ``between``, ``within`` fixed."""

    _parameter_constraints = _cv.alpha_cv_constraints(_ClusteredTasksMixin._parameter_constraints)

    def _check_fixed(self):
        self._check_strengths()

    def _weakest_curvature(self, n_tasks):
        # as MeanClusteredRegressorCV with cluster_strength = between: 2 min(1, between) / T
        return 2.0 * min(1.0, self.between) / n_tasks

    def _path(self, X, Y, mask, kwargs):
        alternate = self._steps(Problem(X, Y, mask, **kwargs))
        return lambda alpha: alternate(alpha)[:2]

    def _refit(self, args, kwargs, scale):
        self._fit_problem(Problem(*args, **kwargs), scale, self.alpha_)


def _cv_tail(kind, other, loss, curvature):
    """The See Also and Notes sections of the clustered ``{kind}CV``."""
    return f"""
    See Also
    --------
    ClusteredTasks{other}CV : The same search with the {loss} loss.
    ClusteredTasks{kind} : A fixed alpha.
    MeanClustered{kind}CV : One cluster, ``cluster_strength`` searched too.

    Notes
    -----
    **Default alphas.** As for :class:`MeanClusteredRegressorCV` with
    ``cluster_strength = between``: with ``e_max`` the largest eigenvalue of the average
    over tasks of the (per-task centred, when ``fit_intercept``) second moments
    ``X_t^T X_t / n_t`` of the scaled X on all the data and ``h`` the loss's largest
    curvature ({curvature})::

        alpha_max = 10 * T * h * e_max / (2 * min(1, between))

    At ``alpha_max`` the penalty's weakest curvature, ``2 alpha min(1, between) / T`` (the
    spread of the cluster means), is ten times the largest curvature of the average task's
    loss.

{ALPHA_CV_EDGES}

    **Cost.** Per fold, the alternation (``n_init`` restarts) at every alpha, from the
    fold's W step set up once; plus the refit. The alternation has partial optima, so each
    alpha starts afresh (no warm start along the path), as the fixed-alpha model does: the
    refit is exactly :class:`ClusteredTasks{kind}` at ``alpha_``.

    Examples
    --------"""


def _cv_docs(kind, other, loss, curvature, stratified, criterion):
    """The blocks of the clustered ``{kind}CV``'s docstring."""
    blocks = {**_DOCS, **alpha_cv_docs(f"ClusteredTasks{kind}", stratified, criterion)}
    return {
        **blocks,
        "clustered_cv_parameters": join_blocks(*(blocks[name] for name in (
            "alpha_cv_grid", "clustered_parameters", "alpha_cv_search"))),
        "clustered_cv_attributes": join_blocks(*(blocks[name] for name in (
            "alpha_cv_attributes", "mean_clustered_coef", "clustered_attributes"))),
        "clustered_cv_tail": _cv_tail(kind, other, loss, curvature),
    }


@Substitution(**_cv_docs("Regressor", "Classifier", "logistic", "1, least squares", "",
                          "squared error"))
class ClusteredTasksRegressorCV(_ClusteredTasksCVMixin, MultiTaskRegressorMixin, BaseEstimator):
    r"""Clustered multi-task ridge regression with ``alpha`` chosen by cross-validation.

    The model of :class:`ClusteredTasksRegressor`::

        {clustered_regressor_objective}

    minimised over ``W``, ``b`` and the partition of the tasks (on the scaled features with
    ``standardize=True``), at each ``alpha`` of a grid; every alpha is scored on the test
    folds of ``cv`` by the held-out squared error of all test labels, and the best alpha is
    refitted on all the data. ``between``, ``within`` and ``n_clusters`` are fixed (search
    them with :class:`~sklearn.model_selection.GridSearchCV` if needed).

    Parameters
    ----------
    {clustered_cv_parameters}
    random_state : int, RandomState instance or None, default=None
        Seeds of the restarts after the first.
    unknown_task : {"error", "shared"}, default="error"
        A task id not seen in fit: raise :class:`~skmtl.UnknownTaskError`, or
        (``"shared"``) predict it with the overall mean model.

    Attributes
    ----------
    {clustered_cv_attributes}
    {task_attributes}

    {clustered_cv_tail}
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

    _model = ClusteredTasksRegressor
    _default_score = staticmethod(_cv._pooled_squared_error)

    def __init__(self, *, alphas=None, n_alphas=20, eps=1e-3, n_clusters=2, between=1.0,
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


@Substitution(**_cv_docs("Classifier", "Regressor", "squared", "1 / 4, the logistic loss",
                          "; stratified on the classes", "log loss"))
class ClusteredTasksClassifierCV(_BinaryLogisticMixin, _ClusteredTasksCVMixin,
                                 MultiTaskClassifierMixin, BaseEstimator):
    r"""Clustered multi-task logistic regression with ``alpha`` chosen by cross-validation.

    The model of :class:`ClusteredTasksClassifier`::

        {clustered_classifier_objective}

    (``s_i = +1`` for the task's second class, ``-1`` for its first; the last term pulls the
    intercepts as the coefficients are pulled) minimised over ``W``, ``b`` and the partition
    of the tasks (on the scaled features with ``standardize=True``), at each ``alpha`` of a
    grid; every alpha is scored on the test folds of ``cv`` by the held-out log loss of all
    test labels, and the best alpha is refitted on all the data. ``between``, ``within`` and
    ``n_clusters`` are fixed (search them with :class:`~sklearn.model_selection.GridSearchCV`
    if needed). Every task must be binary; a task (or a training fold of it) may hold one
    class only.

    Parameters
    ----------
    {clustered_cv_parameters}
    tol : float, default=1e-8
        Each W step (Newton's method) stops when half the squared Newton decrement is at
        most ``tol``.
    max_newton_iter : int, default=50
        Maximum number of Newton steps per W step.
    random_state : int, RandomState instance or None, default=None
        Seeds of the restarts after the first.
    unknown_task : {"error", "shared"}, default="error"
        A task id not seen in fit: raise :class:`~skmtl.UnknownTaskError`, or
        (``"shared"``) give it the overall mean model's probabilities.

    Attributes
    ----------
    {clustered_cv_attributes}
    classes_ : ndarray or list of ndarray
        The two classes of a 1-D y, else the two classes of each task.
    {task_attributes}

    {clustered_cv_tail}
    >>> import numpy as np
    >>> from skmtl.linear import ClusteredTasksClassifierCV
    >>> tasks = np.repeat(np.arange(6), 40)  # long format: 40 rows of each of 6 tasks
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(240, 2))
    >>> slopes = np.where(tasks[:, None] < 3, [3.0, 0.0], [0.0, -3.0])  # two groups
    >>> y = (np.sum(X * slopes, axis=1) + rng.logistic(size=240) > 0).astype(int)
    >>> model = ClusteredTasksClassifierCV(n_alphas=5, cv=3, random_state=0)
    >>> model.fit(X, y, task_ids=tasks).task_clusters_
    array([0, 0, 0, 1, 1, 1])
    >>> bool(-model.best_score_ < 0.5)  # held-out log loss per label
    True
    """

    _model = ClusteredTasksClassifier
    _default_score = staticmethod(_cv._pooled_log_loss)
    _curvature = 0.25
    _logistic = True
    _max_classes = 2

    _parameter_constraints = _cv.alpha_cv_constraints(
        ClusteredTasksClassifier._parameter_constraints)

    def __init__(self, *, alphas=None, n_alphas=20, eps=1e-3, n_clusters=2, between=1.0,
                 within=10.0, n_init=5, max_iter=100, cv=5, fit_intercept=True,
                 standardize=True, scoring=None, n_jobs=None, tol=1e-8, max_newton_iter=50,
                 random_state=None, unknown_task="error"):
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
        self.tol = tol
        self.max_newton_iter = max_newton_iter
        self.random_state = random_state
        self.unknown_task = unknown_task

    _newton = ClusteredTasksClassifier._newton
