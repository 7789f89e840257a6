"""Deep multi-task estimators: scikit-learn estimators that build and own a skorch net."""

import copy
from functools import partial
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from skorch.callbacks import EarlyStopping, PrintLog, ProgressBar
from skorch.helper import predefined_split

from skmtl.base import MultiTaskClassifierMixin, MultiTaskRegressorMixin
from skmtl.deep._device import resolve_device, seeded_rng
from skmtl.deep._net import BatchLoader, MultiTaskDataset, MultiTaskNet, TaskLoss, TaskLossRecorder
from skmtl.deep.modules import ACTIVATIONS, CONDITIONING, SHARING, build_module
from skmtl.deep.weighting import WEIGHTINGS, Weighting, get_weighting
from skmtl.utils._sklearn_compat import Interval, StrOptions
from skmtl.utils.validation import _hashable

__all__ = ["MultiTaskClassifier", "MultiTaskRegressor"]

TASK_SAMPLING = ("joint", "uniform", "proportional")
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

# Parameters of named weightings that come from flat estimator parameters.
_WEIGHTING_PARAMS = {
    "fixed": {"task_weights": "task_weights"},
    "gradnorm": {"alpha": "gradnorm_alpha"},
    "lbtw": {"alpha": "lbtw_alpha"},
}


def _weights_history(net, n_tasks):
    """Epochs completed and the ``(n_epochs, n_tasks)`` task weights recorded at their ends."""
    # epochs that completed (skorch ends training quietly on KeyboardInterrupt)
    weights = [row["task_weights"] for row in net.history if "task_weights" in row]
    return len(weights), np.asarray(weights, dtype=np.float64).reshape(len(weights), n_tasks)


def stratified_validation_split(codes, mask, sizes, fraction, rng):
    """Split the rows into training and validation rows, stratified on every task.

    A stratum is one class of one classification task (``sizes[t]`` classes) or a whole
    regression task (``sizes[t] == 1``). The strata are visited from the rarest (fewest
    labels) to the most frequent, as in iterative stratification (Sechidis, Tsoumakas and
    Vlahavas, 2011): the stratum's rows not yet placed, in a random order, go to validation
    until it holds ``round(fraction * n_s)`` of the stratum's ``n_s`` labels (counting the rows
    already placed by rarer strata), the rest to training; a stratum with 2 labels or more
    always keeps one in training. Rows without any label then fill the validation part up
    to ``ceil(fraction * n_samples)`` rows, and at least one row is held out.

    Parameters
    ----------
    codes : ndarray of int, shape (n_samples, n_tasks)
        Class codes (0 for regression tasks and missing labels).
    mask : ndarray of bool, shape (n_samples, n_tasks)
        Observed labels.
    sizes : sequence of int
        Number of strata of each task.
    fraction : float
        Fraction of the rows to hold out, in (0, 1).
    rng : numpy.random.RandomState

    Returns
    -------
    train, valid : ndarray of int
        Sorted row indices.
    """
    n_samples, n_tasks = mask.shape
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp)
    n_strata = int(offsets[-1])
    order = rng.permutation(n_samples)
    rank = np.empty(n_samples, dtype=np.intp)
    rank[order] = np.arange(n_samples)
    total = np.zeros(n_strata, dtype=np.intp)
    members = {}
    for t in range(n_tasks):
        rows = np.flatnonzero(mask[:, t])
        rows = rows[np.argsort(rank[rows], kind="stable")]  # random order
        ids = offsets[t] + codes[rows, t]
        np.add.at(total, ids, 1)
        by_stratum = np.argsort(ids, kind="stable")
        bounds = np.searchsorted(ids[by_stratum], np.arange(offsets[t], offsets[t + 1] + 1))
        for k in range(sizes[t]):
            members[offsets[t] + k] = (t, rows[by_stratum[bounds[k] : bounds[k + 1]]])
    place = np.full(n_samples, -1, dtype=np.int8)  # -1 not placed, 0 training, 1 validation
    counts = np.zeros((2, n_strata), dtype=np.intp)

    def assign(rows, part):
        place[rows] = part
        sub = mask[rows]
        ids = (offsets[:-1] + codes[rows])[sub]
        np.add.at(counts[part], ids, 1)

    for s in np.argsort(total, kind="stable"):
        if total[s] == 0:
            continue
        t, rows = members[s]
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
    if not np.any(place == 1):
        # hold out the first row (in the random order) whose labels all have a spare in training
        spare = counts[0] >= 2
        for row in order:
            ids = (offsets[:-1] + codes[row])[mask[row]]
            if np.all(spare[ids]):
                break
        place[row] = 1
    if not np.any(place == 0):
        place[order[0]] = 0
    return np.flatnonzero(place == 0), np.flatnonzero(place == 1)


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


def _task_proba(out, n_classes):
    """Class probabilities ``(B, n_classes)`` of one task from its padded head output ``(B, K)``.

    One logit for a binary task, ``n_classes`` logits otherwise; a one-class task is certain.
    """
    proba = np.empty((out.shape[0], n_classes))
    if n_classes == 1:
        proba[:] = 1.0
    elif n_classes == 2:
        proba[:, 1] = 1.0 / (1.0 + np.exp(-out[:, 0]))
        proba[:, 0] = 1.0 - proba[:, 1]
    else:
        logits = out[:, :n_classes]
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        proba[:] = exp / exp.sum(axis=1, keepdims=True)
    return proba


class _DeepMultiTaskNetwork(BaseEstimator):
    """Common parameters, fit and forward pass of the deep multi-task estimators."""

    _parameter_constraints = {
        "sharing": [StrOptions(set(SHARING))],
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "head_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "soft_penalty": [Interval(Real, 0, None, closed="left")],
        "conditioning": [StrOptions(set(CONDITIONING))],
        "embedding_dim": [None, Interval(Integral, 1, None, closed="left")],
        "module": [None, type],
        "module_params": [None, dict],
        "weighting": [StrOptions(set(WEIGHTINGS)), Weighting],
        "task_weights": [None, "array-like"],
        "gradnorm_alpha": [Interval(Real, 0, None, closed="left")],
        "lbtw_alpha": [Interval(Real, 0, None, closed="left")],
        "task_sampling": [StrOptions(set(TASK_SAMPLING))],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "optimizer": [StrOptions(set(OPTIMIZERS)), callable],
        "early_stopping": ["boolean"],
        "validation_fraction": [None, Interval(Real, 0, 1, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "unknown_task": [StrOptions({"error", "shared"})],
        "callbacks": [None, list],
        "device": [str],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    # X arrives float32 or float64 (other dtypes become float32); batches are float32.
    _X_dtype = [np.float32, np.float64]

    def __init__(
        self,
        *,
        sharing="hard",
        hidden_layer_sizes=DEFAULTS["hidden_layer_sizes"],
        head_layer_sizes=(),
        activation="relu",
        dropout=DEFAULTS["dropout"],
        soft_penalty=1e-3,
        conditioning="concat",
        embedding_dim=None,
        module=None,
        module_params=None,
        weighting="equal",
        task_weights=None,
        gradnorm_alpha=1.5,
        lbtw_alpha=0.5,
        task_sampling="joint",
        max_epochs=DEFAULTS["max_epochs"],
        batch_size=DEFAULTS["batch_size"],
        lr=DEFAULTS["lr"],
        weight_decay=DEFAULTS["weight_decay"],
        optimizer=DEFAULTS["optimizer"],
        early_stopping=True,
        validation_fraction=None,
        n_iter_no_change=DEFAULTS["n_iter_no_change"],
        unknown_task="error",
        callbacks=None,
        device="cpu",
        random_state=None,
        verbose=0,
    ):
        self.sharing = sharing
        self.hidden_layer_sizes = hidden_layer_sizes
        self.head_layer_sizes = head_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.soft_penalty = soft_penalty
        self.conditioning = conditioning
        self.embedding_dim = embedding_dim
        self.module = module
        self.module_params = module_params
        self.weighting = weighting
        self.task_weights = task_weights
        self.gradnorm_alpha = gradnorm_alpha
        self.lbtw_alpha = lbtw_alpha
        self.task_sampling = task_sampling
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.unknown_task = unknown_task
        self.callbacks = callbacks
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # -- fit ------------------------------------------------------------------------------------
    def _fit_multitask(self, X, Y, mask):
        kinds, output_sizes, targets = self._encode_targets(Y, mask)
        net = self._train_net(
            X, targets, mask, kinds, output_sizes, tasks=self.tasks_,
            weighting=self._make_weighting(), task_sampling=self.task_sampling,
        )
        self.net_ = net
        self.n_iter_, self.task_weights_history_ = _weights_history(net, len(output_sizes))
        self.gradient_affinity_ = net.gradient_affinity()
        return self

    def _module_builder(self, n_features, output_sizes):
        """The network factory handed to skorch (called without arguments)."""
        sharing, sharing_params = self._sharing()
        return partial(
            build_module,
            sharing,
            n_features,
            output_sizes,
            hidden_layer_sizes=self.hidden_layer_sizes,
            head_layer_sizes=self.head_layer_sizes,
            activation=self.activation,
            dropout=self.dropout,
            module=self.module,
            module_params=self.module_params,
            **sharing_params,
        )

    def _sharing(self):
        """The sharing strategy and its own parameters, for :func:`build_module`."""
        return self.sharing, {
            "soft_penalty": self.soft_penalty,
            "conditioning": self.conditioning,
            "embedding_dim": self.embedding_dim,
        }

    def _train_net(
        self, X, targets, mask, kinds, output_sizes, *, tasks, weighting, task_sampling="joint",
        after_fit=None,
    ):
        """Build the skorch net on encoded targets (one column per task in ``tasks``), train it.

        ``after_fit(net, train, valid)``, when given, runs right after ``net.fit`` in the same
        seeded block (a further training phase); ``train`` and ``valid`` are the
        :class:`MultiTaskDataset` parts (``valid`` None without validation data).
        """
        fraction = self._validation_fraction()
        if self.early_stopping and fraction == 0:
            raise ValueError(
                "early_stopping=True monitors the validation loss and needs "
                "validation_fraction > 0 (e.g. 0.1, or None for the default); got "
                "validation_fraction=0."
            )
        device = resolve_device(self.device)
        if sp.issparse(X) and X.format != "csr":
            X = X.tocsr()  # rows are drawn per batch
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        train_rows, valid_rows = self._split_rows(
            targets, mask, kinds, output_sizes, fraction, np.random.RandomState(seed)
        )
        train = MultiTaskDataset(X, targets, mask, train_rows)
        valid = None if valid_rows is None else MultiTaskDataset(X, targets, mask, valid_rows)
        n_observed = mask.sum(0) if train_rows is None else mask[train_rows].sum(0)
        net = MultiTaskNet(
            self._module_builder(X.shape[1], output_sizes),
            criterion=TaskLoss(kinds, output_sizes),
            weighting=weighting,
            n_observed=n_observed,
            task_type=self._task_type,
            task_names=[_hashable(task) for task in tasks],
            **self._optimizer_params(),
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            iterator_train=BatchLoader,
            iterator_train__shuffle=True,
            iterator_train__task_sampling=task_sampling,
            iterator_valid=BatchLoader,
            train_split=None if valid is None else predefined_split(valid),
            callbacks=self._make_callbacks(),
            callbacks__valid_loss=TaskLossRecorder(),
            callbacks__print_log=self._make_print_log(len(output_sizes)),
            verbose=self.verbose,
            device=device,
        )
        with seeded_rng(seed, device):
            net.fit(train, None)
            if after_fit is not None:
                after_fit(net, train, valid)
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

    def _make_weighting(self):
        if not isinstance(self.weighting, str):
            return get_weighting(self.weighting)  # a deep copy
        return self._named_weighting(self.weighting)

    def _named_weighting(self, name):
        """The weighting ``name`` with its parameters taken from the estimator's flat ones."""
        params = {
            param: getattr(self, attribute)
            for param, attribute in _WEIGHTING_PARAMS.get(name, {}).items()
        }
        return get_weighting(name, **params)

    def _make_callbacks(self):
        callbacks = [copy.deepcopy(cb) for cb in (self.callbacks or [])]
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

    def _split_rows(self, targets, mask, kinds, output_sizes, fraction, rng):
        """Training and validation rows (None, None without validation)."""
        if fraction == 0:
            return None, None
        n_samples = mask.shape[0]
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
        sizes = [
            1 if kind in ("regression", "constant") else max(size, 2)
            for kind, size in zip(kinds, output_sizes, strict=True)
        ]
        codes = np.zeros(mask.shape, dtype=np.intp)
        for t in range(len(kinds)):
            if sizes[t] > 1:
                codes[:, t] = np.where(mask[:, t], targets[:, t], 0)
        return stratified_validation_split(codes, mask, sizes, fraction, rng)

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
                "(every tower belongs to one task). Use sharing='hard' or 'conditioned', or "
                "unknown_task='error'."
            )
        loader = BatchLoader(MultiTaskDataset(X), net.batch_size)
        was_training = module.training
        module.train(False)
        start = 0
        try:
            with torch.no_grad():
                for Xi, _ in loader:
                    out = module.forward_shared(Xi.to(net.device))
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


class MultiTaskRegressor(MultiTaskRegressorMixin, _DeepMultiTaskNetwork):
    """Deep multi-task regressor: one network, one output per task, a choice of sharing.

    A PyTorch network (built by :func:`skmtl.deep.modules.build_module` with the ``sharing``
    strategy) is trained by a private skorch net on all tasks at once. Each task's targets are
    standardised on its observed labels (``standardize_targets=True``) and predictions are
    mapped back. Missing labels are masked: the loss of task ``t`` on a batch ``B`` is the mean
    over its observed labels ``O_t(B)`` only, and the weighting combines the task losses::

        L_t(B) = 1 / |O_t(B)| * sum_{i in O_t(B)} (f_t(x_i) - z_it)^2
        total(B) = weighting.combine(L(B), observed=|O_t(B)| > 0) + penalty(theta)

    where ``z_it = (y_it - mean_t) / std_t`` and ``penalty`` is the ``"soft"`` sharing penalty
    (0 otherwise). With ``weighting="equal"``, ``total = sum_{t observed} L_t``. A task without a
    label in the batch contributes nothing. Training runs in float32 on ``device``;
    predictions are float64.

    Parameters
    ----------
    sharing : {"hard", "independent", "soft", "cross_stitch", "sluice", "conditioned"}, \
            default="hard"
        How tasks share parameters: ``"hard"`` a shared trunk and one head per task;
        ``"independent"`` one network per task (the deep single-task baseline); ``"soft"`` one
        tower per task pulled together by ``soft_penalty``; ``"cross_stitch"`` towers mixed by
        learned units; ``"sluice"`` cross-stitch over subspaces with layer mixing;
        ``"conditioned"`` one network fed a learned task embedding. See
        :mod:`skmtl.deep.modules`.
    hidden_layer_sizes : array-like of int or int, default=(512,)
        Hidden layers of the trunk (``"hard"``), of each tower, or of the conditioned network.
        Ignored when ``module`` is given.
    head_layer_sizes : array-like of int or int, default=()
        Hidden layers of each task head before its output layer. Linear heads (the default)
        make per-task gradients nearly free (see Notes).
    activation : {"relu", "gelu", "tanh", "logistic", "identity"}, default="relu"
        Activation after every hidden layer.
    dropout : float, default=0.5
        Dropout probability after every hidden activation, in ``[0, 1)``.
    soft_penalty : float, default=1e-3
        Strength of the ``"soft"`` sharing penalty ``sum ||theta_s - theta_t||^2`` between
        matching tower layers; used by ``"soft"`` only.
    conditioning : {"concat", "sum", "multiplicative"}, default="concat"
        How ``"conditioned"`` sharing feeds the task embedding; used by ``"conditioned"`` only.
    embedding_dim : int, default=None
        Width of the task embedding of ``"conditioned"`` sharing; None means ``min(8, T)``.
    module : torch.nn.Module subclass, default=None
        A class to use as the trunk (``"hard"``) or as each tower (``"independent"``,
        ``"soft"``), built as ``module(**module_params)`` inside ``fit``. It receives X of shape
        ``(batch, n_features)`` in float32 and returns ``(batch, ...)``.
    module_params : dict, default=None
        Keyword arguments of ``module``.
    weighting : str or Weighting, default="equal"
        How the task losses are combined: ``"equal"``, ``"fixed"`` (``task_weights``),
        ``"inverse_frequency"``, ``"uncertainty"``, ``"gradnorm"`` (``gradnorm_alpha``),
        ``"dwa"``, ``"lbtw"`` (``lbtw_alpha``), ``"minimax"``, or an instance of a
        :class:`~skmtl.deep.weighting.Weighting` subclass (copied at fit). See
        :mod:`skmtl.deep.weighting`.
    task_weights : array-like of shape (n_tasks,), default=None
        One weight per task (in ``tasks_`` order); used by ``weighting="fixed"`` only.
    gradnorm_alpha : float, default=1.5
        GradNorm's asymmetry ``alpha``; used by ``weighting="gradnorm"`` only.
    lbtw_alpha : float, default=0.5
        Loss-balanced weighting's exponent ``alpha``; used by ``weighting="lbtw"`` only.
    task_sampling : {"joint", "uniform", "proportional"}, default="joint"
        ``"joint"``: every batch is drawn from all rows and every task's observed labels count.
        ``"uniform"`` / ``"proportional"``: naive multi-task SGD; each batch first draws one
        task (uniformly, or with probability proportional to its number of observed labels),
        then ``batch_size`` of that task's observed rows, and only that task's loss counts. An
        epoch has ``ceil(n_samples / batch_size)`` batches in every mode.
    max_epochs : int, default=200
        Maximum number of passes over the training data (fewer with early stopping).
    batch_size : int, default=128
        Rows per batch.
    lr : float, default=3e-4
        Learning rate of the optimizer.
    weight_decay : float, default=0.01
        Weight decay of the weight matrices (trunk, towers, heads, a user ``module``: the
        parameters named ``*weight``; never biases, task embeddings, cross-stitch or sluice
        units, or a weighting's parameters), given to the optimizer as that parameter group's
        ``weight_decay``. With ``"adamw"`` it is decoupled: each step multiplies those weights
        by ``1 - lr * weight_decay``. With ``"adam"`` and ``"sgd"`` it is an L2 penalty
        ``weight_decay / 2 * ||W||^2`` in the loss. 0 disables it.
    optimizer : {"adamw", "adam", "sgd"} or callable, default="adamw"
        The optimizer: a name, or a :class:`torch.optim.Optimizer` class (or any callable
        ``optimizer(param_groups, lr=lr)``).
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the rows (a split stratified on every task and
        class, see the user guide), stop when the validation loss (the mean over tasks of each
        task's mean loss on its observed validation labels) has not improved by a relative
        1e-4 for ``n_iter_no_change`` epochs, and restore the network of the best epoch
        (skorch's :class:`~skorch.callbacks.EarlyStopping` with ``load_best=True``).
    validation_fraction : float or None, default=None
        Fraction of the rows held out to compute validation losses each epoch. None: 0.1 with
        early stopping, no validation data without it; 0 for none (not with early stopping).
    n_iter_no_change : int, default=10
        Epochs without improvement of the validation loss before early stopping stops.
    unknown_task : {"error", "shared"}, default="error"
        What ``task_ids`` naming a task not seen in fit gets: ``"error"`` raises
        :class:`~skmtl.UnknownTaskError`; ``"shared"`` predicts it from the shared part, the
        trunk read by the mean of the heads (``"hard"``) or the network fed the mean task
        embedding (``"conditioned"``); the mean of the heads' outputs, in the user's units
        for regression and as logits for classification. Other strategies have no shared part
        and raise a ValueError when an unseen task has to be predicted.
    callbacks : list of skorch callbacks, default=None
        Extra skorch callbacks (instances or ``(name, callback)`` tuples); they are copied at
        fit, and the fitted copies live in ``net_.callbacks_``.
    device : str, default="cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"`` (CUDA if available, else
        MPS if available, else the CPU). An unavailable device raises a ValueError at fit.
    random_state : int, RandomState instance or None, default=None
        Seeds every torch random draw of the fit (initialisation, shuffling, dropout, task
        sampling) and the validation split, inside :func:`torch.random.fork_rng`: torch's global
        random state is left untouched, and the same integer gives the same model.
    verbose : int, default=0
        0: silent. 1: a progress bar per epoch (skorch's
        :class:`~skorch.callbacks.ProgressBar`). 2: also skorch's table of losses per epoch.
    standardize_targets : bool, default=True
        Standardise each task's targets on its observed labels for training: the loss is the
        squared error on ``(y - target_mean_) / target_scale_``, and predictions are mapped
        back to the user's units. Safe for targets of any finite magnitude (the statistics
        are taken on the values divided by their largest magnitude). Without it, targets
        beyond float32's range raise a ValueError.

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The trained skorch net. ``net_.module_`` is the network; ``net_.history`` holds, per
        epoch, ``train_loss`` (the weighted training objective), ``train_loss_task_<t>`` (task
        ``t``'s unweighted mean loss on its observed training labels; ``t`` its position in
        ``tasks_``), ``task_weights``, and with validation data ``valid_loss`` and
        ``valid_loss_task_<t>``.
    n_iter_ : int
        Number of epochs run.
    task_weights_history_ : ndarray of shape (n_iter_, n_tasks)
        The weighting's ``current_weights()`` at the end of each epoch (after its end-of-epoch
        update).
    gradient_affinity_ : ndarray of shape (n_tasks, n_tasks)
        Mean cosine similarity between the tasks' loss gradients on the shared representation
        (see Notes); symmetric, 1 on the diagonal; NaN for a pair never observed together, and
        off the diagonal for strategies without a shared representation.
    target_mean_ : ndarray of shape (n_tasks,)
        Mean of each task's observed targets (0 without standardisation).
    target_scale_ : ndarray of shape (n_tasks,)
        Standard deviation of each task's observed targets (1 without standardisation; for
        a constant task, its largest magnitude, or 1 if it is all zeros).
    tasks_ : ndarray of shape (n_tasks,)
        Task labels.
    n_tasks_ : int
        Number of tasks.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    MultiTaskClassifier : The classification counterpart.
    skmtl.IndependentTasks : Single-task reference with any scikit-learn estimator.

    Notes
    -----
    Training step. Each batch takes ONE backward pass through the trunk, whatever the
    weighting. The per-task gradients ``g_t = dL_t / dR`` on the shared representation ``R``
    (GradNorm's gradient norms, ``gradient_affinity_``) are taken on ``R``, not on the trunk:
    with linear heads, from the gradients on the outputs and the head weights (a ``T x T`` Gram
    matrix in ``O(T^2 (B + h))``); with hidden head layers, by one extra backward pass through
    the heads only.

    Gradient affinity. ``gradient_affinity_[s, t]`` is the mean, over the batches in which both
    tasks have a label, of ``cos(g_s, g_t)``. It is measured on every batch with linear heads
    and at most 256 tasks, and on the first batch of every epoch with hidden head layers
    (where it costs ``O(T^2 B h)``) or more tasks (its ``T x T`` matrix would cost more than
    the training step). Strategies without a shared representation (``"independent"``,
    ``"soft"``, ``"cross_stitch"``, ``"sluice"``, ``"conditioned"``: each head reads its own
    slot) have no common space to compare in: their off-diagonal entries are NaN.

    Divergence. A network that diverges raises a :class:`FloatingPointError` naming the task
    and the epoch, never a model that predicts NaN: when a task's training loss on a batch, or
    its validation loss, is not finite; when the parameters are not finite at the end of an
    epoch (a last optimizer step that diverged; the heads' tasks are named); and at predict
    time when outputs overflow.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.deep import MultiTaskRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(100, 3))
    >>> Y = np.column_stack([X[:, 0] + X[:, 1], X[:, 0] - X[:, 2]])
    >>> Y[::4, 1] = np.nan  # missing labels
    >>> model = MultiTaskRegressor(hidden_layer_sizes=(16,), max_epochs=5, lr=1e-2,
    ...                            random_state=0).fit(X, Y)
    >>> model.predict(X[:3]).shape, model.predict(X[:3]).dtype
    ((3, 2), dtype('float64'))
    >>> model.n_iter_, model.task_weights_history_.shape
    (5, (5, 2))
    """

    _parameter_constraints = {
        **_DeepMultiTaskNetwork._parameter_constraints,
        "standardize_targets": ["boolean"],
    }
    _task_type = "regression"

    def __init__(
        self,
        *,
        sharing="hard",
        hidden_layer_sizes=DEFAULTS["hidden_layer_sizes"],
        head_layer_sizes=(),
        activation="relu",
        dropout=DEFAULTS["dropout"],
        soft_penalty=1e-3,
        conditioning="concat",
        embedding_dim=None,
        module=None,
        module_params=None,
        weighting="equal",
        task_weights=None,
        gradnorm_alpha=1.5,
        lbtw_alpha=0.5,
        task_sampling="joint",
        max_epochs=DEFAULTS["max_epochs"],
        batch_size=DEFAULTS["batch_size"],
        lr=DEFAULTS["lr"],
        weight_decay=DEFAULTS["weight_decay"],
        optimizer=DEFAULTS["optimizer"],
        early_stopping=True,
        validation_fraction=None,
        n_iter_no_change=DEFAULTS["n_iter_no_change"],
        unknown_task="error",
        callbacks=None,
        device="cpu",
        random_state=None,
        verbose=0,
        standardize_targets=True,
    ):
        super().__init__(
            sharing=sharing,
            hidden_layer_sizes=hidden_layer_sizes,
            head_layer_sizes=head_layer_sizes,
            activation=activation,
            dropout=dropout,
            soft_penalty=soft_penalty,
            conditioning=conditioning,
            embedding_dim=embedding_dim,
            module=module,
            module_params=module_params,
            weighting=weighting,
            task_weights=task_weights,
            gradnorm_alpha=gradnorm_alpha,
            lbtw_alpha=lbtw_alpha,
            task_sampling=task_sampling,
            max_epochs=max_epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            optimizer=optimizer,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            unknown_task=unknown_task,
            callbacks=callbacks,
            device=device,
            random_state=random_state,
            verbose=verbose,
        )
        self.standardize_targets = standardize_targets

    def _encode_targets(self, Y, mask):
        n_samples, n_tasks = mask.shape
        targets = np.zeros((n_samples, n_tasks), dtype=np.float32)
        self.target_mean_ = np.zeros(n_tasks)
        self.target_scale_ = np.ones(n_tasks)
        float32_max = float(np.finfo(np.float32).max)
        for t in range(n_tasks):
            rows = mask[:, t]
            values = Y[rows, t]
            if self.standardize_targets:
                mean, scale, values = _standardize(values)
                self.target_mean_[t], self.target_scale_[t] = mean, scale
            elif np.abs(values).max() > float32_max:
                raise ValueError(
                    f"Task {_hashable(self.tasks_[t])!r} has targets of magnitude "
                    f"{np.abs(values).max():.3g}, beyond float32 (the network's precision); "
                    "use standardize_targets=True."
                )
            targets[rows, t] = values
        return ["regression"] * n_tasks, [1] * n_tasks, targets

    def _predict_raw(self, X):
        pred = np.empty((X.shape[0], self.n_tasks_))
        for rows, out in self._forward(X):
            pred[rows] = out[:, :, 0].T * self.target_scale_ + self.target_mean_
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
            pred[rows] = (out[:, :, 0].T * self.target_scale_ + self.target_mean_).mean(axis=1)
        return pred


class MultiTaskClassifier(MultiTaskClassifierMixin, _DeepMultiTaskNetwork):
    """Deep multi-task classifier: one network, per-task classes, a choice of sharing.

    A PyTorch network (built by :func:`skmtl.deep.modules.build_module` with the ``sharing``
    strategy) is trained by a private skorch net on all tasks at once. Each task has its own
    classes: a binary task has one logit and the binary cross-entropy, a task with ``K_t > 2``
    classes has ``K_t`` logits and the cross-entropy (a task with a single class always predicts
    it). Missing labels are masked: the loss of task ``t`` on a batch ``B`` is the mean over its
    observed labels ``O_t(B)`` only, and the weighting combines the task losses::

        L_t(B) = 1 / |O_t(B)| * sum_{i in O_t(B)} -log p_t(y_it | x_i)
        total(B) = weighting.combine(L(B), observed=|O_t(B)| > 0) + penalty(theta)

    where ``penalty`` is the ``"soft"`` sharing penalty (0 otherwise). With
    ``weighting="equal"``, ``total = sum_{t observed} L_t``. Training runs in float32 on
    ``device``; probabilities are float64.

    Parameters
    ----------
    sharing : {"hard", "independent", "soft", "cross_stitch", "sluice", "conditioned"}, \
            default="hard"
        How tasks share parameters: ``"hard"`` a shared trunk and one head per task;
        ``"independent"`` one network per task (the deep single-task baseline); ``"soft"`` one
        tower per task pulled together by ``soft_penalty``; ``"cross_stitch"`` towers mixed by
        learned units; ``"sluice"`` cross-stitch over subspaces with layer mixing;
        ``"conditioned"`` one network fed a learned task embedding. See
        :mod:`skmtl.deep.modules`.
    hidden_layer_sizes : array-like of int or int, default=(512,)
        Hidden layers of the trunk (``"hard"``), of each tower, or of the conditioned network.
        Ignored when ``module`` is given.
    head_layer_sizes : array-like of int or int, default=()
        Hidden layers of each task head before its output layer. Linear heads (the default)
        make per-task gradients nearly free (see Notes of :class:`MultiTaskRegressor`).
    activation : {"relu", "gelu", "tanh", "logistic", "identity"}, default="relu"
        Activation after every hidden layer.
    dropout : float, default=0.5
        Dropout probability after every hidden activation, in ``[0, 1)``.
    soft_penalty : float, default=1e-3
        Strength of the ``"soft"`` sharing penalty ``sum ||theta_s - theta_t||^2`` between
        matching tower layers; used by ``"soft"`` only.
    conditioning : {"concat", "sum", "multiplicative"}, default="concat"
        How ``"conditioned"`` sharing feeds the task embedding; used by ``"conditioned"`` only.
    embedding_dim : int, default=None
        Width of the task embedding of ``"conditioned"`` sharing; None means ``min(8, T)``.
    module : torch.nn.Module subclass, default=None
        A class to use as the trunk (``"hard"``) or as each tower (``"independent"``,
        ``"soft"``), built as ``module(**module_params)`` inside ``fit``. It receives X of shape
        ``(batch, n_features)`` in float32 and returns ``(batch, ...)``.
    module_params : dict, default=None
        Keyword arguments of ``module``.
    weighting : str or Weighting, default="equal"
        How the task losses are combined: ``"equal"``, ``"fixed"`` (``task_weights``),
        ``"inverse_frequency"``, ``"uncertainty"``, ``"gradnorm"`` (``gradnorm_alpha``),
        ``"dwa"``, ``"lbtw"`` (``lbtw_alpha``), ``"minimax"``, or an instance of a
        :class:`~skmtl.deep.weighting.Weighting` subclass (copied at fit). See
        :mod:`skmtl.deep.weighting`.
    task_weights : array-like of shape (n_tasks,), default=None
        One weight per task (in ``tasks_`` order); used by ``weighting="fixed"`` only.
    gradnorm_alpha : float, default=1.5
        GradNorm's asymmetry ``alpha``; used by ``weighting="gradnorm"`` only.
    lbtw_alpha : float, default=0.5
        Loss-balanced weighting's exponent ``alpha``; used by ``weighting="lbtw"`` only.
    task_sampling : {"joint", "uniform", "proportional"}, default="joint"
        ``"joint"``: every batch is drawn from all rows and every task's observed labels count.
        ``"uniform"`` / ``"proportional"``: naive multi-task SGD; each batch first draws one
        task (uniformly, or with probability proportional to its number of observed labels),
        then ``batch_size`` of that task's observed rows, and only that task's loss counts. An
        epoch has ``ceil(n_samples / batch_size)`` batches in every mode.
    max_epochs : int, default=200
        Maximum number of passes over the training data (fewer with early stopping).
    batch_size : int, default=128
        Rows per batch.
    lr : float, default=3e-4
        Learning rate of the optimizer.
    weight_decay : float, default=0.01
        Weight decay of the weight matrices (trunk, towers, heads, a user ``module``: the
        parameters named ``*weight``; never biases, task embeddings, cross-stitch or sluice
        units, or a weighting's parameters), given to the optimizer as that parameter group's
        ``weight_decay``. With ``"adamw"`` it is decoupled: each step multiplies those weights
        by ``1 - lr * weight_decay``. With ``"adam"`` and ``"sgd"`` it is an L2 penalty
        ``weight_decay / 2 * ||W||^2`` in the loss. 0 disables it.
    optimizer : {"adamw", "adam", "sgd"} or callable, default="adamw"
        The optimizer: a name, or a :class:`torch.optim.Optimizer` class (or any callable
        ``optimizer(param_groups, lr=lr)``).
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the rows (a split stratified on every task and
        class, see the user guide), stop when the validation loss (the mean over tasks of each
        task's mean loss on its observed validation labels) has not improved by a relative
        1e-4 for ``n_iter_no_change`` epochs, and restore the network of the best epoch
        (skorch's :class:`~skorch.callbacks.EarlyStopping` with ``load_best=True``).
    validation_fraction : float or None, default=None
        Fraction of the rows held out to compute validation losses each epoch. None: 0.1 with
        early stopping, no validation data without it; 0 for none (not with early stopping).
    n_iter_no_change : int, default=10
        Epochs without improvement of the validation loss before early stopping stops.
    unknown_task : {"error", "shared"}, default="error"
        What ``task_ids`` naming a task not seen in fit gets: ``"error"`` raises
        :class:`~skmtl.UnknownTaskError`; ``"shared"`` predicts it from the shared part, the
        trunk read by the mean of the heads (``"hard"``) or the network fed the mean task
        embedding (``"conditioned"``); the mean of the heads' outputs, in the user's units
        for regression and as logits for classification. Other strategies have no shared part
        and raise a ValueError when an unseen task has to be predicted.
    callbacks : list of skorch callbacks, default=None
        Extra skorch callbacks (instances or ``(name, callback)`` tuples); they are copied at
        fit, and the fitted copies live in ``net_.callbacks_``.
    device : str, default="cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"`` (CUDA if available, else
        MPS if available, else the CPU). An unavailable device raises a ValueError at fit.
    random_state : int, RandomState instance or None, default=None
        Seeds every torch random draw of the fit (initialisation, shuffling, dropout, task
        sampling) and the validation split, inside :func:`torch.random.fork_rng`: torch's global
        random state is left untouched, and the same integer gives the same model.
    verbose : int, default=0
        0: silent. 1: a progress bar per epoch (skorch's
        :class:`~skorch.callbacks.ProgressBar`). 2: also skorch's table of losses per epoch.

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The trained skorch net. ``net_.module_`` is the network; ``net_.history`` holds, per
        epoch, ``train_loss`` (the weighted training objective), ``train_loss_task_<t>`` (task
        ``t``'s unweighted mean loss on its observed training labels; ``t`` its position in
        ``tasks_``), ``task_weights``, and with validation data ``valid_loss`` and
        ``valid_loss_task_<t>``.
    n_iter_ : int
        Number of epochs run.
    task_weights_history_ : ndarray of shape (n_iter_, n_tasks)
        The weighting's ``current_weights()`` at the end of each epoch (after its end-of-epoch
        update).
    gradient_affinity_ : ndarray of shape (n_tasks, n_tasks)
        Mean cosine similarity between the tasks' loss gradients on the shared representation
        (see Notes of :class:`MultiTaskRegressor`); symmetric, 1 on the diagonal; NaN for a
        pair never observed together, and off the diagonal for strategies without a shared
        representation.
    classes_ : ndarray or list of ndarray
        The classes of a 1-D y, else one array of classes per task.
    tasks_ : ndarray of shape (n_tasks,)
        Task labels.
    n_tasks_ : int
        Number of tasks.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    MultiTaskRegressor : The regression counterpart (its Notes describe the training step).
    skmtl.IndependentTasks : Single-task reference with any scikit-learn estimator.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.deep import MultiTaskClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(120, 3))
    >>> Y = np.empty((120, 2), dtype=object)
    >>> Y[:, 0] = np.where(X[:, 0] > 0, "yes", "no")
    >>> Y[:, 1] = np.array(["low", "mid", "high"])[np.digitize(X[:, 1], [-0.5, 0.5])]
    >>> Y[::5, 1] = None  # missing labels
    >>> model = MultiTaskClassifier(hidden_layer_sizes=(16,), max_epochs=5, lr=1e-2,
    ...                             random_state=0).fit(X, Y)
    >>> [c.tolist() for c in model.classes_]
    [['no', 'yes'], ['high', 'low', 'mid']]
    >>> [p.shape for p in model.predict_proba(X[:4])]
    [(4, 2), (4, 3)]
    >>> model.predict(X[:4]).shape
    (4, 2)
    """

    _task_type = "classification"

    def _encode_targets(self, Y, mask):
        n_samples, n_tasks = mask.shape
        sizes = [len(classes) for classes in self._task_classes]
        kinds = ["constant" if k == 1 else "binary" if k == 2 else "multiclass" for k in sizes]
        output_sizes = [1 if k <= 2 else k for k in sizes]
        targets = np.zeros((n_samples, n_tasks), dtype=np.float32)
        np.copyto(targets, Y, where=mask, casting="unsafe")
        return kinds, output_sizes, targets

    def _predict_proba_raw(self, X):
        sizes = [len(classes) for classes in self._task_classes]
        proba = [np.empty((X.shape[0], k)) for k in sizes]
        for rows, out in self._forward(X):
            for t, k in enumerate(sizes):
                proba[t][rows] = _task_proba(out[t], k)
        return proba

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
