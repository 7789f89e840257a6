"""Per-task gradients of one batch, read without a backward pass through the trunk per task.

A weighting that balances or compares the tasks' gradients (GradNorm, RMTL) and the gradient
affinity of the estimators need, for every task ``t``, quantities of ``g_t``, the gradient of the
*unweighted* task loss ``L_t`` in some space: their norms, their inner products with one task's,
the norms of weighted sums of them, or their whole Gram matrix. :class:`TaskGradients` answers
these questions lazily, in one of three spaces (``GRADIENT_SPACES``):

``"representation"``
    ``g_t = dL_t / dR`` on the representation ``R`` the heads read (the trunk's output). With
    linear heads, ``g_t = D_t W_t^T`` (``D_t = dL_t / d out_t``, ``W_t`` the head's weight), so
    norms and inner products come from ``K x K`` products without forming ``g_t``
    (:class:`FactoredGradients`); with hidden head layers the ``g_t`` are formed in one backward
    pass through the heads (:class:`ExplicitGradients`).

``"last_shared_layer"``
    ``g_t = dL_t / dW`` for the weight ``W`` (``h x h_prev``) of the network's last shared
    ``Linear`` layer, GradNorm's quantity. For a layer ``z = a W^T + b`` read by every task,
    ``g_t = delta_t^T a`` with ``delta_t = dL_t / dz`` (``B x h``) and ``a`` the layer's input
    (``B x h_prev``): the per-sample factorisation of a linear layer's weight gradient. The
    ``delta_t`` of all tasks come from the ``g_t`` on the representation by one batched
    vector-Jacobian product through the (parameter-free) layers between ``z`` and ``R``;
    inner products then follow from ``B x B`` Gram matrices of ``a`` and of the ``delta_t``
    (:class:`LastLayerGradients`). ``delta_t`` is zero on the rows where task ``t`` has no
    label, so on sparse labels the products run over each task's labelled rows only; a tail
    that mixes the rows (a batch norm in training) is the exception, and there every row of
    the batch is kept for every task.

``"head_weights"``
    ``g_t = dL_t / dV_t`` for the weight ``V_t`` of task ``t``'s output layer: the reward of
    RMTL in its authors' code. The heads are one batched layer whose slice ``t`` only task ``t``
    reads, so one gradient of ``sum_t L_t`` with respect to that layer's weight is every
    ``g_t`` at once.

The net builds the object of a space from what one forward pass left (see
:meth:`~skmtl.deep._net.MultiTaskNet.train_step_single`); a weighting reads it in
``observe_task_gradients`` and the norms in ``after_backward``.
"""

import torch

__all__ = [
    "GRADIENT_SPACES",
    "ExplicitGradients",
    "FactoredGradients",
    "GramGradients",
    "LastLayerGradients",
    "TaskGradients",
    "gather_rows",
]

GRADIENT_SPACES = ("representation", "last_shared_layer", "head_weights")
"""Where the per-task gradients can be taken (see the module docstring)."""


def _singletons(P):
    """For each row of P, the task it weighs alone (-1 if it weighs several or none)."""
    nonzero = P != 0
    index = nonzero.to(torch.int64).argmax(1)
    return torch.where(nonzero.sum(1) == 1, index, torch.full_like(index, -1))


class TaskGradients:
    """The per-task gradients ``g_1 .. g_T`` of one batch, in one space.

    Every method returns a detached float tensor on the network's device. A task without a
    label in the batch has ``g_t = 0``.

    Attributes
    ----------
    space : str
        One of ``GRADIENT_SPACES``.
    n_tasks : int
    """

    space = None

    def norms(self):
        """``||g_t||`` for every task, shape ``(T,)``."""
        return self.gram().diagonal().clamp_min(0).sqrt()

    def gram(self):
        """``<g_s, g_t>``, shape ``(T, T)``."""
        raise NotImplementedError

    def dots(self, t):
        """``<g_s, g_t>`` for every task ``s``, shape ``(T,)``."""
        return self.gram()[:, t]

    def combination_norms(self, P):
        """``||sum_s P[i, s] g_s||`` for every row ``i`` of ``P`` (``(m, T)``), shape ``(m,)``.

        A row that weighs one task costs nothing beyond :meth:`norms`.
        """
        P = P.to(device=self.device, dtype=self.dtype)
        single = _singletons(P)
        out = P.new_zeros(P.shape[0])
        alone = single >= 0
        if bool(alone.any()):
            index = single[alone]
            out[alone] = P[alone].gather(1, index.unsqueeze(1)).squeeze(1).abs() * self.norms()[
                index
            ]
        if bool((~alone).any()):
            out[~alone] = self._mixed_norms(P[~alone])
        return out

    def _mixed_norms(self, P):
        G = self.gram()
        return ((P @ G) * P).sum(1).clamp_min(0).sqrt()


class ExplicitGradients(TaskGradients):
    """Gradients held as a ``(T, ...)`` tensor, one slice per task."""

    def __init__(self, grads, space):
        self.grads = grads.detach()
        self.flat = self.grads.flatten(1)
        self.space = space
        self.n_tasks = self.flat.shape[0]
        self.device, self.dtype = self.flat.device, self.flat.dtype

    def norms(self):
        return self.flat.norm(dim=1)

    def gram(self):
        return self.flat @ self.flat.T

    def dots(self, t):
        return self.flat @ self.flat[t]

    def _mixed_norms(self, P):
        return (P @ self.flat).norm(dim=1)

    def representation(self):
        """The gradients themselves, ``(T, B, h)`` (on the representation)."""
        return self.grads

    def rows(self, index, valid):
        """The gradients on each task's rows (:func:`~skmtl.deep._labels.label_rows`),
        ``(T, n, h)``."""
        return gather_rows(self.grads, index, valid)


class GramGradients(TaskGradients):
    """Gradients known through their Gram matrix only (``(T, T)``)."""

    space = "representation"

    def __init__(self, gram):
        self._gram = gram.detach()
        self.n_tasks = gram.shape[0]
        self.device, self.dtype = gram.device, gram.dtype

    def gram(self):
        return self._gram


class FactoredGradients(TaskGradients):
    """Gradients on the representation read by linear heads: ``g_t = D_t W_t^T``.

    Parameters
    ----------
    D : Tensor of shape (T, B, K)
        ``dL_t / d out_t`` (padded output columns receive 0).
    W : Tensor of shape (T, h, K)
        The heads' output weights.
    """

    space = "representation"

    def __init__(self, D, W):
        self.D, self.W = D.detach(), W.detach()
        self.n_tasks = D.shape[0]
        self.device, self.dtype = D.device, D.dtype

    def norms(self):
        # ||D_t W_t^T||^2 = sum_{kl} (D_t^T D_t)_{kl} (W_t^T W_t)_{kl}: O(T K^2 (B + h))
        dd = torch.einsum("tbk,tbl->tkl", self.D, self.D)
        ww = torch.einsum("thk,thl->tkl", self.W, self.W)
        return (dd * ww).sum((1, 2)).clamp_min(0).sqrt()

    def gram(self):
        D, W = self.D, self.W
        n_tasks, _, width = D.shape
        if width == 1:
            return (D[:, :, 0] @ D[:, :, 0].T) * (W[:, :, 0] @ W[:, :, 0].T)
        flat_d = D.permute(0, 2, 1).reshape(n_tasks * width, -1)
        flat_w = W.permute(0, 2, 1).reshape(n_tasks * width, -1)
        products = (flat_d @ flat_d.T) * (flat_w @ flat_w.T)
        return products.view(n_tasks, width, n_tasks, width).sum((1, 3))

    def dots(self, t):
        dd = torch.einsum("sbk,bl->skl", self.D, self.D[t])
        ww = torch.einsum("shk,hl->skl", self.W, self.W[t])
        return (dd * ww).sum((1, 2))

    def representation(self):
        """The gradients themselves, ``(T, B, h)``."""
        return torch.einsum("tbk,thk->tbh", self.D, self.W)

    def rows(self, index, valid):
        """The gradients on each task's rows (:func:`~skmtl.deep._labels.label_rows`),
        ``(T, n, h)``, formed there
        only: ``D_t`` gathered, times ``W_t^T``."""
        return gather_rows(self.D, index, valid) @ self.W.transpose(1, 2)


def gather_rows(values, index, valid):
    """``values[t, index[t]]`` for a ``(T, B, h)`` tensor (or ``values[index[t]]`` for a
    ``(B, h)`` one), zero where ``valid`` is False: ``(T, n, h)``."""
    if values.dim() == 2:
        out = values[index]
    else:
        out = values.gather(1, index.unsqueeze(-1).expand(-1, -1, values.shape[-1]))
    return out * valid.unsqueeze(-1).to(out.dtype)


class LastLayerGradients(TaskGradients):
    """Gradients on the weight of a ``Linear`` layer shared by all tasks: ``g_t = delta_t^T a``.

    ``delta_t = dL_t / dz`` (``z`` the layer's output) is zero on the rows where task ``t``
    has no label, unless a layer between ``z`` and the representation mixes rows, so it is
    held on each task's labelled rows only (on all rows, ``index`` each row of the batch, when
    it is not zero elsewhere).

    Parameters
    ----------
    delta : Tensor of shape (T, n, h)
        ``delta_t`` on task ``t``'s rows (:func:`gather_rows`).
    index, valid : Tensor of shape (T, n)
        Those rows (:func:`~skmtl.deep._labels.label_rows`).
    a : Tensor of shape (B, h_prev)
        The layer's input.
    """

    space = "last_shared_layer"

    def __init__(self, delta, index, valid, a):
        self.delta, self.index = delta.detach(), index
        self.valid = valid.unsqueeze(-1).to(delta.dtype)
        self.a = a.detach().to(delta.dtype)
        self.n_tasks, self.n_rows, _ = delta.shape
        self.device, self.dtype = delta.device, delta.dtype
        self._norms = self._inputs = self._kernel = self._task_kernel = None

    def _full_kernel(self):
        """``a a^T``, ``(B, B)``, computed once."""
        if self._kernel is None:
            self._kernel = self.a @ self.a.T
        return self._kernel

    def _input_gram(self):
        """``(a a^T)`` restricted to each task's rows, ``(T, n, n)``."""
        if self._task_kernel is None:
            index = self.index
            rows = self._full_kernel()[index]  # (T, n, B)
            self._task_kernel = rows.gather(2, index.unsqueeze(1).expand(-1, index.shape[1], -1))
        return self._task_kernel

    def _task_inputs(self):
        """``a`` on each task's rows, ``(T, n, h_prev)`` (zero on padding)."""
        if self._inputs is None:
            self._inputs = self.a[self.index] * self.valid
        return self._inputs

    def norms(self):
        if self._norms is None:
            d = self.delta
            if self.n_rows <= self.a.shape[1]:  # Gram matrices of the rows: O(T n^2 (h + B))
                kernel = self._input_gram() * (self.valid @ self.valid.transpose(1, 2))
                squares = ((d @ d.transpose(1, 2)) * kernel).sum((1, 2))
            else:  # the gradients themselves: O(T n h h_prev)
                squares = (d.transpose(1, 2) @ self._task_inputs()).flatten(1).square().sum(1)
            self._norms = squares.clamp_min(0).sqrt()
        return self._norms

    def _full_delta(self, weights=None):
        """``delta`` back on all ``B`` rows, ``(T, B, h)``; summed over tasks with ``weights``
        (``(m, T)``) into ``(m, B, h)``."""
        h, batch = self.delta.shape[2], self.a.shape[0]
        if weights is None:
            index = self.index.unsqueeze(-1).expand(-1, -1, h)
            return self.delta.new_zeros(self.n_tasks, batch, h).scatter_add(1, index, self.delta)
        out = self.delta.new_zeros(weights.shape[0], batch, h)
        flat_index = self.index.reshape(-1)
        for i, row in enumerate(weights):
            out[i].index_add_(0, flat_index, (self.delta * row.view(-1, 1, 1)).reshape(-1, h))
        return out

    def dots(self, t):
        # <g_s, g_t> = sum_{b labelled for s} delta_s[b] . sum_{b' labelled for t}
        #              (a a^T)[b, b'] delta_t[b']
        kernel = self._full_kernel()[:, self.index[t]]  # (B, n)
        projected = kernel @ (self.delta[t] * self.valid[t])  # (B, h)
        return (self.delta * gather_rows(projected, self.index, self.valid[..., 0] > 0)).sum(
            (1, 2)
        )

    def _mixed_norms(self, P):
        combined = self._full_delta(P)  # (m, B, h)
        if self.a.shape[0] <= self.a.shape[1]:  # ||D^T a||^2 = sum((D D^T) * (a a^T))
            squares = ((combined @ combined.transpose(1, 2)) * self._full_kernel()).sum((1, 2))
            return squares.clamp_min(0).sqrt()
        return (combined.transpose(1, 2) @ self.a).flatten(1).norm(dim=1)

    def gram(self):
        delta = self._full_delta()  # (T, B, h)
        a = self.a
        if a.shape[0] <= a.shape[1]:  # through the (B, B) Gram matrix of the inputs
            projected = torch.matmul(a @ a.T, delta)  # (T, B, h)
            gram = delta.flatten(1) @ projected.flatten(1).T
        else:
            grads = (delta.transpose(1, 2) @ a).flatten(1)
            gram = grads @ grads.T
        return (gram + gram.T) / 2
