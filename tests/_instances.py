"""The table behind the common tests: instances to check and their expected failures.

Every public estimator found by :func:`skmtl.utils.discovery.all_estimators` must have an entry
in ``INSTANCES`` (``tests/test_common.py`` fails otherwise). An expected failure is listed with
a one-line reason and runs as a strict xfail, so a check that starts passing is noticed.

The table is test code, so it lives in ``tests/`` (not in the package, whose ``skmtl.utils`` is
the ground floor and imports no estimator family). It imports estimators from the public
packages only. ``tests/test_common.py`` imports it as ``_instances``: ``tests/`` is on
``sys.path`` through ``pythonpath`` in pyproject.toml's pytest section.
"""

import importlib.util

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge

from skmtl.baselines import IndependentTasks, PooledTasks
from skmtl.linear import (
    BlockSparseClassifier,
    BlockSparseClassifierCV,
    BlockSparseRegressor,
    BlockSparseRegressorCV,
    ClusteredTasksClassifier,
    ClusteredTasksClassifierCV,
    ClusteredTasksRegressor,
    ClusteredTasksRegressorCV,
    HierarchicalClassifier,
    HierarchicalRegressor,
    LowRankClassifier,
    LowRankClassifierCV,
    LowRankRegressor,
    LowRankRegressorCV,
    MeanClusteredClassifier,
    MeanClusteredClassifierCV,
    MeanClusteredRegressor,
    MeanClusteredRegressorCV,
    TaskRelationClassifier,
    TaskRelationClassifierCV,
    TaskRelationRegressor,
    TaskRelationRegressorCV,
)

# class name -> unfitted instances covering its regression and classification modes.
INSTANCES = {
    "IndependentTasks": [IndependentTasks(Ridge()), IndependentTasks(LogisticRegression())],
    "PooledTasks": [PooledTasks(Ridge()), PooledTasks(LogisticRegression())],
    "MeanClusteredRegressor": [MeanClusteredRegressor()],
    "MeanClusteredClassifier": [MeanClusteredClassifier()],
    # tight tolerances: the multi-task checks compare two fits to rtol 1e-6
    "BlockSparseRegressor": [BlockSparseRegressor(alpha=0.01, tol=1e-10),
                             BlockSparseRegressor(alpha=0.01, q=np.inf, tol=1e-10)],
    "BlockSparseClassifier": [BlockSparseClassifier(alpha=0.01, tol=1e-10)],
    "LowRankRegressor": [LowRankRegressor(alpha=0.01, tol=1e-10)],
    "LowRankClassifier": [LowRankClassifier(alpha=0.01, tol=1e-10)],
    "TaskRelationRegressor": [TaskRelationRegressor(alpha=0.1, tol=1e-13, max_iter=5000)],
    "TaskRelationClassifier": [TaskRelationClassifier(alpha=0.1, tol=1e-13, max_iter=5000)],
    "ClusteredTasksRegressor": [ClusteredTasksRegressor(random_state=0)],
    "ClusteredTasksClassifier": [ClusteredTasksClassifier(random_state=0)],
    # one random slope: the checks' 3 or 4 tasks identify its 2 x 2 covariance (the default,
    # all 5 slopes, is checked in tests/linear/test_hierarchical.py)
    "HierarchicalRegressor": [HierarchicalRegressor(random_slopes=[0], tol=1e-12),
                              HierarchicalRegressor(covariance_type="diag", tol=1e-12),
                              HierarchicalRegressor(covariance_type="spherical", tol=1e-12)],
    "HierarchicalClassifier": [HierarchicalClassifier(tol=1e-12),
                               HierarchicalClassifier(covariance_type="diag", tol=1e-12)],
}

# small grids passed by hand and 3 folds: the checks fit often, and compare fits whose folds
# differ (long rows against wide rows, permuted tasks), where a default grid would be extended
# differently on their nearly noise-free data (its optimum: alpha -> 0)
INSTANCES["MeanClusteredRegressorCV"] = [
    MeanClusteredRegressorCV(alphas=(10.0, 0.1, 1e-3), cluster_strengths=(1.0, 5.0), cv=3)]
# (one alpha: a larger grid picks other points from the folds of long rows and of wide rows)
INSTANCES["MeanClusteredClassifierCV"] = [
    MeanClusteredClassifierCV(alphas=(0.1,), cluster_strengths=(1.0, 5.0), cv=3)]
# the tight tolerance of the fixed-alpha instances
_ALPHAS = (1.0, 0.1, 0.01, 1e-3)
INSTANCES["BlockSparseRegressorCV"] = [
    BlockSparseRegressorCV(alphas=_ALPHAS, cv=3, tol=1e-10),
    # (one alpha: a larger grid picks other points from the folds of long rows and of wide rows)
    BlockSparseRegressorCV(alphas=(0.01,), q=np.inf, cv=3, tol=1e-10),
    BlockSparseRegressorCV(alphas=(0.01,), cv=3, tol=1e-10, relax=True)]
INSTANCES["LowRankRegressorCV"] = [LowRankRegressorCV(alphas=(1.0, 0.1, 0.01), cv=3, tol=1e-10)]
INSTANCES["LowRankClassifierCV"] = [LowRankClassifierCV(alphas=(0.1,), cv=3, tol=1e-10)]
INSTANCES["ClusteredTasksRegressorCV"] = [
    ClusteredTasksRegressorCV(alphas=(10.0, 0.1, 1e-3), cv=3, random_state=0)]
INSTANCES["ClusteredTasksClassifierCV"] = [
    ClusteredTasksClassifierCV(alphas=(1.0, 0.1, 0.01), cv=3, random_state=0)]
# the tight tolerance and the unscaled features of the fixed-alpha instances (the checks
# compare fits to rtol 1e-6): the solver stops on the relative duality gap (1e-13 here), which
# bounds the coefficients' distance to the optimum by sqrt(2 tol P / lambda_1), and the scaled
# problem (standardize=True) puts permuted-task fits' near-zero predictions 1e-7 apart
INSTANCES["TaskRelationRegressorCV"] = [
    TaskRelationRegressorCV(alphas=(10.0, 0.1, 1e-3), cv=3, tol=1e-13, max_iter=5000,
                            standardize=False)]
INSTANCES["TaskRelationClassifierCV"] = [
    TaskRelationClassifierCV(alphas=(1.0, 0.1, 0.01), cv=3, tol=1e-13, max_iter=5000)]
# alphas down to 0.01 only: near-separable check data make the logistic path slow below
INSTANCES["BlockSparseClassifierCV"] = [
    BlockSparseClassifierCV(alphas=(1.0, 0.1, 0.03, 0.01), cv=3, tol=1e-10)]

# class name -> {check name: reason}, for scikit-learn's checks.
SKLEARN_EXPECTED_FAILURES = {}

# class name -> {check name: reason}, for skmtl's multi-task checks.
MULTITASK_EXPECTED_FAILURES = {}


# Deep estimators, when torch and skorch are installed: tiny nets, as the checks fit them often.
if importlib.util.find_spec("torch") and importlib.util.find_spec("skorch"):
    from skmtl.deep import (
        FocusedTaskClassifier,
        FocusedTaskRegressor,
        MultiTaskClassifier,
        MultiTaskRegressor,
    )

    _DEEP = dict(hidden_layer_sizes=(8,), max_epochs=40, batch_size=32, lr=1e-2, random_state=0)
    INSTANCES["MultiTaskRegressor"] = [
        MultiTaskRegressor(**_DEEP),
        MultiTaskRegressor(**_DEEP, sharing="cross_stitch", head_layer_sizes=(4,),
                           weighting="gradnorm"),
        MultiTaskRegressor(**_DEEP, sharing="relationship", auxiliary="reconstruction"),
        MultiTaskRegressor(**_DEEP, sharing="tensor_factorisation", tensor_rank=1,
                           auxiliary="adversarial"),
    ]
    INSTANCES["MultiTaskClassifier"] = [
        MultiTaskClassifier(**_DEEP),
        MultiTaskClassifier(**_DEEP, sharing="conditioned", weighting="uncertainty"),
        MultiTaskClassifier(**_DEEP, sharing="stacked", auxiliary="adversarial"),
        MultiTaskClassifier(**{**_DEEP, "hidden_layer_sizes": (8, 4)}, sharing="adaptive",
                            weighting="gradnorm"),
    ]
    _DEEP_SGD = {
        "check_long_equals_wide": "SGD on long rows (one per label) sees other batches than on "
        "wide rows, so the two fits differ beyond rounding",
        "check_task_permutation_equivariance": "heads are initialised in task order from one "
        "seed, so permuted tasks start from other weights",
        "check_output_shapes": "it compares a long fit's score with a wide fit's, which differ "
        "for SGD as in check_long_equals_wide",
    }
    MULTITASK_EXPECTED_FAILURES["MultiTaskRegressor"] = dict(_DEEP_SGD)
    MULTITASK_EXPECTED_FAILURES["MultiTaskClassifier"] = dict(_DEEP_SGD)

    # focus_task=0: the first column of the checks' wide Y, and the only task of a 1-D y
    INSTANCES["FocusedTaskRegressor"] = [
        FocusedTaskRegressor(**_DEEP, focus_task=0),
        FocusedTaskRegressor(**_DEEP, focus_task=0, strategy="finetune", finetune_epochs=5,
                             freeze_trunk=True, head_layer_sizes=(4,)),
    ]
    INSTANCES["FocusedTaskClassifier"] = [
        FocusedTaskClassifier(**_DEEP, focus_task=0, head_layer_sizes=(4,)),
        FocusedTaskClassifier(**_DEEP, focus_task=0, strategy="lbtw"),
    ]
    _FOCUSED = {
        "check_long_equals_wide": _DEEP_SGD["check_long_equals_wide"],
        "check_task_permutation_equivariance": "it predicts the focus task only (1-D), so there "
        "are no task columns to permute",
        "check_one_task_equals_single_task": "it predicts the focus task 1-D for any target, so "
        "a one-column Y predicts (n,), not (n, 1)",
        "check_unknown_task_raises": "predict serves the focus task and takes no task_ids",
        "check_output_shapes": "predict gives the focus task only, (n,), not one column per task",
    }
    MULTITASK_EXPECTED_FAILURES["FocusedTaskRegressor"] = dict(_FOCUSED)
    MULTITASK_EXPECTED_FAILURES["FocusedTaskClassifier"] = dict(_FOCUSED)
    _FOCUSED_SKLEARN = {
        "check_supervised_y_2d": "a one-column y is a wide target with one task, a valid "
        "multi-task input, so fit gives no DataConversionWarning (the tags say multi_output="
        "False because predict gives one task)",
    }
    SKLEARN_EXPECTED_FAILURES["FocusedTaskRegressor"] = dict(_FOCUSED_SKLEARN)
    SKLEARN_EXPECTED_FAILURES["FocusedTaskClassifier"] = dict(_FOCUSED_SKLEARN)


def sklearn_expected_failures(estimator):
    """scikit-learn check name -> reason for this estimator (for parametrize_with_checks)."""
    return dict(SKLEARN_EXPECTED_FAILURES.get(type(estimator).__name__, {}))


def multitask_expected_failures(estimator):
    """Multi-task check name -> reason for this estimator."""
    return dict(MULTITASK_EXPECTED_FAILURES.get(type(estimator).__name__, {}))


def all_instances():
    """Every instance of the table, in a stable order."""
    return [est for name in sorted(INSTANCES) for est in INSTANCES[name]]
