"""Task descriptors for ``sharing="conditioned"``: fixed embeddings, zero-shot predictions of
described tasks not seen in fit, errors, and scikit-learn's clone / grid search."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pd = pytest.importorskip("pandas")

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold  # noqa: E402

from skmtl import UnknownTaskError  # noqa: E402
from skmtl.deep import MultiTaskClassifier, MultiTaskRegressor  # noqa: E402
from skmtl.deep.modules import build_module  # noqa: E402

SMALL = dict(sharing="conditioned", hidden_layer_sizes=(6,), max_epochs=3, batch_size=16,
             lr=1e-2, early_stopping=False, random_state=0)
DESCRIPTORS = pd.DataFrame(
    [[1.0, 0.0, 0.5], [0.0, 1.0, -0.5], [1.0, 1.0, 0.0], [-1.0, 0.5, 2.0]],
    index=["a", "b", "c", "held_out"], columns=["size", "sector", "age"],
)


def _data(n=60, classification=False, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 4))
    values = X @ rng.normal(size=(4, 3)) + 0.1 * rng.normal(size=(n, 3))
    if classification:
        values = (values > 0).astype(float)
        values[:2] = [[0.0] * 3, [1.0] * 3]
    Y = pd.DataFrame(values, columns=["a", "b", "c"])
    Y[rng.uniform(size=Y.shape) < 0.2] = np.nan
    return X, Y


def test_module_feeds_the_fixed_descriptors():
    z = np.arange(6.0).reshape(3, 2)
    module = build_module("conditioned", 4, [1, 1, 1], hidden_layer_sizes=(5,),
                          task_descriptors=z)
    assert module.embedding_dim == 2
    assert not module.embedding.requires_grad
    assert all(param is not module.embedding for param in module.parameters())
    np.testing.assert_array_equal(module.embedding.numpy(), z)
    with pytest.raises(ValueError, match="embedding_dim must be None"):
        build_module("conditioned", 4, [1, 1, 1], task_descriptors=z, embedding_dim=3)
    with pytest.raises(ValueError, match="sharing='conditioned' only"):
        build_module("hard", 4, [1, 1, 1], task_descriptors=z)


@pytest.mark.parametrize("as_frame", [True, False])
def test_the_embedding_is_the_descriptors_and_is_not_trained(as_frame):
    X, Y = _data()
    descriptors = DESCRIPTORS if as_frame else DESCRIPTORS.loc[["a", "b", "c"]].to_numpy()
    est = MultiTaskRegressor(**SMALL, task_descriptors=descriptors).fit(X, Y)
    module = est.net_.module_
    expected = DESCRIPTORS.loc[["a", "b", "c"]].to_numpy()
    np.testing.assert_array_equal(est.task_descriptors_, expected)
    np.testing.assert_array_equal(module.embedding.numpy(), expected.astype(np.float32))
    assert not module.embedding.requires_grad
    trained = {id(p) for group in est.net_.optimizer_.param_groups for p in group["params"]}
    assert id(module.embedding) not in trained
    assert est.zero_shot_tasks_.tolist() == (["held_out"] if as_frame else [])


def _hand_zero_shot_outputs(est, X, z):
    """(n, T) head outputs on the network fed z: concat conditioning, one hidden layer."""
    module = est.net_.module_
    W = module.input_layer.weight.detach().double().numpy()
    b = module.input_layer.bias.detach().double().numpy()
    H = np.maximum(X @ W[:, : X.shape[1]].T + W[:, X.shape[1]:] @ z + b, 0)
    heads = module.task_heads.output
    Wh, bh = heads.weight.detach().double().numpy(), heads.bias.detach().double().numpy()
    return np.einsum("nh,th->nt", H, Wh[:, :, 0]) + bh[:, 0]


def test_zero_shot_regression_equals_the_computation_by_hand():
    X, Y = _data()
    est = MultiTaskRegressor(**SMALL, task_descriptors=DESCRIPTORS).fit(X, Y)
    z = DESCRIPTORS.loc["held_out"].to_numpy()
    out = _hand_zero_shot_outputs(est, X, z)
    expected = (out * est.target_scale_ + est.target_mean_).mean(axis=1)
    pred = est.predict(X, task_ids=["held_out"] * len(X))
    np.testing.assert_allclose(pred, expected, rtol=1e-5, atol=1e-5)
    # mixed rows: seen tasks as without descriptors of other tasks, the held-out one zero-shot
    task_ids = np.array(["a", "held_out", "c", "held_out", "b"] * 12)
    mixed = est.predict(X, task_ids=task_ids)
    full = est.predict(X)
    for position, task in enumerate(["a", "b", "c"]):
        rows = task_ids == task
        np.testing.assert_allclose(mixed[rows], full[rows, position])
    np.testing.assert_allclose(mixed[task_ids == "held_out"], expected[task_ids == "held_out"],
                               rtol=1e-5, atol=1e-5)


def test_zero_shot_classification_averages_the_heads_logits():
    X, Y = _data(classification=True)
    est = MultiTaskClassifier(**SMALL, task_descriptors=DESCRIPTORS).fit(X, Y)
    logits = _hand_zero_shot_outputs(est, X, DESCRIPTORS.loc["held_out"].to_numpy())
    expected = 1.0 / (1.0 + np.exp(-logits.mean(axis=1)))
    task_ids = np.array(["held_out", "a"] * 30)
    proba = est.predict_proba(X, task_ids=task_ids)
    zero = task_ids == "held_out"
    np.testing.assert_allclose(proba[zero, 1], expected[zero], rtol=1e-5)
    np.testing.assert_allclose(proba[~zero], est.predict_proba(X)[0][~zero])
    labels = est.predict(X, task_ids=task_ids)
    np.testing.assert_array_equal(labels[zero], (expected[zero] > 0.5).astype(float))


def test_a_task_without_labels_nor_descriptor_is_still_unknown():
    X, Y = _data()
    est = MultiTaskRegressor(**SMALL, task_descriptors=DESCRIPTORS).fit(X, Y)
    with pytest.raises(UnknownTaskError, match="'other'"):
        est.predict(X[:2], task_ids=["other", "held_out"])
    shared = clone(est).set_params(unknown_task="shared").fit(X, Y)
    pred = shared.predict(X, task_ids=["other"] * len(X))
    z = DESCRIPTORS.loc[["a", "b", "c"]].to_numpy().mean(axis=0)  # the mean descriptor
    out = _hand_zero_shot_outputs(shared, X, z)
    expected = (out * shared.target_scale_ + shared.target_mean_).mean(axis=1)
    np.testing.assert_allclose(pred, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"task_descriptors": DESCRIPTORS.drop(index="b")},
         r"no row for the training task\(s\) \['b'\]"),
        ({"task_descriptors": np.zeros((4, 2))}, r"shape \(n_tasks, d\) = \(3, d\).*\(4, 2\)"),
        ({"task_descriptors": np.zeros(3)}, r"shape \(n_tasks, d\) = \(3, d\)"),
        ({"task_descriptors": DESCRIPTORS.replace(2.0, np.inf)},
         r"task\(s\) \['held_out'\] have non-finite values"),
        ({"task_descriptors": np.array([[0.0], [np.nan], [1.0]])},
         r"task\(s\) \['b'\] have non-finite values"),
        ({"task_descriptors": DESCRIPTORS, "sharing": "hard"},
         "sharing='conditioned' only; got sharing='hard'"),
        ({"task_descriptors": DESCRIPTORS, "embedding_dim": 2},
         "embedding_dim=2 but task_descriptors have 3 columns"),
        ({"task_descriptors": pd.concat([DESCRIPTORS, DESCRIPTORS.iloc[:1]])},
         r"several rows for task\(s\) \['a'\]"),
    ],
)
def test_bad_descriptors_raise_a_value_error_naming_the_problem(params, match):
    X, Y = _data(n=20)
    with pytest.raises(ValueError, match=match):
        MultiTaskRegressor(**{**SMALL, **params}).fit(X, Y)


def test_get_params_and_clone_keep_the_data_frame_and_a_grid_searches_it():
    est = MultiTaskRegressor(**SMALL, task_descriptors=DESCRIPTORS)
    assert est.get_params()["task_descriptors"] is DESCRIPTORS
    copy = clone(est).get_params()["task_descriptors"]
    assert isinstance(copy, pd.DataFrame)
    pd.testing.assert_frame_equal(copy, DESCRIPTORS)
    X, Y = _data()
    grid = GridSearchCV(
        MultiTaskRegressor(**SMALL),
        [{"sharing": ["conditioned"], "task_descriptors": [None, DESCRIPTORS]},
         {"sharing": ["hard"]}],
        cv=KFold(2, shuffle=True, random_state=0),
    ).fit(X, Y)
    assert len(grid.cv_results_["params"]) == 3
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()
    fitted = grid.best_estimator_.get_params()["task_descriptors"]
    assert fitted is None or fitted.equals(DESCRIPTORS)
