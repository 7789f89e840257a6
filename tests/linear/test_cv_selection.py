"""Model selection of the linear *CV estimators: units, criterion, edges, new and one-class tasks.

The synthetic data are those of issue 8: 120 tasks of 15 to 200 rows, 20 binary features, task
vectors spread around a mean.
"""

import re
import warnings
from functools import partial

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, log_loss, r2_score
from sklearn.model_selection import KFold

from skmtl.linear import (
    BlockSparseClassifier,
    BlockSparseClassifierCV,
    BlockSparseRegressor,
    BlockSparseRegressorCV,
    ClusteredTasksClassifier,
    ClusteredTasksClassifierCV,
    ClusteredTasksRegressor,
    ClusteredTasksRegressorCV,
    GridEdgeWarning,
    LowRankClassifier,
    LowRankClassifierCV,
    LowRankRegressor,
    LowRankRegressorCV,
    MeanClusteredClassifier,
    MeanClusteredClassifierCV,
    MeanClusteredRegressor,
    MeanClusteredRegressorCV,
    TaskRelationClassifier,
    TaskRelationClassifierCV,
    TaskRelationRegressor,
    TaskRelationRegressorCV,
)
from skmtl.model_selection import MultiTaskGroupKFold, MultiTaskKFold
from skmtl.utils.validation import missing_mask


def many_tasks(n_tasks=120, n_features=20, classification=False, seed=0):
    """Long data: tasks of 15 to 200 rows, binary features, tasks around a mean, and a held-out
    part of every task (30 % of its rows). Returns (X, y, task_ids) for train and test."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(15, 201, size=n_tasks)
    task_ids = np.repeat(np.arange(n_tasks), sizes)
    X = (rng.uniform(size=(task_ids.size, n_features)) < 0.3).astype(float)
    mean = rng.normal(size=n_features) * (rng.uniform(size=n_features) < 0.5)
    W = mean + 0.3 * rng.normal(size=(n_tasks, n_features))
    signal = np.einsum("ij,ij->i", X, W[task_ids]) + 0.5 * rng.normal(size=n_tasks)[task_ids]
    if classification:
        y = (signal - signal.mean() + rng.logistic(size=task_ids.size) > 0).astype(int)
    else:
        y = signal + 1.5 * rng.normal(size=task_ids.size)
    test = rng.uniform(size=task_ids.size) < 0.3
    test[np.unique(task_ids, return_index=True)[1]] = False  # every task keeps a training row
    return (X[~test], y[~test], task_ids[~test]), (X[test], y[test], task_ids[test])


def held_out(model, train, test):
    X, y, task_ids = train
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridEdgeWarning)
        model.fit(X, y, task_ids=task_ids)
    X_test, y_test, t_test = test
    if hasattr(model, "predict_proba"):
        return -log_loss(y_test, model.predict_proba(X_test, task_ids=t_test)[:, 1])
    return r2_score(y_test, model.predict(X_test, task_ids=t_test))


def rescaled(data, column=None, target=None):
    X, y, task_ids = data
    X = X.copy()
    if column is not None:
        X[:, column] *= 100.0
    return X, (y * target if target is not None else y), task_ids


# -- units ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_tasks", [
    30, pytest.param(120, marks=pytest.mark.slow)], ids=["30-tasks", "120-tasks"])
@pytest.mark.parametrize("Estimator, params", [
    (MeanClusteredRegressorCV, {}),
    (BlockSparseRegressorCV, {"n_alphas": 20}),
], ids=["mean_clustered", "block_sparse"])
def test_rescaling_a_feature_or_the_target_does_not_move_the_held_out_score(Estimator, params,
                                                                            n_tasks):
    train, test = many_tasks(n_tasks=n_tasks)
    reference = held_out(Estimator(**params), train, test)
    assert reference > 0.1  # a problem worth solving
    for column in (0, 7):
        moved = held_out(Estimator(**params), rescaled(train, column), rescaled(test, column))
        assert abs(moved - reference) < 1e-6, (column, moved, reference)
    moved = held_out(Estimator(**params), rescaled(train, target=100.0),
                     rescaled(test, target=100.0))
    assert abs(moved - reference) < 1e-6


@pytest.mark.parametrize("Estimator, params", [
    (MeanClusteredClassifierCV, {"n_alphas": 10}),
    (BlockSparseClassifierCV, {"n_alphas": 10, "eps": 1e-2}),
], ids=["mean_clustered", "block_sparse"])
def test_rescaling_a_feature_does_not_move_the_classifiers_held_out_log_loss(Estimator, params):
    train, test = many_tasks(n_tasks=15, classification=True, seed=1)
    reference = held_out(Estimator(**params), train, test)
    assert reference > -0.69  # better than a coin
    moved = held_out(Estimator(**params), rescaled(train, 3), rescaled(test, 3))
    assert abs(moved - reference) < 1e-5


def test_without_standardize_one_rescaled_feature_changes_the_model():
    # the reason for standardize=True: the unscaled grid and penalty follow the units
    (X, y, task_ids), _ = many_tasks(n_tasks=30)
    X_scaled, _, _ = rescaled((X, y, task_ids), 0)
    models = []
    for standardize in (False, True):
        for features in (X, X_scaled):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", GridEdgeWarning)
                models.append(MeanClusteredRegressorCV(standardize=standardize).fit(
                    features, y, task_ids=task_ids))
    plain, plain_scaled, ours, ours_scaled = models
    # the coefficients of the columns left alone
    assert np.abs(plain.coef_[:, 1:] - plain_scaled.coef_[:, 1:]).max() > 1e-3
    np.testing.assert_allclose(ours_scaled.coef_[:, 1:], ours.coef_[:, 1:], rtol=1e-8,
                               atol=1e-12)
    # the same grid point: the grid follows the standardised data, equal to rounding (the
    # rescaled column divided by its rescaled scale is X's column to an ulp, not bit for bit)
    assert ours.cluster_strength_ == ours_scaled.cluster_strength_
    assert ours.alpha_ == pytest.approx(ours_scaled.alpha_, rel=1e-12)


# -- the criterion and the fast path ------------------------------------------------------------
def test_regressor_split_scores_are_brute_force_refits_and_the_mean_is_pooled():
    (X, y, task_ids), _ = many_tasks(n_tasks=12, n_features=5, seed=2)
    cv = MultiTaskKFold(3, shuffle=True, random_state=0)
    alphas, strengths = [10.0, 1.0, 0.1], [1.0, 10.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridEdgeWarning)
        model = MeanClusteredRegressorCV(alphas=alphas, cluster_strengths=strengths,
                                         cv=cv).fit(X, y, task_ids=task_ids)
    splits = list(cv.split(X, y, task_ids=task_ids))
    point = 0
    for alpha in alphas:
        for c in strengths:
            errors, counts = [], []
            for k, (train, test) in enumerate(splits):
                fit = MeanClusteredRegressor(alpha=alpha, cluster_strength=c,
                                             standardize=True).fit(
                    X[train], y[train], task_ids=task_ids[train])
                residual = y[test] - fit.predict(X[test], task_ids=task_ids[test])
                assert np.isclose(model.cv_results_[f"split{k}_test_score"][point],
                                  -np.mean(residual**2), rtol=1e-9)
                errors.append(np.sum(residual**2))
                counts.append(test.size)
            assert np.isclose(model.cv_results_["mean_test_score"][point],
                              -np.sum(errors) / np.sum(counts), rtol=1e-9)
            point += 1
    refit = MeanClusteredRegressor(alpha=model.alpha_, cluster_strength=model.cluster_strength_,
                                   standardize=True).fit(X, y, task_ids=task_ids)
    np.testing.assert_allclose(model.coef_, refit.coef_, rtol=1e-12)
    np.testing.assert_allclose(model.intercept_, refit.intercept_, rtol=1e-12)


def test_classifier_split_scores_are_brute_force_refits_of_the_pooled_log_loss():
    (X, y, task_ids), _ = many_tasks(n_tasks=8, n_features=4, classification=True, seed=3)
    cv = MultiTaskKFold(3, shuffle=True, random_state=0)
    alphas, strengths = [1.0, 0.1, 0.01], [1.0, 10.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridEdgeWarning)
        model = MeanClusteredClassifierCV(alphas=alphas, cluster_strengths=strengths,
                                          cv=cv, tol=1e-12).fit(X, y, task_ids=task_ids)
    splits = list(cv.split(X, y, task_ids=task_ids))
    for point, params in enumerate(model.cv_results_["params"]):
        for k, (train, test) in enumerate(splits):
            fit = MeanClusteredClassifier(**params, standardize=True, tol=1e-12).fit(
                X[train], y[train], task_ids=task_ids[train])
            p1 = fit.predict_proba(X[test], task_ids=task_ids[test])[:, 1]
            loss = -np.mean(y[test] * np.log(p1) + (1 - y[test]) * np.log1p(-p1))
            assert np.isclose(model.cv_results_[f"split{k}_test_score"][point], -loss,
                              rtol=1e-7)
    refit = MeanClusteredClassifier(alpha=model.alpha_, cluster_strength=model.cluster_strength_,
                                    standardize=True).fit(X, y, task_ids=task_ids)
    np.testing.assert_allclose(model.coef_, refit.coef_, rtol=1e-10, atol=1e-12)


def test_scoring_r2_is_the_mean_over_tasks_of_the_r2():
    from skmtl.metrics import make_multitask_scorer

    (X, y, task_ids), _ = many_tasks(n_tasks=10, n_features=4, seed=4)
    params = dict(alphas=[1.0, 0.1], cluster_strengths=[1.0, 10.0], cv=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridEdgeWarning)
        fast = MeanClusteredRegressorCV(**params, scoring="r2").fit(X, y, task_ids=task_ids)
        slow = MeanClusteredRegressorCV(**params, scoring=make_multitask_scorer("r2")).fit(
            X, y, task_ids=task_ids)
    np.testing.assert_allclose(fast.cv_results_["mean_test_score"],
                               slow.cv_results_["mean_test_score"], rtol=1e-10)


@pytest.mark.parametrize("name", ["MeanClusteredRegressorCV", "TaskRelationRegressorCV",
                                  "LowRankRegressorCV", "BlockSparseRegressorCV"])
@pytest.mark.parametrize("layout", ["wide", "long"])
def test_scoring_r2_warns_once_naming_a_task_undefined_in_test_folds(name, layout):
    """A task of two labels has at most one in a test fold, where its R^2 is undefined: the
    fast r2 left it out of every fold's mean without a word (the scorer of the same name warns
    at every grid point of every fold); one UndefinedMetricWarning names it now, and the
    scores are the scorer's."""
    from sklearn.exceptions import UndefinedMetricWarning

    import skmtl.linear as linear
    from skmtl.metrics import make_multitask_scorer

    rng = np.random.RandomState(15)
    X = rng.normal(size=(60, 3))
    Y = X @ rng.normal(size=(3, 4)) + 0.3 * rng.normal(size=(60, 4))
    Y[:, 3] = np.nan
    Y[[3, 9], 3] = [1.3, 2.7]
    if layout == "wide":
        args, kwargs = (X, Y), {}
    else:
        rows, tasks = np.nonzero(~np.isnan(Y))
        args, kwargs = (X[rows], Y[rows, tasks]), {"task_ids": tasks}
    model = getattr(linear, name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fast = model(scoring="r2", cv=MultiTaskKFold(5)).fit(*args, **kwargs)
    undefined = [str(w.message) for w in caught if w.category is UndefinedMetricWarning]
    assert undefined == ["scoring='r2': R^2 is undefined for task(s) 3 in 2 of 5 test folds "
                         "(fewer than two of their labels there); a fold's score is the mean "
                         "over its other tasks, as skmtl.metrics.r2_score leaves an undefined "
                         "task out of its average."] if layout == "long" else [
        "scoring='r2': R^2 is undefined for task(s) 3 in 5 of 5 test folds (fewer than two of "
        "their labels there); a fold's score is the mean over its other tasks, as "
        "skmtl.metrics.r2_score leaves an undefined task out of its average."]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        grid = {"alphas": fast.alphas_}
        if hasattr(fast, "cluster_strengths_"):
            grid["cluster_strengths"] = fast.cluster_strengths_
        slow = model(scoring=make_multitask_scorer("r2"), cv=MultiTaskKFold(5),
                     **grid).fit(*args, **kwargs)
    np.testing.assert_allclose(fast.cv_results_["mean_test_score"],
                               slow.cv_results_["mean_test_score"], rtol=1e-9)


# -- edges ----------------------------------------------------------------------------------------
def test_a_user_grid_with_the_optimum_at_an_edge_warns_naming_the_parameter():
    (X, y, task_ids), _ = many_tasks(n_tasks=20, n_features=5, seed=5)
    with pytest.warns(GridEdgeWarning, match="best alpha .* smallest value tried .*grid passed"):
        model = MeanClusteredRegressorCV(alphas=[1e4, 1e3], cluster_strengths=[1.0, 10.0]).fit(
            X, y, task_ids=task_ids)
    assert model.alpha_ == 1e3 and model.alphas_.tolist() == [1e4, 1e3]  # not extended
    with pytest.warns(GridEdgeWarning, match="best cluster_strength"):
        MeanClusteredRegressorCV(alphas=[1.0, 0.1, 0.01], cluster_strengths=[0.01, 0.02]).fit(
            X, y, task_ids=task_ids)
    Y = np.full((y.size, 20), np.nan)
    Y[np.arange(y.size), task_ids] = y
    with pytest.warns(GridEdgeWarning, match="best alpha"):
        BlockSparseRegressorCV(alphas=[10.0, 1.0]).fit(X, Y)


@pytest.mark.parametrize("name, alphas", [
    ("TaskRelationRegressorCV", [1e-5, 1e-6, 1e-7]),
    ("ClusteredTasksRegressorCV", [1e-5, 1e-6, 1e-7]),
    ("BlockSparseRegressorCV", [1e-5, 1e-6, 1e-7]),
    ("LowRankRegressorCV", [1e4, 1e3, 1e2]),  # every alpha above alpha_max: W = 0
    ("BlockSparseRegressorCV", [1e4, 1e3]),
    ("LowRankClassifierCV", [1e4, 1e3]),
])
def test_a_user_grid_flat_in_a_limit_of_the_model_warns(name, alphas):
    """A grid passed whose scores are all equal within the plateau (1e-4 relative) was chosen
    from silently: LowRankRegressorCV(alphas=[1e4, 1e3, 1e2]) returned W = 0 (its alpha_max
    was 23.6) with no warning, and alphas of 1e-5 to 1e-7 (no regularisation left) had no
    warning either, though the score improved towards the largest."""
    from skmtl import linear

    (X, y, task_ids), _ = many_tasks(n_tasks=20, n_features=5, seed=5)
    seeded = {"random_state": 0} if name.startswith("ClusteredTasks") else {}
    make = partial(getattr(linear, name), **seeded)
    if "Classifier" in name:
        y = (y > np.median(y)).astype(int)
    Y = np.full((y.size, 20), np.nan)
    Y[np.arange(y.size), task_ids] = y
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # (not the GridEdgeWarning)
        warnings.simplefilter("always", GridEdgeWarning)
        with pytest.warns(GridEdgeWarning, match=(
                r"score is the same, to a relative 0.0001, at every point of the grid passed "
                + re.escape(f"(alpha from {min(alphas):.4g} to {max(alphas):.4g})"))) as caught:
            model = make(alphas=alphas).fit(X, Y)
    assert len([w for w in caught if w.category is GridEdgeWarning]) == 1
    scores = model.cv_results_["mean_test_score"]
    assert np.ptp(scores) <= 1e-4 * abs(scores.max())
    if min(alphas) >= 100:  # W = 0 at every alpha: a tie, which goes to the largest
        assert not np.any(model.coef_) and model.alpha_ == max(alphas)
    if "Classifier" in name:  # (its default grid takes 40 s here)
        return
    # the same estimator on a grid that reaches the optimum: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("error", GridEdgeWarning)
        make().fit(X, Y)


def test_a_flat_user_grid_of_both_mean_clustered_parameters_names_both():
    (X, y, task_ids), _ = many_tasks(n_tasks=20, n_features=5, seed=5)
    with pytest.warns(GridEdgeWarning, match=r"grid passed \(alpha from 1e\+06 to 1e\+07, "
                      r"cluster_strength from 1 to 2\)"):
        model = MeanClusteredRegressorCV(alphas=[1e6, 1e7], cluster_strengths=[1.0, 2.0]).fit(
            X, y, task_ids=task_ids)
    assert np.abs(model.coef_).max() < 1e-4


def test_a_default_grid_is_extended_until_the_optimum_is_inside():
    (X, y, task_ids), _ = many_tasks(n_tasks=20, n_features=5, seed=6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GridEdgeWarning)
        short = MeanClusteredRegressorCV(n_alphas=3, eps=0.5).fit(X, y, task_ids=task_ids)
    ratio = short.alphas_[0] / short.alphas_[1]
    np.testing.assert_allclose(short.alphas_[:-1] / short.alphas_[1:], ratio)  # one grid
    assert short.alphas_.size > 3  # extended downwards by whole decades
    assert short.alphas_[0] > short.alpha_ > short.alphas_[-1]  # an interior optimum
    # the extended search is the search over the extended grid passed by hand
    by_hand = MeanClusteredRegressorCV(alphas=short.alphas_,
                                       cluster_strengths=short.cluster_strengths_).fit(
        X, y, task_ids=task_ids)
    assert (by_hand.alpha_, by_hand.cluster_strength_) == (short.alpha_,
                                                           short.cluster_strength_)
    np.testing.assert_allclose(by_hand.cv_results_["mean_test_score"],
                               short.cv_results_["mean_test_score"], rtol=1e-10)


def test_an_optimum_beyond_every_extension_warns():
    # noise-free targets: every smaller alpha predicts better, however far the grid goes
    rng = np.random.default_rng(7)
    task_ids = np.repeat(np.arange(6), 30)
    X = rng.normal(size=(180, 3))
    y = np.einsum("ij,ij->i", X, rng.normal(size=(6, 3))[task_ids])
    with pytest.warns(GridEdgeWarning, match="smallest value tried .after extending"):
        model = MeanClusteredRegressorCV(n_alphas=4, eps=0.1, cluster_strengths=[1.0]).fit(
            X, y, task_ids=task_ids)
    assert model.alpha_ == model.alphas_.min() < 1e-3 * model.alphas_.max()
    Y = np.full((180, 6), np.nan)
    Y[np.arange(180), task_ids] = y
    with pytest.warns(GridEdgeWarning, match="best alpha"):
        block = BlockSparseRegressorCV(n_alphas=4, eps=0.1, tol=1e-10).fit(X, Y)
    assert block.alphas_.size > 4


@pytest.mark.parametrize("name", ["MeanClusteredRegressorCV", "ClusteredTasksRegressorCV",
                                  "TaskRelationRegressorCV", "LowRankRegressorCV"])
def test_targets_in_small_units_extend_the_grid_and_warn_alike(name):
    """The edge test of the grids is relative: y times 1e-6 (held-out MSE near 1e-14) extends
    the default grid as y does and chooses the same alpha (LowRank's, whose grid follows y,
    times 1e-6), and warns alike at the edge of a grid passed by hand. (An absolute floor of
    1e-12 on the gain hid every edge: MeanClusteredRegressorCV stopped at the default grid's
    smallest alpha, 3.2e-2 instead of 2.0e-4, without a warning.)"""
    import skmtl.linear

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    Y = X @ rng.normal(size=(3, 4)).T + 0.1 * rng.normal(size=(200, 3))  # a small alpha wins
    Estimator = getattr(skmtl.linear, name)
    params = dict(n_alphas=8, cv=3)
    if name.startswith("ClusteredTasks"):
        params["random_state"] = 0
    unit = 1e-6 if name.startswith("LowRank") else 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", GridEdgeWarning)
        fits = [Estimator(**params).fit(X, Y * scale) for scale in (1.0, 1e-6)]
    assert fits[0].alphas_.size > 8  # extended by the edge test
    np.testing.assert_allclose(fits[1].alphas_, fits[0].alphas_ * unit, rtol=1e-6)
    assert fits[1].alpha_ == pytest.approx(fits[0].alpha_ * unit, rel=1e-6)
    np.testing.assert_allclose(fits[1].predict(X), 1e-6 * fits[0].predict(X), rtol=1e-6,
                               atol=1e-12)
    grid = fits[0].alphas_[:3]  # the default grid's largest: the optimum below, an edge
    for scale, factor in ((1.0, 1.0), (1e-6, unit)):
        with pytest.warns(GridEdgeWarning, match="smallest value tried"):
            Estimator(**{**params, "alphas": grid * factor}).fit(X, Y * scale)


def test_block_sparse_default_grid_is_extended_below_eps():
    (X, y, task_ids), _ = many_tasks(n_tasks=10, n_features=8, seed=8)
    Y = np.full((y.size, 10), np.nan)
    Y[np.arange(y.size), task_ids] = y
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridEdgeWarning)
        model = BlockSparseRegressorCV(n_alphas=3, eps=0.3).fit(X, Y)
    assert model.alphas_.size > 3
    assert model.alphas_.min() < 0.3 * model.alphas_.max()
    assert model.cv_results_["mean_test_score"].shape == model.alphas_.shape


# -- new tasks and one-class tasks ----------------------------------------------------------------
@pytest.mark.parametrize("Estimator", [MeanClusteredRegressorCV, MeanClusteredClassifierCV])
def test_cv_estimators_predict_a_new_task_with_the_mean_model(Estimator):
    classification = Estimator is MeanClusteredClassifierCV
    (X, y, task_ids), _ = many_tasks(n_tasks=10, n_features=4,
                                     classification=classification, seed=9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridEdgeWarning)
        model = Estimator(n_alphas=5, unknown_task="shared").fit(X, y, task_ids=task_ids)
    np.testing.assert_allclose(model.shared_coef_, model.coef_.mean(axis=0), rtol=1e-12)
    z = X[:4] @ model.shared_coef_ + model.shared_intercept_
    if classification:
        p = 1.0 / (1.0 + np.exp(-z))
        np.testing.assert_allclose(model.predict_proba(X[:4], task_ids=[-1] * 4),
                                   np.column_stack([1 - p, p]), rtol=1e-12)
    else:
        np.testing.assert_allclose(model.predict(X[:4], task_ids=[-1] * 4), z, rtol=1e-12)


def test_classifier_cv_fits_tasks_with_one_class():
    # a binary problem in which two tasks saw one class: the folds and the refit fit them
    (X, y, task_ids), _ = many_tasks(n_tasks=8, n_features=4, classification=True, seed=10)
    y = y.copy()
    y[task_ids == 2] = 1
    y[task_ids == 5] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridEdgeWarning)
        model = MeanClusteredClassifierCV(n_alphas=5).fit(X, y, task_ids=task_ids)
    proba = model.predict_proba(X, task_ids=np.full(y.size, 2))
    assert np.all(np.isfinite(proba)) and np.all(proba[:, 1] > 0.5)
    assert np.all(np.isfinite(model.intercept_))
    block = BlockSparseClassifierCV(n_alphas=5, eps=1e-2).fit(X, y, task_ids=task_ids)
    proba = block.predict_proba(X, task_ids=np.full(y.size, 5))
    assert np.all(np.isfinite(proba)) and np.all(proba[:, 0] > 0.5)


@pytest.mark.parametrize("frame", [False, True])
@pytest.mark.parametrize("name", ["MeanClusteredClassifierCV", "BlockSparseClassifierCV",
                                  "LowRankClassifierCV", "ClusteredTasksClassifierCV",
                                  "TaskRelationClassifierCV"])
def test_the_inner_folds_warning_names_the_wide_task_as_the_user_does(name, frame):
    # wide Y: column 0 has one label (only trained on: the splitter does not see it), column 2
    # one label of class 1. The warning named "task(s) 1", its position among the columns the
    # splitter saw; it names column 2 (or "rare" in a DataFrame)
    import skmtl.linear

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    Y = np.full((40, 3), np.nan)
    Y[0, 0] = 1.0
    Y[:, 1] = rng.integers(0, 2, 40)
    Y[:, 2] = 0.0
    Y[5, 2] = 1.0
    expected = "2"
    if frame:
        pd = pytest.importorskip("pandas")
        Y = pd.DataFrame(Y, columns=["single", "common", "rare"])
        expected = "'rare'"
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        getattr(skmtl.linear, name)(cv=3).fit(X, Y)
    messages = [str(w.message) for w in record if "MultiTaskKFold" in str(w.message)]
    assert messages
    assert all(f"single class of task(s) {expected}," in m for m in messages), messages


@pytest.mark.parametrize("n_rows", [7, 300, 10_007])
@pytest.mark.parametrize("value", [1.0, 0.1, 5.0, -3.7, 1e5])
def test_a_constant_column_has_scale_one(n_rows, value):
    """Exactly 1 for a constant column, dense or sparse, whatever the row weights: the
    rounding error of the weighted mean is no spread (300 ones had a scale of 3.9e-15)."""
    import scipy.sparse as sp

    from skmtl.linear._standardize import column_scales

    rng = np.random.default_rng(n_rows)
    X = np.column_stack([rng.normal(size=n_rows), np.full(n_rows, value)])
    for weight in (np.ones(n_rows), rng.integers(1, 4, size=n_rows).astype(float)):
        for fmt in (np.asarray, sp.csr_matrix):
            scale = column_scales(fmt(X), weight, center=True)
            assert scale[1] == 1.0
            mean = weight @ X[:, 0] / weight.sum()
            expected = np.sqrt(weight @ (X[:, 0] - mean) ** 2 / weight.sum())
            np.testing.assert_allclose(scale[0], expected, rtol=1e-12)


@pytest.mark.parametrize("estimator", ["LowRankClassifierCV", "BlockSparseClassifierCV",
                                       "TaskRelationClassifierCV"])
def test_a_column_of_ones_leaves_the_classifier_cv_unchanged(estimator):
    """A column of ones beside the intercept (a CSV's constant column): the same alpha and
    held-out accuracy as without it. Its scale was 3.9e-15, the column 2.6e14 after
    standardising: LowRank and BlockSparse chose alpha ~ 3e11 (every coefficient 0,
    accuracy 0.53 instead of 0.98), TaskRelation failed ("Eigenvalues did not converge")."""
    import skmtl.linear

    rng = np.random.default_rng(0)
    T, n_t, d = 6, 50, 8
    X, task_ids = rng.normal(size=(T * n_t, d)), np.repeat(np.arange(T), n_t)
    coef = rng.normal(size=d) + 0.5 * rng.normal(size=(T, d))
    y = (np.einsum("ij,ij->i", X, coef[task_ids]) + 0.3 * rng.logistic(size=len(X)) > 0
         ).astype(int)
    train = rng.uniform(size=len(X)) < 0.7
    fits = []
    for design in (X, np.column_stack([X, np.ones(len(X))])):
        model = getattr(skmtl.linear, estimator)(n_alphas=8, cv=3).fit(
            design[train], y[train], task_ids=task_ids[train])
        accuracy = model.score(design[~train], y[~train], task_ids=task_ids[~train])
        fits.append((model.alpha_, accuracy))
    assert fits[1][0] == pytest.approx(fits[0][0], rel=1e-6)
    assert fits[1][1] == pytest.approx(fits[0][1], abs=0.02)
    assert fits[0][1] > 0.8  # (chance: 0.5)


def test_near_constant_columns_scale_alike_dense_and_sparse():
    """A spread below 1e-6 of the mean is no spread, for dense X as for sparse: ``1 + 1e-12
    noise`` got 9e-13 dense (the uncentred column then 1.1e12 +- 1) and 1 sparse."""
    import scipy.sparse as sp

    from skmtl.linear._standardize import column_scales

    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=300), 1 + 1e-12 * rng.normal(size=300),
                         1e3 + 1e-2 * rng.normal(size=300)])  # 1e-5 of the mean: a spread
    weight = rng.integers(1, 3, size=300).astype(float)
    with pytest.warns(UserWarning, match=re.escape("Feature(s) [1] vary by less than")):
        dense = column_scales(X, weight, True)
    with pytest.warns(UserWarning, match=re.escape("Feature(s) [1] vary by less than")):
        sparse = column_scales(sp.csr_matrix(X), weight, True)
    assert dense[1] == sparse[1] == 1.0
    np.testing.assert_allclose(dense, sparse, rtol=1e-4)  # sparse: one pass, (1e5)^2 eps
    assert 0.005 < dense[2] < 0.02


@pytest.mark.parametrize("fmt", [np.asarray, sp.csr_matrix, sp.csc_matrix])
def test_a_column_left_unscaled_but_not_constant_warns(fmt):
    """A column that varies by less than 1e-6 of its mean is left unscaled, as a constant
    is; it is named in a warning, constant columns are not (Exam's standLRT as seconds
    around a time stamp, 1.7e9 + 60 x: TaskRelationRegressorCV chose alpha 387 instead of 0.39
    and lost 0.024 of held-out R^2, silently)."""
    from skmtl.linear._standardize import column_scales

    rng = np.random.default_rng(0)
    n = 300
    X = np.column_stack([rng.normal(size=n), np.full(n, 0.1), 1e9 + 100 * rng.normal(size=n),
                         np.full(n, 1e5), 1 + 1e-12 * rng.normal(size=n)])
    weight = rng.integers(0, 3, size=n).astype(float)  # rows of weight 0 do not count
    with pytest.warns(UserWarning, match=re.escape("Feature(s) [2, 4] vary by less than "
                                                   "1e-6 of their mean")) as caught:
        scale = column_scales(fmt(X), weight, center=True)
    assert len(caught) == 1
    assert (scale[1:] == 1.0).all()
    # the same columns constant over the counted rows: no warning
    X[weight > 0, 2], X[weight > 0, 4] = 1e9, 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (column_scales(fmt(X), weight, center=True)[1:] == 1.0).all()
        column_scales(fmt(X), weight, center=False)


def test_a_cv_variant_names_the_offset_column():
    rng = np.random.default_rng(1)
    X, task_ids = rng.normal(size=(120, 3)), np.repeat(np.arange(4), 30)
    y = X @ [1.0, -1.0, 0.5] + 2.0 * rng.normal(size=120)
    X[:, 1] = 1.7e9 + 60 * X[:, 1]  # seconds: a one-minute spread around a date
    message = re.escape("Feature(s) [1] vary by less than 1e-6 of their mean")
    with pytest.warns(UserWarning, match=message):
        MeanClusteredRegressorCV(n_alphas=3, cv=3).fit(X, y, task_ids=task_ids)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        MeanClusteredRegressorCV(n_alphas=3, cv=3).fit(X - [0, 1.7e9, 0], y, task_ids=task_ids)
    assert not [w for w in caught if re.search(message, str(w.message))]


def test_the_moment_scale_of_the_grid_ignores_a_column_it_cannot_measure():
    """The largest eigenvalue behind the default grids, against a two-pass computation, with a
    column 1e12 + N(0, 0.5^2) (the one-pass form kept 1e8 of rounding as its spread, and the
    grid of MeanClustered, ClusteredTasks and TaskRelation RegressorCV held only zero models)."""
    from skmtl.linear._solver_mean_clustered import _largest_moment_eigenvalue

    rng = np.random.default_rng(1)
    T, n = 6, 300
    X = np.column_stack([rng.normal(size=(n, 8)), 1e12 + 0.5 * rng.normal(size=n)])
    tasks = rng.integers(T, size=n)
    reference = np.zeros((9, 9))
    for t in range(T):
        Z = X[tasks == t] - X[tasks == t].mean(axis=0)
        reference += Z.T @ Z / len(Z)
    e_max = _largest_moment_eigenvalue(X, np.arange(n), tasks, T, True)
    # dense X is shifted by its column means first: the column is measured, e_max is all
    # the columns' (before: the other columns' only, the large one left out)
    assert e_max == pytest.approx(np.linalg.eigvalsh(reference / T)[-1], rel=1e-6)
    # sparse X is not shifted: the column it cannot measure is left out
    e_sparse = _largest_moment_eigenvalue(sp.csr_matrix(X), np.arange(n), tasks, T, True)
    assert e_sparse == pytest.approx(np.linalg.eigvalsh(reference[:8, :8] / T)[-1], rel=1e-10)
    assert e_sparse == pytest.approx(e_max, rel=1e-3)


@pytest.mark.parametrize("name", ["MeanClusteredRegressorCV", "ClusteredTasksRegressorCV",
                                  "TaskRelationRegressorCV", "MeanClusteredClassifierCV",
                                  "ClusteredTasksClassifierCV", "TaskRelationClassifierCV"])
def test_the_default_grid_ignores_where_a_column_starts(name):
    """A column shifted by 3e4 (its spread 3e-5 of its mean) leaves the default grid, the
    chosen alpha and the predictions unchanged. (The moment scale of the grid dropped the
    column as unmeasurable: TaskRelationClassifierCV's grid top went from 10.5 to 7.2, its
    alpha from 0.0039 to 0.0072 and its probabilities moved by up to 0.08.)"""
    import skmtl.linear

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 1)) + 0.3 * rng.normal(size=(60, 3))
    Y = X @ rng.normal(size=(3, 3)).T + 0.5 * rng.normal(size=(60, 3))
    if "Classifier" in name:
        Y = (Y > np.median(Y, axis=0)).astype(float)
    shifted = X.copy()
    shifted[:, 0] += 3e4
    params = dict(n_alphas=8, cv=3)
    if name.startswith("ClusteredTasks"):
        params["random_state"] = 0
    Estimator = getattr(skmtl.linear, name)
    base, moved = Estimator(**params).fit(X, Y), Estimator(**params).fit(shifted, Y)
    np.testing.assert_allclose(moved.alphas_, base.alphas_, rtol=1e-6)
    assert moved.alpha_ == pytest.approx(base.alpha_, rel=1e-6)
    if "Classifier" in name:
        for p, q in zip(moved.predict_proba(shifted), base.predict_proba(X)):
            np.testing.assert_allclose(p, q, atol=1e-6)
    else:
        np.testing.assert_allclose(moved.predict(shifted), base.predict(X), rtol=1e-6)


def _binary_tasks(T=6, n_t=100, d=8, seed=0):
    """Long binary data: T tasks of n_t rows sharing a mean coefficient vector."""
    rng = np.random.default_rng(seed)
    X, task_ids = rng.normal(size=(T * n_t, d)), np.repeat(np.arange(T), n_t)
    coef = rng.normal(size=d) + 0.5 * rng.normal(size=(T, d))
    y = (np.einsum("ij,ij->i", X, coef[task_ids]) + rng.logistic(size=len(X)) > 0).astype(int)
    return X, y, task_ids, rng.uniform(size=len(X)) < 0.6


def _shifted_designs(X):
    """X, then X with a constant column of 1e6, with a column of 2023 in front, and with one
    column shifted by 1e4: the same information, the columns' zeros elsewhere."""
    shifted = X.copy()
    shifted[:, 3] += 1e4
    return [X, np.column_stack([X, np.full(len(X), 1e6)]),
            np.column_stack([np.full(len(X), 2023.0), X]), shifted]


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("name", ["BlockSparseClassifier", "LowRankClassifier",
                                  "MeanClusteredClassifier", "ClusteredTasksClassifier",
                                  "TaskRelationClassifier"])
def test_every_classifier_pulls_its_intercepts_at_the_mean_of_x(name, sparse):
    """The multi-task classifiers pull their intercepts together at the mean of X: a constant
    column, or a constant added to a column, changes no prediction and no coefficient of the
    other columns (only ``intercept_``), dense or sparse X, and the solver converges as fast.
    (Pulled at x = 0, a constant column of 1e6 escaped the pull: LowRankClassifier stopped at
    chance and TaskRelationClassifier ran its 1,000-iteration limit; a StandardScaler had to
    come first.)"""
    import skmtl.linear

    X, y, task_ids, train = _binary_tasks()
    params = {"BlockSparseClassifier": dict(alpha=0.01), "LowRankClassifier": dict(alpha=0.01),
              "ClusteredTasksClassifier": dict(n_clusters=2, random_state=0)}.get(name, {})
    fits = []
    for design in _shifted_designs(X):
        model = getattr(skmtl.linear, name)(**params)
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            model.fit(sp.csr_matrix(design[train]) if sparse else design[train], y[train],
                      task_ids=task_ids[train])
        proba = model.predict_proba(design[~train], task_ids=task_ids[~train])
        fits.append((model, np.asarray(proba)))
    (reference, proba), d = fits[0], X.shape[1]
    assert reference.score(X[~train], y[~train], task_ids=task_ids[~train]) > 0.7
    for (model, other), columns in zip(fits[1:], [slice(0, d), slice(1, d + 1), slice(0, d)]):
        np.testing.assert_allclose(other, proba, atol=1e-5)
        np.testing.assert_allclose(model.coef_[:, columns], reference.coef_, atol=1e-5)
        n_iter = np.max(getattr(model, "n_iter_", 0))
        assert n_iter <= 2 * np.max(getattr(reference, "n_iter_", 0)) + 10


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("name", ["LowRankClassifierCV", "BlockSparseClassifierCV"])
def test_classifiers_pulled_at_the_mean_ignore_where_a_column_starts(name, sparse):
    """The intercepts of the block-sparse and trace-norm classifiers are pulled at the mean of
    X: a constant column of 1e6 (or 2023) beside the features, or a column shifted by 1e4,
    changes neither the chosen alpha nor a prediction, dense or sparse X. (Pulled at x = 0,
    the constant column escaped the pull: the trace-norm classifier stopped at chance, 0.44
    held out against 0.91, and the block-sparse one ran to its iteration limit.)"""
    import skmtl.linear

    X, y, task_ids, train = _binary_tasks()
    fits = []
    for design in _shifted_designs(X):
        model = getattr(skmtl.linear, name)(n_alphas=8, cv=3)
        model.fit(sp.csr_matrix(design[train]) if sparse else design[train], y[train],
                  task_ids=task_ids[train])
        fits.append((model, design[~train]))
    reference, X_test = fits[0]
    proba = np.column_stack(reference.predict_proba(X_test, task_ids=task_ids[~train]))
    assert reference.score(X_test, y[~train], task_ids=task_ids[~train]) > 0.7
    for model, X_other in fits[1:]:
        assert model.alpha_ == pytest.approx(reference.alpha_, rel=1e-6)
        other = np.column_stack(model.predict_proba(X_other, task_ids=task_ids[~train]))
        np.testing.assert_allclose(other, proba, atol=1e-5)


# -- a scorer sees the user's labels -------------------------------------------------------------
# each classifier *CV with the fixed-parameter model it searches, and a small grid
_CLASSIFIERS_CV = {
    "MeanClustered": (partial(MeanClusteredClassifierCV, alphas=[1.0, 0.01],
                              cluster_strengths=[1.0, 10.0], tol=1e-10), MeanClusteredClassifier),
    "BlockSparse": (partial(BlockSparseClassifierCV, alphas=[0.1, 0.003], tol=1e-10),
                    BlockSparseClassifier),
    "TaskRelation": (partial(TaskRelationClassifierCV, alphas=[1.0, 0.01], tol=1e-10),
                     TaskRelationClassifier),
    "ClusteredTasks": (partial(ClusteredTasksClassifierCV, alphas=[1.0, 0.01],
                               random_state=0), ClusteredTasksClassifier),
    "LowRank": (partial(LowRankClassifierCV, alphas=[0.1, 0.003], tol=1e-10),
                LowRankClassifier),
}


def _labelled_tasks(labels, layout, seed=0):
    """Three binary tasks labelled ``labels`` (negative, positive), 20% of the labels missing
    (NaN, or None for strings), as ``(X, y, fit_kwargs, folds)``: wide, long (the observed
    labels, one a row, with ``task_ids``) or 1-D (the first task, complete)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(72, 3))
    positive = X @ rng.normal(size=(3, 3)) + rng.logistic(size=(72, 3)) > 0
    missing = rng.uniform(size=(72, 3)) < 0.2
    codes = np.where(missing, np.nan, positive.astype(float))
    splitter = MultiTaskKFold(3, shuffle=True, random_state=0)
    negative, positive_label = labels
    if layout == "1d":
        y = np.where(positive[:, 0], positive_label, negative)
        return X, y, {}, list(splitter.split(X, positive[:, 0].astype(float)))
    if layout == "long":
        rows, tasks = np.nonzero(~missing)
        y = np.where(positive[rows, tasks], positive_label, negative)
        folds = list(splitter.split(X[rows], codes[rows, tasks], task_ids=tasks))
        return X[rows], y, {"task_ids": tasks}, folds
    Y = np.where(positive, positive_label, negative)
    Y = Y.astype(object if isinstance(negative, str) else float)
    Y[missing] = None if isinstance(negative, str) else np.nan
    return X, Y, {}, list(splitter.split(X, codes))


def _brute_force_scores(model, Fixed, X, y, fit_kwargs, folds, scorer):
    """(n_points, n_splits) scores of clone + fit + ``scorer`` on ``folds`` at each grid point
    of ``model.cv_results_``."""
    task_ids = fit_kwargs.get("task_ids")
    shared = {name: value for name, value in model.get_params().items()
              if name in Fixed().get_params()}
    scores = np.empty((len(model.cv_results_["params"]), len(folds)))
    for point, params in enumerate(model.cv_results_["params"]):
        for k, (train, test) in enumerate(folds):
            fitted = clone(Fixed(**shared, **params)).fit(
                X[train], y[train], **({} if task_ids is None else {"task_ids": task_ids[train]}))
            scores[point, k] = scorer(fitted, X[test], y[test], **(
                {} if task_ids is None else {"task_ids": task_ids[test]}))
    return scores


def _assert_search_is_brute_force(model, brute):
    for k in range(brute.shape[1]):
        np.testing.assert_allclose(model.cv_results_[f"split{k}_test_score"], brute[:, k],
                                   atol=1e-9)
    np.testing.assert_allclose(model.cv_results_["mean_test_score"], brute.mean(axis=1),
                               atol=1e-9)
    assert model.best_score_ == pytest.approx(brute.mean(axis=1).max(), abs=1e-9)


@pytest.mark.parametrize("layout", ["wide", "long", "1d"])
@pytest.mark.parametrize("labels", [(-1, 1), (3, 7), ("no", "yes")], ids=str)
@pytest.mark.parametrize("name", list(_CLASSIFIERS_CV))
def test_a_classifier_scoring_name_scores_the_users_labels_as_brute_force(name, labels, layout):
    """``scoring="roc_auc"`` and ``"accuracy"`` equal clone + fit + the scorer on the same
    folds for labels other than {0, 1}. (The scorer was given the class codes 0/1 as y_true
    while the model predicts the user's labels: accuracy 0 everywhere with {3, 7}, wrong with
    {-1, 1}, and roc_auc raised.)"""
    from skmtl.metrics import get_multitask_scorer

    make, Fixed = _CLASSIFIERS_CV[name]
    X, y, fit_kwargs, folds = _labelled_tasks(labels, layout)
    scoring = "roc_auc" if layout != "1d" else "accuracy"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # (GridEdgeWarning too)
        model = make(cv=folds, scoring=scoring).fit(X, y, **fit_kwargs)
        brute = _brute_force_scores(model, Fixed, X, y, fit_kwargs, folds,
                                    get_multitask_scorer(scoring))
    _assert_search_is_brute_force(model, brute)


@pytest.mark.parametrize("layout", ["wide", "long"])
@pytest.mark.parametrize("labels", [(-1, 1), (3, 7), ("no", "yes")], ids=str)
def test_a_scoring_callable_sees_the_users_labels(labels, layout):
    """A callable gets y_true in the user's labels (wide: missing as NaN, or None for text;
    long: one label a row) and its scores equal brute force."""
    seen = []

    def observed_accuracy(estimator, X, y, task_ids=None):
        y = np.asarray(y)
        observed = ~missing_mask(y)
        seen.append(set(y[observed].tolist()))
        predicted = np.asarray(estimator.predict(X, **(
            {} if task_ids is None else {"task_ids": task_ids})))
        return accuracy_score(y[observed].tolist(), predicted[observed].tolist())

    make, Fixed = _CLASSIFIERS_CV["MeanClustered"]
    X, y, fit_kwargs, folds = _labelled_tasks(labels, layout, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = make(cv=folds, scoring=observed_accuracy).fit(X, y, **fit_kwargs)
    assert set().union(*seen) == set(labels)
    brute = _brute_force_scores(model, Fixed, X, y, fit_kwargs, folds, observed_accuracy)
    _assert_search_is_brute_force(model, brute)
    assert brute.mean(axis=1).max() > 0.6  # a criterion worth choosing with


# -- a test fold without any label --------------------------------------------------------------
_REGRESSORS_CV = {
    "MeanClustered": (partial(MeanClusteredRegressorCV, alphas=[10.0, 0.1],
                              cluster_strengths=[1.0, 10.0]), MeanClusteredRegressor),
    "BlockSparse": (partial(BlockSparseRegressorCV, alphas=[1.0, 0.01], tol=1e-12),
                    BlockSparseRegressor),
    "TaskRelation": (partial(TaskRelationRegressorCV, alphas=[10.0, 0.1], tol=1e-13),
                     TaskRelationRegressor),
    "ClusteredTasks": (partial(ClusteredTasksRegressorCV, alphas=[10.0, 0.1], random_state=0),
                       ClusteredTasksRegressor),
    "LowRank": (partial(LowRankRegressorCV, alphas=[1.0, 0.01], tol=1e-12), LowRankRegressor),
}


def _unlabelled_first_rows(classification=False):
    """Wide data of 3 tasks whose first 10 of 50 rows hold no label (20% missing elsewhere),
    and groups putting those 10 rows in group 0."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 4))
    Y = X @ rng.normal(size=(4, 3)) + 3.0 * rng.normal(size=(50, 3))
    if classification:
        Y = (Y > 0).astype(float)
    Y[rng.uniform(size=Y.shape) < 0.2] = np.nan
    Y[:10] = np.nan
    groups = np.r_[np.zeros(10), np.arange(40) % 4 + 1]
    return X, Y, groups


def _folds_of(cv, X, Y, groups):
    if cv == "kfold":
        return KFold(5), {}, list(KFold(5).split(X))
    splitter = MultiTaskGroupKFold(5)
    return splitter, {"groups": groups}, list(splitter.split(X, Y, groups))


@pytest.mark.parametrize("cv", ["kfold", "group"])
@pytest.mark.parametrize("name", list(_REGRESSORS_CV))
def test_a_test_fold_without_labels_is_left_out_of_the_pooled_squared_error(name, cv):
    """The default criterion, the squared errors of all test labels summed over the folds
    and divided by their number, by hand: a fold whose rows hold no label adds nothing and
    keeps a NaN split score. (It made every mean NaN, and the fit raised blaming R^2.)"""
    make, Fixed = _REGRESSORS_CV[name]
    X, Y, groups = _unlabelled_first_rows()
    splitter, fit_kwargs, folds = _folds_of(cv, X, Y, groups)
    empty = [k for k, (_, test) in enumerate(folds) if np.isnan(Y[test]).all()]
    assert len(empty) == 1  # the fold of the 10 rows without labels
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = make(cv=splitter).fit(X, Y, **fit_kwargs)
    shared = {key: value for key, value in model.get_params().items()
              if key in Fixed().get_params()}
    for point, params in enumerate(model.cv_results_["params"]):
        errors, counts = [], []
        for k, (train, test) in enumerate(folds):
            fitted = Fixed(**shared, **params).fit(X[train], Y[train])
            observed = ~np.isnan(Y[test])
            squared = (Y[test] - fitted.predict(X[test]))[observed] ** 2
            split = model.cv_results_[f"split{k}_test_score"][point]
            if k in empty:
                assert np.isnan(split)
                continue
            assert split == pytest.approx(-squared.mean(), rel=1e-7)
            errors.append(squared.sum())
            counts.append(observed.sum())
        assert model.cv_results_["mean_test_score"][point] == pytest.approx(
            -sum(errors) / sum(counts), rel=1e-7)
    means = model.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(means)) and np.all(np.isfinite(model.cv_results_["std_test_score"]))
    assert model.best_score_ == means.max()


def test_a_test_fold_without_labels_is_left_out_of_the_pooled_log_loss_and_a_scorer():
    from skmtl.metrics import get_multitask_scorer

    accuracy = get_multitask_scorer("accuracy")
    X, Y, groups = _unlabelled_first_rows(classification=True)
    splitter, _, folds = _folds_of("kfold", X, Y, groups)
    make, Fixed = _CLASSIFIERS_CV["MeanClustered"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        pooled = make(cv=splitter).fit(X, Y)
        scored = make(cv=splitter, scoring="accuracy").fit(X, Y)
    for point, params in enumerate(pooled.cv_results_["params"]):
        losses, counts, accuracies = 0.0, 0, []
        for train, test in folds[1:]:
            fitted = Fixed(**params, standardize=True, tol=1e-10).fit(X[train], Y[train])
            observed = ~np.isnan(Y[test])
            positive = np.column_stack([p[:, 1] for p in fitted.predict_proba(X[test])])
            losses += log_loss(Y[test][observed], positive[observed], normalize=False)
            counts += observed.sum()
            accuracies.append(accuracy(fitted, X[test], Y[test]))
        assert pooled.cv_results_["mean_test_score"][point] == pytest.approx(
            -losses / counts, rel=1e-7)
        # a scorer is not called on the fold without labels: the mean of the others' scores
        assert np.isnan(scored.cv_results_["split0_test_score"][point])
        assert scored.cv_results_["mean_test_score"][point] == pytest.approx(
            np.mean(accuracies), abs=1e-12)


@pytest.mark.parametrize("scoring, match", [
    (None, r"\(the default criterion, minus the held-out squared error pooled over all test "
           r"labels\): no test fold holds a label"),
    ("neg_mean_absolute_error", r"\(scoring='neg_mean_absolute_error'\): no test fold holds"),
])
def test_no_test_fold_with_a_label_raises_naming_the_criterion(scoring, match):
    X, Y, _ = _unlabelled_first_rows()
    folds = [(np.arange(10, 50), np.arange(5)), (np.arange(10, 50), np.arange(5, 10))]
    with pytest.raises(ValueError, match=match):
        MeanClusteredRegressorCV(alphas=[1.0], cluster_strengths=[1.0], cv=folds,
                                 scoring=scoring).fit(X, Y)


def test_a_scorer_undefined_on_every_fold_raises_naming_it():
    def undefined_everywhere(estimator, X, y):
        return np.nan

    X, Y, _ = _unlabelled_first_rows(classification=True)
    with pytest.raises(ValueError, match=r"\(scoring=<function .*undefined_everywhere.*\): "
                                         r"the scorer returned NaN on a test fold at every"):
        MeanClusteredClassifierCV(alphas=[1.0], cluster_strengths=[1.0], cv=3,
                                  scoring=undefined_everywhere).fit(X, Y)
