"""Held-out R^2 of ``HierarchicalRegressor`` as its covariance entries outgrow the tasks.

``Sigma`` has ``q (q + 1) / 2`` entries for ``q`` random effects. On generated tasks of 20
rows (``y = x . w_t + b_t + noise``, ``w_t`` around a mean with correlated deviations of
standard deviation about 0.2, ``b_t ~ N(0, 1)``), each setting fits
``HierarchicalRegressor(covariance_type="full")`` (every slope random; the default ``"auto"``
takes it where ``Sigma`` has at most as many entries as tasks, the first two settings),
``HierarchicalRegressor(covariance_type="diag")`` (every slope random, independent),
``HierarchicalRegressor(random_slopes=None)`` (a random intercept only) and
``MeanClusteredRegressorCV()``, and prints their R^2 on 10 new rows per task (the mean over
tasks, as ``score``), their fit times and whether a ConvergenceWarning was raised. The user
guide's table of the hierarchical models (docs/user_guide/linear.rst) comes from this script;
``--truth diagonal`` draws uncorrelated deviations instead. About 2 minutes on 2 cores, half
of it the last setting's fit with every slope random.
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from skmtl.linear import HierarchicalRegressor, MeanClusteredRegressorCV

SETTINGS = [(1000, 30), (300, 20), (300, 40), (100, 20), (300, 60)]  # (tasks, features)
ROWS, TEST_ROWS = 20, 10


def tasks(n_tasks, n_features, correlated):
    """Training and held-out long data of one setting: ``(X, y, ids, X_test, y_test,
    ids_test)``."""
    rng = np.random.default_rng(n_tasks + n_features)
    X = rng.normal(size=(n_tasks * ROWS, n_features))
    ids = np.repeat(np.arange(n_tasks), ROWS)
    if correlated:
        A = rng.normal(size=(n_features, n_features))
        deviations = rng.multivariate_normal(np.zeros(n_features),
                                             0.04 * A @ A.T / n_features, size=n_tasks)
    else:
        deviations = 0.2 * rng.normal(size=(n_tasks, n_features))
    W = 0.5 * rng.normal(size=n_features) + deviations
    b = rng.normal(size=n_tasks)
    y = np.einsum("ij,ij->i", X, W[ids]) + b[ids] + rng.normal(size=len(ids))
    X_test = rng.normal(size=(n_tasks * TEST_ROWS, n_features))
    ids_test = np.repeat(np.arange(n_tasks), TEST_ROWS)
    y_test = (np.einsum("ij,ij->i", X_test, W[ids_test]) + b[ids_test]
              + rng.normal(size=len(ids_test)))
    return X, y, ids, X_test, y_test, ids_test


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--truth", choices=["correlated", "diagonal"], default="correlated",
                        help="the tasks' deviations: correlated (the user guide) or not")
    args = parser.parse_args()
    models = {
        "every slope random": lambda: HierarchicalRegressor(covariance_type="full"),
        "independent slopes (diag)": lambda: HierarchicalRegressor(covariance_type="diag"),
        "random intercept only": lambda: HierarchicalRegressor(random_slopes=None),
        "MeanClusteredRegressorCV": MeanClusteredRegressorCV,
    }
    print(f"{args.truth} deviations, {ROWS} rows per task; held-out R^2 (mean over tasks), "
          "fit time, * = ConvergenceWarning")
    print(f"{'tasks x features':<18}{'entries':>8}" + "".join(f"{m:>28}" for m in models))
    X, y, ids = tasks(20, 3, True)[:3]
    for make in models.values():  # loads the compiled kernels: the times below are fits only
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            make().fit(X, y, task_ids=ids)
    for n_tasks, n_features in SETTINGS:
        X, y, ids, X_test, y_test, ids_test = tasks(n_tasks, n_features,
                                                    args.truth == "correlated")
        cells = []
        for make in models.values():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                start = time.perf_counter()
                model = make().fit(X, y, task_ids=ids)
                elapsed = time.perf_counter() - start
            warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
            score = model.score(X_test, y_test, task_ids=ids_test)
            cells.append(f"{score:.3f} ({elapsed:.1f} s){'*' if warned else ' '}")
        q = n_features + 1
        print(f"{f'{n_tasks} x {n_features}':<18}{q * (q + 1) // 2:>8}"
              + "".join(f"{c:>28}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
