"""FocusedTaskRegressor / FocusedTaskClassifier: trained on all tasks, judged on one."""

import copy
import pickle

import numpy as np
import pytest
import sklearn
from sklearn import metrics as skm
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

torch = pytest.importorskip("torch")
pd = pytest.importorskip("pandas")

from skorch.callbacks import Callback  # noqa: E402

from skmtl import UnknownTaskError  # noqa: E402
from skmtl.datasets import make_multitask_regression  # noqa: E402
from skmtl.deep import (  # noqa: E402
    FocusedTaskClassifier,
    FocusedTaskRegressor,
    MultiTaskRegressor,
    build_module,
)
from skmtl.deep._focused import STRATEGIES  # noqa: E402
from skmtl.deep.weighting import RMTLWeighting  # noqa: E402
from skmtl.metrics import make_multitask_scorer, r2_score  # noqa: E402

# The training defaults these tests were written for (before early stopping and weight decay
# became the defaults): no validation split, Adam without weight decay, no dropout.
OLD_TRAINING = dict(optimizer="adam", weight_decay=0.0, early_stopping=False, dropout=0.0)
TINY = dict(hidden_layer_sizes=(8,), max_epochs=4, batch_size=16, lr=1e-2, random_state=0,
            **OLD_TRAINING)


def _regression_data(n=60, n_tasks=4, missing=0.2, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 5))
    Y = X @ rng.normal(size=(5, n_tasks)) + 0.1 * rng.normal(size=(n, n_tasks))
    Y[rng.uniform(size=Y.shape) < missing] = np.nan
    Y[:2] = 1.0  # every task observed
    return X, Y


def _classification_data(n=80, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 4))
    Y = np.empty((n, 3), dtype=object)
    Y[:, 0] = np.array(["low", "mid", "high"])[np.digitize(X[:, 0], [-0.5, 0.5])]
    Y[:, 1] = np.where(X[:, 1] > 0, "yes", "no")
    Y[:, 2] = np.where(X[:, 0] + X[:, 1] > 0, 1, 0)
    Y[::4, 0] = None
    return X, Y


# -- outputs speak of the focus task ------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_regressor_predicts_and_scores_the_focus_task(strategy, device):
    X, Y = _regression_data()
    est = FocusedTaskRegressor(
        **TINY, focus_task=2, strategy=strategy, finetune_epochs=2, device=device
    ).fit(X, Y)
    pred = est.predict(X)
    assert pred.shape == (X.shape[0],) and pred.dtype == np.float64
    assert est.focus_index_ == 2 and est.aux_tasks_.tolist() == [0, 1, 3]
    n_epochs = TINY["max_epochs"] + (2 if strategy == "finetune" else 0)
    assert est.n_iter_ == n_epochs
    assert est.aux_weights_history_.shape == (n_epochs, 3)
    observed = ~np.isnan(Y[:, 2])
    expected = r2_score(Y[observed, 2], pred[observed])
    assert est.score(X, Y) == pytest.approx(expected)  # wide Y: its focus column
    assert est.score(X, Y[:, 2]) == pytest.approx(expected)  # the focus labels, NaN missing
    rows, tasks = np.nonzero(~np.isnan(Y))
    long_score = est.score(X[rows], Y[rows, tasks], task_ids=tasks)
    assert long_score == pytest.approx(expected)


def test_classifier_predicts_the_focus_tasks_labels_and_probabilities(device):
    X, Y = _classification_data()
    est = FocusedTaskClassifier(**TINY, focus_task=0, device=device).fit(X, Y)
    assert est.classes_.tolist() == ["high", "low", "mid"]
    assert [c.tolist() for c in est.task_classes_] == [["high", "low", "mid"], ["no", "yes"],
                                                       [0, 1]]
    proba = est.predict_proba(X)
    assert proba.shape == (X.shape[0], 3) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    pred = est.predict(X)
    assert pred.shape == (X.shape[0],)
    np.testing.assert_array_equal(pred, est.classes_[proba.argmax(axis=1)])
    observed = Y[:, 0] != None  # noqa: E711
    accuracy = np.mean(pred[observed] == Y[observed, 0])
    assert est.score(X, Y) == pytest.approx(accuracy)
    # a binary focus task with integer classes
    binary = FocusedTaskClassifier(**TINY, focus_task=2).fit(X, Y)
    assert binary.classes_.tolist() == [0, 1] and binary.predict_proba(X).shape == (80, 2)


def test_focus_by_label_and_by_position_agree():
    X, Y = _regression_data()
    frame = pd.DataFrame(Y, columns=["a", "b", "c", "d"])
    by_label = FocusedTaskRegressor(**TINY, focus_task="c").fit(X, frame)
    by_position = FocusedTaskRegressor(**TINY, focus_task=2).fit(X, frame)
    assert by_label.focus_index_ == by_position.focus_index_ == 2
    np.testing.assert_array_equal(by_label.predict(X), by_position.predict(X))
    assert by_label.aux_tasks_.tolist() == ["a", "b", "d"]
    assert by_label.score(X, frame) == pytest.approx(by_label.score(X, Y))


def test_an_integer_focus_task_is_a_label_when_the_labels_are_integers():
    X, Y = _regression_data(n_tasks=3)
    rows, columns = np.nonzero(~np.isnan(Y))
    school = np.array([10, 20, 30])[columns]  # long data, integer task ids
    est = FocusedTaskRegressor(**TINY, focus_task=20).fit(X[rows], Y[rows, columns],
                                                          task_ids=school)
    assert est.focus_index_ == 1
    with pytest.raises(UnknownTaskError, match=r"focus_task=1 .*integers.*10, 20, 30"):
        FocusedTaskRegressor(**TINY, focus_task=1).fit(X[rows], Y[rows, columns],
                                                       task_ids=school)


@pytest.mark.parametrize("focus_task", ["z", 7, 1.5])
def test_an_unknown_focus_task_raises_naming_it_and_the_known_tasks(focus_task):
    X, Y = _regression_data(n_tasks=3)
    frame = pd.DataFrame(Y, columns=["a", "b", "c"])
    with pytest.raises(ValueError, match=rf"focus_task={focus_task!r} .*'a', 'b', 'c'"):
        FocusedTaskRegressor(**TINY, focus_task=focus_task).fit(X, frame)


def test_focus_task_none_is_for_a_single_task_only():
    X, Y = _regression_data(n_tasks=3, missing=0.0)
    with pytest.raises(ValueError, match="focus_task=None, but the target has 3 tasks"):
        FocusedTaskRegressor(**TINY).fit(X, Y)
    assert FocusedTaskRegressor(**TINY).fit(X, Y[:, 0]).predict(X).shape == (60,)


# -- reductions to single-task learning ---------------------------------------------------------


def test_single_task_equals_a_multitask_regressor_on_the_focus_column_alone():
    X, Y = _regression_data(missing=0.3)
    est = FocusedTaskRegressor(**TINY, focus_task=1, strategy="single_task").fit(X, Y)
    observed = ~np.isnan(Y[:, 1])
    reference = MultiTaskRegressor(**TINY).fit(X[observed], Y[observed, 1])
    np.testing.assert_array_equal(est.predict(X), reference.predict(X))
    assert est.aux_weights_history_.shape == (TINY["max_epochs"], 3)
    assert not est.aux_weights_history_.any()


def test_with_one_task_every_strategy_is_single_task_learning():
    X, Y = _regression_data(missing=0.0)
    y = Y[:, 0]
    reference = MultiTaskRegressor(**TINY).fit(X, y).predict(X)
    for strategy in STRATEGIES:
        est = FocusedTaskRegressor(**TINY, strategy=strategy, freeze_trunk=True).fit(X, y)
        np.testing.assert_array_equal(est.predict(X), reference, err_msg=strategy)
        assert est.aux_tasks_.shape == (0,) and est.aux_weights_history_.shape == (4, 0)


# -- rmtl: the policy of every batch against a brute force --------------------------------------


class BatchRecorder(Callback):
    """Per training batch: the module's weights before the step, the batch and rmtl's choice."""

    def initialize(self):
        self.records_ = []
        return self

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if training:
            self._before = (copy.deepcopy(net.module_.state_dict()), batch)

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if training:
            weighting = net.weighting_
            self.records_.append((*self._before, int(weighting.last_policy_),
                                  float(weighting.last_reward_),
                                  weighting.batch_weights_.numpy().copy()))


def _brute_force_policy(module, criterion, X, y, focus, policies, on):
    """Per-task gradients (on the representation or on the last shared layer's weight), one
    autograd call per task; each policy's reward."""
    rep = module.shared(X)
    sums, counts = criterion(module.heads_padded(rep), y)
    losses = sums / counts.clamp_min(1)
    wrt = rep if on == "representation" else module.last_shared_layer.weight
    grads = [torch.autograd.grad(losses[t], wrt, retain_graph=True)[0].flatten().double()
             for t in range(len(losses))]
    aux = [t for t in range(len(losses)) if t != focus]
    rewards = []
    for policy in policies:
        g_pi = sum(weight * grads[a] for weight, a in zip(policy, aux))
        norms = torch.linalg.vector_norm(g_pi) * torch.linalg.vector_norm(grads[focus])
        cosine = float(g_pi @ grads[focus] / norms) if norms > 0 else 0.0
        rewards.append(max(cosine, 0.0))
    return counts.numpy() > 0, np.array(rewards)


@pytest.mark.parametrize("on", ["last_shared_layer", "representation"])
@pytest.mark.parametrize("head_layer_sizes", [(), (3,)])
def test_rmtl_chooses_the_policy_of_a_brute_force_over_per_task_gradients(head_layer_sizes, on):
    X, Y = _regression_data(n=24, n_tasks=4, missing=0.0)
    Y[np.arange(24) % 3 != 0, 1] = np.nan  # the focus task: some batches have no label
    Y[np.arange(24) % 3 != 1, 3] = np.nan  # and an auxiliary task: some batches have none
    policies = [{0: 1.0}, {2: 1.0}, {3: 1.0}, {0: 0.2, 2: 0.3, 3: 0.5}]
    matrix = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.2, 0.3, 0.5]]
    if on == "last_shared_layer":  # Algorithm 3 of the paper: rmtl_reward="policy"
        strategy = dict(rmtl_reward="policy", policies=policies)
    else:
        strategy = dict(strategy=RMTLWeighting(1, reward="policy", policies=matrix,
                                               gradient_on="representation"))
    est = FocusedTaskRegressor(
        focus_task=1, hidden_layer_sizes=(5,), head_layer_sizes=head_layer_sizes,
        max_epochs=3, batch_size=4, lr=0.05, random_state=0,
        callbacks=[BatchRecorder()], **strategy, **OLD_TRAINING,
    ).fit(X, Y)
    assert est.net_.weighting_.gradient_space_ == on
    policies = est.net_.weighting_.policies_.numpy().astype(np.float64)
    np.testing.assert_allclose(policies, matrix, rtol=1e-7)
    if on == "last_shared_layer":
        np.testing.assert_array_equal(est.policies_, matrix)
    recorder = next(cb for _, cb in est.net_.callbacks_ if isinstance(cb, BatchRecorder))
    module = build_module("hard", 5, [1] * 4, hidden_layer_sizes=(5,),
                          head_layer_sizes=head_layer_sizes)
    expected_weights = np.array([0.0, 1.0, 0.0, 0.0])
    seen = set()
    for state, (Xb, yb), policy, reward, weights in recorder.records_:
        module.load_state_dict(state)
        observed, rewards = _brute_force_policy(
            module, est.net_.criterion_, Xb, yb, 1, policies, on)
        has_focus = bool(observed[1])
        seen.add((has_focus, bool(observed[3])))
        if has_focus:
            # the best policy (a tie where a head's dead ReLU zeroes a task's gradient)
            assert rewards[policy] == pytest.approx(rewards.max(), abs=1e-6)
            assert policy == np.argmax(rewards) or np.sort(rewards)[-2] > rewards.max() - 1e-6
            assert reward == pytest.approx(rewards.max(), abs=1e-5)
            chosen = np.insert(rewards[policy] * policies[policy], 1, 1.0)
            # an auxiliary task without a label in the batch keeps its last weight
            expected_weights = np.where(observed, chosen, expected_weights)
        # the loss of the batch is L_f + r(pi*) sum_a pi*_a L_a (the last one without focus)
        np.testing.assert_allclose(weights, expected_weights, atol=1e-5)
    assert {has_focus for has_focus, _ in seen} == {True, False}
    assert (True, False) in seen  # a focus label, none of task 3
    batches_per_epoch = len(recorder.records_) // 3
    epoch_mean = np.mean([r[-1] for r in recorder.records_[-batches_per_epoch:]], axis=0)
    np.testing.assert_allclose(est.task_weights_history_[-1], epoch_mean, atol=1e-6)
    np.testing.assert_allclose(est.aux_weights_history_, est.task_weights_history_[:, [0, 2, 3]])


def test_rmtl_default_policies_and_policies_as_arrays():
    X, Y = _regression_data()
    est = FocusedTaskRegressor(**TINY, focus_task=0, rmtl_reward="policy").fit(X, Y)
    np.testing.assert_array_equal(est.policies_, np.vstack([np.eye(3), np.ones(3)]))
    as_arrays = FocusedTaskRegressor(**TINY, focus_task=0, rmtl_reward="policy",
                                     policies=list(est.policies_))
    np.testing.assert_array_equal(as_arrays.fit(X, Y).predict(X), est.predict(X))
    assert FocusedTaskRegressor(**TINY, focus_task=0, strategy="lbtw").fit(X, Y).policies_ is None


@pytest.mark.parametrize(
    "policies, message",
    [
        ([], "empty"),
        ([{0: 1.0}], "focus task"),
        ([{9: 1.0}], "not a task"),
        ([[1.0, 0.0]], r"shape \(3,\)"),
        ([[1.0, -1.0, 0.0]], ">= 0"),
        ([{1: 0.0}], "no positive weight"),
    ],
)
def test_bad_policies_raise_naming_the_problem(policies, message):
    X, Y = _regression_data()
    with pytest.raises(ValueError, match=message):
        FocusedTaskRegressor(**TINY, focus_task=0, rmtl_reward="policy",
                             policies=policies).fit(X, Y)


def test_policies_belong_to_the_policy_reward():
    X, Y = _regression_data()
    with pytest.raises(ValueError, match="rmtl_reward='policy'"):
        FocusedTaskRegressor(**TINY, focus_task=0, rmtl_reward="per_task",
                             policies=[{1: 1.0}]).fit(X, Y)
    per_task = FocusedTaskRegressor(**TINY, focus_task=0, rmtl_reward="per_task").fit(X, Y)
    assert per_task.policies_ is None


# -- finetune -----------------------------------------------------------------------------------


class TrunkAfterPretraining(Callback):
    """The trunk's weights at the end of the pre-training phase."""

    def __init__(self, epochs):
        self.epochs = epochs

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.epochs:
            self.trunk_ = copy.deepcopy(net.module_.trunk.state_dict())
            self.heads_ = copy.deepcopy(net.module_.task_heads.state_dict())


@pytest.mark.parametrize("freeze_trunk", [True, False])
def test_finetune_trains_the_focus_task_and_freezes_the_trunk(freeze_trunk, device):
    X, Y = _regression_data()
    est = FocusedTaskRegressor(
        **TINY, focus_task=0, strategy="finetune", finetune_epochs=3, freeze_trunk=freeze_trunk,
        callbacks=[TrunkAfterPretraining(TINY["max_epochs"])], device=device,
    ).fit(X, Y)
    snapshot = next(cb for _, cb in est.net_.callbacks_ if isinstance(cb, TrunkAfterPretraining))
    trunk = est.net_.module_.trunk.state_dict()
    same = [torch.equal(trunk[name], value) for name, value in snapshot.trunk_.items()]
    assert all(same) if freeze_trunk else not any(same)
    heads = est.net_.module_.task_heads.state_dict()
    weight = heads["output.weight"].cpu()
    before = snapshot.heads_["output.weight"].cpu()
    assert not torch.equal(weight[0], before[0])  # the focus head trains
    np.testing.assert_array_equal(est.aux_weights_history_[:, 0], [1, 1, 1, 1, 0, 0, 0])
    history = est.net_.history
    assert np.isnan(history[-1, "train_loss_task_1"])  # the fine-tuning sees the focus only


def test_finetune_validation_loss_is_the_focus_tasks():
    X, Y = _regression_data(n=80)
    est = FocusedTaskRegressor(
        **TINY, focus_task=0, strategy="finetune", finetune_epochs=2, validation_fraction=0.25,
    ).fit(X, Y)
    last = est.net_.history[-1]
    assert last["valid_loss"] == pytest.approx(last["valid_loss_task_0"])
    assert np.isnan(last["valid_loss_task_1"])


class PhaseStart(Callback):
    """Module and optimizer state at the start of every training phase (fit, then fine_tune)."""

    def initialize(self):
        self.phases_ = []
        return self

    def on_train_begin(self, net, **kwargs):
        self.phases_.append((copy.deepcopy(net.module_.state_dict()),
                             len(net.optimizer_.state)))


def test_finetune_pretrains_on_the_auxiliary_tasks_then_a_new_head_and_optimizer():
    # the authors' protocol: pre-train on the auxiliary tasks only, copy the shared layers into
    # a model with a fresh focus head and a new optimizer, train it on the focus task
    X, Y = _regression_data(n=80)
    est = FocusedTaskRegressor(
        **dict(TINY, max_epochs=3), focus_task=0, strategy="finetune", finetune_epochs=2,
        validation_fraction=0.25, callbacks=[TrunkAfterPretraining(3), PhaseStart()],
    ).fit(X, Y)
    history = est.net_.history
    assert len(history) == 5
    for epoch in range(3):  # pre-training: the focus task's labels are hidden
        assert np.isnan(history[epoch, "train_loss_task_0"])
        assert np.isnan(history[epoch, "valid_loss_task_0"])
        aux = [history[epoch, f"valid_loss_task_{t}"] for t in (1, 2, 3)]
        assert history[epoch, "valid_loss"] == pytest.approx(np.mean(aux))
    assert np.isfinite(history[-1, "train_loss_task_0"])
    np.testing.assert_array_equal(est.task_weights_history_[:, 0], [0, 0, 0, 1, 1])
    snapshot = next(cb for _, cb in est.net_.callbacks_ if isinstance(cb, TrunkAfterPretraining))
    phases = next(cb for _, cb in est.net_.callbacks_ if isinstance(cb, PhaseStart)).phases_
    (init, _), (finetune_start, optimizer_entries) = phases
    assert optimizer_entries == 0  # a new optimizer, no Adam moments carried over
    for name, value in snapshot.trunk_.items():  # the shared layers carry over
        torch.testing.assert_close(finetune_start[f"trunk.{name}"], value)
    # the focus head never trained in pre-training, and is drawn afresh for its phase
    torch.testing.assert_close(snapshot.heads_["output.weight"][0],
                               init["task_heads.output.weight"][0])
    assert not torch.equal(finetune_start["task_heads.output.weight"][0],
                           init["task_heads.output.weight"][0])
    torch.testing.assert_close(finetune_start["task_heads.output.weight"][1],
                               snapshot.heads_["output.weight"][1])


def test_finetune_pretrain_all_is_multi_task_training_then_focus_epochs():
    X, Y = _regression_data(n=80)
    est = FocusedTaskRegressor(**TINY, focus_task=0, strategy="finetune",
                               finetune_pretrain="all", callbacks=[PhaseStart()]).fit(X, Y)
    history = est.net_.history
    assert len(history) == TINY["max_epochs"] + 10  # finetune_epochs=None: 10 with "all"
    assert np.isfinite(history[0, "train_loss_task_0"])  # the focus task trains with the others
    phases = next(cb for _, cb in est.net_.callbacks_ if isinstance(cb, PhaseStart)).phases_
    assert phases[1][1] > 0  # the optimizer carries on
    multi = FocusedTaskRegressor(**TINY, focus_task=0, strategy="multi_task").fit(X, Y)
    zero = FocusedTaskRegressor(**TINY, focus_task=0, strategy="finetune",
                                finetune_pretrain="all", finetune_epochs=0).fit(X, Y)
    np.testing.assert_allclose(zero.predict(X), multi.predict(X), rtol=1e-6)


def test_finetune_zero_epochs_after_auxiliary_pretraining_is_refused():
    # the focus head, drawn afresh and never trained, predicted noise (R^2 -0.28), silently
    X, Y = _regression_data(n=40)
    est = FocusedTaskRegressor(**TINY, focus_task=0, strategy="finetune", finetune_epochs=0)
    with pytest.raises(ValueError, match="finetune_epochs=0 with finetune_pretrain='auxiliary' "
                                         "never trains the focus task"):
        est.fit(X, Y)


def test_finetune_epochs_default_to_max_epochs_after_auxiliary_pretraining():
    X, Y = _regression_data(n=80)
    est = FocusedTaskRegressor(**TINY, focus_task=0, strategy="finetune").fit(X, Y)
    assert len(est.net_.history) == 2 * TINY["max_epochs"]


# -- scikit-learn integration -------------------------------------------------------------------


def test_score_on_long_data_reads_the_focus_rows_only():
    # a row of a task unseen in fit is not scored: it raised UnknownTaskError, advising an
    # unknown_task parameter the focused estimators do not have
    X, Y = _regression_data(n_tasks=3)
    rows, tasks = np.nonzero(~np.isnan(Y))
    ids = np.array(["a", "b", "c"])[tasks]
    est = FocusedTaskRegressor(**TINY, focus_task="b").fit(X[rows], Y[rows, tasks], task_ids=ids)
    focus = ids == "b"
    expected = r2_score(Y[rows, tasks][focus], est.predict(X[rows][focus]))
    renamed = np.where(ids == "c", "new", ids)
    assert est.score(X[rows], Y[rows, tasks], task_ids=renamed) == pytest.approx(expected)
    scorer = make_multitask_scorer("r2")
    with sklearn.config_context(enable_metadata_routing=True):
        assert scorer(est, X[rows], Y[rows, tasks], task_ids=renamed) == pytest.approx(expected)
    # no row of the focus task: the error names it and the tasks given
    with pytest.raises(ValueError, match="task_ids has no row of the focus task 'b', the only "
                                         "task FocusedTaskRegressor is scored on; its tasks: "
                                         "'a', 'new'"):
        est.score(X[rows][~focus], Y[rows, tasks][~focus], task_ids=renamed[~focus])


def test_score_on_long_data_needs_task_ids():
    X, Y = _regression_data(n_tasks=3)
    rows, tasks = np.nonzero(~np.isnan(Y))
    est = FocusedTaskRegressor(**TINY, focus_task=1).fit(X[rows], Y[rows, tasks], task_ids=tasks)
    with pytest.raises(ValueError, match="task_ids"):
        est.score(X[rows], Y[rows, tasks])
    focus_rows = tasks == 1
    expected = r2_score(Y[rows, tasks][focus_rows], est.predict(X[rows][focus_rows]))
    assert est.score(X[rows], Y[rows, tasks], task_ids=tasks) == pytest.approx(expected)


# make_multitask_scorer scores the focus task only, as score() does
SCORER_NET = dict(hidden_layer_sizes=(8,), max_epochs=2, early_stopping=False, random_state=0)


def _scored_focus(Y, focus, layout):
    """The arguments of score (y and task_ids) in ``layout``, the rows of X they belong to,
    and the rows of y that hold an observed focus label."""
    observed = ~pd.isna(Y)
    if layout == "long":
        rows, tasks = np.nonzero(observed)
        return Y[rows, tasks], tasks, rows, tasks == focus
    y = pd.DataFrame(Y, columns=["a", "b", "c"]) if layout == "frame" else Y
    return y, None, np.arange(Y.shape[0]), observed[:, focus]


def _focus_predictions(model, method, X, focus, layout):
    """The focus task's predictions of its observed rows, on the rows the scorer predicts: all
    rows of a wide y, the focus rows of long data (the net computes in float32, where another
    batch shape moves the last digits)."""
    if layout == "long":
        return getattr(model, method)(X[focus])
    return getattr(model, method)(X)[focus]


@pytest.mark.parametrize("layout", ["wide", "frame", "long"])
@pytest.mark.parametrize("in_pipeline", [False, True])
def test_multitask_scorer_scores_a_focused_regressor_on_its_focus_task(layout, in_pipeline):
    """The focus column of a wide y (by name in a DataFrame), or the focus task's rows of
    long data, against the focus predictions (a shape error / TypeError before)."""
    X, Y = _regression_data(n=40, n_tasks=3)
    y, task_ids, x_rows, focus = _scored_focus(Y, 1, layout)
    X = X[x_rows]
    model = FocusedTaskRegressor(focus_task="b" if layout == "frame" else 1, **SCORER_NET)
    if in_pipeline:
        model = make_pipeline(StandardScaler(), model)
    metadata = {} if task_ids is None else {"task_ids": task_ids}
    with sklearn.config_context(enable_metadata_routing=True):
        model.fit(X, y, **metadata)
        score = model.score(X, y, **metadata)
    y_focus = np.asarray(y, dtype=float)[focus] if layout == "long" else Y[focus, 1]
    pred = _focus_predictions(model, "predict", X, focus, layout)
    assert score == pytest.approx(skm.r2_score(y_focus, pred), rel=1e-12)
    assert make_multitask_scorer("r2")(model, X, y, **metadata) == pytest.approx(score,
                                                                                rel=1e-12)
    mse = make_multitask_scorer("neg_mean_squared_error")
    assert mse(model, X, y, **metadata) == pytest.approx(
        -skm.mean_squared_error(y_focus, pred), rel=1e-12)
    weights = np.random.RandomState(1).uniform(0.5, 2.0, size=X.shape[0])
    assert mse(model, X, y, sample_weight=weights, **metadata) == pytest.approx(
        -skm.mean_squared_error(y_focus, pred, sample_weight=weights[focus]), rel=1e-12)


@pytest.mark.parametrize("layout", ["wide", "long"])
def test_multitask_scorer_scores_a_focused_classifier_on_its_focus_task(layout):
    X, Y = _classification_data(n=60)
    Y[1::5, 1] = None  # the focus task misses labels too
    y, task_ids, x_rows, focus = _scored_focus(Y, 1, layout)
    X = X[x_rows]
    metadata = {} if task_ids is None else {"task_ids": task_ids}
    model = FocusedTaskClassifier(focus_task=1, **SCORER_NET).fit(X, y, **metadata)
    y_focus = (y if layout == "long" else Y[:, 1])[focus].astype(str)
    proba = _focus_predictions(model, "predict_proba", X, focus, layout)
    pred = _focus_predictions(model, "predict", X, focus, layout)
    assert model.classes_.tolist() == ["no", "yes"]
    expected = {
        "accuracy": skm.accuracy_score(y_focus, pred),
        "roc_auc": skm.roc_auc_score(y_focus == "yes", proba[:, 1]),
        "average_precision": skm.average_precision_score(y_focus == "yes", proba[:, 1]),
        "neg_log_loss": -skm.log_loss(y_focus, proba, labels=model.classes_),
    }
    for name, value in expected.items():
        assert make_multitask_scorer(name)(model, X, y, **metadata) == pytest.approx(
            value, rel=1e-12), name
    assert model.score(X, y, **metadata) == pytest.approx(expected["accuracy"], rel=1e-12)


@pytest.mark.parametrize("layout", ["wide", "long"])
def test_grid_search_with_a_multitask_scorer_on_a_focused_regressor(layout):
    X, Y = _regression_data(n=40, n_tasks=3)
    y, task_ids, x_rows, focus = _scored_focus(Y, 1, layout)
    X = X[x_rows]
    metadata = {} if task_ids is None else {"task_ids": task_ids}
    strategies = ["single_task", "multi_task"]
    cv = KFold(2)
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(FocusedTaskRegressor(focus_task=1, **SCORER_NET),
                              {"strategy": strategies}, cv=cv, error_score="raise",
                              scoring=make_multitask_scorer("neg_mean_squared_error"))
        search.fit(X, y, **metadata)
        y_focus = np.asarray(y, dtype=float) if layout == "long" else Y[:, 1]
        for i, strategy in enumerate(strategies):
            for k, (train, test) in enumerate(cv.split(X)):
                fitted = clone(search.estimator).set_params(strategy=strategy).fit(
                    X[train], y[train], **{key: v[train] for key, v in metadata.items()})
                pred = _focus_predictions(fitted, "predict", X[test], focus[test], layout)
                assert search.cv_results_[f"split{k}_test_score"][i] == pytest.approx(
                    -skm.mean_squared_error(y_focus[test][focus[test]], pred), rel=1e-12)


def test_pickle_round_trip_and_cross_validation():
    from sklearn.model_selection import cross_val_score

    X, Y = _regression_data()
    est = FocusedTaskRegressor(**TINY, focus_task=1).fit(X, Y)
    clone = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(clone.predict(X), est.predict(X))
    scores = cross_val_score(FocusedTaskRegressor(**TINY, focus_task=1), X, Y, cv=2)
    assert scores.shape == (2,) and np.all(np.isfinite(scores))


# -- the statistics of "Done means" -------------------------------------------------------------


class MirrorHeads(Callback):
    """Negates the output layer of some task heads before training."""

    def __init__(self, tasks):
        self.tasks = tasks

    def on_train_begin(self, net, **kwargs):
        with torch.no_grad():
            net.module_.task_heads.output.weight[self.tasks] *= -1
            net.module_.task_heads.output.bias[self.tasks] *= -1


def test_rmtl_cannot_tell_a_task_from_its_negation():
    # A task with negated targets and a mirrored head has exactly the same gradient on the
    # shared representation (-D_t times -W_t), so rmtl gives it the same rewards and weights,
    # and the focus task learns the same. Head initialisations are symmetric, so the
    # "conflicting" tasks of make_multitask_regression (w_t near -w_bar) are, for a hard-sharing
    # network, as helpful as the related ones in distribution: see the statistics below.
    X, Y = _regression_data(n=48, n_tasks=4, missing=0.0)
    flipped = Y.copy()
    flipped[:, [2, 3]] *= -1
    params = dict(TINY, max_epochs=6, focus_task=0, rmtl_reward="policy")
    est = FocusedTaskRegressor(**params).fit(X, Y)
    mirrored = FocusedTaskRegressor(**params, callbacks=[MirrorHeads([2, 3])]).fit(X, flipped)
    assert est.aux_weights_history_[:, 1:].any()
    np.testing.assert_allclose(mirrored.aux_weights_history_, est.aux_weights_history_,
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(mirrored.predict(X), est.predict(X), rtol=1e-6, atol=1e-6)


# The claims of issue 5's "Done means", on make_multitask_regression with focus task 0, related
# tasks 1-3 and conflicting tasks 4-6, held-out R^2 of the focus task on 1,000 rows, 100
# training rows, trunk (32,), batch 32, lr 1e-2, 100 epochs.
#
# With the default conflict="opposite" (w_t near -w_bar) a conflicting task is, for a hard-sharing
# network, a related one with a mirrored head (test_rmtl_cannot_tell_a_task_from_its_negation):
# offline, rmtl's conflicting / related weight ratio was 0.37 to 2.56 on 40 runs, never below a
# fifth. The claim is about tasks whose gradients disagree with the focus task's, so the tests use
# conflict="unrelated" (conflicting tasks read their own features). Offline, seeds 0-19:
# - noise 1.0 (multi_task suffers negative transfer: single_task beat it on 20 of 20):
#   ratio below 1/5 on 17 of 20 (0.019 to 0.272); rmtl >= multi_task on 20 of 20 (by 0.004 to
#   0.37); lbtw >= multi_task on 15 of 20;
# - noise 0.5: ratio below 1/5 on 20 of 20 (at most 0.091); rmtl >= multi_task on 15 of 20,
#   lbtw on 12 of 20.
# Those figures are of the rmtl before issue 11 (the policy reward on the representation), which
# locked on to one related task. The default now (rmtl_reward="policy", on the last shared
# layer), offline, seeds 0-9: noise 1.0: ratio below 1/5 on 4 of 10 (mean 0.26), rmtl >=
# multi_task on 10 of 10; noise 0.5: ratio below 1/5 on 9 of 10 (mean 0.09); the smallest share
# of a related task in the related weight 0.15 (no lock-in). The authors' per-task reward on the
# head weights does not separate the groups (mean ratio 0.95 and 0.86).
# The tests run seeds 0, 1, 2 (the first three, not picked): the scores at noise 1.0, issue 11's
# lock-in criteria at noise 0.5, on the mean over the three seeds.
DONE_MEANS = dict(focus_task=0, hidden_layer_sizes=(32,), max_epochs=100, batch_size=32, lr=1e-2,
                  **OLD_TRAINING)
DONE_MEANS_SEEDS = (0, 1, 2)


def _unrelated_data(seed, noise):
    return make_multitask_regression(n_samples=1100, n_features=30, n_tasks=7, n_conflicting=3,
                                     conflict="unrelated", noise=noise, random_state=seed)


@pytest.fixture(scope="module")
def done_means():
    scores = {s: [] for s in ("multi_task", "lbtw", "rmtl")}
    for seed in DONE_MEANS_SEEDS:
        X, Y = _unrelated_data(seed, noise=1.0)
        for strategy in scores:
            model = FocusedTaskRegressor(**DONE_MEANS, strategy=strategy, random_state=seed)
            scores[strategy].append(model.fit(X[:100], Y[:100]).score(X[100:], Y[100:]))
    return {s: np.mean(v) for s, v in scores.items()}


@pytest.fixture(scope="module")
def default_rmtl_weights():
    """Mean auxiliary weights of the default rmtl: (seeds, 6), related tasks first."""
    weights = []
    for seed in DONE_MEANS_SEEDS:
        X, Y = _unrelated_data(seed, noise=0.5)
        model = FocusedTaskRegressor(**DONE_MEANS, random_state=seed).fit(X[:100], Y[:100])
        weights.append(model.aux_weights_history_.mean(0))
    return np.array(weights)


@pytest.mark.parametrize("strategy", ["lbtw", "rmtl"])
def test_lbtw_and_rmtl_score_at_least_as_well_as_multi_task(done_means, strategy):
    assert done_means[strategy] >= done_means["multi_task"]


def test_rmtl_weighs_unrelated_tasks_below_a_fifth_of_related_ones(default_rmtl_weights):
    related, unrelated = default_rmtl_weights[:, :3], default_rmtl_weights[:, 3:]
    assert (unrelated.mean(1) / related.mean(1)).mean() < 1 / 5


def test_rmtl_does_not_lock_on_to_one_related_task(default_rmtl_weights):
    related = default_rmtl_weights[:, :3]
    shares = related / related.sum(1, keepdims=True)
    assert shares.min() >= 0.1  # every related task, on every seed
