"""transfer_report and pairwise_transfer: values against hand-made loops, flags, formats."""

import builtins
import importlib.util

import numpy as np
import pandas as pd
import pytest
import sklearn
from joblib import parallel_config
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.linear_model import Lasso, LogisticRegression, Ridge
from sklearn.metrics import mean_absolute_error
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmtl import IndependentTasks, PooledTasks
from skmtl.datasets import make_multitask_classification, make_multitask_regression
from skmtl.linear import BlockSparseRegressor, MeanClusteredRegressor
from skmtl.metrics import make_multitask_scorer, mean_squared_error, r2_score, roc_auc_score
from skmtl.model_selection import MultiTaskKFold, pairwise_transfer, transfer_report
from skmtl.model_selection._transfer import REPORT_FIELDS, _default_reference


@pytest.fixture(scope="module")
def wide():
    X, Y = make_multitask_regression(n_samples=60, n_features=8, n_tasks=3, n_conflicting=1,
                                     noise=1.0, missing_rate=0.2, random_state=0)
    return X, Y


@pytest.fixture(scope="module")
def long():
    return make_multitask_regression(n_samples=30, n_features=6, n_tasks=3, noise=0.5,
                                     format="long", random_state=1)


def fold_scores(model, X, Y, folds, metric=r2_score, task_ids=None, method="predict"):
    """Per fold, per task scores of clones of ``model``, by hand: (n_folds, n_tasks)."""
    out = []
    with sklearn.config_context(enable_metadata_routing=task_ids is not None):
        for train, test in folds:
            fitted = clone(model)
            if task_ids is None:
                fitted.fit(X[train], Y[train])
                pred = getattr(fitted, method)(X[test])
                out.append(metric(Y[test], pred, multioutput="raw_values"))
            else:
                fitted.fit(X[train], Y[train], task_ids=task_ids[train])
                pred = getattr(fitted, method)(X[test], task_ids=task_ids[test])
                out.append(metric(Y[test], pred, task_ids=task_ids[test],
                                  multioutput="raw_values"))
    return np.asarray(out)


def expected_report(scores, reference_scores):
    diff = scores - reference_scores
    gain = diff.mean(axis=0)
    gain_se = diff.std(axis=0, ddof=1) / np.sqrt(diff.shape[0])
    return {"score": scores.mean(axis=0), "reference_score": reference_scores.mean(axis=0),
            "gain": gain, "gain_se": gain_se, "negative_transfer": gain < -gain_se}


def assert_report(report, expected):
    for name, values in expected.items():
        np.testing.assert_allclose(np.asarray(report[name], dtype=float),
                                   np.asarray(values, dtype=float), rtol=1e-10, atol=1e-12,
                                   err_msg=name)


@pytest.mark.parametrize("estimator, reference, manual_reference", [
    (PooledTasks(Ridge()), IndependentTasks(Ridge()), IndependentTasks(Ridge())),
    # default reference of a linear skmtl model: the same model on each task alone
    (MeanClusteredRegressor(alpha=0.1, cluster_strength=5.0), None,
     IndependentTasks(MeanClusteredRegressor(alpha=0.1, cluster_strength=5.0))),
])
def test_report_matches_manual_loop(wide, estimator, reference, manual_reference):
    X, Y = wide
    report = transfer_report(estimator, X, Y, reference=reference, cv=4)
    folds = list(MultiTaskKFold(4).split(X, Y))
    expected = expected_report(fold_scores(estimator, X, Y, folds),
                               fold_scores(manual_reference, X, Y, folds))
    assert isinstance(report, pd.DataFrame)
    assert tuple(report.columns) == REPORT_FIELDS
    assert report["task"].tolist() == [0, 1, 2]
    assert report["n_observed"].tolist() == (~np.isnan(Y)).sum(axis=0).tolist()
    assert report["negative_transfer"].dtype == bool
    assert report.attrs == {"scoring": "r2", "n_splits": 4}
    assert_report(report, expected)
    np.testing.assert_allclose(report["gain"], report["score"] - report["reference_score"])
    # DataFrames: the columns name the tasks, the numbers stay the same
    frame = transfer_report(estimator, pd.DataFrame(X), pd.DataFrame(Y, columns=["u", "v", "w"]),
                            reference=reference, cv=4)
    assert frame["task"].tolist() == ["u", "v", "w"]
    assert_report(frame, expected)


def test_conflicting_tasks_are_flagged():
    """Pooling helps the related tasks and hurts the conflicting ones (seeded, fixed folds).

    On this draw every related task gains by more than one standard error and every
    conflicting task loses by more than 10 (R^2 falls below -1): far from the threshold.
    """
    X, Y = make_multitask_regression(n_samples=100, n_features=50, n_informative=20,
                                     n_tasks=10, n_conflicting=2, noise=2.0, random_state=3)
    report = transfer_report(PooledTasks(Ridge()), X, Y)
    expected = np.r_[np.zeros(8, dtype=bool), np.ones(2, dtype=bool)]
    np.testing.assert_array_equal(report["negative_transfer"], expected)
    z = (report["gain"] / report["gain_se"]).to_numpy()
    assert z[:8].min() > 1.0 and z[8:].max() < -10.0
    assert report["score"][8:].max() < -1.0


def test_long_format_in_a_pipeline(long):
    """task_ids reaches the splitter, the pipeline's final step and the metric."""
    X, y, task_ids = long
    names = np.array(["a", "b", "c"])[task_ids]
    model = make_pipeline(StandardScaler(), PooledTasks(Ridge()))
    report = transfer_report(model, X, y, task_ids=names, cv=3)
    folds = list(MultiTaskKFold(3).split(X, y, task_ids=names))
    reference = make_pipeline(StandardScaler(), IndependentTasks(Ridge()))
    expected = expected_report(fold_scores(model, X, y, folds, task_ids=names),
                               fold_scores(reference, X, y, folds, task_ids=names))
    assert report["task"].tolist() == ["a", "b", "c"]
    assert report["n_observed"].tolist() == [30, 30, 30]
    assert_report(report, expected)
    assert not sklearn.get_config()["enable_metadata_routing"]


@pytest.mark.parametrize("scoring, metric", [
    ("neg_mean_squared_error", lambda y, p, **kw: -mean_squared_error(y, p, **kw)),
    (mean_absolute_error,  # a single-task metric, applied to predict per task
     lambda y, p, task_ids, multioutput: np.array([
         mean_absolute_error(y[task_ids == t], p[task_ids == t]) for t in range(3)])),
])
def test_a_search_object_on_long_data_is_scored_with_its_best_estimator(long, scoring, metric):
    """A fitted GridSearchCV's predict takes no task_ids (a TypeError): each fold is scored
    with its best_estimator_, as the search's own predict would be."""
    X, y, task_ids = long
    search = GridSearchCV(MeanClusteredRegressor(), {"alpha": [0.01, 10.0]},
                          cv=MultiTaskKFold(3))
    reference = IndependentTasks(Ridge())
    report = transfer_report(search, X, y, task_ids=task_ids, reference=reference, cv=3,
                             scoring=scoring)
    folds = list(MultiTaskKFold(3).split(X, y, task_ids=task_ids))
    scores = []
    with sklearn.config_context(enable_metadata_routing=True):
        for train, test in folds:
            best = clone(search).fit(X[train], y[train], task_ids=task_ids[train])
            pred = best.best_estimator_.predict(X[test], task_ids=task_ids[test])
            scores.append(metric(y[test], pred, task_ids=task_ids[test],
                                 multioutput="raw_values"))
    reference_scores = fold_scores(reference, X, y, folds, task_ids=task_ids,
                                   metric=metric)
    assert_report(report, expected_report(np.asarray(scores), reference_scores))


def test_scoring_forms(wide):
    X, Y = wide
    model, reference = PooledTasks(Ridge()), IndependentTasks(Ridge())
    folds = list(MultiTaskKFold(3).split(X, Y))
    mse = transfer_report(model, X, Y, reference=reference, cv=3,
                          scoring="neg_mean_squared_error")
    expected = expected_report(-fold_scores(model, X, Y, folds, mean_squared_error),
                               -fold_scores(reference, X, Y, folds, mean_squared_error))
    assert_report(mse, expected)
    assert mse.attrs["scoring"] == "neg_mean_squared_error"
    # the same through a scorer object
    scorer = make_multitask_scorer(mean_squared_error, greater_is_better=False)
    assert_report(transfer_report(model, X, Y, reference=reference, cv=3, scoring=scorer),
                  expected)
    # a single-task metric applied per task: sklearn's r2_score gives the default report
    assert_report(transfer_report(model, X, Y, reference=reference, cv=3,
                                  scoring=sklearn.metrics.r2_score),
                  transfer_report(model, X, Y, reference=reference, cv=3))
    mae = transfer_report(model, X, Y, reference=reference, cv=3,
                          scoring=lambda y, p: -mean_absolute_error(y, p))
    assert (mae["score"] < 0).all()
    with pytest.raises(ValueError, match="not a multi-task scorer name"):
        transfer_report(model, X, Y, reference=reference, scoring="f1")


def test_classification_roc_auc():
    X, Y = make_multitask_classification(n_samples=60, n_features=5, n_tasks=3, noise=1.0,
                                         n_conflicting=1, random_state=0)
    model = PooledTasks(LogisticRegression())
    folds = list(MultiTaskKFold(3, classification=True).split(X, Y))

    def auc(Y_test, proba, multioutput):
        return roc_auc_score(Y_test, proba, multioutput=multioutput)

    report = transfer_report(model, X, Y, cv=3, scoring="roc_auc")
    expected = expected_report(
        fold_scores(model, X, Y, folds, auc, method="predict_proba"),
        fold_scores(IndependentTasks(LogisticRegression()), X, Y, folds, auc,
                    method="predict_proba"))
    assert_report(report, expected)
    # default scoring of a classifier: per-task accuracy
    accuracy = transfer_report(model, X, Y, cv=3)
    assert accuracy.attrs["scoring"] == "accuracy"
    assert bool(accuracy["negative_transfer"][2])


def test_default_reference():
    assert repr(_default_reference(PooledTasks(Ridge(alpha=3.0)))) == (
        "IndependentTasks(estimator=Ridge(alpha=3.0))")
    reference = _default_reference(make_pipeline(StandardScaler(),
                                                 BlockSparseRegressor(alpha=0.2)))
    final = reference.steps[-1][1]
    assert isinstance(final, IndependentTasks) and isinstance(final.estimator, Lasso)
    assert final.estimator.alpha == 0.2
    assert isinstance(reference.steps[0][1], StandardScaler)
    with pytest.raises(TypeError, match="reference="):
        transfer_report(Ridge(), np.zeros((10, 2)), np.zeros((10, 2)))


def test_deep_reference_is_independent_sharing():
    """Default reference of a deep model in a Pipeline: the same model, sharing='independent'."""
    pytest.importorskip("torch")
    from skmtl.deep import MultiTaskRegressor

    X, Y = make_multitask_regression(n_samples=40, n_features=4, n_informative=3, n_tasks=2,
                                     random_state=0)
    model = make_pipeline(StandardScaler(), MultiTaskRegressor(
        hidden_layer_sizes=(4,), max_epochs=2, batch_size=20, random_state=0))
    reference = _default_reference(model)
    assert reference.steps[-1][1].sharing == "independent"
    assert reference.steps[-1][1].get_params()["max_epochs"] == 2
    report = transfer_report(model, X, Y, cv=2)
    folds = list(MultiTaskKFold(2).split(X, Y))
    assert_report(report, expected_report(fold_scores(model, X, Y, folds),
                                          fold_scores(reference, X, Y, folds)))


def test_undefined_folds_warn_and_do_not_flag(wide):
    X, Y = wide
    Y = Y.copy()
    Y[4:, 0] = np.nan  # task 0 keeps 4 labels or fewer: R^2 needs 2 test labels per fold
    Y[:4, 0] = [0.0, 1.0, 2.0, 3.0]
    with pytest.warns(UndefinedMetricWarning, match="task\\(s\\) 0") as record:
        report = transfer_report(PooledTasks(Ridge()), X, Y, cv=3)
    assert np.isnan(report["gain_se"][0])
    assert not report["negative_transfer"][0]
    assert np.isfinite(report["gain_se"][1:]).all()
    with pytest.warns(UndefinedMetricWarning, match="pairwise_transfer: .*task\\(s\\) 0") as pair:
        pairwise_transfer(PooledTasks(Ridge()), X, Y, cv=3)
    # the warning names the caller's line, not one inside skmtl or scikit-learn's decorators
    assert {w.filename for w in [*record, *pair]} == {__file__}


def test_splitter_and_iterable_cv(wide):
    X, Y = wide
    Y = np.nan_to_num(Y)  # KFold needs no task to be missing from a training fold
    folds = list(KFold(3, shuffle=True, random_state=0).split(X))
    model, reference = PooledTasks(Ridge()), IndependentTasks(Ridge())
    by_splitter = transfer_report(model, X, Y, reference=reference,
                                  cv=KFold(3, shuffle=True, random_state=0))
    by_iterable = transfer_report(model, X, Y, reference=reference, cv=folds)
    expected = expected_report(fold_scores(model, X, Y, folds),
                               fold_scores(reference, X, Y, folds))
    assert_report(by_splitter, expected)
    assert_report(by_iterable, expected)


def test_n_jobs(wide):
    X, Y = wide
    model = PooledTasks(Ridge())
    pd.testing.assert_frame_equal(transfer_report(model, X, Y, n_jobs=2),
                                  transfer_report(model, X, Y, n_jobs=1))
    pd.testing.assert_frame_equal(pairwise_transfer(model, X, Y, n_jobs=2),
                                  pairwise_transfer(model, X, Y, n_jobs=1))


def test_structured_array_without_pandas(wide, monkeypatch):
    X, Y = wide
    model = PooledTasks(Ridge())
    frame = transfer_report(model, X, Y, cv=3)
    matrix = pairwise_transfer(model, X, Y, cv=3)
    real_import = builtins.__import__

    def no_pandas(name, *args, **kwargs):
        if name.split(".")[0] == "pandas":
            raise ImportError("No module named 'pandas'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    report = transfer_report(model, X, Y, cv=3)
    assert isinstance(report, np.ndarray) and report.dtype.names == REPORT_FIELDS
    assert report["negative_transfer"].dtype == bool
    assert report["n_observed"].dtype == np.int64
    for name in REPORT_FIELDS:
        np.testing.assert_array_equal(report[name], frame[name].to_numpy())
    bare = pairwise_transfer(model, X, Y, cv=3)
    assert type(bare) is np.ndarray
    np.testing.assert_array_equal(bare, matrix.to_numpy())


@pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                    reason="dask.distributed not installed")
def test_dask_backend(wide):
    distributed = pytest.importorskip("distributed")
    X, Y = wide
    model = PooledTasks(Ridge())
    expected = transfer_report(model, X, Y, cv=3)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster), parallel_config(backend="dask"):
        report = transfer_report(model, X, Y, cv=3, n_jobs=2)
    pd.testing.assert_frame_equal(report, expected)


def manual_pairwise(model, X, Y, folds, i, j):
    """Score of task i trained with j minus trained alone, by hand (wide Y)."""
    diffs = []
    for train, test in folds:
        alone_train = train[~np.isnan(Y[train, i])]
        alone_test = test[~np.isnan(Y[test, i])]
        alone = clone(model).fit(X[alone_train], Y[alone_train, i])
        s_alone = r2_score(Y[alone_test, i], alone.predict(X[alone_test]))
        both = Y[:, [i, j]]
        pair_train = train[~np.isnan(both[train]).all(axis=1)]
        pair_test = test[~np.isnan(both[test]).all(axis=1)]
        pair = clone(model).fit(X[pair_train], both[pair_train])
        s_pair = r2_score(both[pair_test], pair.predict(X[pair_test]), multioutput="raw_values")
        diffs.append(s_pair[0] - s_alone)
    return np.mean(diffs)


def test_pairwise_matches_manual(wide):
    X, Y = wide
    model = PooledTasks(Ridge())
    matrix = pairwise_transfer(model, X, Y, cv=3)
    assert matrix.shape == (3, 3)
    assert matrix.index.name == "task" and matrix.columns.name == "trained_with"
    np.testing.assert_array_equal(np.diag(matrix), 0.0)
    folds = list(MultiTaskKFold(3).split(X, Y))
    for i, j in [(0, 1), (1, 0), (2, 0)]:
        np.testing.assert_allclose(matrix.iloc[i, j], manual_pairwise(model, X, Y, folds, i, j),
                                   rtol=1e-10)
    assert matrix.iloc[2, 0] < 0  # task 2 conflicts with task 0


def test_pairwise_task_subset_and_labels(wide, long):
    X, Y = wide
    frame = pd.DataFrame(Y, columns=["x", "y", "z"])
    model = PooledTasks(Ridge())
    by_label = pairwise_transfer(model, X, frame, tasks=["z", "x"], cv=3)
    by_position = pairwise_transfer(model, X, frame, tasks=[2, 0], cv=3)
    assert by_label.index.tolist() == ["z", "x"] == by_label.columns.tolist()
    pd.testing.assert_frame_equal(by_label, by_position)
    folds = list(MultiTaskKFold(3).split(X, Y[:, [2, 0]]))
    np.testing.assert_allclose(by_label.loc["z", "x"],
                               manual_pairwise(model, X, Y, folds, 2, 0), rtol=1e-10)
    for tasks, message in [(["x", "w"], "neither a task label"), (["x", "x"], "twice"),
                           (["x"], "at least 2")]:
        with pytest.raises(ValueError, match=message):
            pairwise_transfer(model, X, frame, tasks=tasks)
    # long data: task ids are labels
    X, y, task_ids = long
    matrix = pairwise_transfer(make_pipeline(StandardScaler(), PooledTasks(Ridge())), X, y,
                               task_ids=task_ids + 10, tasks=[12, 10], cv=3)
    assert matrix.index.tolist() == [12, 10]
    assert np.isfinite(matrix.to_numpy()).all()


class FocusedRidge(RegressorMixin, BaseEstimator):
    """A stand-in for FocusedTaskRegressor: trained on all tasks, predicts the focus task.

    ``"multi_task"`` pools every task's rows into one ridge; ``"single_task"`` fits a ridge to
    the focus task's rows alone.
    """

    def __init__(self, focus_task=0, strategy="multi_task"):
        self.focus_task = focus_task
        self.strategy = strategy

    def fit(self, X, Y):
        self.tasks_ = np.arange(Y.shape[1])
        self.focus_index_ = self.focus_task
        if self.strategy == "single_task":
            rows = ~np.isnan(Y[:, self.focus_task])
            self.model_ = Ridge().fit(X[rows], Y[rows, self.focus_task])
        else:
            self.model_ = PooledTasks(Ridge()).fit(X, Y)
        return self

    def predict(self, X):
        pred = self.model_.predict(X)
        return pred if pred.ndim == 1 else pred[:, self.focus_index_]


def test_focused_estimator_is_scored_on_its_focus_task(wide):
    X, Y = wide
    report = transfer_report(FocusedRidge(focus_task=1), X, Y, cv=3)
    assert report["task"].tolist() == [1]
    folds = list(MultiTaskKFold(3).split(X, Y))

    def focus_scores(model):
        out = []
        for train, test in folds:
            fitted = clone(model).fit(X[train], Y[train])
            rows = test[~np.isnan(Y[test, 1])]
            out.append([r2_score(Y[rows, 1], fitted.predict(X[rows]))])
        return np.asarray(out)

    expected = expected_report(focus_scores(FocusedRidge(focus_task=1)),
                               focus_scores(FocusedRidge(focus_task=1, strategy="single_task")))
    assert_report(report, expected)
    assert report["n_observed"].tolist() == [int((~np.isnan(Y[:, 1])).sum())]


def test_focused_estimator_leaves_out_test_folds_without_a_focus_label():
    # 7 focus labels over 10 test folds: 3 folds hold none, and are left out as for every
    # other estimator (they raised "Found array with 0 sample(s)" after all fits)
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 4))
    Y = np.column_stack([X[:, 0] + X[:, 1], X[:, 0] + 0.8 * X[:, 1], -X[:, 2]])
    Y = Y + 0.3 * rng.normal(size=Y.shape)
    Y[7:, 0] = np.nan
    folds = list(MultiTaskKFold(10).split(X, Y))

    def focus_scores(model):
        out = []
        for train, test in folds:
            rows = test[~np.isnan(Y[test, 0])]
            if not len(rows):
                continue
            fitted = clone(model).fit(X[train], Y[train])
            out.append([-np.mean((Y[rows, 0] - fitted.predict(X[rows])) ** 2)])
        return np.asarray(out)

    with pytest.warns(UndefinedMetricWarning, match="task\\(s\\) 0 is undefined in some"):
        report = transfer_report(FocusedRidge(focus_task=0), X, Y, cv=10,
                                 scoring="neg_mean_squared_error")
    expected = expected_report(focus_scores(FocusedRidge(focus_task=0)),
                               focus_scores(FocusedRidge(focus_task=0, strategy="single_task")))
    assert len(focus_scores(FocusedRidge(focus_task=0))) == 7
    assert_report(report, expected)


def test_pairwise_transfer_refuses_a_focused_estimator_by_name(wide):
    # it raised "task_ids contains task(s) not seen during fit: 0" though no task_ids was passed
    X, Y = wide
    with pytest.raises(TypeError, match="FocusedRidge predicts its focus task only. Use "
                                        "transfer_report"):
        pairwise_transfer(make_pipeline(StandardScaler(), FocusedRidge(focus_task=0)), X, Y)
