"""Docstring text shared by the linear estimators, written once (see skmtl.utils._docstring).

A docstring names a block by a placeholder alone on its line, ``{name}``; the estimators apply
``Substitution(**LINEAR_DOCS)``. Blocks that differ between two estimators by a few words are
built by the small functions of the CV modules.
"""

from skmtl.utils._docstring import SHARED_DOCS

__all__ = ["LINEAR_DOCS"]

LINEAR_DOCS = {
    **SHARED_DOCS,
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
