"""Fit time and memory of the linear multi-task estimators, as ratios measured in one run.

(a) ``BlockSparseRegressor`` on per-task designs, School-shaped (139 tasks of 22-251 rows,
    27 features) and large (100 tasks x 500 rows x 2,000 features, 5% of the features in the
    support), ``alpha = alpha_max / 20``: time to a relative duality gap of 1e-6 against
    skglm's ``GroupLasso`` on the stacked block-diagonal design at the same gap (target: ours
    >= 5x faster). The two objectives are made identical: every task is centred (this
    eliminates the per-task intercepts exactly) and its rows scaled by ``sqrt(N / n_t)``, so
    skglm's ``1 / (2 N) ||y - X w||^2`` is our ``sum_t 1 / (2 n_t) ||y_t - X_t w_t - b_t||^2``;
    feature j of task t is column ``j * T + t``, in groups of T. skglm's ``tol`` is lowered
    until the gap of its solution, measured by our duality-gap formula, is <= 1e-6; both
    objective values are printed, and the part of skglm's time spent on its set-up (the
    Lipschitz constant of every group) is timed apart. Skipped, with the reason, when skglm
    cannot be imported (it is no dependency of skmtl: see benchmarks/README.md).
(b) ``BlockSparseRegressor`` on a sparse CSR X (20,000 x 10,000, 1% density, 20 tasks, 30%
    missing labels; the same with ``--quick``): peak traced memory of the fit over the size
    of X (target < 3: X is never densified).
(c) ``MeanClusteredRegressor`` on 5,000 tasks of 20 rows and 30 features (long format)
    against one scikit-learn ``Ridge`` fit on all the rows pooled (target <= 3x), and the
    number of Newton steps of ``MeanClusteredClassifier`` on 1,000 tasks (target < 10).
(d) The learned task relationships on 1,000 tasks of the data of (c) (200 with ``--quick``):
    fit time of ``ClusteredTasksRegressor(random_state=0)``, ``LowRankRegressor(alpha=0.1 *
    low_rank_alpha_max, tol=1e-6)``, ``TaskRelationRegressor(alpha=1.0)``,
    ``HierarchicalRegressor()`` and ``HierarchicalRegressor(random_slopes=None)`` over that
    of ``MeanClusteredRegressor()`` (target <= 10x; ``HierarchicalRegressor(covariance_type=
    "diag")`` for information), with ``n_iter_`` and, where exposed, the
    final stopping criterion: LowRank's and TaskRelation's ``tol`` and ``criterion_`` are the
    relative duality gap (TaskRelation at its default ``tol=1e-12``, with the iterations a
    second, untimed fit at ``tol=1e-6`` takes); ClusteredTasks has no ``tol`` (it stops when
    the partition is unchanged). A fit whose first run takes over 2 minutes is timed by that
    run alone.
    For information, one fit of ``HierarchicalRegressor()`` on the same X with half the
    slopes constant across tasks (variances at 0 at the optimum: the covariance on the
    boundary of the cone), with its iterations and any ConvergenceWarning.

Times are medians of ``--repeats`` runs, ours and the reference's interleaved so that load
changes hit both alike; the first (compiling) run of every solver is not timed. Run
``python benchmarks/linear.py`` (about half an hour on 2 cores, mostly skglm on the large
case; ``--quick`` for smaller sizes in about a minute, plus about a minute when skglm is
installed; ``--help`` for the rest). On a machine whose cores are busy with other work, pass
``--threads 1``: spinning BLAS workers then distort timings, skglm's most (its power method
makes thousands of small BLAS calls, each of which then waits for a descheduled thread).
"""

import argparse
import os
import statistics
import sys
import time
import tracemalloc
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge
from threadpoolctl import threadpool_limits

from skmtl.linear import (
    BlockSparseRegressor,
    ClusteredTasksRegressor,
    HierarchicalRegressor,
    LowRankRegressor,
    MeanClusteredClassifier,
    MeanClusteredRegressor,
    TaskRelationRegressor,
)
from skmtl.linear._low_rank import low_rank_alpha_max
from skmtl.linear._solver_bcd import block_sparse_alpha_max

GAP = 1e-6


# -- (a) per-task designs against skglm -------------------------------------------------------
def per_task_data(sizes, n_features, support_fraction, seed=0):
    """Task t: ``X_t`` (n_t, d), ``y_t = X_t w_t + b_t + noise``; W shares its support."""
    rng = np.random.default_rng(seed)
    n_tasks = len(sizes)
    support = rng.choice(n_features, max(1, round(support_fraction * n_features)),
                         replace=False)
    W = np.zeros((n_tasks, n_features))
    W[:, support] = rng.normal(size=(1, support.size)) + 0.5 * rng.normal(
        size=(n_tasks, support.size))
    Xs, ys = [], []
    for t, n_t in enumerate(sizes):
        X = rng.normal(size=(n_t, n_features)) + rng.normal(size=n_features)
        signal = X @ W[t]
        Xs.append(X)
        ys.append(signal + rng.normal() + 0.5 * signal.std() * rng.normal(size=n_t))
    return Xs, ys


def centred(Xs, ys):
    return [X - X.mean(axis=0) for X in Xs], [y - y.mean() for y in ys]


def correlations(Xc, R):
    """``G[t] = X_t^T R_t / n_t`` for centred designs, shape (T, d)."""
    return np.array([X.T @ r / len(r) for X, r in zip(Xc, R)])


def alpha_max(Xc, yc):
    return float(np.max(np.linalg.norm(correlations(Xc, yc), axis=0)))


def objective_and_gap(Xc, yc, W, alpha):
    """Our objective (intercepts at their optimum) and relative duality gap.

    The formula of skmtl's solver: residuals ``R_t`` (centred), dual point
    ``theta_t = R_t / (n_t s)`` with ``s = max(1, max_j ||G[:, j]||_2 / alpha)``.
    """
    R = [y - X @ w for X, y, w in zip(Xc, yc, W)]
    loss = sum(0.5 * r @ r / len(r) for r in R)
    primal = loss + alpha * float(np.sum(np.linalg.norm(W, axis=0)))
    s = max(1.0, float(np.max(np.linalg.norm(correlations(Xc, R), axis=0))) / alpha)
    dual = sum((r @ y / s - 0.5 * r @ r / s**2) / len(r) for r, y in zip(R, yc))
    return primal, max(primal - dual, 0.0) / primal


def block_diagonal(Xc, yc):
    """The stacked design (CSC) and target of skglm's problem; column j * T + t."""
    n_tasks, n_features = len(Xc), Xc[0].shape[1]
    sizes = np.array([len(y) for y in yc])
    n = int(sizes.sum())
    scale = np.repeat(np.sqrt(n / sizes), sizes)
    stacked = np.vstack(Xc) * scale[:, None]
    # column (j, t) holds task t's rows of feature j: column j of the stacked X, cut by task
    data = np.asfortranarray(stacked).ravel(order="F")
    del stacked
    indices = np.tile(np.arange(n, dtype=np.int32), n_features)
    indptr = np.zeros(n_features * n_tasks + 1, dtype=np.int32)
    np.cumsum(np.tile(sizes, n_features), out=indptr[1:])
    design = sp.csc_matrix((data, indices, indptr), shape=(n, n_features * n_tasks))
    return design, np.concatenate(yc) * scale


def import_skglm(path):
    if path:
        sys.path.insert(0, path)
    try:
        from skglm import GroupLasso
    except ImportError as exc:
        return None, f"skglm is not importable ({exc}); see benchmarks/README.md"
    return GroupLasso, None


def case_a(name, sizes, n_features, support_fraction, args, GroupLasso, rows):
    Xs, ys = per_task_data(sizes, n_features, support_fraction)
    n_tasks = len(sizes)
    X_long, y_long = np.vstack(Xs), np.concatenate(ys)
    task_ids = np.repeat(np.arange(n_tasks), sizes)
    Xc, yc = centred(Xs, ys)
    alpha = alpha_max(Xc, yc) / 20
    design, target = block_diagonal(Xc, yc)
    print(f"\n(a) {name}: {n_tasks} tasks, {min(sizes)}-{max(sizes)} rows each "
          f"({sum(sizes)} in all), {n_features} features; skglm design {design.shape[0]} x "
          f"{design.shape[1]}, {design.nnz} non-zeros")

    def ours():
        return BlockSparseRegressor(alpha=alpha, tol=GAP, max_iter=100_000).fit(
            X_long, y_long, task_ids=task_ids)

    def skglm_fit(tol):
        model = GroupLasso(groups=n_tasks, alpha=alpha, tol=tol, fit_intercept=False,
                           max_iter=1_000, max_epochs=100_000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(design, target)
        return model.coef_.reshape(n_features, n_tasks).T

    model = ours()  # compiles, and gives our solution
    our_value, our_gap = objective_and_gap(Xc, yc, model.coef_, alpha)
    # skglm stops on its KKT violation (absolute): the loosest tol, to a factor sqrt(10), whose
    # solution has our gap <= GAP (steps of 10 down, then one back up). These fits also
    # compile skglm's solver.
    tol = 1e-2 * alpha
    while True:
        sk_value, sk_gap = objective_and_gap(Xc, yc, skglm_fit(tol), alpha)
        if sk_gap <= GAP or tol < 1e-14 * alpha:
            break
        tol /= 10
    if tol < 1e-2 * alpha:
        value, gap = objective_and_gap(Xc, yc, skglm_fit(tol * np.sqrt(10)), alpha)
        if gap <= GAP:
            tol, sk_value, sk_gap = tol * np.sqrt(10), value, gap
    print(f"  ours : objective {our_value:.12g}, gap {our_gap:.2e} (dual_gap_ "
          f"{model.dual_gap_:.2e}), {model.n_iter_} epochs")
    print(f"  skglm: objective {sk_value:.12g}, gap {sk_gap:.2e} at tol = {tol:.3g}")
    fits = {"ours": ours, "skglm": lambda: skglm_fit(tol)}
    lipschitz = skglm_lipschitz(design, target, n_tasks)
    if lipschitz is not None:
        fits["skglm set-up"] = lipschitz
    times = interleaved(fits, args.repeats)
    rows.append((f"(a) {name}: skglm / ours", times["skglm"] / times["ours"], ">=", 5.0,
                 f"ours {times['ours']:.3f} s, skglm {times['skglm']:.3f} s"))
    if lipschitz is not None:
        solve = times["skglm"] - times["skglm set-up"]
        print(f"  skglm: {times['skglm set-up']:.3f} s of its {times['skglm']:.3f} s go to its "
              "Lipschitz constants (a power method per group, on sparse X)")
        rows.append((f"(a) {name}: skglm after its set-up / ours", solve / times["ours"],
                     "", None, f"skglm {solve:.3f} s after its Lipschitz constants"))


def skglm_lipschitz(design, target, n_tasks):
    """skglm's set-up, the Lipschitz constant of every group, as a function to time.

    Uses skglm's internal API (that of skglm 0.5); None when it moved.
    """
    try:
        from skglm.datafits import QuadraticGroup
        from skglm.utils.data import grp_converter
        from skglm.utils.jit_compilation import compiled_clone
    except ImportError:
        return None

    def lipschitz(X=design, y=target):
        indices, ptr = grp_converter(n_tasks, X.shape[1])
        compiled_clone(QuadraticGroup(ptr, indices)).get_lipschitz_sparse(
            X.data, X.indptr, X.indices, y)

    lipschitz(design[:, :2 * n_tasks])  # compiles
    return lipschitz


# -- (b) sparse X -----------------------------------------------------------------------------
def case_b(n_samples, n_features, args, rows):
    rng = np.random.default_rng(1)
    n_tasks = 20
    X = sp.random(n_samples, n_features, density=0.01, format="csr", random_state=rng,
                  data_rvs=rng.standard_normal)
    W = np.zeros((n_tasks, n_features))
    support = rng.choice(n_features, 50, replace=False)
    W[:, support] = rng.normal(size=(n_tasks, support.size))
    Y = np.asarray(X @ W.T) + 0.1 * rng.normal(size=(n_samples, n_tasks))
    Y[rng.uniform(size=Y.shape) < 0.3] = np.nan
    alpha = block_sparse_alpha_max(X, np.nan_to_num(Y), ~np.isnan(Y)) / 20
    size = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    print(f"\n(b) sparse CSR X {n_samples} x {n_features}, {X.nnz} non-zeros "
          f"({size / 2**20:.1f} MiB; dense {X.shape[0] * X.shape[1] * 8 / 2**20:.0f} MiB), "
          f"{n_tasks} tasks, 30% missing labels")

    def fit():
        return BlockSparseRegressor(alpha=alpha, tol=GAP, max_iter=100_000).fit(X, Y)

    fit()  # compile
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    model = fit()
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    print(f"  fit {elapsed:.2f} s (traced), gap {model.dual_gap_:.2e}, "
          f"{int(np.any(model.coef_ != 0, axis=0).sum())} features selected; peak "
          f"{peak / 2**20:.1f} MiB above the data")
    rows.append(("(b) sparse X: peak memory / size(X)", peak / size, "<", 3.0, ""))


# -- (c) mean-clustered against Ridge ---------------------------------------------------------
def long_data(rng, n_tasks, n_t=20, d=30):
    """Long data, ``n_t`` rows per task: ``y = x . w_t + b_t + noise``, the ``w_t`` around one
    mean. Returns ``(X, y, task_ids, W)``."""
    X = rng.normal(size=(n_tasks * n_t, d))
    task_ids = np.repeat(np.arange(n_tasks), n_t)
    W = rng.normal(size=d) + 0.3 * rng.normal(size=(n_tasks, d))
    offsets = rng.normal(size=n_tasks)
    y = (np.einsum("ij,ij->i", X, W[task_ids]) + offsets[task_ids]
         + rng.normal(size=n_tasks * n_t))
    return X, y, task_ids, W


def case_c(n_tasks, n_tasks_logistic, args, rows):
    rng = np.random.default_rng(2)
    n_t, d = 20, 30
    X, y, task_ids, W = long_data(rng, n_tasks, n_t, d)
    print(f"\n(c) {n_tasks} tasks x {n_t} rows x {d} features (long format); Ridge on all "
          f"{n_tasks * n_t} rows pooled")
    fits = {"Ridge": lambda: Ridge(alpha=1.0).fit(X, y)}
    for strength in (1.0, 5.0):
        fits[f"c={strength:g}"] = (lambda c: lambda: MeanClusteredRegressor(
            alpha=0.1, cluster_strength=c).fit(X, y, task_ids=task_ids))(strength)
    for fit in fits.values():
        fit()  # compile
    times = interleaved(fits, args.repeats)
    for strength in (1.0, 5.0):
        key = f"c={strength:g}"
        rows.append((f"(c) MeanClusteredRegressor {key}: / Ridge", times[key] / times["Ridge"],
                     "<=", 3.0, f"ours {times[key]:.3f} s, Ridge {times['Ridge']:.3f} s"))

    # the classifier: the shape of the test suite's 1,000-task check (5 features), and 30
    # features, where each task alone (20 rows) is linearly separable
    for n_features in (5, d):
        rows_logistic = n_tasks_logistic * n_t
        X_c, ids = X[:rows_logistic, :n_features], task_ids[:rows_logistic]
        margin = np.einsum("ij,ij->i", X_c, W[ids, :n_features]) + 0.5 * rng.normal(
            size=rows_logistic)
        labels = (margin > 0).astype(int)
        labels[::n_t], labels[1::n_t] = 0, 1  # both classes in every task
        for strength in (1.0, 10.0):
            start = time.perf_counter()
            model = MeanClusteredClassifier(alpha=1.0, cluster_strength=strength).fit(
                X_c, labels, task_ids=ids)
            elapsed = time.perf_counter() - start
            rows.append((f"(c) MeanClusteredClassifier d={n_features} c={strength:g}: "
                         "Newton steps", model.n_iter_, "<", 10,
                         f"{n_tasks_logistic} tasks x {n_t} rows, fit {elapsed:.3f} s"))


# -- (d) learned task relationships against mean-clustered -----------------------------------
SLOW_FIT = 120.0  # seconds: an estimator whose first fit takes longer is timed once


def case_d(n_tasks, args, rows):
    n_t, d = 20, 30
    X, y, task_ids, _ = long_data(np.random.default_rng(2), n_tasks, n_t, d)
    rows_all = np.arange(len(y))
    Y = np.zeros((len(y), n_tasks))
    Y[rows_all, task_ids] = y
    mask = np.zeros(Y.shape, dtype=bool)
    mask[rows_all, task_ids] = True
    alpha_max = low_rank_alpha_max(X, Y, mask)
    del Y, mask
    print(f"\n(d) {n_tasks} tasks x {n_t} rows x {d} features (long format, the data of (c)); "
          f"MeanClusteredRegressor() as the reference; LowRankRegressor alpha = 0.1 * "
          f"low_rank_alpha_max = {0.1 * alpha_max:.4g}")
    estimators = {
        "MeanClustered": MeanClusteredRegressor(),
        "ClusteredTasks": ClusteredTasksRegressor(random_state=0),
        "LowRank": LowRankRegressor(alpha=0.1 * alpha_max, tol=GAP),
        "TaskRelation": TaskRelationRegressor(alpha=1.0),
        "Hierarchical": HierarchicalRegressor(),
        "Hierarchical(random_slopes=None)": HierarchicalRegressor(random_slopes=None),
        "Hierarchical(covariance_type='diag')": HierarchicalRegressor(covariance_type="diag"),
    }
    information = {"Hierarchical(covariance_type='diag')"}  # an option: no target
    stops = {
        "ClusteredTasks": "no tol: alternations stop when the partition is unchanged or the "
                          "objective falls by <= 1e-10 relative",
        "LowRank": f"tol={GAP:g} on the relative duality gap (criterion_)",
        "TaskRelation": "tol=1e-12 (default) on the relative duality gap (criterion_) of "
                        "the eps = 0 problem, checked after every sweep",
        "Hierarchical": "tol=1e-8 (default) on the gradient of the profiled deviance in the "
                        "covariance's Cholesky factor (Newton's method on the covariance, "
                        "on a factor of lower rank where a variance goes to 0, L-BFGS-B to "
                        "finish); every slope random: 31 random effects, 496 covariance "
                        "entries",
        "Hierarchical(random_slopes=None)": "the same stop; a random intercept only",
        "Hierarchical(covariance_type='diag')": "the same stop; every slope random, "
                                                "independent: 31 variances",
    }
    # iterations to a relative duality gap of GAP (an untimed fit), where tol is not GAP
    to_gap = {"TaskRelation": TaskRelationRegressor(alpha=1.0, tol=GAP)}
    fits = {name: (lambda m: lambda: m.fit(X, y, task_ids=task_ids))(model)
            for name, model in estimators.items()}
    first = {}
    for name, fit in fits.items():  # compiles (MeanClustered first: the shared kernels)
        start = time.perf_counter()
        fit()
        first[name] = time.perf_counter() - start
    # a fit slower than SLOW_FIT is not repeated: its first run (compiled already) is its time
    slow = {name for name, elapsed in first.items() if elapsed > SLOW_FIT}
    times = interleaved({k: v for k, v in fits.items() if k not in slow}, args.repeats)
    times.update({name: first[name] for name in slow})
    reference = times["MeanClustered"]
    for name, model in estimators.items():
        if name == "MeanClustered":
            continue
        criterion = getattr(model, "criterion_", None)
        stop = f", criterion_ {criterion:.2e}" if criterion is not None else ""
        if name in to_gap:
            other = to_gap[name].fit(X, y, task_ids=task_ids)
            stop += (f", {other.n_iter_} iterations to a gap of {GAP:g} "
                     f"({other.criterion_:.2e})")
        elif name.startswith("Hierarchical"):  # no gap: a likelihood is not convex
            stop += (f", max_iter={likelihood_within(model, X, y, task_ids)} to a "
                     f"log-likelihood within {GAP:g} relative of this fit's")
        runs = "1 run (slow)" if name in slow else f"median of {args.repeats}"
        print(f"  {name}: n_iter_ {model.n_iter_}{stop}; {stops[name]}")
        label = name.replace("(", "Regressor(") if "(" in name else f"{name}Regressor"
        rows.append((f"(d) {label} / MeanClustered", times[name] / reference,
                     *(("", None) if name in information else ("<=", 10.0)),
                     f"{times[name]:.3f} s ({runs}) / {reference:.3f} s, n_iter_ "
                     f"{model.n_iter_}{stop}"))

    # the hierarchical model where half the slopes do not vary between tasks: variances at 0
    # at the optimum (the boundary of the covariances), information only, one run
    rng = np.random.default_rng(3)
    spread = np.where(np.arange(d) < d // 2, 0.3, 0.0)
    W = rng.normal(size=d) + spread * rng.normal(size=(n_tasks, d))
    y_flat = (np.einsum("ij,ij->i", X, W[task_ids]) + rng.normal(size=n_tasks)[task_ids]
              + rng.normal(size=len(task_ids)))
    model = HierarchicalRegressor()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(X, y_flat, task_ids=task_ids)
        elapsed = time.perf_counter() - start
    zeros = int(np.sum(np.linalg.eigvalsh(model.task_covariance_)
                       < 1e-8 * np.trace(model.task_covariance_)))
    note = (f"{elapsed:.2f} s (1 run) / {reference:.3f} s, n_iter_ {model.n_iter_}, {zeros} "
            f"variances at 0, log-likelihood {model.log_likelihood_:.6f}"
            + (", ConvergenceWarning" if caught else ""))
    print(f"  Hierarchical, {d - d // 2} slopes constant across tasks: {note}")
    rows.append(("(d) HierarchicalRegressor, boundary optimum / MC", elapsed / reference,
                 "", None, note))


def likelihood_within(model, X, y, task_ids, gap=GAP):
    """The fewest ``max_iter`` whose fit's log-likelihood is within ``gap`` (relative) of
    ``model``'s (fitted at its own ``max_iter``): the hierarchical model's stand-in for
    the iterations to a relative duality gap, its likelihood having no dual."""
    for max_iter in range(1, model.n_iter_ + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            short = clone(model).set_params(max_iter=max_iter).fit(X, y, task_ids=task_ids)
        if abs(short.log_likelihood_ - model.log_likelihood_) <= gap * abs(
                model.log_likelihood_):
            return max_iter
    return model.n_iter_


# -- driver -----------------------------------------------------------------------------------
def interleaved(fits, repeats):
    """Median time of each fit over ``repeats`` rounds, one run of each per round."""
    times = {name: [] for name in fits}
    for _ in range(repeats):
        for name, fit in fits.items():
            start = time.perf_counter()
            fit()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def school_sizes(seed=0):
    return list(np.random.default_rng(seed).integers(22, 252, size=139))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes (about a minute): the ratios are then indicative")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved runs per setting")
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads")
    parser.add_argument("--cases", default="abcd", help="which cases to run, e.g. 'ac'")
    parser.add_argument("--skglm-path", default=os.environ.get("SKGLM_PATH"),
                        help="a directory holding skglm (pip install --target DIR), put "
                             "first on sys.path; default $SKGLM_PATH")
    args = parser.parse_args()
    limits = threadpool_limits(args.threads, "blas") if args.threads else None
    print(f"{'quick' if args.quick else 'full'} run, median of {args.repeats} interleaved "
          f"runs, {args.threads or 'default'} BLAS thread(s)")
    rows = []
    if "a" in args.cases:
        GroupLasso, reason = import_skglm(args.skglm_path)
        if GroupLasso is None:
            print(f"\n(a) skipped: {reason}")
        else:
            case_a("School-shaped", school_sizes(), 27, 1 / 3, args, GroupLasso, rows)
            if args.quick:
                case_a("large, quick size", [200] * 20, 500, 0.05, args,
                       GroupLasso, rows)
            else:
                case_a("large", [500] * 100, 2_000, 0.05, args, GroupLasso, rows)
    if "b" in args.cases:
        case_b(20_000, 10_000, args, rows)  # the fixed (T, d) arrays would dominate a small X
    if "c" in args.cases:
        case_c(*((1_000, 300) if args.quick else (5_000, 1_000)), args, rows)
    if "d" in args.cases:
        case_d(200 if args.quick else 1_000, args, rows)

    print(f"\n{'measure':<52}{'value':>8}{'target':>10}  result")
    for name, value, op, target, note in rows:
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        if target is None:  # information only
            print(f"{name:<52}{shown:>8}{'':>10}  {'':4}  {note}")
            continue
        met = {"<": value < target, "<=": value <= target, ">=": value >= target}[op]
        print(f"{name:<52}{shown:>8}{op + ' ' + str(target):>10}  "
              f"{'pass' if met else 'MISS'}  {note}")
    if limits is not None:
        limits.restore_original_limits()


if __name__ == "__main__":
    main()
