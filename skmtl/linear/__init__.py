"""Linear multi-task models: coefficient matrices ``W`` (n_tasks, n_features) shared by tasks."""

from skmtl.linear._block_sparse import BlockSparseClassifier, BlockSparseRegressor
from skmtl.linear._block_sparse_cv import BlockSparseClassifierCV, BlockSparseRegressorCV
from skmtl.linear._cv import GridEdgeWarning
from skmtl.linear._mean_clustered import MeanClusteredClassifier, MeanClusteredRegressor
from skmtl.linear._mean_clustered_cv import MeanClusteredClassifierCV, MeanClusteredRegressorCV

__all__ = [
    "BlockSparseClassifier",
    "BlockSparseClassifierCV",
    "BlockSparseRegressor",
    "BlockSparseRegressorCV",
    "GridEdgeWarning",
    "MeanClusteredClassifier",
    "MeanClusteredClassifierCV",
    "MeanClusteredRegressor",
    "MeanClusteredRegressorCV",
]
