"""skmtl: multi-task learning for the scikit-learn world.

``import skmtl`` stays light: it never imports torch or matplotlib. The deep estimators
(:mod:`skmtl.deep`) and the plots (:mod:`skmtl.plotting`) load them when used.
"""

__version__ = "0.1.0.dev0"

from skmtl.baselines import IndependentTasks, PooledTasks  # noqa: E402
from skmtl.utils.validation import UnknownTaskError  # noqa: E402

__all__ = ["IndependentTasks", "PooledTasks", "UnknownTaskError", "__version__"]
