"""Hierarchical Bayesian multi-task models (Bakker & Heskes, 2003), fitted by empirical Bayes.

Every task's coefficients are drawn around a learned mean with a learned covariance; the mean,
the covariance (and the noise variance) maximise the marginal likelihood, the task coefficients
integrated out, and each task then gets its posterior mean. It is the multi-task reading of a
mixed model with a random intercept and random slopes per task: the regressor fits the same
model as statsmodels' ``MixedLM`` (``tests/linear/test_hierarchical.py`` checks that the two
agree), by the profiled likelihood of :mod:`._solver_hierarchical`.
"""

import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning

from skmtl.base import MultiTaskClassifierMixin, MultiTaskRegressorMixin
from skmtl.linear._binary import _BinaryLogisticMixin
from skmtl.linear._designs import Problem, predict_rows, shifted_row_blocks
from skmtl.linear._docs import LINEAR_DOCS
from skmtl.linear._linalg import _OneBlasThread
from skmtl.linear._mean_clustered import _MeanClusteredMixin
from skmtl.linear._solver_hierarchical import (
    _BOUND,
    _NEWTON_PAIRS,
    MixedModel,
    MomentRows,
    range_basis,
    standardized_moments,
    task_moments,
)
from skmtl.linear._solver_hierarchical_logistic import BOUND, LaplaceMixedModel
from skmtl.linear._solver_hierarchical_spherical import SphericalModel
from skmtl.utils._docstring import Substitution
from skmtl.utils._sklearn_compat import Interval, StrOptions
from skmtl.utils.validation import check_finite_squares

__all__ = ["HierarchicalClassifier", "HierarchicalRegressor"]

# a regressor's fit on tasks of at most as many labels as random effects whose residual sum of
# squares is at most this share of the fixed effects' alone fits every task almost exactly (the
# noise variance heading for 0): a warning. On 240 small generated data sets (3 to 100 tasks
# of 5 to 20 labels), the fits that did so ended at 1.1e-7 or less, the other converged ones
# at 1.25e-2 or more
_EXACT_FIT = 1e-6

# covariance_type="auto" falls back to independent random effects where a full covariance has
# more entries than tasks; it refuses that fallback where a step's T q^3 exceeds this (5 tasks
# of 1,500 to 3,000 binary fingerprint rows, "diag": 65 random effects 0.8 s / 0.7 s for the
# regressor / classifier, 129 random effects 0.8 s / 4 s, 257 random effects (T q^3 = 8.5e7)
# 8 s / 60 s; 2,049 random effects of 30 targets, 2.6e11: hours)
_AUTO_DIAGONAL_WORK = 1e8

# "auto" fits "spherical" up to this work an evaluation, d^2 (R + d) for d features and R =
# sum_t min(n_t, d) (MoleculeACE's 2,048 bits of 30 targets: 3.6e10 on its 10,000-molecule
# subsample, about a second an evaluation; 1.6e11 on all of it), and this many features (its
# d x d arrays: about 7 of them at the peak, 0.9 GB at 4,096)
_AUTO_SPHERICAL_WORK = 2e11
_AUTO_SPHERICAL_FEATURES = 4096

# "spherical": a noise variance below this share of the variance a task's deviation adds to
# each of its labels (sigma^2 c d in the standardised features) warns that the two were not
# told apart (on 30 generated tasks of 10 labels and 150 features: 2.6e-7, the noise's
# variance 1 against 14 for the deviation; on MoleculeACE, 3e-1)
_NOISE_SHARE = 1e-4


def _within_task_variation(sums, squares, n):
    """``(n_features,)`` bool: the features that vary within at least one task, from each
    task's sums ``(T, d)`` and sums of squares ``(T, d)`` over its ``n`` ``(T,)`` rows."""
    n = np.maximum(n, 1.0)[:, None]
    within = squares - sums**2 / n
    return np.any(within > 1e-10 * np.maximum(squares, np.finfo(float).tiny), axis=0)


def _random_columns(random_slopes, n_features, fit_intercept, varying):
    """Columns of ``[X, 1]`` with a random effect: the slopes asked for, then the intercept.

    ``"all"`` with an intercept means the features that vary within a task (``varying``): a
    feature constant within every task (a school's type) would get a random slope identical
    to a random intercept, aliased with it.
    """
    if isinstance(random_slopes, str):  # "all" (the constraints allow no other string)
        slopes = np.flatnonzero(varying) if fit_intercept else np.arange(n_features)
    elif random_slopes is None:
        slopes = np.array([], dtype=np.intp)
    else:
        slopes = np.asarray(random_slopes)
        if slopes.dtype == bool:
            if slopes.shape != (n_features,):
                raise ValueError(
                    f"random_slopes as a boolean mask must have one entry per feature "
                    f"({n_features}); got shape {slopes.shape}.")
            slopes = np.flatnonzero(slopes)
        elif slopes.ndim != 1 or (slopes.size and not np.issubdtype(slopes.dtype, np.integer)):
            raise ValueError(
                f"random_slopes must be 'all', None, or a list of feature indices, of column "
                f"names or a boolean mask; got {random_slopes!r}.")
        bad = slopes[(slopes < 0) | (slopes >= n_features)]
        if bad.size:
            raise ValueError(f"random_slopes has feature index {int(bad[0])}, out of range for "
                             f"{n_features} features.")
        if np.unique(slopes).size != slopes.size:
            raise ValueError(f"random_slopes repeats a feature index: {slopes.tolist()}.")
        slopes = np.sort(slopes)
    columns = np.append(slopes, n_features) if fit_intercept else slopes
    if columns.size == 0:
        raise ValueError("The model has no random effect: with fit_intercept=False, give "
                         "random_slopes at least one feature.")
    return columns.astype(np.intp)


def _shifted_task_moments(X, rows, tasks, n_tasks):
    """Each task's sums and sums of squares ``(T, d)`` of the features over its observations
    ``(rows, tasks)``, of ``X - shift`` with ``shift`` the features' mean over all observations
    (returned too): from the mean, not from zero, so that a feature far from its zero (a year,
    1e6 + noise) keeps its spread in ``squares - sums^2 / n`` (1e6 + N(0, 1) was taken for
    constant within tasks, and its random slope dropped). In blocks of rows of X, dense or
    sparse: no copy of X."""
    indicator = sp.csr_matrix((np.ones(len(rows)), (tasks, rows)), shape=(n_tasks, X.shape[0]))
    weights = np.bincount(rows, minlength=X.shape[0]) / max(len(rows), 1)
    shift = np.asarray(X.T @ weights).ravel()
    sums = np.zeros((n_tasks, X.shape[1]))
    squares = np.zeros((n_tasks, X.shape[1]))
    for rows_block, block in shifted_row_blocks(X, shift):
        part = indicator[:, rows_block]
        sums += part @ block
        squares += part @ (block * block)
    return sums, squares, shift


def _standardizer(sums, squares, n, fit_intercept, shift=None, origin=None):
    """``J`` with ``[X_std, 1] = [X, 1] J``: the features centred (with an intercept) and
    scaled to unit variance over the ``n`` observations of all tasks, from the sums and sums of
    squares over them of the features minus ``shift`` (None: 0). ``origin``: where ``X``'s
    zero lies in the user's units, when ``X`` is already shifted (the moments about the
    features' means): the size of their values, for the test of a constant feature."""
    d = len(sums)
    shift = np.zeros(d) if shift is None else shift
    variance = np.maximum(squares / n - (sums / n) ** 2, 0.0)  # about the features' mean
    mean = shift + sums / n
    if not fit_intercept:  # scaled to a unit second moment about 0, not centred
        variance, mean = variance + mean**2, np.zeros(d)
    scale = np.sqrt(variance)
    # constant: no spread beyond the rounding of its mean (relative, as scikit-learn's test of
    # constant features: a feature in tiny units, X * 1e-16, still varies; a spread of 0 too)
    level = np.abs(mean if origin is None or not fit_intercept else mean + origin)
    scale[scale <= 4.0 * np.finfo(float).eps * level] = 1.0
    J = np.eye(d + fit_intercept)
    J[np.arange(d), np.arange(d)] = 1.0 / scale
    if fit_intercept:
        J[d, :d] = -mean / scale
    return J


def _shared_equally(gram, theta):
    """A diagonal ``Sigma``'s standard deviations ``theta`` with those of random columns equal
    on every row (standardised: features that differ by a constant or a positive factor)
    replaced by their root mean square. The likelihood depends on such columns' variances
    only through their sum, so the fit's split is arbitrary (0.68 and 1.24 for a duplicated
    column placed last, 0.96 and 0.96 placed first); the equal split keeps the likelihood and
    the predictions and gives the columns equal coefficients, as the full model's range
    basis does. ``gram``: the random columns' ``sum_t Z_t^T Z_t``."""
    scale = np.diag(gram)
    distance = scale[:, None] + scale[None, :] - 2.0 * gram  # sum of squared differences
    same = distance <= 1e-10 * (scale[:, None] + scale[None, :])
    theta = np.array(theta, dtype=np.float64)
    done = np.zeros(len(theta), dtype=bool)
    for j in range(len(theta)):
        group = np.flatnonzero(same[j] & ~done)
        if group.size > 1:
            theta[group] = np.sqrt(np.mean(theta[group] ** 2))
        done[group] = True
    return theta


class _RandomRange:
    """The random effects of collinear random columns in an orthonormal basis ``V`` (q x r)
    of the range of ``sum_t Z_t^T Z_t``: the columns ``Z_t V``, ``r`` of them, in place of
    ``Z_t`` in the fixed-effects design too (``D' = D C``, ``C`` the identity on the other
    columns and ``V`` on the random ones; the same span, since ``Z_t v = 0`` for ``v`` outside
    the range). A covariance ``Sigma`` of ``Z``'s effects is defined by the data only through
    ``V^T Sigma V``; the fit's is ``V Sigma' V^T``, no variance along the combinations that
    are zero on every row. Without this, a direction of ``Sigma`` the likelihood does not
    see left Newton's Hessian singular: chem97's ``gcsecnt``, ``gcsescore`` minus a
    constant, took 121 L-BFGS-B iterations and returned variances of 1.57 and 1.65 for the
    two slopes, where the model without ``gcsecnt`` has 0.17."""

    def __init__(self, V, random, p):
        self.V = V
        self.columns = random  # the random columns of D
        self.others = np.setdiff1d(np.arange(p), random)  # D's other columns, kept
        self.random = np.arange(V.shape[1])  # D' = [Z V, D[:, others]]

    @classmethod
    def of(cls, A, random):
        """The basis of the random columns' range from the moments ``A`` ((T, p, p) or
        :class:`MomentRows`), None when they are independent (the tolerance of the fixed
        effects' basis, :class:`MixedModel`)."""
        if isinstance(A, MomentRows):
            total, p = A.total, A.total.shape[0]
        else:
            total, p = A.sum(axis=0), A.shape[2]
        V = range_basis(total[np.ix_(random, random)], p)
        return None if V.shape[1] == len(random) else cls(V, random, p)

    def right(self, M):
        """``M C`` over the last axis: ``(..., p)`` to ``(..., r + p - q)``."""
        return np.concatenate([M[..., self.columns] @ self.V, M[..., self.others]], axis=-1)

    def moments(self, A):
        """``C^T A_t C`` (or the :class:`MomentRows` of ``D'``'s random rows)."""
        if isinstance(A, MomentRows):  # rows over the random columns, in their order
            rows = np.matmul(self.V.T, self.right(A.rows))
            total = self.right(self.right(A.total).T)
            return MomentRows(rows, self.random, total)
        return self.right(self.right(A).transpose(0, 2, 1))

    def back(self, beta, Sigma, U):
        """The fit in ``D``'s coordinates: ``beta = C beta'``, ``V Sigma' V^T``, ``U' V^T``."""
        out = np.empty(len(self.columns) + len(self.others))
        out[self.columns] = self.V @ beta[:len(self.random)]
        out[self.others] = beta[len(self.random):]
        return out, self.V @ Sigma @ self.V.T, U @ self.V.T


_DIAGONAL_DOC = """
        ``"diag"`` is diagonal in the features centred at
        their mean and scaled to unit variance over the observed rows, the coordinates the
        model is fitted in: ``task_covariance_``, in the units of ``X``, then has
        covariances between the intercept and the slopes only (the random intercept is that
        of the centred features), and the fit does not depend on the features' origin or
        scale. With ``q`` parameters to estimate instead of ``q (q + 1) / 2``, it suits
        many features and few tasks, where a full ``Sigma`` overfits or takes long (yeast:
        104 random effects from 14 tasks; see the user guide)."""
_STRUCTURES = """
        The structure of ``Sigma``: ``"full"`` (every variance and covariance, ``q (q + 1) /
        2`` entries for ``q`` random effects), ``"diag"`` (independent deviations: ``q``
        variances, lme4's ``(x || task)``), {spherical}or ``"auto"``: ``"full"`` where its
        entries are at most as many as the tasks, ``"diag"`` where they are more (the full
        estimate is then noisy and the tasks' coefficients overfit; see the user guide's
        table), as ``covariance_type_`` records; """

_DOCS = {
    **LINEAR_DOCS,
    "covariance_type": '\n    covariance_type : {"auto", "full", "diag"}, default="auto"' +
    _STRUCTURES.format(
        spherical="") + """its fallback to ``"diag"`` is refused where a step's ``T q^3``
        exceeds 1e8, about a minute, with a ValueError saying what to pass instead.""" +
    _DIAGONAL_DOC,
    "covariance_type_spherical":
    '\n    covariance_type : {"auto", "full", "diag", "spherical"}, default="auto"' +
    _STRUCTURES.format(spherical="""``"spherical"`` (one variance for every slope, one for
        the intercept, and a prior on the mean task's slopes: see below), """) + """and
        ``"spherical"`` where a step of ``"diag"`` would cost ``T q^3`` above 1e8, about a
        minute (many features: 2,048 fingerprint bits of 30 targets), up to 4,096 features
        and ``d^2 (R + d) = 2e11`` an evaluation for ``R`` the labels, counted up to ``d`` a
        task (beyond, a ValueError says what to pass).""" + _DIAGONAL_DOC + """
        ``"spherical"`` is for many features, more than the labels can give a mean each:
        in the same standardised coordinates, every task's slopes deviate from the mean
        task's with one variance ``sigma^2 c``, its intercept with ``sigma^2 nu``, and the
        mean task's slopes have a Gaussian prior too, ``beta ~ N(0, sigma^2 a I)`` (the
        fixed effects of a mixed model with 2,048 features overfit: a random intercept
        beside MoleculeACE's fingerprint bits scored a held-out R^2 of -0.02, where
        ``"spherical"`` scores 0.49). ``a``, ``c``, ``nu`` and ``sigma^2`` maximise the
        likelihood with ``beta`` and the deviations integrated out (the mean intercept
        ``b`` profiled, or integrated out with ``method="reml"``): the model whose posterior
        mode is :class:`MeanClusteredRegressor`'s penalty, its strengths learned instead
        of cross-validated. It needs ``random_slopes="all"`` (every feature's slope
        deviates, whether it varies within a task or not: the prior keeps it defined).""",
    "hierarchical_references": """
    References
    ----------
    Bakker, B. and Heskes, T., "Task clustering and gating for Bayesian multitask learning",
    JMLR 4, 2003.
    Bates, D., Maechler, M., Bolker, B. and Walker, S., "Fitting linear mixed-effects models
    using lme4", Journal of Statistical Software 67(1), 2015.
    """,
}


class _HierarchicalMixin(_OneBlasThread):
    """Parameters, the moments of wide or long data, the fitted attributes, predictions."""

    _parameter_constraints = {
        "random_slopes": [StrOptions({"all"}), None, "array-like"],
        "covariance_type": [StrOptions({"auto", "full", "diag"})],
        "fit_intercept": ["boolean"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "unknown_task": [StrOptions({"error", "shared"})],
    }
    _X_dtype = np.float64

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _fit_multitask(self, X, Y, mask):
        self._check_finite(X, Y, mask=mask)
        self._fit_tasks(X, Problem(X, Y, mask))

    def _fit_long(self, X, y, task_index):
        self._check_finite(X, y, task_index=task_index)
        self._fit_tasks(X, Problem(X, y, task_index=task_index, n_tasks=self.n_tasks_))

    def _check_finite(self, X, y, **kwargs):
        check_finite_squares(X, y, tasks=self.tasks_, **kwargs)

    def _check_enough_labels(self, n_labels, n_columns, kind):
        if n_labels <= n_columns:
            raise ValueError(
                f"{type(self).__name__} needs more observed labels than {kind} columns "
                f"(features and intercept); got {int(n_labels)} label(s) for {n_columns} "
                f"column(s) (n_samples = {int(n_labels)}).")

    def _covariance_too_large(self, n_random, n_labels, n_tasks):
        """``"full"``: a covariance of ``n_random`` random effects with more entries than
        labels, past the 990 entries (44 random effects) up to which HierarchicalRegressor's
        Newton steps fit it (L-BFGS-B alone above, each step ``O(T q^2 (q + d))``): 2,048
        fingerprint bits give 2,049 random effects, 2.1 million entries, a fit of hours that
        the labels cannot determine. ``"auto"``: its diagonal fallback (more entries than
        tasks) where each step's ``T q^3`` exceeds ``_AUTO_DIAGONAL_WORK`` (2,049 random
        effects of 30 targets: hours); ``"auto"`` resolved to ``"full"`` has at most as many
        entries as tasks, so as labels."""
        entries = n_random * (n_random + 1) // 2
        if self.covariance_type == "full":
            return entries > max(_NEWTON_PAIRS, n_labels)
        return (self.covariance_type == "auto" and entries > n_tasks
                and n_tasks * float(n_random) ** 3 > _AUTO_DIAGONAL_WORK)

    def _resolve_covariance(self, n_random, n_tasks):
        """Set ``covariance_type_``: ``covariance_type``, or for ``"auto"`` ``"full"`` where
        the ``q (q + 1) / 2`` entries of ``Sigma`` are at most ``n_tasks``, else ``"diag"``.
        Returns whether it is diagonal."""
        kind = self.covariance_type
        if kind == "auto":
            kind = "full" if n_random * (n_random + 1) // 2 <= n_tasks else "diag"
        self.covariance_type_ = kind
        return kind == "diag"

    def _check_covariance_size(self, n_random, n_labels, n_tasks):
        """Refuse :meth:`_covariance_too_large` with what to pass instead."""
        if not self._covariance_too_large(n_random, n_labels, n_tasks):
            return
        if self.covariance_type == "auto":
            raise ValueError(
                f"{type(self).__name__} with covariance_type='auto' would fit {n_random:,} "
                f"independent random effects (the intercept's and the random slopes'; a "
                f"diagonal covariance, as a full one's {n_random * (n_random + 1) // 2:,} "
                f"entries outnumber the {n_tasks:,} tasks), whose fit's steps cost T q^3 = "
                f"{n_tasks * float(n_random) ** 3:.2g}, more than the "
                f"{_AUTO_DIAGONAL_WORK:.0e} (about a minute) that 'auto' takes on. Keep a "
                f"random intercept only (random_slopes=None), give most features a fixed "
                f"slope (random_slopes=[a few feature indices]), or pass "
                f"covariance_type='diag' to fit them all the same.{self._spherical_hint()}")
        raise ValueError(
            f"{type(self).__name__} with covariance_type={self.covariance_type!r} would "
            f"estimate a covariance of {n_random * (n_random + 1) // 2:,} entries "
            f"({n_random:,} random effects, the intercept's and the random slopes') from "
            f"{int(n_labels):,} labels: more entries than labels, which cannot determine "
            f"them, and more than 44 random effects, whose fit's steps grow with the cube "
            f"to the fourth power of their number. Keep a random intercept only "
            f"(random_slopes=None), give most features a fixed slope "
            f"(random_slopes=[a few feature indices]), or make the slopes independent "
            f"(covariance_type='diag': {n_random:,} variances).{self._spherical_hint()}")

    def _named_slopes(self):
        """``random_slopes`` with the names of a DataFrame's columns (``feature_names_in_``)
        replaced by their indices, as a ColumnTransformer takes them."""
        slopes = self.random_slopes
        if isinstance(slopes, str) or slopes is None:
            return slopes
        values = list(np.ravel(np.asarray(slopes, dtype=object)))
        if not values or not all(isinstance(v, str) for v in values):
            return slopes
        names = getattr(self, "feature_names_in_", None)
        if names is None:
            raise ValueError(
                f"random_slopes names columns ({values}), but X has no column names: pass X "
                "as a pandas DataFrame with string column names, or give feature indices.")
        position = {name: j for j, name in enumerate(names)}
        missing = [v for v in values if v not in position]
        if missing:
            raise ValueError(f"random_slopes names {missing[0]!r}, which is not a column of X "
                             f"(its columns: {list(names)}).")
        return [position[v] for v in values]

    def _refused_random(self, X, problem):
        """The number of random effects :meth:`_check_covariance_size` refuses, or None,
        before the ``(T, d + 1, d + 1)`` moments are formed (on 2,048 features, 1 GB and 8 s
        before the error): every feature counted as random first, the features that vary
        within a task (:func:`_within_task_variation`, from one pass over the rows) only
        when that many would be refused."""
        rows, tasks, counts = problem.flat_groups()
        d = X.shape[1]
        every = _random_columns(self._named_slopes(), d, self.fit_intercept, np.ones(d, bool))
        if not self._covariance_too_large(len(every), len(rows), len(counts)):
            return None
        sums, squares, _ = _shifted_task_moments(X, rows.astype(np.intp), tasks, len(counts))
        varying = self.fit_intercept and _within_task_variation(
            sums, squares, counts.astype(np.float64))
        random = _random_columns(self._named_slopes(), d, self.fit_intercept, varying)
        refused = self._covariance_too_large(len(random), len(rows), len(counts))
        return len(random) if refused else None

    def _warn_no_maximum(self, share, on_bound, interpolated, n_random, n):
        """The fit ended where the random effects fit every task almost exactly (``share``:
        :meth:`MixedModel.residual_share`), on the bound of their standard deviations or
        not, as they can where every task has at most as many labels as random effects
        (``interpolated``) or the targets have no noise."""
        rows = int(n.max())
        where = (f", on the bound of {_BOUND:g} on a random effect's standard deviation "
                 f"relative to the noise's (in standardised units)" if on_bound else "")
        if interpolated:
            advice = (f"The {n_random} random effects are too many for tasks of at most "
                      f"{rows} labels{' and so few tasks' if len(n) < 10 else ''}")
        else:
            advice = ("The targets look like exact linear functions of the features within "
                      "each task; if they are not")
        warnings.warn(
            f"The likelihood has no maximum on these data at a positive noise variance: the "
            f"fit ended with each task fitted almost exactly by its random effects (the "
            f"residual sum of squares at {share:.1e} times that of the fixed effects alone) "
            f"and the noise variance near 0{where}. {advice}: give fewer features a random "
            f"slope (random_slopes), or make them independent (covariance_type='diag').",
            ConvergenceWarning, stacklevel=4)

    def _spherical_hint(self):
        """The regressor's other way out of a covariance too large (none here)."""
        return ""

    def _warn_unconverged(self, n_iter, hint="", stacklevel=4):
        if n_iter >= self.max_iter:
            warnings.warn(
                f"The likelihood's optimiser stopped after max_iter={self.max_iter} "
                f"iterations before its gradient fell below tol={self.tol}; raise "
                f"max_iter.{hint}", ConvergenceWarning, stacklevel=stacklevel)

    def _set_fitted(self, beta, U, Sigma, random, J, y_origin=0.0):
        """Store the fit made in the standardized coordinates ``[X, 1] J`` (of the targets
        minus ``y_origin``) in the user's."""
        d = self.n_features_in_
        beta = J @ beta
        if self.fit_intercept:
            beta[d] += y_origin
        J_random = J[np.ix_(random, random)]
        U = U @ J_random.T
        coef = np.tile(beta, (U.shape[0], 1))
        coef[:, random] += U
        self.coef_ = coef[:, :d]
        self.intercept_ = coef[:, d] if self.fit_intercept else np.zeros(len(coef))
        self.shared_coef_ = beta[:d]
        self.shared_intercept_ = float(beta[d]) if self.fit_intercept else 0.0
        self.task_covariance_ = J_random @ Sigma @ J_random.T
        self.random_columns_ = random

    # the predictions of coef_ / intercept_ and of the mean task, as the mean-clustered models
    _decision = _MeanClusteredMixin._decision
    _shared_decision = _MeanClusteredMixin._shared_decision

    def _predict_tasks(self, X, task_index):
        return predict_rows(X, self.coef_, self.intercept_, task_index)


@Substitution(**_DOCS)
class HierarchicalRegressor(_HierarchicalMixin, MultiTaskRegressorMixin, BaseEstimator):
    r"""Hierarchical Bayesian multi-task regression: task coefficients drawn around a mean.

    The model (Bakker & Heskes, 2003; the linear mixed model with a random intercept and
    random slopes per task)::

        y_ti = x_ti^T (beta + u_t) + b + v_t + e_ti,
        (u_t, v_t) ~ N(0, Sigma),   e_ti ~ N(0, sigma^2)

    over the observed rows ``x_ti`` of each task ``t``: ``beta`` and ``b`` are the mean task
    (the fixed effects), ``(u_t, v_t)`` the task's deviation (its random effects; only the
    ``random_slopes`` features and the intercept deviate, the other entries of ``u_t`` are 0).
    ``beta``, ``b``, the covariance ``Sigma`` of the deviations and the noise variance
    ``sigma^2`` maximise the likelihood of the data with the deviations integrated out
    (empirical Bayes: no penalty to choose, no grid search)::

        max  sum_t log N(y_t ; X_t beta + b, sigma^2 I + Z_t Sigma Z_t^T)

    (``Z_t`` the task's rows of the random columns and a column of ones), or its restricted
    (REML) version, which corrects the variances for the fixed effects estimated
    (``method``). Each task's coefficients are then its posterior mean, ``beta + E[u_t |
    y_t]`` (the BLUP of the mixed model): a task with few rows stays near the mean task, a task
    with many follows its own data, by as much as the data say the tasks differ.

    Parameters
    ----------
    random_slopes : "all", None or array-like of int, bool or str, default="all"
        Features whose coefficient varies between tasks (indices, a mask of
        ``n_features``, or the column names of a DataFrame ``X``): ``"all"``, None (a
        random intercept only), or a list. The other
        features have one coefficient shared by all tasks. ``Sigma`` has ``q (q + 1) / 2``
        entries for ``q`` random effects: with more entries than tasks its estimate is
        noisy and the tasks' coefficients overfit (on 300 generated tasks of 20 rows with
        60 features, ``"all"`` scored a held-out R^2 of 0.41 per task, a random intercept
        only 0.67, ``"all"`` with a diagonal ``Sigma`` 0.71; see the user guide), so give
        fewer features a random slope there, or make them independent
        (``covariance_type``; ``"auto"``, the default, does so there).
    {covariance_type_spherical}
    method : {"reml", "ml"}, default="reml"
        Maximise the restricted likelihood (REML, statsmodels' and lme4's default; unbiased
        variances when the fixed effects are estimated) or the likelihood (ML).
    fit_intercept : bool, default=True
        Fit a mean intercept and a random intercept per task. Without it there is no
        intercept at all (the data should be centred) and ``random_slopes`` must be
        non-empty.
    max_iter : int, default=1000
        Maximum number of iterations of the optimisers (Newton's method, then L-BFGS-B;
        see Notes), together; reaching it raises a ConvergenceWarning.
    tol : float, default=1e-8
        The optimisers stop when the (projected) gradient of the profiled deviance in the
        Cholesky factor of ``Sigma`` is at most ``tol`` times ``max(1, |deviance|)``. A
        variance that is zero at the optimum is set to exactly zero once the optimiser has
        taken it to rounding level (below 1e-12 of the largest, in standardised units).
        ``"spherical"``: L-BFGS-B stops when the projected gradient of the deviance in
        ``log(a, c, nu)`` is at most ``tol`` times the number of labels (which does not
        depend on the units of y).
    unknown_task : {"error", "shared"}, default="error"
        A task id not seen in fit: raise :class:`~skmtl.UnknownTaskError`, or (``"shared"``)
        predict it with the mean task, ``X @ shared_coef_ + shared_intercept_`` (the prior mean
        of a new task, its deviation unknown).

    Attributes
    ----------
    coef_ : ndarray of shape (n_tasks, n_features)
        Each task's coefficients, ``beta + E[u_t | y_t]``.
    intercept_ : ndarray of shape (n_tasks,)
        Each task's intercept, ``b + E[v_t | y_t]`` (zeros without ``fit_intercept``).
    shared_coef_ : ndarray of shape (n_features,)
        The mean task ``beta`` (the fixed effects).
    shared_intercept_ : float
        The mean intercept ``b``.
    task_covariance_ : ndarray of shape (n_random, n_random)
        ``Sigma``, the covariance of the tasks' deviations over ``random_columns_``: the
        random slopes' features, then the intercept.
    random_columns_ : ndarray of int
        Indices of the random effects' columns in ``[X, 1]`` (``n_features`` is the
        intercept).
    covariance_type_ : {"full", "diag", "spherical"}
        The structure of ``Sigma`` fitted (``covariance_type``, ``"auto"`` resolved).
    noise_variance_ : float
        ``sigma^2``.
    mean_prior_variance_ : float
        ``"spherical"`` only: ``sigma^2 a``, the prior variance of each slope of the mean task
        in the standardised features (``"full"`` and ``"diag"`` put no prior on it).
    log_likelihood_ : float
        The maximised log-likelihood (restricted with ``method="reml"``), constants included:
        statsmodels' ``MixedLMResults.llf`` of the same model (``"spherical"``: of its model,
        the mean task's slopes integrated out with their prior and only the intercept
        restricted, so compare it with that of other spherical fits only). The restricted
        likelihood is defined for a fixed design of full rank: with aliased columns (a
        one-hot block beside the intercept) its value depends on how they are coded (0.2
        apart with and without the block's first column on 600 labels; the fit and the ML
        value do not), so drop them before comparing it with statsmodels or lme4, which drop
        them.
    n_iter_ : int
        Iterations of the optimisers, Newton's and L-BFGS-B's together (1 when the start is
        already optimal).
    {task_attributes}

    See Also
    --------
    MeanClusteredRegressor : Every task pulled to the mean by a fixed ridge penalty, chosen
        by cross-validation in :class:`MeanClusteredRegressorCV`; this model learns the pull
        (per feature and correlated) from the data.

    Notes
    -----
    Solver: the likelihood is profiled, as in lme4 (Bates et al., 2015): with ``Sigma = sigma^2
    L L^T``, ``L`` lower triangular, ``beta``, ``b`` and ``sigma^2`` have closed forms given
    ``L``. The profiled deviance is minimised by Newton's method on ``Psi = L L^T`` with its
    exact Hessian (the expected information far from the optimum), which reaches an optimum
    inside the positive definite covariances in a few iterations (7 on 1,000 tasks with 31
    random effects). Where its steps head for a variance at 0 instead (frequent on real data:
    Exam, Hsb82 and chem97 all have one), Newton goes on on a factor ``B`` of ``Psi = B B^T``
    with as many columns as the rank its step headed for (every ``B`` is a covariance, so no
    step is cut; resumed with one column more where a variance left at 0 should grow): 12 to
    15 iterations on the school data, 17 on 1,000 tasks with 15 of 30 slopes constant (a
    diagonal ``Sigma``: on the standard deviations kept, 11 to 17). Where that fails, it
    follows the central path of the barrier ``- mu log |Sigma|`` with ``mu`` decreasing to
    0 (45 to 71 iterations on the school data) until its steps change the deviance by
    rounding only, and sets the variances it took to rounding level to exactly 0. L-BFGS-B
    on the entries of ``L``, the diagonal of ``L`` bounded below by 0, finishes and checks
    that no variance left at 0 should grow (expectation-maximisation creeps towards such a
    boundary for thousands of iterations). Everything is computed from each task's moments
    ``[X_t, 1]^T [X_t, 1]`` and ``[X_t, 1]^T y_t``, in standardised coordinates (the model is
    equivariant to them): ``O(n d^2)`` once, then ``O(T q^2 (q + d))`` per evaluation and ``O(T
    q^4)`` per Hessian for ``q`` random effects (Newton up to ``q = 44``, L-BFGS-B alone above).
    Where some slopes are fixed (``random_slopes`` None or a list), only the random columns'
    rows of the moments are formed, ``T q (d + 1)`` entries, beside their sum over tasks;
    where the fixed effects outnumber the ``T q`` columns of the tasks' random effects (many
    features, few tasks), the products with them go through those columns, ``O(T q d^2 +
    d^3)`` per evaluation (a random intercept beside MoleculeACE's 2,048 fingerprint bits, 30
    targets on 10,000 molecules: 18 s at a process peak of 0.84 GB; the whole moments took
    94 s and 2.94 GB).
    ``covariance_type="spherical"`` has its own solver: each task is held as the thin
    singular value decomposition of its standardised rows, ``K_t = I + c X_t X_t^T + nu 1
    1^T`` is then diagonal but for a rank-one term, and the shared mean goes through one ``d x
    d`` system (Woodbury), so an evaluation of the likelihood and of its exact gradient in
    ``log(a, c, nu)`` costs ``O(d^2 sum_t min(n_t, d) + d^3)``; L-BFGS-B minimises it from
    ``a = c = nu = 1`` (12 to 16 iterations on MoleculeACE's 2,048 bits of 30 targets, 30 to
    50 s). With one task, ``c = nu = 0`` and the fit is scikit-learn's ``BayesianRidge`` on
    the standardised features (with ``method="ml"``).
    With one task (a 1-D y without ``task_ids``) there are no deviations between tasks to
    estimate: ``Sigma = 0`` and the fit is ordinary least squares (``"spherical"``, which
    ``"auto"`` picks on one task beyond 463 features: BayesianRidge; the restricted likelihood
    does not depend on ``Sigma`` then, the likelihood is largest at 0; before, REML returned
    its starting point as ``task_covariance_``).
    Suited to up to a few dozen random slopes; ``Sigma`` has ``q (q + 1) / 2`` entries to
    estimate (a full one of more than 44 random effects with more entries than labels is
    refused with a ValueError; where ``"auto"``'s diagonal fallback would cost ``T q^3``
    above 1e8 a step, about a minute (2,048 fingerprint bits of 30 targets: hours), it fits
    ``"spherical"`` instead), so give many features a fixed slope (``random_slopes``),
    make the slopes independent (``covariance_type="diag"``: ``q`` variances, fitted by the
    same Newton's method on them, its Hessian ``O(T q^3)``; L-BFGS-B's final check grows every
    variance left at 0 that should grow, at once), or give them one variance
    (``"spherical"``). A rank-deficient X
    (collinear columns) is fitted in a basis of its range, and so, with a full ``Sigma``,
    are the random effects of collinear random columns (a feature that is another plus a
    constant, beside the random intercept): the data determine ``Sigma`` only on that
    range, and ``task_covariance_`` is the one with no variance on a combination of the
    standardised random columns that is zero on every row (two features that differ by a
    constant share their slope's variance equally, the intercept takes the shift); the
    predictions are those of the model without the redundant feature. A diagonal ``Sigma``
    depends on the variances of random columns equal on every row (standardised) through
    their sum only, which is shared equally between them. Where the likelihood
    has no maximum (few tasks of fewer labels than random effects, which the random effects
    can fit exactly as the noise variance goes to 0), the fit stops on the bound of 1e4 on
    the standard deviations relative to the noise's, or at a stationary point short of it,
    with a ConvergenceWarning that says so: on the bound, or where every task has at most as
    many labels as random effects and the residual sum of squares is at most 1e-6 times that
    of the fixed effects alone (noise-free targets, fitted exactly by tasks of more labels,
    reach the bound and warn too).
    Data in which every task has one label raise a ValueError: the random intercept's
    variance and ``sigma^2`` then enter the likelihood only through their sum (lme4 stops
    too).

    {hierarchical_references}

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.linear import HierarchicalRegressor
    >>> rng = np.random.RandomState(0)
    >>> task_ids = np.repeat(np.arange(20), 15)
    >>> X = rng.normal(size=(300, 2))
    >>> slopes = np.array([1.0, -2.0]) + 0.5 * rng.normal(size=(20, 2))
    >>> y = np.einsum("ij,ij->i", X, slopes[task_ids]) + 0.1 * rng.normal(size=300)
    >>> model = HierarchicalRegressor().fit(X, y, task_ids=task_ids)
    >>> model.shared_coef_.round(1)  # the mean of the tasks' slopes: 0.89, -2.05
    array([ 0.9, -2.1])
    >>> float(np.abs(model.coef_ - slopes).max()) < 0.1
    True
    """

    _parameter_constraints = {
        **_HierarchicalMixin._parameter_constraints,
        "covariance_type": [StrOptions({"auto", "full", "diag", "spherical"})],
        "method": [StrOptions({"reml", "ml"})],
    }

    def _spherical_hint(self):
        """``"spherical"``, where it applies (every slope random)."""
        if not isinstance(self.random_slopes, str):
            return ""
        return (" Or pass covariance_type='spherical': one variance for every slope's "
                "deviation, and a prior on the mean task's slopes.")

    def __init__(self, *, random_slopes="all", covariance_type="auto", method="reml",
                 fit_intercept=True, max_iter=1000, tol=1e-8, unknown_task="error"):
        self.random_slopes = random_slopes
        self.covariance_type = covariance_type
        self.method = method
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.unknown_task = unknown_task

    def _fit_tasks(self, X, problem):
        if self.covariance_type == "spherical":
            return self._fit_spherical(X, problem)
        refused = self._refused_random(X, problem)  # (one pass over X, where it counts)
        if refused is not None:
            if self.covariance_type == "auto" and isinstance(self.random_slopes, str):
                self._check_spherical_size(X, problem)
                return self._fit_spherical(X, problem)  # "auto" on many features
            rows, _, counts = problem.flat_groups()
            self._check_covariance_size(refused, len(rows), len(counts))
        self.__dict__.pop("mean_prior_variance_", None)  # (of an earlier spherical fit)
        d = X.shape[1]
        if isinstance(self.random_slopes, str):  # "all": the varying features, from A
            A, c, s, n, (x_origin, y_origin) = task_moments(problem, self.fit_intercept)
            total = A.sum(axis=0)
            varying = self.fit_intercept and _within_task_variation(
                A[:, :d, d], A[:, np.arange(d), np.arange(d)], n)
            random = _random_columns(self._named_slopes(), d, self.fit_intercept, varying)
        else:  # the moments' rows of the random columns and their sum: T q (d + 1) entries
            random = _random_columns(self._named_slopes(), d, self.fit_intercept, None)
            A, c, s, n, (x_origin, y_origin) = task_moments(problem, self.fit_intercept,
                                                            rows=random)
            total = A.total
        self._check_covariance_size(len(random), n.sum(), len(n))
        diagonal = self._resolve_covariance(len(random), len(n))
        J = _standardizer(total[:d, d] if self.fit_intercept else np.zeros(d),
                          np.diag(total)[:d], n.sum(), self.fit_intercept, origin=x_origin)
        A = standardized_moments(A, J)
        c = c @ J
        # collinear random columns (a feature that is another plus a constant, beside the
        # random intercept): their effects in a basis of the range, a covariance of full rank
        reduced = None if diagonal else _RandomRange.of(A, random)
        random_fit = random
        if reduced is not None:
            A, c, random_fit = reduced.moments(A), reduced.right(c), reduced.random
        model = MixedModel(A, c, s, n, random_fit, reml=self.method == "reml",
                           diagonal=diagonal)
        self._check_enough_labels(model.n, model.rank, "independent fixed-effect")
        # y_t = x_t beta + b + x_t u_t + v_t + e_t on one row: var(v_t) and sigma^2 enter
        # the likelihood only through their sum (lme4 stops: nobs <= number of levels)
        self._check_two_labels(n)
        if len(n) == 1:  # one task, no deviations between tasks: Sigma = 0 (see Notes)
            theta, n_iter = np.zeros_like(model.start()), 0
        else:
            theta, n_iter = model.fit(model.start(), max_iter=self.max_iter, tol=self.tol)
        # every task of at most as many labels as random effects (independent ones: those of
        # collinear random columns count once): they can fit each task exactly, the noise
        # variance going to 0 (elsewhere only noise-free targets can)
        interpolated = n.max() <= model.q
        on_bound = np.abs(theta).max() >= _BOUND * (1.0 - 1e-6)
        share = model.residual_share(theta)
        if on_bound or interpolated and share <= _EXACT_FIT:
            self._warn_no_maximum(share, on_bound, interpolated, len(random), n)
        else:
            self._warn_unconverged(n_iter, hint=(
                f" Every task has at most as many labels as the {len(random)} random effects, "
                f"which can fit each task exactly: if the likelihood has no maximum, a longer "
                f"fit ends with the noise variance near 0; then give fewer features a random "
                f"slope (random_slopes), or use covariance_type='diag'." if interpolated
                else ""))
        if diagonal:
            theta = _shared_equally(model.Azz, theta)
        beta, sigma2, Sigma, U = model.estimates(theta)
        if reduced is not None:
            beta, Sigma, U = reduced.back(beta, Sigma, U)
        # from the moments' origin to the user's: [X - x_origin, 1] = [X, 1] C
        origin = np.eye(len(J))
        if self.fit_intercept:
            origin[d, :d] = -x_origin
        self._set_fitted(beta, U, Sigma, random, origin @ J, y_origin)
        self.noise_variance_ = float(sigma2)
        value = model.log_likelihood(theta)
        if model.reml:  # log |X^T V^-1 X| in the user's coordinates, not the standardised
            value += np.linalg.slogdet(J)[1]
        self.log_likelihood_ = float(value)
        self.n_iter_ = max(int(n_iter), 1)  # (the start counts, when it is optimal)
        return self

    def _check_spherical_size(self, X, problem):
        """Refuse ``"auto"``'s spherical fallback where its ``d x d`` system costs more than
        ``_AUTO_SPHERICAL_WORK`` an evaluation (``d^2 (R + d)``, ``R = sum_t min(n_t, d)``) or
        ``d`` exceeds ``_AUTO_SPHERICAL_FEATURES``: a fit of many minutes, and about 7 ``d x
        d`` arrays of memory (20,000 features: some 20 GB)."""
        _, _, counts = problem.flat_groups()
        d = X.shape[1]
        rows = float(np.minimum(counts, d).sum())
        work = float(d) ** 2 * (rows + d)
        if work <= _AUTO_SPHERICAL_WORK and d <= _AUTO_SPHERICAL_FEATURES:
            return
        raise ValueError(
            f"{type(self).__name__} with covariance_type='auto' would fit the spherical model "
            f"on {d:,} features (independent slopes would cost more still), whose d x d system "
            f"costs d^2 (R + d) = {work:.2g} an evaluation (R = {rows:,.0f}, the labels up to "
            f"d a task) and about {7 * 8 * d**2 / 1e9:.2g} GB, more than the "
            f"{_AUTO_SPHERICAL_WORK:.0e} (a few minutes a fit) and {_AUTO_SPHERICAL_FEATURES:,} "
            f"features that 'auto' takes on. Pass covariance_type='spherical' to fit it "
            f"anyway, select fewer features, or use MeanClusteredRegressorCV.")

    def _check_two_labels(self, counts):
        if self.fit_intercept and counts.max() <= 1:
            raise ValueError(
                f"{type(self).__name__} needs a task with two labels or more: every task has "
                f"one label, so the noise variance and the variance of the tasks' random "
                f"intercepts enter the likelihood only through their sum and cannot be told "
                f"apart. Check task_ids (one task per row?), or fit a model without random "
                f"effects (MeanClusteredRegressorCV).")

    def _fit_spherical(self, X, problem):
        """``covariance_type="spherical"`` (or ``"auto"`` on many features): the model of
        :mod:`._solver_hierarchical_spherical`."""
        if not isinstance(self.random_slopes, str):
            raise ValueError(
                f"{type(self).__name__} with covariance_type='spherical' gives every slope "
                f"one variance and needs random_slopes='all'; got random_slopes="
                f"{self.random_slopes!r}. Pass random_slopes='all', or choose "
                f"covariance_type='full' or 'diag' for a random intercept or some random "
                f"slopes.")
        rows, tasks, counts = problem.flat_groups()
        rows = rows.astype(np.intp)
        d, n_tasks = X.shape[1], len(counts)
        self._check_enough_labels(len(rows), int(self.fit_intercept), "fixed-effect")
        if n_tasks > 1:
            self._check_two_labels(counts)
        sums, squares, shift = _shifted_task_moments(X, rows, tasks, n_tasks)
        J = _standardizer(sums.sum(axis=0), squares.sum(axis=0), float(len(rows)),
                          self.fit_intercept, shift=shift)
        scale = 1.0 / np.diag(J)[:d]
        mean = -J[d, :d] * scale if self.fit_intercept else np.zeros(d)
        model = SphericalModel(X, mean, scale, rows, tasks, problem.flat_targets(), n_tasks,
                               self.fit_intercept, reml=self.method == "reml")
        theta, n_iter = model.fit(max_iter=self.max_iter, tol=self.tol)
        self._warn_unconverged(n_iter, stacklevel=7)
        beta, b, sigma2, (a, c, nu), W, v = model.estimates(theta)
        # the deviation of a task on its own rows has variance about sigma^2 c d per label
        # (standardised features): beyond _NOISE_SHARE times the noise's, the two were not
        # told apart (no task has more labels than random effects) and the noise went to 0
        if model.interpolates() and c * d >= 1.0 / _NOISE_SHARE:
            intercept = ", and the intercept" if self.fit_intercept else ""
            warnings.warn(
                f"The noise variance went to {sigma2:.1e}, {1.0 / (c * d):.1e} times the "
                f"variance a task's deviation from the mean adds to each of its labels: "
                f"no task has more labels (at most {int(counts.max())}) than random effects "
                f"(the rank of its rows, of {d} features{intercept}), "
                f"so the likelihood tells the noise from the tasks' deviations only by the "
                f"spread of each task's singular values, and here it is largest with "
                f"(almost) no noise. The fit is that limit: each task's training labels are "
                f"fitted (almost) exactly, task_covariance_ holds the noise too, and "
                f"noise_variance_ is no estimate of the noise. With more labels per task the "
                f"two separate; MeanClusteredRegressorCV chooses the same penalty's strengths "
                f"by cross-validation instead.", ConvergenceWarning, stacklevel=6)
        random = np.arange(d + self.fit_intercept)
        variances = np.full(len(random), c)
        U = W - beta
        if self.fit_intercept:
            variances[d] = nu
            beta, U = np.append(beta, b), np.column_stack([U, v])
        self._set_fitted(beta, U, sigma2 * np.diag(variances), random, J, model.y_origin)
        self.covariance_type_ = "spherical"
        self.mean_prior_variance_ = float(sigma2 * a)
        self.noise_variance_ = float(sigma2)
        self.log_likelihood_ = float(model.log_likelihood(theta))
        self.n_iter_ = int(n_iter)
        return self

    _predict_raw = _MeanClusteredMixin._decision
    _predict_shared = _MeanClusteredMixin._shared_decision


@Substitution(**_DOCS)
class HierarchicalClassifier(_BinaryLogisticMixin, _HierarchicalMixin, MultiTaskClassifierMixin,
                             BaseEstimator):
    r"""Hierarchical Bayesian multi-task logistic regression (a binomial mixed model).

    The model (the logistic counterpart of :class:`HierarchicalRegressor`; a generalised
    linear mixed model with a random intercept and random slopes per task)::

        P(y_ti = 1) = sigmoid(x_ti^T (beta + u_t) + b + v_t),   (u_t, v_t) ~ N(0, Sigma)

    over each task's observed labels, ``y_ti = 1`` for the task's second class. ``beta``,
    ``b`` and ``Sigma`` maximise the likelihood with the deviations integrated out, in its
    Laplace approximation (lme4's ``glmer`` default: each task's integral replaced by the
    Gaussian integral around the mode of its integrand)::

        max  sum_t [ l_t(beta, b, u_t*) - u_t*^T Sigma^+ u_t* / 2
                     - log |I + Sigma^(1/2) Z_t^T W_t Z_t Sigma^(1/2)| / 2 ]
             - (|beta_std|^2 + tr(Sigma_std)) / (2 prior_scale^2)

    with ``l_t`` the task's Bernoulli log-likelihood, ``u_t*`` (with ``v_t*``) its mode (the
    task's deviation given its labels), ``Z_t`` the task's rows of the random columns and a
    column of ones, and ``W_t = diag(p (1 - p))`` at the mode. Each task then predicts with
    ``beta + u_t*`` (the conditional mode); a new task with the mean task.

    Parameters
    ----------
    random_slopes : "all", None or array-like of int, bool or str, default="all"
        Features whose coefficient varies between tasks (see
        :class:`HierarchicalRegressor`).
    {covariance_type}
    prior_scale : float or None, default=2.5
        ``s``: a weakly informative Gaussian prior of standard deviation ``s`` on the slopes
        of the mean task and on the entries of the covariance's Cholesky factor, both in
        units of the features' standard deviations (the objective gains ``(|beta_std|^2 +
        tr(Sigma_std)) / (2 s^2)``): log-odds changing by more than about 2.5 per standard
        deviation of a feature are unlikely a priori, rstanarm's default scale for
        logistic regression. It keeps the fit finite when a task's labels are separable (the
        likelihood then has no maximum) and its probabilities calibrated when they nearly
        are: on 6 tasks of 33 nearly separable labels with 9 random effects, the held-out
        log-loss is 0.32 (10: 0.64, 64% of the probabilities beyond 0.001 or 0.999); on
        22 generated settings, 2.5 gave a lower held-out log-loss than 10 in all (by up to
        0.34) at the same AUC, and 1 was lower still in most but up to 0.02 worse where the
        effects are strong. None: the plain Laplace likelihood, as glmer; the fit then
        stops on a bound of 100 with a ConvergenceWarning where the labels are separable.
    fit_intercept : bool, default=True
        Fit a mean intercept and a random intercept per task.
    max_iter : int, default=1000
        Maximum number of iterations of the optimiser (L-BFGS-B); reaching it raises a
        ConvergenceWarning.
    tol : float, default=1e-8
        The optimiser stops when its projected gradient is at most ``tol`` times
        ``max(1, |objective|)`` at the start.
    unknown_task : {"error", "shared"}, default="error"
        A task id not seen in fit: raise :class:`~skmtl.UnknownTaskError`, or (``"shared"``)
        give it the mean task's probabilities, ``sigmoid(X @ shared_coef_ +
        shared_intercept_)``.

    Attributes
    ----------
    coef_ : ndarray of shape (n_tasks, n_features)
        Each task's coefficients, ``beta + u_t*``.
    intercept_ : ndarray of shape (n_tasks,)
        Each task's intercept, ``b + v_t*``.
    shared_coef_ : ndarray of shape (n_features,)
        The mean task ``beta`` (the fixed effects).
    shared_intercept_ : float
        The mean intercept ``b``.
    task_covariance_ : ndarray of shape (n_random, n_random)
        ``Sigma`` over ``random_columns_`` (the random slopes' features, then the intercept),
        on the logit scale.
    random_columns_ : ndarray of int
        Indices of the random effects' columns in ``[X, 1]``.
    covariance_type_ : {"full", "diag"}
        The structure of ``Sigma`` fitted (``covariance_type``, ``"auto"`` resolved).
    log_likelihood_ : float
        The maximised objective above: the Laplace approximation of the log-likelihood
        minus the prior's penalty ``(|beta_std|^2 + tr(Sigma_std)) / (2 prior_scale^2)``
        (the Laplace log-likelihood itself with ``prior_scale=None``). Compare fits by it
        at the same ``prior_scale`` only.
    n_iter_ : int
        Iterations of the optimiser (1 when its start is already optimal).
    classes_ : ndarray or list of ndarray
        The two classes of a 1-D y, else the two classes of each task.
    {task_attributes}

    See Also
    --------
    HierarchicalRegressor : The Gaussian model, fitted exactly.
    MeanClusteredClassifier : Every task pulled to the mean by a fixed ridge penalty.

    Notes
    -----
    Solver: the approximate likelihood is maximised over ``beta``, ``b`` and the Cholesky factor
    of ``Sigma`` jointly, by L-BFGS-B with its exact gradient (through the modes, by implicit
    differentiation; the formulas are in ``skmtl/linear/_solver_hierarchical_logistic.py``), the
    diagonal of the factor bounded below by 0, with the same check as
    :class:`HierarchicalRegressor` that no variance left at zero should grow
    (``covariance_type="diag"``: the diagonal factor only). Where it has not converged after
    50 iterations and ``Sigma`` has eigenvalues below 1e-3 of its largest (variances on their
    way to 0, which L-BFGS-B approaches only linearly), it goes on over ``beta``, ``b`` and a
    factor ``B`` (q x r) of ``Sigma = B B^T`` of the rank kept, adding a column back where a
    variance left at 0 should grow: 200 tasks of 20 labels with 31 random effects (a
    covariance of rank 11 at the optimum) took 1,000 iterations and did not converge; they
    now converge in about 320. Each evaluation finds every task's mode by Newton's method (an
    ``r x r`` system per task, warm-started). Cost per evaluation
    ``O(n_obs q^2 + T q^3)`` plus a product with X, for ``q`` random effects (the sums over each
    task's labels by compiled loops, or by one matrix product per task where the tasks have 64
    labels or more on average); the random columns are copied once per observed label (``n_obs x
    q``); a full covariance of more than 44 random effects with more entries than labels, and
    ``"auto"``'s diagonal fallback where a step's ``T q^3`` exceeds 1e8, are refused with a
    ValueError, as in :class:`HierarchicalRegressor`. Collinear random columns
    (a feature that is another plus a constant) are fitted over their range, as the
    regressor's: the prior on ``tr(Sigma)`` already puts no variance on a combination of the
    standardised random columns that is zero on every row. The Laplace approximation is
    accurate when each task has a fair number of labels of each class; with very few, the
    variances are underestimated (as glmer's are).

    {hierarchical_references}

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.linear import HierarchicalClassifier
    >>> rng = np.random.RandomState(0)
    >>> task_ids = np.repeat(np.arange(30), 40)
    >>> X = rng.normal(size=(1200, 2))
    >>> intercepts = rng.normal(size=30)  # tasks differ by their intercept only
    >>> y = (X @ [2.0, -1.0] + intercepts[task_ids] + rng.logistic(size=1200) > 0).astype(int)
    >>> model = HierarchicalClassifier(random_slopes=None).fit(X, y, task_ids=task_ids)
    >>> model.shared_coef_.round(1)
    array([ 1.9, -1.1])
    >>> float(np.corrcoef(model.intercept_, intercepts)[0, 1]) > 0.9
    True
    """

    _max_classes = 2

    _parameter_constraints = {
        **_HierarchicalMixin._parameter_constraints,
        "prior_scale": [Interval(Real, 0, None, closed="neither"), None],
    }

    def __init__(self, *, random_slopes="all", covariance_type="auto", prior_scale=2.5,
                 fit_intercept=True, max_iter=1000, tol=1e-8, unknown_task="error"):
        self.random_slopes = random_slopes
        self.covariance_type = covariance_type
        self.prior_scale = prior_scale
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.unknown_task = unknown_task

    def _check_finite(self, X, y, **kwargs):
        check_finite_squares(X, mask=kwargs.get("mask"))

    def _fit_tasks(self, X, problem):
        rows, tasks, counts = problem.flat_groups()
        rows = rows.astype(np.intp)
        labels = problem.flat_targets()
        n = float(len(rows))
        task_sums, task_squares, shift = _shifted_task_moments(X, rows, tasks, len(counts))
        varying = self.fit_intercept and _within_task_variation(
            task_sums, task_squares, counts.astype(np.float64))
        random = _random_columns(self._named_slopes(), X.shape[1], self.fit_intercept, varying)
        self._check_enough_labels(n, X.shape[1] + self.fit_intercept, "fixed-effect")
        self._check_covariance_size(len(random), n, len(counts))
        diagonal = self._resolve_covariance(len(random), len(counts))
        J = _standardizer(task_sums.sum(axis=0), task_squares.sum(axis=0), n,
                          self.fit_intercept, shift)
        model = LaplaceMixedModel(X, labels, rows, counts, random, J, self.fit_intercept,
                                  self.prior_scale, diagonal=diagonal)
        x, n_iter = model.fit(max_iter=self.max_iter, tol=self.tol)
        self._warn_unconverged(n_iter)
        if model.at_bound(x):
            warnings.warn(
                f"The labels look separable: a coefficient or a standard deviation of the "
                f"tasks' deviations reached the bound of {BOUND:g} (log-odds per standard "
                f"deviation of a feature), where the fit stopped; the likelihood has no finite "
                f"maximum. Fewer random slopes or a penalised model "
                f"(MeanClusteredClassifierCV) may suit these data.",
                ConvergenceWarning, stacklevel=3)
        beta, Sigma, U, value = model.estimates(x)
        self._set_fitted(beta, U, Sigma, random, np.eye(len(beta)))
        self.log_likelihood_ = -float(value)
        self.n_iter_ = max(int(n_iter), 1)  # (the start counts, when it is optimal)
        return self
