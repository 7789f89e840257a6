"""skmtl.model_selection.cross_val_predict: against explicit fold loops and scikit-learn's."""

import numpy as np
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, ShuffleSplit
from sklearn.model_selection import cross_val_predict as sklearn_cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmtl import IndependentTasks
from skmtl.datasets import make_multitask_classification, make_multitask_regression
from skmtl.linear import HierarchicalClassifier, MeanClusteredClassifier, MeanClusteredRegressor
from skmtl.model_selection import MultiTaskKFold, cross_val_predict


@pytest.fixture(scope="module")
def long():
    return make_multitask_regression(n_samples=30, n_features=6, n_tasks=3, noise=0.5,
                                     format="long", random_state=1)


@pytest.fixture(scope="module")
def wide_labels():
    X, Y = make_multitask_classification(n_samples=80, n_features=5, n_tasks=3,
                                         missing_rate=0.3, random_state=0)
    return X, Y


def loop(model, X, y, folds, method="predict", task_ids=None):
    """Each row's prediction by the model of the fold that held it out, by hand."""
    out = None
    for train, test in folds:
        kw = {} if task_ids is None else {"task_ids": task_ids[train]}
        fitted = sklearn.clone(model).fit(X[train], y[train], **kw)
        kw = {} if task_ids is None else {"task_ids": task_ids[test]}
        pred = getattr(fitted, method)(X[test], **kw)
        if isinstance(pred, list):
            out = [np.empty((len(y), p.shape[1])) for p in pred] if out is None else out
            for o, p in zip(out, pred):
                o[test] = p
        else:
            out = np.empty((len(y), *pred.shape[1:]), dtype=pred.dtype) if out is None else out
            out[test] = pred
    return out


@pytest.mark.parametrize("model", [IndependentTasks(Ridge(alpha=0.1)),
                                   MeanClusteredRegressor(alpha=0.01, cluster_strength=5.0),
                                   make_pipeline(StandardScaler(), MeanClusteredRegressor())],
                         ids=["independent", "mean_clustered", "pipeline"])
def test_long_data_one_prediction_per_row(long, model):
    X, y, task_ids = long
    pred = cross_val_predict(model, X, y, task_ids=task_ids, cv=3)
    assert pred.shape == (len(y),)
    folds = list(MultiTaskKFold(3).split(X, y, task_ids=task_ids))
    with sklearn.config_context(enable_metadata_routing=True):
        np.testing.assert_allclose(pred, loop(model, X, y, folds, task_ids=task_ids),
                                   rtol=1e-12)
        # scikit-learn's gives every task for every row: the row's own column is ours
        wide = sklearn_cross_val_predict(model, X, y, cv=MultiTaskKFold(3),
                                         params={"task_ids": task_ids})
    assert wide.shape == (len(y), 3)
    column = np.unique(task_ids, return_inverse=True)[1]
    np.testing.assert_allclose(pred, wide[np.arange(len(y)), column], rtol=1e-12)


def test_wide_predict_every_task_for_every_row():
    X, Y = make_multitask_regression(n_samples=60, n_features=8, n_tasks=3, noise=1.0,
                                     missing_rate=0.2, random_state=0)
    model = MeanClusteredRegressor(alpha=0.1)
    pred = cross_val_predict(model, X, Y, cv=KFold(4))
    assert pred.shape == Y.shape and np.all(np.isfinite(pred))
    np.testing.assert_allclose(pred, loop(model, X, Y, KFold(4).split(X)), rtol=1e-12)


@pytest.mark.parametrize("model", [IndependentTasks(LogisticRegression()),
                                   MeanClusteredClassifier(alpha=0.1),
                                   HierarchicalClassifier(random_slopes=None)],
                         ids=["independent", "mean_clustered", "hierarchical"])
def test_wide_probabilities_with_missing_labels(wide_labels, model):
    X, Y = wide_labels
    assert np.isnan(Y).any()
    proba = cross_val_predict(model, X, Y, cv=4, method="predict_proba")
    # two columns per binary task: the missing label is not a class
    assert [p.shape for p in proba] == [(len(Y), 2)] * 3
    folds = list(MultiTaskKFold(4, classification=True).split(X, Y))
    for ours, reference in zip(proba, loop(model, X, Y, folds, method="predict_proba")):
        np.testing.assert_allclose(ours, reference, rtol=1e-10)
        np.testing.assert_allclose(ours.sum(axis=1), 1.0)


def test_scikit_learn_trains_on_the_missing_label_as_a_class(wide_labels):
    # why the function exists: the failure it avoids, as documented in the FAQ
    X, Y = wide_labels
    proba = sklearn_cross_val_predict(IndependentTasks(LogisticRegression()), X, Y,
                                      cv=MultiTaskKFold(4, classification=True),
                                      method="predict_proba")
    assert [p.shape[1] for p in proba] == [3, 3, 3]


def test_long_probabilities(long):
    X, y, task_ids = long
    labels = (y > np.median(y)).astype(int)
    model = MeanClusteredClassifier(alpha=0.1)
    proba = cross_val_predict(model, X, labels, task_ids=task_ids, cv=3,
                              method="predict_proba")
    assert proba.shape == (len(y), 2)
    folds = list(MultiTaskKFold(3, classification=True).split(X, labels, task_ids=task_ids))
    np.testing.assert_allclose(
        proba, loop(model, X, labels, folds, method="predict_proba", task_ids=task_ids),
        rtol=1e-10)


def test_parallel_equals_serial(long):
    X, y, task_ids = long
    model = MeanClusteredRegressor(alpha=0.1)
    np.testing.assert_array_equal(
        cross_val_predict(model, X, y, task_ids=task_ids, cv=3, n_jobs=2),
        cross_val_predict(model, X, y, task_ids=task_ids, cv=3))


def test_folds_must_partition_the_rows(long):
    X, y, task_ids = long
    with pytest.raises(ValueError, match="partition the rows.*ShuffleSplit"):
        cross_val_predict(MeanClusteredRegressor(), X, y, task_ids=task_ids,
                          cv=ShuffleSplit(3, random_state=0))


def test_a_regressor_has_no_probabilities(long):
    X, y, task_ids = long
    with pytest.raises(AttributeError, match="MeanClusteredRegressor has no predict_proba"):
        cross_val_predict(MeanClusteredRegressor(), X, y, task_ids=task_ids,
                          method="predict_proba")
    with pytest.raises(ValueError, match="method"):
        cross_val_predict(MeanClusteredRegressor(), X, y, task_ids=task_ids, method="score")


def test_folds_with_different_classes_are_refused():
    # three classes in task 1, one of them in three rows only: unstratified folds leave it
    # out of a training fold
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    Y = np.column_stack([(X[:, 0] > 0).astype(float), np.where(X[:, 1] > 0, 1.0, 0.0)])
    Y[:3, 1] = 2.0
    model = IndependentTasks(LogisticRegression())
    with pytest.raises(ValueError, match="different classes for task 1"):
        cross_val_predict(model, X, Y, cv=KFold(3), method="predict_proba")


def test_a_focused_estimator_on_long_data_predicts_its_focus_task_for_every_row(long):
    """FocusedTask* predicts its focus task and takes no task_ids at predict: each row gets
    the focus task's prediction of the model that did not see it, as on wide data (before, a
    TypeError: predict() got an unexpected keyword argument 'task_ids')."""
    pytest.importorskip("torch")
    from skmtl.deep import FocusedTaskRegressor

    X, y, task_ids = long
    model = FocusedTaskRegressor(focus_task=1, hidden_layer_sizes=(4,), max_epochs=2,
                                 early_stopping=False, random_state=0)
    pred = cross_val_predict(model, X, y, task_ids=task_ids, cv=3)
    assert pred.shape == (len(y),) and pred.dtype == np.float64
    expected = np.empty(len(y))
    for train, test in MultiTaskKFold(3).split(X, y, task_ids=task_ids):
        fitted = sklearn.clone(model).fit(X[train], y[train], task_ids=task_ids[train])
        expected[test] = fitted.predict(X[test])
    np.testing.assert_array_equal(pred, expected)
