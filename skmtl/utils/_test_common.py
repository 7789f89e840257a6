"""The table behind the common tests: instances to check and their expected failures.

Every public estimator found by :func:`skmtl.utils.discovery.all_estimators` must have an entry
in ``INSTANCES`` (``tests/test_common.py`` fails otherwise). An expected failure is listed with
a one-line reason and runs as a strict xfail, so a check that starts passing is noticed.
"""

from sklearn.linear_model import LogisticRegression, Ridge

from skmtl.baselines import IndependentTasks, PooledTasks
from skmtl.linear._mean_clustered import MeanClusteredClassifier, MeanClusteredRegressor

# class name -> unfitted instances covering its regression and classification modes.
INSTANCES = {
    "IndependentTasks": [IndependentTasks(Ridge()), IndependentTasks(LogisticRegression())],
    "PooledTasks": [PooledTasks(Ridge()), PooledTasks(LogisticRegression())],
    "MeanClusteredRegressor": [MeanClusteredRegressor()],
    "MeanClusteredClassifier": [MeanClusteredClassifier()],
}

# class name -> {check name: reason}, for scikit-learn's checks.
SKLEARN_EXPECTED_FAILURES = {}

# class name -> {check name: reason}, for skmtl's multi-task checks.
MULTITASK_EXPECTED_FAILURES = {}


def sklearn_expected_failures(estimator):
    """scikit-learn check name -> reason for this estimator (for parametrize_with_checks)."""
    return dict(SKLEARN_EXPECTED_FAILURES.get(type(estimator).__name__, {}))


def multitask_expected_failures(estimator):
    """Multi-task check name -> reason for this estimator."""
    return dict(MULTITASK_EXPECTED_FAILURES.get(type(estimator).__name__, {}))


def all_instances():
    """Every instance of the table, in a stable order."""
    return [est for name in sorted(INSTANCES) for est in INSTANCES[name]]
