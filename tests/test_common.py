"""scikit-learn's and skmtl's estimator checks over every public estimator."""

import pytest
from _instances import (
    INSTANCES,
    all_instances,
    multitask_expected_failures,
    sklearn_expected_failures,
)
from sklearn.utils.estimator_checks import parametrize_with_checks

from skmtl.utils.discovery import all_estimators
from skmtl.utils.estimator_checks import parametrize_with_multitask_checks


def test_every_public_estimator_has_test_instances():
    missing = [name for name, _ in all_estimators() if name not in INSTANCES]
    assert not missing, (
        f"add test instances (and any expected failures, each with a reason) to the INSTANCES "
        f"table of tests/_instances.py for {missing}")
    assert {name for name, _ in all_estimators()} >= {"IndependentTasks", "PooledTasks"}


@parametrize_with_checks(
    all_instances(), expected_failed_checks=sklearn_expected_failures, xfail_strict=True
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@parametrize_with_multitask_checks(
    all_instances(), expected_failed_checks=multitask_expected_failures
)
def test_multitask_checks(estimator, check):
    check(type(estimator).__name__, estimator)


@pytest.mark.parametrize("estimator", all_instances(), ids=repr)
def test_expected_failures_have_reasons(estimator):
    for reasons in (sklearn_expected_failures(estimator), multitask_expected_failures(estimator)):
        for check, reason in reasons.items():
            assert isinstance(reason, str) and len(reason) > 10, (check, reason)
