"""benchmarks/gpu_check.py: it skips cleanly without CUDA; with CUDA, cuda agrees with cpu."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("skorch")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("_skmtl_gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_skips_and_exits_0_without_cuda():
    # CUDA hidden, so that the test stays a quick skip on a GPU machine too
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("GPU check skipped: CUDA is not available on this machine "
                                   "(torch.cuda.is_available() is False).")


def test_agreement_is_measured_against_the_tolerance(gpu_check):
    """The comparison itself, on the CPU against the CPU: same seed, identical predictions."""
    [(label, difference)] = gpu_check.agreement(
        "cpu", "cpu", cases=[("MultiTaskRegressor", dict(sharing="hard"))])
    assert label == "MultiTaskRegressor(sharing='hard')"
    assert difference == 0.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_deep_estimators_on_cuda_agree_with_cpu(gpu_check):
    results = gpu_check.agreement("cuda", "cpu")
    assert len(results) == len(gpu_check.CASES)
    for label, difference in results:
        assert np.isfinite(difference) and difference <= gpu_check.TOLERANCE, label
