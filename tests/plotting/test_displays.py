"""The Displays draw what they are given: bar heights, whiskers, colours, heatmaps, curves."""

import subprocess
import sys

import matplotlib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from skmtl import IndependentTasks, PooledTasks  # noqa: E402
from skmtl.datasets import make_multitask_regression  # noqa: E402
from skmtl.linear import MeanClusteredRegressor  # noqa: E402
from skmtl.model_selection import pairwise_transfer, transfer_report  # noqa: E402
from skmtl.plotting import (  # noqa: E402
    AffinityDisplay,
    StrategyComparisonDisplay,
    TrainingCurvesDisplay,
    TransferDisplay,
)
from skmtl.plotting._affinity import cluster_order  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def data():
    return make_multitask_regression(n_samples=100, n_features=50, n_informative=20, n_tasks=5,
                                     n_conflicting=1, noise=2.0, random_state=0)


@pytest.fixture(scope="module")
def report(data):
    X, Y = data
    return transfer_report(PooledTasks(Ridge()), X, Y, cv=3)


@pytest.fixture(scope="module")
def deep_model():
    pytest.importorskip("torch")
    from skmtl.deep import MultiTaskRegressor

    X, Y = make_multitask_regression(n_samples=80, n_features=4, n_informative=3, n_tasks=3,
                                     n_conflicting=1, random_state=0)
    return MultiTaskRegressor(hidden_layer_sizes=(8,), max_epochs=4, batch_size=20,
                              weighting="gradnorm", validation_fraction=0.25,
                              random_state=0).fit(X, pd.DataFrame(Y, columns=["u", "v", "w"]))


def assert_png(display, tmp_path):
    path = tmp_path / "display.png"
    display.figure_.savefig(path)
    assert path.stat().st_size > 1000


def heights(bars):
    return np.array([bar.get_height() for bar in bars])


def whiskers(errorbar):
    """(low, high) of each vertical error bar segment."""
    return np.array([segment[:, 1] for segment in errorbar.lines[2][0].get_segments()])


def test_transfer_display(report, tmp_path):
    display = TransferDisplay.from_report(report)
    assert_png(display, tmp_path)
    np.testing.assert_allclose(heights(display.bars_), report["gain"])
    np.testing.assert_allclose(
        whiskers(display.errorbar_),
        np.column_stack([report["gain"] - report["gain_se"], report["gain"] + report["gain_se"]]))
    negative = report["negative_transfer"].to_numpy()
    assert negative.tolist() == [False, False, False, False, True]
    colors = [bar.get_facecolor() for bar in display.bars_]
    assert all(c == to_rgba("tab:red") for c, neg in zip(colors, negative) if neg)
    assert all(c == to_rgba("tab:blue") for c, neg in zip(colors, negative) if not neg)
    assert [t.get_text() for t in display.ax_.get_xticklabels()] == ["0", "1", "2", "3", "4"]
    assert [t.get_text() for t in display.ax_.get_legend().get_texts()] == [
        "no negative transfer", "negative transfer (gain < -SE)"]
    assert display.ax_.get_ylabel() == "gain over single-task (r2)"
    assert display.figure_ is display.ax_.figure


def test_transfer_display_from_estimator_and_structured_report(data, report):
    X, Y = data
    _, ax = plt.subplots()
    display = TransferDisplay.from_estimator(PooledTasks(Ridge()), X, Y, cv=3, ax=ax,
                                             negative_color="black")
    assert display.ax_ is ax
    np.testing.assert_allclose(heights(display.bars_), report["gain"])
    assert display.bars_[4].get_facecolor() == to_rgba("black")
    records = report.to_records(index=False)  # the structured-array form of a report
    display = TransferDisplay.from_report(records)
    np.testing.assert_allclose(heights(display.bars_), report["gain"])
    assert display.ax_.get_ylabel() == "gain over single-task"  # no attrs to name the score
    with pytest.raises(ValueError, match="transfer_report"):
        TransferDisplay.from_report({"gain": [1.0]})
    with pytest.raises(ValueError, match="must be a result of .*transfer_report"):
        TransferDisplay.from_report("report.csv")  # a path, not the report (a TypeError)


def test_strategy_comparison(data, report, tmp_path):
    X, Y = data
    mean_clustered = transfer_report(MeanClusteredRegressor(alpha=0.1, cluster_strength=10.0),
                                     X, Y, reference=IndependentTasks(Ridge()), cv=3)
    shuffled = mean_clustered.iloc[::-1]  # reports are aligned on the task labels
    display = StrategyComparisonDisplay.from_reports({"pooled": report,
                                                      "mean-clustered": shuffled})
    assert_png(display, tmp_path)
    assert list(display.bars_) == ["pooled", "mean-clustered"]
    np.testing.assert_allclose(heights(display.bars_["pooled"]), report["gain"])
    np.testing.assert_allclose(heights(display.bars_["mean-clustered"]), mean_clustered["gain"])
    np.testing.assert_allclose(whiskers(display.bars_["pooled"].errorbar)[:, 1],
                               report["gain"] + report["gain_se"])
    hatched = [bar.get_hatch() == "//" for bar in display.bars_["pooled"]]
    assert hatched == report["negative_transfer"].tolist()
    x_pooled = [bar.get_x() for bar in display.bars_["pooled"]]
    x_clustered = [bar.get_x() for bar in display.bars_["mean-clustered"]]
    assert all(a < b for a, b in zip(x_pooled, x_clustered))
    assert [t.get_text() for t in display.ax_.get_legend().get_texts()] == [
        "pooled", "mean-clustered"]
    with pytest.raises(ValueError, match="covers tasks"):
        StrategyComparisonDisplay.from_reports({"a": report, "b": report.iloc[:3]})


def test_strategy_comparison_from_estimators(data, report):
    X, Y = data
    display = StrategyComparisonDisplay.from_estimators(
        {"pooled": PooledTasks(Ridge()), "stl": IndependentTasks(Ridge())}, X, Y,
        reference=IndependentTasks(Ridge()), cv=3)
    np.testing.assert_allclose(heights(display.bars_["pooled"]), report["gain"])
    np.testing.assert_allclose(heights(display.bars_["stl"]), 0.0)


def test_affinity_display_from_report(data, tmp_path):
    X, Y = data
    matrix = pairwise_transfer(PooledTasks(Ridge()), X, Y, cv=3)
    matrix.index = matrix.columns = ["a", "b", "c", "d", "e"]
    display = AffinityDisplay.from_report(matrix)
    assert_png(display, tmp_path)
    order = cluster_order(matrix.to_numpy())
    np.testing.assert_array_equal(display.order_, order)
    assert sorted(order) == list(range(5)) and order.tolist() != list(range(5))
    np.testing.assert_allclose(display.im_.get_array(), matrix.to_numpy()[np.ix_(order, order)])
    names = np.array(["a", "b", "c", "d", "e"])[order].tolist()
    assert [t.get_text() for t in display.ax_.get_xticklabels()] == names
    assert [t.get_text() for t in display.ax_.get_yticklabels()] == names
    assert display.text_[0, 1].get_text() == format(display.im_.get_array()[0, 1], ".2f")
    vmax = np.abs(matrix.to_numpy()).max()
    assert display.im_.get_clim() == (-vmax, vmax)
    assert display.colorbar_.ax.get_ylabel() == "gain of the row task"
    # the conflicting task (4) is at one end of the order, away from the related ones
    assert order.tolist().index(4) in (0, 4)
    unordered = AffinityDisplay.from_matrix(matrix.to_numpy(), cluster=False, colorbar=False,
                                            include_values=False)
    np.testing.assert_allclose(unordered.im_.get_array(), matrix.to_numpy())
    assert unordered.text_ is None and unordered.colorbar_ is None
    assert [t.get_text() for t in unordered.ax_.get_xticklabels()] == ["0", "1", "2", "3", "4"]


def test_affinity_display_from_estimator(deep_model, tmp_path):
    display = AffinityDisplay.from_estimator(deep_model)
    assert_png(display, tmp_path)
    affinity = deep_model.gradient_affinity_
    order = display.order_
    np.testing.assert_allclose(display.im_.get_array(), affinity[np.ix_(order, order)])
    assert [t.get_text() for t in display.ax_.get_yticklabels()] == (
        np.array(["u", "v", "w"])[order].tolist())
    assert display.im_.get_clim() == (-1.0, 1.0)
    with pytest.raises(ValueError, match="gradient_affinity_"):
        AffinityDisplay.from_estimator(Ridge())


def test_training_curves_display(deep_model, tmp_path):
    display = TrainingCurvesDisplay.from_estimator(deep_model)
    assert_png(display, tmp_path)
    history = deep_model.net_.history
    epochs = history[:, "epoch"]
    for t in range(3):
        np.testing.assert_allclose(display.train_lines_[t].get_xdata(), epochs)
        np.testing.assert_allclose(display.train_lines_[t].get_ydata(),
                                   history[:, f"train_loss_task_{t}"])
        np.testing.assert_allclose(display.valid_lines_[t].get_ydata(),
                                   history[:, f"valid_loss_task_{t}"])
        np.testing.assert_allclose(display.weight_lines_[t].get_ydata(),
                                   deep_model.task_weights_history_[:, t])
    assert display.valid_lines_[0].get_linestyle() == "--"
    assert [t.get_text() for t in display.ax_.get_legend().get_texts()] == [
        "u", "v", "w", "train", "valid"]
    assert display.train_lines_[1].get_color() == display.valid_lines_[1].get_color()
    assert [t.get_text() for t in display.weights_ax_.get_legend().get_texts()] == [
        "u", "v", "w"]
    assert display.weights_ax_ is not display.ax_
    assert display.figure_ is display.ax_.figure is display.weights_ax_.figure
    with pytest.raises(ValueError, match="net_"):
        TrainingCurvesDisplay.from_estimator(Ridge())


def test_training_curves_without_weights_or_validation():
    display = TrainingCurvesDisplay([1, 2], [[3.0], [2.0]]).plot(log_scale=True)
    assert display.valid_lines_ is None and display.weight_lines_ is None
    assert display.weights_ax_ is None
    assert display.ax_.get_yscale() == "log"
    with pytest.raises(ValueError, match="valid_losses must have shape"):
        TrainingCurvesDisplay([1, 2], [[3.0], [2.0]], valid_losses=[[1.0, 2.0]])


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"skmtl\[plot\]"):
        TransferDisplay(["a"], [0.1]).plot()


def test_import_skmtl_does_not_import_matplotlib():
    code = ("import sys, skmtl, skmtl.model_selection, skmtl.plotting; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
