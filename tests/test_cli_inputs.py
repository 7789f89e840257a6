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
        # pandas reads TRUE / FALSE as booleans: they were "whole numbers with 2 values"
        ([True, False, False, True], "classification", "holds true / false values"),
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


def test_task_ids_written_as_whole_floats_are_whole_numbers(tmp_path, capsys):
    """A task column written 1.0, 2.0 (a spreadsheet's export) gave the text tasks '1.0',
    '2.0', so that --focus 1 was "not a task of the data"."""
    rng = np.random.RandomState(0)
    rows = [[f"{t:.1f}", *rng.normal(size=2)] for t in [1, 2] * 20]
    path = write_csv(tmp_path / "d.csv", ["task", "x", "y"], rows)
    assert main(["compare", "--csv", str(path), "--targets", "y", "--task-column", "task",
                 "--models", "pooled", "--cv", "2", "--out", str(tmp_path / "o"),
                 "--quiet"]) == 0
    assert {r["task"] for r in read_scores(tmp_path / "o")} == {"1", "2"}
    assert main(["compare", "--csv", str(path), "--targets", "y", "--task-column", "task",
                 "--focus", "1", "--strategies", "multi_task", "--cv", "2", "--out",
                 str(tmp_path / "f"), "--quiet"]) == 0


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
        # a column named twice was a traceback from pandas (a frame where a Series was meant)
        ("x,y\n1,2\n", ["--targets", "y,y"], "--targets names 'y' twice; name each column "
         "once."),
        ("x,w,y\n1,2,3\n", ["--targets", "y", "--drop", "w,x,w"], "--drop names 'w' twice"),
        # were ignored without a word
        ("x,y\n1,2\n", ["--targets", "y", "--keep", "y"],
         "--keep y: a target or task column is no feature"),
        ("x,w,y\n1,a,3\n", ["--targets", "y", "--keep", "w", "--drop", "w"],
         "Column(s) ['w'] are in both --keep and --drop"),
        ("x,y\n1,2\n", ["--targets", "y", "--task-column", "y"],
         "--task-column y is also the target column"),
        # --group-column: the folds keep its groups whole
        ("x,g,y\n1,a,2\n", ["--targets", "y", "--group-column", "zz"],
         "Column(s) ['zz'] of --group-column are not in"),
        ("x,y\n1,2\n", ["--targets", "y", "--group-column", "y"],
         "--group-column y is also the target column"),
        ("x,t,y\n1,a,2\n", ["--targets", "y", "--task-column", "t", "--group-column", "t"],
         "--group-column t is also the task column"),
        ("x,g,y\n1,a,2\n", ["--targets", "y", "--group-column", "g", "--keep", "g"],
         "--keep g: the --group-column is no feature"),
        ("x,g,y\n1,a,2\n2,,3\n", ["--targets", "y", "--group-column", "g"],
         "Group column 'g' is empty on line(s) 3 of"),
        ("x,g,y\n1,a,2\n2,a,3\n3,b,4\n4,b,1\n5,a,2\n6,b,7\n",
         ["--targets", "y", "--group-column", "g"],
         "--group-column 'g' has 2 group(s): too few for 5 folds, each of which holds whole "
         "groups; use --cv 2 or less."),
        ("x,g,y\n1,a,2\n2,a,3\n3,a,4\n", ["--targets", "y", "--group-column", "g"],
         "--group-column 'g' has a single group: folds that keep groups whole need 2 or more."),
        ("x,g,t,y\n1,a,u,2\n2,a,u,3\n3,b,v,4\n4,b,v,1\n5,c,v,2\n6,c,v,7\n",
         ["--targets", "y", "--task-column", "t", "--group-column", "g", "--cv", "3"],
         "MultiTaskGroupKFold found no split with n_splits=3 in which task(s) 'u' keep "
         "observed labels in every training fold: their labels sit in too few groups."),
        ("x,y\n1,a\n2,b\n", ["--targets", "y", "--task-type", "regression"],
         "column 'y' holds text ('a' on line(s) 2, 3)"),
        ("x,y\n1,2\n2,3\n", ["--targets", "y", "--drop", "x"],
         "No feature column in"),
        ("x,y\n1,2\n,3\n", ["--targets", "y"],
         "Feature column 'x' has empty cells (line(s) 3)"),
        ("x,y\n1,2\n", [], "--csv needs --targets"),
        # a class label cannot have a fraction (scikit-learn's "Unknown label type:
        # continuous" came after the fitting had started)
        ("x,y\n1,0.5\n2,1\n3,2.25\n", ["--targets", "y", "--task-type", "classification"],
         "--task-type classification needs class labels, but column 'y' holds numbers with "
         "fractions (0.5 on line(s) 2, 4), which are no class labels. Leave --task-type out "
         "for regression."),
        ("x,y,z\n1,0.5,a\n2,1,b\n3,2,a\n", ["--targets", "y,z"],
         "Target column 'z' holds text ('a' on line(s) 2, 3, 4), so the targets are class "
         "labels, but column 'y' holds numbers with fractions (0.5 on line(s) 2), which are "
         "no class labels. One comparison has one task type"),
        ("x,y\n1,2\n", ["--targets", "y"], "No task has 2 labels or more"),
        (b"x,y\n\xff\xfe,\x81\n", ["--targets", "y"],
         "is not utf-8 text: line 2 has the byte(s) b'\\xff' in '\ufffd\ufffd,\ufffd'."),
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
    # a folder where a results file goes: the fits ran, then "[Errno 21] Is a directory"
    (lambda p: (p / "scores.csv").mkdir(parents=True),
     "has folder(s) named scores.csv, the name(s) of the results files it writes: move them, "
     "or give another folder."),
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
        ([f"Mar {d}" for d in range(1, 13)], "date"),  # a month and a day: dates
        # the parser reads "m12" as 12 seconds past midnight and "t10" as day 10: ids
        ([f"m{i}" for i in range(12)], "id"),
        ([f"t{i}" for i in range(1, 13)], "id"),
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


@pytest.mark.parametrize(
    ("values", "tasks", "kind"),
    [
        # 12 molecules, each on 2 or 3 of 3 targets: distinct within a target, repeated across
        ([f"m{i}" for i in range(12)] * 2 + [f"m{i}" for i in range(6)], None, "sample id"),
        (list(range(100, 112)) * 2 + list(range(100, 106)), None, "sample id"),
        ([float(i) for i in range(12)] * 2 + [float(i) for i in range(6)], None, "sample id"),
        # a value twice in one target: no id
        ([f"m{i}" for i in range(12)] * 2 + ["m0"] * 6, None, None),
        # real values, or categories: no id
        ([i + 0.5 for i in range(12)] * 2 + [i + 0.5 for i in range(6)], None, None),
        (["a", "b", "c"] * 10, ["t0", "t1", "t2"] * 10, None),  # each target's rows alike
        # 9 molecules: too few values to tell
        ([f"m{i}" for i in range(9)] * 2, ["t0"] * 9 + ["t1"] * 9, None),
        # targets of 5 rows: distinct values in so few rows say nothing
        ([f"m{i}" for i in range(5)] * 6, [f"t{t}" for t in range(6) for _ in range(5)], None),
    ],
)
def test_sample_id_detection_in_long_data(values, tasks, kind):
    import pandas as pd

    from skmtl.cli import _odd_column

    if tasks is None:
        tasks = ["t0"] * 12 + ["t1"] * 12 + ["t2"] * (len(values) - 24)
    assert _odd_column(pd.Series(values), pd, np.array(tasks)) == kind
    assert _odd_column(pd.Series(values), pd) is None  # wide data: no task to tell by


def test_a_sample_id_of_long_data_is_flagged_and_proposed_as_group_column(tmp_path, capsys):
    """Long data, a molecule per target row: its text id is dropped (not one-hot encoded), its
    number kept, both with a warning proposing --group-column; named as the group column, the
    text id is no feature and no warning is left for it."""
    rng = np.random.RandomState(0)
    rows = []
    for m in range(30):
        x = rng.normal(size=2)
        for target in rng.choice(["D2", "D3", "D4"], size=rng.randint(1, 4), replace=False):
            rows.append([f"CCN{m}", 500 + m, target, *x, x.sum() + rng.normal()])
    path = write_csv(tmp_path / "long.csv", ["smiles", "mol_no", "target", "x0", "x1", "pki"],
                     rows)
    base = ["compare", "--csv", str(path), "--targets", "pki", "--task-column", "target",
            "--models", "pooled", "--cv", "2", "--out", str(tmp_path / "o"), "--quiet"]
    assert main(base) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("skmtl: warning")]
    assert warnings == [
        "skmtl: warning: column 'smiles' looks like the id of the samples (30 distinct text "
        "values, none twice in a task, repeated across tasks): dropped, not one-hot encoded "
        "into 29 features; keep it with --keep smiles. To keep each sample's rows in one "
        "fold, pass --group-column smiles.",
        "skmtl: warning: column 'mol_no' looks like the id of the samples (30 distinct whole "
        "numbers, none twice in a task, repeated across tasks): kept as a numeric feature; "
        "drop it with --drop mol_no. To keep each sample's rows in one fold, pass "
        "--group-column mol_no.",
    ]
    assert f"{len(rows)} rows, 3 features" in captured.out  # mol_no, x0, x1
    assert main(base + ["--group-column", "smiles", "--drop", "mol_no"]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    assert f"{len(rows)} rows, 2 features" in captured.out


def test_per_task_numbering_is_no_sample_id_and_row_numbers_do_not_hide_one(tmp_path, capsys):
    """Pupils numbered 1..n in every school differ within a school and repeat across schools,
    but their rows differ in the features: no sample. A row number beside a molecule's id
    differs on every row: it does not hide that the molecule's rows are alike."""
    rng = np.random.RandomState(1)
    rows = [[school, pupil, *rng.normal(size=2)] for school in "ABC" for pupil in range(1, 13)]
    rows = [row + [row[2] + rng.normal()] for row in rows]
    path = write_csv(tmp_path / "schools.csv", ["school", "pupil", "x0", "x1", "y"], rows)
    assert main(["compare", "--csv", str(path), "--targets", "y", "--task-column", "school",
                 "--models", "pooled", "--cv", "2", "--out", str(tmp_path / "o"),
                 "--quiet"]) == 0
    assert "id of the samples" not in capsys.readouterr().err
    rows = []
    for m in range(20):
        x = rng.normal(size=2)
        rows += [[len(rows) + k, f"CCN{m}", t, *x, x.sum() + rng.normal()]
                 for k, t in enumerate(["D2", "D3"])]
    path = write_csv(tmp_path / "mols.csv", ["", "smiles", "target", "x0", "x1", "pki"], rows)
    assert main(["compare", "--csv", str(path), "--targets", "pki", "--task-column",
                 "target", "--models", "pooled", "--cv", "2", "--out", str(tmp_path / "o"),
                 "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "column 'smiles' looks like the id of the samples (20 distinct text values" in err
    assert "column 'Unnamed: 0' looks like an id (40 distinct whole numbers)" in err


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


# -- numbers with stray text, infinite values (features and targets) --------------------------
def numeric_rows(n=30, seed=0):
    """Rows of a wide regression file: x (fractions), visits (whole numbers 0-11), sales_a and
    sales_b (fractions)."""
    rng = np.random.RandomState(seed)
    x = rng.normal(size=n).round(3)
    visits = rng.randint(0, 12, size=n)
    return [[x[i], visits[i], round(2 * x[i] + rng.normal(), 3),
             round(x[i] - visits[i] / 10 + rng.normal(), 3)] for i in range(n)]


def numeric_csv(path, cells):
    """A wide regression CSV with ``cells`` ({(row, column): value}) overwritten; row 0 is
    on line 2 of the file."""
    header = ["x", "visits", "sales_a", "sales_b"]
    rows = numeric_rows()
    for (row, column), value in cells.items():
        rows[row][header.index(column)] = value
    return write_csv(path, header, rows)


def run_numeric(tmp_path, *extra, targets="sales_a,sales_b"):
    return main(["compare", "--csv", str(tmp_path / "d.csv"), "--targets", targets,
                 "--models", "pooled", "--cv", "2", "--out", str(tmp_path / "o"), "--quiet",
                 *extra])


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        # the audit's cases: a word in a whole-number column, a typo and a decimal comma in a
        # column of fractions; each was one-hot encoded without an error
        ({(15, "visits"): "unknown"},
         "Feature column 'visits' holds numbers, but 1 of its cells is not a number: "
         "'unknown' on line(s) 17; fix those cells, drop the column with --drop visits, or "
         "one-hot encode its values as categories with --keep visits."),
        ({(10, "x"): "abc"},
         "Feature column 'x' holds numbers, but 1 of its cells is not a number: 'abc' on "
         "line(s) 12; fix those cells, drop the column with --drop x"),
        ({(10, "x"): "1,5"},
         "'1,5' on line(s) 12 (write numbers with a decimal point, without thousands "
         "separators, percent or currency signs)"),
        # every cell with a percent sign: was one-hot encoded, a feature per value
        ({(i, "visits"): f"{v}%" for i, v in enumerate(numeric_rows()[k][1] for k in range(30))},
         "Feature column 'visits' holds numbers, but 30 of its cells are not a number: "),
        # 3 cells of 30 (10 %), two values, and a second column at fault
        ({(3, "x"): "?", (7, "x"): "missing", (20, "x"): "?", (4, "visits"): "many"},
         "Feature column 'x' holds numbers, but 3 of its cells are not a number: '?' on "
         "line(s) 5, 22; 'missing' on line(s) 9; fix those cells, drop the column with --drop x, "
         "or one-hot encode its values as categories with --keep x. Column(s) ['visits'] "
         "have such cells too."),
        # a blank (a space) is an empty cell, as it looks (it was one-hot encoded as a value)
        ({(2, "visits"): " "}, "Feature column 'visits' has empty cells (line(s) 4)"),
    ],
)
def test_numbers_with_stray_text_in_a_feature_are_an_error(tmp_path, capsys, cells, message):
    numeric_csv(tmp_path / "d.csv", cells)
    assert run_numeric(tmp_path) == 2
    assert_one_line_error(capsys, message)


def test_spaces_around_text_cells_are_not_part_of_the_value(tmp_path, capsys):
    from skmtl.cli import _build_parser, _load_csv

    rng = np.random.RandomState(0)
    rows = [[x, "yes" if x > 0 else "no", "a" if i % 2 else "b", f" {i % 3} ", "red"]
            for i, x in enumerate(rng.normal(size=12).round(3))]
    rows[2][1] = rows[2][1] + " "  # 'yes ' or 'no ': was a third class
    rows[3][2] = " "  # was the class ' '
    rows[4][4] = " blue"
    path = write_csv(tmp_path / "d.csv", ["x", "t1", "t2", "n", "colour"], rows)
    args = _build_parser().parse_args(["compare", "--csv", str(path), "--targets", "t1,t2"])
    X, Y, _, _, task_type, _, notes = _load_csv(args)
    assert task_type == "classification"
    assert set(Y["t1"]) == {"yes", "no"}
    assert Y["t2"].isna().tolist() == [i == 3 for i in range(12)]  # a missing label
    # ' 0 ' is the number 0 (as pandas reads ' 0' alone); 'blue' and 'red', two categories
    np.testing.assert_array_equal(X[:, 1], [i % 3 for i in range(12)])
    colour = X[:, 2]
    assert set(np.delete(colour, 4)) == {colour[0]} and colour[4] != colour[0]
    assert X.shape == (12, 3)
    err = capsys.readouterr().err
    assert (f"column 't1' has values that differ only by spaces around them ({rows[2][1]!r} on "
            f"line(s) 4): read as {rows[2][1].strip()!r}.") in err
    assert "column 't2'" not in err  # a cell of spaces is empty: nothing merged


def test_spaces_are_stripped_from_the_strings_of_a_mixed_column(capsys):
    # an object column (pandas' mixed types) keeps its non-strings as they are
    import pandas as pd

    from skmtl.cli import _strip_text_cells

    frame = pd.DataFrame({"a": pd.Series([1, " x", "x", " "], dtype=object),
                          "b": pd.Series([" 1", "2 ", None, " "], dtype=object)})
    notes = []
    out = _strip_text_cells(frame, pd, notes)
    assert out["a"].tolist()[:3] == [1, "x", "x"] and pd.isna(out["a"].iloc[3])
    np.testing.assert_array_equal(out["b"].to_numpy(dtype=float), [1.0, 2.0, np.nan, np.nan])
    assert notes == ["Warning: column 'a' has values that differ only by spaces around them "
                     "(' x' on line(s) 3): read as 'x'."]


def test_keep_or_drop_a_column_of_numbers_with_stray_text(tmp_path, capsys):
    numeric_csv(tmp_path / "d.csv", {(15, "visits"): "unknown"})
    visits = [str(r[1]) for r in numeric_rows()]
    visits[15] = "unknown"
    # --keep: its values one-hot encoded, deliberately: x and (distinct values - 1) columns
    assert run_numeric(tmp_path, "--keep", "visits") == 0
    assert f"30 rows, {len(set(visits))} features" in capsys.readouterr().out
    assert run_numeric(tmp_path, "--drop", "visits") == 0
    assert "30 rows, 1 features" in capsys.readouterr().out


def test_text_columns_that_are_not_numbers_are_still_one_hot_encoded(tmp_path, capsys):
    # categories among which numbers are few, or more than 10 % of the cells are text: a
    # genuine text column, one-hot encoded as before
    rows = numeric_rows()
    grades = (["K", "1", "2", "3", "4", "5", "6", "7", "8"] * 4)[:30]  # K on 4 of 30 rows
    sizes = (["S", "M", "L", "10"] * 8)[:30]
    write_csv(tmp_path / "d.csv", ["x", "grade", "size", "sales_a", "sales_b"],
              [[r[0], g, s, r[2], r[3]] for r, g, s in zip(rows, grades, sizes)])
    assert run_numeric(tmp_path) == 0
    captured = capsys.readouterr()
    assert "30 rows, 12 features" in captured.out  # x, 9 - 1 grades, 4 - 1 sizes
    assert "warning" not in captured.err


@pytest.mark.parametrize(
    ("values", "stray"),
    [
        (["1", "2", "x"], [2]),  # all but one cell
        ([str(i) for i in range(18)] + ["?", "?"], [18, 19]),  # 2 of 20: 10 %
        ([str(i) for i in range(17)] + ["?", "?", "?"], None),  # 3 of 20: 15 %
        (["1", "x"], None),  # fewer than 2 numbers
        (["a", "b", "1"], None),
        (["1.5", None, "2", "abc"], [3]),  # empty cells are not counted
        ([1.0, 2.0, 3.0], None),  # a numeric column
        # numbers written with a decimal comma or thousands separators, however many
        (["1,5", "2,25", "-0,5", None], [0, 1, 2]),
        (["1,250", "12,000.5", "3", "4"], [0, 1]),
        (["1,5", "abc", "2,5"], None),  # categories, some of which look like numbers
        (["a,b", "1,2,3"], None),
        # numbers with a percent or currency sign, however many
        (["12%", "5 %", "-7.5%", ".5%"], [0, 1, 2, 3]),
        (["$1,200", "€ 3", "4.5 £", "-$2", "1"], [0, 1, 2, 3]),
        (["5%", "high", "10%"], None),  # categories
        (["S", "M", "L", "10"], None),
        (["1st", "2nd", "3rd"], None),
    ],
)
def test_the_stray_text_rule(values, stray):
    import pandas as pd

    from skmtl.cli import _stray_text

    mask = _stray_text(pd.Series(values), pd)
    assert (None if mask is None else np.flatnonzero(mask).tolist()) == stray


def test_stray_text_in_a_regression_target_names_its_cell(tmp_path, capsys):
    # the audit's case: a ? in sales_b made the targets classification, then the error
    # blamed sales_a ("Unknown label type: continuous")
    numeric_csv(tmp_path / "d.csv", {(20, "sales_b"): "?"})
    assert run_numeric(tmp_path) == 2
    assert_one_line_error(
        capsys, "Target column 'sales_b' holds numbers, but 1 of its cells is not a number: "
        "'?' on line(s) 22; fix those cells, or empty them (an empty target cell is a missing "
        "label); if its values are class labels, say so with --task-type classification.")
    # said so: the ? is a class like the others, and the numbers with fractions are not
    # classes, which is refused before any fitting, naming that column
    assert run_numeric(tmp_path, "--task-type", "classification") == 2
    assert_one_line_error(capsys, "--task-type classification needs class labels, but column "
                          "'sales_a' holds numbers with fractions")


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        ({(4, "x"): "inf"},
         "Feature column 'x' has infinite values (line(s) 6: inf, or a number too large for a "
         "float); fix those cells, or drop the column with --drop x."),
        ({(4, "visits"): "-inf", (9, "visits"): "1e400"},
         "Feature column 'visits' has infinite values (line(s) 6, 11: inf"),
        ({(7, "sales_b"): "inf"},
         "Target column 'sales_b' has infinite values (line(s) 9: inf, or a number too large "
         "for a float); labels must be finite: fix those cells, or empty them (an empty target "
         "cell is a missing label)."),
    ],
)
def test_infinite_values_name_their_column_and_lines(tmp_path, capsys, cells, message):
    numeric_csv(tmp_path / "d.csv", cells)
    assert run_numeric(tmp_path) == 2
    assert_one_line_error(capsys, message)


def test_help_states_the_stray_text_rule(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert ("numbers with a few cells that are not (which is otherwise an error: a column whose "
            "non-empty cells are numbers but for one cell, or but for at most 10% of them, or "
            "numbers written with a decimal comma, thousands separators, a percent or currency "
            "sign: 1,5 or 1,250 or 12% or $5)") in text.replace("non- empty", "non-empty")


# -- classification: numeric labels with --focus, a task of one class --------------------------
def classification_rows(n=60, seed=0):
    """x1, x2 and three 0/1 labels that depend on them."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 2))
    labels = (X @ [[1.0, 0.5, -1.0], [0.5, -1.0, 1.0]] + 0.5 * rng.normal(size=(n, 3)) > 0)
    return X.round(3), labels.astype(int)


@pytest.mark.parametrize("layout", ["long", "wide"])
@pytest.mark.parametrize("labels", ["numbers", "text"])
def test_focus_on_classification_with_numeric_or_text_labels(tmp_path, capsys, layout, labels):
    # the audit's case: 0/1 labels failed every --focus run ("Unknown label type: unknown")
    pytest.importorskip("skorch")
    X, Y = classification_rows()
    names = {0: "no", 1: "yes"} if labels == "text" else {0: 0, 1: 1}
    path = tmp_path / "d.csv"
    if layout == "long":
        school = np.repeat(["a", "b", "c"], 20)
        write_csv(path, ["school", "x1", "x2", "passed"],
                  [[s, *x, names[y]] for s, x, y in zip(school, X, Y[:, 0])])
        data, focus, n_focus = ["--targets", "passed", "--task-column", "school"], "b", 20
    else:
        # a missing label on every third row of t1, so the focus column is read with NaN
        rows = [[*x, names[y[0]], "" if i % 3 == 0 else names[y[1]], names[y[2]]]
                for i, (x, y) in enumerate(zip(X, Y))]
        write_csv(path, ["x1", "x2", "t0", "t1", "t2"], rows)
        data, focus, n_focus = ["--targets", "t0,t1,t2"], "t1", 40
    assert main(["compare", "--csv", str(path), *data, "--focus", focus, "--strategies",
                 "single_task", "--cv", "2", "--out", str(tmp_path / "o"), "--quiet"]) == 0
    assert f"Focus task {focus}: {n_focus} labels." in capsys.readouterr().out
    [row] = read_scores(tmp_path / "o")
    assert (row["model"], row["task"], row["metric"]) == ("single_task", focus, "accuracy")
    assert 0.5 < float(row["score"]) <= 1.0 and int(row["n_observed"]) == n_focus


def test_a_task_of_one_class_is_named_by_its_column(tmp_path, capsys):
    # the audit's case: "Task 3: only the class(es) [0.0] among its 142 training labels ...
    # A model with a shared part (PooledTasks, MeanClusteredClassifier, ...)"
    X, Y = classification_rows()
    rows = [[*x, *y, "" if i % 4 == 0 else 0] for i, (x, y) in enumerate(zip(X, Y))]
    path = write_csv(tmp_path / "d.csv", ["x1", "x2", "churn", "upgrade", "complain",
                                          "refund"], rows)
    assert main(["compare", "--csv", str(path), "--targets", "churn,upgrade,complain,refund",
                 "--models", "pooled", "--cv", "3", "--out", str(tmp_path / "o"),
                 "--quiet"]) == 2
    assert_one_line_error(
        capsys, "Target column 'refund' has one class only, 0.0, among its 45 labels: stl, the "
        "single-task reference that every model (pooled, mean_clustered, ...) is compared "
        "with, fits each task alone and cannot learn from one class. Leave it out of "
        "--targets, or add labels of another class.")


def test_a_class_read_as_missing_is_reported(tmp_path, capsys):
    """A text class called 'None' is read as empty by pandas: a warning names the column and
    the marker, and the task, left with one class, is named by its column (it said "Task 2:
    This solver needs samples of at least 2 classes")."""
    X, Y = classification_rows()
    rows = [[*x, *y[:2], "Some" if i % 3 else "None"] for i, (x, y) in enumerate(zip(X, Y))]
    path = write_csv(tmp_path / "d.csv", ["x1", "x2", "churn", "upgrade", "complain"], rows)
    assert main(["compare", "--csv", str(path), "--targets", "churn,upgrade,complain",
                 "--models", "pooled", "--cv", "3", "--quiet"]) == 2
    captured = capsys.readouterr()
    assert ("skmtl: warning: column 'complain' has cells read as empty, as pandas reads CSV "
            "files (20 x 'None'); if a marker is a value (a class or category called 'None' "
            "or 'NA'), rename it in the file.") in captured.err
    assert ("skmtl: error: Target column 'complain' has one class only, 'Some', among its 40 "
            "labels") in captured.err
    # renamed, the class is a class: the run goes through, and the report keeps the notes
    path.write_text(path.read_text().replace("None", "Nothing"))
    out = tmp_path / "o"
    assert main(["compare", "--csv", str(path), "--targets", "churn,upgrade,complain",
                 "--models", "pooled", "--cv", "3", "--quiet", "--out", str(out)]) == 0
    assert "read as empty" not in capsys.readouterr().err


def test_left_out_rows_and_tasks_are_in_the_report(tmp_path, capsys):
    """Rows without a label (long data) and tasks too small to split are said on stdout and
    kept in report.html's notes."""
    X, Y = classification_rows()
    school = np.repeat(["a", "b", "c"], 20)
    score = X[:, 0] + 0.1 * np.arange(len(X))
    cells = [[s, *x, "" if i in (3, 7) else v]
             for i, (s, x, v) in enumerate(zip(school, X, score))]
    cells += [["lonely", 0.5, 0.5, 1.0]]
    path = write_csv(tmp_path / "d.csv", ["school", "x1", "x2", "score"], cells)
    out = tmp_path / "o"
    assert main(["compare", "--csv", str(path), "--targets", "score", "--task-column",
                 "school", "--models", "pooled", "--cv", "2", "--out", str(out),
                 "--quiet"]) == 0
    stdout = capsys.readouterr().out
    report = (out / "report.html").read_text()
    for note in ("Left out 2 row(s) with an empty &#x27;score&#x27; (line(s) 5, 9).",
                 "Left out 1 task(s) with fewer than 2 labels, which cross-validation cannot "
                 "split: lonely."):
        assert f"<li>{note}</li>" in report
        assert note.replace("&#x27;", "'") in stdout


def test_a_long_task_with_a_rare_class_is_named_with_the_advice_for_folds(tmp_path, capsys):
    X, Y = classification_rows()
    school = np.repeat(["a", "b", "c"], 20)
    passed = Y[:, 0].copy()
    passed[school == "c"] = 1
    passed[np.flatnonzero(school == "c")[0]] = 0  # one 0 among 20: a fold trains without it
    path = write_csv(tmp_path / "d.csv", ["school", "x1", "x2", "passed"],
                     [[s, *x, y] for s, x, y in zip(school, X, passed)])
    assert main(["compare", "--csv", str(path), "--targets", "passed", "--task-column",
                 "school", "--models", "pooled", "--cv", "2", "--out", str(tmp_path / "o"),
                 "--quiet"]) == 2
    assert_one_line_error(
        capsys, "Task 'c' has only the class(es) [1] among its 10 training labels in a fold "
        "(the classes are [0, 1]): stl, the single-task reference that every model (pooled, "
        "mean_clustered, ...) is compared with, fits each task alone and cannot learn from "
        "one class. Its other class(es) are too rare to be in every training fold: use fewer "
        "folds (--cv) or more labels, or remove its rows.")


def test_numbers_with_decimal_commas_are_an_error(tmp_path, capsys):
    # a quoted decimal comma in every cell: the column was one-hot encoded, each distinct
    # number a feature of its own
    rows = numeric_rows()
    write_csv(tmp_path / "d.csv", ["x", "visits", "sales_a", "sales_b"],
              [[f"{r[0]:.2f}".replace(".", ","), *r[1:]] for r in rows])
    assert run_numeric(tmp_path) == 2
    first = [f"{r[0]:.2f}".replace(".", ",") for r in rows[:3]]
    assert_one_line_error(
        capsys, f"Feature column 'x' holds numbers, but {len(rows)} of its cells are not a "
        f"number: {first[0]!r} on line(s) 2; {first[1]!r} on line(s) 3; {first[2]!r} on "
        f"line(s) 4; and {len(rows) - 3} other value(s) (write numbers with a decimal point, "
        "without thousands separators, percent or currency signs; for a whole file written "
        "with decimal commas, read it with --decimal ','); fix those cells, drop the column "
        "with --drop x, or one-hot encode its values as categories with --keep x.")


def test_a_semicolon_file_read_without_decimal_names_it(tmp_path, capsys):
    """--sep ';' without --decimal ',' on a file of decimal commas: the error said the
    target "holds numbers" and suggested --task-type classification, never --decimal ','
    (which the docs promise)."""
    rows = _city_rows()
    (tmp_path / "e.csv").write_text(_european(rows), encoding="utf-8")
    assert main(["compare", "--csv", str(tmp_path / "e.csv"), "--targets", "y", "--sep", ";",
                 "--models", "stl", "--cv", "3", "--out", str(tmp_path / "o"),
                 "--quiet"]) == 2
    assert_one_line_error(capsys, "; for a whole file written with decimal commas, read it "
                                  "with --decimal ',')")
    # thousands separators with a decimal point are no decimal commas: no such advice
    write_csv(tmp_path / "d.csv", ["x", "visits", "sales_a", "sales_b"],
              [[f"{1000 * abs(r[0]) + 1000:,.1f}", *r[1:]] for r in numeric_rows()])
    assert run_numeric(tmp_path) == 2
    message = capsys.readouterr().err
    assert "thousands separators, percent or currency signs);" in message
    assert "--decimal" not in message


def test_spaces_around_header_names_are_not_part_of_them(tmp_path, capsys):
    """A file written with ", " between its columns: --targets "exam score" was "not in
    the file" (its columns were ' exam score', ...), and could not be named at all."""
    rng = np.random.RandomState(0)
    rows = [[s, f"{x:.4f}", f"{2 * x + e:.4f}"] for s, x, e in zip(
        np.repeat([1, 2, 3], 12), rng.normal(size=36), rng.normal(size=36))]
    write_csv(tmp_path / "plain.csv", ["school id", "x", "exam score"], rows)
    (tmp_path / "spaced.csv").write_text(
        "school id, x, exam score\n" + "".join(", ".join(map(str, r)) + "\n" for r in rows))
    for name in ("plain", "spaced"):
        assert main(["compare", "--csv", str(tmp_path / f"{name}.csv"), "--targets",
                     "exam score", "--task-column", " school id", "--models", "stl", "pooled",
                     "--cv", "3", "--out", str(tmp_path / name), "--quiet"]) == 0
    assert read_scores(tmp_path / "spaced") == read_scores(tmp_path / "plain")
    # names that differ only by spaces are one name written twice
    (tmp_path / "twice.csv").write_text("a, a,y\n1,2,3\n4,5,6\n")
    assert main(["compare", "--csv", str(tmp_path / "twice.csv"), "--targets", "y", "--out",
                 str(tmp_path / "o"), "--quiet"]) == 2
    assert_one_line_error(capsys, "has two columns named 'a' (columns 1 and 2 of its header)")


def test_a_file_separated_by_semicolons_is_named(tmp_path, capsys):
    path = tmp_path / "d.csv"
    path.write_text("school;score;hours\nA;1,5;3\nA;2,5;4\nB;3,1;5\nB;4,0;6\n")
    assert main(["compare", "--csv", str(path), "--targets", "score", "--task-column",
                 "school", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert_one_line_error(
        capsys, f"--csv {path} was read as one column, 'school;score;hours', with ',' between "
        "the columns: it looks separated by ';'. Give --sep ';' (and --decimal ',' if its "
        "numbers are written 1,5).")


def _european(rows):
    """``rows`` (text cells, decimal points) as a spreadsheet in a locale whose decimal mark
    is a comma saves them: ';' between the columns, decimal commas."""
    return "\n".join(";".join(cell.replace(".", ",") for cell in row) for row in rows) + "\n"


@pytest.mark.parametrize("sep", [";", "tab"])
def test_sep_and_decimal_read_a_european_or_tab_separated_file(tmp_path, capsys, sep):
    """Such a file was refused ("Save it with commas"); with --sep (and --decimal) it gives
    the scores of the same data written with commas and decimal points."""
    rows = _city_rows()
    _write_text(tmp_path / "c.csv", rows, "utf-8")
    if sep == ";":
        (tmp_path / "e.csv").write_text(_european(rows), encoding="utf-8")
        extra = ["--sep", ";", "--decimal", ","]
    else:
        (tmp_path / "e.csv").write_text("\n".join("\t".join(r) for r in rows) + "\n",
                                        encoding="utf-8")
        extra = ["--sep", "\\t"]  # as typed in a shell: backslash t

    def run(name, *more):
        return main(["compare", "--csv", str(tmp_path / name), "--targets", "y", "--models",
                     "stl", "pooled", "--cv", "3", "--out", str(tmp_path / name[0]), "--quiet",
                     *more])

    assert run("c.csv") == 0
    assert run("e.csv", *extra) == 0
    assert read_scores(tmp_path / "e") == read_scores(tmp_path / "c")


@pytest.mark.parametrize(("extra", "message"), [
    (["--sep", ";;"], "--sep ';;' must be one character that is neither a letter, a digit, "
                      "a quote nor a line break."),
    (["--decimal", "d"], "--decimal 'd' must be one character"),
    (["--sep", ";", "--decimal", ";"], "--sep and --decimal are both ';': a number's decimal "
                                       "mark cannot also separate the columns."),
])
def test_bad_sep_or_decimal_is_named(tmp_path, capsys, extra, message):
    path = _write_text(tmp_path / "d.csv", _city_rows(), "utf-8")
    assert main(["compare", "--csv", str(path), "--targets", "y", "--out",
                 str(tmp_path / "o"), "--quiet", *extra]) == 2
    assert_one_line_error(capsys, message)


def _city_rows():
    """A header and 30 rows of x, a city (Bern, Genève, Zürich in turn) and y."""
    rng = np.random.RandomState(0)
    x, noise = rng.normal(size=30), rng.normal(size=30)
    cities = ["Bern", "Genève", "Zürich"] * 10
    return [["x", "city", "y"]] + [[f"{a:.6f}", c, f"{2 * a + 0.1 * e:.6f}"]
                                   for a, c, e in zip(x, cities, noise)]


def _write_text(path, rows, encoding):
    path.write_bytes("\n".join(",".join(row) for row in rows).encode(encoding) + b"\n")
    return path


def test_a_file_in_another_encoding_names_its_line_and_reads_with_encoding(tmp_path, capsys):
    """A plain CSV saved by Excel on Windows (cp1252): an error naming the first line UTF-8
    cannot read and the fix (it was a bare "'utf-8' codec can't decode byte 0xe8 in position
    3"); with --encoding cp1252 it gives the scores of the same file in UTF-8 (with a
    byte-order mark, as Excel's CSV UTF-8)."""
    rows = _city_rows()
    path = _write_text(tmp_path / "d.csv", rows, "cp1252")
    utf8 = _write_text(tmp_path / "u.csv", rows, "utf-8-sig")

    def run(csv_path, out, *more):
        return main(["compare", "--csv", str(csv_path), "--targets", "y", "--models", "stl",
                     "pooled", "--cv", "3", "--out", str(tmp_path / out), "--quiet", *more])

    assert run(path, "o") == 2
    line = ",".join(rows[2]).replace("è", "\ufffd")  # line 3: the first Genève
    assert_one_line_error(
        capsys, f"--csv {path} is not utf-8 text: line 3 has the byte(s) b'\\xe8' in "
        f"{line[:60]!r}. Save it as UTF-8 (Excel: CSV UTF-8), or give its encoding with "
        "--encoding (a file saved by Excel as plain CSV on Windows is usually cp1252).")
    assert run(path, "o", "--encoding", "cp1252") == 0
    assert run(utf8, "u") == 0
    assert read_scores(tmp_path / "o") == read_scores(tmp_path / "u")
    assert run(path, "o", "--encoding", "klingon") == 2
    assert_one_line_error(capsys, "--encoding klingon is not a text encoding Python knows "
                          "(e.g. utf-8, cp1252, latin-1).")


def test_a_repeated_column_name_is_an_error(tmp_path, capsys):
    """pandas reads a second 'x' as 'x.1', a column the user never named: an error."""
    rows = numeric_rows()
    path = write_csv(tmp_path / "d.csv", ["x", "visits", "x", "sales_a", "sales_b"],
                     [[r[0], r[1], r[0] + 1, *r[2:]] for r in rows])
    assert main(["compare", "--csv", str(path), "--targets", "sales_a,sales_b",
                 "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert_one_line_error(capsys, f"--csv {path} has two columns named 'x' (columns 1 and 3 "
                          "of its header): give every column its own name.")


@pytest.mark.parametrize("commas", [1, 2])
def test_columns_without_name_or_value_are_left_out_with_a_warning(tmp_path, capsys, commas):
    """A comma ending every line (a spreadsheet's export) made an unnamed column of empty
    cells, an error ("Feature column 'Unnamed: 5' has empty cells"); two made two empty
    names, which are no repeated name. They are left out, with a warning: the scores of the
    file without them. An unnamed column with values stays (pandas' index column)."""
    header = ["x", "visits", "sales_a", "sales_b"]
    plain = write_csv(tmp_path / "plain.csv", header, numeric_rows())
    lines = plain.read_text().splitlines()
    trailing = tmp_path / "trailing.csv"
    trailing.write_text("\n".join(line + "," * commas for line in lines) + "\n")
    for path, out in [(plain, "p"), (trailing, "t")]:
        assert main(["compare", "--csv", str(path), "--targets", "sales_a,sales_b", "--models",
                     "stl", "pooled", "--cv", "3", "--out", str(tmp_path / out),
                     "--quiet"]) == 0
    err = capsys.readouterr().err
    columns = ", ".join(str(5 + k) for k in range(commas))
    assert (f"skmtl: warning: column(s) {columns} of {trailing} have no name and no value (a "
            "comma at the end of every line?): left out.") in err
    assert read_scores(tmp_path / "p") == read_scores(tmp_path / "t")
    # an empty column between others (a spreadsheet's spacer): the columns after it keep
    # their own cells, here a missing marker reported on the right column
    spaced = tmp_path / "spaced.csv"
    rows = [line.split(",") for line in lines]
    rows[3][1] = "NA"
    spaced.write_text("\n".join(",".join(r[:1] + [""] + r[1:]) for r in rows) + "\n")
    assert main(["compare", "--csv", str(spaced), "--targets", "sales_a,sales_b", "--models",
                 "stl", "--cv", "3", "--drop", "visits", "--out", str(tmp_path / "s")]) == 0
    err = capsys.readouterr().err
    assert f"column(s) 2 of {spaced} have no name and no value" in err
    assert "column 'visits' has cells read as empty" not in err  # dropped: not reported
    rows[3][1] = rows[4][1]
    rows[3][2] = "NA"  # sales_a, a target: its marker is reported
    spaced.write_text("\n".join(",".join(r[:1] + [""] + r[1:]) for r in rows) + "\n")
    assert main(["compare", "--csv", str(spaced), "--targets", "sales_a,sales_b", "--models",
                 "stl", "--cv", "3", "--out", str(tmp_path / "s")]) == 0
    assert ("column 'sales_a' has cells read as empty, as pandas reads CSV files (1 x 'NA')"
            in capsys.readouterr().err)
    indexed = tmp_path / "indexed.csv"
    # (the header's first name empty, as pandas writes an index; its header had one field
    # more than its rows, which shifted every column by one and emptied sales_b)
    indexed.write_text("\n".join(f"{'' if i == 0 else i - 1},{line}"
                                 for i, line in enumerate(lines)) + "\n")
    assert main(["compare", "--csv", str(indexed), "--targets", "sales_a,sales_b", "--models",
                 "stl", "--cv", "3", "--out", str(tmp_path / "i")]) == 0
    captured = capsys.readouterr()
    assert "no name and no value" not in captured.err
    assert "column 'Unnamed: 0' looks like an id" in captured.err


def test_a_constant_feature_column_is_dropped_with_a_warning(tmp_path, capsys):
    # a column of 2023 beside the intercepts carries no information (the classifiers pull
    # their intercepts at the mean of X, so it would change no prediction; it is dropped)
    rows = numeric_rows()
    write_csv(tmp_path / "d.csv", ["x", "year", "visits", "sales_a", "sales_b"],
              [[r[0], 2023, *r[1:]] for r in rows])
    assert run_numeric(tmp_path) == 0
    captured = capsys.readouterr()
    assert ("skmtl: warning: column 'year' has the same value on every row (2023): dropped, "
            "as it carries no information.") in captured.err
    assert "30 rows, 2 features" in captured.out
    assert "has the same value on every row (2023): dropped" in (
        tmp_path / "o" / "report.html").read_text()
    # deliberately kept
    assert run_numeric(tmp_path, "--keep", "year") == 0
    assert "30 rows, 3 features" in capsys.readouterr().out
