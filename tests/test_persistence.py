"""Saving and loading fitted estimators: skops for every estimator, pickle, a fresh process.

Every estimator of the common-test table (``tests/_instances.py``), deep ones included, is
fitted on tiny wide data with missing labels (deep ones for 2 epochs), saved with skops and
loaded back: ``get_untrusted_types`` lists skmtl types only, and the loaded model predicts
(and gives probabilities) identically. The deep networks go through
:class:`~skmtl.deep._persistence.NetStateMixin`.
"""

import copy
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from _instances import all_instances
from sklearn.base import clone, is_classifier

import skmtl

sio = pytest.importorskip("skops.io")

DEEP_FAST = {"max_epochs": 2, "early_stopping": False}

def _is_deep(estimator):
    return "max_epochs" in estimator.get_params()


def _fast(estimator):
    """An unfitted copy that trains for 2 epochs without early stopping (deep estimators)."""
    estimator = clone(estimator)
    if _is_deep(estimator):
        params = dict(DEEP_FAST)
        if estimator.get_params().get("finetune_epochs") is not None:
            params["finetune_epochs"] = 1
        estimator.set_params(**params)
    return estimator


def _data(classification, seed=0, n_samples=40, n_tasks=3):
    """Tiny wide data with a few missing labels (each task keeps both classes)."""
    rng = np.random.RandomState(seed)
    X = rng.randn(n_samples, 4)
    Y = X[:, :n_tasks] + 0.3 * rng.randn(n_samples, n_tasks)
    if classification:
        Y = (Y > 0).astype(float)
    Y[rng.rand(n_samples, n_tasks) < 0.1] = np.nan
    return X, Y


def _fitted(estimator):
    X, Y = _data(is_classifier(estimator))
    return _fast(estimator).fit(X, Y), X


def _outputs(estimator, X):
    """predict, and predict_proba where there is one (arrays or a list of arrays)."""
    outputs = [estimator.predict(X)]
    if hasattr(estimator, "predict_proba"):
        proba = estimator.predict_proba(X)
        outputs.extend(proba if isinstance(proba, list) else [proba])
    return outputs


def _assert_same_outputs(expected, loaded, X):
    for before, after in zip(_outputs(expected, X), _outputs(loaded, X), strict=True):
        np.testing.assert_array_equal(after, before)


def _skops_round_trip(estimator):
    data = sio.dumps(estimator)
    untrusted = sio.get_untrusted_types(data=data)
    return sio.loads(data, trusted=untrusted), untrusted


DEEP = [est for est in all_instances() if _is_deep(est)]


# (the CV estimators' tiny grids may warn that the optimum lies at their edge)
@pytest.mark.filterwarnings("ignore::skmtl.linear.GridEdgeWarning")
@pytest.mark.parametrize("estimator", all_instances(), ids=repr)
def test_skops_round_trip_predicts_identically(estimator):
    fitted, X = _fitted(estimator)
    loaded, untrusted = _skops_round_trip(fitted)
    # skops trusts scikit-learn and numpy types; only skmtl's own remain to be trusted
    assert untrusted, "the estimator's own class is not trusted by default"
    assert all(name.startswith("skmtl.") for name in untrusted), untrusted
    assert type(loaded) is type(fitted)
    _assert_same_outputs(fitted, loaded, X)


@pytest.mark.parametrize("estimator", DEEP, ids=repr)
def test_pickle_round_trip_predicts_identically(estimator):
    fitted, X = _fitted(estimator)
    loaded = pickle.loads(pickle.dumps(fitted))
    _assert_same_outputs(fitted, loaded, X)


@pytest.mark.parametrize("estimator", DEEP, ids=repr)
def test_loaded_net_keeps_what_the_estimator_reads(estimator):
    fitted, X = _fitted(estimator)
    net = fitted.net_
    loaded = pickle.loads(pickle.dumps(fitted)).net_
    assert (loaded.batch_size, loaded.device) == (net.batch_size, net.device)
    np.testing.assert_equal(list(loaded.history), list(net.history))  # NaN == NaN here
    np.testing.assert_array_equal(loaded.gradient_affinity(), net.gradient_affinity())
    assert type(loaded.weighting_) is type(net.weighting_)
    np.testing.assert_array_equal(
        np.asarray(loaded.weighting_.current_weights()),
        np.asarray(net.weighting_.current_weights()),
    )
    before, after = net.module_.state_dict(), loaded.module_.state_dict()
    assert list(after) == list(before)
    for name, tensor in before.items():
        np.testing.assert_array_equal(after[name].numpy(), tensor.numpy(), err_msg=name)
    frozen = [name for name, p in net.module_.named_parameters() if not p.requires_grad]
    assert frozen == [
        name for name, p in loaded.module_.named_parameters() if not p.requires_grad
    ]
    # the weighting's learned parameters are the ones the optimizer trains, as after fit
    learned = {id(p) for p in loaded.weighting_params_.parameters()}
    optimized = {id(p) for group in loaded.optimizer_.param_groups for p in group["params"]}
    assert learned <= optimized


def _deep_regressor(**params):
    pytest.importorskip("torch")
    from skmtl.deep import MultiTaskRegressor

    defaults = dict(hidden_layer_sizes=(8,), batch_size=16, random_state=0, **DEEP_FAST)
    return MultiTaskRegressor(**{**defaults, **params})


def test_net_state_holds_no_tensor_and_no_training_data():
    torch = pytest.importorskip("torch")
    X, Y = _data(classification=False)
    # early stopping: the fitted net's train_split holds the validation rows of X
    fitted = _deep_regressor(weighting="uncertainty", early_stopping=True).fit(X, Y)
    state = fitted.net_.__getstate__()

    def walk(value):
        if isinstance(value, dict):
            for item in value.values():
                yield from walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                yield from walk(item)
        else:
            yield value

    leaves = list(walk(state))
    assert not any(isinstance(leaf, (torch.Tensor, torch.nn.Module)) for leaf in leaves)
    assert not any(isinstance(leaf, np.ndarray) and leaf.shape == X.shape for leaf in leaves)
    loaded = pickle.loads(pickle.dumps(fitted.net_))
    assert loaded.train_split is None


def test_loading_leaves_the_global_random_state_alone():
    torch = pytest.importorskip("torch")
    X, Y = _data(classification=False)
    data = pickle.dumps(_deep_regressor().fit(X, Y))
    before = torch.random.get_rng_state()
    pickle.loads(data)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_copy_and_clone_are_unaffected():
    X, Y = _data(classification=False)
    fitted = _deep_regressor(weighting="gradnorm").fit(X, Y)
    copied = copy.deepcopy(fitted)
    np.testing.assert_array_equal(copied.predict(X), fitted.predict(X))
    # a deep copy keeps the live training state that a saved model drops
    assert copied.net_.optimizer_.state_dict()["state"]
    assert len(copied.net_.optimizer_.state_dict()["state"]) == len(
        fitted.net_.optimizer_.state_dict()["state"]
    )
    assert copied.net_.module_ is not fitted.net_.module_
    assert copy.copy(fitted.net_).module_ is fitted.net_.module_
    unfitted = clone(fitted)
    assert not hasattr(unfitted, "net_")
    assert unfitted.get_params() == fitted.get_params()


def test_a_cuda_model_loads_on_the_cpu(monkeypatch):
    """A net saved with device="cuda" loads on a machine without CUDA, on the CPU.

    Simulated: the state of a CPU fit is relabelled as CUDA's (arrays carry no device).
    """
    torch = pytest.importorskip("torch")
    X, Y = _data(classification=False)
    fitted = _deep_regressor(weighting="uncertainty").fit(X, Y)
    state = fitted.net_.__getstate__()
    state["params"]["device"] = "cuda"
    for entry in state["tensors"]:
        entry["on_cpu"] = False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    net = type(fitted.net_).__new__(type(fitted.net_))
    with pytest.warns(UserWarning, match="CUDA is not available"):
        net.__setstate__(state)
    assert net.device == "cpu"
    assert all(p.device.type == "cpu" for p in net.module_.parameters())
    assert net.weighting_.device_ == torch.device("cpu")
    fitted.net_ = net
    np.testing.assert_array_equal(fitted.predict(X), pickle.loads(pickle.dumps(fitted)).predict(X))


def test_version_mismatch_warns_and_unknown_format_raises():
    X, Y = _data(classification=False)
    net = _deep_regressor().fit(X, Y).net_
    state = net.__getstate__()
    with pytest.warns(UserWarning, match="saved with skmtl 0.0.1"):
        type(net).__new__(type(net)).__setstate__({**state, "skmtl_version": "0.0.1"})
    with pytest.raises(ValueError, match="state format 99"):
        type(net).__new__(type(net)).__setstate__({**state, "format": 99})


LOAD_AND_PREDICT = """
import sys
import numpy as np
import skops.io as sio

model_path, X_path, out_path = sys.argv[1:]
data = open(model_path, "rb").read()
model = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
X = np.load(X_path)
np.savez(out_path, predict=model.predict(X), proba=model.predict_proba(X)[0])
"""


def test_a_saved_model_predicts_identically_in_a_fresh_process(tmp_path):
    """Saved on this machine (CPU), loaded by another Python process that never fitted it."""
    pytest.importorskip("torch")
    from skmtl.deep import MultiTaskClassifier

    X, Y = _data(classification=True)
    fitted = MultiTaskClassifier(
        hidden_layer_sizes=(8,), batch_size=16, random_state=0, weighting="uncertainty",
        **DEEP_FAST,
    ).fit(X, Y)
    sio.dump(fitted, tmp_path / "model.skops")
    np.save(tmp_path / "X.npy", X)
    root = Path(skmtl.__file__).resolve().parents[1]  # this skmtl, not another install
    subprocess.run(
        [sys.executable, "-c", textwrap.dedent(LOAD_AND_PREDICT),
         str(tmp_path / "model.skops"), str(tmp_path / "X.npy"), str(tmp_path / "out.npz")],
        check=True, cwd=root, env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"},
        timeout=120,
    )
    out = np.load(tmp_path / "out.npz")
    np.testing.assert_array_equal(out["predict"], fitted.predict(X))
    np.testing.assert_array_equal(out["proba"], fitted.predict_proba(X)[0])


def test_skops_file_of_many_tasks_stays_the_size_of_the_pickle():
    # the history of 300 tasks (two losses per task and epoch, the task weights) is saved as
    # tables: skops writes every Python float as an entry of its own (6.4x the pickle as lists)
    from skmtl.deep import MultiTaskRegressor

    rng = np.random.RandomState(0)
    X = rng.normal(size=(3000, 4))
    task_ids = rng.randint(300, size=3000)
    y = X[:, 0] + rng.normal(size=3000)
    model = MultiTaskRegressor(hidden_layer_sizes=(8,), max_epochs=10, random_state=0).fit(
        X, y, task_ids=task_ids)
    data = sio.dumps(model)
    assert len(data) < 3 * len(pickle.dumps(model))
    restored = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    np.testing.assert_equal(list(restored.net_.history), list(model.net_.history))
    np.testing.assert_array_equal(restored.predict(X, task_ids=task_ids),
                                  model.predict(X, task_ids=task_ids))
