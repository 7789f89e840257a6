"""How the defaults of the deep multi-task estimators were chosen, and the check that they hold.

Data (all packaged, no network):

* ``yeast``: :func:`skmtl.datasets.load_yeast`, 2,417 rows x 103 features, 14 binary labels
  (complete); classification, mean ROC-AUC over the tasks.
* ``mace_reg``: :func:`skmtl.datasets.load_moleculeace`, 35,633 molecules x 2,048 fingerprint
  bits, 30 targets, 95 % of the labels missing; regression on pK, mean R^2 over the tasks.
* ``mace_clf``: the same molecules, active (pK >= 7.0, i.e. 100 nM) or inactive; mean ROC-AUC.

Protocol. Rows are split by :class:`skmtl.model_selection.MultiTaskKFold` (5 folds, shuffled,
``random_state=0``; MoleculeACE's own ``is_test`` split is per target and leaks across
targets, so it is not used). ``--mode search`` evaluates a grid of settings on fold 0 only
(``--rows`` subsamples the training rows to save time); ``--mode confirm`` compares the
estimators' DEFAULT parameters with the per-task linear references on folds 1-4, which the
search never saw. Scores are the mean over tasks of the held-out R^2 (regression) or ROC-AUC
(classification), each task on its observed held-out labels.

References (regularisation chosen inside the training fold only):

* regression: per-task :class:`~sklearn.linear_model.RidgeCV` (alphas ``10^-1 .. 10^4``,
  efficient leave-one-out) through :class:`skmtl.IndependentTasks`;
* classification: per-task :class:`~sklearn.linear_model.LogisticRegressionCV` (``Cs`` =
  ``10^-3 .. 10^1``, 3-fold inner CV on the log loss) through :class:`skmtl.IndependentTasks`.

Run, e.g.::

    nice -n 10 python benchmarks/deep_defaults.py --data yeast --mode search
    nice -n 10 python benchmarks/deep_defaults.py --data mace_clf --mode search \
        --names linear,start,drop0.5,h512_drop0.5
    nice -n 10 python benchmarks/deep_defaults.py --data mace_reg --mode confirm
    python benchmarks/deep_defaults.py --report deep_defaults.jsonl

Each result is printed as one line and appended (JSON) to ``--out``; ``--report`` prints the
search table (fold 0) and the check of the defaults against the linear references per fold.
The search of the "Defaults" section of docs/user_guide/deep.rst ran before the defaults
changed, so its rows "start" appear there as the starting point, and its chosen row is
``h512_drop0.5_lr3e-4`` (= the new "defaults").
"""

import argparse
import json
import time
import warnings

import numpy as np
import torch
from sklearn.linear_model import LogisticRegressionCV, RidgeCV
from sklearn.metrics import r2_score, roc_auc_score

from skmtl import IndependentTasks
from skmtl.model_selection import MultiTaskKFold

# The search: the starting point, and settings changed from it one group at a time. "defaults"
# is whatever the estimators' defaults are (after the search: (512,), dropout 0.5, lr 3e-4).
START = dict(hidden_layer_sizes=(256,), dropout=0.2, lr=1e-3, weight_decay=1e-2,
             optimizer="adamw", batch_size=128, max_epochs=200, early_stopping=True,
             n_iter_no_change=10)
CHANGES = {
    "start": {},
    "lr3e-4": dict(lr=3e-4),
    "lr3e-3": dict(lr=3e-3),
    "wd0": dict(weight_decay=0.0),
    "wd1e-1": dict(weight_decay=1e-1),
    "adam_l2_1e-4": dict(optimizer="adam", weight_decay=1e-4),
    "drop0": dict(dropout=0.0),
    "drop0.5": dict(dropout=0.5),
    "h64": dict(hidden_layer_sizes=(64,)),
    "h256x128": dict(hidden_layer_sizes=(256, 128)),
    "h512": dict(hidden_layer_sizes=(512,)),
    "h512_drop0.35": dict(hidden_layer_sizes=(512,), dropout=0.35),
    "h512_drop0.5": dict(hidden_layer_sizes=(512,), dropout=0.5),
    "h1024_drop0.5": dict(hidden_layer_sizes=(1024,), dropout=0.5),
    "h512_drop0.5_lr3e-4": dict(hidden_layer_sizes=(512,), dropout=0.5, lr=3e-4),
    "bs64": dict(batch_size=64),
    "bs256": dict(batch_size=256),
    "patience5": dict(n_iter_no_change=5),
    "patience20": dict(n_iter_no_change=20),
    "no_early_stopping": dict(early_stopping=False),
}
SEARCH = {
    # the defaults before issue 8
    "old_defaults": dict(lr=1e-3, max_epochs=50, batch_size=64, early_stopping=False,
                         validation_fraction=0.0, weight_decay=0.0, dropout=0.0,
                         hidden_layer_sizes=(64,), optimizer="adam"),
    **{name: {**START, **changes} for name, changes in CHANGES.items()},
    "defaults": {},
}
DATA = ("yeast", "mace_reg", "mace_clf")


def load(name):
    """X (float32), Y (NaN = missing) and the kind of task."""
    from skmtl.datasets import load_moleculeace, load_yeast

    if name == "yeast":
        data = load_yeast()
        return data.data.astype(np.float32), data.target.astype(np.float64), "classification"
    data = load_moleculeace()
    X = np.asarray(data.data, dtype=np.float32)
    Y = np.asarray(data.target, dtype=np.float64)
    if name == "mace_reg":
        return X, Y, "regression"
    return X, np.where(np.isnan(Y), np.nan, (Y >= 7.0).astype(np.float64)), "classification"


def folds(Y, kind):
    cv = MultiTaskKFold(5, shuffle=True, random_state=0,
                        classification=kind == "classification")
    return list(cv.split(np.zeros((Y.shape[0], 1)), Y))


def mean_task_score(Y_test, model, X_test, kind):
    scores = []
    if kind == "regression":
        pred = model.predict(X_test)
        for t in range(Y_test.shape[1]):
            rows = ~np.isnan(Y_test[:, t])
            scores.append(r2_score(Y_test[rows, t], pred[rows, t]))
    else:
        proba = model.predict_proba(X_test)
        for t in range(Y_test.shape[1]):
            rows = ~np.isnan(Y_test[:, t])
            if len(np.unique(Y_test[rows, t])) == 2:
                scores.append(roc_auc_score(Y_test[rows, t], proba[t][rows, -1]))
    return float(np.mean(scores))


def make_model(name, kind, params):
    if name == "linear":
        if kind == "regression":
            return IndependentTasks(RidgeCV(alphas=np.logspace(-1, 4, 11)))
        return IndependentTasks(LogisticRegressionCV(Cs=np.logspace(-3, 1, 5), cv=3,
                                                     scoring="neg_log_loss", max_iter=2000))
    from skmtl.deep import MultiTaskClassifier, MultiTaskRegressor

    cls = MultiTaskRegressor if kind == "regression" else MultiTaskClassifier
    return cls(random_state=0, **params)


def run(args, name, params, fold, X, Y, kind, splits, rng):
    train, test = splits[fold]
    if args.rows and args.rows < train.shape[0]:
        train = np.sort(rng.choice(train, args.rows, replace=False))
    keep = ~np.all(np.isnan(Y[train]), axis=0)  # (never happens with MultiTaskKFold)
    model = make_model("linear" if name == "linear" else "deep", kind, params)
    start = time.perf_counter()
    model.fit(X[train], Y[train][:, keep])
    seconds = time.perf_counter() - start
    score = mean_task_score(Y[test][:, keep], model, X[test], kind)
    epochs = getattr(model, "n_iter_", None)
    record = dict(data=args.data, mode=args.mode, name=name, params=repr(params), fold=fold,
                  rows=int(train.shape[0]), score=score, seconds=round(seconds, 1),
                  epochs=epochs)
    print(json.dumps(record), flush=True)
    with open(args.out, "a") as handle:
        handle.write(json.dumps(record) + "\n")
    return score


def report(path):
    """Print the search table (fold 0) and the check on the other folds from a results file."""
    records = [json.loads(line) for line in open(path)]
    search = {}
    for r in records:
        if r["fold"] == 0 and r["mode"] == "search":
            epochs = f" ({r['epochs']})" if r["epochs"] else ""
            search.setdefault(r["name"], {})[r["data"]] = f"{r['score']:.3f}{epochs}"
    print(f"{'fold 0':>22s}  " + "  ".join(f"{d:>12s}" for d in DATA))
    for name, cells in search.items():
        print(f"{name:>22s}  " + "  ".join(f"{cells.get(d, '-'):>12s}" for d in DATA))
    print()
    check = {}
    for r in records:
        if r["mode"] == "confirm" or r["name"] == "linear":
            check.setdefault((r["data"], r["fold"]), {})[r["name"]] = r["score"]
    print(f"{'data':>10s} {'fold':>4s} {'defaults':>9s} {'linear':>9s} {'gain':>7s}")
    for data in DATA:
        gains = []
        for fold in range(5):
            cell = check.get((data, fold), {})
            if "defaults" in cell and "linear" in cell:
                gain = cell["defaults"] - cell["linear"]
                if fold:  # the mean is over the folds the search never saw
                    gains.append((cell["defaults"], cell["linear"], gain))
                seen = "*" if fold == 0 else " "  # fold 0: the search's fold
                print(f"{data:>10s} {fold:>3d}{seen} {cell['defaults']:9.4f} "
                      f"{cell['linear']:9.4f} {gain:+7.4f}")
        if gains:
            mean = np.mean(gains, axis=0)
            print(f"{data:>10s} {'mean':>4s} {mean[0]:9.4f} {mean[1]:9.4f} {mean[2]:+7.4f}"
                  "  (folds 1-4)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=DATA)
    parser.add_argument("--report", default=None,
                        help="print the tables from this results file, and stop")
    parser.add_argument("--mode", choices=["search", "confirm"], default="confirm")
    parser.add_argument("--names", default=None,
                        help="comma-separated settings of SEARCH (and 'linear') to run")
    parser.add_argument("--folds", default=None, help="comma-separated folds (default: by mode)")
    parser.add_argument("--rows", type=int, default=0, help="subsample the training rows")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="deep_defaults.jsonl")
    args = parser.parse_args()
    if args.report:
        report(args.report)
        return
    if args.data is None:
        parser.error("--data is required (or --report)")
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=FutureWarning)  # LogisticRegressionCV's
    X, Y, kind = load(args.data)
    splits = folds(Y, kind)
    if args.mode == "search":
        names = args.names.split(",") if args.names else ["linear", *SEARCH]
        chosen = [0] if args.folds is None else [int(f) for f in args.folds.split(",")]
    else:
        names = args.names.split(",") if args.names else ["linear", "defaults"]
        chosen = [1, 2, 3, 4] if args.folds is None else [int(f) for f in args.folds.split(",")]
    results = {}
    for name in names:
        params = {} if name == "linear" else SEARCH[name]
        for fold in chosen:
            rng = np.random.default_rng(fold)
            results.setdefault(name, []).append(
                run(args, name, params, fold, X, Y, kind, splits, rng))
    print(f"\n{args.data} ({args.mode}, folds {chosen}, rows {args.rows or 'all'})")
    for name, scores in results.items():
        print(f"{name:>20s}  {np.mean(scores):.4f}  (+- {np.std(scores):.4f})")


if __name__ == "__main__":
    main()
