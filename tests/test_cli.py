"""The `skmtl` command: datasets listing, compare on packaged data and on CSV files."""

import csv
import subprocess
import sys

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmtl import IndependentTasks
from skmtl._compare import _paired_gain, run_comparison
from skmtl.cli import main
from skmtl.datasets import make_multitask_regression
from skmtl.metrics import r2_score
from skmtl.model_selection import MultiTaskKFold


def read_scores(folder):
    with open(folder / "scores.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_datasets_lists_every_packaged_data_set(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name, n_tasks in [("exam", "65"), ("hsb82", "160"), ("chem97", "2410"), ("yeast", "14")]:
        line = next(row for row in out.splitlines() if row.startswith(name))
        assert n_tasks in line.split()


def test_compare_on_exam_prints_table_and_writes_per_task_scores(tmp_path, capsys):
    assert main(["compare", "--dataset", "exam", "--cv", "3", "--out", str(tmp_path),
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "65 tasks" in out
    table = [line.split() for line in out.splitlines() if line.startswith(("stl", "pooled"))]
    assert [row[0] for row in table] == ["stl", "pooled"]
    rows = read_scores(tmp_path)
    assert len(rows) == 2 * 65
    assert {r["model"] for r in rows} == {"stl", "pooled"}
    stl = [r for r in rows if r["model"] == "stl"]
    assert all(float(r["gain_vs_stl"]) == 0.0 for r in stl)
    assert sum(int(r["n_observed"]) for r in stl) == 4059
    mean_stl = np.mean([float(r["score"]) for r in stl])
    assert float(table[0][1]) == pytest.approx(mean_stl, abs=1e-4)


def test_compare_matches_a_manual_cross_validation():
    X, Y = make_multitask_regression(n_samples=60, n_features=5, n_tasks=3, missing_rate=0.2,
                                     random_state=0)
    result = run_comparison(X, Y, task_type="regression", models=["pooled"], cv=3,
                            random_state=0)
    folds = MultiTaskKFold(3, shuffle=True, random_state=0).split(X, Y)
    pred = np.empty_like(Y)
    for train, test in folds:
        model = make_pipeline(StandardScaler(), IndependentTasks(Ridge())).fit(X[train], Y[train])
        pred[test] = model.predict(X[test])
    np.testing.assert_allclose(result.per_task["stl"]["score"],
                               r2_score(Y, pred, multioutput="raw_values"))
    assert list(result.per_task) == ["stl", "pooled"]


def test_paired_gain_equals_a_brute_force_mean_and_standard_error():
    rng = np.random.RandomState(0)
    ref, new = rng.uniform(size=40), rng.uniform(size=40)
    tasks = rng.randint(0, 3, size=40)
    gain, se = _paired_gain(ref, new, tasks, 3)
    for t in range(3):
        diff = (ref - new)[tasks == t]
        assert gain[t] == pytest.approx(diff.mean())
        assert se[t] == pytest.approx(diff.std(ddof=1) / np.sqrt(diff.size))


def test_conflicting_tasks_are_flagged_as_negative_transfer_for_pooling():
    X, Y = make_multitask_regression(n_samples=80, n_features=6, n_tasks=4, n_conflicting=2,
                                     noise=0.1, random_state=1)
    result = run_comparison(X, Y, task_type="regression", models=["pooled"], cv=3)
    assert result.per_task["pooled"]["negative_transfer"].sum() >= 2
    assert result.summary[1]["negative_transfer"] == int(
        result.per_task["pooled"]["negative_transfer"].sum())


def test_compare_on_a_long_csv(tmp_path, capsys):
    rng = np.random.RandomState(0)
    n = 90
    school = np.repeat(["a", "b", "c"], n // 3)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    score = 2 * x1 + (school == "b") * x2 + 0.1 * rng.normal(size=n)
    sex = rng.choice(["F", "M"], size=n)
    path = tmp_path / "pupils.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["school", "x1", "x2", "sex", "score"])
        writer.writerows(zip(school, x1, x2, sex, score))
    out_dir = tmp_path / "out"
    assert main(["compare", "--csv", str(path), "--targets", "score", "--task-column", "school",
                 "--cv", "3", "--out", str(out_dir), "--quiet"]) == 0
    assert "3 tasks" in capsys.readouterr().out
    rows = read_scores(out_dir)
    assert sorted({r["task"] for r in rows}) == ["a", "b", "c"]


def test_compare_on_a_wide_classification_csv(tmp_path, capsys):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 3))
    path = tmp_path / "labels.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["f1", "f2", "f3", "yes_no", "colour"])
        for i, row in enumerate(X):
            colour = "" if i % 5 == 0 else ("red" if row[1] > 0 else "blue")
            writer.writerow([*row, "yes" if row[0] > 0 else "no", colour])
    assert main(["compare", "--csv", str(path), "--targets", "yes_no,colour", "--cv", "3",
                 "--out", str(tmp_path / "o"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "classification" in out and "mean accuracy" in out
    assert {r["task"] for r in read_scores(tmp_path / "o")} == {"yes_no", "colour"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare", "--dataset", "nope"], "Unknown data set"),
        (["compare", "--cv", "1"], "--cv must be at least 2"),
        (["compare", "--targets", "a"], "--targets and --task-column go with --csv"),
    ],
)
def test_compare_errors_are_reported_with_status_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_csv_errors_name_the_missing_column(tmp_path, capsys):
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,2\n3,4\n")
    assert main(["compare", "--csv", str(path), "--targets", "zz"]) == 2
    assert "['zz'] are not in" in capsys.readouterr().err


def test_python_dash_m_runs_the_command():
    done = subprocess.run([sys.executable, "-m", "skmtl", "datasets"], capture_output=True,
                          text=True, check=True)
    assert "exam" in done.stdout and "yeast" in done.stdout


def test_classification_comparison_uses_accuracy():
    rng = np.random.RandomState(3)
    X = rng.normal(size=(60, 3))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(float)
    result = run_comparison(X, Y, task_type="classification", models=["pooled"], cv=3)
    assert np.all((0 <= result.per_task["stl"]["score"]) & (result.per_task["stl"]["score"] <= 1))
    assert "mean accuracy" in result.format_table()


def test_tasks_too_small_to_split_are_left_out_loudly(tmp_path, capsys):
    rng = np.random.RandomState(0)
    school = np.array(["a"] * 30 + ["b"] * 30 + ["lonely"])
    x = rng.normal(size=school.size)
    path = tmp_path / "p.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["school", "x", "score"])
        writer.writerows(zip(school, x, 2 * x + rng.normal(size=x.size)))
    assert main(["compare", "--csv", str(path), "--targets", "score", "--task-column", "school",
                 "--cv", "3", "--out", str(tmp_path / "o"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Left out 1 task(s) with fewer than 2 labels" in out and "lonely" in out
    assert {r["task"] for r in read_scores(tmp_path / "o")} == {"a", "b"}
