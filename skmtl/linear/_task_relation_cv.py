"""Multi-task relationship learning with ``alpha`` chosen by cross-validation.

Per training fold, the solver of :mod:`._solver_task_relation` is run at every alpha of the
grid and each alpha is scored on the fold's test rows from the coefficients. The grid is the
units-free one of the other linear ``*CV`` estimators (features scaled inside, the largest
alpha set by the data's curvature), extended when its optimum is at an edge
(:class:`~skmtl.linear._cv._AlphaPathCVMixin`). ``relation_ratio`` is fixed.
"""

from sklearn.base import BaseEstimator

from skmtl.base import MultiTaskClassifierMixin, MultiTaskRegressorMixin
from skmtl.linear import _cv
from skmtl.linear._binary import _BinaryLogisticMixin
from skmtl.linear._docs import ALPHA_CV_EDGES, LINEAR_DOCS, alpha_cv_docs
from skmtl.linear._solver_task_relation import (
    least_squares_data,
    solve_task_relation,
    solve_task_relation_logistic,
)
from skmtl.linear._task_relation import (
    _DOCS,
    TaskRelationClassifier,
    TaskRelationRegressor,
    _TaskRelationMixin,
)
from skmtl.utils._docstring import Substitution, join_blocks

__all__ = ["TaskRelationClassifierCV", "TaskRelationRegressorCV"]


class _TaskRelationCVMixin(_cv._AlphaPathCVMixin, _TaskRelationMixin):
    """The alpha search of the task-relation models; ``relation_ratio`` fixed."""

    _parameter_constraints = _cv.alpha_cv_constraints(_TaskRelationMixin._parameter_constraints)

    def __init__(self, *, alphas=None, n_alphas=20, eps=1e-3, relation_ratio=0.5, cv=5,
                 fit_intercept=True, standardize=True, scoring=None, n_jobs=None, tol=1e-12,
                 max_iter=1000, unknown_task="error"):
        self.alphas = alphas
        self.n_alphas = n_alphas
        self.eps = eps
        self.relation_ratio = relation_ratio
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.standardize = standardize
        self.scoring = scoring
        self.n_jobs = n_jobs
        self.tol = tol
        self.max_iter = max_iter
        self.unknown_task = unknown_task

    def _weakest_curvature(self, n_tasks):
        # alpha (1 - r + r / T), along a rank-one W (see Notes)
        return 1.0 - self.relation_ratio + self.relation_ratio / n_tasks

    # the data's part of the solver computed once per training fold (None: none)
    _prepare = None

    def _path(self, X, Y, mask, kwargs):
        # the solver starts every fit from Omega = I / T (it takes no starting point)
        if self._prepare is not None:
            kwargs = {**kwargs, "data": self._prepare(X, Y, mask,
                                                      fit_intercept=self.fit_intercept,
                                                      **kwargs)}
        return lambda alpha: self._solve(X, Y, mask, kwargs, alpha)[:2]

    def _refit(self, args, kwargs, scale):
        self._fit_scaled(*args, kwargs, scale, self.alpha_)


def _cv_tail(kind, other, loss, curvature):
    """The See Also and Notes sections of the task-relation ``{kind}CV``."""
    shared = ("" if kind != "Regressor" else """
    The tasks' centred moments (on wide data, the thin SVDs of their rows) are computed once
    per training fold and serve every alpha.""")
    return f"""
    See Also
    --------
    TaskRelation{kind} : A fixed alpha.
    TaskRelation{other}CV : The same search with the {loss} loss.
    LowRank{kind}CV : The trace norm itself (not squared), alpha by cross-validation.

    Notes
    -----
    **Default alphas.** At the optimal ``Omega`` the penalty is
    ``lambda_1 / 2 ||W||_F^2 + lambda_2 / 2 ||W||_*^2``; since ``||W||_* >= ||W||_F``, with
    equality for a rank-one ``W`` (tasks along one direction), its weakest curvature is
    ``alpha * (1 - r + r / T)`` (``r = relation_ratio``). With ``e_max`` the largest
    eigenvalue of the average over tasks of the (per-task centred, when ``fit_intercept``)
    second moments ``X_t^T X_t / n_t`` of the scaled X on all the data and ``h`` the loss's
    largest curvature ({curvature})::

        alpha_max = 10 * h * e_max / (1 - r + r / T)

    At ``alpha_max`` the penalty's weakest curvature is ten times the largest curvature of
    the average task's loss (the rule of :class:`MeanClusteredRegressorCV`: both give
    ``alpha_max = 10 * h * e_max`` to independent ridge tasks, here ``r = 0``). The grid goes
    down to ``eps * alpha_max``.

{ALPHA_CV_EDGES}

    **relation_ratio** is not searched: search it with
    :class:`~sklearn.model_selection.GridSearchCV` over this estimator (each of its points
    then chooses its own alpha), e.g. ``GridSearchCV(TaskRelation{kind}CV(),
    {{"relation_ratio": [0.2, 0.5, 0.8]}})``.

    **Cost.** Per fold, one fit of the solver per alpha, plus the refit. The solver takes no
    starting point, so each alpha starts from its own independent ridge fits (no warm start
    along the path): the refit is exactly :class:`TaskRelation{kind}` at ``alpha_``.{shared}

    Examples
    --------"""


def _cv_docs(kind, other, loss, curvature, stratified, criterion):
    """The blocks of the task-relation ``{kind}CV``'s docstring."""
    blocks = {**LINEAR_DOCS, **_DOCS,
              **alpha_cv_docs(f"TaskRelation{kind}", stratified, criterion)}
    return {
        **blocks,
        "relation_cv_parameters": join_blocks(*(blocks[name] for name in (
            "alpha_cv_grid", "relation_ratio", "alpha_cv_search", "relation_solver"))),
        "relation_cv_attributes": join_blocks(blocks["alpha_cv_attributes"],
                                              blocks["relation_attributes"]),
        "relation_cv_tail": _cv_tail(kind, other, loss, curvature),
    }


@Substitution(**_cv_docs("Regressor", "Classifier", "logistic", "1, least squares", "",
                          "squared error"))
class TaskRelationRegressorCV(_TaskRelationCVMixin, MultiTaskRegressorMixin, BaseEstimator):
    r"""Multi-task relationship learning (ridge) with ``alpha`` chosen by cross-validation.

    The model of :class:`TaskRelationRegressor`::

        {relation_regressor_objective}

    with ``lambda_1 = alpha * (1 - relation_ratio)``, ``lambda_2 = alpha * relation_ratio / T``,
    minimised over ``W``, ``b`` and the task covariance ``Omega`` (on the scaled features with
    ``standardize=True``) at each ``alpha`` of a grid; every alpha is scored on the test
    folds of ``cv`` by the held-out squared error of all test labels, and the best alpha is
    refitted on all the data. ``relation_ratio`` is fixed (see Notes).

    Parameters
    ----------
    {relation_cv_parameters}
    unknown_task : {"error", "shared"}, default="error"
        A task id not seen in fit: raise :class:`~skmtl.UnknownTaskError`, or (``"shared"``)
        predict it with the mean task, ``X @ shared_coef_ + shared_intercept_``.

    Attributes
    ----------
    {relation_cv_attributes}
    {task_attributes}

    {relation_cv_tail}
    >>> import numpy as np
    >>> from skmtl.linear import TaskRelationRegressorCV
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((60, 3))
    >>> w = np.array([1.0, -2.0, 0.5])
    >>> Y = np.column_stack([X @ w, X @ w, -X @ w]) + rng.standard_normal((60, 3))
    >>> model = TaskRelationRegressorCV(n_alphas=5, cv=3).fit(X, Y)
    >>> np.sign(model.task_correlation_).astype(int)
    array([[ 1,  1, -1],
           [ 1,  1, -1],
           [-1, -1,  1]])
    >>> bool(-model.best_score_ < 1.5)  # held-out mean squared error (noise variance 1)
    True
    """

    _model = TaskRelationRegressor
    _default_score = staticmethod(_cv._pooled_squared_error)
    _solver = staticmethod(solve_task_relation)
    _prepare = staticmethod(least_squares_data)


@Substitution(**_cv_docs("Classifier", "Regressor", "squared", "1 / 4, the logistic loss",
                          "; stratified on the classes", "log loss"))
class TaskRelationClassifierCV(_BinaryLogisticMixin, _TaskRelationCVMixin,
                               MultiTaskClassifierMixin, BaseEstimator):
    r"""Multi-task relationship learning (logistic) with ``alpha`` chosen by cross-validation.

    The model of :class:`TaskRelationClassifier`::

        {relation_classifier_objective}

    with ``lambda_1 = alpha * (1 - relation_ratio)``, ``lambda_2 = alpha * relation_ratio / T``,
    ``s_i = +1`` for the task's second class and ``-1`` for its first, and ``c_bar`` the mean
    of the intercepts at the mean of X, ``c_t`` (the last term keeps the intercept of a task
    that saw one class finite),
    minimised over ``W``, ``b`` and ``Omega`` (on the scaled features with
    ``standardize=True``) at each ``alpha`` of a grid; every alpha is scored on the test folds
    of ``cv`` by the held-out log loss of all test labels, and the best alpha is refitted on
    all the data. ``relation_ratio`` is fixed (see Notes). Every task must be binary.

    Parameters
    ----------
    {relation_cv_parameters}
    unknown_task : {"error", "shared"}, default="error"
        A task id not seen in fit: raise :class:`~skmtl.UnknownTaskError`, or (``"shared"``)
        give it the mean task's probabilities.

    Attributes
    ----------
    {relation_cv_attributes}
    classes_ : ndarray or list of ndarray
        The two classes of a 1-D y, else the two classes of each task.
    {task_attributes}

    {relation_cv_tail}
    >>> import numpy as np
    >>> from skmtl.linear import TaskRelationClassifierCV
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((120, 2))
    >>> z = X @ np.array([2.0, -1.0])
    >>> Y = (np.column_stack([z, z, -z]) + rng.logistic(size=(120, 3)) > 0).astype(int)
    >>> model = TaskRelationClassifierCV(n_alphas=5, cv=3).fit(X, Y)
    >>> np.sign(model.task_correlation_).astype(int)
    array([[ 1,  1, -1],
           [ 1,  1, -1],
           [-1, -1,  1]])
    >>> bool(-model.best_score_ < 0.6)  # held-out log loss per label
    True
    """

    _model = TaskRelationClassifier
    _default_score = staticmethod(_cv._pooled_log_loss)
    _curvature = 0.25
    _max_classes = 2
    _solver = staticmethod(solve_task_relation_logistic)
