"""The sharing map of a deep multi-task network: which parameters serve which tasks."""

import numbers

import numpy as np

from skmtl.plotting._base import _pyplot, _task_labels

__all__ = ["SharingDisplay"]

# Categories of a row, in legend order, with their default colours.
_CATEGORIES = ("shared", "subset", "single", "unused")
_LEGEND = {
    "shared": "shared by all tasks",
    "subset": "shared by some tasks",
    "single": "one task",
    "unused": "unused",
    "more": "rows not shown",
}
_DEFAULT_COLORS = {"shared": "C0", "subset": "C2", "single": "C1"}
_UNUSED_COLOR = "0.85"
_MORE_COLOR = "0.6"
_EMPTY_COLOR = "white"

# Long prefixes of the parameter names of skmtl's modules, and their short forms.
_PREFIXES = (("task_heads.", "heads."), ("towers.layers.", "towers."))
_MAX_NAME = 32


def _short_name(name):
    """``name`` with the long prefixes shortened, and its start cut if still too long."""
    for prefix, short in _PREFIXES:
        if name.startswith(prefix):
            name = short + name[len(prefix):]
            break
    if len(name) > _MAX_NAME:
        name = "..." + name[-(_MAX_NAME - 3):]
    return name


def _check_blocks(blocks, n_tasks):
    """The rows as ``(str, int, frozenset)``, validated against ``n_tasks``."""
    message = (
        "blocks must be a sequence of (parameter name, number of entries, set of task "
        "positions) rows, as the blocks of skmtl.deep._sharing_map.sharing_map"
    )
    try:
        rows = [(str(name), int(count), frozenset(int(t) for t in tasks))
                for name, count, tasks in blocks]
    except (TypeError, ValueError):
        raise ValueError(f"{message}; got {blocks!r}.") from None
    for name, count, tasks in rows:
        if count < 1:
            raise ValueError(f"{message}; row {name!r} has {count} entries.")
        if any(not 0 <= t < n_tasks for t in tasks):
            raise ValueError(
                f"Row {name!r} of blocks names tasks {sorted(tasks)}, outside "
                f"0 .. {n_tasks - 1} (n_tasks={n_tasks})."
            )
    return rows


def _category(tasks, n_tasks):
    if not tasks:
        return "unused"
    if len(tasks) == n_tasks:
        return "shared"
    if len(tasks) == 1:
        return "single"
    return "subset"


class SharingDisplay:
    """The sharing map of a deep multi-task network: a grid of parameter blocks x tasks.

    One row per block of parameter entries with the same *task signature* (the tasks whose
    output depends on them, found by autograd by :func:`~skmtl.deep._sharing_map.sharing_map`),
    one column per task; a cell is filled where the row's entries serve the task. It is the
    diagram of a sharing strategy, generated from the network itself::

                                  task a  task b  task c
        trunk.0.weight (20)       [####]  [####]  [####]    shared by all tasks
        trunk.0.bias (4)          [####]  [####]  [####]
        heads.output.weight (3)   [####]                    one task
        heads.output.weight (3)           [####]
        heads.output.weight (3)                   [####]
        heads.output.weight (3)   [....]  [....]  [....]    unused (greyed)

    Rows serving every task, several tasks, one task and none (e.g. the padded output columns
    of multiclass heads, or the branch slots an adaptive network does not use) are drawn in
    four colours, named in the legend. The row labels are ``"<parameter name> (<number of
    entries>)"``, the name shortened: ``task_heads.`` is written ``heads.``,
    ``towers.layers.`` is written ``towers.``, and a name longer than 32 characters loses its
    start (``...``).

    Parameters
    ----------
    blocks : sequence of (str, int, set of int)
        The rows: parameter name, number of entries, and the positions of the tasks served
        (empty: unused), e.g. the ``blocks`` of :func:`~skmtl.deep._sharing_map.sharing_map`.
    n_tasks : int
        Number of tasks (columns).
    task_names : array-like of shape (n_tasks,), default=None
        Column labels; None uses ``0 .. n_tasks - 1``.
    title : str, default=None
        Title of the axes.

    Attributes
    ----------
    cells_ : ndarray of shape (n_rows, n_tasks), dtype bool
        The matrix drawn: True where the row serves the task. With more than ``max_rows``
        blocks, the last row is the union of the blocks not shown.
    row_labels_ : list of str
        The labels of the rows drawn, top to bottom.
    categories_ : list of str
        The category of each row drawn: ``"shared"``, ``"subset"``, ``"single"``,
        ``"unused"``, or ``"more"`` for the merged last row.
    image_ : matplotlib.image.AxesImage
        The grid (an RGBA image, one pixel per cell).
    legend_ : matplotlib.legend.Legend
        The legend of the categories drawn.
    ax_ : matplotlib.axes.Axes
        The axes drawn on.
    figure_ : matplotlib.figure.Figure
        The figure of ``ax_``.

    See Also
    --------
    skmtl.deep._sharing_map.sharing_map : The computation of the blocks.
    skmtl.plotting.BranchTreeDisplay : The branches of an adaptive network.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skmtl.plotting._sharing import SharingDisplay
    >>> blocks = [("trunk.0.weight", 20, {0, 1}), ("task_heads.output.weight", 4, {0}),
    ...           ("task_heads.output.weight", 4, {1})]
    >>> display = SharingDisplay(blocks, 2, task_names=["a", "b"]).plot()
    >>> display.cells_.tolist()
    [[True, True], [True, False], [False, True]]
    >>> display.row_labels_
    ['trunk.0.weight (20)', 'heads.output.weight (4)', 'heads.output.weight (4)']
    """

    def __init__(self, blocks, n_tasks, task_names=None, title=None):
        if isinstance(n_tasks, bool) or not isinstance(n_tasks, numbers.Integral) or n_tasks < 1:
            raise ValueError(f"n_tasks must be a positive integer, got {n_tasks!r}.")
        self.n_tasks = int(n_tasks)
        self.blocks = _check_blocks(blocks, self.n_tasks)
        if task_names is None:
            task_names = np.arange(self.n_tasks)
        task_names = np.asarray(task_names)
        if task_names.shape != (self.n_tasks,):
            raise ValueError(
                f"task_names must have {self.n_tasks} entries, one per task; got shape "
                f"{task_names.shape}."
            )
        self.task_names = task_names
        self.title = title

    def _colors(self, cmap):
        """RGBA colour of each category."""
        from matplotlib.colors import to_rgba

        if cmap is None:
            colors = {key: to_rgba(value) for key, value in _DEFAULT_COLORS.items()}
        else:
            from matplotlib import colormaps

            colormap = colormaps[cmap] if isinstance(cmap, str) else cmap
            colors = {key: tuple(colormap(value)) for key, value in
                      zip(("shared", "subset", "single"), (0.15, 0.5, 0.85), strict=True)}
        colors["unused"] = to_rgba(_UNUSED_COLOR)
        colors["more"] = to_rgba(_MORE_COLOR)
        return colors

    def _rows(self, max_rows):
        """Labels, cells and categories of the rows drawn (the overflow merged into one)."""
        shown = self.blocks
        hidden = []
        if len(self.blocks) > max_rows:
            shown, hidden = self.blocks[: max_rows - 1], self.blocks[max_rows - 1:]
        labels = [f"{_short_name(name)} ({count})" for name, count, _ in shown]
        cells = np.zeros((len(shown) + bool(hidden), self.n_tasks), dtype=bool)
        categories = []
        for row, (_, _, tasks) in enumerate(shown):
            cells[row, sorted(tasks)] = True
            categories.append(_category(tasks, self.n_tasks))
        if hidden:
            labels.append(f"... {len(hidden)} more rows")
            cells[-1, sorted(set().union(*(tasks for _, _, tasks in hidden)))] = True
            categories.append("more")
        return labels, cells, categories

    def plot(self, ax=None, *, cmap=None, max_rows=40):
        """Draw the grid.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; None creates a figure sized to the grid.
        cmap : str or matplotlib Colormap, default=None
            The colours of the rows serving all tasks, some tasks and one task are taken from
            it (at 0.15, 0.5 and 0.85); None uses the colour cycle (``C0``, ``C2``, ``C1``).
            Unused rows are light grey.
        max_rows : int, default=40
            Most rows drawn. With more blocks, the first ``max_rows - 1`` are drawn and the
            others are merged into a last row ``"... n more rows"``, whose cells (dark grey)
            mark the tasks any of them serves.

        Returns
        -------
        display : SharingDisplay
            The display, with ``cells_``, ``row_labels_``, ``categories_``, ``image_``,
            ``legend_``, ``ax_`` and ``figure_``.
        """
        if isinstance(max_rows, bool) or not isinstance(max_rows, numbers.Integral) or (
            max_rows < 1
        ):
            raise ValueError(f"max_rows must be a positive integer, got {max_rows!r}.")
        plt = _pyplot("SharingDisplay.plot")  # imports matplotlib, or explains
        from matplotlib.colors import to_rgba
        from matplotlib.patches import Patch

        labels, cells, categories = self._rows(max_rows)
        n_rows = len(labels)
        if ax is None:
            figure, ax = plt.subplots(
                figsize=(4.0 + 0.45 * self.n_tasks, 1.2 + 0.25 * max(n_rows, 4))
            )
        else:
            figure = ax.figure
        colors = self._colors(cmap)
        empty = np.array(to_rgba(_EMPTY_COLOR))
        image = np.tile(empty, (max(n_rows, 1), self.n_tasks, 1))
        for row, category in enumerate(categories):
            if category == "unused":
                image[row, :] = colors["unused"]
            else:
                image[row, cells[row]] = colors[category]
        self.image_ = ax.imshow(image[:n_rows] if n_rows else image, aspect="auto",
                                interpolation="nearest")
        # white lines between the cells
        ax.set_xticks(np.arange(self.n_tasks + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(n_rows + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="white", linewidth=1.5)
        ax.tick_params(which="minor", length=0)
        names = _task_labels(self.task_names)
        ax.set_xticks(np.arange(self.n_tasks), names,
                      rotation=90 if self.n_tasks > 6 else 0)
        ax.set_yticks(np.arange(n_rows), labels, fontsize="small")
        ax.xaxis.tick_top()
        ax.set_xlabel("task")
        ax.xaxis.set_label_position("top")
        for side in ax.spines.values():
            side.set_visible(False)
        present = [key for key in (*_CATEGORIES, "more") if key in categories]
        handles = [Patch(facecolor=colors[key], label=_LEGEND[key]) for key in present]
        self.legend_ = ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                                 fontsize="small", frameon=False) if handles else None
        if self.title is not None:
            ax.set_title(self.title)
        self.cells_, self.row_labels_, self.categories_ = cells, labels, categories
        self.ax_, self.figure_ = ax, figure
        return self

    @classmethod
    def from_module(cls, module, *, task_names=None, title=None, ax=None, n_samples=16,
                    random_state=0, **plot_kw):
        """Compute the sharing map of a multi-task module and draw it.

        Calls :func:`~skmtl.deep._sharing_map.sharing_map` (``T`` backward passes per random
        batch: fine for a diagram, not meant for training loops), then :meth:`plot`.

        Parameters
        ----------
        module : skmtl.deep.modules.MultiTaskModule
            The network, e.g. from :func:`~skmtl.deep.modules.build_module`.
        task_names : array-like of shape (n_tasks,), default=None
            Column labels; None uses ``0 .. n_tasks - 1``.
        title : str, default=None
            Title; None uses the module's class name.
        ax : matplotlib Axes, default=None
            Axes to draw on; None creates a figure.
        n_samples, random_state
            As in :func:`~skmtl.deep._sharing_map.sharing_map`.
        **plot_kw
            ``cmap`` and ``max_rows`` of :meth:`plot`.

        Returns
        -------
        display : SharingDisplay
        """
        from skmtl.deep._sharing_map import sharing_map  # torch, only when used

        result = sharing_map(module, n_samples=n_samples, random_state=random_state)
        display = cls(result.blocks, result.n_tasks, task_names=task_names,
                      title=result.sharing if title is None else title)
        return display.plot(ax=ax, **plot_kw)

    @classmethod
    def from_estimator(cls, estimator, *, ax=None, **plot_kw):
        """Draw the sharing map of a fitted deep multi-task estimator's network.

        The columns are named by the estimator's ``tasks_`` and the title gives its
        ``sharing``.

        Parameters
        ----------
        estimator : estimator object
            A fitted :class:`~skmtl.deep.MultiTaskRegressor` /
            :class:`~skmtl.deep.MultiTaskClassifier` (its network is ``net_.module_``), or a
            Pipeline / search ending in one.
        ax : matplotlib Axes, default=None
            Axes to draw on; None creates a figure.
        **plot_kw
            ``cmap`` and ``max_rows`` of :meth:`plot`, ``n_samples`` and ``random_state`` of
            :meth:`from_module`.

        Returns
        -------
        display : SharingDisplay

        Raises
        ------
        ValueError
            If the estimator has no fitted network (``net_``): not fitted, or not a deep
            multi-task estimator.
        """
        from skmtl.metrics._scorer import _final_step_attr

        net = _final_step_attr(estimator, "net_")
        module = getattr(net, "module_", None)
        if module is None:
            raise ValueError(
                f"{type(estimator).__name__} has no fitted network (net_.module_): the sharing "
                "map is drawn from a fitted deep multi-task estimator (MultiTaskRegressor / "
                "MultiTaskClassifier, or a Pipeline ending in one). For a module, use "
                "SharingDisplay.from_module."
            )
        sharing = _final_step_attr(estimator, "sharing")
        title = f"sharing={sharing!r}" if sharing is not None else None
        return cls.from_module(module, task_names=_final_step_attr(estimator, "tasks_"),
                               title=title, ax=ax, **plot_kw)
