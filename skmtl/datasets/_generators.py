"""Synthetic multi-task data with controlled task relatedness.

Both generators share one generative model (written out in their docstrings): task
coefficients scattered around a common mean, on a shared or task-specific support, with some
tasks optionally pointing against the mean (conflicting tasks, the textbook cause of negative
transfer), and a controlled rate of missing labels. They return the data in the wide or the
long format of the skmtl data contract.
"""

import numpy as np
from sklearn.utils import check_random_state

from skmtl.utils._sklearn_compat import Integral, Interval, Real, StrOptions, validate_params

__all__ = ["make_multitask_classification", "make_multitask_regression"]

# Every task keeps at least this many observed labels (rows in the long format).
_MIN_OBSERVED = 2

_COMMON_CONSTRAINTS = {
    "n_samples": [Interval(Integral, _MIN_OBSERVED, None, closed="left")],
    "n_features": [Interval(Integral, 1, None, closed="left")],
    "n_tasks": [Interval(Integral, 1, None, closed="left")],
    "n_informative": [Interval(Integral, 1, None, closed="left")],
    "shared_support": ["boolean"],
    "task_std": [Interval(Real, 0, None, closed="left")],
    "n_conflicting": [Interval(Integral, 0, None, closed="left")],
    "conflict": [StrOptions({"opposite", "unrelated"})],
    "noise": [Interval(Real, 0, None, closed="left")],
    "missing_rate": [Interval(Real, 0, 1, closed="left")],
    "format": [StrOptions({"wide", "long"})],
    "coef": ["boolean"],
    "random_state": ["random_state"],
}


def _check_relations(n_features, n_tasks, n_informative, n_conflicting):
    """The constraints that tie two parameters together (validate_params checks one at a time)."""
    if n_informative > n_features:
        raise ValueError(
            f"n_informative must be at most n_features={n_features}; got n_informative="
            f"{n_informative}."
        )
    if n_conflicting >= n_tasks:
        raise ValueError(
            f"n_conflicting must be smaller than n_tasks={n_tasks} (at least one task must "
            f"follow the mean coefficients); got n_conflicting={n_conflicting}."
        )


def _draw_coef(rng, n_features, n_tasks, n_informative, shared_support, task_std, n_conflicting,
               conflict):
    """Task coefficients (n_tasks, n_features) around a common mean (see the public docstrings)."""
    support = np.zeros((n_tasks, n_features), dtype=bool)
    if shared_support:
        support[:, rng.choice(n_features, n_informative, replace=False)] = True
    else:
        for t in range(n_tasks):
            support[t, rng.choice(n_features, n_informative, replace=False)] = True
    # The mean lives on the union of the supports; every task reads its own support off it.
    w_bar = rng.standard_normal(n_features) * support.any(axis=0)
    sign = np.ones(n_tasks)
    sign[n_tasks - n_conflicting :] = -1.0
    deviation = rng.standard_normal((n_tasks, n_features))
    coef = np.where(support, sign[:, None] * w_bar + task_std * deviation, 0.0)
    if conflict == "unrelated" and n_conflicting:
        # drawn after the others, so that "opposite" and "unrelated" share the related tasks
        free = np.flatnonzero(~support[: n_tasks - n_conflicting].any(axis=0))
        if free.size < n_informative:
            raise ValueError(
                f'conflict="unrelated" draws each conflicting task\'s {n_informative} '
                f"informative features among those no related task uses, and only {free.size} "
                f"of the n_features={n_features} are free; raise n_features or lower "
                "n_informative."
            )
        for t in range(n_tasks - n_conflicting, n_tasks):
            coef[t] = 0.0
            coef[t, rng.choice(free, n_informative, replace=False)] = rng.standard_normal(
                n_informative)
    return coef


def _quantile_labels(score, n_classes):
    """Cut each row of ``score`` at its quantiles: labels 0..n_classes-1 of equal size (+-1)."""
    n = score.shape[-1]
    rank = np.argsort(np.argsort(score, axis=-1, kind="stable"), axis=-1, kind="stable")
    return (rank * n_classes) // n


def _observed_mask(rng, missing_rate, labels, n_classes):
    """Which entries keep their label: an (n_tasks, n_samples) boolean array.

    ``round(missing_rate * size)`` entries drawn at random lose their label. Then each task
    gets back, at random, entries it needs to keep one label of every class (classification)
    and at least ``_MIN_OBSERVED`` labels in all.
    """
    n_tasks, n_samples = labels.shape
    observed = np.ones(labels.size, dtype=bool)
    n_missing = int(round(missing_rate * labels.size))
    observed[rng.choice(labels.size, n_missing, replace=False)] = False
    observed = observed.reshape(n_tasks, n_samples)
    if n_missing == 0:
        return observed
    for t in range(n_tasks):
        for k in range(n_classes or 0):
            is_k = labels[t] == k
            if not observed[t, is_k].any():
                observed[t, rng.choice(np.flatnonzero(is_k))] = True
        short = _MIN_OBSERVED - observed[t].sum()
        if short > 0:
            observed[t, rng.choice(np.flatnonzero(~observed[t]), short, replace=False)] = True
    return observed


def _make_multitask(
    *,
    n_samples,
    n_features,
    n_tasks,
    n_informative,
    shared_support,
    task_std,
    n_conflicting,
    conflict,
    noise,
    bias,
    missing_rate,
    format,
    return_coef,
    random_state,
    n_classes,
):
    """Both generators; ``n_classes=None`` makes regression targets."""
    _check_relations(n_features, n_tasks, n_informative, n_conflicting)
    rng = check_random_state(random_state)
    coef = _draw_coef(
        rng, n_features, n_tasks, n_informative, shared_support, task_std, n_conflicting,
        conflict,
    )
    # Wide: one design shared by the tasks; long: one design per task, stacked task by task.
    n_designs = 1 if format == "wide" else n_tasks
    X = rng.standard_normal((n_designs, n_samples, n_features))
    eps = rng.standard_normal((n_tasks, n_samples))
    if format == "wide":
        score = (X[0] @ coef.T).T
    else:
        score = np.stack([X[t] @ coef[t] for t in range(n_tasks)])
    score = score + bias + noise * eps  # (n_tasks, n_samples)
    if n_classes is None:
        labels = score
    else:
        labels = _quantile_labels(score, n_classes).astype(np.int64)
    observed = _observed_mask(rng, missing_rate, labels, n_classes)

    if format == "wide":
        Y = labels.T.copy()
        if missing_rate > 0:
            Y = Y.astype(np.float64)
            Y[~observed.T] = np.nan
        out = (X[0], Y)
    else:
        keep = observed.ravel()
        task_ids = np.repeat(np.arange(n_tasks, dtype=np.int64), n_samples)[keep]
        out = (X.reshape(-1, n_features)[keep], labels.ravel()[keep], task_ids)
    return (*out, coef) if return_coef else out


@validate_params(
    {**_COMMON_CONSTRAINTS, "bias": [Interval(Real, None, None, closed="neither")]},
    prefer_skip_nested_validation=True,
)
def make_multitask_regression(
    n_samples=100,
    n_features=20,
    n_tasks=5,
    *,
    n_informative=5,
    shared_support=True,
    task_std=0.1,
    n_conflicting=0,
    conflict="opposite",
    noise=0.1,
    bias=0.0,
    missing_rate=0.0,
    format="wide",
    coef=False,
    random_state=None,
):
    r"""Generate a multi-task linear regression problem with controlled task relatedness.

    The tasks' coefficient vectors are scattered around a common mean vector
    :math:`\bar w`; ``task_std`` sets how far, ``shared_support`` whether they use the same
    features, and ``n_conflicting`` how many of them point against the mean. The generative
    model, for tasks :math:`t = 0, \dots, T - 1` (``T = n_tasks``):

    1. Supports. With ``shared_support=True`` one set :math:`S` of ``n_informative``
       features is drawn uniformly without replacement and :math:`S_t = S` for every task;
       with ``shared_support=False`` each task draws its own :math:`S_t` the same way.
    2. Mean coefficients, defined on the union :math:`U = \bigcup_t S_t` of the supports:
       :math:`\bar w_j \sim \mathcal N(0, 1)` for :math:`j \in U`, :math:`\bar w_j = 0`
       otherwise. Tasks whose supports overlap therefore share a mean on the overlap.
    3. Task coefficients, with :math:`s_t = -1` for the last ``n_conflicting`` tasks and
       :math:`s_t = +1` for the others:

       .. math::
           w_{tj} = s_t \bar w_j + \sigma_w \varepsilon_{tj}, \quad
           \varepsilon_{tj} \sim \mathcal N(0, 1), \quad j \in S_t;
           \qquad w_{tj} = 0, \quad j \notin S_t,

       where :math:`\sigma_w` is ``task_std``. Related tasks (:math:`s_t = +1`) correlate
       positively with :math:`\bar w`; conflicting tasks (:math:`s_t = -1`) contradict the
       others, which is what makes sharing hurt them (negative transfer). With
       ``conflict="unrelated"`` the conflicting tasks are drawn instead, after all the
       above, on their own support of ``n_informative`` features that no related task uses,
       with coefficients :math:`\mathcal N(0, 1)`.
    4. Features :math:`x \sim \mathcal N(0, I_d)` and targets

       .. math::
           y_t = x^\top w_t + b + \sigma \eta_t, \quad \eta_t \sim \mathcal N(0, 1),

       with :math:`b` = ``bias`` and :math:`\sigma` = ``noise``.

    In the wide format all tasks share one design of ``n_samples`` rows; in the long format
    each task has its own ``n_samples`` rows (as pupils in schools), stacked task after task.
    Missing labels: ``round(missing_rate * n_samples * n_tasks)`` labels drawn at random are
    removed (set to NaN in the wide format, their rows dropped in the long format), after
    which each task gets back, at random, as many labels as it needs to keep at least two.
    The missing fraction is therefore ``missing_rate`` up to those few re-observed labels.
    Rows of the wide ``Y`` may be fully missing; tasks never are.

    Parameters
    ----------
    n_samples : int, default=100
        Number of samples: rows of ``X`` in the wide format, rows per task in the long
        format. At least 2.
    n_features : int, default=20
        Number of features.
    n_tasks : int, default=5
        Number of tasks.
    n_informative : int, default=5
        Size of each task's support, between 1 and ``n_features``.
    shared_support : bool, default=True
        Whether all tasks use the same informative features (the setting of block-sparse
        models such as :class:`~sklearn.linear_model.MultiTaskLasso`) or each task draws its
        own.
    task_std : float, default=0.1
        Standard deviation of the task coefficients around :math:`\pm \bar w`. 0 makes the
        related tasks identical.
    n_conflicting : int, default=0
        Number of conflicting tasks, the last ``n_conflicting`` ones, whose coefficients
        are centred on :math:`-\bar w`. Between 0 and ``n_tasks - 1``.
    conflict : {"opposite", "unrelated"}, default="opposite"
        How the conflicting tasks conflict. ``"opposite"``: their coefficients are centred on
        :math:`-\bar w`; they hurt, and are hurt by, every model that shares coefficients
        (pooled or mean-clustered models), but a shared network with a linear head per task
        absorbs the sign. ``"unrelated"``: each reads its own features, outside the related
        tasks' supports; they compete with the related tasks for a shared representation,
        which hurts them when it is narrow (hard sharing with a small trunk).
    noise : float, default=0.1
        Standard deviation of the Gaussian noise added to the targets.
    bias : float, default=0.0
        Intercept added to every task's targets.
    missing_rate : float, default=0.0
        Fraction of labels removed at random, in [0, 1).
    format : {"wide", "long"}, default="wide"
        Layout of the returned data, see Returns.
    coef : bool, default=False
        Whether to return the true coefficients as well.
    random_state : int, RandomState instance or None, default=None
        Seed of the random draws. Pass an int for reproducible output. The draws happen in a
        fixed order (supports, mean, task deviations, ``X``, noise, missing labels), so with
        the same seed ``noise`` and ``missing_rate`` change neither ``X`` nor ``coef``.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features) or (n_rows, n_features)
        The features, float64. In the long format ``n_rows`` is ``n_tasks * n_samples``
        less the dropped rows, grouped by task.
    Y : ndarray of shape (n_samples, n_tasks)
        Wide format only: the targets, float64, NaN where a label is missing.
    y : ndarray of shape (n_rows,)
        Long format only: the targets, float64.
    task_ids : ndarray of shape (n_rows,)
        Long format only: the task of each row, int64 in ``0 .. n_tasks - 1``.
    coef : ndarray of shape (n_tasks, n_features)
        The true coefficients :math:`w_t`, one row per task (the layout of
        ``MultiTaskLasso.coef_``); returned last, only if ``coef=True``. With ``noise=0``,
        ``bias=0`` and no missing labels, ``Y == X @ coef.T`` exactly.

    See Also
    --------
    make_multitask_classification : The same model, with labels cut from the scores.
    sklearn.datasets.make_regression : The single-task generator.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.datasets import make_multitask_regression
    >>> X, Y, coef = make_multitask_regression(
    ...     n_samples=50, n_features=10, n_tasks=3, noise=0.0, coef=True, random_state=0)
    >>> X.shape, Y.shape, coef.shape
    ((50, 10), (50, 3), (3, 10))
    >>> bool(np.array_equal(Y, X @ coef.T))
    True
    >>> (coef != 0).sum(axis=1)  # shared support of 5 features
    array([5, 5, 5])

    Long format, one conflicting task, 30 % of the rows dropped:

    >>> X, y, task_ids = make_multitask_regression(
    ...     n_samples=50, n_tasks=3, n_conflicting=1, missing_rate=0.3, format="long",
    ...     random_state=0)
    >>> X.shape, y.shape
    ((105, 20), (105,))
    >>> np.unique(task_ids)
    array([0, 1, 2])
    """
    return _make_multitask(
        n_samples=n_samples,
        n_features=n_features,
        n_tasks=n_tasks,
        n_informative=n_informative,
        shared_support=shared_support,
        task_std=task_std,
        n_conflicting=n_conflicting,
        conflict=conflict,
        noise=noise,
        bias=bias,
        missing_rate=missing_rate,
        format=format,
        return_coef=coef,
        random_state=random_state,
        n_classes=None,
    )


@validate_params(
    {**_COMMON_CONSTRAINTS, "n_classes": [Interval(Integral, 2, None, closed="left")]},
    prefer_skip_nested_validation=True,
)
def make_multitask_classification(
    n_samples=100,
    n_features=20,
    n_tasks=5,
    *,
    n_classes=2,
    n_informative=5,
    shared_support=True,
    task_std=0.1,
    n_conflicting=0,
    conflict="opposite",
    noise=0.1,
    missing_rate=0.0,
    format="wide",
    coef=False,
    random_state=None,
):
    r"""Generate a multi-task classification problem with controlled task relatedness.

    Each task's labels are its latent linear score cut into ``n_classes`` classes of equal
    size. The coefficients, supports and features follow the model of
    :func:`make_multitask_regression`:

    .. math::
        w_{tj} = s_t \bar w_j + \sigma_w \varepsilon_{tj} \ (j \in S_t), \qquad
        z_t = x^\top w_t + \sigma \eta_t, \qquad
        \bar w_j, \varepsilon_{tj}, \eta_t \sim \mathcal N(0, 1), \quad
        x \sim \mathcal N(0, I_d),

    with :math:`s_t = -1` for the last ``n_conflicting`` tasks and +1 otherwise,
    :math:`\sigma_w` = ``task_std`` and :math:`\sigma` = ``noise``. For each task the
    scores :math:`z_t` of its ``n_samples`` samples are cut at their empirical quantiles
    :math:`k / K`, :math:`k = 1, \dots, K - 1` (``K = n_classes``): the label of a sample is
    :math:`\lfloor K \cdot \mathrm{rank}(z_{it}) / n \rfloor` with ranks :math:`0 .. n-1`,
    so each class holds ``n_samples // K`` or one more sample, and class :math:`k + 1` has
    larger scores than class :math:`k`. A conflicting task thus orders the classes the other
    way round. ``noise`` blurs the classes; a cut at the quantiles is blind to a common
    shift of the scores, hence there is no ``bias`` parameter.

    Missing labels are removed as in :func:`make_multitask_regression`; each task then gets
    back the labels it needs to keep one observed label of every class (hence at least
    two).

    Parameters
    ----------
    n_samples : int, default=100
        Number of samples: rows of ``X`` in the wide format, rows per task in the long
        format. At least ``n_classes``.
    n_features : int, default=20
        Number of features.
    n_tasks : int, default=5
        Number of tasks.
    n_classes : int, default=2
        Number of classes of every task, labelled ``0 .. n_classes - 1``.
    n_informative : int, default=5
        Size of each task's support, between 1 and ``n_features``.
    shared_support : bool, default=True
        Whether all tasks use the same informative features or each task draws its own.
    task_std : float, default=0.1
        Standard deviation of the task coefficients around :math:`\pm \bar w`.
    n_conflicting : int, default=0
        Number of conflicting tasks (the last ones), centred on :math:`-\bar w`. Between 0
        and ``n_tasks - 1``.
    conflict : {"opposite", "unrelated"}, default="opposite"
        How the conflicting tasks conflict, as in :func:`make_multitask_regression`.
    noise : float, default=0.1
        Standard deviation of the Gaussian noise added to the latent scores.
    missing_rate : float, default=0.0
        Fraction of labels removed at random, in [0, 1).
    format : {"wide", "long"}, default="wide"
        Layout of the returned data, see Returns.
    coef : bool, default=False
        Whether to return the coefficients of the latent scores as well.
    random_state : int, RandomState instance or None, default=None
        Seed of the random draws; the same seed gives the same data.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features) or (n_rows, n_features)
        The features, float64. In the long format ``n_rows`` is ``n_tasks * n_samples``
        less the dropped rows, grouped by task.
    Y : ndarray of shape (n_samples, n_tasks)
        Wide format only: the labels. int64 when ``missing_rate == 0``; float64 with labels
        ``0.0, 1.0, ...`` and NaN for the missing ones when ``missing_rate > 0`` (the dtype
        depends on the parameter, not on the draw).
    y : ndarray of shape (n_rows,)
        Long format only: the labels, int64.
    task_ids : ndarray of shape (n_rows,)
        Long format only: the task of each row, int64 in ``0 .. n_tasks - 1``.
    coef : ndarray of shape (n_tasks, n_features)
        The coefficients of the latent scores, one row per task; returned last, only if
        ``coef=True``.

    See Also
    --------
    make_multitask_regression : The same model with continuous targets.
    sklearn.datasets.make_multilabel_classification : Multi-label data without relatedness
        control.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.datasets import make_multitask_classification
    >>> X, Y = make_multitask_classification(
    ...     n_samples=90, n_tasks=4, n_classes=3, random_state=0)
    >>> X.shape, Y.shape, Y.dtype
    ((90, 20), (90, 4), dtype('int64'))
    >>> [np.bincount(Y[:, t]).tolist() for t in range(2)]  # balanced classes
    [[30, 30, 30], [30, 30, 30]]

    With missing labels the labels are float64 and NaN marks a missing one:

    >>> X, Y = make_multitask_classification(
    ...     n_samples=40, n_tasks=3, missing_rate=0.5, random_state=0)
    >>> Y.dtype, int(np.isnan(Y).sum())
    (dtype('float64'), 60)
    """
    if n_classes > n_samples:
        raise ValueError(
            f"n_classes must be at most n_samples={n_samples} so that every class has a "
            f"sample; got n_classes={n_classes}."
        )
    return _make_multitask(
        n_samples=n_samples,
        n_features=n_features,
        n_tasks=n_tasks,
        n_informative=n_informative,
        shared_support=shared_support,
        task_std=task_std,
        n_conflicting=n_conflicting,
        conflict=conflict,
        noise=noise,
        bias=0.0,
        missing_rate=missing_rate,
        format=format,
        return_coef=coef,
        random_state=random_state,
        n_classes=n_classes,
    )
