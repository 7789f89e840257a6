"""Block-sparse (l1/lq mixed-norm) multi-task linear models: all tasks select the same features."""

from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, is_classifier

from skmtl.base import MultiTaskClassifierMixin, MultiTaskRegressorMixin
from skmtl.linear._binary import _BinaryLogisticMixin
from skmtl.linear._datafits import Logistic, Quadratic
from skmtl.linear._designs import predict_rows
from skmtl.linear._docs import LINEAR_DOCS
from skmtl.linear._solver_bcd import solve_block_sparse
from skmtl.linear._standardize import column_scales, observation_weights, scale_columns
from skmtl.utils._docstring import Substitution
from skmtl.utils._sklearn_compat import Interval
from skmtl.utils.validation import check_finite_squares

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
        "standardize": ["boolean"],
    }

    _X_dtype = np.float64
    # a skmtl.linear._datafits.Datafit subclass; the one hook a new loss needs
    _datafit = None
    # "auto": scikit-learn's MultiTaskLasso where it solves exactly our problem; "bcd": ours.
    _solver = "auto"

    # the regressor and the classifier have the same parameters: declared once, here
    def __init__(self, alpha=1.0, *, q=2, fit_intercept=True, tol=1e-6, max_iter=1000,
                 warm_start=False, standardize=False):
        self.alpha = alpha
        self.q = q
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start
        self.standardize = standardize

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _scaled(self, X, mask):
        """``(X / scale, scale)`` with ``standardize`` (see :mod:`._standardize`), else
        ``(X, None)``; a row weighs its number of observed labels (one: ``mask`` None, long
        data)."""
        if not self.standardize:
            return X, None
        scale = column_scales(X, observation_weights(mask, X.shape[0]), self.fit_intercept)
        return scale_columns(X, scale), scale

    def _fit_long(self, X, y, task_index):
        # long data straight to the design's observations: no (n_samples, n_tasks) array
        self._fit_linear(X, y, None, task_index=task_index, n_tasks=self.n_tasks_)

    def _fit_linear(self, X, Y, mask, **long):
        _check_q(self.q)
        n_tasks, n_features = self.n_tasks_, X.shape[1]
        X, scale = self._scaled(X, mask)
        check_finite_squares(X, None if is_classifier(self) else Y, mask=mask,
                             task_index=long.get("task_index"), tasks=self.tasks_)
        W0 = b0 = None
        if (self.warm_start and hasattr(self, "coef_")
                and self.coef_.shape == (n_tasks, n_features)):
            W0, b0 = self.coef_ * (1.0 if scale is None else scale), self.intercept_
        W, b, gap, n_iter = solve_block_sparse(
            X, Y, mask, self.alpha, q=self.q, datafit=self._datafit,
            fit_intercept=self.fit_intercept, W0=W0, b0=b0, tol=self.tol,
            max_iter=self.max_iter, solver=self._solver, **long,
        )
        self.coef_, self.intercept_ = (W if scale is None else W / scale), b
        self.dual_gap_, self.n_iter_ = gap, n_iter

    def _decision(self, X):
        scores = X @ self.coef_.T
        if sp.issparse(scores):  # pragma: no cover - sparse @ dense is dense
            scores = scores.toarray()
        return np.asarray(scores, dtype=np.float64) + self.intercept_


@Substitution(**LINEAR_DOCS)
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
        :func:`~skmtl.linear._solver_bcd.block_sparse_alpha_max` gives ``coef_ = 0``.
    {block_sparse_q}
    {fit_intercept}
    tol : float, default=1e-6
        Stop when the relative duality gap ``(primal - dual) / primal`` is at most ``tol``.
    {block_sparse_max_iter}
    warm_start : bool, default=False
        Start from the previous ``coef_`` (when the shapes match) instead of zero.
    standardize : bool, default=False
        Fit on the features divided by their standard deviation over the observed rows of
        all tasks pooled (a row counts once per task that observes it; the root mean square
        without intercepts), glmnet's convention, with ``coef_`` reported in the user's
        units: the penalty then weighs every feature alike whatever its units. The columns
        are not centred (sparse X stays sparse); a constant column is left as it is. Off by
        default, so that the model is exactly the one above (MultiTaskLasso's, with a
        shared X and a complete Y); the CV variant scales by default.

    Attributes
    ----------
    {block_sparse_coef}
    dual_gap_ : float
        The relative duality gap ``(primal - dual) / primal`` at the solution, >= 0 (a dual
        point is made from the residuals rescaled to satisfy the dual-norm constraint). For
        ``alpha`` at most 1e-10 ``alpha_max`` (the gradient's dual norm at ``W = 0``), whose
        gap rounding keeps near 1, the relative KKT violation of
        :class:`BlockSparseClassifier`, as for ``alpha = 0``.
    {block_sparse_n_iter}
    {task_attributes}

    See Also
    --------
    BlockSparseClassifier : The same penalty with the logistic loss.
    sklearn.linear_model.MultiTaskLasso : Shared X, fully observed Y, q = 2.
    skmtl.IndependentTasks : One Lasso per task (no shared support).

    Notes
    -----
    The model has no shared part to predict a task not seen in fit from (the tasks share a
    support, not coefficients), hence no ``unknown_task`` parameter: an unseen task id
    raises :class:`~skmtl.UnknownTaskError`.

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

    _datafit = Quadratic

    def _fit_multitask(self, X, Y, mask):
        self._fit_linear(X, Y, mask)

    def _predict_raw(self, X):
        return self._decision(X)

    def _predict_tasks(self, X, task_index):
        return predict_rows(X, self.coef_, self.intercept_, task_index)

    def _single_task_reference(self):
        from sklearn.linear_model import Lasso

        # one task: ||w||_q = ||w||_1 summed over features, for q = 2 and q = inf alike
        return Lasso(alpha=self.alpha, fit_intercept=self.fit_intercept, tol=1e-12,
                     max_iter=100_000)


@Substitution(**LINEAR_DOCS)
class BlockSparseClassifier(_BinaryLogisticMixin, _BlockSparseMixin, MultiTaskClassifierMixin,
                            BaseEstimator):
    """Multi-task binary logistic regression with an l1/lq block penalty: a shared support.

    The optimisation objective, over ``W = coef_`` of shape (n_tasks, n_features) and the
    unpenalised intercepts ``b = intercept_`` of shape (n_tasks,), is::

        sum_t 1 / n_t * sum_{i in task t} log(1 + exp(-s_i (x_i w_t + b_t)))
            +  alpha * sum_j ||W[:, j]||_q
            +  sum_t kappa_t / 2 * (c_t - c_bar)^2,   c_t = b_t + x_bar w_t

    where task ``t`` sees its ``n_t`` observed rows only, ``s_i = +1`` for the task's second
    class (``classes_[t][1]``) and ``-1`` for its first, and ``||W[:, j]||_q`` (``q=2`` or
    ``q=np.inf``) is the norm of feature ``j``'s coefficients across tasks. Every task must be
    binary: a task with more classes raises a ValueError naming it.

    The last term (with two tasks or more) pulls the intercepts towards their mean,
    ``c_bar = sum_t kappa_t c_t / sum_t kappa_t``, with ``kappa_t = 1 / (4 n_t)``: a
    Gaussian prior on each intercept worth one label of its task (1 / 4 is the curvature of
    one label's log loss at probability 1 / 2, and each label weighs ``1 / n_t``). In a
    binary multi-task problem a task may have seen one class only; without the pull its
    loss falls towards 0 as its intercept runs off to infinity, with it the intercept stays
    finite (its distance ``d`` to the mean, for a task like the others but for its labels,
    solves ``exp(-d) = d / (4 n_t)``: 3.6 log-odds for 35 labels). Its weight fades as a
    task's labels grow, it does not depend on ``alpha`` (so ``alpha_max``, the all-zero
    model, is still a closed form), and it vanishes for one task. The pulled intercepts
    ``c_t`` are those at the mean of X, ``x_bar`` (over the observed labels, a row counted
    once per task that observes it): each task's log-odds for a typical row. So adding a
    constant to a column, or a constant column, changes ``intercept_`` only. (Pulled at
    ``x = 0``, the intercepts let a column of years or of a large constant escape the pull:
    its coefficients acted as free intercepts, and it set the CV variant's grid and slowed
    the solver.) ``intercept_`` is the intercept ``b_t`` of the user's X.

    For one task and any q this is l1-penalised logistic regression: scikit-learn's
    ``LogisticRegression(l1_ratio=1, C=1 / (n_samples * alpha))``.

    Parameters
    ----------
    alpha : float, default=1.0
        Strength of the block penalty. ``alpha`` at or above
        :func:`~skmtl.linear._solver_bcd.block_sparse_alpha_max` (``datafit="logistic"``)
        gives ``coef_ = 0`` (on yeast's standardised features it is below the default:
        :class:`BlockSparseClassifierCV` chooses ``alpha``).
    {block_sparse_q}
    {fit_intercept}
    tol : float, default=1e-6
        Stop when the relative KKT violation (see ``dual_gap_``) is at most ``tol``.
    {block_sparse_max_iter}
    warm_start : bool, default=False
        Start from the previous ``coef_`` and ``intercept_`` (when the shapes match).
    standardize : bool, default=False
        Fit on the features divided by their standard deviation over the observed rows of
        all tasks pooled (see :class:`BlockSparseRegressor`); ``coef_`` is in the user's
        units.

    Attributes
    ----------
    {block_sparse_coef}
    dual_gap_ : float
        Not a duality gap for the logistic loss: the relative KKT violation at the solution,
        i.e. the largest distance (in the dual norm) of a feature's negative gradient to
        ``alpha`` times the subdifferential of its block norm, or the largest intercept
        gradient, divided by ``alpha_max`` (the gradient's dual norm at ``W = 0``). >= 0,
        and 0 exactly at the optimum.
    {block_sparse_n_iter}
    classes_ : ndarray or list of ndarray
        The two classes of a 1-D y, else one array of two classes per task.
    {task_attributes}

    See Also
    --------
    BlockSparseRegressor : The same penalty with the squared loss.
    sklearn.linear_model.LogisticRegression : One task, ``l1_ratio=1``.

    Notes
    -----
    No shared model, hence no ``unknown_task`` parameter: an unseen task id raises
    :class:`~skmtl.UnknownTaskError`.

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

    _datafit = Logistic
    _max_classes = 2

    def _fit_multitask(self, X, Y, mask):
        self._fit_linear(X, Y, mask)
