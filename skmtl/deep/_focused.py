"""Focused-task deep estimators: trained on every task, judged on one.

:class:`FocusedTaskRegressor` and :class:`FocusedTaskClassifier` reuse the training machinery of
the deep multi-task estimators (hard sharing, the private skorch net, the weightings) and differ
in what they are for: one *focus* task, with the other tasks as auxiliaries that may help it.
``strategy`` picks how the auxiliary tasks are used; ``"rmtl"`` (reinforced multi-task learning)
is a :class:`~skmtl.deep.weighting.Weighting` that reads, every batch, the Gram matrix of the
per-task gradients the net already computes on the shared representation.
"""

from numbers import Integral

import numpy as np
import torch
from sklearn.base import is_classifier
from sklearn.utils import metadata_routing
from sklearn.utils.validation import check_is_fitted
from skorch.helper import predefined_split

from skmtl.base import MultiTaskClassifierMixin, MultiTaskRegressorMixin
from skmtl.deep._estimators import (
    DEFAULTS,
    MultiTaskClassifier,
    MultiTaskRegressor,
    _DeepMultiTaskNetwork,
    _task_proba,
    _weights_history,
)
from skmtl.deep._net import MultiTaskDataset
from skmtl.deep.weighting import Weighting, get_weighting, weighted_sum
from skmtl.metrics import accuracy_score, r2_score
from skmtl.utils._sklearn_compat import Interval, StrOptions
from skmtl.utils.validation import UnknownTaskError, _format_tasks, _hashable, _is_frame

__all__ = ["FocusedTaskClassifier", "FocusedTaskRegressor"]

STRATEGIES = ("single_task", "multi_task", "gradnorm", "lbtw", "finetune", "rmtl")

# The weighting of the strategies that train every task with one of the named weightings.
_STRATEGY_WEIGHTING = {
    "multi_task": "equal",
    "finetune": "equal",  # the pre-training phase
    "gradnorm": "gradnorm",
    "lbtw": "lbtw",
}

# MultiTask* parameters a focused estimator does not have: it always uses hard sharing, joint
# batches (rmtl needs the focus and the auxiliary tasks in the same batch) and its strategy.
_MULTITASK_ONLY = (
    "sharing",
    "soft_penalty",
    "conditioning",
    "embedding_dim",
    "weighting",
    "task_weights",
    "task_sampling",
    "unknown_task",
)


# --------------------------------------------------------------------------------------------
# Resolution of focus_task and policies against the tasks seen in fit
# --------------------------------------------------------------------------------------------


def _is_int(value):
    return isinstance(value, (Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def _resolve_focus(focus_task, tasks):
    """Position in ``tasks`` of the focus task: a label first, else (see below) a position.

    An integer that is not a label is a position only when no task label is an integer, so
    that an integer task id (a school number, say) is never mistaken for a position.
    """
    n_tasks = len(tasks)
    if focus_task is None:
        if n_tasks == 1:
            return 0
        raise ValueError(
            f"focus_task=None, but the target has {n_tasks} tasks ({_format_tasks(tasks)}); "
            "set focus_task to one of them."
        )
    try:
        lookup = {_hashable(task): t for t, task in enumerate(tasks)}
        found = lookup.get(_hashable(focus_task))
    except TypeError:  # unhashable
        found = None
    if found is not None:
        return found
    integer_labels = any(_is_int(task) for task in tasks)
    if _is_int(focus_task) and not integer_labels and 0 <= focus_task < n_tasks:
        return int(focus_task)
    if _is_int(focus_task) and integer_labels:
        why = "task labels are integers, so an integer focus_task is a label, not a position"
    else:
        why = f"nor a position 0..{n_tasks - 1}" if _is_int(focus_task) else "not a task label"
    raise UnknownTaskError(
        f"focus_task={focus_task!r} is not a task seen in fit ({why}). "
        f"Known tasks: {_format_tasks(tasks)}."
    )


def _policy_matrix(policies, tasks, focus):
    """The candidate policies as a ``(n_policies, n_aux)`` array (auxiliary tasks in order)."""
    aux = [t for t in range(len(tasks)) if t != focus]
    n_aux = len(aux)
    if policies is None:
        rows = list(np.eye(n_aux))
        if n_aux > 1:
            rows.append(np.ones(n_aux))
        return np.array(rows, dtype=np.float64).reshape(len(rows), n_aux)
    if len(policies) == 0:
        raise ValueError("policies is an empty list; pass None for the default policies.")
    position = {_hashable(tasks[t]): a for a, t in enumerate(aux)}
    matrix = np.zeros((len(policies), n_aux))
    for i, policy in enumerate(policies):
        if isinstance(policy, dict):
            for task, weight in policy.items():
                key = _hashable(task)
                if key not in position:
                    what = "the focus task" if key == _hashable(tasks[focus]) else "not a task"
                    raise ValueError(
                        f"policies[{i}] weights task {task!r}, which is {what}; a policy "
                        f"weights auxiliary tasks only: {_format_tasks(tasks[aux])}."
                    )
                matrix[i, position[key]] = _policy_weight(weight, i)
        else:
            row = np.asarray(policy)
            if row.shape != (n_aux,):
                raise ValueError(
                    f"policies[{i}] has shape {row.shape}; an array policy holds one weight per "
                    f"auxiliary task, in aux_tasks_ order: shape ({n_aux},)."
                )
            matrix[i] = [_policy_weight(weight, i) for weight in row]
        if not matrix[i].any():
            raise ValueError(f"policies[{i}] has no positive weight.")
    return matrix


def _policy_weight(weight, i):
    try:
        value = float(weight)
    except (TypeError, ValueError):
        value = np.nan
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"policies[{i}] has weight {weight!r}; weights must be finite and >= 0.")
    return value


# --------------------------------------------------------------------------------------------
# Reinforced multi-task learning as a weighting
# --------------------------------------------------------------------------------------------


class _RMTLWeighting(Weighting):
    """Each batch, the auxiliary policy whose gradient points most along the focus gradient.

    With ``G`` the Gram matrix of the per-task gradients ``g_t`` on the shared representation
    (:meth:`observe_task_gram`), ``f`` the focus task and ``A`` the auxiliary tasks, for every
    policy ``pi`` (a row of ``policies``, weights over ``A``)::

        g_pi . g_f = pi @ G[A, f]        ||g_pi||^2 = pi @ G[A][:, A] @ pi
        r(pi)      = max(cos(g_pi, g_f), 0)       (0 when either gradient is 0)
        pi*        = argmax_pi r(pi)              (the first one if tied)
        total      = L_f + r(pi*) * sum_{a in A observed} pi*_a L_a

    A batch without a focus label has no focus gradient to align with: it keeps the weights
    of the last batch that had one (the auxiliary weights are 0 until then).

    Parameters
    ----------
    focus : int
        Position of the focus task.
    policies : ndarray of shape (n_policies, n_tasks - 1)
        Non-negative weights over the auxiliary tasks (in task order, the focus left out).

    Attributes
    ----------
    weights_ : torch.Tensor of shape (n_tasks,)
        Mean over the last epoch's batches of the weights used (1 for the focus task).
    batch_weights_ : torch.Tensor of shape (n_tasks,)
        The weights of the last batch.
    last_policy_, last_reward_ : torch.Tensor of shape ()
        Index of the policy chosen at the last batch with a focus label (-1 before the first),
        and its reward.
    """

    requires_task_gram = True

    def __init__(self, focus, policies):
        self.focus = focus
        self.policies = policies

    def reset(self, n_tasks, *, n_observed, task_type, device):
        params = super().reset(n_tasks, n_observed=n_observed, task_type=task_type, device=device)
        focus = self.focus
        if not _is_int(focus) or not 0 <= focus < n_tasks:
            raise ValueError(f"_RMTLWeighting: focus must be a task position, got {focus!r}.")
        self._aux = torch.tensor(
            [t for t in range(n_tasks) if t != focus], dtype=torch.long, device=self.device_
        )
        policies = torch.as_tensor(np.asarray(self.policies), dtype=torch.float32)
        self._policies = policies.reshape(-1, n_tasks - 1).to(self.device_)
        self.batch_weights_ = torch.zeros(n_tasks, device=self.device_)
        self.batch_weights_[focus] = 1.0
        self.weights_ = self.batch_weights_.clone()
        self.last_policy_ = torch.tensor(-1, device=self.device_)
        self.last_reward_ = torch.tensor(0.0, device=self.device_)
        self._sum = torch.zeros(n_tasks, device=self.device_)
        self._count = 0
        return params

    def observe_task_gram(self, gram, observed):
        """Choose this batch's policy from the Gram matrix of the per-task gradients."""
        if self._policies.shape[0] == 0:
            return
        focus, aux, policies = self.focus, self._aux, self._policies
        gram = gram.detach().to(device=policies.device, dtype=policies.dtype)
        to_aux = gram.index_select(0, aux)  # (n_aux, T)
        dots = policies @ to_aux[:, focus]  # g_pi . g_f
        squares = ((policies @ to_aux.index_select(1, aux)) * policies).sum(1)  # ||g_pi||^2
        norms = (squares.clamp_min(0) * gram[focus, focus].clamp_min(0)).sqrt()
        cosines = torch.where(norms > 0, dots / norms.clamp_min(1e-30), torch.zeros_like(dots))
        rewards = cosines.clamp(0.0, 1.0)
        best = torch.argmax(rewards)  # the first maximum
        weights = torch.zeros_like(self.batch_weights_)
        weights[focus] = 1.0
        weights = weights.index_copy(0, aux, rewards[best] * policies[best])
        has_focus = torch.as_tensor(observed, device=weights.device)[focus]
        self.batch_weights_ = torch.where(has_focus, weights, self.batch_weights_)
        self.last_policy_ = torch.where(has_focus, best, self.last_policy_)
        self.last_reward_ = torch.where(has_focus, rewards[best], self.last_reward_)

    def combine(self, losses, observed):
        observed = self._check_batch(losses, observed)
        weights = self.batch_weights_.to(device=losses.device, dtype=losses.dtype)
        self._sum = self._sum + self.batch_weights_
        self._count += 1
        return weighted_sum(weights, losses, observed)

    def on_epoch_end(self, epoch_losses):
        if self._count:
            self.weights_ = self._sum / self._count
        self._sum = torch.zeros_like(self._sum)
        self._count = 0

    def current_weights(self):
        """Mean weights over the last epoch's batches."""
        return self.weights_.to("cpu", torch.float64).numpy()


# --------------------------------------------------------------------------------------------
# The estimators
# --------------------------------------------------------------------------------------------


class _FocusedTaskMixin:
    """Predictions and score of the focus task only (left of the MultiTask*Mixin)."""

    # predict speaks of the focus task only: it takes no task_ids
    __metadata_request__predict = {"task_ids": metadata_routing.UNUSED}
    __metadata_request__predict_proba = {"task_ids": metadata_routing.UNUSED}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = False  # fits on many tasks, predicts one
        if tags.classifier_tags is not None:
            tags.classifier_tags.multi_label = False
        return tags

    def predict(self, X):
        """Predict the focus task.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            The focus task's predictions: float64 values (regressor) or labels from
            ``classes_`` (classifier).
        """
        check_is_fitted(self)
        return self._predict_focus(self._validate_X(X, reset=False))

    def score(self, X, y, *, task_ids=None, sample_weight=None):
        """R^2 (regressor) or accuracy (classifier) on the focus task's observed labels.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Test samples.
        y : array-like of shape (n_samples,) or (n_samples, n_tasks)
            A wide ``Y`` (its focus column is used; a DataFrame's column named like the focus
            task), long-format labels with ``task_ids`` (the focus task's rows are used), or
            the focus task's labels (1-D, without ``task_ids``; NaN / None marks a missing
            label when the estimator was fitted on a 2-D or long target).
        task_ids : array-like of shape (n_samples,), default=None
            The task of each row, for long-format ``y``. Required when the estimator was
            fitted on long data and ``y`` is 1-D.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights.

        Returns
        -------
        score : float
        """
        check_is_fitted(self)
        self._check_score_target(y, task_ids)
        X = self._validate_X(X, reset=False)
        y_focus, rows = self._focus_labels(y, task_ids, X.shape[0])
        if rows is not None:
            X = X[rows]
            if sample_weight is not None:
                sample_weight = np.asarray(sample_weight)[rows]
        metric = accuracy_score if is_classifier(self) else r2_score
        pred = self._predict_focus(X)
        if self._layout == "1d":
            return metric(y_focus, pred, sample_weight=sample_weight)
        # one column: the masked metric leaves the missing labels out
        return metric(y_focus[:, None], pred[:, None], sample_weight=sample_weight)

    def _focus_labels(self, y, task_ids, n_samples):
        """The focus task's labels in ``y``, and the rows of X they belong to (None: all)."""
        index = self._task_index(task_ids, n_samples)  # raises for a 1-D fit or unknown tasks
        if self._layout == "1d":
            return y, None
        if index is not None:
            y = np.asarray(y, dtype=object if is_classifier(self) else None)
            if y.ndim != 1:
                raise ValueError(
                    f"With task_ids, y must be 1-D (long format); got shape {y.shape}."
                )
            rows = np.flatnonzero(index == self.focus_index_)
            return y[rows], rows
        focus = self.tasks_[self.focus_index_]
        if _is_frame(y):
            if focus not in y.columns:
                raise ValueError(
                    f"y has no column for the focus task {focus!r}; columns: "
                    f"{_format_tasks(list(y.columns))}."
                )
            return y[focus].to_numpy(), None
        y = np.asarray(y)
        if y.ndim == 2:
            if y.shape[1] != self.n_tasks_:
                raise ValueError(
                    f"y has {y.shape[1]} columns but the estimator was fitted on "
                    f"{self.n_tasks_} tasks; pass the wide Y or the focus task's labels (1-D)."
                )
            return y[:, self.focus_index_], None
        return y, None


class _FocusedTaskNetwork(_DeepMultiTaskNetwork):
    """Parameters and fit of the focused-task estimators (hard sharing, one focus task)."""

    _parameter_constraints = {
        "focus_task": "no_validation",
        "strategy": [StrOptions(set(STRATEGIES))],
        **{
            name: constraint
            for name, constraint in _DeepMultiTaskNetwork._parameter_constraints.items()
            if name not in _MULTITASK_ONLY
        },
        "finetune_epochs": [Interval(Integral, 0, None, closed="left")],
        "freeze_trunk": ["boolean"],
        "policies": [None, list],
    }

    def __init__(
        self,
        *,
        focus_task=None,
        strategy="rmtl",
        hidden_layer_sizes=DEFAULTS["hidden_layer_sizes"],
        head_layer_sizes=(),
        activation="relu",
        dropout=DEFAULTS["dropout"],
        module=None,
        module_params=None,
        gradnorm_alpha=1.5,
        lbtw_alpha=0.5,
        finetune_epochs=10,
        freeze_trunk=False,
        policies=None,
        max_epochs=DEFAULTS["max_epochs"],
        batch_size=DEFAULTS["batch_size"],
        lr=DEFAULTS["lr"],
        weight_decay=DEFAULTS["weight_decay"],
        optimizer=DEFAULTS["optimizer"],
        early_stopping=True,
        validation_fraction=None,
        n_iter_no_change=DEFAULTS["n_iter_no_change"],
        callbacks=None,
        device="cpu",
        random_state=None,
        verbose=0,
    ):
        self.focus_task = focus_task
        self.strategy = strategy
        self.hidden_layer_sizes = hidden_layer_sizes
        self.head_layer_sizes = head_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.module = module
        self.module_params = module_params
        self.gradnorm_alpha = gradnorm_alpha
        self.lbtw_alpha = lbtw_alpha
        self.finetune_epochs = finetune_epochs
        self.freeze_trunk = freeze_trunk
        self.policies = policies
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.callbacks = callbacks
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # -- fit ------------------------------------------------------------------------------------
    def _fit_multitask(self, X, Y, mask):
        tasks, n_tasks = self.tasks_, self.n_tasks_
        focus = self.focus_index_ = _resolve_focus(self.focus_task, tasks)
        aux = np.array([t for t in range(n_tasks) if t != focus], dtype=np.intp)
        self.aux_tasks_ = tasks[aux]
        single = self.strategy == "single_task" or n_tasks == 1
        rmtl = self.strategy == "rmtl" and not single
        self.policies_ = _policy_matrix(self.policies, tasks, focus) if rmtl else None
        if is_classifier(self):
            self._set_task_classes()
        kinds, output_sizes, targets = self._encode_targets(Y, mask)
        if single:  # the focus task's labelled rows, one head
            rows = np.flatnonzero(mask[:, focus])
            if rows.shape[0] < X.shape[0]:
                X, targets, mask = X[rows], targets[rows], mask[rows]
            net = self._train_net(
                X, targets[:, [focus]], mask[:, [focus]], [kinds[focus]], [output_sizes[focus]],
                tasks=tasks[[focus]], weighting=get_weighting("equal"),
            )
            self._head = 0
            n_iter, focus_weights = _weights_history(net, 1)
            weights = np.zeros((n_iter, n_tasks))
            weights[:, focus] = focus_weights[:, 0]
            affinity = np.full((n_tasks, n_tasks), np.nan)
            np.fill_diagonal(affinity, 1.0)
        else:
            if rmtl:
                weighting = _RMTLWeighting(focus, self.policies_)
            else:
                weighting = self._named_weighting(_STRATEGY_WEIGHTING[self.strategy])
            finetune = self._finetune if self.strategy == "finetune" else None
            net = self._train_net(
                X, targets, mask, kinds, output_sizes, tasks=tasks, weighting=weighting,
                after_fit=finetune,
            )
            self._head = focus
            n_iter, weights = _weights_history(net, n_tasks)
            affinity = net.gradient_affinity()
        self.net_ = net
        self.n_iter_ = n_iter
        self.task_weights_history_ = weights
        self.aux_weights_history_ = weights[:, aux]
        self.gradient_affinity_ = affinity
        return self

    def _sharing(self):
        return "hard", {}

    def _finetune(self, net, train, valid):
        """Second phase of "finetune": the focus task alone, optionally with a frozen trunk."""
        focus, n_tasks = self.focus_index_, self.n_tasks_
        focus_only = np.zeros_like(train.mask)
        focus_only[:, focus] = train.mask[:, focus]
        rows = train.rows_[focus_only[train.rows_, focus]]
        if rows.shape[0] == 0:
            raise ValueError(
                f"The focus task {_hashable(self.tasks_[focus])!r} has no label among the "
                "training rows left by validation_fraction; nothing to fine-tune on."
            )
        only_focus = np.zeros(n_tasks)
        only_focus[focus] = 1.0
        weighting = get_weighting("fixed", task_weights=only_focus)
        weighting.reset(
            n_tasks, n_observed=focus_only[rows].sum(0), task_type=self._task_type,
            device=net.device,
        )
        net.weighting_ = weighting
        if self.freeze_trunk:
            for param in net.module_.trunk.parameters():
                param.requires_grad_(False)
                param.grad = None  # the optimizer skips parameters without a gradient
        if valid is not None:
            net.train_split = predefined_split(
                MultiTaskDataset(valid.X, valid.targets, focus_only, valid.rows_)
            )
        if self.finetune_epochs:
            net.partial_fit(
                MultiTaskDataset(train.X, train.targets, focus_only, rows),
                epochs=self.finetune_epochs,
            )

    def _focus_outputs(self, X):
        """Yield ``(rows, out)``: the focus head's output ``(B, K)`` for each batch."""
        for rows, out in self._forward(X):
            yield rows, out[self._head]


class FocusedTaskRegressor(_FocusedTaskMixin, MultiTaskRegressorMixin, _FocusedTaskNetwork):
    """Deep regressor for one focus task, trained with auxiliary tasks.

    A hard-sharing network (a trunk, then one head per task) is trained on every task of a
    wide or long target, as :class:`MultiTaskRegressor` with ``sharing="hard"`` would be, but
    the estimator serves one task, ``focus_task``: :meth:`predict` returns its predictions
    ``(n_samples,)`` and :meth:`score` its R^2. The other tasks are *auxiliary*: ``strategy``
    decides how they are used. With ``L_t`` task ``t``'s mean squared error on its observed
    labels in a batch (on standardised targets), ``f`` the focus task and ``A`` the auxiliary
    tasks observed in the batch, the training loss is:

    - ``"single_task"``: ``L_f``, on the rows where the focus task is labelled, with one head
      (the deep single-task reference; equal to :class:`MultiTaskRegressor` fitted on those
      rows of the focus task alone, with the same parameters and ``random_state``);
    - ``"multi_task"``: ``L_f + sum_{a in A} L_a`` (equal weights);
    - ``"gradnorm"`` / ``"lbtw"``: the task weights of GradNorm (``gradnorm_alpha``) or
      loss-balanced weighting (``lbtw_alpha``), see :mod:`skmtl.deep.weighting`;
    - ``"finetune"``: ``L_f + sum_{a in A} L_a`` for ``max_epochs`` epochs, then ``L_f`` alone
      for ``finetune_epochs`` more, on the focus task's labelled rows, with the trunk frozen if
      ``freeze_trunk``;
    - ``"rmtl"`` (reinforced multi-task learning): ``L_f + r(pi*) * sum_{a in A} pi*_a L_a``,
      where, each batch, ``pi*`` is the candidate policy (a weighting of the auxiliary tasks)
      whose weighted auxiliary gradient is best aligned with the focus task's gradient::

          g_t     = d L_t / d R   (R the trunk's output, the last shared representation)
          g_pi    = sum_a pi_a g_a
          r(pi)   = max(cos(g_pi, g_f), 0)
          pi*     = argmax_pi r(pi)   (the first candidate if tied)

      The cosines come from the Gram matrix ``G = [<g_s, g_t>]`` (``g_pi . g_f = pi @ G[A, f]``,
      ``||g_pi||^2 = pi @ G[A, A] @ pi``), which costs no backward pass per task (see Notes
      of :class:`MultiTaskRegressor`). A batch without a focus label keeps the weights of the
      last batch that had one (0 for the auxiliary tasks before the first such batch).

    With a single task (1-D ``y``, or a one-column ``Y``) there is nothing auxiliary: every
    strategy is single-task learning on it for ``max_epochs`` (``finetune_epochs`` unused),
    and the estimator behaves like a scikit-learn regressor.

    Parameters
    ----------
    focus_task : object, default=None
        The task to serve: a task label (an entry of ``tasks_``: a column name of a DataFrame,
        a task id of long data, a column position of an array) or, when no task label is an
        integer, an integer position in ``tasks_``. Labels are looked up first, as pandas'
        ``.loc`` does; an integer that is not a label is a position only if the labels are
        not integers, so an integer task id is never taken for a position. None is allowed
        for a single task only. An unknown focus task raises a ValueError
        (:class:`~skmtl.UnknownTaskError`) at fit that names the known tasks.
    strategy : {"rmtl", "single_task", "multi_task", "gradnorm", "lbtw", "finetune"}, \
            default="rmtl"
        How the auxiliary tasks are used (see above).
    hidden_layer_sizes : array-like of int or int, default=(512,)
        Hidden layers of the shared trunk. Ignored when ``module`` is given.
    head_layer_sizes : array-like of int or int, default=()
        Hidden layers of each task head before its output layer.
    activation : {"relu", "gelu", "tanh", "logistic", "identity"}, default="relu"
        Activation after every hidden layer.
    dropout : float, default=0.5
        Dropout probability after every hidden activation, in ``[0, 1)``.
    module : torch.nn.Module subclass, default=None
        A class to use as the trunk, built as ``module(**module_params)`` inside ``fit``.
    module_params : dict, default=None
        Keyword arguments of ``module``.
    gradnorm_alpha : float, default=1.5
        GradNorm's asymmetry; used by ``strategy="gradnorm"`` only.
    lbtw_alpha : float, default=0.5
        Loss-balanced weighting's exponent; used by ``strategy="lbtw"`` only.
    finetune_epochs : int, default=10
        Epochs of the fine-tuning phase of ``strategy="finetune"`` (after ``max_epochs`` of
        pre-training on all tasks); 0 makes it ``"multi_task"``.
    freeze_trunk : bool, default=False
        Freeze the trunk's parameters during the fine-tuning phase (only the heads train);
        used by ``strategy="finetune"`` only. Buffers of a custom trunk (batch-norm running
        statistics) still update.
    policies : list of dict or list of array-like, default=None
        Candidate policies of ``strategy="rmtl"``. None: each auxiliary task alone and, with
        two or more auxiliary tasks, all of them together, every task in a policy with weight
        1 (so the "all" policy trains ``L_f + r * sum_a L_a``, equal weighting damped by the
        reward). Otherwise a list whose entries are dicts ``{task label:
        weight}`` (auxiliary tasks left out weigh 0) or arrays of shape ``(n_aux,)`` in
        ``aux_tasks_`` order; weights are non-negative, used as given, and each policy needs
        a positive one.
    max_epochs : int, default=200
        Maximum number of passes over the training data (of pre-training for ``"finetune"``;
        fewer with early stopping).
    batch_size : int, default=128
        Rows per batch. Every batch is drawn from all rows, so it holds labels of every task.
    lr : float, default=3e-4
        Learning rate of the optimizer (both phases of ``"finetune"``).
    weight_decay : float, default=0.01
        Weight decay of the weight matrices (trunk, towers, heads, a user ``module``: the
        parameters named ``*weight``; never biases, task embeddings, cross-stitch or sluice
        units, or a weighting's parameters), given to the optimizer as that parameter group's
        ``weight_decay``. With ``"adamw"`` it is decoupled: each step multiplies those weights
        by ``1 - lr * weight_decay``. With ``"adam"`` and ``"sgd"`` it is an L2 penalty
        ``weight_decay / 2 * ||W||^2`` in the loss. 0 disables it.
    optimizer : {"adamw", "adam", "sgd"} or callable, default="adamw"
        The optimizer: a name, or a :class:`torch.optim.Optimizer` class. The fine-tuning
        phase of ``"finetune"`` continues with the same optimizer and its state.
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the rows (a split stratified on every task and
        class, see the user guide), stop when the validation loss (the mean over tasks of each
        task's mean loss on its observed validation labels) has not improved by a relative
        1e-4 for ``n_iter_no_change`` epochs, and restore the network of the best epoch
        (skorch's :class:`~skorch.callbacks.EarlyStopping` with ``load_best=True``),
        in each phase of ``"finetune"``; during fine-tuning the validation loss is the
        focus task's.
    validation_fraction : float or None, default=None
        Fraction of the rows held out to compute validation losses each epoch. None: 0.1 with
        early stopping, no validation data without it; 0 for none (not with early stopping).
    n_iter_no_change : int, default=10
        Epochs without improvement of the validation loss before early stopping stops.
    callbacks : list of skorch callbacks, default=None
        Extra skorch callbacks, copied at fit. With ``"finetune"`` they see two trainings
        (``on_train_begin`` / ``on_train_end`` twice).
    device : str, default="cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"``.
    random_state : int, RandomState instance or None, default=None
        Seeds every torch random draw of the fit inside :func:`torch.random.fork_rng`; the
        same integer gives the same model.
    verbose : int, default=0
        0: silent. 1: a progress bar per epoch. 2: also skorch's table of losses.
    standardize_targets : bool, default=True
        Standardise each task's targets on its observed labels for training (predictions are
        mapped back).

    Attributes
    ----------
    focus_index_ : int
        Position of the focus task in ``tasks_``.
    aux_tasks_ : ndarray of shape (n_tasks_ - 1,)
        Labels of the auxiliary tasks, in ``tasks_`` order (the order of the columns of
        ``aux_weights_history_`` and of array policies).
    aux_weights_history_ : ndarray of shape (n_iter_, n_tasks_ - 1)
        Per epoch, the weights of the auxiliary tasks: for ``"rmtl"`` the mean over the
        epoch's batches of ``r(pi*) * pi*``; for the others the weighting's weights at the end
        of the epoch (1 for ``"multi_task"`` and for pre-training epochs, 0 for fine-tuning
        epochs and for ``"single_task"``).
    task_weights_history_ : ndarray of shape (n_iter_, n_tasks_)
        The same for every task, the focus task included (its weight is 1 except with
        ``"gradnorm"`` and ``"lbtw"``).
    policies_ : ndarray of shape (n_policies, n_tasks_ - 1) or None
        The candidate policies of ``"rmtl"`` (None for the other strategies).
    gradient_affinity_ : ndarray of shape (n_tasks_, n_tasks_)
        Mean cosine between the tasks' gradients on the shared representation (see
        :class:`MultiTaskRegressor`); NaN off the diagonal for ``"single_task"``.
    net_ : skorch.NeuralNet
        The trained skorch net; ``net_.history`` holds the per-task losses of every epoch.
    n_iter_ : int
        Number of epochs run (both phases of ``"finetune"``).
    target_mean_, target_scale_ : ndarray of shape (n_tasks_,)
        The per-task standardisation of the targets.
    tasks_ : ndarray of shape (n_tasks_,)
        Task labels.
    n_tasks_ : int
        Number of tasks, the focus task included.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    FocusedTaskClassifier : The classification counterpart.
    MultiTaskRegressor : Serves every task; more sharing strategies and weightings.

    References
    ----------
    S. Liu, Y. Liang and A. Gitter. "Loss-balanced task weighting to reduce negative transfer in
    multi-task learning". AAAI 2019 (student abstract); ``strategy="lbtw"``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.deep import FocusedTaskRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(100, 3))
    >>> Y = np.column_stack([X[:, 0] + X[:, 1], X[:, 0] + 0.9 * X[:, 1], -X[:, 2]])
    >>> model = FocusedTaskRegressor(focus_task=0, strategy="rmtl", hidden_layer_sizes=(16,),
    ...                              max_epochs=5, lr=1e-2, random_state=0).fit(X, Y)
    >>> model.predict(X[:4]).shape
    (4,)
    >>> model.aux_tasks_, model.aux_weights_history_.shape
    (array([1, 2]), (5, 2))
    >>> model.policies_  # each auxiliary task alone, then both together
    array([[1., 0.],
           [0., 1.],
           [1., 1.]])
    """

    _parameter_constraints = {
        **_FocusedTaskNetwork._parameter_constraints,
        "standardize_targets": ["boolean"],
    }
    _task_type = "regression"
    _encode_targets = MultiTaskRegressor._encode_targets

    def __init__(
        self,
        *,
        focus_task=None,
        strategy="rmtl",
        hidden_layer_sizes=DEFAULTS["hidden_layer_sizes"],
        head_layer_sizes=(),
        activation="relu",
        dropout=DEFAULTS["dropout"],
        module=None,
        module_params=None,
        gradnorm_alpha=1.5,
        lbtw_alpha=0.5,
        finetune_epochs=10,
        freeze_trunk=False,
        policies=None,
        max_epochs=DEFAULTS["max_epochs"],
        batch_size=DEFAULTS["batch_size"],
        lr=DEFAULTS["lr"],
        weight_decay=DEFAULTS["weight_decay"],
        optimizer=DEFAULTS["optimizer"],
        early_stopping=True,
        validation_fraction=None,
        n_iter_no_change=DEFAULTS["n_iter_no_change"],
        callbacks=None,
        device="cpu",
        random_state=None,
        verbose=0,
        standardize_targets=True,
    ):
        super().__init__(
            focus_task=focus_task,
            strategy=strategy,
            hidden_layer_sizes=hidden_layer_sizes,
            head_layer_sizes=head_layer_sizes,
            activation=activation,
            dropout=dropout,
            module=module,
            module_params=module_params,
            gradnorm_alpha=gradnorm_alpha,
            lbtw_alpha=lbtw_alpha,
            finetune_epochs=finetune_epochs,
            freeze_trunk=freeze_trunk,
            policies=policies,
            max_epochs=max_epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            optimizer=optimizer,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            callbacks=callbacks,
            device=device,
            random_state=random_state,
            verbose=verbose,
        )
        self.standardize_targets = standardize_targets

    def _predict_focus(self, X):
        focus = self.focus_index_
        pred = np.empty(X.shape[0])
        for rows, out in self._focus_outputs(X):
            pred[rows] = out[:, 0] * self.target_scale_[focus] + self.target_mean_[focus]
        return pred


class FocusedTaskClassifier(_FocusedTaskMixin, MultiTaskClassifierMixin, _FocusedTaskNetwork):
    """Deep classifier for one focus task, trained with auxiliary tasks.

    The classification counterpart of :class:`FocusedTaskRegressor` (whose docstring
    describes the strategies): a hard-sharing network trained on every task of a wide or long
    target, each task with its own classes and loss (binary or multi-class cross-entropy on
    its observed labels), serving the focus task only. :meth:`predict` returns the focus
    task's labels ``(n_samples,)``, :meth:`predict_proba` its class probabilities
    ``(n_samples, n_classes)`` with columns in ``classes_`` order, and :meth:`score` its
    accuracy on its observed labels. With a single task (1-D ``y``) it is a plain
    single-task classifier.

    Parameters
    ----------
    focus_task : object, default=None
        The task to serve: a task label, or an integer position when no task label is an
        integer (labels first; see :class:`FocusedTaskRegressor`). None for a single task
        only.
    strategy : {"rmtl", "single_task", "multi_task", "gradnorm", "lbtw", "finetune"}, \
            default="rmtl"
        How the auxiliary tasks are used (see :class:`FocusedTaskRegressor`).
    hidden_layer_sizes : array-like of int or int, default=(512,)
        Hidden layers of the shared trunk. Ignored when ``module`` is given.
    head_layer_sizes : array-like of int or int, default=()
        Hidden layers of each task head before its output layer.
    activation : {"relu", "gelu", "tanh", "logistic", "identity"}, default="relu"
        Activation after every hidden layer.
    dropout : float, default=0.5
        Dropout probability after every hidden activation, in ``[0, 1)``.
    module : torch.nn.Module subclass, default=None
        A class to use as the trunk, built as ``module(**module_params)`` inside ``fit``.
    module_params : dict, default=None
        Keyword arguments of ``module``.
    gradnorm_alpha : float, default=1.5
        GradNorm's asymmetry; used by ``strategy="gradnorm"`` only.
    lbtw_alpha : float, default=0.5
        Loss-balanced weighting's exponent; used by ``strategy="lbtw"`` only.
    finetune_epochs : int, default=10
        Epochs of the fine-tuning phase of ``strategy="finetune"``.
    freeze_trunk : bool, default=False
        Freeze the trunk during the fine-tuning phase of ``strategy="finetune"``.
    policies : list of dict or list of array-like, default=None
        Candidate policies of ``strategy="rmtl"`` (see :class:`FocusedTaskRegressor`).
    max_epochs : int, default=200
        Maximum number of passes over the training data (of pre-training for ``"finetune"``).
    batch_size : int, default=128
        Rows per batch.
    lr : float, default=3e-4
        Learning rate of the optimizer.
    weight_decay : float, default=0.01
        Weight decay of the weight matrices (see :class:`FocusedTaskRegressor`).
    optimizer : {"adamw", "adam", "sgd"} or callable, default="adamw"
        The optimizer: a name, or a :class:`torch.optim.Optimizer` class.
    early_stopping : bool, default=True
        Stop on a stalled validation loss and restore the best epoch (see
        :class:`FocusedTaskRegressor`).
    validation_fraction : float or None, default=None
        Fraction of the rows held out for validation; None: 0.1 with early stopping, else 0.
    n_iter_no_change : int, default=10
        Patience of early stopping, in epochs.
    callbacks : list of skorch callbacks, default=None
        Extra skorch callbacks, copied at fit.
    device : str, default="cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"``.
    random_state : int, RandomState instance or None, default=None
        Seeds every torch random draw of the fit; the same integer gives the same model.
    verbose : int, default=0
        0: silent. 1: a progress bar per epoch. 2: also skorch's table of losses.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The focus task's classes (the columns of :meth:`predict_proba`).
    task_classes_ : list of ndarray
        The classes of every task, in ``tasks_`` order.
    focus_index_ : int
        Position of the focus task in ``tasks_``.
    aux_tasks_ : ndarray of shape (n_tasks_ - 1,)
        Labels of the auxiliary tasks, in ``tasks_`` order.
    aux_weights_history_ : ndarray of shape (n_iter_, n_tasks_ - 1)
        Per epoch, the weights of the auxiliary tasks (see :class:`FocusedTaskRegressor`).
    task_weights_history_ : ndarray of shape (n_iter_, n_tasks_)
        The same for every task, the focus task included.
    policies_ : ndarray of shape (n_policies, n_tasks_ - 1) or None
        The candidate policies of ``"rmtl"`` (None for the other strategies).
    gradient_affinity_ : ndarray of shape (n_tasks_, n_tasks_)
        Mean cosine between the tasks' gradients on the shared representation.
    net_ : skorch.NeuralNet
        The trained skorch net.
    n_iter_ : int
        Number of epochs run.
    tasks_ : ndarray of shape (n_tasks_,)
        Task labels.
    n_tasks_ : int
        Number of tasks, the focus task included.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    FocusedTaskRegressor : The regression counterpart; its docstring has the training loss.
    MultiTaskClassifier : Serves every task; more sharing strategies and weightings.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.deep import FocusedTaskClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(120, 3))
    >>> Y = np.empty((120, 3), dtype=object)
    >>> Y[:, 0] = np.where(X[:, 0] > 0, "yes", "no")
    >>> Y[:, 1] = np.where(X[:, 0] + 0.1 * X[:, 1] > 0, "up", "down")
    >>> Y[:, 2] = np.array(["low", "mid", "high"])[np.digitize(X[:, 2], [-0.5, 0.5])]
    >>> Y[::3, 0] = None  # the focus task is missing a third of its labels
    >>> model = FocusedTaskClassifier(focus_task=0, strategy="finetune", finetune_epochs=2,
    ...                               hidden_layer_sizes=(16,), max_epochs=3, lr=1e-2,
    ...                               random_state=0).fit(X, Y)
    >>> model.classes_.tolist(), model.predict_proba(X[:4]).shape
    (['no', 'yes'], (4, 2))
    >>> model.n_iter_, model.aux_weights_history_[:, 0].tolist()
    (5, [1.0, 1.0, 1.0, 0.0, 0.0])
    """

    _task_type = "classification"
    _encode_targets = MultiTaskClassifier._encode_targets

    def _set_task_classes(self):
        """Keep every task's classes; ``classes_`` becomes the focus task's."""
        if self._layout == "1d":
            self.task_classes_ = [self.classes_]
        elif isinstance(self.classes_, list):  # set by fit; a refit through the hook keeps them
            self.task_classes_ = self.classes_
        self.classes_ = self.task_classes_[self.focus_index_]

    @property
    def _task_classes(self):
        return self.task_classes_

    def predict_proba(self, X):
        """Class probabilities of the focus task.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns in ``classes_`` order; float64.
        """
        check_is_fitted(self)
        return self._predict_focus_proba(self._validate_X(X, reset=False))

    def _predict_focus_proba(self, X):
        proba = np.empty((X.shape[0], len(self.classes_)))
        for rows, out in self._focus_outputs(X):
            proba[rows] = _task_proba(out, len(self.classes_))
        return proba

    def _predict_focus(self, X):
        return self.classes_[self._predict_focus_proba(X).argmax(axis=1)]
