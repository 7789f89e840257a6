"""Deep multi-task learning: scikit-learn estimators over PyTorch networks trained by skorch.

Importing this subpackage imports torch and skorch (install them with
``pip install 'skmtl[deep]'``); ``import skmtl`` alone never does.

- :class:`MultiTaskRegressor`, :class:`MultiTaskClassifier`: the estimators.
- :class:`FocusedTaskRegressor`, :class:`FocusedTaskClassifier`: trained on all tasks, serving
  one focus task (single-task, multi-task, GradNorm, LBTW, fine-tuning, reinforced MTL).
- :mod:`skmtl.deep.modules`: the sharing strategies (``SHARING``, :func:`build_module`).
- :mod:`skmtl.deep.weighting`: the loss weightings (``WEIGHTINGS``, :class:`Weighting`,
  :class:`RMTLWeighting`, :class:`DROWeighting`).
"""

from skmtl.utils._optional import import_optional

import_optional("torch", "deep", "the deep multi-task estimators")
import_optional("skorch", "deep", "the deep multi-task estimators")

from skmtl.deep._estimators import MultiTaskClassifier, MultiTaskRegressor  # noqa: E402
from skmtl.deep._focused import FocusedTaskClassifier, FocusedTaskRegressor  # noqa: E402
from skmtl.deep.modules import SHARING, build_module  # noqa: E402
from skmtl.deep.weighting import (  # noqa: E402
    WEIGHTINGS,
    DROWeighting,
    RMTLWeighting,
    Weighting,
    get_weighting,
)

__all__ = [
    "SHARING",
    "WEIGHTINGS",
    "DROWeighting",
    "FocusedTaskClassifier",
    "FocusedTaskRegressor",
    "MultiTaskClassifier",
    "MultiTaskRegressor",
    "RMTLWeighting",
    "Weighting",
    "build_module",
    "get_weighting",
]
