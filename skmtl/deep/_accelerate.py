"""Data-parallel training of the deep estimators with Hugging Face Accelerate (``accelerator=``).

:class:`AcceleratedMultiTaskNet` is :class:`~skmtl.deep._net.MultiTaskNet` with skorch's
:class:`~skorch.hf.AccelerateMixin`, which gives it the accelerator's optimizer, mixed precision
(``accelerator.autocast`` around the step, ``accelerator.backward`` for the one backward pass)
and the end-of-training synchronisation. Three things differ from the mixin's defaults, for
reasons of the multi-task training step:

- **The modules are not wrapped** in ``DistributedDataParallel``. DDP averages the gradients
  only for a forward pass made through its wrapper, and the step reads the trunk and the heads
  apart (``module.shared``, then ``module.heads_padded``: the per-task gradient probes of
  GradNorm and RMTL need the representation in between). The gradients of the one backward
  pass are averaged over the processes explicitly instead, in one all-reduce of a flat buffer
  (:meth:`AcceleratedMultiTaskNet._average_gradients`): the same arithmetic as DDP's.
- **Batches are dealt, not re-sampled**: each epoch's batches are drawn once, identically in
  every process (from a generator seeded from process 0's seed and the epoch), and process
  ``r`` of ``P`` takes batches ``r, r + P, ...`` (the ``BatchLoader``'s ``shard``), wrapping
  round so that every process takes ``ceil(n_batches / P)`` steps. Task sampling and
  ``tasks_per_batch`` keep their meaning. Accelerate's own data-loader preparation needs a
  batch sampler, which the whole-batch loader does not have.
- **Validation is not gathered**: every process computes the validation loss on the whole
  validation part, with the same network, so that early stopping stops every process at the
  same epoch.

Every process starts from process 0's initial network (broadcast after initialisation) and
takes the same averaged optimizer step, so all processes hold the same network throughout,
whatever their weightings' per-batch state (a weighting that reads the batch's losses, such as
LBTW, weighs each process's share with its own losses; the averaged gradient is the same in
every process). Buffers (batch-norm statistics of a user module) are broadcast from process 0
after every step.
"""

import torch
from skorch.hf import AccelerateMixin

from skmtl.deep._net import MultiTaskNet

__all__ = ["AcceleratedMultiTaskNet", "shared_seed"]


def shared_seed(accelerator, seed):
    """Process 0's ``seed`` in every process (each process may have drawn its own)."""
    if accelerator.num_processes == 1:
        return seed
    from accelerate.utils import broadcast_object_list

    return int(broadcast_object_list([seed], from_process=0)[0])


class AcceleratedMultiTaskNet(AccelerateMixin, MultiTaskNet):
    """:class:`~skmtl.deep._net.MultiTaskNet` trained data-parallel by an ``accelerator``.

    Parameters
    ----------
    module : callable
        Builds the network (see :class:`~skmtl.deep._net.MultiTaskNet`).
    accelerator : accelerate.Accelerator
        The processes and their device.
    **kwargs
        :class:`~skmtl.deep._net.MultiTaskNet`'s parameters (``device`` is the accelerator's).
    """

    def __init__(self, module, *, accelerator, **kwargs):
        kwargs["device"] = accelerator.device
        super().__init__(module, accelerator=accelerator, **kwargs)
        self._print_log = kwargs.get("callbacks__print_log", "") is not None
        if not self._print_log:
            # no table of losses (verbose < 2): nothing to print through the accelerator
            del self.callbacks__print_log__sink

    # -- set-up ---------------------------------------------------------------------------------
    def initialize_module(self):
        super().initialize_module()
        self._broadcast(list(self.module_.parameters()) + list(self.weighting_params_))
        self._shard_seed = shared_seed(
            self.accelerator, int(torch.randint(2**31 - 1, ()).item())
        )
        return self

    def _validate_params(self):
        # the mixin asks for device=None when the accelerator places the modules; it does not
        # here (they are not prepared), so the net places them on the accelerator's device
        return MultiTaskNet._validate_params(self)

    def _initialize_callbacks(self):
        if self._print_log:  # the mixin's: the table printed by the main process only
            return super()._initialize_callbacks()
        return MultiTaskNet._initialize_callbacks(self)

    def initialize_optimizer(self, *args, **kwargs):
        super().initialize_optimizer(*args, **kwargs)
        self.optimizer_ = self.accelerator.prepare(self.optimizer_)
        return self

    def _initialize_accelerator(self):
        # the optimizer is prepared in initialize_optimizer (also on a fresh optimizer of
        # fine-tuning); the modules stay unwrapped (see the module docstring)
        self._wrapped_with_accelerator = True
        return self

    def get_iterator(self, dataset, training=False):
        if not training:  # the whole validation part in every process
            return MultiTaskNet.get_iterator(self, dataset, training=False)
        kwargs = self.get_params_for("iterator_train")
        kwargs.setdefault("batch_size", self.batch_size)
        accelerator = self.accelerator
        generator = torch.Generator().manual_seed(self._shard_seed + len(self.history))
        return self.iterator_train(
            dataset, generator=generator,
            shard=(accelerator.process_index, accelerator.num_processes), **kwargs,
        )

    # -- the training step ------------------------------------------------------------------------
    def train_step_single(self, batch, **fit_params):
        with self.accelerator.autocast():
            step = MultiTaskNet.train_step_single(self, batch, **fit_params)
        self._average_gradients()
        self._broadcast(list(self.module_.buffers()))
        return step

    def _backward(self, total):
        self.accelerator.backward(total)

    def evaluation_step(self, batch, training=False):
        return MultiTaskNet.evaluation_step(self, batch, training=training)

    def _trained_parameters(self):
        return [
            param for group in self.optimizer_.param_groups for param in group["params"]
            if param.requires_grad
        ]

    def _average_gradients(self):
        """Average the gradients over the processes (one all-reduce of a flat buffer).

        A parameter without a gradient in some process counts zero there; one without a
        gradient in every process keeps none (the optimizer then skips it, as in one process).
        """
        if self.accelerator.num_processes == 1:
            return
        params = self._trained_parameters()
        if not params:
            return
        flat = torch.cat([
            torch.zeros(p.numel(), device=p.device, dtype=p.dtype) if p.grad is None
            else p.grad.reshape(-1) for p in params
        ] + [torch.tensor([float(p.grad is not None) for p in params], device=params[0].device,
                          dtype=params[0].dtype)])
        flat = self.accelerator.reduce(flat, reduction="sum")
        world = self.accelerator.num_processes
        has_grad = flat[-len(params):] > 0
        start = 0
        for param, present in zip(params, has_grad.tolist(), strict=True):
            stop = start + param.numel()
            param.grad = flat[start:stop].view_as(param) / world if present else None
            start = stop

    def _broadcast(self, tensors):
        """Overwrite ``tensors`` with process 0's values."""
        tensors = [t for t in tensors if t.numel()]
        if self.accelerator.num_processes == 1 or not tensors:
            return
        from accelerate.utils import broadcast

        with torch.no_grad():
            flat = broadcast(torch.cat([t.detach().reshape(-1).float() for t in tensors]),
                             from_process=0)
            start = 0
            for tensor in tensors:
                stop = start + tensor.numel()
                tensor.copy_(flat[start:stop].view_as(tensor))
                start = stop


def release(net):
    """The trained ``net`` as a plain :class:`~skmtl.deep._net.MultiTaskNet`.

    Training is over: every process holds the same network, which predicts without a process
    group; the accelerator, its print function and its optimizer wrapper are dropped, so that
    the fitted estimator's net pickles and saves (skops) as a one-process net does.
    """
    for name in ("accelerator", "unwrap_after_train", "_wrapped_with_accelerator",
                 "_shard_seed", "_print_log", "callbacks__print_log__sink"):
        net.__dict__.pop(name, None)
    net.optimizer_ = getattr(net.optimizer_, "optimizer", net.optimizer_)
    net.__class__ = MultiTaskNet
    return net
