"""Feature scaling inside the linear estimators (``standardize=True``, glmnet's convention).

The features are divided by their standard deviation over the observed rows of all tasks
pooled (a row counts once per task that observes it), the model is fitted on the scaled
columns and its coefficients are divided by the same scales, so that they are reported in the
user's units. The columns are never centred: the per-task intercepts absorb any shift (and a
sparse X stays sparse). Without intercepts the scale is the root mean square instead, the
spread around the origin the model sees.
"""

import warnings

import numpy as np
import scipy.sparse as sp

from skmtl.linear._designs import sparse_column_moments
from skmtl.utils.validation import _column_magnitudes

__all__ = []


def column_scales(X, row_weight, center):
    """Per-column scales: the weighted standard deviation (``center``) or root mean square.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
    row_weight : ndarray of shape (n_samples,)
        How many times each row counts (its number of observed labels).
    center : bool
        Standard deviation around the weighted mean (True) or root mean square (False).

    Returns
    -------
    scale : ndarray of shape (n_features,)
        Positive scales; a column with no spread (constant, or all zero) gets 1, so that it
        is left as it is and never divided by zero (or, if its entries are too large to
        square, the power of two that brings them near 1).
    """
    w = np.asarray(row_weight, dtype=np.float64)
    total = w.sum()
    if total <= 0:
        return np.ones(X.shape[1])
    w = w / total
    # Columns whose squares would overflow are first divided by a power of two near their
    # largest magnitude (exact in floating point), so that X of any finite size is scaled
    # without inf, NaN or numpy warnings; the scale is multiplied back at the end.
    magnitude = _column_magnitudes(X)
    shift = np.ones(X.shape[1])
    large = magnitude > np.sqrt(np.finfo(np.float64).max) / 4  # (2 |x|)^2 stays finite
    if large.any():
        shift[large] = 2.0 ** np.ceil(np.log2(magnitude[large]))
        X = scale_columns(X, shift)
    return shift * _unshifted_scales(X, w, center)


def _unshifted_scales(X, w, center):
    """:func:`column_scales` for entries whose squares are finite, ``w`` summing to 1."""
    if sp.issparse(X):
        _, mean, square = sparse_column_moments(X, w)  # (one pass, no copy of X)
        var = np.maximum(square - mean**2, 0.0) if center else square
    else:
        X = np.asarray(X, dtype=np.float64)
        if center:
            # the corrected two-pass variance: its second term removes the rounding error of
            # the mean itself, which w @ (X - mean)^2 kept as spread (a column of 300 ones
            # got a scale of 3.9e-15 instead of 1, and was multiplied by 2.6e14)
            mean = w @ X
            centred = X - mean
            var = np.maximum(w @ centred**2 - (w @ centred) ** 2, 0.0)
        else:
            mean, var = np.zeros(X.shape[1]), w @ X**2
    # a spread below 1e-6 of the mean is no spread, dense or sparse: below the rounding of
    # the sparse one-pass form, and the columns are not centred (dense, 1 + 1e-12 noise got
    # a scale of 9e-13 and became 1.1e12 +- 1, where sparse X of the same values got 1)
    near = var <= 1e-12 * (mean**2 + var)
    _warn_offset_columns(X, w, near)
    var[near] = 0.0
    scale = np.sqrt(var)
    magnitude = np.abs(mean) if center else scale
    scale[~(scale > 10 * np.finfo(np.float64).eps * np.maximum(magnitude, 1e-300))] = 1.0
    return scale


def _warn_offset_columns(X, w, candidates):
    """Warn about the columns left unscaled (``candidates``) that are not constant over the
    rows counted: their spread is real but below 1e-6 of their mean (1e9 + N(0, 100^2) would
    be 1e7 +- 1 after scaling, for solvers that do not centre), so their units set the grid.
    A constant column's spread is rounding alone."""
    columns = np.flatnonzero(candidates)
    if columns.size == 0:
        return
    counted = np.flatnonzero(w > 0)
    if sp.issparse(X):  # (the candidate columns only, O(their non-zeros))
        rows = X[:, columns][counted]
        varying = (rows.max(axis=0) - rows.min(axis=0)).toarray().ravel() > 0
    else:  # one column at a time: no copy of X, nor of many all-zero columns
        varying = np.array([np.ptp(X[counted, j]) > 0 for j in columns], dtype=bool)
    columns = columns[varying]
    if columns.size == 0:
        return
    # (no values in the message: every fold of a CV variant would then warn anew)
    warnings.warn(
        f"Feature(s) {columns.tolist()} vary by less than 1e-6 of their mean: standardize "
        "leaves such a column unscaled, as if constant, so the regularisation depends on its "
        "units. Subtract a round offset from it (its mean, or its first value) before "
        "fitting.", UserWarning, stacklevel=2)


def scale_columns(X, scale):
    """``X / scale`` column-wise, a new array (CSR stays CSR, CSC stays CSC)."""
    if sp.issparse(X):
        return (X @ sp.diags(1.0 / scale)).asformat(X.format)
    return np.asarray(X, dtype=np.float64) / scale


def observation_weights(mask=None, n_samples=None):
    """Each row's count: its number of observed labels (wide), or 1 (long, ``mask=None``)."""
    if mask is None:
        return np.ones(n_samples)
    return np.asarray(mask, dtype=np.float64).sum(axis=1)
