"""Peak memory of one fit over the size of the input the user passed (issue 12, "Scale").

Each case builds its data, fits once to compile and warm caches, then fits again under
:mod:`tracemalloc` and reports the peak traced memory above the data divided by
``X.nbytes + Y.nbytes``: how many copies of its input a fit holds at once. Numbers only count
Python-visible allocations (numpy buffers included), not BLAS workspaces.

- ``independent``: ``IndependentTasks(Ridge())`` on a wide dense X (20,000 x 200 float64) and
  Y (20,000 x 50 tasks, 50% of the labels missing, NaN): target <= 2 (each task's rows are
  sliced inside the parallel loop, one task at a time).
- ``independent_sparse``: the same on a CSR X (20,000 x 10,000, 1% non-zeros), against the
  bytes of its data and index arrays: target <= 2 (X is sliced, never densified).
- ``mean_clustered``: ``MeanClusteredRegressor()`` on the same data: target <= 2 (the solver
  reads each task's rows through row indices into X, a bounded chunk of tasks at a time).
- ``hierarchical_classifier``: ``HierarchicalClassifier(max_iter=5)`` (every slope random: 21
  random effects) on long binary data, 20,000 rows x 20 features, 50 tasks: target <= 6 (the
  random columns are copied once per label, the per-label products of an evaluation are
  ``n_obs x q``; 22x before, when every label got its task's ``q x q`` matrix).
- ``deep_long``: ``skmtl.deep.MultiTaskRegressor`` (default network, 1 epoch) on the packaged
  Chem97 data in long format (31,022 pupils x 4 features, 2,410 schools), against the bytes of
  X, y and task_ids: target <= 3 (the net trains on (row, task, label) triples; no
  ``(n_samples, n_tasks)`` array; 457x before, the dense targets and mask of 2,410 columns).
- ``deep_sparse``: ``skmtl.deep.MultiTaskClassifier`` (hard sharing, 1 epoch) on a CSR X of
  fingerprints (binary, 1,024 bits, 10% set) with 128 binary tasks, 90% of the labels missing:
  target <= 2 (X stays sparse; each batch is densified alone).

A case is a function in ``CASES`` that takes the parsed arguments and returns the rows of the
table, ``(name, ratio, target, note)``. Run ``python benchmarks/memory.py`` (about a minute;
``--quick`` for 4,000 rows; ``--cases`` to pick some; ``--help`` for the rest).
"""

import argparse
import tracemalloc
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge

from skmtl import IndependentTasks
from skmtl.linear import MeanClusteredRegressor

DEEP_EPOCH = dict(max_epochs=1, early_stopping=False, random_state=0)


def wide_data(n_samples, n_features, n_tasks, missing, seed=0):
    """Dense X and a wide Y with related tasks and a share ``missing`` of NaN labels."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, n_features))
    W = rng.normal(size=n_features) + 0.5 * rng.normal(size=(n_tasks, n_features))
    Y = X @ W.T + rng.normal(size=(n_samples, n_tasks))
    Y[rng.uniform(size=Y.shape) < missing] = np.nan
    return X, Y


def sparse_wide_data(n_samples, n_features, n_tasks, missing, density=0.01, seed=0):
    """CSR X (fingerprint-like: a share ``density`` of non-zeros) and a wide Y as above."""
    rng = np.random.default_rng(seed)
    X = sp.random(n_samples, n_features, density=density, format="csr", random_state=rng)
    Y = np.asarray(X @ rng.normal(size=(n_features, n_tasks))) + rng.normal(
        size=(n_samples, n_tasks))
    Y[rng.uniform(size=Y.shape) < missing] = np.nan
    return X, Y


def long_data(n_samples, n_features, n_tasks, seed=0):
    """Long data: X, one label per row, and each row's task (a random school of n_tasks)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, n_features))
    task_ids = rng.integers(n_tasks, size=n_samples)
    W = rng.normal(size=n_features) + 0.5 * rng.normal(size=(n_tasks, n_features))
    y = np.einsum("ij,ij->i", X, W[task_ids]) + rng.normal(size=n_samples)
    return X, y, task_ids


def fingerprint_data(n_samples, n_features, n_tasks, missing, density=0.1, seed=0):
    """CSR binary X (fingerprint bits) and wide binary Y with a share ``missing`` of NaN."""
    rng = np.random.default_rng(seed)
    X = sp.random(n_samples, n_features, density=density, format="csr", random_state=rng,
                  data_rvs=np.ones)
    logits = np.asarray(X @ rng.normal(size=(n_features, n_tasks)))
    Y = (logits > np.median(logits, axis=0)).astype(np.float64)
    Y[rng.uniform(size=Y.shape) < missing] = np.nan
    return X, Y


def nbytes(a):
    """Bytes of an array, or of a sparse matrix's data and index arrays."""
    if sp.issparse(a):
        return a.data.nbytes + a.indices.nbytes + a.indptr.nbytes
    return a.nbytes


def peak_ratio(fit, *data, warm_up=True):
    """Peak traced memory of ``fit(*data)`` over the bytes of ``data`` (after a warm-up fit;
    ``warm_up=False``: the caller warmed it up)."""
    if warm_up:
        fit(*data)  # compile numba kernels, import lazily loaded modules
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    fit(*data)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak / sum(nbytes(a) for a in data)


def _wide_shape(args):
    n_samples = 4_000 if args.quick else 20_000
    return n_samples, 200, 50, 0.5


def _wide_note(shape):
    n_samples, n_features, n_tasks, missing = shape
    return f"wide {n_samples:,} x {n_features}, {n_tasks} tasks, {missing:.0%} missing"


def case_independent(args):
    shape = _wide_shape(args)
    ratio = peak_ratio(lambda X, Y: IndependentTasks(Ridge()).fit(X, Y), *wide_data(*shape))
    return [("IndependentTasks(Ridge())", ratio, 2.0, _wide_note(shape))]


def case_independent_sparse(args):
    n_samples, n_features, n_tasks, missing = (4_000, 2_000, 50, 0.5) if args.quick else (
        20_000, 10_000, 50, 0.5)
    data = sparse_wide_data(n_samples, n_features, n_tasks, missing)
    ratio = peak_ratio(lambda X, Y: IndependentTasks(Ridge()).fit(X, Y), *data)
    note = (f"CSR {n_samples:,} x {n_features:,} (1% non-zeros), {n_tasks} tasks, "
            f"{missing:.0%} missing")
    return [("IndependentTasks(Ridge()), sparse X", ratio, 2.0, note)]


def case_mean_clustered(args):
    shape = _wide_shape(args)
    ratio = peak_ratio(lambda X, Y: MeanClusteredRegressor().fit(X, Y), *wide_data(*shape))
    return [("MeanClusteredRegressor()", ratio, 2.0, _wide_note(shape))]


def _fit_long(estimator):
    return lambda X, y, task_ids: estimator.fit(X, y, task_ids=task_ids)


def case_hierarchical_classifier(args):
    from skmtl.linear import HierarchicalClassifier

    n_samples = 4_000 if args.quick else 20_000
    X, y, task_ids = long_data(n_samples, 20, 50)
    labels = (y > np.median(y)).astype(int)
    with warnings.catch_warnings():  # 5 iterations: the memory of an evaluation, not a fit
        warnings.simplefilter("ignore", ConvergenceWarning)
        ratio = peak_ratio(_fit_long(HierarchicalClassifier(max_iter=5)), X, labels, task_ids)
    note = f"long, generated: {n_samples:,} rows x 20, 50 tasks, 21 random effects"
    return [("HierarchicalClassifier, 5 iterations", ratio, 6.0, note)]


def case_deep_long(args):
    from skmtl.deep import MultiTaskRegressor

    if args.quick:
        data, note = long_data(5_000, 4, 500), "long, generated: 5,000 rows x 4, 500 tasks"
    else:
        from skmtl.datasets import load_chem97

        chem97 = load_chem97()
        data = chem97.data, chem97.target, chem97.task_ids
        note = "long, Chem97: 31,022 rows x 4, 2,410 tasks"
    ratio = peak_ratio(_fit_long(MultiTaskRegressor(**DEEP_EPOCH)), *data)
    return [("MultiTaskRegressor, 1 epoch", ratio, 3.0, note)]


def case_deep_sparse(args):
    from skmtl.deep import MultiTaskClassifier

    n_samples = 5_000 if args.quick else 50_000
    data = fingerprint_data(n_samples, 1_024, 128, 0.9)
    estimator = MultiTaskClassifier(hidden_layer_sizes=(512, 256), batch_size=256, **DEEP_EPOCH)
    ratio = peak_ratio(estimator.fit, *data)
    note = (f"CSR {n_samples:,} x 1,024 binary (10% set, {nbytes(data[0]) / 2**20:.0f} MiB), "
            "128 tasks, 90% missing")
    return [("MultiTaskClassifier, 1 epoch, sparse X", ratio, 2.0, note)]


CASES = {
    "independent": case_independent,
    "independent_sparse": case_independent_sparse,
    "mean_clustered": case_mean_clustered,
    "hierarchical_classifier": case_hierarchical_classifier,
    "deep_long": case_deep_long,
    "deep_sparse": case_deep_sparse,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="4,000 rows instead of 20,000: the ratios are then indicative")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES),
                        help="which cases to run (default: all)")
    args = parser.parse_args()
    print(f"{'quick' if args.quick else 'full'} run: peak traced memory of one fit / "
          "(X.nbytes + Y.nbytes [+ task_ids.nbytes])\n")
    print("| fit | data | peak / input | target | result |")
    print("| --- | --- | --- | --- | --- |")
    for case in args.cases:
        for name, ratio, target, note in CASES[case](args):
            result = "pass" if ratio <= target else "MISS"
            print(f"| {name} | {note} | {ratio:.2f}x | <= {target:g}x | {result} |", flush=True)


if __name__ == "__main__":
    main()
