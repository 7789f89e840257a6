"""The ``skmtl`` command (also ``python -m skmtl``).

``skmtl datasets`` lists the packaged data sets. ``skmtl compare`` cross-validates single-task,
pooled and multi-task models on one data set, prints a per-model table (mean score, per-task
wins and losses against single-task learning, negative-transfer count, fit time) and writes
``scores.csv`` (one row per model and task) and ``transfer.png`` (per-task gains, with the
``plot`` extra) to ``--out``. ``skmtl compare --focus TASK`` compares the focused-task
strategies (single_task, multi_task, gradnorm, lbtw, finetune, rmtl) on that one task instead.

The comparison is :func:`skmtl.model_selection.transfer_report`'s: the score of a task is its
mean test score over the folds (minus the mean squared error, or accuracy, unless
``--scoring`` says otherwise), and its gain the mean per-fold score
difference against the reference, in the same units.
"""

import argparse
import csv
import logging
import os
import sys

import numpy as np

from skmtl._compare import (
    FOCUS_STRATEGIES,
    MODELS,
    SCORINGS,
    run_comparison,
    run_focus_comparison,
)

__all__ = ["main"]

logger = logging.getLogger("skmtl")

DEFAULT_DATASET = "exam"


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="skmtl", description="Multi-task learning for the scikit-learn world.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("datasets", help="list the packaged data sets")
    compare = commands.add_parser(
        "compare",
        help="cross-validate single-task and multi-task models on one data set",
        description="Cross-validate single-task and multi-task models with shared folds and "
        "compare them per task against single-task learning (stl). Per task, a model's score is "
        "its mean test score over the folds: minus the mean squared error (neg_mean_squared_error) "
        "for regression, accuracy for classification, "
        "or the --scoring (the metric column of scores.csv). Its gain is score - "
        "reference_score, the mean per-fold score difference against stl, in the same units, "
        "with "
        "gain_se its standard error over the folds; negative transfer is gain < -gain_se; "
        "wins / losses count the tasks with a gain above / below 0. The definition is "
        "skmtl.model_selection.transfer_report's.",
    )
    source = compare.add_mutually_exclusive_group()
    source.add_argument("--dataset", help=f"packaged data set (default: {DEFAULT_DATASET}); "
                        "see `skmtl datasets`")
    source.add_argument("--csv", metavar="FILE", help="a CSV file with features and targets")
    compare.add_argument("--targets", metavar="COLS",
                         help="with --csv: comma-separated target columns (wide), or the one "
                         "target column of long data (with --task-column)")
    compare.add_argument("--task-column", metavar="COL",
                         help="with --csv: the column naming each row's task (long data)")
    compare.add_argument("--task-type", choices=["auto", "regression", "classification"],
                         default="auto", help="with --csv: what the targets are (default: "
                         "auto, from the target values)")
    models_help = "; ".join(f"{m.name}: {m.description}" for m in MODELS.values())
    compare.add_argument("--models", nargs="+", metavar="MODEL", choices=sorted(MODELS),
                         help=f"models to compare (default: all). {models_help}")
    compare.add_argument("--focus", metavar="TASK",
                         help="compare the focused-task strategies (FocusedTaskRegressor / "
                         "FocusedTaskClassifier, deep) on this one task instead of the models")
    compare.add_argument("--strategies", nargs="+", metavar="STRATEGY",
                         choices=list(FOCUS_STRATEGIES),
                         help="with --focus: strategies to compare (default: all; single_task "
                         f"is the reference). Choices: {', '.join(FOCUS_STRATEGIES)}")
    compare.add_argument("--cv", type=int, default=5, help="number of folds (default: 5)")
    compare.add_argument("--out", default="skmtl-out", metavar="DIR",
                         help="folder for scores.csv and transfer.png (default: ./skmtl-out)")
    compare.add_argument("--device", default="cpu",
                         help="torch device for deep models (default: cpu)")
    compare.add_argument("--seed", type=int, default=0, help="seed of the folds (default: 0)")
    compare.add_argument("--scoring", choices=[*SCORINGS["regression"],
                                               *SCORINGS["classification"]],
                         help="the per-task score, and so the units of the gains (default: "
                         "neg_mean_squared_error for regression, accuracy for classification). "
                         "r2 is computed per test fold: biased low and undefined (left out) on "
                         "folds with few labels of a task")
    compare.add_argument("--n-jobs", type=int, default=1, metavar="N",
                         help="(model, fold) fits run in parallel by joblib (default: 1; -1: "
                         "all cores)")
    compare.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _list_datasets():
    from skmtl.datasets import list_datasets

    rows = list_datasets()
    header = ["name", "task type", "format", "samples", "features", "tasks", "description"]
    table = [[str(r["name"]), r["task_type"], r["format"], str(r["n_samples"]),
              str(r["n_features"]), str(r["n_tasks"]), r["description"]] for r in rows]
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header) - 1)]
    for row in [header, *table]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
    return 0


def _load_packaged(name):
    from skmtl.datasets import load_dataset

    bunch = load_dataset(name)
    task_ids = bunch.get("task_ids") if bunch.format == "long" else None
    return (np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target),
            None if task_ids is None else np.asarray(task_ids), bunch.task_type, name)


def _load_csv(path, targets, task_column, task_type):
    from skmtl.utils._optional import import_optional

    pd = import_optional("pandas", "datasets", "reading --csv files")
    if not targets:
        raise ValueError("--csv needs --targets (the target column or columns).")
    frame = pd.read_csv(path)
    target_columns = [c.strip() for c in targets.split(",") if c.strip()]
    needed = target_columns + ([task_column] if task_column else [])
    absent = [c for c in needed if c not in frame.columns]
    if absent:
        raise ValueError(f"Column(s) {absent} are not in {path}; it has {list(frame.columns)}.")
    if task_column and len(target_columns) != 1:
        raise ValueError("With --task-column (long data), --targets names exactly one column.")
    features = pd.get_dummies(frame.drop(columns=needed), drop_first=True, dtype=float)
    if features.shape[1] == 0:
        raise ValueError(f"{path} has no feature column besides the targets.")
    if features.isna().any().any():
        bad = list(features.columns[features.isna().any()])
        raise ValueError(f"Feature column(s) {bad[:5]} have missing values; impute them first.")
    y = frame[target_columns[0]] if task_column else frame[target_columns]
    task_ids = frame[task_column].to_numpy() if task_column else None
    if task_type == "auto":
        task_type = _guess_task_type(y.to_numpy(dtype=object))
    y = y.astype(np.float64 if task_type == "regression" else object)
    if task_column:
        y = y.to_numpy()
    return features.to_numpy(dtype=np.float64), y, task_ids, task_type, os.path.basename(path)


def _guess_task_type(y):
    from sklearn.utils.multiclass import type_of_target

    from skmtl.utils.validation import missing_mask

    observed = y[~missing_mask(y)]
    if not all(isinstance(v, (int, float, np.number)) for v in observed):
        return "classification"
    kind = type_of_target(observed.astype(np.float64))
    return "regression" if kind.startswith("continuous") else "classification"


def _progress(total, quiet):
    if quiet:
        return lambda: None, lambda: None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a core dependency
        done = [0]

        def step():
            done[0] += 1
            logger.info("fitted %d / %d folds", done[0], total)

        return step, lambda: None
    bar = tqdm(total=total, desc="cross-validating", unit="fit", file=sys.stderr)
    return lambda: bar.update(1), bar.close


def _write_scores(result, out):
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "scores.csv")
    rows = result.to_rows()
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _transfer_display(result):
    """Every model's per-task gain over stl, drawn on a new (pyplot-free) figure."""
    from matplotlib.figure import Figure

    from skmtl.plotting import StrategyComparisonDisplay

    models = [m for m in result.per_task if m != result.reference]
    fields = {f: [result.per_task[m][f] for m in models]
              for f in ("gain", "gain_se", "negative_transfer")}
    n_tasks = len(result.tasks)
    figure = Figure(figsize=(min(4 + 0.25 * n_tasks * len(models), 40), 4.5),
                    layout="constrained")
    display = StrategyComparisonDisplay(
        result.tasks, fields["gain"], models, gain_se=np.nan_to_num(fields["gain_se"]),
        negative_transfer=fields["negative_transfer"], scoring=result.metric)
    display.plot(ax=figure.add_subplot(),
                 xticks_rotation="vertical" if n_tasks > 10 else "horizontal")
    display.ax_.set_title(f"Per-task gain in {result.metric} over {result.reference}, "
                          f"mean over {result.n_splits} folds")
    return display


def _write_transfer_plot(result, out):
    """Save :func:`_transfer_display` as ``out/transfer.png`` and return the path, or return
    the reason it was left out (no matplotlib, or no model besides stl)."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        return "transfer.png left out: matplotlib is not installed (pip install 'skmtl[plot]')."
    if len(result.per_task) < 2:
        return f"transfer.png left out: no model besides {result.reference}."
    path = os.path.join(out, "transfer.png")
    _transfer_display(result).figure_.savefig(path, dpi=100)
    return path


def _drop_unsplittable_tasks(X, y, task_ids, min_labels=2):
    """Remove tasks with fewer than ``min_labels`` labels (cross-validation needs 2), loudly."""
    from skmtl.utils.validation import missing_mask

    if task_ids is not None:
        tasks, counts = np.unique(task_ids, return_counts=True)
        few = tasks[counts < min_labels]
        keep = ~np.isin(task_ids, few)
        X, y, task_ids = X[keep], y[keep], task_ids[keep]
    else:
        counts = (~missing_mask(np.asarray(y))).sum(axis=0)
        columns = list(getattr(y, "columns", range(np.shape(y)[1])))
        few = [c for c, n in zip(columns, counts) if n < min_labels]
        if few:
            y = y.drop(columns=few) if hasattr(y, "drop") else np.delete(y, few, axis=1)
    if len(few):
        shown = ", ".join(str(t) for t in list(few)[:10])
        print(f"Left out {len(few)} task(s) with fewer than {min_labels} labels, which "
              f"cross-validation cannot split: {shown}{' ...' if len(few) > 10 else ''}")
    return X, y, task_ids


def _report_undefined(result):
    """Say which tasks had folds without a defined score (left out of their means)."""
    undefined = result.undefined_tasks()
    if not undefined:
        return
    tasks = undefined.get(result.reference, next(iter(undefined.values())))
    shown = ", ".join(str(t) for t in tasks[:10]) + (" ..." if len(tasks) > 10 else "")
    print(f"{len(tasks)} task(s) have too few test labels in some folds for their "
          f"{result.metric_name} there ({shown}); those folds are left out of their means "
          "(n_folds in scores.csv).")


def _compare(args):
    if args.cv < 2:
        raise ValueError(f"--cv must be at least 2; got {args.cv}.")
    if args.n_jobs == 0:
        raise ValueError("--n-jobs must be a positive number of jobs, or negative (-1: all "
                         "cores); got 0.")
    if args.csv:
        X, y, task_ids, task_type, label = _load_csv(
            args.csv, args.targets, args.task_column, args.task_type)
    else:
        if args.targets or args.task_column:
            raise ValueError("--targets and --task-column go with --csv.")
        X, y, task_ids, task_type, label = _load_packaged(args.dataset or DEFAULT_DATASET)
    if args.focus is None and args.strategies:
        raise ValueError("--strategies goes with --focus.")
    if args.focus is not None and args.models:
        raise ValueError("--models does not go with --focus (it compares the focused-task "
                         "strategies); choose them with --strategies.")
    X, y, task_ids = _drop_unsplittable_tasks(X, y, task_ids)
    data = (f"Data set {label}: {X.shape[0]} rows, {X.shape[1]} features, {task_type}, "
            f"{'long' if task_ids is not None else 'wide'} format; {args.cv}-fold "
            "MultiTaskKFold;")
    common = dict(task_ids=task_ids, task_type=task_type, cv=args.cv, random_state=args.seed,
                  device=args.device, scoring=args.scoring, n_jobs=args.n_jobs)
    if args.focus is not None:
        strategies = args.strategies or list(FOCUS_STRATEGIES)
        strategies = ["single_task"] + [s for s in strategies if s != "single_task"]
        print(f"{data} focus task {args.focus}; strategies: {', '.join(strategies)}")
        step, close = _progress(len(strategies) * args.cv, args.quiet)
        try:
            result = run_focus_comparison(X, y, focus=args.focus, strategies=strategies,
                                          progress=step, **common)
        finally:
            close()
        print(f"Focus task {args.focus}: {result.per_task['single_task']['n_observed'][0]} "
              f"labels. Gains are in {result.metric_name}, against single_task (the focus "
              "task alone).")
    else:
        models = args.models or [name for name, spec in MODELS.items() if spec.default]
        models = ["stl"] + [m for m in models if m != "stl"]
        print(f"{data} models: {', '.join(models)}")
        step, close = _progress(len(models) * args.cv, args.quiet)
        try:
            result = run_comparison(X, y, models=models, progress=step, **common)
        finally:
            close()
        print(f"{len(result.tasks)} tasks. Wins / losses: tasks where a model's "
              f"cross-validated {result.metric_name} beats / trails single-task learning "
              "(stl).")
    print(result.format_table())
    _report_undefined(result)
    for name, reason in result.skipped.items():
        print(f"Left out {name}: {reason}.")
    print(f"Per-task scores written to {_write_scores(result, args.out)}")
    plot = _write_transfer_plot(result, args.out)
    print(f"Per-task gains over {result.reference} plotted in {plot}"
          if plot.endswith(".png") else plot)
    return 0


def main(argv=None):
    """Run the ``skmtl`` command.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    status : int
        0 on success, 2 on a usage or data error (the message is printed to stderr).
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "datasets":
            return _list_datasets()
        if args.command in (None, "compare"):
            if args.command is None:
                args = parser.parse_args(["compare"])
            return _compare(args)
    except (ValueError, ImportError, FileNotFoundError) as exc:
        print(f"skmtl: error: {exc}", file=sys.stderr)
        return 2
    return 0  # pragma: no cover
