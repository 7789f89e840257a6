"""GridSearchCV over every sharing strategy, weighting and conditioning, inside a Pipeline.

Every parameter of the deep estimators is grid-searchable: a Pipeline with a scaler and a
:class:`~skmtl.deep.MultiTaskClassifier` is searched over all eleven sharing strategies, all eight
weightings (``"fixed"`` as a ``FixedWeighting`` with its ``task_weights``) and the three
conditionings of ``"conditioned"``, on a wide Y with missing labels and the folds of
:class:`~skmtl.model_selection.MultiTaskKFold`; a weighting's own parameters
(``weighting__alpha``) are searched too.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from skmtl.datasets import make_multitask_classification, make_multitask_regression  # noqa: E402
from skmtl.deep import SHARING, WEIGHTINGS, MultiTaskClassifier, MultiTaskRegressor  # noqa: E402
from skmtl.deep.modules import CONDITIONING  # noqa: E402
from skmtl.deep.weighting import FixedWeighting, GradNormWeighting  # noqa: E402
from skmtl.metrics import make_multitask_scorer  # noqa: E402
from skmtl.model_selection import MultiTaskKFold  # noqa: E402

N_TASKS = 3
TASK_WEIGHTS = [1.0, 0.5, 2.0]
# The training defaults these tests were written for (before early stopping and weight decay
# became the defaults): no validation split, Adam without weight decay, no dropout.
OLD_TRAINING = dict(optimizer="adam", weight_decay=0.0, early_stopping=False, dropout=0.0)
TINY = dict(hidden_layer_sizes=(8,), max_epochs=3, batch_size=16, lr=1e-2, random_state=0,
            **OLD_TRAINING)


def wide_data_with_missing_labels():
    X, Y = make_multitask_classification(
        n_samples=60, n_features=6, n_tasks=N_TASKS, n_informative=3, missing_rate=0.3,
        random_state=0,
    )
    assert np.isnan(Y).any(axis=0).all()  # every task has missing labels
    return X, Y


def masked_accuracy(Y, pred):
    """Mean over tasks of the accuracy on the observed labels, written out."""
    return np.mean([
        np.mean(pred[~np.isnan(Y[:, t]), t] == Y[~np.isnan(Y[:, t]), t]) for t in range(N_TASKS)
    ])


def param_grid():
    """Every sharing x every weighting, plus the other conditionings of "conditioned"."""
    unweighted = [w for w in WEIGHTINGS if w != "fixed"]
    fixed = FixedWeighting(task_weights=TASK_WEIGHTS)
    return [
        {"model__sharing": list(SHARING), "model__weighting": unweighted},
        {"model__sharing": list(SHARING), "model__weighting": [fixed]},
        {"model__sharing": ["conditioned"],
         "model__conditioning": [c for c in CONDITIONING if c != "concat"],
         "model__weighting": [*unweighted, fixed]},
    ]


def _weighting_name(weighting):
    return weighting if isinstance(weighting, str) else "fixed"


def test_grid_search_over_every_sharing_weighting_and_conditioning():
    X, Y = wide_data_with_missing_labels()
    pipe = Pipeline([("scale", StandardScaler()), ("model", MultiTaskClassifier(**TINY))])
    cv = MultiTaskKFold(2, shuffle=True, random_state=0)
    search = GridSearchCV(
        pipe, param_grid(), cv=cv, scoring=make_multitask_scorer("accuracy"),
        error_score="raise",
    ).fit(X, Y)

    results = search.cv_results_
    cells = {
        (p["model__sharing"], _weighting_name(p["model__weighting"]),
         p.get("model__conditioning", "concat"))
        for p in results["params"]
    }
    expected = {(s, w, "concat") for s in SHARING for w in WEIGHTINGS} | {
        ("conditioned", w, c) for w in WEIGHTINGS for c in CONDITIONING
    }
    assert cells == expected and len(results["params"]) == len(expected) == 117
    for key in ("split0_test_score", "split1_test_score", "mean_test_score"):
        scores = results[key]
        assert np.all(np.isfinite(scores)) and np.all((scores >= 0) & (scores <= 1)), key

    best = search.best_estimator_
    pred = best.predict(X)
    assert pred.shape == (60, N_TASKS)
    assert best[-1].get_params()["sharing"] == search.best_params_["model__sharing"]

    # The search's score of a cell is the masked accuracy of that cell's model on the test
    # fold: refit the best cell on the first training fold and score it by hand.
    train, test = next(cv.split(X, Y))
    refit = clone(pipe).set_params(**search.best_params_).fit(X[train], Y[train])
    by_hand = masked_accuracy(Y[test], refit.predict(X[test]))
    assert results["split0_test_score"][search.best_index_] == pytest.approx(by_hand, abs=1e-12)


def test_fixed_weighting_in_a_grid_needs_its_task_weights():
    """"fixed" alone in a grid fails loudly at fit, naming the missing parameter."""
    X, Y = wide_data_with_missing_labels()
    pipe = Pipeline([("scale", StandardScaler()), ("model", MultiTaskClassifier(**TINY))])
    search = GridSearchCV(pipe, {"model__weighting": ["fixed"]}, cv=MultiTaskKFold(2),
                          error_score="raise")
    with pytest.raises(ValueError, match="task_weights"):
        search.fit(X, Y)


def test_grid_search_over_a_weightings_own_parameter():
    """A weighting is a small estimator: weighting__alpha is searched like any parameter."""
    X, Y = make_multitask_regression(
        n_samples=60, n_features=5, n_tasks=N_TASKS, missing_rate=0.2, random_state=0
    )
    pipe = make_pipeline(
        StandardScaler(),
        MultiTaskRegressor(weighting=GradNormWeighting(), max_epochs=3,
                           **{k: v for k, v in TINY.items() if k != "max_epochs"}),
    )
    assert "multitaskregressor__weighting__alpha" in pipe.get_params()
    grid = {"multitaskregressor__weighting__alpha": [0.5, 1.5]}
    search = GridSearchCV(
        pipe, grid, cv=MultiTaskKFold(2, shuffle=True, random_state=0), error_score="raise"
    ).fit(X, Y)
    assert [p["multitaskregressor__weighting__alpha"] for p in search.cv_results_["params"]] \
        == [0.5, 1.5]
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    best = search.best_estimator_[-1]
    assert best.weighting.alpha == search.best_params_["multitaskregressor__weighting__alpha"]
    # the fitted weighting is a clone carrying that alpha; the parameter object is untouched
    assert best.net_.weighting_ is not best.weighting
    assert best.net_.weighting_.alpha == best.weighting.alpha
    assert not hasattr(best.weighting, "weights_")
    assert not hasattr(pipe[-1].weighting, "weights_")
