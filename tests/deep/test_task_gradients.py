"""Per-task gradients without a backward pass per task, against autograd one task at a time."""

import copy

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from skmtl.deep import FocusedTaskRegressor, MultiTaskClassifier, MultiTaskRegressor, build_module
from skmtl.deep._labels import TaskLabels, label_rows
from skmtl.deep._net import MultiTaskDataset, TaskLoss, resolve_gradient_space
from skmtl.deep._task_gradients import (
    ExplicitGradients,
    FactoredGradients,
    GramGradients,
    LastLayerGradients,
    gather_rows,
)
from skmtl.deep.weighting import GradNormWeighting, RMTLWeighting

OLD_TRAINING = dict(optimizer="adam", weight_decay=0.0, early_stopping=False, dropout=0.0)


def _batch(n=24, n_features=5, n_tasks=4, missing=0.5, seed=0, n_classes=None):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, n_features)).astype(np.float32)
    if n_classes is None:
        Y = X @ rng.normal(size=(n_features, n_tasks)) + rng.normal(size=(n, n_tasks))
    else:
        Y = rng.randint(n_classes, size=(n, n_tasks)).astype(float)
    Y[rng.uniform(size=Y.shape) < missing] = np.nan
    Y[0] = 0.0  # every task has a label
    mask = ~np.isnan(Y)
    dataset = MultiTaskDataset(X, TaskLabels.from_wide(np.nan_to_num(Y).astype(np.float32), mask))
    return dataset[(np.arange(n), None)]


def _autograd(losses, param):
    """One autograd call per task: the reference."""
    return torch.stack([
        torch.autograd.grad(losses[t], param, retain_graph=True, allow_unused=True)[0]
        if losses[t].requires_grad else torch.zeros_like(param)
        for t in range(losses.shape[0])
    ]).flatten(1).double()


def _check_against(grads, reference):
    gram = reference @ reference.T
    np.testing.assert_allclose(grads.gram().double().numpy(), gram.numpy(), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(grads.norms().double().numpy(), reference.norm(dim=1).numpy(),
                               rtol=1e-4, atol=1e-7)
    for t in range(reference.shape[0]):
        np.testing.assert_allclose(grads.dots(t).double().numpy(), gram[:, t].numpy(),
                                   rtol=1e-4, atol=1e-7)
    P = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, -2.0, 0.0], [0.0, 1.0, 1.0, 1.0],
                      [0.5, 0.2, 0.0, 0.3]])
    expected = (P.double() @ reference).norm(dim=1)
    np.testing.assert_allclose(grads.combination_norms(P).double().numpy(), expected.numpy(),
                               rtol=1e-4, atol=1e-7)


def _recording_gradnorm(recorded):
    """A GradNormWeighting class that appends the norms it receives to ``recorded``."""

    class Recording(GradNormWeighting):
        def after_backward(self, losses, observed, grad_norms):
            recorded.append(grad_norms.double().numpy().copy())
            super().after_backward(losses, observed, grad_norms)

    return Recording


class Snapshots(Callback):
    """The module's state and the batch before every training step."""

    def initialize(self):
        self.states_ = []
        return self

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if training:
            self.states_.append((copy.deepcopy(net.module_.state_dict()), batch))


def _last_layer(delta, a, labels):
    index, valid = label_rows(labels["row"], labels["task"], delta.shape[0])
    return LastLayerGradients(gather_rows(delta, index, valid), index, valid, a)


def _forward(module, Xi, yi, kinds, sizes):
    captured = {}
    layer = module.last_shared_layer
    hook = layer.register_forward_hook(lambda m, i, o: captured.update(a=i[0], z=o))
    rep = module.shared(Xi)
    hook.remove()
    out = module.heads_padded(rep)
    sums, counts = TaskLoss(kinds, sizes)(out, yi)
    return rep, out, sums / counts.clamp_min(1), captured


@pytest.mark.parametrize("missing", [0.0, 0.6])
@pytest.mark.parametrize("hidden", [(6,), (7, 3)])
def test_last_shared_layer_gradients_equal_autograd_per_task(missing, hidden):
    torch.manual_seed(0)
    Xi, yi = _batch(missing=missing)
    kinds, sizes = ["regression"] * 4, [1] * 4
    module = build_module("hard", 5, sizes, hidden_layer_sizes=hidden, dropout=0.3)
    module.train()  # dropout on: its mask is part of the Jacobian between z and rep
    rep, out, losses, captured = _forward(module, Xi, yi, kinds, sizes)
    reference = _autograd(losses, module.last_shared_layer.weight)
    (D,) = torch.autograd.grad(losses, out, torch.ones_like(losses), retain_graph=True)
    g = FactoredGradients(D, module.task_heads.output.weight).representation()
    (delta,) = torch.autograd.grad(rep, captured["z"], g, retain_graph=True,
                                   is_grads_batched=True)
    _check_against(_last_layer(delta, captured["a"], yi), reference)


def test_last_shared_layer_gradients_of_many_rows_per_task_take_the_other_branch():
    # more labelled rows than input features: the norms form the gradients themselves
    torch.manual_seed(1)
    Xi, yi = _batch(n=40, n_features=3, missing=0.0)
    kinds, sizes = ["regression"] * 4, [1] * 4
    module = build_module("hard", 3, sizes, hidden_layer_sizes=(2, 4), dropout=0.0)
    rep, out, losses, captured = _forward(module, Xi, yi, kinds, sizes)
    assert captured["a"].shape[1] < 40
    reference = _autograd(losses, module.last_shared_layer.weight)
    (delta,) = torch.autograd.grad(
        rep, captured["z"], _autograd(losses, rep).float().view(4, *rep.shape),
        retain_graph=True, is_grads_batched=True)
    _check_against(_last_layer(delta, captured["a"], yi), reference)


def test_the_net_hands_gradnorm_the_norms_of_autograd_on_the_last_shared_layer():
    recorded = []
    Recording = _recording_gradnorm(recorded)

    X, Y = _batch_data(n=48, n_tasks=3, n_classes=3)
    est = MultiTaskClassifier(
        hidden_layer_sizes=(6, 5), head_layer_sizes=(4,), max_epochs=2, batch_size=16,
        weighting=Recording(), callbacks=[Snapshots()], random_state=0, **OLD_TRAINING,
    ).fit(X, Y)
    assert est.net_.weighting_.gradient_space_ == "last_shared_layer"
    snapshots = next(cb for _, cb in est.net_.callbacks_ if isinstance(cb, Snapshots)).states_
    module = copy.deepcopy(est.net_.module_)
    criterion = est.net_.criterion_
    assert len(recorded) == len(snapshots) == 6
    for norms, (state, (Xb, yb)) in zip(recorded, snapshots, strict=True):
        module.load_state_dict(state)
        out = module.heads_padded(module.shared(Xb))
        sums, counts = criterion(out, yb)
        reference = _autograd(sums / counts.clamp_min(1), module.last_shared_layer.weight)
        np.testing.assert_allclose(norms, reference.norm(dim=1).numpy(), rtol=1e-4, atol=1e-8)


class NormalisedTrunk(torch.nn.Module):
    """A user trunk whose last shared Linear is followed by a layer norm (not elementwise)."""

    def __init__(self, n_features=4):
        super().__init__()
        self.hidden = torch.nn.Linear(n_features, 6)
        self.last = torch.nn.Linear(6, 5)
        self.norm = self._norm(5)

    @staticmethod
    def _norm(width):
        return torch.nn.LayerNorm(width, elementwise_affine=False)

    def forward(self, X):
        return torch.tanh(self.norm(self.last(torch.relu(self.hidden(X)))))


class BatchNormTrunk(NormalisedTrunk):
    """The same with a batch norm without parameters: in training it mixes the rows, so a
    task's delta reaches rows it has no label on."""

    @staticmethod
    def _norm(width):
        return torch.nn.BatchNorm1d(width, affine=False)


@pytest.mark.parametrize("module", [None, NormalisedTrunk, BatchNormTrunk])
def test_gradnorm_norms_equal_autograd_for_elementwise_and_other_tails(module):
    # the library's trunk (activation and dropout after the last Linear: elementwise), a
    # user trunk with a layer norm there (a batched vector-Jacobian product, row by row) and
    # one with a batch norm (the product reaches every row of the batch)
    recorded = []
    Recording = _recording_gradnorm(recorded)

    X, Y = _batch_data(n=40, n_tasks=4)
    est = MultiTaskRegressor(hidden_layer_sizes=(6, 5), module=module, max_epochs=2,
                             batch_size=10, weighting=Recording(), callbacks=[Snapshots()],
                             random_state=0, **OLD_TRAINING).fit(X, Y)
    assert est.net_._elementwise_tail_ is (module is None)
    snapshots = next(cb for _, cb in est.net_.callbacks_ if isinstance(cb, Snapshots)).states_
    network = copy.deepcopy(est.net_.module_).train()  # batch statistics, as in training
    for norms, (state, (Xb, yb)) in zip(recorded, snapshots, strict=True):
        network.load_state_dict(state)
        sums, counts = est.net_.criterion_(network.forward_padded(Xb), yb)
        reference = _autograd(sums / counts.clamp_min(1), network.last_shared_layer.weight)
        np.testing.assert_allclose(norms, reference.norm(dim=1).numpy(), rtol=1e-4, atol=1e-8)


def test_last_shared_layer_gradients_through_a_batch_norm_equal_autograd_per_task():
    # norms, Gram matrix, dots and combination norms of the net's own last-layer gradients,
    # on a batch where most tasks lack most labels: the batch norm spreads each task's
    # delta over the rows it has no label on, which must count
    X, Y = _batch_data(n=24, n_tasks=4)
    Y[2:][np.random.RandomState(1).uniform(size=Y[2:].shape) < 0.5] = np.nan
    est = MultiTaskRegressor(module=BatchNormTrunk, max_epochs=1, batch_size=24,
                             random_state=0, **OLD_TRAINING).fit(X, Y)
    Xb, yb = _batch(n=24, n_features=4, missing=0.6, seed=2)
    module = est.net_.module_.train()
    captured = {}
    hook = module.last_shared_layer.register_forward_hook(
        lambda layer, inputs, output: captured.update(a=inputs[0], z=output))
    rep = module.shared(Xb)
    hook.remove()
    out = module.heads_padded(rep)
    sums, counts = est.net_.criterion_(out, yb)
    losses = sums / counts.clamp_min(1)
    on_rep = est.net_._representation_gradients(losses, out, None,
                                                module.task_heads.output.weight)
    grads = est.net_._last_layer_gradients(on_rep, rep, captured, yb)
    assert grads.n_rows == 24  # every row kept: the deltas are not zero off the labels
    _check_against(grads, _autograd(losses, module.last_shared_layer.weight))


def _batch_data(n, n_tasks, n_classes=None, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 4))
    if n_classes is None:
        Y = X @ rng.normal(size=(4, n_tasks)) + 0.3 * rng.normal(size=(n, n_tasks))
    else:
        Y = rng.randint(n_classes, size=(n, n_tasks)).astype(float)
        Y[:n_classes] = np.arange(n_classes)[:, None]
    Y[rng.uniform(size=Y.shape) < 0.3] = np.nan
    Y[:2] = np.where(np.isnan(Y[:2]), 1.0, Y[:2])
    return X, Y


@pytest.mark.parametrize("head_layer_sizes", [(), (3,)])
def test_rmtl_per_task_rewards_equal_autograd_on_the_head_weights(head_layer_sizes):
    records = []

    class Batches(Callback):
        def on_batch_begin(self, net, batch=None, training=False, **kwargs):
            if training:
                self._before = (copy.deepcopy(net.module_.state_dict()), batch)

        def on_batch_end(self, net, batch=None, training=False, **kwargs):
            if training:
                records.append((*self._before, net.weighting_.batch_weights_.numpy().copy()))

    X, Y = _batch_data(n=40, n_tasks=4)
    est = FocusedTaskRegressor(
        focus_task=1, hidden_layer_sizes=(5,), head_layer_sizes=head_layer_sizes, max_epochs=2,
        batch_size=8, lr=0.05, rmtl_reward="per_task", callbacks=[Batches()], random_state=0,
        **OLD_TRAINING,
    ).fit(X, Y)
    assert est.net_.weighting_.gradient_space_ == "head_weights"
    module = copy.deepcopy(est.net_.module_)
    weights = np.array([0.0, 1.0, 0.0, 0.0])
    for state, (Xb, yb), batch_weights in records:
        module.load_state_dict(state)
        sums, counts = est.net_.criterion_(module.heads_padded(module.shared(Xb)), yb)
        # each task's gradient on its own slice of the batched output layer
        weight = module.task_heads.output.weight
        grads = _autograd(sums / counts.clamp_min(1), weight).view(4, *weight.shape)
        grads = torch.stack([grads[t, t].flatten() for t in range(4)])
        if counts[1] > 0:
            for a in (0, 2, 3):
                norms = float(grads[a].norm() * grads[1].norm())
                if counts[a] > 0:  # a zero gradient (a dead head) has no direction: 0
                    cosine = float(grads[a] @ grads[1]) / norms if norms > 0 else 0.0
                    weights[a] = max(cosine, 0.0)
        np.testing.assert_allclose(batch_weights, weights, atol=1e-5)
    assert (est.aux_weights_history_ > 0).any()


def test_rmtl_per_task_tells_a_task_from_its_negation_where_the_policy_reward_cannot():
    # a negated task with a mirrored head has the same gradient on the representation and on
    # the last shared layer (-D_t times -W_t), but the opposite one on its head's weight
    X, Y = _batch_data(n=48, n_tasks=3)
    Y[:, 2] = -Y[:, 0]
    rewards = {}
    for reward in ("per_task", "policy"):
        weighting = RMTLWeighting(1, reward=reward)
        weighting.reset(3, n_observed=np.ones(3), task_type="regression", device="cpu")
        torch.manual_seed(0)
        module = build_module("hard", 4, [1] * 3, hidden_layer_sizes=(6,))
        with torch.no_grad():
            module.task_heads.output.weight[2] = -module.task_heads.output.weight[0]
            module.task_heads.output.bias[2] = -module.task_heads.output.bias[0]
        mask = ~np.isnan(Y)
        labels = TaskLabels.from_wide(np.nan_to_num(Y).astype(np.float32), mask)
        Xi, yi = MultiTaskDataset(X.astype(np.float32), labels)[(np.arange(48), None)]
        rep, out, losses, captured = _forward(module, Xi, yi, ["regression"] * 3, [1] * 3)
        if reward == "per_task":
            (grad,) = torch.autograd.grad(losses.sum(), module.task_heads.output.weight,
                                          retain_graph=True)
            grads = ExplicitGradients(grad, "head_weights")
        else:
            (D,) = torch.autograd.grad(losses, out, torch.ones_like(losses), retain_graph=True)
            g = FactoredGradients(D, module.task_heads.output.weight).representation()
            (delta,) = torch.autograd.grad(rep, captured["z"], g, retain_graph=True,
                                           is_grads_batched=True)
            grads = _last_layer(delta, captured["a"], yi)
        # task 0 and its negation 2 against focus 1
        to_focus = grads.dots(1).double()
        norms = grads.norms().double()
        rewards[reward] = (to_focus / (norms * norms[1])).numpy()
    assert rewards["per_task"][0] == pytest.approx(-rewards["per_task"][2], rel=1e-3)
    assert rewards["policy"][0] == pytest.approx(rewards["policy"][2], rel=1e-3)


def test_gram_gradients_answer_from_the_gram_matrix():
    G = torch.randn(4, 7, dtype=torch.float64)
    _check_against(GramGradients(G @ G.T), G)
    _check_against(ExplicitGradients(G.view(4, 7, 1), "head_weights"), G)


@pytest.mark.parametrize(
    "sharing, params, expected",
    [
        ("hard", {"hidden_layer_sizes": (4,)}, "last_shared_layer"),
        ("hard", {"hidden_layer_sizes": ()}, "representation"),
        ("independent", {"hidden_layer_sizes": (4,)}, "representation"),
        ("cross_stitch", {"hidden_layer_sizes": (4,)}, "representation"),
        ("conditioned", {"hidden_layer_sizes": (4,)}, "representation"),
        ("conditioned", {"hidden_layer_sizes": (4, 3)}, "last_shared_layer"),
    ],
)
def test_networks_without_a_shared_linear_layer_use_the_representation(sharing, params,
                                                                        expected):
    module = build_module(sharing, 3, [1, 1], **params)
    assert resolve_gradient_space("last_shared_layer", module) == expected
    assert resolve_gradient_space("representation", module) == "representation"
    X, Y = _batch_data(n=30, n_tasks=2)
    est = MultiTaskRegressor(sharing=sharing, weighting="gradnorm", max_epochs=2, batch_size=10,
                             random_state=0, **params, **OLD_TRAINING).fit(X[:, :3], Y)
    assert est.net_.weighting_.gradient_space_ == expected
    assert np.isfinite(est.predict(X[:, :3])).all()


def test_conditioned_last_shared_layer_norms_equal_autograd():
    recorded = []
    Recording = _recording_gradnorm(recorded)

    X, Y = _batch_data(n=20, n_tasks=3)
    est = MultiTaskRegressor(sharing="conditioned", hidden_layer_sizes=(5, 4), max_epochs=1,
                             batch_size=20, weighting=Recording(), random_state=0,
                             **OLD_TRAINING)
    torch.manual_seed(0)
    module0 = None

    class First(Callback):
        def on_batch_begin(self, net, batch=None, training=False, **kwargs):
            nonlocal module0
            if training and module0 is None:
                module0 = (copy.deepcopy(net.module_), batch)

    est.set_params(callbacks=[First()]).fit(X, Y)
    module, (Xb, yb) = module0
    sums, counts = est.net_.criterion_(module.heads_padded(module.shared(Xb)), yb)
    reference = _autograd(sums / counts.clamp_min(1), module.last_shared_layer.weight)
    np.testing.assert_allclose(recorded[0], reference.norm(dim=1).numpy(), rtol=1e-4)


def test_gradnorm_on_representation_keeps_the_old_quantity():
    X, Y = _batch_data(n=30, n_tasks=3)
    est = MultiTaskRegressor(weighting=GradNormWeighting(gradient_on="representation"),
                             hidden_layer_sizes=(4,), max_epochs=2, batch_size=10,
                             random_state=0, **OLD_TRAINING).fit(X, Y)
    assert est.net_.weighting_.gradient_space_ == "representation"
    exact = MultiTaskRegressor(weighting="gradnorm", hidden_layer_sizes=(4,), max_epochs=2,
                               batch_size=10, random_state=0, **OLD_TRAINING).fit(X, Y)
    assert not np.allclose(est.task_weights_history_, exact.task_weights_history_)


@pytest.mark.parametrize("affinity_on", ["representation", "last_shared_layer"])
def test_gradient_affinity_is_the_cosine_of_autograd_gradients(affinity_on):
    states = []

    class First(Callback):
        def on_batch_begin(self, net, batch=None, training=False, **kwargs):
            if training:
                states.append((copy.deepcopy(net.module_), batch))

    X, Y = _batch_data(n=30, n_tasks=3)
    est = MultiTaskRegressor(hidden_layer_sizes=(6, 5), max_epochs=1, batch_size=30,
                             affinity_on=affinity_on, callbacks=[First()], random_state=0,
                             **OLD_TRAINING).fit(X, Y)
    (module, (Xb, yb)), = states
    rep = module.shared(Xb)
    sums, counts = est.net_.criterion_(module.heads_padded(rep), yb)
    wrt = rep if affinity_on == "representation" else module.last_shared_layer.weight
    G = _autograd(sums / counts.clamp_min(1), wrt)
    unit = G / G.norm(dim=1, keepdim=True)
    np.testing.assert_allclose(est.gradient_affinity_, (unit @ unit.T).numpy(), atol=1e-5)
