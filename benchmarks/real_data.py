"""Cross-validate skmtl's models on every packaged real data set and write one table.

Models (``--models``): single-task learning (``stl``: ``IndependentTasks`` of ``RidgeCV`` /
``LogisticRegression``), full pooling (``pooled``: ``PooledTasks`` of the same), linear MTL
(``mean_clustered``: ``MeanClusteredRegressorCV`` / ``MeanClusteredClassifierCV``;
``block_sparse``: ``BlockSparseRegressorCV`` / ``BlockSparseClassifierCV``), deep hard
sharing with default parameters (``deep_hard``) and with each adaptive loss weighting
(``deep_gradnorm``, ``deep_uncertainty``, ``deep_dwa``, ``deep_lbtw``), and, on the school
data, the model a statistician would fit (``mixedlm``: a linear mixed model with a random
intercept and a random slope per school, statsmodels ``MixedLM``).

Data sets (``--datasets``): the school data ``exam``, ``hsb82``, ``chem97`` (long-format
regression, one task per school), ``yeast`` (14 binary labels), ``moleculeace`` (30 targets,
regression on pK) and ``moleculeace_active`` (the same, active = pK >= 7, i.e. 100 nM).

Protocol: shuffled :class:`~skmtl.model_selection.MultiTaskKFold` folds (every task, i.e.
every school, in every training fold; classes stratified within tasks), the same folds for
every model; features standardised on each training fold (not the fingerprints, which are
0 / 1 bits). Scores are the mean over the folds and its standard error.

``python benchmarks/real_data.py`` prints the tables; ``--write`` also puts them into
``benchmarks/README.md`` and ``docs/user_guide/results.rst`` between the ``real-data:start``
and ``real-data:end`` markers. ``--quick`` runs a tiny subsample (a check of the plumbing;
its numbers mean nothing). ``--help`` lists the options.
"""

import argparse
import datetime
import os
import platform
import re
import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from joblib import Parallel, delayed
from sklearn.exceptions import ConvergenceWarning, UndefinedMetricWarning
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.preprocessing import StandardScaler

# the hierarchical model's random effects by the number of features, as in `skmtl compare`:
# every slope random with a full covariance up to HIERARCHICAL_SLOPES features, independent
# ones above where T q^3 <= HIERARCHICAL_DIAGONAL_WORK, beyond one variance for every slope and
# a prior on the mean task's (covariance_type="spherical"; the classifier: a random intercept)
from skmtl._compare import (
    HIERARCHICAL_DIAGONAL_WORK,
    HIERARCHICAL_SLOPES,
    hierarchical_structure,
)
from skmtl.baselines import IndependentTasks, PooledTasks
from skmtl.metrics import r2_score, roc_auc_score
from skmtl.model_selection import MultiTaskKFold

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "benchmarks", "README.md")
DOCS_PAGE = os.path.join(ROOT, "docs", "user_guide", "results.rst")
MARKERS = {
    "md": ("<!-- real-data:start -->", "<!-- real-data:end -->"),
    "rst": (".. real-data:start", ".. real-data:end"),
}
WEIGHTINGS = ("gradnorm", "uncertainty", "dwa", "lbtw")
BEST_WEIGHTING = "deep_best_weighting"
ACTIVE_PK = 7.0  # pK >= 7 (Ki or EC50 <= 100 nM): active
MIN_PUPILS = 10  # per-school R^2 over the schools with at least this many pupils
QUICK_EPOCHS = 5  # --quick only: deep models train this many epochs


# -- the mixed-effects reference -------------------------------------------------------------
def independent_columns(X, keep=(), tol=1e-8):
    """Columns of ``X`` that are not linear combinations of an intercept and earlier columns.

    Columns are taken in order (those in ``keep`` first); one is kept when it raises the rank
    of ``[1, kept columns]`` by one, measured on standardised columns with relative tolerance
    ``tol``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    keep : sequence of int
        Columns to take first (a random-slope variable must stay in the fixed effects).
    tol : float
        Relative singular-value tolerance.

    Returns
    -------
    columns : list of int
        The kept column indices, in increasing order.
    """
    order = list(keep) + [j for j in range(X.shape[1]) if j not in keep]
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    Z = (X - X.mean(axis=0)) / scale
    kept, basis = [], np.ones((X.shape[0], 1)) / np.sqrt(X.shape[0])
    for j in order:
        z = Z[:, j] - basis @ (basis.T @ Z[:, j])
        z = z - basis @ (basis.T @ z)  # re-orthogonalise once (Gram-Schmidt twice is enough)
        norm = np.linalg.norm(z)
        if norm > tol * np.sqrt(X.shape[0]):
            kept.append(j)
            basis = np.column_stack([basis, z / norm])
    return sorted(kept)


def mixedlm_blup(X_fixed, Z, y, groups, fe_params, cov_re, scale):
    """Best linear unbiased predictors of a linear mixed model's random effects, per group.

    Model: ``y_i = x_i^T beta + z_i^T b_g(i) + e_i`` with ``b_g ~ N(0, Psi)`` and
    ``e_i ~ N(0, sigma^2)``. Given ``beta``, ``Psi`` and ``sigma^2``, the conditional mean of
    ``b_g`` given group ``g``'s rows is
    ``b_g = Psi Z_g^T (Z_g Psi Z_g^T + sigma^2 I)^-1 r_g``, ``r_g = y_g - X_g beta``, computed
    as ``(Psi Z_g^T Z_g + sigma^2 I_q)^-1 Psi Z_g^T r_g`` (a q x q solve per group; valid for a
    singular ``Psi``).

    Parameters
    ----------
    X_fixed : ndarray of shape (n_samples, p)
        Fixed-effects design (with its intercept column).
    Z : ndarray of shape (n_samples, q)
        Random-effects design.
    y : ndarray of shape (n_samples,)
    groups : ndarray of shape (n_samples,)
    fe_params : ndarray of shape (p,)
        ``beta``.
    cov_re : ndarray of shape (q, q)
        ``Psi``, in the units of ``y`` (statsmodels' ``MixedLMResults.cov_re``).
    scale : float
        ``sigma^2``.

    Returns
    -------
    labels : ndarray of shape (n_groups,)
        The sorted group labels.
    effects : ndarray of shape (n_groups, q)
        ``b_g`` for each group.
    """
    labels, index = np.unique(groups, return_inverse=True)
    q = Z.shape[1]
    residual = y - X_fixed @ fe_params
    ZtZ = np.zeros((labels.shape[0], q, q))
    np.add.at(ZtZ, index, Z[:, :, None] * Z[:, None, :])
    Ztr = np.zeros((labels.shape[0], q))
    np.add.at(Ztr, index, Z * residual[:, None])
    lhs = np.einsum("ij,gjk->gik", cov_re, ZtZ) + scale * np.eye(q)
    rhs = Ztr @ cov_re.T
    return labels, np.linalg.solve(lhs, rhs[:, :, None])[:, :, 0]


class MixedLMRegressor:
    """Linear mixed model with a random intercept and a random slope per task (statsmodels).

    ``y_i = b0 + x_i^T beta + u0_g + u1_g * x_i[slope] + e_i`` with ``(u0_g, u1_g) ~ N(0, Psi)``
    (unstructured 2 x 2 ``Psi``) and ``e_i ~ N(0, sigma^2)``, fitted by REML with statsmodels'
    ``MixedLM`` (L-BFGS, then BFGS and CG if it does not converge). Features that are linear
    combinations of an intercept and earlier features are left out of the fixed effects
    (``dropped_``), since the fixed-effects design must have full rank. A row of a task seen
    in ``fit`` is predicted by the fixed effects plus that task's BLUP random effects
    (:func:`mixedlm_blup`); a row of another task by the fixed effects alone.

    Parameters
    ----------
    slope : int
        Column of X with the random slope.
    """

    def __init__(self, slope):
        self.slope = slope

    def get_params(self, deep=True):
        return {"slope": self.slope}

    def set_params(self, **params):
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def _designs(self, X):
        X_fixed = np.column_stack([np.ones(X.shape[0]), X[:, self.columns_]])
        Z = np.column_stack([np.ones(X.shape[0]), X[:, self.slope]])
        return X_fixed, Z

    def fit(self, X, y, *, task_ids):
        from statsmodels.regression.mixed_linear_model import MixedLM

        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        self.columns_ = independent_columns(X, keep=[self.slope])
        self.dropped_ = [j for j in range(X.shape[1]) if j not in self.columns_]
        X_fixed, Z = self._designs(X)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.result_ = MixedLM(y, X_fixed, groups=task_ids, exog_re=Z).fit(
                reml=True, method=["lbfgs", "bfgs", "cg"])
        messages = {str(w.message).split("\n")[0] for w in caught}
        if self.result_.converged:  # an optimiser of the list failed, a later one converged
            messages = {m for m in messages if not re.search(r"fail|different optimizer", m)}
        self.warnings_ = sorted(messages)
        self.fe_params_ = np.asarray(self.result_.fe_params)
        self.cov_re_ = np.asarray(self.result_.cov_re)
        self.scale_ = float(self.result_.scale)
        self.tasks_, self.random_effects_ = mixedlm_blup(
            X_fixed, Z, y, np.asarray(task_ids), self.fe_params_, self.cov_re_, self.scale_)
        return self

    def predict(self, X, *, task_ids):
        X = np.asarray(X, dtype=np.float64)
        X_fixed, Z = self._designs(X)
        pred = X_fixed @ self.fe_params_
        task_ids = np.asarray(task_ids)
        position = np.searchsorted(self.tasks_, task_ids)
        position[position == self.tasks_.shape[0]] = 0
        known = self.tasks_[position] == task_ids
        effects = np.zeros((X.shape[0], Z.shape[1]))
        effects[known] = self.random_effects_[position[known]]
        return pred + np.sum(Z * effects, axis=1)


# -- data sets --------------------------------------------------------------------------------
@dataclass
class DataSet:
    """One benchmark problem, ready for the folds."""

    name: str
    task_type: str  # "regression" or "classification"
    layout: str  # "long" or "wide"
    X: np.ndarray
    y: np.ndarray
    task_ids: object = None
    scale: bool = True
    slope: object = None  # column of the random slope (school data)
    metric: str = ""
    secondary: str = ""
    notes: list = field(default_factory=list)
    n_splits: int = 5
    skipped: dict = field(default_factory=dict)  # model -> why it is not run

    @property
    def n_tasks(self):
        if self.layout == "long":
            return len(np.unique(self.task_ids))
        return self.y.shape[1]

    @property
    def n_labels(self):
        return self.y.shape[0] if self.layout == "long" else int(np.isfinite(self.y).sum())


SCHOOL = {
    # data set -> (loader name, random-slope feature)
    "exam": ("load_exam", "standLRT"),
    "hsb82": ("load_hsb82", "cses"),
    "chem97": ("load_chem97", "gcsescore"),
}
DATASETS = ("exam", "hsb82", "chem97", "yeast", "moleculeace", "moleculeace_active")
DEEP = ("deep_hard", *(f"deep_{w}" for w in WEIGHTINGS))

# What the full run leaves out or shrinks so that it finishes in about 30 minutes on 2 cores
# (fit times measured on that machine: benchmarks/README.md). ``--no-budget`` runs everything.
# Per data set: ``folds`` (instead of --folds), ``rows`` (a random subsample of that many
# rows, the same for every model), ``skip`` (model -> reason).
_SLOW_DEEP = ("time budget: one epoch of MultiTaskRegressor on the 31,000 pupils and 2,410 "
              "school heads takes about 12 s on the idle benchmark machine (up to 200 epochs "
              "with early stopping, 5 folds, 5 models: more than an hour)")
_SLOW_BLOCK_SPARSE_CLF = ("time budget: BlockSparseClassifierCV's path on yeast did not "
                          "finish 3 folds in 5 minutes (one fit at alpha 1e-3 takes 225 "
                          "epochs of coordinate descent, 8.6 s)")
_SLOW_BLOCK_SPARSE = ("time budget: BlockSparse*CV did not finish one training fold of "
                      "MoleculeACE in 12 minutes")
_SLOW_MEAN_CLUSTERED_CLF = ("time budget: MeanClusteredClassifierCV runs Newton's method at "
                            "each of 140 grid points on 5 inner folds of a training fold "
                            "(not measured; MeanClusteredRegressorCV's closed forms took 331 "
                            "s a training fold before December 6's conjugate gradients, 3.6 "
                            "times less since)")
_SLOW_CLUSTERED = ("time budget: ClusteredTasks*CV fits the alternation at every alpha of "
                   "each inner fold, 100 fits a training fold (20 alphas, 5 folds): about "
                   "7.5 s each for the regressor on 5,333 molecules (some 13 minutes a fold), "
                   "longer for the classifier (114 s a fit on 10,000)")
_SLOW_RELATION = ("time budget: TaskRelationClassifierCV fits 20 alphas on 5 inner folds "
                  "of a training fold, each fit a Newton W step per sweep: 17 to 25 s a fit "
                  "on an inner fold's 5,333 molecules (the 10 largest alphas), some 35 "
                  "minutes a training fold before December 6's sparse block Jacobi, which "
                  "takes 0.57 times as long (five alphas of the grid, measured on a slower "
                  "machine): some 20 minutes")
_SLOW_LOW_RANK = ("time budget: LowRankRegressorCV did not finish one training fold of "
                  "MoleculeACE in 15 minutes (its proximal gradient takes about 1 / alpha "
                  "steps: 1,056 at alpha_max / 33 on the standardised bits, and the path goes "
                  "down to alpha_max / 1,000)")
# (TaskRelationRegressorCV runs on MoleculeACE: about 3 minutes a training fold; the
# hierarchical models, a random intercept beside the 2,048 bits: about 15 s a fold;
# MeanClusteredRegressorCV, conjugate gradients on its grid: 293 s a fold on a machine
# where the closed forms took 1,044 s)
_MACE = dict(rows=10_000, folds=3,
             skip={"block_sparse": _SLOW_BLOCK_SPARSE, "low_rank": _SLOW_LOW_RANK,
                   "clustered_tasks": _SLOW_CLUSTERED})
BUDGET = {
    "chem97": dict(skip={**dict.fromkeys(DEEP, _SLOW_DEEP),
                         "block_sparse": "time budget: about 6 minutes per fold"}),
    "yeast": dict(skip={"block_sparse": _SLOW_BLOCK_SPARSE_CLF}),
    "moleculeace": _MACE,
    "moleculeace_active": {**_MACE, "skip": {**_MACE["skip"],
                                             "mean_clustered": _SLOW_MEAN_CLUSTERED_CLF,
                                             "task_relation": _SLOW_RELATION}},
}


def apply_budget(data, budget, random_state=0):
    """Shrink ``data`` as ``budget`` says (in place), and note it."""
    rows = budget.get("rows")
    if rows is not None and rows < data.X.shape[0]:
        rng = np.random.default_rng(random_state)
        keep = np.sort(rng.choice(data.X.shape[0], size=rows, replace=False))
        total = data.X.shape[0]
        data.X, data.y = data.X[keep], data.y[keep]
        if data.task_ids is not None:
            data.task_ids = data.task_ids[keep]
        data.notes.append(f"a random subsample of {rows:,} of the {total:,} rows (seed "
                          f"{random_state}), for every model, to fit the time budget")
    if "folds" in budget and budget["folds"] != data.n_splits:
        data.notes.append(f"{budget['folds']} folds instead of {data.n_splits}, to fit the "
                          "time budget")
        data.n_splits = budget["folds"]
    data.skipped.update(budget.get("skip", {}))


def _quick_rows(groups, n_groups, per_group, rng):
    """Rows of ``n_groups`` random groups with at least 6 rows, at most ``per_group`` each."""
    labels, counts = np.unique(groups, return_counts=True)
    chosen = rng.choice(labels[counts >= 6], size=n_groups, replace=False)
    rows = [rng.permutation(np.flatnonzero(groups == g))[:per_group] for g in chosen]
    return np.sort(np.concatenate(rows))


def load(name, *, quick=False, random_state=0):
    """The data set ``name`` as a :class:`DataSet` (``quick``: a tiny subsample)."""
    import skmtl.datasets as datasets

    rng = np.random.default_rng(random_state)
    if name in SCHOOL:
        loader, slope = SCHOOL[name]
        bunch = getattr(datasets, loader)()
        X, y, g = bunch.data, bunch.target, bunch.task_ids
        notes = []
        labels, counts = np.unique(g, return_counts=True)
        single = labels[counts < 2]
        if single.size:
            keep = ~np.isin(g, single)
            notes.append(f"{single.size} schools with a single pupil left out (a school must "
                         "be in every training fold and in a test fold)")
            X, y, g = X[keep], y[keep], g[keep]
        if quick:
            rows = _quick_rows(g, 8, 30, rng)
            X, y, g = X[rows], y[rows], g[rows]
        return DataSet(name, "regression", "long", X, y, g,
                       slope=bunch.feature_names.index(slope),
                       metric="explained variance, all held-out pupils",
                       secondary=f"mean per-school R^2 (schools with >= {MIN_PUPILS} pupils)",
                       notes=notes)
    if name == "yeast":
        X, Y = datasets.load_yeast(return_X_y=True)
        if quick:
            rows = rng.choice(X.shape[0], size=240, replace=False)
            X, Y = X[rows], Y[rows][:, [0, 1, 2, 3]]
        return DataSet(name, "classification", "wide", X, Y.astype(np.float64),
                       metric="mean per-task ROC-AUC")
    if name in ("moleculeace", "moleculeace_active"):
        bunch = datasets.load_moleculeace(targets=[0, 1, 2] if quick else None)
        X = np.asarray(bunch.data, dtype=np.float64)
        Y = np.asarray(bunch.target, dtype=np.float64)
        if quick:
            rows = rng.choice(X.shape[0], size=300, replace=False)
            X, Y = X[rows], Y[rows]
        keep = np.isfinite(Y).any(axis=1)
        X, Y = X[keep], Y[keep]
        if name == "moleculeace":
            return DataSet(name, "regression", "wide", X, Y, scale=False,
                           metric="mean per-task R^2",
                           secondary="explained variance, all held-out labels")
        Y = np.where(np.isfinite(Y), (Y >= ACTIVE_PK).astype(np.float64), np.nan)
        return DataSet(name, "classification", "wide", X, Y, scale=False,
                       metric="mean per-task ROC-AUC")
    raise ValueError(f"Unknown data set {name!r}; choose from {', '.join(DATASETS)}.")


# -- models -----------------------------------------------------------------------------------
def _stl_estimator(task_type):
    if task_type == "regression":
        # alpha by efficient leave-one-out, one value per decade (each value costs a pass
        # over X: 15 values made the pooled fit on MoleculeACE twice as long)
        return RidgeCV(alphas=np.logspace(-2, 4, 7))
    return LogisticRegression(max_iter=1000)


def _mean_clustered(task_type):
    from skmtl import linear

    if task_type == "regression":
        return linear.MeanClusteredRegressorCV()
    cv_class = getattr(linear, "MeanClusteredClassifierCV", None)
    return cv_class() if cv_class is not None else linear.MeanClusteredClassifier()


def _block_sparse(task_type):
    from skmtl import linear

    if task_type == "regression":
        return linear.BlockSparseRegressorCV()
    return linear.BlockSparseClassifierCV()


def _linear(family, task_type, cv=True):
    """The linear estimator of a family (``"LowRank"``, ...) for the task type, defaults."""
    from skmtl import linear

    kind = "Regressor" if task_type == "regression" else "Classifier"
    model = getattr(linear, f"{family}{kind}{'CV' if cv else ''}")()
    if "random_state" in model.get_params():  # the clusters' k-means++ seeds: one table per run
        model.set_params(random_state=0)  # a seed, not a tuning choice
    return model


def _hierarchical(data):
    model = _linear("Hierarchical", data.task_type, cv=False)
    return model.set_params(**hierarchical_structure(data.X.shape[1], data.n_tasks,
                                                     data.task_type))


def _deep(task_type, weighting="equal", quick=False):
    from skmtl import deep

    estimator = deep.MultiTaskRegressor if task_type == "regression" else deep.MultiTaskClassifier
    params = dict(random_state=0)  # a seed, not a tuning choice: defaults otherwise
    if weighting != "equal":
        params["weighting"] = weighting
    if quick:
        params["max_epochs"] = QUICK_EPOCHS
    return estimator(**params)


@dataclass(frozen=True)
class Model:
    name: str
    description: str
    factory: object  # factory(data, quick) -> estimator
    school_only: bool = False


MODELS = {m.name: m for m in [
    Model("stl", "IndependentTasks(RidgeCV) / IndependentTasks(LogisticRegression)",
          lambda data, quick: IndependentTasks(_stl_estimator(data.task_type))),
    Model("pooled", "PooledTasks(RidgeCV) / PooledTasks(LogisticRegression)",
          lambda data, quick: PooledTasks(_stl_estimator(data.task_type))),
    Model("mean_clustered", "MeanClusteredRegressorCV / MeanClusteredClassifierCV, defaults",
          lambda data, quick: _mean_clustered(data.task_type)),
    Model("block_sparse", "BlockSparseRegressorCV / BlockSparseClassifierCV, defaults",
          lambda data, quick: _block_sparse(data.task_type)),
    Model("clustered_tasks", "ClusteredTasksRegressorCV / ClusteredTasksClassifierCV, defaults",
          lambda data, quick: _linear("ClusteredTasks", data.task_type)),
    Model("low_rank", "LowRankRegressorCV / LowRankClassifierCV, defaults",
          lambda data, quick: _linear("LowRank", data.task_type)),
    Model("task_relation", "TaskRelationRegressorCV / TaskRelationClassifierCV, defaults",
          lambda data, quick: _linear("TaskRelation", data.task_type)),
    Model("hierarchical", "HierarchicalRegressor / HierarchicalClassifier (no CV): defaults "
          f"up to {HIERARCHICAL_SLOPES} features, covariance_type='diag' above where "
          f"T q^3 <= {HIERARCHICAL_DIAGONAL_WORK:.0e}, beyond covariance_type='spherical' "
          "(the classifier: a random intercept only)",
          lambda data, quick: _hierarchical(data)),
    Model("deep_hard", "MultiTaskRegressor / MultiTaskClassifier, default parameters",
          lambda data, quick: _deep(data.task_type, quick=quick)),
    *[Model(f"deep_{w}", f"deep_hard with weighting={w!r}",
            lambda data, quick, w=w: _deep(data.task_type, w, quick=quick))
      for w in WEIGHTINGS],
    Model("mixedlm", "statsmodels MixedLM, random intercept and slope per school (REML)",
          lambda data, quick: MixedLMRegressor(slope=data.slope), school_only=True),
]}


# -- cross-validation -------------------------------------------------------------------------
def _positive_scores(model, X):
    """(n_samples, n_tasks) probabilities of class 1 of every task."""
    probas = model.predict_proba(X)
    scores = np.zeros((X.shape[0], len(probas)))
    for t, (proba, classes) in enumerate(zip(probas, model.classes_)):
        hit = np.flatnonzero(np.asarray(classes, dtype=np.float64) == 1.0)
        if hit.size:
            scores[:, t] = proba[:, hit[0]]
    return scores


def _fit_predict(model_name, data, train, test, quick, limit_threads):
    """Fit one model on one training fold: test-fold predictions, fit time, warnings.

    An exception does not stop the run: the predictions are then None and the last note is
    ``"error: ..."``.
    """
    from threadpoolctl import threadpool_limits

    estimator = MODELS[model_name].factory(data, quick)
    X_train, X_test = data.X[train], data.X[test]
    if data.scale:
        scaler = StandardScaler().fit(X_train)
        X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    fit_kw = {} if data.layout == "wide" else {"task_ids": data.task_ids[train]}
    predict_kw = {} if data.layout == "wide" else {"task_ids": data.task_ids[test]}
    limits = threadpool_limits(1) if limit_threads else None
    caught, fit_time, pred, error = [], float("nan"), None, None
    try:
        if limit_threads and model_name.startswith("deep"):
            import torch

            torch.set_num_threads(1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            start = time.perf_counter()
            estimator.fit(X_train, data.y[train], **fit_kw)
            fit_time = time.perf_counter() - start
            if data.task_type == "classification":
                pred = _positive_scores(estimator, X_test)
            else:
                pred = np.asarray(estimator.predict(X_test, **predict_kw), dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - reported in the table, the run goes on
        error = f"error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    finally:
        if limits is not None:
            limits.restore_original_limits()
    notes = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0][:150]}"
                    for w in caught if issubclass(w.category, ConvergenceWarning)})
    notes += getattr(estimator, "warnings_", [])
    if error is not None:
        notes.append(error)
    return pred, fit_time, notes


def _explained_variance(y, pred):
    """1 - SSE / SST over all observed labels (NaN-masked), SST about their mean."""
    observed = np.isfinite(y)
    y, pred = y[observed], pred[observed]
    return 1.0 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)


def fold_score(data, y, pred):
    """The primary score of one fold (see :attr:`DataSet.metric`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        if data.task_type == "classification":
            return roc_auc_score(y, pred)
        if data.layout == "long":
            return _explained_variance(y, pred)
        return r2_score(y, pred)


def secondary_score(data, pred):
    """The secondary score on the out-of-fold predictions of every label, or NaN."""
    if data.task_type == "classification":
        return float("nan")
    if data.layout == "wide":
        return _explained_variance(data.y, pred)
    labels, counts = np.unique(data.task_ids, return_counts=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        scores = r2_score(data.y, pred, task_ids=data.task_ids, multioutput="raw_values")
    return float(np.nanmean(scores[counts >= MIN_PUPILS]))


@dataclass
class ModelResult:
    scores: np.ndarray  # per fold
    fit_times: np.ndarray  # per fold, seconds
    secondary: float
    notes: list
    error: str = None  # why the model failed (then ``scores`` is [nan])

    @property
    def mean(self):
        return float(np.mean(self.scores))

    @property
    def se(self):
        n = self.scores.shape[0]
        return float(np.std(self.scores, ddof=1) / np.sqrt(n)) if n > 1 else float("nan")


def run_dataset(data, model_names, *, n_jobs=1, quick=False, random_state=0, log=print):
    """Cross-validate ``model_names`` on ``data`` with shared folds: {model: ModelResult}."""
    splitter = MultiTaskKFold(n_splits=data.n_splits, shuffle=True, random_state=random_state,
                              classification=data.task_type == "classification")
    split_kw = {} if data.layout == "wide" else {"task_ids": data.task_ids}
    folds = list(splitter.split(data.X, data.y, **split_kw))
    names = [m for m in model_names if not (MODELS[m].school_only and data.slope is None)
             and m not in data.skipped]
    jobs = [(m, k) for m in names for k in range(len(folds))]
    outputs = Parallel(n_jobs=n_jobs)(
        delayed(_fit_predict)(m, data, folds[k][0], folds[k][1], quick, n_jobs != 1)
        for m, k in jobs)
    results = {}
    for m in names:
        oof = np.full(data.y.shape, np.nan)
        scores, times, notes, errors = [], [], set(), []
        for (name, k), (pred, fit_time, fit_notes) in zip(jobs, outputs):
            if name != m:
                continue
            times.append(fit_time)
            notes.update(n for n in fit_notes if not n.startswith("error: "))
            if pred is None:
                errors.append(f"fold {k}: {fit_notes[-1]}")
                continue
            test = folds[k][1]
            oof[test] = pred
            scores.append(fold_score(data, data.y[test], pred))
        if errors:
            results[m] = ModelResult(np.array([np.nan]), np.array(times), float("nan"),
                                     sorted(notes), error="; ".join(errors))
            log(f"  {m:<18} FAILED: {results[m].error}")
            continue
        results[m] = ModelResult(np.array(scores), np.array(times),
                                 secondary_score(data, oof), sorted(notes))
        log(f"  {m:<18} {results[m].mean:.4f} +/- {results[m].se:.4f}   "
            f"fit {np.mean(times):8.2f} s/fold")
    return results


# -- tables -----------------------------------------------------------------------------------
def _best_weighting(results):
    """Name of the weighting with the best mean score among those run, or None."""
    run = [f"deep_{w}" for w in WEIGHTINGS
           if f"deep_{w}" in results and results[f"deep_{w}"].error is None]
    return max(run, key=lambda m: results[m].mean) if run else None


def model_rows(all_results, model_names):
    """Row names of the tables: the models run, and the best weighting after the four."""
    rows = [m for m in MODELS if m in model_names
            and any(m in r for r in all_results.values())]
    if any(_best_weighting(r) for r in all_results.values()):
        last = max(i for i, m in enumerate(rows) if m.startswith("deep_"))
        rows.insert(last + 1, BEST_WEIGHTING)
    return rows


def tables(all_results, datasets, model_names, style):
    """The score, secondary-score and fit-time tables as text (``style`` "md" or "rst")."""
    rows = model_rows(all_results, model_names)
    bold = "**{}**"

    def score_cell(d, m):
        results = all_results[d.name]
        best = _best_weighting(results)
        if m == BEST_WEIGHTING:
            if best is None:
                return "-"
            r = results[best]
            return f"{r.mean:.3f} ± {r.se:.3f} ({best.removeprefix('deep_')})"
        if m not in results:
            return "not run" if m in d.skipped else "-"
        if results[m].error is not None:
            return "failed"
        text = f"{results[m].mean:.3f} ± {results[m].se:.3f}"
        return bold.format(text) if m == best else text

    def secondary_cell(results, m):
        if m == BEST_WEIGHTING:
            m = _best_weighting(results)
        if m not in results or not np.isfinite(results[m].secondary):
            return "-"
        return f"{results[m].secondary:.3f}"

    def time_cell(d, m):
        results = all_results[d.name]
        if m not in results:
            return "not run" if m in d.skipped else "-"
        if results[m].error is not None:
            return "failed"
        return f"{np.mean(results[m].fit_times):.1f}"

    out = []
    names = [d.name for d in datasets]
    header = ["model"] + [f"{d.name}<br>{d.metric}" if style == "md" else
                          f"{d.name}: {d.metric}" for d in datasets]
    caption = "Scores: mean ± standard error over the folds (higher is better)."
    if BEST_WEIGHTING in rows:
        caption += (" Bold: the best of the adaptive weightings run, repeated in the "
                    f"``{BEST_WEIGHTING}`` row (picked on the test folds: optimistic).")
    out.append((caption, header,
                [[m] + [score_cell(d, m) for d in datasets] for m in rows]))
    with_secondary = [d for d in datasets if d.secondary]
    if with_secondary:
        header = ["model"] + [f"{d.name}<br>{d.secondary}" if style == "md" else
                              f"{d.name}: {d.secondary}" for d in with_secondary]
        out.append(("Secondary scores, on the out-of-fold predictions of all labels.", header,
                    [[m] + [secondary_cell(all_results[d.name], m) for d in with_secondary]
                     for m in rows]))
    header = ["model"] + names
    out.append(("Fit time: seconds per fold (one training fold, inner model selection "
                "included).", header,
                [[m] + [time_cell(d, m) for d in datasets]
                 for m in rows if m != BEST_WEIGHTING]))
    return "\n\n".join(_render(caption, header, body, style) for caption, header, body in out)


def _render(caption, header, body, style):
    if style == "md":
        caption = caption.replace("``", "`")
        lines = [caption, "", "| " + " | ".join(header) + " |",
                 "| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |"]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)
    lines = [".. list-table:: " + caption, "   :header-rows: 1", ""]
    for row in [header, *body]:
        lines.append(f"   * - {row[0]}")
        lines += [f"     - {cell}" for cell in row[1:]]
    return "\n".join(lines)


def _paired(results, a, b):
    """Mean and standard error over the folds of ``score(a) - score(b)`` (same folds)."""
    diff = results[a].scores - results[b].scores
    se = np.std(diff, ddof=1) / np.sqrt(diff.shape[0]) if diff.shape[0] > 1 else np.nan
    return float(np.mean(diff)), float(se)


def _versus(results, a, b):
    """"a beats b by 0.012 ± 0.004" or "a does not beat b (-0.003 ± 0.002)", paired."""
    diff, se = _paired(results, a, b)
    verdict = "beats" if diff > 0 else "does not beat"
    return (f"{a} ({results[a].mean:.3f}) {verdict} {b} ({results[b].mean:.3f}): "
            f"difference {diff:+.3f} ± {se:.3f}")


def findings(all_results, datasets):
    """Sentences on what the tables say (generated from the numbers).

    School data: the best MTL model against the better of single-task and pooled, and
    against the mixed model. Every data set: ``deep_hard`` (default parameters) against
    ``stl``. Differences are paired over the folds (mean ± standard error).
    """
    sentences = []
    mtl = ["mean_clustered", "block_sparse", "clustered_tasks", "low_rank", "task_relation",
           "hierarchical", "deep_hard"]
    for d in datasets:
        results = {m: r for m, r in all_results[d.name].items() if r.error is None}
        parts = []
        run = [m for m in mtl if m in results]
        bases = [m for m in ("stl", "pooled") if m in results]
        if d.slope is not None and run and bases:
            best = max(run, key=lambda m: results[m].mean)
            base = max(bases, key=lambda m: results[m].mean)
            parts.append("best MTL model against the better of single-task and pooled: "
                         + _versus(results, best, base))
            if "mixedlm" in results:
                parts.append("against the mixed model: " + _versus(results, best, "mixedlm"))
        if "deep_hard" in results and "stl" in results:
            parts.append("default deep model: " + _versus(results, "deep_hard", "stl"))
        if parts:
            sentences.append(f"{d.name}: " + "; ".join(parts) + ".")
    return sentences


def report(all_results, datasets, model_names, *, style, command, timings, quick):
    """The generated block: run details, tables, findings, per-data-set notes."""
    import sklearn

    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    versions = f"scikit-learn {sklearn.__version__}, NumPy {np.__version__}"
    try:
        import statsmodels
        import torch

        versions += f", torch {torch.__version__}, statsmodels {statsmodels.__version__}"
    except ImportError:
        pass
    code = "``" if style == "rst" else "`"
    lines = [f"Generated by {code}{command}{code} on {now} ({os.cpu_count()} cores, "
             f"{platform.python_implementation()} {platform.python_version()}, {versions}).",
             ""]
    if quick:
        lines += ["**--quick run: tiny subsamples, 5 training epochs; the numbers mean "
                  "nothing.**", ""]
    lines.append(tables(all_results, datasets, model_names, style))
    lines.append("")
    bullet = "- "
    facts = findings(all_results, datasets)
    if facts:
        lines += ["What the table says (differences paired over the folds, mean ± standard "
                  "error; generated from the numbers above):", ""]
        lines += [bullet + f for f in facts] + [""]
    lines += ["Data as run:", ""]
    for d in datasets:
        notes = [f"{d.n_labels:,} labels, {d.n_tasks} tasks, {d.X.shape[1]} features, "
                 f"{d.n_splits} folds, {timings[d.name]:.0f} s in all"] + d.notes
        skipped = [m for m in model_names if m in d.skipped]
        reasons = {}
        for m in skipped:
            reasons.setdefault(d.skipped[m], []).append(m)
        notes += [f"not run: {', '.join(ms)} ({why})" for why, ms in reasons.items()]
        notes += [f"{m} failed ({_escape(r.error)})"
                  for m, r in all_results[d.name].items() if r.error is not None]
        warned = sorted({f"{m}: {n}" for m, r in all_results[d.name].items() for n in r.notes})
        if warned:
            notes.append("warnings: " + "; ".join(_escape(w) for w in warned[:6])
                         + (f" (and {len(warned) - 6} more)" if len(warned) > 6 else ""))
        lines.append(f"{bullet}{d.name}: " + "; ".join(notes) + ".")
    return "\n".join(lines)


def _escape(text):
    """``text`` (a warning or error message) safe to put in markdown or reST prose."""
    for char in "\\`*_|<>[]":
        text = text.replace(char, "\\" + char)
    return text


def write_between_markers(path, block, style, markers=None):
    """Replace the text between the ``style`` markers of ``path`` with ``block``.

    ``markers`` (a dict like :data:`MARKERS`) gives other markers: another script's block.
    """
    start, end = (markers or MARKERS)[style]
    with open(path) as handle:
        text = handle.read()
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), flags=re.S)
    if not pattern.search(text):
        raise ValueError(f"{path} has no {start!r} ... {end!r} markers.")
    replacement = f"{start}\n\n{block}\n\n{end}"
    with open(path, "w") as handle:
        handle.write(pattern.sub(lambda _: replacement, text, count=1))


# -- command line -----------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS),
                        metavar="NAME", help=f"data sets (default: all): {', '.join(DATASETS)}")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS),
                        metavar="NAME", help=f"models (default: all): {', '.join(MODELS)}")
    parser.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny subsamples and 5 deep epochs: checks the plumbing only")
    parser.add_argument("--write", action="store_true",
                        help="write the tables into benchmarks/README.md and the docs page")
    parser.add_argument("--n-jobs", type=int, default=1,
                        help="(model, fold) fits run in parallel (default 1)")
    parser.add_argument("--random-state", type=int, default=0, help="seed of the folds")
    parser.add_argument("--no-budget", action="store_true",
                        help="run every model on every full data set with --folds folds "
                        "(the default leaves out or shrinks what BUDGET in the script says)")
    args = parser.parse_args(argv)
    if args.folds < 2:
        parser.error("--folds must be at least 2")
    return args


def main(argv=None):
    """Run the benchmark; returns ``(results, datasets, markdown)``."""
    args = parse_args(argv)
    command = "python benchmarks/real_data.py" + (
        " " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    all_results, datasets, timings = {}, [], {}
    for name in args.datasets:
        start = time.perf_counter()
        data = load(name, quick=args.quick, random_state=args.random_state)
        data.n_splits = args.folds
        if not args.quick and not args.no_budget:
            apply_budget(data, BUDGET.get(name, {}), args.random_state)
        print(f"{name}: {data.n_labels} labels, {data.n_tasks} tasks, {data.X.shape[1]} "
              f"features, {data.n_splits} folds", flush=True)
        all_results[name] = run_dataset(data, args.models, n_jobs=args.n_jobs,
                                        quick=args.quick, random_state=args.random_state)
        timings[name] = time.perf_counter() - start
        datasets.append(data)
        print(f"  ({timings[name]:.0f} s)", flush=True)
        if len(args.datasets) > 1 and name != args.datasets[-1]:  # the results so far
            print(tables(all_results, datasets, args.models, "md"), flush=True)
    markdown = report(all_results, datasets, args.models, style="md", command=command,
                      timings=timings, quick=args.quick)
    print()
    print(markdown)
    if args.write:
        write_between_markers(README, markdown, "md")
        write_between_markers(DOCS_PAGE, report(all_results, datasets, args.models,
                                                style="rst", command=command,
                                                timings=timings, quick=args.quick), "rst")
        print(f"\nwritten into {README} and {DOCS_PAGE}")
    return all_results, datasets, markdown


if __name__ == "__main__":
    main()
