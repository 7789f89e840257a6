"""Mean-clustered multi-task models, ``alpha`` and ``cluster_strength`` chosen by cross-validation.

Regression: each training fold is decomposed once (:class:`MeanClusteredLeastSquares`); every
point of the ``(alpha, cluster_strength)`` grid is then a few matrix products on that
decomposition, and its test score is computed from the coefficients directly (no estimator is
refitted). Classification: per training fold and cluster strength, a path of Newton fits
warm-started from the previous (larger) alphas' solutions, extrapolated along the path.

Features are scaled inside (``standardize=True``), the grid of alphas is derived from the
scaled problem, the default criterion weighs every held-out label the same, and a default grid
whose optimum is at an edge is extended (a grid the user passed gets a warning instead).
"""

from functools import partial
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.parallel import Parallel, delayed

from skmtl.base import MultiTaskClassifierMixin, MultiTaskRegressorMixin
from skmtl.linear._binary import _BinaryLogisticMixin
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
    curvature_alphas,
    edge_of,
    extend_geometric,
    flat_grid,
    warn_edge,
    warn_flat,
)
from skmtl.linear._designs import predict_rows
from skmtl.linear._docs import EMPTY_FOLD, LINEAR_DOCS
from skmtl.linear._mean_clustered import (
    MeanClusteredClassifier,
    MeanClusteredRegressor,
    _MeanClusteredMixin,
)
from skmtl.linear._solver_mean_clustered import (
    MeanClusteredLeastSquares,
    _warm_start,
    solve_mean_clustered,
    solve_mean_clustered_logistic,
)
from skmtl.utils._docstring import Substitution, join_blocks
from skmtl.utils._sklearn_compat import Interval, StrOptions

__all__ = ["MeanClusteredClassifierCV", "MeanClusteredRegressorCV"]

_DEFAULT_CLUSTER_STRENGTHS = (0.5, 1.0, 2.0, 5.0, 10.0, 100.0, 1000.0)
# A default cluster_strength grid at its edge grows by this factor per extension.
_CLUSTER_STEP = 10.0


class _RidgeFold:
    """One training fold of least squares: its decomposition (built once) and its test fold."""

    def __init__(self, estimator, data, train, test):
        (X, Y, mask), kwargs = data.fit_args(train)
        X, self.scale = estimator._scaled(X, data.row_weight(train))
        self.path = MeanClusteredLeastSquares(X, Y, mask, fit_intercept=estimator.fit_intercept,
                                              **kwargs)
        self.test = data.test_fold(test)

    def coefficients(self, alpha, cluster_strength):
        W, b = self.path.solve(alpha, cluster_strength)
        return (W if self.scale is None else W / self.scale), b


class _LogisticFold:
    """One training fold of logistic regression: Newton fits warm-started along each path."""

    def __init__(self, estimator, data, train, test):
        (X, Y, mask), self.kwargs = data.fit_args(train)
        X, self.scale = estimator._scaled(X, data.row_weight(train))
        self.args = (X, Y, mask)
        self.options = dict(fit_intercept=estimator.fit_intercept, tol=estimator.tol,
                            max_iter=estimator.max_iter)
        self.test = data.test_fold(test)
        self.last = {}  # cluster_strength -> the last two (alpha, W, b) of its path

    def coefficients(self, alpha, cluster_strength):
        path = self.last.get(cluster_strength, ())
        W0, b0 = _warm_start(alpha, path)
        W, b, _ = solve_mean_clustered_logistic(
            *self.args, alpha, cluster_strength, coef_init=W0, intercept_init=b0,
            **self.options, **self.kwargs)
        self.last[cluster_strength] = path[-1:] + ((alpha, W, b),)
        return (W if self.scale is None else W / self.scale), b


def _fold_scores(fold, build, points, n_tasks, scorer, default, fitted, keep):
    """``(fold or None, (n_points, 2) array of (value, weight))`` of one fold's grid points.

    ``fold`` None: built by ``build()``. The classifier's folds are kept (their warm starts);
    the regressor's decompositions are not (memory), and are rebuilt if the grid grows.
    """
    if fold is None:
        fold = build()
    out = np.empty((len(points), 2))
    for k, (alpha, cluster_strength) in enumerate(points):
        W, b = fold.coefficients(alpha, cluster_strength)
        out[k] = _fold_score(fold.test, W, b, n_tasks, scorer, default,
                             partial(fitted, alpha, cluster_strength))
    return (fold if keep else None), out


class _MeanClusteredCVMixin(_GroupsFitMixin, _MeanClusteredMixin):
    """The grid, its extension at the edges, the folds, the choice and the refit."""

    _parameter_constraints = {
        "alphas": ["array-like", None],
        "n_alphas": [Interval(Integral, 1, None, closed="left")],
        "eps": [Interval(Real, 0, 1, closed="right")],
        "cluster_strengths": ["array-like", None],
        "cv": ["cv_object"],
        "fit_intercept": ["boolean"],
        "standardize": ["boolean"],
        "scoring": [None, str, callable],
        "n_jobs": [None, Integral],
        "unknown_task": [StrOptions({"error", "shared"})],
    }
    # set by each estimator
    _fold = None  # _RidgeFold or _LogisticFold
    _keep_folds = False
    _default_score = None  # the pooled criterion, (value, weight) per fold
    _curvature = 1.0  # the largest curvature of the loss per unit of x w (logistic: 1 / 4)
    _model = None

    def _fit_multitask(self, X, Y, mask):
        self._fit_cv(X, _WideData(X, Y, mask, self._layout, self.tasks_))

    def _fit_long(self, X, y, task_index):
        self._fit_cv(X, _LongData(X, y, task_index, self.tasks_))

    def _fit_cv(self, X, data):
        default_alphas, default_strengths = self.alphas is None, self.cluster_strengths is None
        strengths = np.unique(_positive(
            _DEFAULT_CLUSTER_STRENGTHS if default_strengths else self.cluster_strengths,
            "cluster_strengths"))
        X_all, scale = self._scaled(X, data.row_weight())
        data.check_finite_squares(X_all, self.tasks_, targets=not self._classifier)
        alphas = (self._default_alphas(data, X_all, strengths) if default_alphas
                  else np.unique(_positive(self.alphas, "alphas"))[::-1])
        scorer = _check_scoring(self.scoring)
        splits = self._splits(X, data)
        folds = [None] * len(splits)
        builds = [partial(self._fold, self, data, train, test) for train, test in splits]
        cache = {}  # (alpha, cluster_strength) -> (n_splits, 2) of (value, weight)
        for extension in range(MAX_EXTENSIONS + 1):
            points = [(a, c) for a in alphas for c in strengths if (a, c) not in cache]
            if points:
                jobs = (delayed(_fold_scores)(fold, build, points, data.n_tasks, scorer,
                                              self._default_score, self._fitted,
                                              self._keep_folds)
                        for fold, build in zip(folds, builds))
                results = Parallel(n_jobs=self.n_jobs)(jobs)
                folds = [fold for fold, _ in results]
                for k, point in enumerate(points):
                    cache[point] = np.array([out[k] for _, out in results])
            scores, weights, best = self._store_results(cache, alphas, strengths)
            means = self.cv_results_["mean_test_score"].reshape(alphas.size, strengths.size)
            means = np.where(np.isnan(means), -np.inf, means)
            alpha_edge = edge_of(means, best, 0, alphas.size)
            strength_edge = edge_of(means, best, 1, strengths.size)
            grow_alphas = alpha_edge is not None and default_alphas
            grow_strengths = strength_edge is not None and default_strengths
            if extension == MAX_EXTENSIONS or not (grow_alphas or grow_strengths):
                break
            if grow_alphas:
                alphas = extend_geometric(alphas, alpha_edge)
            if grow_strengths:
                step = _CLUSTER_STEP if strength_edge == "last" else 1.0 / _CLUSTER_STEP
                edge = strengths[-1] if strength_edge == "last" else strengths[0]
                strengths = np.unique(np.append(strengths, edge * step))
        if alpha_edge is not None:
            warn_edge("alpha", self.alpha_, alphas, extended=default_alphas)
        if strength_edge is not None:
            warn_edge("cluster_strength", self.cluster_strength_, strengths,
                      extended=default_strengths)
        passed = [(name, grid) for name, grid, default in (
            ("alpha", alphas, default_alphas),
            ("cluster_strength", strengths, default_strengths)) if not default]
        if alpha_edge is None and strength_edge is None and passed and flat_grid(means):
            warn_flat(*zip(*passed))
        self.alphas_, self.cluster_strengths_ = alphas, strengths
        args, kwargs = data.fit_args()
        self._refit((X_all,) + args[1:], kwargs, scale)

    def _default_alphas(self, data, X, strengths):
        # the penalty's weakest curvature: 2 alpha min(1, c) / T
        return curvature_alphas(self, data, X, 2.0 * min(1.0, strengths.min()) / data.n_tasks)

    def _fitted(self, alpha, cluster_strength, W, b):
        """A fitted fixed-parameter model with these coefficients, for a scorer."""
        estimator = self._model(alpha=alpha, cluster_strength=cluster_strength,
                                fit_intercept=self.fit_intercept)
        return _as_fitted(estimator, self, W, b)

    def _store_results(self, cache, alphas, strengths):
        values = np.stack([cache[(a, c)] for a in alphas for c in strengths], axis=1)
        weights = values[..., 1]
        scores = values[..., 0] / weights
        params = {"alpha": np.repeat(alphas, strengths.size),
                  "cluster_strength": np.tile(strengths, alphas.size)}
        self.cv_results_, best = _cv_results(scores, params, weights)
        self.alpha_ = float(params["alpha"][best])
        self.cluster_strength_ = float(params["cluster_strength"][best])
        self.best_score_ = float(self.cv_results_["mean_test_score"][best])
        return scores, weights, best

    def _predict_tasks(self, X, task_index):
        return predict_rows(X, self.coef_, self.intercept_, task_index)


def _cv_docs(model, stratified, criterion, split, curvature, target):
    """The parameter, attribute and notes blocks of a mean-clustered CV estimator.

    The arguments are the few words by which the regressor's and the classifier's differ.
    """
    parameters = join_blocks("""
    alphas : array-like of shape (n_alphas,), default=None
        Regularisation strengths to try, all > 0 (used in decreasing order, never extended).
        None: a grid of ``n_alphas`` values log-spaced from ``alpha_max`` down to
        ``eps * alpha_max``, computed on the (scaled) data (see Notes), and extended by a
        decade at an edge where the optimum lies.
    n_alphas : int, default=20
        Number of alphas of the default grid.
    eps : float, default=1e-3
        ``alpha_min / alpha_max`` of the default grid, in (0, 1].
    cluster_strengths : array-like, default=None
        Values of ``cluster_strength`` to try, all > 0 (1: independent tasks; larger: tasks
        pulled together; 1000 is close to pooling the coefficients), never extended. None:
        ``(0.5, 1, 2, 5, 10, 100, 1000)``, extended by a factor 10 at an edge where the
        optimum lies.
    cv : int, cross-validation generator, iterable or None, default=5
        An int is the number of folds of a :class:`~skmtl.model_selection.MultiTaskKFold`
""" + f"""\
        (every task keeps labels in every training fold{stratified}); None means 5. The rows
""" + """\
        of a task with a single label stay in every training fold of that splitter (such a
        task cannot be both trained on in every fold and tested). A splitter gets
        ``task_ids`` (each row's task position) for long data when its ``split`` accepts it.
        Every training fold must hold a label of every task.
    fit_intercept : bool, default=True
        Fit an intercept per task.
    standardize : bool, default=True
        Scale the features inside by their standard deviation over the observed rows of all
        tasks pooled (glmnet's convention; see
""" + f"""\
        :class:`{model}`): the chosen model, and its held-out predictions, do not depend
        on the units of the features. ``coef_`` is in the user's units.
    scoring : str, callable or None, default=None
        None: {criterion}
""" + """\
        ``"r2"``: the mean over tasks of the per-task R^2 (the previous default; noisy on
        tasks with few test labels), computed from the coefficients. Any
        other str names a multi-task scorer (:func:`skmtl.metrics.get_multitask_scorer`). A
        callable is called as ``scoring(estimator, X_test, y_test)`` for wide data and
        ``scoring(estimator, X_test, y_test, task_ids=task_ids_test)`` for long data, with a
""" + f"""\
        fitted :class:`{model}`, like a scorer in a search object (``y_test``
        in the user's labels or targets, missing ones as NaN, or None for text labels);
        greater is better. With a scorer, ``mean_test_score`` is the plain mean over the
        folds.
""" + EMPTY_FOLD, LINEAR_DOCS["cv_n_jobs"], """
    unknown_task : {"error", "shared"}, default="error"
        A task id not seen in fit, at predict time: raise
        :class:`~skmtl.UnknownTaskError`, or (``"shared"``) predict it with the mean model
        ``shared_coef_``, ``shared_intercept_``.
    """)
    attributes = """
    alpha_ : float
        The chosen alpha.
    cluster_strength_ : float
        The chosen cluster_strength.
    alphas_ : ndarray of shape (n_alphas_tried,)
        The alphas tried, decreasing (the default grid with its extensions: more than
        ``n_alphas`` where the grid was extended).
    cluster_strengths_ : ndarray of shape (n_cluster_strengths,)
        The cluster strengths tried, increasing (with the extensions of the default grid).
    cv_results_ : dict of ndarray
        One entry per grid point, alpha-major (``alphas_`` order) with
        ``cluster_strengths_`` varying fastest, as :class:`~sklearn.model_selection.GridSearchCV`
        orders ``{"alpha": ..., "cluster_strength": ...}``: ``param_alpha``,
        ``param_cluster_strength``, ``params`` (list of dicts), ``split{k}_test_score``,
        ``mean_test_score``, ``std_test_score`` and ``rank_test_score``. With the default
        criterion, ``split{k}_test_score`` is
""" + f"""\
        {split} on fold k and ``mean_test_score`` the
""" + """\
        same over the labels of all folds together (the split scores weighted by their
        numbers of labels). Load it with ``pandas.DataFrame(cv_results_)``.
    best_score_ : float
        Mean test score of the chosen grid point.
    coef_ : ndarray of shape (n_tasks, n_features)
        Coefficients refitted on all the data with ``alpha_`` and ``cluster_strength_``, in
        the user's units.
    intercept_ : ndarray of shape (n_tasks,)
        Intercepts of the refit.
    """
    notes = """
    **Scaling and units.** With ``standardize=True`` each training fold, and the refit,
    divide the columns of X by their standard deviation over the fold's observed rows (pooled
    over tasks; the columns are not centred, the intercepts absorb any shift; a constant
    column is left as it is; sparse X stays sparse), fit, and divide the coefficients back.
    Rescaling a feature column then leaves the chosen model and its predictions unchanged.
    The default alphas are computed on the scaled X, so they do not depend on the features'
""" + f"""\
    units either{target}.

    **Default alphas.** With ``e_max`` the largest eigenvalue of the average over tasks of the
    (per-task centred, when ``fit_intercept``) second moments ``X_t^T X_t / n_t`` of the
    scaled X on all the data, ``h`` the loss's largest curvature ({curvature}) and ``c_min``
""" + """\
    the smallest cluster strength tried::

        alpha_max = 10 * T * h * e_max / (2 * min(1, c_min))

    At ``alpha_max`` the penalty's weakest curvature, ``2 alpha min(1, c) / T``, is ten times
    the largest curvature of the average task's loss: every direction is shrunk about ten
    times. The grid goes down to ``eps * alpha_max``.

    **Edges.** The best grid point is at an edge when its alpha (or cluster strength) is the
    largest or smallest of the grid and its score beats the best of the rest of the grid, every
    point with another value of that parameter (by more than a relative 1e-4: a flat end is
    the model's limit there, e.g. pooled tasks, not an optimum beyond). Not its neighbour
    alone: the optimum often lies along a valley of alpha and cluster strength together,
    where an end that beats its neighbour by 0.3% beats the rest of the grid by 7e-6, and
    points beyond the grid gain no more (5e-6). A default grid is then extended, by a decade
    of alphas (with the grid's own ratio) or a factor 10 of cluster strength, and the new
    points are scored on the same folds; at most 3 times. An optimum still at an edge, or at
    an edge of a grid the user passed, raises a :class:`~skmtl.linear.GridEdgeWarning` naming
    the parameter; so does a grid with a parameter the user passed whose scores are all
    within that 1e-4 (every point in one limit of the model, such as every coefficient
    shrunk to 0).
    """
    return {"mean_clustered_cv_parameters": parameters,
            "mean_clustered_cv_attributes": join_blocks(
                attributes, LINEAR_DOCS["mean_clustered_shared"], LINEAR_DOCS["task_attributes"]),
            "mean_clustered_cv_notes": notes}


@Substitution(**_cv_docs(
    "MeanClusteredRegressor", stratified="", split="minus the mean squared error",
    criterion="minus the held-out mean squared error over all test labels (see Notes).",
    curvature="1, least squares",
    target=" nor of the target (ridge is linear in y: scaling y scales the solution, its alpha "
    "unchanged)"))
class MeanClusteredRegressorCV(_MeanClusteredCVMixin, MultiTaskRegressorMixin, BaseEstimator):
    r"""Mean-clustered multi-task ridge with ``alpha`` and ``cluster_strength`` chosen by CV.

    Fits :class:`MeanClusteredRegressor`, which minimises::

        sum_t 1 / (2 n_t) * ||y_t - X_t w_t - b_t||^2_2
        + alpha * (||w_bar||^2_2 + cluster_strength / T * sum_t ||w_t - w_bar||^2_2)

    (on the scaled features with ``standardize=True``) over the grid
    ``alphas x cluster_strengths``, scores every grid point on the test folds of ``cv`` by
    the held-out squared error of all test labels, and refits the best point on all the
    data.

    Parameters
    ----------
    {mean_clustered_cv_parameters}

    Attributes
    ----------
    {mean_clustered_cv_attributes}

    See Also
    --------
    MeanClusteredRegressor : The model, for fixed parameters.
    MeanClusteredClassifierCV : The same search with the logistic loss.
    skmtl.model_selection.MultiTaskKFold : The default splitter.

    Notes
    -----
    **Criterion.** The held-out mean squared error over all test labels, every label
    weighing the same: the sum over folds of the squared errors divided by the number of
    test labels. The mean over tasks of the per-task R^2 (``scoring="r2"``) gives a task with
    three test labels the weight of one with three hundred, and its R^2 on so few labels is
    noise (fold scores down to -1.2 on data of tasks of 15 to 200 rows); the pooled error is
    the quantity least squares estimates.

    {mean_clustered_cv_notes}

    **Cost.** Per fold, one decomposition of the training data: one SVD of X when all tasks
    observe the same rows, else one eigendecomposition per task (``O(sum_t n_t d^2 + T d^3)``);
    then each grid point costs ``O(T d^2)`` (shared rows) or ``O(T d^3)`` matrix products
    (tasks with fewer rows than features, from 128 features: ``O(N d^2 + d^3)`` over their
    ``N`` rows, and from 512 features conjugate gradients at ``O(N d)`` an iteration, each
    started from the previous alpha's solution), plus the test predictions. So the whole
    grid costs about one fit per fold, plus the refit (and one decomposition per fold again
    for each extension of the grid). A sparse X stays sparse: its thin tasks keep their
    rows and the eigenvectors of their ``n_t x n_t`` Gram matrices (``O(n_t^2 + nnz)`` a
    product), and the default alphas' scale comes from Lanczos iterations on products with
    X, never the ``d x d`` moments (5,000 x 2,000 at 1%, 20 tasks: a peak of 24 times the
    input). With a ``scoring`` callable, each grid point also builds a fitted estimator and
    calls it.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.linear import MeanClusteredRegressorCV
    >>> rng = np.random.default_rng(0)
    >>> task_ids = np.repeat(np.arange(8), 30)
    >>> X = rng.normal(size=(240, 3))
    >>> W = np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=(8, 3))  # similar tasks
    >>> y = np.einsum("ij,ij->i", X, W[task_ids]) + 0.5 * rng.normal(size=240)
    >>> model = MeanClusteredRegressorCV(n_alphas=10).fit(X, y, task_ids=task_ids)
    >>> bool(model.cluster_strength_ >= 100)  # similar tasks: pulled together
    True
    >>> bool(-model.best_score_ < 0.3)  # held-out mean squared error (noise variance 0.25)
    True
    >>> model.predict(X[:2], task_ids=[0, 7]).shape
    (2,)
    """

    _fold = _RidgeFold
    _classifier = False
    _default_score = staticmethod(_pooled_squared_error)
    _model = MeanClusteredRegressor

    def __init__(self, *, alphas=None, n_alphas=20, eps=1e-3, cluster_strengths=None, cv=5,
                 fit_intercept=True, standardize=True, scoring=None, n_jobs=None,
                 unknown_task="error"):
        self.alphas = alphas
        self.n_alphas = n_alphas
        self.eps = eps
        self.cluster_strengths = cluster_strengths
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.standardize = standardize
        self.scoring = scoring
        self.n_jobs = n_jobs
        self.unknown_task = unknown_task

    def _refit(self, args, kwargs, scale):
        W, b = solve_mean_clustered(*args, self.alpha_, self.cluster_strength_,
                                    fit_intercept=self.fit_intercept, **kwargs)
        self._set_coef(W, b, scale)

    def _predict_raw(self, X):
        return self._decision(X)

    def _predict_shared(self, X):
        return self._shared_decision(X)


@Substitution(**_cv_docs(
    "MeanClusteredClassifier", stratified="; stratified on the classes",
    split="minus the mean log loss",
    criterion="minus the held-out log loss over all test labels (see Notes).",
    curvature="1 / 4, the logistic loss", target=""))
class MeanClusteredClassifierCV(_BinaryLogisticMixin, _MeanClusteredCVMixin,
                                MultiTaskClassifierMixin, BaseEstimator):
    r"""Mean-clustered multi-task logistic regression, ``alpha`` and ``cluster_strength`` by CV.

    Fits :class:`MeanClusteredClassifier`, which minimises::

        sum_t 1 / n_t * sum_{i in task t} log(1 + exp(-s_i (x_i w_t + b_t)))
        + alpha * (||w_bar||^2_2 + cluster_strength / T * sum_t ||w_t - w_bar||^2_2)
        + alpha * cluster_strength / T * sum_t (c_t - c_bar)^2,   c_t = b_t + x_bar w_t

    (on the scaled features with ``standardize=True``) over the grid
    ``alphas x cluster_strengths``: per training fold and cluster strength, a path of Newton
    fits from the largest alpha down, each warm-started from the previous solution moved
    along the path (extrapolated linearly in ``log(alpha)`` from the previous two). Every
    grid point is scored on its test fold by the held-out log loss of all test labels, and
    the best point is refitted on all the data. Every task must be binary; in a binary
    multi-task problem a task (or a training fold of it) may hold one class only.

    Parameters
    ----------
    {mean_clustered_cv_parameters}
    tol : float, default=1e-8
        Tolerance of every Newton fit (see :class:`MeanClusteredClassifier`).
    max_iter : int, default=50
        Maximum number of Newton steps of every fit.

    Attributes
    ----------
    {mean_clustered_cv_attributes}
    classes_ : ndarray or list of ndarray
        The two classes of a 1-D y, else the two classes of each task.

    See Also
    --------
    MeanClusteredClassifier : The model, for fixed parameters.
    MeanClusteredRegressorCV : The same search with the squared loss.

    Notes
    -----
    **Criterion.** The held-out log loss over all test labels, each label weighing the same
    (a proper scoring rule, smooth in the parameters, unlike the accuracy; computed without
    clipping the probabilities). ``mean_test_score`` is minus it.

    {mean_clustered_cv_notes}

    **Cost.** Per fold, ``n_alphas * n_cluster_strengths`` Newton fits, each of a few steps
    from its warm start (``O(sum_t n_t d^2 + T d^3)`` per step), plus the refit. The
    extrapolated warm start's error is of second order in the grid's step of ``log(alpha)``,
    the previous solution's of first order: on a default grid most fits then stop after two
    steps (the second confirms the tolerance) instead of three. Only the starting points
    differ; every fit stops at ``tol`` as :class:`MeanClusteredClassifier` does. On yeast
    (2,417 rows, 103 features, 14 tasks), ``cv=5`` takes 45 to 55 s on two cores (27 x 8
    grid points after the extensions, some 2,250 Newton steps).

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.linear import MeanClusteredClassifierCV
    >>> rng = np.random.default_rng(0)
    >>> task_ids = np.repeat(np.arange(6), 40)
    >>> X = rng.normal(size=(240, 3))
    >>> W = np.array([2.0, -1.0, 0.0]) + 0.2 * rng.normal(size=(6, 3))
    >>> y = (np.einsum("ij,ij->i", X, W[task_ids]) + rng.logistic(size=240) > 0).astype(int)
    >>> model = MeanClusteredClassifierCV(n_alphas=8).fit(X, y, task_ids=task_ids)
    >>> model.coef_.shape, model.predict_proba(X[:2], task_ids=[0, 5]).shape
    ((6, 3), (2, 2))
    >>> bool(-model.best_score_ < 0.5)  # held-out log loss per label
    True
    """

    _fold = _LogisticFold
    _keep_folds = True
    _classifier = True
    _default_score = staticmethod(_pooled_log_loss)
    _curvature = 0.25
    _model = MeanClusteredClassifier
    _max_classes = 2

    _parameter_constraints = {
        **_MeanClusteredCVMixin._parameter_constraints,
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, *, alphas=None, n_alphas=20, eps=1e-3, cluster_strengths=None, cv=5,
                 fit_intercept=True, standardize=True, scoring=None, n_jobs=None, tol=1e-8,
                 max_iter=50, unknown_task="error"):
        self.alphas = alphas
        self.n_alphas = n_alphas
        self.eps = eps
        self.cluster_strengths = cluster_strengths
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.standardize = standardize
        self.scoring = scoring
        self.n_jobs = n_jobs
        self.tol = tol
        self.max_iter = max_iter
        self.unknown_task = unknown_task

    def _refit(self, args, kwargs, scale):
        W, b, self.n_iter_ = solve_mean_clustered_logistic(
            *args, self.alpha_, self.cluster_strength_, fit_intercept=self.fit_intercept,
            tol=self.tol, max_iter=self.max_iter, **kwargs)
        self._set_coef(W, b, scale)
