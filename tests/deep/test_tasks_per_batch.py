"""Naive multi-task SGD with several tasks per batch (``tasks_per_batch``)."""

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_training import BatchMasks, label_mask  # noqa: E402  (the batches' label masks)

from skmtl.deep import MultiTaskRegressor  # noqa: E402
from skmtl.deep._labels import TaskLabels  # noqa: E402
from skmtl.deep._net import MultiTaskDataset, _BatchSampler  # noqa: E402

TRAINING = dict(hidden_layer_sizes=(4,), max_epochs=2, optimizer="adam", weight_decay=0.0,
                early_stopping=False, dropout=0.0, random_state=0)


def _dataset(counts, n=200, seed=0):
    """A dataset whose task ``t`` has labels on ``counts[t]`` random rows."""
    rng = np.random.RandomState(seed)
    mask = np.zeros((n, len(counts)), dtype=bool)
    for t, count in enumerate(counts):
        mask[rng.choice(n, count, replace=False), t] = True
    targets = np.where(mask, rng.normal(size=mask.shape), 0).astype(np.float32)
    return MultiTaskDataset(rng.normal(size=(n, 3)), TaskLabels.from_wide(targets, mask))


def _batches(dataset, batch_size, sampling, k, epochs):
    sampler = _BatchSampler(dataset, batch_size, True, sampling, k)
    return sampler, [item for _ in range(epochs) for item in sampler]


@pytest.mark.parametrize("sampling", ["uniform", "proportional"])
def test_every_batch_holds_k_tasks_and_their_observed_rows(sampling):
    dataset = _dataset([120, 60, 30, 15, 0])
    sampler, batches = _batches(dataset, batch_size=10, sampling=sampling, k=3, epochs=5)
    assert sampler.tasks_per_batch == 3
    assert len(batches) == 5 * 20
    for positions, owners in batches:
        tasks = list(dict.fromkeys(owners.tolist()))  # in drawing order
        assert len(tasks) == 3 and 4 not in tasks  # distinct, never the task without labels
        sizes = [int((owners == t).sum()) for t in tasks]
        expected = [min(n, 120 if t == 0 else (60, 30, 15)[t - 1] if t else n)
                    for t, n in zip(tasks, [4, 3, 3], strict=True)]
        assert sizes == expected  # batch_size // k each, the remainder to the first drawn
        every = label_mask(dataset[(positions, None)], 5)
        assert every[np.arange(len(owners)), owners].all()  # each row observed for its task
        observed = label_mask(dataset[(positions, owners)], 5)
        assert observed.sum(axis=1).tolist() == [1] * len(positions)  # one label per row
        assert observed[np.arange(len(owners)), owners].all()  # the label of its own task
        assert sorted(np.flatnonzero(observed.any(axis=0))) == sorted(tasks)


def _inclusion_probabilities(p, k):
    """Probability that each task is among k draws without replacement (successive draws)."""
    inclusion = np.zeros(len(p))
    for order in itertools.permutations(range(len(p)), k):
        prob, left = 1.0, 1.0
        for t in order:
            prob *= p[t] / left
            left -= p[t]
        inclusion[list(order)] += prob
    return inclusion


@pytest.mark.parametrize("sampling", ["uniform", "proportional"])
def test_task_frequencies_follow_the_sampling(sampling):
    counts = np.array([120, 60, 30, 15])
    dataset = _dataset(counts)
    _, batches = _batches(dataset, batch_size=8, sampling=sampling, k=2, epochs=100)
    n_batches = len(batches)
    seen = np.zeros(len(counts))
    for _, owners in batches:
        seen[np.unique(owners)] += 1
    p = np.full(4, 0.25) if sampling == "uniform" else counts / counts.sum()
    expected = _inclusion_probabilities(p, 2)
    if sampling == "uniform":
        np.testing.assert_allclose(expected, 0.5)
    # within 4 standard deviations of a binomial count
    tolerance = 4 * np.sqrt(n_batches * expected * (1 - expected))
    assert np.all(np.abs(seen - n_batches * expected) < tolerance), (seen / n_batches, expected)


def _old_sampler_items(dataset, batch_size, sampling, epochs):
    """The batches as the one-task sampler drew them before tasks_per_batch."""
    task_rows = dataset.observed_rows()
    counts = torch.tensor([len(r) for r in task_rows], dtype=torch.float64)
    if sampling == "uniform":
        counts = (counts > 0).to(torch.float64)
    probs = counts / counts.sum()
    queues = [np.empty(0, dtype=np.intp) for _ in task_rows]
    n_batches = -(-len(dataset) // batch_size)
    items = []
    for _ in range(epochs):
        for task in torch.multinomial(probs, n_batches, replacement=True).tolist():
            rows = task_rows[task]
            size = min(batch_size, rows.shape[0])
            while queues[task].shape[0] < size:
                order = rows[torch.randperm(len(rows)).numpy()]
                queues[task] = np.concatenate([queues[task], order])
            items.append((queues[task][:size], task))
            queues[task] = queues[task][size:]
    return items


@pytest.mark.parametrize("sampling", ["uniform", "proportional"])
def test_one_task_per_batch_reproduces_the_previous_batches(sampling):
    dataset = _dataset([120, 60, 30, 3])
    torch.manual_seed(3)
    expected = _old_sampler_items(dataset, 16, sampling, epochs=3)
    torch.manual_seed(3)
    _, batches = _batches(dataset, batch_size=16, sampling=sampling, k=1, epochs=3)
    assert len(batches) == len(expected)
    for (positions, task), (old_positions, old_task) in zip(batches, expected, strict=True):
        assert task == old_task
        np.testing.assert_array_equal(positions, old_positions)


def _regression_data(n=50, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 3))
    Y = X @ rng.normal(size=(3, 4))
    Y[rng.uniform(size=Y.shape) < 0.3] = np.nan
    return X, Y


def _masks(est):
    return next(cb for _, cb in est.net_.callbacks_ if isinstance(cb, BatchMasks)).masks_


@pytest.mark.parametrize("k, expected", [(2, 2), (10, 4)])
def test_estimator_trains_on_k_tasks_per_batch_clipped_to_the_tasks(k, expected):
    X, Y = _regression_data()
    est = MultiTaskRegressor(task_sampling="uniform", tasks_per_batch=k, batch_size=8,
                             callbacks=[BatchMasks()], **TRAINING).fit(X, Y)
    masks = _masks(est)
    assert len(masks) == 2 * 7  # ceil(50 / 8) batches per epoch
    for mask in masks:
        assert mask.any(axis=0).sum() == expected
        assert (mask.sum(axis=1) == 1).all()  # each row keeps the label of its own task


def test_tasks_per_batch_one_is_the_default_fit():
    X, Y = _regression_data()
    default = MultiTaskRegressor(task_sampling="proportional", **TRAINING).fit(X, Y)
    one = MultiTaskRegressor(task_sampling="proportional", tasks_per_batch=1,
                             **TRAINING).fit(X, Y)
    np.testing.assert_array_equal(default.predict(X), one.predict(X))


def test_k_is_clipped_to_the_batch_size():
    sampler, batches = _batches(_dataset([50, 50, 50]), batch_size=2, sampling="uniform", k=3,
                                epochs=1)
    assert sampler.tasks_per_batch == 2
    assert all(len(set(owners.tolist())) == 2 for _, owners in batches)


def test_joint_sampling_refuses_several_tasks_per_batch():
    X, Y = _regression_data()
    with pytest.raises(ValueError, match="tasks_per_batch=2.*task_sampling='joint'"):
        MultiTaskRegressor(tasks_per_batch=2, **TRAINING).fit(X, Y)
