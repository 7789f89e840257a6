"""The parameter and attribute documentation of the deep estimators, written once.

Each parameter is documented in one block; the estimators' docstrings name groups of blocks with
placeholders (``{multitask_parameters}``, ``{focused_parameters}``, ...) that
:class:`~skmtl.utils._docstring.Substitution` fills. A parameter whose meaning differs between
the multi-task and the focused-task estimators (the focused ones train in phases, on a hard-sharing
trunk) has one block per family.
"""

import textwrap

from skmtl.utils._docstring import SHARED_DOCS


def _deprecated_alpha(through):
    """The blocks of the deprecated ``gradnorm_alpha`` / ``lbtw_alpha``, set ``through`` a
    ``weighting`` or a ``strategy`` parameter."""
    blocks = {}
    for name, what, default, cls in [
        ("gradnorm", "GradNorm's asymmetry", 1.5, "GradNormWeighting"),
        ("lbtw", "Loss-balanced weighting's exponent", 0.5, "LBTWWeighting"),
    ]:
        blocks[f"{name}_alpha"] = f"""
    {name}_alpha : float, default="deprecated"
        {what} ``alpha`` for ``{through}="{name}"`` ({default} when not set).

        .. deprecated:: 0.1
            Use ``{through}={cls}(alpha=...)``; removed in 0.2.
    """
    return blocks


_PARAMETERS = {
    "head_layer_sizes": """
    head_layer_sizes : array-like of int or int, default=()
        Hidden layers of each task head before its output layer. Linear heads (the default)
        make per-task gradients nearly free (see the Notes of :class:`MultiTaskRegressor`).
    """,
    "activation": """
    activation : {"relu", "gelu", "tanh", "logistic", "identity"}, default="relu"
        Activation after every hidden layer.
    """,
    "dropout": """
    dropout : float, default=0.5
        Dropout probability after every hidden activation, in ``[0, 1)``.
    """,
    "module_params": """
    module_params : dict, default=None
        Keyword arguments of ``module``.
    """,
    "weight_decay": """
    weight_decay : float, default=0.01
        Weight decay of the weight matrices (trunk, towers, heads, a user ``module``: the
        parameters named ``*weight``; never biases, task embeddings, cross-stitch or sluice
        units, or a weighting's parameters), given to the optimizer as that parameter group's
        ``weight_decay``. With ``"adamw"`` it is decoupled: each step multiplies those weights
        by ``1 - lr * weight_decay``. With ``"adam"`` and ``"sgd"`` it is an L2 penalty
        ``weight_decay / 2 * ||W||^2`` in the loss. 0 disables it.
    """,
    "validation_fraction": """
    validation_fraction : float or None, default=None
        Fraction of the rows held out to compute validation losses each epoch. None: 0.1 with
        early stopping, no validation data without it; 0 for none (not with early stopping).
    """,
    "n_iter_no_change": """
    n_iter_no_change : int, default=10
        Epochs without improvement of the validation loss before early stopping stops.
    """,
    "affinity_on": """
    affinity_on : {"representation", "last_shared_layer"}, default="representation"
        Where ``gradient_affinity_`` compares the tasks' gradients: on the representation the
        heads read (cheap: with linear heads, ``O(T^2 K^2 (B + h))`` per batch), or on the
        weight of the last shared ``Linear`` layer (the parameters the tasks share, GradNorm's
        quantity; ``O(T B^2 h + T^2 B h)`` per batch, see the user guide). A network without
        a shared ``Linear`` layer uses the representation.
    """,
    "device": """
    device : str, default="cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"`` (CUDA if available, else
        MPS if available, else the CPU). An unavailable device raises a ValueError at fit.
    """,
    "accelerator": """
    accelerator : accelerate.Accelerator or None, default=None
        Data-parallel training on several processes (CPU) or GPUs, through skorch's
        :class:`~skorch.hf.AccelerateMixin`: start the script with ``accelerate launch`` or
        ``torchrun`` and pass ``Accelerator()``. Each process trains on its share of every
        epoch's batches (an epoch's batches are drawn once, the same in every process, and
        dealt round-robin); after the one backward pass of a step, the gradients are averaged
        over the processes, so every process takes the same optimizer step and ends with the
        same network (the initial weights and the seed come from process 0). Validation runs
        on the whole validation part in every process. The device is the accelerator's
        (``device`` is then ignored). None: one process on ``device``. See the user guide,
        "Scaling up".
    """,
    "random_state": """
    random_state : int, RandomState instance or None, default=None
        Seeds every torch random draw of the fit (initialisation, shuffling, dropout, task
        sampling) and the validation split, inside :func:`torch.random.fork_rng`: torch's global
        random state is left untouched, and the same integer gives the same model.
    """,
    "verbose": """
    verbose : int, default=0
        0: silent. 1: a progress bar per epoch (skorch's
        :class:`~skorch.callbacks.ProgressBar`). 2: also skorch's table of losses per epoch.
    """,
    "standardize_targets": """
    standardize_targets : bool, default=True
        Standardise each task's targets on its observed labels for training: the loss is the
        squared error on ``(y - target_mean_) / target_scale_``, and predictions are mapped
        back to the user's units. Safe for targets of any finite magnitude (the statistics
        are taken on the values divided by their largest magnitude). Without it, targets
        beyond float32's range raise a ValueError.
    """,
    "sharing": """
    sharing : {"hard", "independent", "soft", "cross_stitch", "sluice", "conditioned", \
            "tensor_factorisation", "relationship", "adaptive", "low_supervision", \
            "stacked"}, default="hard"
        How tasks share parameters: ``"hard"`` a shared trunk and one head per task;
        ``"independent"`` one network per task (the deep single-task baseline); ``"soft"`` one
        tower per task pulled together by ``soft_penalty``; ``"cross_stitch"`` towers mixed by
        learned units; ``"sluice"`` cross-stitch over subspaces with layer mixing;
        ``"conditioned"`` one network fed a learned task embedding (or the given
        ``task_descriptors``); ``"tensor_factorisation"`` towers whose stacked weights are a
        Tucker tensor of task rank ``tensor_rank`` (Yang & Hospedales, 2017);
        ``"relationship"`` a shared trunk and heads tied by a matrix-normal prior with a learned
        task covariance, ``task_covariance_`` (Long et al., 2017); ``"adaptive"`` a thin shared
        network widened into branches of tasks with aligned gradients, ``branches_`` (Lu et
        al., 2017); ``"low_supervision"`` a shared trunk whose depth ``task_depths[t]`` task
        ``t``'s head reads (Søgaard & Goldberg, 2016); ``"stacked"`` one level per task in
        ``task_order``, each reading the input, the level below and its prediction, with
        successive regularisation (Hashimoto et al., 2017). See :mod:`skmtl.deep.modules` and
        the user guide's page on sharing strategies.
    """,
    "soft_penalty": """
    soft_penalty : float, default=1e-3
        Strength of the ``"soft"`` sharing penalty ``sum ||theta_s - theta_t||^2`` between
        matching tower layers; used by ``"soft"`` only.
    """,
    "sluice_orthogonality": """
    sluice_orthogonality : float, default=0.1
        Weight ``lambda`` of the subspace orthogonality penalty of ``"sluice"`` sharing
        (Ruder et al., 2019, "Latent multi-task architecture learning", AAAI): each hidden
        layer ``l`` of each task's tower ``t`` is split into ``S`` subspaces, produced by the
        column blocks ``W_{t,l,j}`` of the layer's weight, and the training loss gets
        ``lambda * sum_t sum_l sum_{j<k} ||W_{t,l,j}^T W_{t,l,k}||_F^2``, which pushes the
        subspaces of a layer to read different directions of its input. This is the authors'
        code (sebastianruder/sluice-networks), whose README trains with weight 0.1; 0 gives the
        sluice network without the penalty. Used by ``"sluice"`` only.
    """,
    "conditioning": """
    conditioning : {"concat", "sum", "multiplicative"}, default="concat"
        How ``"conditioned"`` sharing feeds the task embedding; used by ``"conditioned"`` only.
    """,
    "embedding_dim": """
    embedding_dim : int, default=None
        Width of the task embedding of ``"conditioned"`` sharing; None means ``min(8, T)``.
        With ``task_descriptors`` it must be None (the width is that of the descriptors,
        ``d``); another value raises a ValueError at fit.
    """,
    "task_descriptors": """
    task_descriptors : array-like of shape (n_tasks, d) or DataFrame, default=None
        Known descriptions ``z_t`` of the tasks for ``"conditioned"`` sharing, fed to the
        network instead of a learned embedding (fixed, never trained): an array with one row
        per task in ``tasks_`` order, or a DataFrame indexed by task label whose rows are the
        descriptors. A DataFrame must hold a row for every task seen in fit and may hold rows
        of other tasks: those (``zero_shot_tasks_``) can then be predicted with ``task_ids``
        without having been seen in fit (zero-shot), by the rule of ``unknown_task="shared"``
        with the task's own descriptor in place of the mean embedding: every head reads the
        network fed ``z_new`` and their outputs are averaged,
        ``mean_t (f_t(x; z_new) * std_t + mean_t)`` in the user's units for regression, the
        probabilities of the mean logit ``mean_t f_t(x; z_new)`` for classification (every task
        must then have the same classes). Descriptors are used as given (standardise them if
        their scales differ). Validated at fit: a ValueError for another ``sharing``, a
        training task without a row, an array without ``n_tasks`` rows, or non-finite values.
        Kept as given by ``get_params`` and ``clone``.
    """,
    "tensor_rank": """
    tensor_rank : int, default=None
        Rank ``r`` of the task mode of ``"tensor_factorisation"``: each tower layer's weight
        is ``W_t = sum_k A[t, k] S_k``, a mix of ``r`` shared weights; None means
        ``min(ceil(T / 2), 8)``; ``r = T`` can represent any independent towers. Used by
        ``"tensor_factorisation"`` only.
    """,
    "task_depths": """
    task_depths : array-like of int or dict, default=None
        For ``"low_supervision"``: the hidden layer (1 = the first) whose output each task's
        head reads, one per task in ``tasks_`` order, or a dict ``{task: depth}`` (tasks it does
        not name read the top layer). None: every task reads the top layer, which is
        ``"hard"`` sharing. Any other ``sharing`` raises a ValueError at fit when it is set.
    """,
    "task_order": """
    task_order : array-like of task labels, default=None
        For ``"stacked"``: the order of the task levels, from the bottom (every task once).
        None: ``tasks_`` order. Any other ``sharing`` raises a ValueError at fit when it is set.
    """,
    "max_branches": """
    max_branches : int, default=None
        For ``"adaptive"``: the most branches the top layer splits into (None: as many as
        tasks). The split happens once, after the thin network's phase: ``max_epochs // 2``
        epochs (at least 1), fewer when early stopping ends the phase (its best epoch is then
        restored); the branched network trains for the remaining epochs.
    """,
    "relationship_penalty": """
    relationship_penalty : float, default=0.1
        For ``"relationship"``: strength ``lambda`` of the matrix-normal prior on the heads'
        weights ``W`` (``T x D``), ``lambda / 2 * tr(W^T Sigma^-1 W)``, with the task
        covariance ``Sigma`` re-estimated in closed form at the end of every epoch.
    """,
    "successive_penalty": """
    successive_penalty : float, default=1e-2
        For ``"stacked"``: strength ``delta`` of the successive regularisation
        ``delta * sum_k ||theta_k - theta_k^prev||^2`` that keeps every level below the top (and
        its task's head) near its values at the end of the previous epoch.
    """,
    "auxiliary": """
    auxiliary : {None, "reconstruction", "adversarial"}, default=None
        An auxiliary loss on the representation common to all tasks (the trunk's output, or
        the mean of the task representations for the strategies where each head reads its own):
        ``"reconstruction"`` a linear decoder reconstructs X (every row counts, unlabelled rows
        too); ``"adversarial"`` a task discriminator, trained through gradient reversal (Ganin &
        Lempitsky, 2015; Liu, Qiu & Huang, 2017), so that the representation does not encode
        which task a row is labelled for. Added to the training loss with weight
        ``auxiliary_weight``.
    """,
    "auxiliary_weight": """
    auxiliary_weight : float, default=0.1
        Weight of the auxiliary losses (``auxiliary`` and the hints) in the training loss.
    """,
    "hint_columns": """
    hint_columns : array-like of int or str, default=None
        Columns of X (positions, or names for a DataFrame X) that the network does not read but
        predicts from the shared representation, as auxiliary "hint" targets (squared error on
        the columns standardised over the rows of fit, weight ``auxiliary_weight``): features
        known at training time that should shape the representation. ``predict`` still takes
        all the columns of X and ignores these.
    """,
    "weighting": """
    weighting : str or Weighting, default="equal"
        How the task losses are combined: ``"equal"``, ``"fixed"``, ``"inverse_frequency"``,
        ``"uncertainty"``, ``"gradnorm"``, ``"dwa"``, ``"lbtw"``, ``"minimax"``, ``"dro"``
        (each the weighting of that name with its default parameters), or an instance of a
        :class:`~skmtl.deep.weighting.Weighting` subclass such as
        ``GradNormWeighting(alpha=0.5)``, ``FixedWeighting(task_weights=[...])`` or
        ``RMTLWeighting(focus_task=0)``. An instance is cloned at fit (never modified) and its
        parameters are validated then; they are searchable as ``weighting__<param>``. See
        :mod:`skmtl.deep.weighting`.
    """,
    "task_weights": """
    task_weights : array-like of shape (n_tasks,), default="deprecated"
        One weight per task (in ``tasks_`` order) for ``weighting="fixed"``.

        .. deprecated:: 0.1
            Use ``weighting=FixedWeighting(task_weights=...)``; removed in 0.2.
    """,
    **_deprecated_alpha("weighting"),
    "task_sampling": """
    task_sampling : {"joint", "uniform", "proportional"}, default="joint"
        ``"joint"``: every batch is drawn from all rows and every task's observed labels count.
        ``"uniform"`` / ``"proportional"``: naive multi-task SGD; each batch first draws one
        task (uniformly, or with probability proportional to its number of observed labels),
        then ``batch_size`` of that task's observed rows, and only that task's loss counts. An
        epoch has ``ceil(n_samples / batch_size)`` batches in every mode. See
        ``tasks_per_batch`` for several tasks per batch.
    """,
    "tasks_per_batch": """
    tasks_per_batch : int, default=1
        Tasks per batch ``k`` of ``task_sampling="uniform"`` / ``"proportional"``. Each batch
        draws ``k' = min(k, tasks with labels, batch_size)`` distinct tasks (larger values are
        clipped), without replacement: the first with the sampling's probabilities, each next
        among the tasks not drawn yet with the probabilities renormalised. The ``j``-th drawn
        task (``j = 0, ..., k' - 1``) gets ``batch_size // k'`` of its observed rows, plus one if
        ``j < batch_size % k'`` (all its rows if it has fewer). Each row keeps only the label of
        the task it was drawn for, so a batch holds the losses of exactly the ``k'`` drawn
        tasks, each the mean over its own rows. ``k = 1`` is one task per batch. With
        ``task_sampling="joint"`` it must be 1 (ValueError otherwise).
    """,
    "unknown_task": """
    unknown_task : {"error", "shared"}, default="error"
        What ``task_ids`` naming a task not seen in fit gets: ``"error"`` raises
        :class:`~skmtl.UnknownTaskError`; ``"shared"`` predicts it from the shared part, the
        trunk read by the mean of the heads (``"hard"``, ``"relationship"``), each head on its
        own depth of the trunk (``"low_supervision"``), the branch of the first task at every
        layer (``"adaptive"``) or the network fed the mean task embedding
        (``"conditioned"``); the mean of the heads' outputs, in the user's units for
        regression and as logits for classification. Other strategies have no shared part and
        raise a ValueError when an unseen task has to be predicted. Tasks described by
        ``task_descriptors`` are not unknown: they are predicted from their descriptor
        whatever ``unknown_task``.
    """,
}
_MULTITASK_VARIANTS = {
    "hidden_layer_sizes": """
    hidden_layer_sizes : array-like of int or int, default=(512,)
        Hidden layers of the trunk (``"hard"``), of each tower, or of the conditioned network.
        Ignored when ``module`` is given.
    """,
    "module": """
    module : torch.nn.Module subclass, default=None
        A class to use as the trunk (``"hard"``, ``"relationship"``) or as each tower
        (``"independent"``, ``"soft"``), built as ``module(**module_params)`` inside ``fit``.
        It receives X of shape ``(batch, n_features)`` in float32 and returns
        ``(batch, ...)``.
    """,
    "max_epochs": """
    max_epochs : int, default=200
        Maximum number of passes over the training data (fewer with early stopping).
    """,
    "batch_size": """
    batch_size : int, default=128
        Rows per batch.
    """,
    "lr": """
    lr : float, default=3e-4
        Learning rate of the optimizer.
    """,
    "optimizer": """
    optimizer : {"adamw", "adam", "sgd"} or callable, default="adamw"
        The optimizer: a name, or a :class:`torch.optim.Optimizer` class (or any callable
        ``optimizer(param_groups, lr=lr)``).
    """,
    "early_stopping": """
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the rows (a split stratified on every task and
        class, see the user guide; whole groups with ``fit``'s ``groups``), stop when the
        validation loss (the mean over tasks of each task's mean loss on its observed
        validation labels) has not improved by a relative 1e-4 for ``n_iter_no_change``
        epochs, and restore the network of the best epoch
        (skorch's :class:`~skorch.callbacks.EarlyStopping` with ``load_best=True``).
    """,
    "callbacks": """
    callbacks : list of skorch callbacks, default=None
        Extra skorch callbacks (instances or ``(name, callback)`` tuples); they are copied at
        fit, and the fitted copies live in ``net_.callbacks_``. skorch's ``EpochScoring`` and
        ``BatchScoring`` are refused (a ValueError): the batches carry each task's labels, not
        the ``y`` array they score; the per-task losses are in ``net_.history``.
    """,
}
_FOCUSED_VARIANTS = {
    "focus_task": """
    focus_task : object, default=None
        The task to serve: a task label (an entry of ``tasks_``: a column name of a DataFrame,
        a task id of long data, a column position of an array) or, when no task label is an
        integer, an integer position in ``tasks_``. Labels are looked up first, as pandas'
        ``.loc`` does; an integer that is not a label is a position only if the labels are
        not integers, so an integer task id is never taken for a position. None is allowed
        for a single task only. An unknown focus task raises a ValueError
        (:class:`~skmtl.UnknownTaskError`) at fit that names the known tasks.
    """,
    "strategy": """
    strategy : {"rmtl", "single_task", "multi_task", "gradnorm", "lbtw", "finetune"} or \
            Weighting, default="rmtl"
        How the auxiliary tasks are used (see the description of
        :class:`FocusedTaskRegressor`). An instance of a
        :class:`~skmtl.deep.weighting.Weighting` subclass trains every task with that
        weighting, as ``"multi_task"`` does with equal weights (cloned at fit; its parameters
        are searchable as ``strategy__<param>``): ``"gradnorm"`` is
        ``GradNormWeighting()``, ``"lbtw"`` is ``LBTWWeighting()``, and ``"rmtl"`` builds
        :class:`~skmtl.deep.weighting.RMTLWeighting` on the focus task from ``rmtl_reward``,
        ``rmtl_gradient_on`` and ``policies``.
    """,
    "finetune_epochs": """
    finetune_epochs : int or None, default=None
        Epochs of the focus-task phase of ``strategy="finetune"``, early stopping included.
        None: ``max_epochs`` after ``finetune_pretrain="auxiliary"`` (the phase is then the
        focus task's whole training), 10 after ``"all"``. 0 with ``"all"`` makes it
        ``"multi_task"``; 0 with ``"auxiliary"`` raises a ValueError at fit (the focus task
        would never be trained).
    """,
    "finetune_pretrain": """
    finetune_pretrain : {"auxiliary", "all"}, default="auxiliary"
        What ``strategy="finetune"`` pre-trains on. ``"auxiliary"`` (the protocol of Liu,
        Liang & Gitter's code): ``max_epochs`` on the auxiliary tasks only (the focus task's
        labels hidden from the loss and from early stopping), then the shared layers are kept,
        the focus head is drawn afresh and a new optimizer trains the network on the focus
        task. ``"all"``: ``max_epochs`` on every task with equal weights, then the focus task
        alone with the same heads and optimizer state.
    """,
    "freeze_trunk": """
    freeze_trunk : bool, default=False
        Freeze the trunk's parameters during the fine-tuning phase (only the heads train);
        used by ``strategy="finetune"`` only. Buffers of a custom trunk (batch-norm running
        statistics) still update.
    """,
    "rmtl_reward": """
    rmtl_reward : {"per_task", "policy"}, default="policy"
        The reward of ``strategy="rmtl"``
        (:class:`~skmtl.deep.weighting.RMTLWeighting`). ``"per_task"``: every auxiliary task
        its own weight ``max(cos(g_a, g_f), 0)`` each batch, all at once (the authors' code).
        ``"policy"``: Algorithm 3 of the paper, the candidate policy (``policies``) whose
        weighted auxiliary gradient is best aligned with the focus task's, one per batch.
        ``"policy"`` is the default: the two are alike on MoleculeACE pairs, and only it tells
        related from unrelated auxiliary tasks on generated data (see the transfer guide).
    """,
    "rmtl_gradient_on": """
    rmtl_gradient_on : {"head_weights", "last_shared_layer", "representation"} or None, \
            default=None
        Where the rewards' gradients ``g_t`` are taken: each task's output-layer weight, the
        weight of the last shared layer, or the representation the heads read. None: the
        source's choice, ``"head_weights"`` for ``"per_task"`` (the authors' code) and
        ``"last_shared_layer"`` for ``"policy"`` (the paper's Algorithm 3). None of them costs
        a backward pass per task.
    """,
    "policies": """
    policies : list of dict or list of array-like, default=None
        Candidate policies of ``strategy="rmtl"`` with ``rmtl_reward="policy"`` (must be None
        with ``"per_task"``). None: each auxiliary task alone and, with
        two or more auxiliary tasks, all of them together, every task in a policy with weight
        1 (so the "all" policy trains ``L_f + r * sum_a L_a``, equal weighting damped by the
        reward). Otherwise a list whose entries are dicts ``{task label:
        weight}`` (auxiliary tasks left out weigh 0) or arrays of shape ``(n_aux,)`` in
        ``aux_tasks_`` order; weights are non-negative, used as given, and each policy needs
        a positive one.
    """,
    "hidden_layer_sizes": """
    hidden_layer_sizes : array-like of int or int, default=(512,)
        Hidden layers of the shared trunk. Ignored when ``module`` is given.
    """,
    "module": """
    module : torch.nn.Module subclass, default=None
        A class to use as the trunk, built as ``module(**module_params)`` inside ``fit``.
    """,
    "max_epochs": """
    max_epochs : int, default=200
        Maximum number of passes over the training data (of pre-training for ``"finetune"``;
        fewer with early stopping).
    """,
    "batch_size": """
    batch_size : int, default=128
        Rows per batch. Every batch is drawn from all rows, so it holds labels of every task.
    """,
    "lr": """
    lr : float, default=3e-4
        Learning rate of the optimizer (both phases of ``"finetune"``).
    """,
    "optimizer": """
    optimizer : {"adamw", "adam", "sgd"} or callable, default="adamw"
        The optimizer: a name, or a :class:`torch.optim.Optimizer` class. The fine-tuning
        phase of ``"finetune"`` gets a new one of this class after
        ``finetune_pretrain="auxiliary"``, and continues with the same one and its state after
        ``"all"``.
    """,
    "callbacks": """
    callbacks : list of skorch callbacks, default=None
        Extra skorch callbacks, copied at fit. With ``"finetune"`` they see two trainings
        (``on_train_begin`` / ``on_train_end`` twice).
    """,
}
_ATTRIBUTES = {
    "net_": """
    net_ : skorch.NeuralNet
        The trained skorch net. ``net_.module_`` is the network; ``net_.history`` holds, per
        epoch, ``train_loss`` (the weighted training objective), ``train_loss_task_<t>`` (task
        ``t``'s unweighted mean loss on its observed training labels; ``t`` its position in
        ``tasks_``), ``task_weights``, and with validation data ``valid_loss`` and
        ``valid_loss_task_<t>``.
    """,
    "n_iter_": """
    n_iter_ : int
        Number of epochs run.
    """,
    "task_weights_history_": """
    task_weights_history_ : ndarray of shape (n_iter_, n_tasks)
        The weighting's ``current_weights()`` at the end of each epoch (after its end-of-epoch
        update).
    """,
    "gradient_affinity_": """
    gradient_affinity_ : ndarray of shape (n_tasks, n_tasks)
        Mean cosine similarity between the tasks' loss gradients on the shared representation
        (see the Notes of :class:`MultiTaskRegressor`); symmetric, 1 on the diagonal; NaN for a
        pair never observed together, and off the diagonal for strategies without a shared
        representation.
    """,
    "task_descriptors_": """
    task_descriptors_ : ndarray of shape (n_tasks, d) or None
        The descriptors of the tasks seen in fit, in ``tasks_`` order (None without
        ``task_descriptors``).
    """,
    "task_covariance_": """
    task_covariance_ : ndarray of shape (n_tasks_, n_tasks_)
        ``sharing="relationship"`` only: the task covariance ``Sigma`` of the heads' prior at
        the end of training, ``T (W W^T + eps I)^(1/2) / tr((W W^T + eps I)^(1/2))``: the
        covariance of trace ``T`` that minimises the prior's term (see
        :class:`~skmtl.deep.modules.RelationshipModule`); draw it with
        :class:`~skmtl.plotting.AffinityDisplay`.
    """,
    "task_correlation_": """
    task_correlation_ : ndarray of shape (n_tasks_, n_tasks_)
        ``sharing="relationship"`` only: ``task_covariance_`` scaled to a unit diagonal.
    """,
    "branches_": """
    branches_ : list of list of list
        ``sharing="adaptive"`` only: the branch tree, one entry per hidden layer from the input
        side, each a list of branches, each the list of the task labels it serves (one branch
        holding every task: the layer is shared). Drawn by
        :class:`~skmtl.plotting.BranchTreeDisplay`.
    """,
    "zero_shot_tasks_": """
    zero_shot_tasks_ : ndarray of shape (n_zero_shot,)
        Tasks not seen in fit that ``task_descriptors`` describes (rows of a DataFrame beyond
        the training tasks); ``predict`` with ``task_ids`` predicts them zero-shot. Empty
        without such rows.
    """,
    "target_mean_": """
    target_mean_ : ndarray of shape (n_tasks,)
        Mean of each task's observed targets (0 without standardisation).
    """,
    "target_scale_": """
    target_scale_ : ndarray of shape (n_tasks,)
        Standard deviation of each task's observed targets (1 without standardisation; for
        a constant task, its largest magnitude, or 1 if it is all zeros).
    """,
    "focused_focus_index_": """
    focus_index_ : int
        Position of the focus task in ``tasks_``.
    """,
    "focused_aux_tasks_": """
    aux_tasks_ : ndarray of shape (n_tasks_ - 1,)
        Labels of the auxiliary tasks, in ``tasks_`` order (the order of the columns of
        ``aux_weights_history_`` and of array policies).
    """,
    "focused_aux_weights_history_": """
    aux_weights_history_ : ndarray of shape (n_iter_, n_tasks_ - 1)
        Per epoch, the weights of the auxiliary tasks: for ``"rmtl"`` the mean over the
        epoch's batches of ``r(pi*) * pi*``; for the others the weighting's weights at the end
        of the epoch (1 for ``"multi_task"`` and for pre-training epochs, 0 for fine-tuning
        epochs and for ``"single_task"``).
    """,
    "focused_task_weights_history_": """
    task_weights_history_ : ndarray of shape (n_iter_, n_tasks_)
        The same for every task, the focus task included. The focus task's weight is 1
        except with ``"gradnorm"``, ``"lbtw"`` or a weighting instance, and 0 in the epochs
        of ``"finetune"``'s pre-training on the auxiliary tasks
        (``finetune_pretrain="auxiliary"``); in ``"finetune"``'s focus phase the auxiliary
        tasks' weights are 0.
    """,
    "focused_policies_": """
    policies_ : ndarray of shape (n_policies, n_tasks_ - 1) or None
        The candidate policies of ``"rmtl"`` with ``rmtl_reward="policy"`` (None otherwise).
    """,
    "focused_gradient_affinity_": """
    gradient_affinity_ : ndarray of shape (n_tasks_, n_tasks_)
        Mean cosine between the tasks' gradients on the shared representation (see
        :class:`MultiTaskRegressor`); NaN off the diagonal for ``"single_task"``.
    """,
    "focused_net_": """
    net_ : skorch.NeuralNet
        The trained skorch net; ``net_.history`` holds the per-task losses of every epoch.
    """,
    "focused_n_iter_": """
    n_iter_ : int
        Number of epochs run (both phases of ``"finetune"``).
    """,
}


def _join(blocks, names):
    return "\n".join(textwrap.dedent(blocks[name]).strip("\n") for name in names)


_SHARED_NAMES = ("hidden_layer_sizes", "head_layer_sizes", "activation", "dropout", "module",
                 "module_params")
_TRAINING_NAMES = ("max_epochs", "batch_size", "lr", "weight_decay", "optimizer",
                   "early_stopping", "validation_fraction", "n_iter_no_change", "affinity_on")
_RUN_NAMES = ("callbacks", "device", "accelerator", "random_state", "verbose")

_multitask = {**_PARAMETERS, **_MULTITASK_VARIANTS}
_focused = {
    **_PARAMETERS,
    **_FOCUSED_VARIANTS,
    "early_stopping": _MULTITASK_VARIANTS["early_stopping"].rstrip() + """
        Early stopping runs in each phase of ``"finetune"``; during fine-tuning the
        validation loss is the focus task's.
    """,
    **_deprecated_alpha("strategy"),
}

MULTITASK_DOCS = {
    **SHARED_DOCS,
    "multitask_parameters": _join(_multitask, (
        "sharing", *_SHARED_NAMES[:4], "soft_penalty", "sluice_orthogonality", "conditioning",
        "embedding_dim", "task_descriptors", "tensor_rank", "task_depths", "task_order",
        "max_branches", "relationship_penalty", "successive_penalty", *_SHARED_NAMES[4:],
        "auxiliary", "auxiliary_weight", "hint_columns", "weighting", "task_weights",
        "gradnorm_alpha", "lbtw_alpha", "task_sampling", "tasks_per_batch", *_TRAINING_NAMES,
        "unknown_task", *_RUN_NAMES,
    )),
    "standardize_targets": _PARAMETERS["standardize_targets"],
    "fit_attributes": _join(_ATTRIBUTES, (
        "net_", "n_iter_", "task_weights_history_", "gradient_affinity_", "task_descriptors_",
        "zero_shot_tasks_", "task_covariance_", "task_correlation_", "branches_")),
    "target_attributes": _join(_ATTRIBUTES, ("target_mean_", "target_scale_")),
}

FOCUSED_DOCS = {
    **SHARED_DOCS,
    "focused_parameters": _join(_focused, (
        "focus_task", "strategy", *_SHARED_NAMES, "gradnorm_alpha", "lbtw_alpha",
        "finetune_epochs", "finetune_pretrain", "freeze_trunk", "rmtl_reward",
        "rmtl_gradient_on", "policies", *_TRAINING_NAMES, *_RUN_NAMES,
    )),
    "standardize_targets": _PARAMETERS["standardize_targets"],
    "fit_attributes": _join(_ATTRIBUTES, tuple(
        f"focused_{name}" for name in ("focus_index_", "aux_tasks_", "aux_weights_history_",
                                       "task_weights_history_", "policies_",
                                       "gradient_affinity_", "net_", "n_iter_")
    )),
    "target_attributes": _join(_ATTRIBUTES, ("target_mean_", "target_scale_")),
}
