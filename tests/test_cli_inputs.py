"""`skmtl compare --csv`: how a user's file is read (task type, id and date columns) and the
one-line errors (status 2, no traceback) for every mistake in it."""

import csv

import numpy as np
import pytest

from skmtl.cli import MAX_CLASSES, main


def write_csv(path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_scores(folder):
    with open(folder / "scores.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def long_csv(tmp_path):
    """Long data: 3 schools, two numeric features, a text feature and a real-valued score."""
    rng = np.random.RandomState(0)
    n = 60
    school = np.repeat(["a", "b", "c"], n // 3)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    sex = rng.choice(["F", "M"], size=n)
    score = 2 * x1 + x2 + 0.1 * rng.normal(size=n)
    return write_csv(tmp_path / "pupils.csv", ["school", "x1", "x2", "sex", "score"],
                     zip(school, x1, x2, sex, score))


def test_whole_number_counts_with_many_values_are_regression(tmp_path, capsys):
    # the case: counts of 25 to 346 were taken for 300 classes (accuracy 0.007) and
    # linear MTL was skipped
    rng = np.random.RandomState(0)
    n = 90
    X = rng.normal(size=(n, 3))
    counts = np.clip(np.round(180 + 60 * X[:, :2] + 5 * rng.normal(size=(n, 2))), 25, 346)
    path = write_csv(tmp_path / "counts.csv", ["a", "b", "c", "visits", "sales"],
                     [[*x, int(c0), int(c1)] for x, (c0, c1) in zip(X, counts)])
    assert main(["compare", "--csv", str(path), "--targets", "visits,sales", "--models",
                 "mean_clustered", "--cv", "2", "--out", str(tmp_path / "o"), "--quiet"]) == 0
    captured = capsys.readouterr()
    distinct = np.unique(counts).size
    assert (f"Task type: regression, the targets are whole numbers with {distinct} distinct "
            f"values (more than {MAX_CLASSES}); override with --task-type classification."
            ) in captured.out
    assert "Left out mean_clustered" not in captured.out
    rows = read_scores(tmp_path / "o")
    assert {r["metric"] for r in rows} == {"neg_mean_squared_error"}
    assert {r["model"] for r in rows} == {"stl", "mean_clustered"}


@pytest.mark.parametrize(
    ("values", "expected", "why"),
    [
        ([0, 1, 1, 0], "classification", "whole numbers with 2 distinct values (at most 10)"),
        ([1, 2, 3, 4, 5], "classification", "whole numbers with 5 distinct values"),
        (list(range(25, 37)), "regression", "whole numbers with 12 distinct values"),
        ([0.5, 1.0, 2.0, 1.0], "regression", "numbers with fractions"),
        (["yes", "no", "yes", "no"], "classification", "holds text ('yes')"),
    ],
)
def test_the_task_type_rule(values, expected, why):
    import pandas as pd

    from skmtl.cli import _decide_task_type

    task_type, reason = _decide_task_type(pd.DataFrame({"y": values}), "auto", pd)
    assert task_type == expected and why in reason


def test_task_type_option_overrides_the_rule(tmp_path, capsys, long_csv):
    assert main(["compare", "--csv", str(long_csv), "--targets", "sex", "--task-type",
                 "regression", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--task-type regression needs numeric targets, but column 'sex' holds text" in err


def assert_one_line_error(capsys, message):
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert err[-1].startswith("skmtl: error: ")
    assert message in err[-1], err[-1]
    assert "Traceback" not in captured.err + captured.out


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        # an empty task cell: the column and the file's line numbers (header = line 1)
        ([["", 1.0, 2.0], ["a", 1.5, 2.5], [" ", 0.1, 0.2]],
         "Task column 'school' is empty on line(s) 2, 4 of"),
    ],
)
def test_task_column_errors(tmp_path, capsys, rows, message):
    path = write_csv(tmp_path / "d.csv", ["school", "x", "score"], rows)
    assert main(["compare", "--csv", str(path), "--targets", "score", "--task-column",
                 "school", "--out", str(tmp_path / "o")]) == 2
    assert_one_line_error(capsys, message)


def test_mixed_task_ids_are_read_as_text(tmp_path, capsys):
    # numbers and text in one task column: "7" is one task whether or not others are text
    rng = np.random.RandomState(0)
    tasks = ["7", "7b"] * 20
    path = write_csv(tmp_path / "d.csv", ["task", "x", "y"],
                     [[t, *rng.normal(size=2)] for t in tasks])
    assert main(["compare", "--csv", str(path), "--targets", "y", "--task-column", "task",
                 "--models", "pooled", "--cv", "2", "--out", str(tmp_path / "o"),
                 "--quiet"]) == 0
    assert {r["task"] for r in read_scores(tmp_path / "o")} == {"7", "7b"}


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (None, ["--targets", "y"], "is a folder; give the path of a CSV file"),
        ("", ["--targets", "y"], "is empty (no header, no rows)"),
        ("x,y\n", ["--targets", "y"], "has a header but no data rows"),
        ("x,y\n1,2\n3,4,5,6\n", ["--targets", "y"], "cannot be read as a CSV file"),
        ("x,y\n1,2\n", ["--targets", "zz"],
         "Column(s) ['zz'] of --targets/--task-column are not in"),
        ("x,y\n1,2\n", ["--targets", "y", "--drop", "w"], "Column(s) ['w'] of --drop are not"),
        ("x,y\n1,2\n", ["--targets", "y", "--drop", "y"], "a target or task column cannot be"),
        ("x,y\n1,a\n2,b\n", ["--targets", "y", "--task-type", "regression"],
         "column 'y' holds text ('a' on line(s) 2, 3)"),
        ("x,y\n1,2\n2,3\n", ["--targets", "y", "--drop", "x"],
         "No feature column in"),
        ("x,y\n1,2\n,3\n", ["--targets", "y"],
         "Feature column 'x' has empty cells (line(s) 3)"),
        ("x,y\n1,2\n", [], "--csv needs --targets"),
        ("x,y\n1,2\n", ["--targets", "y"], "No task has 2 labels or more"),
        (b"x,y\n\xff\xfe,\x81\n", ["--targets", "y"], "cannot be read as a CSV file: 'utf-8'"),
    ],
)
def test_file_errors_are_one_line_with_status_2(tmp_path, capsys, content, args, message):
    path = tmp_path / "d.csv"
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    assert main(["compare", "--csv", str(path), *args, "--out", str(tmp_path / "o")]) == 2
    assert_one_line_error(capsys, message)


def test_a_missing_file_is_one_line_with_status_2(tmp_path, capsys):
    assert main(["compare", "--csv", str(tmp_path / "nope.csv"), "--targets", "y"]) == 2
    assert_one_line_error(capsys, "nope.csv: no such file")


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_text("x"), "is an existing file, not a folder"),
    (lambda p: None, "cannot be created or written"),
])
def test_an_unusable_out_is_refused_before_any_fitting(tmp_path, capsys, long_csv,
                                                       monkeypatch, make, message):
    import skmtl.cli

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted before checking --out")

    monkeypatch.setattr(skmtl.cli, "run_comparison", no_fit)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    out = tmp_path / "out.txt"
    make(out)
    # an existing file; or a folder inside a file, which cannot be created
    target = out if out.exists() else blocker / "sub"
    assert main(["compare", "--csv", str(long_csv), "--targets", "score", "--task-column",
                 "school", "--out", str(target), "--quiet"]) == 2
    assert_one_line_error(capsys, message)


def test_id_and_date_columns_are_dropped_or_flagged(tmp_path, capsys):
    rng = np.random.RandomState(0)
    n = 40
    x = rng.normal(size=n)
    rows = [[f"P{i:04d}", 1000 + i, f"2024-01-{1 + i % 28:02d}", x[i], rng.choice(["F", "M"]),
             2 * x[i] + rng.normal()] for i in range(n)]
    path = write_csv(tmp_path / "d.csv", ["pupil", "row", "day", "x", "sex", "y"], rows)
    out = tmp_path / "o"
    assert main(["compare", "--csv", str(path), "--targets", "y", "--models", "pooled",
                 "--cv", "2", "--out", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("skmtl: warning")]
    assert warnings == [
        "skmtl: warning: column 'pupil' looks like an id (40 distinct text values): dropped, "
        "not one-hot encoded into 39 features; keep it with --keep pupil.",
        "skmtl: warning: column 'row' looks like an id (40 distinct whole numbers): kept as a "
        "numeric feature; drop it with --drop row.",
        "skmtl: warning: column 'day' looks like dates (e.g. '2024-01-01'): dropped, as "
        "one-hot encoding would give one feature per date; turn it into numbers (e.g. day of "
        "year) or keep it as categories with --keep day.",
    ]
    # row, x and the one-hot sex: 3 features (not 3 + 39 + 27)
    assert "40 rows, 3 features" in captured.out
    assert main(["compare", "--csv", str(path), "--targets", "y", "--models", "pooled",
                 "--drop", "row,pupil", "--keep", "day", "--cv", "2", "--out", str(out),
                 "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    assert "40 rows, 29 features" in captured.out  # x, sex, 28 days - 1


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([f"2024-03-{d:02d}" for d in range(1, 13)], "date"),
        (["Jan", "Feb", "Mar", "Apr"] * 3, None),  # month names: categories, not dates
        ([f"C{i}" for i in range(12)], "id"),
        (list(range(100, 112)), "id"),
        ([float(i) for i in range(12)], "id"),
        ([i + 0.5 for i in range(12)], None),  # a real-valued feature
        (list(range(9)), None),  # too few values to tell
        ([True, False] * 6, None),
        (["a", "b", "a", "c"] * 3, None),
    ],
)
def test_id_and_date_detection(values, kind):
    import pandas as pd

    from skmtl.cli import _odd_column

    assert _odd_column(pd.Series(values), pd) == kind


def test_line_numbers_stay_right_after_unlabelled_rows_are_left_out(tmp_path, capsys):
    # line 3 has no target (left out), line 5 no feature: the error still says line 5
    path = tmp_path / "d.csv"
    path.write_text("task,x,y\na,1,2\na,2,\nb,3,4\nb,,5\n")
    assert main(["compare", "--csv", str(path), "--targets", "y", "--task-column", "task",
                 "--out", str(tmp_path / "o")]) == 2
    assert "Left out 1 row(s) with an empty 'y' (line(s) 3)." in capsys.readouterr().out
    assert main(["compare", "--csv", str(path), "--targets", "y", "--task-column", "task",
                 "--out", str(tmp_path / "o")]) == 2
    assert_one_line_error(capsys, "Feature column 'x' has empty cells (line(s) 5)")


@pytest.mark.parametrize(("argv", "message"), [
    (["compare", "--csv", "a.csv", "--dataset", "exam"],
     "skmtl compare: error: argument --dataset: not allowed with argument --csv "
     "(see skmtl compare --help)"),
    (["compare", "--cv", "x"],
     "skmtl compare: error: argument --cv: invalid int value: 'x' (see skmtl compare --help)"),
])
def test_usage_errors_are_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [message]
