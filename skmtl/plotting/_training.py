"""Per-task training curves of a deep multi-task model, with its task weights."""

import numpy as np

from skmtl.plotting._base import _pyplot, _task_labels

__all__ = ["TrainingCurvesDisplay"]


def _history_column(history, key):
    """One value per epoch of a skorch History (NaN where the key is missing)."""
    return np.array([row.get(key, np.nan) for row in history], dtype=np.float64)


class TrainingCurvesDisplay:
    """Per-task loss per epoch (training, and validation if any) and the task weights.

    The first axes shows each task's unweighted mean loss per epoch, training as solid lines
    and validation as dashed lines of the same colour; the second axes shows the weight of
    each task in the training objective per epoch (``task_weights_history_``), which moves
    under adaptive weightings (GradNorm, uncertainty, DWA, ...) and stays flat under
    ``"equal"``.

    Parameters
    ----------
    epochs : array-like of shape (n_epochs,)
        Epoch numbers (x axis).
    train_losses : array-like of shape (n_epochs, n_tasks)
        Training loss of each task per epoch.
    valid_losses : array-like of shape (n_epochs, n_tasks), default=None
        Validation loss of each task per epoch.
    task_weights : array-like of shape (n_epochs, n_tasks), default=None
        Weight of each task per epoch; None draws no second axes.
    task_names : array-like of shape (n_tasks,), default=None
        Legend labels; None uses ``0 .. n_tasks - 1``.

    Attributes
    ----------
    train_lines_ : list of matplotlib.lines.Line2D
        One training curve per task.
    valid_lines_ : list of matplotlib.lines.Line2D or None
        One validation curve per task, when there are validation losses.
    weight_lines_ : list of matplotlib.lines.Line2D or None
        One task-weight curve per task, when there are task weights.
    ax_ : matplotlib.axes.Axes
        The axes of the losses.
    weights_ax_ : matplotlib.axes.Axes or None
        The axes of the task weights.
    figure_ : matplotlib.figure.Figure
        The figure.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skmtl.plotting import TrainingCurvesDisplay
    >>> display = TrainingCurvesDisplay(
    ...     [1, 2, 3], [[1.0, 2.0], [0.5, 1.5], [0.4, 1.2]],
    ...     task_weights=[[1.0, 1.0], [0.8, 1.2], [0.7, 1.3]], task_names=["a", "b"]).plot()
    >>> display.train_lines_[1].get_ydata().tolist()
    [2.0, 1.5, 1.2]
    >>> display.weights_ax_.get_ylabel()
    'task weight'
    """

    def __init__(self, epochs, train_losses, *, valid_losses=None, task_weights=None,
                 task_names=None):
        self.epochs = np.asarray(epochs)
        self.train_losses = self._check(train_losses, "train_losses")
        n_tasks = self.train_losses.shape[1]
        self.valid_losses = None if valid_losses is None else self._check(
            valid_losses, "valid_losses", n_tasks)
        self.task_weights = None if task_weights is None else self._check(
            task_weights, "task_weights", n_tasks)
        self.task_names = np.arange(n_tasks) if task_names is None else np.asarray(task_names)
        if self.task_names.shape != (n_tasks,):
            raise ValueError(f"task_names must have {n_tasks} entries; got "
                             f"{self.task_names.shape}.")

    def _check(self, values, name, n_tasks=None):
        values = np.asarray(values, dtype=np.float64)
        n_epochs = self.epochs.shape[0]
        if values.ndim != 2 or values.shape[0] != n_epochs or (
                n_tasks is not None and values.shape[1] != n_tasks):
            expected = f"({n_epochs}, {'n_tasks' if n_tasks is None else n_tasks})"
            raise ValueError(f"{name} must have shape {expected} (epochs, tasks); got "
                             f"{values.shape}.")
        return values

    def plot(self, ax=None, *, log_scale=False):
        """Draw the curves.

        Parameters
        ----------
        ax : matplotlib Axes or sequence of two Axes, default=None
            Where to draw: the losses' axes, or (losses' axes, weights' axes). None creates a
            figure with one row of two axes (one axes without task weights). Given a single
            Axes, only the losses are drawn; pass two Axes to draw the task weights too.
        log_scale : bool, default=False
            Whether the loss axis is logarithmic.

        Returns
        -------
        display : TrainingCurvesDisplay
            The display, with the lines, ``ax_``, ``weights_ax_`` and ``figure_``.
        """
        plt = _pyplot("TrainingCurvesDisplay.plot")
        with_weights = self.task_weights is not None
        if ax is None:
            figure, axes = plt.subplots(1, 2 if with_weights else 1,
                                        figsize=(10 if with_weights else 5, 4), squeeze=False)
            loss_ax = axes[0, 0]
            weights_ax = axes[0, 1] if with_weights else None
        elif np.iterable(ax):
            loss_ax, weights_ax = ax
            figure = loss_ax.figure
        else:
            loss_ax, weights_ax, figure = ax, None, ax.figure
        names = _task_labels(self.task_names)
        colors = [f"C{t % 10}" for t in range(len(names))]
        self.train_lines_ = [
            loss_ax.plot(self.epochs, self.train_losses[:, t], color=colors[t], label=name)[0]
            for t, name in enumerate(names)
        ]
        handles = list(self.train_lines_)
        self.valid_lines_ = None
        if self.valid_losses is not None:
            from matplotlib.lines import Line2D

            self.valid_lines_ = [
                loss_ax.plot(self.epochs, self.valid_losses[:, t], color=colors[t],
                             linestyle="--")[0]
                for t in range(len(names))
            ]
            # one entry per task (colour), one per phase (line style)
            handles += [Line2D([], [], color="black", label="train"),
                        Line2D([], [], color="black", linestyle="--", label="valid")]
        if log_scale:
            loss_ax.set_yscale("log")
        loss_ax.set_xlabel("epoch")
        loss_ax.set_ylabel("task loss")
        loss_ax.legend(handles=handles, fontsize="small")
        self.weight_lines_ = None
        if with_weights and weights_ax is not None:
            self.weight_lines_ = [
                weights_ax.plot(self.epochs, self.task_weights[:, t], color=colors[t],
                                label=name)[0]
                for t, name in enumerate(names)
            ]
            weights_ax.set_xlabel("epoch")
            weights_ax.set_ylabel("task weight")
            weights_ax.legend(fontsize="small")
        self.ax_, self.weights_ax_, self.figure_ = loss_ax, weights_ax, figure
        return self

    @classmethod
    def from_estimator(cls, estimator, *, ax=None, log_scale=False):
        """Plot the training history of a fitted deep estimator.

        Reads ``net_.history`` (``train_loss_task_<t>`` and, with a validation split,
        ``valid_loss_task_<t>`` per epoch) and ``task_weights_history_``.

        Parameters
        ----------
        estimator : estimator object
            A fitted :class:`~skmtl.deep.MultiTaskRegressor` /
            :class:`~skmtl.deep.MultiTaskClassifier`, or a Pipeline ending in one.
        ax : matplotlib Axes or sequence of two Axes, default=None
            As in :meth:`plot`.
        log_scale : bool, default=False
            Whether the loss axis is logarithmic.

        Returns
        -------
        display : TrainingCurvesDisplay
        """
        from skmtl.metrics._scorer import _final_step_attr

        net = _final_step_attr(estimator, "net_")
        if net is None:
            raise ValueError(
                f"{type(estimator).__name__} has no net_: pass a fitted deep multi-task "
                "estimator (MultiTaskRegressor / MultiTaskClassifier)."
            )
        tasks = _final_step_attr(estimator, "tasks_")
        history = [row for row in net.history if "train_loss_task_0" in row]
        epochs = _history_column(history, "epoch")
        train = np.column_stack([_history_column(history, f"train_loss_task_{t}")
                                 for t in range(len(tasks))])
        valid = None
        if history and "valid_loss_task_0" in history[-1]:
            valid = np.column_stack([_history_column(history, f"valid_loss_task_{t}")
                                     for t in range(len(tasks))])
        weights = _final_step_attr(estimator, "task_weights_history_")
        if weights is not None and len(weights) != len(epochs):
            weights = None
        display = cls(epochs, train, valid_losses=valid, task_weights=weights, task_names=tasks)
        return display.plot(ax=ax, log_scale=log_scale)
