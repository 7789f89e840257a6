"""Peak memory of a fit over the size of its input (issue 12): no per-task copy of X at once.

The measure is benchmarks/memory.py's (peak traced memory of one fit, after a warm-up fit,
over the bytes of X and Y), on a smaller shape whose ratios are those of the benchmark's
(the per-task copies of the old code gave 21x to 24x here, 11x on the sparse X).
"""

import numpy as np
import pytest
from _benchmarks import benchmark_module
from sklearn.linear_model import Ridge

from skmtl import IndependentTasks
from skmtl.linear import MeanClusteredRegressor

WIDE = (4_000, 200, 50, 0.5)  # rows, features, tasks, share of missing labels


@pytest.fixture(scope="module")
def memory():
    with benchmark_module("memory") as module:
        yield module


def test_independent_tasks_slices_one_task_at_a_time(memory):
    ratio = memory.peak_ratio(lambda X, Y: IndependentTasks(Ridge()).fit(X, Y),
                              *memory.wide_data(*WIDE))
    assert ratio <= 2.0


def test_independent_tasks_keeps_sparse_X_lean(memory):
    data = memory.sparse_wide_data(4_000, 2_000, 50, 0.5)
    ratio = memory.peak_ratio(lambda X, Y: IndependentTasks(Ridge()).fit(X, Y), *data)
    assert ratio <= 2.0


def test_mean_clustered_reads_each_task_through_row_indices(memory):
    ratio = memory.peak_ratio(lambda X, Y: MeanClusteredRegressor().fit(X, Y),
                              *memory.wide_data(*WIDE))
    assert ratio <= 2.0


# -- the deep estimators: labels as (row, task, label) triples, X as given -------------------


def test_deep_fit_on_long_data_builds_no_n_by_tasks_array(memory):
    pytest.importorskip("torch")
    from skmtl.deep import MultiTaskRegressor

    # 500 tasks: the dense targets, mask and encoded copy of the old path were 500 columns
    # each (200x the input here); the triples are a few vectors of n_samples
    data = memory.long_data(5_000, 4, 500)
    ratio = memory.peak_ratio(memory._fit_long(MultiTaskRegressor(**memory.DEEP_EPOCH)), *data)
    assert ratio <= 3.0


def test_deep_fit_keeps_sparse_X_sparse(memory):
    pytest.importorskip("torch")
    from skmtl.deep import MultiTaskClassifier

    data = memory.fingerprint_data(5_000, 1_024, 128, 0.9)
    estimator = MultiTaskClassifier(hidden_layer_sizes=(64,), batch_size=256,
                                    **memory.DEEP_EPOCH)
    # a dense float32 copy of X alone would be 3.4x the CSR bytes
    assert memory.peak_ratio(estimator.fit, *data) <= 2.0


def test_low_rank_fit_on_long_data_builds_no_n_by_tasks_array(memory):
    """LowRankRegressor reads long data straight into its design's observations: 3.5x here
    (before: the wide (n_samples, n_tasks) targets and mask of the base class, 97x; the
    solver's few (n_tasks, n_features) iterates weigh as much as this 4-feature input)."""
    from skmtl.linear import LowRankRegressor

    data = memory.long_data(5_000, 4, 500)
    ratio = memory.peak_ratio(memory._fit_long(LowRankRegressor(alpha=0.1)), *data)
    assert ratio <= 5.0


def test_low_rank_cv_on_long_data_builds_no_n_by_tasks_array(memory):
    """LowRankRegressorCV's folds are long data too: 5.6x here (the fixed-alpha fit's 3.5x
    plus a training fold's copy of X), against 282x when its search spread the long data to
    wide targets and mask."""
    from skmtl.linear import LowRankRegressorCV

    data = memory.long_data(5_000, 4, 500)
    model = LowRankRegressorCV(n_alphas=3, eps=0.1, cv=2)
    ratio = memory.peak_ratio(memory._fit_long(model), *data)
    assert ratio <= 7.0


def test_block_sparse_fit_on_long_data_builds_no_n_by_tasks_array(memory):
    """As LowRankRegressor: 5.1x here, against 99x through the base class's wide targets and
    mask (block coordinate descent keeps its Anderson extrapolation's few (n_tasks,
    n_features) iterates, each as heavy as this 4-feature input)."""
    from skmtl.linear import BlockSparseRegressor

    data = memory.long_data(5_000, 4, 500)
    ratio = memory.peak_ratio(memory._fit_long(BlockSparseRegressor(alpha=0.1)), *data)
    assert ratio <= 7.0


def test_block_sparse_cv_on_long_data_builds_no_n_by_tasks_array(memory):
    """As LowRankRegressorCV: 6.6x here, against 282x through wide folds."""
    from skmtl.linear import BlockSparseRegressorCV

    data = memory.long_data(5_000, 4, 500)
    model = BlockSparseRegressorCV(n_alphas=3, eps=0.1, cv=2)
    ratio = memory.peak_ratio(memory._fit_long(model), *data)
    assert ratio <= 8.0


def test_task_relation_fit_of_many_tasks_forms_no_task_by_task_matrix(memory):
    """2,000 tasks of 5 rows and 3 features: TaskRelationRegressor keeps Omega factored, so
    the fit's peak (2 MB) stays below a quarter of the T x T Omega's 32 MB (the old fit formed
    Omega and its correlation, more than 64 MB); task_covariance_ is formed when read."""
    from skmtl.linear import TaskRelationRegressor

    rng = np.random.default_rng(0)
    T, n_t, d = 2000, 5, 3
    X = rng.standard_normal((T * n_t, d))
    task_ids = np.repeat(np.arange(T), n_t)
    y = X @ rng.standard_normal(d) + rng.standard_normal(T * n_t)
    model = TaskRelationRegressor(alpha=1.0)
    ratio = memory.peak_ratio(memory._fit_long(model), X, y, task_ids)
    assert ratio * (X.nbytes + y.nbytes + task_ids.nbytes) < 0.25 * T * T * 8
    assert model.task_covariance_.shape == (T, T)


# -- sparse long data: a sparse X never densified to (n_samples, n_features) -------------------
# 5,000 rows x 2,000 features at 1% (CSR), 20 tasks of about 250 rows: the input (X, y and
# task_ids) is 1.24 MB; a dense float64 X alone would be 61.5 times it.
SPARSE_LONG = (5_000, 2_000, 20)


# predict, score and predict_proba with task_ids, as memory.peak_ratio's fit(X, y, task_ids)
_CALLS = {
    "predict": lambda model: lambda X, y, t: model.predict(X, task_ids=t),
    "score": lambda model: lambda X, y, t: model.score(X, y, task_ids=t),
    "predict_proba": lambda model: lambda X, y, t: model.predict_proba(X, task_ids=t),
}


def _sparse_long_data(n_samples, n_features, n_tasks, seed=0):
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    X = sp.random(n_samples, n_features, density=0.01, format="csr", random_state=rng)
    task_ids = rng.integers(n_tasks, size=n_samples)
    task_ids[:n_tasks] = np.arange(n_tasks)
    y = np.asarray(X @ rng.normal(size=n_features)).ravel() + rng.normal(size=n_samples)
    return X, y, task_ids


def _dense_ratio(memory, X, y, task_ids):
    """The bytes of X dense (float64) over those of the input."""
    return X.shape[0] * X.shape[1] * 8 / sum(memory.nbytes(a) for a in (X, y, task_ids))


@pytest.mark.parametrize("name", ["LowRankRegressor", "MeanClusteredRegressor",
                                  "TaskRelationRegressor"])
@pytest.mark.parametrize("method", ["predict", "score"])
def test_predict_with_task_ids_keeps_sparse_X_sparse(memory, name, method):
    """predict(X, task_ids) and score read each row's own task's coefficients at X's stored
    entries: 0.16 times the input here (the predictions), where ``W[task_ids]``, a dense
    (n_samples, n_features) array, and X times it took 63 times (782 MB on the audit's
    20,000 x 5,000 CSR X, 50 tasks)."""
    from skmtl import linear

    data = _sparse_long_data(*SPARSE_LONG)
    model = getattr(linear, name)().fit(*data[:2], task_ids=data[2])
    ratio = memory.peak_ratio(_CALLS[method](model), *data)
    assert ratio <= 1.0 < 0.1 * _dense_ratio(memory, *data)


@pytest.mark.parametrize("name, bound", [("TaskRelationRegressor", 20.0),
                                         ("MeanClusteredRegressor", 12.0)])
def test_fit_on_sparse_long_data_never_densifies_X(memory, name, bound):
    """TaskRelationRegressor on sparse long data keeps each thin task's n_t x n_t Gram
    eigenvectors (8 times the input here) and reads its rows sparse, 14.9 times the input at
    the peak, where the rows' thin SVDs stacked all of X dense (89 times; on the audit's data
    978 MB, 56 s; now 120 MB, 4 s) and the first W step formed a d x d identity.
    MeanClusteredRegressor (cluster_strength=1, independent ridge fits) no longer allocates
    the d x d coupled system it does not solve: 9.4 times, against 34 (each task's rows are
    still densified one chunk at a time)."""
    from skmtl import linear

    data = _sparse_long_data(*SPARSE_LONG)
    model = getattr(linear, name)()
    ratio = memory.peak_ratio(memory._fit_long(model), *data)
    assert ratio <= bound < 0.5 * _dense_ratio(memory, *data)


@pytest.mark.parametrize("params, bound", [
    ({"cluster_strength": 5.0}, 31.0),  # MeanClusteredRegressor, coupled
    ({"n_alphas": 5}, 33.0),  # MeanClusteredRegressorCV
])
def test_mean_clustered_coupled_and_cv_keep_sparse_long_rows_sparse(memory, params, bound):
    """The coupled fit and the CV of mean-clustered least squares on sparse long data (20
    tasks of about 250 rows, 2,000 features) keep each thin task's rows sparse, with the
    eigenvectors of its n_t x n_t Gram matrix (_SparseThinTasks), and find the default
    alphas' scale by Lanczos iterations: 22.5 and 23.6 times the input, where the dense
    rows of the tasks' thin SVDs and the d x d moments took 147 and 148 (2.4 times a dense
    X), and the fits were 6 to 8 times slower."""
    from skmtl import linear

    data = _sparse_long_data(*SPARSE_LONG)
    name = "MeanClusteredRegressorCV" if "n_alphas" in params else "MeanClusteredRegressor"
    model = getattr(linear, name)(**params)
    ratio = memory.peak_ratio(memory._fit_long(model), *data)
    assert ratio <= bound < _dense_ratio(memory, *data)


@pytest.mark.parametrize("kind", ["Regressor", "Classifier"])
def test_task_relation_on_wide_data_keeps_the_tasks_rows_not_their_blocks(memory, kind):
    """320 features, 6 tasks of about 60 labels: the regressor keeps the tasks' moments as
    their rows' thin SVD (RowSpaceBlocks), 2.7 times the input at the peak, where the
    (T, d, d) moments, their block factors and their absolute values took 12.3 times; the
    classifier reads its Newton blocks from the rows (WeightedRows), 4.3 times, where
    forming them at every Newton step took 16.1 (MoleculeACE, 30 targets on 2,048 bits:
    the regressor's process peak 2.78 GB, now 1.03 GB)."""
    from skmtl import linear

    X, Y = memory.wide_data(400, 320, 6, 0.85)
    if kind == "Classifier":
        Y = np.where(np.isnan(Y), np.nan, (Y > np.nanmedian(Y, axis=0)).astype(float))
    model = getattr(linear, f"TaskRelation{kind}")(alpha=1.0)
    assert memory.peak_ratio(lambda X, Y: model.fit(X, Y), X, Y) <= 6.0


def _sparse_fingerprints():
    """A sparse X (binary, 10% of 320 bits set, 400 rows) and 6 tasks, 85% of labels missing."""
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    X = sp.csr_array(np.where(rng.uniform(size=(400, 320)) < 0.1, 1.0, 0.0))
    Y = np.asarray(X @ rng.normal(size=(320, 6))) + rng.normal(size=(400, 6))
    Y[rng.uniform(size=Y.shape) < 0.85] = np.nan
    return X, Y


@pytest.mark.parametrize("name, bound", [
    ("MeanClusteredRegressor", 20.0), ("MeanClusteredRegressorCV", 40.0),
    ("MeanClusteredClassifier", 30.0), ("ClusteredTasksRegressor", 80.0),
    ("ClusteredTasksClassifier", 80.0), ("TaskRelationRegressor", 25.0),
    ("TaskRelationClassifier", 30.0)])
def test_wide_sparse_X_is_read_by_its_tasks_rows(memory, name, bound):
    """A sparse X (binary fingerprint-like, 10% of 320 bits) with 6 tasks of about 60 labels:
    the relationship models read each task's rows, densified chunk by chunk, as they read a
    dense X's, where they formed the (T, d, d) moments from one sparse product. Peaks over
    the sparse input (X and Y, 0.18 MB): 12.3, 26.7, 19.2, 54.3, 55.0, 14.5 and 19.4 in
    this order, against 74.3, 86.0, 76.3, 104.1, 133.1, 74.3 and 108.0 (MoleculeACE's 30
    targets on 2,048 bits, 6.5 MB of sparse X: TaskRelationRegressor's process peak 2.28 GB
    before). The 346 observed labels' rows, dense, are 5.0 times this input; the clustered
    models keep d x d matrices per cluster (4.6 times it each)."""
    from skmtl import linear

    X, Y = _sparse_fingerprints()
    if "Classifier" in name:
        Y = np.where(np.isnan(Y), np.nan, (Y > np.nanmedian(Y, axis=0)).astype(float))
    params = {"random_state": 0} if name.startswith("ClusteredTasks") else {}
    model = getattr(linear, name)(**params)
    assert memory.peak_ratio(lambda X, Y: model.fit(X, Y), X, Y) <= bound


@pytest.mark.parametrize("sparse, bound", [(False, 9.0), (True, 50.0)])
def test_hierarchical_random_intercept_on_wide_data_keeps_the_moments_rows(memory, sparse,
                                                                           bound):
    """HierarchicalRegressor(random_slopes=None) on 320 features, 6 tasks of about 60
    labels: a random intercept reads each task's intercept row of its moments and their sum
    over tasks (MomentRows), not the (T, d + 1, d + 1) moments. Peaks over the input: 6.5
    (dense X) and 37.0 (sparse X, 10% of the bits), against 11.5 and 74.5 for the old code;
    what remains is the d x d solve of the fixed effects (the sum, its eigenvectors, S_XX and
    its factor; 4.7 times the sparse input each). MoleculeACE's 30 targets on 2,048 bits:
    94 s at a process peak of 2.94 GB before, 18 s and 0.84 GB now."""
    from skmtl.linear import HierarchicalRegressor

    X, Y = _sparse_fingerprints() if sparse else memory.wide_data(400, 320, 6, 0.85)
    model = HierarchicalRegressor(random_slopes=None)
    assert memory.peak_ratio(lambda X, Y: model.fit(X, Y), X, Y) <= bound


@pytest.mark.parametrize("sparse, bound", [(False, 9.0), (True, 50.0)])
def test_hierarchical_spherical_on_wide_data_holds_thin_factors(memory, sparse, bound):
    """HierarchicalRegressor(covariance_type="spherical") on 320 features, 6 tasks of about
    60 labels: each task is held as the thin SVD of its rows (``min(n_t, d)`` rows of ``d``
    numbers), beside the ``d x d`` system of the mean task and its factor. Peaks over the
    input: 5.9 (dense X) and 34.2 (sparse X, 10% of the bits: the factors are dense), as the
    random intercept's above."""
    from skmtl.linear import HierarchicalRegressor

    X, Y = _sparse_fingerprints() if sparse else memory.wide_data(400, 320, 6, 0.85)
    model = HierarchicalRegressor(covariance_type="spherical")
    assert memory.peak_ratio(lambda X, Y: model.fit(X, Y), X, Y) <= bound


def test_hierarchical_reml_curvature_of_few_tasks_through_the_task_pairs(memory):
    """HierarchicalRegressor with 5 random slopes (6 random effects, REML) on 320 features,
    6 tasks of about 60 labels: REML's second curvature term goes through the 36 x 36 task
    pairs' products, where the (q rank)^2 matrix of its blocks took 3.7 million entries (30
    MB, 44.7 times the input at the fit's peak; 23.3 with 3 random slopes). Peaks over the
    input now: 7.0 (6.6 with 3 slopes), the same fit (log-likelihood to 1e-15)."""
    from skmtl.linear import HierarchicalRegressor

    X, Y = memory.wide_data(400, 320, 6, 0.85)
    model = HierarchicalRegressor(random_slopes=[0, 1, 2, 3, 4])
    assert memory.peak_ratio(lambda X, Y: model.fit(X, Y), X, Y) <= 10.0


# ============================================================================================
# Predictions on long data with many tasks: each row's own task only, no (n_samples, n_tasks)
# array (predict / score / predict_proba with task_ids, and the multi-task scorers)
# ============================================================================================
# 20,000 rows, 20 features, 1,000 tasks: the input (X, y, task_ids) is 3.36 MB, one dense
# (n_samples, n_tasks) float64 array 153 MiB (45 times it). The models fit on the first 4,000
# rows (every task among them); only the call on all rows is measured.
LONG_MANY = (20_000, 20, 1_000)


@pytest.fixture(scope="module")
def many_tasks():
    """``(X, y, y_binary, task_ids)`` of LONG_MANY, every task present."""
    n_samples, n_features, n_tasks = LONG_MANY
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n_samples, n_features))
    task_ids = rng.integers(n_tasks, size=n_samples)
    task_ids[:n_tasks] = np.arange(n_tasks)
    y = X[:, 0] + task_ids / n_tasks + rng.normal(size=n_samples)
    return X, y, (y > np.median(y)).astype(int), task_ids


def _assert_lean(memory, call, X, y, task_ids, share=0.05):
    """The peak of ``call(X, y, task_ids)`` (memory.peak_ratio, after a warm-up call on 50
    rows for the lazy imports) is at most twice the input and below ``share`` of one dense
    (n_samples, n_tasks) float64 array."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a metric undefined on tasks of one row
        call(X[:50], y[:50], task_ids[:50])
    ratio = memory.peak_ratio(call, X, y, task_ids, warm_up=False)
    n_tasks = np.unique(task_ids).shape[0]
    assert ratio <= 2.0
    assert ratio * (X.nbytes + y.nbytes + task_ids.nbytes) < share * X.shape[0] * n_tasks * 8


@pytest.mark.parametrize("method", ["predict", "score"])
def test_block_sparse_predicts_each_row_for_its_own_task(memory, many_tasks, method):
    """BlockSparseRegressor predicts each row from its task's coefficients: 1.1 times the
    input (each row's coefficients, as large as X), where the base class's every-task
    prediction took two (n, T) arrays, 91 times."""
    from skmtl.linear import BlockSparseRegressor

    X, y, _, task_ids = many_tasks
    model = BlockSparseRegressor().fit(X[:4_000], y[:4_000], task_ids=task_ids[:4_000])
    _assert_lean(memory, _CALLS[method](model), X, y, task_ids)


@pytest.mark.parametrize(("name", "method"), [
    ("MultiTaskRegressor", "predict"), ("MultiTaskRegressor", "score"),
    ("MultiTaskClassifier", "predict"), ("MultiTaskClassifier", "score"),
    ("MultiTaskClassifier", "predict_proba"),
])
def test_deep_estimators_predict_each_row_for_its_own_task(memory, many_tasks, name, method):
    """The deep estimators keep each row's own head's output, batch by batch: 0.3 (regressor)
    and 0.4 times the input (classifier), where the base class's default, which shadowed the
    deep one in the method resolution order, filled an (n, T) array: 46 times, and for the
    classifier's probabilities and class codes 91 (predict_proba) and 137 times (predict,
    score). Torch's tensors are not traced; those numpy arrays were."""
    pytest.importorskip("torch")
    from skmtl import deep

    X, y_reg, y_clf, task_ids = many_tasks
    y = y_reg if name == "MultiTaskRegressor" else y_clf
    model = getattr(deep, name)(hidden_layer_sizes=(8,), max_epochs=1, early_stopping=False,
                                random_state=0)
    model.fit(X[:4_000], y[:4_000], task_ids=task_ids[:4_000])
    _assert_lean(memory, _CALLS[method](model), X, y, task_ids)


def test_linear_classifier_predict_proba_of_each_row_for_its_own_task(memory, many_tasks):
    """The linear classifiers' probabilities from each row's own coefficients: 1.2 times the
    input, where T (n, 2) arrays took 137 times."""
    from skmtl.linear import BlockSparseClassifier

    X, _, y, task_ids = many_tasks
    model = BlockSparseClassifier().fit(X[:4_000], y[:4_000], task_ids=task_ids[:4_000])
    _assert_lean(memory, _CALLS["predict_proba"](model), X, y, task_ids)


@pytest.mark.parametrize("method", ["predict", "score", "predict_proba"])
def test_pooled_classifier_predicts_each_row_for_its_own_task(memory, many_tasks, method):
    """PooledTasks(LogisticRegression()): one pooled prediction, each row's own task's
    classes taken from it, 0.5 times the input, where every task's share of it took 91
    (predict_proba) and 137 times (predict, score)."""
    from sklearn.linear_model import LogisticRegression

    from skmtl import PooledTasks

    X, _, y, task_ids = many_tasks
    model = PooledTasks(LogisticRegression()).fit(X[:4_000], y[:4_000],
                                                  task_ids=task_ids[:4_000])
    _assert_lean(memory, _CALLS[method](model), X, y, task_ids)


def test_independent_classifier_predict_proba_one_call_per_task(memory, many_tasks):
    """IndependentTasks(LogisticRegression()) on 200 tasks: each task's estimator gives the
    probabilities of its own rows only, 0.3 times the input, where every estimator on all
    rows took 18 times."""
    from sklearn.linear_model import LogisticRegression

    from skmtl import IndependentTasks

    X, _, y, task_ids = many_tasks
    task_ids = task_ids % 200
    model = IndependentTasks(LogisticRegression()).fit(X[:4_000], y[:4_000],
                                                       task_ids=task_ids[:4_000])
    _assert_lean(memory, _CALLS["predict_proba"](model), X, y, task_ids)


def test_roc_auc_scorer_on_long_data_forms_no_n_by_tasks_array(memory, many_tasks):
    """The roc_auc multi-task scorer goes through predict_proba(X, task_ids): 1.1 times the
    input on 500 tasks, where every task's probabilities took 68 times."""
    from skmtl.linear import BlockSparseClassifier
    from skmtl.metrics import make_multitask_scorer

    X, _, y, task_ids = many_tasks
    task_ids = task_ids % 500
    model = BlockSparseClassifier().fit(X[:4_000], y[:4_000], task_ids=task_ids[:4_000])
    scorer = make_multitask_scorer("roc_auc")
    _assert_lean(memory, lambda X, y, t: scorer(model, X, y, task_ids=t), X, y, task_ids,
                 share=0.1)


def _small_long_data(n_classes):
    """300 rows, 4 features, 12 tasks named by strings, given in an order of their own."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 4))
    index = rng.integers(12, size=300)
    index[:12] = np.arange(12)[::-1]
    y = X @ rng.normal(size=4) + index / 6 + rng.normal(size=300)
    if n_classes:
        y = np.digitize(y, np.quantile(y, np.linspace(0, 1, n_classes + 1)[1:-1]))
    return X, y, np.array([f"t{i:02d}" for i in index])


def _small_models():
    import importlib.util

    from sklearn.linear_model import LogisticRegression, Ridge

    from skmtl import IndependentTasks, PooledTasks
    from skmtl.linear import BlockSparseClassifier, BlockSparseRegressor, BlockSparseRegressorCV

    models = [(BlockSparseRegressor(alpha=0.01), 0), (BlockSparseRegressorCV(n_alphas=2, cv=2), 0),
              (BlockSparseClassifier(alpha=0.01), 2), (PooledTasks(LogisticRegression()), 2),
              (PooledTasks(LogisticRegression()), 3), (PooledTasks(Ridge()), 0),
              (IndependentTasks(LogisticRegression()), 3)]
    if importlib.util.find_spec("torch") is not None:
        from skmtl.deep import MultiTaskClassifier, MultiTaskRegressor

        deep = dict(hidden_layer_sizes=(8,), max_epochs=2, batch_size=64, random_state=0)
        models += [(MultiTaskRegressor(**deep), 0), (MultiTaskClassifier(**deep), 2),
                   (MultiTaskClassifier(**deep), 3)]
    return models


def _check_own_task_predictions(model, n_classes):
    X, y, task_ids = _small_long_data(n_classes)
    model.fit(X, y, task_ids=task_ids)
    rows, own = np.arange(X.shape[0]), np.searchsorted(model.tasks_, task_ids)
    pred = model.predict(X, task_ids=task_ids)
    if n_classes:
        np.testing.assert_array_equal(pred, model.predict(X)[rows, own])
        proba = model.predict_proba(X)
        np.testing.assert_allclose(model.predict_proba(X, task_ids=task_ids),
                                   np.stack([proba[t][i] for i, t in zip(rows, own)]),
                                   rtol=1e-12, atol=1e-15)
    else:
        assert pred.dtype == np.float64
        np.testing.assert_allclose(pred, model.predict(X)[rows, own], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("model, n_classes", _small_models(),
                         ids=lambda p: type(p).__name__ if hasattr(p, "fit") else f"{p}cls")
def test_own_task_predictions_equal_every_task_predictions(model, n_classes):
    """The per-row predictions equal those of every task (predict(X) without task_ids, and
    predict_proba's per-task arrays) at each row's own task (up to rounding: a row's dot
    product with its task's coefficients, against a matrix product)."""
    _check_own_task_predictions(model, n_classes)


def test_default_per_row_hooks_predict_a_block_of_rows_at_a_time(monkeypatch):
    """The base class's fallbacks (an estimator that predicts every task only) take a few
    rows at a time and keep each row's own task: the same values as every task's."""
    from skmtl import base
    from skmtl.linear import BlockSparseClassifier, BlockSparseRegressor

    class EveryTaskRegressor(BlockSparseRegressor):
        _predict_tasks = base.MultiTaskMixin._predict_tasks

    class EveryTaskClassifier(BlockSparseClassifier):
        _predict_task_codes = base.MultiTaskMixin._predict_task_codes
        _predict_proba_tasks = base.MultiTaskMixin._predict_proba_tasks

    monkeypatch.setattr(base, "_ROW_BLOCK_ENTRIES", 50)  # 4 rows of the 12 tasks at a time
    for model, n_classes in [(EveryTaskRegressor(alpha=0.01), 0),
                             (EveryTaskClassifier(alpha=0.01), 2)]:
        _check_own_task_predictions(model, n_classes)


def test_deep_estimators_resolve_to_their_own_task_predictions():
    """The deep mixins' batched per-row predictions are not shadowed by the base class's."""
    pytest.importorskip("torch")
    from skmtl.deep import (
        FocusedTaskClassifier,
        FocusedTaskRegressor,
        MultiTaskClassifier,
        MultiTaskRegressor,
    )
    from skmtl.deep._base import _DeepClassificationMixin, _DeepRegressionMixin

    for cls in (MultiTaskRegressor, FocusedTaskRegressor):
        assert cls._predict_tasks is _DeepRegressionMixin._predict_tasks
    for cls in (MultiTaskClassifier, FocusedTaskClassifier):
        assert cls._predict_task_codes is _DeepClassificationMixin._predict_task_codes
        assert cls._predict_proba_tasks is _DeepClassificationMixin._predict_proba_tasks
