"""Auxiliary losses of skmtl.deep._auxiliary against hand computations with plain torch."""

import os

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from skmtl.deep._auxiliary import AUXILIARY, AuxiliaryHeads, reverse_gradient  # noqa: E402

DEVICE = torch.device(os.environ.get("SKMTL_TEST_DEVICE", "cpu"))
N_FEATURES = 4
WIDTH = 3
N_TASKS = 3
BATCH = 5


@pytest.fixture(autouse=True)
def seeded():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


def labels_of(rows, tasks):
    rows = torch.tensor(rows, dtype=torch.long, device=DEVICE)
    tasks = torch.tensor(tasks, dtype=torch.long, device=DEVICE)
    return {"row": rows, "task": tasks, "value": torch.zeros(len(rows), device=DEVICE)}


# Row 3 is unlabelled; row 0 is labelled for two tasks.
LABELS = ([0, 0, 1, 2, 4], [0, 2, 1, 1, 0])


def heads(**params):
    return AuxiliaryHeads(WIDTH, N_FEATURES, N_TASKS, **params).to(DEVICE)


def discriminator_by_hand(module, z):
    first, _, second = module.discriminator
    return torch.relu(z @ first.weight.T + first.bias) @ second.weight.T + second.bias


# --------------------------------------------------------------------------------------------
# reverse_gradient
# --------------------------------------------------------------------------------------------


def test_reverse_gradient_forward_is_identity():
    x = torch.randn(4, 3, device=DEVICE)
    out = reverse_gradient(x, scale=2.5)
    assert torch.equal(out, x)
    assert out.shape == x.shape and out.dtype == x.dtype


@pytest.mark.parametrize("scale", [1.0, 0.3, 2.0])
def test_reverse_gradient_backward_is_minus_scale_times_the_gradient(scale):
    x = torch.randn(4, 3, device=DEVICE, requires_grad=True)
    weight = torch.randn(4, 3, device=DEVICE)
    (reverse_gradient(x, scale) ** 2 * weight).sum().backward()
    # Hand computation: d/dx sum(w x^2) = 2 w x, then reversed.
    assert torch.allclose(x.grad, -scale * 2 * weight * x.detach())


def test_gradient_reversal_flips_the_discriminators_gradient_into_the_trunk():
    X = torch.randn(BATCH, N_FEATURES, device=DEVICE)
    trunk = nn.Linear(N_FEATURES, WIDTH).to(DEVICE)
    module = heads(auxiliary="adversarial")
    labels = labels_of(*LABELS)

    module.zero_grad()
    trunk.zero_grad()
    module(trunk(X), None, None, labels).backward()
    trunk_reversed = [trunk.weight.grad.clone(), trunk.bias.grad.clone()]
    disc_reversed = [p.grad.clone() for p in module.discriminator.parameters()]

    # The same loss by hand, without the reversal.
    module.zero_grad()
    trunk.zero_grad()
    z = trunk(X)
    logits = module.discriminator(z[labels["row"]])
    F.cross_entropy(logits, labels["task"]).backward()
    trunk_plain = [trunk.weight.grad.clone(), trunk.bias.grad.clone()]
    disc_plain = [p.grad.clone() for p in module.discriminator.parameters()]

    for reversed_, plain in zip(trunk_reversed, trunk_plain, strict=True):
        assert plain.abs().sum() > 0
        assert torch.allclose(reversed_, -plain, atol=1e-7)
    for reversed_, plain in zip(disc_reversed, disc_plain, strict=True):
        assert plain.abs().sum() > 0
        assert torch.equal(reversed_, plain)


@pytest.mark.parametrize("scale", [-1.0, float("inf"), float("nan"), "1", True])
def test_reverse_gradient_rejects_bad_scale(scale):
    with pytest.raises(ValueError, match="scale"):
        reverse_gradient(torch.zeros(2), scale)


# --------------------------------------------------------------------------------------------
# The three terms against hand computations
# --------------------------------------------------------------------------------------------


def test_reconstruction_equals_the_hand_formula():
    module = heads(auxiliary="reconstruction")
    rep = torch.randn(BATCH, WIDTH, device=DEVICE)
    X = torch.randn(BATCH, N_FEATURES, device=DEVICE)
    A, a = module.decoder.weight, module.decoder.bias
    expected = ((rep @ A.T + a - X) ** 2).sum() / (BATCH * N_FEATURES)
    terms = module.components(rep, X, None, labels_of(*LABELS))
    assert set(terms) == {"reconstruction"}
    assert torch.allclose(terms["reconstruction"], expected)
    assert torch.allclose(module(rep, X, None, labels_of(*LABELS)), expected)
    assert terms["reconstruction"].dim() == 0
    assert terms["reconstruction"].dtype == torch.float32


def test_hints_equal_the_hand_formula():
    module = heads(n_hints=2)
    rep = torch.randn(BATCH, WIDTH, device=DEVICE)
    hints = torch.randn(BATCH, 2, device=DEVICE)
    V, v = module.hint_head.weight, module.hint_head.bias
    expected = ((rep @ V.T + v - hints) ** 2).sum() / (BATCH * 2)
    terms = module.components(rep, None, hints, None)
    assert set(terms) == {"hints"}
    assert torch.allclose(terms["hints"], expected)
    assert module.decoder is None and module.discriminator is None


def test_adversarial_equals_cross_entropy_by_hand():
    module = heads(auxiliary="adversarial")
    rep = torch.randn(BATCH, WIDTH, device=DEVICE)
    rows, tasks = LABELS
    logits = discriminator_by_hand(module, rep)
    # One term per label entry: -log softmax(logits[row])[task], averaged.
    log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    expected = -torch.stack([log_p[r, t] for r, t in zip(rows, tasks, strict=True)]).mean()
    value = module(rep, None, None, labels_of(rows, tasks))
    assert torch.allclose(value, expected)
    reference = F.cross_entropy(logits[torch.tensor(rows)], torch.tensor(tasks, device=DEVICE))
    assert torch.allclose(value, reference)


def test_adversarial_without_labels_is_zero():
    module = heads(auxiliary="adversarial")
    rep = torch.randn(BATCH, WIDTH, device=DEVICE)
    value = module(rep, None, None, labels_of([], []))
    assert value.dim() == 0 and value.item() == 0.0


def test_sum_of_all_terms():
    module = heads(auxiliary="reconstruction", n_hints=2)
    rep = torch.randn(BATCH, WIDTH, device=DEVICE)
    X = torch.randn(BATCH, N_FEATURES, device=DEVICE)
    hints = torch.randn(BATCH, 2, device=DEVICE)
    terms = module.components(rep, X, hints, None)
    assert set(terms) == {"reconstruction", "hints"}
    expected = F.mse_loss(module.decoder(rep), X) + F.mse_loss(module.hint_head(rep), hints)
    assert torch.allclose(terms["reconstruction"] + terms["hints"], expected)
    assert torch.allclose(module(rep, X, hints, None), expected)


# --------------------------------------------------------------------------------------------
# Unlabelled rows and per-task representations
# --------------------------------------------------------------------------------------------


def test_unlabelled_rows_count_in_reconstruction_but_not_in_adversarial():
    rep = torch.randn(BATCH, WIDTH, device=DEVICE)
    X = torch.randn(BATCH, N_FEATURES, device=DEVICE)
    labelled = [0, 1, 2, 4]  # row 3 has no label
    labels = labels_of(*LABELS)

    recon = heads(auxiliary="reconstruction")
    with_unlabelled = recon(rep, X, None, labels)
    without = recon(rep[labelled], X[labelled], None, None)
    assert not torch.allclose(with_unlabelled, without)
    A, a = recon.decoder.weight, recon.decoder.bias
    assert torch.allclose(with_unlabelled, ((rep @ A.T + a - X) ** 2).mean())
    assert torch.allclose(without, ((rep[labelled] @ A.T + a - X[labelled]) ** 2).mean())

    adversarial = heads(auxiliary="adversarial")
    full = adversarial(rep, None, None, labels)
    # Drop row 3 and renumber the rows: the same labels, the same value.
    renumber = {row: i for i, row in enumerate(labelled)}
    dropped = labels_of([renumber[r] for r in LABELS[0]], LABELS[1])
    assert torch.allclose(full, adversarial(rep[labelled], None, None, dropped))
    # Changing the unlabelled row's representation does not change the adversarial term.
    moved = rep.clone()
    moved[3] += 10.0
    assert torch.equal(full, adversarial(moved, None, None, labels))


@pytest.mark.parametrize("auxiliary", [*AUXILIARY, None])
def test_per_task_representation_uses_the_mean_of_the_slots(auxiliary):
    module = heads(auxiliary=auxiliary, n_hints=2 if auxiliary is None else 0)
    slots = torch.randn(N_TASKS, BATCH, WIDTH, device=DEVICE, requires_grad=True)
    X = torch.randn(BATCH, N_FEATURES, device=DEVICE)
    hints = torch.randn(BATCH, 2, device=DEVICE)
    labels = labels_of(*LABELS)
    mean = (slots[0] + slots[1] + slots[2]) / N_TASKS
    assert torch.allclose(module.common_representation(slots), mean)
    value = module(slots, X, hints, labels)
    assert torch.allclose(value, module(mean.detach(), X, hints, labels))
    # Every slot receives 1/T of the gradient on the mean.
    value.backward()
    z = mean.detach().requires_grad_(True)
    module(z, X, hints, labels).backward()
    for t in range(N_TASKS):
        assert torch.allclose(slots.grad[t], z.grad / N_TASKS, atol=1e-7)


# --------------------------------------------------------------------------------------------
# Structure and errors
# --------------------------------------------------------------------------------------------


def test_submodules_and_shapes():
    module = AuxiliaryHeads(7, 5, 4, auxiliary="adversarial", n_hints=3, activation="tanh")
    first, activation, second = module.discriminator
    assert (first.in_features, first.out_features) == (7, 7)
    assert isinstance(activation, nn.Tanh)
    assert (second.in_features, second.out_features) == (7, 4)
    assert (module.hint_head.in_features, module.hint_head.out_features) == (7, 3)
    assert module.decoder is None
    decoder = AuxiliaryHeads(7, 5, 4, auxiliary="reconstruction").decoder
    assert (decoder.in_features, decoder.out_features) == (7, 5)
    assert all(p.dtype == torch.float32 for p in module.parameters())


def test_unknown_auxiliary():
    with pytest.raises(ValueError, match="auxiliary 'autoencoder'"):
        AuxiliaryHeads(3, 4, 2, auxiliary="autoencoder")


def test_nothing_to_do():
    with pytest.raises(ValueError, match="nothing to compute"):
        AuxiliaryHeads(3, 4, 2)


@pytest.mark.parametrize(
    "params, name",
    [
        ({"n_hints": -1}, "n_hints"),
        ({"n_hints": 1.5}, "n_hints"),
        ({"auxiliary": "adversarial", "activation": "softplus"}, "activation"),
    ],
)
def test_bad_parameters(params, name):
    with pytest.raises(ValueError, match=name):
        AuxiliaryHeads(3, 4, 2, **params)


@pytest.mark.parametrize("name, args", [("representation_size", (0, 4, 2)), ("n_tasks", (3, 4, 0))])
def test_bad_sizes(name, args):
    with pytest.raises(ValueError, match=name):
        AuxiliaryHeads(*args, auxiliary="reconstruction")


def test_bad_inputs():
    module = heads(auxiliary="reconstruction", n_hints=2)
    rep = torch.randn(BATCH, WIDTH, device=DEVICE)
    X = torch.randn(BATCH, N_FEATURES, device=DEVICE)
    hints = torch.randn(BATCH, 2, device=DEVICE)
    with pytest.raises(ValueError, match="rep must have shape"):
        module(torch.randn(BATCH, WIDTH + 1, device=DEVICE), X, hints, None)
    with pytest.raises(ValueError, match="X_in must have shape"):
        module(rep, X[:, :2], hints, None)
    with pytest.raises(ValueError, match="needs hints"):
        module(rep, X, None, None)
    with pytest.raises(ValueError, match="hints must have shape"):
        module(rep, X, hints[:, :1], None)
