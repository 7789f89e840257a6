"""The sharing strategies of skmtl.deep.modules: shapes, slot independence, penalties, errors."""

import itertools
import os

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from skmtl.deep.modules import (  # noqa: E402
    SHARING,
    AdaptiveModule,
    BatchedLinear,
    ConditionedModule,
    CrossStitchModule,
    HardSharingModule,
    IndependentModule,
    LowSupervisionModule,
    MultiTaskModule,
    RelationshipModule,
    SluiceModule,
    SoftSharingModule,
    StackedModule,
    TensorFactorisationModule,
    build_module,
)

DEVICE = torch.device(os.environ.get("SKMTL_TEST_DEVICE", "cpu"))
N_FEATURES = 6
OUTPUT_SIZES = [1, 3, 1]
N_TASKS = len(OUTPUT_SIZES)
BATCH = 5
CLASSES = {
    "independent": IndependentModule,
    "hard": HardSharingModule,
    "soft": SoftSharingModule,
    "cross_stitch": CrossStitchModule,
    "sluice": SluiceModule,
    "conditioned": ConditionedModule,
    "tensor_factorisation": TensorFactorisationModule,
    "relationship": RelationshipModule,
    "adaptive": AdaptiveModule,
    "low_supervision": LowSupervisionModule,
    "stacked": StackedModule,
}
# Strategies whose heads all read one (B, h) representation when built with their defaults
# ("adaptive" until it branches, "low_supervision" with every head at the top).
SHARED = ("hard", "relationship", "adaptive", "low_supervision")


@pytest.fixture(autouse=True)
def seeded():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


def make(sharing, n_features=N_FEATURES, output_sizes=OUTPUT_SIZES, **params):
    params.setdefault("hidden_layer_sizes", (8, 4))
    if sharing == "soft":
        params.setdefault("soft_penalty", 0.1)
    return build_module(sharing, n_features, output_sizes, **params).to(DEVICE)


def features(n_features=N_FEATURES, batch=BATCH):
    return torch.randn(batch, n_features, device=DEVICE)


def task_slots(module, X):
    """The representation as (T, B, h), expanded when shared."""
    rep = module.shared(X)
    return rep.expand(module.n_tasks, -1, -1) if module.shares_representation else rep


class TinyCNN(nn.Module):
    """A user trunk: reshapes X (B, side * side) into images itself."""

    def __init__(self, channels=2, side=4):
        super().__init__()
        self.side = side
        self.conv = nn.Conv2d(1, channels, kernel_size=3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)

    def forward(self, X):
        images = X.reshape(-1, 1, self.side, self.side)
        return self.pool(torch.relu(self.conv(images)))  # (B, channels, 2, 2)


# --------------------------------------------------------------------------------------------
# Every strategy
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("head_layer_sizes", [(), (3,)])
@pytest.mark.parametrize("sharing", SHARING)
def test_shapes_dtype_and_flags(sharing, head_layer_sizes):
    module = make(sharing, head_layer_sizes=head_layer_sizes)
    assert isinstance(module, CLASSES[sharing]) and isinstance(module, MultiTaskModule)
    assert module.n_tasks == N_TASKS and module.output_sizes == OUTPUT_SIZES
    assert module.shares_representation == (sharing in SHARED)
    assert all(p.dtype == torch.float32 for p in module.parameters())

    X = features()
    rep = module.shared(X)
    expected = (BATCH, 4) if sharing in SHARED else (N_TASKS, BATCH, 4)
    assert rep.shape == expected and module.representation_size == 4
    outputs = module(X)
    assert [tuple(out.shape) for out in outputs] == [(BATCH, k) for k in OUTPUT_SIZES]
    assert all(out.dtype == torch.float32 for out in outputs)

    padded = module.forward_padded(X)
    assert padded.shape == (N_TASKS, BATCH, max(OUTPUT_SIZES))
    mask = module.output_mask
    assert mask.tolist() == [[True, False, False], [True, True, True], [True, False, False]]
    assert torch.all(padded.transpose(0, 1)[:, ~mask] == 0)


@pytest.mark.parametrize("sharing", SHARING)
def test_forward_is_heads_of_the_representation(sharing):
    module = make(sharing, head_layer_sizes=(3,), dropout=0.3).eval()
    X = features()
    outputs = module(X)
    rep = module.shared(X)
    for out, ref in zip(outputs, module.heads(rep), strict=True):
        assert torch.equal(out, ref)
    # The documented contract: heads of the T-fold expansion. A shared (B, h) representation
    # takes one matrix product instead of T, so it agrees up to float rounding only.
    for out, ref in zip(outputs, module.heads(task_slots(module, X)), strict=True):
        if module.shares_representation:
            torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
        else:
            assert torch.equal(out, ref)


@pytest.mark.parametrize("sharing", SHARING)
def test_head_t_reads_slot_t_only(sharing):
    module = make(sharing, head_layer_sizes=(3,)).eval()
    R = torch.randn(N_TASKS, BATCH, module.representation_size, device=DEVICE)
    R.requires_grad_(True)
    outputs = module.heads(R)
    for t, out in enumerate(outputs):
        (grad,) = torch.autograd.grad(out.sum(), R, retain_graph=True)
        nonzero_slots = [s for s in range(N_TASKS) if torch.count_nonzero(grad[s])]
        assert nonzero_slots == [t]

    for s in range(N_TASKS):
        changed = R.detach().clone()
        changed[s] += 1.0
        new_outputs = module.heads(changed)
        for t in range(N_TASKS):
            assert torch.equal(new_outputs[t], outputs[t]) != (t == s)


@pytest.mark.parametrize("sharing", ["hard", "independent", "cross_stitch", "conditioned"])
def test_split_backward_through_heads_then_trunk_equals_plain_backward(sharing):
    # The training step's recipe: R a leaf, one backward through the heads, then into the trunk.
    module = make(sharing, head_layer_sizes=(3,))
    X = features()
    weights = torch.tensor([0.5, 2.0, 1.0], device=DEVICE)

    def loss_of(outputs):
        return sum(w * out.pow(2).mean() for w, out in zip(weights, outputs, strict=True))

    loss_of(module(X)).backward()
    reference = {name: p.grad.clone() for name, p in module.named_parameters()}
    module.zero_grad()

    rep = module.shared(X)
    R = rep.detach().expand(N_TASKS, -1, -1) if module.shares_representation else rep.detach()
    R.requires_grad_(True)
    loss_of(module.heads(R)).backward()
    rep.backward(R.grad.sum(0) if module.shares_representation else R.grad)
    for name, p in module.named_parameters():
        torch.testing.assert_close(p.grad, reference[name], rtol=1e-5, atol=1e-6, msg=name)


def test_batched_heads_equal_a_loop_of_linear_layers():
    module = make("hard", head_layer_sizes=(3,), activation="tanh")
    hidden, output = module.task_heads.hidden[0], module.task_heads.output
    R = torch.randn(N_TASKS, BATCH, module.representation_size, device=DEVICE)
    outputs = module.heads(R)
    for t, k in enumerate(OUTPUT_SIZES):
        first = nn.Linear(module.representation_size, 3).to(DEVICE)
        last = nn.Linear(3, k).to(DEVICE)
        with torch.no_grad():
            first.weight.copy_(hidden.weight[t].T)
            first.bias.copy_(hidden.bias[t])
            last.weight.copy_(output.weight[t, :, :k].T)
            last.bias.copy_(output.bias[t, :k])
        torch.testing.assert_close(outputs[t], last(torch.tanh(first(R[t]))))


def test_batched_linear_reads_a_2d_input_as_every_slot():
    layer = BatchedLinear(4, 5, 3).to(DEVICE)
    x = torch.randn(7, 5, device=DEVICE)
    out = layer(x)
    assert out.shape == (4, 7, 3)
    torch.testing.assert_close(out, layer(x.expand(4, -1, -1)))
    torch.testing.assert_close(out[2], x @ layer.weight[2] + layer.bias[2])

    # the one-product path for a 2-D input has the gradients of the T-fold expansion
    x.requires_grad_(True)
    upstream = torch.randn(4, 7, 3, device=DEVICE)
    fast = torch.autograd.grad(layer(x), [x, layer.weight, layer.bias], upstream)
    slow = torch.autograd.grad(layer(x.expand(4, -1, -1)), [x, layer.weight, layer.bias], upstream)
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b)


def test_padded_output_weights_stay_zero_after_training_steps():
    module = make("hard")
    optimizer = torch.optim.Adam(module.parameters(), lr=0.1, weight_decay=0.1)
    X = features()
    for _ in range(3):
        optimizer.zero_grad()
        sum(out.pow(2).sum() for out in module(X)).backward()
        optimizer.step()
    mask = module.output_mask
    assert torch.all(module.task_heads.output.weight.transpose(0, 1)[:, ~mask] == 0)
    assert torch.all(module.task_heads.output.bias[~mask] == 0)


@pytest.mark.parametrize("sharing", SHARING)
def test_same_seed_same_initial_weights_and_float32_under_another_default_dtype(sharing):
    torch.manual_seed(3)
    first = make(sharing).state_dict()
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(3)
        second = make(sharing)
    finally:
        torch.set_default_dtype(previous)
    assert all(p.dtype == torch.float32 for p in second.parameters())
    second = second.state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)


@pytest.mark.parametrize("sharing", SHARING)
def test_dropout_is_random_in_training_and_off_in_eval(sharing):
    module = make(sharing, dropout=0.5)
    X = features()
    assert not torch.equal(module.forward_padded(X), module.forward_padded(X))
    module.eval()
    assert torch.equal(module.forward_padded(X), module.forward_padded(X))


@pytest.mark.parametrize("sharing", [s for s in SHARING if s not in ("soft", "relationship")])
def test_penalty_is_a_zero_scalar_except_for_soft_and_relationship(sharing):
    # "stacked": the successive regularisation is 0 until the parameters leave their snapshot
    penalty = make(sharing).penalty()
    assert penalty.shape == () and penalty.item() == 0.0


@pytest.mark.parametrize(
    ("sharing", "expected"),
    [
        ("hard", lambda m: m.trunk[-3]),
        ("conditioned", lambda m: m.body[-3]),
        ("independent", lambda m: None),
        ("cross_stitch", lambda m: None),
    ],
)
def test_last_shared_layer(sharing, expected):
    module = make(sharing)
    assert module.last_shared_layer is expected(module)
    if expected(module) is not None:
        assert isinstance(module.last_shared_layer, nn.Linear)
        assert module.last_shared_layer.out_features == module.representation_size


# --------------------------------------------------------------------------------------------
# Independent and soft
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sharing", ["independent", "soft", "cross_stitch", "sluice"])
def test_tower_t_depends_on_no_other_tower(sharing):
    module = make(sharing)
    rep = module.shared(features())
    layers = list(module.towers.layers)
    for t in range(N_TASKS):
        grads = torch.autograd.grad(
            rep[t].sum(), [layer.weight for layer in layers], retain_graph=True
        )
        touched = {s for grad in grads for s in range(N_TASKS) if torch.count_nonzero(grad[s])}
        if sharing in ("independent", "soft"):
            assert touched == {t}
        else:  # the mixing units connect every tower to every other
            assert touched == set(range(N_TASKS))


def test_independent_without_hidden_layers_reads_x_in_every_slot():
    module = make("independent", hidden_layer_sizes=())
    X = features()
    assert torch.equal(module.shared(X), X.expand(N_TASKS, -1, -1))
    assert module.representation_size == N_FEATURES


def test_hard_without_hidden_layers_is_separate_heads_on_x():
    module = make("hard", hidden_layer_sizes=())
    X = features()
    assert torch.equal(module.shared(X), X) and module.last_shared_layer is None
    torch.testing.assert_close(
        module(X)[1], X @ module.task_heads.output.weight[1] + module.task_heads.output.bias[1]
    )


def test_soft_penalty_equals_the_double_sum_over_task_pairs():
    module = make("soft", output_sizes=[1, 2, 1, 1], hidden_layer_sizes=(5, 3), soft_penalty=0.3)
    brute = 0.0
    for layer in module.towers.layers:
        for s, t in itertools.combinations(range(4), 2):
            brute += (layer.weight[s] - layer.weight[t]).pow(2).sum()
            brute += (layer.bias[s] - layer.bias[t]).pow(2).sum()
    brute = 0.3 * brute
    parameters = list(module.parameters())
    brute_grads = torch.autograd.grad(brute, parameters, allow_unused=True)

    penalty = module.penalty()
    torch.testing.assert_close(penalty, brute)
    grads = torch.autograd.grad(penalty, parameters, allow_unused=True)
    for name, grad, brute_grad in zip(
        dict(module.named_parameters()), grads, brute_grads, strict=True
    ):
        if name.startswith("towers."):
            torch.testing.assert_close(grad, brute_grad, msg=name)
        else:  # the heads are not penalised
            assert grad is None and brute_grad is None, name

    module.soft_penalty = 0.0
    assert module.penalty().item() == 0.0


# --------------------------------------------------------------------------------------------
# Cross-stitch and sluice
# --------------------------------------------------------------------------------------------


def test_cross_stitch_initial_alpha():
    module = make("cross_stitch", output_sizes=[1, 1, 1, 1])
    assert len(module.alphas) == 2
    for alpha in module.alphas:
        expected = torch.full((4, 4), 0.1 / 3).fill_diagonal_(0.9)
        torch.testing.assert_close(alpha.detach().cpu(), expected)
        torch.testing.assert_close(alpha.sum(1).detach().cpu(), torch.ones(4))
    single = make("cross_stitch", output_sizes=[2])
    assert single.alphas[0].tolist() == [[1.0]]


def test_cross_stitch_mixes_the_towers_activations():
    module = make("cross_stitch", hidden_layer_sizes=(4,), activation="tanh")
    with torch.no_grad():
        module.alphas[0].copy_(torch.randn(N_TASKS, N_TASKS))
    layer, alpha = module.towers.layers[0], module.alphas[0]
    X = features()
    activations = [torch.tanh(X @ layer.weight[s] + layer.bias[s]) for s in range(N_TASKS)]
    rep = module.shared(X)
    for t in range(N_TASKS):
        expected = sum(alpha[t, s] * activations[s] for s in range(N_TASKS))
        torch.testing.assert_close(rep[t], expected)


def test_sluice_initial_values_and_projections():
    module = make("sluice", hidden_layer_sizes=(6, 4))
    n = 2 * N_TASKS
    for alpha in module.alphas:
        expected = torch.full((n, n), 0.1 / (n - 1)).fill_diagonal_(0.9)
        torch.testing.assert_close(alpha.detach().cpu(), expected)
    torch.testing.assert_close(module.beta.detach().cpu(), torch.full((N_TASKS, 2), 0.5))
    assert isinstance(module.projections[0], BatchedLinear)
    assert module.projections[0].weight.shape == (N_TASKS, 6, 4)
    assert isinstance(module.projections[1], nn.Identity)


def test_sluice_mixes_subspaces_and_layers():
    module = make("sluice", hidden_layer_sizes=(4, 4), activation="tanh")
    with torch.no_grad():
        for alpha in module.alphas:
            alpha.copy_(torch.randn_like(alpha))
        module.beta_logits.copy_(torch.randn_like(module.beta_logits))
    X = features()
    layer_outputs, H = [], [X] * N_TASKS
    for layer, alpha in zip(module.towers.layers, module.alphas, strict=True):
        activations = [torch.tanh(H[s] @ layer.weight[s] + layer.bias[s]) for s in range(N_TASKS)]
        subspaces = [a[:, j * 2 : (j + 1) * 2] for a in activations for j in range(2)]
        mixed = [
            sum(alpha[i, k] * subspaces[k] for k in range(2 * N_TASKS)) for i in range(2 * N_TASKS)
        ]
        H = [torch.cat(mixed[2 * t : 2 * t + 2], dim=1) for t in range(N_TASKS)]
        layer_outputs.append(H)
    beta = torch.softmax(module.beta_logits, dim=1)
    rep = module.shared(X)
    for t in range(N_TASKS):
        expected = beta[t, 0] * layer_outputs[0][t] + beta[t, 1] * layer_outputs[1][t]
        torch.testing.assert_close(rep[t], expected)


# --------------------------------------------------------------------------------------------
# Conditioned
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("conditioning", ["concat", "sum", "multiplicative"])
def test_conditioned_tasks_get_different_representations(conditioning):
    module = make("conditioned", conditioning=conditioning, hidden_layer_sizes=(8, 4))
    assert module.embedding.shape == (N_TASKS, N_TASKS)  # default min(8, T)
    rep = module.shared(features())
    for s, t in itertools.combinations(range(N_TASKS), 2):
        assert not torch.allclose(rep[s], rep[t])
    # every parameter of the network is used
    module.forward_padded(features()).sum().backward()
    assert all(p.grad is not None and torch.count_nonzero(p.grad) for p in module.parameters())


@pytest.mark.parametrize("conditioning", ["concat", "sum", "multiplicative"])
def test_conditioned_first_layer_formulas(conditioning):
    module = make(
        "conditioned", conditioning=conditioning, hidden_layer_sizes=(5,), embedding_dim=2
    )
    X, z = features(), module.embedding
    first, projection = module.input_layer, module.embedding_projection
    rep = module.shared(X)
    for t in range(N_TASKS):
        zt = z[t].expand(BATCH, -1)
        if conditioning == "concat":
            expected = torch.relu(first(torch.cat([X, zt], dim=1)))
        elif conditioning == "sum":
            expected = torch.relu(first(X) + projection(zt))
        else:
            expected = torch.relu(first(X)) * (1 + projection(zt))
        torch.testing.assert_close(rep[t], expected)


def test_conditioned_default_embedding_dim_is_capped_at_eight():
    assert make("conditioned", output_sizes=[1] * 12).embedding.shape == (12, 8)
    assert make("conditioned", output_sizes=[1] * 12, embedding_dim=3).embedding_dim == 3


# --------------------------------------------------------------------------------------------
# User modules
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sharing", ["hard", "relationship"])
def test_custom_cnn_trunk_for_hard_sharing(sharing):
    module = make(sharing, n_features=16, module=TinyCNN, module_params={"channels": 3})
    assert isinstance(module.trunk, TinyCNN) and module.trunk.conv.out_channels == 3
    assert module.representation_size == 12  # 3 channels x 2 x 2, flattened
    assert module.last_shared_layer is module.trunk.conv
    X = features(n_features=16)
    assert module.shared(X).shape == (BATCH, 12)
    outputs = module(X)
    assert [tuple(out.shape) for out in outputs] == [(BATCH, k) for k in OUTPUT_SIZES]
    sum(out.sum() for out in outputs).backward()
    assert torch.count_nonzero(module.trunk.conv.weight.grad)


class DoubleMLP(nn.Module):
    def __init__(self, width=3):
        super().__init__()
        self.linear = nn.Linear(N_FEATURES, width, dtype=torch.float64)

    def forward(self, X):
        return torch.tanh(self.linear(X))


@pytest.mark.parametrize("sharing", ["independent", "soft"])
def test_custom_module_is_one_tower_per_task(sharing):
    module = make(sharing, module=DoubleMLP, module_params={"width": 3}, soft_penalty=0.2)
    assert len(module.towers) == N_TASKS
    assert all(p.dtype == torch.float32 for p in module.parameters())
    weights = [tower.linear.weight for tower in module.towers]
    assert not torch.equal(weights[0], weights[1])  # separately initialised
    X = features()
    rep = module.shared(X)
    assert rep.shape == (N_TASKS, BATCH, 3)
    torch.testing.assert_close(rep[2], module.towers[2](X))
    if sharing == "soft":
        brute = sum(
            (a.linear.weight - b.linear.weight).pow(2).sum()
            + (a.linear.bias - b.linear.bias).pow(2).sum()
            for a, b in itertools.combinations(module.towers, 2)
        )
        torch.testing.assert_close(module.penalty(), 0.2 * brute)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class Broken(nn.Module):
    def forward(self, X):
        return X.reshape(-1, 1, 5, 5)


@pytest.mark.parametrize(
    ("sharing", "params", "match"),
    [
        ("shared", {}, "Unknown sharing 'shared'; expected one of 'independent', 'hard'"),
        ("hard", {"activation": "softmax"}, "Unknown activation 'softmax'"),
        ("conditioned", {"conditioning": "film"}, "Unknown conditioning 'film'"),
        ("cross_stitch", {"module": TinyCNN}, "sharing='cross_stitch' cannot use a custom"),
        ("sluice", {"module": TinyCNN}, "supported with 'hard' \\(the shared trunk\\)"),
        ("conditioned", {"module": TinyCNN}, "sharing='conditioned' cannot use a custom"),
        ("hard", {"module": TinyCNN()}, "not an instance: pass module=TinyCNN"),
        ("hard", {"module": dict}, "must be a subclass of torch.nn.Module"),
        ("hard", {"module_params": {"side": 4}}, "module_params is set but module is None"),
        ("hard", {"module": Broken}, "Broken failed on a zero batch of shape \\(2, 6\\)"),
        ("hard", {"module": TinyCNN, "module_params": {"depth": 2}}, "Could not build"),
        ("sluice", {"hidden_layer_sizes": (4, 5)}, "widths \\[5\\] not divisible by 2"),
        ("soft", {"hidden_layer_sizes": ()}, "needs at least one hidden layer"),
        ("cross_stitch", {"hidden_layer_sizes": ()}, "needs at least one hidden layer"),
        ("conditioned", {"hidden_layer_sizes": ()}, "needs at least one hidden layer"),
        ("hard", {"hidden_layer_sizes": (4, 0)}, "hidden_layer_sizes must be a sequence of pos"),
        ("hard", {"head_layer_sizes": "4"}, "head_layer_sizes must be a sequence of pos"),
        ("hard", {"output_sizes": []}, "output_sizes must not be empty"),
        ("hard", {"output_sizes": [1, 2.5]}, "output_sizes must be a sequence of pos"),
        ("hard", {"n_features": 0}, "n_features must be a positive integer"),
        ("hard", {"dropout": 1.0}, "dropout must be a number in \\[0, 1\\)"),
        ("soft", {"soft_penalty": -1.0}, "soft_penalty must be a finite number >= 0"),
        ("conditioned", {"embedding_dim": 0}, "embedding_dim must be a positive integer"),
    ],
)
def test_errors(sharing, params, match):
    with pytest.raises(ValueError, match=match):
        make(sharing, **params)


def test_input_shape_errors():
    module = make("cross_stitch")
    with pytest.raises(ValueError, match="X must have shape \\(batch, 6\\), got \\(5, 7\\)"):
        module(features(n_features=7))
    with pytest.raises(ValueError, match="R must have 3 slots"):
        module.heads(torch.zeros(2, BATCH, 4, device=DEVICE))
    with pytest.raises(ValueError, match="R must have shape \\(T, B, 4\\)"):
        module.heads(torch.zeros(N_TASKS, BATCH, 5, device=DEVICE))
