"""Epoch time of the deep multi-task estimators on PCBA-shaped data, as ratios in one run.

Data: 20,000 rows, 1,024 binary features, 128 binary tasks with 90% missing labels (the shape of
the PCBA bioassay set); network: hard sharing, trunk (512, 256), linear heads; batch 256; Adam.

Measured, as the median epoch time over every epoch of several interleaved runs:

(a) ``MultiTaskClassifier(sharing="hard", weighting="equal")`` against a hand-written PyTorch
    loop over the same network and batch size (masked per-task mean BCE, summed; target <= 1.1x);
(b) ``weighting="gradnorm"`` against ``"equal"``: with its default
    ``GradNormWeighting(gradient_on="last_shared_layer")`` (the exact norms on the last shared
    layer's weight, per-sample factorisation; target <= 2x) and with ``"representation"``
    (target <= 1.5x); ``"uncertainty"``, ``"dwa"``, ``"lbtw"`` against ``"equal"`` (target
    <= 1.1x);
(c) ``FocusedTaskClassifier(strategy="rmtl")`` against ``strategy="multi_task"``, focus task
    0, same network, with ``rmtl_reward="per_task"`` (128 rewards from the gradients on the
    heads' weights; target <= 1.5x) and ``"policy"`` (the default: 128 candidate policies on
    the last shared layer's weight, GradNorm's exact machinery; target <= 2x).
(d) with ``--pcba``: the PCBA size, 440,000 rows of a sparse binary X (CSR, 1,024 features, 10%
    set), 128 tasks, 90% missing: the epoch time of hard + equal against the hand-written loop
    (which densifies each batch of the CSR X the same way), and the peak traced memory of one
    fit (one epoch) over the bytes of X.

(e) with ``--cases sharing``: the epoch time of every sharing strategy (``SHARING``) against
    ``"hard"`` on the same data (4,000 rows, 256 features, trunk / towers (128, 64), linear
    heads, batch 256), at 16 and at 128 tasks (``--sharing-tasks``); ``"relationship"`` and
    ``"adaptive"`` include their end-of-epoch steps, and each strategy is also timed with
    ``auxiliary="reconstruction"`` and ``"adversarial"`` (no target: the ratios document the
    cost of each architecture).

Run ``python benchmarks/deep.py`` (``--help`` for smaller settings). On a machine whose cores
are busy with other work, pass ``--threads 1``: spinning OpenMP workers then distort timings.
"""

import argparse
import statistics
import time
import tracemalloc

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from skmtl.deep import SHARING, FocusedTaskClassifier, MultiTaskClassifier, build_module
from skmtl.deep.weighting import GradNormWeighting

WEIGHTINGS = {
    "equal": "equal",
    "gradnorm": GradNormWeighting(),
    "gradnorm on representation": GradNormWeighting(gradient_on="representation"),
    "uncertainty": "uncertainty",
    "dwa": "dwa",
    "lbtw": "lbtw",
}
TARGETS = {"gradnorm": 2.0, "gradnorm on representation": 1.5, "uncertainty": 1.1, "dwa": 1.1,
           "lbtw": 1.1}
STRATEGIES = {
    "multi_task": dict(strategy="multi_task"),
    "rmtl per_task": dict(strategy="rmtl", rmtl_reward="per_task"),
    "rmtl policy": dict(strategy="rmtl", rmtl_reward="policy"),
}
# the policy reward reads the last shared layer's gradients, GradNorm's exact machinery (2x)
FOCUSED_TARGETS = {"rmtl per_task": 1.5, "rmtl policy": 2.0}


def make_data(n_samples, n_features, n_tasks, missing, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.uniform(size=(n_samples, n_features)) < 0.1).astype(np.float32)
    W = rng.normal(size=(n_features, n_tasks)).astype(np.float32)
    logits = X @ W
    Y = (logits > np.median(logits, axis=0)).astype(np.float64)
    Y[rng.uniform(size=Y.shape) < missing] = np.nan
    return X, Y


def make_sparse_data(n_samples, n_features, n_tasks, missing, seed=0, chunk=20_000):
    """``make_data``'s problem with X as a CSR matrix (float32), built a chunk of rows at a
    time: a dense 440,000 x 1,024 X would not fit in memory next to it."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n_features, n_tasks)).astype(np.float32)
    parts, logits = [], []
    for start in range(0, n_samples, chunk):
        bits = rng.uniform(size=(min(chunk, n_samples - start), n_features)) < 0.1
        part = sp.csr_matrix(bits, dtype=np.float32)
        parts.append(part)
        logits.append(part @ W)
    X = sp.vstack(parts, format="csr")
    logits = np.concatenate(logits)
    Y = (logits > np.median(logits, axis=0)).astype(np.float64)
    Y[rng.uniform(size=Y.shape) < missing] = np.nan
    return X, Y


def _network(args):
    # the hand-written loop's training: Adam without weight decay, no dropout, no validation
    # split (the estimators' defaults add dropout, AdamW and early stopping's validation pass)
    return dict(hidden_layer_sizes=(512, 256), max_epochs=args.epochs,
                batch_size=args.batch_size, lr=1e-3, optimizer="adam", weight_decay=0.0,
                dropout=0.0, early_stopping=False, random_state=0)


def estimator_epochs(X, Y, weighting, args):
    est = MultiTaskClassifier(sharing="hard", weighting=weighting, **_network(args)).fit(X, Y)
    return list(est.net_.history[:, "dur"])


def focused_epochs(X, Y, params, args):
    est = FocusedTaskClassifier(focus_task=0, **params, **_network(args)).fit(X, Y)
    return list(est.net_.history[:, "dur"])


def hand_written_epochs(X, Y, args):
    """The reference: a plain PyTorch loop over the same network."""
    n, n_tasks = Y.shape
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = build_module("hard", X.shape[1], [1] * n_tasks, hidden_layer_sizes=(512, 256))
        optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
        sparse = sp.issparse(X)
        X_t = None if sparse else torch.from_numpy(X)
        mask_t = torch.from_numpy(~np.isnan(Y))
        Y_t = torch.from_numpy(np.nan_to_num(Y).astype(np.float32))
        durations = []
        for _ in range(args.epochs):
            start = time.perf_counter()
            order = torch.randperm(n)
            for begin in range(0, n, args.batch_size):
                rows = order[begin : begin + args.batch_size]
                Xb = torch.from_numpy(X[rows.numpy()].toarray()) if sparse else X_t[rows]
                logits = module.forward_padded(Xb)[:, :, 0].T  # (B, T)
                mask = mask_t[rows]
                element = F.binary_cross_entropy_with_logits(logits, Y_t[rows], reduction="none")
                counts = mask.sum(0)
                losses = torch.where(mask, element, 0.0).sum(0) / counts.clamp_min(1)
                loss = losses[counts > 0].sum()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                loss.item()
            durations.append(time.perf_counter() - start)
    return durations


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=20_000)
    parser.add_argument("--n-features", type=int, default=1_024)
    parser.add_argument("--n-tasks", type=int, default=128)
    parser.add_argument("--missing", type=float, default=0.9)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per setting")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--cases", choices=("all", "weightings", "focused", "sharing"),
                        default="all",
                        help="(a) and (b), (c), all of them, or (e) the sharing strategies")
    parser.add_argument("--sharing-tasks", type=int, nargs="+", default=[16, 128],
                        help="(e): the numbers of tasks")
    parser.add_argument("--pcba", action="store_true",
                        help="(d) only: PCBA-sized sparse X (--n-samples 440000 by default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.pcba:
        pcba(args)
        return
    if args.cases == "sharing":
        sharing_epochs(args)
        return

    X, Y = make_data(args.n_samples, args.n_features, args.n_tasks, args.missing)
    print(
        f"{args.n_samples} rows, {args.n_features} features, {args.n_tasks} tasks, "
        f"{args.missing:.0%} missing, batch {args.batch_size}, "
        f"{torch.get_num_threads()} thread(s), {args.repeats} x {args.epochs} epochs each"
    )
    weightings = args.cases in ("all", "weightings")
    focused = args.cases in ("all", "focused")
    names = (("hand-written", *WEIGHTINGS) if weightings else ())
    names += tuple(STRATEGIES) if focused else ()
    times = {name: [] for name in names}
    for _ in range(args.repeats):  # interleaved, so that load changes hit every setting
        if weightings:
            times["hand-written"] += hand_written_epochs(X, Y, args)
            for name, weighting in WEIGHTINGS.items():
                times[name] += estimator_epochs(X, Y, weighting, args)
        if focused:
            for name, params in STRATEGIES.items():
                times[name] += focused_epochs(X, Y, params, args)
    median = {name: statistics.median(values) for name, values in times.items()}

    print(f"\n{'setting':<34}{'epoch (s)':>10}{'ratio':>8}{'target':>8}")
    if weightings:
        print(f"{'hand-written PyTorch loop':<34}{median['hand-written']:>10.3f}")
        ratio = median["equal"] / median["hand-written"]
        print(f"{'hard + equal':<34}{median['equal']:>10.3f}{ratio:>8.2f}{'1.10':>8}"
              "  vs hand-written")
        for weighting, target in TARGETS.items():
            ratio = median[weighting] / median["equal"]
            print(f"{'hard + ' + weighting:<34}{median[weighting]:>10.3f}{ratio:>8.2f}"
                  f"{target:>8.2f}  vs equal")
    if focused:
        print(f"{'focused multi_task':<34}{median['multi_task']:>10.3f}")
        for strategy, target in FOCUSED_TARGETS.items():
            ratio = median[strategy] / median["multi_task"]
            print(f"{'focused ' + strategy:<34}{median[strategy]:>10.3f}{ratio:>8.2f}"
                  f"{target:>8.2f}  vs multi_task")


def sharing_epochs(args):
    """(e): every sharing strategy's median epoch time over "hard"'s, at each task count."""
    network = dict(hidden_layer_sizes=(128, 64), max_epochs=args.epochs, batch_size=256,
                   lr=1e-3, optimizer="adam", weight_decay=0.0, dropout=0.0,
                   early_stopping=False, random_state=0)
    settings = [(sharing, None) for sharing in SHARING] + [
        (sharing, auxiliary) for sharing in ("hard", "independent")
        for auxiliary in ("reconstruction", "adversarial")
    ]
    for n_tasks in args.sharing_tasks:
        X, Y = make_data(4_000, 256, n_tasks, args.missing)
        times = {setting: [] for setting in settings}
        for _ in range(args.repeats):  # interleaved
            for sharing, auxiliary in settings:
                model = MultiTaskClassifier(sharing=sharing, auxiliary=auxiliary, **network)
                times[(sharing, auxiliary)] += list(model.fit(X, Y).net_.history[:, "dur"])
        median = {setting: statistics.median(values) for setting, values in times.items()}
        reference = median[("hard", None)]
        print(f"\n{n_tasks} tasks: 4,000 rows, 256 features, {args.missing:.0%} missing, "
              f"{torch.get_num_threads()} thread(s), {args.repeats} x {args.epochs} epochs")
        print(f"{'sharing':<36}{'epoch (s)':>10}{'vs hard':>9}")
        for (sharing, auxiliary), value in median.items():
            name = sharing if auxiliary is None else f"{sharing} + {auxiliary}"
            print(f"{name:<36}{value:>10.3f}{value / reference:>9.2f}")


def pcba(args):
    """(d): a PCBA-sized fit on sparse X, epoch time against the hand loop and peak memory."""
    n_samples = 440_000 if args.n_samples == 20_000 else args.n_samples  # the default
    start = time.perf_counter()
    X, Y = make_sparse_data(n_samples, args.n_features, args.n_tasks, args.missing)
    size_X = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    print(f"PCBA-sized: {n_samples:,} rows, CSR X of {args.n_features:,} binary features "
          f"(10% set, {size_X / 2**20:.0f} MiB), {args.n_tasks} tasks, {args.missing:.0%} "
          f"missing (Y {Y.nbytes / 2**20:.0f} MiB), batch {args.batch_size}, "
          f"{torch.get_num_threads()} thread(s); data made in {time.perf_counter() - start:.0f} s")
    hand, equal = [], []
    for _ in range(args.repeats):  # interleaved
        hand += hand_written_epochs(X, Y, args)
        equal += estimator_epochs(X, Y, "equal", args)
    ratio = statistics.median(equal) / statistics.median(hand)
    one_epoch = argparse.Namespace(**{**vars(args), "epochs": 1})
    tracemalloc.start()
    estimator_epochs(X, Y, "equal", one_epoch)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"\n{'setting':<34}{'value':>10}{'target':>8}")
    print(f"{'hand-written loop, epoch (s)':<34}{statistics.median(hand):>10.2f}")
    print(f"{'hard + equal, epoch (s)':<34}{statistics.median(equal):>10.2f}")
    print(f"{'hard + equal / hand-written':<34}{ratio:>10.2f}{'1.10':>8}")
    print(f"{'peak traced memory / size of X':<34}{peak / size_X:>10.2f}{'(info)':>8}"
          f"  ({peak / 2**20:.0f} MiB, one fit of one epoch)")


if __name__ == "__main__":
    main()
