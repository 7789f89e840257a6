"""AdaptiveModule: the tree built from the affinity, the split, the forward pass, the storage."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from skmtl.deep._sharing_adaptive import AdaptiveModule, branch_partitions  # noqa: E402
from skmtl.deep.modules import HardSharingModule  # noqa: E402


def blocks(sizes, within=0.9, across=-0.3):
    """Affinity of tasks in consecutive blocks: ``within`` inside a block, ``across`` else."""
    labels = np.repeat(np.arange(len(sizes)), sizes)
    affinity = np.where(labels[:, None] == labels[None, :], within, across).astype(float)
    np.fill_diagonal(affinity, 1.0)
    return affinity


def perturb(module, scale=0.3):
    """Add noise to every parameter, so that copied branches differ."""
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(scale * torch.randn_like(parameter))


def X_batch(n_features=4, n=7):
    return torch.randn(n, n_features)


# --------------------------------------------------------------------------------------------
# The tree from the affinity
# --------------------------------------------------------------------------------------------


def test_two_blocks_two_layers():
    net = AdaptiveModule(4, [1] * 6, hidden_layer_sizes=(5, 5))
    net.split(blocks([3, 3]))
    assert net.branches() == [[[0, 1, 2, 3, 4, 5]], [[0, 1, 2], [3, 4, 5]]]
    assert net.branch_of.tolist() == [[0] * 6, [0, 0, 0, 3, 3, 3]]
    assert not net.shares_representation
    assert bool(net.split_done)


def test_three_blocks_capped_by_max_branches():
    affinity = blocks([2, 2, 2])
    affinity[np.ix_([0, 1], [2, 3])] = affinity[np.ix_([2, 3], [0, 1])] = -0.2  # A, B closest
    net = AdaptiveModule(4, [1] * 6, hidden_layer_sizes=(5, 5, 5), max_branches=2)
    net.split(affinity)
    assert net.branches() == [[[0, 1, 2, 3, 4, 5]]] * 2 + [[[0, 1, 2, 3], [4, 5]]]
    # without the cap: 3 groups on top, ceil(3 / 2) = 2 below, then 1
    assert branch_partitions(affinity, 3) == [
        [[0, 1, 2, 3, 4, 5]], [[0, 1, 2, 3], [4, 5]], [[0, 1], [2, 3], [4, 5]]
    ]


def test_positive_cosine_merges_conflict_does_not():
    # average linkage: {0, 1} at distance 0.2; {0, 1} vs 2 at 1 - mean(0.3, -0.1) = 0.9 < 1
    affinity = np.array([[1.0, 0.8, 0.3], [0.8, 1.0, -0.1], [0.3, -0.1, 1.0]])
    assert branch_partitions(affinity, 1) == [[[0, 1, 2]]]
    affinity[0, 2] = affinity[2, 0] = 0.05  # mean cosine -0.025: in conflict, kept apart
    assert branch_partitions(affinity, 1) == [[[0, 1], [2]]]


def test_nan_counts_as_zero_and_halving_down_the_layers():
    affinity = np.full((5, 5), np.nan)
    np.fill_diagonal(affinity, 1.0)
    # never measured: distance 1 everywhere, nothing merged; 5 -> 3 -> 2 -> 1
    partitions = branch_partitions(affinity, 4)
    assert [len(groups) for groups in partitions] == [1, 2, 3, 5]
    for lower, upper in zip(partitions[:-1], partitions[1:], strict=True):  # nested
        for group in upper:
            assert any(set(group) <= set(parent) for parent in lower)
    assert branch_partitions(affinity, 2, max_branches=1) == [[[0, 1, 2, 3, 4]]] * 2


def test_affinity_symmetrised_and_one_task():
    affinity = np.array([[1.0, 0.5], [-0.9, 1.0]])  # mean cosine -0.2: apart
    assert branch_partitions(affinity, 1) == [[[0], [1]]]
    net = AdaptiveModule(3, [2], hidden_layer_sizes=(4,))
    net.split(np.ones((1, 1)))
    assert net.branches() == [[[0]]] and net.shares_representation


# --------------------------------------------------------------------------------------------
# The forward pass
# --------------------------------------------------------------------------------------------


def test_thin_network_is_hard_sharing_with_the_same_weights():
    net = AdaptiveModule(4, [1, 3, 2], hidden_layer_sizes=(6, 5), head_layer_sizes=(3,))
    hard = HardSharingModule(4, [1, 3, 2], hidden_layer_sizes=(6, 5), head_layer_sizes=(3,))
    with torch.no_grad():
        for layer, linear in zip(net.layers, hard.trunk[0::3], strict=True):
            linear.weight.copy_(layer.weight[0].T)
            linear.bias.copy_(layer.bias[0])
    hard.task_heads.load_state_dict(net.task_heads.state_dict())
    X = X_batch()
    assert net.shares_representation
    assert net.shared(X).shape == (7, 5)
    torch.testing.assert_close(net.shared(X), hard.shared(X))
    torch.testing.assert_close(net.forward_padded(X), hard.forward_padded(X))
    torch.testing.assert_close(net.forward_shared(X), hard.forward_padded(X))


def test_split_keeps_the_function():
    net = AdaptiveModule(4, [1, 2, 1, 1, 3, 1], hidden_layer_sizes=(6, 5, 4))
    X = X_batch()
    before = net.forward_padded(X).detach()
    net.split(blocks([1, 2, 3], across=-0.5))
    assert [len(groups) for groups in net.branches()] == [1, 2, 3]
    rep = net.shared(X)
    assert rep.shape == (6, 7, 4)
    torch.testing.assert_close(net.forward_padded(X), before)
    torch.testing.assert_close(net.forward_shared(X), before)


def test_hand_computed_forward_of_a_split_tree():
    affinity = np.array([[1.0, -0.1, -0.8], [-0.1, 1.0, -0.8], [-0.8, -0.8, 1.0]])
    net = AdaptiveModule(4, [1, 2, 1], hidden_layer_sizes=(5, 3), activation="tanh")
    net.split(affinity)
    assert net.branches() == [[[0, 1], [2]], [[0], [1], [2]]]
    perturb(net)
    W1, b1 = net.layers[0].weight, net.layers[0].bias
    W2, b2 = net.layers[1].weight, net.layers[1].bias
    with torch.no_grad():  # unused slots are never read
        W1[1] = float("nan")
        b1[1] = float("nan")
    X = X_batch()
    h_01 = torch.tanh(X @ W1[0] + b1[0])  # bottom branch of tasks 0 and 1 (slot 0)
    h_2 = torch.tanh(X @ W1[2] + b1[2])  # bottom branch of task 2 (slot 2)
    r = [torch.tanh(h_01 @ W2[0] + b2[0]), torch.tanh(h_01 @ W2[1] + b2[1]),
         torch.tanh(h_2 @ W2[2] + b2[2])]
    Wo, bo = net.task_heads.output.weight, net.task_heads.output.bias
    outputs = net(X)
    for t, size in enumerate([1, 2, 1]):
        torch.testing.assert_close(net.shared(X)[t], r[t])
        torch.testing.assert_close(outputs[t], (r[t] @ Wo[t] + bo[t])[:, :size])
    # forward_shared (an unseen task's outputs): every head on its own path, as forward; it
    # was every head on slot 0's path, task 0's representation, which heads 1 and 2 never read
    shared = net.forward_shared(X)
    for t, size in enumerate([1, 2, 1]):
        torch.testing.assert_close(shared[t, :, :size], (r[t] @ Wo[t] + bo[t])[:, :size])
    torch.testing.assert_close(shared, net.heads_padded(torch.stack(r)))


def test_gradient_of_one_task_reaches_only_its_branch():
    net = AdaptiveModule(4, [1] * 6, hidden_layer_sizes=(5, 5))
    net.split(blocks([3, 3]))
    perturb(net)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    before = [layer.weight.detach().clone() for layer in net.layers]
    loss = net(X_batch())[0].square().mean()  # task 0 only
    loss.backward()
    top = net.layers[1].weight.grad
    assert top[0].abs().sum() > 0
    assert torch.all(top[1:] == 0)  # task 3's branch (slot 3) and the unused slots
    assert torch.all(net.layers[0].weight.grad[1:] == 0)
    optimizer.step()
    changed = [(layer.weight.detach() != old).flatten(1).any(1).tolist()
               for layer, old in zip(net.layers, before, strict=True)]
    assert changed == [[True] + [False] * 5, [True] + [False] * 5]


def test_dropout_and_train_mode_follow_the_tree():
    net = AdaptiveModule(4, [1, 1], hidden_layer_sizes=(50,), dropout=0.5)
    net.split(blocks([1, 1]))
    net.eval()
    X = X_batch()
    expected = torch.relu(X @ net.layers[0].weight[1] + net.layers[0].bias[1])
    torch.testing.assert_close(net.shared(X)[1], expected)
    net.train()
    zeros = (net.shared(X)[1] == 0) & (expected != 0)
    assert zeros.any()  # dropout is active on the branches in train mode


# --------------------------------------------------------------------------------------------
# The epoch hook and the storage
# --------------------------------------------------------------------------------------------


def test_end_epoch_splits_once_at_split_after():
    net = AdaptiveModule(4, [1] * 4, hidden_layer_sizes=(5, 5), split_after=2)
    calls = []

    def affinity():
        calls.append(1)
        return blocks([2, 2])

    net.end_epoch(1, affinity)
    assert net.shares_representation and not bool(net.split_done) and not calls
    net.end_epoch(2, affinity)
    assert net.branches() == [[[0, 1, 2, 3]], [[0, 1], [2, 3]]] and len(calls) == 1
    net.end_epoch(3, lambda: blocks([1, 1, 1, 1]))
    assert net.branches() == [[[0, 1, 2, 3]], [[0, 1], [2, 3]]]
    with pytest.raises(RuntimeError, match="already split"):
        net.split(blocks([4]))


def test_state_dict_restores_the_tree():
    net = AdaptiveModule(4, [1, 2, 1, 1], hidden_layer_sizes=(5, 5))
    thin_state = {k: v.clone() for k, v in net.state_dict().items()}
    X = X_batch()
    thin_out = net.forward_padded(X).detach()
    net.split(blocks([1, 3], across=-0.5))
    perturb(net)
    split_out = net.forward_padded(X).detach()

    fresh = AdaptiveModule(4, [1, 2, 1, 1], hidden_layer_sizes=(5, 5))
    assert fresh.shares_representation  # builds (caches) the thin tree first
    fresh.load_state_dict(net.state_dict())
    assert fresh.branches() == net.branches() == [[[0, 1, 2, 3]], [[0], [1, 2, 3]]]
    assert not fresh.shares_representation and bool(fresh.split_done)
    torch.testing.assert_close(fresh.forward_padded(X), split_out)

    # early stopping restoring an epoch before the split: thin again, and able to split again
    net.load_state_dict(thin_state)
    assert net.shares_representation and not bool(net.split_done)
    torch.testing.assert_close(net.forward_padded(X), thin_out)
    net.end_epoch(1, lambda: blocks([2, 2]))
    assert net.branches() == [[[0, 1, 2, 3]], [[0, 1], [2, 3]]]
    torch.testing.assert_close(net.forward_padded(X), thin_out)


def test_training_loop_with_the_split():
    """A short loop as the net runs it: loss, backward, step, end_epoch; then a reload."""
    net = AdaptiveModule(3, [1, 1, 1], hidden_layer_sizes=(6, 6), split_after=1)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01, weight_decay=1e-3)
    X = torch.randn(24, 3)
    Y = torch.stack([X[:, 0], X[:, 0], -X[:, 0]])
    for epoch in (1, 2):
        optimizer.zero_grad()
        out = net.heads_padded(net.shared(X))[:, :, 0]
        (out - Y).square().mean(1).sum().add(net.penalty()).backward()
        optimizer.step()
        with torch.no_grad():
            net.end_epoch(epoch, lambda: blocks([2, 1], within=0.8, across=-0.6))
        if epoch == 1:
            state = {k: v.clone() for k, v in net.state_dict().items()}
    assert net.branches() == [[[0, 1, 2]], [[0, 1], [2]]]
    assert net.shared(X).shape == (3, 24, 6)
    net.load_state_dict(state)
    assert bool(net.split_done) and net.branches() == [[[0, 1, 2]], [[0, 1], [2]]]


def test_moving_the_module_rebuilds_the_index_tensors():
    net = AdaptiveModule(4, [1, 1, 1], hidden_layer_sizes=(5,))
    net.split(blocks([1, 1, 1]))
    X = X_batch()
    expected = net.forward_padded(X).detach()
    copy = net.to(torch.float32).to("cpu")
    torch.testing.assert_close(copy.forward_padded(X), expected)
    import copy as copy_module

    clone = copy_module.deepcopy(net)
    torch.testing.assert_close(clone.forward_padded(X), expected)
    assert clone.branches() == [[[0], [1], [2]]]


def test_attributes_and_validation():
    net = AdaptiveModule(4, [1, 1], hidden_layer_sizes=(5, 3))
    assert net.has_shared_part
    # thin: the top layer, as an nn.Linear view of slot 0 owning no parameter
    top = net.last_shared_layer
    assert isinstance(top, torch.nn.Linear) and list(top.parameters()) == []
    assert torch.equal(top.weight, net.layers[1].weight[0].T)
    assert torch.equal(top.bias, net.layers[1].bias[0])
    X = X_batch(4)
    first = torch.relu(X @ net.layers[0].weight[0] + net.layers[0].bias[0])
    pre = first @ net.layers[1].weight[0] + net.layers[1].bias[0]
    seen = {}
    hook = top.register_forward_hook(
        lambda layer, inputs, output: seen.update(a=inputs[0], z=output)
    )
    rep = net.shared(X)
    hook.remove()
    torch.testing.assert_close(seen["a"], first)  # the forward pass goes through the view
    torch.testing.assert_close(seen["z"], pre)
    torch.testing.assert_close(rep, torch.relu(pre))
    (grad,) = torch.autograd.grad(rep.sum(), net.layers[1].weight)
    assert torch.count_nonzero(grad[0]) > 0 and torch.count_nonzero(grad[1]) == 0
    branched = AdaptiveModule(4, [1, 1], hidden_layer_sizes=(5, 3))
    branched.split(np.array([[1.0, -0.5], [-0.5, 1.0]]))
    assert branched.last_shared_layer is None  # the top layer has branches
    assert net.representation_size == 3
    names = dict(net.named_parameters())
    assert names["layers.0.weight"].shape == (2, 4, 5)
    assert names["layers.1.bias"].shape == (2, 3)
    with pytest.raises(ValueError, match="split_after must be a positive integer, got 0"):
        AdaptiveModule(4, [1, 1], split_after=0)
    with pytest.raises(ValueError, match="max_branches must be a positive integer, got 0"):
        AdaptiveModule(4, [1, 1], max_branches=0)
    with pytest.raises(ValueError, match="needs at least one hidden layer"):
        AdaptiveModule(4, [1, 1], hidden_layer_sizes=())
    with pytest.raises(ValueError, match=r"affinity must have shape \(2, 2\)"):
        net.split(np.ones((3, 3)))
    with pytest.raises(ValueError, match="not a tree"):
        net.branch_of.copy_(torch.tensor([[0, 1], [0, 0]]))
        net.shared(X_batch())


def test_split_affinity_is_kept():
    net = AdaptiveModule(4, [1] * 4, hidden_layer_sizes=(5, 5))
    assert torch.all(net.split_affinity == 0)
    affinity = blocks([2, 2])
    affinity[0, 3] = np.nan  # counted as 0
    affinity[3, 0] = -0.4
    net.split(affinity)
    expected = blocks([2, 2])
    expected[0, 3] = expected[3, 0] = -0.2  # symmetrised
    np.testing.assert_allclose(net.split_affinity.numpy(), expected, rtol=1e-6)
    assert branch_partitions(net.split_affinity.numpy(), 2) == net.branches()


def test_estimator_builds_the_tree_from_the_measured_affinity():
    pd = pytest.importorskip("pandas")
    from skmtl.deep import MultiTaskRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    Y = pd.DataFrame(np.c_[X[:, 0], X[:, 0], -X[:, 0], -X[:, 0]], columns=list("abcd"))
    est = MultiTaskRegressor(sharing="adaptive", hidden_layer_sizes=(6, 6), max_epochs=2,
                             batch_size=20, random_state=0).fit(X, Y)
    module = est.net_.module_
    assert bool(module.split_done)
    measured = module.split_affinity.numpy()
    off_diagonal = measured[~np.eye(4, dtype=bool)]
    assert np.all(off_diagonal != 0)  # measured on the thin network during epoch 1
    assert module.branches() == branch_partitions(measured, 2)
    names = list("abcd")
    assert est.branches_ == [[[names[t] for t in group] for group in layer]
                             for layer in module.branches()]
    assert np.isfinite(est.predict(X)).all()


def test_estimator_warns_where_the_split_reads_pairs_never_measured():
    from skmtl.deep import MultiTaskRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    Y = np.c_[X[:, 0], X[:, 0], -X[:, 1], -X[:, 1]]
    # one task per batch: no pair of tasks is ever measured, the tree follows tie-breaking
    est = MultiTaskRegressor(sharing="adaptive", task_sampling="uniform", max_epochs=2,
                             batch_size=20, random_state=0)
    with pytest.warns(UserWarning, match=r"6 of 6 pairs of tasks were never measured "
                      r"\(e\.g\. \(0, 1\), .*tasks_per_batch=1 puts one task in each batch"):
        est.fit(X, Y)
    assert est.branches_[0] == [[0], [1], [2], [3]]
    # every pair measured in the joint batches: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        est.set_params(task_sampling="joint").fit(X, Y)
    assert np.isfinite(est.net_.module_.split_affinity.numpy()).all()


def test_the_warning_names_a_single_class_task_as_the_cause():
    """A task of one class in a multiclass problem has no logit, so no gradient: its pairs
    are never measured although the joint batches hold its labels; the warning says so, and
    not that the batches lacked labels."""
    from skmtl.deep import MultiTaskClassifier

    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 5))
    Y = np.empty((200, 3), dtype=object)
    Y[:, 0] = np.where(X[:, 0] > 0, "yes", "no")
    Y[:, 1] = "yes"
    Y[:, 2] = np.array(["low", "mid", "high"])[np.digitize(X[:, 2], [-0.5, 0.5])]
    est = MultiTaskClassifier(sharing="adaptive", hidden_layer_sizes=(8, 8), max_epochs=4,
                              random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(X, Y)
    messages = [str(w.message) for w in caught if "never measured" in str(w.message)]
    assert len(messages) == 1
    assert ("2 of 3 pairs of tasks were never measured (e.g. (0, 1), (1, 2)): task(s) 1 have "
            "a single class, hence no logit and no gradient to compare." in messages[0])
    assert "no batch" not in messages[0]
    affinity = est.net_.module_.split_affinity.numpy()
    assert np.isfinite(affinity[0, 2]) and affinity[0, 2] != 0  # the pair of two-class tasks


def test_split_backward_through_heads_then_trunk_equals_plain_backward():
    """The training step's recipe (R a leaf, heads, then the tree) gives the plain gradients."""
    net = AdaptiveModule(4, [1, 3, 1], hidden_layer_sizes=(5, 4), head_layer_sizes=(3,))
    weights = torch.tensor([0.5, 2.0, 1.0])
    X = X_batch()

    def loss_of(outputs):
        return sum(w * out.pow(2).mean() for w, out in zip(weights, outputs, strict=True))

    for split in (False, True):
        if split:
            net.split(blocks([2, 1]))
            perturb(net)
        net.zero_grad()
        loss_of(net(X)).backward()
        reference = {name: p.grad.clone() for name, p in net.named_parameters()}
        net.zero_grad()
        rep = net.shared(X)
        shared = net.shares_representation
        assert shared != split
        R = (rep.detach().expand(3, -1, -1) if shared else rep.detach()).requires_grad_(True)
        loss_of(net.heads(R)).backward()
        rep.backward(R.grad.sum(0) if shared else R.grad)
        for name, p in net.named_parameters():
            torch.testing.assert_close(p.grad, reference[name], rtol=1e-5, atol=1e-6, msg=name)


def test_float32_and_seeded_under_another_default_dtype():
    torch.manual_seed(3)
    first = AdaptiveModule(4, [1, 1], hidden_layer_sizes=(5,)).state_dict()
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(3)
        second = AdaptiveModule(4, [1, 1], hidden_layer_sizes=(5,)).state_dict()
    finally:
        torch.set_default_dtype(previous)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert second["split_affinity"].dtype == torch.float32
    floats = [v for k, v in second.items() if k.endswith(("weight", "bias"))]
    assert all(v.dtype == torch.float32 for v in floats)
