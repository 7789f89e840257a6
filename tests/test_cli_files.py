"""`skmtl compare --csv`: how the bytes of a file become rows and columns. Every row has a
field per column of the header (never shifted, never silently short), the lines a message
names are the file's, numbers are read by the file's decimal mark, one type per column, and
compressed or differently encoded files are read, or refused in one line naming them."""

import bz2
import gzip
import lzma
import tarfile
import warnings
import zipfile

import numpy as np
import pytest
from test_cli_inputs import (
    assert_one_line_error,
    numeric_csv,
    numeric_rows,
    read_scores,
    run_numeric,
    write_csv,
)

from skmtl.cli import _build_parser, _load_csv, _punctuation_labels, main

HEADER = ["x", "visits", "sales_a", "sales_b"]


def load(path, *extra, targets="sales_a,sales_b"):
    """What `skmtl compare --csv path --targets targets *extra` reads, without a fit."""
    args = _build_parser().parse_args(["compare", "--csv", str(path), "--targets", targets,
                                       *extra])
    return _load_csv(args)


def numeric_lines(cells=None):
    """The lines of numeric_rows() as text, with ``cells`` ({(row, column): value})
    overwritten; row 0 is on line 2."""
    rows = [[str(v) for v in row] for row in numeric_rows()]
    for (row, column), value in (cells or {}).items():
        rows[row][HEADER.index(column)] = value
    return rows


# -- decimal commas ------------------------------------------------------------------------
def _decimal_comma(rows):
    """``rows`` as a spreadsheet in a locale whose decimal mark is a comma saves them: ';'
    between the columns, the roles of ',' and '.' swapped (1,234.5 is 1.234,5)."""
    return "".join(";".join(cell.translate(str.maketrans(".,", ",.")) for cell in row) + "\n"
                   for row in rows)


@pytest.mark.parametrize(("cells", "message"), [
    # the audit's cases: with --decimal ',', each made its column text (a target of 30
    # classes '3,1', '6,2', ..., a feature dropped as an id or one-hot encoded)
    ({(3, "x"): "?"},
     "Feature column 'x' holds numbers, but 1 of its cells is not a number: '?' on line(s) 5; "
     "fix those cells, drop the column with --drop x, or one-hot encode its values as "
     "categories with --keep x."),
    ({(5, "sales_b"): "-"},
     "Target column 'sales_b' holds numbers, but 1 of its cells is not a number: '-' on "
     "line(s) 7; fix those cells, or empty them (an empty target cell is a missing label); if "
     "its values are class labels, say so with --task-type classification."),
])
def test_stray_text_in_a_decimal_comma_file_is_the_error_of_its_point_twin(
        tmp_path, capsys, cells, message):
    rows = numeric_lines(cells)
    point = write_csv(tmp_path / "p.csv", HEADER, rows)
    comma = tmp_path / "c.csv"
    comma.write_text(_decimal_comma([HEADER, *rows]))
    errors = []
    for path, extra in [(point, []), (comma, ["--sep", ";", "--decimal", ","])]:
        assert main(["compare", "--csv", str(path), "--targets", "sales_a,sales_b", "--out",
                     str(tmp_path / "o"), "--quiet", *extra]) == 2
        errors.append(capsys.readouterr().err)
    assert errors[0] == errors[1] == f"skmtl: error: {message}\n"


def test_a_decimal_comma_file_reads_a_blank_cell_as_its_point_twin(tmp_path, capsys):
    """A cell of spaces in a column of decimal commas was an error advising --decimal ','
    (given): it is an empty cell, a missing label, and the numbers are the twin's."""
    rows = numeric_lines({(4, "sales_a"): " ", (6, "x"): "0.5 "})
    point = write_csv(tmp_path / "p.csv", HEADER, rows)
    comma = tmp_path / "c.csv"
    comma.write_text(_decimal_comma([HEADER, *rows]))
    X, Y, *_, notes = load(point)
    X_comma, Y_comma, *_, notes_comma = load(comma, "--sep", ";", "--decimal", ",")
    np.testing.assert_array_equal(X_comma, X)
    np.testing.assert_array_equal(Y_comma.to_numpy(), Y.to_numpy())
    assert Y_comma["sales_a"].isna().tolist() == [i == 4 for i in range(30)]
    assert X_comma[6, 0] == 0.5 and notes_comma == notes


def test_formatted_numbers_in_a_decimal_comma_file_say_how_to_write_them(tmp_path, capsys):
    # 1.234,5 is there what 1,234.5 is in a file of decimal points
    rows = numeric_lines({(3, "x"): "1,234.5"})
    comma = tmp_path / "c.csv"
    comma.write_text(_decimal_comma([HEADER, *rows]))
    assert main(["compare", "--csv", str(comma), "--targets", "sales_a,sales_b", "--sep", ";",
                 "--decimal", ",", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert_one_line_error(
        capsys, "Feature column 'x' holds numbers, but 1 of its cells is not a number: "
        "'1.234,5' on line(s) 5 (write numbers with the decimal mark ',', without thousands "
        "separators, percent or currency signs); fix those cells")


def test_thousands_separators_in_a_comma_separated_file_get_advice_that_works(tmp_path,
                                                                              capsys):
    # --decimal ',' (the advice for a file of decimal commas) cannot go with --sep ','
    write_csv(tmp_path / "d.csv", HEADER,
              [[f"{1000 + 37 * i:,}", *row[1:]] for i, row in enumerate(numeric_rows())])
    assert run_numeric(tmp_path) == 2
    assert_one_line_error(
        capsys, "'1,000' on line(s) 2; '1,037' on line(s) 3; '1,074' on line(s) 4; and 27 "
        "other value(s) (write numbers with a decimal point, without thousands separators, "
        "percent or currency signs; in a file whose columns are separated by commas, a comma "
        "in a number is no decimal mark: remove the thousands separators (1,250 as 1250)); "
        "fix those cells, drop the column with --drop x, or one-hot encode its values as "
        "categories with --keep x.")


# -- rows with another number of fields than the header ---------------------------------------
def test_a_separator_ending_every_data_line_but_the_header_is_left_out(tmp_path, capsys):
    """pandas took the first column for the index: every column shifted (x read x's
    neighbour, a target another target's labels)."""
    rows = numeric_lines()
    plain = write_csv(tmp_path / "plain.csv", HEADER, rows)
    trailing = tmp_path / "trailing.csv"
    trailing.write_text(",".join(HEADER) + "\n" + "".join(",".join(r) + ",\n" for r in rows))
    X, Y, *_ = load(plain)
    X_trailing, Y_trailing, *_, notes = load(trailing)
    np.testing.assert_array_equal(X_trailing, X)
    np.testing.assert_array_equal(X_trailing[:, 0], [float(r[0]) for r in rows])
    assert Y_trailing.equals(Y)
    assert notes[0] == (f"Warning: column(s) 5 of {trailing} have no name and no value (a "
                        "comma at the end of every line?): left out.")


@pytest.mark.parametrize(("edit", "message"), [
    # a first column without a name in the header (an index written without one)
    (lambda lines: [lines[0]] + [f"{i},{line}" for i, line in enumerate(lines[1:])],
     "its header (line 1) has 4 fields, but line 2 has 5, line 3 has 5, line 4 has 5, line "
     "5 has 5, line 6 has 5 (and 25 other line(s)); each line needs a field per column of "
     "the header, or its cells would be read in other columns (a line cut short, a value "
     "holding ',' without quotes around it, a header without the name of a first column)."),
    # a value with an unquoted comma in one row
    (lambda lines: lines[:9] + [lines[9] + ",7"] + lines[10:],
     "its header (line 1) has 4 fields, but line 10 has 5; each line needs"),
    # a line cut short: its missing cells were read as missing labels
    (lambda lines: lines[:6] + [lines[6].rpartition(",")[0]] + lines[7:],
     "its header (line 1) has 4 fields, but line 7 has 3; each line needs"),
    # a header with a field more than its rows
    (lambda lines: ["," + lines[0]] + lines[1:], "its header (line 1) has 5 fields, but "
     "line 2 has 4, line 3 has 4, line 4 has 4, line 5 has 4, line 6 has 4 (and 25 other "
     "line(s));"),
])
def test_rows_with_another_number_of_fields_than_the_header_are_an_error(tmp_path, capsys,
                                                                         edit, message):
    path = numeric_csv(tmp_path / "d.csv", {})
    path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")
    assert run_numeric(tmp_path) == 2
    assert_one_line_error(capsys, f"--csv {path} cannot be read as a CSV file: {message}")


def test_a_large_file_has_one_type_per_column(tmp_path, capsys):
    """Beyond 2**18 rows pandas guessed types chunk by chunk: classes 0 and 1 read as
    numbers above, as text in the last chunk (4 classes), a kept column's categories split."""
    import pandas as pd

    n = 270_000
    lines = ["x,code,y,z"] + [f"{i % 7 / 7:.3f},{1 + i % 3},{i % 2},{i // 2 % 2}"
                              for i in range(n)]
    lines[-1] = "0.5,x,1,?"
    path = tmp_path / "big.csv"
    path.write_text("\n".join(lines) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.DtypeWarning)
        X, Y, *_, task_type, _, _ = load(path, "--keep", "code", "--drop", "z", targets="y")
        assert main(["compare", "--csv", str(path), "--targets", "y,z", "--out",
                     str(tmp_path / "o"), "--quiet"]) == 2
    assert task_type == "classification" and set(Y["y"]) == {0, 1}
    assert X.shape == (n, 4)  # x, and code's 4 categories '1', '2', '3', 'x' less one
    assert_one_line_error(capsys, "Target column 'z' holds numbers, but 1 of its cells is not "
                                  f"a number: '?' on line(s) {n + 1}; fix those cells")


# -- the lines a message names ----------------------------------------------------------------
def test_messages_name_the_file_lines_after_blank_lines_and_quoted_line_breaks(tmp_path,
                                                                                capsys):
    # the ? is on line 12 (it said line 10)
    path = tmp_path / "d.csv"
    path.write_text('x,note,task,y\n1.5,a,u,1.2\n2.5,a,v,2.2\n3.5,"two\nlines",u,3.2\n'
                    '4.5,a,v,4.2\n\n5.5,a,u,\n6.5,a,v,6.2\n7.5,a,u,7.2\n8.5,a,v,8.2\n'
                    '?,a,u,9.2\n10.5,a,v,10.2\n')
    assert main(["compare", "--csv", str(path), "--targets", "y", "--task-column", "task",
                 "--out", str(tmp_path / "o"), "--quiet"]) == 2
    captured = capsys.readouterr()
    assert "Left out 1 row(s) with an empty 'y' (line(s) 8)." in captured.out
    assert captured.err == (
        "skmtl: error: Feature column 'x' holds numbers, but 1 of its cells is not a number: "
        "'?' on line(s) 12; fix those cells, drop the column with --drop x, or one-hot encode "
        "its values as categories with --keep x.\n")


def test_lines_of_a_file_of_one_line_rows_are_found_without_reading_it_again(
        tmp_path, capsys, monkeypatch):
    # large files pay for the second pass only when a message needs it and a row moved
    from skmtl.cli import _CsvFile

    def no_second_pass(self):
        raise AssertionError("read again")

    numeric_csv(tmp_path / "d.csv", {(20, "sales_b"): "?"})
    monkeypatch.setattr(_CsvFile, "_records", no_second_pass)
    assert run_numeric(tmp_path) == 2
    assert_one_line_error(capsys, "'?' on line(s) 22; fix those cells")


# -- text in class labels, huge numbers, names ---------------------------------------------
def yes_no_rows(marker=None, n=30):
    rng = np.random.RandomState(0)
    x = rng.normal(size=n).round(3)
    rows = [[v, "yes" if v > 0 else "no", "no" if i % 3 else "yes"] for i, v in enumerate(x)]
    if marker is not None:
        rows[4][1] = marker
    return rows


@pytest.mark.parametrize("marker", ["?", "-", "--", "."])
def test_punctuation_in_text_class_labels_is_an_error(tmp_path, capsys, marker):
    """A ? among yes / no was a third class of one label."""
    path = write_csv(tmp_path / "d.csv", ["x", "churn", "upgrade"], yes_no_rows(marker))
    assert main(["compare", "--csv", str(path), "--targets", "churn,upgrade", "--out",
                 str(tmp_path / "o"), "--quiet"]) == 2
    assert_one_line_error(
        capsys, f"Target column 'churn' holds class labels, but 1 of its cells is only "
        f"punctuation: {marker!r} on line(s) 6; leave a missing label empty (an empty target "
        "cell is a missing label); if such a value is a class, say so with --task-type "
        "classification.")
    # said so: a class
    _, Y, *_ = load(path, "--task-type", "classification", targets="churn,upgrade")
    assert set(Y["churn"]) == {"yes", "no", marker}


@pytest.mark.parametrize(("values", "marks"), [
    (["yes", "no"] * 9 + ["?", "?"], [18, 19]),  # 2 of 20: 10 %
    (["yes", "no"] * 9 + ["?", "-", "?"], None),  # 3 of 21: more than 10 %
    (["yes", "no", "?"] * 5, None),  # a third of the cells: a class
    (["+", "-", "+", "-"] * 5, None),  # classes of punctuation
    (["+", "-"] * 10 + ["pos"], None),
    (["a", None, "b"] * 10 + ["#"], [30]),  # empty cells are not counted
    ([0, 1] * 10 + [1], None),  # numbers
])
def test_the_punctuation_label_rule(values, marks):
    import pandas as pd

    mask = _punctuation_labels(pd.Series(values), pd)
    assert (None if mask is None else np.flatnonzero(mask).tolist()) == marks


@pytest.mark.parametrize(("cells", "targets", "message"), [
    # a feature of about 1e200: "Target column 'y': array must not contain infs or NaNs"
    ({(i, "x"): f"{(i + 1) * 1e199:.3e}" for i in range(30)}, "sales_a,sales_b",
     "Feature column 'x' has values too large to compute with (line(s) 2, 3, 4, 5, 6 ...: up "
     "to 3e+200, beyond 1e+150, where a sum of their squares overflows a float); rescale the "
     "column (divide it by a power of ten), or drop it with --drop x."),
    # targets of about 1e300 gave a score of -inf
    ({(3, "sales_b"): "2.5e300", (8, "sales_b"): "-1e160"}, "sales_a,sales_b",
     "Target column 'sales_b' has values too large to compute with (line(s) 5, 10: up to "
     "2.5e+300, beyond 1e+150, where a sum of their squares overflows a float); rescale the "
     "targets: divide every target column by one power of ten, which keeps the tasks "
     "comparable."),
])
def test_numbers_too_large_to_compute_with_name_their_column(tmp_path, capsys, cells, targets,
                                                            message):
    numeric_csv(tmp_path / "d.csv", cells)
    assert run_numeric(tmp_path, targets=targets) == 2
    assert_one_line_error(capsys, message)


def test_whole_numbers_beyond_the_integer_range_are_numbers(tmp_path, capsys):
    """A feature of integers beyond uint64 (or beyond int64 with negative ones) was text,
    one-hot encoded or dropped as an id; class labels of 10000000000000000001 and
    10000000000000000000 were one class (a float), then an OverflowError."""
    rows = numeric_lines()
    big = [10**22 + (i % 4) * 7**20 for i in range(30)]
    signed = [(-1) ** i * (2**63 + i % 3) for i in range(30)]
    labels = [10**19 + i % 2 for i in range(30)]
    huge = [10**22 + i // 2 % 2 for i in range(30)]
    path = write_csv(tmp_path / "d.csv", ["big", "signed", *HEADER, "label", "huge"],
                     [[*a, *r, c, h] for *a, r, c, h in zip(big, signed, rows, labels, huge)])
    X, *_ = load(path)
    np.testing.assert_array_equal(X[:, :2], np.array([big, signed], dtype=float).T)
    _, Y, *_, task_type, _, notes = load(path, targets="label,huge")
    assert task_type == "classification"
    assert notes[-1].startswith("Task type: classification, the targets are whole numbers "
                                "with 4 distinct values")
    assert Y["label"].tolist() == labels
    assert Y["huge"].tolist() == [str(v) for v in huge]  # exact, as the metrics take them
    assert main(["compare", "--csv", str(path), "--targets", "label,huge", "--models",
                 "pooled", "--cv", "2", "--out", str(tmp_path / "o"), "--quiet"]) == 0
    assert [(r["model"], r["task"]) for r in read_scores(tmp_path / "o")] == [
        ("stl", "label"), ("stl", "huge"), ("pooled", "label"), ("pooled", "huge")]


def test_a_column_without_a_name_is_unnamed_and_can_be_named(tmp_path, capsys):
    """A name of spaces was '', which no option could name ("--drop names no column")."""
    rows = numeric_lines()
    path = write_csv(tmp_path / "d.csv", ["x", " ", "sales_a", "sales_b"], rows)
    X, *_ = load(path)
    np.testing.assert_array_equal(X[:, 1], [float(r[1]) for r in rows])
    X, *_ = load(path, "--drop", "Unnamed: 1")
    assert X.shape == (30, 1)
    assert main(["compare", "--csv", str(path), "--targets", "sales_a,sales_b", "--drop", "zz",
                 "--out", str(tmp_path / "o")]) == 2
    assert_one_line_error(capsys, f"Column(s) ['zz'] of --drop are not in {path}; it has "
                                  "['x', 'Unnamed: 1', 'sales_a', 'sales_b'].")


def test_a_column_name_with_a_comma_cannot_be_named_and_the_error_says_so(tmp_path, capsys):
    path = write_csv(tmp_path / "d.csv", ["x", "visits", "sales, net", "sales_b"],
                     numeric_lines())
    assert main(["compare", "--csv", str(path), "--targets", "sales, net", "--out",
                 str(tmp_path / "o")]) == 2
    assert_one_line_error(
        capsys, f"Column(s) ['sales', 'net'] of --targets/--task-column are not in {path}; it "
        "has ['x', 'visits', 'sales, net', 'sales_b']. A list of columns is split at its "
        "commas, so a column whose name holds one ('sales, net') cannot be named in it: rename "
        "it in the file.")


def test_values_differing_by_spaces_are_each_named_with_their_lines(tmp_path, capsys):
    rows = yes_no_rows()
    rows[2][1], rows[5][1], rows[7][1] = " no", "yes ", " no"
    path = write_csv(tmp_path / "d.csv", ["x", "churn", "upgrade"], rows)
    *_, notes = load(path, targets="churn,upgrade")
    assert notes[0] == ("Warning: column 'churn' has values that differ only by spaces around "
                        "them (' no' on line(s) 4, 9): read as 'no'; ('yes ' on line(s) 7): "
                        "read as 'yes'.")


# -- encodings and compressed files ---------------------------------------------------------
def _compressed(path, kind):
    data = path.read_bytes()
    if kind == "zip":
        with zipfile.ZipFile(f"{path}.zip", "w") as archive:
            archive.writestr("d.csv", data)
        return f"{path}.zip"
    opener = {"gz": gzip.open, "bz2": bz2.open, "xz": lzma.open}[kind]
    with opener(f"{path}.{kind}", "wb") as handle:
        handle.write(data)
    return f"{path}.{kind}"


@pytest.mark.parametrize("kind", ["gz", "bz2", "xz", "zip"])
def test_a_compressed_file_is_read_as_the_file_it_holds(tmp_path, kind):
    """pandas read a .csv.gz, then the header was read from its raw bytes: "'utf-8' codec
    can't decode byte 0x8b"."""
    rows = numeric_lines({(3, "visits"): "NA"})
    path = write_csv(tmp_path / "d.csv", ["größe", *HEADER[1:]], rows)
    X, Y, *_, notes = load(path, "--drop", "visits")
    X_packed, Y_packed, *_, notes_packed = load(_compressed(path, kind), "--drop", "visits")
    np.testing.assert_array_equal(X_packed, X)
    assert Y_packed.equals(Y) and list(Y_packed.columns) == ["sales_a", "sales_b"]
    assert notes_packed == notes


def _gzip_named_plain(path):
    bad = path.with_name("d.csv.gz")
    bad.write_bytes(path.read_bytes())
    return bad


def _tar(path):
    archive = path.with_name("d.csv.tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(path, arcname="d.csv")
    return archive


@pytest.mark.parametrize(("make", "options", "message"), [
    (_gzip_named_plain, [], "cannot be read as a CSV file: Not a gzipped file (b'x,')"),
    (_tar, [], "is a tar or zstd archive: extract the CSV file (skmtl reads .gz, .bz2, .xz "
               "and .zip files of one file)."),
    # a UTF-8 file read as UTF-16: a bare "UTF-16 stream does not start with BOM"
    (lambda path: path, ["--encoding", "utf-16"],
     "is not utf-16 text: (UTF-16 stream does not start with BOM). Save it as UTF-8"),
])
def test_a_file_that_cannot_be_decoded_names_its_path(tmp_path, capsys, make, options, message):
    path = make(numeric_csv(tmp_path / "d.csv", {}))
    assert main(["compare", "--csv", str(path), "--targets", "sales_a", "--out",
                 str(tmp_path / "o"), *options]) == 2
    assert_one_line_error(capsys, f"--csv {path} {message}")


# -- whole numbers beyond 2**53 and 2**63, task ids as written, UTF-16 -------------------------


def _labelled_rows(labels, n=30, seed=0):
    rng = np.random.RandomState(seed)
    return [[f"{a:.6f}", f"{b:.6f}", label] for (a, b), label in
            zip(rng.normal(size=(n, 2)), labels)]


def test_big_whole_class_labels_with_empty_cells_stay_exact_and_empty_cells_missing(tmp_path,
                                                                                   capsys):
    """Labels beyond int64 with an empty cell: pandas read the column as text whose empty
    cells came back as '', a class of its own (150 labels for 135); labels of 19 digits with
    an empty cell were floats, two neighbours one class ("has one class only"); 10**19 + 1
    beside -1 was a label type scikit-learn calls unknown."""
    cases = {
        "beyond_int64": [("" if i % 10 == 0 else str(10**19 + 1 + i % 2)) for i in range(30)],
        "nineteen_digits": [("" if i % 10 == 0 else str(1234567890123456788 + i % 2))
                            for i in range(30)],
        "signed": [str(10**19 + 1) if i % 2 else "-1" for i in range(30)],
    }
    for name, labels in cases.items():
        path = write_csv(tmp_path / f"{name}.csv", ["x1", "x2", "label"],
                         _labelled_rows(labels))
        _, Y, *_, task_type, _, _ = load(path, "--task-type", "classification",
                                         targets="label")
        present = [v for v in labels if v]
        got = Y["label"].dropna().tolist()
        assert len(got) == len(present), name  # the empty cells are missing labels
        assert [str(v) for v in got] == present, name  # exact, two classes
        assert main(["compare", "--csv", str(path), "--targets", "label", "--models",
                     "pooled", "--cv", "2", "--out", str(tmp_path / name), "--quiet"]) == 0
        assert {r["n_observed"] for r in read_scores(tmp_path / name)} == {str(len(present))}


def test_task_and_group_ids_are_whole_numbers_exact_or_text_as_written(tmp_path, capsys):
    """Task ids of 10**19 (uint64) came out negative (int64 wrapped) and --focus could not
    name them; '1.5', '2' and '2.0' were the floats 1.5 and 2.0, two tasks for three (not all
    whole: text, as written); an empty cell of a column of ids beyond int64 was a task ''."""
    rng = np.random.RandomState(0)

    def long_file(name, tasks, header=("task", "x1", "x2", "y")):
        rows = [[t, *np.round(rng.normal(size=3), 6)] for t in tasks]
        return write_csv(tmp_path / name, list(header), rows)

    big = long_file("big.csv", [str(10**19 + i % 3) for i in range(60)])
    *_, task_ids, _, _, _, _ = load(big, "--task-column", "task", targets="y")
    assert sorted(set(task_ids)) == [str(10**19 + k) for k in range(3)]
    assert main(["compare", "--csv", str(big), "--targets", "y", "--task-column", "task",
                 "--focus", str(10**19 + 1), "--strategies", "single_task", "--cv", "2",
                 "--out", str(tmp_path / "f"), "--quiet"]) == 0
    assert {r["task"] for r in read_scores(tmp_path / "f")} == {str(10**19 + 1)}
    written = long_file("written.csv", ["1.5", "2", "2.0"] * 20)
    *_, task_ids, _, _, _, _ = load(written, "--task-column", "task", targets="y")
    assert sorted(set(task_ids)) == ["1.5", "2", "2.0"]
    whole = long_file("whole.csv", ["1.0", "2", "2.0"] * 20)  # every cell whole: numbers
    *_, task_ids, _, _, _, _ = load(whole, "--task-column", "task", targets="y")
    assert task_ids.dtype == np.int64 and sorted(set(task_ids)) == [1, 2]
    empty = long_file("empty.csv", ["" if i == 5 else str(10**19 + i % 3) for i in range(60)])
    assert main(["compare", "--csv", str(empty), "--targets", "y", "--task-column", "task",
                 "--out", str(tmp_path / "e")]) == 2
    assert_one_line_error(capsys, "Task column 'task' is empty on line(s) 7 of")
    groups = long_file("groups.csv", ["" if i == 8 else str(10**19 + i // 3)
                                      for i in range(60)], ("mol", "x1", "x2", "y"))
    assert main(["compare", "--csv", str(groups), "--targets", "y", "--group-column", "mol",
                 "--out", str(tmp_path / "g")]) == 2
    assert_one_line_error(capsys, "Group column 'mol' is empty on line(s) 10 of")


def test_a_utf16_file_names_its_byte_order_mark_and_reads_with_encoding(tmp_path, capsys):
    """Excel's 'Unicode Text' (UTF-16 with a byte-order mark, tabs between the columns):
    the error blamed a byte and proposed cp1252, with which the file read as one column."""
    rng = np.random.RandomState(0)
    lines = ["école\tµx\ty"] + [f"{a:.6f}\t{b:.6f}\t{2 * a + b:.6f}"
                                for a, b in rng.normal(size=(30, 2))]
    path = tmp_path / "unicode.txt"
    path.write_bytes("\r\n".join(lines).encode("utf-16"))
    for extra in ([], ["--encoding", "cp1252"]):
        assert main(["compare", "--csv", str(path), "--targets", "y", *extra,
                     "--out", str(tmp_path / "o")]) == 2
        assert_one_line_error(capsys, "text: it starts with the byte-order mark of UTF-16 "
                              "(b'\\xff\\xfe'), as Excel's 'Unicode Text' files do; pass "
                              "--encoding utf-16 (and --sep '\\t' where its columns are "
                              "separated by tabs")
    X, y, *_ = load(path, "--encoding", "utf-16", "--sep", "\t", targets="y")
    assert X.shape == (30, 2)
    np.testing.assert_allclose(y["y"].to_numpy(dtype=float),
                               [float(line.split("\t")[2]) for line in lines[1:]])


def test_suggested_options_are_quoted_for_the_shell_and_name_the_separator(tmp_path, capsys):
    """An index column without a name ('Unnamed: 0', an id of whole numbers) was to be
    dropped "with --drop Unnamed: 0", which a shell splits in two; a semicolon ending every
    line of a file read with --sep ';' was called a comma."""
    import shlex

    rows = numeric_lines()
    path = write_csv(tmp_path / "d.csv", ["", *HEADER], [[i, *r] for i, r in enumerate(rows)])
    *_, notes = load(path)
    advice = [n for n in notes if "looks like an id" in n]
    assert len(advice) == 1 and advice[0].endswith("drop it with --drop 'Unnamed: 0'.")
    suggested = shlex.split(advice[0].rpartition("drop it with ")[2].rstrip("."))
    X, *_ = load(path, *suggested)
    assert X.shape == (30, 2)  # x and visits, the index dropped
    semicolons = tmp_path / "semicolons.csv"
    semicolons.write_text("".join(";".join(r) + ";\n" for r in [HEADER, *rows]))
    *_, notes = load(semicolons, "--sep", ";")
    assert notes[0] == (f"Warning: column(s) 5 of {semicolons} have no name and no value (a "
                        "semicolon at the end of every line?): left out.")


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_excels_separator_line_is_named(tmp_path, capsys, sep):
    """A first line 'sep=;' (by which Excel names a file's separator) was read as the header:
    "its header (line 1) has 2 fields, but line 2 has 4", also with the --sep it advised."""
    rows = numeric_lines()
    path = tmp_path / "d.csv"
    path.write_text(f"sep={sep}\n" + "".join(sep.join(r) + "\n" for r in [HEADER, *rows]))
    shown = "\\t" if sep == "\t" else sep
    for extra in ([], ["--sep", sep]):
        assert main(["compare", "--csv", str(path), "--targets", "sales_a,sales_b", *extra,
                     "--out", str(tmp_path / "o")]) == 2
        assert_one_line_error(capsys, f"line 1, {'sep=' + sep!r}, is the line by which Excel "
                              "names a file's separator, not a header; delete it (the header "
                              f"is read from line 1), and give --sep '{shown}'")
    path.write_text("".join(sep.join(r) + "\n" for r in [HEADER, *rows]))
    X, *_ = load(path, "--sep", sep)
    assert X.shape == (30, 2)
