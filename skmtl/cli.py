"""The ``skmtl`` command (also ``python -m skmtl``).

``skmtl datasets`` lists the packaged data sets. ``skmtl compare`` cross-validates single-task,
pooled and multi-task models on one data set, prints a per-model table (mean score, per-task
wins and losses against single-task learning, negative-transfer count, fit time) and writes
``scores.csv`` (one row per model and task), ``per_task.csv`` (one row per task),
``transfer.png`` (per-task gains, with the ``plot`` extra) and ``report.html`` (all of it on
one offline page) to ``--out``. A ``--csv`` file is read by the rules of
docs/user_guide/command_line.rst (regression or classification, id and date columns); a
mistake in it is one line naming the column or path, and status 2.
``skmtl compare --focus TASK`` compares the focused-task strategies (single_task,
multi_task, gradnorm, lbtw, finetune, rmtl) on that one task instead.
``--n-jobs`` runs the (model, fold) fits in parallel through joblib, ``--scheduler ADDRESS``
on a dask.distributed cluster (docs/user_guide/scaling.rst).

The comparison is :func:`skmtl.model_selection.transfer_report`'s: the score of a task is its
mean test score over the folds (minus the mean squared error, or accuracy, unless
``--scoring`` says otherwise), and its gain the mean per-fold score
difference against the reference, in the same units.
"""

import argparse
import bz2
import codecs
import collections
import contextlib
import contextvars
import csv
import gzip
import io
import logging
import lzma
import os
import re
import shlex
import sys
import tempfile
import warnings
import zipfile
from datetime import datetime

import numpy as np

from skmtl._compare import (
    FOCUS_STRATEGIES,
    HIERARCHICAL_DIAGONAL_WORK,
    HIERARCHICAL_SLOPES,
    MODELS,
    SCORINGS,
    _focus_position,
    _warm_up_torch,
    count_tasks,
    hierarchical_structure,
    hierarchical_work,
    run_comparison,
    run_focus_comparison,
)
from skmtl.utils.validation import check_multitask_target

__all__ = ["main"]

logger = logging.getLogger("skmtl")

DEFAULT_DATASET = "exam"

# The --csv reader: every mistake in the user's file is a ValueError of one line naming the
# column, line or path at fault (main prints it and exits 2).

# at most this many distinct whole-number target values (over all tasks) are read as classes
MAX_CLASSES = 10
# a column is id-like when all its values differ, and there are at least this many
MIN_ID_VALUES = 10
# a text feature with more distinct values than this gets a note on its one-hot encoding
MANY_CATEGORIES = 50
# a column whose non-empty cells are numbers except for at most this share of them (or except
# for one cell) is a column of numbers with stray text, an error (docs: "Numbers with stray text")
STRAY_TEXT_SHARE = 0.1
# a number beyond this magnitude is an error: its square (1e300) is near the largest float
# (1.8e308), so that a sum of squares over the rows (a standard deviation) overflows
MAX_MAGNITUDE = 1e150
# the transfer plot shows at most this many tasks per model (the worst and the best half)
MAX_TASKS_SHOWN = 40


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error, like every other mistake the command reports."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _build_parser():
    parser = _Parser(
        prog="skmtl", description="Multi-task learning for the scikit-learn world.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("datasets", help="list the packaged data sets")
    compare = commands.add_parser(
        "compare",
        help="cross-validate single-task and multi-task models on one data set",
        description="Cross-validate single-task and multi-task models with shared folds and "
        "compare them per task against single-task learning (stl). Per task, a model's score is "
        "its mean test score over the folds: minus the mean squared error (neg_mean_squared_error) "
        "for regression, accuracy for classification, "
        "or the --scoring (the metric column of scores.csv). Its gain is score - "
        "reference_score, the mean per-fold score difference against stl, in the same units, "
        "with "
        "gain_se its standard error over the folds; negative transfer is gain < -gain_se; "
        "wins / losses count the tasks with a gain above / below 0. The definition is "
        "skmtl.model_selection.transfer_report's.",
    )
    source = compare.add_mutually_exclusive_group()
    source.add_argument("--dataset", help=f"packaged data set (default: {DEFAULT_DATASET}); "
                        "see `skmtl datasets`")
    source.add_argument("--csv", metavar="FILE", help="a CSV file with features and targets")
    compare.add_argument("--targets", metavar="COLS",
                         help="with --csv: comma-separated target columns (wide), or the one "
                         "target column of long data (with --task-column)")
    compare.add_argument("--task-column", metavar="COL",
                         help="with --csv: the column naming each row's task (long data)")
    compare.add_argument("--group-column", metavar="COL",
                         help="with --csv: a column naming each row's group, kept whole in "
                         "one fold (MultiTaskGroupKFold, shuffled by --seed, instead of "
                         "MultiTaskKFold): the scaffold of each molecule (a scaffold split), "
                         "or the sample of long data where a sample has a row per task. Not "
                         "a feature")
    compare.add_argument("--task-type", choices=["auto", "regression", "classification"],
                         default="auto", help="with --csv: what the targets are (default: "
                         "auto: text, or whole numbers with at most "
                         f"{MAX_CLASSES} distinct values, is classification; other numbers "
                         "are regression; a column of numbers with a few cells that are not, "
                         "as defined under --keep, is an error naming them)")
    compare.add_argument("--encoding", metavar="ENC",
                         help="with --csv: the file's text encoding (default: utf-8, with or "
                         "without a byte-order mark; a file saved by Excel as plain CSV on "
                         "Windows is usually cp1252)")
    compare.add_argument("--sep", metavar="CHAR",
                         help="with --csv: the character between the columns (default: ','; "
                         "';' for a file saved by Excel in a locale whose decimal mark is a "
                         "comma; '\\t' or a tab for tab-separated files)")
    compare.add_argument("--decimal", metavar="CHAR",
                         help="with --csv: the decimal mark of the numbers (default: '.'; ',' "
                         "with --sep ';' for such a file: 1,5 is then one and a half)")
    compare.add_argument("--drop", metavar="COLS",
                         help="with --csv: comma-separated columns that are not features "
                         "(ids, dates, free text)")
    compare.add_argument("--keep", metavar="COLS",
                         help="with --csv: comma-separated text columns to keep as features "
                         "(one-hot encoded) although they look like ids or dates, or like "
                         "numbers with a few cells that are not (which is otherwise an error: "
                         "a column whose non-empty cells are numbers but for one cell, or but "
                         # argparse formats help with %: a literal % is %%
                         f"for at most {STRAY_TEXT_SHARE:.0%}% of them, or numbers written "
                         "with a decimal comma, thousands separators, a percent or currency "
                         "sign: 1,5 or 1,250 or 12%% or $5)")
    models_help = "; ".join(f"{m.name}: {m.description}" for m in MODELS.values())
    compare.add_argument("--models", nargs="+", metavar="MODEL", choices=sorted(MODELS),
                         help=f"models to compare (default: all). {models_help}")
    compare.add_argument("--focus", metavar="TASK",
                         help="compare the focused-task strategies (FocusedTaskRegressor / "
                         "FocusedTaskClassifier, deep) on this one task instead of the models")
    compare.add_argument("--strategies", nargs="+", metavar="STRATEGY",
                         choices=list(FOCUS_STRATEGIES),
                         help="with --focus: strategies to compare (default: all; single_task "
                         f"is the reference). Choices: {', '.join(FOCUS_STRATEGIES)}")
    compare.add_argument("--cv", type=int, default=5, help="number of folds (default: 5)")
    compare.add_argument("--out", default="skmtl-out", metavar="DIR",
                         help="folder for scores.csv, per_task.csv, transfer.png and report.html "
                         "(default: ./skmtl-out)")
    compare.add_argument("--device", default="cpu",
                         help="torch device for deep models (default: cpu)")
    compare.add_argument("--seed", type=int, default=0, help="seed of the folds (default: 0)")
    compare.add_argument("--scoring", choices=[*SCORINGS["regression"],
                                               *SCORINGS["classification"]],
                         help="the per-task score, and so the units of the gains (default: "
                         "neg_mean_squared_error for regression, accuracy for classification). "
                         "r2 is computed per test fold: biased low and undefined (left out) on "
                         "folds with few labels of a task")
    compare.add_argument("--n-jobs", type=int, default=1, metavar="N",
                         help="(model, fold) fits run in parallel by joblib (default: 1; -1: "
                         "all cores)")
    compare.add_argument("--scheduler", metavar="ADDRESS",
                         help="run the (model, fold) fits on the dask.distributed scheduler at "
                         "ADDRESS (e.g. tcp://10.0.0.5:8786), through joblib's dask backend; "
                         "every worker thread of the cluster is then used, whatever --n-jobs. "
                         "Needs the dask extra")
    compare.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _list_datasets():
    from skmtl.datasets import list_datasets

    rows = list_datasets()
    header = ["name", "task type", "format", "samples", "features", "tasks", "description"]
    table = [[str(r["name"]), r["task_type"], r["format"], str(r["n_samples"]),
              str(r["n_features"]), str(r["n_tasks"]), r["description"]] for r in rows]
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header) - 1)]
    for row in [header, *table]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
    return 0


def _load_packaged(name):
    from skmtl.datasets import load_dataset

    bunch = load_dataset(name)
    task_ids = bunch.get("task_ids") if bunch.format == "long" else None
    return (np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target),
            None if task_ids is None else np.asarray(task_ids), None, bunch.task_type, name, [])


def _column_list(text, option):
    columns = [c.strip() for c in (text or "").split(",") if c.strip()]
    if text is not None and not columns:
        raise ValueError(f"{option} names no column.")
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise ValueError(f"{option} names {', '.join(map(repr, twice))} twice; name each column "
                         "once.")
    return columns


def _read_frame(csv_file, pd):
    """The ``--csv`` file ``csv_file`` (a :class:`_CsvFile`) as a DataFrame named by its
    header (:attr:`_CsvFile.names`), after :meth:`_CsvFile.scan`; or a ValueError saying why
    it cannot be read."""
    path = csv_file.path
    if os.path.isdir(path):
        raise ValueError(f"--csv {path} is a folder; give the path of a CSV file.")
    if not os.path.exists(path):
        raise ValueError(f"--csv {path}: no such file.")
    try:
        codecs.lookup(csv_file.encoding)
    except LookupError:
        raise ValueError(f"--encoding {csv_file.encoding} is not a text encoding Python knows "
                         "(e.g. utf-8, cp1252, latin-1).") from None
    try:
        _check_byte_order_mark(csv_file)
        csv_file.scan()
        if not csv_file.header:
            raise ValueError(f"--csv {path} is empty (no header, no rows).")
        _check_separator(csv_file)
        csv_file.check_fields()
        frame = csv_file.read_csv(pd, decimal=csv_file.decimal)
    except pd.errors.EmptyDataError:
        raise ValueError(f"--csv {path} is empty (no header, no rows).") from None
    except UnicodeError as exc:  # a byte the encoding cannot read, a UTF-16 file without BOM
        raise ValueError(_undecodable(csv_file, exc)) from None
    except _UNREADABLE + (pd.errors.ParserError,) as exc:
        raise ValueError(f"--csv {path} cannot be read as a CSV file: {exc}") from None
    frame.columns = csv_file.names
    if frame.shape[0] == 0:
        raise ValueError(f"--csv {path} has a header but no data rows.")
    return frame


def _check_separator(csv_file):
    """A ValueError naming ``--sep`` where the header is one name holding another separator
    (a file separated by ';' or tabs read with ',')."""
    header, sep = csv_file.header, csv_file.sep
    directive = re.fullmatch(r"sep=(.)", sep.join(header).strip(" "), flags=re.IGNORECASE)
    if directive:  # Excel's first line naming the separator, before the header
        shown = "\\t" if directive.group(1) == "\t" else directive.group(1)
        raise ValueError(
            f"--csv {csv_file.path}: line 1, {sep.join(header)!r}, is the line by which Excel "
            f"names a file's separator, not a header; delete it (the header is read from "
            f"line 1), and give --sep '{shown}'" + (" (and --decimal ',' if the numbers are "
                                                    "written 1,5)." if shown == ";" else "."))
    separator = len(header) == 1 and next(
        (s for s in (",", ";", "\t", "|") if s != sep and s in header[0]), None)
    if separator:
        shown = "\\t" if separator == "\t" else separator
        raise ValueError(
            f"--csv {csv_file.path} was read as one column, {header[0].strip()!r}, with "
            f"{sep!r} between the columns: it looks separated by {separator!r}. Give --sep "
            f"'{shown}'" + (" (and --decimal ',' if its numbers are written 1,5)."
                            if separator == ";" else "."))


def _csv_marks(args):
    """``(sep, decimal)`` of ``--sep`` and ``--decimal`` (``\\t`` read as a tab), or a
    ValueError naming a bad one."""
    sep = "," if args.sep is None else args.sep.replace("\\t", "\t")
    decimal = "." if args.decimal is None else args.decimal
    for option, mark in (("--sep", sep), ("--decimal", decimal)):
        if len(mark) != 1 or mark in "\"\n\r" or mark.isalnum():
            raise ValueError(f"{option} {mark!r} must be one character that is neither a "
                             "letter, a digit, a quote nor a line break.")
    if sep == decimal:
        raise ValueError(f"--sep and --decimal are both {sep!r}: a number's decimal mark "
                         "cannot also separate the columns.")
    return sep, decimal


# the byte-order marks of the UTF-16 and UTF-32 encodings (UTF-32's first: it begins with
# UTF-16's little-endian one)
_BYTE_ORDER_MARKS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                     (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _check_byte_order_mark(csv_file):
    """A ValueError where the file starts with the byte-order mark of UTF-16 or UTF-32 and
    ``--encoding`` is another (cp1252 would read its bytes as text without a complaint)."""
    with csv_file.open() as handle:
        start = handle.read(4)
    encoding = codecs.lookup(csv_file.encoding).name
    for mark, name in _BYTE_ORDER_MARKS:
        if start.startswith(mark) and not encoding.startswith(name):
            raise ValueError(
                f"--csv {csv_file.path} is not {csv_file.encoding} text: it starts with the "
                f"byte-order mark of {name.upper()} ({mark!r}), as Excel's 'Unicode Text' "
                f"files do; pass --encoding {name} (and --sep '\\t' where its columns are "
                "separated by tabs, as in those files).")


def _undecodable(csv_file, error):
    """The message for a file that its encoding cannot decode: the first such line (the
    bytes, and the line as that encoding reads it) where the encoding writes a line break as
    the byte ``\\n`` (not UTF-16), and how to fix it."""
    encoding = csv_file.encoding
    where = f"({getattr(error, 'reason', error)})"
    if isinstance(error, UnicodeDecodeError) and "a\n".encode(encoding).endswith(b"a\n"):
        with csv_file.open() as handle:
            for number, line in enumerate(handle, 1):
                try:
                    line.decode(encoding)
                except UnicodeDecodeError as exc:
                    text = line.decode(encoding, errors="replace").strip()
                    where = (f"line {number} has the byte(s) {line[exc.start:exc.end]!r} in "
                             f"{text[:60]!r}")
                    break
    return (f"--csv {csv_file.path} is not {encoding} text: {where}. Save it as UTF-8 (Excel: "
            "CSV UTF-8), or give its encoding with --encoding (a file saved by Excel as plain "
            "CSV on Windows is usually cp1252).")


# the endings of the compressed files pandas reads, with their readers; tar and zstd archives
# (which pandas reads too) are refused with a message, as their bytes are no CSV file
_COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
_ARCHIVES = (".tar", ".tar.gz", ".tar.bz2", ".tar.xz", ".zst")
# what reading a file that is no CSV file (or a broken compressed one) raises
_UNREADABLE = (OSError, EOFError, csv.Error, lzma.LZMAError, zipfile.BadZipFile)


def _blank(fields):
    """Whether a record of the csv module is a line that pandas skips: empty, or spaces."""
    return not fields or (len(fields) == 1 and not fields[0].strip())


class _CsvFile:
    """A ``--csv`` file and how it is read: ``encoding``, ``sep`` and ``decimal``; compressed
    files (``.gz``, ``.bz2``, ``.xz``, a ``.zip`` of one file) as pandas reads them.

    :meth:`scan` reads its header as written and checks that every data row has a field per
    column of the header; :meth:`lines` gives the file line of data rows, for messages. The
    file being read is :data:`_READING`'s (messages read it from there); outside a read,
    the defaults: ``,`` and ``.``, row ``i`` on line ``i + 2``.
    """

    def __init__(self, path=None, encoding="utf-8", sep=",", decimal="."):
        self.path, self.encoding, self.sep, self.decimal = path, encoding, sep, decimal
        self.header = []  # the names of the header row, as written
        self.header_line = 1
        self.trailing = 0  # empty fields ending every data row, not the header: left out
        self._fields_differ = False  # some data row has another number of fields
        self._one_line_rows = True  # row i on line header_line + 1 + i
        self._starts = None  # else each row's first line, found when a message needs it

    @contextlib.contextmanager
    def open(self):
        """The file's bytes, decompressed by its name's ending as pandas does."""
        name = self.path.lower()
        if name.endswith(_ARCHIVES):
            raise ValueError(f"--csv {self.path} is a tar or zstd archive: extract the CSV "
                             "file (skmtl reads .gz, .bz2, .xz and .zip files of one file).")
        if name.endswith(".zip"):
            with zipfile.ZipFile(self.path) as archive:
                members = [m for m in archive.infolist()
                           if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
                if len(members) != 1:
                    raise ValueError(f"--csv {self.path} holds {len(members)} files; give a "
                                     ".zip file of one CSV file, or the CSV file.")
                with archive.open(members[0]) as handle:
                    yield handle
            return
        opener = next((o for end, o in _COMPRESSED.items() if name.endswith(end)), open)
        with opener(self.path, "rb") as handle:
            yield handle

    @contextlib.contextmanager
    def _reader(self):
        # as pandas, a UTF-8 byte-order mark is not part of the first name
        encoding = ("utf-8-sig" if codecs.lookup(self.encoding).name == "utf-8"
                    else self.encoding)
        # a cell of more than the csv module's 128 kB (pandas reads any), for this read
        limit = csv.field_size_limit(2**31 - 1)
        try:
            with (self.open() as raw,
                  io.TextIOWrapper(raw, encoding=encoding, newline="") as text):
                yield csv.reader(text, delimiter=self.sep)
        finally:
            csv.field_size_limit(limit)

    def _records(self):
        """``(line, fields)`` of each record that pandas reads as a row (the header first),
        ``line`` the file line it starts on; blank lines are skipped, as pandas does."""
        with self._reader() as reader:
            end = 0
            for fields in reader:
                start, end = end + 1, reader.line_num
                if not _blank(fields):
                    yield start, fields

    def read_csv(self, pd, **options):
        """``pd.read_csv`` of the file, with its encoding and separator, the columns of its
        header (never a first column taken for the index) and one type per column (not
        guessed chunk by chunk, which splits a column of a large file in numbers and text)."""
        with self.open() as handle, warnings.catch_warnings():
            if self.trailing:  # the empty fields ending the rows, found by scan: left out
                warnings.simplefilter("ignore", pd.errors.ParserWarning)
            return pd.read_csv(handle, encoding=self.encoding, sep=self.sep, index_col=False,
                               low_memory=False, compression=None, **options)

    @property
    def names(self):
        """The column names: the header's, without spaces around them; a name left empty is
        ``Unnamed: j`` (``j`` its position from 0), as pandas names it."""
        return [name.strip() or f"Unnamed: {j}" for j, name in enumerate(self.header)]

    def scan(self):
        """Read the header (a ValueError names a name it repeats) and count the fields of
        every data row, in one pass of the csv module (:meth:`check_fields` says which
        differ from the header's)."""
        with self._reader() as reader:
            start = end = 0
            header = []
            for fields in reader:
                start, end = end + 1, reader.line_num
                if not _blank(fields):
                    header = fields
                    break
            counts = collections.Counter(map(len, reader))  # one pass, in C
            n_lines = reader.line_num
        self.header, self.header_line = header, (start if header else 1)
        seen = {}
        for position, name in enumerate(self.names, 1):
            if name in seen:
                raise ValueError(
                    f"--csv {self.path} has two columns named {name!r} (columns {seen[name]} "
                    f"and {position} of its header): give every column its own name.")
            seen[name] = position
        self._fields_differ = not set(counts) <= {0, len(header)}
        self._one_line_rows = (start == end == 1 and set(counts) <= {len(header)}
                               and n_lines == 1 + counts[len(header)])

    def check_fields(self):
        """Raise a ValueError naming the lines (at most 5) whose number of fields differs
        from the header's: a line cut short, a value holding the separator without quotes, a
        header without the name of a first column (pandas would read their cells in other
        columns, or missing). Rows that all end with the same number of empty fields more
        than the header are a separator ending every line but the header's: those fields
        are left out (``trailing``)."""
        if not self._fields_differ:
            return
        n_header, odd, n_odd, lengths, empty = len(self.header), [], 0, set(), True
        with contextlib.closing(self._records()) as records:
            next(records)
            for line, fields in records:
                lengths.add(len(fields))
                if len(fields) != n_header:
                    n_odd += 1
                    empty = empty and not any(fields[n_header:])
                    if len(odd) < 5:
                        odd.append(f"line {line} has {len(fields)}")
        if not n_odd:  # lines of spaces only, which pandas skips too
            return
        if empty and len(lengths) == 1 and min(lengths) > n_header:
            self.trailing = min(lengths) - n_header
            return
        more = f" (and {n_odd - len(odd)} other line(s))" if n_odd > len(odd) else ""
        raise ValueError(
            f"--csv {self.path} cannot be read as a CSV file: its header (line "
            f"{self.header_line}) has {n_header} fields, but {', '.join(odd)}{more}; each "
            "line needs a field per column of the header, or its cells would be read in "
            f"other columns (a line cut short, a value holding {self.sep!r} without quotes "
            "around it, a header without the name of a first column).")

    def lines(self, rows):
        """The file lines of the data rows ``rows`` (positions, from 0): found once, by
        reading the file again, where a blank line or a row over several lines (a quoted
        line break) moves the rows from line ``header_line + 1 + row``."""
        rows = np.asarray(rows, dtype=np.int64)
        if self._one_line_rows or self.path is None:
            return rows + self.header_line + 1
        if self._starts is None:
            with contextlib.closing(self._records()) as records:
                next(records)
                self._starts = np.fromiter((line for line, _ in records), dtype=np.int64)
        if rows.size and rows.max() >= self._starts.size:  # (the csv module and pandas differ)
            return rows + self.header_line + 1
        return self._starts[rows]


# the file being read (_load_csv), whose separator, decimal mark and lines the messages use
_READING = contextvars.ContextVar("skmtl_csv_reading", default=None)
_NO_FILE = _CsvFile()  # outside a read: ',' and '.', row i on line i + 2


@contextlib.contextmanager
def _reading(csv_file):
    token = _READING.set(csv_file)
    try:
        yield csv_file
    finally:
        _READING.reset(token)


def _being_read():
    """The :class:`_CsvFile` being read, or the defaults outside a read."""
    return _READING.get() or _NO_FILE


def _missing_markers(frame, pd):
    """``(column, {marker: count})`` for the columns of ``frame`` (read by pandas' defaults)
    where pandas read cells that are not empty as missing: ``NA``, ``N/A``, ``None``,
    ``null``, ``NaN``, ... (a class named ``None`` then vanishes). Only the columns with a
    missing cell are read again, as text, from the file being read."""
    positions = [j for j in range(frame.shape[1]) if frame.iloc[:, j].isna().any()]
    if not positions:
        return []
    raw = _being_read().read_csv(pd, usecols=positions, dtype=str, keep_default_na=False)
    found = []
    for j, column in zip(positions, raw.columns):
        cells = raw[column].str.strip()
        marked = frame.iloc[:, j].isna().to_numpy() & (cells != "").to_numpy()
        if marked.any():
            found.append((frame.columns[j], cells[marked].value_counts().to_dict()))
    return found


def _lines(mask, limit=10):
    """File line numbers of the True rows of ``mask``, for a message (the lines of the file
    being read, :meth:`_CsvFile.lines`: blank lines and rows over several lines counted).

    A boolean Series is read through its index, read_csv's row numbers, so that the lines stay
    right after rows were left out."""
    rows = mask.index[mask.to_numpy()] if hasattr(mask, "index") else np.flatnonzero(mask)
    lines = _being_read().lines(rows)
    return ", ".join(str(n) for n in lines[:limit]) + (" ..." if lines.size > limit else "")


def _as_numbers(column, pd):
    """The cells of ``column`` as numbers, as read_csv reads them with the decimal mark of the
    file being read: a float Series, NaN where a cell is empty or no number (with
    ``--decimal ','``, ``'3,1'`` is a number and ``'3.1'`` is not)."""
    decimal = _being_read().decimal
    if decimal != "." and not pd.api.types.is_numeric_dtype(column):
        column = column.map(lambda v: (np.nan if "." in v else v.replace(decimal, "."))
                            if isinstance(v, str) else v)
    return pd.to_numeric(column, errors="coerce")


def _text_cells(column, pd):
    """Mask (a Series) of the non-empty cells of ``column`` that are not numbers."""
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return pd.Series(False, index=column.index)
    return column.notna() & _as_numbers(column, pd).isna()


# a number written with a decimal comma or thousands separators (1,5  -0,25  1,250  12,000.5),
# or with a percent or currency sign (12%  $1,200  -3.5 €); a plain number is never a text cell
_DIGITS = r"(?:\d*,\d+|\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d*)?|\.\d+)"
_FORMATTED_NUMBER = rf"\s*[-+]?\s*[$€£¥]?\s*[-+]?{_DIGITS}\s*[%$€£¥]?\s*"
_DECIMAL_COMMA = r"\s*[-+]?\d*,\d+\s*"  # 0,854  -1,5: what --decimal ',' reads
_THOUSANDS = r"\s*[-+]?\d{1,3}(?:,\d{3})+\s*"  # 1,250  12,000: a decimal comma, or thousands


def _formatted_numbers(cells):
    """Which of the text ``cells`` (a Series of str) are numbers written with a decimal
    comma, thousands separators, a percent or a currency sign, by the marks of the file being
    read: with ``--decimal ','``, the roles of ``,`` and ``.`` swap (``1.234,5``, ``1.5``)."""
    decimal = _being_read().decimal
    if decimal != ".":
        cells = cells.str.translate(str.maketrans({decimal: ".", ".": ","}))
    return cells.str.fullmatch(_FORMATTED_NUMBER)


def _stray_text(column, pd):
    """Mask (a Series) of the text cells of a column of numbers with a few stray text cells,
    or None when ``column`` is not one.

    The rule (docs/user_guide/command_line.rst): at least two of the non-empty cells are
    numbers and the others, the text cells, are at most ``STRAY_TEXT_SHARE`` of the non-empty
    cells, or only one cell; or every text cell is a number written with a decimal comma,
    thousands separators, a percent or a currency sign (``1,5``, ``1,250``, ``12%``, ``$5``),
    however many. Such cells are typos, a ``?`` or ``unknown`` written for a missing value, a
    decimal comma, a unit: one-hot encoding the column
    would turn every distinct number into a feature of its own.
    """
    text = _text_cells(column, pd)
    n_text = int(text.sum())
    if n_text == 0:
        return None
    if _formatted_numbers(column[text].astype(str)).all():
        return text
    n_cells = int(column.notna().sum())
    if n_cells - n_text < 2 or (n_text > 1 and n_text > STRAY_TEXT_SHARE * n_cells):
        return None
    return text


def _punctuation_labels(column, pd):
    """Mask (a Series) of the cells of a text target column that are punctuation alone
    (``?``, ``-``, ``--``, ``.``: a missing label written as a mark), or None where there
    are none, or where they are more than ``STRAY_TEXT_SHARE`` of its non-empty cells, or
    all of them: classes such as ``+`` / ``-`` are then classes. The other cells hold letters
    or digits (a class ``yes``, ``no``), as every cell that is not punctuation alone does."""
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return None
    marks = column.notna() & column.astype(str).str.fullmatch(r"[\W_]+")
    n_marks, n_cells = int(marks.sum()), int(column.notna().sum())
    if n_marks == 0 or n_marks == n_cells or n_marks > STRAY_TEXT_SHARE * n_cells:
        return None
    return marks


def _cells(column, mask, limit=3):
    """The values of the True cells of ``mask`` with their file lines, for a message:
    ``'?' on line(s) 5, 9; 'abc' on line(s) 12``, at most ``limit`` distinct values; where
    some are formatted numbers (:func:`_formatted_numbers`), how to write them."""
    values = column[mask].astype(str)
    distinct = list(dict.fromkeys(values))
    parts = [f"{value!r} on line(s) {_lines(mask & (column.astype(str) == value), 5)}"
             for value in distinct[:limit]]
    more = len(distinct) - limit
    text = "; ".join(parts) + (f"; and {more} other value(s)" if more > 0 else "")
    reading = _being_read()
    if not _formatted_numbers(values).any():
        return text
    if reading.decimal != ".":
        return text + (f" (write numbers with the decimal mark {reading.decimal!r}, without "
                       "thousands separators, percent or currency signs)")
    # decimal commas in a column with no decimal point: a file of decimal commas, unless
    # its columns are separated by commas, where 1,250 is rather one thousand two hundred
    points = column[~mask & column.notna()].astype(str).str.contains(".", regex=False)
    commas = values[values.str.fullmatch(_DECIMAL_COMMA)]
    advice = ""
    if not points.any() and commas.size:
        advice = ("; in a file whose columns are separated by commas, a comma in a number "
                  "is no decimal mark: remove the thousands separators (1,250 as 1250)"
                  if reading.sep == "," and commas.str.fullmatch(_THOUSANDS).all() else
                  "; for a whole file written with decimal commas, read it with --decimal ','")
    return text + (" (write numbers with a decimal point, without thousands separators, "
                   f"percent or currency signs{advice})")


_NOT_NUMBERS = "holds numbers, but {cells} not a number"


def _stray_text_error(kind, name, mask, column, remedy, what=_NOT_NUMBERS):
    """The error for the ``kind`` ("Feature", "Target") column ``name`` with the stray cells
    ``mask``: text in numbers, or ``what`` (``{cells}``: "1 of its cells is"); ``remedy``
    ends the message."""
    n = int(mask.sum())
    cells = "1 of its cells is" if n == 1 else f"{n} of its cells are"
    return ValueError(f"{kind} column {name!r} {what.format(cells=cells)}: "
                      f"{_cells(column, mask)}; {remedy}")


def _first_bad_column(frame, bad):
    """``(name, mask)`` of the first numeric column of ``frame`` where ``bad`` (of a float
    array) holds for a cell, with the mask of those cells, or None."""
    numeric = frame.select_dtypes(include="number")
    found = bad(numeric.to_numpy(dtype=np.float64)).any(axis=0)
    if not found.any():
        return None
    name = numeric.columns[int(np.flatnonzero(found)[0])]
    return name, bad(numeric[name].astype(np.float64))


def _infinite_cells(frame, kind, remedy):
    """Raise a ValueError naming the first numeric column of ``frame`` with an infinite cell
    (``inf``, ``-inf``, or a number too large for a float) and its lines; ``remedy`` ends the
    message (``{name}`` is the column)."""
    found = _first_bad_column(frame, np.isinf)
    if found:
        name, mask = found
        raise ValueError(f"{kind} column {name!r} has infinite values (line(s) {_lines(mask, 5)}: "
                         "inf, or a number too large for a float); "
                         f"{remedy.format(name=_shell(name))}")


def _huge_cells(frame, kind, remedy):
    """Raise a ValueError naming the first numeric column of ``frame`` with a finite value
    beyond ``MAX_MAGNITUDE`` and its lines, whose squares overflow the sums a model forms
    (a standard deviation, a Gram matrix); ``remedy`` ends the message (``{name}``)."""
    found = _first_bad_column(frame, lambda v: np.isfinite(v) & (np.abs(v) > MAX_MAGNITUDE))
    if found:
        name, mask = found
        largest = float(np.abs(frame[name][mask].astype(np.float64)).max())
        raise ValueError(
            f"{kind} column {name!r} has values too large to compute with (line(s) "
            f"{_lines(mask, 5)}: up to {largest:.3g}, beyond {MAX_MAGNITUDE:.0e}, where a sum "
            f"of their squares overflows a float); {remedy.format(name=_shell(name))}")


def _decide_task_type(targets, requested, pd):
    """``(task_type, why)`` for the target columns ``targets`` (a DataFrame).

    The rule (documented in docs/user_guide/command_line.rst): a target column holding text is
    classification; numbers that are all whole and take at most ``MAX_CLASSES`` distinct
    values over all tasks (0/1 labels, a 1-5 rating) are classification; any other numbers
    (fractions, or counts and scores with many values) are regression. ``--task-type``
    overrides it, except that regression needs numbers. Before the rule: an infinite value is
    an error, and so, with ``auto``, is a column of numbers with a few text cells (see
    :func:`_stray_text`), which would otherwise turn a regression into a classification.
    """
    _infinite_cells(targets, "Target", "labels must be finite: fix those cells, or empty "
                    "them (an empty target cell is a missing label).")
    if requested == "auto":
        for column in targets.columns:
            stray = _stray_text(targets[column], pd)
            if stray is not None:
                raise _stray_text_error(
                    "Target", column, stray, targets[column],
                    "fix those cells, or empty them (an empty target cell is a missing "
                    "label); if its values are class labels, say so with --task-type "
                    "classification.")
            marks = _punctuation_labels(targets[column], pd)
            if marks is not None:  # a '?' would be a class of its own
                raise _stray_text_error(
                    "Target", column, marks, targets[column],
                    "leave a missing label empty (an empty target cell is a missing label); "
                    "if such a value is a class, say so with --task-type classification.",
                    what="holds class labels, but {cells} only punctuation")
    text = {c: _text_cells(targets[c], pd) for c in targets.columns}
    text = {c: mask for c, mask in text.items() if mask.any()}
    if requested == "regression" and text:
        column, mask = next(iter(text.items()))
        example = targets[column][mask].iloc[0]
        raise ValueError(f"--task-type regression needs numeric targets, but column "
                         f"{column!r} holds text ({example!r} on line(s) {_lines(mask, 5)}).")
    if requested == "classification":
        _check_class_labels(targets, "--task-type classification needs class labels",
                            "Leave --task-type out for regression.", pd)
    if requested != "auto":
        return requested, "as --task-type says"
    if text:
        column, mask = next(iter(text.items()))
        example = targets[column][mask].iloc[0]
        why = f"target column {column!r} holds text ({example!r})"
        _check_class_labels(targets, f"Target column {column!r} holds text ({example!r} on "
                                     f"line(s) {_lines(mask, 5)}), so the targets are class "
                                     "labels", "One comparison has one task type: compare "
                                     "the regression and the classification targets in "
                                     "separate runs.", pd)
        return "classification", why
    booleans = [c for c in targets.columns if targets[c].dtype == bool]
    if booleans:  # pandas reads TRUE / FALSE (True, true, ...) as booleans
        return "classification", f"target column {booleans[0]!r} holds true / false values"
    values = targets.to_numpy(dtype=np.float64).ravel()
    values = values[~np.isnan(values)]
    if values.size == 0:
        raise ValueError(f"Target column(s) {list(targets.columns)} have no value.")
    # counted as written: 10000000000000000001 and 10000000000000000000 are one float
    distinct = len(set().union(*(pd.unique(targets[c].dropna()).tolist() for c in targets)))
    values_word = "value" if distinct == 1 else "values"
    if np.all(values == np.round(values)):
        if distinct <= MAX_CLASSES:
            return "classification", (f"the targets are whole numbers with {distinct} "
                                      f"distinct {values_word} (at most {MAX_CLASSES})")
        return "regression", (f"the targets are whole numbers with {distinct} distinct "
                              f"values (more than {MAX_CLASSES})")
    return "regression", "the targets are numbers with fractions"


def _check_class_labels(targets, problem, advice, pd):
    """Raise ``ValueError`` (``problem``, then the first numeric target column with a fraction
    and where, then ``advice``) if a numeric target column holds a number with a fraction: no
    classifier takes it as a class label (scikit-learn calls it continuous)."""
    for column in targets.columns:
        values = targets[column]
        if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
            continue
        fraction = values.notna() & (values != np.round(values))
        if fraction.any():
            raise ValueError(
                f"{problem}, but column {column!r} holds numbers with fractions "
                f"({float(values[fraction].iloc[0]):g} on line(s) {_lines(fraction, 5)}), "
                f"which are no class labels. {advice}")


def _names_a_date(text):
    """Whether ``text`` parses as a date with at least two of its year, month and day written
    out. The parser reads any string with a digit it can place, filling the rest from a
    default: "m12" as 12 seconds past midnight and "t10" as day 10 of the default month,
    which are ids, not dates; "Jan 5" and "2024-03-01" name dates."""
    from dateutil import parser

    try:
        first = parser.parse(text, default=datetime(2000, 1, 1))
        second = parser.parse(text, default=datetime(2001, 2, 2))
    except (ValueError, OverflowError):
        return False
    written = [getattr(first, part) == getattr(second, part) for part in ("year", "month", "day")]
    return sum(written) >= 2


def _odd_column(column, pd, task_ids=None):
    """``"date"`` for a text column of dates, ``"id"`` for a column whose values all differ
    (text or whole numbers), ``"sample id"`` (long data, ``task_ids`` given) for one whose
    values differ within every task but repeat across tasks (a molecule measured on several
    targets, one row per target), else None."""
    values = column.dropna()
    if values.empty:
        return None
    text = not pd.api.types.is_numeric_dtype(values)
    # a date has digits: month or day names alone ("Jan", "Mon") are honest categories
    if text and values.astype(str).str.contains(r"\d").all():
        with warnings.catch_warnings():
            # pandas warns when it guesses a date format per value; a guess is all we need
            warnings.simplefilter("ignore")
            # a sample first: parsing value by value is slow on a long column of non-dates
            sample = values.head(50).astype(str)
            if all(_names_a_date(value) for value in sample) and all(
                    pd.to_datetime(part.astype(str), errors="coerce", format="mixed")
                    .notna().all() for part in (sample, values)):
                return "date"
    if values.size < MIN_ID_VALUES or not (
            text or pd.api.types.is_integer_dtype(values)
            # whole numbers read as floats (a column with an empty cell)
            or (pd.api.types.is_float_dtype(values) and np.all(values == np.round(values)))):
        return None
    if values.nunique() == values.size:
        return "id"
    if task_ids is None or values.nunique() < MIN_ID_VALUES:
        return None
    pairs = pd.DataFrame({"task": task_ids[column.notna().to_numpy()],
                          "value": values.to_numpy()})
    # distinct within every task, in a task large enough for that to mean something
    if pairs["task"].value_counts().iloc[0] >= MIN_ID_VALUES and not pairs.duplicated().any():
        return "sample id"
    return None


def _one_sample_per_value(features, name, pd, kind_of):
    """Whether the rows that share a value of column ``name`` agree on every other feature
    column but the ids (``kind_of(column) == "id"``, :func:`_odd_column`: row numbers): the
    rows of one sample, one per task, not a numbering that restarts in every task."""
    others = features.drop(columns=name)
    others = others[[c for c in others.columns if kind_of(c) != "id"]]
    if others.shape[1] == 0:
        return True
    rows = pd.util.hash_pandas_object(others, index=False).to_numpy()
    return bool((pd.Series(rows).groupby(features[name].to_numpy()).nunique() == 1).all())


def _features(frame, path, excluded, keep, pd, notes, task_ids=None):
    """The feature matrix of ``frame`` without the columns ``excluded``.

    A text column of numbers with a few stray text cells (:func:`_stray_text`) is an error
    unless ``keep`` names it; so is an infinite value. Text columns are one-hot encoded,
    except id-like and date-like text columns, which are dropped with a warning (one-hot
    encoding would make one feature per row or per date, which no model can learn from) unless
    ``keep`` names them; whole-number id-like columns are kept as numbers, with a warning.
    In long data (``task_ids``, the task of each row) a column that differs within every task
    but repeats across tasks, its rows of one value alike in every other feature, is a
    sample's id (:func:`_odd_column`, :func:`_one_sample_per_value`): the same, and the
    warning proposes it as ``--group-column``.
    """
    features = frame.drop(columns=excluded)
    for name in features.columns:
        # whole numbers beyond 2**53, kept exact (Python ints) by _strip_text_cells for class
        # labels: as features, floats
        if (pd.api.types.is_object_dtype(features[name])
                and pd.api.types.infer_dtype(features[name], skipna=True) == "integer"):
            features[name] = features[name].astype(np.float64)
    stray = {}
    for name in features.columns:
        mask = None if name in keep else _stray_text(features[name], pd)
        if mask is not None:
            stray[name] = mask
    if stray:
        name, mask = next(iter(stray.items()))
        others = [c for c in stray if c != name]
        also = f" Column(s) {others} have such cells too." if others else ""
        raise _stray_text_error(
            "Feature", name, mask, features[name],
            f"fix those cells, drop the column with --drop {_shell(name)}, or one-hot encode its "
            f"values as categories with --keep {_shell(name)}.{also}")
    kinds = {}  # each column's _odd_column, computed once (also read for the other columns)

    def kind_of(name):
        if name not in kinds:
            kinds[name] = _odd_column(features[name], pd, task_ids)
        return kinds[name]

    dropped = []
    for name in features.columns:
        column = features[name]
        if len(column) > 1 and column.notna().all() and column.nunique() == 1 and name not in keep:
            # collinear with the intercepts; in a classifier whose intercepts are pulled
            # together a large constant (a year) took the penalty's whole grid
            dropped.append(name)
            value = column.iloc[0]
            value = value.item() if hasattr(value, "item") else value  # 2023, not np.int64
            _warn(f"column {name!r} has the same value on every row ({value!r}): dropped, as "
                  "it carries no information.", notes)
            continue
        text = not pd.api.types.is_numeric_dtype(column)
        kind = None if name in keep else kind_of(name)
        if kind == "sample id" and not _one_sample_per_value(features, name, pd, kind_of):
            kind = None  # per-task numbering (pupils 1..n of each school): not one sample
        example = column.dropna().iloc[0] if kind else None
        if kind == "date":
            dropped.append(name)
            _warn(f"column {name!r} looks like dates (e.g. {example!r}): dropped, as one-hot "
                  "encoding would give one feature per date; turn it into numbers (e.g. day of "
                  f"year) or keep it as categories with --keep {_shell(name)}.", notes)
        elif kind == "id" and text:
            dropped.append(name)
            _warn(f"column {name!r} looks like an id ({column.count()} distinct text values): "
                  f"dropped, not one-hot encoded into {column.count() - 1} features; keep it "
                  f"with --keep {_shell(name)}.", notes)
        elif kind == "id":
            _warn(f"column {name!r} looks like an id ({column.count()} distinct whole "
                  f"numbers): kept as a numeric feature; drop it with --drop {_shell(name)}.",
                  notes)
        elif kind == "sample id":
            # a sample with a row per task: split by row, its rows fall in training and test
            values = "text values" if text else "whole numbers"
            what = (f"dropped, not one-hot encoded into {column.nunique() - 1} features; keep "
                    f"it with --keep {_shell(name)}" if text else
                    f"kept as a numeric feature; drop it with --drop {_shell(name)}")
            if text:
                dropped.append(name)
            _warn(f"column {name!r} looks like the id of the samples ({column.nunique()} "
                  f"distinct {values}, none twice in a task, repeated across tasks): {what}. "
                  f"To keep each sample's rows in one fold, pass --group-column {_shell(name)}.",
                  notes)
        elif text and column.nunique() > MANY_CATEGORIES:
            _warn(f"column {name!r} has {column.nunique()} distinct text values: one-hot "
                  f"encoded into {column.nunique() - 1} features; drop it with --drop "
                  f"{_shell(name)}.", notes)
    features = features.drop(columns=dropped)
    if features.shape[1] == 0:
        if dropped:
            raise ValueError(f"No feature column left in {path}: {dropped} were dropped as "
                             "constant, id or date columns; keep them with --keep.")
        raise ValueError(f"No feature column in {path}: every column is a target, the task "
                         "column or in --drop.")
    missing = features.isna().any()
    if missing.any():
        name = missing.index[missing.to_numpy()][0]
        raise ValueError(f"Feature column {name!r} has empty cells (line(s) "
                         f"{_lines(features[name].isna(), 5)}); fill them or drop it with "
                         f"--drop {_shell(name)}.")
    _infinite_cells(features, "Feature", "fix those cells, or drop the column with --drop {name}.")
    _huge_cells(features, "Feature", "rescale the column (divide it by a power of ten), or "
                "drop it with --drop {name}.")
    return pd.get_dummies(features, drop_first=True, dtype=float)


def _shell(name):
    """A column name as the value of an option in a shell command (``--drop 'Unnamed: 0'``)."""
    return shlex.quote(name)


def _warn(message, notes):
    """Print a warning on the data and keep it for report.html."""
    print(f"skmtl: warning: {message}", file=sys.stderr)
    notes.append(f"Warning: {message}")


def _note(message, notes):
    """Print a note on the data and keep it for report.html."""
    print(message)
    notes.append(message)


def _strip_text_cells(frame, pd, notes):
    """``frame`` with the spaces around its text cells removed, as around numbers (which pandas
    reads through them): a cell of spaces alone is then empty (a missing label, an empty
    feature cell; it was a class label ``' '``), ``'yes '`` is the class ``'yes'``, and a
    column whose cells are then all numbers or empty is read as numbers, by the file's
    decimal mark (``'3,1 '`` with ``--decimal ','``; also whole numbers beyond the int64
    range of both signs, which pandas reads as text). Whole numbers beyond 2**53, where
    floats skip some, stay exact (Python ints). A warning names each column where values
    differed only by such spaces, each value with its lines."""
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            continue
        if pd.api.types.is_object_dtype(column):  # possibly mixed: the strings only
            text = column.map(lambda v: isinstance(v, str)).astype(bool)
        else:  # pandas' string dtype: every cell present is a string
            text = column.notna()
        if not text.any():
            continue
        stripped = column.copy()
        stripped[text] = column[text].str.strip()
        changed = text & (stripped != column)
        # an empty cell that pandas kept as '' (a column of whole numbers beyond int64's
        # range, read as text) is empty, as everywhere else
        emptied = text & (stripped == "")
        stripped[emptied] = np.nan
        changed = changed | emptied
        if changed.any():
            if (stripped[text].dropna().nunique()
                    < column[text][stripped[text].notna()].nunique()):
                _warn(_spaced_values(name, column, changed & stripped.notna()), notes)
        present = stripped.dropna()
        # all numbers? (not where the first cell is none: a column of text pays no more)
        numbers = (_as_numbers(stripped, pd) if present.size
                   and _as_numbers(present.iloc[:1], pd).notna().all() else None)
        if numbers is not None and numbers.notna().sum() == present.size:
            whole = present.astype(str).str.fullmatch(r"[-+]?\d+").all()
            frame[name] = (_exact_ints(stripped) if whole and (numbers.abs() >= 2**53).any()
                           else numbers)
        elif changed.any():
            frame[name] = stripped
    return frame


def _spaced_values(name, column, changed, limit=3):
    """The warning for the cells ``changed`` of column ``name``, whose values differ from
    others only by spaces around them: each value (at most ``limit``) with its lines."""
    distinct = list(dict.fromkeys(column[changed]))
    shown = "; ".join(f"({value!r} on line(s) {_lines(changed & (column == value), 5)}): "
                      f"read as {value.strip()!r}" for value in distinct[:limit])
    more = f"; and {len(distinct) - limit} other value(s)" if len(distinct) > limit else ""
    return f"column {name!r} has values that differ only by spaces around them {shown}{more}."


def _exact_labels(column, name, pd):
    """Class labels, exact: a column of Python ints (no numpy integer holds them all) with
    whole numbers beyond the int64 range, which scikit-learn calls of an "unknown" type, as
    their digits, the other whole numbers of their column too (a uint64 column stays); a
    float column of whole numbers beyond 2**53 (pandas reads a column of integers with an
    empty cell as floats, which make neighbours one class) as written in the file."""
    def beyond(value):
        return (isinstance(value, int) and not isinstance(value, bool)
                and not -2**63 <= value < 2**63)

    if column.dtype.kind == "f":
        present = column.dropna().to_numpy()
        if present.size and np.abs(present).max() >= 2.0**53 and np.all(
                present == np.round(present)):
            written = _written_cells(name, pd)[column.index].where(column.notna())
            if written.dropna().str.fullmatch(r"[-+]?\d+").all():  # (not 1e20: as read)
                return _exact_labels(_exact_ints(written), name, pd)
        return column
    if column.dtype.kind != "O" or not column.map(beyond).any():
        return column
    return column.map(lambda v: str(v) if isinstance(v, int) and not isinstance(v, bool)
                      else v)


def _exact_ints(cells):
    """Cells of whole numbers (text) as Python ints, exact, in an object Series; empty cells
    stay NaN (``Series.map(int)`` would make them all floats)."""
    values = np.empty(len(cells), dtype=object)  # (setting ints into a Series casts them)
    values[:] = [int(value) if isinstance(value, str) else np.nan for value in cells]
    return cells.__class__(values, index=cells.index, name=cells.name, dtype=object)


def _written_cells(name, pd):
    """The cells of column ``name`` as written in the file being read, as text without the
    spaces around it (numbers as their digits, not as the floats pandas made of them)."""
    csv_file = _being_read()
    raw = csv_file.read_csv(pd, usecols=[csv_file.names.index(name)], dtype=str,
                            keep_default_na=False, decimal=csv_file.decimal)
    return raw.iloc[:, 0].str.strip()


def _row_labels(column, name, path, pd, kind="Task"):
    """The task (or group) column as labels: whole numbers stay numbers (int64; their
    digits beyond its range), anything else is text, as written. The column comes from
    :func:`_strip_text_cells`: no spaces around its text, a cell of spaces alone already
    empty."""
    empty = column.isna()
    if empty.any():
        raise ValueError(f"{kind} column {name!r} is empty on line(s) {_lines(empty)} of "
                         f"{path} (line {_being_read().header_line} is the header); fill "
                         "those cells or remove the rows.")
    values = column.to_numpy()
    if values.dtype.kind == "f":
        # whole numbers written 7.0 (a spreadsheet's export) are the tasks 7, not '7.0'
        if np.all(np.abs(values) < 2.0**53) and np.all(values == np.round(values)):
            return values.astype(np.int64)
        # not all whole: text as written, so that '2' and '2.0' are two tasks, as '1.5' is
        return _written_cells(name, pd)[column.index].to_numpy().astype(str)
    whole = values.dtype.kind in "iu" or column.map(
        lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))).all()
    if whole:
        if all(-2**63 <= int(v) < 2**63 for v in (values.min(), values.max())):
            return values.astype(np.int64)
        return np.array([str(int(v)) for v in values])  # beyond int64: exact digits
    # a column mixing numbers and text ("7", "7b") is read as text throughout, so that "7"
    # is one task whatever the cell looks like
    return column.astype(str).to_numpy()


def _load_csv(args):
    from skmtl.utils._optional import import_optional

    pd = import_optional("pandas", "datasets", "reading --csv files")
    path, task_column = args.csv, args.task_column and args.task_column.strip()
    group_column = args.group_column and args.group_column.strip()
    if not args.targets:
        raise ValueError("--csv needs --targets (the target column or columns).")
    target_columns = _column_list(args.targets, "--targets")
    drop, keep = _column_list(args.drop, "--drop"), _column_list(args.keep, "--keep")
    if task_column and len(target_columns) != 1:
        raise ValueError("With --task-column (long data), --targets names exactly one column.")
    if task_column in target_columns:
        raise ValueError(f"--task-column {task_column} is also the target column: name the "
                         "column of labels with --targets and the column of task names with "
                         "--task-column.")
    if group_column and group_column in [*target_columns, task_column]:
        what = "task" if group_column == task_column else "target"
        raise ValueError(f"--group-column {group_column} is also the {what} column: the "
                         "groups are another column (a scaffold, a sample id), whose rows "
                         "the folds keep together.")
    csv_file = _CsvFile(path, args.encoding or "utf-8", *_csv_marks(args))
    with _reading(csv_file):  # the file whose lines and marks the messages use
        return _csv_data(csv_file, pd, args.task_type, target_columns, task_column,
                         group_column, drop, keep)


def _csv_data(csv_file, pd, requested, target_columns, task_column, group_column, drop, keep):
    """The ``--csv`` file's data: ``(X, y, task_ids, groups, task_type, label, notes)``,
    by the rules of docs/user_guide/command_line.rst."""
    path = csv_file.path
    frame = _read_frame(csv_file, pd)
    notes = []
    # a column with no name and no value: a comma ending every line, as spreadsheets export;
    # or ending every line but the header (csv_file.trailing, not read)
    blank = [j for j, name in enumerate(csv_file.header)
             if not name.strip() and frame.iloc[:, j].isna().all()]
    left_out = blank + [len(csv_file.header) + k for k in range(csv_file.trailing)]
    if left_out:
        separator = {",": "a comma", ";": "a semicolon", "\t": "a tab"}.get(
            csv_file.sep, f"a {csv_file.sep!r}")
        _warn(f"column(s) {', '.join(str(j + 1) for j in left_out)} of {path} have no name "
              f"and no value ({separator} at the end of every line?): left out.", notes)
    needed = target_columns + ([task_column] if task_column else [])
    for option, columns in [("--targets/--task-column", needed), ("--drop", drop),
                            ("--keep", keep), ("--group-column", [group_column] if group_column
                                               else [])]:
        absent = [c for c in columns if c not in frame.columns]
        if absent:
            commas = [c for c in frame.columns if "," in c]
            raise ValueError(
                f"Column(s) {absent} of {option} are not in {path}; it has "
                f"{list(frame.columns)}." + (
                    f" A list of columns is split at its commas, so a column whose name holds "
                    f"one ({commas[0]!r}) cannot be named in it: rename it in the file."
                    if commas and option != "--group-column" else ""))
    clash = [c for c in drop if c in needed]
    if clash:
        raise ValueError(f"--drop {','.join(clash)}: a target or task column cannot be dropped.")
    clash = [c for c in keep if c in needed]
    if clash:
        raise ValueError(f"--keep {','.join(clash)}: a target or task column is no feature; "
                         "--keep names feature columns.")
    if group_column in keep:
        raise ValueError(f"--keep {group_column}: the --group-column is no feature; --keep "
                         "names feature columns.")
    if group_column:  # its rows kept whole in the folds, not a feature (--drop it or not)
        needed = needed + [group_column]
    clash = [c for c in keep if c in drop]
    if clash:
        raise ValueError(f"Column(s) {clash} are in both --keep and --drop: keep them as "
                         "features or drop them, not both.")
    for name, markers in _missing_markers(frame, pd):
        if name in drop:
            continue
        shown = ", ".join(f"{n} x {marker!r}" for marker, n in markers.items())
        _warn(f"column {name!r} has cells read as empty, as pandas reads CSV files ({shown}); "
              "if a marker is a value (a class or category called 'None' or 'NA'), rename it "
              "in the file.", notes)
    # dropped after _missing_markers, which reads the file again by the frame's positions
    frame = _strip_text_cells(frame.drop(columns=frame.columns[blank]), pd, notes)
    task_ids = groups = None
    if group_column:
        groups = _row_labels(frame[group_column], group_column, path, pd, kind="Group")
    if task_column:
        task_ids = _row_labels(frame[task_column], task_column, path, pd)
        unlabelled = frame[target_columns[0]].isna()
        if unlabelled.any():
            # long data has one row per label: a row without one carries nothing to learn
            _note(f"Left out {unlabelled.sum()} row(s) with an empty {target_columns[0]!r} "
                  f"(line(s) {_lines(unlabelled)}).", notes)
            keep_rows = ~unlabelled.to_numpy()
            frame, task_ids = frame[keep_rows], task_ids[keep_rows]
            groups = None if groups is None else groups[keep_rows]
            if frame.shape[0] == 0:
                raise ValueError(f"Target column {target_columns[0]!r} of {path} is empty.")
    task_type, why = _decide_task_type(frame[target_columns], requested, pd)
    if task_type == "regression":  # class labels are never computed with
        _huge_cells(frame[target_columns], "Target", "rescale the targets: divide every "
                    "target column by one power of ten, which keeps the tasks comparable.")
    other = "classification" if task_type == "regression" else "regression"
    _note(f"Task type: {task_type}, {why}"
          + ("." if requested != "auto" else f"; override with --task-type {other}."),
          notes)
    X = _features(frame, path, needed + drop, keep, pd, notes, task_ids)
    if task_type == "classification":
        for name in target_columns:
            frame[name] = _exact_labels(frame[name], name, pd)
    y = frame[target_columns[0]] if task_column else frame[target_columns]
    y = y.astype(np.float64 if task_type == "regression" else object)
    if task_column:
        y = y.to_numpy()
    return (X.to_numpy(dtype=np.float64), y, task_ids, groups, task_type,
            os.path.basename(path), notes)


def _progress(total, quiet):
    """``(step, close)``: ``step()`` after each fit; ``close(finished=False)`` ends the bar,
    with ``finished`` at the fits run (fewer than ``total`` where models were left out).
    Closing twice is closing once."""
    if quiet:
        return lambda: None, lambda finished=False: None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a core dependency
        done = [0]

        def step():
            done[0] += 1
            logger.info("fitted %d / %d folds", done[0], total)

        return step, lambda finished=False: None
    bar = tqdm(total=total, desc="cross-validating", unit="fit", file=sys.stderr)

    def close(finished=False):
        if finished and not bar.disable:
            bar.total = bar.n
            bar.refresh()
        bar.close()

    return lambda: bar.update(1), close


@contextlib.contextmanager
def _parallel_backend(address):
    """Run joblib on the dask scheduler at ``address`` inside the block; yields the line that
    says so. None: joblib's own backend, or the one active around :func:`main`, yields None."""
    if address is None:
        yield None
        return
    try:
        from distributed import Client
    except ImportError:
        raise ImportError("--scheduler needs dask.distributed; install the dask extra: "
                          "pip install 'skmtl[dask]'") from None
    import joblib

    with Client(address) as client, joblib.parallel_config(backend="dask"):
        threads = sum(client.ncores().values())
        yield f"Fits run on the dask scheduler at {address} ({threads} worker threads)."


def _hierarchical_note(n_features, n_tasks, task_type, notes):
    """Say which random effects the hierarchical model gets with ``n_features`` features of
    ``n_tasks`` tasks (:func:`~skmtl._compare.hierarchical_structure`), where not every slope
    has a full covariance: a random intercept only is no model of tasks whose slopes differ."""
    structure = hierarchical_structure(n_features, n_tasks, task_type)
    if not structure:
        return
    work = f"T q^3 = {hierarchical_work(n_features, n_tasks):.2g} for {n_tasks} tasks"
    if structure.get("covariance_type") == "diag":
        _note(f"hierarchical: {n_features} features (more than {HIERARCHICAL_SLOPES}): every "
              f"slope varies between tasks, independently (a diagonal covariance; {work}).",
              notes)
    elif structure.get("covariance_type") == "spherical":
        _note(f"hierarchical: {n_features} features of {n_tasks} tasks ({work}, more than "
              f"{HIERARCHICAL_DIAGONAL_WORK:.0e}, too slow for independent slopes): every "
              "slope varies between tasks with one variance, and the mean task's slopes have "
              "a prior too (covariance_type='spherical').", notes)
    else:
        _note(f"hierarchical: {n_features} features of {n_tasks} tasks ({work}, more than "
              f"{HIERARCHICAL_DIAGONAL_WORK:.0e}, too slow for independent slopes): a random "
              "intercept per task only, the slopes the same for every task and fitted without "
              "a penalty; where the tasks' slopes differ, mean_clustered models that (its "
              "penalty chosen by cross-validation).", notes)


def _check_device(device, deep, notes):
    """Before any fitting: an unavailable ``--device`` is an error where a deep model runs
    (it was one at the first deep fit, after the other models' folds); where none does, a
    note says the option is not used."""
    if device == "cpu":
        return
    if not deep:
        _note(f"--device {device} is not used: none of the models run is a deep model.", notes)
        return
    try:
        from skmtl.deep._device import resolve_device
    except ImportError:  # the deep models are then left out, with their reason
        return
    resolve_device(device)


OUT_FILES = ("scores.csv", "per_task.csv", "transfer.png", "report.html")


def _check_out(out):
    """Create the --out folder, or say in one line why it cannot be created or written."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out} is an existing file, not a folder; give a folder name.")
    try:
        os.makedirs(out, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()
    except OSError as exc:
        raise ValueError(f"--out {out} cannot be created or written: "
                         f"{exc.strerror or exc}.") from None
    # the files it will write, overwritten if they are files: a folder of that name stops it
    taken = [name for name in OUT_FILES if os.path.isdir(os.path.join(out, name))]
    if taken:
        raise ValueError(f"--out {out} has folder(s) named {', '.join(taken)}, the name(s) of "
                         "the results files it writes: move them, or give another folder.")


def _write_csv(rows, path):
    # UTF-8, as report.html, whatever the locale: a task named 'Genève' or '東京' is written
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _write_scores(result, out):
    """Write scores.csv (one row per model and task) and per_task.csv (one row per task, the
    models side by side); return their paths."""
    os.makedirs(out, exist_ok=True)
    return (_write_csv(result.to_rows(), os.path.join(out, "scores.csv")),
            _write_csv(result.per_task_rows(), os.path.join(out, "per_task.csv")))


def _transfer_display(result):
    """Every model's per-task gain over the reference, one panel per model, on a new
    (pyplot-free) figure; returns the :class:`~skmtl.plotting.TransferDisplay` of each model.

    Each panel sorts the tasks by the model's gain (tasks without a gain left out). Beyond
    ``MAX_TASKS_SHOWN`` tasks it shows the worst and the best half of that many, so that the
    figure stays readable and its size bounded (at most 16 x 3.2 inches a panel) from 5 tasks
    to thousands.
    """
    from matplotlib.figure import Figure

    from skmtl.plotting import TransferDisplay

    models = [m for m in result.per_task if m != result.reference]
    n_tasks = len(result.tasks)
    shown = min(n_tasks, MAX_TASKS_SHOWN)
    # at least 8 inches: the two-line panel titles fit
    figure = Figure(figsize=(min(max(4 + 0.3 * shown, 8), 16), 3.2 * len(models)),
                    layout="constrained")
    axes = figure.subplots(len(models), 1, squeeze=False)[:, 0]
    displays = {}
    for ax, model in zip(axes, models):
        values = result.per_task[model]
        defined = np.flatnonzero(~np.isnan(values["gain"]))
        order = defined[np.argsort(values["gain"][defined], kind="stable")]
        title = f"{model}: per-task gain over {result.reference}\ntasks sorted by gain"
        if order.size > MAX_TASKS_SHOWN:
            half = MAX_TASKS_SHOWN // 2
            order = np.concatenate([order[:half], order[-half:]])
            title += f"; the {half} worst and {half} best of {defined.size} tasks"
            ax.axvline(half - 0.5, color="grey", linestyle=":")
        display = TransferDisplay(
            result.tasks[order], values["gain"][order],
            gain_se=np.nan_to_num(values["gain_se"][order]),
            negative_transfer=values["negative_transfer"][order], scoring=result.metric)
        display.plot(ax=ax, xticks_rotation="vertical" if order.size > 10 else "horizontal")
        ax.set_title(f"{title} (mean over {result.n_splits} folds)", fontsize="medium")
        # the display's label names the scorer in full, too long for a panel 3 inches high
        ax.set_ylabel(f"gain in {result.metric_name}")
        displays[model] = display
    return displays


def _write_transfer_plot(result, out):
    """Save :func:`_transfer_display` as ``out/transfer.png`` and return the path, or return
    the reason it was left out (no matplotlib, or no model besides stl)."""
    import importlib.util

    path = os.path.join(out, "transfer.png")
    reason = None
    if importlib.util.find_spec("matplotlib") is None:
        reason = "matplotlib is not installed (pip install 'skmtl[plot]')"
    elif len(result.per_task) < 2:
        reason = f"no model besides {result.reference}"
    if reason is not None:
        if os.path.isfile(path):  # an earlier run's plot would contradict this run's files
            os.remove(path)
        return f"transfer.png left out: {reason}."
    next(iter(_transfer_display(result).values())).figure_.savefig(path, dpi=100)
    return path


_REPORT_STYLE = """
body { font-family: sans-serif; max-width: 70em; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.8em; }
td:not(:first-child) { text-align: right; }
th { background: #eee; }
img { max-width: 100%; }
"""


def _write_report(result, out, title, notes, plot):
    """Write out/report.html, a self-contained page (inline CSS, the plot embedded as a base64
    PNG: it opens offline and survives being mailed): the notes on the data, the summary
    table, the models left out and why, and the transfer plot (or why it is missing)."""
    import base64
    from html import escape

    header, lines = result.table()
    table = "\n".join(
        ["<table>", "<tr>" + "".join(f"<th>{escape(c)}</th>" for c in header) + "</tr>",
         *["<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in lines],
         "</table>"])
    skipped = "".join(f"<li><b>{escape(name)}</b>: {escape(reason)}</li>"
                      for name, reason in result.skipped.items())
    if plot.endswith(".png"):
        with open(plot, "rb") as handle:
            data = base64.b64encode(handle.read()).decode("ascii")
        figure = (f'<img src="data:image/png;base64,{data}" alt="per-task gain of each model '
                  f'over {escape(result.reference)}">')
    else:
        figure = f"<p>{escape(plot)}</p>"
    body = [
        f"<h1>skmtl compare: {escape(title)}</h1>",
        "<ul>" + "".join(f"<li>{escape(note)}</li>" for note in notes) + "</ul>",
        "<h2>Summary</h2>",
        f"<p>Per task, a model's score is its mean test {escape(result.metric)} over "
        f"{result.n_splits} folds; its gain is its score minus {escape(result.reference)}'s, "
        "in the same units. Wins / losses: tasks with a gain above / below 0; negative "
        "transfer: gain below minus its standard error. Fit time in seconds, summed over the "
        "folds.</p>",
        table,
        "<h2>Models left out</h2>",
        f"<ul>{skipped}</ul>" if skipped else "<p>None.</p>",
        "<h2>Per-task gains</h2>",
        figure,
        "<p>Every number: <a href='scores.csv'>scores.csv</a> (one row per model and task), "
        "<a href='per_task.csv'>per_task.csv</a> (one row per task).</p>",
    ]
    path = os.path.join(out, "report.html")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
                     f"<title>skmtl compare: {escape(title)}</title>"
                     f"<style>{_REPORT_STYLE}</style></head>"
                     "<body>\n" + "\n".join(body) + "\n</body></html>\n")
    return path


def _drop_unsplittable_tasks(X, y, task_ids, groups, notes, min_labels=2):
    """Remove tasks with fewer than ``min_labels`` labels (cross-validation needs 2), loudly."""
    from skmtl.utils.validation import missing_mask

    if task_ids is not None:
        tasks, counts = np.unique(task_ids, return_counts=True)
        few = tasks[counts < min_labels]
        keep = ~np.isin(task_ids, few)
        X, y, task_ids = X[keep], y[keep], task_ids[keep]
        groups = None if groups is None else groups[keep]
    else:
        counts = (~missing_mask(np.asarray(y))).sum(axis=0)
        columns = list(getattr(y, "columns", range(np.shape(y)[1])))
        few = [c for c, n in zip(columns, counts) if n < min_labels]
        if few:
            y = y.drop(columns=few) if hasattr(y, "drop") else np.delete(y, few, axis=1)
    if len(few):
        shown = ", ".join(str(t) for t in list(few)[:10])
        _note(f"Left out {len(few)} task(s) with fewer than {min_labels} labels, which "
              f"cross-validation cannot split: {shown}{' ...' if len(few) > 10 else ''}.",
              notes)
    left = np.unique(task_ids).size if task_ids is not None else np.shape(y)[1]
    if left == 0:
        raise ValueError(f"No task has {min_labels} labels or more; cross-validation needs "
                         f"{min_labels} per task.")
    return X, y, task_ids, groups


def _check_groups(groups, cv, column):
    """Enough groups for ``cv`` folds; returns the sentence that names the folds."""
    n_groups = np.unique(groups).size
    if n_groups < cv:
        raise ValueError(f"--group-column {column!r} has {n_groups} group(s): too few for "
                         f"{cv} folds, each of which holds whole groups; use --cv {n_groups} "
                         "or less." if n_groups >= 2 else
                         f"--group-column {column!r} has a single group: folds that keep "
                         "groups whole need 2 or more.")
    return f"{cv}-fold MultiTaskGroupKFold by {column!r} ({n_groups} groups)"


def _report_identical(result, notes):
    """Say which models scored exactly as an earlier one on every task (the same mean score and
    the same standard error of the gain over the folds, to the last digit): on small data,
    deep strategies often train to the same network. Kept in ``notes`` for report.html."""
    groups = {}
    for name, values in result.per_task.items():
        key = (np.asarray(values["score"]).tobytes(), np.asarray(values["gain_se"]).tobytes())
        groups.setdefault(key, []).append(name)
    for first, *others in groups.values():
        if others:
            _note(f"{', '.join(others)} scored exactly as {first}, to the last digit (the "
                  "same predictions in every fold). With deep strategies on small data: early "
                  "stopping keeps the epoch of the best validation loss, which can be the "
                  "first, before a weighting acts; LBTW's weights stay 1 when an epoch is one "
                  "batch (see 'lbtw' in the deep user guide).", notes)


def _report_undefined(result, notes):
    """Say which tasks had folds without a defined score (left out of their means); kept in
    ``notes`` for report.html."""
    undefined = result.undefined_tasks()
    if not undefined:
        return
    tasks = undefined.get(result.reference, next(iter(undefined.values())))
    shown = ", ".join(str(t) for t in tasks[:10]) + (" ..." if len(tasks) > 10 else "")
    _note(f"{len(tasks)} task(s) have too few test labels in some folds for their "
          f"{result.metric_name} there ({shown}); those folds are left out of their means "
          "(n_folds in scores.csv).", notes)


def _check_before_fitting(args, X, y, task_ids, task_type, label):
    """The mistakes in options that only the data reveal, named by their option before any
    header, progress bar or fit (they were found by the first fit: ``scoring='roc_auc' does
    not score regression`` after a progress bar, ``n_splits=100`` for ``--cv 100``)."""
    if args.scoring is not None and args.scoring not in SCORINGS[task_type]:
        raise ValueError(f"--scoring {args.scoring} does not score {task_type} (the targets "
                         f"of {label}); choose from {', '.join(SCORINGS[task_type])}.")
    if args.cv > X.shape[0]:
        raise ValueError(f"--cv {args.cv} folds need at least as many rows; {label} has "
                         f"{X.shape[0]}.")
    if args.focus is not None:
        tasks = check_multitask_target(y, task_ids,
                                       y_numeric=task_type == "regression").tasks
        _focus_position(args.focus, tasks)


def _compare(args):
    if args.cv < 2:
        raise ValueError(f"--cv must be at least 2; got {args.cv}.")
    if not 0 <= args.seed < 2**32:  # numpy's seeds: said before the data are read
        raise ValueError(f"--seed must be between 0 and 2**32 - 1; got {args.seed}.")
    if args.n_jobs == 0:
        raise ValueError("--n-jobs must be a positive number of jobs, or negative (-1: all "
                         "cores); got 0.")
    if args.csv:
        X, y, task_ids, groups, task_type, label, notes = _load_csv(args)
    else:
        if (args.targets or args.task_column or args.group_column or args.drop or args.keep
                or args.encoding or args.sep is not None or args.decimal is not None):
            raise ValueError("--targets, --task-column, --group-column, --drop, --keep, "
                             "--encoding, --sep and --decimal go with --csv.")
        X, y, task_ids, groups, task_type, label, notes = _load_packaged(
            args.dataset or DEFAULT_DATASET)
    if args.focus is None and args.strategies:
        raise ValueError("--strategies goes with --focus.")
    if args.focus is not None and args.models:
        raise ValueError("--models does not go with --focus (it compares the focused-task "
                         "strategies); choose them with --strategies.")
    X, y, task_ids, groups = _drop_unsplittable_tasks(X, y, task_ids, groups, notes)
    folds = (f"{args.cv}-fold MultiTaskKFold" if groups is None
             else _check_groups(groups, args.cv, args.group_column.strip()))
    _check_before_fitting(args, X, y, task_ids, task_type, label)
    # before any fitting: a run of minutes must not end on a folder it cannot write
    _check_out(args.out)
    if args.focus is None:
        models = args.models or [name for name, spec in MODELS.items() if spec.default]
        models = ["stl"] + [m for m in dict.fromkeys(models) if m != "stl"]  # each once
    deep = args.focus is not None or any(MODELS[name].uses_device for name in models)
    _check_device(args.device, deep, notes)
    if deep:
        _warm_up_torch()
    if args.focus is None and "hierarchical" in models:
        _hierarchical_note(X.shape[1], count_tasks(y, task_ids), task_type, notes)
    data = (f"Data set {label}: {X.shape[0]} rows, {X.shape[1]} features, {task_type}, "
            f"{'long' if task_ids is not None else 'wide'} format; {folds};")
    common = dict(task_ids=task_ids, groups=groups, task_type=task_type, cv=args.cv,
                  random_state=args.seed, device=args.device, scoring=args.scoring,
                  n_jobs=args.n_jobs)
    with _parallel_backend(args.scheduler) as where:
        if where is not None:
            print(where)
        if args.focus is not None:
            strategies = args.strategies or list(FOCUS_STRATEGIES)
            strategies = ["single_task"] + [s for s in strategies if s != "single_task"]
            data += f" focus task {args.focus};"
            print(f"{data} strategies: {', '.join(strategies)}")
            step, close = _progress(len(strategies) * args.cv, args.quiet)
            try:
                with _warnings_kept(notes):
                    result = run_focus_comparison(X, y, focus=args.focus,
                                                  strategies=strategies, progress=step, **common)
                close(finished=True)
            finally:
                close()
            _note(f"Focus task {args.focus}: {result.per_task['single_task']['n_observed'][0]} "
                  f"labels. Gains are in {result.metric_name}, against single_task (the focus "
                  "task alone).", notes)
        else:
            print(f"{data} models: {', '.join(models)}")
            step, close = _progress(len(models) * args.cv, args.quiet)
            try:
                with _warnings_kept(notes):
                    result = run_comparison(X, y, models=models, progress=step, **common)
                close(finished=True)  # the models left out (result.skipped) ran no fit
            finally:
                close()
            print(f"{len(result.tasks)} tasks. Wins / losses: tasks where a model's "
                  f"cross-validated {result.metric_name} beats / trails single-task learning "
                  "(stl).")
    print(result.format_table())
    _report_identical(result, notes)
    _report_undefined(result, notes)
    for name, reason in result.skipped.items():
        print(f"Left out {name}: {reason}.")
    scores, per_task = _write_scores(result, args.out)
    print(f"Per-task scores written to {scores} (one row per model and task) and {per_task} "
          "(one row per task)")
    plot = _write_transfer_plot(result, args.out)
    print(f"Per-task gains over {result.reference} plotted in {plot}"
          if plot.endswith(".png") else plot)
    report = _write_report(result, args.out, label, [data.rstrip(";") + ".", *notes], plot)
    print(f"Report (table, models left out, plot) in {report}")
    return 0


def main(argv=None):
    """Run the ``skmtl`` command.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    status : int
        0 on success, 2 on a usage or data error (the message is printed to stderr).
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = _build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        # a library warning (a grid edge, a convergence) reads as one line of the command's
        # output, not as Python's file:line report with a source line
        warnings.showwarning = _show_warning
        return _run(parser, args)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"skmtl: warning: {_warning_text(message, category)}", file=sys.stderr)


def _warning_text(message, category):
    return f"{' '.join(str(message).split())} ({category.__name__})"


@contextlib.contextmanager
def _warnings_kept(notes):
    """Inside, each warning shown (a grid edge, a convergence: one line, :func:`_show_warning`)
    is also kept in ``notes`` for report.html. (Warnings of fits run by other processes,
    ``--n-jobs``, are neither shown nor kept.)"""
    show = warnings.showwarning
    with warnings.catch_warnings():

        def show_and_keep(message, category, filename, lineno, file=None, line=None):
            show(message, category, filename, lineno, file, line)
            notes.append(f"Warning: {_warning_text(message, category)}")

        warnings.showwarning = show_and_keep
        yield


def _run(parser, args):
    try:
        if args.command == "datasets":
            return _list_datasets()
        if args.command in (None, "compare"):
            if args.command is None:
                args = parser.parse_args(["compare"])
            return _compare(args)
    except (ValueError, ImportError, OSError) as exc:
        # one line, whatever the message quotes (a parser's multi-line report, say)
        print(f"skmtl: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0  # pragma: no cover
