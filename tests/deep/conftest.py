"""Shared fixtures of the deep tests: fixed seeds, the device from the environment (one torch
thread comes from ``tests/conftest.py``).

``SKMTL_TEST_DEVICE`` (default ``"cpu"``) selects the device the estimator tests train on, as
torchjd's tests do; e.g. ``SKMTL_TEST_DEVICE=cuda:0 pytest tests/deep``. Tests never need a GPU.
"""

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

DEVICE = os.environ.get("SKMTL_TEST_DEVICE", "cpu")


@pytest.fixture(autouse=True)
def _fixed_seeds():
    """Seed numpy's and torch's global generators, restoring torch's afterwards."""
    state = np.random.get_state()  # noqa: NPY002 (random_state=None reads it)
    np.random.seed(0)  # noqa: NPY002
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield
    np.random.set_state(state)  # noqa: NPY002


@pytest.fixture
def device():
    """The device estimators are trained on (``SKMTL_TEST_DEVICE``, default ``"cpu"``)."""
    return DEVICE
