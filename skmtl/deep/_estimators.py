"""Deep multi-task estimators: scikit-learn estimators that build and own a skorch net.

:class:`MultiTaskRegressor` and :class:`MultiTaskClassifier` serve every task; their parameters
beyond the network and its training (which :class:`~skmtl.deep._base._BaseDeepEstimator` owns) are
the sharing strategy, the loss weighting, the task sampling and what an unseen task gets.
"""

from skmtl.base import MultiTaskClassifierMixin, MultiTaskRegressorMixin
from skmtl.deep._base import (
    DEFAULTS,
    DEPRECATED,
    _BaseDeepEstimator,
    _DeepClassificationMixin,
    _DeepRegressionMixin,
    _deprecated,
    _weights_history,
)
from skmtl.deep._docstrings import MULTITASK_DOCS
from skmtl.deep.modules import CONDITIONING, SHARING
from skmtl.deep.weighting import WEIGHTINGS, Weighting
from skmtl.utils._docstring import Substitution
from skmtl.utils._sklearn_compat import Integral, Interval, Real, StrOptions

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
        "conditioning": [StrOptions(set(CONDITIONING))],
        "embedding_dim": [None, Interval(Integral, 1, None, closed="left")],
        "weighting": [StrOptions(set(WEIGHTINGS)), Weighting],
        "task_weights": _deprecated(None, "array-like"),
        "gradnorm_alpha": _deprecated(Interval(Real, 0, None, closed="left")),
        "lbtw_alpha": _deprecated(Interval(Real, 0, None, closed="left")),
        "task_sampling": [StrOptions(set(TASK_SAMPLING))],
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
        conditioning="concat",
        embedding_dim=None,
        module=None,
        module_params=None,
        weighting="equal",
        task_weights=DEPRECATED,
        gradnorm_alpha=DEPRECATED,
        lbtw_alpha=DEPRECATED,
        task_sampling="joint",
        max_epochs=DEFAULTS["max_epochs"],
        batch_size=DEFAULTS["batch_size"],
        lr=DEFAULTS["lr"],
        weight_decay=DEFAULTS["weight_decay"],
        optimizer=DEFAULTS["optimizer"],
        early_stopping=True,
        validation_fraction=None,
        n_iter_no_change=DEFAULTS["n_iter_no_change"],
        unknown_task="error",
        callbacks=None,
        device="cpu",
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
            callbacks=callbacks,
            device=device,
            random_state=random_state,
            verbose=verbose,
        )
        self.sharing = sharing
        self.soft_penalty = soft_penalty
        self.conditioning = conditioning
        self.embedding_dim = embedding_dim
        self.weighting = weighting
        self.task_weights = task_weights
        self.gradnorm_alpha = gradnorm_alpha
        self.lbtw_alpha = lbtw_alpha
        self.task_sampling = task_sampling
        self.unknown_task = unknown_task

    def _fit_multitask(self, X, Y, mask):
        kinds, output_sizes, targets = self._encode_targets(Y, mask)
        net = self._train_net(
            X, targets, mask, kinds, output_sizes, tasks=self.tasks_,
            weighting=self._make_weighting(), task_sampling=self.task_sampling,
        )
        self.net_ = net
        self.n_iter_, self.task_weights_history_ = _weights_history(net, len(output_sizes))
        self.gradient_affinity_ = net.gradient_affinity()
        return self

    def _sharing(self):
        """The sharing strategy and its own parameters, for :func:`build_module`."""
        return self.sharing, {
            "soft_penalty": self.soft_penalty,
            "conditioning": self.conditioning,
            "embedding_dim": self.embedding_dim,
        }

    def _make_weighting(self):
        params = self._flat_weighting_params(self.weighting, _FLAT_WEIGHTING_PARAMS, "weighting")
        return self._resolve_weighting(self.weighting, params)


@Substitution(**MULTITASK_DOCS)
class MultiTaskRegressor(MultiTaskRegressorMixin, _DeepRegressionMixin, _MultiTaskDeepEstimator):
    """Deep multi-task regressor: one network, one output per task, a choice of sharing.

    A PyTorch network (built by :func:`skmtl.deep.modules.build_module` with the ``sharing``
    strategy) is trained by a private skorch net on all tasks at once. Each task's targets are
    standardised on its observed labels (``standardize_targets=True``) and predictions are
    mapped back. Missing labels are masked: the loss of task ``t`` on a batch ``B`` is the mean
    over its observed labels ``O_t(B)`` only, and the weighting combines the task losses::

        L_t(B) = 1 / |O_t(B)| * sum_{i in O_t(B)} (f_t(x_i) - z_it)^2
        total(B) = weighting.combine(L(B), observed=|O_t(B)| > 0) + penalty(theta)

    where ``z_it = (y_it - mean_t) / std_t`` and ``penalty`` is the ``"soft"`` sharing penalty
    (0 otherwise). With ``weighting="equal"``, ``total = sum_{t observed} L_t``. A task without a
    label in the batch contributes nothing. Training runs in float32 on ``device``;
    predictions are float64.

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
        conditioning="concat",
        embedding_dim=None,
        module=None,
        module_params=None,
        weighting="equal",
        task_weights=DEPRECATED,
        gradnorm_alpha=DEPRECATED,
        lbtw_alpha=DEPRECATED,
        task_sampling="joint",
        max_epochs=DEFAULTS["max_epochs"],
        batch_size=DEFAULTS["batch_size"],
        lr=DEFAULTS["lr"],
        weight_decay=DEFAULTS["weight_decay"],
        optimizer=DEFAULTS["optimizer"],
        early_stopping=True,
        validation_fraction=None,
        n_iter_no_change=DEFAULTS["n_iter_no_change"],
        unknown_task="error",
        callbacks=None,
        device="cpu",
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
            conditioning=conditioning,
            embedding_dim=embedding_dim,
            module=module,
            module_params=module_params,
            weighting=weighting,
            task_weights=task_weights,
            gradnorm_alpha=gradnorm_alpha,
            lbtw_alpha=lbtw_alpha,
            task_sampling=task_sampling,
            max_epochs=max_epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            optimizer=optimizer,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            unknown_task=unknown_task,
            callbacks=callbacks,
            device=device,
            random_state=random_state,
            verbose=verbose,
        )
        self.standardize_targets = standardize_targets


@Substitution(**MULTITASK_DOCS)
class MultiTaskClassifier(
    MultiTaskClassifierMixin, _DeepClassificationMixin, _MultiTaskDeepEstimator
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

    where ``penalty`` is the ``"soft"`` sharing penalty (0 otherwise). With
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
