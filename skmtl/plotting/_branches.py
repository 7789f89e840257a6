"""The branch tree of a fully-adaptive (``sharing="adaptive"``) deep multi-task model."""

import numpy as np

from skmtl.plotting._base import _axes, _task_labels

__all__ = ["BranchTreeDisplay"]


def _check_branches(branches, task_names):
    """The branches as lists of task keys, validated: every layer a partition, nested layers.

    Returns the layers (lists of lists of keys) and the list of all keys.
    """
    message = (
        "branches must be a non-empty list (one entry per hidden layer, from the input side) of "
        "lists of branches, each a non-empty list of tasks"
    )
    try:
        layers = [[list(group) for group in layer] for layer in branches]
    except TypeError:
        raise ValueError(f"{message}; got {branches!r}.") from None
    if not layers or any(not layer or any(not group for group in layer) for layer in layers):
        raise ValueError(f"{message}; got {branches!r}.")
    tasks = [task for group in layers[0] for task in group]
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"A task is in two branches of layer 1: {layers[0]!r}.")
    for index, layer in enumerate(layers[1:], start=2):
        members = [task for group in layer for task in group]
        if len(members) != len(tasks) or set(members) != set(tasks):
            raise ValueError(
                f"Layer {index} of branches does not hold each task of layer 1 exactly once: "
                f"{layer!r}."
            )
    for index, (lower, upper) in enumerate(zip(layers[:-1], layers[1:], strict=True), start=2):
        for group in upper:
            if not any(set(group) <= set(parent) for parent in lower):
                raise ValueError(
                    f"Branch {group!r} of layer {index} is not inside one branch of layer "
                    f"{index - 1}; the branches must form a tree."
                )
    if task_names is not None:
        if any(not isinstance(t, (int, np.integer)) or not 0 <= t < len(task_names)
               for t in tasks) or len(tasks) != len(task_names):
            raise ValueError(
                f"With task_names ({len(task_names)} names), branches must hold the task "
                f"positions 0 .. {len(task_names) - 1}, each once per layer; got {tasks!r}."
            )
    return layers, tasks


def _tree_order(layers):
    """Order the branches of each layer so that the children of a branch sit side by side.

    Returns the reordered layers and the order of the tasks along the x axis.
    """
    ordered = [list(layers[0])]
    for layer in layers[1:]:
        below = ordered[-1]

        def parent(group, below=below):
            return next(i for i, p in enumerate(below) if set(group) <= set(p))

        ordered.append(sorted(layer, key=parent))  # stable: keeps the given order of siblings
    return ordered, [task for group in ordered[-1] for task in group]


class BranchTreeDisplay:
    """The tree of branches of a fully-adaptive multi-task network.

    One row of boxes per hidden layer, the input side at the bottom: a box is one branch (a
    copy of the layer used by the tasks it lists), a line joins it to its parent branch in the
    layer below, and the task names are written at the top, above the branch whose
    representation they read. A layer with one box is shared by every task.

    ::

          a    b    c    d        task names
          |    |    |    |
        [a, b]    [c, d]          layer 2: two branches
            \\      /
          [all tasks]             layer 1: shared
               |
               X

    Parameters
    ----------
    branches : list of list of list
        One entry per hidden layer, from the input side: the list of the layer's branches,
        each the list of its tasks (a fitted estimator's ``branches_``, or
        :meth:`~skmtl.deep.modules.AdaptiveModule.branches`). Every layer holds each task
        once, and each branch lies inside one branch of the layer below.
    task_names : array-like of shape (n_tasks,), default=None
        Names of the tasks; the entries of ``branches`` are then their positions. None shows
        the entries of ``branches`` themselves.

    Attributes
    ----------
    order_ : list
        The tasks (entries of ``branches``) from left to right: the children of a branch are
        drawn next to each other.
    boxes_ : list of list of tuple
        ``boxes_[l][j]``: the ``(x, y)`` centre of branch ``j`` of layer ``l`` (in
        ``layers_[l]`` order). Task ``order_[i]`` is at ``x = i``; a box spans its tasks,
        from ``x - width_ / 2`` to ``x + width_ / 2``; layer ``l`` is at ``y = l``.
    widths_ : list of list of float
        The widths of the boxes.
    layers_ : list of list of list
        ``branches`` with each layer's branches in drawing order (left to right).
    patches_ : list of list of matplotlib.patches.FancyBboxPatch
        The boxes.
    texts_ : list of list of matplotlib.text.Text
        The box labels.
    lines_ : list of matplotlib.lines.Line2D
        The edges: input to the bottom boxes, child to parent, top boxes to their tasks.
    task_texts_ : list of matplotlib.text.Text
        The task names at the top, in ``order_``.
    ax_ : matplotlib.axes.Axes
        The axes drawn on.
    figure_ : matplotlib.figure.Figure
        The figure of ``ax_``.

    See Also
    --------
    skmtl.deep.modules.AdaptiveModule : The network whose tree this draws.
    skmtl.plotting.AffinityDisplay : The task affinity the tree was built from.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skmtl.plotting._branches import BranchTreeDisplay
    >>> tree = [[[0, 1, 2, 3]], [[0, 2], [1, 3]]]
    >>> display = BranchTreeDisplay(tree, task_names=["a", "b", "c", "d"]).plot()
    >>> display.order_
    [0, 2, 1, 3]
    >>> display.boxes_
    [[(1.5, 0)], [(0.5, 1), (2.5, 1)]]
    >>> [text.get_text() for text in display.texts_[1]]
    ['a, c', 'b, d']
    """

    def __init__(self, branches, task_names=None):
        if task_names is not None:
            task_names = np.asarray(task_names)
            if task_names.ndim != 1:
                raise ValueError(
                    f"task_names must be one-dimensional, got shape {task_names.shape}."
                )
        self.layers, self.tasks = _check_branches(branches, task_names)
        self.branches = branches
        self.task_names = task_names

    def _names(self, tasks):
        if self.task_names is None:
            return _task_labels(tasks)
        return _task_labels(self.task_names[list(tasks)])

    def _box_label(self, group, max_names):
        if len(group) == len(self.tasks) and len(self.tasks) > 1:
            return f"all {len(group)} tasks"
        names = self._names(group)
        if len(names) > max_names:
            return ", ".join(names[:max_names]) + f", +{len(names) - max_names}"
        return ", ".join(names)

    def plot(self, ax=None, *, max_names=3, box_color="C0", fontsize="small",
             names_rotation=None):
        """Draw the tree.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; None creates a figure.
        max_names : int, default=3
            Most task names written in a box; longer lists end with ``+n`` (the number of the
            others). A box holding every task reads ``all n tasks``.
        box_color : color, default="C0"
            Edge colour of the boxes (their face is a light tint of it).
        fontsize : str or float, default="small"
            Size of the box labels and task names.
        names_rotation : float, default=None
            Rotation of the task names; None: vertical when there are more than 6 tasks.

        Returns
        -------
        display : BranchTreeDisplay
            The display, with ``order_``, ``layers_``, ``boxes_``, ``widths_``, ``patches_``,
            ``texts_``, ``lines_``, ``task_texts_``, ``ax_`` and ``figure_``.
        """
        if isinstance(max_names, bool) or not isinstance(max_names, (int, np.integer)) or (
            max_names < 1
        ):
            raise ValueError(f"max_names must be a positive integer, got {max_names!r}.")
        figure, ax = _axes(ax, "BranchTreeDisplay.plot")  # imports matplotlib, or explains
        from matplotlib.colors import to_rgba
        from matplotlib.patches import FancyBboxPatch

        self.layers_, self.order_ = _tree_order(self.layers)
        x_of = {task: float(i) for i, task in enumerate(self.order_)}
        n_layers, n_tasks = len(self.layers_), len(self.order_)
        edge = to_rgba(box_color)
        face = (*edge[:3], 0.15)
        height = 0.45
        line_kw = {"color": "0.5", "linewidth": 1.0, "zorder": 1}

        self.boxes_, self.widths_, self.patches_, self.texts_ = [], [], [], []
        for level, layer in enumerate(self.layers_):
            centres, widths, patches, texts = [], [], [], []
            for group in layer:
                xs = [x_of[task] for task in group]
                left, right = min(xs) - 0.4, max(xs) + 0.4
                centre = (min(xs) + max(xs)) / 2
                patch = FancyBboxPatch(
                    (left, level - height / 2), right - left, height,
                    boxstyle="round,pad=0.02", facecolor=face, edgecolor=edge, zorder=2,
                )
                ax.add_patch(patch)
                texts.append(ax.text(centre, level, self._box_label(group, max_names),
                                     ha="center", va="center", fontsize=fontsize, zorder=3))
                centres.append((centre, level))
                widths.append(right - left)
                patches.append(patch)
            self.boxes_.append(centres)
            self.widths_.append(widths)
            self.patches_.append(patches)
            self.texts_.append(texts)

        self.lines_ = []
        for x, y in self.boxes_[0]:  # from the input
            self.lines_ += ax.plot([x, x], [-0.75, y - height / 2], **line_kw)
        for level in range(1, n_layers):
            below = self.layers_[level - 1]
            for group, (x, y) in zip(self.layers_[level], self.boxes_[level], strict=True):
                j = next(i for i, p in enumerate(below) if set(group) <= set(p))
                px, py = self.boxes_[level - 1][j]
                self.lines_ += ax.plot([px, x], [py + height / 2, y - height / 2], **line_kw)
        top = n_layers - 1
        for group, (x, y) in zip(self.layers_[top], self.boxes_[top], strict=True):
            for task in group:
                self.lines_ += ax.plot([x, x_of[task]], [y + height / 2, top + 0.75], **line_kw)
        ax.text(sum(x_of.values()) / n_tasks, -0.8, "X", ha="center", va="top",
                fontsize=fontsize)

        if names_rotation is None:
            names_rotation = 90 if n_tasks > 6 else 0
        self.task_texts_ = [
            ax.text(x_of[task], top + 0.8, name, ha="center", va="bottom",
                    rotation=names_rotation, fontsize=fontsize)
            for task, name in zip(self.order_, self._names(self.order_), strict=True)
        ]
        ax.set_xlim(-0.6, n_tasks - 0.4)
        ax.set_ylim(-1.3, top + (2.0 if names_rotation else 1.3))
        ax.set_yticks(range(n_layers), [f"layer {level + 1}" for level in range(n_layers)])
        ax.set_xticks([])
        for side in ("top", "right", "bottom"):
            ax.spines[side].set_visible(False)
        ax.set_ylabel("hidden layer (input at the bottom)")
        self.ax_, self.figure_ = ax, figure
        return self

    @classmethod
    def from_estimator(cls, estimator, *, ax=None, max_names=3, box_color="C0",
                       fontsize="small", names_rotation=None):
        """Draw the tree of a fitted deep estimator with ``sharing="adaptive"``.

        Parameters
        ----------
        estimator : estimator object
            A fitted :class:`~skmtl.deep.MultiTaskRegressor` /
            :class:`~skmtl.deep.MultiTaskClassifier` with ``sharing="adaptive"`` (it has a
            ``branches_`` attribute), or a Pipeline / search ending in one.
        ax : matplotlib Axes, default=None
            Axes to draw on; None creates a figure.
        max_names, box_color, fontsize, names_rotation
            As in :meth:`plot`.

        Returns
        -------
        display : BranchTreeDisplay

        Raises
        ------
        ValueError
            If the estimator has no ``branches_`` (not fitted, or another sharing).
        """
        from skmtl.metrics._scorer import _final_step_attr

        branches = _final_step_attr(estimator, "branches_")
        if branches is None:
            sharing = _final_step_attr(estimator, "sharing")
            raise ValueError(
                f"{type(estimator).__name__} has no branches_: the branch tree is built by a "
                "fitted deep multi-task estimator with sharing='adaptive'"
                + (f" (this one has sharing={sharing!r})." if sharing is not None else ".")
            )
        return cls(branches).plot(ax=ax, max_names=max_names, box_color=box_color,
                                  fontsize=fontsize, names_rotation=names_rotation)

