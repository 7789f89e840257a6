"""sharing_map finds, by autograd, which parameter entries serve which tasks.

Every strategy of SHARING is checked against the exact structure its architecture implies, and
a few against a brute-force reference (perturb one entry, see which task outputs move).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from skmtl.deep._sharing_map import SharingMap, sharing_map  # noqa: E402
from skmtl.deep.modules import SHARING, build_module  # noqa: E402

T = 3
ALL = (0, 1, 2)
EXTRA = {
    "sluice": dict(hidden_layer_sizes=(4, 4)),  # widths divisible by its 2 subspaces
    "low_supervision": dict(task_depths=(1, 2, 2)),
    "tensor_factorisation": dict(tensor_rank=2),  # a random (not identity) task factor
}


def build(sharing, **kwargs):
    options = dict(hidden_layer_sizes=(4, 3))
    options.update(EXTRA.get(sharing, {}))
    options.update(kwargs)
    return build_module(sharing, n_features=5, output_sizes=[1, 1, 1], **options)


def by_parameter(result):
    """{name: [(n_entries, sorted signature), ...]} in the order of the rows."""
    rows = {}
    for name, n_entries, signature in result.blocks:
        rows.setdefault(name, []).append((n_entries, tuple(sorted(signature))))
    return rows


def shared_by(param, tasks=ALL):
    return [(param.numel(), tuple(tasks))]


def per_task(param):
    """A (T, ...) parameter whose slice t serves task t only."""
    return [(param.numel() // T, (t,)) for t in range(T)]


def check(module, expected):
    """The rows of every parameter are exactly ``expected(name, param)``, in module order."""
    result = sharing_map(module)
    rows = by_parameter(result)
    names = [name for name, _ in module.named_parameters()]
    assert list(rows) == names
    for name, param in module.named_parameters():
        assert rows[name] == expected(name, param), name
    return result


def heads_or(other):
    def expected(name, param):
        if name.startswith("task_heads."):
            return per_task(param)
        return other(name, param)

    return expected


def test_every_strategy_is_covered():
    assert len(SHARING) == 11
    for sharing in SHARING:
        result = sharing_map(build(sharing))
        assert isinstance(result, SharingMap)
        assert result.n_tasks == T
        assert result.sharing == type(build(sharing)).__name__


@pytest.mark.parametrize("sharing", ["hard", "relationship"])
def test_hard_trunk_shared_heads_per_task(sharing):
    module = build(sharing)
    check(module, heads_or(lambda name, param: shared_by(param)))
    weight = module.task_heads.output.weight  # (T, h, K): h * K entries per task
    rows = by_parameter(sharing_map(module))["task_heads.output.weight"]
    assert rows == [(3 * 1, (t,)) for t in range(T)] and weight.shape == (T, 3, 1)


@pytest.mark.parametrize("sharing", ["independent", "soft"])
def test_towers_are_per_task(sharing):
    check(build(sharing), lambda name, param: per_task(param))


def test_cross_stitch_connects_every_tower():
    def expected(name, param):
        if name.startswith("towers.") or name == "alphas.0":
            return shared_by(param)
        return per_task(param)  # the last mixing: row t feeds head t only; the heads

    check(build("cross_stitch"), expected)


def test_sluice_mixes_subspaces_of_every_tower():
    def expected(name, param):
        if name.startswith("towers.") or name == "alphas.0":
            return shared_by(param)
        # alphas.1: the 2 subspace rows of task t (2 x 6 entries); beta_logits: row t; heads
        return per_task(param)

    check(build("sluice"), expected)


def test_conditioned_body_shared_embedding_rows_per_task():
    def expected(name, param):
        if name == "embedding":
            return per_task(param)
        return shared_by(param)

    check(build("conditioned"), heads_or(expected))


def test_tensor_factorisation_core_shared_factor_rows_per_task():
    def expected(name, param):
        if name.endswith("core_weight"):
            return shared_by(param)
        return per_task(param)  # task_factor rows, per-task biases, heads

    check(build("tensor_factorisation"), expected)


def test_an_exact_zero_coefficient_cuts_the_dependency():
    # rank = T: the task factor starts as the identity, W[t] = S[t], i.e. independent towers
    module = build("tensor_factorisation", tensor_rank=T)
    assert torch.equal(module.layers[0].task_factor, torch.eye(T))
    check(module, lambda name, param: per_task(param))
    with torch.no_grad():
        module.layers[0].task_factor.add_(0.1)  # every core slice now reaches every task
    rows = by_parameter(sharing_map(module))
    assert rows["layers.0.core_weight"] == [(60, ALL)]
    assert rows["layers.1.core_weight"] == [(12, (t,)) for t in range(T)]


def test_low_supervision_upper_layer_serves_the_deep_tasks_only():
    module = build("low_supervision")

    def expected(name, param):
        if name.startswith("trunk.0."):
            return shared_by(param)
        if name.startswith("trunk.3."):
            return shared_by(param, (1, 2))
        if name == "task_heads.output.weight":
            # task 0 reads h_1 (4 units); tasks 1, 2 read h_2 (3 units) padded with a zero
            return [(4, (0,)), (3, (1,)), (3, (2,)), (2, ())]
        return per_task(param)

    check(module, expected)


def test_stacked_levels_serve_their_task_and_those_above():
    module = build("stacked")

    def expected(name, param):
        if name.startswith("levels."):
            level = int(name.split(".")[1])
            return shared_by(param, range(level, T))
        # head t also feeds the levels above it (its prediction is their input)
        size = param.numel() // T
        return [(size, ALL), (size, (1, 2)), (size, (2,))]

    check(module, expected)


def test_stacked_respects_the_task_order():
    module = build("stacked", task_order=(2, 0, 1))
    rows = by_parameter(sharing_map(module))
    assert rows["levels.0.0.weight"][0][1] == ALL
    assert rows["levels.1.0.weight"] == [(module.levels[1][0].weight.numel(), (0, 1))]
    assert rows["levels.2.3.bias"] == [(3, (1,))]
    assert rows["task_heads.output.bias"] == [(1, ALL), (1, (0, 1)), (1, (1,))]


def test_adaptive_before_and_after_the_split():
    module = build("adaptive")

    def before(name, param):
        if name.startswith("layers."):  # slot 0 in use, the other two slots unused
            return [(param.numel() // T, ALL), (2 * param.numel() // T, ())]
        return per_task(param)

    check(module, before)
    affinity = np.array([[1.0, 0.9, -0.5], [0.9, 1.0, -0.5], [-0.5, -0.5, 1.0]])
    module.split(affinity)
    assert module.branches() == [[[0, 1, 2]], [[0, 1], [2]]]

    def after(name, param):
        slot = param.numel() // T
        if name.startswith("layers.0."):
            return [(slot, ALL), (2 * slot, ())]
        if name.startswith("layers.1."):  # slot 0 for {0, 1}, slot 2 for {2}, slot 1 unused
            return [(slot, (0, 1)), (slot, (2,)), (slot, ())]
        return per_task(param)

    check(module, after)


def test_multiclass_padding_is_unused():
    module = build_module("hard", 5, [1, 3], hidden_layer_sizes=(4,))
    rows = by_parameter(sharing_map(module))
    # output.weight (2, 4, 3): task 0 owns column 0 of its slice, columns 1-2 are padding
    assert rows["task_heads.output.weight"] == [(4, (0,)), (12, (1,)), (8, ())]
    assert rows["task_heads.output.bias"] == [(1, (0,)), (3, (1,)), (2, ())]
    assert rows["trunk.0.weight"] == [(20, (0, 1))]


@pytest.mark.parametrize("sharing", SHARING)
def test_rows_partition_each_parameter(sharing):
    module = build(sharing)
    result = sharing_map(module)
    params = dict(module.named_parameters())
    totals = {}
    for name, n_entries, signature in result.blocks:
        assert n_entries > 0 and signature <= set(ALL)
        totals[name] = totals.get(name, 0) + n_entries
    assert totals == {name: param.numel() for name, param in params.items()}
    # one row per signature, the full set first, then by smallest task, unused last
    for rows in by_parameter(result).values():
        signatures = [signature for _, signature in rows]
        assert len(set(signatures)) == len(signatures)
        keys = [(0,) if s == ALL else (2,) if not s else (1, *s) for s in signatures]
        assert keys == sorted(keys)
    matrix = result.signature_matrix()
    assert matrix.shape == (len(result.blocks), T)
    for row, (_, _, signature) in zip(matrix, result.blocks, strict=True):
        assert set(np.flatnonzero(row)) == signature


def perturbation_reference(module, X):
    """{name: (numel, T) bool}: entry e serves task t if nudging it moves t's outputs."""
    module.eval()
    reference = {}
    with torch.no_grad():
        base = module.forward_padded(X)
        for name, param in module.named_parameters():
            flat = param.view(-1)
            moved = torch.zeros(flat.numel(), T, dtype=torch.bool)
            for e in range(flat.numel()):
                old = flat[e].item()
                flat[e] = old + 0.5
                diff = (module.forward_padded(X) - base).abs() * module.output_mask.unsqueeze(1)
                moved[e] = diff.flatten(1).amax(1) > 1e-6
                flat[e] = old
            reference[name] = moved
    return reference


@pytest.mark.parametrize("sharing", ["stacked", "low_supervision", "cross_stitch", "adaptive"])
def test_agrees_with_perturbing_each_entry(sharing):
    # tanh: no unit is dead, so nudging an entry moves every output that depends on it
    module = build(sharing, activation="tanh", hidden_layer_sizes=(2, 2),
                   **({"task_depths": (1, 2, 2)} if sharing == "low_supervision" else {}))
    if sharing == "adaptive":
        module.split(np.array([[1.0, 0.9, -0.5], [0.9, 1.0, -0.5], [-0.5, -0.5, 1.0]]))
    X = torch.randn(8, 5)
    reference = perturbation_reference(module, X)
    expected = []
    for name, moved in reference.items():
        counts = {}
        for row in moved:
            signature = frozenset(np.flatnonzero(row.numpy()).tolist())
            counts[signature] = counts.get(signature, 0) + 1
        expected += sorted(((name, n, s) for s, n in counts.items()),
                           key=lambda r: (len(r[2]) != T, not r[2], sorted(r[2])))
    assert sharing_map(module).blocks == tuple(expected)


def test_dead_relu_units_do_not_hide_entries():
    module = build("hard")
    with torch.no_grad():  # the second trunk layer: every unit dead on every input
        module.trunk[3].weight.fill_(-1.0)
        module.trunk[3].bias.fill_(-1.0)
    X = torch.randn(16, 5)
    assert torch.all(module.shared(X) == 0)
    check(module, heads_or(lambda name, param: shared_by(param)))


def test_auxiliary_heads_are_left_out():
    torch.manual_seed(3)
    plain = build("hard")
    torch.manual_seed(3)
    with_aux = build("hard", auxiliary="reconstruction")
    assert any(name.startswith("auxiliary_heads.") for name, _ in with_aux.named_parameters())
    assert sharing_map(with_aux).blocks == sharing_map(plain).blocks


def test_state_is_left_as_it_was():
    module = build("conditioned", dropout=0.5)
    module.train()
    module.task_heads.eval()  # a mixed state: restored submodule by submodule
    module.input_layer.bias.requires_grad_(False)
    X = torch.randn(6, 5)
    module.eval()
    before = module.forward_padded(X)
    module.train()
    module.task_heads.eval()
    rng = torch.random.get_rng_state()
    result = sharing_map(module)
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert module.training and not module.task_heads.training and module.body.training
    assert not module.input_layer.bias.requires_grad
    assert all(param.grad is None for param in module.parameters())
    assert by_parameter(result)["input_layer.bias"] == [(4, ALL)]  # frozen, still reported
    module.eval()
    assert torch.equal(module.forward_padded(X), before)  # the hooks are gone


def test_same_seed_same_map_and_works_under_no_grad():
    module = build("hard")
    with torch.no_grad():
        first = sharing_map(module, n_samples=4, random_state=1, n_batches=1)
    assert first == sharing_map(module, n_samples=4, random_state=1, n_batches=1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_samples": 0}, "n_samples must be a positive integer, got 0"),
        ({"n_batches": 1.5}, "n_batches must be a positive integer, got 1.5"),
        ({"random_state": -1}, "random_state must be a non-negative integer or None, got -1"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sharing_map(build("hard"), **kwargs)


def test_not_a_multitask_module():
    with pytest.raises(ValueError, match="MultiTaskModule.*got Linear"):
        sharing_map(torch.nn.Linear(2, 2))
