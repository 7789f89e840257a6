"""The comparison behind the multi-task checks: rounding passes, a real difference fails."""

import numpy as np
import pytest

from skmtl.utils.estimator_checks import _assert_same


def test_near_zero_outputs_compare_at_the_outputs_scale():
    # a float32 network's unseen-task prediction near zero, from batches of 5 and 10 rows
    a = np.array([-0.34073032, 0.00225887, -0.62152315])
    _assert_same(a, a + [1e-8, -5.3e-8, 7e-8], "rounding", "Net")
    with pytest.raises(AssertionError, match="Net: depends on the other rows"):
        _assert_same(a, a + [0.0, 1e-4, 0.0], "depends on the other rows", "Net")
    with pytest.raises(AssertionError):  # relative to the entry itself where it is large
        _assert_same(a, a * (1 + 3e-6), "scaled", "Net")
    _assert_same(np.zeros(3), np.zeros(3), "zeros", "Net")  # no scale: exact
    with pytest.raises(AssertionError):
        _assert_same(np.zeros(3), [0.0, 1e-7, 0.0], "zeros", "Net")
