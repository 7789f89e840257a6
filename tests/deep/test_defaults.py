"""Issue 8 for the deep estimators: weight decay, early stopping on a stratified validation
split, safe target standardisation, divergence errors, unknown tasks and one-class tasks."""

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from skorch.callbacks import Callback  # noqa: E402

from skmtl import UnknownTaskError  # noqa: E402
from skmtl.deep import FocusedTaskRegressor, MultiTaskClassifier, MultiTaskRegressor  # noqa: E402
from skmtl.deep._base import stratified_validation_split  # noqa: E402
from skmtl.deep._labels import TaskLabels  # noqa: E402

SMALL = dict(hidden_layer_sizes=(6,), max_epochs=3, batch_size=16, lr=1e-2)


def regression_data(n=60, n_features=4, n_tasks=3, missing=0.25, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, n_features))
    Y = X @ rng.normal(size=(n_features, n_tasks)) + 0.1 * rng.normal(size=(n, n_tasks))
    Y[rng.uniform(size=Y.shape) < missing] = np.nan
    Y[:2] = [[0.5] * n_tasks, [-0.5] * n_tasks]  # every task observed
    return X, Y


def binary_data(n=60, n_tasks=3, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 4))
    Y = (X @ rng.normal(size=(4, n_tasks)) > 0).astype(float)
    Y[rng.uniform(size=Y.shape) < 0.2] = np.nan
    Y[:2] = [[0.0] * n_tasks, [1.0] * n_tasks]
    return X, Y


class InitialState(Callback):
    def on_train_begin(self, net, **kwargs):
        self.state_ = copy.deepcopy(net.module_.state_dict())


class EpochStates(Callback):
    """The module's weights and the validation loss at the end of every epoch."""

    def on_train_begin(self, net, **kwargs):
        self.states_, self.losses_ = [], []

    def on_epoch_end(self, net, **kwargs):
        self.states_.append(copy.deepcopy(net.module_.state_dict()))
        self.losses_.append(net.history[-1, "valid_loss"])


def _callback(estimator, cls):
    return next(cb for _, cb in estimator.net_.callbacks_ if isinstance(cb, cls))


# -- defaults ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [MultiTaskRegressor, MultiTaskClassifier, FocusedTaskRegressor])
def test_defaults_regularise_and_stop_early(cls):
    params = cls().get_params()
    assert params["early_stopping"] is True and params["validation_fraction"] is None
    assert params["weight_decay"] > 0 and params["n_iter_no_change"] >= 1
    assert params["optimizer"] == "adamw"


# -- weight decay -----------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd"])
@pytest.mark.parametrize("sharing", ["hard", "cross_stitch"])
def test_weight_decay_step_equals_a_hand_written_step(optimizer, sharing):
    """Decay on the weight matrices only: not on biases, nor on cross-stitch units."""
    X, Y = regression_data(n=12)
    est = MultiTaskRegressor(
        sharing=sharing, hidden_layer_sizes=(5,), max_epochs=1, batch_size=len(X), lr=0.05,
        weight_decay=0.3, optimizer=optimizer, early_stopping=False, dropout=0.0,
        callbacks=[InitialState()], random_state=0,
    ).fit(X, Y)
    module = copy.deepcopy(est.net_.module_)
    module.load_state_dict(_callback(est, InitialState).state_)
    decayed = [p for name, p in module.named_parameters() if name.endswith("weight")]
    others = [p for name, p in module.named_parameters() if not name.endswith("weight")]
    assert decayed and others
    cls = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}[optimizer]
    reference = cls([{"params": decayed, "weight_decay": 0.3},
                     {"params": others, "weight_decay": 0.0}], lr=0.05)
    mask = torch.tensor(~np.isnan(Y))
    z = torch.tensor((np.nan_to_num(Y) - est.target_mean_) / est.target_scale_,
                     dtype=torch.float32)
    pred = torch.stack(module(torch.tensor(X, dtype=torch.float32)), dim=1)[:, :, 0]
    total = sum(((pred[:, t] - z[:, t])[mask[:, t]] ** 2).mean() for t in range(3))
    reference.zero_grad()
    total.backward()
    reference.step()
    trained = est.net_.module_.state_dict()
    for name, value in module.state_dict().items():
        np.testing.assert_allclose(trained[name].numpy(), value.detach().numpy(), atol=1e-6,
                                   err_msg=name)
    groups = est.net_.optimizer_.param_groups
    assert sorted(g["weight_decay"] for g in groups) == [0.0, 0.3]


def test_no_weight_decay_is_one_plain_parameter_group():
    X, Y = regression_data()
    est = MultiTaskRegressor(**SMALL, weight_decay=0.0, random_state=0).fit(X, Y)
    (group,) = est.net_.optimizer_.param_groups
    assert group["weight_decay"] == 0.0  # AdamW's own default (0.01) is not applied


# -- early stopping and the validation split ---------------------------------------------------


def test_early_stopping_is_on_by_default_and_restores_the_best_epoch():
    X, Y = regression_data(n=120)
    est = MultiTaskRegressor(hidden_layer_sizes=(32,), max_epochs=300, lr=0.03, batch_size=16,
                             n_iter_no_change=4, callbacks=[EpochStates()],
                             random_state=0).fit(X, Y)
    spy = _callback(est, EpochStates)
    losses = np.array(spy.losses_)
    best = int(np.argmin(losses))
    assert est.n_iter_ < 300 and len(losses) == est.n_iter_
    assert est.n_iter_ == best + 1 + 4  # stopped n_iter_no_change epochs after the best
    final = est.net_.module_.state_dict()
    for name, value in spy.states_[best].items():
        np.testing.assert_array_equal(final[name].numpy(), value.numpy(), err_msg=name)
    assert not all(torch.equal(final[k], v) for k, v in spy.states_[-1].items())


def test_validation_fraction_none_holds_out_rows_only_with_early_stopping():
    X, Y = regression_data()
    with_es = MultiTaskRegressor(**SMALL, random_state=0).fit(X, Y)
    assert "valid_loss" in with_es.net_.history[-1]
    without = MultiTaskRegressor(**SMALL, early_stopping=False, random_state=0).fit(X, Y)
    assert "valid_loss" not in without.net_.history[-1]


def _placements(codes, mask, sizes, fraction, seed):
    train, valid = stratified_validation_split(TaskLabels.from_wide(codes, mask), sizes,
                                               fraction, np.random.RandomState(seed))
    assert np.intersect1d(train, valid).size == 0
    np.testing.assert_array_equal(np.union1d(train, valid), np.arange(mask.shape[0]))
    return train, valid


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_validation_split_is_stratified_on_every_task_and_class(seed):
    rng = np.random.RandomState(seed)
    n, n_tasks = 3000, 8
    # MoleculeACE-like: most labels missing, tasks of very different sizes, rare classes
    mask = rng.uniform(size=(n, n_tasks)) < np.geomspace(0.5, 0.002, n_tasks)
    codes = (rng.uniform(size=(n, n_tasks)) < np.linspace(0.5, 0.05, n_tasks)).astype(np.intp)
    codes[~mask] = 0
    fraction = 0.1
    train, valid = _placements(codes, mask, [2] * n_tasks, fraction, seed)
    assert abs(valid.size - np.ceil(fraction * n)) <= 0.02 * n
    for t in range(n_tasks):
        for k in (0, 1):
            stratum = mask[:, t] & (codes[:, t] == k)
            total, held = stratum.sum(), stratum[valid].sum()
            if total >= 2:
                assert stratum[train].sum() >= 1, (t, k)  # every class keeps a training label
            assert abs(held - fraction * total) <= max(1.5, 0.05 * total), (t, k, held, total)


def test_validation_split_of_regression_tasks_and_unlabelled_rows():
    n = 400
    mask = np.zeros((n, 3), dtype=bool)
    mask[:200, 0] = True
    mask[200:210, 1] = True
    mask[210:212, 2] = True  # a task with two labels keeps one for training
    codes = np.zeros((n, 3), dtype=np.intp)
    train, valid = _placements(codes, mask, [1, 1, 1], 0.25, 0)
    assert valid.size == 100
    assert mask[valid, 0].sum() == 50
    assert mask[valid, 1].sum() in (2, 3)
    assert mask[train, 2].sum() >= 1


def _dense_split(codes, mask, sizes, fraction, rng):
    """The split on (n, T) arrays of codes and mask, as it was computed before the labels
    became triples: the reference the triples must reproduce row for row."""
    n_samples, n_tasks = mask.shape
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp)
    order = rng.permutation(n_samples)
    rank = np.empty(n_samples, dtype=np.intp)
    rank[order] = np.arange(n_samples)
    total = np.zeros(offsets[-1], dtype=np.intp)
    members = {}
    for t in range(n_tasks):
        rows = np.flatnonzero(mask[:, t])
        rows = rows[np.argsort(rank[rows], kind="stable")]
        ids = offsets[t] + codes[rows, t]
        np.add.at(total, ids, 1)
        for k in range(sizes[t]):
            members[offsets[t] + k] = rows[ids == offsets[t] + k]
    place = np.full(n_samples, -1)
    counts = np.zeros((2, offsets[-1]), dtype=np.intp)
    for s in np.argsort(total, kind="stable"):
        if total[s] == 0:
            continue
        rows = members[s][place[members[s]] < 0]
        k = int(np.clip(np.round(fraction * total[s] - counts[1, s]), 0, rows.shape[0]))
        if total[s] >= 2 and counts[0, s] == 0:
            k = min(k, rows.shape[0] - 1)
        for part, chosen in ((1, rows[:k]), (0, rows[k:])):
            place[chosen] = part
            np.add.at(counts[part], (offsets[:-1] + codes[chosen])[mask[chosen]], 1)
    free = order[place[order] < 0]
    k = int(np.clip(np.ceil(fraction * n_samples) - np.sum(place == 1), 0, free.shape[0]))
    place[free[:k]], place[free[k:]] = 1, 0
    if not np.any(counts[1]):  # no label held out: the first labelled row with spares
        spare = counts[0] >= 2
        row = next(r for r in order if mask[r].any()
                   and np.all(spare[(offsets[:-1] + codes[r])[mask[r]]]))
        place[row] = 1
    if not np.any(place == 0):
        place[order[0]] = 0
    return np.flatnonzero(place == 0), np.flatnonzero(place == 1)


@pytest.mark.parametrize("seed", range(6))
def test_validation_split_on_triples_equals_the_split_on_dense_arrays(seed):
    rng = np.random.RandomState(seed)
    n, n_tasks = int(rng.choice([7, 60, 500])), int(rng.choice([1, 3, 12]))
    sizes = rng.choice([1, 2, 4], size=n_tasks)
    mask = rng.uniform(size=(n, n_tasks)) < rng.uniform(0.02, 0.9, size=n_tasks)
    codes = np.where(mask, rng.randint(4, size=(n, n_tasks)) % sizes, 0)
    fraction = float(rng.choice([0.05, 0.1, 0.3]))
    expected = _dense_split(codes, mask, sizes, fraction, np.random.RandomState(seed))
    got = stratified_validation_split(TaskLabels.from_wide(codes, mask), sizes, fraction,
                                      np.random.RandomState(seed))
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


def test_validation_split_holds_out_a_label_where_the_fraction_rounds_to_none():
    """Two tasks of four labels among 100 rows: 10 % of each rounds to 0 labels, and the
    unlabelled rows that fill the validation part carry none. A labelled row is held out, so
    the validation loss is a number: before, it was NaN at every epoch, and early stopping
    stopped after n_iter_no_change epochs of nothing."""
    rng = np.random.RandomState(0)
    X, Y = rng.normal(size=(100, 3)), np.full((100, 2), np.nan)
    Y[:4, 0], Y[4:8, 1] = rng.normal(size=4), rng.normal(size=4)
    train, valid = _placements(np.zeros((100, 2), dtype=np.intp), ~np.isnan(Y), [1, 1], 0.1, 0)
    assert (~np.isnan(Y[valid])).sum() == 1 and valid.size == 11
    est = MultiTaskRegressor(**SMALL, random_state=0).fit(X, Y)
    assert np.isfinite(est.net_.history[:, "valid_loss"]).all()


def test_validation_split_with_no_label_to_spare_raises():
    X = np.arange(6.0).reshape(3, 2)
    Y = np.array([[1.0, np.nan], [np.nan, 2.0], [np.nan, np.nan]])  # one label per task
    with pytest.raises(ValueError, match="none of the 2 labels can be held out without "
                                         "taking the last training label of a task"):
        MultiTaskRegressor(**SMALL).fit(X, Y)
    MultiTaskRegressor(**SMALL, early_stopping=False).fit(X, Y)  # fits without validation


def test_validation_split_holds_out_a_label_of_a_watched_task():
    """The focus task of "finetune" (4 labels among 200 rows) holds out one label, whose
    validation loss the fine-tuning phase watches alone: before, its share rounded to none,
    the phase's validation loss was NaN at every epoch, and early stopping ended it after
    n_iter_no_change epochs, keeping the last network."""
    rng = np.random.RandomState(0)
    n = 200
    X = rng.normal(size=(n, 4))
    Y = np.column_stack([X[:, 0] + X[:, 1], X[:, 0] - X[:, 1], np.full(n, np.nan)])
    rows = rng.choice(n, 4, replace=False)
    Y[rows, 2] = X[rows, 0]
    mask, codes = ~np.isnan(Y), np.zeros((n, 3), dtype=np.intp)
    _, valid = _placements(codes, mask, [1, 1, 1], 0.1, 0)
    assert mask[valid, 2].sum() == 0  # its share rounds to none
    watched = (np.array([False, False, True]), "the focus task 2")
    train, valid = stratified_validation_split(TaskLabels.from_wide(codes, mask), [1, 1, 1],
                                               0.1, np.random.RandomState(0), watched)
    assert mask[valid, 2].sum() == 1 and mask[train, 2].sum() == 3
    assert mask[valid, :2].sum(axis=0).min() >= 19  # the other tasks keep their share
    est = FocusedTaskRegressor(hidden_layer_sizes=(8,), focus_task=2, strategy="finetune",
                               finetune_epochs=10, n_iter_no_change=3, max_epochs=5, lr=1e-2,
                               random_state=0).fit(X, Y)
    phase = est.net_.history[5:, "valid_loss"]  # the fine-tuning epochs
    assert len(phase) >= 4 and np.isfinite(phase).all()
    np.testing.assert_allclose(phase, est.net_.history[5:, "valid_loss_task_2"])
    # a focus task with one label cannot spare one: a clear error naming it
    Y[rows[1:], 2] = np.nan
    with pytest.raises(ValueError, match="phase that trains the focus task 2 alone watches "
                                         "its validation loss, but no label of its 1 labels"):
        FocusedTaskRegressor(**SMALL, focus_task=2, strategy="finetune").fit(X, Y)


def test_validation_split_reaches_the_estimator():
    """A task with two labels keeps one for training under early stopping."""
    X, Y = regression_data(n=80)
    Y[:, 2] = np.nan
    Y[[5, 9], 2] = [1.0, 2.0]
    est = MultiTaskRegressor(**SMALL, random_state=0).fit(X, Y)
    assert np.isfinite(est.net_.history[-1, "train_loss_task_2"])


# -- target standardisation ------------------------------------------------------------------


def test_targets_are_standardised_per_task_with_the_observed_mean_and_std():
    X, Y = regression_data()
    est = MultiTaskRegressor(**SMALL, random_state=0).fit(X, Y)
    for t in range(3):
        observed = Y[~np.isnan(Y[:, t]), t]
        assert est.target_mean_[t] == pytest.approx(observed.mean(), rel=1e-12)
        assert est.target_scale_[t] == pytest.approx(observed.std(), rel=1e-12)


@pytest.mark.parametrize("magnitude", [1e154, 1e-154, 1e300])
def test_huge_and_tiny_targets_give_the_same_model_in_the_users_units(magnitude):
    X, Y = regression_data()
    reference = MultiTaskRegressor(**SMALL, random_state=0).fit(X, Y).predict(X)
    est = MultiTaskRegressor(**SMALL, random_state=0).fit(X, Y * magnitude)
    pred = est.predict(X)
    assert np.all(np.isfinite(pred)) and pred.dtype == np.float64
    np.testing.assert_allclose(pred / magnitude, reference, rtol=1e-5, atol=1e-6)


def test_a_constant_task_is_not_divided_by_zero():
    X, Y = regression_data()
    Y[:, 1] = np.where(np.isnan(Y[:, 1]), np.nan, 3.25e154)
    Y[:, 2] = np.where(np.isnan(Y[:, 2]), np.nan, 0.0)
    est = MultiTaskRegressor(**SMALL, random_state=0).fit(X, Y)
    assert est.target_scale_[1] == pytest.approx(3.25e154) and est.target_scale_[2] == 1.0
    pred = est.predict(X)
    # the standardised targets are 0: the head learns about 0, so predictions stay near the value
    np.testing.assert_allclose(pred[:, 1], 3.25e154, rtol=0.5)
    assert np.all(np.isfinite(pred))


def test_targets_beyond_float32_need_standardisation():
    X, Y = regression_data()
    Y[:, 0] *= 1e154
    with pytest.raises(ValueError, match="Task 0 has targets of magnitude .* float32"):
        MultiTaskRegressor(**SMALL, standardize_targets=False).fit(X, Y)


# -- divergence ---------------------------------------------------------------------------------


def test_the_issues_diverging_sgd_regressor_raises_naming_task_and_epoch():
    # the issue's reproduction: SGD, lr 1.0, one epoch; before, predictions were NaN / inf
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 5)) * 30
    Y = X @ rng.normal(size=(5, 3))
    est = MultiTaskRegressor(optimizer="sgd", lr=1.0, max_epochs=1, batch_size=16,
                             early_stopping=False, random_state=0)
    with pytest.raises(FloatingPointError, match=r"Task 0 loss is not finite .* at epoch 1"):
        est.fit(X, Y)


def test_a_step_that_diverges_after_the_last_loss_raises():
    # one batch, one epoch: the loss is finite, the step sends the weights to inf
    X, Y = regression_data(n=30)
    est = MultiTaskRegressor(hidden_layer_sizes=(4,), optimizer="sgd", lr=1e38, max_epochs=1,
                             batch_size=30, early_stopping=False, random_state=0)
    with pytest.raises(FloatingPointError, match=r"diverged at epoch 1: .*no longer finite"):
        est.fit(X * 1e3, Y)


def test_a_diverging_validation_loss_raises_naming_task_and_epoch():
    class Blow(Callback):
        """After the only training batch of epoch 2, task 1's bias becomes huge but finite: its
        squared error overflows float32 on the validation rows."""

        def on_batch_end(self, net, training=False, **kwargs):
            if training and len(net.history) == 2:
                with torch.no_grad():
                    net.module_.task_heads.output.bias[1] = 3e38

    X, Y = regression_data()
    est = MultiTaskRegressor(**dict(SMALL, batch_size=len(X)), callbacks=[Blow()],
                             random_state=0)
    with pytest.raises(FloatingPointError,
                       match=r"Task 1 validation loss is not finite .* epoch 2"):
        est.fit(X, Y)


def test_non_finite_outputs_at_predict_time_raise_naming_the_task():
    X, Y = regression_data()
    est = MultiTaskRegressor(**SMALL, random_state=0).fit(X, Y)
    with torch.no_grad():  # task 1's head overflows float32 on every row with a positive unit
        est.net_.module_.task_heads.output.weight[1] = 3e38
    with pytest.raises(FloatingPointError, match=r"Task 1: the network's outputs are not finite"):
        est.predict(X * 100)


# -- unknown tasks ------------------------------------------------------------------------------


def _numpy_trunk(est, X):
    """relu(X W^T + b) of the one-layer trunk of a hard-sharing net, in float64."""
    layer = est.net_.module_.trunk[0]
    W, b = layer.weight.detach().double().numpy(), layer.bias.detach().double().numpy()
    return np.maximum(X @ W.T + b, 0.0)


def _numpy_heads(est, R):
    """(n, T) outputs of the linear heads (first output column) on R, in float64."""
    heads = est.net_.module_.task_heads.output
    W, b = heads.weight.detach().double().numpy(), heads.bias.detach().double().numpy()
    return np.einsum("nh,th->nt", R, W[:, :, 0]) + b[:, 0]


def test_hard_sharing_predicts_a_new_task_with_the_mean_head_in_the_users_units():
    X, Y = regression_data()
    Y[:, 1] = Y[:, 1] * 100 + 40  # tasks on different scales
    est = MultiTaskRegressor(**SMALL, unknown_task="shared", random_state=0).fit(X, Y)
    out = _numpy_heads(est, _numpy_trunk(est, X))
    reference = (out * est.target_scale_ + est.target_mean_).mean(axis=1)
    # the same thing: one head with the mean weights and bias in the user's units
    heads = est.net_.module_.task_heads.output
    W = heads.weight.detach().double().numpy()[:, :, 0] * est.target_scale_[:, None]
    b = heads.bias.detach().double().numpy()[:, 0] * est.target_scale_ + est.target_mean_
    np.testing.assert_allclose(_numpy_trunk(est, X) @ W.mean(0) + b.mean(), reference, rtol=1e-10)

    pred = est.predict(X, task_ids=np.array(["new"] * len(X), dtype=object))
    np.testing.assert_allclose(pred, reference, rtol=1e-5, atol=1e-5)
    # known rows are unchanged; two unseen tasks get the same prediction
    mixed = np.array([0, "x", 2, "y"] * 15, dtype=object)
    got = est.predict(X, task_ids=mixed)
    full = est.predict(X)
    for i, task in enumerate(mixed):
        expected = full[i, task] if isinstance(task, int) else reference[i]
        assert got[i] == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_hard_sharing_classifier_averages_the_heads_logits():
    X, Y = binary_data()
    est = MultiTaskClassifier(**SMALL, unknown_task="shared", random_state=0).fit(X, Y)
    logits = _numpy_heads(est, _numpy_trunk(est, X)).mean(axis=1)
    expected = 1.0 / (1.0 + np.exp(-logits))
    proba = est.predict_proba(X, task_ids=["new"] * len(X))
    np.testing.assert_allclose(proba[:, 1], expected, rtol=1e-5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(est.predict(X, task_ids=["new"] * len(X)), expected > 0.5)


@pytest.mark.parametrize("conditioning", ["concat", "sum", "multiplicative"])
def test_conditioned_sharing_feeds_the_mean_task_embedding(conditioning):
    X, Y = regression_data()
    est = MultiTaskRegressor(**SMALL, sharing="conditioned", conditioning=conditioning,
                             unknown_task="shared", random_state=0).fit(X, Y)
    module = est.net_.module_
    z = module.embedding.detach().double().numpy().mean(0)
    first = module.input_layer
    W, b = first.weight.detach().double().numpy(), first.bias.detach().double().numpy()
    if conditioning == "concat":
        H = np.maximum(X @ W[:, :4].T + W[:, 4:] @ z + b, 0)
    else:
        P = module.embedding_projection.weight.detach().double().numpy()
        if conditioning == "sum":
            H = np.maximum(X @ W.T + b + P @ z, 0)
        else:
            H = np.maximum(X @ W.T + b, 0) * (1 + P @ z)
    assert len(module.body) == 0  # one hidden layer: the heads read H
    out = _numpy_heads(est, H)
    reference = (out * est.target_scale_ + est.target_mean_).mean(axis=1)
    pred = est.predict(X, task_ids=[-1] * len(X))
    np.testing.assert_allclose(pred, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sharing", ["independent", "soft", "cross_stitch", "sluice"])
def test_strategies_without_a_shared_part_cannot_predict_a_new_task(sharing):
    X, Y = regression_data()
    est = MultiTaskRegressor(**SMALL, sharing=sharing, unknown_task="shared",
                             random_state=0).fit(X, Y)
    np.testing.assert_allclose(est.predict(X, task_ids=[1] * len(X)), est.predict(X)[:, 1])
    with pytest.raises(ValueError, match=f"sharing='{sharing}' has none"):
        est.predict(X, task_ids=["new"] * len(X))


def test_unknown_task_error_is_the_default():
    X, Y = regression_data()
    est = MultiTaskRegressor(**SMALL, random_state=0).fit(X, Y)
    with pytest.raises(UnknownTaskError):
        est.predict(X, task_ids=["new"] * len(X))


def test_a_grid_over_sharing_with_shared_unknown_tasks_still_fits():
    from sklearn.model_selection import GridSearchCV

    X, Y = regression_data()
    search = GridSearchCV(MultiTaskRegressor(**SMALL, unknown_task="shared", random_state=0),
                          {"sharing": ["hard", "independent"]}, cv=2, error_score="raise")
    search.fit(X, Y)
    assert len(search.cv_results_["mean_test_score"]) == 2


# -- one-class tasks ----------------------------------------------------------------------------


def test_a_task_with_one_class_in_training_gets_both_probability_columns():
    X, Y = binary_data(n=80)
    Y[:, 2] = np.where(np.isnan(Y[:, 2]), np.nan, 0.0)  # task 2 saw class 0 only
    est = MultiTaskClassifier(**dict(SMALL, max_epochs=40), random_state=0).fit(X, Y)
    assert [c.tolist() for c in est.classes_] == [[0.0, 1.0]] * 3
    proba = est.predict_proba(X)
    assert [p.shape for p in proba] == [(80, 2)] * 3
    for p in proba:
        assert np.all(np.isfinite(p))
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert proba[2][:, 0].mean() > 0.5  # it learnt its only class
    task_ids = np.arange(80) % 3
    mixed = est.predict_proba(X, task_ids=task_ids)
    assert mixed.shape == (80, 2)
    for t in range(3):
        np.testing.assert_allclose(mixed[task_ids == t], proba[t][task_ids == t])


@pytest.mark.parametrize("focus_task", [0, 2])
def test_focused_classifier_fits_a_one_class_task_focus_or_auxiliary(focus_task):
    from skmtl.deep import FocusedTaskClassifier

    X, Y = binary_data(n=80)
    Y[:, 2] = np.where(np.isnan(Y[:, 2]), np.nan, 1.0)  # task 2 saw class 1 only
    est = FocusedTaskClassifier(**SMALL, focus_task=focus_task, random_state=0).fit(X, Y)
    assert est.classes_.tolist() == [0.0, 1.0]
    assert [c.tolist() for c in est.task_classes_] == [[0.0, 1.0]] * 3
    proba = est.predict_proba(X)
    assert proba.shape == (80, 2) and np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    if focus_task == 2:
        assert proba[:, 1].mean() > 0.5
