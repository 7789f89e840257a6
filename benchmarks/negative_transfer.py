"""The negative-transfer study of Liu, Liang and Gitter, on pairs of MoleculeACE targets.

Does an auxiliary task help a focus task, or hurt it (negative transfer), and which training
strategy of :class:`~skmtl.deep.FocusedTaskRegressor` avoids the harm? The study takes the
MoleculeACE targets (``load_moleculeace``: 30 ChEMBL targets, pKi / pEC50, 95 % of the labels
missing) in pairs, a focus target and one auxiliary target, as the paper does with PCBA:

- **related pairs**: the ``--n-pairs`` unordered pairs of targets that share the most measured
  molecules (molecules with a label on both), ties broken by the targets' column order; pairs
  that share no molecule are never related. The focus is the target of the pair with fewer
  labelled molecules (the one that has the more to gain; ties: the first column).
- **random pairs**: ``--n-pairs`` ordered pairs (focus, auxiliary) drawn uniformly without
  replacement, with the seed ``--random-state``, from the ordered pairs of distinct targets
  whose unordered pair is not a related one.

Protocol, per pair and seed ``s`` (``--seeds`` seeds: ``random_state + 0, 1, ...``): the rows
are the molecules measured on either target of the pair; 20 % of the focus target's labelled
molecules (a shuffled split with seed ``s``) are the test set, and they are left out of
training altogether, their auxiliary labels included (no test fingerprint is seen in
training); every other row trains. Each configuration of :data:`CONFIGS` is fitted with
``focus_task`` the focus target and ``random_state=s`` on the same training rows, and scored
by the R^2 of the focus target on the test molecules. The network (:data:`NETWORK`): one
hidden layer of 256 units, at most 50 epochs with the estimator's default early stopping
(10 % of the training rows held out for it), batches of 128, the other defaults.

Summary, per configuration and group of pairs (related, random): the *gain* of a case
``(pair, seed)`` is its R^2 minus single_task's R^2 on the same case (same split, same seed);
the table gives the mean gain over the cases, its standard error (standard deviation over
the cases / sqrt(number of cases), treating the cases as independent: the seeds of one pair
share its targets, so it is an approximation), and the share of cases with negative transfer,
a gain below ``-tolerance`` (``--tolerance``, default 0.01: R^2 one point below the reference,
below which a difference is counted as a loss rather than noise of a few molecules).

``python benchmarks/negative_transfer.py`` prints the table; ``--write`` also puts it into
``benchmarks/README.md`` and ``docs/user_guide/transfer.rst`` between the
``negative-transfer:start`` and ``negative-transfer:end`` markers; ``--csv FILE`` saves the
per-case scores; ``--plot FILE`` draws the gains (needs matplotlib). ``--quick`` runs four
small targets, one pair of each kind, one seed, two epochs (a check of the plumbing; its
numbers mean nothing). ``--help`` lists the options.
"""

import argparse
import datetime
import logging
import os
import platform
import sys
import time
import warnings

import numpy as np
from joblib import Parallel, delayed

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # real_data.py, beside this file, also when imported from elsewhere
try:
    from real_data import _escape, _render, write_between_markers
finally:
    sys.path.remove(HERE)

ROOT = os.path.dirname(HERE)
README = os.path.join(ROOT, "benchmarks", "README.md")
DOCS_PAGE = os.path.join(ROOT, "docs", "user_guide", "transfer.rst")
MARKERS = {
    "md": ("<!-- negative-transfer:start -->", "<!-- negative-transfer:end -->"),
    "rst": (".. negative-transfer:start", ".. negative-transfer:end"),
}

REFERENCE = "single_task"
# name -> parameters of FocusedTaskRegressor; a configuration whose parameters the installed
# estimator does not have is skipped, with a note (see available_configs)
CONFIGS = {
    "single_task": dict(strategy="single_task"),
    "multi_task": dict(strategy="multi_task"),
    "gradnorm": dict(strategy="gradnorm"),
    "lbtw": dict(strategy="lbtw"),
    "finetune": dict(strategy="finetune", finetune_pretrain="auxiliary"),
    "rmtl_per_task": dict(strategy="rmtl", rmtl_reward="per_task"),
    "rmtl_policy": dict(strategy="rmtl", rmtl_reward="policy"),
}
NETWORK = dict(hidden_layer_sizes=(256,), max_epochs=50, batch_size=128)
N_PAIRS = 5  # of each kind
N_SEEDS = 3
N_BITS = 2048
TEST_SIZE = 0.2
TOLERANCE = 0.01
GROUPS = ("related", "random")
# --quick: four small targets (two of them share 544 molecules), 256 bits, a tiny network
QUICK_TARGETS = ["CHEMBL2835_Ki", "CHEMBL2971_Ki", "CHEMBL2047_EC50", "CHEMBL1871_Ki"]
QUICK = dict(n_pairs=1, seeds=1, max_epochs=2, n_bits=256, hidden=(32,))

log = logging.getLogger("negative_transfer")


# -- pairs ------------------------------------------------------------------------------------
def overlap_matrix(Y):
    """``O[i, j]``: the number of rows labelled on both task ``i`` and task ``j`` (NaN: none).

    The diagonal holds each task's number of labels.
    """
    measured = (~np.isnan(np.asarray(Y, dtype=np.float64))).astype(np.int64)
    return measured.T @ measured


def related_pairs(Y, n_pairs):
    """The ``n_pairs`` unordered pairs of tasks that share the most labelled rows.

    Pairs are ranked by their overlap (:func:`overlap_matrix`), largest first, ties by the
    column indices ``(i, j)``, ``i < j``; pairs with no shared row are left out, so fewer than
    ``n_pairs`` may come back. Each pair is returned as ``(focus, auxiliary)``, the focus
    being the task with fewer labels (ties: the lower index).

    Returns
    -------
    pairs : list of (int, int)
    """
    overlap = overlap_matrix(Y)
    n_labels = np.diag(overlap)
    i, j = np.triu_indices(overlap.shape[0], k=1)
    shared = overlap[i, j]
    order = np.lexsort((j, i, -shared))  # last key first: overlap descending, then (i, j)
    order = [k for k in order if shared[k] > 0][:n_pairs]
    return [(int(i[k]), int(j[k])) if n_labels[i[k]] <= n_labels[j[k]]
            else (int(j[k]), int(i[k])) for k in order]


def random_pairs(n_tasks, n_pairs, random_state, exclude=()):
    """``n_pairs`` ordered pairs ``(focus, auxiliary)`` of distinct tasks, drawn at random.

    Uniformly without replacement (``numpy.random.default_rng(random_state)``) among the
    ordered pairs whose unordered pair is not in ``exclude``.

    Returns
    -------
    pairs : list of (int, int)
    """
    excluded = {frozenset(p) for p in exclude}
    candidates = [(f, a) for f in range(n_tasks) for a in range(n_tasks)
                  if f != a and frozenset((f, a)) not in excluded]
    rng = np.random.default_rng(random_state)
    chosen = rng.choice(len(candidates), size=min(n_pairs, len(candidates)), replace=False)
    return [candidates[k] for k in chosen]


def split_focus(Y_pair, seed, test_size=TEST_SIZE):
    """Training and test rows of a pair: ``test_size`` of the focus (column 0) labels held out.

    The test rows are a shuffled share of the rows labelled on the focus task (seed
    ``seed``); every other row, labelled on the focus task, the auxiliary task or both,
    trains, so a test molecule is never seen in training.

    Returns
    -------
    train, test : ndarray of int
        Sorted row indices.
    """
    focus_rows = np.flatnonzero(~np.isnan(Y_pair[:, 0]))
    rng = np.random.default_rng(seed)
    n_test = max(1, int(round(test_size * focus_rows.shape[0])))
    test = np.sort(rng.permutation(focus_rows)[:n_test])
    train = np.setdiff1d(np.arange(Y_pair.shape[0]), test)
    return train, test


# -- configurations ---------------------------------------------------------------------------
def available_configs(configs=CONFIGS):
    """The configurations the installed estimator can run, and notes on the others.

    A configuration is run when every one of its parameters is a parameter of
    :class:`~skmtl.deep.FocusedTaskRegressor` (e.g. ``rmtl_reward`` and ``finetune_pretrain``
    exist only in recent versions).

    Returns
    -------
    runnable : dict
    skipped : dict
        name -> why it is not run.
    """
    from skmtl.deep import FocusedTaskRegressor

    known = set(FocusedTaskRegressor().get_params())
    runnable, skipped = {}, {}
    for name, params in configs.items():
        missing = sorted(set(params) - known)
        if missing:
            skipped[name] = (f"the installed FocusedTaskRegressor has no parameter "
                             f"{', '.join(missing)}")
        else:
            runnable[name] = params
    return runnable, skipped


def fit_score(X, Y, train, test, params, seed, limit_threads=True):
    """Fit one configuration on ``train``; R^2 of the focus (column 0) on ``test``.

    Returns
    -------
    r2, fit_time, n_epochs, error, warned : float, float, int, str or None, str or None
        ``warned``: the distinct warnings of the fit, first lines, joined by "; ".
    """
    from sklearn.metrics import r2_score

    from skmtl.deep import FocusedTaskRegressor

    if limit_threads:
        import torch

        torch.set_num_threads(1)
    estimator = FocusedTaskRegressor(focus_task=0, random_state=seed, **params)
    r2, fit_time, n_epochs, error = float("nan"), float("nan"), 0, None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            start = time.perf_counter()
            estimator.fit(X[train], Y[train])
            fit_time = time.perf_counter() - start
            r2 = float(r2_score(Y[test, 0], estimator.predict(X[test])))
            n_epochs = int(estimator.n_iter_)
        except Exception as exc:  # noqa: BLE001 - reported in the table, the run goes on
            error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    warned = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0][:150]}"
                     for w in caught})
    return r2, fit_time, n_epochs, error, "; ".join(warned) or None


# -- the study --------------------------------------------------------------------------------
def run_study(X, Y, task_names, pairs, configs, seeds, network, *, n_jobs=1):
    """Fit every configuration on every pair and seed: one row per case and configuration.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_tasks)
        NaN where not labelled.
    task_names : sequence of str
    pairs : dict
        group name -> list of ``(focus, auxiliary)`` column indices.
    configs : dict
        name -> estimator parameters.
    seeds : sequence of int
    network : dict
        Estimator parameters shared by every configuration.

    Returns
    -------
    results : DataFrame
        Columns ``group``, ``focus``, ``auxiliary``, ``overlap``, ``n_train``, ``n_test``,
        ``seed``, ``config``, ``r2``, ``fit_time``, ``n_epochs``, ``error``, ``warnings``.
    """
    import pandas as pd

    overlap = overlap_matrix(Y)
    cases = []
    for group, group_pairs in pairs.items():
        for focus, aux in group_pairs:
            rows = np.flatnonzero(~np.isnan(Y[:, [focus, aux]]).all(axis=1))
            for seed in seeds:
                cases.append((group, focus, aux, rows, seed))
    jobs, inputs = [], []
    for group, focus, aux, rows, seed in cases:
        Y_pair = Y[np.ix_(rows, [focus, aux])]
        train, test = split_focus(Y_pair, seed)
        for name, params in configs.items():
            jobs.append(dict(group=group, focus=str(task_names[focus]),
                             auxiliary=str(task_names[aux]), overlap=int(overlap[focus, aux]),
                             n_train=int(train.shape[0]), n_test=int(test.shape[0]),
                             seed=int(seed), config=name))
            inputs.append((rows, Y_pair, train, test, {**network, **params}, seed))
    outputs = Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(fit_score)(X[rows], Y_pair, train, test, params, seed)
        for rows, Y_pair, train, test, params, seed in inputs)
    for k, (job, (r2, fit_time, n_epochs, error, warned)) in enumerate(zip(jobs, outputs)):
        job.update(r2=r2, fit_time=fit_time, n_epochs=n_epochs, error=error, warnings=warned)
        log.info("%4d/%d  %-7s %s / %s, seed %d, %-13s R^2 %.3f  (%.1f s, %d epochs)%s",
                 k + 1, len(jobs), job["group"], job["focus"], job["auxiliary"], job["seed"],
                 job["config"], r2, fit_time, n_epochs, f"  {error}" if error else "")
    return pd.DataFrame(jobs)


def gains(results, reference=REFERENCE):
    """Each case's R^2 minus the reference's on the same (group, pair, seed).

    Returns
    -------
    gains : DataFrame
        The rows of ``results`` that are not the reference's, with a column ``gain`` (NaN
        where either fit failed).
    """
    keys = ["group", "focus", "auxiliary", "seed"]
    ref = results.loc[results["config"] == reference, keys + ["r2"]]
    out = results[results["config"] != reference].merge(
        ref.rename(columns={"r2": "reference_r2"}), on=keys, how="left", validate="m:1")
    out["gain"] = out["r2"] - out["reference_r2"]
    return out


def summarize(results, tolerance=TOLERANCE, reference=REFERENCE):
    """Per configuration and group: mean R^2, mean gain, its standard error, negative transfer.

    For the cases (pair, seed) where both the configuration and the reference were fitted:
    ``gain`` is the mean of the paired differences ``r2 - r2_reference``, ``gain_se`` their
    standard deviation (``ddof=1``) over the square root of their number (NaN for a single
    case), ``n_negative`` the number of cases with ``r2 - r2_reference < -tolerance`` and
    ``share_negative`` that number over ``n_cases``. The reference's rows have its mean R^2
    and NaN elsewhere.

    Returns
    -------
    summary : DataFrame
        Columns ``config``, ``group``, ``n_cases``, ``r2``, ``gain``, ``gain_se``,
        ``n_negative``, ``share_negative``, in the order of the configurations and groups
        of ``results``.
    """
    import pandas as pd

    paired = gains(results, reference)
    rows = []
    for config in results["config"].unique():
        for group in results["group"].unique():
            if config == reference:
                ref = results[(results["config"] == config) & (results["group"] == group)]
                r2 = ref["r2"].dropna()
                rows.append(dict(config=config, group=group, n_cases=int(r2.shape[0]),
                                 r2=float(r2.mean()), gain=np.nan, gain_se=np.nan,
                                 n_negative=np.nan, share_negative=np.nan))
                continue
            case = paired[(paired["config"] == config) & (paired["group"] == group)]
            case = case[np.isfinite(case["gain"])]
            diff = case["gain"].to_numpy()
            n = diff.shape[0]
            n_negative = int(np.sum(diff < -tolerance))
            rows.append(dict(
                config=config, group=group, n_cases=n, r2=float(case["r2"].mean()),
                gain=float(diff.mean()) if n else np.nan,
                gain_se=float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan,
                n_negative=n_negative, share_negative=n_negative / n if n else np.nan))
    return pd.DataFrame(rows)


def findings(summary, tolerance=TOLERANCE, reference=REFERENCE):
    """Which configurations avoid negative transfer and how often, from the summary.

    One sentence per group of pairs: the configurations never below the reference by more
    than ``tolerance`` (or, when there is none, those with the fewest such cases), the
    counts of the others, and the configuration with the largest mean gain.

    Returns
    -------
    sentences : list of str
    """
    sentences = []
    for group in summary["group"].unique():
        rows = summary[(summary["group"] == group) & (summary["config"] != reference)
                       & (summary["n_cases"] > 0)]
        if rows.empty:
            continue
        rows = rows.sort_values(["share_negative", "gain"], ascending=[True, False],
                                kind="stable")
        counts = {r.config: f"{r.config} {int(r.n_negative)} of {r.n_cases} "
                            f"({r.share_negative:.0%})" for r in rows.itertuples()}
        clean = list(rows.loc[rows["n_negative"] == 0, "config"])
        if clean:
            verb = "avoids" if len(clean) == 1 else "avoid"
            text = (f"{_join(clean)} {verb} negative transfer in every case (never more than "
                    f"{tolerance:g} below {reference})")
            others = [counts[c] for c in rows["config"] if c not in clean]
            if others:
                text += "; the others fall below it in " + _join(others)
        else:
            fewest = rows["share_negative"].min()
            best = list(rows.loc[rows["share_negative"] == fewest, "config"])
            text = (f"no strategy avoids negative transfer in every case (more than "
                    f"{tolerance:g} below {reference}); the fewest cases: "
                    + _join([counts[c] for c in best]))
            others = [counts[c] for c in rows["config"] if c not in best]
            if others:
                text += "; then " + _join(others)
        top = rows.loc[rows["gain"].idxmax()]
        se = "" if np.isnan(top["gain_se"]) else f" ± {top['gain_se']:.3f}"
        if top["gain"] > 0:
            text += f". The largest mean gain is {top['config']}'s ({top['gain']:+.3f}{se})"
        else:
            text += (f". No strategy gains on average; the smallest mean loss is "
                     f"{top['config']}'s ({top['gain']:+.3f}{se})")
        sentences.append(f"{group.capitalize()} pairs: {text}.")
    return sentences


def _join(items):
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# -- report -----------------------------------------------------------------------------------
def table(summary, style, reference=REFERENCE):
    """The summary as one table: a row per configuration, R^2 / gain / share per group."""
    groups = list(summary["group"].unique())
    header = ["configuration"]
    for group in groups:
        header += [f"{group}: R^2", f"{group}: gain ± SE", f"{group}: negative transfer"]
    body = []
    for config in summary["config"].unique():
        row = [config]
        for group in groups:
            r = summary[(summary["config"] == config) & (summary["group"] == group)].iloc[0]
            if r["n_cases"] == 0:
                row += ["failed", "-", "-"]
            elif config == reference:
                row += [f"{r['r2']:.3f}", "(reference)", "-"]
            else:
                se = "-" if np.isnan(r["gain_se"]) else f"{r['gain_se']:.3f}"
                row += [f"{r['r2']:.3f}", f"{r['gain']:+.3f} ± {se}",
                        f"{int(r['n_negative'])}/{int(r['n_cases'])} "
                        f"({r['share_negative']:.0%})"]
        body.append(row)
    caption = (f"Focus-task test R^2 (mean over the cases), gain over ``{reference}`` (paired "
               "mean ± standard error over pairs and seeds) and cases with negative transfer "
               "(gain below -tolerance).")
    return _render(caption, header, body, style)


def pair_lines(results, style):
    """One line per pair: its group, focus, auxiliary, shared molecules and rows."""
    code = "``" if style == "rst" else "`"
    first = results.drop_duplicates(["group", "focus", "auxiliary"])
    return [f"{r.group}: focus {code}{r.focus}{code}, auxiliary {code}{r.auxiliary}{code}, "
            f"{r.overlap:,} shared molecules, {r.n_train:,} training rows, {r.n_test:,} test "
            "molecules" for r in first.itertuples()]


def report(results, summary, *, style, command, elapsed, settings, tolerance, skipped,
           quick):
    """The generated block: run details, table, findings, pairs, notes."""
    import sklearn
    import torch

    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    code = "``" if style == "rst" else "`"
    lines = [f"Generated by {code}{command}{code} on {now} ({os.cpu_count()} cores, "
             f"{platform.python_implementation()} {platform.python_version()}, scikit-learn "
             f"{sklearn.__version__}, NumPy {np.__version__}, torch {torch.__version__}; "
             f"{elapsed / 60:.1f} minutes in all).", ""]
    if quick:
        lines += ["**--quick run: four small targets, 256 bits, 2 epochs; the numbers mean "
                  "nothing.**", ""]
    lines += [f"Settings: {settings}.", ""]
    lines += [table(summary, style), ""]
    facts = findings(summary, tolerance)
    if facts:
        lines += ["Which strategies avoid negative transfer, and how often (generated from the "
                  "numbers above):", ""]
        lines += ["- " + f for f in facts] + [""]
    lines += ["Pairs:", ""] + ["- " + p for p in pair_lines(results, style)] + [""]
    notes = [f"{name} not run: {why}" for name, why in skipped.items()]
    failed = results[results["error"].notna()]
    notes += [f"{r.config} failed on {r.focus} / {r.auxiliary}, seed {r.seed}: "
              f"{_escape(r.error)}" for r in failed.head(5).itertuples()]
    if failed.shape[0] > 5:
        notes.append(f"and {failed.shape[0] - 5} more failed fits")
    warned = results.dropna(subset="warnings").groupby("config", sort=False)["warnings"]
    for config, texts in warned:
        distinct = sorted({w for text in texts for w in text.split("; ")})
        notes.append(f"warnings of {config} ({texts.shape[0]} of its fits): "
                     + "; ".join(_escape(w) for w in distinct[:3])
                     + (f" (and {len(distinct) - 3} more)" if len(distinct) > 3 else ""))
    times = results.groupby("config", sort=False)["fit_time"].mean()
    notes.append("mean fit time (s): " + ", ".join(f"{c} {t:.1f}" for c, t in times.items()))
    lines += ["Notes:", ""] + ["- " + n for n in notes]
    return "\n".join(lines)


# -- command line -----------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-pairs", type=int, default=None,
                        help=f"pairs of each kind, related and random (default {N_PAIRS})")
    parser.add_argument("--seeds", type=int, default=None,
                        help=f"seeds per pair: splits and networks (default {N_SEEDS})")
    parser.add_argument("--max-epochs", type=int, default=None,
                        help=f"at most this many epochs (default {NETWORK['max_epochs']})")
    parser.add_argument("--n-bits", type=int, default=None,
                        help=f"fingerprint length (default {N_BITS})")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS),
                        metavar="NAME", help=f"configurations (default: all): "
                        f"{', '.join(CONFIGS)}; {REFERENCE} is always run")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE,
                        help=f"negative transfer: R^2 below {REFERENCE}'s by more than this "
                        f"(default {TOLERANCE})")
    parser.add_argument("--quick", action="store_true",
                        help="four small targets, one pair of each kind, one seed, 2 epochs, "
                        "256 bits: checks the plumbing only")
    parser.add_argument("--write", action="store_true",
                        help="write the table into benchmarks/README.md and the docs page")
    parser.add_argument("--csv", metavar="FILE", help="save the per-case scores to FILE")
    parser.add_argument("--plot", metavar="FILE", help="save a box plot of the gains to FILE")
    parser.add_argument("--n-jobs", type=int, default=1,
                        help="fits run in parallel (default 1)")
    parser.add_argument("--random-state", type=int, default=0,
                        help="seed of the random pairs and first seed of the splits")
    args = parser.parse_args(argv)
    quick = QUICK if args.quick else {}
    args.n_pairs = args.n_pairs or quick.get("n_pairs", N_PAIRS)
    args.seeds = args.seeds or quick.get("seeds", N_SEEDS)
    args.max_epochs = args.max_epochs or quick.get("max_epochs", NETWORK["max_epochs"])
    args.n_bits = args.n_bits or quick.get("n_bits", N_BITS)
    if min(args.n_pairs, args.seeds, args.max_epochs, args.n_bits) < 1:
        parser.error("--n-pairs, --seeds, --max-epochs and --n-bits must be at least 1")
    if REFERENCE not in args.configs:
        args.configs = [REFERENCE, *args.configs]
    return args


def plot_gains(results, path, reference=REFERENCE):
    """Box plot of the gains per configuration, related and random pairs side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paired = gains(results, reference)
    configs = list(paired["config"].unique())
    fig, ax = plt.subplots(figsize=(1.3 * len(configs) + 2, 4))
    for k, group in enumerate(GROUPS):
        data = [paired.loc[(paired["config"] == c) & (paired["group"] == group), "gain"]
                .dropna().to_numpy() for c in configs]
        positions = np.arange(len(configs)) + (k - 0.5) * 0.35
        box = ax.boxplot(data, positions=positions, widths=0.3, patch_artist=True)
        for patch in box["boxes"]:
            patch.set_facecolor(f"C{k}")
        ax.plot([], [], "s", color=f"C{k}", label=f"{group} pairs")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(np.arange(len(configs)), configs)
    ax.set_ylabel(f"test R^2 gain over {reference}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    """Run the study; returns ``(results, summary, markdown)``."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    command = "python benchmarks/negative_transfer.py" + (
        " " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    from skmtl.datasets import load_moleculeace

    start = time.perf_counter()
    configs, skipped = available_configs({c: CONFIGS[c] for c in args.configs})
    for name, why in skipped.items():
        log.info("note: %s skipped: %s", name, why)
    targets = QUICK_TARGETS if args.quick else None
    mace = load_moleculeace(targets=targets, n_bits=args.n_bits)
    X, Y, names = mace.data, mace.target, list(mace.task_names)
    related = related_pairs(Y, args.n_pairs)
    pairs = {"related": related,
             "random": random_pairs(Y.shape[1], args.n_pairs, args.random_state,
                                    exclude=related)}
    network = dict(NETWORK, max_epochs=args.max_epochs)
    if args.quick:
        network["hidden_layer_sizes"] = QUICK["hidden"]
    seeds = [args.random_state + k for k in range(args.seeds)]
    n_fits = sum(map(len, pairs.values())) * len(seeds) * len(configs)
    log.info("%d targets, %d bits; %d related and %d random pairs, %d seeds, %d "
             "configurations: %d fits", Y.shape[1], X.shape[1], len(pairs["related"]),
             len(pairs["random"]), len(seeds), len(configs), n_fits)
    results = run_study(X, Y, names, pairs, configs, seeds, network, n_jobs=args.n_jobs)
    summary = summarize(results, args.tolerance)
    elapsed = time.perf_counter() - start
    settings = (f"{args.n_pairs} related and {args.n_pairs} random pairs (random-pair seed "
                f"{args.random_state}), seeds {', '.join(map(str, seeds))}, "
                f"{X.shape[1]}-bit fingerprints, hidden layers "
                f"{network['hidden_layer_sizes']}, at most {network['max_epochs']} epochs, "
                f"batch {network['batch_size']}, test share {TEST_SIZE:g} of the focus "
                f"molecules; tolerance {args.tolerance:g}")
    kwargs = dict(command=command, elapsed=elapsed, settings=settings,
                  tolerance=args.tolerance, skipped=skipped, quick=args.quick)
    markdown = report(results, summary, style="md", **kwargs)
    print()
    print(markdown)
    if args.csv:
        results.to_csv(args.csv, index=False)
    if args.plot:
        plot_gains(results, args.plot)
    if args.write:
        write_between_markers(README, markdown, "md", MARKERS)
        write_between_markers(DOCS_PAGE, report(results, summary, style="rst", **kwargs),
                              "rst", MARKERS)
        print(f"\nwritten into {README} and {DOCS_PAGE}")
    return results, summary, markdown


if __name__ == "__main__":
    main()
