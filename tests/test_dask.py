"""Every cross-validation loop of skmtl runs unchanged on a dask.distributed cluster.

A real ``LocalCluster`` of two worker processes (one thread each): the fits are pickled, sent
to other processes and run there, as on a remote cluster. Each result must equal the one of the
default joblib backend run in this process (``n_jobs=1``: the same fits, without starting
loky's worker processes, which costs seconds on a busy machine), to rounding (BLAS may sum in
another order in another process).
"""

import csv

import numpy as np
import pytest
import sklearn
from numpy.testing import assert_allclose
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmtl import PooledTasks
from skmtl.cli import main
from skmtl.datasets import make_multitask_regression
from skmtl.linear import BlockSparseRegressorCV, MeanClusteredRegressorCV
from skmtl.model_selection import pairwise_transfer, transfer_report

distributed = pytest.importorskip("distributed")
joblib = pytest.importorskip("joblib")
pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def client(cluster):
    """A client of the cluster: joblib's dask backend (:func:`_on_dask`) submits through it."""
    with distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def wide():
    return make_multitask_regression(n_samples=120, n_features=6, n_tasks=4, missing_rate=0.2,
                                     noise=1.0, random_state=0)


@pytest.fixture(scope="module")
def long():
    rng = np.random.default_rng(0)
    task_ids = np.repeat(np.array(["a", "b", "c"]), 40)
    X = rng.normal(size=(120, 3))
    W = np.array([1.0, -2.0, 0.5]) + 0.3 * rng.normal(size=(3, 3))
    y = np.einsum("ij,ij->i", X, W[np.searchsorted(["a", "b", "c"], task_ids)])
    return X, y + 0.5 * rng.normal(size=120), task_ids


def _on_dask(function, *args, **kwargs):
    """``function(*args, **kwargs)`` with joblib on the cluster (n_jobs is then ignored: the
    dask backend uses every worker thread)."""
    with joblib.parallel_backend("dask"):
        return function(*args, **kwargs)


def _fitted_state(model):
    return (model.coef_, model.intercept_, model.alpha_,
            model.cv_results_["mean_test_score"])


@pytest.mark.parametrize("estimator", [
    MeanClusteredRegressorCV(n_alphas=5, n_jobs=2),
    BlockSparseRegressorCV(n_alphas=8, n_jobs=2),
], ids=["mean_clustered", "block_sparse"])
def test_cv_estimator_on_dask_equals_the_default_backend(estimator, wide, client):
    X, Y = wide
    on_dask = _on_dask(sklearn.clone(estimator).fit, X, Y)
    local = sklearn.clone(estimator).set_params(n_jobs=1).fit(X, Y)
    for a, b in zip(_fitted_state(on_dask), _fitted_state(local)):
        assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    if hasattr(local, "cluster_strength_"):
        assert on_dask.cluster_strength_ == local.cluster_strength_


def _score_needing_routing(estimator, X, y, task_ids=None):
    """R^2, refused when metadata routing is off (as scikit-learn's scorers refuse metadata)."""
    if not sklearn.get_config()["enable_metadata_routing"]:
        raise RuntimeError("metadata routing is off in this worker")
    return estimator.score(X, y, task_ids=task_ids)


def test_cv_estimator_workers_see_the_parents_sklearn_config(long, client):
    X, y, task_ids = long
    model = MeanClusteredRegressorCV(n_alphas=4, cv=3, n_jobs=2, scoring=_score_needing_routing)
    with sklearn.config_context(enable_metadata_routing=True):
        on_dask = _on_dask(sklearn.clone(model).fit, X, y, task_ids=task_ids)
        local = sklearn.clone(model).set_params(n_jobs=1).fit(X, y, task_ids=task_ids)
    assert_allclose(on_dask.cv_results_["mean_test_score"],
                    local.cv_results_["mean_test_score"], rtol=1e-10)


@pytest.mark.filterwarnings("ignore:The best alpha")  # a tiny grid: at its edge
def test_transfer_report_on_dask_gives_the_same_table(wide, long, client):
    X, Y = wide
    model = MeanClusteredRegressorCV(n_alphas=4, cv=3)
    on_dask = _on_dask(transfer_report, model, X, Y, cv=3, n_jobs=2)
    pd.testing.assert_frame_equal(on_dask, transfer_report(model, X, Y, cv=3), rtol=1e-10)
    # long data through a Pipeline: task_ids reaches the model by metadata routing, which
    # each worker turns on for its fit
    X, y, task_ids = long
    pipeline = make_pipeline(StandardScaler(), model)
    on_dask = _on_dask(transfer_report, pipeline, X, y, cv=3, n_jobs=2, task_ids=task_ids)
    pd.testing.assert_frame_equal(on_dask, transfer_report(pipeline, X, y, cv=3,
                                                           task_ids=task_ids), rtol=1e-10)


def test_pairwise_transfer_on_dask_gives_the_same_matrix(wide, client):
    X, Y = wide
    on_dask = _on_dask(pairwise_transfer, PooledTasks(Ridge()), X, Y, n_jobs=2)
    local = pairwise_transfer(PooledTasks(Ridge()), X, Y)
    pd.testing.assert_frame_equal(on_dask, local, rtol=1e-10)


@pytest.fixture(scope="module")
def pupils_csv(long, tmp_path_factory):
    X, y, task_ids = long
    path = tmp_path_factory.mktemp("data") / "pupils.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["school", "x1", "x2", "x3", "score"])
        writer.writerows(zip(task_ids, *X.T, y))
    return path


def _compare(path, out, *extra):
    status = main(["compare", "--csv", str(path), "--targets", "score", "--task-column",
                   "school", "--models", "pooled", "mean_clustered", "--cv", "3", "--out",
                   str(out), "--quiet", *extra])
    assert status == 0
    return (out / "scores.csv").read_text()


def test_compare_on_a_dask_scheduler_writes_the_same_scores(pupils_csv, cluster, client,
                                                            tmp_path, capsys):
    local = _compare(pupils_csv, tmp_path / "local")
    address = cluster.scheduler_address
    on_dask = _compare(pupils_csv, tmp_path / "dask", "--n-jobs", "2", "--scheduler", address)
    assert f"Fits run on the dask scheduler at {address} (2 worker threads)." \
        in capsys.readouterr().out
    # called from Python, the command honours an active joblib backend
    active = _on_dask(_compare, pupils_csv, tmp_path / "active", "--n-jobs", "2")
    assert on_dask == local
    assert active == local
    assert len(on_dask.splitlines()) == 1 + 3 * 3  # a header, then (stl, pooled,
    # mean_clustered) x 3 tasks


def test_compare_with_an_unreachable_scheduler_is_a_one_line_error(tmp_path, capsys):
    dask = pytest.importorskip("dask")
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        status = main(["compare", "--dataset", "exam", "--models", "pooled", "--quiet",
                       "--out", str(tmp_path), "--scheduler", "tcp://127.0.0.1:1"])
    assert status == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("skmtl: error: Timed out trying to connect to tcp://127.0.0.1:1")
    assert "\n" not in error
