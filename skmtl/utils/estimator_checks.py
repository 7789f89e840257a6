"""Multi-task estimator checks, the companion of scikit-learn's ``parametrize_with_checks``.

Each check has scikit-learn's signature ``check(name, estimator_orig)`` and asserts one part of
the multi-task data contract:

- :func:`check_masked_labels_ignored`: values behind the mask never change a fit;
- :func:`check_long_equals_wide`: long-format data gives the same model as wide data;
- :func:`check_task_permutation_equivariance`: permuting the tasks permutes the predictions;
- :func:`check_one_task_equals_single_task`: one task in a 2-D Y equals the 1-D fit;
- :func:`check_unknown_task_raises`: an unseen task id raises :class:`~skmtl.UnknownTaskError`;
- :func:`check_unknown_task_shared`: with ``unknown_task="shared"`` (estimators with a shared
  part), every unseen task gets one and the same finite prediction, seen tasks are unchanged;
- :func:`check_one_class_task`: in a binary problem, a task whose training labels hold one class
  keeps both classes (or, for an estimator without a shared part, raises naming the task);
- :func:`check_output_shapes`: shapes of ``predict`` / ``predict_proba`` / ``score`` by format;
- :func:`check_bad_targets_raise`: a task without labels, an infinite label, long data scored
  without ``task_ids`` raise a ValueError naming the problem.

Use :func:`parametrize_with_multitask_checks` in a test module, or call
:func:`check_multitask_estimator` directly.
"""

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.utils.estimator_checks import set_random_state

from skmtl.utils.validation import UnknownTaskError

__all__ = [
    "MULTITASK_CHECKS",
    "check_bad_targets_raise",
    "check_long_equals_wide",
    "check_masked_labels_ignored",
    "check_multitask_estimator",
    "check_one_task_equals_single_task",
    "check_output_shapes",
    "check_task_permutation_equivariance",
    "check_one_class_task",
    "check_unknown_task_raises",
    "check_unknown_task_shared",
    "parametrize_with_multitask_checks",
]

RTOL = 1e-6
ATOL = 1e-8


def _make_data(estimator, *, n_samples=60, n_features=5, n_tasks=3, missing=0.25, seed=0):
    """Small wide data with missing labels; every task keeps at least 10 labels of each class."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_samples, n_features))
    W = rng.normal(size=(n_features, n_tasks))
    latent = X @ W + 0.1 * rng.normal(size=(n_samples, n_tasks))
    if is_classifier(estimator):
        Y = (latent > np.median(latent, axis=0)).astype(np.float64)
    else:
        Y = latent
    missing_mask = rng.uniform(size=Y.shape) < missing
    missing_mask[:20] = False  # the first rows keep every label: both classes in every task
    Y[missing_mask] = np.nan
    return X, Y


def _wide_to_long(Y):
    rows, tasks = np.nonzero(~np.isnan(Y))
    return rows, Y[rows, tasks], tasks


def _fitted(estimator_orig, X, y, **fit_params):
    estimator = clone(estimator_orig)
    set_random_state(estimator, 0)
    return estimator.fit(X, y, **fit_params)


def _outputs(estimator, X, **kwargs):
    """Predictions to compare: probabilities for classifiers (finer than labels)."""
    if is_classifier(estimator) and hasattr(estimator, "predict_proba"):
        proba = estimator.predict_proba(X, **kwargs)
        return np.column_stack(proba) if isinstance(proba, list) else proba
    return np.asarray(estimator.predict(X, **kwargs))


def _assert_same(a, b, what, name):
    """``a == b`` to ``RTOL`` relative, entries near zero to ``RTOL`` of the largest entry:
    an output near zero is often the difference of larger terms, and a network computing in
    float32 gives it rounding errors of that scale when the rows come in batches of another
    size (a deep regressor's unseen-task prediction of 0.0023, from outputs up to 0.62,
    moved by 5e-8 between a batch of 5 rows and one of 10, on a CPU with AVX-512)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0))
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL + RTOL * scale,
                               err_msg=f"{name}: {what}")


def check_masked_labels_ignored(name, estimator_orig):
    """Missing labels as NaN, as None in an object array, or garbage behind the mask: same fit.

    The public part fits on NaN and on None encodings. The hook part calls
    ``_fit_multitask(X, Y, mask)`` again with random values behind the mask and asserts the
    predictions do not move.
    """
    X, Y = _make_data(estimator_orig)
    reference = _fitted(estimator_orig, X, Y)
    expected = _outputs(reference, X)
    Y_none = Y.astype(object)
    Y_none[np.isnan(Y)] = None
    _assert_same(_outputs(_fitted(estimator_orig, X, Y_none), X), expected,
                 "missing labels as None differ from NaN", name)

    mask = ~np.isnan(Y)
    rng = np.random.RandomState(1)
    if is_classifier(estimator_orig):
        _, codes = np.unique(np.nan_to_num(Y), return_inverse=True)
        codes = codes.reshape(Y.shape).astype(np.intp)
        garbage = np.where(mask, codes, rng.randint(0, 2, size=Y.shape))
    else:
        garbage = np.where(mask, Y, rng.normal(scale=1e3, size=Y.shape))
    hooked = _fitted(estimator_orig, X, Y)
    set_random_state(hooked, 0)
    hooked._fit_multitask(X, garbage, mask)
    _assert_same(_outputs(hooked, X), expected,
                 "values behind the mask changed the fit (_fit_multitask)", name)


def check_long_equals_wide(name, estimator_orig):
    """Long data (one row per observed label) gives the same predictions as wide data."""
    X, Y = _make_data(estimator_orig)
    rows, y_long, task_ids = _wide_to_long(Y)
    wide = _fitted(estimator_orig, X, Y)
    long = _fitted(estimator_orig, X[rows], y_long, task_ids=task_ids)
    assert np.array_equal(long.tasks_, wide.tasks_), f"{name}: tasks_ differ"
    _assert_same(_outputs(long, X), _outputs(wide, X), "long fit differs from wide fit", name)
    _assert_same(long.predict(X[rows], task_ids=task_ids),
                 np.asarray(wide.predict(X))[rows, task_ids],
                 "predict with task_ids differs from the matching wide column", name)


def check_task_permutation_equivariance(name, estimator_orig):
    """Permuting Y's columns permutes the predictions the same way."""
    X, Y = _make_data(estimator_orig, n_tasks=4)
    perm = np.array([2, 0, 3, 1])
    pred = np.asarray(_fitted(estimator_orig, X, Y).predict(X))
    pred_perm = np.asarray(_fitted(estimator_orig, X, Y[:, perm]).predict(X))
    _assert_same(pred_perm, pred[:, perm], "predictions are not permuted with the tasks", name)


def check_one_task_equals_single_task(name, estimator_orig):
    """A 2-D Y with one column gives the 1-D fit's predictions, as a column.

    When the estimator defines ``_single_task_reference()`` (a scikit-learn estimator solving
    the same single-task problem), its predictions must match too.
    """
    X, Y = _make_data(estimator_orig, missing=0.0)
    y = Y[:, 0]
    single = _fitted(estimator_orig, X, y)
    column = _fitted(estimator_orig, X, y[:, None])
    pred = single.predict(X)
    assert pred.shape == (X.shape[0],), f"{name}: 1-D fit must predict 1-D, got {pred.shape}"
    assert column.predict(X).shape == (X.shape[0], 1), f"{name}: (n, 1) Y must predict (n, 1)"
    _assert_same(column.predict(X)[:, 0], pred, "one-column Y differs from 1-D y", name)
    reference_factory = getattr(estimator_orig, "_single_task_reference", None)
    if reference_factory is not None:
        reference = reference_factory().fit(X, y)
        _assert_same(pred, reference.predict(X), "differs from the single-task reference", name)


def check_unknown_task_raises(name, estimator_orig):
    """A task id never seen in fit raises UnknownTaskError (a ValueError) naming it."""
    X, Y = _make_data(estimator_orig)
    rows, y_long, task_ids = _wide_to_long(Y)
    names = np.array(["north", "south", "west"])[task_ids]
    est = _fitted(estimator_orig, X[rows], y_long, task_ids=names)
    assert list(est.tasks_) == ["north", "south", "west"], f"{name}: tasks_ {est.tasks_}"
    bad = np.array(["north", "east"])
    try:
        est.predict(X[:2], task_ids=bad)
    except UnknownTaskError as exc:
        assert "'east'" in str(exc), f"{name}: the error must name the unknown task: {exc}"
    else:
        raise AssertionError(f"{name}: predicting an unknown task did not raise")


def check_unknown_task_shared(name, estimator_orig):
    """With ``unknown_task="shared"``, unseen tasks are predicted by the shared part.

    Applies to estimators with an ``unknown_task`` parameter (the others pass); a configuration
    without a shared part (e.g. a deep net with ``sharing="independent"``) may instead raise a
    ValueError that names ``unknown_task='shared'``. Rows of two
    different unseen tasks get the same finite prediction; rows of seen tasks get what they get
    with ``unknown_task="error"``; probabilities have the shared classes' columns and sum to 1;
    the score of a mix of seen and unseen tasks is finite.
    """
    if "unknown_task" not in estimator_orig.get_params():
        return
    X, Y = _make_data(estimator_orig)
    rows, y_long, task_ids = _wide_to_long(Y)
    names = np.array(["north", "south", "west"])[task_ids]
    est = _fitted(estimator_orig.set_params(unknown_task="shared"), X[rows], y_long,
                  task_ids=names)
    n = 10
    mixed = np.array(["north", "east", "west", "up"] * 3)[:n]
    seen = np.isin(mixed, est.tasks_)
    try:
        pred = _outputs(est, X[:n], task_ids=mixed)
    except ValueError as exc:  # a configuration without a shared part must say so
        assert "unknown_task='shared'" in str(exc), f"{name}: unclear error {exc}"
        return
    if not is_classifier(est):
        assert np.all(np.isfinite(pred)), f"{name}: non-finite shared predictions {pred}"
    _assert_same(_outputs(est, X[:n], task_ids=np.where(seen, mixed, "up")), pred,
                 "two unseen tasks get different predictions", name)
    east = _outputs(est, X[:n], task_ids=np.full(n, "east"))
    _assert_same(pred[~seen], east[~seen], "an unseen task's prediction depends on the other "
                 "rows", name)
    est.set_params(unknown_task="error")
    _assert_same(pred[seen], _outputs(est, X[:n][seen], task_ids=mixed[seen]),
                 "seen tasks' predictions change with unknown_task='shared'", name)
    est.set_params(unknown_task="shared")
    if is_classifier(est):
        labels = est.predict(X[:n], task_ids=mixed)
        assert set(labels[~seen].tolist()) <= set(np.asarray(est._shared_classes).tolist()), (
            f"{name}: shared labels {labels[~seen]} outside {est._shared_classes}")
        if hasattr(est, "predict_proba"):
            assert pred.shape == (n, len(est._shared_classes)), f"{name}: {pred.shape}"
            assert np.all(np.isfinite(pred)), f"{name}: non-finite shared probabilities"
            np.testing.assert_allclose(pred.sum(axis=1), 1.0, rtol=1e-6)
    test_y = y_long[:n] if is_classifier(est) else np.arange(n, dtype=float)
    score = est.score(X[:n], test_y, task_ids=mixed)
    assert np.isfinite(score), f"{name}: score with unseen tasks {score}"


def check_one_class_task(name, estimator_orig):
    """A binary task that saw one class keeps both classes (or the fit names the task).

    Binary multi-task problems share one label set: every task's ``classes_`` holds both
    classes and ``predict_proba`` gives it two finite columns. An estimator that cannot fit
    such a task (no shared part: :class:`~skmtl.IndependentTasks`) raises a ValueError
    naming the task. An estimator that predicts one focus task only must fit and give the
    focus task's two probability columns. Regressors pass.
    """
    if not is_classifier(estimator_orig):
        return
    X, Y = _make_data(estimator_orig)
    Y[:, 1] = np.where(np.isnan(Y[:, 1]), np.nan, 1.0)
    estimator = clone(estimator_orig)
    set_random_state(estimator, 0)
    try:
        estimator.fit(X, Y)
    except ValueError as exc:
        assert "Task 1" in str(exc), f"{name}: the error must name the one-class task: {exc}"
        return
    if not isinstance(estimator.classes_, list):  # predicts one (focus) task: it must fit
        assert len(estimator.classes_) == 2, f"{name}: classes_ = {estimator.classes_}"
        if hasattr(estimator, "predict_proba"):
            proba = estimator.predict_proba(X)
            assert proba.shape == (X.shape[0], 2), f"{name}: proba {proba.shape}"
            assert np.all(np.isfinite(proba)), f"{name}: non-finite probabilities"
        return
    for t, task_classes in enumerate(estimator.classes_):
        assert list(task_classes) == [0.0, 1.0], f"{name}: classes_[{t}] = {task_classes}"
    assert set(np.unique(estimator.predict(X)[:, 1]).tolist()) <= {0.0, 1.0}
    if hasattr(estimator, "predict_proba"):
        for t, proba in enumerate(estimator.predict_proba(X)):
            assert proba.shape == (X.shape[0], 2), f"{name}: task {t} proba {proba.shape}"
            assert np.all(np.isfinite(proba)), f"{name}: task {t} non-finite probabilities"
            np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
        mixed = estimator.predict_proba(X, task_ids=np.arange(X.shape[0]) % 3)
        assert mixed.shape == (X.shape[0], 2), f"{name}: mixed-task proba {mixed.shape}"


def check_output_shapes(name, estimator_orig):
    """Output shapes of the data contract's table, for wide and long fits."""
    X, Y = _make_data(estimator_orig)
    n, n_tasks = Y.shape
    wide = _fitted(estimator_orig, X, Y)
    assert wide.n_tasks_ == n_tasks and wide.tasks_.shape == (n_tasks,)
    assert wide.predict(X).shape == (n, n_tasks), f"{name}: wide predict shape"
    assert wide.predict(X, task_ids=np.zeros(n, dtype=int)).shape == (n,)
    if is_classifier(wide):
        assert isinstance(wide.classes_, list) and len(wide.classes_) == n_tasks
        if hasattr(wide, "predict_proba"):
            proba = wide.predict_proba(X)
            assert isinstance(proba, list) and len(proba) == n_tasks
            for t, p in enumerate(proba):
                assert p.shape == (n, len(wide.classes_[t])), f"{name}: proba shape"
                np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    score = wide.score(X, Y)
    assert np.isfinite(score), f"{name}: wide score {score}"
    rows, y_long, task_ids = _wide_to_long(Y)
    long = _fitted(estimator_orig, X[rows], y_long, task_ids=task_ids)
    assert long.predict(X).shape == (n, n_tasks)
    assert long.predict(X[rows], task_ids=task_ids).shape == (rows.shape[0],)
    _assert_same(long.score(X[rows], y_long, task_ids=task_ids), wide.score(X, Y),
                 "long score on the same observations differs from the wide score", name)


def check_bad_targets_raise(name, estimator_orig):
    """Clear ValueErrors for a task with no label, an infinite label, long score w/o task_ids."""
    X, Y = _make_data(estimator_orig)
    empty = Y.copy()
    empty[:, 1] = np.nan
    _assert_raises(lambda: clone(estimator_orig).fit(X, empty), "no observed label", name)
    if not is_classifier(estimator_orig):
        inf = Y.copy()
        inf[3, 2] = np.inf
        _assert_raises(lambda: clone(estimator_orig).fit(X, inf), "infinity", name)
    rows, y_long, task_ids = _wide_to_long(Y)
    long = _fitted(estimator_orig, X[rows], y_long, task_ids=task_ids)
    _assert_raises(lambda: long.score(X[rows], y_long), "task_ids", name)


def _assert_raises(call, fragment, name):
    try:
        call()
    except ValueError as exc:
        assert fragment in str(exc), f"{name}: error message {str(exc)!r} lacks {fragment!r}"
    else:
        raise AssertionError(f"{name}: expected a ValueError mentioning {fragment!r}")


MULTITASK_CHECKS = (
    check_masked_labels_ignored,
    check_long_equals_wide,
    check_task_permutation_equivariance,
    check_one_task_equals_single_task,
    check_unknown_task_raises,
    check_unknown_task_shared,
    check_one_class_task,
    check_output_shapes,
    check_bad_targets_raise,
)


def _check_name(check):
    return getattr(check, "__name__", str(check))


def check_multitask_estimator(estimator, *, expected_failed_checks=None):
    """Run every multi-task check on an estimator instance.

    Parameters
    ----------
    estimator : estimator object
        An unfitted skmtl estimator.
    expected_failed_checks : dict, default=None
        Check name -> reason, for checks this estimator is known to fail; they are skipped.

    Returns
    -------
    passed : list of str
        The names of the checks that ran and passed.

    Raises
    ------
    AssertionError
        The first check that fails.

    Examples
    --------
    >>> from sklearn.linear_model import Ridge
    >>> from skmtl import IndependentTasks
    >>> from skmtl.utils.estimator_checks import check_multitask_estimator
    >>> len(check_multitask_estimator(IndependentTasks(Ridge())))
    9
    """
    expected_failed_checks = expected_failed_checks or {}
    name = type(estimator).__name__
    passed = []
    for check in MULTITASK_CHECKS:
        if _check_name(check) in expected_failed_checks:
            continue
        check(name, estimator)
        passed.append(_check_name(check))
    return passed


def parametrize_with_multitask_checks(estimators, *, expected_failed_checks=None):
    """Pytest parametrisation of every multi-task check over estimators.

    Parameters
    ----------
    estimators : list of estimator objects
        Unfitted estimator instances.
    expected_failed_checks : callable, default=None
        ``expected_failed_checks(estimator) -> dict`` of check name -> reason; those checks
        are marked ``xfail(strict=True)`` with the reason.

    Returns
    -------
    decorator : callable
        ``pytest.mark.parametrize("estimator, check", ...)``.
    """
    import pytest

    params = []
    for estimator in estimators:
        xfails = expected_failed_checks(estimator) if expected_failed_checks else {}
        for check in MULTITASK_CHECKS:
            marks = []
            reason = xfails.get(_check_name(check))
            if reason is not None:
                marks.append(pytest.mark.xfail(reason=reason, strict=True))
            check_id = f"{estimator!r}-{_check_name(check)}"
            params.append(pytest.param(estimator, check, marks=marks, id=check_id))
    return pytest.mark.parametrize("estimator, check", params)
