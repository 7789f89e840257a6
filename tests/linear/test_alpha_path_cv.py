"""The estimators that search ``alpha`` alone (ClusteredTasks*CV, TaskRelation*CV): the choice,
the refit, the scores of the path, the default grid and its edges, the data layouts, errors."""

import warnings

import joblib
import numpy as np
import pytest
import sklearn
from sklearn.model_selection import GridSearchCV, KFold

from skmtl import UnknownTaskError
from skmtl.linear import (
    ClusteredTasksClassifier,
    ClusteredTasksRegressor,
    GridEdgeWarning,
    TaskRelationClassifier,
    TaskRelationRegressor,
)
from skmtl.linear._clustered_tasks_cv import ClusteredTasksClassifierCV, ClusteredTasksRegressorCV
from skmtl.linear._solver_mean_clustered import _largest_moment_eigenvalue
from skmtl.linear._task_relation_cv import TaskRelationClassifierCV, TaskRelationRegressorCV
from skmtl.metrics import make_multitask_scorer, mean_squared_error

# (CV estimator, fixed-alpha model, fixed parameters of both, weakest curvature of the penalty
# per unit of alpha as documented, as a function of the parameters and T)
CASES = {
    "clustered-regressor": (ClusteredTasksRegressorCV, ClusteredTasksRegressor,
                            dict(n_clusters=2, between=0.5, n_init=2, random_state=0),
                            lambda p, T: 2 * min(1.0, p["between"]) / T),
    "clustered-classifier": (ClusteredTasksClassifierCV, ClusteredTasksClassifier,
                             dict(n_clusters=2, between=0.5, n_init=2, random_state=0,
                                  tol=1e-12),
                             lambda p, T: 2 * min(1.0, p["between"]) / T),
    # (a loose tolerance: every check compares two runs of the same computation)
    "relation-regressor": (TaskRelationRegressorCV, TaskRelationRegressor,
                           dict(relation_ratio=0.7, tol=1e-8),
                           lambda p, T: 1 - p["relation_ratio"] + p["relation_ratio"] / T),
    "relation-classifier": (TaskRelationClassifierCV, TaskRelationClassifier,
                            dict(relation_ratio=0.7, tol=1e-8),
                            lambda p, T: 1 - p["relation_ratio"] + p["relation_ratio"] / T),
}
ALPHAS = (1.0, 0.1, 0.01)


def _classifier(name):
    return name.endswith("classifier")


def long_data(name, n_tasks=4, n_per_task=24, d=3, noise=1.0, seed=0):
    """Long data, tasks in two groups of opposite slopes, off-centre X, shuffled rows."""
    rng = np.random.default_rng(seed)
    task_ids = np.repeat(np.arange(n_tasks), n_per_task)
    X = rng.normal(size=(task_ids.size, d)) + 0.5
    w = rng.normal(size=d)
    W = np.where(np.arange(n_tasks)[:, None] % 2 == 0, w, -w) + 0.2 * rng.normal(
        size=(n_tasks, d))
    z = np.einsum("ij,ij->i", X, W[task_ids])
    if _classifier(name):
        y = (z + noise * rng.logistic(size=z.size) > 0).astype(int)
    else:
        y = z + noise * rng.normal(size=z.size)
    order = rng.permutation(task_ids.size)
    return X[order], y[order], task_ids[order]


def models(name, **params):
    CV, Model, fixed, _ = CASES[name]
    return CV(**{**fixed, **params}), Model(**fixed, standardize=True)


@pytest.mark.parametrize("name", CASES)
def test_choice_is_the_best_mean_score_and_the_refit_the_fixed_model(name):
    X, y, task_ids = long_data(name)
    cv_model, fixed = models(name, alphas=ALPHAS, cv=3)
    cv_model.fit(X, y, task_ids=task_ids)
    means = cv_model.cv_results_["mean_test_score"]
    assert cv_model.alpha_ == cv_model.alphas_[np.argmax(means)]
    assert cv_model.best_score_ == means.max()
    assert cv_model.cv_results_["rank_test_score"][np.argmax(means)] == 1
    np.testing.assert_array_equal(cv_model.alphas_, sorted(ALPHAS, reverse=True))
    assert cv_model.cv_results_["params"] == [{"alpha": alpha} for alpha in ALPHAS]
    fixed.set_params(alpha=cv_model.alpha_).fit(X, y, task_ids=task_ids)
    np.testing.assert_allclose(cv_model.coef_, fixed.coef_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(cv_model.intercept_, fixed.intercept_, rtol=0, atol=1e-8)


@pytest.mark.parametrize("name", CASES)
def test_split_scores_are_the_held_out_loss_of_the_fixed_model_on_each_fold(name):
    X, y, task_ids = long_data(name, seed=1)
    splits = list(KFold(3, shuffle=True, random_state=0).split(X))
    cv_model, fixed = models(name, alphas=ALPHAS, cv=splits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridEdgeWarning)
        cv_model.fit(X, y, task_ids=task_ids)
    k = 1  # one alpha of the path (after the fold fitted the first)
    losses, counts = [], []
    for split, (train, test) in enumerate(splits):
        fixed.set_params(alpha=ALPHAS[k]).fit(X[train], y[train], task_ids=task_ids[train])
        if _classifier(name):
            p = fixed.predict_proba(X[test], task_ids=task_ids[test])[:, 1]
            loss = -np.mean(np.where(y[test] == 1, np.log(p), np.log1p(-p)))
        else:
            loss = np.mean((y[test] - fixed.predict(X[test], task_ids=task_ids[test])) ** 2)
        assert cv_model.cv_results_[f"split{split}_test_score"][k] == pytest.approx(
            -loss, rel=1e-7)
        losses.append(loss)
        counts.append(test.size)
    # the mean weighs every held-out label the same
    expected = -np.average(losses, weights=counts)
    assert cv_model.cv_results_["mean_test_score"][k] == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize("name", ["clustered-regressor", "relation-regressor"])
def test_a_scorer_gives_the_grid_search_choice(name):
    X, y, task_ids = long_data(name, seed=2)
    splits = list(KFold(3, shuffle=True, random_state=1).split(X))
    scorer = make_multitask_scorer(mean_squared_error, greater_is_better=False)
    cv_model, fixed = models(name, alphas=ALPHAS, cv=splits, scoring=scorer)
    with sklearn.config_context(enable_metadata_routing=True), warnings.catch_warnings():
        warnings.simplefilter("ignore", GridEdgeWarning)
        cv_model.fit(X, y, task_ids=task_ids)
        search = GridSearchCV(fixed, {"alpha": list(ALPHAS)}, scoring=scorer, cv=splits)
        search.fit(X, y, task_ids=task_ids)
    assert cv_model.alpha_ == search.best_params_["alpha"]
    np.testing.assert_allclose(cv_model.cv_results_["mean_test_score"],
                               search.cv_results_["mean_test_score"], rtol=1e-7)


@pytest.mark.parametrize("name", CASES)
def test_default_grid_is_the_documented_one_and_grows_at_an_edge(name):
    # labels independent of X and a short grid: the optimum is at an edge of the first grid
    X, _, task_ids = long_data(name, n_per_task=12)
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, size=task_ids.size) if _classifier(name) else rng.normal(
        size=task_ids.size)
    cv_model, _ = models(name, n_alphas=3, eps=0.1, cv=3, standardize=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridEdgeWarning)
        cv_model.fit(X, y, task_ids=task_ids)
    _, _, fixed, weakest = CASES[name]
    T = 4
    curvature = 0.25 if _classifier(name) else 1.0
    moments = [np.cov(X[task_ids == t].T, bias=True) for t in range(T)]
    e_max = np.linalg.eigvalsh(np.mean(moments, axis=0))[-1]
    assert e_max == pytest.approx(
        _largest_moment_eigenvalue(X, np.arange(y.size), task_ids, T, True), rel=1e-10)
    alpha_max = 10 * curvature * e_max / weakest(fixed, T)
    first = np.geomspace(alpha_max, 0.1 * alpha_max, 3)
    alphas = cv_model.alphas_
    start = int(np.argmin(np.abs(alphas - alpha_max)))
    np.testing.assert_allclose(alphas[start:start + 3], first, rtol=1e-10)
    # extended by whole decades with the grid's own ratio, on the side of the optimum
    assert alphas.size >= 5
    np.testing.assert_allclose(alphas[1:] / alphas[:-1], 10 ** -0.5, rtol=1e-10)
    # (alpha_ is a grid value, first one computed here: equal to rounding)
    assert not first[-1] * (1 + 1e-9) < cv_model.alpha_ < first[0] * (1 - 1e-9)
    assert cv_model.cv_results_["mean_test_score"].shape == alphas.shape


@pytest.mark.parametrize("name", CASES)
def test_the_default_grid_has_20_values_over_three_decades(name):
    """The default grid: 20 values from alpha_max down to 1e-3 alpha_max, a ratio of
    10^(-3/19) between neighbours (10 values, a ratio of 2.15, missed the optimum on Chem97
    by 0.55% of the squared error); an extension keeps the ratio."""
    X, y, task_ids = long_data(name)
    cv_model, _ = models(name, cv=3)
    assert cv_model.get_params()["n_alphas"] == 20 and cv_model.get_params()["eps"] == 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridEdgeWarning)
        cv_model.fit(X, y, task_ids=task_ids)
    alphas = cv_model.alphas_
    assert alphas.size >= 20
    np.testing.assert_allclose(alphas[1:] / alphas[:-1], 10 ** (-3 / 19), rtol=1e-10)
    assert cv_model.cv_results_["mean_test_score"].shape == alphas.shape


@pytest.mark.parametrize("name", CASES)
def test_a_passed_grid_is_not_extended_but_warns_at_an_edge(name):
    X, y, task_ids = long_data(name, n_per_task=40, noise=0.05 if not _classifier(name) else 0.2)
    cv_model, _ = models(name, alphas=(100.0, 30.0), cv=3)
    with pytest.warns(GridEdgeWarning, match=r"best alpha \(30\) is the smallest value tried "
                                             r"\(of the grid passed\)"):
        cv_model.fit(X, y, task_ids=task_ids)
    np.testing.assert_array_equal(cv_model.alphas_, [100.0, 30.0])


@pytest.mark.parametrize("name", CASES)
def test_wide_with_missing_labels_equals_long(name):
    X, y, task_ids = long_data(name, seed=3)
    Y = np.full((y.size, 4), np.nan)
    Y[np.arange(y.size), task_ids] = y  # one label per row, the other tasks missing
    splits = list(KFold(3, shuffle=True, random_state=2).split(X))
    long, _ = models(name, n_alphas=4, cv=splits)
    wide, _ = models(name, n_alphas=4, cv=splits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridEdgeWarning)
        long.fit(X, y, task_ids=task_ids)
        wide.fit(X, Y)
    np.testing.assert_allclose(wide.alphas_, long.alphas_, rtol=1e-10)
    np.testing.assert_allclose(wide.cv_results_["mean_test_score"],
                               long.cv_results_["mean_test_score"], rtol=1e-6)
    assert wide.alpha_ == long.alpha_
    np.testing.assert_allclose(wide.coef_, long.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(wide.intercept_, long.intercept_, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", ["clustered-classifier", "relation-regressor"])
def test_unknown_task(name):
    X, y, task_ids = long_data(name)
    cv_model, _ = models(name, alphas=ALPHAS, cv=3, unknown_task="shared")
    cv_model.fit(X, y, task_ids=task_ids)
    decision = X[:3] @ cv_model.shared_coef_ + cv_model.intercept_.mean()
    if _classifier(name):
        proba = cv_model.predict_proba(X[:3], task_ids=[99] * 3)[:, 1]
        np.testing.assert_allclose(proba, 1 / (1 + np.exp(-decision)))
    else:
        np.testing.assert_allclose(cv_model.predict(X[:3], task_ids=[99] * 3), decision)
    with pytest.raises(UnknownTaskError):
        cv_model.set_params(unknown_task="error").predict(X[:3], task_ids=[99] * 3)


def test_n_jobs_gives_the_same_results():
    X, y, task_ids = long_data("relation-regressor", seed=4)
    one, _ = models("relation-regressor", alphas=ALPHAS, cv=3)
    two, _ = models("relation-regressor", alphas=ALPHAS, cv=3, n_jobs=2)
    one.fit(X, y, task_ids=task_ids)
    with joblib.parallel_config(backend="threading"):  # two workers without process start-up
        two.fit(X, y, task_ids=task_ids)
    np.testing.assert_array_equal(one.cv_results_["mean_test_score"],
                                  two.cv_results_["mean_test_score"])
    np.testing.assert_array_equal(one.coef_, two.coef_)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("params, match", [
    ({"alphas": [1.0, 0.0]}, "alphas must be a non-empty list of finite numbers > 0"),
    ({"alphas": []}, "alphas must be a non-empty list"),
    ({"n_alphas": 0}, "'n_alphas' parameter"),
    ({"eps": 0.0}, "'eps' parameter"),
    ({"eps": 2.0}, "'eps' parameter"),
    ({"cv": 1}, "'cv' parameter"),
    ({"scoring": "not_a_scorer"}, "is not a multi-task scorer name"),
    ({"unknown_task": "ignore"}, "'unknown_task' parameter"),
])
def test_bad_parameters_raise(name, params, match):
    X, y, task_ids = long_data(name, n_per_task=6)
    with pytest.raises(ValueError, match=match):
        models(name, **params)[0].fit(X, y, task_ids=task_ids)


@pytest.mark.parametrize("name, params, match", [
    ("clustered-regressor", {"within": 0.1}, "within must be >= between"),
    ("clustered-classifier", {"n_clusters": 0}, "'n_clusters' parameter"),
    ("clustered-classifier", {"max_newton_iter": 0}, "'max_newton_iter' parameter"),
    ("relation-regressor", {"relation_ratio": 1.5}, "'relation_ratio' parameter"),
    ("relation-classifier", {"max_iter": 0}, "'max_iter' parameter"),
])
def test_bad_model_parameters_raise(name, params, match):
    X, y, task_ids = long_data(name, n_per_task=6)
    with pytest.raises(ValueError, match=match):
        models(name, **params)[0].fit(X, y, task_ids=task_ids)
    with pytest.raises(TypeError, match="alpha"):  # alpha is searched, not set
        CASES[name][0](alpha=1.0)
