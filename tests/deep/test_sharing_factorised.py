"""Tensor-factorisation and low-supervision sharing: hand-computed forward passes, limit cases
equal to independent towers and hard sharing, the rank constraint, padding and errors."""

import pytest

torch = pytest.importorskip("torch")

from skmtl.deep._sharing_factorised import (  # noqa: E402
    LowSupervisionModule,
    TensorFactorisationModule,
)
from skmtl.deep.modules import HardSharingModule, IndependentModule  # noqa: E402

N_FEATURES = 5
BATCH = 7


def features(n_features=N_FEATURES, batch=BATCH):
    return torch.randn(batch, n_features)


def padded_loss(module, X):
    """A loss touching every real output with different weights (padded columns left out)."""
    out = module.forward_padded(X)
    scale = torch.arange(1, out.numel() + 1, dtype=out.dtype).view_as(out) / out.numel()
    return (scale * out * module.output_mask.unsqueeze(1)).square().sum()


def head_by_hand(module, task, r):
    """Output of task ``task``'s head (no head hidden layers) on ``r`` of shape (B, h)."""
    out = module.task_heads.output
    size = module.output_sizes[task]
    return r @ out.weight[task, : r.shape[1], :size] + out.bias[task, :size]


# --------------------------------------------------------------------------------------------
# TensorFactorisationModule
# --------------------------------------------------------------------------------------------


def test_rank_equal_to_tasks_starts_as_independent_towers():
    torch.manual_seed(3)
    independent = IndependentModule(N_FEATURES, [1, 2, 1], hidden_layer_sizes=(4, 3))
    torch.manual_seed(3)
    factorised = TensorFactorisationModule(
        N_FEATURES, [1, 2, 1], hidden_layer_sizes=(4, 3), tensor_rank=3
    )
    for layer, tucker in zip(independent.towers.layers, factorised.layers, strict=True):
        assert torch.equal(tucker.task_factor, torch.eye(3))
        assert torch.equal(tucker.core_weight, layer.weight)
        assert torch.equal(tucker.bias, layer.bias)
    X = features()
    torch.testing.assert_close(
        factorised.forward_padded(X), independent.forward_padded(X), rtol=0, atol=1e-6
    )


def test_full_rank_identity_factor_recovers_independent_towers_and_gradients():
    output_sizes = [2, 1, 3]
    torch.manual_seed(1)
    independent = IndependentModule(
        N_FEATURES, output_sizes, hidden_layer_sizes=(6, 4), activation="tanh"
    )
    torch.manual_seed(2)  # different initial weights, overwritten below
    factorised = TensorFactorisationModule(
        N_FEATURES, output_sizes, hidden_layer_sizes=(6, 4), activation="tanh", tensor_rank=3
    )
    with torch.no_grad():
        for layer, tucker in zip(independent.towers.layers, factorised.layers, strict=True):
            tucker.core_weight.copy_(layer.weight)
            tucker.bias.copy_(layer.bias)
            tucker.task_factor.copy_(torch.eye(3))
    factorised.task_heads.load_state_dict(independent.task_heads.state_dict())
    X = features()
    torch.testing.assert_close(
        factorised.forward_padded(X), independent.forward_padded(X), rtol=0, atol=1e-6
    )
    # With A = I, dL/dS[k] = sum_t A[t, k] dL/dW[t] = dL/dW[k]: the towers' weight gradients.
    padded_loss(independent, X).backward()
    padded_loss(factorised, X).backward()
    for layer, tucker in zip(independent.towers.layers, factorised.layers, strict=True):
        torch.testing.assert_close(tucker.core_weight.grad, layer.weight.grad, rtol=0, atol=1e-6)
        torch.testing.assert_close(tucker.bias.grad, layer.bias.grad, rtol=0, atol=1e-6)
        # dL/dA[t, k] = <dL/dW[t], S[k]>
        expected = torch.einsum("tio,kio->tk", layer.weight.grad, layer.weight)
        torch.testing.assert_close(tucker.task_factor.grad, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        factorised.task_heads.output.weight.grad,
        independent.task_heads.output.weight.grad,
        rtol=0,
        atol=1e-6,
    )


def test_every_weight_stack_is_reachable_at_full_rank():
    module = TensorFactorisationModule(3, [1] * 4, hidden_layer_sizes=(5, 2), tensor_rank=4)
    mixing = torch.randn(4, 4) + 4 * torch.eye(4)  # invertible
    for index, layer in enumerate(module.layers):
        target = torch.randn(4, layer.in_features, layer.out_features)
        with torch.no_grad():
            layer.core_weight.copy_(target)
            layer.task_factor.copy_(torch.eye(4))
        torch.testing.assert_close(module.task_weights(index), target, rtol=0, atol=0)
        # Any invertible task factor reaches it too, with S = A^{-1} W.
        core = torch.linalg.solve(mixing, target.reshape(4, -1)).view_as(target)
        with torch.no_grad():
            layer.core_weight.copy_(core)
            layer.task_factor.copy_(mixing)
        torch.testing.assert_close(module.task_weights(index), target, rtol=1e-4, atol=1e-5)


def test_forward_pass_by_hand():
    output_sizes = [1, 2, 1]
    module = TensorFactorisationModule(
        N_FEATURES, output_sizes, hidden_layer_sizes=(4, 3), activation="tanh", tensor_rank=2
    )
    X = features()
    outputs = module(X)
    assert module.shared(X).shape == (3, BATCH, 3)
    for task in range(3):
        h = X
        for index, layer in enumerate(module.layers):
            weight = torch.zeros(layer.in_features, layer.out_features)
            for k in range(2):
                weight = weight + layer.task_factor[task, k] * layer.core_weight[k]
            torch.testing.assert_close(module.task_weights(index)[task], weight)
            h = torch.tanh(h @ weight + layer.bias[task])
        expected = head_by_hand(module, task, h)
        assert outputs[task].shape == (BATCH, output_sizes[task])
        torch.testing.assert_close(outputs[task], expected, rtol=1e-5, atol=1e-6)


def test_stacked_weights_have_rank_at_most_tensor_rank_during_training():
    module = TensorFactorisationModule(4, [1] * 5, hidden_layer_sizes=(6, 3), tensor_rank=2)
    X = features(4)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.5)
    for _ in range(2):
        for index in range(2):
            stacked = module.task_weights(index).detach().reshape(5, -1)
            assert torch.linalg.matrix_rank(stacked).item() == 2  # <= r, and = r generically
        optimizer.zero_grad()
        padded_loss(module, X).backward()
        optimizer.step()
    assert not torch.equal(module.layers[0].core_weight.grad, torch.zeros(2, 4, 6))


def test_reduced_rank_initialisation_scale():
    n_in = 100
    module = TensorFactorisationModule(n_in, [1] * 4, hidden_layer_sizes=(100,), tensor_rank=2)
    factor = module.layers[0].task_factor.detach()
    torch.testing.assert_close(factor.norm(dim=1), torch.ones(4))
    assert torch.linalg.matrix_rank(factor).item() == 2  # tasks start as different mixes
    weights = module.task_weights(0).detach()
    target = 1.0 / (3 * n_in) ** 0.5  # std of U(-1/sqrt(d_in), 1/sqrt(d_in)), as nn.Linear
    for task in range(4):
        assert abs(weights[task].std().item() / target - 1) < 0.05


def test_default_rank_and_attributes():
    # ceil(T / 2) below 16 tasks (fewer mixes than tasks: the towers share), then 8
    assert TensorFactorisationModule(2, [1] * 3, hidden_layer_sizes=(2,)).tensor_rank == 2
    assert TensorFactorisationModule(2, [1] * 1, hidden_layer_sizes=(2,)).tensor_rank == 1
    assert TensorFactorisationModule(2, [1] * 10, hidden_layer_sizes=(2,)).tensor_rank == 5
    module = TensorFactorisationModule(2, [1] * 20, hidden_layer_sizes=(2,))
    assert module.tensor_rank == 8
    assert module.layers[0].core_weight.shape == (8, 2, 2)
    assert module.layers[0].task_factor.shape == (20, 8)
    assert not module.shares_representation
    assert not module.has_shared_part
    assert module.last_shared_layer is None
    with pytest.raises(ValueError, match="no part shared"):
        module.forward_shared(features(2))
    decayed = {name for name, _ in module.named_parameters() if name.endswith("weight")}
    assert "layers.0.core_weight" in decayed
    assert "layers.0.task_factor" not in decayed
    with pytest.raises(ValueError, match="layer must be an integer in \\[0, 0\\]"):
        module.task_weights(1)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"tensor_rank": 4}, "tensor_rank=4 exceeds the number of tasks T=3"),
        ({"tensor_rank": 0}, "tensor_rank must be a positive integer, got 0"),
        ({"tensor_rank": 1.5}, "tensor_rank must be a positive integer, got 1.5"),
        ({"tensor_rank": True}, "tensor_rank must be a positive integer, got True"),
        ({"hidden_layer_sizes": ()}, "tensor_factorisation.*at least one hidden layer"),
    ],
)
def test_tensor_factorisation_errors(params, match):
    params.setdefault("hidden_layer_sizes", (4,))
    with pytest.raises(ValueError, match=match):
        TensorFactorisationModule(N_FEATURES, [1, 1, 1], **params)


# --------------------------------------------------------------------------------------------
# LowSupervisionModule
# --------------------------------------------------------------------------------------------


def test_low_supervision_forward_pass_by_hand():
    output_sizes = [2, 1, 1]
    module = LowSupervisionModule(
        N_FEATURES,
        output_sizes,
        hidden_layer_sizes=(4, 3),
        activation="tanh",
        task_depths=(1, 2, 2),
    )
    assert not module.shares_representation
    assert module.representation_size == 4
    X = features()
    first, second = module.trunk[0], module.trunk[3]
    h1 = torch.tanh(X @ first.weight.T + first.bias)
    h2 = torch.tanh(h1 @ second.weight.T + second.bias)
    R = module.shared(X)
    assert R.shape == (3, BATCH, 4)
    torch.testing.assert_close(R[0], h1)
    for task in (1, 2):
        torch.testing.assert_close(R[task, :, :3], h2)
        assert torch.equal(R[task, :, 3], torch.zeros(BATCH))  # the padding
    outputs = module(X)
    for task, h in enumerate((h1, h2, h2)):
        torch.testing.assert_close(outputs[task], head_by_hand(module, task, h))
    torch.testing.assert_close(module.forward_shared(X), module.forward_padded(X))


def test_default_depths_are_hard_sharing():
    kwargs = dict(hidden_layer_sizes=(4, 3), head_layer_sizes=(2,))
    torch.manual_seed(0)
    hard = HardSharingModule(N_FEATURES, [1, 3], **kwargs)
    torch.manual_seed(0)
    low = LowSupervisionModule(N_FEATURES, [1, 3], **kwargs)
    assert low.task_depths == (2, 2)
    assert low.shares_representation and low.has_shared_part
    hard_state, low_state = hard.state_dict(), low.state_dict()
    assert list(low_state) == list(hard_state)
    for name, value in hard_state.items():
        assert torch.equal(low_state[name], value), name
    X = features()
    assert low.shared(X).shape == (BATCH, 3)
    assert torch.equal(low.forward_padded(X), hard.forward_padded(X))
    assert torch.equal(low.forward_shared(X), hard.forward_shared(X))
    assert low.last_shared_layer is low.trunk[3]
    assert torch.equal(low.last_shared_layer.weight, hard.last_shared_layer.weight)
    # A hard-sharing state (no task_slot buffer in it) loads as it is.
    low.load_state_dict(hard_state)


def test_padded_head_columns_get_zero_gradient_and_do_not_change_outputs():
    module = LowSupervisionModule(
        N_FEATURES,
        [1, 2, 1],
        hidden_layer_sizes=(4, 3),
        activation="tanh",
        task_depths=(1, 2, 2),
    )
    X = features()
    padded_loss(module, X).backward()
    grad = module.task_heads.output.weight.grad
    assert torch.equal(grad[1:, 3:], torch.zeros_like(grad[1:, 3:]))
    assert grad[0, 3].abs().sum() > 0  # task 0 reads all 4 units of layer 1
    assert grad[1:, :3].abs().sum() > 0
    before = module.forward_padded(X)
    with torch.no_grad():
        module.task_heads.output.weight[1:, 3:] += 5.0
    assert torch.equal(module.forward_padded(X), before)


def test_layers_above_deepest_read_depth_are_not_computed():
    calls = []
    module = LowSupervisionModule(
        N_FEATURES, [1, 1, 1], hidden_layer_sizes=(4, 3, 2), task_depths=(1, 2, 1)
    )
    module.trunk[6].register_forward_hook(lambda *_: calls.append(3))
    module.trunk[3].register_forward_hook(lambda *_: calls.append(2))
    module.shared(features())
    assert calls == [2]  # layer 3 never runs; layer 2 does
    X = features()
    padded_loss(module, X).backward()
    assert module.trunk[6].weight.grad is None


def test_equal_low_depth_shares_that_layer():
    module = LowSupervisionModule(N_FEATURES, [1, 1], hidden_layer_sizes=(4, 3), task_depths=[1, 1])
    assert module.shares_representation
    assert module.last_shared_layer is module.trunk[0]
    X = features()
    first = module.trunk[0]
    torch.testing.assert_close(module.shared(X), torch.relu(X @ first.weight.T + first.bias))
    different = LowSupervisionModule(
        N_FEATURES, [1, 1], hidden_layer_sizes=(4, 3), task_depths=[1, 2]
    )
    assert different.last_shared_layer is None
    assert different.task_slot.tolist() == [0, 1]
    assert "task_slot" not in different.state_dict()


def test_low_supervision_state_dict_round_trip():
    kwargs = dict(hidden_layer_sizes=(4, 3), task_depths=(2, 1, 2))
    module = LowSupervisionModule(N_FEATURES, [1, 1, 2], **kwargs)
    copy = LowSupervisionModule(N_FEATURES, [1, 1, 2], **kwargs)
    copy.load_state_dict(module.state_dict())
    X = features()
    assert torch.equal(copy.forward_padded(X), module.forward_padded(X))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"task_depths": (0, 1, 2)}, r"task_depths\[0\] is 0"),
        ({"task_depths": (1, 3, 2)}, r"in \[1, 2\].*task_depths\[1\] is 3"),
        ({"task_depths": (1, 2)}, "sequence of 3 integers.*got 2 depths"),
        ({"task_depths": (1, 1.5, 2)}, r"task_depths\[1\] is 1.5"),
        ({"task_depths": (1, True, 2)}, r"task_depths\[1\] is True"),
        ({"task_depths": "122"}, "got '122'"),
        ({"task_depths": 2}, "got 2"),
        ({"hidden_layer_sizes": ()}, "low_supervision.*at least one hidden layer"),
    ],
)
def test_low_supervision_errors(params, match):
    params.setdefault("hidden_layer_sizes", (4, 3))
    with pytest.raises(ValueError, match=match):
        LowSupervisionModule(N_FEATURES, [1, 1, 1], **params)
