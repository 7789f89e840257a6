"""Two sharing strategies built on factorised or partial sharing of one network.

``"tensor_factorisation"`` (:class:`TensorFactorisationModule`)
    one tower per task whose stacked layer weights are a Tucker tensor of low rank in the task
    mode (deep multi-task representation learning, Yang & Hospedales, 2017);
``"low_supervision"`` (:class:`LowSupervisionModule`)
    one shared trunk whose layer ``d_t`` feeds the head of task ``t`` (low-level tasks
    supervised at lower layers, Søgaard & Goldberg, 2016).
"""

import math
import numbers

from skmtl.deep.modules import (
    _MODULE_DOCS,
    MultiTaskModule,
    _check_hidden_required,
    _check_positive_int,
    _make_activation,
    _make_dropout,
    _mlp,
)
from skmtl.utils._docstring import Substitution
from skmtl.utils._optional import import_optional

torch = import_optional("torch", "deep", "the deep multi-task modules")
nn = torch.nn
F = torch.nn.functional

__all__ = ["LowSupervisionModule", "TensorFactorisationModule"]

_DEFAULT_MAX_RANK = 8


# --------------------------------------------------------------------------------------------
# Tensor factorisation
# --------------------------------------------------------------------------------------------


def _check_tensor_rank(tensor_rank, n_tasks):
    if tensor_rank is None:  # half the tasks (rounded up), at most 8: below T, so it shares
        return min(-(-n_tasks // 2), _DEFAULT_MAX_RANK)
    rank = _check_positive_int("tensor_rank", tensor_rank)
    if rank > n_tasks:
        raise ValueError(
            f"tensor_rank={tensor_rank!r} exceeds the number of tasks T={n_tasks}: the task mode "
            f"of the (T, d_in, d_out) weight tensor has rank at most T; use tensor_rank <= "
            f"{n_tasks} (tensor_rank={n_tasks} is the unconstrained, independent-towers case)."
        )
    return rank


class _TuckerLinear(nn.Module):
    """``T`` linear layers whose weights are ``W[t] = sum_k task_factor[t, k] core_weight[k]``.

    Task ``t`` maps ``x_t`` to ``x_t @ W[t] + bias[t]`` (as :class:`BatchedLinear` with weight
    ``W``). The core is named ``core_weight`` so that weight decay applies to it; the task factor
    is a mixing coefficient and is not decayed.

    Initialisation: ``core_weight`` and ``bias`` uniform on ``[-1/sqrt(d_in), 1/sqrt(d_in)]``,
    drawn in this order, as :class:`BatchedLinear` draws its ``weight`` and ``bias``; then the task
    factor: the identity when ``rank == n_tasks`` (no random draw), else rows drawn from N(0, I)
    and scaled to unit norm.
    """

    def __init__(self, n_tasks, rank, in_features, out_features):
        super().__init__()
        self.n_tasks = n_tasks
        self.rank = rank
        self.in_features = in_features
        self.out_features = out_features
        bound = 1.0 / math.sqrt(in_features)
        self.core_weight = nn.Parameter(
            torch.empty(rank, in_features, out_features, dtype=torch.float32).uniform_(
                -bound, bound
            )
        )
        self.bias = nn.Parameter(
            torch.empty(n_tasks, out_features, dtype=torch.float32).uniform_(-bound, bound)
        )
        if rank == n_tasks:
            factor = torch.eye(n_tasks, dtype=torch.float32)
        else:
            factor = torch.randn(n_tasks, rank, dtype=torch.float32)
            factor /= factor.norm(dim=1, keepdim=True)
        self.task_factor = nn.Parameter(factor)

    def stacked_weight(self):
        """``W`` of shape ``(T, d_in, d_out)``: ``einsum("tk,kio->tio", A, S)``."""
        rank, n_in, n_out = self.core_weight.shape
        return (self.task_factor @ self.core_weight.reshape(rank, n_in * n_out)).view(
            self.n_tasks, n_in, n_out
        )

    def forward(self, x):
        """Apply layer ``t`` to ``x[t]`` (3-D input), or every layer to the same 2-D ``x``.

        A 2-D ``x`` of shape ``(B, d_in)`` is multiplied by the ``r`` core slices in one
        ``(B, d_in) x (d_in, r d_out)`` product, then mixed by the task factor:
        ``out[t] = sum_k A[t, k] (x @ S[k]) + b[t]`` (``W`` is never formed). A 3-D ``x`` of shape
        ``(T, B, d_in)`` is multiplied by the formed ``W`` (one batched product).
        """
        n_tasks, rank, n_out = self.n_tasks, self.rank, self.out_features
        if x.dim() == 2:
            batch = x.shape[0]
            flat = self.core_weight.transpose(0, 1).reshape(self.in_features, rank * n_out)
            H = (x @ flat).view(batch, rank, n_out).transpose(0, 1).reshape(rank, batch * n_out)
            out = (self.task_factor @ H).view(n_tasks, batch, n_out)
        else:
            out = torch.matmul(x, self.stacked_weight())
        return out + self.bias.unsqueeze(1)

    def extra_repr(self):
        return (
            f"n_tasks={self.n_tasks}, rank={self.rank}, in_features={self.in_features}, "
            f"out_features={self.out_features}"
        )


@Substitution(**_MODULE_DOCS)
class TensorFactorisationModule(MultiTaskModule):
    """Deep multi-task representation learning by tensor factorisation (Tucker form).

    Yang & Hospedales (2017). One tower per task, as in :class:`IndependentModule`, but the
    towers' weights of each hidden layer share ``r`` bases::

                     S_l (r bases, shared)      A_l (T x r, task factor)
                            \\                   /
                     W_l[t] = sum_k A_l[t, k] S_l[k]      (one weight per task and layer)
                                       |
        X -+-> [W_1[1], b_1[1]] -> act -> ... -> [W_L[1], b_L[1]] -> act --> r_1 -> [head 1]
           |        ...                                                   ...
           +-> [W_1[T], b_1[T]] -> act -> ... -> [W_L[T], b_L[T]] -> act --> r_T -> [head T]

    Hidden layer ``l`` of task ``t`` computes ``h_l^t = dropout(act(h_{l-1}^t W_l[t] + b_l[t]))``
    with ``h_0^t = X``; :meth:`shared` returns the ``(T, B, h_L)`` stack of the ``h_L^t``.

    The factorisation. Stack the ``T`` towers' weights of layer ``l`` into a tensor
    ``W_l`` of shape ``(d_in, d_out, T)``. Its Tucker decomposition is

    .. math::

        \\mathcal{W}_l = \\mathcal{S} \\times_1 U_1 \\times_2 U_2 \\times_3 U_3, \\qquad
        \\mathcal{W}_l[i, o, t] = \\sum_{a, b, k}
            \\mathcal{S}[a, b, k] \\, U_1[i, a] \\, U_2[o, b] \\, U_3[t, k]

    with the task mode of rank ``r`` (``U_3`` is ``T x r``) and the input and output modes of full
    rank (``U_1`` is ``d_in x d_in``, ``U_2`` is ``d_out x d_out``, both invertible). Then
    ``S' = S x_1 U_1 x_2 U_2`` ranges over every ``(d_in, d_out, r)`` core as ``S`` does, so
    ``U_1`` and ``U_2`` are absorbed into the core and the layer is parametrised by
    ``A_l = U_3`` (``task_factor``, ``(T, r)``) and ``S_l = S'`` (``core_weight``, stored as
    ``(r, d_in, d_out)``):

    .. math::

        W_l[t] = \\sum_{k=1}^{r} A_l[t, k] \\, S_l[k]

    Each task keeps its own bias ``b_l[t]``. The ``(T, d_in d_out)`` matrix of the flattened
    ``W_l[t]`` is ``A_l`` times the ``(r, d_in d_out)`` matrix of the flattened ``S_l[k]``, so
    its rank is at most ``r``: the tasks' weights lie in a subspace of ``r`` shared bases.
    ``r = T`` puts no constraint (with ``A_l = I`` and ``S_l[t]`` the weights of tower ``t``
    it is :class:`IndependentModule`); ``r = 1`` makes every task's weight a multiple of one
    shared weight.

    Cost. The first layer reads the same ``X`` (``(B, d_in)``) for every task: it computes
    ``H = X S_l`` for the ``r`` bases in one ``(B, d_in) x (d_in, r d_out)`` product, then
    ``h_1^t = act(sum_k A_1[t, k] H[k] + b_1[t])``, which costs ``r`` products instead of ``T``.
    The next layers read a different input per task: they form
    ``W_l = einsum("tk,kio->tio", A_l, S_l)`` and apply it with one batched product, as
    :class:`BatchedLinear` does.

    Initialisation. ``S_l`` and ``b_l`` are uniform on ``[-1/sqrt(d_in), 1/sqrt(d_in)]``, as
    :class:`torch.nn.Linear` initialises its weights. With ``r = T``, ``A_l = I``: the module
    starts exactly as independent towers (and, built from the same torch seed, with the same
    weights as :class:`IndependentModule`). With ``r < T`` the rows of ``A_l`` are drawn from
    ``N(0, I_r)`` and scaled to unit norm: every task starts as a different mix of the bases, and
    since the entries of ``S_l`` are independent with variance ``sigma^2 = 1 / (3 d_in)``, the
    entries of ``W_l[t]`` have variance ``||A_l[t]||^2 sigma^2 = sigma^2``, the scale of the
    ``nn.Linear`` initialisation.

    Weight decay (on parameter names ending in ``weight``) applies to the cores
    ``core_weight``, not to the task factors ``task_factor`` (mixing coefficients, like the
    cross-stitch units).

    Parameters
    ----------
    {module_inputs}
    hidden_layer_sizes : sequence of int, default=(64,)
        Hidden layers of each tower; at least one.
    {head_layers}
    tensor_rank : int, default=None
        Rank ``r`` of the task mode, ``1 <= r <= T``. None means ``min(ceil(T / 2), 8)``: fewer
        mixes than tasks (``r = T`` is independent towers), at most 8.

    Attributes
    ----------
    tensor_rank : int
        The rank ``r``.
    layers : nn.ModuleList
        One factorised layer per hidden layer, with parameters ``core_weight`` (``S_l``, shape
        ``(r, d_in, d_out)``), ``task_factor`` (``A_l``, shape ``(T, r)``) and ``bias``
        (``b_l``, shape ``(T, d_out)``).
    """

    def __init__(
        self,
        n_features,
        output_sizes,
        *,
        hidden_layer_sizes=(64,),
        head_layer_sizes=(),
        activation="relu",
        dropout=0.0,
        tensor_rank=None,
    ):
        super().__init__(
            n_features,
            output_sizes,
            head_layer_sizes=head_layer_sizes,
            activation=activation,
            dropout=dropout,
        )
        self.hidden_layer_sizes = tuple(
            _check_hidden_required("tensor_factorisation", hidden_layer_sizes)
        )
        self.tensor_rank = _check_tensor_rank(tensor_rank, self.n_tasks)
        sizes = [self.n_features, *self.hidden_layer_sizes]
        self.layers = nn.ModuleList(
            _TuckerLinear(self.n_tasks, self.tensor_rank, n_in, n_out)
            for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.tower_activation = _make_activation(self.activation)
        self.tower_dropout = _make_dropout(self.dropout)
        self._init_heads(self.hidden_layer_sizes[-1])

    def task_weights(self, layer):
        """The weights ``W_l[t] = sum_k A_l[t, k] S_l[k]`` of every task at one hidden layer.

        Parameters
        ----------
        layer : int
            Index of the hidden layer, ``0 <= layer < len(hidden_layer_sizes)``.

        Returns
        -------
        weights : Tensor of shape (T, d_in, d_out)
            ``weights[t]`` maps the layer's input ``x`` of task ``t`` to
            ``x @ weights[t] + bias[t]``. Differentiable in the parameters.
        """
        n_layers = len(self.layers)
        if (
            isinstance(layer, bool)
            or not isinstance(layer, numbers.Integral)
            or not 0 <= layer < n_layers
        ):
            raise ValueError(
                f"layer must be an integer in [0, {n_layers - 1}] (the hidden layers), "
                f"got {layer!r}."
            )
        return self.layers[int(layer)].stacked_weight()

    def shared(self, X):
        """The ``(T, B, h_L)`` outputs of the towers; see :meth:`MultiTaskModule.shared`."""
        self._check_input(X)
        H = X
        for layer in self.layers:
            H = self.tower_dropout(self.tower_activation(layer(H)))
        return H


# --------------------------------------------------------------------------------------------
# Low supervision
# --------------------------------------------------------------------------------------------


def _check_task_depths(task_depths, n_tasks, n_layers):
    if task_depths is None:
        return (n_layers,) * n_tasks
    expected = (
        f"task_depths must be None or a sequence of {n_tasks} integers (one per task) in "
        f"[1, {n_layers}] (L = len(hidden_layer_sizes) = {n_layers})"
    )
    if isinstance(task_depths, (str, bytes)):
        raise ValueError(f"{expected}, got {task_depths!r}.")
    try:
        depths = list(task_depths)
    except TypeError:
        raise ValueError(f"{expected}, got {task_depths!r}.") from None
    if len(depths) != n_tasks:
        raise ValueError(f"{expected}; got {len(depths)} depths: {task_depths!r}.")
    for task, depth in enumerate(depths):
        if (
            isinstance(depth, bool)
            or not isinstance(depth, numbers.Integral)
            or not 1 <= depth <= n_layers
        ):
            raise ValueError(f"{expected}; task_depths[{task}] is {depth!r}.")
    return tuple(int(depth) for depth in depths)


@Substitution(**_MODULE_DOCS)
class LowSupervisionModule(MultiTaskModule):
    """Low-level tasks supervised at lower layers (Søgaard & Goldberg, 2016).

    One trunk shared by all tasks, as in :class:`HardSharingModule`; the head of task ``t``
    reads the output of trunk layer ``d_t`` (``task_depths[t]``) instead of the top::

        X --> [layer 1] --> h_1 --> [layer 2] --> h_2 --> ... --> [layer D] --> h_D
                             |                     |                             |
                             +-> [head t]          +-> [head s]                  +-> [head u]
                                 (d_t = 1)             (d_s = 2)                     (d_u = D)

    With ``h_0 = X``, trunk layer ``l`` computes ``h_l = dropout(act(h_{l-1} W_l^T + b_l))``
    (``Linear -> activation -> dropout``) and head ``t`` reads ``r_t = h_{d_t}``. Only the layers
    up to the deepest read depth ``D = max_t d_t`` are computed; the layers above ``D`` are unused
    (they receive no gradient). A task read at a low layer trains the layers below it only, while
    a task read at the top trains the whole trunk.

    Representation. When every task reads the same layer ``d`` (the default: every task at the
    top, ``d = L``), :meth:`shared` returns ``h_d`` of shape ``(B, h_d)`` read by every head
    (``shares_representation`` is True): with ``d = L`` the module is exactly
    :class:`HardSharingModule`, built with the same parameters in the same order (the same
    weights from the same torch seed, the same ``state_dict`` keys). Otherwise
    ``shares_representation`` is False and :meth:`shared` returns a ``(T, B, h_max)`` tensor,
    ``h_max = max_t h_{d_t}`` the widest layer read, whose slot ``t`` is ``h_{d_t}`` padded on the
    right with zeros to ``h_max`` columns. Head ``t``'s first layer has ``h_max`` inputs; its
    weights on the padded columns multiply zeros, so they do not change the output and get a zero
    gradient (weight decay only shrinks them). The slots are built without a loop over tasks:
    the distinct read layers, padded, are stacked and indexed by the per-task buffer
    ``task_slot``.

    Unseen tasks: the trunk is shared by all tasks (``has_shared_part``), and
    :meth:`forward_shared` returns every head on its own depth, i.e. :meth:`forward_padded` (the
    estimators average these outputs, as for hard sharing). A head trained on a lower layer has
    never read the top layer, whose units mean something else, so it is not fed the top layer.

    Parameters
    ----------
    {module_inputs}
    hidden_layer_sizes : sequence of int, default=(64,)
        Hidden layers of the trunk; at least one. ``L = len(hidden_layer_sizes)``.
    {head_layers}
    task_depths : sequence of int, default=None
        Depth ``d_t`` (1-based, ``1 <= d_t <= L``) of the trunk layer read by the head of each
        task; ``T`` values. None means every task at the top, ``L`` (hard sharing).

    Attributes
    ----------
    trunk : nn.Sequential
        The shared trunk: ``trunk[3 * (l - 1)]`` is the ``Linear`` of layer ``l``.
    task_depths : tuple of int
        ``d_t`` of each task.
    task_slot : LongTensor of shape (T,)
        Non-persistent buffer: index of task ``t``'s read layer among the distinct read layers
        (in increasing depth).
    shares_representation : bool
        True when every task reads the same layer.
    last_shared_layer : nn.Linear or None
        The ``Linear`` of the layer read by every task when they all read the same one; None when
        the depths differ (there is then no one layer whose output every head reads).
    """

    def __init__(
        self,
        n_features,
        output_sizes,
        *,
        hidden_layer_sizes=(64,),
        head_layer_sizes=(),
        activation="relu",
        dropout=0.0,
        task_depths=None,
    ):
        super().__init__(
            n_features,
            output_sizes,
            head_layer_sizes=head_layer_sizes,
            activation=activation,
            dropout=dropout,
        )
        self.hidden_layer_sizes = tuple(
            _check_hidden_required("low_supervision", hidden_layer_sizes)
        )
        self.task_depths = _check_task_depths(
            task_depths, self.n_tasks, len(self.hidden_layer_sizes)
        )
        # Same construction as HardSharingModule: trunk, then heads (same RNG draws).
        self.trunk = _mlp(
            [self.n_features, *self.hidden_layer_sizes], self.activation, self.dropout
        )
        self._read_depths = tuple(sorted(set(self.task_depths)))
        self.shares_representation = len(self._read_depths) == 1
        slots = [self._read_depths.index(depth) for depth in self.task_depths]
        self.register_buffer("task_slot", torch.tensor(slots, dtype=torch.long), persistent=False)
        width = max(self.hidden_layer_sizes[depth - 1] for depth in self._read_depths)
        self._init_heads(width)

    has_shared_part = True

    @property
    def last_shared_layer(self):
        if not self.shares_representation:
            return None
        return self.trunk[3 * (self._read_depths[0] - 1)]

    def shared(self, X):
        """``h_d`` (every task at one depth ``d``), else the ``(T, B, h_max)`` padded slots.

        See the class docstring and :meth:`MultiTaskModule.shared`.
        """
        self._check_input(X)
        read = []
        H = X
        for depth in range(1, self._read_depths[-1] + 1):
            start = 3 * (depth - 1)
            for index in range(start, start + 3):
                H = self.trunk[index](H)
            if depth in self._read_depths:
                read.append(H)
        if self.shares_representation:
            return read[0]
        width = self.representation_size
        padded = [H if H.shape[1] == width else F.pad(H, (0, width - H.shape[1])) for H in read]
        return torch.stack(padded).index_select(0, self.task_slot)

    def forward_shared(self, X):
        """Every head on its own depth of the shared trunk (the same as :meth:`forward_padded`)."""
        return self.forward_padded(X)
