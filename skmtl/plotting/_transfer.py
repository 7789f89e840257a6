"""Per-task gain over single-task learning: one model (TransferDisplay) or several."""

import numpy as np

from skmtl.plotting._base import _axes, _gain_label, _report_columns, _task_labels

__all__ = ["StrategyComparisonDisplay", "TransferDisplay"]


def _as_1d(values, n, name, dtype):
    values = np.asarray(values, dtype=dtype)
    if values.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one value per task; got {values.shape}.")
    return values


class TransferDisplay:
    """Per-task gain over single-task learning: bars with standard-error whiskers.

    Bars of tasks with negative transfer (gain below minus its standard error) are drawn in
    another colour. Build it with :meth:`from_report` (a
    :func:`~skmtl.model_selection.transfer_report` result) or :meth:`from_estimator` (which
    runs the report); all parameters are stored as attributes.

    Parameters
    ----------
    tasks : array-like of shape (n_tasks,)
        Task labels, shown as tick labels.
    gain : array-like of shape (n_tasks,)
        The gain of each task (bar heights).
    gain_se : array-like of shape (n_tasks,), default=None
        Standard errors of the gains (whiskers of +- one standard error); None draws none.
    negative_transfer : array-like of bool, shape (n_tasks,), default=None
        Which bars to colour as negative transfer; None: ``gain < -gain_se`` (no bar without
        ``gain_se``).
    scoring : str, default=None
        Name of the score, for the y-axis label.

    Attributes
    ----------
    bars_ : matplotlib.container.BarContainer
        The bars, one per task.
    errorbar_ : matplotlib.container.ErrorbarContainer or None
        The whiskers (None without ``gain_se``).
    ax_ : matplotlib.axes.Axes
        The axes drawn on.
    figure_ : matplotlib.figure.Figure
        The figure of ``ax_``.

    See Also
    --------
    skmtl.model_selection.transfer_report : The numbers behind the plot.
    StrategyComparisonDisplay : The gains of several models side by side.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skmtl.plotting import TransferDisplay
    >>> display = TransferDisplay(["a", "b"], gain=[0.1, -0.3], gain_se=[0.05, 0.1]).plot()
    >>> [float(bar.get_height()) for bar in display.bars_]
    [0.1, -0.3]
    >>> display.negative_transfer.tolist()
    [False, True]
    """

    def __init__(self, tasks, gain, *, gain_se=None, negative_transfer=None, scoring=None):
        self.tasks = np.asarray(tasks)
        n = self.tasks.shape[0]
        self.gain = _as_1d(gain, n, "gain", np.float64)
        self.gain_se = None if gain_se is None else _as_1d(gain_se, n, "gain_se", np.float64)
        if negative_transfer is None:
            negative_transfer = (np.zeros(n, dtype=bool) if self.gain_se is None
                                 else self.gain < -self.gain_se)
        self.negative_transfer = _as_1d(negative_transfer, n, "negative_transfer", bool)
        self.scoring = scoring

    def plot(self, ax=None, *, color="tab:blue", negative_color="tab:red",
             xticks_rotation="horizontal", bar_kw=None):
        """Draw the bars.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; None creates a figure.
        color : color, default="tab:blue"
            Colour of the bars without negative transfer.
        negative_color : color, default="tab:red"
            Colour of the bars with negative transfer.
        xticks_rotation : {"horizontal", "vertical"} or float, default="horizontal"
            Rotation of the task labels.
        bar_kw : dict, default=None
            Extra keyword arguments of :meth:`matplotlib.axes.Axes.bar`.

        Returns
        -------
        display : TransferDisplay
            The display, with ``bars_``, ``errorbar_``, ``ax_`` and ``figure_``.
        """
        figure, ax = _axes(ax, "TransferDisplay.plot")
        from matplotlib.patches import Patch

        positions = np.arange(self.tasks.shape[0])
        colors = [negative_color if neg else color for neg in self.negative_transfer]
        kw = {"capsize": 3, **(bar_kw or {})}
        self.bars_ = ax.bar(positions, self.gain, yerr=self.gain_se, color=colors, **kw)
        self.errorbar_ = self.bars_.errorbar
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xticks(positions, _task_labels(self.tasks), rotation=xticks_rotation)
        ax.set_xlabel("task")
        ax.set_ylabel(_gain_label(self.scoring))
        handles = [Patch(color=color, label="no negative transfer"),
                   Patch(color=negative_color, label="negative transfer (gain < -SE)")]
        ax.legend(handles=handles)
        self.ax_, self.figure_ = ax, figure
        return self

    @classmethod
    def from_report(cls, report, *, ax=None, color="tab:blue", negative_color="tab:red",
                    xticks_rotation="horizontal", bar_kw=None):
        """Plot a :func:`~skmtl.model_selection.transfer_report` result.

        Parameters
        ----------
        report : pandas.DataFrame or numpy structured array
            A transfer report (fields ``task``, ``gain``, ``gain_se``,
            ``negative_transfer``); its ``attrs["scoring"]`` labels the y axis.
        ax : matplotlib Axes, default=None
            Axes to draw on; None creates a figure.
        color, negative_color, xticks_rotation, bar_kw
            As in :meth:`plot`.

        Returns
        -------
        display : TransferDisplay

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from sklearn.linear_model import Ridge
        >>> from skmtl import PooledTasks
        >>> from skmtl.datasets import make_multitask_regression
        >>> from skmtl.model_selection import transfer_report
        >>> from skmtl.plotting import TransferDisplay
        >>> X, Y = make_multitask_regression(n_samples=60, n_features=5, n_tasks=3,
        ...                                  n_conflicting=1, random_state=0)
        >>> report = transfer_report(PooledTasks(Ridge()), X, Y, cv=3)
        >>> display = TransferDisplay.from_report(report)
        >>> display.ax_.get_ylabel()
        'gain over single-task (r2)'
        """
        columns = _report_columns(report)
        display = cls(columns["task"], columns["gain"], gain_se=columns["gain_se"],
                      negative_transfer=columns["negative_transfer"],
                      scoring=columns["scoring"])
        return display.plot(ax=ax, color=color, negative_color=negative_color,
                            xticks_rotation=xticks_rotation, bar_kw=bar_kw)

    @classmethod
    def from_estimator(cls, estimator, X, Y, *, reference=None, cv=5, scoring=None,
                       n_jobs=None, task_ids=None, groups=None, ax=None, color="tab:blue",
                       negative_color="tab:red", xticks_rotation="horizontal", bar_kw=None):
        """Run :func:`~skmtl.model_selection.transfer_report` and plot it.

        Parameters
        ----------
        estimator : estimator object
            The multi-task estimator (unfitted; it is cross-validated).
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Features.
        Y : array-like of shape (n_samples, n_tasks) or (n_samples,)
            Targets in any format of the data contract.
        reference, cv, scoring, n_jobs, task_ids, groups
            As in :func:`~skmtl.model_selection.transfer_report`.
        ax : matplotlib Axes, default=None
            Axes to draw on; None creates a figure.
        color, negative_color, xticks_rotation, bar_kw
            As in :meth:`plot`.

        Returns
        -------
        display : TransferDisplay
        """
        from skmtl.model_selection import transfer_report

        report = transfer_report(estimator, X, Y, reference=reference, cv=cv, scoring=scoring,
                                 n_jobs=n_jobs, task_ids=task_ids, groups=groups)
        return cls.from_report(report, ax=ax, color=color, negative_color=negative_color,
                               xticks_rotation=xticks_rotation, bar_kw=bar_kw)


class StrategyComparisonDisplay:
    """Per-task gain over single-task learning of several models, as grouped bars.

    One group of bars per task, one bar per model (strategy), with standard-error whiskers;
    bars with negative transfer are hatched. Build it with :meth:`from_reports` (a dict of
    :func:`~skmtl.model_selection.transfer_report` results) or :meth:`from_estimators`.

    Parameters
    ----------
    tasks : array-like of shape (n_tasks,)
        Task labels.
    gains : array-like of shape (n_strategies, n_tasks)
        The gain of each model on each task.
    strategy_names : list of str
        The models' names, in the order of the rows of ``gains`` (legend entries).
    gain_se : array-like of shape (n_strategies, n_tasks), default=None
        Standard errors of the gains.
    negative_transfer : array-like of bool, shape (n_strategies, n_tasks), default=None
        Which bars to hatch; None: ``gains < -gain_se`` (none without ``gain_se``).
    scoring : str, default=None
        Name of the score, for the y-axis label.

    Attributes
    ----------
    bars_ : dict of str -> matplotlib.container.BarContainer
        The bars of each model.
    ax_ : matplotlib.axes.Axes
        The axes drawn on.
    figure_ : matplotlib.figure.Figure
        The figure of ``ax_``.

    See Also
    --------
    TransferDisplay : One model's gains.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skmtl.plotting import StrategyComparisonDisplay
    >>> display = StrategyComparisonDisplay(
    ...     ["a", "b"], [[0.1, -0.2], [0.2, 0.1]], ["pooled", "mean-clustered"],
    ...     gain_se=[[0.05, 0.05], [0.05, 0.05]]).plot()
    >>> [float(bar.get_height()) for bar in display.bars_["mean-clustered"]]
    [0.2, 0.1]
    >>> [bar.get_hatch() for bar in display.bars_["pooled"]]
    [None, '//']
    """

    def __init__(self, tasks, gains, strategy_names, *, gain_se=None, negative_transfer=None,
                 scoring=None):
        self.tasks = np.asarray(tasks)
        self.strategy_names = list(strategy_names)
        shape = (len(self.strategy_names), self.tasks.shape[0])
        self.gains = self._check(gains, shape, "gains", np.float64)
        self.gain_se = None if gain_se is None else self._check(gain_se, shape, "gain_se",
                                                                 np.float64)
        if negative_transfer is None:
            negative_transfer = (np.zeros(shape, dtype=bool) if self.gain_se is None
                                 else self.gains < -self.gain_se)
        self.negative_transfer = self._check(negative_transfer, shape, "negative_transfer", bool)
        self.scoring = scoring

    @staticmethod
    def _check(values, shape, name, dtype):
        values = np.asarray(values, dtype=dtype)
        if values.shape != shape:
            raise ValueError(
                f"{name} must have shape {shape} (one row per strategy, one column per task); "
                f"got {values.shape}."
            )
        return values

    def plot(self, ax=None, *, colors=None, negative_hatch="//", xticks_rotation="horizontal",
             bar_kw=None):
        """Draw the grouped bars.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; None creates a figure.
        colors : list of color, default=None
            One colour per strategy; None uses matplotlib's colour cycle (``C0``, ``C1``, ...).
        negative_hatch : str, default="//"
            Hatch pattern of the bars with negative transfer.
        xticks_rotation : {"horizontal", "vertical"} or float, default="horizontal"
            Rotation of the task labels.
        bar_kw : dict, default=None
            Extra keyword arguments of :meth:`matplotlib.axes.Axes.bar`.

        Returns
        -------
        display : StrategyComparisonDisplay
            The display, with ``bars_``, ``ax_`` and ``figure_``.
        """
        figure, ax = _axes(ax, "StrategyComparisonDisplay.plot")
        n_strategies, n_tasks = self.gains.shape
        if colors is None:
            colors = [f"C{s % 10}" for s in range(n_strategies)]
        width = 0.8 / n_strategies
        positions = np.arange(n_tasks)
        self.bars_ = {}
        for s, name in enumerate(self.strategy_names):
            offset = (s - (n_strategies - 1) / 2) * width
            kw = {"capsize": 2, **(bar_kw or {})}
            bars = ax.bar(positions + offset, self.gains[s], width=width, label=name,
                          color=colors[s],
                          yerr=None if self.gain_se is None else self.gain_se[s], **kw)
            for bar, negative in zip(bars, self.negative_transfer[s]):
                if negative:
                    bar.set_hatch(negative_hatch)
                    bar.set_edgecolor("black")
            self.bars_[name] = bars
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xticks(positions, _task_labels(self.tasks), rotation=xticks_rotation)
        ax.set_xlabel("task")
        ax.set_ylabel(_gain_label(self.scoring))
        ax.legend(title="hatched: gain < -SE" if self.gain_se is not None else None)
        self.ax_, self.figure_ = ax, figure
        return self

    @classmethod
    def from_reports(cls, reports, *, ax=None, colors=None, negative_hatch="//",
                     xticks_rotation="horizontal", bar_kw=None):
        """Plot several :func:`~skmtl.model_selection.transfer_report` results.

        Parameters
        ----------
        reports : dict of str -> report
            Name of each model -> its transfer report. All must cover the same tasks; they are
            aligned on the task labels of the first one.
        ax : matplotlib Axes, default=None
            Axes to draw on; None creates a figure.
        colors, negative_hatch, xticks_rotation, bar_kw
            As in :meth:`plot`.

        Returns
        -------
        display : StrategyComparisonDisplay
        """
        if not isinstance(reports, dict) or not reports:
            raise ValueError("reports must be a non-empty dict: model name -> transfer report.")
        columns = {name: _report_columns(report) for name, report in reports.items()}
        first = next(iter(columns.values()))
        tasks = first["task"]
        labels = [t.item() if isinstance(t, np.generic) else t for t in tasks]
        fields = {"gain": [], "gain_se": [], "negative_transfer": []}
        for name, col in columns.items():
            lookup = {(t.item() if isinstance(t, np.generic) else t): i
                      for i, t in enumerate(col["task"])}
            if set(lookup) != set(labels):
                raise ValueError(
                    f"The report of {name!r} covers tasks {sorted(map(str, lookup))}, not the "
                    f"tasks of the first report {sorted(map(str, labels))}."
                )
            order = [lookup[t] for t in labels]
            for field in fields:
                fields[field].append(col[field][order])
        display = cls(tasks, fields["gain"], list(reports), gain_se=fields["gain_se"],
                      negative_transfer=fields["negative_transfer"], scoring=first["scoring"])
        return display.plot(ax=ax, colors=colors, negative_hatch=negative_hatch,
                            xticks_rotation=xticks_rotation, bar_kw=bar_kw)

    @classmethod
    def from_estimators(cls, estimators, X, Y, *, reference=None, cv=5, scoring=None,
                        n_jobs=None, task_ids=None, groups=None, ax=None, colors=None,
                        negative_hatch="//",
                        xticks_rotation="horizontal", bar_kw=None):
        """Cross-validate several models on the same folds and plot their gains.

        Parameters
        ----------
        estimators : dict of str -> estimator object
            Name of each model -> the (unfitted) model.
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Features.
        Y : array-like of shape (n_samples, n_tasks) or (n_samples,)
            Targets in any format of the data contract.
        reference : estimator object, default=None
            One single-task reference for all models (fitted once per fold); None gives each
            model its default reference (see
            :func:`~skmtl.model_selection.transfer_report`).
        cv, scoring, n_jobs, task_ids, groups
            As in :func:`~skmtl.model_selection.transfer_report`; all fits (every model and
            fold) run in one parallel batch.
        ax : matplotlib Axes, default=None
            Axes to draw on; None creates a figure.
        colors, negative_hatch, xticks_rotation, bar_kw
            As in :meth:`plot`.

        Returns
        -------
        display : StrategyComparisonDisplay

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from sklearn.linear_model import Ridge
        >>> from skmtl import IndependentTasks, PooledTasks
        >>> from skmtl.datasets import make_multitask_regression
        >>> from skmtl.linear import MeanClusteredRegressor
        >>> from skmtl.plotting import StrategyComparisonDisplay
        >>> X, Y = make_multitask_regression(n_samples=60, n_features=5, n_tasks=3,
        ...                                  n_conflicting=1, random_state=0)
        >>> display = StrategyComparisonDisplay.from_estimators(
        ...     {"pooled": PooledTasks(Ridge()),
        ...      "mean-clustered": MeanClusteredRegressor(cluster_strength=5.0)},
        ...     X, Y, reference=IndependentTasks(Ridge()), cv=3)
        >>> list(display.bars_)
        ['pooled', 'mean-clustered']
        """
        from skmtl.model_selection._transfer import _transfer_reports

        if not isinstance(estimators, dict) or not estimators:
            raise ValueError("estimators must be a non-empty dict: model name -> estimator.")
        reports = _transfer_reports(estimators, X, Y, reference=reference, cv=cv,
                                    scoring=scoring, n_jobs=n_jobs, task_ids=task_ids,
                                    groups=groups)
        return cls.from_reports(reports, ax=ax, colors=colors, negative_hatch=negative_hatch,
                                xticks_rotation=xticks_rotation, bar_kw=bar_kw)

