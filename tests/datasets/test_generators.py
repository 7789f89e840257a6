"""The synthetic generators: shapes, the generative model, missing labels, errors."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from skmtl.datasets import make_multitask_classification, make_multitask_regression

GENERATORS = [make_multitask_regression, make_multitask_classification]


def _corr(a, b):
    return np.corrcoef(a, b)[0, 1]


# --- shapes and dtypes ------------------------------------------------------------------


def test_regression_wide_shapes_and_dtypes():
    X, Y, coef = make_multitask_regression(
        n_samples=30, n_features=7, n_tasks=4, n_informative=3, coef=True, random_state=0
    )
    assert X.shape == (30, 7) and X.dtype == np.float64
    assert Y.shape == (30, 4) and Y.dtype == np.float64
    assert coef.shape == (4, 7) and coef.dtype == np.float64
    assert not np.isnan(Y).any()


def test_long_format_rows_are_grouped_by_task():
    X, y, task_ids, coef = make_multitask_regression(
        n_samples=25, n_features=6, n_tasks=3, n_informative=2, format="long", coef=True,
        random_state=0,
    )
    assert X.shape == (75, 6) and y.shape == (75,) and coef.shape == (3, 6)
    assert task_ids.dtype == np.int64
    assert_array_equal(task_ids, np.repeat([0, 1, 2], 25))


def test_coef_is_returned_only_on_request():
    assert len(make_multitask_regression(random_state=0)) == 2
    assert len(make_multitask_regression(format="long", random_state=0)) == 3
    assert len(make_multitask_classification(coef=True, random_state=0)) == 3
    assert len(make_multitask_classification(format="long", coef=True, random_state=0)) == 4


# --- the generative model ---------------------------------------------------------------


def test_noiseless_wide_targets_are_exactly_x_coef():
    X, Y, coef = make_multitask_regression(
        n_samples=40, n_features=12, n_tasks=5, noise=0.0, bias=0.0, coef=True, random_state=3
    )
    assert_array_equal(Y, X @ coef.T)


def test_noiseless_long_targets_are_each_tasks_x_coef():
    X, y, task_ids, coef = make_multitask_regression(
        n_samples=40, n_features=12, n_tasks=5, noise=0.0, format="long", coef=True,
        random_state=3,
    )
    for t in range(5):
        rows = task_ids == t
        assert_allclose(y[rows], X[rows] @ coef[t], rtol=1e-12, atol=1e-12)


def test_bias_and_noise_enter_as_documented():
    X, Y, coef = make_multitask_regression(
        n_samples=4000, n_features=5, n_tasks=3, n_informative=5, noise=0.5, bias=2.0,
        coef=True, random_state=0,
    )
    residual = Y - X @ coef.T
    assert_allclose(residual.mean(axis=0), 2.0, atol=0.05)
    assert_allclose(residual.std(axis=0), 0.5, atol=0.03)


def test_shared_support_gives_every_task_the_same_features():
    _, _, coef = make_multitask_regression(
        n_features=30, n_tasks=6, n_informative=4, coef=True, random_state=0
    )
    support = coef != 0
    assert (support.sum(axis=1) == 4).all()
    assert (support == support[0]).all()


def test_separate_supports_differ_between_tasks():
    _, _, coef = make_multitask_regression(
        n_features=30, n_tasks=6, n_informative=4, shared_support=False, coef=True,
        random_state=0,
    )
    support = coef != 0
    assert (support.sum(axis=1) == 4).all()
    assert len({tuple(row) for row in support}) > 1


def test_overlapping_supports_share_the_mean_coefficient():
    # task_std=0: a feature used by two related tasks has the same coefficient in both.
    _, _, coef = make_multitask_regression(
        n_features=8, n_tasks=10, n_informative=4, shared_support=False, task_std=0.0,
        coef=True, random_state=0,
    )
    used_by = (coef != 0).sum(axis=0)
    assert used_by.max() > 1
    for j in np.flatnonzero(used_by):
        values = coef[coef[:, j] != 0, j]
        assert_allclose(values, values[0])


@pytest.mark.parametrize("make", GENERATORS)
def test_conflicting_tasks_point_against_the_mean(make):
    _, _, coef = make(
        n_features=20, n_tasks=6, n_informative=10, n_conflicting=2, task_std=0.2, coef=True,
        random_state=0,
    )
    mean = coef[:4].mean(axis=0)
    related = [_corr(coef[t], mean) for t in range(4)]
    conflicting = [_corr(coef[t], mean) for t in (4, 5)]
    assert min(related) > 0.9
    assert max(conflicting) < -0.9


def test_zero_task_std_makes_related_tasks_equal_and_conflicting_ones_opposite():
    _, _, coef = make_multitask_regression(
        n_tasks=4, n_conflicting=1, task_std=0.0, coef=True, random_state=1
    )
    assert_array_equal(coef[1], coef[0])
    assert_array_equal(coef[2], coef[0])
    assert_array_equal(coef[3], -coef[0])


def test_task_std_spreads_the_tasks_around_the_mean():
    _, _, coef = make_multitask_regression(
        n_features=10, n_tasks=400, n_informative=10, task_std=0.3, coef=True, random_state=0
    )
    assert_allclose(coef.std(axis=0), 0.3, rtol=0.15)


# --- classification ---------------------------------------------------------------------


def test_classification_classes_are_balanced_per_task():
    X, Y = make_multitask_classification(
        n_samples=100, n_tasks=4, n_classes=3, random_state=0
    )
    assert Y.dtype == np.int64 and Y.shape == (100, 4)
    for t in range(4):
        counts = np.bincount(Y[:, t], minlength=3)
        assert counts.tolist() in ([33, 33, 34], [33, 34, 33], [34, 33, 33])


def test_classification_long_classes_are_balanced_per_task():
    _, y, task_ids = make_multitask_classification(
        n_samples=60, n_tasks=3, n_classes=4, format="long", random_state=0
    )
    assert y.dtype == np.int64
    for t in range(3):
        assert np.bincount(y[task_ids == t]).tolist() == [15, 15, 15, 15]


def test_noiseless_classes_are_quantile_bins_of_the_latent_score():
    X, Y, coef = make_multitask_classification(
        n_samples=50, n_tasks=3, n_classes=3, n_conflicting=1, noise=0.0, coef=True,
        random_state=0,
    )
    score = X @ coef.T
    for t in range(3):
        labels_by_score = Y[np.argsort(score[:, t]), t]
        assert (np.diff(labels_by_score) >= 0).all()
        assert labels_by_score[0] == 0 and labels_by_score[-1] == 2


def test_classification_with_missing_labels_is_float_with_nan():
    _, Y = make_multitask_classification(
        n_samples=50, n_tasks=3, missing_rate=0.4, random_state=0
    )
    assert Y.dtype == np.float64
    assert set(np.unique(Y[~np.isnan(Y)])) == {0.0, 1.0}
    assert np.isnan(Y).sum() == 60


@pytest.mark.parametrize("seed", range(5))
def test_classification_keeps_every_class_observed(seed):
    _, Y = make_multitask_classification(
        n_samples=30, n_tasks=8, n_classes=3, missing_rate=0.95, random_state=seed
    )
    for t in range(8):
        observed = Y[~np.isnan(Y[:, t]), t]
        assert set(observed) == {0.0, 1.0, 2.0}
    _, y, task_ids = make_multitask_classification(
        n_samples=30, n_tasks=8, n_classes=3, missing_rate=0.95, format="long",
        random_state=seed,
    )
    for t in range(8):
        assert set(y[task_ids == t]) == {0, 1, 2}


# --- missing labels ---------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.6])
def test_wide_missing_rate_is_the_fraction_of_nan(rate):
    _, Y = make_multitask_regression(
        n_samples=200, n_tasks=5, missing_rate=rate, random_state=0
    )
    assert abs(np.isnan(Y).mean() - rate) < 0.01


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.6])
def test_long_missing_rate_is_the_fraction_of_dropped_rows(rate):
    X, y, task_ids = make_multitask_regression(
        n_samples=200, n_tasks=5, missing_rate=rate, format="long", random_state=0
    )
    assert len(X) == len(y) == len(task_ids)
    assert abs(1 - len(y) / 1000 - rate) < 0.01


@pytest.mark.parametrize("make", GENERATORS)
@pytest.mark.parametrize("seed", range(5))
def test_every_task_keeps_two_labels_at_a_high_missing_rate(make, seed):
    _, Y = make(n_samples=20, n_tasks=10, missing_rate=0.95, random_state=seed)
    assert ((~np.isnan(Y)).sum(axis=0) >= 2).all()
    _, _, task_ids = make(
        n_samples=20, n_tasks=10, missing_rate=0.95, format="long", random_state=seed
    )
    assert (np.bincount(task_ids, minlength=10) >= 2).all()


def test_missing_labels_do_not_change_the_observed_values():
    X0, Y0 = make_multitask_regression(n_samples=50, random_state=0)
    X1, Y1 = make_multitask_regression(n_samples=50, missing_rate=0.5, random_state=0)
    observed = ~np.isnan(Y1)
    assert_array_equal(X1, X0)
    assert_array_equal(Y1[observed], Y0[observed])


# --- randomness -------------------------------------------------------------------------


@pytest.mark.parametrize("make", GENERATORS)
@pytest.mark.parametrize("format", ["wide", "long"])
def test_same_seed_same_data(make, format):
    kwargs = dict(n_samples=30, missing_rate=0.3, format=format, coef=True)
    first = make(**kwargs, random_state=7)
    again = make(**kwargs, random_state=np.random.RandomState(7))
    other = make(**kwargs, random_state=8)
    for a, b in zip(first, again, strict=True):
        assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


def test_noise_and_missing_rate_leave_x_and_coef_unchanged():
    X0, _, coef0 = make_multitask_regression(noise=0.0, coef=True, random_state=0)
    X1, _, coef1 = make_multitask_regression(
        noise=1.0, missing_rate=0.5, coef=True, random_state=0
    )
    assert_array_equal(X1, X0)
    assert_array_equal(coef1, coef0)


# --- parameter errors -------------------------------------------------------------------


@pytest.mark.parametrize("make", GENERATORS)
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_tasks=5, n_conflicting=5), "n_conflicting must be smaller than n_tasks=5"),
        (dict(n_conflicting=-1), "'n_conflicting' parameter"),
        (dict(n_informative=0), "'n_informative' parameter"),
        (dict(n_features=20, n_informative=21), "n_informative must be at most n_features=20"),
        (dict(missing_rate=1.0), "'missing_rate' parameter"),
        (dict(missing_rate=-0.1), "'missing_rate' parameter"),
        (dict(format="tall"), "'format' parameter"),
        (dict(n_samples=1), "'n_samples' parameter"),
        (dict(task_std=-1.0), "'task_std' parameter"),
        (dict(noise=-1.0), "'noise' parameter"),
    ],
)
def test_bad_parameters_raise_naming_the_parameter(make, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_classes=1), "'n_classes' parameter"),
        (dict(n_samples=4, n_classes=5), "n_classes must be at most n_samples=4"),
    ],
)
def test_bad_n_classes_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_multitask_classification(**kwargs)


@pytest.mark.parametrize("make", [make_multitask_regression, make_multitask_classification])
def test_unrelated_conflicting_tasks_read_features_no_related_task_uses(make):
    common = dict(n_samples=30, n_features=30, n_tasks=6, n_informative=4, n_conflicting=2,
                  coef=True, random_state=0)
    *_, opposite = make(**common)
    *_, unrelated = make(**common, conflict="unrelated")
    # the related tasks are the same draws in both modes
    assert_array_equal(opposite[:4], unrelated[:4])
    related_support = (unrelated[:4] != 0).any(axis=0)
    for w in unrelated[4:]:
        assert (w != 0).sum() == 4
        assert not np.any((w != 0) & related_support)


def test_unrelated_conflict_without_free_features_names_the_shortage():
    with pytest.raises(ValueError, match="only 2 of the n_features=7 are free"):
        make_multitask_regression(n_features=7, n_informative=5, n_tasks=3, n_conflicting=1,
                                  conflict="unrelated", random_state=0)
