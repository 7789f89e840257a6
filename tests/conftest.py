"""Settings for the whole test suite.

Torch, when installed, runs with one intra-op thread: every network in the tests is tiny, so one
thread is as fast, and immune to the spinning OpenMP workers that slow small ops down a
hundredfold when another process keeps the cores busy.
"""

import importlib.util

import pytest


@pytest.fixture(autouse=True, scope="session")
def _torch_one_thread():
    if importlib.util.find_spec("torch") is None:
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
