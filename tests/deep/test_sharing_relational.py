"""The "relationship" and "stacked" sharing strategies (skmtl.deep._sharing_relational)."""

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from skmtl.deep._sharing_relational import (  # noqa: E402
    RelationshipModule,
    StackedModule,
    covariance_step,
)
from skmtl.deep.modules import HardSharingModule, build_module  # noqa: E402

N_FEATURES = 5
OUTPUT_SIZES = [1, 3, 2]
N_TASKS = len(OUTPUT_SIZES)


def no_affinity():
    return np.full((N_TASKS, N_TASKS), np.nan)


# --------------------------------------------------------------------------------------------
# "relationship"
# --------------------------------------------------------------------------------------------


def relationship(**params):
    params.setdefault("hidden_layer_sizes", (8, 6))
    params.setdefault("head_layer_sizes", (4,))
    return RelationshipModule(N_FEATURES, OUTPUT_SIZES, **params)


def set_head_weights(module, seed):
    """Give the head weights known random values; return W (T, D) built in numpy."""
    rng = np.random.default_rng(seed)
    heads = module.task_heads
    mask = heads.output_mask.numpy()[:, None, :]
    parts = []
    with torch.no_grad():
        for layer in [*heads.hidden, heads.output]:
            values = rng.normal(scale=0.5, size=tuple(layer.weight.shape))
            if layer is heads.output:
                values = values * mask  # padded columns stay 0
            layer.weight.copy_(torch.from_numpy(values))
            parts.append(values.reshape(module.n_tasks, -1))
    return np.concatenate(parts, axis=1)


def test_relationship_is_hard_sharing_with_the_same_seed():
    torch.manual_seed(3)
    hard = HardSharingModule(N_FEATURES, OUTPUT_SIZES, hidden_layer_sizes=(8, 6),
                             head_layer_sizes=(4,))
    torch.manual_seed(3)
    module = relationship()
    hard_params = dict(hard.named_parameters())
    params = dict(module.named_parameters())
    assert params.keys() == hard_params.keys()
    for name, value in params.items():
        assert torch.equal(value, hard_params[name]), name
    X = torch.randn(7, N_FEATURES)
    assert torch.equal(module.forward_padded(X), hard.forward_padded(X))
    assert torch.equal(module.forward_shared(X), hard.forward_padded(X))
    assert module.shares_representation and module.has_shared_part
    assert module.last_shared_layer is module.trunk[3]
    assert module.n_head_weights == 6 * 4 + 4 * max(OUTPUT_SIZES)
    assert relationship(hidden_layer_sizes=()).last_shared_layer is None


def closed_form(W, eps=None):
    """T (W W^T + eps I)^{1/2} / tr(...), written with numpy's SVD (an independent route)."""
    gram = W @ W.T
    n_tasks = W.shape[0]
    if eps is None:
        eps = 1e-3 * np.trace(gram) / n_tasks
    u, values, _ = np.linalg.svd(gram + eps * np.eye(n_tasks))
    root = u @ np.diag(np.sqrt(values)) @ u.T
    return n_tasks * root / np.trace(root)


def test_covariance_step_matches_the_closed_form():
    module = relationship()
    W = set_head_weights(module, seed=1)
    np.testing.assert_array_equal(module.head_weight_matrix().detach().numpy(),
                                  W.astype(np.float32))
    assert torch.equal(module.task_covariance, torch.eye(N_TASKS))
    module.end_epoch(1, no_affinity)
    sigma = closed_form(W)
    np.testing.assert_allclose(module.task_covariance.numpy(), sigma, rtol=1e-5)
    np.testing.assert_allclose(np.trace(module.task_covariance.numpy()), N_TASKS, rtol=1e-6)
    np.testing.assert_allclose(module.task_precision.numpy(), np.linalg.inv(sigma), rtol=1e-4)
    scale = np.sqrt(np.diag(sigma))
    np.testing.assert_allclose(module.task_correlation().numpy(),
                               sigma / np.outer(scale, scale), rtol=1e-5)
    np.testing.assert_allclose(np.diag(module.task_correlation().numpy()), 1.0, rtol=1e-6)


def test_covariance_step_jitter():
    W = np.random.default_rng(0).normal(size=(3, 10))
    np.testing.assert_allclose(covariance_step(W, eps=0.25).numpy(), closed_form(W, 0.25),
                               rtol=1e-10)
    # all weights 0: the relative jitter would be 0, an absolute one is used: Sigma = I
    np.testing.assert_allclose(covariance_step(np.zeros((3, 10))).numpy(), np.eye(3),
                               rtol=1e-12)
    # Sigma does not depend on the scale of the weights (its trace is T)
    np.testing.assert_allclose(covariance_step(1e3 * W).numpy(), covariance_step(W).numpy(),
                               rtol=1e-8)
    with pytest.raises(ValueError, match="shape"):
        covariance_step(np.zeros(3))


def trace_term(sigma, gram):
    """tr(Sigma^{-1} W W^T) from gram = W W^T (torch, float64)."""
    return torch.trace(torch.linalg.solve(sigma, gram))


def test_covariance_step_minimises_the_trace_term_at_trace_t():
    rng = np.random.default_rng(4)
    n_tasks, width = 4, 9
    W = torch.from_numpy(rng.normal(size=(n_tasks, width)))
    gram = W @ W.T  # full rank: D >= T
    best = covariance_step(W, eps=0.0)
    assert float(best.trace()) == pytest.approx(n_tasks, rel=1e-12)
    # KKT: the gradient -Sigma^{-1} G Sigma^{-1} of the trace term is a multiple of I (the
    # gradient of the constraint tr Sigma = T) at the minimiser, and not elsewhere
    sigma = best.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(trace_term(sigma, gram), sigma)
    multiple = grad.diagonal().mean()
    assert (grad - multiple * torch.eye(n_tasks, dtype=grad.dtype)).abs().max() < 1e-10
    other = torch.eye(n_tasks, dtype=torch.float64, requires_grad=True)
    (grad_other,) = torch.autograd.grad(trace_term(other, gram), other)
    off = grad_other - grad_other.diagonal().mean() * torch.eye(n_tasks, dtype=torch.float64)
    assert off.abs().max() > 1e-2
    # the minimum is the squared trace norm over T ...
    nuclear = torch.linalg.svdvals(W).sum()
    assert float(trace_term(best, gram)) == pytest.approx(float(nuclear**2 / n_tasks), rel=1e-10)
    # ... and every other SPD matrix of trace T gives more
    top = trace_term(best, gram)
    for _ in range(20):
        A = torch.from_numpy(rng.normal(scale=0.3, size=(n_tasks, n_tasks)))
        symmetric = (A + A.T) / 2
        candidate = best + 0.2 * symmetric @ symmetric.T + 0.05 * symmetric
        candidate = n_tasks * candidate / candidate.trace()
        assert torch.linalg.eigvalsh(candidate).min() > 0
        assert trace_term(candidate, gram) > top


def test_penalty_is_the_matrix_normal_trace():
    lam = 0.3
    module = relationship(relationship_penalty=lam)
    W1 = set_head_weights(module, seed=1)
    module.end_epoch(1, no_affinity)
    W2 = set_head_weights(module, seed=2)  # other weights than the covariance was fitted on
    n_tasks = W1.shape[0]
    sigma = closed_form(W1)
    expected = lam / 2 * np.trace(W2.T @ np.linalg.inv(sigma) @ W2)
    penalty = module.penalty()
    assert penalty.dim() == 0
    assert float(penalty.detach()) == pytest.approx(expected, rel=1e-4)
    # gradient: lam Sigma^{-1} W on the real weights, 0 on the padded output columns
    penalty.backward()
    heads = module.task_heads
    grads = [layer.weight.grad.reshape(n_tasks, -1) for layer in [*heads.hidden, heads.output]]
    grad = torch.cat(grads, dim=1).numpy()
    real = module.head_weight_matrix().detach().numpy() != 0
    np.testing.assert_allclose(grad, lam * (np.linalg.inv(sigma) @ W2) * real, rtol=1e-3,
                               atol=1e-4)
    padded = ~heads.output_mask
    assert torch.all(heads.output.weight.grad.permute(0, 2, 1)[padded] == 0)
    assert module.trunk[0].weight.grad is None  # the prior is on the heads only


def test_initial_penalty_is_weight_decay_of_the_head_weights():
    lam = 0.7
    module = relationship(relationship_penalty=lam)
    heads = module.task_heads
    squares = sum(float((layer.weight.detach().double() ** 2).sum())
                  for layer in [*heads.hidden, heads.output])  # biases are not included
    assert module.penalty().item() == pytest.approx(lam / 2 * squares, rel=1e-5)


def test_zero_penalty_still_estimates_the_covariance():
    module = relationship(relationship_penalty=0)
    W = set_head_weights(module, seed=5)
    assert module.penalty().item() == 0.0
    module.end_epoch(1, no_affinity)
    np.testing.assert_allclose(module.task_covariance.numpy(), covariance_step(W).numpy(),
                               rtol=1e-5)
    assert module.penalty().item() == 0.0


def test_relationship_buffers_round_trip_through_state_dict():
    module = relationship()
    set_head_weights(module, seed=1)
    module.end_epoch(1, no_affinity)
    earlier = copy.deepcopy(module.state_dict())
    assert {"task_covariance", "task_precision"} <= earlier.keys()
    penalty_earlier = module.penalty().item()
    torch.manual_seed(9)
    fresh = relationship()
    fresh.load_state_dict(earlier)
    assert torch.equal(fresh.task_covariance, module.task_covariance)
    assert torch.equal(fresh.task_precision, module.task_precision)
    assert fresh.penalty().item() == pytest.approx(penalty_earlier, rel=1e-6)
    # a later epoch, then early stopping restores the earlier one: all of its state comes back
    set_head_weights(module, seed=2)
    module.end_epoch(2, no_affinity)
    assert not torch.equal(module.task_covariance, earlier["task_covariance"])
    module.load_state_dict(earlier)
    assert torch.equal(module.task_covariance, earlier["task_covariance"])
    assert torch.equal(module.task_precision, earlier["task_precision"])
    assert module.penalty().item() == pytest.approx(penalty_earlier, rel=1e-6)
    module.end_epoch(3, no_affinity)  # same weights: the same closed form again
    torch.testing.assert_close(module.task_covariance, earlier["task_covariance"])


def test_covariance_step_skips_non_finite_weights():
    module = relationship()
    set_head_weights(module, seed=1)
    module.end_epoch(1, no_affinity)
    before = module.task_covariance.clone()
    with torch.no_grad():
        module.task_heads.output.weight[0, 0, 0] = float("nan")
    module.end_epoch(2, no_affinity)
    assert torch.equal(module.task_covariance, before)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), True, "0.1", None])
def test_relationship_penalty_errors(bad):
    with pytest.raises(ValueError, match=r"relationship_penalty.*" + repr(bad)[:4]):
        relationship(relationship_penalty=bad)


def test_relationship_trains_and_ends_epochs_with_the_closed_form():
    from skmtl.deep import MultiTaskRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4)).astype(np.float32)
    Y = X @ rng.normal(size=(4, 3)) + 0.1 * rng.normal(size=(40, 3))
    est = MultiTaskRegressor(sharing="relationship", hidden_layer_sizes=(8,), max_epochs=2,
                             batch_size=16, lr=1e-2, random_state=0).fit(X, Y)
    module = est.net_.module_
    assert isinstance(module, RelationshipModule)
    assert not torch.equal(module.task_covariance.cpu(), torch.eye(3))
    expected = covariance_step(module.head_weight_matrix())
    torch.testing.assert_close(module.task_covariance.cpu(), expected.float())


# --------------------------------------------------------------------------------------------
# "stacked"
# --------------------------------------------------------------------------------------------


def stacked(output_sizes=(1, 2, 1), **params):
    params.setdefault("hidden_layer_sizes", (4,))
    params.setdefault("task_order", (2, 0, 1))
    return StackedModule(3, list(output_sizes), **params)


def hand_forward(module, X, activation):
    """The stacked forward pass with plain torch ops (one hidden layer per level)."""
    heads = module.task_heads

    def head(t, H):
        for layer in heads.hidden:
            H = activation(H @ layer.weight[t] + layer.bias[t])
        size = module.output_sizes[t]
        return H @ heads.output.weight[t, :, :size] + heads.output.bias[t, :size]

    hidden, outputs = {}, {}
    previous = None
    for k, task in enumerate(module.task_order):
        linear = module.levels[k][0]
        inputs = X if previous is None else torch.cat([X, hidden[previous], outputs[previous]], 1)
        hidden[task] = activation(inputs @ linear.weight.T + linear.bias)
        outputs[task] = head(task, hidden[task])
        previous = task
    return hidden, outputs


@pytest.mark.parametrize(
    "task_order, head_layer_sizes, activation",
    [((2, 0, 1), (), "tanh"), ((1, 0, 2), (3,), "relu")],
)
def test_stacked_forward_matches_a_hand_computation(task_order, head_layer_sizes, activation):
    module = stacked(task_order=task_order, head_layer_sizes=head_layer_sizes,
                     activation=activation)
    act = {"tanh": torch.tanh, "relu": torch.relu}[activation]
    # level k reads [x ; h_{k-1} ; yhat_{k-1}]: 3 + 4 + K of the task below
    widths = [3] + [3 + 4 + module.output_sizes[t] for t in task_order[:-1]]
    assert [level[0].in_features for level in module.levels] == widths
    X = torch.randn(6, 3)
    hidden, outputs = hand_forward(module, X, act)
    R = module.shared(X)
    assert R.shape == (3, 6, 4)
    for t in range(3):
        torch.testing.assert_close(R[t], hidden[t])
    for t, out in enumerate(module(X)):
        torch.testing.assert_close(out, outputs[t])
    assert not module.shares_representation and not module.has_shared_part
    assert module.last_shared_layer is None
    with pytest.raises(ValueError, match="task not seen in fit"):
        module.forward_shared(X)


def test_stacked_default_order_and_deeper_levels():
    module = StackedModule(3, [2, 1], hidden_layer_sizes=(5, 4), activation="tanh")
    assert module.task_order == (0, 1)
    assert len(module.levels[1]) == 6  # (Linear, act, dropout) x 2
    X = torch.randn(4, 3)
    h0 = torch.tanh(module.levels[0][3](torch.tanh(module.levels[0][0](X))))
    y0 = h0 @ module.task_heads.output.weight[0] + module.task_heads.output.bias[0]
    level1 = module.levels[1]
    h1 = torch.tanh(level1[3](torch.tanh(level1[0](torch.cat([X, h0, y0], 1)))))
    torch.testing.assert_close(module.shared(X), torch.stack([h0, h1]))


def perturb(module, names, rng):
    """Add a known random change to the named parameters; return the changes by name.

    The padded output columns of the heads stay 0.
    """
    mask = module.task_heads.output_mask.float()  # (T, K_max)
    deltas = {}
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name not in names:
                continue
            delta = torch.from_numpy(rng.normal(scale=0.1, size=tuple(param.shape))).float()
            if name == "task_heads.output.weight":
                delta = delta * mask.unsqueeze(1)
            elif name == "task_heads.output.bias":
                delta = delta * mask
            param.add_(delta)
            deltas[name] = delta
    return deltas


def test_successive_penalty():
    delta_weight = 0.3
    module = stacked(head_layer_sizes=(3,), successive_penalty=delta_weight)
    assert module.penalty().item() == 0.0  # the snapshot is the initial state
    initial = copy.deepcopy(module.state_dict())
    rng = np.random.default_rng(0)
    heads = module.task_heads
    names = [name for name, _ in module.named_parameters()]
    assert len([name for name in names if name.startswith("task_heads.")]) == 4
    named = perturb(module, names, rng)
    # levels 0 and 1 and the heads of their tasks, 2 and 0, count; level 2 and head 1 do not
    expected = sum(float((named[f"levels.{k}.0.{p}"] ** 2).sum())
                   for k in (0, 1) for p in ("weight", "bias"))
    for name in names:
        if name.startswith("task_heads."):
            expected += sum(float((named[name][t] ** 2).sum()) for t in (2, 0))
    assert module.penalty().item() == pytest.approx(delta_weight * expected, rel=1e-5)
    # its gradient is 2 delta (theta - theta') on the regularised parameters only
    module.penalty().backward()
    torch.testing.assert_close(module.levels[0][0].weight.grad,
                               2 * delta_weight * named["levels.0.0.weight"])
    assert module.levels[2][0].weight.grad is None
    assert torch.all(heads.output.weight.grad[1] == 0)  # the top task's head
    module.end_epoch(1, no_affinity)
    assert module.penalty().item() == 0.0
    # the top level and the top task's head never enter the penalty
    perturb(module, ["levels.2.0.weight", "levels.2.0.bias"], rng)
    with torch.no_grad():
        for name, param in heads.named_parameters():
            param[1].add_(0.5 if name.endswith("weight") else -0.5)
    assert module.penalty().item() == 0.0
    # the snapshot is state: loading the initial state_dict restores the initial anchor
    current = copy.deepcopy(module.state_dict())
    module.load_state_dict(initial)
    assert module.penalty().item() == 0.0
    module.load_state_dict({**initial, **{k: v for k, v in current.items()
                                          if not k.startswith("previous_")}})
    assert module.penalty().item() > 0
    assert stacked(successive_penalty=0.0).penalty().item() == 0.0


def test_stacked_gradients_flow_up_the_stack_only():
    module = stacked(activation="tanh")  # order (2, 0, 1): task 2 at the bottom, 1 on top
    X = torch.randn(6, 3)
    outputs = module(X)
    outputs[1].sum().backward()  # the top task
    bottom = module.levels[0][0]
    assert bottom.weight.grad.abs().sum() > 0 and bottom.bias.grad.abs().sum() > 0
    # the bottom task's head feeds the levels above: not detached
    assert module.task_heads.output.weight.grad[2].abs().sum() > 0
    module.zero_grad(set_to_none=True)
    outputs = module(X)
    outputs[2].sum().backward()  # the bottom task
    assert bottom.weight.grad.abs().sum() > 0
    for k in (1, 2):
        for param in module.levels[k].parameters():
            assert param.grad is None or torch.all(param.grad == 0)
    grad = module.task_heads.output.weight.grad
    assert torch.all(grad[0] == 0) and torch.all(grad[1] == 0)


def test_stacked_single_task():
    module = StackedModule(3, [2], hidden_layer_sizes=(4,))
    assert module.shared(torch.randn(5, 3)).shape == (1, 5, 4)
    assert module.penalty().item() == 0.0
    module.end_epoch(1, no_affinity)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(task_order=(0, 0, 1)), "task_order"),
        (dict(task_order=(0, 1)), "task_order"),
        (dict(task_order=(0, 1, 3)), "task_order"),
        (dict(task_order=(0, 1.0, 2)), "task_order"),
        (dict(task_order=(True, 0, 2)), "task_order"),
        (dict(task_order="012"), "task_order"),
        (dict(task_order=3), "task_order"),
        (dict(hidden_layer_sizes=()), "hidden_layer_sizes"),
        (dict(successive_penalty=-0.1), r"successive_penalty.*-0\.1"),
        (dict(successive_penalty=float("nan")), "successive_penalty.*nan"),
    ],
)
def test_stacked_errors(params, match):
    with pytest.raises(ValueError, match=match):
        stacked(**params)


def test_build_module_builds_both():
    module = build_module("relationship", 4, [1, 2], hidden_layer_sizes=(3,),
                          relationship_penalty=0.5)
    assert isinstance(module, RelationshipModule) and module.relationship_penalty == 0.5
    module = build_module("stacked", 4, [1, 2], hidden_layer_sizes=(3,), task_order=(1, 0),
                          successive_penalty=0.2)
    assert isinstance(module, StackedModule)
    assert module.task_order == (1, 0) and module.successive_penalty == 0.2
