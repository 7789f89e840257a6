"""TaskRelationRegressorCV / TaskRelationClassifierCV: the model-specific checks (the search
itself is tested with the other alpha-only CVs in test_alpha_path_cv.py)."""

import warnings

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, KFold

from skmtl.linear import (
    GridEdgeWarning,
    MeanClusteredClassifierCV,
    MeanClusteredRegressorCV,
    TaskRelationClassifier,
    TaskRelationRegressor,
)
from skmtl.linear._task_relation_cv import TaskRelationClassifierCV, TaskRelationRegressorCV


def _opposite_groups(classify, n=60, seed=0, noise=1.0):
    """Wide data: six tasks along one direction, three of each sign, some labels missing."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3)) + 0.5
    signs = np.array([1, 1, 1, -1, -1, -1])
    Z = X @ (signs[:, None] * np.array([1.0, -2.0, 0.5])).T
    if classify:
        Y = (Z + noise * rng.logistic(size=Z.shape) > 0).astype(float)
    else:
        Y = Z + noise * rng.standard_normal(Z.shape)
    Y[rng.random(Y.shape) < 0.2] = np.nan
    return X, Y, signs


@pytest.mark.parametrize("classify", [False, True], ids=["regressor", "classifier"])
def test_no_relation_term_is_mean_clustered_cv_at_cluster_strength_one(classify):
    # relation_ratio=0: independent ridge tasks with penalty alpha / 2 ||w_t||^2, which is
    # MeanClustered's at cluster_strength=1 and alpha' = T alpha / 2; the documented default
    # grids are the same models (alpha_max = 10 h e_max), so the same scores and choice
    X, Y, _ = _opposite_groups(classify, noise=4.0)  # an optimum inside the grid
    T = Y.shape[1]
    splits = list(KFold(3, shuffle=True, random_state=0).split(X))
    CV, Reference = ((TaskRelationClassifierCV, MeanClusteredClassifierCV) if classify
                     else (TaskRelationRegressorCV, MeanClusteredRegressorCV))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridEdgeWarning)
        ours = CV(relation_ratio=0.0, n_alphas=4, cv=splits, tol=1e-12).fit(X, Y)
        ref = Reference(cluster_strengths=(1.0,), n_alphas=4, cv=splits,
                        **({"tol": 1e-12} if classify else {})).fit(X, Y)
    np.testing.assert_allclose(ours.alphas_, 2 * ref.alphas_ / T, rtol=1e-12)
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"],
                               ref.cv_results_["mean_test_score"], rtol=1e-7)
    assert ours.alpha_ == pytest.approx(2 * ref.alpha_ / T, rel=1e-12)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=0, atol=1e-6)


@pytest.mark.parametrize("classify", [False, True], ids=["regressor", "classifier"])
def test_related_tasks_are_found_at_the_chosen_alpha(classify):
    X, Y, signs = _opposite_groups(classify, n=80, seed=1)
    Estimator = TaskRelationClassifierCV if classify else TaskRelationRegressorCV
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridEdgeWarning)
        model = Estimator(n_alphas=4, cv=3, tol=1e-8).fit(X, Y)
    assert np.array_equal(np.sign(model.task_correlation_), np.outer(signs, signs))
    assert np.trace(model.task_covariance_) == pytest.approx(1.0)
    assert model.alpha_ in model.alphas_


def test_relation_ratio_is_searched_by_grid_search_over_the_cv():
    # the documented composition: each relation_ratio chooses its own alpha inside; on tasks
    # sharing one direction the relation term helps
    X, Y, _ = _opposite_groups(False, n=40, seed=2)
    inner = TaskRelationRegressorCV(n_alphas=3, cv=3, tol=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridEdgeWarning)
        search = GridSearchCV(inner, {"relation_ratio": [0.0, 0.9]}, cv=3).fit(X, Y)
    assert search.best_params_ == {"relation_ratio": 0.9}
    assert search.best_estimator_.relation_ratio == 0.9
    assert search.best_estimator_.alpha_ in search.best_estimator_.alphas_


@pytest.mark.parametrize("classify", [False, True], ids=["regressor", "classifier"])
def test_refit_exposes_its_duality_gap(classify):
    # criterion_ is the refit's relative duality gap: that of the fixed-alpha model at alpha_
    X, Y, _ = _opposite_groups(classify, n=60, seed=3)
    CV, Model = ((TaskRelationClassifierCV, TaskRelationClassifier) if classify
                 else (TaskRelationRegressorCV, TaskRelationRegressor))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridEdgeWarning)
        model = CV(n_alphas=3, cv=3).fit(X, Y)
    refit = Model(alpha=model.alpha_, standardize=True).fit(X, Y)
    assert 0.0 <= model.criterion_ <= 1e-12
    assert model.criterion_ == refit.criterion_
    np.testing.assert_array_equal(model.coef_, refit.coef_)


@pytest.mark.parametrize("wide", [False, True], ids=["moments", "rows"])
def test_regressor_path_prepares_each_training_fold_once(wide, monkeypatch):
    # the tasks' moments (or, with 150 features and few labels a task, the thin SVDs of their
    # rows) are computed once per training fold for all its alphas: the scores, choice and
    # refit of a search that recomputes them at every alpha
    from skmtl.linear import _solver_task_relation

    if wide:
        rng = np.random.default_rng(3)
        X = rng.standard_normal((60, 150))
        Y = X @ (rng.standard_normal(150) + 0.3 * rng.standard_normal((4, 150))).T
        Y += rng.standard_normal(Y.shape)
        Y[rng.random(Y.shape) < 0.5] = np.nan
    else:
        X, Y, _ = _opposite_groups(False, noise=4.0)
    splits = list(KFold(3, shuffle=True, random_state=0).split(X))
    prepared = []

    def counted(*args, **kwargs):
        data = _solver_task_relation.least_squares_data(*args, **kwargs)
        prepared.append(data.A)
        return data

    monkeypatch.setattr(TaskRelationRegressorCV, "_prepare", staticmethod(counted))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridEdgeWarning)
        once = TaskRelationRegressorCV(n_alphas=4, cv=splits).fit(X, Y)
        assert len(prepared) == len(splits)  # one per training fold, none per alpha
        kinds = {isinstance(A, _solver_task_relation.RowSpaceBlocks) for A in prepared}
        assert kinds == {wide}
        monkeypatch.setattr(TaskRelationRegressorCV, "_prepare", None)
        every = TaskRelationRegressorCV(n_alphas=4, cv=splits).fit(X, Y)
    np.testing.assert_allclose(once.cv_results_["mean_test_score"],
                               every.cv_results_["mean_test_score"], rtol=1e-12)
    assert once.alpha_ == every.alpha_
    np.testing.assert_array_equal(once.coef_, every.coef_)
