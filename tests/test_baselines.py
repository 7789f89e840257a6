"""IndependentTasks and PooledTasks against per-task and pooled scikit-learn references."""

import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn import metrics as skm
from sklearn.linear_model import LassoCV, LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, GroupKFold, KFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from skmtl import IndependentTasks, PooledTasks, UnknownTaskError
from skmtl.metrics import make_multitask_scorer


@pytest.fixture
def wide_data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(80, 4))
    Y = X @ rng.normal(size=(4, 3)) + 0.1 * rng.normal(size=(80, 3))
    Y[rng.uniform(size=Y.shape) < 0.3] = np.nan
    return X, Y


def to_long(Y):
    rows, tasks = np.nonzero(~np.isnan(Y))
    return rows, Y[rows, tasks], tasks


def test_independent_ridge_equals_a_ridge_per_task_on_observed_rows(wide_data):
    X, Y = wide_data
    model = IndependentTasks(Ridge(alpha=0.7)).fit(X, Y)
    for t in range(Y.shape[1]):
        observed = ~np.isnan(Y[:, t])
        reference = Ridge(alpha=0.7).fit(X[observed], Y[observed, t])
        np.testing.assert_array_equal(model.estimators_[t].coef_, reference.coef_)
        np.testing.assert_array_equal(model.estimators_[t].intercept_, reference.intercept_)
    assert model.predict(X).dtype == np.float64


def test_independent_long_format_gives_the_wide_fit(wide_data):
    X, Y = wide_data
    rows, y, task_ids = to_long(Y)
    wide = IndependentTasks(Ridge()).fit(X, Y)
    long = IndependentTasks(Ridge()).fit(X[rows], y, task_ids=task_ids)
    for est_wide, est_long in zip(wide.estimators_, long.estimators_):
        np.testing.assert_allclose(est_long.coef_, est_wide.coef_, rtol=1e-12)
    np.testing.assert_allclose(long.predict(X[rows], task_ids=task_ids),
                               wide.predict(X)[rows, task_ids])


def test_independent_with_n_jobs_matches_serial(wide_data):
    X, Y = wide_data
    serial = IndependentTasks(Ridge()).fit(X, Y).predict(X)
    parallel = IndependentTasks(Ridge(), n_jobs=2).fit(X, Y).predict(X)
    np.testing.assert_array_equal(serial, parallel)


def test_pooled_regressor_equals_one_model_on_stacked_observed_rows(wide_data):
    X, Y = wide_data
    rows, y, _ = to_long(Y)
    pooled = PooledTasks(LinearRegression()).fit(X, Y)
    reference = LinearRegression().fit(X[rows], y)
    np.testing.assert_allclose(pooled.estimator_.coef_, reference.coef_, rtol=1e-10)
    pred = pooled.predict(X)
    assert pred.shape == (80, 3)
    np.testing.assert_allclose(pred, np.repeat(reference.predict(X)[:, None], 3, axis=1))


def test_score_is_the_mean_of_per_task_r2_on_observed_labels(wide_data):
    X, Y = wide_data
    model = IndependentTasks(Ridge()).fit(X, Y)
    pred = model.predict(X)
    expected = np.mean([
        sklearn.metrics.r2_score(Y[~np.isnan(Y[:, t]), t], pred[~np.isnan(Y[:, t]), t])
        for t in range(3)
    ])
    assert model.score(X, Y) == pytest.approx(expected, rel=1e-12)


def test_classifiers_keep_per_task_string_classes():
    rng = np.random.RandomState(1)
    X = rng.normal(size=(60, 3))
    Y = np.empty((60, 2), dtype=object)
    Y[:, 0] = np.where(X[:, 0] > 0, "spam", "ham")
    Y[:, 1] = np.where(X[:, 1] > 0.3, 2, np.where(X[:, 1] < -0.3, 0, 1))
    Y[::7, 1] = None
    model = IndependentTasks(LogisticRegression()).fit(X, Y)
    assert model.classes_[0].tolist() == ["ham", "spam"]
    assert model.classes_[1].tolist() == [0, 1, 2]
    proba = model.predict_proba(X)
    assert [p.shape for p in proba] == [(60, 2), (60, 3)]
    pred = model.predict(X)
    assert pred.shape == (60, 2) and pred.dtype == object
    assert set(pred[:, 0]) <= {"ham", "spam"} and set(pred[:, 1]) <= {0, 1, 2}
    observed = Y[:, 1] != None  # noqa: E711
    expected = np.mean([np.mean(pred[:, 0] == Y[:, 0]),
                        np.mean(pred[observed, 1] == Y[observed, 1])])
    assert model.score(X, Y) == pytest.approx(expected)
    with pytest.raises(ValueError, match="same number of classes"):
        model.predict_proba(X[:2], task_ids=[0, 1])
    np.testing.assert_allclose(model.predict_proba(X[:3], task_ids=[1, 1, 1]), proba[1][:3])


def test_pooled_classifier_restricts_probabilities_to_each_task_classes():
    rng = np.random.RandomState(2)
    X = rng.normal(size=(90, 2))
    Y = np.empty((90, 2), dtype=object)
    Y[:, 0] = np.where(X[:, 0] > 0, "a", "b")
    Y[:, 1] = np.where(X[:, 0] > 0, "a", "c")
    model = PooledTasks(LogisticRegression()).fit(X, Y)
    assert model.estimator_.classes_.tolist() == ["a", "b", "c"]
    proba = model.predict_proba(X)
    for p in proba:
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
    full = model.estimator_.predict_proba(X)
    np.testing.assert_allclose(proba[1], full[:, [0, 2]] / full[:, [0, 2]].sum(1, keepdims=True))
    pred = model.predict(X)
    assert set(pred[:, 0]) <= {"a", "b"} and set(pred[:, 1]) <= {"a", "c"}


def test_pooled_without_predict_proba_needs_shared_classes():
    X = np.arange(8.0).reshape(4, 2)
    Y = np.array([["a", "x"], ["b", "y"], ["a", "x"], ["b", "y"]], dtype=object)
    with pytest.raises(ValueError, match="with predict_proba when tasks have different classes"):
        PooledTasks(LinearSVC()).fit(X, Y)
    shared = np.array([[0, 1], [1, 0], [0, 1], [1, 0]])
    model = PooledTasks(LinearSVC()).fit(X, shared)
    assert not hasattr(model, "predict_proba")
    assert model.predict(X).shape == (4, 2)


def test_task_failing_in_wrapped_estimator_is_named():
    X = np.arange(12.0).reshape(6, 2)
    Y = np.array([[0, 1], [1, 1], [0, 1], [1, 1], [0, 1], [1, 1]])
    with pytest.raises(ValueError, match="Task 1: .*class"):
        IndependentTasks(LogisticRegression()).fit(X, Y)


def test_dataframe_target_names_tasks_and_score_checks_columns(wide_data):
    X, Y = wide_data
    frame = pd.DataFrame(Y, columns=["maths", "reading", "art"])
    model = IndependentTasks(Ridge()).fit(X, frame)
    assert model.tasks_.tolist() == ["maths", "reading", "art"]
    assert model.predict(X[:2], task_ids=["art", "maths"]).shape == (2,)
    with pytest.raises(UnknownTaskError, match="'music'"):
        model.predict(X[:1], task_ids=["music"])
    with pytest.raises(ValueError, match="do not match the tasks seen in fit"):
        model.score(X, frame[["art", "maths", "reading"]])


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_task_fit_error_carries_its_task_and_classes(n_jobs):
    """The error of a task that misses a class names it and keeps the task, the classes seen
    and the problem's as attributes (skmtl compare names the task from them), also through
    the pickling of joblib's worker processes."""
    from skmtl.baselines import _TaskFitError

    X = np.random.RandomState(0).normal(size=(8, 2))
    Y = np.array([[0, 1], [1, 1], [0, 1], [1, 1], [0, 0], [1, 1], [0, 1], [1, 1]], float)
    Y[4, 1] = np.nan  # task 1 keeps class 1 only, of the problem's classes 0 and 1
    with pytest.raises(_TaskFitError, match="Task 1: only the class") as caught:
        IndependentTasks(LogisticRegression(), n_jobs=n_jobs).fit(X, Y)
    error = caught.value
    assert (error.task, error.seen, error.classes, error.n_labels) == (1, [1.0], [0.0, 1.0], 7)
    assert "2 classes" in error.detail


@pytest.mark.parametrize("Model", [IndependentTasks, PooledTasks])
def test_score_names_a_wrong_number_of_task_columns(wide_data, Model):
    """A wide Y with more or fewer task columns than in fit: the error is about the user's Y
    (it said that y_pred must have the shape of y_true)."""
    X, Y = wide_data
    model = Model(Ridge()).fit(X, Y)
    for columns in (2, 4):
        Y_other = np.resize(Y, (Y.shape[0], columns))
        with pytest.raises(ValueError, match=f"y has {columns} task column.*fitted on 3 tasks"):
            model.score(X, Y_other)



@pytest.mark.parametrize("Model", [IndependentTasks, PooledTasks])
def test_score_after_a_long_fit_checks_a_wide_y_as_after_a_wide_fit(wide_data, Model):
    """A model fitted on long data scored on a wide Y: a DataFrame's columns must be tasks_
    (it scored swapped columns against the wrong tasks, and accepted unknown names), an
    array's column count n_tasks_."""
    X, Y = wide_data
    Y[:, 1] *= -5.0  # swapping the tasks must change the score
    frame = pd.DataFrame(Y, columns=["math", "art", "music"])
    long = frame.stack().dropna()
    rows = long.index.get_level_values(0).to_numpy()
    task_ids = long.index.get_level_values(1).to_numpy()
    model = Model(Ridge()).fit(X[rows], long.to_numpy(), task_ids=task_ids)
    assert model.tasks_.tolist() == ["art", "math", "music"]
    ordered = frame[["art", "math", "music"]]
    pred = model.predict(X)
    expected = np.mean([
        skm.r2_score(ordered[t][observed], pred[observed.to_numpy(), j])
        for j, t in enumerate(model.tasks_) for observed in [ordered[t].notna()]
    ])
    assert model.score(X, ordered) == pytest.approx(expected, rel=1e-12)
    assert make_multitask_scorer("r2")(model, X, ordered) == pytest.approx(expected, rel=1e-12)
    for wrong in (frame, ordered.set_axis(["a", "b", "c"], axis=1), ordered[["art", "math"]]):
        with pytest.raises(ValueError, match="do not match the tasks seen in fit"):
            model.score(X, wrong)
    with pytest.raises(ValueError, match="y has 2 task column.*fitted on 3 tasks"):
        model.score(X, Y[:, :2])

def test_wrong_number_of_features_and_nan_in_x_raise(wide_data):
    X, Y = wide_data
    model = IndependentTasks(Ridge()).fit(X, Y)
    with pytest.raises(ValueError, match="X has 3 features, but IndependentTasks is expecting 4"):
        model.predict(X[:, :3])
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        IndependentTasks(Ridge()).fit(X_nan, Y)


def test_task_ids_on_a_single_task_fit_raise(wide_data):
    X, Y = wide_data
    model = IndependentTasks(Ridge()).fit(X, np.nan_to_num(Y[:, 0]))
    with pytest.raises(ValueError, match="fitted on a single task"):
        model.predict(X, task_ids=np.zeros(len(X)))


def test_grid_search_pipeline_on_wide_y_with_missing_labels(wide_data):
    X, Y = wide_data
    pipe = Pipeline([("scale", StandardScaler()), ("model", IndependentTasks(Ridge()))])
    cv = KFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(pipe, {"model__estimator__alpha": [0.01, 100.0]}, cv=cv,
                          error_score="raise").fit(X, Y)
    assert search.best_params_ == {"model__estimator__alpha": 0.01}
    train, test = next(cv.split(X))
    manual = pipe.set_params(model__estimator__alpha=0.01).fit(X[train], Y[train])
    assert search.cv_results_["split0_test_score"][0] == pytest.approx(
        manual.score(X[test], Y[test]))


def test_grid_search_on_long_data_routes_task_ids(wide_data):
    X, Y = wide_data
    rows, y, task_ids = to_long(Y)
    X_long = X[rows]
    pipe = Pipeline([("scale", StandardScaler()), ("model", IndependentTasks(Ridge()))])
    cv = KFold(3, shuffle=True, random_state=0)
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(pipe, {"model__estimator__alpha": [0.1, 10.0]}, cv=cv,
                              error_score="raise").fit(X_long, y, task_ids=task_ids)
        train, test = next(cv.split(X_long))
        manual = pipe.set_params(model__estimator__alpha=search.best_params_[
            "model__estimator__alpha"]).fit(X_long[train], y[train], task_ids=task_ids[train])
        expected = manual.score(X_long[test], y[test], task_ids=task_ids[test])
        best = search.best_index_
        assert search.cv_results_["split0_test_score"][best] == pytest.approx(expected)
        scores = cross_validate(pipe, X_long, y, params={"task_ids": task_ids}, cv=cv)
        assert np.all(np.isfinite(scores["test_score"]))


def test_scoring_long_data_without_routing_raises_instead_of_guessing(wide_data):
    X, Y = wide_data
    rows, y, task_ids = to_long(Y)
    pipe = Pipeline([("model", IndependentTasks(Ridge()))])
    with sklearn.config_context(enable_metadata_routing=False):
        search = GridSearchCV(pipe, {"model__estimator__alpha": [1.0]}, cv=3,
                              error_score="raise")
        with pytest.raises(ValueError, match="pass task_ids"):
            search.fit(X[rows], y, model__task_ids=task_ids)


def test_pooled_classifier_with_numeric_and_string_tasks():
    # one task labelled 0 / 1, another "red" / "blue": scikit-learn refuses such a mixed target,
    # so the pooled model sees the labels as strings and each task gets its own classes back
    rng = np.random.RandomState(0)
    X = rng.normal(size=(80, 2))
    Y = np.empty((80, 2), dtype=object)
    Y[:, 0] = (X[:, 0] > 0).astype(int)
    Y[:, 1] = np.where(X[:, 0] > 0, "red", "blue")
    model = PooledTasks(LogisticRegression()).fit(X, Y)
    assert [c.tolist() for c in model.classes_] == [[0, 1], ["blue", "red"]]
    pred = model.predict(X)
    assert set(pred[:, 0]) <= {0, 1} and set(pred[:, 1]) <= {"red", "blue"}
    assert np.mean(pred[:, 0] == Y[:, 0]) > 0.9 and np.mean(pred[:, 1] == Y[:, 1]) > 0.9
    proba = model.predict_proba(X)
    assert [p.shape for p in proba] == [(80, 2), (80, 2)]
    np.testing.assert_allclose(proba[0].sum(axis=1), 1.0)


def test_pooled_shared_predicts_a_new_task_with_the_pooled_model(wide_data):
    X, Y = wide_data
    model = PooledTasks(Ridge(alpha=0.3), unknown_task="shared").fit(X, Y)
    pred = model.predict(X[:6], task_ids=[0, "new", 2, "other", 1, "new"])
    reference = Ridge(alpha=0.3).fit(*_stacked(X, Y)).predict(X[:6])
    np.testing.assert_allclose(pred, reference)
    with pytest.raises(UnknownTaskError, match="'new'.*unknown_task='shared'"):
        model.set_params(unknown_task="error").predict(X[:2], task_ids=[0, "new"])


def _stacked(X, Y):
    rows, tasks = np.nonzero(~np.isnan(Y))
    return X[rows], Y[rows, tasks]


def test_pooled_classifier_fits_a_one_class_task_and_shares_its_classes():
    rng = np.random.RandomState(3)
    X = rng.normal(size=(80, 3))
    Y = np.empty((80, 3), dtype=object)
    Y[:, 0] = np.where(X[:, 0] > 0, "yes", "no")
    Y[:, 1] = np.where(X[:, 1] > 0, "yes", "no")
    Y[:, 2] = "yes"  # this task saw one class only
    Y[::5, 2] = None
    model = PooledTasks(LogisticRegression(), unknown_task="shared").fit(X, Y)
    assert [c.tolist() for c in model.classes_] == [["no", "yes"]] * 3
    pooled = LogisticRegression().fit(*_stacked(X, np.where(Y == None, np.nan,  # noqa: E711
                                                            Y == "yes").astype(float)))
    expected = pooled.predict_proba(X)
    for proba in model.predict_proba(X):
        np.testing.assert_allclose(proba, expected, rtol=1e-6)
    # every task, and a new one, in one call: the rows of each get the pooled probabilities
    mixed = model.predict_proba(X[:4], task_ids=[2, 0, "new", 1])
    np.testing.assert_allclose(mixed, expected[:4], rtol=1e-6)
    assert model.predict(X[:4], task_ids=[2, 2, "new", "new"]).tolist() == [
        ["no", "yes"][k] for k in expected[:4].argmax(axis=1)]


def test_independent_names_the_one_class_task_and_its_class():
    X = np.arange(16.0).reshape(8, 2)
    Y = np.array([["a", "b"], ["b", "b"]] * 4, dtype=object)
    with pytest.raises(ValueError, match=r"Task 1: only the class\(es\) \['b'\] among its 8 "
                                         r"training labels, of the problem's classes "
                                         r"\['a', 'b'\]"):
        IndependentTasks(LogisticRegression()).fit(X, Y)


# -- metadata routed to the wrapped estimator's fit ---------------------------------------------
def weighted_ridge():
    return Ridge(alpha=0.7).set_fit_request(sample_weight=True)


def test_independent_tasks_routes_sample_weight_to_each_task(wide_data):
    X, Y = wide_data
    weight = np.random.default_rng(1).uniform(0.1, 3.0, size=len(X))
    with sklearn.config_context(enable_metadata_routing=True):
        model = IndependentTasks(weighted_ridge()).fit(X, Y, sample_weight=weight)
        # long data: the weight of each (row, task) label goes with it
        rows, y, tasks = to_long(Y)
        long = IndependentTasks(weighted_ridge()).fit(X[rows], y, task_ids=tasks,
                                                      sample_weight=weight[rows])
    for t in range(Y.shape[1]):
        observed = ~np.isnan(Y[:, t])
        reference = Ridge(alpha=0.7).fit(X[observed], Y[observed, t],
                                         sample_weight=weight[observed])
        np.testing.assert_allclose(model.estimators_[t].coef_, reference.coef_, rtol=1e-12)
        np.testing.assert_allclose(long.estimators_[t].coef_, reference.coef_, rtol=1e-12)
        unweighted = Ridge(alpha=0.7).fit(X[observed], Y[observed, t])
        assert not np.allclose(model.estimators_[t].coef_, unweighted.coef_)


def test_pooled_tasks_routes_sample_weight_to_the_pooled_rows(wide_data):
    X, Y = wide_data
    weight = np.random.default_rng(2).uniform(0.1, 3.0, size=len(X))
    with sklearn.config_context(enable_metadata_routing=True):
        model = PooledTasks(weighted_ridge()).fit(X, Y, sample_weight=weight)
        y0 = X @ np.arange(1.0, 5.0)  # a single complete task: one label per row
        single = PooledTasks(weighted_ridge()).fit(X, y0, sample_weight=weight)
    rows, y, _ = to_long(Y)
    reference = Ridge(alpha=0.7).fit(X[rows], y, sample_weight=weight[rows])
    np.testing.assert_allclose(model.estimator_.coef_, reference.coef_, rtol=1e-12)
    reference = Ridge(alpha=0.7).fit(X, y0, sample_weight=weight)
    np.testing.assert_allclose(single.estimator_.coef_, reference.coef_, rtol=1e-12)


def test_fit_metadata_needs_metadata_routing(wide_data):
    X, Y = wide_data
    with pytest.raises(ValueError, match="enable_metadata_routing=True"):
        IndependentTasks(Ridge()).fit(X, Y, sample_weight=np.ones(len(X)))
    # with routing, a wrapped estimator that did not request it is an error too
    with sklearn.config_context(enable_metadata_routing=True):
        with pytest.raises(ValueError, match="sample_weight"):
            PooledTasks(Ridge()).fit(X, Y, sample_weight=np.ones(len(X)))


def test_independent_tasks_gives_each_task_its_rows_groups(wide_data):
    """A search that splits by groups (LassoCV with GroupKFold) inside each task's fit gets
    the groups of that task's rows."""
    X, Y = wide_data
    groups = np.arange(len(X)) // 4
    inner = LassoCV(cv=GroupKFold(3), alphas=[0.001, 0.01, 0.1, 1.0])
    model = IndependentTasks(inner)
    assert model.get_metadata_routing().consumes("fit", ["groups"]) == {"groups"}
    with sklearn.config_context(enable_metadata_routing=True):
        model.fit(X, Y, groups=groups)
        for t in range(Y.shape[1]):
            observed = ~np.isnan(Y[:, t])
            reference = sklearn.clone(inner).fit(X[observed], Y[observed, t],
                                                 groups=groups[observed])
            np.testing.assert_allclose(model.estimators_[t].mse_path_, reference.mse_path_,
                                       rtol=1e-12)
            assert model.estimators_[t].alpha_ == reference.alpha_


# -- the wrapped estimator gets the task's labels and X as given, as a fit by hand -------------
def _binary_tasks(labels):
    """X and a wide Y of two binary tasks labelled ``labels`` (an object array, None missing)."""
    rng = np.random.RandomState(5)
    X = rng.normal(size=(80, 2))
    Y = np.empty((80, 2), dtype=object)
    for t in range(2):
        Y[:, t] = np.where(X[:, t] + rng.logistic(size=80) > 0, labels[1], labels[0])
    Y[:6, 1] = None
    return X, Y


def _long(X, Y):
    rows, tasks = np.nonzero(pd.notna(Y))
    return X[rows], Y[rows, tasks], tasks


@pytest.mark.parametrize("labels, class_weight", [
    ((1, 2), {1: 10.0}),
    ((1.0, 2.0), {1: 10.0, 2: 1.0}),
    (("no", "yes"), {"no": 10.0, "yes": 1.0}),
])
@pytest.mark.parametrize("layout", ["wide", "long"])
def test_independent_class_weight_is_keyed_by_the_users_labels(labels, class_weight, layout):
    """A class_weight dict weights the user's classes, as a fit per task by hand does (the
    clones were fitted on class codes: the weight of label 1 went to the second class, and
    string keys raised)."""
    X, Y = _binary_tasks(labels)
    if all(isinstance(v, float) for v in labels):
        Y = np.where(Y == None, np.nan, Y).astype(float)  # noqa: E711
    X_fit, y, task_ids = _long(X, Y) if layout == "long" else (X, Y, None)
    model = IndependentTasks(LogisticRegression(class_weight=class_weight))
    model.fit(X_fit, y, task_ids=task_ids)
    pred, proba = model.predict(X), model.predict_proba(X)
    for t in range(2):
        observed = ~pd.isna(Y[:, t])
        y_t = np.asarray(Y[observed, t].tolist())  # the task's labels, as a user has them
        hand = LogisticRegression(class_weight=class_weight).fit(X[observed], y_t)
        np.testing.assert_allclose(proba[t], hand.predict_proba(X), rtol=0, atol=1e-12)
        assert pred[:, t].tolist() == hand.predict(X).tolist()
        assert model.classes_[t].tolist() == hand.classes_.tolist() == list(labels)
        np.testing.assert_array_equal(model.estimators_[t].classes_, hand.classes_)
        own = model.predict(X[:5], task_ids=np.full(5, t)) if layout == "long" else pred[:5, t]
        assert own.tolist() == hand.predict(X[:5]).tolist()
    # the weight makes the first class the most predicted, as by hand
    assert np.mean(pred[:, 0] == labels[0]) > 0.5


def test_independent_one_class_task_error_names_the_users_label():
    X = np.random.RandomState(0).normal(size=(9, 2))
    Y = np.empty((9, 2), dtype=object)
    Y[:, 0] = ["a", "b", "c"] * 3
    Y[:, 1] = "yes"  # a multiclass problem: this task's only class is its own
    with pytest.raises(ValueError, match=r"Task 1: .*only one class.*'yes'"):
        IndependentTasks(LogisticRegression()).fit(X, Y)


def test_independent_fitted_on_one_class_of_two_gives_both_probability_columns():
    from sklearn.dummy import DummyClassifier

    X = np.arange(16.0).reshape(8, 2)
    Y = np.array([["a", "b"], ["b", "b"]] * 4, dtype=object)
    model = IndependentTasks(DummyClassifier(strategy="prior")).fit(X, Y)
    assert [c.tolist() for c in model.classes_] == [["a", "b"], ["a", "b"]]
    assert model.estimators_[1].classes_.tolist() == ["b"]
    np.testing.assert_array_equal(model.predict_proba(X)[1], np.tile([0.0, 1.0], (8, 1)))
    assert model.predict(X)[:, 1].tolist() == ["b"] * 8


def _nan_pipeline():
    from sklearn.impute import SimpleImputer

    return Pipeline([("impute", SimpleImputer()), ("ridge", Ridge(alpha=0.3))])


@pytest.mark.parametrize("layout", ["wide", "long"])
def test_an_imputer_in_the_wrapped_pipeline_takes_nan_in_x(wide_data, layout):
    """NaN in X reaches the wrapped Pipeline's imputer (it was refused at the door, as
    scikit-learn tags such a pipeline allow_nan=False), in both wrappers."""
    X, Y = wide_data
    X = X.copy()
    X[::9, 1] = np.nan
    rows, y, task_ids = to_long(Y)
    X_fit, y_fit = (X[rows], y) if layout == "long" else (X, Y)
    task_ids = task_ids if layout == "long" else None
    model = IndependentTasks(_nan_pipeline()).fit(X_fit, y_fit, task_ids=task_ids)
    pooled = PooledTasks(_nan_pipeline()).fit(X_fit, y_fit, task_ids=task_ids)
    for t in range(Y.shape[1]):
        observed = ~np.isnan(Y[:, t])
        hand = _nan_pipeline().fit(X[observed], Y[observed, t])
        np.testing.assert_allclose(model.predict(X)[:, t], hand.predict(X), rtol=1e-12)
    hand = _nan_pipeline().fit(X[rows], y)
    np.testing.assert_allclose(pooled.predict(X), np.repeat(hand.predict(X)[:, None], 3, 1),
                               rtol=1e-12)
    # without an imputer, the wrapped estimator's refusal, naming the task
    with pytest.raises(ValueError, match=r"Task \d: Input X contains NaN"):
        IndependentTasks(Ridge()).fit(X_fit, y_fit, task_ids=task_ids)


def _frame_pipeline():
    from sklearn.compose import make_column_transformer
    from sklearn.preprocessing import OneHotEncoder

    columns = make_column_transformer((OneHotEncoder(), ["city"]), (StandardScaler(), ["p", "q"]))
    return Pipeline([("columns", columns), ("ridge", Ridge(alpha=0.3))])


@pytest.mark.parametrize("Model", [IndependentTasks, PooledTasks])
@pytest.mark.parametrize("layout", ["wide", "long"])
def test_a_dataframe_reaches_the_wrapped_estimator(wide_data, Model, layout):
    """A ColumnTransformer selecting columns by name, with a OneHotEncoder on a text column,
    gets the DataFrame (X was turned into a float array first: both failed)."""
    X, Y = wide_data
    frame = pd.DataFrame(X[:, :3], columns=["p", "q", "r"])
    frame["city"] = np.random.RandomState(0).choice(["Oslo", "Rome", "Lima"], len(frame))
    rows, y, task_ids = to_long(Y)
    if layout == "long":
        fit_frame = frame.iloc[rows].reset_index(drop=True)
        model = Model(_frame_pipeline()).fit(fit_frame, y, task_ids=task_ids)
    else:
        model = Model(_frame_pipeline()).fit(frame, Y)
    assert model.n_features_in_ == 4
    assert model.feature_names_in_.tolist() == ["p", "q", "r", "city"]
    pred = model.predict(frame)
    for t in range(Y.shape[1]):
        observed = ~np.isnan(Y[:, t])
        fit_rows = frame[observed] if Model is IndependentTasks else frame.iloc[rows]
        fit_y = Y[observed, t] if Model is IndependentTasks else y
        hand = _frame_pipeline().fit(fit_rows, fit_y)
        np.testing.assert_allclose(pred[:, t], hand.predict(frame), rtol=1e-10)
    own = model.predict(frame.iloc[:6], task_ids=[2, 0, 1, 1, 0, 2])
    np.testing.assert_allclose(own, pred[np.arange(6), [2, 0, 1, 1, 0, 2]], rtol=1e-12)
    with pytest.raises(ValueError, match="feature names should match"):
        model.predict(frame[["q", "p", "r", "city"]])


class _NoNameCheck(Ridge):
    """A regressor that predicts without checking X (no ``n_features_in_`` either)."""

    def fit(self, X, y):
        self.coef_ = np.linalg.lstsq(np.asarray(X), y, rcond=None)[0]
        return self

    def predict(self, X):
        return np.asarray(X) @ self.coef_


@pytest.mark.parametrize("Model", [IndependentTasks, PooledTasks])
@pytest.mark.parametrize("names_in_fit", [True, False])
def test_feature_names_present_or_missing_warn_once(wide_data, Model, names_in_fit):
    """X with feature names where fit had none, or without them where fit had them: one
    warning, the wrapped estimator's (as a Pipeline warns), not the wrapper's too; where the
    wrapped estimator does not check X, the wrapper's own."""
    X, Y = wide_data
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
    fit_X, predict_X = (frame, X) if names_in_fit else (X, frame)
    pattern = ("X does not have valid feature names" if names_in_fit
               else "X has feature names")
    for inner, warned_by in ((Ridge(), "Ridge"), (_NoNameCheck(), Model.__name__)):
        model = Model(inner).fit(fit_X, Y)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pred = model.predict(predict_X)
        messages = {str(w.message) for w in caught}
        assert len(messages) == 1 and messages.pop().startswith(pattern)
        assert f"but {warned_by} was fitted" in str(caught[0].message)
        np.testing.assert_allclose(pred, model.predict(fit_X), rtol=1e-12)


def test_pooled_shared_predicts_a_new_task_from_a_dataframe(wide_data):
    X, Y = wide_data
    frame = pd.DataFrame(X[:, :3], columns=["p", "q", "r"])
    frame["city"] = np.random.RandomState(0).choice(["Oslo", "Rome", "Lima"], len(frame))
    model = PooledTasks(_frame_pipeline(), unknown_task="shared").fit(frame, Y)
    pred = model.predict(frame.iloc[:4], task_ids=[0, "new", 2, "new"])
    np.testing.assert_allclose(pred, model.estimator_.predict(frame.iloc[:4]), rtol=1e-12)


def test_independent_tasks_keeps_a_sparse_x_sparse(wide_data):
    import scipy.sparse as sp

    X, Y = wide_data
    X_sparse = sp.coo_matrix(np.where(np.abs(X) > 0.5, X, 0.0))
    model = IndependentTasks(Ridge(alpha=0.3)).fit(X_sparse, Y)
    dense = IndependentTasks(Ridge(alpha=0.3)).fit(X_sparse.toarray(), Y)
    for est, ref in zip(model.estimators_, dense.estimators_):
        np.testing.assert_allclose(est.coef_, ref.coef_, rtol=1e-8)
    assert model.predict(X_sparse.tocsr()[:3], task_ids=[0, 1, 2]).shape == (3,)


def test_independent_labels_beyond_64_bits_keep_working():
    """Whole numbers beyond 64 bits stay Python ints (an object array, no label type for
    scikit-learn classifiers): those tasks' clones are fitted on the class codes."""
    X = np.random.RandomState(0).normal(size=(30, 2))
    big = np.array([2**70, 2**70 + 1], dtype=object)
    Y = np.column_stack([big[(X[:, 0] > 0).astype(int)], big[(X[:, 1] > 0).astype(int)]])
    model = IndependentTasks(LogisticRegression()).fit(X, Y)
    hand = LogisticRegression().fit(X, X[:, 1] > 0)
    np.testing.assert_allclose(model.predict_proba(X)[1], hand.predict_proba(X), rtol=1e-12)
    assert model.predict(X)[:, 1].tolist() == big[hand.predict(X).astype(int)].tolist()
