"""Docstring text shared by the linear estimators, written once (see skmtl.utils._docstring).

A docstring names a block by a placeholder alone on its line, ``{name}``; the estimators apply
``Substitution(**LINEAR_DOCS)``. Blocks that differ between two estimators by a few words are
built by the small functions of the CV modules (and :func:`alpha_cv_docs`, shared by the
estimators that search ``alpha`` alone).
"""

from skmtl.utils._docstring import SHARED_DOCS, join_blocks

__all__ = ["ALPHA_CV_EDGES", "EMPTY_FOLD", "LINEAR_DOCS", "alpha_cv_docs"]

# the CV estimators' test folds without labels, whatever the scoring: the last lines of their
# ``scoring`` parameter (indented as its description)
EMPTY_FOLD = """\
        A test fold without any label (wide rows without labels, which a group splitter may
        put together) has no score, whatever the scoring: its split score is NaN (a scorer
        is not called on it) and it is left out of ``mean_test_score`` and
        ``std_test_score``. Any other NaN split score (a scorer undefined on a fold) makes
        its grid point's mean NaN, ranked last, as in GridSearchCV; if every grid point's
        mean is NaN, ``fit`` raises.
"""

LINEAR_DOCS = {
    **SHARED_DOCS,
    "empty_fold": "\n" + EMPTY_FOLD,
    "fit_intercept": """
    fit_intercept : bool, default=True
        Fit one unpenalised intercept per task.
    """,
    "cv_n_jobs": """
    n_jobs : int, default=None
        Number of folds fitted in parallel by joblib. ``None`` means 1 unless in a
        :func:`joblib.parallel_config` context; ``-1`` uses all processors. Any joblib backend
        runs them, e.g. a dask cluster under ``joblib.parallel_config(backend="dask")`` (see
        :ref:`scaling`); the workers see scikit-learn's configuration as set in the caller.
    """,
    "block_sparse_q": """
    q : {2, np.inf}, default=2
        Norm of each feature's block of coefficients across tasks: ``2`` (group lasso,
        l2,1) or ``np.inf`` (l-inf,1, which also pushes a shared feature to the same
        magnitude across tasks).
    """,
    "block_sparse_max_iter": """
    max_iter : int, default=1000
        Maximum number of epochs (passes of coordinate descent over the working set).
    """,
    "block_sparse_coef": """
    coef_ : ndarray of shape (n_tasks, n_features)
        ``W``; row ``t`` is task ``t``'s coefficients (``tasks_`` order). Also for a 1-D y
        (one row).
    intercept_ : ndarray of shape (n_tasks,)
        Per-task intercepts.
    """,
    "block_sparse_n_iter": """
    n_iter_ : int
        Number of epochs run.
    """,
    "mean_clustered_alpha": """
    alpha : float, default=1.0
        Regularisation strength, > 0.
    """,
    "mean_clustered_coef": """
    coef_ : ndarray of shape (n_tasks, n_features)
        Task coefficients ``W`` (one row per task, also for a 1-D y).
    intercept_ : ndarray of shape (n_tasks,)
        Task intercepts (zeros when ``fit_intercept=False``).
    """,
    "mean_clustered_shared": """
    shared_coef_ : ndarray of shape (n_features,)
        The mean model ``w_bar = coef_.mean(axis=0)``, what every task is pulled towards:
        the prediction for a task not seen in fit.
    shared_intercept_ : float
        The mean intercept ``b_bar = intercept_.mean()``.
    """,
    "cluster_strength_notes": """
    ``c = cluster_strength`` sets how strongly tasks are pulled together. Since
    ``sum_t ||w_t - w_bar||^2 = sum_t ||w_t||^2 - T ||w_bar||^2``, the penalty equals
    ``alpha * ((1 - c) ||w_bar||^2 + c / T * sum_t ||w_t||^2)``, a positive definite quadratic
    form exactly when ``alpha > 0`` and ``c > 0`` (its eigenvalues are ``2 alpha / T`` along
    the mean and ``2 alpha c / T`` across tasks), so both are constrained to be > 0 and the
    solution is unique. ``c < 1`` penalises the deviations less than the mean (tasks drift
    apart), ``c = 1`` decouples the tasks, ``c > 1`` pulls them together:
    """,
    "evgeniou_pontil": """
    References
    ----------
    T. Evgeniou and M. Pontil, "Regularized multi-task learning", KDD 2004.
    """,
}

# The Notes paragraph on the grid's edges of the alpha-only CV estimators (indented as a
# docstring's body, for their f-string tails).
ALPHA_CV_EDGES = """\
    **Edges.** An optimum at the largest or smallest alpha of the default grid (beating the
    rest of the grid by more than a relative 1e-4) extends the grid by a decade, scored on
    the same folds; at most 3 times. An optimum still at an edge, or at an edge of a grid
    the user passed (beating the rest by as much), raises a
    :class:`~skmtl.linear.GridEdgeWarning`; so does a grid the user passed whose scores are
    all within that 1e-4 (every alpha in one limit of the model)."""


def alpha_cv_docs(model, stratified, criterion):
    """The parameter and attribute blocks of an estimator whose ``alpha`` alone is searched
    (``ClusteredTasks*CV``, ``TaskRelation*CV``; ``skmtl.linear._cv._AlphaPathCVMixin``).

    ``model`` is the fixed-alpha estimator, ``stratified`` the words on the folds' classes and
    ``criterion`` the held-out loss of the default criterion: the few words by which a
    regressor's and a classifier's blocks differ.
    """
    return {
        "alpha_cv_grid": """
    alphas : array-like of float, default=None
        Values of ``alpha`` to try, all > 0 (used in decreasing order, never extended).
        None: ``n_alphas`` values log-spaced from ``alpha_max`` down to ``eps * alpha_max``,
        computed on the (scaled) data (see Notes), and extended by a decade while the
        optimum is at an edge (at most 3 times).
    n_alphas : int, default=20
        Number of alphas of the default grid (about 7 per decade: the held-out score is
        peaked in ``alpha``, and with 10 values the choice on Chem97 lost 0.55% of the
        squared error, 10 standard errors, to the best fixed ``alpha``; 0.1% with 20).
    eps : float, default=1e-3
        ``alpha_min / alpha_max`` of the default grid, in (0, 1].
    """,
        "alpha_cv_search": join_blocks(f"""
    cv : int, cross-validation generator, iterable or None, default=5
        An int (None: 5) is the number of folds of a
        :class:`~skmtl.model_selection.MultiTaskKFold` (every task keeps labels in every
        training fold{stratified}); any other splitter is used as given, with
        ``task_ids`` for long data when its ``split`` accepts them. Every training fold must
        hold a label of every task.
    fit_intercept : bool, default=True
        Fit one intercept per task.
    standardize : bool, default=True
        Fit on the features divided by their standard deviation over the observed rows of
        all tasks pooled (see :class:`{model}`),
        in every training fold and in the refit, so that the grid and the choice do not
        depend on the features' units; ``coef_`` is reported in the user's units.
    scoring : str, callable or None, default=None
        None: minus the held-out {criterion} over all test labels, every label weighing the
        same. A str names a multi-task scorer (:func:`skmtl.metrics.get_multitask_scorer`;
        ``"r2"`` is computed from the coefficients); a callable is called as
        ``scoring(estimator, X_test, y_test)`` (and ``task_ids=`` for long data) with a
        fitted :class:`{model}`, like a scorer in a search object (``y_test`` in the
        user's labels or targets, missing ones as NaN, or None for text labels);
        greater is better.
{EMPTY_FOLD}""", LINEAR_DOCS["cv_n_jobs"]),
        "alpha_cv_attributes": f"""
    alpha_ : float
        The chosen alpha (the largest of the best mean test score).
    alphas_ : ndarray of shape (n_alphas_tried,)
        The alphas tried, decreasing (the default grid with its extensions: more than
        ``n_alphas`` where the grid was extended).
    cv_results_ : dict of ndarray
        As :class:`~sklearn.model_selection.GridSearchCV`'s over ``{{"alpha": alphas_}}``:
        ``param_alpha``, ``params``, ``split{{k}}_test_score``, ``mean_test_score``,
        ``std_test_score`` and ``rank_test_score``. With the default criterion a split's
        score is minus the mean {criterion} of its test labels, and ``mean_test_score`` the
        same over the test labels of all folds together.
    best_score_ : float
        Mean test score of ``alpha_``.
    """,
    }
