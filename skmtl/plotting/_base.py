"""Helpers shared by the Displays: lazy matplotlib, axes, report columns."""

import importlib

import numpy as np

from skmtl.utils._optional import import_optional


def _pyplot(what):
    """matplotlib.pyplot, or an ImportError naming the ``plot`` extra."""
    import_optional("matplotlib", "plot", what)
    return importlib.import_module("matplotlib.pyplot")


def _axes(ax, what):
    """``(figure, ax)``: a new figure and axes when ``ax`` is None."""
    plt = _pyplot(what)
    if ax is None:
        figure, ax = plt.subplots()
        return figure, ax
    return ax.figure, ax


def _task_labels(tasks):
    return [str(t.item() if isinstance(t, np.generic) else t) for t in tasks]


def _report_columns(report):
    """Tasks, gains, standard errors and flags of a transfer_report result, as ndarrays."""
    try:
        columns = {name: np.asarray(report[name]) for name in
                   ("task", "gain", "gain_se", "negative_transfer")}
    except (KeyError, ValueError, IndexError, TypeError) as exc:  # (TypeError: a string)
        raise ValueError(
            "report must be a result of skmtl.model_selection.transfer_report (a DataFrame or "
            "structured array with fields task, gain, gain_se and negative_transfer); "
            f"reading it failed: {exc!r}"
        ) from None
    columns["gain"] = columns["gain"].astype(np.float64)
    columns["gain_se"] = columns["gain_se"].astype(np.float64)
    columns["negative_transfer"] = columns["negative_transfer"].astype(bool)
    attrs = getattr(report, "attrs", None) or {}
    columns["scoring"] = attrs.get("scoring")
    return columns


def _gain_label(scoring):
    return "gain over single-task" + (f" ({scoring})" if scoring else "")
