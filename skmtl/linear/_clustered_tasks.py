"""Clustered multi-task estimators: tasks fall into groups, each task pulled to its group's mean.

The penalty of Jacob, Bach & Vert (2008) for a partition of the tasks, minimised jointly over
the coefficients and the partition by alternating minimisation (Zhou, Chen & Ye 2011), on the
per-task mean loss of the observed rows (squared or binary logistic loss); see
:mod:`._solver_clustered_tasks`.
"""

from numbers import Integral, Real

from sklearn.base import BaseEstimator

from skmtl.base import MultiTaskClassifierMixin, MultiTaskRegressorMixin
from skmtl.linear._binary import _BinaryLogisticMixin
from skmtl.linear._designs import Problem, predict_rows
from skmtl.linear._docs import LINEAR_DOCS
from skmtl.linear._linalg import _OneBlasThread
from skmtl.linear._mean_clustered import _MeanClusteredMixin
from skmtl.linear._solver_clustered_tasks import cluster_means, fit_clustered, make_step
from skmtl.linear._standardize import observation_weights
from skmtl.utils._docstring import Substitution
from skmtl.utils._sklearn_compat import Interval, StrOptions
from skmtl.utils.validation import check_finite_squares

__all__ = ["ClusteredTasksClassifier", "ClusteredTasksRegressor"]

_DOCS = {
    "clustered_regressor_objective": """
        sum_t 1 / (2 n_t) * ||y_t - X_t w_t - b_t||^2_2
        + alpha * (||w_bar||^2_2 + between / T * sum_c n_c ||w_bar_c - w_bar||^2_2
                   + within / T * sum_t ||w_t - w_bar_c(t)||^2_2)
    """,
    "clustered_classifier_objective": """
        sum_t 1 / n_t * sum_{i in task t} log(1 + exp(-s_i (x_i w_t + b_t)))
        + alpha * (||w_bar||^2_2 + between / T * sum_c n_c ||w_bar_c - w_bar||^2_2
                   + within / T * sum_t ||w_t - w_bar_c(t)||^2_2)
        + alpha * (between / T * sum_c n_c (c_bar_c - c_bar)^2
                   + within / T * sum_t (c_t - c_bar_c(t))^2),   c_t = b_t + x_bar w_t
    """,
    **LINEAR_DOCS,
    "clustered_parameters": """
    n_clusters : int, default=2
        Number of clusters of tasks (at most the number of tasks is used).
    between : float, default=1.0
        Weight of the spread of the cluster means around the mean task, > 0.
    within : float, default=10.0
        Weight of the spread of the tasks around their cluster's mean, ``>= between`` (the
        partition then minimises the within-cluster spread of the task coefficients; with
        ``within < between`` the best partition would maximise it).
    n_init : int, default=5
        Number of restarts of the alternation (the first from farthest-point seeds, the
        others from k-means++ seeds); the fit with the lowest objective is kept.
    max_iter : int, default=100
        Maximum number of alternations (W step, then assignment step) per restart. A
        restart that reaches it with the partition still changing raises a
        ConvergenceWarning; its model is the W step of its last partition (``coef_`` is
        always the minimiser for ``task_clusters_``).
    """,
    "clustered_attributes": """
    task_clusters_ : ndarray of int of shape (n_tasks,)
        Cluster of each task (``tasks_`` order), numbered by the first task of each cluster.
    cluster_coef_ : ndarray of shape (n_clusters_used, n_features)
        Mean coefficients of the tasks of each cluster, ``n_clusters_used =
        min(n_clusters, n_tasks)``.
    shared_coef_ : ndarray of shape (n_features,)
        The overall mean task ``w_bar = coef_.mean(axis=0)``: the model of a task not seen in
        fit (its cluster is not knowable without its labels).
    shared_intercept_ : float
        The mean intercept ``b_bar = intercept_.mean()``.
    n_iter_ : int
        Number of alternations of the kept restart.
    """,
    "clustered_notes": """
    With a partition of the tasks into clusters ``c`` of ``n_c`` tasks with mean
    coefficients ``w_bar_c``, and ``w_bar`` the mean of all tasks, the penalty is that of
    Jacob, Bach & Vert (2008); its three terms split ``||W||^2`` into the mean task, the
    spread of the cluster means and the spread within clusters. With one cluster it is
    :class:`MeanClusteredRegressor`'s penalty with ``cluster_strength = within``; with one
    task per cluster, with ``cluster_strength = between``.

    Solver: the alternating (k-means) form of Zhou, Chen & Ye (2011), not the convex
    relaxation of Jacob et al. The relaxation replaces the partition by a T x T matrix in a
    convex set and has to be rounded (e.g. by k-means on it) to give a label per task, the
    thing a user asks for, and its solution is then not the minimiser for that partition;
    its solvers also work on T x T matrix variables (an eigendecomposition per step). The
    alternation minimises the stated objective over the partition itself: for a fixed
    partition, the W step is the mean-clustered solve with a block-structured coupling of
    the tasks (exact for the squared loss, Newton's method for the logistic loss); for fixed
    W, since the penalty equals ``alpha / T * (between * sum_t ||w_t - w_bar||^2 +
    (within - between) * sum_t ||w_t - w_bar_c(t)||^2)``, the best partition is the k-means
    partition of the rows of W, improved by Lloyd steps (the classifier's, whose intercepts
    are pulled alike, of the rows of ``[W, c]``: a partition of W alone missed clusters of
    tasks that differ in their base rate). No step increases the objective,
    so it stops at a partial optimum (no single step improves); restarts (``n_init``,
    ``random_state``) guard against poor ones. The coefficients start from the fit with
    one task per cluster. Cost per W step ``O(sum_t n_t d^2 + T d^3 + (n_clusters d)^3)``,
    with ``T d^2`` memory. On dense X with 128 coefficients or more whose tasks have fewer
    labels than half of them, the W step works in each task's (weighted) rows instead (the
    kernel form: ``O(sum_t n_t^2 d)`` per ``alpha`` or Newton step, ``O(N d^2 +
    (n_clusters d)^3)`` per partition for ``N`` labels, ``N d`` memory): on 10,000
    MoleculeACE molecules (30 targets of 171 to 982 labels, 2,048 bits), the regressor takes
    15 s and a peak of 1.5 GB, where the ``d x d`` blocks took 103 s and 4.4 GB.

    References
    ----------
    L. Jacob, F. Bach and J.-P. Vert, "Clustered multi-task learning: a convex
    formulation", NIPS 2008.
    J. Zhou, J. Chen and J. Ye, "Clustered multi-task learning via alternating structure
    optimization", NIPS 2011.
    """,
}


def _tail(sibling, loss, reference):
    """The See Also and Notes sections of one estimator."""
    return f"""
    See Also
    --------
    {sibling} : The same penalty with the {loss} loss.
    {reference} : One cluster.

    Notes
    -----
    {_DOCS["clustered_notes"].strip()}

    Examples
    --------"""


_DOCS["regressor_tail"] = _tail("ClusteredTasksClassifier", "logistic", "MeanClusteredRegressor")
_DOCS["classifier_tail"] = _tail("ClusteredTasksRegressor", "squared", "MeanClusteredClassifier")


class _ClusteredTasksMixin(_OneBlasThread, _MeanClusteredMixin):
    """Parameters, the alternation on wide or long data, the fitted attributes."""

    _parameter_constraints = {
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "between": [Interval(Real, 0, None, closed="neither")],
        "within": [Interval(Real, 0, None, closed="neither")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "fit_intercept": ["boolean"],
        "standardize": ["boolean"],
        "random_state": ["random_state"],
        "unknown_task": [StrOptions({"error", "shared"})],
    }
    _logistic = False

    def _fit_multitask(self, X, Y, mask):
        X, scale = self._scaled(X, observation_weights(mask))
        self._check_finite(X, Y, mask=mask)
        self._fit_problem(Problem(X, Y, mask), scale, self.alpha)

    def _fit_long(self, X, y, task_index):
        X, scale = self._scaled(X, observation_weights(None, X.shape[0]))
        self._check_finite(X, y, task_index=task_index)
        self._fit_problem(Problem(X, y, task_index=task_index, n_tasks=self.n_tasks_), scale,
                          self.alpha)

    def _check_finite(self, X, y, **kwargs):
        check_finite_squares(X, y, tasks=self.tasks_, **kwargs)

    def _newton(self):
        return {}

    def _check_strengths(self):
        if self.within < self.between:
            raise ValueError(f"within must be >= between; got within={self.within!r} < "
                             f"between={self.between!r}.")

    def _steps(self, problem):
        """The alternation at any alpha on one data set: ``alpha -> (W, b, labels, n_iter)``
        (the W step's moments or design built once)."""
        # the classifier pulls the intercepts at the mean of X: its rows are centred there
        pulled = self._logistic and self.fit_intercept and problem.n_tasks > 1
        design = problem.design(at_mean=pulled)
        y = problem.targets(design)
        step, loss = make_step(design, y, logistic=self._logistic,
                               fit_intercept=self.fit_intercept, **self._newton())

        def fit(alpha):
            W, b, labels, n_iter = self._alternate(step, loss, design, y, alpha)
            return W, b - W @ design.x_origin, labels, n_iter

        return fit

    def _fit_problem(self, problem, scale, alpha):
        self._check_strengths()
        W, b, labels, self.n_iter_ = self._steps(problem)(alpha)
        self._set_coef(W, b, scale)
        self.task_clusters_ = labels
        self.cluster_coef_ = cluster_means(self.coef_, labels, labels.max() + 1)

    def _alternate(self, step, loss, design, y, alpha):
        """``(W, b, labels, n_iter)`` of the alternation at ``alpha`` on one data set."""
        W, b, labels, n_iter, _ = fit_clustered(
            step, loss, design, y, alpha=alpha, between=self.between, within=self.within,
            n_clusters=self.n_clusters, n_init=self.n_init, max_iter=self.max_iter,
            random_state=self.random_state)
        return W, b, labels, n_iter

    # the predictions of the regressor (the classifier's come from _BinaryLogisticMixin)
    _predict_raw = _MeanClusteredMixin._decision
    _predict_shared = _MeanClusteredMixin._shared_decision

    def _predict_tasks(self, X, task_index):
        return predict_rows(X, self.coef_, self.intercept_, task_index)


@Substitution(**_DOCS)
class ClusteredTasksRegressor(_ClusteredTasksMixin, MultiTaskRegressorMixin, BaseEstimator):
    r"""Multi-task ridge regression with the tasks grouped in clusters, each pulled to its mean.

    Minimises over the task coefficients ``W = [w_1, ..., w_T]``, the intercepts ``b`` and a
    partition of the tasks into at most ``n_clusters`` clusters::

        {clustered_regressor_objective}

    where ``X_t, y_t`` are the ``n_t`` observed rows of task ``t``, ``T`` the number of tasks,
    ``c(t)`` the cluster of task ``t``, ``n_c`` the number of tasks in cluster ``c``,
    ``w_bar_c`` their mean and ``w_bar`` the mean of all tasks (functions of ``W``, not free
    variables). The intercepts are not penalised.

    Parameters
    ----------
    {mean_clustered_alpha}
    {clustered_parameters}
    {fit_intercept}
    standardize : bool, default=False
        Fit on the features divided by their standard deviation over the observed rows of
        all tasks pooled (see :class:`MeanClusteredRegressor`); ``coef_`` is reported in the
        user's units.
    random_state : int, RandomState instance or None, default=None
        Seeds of the restarts after the first.
    unknown_task : {"error", "shared"}, default="error"
        A task id not seen in fit: raise :class:`~skmtl.UnknownTaskError`, or (``"shared"``)
        predict it with the overall mean model ``X @ shared_coef_ + shared_intercept_``
        (not a cluster's: the cluster of a task without labels is not knowable).

    Attributes
    ----------
    {mean_clustered_coef}
    {clustered_attributes}
    {task_attributes}

    {regressor_tail}
    >>> import numpy as np
    >>> from skmtl.linear import ClusteredTasksRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 2))
    >>> slopes = np.array([[1.0, 0.0]] * 3 + [[0.0, -1.0]] * 3)  # two groups of 3 tasks
    >>> Y = X @ slopes.T + 0.1 * rng.normal(size=(40, 6))
    >>> model = ClusteredTasksRegressor(alpha=0.1, n_clusters=2, random_state=0).fit(X, Y)
    >>> model.task_clusters_
    array([0, 0, 0, 1, 1, 1])
    >>> model.cluster_coef_.round(1) + 0.0  # (no negative zeros)
    array([[ 1.,  0.],
           [ 0., -1.]])
    """

    def __init__(self, alpha=1.0, *, n_clusters=2, between=1.0, within=10.0, n_init=5,
                 max_iter=100, fit_intercept=True, standardize=False, random_state=None,
                 unknown_task="error"):
        self.alpha = alpha
        self.n_clusters = n_clusters
        self.between = between
        self.within = within
        self.n_init = n_init
        self.max_iter = max_iter
        self.fit_intercept = fit_intercept
        self.standardize = standardize
        self.random_state = random_state
        self.unknown_task = unknown_task


@Substitution(**_DOCS)
class ClusteredTasksClassifier(_BinaryLogisticMixin, _ClusteredTasksMixin,
                               MultiTaskClassifierMixin, BaseEstimator):
    r"""Multi-task binary logistic regression with the tasks grouped in clusters.

    Minimises over the task coefficients ``W = [w_1, ..., w_T]``, the intercepts ``b`` and a
    partition of the tasks into at most ``n_clusters`` clusters::

        {clustered_classifier_objective}

    where task ``t`` has ``n_t`` observed labels, ``s_i = +1`` for the task's second class and
    ``-1`` for its first, ``c(t)`` is the cluster of task ``t``, ``n_c`` the number of tasks in
    cluster ``c``, ``w_bar_c`` / ``c_bar_c`` their mean coefficients / intercept and ``w_bar`` /
    ``c_bar`` the means over all tasks (``c_bar`` is free, unpenalised). The last term pulls
    the intercepts as the coefficients are pulled, which keeps the intercept of a task that saw
    one class finite (as :class:`MeanClusteredClassifier` does); it vanishes with one task. It
    pulls the intercepts at the mean of X, ``c_t`` (``x_bar`` the mean of the rows over the
    observed labels), so that a constant added to a column changes ``intercept_`` only.

    Parameters
    ----------
    {mean_clustered_alpha}
    {clustered_parameters}
    fit_intercept : bool, default=True
        Fit an intercept per task (pulled as above).
    standardize : bool, default=False
        Fit on the features divided by their standard deviation over the observed rows of
        all tasks pooled (see :class:`MeanClusteredRegressor`).
    tol : float, default=1e-8
        Each W step (Newton's method) stops when half the squared Newton decrement is at
        most ``tol``.
    max_newton_iter : int, default=50
        Maximum number of Newton steps per W step; reaching it raises a ConvergenceWarning.
    random_state : int, RandomState instance or None, default=None
        Seeds of the restarts after the first.
    unknown_task : {"error", "shared"}, default="error"
        A task id not seen in fit: raise :class:`~skmtl.UnknownTaskError`, or (``"shared"``)
        give it the overall mean model's probabilities (the cluster of a task without labels
        is not knowable).

    Attributes
    ----------
    {mean_clustered_coef}
    {clustered_attributes}
    classes_ : ndarray or list of ndarray
        The two classes of a 1-D y, else the two classes of each task.
    {task_attributes}

    {classifier_tail}
    >>> from skmtl.linear import ClusteredTasksClassifier
    >>> import numpy as np
    >>> tasks = np.repeat(np.arange(6), 30)  # long format: 30 rows of each of 6 tasks
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(180, 2))
    >>> slopes = np.where(tasks[:, None] < 3, [3.0, 0.0], [0.0, -3.0])  # two groups
    >>> y = (np.sum(X * slopes, axis=1) + rng.logistic(size=180) > 0).astype(int)
    >>> model = ClusteredTasksClassifier(alpha=0.01, random_state=0)
    >>> model.fit(X, y, task_ids=tasks).task_clusters_
    array([0, 0, 0, 1, 1, 1])
    """

    _max_classes = 2
    _logistic = True

    _parameter_constraints = {
        **_ClusteredTasksMixin._parameter_constraints,
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_newton_iter": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, alpha=1.0, *, n_clusters=2, between=1.0, within=10.0, n_init=5,
                 max_iter=100, fit_intercept=True, standardize=False, tol=1e-8,
                 max_newton_iter=50, random_state=None, unknown_task="error"):
        self.alpha = alpha
        self.n_clusters = n_clusters
        self.between = between
        self.within = within
        self.tol = tol
        self.n_init = n_init
        self.max_iter = max_iter
        self.max_newton_iter = max_newton_iter
        self.fit_intercept = fit_intercept
        self.standardize = standardize
        self.random_state = random_state
        self.unknown_task = unknown_task

    def _check_finite(self, X, y, **kwargs):
        check_finite_squares(X, mask=kwargs.get("mask"))

    def _newton(self):
        return {"tol": self.tol, "max_iter": self.max_newton_iter}
