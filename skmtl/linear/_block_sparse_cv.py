"""Block-sparse multi-task linear models with ``alpha`` chosen by cross-validation.

As scikit-learn's :class:`~sklearn.linear_model.LassoCV`: a geometric grid of alphas from
``alpha_max`` (computed on all the data) down to ``eps * alpha_max``; per training fold, a
warm-started regularisation path (each alpha starts from the previous alpha's solution);
test scores computed from the coefficients directly; a refit at the best alpha on all data.
The regressor can also relax the path (``relax=True``, as glmnet's ``relax=TRUE``): each
alpha's support is refitted without penalty and the CV chooses a mix of the two fits too.
"""

from functools import partial
from numbers import Integral, Real

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils.parallel import Parallel, delayed

from skmtl.linear._block_sparse import BlockSparseClassifier, BlockSparseRegressor, _check_q
from skmtl.linear._cv import (
    MAX_EXTENSIONS,
    _as_fitted,
    _check_scoring,
    _cv_results,
    _fold_score,
    _GroupsFitMixin,
    _LongData,
    _pooled_log_loss,
    _pooled_squared_error,
    _positive,
    _WideData,
    edge_of,
    extend_geometric,
    flat_grid,
    warn_edge,
    warn_flat,
)
from skmtl.linear._docs import LINEAR_DOCS
from skmtl.linear._solver_bcd import (
    _refit_size_ok,
    _relaxed,
    _support,
    _support_least_squares,
    _task_rows,
    block_sparse_alpha_max,
    solve_block_sparse,
)
from skmtl.utils._docstring import Substitution, join_blocks
from skmtl.utils._sklearn_compat import Interval

__all__ = ["BlockSparseClassifierCV", "BlockSparseRegressorCV"]


class _BlockSparseCVMixin(_GroupsFitMixin):
    """The alpha grid, the per-fold warm-started paths, the choice and the refit.

    Wide or long data are wrapped for the folds (:class:`~._cv._WideData`,
    :class:`~._cv._LongData`): long data reach the solver as observations, no (n_samples,
    n_tasks) array is built.

    Placed left of the fixed-alpha model (:class:`BlockSparseRegressor` or
    :class:`BlockSparseClassifier`, ``_model``), whose tags, datafit and predictions it keeps,
    as :class:`~sklearn.linear_model.LogisticRegressionCV` extends ``LogisticRegression``.
    """

    _parameter_constraints = {
        "alphas": ["array-like", None],
        "n_alphas": [Interval(Integral, 1, None, closed="left")],
        "eps": [Interval(Real, 0, 1, closed="right")],
        "q": [Interval(Real, 2, None, closed="both")],  # then _check_q: exactly 2 or inf
        "fit_intercept": ["boolean"],
        "standardize": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "cv": ["cv_object"],
        "scoring": [None, str, callable],
        "n_jobs": [None, Integral],
    }
    # Whether the estimator has the ``relax`` and ``gammas`` parameters (the regressor).
    _relaxable = False

    # The fixed-alpha model; the built-in score from (codes or targets, decision, tasks, T).
    _model = None
    _default_score = None
    # The fixed-alpha model's single-task reference (Lasso at its alpha) has no CV analogue
    # with the same folds and score.
    _single_task_reference = None

    def __init__(self, *, alphas=None, n_alphas=100, eps=1e-3, q=2, fit_intercept=True,
                 standardize=True, tol=1e-6, max_iter=1000, cv=5, scoring=None, n_jobs=None):
        self.alphas = alphas
        self.n_alphas = n_alphas
        self.eps = eps
        self.q = q
        self.fit_intercept = fit_intercept
        self.standardize = standardize
        self.tol = tol
        self.max_iter = max_iter
        self.cv = cv
        self.scoring = scoring
        self.n_jobs = n_jobs

    def _fit_multitask(self, X, Y, mask):
        self._fit_cv(X, _WideData(X, Y, mask, self._layout, self.tasks_))

    def _fit_long(self, X, y, task_index):
        self._fit_cv(X, _LongData(X, y, task_index, self.tasks_))

    def _fit_cv(self, X, data):
        _check_q(self.q)
        (_, Y, mask), long = data.fit_args()
        X_all, scale = self._scaled(X, mask)
        data.check_finite_squares(X_all, self.tasks_, targets=not is_classifier(self))
        alpha_max = self._alpha_max(X_all, Y, mask, **long)
        default = self.alphas is None
        alphas = (self._default_alphas(alpha_max) if default
                  else np.unique(_positive(self.alphas, "alphas"))[::-1])
        relax = self._relaxable and self.relax
        gammas = _gamma_grid(self.gammas) if relax else np.ones(1)
        scorer = _check_scoring(self.scoring)
        splits = self._splits(X, data)
        starts = [None] * len(splits)  # each fold's last solution: the path goes on from it
        parts = []  # (n_splits, n_new_alphas, n_gammas, 2) per round, alphas decreasing
        for extension in range(MAX_EXTENSIONS + 1):
            new = alphas[sum(part.shape[1] for part in parts):]
            jobs = (delayed(self._fold_path)(data, train, test, scorer, gammas, new, start)
                    for (train, test), start in zip(splits, starts))
            results = Parallel(n_jobs=self.n_jobs)(jobs)
            starts = [start for _, start in results]
            parts.append(np.stack([values for values, _ in results]))
            values = np.concatenate(parts, axis=1)
            best = self._store_results(values, alphas, gammas, relax)
            means = self.cv_results_["mean_test_score"].reshape(alphas.size, gammas.size)
            edge = edge_of(np.where(np.isnan(means), -np.inf, means), best, 0, alphas.size)
            if edge == "first" and alphas[0] >= alpha_max:
                edge = None  # W = 0 there, and at every larger alpha: nothing beyond
            if not (default and edge == "last") or extension == MAX_EXTENSIONS:
                break
            alphas = extend_geometric(alphas, "last")
        if edge is not None:
            warn_edge("alpha", self.alpha_, alphas, extended=default)
        elif not default and flat_grid(means):  # e.g. every alpha >= alpha_max: W = 0
            warn_flat(["alpha"], [alphas])
        self.alphas_ = alphas
        # a cold refit: the model BlockSparse*(alpha=alpha_) with the same settings fits
        W, b, self.dual_gap_, self.n_iter_ = self._solve(X_all, Y, mask, self.alpha_, **long)
        self.coef_, self.intercept_ = (W if scale is None else W / scale), b
        if self._relaxable:
            self.gammas_ = gammas
            if self.gamma_ < 1.0:  # on all the data, whatever the support's size
                refit = _support_least_squares(X, Y, _task_rows(mask, **long),
                                               _support(self.coef_), self.fit_intercept)
                lasso = (self.coef_, self.intercept_)
                self.coef_, self.intercept_ = _relaxed(self.gamma_, lasso, refit)

    def _store_results(self, values, alphas, gammas, relax):
        """``cv_results_``, ``alpha_``, ``gamma_``, ``best_score_`` from the fold values
        (n_splits, n_alphas, n_gammas, 2); returns the index of the best point."""
        n_splits = values.shape[0]
        scores = (values[..., 0] / values[..., 1]).reshape(n_splits, -1)
        weights = values[..., 1].reshape(n_splits, -1)  # 0: a test fold without labels
        if np.all(gammas < 1.0) and (np.isnan(scores) & (weights > 0)).any(axis=0).all():
            raise ValueError(
                "No alpha has a support small enough to refit without a penalty on every "
                "training fold (each task needs as many training rows as features, plus one "
                "with an intercept), and gammas has no 1 (the group lasso) to fall back on. "
                "Add 1.0 to gammas, or larger alphas."
            )
        grid = {"alpha": np.repeat(alphas, gammas.size)}
        if relax:
            grid["gamma"] = np.tile(gammas, alphas.size)
        self.cv_results_, best = _cv_results(scores, grid, weights)
        self.alpha_ = float(grid["alpha"][best])
        self.best_score_ = float(self.cv_results_["mean_test_score"][best])
        if self._relaxable:
            self.gamma_ = float(gammas[best % gammas.size])
        return best

    def _solve(self, X, Y, mask, alpha, W0=None, b0=None, **long):
        return solve_block_sparse(
            X, Y, mask, alpha, q=self.q, datafit=self._datafit,
            fit_intercept=self.fit_intercept, W0=W0, b0=b0, tol=self.tol,
            max_iter=self.max_iter, solver=self._solver, **long,
        )

    def _alpha_max(self, X, Y, mask, **long):
        return block_sparse_alpha_max(X, Y, mask, q=self.q, fit_intercept=self.fit_intercept,
                                      datafit=self._datafit, **long)

    def _default_alphas(self, alpha_max):
        tiny = np.finfo(np.float64).resolution
        if alpha_max <= tiny:  # nothing to explain (as LassoCV): one tiny alpha, repeated
            return np.full(self.n_alphas, tiny)
        return np.geomspace(alpha_max, self.eps * alpha_max, self.n_alphas)

    def _fold_path(self, data, train, test, scorer, gammas, alphas, start):
        """Test values along the warm-started path of one training fold.

        Returns the ``(value, weight)`` pairs, shape (n_alphas, n_gammas, 2) (see
        :func:`_fold_score`), and the last solution ``(W, b)`` (in the fold's scaled units),
        from which the path goes on if the grid grows (``start``: the solution it starts
        from, None at the first alpha). ``gammas`` is ``[1.0]`` without relaxation. A relaxed
        point (gamma < 1) whose support on this fold cannot be refitted without a penalty
        (``_refit_size_ok``) scores NaN.
        """
        (X, Y, mask), long = data.fit_args(train)
        X_scaled, scale = self._scaled(X, mask)
        rows = _task_rows(mask, **long) if np.any(gammas < 1.0) else None
        fold = data.test_fold(test)
        values = np.full((alphas.shape[0], gammas.size, 2), np.nan)
        values[..., 1] = 1.0 if fold.y.size else 0.0  # no test label: no score (_fold_score)
        relaxing = bool(np.any(gammas < 1.0))
        W, b = start if start is not None else (None, None)
        support = refit = None  # the last support refitted, and its refit
        for i, alpha in enumerate(alphas):
            W, b, _, _ = self._solve(X_scaled, Y, mask, alpha, W0=W, b0=b, **long)
            W_user = W if scale is None else W / scale
            if relaxing:
                new = _support(W)
                if support is None or not np.array_equal(new, support):  # refit once per support
                    support = new
                    refit = (_support_least_squares(X, Y, rows, support, self.fit_intercept)
                             if _refit_size_ok(support, rows, self.fit_intercept) else None)
            for g, gamma in enumerate(gammas):
                if gamma == 1.0:  # the group lasso itself, not a sum with zero weight
                    W_g, b_g = W_user, b
                elif refit is None:
                    continue  # the support is too large to refit: NaN
                else:
                    W_g, b_g = _relaxed(gamma, (W_user, b), refit)
                values[i, g] = _fold_score(fold, W_g, b_g, data.n_tasks, scorer,
                                           self._default_score, partial(self._fitted, alpha))
        return values, (W, b)

    def _fitted(self, alpha, W, b):
        """The fixed-alpha model, fitted with these coefficients, for a scorer."""
        estimator = self._model(alpha, q=self.q, fit_intercept=self.fit_intercept,
                                tol=self.tol, max_iter=self.max_iter)
        return _as_fitted(estimator, self, W, b)


# -- relaxation ---------------------------------------------------------------------------------
def _gamma_grid(gammas):
    """The relaxation weights, validated, unique and decreasing (the plain fit, 1, first)."""
    values = np.asarray(gammas, dtype=np.float64).ravel()
    if values.size == 0 or not np.all((values >= 0) & (values <= 1)):
        raise ValueError(f"gammas must be a non-empty list of numbers in [0, 1]; got {values}.")
    return np.unique(values)[::-1]


def _attributes(points, grid, param_gamma, path_shape, coef):
    """The attributes shared by the two CV estimators, with the few words that differ."""
    return f"""
    alpha_ : float
        The chosen alpha: that of the first grid point with the best mean test score
        {points}.
    alphas_ : ndarray of shape (n_alphas_tried,)
        The alphas tried, decreasing (the default grid with its extensions: more than
        ``n_alphas`` where the grid was extended).
    cv_results_ : dict of ndarray
        One entry per grid point, as :class:`~sklearn.model_selection.GridSearchCV` with
        ``{grid}``: ``param_alpha``, {param_gamma}``params``,
""" + """\
        ``split{k}_test_score``, ``mean_test_score``, ``std_test_score`` and
        ``rank_test_score``. The score path (LassoCV's ``mse_path_``, with the sign of a
        score) is
        ``np.column_stack([cv_results_[f"split{k}_test_score"] for k in range(n_folds)])``,
""" + f"""\
        of shape {path_shape}.
    best_score_ : float
        Mean test score of the chosen grid point.
    coef_ : ndarray of shape (n_tasks, n_features)
        {coef}; row ``t`` is task ``t``'s coefficients.
    intercept_ : ndarray of shape (n_tasks,)
        Intercepts of the refit.
    """


_DOCS = {
    **LINEAR_DOCS,
    "block_sparse_cv_parameters": join_blocks("""
    alphas : array-like of shape (n_alphas,), default=None
        Values of ``alpha`` to try, all > 0 (used in decreasing order, never extended; an
        optimum at an edge, or scores all within a relative 1e-4 of each other, as when
        every alpha is at least ``alpha_max``, raise a
        :class:`~skmtl.linear.GridEdgeWarning`). None:
        ``n_alphas`` values log-spaced from ``alpha_max`` down to ``eps * alpha_max``, where
        ``alpha_max`` (:func:`~skmtl.linear._solver_bcd.block_sparse_alpha_max`, computed on
        all the (scaled) data, as LassoCV does) is the smallest alpha giving ``coef_ = 0``.
        When the best alpha is the smallest, the path goes on by a decade (the grid's own
        ratio, warm-started from each fold's last solution), at most 3 times, then warns.
        The largest, ``alpha_max``, is not extended: every larger alpha gives the same
        all-zero model on all the data, the refit. A training fold's own ``alpha_max`` can be
        larger, so its model at ``alpha_max`` is not quite zero; where the best alpha is
        ``alpha_max``, ``best_score_`` can then be a little below the held-out score of the
        all-zero model returned (0.9% of the MSE on 40 rows of noise).
    n_alphas : int, default=100
        Number of alphas of the default grid (LassoCV's default).
    eps : float, default=1e-3
        ``alpha_min / alpha_max`` of the default grid, in (0, 1].
    """, LINEAR_DOCS["block_sparse_q"], LINEAR_DOCS["fit_intercept"], """
    standardize : bool, default=True
        Scale the features inside by their standard deviation over the observed rows of all
        tasks pooled (glmnet's convention; see the fixed-alpha model): the chosen model and
        its predictions do not depend on the features' units, and, the grid being relative
        to ``alpha_max`` (which scales with the target), not on the target's either.
        ``coef_`` is in the user's units. Sparse X is scaled, never centred.
    tol : float, default=1e-6
        Tolerance of every fit of the path and of the refit (see ``dual_gap_``).
    max_iter : int, default=1000
        Maximum number of epochs of every fit.
    """),
}


@Substitution(**_DOCS, block_sparse_cv_attributes=_attributes(
    points="(``alphas_`` then ``gammas_`` order: ties go to the largest\n        "
    "alpha, then to the largest gamma)",
    grid='{"alpha": alphas_, "gamma": gammas_}',
    param_gamma="``param_gamma`` (with\n        ``relax=True`` only), ",
    path_shape="(n_alphas * n_gammas, n_folds), ``n_gammas = len(gammas_)``:\n        "
    "alpha-major, row ``i * n_gammas + g`` is ``(alphas_[i], gammas_[g])``",
    coef="``W`` refitted on all the data at ``alpha_`` and relaxed by ``gamma_``:\n"
    "        when ``gamma_ < 1``, the relaxed coefficients, not the minimiser of the\n"
    "        penalised objective"))
class BlockSparseRegressorCV(_BlockSparseCVMixin, BlockSparseRegressor):
    """Block-sparse multi-task least squares with ``alpha`` chosen by cross-validation.

    Fits :class:`BlockSparseRegressor`, which minimises, over ``W = coef_`` of shape
    (n_tasks, n_features) and the unpenalised intercepts ``b = intercept_``::

        sum_t 1 / (2 n_t) * ||y_t - X_t w_t - b_t||^2_2  +  alpha * sum_j ||W[:, j]||_q

    (task ``t`` on its ``n_t`` observed rows only), along a grid of alphas on each training
    fold of ``cv``, warm-starting each alpha from the previous one's solution, as
    :class:`~sklearn.linear_model.MultiTaskLassoCV` does. The alpha with the best mean test
    score is refitted on all the data. With a shared X, a fully observed Y and ``q=2`` this
    is MultiTaskLassoCV's problem and path (on the same folds and alphas, the same fits).

    With ``relax=True`` (the relaxed lasso of Meinshausen, 2007, as glmnet's ``relax=TRUE``)
    the grid gains a second axis, ``gamma`` in ``gammas``. At each alpha, with ``(W, b)`` the
    minimiser above and ``S`` its support (the features ``j`` with ``W[:, j] != 0``), let
    ``(W_refit, b_refit)`` be the unpenalised least-squares fit of each task, on its observed
    rows, on the columns ``S`` only (``W_refit[:, j] = 0`` off ``S``). The relaxed fit is::

        W_gamma = gamma * W + (1 - gamma) * W_refit,   b_gamma = gamma * b + (1 - gamma) * b_refit

    ``gamma = 1`` is the group lasso, ``gamma = 0`` the refit. The (alpha, gamma) pair with the
    best mean test score is refitted on all the data and ``coef_``, ``intercept_`` are its
    ``W_gamma``, ``b_gamma``: for ``gamma_ < 1`` they are **not** the minimiser of the
    penalised objective above (nor of any objective) but that minimiser mixed with the
    unpenalised refit on its support, whose support they keep.

    Parameters
    ----------
    {block_sparse_cv_parameters}
    relax : bool, default=False
        Cross-validate relaxed fits too (see above). The refit undoes the shrinkage of the
        selected coefficients, so the best predictions no longer need a small alpha that
        admits many false features: prefer it to select features (see Notes).
    gammas : array-like of shape (n_gammas,), default=(0.0, 0.25, 0.5, 0.75, 1.0)
        Weights of the group lasso in the relaxed fits, in [0, 1] (glmnet's ``gamma`` and
        its default), used in decreasing order without duplicates. Ignored unless
        ``relax=True``.
    cv : int, cross-validation generator, iterable or None, default=5
        An int is the number of folds of a :class:`~skmtl.model_selection.MultiTaskKFold`
        (``classification=False``: every task keeps labels in every training fold); None
        means 5. The rows of a task with a single label stay in every training fold of that
        splitter. Any other splitter or iterable of ``(train, test)`` is used as given (a
        wide ``Y`` with NaN for missing labels is passed to its ``split``; long data as
        its 1-D ``y``, with ``task_ids`` where ``split`` accepts them); every training fold
        must hold a label of every task.
    scoring : str, callable or None, default=None
        None: minus the held-out mean squared error over all test labels (the sum over folds
        of the squared errors divided by the number of test labels: every label weighs the
        same; ``mean_test_score`` weighs the split scores by their numbers of labels),
        computed from the coefficients. ``"r2"``: the mean over tasks of the per-task R^2
        (the previous default, noisy on tasks with few test labels), also from the
        coefficients. Any other str names a multi-task scorer
        (:func:`skmtl.metrics.get_multitask_scorer`). A callable is called as
        ``scoring(estimator, X_test, Y_test)`` with a fitted :class:`BlockSparseRegressor`
        and a wide ``Y_test`` (NaN where unobserved), like a scorer in a search object (with
        ``relax=True``, holding the relaxed coefficients); greater is better, and
        ``mean_test_score`` is the plain mean over the folds.
        {empty_fold}
    {cv_n_jobs}

    Attributes
    ----------
    {block_sparse_cv_attributes}
    gamma_ : float
        The chosen gamma; 1.0 (the group lasso) when ``relax=False``.
    gammas_ : ndarray of shape (n_gammas,)
        The gammas tried, decreasing; ``[1.0]`` when ``relax=False``.
    dual_gap_ : float
        The relative duality gap ``(primal - dual) / primal`` of the group-lasso refit at
        ``alpha_`` (before relaxation).
    n_iter_ : int
        Number of epochs of that refit.
    {task_attributes}

    See Also
    --------
    BlockSparseRegressor : The model, for a fixed alpha.
    BlockSparseClassifierCV : The same with the logistic loss.
    sklearn.linear_model.MultiTaskLassoCV : Shared X, fully observed Y, q = 2.
    skmtl.model_selection.MultiTaskKFold : The default splitter.

    Notes
    -----
    **Cost.** Per fold, one warm-started path: each alpha starts from the solution at the
    previous (larger) alpha, close to its own, and the small alphas, where many features
    are active, cost the most (``eps`` sets how far the path goes). Scores come from the
    coefficients (no estimator is built) unless ``scoring`` is given. The refit at
    ``alpha_`` on all the data starts from zero, so with ``gamma_ = 1`` (always when
    ``relax=False``) ``coef_`` is exactly ``BlockSparseRegressor(alpha=alpha_, ...)``'s.

    **Selection versus prediction.** Cross-validation picks the alpha that predicts best,
    which is often several times smaller than the alphas that recover the support: there
    the shrinkage of the true coefficients costs more test error than many false features
    with tiny coefficients do. On 10 tasks sharing 20 of 500 features with 100 rows each,
    ``alpha_`` keeps all 20 true features and 149 false ones (F1 0.21), while alphas 4 to
    13 times larger select exactly the 20. ``relax=True`` removes the cause, the
    shrinkage: the refit on a support is unpenalised, so a large alpha costs no accuracy.
    There it picks ``gamma_ = 0`` at one of those larger alphas, selects exactly the 20
    (F1 1.0 on each of 10 random draws of the data) and predicts better too (held-out R^2
    0.9986 against 0.9980); see :ref:`sphx_glr_auto_examples_plot_block_sparse_support.py`.
    To select features, prefer ``relax=True``.

    **Relaxation.** A task's refit on a training fold is computed only when it has at least
    as many training rows as unknowns, ``|S| + 1`` with an intercept (``|S|`` without):
    beyond, least squares is not unique and interpolates the training rows. At the alphas
    whose support is larger on a fold, the relaxed points (gamma < 1) are not computed: their
    score on that fold, hence their mean, is NaN in ``cv_results_`` and they rank last; gamma
    = 1 is always scored. This also bounds the cost: a refit is ``n_tasks`` least-squares
    problems of ``n_t`` rows and at most ``n_t`` columns, solved once per distinct support
    along the path (consecutive alphas often share one), and each gamma adds one prediction
    of the test fold. The refit at ``(alpha_, gamma_ < 1)`` on all the data is computed
    whatever the support's size there (which exceeds a task's row count only if the support
    is larger than on every training fold); a rank-deficient design gets
    :func:`numpy.linalg.lstsq`'s minimum-norm solution.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.datasets import make_multitask_regression
    >>> from skmtl.linear import BlockSparseRegressorCV
    >>> X, Y, coef = make_multitask_regression(
    ...     n_samples=60, n_features=30, n_tasks=4, n_informative=3, noise=0.5,
    ...     missing_rate=0.2, coef=True, random_state=0)
    >>> model = BlockSparseRegressorCV(n_alphas=20, cv=3).fit(X, Y)  # NaN: missing labels
    >>> model.alphas_.shape, model.coef_.shape
    ((20,), (4, 30))
    >>> support = np.flatnonzero(np.abs(model.coef_).max(axis=0))
    >>> bool(np.all(np.isin(np.flatnonzero(coef[0]), support)))  # the true features
    True
    >>> bool(-model.best_score_ < 0.3), bool(support.size > 10)  # and many false ones
    (True, True)

    Relaxed, it keeps the true features only:

    >>> relaxed = BlockSparseRegressorCV(n_alphas=20, cv=3, relax=True).fit(X, Y)
    >>> np.flatnonzero(np.abs(relaxed.coef_).max(axis=0)), np.flatnonzero(coef[0])
    (array([ 2, 13, 28]), array([ 2, 13, 28]))
    >>> bool(relaxed.gamma_ < 1), bool(relaxed.best_score_ > model.best_score_)
    (True, True)
    """

    _model = BlockSparseRegressor
    _default_score = staticmethod(_pooled_squared_error)
    _relaxable = True
    _parameter_constraints = {
        **_BlockSparseCVMixin._parameter_constraints,
        "relax": ["boolean"],
        "gammas": ["array-like"],
    }

    def __init__(self, *, alphas=None, n_alphas=100, eps=1e-3, q=2, fit_intercept=True,
                 standardize=True, tol=1e-6, max_iter=1000, relax=False,
                 gammas=(0.0, 0.25, 0.5, 0.75, 1.0), cv=5, scoring=None, n_jobs=None):
        super().__init__(alphas=alphas, n_alphas=n_alphas, eps=eps, q=q,
                         fit_intercept=fit_intercept, standardize=standardize, tol=tol,
                         max_iter=max_iter, cv=cv, scoring=scoring, n_jobs=n_jobs)
        self.relax = relax
        self.gammas = gammas


@Substitution(**_DOCS, block_sparse_cv_attributes=_attributes(
    points="(``alphas_`` order: ties go to the largest alpha)",
    grid='{"alpha": alphas_}', param_gamma="", path_shape="(n_alphas, n_folds)",
    coef="``W`` refitted on all the data at ``alpha_``"))
class BlockSparseClassifierCV(_BlockSparseCVMixin, BlockSparseClassifier):
    """Block-sparse multi-task logistic regression with ``alpha`` chosen by cross-validation.

    Fits :class:`BlockSparseClassifier`, which minimises, over ``W = coef_`` of shape
    (n_tasks, n_features) and the unpenalised intercepts ``b = intercept_``::

        sum_t 1 / n_t * sum_{i in task t} log(1 + exp(-s_i (x_i w_t + b_t)))
            +  alpha * sum_j ||W[:, j]||_q

    (``s_i = +1`` for the task's second class, ``-1`` for its first; task ``t`` on its
    ``n_t`` observed rows only), along a grid of alphas on each training fold of ``cv``,
    warm-starting each alpha from the previous one's solution. The alpha with the best mean
    test score is refitted on all the data. Every task must be binary (a task with more
    classes raises a ValueError naming it); in a binary multi-task problem a task, or a
    training fold of it, may hold a single class (see :class:`BlockSparseClassifier` for
    the pull of the intercepts that keeps it finite).

    Parameters
    ----------
    {block_sparse_cv_parameters}
    cv : int, cross-validation generator, iterable or None, default=5
        An int is the number of folds of a :class:`~skmtl.model_selection.MultiTaskKFold`
        (``classification=True``: every task keeps labels, and both classes where each has
        two or more labels, in every training fold; classes are spread evenly over the
        folds); None means 5. Any other splitter or iterable of ``(train, test)`` is used
        as given (a wide matrix of class codes, NaN where unobserved, is passed to its
        ``split``).
    scoring : str, callable or None, default=None
        None: minus the held-out log loss over all test labels, every label weighing the
        same (``mean_test_score`` weighs the split scores by their numbers of labels;
        ``scoring="neg_log_loss"`` instead averages each task's log loss over tasks),
        computed from the coefficients. The log loss, a proper scoring rule, is chosen over
        the accuracy of :meth:`score`: it is smooth in alpha and rarely ties on small test
        folds, where accuracy is a step function; scikit-learn's LogisticRegressionCV moves
        its default to ``"neg_log_loss"`` for the same reason. It does not clip the
        probabilities at machine epsilon as scikit-learn's ``log_loss`` does (the two
        differ only for decision values beyond 36 in absolute value). A str names a
        multi-task scorer (:func:`skmtl.metrics.get_multitask_scorer`), e.g.
        ``"accuracy"`` or ``"roc_auc"``. A callable is called as
        ``scoring(estimator, X_test, Y_test)`` with a fitted :class:`BlockSparseClassifier`
        and a wide ``Y_test`` of the user's labels (NaN where unobserved, or None for text
        labels); greater is better, and ``mean_test_score`` is the plain mean over the folds.
        {empty_fold}
    {cv_n_jobs}

    Attributes
    ----------
    {block_sparse_cv_attributes}
    dual_gap_ : float
        The relative KKT violation of the refit (see :class:`BlockSparseClassifier`).
    n_iter_ : int
        Number of epochs of the refit.
    classes_ : ndarray or list of ndarray
        The two classes of a 1-D y, else one array of two classes per task.
    {task_attributes}

    See Also
    --------
    BlockSparseClassifier : The model, for a fixed alpha.
    BlockSparseRegressorCV : The same with the squared loss.
    sklearn.linear_model.LogisticRegressionCV : One task, ``l1_ratio=1``.

    Notes
    -----
    Unlike :class:`BlockSparseRegressorCV`, it has no ``relax``: the unpenalised logistic
    refit on a support has no solution (the coefficients diverge) when a task's classes are
    separable on those features, which is common once the support nears the task's row
    count, so a relaxed classifier needs a penalty or a stopping rule of its own.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.datasets import make_multitask_classification
    >>> from skmtl.linear import BlockSparseClassifierCV
    >>> X, Y = make_multitask_classification(
    ...     n_samples=200, n_features=10, n_tasks=3, n_informative=2, random_state=0)
    >>> model = BlockSparseClassifierCV(n_alphas=10, eps=1e-2, cv=3).fit(X, Y)
    >>> model.coef_.shape, len(model.classes_)
    ((3, 10), 3)
    >>> bool(model.best_score_ > -0.5)  # minus the mean log loss per task
    True
    >>> [p.shape for p in model.predict_proba(X[:2])]
    [(2, 2), (2, 2), (2, 2)]
    """

    _model = BlockSparseClassifier
    _default_score = staticmethod(_pooled_log_loss)
