"""The newer sharing strategies and the auxiliary losses, through the estimators.

A GridSearchCV in a Pipeline over every sharing strategy (old and new) x every auxiliary loss on
a wide Y with missing labels; the estimator parameters of each strategy (validated at fit, with
errors that name them); the fitted attributes (``task_covariance_``, ``branches_``); hint
columns (read in fit, ignored by the network); long data.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from skmtl.datasets import make_multitask_regression  # noqa: E402
from skmtl.deep import SHARING, MultiTaskClassifier, MultiTaskRegressor  # noqa: E402
from skmtl.deep._auxiliary import AUXILIARY  # noqa: E402
from skmtl.model_selection import MultiTaskKFold  # noqa: E402

N_TASKS = 3
TINY = dict(hidden_layer_sizes=(8, 6), max_epochs=3, batch_size=16, lr=1e-2, random_state=0,
            early_stopping=False, dropout=0.0)
NEW_SHARING = ("tensor_factorisation", "relationship", "adaptive", "low_supervision",
               "stacked")


def wide_data(n_samples=60, missing_rate=0.3, seed=0):
    X, Y = make_multitask_regression(
        n_samples=n_samples, n_features=5, n_tasks=N_TASKS, missing_rate=missing_rate,
        random_state=seed,
    )
    assert missing_rate == 0 or np.isnan(Y).any(axis=0).all()
    return X, Y


def test_sharing_lists_the_new_strategies():
    assert set(NEW_SHARING) <= set(SHARING) and len(SHARING) == 11


def test_grid_search_over_every_sharing_and_auxiliary_loss():
    X, Y = wide_data()
    Y[:4] = np.nan  # rows without any label: they count in the reconstruction loss only
    pipe = Pipeline([("scale", StandardScaler()), ("model", MultiTaskRegressor(**TINY))])
    grid = {"model__sharing": list(SHARING), "model__auxiliary": [None, *AUXILIARY]}
    search = GridSearchCV(
        pipe, grid, cv=MultiTaskKFold(2, shuffle=True, random_state=0), error_score="raise"
    ).fit(X, Y)
    results = search.cv_results_
    cells = {(p["model__sharing"], p["model__auxiliary"]) for p in results["params"]}
    assert cells == {(s, a) for s in SHARING for a in (None, *AUXILIARY)}
    assert len(cells) == 33
    for key in ("split0_test_score", "split1_test_score", "mean_test_score"):
        assert np.all(np.isfinite(results[key])), key
    # the auxiliary loss changes the fit (same seed, same data): it reaches the trained weights
    by_cell = {(p["model__sharing"], p["model__auxiliary"]): score
               for p, score in zip(results["params"], results["mean_test_score"], strict=True)}
    for sharing in ("hard", "relationship"):
        assert by_cell[(sharing, None)] != by_cell[(sharing, "reconstruction")]
        assert by_cell[(sharing, None)] != by_cell[(sharing, "adversarial")]


@pytest.mark.parametrize("sharing", NEW_SHARING)
def test_new_strategies_on_long_data_classification(sharing):
    """Long data (one label per row) and a classifier with a multiclass task."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(90, 4))
    task = np.repeat(["a", "b", "c"], 30)
    y = np.where(X[:, 0] > 0, "p", "n").astype(object)
    y[task == "c"] = np.array(["x", "y", "z"])[np.digitize(X[task == "c", 1], [-0.4, 0.4])]
    model = MultiTaskClassifier(sharing=sharing, **TINY).fit(X, y, task_ids=task)
    proba = model.predict_proba(X)
    assert [p.shape for p in proba] == [(90, 2), (90, 2), (90, 3)]
    for p in proba:
        assert np.all(np.isfinite(p)) and np.allclose(p.sum(axis=1), 1.0)
    pred = model.predict(X[:60], task_ids=task[:60])
    assert pred.shape == (60,) and set(pred) <= {"p", "n"}


def test_task_depths_and_order_are_checked_at_fit():
    X, Y = wide_data()
    with pytest.raises(ValueError, match="task_depths .*sharing='low_supervision'"):
        MultiTaskRegressor(sharing="hard", task_depths=[1, 2, 2], **TINY).fit(X, Y)
    with pytest.raises(ValueError, match="task_depths must give one depth per task"):
        MultiTaskRegressor(sharing="low_supervision", task_depths=[1, 2], **TINY).fit(X, Y)
    with pytest.raises(ValueError, match=r"task_depths names task\(s\) \[7\]"):
        MultiTaskRegressor(sharing="low_supervision", task_depths={7: 1}, **TINY).fit(X, Y)
    with pytest.raises(ValueError, match="task_order .*sharing='stacked'"):
        MultiTaskRegressor(sharing="hard", task_order=[2, 1, 0], **TINY).fit(X, Y)
    with pytest.raises(ValueError, match="every task once"):
        MultiTaskRegressor(sharing="stacked", task_order=[0, 0, 1], **TINY).fit(X, Y)


def test_task_depths_dict_and_task_order_labels_reach_the_network():
    X, Y = wide_data()
    model = MultiTaskRegressor(sharing="low_supervision", task_depths={1: 1}, **TINY).fit(X, Y)
    # tasks are the columns 0, 1, 2; the dict names task 1 only: the others read the top (2)
    assert model.net_.module_.task_depths == (2, 1, 2)
    model = MultiTaskRegressor(sharing="stacked", task_order=[2, 0, 1], **TINY).fit(X, Y)
    assert list(model.net_.module_.task_order) == [2, 0, 1]


def test_auxiliary_loss_is_recorded_and_decreases():
    X, Y = wide_data()
    params = {**TINY, "max_epochs": 8}
    model = MultiTaskRegressor(auxiliary="reconstruction", **params).fit(X, Y)
    losses = model.net_.history[:, "train_auxiliary_loss"]
    assert len(losses) == 8 and np.all(np.isfinite(losses))
    assert losses[-1] < losses[0]  # the decoder learns to reconstruct X
    # the recorded value is the decoder's mean squared error, unweighted: recompute it on the
    # last epoch's network over the training rows (no validation split, no dropout)
    module = model.net_.module_
    with torch.no_grad():
        X_t = torch.as_tensor(X, dtype=torch.float32)
        rebuilt = module.auxiliary_heads.decoder(module.shared(X_t))
        error = float(((rebuilt - X_t) ** 2).mean())
    assert error < losses[0]
    plain = MultiTaskRegressor(**params).fit(X, Y)
    assert "train_auxiliary_loss" not in plain.net_.history[-1]


def test_hint_columns_are_predicted_not_read():
    X, Y = wide_data()
    hints = [4]
    model = MultiTaskRegressor(hint_columns=hints, auxiliary_weight=1.0, **TINY).fit(X, Y)
    heads = model.net_.module_.auxiliary_heads
    assert model.net_.module_.n_features == 4 and heads.n_hints == 1
    np.testing.assert_allclose(heads.hint_mean.numpy(), [X[:, 4].mean()], rtol=1e-5)
    np.testing.assert_allclose(heads.hint_scale.numpy(), [X[:, 4].std()], rtol=1e-5)
    changed = X.copy()
    changed[:, 4] = 1e3  # the network never reads the hint column
    np.testing.assert_array_equal(model.predict(changed), model.predict(X))
    # the hint loss trains the network: a fit without it differs
    plain = MultiTaskRegressor(**TINY).fit(np.delete(X, hints, axis=1), Y)
    assert not np.allclose(plain.predict(np.delete(X, hints, axis=1)), model.predict(X))


def test_hint_columns_by_name_need_a_dataframe():
    pd = pytest.importorskip("pandas")
    X, Y = wide_data()
    frame = pd.DataFrame(X, columns=list("abcde"))
    model = MultiTaskRegressor(hint_columns=["e"], **TINY).fit(frame, Y)
    assert model.net_.module_.auxiliary_heads.hint_columns.tolist() == [4]
    with pytest.raises(ValueError, match="hint_columns names column 'e', but X has no column"):
        MultiTaskRegressor(hint_columns=["e"], **TINY).fit(X, Y)
    with pytest.raises(ValueError, match="outside X's 5 columns"):
        MultiTaskRegressor(hint_columns=[5], **TINY).fit(X, Y)
    with pytest.raises(ValueError, match="takes all 5 columns"):
        MultiTaskRegressor(hint_columns=[0, 1, 2, 3, 4], **TINY).fit(X, Y)


def test_relationship_and_adaptive_expose_their_structure():
    X, Y = wide_data()
    model = MultiTaskRegressor(sharing="relationship", **TINY).fit(X, Y)
    covariance = model.task_covariance_
    assert covariance.shape == (N_TASKS, N_TASKS)
    np.testing.assert_allclose(covariance, covariance.T)
    assert np.all(np.linalg.eigvalsh(covariance) > 0)
    np.testing.assert_allclose(np.diag(model.task_correlation_), 1.0)
    # the covariance is the module's, in float64
    np.testing.assert_allclose(covariance, model.net_.module_.task_covariance.double().numpy())

    model.set_params(sharing="adaptive", max_branches=2).fit(X, Y)
    assert not hasattr(model, "task_covariance_")  # a refit with another sharing drops it
    tree = model.branches_
    assert len(tree) == 2  # one entry per hidden layer
    for layer in tree:
        assert sorted(t for branch in layer for t in branch) == [0, 1, 2]
    assert len(tree[-1]) <= 2


def test_adaptive_reads_the_affinity_of_the_second_half_of_its_thin_phase():
    X, Y = wide_data(missing_rate=0.0)
    params = {**TINY, "max_epochs": 8, "batch_size": 60}  # one batch per epoch
    model = MultiTaskRegressor(sharing="adaptive", **params).fit(X, Y)
    net = model.net_
    # thin for 4 epochs (half of max_epochs), the affinity restarted after epoch 2: it counts
    # the batches of epochs 3 and 4, then nothing once the network has branched
    names = [name for name, _ in net.callbacks_]
    assert "affinity_window" in names
    assert len(net.history) == 8
    count = net.affinity_count_.numpy()
    # branched: measured in epochs 3 and 4 only; one branch: still shared, epochs 3 to 8
    measured = 2.0 if model.branches_[-1] != [[0, 1, 2]] else 6.0
    np.testing.assert_array_equal(count, np.full((N_TASKS, N_TASKS), measured))
    hard = MultiTaskRegressor(**params).fit(X, Y)
    assert "affinity_window" not in [name for name, _ in hard.net_.callbacks_]
    np.testing.assert_array_equal(hard.net_.affinity_count_.numpy(),
                                  np.full((N_TASKS, N_TASKS), 8.0))


def test_unseen_task_is_predicted_by_the_strategies_with_a_shared_part():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 4))
    task = np.repeat(["a", "b", "c"], 20)
    y = X[:, 0] + rng.normal(scale=0.1, size=60)
    model = MultiTaskRegressor(sharing="relationship", unknown_task="shared", **TINY)
    model.fit(X, y, task_ids=task)
    new = model.predict(X[:5], task_ids=["new"] * 5)
    # the mean over the heads of their outputs on the trunk, in the user's units
    every_task = model.predict(X[:5])
    np.testing.assert_allclose(new, every_task.mean(axis=1), rtol=1e-6)
    stacked = MultiTaskRegressor(sharing="stacked", unknown_task="shared", **TINY)
    stacked.fit(X, y, task_ids=task)
    with pytest.raises(ValueError, match="sharing='stacked' has none"):
        stacked.predict(X[:5], task_ids=["new"] * 5)


def test_an_unseen_task_of_a_split_adaptive_network_is_the_mean_of_the_tasks_predictions():
    """After the split each head reads its own branch; an unseen task was given every head on
    task 0's branch, units that the heads of the other branch never read (1.1 off the mean of
    the tasks' predictions on planted groups)."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(400, 6))
    coef = np.array([[1, 1, 0, 0, 0, 0], [1, 0.8, 0, 0, 0, 0], [0, 0, 1, -1, 0, 0],
                     [0, 0, 1, -0.8, 0, 0]]).T  # two groups of two tasks
    Y = X @ coef + 0.05 * rng.normal(size=(400, 4))
    model = MultiTaskRegressor(sharing="adaptive", hidden_layer_sizes=(16, 16), max_epochs=20,
                               lr=1e-2, batch_size=50, early_stopping=False,
                               unknown_task="shared", random_state=0).fit(X, Y)
    assert model.branches_[-1] == [[0, 1], [2, 3]]  # split: no representation all tasks read
    new = model.predict(X[:50], task_ids=["new"] * 50)
    np.testing.assert_allclose(new, model.predict(X[:50]).mean(axis=1), rtol=1e-5, atol=1e-6)
