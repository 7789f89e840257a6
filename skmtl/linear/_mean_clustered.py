"""Mean-clustered multi-task estimators: every task vector is pulled towards the tasks' mean.

The penalty (:class:`~skmtl.linear._penalties.MeanClusteredPenalty`) of Evgeniou & Pontil
(2004), "Regularized multi-task learning", on the per-task mean loss of the observed rows
(squared or binary logistic loss), solved exactly (:mod:`._solver_mean_clustered`).
"""

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.extmath import safe_sparse_dot

from skmtl.base import MultiTaskClassifierMixin, MultiTaskRegressorMixin
from skmtl.linear._binary import _BinaryLogisticMixin
from skmtl.linear._designs import predict_rows
from skmtl.linear._docs import LINEAR_DOCS
from skmtl.linear._solver_mean_clustered import solve_mean_clustered, solve_mean_clustered_logistic
from skmtl.linear._standardize import column_scales, observation_weights, scale_columns
from skmtl.utils._docstring import Substitution
from skmtl.utils._sklearn_compat import Interval, StrOptions
from skmtl.utils.validation import check_finite_squares

__all__ = ["MeanClusteredClassifier", "MeanClusteredRegressor"]


class _MeanClusteredMixin:
    """Scaling, coefficients in the user's units, the shared (mean) model, predictions."""

    _parameter_constraints = {
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "cluster_strength": [Interval(Real, 0, None, closed="neither")],
        "fit_intercept": ["boolean"],
        "standardize": ["boolean"],
        "unknown_task": [StrOptions({"error", "shared"})],
    }
    _X_dtype = np.float64

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _scaled(self, X, row_weight):
        """``(X / scale, scale)`` with ``standardize``, else ``(X, None)``."""
        if not self.standardize:
            return X, None
        scale = column_scales(X, row_weight, self.fit_intercept)
        return scale_columns(X, scale), scale

    def _set_coef(self, W, b, scale=None):
        """Store coefficients fitted on ``X / scale`` in the user's units, and the mean model."""
        self.coef_ = W if scale is None else W / scale
        self.intercept_ = np.asarray(b, dtype=np.float64)
        self.shared_coef_ = self.coef_.mean(axis=0)
        self.shared_intercept_ = float(self.intercept_.mean())

    def _decision(self, X):
        return np.asarray(safe_sparse_dot(X, self.coef_.T, dense_output=True)) + self.intercept_

    def _shared_decision(self, X):
        return (np.asarray(safe_sparse_dot(X, self.shared_coef_, dense_output=True)).ravel()
                + self.shared_intercept_)


@Substitution(**LINEAR_DOCS)
class MeanClusteredRegressor(_MeanClusteredMixin, MultiTaskRegressorMixin, BaseEstimator):
    r"""Multi-task ridge regression with every task pulled towards the mean task.

    Minimises over the task coefficients ``W = [w_1, ..., w_T]`` and intercepts ``b``::

        sum_t 1 / (2 n_t) * ||y_t - X_t w_t - b_t||^2_2
        + alpha * (||w_bar||^2_2 + cluster_strength / T * sum_t ||w_t - w_bar||^2_2)

    where ``X_t, y_t`` are the ``n_t`` observed rows of task ``t``, ``T`` is the number of tasks
    and ``w_bar = (1 / T) * sum_t w_t`` is the mean task (a function of ``W``, not a free
    variable). The intercepts are not penalised. This is the regularised multi-task learning
    of Evgeniou & Pontil (2004). The solution is exact (no iterations).

    Parameters
    ----------
    {mean_clustered_alpha}
    cluster_strength : float, default=1.0
        Weight of the deviations from the mean task, > 0. 1 fits an independent ridge
        regression per task; larger values pull the tasks together and ``-> inf`` gives one
        pooled ridge model with per-task intercepts. See Notes.
    {fit_intercept}
    standardize : bool, default=False
        Fit on the features divided by their standard deviation over the observed rows of
        all tasks pooled (a row counts once per task that observes it; without intercepts,
        the root mean square), glmnet's convention; ``coef_`` is reported in the user's
        units. One scale for all tasks, not one per task: the penalty compares the tasks'
        coefficients, which must share their units. The columns are not centred (the
        intercepts absorb any shift; sparse X stays sparse) and a constant column is left
        as it is. Off by default, so that the model is exactly the one above on the given
        X (and its equivalences with scikit-learn's Ridge hold); the CV variant scales by
        default.
    unknown_task : {"error", "shared"}, default="error"
        A task id not seen in fit, at predict or score time: raise
        :class:`~skmtl.UnknownTaskError`, or (``"shared"``) predict it with the mean model,
        ``X @ shared_coef_ + shared_intercept_``.

    Attributes
    ----------
    {mean_clustered_coef}
    {mean_clustered_shared}
    {task_attributes}

    See Also
    --------
    MeanClusteredClassifier : The same penalty with the logistic loss.
    skmtl.IndependentTasks : One model per task (``cluster_strength=1`` with Ridge).
    skmtl.PooledTasks : One model for all tasks.

    Notes
    -----
    {cluster_strength_notes}

    - ``c = 1``: the penalty is ``alpha / T * sum_t ||w_t||^2`` and the tasks are independent
      ridge regressions. Multiplying task t's objective by ``2 n_t`` gives scikit-learn's
      scaling: ``Ridge(alpha=2 * n_t * alpha / T)`` on the task's observed rows.
    - ``c -> inf``: all ``w_t`` equal one ``w`` and the objective becomes
      ``sum_t 1 / (2 n_t) ||y_t - X_t w - b_t||^2 + alpha ||w||^2``: one pooled model with
      per-task intercepts, each row weighted by ``1 / n_t``. Eliminating ``b_t`` centres
      every task's rows, so it is ``Ridge(alpha=2 * alpha, fit_intercept=False)`` fitted on
      the per-task centred rows of all tasks with ``sample_weight = 1 / n_t``, then
      ``b_t = mean(y_t) - mean(X_t) w``.

    Solver: each ``b_t`` is eliminated by centring task t's rows; with ``A_t = X_t^T X_t / n_t``
    and ``r_t = X_t^T y_t / n_t`` (centred) the optimality conditions read
    ``(A_t + lam I) w_t + mu w_bar = r_t``, ``lam = 2 alpha c / T``,
    ``mu = 2 alpha (1 - c) / T``. So ``w_t = M_t (r_t - mu w_bar)`` with
    ``M_t = (A_t + lam I)^-1``, and averaging over tasks leaves one d x d system,
    ``(T I + mu sum_t M_t) w_bar = sum_t M_t r_t``, solved in the equivalent form
    ``(T I + (c - 1) sum_t A_t M_t) w_bar = c sum_t M_t r_t`` (positive definite for all
    ``c > 0``, no cancellation for large c). Cost ``O(sum_t n_t d^2 + T d^3)``; sparse X is
    never densified (only the d x d matrices ``A_t`` are dense). When every task observes
    the same rows (a wide Y without missing labels), all ``A_t = A = V diag(e) V^T`` (one SVD
    of X) and the solution is two ridge fits in that basis: with ``q_t = V^T r_t`` and their
    mean ``q_bar``, ``w_t = V (q_bar / (e + 2 alpha / T) + (q_t - q_bar) / (e + lam))``.

    {evgeniou_pontil}

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.linear import MeanClusteredRegressor
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> Y = np.array([[0.0, 0.0], [1.0, 3.0], [2.0, np.nan], [3.0, 9.0]])
    >>> model = MeanClusteredRegressor(alpha=0.01).fit(X, Y)  # independent ridge fits
    >>> model.coef_.round(2)
    array([[0.99],
           [2.98]])
    >>> model.predict([[4.0]], task_ids=[1]).round(2)
    array([11.95])
    >>> MeanClusteredRegressor(alpha=0.01, cluster_strength=10).fit(X, Y).coef_.round(2)
    array([[1.06],
           [2.93]])
    >>> MeanClusteredRegressor(alpha=0.01, cluster_strength=1e6).fit(X, Y).coef_.round(2)
    array([[2.09],
           [2.09]])
    """

    def __init__(self, alpha=1.0, *, cluster_strength=1.0, fit_intercept=True, standardize=False,
                 unknown_task="error"):
        self.alpha = alpha
        self.cluster_strength = cluster_strength
        self.fit_intercept = fit_intercept
        self.standardize = standardize
        self.unknown_task = unknown_task

    def _fit_multitask(self, X, Y, mask):
        X, scale = self._scaled(X, observation_weights(mask))
        check_finite_squares(X, Y, mask=mask, tasks=self.tasks_)
        self._set_coef(*solve_mean_clustered(
            X, Y, mask, self.alpha, self.cluster_strength, fit_intercept=self.fit_intercept),
            scale)

    def _fit_long(self, X, y, task_index):
        X, scale = self._scaled(X, observation_weights(None, X.shape[0]))
        check_finite_squares(X, y, task_index=task_index, tasks=self.tasks_)
        self._set_coef(*solve_mean_clustered(
            X, y, None, self.alpha, self.cluster_strength, fit_intercept=self.fit_intercept,
            task_index=task_index, n_tasks=self.n_tasks_), scale)

    def _predict_raw(self, X):
        return self._decision(X)

    def _predict_shared(self, X):
        return self._shared_decision(X)

    def _predict_tasks(self, X, task_index):
        return predict_rows(X, self.coef_, self.intercept_, task_index)


@Substitution(**LINEAR_DOCS)
class MeanClusteredClassifier(_BinaryLogisticMixin, _MeanClusteredMixin, MultiTaskClassifierMixin,
                              BaseEstimator):
    r"""Multi-task binary logistic regression with every task pulled towards the mean task.

    Minimises over the task coefficients ``W = [w_1, ..., w_T]`` and intercepts ``b``::

        sum_t 1 / n_t * sum_{i in task t} log(1 + exp(-s_i (x_i w_t + b_t)))
        + alpha * (||w_bar||^2_2 + cluster_strength / T * sum_t ||w_t - w_bar||^2_2)
        + alpha * cluster_strength / T * sum_t (c_t - c_bar)^2,   c_t = b_t + x_bar w_t

    where task ``t`` has ``n_t`` observed labels, ``s_i = +1`` for the task's second class
    (``classes_[t][1]``) and ``-1`` for its first, ``T`` is the number of tasks,
    ``w_bar = (1 / T) * sum_t w_t`` is the mean task, ``c_t`` task t's intercept at the mean
    of X (``x_bar``, the mean of the rows over the observed labels) and ``c_bar`` their mean
    (free, unpenalised). Every task must be binary. In a binary multi-task problem (all tasks
    share two classes) a task may have seen one class only: the last term, which pulls the
    intercepts towards their mean as the coefficients are pulled, keeps its intercept finite
    (without it, the loss of a one-class task falls towards 0 as its intercept runs off to
    infinity). With one task it vanishes. Taken at the mean of X, the pull does not depend
    on where each column's zero is: a constant added to a column changes ``intercept_``
    (the intercepts ``b_t`` of the user's X) only.

    Parameters
    ----------
    {mean_clustered_alpha}
    cluster_strength : float, default=1.0
        Weight of the deviations from the mean task, > 0. 1 fits an independent
        l2-penalised logistic regression per task; larger values pull the tasks together and
        ``-> inf`` gives one pooled model with per-task intercepts. See Notes.
    fit_intercept : bool, default=True
        Fit an intercept per task (pulled towards the mean intercept, see above).
    standardize : bool, default=False
        Fit on the features divided by their standard deviation over the observed rows of
        all tasks pooled (see :class:`MeanClusteredRegressor`); ``coef_`` is reported in the
        user's units.
    tol : float, default=1e-8
        Newton's method stops when half the squared Newton decrement (the quadratic model's
        estimate of the objective's distance to its minimum) is at most ``tol``.
    max_iter : int, default=50
        Maximum number of Newton steps; reaching it raises a ConvergenceWarning.
    unknown_task : {"error", "shared"}, default="error"
        A task id not seen in fit: raise :class:`~skmtl.UnknownTaskError`, or
        (``"shared"``) give it the mean model's probabilities,
        ``sigmoid(X @ shared_coef_ + shared_intercept_)`` for the second class.

    Attributes
    ----------
    {mean_clustered_coef}
    {mean_clustered_shared}
    n_iter_ : int
        Number of Newton steps taken.
    classes_ : ndarray or list of ndarray
        The two classes of a 1-D y, else the two classes of each task.
    {task_attributes}

    See Also
    --------
    MeanClusteredRegressor : The same penalty with the squared loss.

    Notes
    -----
    {cluster_strength_notes}

    - ``c = 1``: the coefficients are independent problems
      ``1 / n_t sum log(1 + exp(-s z)) + alpha / T ||w_t||^2``, coupled only through the pull
      of the intercepts. Without intercepts (or without that pull, ``pull_intercepts=False``
      in :func:`solve_mean_clustered_logistic`), dividing by ``2 alpha / T`` gives
      scikit-learn's ``0.5 ||w||^2 + C sum log-loss``:
      ``LogisticRegression(C=T / (2 * n_t * alpha))`` on the task's rows (one task, where
      the pull vanishes: ``C = 1 / (2 n alpha)``).
    - ``c -> inf``: one shared ``w`` with penalty ``alpha ||w||^2`` and one shared
      intercept, each row weighted by ``1 / n_t``.

    Solver: Newton's method. The Hessian is block diagonal over tasks (the
    ``(d + 1) x (d + 1)`` matrix ``[X_t, 1]^T D_t [X_t, 1] / n_t`` with the logistic weights
    ``D_t``, plus ``2 alpha c / T`` on the coefficients, the intercept as the last coordinate)
    plus the coupling of the mean, so every Newton system is solved exactly by the same
    elimination to one d x d system as the regressor's normal equations:
    ``O(sum_t n_t d^2 + T d^3)`` per step, usually below 10 steps. On dense X with ``d + 1 >=
    128`` coefficients whose tasks have fewer than ``(d + 1) / 2`` labels, the blocks stay in
    the tasks' weighted rows instead (the kernel form, ``O(sum_t n_t^2 d + N d^2)`` per step
    for ``N`` labels, ``N d`` memory instead of ``T d^2``): on 10,000 MoleculeACE molecules
    (30 targets, 2,048 bits), 17 s and 0.7 GB of arrays where the (T, d, d) blocks took 78 s
    and 2.8 GB. A backtracking line search on the objective keeps every step a descent step.

    {evgeniou_pontil}

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.linear import MeanClusteredClassifier
    >>> X = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    >>> Y = np.array([[0, 1], [0, 1], [1, 0], [1, 0]])
    >>> model = MeanClusteredClassifier(alpha=0.01).fit(X, Y)
    >>> model.predict([[-3.0], [3.0]])
    array([[0, 1],
           [1, 0]])
    >>> model.coef_.round(2)
    array([[ 2.9],
           [-2.9]])
    >>> model.n_iter_
    7
    >>> model.set_params(cluster_strength=5).fit(X, Y).coef_.round(2)
    array([[ 1.85],
           [-1.85]])
    """

    _max_classes = 2

    _parameter_constraints = {
        **_MeanClusteredMixin._parameter_constraints,
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, alpha=1.0, *, cluster_strength=1.0, fit_intercept=True, standardize=False,
                 tol=1e-8, max_iter=50, unknown_task="error"):
        self.alpha = alpha
        self.cluster_strength = cluster_strength
        self.fit_intercept = fit_intercept
        self.standardize = standardize
        self.tol = tol
        self.max_iter = max_iter
        self.unknown_task = unknown_task

    def _fit_multitask(self, X, Y, mask):
        X, scale = self._scaled(X, observation_weights(mask))
        check_finite_squares(X, mask=mask)
        W, b, self.n_iter_ = solve_mean_clustered_logistic(
            X, Y, mask, self.alpha, self.cluster_strength, fit_intercept=self.fit_intercept,
            tol=self.tol, max_iter=self.max_iter)
        self._set_coef(W, b, scale)

    def _fit_long(self, X, y, task_index):
        X, scale = self._scaled(X, observation_weights(None, X.shape[0]))
        check_finite_squares(X)
        W, b, self.n_iter_ = solve_mean_clustered_logistic(
            X, y, None, self.alpha, self.cluster_strength, fit_intercept=self.fit_intercept,
            tol=self.tol, max_iter=self.max_iter, task_index=task_index,
            n_tasks=self.n_tasks_)
        self._set_coef(W, b, scale)


