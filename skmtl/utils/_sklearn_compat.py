"""The one place where skmtl imports private scikit-learn names.

scikit-learn does not promise that these names stay; if one moves, only this file changes.
"""

from sklearn.base import _fit_context
from sklearn.utils import _safe_indexing
from sklearn.utils._metadata_requests import _MetadataRequester, _raise_for_params
from sklearn.utils._param_validation import (
    HasMethods,
    Hidden,
    Integral,
    Interval,
    Real,
    StrOptions,
    validate_params,
)
from sklearn.utils.validation import _num_samples

__all__ = [
    "HasMethods",
    "Hidden",
    "Integral",
    "Interval",
    "Real",
    "StrOptions",
    "_MetadataRequester",
    "_fit_context",
    "_num_samples",
    "_raise_for_params",
    "_safe_indexing",
    "validate_params",
]
