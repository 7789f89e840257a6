"""Auxiliary losses of the deep multi-task networks, read from the shared representation.

A training step computes the representation ``rep = module.shared(X_in)``, the task losses, and
one backward pass of

.. math::

    \\mathcal{L} = \\text{combine}(L_1, \\dots, L_T) + \\text{penalty}
        + \\lambda_{aux} \\, \\mathcal{L}_{aux}(z)

where ``lambda_aux`` is the caller's ``auxiliary_weight`` and :class:`AuxiliaryHeads` computes
``L_aux`` from ``z``, the representation common to all tasks (see :class:`AuxiliaryHeads` for its
definition per strategy). Three terms are available, alone or together:

``"reconstruction"``
    a linear decoder maps ``z`` back to ``X_in`` (an auxiliary autoencoder);
``"adversarial"``
    a task discriminator behind a gradient reversal layer (:func:`reverse_gradient`) tries to
    tell which task each label belongs to, which pushes the representation to be task invariant
    (adversarial multi-task learning, Liu, Qiu & Huang, 2017);
hints (``n_hints > 0``)
    a linear head regresses ``z`` on extra targets given only for training (Caruana's
    "hints").
"""

import math
import numbers

from skmtl.deep.modules import (
    ACTIVATIONS,
    _check_choice,
    _check_positive_int,
    _make_activation,
)
from skmtl.utils._optional import import_optional

torch = import_optional("torch", "deep", "the auxiliary losses of the deep networks")
nn = torch.nn
F = torch.nn.functional

__all__ = ["AUXILIARY", "AuxiliaryHeads", "reverse_gradient"]

AUXILIARY = ("reconstruction", "adversarial")
"""Names of the auxiliary losses accepted by :class:`AuxiliaryHeads` (besides hints)."""


class _GradientReversal(torch.autograd.Function):
    """Identity forward; the backward multiplies the incoming gradient by ``-scale``."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        # A view, not x itself: a Function must return a new tensor for autograd to attach the
        # reversed backward to it.
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        # Written with differentiable ops, so higher-order gradients also see the reversal.
        return grad * (-ctx.scale), None


def reverse_gradient(x, scale=1.0):
    """Gradient reversal layer (Ganin & Lempitsky, 2015).

    The forward pass is the identity, the backward pass multiplies the gradient by ``-scale``:

    .. math::

        R_\\lambda(x) = x, \\qquad
        \\frac{\\partial R_\\lambda}{\\partial x} = -\\lambda I, \\qquad \\lambda = \\text{scale}.

    A loss ``L(D(R(z)))`` thus gives the layers of ``D`` after the reversal their ordinary
    gradient (``D`` minimises ``L``) and the layers before it, those computing ``z``, the
    gradient ``-scale * dL/dz`` (they maximise ``L``): the min-max game of a domain (here, task)
    discriminator and a feature extractor, played in one backward pass.

    Parameters
    ----------
    x : Tensor
        Any tensor.
    scale : float, default=1.0
        The factor ``lambda >= 0`` of the reversed gradient.

    Returns
    -------
    out : Tensor
        A view of ``x`` with the same values.
    """
    if (
        isinstance(scale, bool)
        or not isinstance(scale, numbers.Real)
        or not scale >= 0
        or math.isinf(scale)
    ):
        raise ValueError(f"scale must be a finite number >= 0, got {scale!r}.")
    return _GradientReversal.apply(x, float(scale))


class AuxiliaryHeads(nn.Module):
    """Auxiliary losses on the representation shared by all tasks.

    ::

                        +-> [decoder: Linear(h, p)] --------------> x_hat   (reconstruction)
                        |
        rep --> z ------+-> [GRL] -> [Linear(h, h)-act-Linear(h, T)] -> task logits
                        |                                                   (adversarial)
                        +-> [hint_head: Linear(h, n_hints)] ----------> hint_hat   (hints)

    ``z`` is the representation common to all tasks: ``z = rep`` when ``rep`` has shape
    ``(B, h)`` (strategies whose heads all read one representation, ``shares_representation``),
    and ``z = (1/T) sum_t rep[t]``, the mean of the task representations, when ``rep`` has
    shape ``(T, B, h)`` (one slot per task): when every head reads its own slot, the mean is the
    only representation common to all tasks, and the auxiliary gradient reaches every slot
    (``1/T`` of ``dL_aux/dz`` each). ``GRL`` is the gradient reversal layer
    :func:`reverse_gradient` with scale 1.

    :meth:`forward` returns the sum of the enabled terms, on a batch of ``B`` rows (labelled or
    not) with features ``X_in`` (``B x p``) and ``N`` observed labels (row ``r_n``, task
    ``t_n``):

    .. math::

        L_{rec} = \\frac{1}{B p} \\sum_{i=1}^{B} \\sum_{j=1}^{p}
            \\left( (z_i A^\\top + a)_j - X_{ij} \\right)^2

        L_{adv} = \\frac{1}{N} \\sum_{n=1}^{N}
            -\\log \\operatorname{softmax}\\left(D(\\text{GRL}(z_{r_n}))\\right)_{t_n},
        \\qquad D(u) = \\sigma(u W_1^\\top + b_1) W_2^\\top + b_2

        L_{hint} = \\frac{1}{B m} \\sum_{i=1}^{B} \\sum_{j=1}^{m}
            \\left( (z_i V^\\top + v)_j - H_{ij} \\right)^2

    with ``sigma`` the activation, ``H`` the ``B x m`` hints (standardised by the caller) and
    ``L_adv = 0`` when the batch has no label. Every row counts in ``L_rec`` and ``L_hint``,
    labelled or not; ``L_adv`` has one term per observed label, so a row labelled for two tasks
    counts twice and an unlabelled row not at all.

    Reconstruction uses a *linear* decoder: it can only succeed if the representation keeps a
    linear image of ``X``, the classical auxiliary autoencoder, so it regularises the trunk
    instead of giving the decoder the capacity to undo whatever the trunk discards.

    Adversarial: the discriminator learns to tell which task a row is labelled for (it minimises
    ``L_adv``), and the reversed gradient pushes the shared representation to make that
    impossible (it maximises ``L_adv``): adversarial multi-task learning (Liu, Qiu & Huang,
    2017), with the min-max played in the one backward pass of the training step.

    Parameters
    ----------
    representation_size : int
        Width ``h`` of the representation.
    n_inputs : int
        Width ``p`` of ``X_in``, the decoder's output.
    n_tasks : int
        Number of tasks ``T``, the discriminator's output.
    auxiliary : {"reconstruction", "adversarial"} or None, default=None
        The auxiliary loss, or None for hints only.
    n_hints : int, default=0
        Number ``m`` of hint columns; 0 for no hint head.
    activation : {"relu", "gelu", "tanh", "logistic", "identity"}, default="relu"
        Activation of the discriminator's hidden layer.
    n_features : int, default=None
        Width of the full ``X`` (the network's input plus the hint columns); needed with
        ``hint_columns``.
    hint_columns : sequence of int, default=None
        Columns of the full ``X`` that are hints: :meth:`split_input` removes them from the
        network's input and returns them standardised. They set ``n_hints``.
    hint_mean, hint_scale : sequence of float, default=None
        Standardisation of the hint columns (0 and 1 when None).

    Attributes
    ----------
    decoder : nn.Linear or None
        ``Linear(h, p)`` for ``auxiliary="reconstruction"``.
    discriminator : nn.Sequential or None
        ``Linear(h, h) - activation - Linear(h, T)`` for ``auxiliary="adversarial"``.
    hint_head : nn.Linear or None
        ``Linear(h, n_hints)`` when ``n_hints > 0``.
    """

    def __init__(
        self,
        representation_size,
        n_inputs,
        n_tasks,
        *,
        auxiliary=None,
        n_hints=0,
        activation="relu",
        n_features=None,
        hint_columns=None,
        hint_mean=None,
        hint_scale=None,
    ):
        super().__init__()
        hint_columns = [] if hint_columns is None else [int(c) for c in hint_columns]
        if hint_columns:
            n_hints = len(hint_columns)
            self._init_input_split(n_features, n_inputs, hint_columns, hint_mean, hint_scale)
        else:
            self.input_columns = self.hint_columns = None
        self.representation_size = _check_positive_int("representation_size", representation_size)
        self.n_inputs = _check_positive_int("n_inputs", n_inputs)
        self.n_tasks = _check_positive_int("n_tasks", n_tasks)
        if auxiliary is not None:
            _check_choice("auxiliary", auxiliary, AUXILIARY)
        self.auxiliary = auxiliary
        if isinstance(n_hints, bool) or not isinstance(n_hints, numbers.Integral) or n_hints < 0:
            raise ValueError(f"n_hints must be an integer >= 0, got {n_hints!r}.")
        self.n_hints = int(n_hints)
        self.activation = _check_choice("activation", activation, ACTIVATIONS)
        if auxiliary is None and self.n_hints == 0:
            raise ValueError(
                "AuxiliaryHeads has nothing to compute: auxiliary=None and n_hints=0; set "
                f"auxiliary to one of {', '.join(map(repr, AUXILIARY))} or n_hints > 0."
            )
        h = self.representation_size
        self.decoder = None
        self.discriminator = None
        self.hint_head = None
        if auxiliary == "reconstruction":
            self.decoder = nn.Linear(h, self.n_inputs, dtype=torch.float32)
        elif auxiliary == "adversarial":
            self.discriminator = nn.Sequential(
                nn.Linear(h, h, dtype=torch.float32),
                _make_activation(self.activation),
                nn.Linear(h, self.n_tasks, dtype=torch.float32),
            )
        if self.n_hints:
            self.hint_head = nn.Linear(h, self.n_hints, dtype=torch.float32)

    def _init_input_split(self, n_features, n_inputs, hint_columns, hint_mean, hint_scale):
        """Buffers of :meth:`split_input`: the columns read, the hint columns, their scaling."""
        n_features = _check_positive_int("n_features", n_features)
        hints = torch.tensor(hint_columns, dtype=torch.long)
        if hints.unique().numel() != hints.numel() or not (
            0 <= int(hints.min()) and int(hints.max()) < n_features
        ):
            raise ValueError(
                f"hint_columns must be distinct columns of the {n_features} of X, got "
                f"{hint_columns}."
            )
        keep = torch.ones(n_features, dtype=torch.bool)
        keep[hints] = False
        if int(keep.sum()) != n_inputs:
            raise ValueError(
                f"n_inputs={n_inputs} must be n_features - len(hint_columns) = "
                f"{n_features - hints.numel()}."
            )
        mean = torch.zeros(hints.numel()) if hint_mean is None else torch.tensor(hint_mean)
        scale = torch.ones(hints.numel()) if hint_scale is None else torch.tensor(hint_scale)
        if mean.shape != hints.shape or scale.shape != hints.shape or not bool(
            (scale > 0).all() & torch.isfinite(mean).all() & torch.isfinite(scale).all()
        ):
            raise ValueError(
                "hint_mean and hint_scale must hold one finite value per hint column, the "
                f"scales > 0; got {hint_mean!r} and {hint_scale!r}."
            )
        self.register_buffer("input_columns", torch.nonzero(keep).squeeze(1))
        self.register_buffer("hint_columns", hints)
        self.register_buffer("hint_mean", mean.to(torch.float32))
        self.register_buffer("hint_scale", scale.to(torch.float32))

    def split_input(self, X):
        """``(X_in, hints)``: the columns the network reads, and the standardised hints.

        Without hint columns, ``(X, None)``. Otherwise ``X_in = X[:, input_columns]`` and
        ``hints = (X[:, hint_columns] - hint_mean) / hint_scale``.

        Parameters
        ----------
        X : Tensor of shape (B, n_features)

        Returns
        -------
        X_in : Tensor of shape (B, n_inputs)
        hints : Tensor of shape (B, n_hints) or None
        """
        if self.hint_columns is None:
            return X, None
        hints = (X.index_select(1, self.hint_columns) - self.hint_mean) / self.hint_scale
        return X.index_select(1, self.input_columns), hints

    def common_representation(self, rep):
        """``z``: ``rep`` itself if it is ``(B, h)``, the mean of its slots if ``(T, B, h)``.

        Parameters
        ----------
        rep : Tensor of shape (B, h) or (T, B, h)

        Returns
        -------
        z : Tensor of shape (B, h)
        """
        if rep.dim() not in (2, 3) or rep.shape[-1] != self.representation_size:
            raise ValueError(
                f"rep must have shape (B, {self.representation_size}) or "
                f"(T, B, {self.representation_size}), got {tuple(rep.shape)}."
            )
        return rep.mean(0) if rep.dim() == 3 else rep

    def _reconstruction(self, z, X_in):
        if X_in is None:
            raise ValueError("auxiliary='reconstruction' needs X_in, got None.")
        if tuple(X_in.shape) != (z.shape[0], self.n_inputs):
            raise ValueError(
                f"X_in must have shape ({z.shape[0]}, {self.n_inputs}), got {tuple(X_in.shape)}."
            )
        target = X_in.to(device=z.device, dtype=z.dtype)
        return F.mse_loss(self.decoder(z), target)

    def _adversarial(self, z, labels):
        if labels is None or labels["row"].numel() == 0:
            return z.new_zeros(())
        rows = labels["row"].to(device=z.device, dtype=torch.long)
        tasks = labels["task"].to(device=z.device, dtype=torch.long)
        # Discriminate the rows that carry a label only: one logit row per label entry.
        logits = self.discriminator(reverse_gradient(z.index_select(0, rows)))
        return F.cross_entropy(logits, tasks)

    def _hints(self, z, hints):
        if hints is None:
            raise ValueError(f"n_hints={self.n_hints} needs hints, got None.")
        if tuple(hints.shape) != (z.shape[0], self.n_hints):
            raise ValueError(
                f"hints must have shape ({z.shape[0]}, {self.n_hints}), got {tuple(hints.shape)}."
            )
        target = hints.to(device=z.device, dtype=z.dtype)
        return F.mse_loss(self.hint_head(z), target)

    def components(self, rep, X_in, hints, labels):
        """The enabled auxiliary terms, separately.

        Parameters
        ----------
        rep : Tensor of shape (B, h) or (T, B, h)
            The output of the module's ``shared``.
        X_in : Tensor of shape (B, n_inputs) or None
            The batch's features (needed for reconstruction only).
        hints : Tensor of shape (B, n_hints) or None
            The batch's standardised hints (needed when ``n_hints > 0``).
        labels : dict of Tensor or None
            The batch's labels, 1-D tensors ``"row"`` (position in the batch) and ``"task"``
            (and ``"value"``, unused), one entry per observed label (needed for adversarial).

        Returns
        -------
        terms : dict of str to 0-dim Tensor
            ``"reconstruction"``, ``"adversarial"``, ``"hints"``: the enabled ones only.
        """
        z = self.common_representation(rep)
        terms = {}
        if self.decoder is not None:
            terms["reconstruction"] = self._reconstruction(z, X_in)
        if self.discriminator is not None:
            terms["adversarial"] = self._adversarial(z, labels)
        if self.hint_head is not None:
            terms["hints"] = self._hints(z, hints)
        return terms

    def forward(self, rep, X_in, hints, labels):
        """The auxiliary loss: the sum of the enabled terms (see :meth:`components`).

        Parameters
        ----------
        rep : Tensor of shape (B, h) or (T, B, h)
        X_in : Tensor of shape (B, n_inputs) or None
        hints : Tensor of shape (B, n_hints) or None
        labels : dict of Tensor or None

        Returns
        -------
        loss : 0-dim Tensor
        """
        terms = self.components(rep, X_in, hints, labels).values()
        total = None
        for term in terms:
            total = term if total is None else total + term
        return total

    def extra_repr(self):
        return (
            f"representation_size={self.representation_size}, n_inputs={self.n_inputs}, "
            f"n_tasks={self.n_tasks}, auxiliary={self.auxiliary!r}, n_hints={self.n_hints}"
        )
