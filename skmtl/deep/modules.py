"""Parameter-sharing strategies for deep multi-task learning, as ``torch.nn`` modules.

Every strategy is a :class:`MultiTaskModule` built by :func:`build_module` from one set of
arguments. A module is split into two parts:

* :meth:`MultiTaskModule.shared` maps the features ``X`` of shape ``(B, n_features)`` to the
  representation every task head reads: one ``(B, h)`` tensor when all tasks share it
  (``shares_representation``), else a ``(T, B, h)`` tensor whose slot ``t`` is read by head ``t``
  only.
* :meth:`MultiTaskModule.heads` maps a ``(T, B, h)`` representation ``R`` to the ``T`` task
  outputs. It never touches the layers of :meth:`~MultiTaskModule.shared`, so a training step can
  take the gradient of every task loss on ``R`` with one backward pass through the heads, then
  continue into the trunk with ``rep.backward(R.grad.sum(0))`` (shared) or
  ``rep.backward(R.grad)``.

The heads of all tasks (and the towers of the tower-based strategies) are evaluated as batched
tensors: layer ``l`` of all ``T`` tasks is one weight of shape ``(T, h_in, h_out)`` applied with a
single batched matrix product (:class:`BatchedLinear`), and the output layer is padded to
``max(output_sizes)`` columns, so the cost of many small tasks is that of a few large products.

Performance notes for the training step. A shared ``(B, h)`` representation can be given to
:meth:`~MultiTaskModule.heads` as it is: every head reads it, with one matrix product and no
``(T, B, h)`` copy. :meth:`~MultiTaskModule.forward` does this, and
:meth:`~MultiTaskModule.forward_padded` returns all outputs as one ``(T, B, max(output_sizes))``
tensor, so the task losses can be computed without a Python loop over tasks. Making ``R`` a
``(T, B, h)`` leaf to read per-task gradients costs a ``(T, B, h)`` gradient tensor; do it only
when a per-task gradient is needed.

Strategies (``SHARING``):

==================  =============================================================================
``"independent"``   one tower and one head per task, nothing shared (deep single-task baseline)
``"hard"``          one shared trunk, one head per task
``"soft"``          towers as in ``"independent"``, plus a penalty pulling matching layers together
``"cross_stitch"``  towers whose activations are mixed by a learned ``T x T`` matrix per layer
``"sluice"``        cross-stitch over subspaces of each layer, plus a learned mixing of the layers
``"conditioned"``   one network for all tasks, fed a learned embedding of the task
``"tensor_factorisation"``
                    towers whose stacked weights are a low-rank (Tucker) tensor
``"relationship"``  a shared trunk, heads tied by a matrix-normal prior with a learned task
                    covariance
``"adaptive"``      a thin shared network widened top-down into branches of related tasks
``"low_supervision"``
                    a shared trunk, each task's head reading it at its own depth
``"stacked"``       one level per task, in order, each reading the level and the prediction
                    below
==================  =============================================================================

The last five live in private modules (``_sharing_factorised``, ``_sharing_relational``,
``_sharing_adaptive``) and are exported here.
"""

import math
import numbers
from collections.abc import Mapping

from skmtl.utils._docstring import Substitution
from skmtl.utils._optional import import_optional

torch = import_optional("torch", "deep", "the deep multi-task modules")
nn = torch.nn
F = torch.nn.functional

__all__ = [
    "ACTIVATIONS",
    "CONDITIONING",
    "SHARING",
    "AdaptiveModule",
    "BatchedLinear",
    "ConditionedModule",
    "CrossStitchModule",
    "HardSharingModule",
    "IndependentModule",
    "LowSupervisionModule",
    "MultiTaskModule",
    "RelationshipModule",
    "SluiceModule",
    "SoftSharingModule",
    "StackedModule",
    "TensorFactorisationModule",
    "build_module",
]

SHARING = (
    "independent",
    "hard",
    "soft",
    "cross_stitch",
    "sluice",
    "conditioned",
    "tensor_factorisation",
    "relationship",
    "adaptive",
    "low_supervision",
    "stacked",
)
"""Names of the sharing strategies accepted by :func:`build_module`."""

ACTIVATIONS = ("relu", "gelu", "tanh", "logistic", "identity")
"""Names of the hidden-layer activations (``"logistic"`` is the sigmoid, as in scikit-learn)."""

CONDITIONING = ("concat", "sum", "multiplicative")
"""How ``"conditioned"`` sharing feeds the task embedding to its network."""

# Strategies that accept a user ``module`` class, and what they do with it.
_CUSTOM_MODULE_USE = {
    "hard": "the shared trunk",
    "relationship": "the shared trunk",
    "independent": "one tower per task",
    "soft": "one tower per task",
}

_ACTIVATION_CLASSES = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "logistic": nn.Sigmoid,
    "identity": nn.Identity,
}


# Parameter documentation shared by the module classes (see skmtl.utils._docstring).
_MODULE_DOCS = {
    "module_inputs": """
    n_features : int
        Width of the input ``X``.
    output_sizes : sequence of int
        Output width of each task (1 for regression and binary, ``K_t`` for multiclass).
    """,
    "head_layers": """
    head_layer_sizes : sequence of int, default=()
        Hidden layers of each head.
    activation : {"relu", "gelu", "tanh", "logistic", "identity"}, default="relu"
        Activation after every hidden layer.
    dropout : float, default=0.0
        Dropout probability after every hidden activation.
    """,
}


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _check_sizes(name, sizes, *, allow_empty=True):
    if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
        sizes = (sizes,)  # one layer, as scikit-learn's MLP accepts
    message = f"{name} must be a sequence of positive integers, got {sizes!r}."
    if isinstance(sizes, str):
        raise ValueError(message)
    try:
        checked = [_check_positive_int(name, size) for size in sizes]
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if not allow_empty and not checked:
        raise ValueError(f"{name} must not be empty.")
    return checked


def _check_choice(name, value, options):
    if not isinstance(value, str) or value not in options:
        raise ValueError(
            f"Unknown {name} {value!r}; expected one of {', '.join(map(repr, options))}."
        )
    return value


def _check_dropout(dropout):
    if (
        isinstance(dropout, bool)
        or not isinstance(dropout, numbers.Real)
        or not 0.0 <= dropout < 1.0
    ):
        raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}.")
    return float(dropout)


def _check_custom_module(module, module_params):
    if module_params is not None and not isinstance(module_params, Mapping):
        raise ValueError(f"module_params must be a dict or None, got {module_params!r}.")
    if module is None:
        if module_params:
            raise ValueError("module_params is set but module is None; pass the module class too.")
        return None, {}
    if isinstance(module, nn.Module):
        raise ValueError(
            f"module must be an nn.Module class, not an instance: pass "
            f"module={type(module).__name__} (with module_params for its arguments), "
            f"not module={type(module).__name__}(...). Each fit builds fresh instances."
        )
    if not (isinstance(module, type) and issubclass(module, nn.Module)):
        raise ValueError(f"module must be a subclass of torch.nn.Module, got {module!r}.")
    return module, dict(module_params or {})


def _make_activation(activation):
    return _ACTIVATION_CLASSES[activation]()


def _make_dropout(dropout):
    return nn.Dropout(dropout) if dropout > 0 else nn.Identity()


def _mlp(sizes, activation, dropout):
    """``Linear -> activation -> dropout`` for each consecutive pair of ``sizes``."""
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [
            nn.Linear(n_in, n_out, dtype=torch.float32),
            _make_activation(activation),
            _make_dropout(dropout),
        ]
    return nn.Sequential(*layers)


def _instantiate(module, module_params, n_features):
    """Build the user's module in float32 and find its output width with a dry run."""
    try:
        instance = module(**module_params)
    except Exception as exc:
        raise ValueError(
            f"Could not build the custom module {module.__name__}(**{module_params!r}): {exc}"
        ) from exc
    if not isinstance(instance, nn.Module):
        raise ValueError(f"module {module.__name__} did not build an nn.Module.")
    instance.float()
    was_training = instance.training
    instance.eval()
    try:
        with torch.no_grad():
            out = instance(torch.zeros(2, n_features, dtype=torch.float32))
    except Exception as exc:
        raise ValueError(
            f"The custom module {module.__name__} failed on a zero batch of shape "
            f"(2, {n_features}) (it receives X of shape (batch, n_features) and must reshape "
            f"it itself): {exc}"
        ) from exc
    finally:
        instance.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() < 2 or out.shape[0] != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"The custom module {module.__name__} must return a tensor of shape (batch, ...); "
            f"on a (2, {n_features}) batch it returned {shape}."
        )
    return instance, out[0].numel()


def _last_parametrised_layer(module):
    """The last submodule (in registration order) that owns parameters itself, or None."""
    last = None
    for sub in module.modules():
        if next(sub.parameters(recurse=False), None) is not None:
            last = sub
    return last


class _PairwiseSquaredDistances(torch.autograd.Function):
    """``sum_{s<t} ||a_s - a_t||^2`` over the slices of ``stacked`` (T, ...), in O(T).

    Uses ``sum_{s<t} ||a_s - a_t||^2 = T * sum_t ||a_t - mean(a)||^2``, whose gradient with
    respect to ``a_t`` is ``2 T (a_t - mean(a))``. Written as a Function so that forward and
    backward each allocate one tensor of the size of ``stacked`` (the autograd graph of the
    formula keeps several), which matters for towers whose first layer is ``T x n_features x h``.
    """

    @staticmethod
    def forward(ctx, stacked):
        ctx.save_for_backward(stacked)
        centred = stacked - stacked.mean(dim=0, keepdim=True)
        return stacked.shape[0] * centred.square_().sum()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (stacked,) = ctx.saved_tensors
        centred = stacked - stacked.mean(dim=0, keepdim=True)
        return centred.mul_(2 * stacked.shape[0] * grad)


def _sum_of_pairwise_squared_distances(stacked):
    return _PairwiseSquaredDistances.apply(stacked)


def _check_penalty_weight(name, value):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not value >= 0
        or math.isinf(value)
    ):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    return float(value)


def _stitch_init(size, diagonal=0.9):
    """``size x size`` mixing matrix: ``diagonal`` on the diagonal, the rest spread evenly."""
    if size == 1:
        return torch.ones(1, 1, dtype=torch.float32)
    alpha = torch.full((size, size), (1.0 - diagonal) / (size - 1), dtype=torch.float32)
    alpha.fill_diagonal_(diagonal)
    return alpha


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


class BatchedLinear(nn.Module):
    """``T`` independent linear layers evaluated with one batched matrix product.

    Task ``t``'s layer maps ``x_t`` to ``x_t @ weight[t] + bias[t]``: it is the
    :class:`torch.nn.Linear` whose ``weight`` is ``weight[t].T`` and whose ``bias`` is
    ``bias[t]``. Each slice is initialised as :class:`torch.nn.Linear` initialises its weights,
    uniform on ``[-1/sqrt(in_features), 1/sqrt(in_features)]``.

    Parameters
    ----------
    n_tasks : int
        Number of layers ``T``.
    in_features : int
        Input width of every layer.
    out_features : int
        Output width of every layer.
    bias : bool, default=True
        Whether the layers have a bias.

    Attributes
    ----------
    weight : Parameter of shape (n_tasks, in_features, out_features)
    bias : Parameter of shape (n_tasks, out_features) or None
    """

    def __init__(self, n_tasks, in_features, out_features, *, bias=True):
        super().__init__()
        self.n_tasks = n_tasks
        self.in_features = in_features
        self.out_features = out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(
            torch.empty(n_tasks, in_features, out_features, dtype=torch.float32).uniform_(
                -bound, bound
            )
        )
        if bias:
            self.bias = nn.Parameter(
                torch.empty(n_tasks, out_features, dtype=torch.float32).uniform_(-bound, bound)
            )
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        """Apply layer ``t`` to ``x[t]``, or every layer to the same ``x``.

        Parameters
        ----------
        x : Tensor of shape (n_tasks, B, in_features) or (B, in_features)
            A 2-D input is read by every layer (one matrix product, no copy of ``x``).

        Returns
        -------
        out : Tensor of shape (n_tasks, B, out_features)
        """
        if x.dim() == 2:
            # One (B, in) x (in, T * out) product. torch.matmul would broadcast x to (T, B, in),
            # and its backward would materialise that copy.
            n_tasks, n_in, n_out = self.weight.shape
            flat = self.weight.transpose(0, 1).reshape(n_in, n_tasks * n_out)
            out = (x @ flat).view(x.shape[0], n_tasks, n_out).transpose(0, 1)
        else:
            out = torch.matmul(x, self.weight)
        if self.bias is not None:
            out = out + self.bias.unsqueeze(1)
        return out

    def extra_repr(self):
        return (
            f"n_tasks={self.n_tasks}, in_features={self.in_features}, "
            f"out_features={self.out_features}, bias={self.bias is not None}"
        )


class _TaskHeads(nn.Module):
    """Heads of all tasks: batched hidden layers, then a batched output layer padded to max(K)."""

    def __init__(self, n_tasks, in_features, head_layer_sizes, output_sizes, activation, dropout):
        super().__init__()
        sizes = [in_features, *head_layer_sizes]
        self.hidden = nn.ModuleList(
            BatchedLinear(n_tasks, n_in, n_out)
            for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.activation = _make_activation(activation)
        self.dropout = _make_dropout(dropout)
        self.output = BatchedLinear(n_tasks, sizes[-1], max(output_sizes))
        mask = torch.arange(max(output_sizes)) < torch.tensor(output_sizes).unsqueeze(1)
        with torch.no_grad():  # padded columns are 0 and, never read, receive no gradient
            self.output.weight.mul_(mask.unsqueeze(1))
            self.output.bias.mul_(mask)
        self.register_buffer("output_mask", mask, persistent=False)

    def forward(self, R):
        for layer in self.hidden:
            R = self.dropout(self.activation(layer(R)))
        return self.output(R)


class _BatchedTowers(nn.Module):
    """Towers of all tasks (an MLP each), batched; optionally mixed after each hidden layer."""

    def __init__(self, n_tasks, n_features, hidden_layer_sizes, activation, dropout):
        super().__init__()
        sizes = [n_features, *hidden_layer_sizes]
        self.layers = nn.ModuleList(
            BatchedLinear(n_tasks, n_in, n_out)
            for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.activation = _make_activation(activation)
        self.dropout = _make_dropout(dropout)

    def layer_outputs(self, X, mix=None):
        """Yield each hidden layer's (T, B, h_l) output, after ``mix(l, H)`` when given."""
        H = X
        for index, layer in enumerate(self.layers):
            H = self.dropout(self.activation(layer(H)))
            if mix is not None:
                H = mix(index, H)
            yield H

    def forward(self, X, mix=None):
        """The last hidden layer's (T, B, h) output (at least one layer)."""
        *_, H = self.layer_outputs(X, mix)
        return H


# --------------------------------------------------------------------------------------------
# The base class
# --------------------------------------------------------------------------------------------


class MultiTaskModule(nn.Module):
    """Base class of the sharing strategies: a representation, then one head per task.

    A subclass builds its layers, then calls ``_init_heads(representation_size)`` and implements
    :meth:`shared`. Use :func:`build_module` to build one by name.

    Each head is ``head_layer_sizes`` hidden layers (``Linear -> activation -> dropout``), then an
    output ``Linear`` of width ``output_sizes[t]``. The heads of all tasks are stored and evaluated
    batched (:class:`BatchedLinear`); the output layer is padded to ``max(output_sizes)`` columns
    whose padded weights are 0 and never used.

    Parameters
    ----------
    n_features : int
        Width of the input ``X``.
    output_sizes : sequence of int
        Output width of each task: 1 for a regression or binary task, ``K_t`` for a multiclass
        task with ``K_t`` classes. Its length is the number of tasks ``T``.
    head_layer_sizes : sequence of int, default=()
        Hidden layers of each task head.
    activation : {"relu", "gelu", "tanh", "logistic", "identity"}, default="relu"
        Activation after every hidden layer (trunk, towers and heads).
    dropout : float, default=0.0
        Dropout probability after every hidden activation.

    Attributes
    ----------
    n_tasks : int
        Number of tasks ``T``.
    output_sizes : list of int
        Output width of each task.
    shares_representation : bool
        True when :meth:`shared` returns one ``(B, h)`` tensor read by every head.
    has_shared_part : bool
        True when :meth:`forward_shared` can give the outputs of a task not seen in fit.
    representation_size : int
        Width ``h`` of the representation.
    task_heads : nn.Module
        The batched heads; ``task_heads.hidden[i]`` and ``task_heads.output`` are
        :class:`BatchedLinear` layers.
    output_mask : BoolTensor of shape (n_tasks, max(output_sizes))
        True where column ``k`` of the padded output is a real output of task ``t``
        (``k < output_sizes[t]``).
    last_shared_layer : nn.Module or None
        The last layer whose parameters all tasks share, or None.
    """

    shares_representation = False
    has_shared_part = False

    def __init__(
        self, n_features, output_sizes, *, head_layer_sizes=(), activation="relu", dropout=0.0
    ):
        super().__init__()
        self.n_features = _check_positive_int("n_features", n_features)
        self.output_sizes = _check_sizes("output_sizes", output_sizes, allow_empty=False)
        self.n_tasks = len(self.output_sizes)
        self.head_layer_sizes = tuple(_check_sizes("head_layer_sizes", head_layer_sizes))
        self.activation = _check_choice("activation", activation, ACTIVATIONS)
        self.dropout = _check_dropout(dropout)
        self._max_output_size = max(self.output_sizes)

    def _init_heads(self, representation_size):
        self.representation_size = int(representation_size)
        self.task_heads = _TaskHeads(
            self.n_tasks,
            self.representation_size,
            self.head_layer_sizes,
            self.output_sizes,
            self.activation,
            self.dropout,
        )

    @property
    def output_mask(self):
        return self.task_heads.output_mask

    @property
    def last_shared_layer(self):
        """The last layer whose parameters all tasks share (None when there is none)."""
        return None

    def _check_input(self, X):
        if X.dim() != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X must have shape (batch, {self.n_features}), got {tuple(X.shape)}.")

    def shared(self, X):
        """The representation the task heads read.

        Parameters
        ----------
        X : Tensor of shape (B, n_features), float32
            The features of a batch.

        Returns
        -------
        R : Tensor of shape (B, h) if ``shares_representation`` else (T, B, h)
            For a per-task representation, slot ``t`` is read by head ``t`` only.
        """
        raise NotImplementedError

    def heads_padded(self, R):
        """Outputs of all task heads as one padded tensor.

        Parameters
        ----------
        R : Tensor of shape (T, B, h) or (B, h)
            Slot ``t`` is the input of head ``t``. A 2-D ``R`` is read by every head; it gives
            the same values as ``R.expand(T, -1, -1)`` (up to float rounding) with one matrix
            product instead of ``T`` and without a ``(T, B, h)`` copy.

        Returns
        -------
        out : Tensor of shape (T, B, max(output_sizes))
            ``out[t, :, :output_sizes[t]]`` is the output of task ``t``; the padded columns
            (``output_mask`` False) are 0 and must be left out of any loss.
        """
        if R.dim() == 3 and R.shape[0] != self.n_tasks:
            raise ValueError(
                f"R must have {self.n_tasks} slots (one per task) in dimension 0, "
                f"got shape {tuple(R.shape)}."
            )
        if R.dim() not in (2, 3) or R.shape[-1] != self.representation_size:
            raise ValueError(
                f"R must have shape (T, B, {self.representation_size}) or "
                f"(B, {self.representation_size}), got {tuple(R.shape)}."
            )
        return self.task_heads(R)

    def _split(self, out):
        outputs = out.unbind(0)  # one op (and one op in backward), however many tasks
        return [
            o if size == self._max_output_size else o[:, :size]
            for o, size in zip(outputs, self.output_sizes, strict=True)
        ]

    def heads(self, R):
        """Outputs of the task heads; head ``t`` reads slot ``t`` of ``R`` only.

        The heads never use the layers of :meth:`shared`.

        Parameters
        ----------
        R : Tensor of shape (T, B, h) or (B, h)
            See :meth:`heads_padded`.

        Returns
        -------
        outputs : list of T tensors
            ``outputs[t]`` has shape ``(B, output_sizes[t])``.
        """
        return self._split(self.heads_padded(R))

    def forward_padded(self, X):
        """``heads_padded(shared(X))``: all outputs as one ``(T, B, max(output_sizes))`` tensor.

        Parameters
        ----------
        X : Tensor of shape (B, n_features), float32
            The features of a batch.

        Returns
        -------
        out : Tensor of shape (T, B, max(output_sizes))
            Padded columns (``output_mask`` False) are 0.
        """
        return self.heads_padded(self.shared(X))

    def forward(self, X):
        """``heads(shared(X))``.

        A shared ``(B, h)`` representation is passed to the heads as it is (the fast path of
        :meth:`heads_padded`), which equals the heads of its ``T``-fold expansion up to float
        rounding.

        Parameters
        ----------
        X : Tensor of shape (B, n_features), float32
            The features of a batch.

        Returns
        -------
        outputs : list of T tensors
            ``outputs[t]`` has shape ``(B, output_sizes[t])``.
        """
        return self._split(self.forward_padded(X))

    def forward_shared(self, X):
        """Outputs of every head on the representation of an unseen task.

        Strategies with a part shared by all tasks (``has_shared_part``) define the
        representation a task without parameters of its own would get: the trunk's output for
        ``"hard"`` sharing, the network fed the mean task embedding for ``"conditioned"``.
        The estimators average these head outputs to predict a task not seen in fit.

        Parameters
        ----------
        X : Tensor of shape (B, n_features), float32
            The features of a batch.

        Returns
        -------
        out : Tensor of shape (T, B, max(output_sizes))
            Head ``t``'s output on the shared representation; padded columns are 0.

        Raises
        ------
        ValueError
            For a strategy without a shared part: every parameter belongs to one task.
        """
        raise ValueError(
            f"{type(self).__name__} has no part shared by all tasks (every tower belongs to "
            "one task), so it cannot predict a task not seen in fit."
        )

    def penalty(self):
        """Scalar added to the training loss (0 unless a strategy regularises its parameters).

        Returns
        -------
        penalty : 0-dim Tensor
        """
        return self.task_heads.output.weight.new_zeros(())

    def end_epoch(self, epoch, task_affinity):
        """Hook called once at the end of every training epoch (nothing by default).

        The net calls it under ``torch.no_grad()`` after the epoch's last optimizer step and
        before early stopping looks at the epoch. Strategies with a state updated once per epoch
        use it: the task covariance of ``"relationship"``, the previous-epoch snapshot of
        ``"stacked"``, the branching of ``"adaptive"``.

        Parameters
        ----------
        epoch : int
            Number of training epochs done so far (1 after the first).
        task_affinity : callable
            Called without arguments, returns the ``(T, T)`` ndarray of the mean cosines of the
            task gradients measured so far (NaN where never measured, 1 on the diagonal).
        """


# --------------------------------------------------------------------------------------------
# The strategies
# --------------------------------------------------------------------------------------------


@Substitution(**_MODULE_DOCS)
class HardSharingModule(MultiTaskModule):
    """Hard parameter sharing: one trunk shared by all tasks, one head per task.

    ::

                                                      +-> [head 1] -> y_1
        X --> [trunk: (Linear-act-dropout) x L] --> r +-> [head 2] -> y_2
              or the user's module                    |     ...
                                                      +-> [head T] -> y_T

    ``r`` of shape ``(B, h)`` is read by every head (``shares_representation`` is True). The
    trunk is the MLP of ``hidden_layer_sizes`` or, when ``module`` is given,
    ``module(**module_params)``, whose output (flattened after the batch dimension) is ``r``.
    With ``hidden_layer_sizes=()`` and no module the trunk is the identity, ``r = X``, and the
    model is ``T`` separate heads.

    Parameters
    ----------
    {module_inputs}
    hidden_layer_sizes : sequence of int, default=(64,)
        Hidden layers of the trunk (ignored when ``module`` is given).
    {head_layers}
    module : nn.Module subclass, default=None
        A class to use as the trunk, built as ``module(**module_params)``. It receives ``X`` of
        shape ``(B, n_features)`` as given (reshaping it is its job, e.g. to images) and returns
        ``(B, ...)``. Its output width is found by a dry run on a zero batch of two rows, in
        eval mode. Its parameters are cast to float32.
    module_params : dict, default=None
        Keyword arguments of ``module``.

    Attributes
    ----------
    trunk : nn.Module
        The shared trunk.
    last_shared_layer : nn.Module or None
        The trunk's last ``Linear`` (for a user module, its last submodule owning parameters);
        None when the trunk is the identity.
    """

    shares_representation = True

    def __init__(
        self,
        n_features,
        output_sizes,
        *,
        hidden_layer_sizes=(64,),
        head_layer_sizes=(),
        activation="relu",
        dropout=0.0,
        module=None,
        module_params=None,
    ):
        super().__init__(
            n_features,
            output_sizes,
            head_layer_sizes=head_layer_sizes,
            activation=activation,
            dropout=dropout,
        )
        module, module_params = _check_custom_module(module, module_params)
        if module is None:
            sizes = [self.n_features, *_check_sizes("hidden_layer_sizes", hidden_layer_sizes)]
            self.trunk = _mlp(sizes, self.activation, self.dropout)
            width = sizes[-1]
        else:
            self.trunk, width = _instantiate(module, module_params, self.n_features)
        self._init_heads(width)

    has_shared_part = True

    @property
    def last_shared_layer(self):
        return _last_parametrised_layer(self.trunk)

    def shared(self, X):
        self._check_input(X)
        rep = self.trunk(X)
        return rep.flatten(1) if rep.dim() > 2 else rep

    def forward_shared(self, X):
        """Every head on the trunk's output (the same as :meth:`forward_padded`)."""
        return self.forward_padded(X)


@Substitution(**_MODULE_DOCS)
class IndependentModule(MultiTaskModule):
    """No sharing: one tower and one head per task (the deep single-task baseline).

    ::

        X -+-> [tower 1] --> r_1 --> [head 1] --> y_1
           +-> [tower 2] --> r_2 --> [head 2] --> y_2
           |       ...
           +-> [tower T] --> r_T --> [head T] --> y_T

    Tower ``t`` is the MLP of ``hidden_layer_sizes`` (``Linear-act-dropout`` per layer); the towers
    of all tasks are evaluated batched (:class:`BatchedLinear`, one ``(T, h_in, h_out)`` weight
    per layer). :meth:`shared` returns ``(T, B, h)`` with ``r_t`` in slot ``t``; nothing of task
    ``t``'s output depends on another task's parameters. With ``hidden_layer_sizes=()`` (and no
    module) the towers are the identity and every slot is ``X``.

    Parameters
    ----------
    {module_inputs}
    hidden_layer_sizes : sequence of int, default=(64,)
        Hidden layers of each tower (ignored when ``module`` is given).
    {head_layers}
    module : nn.Module subclass, default=None
        A class used as the tower: ``T`` instances ``module(**module_params)``, evaluated in a
        Python loop (slower than the batched MLP towers). See :class:`HardSharingModule` for
        what the class must do.
    module_params : dict, default=None
        Keyword arguments of ``module``.

    Attributes
    ----------
    towers : nn.Module
        The batched MLP towers (``towers.layers[l]`` is a :class:`BatchedLinear`), or an
        ``nn.ModuleList`` of ``T`` user modules.
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
        module=None,
        module_params=None,
    ):
        super().__init__(
            n_features,
            output_sizes,
            head_layer_sizes=head_layer_sizes,
            activation=activation,
            dropout=dropout,
        )
        module, module_params = _check_custom_module(module, module_params)
        self._custom = module is not None
        if module is None:
            self.hidden_layer_sizes = tuple(_check_sizes("hidden_layer_sizes", hidden_layer_sizes))
            self._check_hidden_layers()
            self.towers = _BatchedTowers(
                self.n_tasks,
                self.n_features,
                self.hidden_layer_sizes,
                self.activation,
                self.dropout,
            )
            width = self.hidden_layer_sizes[-1] if self.hidden_layer_sizes else self.n_features
        else:
            built = [
                _instantiate(module, module_params, self.n_features) for _ in self.output_sizes
            ]
            self.towers = nn.ModuleList(instance for instance, _ in built)
            width = built[0][1]
        self._init_heads(width)

    def _check_hidden_layers(self):
        """Hook for subclasses that need at least one hidden layer."""

    def shared(self, X):
        self._check_input(X)
        if self._custom:
            return torch.stack([tower(X).flatten(1) for tower in self.towers])
        if not self.hidden_layer_sizes:
            return X.unsqueeze(0).expand(self.n_tasks, -1, -1)
        return self.towers(X)


@Substitution(**_MODULE_DOCS)
class SoftSharingModule(IndependentModule):
    """Soft parameter sharing: towers as in ``"independent"``, pulled together by a penalty.

    ::

        X -+-> [tower 1: W_1^1 ... W_L^1] --> r_1 --> [head 1] --> y_1
           |            ^         ^
           |     ||W_1^s - W_1^t||^2 ... ||W_L^s - W_L^t||^2   (every pair s < t)
           |            v         v
           +-> [tower T: W_1^T ... W_L^T] --> r_T --> [head T] --> y_T

    :meth:`penalty` returns

    .. math::

        \\text{soft\\_penalty} \\sum_{l=1}^{L} \\sum_{1 \\le s < t \\le T}
        \\left( \\|W_l^s - W_l^t\\|_F^2 + \\|b_l^s - b_l^t\\|_2^2 \\right)

    over every unordered pair of tasks ``s < t`` and every tower layer ``l`` (weights ``W`` and
    biases ``b``; for a user ``module``, every parameter tensor, matched by name across the ``T``
    instances). The heads are task specific and not penalised. It is computed in ``O(T)`` with
    ``sum_{s<t} ||a_s - a_t||^2 = T * sum_t ||a_t - mean(a)||^2``. ``soft_penalty = 0`` gives the
    independent model.

    Parameters
    ----------
    {module_inputs}
    hidden_layer_sizes : sequence of int, default=(64,)
        Hidden layers of each tower; at least one (ignored when ``module`` is given).
    {head_layers}
    soft_penalty : float, default=0.0
        Strength of the penalty, ``>= 0``.
    module : nn.Module subclass, default=None
        A class used as the tower (``T`` instances), as in :class:`IndependentModule`.
    module_params : dict, default=None
        Keyword arguments of ``module``.
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
        soft_penalty=0.0,
        module=None,
        module_params=None,
    ):
        if (
            isinstance(soft_penalty, bool)
            or not isinstance(soft_penalty, numbers.Real)
            or not soft_penalty >= 0
            or math.isinf(soft_penalty)
        ):
            raise ValueError(f"soft_penalty must be a finite number >= 0, got {soft_penalty!r}.")
        super().__init__(
            n_features,
            output_sizes,
            hidden_layer_sizes=hidden_layer_sizes,
            head_layer_sizes=head_layer_sizes,
            activation=activation,
            dropout=dropout,
            module=module,
            module_params=module_params,
        )
        self.soft_penalty = float(soft_penalty)

    def _check_hidden_layers(self):
        if not self.hidden_layer_sizes:
            raise ValueError(
                "sharing='soft' penalises the differences between the towers' layers and needs "
                "at least one hidden layer; hidden_layer_sizes=() leaves none."
            )

    def _stacked_tower_parameters(self):
        """One (T, ...) tensor per matching tower parameter."""
        if not self._custom:
            return list(self.towers.parameters())
        per_tower = [dict(tower.named_parameters()) for tower in self.towers]
        return [torch.stack([params[name] for params in per_tower]) for name in per_tower[0]]

    def penalty(self):
        total = self.task_heads.output.weight.new_zeros(())
        if self.soft_penalty == 0:
            return total
        for stacked in self._stacked_tower_parameters():
            total = total + _sum_of_pairwise_squared_distances(stacked)
        return self.soft_penalty * total


@Substitution(**_MODULE_DOCS)
class CrossStitchModule(MultiTaskModule):
    """Cross-stitch networks (Misra et al., 2016): towers mixed by learned ``T x T`` units.

    ::

        X -+-> [L_1^1] -> a_1 -+              +-> a'_1 -> [L_2^1] -> ... -> r_1 -> [head 1]
           |      ...          +-- alpha^(1) -+     ...
           +-> [L_1^T] -> a_T -+   (T x T)    +-> a'_T -> [L_2^T] -> ... -> r_T -> [head T]

    One tower per task (batched, as in :class:`IndependentModule`). After hidden layer ``l``
    (``Linear -> activation -> dropout``) the towers' activations are mixed:
    ``a'_t = sum_s alpha^(l)[t, s] a_s``, with one learned, unconstrained ``alpha^(l)`` per
    hidden layer, including the last (whose mixed output is ``r``).

    Initialisation: ``alpha[t, t] = 0.9`` and ``alpha[t, s] = 0.1 / (T - 1)`` for ``s != t``, so
    every row sums to 1 (the 0.9 / 0.1 of Misra et al. for two tasks); ``alpha = [[1]]`` for one
    task.

    Parameters
    ----------
    {module_inputs}
    hidden_layer_sizes : sequence of int, default=(64,)
        Hidden layers of each tower; at least one.
    head_layer_sizes : sequence of int, default=()
        Hidden layers of each head.
    activation : {"relu", "gelu", "tanh", "logistic", "identity"}, default="relu"
        Activation after every hidden layer.
    dropout : float, default=0.0
        Dropout probability after every hidden activation (before the mixing).

    Attributes
    ----------
    towers : nn.Module
        The batched towers; ``towers.layers[l]`` is a :class:`BatchedLinear`.
    alphas : nn.ParameterList
        ``alphas[l]`` of shape ``(T, T)``: the mixing after hidden layer ``l``.
    """

    _sharing_name = "cross_stitch"

    def __init__(
        self,
        n_features,
        output_sizes,
        *,
        hidden_layer_sizes=(64,),
        head_layer_sizes=(),
        activation="relu",
        dropout=0.0,
    ):
        super().__init__(
            n_features,
            output_sizes,
            head_layer_sizes=head_layer_sizes,
            activation=activation,
            dropout=dropout,
        )
        self.hidden_layer_sizes = tuple(
            _check_hidden_required(self._sharing_name, hidden_layer_sizes)
        )
        self.towers = _BatchedTowers(
            self.n_tasks, self.n_features, self.hidden_layer_sizes, self.activation, self.dropout
        )
        self._init_mixing()
        self._init_heads(self._representation_width())

    def _init_mixing(self):
        self.alphas = nn.ParameterList(
            nn.Parameter(_stitch_init(self.n_tasks)) for _ in self.hidden_layer_sizes
        )

    def _representation_width(self):
        return self.hidden_layer_sizes[-1]

    def _mix(self, index, H):
        n_tasks, batch, width = H.shape
        return (self.alphas[index] @ H.reshape(n_tasks, batch * width)).view(n_tasks, batch, width)

    def shared(self, X):
        self._check_input(X)
        return self.towers(X, mix=self._mix)


@Substitution(**_MODULE_DOCS)
class SluiceModule(CrossStitchModule):
    """Sluice networks (Ruder et al., 2019): cross-stitch over subspaces, plus layer mixing.

    ::

        X -+-> [L_1^1] -> (G_11|G_12) -+               +-> [L_2^1] -> ...   beta_1 . (h_1^1..h_L^1)
           |        ...                +- alpha^(1) ---+       ...             -> r_1 -> [head 1]
           +-> [L_1^T] -> (G_T1|G_T2) -+  (2T x 2T)    +-> [L_2^T] -> ...   beta_T . (h_1^T..h_L^T)
                                                                               -> r_T -> [head T]

    One tower per task (batched). After hidden layer ``l`` (``Linear -> activation -> dropout``)
    the ``h_l`` units of every tower are split into ``n_subspaces`` contiguous subspaces of
    ``h_l / n_subspaces`` units (so hidden widths must be divisible by ``n_subspaces``), and the
    ``T * n_subspaces`` subspaces are mixed by a learned matrix ``alpha^(l)``:
    ``G'_{t,k} = sum_{s,j} alpha^(l)[(t,k), (s,j)] G_{s,j}`` (index ``t * n_subspaces + k``).

    Layer mixing: head ``t`` reads ``r_t = sum_l beta[t, l] P_l(h_l^t)``, where ``h_l^t`` is the
    mixed output of layer ``l`` of tower ``t`` and ``beta[t] = softmax(beta_logits[t])`` over the
    ``L`` hidden layers. Layers of the last layer's width are used as they are (``P_l`` the
    identity); a layer of another width is mapped to the last width by a learned per-task linear
    projection without bias, ``P_l`` (a :class:`BatchedLinear`). With equal widths there is no
    projection, as in the paper.

    Initialisation: ``alpha^(l)`` has 0.9 on the diagonal and ``0.1 / (T * n_subspaces - 1)``
    elsewhere (rows sum to 1, as in :class:`CrossStitchModule`); ``beta_logits = 0``, i.e. equal
    weights ``1 / L`` on all layers.

    Subspace orthogonality (Ruder et al., 2019): :meth:`penalty` returns

    .. math::

        \\lambda \\sum_{t=1}^{T} \\sum_{l=1}^{L} \\sum_{1 \\le j < k \\le S}
        \\left\\| W_{t,l,j}^\\top W_{t,l,k} \\right\\|_F^2

    with ``lambda = orthogonality``, ``S = n_subspaces`` and ``W_{t,l,j}`` the
    ``(h_{l-1}, h_l / S)`` block of the weight of hidden layer ``l`` of tower ``t`` that
    produces subspace ``j``. It pushes the subspaces of a layer to read different directions of
    its input. This is the authors' code (GitHub sebastianruder/sluice-networks, the squared
    Frobenius norm of the product of the two subspaces' weight matrices, summed over layers and
    tasks; its README trains with weight 0.1, the default of the estimators'
    ``sluice_orthogonality``), for any number of subspaces. The penalty depends on the
    parameters only, so it is the same for every batch.

    Parameters
    ----------
    {module_inputs}
    hidden_layer_sizes : sequence of int, default=(64,)
        Hidden layers of each tower; at least one, each divisible by ``n_subspaces``.
    head_layer_sizes : sequence of int, default=()
        Hidden layers of each head.
    activation : {"relu", "gelu", "tanh", "logistic", "identity"}, default="relu"
        Activation after every hidden layer.
    dropout : float, default=0.0
        Dropout probability after every hidden activation (before the mixing).
    n_subspaces : int, default=2
        Number of subspaces each layer is split into.
    orthogonality : float, default=0.0
        Weight ``lambda >= 0`` of the subspace orthogonality penalty.

    Attributes
    ----------
    alphas : nn.ParameterList
        ``alphas[l]`` of shape ``(T * n_subspaces, T * n_subspaces)``.
    beta_logits : Parameter of shape (T, L)
        Layer-mixing logits; ``beta`` (a property) is their softmax over layers.
    projections : nn.ModuleList
        ``P_l`` per hidden layer: ``nn.Identity`` or a :class:`BatchedLinear` to the last width.
    """

    _sharing_name = "sluice"

    def __init__(
        self,
        n_features,
        output_sizes,
        *,
        hidden_layer_sizes=(64,),
        head_layer_sizes=(),
        activation="relu",
        dropout=0.0,
        n_subspaces=2,
        orthogonality=0.0,
    ):
        self.n_subspaces = _check_positive_int("n_subspaces", n_subspaces)
        self.orthogonality = _check_penalty_weight("orthogonality", orthogonality)
        super().__init__(
            n_features,
            output_sizes,
            hidden_layer_sizes=hidden_layer_sizes,
            head_layer_sizes=head_layer_sizes,
            activation=activation,
            dropout=dropout,
        )

    def _init_mixing(self):
        odd = [size for size in self.hidden_layer_sizes if size % self.n_subspaces]
        if odd:
            raise ValueError(
                f"sharing='sluice' splits every hidden layer into {self.n_subspaces} subspaces of "
                f"equal width; hidden_layer_sizes={self.hidden_layer_sizes} has widths {odd} not "
                f"divisible by {self.n_subspaces}."
            )
        size = self.n_tasks * self.n_subspaces
        self.alphas = nn.ParameterList(
            nn.Parameter(_stitch_init(size)) for _ in self.hidden_layer_sizes
        )
        width = self.hidden_layer_sizes[-1]
        self.projections = nn.ModuleList(
            nn.Identity() if size == width else BatchedLinear(self.n_tasks, size, width, bias=False)
            for size in self.hidden_layer_sizes
        )
        self.beta_logits = nn.Parameter(
            torch.zeros(self.n_tasks, len(self.hidden_layer_sizes), dtype=torch.float32)
        )

    @property
    def beta(self):
        """Layer-mixing weights, shape ``(T, L)``; each row sums to 1."""
        return torch.softmax(self.beta_logits, dim=1)

    def _mix(self, index, H):
        n_tasks, batch, width = H.shape
        n_sub = self.n_subspaces
        sub = width // n_sub
        G = H.reshape(n_tasks, batch, n_sub, sub).transpose(1, 2).reshape(n_tasks * n_sub, -1)
        G = self.alphas[index] @ G
        return G.view(n_tasks, n_sub, batch, sub).transpose(1, 2).reshape(n_tasks, batch, width)

    def shared(self, X):
        self._check_input(X)
        beta = self.beta
        R = None
        for index, H in enumerate(self.towers.layer_outputs(X, mix=self._mix)):
            term = beta[:, index, None, None] * self.projections[index](H)
            R = term if R is None else R + term
        return R

    def subspace_orthogonality(self):
        """``sum_t sum_l sum_{j<k} ||W_{t,l,j}^T W_{t,l,k}||_F^2`` (see the class docstring)."""
        total = self.task_heads.output.weight.new_zeros(())
        n_sub = self.n_subspaces
        for layer in self.towers.layers:
            n_tasks, n_in, width = layer.weight.shape
            blocks = layer.weight.view(n_tasks, n_in, n_sub, width // n_sub)
            # gram[t, j, :, k, :] = W_{t,j}^T W_{t,k}
            gram = torch.einsum("tijp,tikq->tjpkq", blocks, blocks)
            squares = gram.square().sum(dim=(0, 2, 4))  # (S, S), symmetric
            total = total + (squares.sum() - squares.diagonal().sum()) / 2
        return total

    def penalty(self):
        """``orthogonality * subspace_orthogonality()`` (0 with one subspace or weight 0)."""
        if self.orthogonality == 0 or self.n_subspaces == 1:
            return super().penalty()
        return self.orthogonality * self.subspace_orthogonality()


@Substitution(**_MODULE_DOCS)
class ConditionedModule(MultiTaskModule):
    """One network for all tasks, conditioned on a learned (or given) task embedding ``z_t``.

    ::

        task t --> z_t (learned, embedding_dim)
                     |  concat / sum / multiplicative
                     v
        X -----> [first hidden layer] --> [shared hidden layers] --> r_t --> [head t] --> y_t
                 (evaluated once per task: T copies of the batch after the first layer)

    ``conditioning``:

    * ``"concat"``: the first layer reads ``[x, z_t]``:
      ``a_t = act(W [x; z_t] + b)`` (one ``Linear(n_features + embedding_dim, h_1)``).
    * ``"sum"``: a learned projection of ``z_t`` is added to the first pre-activation, i.e. a
      per-task bias: ``a_t = act(W x + b + P z_t)``.
    * ``"multiplicative"``: FiLM-style scaling of the first hidden activations:
      ``a_t = act(W x + b) * (1 + P z_t)``.

    ``"concat"`` and ``"sum"`` are the same family of functions (conditional biasing); they differ
    only in parametrisation and initial scale (``Linear(n_features + embedding_dim, h_1)``
    against ``Linear(n_features, h_1)`` plus ``Linear(embedding_dim, h_1, bias=False)``).
    ``W x + b`` is computed once per batch, not once per task. The remaining hidden layers are
    shared by all tasks and evaluated on the ``T`` conditioned copies: :meth:`shared` returns
    ``(T, B, h)`` and costs ``T`` times a single network after the first layer. Each task has its
    own head. Dropout follows every hidden activation (after the FiLM scaling).

    Task descriptors. With ``task_descriptors`` (a ``(T, d)`` array: row ``t`` describes task
    ``t``), ``z_t`` is that row, fixed: ``embedding`` is a buffer (not a parameter, never
    trained) and ``embedding_dim = d``. The network then maps any descriptor ``z`` to a
    representation, so :meth:`forward_embedding` can feed the descriptor of a task not seen in
    training (zero-shot prediction).

    Parameters
    ----------
    {module_inputs}
    hidden_layer_sizes : sequence of int, default=(64,)
        Hidden layers of the network; at least one.
    {head_layers}
    conditioning : {"concat", "sum", "multiplicative"}, default="concat"
        How the embedding enters the network.
    embedding_dim : int, default=None
        Width of ``z_t``; None means ``min(8, T)`` (``T`` dimensions are enough to give every task
        an independent direction; 8 caps the cost for many tasks), or ``d`` with
        ``task_descriptors``. With ``task_descriptors`` it must be None or ``d``.
    task_descriptors : array-like of shape (T, d), default=None
        Fixed task embeddings (finite floats), used instead of learned ones.

    Attributes
    ----------
    embedding : Parameter or buffer of shape (T, embedding_dim)
        The task embeddings: learned, initialised from N(0, 1) like ``nn.Embedding``; or, with
        ``task_descriptors``, a float32 buffer holding them (``requires_grad`` False).
    input_layer : nn.Linear
        The first layer (reading ``[x, z]`` for ``"concat"``).
    embedding_projection : nn.Linear or None
        ``P`` (``"sum"`` and ``"multiplicative"``).
    body : nn.Sequential
        The shared hidden layers after the first.
    last_shared_layer : nn.Linear
        The last hidden ``Linear`` (shared by all tasks).
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
        conditioning="concat",
        embedding_dim=None,
        task_descriptors=None,
    ):
        super().__init__(
            n_features,
            output_sizes,
            head_layer_sizes=head_layer_sizes,
            activation=activation,
            dropout=dropout,
        )
        self.conditioning = _check_choice("conditioning", conditioning, CONDITIONING)
        descriptors = None
        if task_descriptors is not None:
            descriptors = _check_descriptors(task_descriptors, self.n_tasks, embedding_dim)
            embedding_dim = descriptors.shape[1]
        elif embedding_dim is None:
            embedding_dim = min(8, self.n_tasks)
        self.embedding_dim = _check_positive_int("embedding_dim", embedding_dim)
        self.hidden_layer_sizes = tuple(_check_hidden_required("conditioned", hidden_layer_sizes))
        first = self.hidden_layer_sizes[0]
        if descriptors is None:
            self.embedding = nn.Parameter(
                torch.randn(self.n_tasks, self.embedding_dim, dtype=torch.float32)
            )
        else:
            self.register_buffer("embedding", descriptors)
        if self.conditioning == "concat":
            self.input_layer = nn.Linear(
                self.n_features + self.embedding_dim, first, dtype=torch.float32
            )
            self.embedding_projection = None
        else:
            self.input_layer = nn.Linear(self.n_features, first, dtype=torch.float32)
            self.embedding_projection = nn.Linear(
                self.embedding_dim, first, bias=False, dtype=torch.float32
            )
        self.input_activation = _make_activation(self.activation)
        self.input_dropout = _make_dropout(self.dropout)
        self.body = _mlp(list(self.hidden_layer_sizes), self.activation, self.dropout)
        self._init_heads(self.hidden_layer_sizes[-1])

    has_shared_part = True

    @property
    def last_shared_layer(self):
        return _last_parametrised_layer(self.body) or self.input_layer

    def shared(self, X, embedding=None):
        """The ``(T, B, h)`` representations; see :meth:`MultiTaskModule.shared`.

        ``embedding`` (``(m, embedding_dim)``), when given, replaces the task embeddings and
        the result is ``(m, B, h)``.
        """
        self._check_input(X)
        embedding = self.embedding if embedding is None else embedding
        if self.conditioning == "concat":
            weight = self.input_layer.weight
            pre = F.linear(X, weight[:, : self.n_features], self.input_layer.bias)
            task_term = F.linear(embedding, weight[:, self.n_features :])
            H = self.input_activation(pre.unsqueeze(0) + task_term.unsqueeze(1))
        else:
            pre = self.input_layer(X)
            task_term = self.embedding_projection(embedding).unsqueeze(1)
            if self.conditioning == "sum":
                H = self.input_activation(pre.unsqueeze(0) + task_term)
            else:
                H = self.input_activation(pre).unsqueeze(0) * (1.0 + task_term)
        return self.body(self.input_dropout(H))

    def forward_embedding(self, X, embedding):
        """Every head on the network fed one task embedding (e.g. a new task's descriptor).

        Parameters
        ----------
        X : Tensor of shape (B, n_features), float32
            The features of a batch.
        embedding : Tensor of shape (embedding_dim,)
            The ``z`` fed to the network in place of a task's embedding.

        Returns
        -------
        out : Tensor of shape (T, B, max(output_sizes))
            Head ``t``'s output on the representation of ``z``; padded columns are 0.
        """
        embedding = embedding.to(self.embedding)
        return self.heads_padded(self.shared(X, embedding.reshape(1, -1))[0])

    def forward_shared(self, X):
        """Every head on the network fed the mean task embedding ``mean_t z_t``."""
        return self.forward_embedding(X, self.embedding.mean(0))


def _check_descriptors(task_descriptors, n_tasks, embedding_dim):
    """The ``(T, d)`` float32 tensor of the task descriptors, validated."""
    values = torch.as_tensor(task_descriptors, dtype=torch.float32).detach().clone()
    if values.dim() != 2 or values.shape[0] != n_tasks or values.shape[1] == 0:
        raise ValueError(
            f"task_descriptors must have shape ({n_tasks}, d) with d >= 1 (one row per task), "
            f"got {tuple(values.shape)}."
        )
    bad = torch.nonzero(~torch.isfinite(values).all(dim=1)).flatten().tolist()
    if bad:
        raise ValueError(f"task_descriptors of task(s) {bad[:5]} are not finite.")
    if embedding_dim is not None and embedding_dim != values.shape[1]:
        raise ValueError(
            f"embedding_dim={embedding_dim!r} but task_descriptors have {values.shape[1]} "
            "columns; with task descriptors, embedding_dim must be None (it is their width)."
        )
    return values


def _check_hidden_required(sharing, hidden_layer_sizes):
    sizes = _check_sizes("hidden_layer_sizes", hidden_layer_sizes)
    if not sizes:
        raise ValueError(
            f"sharing={sharing!r} needs at least one hidden layer; got hidden_layer_sizes=()."
        )
    return sizes


# --------------------------------------------------------------------------------------------
# The factory
# --------------------------------------------------------------------------------------------


def build_module(
    sharing,
    n_features,
    output_sizes,
    *,
    hidden_layer_sizes=(64,),
    head_layer_sizes=(),
    activation="relu",
    dropout=0.0,
    soft_penalty=0.0,
    sluice_orthogonality=0.0,
    conditioning="concat",
    embedding_dim=None,
    task_descriptors=None,
    tensor_rank=None,
    task_depths=None,
    task_order=None,
    max_branches=None,
    split_after=1,
    relationship_penalty=0.1,
    successive_penalty=1e-2,
    module=None,
    module_params=None,
    auxiliary=None,
    hint_columns=None,
    hint_mean=None,
    hint_scale=None,
):
    """Build the multi-task network of a sharing strategy.

    Parameters
    ----------
    sharing : str
        The sharing strategy, one of ``SHARING``: :class:`IndependentModule`,
        :class:`HardSharingModule`, :class:`SoftSharingModule`, :class:`CrossStitchModule`,
        :class:`SluiceModule`, :class:`ConditionedModule`,
        :class:`TensorFactorisationModule`, :class:`RelationshipModule`,
        :class:`AdaptiveModule`, :class:`LowSupervisionModule` or :class:`StackedModule`.
    n_features : int
        Width of the input ``X``.
    output_sizes : sequence of int
        Output width of each task: 1 for a regression or binary task, ``K_t`` for a multiclass
        task. Its length is the number of tasks ``T``.
    hidden_layer_sizes : sequence of int, default=(64,)
        Hidden layers of the trunk (``"hard"``), of each tower (``"independent"``, ``"soft"``,
        ``"cross_stitch"``, ``"sluice"``) or of the conditioned network. Ignored when ``module``
        is given.
    head_layer_sizes : sequence of int, default=()
        Hidden layers of each task head, before its output layer.
    activation : {"relu", "gelu", "tanh", "logistic", "identity"}, default="relu"
        Activation after every hidden layer.
    dropout : float, default=0.0
        Dropout probability after every hidden activation.
    soft_penalty : float, default=0.0
        Strength of the ``"soft"`` penalty (see :class:`SoftSharingModule`); used by
        ``"soft"`` only.
    sluice_orthogonality : float, default=0.0
        Weight of the subspace orthogonality penalty of ``"sluice"`` (see
        :class:`SluiceModule`); used by ``"sluice"`` only.
    conditioning : {"concat", "sum", "multiplicative"}, default="concat"
        How ``"conditioned"`` feeds the task embedding (see :class:`ConditionedModule`); used by
        ``"conditioned"`` only, but always validated.
    embedding_dim : int, default=None
        Width of the task embedding of ``"conditioned"``; None means ``min(8, T)``, or the
        width of ``task_descriptors``.
    task_descriptors : array-like of shape (T, d), default=None
        Fixed task embeddings of ``"conditioned"`` (see :class:`ConditionedModule`); any other
        strategy raises a ValueError when they are given.
    tensor_rank : int, default=None
        Rank of the task mode of ``"tensor_factorisation"``; None means
        ``min(ceil(T / 2), 8)``.
    task_depths : sequence of int, default=None
        Depth (1-based hidden layer) each task's head reads in ``"low_supervision"``; None
        means the top layer for every task (hard sharing).
    task_order : sequence of int, default=None
        Order of the task levels of ``"stacked"`` (a permutation of ``range(T)``); None means
        ``0, ..., T - 1``.
    max_branches : int, default=None
        Most branches of a layer of ``"adaptive"``; None means ``T``.
    split_after : int, default=1
        Epoch at whose end ``"adaptive"`` widens its thin network into branches.
    relationship_penalty : float, default=0.1
        Strength of the matrix-normal prior of ``"relationship"``.
    successive_penalty : float, default=1e-2
        Strength of the successive regularisation of ``"stacked"``.
    module : nn.Module subclass, default=None
        A user module class (e.g. a CNN), built as ``module(**module_params)``: the shared trunk
        for ``"hard"`` and ``"relationship"``, one instance per task for ``"independent"`` and
        ``"soft"``. Other strategies raise a ValueError.
    module_params : dict, default=None
        Keyword arguments of ``module``.
    auxiliary : {None, "reconstruction", "adversarial"}, default=None
        An auxiliary loss on the shared representation (see
        :class:`~skmtl.deep._auxiliary.AuxiliaryHeads`), attached as
        ``module.auxiliary_heads``.
    hint_columns : sequence of int, default=None
        Columns of X that the network does not read but predicts as auxiliary hint targets:
        the strategy is built on the other ``n_features - len(hint_columns)`` columns, and
        ``module.auxiliary_heads.split_input(X)`` separates them.
    hint_mean, hint_scale : sequence of float, default=None
        The hint columns are standardised with these before they are predicted (0 and 1 when
        None).

    Returns
    -------
    module : MultiTaskModule
        A float32 module on the CPU, initialised from torch's global random generator. With
        ``auxiliary`` or ``hint_columns`` it has an ``auxiliary_heads`` submodule (built after
        the strategy, so the strategy's initial weights do not depend on it).

    Raises
    ------
    ValueError
        For an unknown ``sharing``, ``activation`` or ``conditioning``, a ``module`` with a
        strategy that cannot use it, or invalid sizes.

    Examples
    --------
    >>> import torch
    >>> from skmtl.deep.modules import build_module
    >>> _ = torch.manual_seed(0)
    >>> net = build_module("hard", 5, [1, 3], hidden_layer_sizes=(8,))
    >>> net.shares_representation, net.shared(torch.zeros(4, 5)).shape
    (True, torch.Size([4, 8]))
    >>> [out.shape for out in net(torch.zeros(4, 5))]
    [torch.Size([4, 1]), torch.Size([4, 3])]
    """
    hints = [] if hint_columns is None else [int(c) for c in hint_columns]
    network = _build_strategy(
        sharing, n_features - len(hints), output_sizes,
        hidden_layer_sizes=hidden_layer_sizes, head_layer_sizes=head_layer_sizes,
        activation=activation, dropout=dropout, soft_penalty=soft_penalty,
        sluice_orthogonality=sluice_orthogonality, conditioning=conditioning,
        embedding_dim=embedding_dim, task_descriptors=task_descriptors, tensor_rank=tensor_rank,
        task_depths=task_depths, task_order=task_order, max_branches=max_branches,
        split_after=split_after, relationship_penalty=relationship_penalty,
        successive_penalty=successive_penalty, module=module, module_params=module_params,
    )
    if auxiliary is not None or hints:
        from skmtl.deep._auxiliary import AuxiliaryHeads

        network.auxiliary_heads = AuxiliaryHeads(
            network.representation_size, n_features - len(hints), network.n_tasks,
            auxiliary=auxiliary, activation=network.activation, n_features=n_features,
            hint_columns=hints, hint_mean=hint_mean, hint_scale=hint_scale,
        )
    return network


def _build_strategy(
    sharing, n_features, output_sizes, *, hidden_layer_sizes, head_layer_sizes, activation,
    dropout, soft_penalty, sluice_orthogonality, conditioning, embedding_dim, task_descriptors,
    tensor_rank, task_depths, task_order, max_branches, split_after, relationship_penalty,
    successive_penalty, module, module_params,
):
    """The strategy's module of :func:`build_module` (without auxiliary heads)."""
    sharing = _check_choice("sharing", sharing, SHARING)
    _check_choice("activation", activation, ACTIVATIONS)
    _check_choice("conditioning", conditioning, CONDITIONING)
    _check_custom_module(module, module_params)
    if module is not None and sharing not in _CUSTOM_MODULE_USE:
        supported = ", ".join(f"{name!r} ({use})" for name, use in _CUSTOM_MODULE_USE.items())
        raise ValueError(
            f"sharing={sharing!r} cannot use a custom module; a module is supported with "
            f"{supported}."
        )
    common = dict(
        hidden_layer_sizes=hidden_layer_sizes,
        head_layer_sizes=head_layer_sizes,
        activation=activation,
        dropout=dropout,
    )
    custom = dict(module=module, module_params=module_params)
    if task_descriptors is not None and sharing != "conditioned":
        raise ValueError(
            f"task_descriptors condition the network of sharing='conditioned' only; got "
            f"sharing={sharing!r}."
        )
    own = {
        "tensor_factorisation": dict(tensor_rank=tensor_rank),
        "low_supervision": dict(task_depths=task_depths),
        "relationship": dict(relationship_penalty=relationship_penalty, module=module,
                             module_params=module_params),
        "stacked": dict(task_order=task_order, successive_penalty=successive_penalty),
        "adaptive": dict(max_branches=max_branches, split_after=split_after),
    }
    if sharing in own:
        return _NEW_SHARING[sharing](n_features, output_sizes, **own[sharing], **common)
    if sharing == "hard":
        return HardSharingModule(n_features, output_sizes, **common, **custom)
    if sharing == "independent":
        return IndependentModule(n_features, output_sizes, **common, **custom)
    if sharing == "soft":
        return SoftSharingModule(
            n_features, output_sizes, soft_penalty=soft_penalty, **common, **custom
        )
    if sharing == "cross_stitch":
        return CrossStitchModule(n_features, output_sizes, **common)
    if sharing == "sluice":
        return SluiceModule(
            n_features, output_sizes, orthogonality=sluice_orthogonality, **common
        )
    return ConditionedModule(
        n_features,
        output_sizes,
        conditioning=conditioning,
        embedding_dim=embedding_dim,
        task_descriptors=task_descriptors,
        **common,
    )




# The strategies of the private modules build on the blocks above: imported last.
from skmtl.deep._sharing_adaptive import AdaptiveModule  # noqa: E402
from skmtl.deep._sharing_factorised import (  # noqa: E402
    LowSupervisionModule,
    TensorFactorisationModule,
)
from skmtl.deep._sharing_relational import RelationshipModule, StackedModule  # noqa: E402

_NEW_SHARING = {
    "tensor_factorisation": TensorFactorisationModule,
    "relationship": RelationshipModule,
    "adaptive": AdaptiveModule,
    "low_supervision": LowSupervisionModule,
    "stacked": StackedModule,
}
