"""Weightings are small estimators: parameters, cloning at fit, validation, deprecated flat knobs.

Also :class:`~skmtl.deep.weighting.RMTLWeighting`, public and usable by the multi-task estimators.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.base import clone  # noqa: E402

from skmtl.deep import (  # noqa: E402
    FocusedTaskClassifier,
    FocusedTaskRegressor,
    MultiTaskClassifier,
    MultiTaskRegressor,
    RMTLWeighting,
)
from skmtl.deep.weighting import (  # noqa: E402
    DROWeighting,
    DWAWeighting,
    EqualWeighting,
    FixedWeighting,
    GradNormWeighting,
    InverseFrequencyWeighting,
    LBTWWeighting,
    MinimaxWeighting,
    UncertaintyWeighting,
)

OLD_TRAINING = dict(optimizer="adam", weight_decay=0.0, early_stopping=False, dropout=0.0)
TINY = dict(hidden_layer_sizes=(8,), max_epochs=3, batch_size=16, lr=1e-2, random_state=0,
            **OLD_TRAINING)

WEIGHTINGS = [
    EqualWeighting(),
    FixedWeighting(task_weights=[1.0, 0.5, 2.0]),
    InverseFrequencyWeighting(),
    UncertaintyWeighting(),
    GradNormWeighting(alpha=0.5, lr=0.01, optimizer="sgd"),
    DWAWeighting(temperature=3.0),
    LBTWWeighting(alpha=0.25, normalize=False, reset_each_epoch=True),
    MinimaxWeighting(),
    DROWeighting(step_size=0.1, smoothing=0.5),
    RMTLWeighting(focus_task=1, policies=[[1.0, 0.0], [1.0, 1.0]]),
]


def _data(n=60, n_tasks=3, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 5))
    Y = X @ rng.normal(size=(5, n_tasks)) + 0.1 * rng.normal(size=(n, n_tasks))
    Y[rng.uniform(size=Y.shape) < 0.2] = np.nan
    Y[:2] = 1.0  # every task observed
    return X, Y


def _classes(Y):
    return np.where(np.isnan(Y), np.nan, (Y > 0).astype(float))


# -- the estimator API of a weighting -----------------------------------------------------------


@pytest.mark.parametrize("weighting", WEIGHTINGS, ids=lambda w: type(w).__name__)
def test_get_params_set_params_and_clone_round_trip(weighting):
    params = weighting.get_params()
    assert set(params) == set(type(weighting)._parameter_constraints)
    cloned = clone(weighting)
    assert type(cloned) is type(weighting) and cloned is not weighting
    assert repr(cloned) == repr(weighting)
    assert cloned.set_params(**params).get_params() == params
    weighting._validate_params()  # the constraints accept the instance


@pytest.mark.parametrize("weighting", WEIGHTINGS, ids=lambda w: type(w).__name__)
def test_nested_params_of_the_estimator(weighting):
    est = MultiTaskRegressor(weighting=weighting)
    params = est.get_params()
    for name, value in weighting.get_params().items():
        assert params[f"weighting__{name}"] is value
    assert type(weighting).__name__ in repr(est)
    est2 = clone(est)
    assert est2.weighting is not weighting and repr(est2) == repr(est)


def test_set_params_reaches_the_weighting():
    est = MultiTaskRegressor(weighting=GradNormWeighting())
    est.set_params(weighting__alpha=0.25)
    assert est.weighting.alpha == 0.25
    # nested in an estimator, scikit-learn's repr shows the changed parameters only
    assert repr(est) == "MultiTaskRegressor(weighting=GradNormWeighting(alpha=0.25))"


@pytest.mark.parametrize(
    "weighting, message",
    [
        (GradNormWeighting(alpha=-1.0), "'alpha' parameter of GradNormWeighting"),
        (GradNormWeighting(optimizer="rmsprop"), "'optimizer' parameter of GradNormWeighting"),
        (DWAWeighting(temperature=0), "'temperature' parameter of DWAWeighting"),
        (LBTWWeighting(normalize="yes"), "'normalize' parameter of LBTWWeighting"),
        (RMTLWeighting(focus_task=-1), "'focus_task' parameter of RMTLWeighting"),
        (DROWeighting(step_size=-1.0), "'step_size' parameter of DROWeighting"),
        (DROWeighting(smoothing=1.0), "'smoothing' parameter of DROWeighting"),
    ],
)
def test_weighting_parameters_are_validated_at_fit(weighting, message):
    X, Y = _data()
    with pytest.raises(ValueError, match=message):
        MultiTaskRegressor(**TINY, weighting=weighting).fit(X, Y)


def test_the_weighting_is_cloned_at_fit_and_never_modified():
    X, Y = _data()
    weighting = GradNormWeighting(alpha=0.5)
    est = MultiTaskRegressor(**TINY, weighting=weighting).fit(X, Y)
    assert est.weighting is weighting and not hasattr(weighting, "weights_")
    fitted = est.net_.weighting_
    assert fitted is not weighting and fitted.get_params() == weighting.get_params()
    assert hasattr(fitted, "weights_") and hasattr(fitted, "exp_avg_")
    refit = MultiTaskRegressor(**TINY, weighting=weighting).fit(X, Y)
    np.testing.assert_array_equal(refit.predict(X), est.predict(X))


# -- group DRO ----------------------------------------------------------------------------------


@pytest.mark.parametrize("Estimator", [MultiTaskRegressor, MultiTaskClassifier])
def test_the_estimators_fit_with_dro(Estimator):
    X, Y = _data()
    if Estimator is MultiTaskClassifier:
        Y = _classes(Y)
    est = Estimator(**{**TINY, "max_epochs": 2}, weighting="dro").fit(X, Y)
    assert est.predict(X).shape == (60, 3)
    fitted = est.net_.weighting_
    assert type(fitted) is DROWeighting and fitted.get_params() == DROWeighting().get_params()
    weights = est.task_weights_history_
    assert weights.shape == (2, 3) and np.all(weights > 0)
    np.testing.assert_allclose(weights.sum(1), 3.0, rtol=1e-5)
    np.testing.assert_allclose(weights[-1], 3 * fitted.q_.numpy(), rtol=1e-6)
    assert not np.allclose(weights[-1], 1.0)  # q moved towards the larger losses


def test_dro_step_size_is_grid_searchable():
    from sklearn.model_selection import GridSearchCV

    from skmtl.model_selection import MultiTaskKFold

    X, Y = _data()
    est = MultiTaskRegressor(**{**TINY, "max_epochs": 2}, weighting=DROWeighting())
    assert est.get_params()["weighting__step_size"] == 0.01
    search = GridSearchCV(est, {"weighting__step_size": [0.0, 0.5]},
                          cv=MultiTaskKFold(2, shuffle=True, random_state=0)).fit(X, Y)
    assert [p["weighting__step_size"] for p in search.cv_results_["params"]] == [0.0, 0.5]
    best = search.best_params_["weighting__step_size"]
    assert search.best_estimator_.net_.weighting_.step_size == best
    history = {step: MultiTaskRegressor(**{**TINY, "max_epochs": 2},
                                        weighting=DROWeighting(step_size=step)).fit(X, Y)
               .task_weights_history_ for step in (0.0, 0.5)}
    np.testing.assert_allclose(history[0.0], 1.0, rtol=1e-6)  # step 0: equal weighting
    assert not np.allclose(history[0.5], 1.0)


# -- deprecated flat knobs: still work, warn, name the replacement ------------------------------


@pytest.mark.parametrize(
    "flat, new",
    [
        ({"weighting": "fixed", "task_weights": [2.0, 1.0, 0.5]},
         {"weighting": FixedWeighting(task_weights=[2.0, 1.0, 0.5])}),
        ({"weighting": "gradnorm", "gradnorm_alpha": 0.5},
         {"weighting": GradNormWeighting(alpha=0.5)}),
        ({"weighting": "lbtw", "lbtw_alpha": 1.0}, {"weighting": LBTWWeighting(alpha=1.0)}),
    ],
    ids=["task_weights", "gradnorm_alpha", "lbtw_alpha"],
)
@pytest.mark.parametrize("Estimator", [MultiTaskRegressor, MultiTaskClassifier])
def test_deprecated_flat_weighting_knobs_warn_and_keep_their_effect(Estimator, flat, new):
    X, Y = _data()
    if Estimator is MultiTaskClassifier:
        Y = _classes(Y)
    (knob,) = set(flat) - {"weighting"}
    replacement = f"weighting={type(new['weighting']).__name__}"
    with pytest.warns(FutureWarning, match=rf"{knob} is deprecated.*use {replacement}\("):
        old = Estimator(**TINY, **flat).fit(X, Y)
    now = Estimator(**TINY, **new).fit(X, Y)  # no warning (errors under the test settings)
    np.testing.assert_array_equal(old.predict(X), now.predict(X))
    np.testing.assert_array_equal(old.task_weights_history_, now.task_weights_history_)


def test_a_set_flat_knob_warns_even_when_its_weighting_is_not_used():
    X, Y = _data()
    with pytest.warns(FutureWarning, match="lbtw_alpha is deprecated"):
        old = MultiTaskRegressor(**TINY, lbtw_alpha=0.3).fit(X, Y)
    np.testing.assert_array_equal(old.predict(X), MultiTaskRegressor(**TINY).fit(X, Y).predict(X))


@pytest.mark.parametrize(
    "strategy, knob, value, new",
    [
        ("gradnorm", "gradnorm_alpha", 0.5, GradNormWeighting(alpha=0.5)),
        ("lbtw", "lbtw_alpha", 1.0, LBTWWeighting(alpha=1.0)),
    ],
)
@pytest.mark.parametrize("Estimator", [FocusedTaskRegressor, FocusedTaskClassifier])
def test_focused_deprecated_knobs_warn_and_equal_a_weighting_strategy(
    Estimator, strategy, knob, value, new
):
    X, Y = _data()
    if Estimator is FocusedTaskClassifier:
        Y = _classes(Y)
    replacement = f"strategy={type(new).__name__}"
    with pytest.warns(FutureWarning, match=rf"{knob} is deprecated.*use {replacement}\("):
        old = Estimator(**TINY, focus_task=1, strategy=strategy, **{knob: value}).fit(X, Y)
    now = Estimator(**TINY, focus_task=1, strategy=new).fit(X, Y)
    np.testing.assert_array_equal(old.predict(X), now.predict(X))
    np.testing.assert_array_equal(old.aux_weights_history_, now.aux_weights_history_)
    assert "strategy__alpha" in Estimator(strategy=new).get_params()


@pytest.mark.parametrize("strategy", ["rmtl", "single_task", "finetune"])
def test_focused_flat_knob_warns_whatever_the_strategy(strategy):
    X, Y = _data()
    with pytest.warns(FutureWarning, match="gradnorm_alpha is deprecated"):
        old = FocusedTaskRegressor(**TINY, focus_task=0, strategy=strategy, finetune_epochs=1,
                                   gradnorm_alpha=1.0).fit(X, Y)
    now = FocusedTaskRegressor(**TINY, focus_task=0, strategy=strategy, finetune_epochs=1)
    np.testing.assert_array_equal(old.predict(X), now.fit(X, Y).predict(X))


@pytest.mark.parametrize("name, weighting", [("gradnorm", GradNormWeighting()),
                                             ("lbtw", LBTWWeighting())])
def test_a_named_strategy_is_its_weighting_with_default_parameters(name, weighting):
    X, Y = _data()
    named = FocusedTaskRegressor(**TINY, focus_task=0, strategy=name).fit(X, Y)
    instance = FocusedTaskRegressor(**TINY, focus_task=0, strategy=weighting).fit(X, Y)
    np.testing.assert_array_equal(named.predict(X), instance.predict(X))


# -- RMTLWeighting ------------------------------------------------------------------------------


@pytest.mark.parametrize("reward", ["per_task", "policy"])
@pytest.mark.parametrize("Estimator", [MultiTaskRegressor, MultiTaskClassifier])
def test_a_multitask_estimator_fits_with_rmtl_weighting(Estimator, reward):
    X, Y = _data()
    if Estimator is MultiTaskClassifier:
        Y = _classes(Y)
    est = Estimator(**TINY, weighting=RMTLWeighting(focus_task=2, reward=reward)).fit(X, Y)
    assert est.predict(X).shape == (60, 3)
    weights = est.task_weights_history_
    assert weights.shape == (3, 3)
    np.testing.assert_array_equal(weights[:, 2], 1.0)  # the focus task
    assert np.all((weights[:, :2] >= 0) & (weights[:, :2] <= 1))  # r(pi*) * pi*, default pi
    fitted = est.net_.weighting_
    if reward == "policy":
        np.testing.assert_array_equal(fitted.policies_.numpy(), [[1, 0], [0, 1], [1, 1]])
        assert fitted.gradient_space_ == "last_shared_layer"
    else:  # every auxiliary task its own reward
        assert fitted.policies_.shape == (0, 2)
        assert fitted.gradient_space_ == "head_weights"


@pytest.mark.parametrize("Focused, Multi", [(FocusedTaskRegressor, MultiTaskRegressor),
                                            (FocusedTaskClassifier, MultiTaskClassifier)])
def test_focused_rmtl_is_a_hard_sharing_multitask_estimator_with_rmtl_weighting(Focused, Multi):
    X, Y = _data()
    if Focused is FocusedTaskClassifier:
        Y = _classes(Y)
    policies = [{0: 1.0}, {0: 0.5, 2: 1.0}]
    focused = Focused(**TINY, focus_task=1, strategy="rmtl", rmtl_reward="policy",
                      policies=policies).fit(X, Y)
    multi = Multi(**TINY, weighting=RMTLWeighting(1, reward="policy",
                                                  policies=focused.policies_)).fit(X, Y)
    np.testing.assert_array_equal(focused.predict(X), multi.predict(X)[:, 1])
    np.testing.assert_array_equal(focused.task_weights_history_, multi.task_weights_history_)
    focused = Focused(**TINY, focus_task=1, strategy="rmtl").fit(X, Y)
    multi = Multi(**TINY, weighting=RMTLWeighting(1)).fit(X, Y)
    np.testing.assert_array_equal(focused.predict(X), multi.predict(X)[:, 1])
    np.testing.assert_array_equal(focused.task_weights_history_, multi.task_weights_history_)


def test_rmtl_weighting_checks_its_policies():
    X, Y = _data()
    for policies, message in [([[1.0, 0.0, 1.0]], r"shape \(n_policies, 2\)"),
                              ([[1.0, -1.0]], "finite and >= 0"),
                              ([[0.0, 0.0]], "positive weight")]:
        with pytest.raises(ValueError, match=message):
            MultiTaskRegressor(
                **TINY, weighting=RMTLWeighting(0, reward="policy", policies=policies)
            ).fit(X, Y)
    with pytest.raises(ValueError, match="leave policies=None"):
        MultiTaskRegressor(
            **TINY, weighting=RMTLWeighting(0, reward="per_task", policies=[[1.0, 1.0]])
        ).fit(X, Y)
    with pytest.raises(ValueError, match=r"focus_task must be a task position in 0\.\.2"):
        MultiTaskRegressor(**TINY, weighting=RMTLWeighting(focus_task=3)).fit(X, Y)


# The predictions of FocusedTask*(strategy="rmtl") before RMTLWeighting moved to
# skmtl.deep.weighting and the estimators moved onto one base (same data, same seed). That
# rmtl was the policy reward on the representation, which the options still give.
RMTL_REGRESSOR = [-0.42576319044935934, -0.00925969239461795, -0.35156328101666245,
                  -0.48901451989013983, 0.5890627960951316]
RMTL_REGRESSOR_AUX = [[0.0, 0.0], [0.0, 0.0], [0.010494600050151348, 0.0017053104238584638],
                      [0.041085269302129745, 0.002588053699582815]]
RMTL_CLASSIFIER = [0.4597782212064632, 0.4315309914605607, 0.501505990615126,
                   0.4887005389382988, 0.267399548936861]
RMTL_CLASSIFIER_AUX = [[0.04054756835103035, 0.04054756835103035],
                       [0.0323479101061821, 0.05257130414247513],
                       [0.046421684324741364, 0.022237949073314667],
                       [0.0, 0.026218777522444725]]


def test_focused_rmtl_predictions_are_those_from_before_the_move():
    X, Y = _data()
    kw = dict(hidden_layer_sizes=(8,), max_epochs=4, batch_size=16, lr=1e-2, random_state=0,
              strategy="rmtl", rmtl_reward="policy", rmtl_gradient_on="representation")
    reg = FocusedTaskRegressor(focus_task=0, **kw).fit(X, Y)
    np.testing.assert_allclose(reg.predict(X[:5]), RMTL_REGRESSOR, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(reg.aux_weights_history_, RMTL_REGRESSOR_AUX, rtol=1e-4,
                               atol=1e-7)
    clf = FocusedTaskClassifier(focus_task=1, **kw).fit(X, _classes(Y))
    np.testing.assert_allclose(clf.predict_proba(X[:5])[:, 1], RMTL_CLASSIFIER, rtol=1e-5,
                               atol=1e-7)
    np.testing.assert_allclose(clf.aux_weights_history_, RMTL_CLASSIFIER_AUX, rtol=1e-4,
                               atol=1e-7)


def test_lbtw_is_equal_weighting_when_an_epoch_is_one_batch():
    # the authors' L_t(0) is the loss of the epoch's first batch: with one batch per epoch it
    # is every batch's own loss, so every weight stays 1 (documented); the fit's first loss
    # (reset_each_epoch=False) still weights the tasks
    X, Y = _data(n=40)
    params = dict(TINY, batch_size=64, max_epochs=5)
    equal = MultiTaskRegressor(weighting="equal", **params).fit(X, Y)
    lbtw = MultiTaskRegressor(weighting=LBTWWeighting(), **params).fit(X, Y)
    np.testing.assert_array_equal(lbtw.predict(X), equal.predict(X))
    once = MultiTaskRegressor(weighting=LBTWWeighting(reset_each_epoch=False), **params).fit(X, Y)
    assert np.abs(once.predict(X) - equal.predict(X)).max() > 1e-4
    smaller = MultiTaskRegressor(weighting=LBTWWeighting(), **dict(params, batch_size=16)).fit(X, Y)
    equal_smaller = MultiTaskRegressor(weighting="equal", **dict(params, batch_size=16)).fit(X, Y)
    assert np.abs(smaller.predict(X) - equal_smaller.predict(X)).max() > 1e-4
