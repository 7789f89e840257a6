"""Task-loss weightings: how the deep estimators combine the per-task losses into one loss.

The training step hands a weighting, every batch, the vector of per-task losses ``L`` (each task's
mean loss over its observed labels in the batch) and the boolean vector ``observed``; the weighting
returns the scalar training loss. Every weighting here is a weighted **sum** over the tasks observed
in the batch::

    total = sum_{t observed} w_t * L_t

Weights are scaled like equal weighting (all ones): the normalised schemes (inverse frequency,
GradNorm, DWA, LBTW, DRO) keep weights that sum to the number of tasks ``T``, so switching the
weighting does not silently change the effective learning rate. Fixed weights are used as given,
uncertainty weights are learnt and not normalised, and minimax puts weight 1 on a single task.
A task with no label in the batch contributes exactly nothing, neither to the value nor to any
gradient (its loss may even be NaN).

Every weighting is a small scikit-learn estimator (:class:`Weighting` subclasses
:class:`~sklearn.base.BaseEstimator`): its parameters are declared with constraints, an estimator's
``weighting__alpha`` is searchable, and an instance given to an estimator is cloned and validated at
fit. A name (``"gradnorm"``) resolves, through :func:`get_weighting`, to the weighting of that name
with its default parameters; a user passes their own scheme, or a named one with other parameters,
as an instance. :class:`RMTLWeighting` weighs auxiliary tasks for one focus task.
"""

import copy
import inspect
import math
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator

from skmtl.deep._task_gradients import GramGradients
from skmtl.utils._sklearn_compat import Interval, StrOptions

__all__ = [
    "WEIGHTINGS",
    "Weighting",
    "EqualWeighting",
    "FixedWeighting",
    "InverseFrequencyWeighting",
    "UncertaintyWeighting",
    "GradNormWeighting",
    "DWAWeighting",
    "LBTWWeighting",
    "MinimaxWeighting",
    "DROWeighting",
    "RMTLWeighting",
    "get_weighting",
    "weighted_sum",
]

WEIGHTINGS = (
    "equal",
    "fixed",
    "inverse_frequency",
    "uncertainty",
    "gradnorm",
    "dwa",
    "lbtw",
    "minimax",
    "dro",
)
"""Names accepted by :func:`get_weighting` (and by the estimators' ``weighting`` parameter)."""

TASK_TYPES = ("regression", "classification")

GRADNORM_MIN_WEIGHT = 1e-4
"""Lower bound GradNorm clamps its weights to before renormalising them."""

_ADAM_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8


# --------------------------------------------------------------------------------------------------
# helpers


def weighted_sum(weights, losses, observed):
    """Weighted sum of the observed task losses, in which unobserved tasks contribute nothing.

    ::

        total = sum_{t : observed_t} weights_t * losses_t

    Unlike ``(weights * losses * observed).sum()``, an unobserved task adds exactly zero to the
    value and to the gradient with respect to ``losses`` and ``weights``, even when its loss or its
    weight is NaN or infinite. Use it in the ``combine`` of a custom :class:`Weighting`.

    Parameters
    ----------
    weights : torch.Tensor of shape (n_tasks,)
        Task weights, on the device of ``losses``. Detach them unless the weighting's own
        parameters should receive gradients.
    losses : torch.Tensor of shape (n_tasks,)
        Per-task losses.
    observed : torch.Tensor of shape (n_tasks,), dtype bool
        Which tasks have at least one label in the batch.

    Returns
    -------
    total : torch.Tensor of shape ()
        The combined loss.

    Examples
    --------
    >>> import torch
    >>> from skmtl.deep.weighting import weighted_sum
    >>> losses = torch.tensor([1.0, float("nan"), 3.0], requires_grad=True)
    >>> weights, observed = torch.tensor([2.0, 1.0, 0.5]), torch.tensor([True, False, True])
    >>> total = weighted_sum(weights, losses, observed)
    >>> total
    tensor(3.5000, grad_fn=<SumBackward0>)
    >>> torch.autograd.grad(total, losses)[0]
    tensor([2.0000, 0.0000, 0.5000])
    """
    zero = losses.new_zeros(())
    clean = torch.where(observed, losses, zero)
    return torch.where(observed, weights * clean, zero).sum()


def _check_real(value, name, owner, *, low, low_inclusive):
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise TypeError(f"{owner}: {name} must be a finite real number, got {value!r}.")
    if value < low or (value == low and not low_inclusive):
        bound = ">=" if low_inclusive else ">"
        raise ValueError(f"{owner}: {name} must be {bound} {low}, got {value!r}.")
    return float(value)


def _record_initial(initial, losses, observed):
    """Set the reference loss L_t(0) of every task seen for the first time with a usable loss."""
    new = observed & torch.isnan(initial) & torch.isfinite(losses) & (losses > 0)
    return torch.where(new, losses, initial)


def _loss_ratio(initial, losses, observed):
    """L_t / L_t(0) for observed tasks that have a reference loss; 1 elsewhere."""
    known = observed & ~torch.isnan(initial)
    return torch.where(known, (losses / initial).clamp_min(0), torch.ones_like(losses))


def _init_params(cls):
    """Names of the constructor parameters of a class (none if it keeps object's __init__)."""
    if cls.__init__ is object.__init__:
        return []
    return [
        name
        for name, param in list(inspect.signature(cls.__init__).parameters.items())[1:]
        if param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
    ]


def _state_on(tensor, like):
    return tensor if tensor.device == like.device else tensor.to(like.device)


# --------------------------------------------------------------------------------------------------
# base class


class Weighting(BaseEstimator):
    """Base class of the task-loss weightings; subclass it to write your own.

    A weighting is a small scikit-learn estimator: its ``__init__`` only stores its parameters,
    declared with their constraints in ``_parameter_constraints``, so that ``get_params`` /
    ``set_params`` and :func:`~sklearn.base.clone` work and an estimator's
    ``weighting__<param>`` can be grid-searched. Everything a fit changes lives in attributes
    ending with ``_``, set by :meth:`reset`.

    The deep estimators call the methods of a weighting in this order::

        reset(n_tasks, n_observed=..., task_type=..., device=...)   # once, at the start of fit
        for each epoch:
            for each batch:
                observe_task_gradients(grads, observed) # only if requires_task_gram is True
                total = combine(losses, observed)                      # the loss to minimise
                total.backward()
                after_backward(losses, observed, grad_norms)
            on_epoch_end(epoch_losses)
            current_weights()                                          # recorded per epoch

    This base class is equal weighting driven by the array ``weights_`` (set to ones by
    :meth:`reset`): its :meth:`combine` returns ``sum_{t observed} weights_[t] * L_t`` and
    :meth:`current_weights` returns ``weights_``. A subclass that only changes ``weights_`` (in
    ``reset``, ``after_backward`` or ``on_epoch_end``) therefore needs no ``combine`` of its own.
    A subclass that overrides ``combine`` must keep its rule: a task with ``observed=False``
    contributes nothing (use :func:`weighted_sum`), and it should override ``current_weights``
    too. An overriding ``reset`` must call ``super().reset(...)``.

    The estimators :func:`~sklearn.base.clone` the weighting they are given and validate the
    clone's parameters at fit, so its state lives in the fitted copy (``net_.weighting_``) and
    the instance passed as a parameter is never modified.

    Attributes
    ----------
    requires_grad_norms : bool
        Class attribute. True if :meth:`after_backward` needs the per-task gradient norms; the
        training step then computes them (at some extra cost) and passes them in.
    requires_task_gram : bool
        Class attribute. True if the weighting needs, before each :meth:`combine`, the Gram
        matrix of the batch's per-task gradients (:meth:`observe_task_gram`).
    n_tasks_ : int
        Number of tasks, set by :meth:`reset`.
    n_observed_ : ndarray of shape (n_tasks,)
        Number of observed labels of each task in the training set, set by :meth:`reset`.
    task_type_ : {"regression", "classification"}
        Set by :meth:`reset`.
    device_ : torch.device
        Device of the network, set by :meth:`reset`.
    weights_ : ndarray of shape (n_tasks,)
        The weights used by the base :meth:`combine`.

    See Also
    --------
    get_weighting : Resolve a name or pass a weighting instance through.

    Examples
    --------
    A weighting that trusts the first task fully and ramps the others up from ``start``,
    doubling their weight after every epoch:

    >>> import numpy as np
    >>> import torch
    >>> from skmtl.deep.weighting import Weighting, get_weighting
    >>> class RampUpAuxiliary(Weighting):
    ...     def __init__(self, start=0.25):
    ...         self.start = start
    ...
    ...     def reset(self, n_tasks, *, n_observed, task_type, device):
    ...         params = super().reset(
    ...             n_tasks, n_observed=n_observed, task_type=task_type, device=device
    ...         )
    ...         self.weights_ = np.full(n_tasks, self.start)
    ...         self.weights_[0] = 1.0
    ...         return params
    ...
    ...     def on_epoch_end(self, epoch_losses):
    ...         self.weights_[1:] = np.minimum(2.0 * self.weights_[1:], 1.0)
    >>> weighting = get_weighting(RampUpAuxiliary(start=0.25))
    >>> weighting.reset(3, n_observed=np.array([50, 20, 30]), task_type="regression",
    ...                 device="cpu")
    []
    >>> losses = torch.tensor([2.0, 1.0, 4.0])
    >>> weighting.combine(losses, torch.tensor([True, False, True]))  # 2 + 0.25 * 4
    tensor(3.)
    >>> weighting.on_epoch_end(np.array([2.0, 1.0, 4.0]))
    >>> weighting.current_weights()
    array([1. , 0.5, 0.5])
    """

    requires_grad_norms = False
    requires_task_gram = False
    _parameter_constraints: dict = {}

    def reset(self, n_tasks, *, n_observed, task_type, device):
        """Prepare for a new fit; called once at its start, before the first batch.

        Parameters
        ----------
        n_tasks : int
            Number of tasks ``T``.
        n_observed : array-like of shape (n_tasks,)
            Number of observed labels of each task in the training set.
        task_type : {"regression", "classification"}
            Kind of the tasks.
        device : str or torch.device
            Device of the network; learnable parameters are created there.

        Returns
        -------
        params : list of torch.nn.Parameter
            Parameters of the weighting that the network's optimiser trains together with the
            network (the log-variances of :class:`UncertaintyWeighting`); empty for most.
        """
        owner = type(self).__name__
        if isinstance(n_tasks, bool) or not isinstance(n_tasks, Integral) or n_tasks < 1:
            raise ValueError(f"{owner}: n_tasks must be a positive integer, got {n_tasks!r}.")
        n_tasks = int(n_tasks)
        counts = np.asarray(n_observed, dtype=np.float64)
        if counts.shape != (n_tasks,):
            raise ValueError(
                f"{owner}: n_observed must have shape ({n_tasks},), got {counts.shape}."
            )
        if not np.all(np.isfinite(counts)) or np.any(counts < 0):
            raise ValueError(f"{owner}: n_observed must hold non-negative counts.")
        if task_type not in TASK_TYPES:
            raise ValueError(f"{owner}: task_type must be one of {TASK_TYPES}, got {task_type!r}.")
        self.n_tasks_ = n_tasks
        self.n_observed_ = counts
        self.task_type_ = task_type
        self.device_ = torch.device(device)
        self.weights_ = np.ones(n_tasks)
        return []

    def combine(self, losses, observed):
        """Combine the batch's per-task losses into the training loss.

        Parameters
        ----------
        losses : torch.Tensor of shape (n_tasks,)
            Each task's mean loss over its observed labels in the batch (any value, typically 0,
            where the task has no label in the batch).
        observed : torch.Tensor of shape (n_tasks,), dtype bool
            Which tasks have at least one label in the batch.

        Returns
        -------
        total : torch.Tensor of shape ()
            The loss to minimise, differentiable with respect to ``losses`` and the weighting's
            own parameters. ``d total / d losses[t]`` is the effective weight of task ``t``; it is
            exactly 0 for an unobserved task.
        """
        observed = self._check_batch(losses, observed)
        weights = torch.as_tensor(self.weights_, dtype=losses.dtype, device=losses.device)
        return weighted_sum(weights, losses, observed)

    def gradient_space(self):
        """Where the per-task gradients this weighting reads are taken.

        Returns
        -------
        space : {"representation", "last_shared_layer", "head_weights"}
            ``"representation"`` (the default): the gradient of each unweighted task loss on the
            representation the heads read. ``"last_shared_layer"``: on the weight of the
            network's last shared ``Linear`` layer (the representation where the network has
            none: the space used is then the fitted weighting's ``gradient_space_``).
            ``"head_weights"``: on each task's own output-layer weight. None of them costs a
            backward pass per task; see :mod:`skmtl.deep._task_gradients`.
        """
        return "representation"

    def observe_task_gradients(self, grads, observed):
        """Receive the batch's per-task gradients before :meth:`combine`.

        Called only when :attr:`requires_task_gram` is True. The default passes their Gram
        matrix to :meth:`observe_task_gram`; override this method instead to read only the
        quantities needed (norms, inner products with one task, norms of combinations), which
        is cheaper than the whole Gram matrix with many tasks.

        Parameters
        ----------
        grads : skmtl.deep._task_gradients.TaskGradients
            The per-task gradients, in the space of :meth:`gradient_space`: ``grads.norms()``,
            ``grads.dots(t)``, ``grads.combination_norms(P)``, ``grads.gram()``.
        observed : torch.Tensor of shape (n_tasks,), dtype bool
            Which tasks have at least one label in the batch.
        """
        self.observe_task_gram(grads.gram(), observed)

    def observe_task_gram(self, gram, observed):
        """Receive the batch's task-gradient Gram matrix before :meth:`combine` (no-op default).

        Called only when :attr:`requires_task_gram` is True (by the default
        :meth:`observe_task_gradients`).

        Parameters
        ----------
        gram : torch.Tensor of shape (n_tasks, n_tasks)
            ``gram[s, t] = <g_s, g_t>``, with ``g_t`` the gradient of the unweighted loss ``L_t``
            in the space of :meth:`gradient_space` (0 for a task without a label in the batch);
            detached, on the network's device. Cosines and norms of any combination of the
            ``g_t`` follow from it without forming the gradients.
        observed : torch.Tensor of shape (n_tasks,), dtype bool
            Which tasks have at least one label in the batch.
        """

    def after_backward(self, losses, observed, grad_norms):
        """Update the weighting after the backward pass of a batch (nothing by default).

        Parameters
        ----------
        losses : torch.Tensor of shape (n_tasks,)
            The losses given to :meth:`combine`.
        observed : torch.Tensor of shape (n_tasks,), dtype bool
            The mask given to :meth:`combine`.
        grad_norms : torch.Tensor of shape (n_tasks,) or None
            Norms of the gradients of the unweighted task losses in the space of
            :meth:`gradient_space`, if :attr:`requires_grad_norms` is True; else None.
        """

    def on_epoch_end(self, epoch_losses):
        """Update the weighting at the end of an epoch (nothing by default).

        Parameters
        ----------
        epoch_losses : ndarray of shape (n_tasks,)
            Mean training loss of each task over the epoch; NaN for a task without labels.
        """

    def current_weights(self):
        """The task weights in force now.

        Returns
        -------
        weights : ndarray of shape (n_tasks,), dtype float64
            A copy; the estimators record it after every epoch in ``task_weights_history_``.
        """
        return np.array(self.weights_, dtype=np.float64)

    def __repr__(self):
        params = [
            f"{name}={getattr(self, name)!r}"
            for name in _init_params(type(self))
            if hasattr(self, name)
        ]
        return f"{type(self).__name__}({', '.join(params)})"

    def _check_batch(self, losses, observed):
        """Validate the inputs of a batch; return ``observed`` as a bool tensor on the device."""
        owner = type(self).__name__
        n_tasks = getattr(self, "n_tasks_", None)
        if n_tasks is None:
            raise RuntimeError(f"{owner}: call reset(...) before combining losses.")
        if not isinstance(losses, torch.Tensor) or not losses.is_floating_point():
            raise TypeError(f"{owner}: losses must be a floating point torch.Tensor.")
        if losses.shape != (n_tasks,):
            raise ValueError(
                f"{owner}: losses must have shape ({n_tasks},), got {tuple(losses.shape)}."
            )
        observed = torch.as_tensor(observed, device=losses.device).to(torch.bool)
        if observed.shape != (n_tasks,):
            raise ValueError(
                f"{owner}: observed must have shape ({n_tasks},), got {tuple(observed.shape)}."
            )
        return observed


# --------------------------------------------------------------------------------------------------
# static weightings


class EqualWeighting(Weighting):
    """Equal weighting: the sum of the observed task losses.

    ::

        total = sum_{t observed} L_t

    Every weight is 1, so the total is a **sum** over tasks, not a mean: it grows with the number
    of tasks observed in the batch, as the loss of a single network with ``T`` outputs does. The
    other weightings are scaled to match (their weights sum to ``T``).

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from skmtl.deep.weighting import EqualWeighting
    >>> weighting = EqualWeighting()
    >>> weighting.reset(2, n_observed=np.array([5, 5]), task_type="regression", device="cpu")
    []
    >>> weighting.combine(torch.tensor([0.5, 2.0]), torch.tensor([True, True]))
    tensor(2.5000)
    """


class FixedWeighting(Weighting):
    """Fixed, user-given task weights.

    ::

        total = sum_{t observed} w_t * L_t

    The weights are used as given, without renormalisation.

    Parameters
    ----------
    task_weights : array-like of shape (n_tasks,)
        One non-negative, finite weight per task, in the order of the estimator's ``tasks_``;
        at least one must be positive. The length is checked against the number of tasks when
        fitting.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from skmtl.deep.weighting import FixedWeighting
    >>> weighting = FixedWeighting([1.0, 0.1])
    >>> weighting.reset(2, n_observed=np.array([5, 5]), task_type="regression", device="cpu")
    []
    >>> weighting.combine(torch.tensor([0.5, 2.0]), torch.tensor([True, True]))
    tensor(0.7000)
    """

    _parameter_constraints = {"task_weights": [None, "array-like"]}

    def __init__(self, task_weights):
        self.task_weights = task_weights

    def reset(self, n_tasks, *, n_observed, task_type, device):
        params = super().reset(n_tasks, n_observed=n_observed, task_type=task_type, device=device)
        if self.task_weights is None:
            raise ValueError(
                "weighting='fixed' needs task_weights: one non-negative weight per task; pass "
                "weighting=FixedWeighting(task_weights=[...])."
            )
        try:
            weights = np.asarray(self.task_weights, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"task_weights must be a sequence of numbers, got {self.task_weights!r}."
            ) from exc
        if weights.ndim != 1 or weights.shape[0] != n_tasks:
            raise ValueError(
                f"task_weights must hold one weight per task: expected {n_tasks}, "
                f"got shape {weights.shape}."
            )
        if not np.all(np.isfinite(weights)):
            raise ValueError(f"task_weights must be finite, got {weights.tolist()}.")
        if np.any(weights < 0):
            raise ValueError(f"task_weights must be non-negative, got {weights.tolist()}.")
        if not np.any(weights > 0):
            raise ValueError("task_weights must have at least one positive weight.")
        self.weights_ = weights
        return params


class InverseFrequencyWeighting(Weighting):
    """Give every observed label the same weight, whatever its task's number of labels.

    With ``n_t`` the number of observed labels of task ``t`` in the training set,
    ``N = sum_s n_s`` and ``K`` the number of tasks with at least one label::

        w_t = K * n_t / N
        total = sum_{t observed} w_t * L_t

    so the weights sum to ``T`` when every task has labels, and a task without labels gets
    weight 0. The weight grows with the task's label count because ``L_t`` is already a *mean*
    over the task's ``n_{t,b}`` labels in the batch ``b``: a label ``i`` of task ``t`` enters the
    total with weight ``w_t / n_{t,b}``. Over the whole training set (one batch holding every
    label) this is::

        sum_t w_t * L_t = (K / N) * sum_{all labels i} loss_i

    the same weight ``K / N`` for every label. With mini-batches, the labels of task ``t`` in a
    batch share ``w_t`` between them, so over an epoch the task's labels receive in total
    ``w_t`` times the number of batches in which the task is observed:

    - a task observed in every batch gets a total proportional to ``n_t``, so the *average*
      weight of its labels is the same as for any other such task;
    - each batch holding the tasks' labels in proportion to ``n_t`` (``n_{t,b} = n_t N_b / N``)
      gives every single label the same weight ``K / N_b``;
    - a rare task that misses some batches loses their share: with about one label per batch
      on average, shuffled batches leave its labels with about 0.65 of the weight of the others'
      (some batches hold two or more of them, which share ``w_t``; others hold none).

    (The name is historical: the per-task mean already weighs a label by ``1 / n_{t,b}``, and
    earlier versions used ``w_t`` proportional to ``1 / n_t`` on top of it, which compensated
    twice: with 1000, 300 and 20 labels the weights were 0.055, 0.18 and 2.76 instead of 2.27,
    0.68 and 0.045.)

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.deep.weighting import InverseFrequencyWeighting
    >>> weighting = InverseFrequencyWeighting()
    >>> weighting.reset(2, n_observed=np.array([10, 30]), task_type="regression", device="cpu")
    []
    >>> weighting.current_weights()
    array([0.5, 1.5])
    """

    def reset(self, n_tasks, *, n_observed, task_type, device):
        params = super().reset(n_tasks, n_observed=n_observed, task_type=task_type, device=device)
        labelled = self.n_observed_ > 0
        if not labelled.any():
            raise ValueError("InverseFrequencyWeighting: no task has an observed label.")
        self.weights_ = labelled.sum() * self.n_observed_ / self.n_observed_.sum()
        return params


# --------------------------------------------------------------------------------------------------
# learned / adaptive weightings


class UncertaintyWeighting(Weighting):
    """Homoscedastic-uncertainty weighting with learned log-variances (Kendall et al., 2018).

    Each task has a learnable ``s_t = log(sigma_t^2)``, initialised to 0 and trained by the
    network's optimiser together with the network (they are returned by :meth:`reset`)::

        regression:      total = sum_{t observed} 0.5 * exp(-s_t) * L_t + 0.5 * s_t
        classification:  total = sum_{t observed}       exp(-s_t) * L_t + 0.5 * s_t

    These are the negative log-likelihoods of a Gaussian with variance ``sigma_t^2`` (``L_t`` a
    mean squared error) and of a softmax scaled by ``1 / sigma_t^2`` (``L_t`` a cross-entropy, with
    Kendall et al.'s approximation), up to constants. The effective weight of task ``t`` is
    ``0.5 * exp(-s_t)`` (regression) or ``exp(-s_t)`` (classification); for a fixed loss, the
    optimal ``s_t`` makes it ``1 / (2 L_t)`` in both cases, so tasks with a large loss are
    down-weighted. These weights are not normalised (they start at 0.5 for regression, at 1 for
    classification), and the gradient with respect to ``s_t`` is::

        regression:      d total / d s_t = 0.5 - 0.5 * exp(-s_t) * L_t
        classification:  d total / d s_t = 0.5 -       exp(-s_t) * L_t

    Only observed tasks contribute, their ``0.5 * s_t`` term included, so an unobserved task's
    ``s_t`` receives a zero gradient.

    Attributes
    ----------
    log_vars_ : torch.nn.Parameter of shape (n_tasks,)
        The learned ``s_t``, created by :meth:`reset` on the network's device.

    Notes
    -----
    The network's ``weight_decay`` does not apply to ``log_vars_``: they sit in the optimiser's
    group without decay, since a pull of ``s_t`` towards 0 would change what they mean.

    References
    ----------
    A. Kendall, Y. Gal and R. Cipolla. "Multi-task learning using uncertainty to weigh losses for
    scene geometry and semantics". CVPR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from skmtl.deep.weighting import UncertaintyWeighting
    >>> weighting = UncertaintyWeighting()
    >>> params = weighting.reset(2, n_observed=np.array([5, 5]), task_type="regression",
    ...                          device="cpu")
    >>> params[0]
    Parameter containing:
    tensor([0., 0.], requires_grad=True)
    >>> weighting.combine(torch.tensor([1.0, 3.0]), torch.tensor([True, True]))
    tensor(2., grad_fn=<SumBackward0>)
    >>> weighting.current_weights()
    array([0.5, 0.5])
    """

    def reset(self, n_tasks, *, n_observed, task_type, device):
        super().reset(n_tasks, n_observed=n_observed, task_type=task_type, device=device)
        self.log_vars_ = torch.nn.Parameter(torch.zeros(n_tasks, device=self.device_))
        return [self.log_vars_]

    def _scale(self):
        return 0.5 if self.task_type_ == "regression" else 1.0

    def combine(self, losses, observed):
        observed = self._check_batch(losses, observed)
        s = self.log_vars_.to(device=losses.device, dtype=losses.dtype)
        zero = losses.new_zeros(())
        clean = torch.where(observed, losses, zero)
        terms = self._scale() * torch.exp(-s) * clean + 0.5 * s
        return torch.where(observed, terms, zero).sum()

    def current_weights(self):
        s = self.log_vars_.detach().to("cpu", torch.float64).numpy()
        return self._scale() * np.exp(-s)


class GradNormWeighting(Weighting):
    """GradNorm: learn weights that balance the tasks' gradient norms (Chen et al., 2018).

    Weights ``w_t`` start at 1. The network is trained on ``total = sum_{t observed} w_t * L_t``
    with ``w`` held constant. After every backward pass, with ``g_t`` the norm of the gradient of
    the *unweighted* loss ``L_t`` (``gradient_on``: on the weight ``W`` of the last shared layer,
    ``g_t = ||dL_t / dW||_F``, as in the paper; or on the representation ``R`` the heads read,
    ``g_t = ||dL_t / dR||_F``) and ``O`` the tasks observed in the batch::

        G_t     = w_t * g_t                                   (gradient norm of w_t * L_t)
        G_bar   = mean_{s in O} G_s
        l_t     = L_t / L_t(0)                                (inverse training rate)
        r_t     = l_t / mean_{s in O} l_s
        loss_gn = sum_{t in O} | G_t - G_bar * r_t ** alpha |  (target held constant)
        d loss_gn / d w_t = sign(G_t - G_bar * r_t ** alpha) * g_t

    ``L_t(0)`` is the task's first observed (finite, positive) batch loss. The weights take one
    step of their own optimiser on ``loss_gn`` (``"adam"``: Adam with betas (0.9, 0.999) and
    eps 1e-8, whose moments and step count advance only for observed tasks; ``"sgd"``:
    ``w_t <- w_t - lr * d loss_gn / d w_t``), are clamped to at least ``GRADNORM_MIN_WEIGHT``
    (1e-4), and are renormalised to sum to ``T``::

        w_O <- w_O * (T - sum_{t not in O} w_t) / sum_{t in O} w_t

    With every task observed this is the paper's ``w <- T * w / sum(w)``; a task not observed in
    the batch keeps its weight unchanged.

    Parameters
    ----------
    alpha : float, default=1.5
        Strength of the pull towards a common training rate (``alpha >= 0``; 0 equalises the
        gradient norms only).
    lr : float, default=0.025
        Learning rate of the weights' own optimiser.
    optimizer : {"adam", "sgd"}, default="adam"
        Optimiser of the weights. Adam moves each weight by about ``lr`` per step whatever the
        scale of the gradient norms.
    gradient_on : {"last_shared_layer", "representation"}, default="last_shared_layer"
        Where ``g_t`` is measured. ``"last_shared_layer"`` is the paper's quantity, exact:
        the Frobenius norm of the gradient on the weight of the network's last shared
        ``Linear`` layer, computed from the per-sample factorisation of a linear layer's
        gradient (``dL_t / dW = delta_t^T a``, ``delta_t`` the gradient on the layer's output,
        ``a`` its input) over each task's labelled rows, without a backward pass per task.
        ``"representation"`` is cheaper: the norm on the trunk's output, which bounds the
        former up to the layer's Jacobian (the bound MGDA-UB, Sener & Koltun 2018, optimises
        instead of the parameter gradients); relative norms differ between the two (on
        MoleculeACE by a median factor 1.11, up to 1.98, see the user guide), so the weights
        do too. A
        network without a shared ``Linear`` layer (``"independent"``, ``"soft"``,
        ``"cross_stitch"``, ``"sluice"``, a hard trunk without hidden layers) uses the
        representation; ``gradient_space_`` says which was used.

    Attributes
    ----------
    gradient_space_ : str
        The space the norms were measured in (set by the net at fit).
    weights_ : torch.Tensor of shape (n_tasks,)
        The current weights, float32 on the network's device.
    initial_losses_ : torch.Tensor of shape (n_tasks,)
        ``L_t(0)``; NaN until the task has been observed.

    References
    ----------
    Z. Chen, V. Badrinarayanan, C.-Y. Lee and A. Rabinovich. "GradNorm: Gradient normalization
    for adaptive loss balancing in deep multitask networks". ICML 2018.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from skmtl.deep.weighting import GradNormWeighting
    >>> weighting = GradNormWeighting(alpha=1.5, lr=0.1, optimizer="sgd")
    >>> weighting.reset(2, n_observed=np.array([5, 5]), task_type="regression", device="cpu")
    []
    >>> losses, observed = torch.tensor([1.0, 1.0]), torch.tensor([True, True])
    >>> weighting.after_backward(losses, observed, grad_norms=torch.tensor([1.0, 3.0]))
    >>> weighting.current_weights().round(4)  # task 1's gradient is larger: its weight drops
    array([1.2222, 0.7778])
    """

    requires_grad_norms = True
    _parameter_constraints = {
        "alpha": [Interval(Real, 0, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "optimizer": [StrOptions({"adam", "sgd"})],
        "gradient_on": [StrOptions({"last_shared_layer", "representation"})],
    }

    def __init__(self, alpha=1.5, *, lr=0.025, optimizer="adam", gradient_on="last_shared_layer"):
        self.alpha = alpha
        self.lr = lr
        self.optimizer = optimizer
        self.gradient_on = gradient_on

    def gradient_space(self):
        """``gradient_on``: where the norms ``g_t`` are measured."""
        return self.gradient_on

    def reset(self, n_tasks, *, n_observed, task_type, device):
        params = super().reset(n_tasks, n_observed=n_observed, task_type=task_type, device=device)
        owner = type(self).__name__
        _check_real(self.alpha, "alpha", owner, low=0.0, low_inclusive=True)
        _check_real(self.lr, "lr", owner, low=0.0, low_inclusive=False)
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"{owner}: optimizer must be 'adam' or 'sgd', got {self.optimizer!r}.")
        zeros = torch.zeros(n_tasks, device=self.device_)
        self.weights_ = torch.ones(n_tasks, device=self.device_)
        self.initial_losses_ = torch.full((n_tasks,), float("nan"), device=self.device_)
        self.exp_avg_ = zeros.clone()
        self.exp_avg_sq_ = zeros.clone()
        self.steps_ = zeros.clone()
        return params

    def _move_state(self, like):
        for name in ("weights_", "initial_losses_", "exp_avg_", "exp_avg_sq_", "steps_"):
            setattr(self, name, _state_on(getattr(self, name), like))

    def combine(self, losses, observed):
        observed = self._check_batch(losses, observed)
        weights = self.weights_.detach().to(device=losses.device, dtype=losses.dtype)
        return weighted_sum(weights, losses, observed)

    def after_backward(self, losses, observed, grad_norms):
        observed = self._check_batch(losses, observed)
        if grad_norms is None:
            raise ValueError(
                "GradNormWeighting needs the per-task gradient norms in after_backward "
                "(requires_grad_norms is True)."
            )
        losses = losses.detach()
        self._move_state(losses)
        weights = self.weights_
        grad_norms = grad_norms.detach().to(device=losses.device, dtype=weights.dtype)
        losses = losses.to(weights.dtype)
        zero = weights.new_zeros(())
        n_observed = observed.sum().clamp_min(1).to(weights.dtype)

        self.initial_losses_ = _record_initial(self.initial_losses_, losses, observed)
        ratio = torch.where(observed, _loss_ratio(self.initial_losses_, losses, observed), zero)
        mean_ratio = ratio.sum() / n_observed
        rate = torch.where(observed & (mean_ratio > 0), ratio / mean_ratio, torch.ones_like(ratio))

        norms = torch.where(observed, grad_norms, zero)
        weighted_norms = weights * norms
        mean_norm = weighted_norms.sum() / n_observed
        target = mean_norm * rate ** float(self.alpha)
        grad = torch.where(observed, torch.sign(weighted_norms - target) * norms, zero)

        if self.optimizer == "sgd":
            stepped = weights - float(self.lr) * grad
        else:
            beta1, beta2 = _ADAM_BETAS
            self.steps_ = torch.where(observed, self.steps_ + 1, self.steps_)
            self.exp_avg_ = torch.where(
                observed, beta1 * self.exp_avg_ + (1 - beta1) * grad, self.exp_avg_
            )
            self.exp_avg_sq_ = torch.where(
                observed, beta2 * self.exp_avg_sq_ + (1 - beta2) * grad**2, self.exp_avg_sq_
            )
            steps = self.steps_.clamp_min(1)
            m_hat = self.exp_avg_ / (1 - beta1**steps)
            v_hat = self.exp_avg_sq_ / (1 - beta2**steps)
            stepped = weights - float(self.lr) * m_hat / (v_hat.sqrt() + _ADAM_EPS)
        stepped = torch.where(observed, stepped.clamp_min(GRADNORM_MIN_WEIGHT), weights)
        budget = self.n_tasks_ - torch.where(observed, zero, weights).sum()
        observed_sum = torch.where(observed, stepped, zero).sum()
        self.weights_ = torch.where(observed, stepped * budget / observed_sum, weights)

    def current_weights(self):
        return self.weights_.detach().to("cpu", torch.float64).numpy()


class DWAWeighting(Weighting):
    """Dynamic weight average (Liu, Johns & Davison, 2019).

    The weights change once per epoch, from the rate at which each task's epoch mean training loss
    ``L_t(e)`` fell over the last two epochs. For epochs 1 and 2 all weights are 1; for epoch
    ``e >= 3``::

        r_t = L_t(e - 1) / L_t(e - 2)
        w_t = T * exp(r_t / temperature) / sum_s exp(r_s / temperature)
        total = sum_{t observed} w_t * L_t

    so the weights sum to ``T`` and a task whose loss stalls (``r_t`` near 1 or above) gets more
    weight. ``r_t`` is taken as 1 when either epoch loss is missing (NaN: no label that epoch) or
    when ``L_t(e - 2) <= 0``.

    Parameters
    ----------
    temperature : float, default=2.0
        Softness of the softmax; large values bring the weights towards 1.

    References
    ----------
    S. Liu, E. Johns and A. J. Davison. "End-to-end multi-task learning with attention".
    CVPR 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.deep.weighting import DWAWeighting
    >>> weighting = DWAWeighting(temperature=2.0)
    >>> weighting.reset(2, n_observed=np.array([5, 5]), task_type="regression", device="cpu")
    []
    >>> weighting.on_epoch_end(np.array([1.0, 1.0]))
    >>> weighting.on_epoch_end(np.array([0.5, 1.0]))  # task 0 learns faster
    >>> weighting.current_weights().round(3)
    array([0.876, 1.124])
    """

    _parameter_constraints = {"temperature": [Interval(Real, 0, None, closed="neither")]}

    def __init__(self, temperature=2.0):
        self.temperature = temperature

    def reset(self, n_tasks, *, n_observed, task_type, device):
        params = super().reset(n_tasks, n_observed=n_observed, task_type=task_type, device=device)
        _check_real(
            self.temperature, "temperature", type(self).__name__, low=0.0, low_inclusive=False
        )
        self.epoch_losses_ = []
        return params

    def on_epoch_end(self, epoch_losses):
        losses = np.asarray(epoch_losses, dtype=np.float64)
        if losses.shape != (self.n_tasks_,):
            raise ValueError(
                f"DWAWeighting: epoch_losses must have shape ({self.n_tasks_},), "
                f"got {losses.shape}."
            )
        self.epoch_losses_ = [*self.epoch_losses_[-1:], losses.copy()]
        if len(self.epoch_losses_) < 2:
            return
        before, last = self.epoch_losses_
        usable = np.isfinite(before) & np.isfinite(last) & (before > 0)
        rates = np.ones(self.n_tasks_)
        rates[usable] = last[usable] / before[usable]
        logits = rates / float(self.temperature)
        exps = np.exp(logits - logits.max())
        self.weights_ = self.n_tasks_ * exps / exps.sum()


class LBTWWeighting(Weighting):
    """Loss-balanced task weighting (Liu, Liang & Gitter, 2019).

    Each batch, a task is weighted by how much of its initial loss is left::

        v_t = (L_t / L_t(0)) ** alpha                 (held constant: no gradient)
        w_t = |O| * v_t / sum_{s in O} v_s            (normalize=True; w_t = v_t otherwise)
        total = sum_{t in O} w_t * L_t

    with ``O`` the tasks observed in the batch and ``L_t(0)`` the task's loss at its first observed
    batch of the epoch (the first with a finite, positive loss; until then ``v_t = 1``), as in
    the authors' algorithm, which takes the initial losses afresh at the first batch of every
    epoch. Tasks that have already learnt much in the epoch, and could start to overfit or
    dominate, are down-weighted. When an epoch is one batch (a training set of at most
    ``batch_size`` rows), every batch is the first of its epoch, so every weight stays 1 and
    this is equal weighting: pass a smaller ``batch_size``, or ``reset_each_epoch=False``.

    By default the weights are renormalised to average 1 over the observed tasks (sum ``T`` when
    every task is observed), as in the authors' code: the overall loss scale stays that of equal
    weighting instead of shrinking with the losses, which would act as a learning-rate decay.

    Parameters
    ----------
    alpha : float, default=0.5
        Exponent ``alpha >= 0``; 0 is equal weighting.
    normalize : bool, default=True
        Renormalise the weights of the observed tasks to average 1.
    reset_each_epoch : bool, default=True
        Take ``L_t(0)`` afresh at the task's first observed batch of every epoch, as the authors
        do; False (the former default) takes it once, at the task's first observed batch
        of the fit.

    Attributes
    ----------
    initial_losses_ : torch.Tensor of shape (n_tasks,)
        ``L_t(0)``; NaN until the task has been observed.

    References
    ----------
    S. Liu, Y. Liang and A. Gitter. "Loss-balanced task weighting to reduce negative transfer in
    multi-task learning". AAAI 2019 (student abstract).

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from skmtl.deep.weighting import LBTWWeighting
    >>> weighting = LBTWWeighting(alpha=0.5, normalize=False)
    >>> weighting.reset(2, n_observed=np.array([5, 5]), task_type="regression", device="cpu")
    []
    >>> observed = torch.tensor([True, True])
    >>> weighting.combine(torch.tensor([2.0, 1.0]), observed)  # first batch: weights 1
    tensor(3.)
    >>> weighting.combine(torch.tensor([0.5, 1.0]), observed)  # sqrt(0.25) * 0.5 + 1 * 1
    tensor(1.2500)
    >>> weighting.current_weights()
    array([0.5, 1. ])
    """

    _parameter_constraints = {
        "alpha": [Interval(Real, 0, None, closed="left")],
        "normalize": ["boolean"],
        "reset_each_epoch": ["boolean"],
    }

    def __init__(self, alpha=0.5, *, normalize=True, reset_each_epoch=True):
        self.alpha = alpha
        self.normalize = normalize
        self.reset_each_epoch = reset_each_epoch

    def reset(self, n_tasks, *, n_observed, task_type, device):
        params = super().reset(n_tasks, n_observed=n_observed, task_type=task_type, device=device)
        _check_real(
            self.alpha, "alpha", type(self).__name__, low=0.0, low_inclusive=True
        )
        self.initial_losses_ = torch.full((n_tasks,), float("nan"), device=self.device_)
        self.weights_ = torch.ones(n_tasks, device=self.device_)
        return params

    def combine(self, losses, observed):
        observed = self._check_batch(losses, observed)
        detached = losses.detach()
        self.initial_losses_ = _record_initial(
            _state_on(self.initial_losses_, losses), detached, observed
        )
        weights = _loss_ratio(self.initial_losses_, detached, observed) ** float(self.alpha)
        weights = torch.where(observed, weights, torch.ones_like(weights))
        if self.normalize:
            zero = weights.new_zeros(())
            total = torch.where(observed, weights, zero).sum()
            n_observed = observed.sum().to(weights.dtype)
            weights = torch.where(observed & (total > 0), weights * n_observed / total, weights)
        self.weights_ = torch.where(observed, weights, _state_on(self.weights_, losses))
        return weighted_sum(weights, losses, observed)

    def on_epoch_end(self, epoch_losses):
        if self.reset_each_epoch:
            self.initial_losses_ = torch.full_like(self.initial_losses_, float("nan"))

    def current_weights(self):
        """The weights of each task's last observed batch (ones before its first)."""
        return self.weights_.to("cpu", torch.float64).numpy()


class MinimaxWeighting(Weighting):
    """Minimax weighting: train on the worst task of each batch.

    ::

        t* = argmax_{t observed} L_t       (the first one if tied)
        total = L_{t*}                     (w_{t*} = 1, every other weight 0)

    and ``total = 0`` when no task is observed. This minimises the largest task loss, which only
    makes sense if the losses are on comparable scales: the regression estimators standardise each
    task's target inside the estimator, and classification losses are cross-entropies.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from skmtl.deep.weighting import MinimaxWeighting
    >>> weighting = MinimaxWeighting()
    >>> weighting.reset(3, n_observed=np.array([5, 5, 5]), task_type="regression", device="cpu")
    []
    >>> weighting.combine(torch.tensor([1.0, 9.0, 2.0]), torch.tensor([True, False, True]))
    tensor(2.)
    >>> weighting.current_weights()
    array([0., 0., 1.])
    """

    def reset(self, n_tasks, *, n_observed, task_type, device):
        params = super().reset(n_tasks, n_observed=n_observed, task_type=task_type, device=device)
        self.weights_ = torch.ones(n_tasks, device=self.device_)
        return params

    def combine(self, losses, observed):
        observed = self._check_batch(losses, observed)
        candidates = torch.where(observed, losses.detach(), float("-inf"))
        worst = torch.argmax(candidates)  # the first maximum
        weights = torch.nn.functional.one_hot(worst, self.n_tasks_).to(losses.dtype)
        weights = weights * observed.to(losses.dtype)
        self.weights_ = torch.where(
            observed.any(), weights, _state_on(self.weights_, losses).to(losses.dtype)
        )
        return weighted_sum(weights, losses, observed)

    def current_weights(self):
        """The weights of the last batch with an observed task (ones before the first batch)."""
        return self.weights_.to("cpu", torch.float64).numpy()


class DROWeighting(Weighting):
    """Group DRO: exponentiated-gradient ascent on the task weights (Sagawa et al., 2020).

    The tasks are the groups of group distributionally robust optimisation: a distribution ``q``
    over the tasks (uniform at the start) moves towards the tasks with the largest smoothed loss,
    and the network minimises the ``q``-weighted loss. Each batch, before the loss is formed::

        Lbar_t <- L_t                                       (the task's first observed batch)
        Lbar_t <- smoothing * Lbar_t + (1 - smoothing) * L_t    (later observed batches)
        q_t    <- q_t * exp(step_size * Lbar_t)             (every task with an Lbar_t)
        q      <- q / sum_s q_s
        w_t    = T * q_t                                    (held constant: no gradient)
        total  = sum_{t observed} w_t * L_t

    A task without a label in the batch keeps its average ``Lbar_t``, so its weight keeps
    growing if it is the worst task, but contributes nothing to the batch's loss; a task never
    observed yet has no average and its ``q_t`` is not multiplied. The factor ``T`` scales the
    weights like equal weighting (they sum to ``T``). ``step_size=0`` is equal weighting, and
    ``smoothing=0`` is the paper's update on the batch losses themselves. A softer, per-batch
    version of ``"minimax"`` (which puts all weight on the worst task of the batch); the losses
    should be on comparable scales, as standardised regression targets and cross-entropies are.

    Parameters
    ----------
    step_size : float, default=0.01
        Step size ``eta >= 0`` of the exponentiated-gradient update of ``q`` (the paper's
        default).
    smoothing : float, default=0.9
        Weight ``0 <= smoothing < 1`` of the past in the exponential moving average ``Lbar`` of
        each task's batch loss; it steadies ``q`` against noisy, small batches of rare tasks.

    Attributes
    ----------
    q_ : torch.Tensor of shape (n_tasks,)
        The distribution over the tasks (sums to 1).
    avg_losses_ : torch.Tensor of shape (n_tasks,)
        ``Lbar_t``; NaN until the task has been observed.
    weights_ : torch.Tensor of shape (n_tasks,)
        ``T * q_``, the weights of the last batch.

    References
    ----------
    S. Sagawa, P. W. Koh, T. B. Hashimoto and P. Liang. "Distributionally robust neural networks
    for group shifts: On the importance of regularization for worst-case generalization".
    ICLR 2020.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from skmtl.deep.weighting import DROWeighting
    >>> weighting = DROWeighting(step_size=1.0, smoothing=0.0)
    >>> weighting.reset(2, n_observed=np.array([5, 5]), task_type="regression", device="cpu")
    []
    >>> total = weighting.combine(torch.tensor([1.0, 0.0]), torch.tensor([True, True]))
    >>> weighting.current_weights().round(4)  # 2 * [e, 1] / (e + 1)
    array([1.4621, 0.5379])
    """

    _parameter_constraints = {
        "step_size": [Interval(Real, 0, None, closed="left")],
        "smoothing": [Interval(Real, 0, 1, closed="left")],
    }

    def __init__(self, step_size=0.01, *, smoothing=0.9):
        self.step_size = step_size
        self.smoothing = smoothing

    def reset(self, n_tasks, *, n_observed, task_type, device):
        params = super().reset(n_tasks, n_observed=n_observed, task_type=task_type, device=device)
        owner = type(self).__name__
        _check_real(self.step_size, "step_size", owner, low=0.0, low_inclusive=True)
        smoothing = _check_real(self.smoothing, "smoothing", owner, low=0.0, low_inclusive=True)
        if smoothing >= 1.0:
            raise ValueError(f"{owner}: smoothing must be < 1, got {self.smoothing!r}.")
        self.log_q_ = torch.full((n_tasks,), -math.log(n_tasks), device=self.device_)
        self.q_ = torch.full((n_tasks,), 1.0 / n_tasks, device=self.device_)
        self.avg_losses_ = torch.full((n_tasks,), float("nan"), device=self.device_)
        self.weights_ = torch.ones(n_tasks, device=self.device_)
        return params

    def combine(self, losses, observed):
        observed = self._check_batch(losses, observed)
        detached = losses.detach()
        log_q = _state_on(self.log_q_, losses)
        avg = _state_on(self.avg_losses_, losses)
        batch = detached.to(avg.dtype)
        smoothing = float(self.smoothing)
        moved = torch.where(torch.isnan(avg), batch, smoothing * avg + (1 - smoothing) * batch)
        avg = torch.where(observed, moved, avg)
        step = torch.where(torch.isnan(avg), torch.zeros_like(avg), float(self.step_size) * avg)
        log_q = log_q + step
        log_q = log_q - torch.logsumexp(log_q, 0)  # q <- q / sum(q), in log space
        self.log_q_, self.avg_losses_ = log_q, avg
        self.q_ = log_q.exp()
        self.weights_ = self.n_tasks_ * self.q_
        weights = self.weights_.to(losses.dtype)
        return weighted_sum(weights, losses, observed)

    def current_weights(self):
        """``T * q``: the weights of the last batch (ones before the first)."""
        return self.weights_.to("cpu", torch.float64).numpy()


class RMTLWeighting(Weighting):
    """Reinforced multi-task learning: auxiliary tasks weighted by their alignment with a focus.

    One task is the *focus* ``f``, the others ``A`` are auxiliary. Each batch, rewards are read
    from the per-task gradients ``g_t`` of the unweighted losses (no backward pass per task, see
    :meth:`Weighting.gradient_space`), clipped at 0, and the training loss is::

        total = L_f + sum_{a in A observed} w_a L_a

    ``reward="per_task"`` (the authors' code, Liu, Liang & Gitter, GitHub
    chao1224/Loss-Balanced-Task-Weighting, ``src/pcba_run.py``): every auxiliary task gets its
    own reward, all at once, from the gradients on the tasks' own output-layer weights ``V_t``::

        g_t = d L_t / d V_t        w_a = max(cos(g_a, g_f), 0)

    These gradients are ``D_t^T h`` (``D_t`` the gradient on task ``t``'s outputs, ``h`` what its
    output layer reads): they compare how the two tasks' errors load on the representation, and
    not how their randomly initialised heads happen to be aligned, so no auxiliary task locks in.

    ``reward="policy"`` (Algorithm 3 of the paper): for every candidate policy ``pi`` (a row of
    ``policies``, weights over ``A``), with ``g_t`` on the weight of the last shared layer::

        g_pi  = sum_a pi_a g_a
        r(pi) = max(cos(g_pi, g_f), 0)       (0 when either gradient is 0)
        pi*   = argmax_pi r(pi)              (the first one if tied)
        w_a   = r(pi*) * pi*_a

    One policy is chosen per batch; which policy wins can depend on the heads' initial
    alignment (see the user guide), which ``"per_task"`` avoids.

    A batch without a focus label has no focus gradient to align with: it keeps the weights
    of the last batch that had one (the auxiliary weights are 0 until then); an auxiliary task
    without a label in the batch keeps its last weight too (it contributes nothing to that
    batch's loss either way). The focus task's weight is always 1.
    :class:`~skmtl.deep.FocusedTaskRegressor` and :class:`~skmtl.deep.FocusedTaskClassifier`
    build it for ``strategy="rmtl"``; a multi-task estimator takes it as
    ``weighting=RMTLWeighting(focus_task=...)``. Its rewards are only meaningful with a shared
    part (``sharing="hard"``).

    Parameters
    ----------
    focus_task : int
        Position of the focus task in the estimator's ``tasks_``.
    reward : {"per_task", "policy"}, default="policy"
        The reward, see above. ``"policy"`` is the default: on MoleculeACE pairs the two are
        alike (the negative-transfer study of the user guide), and on generated data only it
        tells related from unrelated auxiliary tasks (:ref:`transfer`).
    policies : array-like of shape (n_policies, n_tasks - 1), default=None
        Candidate policies of ``reward="policy"``: non-negative weights over the auxiliary
        tasks (in ``tasks_`` order, the focus task left out), each with a positive weight. None:
        each auxiliary task alone and, with two or more auxiliary tasks, all of them together
        (weight 1 each). Must be None with ``reward="per_task"``.
    gradient_on : {"head_weights", "last_shared_layer", "representation"} or None, \
            default=None
        Where the gradients ``g_t`` are taken (:meth:`Weighting.gradient_space`). None: the
        reward's source, ``"head_weights"`` for ``"per_task"`` and ``"last_shared_layer"`` for
        ``"policy"``.

    Attributes
    ----------
    policies_ : torch.Tensor of shape (n_policies, n_tasks - 1)
        The candidate policies in use (empty for ``reward="per_task"``).
    weights_ : torch.Tensor of shape (n_tasks,)
        Mean over the last epoch's batches of the weights used (1 for the focus task).
    batch_weights_ : torch.Tensor of shape (n_tasks,)
        The weights of the last batch.
    rewards_ : torch.Tensor of shape (n_tasks,)
        The rewards of the last batch with a focus label (``"per_task"``: each task's; 1 for
        the focus task).
    last_policy_, last_reward_ : torch.Tensor of shape ()
        ``reward="policy"``: index of the policy chosen at the last batch with a focus label
        (-1 before the first), and its reward.
    gradient_space_ : str
        The space the gradients were taken in (set by the net at fit).

    References
    ----------
    S. Liu, Y. Liang and A. Gitter. "Loss-balanced task weighting to reduce negative transfer in
    multi-task learning". AAAI 2019 (student abstract); and the slides in the project's
    references ("Negative transfer in deep multi-task learning", Algorithm 3).

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from skmtl.deep.weighting import RMTLWeighting
    >>> weighting = RMTLWeighting(focus_task=0)
    >>> weighting.reset(3, n_observed=np.array([5, 5, 5]), task_type="regression", device="cpu")
    []
    >>> weighting.policies_  # each auxiliary task alone, then both
    tensor([[1., 0.],
            [0., 1.],
            [1., 1.]])
    >>> gram = torch.tensor([[1.0, 0.5, -1.0], [0.5, 1.0, 0.0], [-1.0, 0.0, 1.0]])
    >>> observed = torch.tensor([True, True, True])
    >>> weighting.observe_task_gram(gram, observed)  # task 1 is aligned (cos 0.5), task 2 not
    >>> weighting.combine(torch.tensor([1.0, 2.0, 4.0]), observed)  # 1 + 0.5 * 2
    tensor(2.)
    >>> per_task = RMTLWeighting(focus_task=0, reward="per_task")
    >>> per_task.reset(3, n_observed=np.array([5, 5, 5]), task_type="regression", device="cpu")
    []
    >>> per_task.observe_task_gram(torch.tensor([[1.0, 0.5, 0.3], [0.5, 1.0, 0.0],
    ...                                          [0.3, 0.0, 1.0]]), observed)
    >>> per_task.batch_weights_  # each auxiliary task its own cosine with the focus task
    tensor([1.0000, 0.5000, 0.3000])
    """

    requires_task_gram = True
    _parameter_constraints = {
        "focus_task": [Interval(Integral, 0, None, closed="left")],
        "reward": [StrOptions({"per_task", "policy"})],
        "policies": [None, "array-like"],
        "gradient_on": [None, StrOptions({"head_weights", "last_shared_layer", "representation"})],
    }

    def __init__(self, focus_task, *, reward="policy", policies=None, gradient_on=None):
        self.focus_task = focus_task
        self.reward = reward
        self.policies = policies
        self.gradient_on = gradient_on

    def gradient_space(self):
        """``gradient_on``; by default the space of the reward's source."""
        if self.gradient_on is not None:
            return self.gradient_on
        return "head_weights" if self.reward == "per_task" else "last_shared_layer"

    def reset(self, n_tasks, *, n_observed, task_type, device):
        params = super().reset(n_tasks, n_observed=n_observed, task_type=task_type, device=device)
        focus = self.focus_task
        owner = type(self).__name__
        if isinstance(focus, bool) or not isinstance(focus, Integral) or not 0 <= focus < n_tasks:
            raise ValueError(
                f"{owner}: focus_task must be a task position in 0..{n_tasks - 1}, got {focus!r}."
            )
        if self.reward not in ("per_task", "policy"):
            raise ValueError(
                f"{owner}: reward must be 'per_task' or 'policy', got {self.reward!r}."
            )
        focus = int(focus)
        n_aux = n_tasks - 1
        if self.reward == "per_task":
            if self.policies is not None:
                raise ValueError(
                    f"{owner}: policies are the candidates of reward='policy'; with "
                    "reward='per_task' every auxiliary task has its own reward, so leave "
                    "policies=None."
                )
            policies = np.zeros((0, n_aux))
        elif self.policies is None:
            policies = default_policies(n_aux)
        else:
            policies = np.asarray(self.policies, dtype=np.float64)
            if policies.ndim != 2 or policies.shape[1] != n_aux:
                raise ValueError(
                    f"{owner}: policies must have shape (n_policies, {n_aux}) (one weight per "
                    f"auxiliary task), got {policies.shape}."
                )
            if not np.all(np.isfinite(policies)) or np.any(policies < 0):
                raise ValueError(f"{owner}: policy weights must be finite and >= 0.")
            if not np.all(policies.any(axis=1)):
                raise ValueError(f"{owner}: every policy needs a positive weight.")
        self.aux_ = torch.tensor(
            [t for t in range(n_tasks) if t != focus], dtype=torch.long, device=self.device_
        )
        policies = torch.as_tensor(policies, dtype=torch.float32)
        self.policies_ = policies.reshape(-1, n_aux).to(self.device_)
        # the policies that weigh one auxiliary task (all but one of the default ones): their
        # rewards come from that task's gradient alone, so a batch costs O(n_policies) there,
        # not O(n_policies * T)
        nonzero = self.policies_ != 0
        alone = nonzero.sum(1) == 1
        self._alone_rows = torch.nonzero(alone).flatten()
        self._alone_aux = self.aux_[nonzero[alone].to(torch.int64).argmax(1)]
        self._alone_weights = self.policies_[alone].sum(1)
        self._mixed_rows = torch.nonzero(~alone).flatten()
        self.batch_weights_ = torch.zeros(n_tasks, device=self.device_)
        self.batch_weights_[focus] = 1.0
        self.weights_ = self.batch_weights_.clone()
        self.rewards_ = self.batch_weights_.clone()
        self.last_policy_ = torch.tensor(-1, device=self.device_)
        self.last_reward_ = torch.tensor(0.0, device=self.device_)
        self.weight_sum_ = torch.zeros(n_tasks, device=self.device_)
        self.n_batches_ = 0
        return params

    def observe_task_gram(self, gram, observed):
        """Choose this batch's weights from the Gram matrix of the per-task gradients."""
        self.observe_task_gradients(GramGradients(gram), observed)

    def observe_task_gradients(self, grads, observed):
        """Choose this batch's weights from the per-task gradients (see the class docstring)."""
        focus, aux = int(self.focus_task), self.aux_
        if aux.numel() == 0:
            return
        dtype, device = self.batch_weights_.dtype, self.batch_weights_.device
        observed = torch.as_tensor(observed, device=device)
        has_focus = observed[focus]
        to_focus = grads.dots(focus).to(device=device, dtype=dtype)
        norms = grads.norms().to(device=device, dtype=dtype)
        weights = self.batch_weights_.clone()
        if self.reward == "per_task":
            cosines = _cosines(to_focus, norms * norms[focus])
            rewards = cosines.clamp(0.0, 1.0)
            rewards[focus] = 1.0
            fresh = has_focus & observed
            self.rewards_ = torch.where(has_focus, rewards, self.rewards_)
            weights = torch.where(fresh, rewards, weights)
        else:
            policies = self.policies_
            if policies.shape[0] == 0:
                return
            rewards = self._policy_rewards(grads, to_focus, norms)
            best = torch.argmax(rewards)  # the first maximum
            chosen = weights.index_copy(0, aux, rewards[best] * policies[best])
            # an auxiliary task without a label in the batch keeps its last weight
            weights = torch.where(has_focus & observed, chosen, weights)
            self.last_policy_ = torch.where(has_focus, best, self.last_policy_)
            self.last_reward_ = torch.where(has_focus, rewards[best], self.last_reward_)
        weights[focus] = 1.0
        self.batch_weights_ = weights

    def _policy_rewards(self, grads, to_focus, norms):
        """``r(pi) = max(cos(g_pi, g_f), 0)`` of every policy, in ``policies_`` order."""
        focus, aux = int(self.focus_task), self.aux_
        dots = to_focus.new_zeros(self.policies_.shape[0])  # g_pi . g_f
        pi_norms = torch.zeros_like(dots)  # ||g_pi||
        alone, task, weight = self._alone_rows, self._alone_aux, self._alone_weights
        dots[alone] = weight * to_focus[task]
        pi_norms[alone] = weight * norms[task]
        mixed = self._mixed_rows
        if mixed.numel():
            policies = self.policies_[mixed]
            dots[mixed] = policies @ to_focus[aux]
            full = policies.new_zeros(policies.shape[0], norms.shape[0])
            full[:, aux] = policies
            pi_norms[mixed] = grads.combination_norms(full).to(dots)
        return _cosines(dots, pi_norms * norms[focus]).clamp(0.0, 1.0)

    def combine(self, losses, observed):
        observed = self._check_batch(losses, observed)
        weights = self.batch_weights_.to(device=losses.device, dtype=losses.dtype)
        self.weight_sum_ = self.weight_sum_ + self.batch_weights_
        self.n_batches_ += 1
        return weighted_sum(weights, losses, observed)

    def on_epoch_end(self, epoch_losses):
        if self.n_batches_:
            self.weights_ = self.weight_sum_ / self.n_batches_
        self.weight_sum_ = torch.zeros_like(self.weight_sum_)
        self.n_batches_ = 0

    def current_weights(self):
        """Mean weights over the last epoch's batches."""
        return self.weights_.to("cpu", torch.float64).numpy()


def default_policies(n_aux):
    """RMTL's default candidate policies over ``n_aux`` auxiliary tasks, ``(n_policies, n_aux)``:
    each auxiliary task alone and, with two or more, all of them together (weight 1 each)."""
    rows = list(np.eye(n_aux))
    if n_aux > 1:
        rows.append(np.ones(n_aux))
    return np.array(rows, dtype=np.float64).reshape(len(rows), n_aux)


def _cosines(dots, norm_products):
    """``dots / norm_products``, 0 where a norm is 0."""
    return torch.where(
        norm_products > 0, dots / norm_products.clamp_min(1e-30), torch.zeros_like(dots)
    )


# --------------------------------------------------------------------------------------------------
# resolution of the estimators' parameter

_WEIGHTING_CLASSES = {
    "equal": EqualWeighting,
    "fixed": FixedWeighting,
    "inverse_frequency": InverseFrequencyWeighting,
    "uncertainty": UncertaintyWeighting,
    "gradnorm": GradNormWeighting,
    "dwa": DWAWeighting,
    "lbtw": LBTWWeighting,
    "minimax": MinimaxWeighting,
    "dro": DROWeighting,
}


def get_weighting(name, /, **params):
    """Resolve the estimators' ``weighting`` parameter into a fresh :class:`Weighting`.

    Parameters
    ----------
    name : str or Weighting
        One of ``WEIGHTINGS``: ``"equal"``, ``"fixed"``, ``"inverse_frequency"``,
        ``"uncertainty"``, ``"gradnorm"``, ``"dwa"``, ``"lbtw"``, ``"minimax"``, ``"dro"``; or
        an instance of a :class:`Weighting` subclass, which is returned as a deep copy (so
        fitting never modifies the estimator's parameter).
    **params
        Constructor parameters of the named weighting, e.g. ``task_weights`` for ``"fixed"`` or
        ``alpha`` for ``"gradnorm"``; not allowed with an instance.

    Returns
    -------
    weighting : Weighting
        A new weighting, not yet reset.

    Raises
    ------
    ValueError
        If ``name`` is an unknown string.
    TypeError
        If ``name`` is neither a string nor a Weighting instance, or if ``params`` does not fit.

    Examples
    --------
    >>> from skmtl.deep.weighting import get_weighting
    >>> get_weighting("gradnorm", alpha=0.5)
    GradNormWeighting(alpha=0.5, lr=0.025, optimizer='adam', gradient_on='last_shared_layer')
    >>> get_weighting("fixed", task_weights=[1.0, 0.5])
    FixedWeighting(task_weights=[1.0, 0.5])
    """
    if isinstance(name, Weighting):
        if params:
            raise TypeError(
                f"Parameters {sorted(params)} apply only to a weighting given by name; set them "
                f"on the {type(name).__name__} instance instead."
            )
        return copy.deepcopy(name)
    if isinstance(name, type) and issubclass(name, Weighting):
        raise TypeError(
            f"weighting must be a Weighting instance, not the class {name.__name__}; "
            f"pass {name.__name__}() instead."
        )
    choices = ", ".join(repr(choice) for choice in WEIGHTINGS)
    if not isinstance(name, str):
        raise TypeError(
            f"weighting must be one of {choices} or an instance of a Weighting subclass, "
            f"got {type(name).__name__} {name!r}."
        )
    if name not in _WEIGHTING_CLASSES:
        raise ValueError(
            f"Unknown weighting {name!r}; expected one of {choices} or an instance of a "
            "Weighting subclass."
        )
    cls = _WEIGHTING_CLASSES[name]
    accepted = _init_params(cls)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        takes = f"accepts {', '.join(accepted)}" if accepted else "takes no parameters"
        raise TypeError(f"weighting={name!r} got unexpected parameter(s) {unknown}; it {takes}.")
    return cls(**params)
