"""Task-loss weightings, checked against hand computations of their formulas."""

import math
import pickle
from copy import deepcopy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from skmtl.deep.weighting import (  # noqa: E402
    WEIGHTINGS,
    DROWeighting,
    DWAWeighting,
    EqualWeighting,
    FixedWeighting,
    GradNormWeighting,
    InverseFrequencyWeighting,
    LBTWWeighting,
    MinimaxWeighting,
    UncertaintyWeighting,
    Weighting,
    get_weighting,
    weighted_sum,
)

NAN = float("nan")
ALL = [True, True, True]


def _reset(weighting, n_tasks=3, *, n_observed=None, task_type="regression"):
    n_observed = np.full(n_tasks, 10) if n_observed is None else np.asarray(n_observed)
    return weighting.reset(n_tasks, n_observed=n_observed, task_type=task_type, device="cpu")


def _combine(weighting, losses, observed=None, params=()):
    """Total, d total / d losses and d total / d params of one combine call."""
    observed = [True] * len(losses) if observed is None else observed
    losses = torch.tensor(losses, dtype=torch.float32, requires_grad=True)
    total = weighting.combine(losses, torch.tensor(observed))
    grads = torch.autograd.grad(total, [losses, *params], allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, [losses, *params])]
    assert total.shape == () and total.dtype == torch.float32
    return total.item(), [g.tolist() for g in grads]


def _assert_list(actual, expected, rel=1e-5):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a == pytest.approx(e, rel=rel, abs=1e-7)


def _sum(values):
    return sum(values)


# ------------------------------------------------------------------------------------------------
# static weightings


def test_equal_is_sum_over_observed_tasks():
    weighting = EqualWeighting()
    assert _reset(weighting) == []
    total, (grad,) = _combine(weighting, [1.5, 2.0, 0.5])
    assert total == pytest.approx(1.5 + 2.0 + 0.5)
    assert grad == [1.0, 1.0, 1.0]
    total, (grad,) = _combine(weighting, [1.5, NAN, 0.5], [True, False, True])
    assert total == pytest.approx(2.0)
    assert grad == [1.0, 0.0, 1.0]
    weights = weighting.current_weights()
    assert weights.dtype == np.float64
    assert weights.tolist() == [1.0, 1.0, 1.0]


def test_fixed_weights_are_used_as_given():
    weighting = FixedWeighting([0.5, 2.0, 1.0])
    _reset(weighting)
    total, (grad,) = _combine(weighting, [1.5, 2.0, 0.5])
    assert total == pytest.approx(0.5 * 1.5 + 2.0 * 2.0 + 1.0 * 0.5)
    _assert_list(grad, [0.5, 2.0, 1.0])
    total, (grad,) = _combine(weighting, [1.5, 2.0, NAN], [True, True, False])
    assert total == pytest.approx(0.5 * 1.5 + 2.0 * 2.0)
    _assert_list(grad, [0.5, 2.0, 0.0])
    assert weighting.current_weights().tolist() == [0.5, 2.0, 1.0]


@pytest.mark.parametrize(
    "task_weights, message",
    [
        ([1.0, 2.0], "expected 3, got shape (2,)"),
        ([[1.0, 2.0, 3.0]], "expected 3, got shape (1, 3)"),
        ([1.0, -0.5, 1.0], "must be non-negative"),
        ([1.0, NAN, 1.0], "must be finite"),
        ([0.0, 0.0, 0.0], "at least one positive"),
        (None, "needs task_weights"),
        (["a", "b", "c"], "sequence of numbers"),
    ],
)
def test_fixed_weights_errors(task_weights, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _reset(FixedWeighting(task_weights))


def test_inverse_frequency_balances_observed_labels():
    counts = [10, 40, 50]
    expected = [3 * n / _sum(counts) for n in counts]  # [0.3, 1.2, 1.5]
    weighting = InverseFrequencyWeighting()
    _reset(weighting, n_observed=counts)
    _assert_list(weighting.current_weights().tolist(), [0.3, 1.2, 1.5])
    assert weighting.current_weights().sum() == pytest.approx(3.0)
    total, (grad,) = _combine(weighting, [1.0, 2.0, 4.0])
    assert total == pytest.approx(expected[0] * 1.0 + expected[1] * 2.0 + expected[2] * 4.0)
    _assert_list(grad, expected)


def test_inverse_frequency_task_without_labels():
    weighting = InverseFrequencyWeighting()
    _reset(weighting, n_observed=[10, 0, 30])
    _assert_list(weighting.current_weights().tolist(), [2 * 10 / 40, 0.0, 2 * 30 / 40])
    with pytest.raises(ValueError, match="no task has an observed label"):
        _reset(weighting, n_observed=[0, 0, 0])


def test_inverse_frequency_full_batch_weighs_every_label_alike():
    # sum_t w_t * mean_t = K / N * sum of all label losses, by hand on 4 / 2 / 1 labels
    label_losses = [[1.0, 2.0, 3.0, 6.0], [0.5, 1.5], [7.0]]
    weighting = InverseFrequencyWeighting()
    _reset(weighting, n_observed=[4, 2, 1])
    _assert_list(weighting.current_weights().tolist(), [12 / 7, 6 / 7, 3 / 7])
    means = [_sum(v) / len(v) for v in label_losses]  # [3.0, 1.0, 7.0]
    total, _ = _combine(weighting, means)
    assert total == pytest.approx(3 / 7 * (12.0 + 2.0 + 7.0))  # = 9.0
    assert total == pytest.approx(12 / 7 * 3.0 + 6 / 7 * 1.0 + 3 / 7 * 7.0)


def _epoch_label_weights(weights, mask, batches):
    """Brute force: the weight each label gets over an epoch, w_t / (labels of t in its batch)."""
    per_label = np.zeros(mask.shape)
    for rows in batches:
        in_batch = mask[rows].sum(0)
        for t in np.flatnonzero(in_batch):
            per_label[rows[mask[rows, t]], t] += weights[t] / in_batch[t]
    return per_label


def _mask_1000_300_20(layout):
    mask = np.zeros((1000, 3), dtype=bool)
    mask[:, 0] = True
    if layout == "proportional":  # 50 rows per batch: 50, 15 and 1 labels in every batch
        rows = np.arange(1000)
        mask[:, 1] = rows % 10 < 3
        mask[:, 2] = rows % 50 == 0
    else:
        rng = np.random.RandomState(0)
        mask[rng.choice(1000, 300, replace=False), 1] = True
        mask[rng.choice(1000, 20, replace=False), 2] = True
    return mask


def test_inverse_frequency_1000_300_20_proportional_batches_weigh_every_label_alike():
    mask = _mask_1000_300_20("proportional")
    weighting = InverseFrequencyWeighting()
    _reset(weighting, n_observed=mask.sum(0))
    weights = weighting.current_weights()
    _assert_list(weights.tolist(), [3000 / 1320, 900 / 1320, 60 / 1320])
    batches = [np.arange(b, b + 50) for b in range(0, 1000, 50)]
    per_label = _epoch_label_weights(weights, mask, batches)
    np.testing.assert_allclose(per_label[mask], 3 / 66)  # K / N_b for every label of every task
    # the old 1 / n_t weights gave the 20 labels 2.76 each, the 1000 labels 0.0011 each
    old = 3 * (1 / mask.sum(0)) / (1 / mask.sum(0)).sum()
    old_per_label = _epoch_label_weights(old, mask, batches)
    assert old_per_label[mask[:, 2], 2].mean() / old_per_label[:, 0].mean() > 2000


def test_inverse_frequency_1000_300_20_shuffled_batches():
    mask = _mask_1000_300_20("shuffled")
    weighting = InverseFrequencyWeighting()
    _reset(weighting, n_observed=mask.sum(0))
    weights = weighting.current_weights()
    rng = np.random.RandomState(1)
    order = rng.permutation(1000)
    batches = [order[b : b + 50] for b in range(0, 1000, 50)]
    per_label = _epoch_label_weights(weights, mask, batches)
    # a task's labels share w_t in each batch that has them
    observed_batches = [sum(mask[rows, t].any() for rows in batches) for t in range(3)]
    task_totals = [per_label[mask[:, t], t].sum() for t in range(3)]
    _assert_list(task_totals, [weights[t] * observed_batches[t] for t in range(3)])
    assert observed_batches[:2] == [20, 20]  # tasks 0 and 1 are in every batch:
    mean_weight = [per_label[mask[:, t], t].mean() for t in range(3)]
    assert mean_weight[1] == pytest.approx(mean_weight[0])  # the same weight per label
    assert mean_weight[2] / mean_weight[0] == pytest.approx(observed_batches[2] / 20)


# ------------------------------------------------------------------------------------------------
# uncertainty


@pytest.mark.parametrize("task_type, scale", [("regression", 0.5), ("classification", 1.0)])
def test_uncertainty_value_and_gradients(task_type, scale):
    weighting = UncertaintyWeighting()
    params = _reset(weighting, task_type=task_type)
    assert len(params) == 1 and isinstance(params[0], torch.nn.Parameter)
    assert params[0].tolist() == [0.0, 0.0, 0.0]
    _assert_list(weighting.current_weights().tolist(), [scale] * 3)

    s = [0.0, math.log(2.0), -1.0]
    with torch.no_grad():
        params[0].copy_(torch.tensor(s))
    losses = [1.5, 2.0, 0.5]
    total, (grad_losses, grad_s) = _combine(weighting, losses, params=params)
    expected_total = _sum(scale * math.exp(-st) * lt + 0.5 * st for st, lt in zip(s, losses))
    assert total == pytest.approx(expected_total, rel=1e-6)
    _assert_list(grad_losses, [scale * math.exp(-st) for st in s])
    _assert_list(grad_s, [0.5 - scale * math.exp(-st) * lt for st, lt in zip(s, losses)])
    _assert_list(weighting.current_weights().tolist(), [scale * math.exp(-st) for st in s])

    # task 1 unobserved: neither its loss term nor its 0.5 * s_1 term counts
    total, (grad_losses, grad_s) = _combine(
        weighting, [1.5, NAN, 0.5], [True, False, True], params=params
    )
    expected_total = _sum(scale * math.exp(-s[t]) * losses[t] + 0.5 * s[t] for t in (0, 2))
    assert total == pytest.approx(expected_total, rel=1e-6)
    assert grad_losses[1] == 0.0 and grad_s[1] == 0.0
    _assert_list(
        grad_s, [0.5 - scale * math.exp(-s[0]) * 1.5, 0.0, 0.5 - scale * math.exp(1.0) * 0.5]
    )


# ------------------------------------------------------------------------------------------------
# GradNorm


def _gradnorm_step(weights, losses, initial, norms, *, alpha, lr, observed=None):
    """One GradNorm SGD step, by hand from the formulas (plain floats)."""
    n = len(weights)
    observed = [True] * n if observed is None else observed
    tasks = [t for t in range(n) if observed[t]]
    ratios = {t: losses[t] / initial[t] for t in tasks}
    mean_ratio = _sum(ratios.values()) / len(tasks)
    rates = {t: ratios[t] / mean_ratio for t in tasks}
    norms_w = {t: weights[t] * norms[t] for t in tasks}
    mean_norm = _sum(norms_w.values()) / len(tasks)
    new = list(weights)
    for t in tasks:
        diff = norms_w[t] - mean_norm * rates[t] ** alpha
        grad = math.copysign(1.0, diff) * norms[t] if diff != 0 else 0.0
        new[t] = max(weights[t] - lr * grad, 1e-4)
    budget = n - _sum(weights[t] for t in range(n) if not observed[t])
    observed_sum = _sum(new[t] for t in tasks)
    return [new[t] * budget / observed_sum if observed[t] else new[t] for t in range(n)]


def _after_backward(weighting, losses, norms, observed=None):
    observed = [True] * len(losses) if observed is None else observed
    weighting.after_backward(
        torch.tensor(losses), torch.tensor(observed), torch.tensor(norms, dtype=torch.float32)
    )


def test_gradnorm_sgd_steps_by_hand():
    weighting = GradNormWeighting(alpha=1.5, lr=0.1, optimizer="sgd")
    assert weighting.requires_grad_norms is True
    assert _reset(weighting) == []

    # step 1: L(0) = the first losses, every training rate is 1
    initial = [2.0, 1.0, 4.0]
    norms1 = [1.0, 2.0, 0.5]
    # G = [1, 2, 0.5], G_bar = 3.5 / 3; signs [-, +, -]; w = 1 - 0.1 * [-1, 2, -0.5]
    step1 = [1.1, 0.8, 1.05]
    step1 = [3 * w / _sum(step1) for w in step1]
    _after_backward(weighting, initial, norms1)
    _assert_list(weighting.current_weights().tolist(), step1)
    assert _gradnorm_step([1.0] * 3, initial, initial, norms1, alpha=1.5, lr=0.1) == pytest.approx(
        step1
    )

    # the network loss uses the weights, held constant
    total, (grad,) = _combine(weighting, [1.0, 2.0, 3.0])
    assert total == pytest.approx(step1[0] * 1.0 + step1[1] * 2.0 + step1[2] * 3.0, rel=1e-6)
    _assert_list(grad, step1)
    assert not weighting.weights_.requires_grad

    # step 2: training rates differ
    losses2, norms2 = [1.0, 0.8, 3.0], [0.5, 1.5, 1.0]
    step2 = _gradnorm_step(step1, losses2, initial, norms2, alpha=1.5, lr=0.1)
    _after_backward(weighting, losses2, norms2)
    _assert_list(weighting.current_weights().tolist(), step2)
    assert sum(step2) == pytest.approx(3.0)
    assert weighting.current_weights().dtype == np.float64


def test_gradnorm_step_2_written_out():
    # the same second step as above with every number written out, alpha = 1
    weighting = GradNormWeighting(alpha=1.0, lr=0.5, optimizer="sgd")
    _reset(weighting, n_tasks=2)
    _after_backward(weighting, [2.0, 1.0], [1.0, 1.0])  # G equal: no move
    _assert_list(weighting.current_weights().tolist(), [1.0, 1.0])
    # L / L(0) = [0.5, 1.0], r = [2/3, 4/3]; G = [1, 1], G_bar = 1 -> targets [2/3, 4/3]
    # signs [+, -] -> grads [+1, -1]; w = [0.5, 1.5], sum 2 -> unchanged by renormalisation
    _after_backward(weighting, [1.0, 1.0], [1.0, 1.0])
    _assert_list(weighting.current_weights().tolist(), [0.5, 1.5])


def test_gradnorm_clamps_then_renormalises():
    weighting = GradNormWeighting(alpha=1.5, lr=1.0, optimizer="sgd")
    _reset(weighting, n_tasks=2)
    # G = [1, 3], G_bar = 2; grads [-1, +3]; w = [2, -2] -> clamp [2, 1e-4] -> sum to 2
    _after_backward(weighting, [1.0, 1.0], [1.0, 3.0])
    _assert_list(weighting.current_weights().tolist(), [2 * 2 / 2.0001, 2 * 1e-4 / 2.0001])


def test_gradnorm_adam_first_step():
    weighting = GradNormWeighting(alpha=1.5, lr=0.1)  # Adam by default
    _reset(weighting)
    # first Adam step: w - lr * g / (|g| + eps) = 1 - 0.1 * sign(g), signs [-, +, -]
    _after_backward(weighting, [2.0, 1.0, 4.0], [1.0, 2.0, 0.5])
    step = [1.1, 0.9, 1.1]
    _assert_list(weighting.current_weights().tolist(), [3 * w / _sum(step) for w in step])


def test_gradnorm_unobserved_task_is_left_alone():
    weighting = GradNormWeighting(alpha=1.5, lr=0.1, optimizer="sgd")
    _reset(weighting)
    _after_backward(weighting, [2.0, 1.0, 4.0], [1.0, 2.0, 0.5])
    before = weighting.current_weights().tolist()
    initial = [2.0, 1.0, 4.0]
    # task 1 unobserved, with garbage loss and gradient norm
    observed = [True, False, True]
    _after_backward(weighting, [1.0, NAN, 3.0], [0.5, NAN, 1.0], observed)
    after = weighting.current_weights().tolist()
    assert after[1] == pytest.approx(before[1], rel=1e-7)
    expected = _gradnorm_step(
        before, [1.0, 1.0, 3.0], initial, [0.5, 0.0, 1.0], alpha=1.5, lr=0.1, observed=observed
    )
    _assert_list(after, expected)
    assert sum(after) == pytest.approx(3.0)


def test_gradnorm_first_loss_of_a_late_task():
    weighting = GradNormWeighting(alpha=1.0, lr=0.5, optimizer="sgd")
    _reset(weighting, n_tasks=2)
    _after_backward(weighting, [2.0, NAN], [1.0, NAN], [True, False])
    assert weighting.initial_losses_.tolist()[0] == 2.0
    assert math.isnan(weighting.initial_losses_.tolist()[1])
    _after_backward(weighting, [1.0, 3.0], [1.0, 1.0])
    assert weighting.initial_losses_.tolist() == [2.0, 3.0]


def test_gradnorm_needs_grad_norms():
    weighting = GradNormWeighting()
    _reset(weighting)
    with pytest.raises(ValueError, match="gradient norms"):
        weighting.after_backward(torch.ones(3), torch.ones(3, dtype=torch.bool), None)


@pytest.mark.parametrize(
    "params, error, message",
    [
        ({"alpha": -1.0}, ValueError, "alpha must be >= 0"),
        ({"lr": 0.0}, ValueError, "lr must be > 0"),
        ({"lr": "fast"}, TypeError, "lr must be a finite real"),
        ({"optimizer": "rmsprop"}, ValueError, "optimizer must be 'adam' or 'sgd'"),
    ],
)
def test_gradnorm_parameter_errors(params, error, message):
    with pytest.raises(error, match=message):
        _reset(GradNormWeighting(**params))


# ------------------------------------------------------------------------------------------------
# DWA


def _softmax_weights(rates, temperature):
    exps = [math.exp(r / temperature) for r in rates]
    return [len(rates) * e / _sum(exps) for e in exps]


def test_dwa_after_three_epochs():
    weighting = DWAWeighting(temperature=2.0)
    _reset(weighting)
    epochs = [[1.0, 2.0, 3.0], [0.8, 1.0, 3.0], [0.4, 0.9, 2.4]]

    weighting.on_epoch_end(np.array(epochs[0]))  # weights of epoch 2: ones
    assert weighting.current_weights().tolist() == [1.0, 1.0, 1.0]

    weighting.on_epoch_end(np.array(epochs[1]))  # weights of epoch 3
    expected3 = _softmax_weights([0.8 / 1.0, 1.0 / 2.0, 3.0 / 3.0], 2.0)
    _assert_list(weighting.current_weights().tolist(), expected3)

    weighting.on_epoch_end(np.array(epochs[2]))  # weights of epoch 4
    expected4 = _softmax_weights([0.4 / 0.8, 0.9 / 1.0, 2.4 / 3.0], 2.0)
    _assert_list(weighting.current_weights().tolist(), expected4)
    assert sum(expected4) == pytest.approx(3.0)

    total, (grad,) = _combine(weighting, [1.0, NAN, 2.0], [True, False, True])
    assert total == pytest.approx(expected4[0] * 1.0 + expected4[2] * 2.0, rel=1e-6)
    _assert_list(grad, [expected4[0], 0.0, expected4[2]])


def test_dwa_missing_epoch_loss_counts_as_rate_one():
    weighting = DWAWeighting(temperature=1.0)
    _reset(weighting, n_tasks=2)
    weighting.on_epoch_end(np.array([1.0, NAN]))
    weighting.on_epoch_end(np.array([0.5, 2.0]))
    _assert_list(weighting.current_weights().tolist(), _softmax_weights([0.5, 1.0], 1.0))
    with pytest.raises(ValueError, match="epoch_losses must have shape"):
        weighting.on_epoch_end(np.array([1.0]))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        _reset(DWAWeighting(temperature=0.0))


# ------------------------------------------------------------------------------------------------
# LBTW


def test_lbtw_after_second_batch():
    weighting = LBTWWeighting(alpha=0.5)
    _reset(weighting)
    first = [2.0, 1.0, 4.0]
    total, (grad,) = _combine(weighting, first)  # weights 1 at the first batch
    assert total == pytest.approx(7.0)
    _assert_list(grad, [1.0, 1.0, 1.0])

    second = [1.0, 0.5, 1.0]
    raw = [(second[t] / first[t]) ** 0.5 for t in range(3)]  # [0.7071, 0.7071, 0.5]
    expected = [3 * v / _sum(raw) for v in raw]
    total, (grad,) = _combine(weighting, second)
    assert total == pytest.approx(_sum(w * v for w, v in zip(expected, second)), rel=1e-6)
    _assert_list(grad, expected)  # the weights are held constant
    _assert_list(weighting.current_weights().tolist(), expected)


def test_lbtw_without_normalisation():
    weighting = LBTWWeighting(alpha=0.5, normalize=False)
    _reset(weighting)
    _combine(weighting, [2.0, 1.0, 4.0])
    total, (grad,) = _combine(weighting, [1.0, 0.5, 1.0])
    expected = [0.5**0.5, 0.5**0.5, 0.25**0.5]
    assert total == pytest.approx(expected[0] * 1.0 + expected[1] * 0.5 + expected[2] * 1.0)
    _assert_list(grad, expected)


def test_lbtw_initial_loss_at_first_observed_batch():
    weighting = LBTWWeighting(alpha=1.0)
    _reset(weighting, n_tasks=2)
    _combine(weighting, [2.0, NAN], [True, False])
    _, (grad,) = _combine(weighting, [1.0, 3.0])  # task 1's first batch: raw [0.5, 1]
    _assert_list(grad, [2 * 0.5 / 1.5, 2 * 1.0 / 1.5])
    _, (grad,) = _combine(weighting, [NAN, 1.5], [False, True])  # only task 1: mean 1
    _assert_list(grad, [0.0, 1.0])
    _assert_list(weighting.current_weights().tolist(), [2 * 0.5 / 1.5, 1.0])
    _, (grad,) = _combine(weighting, [1.0, 1.5])  # raw [0.5, 0.5]
    _assert_list(grad, [1.0, 1.0])


def test_lbtw_resets_each_epoch_by_default_and_sums_to_n_tasks():
    # the authors' formula, by hand: w_t = (L_t / L_t(first batch of the epoch)) ** alpha,
    # scaled so that sum_t w_t = T
    alpha = 0.5
    epochs = [
        [[2.0, 1.0, 4.0], [1.0, 0.5, 1.0], [0.5, 0.4, 2.0]],
        [[0.4, 0.2, 1.5], [0.2, 0.1, 1.2], [0.1, 0.15, 0.3]],
    ]
    weighting = LBTWWeighting(alpha=alpha)
    assert weighting.reset_each_epoch is True and weighting.normalize is True
    _reset(weighting)
    for epoch in epochs:
        first = epoch[0]
        for losses in epoch:
            raw = [(losses[t] / first[t]) ** alpha for t in range(3)]
            expected = [3 * v / _sum(raw) for v in raw]
            total, (grad,) = _combine(weighting, losses)
            _assert_list(grad, expected)
            assert _sum(grad) == pytest.approx(3.0)
            assert total == pytest.approx(_sum(w * v for w, v in zip(expected, losses)))
        weighting.on_epoch_end(np.array([_sum(b[t] for b in epoch) / 3 for t in range(3)]))
    # without the reset, the second epoch is relative to the first batch of the fit
    weighting = LBTWWeighting(alpha=alpha, reset_each_epoch=False)
    _reset(weighting)
    for losses in epochs[0]:
        _combine(weighting, losses)
    weighting.on_epoch_end(np.ones(3))
    _, (grad,) = _combine(weighting, epochs[1][0])
    raw = [(epochs[1][0][t] / epochs[0][0][t]) ** alpha for t in range(3)]
    _assert_list(grad, [3 * v / _sum(raw) for v in raw])


def test_lbtw_reset_each_epoch():
    weighting = LBTWWeighting(alpha=1.0, normalize=False, reset_each_epoch=True)
    _reset(weighting, n_tasks=2)
    _combine(weighting, [2.0, 4.0])
    _, (grad,) = _combine(weighting, [1.0, 1.0])
    _assert_list(grad, [0.5, 0.25])
    weighting.on_epoch_end(np.array([1.5, 2.5]))
    _, (grad,) = _combine(weighting, [1.0, 1.0])  # new reference
    _assert_list(grad, [1.0, 1.0])


# ------------------------------------------------------------------------------------------------
# minimax


def test_minimax_trains_the_worst_observed_task():
    weighting = MinimaxWeighting()
    _reset(weighting)
    assert weighting.current_weights().tolist() == [1.0, 1.0, 1.0]
    total, (grad,) = _combine(weighting, [1.0, 3.0, 2.0])
    assert total == 3.0 and grad == [0.0, 1.0, 0.0]
    total, (grad,) = _combine(weighting, [1.0, 9.0, 2.0], [True, False, True])
    assert total == 2.0 and grad == [0.0, 0.0, 1.0]
    assert weighting.current_weights().tolist() == [0.0, 0.0, 1.0]
    total, (grad,) = _combine(weighting, [2.0, 2.0, 1.0])  # tie: the first
    assert total == 2.0 and grad == [1.0, 0.0, 0.0]
    total, (grad,) = _combine(weighting, [NAN, NAN, NAN], [False, False, False])
    assert total == 0.0 and grad == [0.0, 0.0, 0.0]
    assert weighting.current_weights().tolist() == [1.0, 0.0, 0.0]


# ------------------------------------------------------------------------------------------------
# group DRO


def _dro_reference(batches, n_tasks, step_size, smoothing):
    """Hand-written numpy group DRO: EMA of the batch losses, q <- q exp(eta Lbar), normalised."""
    q = np.full(n_tasks, 1.0 / n_tasks)
    avg = np.full(n_tasks, np.nan)
    weights = []
    for losses, observed in batches:
        for t in range(n_tasks):
            if observed[t]:
                avg[t] = losses[t] if np.isnan(avg[t]) else (
                    smoothing * avg[t] + (1 - smoothing) * losses[t]
                )
        q = q * np.exp(step_size * np.nan_to_num(avg, nan=0.0))
        q = q / q.sum()
        weights.append(n_tasks * q)
    return weights


def test_dro_matches_a_numpy_reference_with_missing_tasks():
    batches = [
        ([1.0, NAN, 2.0], [True, False, True]),  # task 1 not seen yet: q_1 not multiplied
        ([0.5, 3.0, NAN], [True, True, False]),  # task 2 keeps its average
        ([NAN, 2.5, NAN], [False, True, False]),
        ([0.2, 1.0, 4.0], ALL),
        ([NAN, NAN, NAN], [False, False, False]),  # q still moves on the averages
        ([0.1, 0.5, 3.0], ALL),
    ]
    step_size, smoothing = 0.3, 0.6
    expected = _dro_reference(batches, 3, step_size, smoothing)
    weighting = DROWeighting(step_size=step_size, smoothing=smoothing)
    _reset(weighting)
    assert weighting.current_weights().tolist() == pytest.approx([1.0, 1.0, 1.0])
    for (losses, observed), weights in zip(batches, expected):
        total, (grad,) = _combine(weighting, losses, observed)
        _assert_list(weighting.current_weights().tolist(), weights.tolist())
        assert weighting.current_weights().sum() == pytest.approx(3.0)
        _assert_list(grad, [w if o else 0.0 for w, o in zip(weights, observed)])
        assert total == pytest.approx(
            _sum(w * v for w, v, o in zip(weights, losses, observed) if o), rel=1e-5
        )
    assert weighting.q_.sum().item() == pytest.approx(1.0)
    # the worst task (2, largest average loss) has gained the most weight
    assert np.argmax(weighting.current_weights()) == 2


def test_dro_first_batch_by_hand_and_limits():
    weighting = DROWeighting(step_size=1.0, smoothing=0.0)
    _reset(weighting, n_tasks=2)
    _, (grad,) = _combine(weighting, [1.0, 0.0])
    _assert_list(grad, [2 * math.e / (math.e + 1), 2 / (math.e + 1)])
    equal = DROWeighting(step_size=0.0)  # no step: equal weighting
    _reset(equal)
    for losses in ([1.0, 5.0, 2.0], [3.0, 0.5, 9.0]):
        _, (grad,) = _combine(equal, losses)
        _assert_list(grad, [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="smoothing must be < 1"):
        _reset(DROWeighting(smoothing=1.0))
    with pytest.raises(ValueError, match="step_size must be >= 0"):
        _reset(DROWeighting(step_size=-0.1))


# ------------------------------------------------------------------------------------------------
# properties shared by every weighting


def _all_weightings():
    return [
        EqualWeighting(),
        FixedWeighting([0.5, 2.0, 1.0]),
        InverseFrequencyWeighting(),
        UncertaintyWeighting(),
        GradNormWeighting(optimizer="sgd", lr=0.1),
        DWAWeighting(),
        LBTWWeighting(),
        MinimaxWeighting(),
        DROWeighting(step_size=0.5, smoothing=0.5),
    ]


def _warm_up(weighting, params):
    """Move every weighting away from its initial state (weights 1, s = 0)."""
    if params:
        with torch.no_grad():
            params[0].copy_(torch.tensor([0.3, -0.7, 1.1]))
    weighting.combine(torch.tensor([2.0, 1.0, 4.0]), torch.tensor(ALL))
    weighting.after_backward(
        torch.tensor([2.0, 1.0, 4.0]), torch.tensor(ALL), torch.tensor([1.0, 2.0, 0.5])
    )
    for epoch_losses in ([1.0, 2.0, 3.0], [0.8, 1.0, 3.0]):
        weighting.on_epoch_end(np.array(epoch_losses))


@pytest.mark.parametrize("weighting", _all_weightings(), ids=lambda w: type(w).__name__)
@pytest.mark.parametrize("task_type", ["regression", "classification"])
def test_unobserved_task_contributes_nothing(weighting, task_type):
    params = _reset(weighting, n_observed=[10, 20, 40], task_type=task_type)
    _warm_up(weighting, params)
    observed = [True, False, True]
    results, weights = [], []
    for hidden in (0.0, NAN, 1e6):  # each from the same state (combine may move the weights)
        copy, copy_params = deepcopy((weighting, params))
        results.append(_combine(copy, [1.5, hidden, 0.5], observed, params=copy_params))
        weights.append(copy.current_weights())
    for (total, grads), weights_now in zip(results, weights):
        assert total == results[0][0]
        assert grads == results[0][1]
        assert all(grad[1] == 0.0 for grad in grads)  # losses and log-variances alike
        np.testing.assert_array_equal(weights_now, weights[0])
    # the same value as the observed tasks alone, with their weights
    weights = weights[0]
    if not isinstance(weighting, UncertaintyWeighting):
        _assert_list(results[0][1][0], [weights[0], 0.0, weights[2]])
        assert results[0][0] == pytest.approx(weights[0] * 1.5 + weights[2] * 0.5, rel=1e-6)


@pytest.mark.parametrize("weighting", _all_weightings(), ids=lambda w: type(w).__name__)
def test_unobserved_task_does_not_move_the_weights(weighting):
    params = _reset(weighting, n_observed=[10, 20, 40])
    _warm_up(weighting, params)
    before = weighting.current_weights()
    after = []
    for hidden in (0.0, NAN, 1e6):
        copy = get_weighting(weighting)
        observed = torch.tensor([True, False, True])
        copy.after_backward(
            torch.tensor([1.5, hidden, 0.5]), observed, torch.tensor([0.5, hidden, 1.0])
        )
        after.append(copy.current_weights())
    for weights in after:
        np.testing.assert_array_equal(weights, after[0])
        assert weights[1] == before[1]


@pytest.mark.parametrize("weighting", _all_weightings(), ids=lambda w: type(w).__name__)
def test_runs_on_the_device_of_the_losses(weighting):
    # the meta device has no data: any hidden host-side computation or "cpu" would fail
    weighting.reset(3, n_observed=np.array([1, 2, 3]), task_type="regression", device="meta")
    losses = torch.ones(3, device="meta", requires_grad=True)
    observed = torch.ones(3, dtype=torch.bool, device="meta")
    for _ in range(2):
        total = weighting.combine(losses, observed)
        weighting.after_backward(losses, observed, torch.ones(3, device="meta"))
        weighting.on_epoch_end(np.ones(3))
    assert total.device.type == "meta" and total.shape == ()
    assert torch.autograd.grad(total, losses)[0].device.type == "meta"


@pytest.mark.parametrize("weighting", _all_weightings(), ids=lambda w: type(w).__name__)
def test_reset_starts_afresh(weighting):
    params = _reset(weighting, n_observed=[10, 10, 10])
    start = weighting.current_weights()
    _warm_up(weighting, params)
    _reset(weighting, n_observed=[10, 10, 10])
    np.testing.assert_array_equal(weighting.current_weights(), start)
    assert weighting.current_weights().dtype == np.float64
    assert weighting.current_weights().shape == (3,)


def test_combine_checks_its_inputs():
    weighting = EqualWeighting()
    with pytest.raises(RuntimeError, match="call reset"):
        weighting.combine(torch.ones(3), torch.ones(3, dtype=torch.bool))
    _reset(weighting)
    with pytest.raises(ValueError, match=r"losses must have shape \(3,\), got \(2,\)"):
        weighting.combine(torch.ones(2), torch.ones(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="observed must have shape"):
        weighting.combine(torch.ones(3), torch.ones(2, dtype=torch.bool))
    with pytest.raises(TypeError, match="floating point"):
        weighting.combine(torch.ones(3, dtype=torch.int64), torch.ones(3, dtype=torch.bool))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_observed": [1, 2]}, "n_observed must have shape"),
        ({"n_observed": [1, -2, 3]}, "non-negative counts"),
        ({"task_type": "ranking"}, "task_type must be one of"),
    ],
)
def test_reset_checks_its_inputs(kwargs, message):
    kwargs = {"n_observed": [1, 2, 3], "task_type": "regression", "device": "cpu", **kwargs}
    with pytest.raises(ValueError, match=message):
        EqualWeighting().reset(3, **kwargs)


def test_weighted_sum_ignores_unobserved_nan_and_inf():
    weights = torch.tensor([2.0, float("inf"), 0.5], requires_grad=True)
    losses = torch.tensor([1.0, NAN, 3.0], requires_grad=True)
    total = weighted_sum(weights, losses, torch.tensor([True, False, True]))
    assert total.item() == 3.5
    grad_weights, grad_losses = torch.autograd.grad(total, [weights, losses])
    assert grad_weights.tolist() == [1.0, 0.0, 3.0]
    assert grad_losses.tolist() == [2.0, 0.0, 0.5]


# ------------------------------------------------------------------------------------------------
# get_weighting


@pytest.mark.parametrize(
    "name, cls",
    [
        ("equal", EqualWeighting),
        ("inverse_frequency", InverseFrequencyWeighting),
        ("uncertainty", UncertaintyWeighting),
        ("gradnorm", GradNormWeighting),
        ("dwa", DWAWeighting),
        ("lbtw", LBTWWeighting),
        ("minimax", MinimaxWeighting),
        ("dro", DROWeighting),
    ],
)
def test_get_weighting_by_name(name, cls):
    weighting = get_weighting(name)
    assert type(weighting) is cls
    assert name in WEIGHTINGS


def test_get_weighting_names_and_params():
    assert set(WEIGHTINGS) == {
        "equal", "fixed", "inverse_frequency", "uncertainty", "gradnorm", "dwa", "lbtw", "minimax",
        "dro",
    }  # fmt: skip
    weighting = get_weighting("gradnorm", alpha=0.5, lr=0.01)
    assert (weighting.alpha, weighting.lr) == (0.5, 0.01)
    assert repr(weighting) == (
        "GradNormWeighting(alpha=0.5, lr=0.01, optimizer='adam', gradient_on='last_shared_layer')"
    )
    assert get_weighting("fixed", task_weights=[1, 2]).task_weights == [1, 2]
    assert repr(get_weighting("equal")) == "EqualWeighting()"


def test_get_weighting_errors():
    with pytest.raises(ValueError, match="Unknown weighting 'grad_norm'; expected one of 'equal'"):
        get_weighting("grad_norm")
    with pytest.raises(TypeError, match="weighting must be one of .* got int 3"):
        get_weighting(3)
    with pytest.raises(TypeError, match=r"not the class EqualWeighting; pass EqualWeighting\(\)"):
        get_weighting(EqualWeighting)
    with pytest.raises(
        TypeError, match=r"weighting='dwa' got unexpected parameter\(s\) \['alpha'\]"
    ):
        get_weighting("dwa", alpha=1.0)
    with pytest.raises(TypeError, match="'equal' got unexpected .* it takes no parameters"):
        get_weighting("equal", task_weights=[1.0])
    with pytest.raises(TypeError, match="apply only to a weighting given by name"):
        get_weighting(EqualWeighting(), alpha=1.0)


class _HalfOfTheLargest(Weighting):
    """A user weighting: combine overridden, weights 0.5 on the largest observed loss, 1 else."""

    def __init__(self, factor=0.5):
        self.factor = factor

    def reset(self, n_tasks, *, n_observed, task_type, device):
        self.calls = ["reset"]
        return super().reset(n_tasks, n_observed=n_observed, task_type=task_type, device=device)

    def combine(self, losses, observed):
        masked = torch.where(observed, losses.detach(), float("-inf"))
        weights = torch.ones_like(losses)
        weights[torch.argmax(masked)] = self.factor
        self.weights_ = weights.numpy().astype(np.float64)
        return weighted_sum(weights, losses, observed)

    def on_epoch_end(self, epoch_losses):
        self.calls.append("epoch")


def test_custom_weighting_through_get_weighting():
    user = _HalfOfTheLargest(factor=0.25)
    weighting = get_weighting(user)
    assert isinstance(weighting, _HalfOfTheLargest) and weighting is not user
    assert repr(weighting) == "_HalfOfTheLargest(factor=0.25)"
    assert weighting.requires_grad_norms is False
    assert _reset(weighting) == []
    total, (grad,) = _combine(weighting, [1.0, 4.0, 2.0])
    assert total == pytest.approx(1.0 + 0.25 * 4.0 + 2.0)
    assert grad == [1.0, 0.25, 1.0]
    weighting.after_backward(torch.ones(3), torch.tensor(ALL), None)  # base: nothing
    weighting.on_epoch_end(np.array([1.0, 4.0, 2.0]))
    assert weighting.calls == ["reset", "epoch"]
    assert weighting.current_weights().tolist() == [1.0, 0.25, 1.0]
    assert not hasattr(user, "calls")  # the user's instance is never modified


def test_base_class_is_equal_weighting_on_weights_attribute():
    class Halved(Weighting):
        def reset(self, n_tasks, *, n_observed, task_type, device):
            params = super().reset(
                n_tasks, n_observed=n_observed, task_type=task_type, device=device
            )
            self.weights_ = np.full(n_tasks, 0.5)
            return params

    weighting = get_weighting(Halved())
    _reset(weighting)
    total, (grad,) = _combine(weighting, [1.0, NAN, 3.0], [True, False, True])
    assert total == 2.0 and grad == [0.5, 0.0, 0.5]


@pytest.mark.parametrize("weighting", _all_weightings(), ids=lambda w: type(w).__name__)
def test_fitted_weighting_pickles(weighting):
    params = _reset(weighting, n_observed=[10, 20, 40])
    _warm_up(weighting, params)
    restored = pickle.loads(pickle.dumps(weighting))
    np.testing.assert_array_equal(restored.current_weights(), weighting.current_weights())
    losses = torch.tensor([1.5, 2.0, 0.5])
    observed = torch.tensor(ALL)
    assert restored.combine(losses, observed).item() == weighting.combine(losses, observed).item()


def test_rmtl_policy_rewards_equal_the_cosines_of_the_combined_gradients():
    """Each policy's reward is max(cos(sum_a pi_a g_a, g_f), 0) of explicit gradients, for
    policies that weigh one task (read from that task's gradient alone, so that the default
    policies cost O(T) a batch, not O(T^2)) and policies that weigh several; the weights of
    the best one."""
    from skmtl.deep._task_gradients import GramGradients
    from skmtl.deep.weighting import RMTLWeighting

    rng = np.random.default_rng(0)
    g = rng.normal(size=(5, 7))  # task 2 is the focus; auxiliary tasks 0, 1, 3, 4
    g[1] = -0.5 * g[2] + 0.1 * g[1]  # an auxiliary task opposed to the focus: reward 0
    policies = [[2.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0.5, 0], [0.3, 0, 0, 0.7],
                [0, 0, 0, 3.0], [1.0, 1.0, 1.0, 1.0]]
    for given in (policies, None):
        weighting = RMTLWeighting(2, reward="policy", policies=given)
        _reset(weighting, n_tasks=5)
        weighting.observe_task_gradients(
            GramGradients(torch.tensor(g @ g.T, dtype=torch.float32)), torch.ones(5, dtype=bool))
        P = np.asarray(given if given is not None else np.r_[np.eye(4), np.ones((1, 4))])
        combined = P @ g[[0, 1, 3, 4]]
        cosines = combined @ g[2] / (np.linalg.norm(combined, axis=1) * np.linalg.norm(g[2]))
        expected = np.maximum(cosines, 0.0)
        best = int(np.argmax(expected))
        assert int(weighting.last_policy_) == best
        assert float(weighting.last_reward_) == pytest.approx(expected[best], rel=1e-5)
        np.testing.assert_allclose(weighting.batch_weights_.numpy(),
                                   np.insert(expected[best] * P[best], 2, 1.0), rtol=1e-5)
        rewards = weighting._policy_rewards(
            GramGradients(torch.tensor(g @ g.T, dtype=torch.float32)),
            torch.tensor(g @ g[2], dtype=torch.float32),
            torch.tensor(np.linalg.norm(g, axis=1), dtype=torch.float32))
        np.testing.assert_allclose(rewards.numpy(), expected, rtol=1e-5, atol=1e-6)
