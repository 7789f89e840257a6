"""make_multitask_scorer in search objects, with and without metadata routing."""

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn import metrics as skm
from sklearn.base import clone
from sklearn.exceptions import UnsetMetadataPassedError
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import (
    GridSearchCV,
    GroupKFold,
    KFold,
    cross_val_score,
    cross_validate,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skmtl import IndependentTasks, PooledTasks, UnknownTaskError
from skmtl.linear import MeanClusteredRegressor
from skmtl.metrics import (
    get_multitask_scorer,
    log_loss,
    make_multitask_scorer,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)
from skmtl.model_selection import MultiTaskKFold

ALPHAS = [0.01, 30.0, 3000.0]
CV = KFold(3, shuffle=True, random_state=0)


@pytest.fixture
def wide():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 4)) * [1.0, 10.0, 0.1, 1.0]
    Y = X @ rng.normal(size=(4, 3)) + 0.5 * rng.normal(size=(60, 3))
    Y[rng.uniform(size=Y.shape) < 0.3] = np.nan
    return X, Y


@pytest.fixture
def wide_binary():
    rng = np.random.RandomState(1)
    X = rng.normal(size=(80, 3))
    Y = (X @ rng.normal(size=(3, 3)) + rng.normal(size=(80, 3)) > 0).astype(float)
    Y[rng.uniform(size=Y.shape) < 0.25] = np.nan
    return X, Y


def to_long(X, Y):
    rows, tasks = np.nonzero(~np.isnan(Y))
    return X[rows], Y[rows, tasks], tasks


def pipeline(alpha=1.0):
    return Pipeline([("standardscaler", StandardScaler()),
                     ("independenttasks", IndependentTasks(Ridge(alpha=alpha)))])


def manual_split_scores(X, Y, alpha, metric, task_ids=None):
    scores = []
    for train, test in CV.split(X):
        if task_ids is None:
            model = pipeline(alpha).fit(X[train], Y[train])
            scores.append(metric(Y[test], model.predict(X[test])))
        else:
            # called with metadata routing on: the pipeline routes task_ids to its last step
            model = pipeline(alpha).fit(X[train], Y[train], task_ids=task_ids[train])
            pred = model.predict(X[test], task_ids=task_ids[test])
            scores.append(metric(Y[test], pred, task_ids=task_ids[test]))
    return np.array(scores)


def test_grid_search_on_wide_y_with_missing_labels_matches_a_manual_search(wide):
    X, Y = wide
    search = GridSearchCV(pipeline(), {"independenttasks__estimator__alpha": ALPHAS},
                          scoring=make_multitask_scorer("r2"), cv=CV).fit(X, Y)
    manual = np.array([manual_split_scores(X, Y, alpha, r2_score) for alpha in ALPHAS])
    for split in range(3):
        np.testing.assert_allclose(search.cv_results_[f"split{split}_test_score"],
                                   manual[:, split], rtol=1e-10)
    best = int(np.argmax(manual.mean(axis=1)))
    assert search.best_params_ == {"independenttasks__estimator__alpha": ALPHAS[best]}
    assert search.best_score_ == pytest.approx(manual[best].mean(), rel=1e-10)
    # the split-0 score of the best candidate, recomputed by hand on that split only
    train, test = next(CV.split(X))
    model = pipeline(ALPHAS[best]).fit(X[train], Y[train])
    expected = np.mean([
        skm.r2_score(Y[test][observed, t], model.predict(X[test])[observed, t])
        for t in range(3) for observed in [~np.isnan(Y[test][:, t])]
    ])
    assert search.cv_results_["split0_test_score"][best] == pytest.approx(expected, rel=1e-10)


def test_grid_search_on_long_data_routes_task_ids_to_the_scorer(wide):
    X_long, y_long, task_ids = to_long(*wide)
    task_ids = np.array(["north", "east", "south"])[task_ids]
    scorer = make_multitask_scorer("neg_mean_squared_error")
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(pipeline(), {"independenttasks__estimator__alpha": ALPHAS},
                              scoring=scorer, cv=CV).fit(X_long, y_long, task_ids=task_ids)
        manual = np.array([-manual_split_scores(X_long, y_long, alpha, mean_squared_error,
                                                task_ids=task_ids) for alpha in ALPHAS])
        np.testing.assert_allclose(search.cv_results_["mean_test_score"], manual.mean(axis=1),
                                   rtol=1e-10)
        assert search.best_score_ == pytest.approx(manual.mean(axis=1).max(), rel=1e-10)
        # the refitted search scores long test data through the same routing
        assert search.score(X_long, y_long, task_ids=task_ids) == pytest.approx(
            -mean_squared_error(y_long, search.best_estimator_.predict(X_long, task_ids=task_ids),
                                task_ids=task_ids))


@pytest.mark.filterwarnings("ignore:One or more of the test scores are non-finite")
def test_long_data_without_task_ids_is_a_clear_error(wide):
    X_long, y_long, task_ids = to_long(*wide)
    model = IndependentTasks(Ridge()).fit(X_long, y_long, task_ids=task_ids)
    scorer = make_multitask_scorer("r2")
    with pytest.raises(ValueError, match="predicts 3 tasks but y is 1-D and no task_ids"):
        scorer(model, X_long, y_long)
    assert scorer(model, X_long, y_long, task_ids=task_ids) == pytest.approx(
        model.score(X_long, y_long, task_ids=task_ids))
    # without routing a search cannot pass task_ids to the scorer: every score fails
    search = GridSearchCV(IndependentTasks(Ridge()), {"estimator__alpha": [1.0]}, cv=CV,
                          scoring=scorer, error_score=np.nan)
    with pytest.warns(UserWarning, match="enable_metadata_routing=True"):
        search.fit(X_long, y_long, task_ids=task_ids)
    assert np.isnan(search.cv_results_["mean_test_score"]).all()


def test_roc_auc_scorer_on_a_classifier_with_wide_binary_y(wide_binary):
    X, Y = wide_binary
    model = IndependentTasks(LogisticRegression()).fit(X, Y)
    proba = model.predict_proba(X)
    expected = np.mean([
        skm.roc_auc_score(Y[observed, t], proba[t][observed, 1])
        for t in range(3) for observed in [~np.isnan(Y[:, t])]
    ])
    assert make_multitask_scorer("roc_auc")(model, X, Y) == pytest.approx(expected, rel=1e-12)
    assert get_multitask_scorer("roc_auc")(model, X, Y) == pytest.approx(expected, rel=1e-12)
    scores = cross_val_score(IndependentTasks(LogisticRegression()), X, Y, cv=CV,
                             scoring=make_multitask_scorer("roc_auc"))
    for score, (train, test) in zip(scores, CV.split(X), strict=True):
        fold = IndependentTasks(LogisticRegression()).fit(X[train], Y[train])
        assert score == pytest.approx(roc_auc_score(Y[test], fold.predict_proba(X[test])))


def test_probabilistic_scorer_passes_the_classes_of_each_task(wide_binary):
    X, Y = wide_binary
    model = IndependentTasks(LogisticRegression()).fit(X, Y)
    # a test set where task 1 shows only one of its classes: labels come from classes_
    rows = np.flatnonzero(np.isnan(Y[:, 1]) | (Y[:, 1] == 0))
    proba = model.predict_proba(X[rows])
    expected = np.mean([
        skm.log_loss(Y[rows][observed, t], proba[t][observed], labels=[0.0, 1.0])
        for t in range(3) for observed in [~np.isnan(Y[rows][:, t])]
    ])
    assert make_multitask_scorer("neg_log_loss")(model, X[rows], Y[rows]) == pytest.approx(
        -expected, rel=1e-12)
    with pytest.raises(ValueError, match="pass labels="):
        log_loss(Y[rows], proba)


def test_probabilistic_scorer_on_long_data_aligns_classes_with_the_tasks_scored():
    rng = np.random.RandomState(2)
    X = rng.normal(size=(90, 2))
    task_ids = np.repeat(["a", "b", "c"], 30)
    classes = {"a": [0, 1], "b": [1, 2], "c": [0, 1]}  # task b has other classes
    y = np.array([classes[t][int(x > 0)] for t, x in zip(task_ids, X[:, 0], strict=True)])
    model = IndependentTasks(LogisticRegression()).fit(X, y, task_ids=task_ids)
    # test rows of tasks b and c only, and task b shows its class 2 only
    rows = np.flatnonzero((task_ids == "c") | ((task_ids == "b") & (y == 2)))
    proba = model.predict_proba(X[rows], task_ids=task_ids[rows])
    expected = [skm.log_loss(y[rows][sel], proba[sel], labels=classes[name])
                for name in ("b", "c") for sel in [task_ids[rows] == name]]
    scorer = make_multitask_scorer("neg_log_loss")
    assert scorer(model, X[rows], y[rows], task_ids=task_ids[rows]) == pytest.approx(
        -np.mean(expected), rel=1e-12)
    # labels given by the user win over classes_
    mine = make_multitask_scorer("neg_log_loss", labels=[[1, 2], [0, 1]])
    assert mine(model, X[rows], y[rows], task_ids=task_ids[rows]) == pytest.approx(
        -np.mean(expected), rel=1e-12)


def test_a_dict_of_scorers_in_cross_validate(wide):
    X, Y = wide
    scoring = {
        "r2": make_multitask_scorer("r2"),
        "mse": make_multitask_scorer("neg_mean_squared_error"),
        "mse_task0": make_multitask_scorer(mean_squared_error, greater_is_better=False,
                                           multioutput=[1.0, 0.0, 0.0]),
    }
    results = cross_validate(pipeline(), X, Y, cv=CV, scoring=scoring)
    np.testing.assert_allclose(results["test_r2"],
                               manual_split_scores(X, Y, 1.0, r2_score), rtol=1e-10)
    np.testing.assert_allclose(results["test_mse"],
                               -manual_split_scores(X, Y, 1.0, mean_squared_error), rtol=1e-10)

    def task0(y, p):
        return mean_squared_error(y[:, :1], p[:, :1])

    np.testing.assert_allclose(results["test_mse_task0"],
                               -manual_split_scores(X, Y, 1.0, task0), rtol=1e-10)


def test_a_dict_of_scorers_with_routing_and_requested_sample_weight(wide):
    X_long, y_long, task_ids = to_long(*wide)
    weights = np.random.RandomState(3).uniform(0.1, 3.0, size=y_long.shape[0])
    with sklearn.config_context(enable_metadata_routing=True):
        scoring = {
            "weighted": make_multitask_scorer("r2").set_score_request(sample_weight=True),
            "unweighted": make_multitask_scorer("r2").set_score_request(sample_weight=False),
        }
        # IndependentTasks routes sample_weight to Ridge.fit too: Ridge says it does not
        # take them (an unset request is an error, as in a Pipeline), so only scoring does
        unweighted_fit = Ridge().set_fit_request(sample_weight=False)
        results = cross_validate(IndependentTasks(unweighted_fit), X_long, y_long, cv=CV,
                                 scoring=scoring,
                                 params={"task_ids": task_ids, "sample_weight": weights},
                                 return_estimator=True)
    for k, (_, test) in enumerate(CV.split(X_long)):
        pred = results["estimator"][k].predict(X_long[test], task_ids=task_ids[test])
        assert results["test_weighted"][k] == pytest.approx(
            r2_score(y_long[test], pred, task_ids=task_ids[test], sample_weight=weights[test]))
        assert results["test_unweighted"][k] == pytest.approx(
            r2_score(y_long[test], pred, task_ids=task_ids[test]))
    assert not np.allclose(results["test_weighted"], results["test_unweighted"])


def test_routing_requests_task_ids_by_default_and_sample_weight_on_request(wide):
    scorer = make_multitask_scorer("r2")
    assert scorer.get_metadata_routing().score.requests == {"task_ids": True,
                                                            "sample_weight": None}
    with pytest.raises(RuntimeError, match="enable_metadata_routing=True"):
        scorer.set_score_request(sample_weight=True)
    X_long, y_long, task_ids = to_long(*wide)
    weights = np.ones(y_long.shape[0])
    with sklearn.config_context(enable_metadata_routing=True):
        # Ridge.fit, under IndependentTasks, decides too: unset, it is the same error
        with pytest.raises(UnsetMetadataPassedError, match=r"sample_weight.*Ridge\.fit"):
            unweighted = make_multitask_scorer("r2").set_score_request(sample_weight=False)
            GridSearchCV(IndependentTasks(Ridge()), {"estimator__alpha": [1.0]}, cv=CV,
                         scoring=unweighted, error_score="raise").fit(
                X_long, y_long, task_ids=task_ids, sample_weight=weights)
        search = GridSearchCV(IndependentTasks(Ridge().set_fit_request(sample_weight=False)),
                              {"estimator__alpha": [1.0]}, cv=CV, scoring=scorer)
        with pytest.raises(UnsetMetadataPassedError, match="sample_weight"):
            search.fit(X_long, y_long, task_ids=task_ids, sample_weight=weights)
        assert scorer.set_score_request(sample_weight=True) is scorer
        assert scorer.get_metadata_routing().score.requests == {"task_ids": True,
                                                                "sample_weight": True}
        search.fit(X_long, y_long, task_ids=task_ids, sample_weight=weights)
        assert np.isfinite(search.best_score_)
        with pytest.raises(TypeError, match="Unexpected metadata \\['groups'\\]"):
            scorer.set_score_request(groups=True)
    # a cloned search gets a copy of the scorer that keeps its requests
    copied = clone(search).scoring
    assert copied is not scorer and repr(copied) == repr(scorer)
    assert copied.get_metadata_routing().score.requests == {"task_ids": True,
                                                            "sample_weight": True}


def test_neg_mean_squared_error_sign(wide):
    X, Y = wide
    model = IndependentTasks(Ridge()).fit(X, Y)
    mse = mean_squared_error(Y, model.predict(X))
    assert mse > 0
    assert make_multitask_scorer("neg_mean_squared_error")(model, X, Y) == pytest.approx(-mse)
    by_function = make_multitask_scorer(mean_squared_error, greater_is_better=False)
    assert by_function(model, X, Y) == pytest.approx(-mse)
    assert make_multitask_scorer(mean_squared_error)(model, X, Y) == pytest.approx(mse)
    weights = np.random.RandomState(4).uniform(size=X.shape[0])
    assert by_function(model, X, Y, sample_weight=weights) == pytest.approx(
        -mean_squared_error(Y, model.predict(X), sample_weight=weights))


def test_plain_scikit_learn_estimators_are_scored_without_task_ids(wide_binary):
    X, Y = wide_binary
    ridge = Ridge().fit(X, np.nan_to_num(Y))
    assert make_multitask_scorer("r2")(ridge, X, np.nan_to_num(Y)) == pytest.approx(
        skm.r2_score(np.nan_to_num(Y), ridge.predict(X)))
    clf = LogisticRegression().fit(X, np.nan_to_num(Y[:, 0]))
    assert make_multitask_scorer("roc_auc")(clf, X, np.nan_to_num(Y[:, 0])) == pytest.approx(
        skm.get_scorer("roc_auc")(clf, X, np.nan_to_num(Y[:, 0])))


def test_dataframe_columns_must_match_the_tasks_seen_in_fit(wide):
    pd = pytest.importorskip("pandas")
    X, Y = wide
    frame = pd.DataFrame(Y, columns=["u", "v", "w"])
    model = IndependentTasks(Ridge()).fit(X, frame)
    scorer = make_multitask_scorer("r2")
    assert scorer(model, X, frame) == pytest.approx(r2_score(Y, model.predict(X)))
    with pytest.raises(ValueError, match="do not match the tasks seen in fit"):
        scorer(model, X, frame[["v", "u", "w"]])


def test_bad_scorer_arguments_raise_clear_errors(wide):
    with pytest.raises(ValueError, match="'rmse' is not a multi-task scorer name; valid names"
                                         " are \\['accuracy', 'average_precision', "):
        make_multitask_scorer("rmse")
    with pytest.raises(ValueError, match="'f1' is not a multi-task scorer name"):
        get_multitask_scorer("f1")
    with pytest.raises(ValueError, match="fixes the sign"):
        make_multitask_scorer("neg_log_loss", greater_is_better=False)
    with pytest.raises(ValueError, match="uses response_method='predict_proba'"):
        make_multitask_scorer("roc_auc", response_method="decision_function")
    with pytest.raises(ValueError, match="response_method must be one of"):
        make_multitask_scorer(r2_score, response_method="transform")
    with pytest.raises(ValueError, match="scorer must return one number"):
        make_multitask_scorer("r2", multioutput="raw_values")
    with pytest.raises(ValueError, match="passed at scoring time"):
        make_multitask_scorer(r2_score, task_ids=[0, 1])
    with pytest.raises(ValueError, match="metric must be a metric name or a callable"):
        make_multitask_scorer(3)
    X, Y = wide
    model = IndependentTasks(Ridge()).fit(X, Y)
    with pytest.raises(AttributeError, match="needs the estimator's predict_proba"):
        make_multitask_scorer("roc_auc")(model, X, Y)


def test_repr():
    assert repr(make_multitask_scorer("r2")) == "make_multitask_scorer('r2')"
    assert (repr(make_multitask_scorer("roc_auc", multioutput=[1.0, 2.0]))
            == "make_multitask_scorer('roc_auc', multioutput=[1.0, 2.0])")
    assert (repr(make_multitask_scorer(log_loss, greater_is_better=False,
                                       response_method="predict_proba"))
            == "make_multitask_scorer(log_loss, greater_is_better=False, "
               "response_method='predict_proba')")


@pytest.mark.parametrize("name", ["roc_auc", "average_precision", "neg_log_loss"])
def test_probabilistic_scorers_name_the_task_with_a_class_the_model_never_saw(wide_binary, name):
    X, Y = wide_binary
    frame = pd.DataFrame(Y, columns=["a", "b", "c"])
    model = IndependentTasks(LogisticRegression()).fit(X, frame)
    test = frame.copy()
    test.loc[test["b"] == 1.0, "b"] = 2.0  # task b: a class outside its classes_ [0, 1]
    with pytest.raises(ValueError, match="Task 'b': y_true holds class\\(es\\) 2.0 that are "
                                         "not among the task's classes \\[0.0, 1.0\\]"):
        make_multitask_scorer(name)(model, X, test)


def test_scorer_names_duplicated_task_columns(wide):
    X, Y = wide
    model = IndependentTasks(Ridge()).fit(X, pd.DataFrame(Y, columns=["a", "b", "c"]))
    with pytest.raises(ValueError, match="duplicated column name\\(s\\) 'a'; each column"):
        make_multitask_scorer("r2")(model, X, pd.DataFrame(Y, columns=["a", "a", "c"]))


# -- tasks not seen in fit, predicted by the shared part (unknown_task="shared") ---------------
SCORE_METRICS = {
    "roc_auc": lambda y, proba, labels: skm.roc_auc_score(y == labels[1], proba[:, 1]),
    "average_precision": lambda y, proba, labels: skm.average_precision_score(y == labels[1],
                                                                              proba[:, 1]),
    "neg_log_loss": lambda y, proba, labels: -skm.log_loss(y, proba, labels=labels),
}


def long_binary_with_a_new_task(n=150, n_tasks=6, seed=5):
    """Long binary data with string labels; the last task is left out of the training rows."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 3))
    task_ids = rng.randint(0, n_tasks, n)
    y = np.where(X[:, 0] + 0.5 * rng.normal(size=n) > 0, "yes", "no")
    return X, y, task_ids, task_ids < n_tasks - 1


def manual_task_scores(name, y, proba, task_ids, labels):
    """The mean over the tasks of task_ids of scikit-learn's metric on the task's rows."""
    return np.mean([SCORE_METRICS[name](y[rows], proba[rows], labels)
                    for t in np.unique(task_ids) for rows in [task_ids == t]])


@pytest.mark.parametrize("name", sorted(SCORE_METRICS))
@pytest.mark.parametrize("in_pipeline", [False, True])
def test_probabilistic_scorers_score_a_new_task_with_the_shared_part(name, in_pipeline):
    """With unknown_task="shared" the rows of a task not seen in fit get the shared part's
    probabilities, and the scorer the shared part's classes for them (it raised
    UnknownTaskError, though predict_proba and score worked)."""
    X, y, task_ids, seen = long_binary_with_a_new_task()
    model = PooledTasks(LogisticRegression(), unknown_task="shared")
    if in_pipeline:
        model = Pipeline([("scale", StandardScaler()), ("model", model)])
    with sklearn.config_context(enable_metadata_routing=True):
        model.fit(X[seen], y[seen], task_ids=task_ids[seen])
        proba = model.predict_proba(X, task_ids=task_ids)
    labels = ["no", "yes"]
    expected = manual_task_scores(name, y, proba, task_ids, labels)
    scorer = make_multitask_scorer(name)
    assert scorer(model, X, y, task_ids=task_ids) == pytest.approx(expected, rel=1e-12)
    # the new task alone, showing one class only: its classes come from the shared part
    rows = np.flatnonzero(~seen & (y == "yes"))
    if name == "neg_log_loss":
        assert scorer(model, X[rows], y[rows], task_ids=task_ids[rows]) == pytest.approx(
            SCORE_METRICS[name](y[rows], proba[rows], labels), rel=1e-12)


def test_probabilistic_scorer_on_a_new_task_with_unknown_task_error_keeps_the_error():
    X, y, task_ids, seen = long_binary_with_a_new_task()
    model = PooledTasks(LogisticRegression()).fit(X[seen], y[seen], task_ids=task_ids[seen])
    with pytest.raises(UnknownTaskError, match="not seen during fit: 5.*unknown_task='shared'"):
        make_multitask_scorer("roc_auc")(model, X, y, task_ids=task_ids)


def test_cross_validate_scores_the_tasks_a_group_fold_leaves_out_of_training():
    X, y, task_ids, _ = long_binary_with_a_new_task()
    model = PooledTasks(LogisticRegression(), unknown_task="shared")
    cv = GroupKFold(3)
    with sklearn.config_context(enable_metadata_routing=True):
        results = cross_validate(model, X, y, params={"task_ids": task_ids, "groups": task_ids},
                                 cv=cv, scoring=make_multitask_scorer("neg_log_loss"),
                                 error_score="raise", return_estimator=True)
    for k, (train, test) in enumerate(cv.split(X, y, groups=task_ids)):
        assert not np.isin(task_ids[test], task_ids[train]).any()  # every test task is new
        proba = results["estimator"][k].predict_proba(X[test], task_ids=task_ids[test])
        assert results["test_score"][k] == pytest.approx(
            manual_task_scores("neg_log_loss", y[test], proba, task_ids[test], ["no", "yes"]),
            rel=1e-12)


def test_probabilistic_scorer_on_a_new_task_of_a_deep_classifier():
    pytest.importorskip("skorch")
    from skmtl.deep import MultiTaskClassifier

    X, y, task_ids, seen = long_binary_with_a_new_task(n=60, n_tasks=4)
    model = MultiTaskClassifier(unknown_task="shared", hidden_layer_sizes=(8,), max_epochs=2,
                                early_stopping=False, random_state=0)
    model.fit(X[seen], y[seen], task_ids=task_ids[seen])
    proba = model.predict_proba(X, task_ids=task_ids)
    for name in SCORE_METRICS:
        assert make_multitask_scorer(name)(model, X, y, task_ids=task_ids) == pytest.approx(
            manual_task_scores(name, y, proba, task_ids, ["no", "yes"]), rel=1e-12)


# -- search objects: their methods are their best estimator's ----------------------------------
def manual_r2_by_task(y, pred, task_ids):
    return np.mean([skm.r2_score(y[rows], pred[rows])
                    for t in np.unique(task_ids) for rows in [task_ids == t]])


def test_nested_cross_validation_on_long_data_scores_the_best_estimator(wide):
    """cross_validate of a GridSearchCV on long data: the scorer predicts with the search's
    best_estimator_, which takes task_ids (BaseSearchCV.predict does not: a TypeError)."""
    X_long, y_long, task_ids = to_long(*wide)
    inner = GridSearchCV(MeanClusteredRegressor(), {"alpha": [0.01, 100.0]},
                         cv=MultiTaskKFold(3))
    outer = MultiTaskKFold(3, shuffle=True, random_state=0)
    scoring = {"r2": make_multitask_scorer("r2"),
               "mse": make_multitask_scorer("neg_mean_squared_error")}
    with sklearn.config_context(enable_metadata_routing=True):
        results = cross_validate(inner, X_long, y_long, params={"task_ids": task_ids},
                                 cv=outer, scoring=scoring, error_score="raise",
                                 return_estimator=True, return_indices=True)
    for k, test in enumerate(results["indices"]["test"]):
        best = results["estimator"][k].best_estimator_
        pred = best.predict(X_long[test], task_ids=task_ids[test])
        assert results["test_r2"][k] == pytest.approx(
            manual_r2_by_task(y_long[test], pred, task_ids[test]), rel=1e-12)
        assert results["test_mse"][k] == pytest.approx(-np.mean([
            skm.mean_squared_error(y_long[test][rows], pred[rows])
            for t in range(3) for rows in [task_ids[test] == t]]), rel=1e-12)


def test_scorer_looks_through_nested_search_objects(wide):
    X_long, y_long, task_ids = to_long(*wide)
    inner = GridSearchCV(pipeline(), {"independenttasks__estimator__alpha": ALPHAS}, cv=CV)
    outer = GridSearchCV(inner, {"cv": [2, 3]}, cv=CV)
    with sklearn.config_context(enable_metadata_routing=True):
        outer.fit(X_long, y_long, task_ids=task_ids)
    best = outer.best_estimator_.best_estimator_
    pred = best.predict(X_long, task_ids=task_ids)
    assert make_multitask_scorer("r2")(outer, X_long, y_long, task_ids=task_ids) == (
        pytest.approx(manual_r2_by_task(y_long, pred, task_ids), rel=1e-12))


def test_task_weights_follow_the_tasks_of_each_long_fold():
    """multioutput weights one per task of tasks_: a test fold without the small task "c"
    (3 labels, 5 folds) weighs the tasks it has, by their own weights; a task not seen in fit
    has no weight, which names it."""
    rng = np.random.RandomState(0)
    task_ids = np.array(["a"] * 30 + ["b"] * 30 + ["c"] * 3)
    X = rng.normal(size=(63, 3))
    y = X @ [1.0, 2.0, 3.0] + rng.normal(size=63)
    weights = [3.0, 1.0, 0.5]
    scorer = make_multitask_scorer(r2_score, multioutput=weights)
    cv = MultiTaskKFold(5)
    with sklearn.config_context(enable_metadata_routing=True):
        scores = cross_val_score(IndependentTasks(Ridge()), X, y, params={"task_ids": task_ids},
                                 scoring=scorer, cv=cv, error_score="raise")
    expected = []
    for train, test in cv.split(X, y, task_ids=task_ids):
        model = IndependentTasks(Ridge()).fit(X[train], y[train], task_ids=task_ids[train])
        prediction = model.predict(X[test], task_ids=task_ids[test])
        per_task = {t: skm.r2_score(y[test][task_ids[test] == t],
                                    prediction[task_ids[test] == t])
                    for t in np.unique(task_ids[test])
                    if np.sum(task_ids[test] == t) >= 2}
        expected.append(np.average(list(per_task.values()),
                                   weights=[weights["abc".index(t)] for t in per_task]))
    assert np.sum([len(set(task_ids[test])) < 3 for _, test in cv.split(
        X, y, task_ids=task_ids)]) >= 2  # folds without task "c"
    np.testing.assert_allclose(scores, expected, rtol=1e-12)

    model = MeanClusteredRegressor(unknown_task="shared").fit(X[:60], y[:60],
                                                         task_ids=task_ids[:60])
    with pytest.raises(ValueError, match=r"one per task seen in fit \(2.*not seen in fit.*'c'"):
        make_multitask_scorer(r2_score, multioutput=[1.0, 1.0])(model, X, y, task_ids=task_ids)
