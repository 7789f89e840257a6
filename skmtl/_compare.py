"""The engine behind ``skmtl compare``: cross-validated, per-task comparison against STL.

Models are registered by name in ``MODELS`` (later features add theirs with
:func:`register_model`). Each model is cross-validated with the same
:class:`~skmtl.model_selection.MultiTaskKFold` folds; every observed label gets an
out-of-fold prediction, and per task:

- ``score``: R^2 (regression) or accuracy (classification) of the out-of-fold predictions of
  that task's observed labels;
- ``gain``: the mean per-label loss decrease against single-task learning (``stl``), squared
  error for regression and 0/1 loss for classification, with ``gain_se`` its standard error
  (paired over the task's labels);
- ``negative_transfer``: the gain is below zero by more than its standard error.
"""

import time
from dataclasses import dataclass, field

import numpy as np
from sklearn import config_context
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score as sk_accuracy_score
from sklearn.metrics import r2_score as sk_r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmtl.baselines import IndependentTasks, PooledTasks
from skmtl.metrics import accuracy_score, r2_score
from skmtl.model_selection._transfer import paired_gain
from skmtl.utils.validation import check_multitask_target, encode_target_classes

__all__ = ["MODELS", "ComparisonResult", "register_model", "run_comparison"]

REFERENCE = "stl"


@dataclass(frozen=True)
class ModelSpec:
    """A model of the comparison: ``factory(task_type, device)`` returns an estimator."""

    name: str
    factory: object
    description: str
    default: bool = True
    applicable: object = None


MODELS = {}


def register_model(name, factory, description, *, default=True, applicable=None):
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
    """
    MODELS[name] = ModelSpec(name, factory, description, default, applicable)


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
    import importlib.util

    missing = [m for m in ("torch", "skorch") if importlib.util.find_spec(m) is None]
    if missing:
        return (f"{' and '.join(missing)} not installed; install the deep extra: "
                "pip install torch==2.13.0 'skmtl[deep]'")
    return None


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

# Deep models: an MLP (one hidden layer of 64) trained for DEEP_EPOCHS epochs, on --device.
DEEP_EPOCHS = 30
register_model(
    "deep_hard",
    lambda task_type, device: _deep_model(task_type, device, "hard"),
    "deep MTL, hard sharing: MultiTaskRegressor / MultiTaskClassifier(sharing='hard'), "
    "a shared trunk and one head per task",
    applicable=_deep_installed,
)
register_model(
    "deep_independent",
    lambda task_type, device: _deep_model(task_type, device, "independent"),
    "deep single-task networks: MultiTask*(sharing='independent'), the deep reference",
    applicable=_deep_installed,
)
register_model(
    "deep_cross_stitch",
    lambda task_type, device: _deep_model(task_type, device, "cross_stitch"),
    "deep MTL, one tower per task mixed by cross-stitch units (not run by default)",
    default=False,
    applicable=_deep_installed,
)


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
        ``per_task[model]`` has ``score``, ``gain``, ``gain_se``, ``negative_transfer`` and
        ``n_observed`` arrays over tasks.
    summary : list of dict
        One row per model: ``model``, ``mean_score``, ``wins``, ``losses``,
        ``negative_transfer``, ``fit_time``.
    skipped : dict of str -> str
        Models left out because they cannot run on the data, with the reason.
    reference : str
        The model the gains are measured against (``"stl"``, or ``"single_task"`` for a
        focused comparison).
    """

    tasks: np.ndarray
    task_type: str
    per_task: dict = field(default_factory=dict)
    summary: list = field(default_factory=list)
    skipped: dict = field(default_factory=dict)
    reference: str = REFERENCE

    def to_rows(self):
        """Per-(model, task) rows for scores.csv."""
        rows = []
        for model, values in self.per_task.items():
            for t, task in enumerate(self.tasks):
                rows.append({
                    "model": model,
                    "task": task.item() if hasattr(task, "item") else task,
                    "score": values["score"][t],
                    "n_observed": int(values["n_observed"][t]),
                    f"gain_vs_{self.reference}": values["gain"][t],
                    "gain_se": values["gain_se"][t],
                    "negative_transfer": bool(values["negative_transfer"][t]),
                })
        return rows

    def format_table(self):
        """The summary as an aligned text table."""
        metric = "R^2" if self.task_type == "regression" else "accuracy"
        header = ["model", f"mean {metric}", "wins", "losses", "neg. transfer", "fit time (s)"]
        lines = [[r["model"], f"{r['mean_score']:.4f}", str(r["wins"]), str(r["losses"]),
                  str(r["negative_transfer"]), f"{r['fit_time']:.2f}"] for r in self.summary]
        widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]

        def fmt(row):
            return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(row, widths)))

        rule = "-" * len(fmt(header))
        return "\n".join([fmt(header), rule, *[fmt(row) for row in lines]])


def _out_of_fold(estimator, X, y, task_ids, folds, progress, *, focus=False):
    """Out-of-fold predictions of every row (each row's own task for long data), fit time.

    ``focus=True``: a focused estimator, whose ``predict(X)`` gives its focus task for every
    row (1-D) and takes no ``task_ids``.
    """
    shape = y.shape[:1] if focus else y.shape
    pred = np.empty(shape, dtype=np.float64 if y.dtype.kind in "biuf" else object)
    fit_time = 0.0
    # task_ids reaches a model inside a Pipeline only through metadata routing
    with config_context(enable_metadata_routing=True):
        for train, test in folds:
            fit_params = {} if task_ids is None else {"task_ids": task_ids[train]}
            predict_params = {} if task_ids is None or focus else {"task_ids": task_ids[test]}
            model = clone(estimator)
            start = time.perf_counter()
            model.fit(X[train], y[train], **fit_params)
            fit_time += time.perf_counter() - start
            pred[test] = model.predict(X[test], **predict_params)
            progress()
    return pred, fit_time


def _per_label_losses(target, pred, task_type):
    """Loss of each observed label (squared error or 0/1), in ``target.observations()`` order."""
    rows, tasks, labels = target.observations()
    predicted = pred[rows] if target.layout == "long" else pred.reshape(
        target.n_samples, target.n_tasks)[rows, tasks]
    return _label_losses(labels, predicted, task_type)


def _label_losses(labels, predicted, task_type):
    """Squared error (regression) or 0/1 loss (classification) of each label."""
    if task_type == "regression":
        return (labels - predicted.astype(np.float64)) ** 2
    return (labels != predicted).astype(np.float64)


def _folds(X, y, task_ids, classification, cv, random_state):
    """The comparison's shared folds: a shuffled :class:`MultiTaskKFold`."""
    from skmtl.model_selection import MultiTaskKFold

    splitter = MultiTaskKFold(n_splits=cv, shuffle=True, random_state=random_state,
                              classification=classification)
    return list(splitter.split(X, y, task_ids=task_ids))


def run_comparison(X, y, *, task_ids=None, task_type, models, cv, random_state=0,
                   device="cpu", progress=None):
    """Cross-validate registered models with shared folds and compare them per task.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Features.
    y : ndarray of shape (n_samples,) or (n_samples, n_tasks)
        Wide targets with NaN for missing labels, or long targets with ``task_ids``.
    task_ids : ndarray of shape (n_samples,), default=None
        Task of each row for long data.
    task_type : {"regression", "classification"}
        What the targets are.
    models : list of str
        Registered model names; ``"stl"`` is always run first (the reference). A model whose
        ``applicable`` check fails is left out and listed in ``result.skipped``.
    cv : int
        Number of :class:`~skmtl.model_selection.MultiTaskKFold` folds.
    random_state : int, default=0
        Seed of the fold assignment.
    device : str, default="cpu"
        Passed to model factories (deep models train there).
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
    X = np.asarray(X, dtype=np.float64)
    classification = task_type == "classification"
    target = check_multitask_target(y, task_ids, y_numeric=not classification)
    y = np.asarray(y)  # task names, if y is a DataFrame, are kept in target.tasks
    folds = _folds(X, y, task_ids, classification, cv, random_state)
    progress = progress or (lambda: None)
    result = ComparisonResult(tasks=target.tasks, task_type=task_type)
    metric = accuracy_score if classification else r2_score
    losses = {}
    obs_tasks = target.observations()[1]
    n_obs = np.bincount(obs_tasks, minlength=target.n_tasks)
    for name in models:
        applicable = MODELS[name].applicable
        reason = None if applicable is None else applicable(task_type, target)
        if reason is not None:
            result.skipped[name] = reason
            continue
        estimator = MODELS[name].factory(task_type, device)
        pred, fit_time = _out_of_fold(estimator, X, y, task_ids, folds, progress)
        scores = metric(y, pred, task_ids=task_ids, multioutput="raw_values")
        losses[name] = _per_label_losses(target, pred, task_type)
        _record(result, name, scores, losses, obs_tasks, n_obs, fit_time)
    return result


def _record(result, name, scores, losses, obs_tasks, n_obs, fit_time):
    """Add model ``name``'s per-task scores and its gain over ``result.reference``."""
    reference = result.reference
    gain, gain_se = paired_gain(losses[reference], losses[name], obs_tasks, len(n_obs))
    negative = (gain < -np.nan_to_num(gain_se)) & (name != reference)
    result.per_task[name] = {"score": scores, "gain": gain, "gain_se": gain_se,
                             "negative_transfer": negative, "n_observed": n_obs}
    reference_scores = result.per_task[reference]["score"]
    result.summary.append({
        "model": name,
        "mean_score": float(np.nanmean(scores)),
        "wins": int(np.sum(scores > reference_scores)),
        "losses": int(np.sum(scores < reference_scores)),
        "negative_transfer": int(negative.sum()),
        "fit_time": fit_time,
    })


# The strategies of FocusedTaskRegressor / FocusedTaskClassifier; single_task is the reference.
FOCUS_STRATEGIES = ("single_task", "multi_task", "gradnorm", "lbtw", "finetune", "rmtl")


def _focus_position(focus, tasks):
    """Position of the task named ``focus`` (a string, as typed on the command line)."""
    names = [str(t.item() if isinstance(t, np.generic) else t) for t in tasks]
    if str(focus) not in names:
        shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
        raise ValueError(f"--focus {focus!r} is not a task of the data; tasks: {shown}.")
    return names.index(str(focus))


def run_focus_comparison(X, y, *, task_ids=None, task_type, focus, strategies=FOCUS_STRATEGIES,
                         cv, random_state=0, device="cpu", progress=None):
    """Cross-validate the focused-task strategies on one task, with shared folds.

    Every strategy is a :class:`~skmtl.deep.FocusedTaskRegressor` /
    :class:`~skmtl.deep.FocusedTaskClassifier` (after a
    :class:`~sklearn.preprocessing.StandardScaler`) trained on all tasks of each training
    fold and judged on the focus task's held-out labels; ``"single_task"``, run first, is the
    reference of the gains.

    Parameters
    ----------
    X, y, task_ids, task_type, cv, random_state, device, progress
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
    X = np.asarray(X, dtype=np.float64)
    classification = task_type == "classification"
    target = check_multitask_target(y, task_ids, y_numeric=not classification)
    f = _focus_position(focus, target.tasks)
    # the estimators see y as an array: wide tasks are then named by position
    focus_label = target.tasks[f] if target.layout == "long" else f
    y = np.asarray(y)
    folds = _folds(X, y, task_ids, classification, cv, random_state)
    rows, tasks, labels = target.observations()
    rows, labels = rows[tasks == f], labels[tasks == f]
    result = ComparisonResult(tasks=target.tasks[f:f + 1], task_type=task_type,
                              reference="single_task")
    estimator_class = FocusedTaskClassifier if classification else FocusedTaskRegressor
    metric = sk_accuracy_score if classification else sk_r2_score
    obs_tasks, n_obs = np.zeros(len(rows), dtype=np.intp), np.array([len(rows)])
    losses = {}
    if isinstance(focus_label, np.generic):
        focus_label = focus_label.item()
    for strategy in strategies:
        estimator = _deep_pipeline(estimator_class, device, focus_task=focus_label,
                                   strategy=strategy)
        pred, fit_time = _out_of_fold(estimator, X, y, task_ids, folds,
                                      progress or (lambda: None), focus=True)
        predicted = pred[rows]
        losses[strategy] = _label_losses(labels, predicted, task_type)
        scores = np.array([metric(labels, predicted)])
        _record(result, strategy, scores, losses, obs_tasks, n_obs, fit_time)
    return result
