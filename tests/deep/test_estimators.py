"""MultiTaskRegressor / MultiTaskClassifier: the estimator API, seeding, devices, persistence."""

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import joblib  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from skorch.callbacks import ProgressBar  # noqa: E402
from torch import nn  # noqa: E402

from skmtl.deep import MultiTaskClassifier, MultiTaskRegressor, Weighting  # noqa: E402
from skmtl.deep._device import resolve_device  # noqa: E402
from skmtl.deep.weighting import FixedWeighting  # noqa: E402

# The training defaults these tests were written for (before early stopping and weight decay
# became the defaults): no validation split, Adam without weight decay, no dropout.
OLD_TRAINING = dict(optimizer="adam", weight_decay=0.0, early_stopping=False, dropout=0.0)
SMALL = dict(hidden_layer_sizes=(8,), max_epochs=3, batch_size=16, lr=1e-2, **OLD_TRAINING)


def regression_data(n=60, n_features=5, n_tasks=3, missing=0.25, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, n_features))
    Y = X @ rng.normal(size=(n_features, n_tasks)) + 0.1 * rng.normal(size=(n, n_tasks))
    Y[rng.uniform(size=Y.shape) < missing] = np.nan
    Y[:3] = 0.5  # every task observed
    return X, Y


def classification_data(n=80, seed=0):
    """Task 'spam' binary with string labels, task 'colour' with 3 string classes."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 4))
    Y = np.empty((n, 2), dtype=object)
    Y[:, 0] = np.where(X[:, 0] + X[:, 1] > 0, "spam", "ham")
    Y[:, 1] = np.array(["red", "green", "blue"])[np.digitize(X[:, 2], [-0.4, 0.4])]
    Y[rng.uniform(size=n) < 0.2, 1] = None
    return X, Y


# -- outputs --------------------------------------------------------------------------------------


def test_regressor_output_shapes_and_float64(device):
    X, Y = regression_data()
    est = MultiTaskRegressor(**SMALL, random_state=0, device=device).fit(X.astype(np.float32), Y)
    pred = est.predict(X)
    assert pred.shape == (60, 3) and pred.dtype == np.float64
    assert est.n_iter_ == 3 and est.n_tasks_ == 3
    assert est.task_weights_history_.shape == (3, 3)
    assert est.gradient_affinity_.shape == (3, 3)
    single = MultiTaskRegressor(**SMALL, random_state=0).fit(X, X[:, 0])
    assert single.predict(X).shape == (60,) and single.predict(X).dtype == np.float64


def test_classifier_string_classes_mixed_binary_and_multiclass(device):
    X, Y = classification_data()
    est = MultiTaskClassifier(**SMALL, random_state=0, device=device).fit(X, Y)
    assert [c.tolist() for c in est.classes_] == [["ham", "spam"], ["blue", "green", "red"]]
    proba = est.predict_proba(X)
    assert [p.shape for p in proba] == [(80, 2), (80, 3)]
    for p in proba:
        assert p.dtype == np.float64
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    pred = est.predict(X)
    assert pred.shape == (80, 2)
    assert set(pred[:, 0]) <= {"ham", "spam"} and set(pred[:, 1]) <= {"blue", "green", "red"}
    for t in range(2):
        np.testing.assert_array_equal(pred[:, t], est.classes_[t][proba[t].argmax(axis=1)])
    assert est.net_.module_.output_sizes == [1, 3]  # one logit for the binary task


def test_classifier_learns_an_easy_problem():
    X, Y = classification_data(n=300)
    est = MultiTaskClassifier(hidden_layer_sizes=(16,), max_epochs=30, lr=1e-2,
                              random_state=0).fit(X, Y)
    assert est.score(X, Y) > 0.9


def test_many_binary_tasks_probabilities_and_labels_are_their_heads_sigmoid():
    """Binary tasks (their probabilities filled for all tasks at once, a batch at a time)
    beside a three-class and a one-class task: each binary task's positive probability is
    the sigmoid of its head's logit, the three-class one the softmax of its logits, and the
    labels their arg-max, in each task's classes (0 / 1, strings, one class)."""
    rng = np.random.RandomState(3)
    n, n_tasks = 70, 12
    X = rng.normal(size=(n, 4))
    Y = np.empty((n, n_tasks), dtype=object)
    for t in range(n_tasks):
        Y[:, t] = (X @ rng.normal(size=4) > 0).astype(int)
    Y[:, 3] = np.where(Y[:, 3] == 1, "yes", "no")
    Y[:, 5] = np.array(["a", "b", "c"])[np.digitize(X[:, 0], [-0.4, 0.4])]
    Y[:, 7] = "only"
    Y[rng.uniform(size=Y.shape) < 0.2] = None
    est = MultiTaskClassifier(**{**SMALL, "batch_size": 32}, random_state=0).fit(X, Y)
    out = np.concatenate([part for _, part in est._forward(X)], axis=1)  # (T, n, K)
    proba, labels = est.predict_proba(X), est.predict(X)
    for t in range(n_tasks):
        classes = est.classes_[t]
        if t == 7:
            expected = np.ones((n, 1))
        elif t == 5:
            expected = np.exp(out[t, :, :3]) / np.exp(out[t, :, :3]).sum(axis=1, keepdims=True)
        else:
            positive = 1.0 / (1.0 + np.exp(-out[t, :, 0]))
            expected = np.column_stack([1.0 - positive, positive])
        np.testing.assert_allclose(proba[t], expected, rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(labels[:, t], classes[expected.argmax(axis=1)])
    assert labels.dtype == object


def test_a_task_with_one_class_always_predicts_it():
    X, Y = classification_data()
    Y[:, 1] = np.where(Y[:, 1] == None, None, "only")  # noqa: E711
    est = MultiTaskClassifier(**SMALL, random_state=0).fit(X, Y)
    assert (est.predict(X)[:, 1] == "only").all()
    np.testing.assert_array_equal(est.predict_proba(X)[1], 1.0)
    assert np.isnan(est.net_.history[-1, "train_loss_task_1"])  # no loss for that task


def test_regression_targets_are_standardised_per_task_and_mapped_back():
    X, Y = regression_data()
    scale, shift = np.array([1.0, 1000.0, 0.01]), np.array([0.0, -5.0, 3.0])
    base = MultiTaskRegressor(**SMALL, random_state=0).fit(X, Y)
    moved = MultiTaskRegressor(**SMALL, random_state=0).fit(X, Y * scale + shift)
    np.testing.assert_allclose(moved.predict(X), base.predict(X) * scale + shift, rtol=1e-6,
                               atol=1e-9)
    observed = ~np.isnan(Y[:, 1])
    assert moved.target_mean_[1] == pytest.approx(np.mean(Y[observed, 1] * 1000 - 5))


# -- seeding --------------------------------------------------------------------------------------


def test_same_random_state_same_model_and_global_rng_untouched(device):
    X, Y = regression_data()
    state = torch.random.get_rng_state()
    params = dict(SMALL, dropout=0.2, random_state=3, device=device)
    first = MultiTaskRegressor(**params).fit(X, Y).predict(X)
    second = MultiTaskRegressor(**params).fit(X, Y).predict(X)
    assert torch.equal(state, torch.random.get_rng_state())
    np.testing.assert_array_equal(first, second)
    other = MultiTaskRegressor(**dict(params, random_state=4)).fit(X, Y).predict(X)
    assert not np.allclose(first, other)


def test_random_state_none_follows_numpys_global_seed():
    X, Y = regression_data()
    np.random.seed(7)  # noqa: NPY002 (the legacy global state is what None uses)
    first = MultiTaskRegressor(**SMALL).fit(X, Y).predict(X)
    np.random.seed(7)  # noqa: NPY002 (the legacy global state is what None uses)
    np.testing.assert_array_equal(MultiTaskRegressor(**SMALL).fit(X, Y).predict(X), first)


@pytest.mark.parametrize("Estimator", [MultiTaskRegressor, MultiTaskClassifier])
def test_values_behind_the_mask_are_ignored(Estimator):
    X, Y = regression_data() if Estimator is MultiTaskRegressor else classification_data()
    reference = Estimator(**SMALL, random_state=0).fit(X, Y)
    expected = np.column_stack(
        reference.predict_proba(X) if Estimator is MultiTaskClassifier else [reference.predict(X)]
    )
    mask = ~np.equal(Y, None) if Y.dtype == object else ~np.isnan(Y)
    rng = np.random.RandomState(1)
    if Estimator is MultiTaskClassifier:
        codes = np.zeros(Y.shape, dtype=np.intp)
        for t, classes in enumerate(reference.classes_):
            codes[mask[:, t], t] = np.searchsorted(classes, Y[mask[:, t], t].astype(str))
        garbage = np.where(mask, codes, rng.randint(0, 3, size=Y.shape))
    else:
        garbage = np.where(mask, Y, rng.normal(scale=1e6, size=Y.shape))
    hooked = Estimator(**SMALL, random_state=0).fit(X, Y)
    hooked._fit_multitask(X, garbage, mask)
    got = np.column_stack(
        hooked.predict_proba(X) if Estimator is MultiTaskClassifier else [hooked.predict(X)]
    )
    np.testing.assert_array_equal(got, expected)


# -- inputs ---------------------------------------------------------------------------------------


def test_sparse_and_float32_X_give_the_dense_float64_model():
    X, Y = regression_data()
    X[X < 0.3] = 0.0
    dense = MultiTaskRegressor(**SMALL, random_state=0).fit(X, Y).predict(X)
    for X_other in (sp.csr_matrix(X), sp.csc_matrix(X), X.astype(np.float32)):
        est = MultiTaskRegressor(**SMALL, random_state=0).fit(X_other, Y)
        np.testing.assert_array_equal(est.predict(X_other), dense)


def test_long_format_and_task_ids():
    X, Y = regression_data()
    rows, tasks = np.nonzero(~np.isnan(Y))
    est = MultiTaskRegressor(**SMALL, random_state=0).fit(X[rows], Y[rows, tasks],
                                                          task_ids=np.array(list("abc"))[tasks])
    assert est.tasks_.tolist() == ["a", "b", "c"]
    full = est.predict(X[:5])
    np.testing.assert_array_equal(est.predict(X[:5], task_ids=["c"] * 5), full[:, 2])


# -- weightings, optimizers, modules ------------------------------------------------------------


class DoubleFirstTask(Weighting):
    """A user weighting: task 0 counts twice."""

    def reset(self, n_tasks, *, n_observed, task_type, device):
        params = super().reset(n_tasks, n_observed=n_observed, task_type=task_type, device=device)
        self.weights_[0] = 2.0
        return params


def test_custom_weighting_instance_equals_the_same_fixed_weights():
    X, Y = regression_data()
    weighting = DoubleFirstTask()
    custom = MultiTaskRegressor(**SMALL, weighting=weighting, random_state=0).fit(X, Y)
    fixed = MultiTaskRegressor(**SMALL, weighting=FixedWeighting(task_weights=[2.0, 1.0, 1.0]),
                               random_state=0).fit(X, Y)
    np.testing.assert_array_equal(custom.predict(X), fixed.predict(X))
    np.testing.assert_array_equal(custom.task_weights_history_, [[2.0, 1.0, 1.0]] * 3)
    assert not hasattr(weighting, "weights_")  # the parameter itself is never reset


def test_fixed_weighting_errors_name_the_problem():
    X, Y = regression_data()
    with pytest.raises(ValueError, match="task_weights"):
        MultiTaskRegressor(**SMALL, weighting="fixed").fit(X, Y)
    with pytest.raises(ValueError, match="expected 3"):
        MultiTaskRegressor(**SMALL, weighting=FixedWeighting([1.0, 2.0])).fit(X, Y)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw", torch.optim.RMSprop])
def test_optimizers(optimizer):
    X, Y = regression_data()
    est = MultiTaskRegressor(**dict(SMALL, optimizer=optimizer), random_state=0).fit(X, Y)
    expected = {"sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}.get(optimizer, optimizer)
    assert type(est.net_.optimizer_) is expected
    assert est.net_.optimizer_.param_groups[0]["lr"] == 1e-2


class SmallCNN(nn.Module):
    """Reads 64 features as one 8x8 image."""

    def __init__(self, channels=4):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, X):
        return self.pool(torch.relu(self.conv(X.view(-1, 1, 8, 8)))).flatten(1)


def test_custom_cnn_trunk_with_hard_sharing():
    rng = np.random.RandomState(0)
    images = rng.normal(size=(200, 8, 8))
    X = images.reshape(200, 64)
    Y = np.column_stack([images[:, :4, :].mean((1, 2)), images[:, :, :4].mean((1, 2))])
    est = MultiTaskRegressor(module=SmallCNN, module_params={"channels": 3}, max_epochs=15,
                             lr=1e-2, random_state=0).fit(X, Y)
    assert isinstance(est.net_.module_.trunk, SmallCNN)
    assert est.net_.module_.trunk.conv.out_channels == 3
    losses = [est.net_.history[:, f"train_loss_task_{t}"] for t in range(2)]
    assert all(loss[-1] < 0.5 * loss[0] for loss in losses)
    assert est.score(X, Y) > 0.5


# -- training control -----------------------------------------------------------------------------


def test_history_has_per_task_losses_and_weights():
    X, Y = regression_data()
    est = MultiTaskRegressor(**SMALL, validation_fraction=0.2, random_state=0).fit(X, Y)
    row = est.net_.history[-1]
    for t in range(3):
        assert np.isfinite(row[f"train_loss_task_{t}"]) and np.isfinite(row[f"valid_loss_task_{t}"])
    valid = [row[f"valid_loss_task_{t}"] for t in range(3)]
    assert row["valid_loss"] == pytest.approx(np.mean(valid))
    assert row["task_weights"] == [1.0, 1.0, 1.0]


def test_early_stopping_stops_before_max_epochs():
    X, Y = regression_data(n=100)
    est = MultiTaskRegressor(hidden_layer_sizes=(64,), max_epochs=200, lr=0.05,
                             validation_fraction=0.3, early_stopping=True,
                             random_state=0).fit(X, Y)
    assert est.n_iter_ < 200
    assert est.task_weights_history_.shape == (est.n_iter_, 3)


def test_early_stopping_needs_a_validation_fraction():
    X, Y = regression_data()
    with pytest.raises(ValueError, match="validation_fraction > 0"):
        MultiTaskRegressor(**dict(SMALL, early_stopping=True), validation_fraction=0).fit(X, Y)
    with pytest.raises(ValueError, match="no training rows"):
        MultiTaskRegressor(**SMALL, validation_fraction=0.999).fit(X, Y)


def test_a_diverging_loss_names_the_task():
    X, Y = regression_data()
    Y = Y.astype(object)
    Y[:, 1] = np.where(np.equal(Y[:, 1], None), None, 1e30)
    Y[0, 1] = -1e30
    from pandas import DataFrame

    frame = DataFrame(Y.astype(float), columns=["a", "b", "c"])
    est = MultiTaskRegressor(**SMALL, standardize_targets=False, random_state=0)
    with pytest.raises(FloatingPointError, match=r"Task 'b' loss is not finite \(inf\) at epoch 1"):
        est.fit(X, frame)


def test_a_huge_learning_rate_stops_with_an_error():
    X, Y = regression_data()
    est = MultiTaskRegressor(hidden_layer_sizes=(32,), max_epochs=50, lr=1e12,
                             optimizer="sgd", early_stopping=False, random_state=0)
    with pytest.raises(FloatingPointError, match=r"Task \d loss is not finite"):
        est.fit(X * 1e3, Y)


def test_verbose_shows_a_progress_bar_and_silent_prints_nothing(capsys):
    X, Y = regression_data()
    silent = MultiTaskRegressor(**SMALL, random_state=0).fit(X, Y)
    assert capsys.readouterr().out == ""
    assert not any(isinstance(cb, ProgressBar) for _, cb in silent.net_.callbacks_)
    loud = MultiTaskRegressor(**SMALL, verbose=1, random_state=0).fit(X, Y)
    assert any(isinstance(cb, ProgressBar) for _, cb in loud.net_.callbacks_)
    assert capsys.readouterr().out == ""  # the bar goes to stderr; no table at verbose=1


# -- devices --------------------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:3"])
def test_cuda_without_cuda_raises_at_fit(device):
    X, Y = regression_data()
    est = MultiTaskRegressor(**SMALL, device=device)  # construction never checks
    with pytest.raises(ValueError, match=rf"device='{device}' is not available.*\['cpu'"):
        est.fit(X, Y)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="needs a machine without MPS")
def test_mps_without_mps_raises_at_fit():
    X, Y = regression_data()
    with pytest.raises(ValueError, match="device='mps' is not available"):
        MultiTaskRegressor(**SMALL, device="mps").fit(X, Y)


def test_auto_device_and_unknown_strings(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    X, Y = regression_data()
    assert MultiTaskRegressor(**SMALL, device="auto").fit(X, Y).net_.device == "cpu"
    for bad in ("gpu", "cpu:0", "cuda:x"):
        with pytest.raises(ValueError, match="not understood"):
            resolve_device(bad)


def test_cuda_index_is_checked_against_the_device_count(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert resolve_device("cuda:1") == "cuda:1"
    assert resolve_device("cuda") == "cuda:0"
    assert resolve_device("auto") == "cuda:0"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"'cuda:1' is not available.*1 CUDA device.*'cuda:0'"):
        resolve_device("cuda:1")


# -- persistence and meta-estimators ---------------------------------------------------------------


@pytest.mark.parametrize("weighting", ["equal", "uncertainty", "gradnorm"])
def test_pickle_and_joblib_round_trips(tmp_path, weighting):
    X, Y = classification_data()
    est = MultiTaskClassifier(**SMALL, weighting=weighting, random_state=0).fit(X, Y)
    expected = est.predict_proba(X)
    for loaded in (pickle.loads(pickle.dumps(est)), _joblib_round_trip(est, tmp_path)):
        for a, b in zip(loaded.predict_proba(X), expected):
            np.testing.assert_array_equal(a, b)
    state = est.net_.module_.state_dict()
    assert all(type(value) is torch.Tensor for value in state.values())


def _joblib_round_trip(est, tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump(est, path)
    return joblib.load(path)


def test_grid_search_over_sharing_and_weighting():
    X, Y = regression_data()
    search = GridSearchCV(
        MultiTaskRegressor(**SMALL, random_state=0),
        {"sharing": ["hard", "independent"], "weighting": ["equal", "dwa"]},
        cv=2,
    ).fit(X, Y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_estimator_.predict(X).shape == (60, 3)
