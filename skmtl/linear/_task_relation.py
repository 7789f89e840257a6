"""Multi-task relationship learning: the task covariance is learned with the coefficients.

Zhang & Yeung (2010), "A convex formulation for learning task relationships in multi-task
learning", on the per-task mean loss of the observed rows (squared or binary logistic loss),
solved by alternating the W step and the closed-form Omega step
(:mod:`._solver_task_relation`).
"""

from functools import cached_property
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator

from skmtl.base import MultiTaskClassifierMixin, MultiTaskRegressorMixin
from skmtl.linear._binary import _BinaryLogisticMixin
from skmtl.linear._designs import predict_rows
from skmtl.linear._docs import LINEAR_DOCS
from skmtl.linear._linalg import _OneBlasThread
from skmtl.linear._mean_clustered import _MeanClusteredMixin
from skmtl.linear._solver_task_relation import solve_task_relation, solve_task_relation_logistic
from skmtl.linear._standardize import observation_weights
from skmtl.utils._docstring import Substitution, join_blocks
from skmtl.utils._sklearn_compat import Interval, StrOptions
from skmtl.utils.validation import check_finite_squares

__all__ = ["TaskRelationClassifier", "TaskRelationRegressor"]

_DOCS = {
    "relation_regressor_objective": """
        sum_t 1 / (2 n_t) * ||y_t - X_t w_t - b_t||^2_2
        + lambda_1 / 2 * ||W||_F^2 + lambda_2 / 2 * tr(W^T Omega^-1 W)
        subject to Omega positive semi-definite, tr(Omega) = 1
    """,
    "relation_classifier_objective": """
        sum_t 1 / n_t * sum_{i in task t} log(1 + exp(-s_i (x_i w_t + b_t)))
        + lambda_1 / 2 * ||W||_F^2 + lambda_2 / 2 * tr(W^T Omega^-1 W)
        + alpha / 2 * sum_t (c_t - c_bar)^2,   c_t = b_t + x_bar w_t
        subject to Omega positive semi-definite, tr(Omega) = 1
    """,
    "relation_ratio": """
    relation_ratio : float, default=0.5
        Share of ``alpha`` given to the task-covariance term, in [0, 1]:
        ``lambda_1 = alpha * (1 - relation_ratio)``,
        ``lambda_2 = alpha * relation_ratio / T``. 0 fits independent ridge models
        (penalty ``alpha / 2 ||w_t||^2`` each); larger values let related tasks share more.
    """,
    "relation_fit": """
    fit_intercept : bool, default=True
        Fit one intercept per task (not penalised; see the classifier's pull).
    standardize : bool, default=False
        Fit on the features divided by their standard deviation over the observed rows of
        all tasks pooled (see :class:`~skmtl.linear.MeanClusteredRegressor`); ``coef_`` is
        reported in the user's units, ``task_covariance_`` is the one learned on the scaled
        features.
    """,
    "relation_solver": """
    tol : float, default=1e-12
        Stopping tolerance on ``criterion_``, the relative duality gap ``(P - D) / P`` of
        the objective minimised over Omega (see Notes): the fit stops as soon as it is at
        most ``tol``, which certifies ``P - P_opt <= tol * P``. It also stops, without a
        warning and with ``criterion_`` above ``tol``, when the gap has stopped decreasing
        within its rounding floor, the most that float64 arithmetic can certify at that
        ``W`` (see Notes; ``relation_ratio=1`` on a close fit or badly scaled features).
    max_iter : int, default=1000
        Maximum number of iterations, sweeps (W step, then Omega step) and proximal gradient
        steps together; reaching it with the gap above ``tol`` (and not at its rounding
        floor) raises a ConvergenceWarning.
    """,
    "relation_alpha": """
    alpha : float, default=1.0
        Overall regularisation strength, > 0.
    """,
    "relation_attributes": """
    coef_ : ndarray of shape (n_tasks, n_features)
        Task coefficients ``W`` (one row per task, also for a 1-D y).
    intercept_ : ndarray of shape (n_tasks,)
        Task intercepts (zeros when ``fit_intercept=False``).
    task_covariance_ : ndarray of shape (n_tasks, n_tasks)
        The learned ``Omega`` (positive definite, unit trace). Formed when first read: the
        fit keeps it as a rank-``min(n_tasks, n_features)`` factor plus a multiple of the
        identity, so a fit of many tasks builds no ``n_tasks x n_tasks`` matrix.
    task_correlation_ : ndarray of shape (n_tasks, n_tasks)
        ``Omega`` scaled to a unit diagonal: the learned correlation of the tasks (negative
        for tasks whose coefficients point in opposite directions). Formed when first
        read.
    shared_coef_ : ndarray of shape (n_features,)
        The mean task ``coef_.mean(axis=0)``, the prediction for a task not seen in fit.
    shared_intercept_ : float
        ``intercept_.mean()``.
    criterion_ : float
        The relative duality gap ``(P - D) / P`` at ``coef_`` and ``intercept_`` (of the
        final fit: the refit at ``alpha_`` for the ``*CV`` estimators), with ``P`` the
        objective minimised over Omega and ``D`` the dual value of the residuals (see
        Notes); at most ``tol`` unless a ConvergenceWarning was raised or the fit stopped at
        the gap's rounding floor (see Notes). It is that of the scaled problem with
        ``standardize=True``.
    n_iter_ : int
        Number of iterations run: sweeps plus proximal gradient steps.
    """,
    "relation_notes": """
    With ``tr(Omega) = 1``, ``min_Omega tr(W^T Omega^-1 W) = ||W||_*^2`` (the squared trace
    norm), reached at ``Omega = (W W^T)^(1/2) / tr((W W^T)^(1/2))``: the problem is jointly
    convex. At ``Omega = I / T`` both terms equal ``||W||_F^2``: ``relation_ratio`` does not
    change the penalty of orthogonal tasks of equal norm, and lowers that of related ones
    (identical tasks: ``alpha / 2 ((1 - r) + r / T) ||W||_F^2``). With one task ``Omega = [[1]]``
    and the model is ridge with ``lambda_1 + lambda_2 = alpha``.

    So the objective over ``W`` (and ``b``) alone is ``P = sum_t L_t + lambda_1 / 2
    ||W||_F^2 + lambda_2 / 2 ||W||_*^2`` (plus the classifier's pull of the intercepts).

    Solver: block coordinate descent from ``Omega = I / T`` (independent ridge fits). The
    Omega step is closed form with ``W W^T + eps I`` in place of ``W W^T``, so that ``Omega``
    stays invertible; ``eps`` is lowered from ``1e-2`` to ``1e-14`` times the mean squared
    norm of the first task vectors each time a sweep lowers the objective by at most
    ``1e-10`` of its value (continuation: a tiny ``eps`` from the start stalls the alternation
    when the optimal ``W`` is rank-deficient). The W step solves the ``T d`` normal equations
    (Newton systems for the logistic loss, intercepts eliminated exactly) by conjugate
    gradients preconditioned by ``C (x) I + I (x) A_bar``, ``C = lambda_1 I + lambda_2
    Omega^-1`` and ``A_bar`` the mean of the tasks' second moments: exact in one iteration
    when all tasks observe the same rows. Each sweep's step is stretched when that lowers the
    objective (adaptive over-relaxation); the objective decreases at every sweep. If the last
    ``eps`` stage stalls before the stopping rule is met (a rank-deficient optimal ``W``, a
    small ``lambda_1``), accelerated proximal gradient on ``P`` itself finishes (FISTA; the
    proximal step of the penalty is closed form on the singular values of ``W``). Where that
    converges fast (``lambda_1 > 0`` and the loss's curvature at most ``1e3 lambda_1``) it
    also takes over in an earlier stage, as soon as the gap has not halved over 5 sweeps.

    Stopping rule: after every iteration, the relative duality gap ``(P - D) / P`` of ``P``
    (not of the ``eps`` problem), with ``D`` the Fenchel dual value of the negative gradient
    of the loss (the residuals over ``n_t`` for least squares); the dual of the penalty is
    closed form on the singular values of ``V_t = X_t^T theta_t``. The classifier's dual is
    taken after shifting all its intercepts by a common amount, which the pull does not
    penalise. The fit stops when the gap is at most ``tol`` (``criterion_``): ``P`` is then
    within ``tol * P`` of its minimum and, for ``lambda_1 > 0``, ``||W - W_opt||_F^2 <= 2 *
    tol * P / lambda_1``. At the default ``1e-12`` the coefficients of the Exam data
    (:func:`~skmtl.datasets.load_exam`) at ``alpha=0.01`` (``lambda_1 = 0.005``) are within
    4e-5 of the optimum (the largest is 1.7). With ``relation_ratio=1`` (``lambda_1 = 0``)
    the last digits come slowly: increase ``max_iter``.

    Rounding floor: ``W`` is stored to ``eps = 2.2e-16`` of each entry, which moves the dual
    point ``V`` by up to ``delta = eps || |A| |W| ||_F`` (``A`` the tasks' second moments,
    for the logistic loss its Hessian) and the gap ``P - D`` by up to ``B = min(2 ||W||_*
    delta, (1 + sqrt(2))^2 delta^2 / (2 lambda_1))`` (the second term for ``lambda_1 > 0``
    only). The solver stops, without a warning, when the gap has set no new minimum over 50
    proximal gradient steps and ``criterion_ <= B / P``: more iterations cannot certify
    less.
    With ``lambda_1 > 0`` the bound is negligible; with ``relation_ratio=1`` the gap is
    first-order sensitive to ``V`` and a close fit, or features of very different scales,
    can stop there, ``criterion_`` above ``tol`` (measured from 1e-12 to 2e-9; more
    iterations did not lower it).

    Memory: on wide data (dense X with at least 128 features, some tasks with fewer than
    half as many labels) no ``T d^2`` array of per-task blocks is formed. The regressor
    (with no more tasks than features) keeps each task's centred rows as their thin SVD,
    ``A_t = V_t diag(e_t) V_t^T``, from which the blocks of the W step are inverted exactly
    whatever the coupling; the classifier reads each Newton step's blocks ``X_t^T
    diag(weight_t) X_t`` from the rows. 10,000 MoleculeACE molecules (30 targets, 2,048
    bits): the regressor at ``alpha=1`` 14.6 s and a process peak of 1.03 GB, against 40.3 s
    and 2.78 GB from the moments in the same session (re-measured since: 7.7 to 8.2 s, 1.05
    GB, of which 0.43 GB before the fit); the classifier at ``alpha=0.01`` 64 s and 0.92 GB for the
    whole fit (143 iterations), where its first 3 sweeps took 430 s and 3.68 GB (its block
    Jacobi preconditioner now comes from each task's n_t x n_t Gram matrix: 2 conjugate
    gradient iterations a Newton step in the first sweep instead of about 150). Elsewhere
    the per-task blocks are formed, (T, d, d).

    References
    ----------
    Y. Zhang and D.-Y. Yeung, "A convex formulation for learning task relationships in
    multi-task learning", UAI 2010.
    """,
}

_DOCS["relation_params"] = join_blocks(*(_DOCS[name] for name in (
    "relation_alpha", "relation_ratio", "relation_fit", "relation_solver")))


class _TaskRelationMixin(_OneBlasThread, _MeanClusteredMixin):
    """Parameters, scaling and predictions of the task-relation estimators."""

    _parameter_constraints = {
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "relation_ratio": [Interval(Real, 0, 1, closed="both")],
        "fit_intercept": ["boolean"],
        "standardize": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "unknown_task": [StrOptions({"error", "shared"})],
    }

    def __init__(self, alpha=1.0, *, relation_ratio=0.5, fit_intercept=True, standardize=False,
                 tol=1e-12, max_iter=1000, unknown_task="error"):
        self.alpha = alpha
        self.relation_ratio = relation_ratio
        self.fit_intercept = fit_intercept
        self.standardize = standardize
        self.tol = tol
        self.max_iter = max_iter
        self.unknown_task = unknown_task

    def _fit(self, X, Y, mask, task_index):
        weights = observation_weights(mask, X.shape[0])
        X, scale = self._scaled(X, weights)
        self._check_scaled(X, Y, mask, task_index)
        kwargs = {} if task_index is None else {"task_index": task_index,
                                                "n_tasks": self.n_tasks_}
        self._fit_scaled(X, Y, mask, kwargs, scale, self.alpha)

    def _solve(self, X, Y, mask, kwargs, alpha):
        """``(W, b, omega, criterion, n_iter)`` at ``alpha`` on wide (``kwargs`` empty) or
        long data (``task_index``, ``n_tasks`` in ``kwargs``)."""
        return self._solver(X, Y, mask, alpha, self.relation_ratio,
                            fit_intercept=self.fit_intercept, tol=self.tol,
                            max_iter=self.max_iter, **kwargs)

    def _fit_scaled(self, X, Y, mask, kwargs, scale, alpha):
        """Fit at ``alpha`` on the features ``X`` (divided by ``scale``) and store the model."""
        for name in ("task_covariance_", "task_correlation_"):  # those of an earlier fit
            self.__dict__.pop(name, None)
        W, b, self._relation, self.criterion_, self.n_iter_ = self._solve(X, Y, mask, kwargs,
                                                                          alpha)
        self._set_coef(W, b, scale)

    # The T x T outputs are formed when first read, from the solver's factor (a fit that
    # never reads them, such as each fit of a grid search, forms no T x T matrix)
    @cached_property
    def task_covariance_(self):
        """The learned task covariance Omega, T x T (see the class docstring)."""
        if "_relation" not in self.__dict__:
            raise AttributeError(f"This {type(self).__name__} instance is not fitted yet: "
                                 "task_covariance_ is set by fit.")
        return self._relation.dense()

    @cached_property
    def task_correlation_(self):
        """Omega scaled to a unit diagonal (see the class docstring)."""
        omega = self.task_covariance_
        root = np.sqrt(np.diag(omega))
        return omega / np.outer(root, root)

    def _fit_multitask(self, X, Y, mask):
        self._fit(X, Y, mask, None)

    def _fit_long(self, X, y, task_index):
        self._fit(X, y, None, task_index)

    # the predictions of the regressor (the classifier's come from _BinaryLogisticMixin)
    _predict_raw = _MeanClusteredMixin._decision
    _predict_shared = _MeanClusteredMixin._shared_decision

    def _predict_tasks(self, X, task_index):
        return predict_rows(X, self.coef_, self.intercept_, task_index)


@Substitution(**LINEAR_DOCS, **_DOCS)
class TaskRelationRegressor(_TaskRelationMixin, MultiTaskRegressorMixin, BaseEstimator):
    r"""Multi-task ridge regression that learns the tasks' covariance (Zhang & Yeung, 2010).

    Minimises over the task coefficients ``W`` (one row ``w_t`` per task), the intercepts
    ``b`` and the task covariance ``Omega`` (T x T)::

        {relation_regressor_objective}

    with ``lambda_1 = alpha * (1 - relation_ratio)``, ``lambda_2 = alpha * relation_ratio / T``,
    where ``X_t, y_t`` are the ``n_t`` observed rows of task ``t`` and ``T`` the number of
    tasks. The intercepts are not penalised.

    Parameters
    ----------
    {relation_params}
    unknown_task : {"error", "shared"}, default="error"
        A task id not seen in fit: raise :class:`~skmtl.UnknownTaskError`, or (``"shared"``)
        predict it with the mean task, ``X @ shared_coef_ + shared_intercept_``.

    Attributes
    ----------
    {relation_attributes}
    {task_attributes}

    See Also
    --------
    TaskRelationClassifier : The same model with the logistic loss.
    MeanClusteredRegressor : A fixed task structure (all tasks pulled to their mean).

    Notes
    -----
    {relation_notes}

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.linear import TaskRelationRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((40, 3))
    >>> w = np.array([1.0, -2.0, 0.5])
    >>> Y = np.column_stack([X @ w, X @ w, -X @ w]) + 0.1 * rng.standard_normal((40, 3))
    >>> model = TaskRelationRegressor(alpha=0.1).fit(X, Y)
    >>> np.sign(model.task_correlation_).astype(int)
    array([[ 1,  1, -1],
           [ 1,  1, -1],
           [-1, -1,  1]])
    """

    _solver = staticmethod(solve_task_relation)

    def _check_scaled(self, X, Y, mask, task_index):
        check_finite_squares(X, Y, mask=mask, task_index=task_index, tasks=self.tasks_)


@Substitution(**LINEAR_DOCS, **_DOCS)
class TaskRelationClassifier(_BinaryLogisticMixin, _TaskRelationMixin, MultiTaskClassifierMixin,
                             BaseEstimator):
    r"""Multi-task binary logistic regression that learns the tasks' covariance.

    Minimises over ``W``, ``b`` and ``Omega`` (T x T)::

        {relation_classifier_objective}

    with ``lambda_1 = alpha * (1 - relation_ratio)``, ``lambda_2 = alpha * relation_ratio / T``,
    ``s_i = +1`` for the task's second class and ``-1`` for its first, ``c_t`` task t's
    intercept at the mean of X (``x_bar``, the mean of the rows over the observed labels) and
    ``c_bar`` their mean. The last term (only with intercepts and more than one task) pulls
    the intercepts towards their mean, as in :class:`MeanClusteredClassifier`: it keeps the
    intercept of a task that saw one class finite, and, taken at the mean of X, does not
    depend on where each column's zero is. Every task must be binary.

    Parameters
    ----------
    {relation_params}
    unknown_task : {"error", "shared"}, default="error"
        A task id not seen in fit: raise :class:`~skmtl.UnknownTaskError`, or (``"shared"``)
        give it the mean task's probabilities.

    Attributes
    ----------
    {relation_attributes}
    classes_ : ndarray or list of ndarray
        The two classes of a 1-D y, else the two classes of each task.
    {task_attributes}

    See Also
    --------
    TaskRelationRegressor : The same model with the squared loss.

    Notes
    -----
    {relation_notes}

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.linear import TaskRelationClassifier
    >>> X = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    >>> Y = np.array([[0, 0, 1], [0, 0, 1], [1, 1, 0], [1, 1, 0]])
    >>> model = TaskRelationClassifier(alpha=0.1).fit(X, Y)
    >>> model.predict([[-3.0], [3.0]])
    array([[0, 0, 1],
           [1, 1, 0]])
    >>> np.sign(model.task_correlation_).astype(int)
    array([[ 1,  1, -1],
           [ 1,  1, -1],
           [-1, -1,  1]])
    """

    _max_classes = 2
    _solver = staticmethod(solve_task_relation_logistic)

    def _check_scaled(self, X, Y, mask, task_index):
        check_finite_squares(X, mask=mask)
