"""GPU check: the deep estimators on CUDA against the CPU, and the CPU / GPU epoch-time ratio.

On a machine with CUDA (``torch.cuda.is_available()``), in well under 5 minutes:

(a) **Agreement.** Each case of ``CASES`` (``MultiTaskRegressor`` / ``MultiTaskClassifier``
    with several sharing strategies and weightings, ``FocusedTaskRegressor`` /
    ``FocusedTaskClassifier`` with several strategies) is fitted on small generated data twice,
    with the same ``random_state``: on ``device="cuda"`` and on ``device="cpu"``. The
    predictions (probabilities for the classifiers) must agree within ``TOLERANCE``: the
    largest absolute difference, divided by the standard deviation of the CPU predictions for
    a regressor, taken as is for probabilities, at most 1e-3.

    Why not equal: both devices train in float32, and cuBLAS (cuDNN too, for a user's
    convolutional module) sums in another order than the CPU's BLAS; some GPU reductions use
    atomics, so their order even changes from run to run. The weights then differ by rounding
    (about 1e-7 relative) from the first step on, and the 100 Adam steps of a case carry the
    differences on. Measured on the CPU with these cases, a relative change of 1e-7 in X moves
    the predictions by at most 1e-6 (of their spread, or in probability) and one of 1e-5, a
    hundred float32 roundings, by at most 1e-4: training amplifies a perturbation about
    ten-fold. 1e-3 leaves two orders of magnitude for the GPU's reductions, while a real
    device bug (a mask, a task index or a seed lost on the way, a tensor on the wrong device)
    changes the fitted model, not its rounding. Dropout is off (its masks come from the CUDA
    generator on the GPU and from the CPU generator on the CPU: two different models) and so
    is early stopping (a validation loss that differs by rounding could stop training at
    another epoch).

(b) **Speed.** The epoch time of ``MultiTaskClassifier(sharing="hard")`` (trunk (512, 256),
    batch 256, Adam) on PCBA-shaped data: sparse binary X (CSR, 10% ones) with 1,024
    features, 128 binary tasks, 90% of the labels missing, ``--n-samples`` rows (20,000 by
    default: a subsample of PCBA's 440,000 that keeps the run short). Printed: the median
    epoch time on each device (the first epoch, which pays CUDA's start-up, left out) and the
    ratio CPU / GPU.

On a machine without CUDA it prints that it skipped and exits with status 0. Status 1 means a
case disagreed beyond the tolerance. Run ``python benchmarks/gpu_check.py`` (``--help`` for
the options).
"""

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

# largest difference of predictions allowed: relative to the CPU predictions' standard
# deviation (regressors), absolute on probabilities (classifiers); see the module docstring
TOLERANCE = 1e-3

# (estimator class name, parameters): sharing strategies, weightings and focused strategies
CASES = (
    ("MultiTaskRegressor", dict(sharing="hard")),
    ("MultiTaskRegressor", dict(sharing="cross_stitch")),
    ("MultiTaskRegressor", dict(sharing="soft", weighting="uncertainty")),
    ("MultiTaskRegressor", dict(sharing="conditioned")),
    ("MultiTaskClassifier", dict(sharing="hard", weighting="gradnorm")),
    ("MultiTaskClassifier", dict(sharing="independent")),
    ("MultiTaskRegressor", dict(sharing="tensor_factorisation", auxiliary="reconstruction")),
    ("MultiTaskRegressor", dict(sharing="relationship", auxiliary="adversarial")),
    ("MultiTaskClassifier", dict(sharing="adaptive", max_branches=2)),
    ("MultiTaskClassifier", dict(sharing="low_supervision", task_depths=[1, 2, 2, 1])),
    ("MultiTaskRegressor", dict(sharing="stacked")),
    ("FocusedTaskRegressor", dict(focus_task=0, strategy="rmtl")),
    ("FocusedTaskClassifier", dict(focus_task=0, strategy="finetune")),
)
# the training of every agreement case: no dropout, no early stopping (see the docstring)
TRAINING = dict(hidden_layer_sizes=(32, 16), max_epochs=10, batch_size=32, lr=1e-3,
                dropout=0.0, early_stopping=False, random_state=0)


def small_data(classification, seed=0):
    """300 rows, 10 features, 4 tasks with 20% of the labels missing."""
    from skmtl.datasets import make_multitask_classification, make_multitask_regression

    make = make_multitask_classification if classification else make_multitask_regression
    X, Y = make(n_samples=300, n_features=10, n_tasks=4, missing_rate=0.2, random_state=seed)
    return X, Y


def _fit_predict(name, params, X, Y, device):
    from skmtl import deep

    estimator = getattr(deep, name)(**TRAINING, **params, device=device).fit(X, Y)
    if not str(estimator.net_.device).startswith(device):
        raise RuntimeError(f"{name} was asked for {device} and trained on "
                           f"{estimator.net_.device}.")
    if "Classifier" in name:
        proba = estimator.predict_proba(X)
        return np.hstack(proba) if isinstance(proba, list) else proba
    return estimator.predict(X)


def agreement(device="cuda", reference="cpu", cases=CASES):
    """``(case, difference)`` for every case: the largest difference between the predictions
    of a fit on ``device`` and one on ``reference``, as compared with ``TOLERANCE``."""
    data = {False: small_data(False), True: small_data(True)}
    out = []
    for name, params in cases:
        X, Y = data["Classifier" in name]
        a = _fit_predict(name, params, X, Y, device)
        b = _fit_predict(name, params, X, Y, reference)
        difference = float(np.max(np.abs(a - b)))
        if "Regressor" in name:
            difference /= float(np.std(b))
        label = f"{name}({', '.join(f'{k}={v!r}' for k, v in params.items())})"
        out.append((label, difference))
    return out


def _pcba_data(n_samples, seed=0):
    """PCBA-shaped data from benchmarks/deep.py's generator, X as CSR."""
    import scipy.sparse as sp

    path = Path(__file__).with_name("deep.py")
    spec = importlib.util.spec_from_file_location("_skmtl_benchmarks_deep", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    X, Y = module.make_data(n_samples, 1_024, 128, 0.9, seed=seed)
    return sp.csr_matrix(X), Y


def epoch_times(X, Y, device, epochs):
    """Epoch times (s) of hard sharing on ``device``, the first one left out."""
    from skmtl.deep import MultiTaskClassifier

    estimator = MultiTaskClassifier(
        sharing="hard", hidden_layer_sizes=(512, 256), max_epochs=epochs, batch_size=256,
        lr=1e-3, optimizer="adam", weight_decay=0.0, dropout=0.0, early_stopping=False,
        device=device, random_state=0).fit(X, Y)
    return list(estimator.net_.history[1:, "dur"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=20_000,
                        help="rows of the PCBA-shaped data of the timing (default: 20,000)")
    parser.add_argument("--epochs", type=int, default=3,
                        help="epochs per device in the timing, the first not counted "
                        "(default: 3)")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is not timed)")
    if not torch.cuda.is_available():
        print("GPU check skipped: CUDA is not available on this machine "
              "(torch.cuda.is_available() is False).")
        return 0
    start = time.perf_counter()
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"{torch.cuda.get_device_name()}; {torch.get_num_threads()} CPU thread(s)")

    print(f"\n(a) predictions on cuda against cpu, tolerance {TOLERANCE:g}")
    failed = 0
    for label, difference in agreement():
        ok = difference <= TOLERANCE
        failed += not ok
        print(f"{'ok' if ok else 'FAILED':<8}{difference:>10.2e}  {label}")

    print(f"\n(b) epoch time at PCBA shape: {args.n_samples} rows x 1,024 sparse binary "
          "features, 128 tasks, 90% missing; hard sharing (512, 256), batch 256")
    X, Y = _pcba_data(args.n_samples)
    median = {device: statistics.median(epoch_times(X, Y, device, args.epochs))
              for device in ("cuda", "cpu")}
    print(f"{'device':<8}{'epoch (s)':>10}")
    for device, seconds in median.items():
        print(f"{device:<8}{seconds:>10.3f}")
    print(f"CPU / GPU epoch-time ratio: {median['cpu'] / median['cuda']:.1f}")
    print(f"\n{time.perf_counter() - start:.0f} s in all; "
          f"{'all cases agree' if not failed else f'{failed} case(s) FAILED'}.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
