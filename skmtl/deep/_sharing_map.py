"""Which parameters of a deep multi-task network serve which tasks, found by autograd.

:func:`sharing_map` reads a :class:`~skmtl.deep.modules.MultiTaskModule` and splits every
parameter into blocks of entries with the same *task signature*: the set of tasks whose output
depends on the entry. It is the data behind :class:`skmtl.plotting.SharingDisplay`, the
diagram of a sharing strategy generated from the module itself.
"""

import numbers
from dataclasses import dataclass

import numpy as np

from skmtl.deep.modules import MultiTaskModule, _check_positive_int
from skmtl.utils._optional import import_optional

torch = import_optional("torch", "deep", "the sharing map of a deep multi-task module")

__all__ = ["SharingMap", "sharing_map"]

# The submodule that does not serve the tasks' outputs (auxiliary losses, hint targets).
_EXCLUDED_SUBMODULE = "auxiliary_heads"

nn = torch.nn

# Elementwise activations whose derivative or value can be 0 (dead ReLU units): during the
# measurement both are shifted away from 0 (see _leak_activations).
_ACTIVATION_TYPES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Softplus, nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardsigmoid, nn.Hardswish,
)

# The shift added to the derivative and to the value of every activation. The derivatives of
# the activations above are >= -0.17 (GELU's minimum; a PReLU's learned slope aside) and their
# values are > -1 except for SELU and CELU/ELU near their minimum, where a(x) = -1 at one
# point at most: neither the derivative nor the value is 0 but on a null set.
_LEAK = 1.0


@dataclass(frozen=True)
class SharingMap:
    """The result of :func:`sharing_map`: the task signature of every block of parameters.

    ::

        parameter                 entries   task 0  task 1  task 2
        trunk.0.weight                 20     ##      ##      ##     shared by all tasks
        task_heads.output.weight        3     ##                     task 0 only
        task_heads.output.weight        3             ##             task 1 only
        task_heads.output.weight        3                     ##     task 2 only

    Attributes
    ----------
    blocks : tuple of (str, int, frozenset of int)
        One row per block: the parameter's name (as in ``module.named_parameters()``), the
        number of its entries in the block, and the block's signature, the set of task
        positions whose output depends on these entries (``frozenset()`` for entries no task
        uses). Rows follow the module's parameter order; the rows of one parameter are ordered
        by their sorted signature (the signature holding every task first, then by smallest
        task, the empty signature last), and their entry counts sum to the parameter's
        ``numel()``.
    n_tasks : int
        Number of tasks ``T`` of the module.
    sharing : str
        The module's class name (e.g. ``"HardSharingModule"``).
    """

    blocks: tuple
    n_tasks: int
    sharing: str

    def signature_matrix(self):
        """The ``(n_blocks, n_tasks)`` boolean matrix: True where the task is in the signature.

        Returns
        -------
        matrix : ndarray of shape (len(blocks), n_tasks), dtype bool
        """
        matrix = np.zeros((len(self.blocks), self.n_tasks), dtype=bool)
        for row, (_, _, signature) in enumerate(self.blocks):
            matrix[row, sorted(signature)] = True
        return matrix


def _check_random_state(random_state):
    if random_state is None:
        return None
    if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral) or (
        random_state < 0
    ):
        raise ValueError(
            f"random_state must be a non-negative integer or None, got {random_state!r}."
        )
    return int(random_state)


def _signature_order(signature, n_tasks):
    """Sort key of a block: every task first, then by sorted tasks, the empty set last."""
    if len(signature) == n_tasks:
        return (0, ())
    if not signature:
        return (2, ())
    return (1, tuple(sorted(signature)))


def _blocks_of(name, touched, n_tasks):
    """The rows of one parameter from its ``(T, numel)`` boolean ``touched`` matrix."""
    columns = touched.T.contiguous()  # (numel, T): the signature of every entry
    patterns, counts = torch.unique(columns, dim=0, return_counts=True)
    rows = [
        (name, int(count), frozenset(torch.nonzero(pattern).flatten().tolist()))
        for pattern, count in zip(patterns, counts, strict=True)
    ]
    return sorted(rows, key=lambda row: _signature_order(row[2], n_tasks))


class _leak_activations:
    """Context manager: no activation of ``module`` blocks a dependency during the measurement.

    Each activation ``y = a(x)`` of a type in ``_ACTIVATION_TYPES`` is replaced, through forward
    hooks, by ``y = a(x) + 1 + (x - stop_gradient(x))``: its derivative is ``a'(x) + 1 > 0``
    and its value ``a(x) + 1`` is not 0 (``a >= -1`` except on a null set). A ReLU unit dead on
    every input would otherwise cut two paths: the gradient to the parameters below it (its
    derivative is 0) and the gradient of the weights that read it (a weight's gradient is its
    input, 0). The outputs change, the graph of dependencies does not.
    """

    def __init__(self, module):
        self.module = module
        self.handles = []

    def __enter__(self):
        for sub in self.module.modules():
            if isinstance(sub, _ACTIVATION_TYPES):
                saved = []
                self.handles.append(sub.register_forward_pre_hook(self._pre_hook(saved)))
                self.handles.append(sub.register_forward_hook(self._post_hook(saved)))
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
        self.handles = []

    @staticmethod
    def _pre_hook(saved):
        def hook(sub, inputs):
            x = inputs[0]
            saved.append(x)
            if getattr(sub, "inplace", False):  # keep the pre-activation for the leak
                return (x.clone(), *inputs[1:])
            return None

        return hook

    @staticmethod
    def _post_hook(saved):
        def hook(sub, inputs, output):
            x = saved.pop()
            return output + _LEAK + _LEAK * (x - x.detach())

        return hook


def sharing_map(module, n_samples=16, random_state=0, n_batches=3):
    """Split the parameters of a multi-task module into blocks serving the same tasks.

    The *signature* of an entry ``theta_e`` of a parameter is the set of tasks whose output
    depends on it. It is measured by autograd on random inputs: with ``f_t`` the padded output
    of task ``t`` (:meth:`~skmtl.deep.modules.MultiTaskModule.forward_padded`), ``m_t`` its
    ``output_mask`` row and, for each of ``n_batches`` batches ``b``, inputs
    ``X^(b) ~ N(0, 1)`` of shape ``(n_samples, n_features)`` and fixed random weights
    ``w^(b) ~ N(0, 1)`` of the outputs' shape,

    .. math::

        S(e) = \\left\\{ t :\\ \\exists\\, b,\\
        \\frac{\\partial}{\\partial \\theta_e} \\sum_{i, k} w^{(b)}_{t, i, k}\\, m_{t, k}\\,
        f_t(X^{(b)})_{i, k} \\neq 0 \\right\\}.

    The random weighting ``w`` (instead of a plain sum of the outputs) keeps a gradient entry
    from cancelling to exactly 0 by symmetry. A ReLU unit dead on every input (which happens
    above the first layer) would hide the parameters below it (its derivative is 0) and the
    weights that read it (their gradient is its value, 0). So during the measurement every
    activation module (``nn.ReLU``, ``nn.GELU``, ``nn.Sigmoid``, ``nn.Tanh``, ...) computes
    ``a(x) + 1 + (x - stop_gradient(x))``, whose derivative ``a'(x) + 1`` and value
    ``a(x) + 1`` are not 0: the outputs differ from the network's, the graph of which
    parameter reaches which output does not. Activations called as functions (``F.relu`` in a
    user's module) are not seen; for them, several batches (the union over the batches is
    taken) make a unit dead on one batch less likely to hide an entry.

    The entries of a parameter with the same signature form one block. Entries that no task uses
    (the padded output columns of the heads of tasks with fewer classes than the widest,
    branch slots of :class:`~skmtl.deep.modules.AdaptiveModule` not in use, head weights on the
    zero-padded columns of :class:`~skmtl.deep.modules.LowSupervisionModule`) get the empty
    signature ``frozenset()``.

    Apart from the activations, the map describes the network at its current weights: a
    dependency that passes only through a coefficient that is exactly 0 is not seen. For
    instance a :class:`~skmtl.deep.modules.TensorFactorisationModule` with
    ``tensor_rank = T`` starts with the identity as its task factor, i.e. as independent
    towers, so its core is split task by task until training moves the factor away from the
    identity.

    The parameters of the submodule ``auxiliary_heads`` (auxiliary losses) are left out; every
    other parameter is reported, including those with ``requires_grad=False`` (whose
    ``requires_grad`` is switched on for the measurement, then restored). The module is put in
    eval mode (no dropout) for the measurement, and every submodule's mode is restored
    afterwards. The inputs and weights are drawn from a local generator: torch's global random
    state is not touched.

    Cost: ``T * n_batches`` backward passes over a batch of ``n_samples`` rows. This is meant
    for diagrams and inspection, not for use during training.

    Parameters
    ----------
    module : MultiTaskModule
        The network, e.g. :func:`~skmtl.deep.modules.build_module`'s result or a fitted
        estimator's ``net_.module_``.
    n_samples : int, default=16
        Rows of each random batch.
    random_state : int or None, default=0
        Seed of the local generator of the inputs and output weights; None draws a fresh seed.
    n_batches : int, default=3
        Number of random batches whose signatures are united.

    Returns
    -------
    result : SharingMap
        ``blocks`` (rows ``(parameter name, n_entries, signature)``), ``n_tasks`` and
        ``sharing`` (the module's class name).

    Raises
    ------
    ValueError
        If ``module`` is not a :class:`~skmtl.deep.modules.MultiTaskModule`, or for a bad
        ``n_samples``, ``n_batches`` or ``random_state``.

    Examples
    --------
    >>> import torch
    >>> from skmtl.deep.modules import build_module
    >>> from skmtl.deep._sharing_map import sharing_map
    >>> _ = torch.manual_seed(0)
    >>> net = build_module("hard", 4, [1, 1], hidden_layer_sizes=(3,))
    >>> for name, n_entries, tasks in sharing_map(net).blocks:
    ...     print(name, n_entries, sorted(tasks))
    trunk.0.weight 12 [0, 1]
    trunk.0.bias 3 [0, 1]
    task_heads.output.weight 3 [0]
    task_heads.output.weight 3 [1]
    task_heads.output.bias 1 [0]
    task_heads.output.bias 1 [1]
    """
    if not isinstance(module, MultiTaskModule):
        raise ValueError(
            f"module must be a skmtl.deep.modules.MultiTaskModule (e.g. build_module's result or "
            f"a fitted estimator's net_.module_), got {type(module).__name__}."
        )
    n_samples = _check_positive_int("n_samples", n_samples)
    n_batches = _check_positive_int("n_batches", n_batches)
    seed = _check_random_state(random_state)
    named = [
        (name, param)
        for name, param in module.named_parameters()
        if name.split(".", 1)[0] != _EXCLUDED_SUBMODULE
    ]
    n_tasks = module.n_tasks
    if not named:
        return SharingMap(blocks=(), n_tasks=n_tasks, sharing=type(module).__name__)
    params = [param for _, param in named]
    device = params[0].device
    generator = torch.Generator(device="cpu")
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)

    modes = [(sub, sub.training) for sub in module.modules()]
    frozen = [param for param in params if not param.requires_grad]
    touched = [torch.zeros(n_tasks, param.numel(), dtype=torch.bool) for param in params]
    try:
        module.eval()
        for param in frozen:
            param.requires_grad_(True)
        with torch.enable_grad(), _leak_activations(module):
            for _ in range(n_batches):
                X = torch.randn(n_samples, module.n_features, generator=generator)
                out = module.forward_padded(X.to(device))
                weights = torch.randn(out.shape, generator=generator).to(out)
                weighted = out * weights * module.output_mask.unsqueeze(1).to(out)
                for task in range(n_tasks):
                    grads = torch.autograd.grad(
                        weighted[task].sum(), params, retain_graph=task + 1 < n_tasks,
                        allow_unused=True,
                    )
                    for mask, grad in zip(touched, grads, strict=True):
                        if grad is not None:
                            mask[task] |= grad.detach().flatten().ne(0).cpu()
    finally:
        for param in frozen:
            param.requires_grad_(False)
        for sub, training in modes:
            sub.training = training

    blocks = []
    for (name, _), mask in zip(named, touched, strict=True):
        blocks += _blocks_of(name, mask, n_tasks)
    return SharingMap(blocks=tuple(blocks), n_tasks=n_tasks, sharing=type(module).__name__)
