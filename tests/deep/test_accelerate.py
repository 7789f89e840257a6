"""Data-parallel training through ``accelerator=`` (skorch's AccelerateMixin).

The two-process run starts the script below with ``torchrun --nproc_per_node 2`` (the
launcher ``accelerate launch`` uses for several processes; with ``--cpu`` it would need MPI):
both processes must end with the same network (identical predictions), having trained on
disjoint shares of each epoch's batches that together are the whole training set.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("accelerate")
torch = pytest.importorskip("torch")

from skmtl.deep._labels import TaskLabels  # noqa: E402
from skmtl.deep._net import MultiTaskDataset, _BatchSampler  # noqa: E402

SCRIPT = """
import json, sys
import numpy as np
from accelerate import Accelerator
from skorch.callbacks import Callback
from skmtl.deep import FocusedTaskClassifier, MultiTaskRegressor

class Seen(Callback):
    def on_train_begin(self, net, **kwargs):
        self.rows = []
    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if training and len(net.history) == 1:
            self.rows += batch[0][:, 0].tolist()

out, weighting = sys.argv[1], sys.argv[2]
accelerator = Accelerator(cpu=True)
rng = np.random.RandomState(0)
X = rng.normal(size=(192, 5))
X[:, 0] = np.arange(192)  # the row's number, to see which rows a process trained on
Y = X[:, 1:] @ rng.normal(size=(4, 3)) + 0.1 * rng.normal(size=(192, 3))
Y[rng.uniform(size=Y.shape) < 0.3] = np.nan
seen = Seen()
# random_state=None: each process draws its own seed; process 0's must win
est = MultiTaskRegressor(hidden_layer_sizes=(16,), max_epochs=3, batch_size=32, lr=1e-2,
                         weighting=weighting, early_stopping=False, callbacks=[seen],
                         accelerator=accelerator).fit(X, Y)
focused = FocusedTaskClassifier(focus_task=0, strategy="rmtl", hidden_layer_sizes=(8,),
                                max_epochs=3, batch_size=32, accelerator=accelerator,
                                random_state=0).fit(X, np.where(np.isnan(Y), np.nan, Y > 0))
rank = accelerator.process_index
seen_rows = next(cb for _, cb in est.net_.callbacks_ if isinstance(cb, Seen)).rows
np.savez(f"{out}/process_{rank}.npz", pred=est.predict(X),
         proba=focused.predict_proba(X), rows=np.array(seen_rows))
with open(f"{out}/process_{rank}.json", "w") as f:
    json.dump({"processes": accelerator.num_processes, "net": type(est.net_).__name__,
               "epochs": est.n_iter_}, f)
"""


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("weighting", ["equal", "gradnorm", "lbtw"])
def test_two_processes_train_one_network_on_disjoint_batches(tmp_path, weighting):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(SCRIPT))
    root = Path(__file__).resolve().parents[2]
    torchrun = Path(sys.executable).with_name("torchrun")
    subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "--master_port", str(_free_port()), str(script),
         str(tmp_path), weighting],
        check=True, cwd=tmp_path, timeout=300,
        env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"},
    )
    runs = [np.load(tmp_path / f"process_{rank}.npz") for rank in (0, 1)]
    info = [json.loads((tmp_path / f"process_{rank}.json").read_text()) for rank in (0, 1)]
    assert all(i == {"processes": 2, "net": "MultiTaskNet", "epochs": 3} for i in info)
    np.testing.assert_array_equal(runs[0]["pred"], runs[1]["pred"])
    for a, b in zip(runs[0]["proba"], runs[1]["proba"], strict=True):
        np.testing.assert_array_equal(a, b)
    # epoch 1: 6 batches of 32 rows dealt 3 and 3, each row trained on exactly once
    rows = [run["rows"] for run in runs]
    assert [len(r) for r in rows] == [96, 96]
    np.testing.assert_array_equal(np.sort(np.concatenate(rows)), np.arange(192))


def _dataset(n=100, n_tasks=3):
    rng = np.random.RandomState(0)
    mask = rng.uniform(size=(n, n_tasks)) < 0.7
    values = np.where(mask, rng.normal(size=mask.shape), 0).astype(np.float32)
    return MultiTaskDataset(rng.normal(size=(n, 2)), TaskLabels.from_wide(values, mask))


@pytest.mark.parametrize("sampling", ["joint", "uniform"])
def test_shards_deal_the_same_batches_round_robin(sampling):
    dataset = _dataset()

    def batches(shard):
        sampler = _BatchSampler(dataset, 16, True, sampling, generator=torch.Generator()
                                .manual_seed(3), shard=shard)
        return [(rows.tolist(), task) for rows, task in sampler], len(sampler)

    whole, n = batches(None)
    assert n == 7
    for world in (2, 3):
        shares = [batches((rank, world)) for rank in range(world)]
        assert [length for _, length in shares] == [-(-7 // world)] * world
        for rank, (share, _) in enumerate(shares):
            expected = [whole[(rank + step * world) % 7] for step in range(-(-7 // world))]
            assert share == expected  # round robin, wrapping round to the first batches


def test_one_process_accelerator_fits_and_releases_a_plain_net():
    from accelerate import Accelerator

    from skmtl.deep import MultiTaskRegressor
    from skmtl.deep._net import MultiTaskNet

    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 4))
    Y = X @ rng.normal(size=(4, 2))
    est = MultiTaskRegressor(hidden_layer_sizes=(8,), max_epochs=2, batch_size=16,
                             accelerator=Accelerator(cpu=True), random_state=0).fit(X, Y)
    assert type(est.net_) is MultiTaskNet
    assert not hasattr(est.net_, "accelerator")
    assert est.predict(X).shape == (60, 2)
    again = MultiTaskRegressor(hidden_layer_sizes=(8,), max_epochs=2, batch_size=16,
                               accelerator=Accelerator(cpu=True), random_state=0).fit(X, Y)
    np.testing.assert_array_equal(est.predict(X), again.predict(X))
