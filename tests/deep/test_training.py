"""The training step of the private skorch net, checked against hand-written PyTorch."""

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from skorch.callbacks import Callback  # noqa: E402

import skmtl.deep._net  # noqa: E402
from skmtl.deep import MultiTaskClassifier, MultiTaskRegressor, build_module  # noqa: E402
from skmtl.deep._labels import TaskLabels  # noqa: E402
from skmtl.deep._net import MultiTaskDataset, TaskLoss, _linear_head_weight  # noqa: E402
from skmtl.deep.weighting import Weighting  # noqa: E402

# The training defaults these tests were written for (before early stopping and weight decay
# became the defaults): no validation split, Adam without weight decay, no dropout.
OLD_TRAINING = dict(optimizer="adam", weight_decay=0.0, early_stopping=False, dropout=0.0)


class InitialState(Callback):
    """Keeps a copy of the module's initial weights."""

    def on_train_begin(self, net, **kwargs):
        self.state_ = copy.deepcopy(net.module_.state_dict())


def _regression_data(n=12, n_features=4, n_tasks=3, missing=0.3, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, n_features))
    Y = X @ rng.normal(size=(n_features, n_tasks)) + rng.normal(size=n_tasks)
    Y[rng.uniform(size=Y.shape) < missing] = np.nan
    Y[0] = 1.0  # every task observed
    Y[1] = -1.0
    return X, Y


def _callback(estimator, cls):
    """The fitted copy of the user callback of type ``cls``."""
    return next(cb for _, cb in estimator.net_.callbacks_ if isinstance(cb, cls))


def _module_like(estimator, n_features, output_sizes):
    module = build_module(
        estimator.sharing,
        n_features,
        output_sizes,
        hidden_layer_sizes=estimator.hidden_layer_sizes,
        head_layer_sizes=estimator.head_layer_sizes,
        soft_penalty=estimator.soft_penalty,
    )
    module.load_state_dict(_callback(estimator, InitialState).state_)
    return module


# -- the per-task loss ---------------------------------------------------------------------------


def test_task_losses_equal_a_hand_computation():
    # tasks: regression, binary, 3 classes, 1 class; padded width 3
    kinds = ["regression", "binary", "multiclass", "constant"]
    sizes = [1, 1, 3, 1]
    loss = TaskLoss(kinds, sizes)
    out = torch.tensor(
        [
            [[0.5, 0, 0], [2.0, 0, 0], [-1.0, 0, 0]],
            [[0.3, 0, 0], [-0.7, 0, 0], [1.2, 0, 0]],
            [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0], [0.2, 0.2, 0.2]],
            [[9.0, 0, 0], [9.0, 0, 0], [9.0, 0, 0]],
        ]
    )
    values = np.array([[1.0, 1, 1, 0], [1.5, 0, 2, 0], [7.0, 1, 0, 0]])
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 1], [0, 0, 1, 1]], dtype=float)
    values_garbage = values + 100 * (1 - mask)  # the labels are the triples, never the garbage
    y = MultiTaskDataset(np.zeros((3, 1)), TaskLabels.from_wide(values_garbage, mask > 0))[
        (np.arange(3), None)][1]
    sums, counts = loss(out, y)

    def bce(logit, label):
        p = 1 / (1 + np.exp(-logit))
        return -(label * np.log(p) + (1 - label) * np.log(1 - p))

    def ce(logits, label):
        return -(logits[label] - np.log(np.exp(logits).sum()))

    expected_sums = [
        (0.5 - 1) ** 2 + (2.0 - 1.5) ** 2,
        bce(0.3, 1) + bce(-0.7, 0),
        ce(np.array([1.0, 2.0, 0.5]), 1) + ce(np.array([0.2, 0.2, 0.2]), 0),
        0.0,
    ]
    np.testing.assert_allclose(sums.numpy(), expected_sums, rtol=1e-6)
    np.testing.assert_array_equal(counts.numpy(), [2, 2, 2, 0])


def test_net_task_losses_are_means_over_observed_labels():
    X, Y = _regression_data()
    est = MultiTaskRegressor(hidden_layer_sizes=(5,), max_epochs=1, random_state=0).fit(X, Y)
    net = est.net_
    mask = ~np.isnan(Y)
    targets = (np.nan_to_num(Y) - est.target_mean_) / est.target_scale_ * mask
    y = MultiTaskDataset(X, TaskLabels.from_wide(targets, mask))[(np.arange(len(X)), None)][1]
    with torch.no_grad():
        out = net.infer(torch.tensor(X, dtype=torch.float32))
        losses, observed = net.task_losses(out, y)
    pred = out[:, :, 0].T.numpy()
    expected = [np.mean((pred[mask[:, t], t] - targets[mask[:, t], t]) ** 2) for t in range(3)]
    np.testing.assert_allclose(losses.numpy(), expected, rtol=1e-5)
    assert observed.all()


# -- one training step against hand-written PyTorch ----------------------------------------------


@pytest.mark.parametrize("sharing", ["hard", "soft", "independent"])
def test_one_step_equals_a_hand_written_pytorch_step(sharing, device):
    X, Y = _regression_data()
    est = MultiTaskRegressor(
        sharing=sharing, hidden_layer_sizes=(6,), soft_penalty=0.1, max_epochs=1,
        batch_size=len(X), lr=0.05, callbacks=[InitialState()], random_state=0, device=device,
        **OLD_TRAINING,
    ).fit(X, Y)

    module = _module_like(est, X.shape[1], [1, 1, 1])
    optimizer = torch.optim.Adam(module.parameters(), lr=0.05)
    mask = torch.tensor(~np.isnan(Y))
    z = torch.tensor((np.nan_to_num(Y) - est.target_mean_) / est.target_scale_, dtype=torch.float32)
    pred = torch.stack(module(torch.tensor(X, dtype=torch.float32)), dim=1)[:, :, 0]  # (n, T)
    losses = [((pred[:, t] - z[:, t])[mask[:, t]] ** 2).mean() for t in range(3)]
    total = sum(losses) + module.penalty()
    optimizer.zero_grad()
    total.backward()
    optimizer.step()

    trained = est.net_.module_.state_dict()
    for name, value in module.state_dict().items():
        np.testing.assert_allclose(trained[name].cpu().numpy(), value.numpy(), atol=1e-6,
                                   err_msg=name)
    assert est.net_.history[-1, "train_loss"] == pytest.approx(total.item(), rel=1e-5)


def test_one_classification_step_equals_a_hand_written_step():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(10, 3))
    Y = np.column_stack([X[:, 0] > 0, np.digitize(X[:, 1], [-0.5, 0.5])]).astype(float)
    Y[[2, 5], 1] = np.nan
    est = MultiTaskClassifier(
        hidden_layer_sizes=(5,), max_epochs=1, batch_size=len(X), lr=0.05,
        callbacks=[InitialState()], random_state=0, **OLD_TRAINING,
    ).fit(X, Y)
    module = _module_like(est, 3, [1, 3])
    optimizer = torch.optim.Adam(module.parameters(), lr=0.05)
    out = module(torch.tensor(X, dtype=torch.float32))
    observed = ~np.isnan(Y[:, 1])
    binary = torch.nn.functional.binary_cross_entropy_with_logits(
        out[0][:, 0], torch.tensor(Y[:, 0], dtype=torch.float32)
    )
    multi = torch.nn.functional.cross_entropy(
        out[1][observed], torch.tensor(Y[observed, 1], dtype=torch.long)
    )
    optimizer.zero_grad()
    (binary + multi).backward()
    optimizer.step()
    trained = est.net_.module_.state_dict()
    for name, value in module.state_dict().items():
        np.testing.assert_allclose(trained[name].numpy(), value.numpy(), atol=1e-6, err_msg=name)


# -- one backward pass through the trunk --------------------------------------------------------


class TrunkBackwardCounter(Callback):
    """Counts the backward passes through the trunk in every training batch."""

    def on_train_begin(self, net, **kwargs):
        self.per_batch_ = []
        self._count = 0

        def hook(grad):
            self._count += 1

        # the trunk's first layer: its gradient is computed once per backward through the trunk
        net.module_.trunk[0].weight.register_hook(hook)

    def on_batch_begin(self, net, training=False, **kwargs):
        self._count = 0

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            self.per_batch_.append(self._count)


@pytest.mark.parametrize("head_layer_sizes", [(), (4,)])
def test_gradnorm_at_eight_tasks_takes_one_backward_through_the_trunk(head_layer_sizes):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 5))
    Y = X @ rng.normal(size=(5, 8))
    Y[rng.uniform(size=Y.shape) < 0.3] = np.nan
    Y[0] = 0.0
    est = MultiTaskRegressor(
        weighting="gradnorm", hidden_layer_sizes=(8, 8), head_layer_sizes=head_layer_sizes,
        max_epochs=2, batch_size=10, callbacks=[TrunkBackwardCounter()], random_state=0,
    ).fit(X, Y)
    counts = _callback(est, TrunkBackwardCounter).per_batch_
    assert counts == [1] * 8  # 2 epochs x 4 batches, one trunk backward each
    assert not np.allclose(est.task_weights_history_[-1], 1.0)  # gradnorm moved the weights


# -- per-task gradients on the shared representation ---------------------------------------------


def _brute_force_gradients(est, X, Y):
    """dL_t / d rep with one autograd.grad per task, at the initial weights."""
    T = Y.shape[1]
    module = build_module(
        est.sharing, X.shape[1], [1] * T, hidden_layer_sizes=est.hidden_layer_sizes,
        head_layer_sizes=est.head_layer_sizes,
    )
    module.load_state_dict(_callback(est, InitialState).state_)
    mask = torch.tensor(~np.isnan(Y))
    z = torch.tensor((np.nan_to_num(Y) - est.target_mean_) / est.target_scale_, dtype=torch.float32)
    rep = module.shared(torch.tensor(X, dtype=torch.float32))
    out = module.heads(rep.unsqueeze(0).expand(T, -1, -1))
    grads = []
    for t in range(T):
        loss = ((out[t][:, 0] - z[:, t])[mask[:, t]] ** 2).mean()
        (g,) = torch.autograd.grad(loss, rep, retain_graph=True)
        grads.append(g.flatten().double())
    return torch.stack(grads)


class NormSpy(Weighting):
    """Equal weighting that records the gradient norms it is given."""

    requires_grad_norms = True

    def reset(self, n_tasks, *, n_observed, task_type, device):
        self.norms_ = []
        return super().reset(n_tasks, n_observed=n_observed, task_type=task_type, device=device)

    def after_backward(self, losses, observed, grad_norms):
        self.norms_.append(grad_norms.detach().cpu().numpy().copy())


@pytest.mark.parametrize("head_layer_sizes", [(), (3,)])
def test_affinity_and_norms_equal_brute_force_per_task_gradients(head_layer_sizes):
    X, Y = _regression_data(n=9, n_tasks=4, missing=0.0)
    est = MultiTaskRegressor(
        hidden_layer_sizes=(5,), head_layer_sizes=head_layer_sizes, weighting=NormSpy(),
        max_epochs=1, batch_size=len(X), callbacks=[InitialState()], random_state=0,
        **OLD_TRAINING,
    ).fit(X, Y)
    G = _brute_force_gradients(est, X, Y)
    norms = G.norm(dim=1)
    cosine = (G @ G.T / torch.outer(norms, norms)).numpy()
    affinity = est.gradient_affinity_
    np.testing.assert_allclose(affinity, cosine, atol=1e-5)
    np.testing.assert_array_equal(affinity, affinity.T)
    np.testing.assert_array_equal(np.diag(affinity), 1.0)
    np.testing.assert_allclose(est.net_.weighting_.norms_[0], norms.numpy(), rtol=1e-5)


def test_affinity_is_nan_for_pairs_never_observed_in_the_same_batch():
    # one task per batch: no pair of tasks ever shares a batch
    X, Y = _regression_data(n=20, n_tasks=3, missing=0.0)
    est = MultiTaskRegressor(task_sampling="uniform", hidden_layer_sizes=(4,), max_epochs=3,
                             batch_size=5, random_state=0).fit(X, Y)
    A = est.gradient_affinity_
    assert np.isnan(A[~np.eye(3, dtype=bool)]).all()
    np.testing.assert_array_equal(np.diag(A), 1.0)


@pytest.mark.parametrize("sharing", ["independent", "cross_stitch", "conditioned"])
def test_affinity_is_nan_off_the_diagonal_without_a_shared_representation(sharing):
    X, Y = _regression_data()
    est = MultiTaskRegressor(sharing=sharing, hidden_layer_sizes=(4,), max_epochs=1,
                             random_state=0).fit(X, Y)
    A = est.gradient_affinity_
    assert np.isnan(A[~np.eye(3, dtype=bool)]).all()
    np.testing.assert_array_equal(np.diag(A), 1.0)


def test_uncertainty_log_variances_are_trained_with_the_network():
    X, Y = _regression_data(n=30)
    est = MultiTaskRegressor(weighting="uncertainty", hidden_layer_sizes=(4,), max_epochs=3,
                             lr=0.05, batch_size=10, random_state=0).fit(X, Y)
    log_vars = est.net_.weighting_.log_vars_.detach().numpy()
    assert np.all(log_vars != 0)
    optimized = {id(p) for group in est.net_.optimizer_.param_groups for p in group["params"]}
    assert id(est.net_.weighting_.log_vars_) in optimized
    np.testing.assert_allclose(est.task_weights_history_[-1], 0.5 * np.exp(-log_vars))


# -- task sampling --------------------------------------------------------------------------------


def label_mask(batch, n_tasks):
    """The (B, T) mask of the labels a batch carries as triples."""
    X, y = batch
    mask = np.zeros((X.shape[0], n_tasks), dtype=bool)
    mask[y["row"].numpy(), y["task"].numpy()] = True
    return mask


class BatchMasks(Callback):
    def on_train_begin(self, net, **kwargs):
        self.masks_ = []

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if training:
            self.masks_.append(label_mask(batch, net.module_.n_tasks))


@pytest.mark.parametrize("sampling", ["uniform", "proportional"])
def test_task_sampling_draws_one_task_per_batch(sampling):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(50, 3))
    Y = X @ rng.normal(size=(3, 3))
    Y[rng.uniform(size=Y.shape) < 0.4] = np.nan
    est = MultiTaskRegressor(task_sampling=sampling, hidden_layer_sizes=(4,), max_epochs=2,
                             batch_size=8, callbacks=[BatchMasks()], random_state=0,
                             **OLD_TRAINING).fit(X, Y)
    masks = _callback(est, BatchMasks).masks_
    assert len(masks) == 2 * 7  # ceil(50 / 8) batches per epoch, as with joint sampling
    for mask in masks:
        tasks = np.flatnonzero(mask.any(axis=0))
        assert len(tasks) == 1
        assert mask[:, tasks[0]].all()  # only rows observed for the drawn task


def test_proportional_sampling_follows_label_counts():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(400, 2))
    Y = np.column_stack([X[:, 0], X[:, 1]])
    Y[40:, 1] = np.nan  # task 1 has 40 labels, task 0 has 400
    est = MultiTaskRegressor(task_sampling="proportional", hidden_layer_sizes=(2,),
                             max_epochs=5, batch_size=4, lr=1e-4, callbacks=[BatchMasks()],
                             random_state=0).fit(X, Y)
    masks = _callback(est, BatchMasks).masks_
    share = np.mean([mask[:, 1].any() for mask in masks])
    assert 0.05 < share < 0.14  # expected 40 / 440 = 0.09 over 500 batches


@pytest.mark.parametrize("n_classes", [2, 3])
def test_norms_only_equal_the_diagonal_of_the_full_gram(n_classes):
    # GradNorm without the affinity asks for the norms only, computed per task
    rng = np.random.RandomState(0)
    X = rng.normal(size=(30, 4))
    Y = rng.randint(n_classes, size=(30, 5)).astype(float)
    Y[rng.uniform(size=Y.shape) < 0.3] = np.nan
    Y[:n_classes] = np.arange(n_classes)[:, None]
    est = MultiTaskClassifier(hidden_layer_sizes=(6,), max_epochs=1, random_state=0,
                              **OLD_TRAINING).fit(X, Y)
    net, module = est.net_, est.net_.module_
    targets = np.nan_to_num(Y).astype(np.float32)
    dataset = MultiTaskDataset(X, TaskLabels.from_wide(targets, ~np.isnan(Y)))
    Xi, yi = dataset[(np.arange(30), None)]
    out = module.heads_padded(module.shared(Xi))
    sums, counts = net.criterion_(out, yi)
    losses = sums / counts.clamp_min(1)
    weight = _linear_head_weight(module)
    grads = net._representation_gradients(losses, out, None, weight)
    gram, norms = grads.gram(), grads.norms()
    assert norms.shape == (5,)
    np.testing.assert_allclose(norms.numpy(), gram.diagonal().sqrt().numpy(), rtol=1e-5)
    # and both equal autograd's per-task gradients on the representation
    rep = module.shared(Xi)
    out = module.heads_padded(rep)
    sums, counts = net.criterion_(out, yi)
    losses = sums / counts.clamp_min(1)
    G = torch.stack([torch.autograd.grad(losses[t], rep, retain_graph=True)[0].flatten()
                     for t in range(5)])
    np.testing.assert_allclose(gram.numpy(), (G @ G.T).detach().numpy(), rtol=1e-4, atol=1e-8)


def test_affinity_of_many_tasks_is_measured_on_the_first_batch_of_each_epoch(monkeypatch):
    X, Y = _regression_data(n=40, n_tasks=3, missing=0.0)
    fit = dict(hidden_layer_sizes=(4,), max_epochs=2, batch_size=10, random_state=0,
               **OLD_TRAINING)
    every = MultiTaskRegressor(**fit).fit(X, Y)
    np.testing.assert_array_equal(every.net_.affinity_count_.numpy(), 8.0)  # 2 epochs x 4
    monkeypatch.setattr(skmtl.deep._net, "AFFINITY_EVERY_BATCH_MAX_TASKS", 2)
    first = MultiTaskRegressor(**fit).fit(X, Y)
    np.testing.assert_array_equal(first.net_.affinity_count_.numpy(), 2.0)  # 2 first batches
    assert np.all(np.isfinite(first.gradient_affinity_))


def test_fine_tune_is_a_phase_of_the_net_on_the_given_tasks_only():
    """net.fine_tune: fixed weights on the kept tasks, their rows only, the trunk frozen."""
    X, Y = _regression_data(n=40)
    est = MultiTaskRegressor(hidden_layer_sizes=(8,), max_epochs=2, batch_size=8, lr=1e-2,
                             random_state=0, **OLD_TRAINING).fit(X, Y)
    net = est.net_
    mask = ~np.isnan(Y)
    targets = np.where(mask, Y, 0.0).astype(np.float32)
    train = MultiTaskDataset(X, TaskLabels.from_wide(targets, mask))
    trunk = copy.deepcopy(net.module_.trunk.state_dict())
    heads = copy.deepcopy(net.module_.task_heads.state_dict())
    assert net.fine_tune(train, tasks=[1], epochs=3, freeze_shared=True) is net
    assert len(net.history) == 5
    np.testing.assert_array_equal(net.weighting_.current_weights(), [0.0, 1.0, 0.0])
    for row in net.history[2:]:
        assert row["task_weights"] == [0.0, 1.0, 0.0]
        assert np.isnan(row["train_loss_task_0"]) and np.isnan(row["train_loss_task_2"])
        assert np.isfinite(row["train_loss_task_1"])
    for name, value in net.module_.trunk.state_dict().items():
        torch.testing.assert_close(value, trunk[name], rtol=0, atol=0)
    moved = net.module_.task_heads.state_dict()
    assert any(not torch.equal(moved[name], heads[name]) for name in heads)
    assert est.net_.weighting is not net.weighting_  # the fit's weighting is left as it was
    no_label = np.zeros_like(mask)
    no_label[:, 0] = mask[:, 0]
    with pytest.raises(ValueError, match="Task 1 has no label .* nothing to fine-tune on"):
        net.fine_tune(MultiTaskDataset(X, TaskLabels.from_wide(targets, no_label)), tasks=[1],
                      epochs=1)


@pytest.mark.parametrize("estimator_class", [MultiTaskRegressor, MultiTaskClassifier])
@pytest.mark.parametrize("named", [False, True])
def test_skorch_scoring_callbacks_are_refused_naming_what_to_use_instead(estimator_class,
                                                                         named):
    """skorch's scoring callbacks read a y array the batches do not carry: they crashed deep
    in skorch ("zero-dimensional arrays cannot be concatenated"); now fit says so at once."""
    from skorch.callbacks import BatchScoring, EpochScoring, LRScheduler

    X, Y = _regression_data(n=20)
    if estimator_class is MultiTaskClassifier:
        Y = np.where(np.isnan(Y), np.nan, (Y > 0).astype(float))
    for callback in (EpochScoring("r2", lower_is_better=False), BatchScoring("accuracy")):
        model = estimator_class(hidden_layer_sizes=(4,), max_epochs=1, random_state=0,
                                callbacks=[("score", callback) if named else callback])
        with pytest.raises(ValueError, match=(
                f"callbacks: skorch's {type(callback).__name__} cannot score this network: "
                r".*valid_loss_task_t\); score the fitted estimator with "
                "skmtl.metrics.make_multitask_scorer.")):
            model.fit(X, Y)
    # the callbacks that read the losses, not y, still work
    model = estimator_class(hidden_layer_sizes=(4,), max_epochs=2, random_state=0,
                            callbacks=[LRScheduler(policy="StepLR", step_size=1, gamma=0.5)])
    model.fit(X, Y)
    assert model.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(model.lr * 0.25)
