"""Warnings attributed to the user's line, however deep in skmtl they are raised."""

import os
import sys
import warnings

__all__ = ["warn_at_caller"]

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# scikit-learn's decorators (validate_params, _fit_context) add frames between the user's
# call and skmtl's function
_WRAPPERS = (
    os.path.join("sklearn", "utils", "_param_validation.py"),
    os.path.join("sklearn", "base.py"),
)


def _internal(filename):
    return filename.startswith(_PACKAGE + os.sep) or filename.endswith(_WRAPPERS)


def warn_at_caller(message, category):
    """``warnings.warn`` at the first frame outside skmtl (and scikit-learn's decorators).

    A fixed ``stacklevel`` names the user's line only for the one call path it was counted
    on; a public function reached through another (a decorator's wrapper, another public
    function) would name a line inside the library.

    Parameters
    ----------
    message : str
    category : type of Warning
    """
    level, frame = 2, sys._getframe(1)
    while frame is not None and _internal(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
