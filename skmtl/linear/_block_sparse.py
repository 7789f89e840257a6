"""Block-sparse (l1/lq mixed-norm) multi-task linear models: all tasks select the same features."""

from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn.base import BaseEstimator

from skmtl.base import MultiTaskClassifierMixin, MultiTaskRegressorMixin
from skmtl.linear._solvers import solve_block_sparse
from skmtl.utils._sklearn_compat import Interval
from skmtl.utils.validation import _hashable

__all__ = ["BlockSparseClassifier", "BlockSparseRegressor"]


def _check_q(q):
    if q not in (2, np.inf):
        raise ValueError(f"q must be 2 or np.inf (the block norm); got {q!r}.")


class _BlockSparseMixin:
    """Parameters, fitting and linear predictions shared by the regressor and the classifier."""

    _parameter_constraints = {
        "alpha": [Interval(Real, 0, None, closed="left")],
        "q": [Interval(Real, 2, None, closed="both")],  # then _check_q: exactly 2 or inf
        "fit_intercept": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "warm_start": ["boolean"],
    }

    _X_dtype = np.float64
    _datafit = None
    # "auto": scikit-learn's MultiTaskLasso where it solves exactly our problem; "bcd": ours.
    _solver = "auto"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _fit_linear(self, X, Y, mask):
        _check_q(self.q)
        n_tasks, n_features = mask.shape[1], X.shape[1]
        W0 = b0 = None
        if (self.warm_start and hasattr(self, "coef_")
                and self.coef_.shape == (n_tasks, n_features)):
            W0, b0 = self.coef_, self.intercept_
        W, b, gap, n_iter = solve_block_sparse(
            X, Y, mask, self.alpha, q=self.q, datafit=self._datafit,
            fit_intercept=self.fit_intercept, W0=W0, b0=b0, tol=self.tol,
            max_iter=self.max_iter, solver=self._solver,
        )
        self.coef_, self.intercept_ = W, b
        self.dual_gap_, self.n_iter_ = gap, n_iter

    def _decision(self, X):
        scores = X @ self.coef_.T
        if sp.issparse(scores):  # pragma: no cover - sparse @ dense is dense
            scores = scores.toarray()
        return np.asarray(scores, dtype=np.float64) + self.intercept_


class BlockSparseRegressor(_BlockSparseMixin, MultiTaskRegressorMixin, BaseEstimator):
    """Multi-task least squares with an l1/lq block penalty: tasks share a sparse support.

    The optimisation objective, over ``W = coef_`` of shape (n_tasks, n_features) and the
    unpenalised intercepts ``b = intercept_`` of shape (n_tasks,), is::

        sum_t 1 / (2 n_t) * ||y_t - X_t w_t - b_t||^2_2  +  alpha * sum_j ||W[:, j]||_q

    where task ``t`` is fitted on its ``n_t`` observed rows ``(X_t, y_t)`` only (missing labels
    of a wide Y, or the rows of the task in long data), ``w_t = W[t]`` and ``||W[:, j]||_q``
    is the l_q norm (``q=2`` or ``q=np.inf``) of feature ``j``'s coefficients across tasks:
    a feature is used by every task or by none.

    With a fully observed Y and a shared X this is exactly the problem of
    :class:`~sklearn.linear_model.MultiTaskLasso` (same ``alpha``) for ``q=2``; for dense X it
    is then solved by it. Otherwise (sparse X, missing labels, long data, ``q=np.inf``) skmtl's
    block coordinate descent solves it: exact block updates with per-task curvature, working
    sets, Anderson acceleration, stopped on the duality gap.

    Parameters
    ----------
    alpha : float, default=1.0
        Strength of the block penalty. ``alpha`` at or above
        :func:`~skmtl.linear._solvers.block_sparse_alpha_max` gives ``coef_ = 0``.
    q : {2, np.inf}, default=2
        Norm of each feature's block: ``2`` (group lasso, l2,1) or ``np.inf`` (l-inf,1, which
        also pushes a shared feature to the same magnitude across tasks).
    fit_intercept : bool, default=True
        Fit one unpenalised intercept per task.
    tol : float, default=1e-6
        Stop when the relative duality gap ``(primal - dual) / primal`` is at most ``tol``.
    max_iter : int, default=1000
        Maximum number of epochs (passes of coordinate descent over the working set).
    warm_start : bool, default=False
        Start from the previous ``coef_`` (when the shapes match) instead of zero.

    Attributes
    ----------
    coef_ : ndarray of shape (n_tasks, n_features)
        ``W``; row ``t`` is task ``t``'s coefficients (``tasks_`` order). Also for a 1-D y
        (one row).
    intercept_ : ndarray of shape (n_tasks,)
        Per-task intercepts.
    dual_gap_ : float
        The relative duality gap ``(primal - dual) / primal`` at the solution, >= 0 (a dual
        point is made from the residuals rescaled to satisfy the dual-norm constraint).
    n_iter_ : int
        Number of epochs run.
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
    BlockSparseClassifier : The same penalty with the logistic loss.
    sklearn.linear_model.MultiTaskLasso : Shared X, fully observed Y, q = 2.
    skmtl.IndependentTasks : One Lasso per task (no shared support).

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.linear import BlockSparseRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(50, 4))
    >>> Y = np.column_stack([X[:, 0] + 0.1 * rng.normal(size=50), 2 * X[:, 0]])
    >>> Y[:10, 1] = np.nan  # missing labels are left out of task 1's loss
    >>> model = BlockSparseRegressor(alpha=0.1).fit(X, Y)
    >>> np.flatnonzero(np.abs(model.coef_).max(axis=0))  # the shared support
    array([0])
    >>> model.predict(X[:2]).shape
    (2, 2)
    """

    _datafit = "quadratic"

    def __init__(self, alpha=1.0, *, q=2, fit_intercept=True, tol=1e-6, max_iter=1000,
                 warm_start=False):
        self.alpha = alpha
        self.q = q
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start

    def _fit_multitask(self, X, Y, mask):
        self._fit_linear(X, Y, mask)

    def _predict_raw(self, X):
        return self._decision(X)

    def _single_task_reference(self):
        from sklearn.linear_model import Lasso

        # one task: ||w||_q = ||w||_1 summed over features, for q = 2 and q = inf alike
        return Lasso(alpha=self.alpha, fit_intercept=self.fit_intercept, tol=1e-12,
                     max_iter=100_000)


class BlockSparseClassifier(_BlockSparseMixin, MultiTaskClassifierMixin, BaseEstimator):
    """Multi-task binary logistic regression with an l1/lq block penalty: a shared support.

    The optimisation objective, over ``W = coef_`` of shape (n_tasks, n_features) and the
    unpenalised intercepts ``b = intercept_`` of shape (n_tasks,), is::

        sum_t 1 / n_t * sum_{i in task t} log(1 + exp(-s_i (x_i w_t + b_t)))
            +  alpha * sum_j ||W[:, j]||_q

    where task ``t`` sees its ``n_t`` observed rows only, ``s_i = +1`` for the task's second
    class (``classes_[t][1]``) and ``-1`` for its first, and ``||W[:, j]||_q`` (``q=2`` or
    ``q=np.inf``) is the norm of feature ``j``'s coefficients across tasks. Every task must be
    binary: a task with more classes, or with a single class, raises a ValueError naming it.

    For one task and any q this is l1-penalised logistic regression: scikit-learn's
    ``LogisticRegression(l1_ratio=1, C=1 / (n_samples * alpha))``.

    Parameters
    ----------
    alpha : float, default=1.0
        Strength of the block penalty.
    q : {2, np.inf}, default=2
        Norm of each feature's block across tasks.
    fit_intercept : bool, default=True
        Fit one unpenalised intercept per task.
    tol : float, default=1e-6
        Stop when the relative KKT violation (see ``dual_gap_``) is at most ``tol``.
    max_iter : int, default=1000
        Maximum number of epochs (passes of coordinate descent over the working set).
    warm_start : bool, default=False
        Start from the previous ``coef_`` and ``intercept_`` (when the shapes match).

    Attributes
    ----------
    coef_ : ndarray of shape (n_tasks, n_features)
        ``W``; row ``t`` is task ``t``'s coefficients.
    intercept_ : ndarray of shape (n_tasks,)
        Per-task intercepts.
    dual_gap_ : float
        Not a duality gap for the logistic loss: the relative KKT violation at the solution,
        i.e. the largest distance (in the dual norm) of a feature's negative gradient to
        ``alpha`` times the subdifferential of its block norm, or the largest intercept
        gradient, divided by ``alpha_max`` (the gradient's dual norm at ``W = 0``). >= 0,
        and 0 exactly at the optimum.
    n_iter_ : int
        Number of epochs run.
    classes_ : ndarray or list of ndarray
        The two classes of a 1-D y, else one array of two classes per task.
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
    BlockSparseRegressor : The same penalty with the squared loss.
    sklearn.linear_model.LogisticRegression : One task, ``l1_ratio=1``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.linear import BlockSparseClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(100, 4))
    >>> Y = np.column_stack([X[:, 0] > 0, X[:, 0] + 0.5 * rng.normal(size=100) > 0])
    >>> model = BlockSparseClassifier(alpha=0.05).fit(X, Y.astype(int))
    >>> np.flatnonzero(np.abs(model.coef_).max(axis=0))
    array([0])
    >>> [p.shape for p in model.predict_proba(X[:3])]
    [(3, 2), (3, 2)]
    """

    _datafit = "logistic"
    _max_classes = 2

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def __init__(self, alpha=1.0, *, q=2, fit_intercept=True, tol=1e-6, max_iter=1000,
                 warm_start=False):
        self.alpha = alpha
        self.q = q
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start

    def _check_n_classes(self, classes):
        super()._check_n_classes(classes)
        for task, task_classes in zip(self.tasks_, classes):
            if len(task_classes) < 2:
                raise ValueError(
                    f"Task {_hashable(task)!r} has only one class "
                    f"({_hashable(task_classes[0])!r}); {type(self).__name__} needs two "
                    "classes in every task."
                )

    def _fit_multitask(self, X, Y, mask):
        self._fit_linear(X, Y, mask)

    def _predict_proba_raw(self, X):
        p = expit(self._decision(X))
        return [np.column_stack([1.0 - p[:, t], p[:, t]]) for t in range(p.shape[1])]

    def _predict_codes(self, X):
        return (self._decision(X) > 0).astype(np.intp)
