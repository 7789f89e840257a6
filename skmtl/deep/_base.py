"""The private base of the deep estimators, and their regression and classification parts.

:class:`_BaseDeepEstimator` owns what the multi-task estimators (``MultiTaskRegressor``,
``MultiTaskClassifier``, in ``_estimators.py``) and the focused-task estimators
(``FocusedTaskRegressor``, ``FocusedTaskClassifier``, in ``_focused.py``) share: the parameters of
the network and of its training, their constraints, the construction and training of the skorch
net (:class:`~skmtl.deep._net.MultiTaskNet`), the resolution of a weighting parameter, and the
forward passes. The two families are siblings over it, as scikit-learn's ``MLPClassifier`` and
``MLPRegressor`` are over ``BaseMultilayerPerceptron``; each declares its own parameters.
:class:`_DeepRegressionMixin` and :class:`_DeepClassificationMixin` encode the targets for the
net and decode its outputs.
"""

import copy
import warnings
from functools import partial
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.utils import check_random_state
from skorch.callbacks import BatchScoring, EarlyStopping, EpochScoring, PrintLog, ProgressBar
from skorch.helper import predefined_split

from skmtl.base import _task_groups
from skmtl.deep._device import resolve_device, seeded_rng
from skmtl.deep._labels import TaskLabels
from skmtl.deep._net import BatchLoader, MultiTaskDataset, MultiTaskNet, TaskLoss, TaskLossRecorder
from skmtl.deep.modules import ACTIVATIONS, build_module
from skmtl.deep.weighting import get_weighting
from skmtl.utils._docstring import SHARED_DOCS, Substitution
from skmtl.utils._sklearn_compat import HasMethods, Hidden, Interval, StrOptions, _num_samples
from skmtl.utils.validation import (
    _hashable,
    _validation_split_error,
    encode_groups,
    group_rows_by_task,
)

OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}

# Defaults of the training parameters, chosen on the packaged data (benchmarks/deep_defaults.py;
# the grid and the table are in the "Defaults" section of docs/user_guide/deep.rst).
DEFAULTS = {
    "hidden_layer_sizes": (512,),
    "dropout": 0.5,
    "max_epochs": 200,
    "batch_size": 128,
    "lr": 3e-4,
    "weight_decay": 1e-2,
    "optimizer": "adamw",
    "n_iter_no_change": 10,
}

# Fraction of the rows held out for early stopping when validation_fraction is None.
_AUTO_VALIDATION_FRACTION = 0.1

# The default of a deprecated parameter (scikit-learn's convention): not set by the user.
DEPRECATED = "deprecated"


def _deprecated(*constraints):
    """The constraints of a deprecated parameter: its own, and the sentinel default."""
    return [*constraints, Hidden(StrOptions({DEPRECATED}))]


def _is_set(value):
    """Whether a deprecated parameter was set by the user (is not the sentinel)."""
    return not (isinstance(value, str) and value == DEPRECATED)


def _weights_history(net, n_tasks):
    """Epochs completed and the ``(n_epochs, n_tasks)`` task weights recorded at their ends."""
    # epochs that completed (skorch ends training quietly on KeyboardInterrupt)
    weights = [row["task_weights"] for row in net.history if "task_weights" in row]
    return len(weights), np.asarray(weights, dtype=np.float64).reshape(len(weights), n_tasks)


def _label_strata(labels, sizes):
    """Each label's stratum (``offsets[task] + class code``) and row, and the number of
    strata: the units of both validation splits."""
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp)
    stratum = offsets[labels.task] + labels.value.astype(np.intp)
    label_row = np.repeat(np.arange(labels.n_samples), np.diff(labels.indptr))
    return stratum, label_row, int(offsets[-1])


def _random_order(n, rng):
    """A random order of ``n`` items (rows or groups) and each item's rank in it."""
    order = rng.permutation(n)
    rank = np.empty(n, dtype=np.intp)
    rank[order] = np.arange(n)
    return order, rank


def _watched_strata(watched, sizes):
    """The strata of the tasks of ``watched`` (a ``(task mask, name)`` pair, or None), and
    their name: the tasks whose validation loss a later training phase watches alone."""
    if watched is None:
        return None, None
    mask, name = watched
    return np.repeat(np.asarray(mask, dtype=bool), sizes), name


def stratified_validation_split(labels, sizes, fraction, rng, watched=None):
    """Split the rows into training and validation rows, stratified on every task.

    A stratum is one class of one classification task (``sizes[t]`` classes) or a whole
    regression task (``sizes[t] == 1``). The strata are visited from the rarest (fewest
    labels) to the most frequent, as in iterative stratification (Sechidis, Tsoumakas and
    Vlahavas, 2011): the stratum's rows not yet placed, in a random order, go to validation
    until it holds ``round(fraction * n_s)`` of the stratum's ``n_s`` labels (counting the rows
    already placed by rarer strata), the rest to training; a stratum with 2 labels or more
    always keeps one in training. Rows without any label then fill the validation part up
    to ``ceil(fraction * n_samples)`` rows, and at least one labelled row is held out (a
    ValueError where every label is the last of its task or class in training); so is one
    label of the ``watched`` tasks, whose validation loss a later phase watches alone (the
    focus task of ``"finetune"``: its share may round to no label).

    Parameters
    ----------
    labels : TaskLabels
        The observed labels; their values are the class codes (0 for regression tasks).
    sizes : sequence of int
        Number of strata of each task.
    fraction : float
        Fraction of the rows to hold out, in (0, 1).
    rng : numpy.random.RandomState
    watched : (ndarray of bool of shape (n_tasks,), str) or None, default=None
        Tasks that must hold out a label where they can spare one, and their name for the
        error where they cannot.

    Returns
    -------
    train, valid : ndarray of int
        Sorted row indices.
    """
    n_samples = labels.n_samples
    order, rank = _random_order(n_samples, rng)
    # each label's stratum and row; the strata's members in a random order
    stratum, label_row, n_strata = _label_strata(labels, sizes)
    by_stratum = np.lexsort((rank[label_row], stratum))
    bounds = np.searchsorted(stratum[by_stratum], np.arange(n_strata + 1))
    total = np.diff(bounds)
    place = np.full(n_samples, -1, dtype=np.int8)  # -1 not placed, 0 training, 1 validation
    counts = np.zeros((2, n_strata), dtype=np.intp)

    def assign(rows, part):
        place[rows] = part
        np.add.at(counts[part], stratum[labels.positions(rows)[0]], 1)

    for s in np.argsort(total, kind="stable"):
        if total[s] == 0:
            continue
        rows = label_row[by_stratum[bounds[s] : bounds[s + 1]]]
        rows = rows[place[rows] < 0]
        k = int(np.clip(np.round(fraction * total[s] - counts[1, s]), 0, rows.shape[0]))
        if total[s] >= 2 and counts[0, s] == 0:
            k = min(k, rows.shape[0] - 1)
        assign(rows[:k], 1)
        assign(rows[k:], 0)
    free = order[place[order] < 0]
    n_valid = int(np.ceil(fraction * n_samples))
    k = int(np.clip(n_valid - np.count_nonzero(place == 1), 0, free.shape[0]))
    place[free[:k]] = 1
    place[free[k:]] = 0
    watched_strata, name = _watched_strata(watched, sizes)
    for need in (np.ones(n_strata, dtype=bool), watched_strata):
        if need is None or np.any(counts[1, need]):
            continue
        # no label of ``need`` held out (its validation loss would watch nothing): hold out
        # the first row, in the random order, with such a label and a spare in training for
        # each of its labels
        spare = counts[0] >= 2
        for row in order:
            own = stratum[labels.indptr[row] : labels.indptr[row + 1]]
            if np.any(need[own]) and np.all(spare[own]):
                place[row] = 1
                counts[0, own] -= 1
                counts[1, own] += 1
                break
        else:
            reason = (_watched_reason(name, int(np.count_nonzero(need[stratum])), "label")
                      if need is watched_strata else
                      f"Early stopping holds out validation labels, but none of the "
                      f"{stratum.shape[0]} labels can be held out without taking the last "
                      "training label of a task (or of a class of one)")
            raise _validation_split_error(
                reason,
                "set early_stopping=False (and validation_fraction=None: no validation data).",
                by_groups=False)
    if not np.any(place == 0):
        place[order[0]] = 0
    return np.flatnonzero(place == 0), np.flatnonzero(place == 1)


def _watched_reason(name, n_labels, unit):
    """Why no validation label of the watched tasks (:func:`_watched_strata`) is held out."""
    return (f"Early stopping of the phase that trains {name} alone watches its validation "
            f"loss, but no {unit} of its {n_labels} labels can be held out without taking "
            f"the last training label of a task (or of a class of one)")


def group_validation_split(labels, sizes, fraction, groups, rng, watched=None):
    """Split the rows into training and validation rows, each group whole on one side.

    :func:`stratified_validation_split` with groups for rows: the strata are visited from
    the rarest to the most frequent, and the stratum's groups not yet placed, in a random
    order, go to validation while that brings the stratum's validation labels closer to
    ``round(fraction * n_s)`` (a group adds all its labels, of every stratum), to training
    once it does not. A group goes to validation only if every stratum it holds keeps a
    group in training, so a task (a class) whose labels sit in one group keeps them all in
    training. Groups without any label then fill the validation part up to ``ceil(fraction
    * n_samples)`` rows, and at least one group with labels is held out, and one with a
    label of the ``watched`` tasks.

    Parameters
    ----------
    labels, sizes, fraction, rng, watched
        As in :func:`stratified_validation_split`.
    groups : ndarray of int of shape (n_samples,)
        The group of each row, ``0 .. n_groups - 1``.

    Returns
    -------
    train, valid : ndarray of int
        Sorted row indices.

    Raises
    ------
    ValueError
        If there is a single group, or no group (with a label of the ``watched`` tasks) can be
        held out without taking the last training labels of a task or class.
    """
    n_groups = int(groups.max()) + 1
    if n_groups < 2:
        raise _validation_split_error(
            "groups has a single group: early stopping holds out whole groups for its "
            "validation loss, so it needs 2 groups or more",
            "pass the groups of the rows, or set early_stopping=False (and "
            "validation_fraction=None).", by_groups=True)
    stratum, label_row, n_strata = _label_strata(labels, sizes)
    # the labels of each stratum in each group, by group (strata of a group) and by stratum
    member = sp.csr_matrix((np.ones(stratum.shape[0]), (groups[label_row], stratum)),
                           shape=(n_groups, n_strata))
    member.sum_duplicates()
    holders = member.tocsc()
    total = np.asarray(member.sum(axis=0)).ravel()
    target = np.round(fraction * total)
    valid = np.zeros(n_strata)
    left = np.diff(holders.indptr)  # groups of each stratum not in validation
    by_rank, rank = _random_order(n_groups, rng)
    place = np.full(n_groups, -1, dtype=np.int8)  # -1 not placed, 0 training, 1 validation

    def strata_of(group):
        bounds = slice(member.indptr[group], member.indptr[group + 1])
        return member.indices[bounds], member.data[bounds]

    def holdable(group):
        return bool(np.all(left[strata_of(group)[0]] >= 2))

    def hold_out(group):
        held, counts = strata_of(group)
        place[group] = 1
        valid[held] += counts
        left[held] -= 1

    for s in np.argsort(total, kind="stable"):
        if total[s] == 0:
            continue
        bounds = slice(holders.indptr[s], holders.indptr[s + 1])
        candidates, counts = holders.indices[bounds], holders.data[bounds]
        order = np.argsort(rank[candidates])
        for group, count in zip(candidates[order], counts[order], strict=True):
            if place[group] >= 0:
                continue
            if valid[s] + count / 2 < target[s] and holdable(group):
                hold_out(group)
            else:
                place[group] = 0
    free = by_rank[place[by_rank] < 0]  # groups without a label
    size = np.bincount(groups, minlength=n_groups)
    room = np.ceil(fraction * labels.n_samples) - size[place == 1].sum()
    held = free[np.cumsum(size[free]) <= room]
    place[held] = 1
    place[place < 0] = 0
    watched_strata, name = _watched_strata(watched, sizes)
    for need in (np.ones(n_strata, dtype=bool), watched_strata):
        if need is None or np.any(valid[need]):
            continue
        # no label of ``need`` held out (its validation loss would watch nothing)
        candidates = [group for group in by_rank if place[group] != 1
                      and np.any(need[strata_of(group)[0]]) and holdable(group)]
        if not candidates:
            reason = (_watched_reason(name, int(total[need].sum()), "group")
                      if need is watched_strata else
                      f"groups: early stopping holds out whole groups, but each of the "
                      f"{n_groups} groups holds the only training labels of some task or class")
            raise _validation_split_error(
                reason, "pass more groups, or set early_stopping=False (and "
                "validation_fraction=None: no validation data).", by_groups=True)
        hold_out(candidates[0])
    if not np.any(place == 0):
        place[by_rank[0]] = 0
    row_place = place[groups]
    return np.flatnonzero(row_place == 0), np.flatnonzero(row_place == 1)


def _standardize(values):
    """``(mean, scale, (values - mean) / scale)`` of one task's targets, safely.

    The values are divided by their largest magnitude ``m`` before the mean and the standard
    deviation are taken, so that targets of any finite magnitude (1e154, 1e300) neither
    overflow nor underflow. A constant task (standard deviation below ``1e-12 m``) gets
    ``scale = m`` (1 when every value is 0): its standardised targets are 0 up to rounding.
    """
    magnitude = float(np.abs(values).max())
    if magnitude == 0:
        return 0.0, 1.0, np.zeros_like(values)
    unit = values / magnitude
    unit_mean = unit.mean()
    unit_std = unit.std()
    if unit_std <= 1e-12:
        return unit_mean * magnitude, magnitude, unit - unit_mean
    return unit_mean * magnitude, unit_std * magnitude, (unit - unit_mean) / unit_std


def _check_float32_range(X):
    """Raise a ValueError if X holds values beyond float32, the precision the network runs in.

    Such a value becomes inf in the batch, and every loss NaN. The largest magnitude is read
    from the array's (or the sparse matrix's stored values') maximum and minimum: no copy.
    """
    values = X.data if sp.issparse(X) else X
    if values.size == 0 or values.dtype == np.float32:
        return
    magnitude = max(float(values.max()), -float(values.min()))
    limit = float(np.finfo(np.float32).max)
    if magnitude > limit:
        column = np.unravel_index(np.argmax(np.abs(values)), values.shape)[-1] if (
            not sp.issparse(X)) else X.indices[np.argmax(np.abs(values))]
        raise ValueError(
            f"X has entries up to {magnitude:.3g} in magnitude (feature {column}), beyond "
            f"float32's range ({limit:.3g}), the precision the network computes in. "
            "Standardise the features: a MaxAbsScaler before the estimator in a Pipeline "
            "divides each column by its largest magnitude without squaring it."
        )


def _positive_proba(out):
    """The positive class's probability of binary tasks from their padded head outputs
    (..., K): the sigmoid of the first logit."""
    return 1.0 / (1.0 + np.exp(-out[..., 0]))


def _task_proba(out, n_classes):
    """Class probabilities ``(B, n_classes)`` of one task from its padded head output ``(B, K)``.

    One logit for a binary task, ``n_classes`` logits otherwise; a one-class task is certain.
    """
    proba = np.empty((out.shape[0], n_classes))
    if n_classes == 1:
        proba[:] = 1.0
    elif n_classes == 2:
        proba[:, 1] = _positive_proba(out)
        proba[:, 0] = 1.0 - proba[:, 1]
    else:
        logits = out[:, :n_classes]
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        proba[:] = exp / exp.sum(axis=1, keepdims=True)
    return proba


class _ValidationGroupsMixin:
    """``fit(X, y, task_ids=, groups=)``: the validation rows of early stopping are whole
    groups (left of the ``MultiTask*Mixin``, whose ``fit`` it wraps). ``groups`` is requested
    by default through metadata routing, as ``task_ids`` is."""

    __metadata_request__fit = {"groups": True}
    _groups = None  # fit's group codes, read by _fit_labels while it runs

    @Substitution(**SHARED_DOCS)
    def fit(self, X, y, *, task_ids=None, groups=None):
        """Fit the network on one task, a wide target with missing labels, or long data.

        Parameters
        ----------
        {fit_data}
        groups : array-like of shape (n_samples,), default=None
            The group of each row (a molecule's scaffold; in long data, the sample a row
            belongs to). The rows held out for early stopping (``validation_fraction``) are
            then whole groups, stratified on the tasks as far as whole groups allow, and
            every task keeps training labels: the validation loss, and so the epoch kept,
            measure the error on groups the network has not seen, as test folds split by
            the same groups do. Ignored when no rows are held out. Requested by default
            through metadata routing: with routing enabled, a search or ``cross_validate``
            given ``groups`` passes them here.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self._groups = None if groups is None else encode_groups(groups, _num_samples(X))[0]
        try:
            return super().fit(X, y, task_ids=task_ids)
        finally:
            del self._groups


class _BaseDeepEstimator(BaseEstimator):
    """Parameters, net construction, training and forward passes of the deep estimators.

    Wide targets (``_fit_multitask``) and long data (``_fit_long``, the hooks of
    :class:`~skmtl.base.MultiTaskMixin`) both become :class:`TaskLabels` triples, so that no
    ``(n_samples, n_tasks)`` array is built for long data. Subclasses define
    ``_fit_labels(X, labels)``,
    ``_sharing()`` (the sharing strategy and its parameters for
    :func:`~skmtl.deep.modules.build_module`) and, through a regression or classification mixin,
    ``_task_type`` and ``_encode_targets``.
    """

    _parameter_constraints = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "head_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "module": [None, type],
        "module_params": [None, dict],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "optimizer": [StrOptions(set(OPTIMIZERS)), callable],
        "early_stopping": ["boolean"],
        "validation_fraction": [None, Interval(Real, 0, 1, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "affinity_on": [StrOptions({"representation", "last_shared_layer"})],
        "callbacks": [None, list],
        "device": [str],
        "accelerator": [None, HasMethods(["reduce", "backward", "prepare"])],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    # X arrives float32 or float64 (other dtypes become float32); batches are float32.
    _X_dtype = [np.float32, np.float64]

    def __init__(
        self,
        *,
        hidden_layer_sizes,
        head_layer_sizes,
        activation,
        dropout,
        module,
        module_params,
        max_epochs,
        batch_size,
        lr,
        weight_decay,
        optimizer,
        early_stopping,
        validation_fraction,
        n_iter_no_change,
        affinity_on,
        callbacks,
        device,
        accelerator,
        random_state,
        verbose,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.head_layer_sizes = head_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.module = module
        self.module_params = module_params
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.affinity_on = affinity_on
        self.callbacks = callbacks
        self.device = device
        self.accelerator = accelerator
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # -- the data contract's hooks: both layouts become label triples -----------------------
    def _fit_multitask(self, X, Y, mask):
        return self._fit_labels(X, TaskLabels.from_wide(Y, mask))

    def _fit_long(self, X, y, task_index):
        return self._fit_labels(X, TaskLabels.from_long(y, task_index, self.n_tasks_))

    @property
    def gradient_affinity_(self):
        """The ``(n_tasks_, n_tasks_)`` mean cosines of the task gradients (see the class).

        Computed from the net's running sums when read, not stored: with thousands of tasks
        (2,410 schools) the float64 matrix alone would weigh 30 times the training data.
        """
        if not self._affinity_of_net:
            affinity = np.full((self.n_tasks_, self.n_tasks_), np.nan)
            np.fill_diagonal(affinity, 1.0)
            return affinity
        return self.net_.gradient_affinity()

    # -- weighting --------------------------------------------------------------------------------
    def _flat_weighting_params(self, weighting, flat, replacement):
        """Warn for each deprecated flat parameter the user set; the ones ``weighting`` takes.

        ``flat`` maps the deprecated flat parameters of the estimator to ``(weighting name,
        weighting parameter, class name)``. A flat parameter that is set raises a FutureWarning
        naming ``replacement=<class name>(<parameter>=...)`` and, when ``weighting`` is that
        name, is returned as the weighting's parameter (its effect is kept).
        """
        params = {}
        for attribute, (name, param, cls) in flat.items():
            value = getattr(self, attribute)
            if not _is_set(value):
                continue
            warnings.warn(
                f"{attribute} is deprecated since skmtl 0.1 and will be removed in 0.2; use "
                f"{replacement}={cls}({param}=...) instead.",
                FutureWarning,
                stacklevel=2,
            )
            if isinstance(weighting, str) and weighting == name:
                params[param] = value
        return params

    @staticmethod
    def _resolve_weighting(weighting, params):
        """A fresh weighting for this fit from a name (with ``params``) or an instance.

        An instance is cloned (the parameter is never modified); either way the weighting's
        parameters are validated against its ``_parameter_constraints``.
        """
        if isinstance(weighting, str):
            if weighting == "fixed":
                params = {"task_weights": None, **params}
            weighting = get_weighting(weighting, **params)
        else:
            weighting = clone(weighting)
        weighting._validate_params()
        return weighting

    # -- training ---------------------------------------------------------------------------------
    def _affinity_on(self):
        """Where the net measures the gradient affinity (``affinity_on``, by default)."""
        return self.affinity_on

    def _auxiliary(self, X):
        """The auxiliary-loss arguments of :func:`build_module`, and the loss's weight (none
        by default)."""
        return {}, 0.0

    def _module_builder(self, n_features, output_sizes, auxiliary=None):
        """The network factory handed to skorch (called without arguments)."""
        sharing, sharing_params = self._sharing()
        return partial(
            build_module,
            sharing,
            n_features,
            output_sizes,
            **(auxiliary or {}),
            hidden_layer_sizes=self.hidden_layer_sizes,
            head_layer_sizes=self.head_layer_sizes,
            activation=self.activation,
            dropout=self.dropout,
            module=self.module,
            module_params=self.module_params,
            **sharing_params,
        )

    def _train_net(
        self, X, labels, kinds, output_sizes, *, tasks, weighting, task_sampling="joint",
        tasks_per_batch=1, after_fit=None, first_tasks=None, max_epochs=None, groups=None,
        watched=None,
    ):
        """Build the skorch net on encoded labels (:class:`TaskLabels` of ``tasks``), train it.

        ``after_fit(net, train, valid)``, when given, runs right after ``net.fit`` in the same
        seeded block (a further training phase); ``train`` and ``valid`` are the
        :class:`MultiTaskDataset` parts (``valid`` None without validation data). With
        ``first_tasks`` (positions), ``net.fit`` sees the labels of those tasks only (the other
        tasks' labels are hidden from its loss, validation loss and history, and rows without
        such a label are left out); the split into training and validation rows is made on all
        labels, and ``after_fit`` receives the parts with all labels. ``max_epochs``, when
        given, replaces the estimator's for ``net.fit`` (a first phase). ``groups`` (group
        codes of the rows of ``X``, or None): the validation rows are whole groups.
        ``watched`` (a ``(task mask, name)`` pair, or None): tasks whose validation loss
        ``after_fit`` watches alone; the split holds out one of their labels.
        """
        fraction = self._validation_fraction()
        if self.early_stopping and fraction == 0:
            raise ValueError(
                "early_stopping=True monitors the validation loss and needs "
                "validation_fraction > 0 (e.g. 0.1, or None for the default); got "
                "validation_fraction=0."
            )
        accelerated = self.accelerator is not None
        if accelerated:
            from skmtl.deep._accelerate import AcceleratedMultiTaskNet, release, shared_seed

            device = self.accelerator.device
        else:
            device = resolve_device(self.device)
        if sp.issparse(X) and X.format != "csr":
            X = X.tocsr()  # rows are drawn per batch
        _check_float32_range(X)
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        if accelerated:  # one seed (split, initialisation, batches) for all the processes
            seed = shared_seed(self.accelerator, seed)
        train_rows, valid_rows = self._split_rows(
            labels, kinds, output_sizes, fraction, np.random.RandomState(seed), groups, watched
        )
        train = MultiTaskDataset(X, labels, train_rows)
        valid = None if valid_rows is None else MultiTaskDataset(X, labels, valid_rows)
        first_train, first_valid = train, valid
        if first_tasks is not None:
            keep = np.zeros(labels.n_tasks, dtype=bool)
            keep[list(first_tasks)] = True
            first_labels = labels.keep_tasks(keep)
            first_train = MultiTaskDataset(X, first_labels, first_labels.labelled(train.rows_))
            if valid is not None:
                first_valid = MultiTaskDataset(X, first_labels, valid.rows_)
        n_observed = first_train.labels.counts(first_train.rows_)
        net_class, run = MultiTaskNet, {"device": device}
        if accelerated:
            net_class, run = AcceleratedMultiTaskNet, {"accelerator": self.accelerator}
        auxiliary, auxiliary_weight = self._auxiliary(X)
        net = net_class(
            self._module_builder(X.shape[1], output_sizes, auxiliary),
            auxiliary_weight=auxiliary_weight,
            criterion=TaskLoss(kinds, output_sizes),
            weighting=weighting,
            n_observed=n_observed,
            task_type=self._task_type,
            task_names=[_hashable(task) for task in tasks],
            affinity_on=self._affinity_on(),
            **self._optimizer_params(),
            lr=self.lr,
            max_epochs=self.max_epochs if max_epochs is None else max_epochs,
            batch_size=self.batch_size,
            iterator_train=BatchLoader,
            iterator_train__shuffle=True,
            iterator_train__task_sampling=task_sampling,
            iterator_train__tasks_per_batch=tasks_per_batch,
            iterator_valid=BatchLoader,
            train_split=None if first_valid is None else predefined_split(first_valid),
            callbacks=self._make_callbacks(),
            callbacks__valid_loss=TaskLossRecorder(),
            callbacks__print_log=self._make_print_log(len(output_sizes)),
            verbose=self.verbose,
            **run,
        )
        with seeded_rng(seed, device):
            net.fit(first_train, None)
            if after_fit is not None:
                after_fit(net, train, valid)
        if accelerated:
            net = release(net)
        net.affinity_sum_, net.affinity_count_ = net.affinity_sum_.cpu(), net.affinity_count_.cpu()
        return net

    def _optimizer_params(self):
        """skorch's ``optimizer`` arguments: the class, and where weight decay applies.

        Weight decay applies to the parameters whose name ends in ``weight`` (the weight
        matrices of the trunk, towers and heads, and of a user module), never to biases, the
        task embedding, the cross-stitch / sluice mixing units or a weighting's parameters.
        """
        if isinstance(self.optimizer, str):
            optimizer = OPTIMIZERS[self.optimizer]
            params = {"optimizer": optimizer, "optimizer__weight_decay": 0.0}
        else:
            params = {"optimizer": self.optimizer}
        if self.weight_decay > 0:
            params["optimizer__param_groups"] = [
                ("*weight", {"weight_decay": float(self.weight_decay)})
            ]
        return params

    def _validation_fraction(self):
        if self.validation_fraction is None:
            return _AUTO_VALIDATION_FRACTION if self.early_stopping else 0.0
        return self.validation_fraction

    def _make_callbacks(self):
        callbacks = [copy.deepcopy(cb) for cb in (self.callbacks or [])]
        for entry in callbacks:
            callback = entry[1] if isinstance(entry, tuple) else entry
            if isinstance(callback, (EpochScoring, BatchScoring)):
                raise ValueError(
                    f"callbacks: skorch's {type(callback).__name__} cannot score this network: "
                    "its batches carry each task's labels (row, task, label), not a y array "
                    "with one column per task. The losses are in net_.history (train_loss, "
                    "valid_loss and each task's train_loss_task_t / valid_loss_task_t); score "
                    "the fitted estimator with skmtl.metrics.make_multitask_scorer."
                )
        if self.early_stopping:
            stopper = EarlyStopping(
                monitor="valid_loss", patience=self.n_iter_no_change, threshold=1e-4,
                threshold_mode="rel", load_best=True,
            )
            callbacks.append(("early_stopping", stopper))
        if self.verbose:
            callbacks.append(("progress_bar", ProgressBar()))
        return callbacks

    def _make_print_log(self, n_tasks):
        if not self.verbose or self.verbose < 2:
            return None
        ignored = ["task_weights"] + [
            f"{phase}_loss_task_{t}" for phase in ("train", "valid") for t in range(n_tasks)
        ]
        return PrintLog(keys_ignored=ignored)

    def _split_rows(self, labels, kinds, output_sizes, fraction, rng, groups=None,
                    watched=None):
        """Training and validation rows (None, None without validation); whole groups with
        ``groups`` (codes of the rows' groups); ``watched`` as in :meth:`_train_net`."""
        if fraction == 0:
            return None, None
        n_samples = labels.n_samples
        if n_samples < 2:
            raise ValueError(
                f"n_samples={n_samples}: a validation split (early_stopping=True or "
                "validation_fraction > 0) needs at least 2 rows; set early_stopping=False."
            )
        if np.ceil(fraction * n_samples) >= n_samples:
            raise ValueError(
                f"validation_fraction={fraction} leaves no training rows out of {n_samples}; "
                "lower it."
            )
        # strata: each class of a classification task, each regression task as a whole
        sizes = np.array([
            1 if kind in ("regression", "constant") else max(size, 2)
            for kind, size in zip(kinds, output_sizes, strict=True)
        ])
        codes = np.where(sizes[labels.task] > 1, labels.value, 0).astype(np.intp)
        if groups is None:
            return stratified_validation_split(labels.with_values(codes), sizes, fraction, rng,
                                               watched)
        return group_validation_split(labels.with_values(codes), sizes, fraction, groups, rng,
                                      watched)

    # -- predictions ----------------------------------------------------------------------------
    def _forward(self, X):
        """Yield ``(rows, outputs)``: the padded head outputs (T, B, K_max) of each batch."""
        dataset = MultiTaskDataset(X)
        start = 0
        for out in self.net_.forward_iter(dataset, training=False):
            stop = start + out.shape[1]
            yield slice(start, stop), self._check_outputs(out.to(torch.float64).numpy())
            start = stop

    def _forward_shared(self, X):
        """Yield ``(rows, outputs)``: every head's padded output (T, B, K_max) on the shared
        representation (the one an unseen task gets), batch by batch."""
        net = self.net_
        module = net.module_
        if not module.has_shared_part:
            raise ValueError(
                f"unknown_task='shared' predicts a task not seen in fit from the part of the "
                f"network shared by all tasks, but sharing={self._sharing()[0]!r} has none "
                "(every tower belongs to one task). Use sharing='hard', 'conditioned', "
                "'relationship', 'adaptive' or 'low_supervision', or unknown_task='error'."
            )
        yield from self._forward_through(X, module.forward_shared)

    def _forward_through(self, X, forward):
        """Yield ``(rows, outputs)``: ``forward(X_batch)``, a ``(T, B, K_max)`` tensor computed
        by the fitted module in eval mode without gradients, for each batch of X."""
        net = self.net_
        module = net.module_
        was_training = module.training
        module.train(False)
        start = 0
        try:
            with torch.no_grad():
                for Xi, _ in BatchLoader(MultiTaskDataset(X), net.batch_size):
                    out = forward(net.network_input(Xi.to(net.device))[0])
                    stop = start + out.shape[1]
                    out = out.to("cpu", torch.float64).numpy()
                    yield slice(start, stop), self._check_outputs(out)
                    start = stop
        finally:
            module.train(was_training)

    def _check_outputs(self, out):
        """Raise a FloatingPointError naming the task whose outputs are not finite."""
        finite = np.isfinite(out).reshape(out.shape[0], -1).all(axis=1)
        if not finite.all():
            t = int(np.flatnonzero(~finite)[0])
            raise FloatingPointError(
                f"Task {_hashable(self.tasks_[t])!r}: the network's outputs are not finite "
                f"for some rows (after epoch {self.n_iter_}, the last of training); the "
                "network overflows on these inputs. Standardise X or refit with a smaller lr."
            )
        return out


class _DeepRegressionMixin:
    """Regression targets: standardised per task for training, mapped back for predictions."""

    _parameter_constraints = {"standardize_targets": ["boolean"]}
    _task_type = "regression"

    def _encode_targets(self, labels):
        """``(kinds, output_sizes, labels)``: the tasks for :class:`TaskLoss` and the labels
        with their targets encoded (standardised per task, float32)."""
        n_tasks = labels.n_tasks
        encoded = np.empty(labels.value.shape[0], dtype=np.float32)
        self.target_mean_ = np.zeros(n_tasks)
        self.target_scale_ = np.ones(n_tasks)
        float32_max = float(np.finfo(np.float32).max)
        for t, entries in enumerate(group_rows_by_task(labels.task, n_tasks)):
            values = labels.value[entries]
            if self.standardize_targets:
                mean, scale, values = _standardize(values)
                self.target_mean_[t], self.target_scale_[t] = mean, scale
            elif np.abs(values).max() > float32_max:
                raise ValueError(
                    f"Task {_hashable(self.tasks_[t])!r} has targets of magnitude "
                    f"{np.abs(values).max():.3g}, beyond float32 (the network's precision); "
                    "use standardize_targets=True."
                )
            encoded[entries] = values
        return ["regression"] * n_tasks, [1] * n_tasks, labels.with_values(encoded)

    def _decode(self, out, tasks=slice(None)):
        """Predictions ``(B, n)`` in user units from the outputs ``(n, B, 1)`` of ``tasks``."""
        return out[:, :, 0].T * self.target_scale_[tasks] + self.target_mean_[tasks]

    def _predict_raw(self, X):
        pred = np.empty((X.shape[0], self.n_tasks_))
        for rows, out in self._forward(X):
            pred[rows] = self._decode(out)
        return pred

    def _predict_tasks(self, X, task_index):
        """Each row's prediction for its own task, batch by batch (no ``(n, T)`` array)."""
        pred = np.empty(X.shape[0])
        for rows, out in self._forward(X):
            t = task_index[rows]
            pred[rows] = out[t, np.arange(t.shape[0]), 0] * self.target_scale_[t]
            pred[rows] += self.target_mean_[t]
        return pred

    def _predict_shared(self, X):
        """The shared part's prediction for a task not seen in fit (``unknown_task="shared"``).

        The mean over the tasks of their heads' predictions, in the user's units, on the
        shared representation: ``mean_t (f_t(r(x)) * std_t + mean_t)``; with linear heads,
        the prediction of the head whose weights and bias are the mean of the tasks' heads
        (in the user's units).
        """
        pred = np.empty(X.shape[0])
        for rows, out in self._forward_shared(X):
            pred[rows] = self._decode(out).mean(axis=1)
        return pred


class _DeepClassificationMixin:
    """Classification targets: class codes per task; probabilities from the logits."""

    _task_type = "classification"

    def _encode_targets(self, labels):
        """``(kinds, output_sizes, labels)``: the tasks for :class:`TaskLoss` and the labels
        with their class codes as float32."""
        sizes = [len(classes) for classes in self._task_classes]
        kinds = ["constant" if k == 1 else "binary" if k == 2 else "multiclass" for k in sizes]
        output_sizes = [1 if k <= 2 else k for k in sizes]
        return kinds, output_sizes, labels.with_values(labels.value.astype(np.float32))

    def _predict_proba_raw(self, X):
        """Every task's probabilities; the binary tasks' as views of one ``(T_binary, n, 2)``
        array, filled by one sigmoid a batch (a call per task and batch took 0.28 s for
        1,000 tasks on 4,000 rows)."""
        sizes, binary, others = self._tasks_by_size()
        pairs = np.empty((len(binary), X.shape[0], 2))
        proba = [None] * len(sizes)
        for i, t in enumerate(binary):
            proba[t] = pairs[i]
        for t in others:
            proba[t] = np.empty((X.shape[0], sizes[t]))
        for rows, out in self._forward(X):
            if len(binary):
                positive = _positive_proba(out[binary])
                pairs[:, rows, 1] = positive
                pairs[:, rows, 0] = 1.0 - positive
            for t in others:
                proba[t][rows] = _task_proba(out[t], sizes[t])
        return proba

    def _predict_codes(self, X):
        """Every task's class codes, batch by batch, without the probabilities of all tasks:
        a binary task's code is 1 where its positive probability exceeds the negative one
        (the arg-max of the two, ties to 0)."""
        sizes, binary, others = self._tasks_by_size()
        codes = np.empty((X.shape[0], len(sizes)), dtype=np.intp)
        for rows, out in self._forward(X):
            if len(binary):
                positive = _positive_proba(out[binary])
                codes[rows][:, binary] = (positive > 1.0 - positive).T  # (a view's columns)
            for t in others:
                codes[rows, t] = _task_proba(out[t], sizes[t]).argmax(axis=1)
        return codes

    def _tasks_by_size(self):
        """``(sizes, binary, others)``: each task's number of classes, and the positions of
        the binary tasks and of the others."""
        sizes = np.array([len(classes) for classes in self._task_classes])
        return sizes, np.flatnonzero(sizes == 2), np.flatnonzero(sizes != 2)

    def _own_task_proba(self, X, task_index):
        """Yield ``(rows, proba)``: the probabilities ``(len(rows), n_classes_t)`` of the rows
        of X whose task is ``t``, from task t's head only, batch by batch (no ``(n, T)``
        array; one group per task present in the batch)."""
        sizes = [len(classes) for classes in self._task_classes]
        for rows, out in self._forward(X):
            for t, own in _task_groups(task_index[rows]):
                yield rows.start + own, _task_proba(out[t, own], sizes[t])

    def _predict_task_codes(self, X, task_index):
        """Each row's class code for its own task, batch by batch (no ``(n, T)`` array)."""
        codes = np.empty(X.shape[0], dtype=np.intp)
        for rows, proba in self._own_task_proba(X, task_index):
            codes[rows] = proba.argmax(axis=1)
        return codes

    def _predict_proba_tasks(self, X, task_index):
        """Each row's probabilities for its own task, batch by batch (no ``(n, T)`` array)."""
        out = np.empty((X.shape[0], len(self._task_classes[task_index[0]])))
        for rows, proba in self._own_task_proba(X, task_index):
            out[rows] = proba
        return out

    def _predict_proba_shared(self, X):
        """The shared part's probabilities for a task not seen in fit.

        The heads' outputs (logits) on the shared representation are averaged over the tasks,
        then mapped to probabilities as for one task: the logit of the mean head for linear
        heads. Columns follow ``_shared_classes`` (every task has these classes).
        """
        n_classes = len(self._shared_classes)
        proba = np.empty((X.shape[0], n_classes))
        for rows, out in self._forward_shared(X):
            proba[rows] = _task_proba(out.mean(axis=0), n_classes)
        return proba
