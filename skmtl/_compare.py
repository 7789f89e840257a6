"""The models of ``skmtl compare`` and its comparison, a thin layer over ``transfer_report``.

Models are registered by name in ``MODELS`` (later features add theirs with
:func:`register_model`). The comparison itself is
:func:`skmtl.model_selection.transfer_report`'s engine: every model and the single-task
reference (``stl``, or the ``single_task`` strategy with ``--focus``) are cross-validated on
the same shuffled :class:`~skmtl.model_selection.MultiTaskKFold` folds, in one joblib run
(``n_jobs``), and per task:

- ``score``: the mean over the folds of the task's test score on its observed labels, minus
  the mean squared error (regression) or accuracy (classification) unless another ``scoring``
  is chosen. Not R^2 by default: a task with a dozen labels per test fold has a per-fold R^2
  biased low and undefined on a fold of one label (on ``exam``, 65 schools, 5 folds, every
  model's mean per-fold R^2 is below zero), while the squared error is defined on any fold;
- ``gain``: ``score - reference_score`` (the mean per-fold score difference), in the same
  units, with ``gain_se`` its standard error over the folds;
- ``negative_transfer``: ``gain < -gain_se``.

The definitions are written out once, in :func:`~skmtl.model_selection.transfer_report`.
"""

import importlib.util
from dataclasses import dataclass, field
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone, is_classifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import get_tags
from sklearn.utils.metaestimators import available_if

from skmtl.baselines import IndependentTasks, PooledTasks, _TaskFitError
from skmtl.model_selection import MultiTaskGroupKFold, MultiTaskKFold
from skmtl.model_selection._transfer import _cross_validate_against_reference
from skmtl.utils._sklearn_compat import HasMethods, _fit_context
from skmtl.utils.validation import (
    _hashable,
    _tighten,
    _ValidationSplitError,
    check_groups,
    check_multitask_target,
    encode_target_classes,
)

__all__ = ["HIERARCHICAL_DIAGONAL_WORK", "HIERARCHICAL_SLOPES", "MODELS", "ComparisonResult",
           "count_tasks", "hierarchical_structure", "hierarchical_work", "register_model",
           "run_comparison"]

REFERENCE = "stl"


@dataclass(frozen=True)
class ModelSpec:
    """A model of the comparison: ``factory(task_type, device)`` returns an estimator."""

    name: str
    factory: object
    description: str
    default: bool = True
    applicable: object = None
    uses_device: bool = False


MODELS = {}


def register_model(name, factory, description, *, default=True, applicable=None,
                   uses_device=False):
    """Add a model to ``skmtl compare``.

    Parameters
    ----------
    name : str
        The name used with ``--models``.
    factory : callable
        ``factory(task_type, device)`` -> unfitted estimator; ``task_type`` is
        ``"regression"`` or ``"classification"``; ``device`` the ``--device`` value.
    description : str
        One line for ``skmtl compare --help``.
    default : bool, default=True
        Whether the model runs when ``--models`` is not given.
    applicable : callable, default=None
        ``applicable(task_type, target)`` -> None when the model can run on the data, else the
        reason it cannot (a string); ``target`` is the
        :class:`~skmtl.utils.validation.MultiTaskTarget` of the data. A model that cannot run is
        left out of the comparison and its reason reported (``ComparisonResult.skipped``).
        None means always applicable.
    uses_device : bool, default=False
        Whether the model runs on ``--device`` (a deep model): the command checks the device
        before fitting where one does, and says it is not used where none does.
    """
    MODELS[name] = ModelSpec(name, factory, description, default, applicable, uses_device)


def _binary_tasks_only(task_type, target):
    """Reason a binary-only classifier cannot run on ``target``, or None."""
    if task_type != "classification":
        return None
    classes = encode_target_classes(target)[1]
    many = [task for task, task_classes in zip(target.tasks, classes) if len(task_classes) > 2]
    if many:
        shown = ", ".join(str(t) for t in many[:5]) + (" ..." if len(many) > 5 else "")
        return f"binary tasks only; {len(many)} task(s) have more than 2 classes ({shown})"
    return None


def _deep_installed(task_type, target):
    """Reason the deep models cannot run (torch or skorch missing), or None."""
    missing = [m for m in ("torch", "skorch") if importlib.util.find_spec(m) is None]
    if missing:
        return (f"{' and '.join(missing)} not installed; install the deep extra: "
                "pip install torch==2.13.0 'skmtl[deep]'")
    return None


def _warm_up_torch():
    """Create a torch optimizer once, if torch is installed: the first of a process imports
    torch's compiler stack (about 2 s here), which the first deep model's fit_time would
    otherwise carry."""
    if importlib.util.find_spec("torch") is None:
        return
    import torch

    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


def _linear_model(task_type, device, kind):
    from skmtl import linear

    if kind == "block_sparse":
        # 30 alphas down to alpha_max / 100 and a relative duality gap of 1e-4: a screening
        # comparison, not a high-precision path (the small-alpha end converges slowly)
        params = dict(cv=3, n_alphas=30, eps=1e-2, tol=1e-4)
        model = (linear.BlockSparseRegressorCV(**params) if task_type == "regression"
                 else linear.BlockSparseClassifierCV(**params))
    elif task_type == "regression":
        model = linear.MeanClusteredRegressorCV(cv=3)
    else:
        model = linear.MeanClusteredClassifierCV(cv=3)
    return make_pipeline(StandardScaler(), model)


def _deep_pipeline(estimator_class, device, **params):
    """A scaler and a deep estimator with the comparison's training settings, on ``device``."""
    return make_pipeline(StandardScaler(), estimator_class(
        hidden_layer_sizes=(64,), max_epochs=DEEP_EPOCHS, batch_size=64, lr=1e-3,
        device=device, random_state=0, **params))


def _deep_model(task_type, device, sharing):
    from skmtl import deep

    estimator = deep.MultiTaskRegressor if task_type == "regression" else deep.MultiTaskClassifier
    return _deep_pipeline(estimator, device, sharing=sharing)


def _single_task_model(task_type):
    if task_type == "regression":
        return Ridge(alpha=1.0)
    return LogisticRegression(max_iter=1000)


register_model(
    "stl",
    lambda task_type, device: make_pipeline(
        StandardScaler(), IndependentTasks(_single_task_model(task_type))),
    "single-task learning: IndependentTasks(Ridge / LogisticRegression), the reference",
)
register_model(
    "pooled",
    lambda task_type, device: make_pipeline(
        StandardScaler(), PooledTasks(_single_task_model(task_type))),
    "one model on all tasks' rows: PooledTasks(Ridge / LogisticRegression)",
)
register_model(
    "mean_clustered",
    lambda task_type, device: _linear_model(task_type, device, "mean_clustered"),
    "linear MTL, tasks pulled towards their mean: MeanClusteredRegressorCV (alpha and "
    "cluster_strength by inner 3-fold CV) / MeanClusteredClassifierCV (binary tasks)",
    applicable=_binary_tasks_only,
)
register_model(
    "block_sparse",
    lambda task_type, device: _linear_model(task_type, device, "block_sparse"),
    "linear MTL, features selected jointly (l1/l2): BlockSparseRegressorCV / "
    "BlockSparseClassifierCV (binary tasks), alpha by inner 3-fold CV over 30 values down "
    "to alpha_max / 100",
    applicable=_binary_tasks_only,
)


def _relation_model(task_type, family, params):
    """A scaler and the learned-relationship linear model of ``family`` for the task type:
    its ``*CV`` estimator with ``params`` (inner folds), or the estimator when there are none."""
    from skmtl import linear

    kind = "Regressor" if task_type == "regression" else "Classifier"
    name = family + kind + ("CV" if params else "")
    return make_pipeline(StandardScaler(), getattr(linear, name)(**params))


# Up to HIERARCHICAL_SLOPES features the hierarchical model gives every feature a random
# slope, with the estimator's default covariance_type="auto" (a full covariance where it has at
# most as many entries as tasks, else independent slopes); above, independent ones
# (covariance_type="diag") where a step's T q^3 is at most the estimator's budget for that
# fallback (_AUTO_DIAGONAL_WORK, 1e8: about a minute), else one variance for every slope and
# a prior on the mean task's (covariance_type="spherical") for the regressor, a random
# intercept only for the classifier (which has no spherical model). A full
# covariance has q (q + 1) / 2 entries for q random effects, and its cost grows with the
# fourth power of q: on yeast (103 features, 14 tasks) one training fold ran 742 s and stopped
# at max_iter. A diagonal one has q entries (yeast: 56 s a training fold and a mean ROC AUC of
# 0.693 over 5 folds, where a random intercept only, which ranks each task's rows as pooling
# does, had 0.531; three MoleculeACE targets on 256 bits, 3 scaffold folds: R^2 0.002 to 0.029
# above stl's, where a random intercept only, its slopes shared and unpenalised, scored 0.117
# to 0.345 below). 2,048 bits of 30 targets (T q^3 = 2.6e11): the spherical model scored a
# mean per-task R^2 of 0.483 on 3 folds of MoleculeACE's 10,000-molecule subsample, where a
# random intercept only, its 2,048 slopes shared and unpenalised, scored -0.023.
# benchmarks/real_data.py applies the same rule (hierarchical_structure).
HIERARCHICAL_SLOPES = 20
HIERARCHICAL_DIAGONAL_WORK = 1e8  # skmtl.linear._hierarchical._AUTO_DIAGONAL_WORK (a test)


def hierarchical_work(n_features, n_tasks):
    """``T q^3`` of the hierarchical model with every feature and the intercept random: the
    work of a step with independent random slopes."""
    return n_tasks * float(n_features + 1) ** 3


def count_tasks(y, task_ids):
    """The number of tasks of wide ``y`` (its columns; 1-D: one) or of long data
    (the distinct ``task_ids``)."""
    if task_ids is not None:
        return len(np.unique(np.asarray(task_ids)))
    return np.shape(y)[1] if np.ndim(y) == 2 else 1


def hierarchical_structure(n_features, n_tasks, task_type="regression"):
    """The hierarchical model's parameters for ``n_features`` features of ``n_tasks`` tasks
    (see above): ``{}`` (every slope random, ``covariance_type="auto"``),
    ``{"covariance_type": "diag"}``, or beyond ``{"covariance_type": "spherical"}``
    (``task_type="regression"``) or ``{"random_slopes": None}`` (``"classification"``)."""
    if n_features <= HIERARCHICAL_SLOPES:
        return {}
    if hierarchical_work(n_features, n_tasks) <= HIERARCHICAL_DIAGONAL_WORK:
        return {"covariance_type": "diag"}
    if task_type == "regression":
        return {"covariance_type": "spherical"}
    return {"random_slopes": None}


def _task_ids_param(task_ids):
    return {} if task_ids is None else {"task_ids": task_ids}


def _delegates(method):
    """The wrapped hierarchical model has ``method`` (``predict_proba``: classifiers only)."""
    return lambda wrapper: hasattr(wrapper.estimator, method)


class _HierarchicalBySize(MetaEstimatorMixin, BaseEstimator):
    """A hierarchical model whose random effects depend on the number of features it is fitted on.

    ``fit`` fits a clone of ``estimator`` (a :class:`~skmtl.linear.HierarchicalRegressor` or
    :class:`~skmtl.linear.HierarchicalClassifier`) with the parameters of
    :func:`hierarchical_structure` for the number of features of ``X`` and of tasks: as
    given (every slope random, by default) up to ``HIERARCHICAL_SLOPES`` features, with
    ``covariance_type="diag"`` where ``T q^3 <= HIERARCHICAL_DIAGONAL_WORK``, above with
    ``covariance_type="spherical"`` (the regressor) or ``random_slopes=None`` (the
    classifier: a random intercept only); ``estimator_`` is the fitted model, and ``predict``,
    ``predict_proba``, ``score`` are its own. ``task_ids`` is routed as to ``estimator``.
    """

    __metadata_request__fit = {"task_ids": True}
    __metadata_request__predict = {"task_ids": True}
    __metadata_request__predict_proba = {"task_ids": True}
    __metadata_request__score = {"task_ids": True}
    _parameter_constraints = {
        "estimator": [HasMethods(["fit", "predict", "set_params"])],
    }

    def __init__(self, estimator):
        self.estimator = estimator

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator)
        tags.estimator_type = inner.estimator_type
        tags.classifier_tags = inner.classifier_tags
        tags.regressor_tags = inner.regressor_tags
        tags.target_tags = inner.target_tags
        tags.input_tags = inner.input_tags
        return tags

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, task_ids=None):
        """Fit ``estimator`` with the random effects of :func:`hierarchical_structure`."""
        n_features = X.shape[1] if hasattr(X, "shape") else np.shape(X)[1]
        task_type = "classification" if is_classifier(self.estimator) else "regression"
        self.estimator_ = clone(self.estimator).set_params(
            **hierarchical_structure(n_features, count_tasks(y, task_ids), task_type))
        self.estimator_.fit(X, y, **_task_ids_param(task_ids))
        return self

    def predict(self, X, task_ids=None):
        """The fitted model's predictions."""
        return self.estimator_.predict(X, **_task_ids_param(task_ids))

    @available_if(_delegates("predict_proba"))
    def predict_proba(self, X, task_ids=None):
        """The fitted model's class probabilities."""
        return self.estimator_.predict_proba(X, **_task_ids_param(task_ids))

    def score(self, X, y, task_ids=None):
        """The fitted model's score."""
        return self.estimator_.score(X, y, **_task_ids_param(task_ids))

    @property
    def classes_(self):
        return self.estimator_.classes_

    @property
    def tasks_(self):
        return self.estimator_.tasks_

    @property
    def n_features_in_(self):
        return self.estimator_.n_features_in_


def _hierarchical_model(task_type):
    from skmtl import linear

    estimator = (linear.HierarchicalRegressor() if task_type == "regression"
                 else linear.HierarchicalClassifier())
    return make_pipeline(StandardScaler(), _HierarchicalBySize(estimator))


# the models of learned task relationships: slower (and, for hierarchical, costlier in the
# number of features), so run when named
_RELATION_MODELS = (
    ("clustered_tasks", "ClusteredTasks", dict(cv=3, random_state=0),
     "linear MTL, tasks in clusters each pulled to its mean: ClusteredTasksRegressorCV / "
     "ClusteredTasksClassifierCV (n_clusters=2, alpha by inner 3-fold CV; not run by default)"),
    ("low_rank", "LowRank", dict(cv=3),
     "linear MTL, task coefficients of low rank (trace norm): LowRankRegressorCV / "
     "LowRankClassifierCV (alpha by inner 3-fold CV; not run by default)"),
    ("task_relation", "TaskRelation", dict(cv=3),
     "linear MTL, a learned task covariance (Zhang & Yeung): TaskRelationRegressorCV / "
     "TaskRelationClassifierCV (alpha by inner 3-fold CV; not run by default)"),
)
for _name, _family, _params, _description in _RELATION_MODELS:
    register_model(
        _name,
        lambda task_type, device, family=_family, params=_params: _relation_model(
            task_type, family, params),
        _description, default=False, applicable=_binary_tasks_only)
register_model(
    "hierarchical",
    lambda task_type, device: _hierarchical_model(task_type),
    "linear MTL, task coefficients drawn around a learned mean with a learned covariance "
    "(a mixed model fitted by empirical Bayes, no grid search): HierarchicalRegressor / "
    f"HierarchicalClassifier, every slope random up to {HIERARCHICAL_SLOPES} features "
    "(with a full covariance where it has at most as many entries as tasks), "
    "independent random slopes (covariance_type='diag') above where T q^3 <= "
    f"{HIERARCHICAL_DIAGONAL_WORK:.0e} for T tasks and q random effects, beyond one variance "
    "for every slope and a prior on the mean task's (covariance_type='spherical'; the "
    "classifier: a random intercept only) (the cost grows with the number of random effects; "
    "not run by default)",
    default=False, applicable=_binary_tasks_only)

# Deep models: an MLP (one hidden layer of 64) trained for DEEP_EPOCHS epochs, on --device.
DEEP_EPOCHS = 30
_DEEP_MODELS = (
    # (sharing, description, run by default)
    ("hard", "deep MTL, hard sharing: MultiTaskRegressor / MultiTaskClassifier(sharing='hard'), "
     "a shared trunk and one head per task", True),
    ("independent", "deep single-task networks: MultiTask*(sharing='independent'), the deep "
     "reference", True),
    ("cross_stitch", "deep MTL, one tower per task mixed by cross-stitch units (not run by "
     "default)", False),
)
for _sharing, _description, _default in _DEEP_MODELS:
    register_model(
        f"deep_{_sharing}",
        lambda task_type, device, sharing=_sharing: _deep_model(task_type, device, sharing),
        _description, default=_default, applicable=_deep_installed, uses_device=True)


# the per-task fields of a model's comparison, from transfer_report's engine
FIELDS = ("score", "reference_score", "gain", "gain_se", "negative_transfer", "n_folds")
# the scorer names (skmtl.metrics.get_multitask_scorer) of each task type, the default first
SCORINGS = {
    "regression": ("neg_mean_squared_error", "r2", "neg_mean_absolute_error"),
    "classification": ("accuracy", "roc_auc", "average_precision", "neg_log_loss"),
}


_PRINTED = {"r2": "R^2", "neg_mean_squared_error": "-MSE", "neg_mean_absolute_error": "-MAE",
            "neg_log_loss": "-log loss"}


@dataclass
class ComparisonResult:
    """Per-task and summary results of a comparison.

    Attributes
    ----------
    tasks : ndarray of shape (n_tasks,)
        Task labels.
    task_type : str
        ``"regression"`` or ``"classification"``.
    per_task : dict of str -> dict of str -> ndarray
        ``per_task[model]`` has ``score``, ``reference_score``, ``gain``, ``gain_se``,
        ``negative_transfer`` and ``n_folds`` arrays over tasks, as defined in
        :func:`~skmtl.model_selection.transfer_report`, and ``n_observed``.
    summary : list of dict
        One row per model: ``model``, ``mean_score`` (over tasks with a defined score),
        ``wins`` and ``losses`` (tasks with a gain above / below zero),
        ``negative_transfer`` (tasks flagged), ``fit_time`` (seconds, summed over the folds).
    skipped : dict of str -> str
        Models left out because they cannot run on the data, with the reason.
    reference : str
        The model the gains are measured against (``"stl"``, or ``"single_task"`` for a
        focused comparison).
    scoring : str, default=None
        The per-task score, a name of :func:`~skmtl.metrics.get_multitask_scorer`; None means
        ``"neg_mean_squared_error"`` (regression) or ``"accuracy"`` (classification). The gains
        are in its units (:attr:`metric`).
    n_splits : int
        Number of folds.
    """

    tasks: np.ndarray
    task_type: str
    per_task: dict = field(default_factory=dict)
    summary: list = field(default_factory=list)
    skipped: dict = field(default_factory=dict)
    reference: str = REFERENCE
    scoring: str = None
    n_splits: int = 0

    @property
    def metric(self):
        """The per-task score (a scorer name, ``"neg_mean_squared_error"`` by default for
        regression, ``"accuracy"`` for classification); the gains are in its units."""
        return self.scoring or SCORINGS[self.task_type][0]

    @property
    def metric_name(self):
        """The metric as printed (``"R^2"`` for ``"r2"``, ``"-MSE"`` for
        ``"neg_mean_squared_error"``)."""
        return _PRINTED.get(self.metric, self.metric)

    def to_rows(self):
        """Per-(model, task) rows for scores.csv."""
        rows = []
        for model, values in self.per_task.items():
            for t, task in enumerate(self.tasks):
                rows.append({
                    "model": model,
                    "task": task.item() if hasattr(task, "item") else task,
                    "metric": self.metric,
                    "score": values["score"][t],
                    "reference": self.reference,
                    "reference_score": values["reference_score"][t],
                    "gain": values["gain"][t],
                    "gain_se": values["gain_se"][t],
                    "negative_transfer": bool(values["negative_transfer"][t]),
                    "n_observed": int(values["n_observed"][t]),
                    "n_folds": int(values["n_folds"][t]),
                })
        return rows

    def per_task_rows(self):
        """One row per task for per_task.csv: ``task``, ``n_observed``, then every model's
        ``<model>_score_<metric>`` and, for the models other than the reference,
        ``<model>_gain_<metric>`` (the values of :meth:`to_rows`, side by side)."""
        rows = []
        for t, task in enumerate(self.tasks):
            first = next(iter(self.per_task.values()))
            row = {"task": task.item() if hasattr(task, "item") else task,
                   "n_observed": int(first["n_observed"][t])}
            for model, values in self.per_task.items():
                row[f"{model}_score_{self.metric}"] = values["score"][t]
            for model, values in self.per_task.items():
                if model != self.reference:
                    row[f"{model}_gain_{self.metric}"] = values["gain"][t]
            rows.append(row)
        return rows

    def table(self):
        """The summary as text cells: the header and one row per model (printed by
        :meth:`format_table`, and the table of report.html)."""
        header = ["model", f"mean {self.metric_name}", "wins", "losses", "neg. transfer",
                  "fit time (s)"]
        lines = [[r["model"], f"{r['mean_score']:.4f}", str(r["wins"]), str(r["losses"]),
                  str(r["negative_transfer"]), f"{r['fit_time']:.2f}"] for r in self.summary]
        return header, lines

    def format_table(self):
        """The summary as an aligned text table."""
        header, lines = self.table()
        widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]

        def fmt(row):
            return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(row, widths)))

        rule = "-" * len(fmt(header))
        return "\n".join([fmt(header), rule, *[fmt(row) for row in lines]])

    def undefined_tasks(self):
        """Tasks whose score is undefined in some folds (too few test labels), by model."""
        return {model: self.tasks[values["n_folds"] < self.n_splits]
                for model, values in self.per_task.items()
                if np.any(values["n_folds"] < self.n_splits)}


def _task_error(exc, target, classification):
    """A per-task fit error ``exc`` in the terms of ``skmtl compare``, or None to keep it.

    The estimators see a wide target as an array, so their errors name a task by its
    position: the message names it by its column. A classification task with one class, in
    a training fold or in all its labels, gets the command line's advice (long data too):
    ``stl``, the reference, fits each task alone and cannot learn from one class. Any other
    error is the fit's, about the features as likely as the labels: the message says in
    which task's fit it arose, not that the target column is at fault.
    """
    if not isinstance(exc, _TaskFitError):
        return None
    seen_as = [_hashable(t) for t in (range(target.n_tasks) if target.layout == "wide"
                                      else target.tasks)]
    if _hashable(exc.task) not in seen_as:
        return None
    t = seen_as.index(_hashable(exc.task))
    name = _hashable(target.tasks[t])
    if target.layout == "wide":
        where, leave_out = f"Target column {name!r}", "leave it out of --targets"
    else:
        where, leave_out = f"Task {name!r}", "remove its rows"
    labels = _tighten(target.task_labels(t, target.task_rows()[t]))
    classes = np.unique(labels)
    cannot = ("stl, the single-task reference that every model (pooled, mean_clustered, ...) "
              "is compared with, fits each task alone and cannot learn from one class")
    if classification and classes.size == 1:
        return ValueError(
            f"{where} has one class only, {_hashable(classes[0])!r}, among its "
            f"{labels.shape[0]} labels: {cannot}. {leave_out[0].upper()}{leave_out[1:]}, or "
            "add labels of another class.")
    if classification and exc.seen is not None:
        return ValueError(
            f"{where} has only the class(es) {exc.seen} among its {exc.n_labels} training "
            f"labels in a fold (the classes are {exc.classes}): {cannot}. "
            f"Its other class(es) are too rare to be in every training fold: use fewer folds "
            f"(--cv) or more labels, or {leave_out}.")
    if target.layout == "wide":
        return ValueError(f"Fitting the task of target column {name!r} failed: {exc.detail}")
    return None


def _validation_error(exc, estimators, reference, n_splits):
    """A deep model's validation split that failed in a training fold, with the command
    line's advice instead of the estimator's (``early_stopping=False``, not an option here):
    fewer folds (larger training folds), smaller groups, or the models left out."""
    names = [name for name, estimator in estimators.items()
             if any(key.rpartition("__")[2] in ("early_stopping", "validation_fraction")
                    and value for key, value in estimator.get_params(deep=True).items())]
    # where the reference stops early too, it may be the model that failed: leaving the
    # others out is no advice then
    others = [] if reference in names else names
    larger = ["fewer folds (--cv)"] if n_splits > 2 else []
    if exc.by_groups:
        larger.append("a --group-column of smaller groups")
    advice = [f"use {' or '.join(larger)}"] if larger else []
    if others:
        option = "--models" if reference == REFERENCE else "--strategies"
        advice.append(f"leave {', '.join(others)} out ({option})")
    advice = ", or ".join(advice) or "add labels"  # the reference, 2 folds without groups
    verb = "stops" if len(names) == 1 else "stop"
    return ValueError(
        f"{', '.join(names) or 'A deep model'} {verb} early on the loss of validation data "
        f"held out of each training fold, and in one training fold none can be: "
        f"{exc.reason}. {advice[0].upper()}{advice[1:]}.")


def _run(estimators, X, y, *, task_ids, groups, task_type, reference, cv, random_state,
         n_jobs, progress, result, target, keep=None):
    """Cross-validate ``estimators`` (name -> estimator) against ``estimators[reference]``.

    One call of transfer_report's engine on shared, shuffled MultiTaskKFold folds
    (MultiTaskGroupKFold folds of ``groups``, when given); fills ``result`` with the per-task
    fields (restricted to the tasks ``keep``) and the summary. ``target`` is the parsed
    target, which names the tasks in a fit error.
    """
    classification = task_type == "classification"
    if groups is None:
        splitter = MultiTaskKFold(n_splits=cv, shuffle=True, random_state=random_state,
                                  classification=classification)
    else:  # the folds themselves, whose errors name a wide task by its column
        groups = check_groups(groups, target.n_samples)

        def group_folds(n_splits):
            return MultiTaskGroupKFold(n_splits=n_splits, shuffle=True,
                                       random_state=random_state,
                                       classification=classification)

        splitter = list(group_folds(cv)._split(X, y, task_ids, tasks=target.tasks,
                                               groups=groups))
        estimators = _inner_group_folds(estimators, group_folds, X, y, task_ids, groups,
                                        splitter, target)
    try:
        _, n_observed, _, n_splits, runs = _cross_validate_against_reference(
            estimators, X, y, reference=estimators[reference], cv=splitter,
            scoring=result.metric, n_jobs=n_jobs, task_ids=task_ids, fit_groups=groups,
            progress=progress)
    except _ValidationSplitError as exc:
        raise _validation_error(exc, estimators, reference, cv) from exc
    except ValueError as exc:
        translated = _task_error(exc, target, classification)
        if translated is None:
            raise
        raise translated from exc
    keep = slice(None) if keep is None else keep
    result.n_splits = n_splits
    for name, run in runs.items():
        values = {key: np.asarray(run[key])[keep] for key in FIELDS}
        values["n_observed"] = n_observed[keep]
        result.per_task[name] = values
        result.summary.append({
            "model": name,
            "mean_score": float(np.nanmean(values["score"])) if np.any(
                ~np.isnan(values["score"])) else np.nan,
            "wins": int(np.sum(values["gain"] > 0)),
            "losses": int(np.sum(values["gain"] < 0)),
            "negative_transfer": int(values["negative_transfer"].sum()),
            "fit_time": run["fit_time"],
        })
    return result


def _inner_group_folds(estimators, group_folds, X, y, task_ids, groups, folds, target):
    """The models whose own search has an int ``cv`` (the linear ``*CV`` models' inner folds)
    with ``group_folds(cv)`` instead, the comparison's splitter with that many folds, so that
    their inner folds keep the groups together as the comparison's folds do (the engine gives
    their ``fit`` the groups).

    Each training fold's inner split is made once here, so that one that cannot keep every
    task in training is an error naming the fold and the task's column, before any fit.
    """
    changed, inner = {}, {}  # inner: n_splits -> the models with that many inner folds
    for name, estimator in estimators.items():
        params = {key: group_folds(value) for key, value in estimator.get_params(deep=True).items()
                  if (key == "cv" or key.endswith("__cv")) and isinstance(value, Integral)}
        for splitter in params.values():
            inner.setdefault(splitter.n_splits, []).append(name)
        changed[name] = clone(estimator).set_params(**params) if params else estimator
    for n_splits, names in sorted(inner.items()):
        splitter = group_folds(n_splits)
        for k, (train, _) in enumerate(folds):
            try:
                list(splitter._split(X[train], y[train],
                                     None if task_ids is None else task_ids[train],
                                     tasks=target.tasks, groups=groups[train]))
            except ValueError as exc:
                raise ValueError(
                    f"The {n_splits} inner folds by the same groups (where "
                    f"{', '.join(names)} tune their parameters), in training fold {k}: {exc} "
                    f"Or leave {', '.join(names)} out (--models).") from exc
    return changed


def _prepare(X, y, task_ids, task_type, scoring):
    """Float X, the target as an array (wide tasks named by position) and its parsed form."""
    if scoring is not None and scoring not in SCORINGS[task_type]:
        raise ValueError(f"scoring={scoring!r} does not score {task_type}; choose from "
                         f"{list(SCORINGS[task_type])}.")
    target = check_multitask_target(y, task_ids, y_numeric=task_type == "regression")
    # task names, if y is a DataFrame, are kept in target.tasks
    return np.asarray(X, dtype=np.float64), np.asarray(y), target


def run_comparison(X, y, *, task_ids=None, groups=None, task_type, models, cv,
                   random_state=0, device="cpu", scoring=None, n_jobs=None, progress=None):
    """Cross-validate registered models with shared folds and compare them per task.

    All models run in one call of the engine of
    :func:`~skmtl.model_selection.transfer_report`, with the registered ``stl`` model as the
    reference of every model (fitted once per fold): ``transfer_report(model, X, y,
    reference=stl, cv=MultiTaskKFold(cv, shuffle=True, random_state=random_state,
    classification=task_type == "classification"), scoring=result.metric)`` gives the same
    per-task fields (with ``groups``: ``cv=MultiTaskGroupKFold(...)`` with the same arguments,
    ``groups=groups``). The task type is given to the splitter, not guessed from the
    targets: whole-number regression targets are not stratified as classes.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Features.
    y : ndarray of shape (n_samples,) or (n_samples, n_tasks)
        Wide targets with NaN for missing labels, or long targets with ``task_ids``.
    task_ids : ndarray of shape (n_samples,), default=None
        Task of each row for long data.
    groups : ndarray of shape (n_samples,), default=None
        Group of each row: the folds are then those of
        :class:`~skmtl.model_selection.MultiTaskGroupKFold` (shuffled), which keep every
        group whole, instead of MultiTaskKFold's. A ValueError names the tasks whose labels
        sit in too few groups to be in every training fold. The models with inner folds (an
        int ``cv`` parameter: the linear ``*CV`` models) get MultiTaskGroupKFold inner folds
        of as many splits, shuffled alike, and each training fold's groups in ``fit``.
    task_type : {"regression", "classification"}
        What the targets are; the score is minus the squared error or accuracy by default.
    models : list of str
        Registered model names; ``"stl"`` is always run first (the reference). A model whose
        ``applicable`` check fails is left out and listed in ``result.skipped``.
    cv : int
        Number of :class:`~skmtl.model_selection.MultiTaskKFold` folds (shuffled), or of
        MultiTaskGroupKFold folds with ``groups``.
    random_state : int, default=0
        Seed of the fold assignment.
    device : str, default="cpu"
        Passed to model factories (deep models train there).
    scoring : str, default=None
        The per-task score, one of ``SCORINGS[task_type]``: ``"r2"``,
        ``"neg_mean_squared_error"``, ``"neg_mean_absolute_error"`` (regression; None means
        ``"neg_mean_squared_error"``) or ``"accuracy"``, ``"roc_auc"``, ``"average_precision"``,
        ``"neg_log_loss"`` (classification; None means ``"accuracy"``).
    n_jobs : int, default=None
        Number of (model, fold) fits run in parallel by joblib; ``None`` means 1 unless in a
        :func:`joblib.parallel_config` context (any joblib backend, e.g. dask).
    progress : callable, default=None
        Called with no argument after every fitted fold.

    Returns
    -------
    result : ComparisonResult
    """
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"Unknown model(s) {unknown}; choose from {sorted(MODELS)}.")
    models = [REFERENCE] + [m for m in models if m != REFERENCE]
    X, y, target = _prepare(X, y, task_ids, task_type, scoring)
    result = ComparisonResult(tasks=target.tasks, task_type=task_type, scoring=scoring)
    estimators = {}
    for name in models:
        applicable = MODELS[name].applicable
        reason = None if applicable is None else applicable(task_type, target)
        if reason is not None:
            result.skipped[name] = reason
        else:
            estimators[name] = MODELS[name].factory(task_type, device)
    return _run(estimators, X, y, task_ids=task_ids, groups=groups, task_type=task_type,
                reference=REFERENCE, cv=cv, random_state=random_state, n_jobs=n_jobs,
                progress=progress, result=result, target=target)


# The strategies of FocusedTaskRegressor / FocusedTaskClassifier; single_task is the reference.
FOCUS_STRATEGIES = ("single_task", "multi_task", "gradnorm", "lbtw", "finetune", "rmtl")


def _focus_position(focus, tasks):
    """Position of the task named ``focus`` (a string, as typed on the command line)."""
    names = [str(t.item() if isinstance(t, np.generic) else t) for t in tasks]
    if str(focus) not in names:
        shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
        raise ValueError(f"--focus {focus!r} is not a task of the data; tasks: {shown}.")
    return names.index(str(focus))


def run_focus_comparison(X, y, *, task_ids=None, groups=None, task_type, focus,
                         strategies=FOCUS_STRATEGIES, cv, random_state=0, device="cpu",
                         scoring=None, n_jobs=None, progress=None):
    """Cross-validate the focused-task strategies on one task, with shared folds.

    Every strategy is a :class:`~skmtl.deep.FocusedTaskRegressor` /
    :class:`~skmtl.deep.FocusedTaskClassifier` (after a
    :class:`~sklearn.preprocessing.StandardScaler`) trained on all tasks of each training
    fold and judged on the focus task's held-out labels; ``"single_task"``, run first, is the
    reference of the gains. As :func:`run_comparison`, one call of
    :func:`~skmtl.model_selection.transfer_report`'s engine (which scores a focused estimator
    on its focus task).

    Parameters
    ----------
    X, y, task_ids, groups, task_type, cv, random_state, device, scoring, n_jobs, progress
        As in :func:`run_comparison`.
    focus : str
        The focus task, matched against the task labels as strings.
    strategies : sequence of str, default=FOCUS_STRATEGIES
        Strategies to compare (``"single_task"`` is added if absent).

    Returns
    -------
    result : ComparisonResult
        One task (the focus task); one row of ``summary`` per strategy.
    """
    from skmtl.deep import FocusedTaskClassifier, FocusedTaskRegressor

    unknown = [s for s in strategies if s not in FOCUS_STRATEGIES]
    if unknown:
        raise ValueError(f"Unknown strategy(ies) {unknown}; choose from {list(FOCUS_STRATEGIES)}.")
    strategies = ["single_task"] + [s for s in strategies if s != "single_task"]
    X, y, target = _prepare(X, y, task_ids, task_type, scoring)
    f = _focus_position(focus, target.tasks)
    # the estimators see y as an array: wide tasks are then named by position
    focus_label = target.tasks[f] if target.layout == "long" else f
    if isinstance(focus_label, np.generic):
        focus_label = focus_label.item()
    estimator_class = (FocusedTaskClassifier if task_type == "classification"
                       else FocusedTaskRegressor)
    estimators = {strategy: _deep_pipeline(estimator_class, device, focus_task=focus_label,
                                           strategy=strategy)
                  for strategy in strategies}
    result = ComparisonResult(tasks=target.tasks[f:f + 1], task_type=task_type,
                              reference="single_task", scoring=scoring)
    return _run(estimators, X, y, task_ids=task_ids, groups=groups, task_type=task_type,
                reference="single_task", cv=cv, random_state=random_state, n_jobs=n_jobs,
                progress=progress, result=result, target=target, keep=slice(f, f + 1))
