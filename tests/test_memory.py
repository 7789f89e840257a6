"""Peak memory of a fit over the size of its input (issue 12): no per-task copy of X at once.

The measure is benchmarks/memory.py's (peak traced memory of one fit, after a warm-up fit,
over the bytes of X and Y), on a smaller shape whose ratios are those of the benchmark's
(the per-task copies of the old code gave 21x to 24x here, 11x on the sparse X).
"""

import pytest
from _benchmarks import benchmark_module
from sklearn.linear_model import Ridge

from skmtl import IndependentTasks
from skmtl.linear import MeanClusteredRegressor

WIDE = (4_000, 200, 50, 0.5)  # rows, features, tasks, share of missing labels


@pytest.fixture(scope="module")
def memory():
    with benchmark_module("memory") as module:
        yield module


def test_independent_tasks_slices_one_task_at_a_time(memory):
    ratio = memory.peak_ratio(lambda X, Y: IndependentTasks(Ridge()).fit(X, Y),
                              *memory.wide_data(*WIDE))
    assert ratio <= 2.0


def test_independent_tasks_keeps_sparse_X_lean(memory):
    data = memory.sparse_wide_data(4_000, 2_000, 50, 0.5)
    ratio = memory.peak_ratio(lambda X, Y: IndependentTasks(Ridge()).fit(X, Y), *data)
    assert ratio <= 2.0


def test_mean_clustered_reads_each_task_through_row_indices(memory):
    ratio = memory.peak_ratio(lambda X, Y: MeanClusteredRegressor().fit(X, Y),
                              *memory.wide_data(*WIDE))
    assert ratio <= 2.0
