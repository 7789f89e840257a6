"""Fully-adaptive feature sharing: a thin shared network widened into a tree of task branches.

The strategy ``sharing="adaptive"`` (:class:`AdaptiveModule`) of
:func:`skmtl.deep.modules.build_module`.
"""

import math

import numpy as np
from scipy.cluster.hierarchy import linkage
from scipy.spatial.distance import squareform

from skmtl.deep.modules import (
    _MODULE_DOCS,
    BatchedLinear,
    MultiTaskModule,
    _check_hidden_required,
    _check_positive_int,
    _make_activation,
    _make_dropout,
)
from skmtl.utils._docstring import Substitution
from skmtl.utils._optional import import_optional

torch = import_optional("torch", "deep", "the deep multi-task modules")
nn = torch.nn

__all__ = ["AdaptiveModule"]


# --------------------------------------------------------------------------------------------
# The tree of branches, from the task affinity
# --------------------------------------------------------------------------------------------


def _affinity_distances(affinity, n_tasks):
    """``1 - A`` of the symmetrised affinity clipped to [-1, 1], NaN counted as 0, zero diagonal."""
    try:
        values = np.array(affinity, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"affinity must be a ({n_tasks}, {n_tasks}) array of numbers, got {affinity!r}."
        ) from None
    if n_tasks < 1 or values.shape != (n_tasks, n_tasks):
        raise ValueError(
            f"affinity must have shape ({n_tasks}, {n_tasks}) (one row and one column per "
            f"task), got {values.shape}."
        )
    values = np.clip(np.nan_to_num(values, nan=0.0), -1.0, 1.0)
    distances = 1.0 - 0.5 * (values + values.T)
    np.fill_diagonal(distances, 0.0)
    return distances


def _cut(merges, n_tasks, n_groups):
    """The partition left after the first ``n_tasks - n_groups`` merges of a linkage.

    Groups are sorted lists of task positions, ordered by their smallest task.
    """
    members = {t: [t] for t in range(n_tasks)}
    for row, (a, b) in enumerate(merges[: n_tasks - n_groups]):
        members[n_tasks + row] = members.pop(int(a)) + members.pop(int(b))
    return sorted((sorted(group) for group in members.values()), key=lambda group: group[0])


def branch_partitions(affinity, n_layers, max_branches=None):
    """The groups of tasks of each hidden layer, from a task affinity.

    The tasks are clustered by average linkage on the distance ``d(s, t) = 1 - A[s, t]`` (``A``
    symmetrised, NaN counted as 0). The top layer gets ``k_L`` groups: the clusters whose merge
    distance is below 1 (groups whose mean gradient cosine is positive are merged, groups in
    conflict never), merged further along the dendrogram until at most ``max_branches``
    remain. Layer ``l - 1`` gets ``k_{l-1} = ceil(k_l / 2)`` groups, cut from the same
    dendrogram, so every group of layer ``l`` lies inside one group of layer ``l - 1``.

    Parameters
    ----------
    affinity : array-like of shape (T, T)
        Mean cosines of the task gradients; NaN where never measured.
    n_layers : int
        Number of hidden layers ``L``.
    max_branches : int, default=None
        Most groups of a layer; None means ``T``.

    Returns
    -------
    partitions : list of L lists of lists of int
        ``partitions[l]`` (bottom to top) is the list of the groups of layer ``l``: sorted task
        positions, groups ordered by their smallest task.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.deep._sharing_adaptive import branch_partitions
    >>> A = np.array([[1.0, 0.8, -0.5], [0.8, 1.0, -0.4], [-0.5, -0.4, 1.0]])
    >>> branch_partitions(A, n_layers=2)
    [[[0, 1, 2]], [[0, 1], [2]]]
    """
    n_tasks = np.shape(affinity)[0] if np.ndim(affinity) else 0
    distances = _affinity_distances(affinity, n_tasks)
    if n_tasks == 1:
        return [[[0]] for _ in range(n_layers)]
    max_branches = n_tasks if max_branches is None else max_branches
    tree = linkage(squareform(distances, checks=False), method="average")
    # average linkage has no inversions: the merge heights are sorted
    n_groups = n_tasks - int(np.sum(tree[:, 2] < 1.0))
    n_groups = max(1, min(n_groups, max_branches))
    counts = [n_groups]
    for _ in range(n_layers - 1):
        counts.append(math.ceil(counts[-1] / 2))
    return [_cut(tree[:, :2], n_tasks, k) for k in reversed(counts)]


# --------------------------------------------------------------------------------------------
# The module
# --------------------------------------------------------------------------------------------


def _apply_slots(H, weight, bias):
    """``H[j] @ weight[j] + bias[j]``, or ``H @ weight[j] + bias[j]`` for a 2-D ``H``.

    ``weight`` is ``(k, n_in, n_out)``; the result is ``(k, B, n_out)``.
    """
    k, n_in, n_out = weight.shape
    if H.dim() == 2:  # one (B, n_in) x (n_in, k * n_out) product, no (k, B, n_in) copy
        flat = weight.transpose(0, 1).reshape(n_in, k * n_out)
        out = (H @ flat).view(H.shape[0], k, n_out).transpose(0, 1)
        return out + bias.unsqueeze(1)
    return torch.baddbmm(bias.unsqueeze(1), H, weight)


class _SlotLinear(nn.Linear):
    """Slot ``slot`` of a :class:`~skmtl.deep.modules.BatchedLinear`, seen as an ``nn.Linear``.

    It owns no parameter (``weight`` and ``bias`` are views of the batched layer's slot, and
    gradients flow into it), so it adds nothing to ``parameters()`` or ``state_dict``. It lets
    the thin network offer its top layer as the ``last_shared_layer`` the training step hooks
    to take the tasks' gradients on a shared weight.
    """

    def __init__(self, batched, slot=0):
        nn.Module.__init__(self)
        self.in_features = batched.in_features
        self.out_features = batched.out_features
        self.slot = slot
        object.__setattr__(self, "batched", batched)  # not a submodule: no second registration

    @property
    def weight(self):
        return self.batched.weight[self.slot].T

    @property
    def bias(self):
        return self.batched.bias[self.slot]


class _Tree:
    """The index tensors of the branches in use, computed from ``branch_of``.

    Attributes
    ----------
    slots : list of L LongTensors
        ``slots[l]``: the slots of layer ``l`` in use, increasing.
    parents : list of L LongTensors or None
        ``parents[l][j]``: the position in ``slots[l - 1]`` of the slot read by ``slots[l][j]``
        (None for the bottom layer, and for layers whose previous layer has one slot).
    top : LongTensor of shape (T,)
        Position in ``slots[-1]`` of the top slot of each task.
    n_slots : list of int
        ``len(slots[l])``.
    first_slot : list of int
        ``slots[l][0]``, as a Python int.
    """

    def __init__(self, branch_of):
        rows = branch_of.tolist()
        device = branch_of.device
        self.n_slots, self.first_slot = [], []
        self.slots, self.parents = [], []
        previous = None
        for layer, row in enumerate(rows):
            used = sorted(set(row))
            position = {slot: j for j, slot in enumerate(used)}
            parents = None
            if previous is not None:
                parent_of = {}
                for task, slot in enumerate(row):
                    parent = previous[task]
                    if parent_of.setdefault(slot, parent) != parent:
                        raise ValueError(
                            f"branch_of is not a tree: slot {slot} of layer {layer} is used by "
                            f"tasks whose slots differ at layer {layer - 1}."
                        )
                if len(set(previous)) > 1:
                    previous_position = {s: j for j, s in enumerate(sorted(set(previous)))}
                    parents = torch.tensor(
                        [previous_position[parent_of[slot]] for slot in used],
                        dtype=torch.long, device=device,
                    )
            self.n_slots.append(len(used))
            self.first_slot.append(used[0])
            self.slots.append(torch.tensor(used, dtype=torch.long, device=device))
            self.parents.append(parents)
            previous = row
        self.top = torch.tensor(
            [position[slot] for slot in rows[-1]], dtype=torch.long, device=device
        )


@Substitution(**_MODULE_DOCS)
class AdaptiveModule(MultiTaskModule):
    """Fully-adaptive feature sharing (Lu et al., 2017): a thin network widened into branches.

    ::

        before the split (thin network, hard sharing):

            X --> [layer 1] --> [layer 2] --> r +-> [head t] -> y_t   (every task)

        after the split, e.g. tasks {0,1,2} close, {3,4,5} close, the groups in conflict:

                                  +-> [layer 2, branch {0,1,2}] --> r_0 = r_1 = r_2 --> heads 0-2
            X --> [layer 1] ------+
                  (shared)        +-> [layer 2, branch {3,4,5}] --> r_3 = r_4 = r_5 --> heads 3-5

    Training starts with hard sharing: one trunk of ``hidden_layer_sizes`` (``Linear -> act ->
    dropout`` per layer) read by every head. At the end of epoch ``split_after``,
    :meth:`end_epoch` calls :meth:`split` with the task affinity ``A`` measured on the thin
    network (``A[s, t]``: the mean cosine of the gradients of tasks ``s`` and ``t`` on the top
    layer's weight, see ``last_shared_layer``), which widens the trunk top-down into a tree of
    branches:

    * the tasks are clustered by average linkage on ``d(s, t) = 1 - A[s, t]`` (NaN counted as
      ``A = 0``: a pair never measured is not merged);
    * the top layer ``L`` is split into ``k_L`` branches: the clusters merged at a distance
      ``< 1`` (groups whose mean gradient cosine is positive; groups in conflict are never
      merged), merged further along the dendrogram until at most ``max_branches`` remain;
    * layer ``l - 1`` gets ``k_{l-1} = ceil(k_l / 2)`` branches, cut from the same
      dendrogram, so every branch of layer ``l`` lies inside one branch of layer ``l - 1``
      (its parent); once a layer has one branch, it and the layers below stay shared.

    The forward pass of a branch ``c`` of layer ``l`` whose parent is branch ``p`` of layer
    ``l - 1`` is

    .. math::

        h_l^{c} = \\text{dropout}(\\text{act}(h_{l-1}^{p} W_l^{c} + b_l^{c})),
        \\qquad h_0 = x,

    and the representation of task ``t`` is ``r_t = h_L^{c_L(t)}``, the top branch holding
    ``t``. Every branch of a split layer starts as a copy of the layer's weights before the
    split, so the network computes the same function just before and just after the split;
    from then on the branches are trained apart.

    Lu et al. widen one layer per round, top-down, and measure the affinity again on the widened
    network before the next round. Here the whole tree is built in one step from the thin
    network's affinity: after the first split no representation is shared by all tasks any more,
    so the task gradients on a common representation are no longer defined, and since a split
    copies the parent's weights into its children (Lu et al.'s initialisation) and leaves the
    function unchanged, doing every round at once starts the training from the same network.

    Storage. Each hidden layer holds room for ``T`` branches from the start (one
    :class:`~skmtl.deep.modules.BatchedLinear` of shape ``(T, h_{l-1}, h_l)`` per layer), so the
    optimizer, built once before training, sees every parameter, and the buffer ``branch_of``
    (``(L, T)``, ``branch_of[l, t]`` is the slot of layer ``l`` used by task ``t``: the smallest
    task position of ``t``'s branch) says which slots are in use. Only the slots in use are
    computed, each layer with one batched matrix product. The tree is read from the buffer
    (and cached until the buffer changes), so loading a ``state_dict`` (e.g. early stopping
    restoring an epoch before the split) restores the tree too. Unused slots receive zero
    gradients; an optimizer keeping per-parameter statistics (Adam) starts a new branch with the
    statistics of its slot, built from those zero gradients (and any weight decay).

    Parameters
    ----------
    {module_inputs}
    hidden_layer_sizes : sequence of int, default=(64,)
        Hidden layers of the network; at least one.
    {head_layers}
    split_after : int or None, default=1
        The network is split at the end of the first epoch numbered ``split_after`` or more
        (once: a module already split stays as it is). None: never by :meth:`end_epoch`; the
        caller calls :meth:`split`, as the estimators do once the thin network has trained.
    max_branches : int, default=None
        Most branches of a layer (``>= 1``); None means ``T``. ``max_branches=1`` keeps the
        network thin (hard sharing).

    Attributes
    ----------
    layers : nn.ModuleList of BatchedLinear
        ``layers[l].weight[s]`` and ``layers[l].bias[s]`` are the weights of slot ``s`` of
        hidden layer ``l`` (as ``x @ weight[s] + bias[s]``).
    branch_of : LongTensor buffer of shape (L, T)
        Slot of each layer used by each task; all 0 before the split.
    split_done : BoolTensor buffer of shape ()
        Whether :meth:`split` has run.
    split_affinity : FloatTensor buffer of shape (T, T)
        The affinity the tree was built from, as the clustering read it (symmetrised, clipped
        to [-1, 1], NaN counted as 0); zeros before the split. Once the network is split the
        task gradients are no longer measured on a shared representation, so this is the
        affinity to show next to the tree. (No NaN, so that state dicts compare equal.)
    shares_representation : bool
        True while every task reads the same top slot (before the split, or when the split put
        every task in one branch).
    has_shared_part : bool
        True: :meth:`forward_shared` runs every head on its own path (the layers all tasks
        share, then the task's branches), as :meth:`forward_padded` does.
    last_shared_layer : nn.Linear or None
        While the network is thin, its top layer (``top_layer``, an ``nn.Linear`` view of the
        slot in use, without parameters of its own); None once the top layer has branches. The
        estimators measure the task affinity that drives the split on this layer's weight
        (``affinity_on="last_shared_layer"``): the gradients of two tasks on the
        representation are orthogonal when their labels sit on different rows, as they do
        with missing labels, while on a shared weight they are summed over the rows and meet.

    References
    ----------
    Lu, Y., Kumar, A., Zhai, S., Cheng, Y., Javidi, T., & Feris, R. (2017). Fully-adaptive
    feature sharing in multi-task networks with applications in person attribute
    classification. CVPR.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from skmtl.deep._sharing_adaptive import AdaptiveModule
    >>> _ = torch.manual_seed(0)
    >>> net = AdaptiveModule(5, [1, 1, 1, 1], hidden_layer_sizes=(8, 8))
    >>> A = np.array([[1.0, 0.9, -0.3, -0.3], [0.9, 1.0, -0.3, -0.3],
    ...               [-0.3, -0.3, 1.0, 0.9], [-0.3, -0.3, 0.9, 1.0]])
    >>> net.shares_representation
    True
    >>> net.split(A).branches()
    [[[0, 1, 2, 3]], [[0, 1], [2, 3]]]
    >>> net.shares_representation, tuple(net.shared(torch.zeros(3, 5)).shape)
    (False, (4, 3, 8))
    """

    has_shared_part = True

    def __init__(
        self,
        n_features,
        output_sizes,
        *,
        hidden_layer_sizes=(64,),
        head_layer_sizes=(),
        activation="relu",
        dropout=0.0,
        split_after=1,
        max_branches=None,
    ):
        super().__init__(
            n_features,
            output_sizes,
            head_layer_sizes=head_layer_sizes,
            activation=activation,
            dropout=dropout,
        )
        if split_after is not None:
            split_after = _check_positive_int("split_after", split_after)
        self.split_after = split_after
        if max_branches is not None:
            max_branches = _check_positive_int("max_branches", max_branches)
        self.max_branches = max_branches
        self.hidden_layer_sizes = tuple(_check_hidden_required("adaptive", hidden_layer_sizes))
        sizes = [self.n_features, *self.hidden_layer_sizes]
        self.layers = nn.ModuleList(
            BatchedLinear(self.n_tasks, n_in, n_out)
            for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.top_layer = _SlotLinear(self.layers[-1])
        self.activation_layer = _make_activation(self.activation)
        self.dropout_layer = _make_dropout(self.dropout)
        n_layers = len(self.hidden_layer_sizes)
        self.register_buffer("branch_of", torch.zeros(n_layers, self.n_tasks, dtype=torch.long))
        self.register_buffer("split_done", torch.zeros((), dtype=torch.bool))
        self.register_buffer(
            "split_affinity", torch.zeros(self.n_tasks, self.n_tasks, dtype=torch.float32)
        )
        self._tree_cache = None
        self._init_heads(self.hidden_layer_sizes[-1])

    # -- the tree ------------------------------------------------------------------------------

    def _tree(self):
        """The cached :class:`_Tree` of ``branch_of``, rebuilt when the buffer has changed."""
        buffer = self.branch_of
        cache = self._tree_cache
        # the buffer object itself (a new one after .to() or an assignment) and its version
        # counter (bumped by in-place writes: split, load_state_dict)
        if cache is None or cache[0] is not buffer or cache[1] != buffer._version:
            cache = self._tree_cache = (buffer, buffer._version, _Tree(buffer))
        return cache[2]

    @property
    def shares_representation(self):
        return self._tree().n_slots[-1] == 1

    @property
    def last_shared_layer(self):
        """The top layer while the network is thin (an ``nn.Linear`` view of its slot), else
        None."""
        return self.top_layer if self.shares_representation else None

    # the layers between the top layer and the representation act elementwise (activation,
    # dropout): the training step takes the per-task gradients on the top layer cheaply
    last_layer_tail_is_elementwise = True

    def branches(self):
        """The tree of branches: the groups of tasks of each hidden layer.

        Returns
        -------
        branches : list of L lists of lists of int
            ``branches[l]`` (bottom to top) lists the branches of layer ``l``, each as the
            sorted positions of its tasks, ordered by their smallest task. Before the split,
            ``[[0, ..., T - 1]]`` at every layer.
        """
        tree = []
        for row in self.branch_of.tolist():
            groups = {}
            for task, slot in enumerate(row):
                groups.setdefault(slot, []).append(task)
            tree.append([groups[slot] for slot in sorted(groups)])
        return tree

    def split(self, affinity):
        """Widen the thin network into the tree of branches given by ``affinity``.

        Each branch at layer ``l`` gets the slot numbered by its smallest task, and its weights
        are copied from the slot its tasks used before (slot 0), so the outputs do not change.
        See the class docstring for how the branches are chosen.

        Parameters
        ----------
        affinity : array-like of shape (T, T)
            Mean cosines of the task gradients on the shared representation (NaN where never
            measured).

        Returns
        -------
        self : AdaptiveModule

        Raises
        ------
        RuntimeError
            If the module is already split.
        """
        if bool(self.split_done):
            raise RuntimeError(
                "This AdaptiveModule is already split (split_done is True); it splits once."
            )
        used = 1.0 - _affinity_distances(affinity, self.n_tasks)  # its shape must be (T, T)
        partitions = branch_partitions(affinity, len(self.layers), self.max_branches)
        new = torch.zeros_like(self.branch_of, device="cpu")
        for layer, groups in enumerate(partitions):
            for group in groups:
                new[layer, group] = group[0]
        with torch.no_grad():
            old = self.branch_of.to("cpu")
            for layer, module in enumerate(self.layers):
                # source slot of every target slot in use: the slot its tasks used before
                source = {int(s): int(o) for s, o in zip(new[layer], old[layer], strict=True)}
                targets = torch.tensor(sorted(source), device=module.weight.device)
                sources = torch.tensor([source[s] for s in sorted(source)],
                                       device=module.weight.device)
                module.weight[targets] = module.weight[sources].clone()
                module.bias[targets] = module.bias[sources].clone()
            self.branch_of.copy_(new)
            self.split_done.fill_(True)
            self.split_affinity.copy_(torch.as_tensor(used, dtype=torch.float32))
        return self

    def end_epoch(self, epoch, task_affinity):
        """Split the network at the end of epoch ``split_after`` (see :meth:`split`)."""
        if self.split_after is not None and epoch >= self.split_after and not bool(
            self.split_done
        ):
            self.split(task_affinity())

    # -- forward -------------------------------------------------------------------------------

    def _hidden(self, X, tree):
        """The top hidden layer's ``(B, h)`` output (one slot) or ``(k, B, h)`` (``k`` slots)."""
        H = X
        for layer, module, slots, parents in zip(
            range(len(self.layers)), self.layers, tree.slots, tree.parents, strict=True
        ):
            if tree.n_slots[layer] == 1 and H.dim() == 2:
                slot = tree.first_slot[layer]
                if layer == len(self.layers) - 1:  # the thin top layer, where hooks may look
                    self.top_layer.slot = slot
                    H = self.top_layer(H)
                else:
                    H = torch.addmm(module.bias[slot], H, module.weight[slot])
            else:
                if parents is not None:
                    H = H.index_select(0, parents)
                H = _apply_slots(
                    H, module.weight.index_select(0, slots), module.bias.index_select(0, slots)
                )
            H = self.dropout_layer(self.activation_layer(H))
        return H

    def shared(self, X):
        """The representation: ``(B, h)`` while the top layer has one branch, else ``(T, B, h)``.

        See :meth:`MultiTaskModule.shared`.
        """
        self._check_input(X)
        tree = self._tree()
        H = self._hidden(X, tree)
        if H.dim() == 2:
            return H
        return H.index_select(0, tree.top)

    def forward_shared(self, X):
        """Every head on its own path (the same as :meth:`forward_padded`): the layers that
        all tasks share, then the task's branches. Before the split, every head on the thin
        network, as ``"hard"`` sharing. (A head of one branch never read another branch's
        units, which mean something else: task 0's path fed to every head gave an unseen task
        a prediction unrelated to the tasks' own.)"""
        return self.forward_padded(X)
