"""Focused-task deep estimators: trained on every task, judged on one.

:class:`FocusedTaskRegressor` and :class:`FocusedTaskClassifier` reuse the training machinery of
the deep multi-task estimators (hard sharing, the private skorch net, the weightings) and differ
in what they are for: one *focus* task, with the other tasks as auxiliaries that may help it.
``strategy`` picks how the auxiliary tasks are used: a weighting of the task losses
(``"rmtl"``, reinforced multi-task learning, is :class:`~skmtl.deep.weighting.RMTLWeighting`,
which reads every batch the Gram matrix of the per-task gradients the net already computes on the
shared representation), or, for ``"finetune"``, a second training phase of the net on the focus
task (:meth:`~skmtl.deep._net.MultiTaskNet.fine_tune`). The estimators are siblings of the
multi-task ones over :class:`~skmtl.deep._base._BaseDeepEstimator`.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils import metadata_routing
from sklearn.utils.validation import check_is_fitted

from skmtl.base import MultiTaskClassifierMixin, MultiTaskRegressorMixin
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
from skmtl.deep._docstrings import FOCUSED_DOCS
from skmtl.deep.weighting import RMTLWeighting, Weighting, default_policies, get_weighting
from skmtl.metrics import accuracy_score, r2_score
from skmtl.utils._docstring import Substitution
from skmtl.utils._sklearn_compat import Interval, StrOptions
from skmtl.utils.validation import (
    UnknownTaskError,
    _format_tasks,
    _hashable,
    _is_frame,
    check_task_ids,
    encode_task_ids,
)

__all__ = ["FocusedTaskClassifier", "FocusedTaskRegressor"]

STRATEGIES = ("single_task", "multi_task", "gradnorm", "lbtw", "finetune", "rmtl")

# The weighting of the strategies that train every task with one of the named weightings.
_STRATEGY_WEIGHTING = {
    "multi_task": "equal",
    "finetune": "equal",  # the pre-training phase
    "gradnorm": "gradnorm",
    "lbtw": "lbtw",
}

# Deprecated flat parameters: (weighting name, parameter of that weighting, its class).
_FLAT_WEIGHTING_PARAMS = {
    "gradnorm_alpha": ("gradnorm", "alpha", "GradNormWeighting"),
    "lbtw_alpha": ("lbtw", "alpha", "LBTWWeighting"),
}


# --------------------------------------------------------------------------------------------
# Resolution of focus_task and policies against the tasks seen in fit
# --------------------------------------------------------------------------------------------


def _is_int(value):
    return isinstance(value, (Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def _resolve_focus(focus_task, tasks):
    """Position in ``tasks`` of the focus task: a label first, else (see below) a position.

    An integer that is not a label is a position only when no task label is an integer, so
    that an integer task id (a school number, say) is never mistaken for a position.
    """
    n_tasks = len(tasks)
    if focus_task is None:
        if n_tasks == 1:
            return 0
        raise ValueError(
            f"focus_task=None, but the target has {n_tasks} tasks ({_format_tasks(tasks)}); "
            "set focus_task to one of them."
        )
    try:
        lookup = {_hashable(task): t for t, task in enumerate(tasks)}
        found = lookup.get(_hashable(focus_task))
    except TypeError:  # unhashable
        found = None
    if found is not None:
        return found
    integer_labels = any(_is_int(task) for task in tasks)
    if _is_int(focus_task) and not integer_labels and 0 <= focus_task < n_tasks:
        return int(focus_task)
    if _is_int(focus_task) and integer_labels:
        why = "task labels are integers, so an integer focus_task is a label, not a position"
    else:
        why = f"nor a position 0..{n_tasks - 1}" if _is_int(focus_task) else "not a task label"
    raise UnknownTaskError(
        f"focus_task={focus_task!r} is not a task seen in fit ({why}). "
        f"Known tasks: {_format_tasks(tasks)}."
    )


def _policy_matrix(policies, tasks, focus):
    """The candidate policies as a ``(n_policies, n_aux)`` array (auxiliary tasks in order)."""
    aux = [t for t in range(len(tasks)) if t != focus]
    n_aux = len(aux)
    if policies is None:
        return default_policies(n_aux)
    if len(policies) == 0:
        raise ValueError("policies is an empty list; pass None for the default policies.")
    position = {_hashable(tasks[t]): a for a, t in enumerate(aux)}
    matrix = np.zeros((len(policies), n_aux))
    for i, policy in enumerate(policies):
        if isinstance(policy, dict):
            for task, weight in policy.items():
                key = _hashable(task)
                if key not in position:
                    what = "the focus task" if key == _hashable(tasks[focus]) else "not a task"
                    raise ValueError(
                        f"policies[{i}] weights task {task!r}, which is {what}; a policy "
                        f"weights auxiliary tasks only: {_format_tasks(tasks[aux])}."
                    )
                matrix[i, position[key]] = _policy_weight(weight, i)
        else:
            row = np.asarray(policy)
            if row.shape != (n_aux,):
                raise ValueError(
                    f"policies[{i}] has shape {row.shape}; an array policy holds one weight per "
                    f"auxiliary task, in aux_tasks_ order: shape ({n_aux},)."
                )
            matrix[i] = [_policy_weight(weight, i) for weight in row]
        if not matrix[i].any():
            raise ValueError(f"policies[{i}] has no positive weight.")
    return matrix


def _policy_weight(weight, i):
    try:
        value = float(weight)
    except (TypeError, ValueError):
        value = np.nan
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"policies[{i}] has weight {weight!r}; weights must be finite and >= 0.")
    return value


# --------------------------------------------------------------------------------------------
# The estimators
# --------------------------------------------------------------------------------------------


class _FocusedTaskMixin:
    """Predictions and score of the focus task only (left of the MultiTask*Mixin)."""

    # predict speaks of the focus task only: it takes no task_ids
    __metadata_request__predict = {"task_ids": metadata_routing.UNUSED}
    __metadata_request__predict_proba = {"task_ids": metadata_routing.UNUSED}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = False  # fits on many tasks, predicts one
        if tags.classifier_tags is not None:
            tags.classifier_tags.multi_label = False
        return tags

    def predict(self, X):
        """Predict the focus task.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            The focus task's predictions: float64 values (regressor) or labels from
            ``classes_`` (classifier).
        """
        check_is_fitted(self)
        return self._predict_focus(self._validate_X(X, reset=False))

    def score(self, X, y, *, task_ids=None, sample_weight=None):
        """R^2 (regressor) or accuracy (classifier) on the focus task's observed labels.

        :func:`~skmtl.metrics.make_multitask_scorer` scores the focus task on the same labels,
        with any of its metrics.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Test samples.
        y : array-like of shape (n_samples,) or (n_samples, n_tasks)
            A wide ``Y`` (its focus column is used; a DataFrame's column named like the focus
            task), long-format labels with ``task_ids`` (the focus task's rows are used; the
            other rows may name any task, seen in fit or not; none of the focus task is a
            ValueError), or
            the focus task's labels (1-D, without ``task_ids``, when the estimator was fitted
            on a 1-D or 2-D target; NaN / None marks a missing label after a 2-D one).
        task_ids : array-like of shape (n_samples,), default=None
            The task of each row, for long-format ``y``. Required when the estimator was
            fitted on long data and ``y`` is 1-D (a ValueError says so).
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights.

        Returns
        -------
        score : float
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        y_focus, rows = self._focus_target(y, task_ids, X.shape[0])
        if rows is not None:
            X = X[rows]
            if sample_weight is not None:
                sample_weight = np.asarray(sample_weight)[rows]
        metric = accuracy_score if is_classifier(self) else r2_score
        pred = self._predict_focus(X)
        if np.ndim(y_focus) == 2:
            pred = pred[:, None]
        return metric(y_focus, pred, sample_weight=sample_weight)

    def _focus_target(self, y, task_ids, n_samples):
        """The focus task's labels in ``y`` as a masked metric's ``y_true``, and the rows of X
        they belong to (None: all rows).

        ``y`` and ``task_ids`` are those of :meth:`score`. The target is 1-D after a 1-D fit,
        else one column ``(n, 1)``, whose missing labels the masked metrics leave out.
        :meth:`score` and :func:`~skmtl.metrics.make_multitask_scorer` score the focus task
        on it.
        """
        check_is_fitted(self)
        self._check_score_target(y, task_ids)
        y_focus, rows = self._focus_labels(y, task_ids, n_samples)
        return (y_focus if self._layout == "1d" else y_focus[:, None]), rows

    def _focus_labels(self, y, task_ids, n_samples):
        """The focus task's labels in ``y``, and the rows of X they belong to (None: all)."""
        if self._layout == "1d":
            self._task_index(task_ids, n_samples)  # raises if task_ids is given
            return y, None
        focus = self.tasks_[self.focus_index_]
        if task_ids is not None:
            # only the focus task's rows are scored: the others may name any task, seen or not
            task_ids = check_task_ids(task_ids, n_samples)
            y = np.asarray(y, dtype=object if is_classifier(self) else None)
            if y.ndim != 1:
                raise ValueError(
                    f"With task_ids, y must be 1-D (long format); got shape {y.shape}."
                )
            index = encode_task_ids(task_ids, self.tasks_, allow_unknown=True)
            rows = np.flatnonzero(index == self.focus_index_)
            if not len(rows):
                present = list(dict.fromkeys(_hashable(t) for t in task_ids))
                raise ValueError(
                    f"task_ids has no row of the focus task {_hashable(focus)!r}, the only "
                    f"task {type(self).__name__} is scored on; its tasks: "
                    f"{_format_tasks(present)}."
                )
            return y[rows], rows
        if _is_frame(y):
            if focus not in y.columns:
                raise ValueError(
                    f"y has no column for the focus task {focus!r}; columns: "
                    f"{_format_tasks(list(y.columns))}."
                )
            return y[focus].to_numpy(), None
        y = np.asarray(y)
        if y.ndim == 2:
            if y.shape[1] != self.n_tasks_:
                raise ValueError(
                    f"y has {y.shape[1]} columns but the estimator was fitted on "
                    f"{self.n_tasks_} tasks; pass the wide Y or the focus task's labels (1-D)."
                )
            return y[:, self.focus_index_], None
        return y, None


class _FocusedDeepEstimator(_BaseDeepEstimator):
    """Parameters and fit of the focused-task estimators (hard sharing, one focus task)."""

    _parameter_constraints = {
        **_BaseDeepEstimator._parameter_constraints,
        "focus_task": "no_validation",
        "strategy": [StrOptions(set(STRATEGIES)), Weighting],
        "gradnorm_alpha": _deprecated(Interval(Real, 0, None, closed="left")),
        "lbtw_alpha": _deprecated(Interval(Real, 0, None, closed="left")),
        "finetune_epochs": [None, Interval(Integral, 0, None, closed="left")],
        "finetune_pretrain": [StrOptions({"auxiliary", "all"})],
        "freeze_trunk": ["boolean"],
        "rmtl_reward": [StrOptions({"per_task", "policy"})],
        "rmtl_gradient_on": [
            None, StrOptions({"head_weights", "last_shared_layer", "representation"})
        ],
        "policies": [None, list],
    }

    def __init__(
        self,
        *,
        focus_task=None,
        strategy="rmtl",
        hidden_layer_sizes=DEFAULTS["hidden_layer_sizes"],
        head_layer_sizes=(),
        activation="relu",
        dropout=DEFAULTS["dropout"],
        module=None,
        module_params=None,
        gradnorm_alpha=DEPRECATED,
        lbtw_alpha=DEPRECATED,
        finetune_epochs=None,
        finetune_pretrain="auxiliary",
        freeze_trunk=False,
        rmtl_reward="policy",
        rmtl_gradient_on=None,
        policies=None,
        max_epochs=DEFAULTS["max_epochs"],
        batch_size=DEFAULTS["batch_size"],
        lr=DEFAULTS["lr"],
        weight_decay=DEFAULTS["weight_decay"],
        optimizer=DEFAULTS["optimizer"],
        early_stopping=True,
        validation_fraction=None,
        n_iter_no_change=DEFAULTS["n_iter_no_change"],
        affinity_on="representation",
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
        self.focus_task = focus_task
        self.strategy = strategy
        self.gradnorm_alpha = gradnorm_alpha
        self.lbtw_alpha = lbtw_alpha
        self.finetune_epochs = finetune_epochs
        self.finetune_pretrain = finetune_pretrain
        self.freeze_trunk = freeze_trunk
        self.rmtl_reward = rmtl_reward
        self.rmtl_gradient_on = rmtl_gradient_on
        self.policies = policies

    # -- fit ------------------------------------------------------------------------------------
    def _fit_labels(self, X, labels):
        tasks, n_tasks = self.tasks_, self.n_tasks_
        focus = self.focus_index_ = _resolve_focus(self.focus_task, tasks)
        aux = np.array([t for t in range(n_tasks) if t != focus], dtype=np.intp)
        self.aux_tasks_ = tasks[aux]
        named = isinstance(self.strategy, str)
        single = (named and self.strategy == "single_task") or n_tasks == 1
        rmtl = named and self.strategy == "rmtl" and not single
        if rmtl and self.rmtl_reward == "per_task" and self.policies is not None:
            raise ValueError(
                "policies are the candidate policies of rmtl_reward='policy'; with "
                "rmtl_reward='per_task' every auxiliary task has its own reward. Set "
                "rmtl_reward='policy' or policies=None."
            )
        policy = rmtl and self.rmtl_reward == "policy"
        self.policies_ = _policy_matrix(self.policies, tasks, focus) if policy else None
        if is_classifier(self):
            self._set_task_classes()
        kinds, output_sizes, labels = self._encode_targets(labels)
        weighting = self._make_weighting(focus)
        if single:  # the focus task's labelled rows, one head
            only = np.zeros(n_tasks, dtype=bool)
            only[focus] = True
            rows = labels.keep_tasks(only).labelled(np.arange(X.shape[0]))
            if rows.shape[0] < X.shape[0]:
                X = X[rows]
            net = self._train_net(
                X, labels.take(rows, [focus]), [kinds[focus]], [output_sizes[focus]],
                tasks=tasks[[focus]], weighting=get_weighting("equal"),
                groups=None if self._groups is None else self._groups[rows],
            )
            self._head = 0
            n_iter, focus_weights = _weights_history(net, 1)
            weights = np.zeros((n_iter, n_tasks))
            weights[:, focus] = focus_weights[:, 0]
        else:
            finetune = first_tasks = watched = None
            if named and self.strategy == "finetune":
                # then the focus task alone: a second phase of the net
                fresh = self.finetune_pretrain == "auxiliary"
                if fresh:  # pre-training on the auxiliary tasks only
                    first_tasks = aux
                epochs = self.finetune_epochs
                if epochs is None:
                    epochs = self.max_epochs if fresh else 10
                if fresh and epochs == 0:
                    raise ValueError(
                        "finetune_epochs=0 with finetune_pretrain='auxiliary' never trains the "
                        "focus task: its labels are hidden while the auxiliary tasks pre-train, "
                        "and its head is drawn afresh for the focus phase. Give the focus "
                        "phase epochs (None: max_epochs), or pre-train on every task with "
                        "finetune_pretrain='all'."
                    )

                only = np.zeros(n_tasks, dtype=bool)
                only[focus] = True  # its early stopping watches the focus task alone
                watched = (only, f"the focus task {_hashable(tasks[focus])!r}")

                def finetune(net, train, valid):
                    net.fine_tune(
                        train, valid, tasks=[focus], epochs=epochs,
                        freeze_shared=self.freeze_trunk, reinitialize=fresh,
                    )
            net = self._train_net(
                X, labels, kinds, output_sizes, tasks=tasks,
                weighting=weighting, after_fit=finetune, first_tasks=first_tasks,
                groups=self._groups, watched=watched,
            )
            self._head = focus
            n_iter, weights = _weights_history(net, n_tasks)
        self._affinity_of_net = not single  # one head: no pair of tasks was ever compared
        self.net_ = net
        self.n_iter_ = n_iter
        self.task_weights_history_ = weights
        self.aux_weights_history_ = weights[:, aux]
        return self

    def _sharing(self):
        return "hard", {}

    def _make_weighting(self, focus):
        """The weighting that trains every task (the first phase of ``"finetune"``).

        Called by every fit, so that a deprecated flat parameter always warns.
        """
        strategy = self.strategy
        name = _STRATEGY_WEIGHTING.get(strategy) if isinstance(strategy, str) else strategy
        params = self._flat_weighting_params(name, _FLAT_WEIGHTING_PARAMS, "strategy")
        if isinstance(strategy, str) and strategy == "rmtl":
            weighting = RMTLWeighting(
                focus, reward=self.rmtl_reward, policies=self.policies_,
                gradient_on=self.rmtl_gradient_on,
            )
            return self._resolve_weighting(weighting, {})
        if isinstance(strategy, str) and strategy == "finetune":
            if self.finetune_pretrain == "auxiliary":  # the focus task waits for its phase
                weights = np.ones(self.n_tasks_)
                weights[focus] = 0.0
                return self._resolve_weighting("fixed", {"task_weights": weights})
        return self._resolve_weighting(name or "equal", params)

    def _focus_outputs(self, X):
        """Yield ``(rows, out)``: the focus head's output ``(B, K)`` for each batch."""
        for rows, out in self._forward(X):
            yield rows, out[self._head]


@Substitution(**FOCUSED_DOCS)
class FocusedTaskRegressor(
    _ValidationGroupsMixin, _FocusedTaskMixin, _DeepRegressionMixin, MultiTaskRegressorMixin,
    _FocusedDeepEstimator,
):
    """Deep regressor for one focus task, trained with auxiliary tasks.

    A hard-sharing network (a trunk, then one head per task) is trained on every task of a
    wide or long target, as :class:`MultiTaskRegressor` with ``sharing="hard"`` would be, but
    the estimator serves one task, ``focus_task``: :meth:`predict` returns its predictions
    ``(n_samples,)`` and :meth:`score` its R^2. The other tasks are *auxiliary*: ``strategy``
    decides how they are used. With ``L_t`` task ``t``'s mean squared error on its observed
    labels in a batch (on standardised targets), ``f`` the focus task and ``A`` the auxiliary
    tasks observed in the batch, the training loss is:

    - ``"single_task"``: ``L_f``, on the rows where the focus task is labelled, with one head
      (the deep single-task reference; equal to :class:`MultiTaskRegressor` fitted on those
      rows of the focus task alone, with the same parameters and ``random_state``);
    - ``"multi_task"``: ``L_f + sum_{a in A} L_a`` (equal weights);
    - ``"gradnorm"`` / ``"lbtw"``: the task weights of GradNorm or loss-balanced weighting
      with their default parameters (``strategy=GradNormWeighting(alpha=...)`` or
      ``LBTWWeighting(alpha=...)`` sets them; any other
      :class:`~skmtl.deep.weighting.Weighting` instance works too), see
      :mod:`skmtl.deep.weighting`;
    - ``"finetune"``: with ``finetune_pretrain="auxiliary"`` (the authors' protocol),
      ``sum_{a in A} L_a`` for up to ``max_epochs`` epochs (the focus labels hidden), then a
      fresh focus head and a new optimizer train ``L_f`` alone for ``finetune_epochs``
      (default ``max_epochs``) on the focus task's labelled rows; with ``"all"``,
      ``L_f + sum_{a in A} L_a`` then ``L_f`` alone for ``finetune_epochs`` (default 10)
      with the same heads and optimizer. The trunk is frozen in the second phase if
      ``freeze_trunk``;
    - ``"rmtl"`` (reinforced multi-task learning): ``L_f + sum_{a in A} w_a L_a`` with
      weights read each batch from the per-task gradients ``g_t`` of the unweighted losses.
      ``rmtl_reward="per_task"`` (the authors' code): ``w_a = max(cos(g_a, g_f), 0)`` for every
      auxiliary task at once, with ``g_t`` the gradient on task ``t``'s output-layer weight.
      ``rmtl_reward="policy"`` (Algorithm 3 of the paper): with ``g_t`` on the weight of the
      last shared layer, for every candidate policy ``pi`` (a weighting of the auxiliary
      tasks, ``policies``)::

          g_pi    = sum_a pi_a g_a
          r(pi)   = max(cos(g_pi, g_f), 0)
          pi*     = argmax_pi r(pi)   (the first candidate if tied)
          w_a     = r(pi*) pi*_a

      ``rmtl_gradient_on`` moves either reward to another space. No reward costs a backward
      pass per task (:mod:`skmtl.deep._task_gradients`). A batch without a focus label keeps
      the weights of the last batch that had one (0 for the auxiliary tasks before the first
      such batch). This is :class:`~skmtl.deep.weighting.RMTLWeighting`, which a
      :class:`MultiTaskRegressor` can use too.

    With a single task (1-D ``y``, or a one-column ``Y``) there is nothing auxiliary: every
    strategy is single-task learning on it for ``max_epochs`` (``finetune_epochs`` unused),
    and the estimator behaves like a scikit-learn regressor.

    Parameters
    ----------
    {focused_parameters}
    {standardize_targets}

    Attributes
    ----------
    {fit_attributes}
    {target_attributes}
    {task_attributes}

    See Also
    --------
    FocusedTaskClassifier : The classification counterpart.
    MultiTaskRegressor : Serves every task; more sharing strategies and weightings.

    References
    ----------
    S. Liu, Y. Liang and A. Gitter. "Loss-balanced task weighting to reduce negative transfer in
    multi-task learning". AAAI 2019 (student abstract); ``strategy="lbtw"``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.deep import FocusedTaskRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(100, 3))
    >>> Y = np.column_stack([X[:, 0] + X[:, 1], X[:, 0] + 0.9 * X[:, 1], -X[:, 2]])
    >>> model = FocusedTaskRegressor(focus_task=0, strategy="rmtl", hidden_layer_sizes=(16,),
    ...                              max_epochs=5, lr=1e-2, random_state=0).fit(X, Y)
    >>> model.predict(X[:4]).shape
    (4,)
    >>> model.aux_tasks_, model.aux_weights_history_.shape
    (array([1, 2]), (5, 2))
    >>> model.policies_  # each auxiliary task alone, then both together
    array([[1., 0.],
           [0., 1.],
           [1., 1.]])
    """

    _parameter_constraints = {
        **_FocusedDeepEstimator._parameter_constraints,
        **_DeepRegressionMixin._parameter_constraints,
    }

    def __init__(
        self,
        *,
        focus_task=None,
        strategy="rmtl",
        hidden_layer_sizes=DEFAULTS["hidden_layer_sizes"],
        head_layer_sizes=(),
        activation="relu",
        dropout=DEFAULTS["dropout"],
        module=None,
        module_params=None,
        gradnorm_alpha=DEPRECATED,
        lbtw_alpha=DEPRECATED,
        finetune_epochs=None,
        finetune_pretrain="auxiliary",
        freeze_trunk=False,
        rmtl_reward="policy",
        rmtl_gradient_on=None,
        policies=None,
        max_epochs=DEFAULTS["max_epochs"],
        batch_size=DEFAULTS["batch_size"],
        lr=DEFAULTS["lr"],
        weight_decay=DEFAULTS["weight_decay"],
        optimizer=DEFAULTS["optimizer"],
        early_stopping=True,
        validation_fraction=None,
        n_iter_no_change=DEFAULTS["n_iter_no_change"],
        affinity_on="representation",
        callbacks=None,
        device="cpu",
        accelerator=None,
        random_state=None,
        verbose=0,
        standardize_targets=True,
    ):
        super().__init__(
            focus_task=focus_task,
            strategy=strategy,
            hidden_layer_sizes=hidden_layer_sizes,
            head_layer_sizes=head_layer_sizes,
            activation=activation,
            dropout=dropout,
            module=module,
            module_params=module_params,
            gradnorm_alpha=gradnorm_alpha,
            lbtw_alpha=lbtw_alpha,
            finetune_epochs=finetune_epochs,
            finetune_pretrain=finetune_pretrain,
            freeze_trunk=freeze_trunk,
            rmtl_reward=rmtl_reward,
            rmtl_gradient_on=rmtl_gradient_on,
            policies=policies,
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
        self.standardize_targets = standardize_targets

    def _predict_focus(self, X):
        focus = [self.focus_index_]
        pred = np.empty(X.shape[0])
        for rows, out in self._focus_outputs(X):
            pred[rows] = self._decode(out[None], focus)[:, 0]
        return pred


@Substitution(**FOCUSED_DOCS)
class FocusedTaskClassifier(
    _ValidationGroupsMixin, _FocusedTaskMixin, _DeepClassificationMixin, MultiTaskClassifierMixin,
    _FocusedDeepEstimator,
):
    """Deep classifier for one focus task, trained with auxiliary tasks.

    The classification counterpart of :class:`FocusedTaskRegressor` (whose docstring
    describes the strategies): a hard-sharing network trained on every task of a wide or long
    target, each task with its own classes and loss (binary or multi-class cross-entropy on
    its observed labels), serving the focus task only. :meth:`predict` returns the focus
    task's labels ``(n_samples,)``, :meth:`predict_proba` its class probabilities
    ``(n_samples, n_classes)`` with columns in ``classes_`` order, and :meth:`score` its
    accuracy on its observed labels. With a single task (1-D ``y``) it is a plain
    single-task classifier.

    Parameters
    ----------
    {focused_parameters}

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The focus task's classes (the columns of :meth:`predict_proba`).
    task_classes_ : list of ndarray
        The classes of every task, in ``tasks_`` order.
    {fit_attributes}
    {task_attributes}

    See Also
    --------
    FocusedTaskRegressor : The regression counterpart; its docstring has the training loss.
    MultiTaskClassifier : Serves every task; more sharing strategies and weightings.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.deep import FocusedTaskClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(120, 3))
    >>> Y = np.empty((120, 3), dtype=object)
    >>> Y[:, 0] = np.where(X[:, 0] > 0, "yes", "no")
    >>> Y[:, 1] = np.where(X[:, 0] + 0.1 * X[:, 1] > 0, "up", "down")
    >>> Y[:, 2] = np.array(["low", "mid", "high"])[np.digitize(X[:, 2], [-0.5, 0.5])]
    >>> Y[::3, 0] = None  # the focus task is missing a third of its labels
    >>> model = FocusedTaskClassifier(focus_task=0, strategy="finetune", finetune_epochs=2,
    ...                               hidden_layer_sizes=(16,), max_epochs=3, lr=1e-2,
    ...                               random_state=0).fit(X, Y)
    >>> model.classes_.tolist(), model.predict_proba(X[:4]).shape
    (['no', 'yes'], (4, 2))
    >>> model.n_iter_, model.aux_weights_history_[:, 0].tolist()
    (5, [1.0, 1.0, 1.0, 0.0, 0.0])
    """

    def _set_task_classes(self):
        """Keep every task's classes; ``classes_`` becomes the focus task's."""
        if self._layout == "1d":
            self.task_classes_ = [self.classes_]
        elif isinstance(self.classes_, list):  # set by fit; a refit through the hook keeps them
            self.task_classes_ = self.classes_
        self.classes_ = self.task_classes_[self.focus_index_]

    @property
    def _task_classes(self):
        return self.task_classes_

    def predict_proba(self, X):
        """Class probabilities of the focus task.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns in ``classes_`` order; float64.
        """
        check_is_fitted(self)
        return self._predict_focus_proba(self._validate_X(X, reset=False))

    def _predict_focus_proba(self, X):
        proba = np.empty((X.shape[0], len(self.classes_)))
        for rows, out in self._focus_outputs(X):
            proba[rows] = _task_proba(out, len(self.classes_))
        return proba

    def _predict_focus(self, X):
        return self.classes_[self._predict_focus_proba(X).argmax(axis=1)]
