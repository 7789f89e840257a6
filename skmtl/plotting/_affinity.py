"""A task x task matrix as a heatmap, tasks ordered by hierarchical clustering."""

from functools import cached_property

import numpy as np
from scipy.cluster.hierarchy import leaves_list, linkage
from sklearn.exceptions import NotFittedError

from skmtl.plotting._base import _axes, _task_labels

__all__ = ["AffinityDisplay"]


def cluster_order(matrix):
    """Order of the tasks along the leaves of a hierarchical clustering of the matrix.

    Each task is described by its profile, its row and its column of ``matrix`` (what it
    receives from and gives to every task), with the diagonal and NaN entries set to 0. The
    profiles are clustered by average linkage on Euclidean distances, with the optimal leaf
    ordering of :func:`scipy.cluster.hierarchy.linkage` (neighbouring leaves are as close as
    possible); the order is that of the leaves.

    Parameters
    ----------
    matrix : ndarray of shape (n_tasks, n_tasks)
        A square matrix, e.g. a gradient affinity or a pairwise transfer matrix.

    Returns
    -------
    order : ndarray of shape (n_tasks,)
        A permutation of ``range(n_tasks)``; the identity for fewer than 3 tasks.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.plotting._affinity import cluster_order
    >>> M = np.array([[1.0, -0.5, 0.8, -0.6], [-0.5, 1.0, -0.4, 0.9],
    ...               [0.8, -0.4, 1.0, -0.5], [-0.6, 0.9, -0.5, 1.0]])
    >>> cluster_order(M).tolist()  # two groups, {0, 2} and {1, 3}, each side by side
    [0, 2, 1, 3]
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    n = matrix.shape[0]
    if n < 3:
        return np.arange(n)
    values = np.nan_to_num(matrix, nan=0.0, posinf=0.0, neginf=0.0)
    np.fill_diagonal(values, 0.0)
    profiles = np.hstack([values, values.T])
    tree = linkage(profiles, method="average", metric="euclidean", optimal_ordering=True)
    return leaves_list(tree)


class AffinityDisplay:
    """Heatmap of a task x task matrix, tasks ordered by hierarchical clustering.

    Shows a fitted deep model's ``gradient_affinity_`` (:meth:`from_estimator`: the mean cosine
    of the tasks' gradients on the shared representation) or a
    :func:`~skmtl.model_selection.pairwise_transfer` matrix (:meth:`from_report`: row ``i``,
    column ``j`` is the gain of task ``i`` from being trained with task ``j``). Rows and columns
    are both permuted by :func:`cluster_order`, so that tasks that help (or hurt) the same
    tasks sit together. The colour scale is centred on 0.

    Parameters
    ----------
    matrix : array-like of shape (n_tasks, n_tasks)
        The matrix, in the tasks' original order.
    task_names : array-like of shape (n_tasks,), default=None
        Tick labels; None uses ``0 .. n_tasks - 1``.
    colorbar_label : str, default=None
        Label of the colour bar.
    xlabel, ylabel : str, default="task"
        Axis labels.

    Attributes
    ----------
    order_ : ndarray of shape (n_tasks,)
        The order of the tasks in the plot (positions in ``matrix``).
    im_ : matplotlib.image.AxesImage
        The heatmap; its array is ``matrix[order_][:, order_]``.
    text_ : ndarray of matplotlib Text, shape (n_tasks, n_tasks), or None
        The printed values, when ``include_values=True``.
    colorbar_ : matplotlib.colorbar.Colorbar or None
        The colour bar, when ``colorbar=True``.
    ax_ : matplotlib.axes.Axes
        The axes drawn on.
    figure_ : matplotlib.figure.Figure
        The figure of ``ax_``.

    See Also
    --------
    skmtl.model_selection.pairwise_transfer : The pairwise gain matrix.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skmtl.plotting import AffinityDisplay
    >>> M = np.array([[1.0, -0.5, 0.8, -0.6], [-0.5, 1.0, -0.4, 0.9],
    ...               [0.8, -0.4, 1.0, -0.5], [-0.6, 0.9, -0.5, 1.0]])
    >>> display = AffinityDisplay(M, task_names=["a", "b", "c", "d"]).plot()
    >>> [label.get_text() for label in display.ax_.get_xticklabels()]
    ['a', 'c', 'b', 'd']
    """

    def __init__(self, matrix, *, task_names=None, colorbar_label=None, xlabel="task",
                 ylabel="task"):
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"matrix must be square (n_tasks, n_tasks); got {matrix.shape}.")
        self.matrix = matrix
        n = matrix.shape[0]
        self.task_names = np.arange(n) if task_names is None else np.asarray(task_names)
        if self.task_names.shape != (n,):
            raise ValueError(
                f"task_names must have {n} entries, one per task; got {self.task_names.shape}."
            )
        self.colorbar_label = colorbar_label
        self.xlabel = xlabel
        self.ylabel = ylabel

    def plot(self, ax=None, *, cluster=True, cmap="RdBu_r", vmax=None, colorbar=True,
             include_values=True, values_format=".2f", xticks_rotation="vertical",
             im_kw=None):
        """Draw the heatmap.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; None creates a figure.
        cluster : bool, default=True
            Order the tasks by :func:`cluster_order`; False keeps the matrix order.
        cmap : str or matplotlib Colormap, default="RdBu_r"
            A diverging colour map: 0 is its centre.
        vmax : float, default=None
            The colour scale spans ``[-vmax, vmax]``; None: the largest absolute finite entry
            off the diagonal (1 if there is none).
        colorbar : bool, default=True
            Whether to draw a colour bar.
        include_values : bool, default=True
            Whether to print each entry in its cell.
        values_format : str, default=".2f"
            Format of the printed entries.
        xticks_rotation : {"vertical", "horizontal"} or float, default="vertical"
            Rotation of the column labels.
        im_kw : dict, default=None
            Extra keyword arguments of :meth:`matplotlib.axes.Axes.imshow`.

        Returns
        -------
        display : AffinityDisplay
            The display, with ``order_``, ``im_``, ``text_``, ``colorbar_``, ``ax_`` and
            ``figure_``.
        """
        figure, ax = _axes(ax, "AffinityDisplay.plot")
        n = self.matrix.shape[0]
        self.order_ = cluster_order(self.matrix) if cluster else np.arange(n)
        shown = self.matrix[np.ix_(self.order_, self.order_)]
        if vmax is None:
            off = shown[~np.eye(n, dtype=bool) & np.isfinite(shown)]
            vmax = float(np.abs(off).max()) if off.size and np.abs(off).max() > 0 else 1.0
        kw = {"cmap": cmap, "vmin": -vmax, "vmax": vmax, "interpolation": "nearest",
              **(im_kw or {})}
        self.im_ = ax.imshow(shown, **kw)
        self.text_ = None
        if include_values:
            self.text_ = np.empty((n, n), dtype=object)
            for i in range(n):
                for j in range(n):
                    strong = np.isfinite(shown[i, j]) and abs(shown[i, j]) > 0.6 * vmax
                    self.text_[i, j] = ax.text(
                        j, i, format(shown[i, j], values_format), ha="center", va="center",
                        color="white" if strong else "black", fontsize="small")
        self.colorbar_ = None
        if colorbar:
            self.colorbar_ = figure.colorbar(self.im_, ax=ax)
            if self.colorbar_label:
                self.colorbar_.set_label(self.colorbar_label)
        labels = _task_labels(self.task_names[self.order_])
        ax.set_xticks(np.arange(n), labels, rotation=xticks_rotation)
        ax.set_yticks(np.arange(n), labels)
        ax.set_xlabel(self.xlabel)
        ax.set_ylabel(self.ylabel)
        self.ax_, self.figure_ = ax, figure
        return self

    @classmethod
    def from_estimator(cls, estimator, *, ax=None, cluster=True, cmap="RdBu_r", colorbar=True,
                       include_values=True, values_format=".2f", xticks_rotation="vertical",
                       im_kw=None):
        """Plot a fitted deep estimator's ``gradient_affinity_`` (or the ``task_correlation_``
        of a :class:`~skmtl.linear.TaskRelationRegressor` / ``TaskRelationClassifier``).

        The colour scale spans ``[-1, 1]`` (cosines, correlations). Strategies without a shared
        representation have NaN off the diagonal (blank cells).

        Parameters
        ----------
        estimator : estimator object
            A fitted :class:`~skmtl.deep.MultiTaskRegressor` /
            :class:`~skmtl.deep.MultiTaskClassifier` / :class:`~skmtl.linear.TaskRelationRegressor`
            / ``TaskRelationClassifier``, or a Pipeline ending in one.
        ax : matplotlib Axes, default=None
            Axes to draw on; None creates a figure.
        cluster, cmap, colorbar, include_values, values_format, xticks_rotation, im_kw
            As in :meth:`plot`.

        Returns
        -------
        display : AffinityDisplay

        Raises
        ------
        NotFittedError
            If the estimator (or the Pipeline's last step) is one of these, not fitted.
        ValueError
            If it is another estimator, which has no such matrix.
        """
        from skmtl.metrics._scorer import _final_step, _final_step_attr

        affinity = _final_step_attr(estimator, "gradient_affinity_")
        label = "gradient cosine similarity"
        if affinity is None:  # a linear model that learns the tasks' correlation
            affinity = _final_step_attr(estimator, "task_correlation_")
            label = "learned task correlation"
        if affinity is None:
            final = _final_step(estimator)
            if any(isinstance(getattr(type(final), name, None), (property, cached_property))
                   for name in ("gradient_affinity_", "task_correlation_")):
                # a class that has the matrix, not fitted yet (the property raised)
                raise NotFittedError(
                    f"This {type(final).__name__} instance is not fitted yet: call fit before "
                    "AffinityDisplay.from_estimator.")
            raise ValueError(
                f"{type(estimator).__name__} has no gradient_affinity_ or task_correlation_: "
                "pass a fitted deep multi-task estimator (MultiTaskRegressor / "
                "MultiTaskClassifier) or TaskRelationRegressor / TaskRelationClassifier, or "
                "use AffinityDisplay.from_matrix."
            )
        display = cls(affinity, task_names=_final_step_attr(estimator, "tasks_"),
                      colorbar_label=label)
        return display.plot(ax=ax, cluster=cluster, cmap=cmap, vmax=1.0, colorbar=colorbar,
                            include_values=include_values, values_format=values_format,
                            xticks_rotation=xticks_rotation, im_kw=im_kw)

    @classmethod
    def from_matrix(cls, matrix, *, task_names=None, colorbar_label=None, xlabel="task",
                    ylabel="task", ax=None, cluster=True, cmap="RdBu_r", vmax=None,
                    colorbar=True, include_values=True, values_format=".2f",
                    xticks_rotation="vertical", im_kw=None):
        """Plot any task x task matrix.

        Parameters
        ----------
        matrix : array-like or pandas.DataFrame of shape (n_tasks, n_tasks)
            The matrix; a DataFrame's index gives the task names.
        task_names : array-like of shape (n_tasks,), default=None
            Tick labels; None uses the DataFrame index, or ``0 .. n_tasks - 1``.
        colorbar_label, xlabel, ylabel
            As in the constructor.
        ax : matplotlib Axes, default=None
            Axes to draw on; None creates a figure.
        cluster, cmap, vmax, colorbar, include_values, values_format, xticks_rotation, im_kw
            As in :meth:`plot`.

        Returns
        -------
        display : AffinityDisplay
        """
        if task_names is None and hasattr(matrix, "index"):
            task_names = np.asarray(matrix.index)
        display = cls(np.asarray(matrix, dtype=np.float64), task_names=task_names,
                      colorbar_label=colorbar_label, xlabel=xlabel, ylabel=ylabel)
        return display.plot(ax=ax, cluster=cluster, cmap=cmap, vmax=vmax, colorbar=colorbar,
                            include_values=include_values, values_format=values_format,
                            xticks_rotation=xticks_rotation, im_kw=im_kw)

    @classmethod
    def from_report(cls, report, *, task_names=None, ax=None, cluster=True, cmap="RdBu_r",
                    vmax=None, colorbar=True, include_values=True, values_format=".2f",
                    xticks_rotation="vertical", im_kw=None):
        """Plot a :func:`~skmtl.model_selection.pairwise_transfer` matrix.

        Rows are the task scored, columns the task it was trained with; red cells (positive)
        are help, blue cells (negative) harm.

        Parameters
        ----------
        report : pandas.DataFrame or ndarray of shape (n_tasks, n_tasks)
            The pairwise transfer matrix.
        task_names : array-like of shape (n_tasks,), default=None
            Tick labels; None uses the DataFrame index, or ``0 .. n_tasks - 1``.
        ax : matplotlib Axes, default=None
            Axes to draw on; None creates a figure.
        cluster, cmap, vmax, colorbar, include_values, values_format, xticks_rotation, im_kw
            As in :meth:`plot`.

        Returns
        -------
        display : AffinityDisplay

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from sklearn.linear_model import Ridge
        >>> from skmtl import PooledTasks
        >>> from skmtl.datasets import make_multitask_regression
        >>> from skmtl.model_selection import pairwise_transfer
        >>> from skmtl.plotting import AffinityDisplay
        >>> X, Y = make_multitask_regression(n_samples=60, n_features=5, n_tasks=3,
        ...                                  n_conflicting=1, random_state=0)
        >>> display = AffinityDisplay.from_report(pairwise_transfer(PooledTasks(Ridge()), X, Y))
        >>> display.im_.get_array().shape
        (3, 3)
        """
        return cls.from_matrix(
            report, task_names=task_names, colorbar_label="gain of the row task",
            xlabel="trained with task", ylabel="task scored", ax=ax, cluster=cluster, cmap=cmap,
            vmax=vmax, colorbar=colorbar, include_values=include_values,
            values_format=values_format, xticks_rotation=xticks_rotation, im_kw=im_kw)
