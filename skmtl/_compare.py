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
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmtl.baselines import IndependentTasks, PooledTasks
from skmtl.metrics import accuracy_score, r2_score
from skmtl.utils.validation import check_multitask_target

__all__ = ["MODELS", "ComparisonResult", "register_model", "run_comparison"]

REFERENCE = "stl"


@dataclass(frozen=True)
class ModelSpec:
    """A model of the comparison: ``factory(task_type, device)`` returns an estimator."""

    name: str
    factory: object
    description: str
    default: bool = True


MODELS = {}


def register_model(name, factory, description, *, default=True):
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
    """
    MODELS[name] = ModelSpec(name, factory, description, default)


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
    """

    tasks: np.ndarray
    task_type: str
    per_task: dict = field(default_factory=dict)
    summary: list = field(default_factory=list)

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
                    "gain_vs_stl": values["gain"][t],
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


def _out_of_fold(estimator, X, y, task_ids, folds, progress):
    """Out-of-fold predictions of every row (each row's own task for long data), fit time."""
    pred = np.empty(y.shape, dtype=np.float64 if y.dtype.kind in "biuf" else object)
    fit_time = 0.0
    # task_ids reaches a model inside a Pipeline only through metadata routing
    with config_context(enable_metadata_routing=True):
        for train, test in folds:
            fit_params = {} if task_ids is None else {"task_ids": task_ids[train]}
            predict_params = {} if task_ids is None else {"task_ids": task_ids[test]}
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
    if task_type == "regression":
        return (labels - predicted.astype(np.float64)) ** 2
    return (labels != predicted).astype(np.float64)


def _paired_gain(reference_losses, losses, tasks, n_tasks):
    """Per task, the mean loss decrease over its labels and its standard error (NaN below 2)."""
    diff = reference_losses - losses
    n_obs = np.bincount(tasks, minlength=n_tasks)
    gain = np.bincount(tasks, weights=diff, minlength=n_tasks) / n_obs
    squares = np.bincount(tasks, weights=(diff - gain[tasks]) ** 2, minlength=n_tasks)
    many = n_obs > 1
    gain_se = np.full(gain.shape, np.nan)
    gain_se[many] = np.sqrt(squares[many] / (n_obs[many] - 1) / n_obs[many])
    return gain, gain_se


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
        Registered model names; ``"stl"`` is always run first (the reference).
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
    from skmtl.model_selection import MultiTaskKFold

    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"Unknown model(s) {unknown}; choose from {sorted(MODELS)}.")
    models = [REFERENCE] + [m for m in models if m != REFERENCE]
    X = np.asarray(X, dtype=np.float64)
    classification = task_type == "classification"
    target = check_multitask_target(y, task_ids, y_numeric=not classification)
    y = np.asarray(y)  # task names, if y is a DataFrame, are kept in target.tasks
    splitter = MultiTaskKFold(n_splits=cv, shuffle=True, random_state=random_state,
                              classification=classification)
    folds = list(splitter.split(X, y, task_ids=task_ids))
    progress = progress or (lambda: None)
    result = ComparisonResult(tasks=target.tasks, task_type=task_type)
    metric = accuracy_score if classification else r2_score
    losses = {}
    obs_tasks = target.observations()[1]
    n_obs = np.bincount(obs_tasks, minlength=target.n_tasks)
    for name in models:
        estimator = MODELS[name].factory(task_type, device)
        pred, fit_time = _out_of_fold(estimator, X, y, task_ids, folds, progress)
        scores = metric(y, pred, task_ids=task_ids, multioutput="raw_values")
        losses[name] = _per_label_losses(target, pred, task_type)
        gain, gain_se = _paired_gain(losses[REFERENCE], losses[name], obs_tasks, target.n_tasks)
        negative = (gain < -np.nan_to_num(gain_se)) & (name != REFERENCE)
        result.per_task[name] = {"score": scores, "gain": gain, "gain_se": gain_se,
                                 "negative_transfer": negative, "n_observed": n_obs}
        reference_scores = result.per_task[REFERENCE]["score"]
        result.summary.append({
            "model": name,
            "mean_score": float(np.nanmean(scores)),
            "wins": int(np.sum(scores > reference_scores)),
            "losses": int(np.sum(scores < reference_scores)),
            "negative_transfer": int(negative.sum()),
            "fit_time": fit_time,
        })
    return result
