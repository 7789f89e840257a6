"""Deep multi-task estimators: scikit-learn estimators that build and own a skorch net.

:class:`MultiTaskRegressor` and :class:`MultiTaskClassifier` serve every task; their parameters
beyond the network and its training (which :class:`~skmtl.deep._base._BaseDeepEstimator` owns) are
the sharing strategy, the loss weighting, the task sampling and what an unseen task gets.
"""

import warnings
from collections import Counter

import numpy as np
import torch
from sklearn.base import is_classifier
from sklearn.utils.validation import check_is_fitted

from skmtl.base import MultiTaskClassifierMixin, MultiTaskRegressorMixin
from skmtl.deep._auxiliary import AUXILIARY
from skmtl.deep._base import (
    DEFAULTS,
    DEPRECATED,
    _BaseDeepEstimator,
    _DeepClassificationMixin,
    _DeepRegressionMixin,
    _deprecated,
    _task_proba,
    _ValidationGroupsMixin,
    _weights_history,
)
from skmtl.deep._docstrings import MULTITASK_DOCS
from skmtl.deep._net import AffinityWindow
from skmtl.deep.modules import CONDITIONING, SHARING, _check_sizes
from skmtl.deep.weighting import WEIGHTINGS, Weighting
from skmtl.utils._docstring import Substitution
from skmtl.utils._sklearn_compat import Integral, Interval, Real, StrOptions
from skmtl.utils.validation import _hashable, _is_frame, check_task_ids, encode_task_ids

__all__ = ["MultiTaskClassifier", "MultiTaskRegressor"]

TASK_SAMPLING = ("joint", "uniform", "proportional")

# Deprecated flat parameters: (weighting name, parameter of that weighting, its class).
_FLAT_WEIGHTING_PARAMS = {
    "task_weights": ("fixed", "task_weights", "FixedWeighting"),
    "gradnorm_alpha": ("gradnorm", "alpha", "GradNormWeighting"),
    "lbtw_alpha": ("lbtw", "alpha", "LBTWWeighting"),
}


class _MultiTaskDeepEstimator(_BaseDeepEstimator):
    """Parameters and fit of the estimators that serve every task."""

    _parameter_constraints = {
        **_BaseDeepEstimator._parameter_constraints,
        "sharing": [StrOptions(set(SHARING))],
        "soft_penalty": [Interval(Real, 0, None, closed="left")],
        "sluice_orthogonality": [Interval(Real, 0, None, closed="left")],
        "conditioning": [StrOptions(set(CONDITIONING))],
        "embedding_dim": [None, Interval(Integral, 1, None, closed="left")],
        "task_descriptors": [None, "array-like"],
        "tensor_rank": [None, Interval(Integral, 1, None, closed="left")],
        "task_depths": [None, "array-like", dict],
        "task_order": [None, "array-like"],
        "max_branches": [None, Interval(Integral, 1, None, closed="left")],
        "relationship_penalty": [Interval(Real, 0, None, closed="left")],
        "successive_penalty": [Interval(Real, 0, None, closed="left")],
        "auxiliary": [None, StrOptions(set(AUXILIARY))],
        "auxiliary_weight": [Interval(Real, 0, None, closed="left")],
        "hint_columns": [None, "array-like"],
        "weighting": [StrOptions(set(WEIGHTINGS)), Weighting],
        "task_weights": _deprecated(None, "array-like"),
        "gradnorm_alpha": _deprecated(Interval(Real, 0, None, closed="left")),
        "lbtw_alpha": _deprecated(Interval(Real, 0, None, closed="left")),
        "task_sampling": [StrOptions(set(TASK_SAMPLING))],
        "tasks_per_batch": [Interval(Integral, 1, None, closed="left")],
        "unknown_task": [StrOptions({"error", "shared"})],
    }

    def __init__(
        self,
        *,
        sharing="hard",
        hidden_layer_sizes=DEFAULTS["hidden_layer_sizes"],
        head_layer_sizes=(),
        activation="relu",
        dropout=DEFAULTS["dropout"],
        soft_penalty=1e-3,
        sluice_orthogonality=0.1,
        conditioning="concat",
        embedding_dim=None,
        task_descriptors=None,
        tensor_rank=None,
        task_depths=None,
        task_order=None,
        max_branches=None,
        relationship_penalty=0.1,
        successive_penalty=1e-2,
        module=None,
        module_params=None,
        auxiliary=None,
        auxiliary_weight=0.1,
        hint_columns=None,
        weighting="equal",
        task_weights=DEPRECATED,
        gradnorm_alpha=DEPRECATED,
        lbtw_alpha=DEPRECATED,
        task_sampling="joint",
        tasks_per_batch=1,
        max_epochs=DEFAULTS["max_epochs"],
        batch_size=DEFAULTS["batch_size"],
        lr=DEFAULTS["lr"],
        weight_decay=DEFAULTS["weight_decay"],
        optimizer=DEFAULTS["optimizer"],
        early_stopping=True,
        validation_fraction=None,
        n_iter_no_change=DEFAULTS["n_iter_no_change"],
        affinity_on="representation",
        unknown_task="error",
        callbacks=None,
        device="cpu",
        accelerator=None,
        random_state=None,
        verbose=0,
    ):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            head_layer_sizes=head_layer_sizes,
            activation=activation,
            dropout=dropout,
            module=module,
            module_params=module_params,
            max_epochs=max_epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            optimizer=optimizer,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            affinity_on=affinity_on,
            callbacks=callbacks,
            device=device,
            accelerator=accelerator,
            random_state=random_state,
            verbose=verbose,
        )
        self.sharing = sharing
        self.soft_penalty = soft_penalty
        self.sluice_orthogonality = sluice_orthogonality
        self.conditioning = conditioning
        self.embedding_dim = embedding_dim
        self.task_descriptors = task_descriptors
        self.tensor_rank = tensor_rank
        self.task_depths = task_depths
        self.task_order = task_order
        self.max_branches = max_branches
        self.relationship_penalty = relationship_penalty
        self.successive_penalty = successive_penalty
        self.auxiliary = auxiliary
        self.auxiliary_weight = auxiliary_weight
        self.hint_columns = hint_columns
        self.weighting = weighting
        self.task_weights = task_weights
        self.gradnorm_alpha = gradnorm_alpha
        self.lbtw_alpha = lbtw_alpha
        self.task_sampling = task_sampling
        self.tasks_per_batch = tasks_per_batch
        self.unknown_task = unknown_task

    def _fit_labels(self, X, labels):
        if self.task_sampling == "joint" and self.tasks_per_batch != 1:
            raise ValueError(
                f"tasks_per_batch={self.tasks_per_batch} draws tasks per batch, but "
                "task_sampling='joint' draws rows from all tasks; use task_sampling='uniform' "
                "or 'proportional', or tasks_per_batch=1."
            )
        (self.task_descriptors_, self.zero_shot_tasks_,
         self._zero_shot_descriptors) = self._check_task_descriptors()
        kinds, output_sizes, labels = self._encode_targets(labels)
        phases = {}
        if self.sharing == "adaptive":
            phases = dict(max_epochs=self._thin_epochs(), after_fit=self._branch)
        net = self._train_net(
            X, labels, kinds, output_sizes, tasks=self.tasks_,
            weighting=self._make_weighting(), task_sampling=self.task_sampling,
            tasks_per_batch=self.tasks_per_batch, groups=self._groups, **phases,
        )
        self.net_ = net
        self.n_iter_, self.task_weights_history_ = _weights_history(net, len(output_sizes))
        self._affinity_of_net = True
        self._set_sharing_attributes()
        return self

    def _set_sharing_attributes(self):
        """``task_covariance_`` / ``task_correlation_`` (``"relationship"``) and ``branches_``
        (``"adaptive"``), read from the trained network; removed when another sharing is fit."""
        for name in ("task_covariance_", "task_correlation_", "branches_"):
            vars(self).pop(name, None)
        module = self.net_.module_
        if self.sharing == "relationship":
            covariance = module.task_covariance.detach().to("cpu", torch.float64).numpy()
            scale = np.sqrt(np.diag(covariance))
            self.task_covariance_ = covariance
            self.task_correlation_ = covariance / np.outer(scale, scale)
        elif self.sharing == "adaptive":
            tasks = [_hashable(task) for task in self.tasks_]
            self.branches_ = [
                [[tasks[t] for t in group] for group in layer] for layer in module.branches()
            ]

    def _sharing(self):
        """The sharing strategy and its own parameters, for :func:`build_module`."""
        return self.sharing, {
            "soft_penalty": self.soft_penalty,
            "sluice_orthogonality": self.sluice_orthogonality,
            "conditioning": self.conditioning,
            "embedding_dim": self.embedding_dim,
            "task_descriptors": getattr(self, "task_descriptors_", None),
            "tensor_rank": self.tensor_rank,
            "task_depths": self._task_depths(),
            "task_order": self._task_order(),
            "max_branches": self.max_branches,
            "split_after": None,
            "relationship_penalty": self.relationship_penalty,
            "successive_penalty": self.successive_penalty,
        }

    def _task_positions(self, labels, name):
        """Positions in ``tasks_`` of the task labels ``labels`` (a ValueError names an unknown
        label)."""
        labels = list(labels)
        positions = encode_task_ids(labels, self.tasks_, allow_unknown=True)
        unknown = [label for label, t in zip(labels, positions, strict=True) if t < 0]
        if unknown:
            raise ValueError(
                f"{name} names task(s) {unknown[:5]} not seen in fit; the tasks are "
                f"{[_hashable(task) for task in self.tasks_][:10]}."
            )
        return positions.tolist()

    def _check_used_by(self, name, what, sharing):
        """A ValueError when ``name`` (which sets ``what`` ``sharing``) is set for another."""
        if self.sharing != sharing:
            raise ValueError(
                f"{name} sets {what} sharing={sharing!r}; got sharing={self.sharing!r}."
            )

    def _task_depths(self):
        """``task_depths`` as one depth per task in ``tasks_`` order (None: all at the top)."""
        depths = self.task_depths
        if depths is None:
            return None
        self._check_used_by("task_depths", "the depth each task's head reads in",
                            "low_supervision")
        n_layers = len(_check_sizes("hidden_layer_sizes", self.hidden_layer_sizes))
        if isinstance(depths, dict):
            positions = self._task_positions(list(depths), "task_depths")
            resolved = [n_layers] * self.n_tasks_
            for t, depth in zip(positions, depths.values(), strict=True):
                resolved[t] = depth
            return resolved
        depths = list(np.asarray(depths).ravel())
        if len(depths) != self.n_tasks_:
            raise ValueError(
                f"task_depths must give one depth per task ({self.n_tasks_}, in tasks_ order) "
                f"or be a dict {{task: depth}}; got {len(depths)} values."
            )
        return depths

    def _task_order(self):
        """``task_order`` (task labels) as positions in ``tasks_`` (None: ``tasks_`` order)."""
        order = self.task_order
        if order is None:
            return None
        self._check_used_by("task_order", "the order of the task levels of", "stacked")
        positions = self._task_positions(list(np.asarray(order, dtype=object).ravel()),
                                         "task_order")
        if sorted(positions) != list(range(self.n_tasks_)):
            missing = [self.tasks_[t] for t in range(self.n_tasks_) if t not in positions]
            raise ValueError(
                "task_order must name every task once (a permutation of tasks_); "
                f"missing or repeated: {[_hashable(task) for task in missing][:5]}."
            )
        return positions

    def _thin_epochs(self):
        """``"adaptive"``: the most epochs of the thin network, half of ``max_epochs``."""
        return max(1, self.max_epochs // 2)

    def _make_callbacks(self):
        callbacks = super()._make_callbacks()
        if self.sharing == "adaptive" and self._thin_epochs() >= 2:
            # the split reads the affinity of the second half of the thin phase
            callbacks.append(("affinity_window", AffinityWindow(self._thin_epochs() // 2)))
        return callbacks

    def _branch(self, net, train, valid):
        """``"adaptive"``'s second phase: branch the trained thin network by its task affinity,
        then train the branched network, with a fresh optimizer, for the remaining epochs."""
        affinity = net.gradient_affinity()
        self._warn_unmeasured_pairs(affinity)
        with torch.no_grad():
            net.module_.split(affinity)
        remaining = self.max_epochs - len(net.history)
        if remaining > 0:
            net.initialize_optimizer()
            net.partial_fit(train, epochs=remaining)

    def _warn_unmeasured_pairs(self, affinity):
        """Warn where the split reads pairs of tasks never measured in one batch (NaN, counted
        as 0 by the clustering): their branches follow no measurement."""
        pairs = np.argwhere(np.triu(np.isnan(affinity), k=1))
        if not len(pairs):
            return
        n_tasks = len(affinity)
        tasks = [_hashable(task) for task in self.tasks_]
        named = ", ".join(f"({tasks[i]!r}, {tasks[j]!r})" for i, j in pairs[:5])
        # a task of a single class (a multiclass problem allows it) has no logit: no gradient
        classes = getattr(self, "classes_", None)
        single = np.array([isinstance(classes, list) and len(classes[t]) < 2
                           for t in range(n_tasks)])
        causes = []
        if np.any(single[pairs]):
            causes.append(f"task(s) {', '.join(repr(tasks[t]) for t in np.flatnonzero(single))} "
                          "have a single class, hence no logit and no gradient to compare")
        if not np.all(np.any(single[pairs], axis=1)):
            if self.task_sampling != "joint" and self.tasks_per_batch == 1:
                causes.append(f"task_sampling={self.task_sampling!r} with tasks_per_batch=1 "
                              "puts one task in each batch; use task_sampling='joint' or "
                              "tasks_per_batch >= 2")
            else:
                causes.append("no batch of the thin phase held labels of both; larger "
                              "batches, more epochs or task_sampling='joint' measure more "
                              "pairs")
        cause = "; ".join(causes)
        warnings.warn(
            f"sharing='adaptive' split its network by the task affinity, but "
            f"{len(pairs)} of {n_tasks * (n_tasks - 1) // 2} pairs of tasks were never measured "
            f"(e.g. {named}): {cause}. The clustering counts an unmeasured pair's affinity as "
            "0, so the branches of those tasks follow no measurement.",
            UserWarning,
            stacklevel=2,
        )

    def _affinity_on(self):
        """``"adaptive"`` groups its tasks by their affinity on the thin network's top layer
        (``AdaptiveModule.last_shared_layer``), whatever ``affinity_on``."""
        return "last_shared_layer" if self.sharing == "adaptive" else self.affinity_on

    def _auxiliary(self, X):
        """The auxiliary-loss arguments of :func:`build_module`, and the loss's weight."""
        hints = self._hint_columns(X)
        if self.auxiliary is None and not hints:
            return {}, 0.0
        params = {"auxiliary": self.auxiliary}
        if hints:
            values = X[:, hints]
            values = values.toarray() if hasattr(values, "toarray") else np.asarray(values)
            values = values.astype(np.float64)
            mean = values.mean(axis=0)
            scale = values.std(axis=0)
            scale[scale == 0] = 1.0
            params.update(hint_columns=hints, hint_mean=mean.tolist(),
                          hint_scale=scale.tolist())
        return params, float(self.auxiliary_weight)

    def _hint_columns(self, X):
        """``hint_columns`` as sorted column positions of X (names need a DataFrame's X)."""
        if self.hint_columns is None:
            return []
        columns = list(np.asarray(self.hint_columns, dtype=object).ravel())
        names = getattr(self, "feature_names_in_", None)
        positions = []
        for column in columns:
            if isinstance(column, str):
                if names is None or column not in list(names):
                    raise ValueError(
                        f"hint_columns names column {column!r}, but X has "
                        + ("no column names (pass a DataFrame, or give positions)."
                           if names is None else f"no such column; it has {list(names)[:10]}.")
                    )
                positions.append(list(names).index(column))
            elif isinstance(column, (Integral, np.integer)) and not isinstance(column, bool):
                if not 0 <= column < X.shape[1]:
                    raise ValueError(
                        f"hint_columns holds column {column}, outside X's {X.shape[1]} columns."
                    )
                positions.append(int(column))
            else:
                raise ValueError(
                    f"hint_columns must hold column positions or names, got {column!r}."
                )
        if len(set(positions)) != len(positions):
            raise ValueError(f"hint_columns names a column twice: {columns}.")
        if len(positions) >= X.shape[1]:
            raise ValueError(
                f"hint_columns takes all {X.shape[1]} columns of X; the network needs at least "
                "one column to read."
            )
        return sorted(positions)

    def _check_task_descriptors(self):
        """``(descriptors of tasks_, labels of the other described tasks, their descriptors)``.

        ``(None, empty, None)`` without descriptors. Raises a ValueError for descriptors with
        another sharing than ``"conditioned"``, a training task without a row, an array whose
        number of rows is not ``n_tasks_``, non-finite values, or an ``embedding_dim`` that is
        not their width.
        """
        descriptors = self.task_descriptors
        none = np.empty(0, dtype=object)
        if descriptors is None:
            return None, none, None
        if self.sharing != "conditioned":
            raise ValueError(
                f"task_descriptors condition the network of sharing='conditioned' only; got "
                f"sharing={self.sharing!r}. Set sharing='conditioned' or task_descriptors=None."
            )
        tasks = [_hashable(task) for task in self.tasks_]
        frame = _is_frame(descriptors)
        try:
            values = np.asarray(descriptors.to_numpy() if frame else descriptors,
                                dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"task_descriptors must hold numbers: {exc}") from None
        if frame:
            labels = [_hashable(label) for label in descriptors.index]
            if len(set(labels)) != len(labels):
                twice = sorted((label for label, n in Counter(labels).items() if n > 1), key=str)
                raise ValueError(
                    f"task_descriptors has several rows for task(s) {twice[:5]}; its index "
                    "must name each task once."
                )
            position = {label: i for i, label in enumerate(labels)}
            missing = [task for task in tasks if task not in position]
            if missing:
                raise ValueError(
                    f"task_descriptors has no row for the training task(s) {missing[:5]}; its "
                    f"index must hold every task seen in fit (it has {labels[:5]})."
                )
            train = [position[task] for task in tasks]
            extra = np.setdiff1d(np.arange(len(labels)), train)
        else:
            labels, train, extra = tasks, np.arange(len(tasks)), np.empty(0, dtype=np.intp)
            if values.ndim != 2 or values.shape[0] != len(tasks):
                raise ValueError(
                    f"task_descriptors must have shape (n_tasks, d) = ({len(tasks)}, d), one "
                    f"row per task in tasks_ order, got shape {values.shape}. To describe "
                    "tasks not seen in fit, pass a DataFrame indexed by task label."
                )
        if values.ndim != 2 or values.shape[1] == 0:
            raise ValueError(
                f"task_descriptors must have at least one column, got shape {values.shape}."
            )
        bad = [labels[i] for i in np.flatnonzero(~np.isfinite(values).all(axis=1))]
        if bad:
            raise ValueError(f"task_descriptors of task(s) {bad[:5]} have non-finite values.")
        if self.embedding_dim is not None and self.embedding_dim != values.shape[1]:
            raise ValueError(
                f"embedding_dim={self.embedding_dim} but task_descriptors have "
                f"{values.shape[1]} columns; with task descriptors, leave embedding_dim=None "
                "(the embedding is the descriptor)."
            )
        extra_labels = np.empty(len(extra), dtype=object)
        extra_labels[:] = [labels[i] for i in extra]
        return values[train], extra_labels, values[extra]

    def _make_weighting(self):
        params = self._flat_weighting_params(self.weighting, _FLAT_WEIGHTING_PARAMS, "weighting")
        return self._resolve_weighting(self.weighting, params)


class _ZeroShotMixin:
    """Predictions for tasks not seen in fit whose descriptor was given (``task_descriptors``).

    Such a task (``zero_shot_tasks_``) is encoded by :meth:`_task_index` after the seen tasks
    (positions ``n_tasks_ + j``). Its prediction follows the rule of the shared prediction
    (``unknown_task="shared"``) with its own descriptor in place of the mean embedding: every
    head reads the network fed its descriptor, and the heads' outputs are averaged, in the
    user's units for regression and as logits for classification.
    """

    def _zero_shot_known(self):
        return len(getattr(self, "zero_shot_tasks_", ())) > 0

    def _task_index(self, task_ids, n_samples):
        if task_ids is None or not self._zero_shot_known() or self._layout == "1d":
            return super()._task_index(task_ids, n_samples)
        tasks = np.empty(self.n_tasks_ + len(self.zero_shot_tasks_), dtype=object)
        tasks[:] = [*self.tasks_, *self.zero_shot_tasks_]
        return encode_task_ids(check_task_ids(task_ids, n_samples), tasks,
                               allow_unknown=self.unknown_task == "shared")

    def _split_known(self, X, index, known_rows, shared_rows):
        zero_shot = index >= self.n_tasks_
        if not zero_shot.any():
            return super()._split_known(X, index, known_rows, shared_rows)
        parts = []
        for j in np.unique(index[zero_shot]):
            rows = index == j
            parts.append((rows, self._predict_zero_shot(X[rows], j - self.n_tasks_)))
        rest = np.flatnonzero(~zero_shot)
        if rest.size:
            parts += [
                (rest[rows], part)
                for rows, part in super()._split_known(X[rest], index[rest], known_rows,
                                                       shared_rows)
            ]
        return parts

    def _forward_zero_shot(self, X, j):
        """Yield ``(rows, outputs)``: every head's padded output (T, B, K_max) on the network
        fed the descriptor of zero-shot task ``j``, batch by batch."""
        module = self.net_.module_
        descriptor = torch.as_tensor(self._zero_shot_descriptors[j], dtype=torch.float32,
                                     device=self.net_.device)
        yield from self._forward_through(X, lambda Xi: module.forward_embedding(Xi, descriptor))

    def _predict_proba_zero_shot(self, X, j):
        n_classes = len(self._shared_classes)
        proba = np.empty((X.shape[0], n_classes))
        for rows, out in self._forward_zero_shot(X, j):
            proba[rows] = _task_proba(out.mean(axis=0), n_classes)
        return proba

    def _predict_zero_shot(self, X, j):
        """Predictions (values, or labels in ``_shared_classes``) of zero-shot task ``j``."""
        if is_classifier(self):
            return self._shared_classes[self._predict_proba_zero_shot(X, j).argmax(axis=1)]
        pred = np.empty(X.shape[0])
        for rows, out in self._forward_zero_shot(X, j):
            pred[rows] = self._decode(out).mean(axis=1)
        return pred


@Substitution(**MULTITASK_DOCS)
class MultiTaskRegressor(
    _ValidationGroupsMixin, _ZeroShotMixin, _DeepRegressionMixin, MultiTaskRegressorMixin,
    _MultiTaskDeepEstimator,
):
    """Deep multi-task regressor: one network, one output per task, a choice of sharing.

    A PyTorch network (built by :func:`skmtl.deep.modules.build_module` with the ``sharing``
    strategy) is trained by a private skorch net on all tasks at once. Each task's targets are
    standardised on its observed labels (``standardize_targets=True``) and predictions are
    mapped back. Missing labels are masked: the loss of task ``t`` on a batch ``B`` is the mean
    over its observed labels ``O_t(B)`` only, and the weighting combines the task losses::

        L_t(B) = 1 / |O_t(B)| * sum_{i in O_t(B)} (f_t(x_i) - z_it)^2
        total(B) = weighting.combine(L(B), observed=|O_t(B)| > 0) + penalty(theta)

    where ``z_it = (y_it - mean_t) / std_t`` and ``penalty`` is the ``"soft"`` sharing penalty
    or the ``"sluice"`` subspace orthogonality penalty (0 otherwise). With
    ``weighting="equal"``, ``total = sum_{t observed} L_t``. A task without a label in the
    batch contributes nothing. Training runs in float32 on ``device``; predictions are
    float64.

    Parameters
    ----------
    {multitask_parameters}
    {standardize_targets}

    Attributes
    ----------
    {fit_attributes}
    {target_attributes}
    {task_attributes}

    See Also
    --------
    MultiTaskClassifier : The classification counterpart.
    skmtl.IndependentTasks : Single-task reference with any scikit-learn estimator.

    Notes
    -----
    Training step. Each batch takes ONE backward pass through the trunk, whatever the
    weighting. The per-task gradients ``g_t = dL_t / dR`` on the shared representation ``R``
    (GradNorm's gradient norms, ``gradient_affinity_``) are taken on ``R``, not on the trunk:
    with linear heads, from the gradients on the outputs and the head weights (a ``T x T`` Gram
    matrix in ``O(T^2 (B + h))``); with hidden head layers, by one extra backward pass through
    the heads only.

    Gradient affinity. ``gradient_affinity_[s, t]`` is the mean, over the batches in which both
    tasks have a label, of ``cos(g_s, g_t)``. It is measured on every batch with linear heads
    and at most 256 tasks, and on the first batch of every epoch with hidden head layers
    (where it costs ``O(T^2 B h)``) or more tasks (its ``T x T`` matrix would cost more than
    the training step). Strategies without a shared representation (``"independent"``,
    ``"soft"``, ``"cross_stitch"``, ``"sluice"``, ``"conditioned"``: each head reads its own
    slot) have no common space to compare in: their off-diagonal entries are NaN.

    Divergence. A network that diverges raises a :class:`FloatingPointError` naming the task
    and the epoch, never a model that predicts NaN: when a task's training loss on a batch, or
    its validation loss, is not finite; when the parameters are not finite at the end of an
    epoch (a last optimizer step that diverged; the heads' tasks are named); and at predict
    time when outputs overflow.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.deep import MultiTaskRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(100, 3))
    >>> Y = np.column_stack([X[:, 0] + X[:, 1], X[:, 0] - X[:, 2]])
    >>> Y[::4, 1] = np.nan  # missing labels
    >>> model = MultiTaskRegressor(hidden_layer_sizes=(16,), max_epochs=5, lr=1e-2,
    ...                            random_state=0).fit(X, Y)
    >>> model.predict(X[:3]).shape, model.predict(X[:3]).dtype
    ((3, 2), dtype('float64'))
    >>> model.n_iter_, model.task_weights_history_.shape
    (5, (5, 2))
    """

    _parameter_constraints = {
        **_MultiTaskDeepEstimator._parameter_constraints,
        **_DeepRegressionMixin._parameter_constraints,
    }

    def __init__(
        self,
        *,
        sharing="hard",
        hidden_layer_sizes=DEFAULTS["hidden_layer_sizes"],
        head_layer_sizes=(),
        activation="relu",
        dropout=DEFAULTS["dropout"],
        soft_penalty=1e-3,
        sluice_orthogonality=0.1,
        conditioning="concat",
        embedding_dim=None,
        task_descriptors=None,
        tensor_rank=None,
        task_depths=None,
        task_order=None,
        max_branches=None,
        relationship_penalty=0.1,
        successive_penalty=1e-2,
        module=None,
        module_params=None,
        auxiliary=None,
        auxiliary_weight=0.1,
        hint_columns=None,
        weighting="equal",
        task_weights=DEPRECATED,
        gradnorm_alpha=DEPRECATED,
        lbtw_alpha=DEPRECATED,
        task_sampling="joint",
        tasks_per_batch=1,
        max_epochs=DEFAULTS["max_epochs"],
        batch_size=DEFAULTS["batch_size"],
        lr=DEFAULTS["lr"],
        weight_decay=DEFAULTS["weight_decay"],
        optimizer=DEFAULTS["optimizer"],
        early_stopping=True,
        validation_fraction=None,
        n_iter_no_change=DEFAULTS["n_iter_no_change"],
        affinity_on="representation",
        unknown_task="error",
        callbacks=None,
        device="cpu",
        accelerator=None,
        random_state=None,
        verbose=0,
        standardize_targets=True,
    ):
        super().__init__(
            sharing=sharing,
            hidden_layer_sizes=hidden_layer_sizes,
            head_layer_sizes=head_layer_sizes,
            activation=activation,
            dropout=dropout,
            soft_penalty=soft_penalty,
            sluice_orthogonality=sluice_orthogonality,
            conditioning=conditioning,
            embedding_dim=embedding_dim,
            task_descriptors=task_descriptors,
            tensor_rank=tensor_rank,
            task_depths=task_depths,
            task_order=task_order,
            max_branches=max_branches,
            relationship_penalty=relationship_penalty,
            successive_penalty=successive_penalty,
            module=module,
            module_params=module_params,
            auxiliary=auxiliary,
            auxiliary_weight=auxiliary_weight,
            hint_columns=hint_columns,
            weighting=weighting,
            task_weights=task_weights,
            gradnorm_alpha=gradnorm_alpha,
            lbtw_alpha=lbtw_alpha,
            task_sampling=task_sampling,
            tasks_per_batch=tasks_per_batch,
            max_epochs=max_epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            optimizer=optimizer,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            affinity_on=affinity_on,
            unknown_task=unknown_task,
            callbacks=callbacks,
            device=device,
            accelerator=accelerator,
            random_state=random_state,
            verbose=verbose,
        )
        self.standardize_targets = standardize_targets


@Substitution(**MULTITASK_DOCS)
class MultiTaskClassifier(
    _ValidationGroupsMixin, _ZeroShotMixin, _DeepClassificationMixin, MultiTaskClassifierMixin,
    _MultiTaskDeepEstimator,
):
    """Deep multi-task classifier: one network, per-task classes, a choice of sharing.

    A PyTorch network (built by :func:`skmtl.deep.modules.build_module` with the ``sharing``
    strategy) is trained by a private skorch net on all tasks at once. Each task has its own
    classes: a binary task has one logit and the binary cross-entropy, a task with ``K_t > 2``
    classes has ``K_t`` logits and the cross-entropy (a task with a single class always predicts
    it). Missing labels are masked: the loss of task ``t`` on a batch ``B`` is the mean over its
    observed labels ``O_t(B)`` only, and the weighting combines the task losses::

        L_t(B) = 1 / |O_t(B)| * sum_{i in O_t(B)} -log p_t(y_it | x_i)
        total(B) = weighting.combine(L(B), observed=|O_t(B)| > 0) + penalty(theta)

    where ``penalty`` is the ``"soft"`` sharing penalty or the ``"sluice"`` subspace
    orthogonality penalty (0 otherwise). With
    ``weighting="equal"``, ``total = sum_{t observed} L_t``. Training runs in float32 on
    ``device``; probabilities are float64.

    Parameters
    ----------
    {multitask_parameters}

    Attributes
    ----------
    {fit_attributes}
    classes_ : ndarray or list of ndarray
        The classes of a 1-D y, else one array of classes per task.
    {task_attributes}

    See Also
    --------
    MultiTaskRegressor : The regression counterpart (its Notes describe the training step).
    skmtl.IndependentTasks : Single-task reference with any scikit-learn estimator.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.deep import MultiTaskClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(120, 3))
    >>> Y = np.empty((120, 2), dtype=object)
    >>> Y[:, 0] = np.where(X[:, 0] > 0, "yes", "no")
    >>> Y[:, 1] = np.array(["low", "mid", "high"])[np.digitize(X[:, 1], [-0.5, 0.5])]
    >>> Y[::5, 1] = None  # missing labels
    >>> model = MultiTaskClassifier(hidden_layer_sizes=(16,), max_epochs=5, lr=1e-2,
    ...                             random_state=0).fit(X, Y)
    >>> [c.tolist() for c in model.classes_]
    [['no', 'yes'], ['high', 'low', 'mid']]
    >>> [p.shape for p in model.predict_proba(X[:4])]
    [(4, 2), (4, 3)]
    >>> model.predict(X[:4]).shape
    (4, 2)
    """

    def predict_proba(self, X, *, task_ids=None):
        """Class probabilities of every task, or of each row's own task.

        As :meth:`skmtl.base.MultiTaskMixin.predict_proba`; in addition, rows of a task of
        ``zero_shot_tasks_`` (described by ``task_descriptors`` but not seen in fit) get the
        probabilities of the mean of the heads' logits on the network fed its descriptor,
        in ``classes_[0]`` order (every task must have the same classes).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.
        task_ids : array-like of shape (n_samples,), default=None
            The task of each row.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes) or list of ndarray
            ``(n_samples, n_classes)`` when fitted on a 1-D y or when ``task_ids`` is given;
            otherwise a list with one ``(n_samples, n_classes_t)`` array per task.
        """
        check_is_fitted(self)
        if task_ids is None or not self._zero_shot_known() or self._layout == "1d":
            return super().predict_proba(X, task_ids=task_ids)
        index = self._task_index(task_ids, np.shape(task_ids)[0])
        if not (index >= self.n_tasks_).any():
            return super().predict_proba(X, task_ids=task_ids)
        X = self._validate_X(X, reset=False)
        index = self._task_index(task_ids, X.shape[0])
        out = np.empty((X.shape[0], len(self._shared_classes)))
        zero_shot = index >= self.n_tasks_
        for j in np.unique(index[zero_shot]):
            rows = index == j
            out[rows] = self._predict_proba_zero_shot(X[rows], j - self.n_tasks_)
        unknown = index < 0
        if unknown.any():
            out[unknown] = self._predict_proba_shared(X[unknown])
        seen = np.flatnonzero((index >= 0) & ~zero_shot)
        if seen.size:
            out[seen] = self._predict_proba_tasks(X[seen], index[seen])
        return out
