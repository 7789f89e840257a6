"""The private skorch net behind the deep multi-task estimators.

:class:`MultiTaskNet` subclasses skorch's :class:`~skorch.net.NeuralNet` and changes it only
through skorch's hooks (``initialize_module``, ``train_step_single``, ``infer``, ``get_loss``)
and callbacks. The estimators build it in ``fit``; users meet it as ``estimator.net_``.

Data. A batch is ``(X, y)``: ``X`` a float32 tensor ``(B, n_features)`` (densified from a
sparse X one batch at a time), ``y`` the batch's observed labels as ``(row, task, value)``
triples (a dict of three tensors; ``skmtl/deep/_labels.py``). Nothing holds an
``(n_samples, n_tasks)`` array: the dataset keeps X as given and the labels as triples grouped
by row, wide targets with missing labels and long data alike. Batches are drawn by
:class:`BatchLoader` from :class:`MultiTaskDataset`, one index operation per batch.

The training step (one batch)::

    rep     = module.shared(X)                    # (B, h), or (T, B, h) per-task slots
    out     = module.heads_padded(rep)            # (T, B, K_max)
    L, n    = per-task mean loss over the observed labels of the batch, label counts
    G       = Gram matrix of the per-task gradients on rep  (only if a weighting or the
                                                   affinity needs it; see below)
    weighting.observe_task_gram(G, n > 0)         # only if weighting.requires_task_gram
    total   = weighting.combine(L, n > 0) + module.penalty()
    total.backward()                              # ONE backward pass through the trunk
    weighting.after_backward(L, n > 0, grad_norms)

Per-task gradients ``g_t = dL_t / d rep`` (for GradNorm's norms, a weighting that reads their
Gram matrix, and ``gradient_affinity_``) never cost a backward pass per task. With linear heads
(``head_layer_sizes=()``) they are not even formed: ``g_t = D_t W_t^T`` with
``D_t = dL_t / d out_t`` (one cheap backward from the losses to the outputs) and ``W_t`` the
head's weight, so the Gram matrix of the ``g_t`` is
``<g_s, g_t> = sum_{k,l} (D_s^T D_t)_{kl} (W_s^T W_t)_{kl}``, of cost ``T^2 K^2 (B + h)``. With
hidden head layers, the heads read a detached copy of ``rep`` expanded to ``T`` slots (a leaf);
one backward through the heads gives every ``g_t`` in its slot, a second one (the real one)
gives the weighted gradient, which then continues into the trunk once.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from skorch import NeuralNet
from skorch.callbacks import Callback
from skorch.dataset import unpack_data
from skorch.helper import predefined_split
from skorch.utils import to_tensor

from skmtl.deep._labels import batch_labels, label_rows
from skmtl.deep._persistence import NetStateMixin
from skmtl.deep._task_gradients import (
    GRADIENT_SPACES,
    ExplicitGradients,
    FactoredGradients,
    LastLayerGradients,
    gather_rows,
)
from skmtl.deep.weighting import FixedWeighting

__all__ = [
    "AffinityWindow",
    "BatchLoader",
    "check_finite_parameters",
    "MultiTaskDataset",
    "MultiTaskNet",
    "TaskLoss",
    "TaskLossRecorder",
]

TASK_KINDS = ("regression", "binary", "multiclass", "constant")


# --------------------------------------------------------------------------------------------
# Data: a dataset indexed by whole batches, and the loader that draws them
# --------------------------------------------------------------------------------------------


class MultiTaskDataset(torch.utils.data.Dataset):
    """Rows of X with their observed labels, fetched a whole batch at a time.

    ``dataset[(rows, task)]`` returns the batch of the given rows (positions into ``rows_``):
    ``X`` as a float32 tensor ``(B, n_features)`` and ``y`` the batch's labels as a dict of
    tensors (:func:`~skmtl.deep._labels.batch_labels`: ``"row"``, ``"task"``, ``"value"``).
    With ``task`` an int, only that task's labels are kept (task sampling); with ``task`` an
    array of one task per row, row ``i`` keeps only the label of task ``task[i]`` (several
    tasks per batch). One index operation fetches the rows of X (and of a sparse X, densified
    one batch at a time) and one the labels: no per-row ``__getitem__``, no collate.

    Parameters
    ----------
    X : ndarray or scipy.sparse CSR matrix of shape (n_samples, n_features)
        Kept as given (no copy); each batch is converted to dense float32.
    labels : TaskLabels or None, default=None
        The observed labels (encoded targets or class codes). None for prediction.
    rows : ndarray of int, default=None
        The rows of X this dataset covers (a train or validation part); None means all.
    """

    def __init__(self, X, labels=None, rows=None):
        self.X = X
        self.labels = labels
        self.rows_ = np.arange(X.shape[0]) if rows is None else np.asarray(rows)
        # a zero-copy tensor view: torch gathers the rows of a batch faster than numpy
        self._X = _tensor_view(X)

    def __len__(self):
        return self.rows_.shape[0]

    def observed_rows(self):
        """Per task, the positions (into ``rows_``) of the rows with an observed label."""
        return self.labels.task_positions(self.rows_)

    def __getitem__(self, item):
        positions, task = item
        rows = self.rows_[positions]
        if self._X is not None:
            X = self._X[torch.from_numpy(rows)].to(torch.float32)
        else:
            X = self.X[rows]
            X = X.toarray() if hasattr(X, "toarray") else X
            X = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        if self.labels is None:
            return X, torch.empty(0)
        return X, batch_labels(self.labels, rows, task)


def _tensor_view(X):
    """A tensor sharing a dense, writable float ndarray's memory, else None."""
    if (
        isinstance(X, np.ndarray)
        and X.dtype in (np.float32, np.float64)
        and X.flags.writeable
        and all(stride >= 0 for stride in X.strides)
    ):
        return torch.from_numpy(X)
    return None


class _BatchSampler:
    """Yields ``(positions, task)`` items, one per batch; see :class:`BatchLoader`.

    ``task`` is None (joint sampling), the drawn task (one task per batch), or an array giving
    each row's task (several tasks per batch). Draws come from ``generator`` (torch's global
    generator when None). With ``shard = (rank, world)``, the epoch's batches are dealt
    round-robin and this sampler yields the ``rank``-th share, ``ceil(n_batches / world)``
    batches, starting again from the first batches when its share runs out (every process
    then takes as many steps).
    """

    def __init__(self, dataset, batch_size, shuffle, task_sampling, tasks_per_batch=1,
                 generator=None, shard=None):
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.task_sampling = task_sampling
        self.generator = generator
        self.shard = shard
        self.tasks_per_batch = 1
        if task_sampling != "joint":
            self._task_rows = dataset.observed_rows()
            counts = torch.tensor([len(r) for r in self._task_rows], dtype=torch.float64)
            if task_sampling == "uniform":
                counts = (counts > 0).to(torch.float64)
            self._task_probs = counts / counts.sum()
            self._queues = [np.empty(0, dtype=np.intp) for _ in self._task_rows]
            n_labelled = int((counts > 0).sum())
            self.tasks_per_batch = max(1, min(tasks_per_batch, n_labelled, batch_size))

    def _n_batches(self):
        return -(-len(self.dataset) // self.batch_size)

    def __len__(self):
        if self.shard is None:
            return self._n_batches()
        return -(-self._n_batches() // self.shard[1])

    def __iter__(self):
        if self.shard is None:
            yield from self._batches()
            return
        rank, world = self.shard
        batches = list(self._batches())
        for step in range(len(self)):
            yield batches[(rank + step * world) % len(batches)]

    def _batches(self):
        n = len(self.dataset)
        generator = self.generator
        if self.task_sampling == "joint":
            order = torch.randperm(n, generator=generator).numpy() if self.shuffle else (
                np.arange(n))
            for start in range(0, n, self.batch_size):
                yield order[start : start + self.batch_size], None
            return
        k = self.tasks_per_batch
        if k == 1:
            tasks = torch.multinomial(self._task_probs, self._n_batches(), replacement=True,
                                      generator=generator).tolist()
            for task in tasks:
                yield self._draw(task, self.batch_size), task
            return
        base, extra = divmod(self.batch_size, k)
        sizes = [base + (j < extra) for j in range(k)]
        for _ in range(self._n_batches()):
            tasks = torch.multinomial(self._task_probs, k, replacement=False,
                                      generator=generator).tolist()
            parts = [self._draw(task, size) for task, size in zip(tasks, sizes, strict=True)]
            owners = np.repeat(tasks, [part.shape[0] for part in parts])
            yield np.concatenate(parts), owners

    def _draw(self, task, size):
        """The next ``size`` observed rows of ``task``, cycling through its rows in a fresh
        random order each time they run out (or all of them, if fewer)."""
        rows = self._task_rows[task]
        size = min(size, rows.shape[0])
        queue = self._queues[task]
        while queue.shape[0] < size:
            order = torch.randperm(rows.shape[0], generator=self.generator).numpy()
            queue = np.concatenate([queue, rows[order]])
        self._queues[task] = queue[size:]
        return queue[:size]


def BatchLoader(  # noqa: N802
    dataset, batch_size, shuffle=False, task_sampling="joint", tasks_per_batch=1,
    generator=None, shard=None,
):
    """A DataLoader over whole batches of a :class:`MultiTaskDataset` (skorch's iterator).

    ``task_sampling="joint"``: the rows in a random order (if ``shuffle``), cut into
    ``ceil(n / batch_size)`` batches, every task's labels kept. ``"uniform"`` /
    ``"proportional"``: ``ceil(n / batch_size)`` batches as well, each of one task drawn
    uniformly (among the tasks with labels) or with probability proportional to its number of
    observed labels; the batch holds ``batch_size`` of that task's observed rows (all of them if
    fewer), visited in a random order without repetition until they run out, and only that task's
    labels count. Randomness comes from torch's global generator (seeded and isolated by the
    estimator).

    With ``tasks_per_batch = k > 1`` (task sampling only), each batch draws
    ``k' = min(k, number of tasks with labels, batch_size)`` distinct tasks, without replacement
    (``torch.multinomial`` without replacement: the first with the probabilities above, each
    next one among the tasks not drawn yet with their probabilities renormalised). The ``j``-th
    drawn task (``j = 0, ..., k' - 1``) gets ``batch_size // k'`` rows, plus one if
    ``j < batch_size % k'``, taken from its observed rows as above (all of them if fewer). Each
    row keeps only the label of the task it was drawn for, even when it has labels of other
    drawn tasks (a row drawn for two tasks appears twice, once per task). ``k = 1`` draws
    exactly the batches of one task per batch.

    Parameters
    ----------
    dataset : MultiTaskDataset
        The data.
    batch_size : int
        Rows per batch.
    shuffle : bool, default=False
        Shuffle the rows (``"joint"``); the task-sampled batches are always random.
    task_sampling : {"joint", "uniform", "proportional"}, default="joint"
        How batches are drawn.
    tasks_per_batch : int, default=1
        Tasks per batch of ``"uniform"`` / ``"proportional"``; ignored by ``"joint"``.
    generator : torch.Generator, default=None
        The sampler's random draws; None: torch's global generator.
    shard : tuple of int, default=None
        ``(rank, world)``: only this process's share of the epoch's batches (data-parallel
        training; see :class:`AcceleratedMultiTaskNet`).

    Returns
    -------
    loader : torch.utils.data.DataLoader
    """
    sampler = _BatchSampler(dataset, batch_size, shuffle, task_sampling, tasks_per_batch,
                            generator=generator, shard=shard)
    # The loader's own generator: iterating never draws from torch's global one (predict runs
    # outside the estimator's seeded block); the sampler draws from the global one (seeded).
    return torch.utils.data.DataLoader(
        dataset, sampler=sampler, batch_size=None, generator=torch.Generator()
    )


# --------------------------------------------------------------------------------------------
# The per-task masked loss (skorch's criterion)
# --------------------------------------------------------------------------------------------


class TaskLoss(torch.nn.Module):
    """Per-task sums of the loss over the observed labels of a batch, and label counts.

    Element losses: squared error (``"regression"``, on standardised targets), binary
    cross-entropy on one logit (``"binary"``), cross-entropy over the task's ``K_t`` logits
    (``"multiclass"``). A ``"constant"`` task (one class) has no loss and counts no label.
    Each label's loss reads its own task's output on its own row only (a gather from the
    ``(T, B, K_max)`` outputs): the cost is that of the labels, not of ``T x B``.

    Parameters
    ----------
    kinds : sequence of str
        The kind of each task, one of ``TASK_KINDS``.
    output_sizes : sequence of int
        Output width of each task.
    """

    def __init__(self, kinds, output_sizes):
        super().__init__()
        self.kinds = list(kinds)
        self.output_sizes = list(output_sizes)
        n_tasks = len(self.kinds)
        self.n_tasks = n_tasks
        codes = {kind: code for code, kind in enumerate(TASK_KINDS)}
        self._groups = [
            (kind, codes[kind]) for kind in ("regression", "binary", "multiclass")
            if kind in self.kinds
        ]
        self._all_trainable = "constant" not in self.kinds
        width = max(self.output_sizes)
        valid = torch.arange(width) < torch.tensor(self.output_sizes).unsqueeze(1)
        self.register_buffer("_valid_logits", valid, persistent=False)
        kind_codes = torch.tensor([codes[kind] for kind in self.kinds])
        self.register_buffer("_kind_codes", kind_codes, persistent=False)

    def forward(self, out, y):
        """Loss sums and label counts per task.

        Parameters
        ----------
        out : Tensor of shape (T, B, K_max)
            Padded outputs of the heads.
        y : dict of Tensor
            The batch's labels: ``"row"`` (position in the batch), ``"task"``, ``"value"``
            (standardised target or class code), one entry per label.

        Returns
        -------
        sums : Tensor of shape (T,)
            Sum of the element losses over the task's observed labels.
        counts : Tensor of shape (T,)
            Number of observed labels of each task (float).
        """
        row, task, value = y["row"], y["task"], y["value"].to(out.dtype)
        if not self._all_trainable:
            keep = self._kind_codes[task] != TASK_KINDS.index("constant")
            row, task, value = row[keep], task[keep], value[keep]
        counts = torch.bincount(task, minlength=self.n_tasks).to(out.dtype)
        picked = out[task, row]  # (m, K_max): each label's own task output
        if len(self._groups) == 1:
            element = self._element_loss(self._groups[0][0], picked, task, value)
        else:
            kind = self._kind_codes[task]
            element = out.new_zeros(task.shape[0])
            for name, code in self._groups:
                select = torch.nonzero(kind == code).squeeze(1)
                part = self._element_loss(name, picked[select], task[select], value[select])
                element = element.index_put((select,), part)
        sums = out.new_zeros(self.n_tasks).index_add(0, task, element)
        return sums, counts

    def _element_loss(self, kind, picked, task, value):
        """(m,) element losses of labels of one kind."""
        if kind == "regression":
            return (picked[:, 0] - value).square()
        if kind == "binary":
            return F.binary_cross_entropy_with_logits(picked[:, 0], value, reduction="none")
        valid = self._valid_logits[task]  # (m, K_max)
        log_proba = torch.log_softmax(picked.masked_fill(~valid, float("-inf")), dim=-1)
        top = valid.sum(1) - 1
        codes = torch.minimum(value.long().clamp_min(0), top).unsqueeze(-1)
        return -log_proba.gather(-1, codes).squeeze(-1)


# --------------------------------------------------------------------------------------------
# Per-task losses, weights and the validation loss in the history
# --------------------------------------------------------------------------------------------


class TaskLossRecorder(Callback):
    """Records per-task losses and task weights in the history; drives the weighting's epochs.

    It replaces skorch's default ``valid_loss`` callback. At the end of every epoch it records
    ``train_loss_task_<t>`` (the mean loss of task ``t`` over its observed training labels of the
    epoch, unweighted; NaN if none); with validation data ``valid_loss_task_<t>``,
    ``valid_loss`` (the mean of the per-task validation losses over the tasks with validation
    labels, the quantity early stopping monitors) and ``valid_loss_best``; with auxiliary
    heads, ``train_auxiliary_loss`` (the mean over the epoch's batches of their unweighted
    loss). It then calls the
    weighting's ``on_epoch_end`` with the per-task training losses and records
    ``task_weights`` (its ``current_weights()``).
    ``t`` is the task's position in ``tasks_``.
    """

    def initialize(self):
        self._sums = {}
        self._counts = {}
        return self

    def on_epoch_begin(self, net, **kwargs):
        self._sums = {"train": 0.0, "valid": 0.0}
        self._counts = {"train": 0.0, "valid": 0.0}
        self._auxiliary = []

    def on_batch_end(self, net, batch=None, training=False, **step):
        phase = "train" if training else "valid"
        if training:
            sums, counts = step["task_loss_sums"], step["task_counts"]
            if step.get("auxiliary_loss") is not None:
                self._auxiliary.append(step["auxiliary_loss"])
        else:
            _, yi = unpack_data(batch)
            sums, counts = net.criterion_(step["y_pred"], to_tensor(yi, device=net.device))
        self._sums[phase] = self._sums[phase] + sums.detach().to("cpu", torch.float64).numpy()
        self._counts[phase] = self._counts[phase] + counts.detach().to("cpu", torch.float64).numpy()

    def _means(self, phase, n_tasks):
        """Per-task mean loss of the epoch; NaN for a task without labels (or no batch)."""
        counts = np.broadcast_to(np.asarray(self._counts[phase], dtype=np.float64), (n_tasks,))
        sums = np.broadcast_to(np.asarray(self._sums[phase], dtype=np.float64), (n_tasks,))
        means = np.full(n_tasks, np.nan)
        observed = counts > 0
        means[observed] = sums[observed] / counts[observed]
        return means

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        history = net.history
        n_tasks = net.criterion_.n_tasks
        with torch.no_grad():
            net.module_.end_epoch(len(history), net.gradient_affinity)
        train = self._means("train", n_tasks)
        for t, value in enumerate(train):
            history.record(f"train_loss_task_{t}", float(value))
        if self._auxiliary:
            history.record("train_auxiliary_loss", float(torch.stack(self._auxiliary).mean()))
        check_finite_parameters(net)
        if dataset_valid is not None:
            valid = self._means("valid", n_tasks)
            observed = np.asarray(self._counts["valid"]) > 0
            bad = np.flatnonzero(np.broadcast_to(observed, (n_tasks,)) & ~np.isfinite(valid))
            if bad.size:
                raise FloatingPointError(
                    f"Task {_task_name(net, bad[0])!r} validation loss is not finite "
                    f"({valid[bad[0]]}) at epoch {len(history)}; training stopped. Lower lr, "
                    "standardise X, or check that task's labels."
                )
            for t, value in enumerate(valid):
                history.record(f"valid_loss_task_{t}", float(value))
            labelled = valid[np.isfinite(valid)]
            loss = float(labelled.mean()) if labelled.size else np.nan
            earlier = [row["valid_loss"] for row in history[:-1] if "valid_loss" in row]
            history.record("valid_loss", loss)
            history.record("valid_loss_best", bool(all(loss < value for value in earlier)))
        net.weighting_.on_epoch_end(train)
        weights = np.asarray(net.weighting_.current_weights(), dtype=np.float64)
        history.record("task_weights", weights.tolist())


class AffinityWindow(Callback):
    """Restarts the gradient affinity's running sums at the end of epoch ``start``.

    The affinity is then the mean over the batches of the epochs after ``start`` only: in the
    first epochs the heads are near their random initialisation, and the gradients they send
    into the shared layers point in directions set by those random heads, not by the tasks.
    ``"adaptive"`` sharing branches on the affinity of the second half of its thin phase.
    """

    def __init__(self, start):
        self.start = start

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.start:
            net.affinity_sum_.zero_()
            net.affinity_count_.zero_()


# --------------------------------------------------------------------------------------------
# The net
# --------------------------------------------------------------------------------------------


def _task_name(net, t):
    """Task ``t``'s label (its position when the net has no task names)."""
    names = getattr(net, "task_names", None)
    return names[t] if names is not None else int(t)


def check_finite_parameters(net):
    """Raise a FloatingPointError naming the tasks whose parameters are not finite.

    Called at the end of every epoch: a diverging step after the last loss of an epoch would
    otherwise leave a network that predicts NaN or inf. Parameters of the task heads (the
    ``task_heads`` layers, whose first dimension is the task) name their tasks; any other
    parameter is shared or per-tower, and the message names it.
    """
    module = net.module_
    bad = [
        (name, param) for name, param in module.named_parameters()
        if not bool(torch.isfinite(param).all())
    ]
    if not bad:
        return
    tasks = set()
    others = []
    for name, param in bad:
        if name.startswith("task_heads.") and param.dim() >= 1:
            finite = torch.isfinite(param.detach()).flatten(1).all(1)
            tasks.update(int(t) for t in torch.nonzero(~finite).flatten().tolist())
        else:
            others.append(name)
    epoch = len(net.history)
    if others:
        where = (
            f"parameter(s) {others[:3]} (not owned by one head, so every task is affected; "
            f"first task: {_task_name(net, 0)!r})"
        )
    else:
        names = [_task_name(net, t) for t in sorted(tasks)]
        where = f"the head(s) of task(s) {names[:5]}"
    raise FloatingPointError(
        f"The network diverged at epoch {epoch}: {where} are no longer finite after the last "
        "optimizer step; training stopped. Lower lr, standardise X, or check the labels."
    )


# Above this many tasks the gradient affinity (a T x T Gram matrix per batch, O(T^2 (B + h)))
# is measured on the first batch of each epoch only, as with hidden head layers: with 2,410
# tasks, every batch would cost several times the training step itself.
AFFINITY_EVERY_BATCH_MAX_TASKS = 256


def _reset_heads(module, tasks):
    """Draw the heads of ``tasks`` afresh, as :class:`~skmtl.deep.modules.BatchedLinear` does."""
    heads = module.task_heads
    with torch.no_grad():
        for layer in [*heads.hidden, heads.output]:
            bound = 1.0 / math.sqrt(layer.in_features)
            for t in tasks:
                layer.weight[t].uniform_(-bound, bound)
                if layer.bias is not None:
                    layer.bias[t].uniform_(-bound, bound)
        heads.output.weight.mul_(heads.output_mask.unsqueeze(1))
        heads.output.bias.mul_(heads.output_mask)


_ELEMENTWISE = (
    torch.nn.ReLU, torch.nn.Tanh, torch.nn.Sigmoid, torch.nn.GELU, torch.nn.ELU,
    torch.nn.LeakyReLU, torch.nn.SiLU, torch.nn.Softplus, torch.nn.Dropout, torch.nn.Identity,
)


def _elementwise_tail(module):
    """Whether the layers between the last shared layer and the representation act elementwise.

    True for the library's own trunks (``"hard"`` without a user module, ``"conditioned"``):
    a ``Sequential`` whose layers after the last shared ``Linear`` are activations and dropout.
    """
    if getattr(module, "last_layer_tail_is_elementwise", False):
        return True
    layer = getattr(module, "last_shared_layer", None)
    for name in ("trunk", "body"):
        sequence = getattr(module, name, None)
        if isinstance(sequence, torch.nn.Sequential) and any(m is layer for m in sequence):
            position = next(i for i, m in enumerate(sequence) if m is layer)
            return all(isinstance(m, _ELEMENTWISE) for m in list(sequence)[position + 1 :])
    return False


def resolve_gradient_space(space, module):
    """The space the per-task gradients are taken in for ``module``.

    ``"last_shared_layer"`` needs a ``torch.nn.Linear`` shared by all tasks
    (``module.last_shared_layer``); a network without one (``"independent"``, ``"soft"``,
    ``"cross_stitch"``, ``"sluice"``, a hard trunk without hidden layers, a user trunk ending
    in another kind of layer) has no such quantity, and the gradients are taken on the
    representation each head reads instead: the only place left where the tasks meet.
    """
    if space not in GRADIENT_SPACES:
        raise ValueError(f"Unknown gradient space {space!r}; expected one of {GRADIENT_SPACES}.")
    if space == "last_shared_layer":
        layer = getattr(module, "last_shared_layer", None)
        # a conditioned network's only hidden layer reads [x, z_t]: not one layer for all tasks
        if not isinstance(layer, torch.nn.Linear) or layer is getattr(module, "input_layer", None):
            return "representation"
    return space


def _linear_head_weight(module):
    """The (T, h, K_max) output weight of the heads when they are linear, else None."""
    heads = getattr(module, "task_heads", None)
    if heads is None or len(getattr(heads, "hidden", ())) > 0:
        return None
    return heads.output.weight


class MultiTaskNet(NetStateMixin, NeuralNet):
    """skorch net training a :class:`~skmtl.deep.modules.MultiTaskModule` on masked task losses.

    Parameters
    ----------
    module : callable
        Builds the :class:`~skmtl.deep.modules.MultiTaskModule` (called without arguments).
    criterion : TaskLoss
        The per-task masked loss.
    weighting : Weighting
        A fresh (not yet reset) weighting; it is reset in ``initialize_module``.
    n_observed : ndarray of shape (n_tasks,)
        Observed training labels per task (for ``Weighting.reset``).
    task_type : {"regression", "classification"}
        For ``Weighting.reset``.
    task_names : sequence, default=None
        Task labels, to name a task whose loss is not finite; positions when None.
    affinity : bool, default=True
        Accumulate the gradient affinity of the tasks (see the module docstring for when).
    affinity_on : {"representation", "last_shared_layer"}, default="representation"
        Where the affinity compares the task gradients.
    auxiliary_weight : float, default=0.0
        Weight of the module's auxiliary loss (``module.auxiliary_heads``, when it has one) in
        the training loss.
    **kwargs
        skorch's :class:`~skorch.net.NeuralNet` parameters.

    Attributes
    ----------
    weighting_ : Weighting
        The weighting, reset for this fit.
    weighting_params_ : torch.nn.ParameterList
        The weighting's learnable parameters, trained by the net's optimizer.
    affinity_sum_, affinity_count_ : Tensor of shape (T, T)
        Sums of the per-batch cosines of the task gradients, and the number of batches in which
        both tasks had a gradient.
    """

    def __init__(
        self,
        module,
        *,
        criterion,
        weighting,
        n_observed,
        task_type,
        task_names=None,
        affinity=True,
        affinity_on="representation",
        auxiliary_weight=0.0,
        **kwargs,
    ):
        super().__init__(module, criterion, **kwargs)
        self.weighting = weighting
        self.n_observed = n_observed
        self.task_type = task_type
        self.task_names = task_names
        self.affinity = affinity
        self.affinity_on = affinity_on
        self.auxiliary_weight = auxiliary_weight

    # -- hooks ----------------------------------------------------------------------------------
    def initialize_module(self):
        super().initialize_module()
        weighting = self.weighting
        params = weighting.reset(
            self.module_.n_tasks,
            n_observed=self.n_observed,
            task_type=self.task_type,
            device=self.device,
        )
        self.weighting_ = weighting
        self.weighting_params_ = torch.nn.ParameterList(params)
        self.gradient_space_ = resolve_gradient_space(weighting.gradient_space(), self.module_)
        self._elementwise_tail_ = _elementwise_tail(self.module_)
        self.affinity_space_ = resolve_gradient_space(self.affinity_on, self.module_)
        weighting.gradient_space_ = self.gradient_space_
        n_tasks = self.module_.n_tasks
        zeros = torch.zeros(n_tasks, n_tasks, dtype=torch.float32, device=self.device)
        self.affinity_sum_ = zeros
        self.affinity_count_ = zeros.clone()
        return self

    def infer(self, x, **fit_params):
        """Padded outputs of all heads, ``(T, B, K_max)``."""
        x = to_tensor(x, device=self.device)
        return self.module_.forward_padded(self.network_input(x)[0])

    def network_input(self, X):
        """``(X_in, hints)``: the columns the network reads, and the standardised hint columns.

        Without ``hint_columns`` (no auxiliary heads, or heads without hints) ``X_in`` is ``X``
        and ``hints`` is None.
        """
        auxiliary = getattr(self.module_, "auxiliary_heads", None)
        if auxiliary is None:
            return X, None
        return auxiliary.split_input(X)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Mean over the tasks with a label in the batch of their mean loss (validation loss)."""
        sums, counts = self.criterion_(y_pred, to_tensor(y_true, device=self.device))
        observed = counts > 0
        if not observed.any():
            return sums.new_zeros(())
        return (sums[observed] / counts[observed]).mean()

    def task_losses(self, y_pred, y_true):
        """Per-task mean losses over the observed labels of a batch, and which tasks have one.

        Parameters
        ----------
        y_pred : Tensor of shape (T, B, K_max)
            Output of :meth:`infer`.
        y_true : dict of Tensor
            The batch's labels (``"row"``, ``"task"``, ``"value"``), as batches carry them.

        Returns
        -------
        losses : Tensor of shape (T,)
            0 for a task without a label in the batch.
        observed : BoolTensor of shape (T,)
        """
        sums, counts = self.criterion_(y_pred, to_tensor(y_true, device=self.device))
        return sums / counts.clamp_min(1), counts > 0

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        Xi, hints = self.network_input(to_tensor(Xi, device=self.device))
        yi = to_tensor(yi, device=self.device)
        module, weighting = self.module_, self.weighting_
        auxiliary = getattr(module, "auxiliary_heads", None)
        n_tasks = module.n_tasks
        head_weight = _linear_head_weight(module)
        first_batch = len(self.history[-1, "batches"]) == 1
        want_affinity = self.affinity and module.shares_representation and n_tasks > 1 and (
            (head_weight is not None and n_tasks <= AFFINITY_EVERY_BATCH_MAX_TASKS)
            or first_batch
        )
        want_gram = weighting.requires_task_gram
        want_norms = weighting.requires_grad_norms
        probe = want_norms or want_gram or want_affinity
        space = self.gradient_space_ if (want_norms or want_gram) else None
        affinity_space = self.affinity_space_ if want_affinity else None
        on_layer = "last_shared_layer" in (space, affinity_space)
        if on_layer and module.last_shared_layer is None:
            # a network that branched ("adaptive") has no shared layer any more
            space = "representation" if space == "last_shared_layer" else space
            if affinity_space == "last_shared_layer":
                affinity_space = "representation"
            on_layer = False

        captured = {}
        hook = None
        if on_layer:
            hook = module.last_shared_layer.register_forward_hook(
                lambda layer, inputs, output: captured.update(a=inputs[0], z=output)
            )
        try:
            rep = module.shared(Xi)
        finally:
            if hook is not None:
                hook.remove()
        slots = None
        if probe and head_weight is None:
            if module.shares_representation:
                slots = rep.detach().unsqueeze(0).expand(n_tasks, -1, -1).requires_grad_()
            elif not rep.requires_grad:
                slots = rep.detach().requires_grad_()
            else:
                slots = rep
        out = module.heads_padded(rep if slots is None else slots)
        sums, counts = self.criterion_(out, yi)
        observed = counts > 0
        losses = sums / counts.clamp_min(1)
        self._check_finite(losses, observed)
        grads = affinity_grads = None
        if probe and losses.requires_grad:
            on_rep = self._representation_gradients(losses, out, slots, head_weight)
            on_layer = self._last_layer_gradients(on_rep, rep, captured, yi) if (
                on_layer
            ) else None
            spaces = {"representation": on_rep, "last_shared_layer": on_layer}
            if space == "head_weights":
                grads = self._head_weight_gradients(losses, module)
            elif space is not None:
                grads = spaces[space]
            if affinity_space is not None:
                affinity_grads = spaces[affinity_space]
        if want_gram:
            if grads is None:
                weighting.observe_task_gram(losses.new_zeros(n_tasks, n_tasks), observed)
            else:
                weighting.observe_task_gradients(grads, observed)
        total = weighting.combine(losses, observed) + module.penalty()
        aux_leaf = aux_loss = None
        if auxiliary is not None:
            aux_rep = rep
            if slots is not None and slots is not rep:
                # the heads read a detached copy of rep: so does the auxiliary loss, and its
                # gradient joins the heads' one in the single backward pass through the trunk
                aux_rep = aux_leaf = rep.detach().requires_grad_(rep.requires_grad)
            aux_loss = auxiliary(aux_rep, Xi, hints, yi)
            total = total + self.auxiliary_weight * aux_loss
        if not torch.isfinite(total):
            raise FloatingPointError(
                f"The combined training loss is not finite ({total.item()}) at epoch "
                f"{len(self.history)}, batch {len(self.history[-1, 'batches'])}; the task losses "
                f"are finite, so the weighting or the sharing penalty diverged. Try a smaller lr."
            )

        grad_norms = None
        if not losses.requires_grad:  # only single-class tasks: nothing to train
            if want_norms:
                grad_norms = torch.zeros_like(losses)
        else:
            self._backward(total)
            if slots is not None and slots is not rep and module.shares_representation:
                if rep.requires_grad:
                    grad = slots.grad.sum(0)
                    if aux_leaf is not None and aux_leaf.grad is not None:
                        grad = grad + aux_leaf.grad
                    rep.backward(grad)
            if want_norms:
                grad_norms = grads.norms()
            if want_affinity:
                self._accumulate_affinity(affinity_grads.gram())
        weighting.after_backward(losses.detach(), observed, grad_norms)
        return {
            "loss": total.detach(),
            "y_pred": out.detach(),
            "task_loss_sums": sums.detach(),
            "task_counts": counts.detach(),
            "auxiliary_loss": None if aux_loss is None else aux_loss.detach(),
        }

    # -- training phases ------------------------------------------------------------------------
    def fine_tune(
        self, train, valid=None, *, tasks, epochs, freeze_shared=False, reinitialize=False
    ):
        """A further training phase on ``tasks`` only, after :meth:`fit` (e.g. a focus task).

        The labels of the other tasks are hidden from the loss, from the validation loss (so
        early stopping watches ``tasks`` only) and from the history's per-task losses; the
        weighting becomes fixed weights (1 on ``tasks``, 0 elsewhere); with ``freeze_shared``
        the trunk's parameters stop training (its buffers, e.g. batch-norm statistics, still
        update). The optimizer carries on with its state, unless ``reinitialize``: then the
        heads of ``tasks`` are drawn afresh (as at construction) and a new optimizer is built,
        so that only the shared layers carry over (fine-tuning a pre-trained trunk). Training
        runs ``epochs`` more epochs (skorch's ``partial_fit``, early stopping included) on the
        rows of ``train`` that have a label of ``tasks``.

        Parameters
        ----------
        train : MultiTaskDataset
            The training part used by :meth:`fit`.
        valid : MultiTaskDataset or None, default=None
            The validation part, if any.
        tasks : sequence of int
            Positions of the tasks to keep training.
        epochs : int
            Epochs of the phase (0: the phase is set up but does not train).
        freeze_shared : bool, default=False
            Freeze the shared trunk (hard sharing).
        reinitialize : bool, default=False
            New heads for ``tasks`` and a new optimizer.

        Returns
        -------
        self : MultiTaskNet
        """
        keep = np.zeros(self.module_.n_tasks, dtype=bool)
        keep[list(tasks)] = True
        labels = train.labels.keep_tasks(keep)
        rows = labels.labelled(train.rows_)
        if rows.shape[0] == 0:
            names = ", ".join(repr(_task_name(self, t)) for t in np.flatnonzero(keep))
            raise ValueError(
                f"Task {names} has no label among the training rows left by "
                "validation_fraction; nothing to fine-tune on."
            )
        weighting = FixedWeighting(task_weights=keep.astype(np.float64))
        weighting.reset(
            len(keep), n_observed=labels.counts(rows), task_type=self.task_type,
            device=self.device,
        )
        self.weighting_ = weighting
        if reinitialize:
            _reset_heads(self.module_, list(tasks))
        if freeze_shared:
            for param in self.module_.trunk.parameters():
                param.requires_grad_(False)
                param.grad = None  # the optimizer skips parameters without a gradient
        if reinitialize:
            self.initialize_optimizer()
        if valid is not None:
            self.train_split = predefined_split(
                MultiTaskDataset(valid.X, valid.labels.keep_tasks(keep), valid.rows_)
            )
        if epochs:
            self.partial_fit(MultiTaskDataset(train.X, labels, rows), epochs=epochs)
        return self

    # -- helpers --------------------------------------------------------------------------------
    def _backward(self, total):
        """The step's one backward pass (a hook for :class:`AcceleratedMultiTaskNet`)."""
        total.backward()

    def _check_finite(self, losses, observed):
        bad = observed & ~torch.isfinite(losses)
        if bool(bad.any()):
            t = int(torch.nonzero(bad)[0, 0])
            name = _task_name(self, t)
            raise FloatingPointError(
                f"Task {name!r} loss is not finite ({losses[t].item()}) at epoch "
                f"{len(self.history)}, batch {len(self.history[-1, 'batches'])}; training "
                f"stopped. Lower lr, standardise X, or check that task's labels."
            )

    def _representation_gradients(self, losses, out, slots, head_weight):
        """The per-task gradients on the representation the heads read."""
        ones = torch.ones_like(losses)
        if head_weight is not None:
            (D,) = torch.autograd.grad(losses, out, grad_outputs=ones, retain_graph=True)
            return FactoredGradients(D, head_weight)
        (G,) = torch.autograd.grad(losses, slots, grad_outputs=ones, retain_graph=True)
        return ExplicitGradients(G, "representation")

    @staticmethod
    def _head_weight_gradients(losses, module):
        """The per-task gradients on each head's output weight: one gradient of ``sum_t L_t``."""
        weight = module.task_heads.output.weight
        (grad,) = torch.autograd.grad(losses.sum(), weight, retain_graph=True)
        return ExplicitGradients(grad, "head_weights")

    def _last_layer_gradients(self, on_rep, rep, captured, labels):
        """The per-task gradients on the last shared layer's weight (see _task_gradients)."""
        a, z = captured["a"], captured["z"]
        if rep.dim() == 3:  # one slot per task (conditioned): slot t of z only reaches slot t
            g = on_rep.representation()
            delta = g if z is rep else torch.autograd.grad(rep, z, g, retain_graph=True)[0]
            return ExplicitGradients(
                torch.einsum("tbh,tbj->thj", delta.detach(), a.detach()), "last_shared_layer"
            )
        if a.dim() != 2:
            raise ValueError(
                "gradient_on='last_shared_layer' needs the last shared Linear layer to read a "
                f"(batch, features) input, got shape {tuple(a.shape)}; use "
                "gradient_on='representation'."
            )
        index, valid = label_rows(labels["row"], labels["task"], self.module_.n_tasks)
        if z is rep:
            delta = on_rep.rows(index, valid)
        elif self._elementwise_tail_:
            # z -> rep is elementwise (activation, dropout): delta_t = g_t * d rep / d z, on
            # each task's labelled rows only
            (jacobian,) = torch.autograd.grad(rep, z, torch.ones_like(rep), retain_graph=True)
            delta = on_rep.rows(index, valid) * jacobian[index]
        else:  # any other tail: one batched vector-Jacobian product through it
            (g,) = torch.autograd.grad(
                rep, z, on_rep.representation(), retain_graph=True, is_grads_batched=True
            )
            labelled = torch.zeros(g.shape[:2], dtype=torch.bool, device=g.device)
            labelled[labels["task"].to(g.device), labels["row"].to(g.device)] = True
            if bool(g.detach().abs().sum(-1).masked_fill(labelled, 0).any()):
                # the tail mixes rows (batch norm in training): delta_t reaches rows where
                # task t has no label, so every row of the batch is kept for every task
                index = torch.arange(g.shape[1], device=g.device).expand(g.shape[0], -1)
                return LastLayerGradients(g.detach(), index, torch.ones_like(labelled), a)
            delta = gather_rows(g, index, valid)
        return LastLayerGradients(delta.detach(), index, valid, a)

    def _accumulate_affinity(self, gram):
        norms = gram.diagonal().clamp_min(0).sqrt()
        present = norms > 0
        inverse = torch.where(present, 1.0 / norms, torch.zeros_like(norms))
        self.affinity_sum_ += gram * inverse.unsqueeze(0) * inverse.unsqueeze(1)
        self.affinity_count_ += (present.unsqueeze(0) & present.unsqueeze(1)).to(gram.dtype)

    def gradient_affinity(self):
        """Mean cosine of the task gradients, NaN where never measured, 1 on the diagonal.

        Measured only while the tasks share a representation: NaN off the diagonal for the
        strategies without one; for ``"adaptive"``, the affinity of the thin network over the
        second half of its phase (see :class:`AffinityWindow`), the one its branches follow,
        and, where the split kept one branch at the top (still a shared representation), the
        batches after the split too.

        Returns
        -------
        affinity : ndarray of shape (T, T)
        """
        n_tasks = self.module_.n_tasks
        count = self.affinity_count_.to("cpu", torch.float64).numpy()
        total = self.affinity_sum_.to("cpu", torch.float64).numpy()
        affinity = np.full((n_tasks, n_tasks), np.nan)
        seen = count > 0
        affinity[seen] = np.clip(total[seen] / count[seen], -1.0, 1.0)
        affinity = (affinity + affinity.T) / 2
        np.fill_diagonal(affinity, 1.0)
        return affinity
