"""Linear multi-task models: coefficient matrices ``W`` (n_tasks, n_features) shared by tasks."""

from skmtl.linear._block_sparse import BlockSparseClassifier, BlockSparseRegressor
from skmtl.linear._block_sparse_cv import BlockSparseClassifierCV, BlockSparseRegressorCV
from skmtl.linear._clustered_tasks import ClusteredTasksClassifier, ClusteredTasksRegressor
from skmtl.linear._clustered_tasks_cv import ClusteredTasksClassifierCV, ClusteredTasksRegressorCV
from skmtl.linear._cv import GridEdgeWarning
from skmtl.linear._hierarchical import HierarchicalClassifier, HierarchicalRegressor
from skmtl.linear._low_rank import (
    LowRankClassifier,
    LowRankClassifierCV,
    LowRankRegressor,
    LowRankRegressorCV,
)
from skmtl.linear._mean_clustered import MeanClusteredClassifier, MeanClusteredRegressor
from skmtl.linear._mean_clustered_cv import MeanClusteredClassifierCV, MeanClusteredRegressorCV
from skmtl.linear._task_relation import TaskRelationClassifier, TaskRelationRegressor
from skmtl.linear._task_relation_cv import TaskRelationClassifierCV, TaskRelationRegressorCV

__all__ = [
    "BlockSparseClassifier",
    "BlockSparseClassifierCV",
    "BlockSparseRegressor",
    "BlockSparseRegressorCV",
    "ClusteredTasksClassifier",
    "ClusteredTasksClassifierCV",
    "ClusteredTasksRegressor",
    "ClusteredTasksRegressorCV",
    "GridEdgeWarning",
    "HierarchicalClassifier",
    "HierarchicalRegressor",
    "LowRankClassifier",
    "LowRankClassifierCV",
    "LowRankRegressor",
    "LowRankRegressorCV",
    "MeanClusteredClassifier",
    "MeanClusteredClassifierCV",
    "MeanClusteredRegressor",
    "MeanClusteredRegressorCV",
    "TaskRelationClassifier",
    "TaskRelationClassifierCV",
    "TaskRelationRegressor",
    "TaskRelationRegressorCV",
]
