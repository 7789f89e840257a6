"""BranchTreeDisplay draws one box per branch, each above its parent, the tasks on top."""

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from skmtl.plotting import BranchTreeDisplay  # noqa: E402

TREE = [
    [[0, 1, 2, 3, 4, 5]],
    [[0, 2, 4], [1, 3, 5]],
    [[0, 4], [1, 3, 5], [2]],
]
NAMES = ["a", "b", "c", "d", "e", "f"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def parent_index(lower, group):
    return next(i for i, parent in enumerate(lower) if set(group) <= set(parent))


def test_layout_boxes_and_parents(tmp_path):
    display = BranchTreeDisplay(TREE, task_names=NAMES).plot()
    assert [len(layer) for layer in display.boxes_] == [1, 2, 3]
    assert [len(layer) for layer in display.patches_] == [1, 2, 3]
    # children of a branch side by side: 0, 4, 2 under the first branch, then 1, 3, 5
    assert display.order_ == [0, 4, 2, 1, 3, 5]
    assert display.layers_[2] == [[0, 4], [2], [1, 3, 5]]
    for level, layer in enumerate(display.boxes_):
        assert all(y == level for _, y in layer)
    for level in range(1, 3):
        for group, (x, _), width in zip(display.layers_[level], display.boxes_[level],
                                        display.widths_[level], strict=True):
            j = parent_index(display.layers_[level - 1], group)
            px, _ = display.boxes_[level - 1][j]
            pw = display.widths_[level - 1][j]
            # the child lies within its parent's x range
            assert px - pw / 2 <= x - width / 2 and x + width / 2 <= px + pw / 2
    # a box is centred on its tasks, which are at x = their position in order_
    for group, (x, _) in zip(display.layers_[2], display.boxes_[2], strict=True):
        xs = [display.order_.index(t) for t in group]
        assert x == pytest.approx((min(xs) + max(xs)) / 2)
    # patches drawn where boxes_ says
    for patch, (x, _), width in zip(display.patches_[1], display.boxes_[1], display.widths_[1],
                                    strict=True):
        assert patch.get_x() == pytest.approx(x - width / 2)
        assert patch.get_width() == pytest.approx(width)
    assert [t.get_text() for t in display.task_texts_] == ["a", "e", "c", "b", "d", "f"]
    assert [t.get_text() for t in display.texts_[0]] == ["all 6 tasks"]
    assert [t.get_text() for t in display.texts_[2]] == ["a, e", "c", "b, d, f"]
    # 1 input edge, 2 + 3 child-parent edges, 6 task edges
    assert len(display.lines_) == 1 + 5 + 6
    path = tmp_path / "tree.png"
    display.figure_.savefig(path)
    assert path.stat().st_size > 1000


def test_edges_join_child_and_parent():
    display = BranchTreeDisplay(TREE).plot()
    edges = display.lines_[1:6]
    for level, start in ((1, 0), (2, 2)):
        for k, (group, (x, _)) in enumerate(zip(display.layers_[level], display.boxes_[level],
                                                strict=True)):
            px, _ = display.boxes_[level - 1][parent_index(display.layers_[level - 1], group)]
            xdata = edges[start + k].get_xdata()
            assert list(xdata) == pytest.approx([px, x])


def test_long_lists_are_truncated_and_labels_used():
    tree = [[["u", "v", "w", "x", "y"]], [["u", "v", "w", "x"], ["y"]]]
    display = BranchTreeDisplay(tree).plot(max_names=2)
    assert [t.get_text() for t in display.texts_[1]] == ["u, v, +2", "y"]
    assert [t.get_text() for t in display.task_texts_] == ["u", "v", "w", "x", "y"]


def test_given_axes_and_single_task():
    figure, ax = plt.subplots()
    display = BranchTreeDisplay([[[7]]]).plot(ax=ax)
    assert display.ax_ is ax and display.figure_ is figure
    assert display.boxes_ == [[(0.0, 0)]]
    assert [t.get_text() for t in display.texts_[0]] == ["7"]


class _Fitted:
    def __init__(self, **attributes):
        vars(self).update(attributes)


class _Pipeline:
    def __init__(self, last):
        self.steps = [("scale", object()), ("model", last)]


def test_from_estimator_and_from_positions():
    branches = [[["a", "b", "c"]], [["a", "c"], ["b"]]]
    display = BranchTreeDisplay.from_estimator(_Pipeline(_Fitted(branches_=branches)))
    assert display.order_ == ["a", "c", "b"]
    assert [len(layer) for layer in display.boxes_] == [1, 2]
    by_position = BranchTreeDisplay([[[0, 1, 2]], [[0, 2], [1]]], task_names=["a", "b", "c"])
    by_position.plot()
    assert by_position.boxes_ == display.boxes_
    assert [t.get_text() for t in by_position.task_texts_] == ["a", "c", "b"]


def test_from_estimator_without_branches():
    with pytest.raises(ValueError, match="sharing='adaptive'.*sharing='hard'"):
        BranchTreeDisplay.from_estimator(_Fitted(sharing="hard"))
    with pytest.raises(ValueError, match="sharing='adaptive'"):
        BranchTreeDisplay.from_estimator(object())


@pytest.mark.parametrize(
    ("branches", "task_names", "match"),
    [
        ([], None, "non-empty list"),
        ([[[0, 1]], [[0], []]], None, "non-empty list"),
        ([[[0, 1], [1]]], None, "two branches of layer 1"),
        ([[[0, 1]], [[0], [2]]], None, "exactly once"),
        ([[[0, 1], [2, 3]], [[0, 2], [1, 3]]], None, "not inside one branch"),
        ([[[0, 1]]], ["a", "b", "c"], "positions 0 .. 2"),
        ([[["a", "b"]]], ["a", "b"], "positions 0 .. 1"),
    ],
)
def test_invalid_branches(branches, task_names, match):
    with pytest.raises(ValueError, match=match):
        BranchTreeDisplay(branches, task_names=task_names)


def test_bad_plot_argument():
    with pytest.raises(ValueError, match="max_names must be a positive integer, got 0"):
        BranchTreeDisplay([[[0]]]).plot(max_names=0)


def test_from_a_fitted_adaptive_estimator():
    pytest.importorskip("torch")
    import pandas as pd

    from skmtl.deep import MultiTaskRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    Y = pd.DataFrame(np.c_[X[:, 0], X[:, 0], -X[:, 0], -X[:, 0]], columns=list("pqrs"))
    est = MultiTaskRegressor(sharing="adaptive", hidden_layer_sizes=(6, 6), max_epochs=1,
                             batch_size=20, random_state=0).fit(X, Y)
    display = BranchTreeDisplay.from_estimator(est)
    assert [len(layer) for layer in display.boxes_] == [len(layer) for layer in est.branches_]
    assert sorted(t.get_text() for t in display.task_texts_) == ["p", "q", "r", "s"]
