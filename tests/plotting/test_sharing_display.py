"""SharingDisplay draws the task signatures of a network's parameter blocks as a grid."""

import ast
import inspect
import sys

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from skmtl.plotting._sharing import SharingDisplay  # noqa: E402

BLOCKS = [
    ("trunk.0.weight", 20, {0, 1, 2}),
    ("levels.1.0.weight", 8, {1, 2}),
    ("task_heads.output.weight", 4, {0}),
    ("task_heads.output.weight", 4, {2}),
    ("task_heads.output.weight", 8, set()),
]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def cell_colors(display):
    return display.image_.get_array()


def test_cells_labels_colours_and_legend(tmp_path):
    display = SharingDisplay(BLOCKS, 3, task_names=["a", "b", "c"], title="demo").plot()
    expected = np.array([[1, 1, 1], [0, 1, 1], [1, 0, 0], [0, 0, 1], [0, 0, 0]], dtype=bool)
    np.testing.assert_array_equal(display.cells_, expected)
    assert display.row_labels_ == [
        "trunk.0.weight (20)", "levels.1.0.weight (8)", "heads.output.weight (4)",
        "heads.output.weight (4)", "heads.output.weight (8)",
    ]
    assert display.categories_ == ["shared", "subset", "single", "single", "unused"]
    assert [t.get_text() for t in display.ax_.get_yticklabels()] == display.row_labels_
    assert [t.get_text() for t in display.ax_.get_xticklabels()] == ["a", "b", "c"]
    assert display.ax_.get_title() == "demo"
    image = cell_colors(display)
    assert image.shape == (5, 3, 4)
    white = to_rgba("white")
    for row, category in zip(range(5), display.categories_, strict=True):
        for task in range(3):
            if category == "unused":
                assert tuple(image[row, task]) == pytest.approx(to_rgba("0.85"))
            elif expected[row, task]:
                colour = {"shared": "C0", "subset": "C2", "single": "C1"}[category]
                assert tuple(image[row, task]) == pytest.approx(to_rgba(colour))
            else:
                assert tuple(image[row, task]) == pytest.approx(white)
    legend = [t.get_text() for t in display.legend_.get_texts()]
    assert legend == ["shared by all tasks", "shared by some tasks", "one task", "unused"]
    colours = [tuple(h.get_facecolor()) for h in display.legend_.legend_handles]
    assert colours == [pytest.approx(to_rgba(c)) for c in ("C0", "C2", "C1", "0.85")]
    path = tmp_path / "map.png"
    display.figure_.savefig(path)
    assert path.stat().st_size > 1000


def test_max_rows_merges_the_rest():
    display = SharingDisplay(BLOCKS, 3).plot(max_rows=3)
    assert display.row_labels_[-1] == "... 3 more rows"
    assert len(display.row_labels_) == 3 and display.categories_[-1] == "more"
    # the merged row marks the tasks any hidden row serves: {0} | {2} | {} = {0, 2}
    assert display.cells_.tolist()[-1] == [True, False, True]
    assert display.legend_.get_texts()[-1].get_text() == "rows not shown"
    assert [t.get_text() for t in display.ax_.get_xticklabels()] == ["0", "1", "2"]
    # enough room: nothing merged
    assert SharingDisplay(BLOCKS, 3).plot(max_rows=5).row_labels_[-1] == (
        "heads.output.weight (8)"
    )


def test_cmap_and_given_axes():
    _, ax = plt.subplots()
    display = SharingDisplay(BLOCKS, 3).plot(ax=ax, cmap="viridis")
    assert display.ax_ is ax
    viridis = matplotlib.colormaps["viridis"]
    assert tuple(cell_colors(display)[0, 0]) == pytest.approx(viridis(0.15))
    assert tuple(cell_colors(display)[1, 1]) == pytest.approx(viridis(0.5))
    assert tuple(cell_colors(display)[2, 0]) == pytest.approx(viridis(0.85))


def test_long_names_are_shortened():
    name = "encoder.blocks.11.attention.query_projection.weight"
    display = SharingDisplay([(name, 5, {0})], 1).plot()
    label = display.row_labels_[0]
    assert label.startswith("...") and label.endswith("query_projection.weight (5)")
    assert len(label) == 32 + len(" (5)")
    display = SharingDisplay([("towers.layers.0.bias", 3, {0})], 1).plot()
    assert display.row_labels_ == ["towers.0.bias (3)"]
    assert display.categories_ == ["shared"]  # one task, which is every task


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((BLOCKS, 2), {}, r"Row 'trunk.0.weight' of blocks names tasks \[0, 1, 2\]"),
        ((BLOCKS, 0), {}, "n_tasks must be a positive integer, got 0"),
        (([("w", 0, {0})], 1), {}, "row 'w' has 0 entries"),
        (([("w", 3)], 1), {}, "blocks must be a sequence"),
        ((BLOCKS, 3), {"task_names": ["a"]}, "task_names must have 3 entries"),
    ],
)
def test_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        SharingDisplay(*args, **kwargs)


def test_bad_max_rows():
    with pytest.raises(ValueError, match="max_rows must be a positive integer, got 0"):
        SharingDisplay(BLOCKS, 3).plot(max_rows=0)


def test_module_level_imports_do_not_need_torch_or_matplotlib():
    # the module imports torch (through skmtl.deep) and matplotlib only inside its methods; a
    # subprocess import would take seconds (sklearn), so read the module-level imports
    import skmtl.plotting._sharing as module

    tree = ast.parse(inspect.getsource(module))
    imported = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            imported.append(node.module)
    assert imported == ["numbers", "numpy", "skmtl.plotting._base"]
    base = ast.parse(inspect.getsource(sys.modules["skmtl.plotting._base"]))
    assert not any(
        alias.name.split(".")[0] in ("torch", "matplotlib")
        for node in base.body if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in ([ast.alias(node.module)] if isinstance(node, ast.ImportFrom)
                      else node.names)
    )


# --- from a module and from an estimator (torch) ---------------------------------------------


def _signatures(display):
    return [set(np.flatnonzero(row)) for row in display.cells_]


def test_from_module_hard_and_independent():
    torch = pytest.importorskip("torch")
    from skmtl.deep.modules import build_module

    torch.manual_seed(0)
    hard = build_module("hard", 5, [1, 1, 1], hidden_layer_sizes=(4, 3))
    display = SharingDisplay.from_module(hard, task_names=["x", "y", "z"])
    # trunk: 4 parameters shared by all; heads: weight and bias, one row per task each
    assert _signatures(display) == [{0, 1, 2}] * 4 + [{0}, {1}, {2}] * 2
    assert display.row_labels_[:4] == [
        "trunk.0.weight (20)", "trunk.0.bias (4)", "trunk.3.weight (12)", "trunk.3.bias (3)",
    ]
    assert display.row_labels_[4:] == ["heads.output.weight (3)"] * 3 + [
        "heads.output.bias (1)"] * 3
    assert display.ax_.get_title() == "HardSharingModule"
    assert [t.get_text() for t in display.ax_.get_xticklabels()] == ["x", "y", "z"]

    independent = build_module("independent", 5, [1, 1, 1], hidden_layer_sizes=(4, 3))
    display = SharingDisplay.from_module(independent, title="independent")
    assert _signatures(display) == [{0}, {1}, {2}] * 6  # 2 tower layers + head, weight + bias
    assert set(display.categories_) == {"single"}
    assert [t.get_text() for t in display.legend_.get_texts()] == ["one task"]
    assert display.ax_.get_title() == "independent"


def fitted(pipeline=False):
    pytest.importorskip("torch")
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from skmtl.deep import MultiTaskRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 5))
    Y = pd.DataFrame(rng.normal(size=(24, 3)), columns=["a", "b", "c"])
    model = MultiTaskRegressor(hidden_layer_sizes=(4,), max_epochs=1, early_stopping=False,
                               random_state=0)
    if pipeline:
        model = Pipeline([("scale", StandardScaler()), ("model", model)])
    return model.fit(X, Y)


@pytest.mark.parametrize("pipeline", [False, True])
def test_from_estimator(pipeline):
    model = fitted(pipeline)
    display = SharingDisplay.from_estimator(model, max_rows=4)
    assert [t.get_text() for t in display.ax_.get_xticklabels()] == ["a", "b", "c"]
    assert display.ax_.get_title() == "sharing='hard'"
    # trunk.0.weight, trunk.0.bias, head weight of task 0, then the 5 other rows merged
    assert _signatures(display) == [{0, 1, 2}, {0, 1, 2}, {0}, {0, 1, 2}]
    assert display.row_labels_[-1] == "... 5 more rows"


def test_from_estimator_without_a_network():
    pytest.importorskip("torch")
    from sklearn.linear_model import Ridge

    from skmtl.deep import MultiTaskRegressor

    for estimator in (MultiTaskRegressor(), Ridge()):
        with pytest.raises(ValueError, match="has no fitted network"):
            SharingDisplay.from_estimator(estimator)
