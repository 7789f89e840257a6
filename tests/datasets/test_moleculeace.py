"""load_moleculeace: 30 ChEMBL targets from the MoleculeACE package, fingerprints from rdkit.

Loading all 30 targets parses 35,633 molecules (15-20 s); the default tests load a few small
targets and the full load is marked slow.
"""

import csv
import importlib.util
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from skmtl.datasets import DATASETS, list_datasets, load_dataset, load_moleculeace
from skmtl.datasets._moleculeace import _TASKS, _benchmark_folder

needs_chem = pytest.mark.skipif(
    importlib.util.find_spec("MoleculeACE") is None or importlib.util.find_spec("rdkit") is None,
    reason="needs MoleculeACE (pip install --no-deps MoleculeACE==3.0.0) and skmtl[chem]",
)

# Three small targets: the first two share 544 molecules, the third shares none.
SMALL = ["CHEMBL2835_Ki", "CHEMBL2971_Ki", "CHEMBL4616_EC50"]
SMALL_SIZES = [615, 976, 682]
N_SMALL = 615 + 976 - 544 + 682

# Line 3 of CHEMBL2835_Ki.csv, read by hand: Ki = 0.5 nM, test split, no cliff. The same
# molecule is in CHEMBL2971_Ki.csv with Ki = 0.3 nM, train split, and not in CHEMBL4616_EC50.
TRACED_SMILES = "C[C@@H]1CCN(C(=O)CC#N)C[C@@H]1n1cnc2cnc3[nH]ccc3c21"
TRACED_LINE = f"{TRACED_SMILES},0.5,0.3010299956639812,0,test"


def read_csv(task):
    with open(os.path.join(_benchmark_folder(), f"{task}.csv"), newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def small():
    if importlib.util.find_spec("MoleculeACE") is None or importlib.util.find_spec("rdkit") is None:
        pytest.skip("needs MoleculeACE and skmtl[chem]")
    return load_moleculeace(targets=SMALL)


@needs_chem
def test_small_subset_shapes_and_types(small):
    assert small.data.shape == (N_SMALL, 2048) and small.data.dtype == np.uint8
    assert set(np.unique(small.data)) == {0, 1}
    assert small.target.shape == (N_SMALL, 3) and small.target.dtype == np.float64
    assert small.is_test.shape == small.is_cliff.shape == (N_SMALL, 3)
    assert small.is_test.dtype == small.is_cliff.dtype == bool
    assert list(small.task_names) == SMALL
    assert small.feature_names == [f"morgan_{i}" for i in range(2048)]
    assert (small.task_type, small.format) == ("regression", "wide")
    measured = ~np.isnan(small.target)
    assert measured.sum(axis=0).tolist() == SMALL_SIZES  # one label per CSV row
    assert measured.any(axis=1).all()  # every row is measured on a chosen target
    assert (measured[:, 0] & measured[:, 1]).sum() == 544
    assert not (measured[:, 2] & measured[:, :2].any(axis=1)).any()
    # test and cliff flags only where measured; the split is 80 / 20 per target
    assert not (small.is_test & ~measured).any() and not (small.is_cliff & ~measured).any()
    assert_allclose(small.is_test.sum(axis=0) / measured.sum(axis=0), 0.2, atol=0.01)
    # rows are the sorted, distinct canonical SMILES
    assert small.smiles.shape == (N_SMALL,)
    assert list(small.smiles) == sorted(set(small.smiles))
    assert np.nanmin(small.target) > 2 and np.nanmax(small.target) < 12
    assert "van Tilborg" in small.DESCR and "MIT" in small.DESCR and "pKi" in small.DESCR


@needs_chem
def test_one_value_traced_by_hand(small):
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    with open(os.path.join(_benchmark_folder(), "CHEMBL2835_Ki.csv")) as handle:
        assert handle.read().splitlines()[2] == TRACED_LINE
    mol = Chem.MolFromSmiles(TRACED_SMILES)
    (row,) = np.flatnonzero(small.smiles == Chem.MolToSmiles(mol))
    # pKi = -log10(Ki in mol/L) = 9 - log10(Ki in nM)
    assert small.target[row, 0] == pytest.approx(9 - math.log10(0.5))
    assert small.target[row, 1] == pytest.approx(9 - math.log10(0.3))
    assert np.isnan(small.target[row, 2])
    assert small.is_test[row].tolist() == [True, False, False]
    assert small.is_cliff[row].tolist() == [False, False, False]
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    assert_array_equal(small.data[row], generator.GetFingerprintAsNumPy(mol))


@needs_chem
def test_every_row_of_a_file_matches_rdkit_and_its_csv_line():
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    bunch = load_moleculeace(targets=["CHEMBL2835_Ki"], radius=1, n_bits=64)
    assert bunch.data.shape == (615, 64)
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=1, fpSize=64)
    lines = read_csv("CHEMBL2835_Ki")
    rows = np.searchsorted(bunch.smiles, [Chem.CanonSmiles(line["smiles"]) for line in lines])
    assert sorted(rows) == list(range(615))
    expected = np.array([generator.GetFingerprintAsNumPy(Chem.MolFromSmiles(line["smiles"]))
                         for line in lines])
    assert_array_equal(bunch.data[rows], expected)
    exp_mean = np.array([float(line["exp_mean [nM]"]) for line in lines])
    assert_allclose(bunch.target[rows, 0], 9 - np.log10(exp_mean), rtol=0, atol=1e-12)
    assert_array_equal(bunch.is_test[rows, 0], [line["split"] == "test" for line in lines])
    assert_array_equal(bunch.is_cliff[rows, 0], [line["cliff_mol"] == "1" for line in lines])


# --- choosing targets --------------------------------------------------------------------


@needs_chem
def test_targets_by_index_and_in_the_order_given(small):
    indices = [_TASKS.index(name) for name in reversed(SMALL)]
    reordered = load_moleculeace(targets=np.array(indices))
    assert list(reordered.task_names) == SMALL[::-1]
    assert_array_equal(reordered.smiles, small.smiles)
    assert_array_equal(reordered.data, small.data)
    assert_array_equal(reordered.target, small.target[:, ::-1])
    assert_array_equal(reordered.is_test, small.is_test[:, ::-1])


@needs_chem
def test_one_target_as_a_string_keeps_only_its_molecules(small):
    one = load_moleculeace(targets="CHEMBL4616_EC50")
    assert one.target.shape == (682, 1) and not np.isnan(one.target).any()
    rows = np.searchsorted(small.smiles, one.smiles)
    assert_array_equal(small.smiles[rows], one.smiles)
    assert_array_equal(small.target[rows, 2], one.target[:, 0])
    assert_array_equal(small.data[rows], one.data)


@pytest.mark.parametrize(
    "targets, message",
    [
        (["CHEMBL204"], r"Unknown MoleculeACE target 'CHEMBL204'.*CHEMBL204_Ki, CHEMBL214_Ki"),
        ("chembl204_ki", "Unknown MoleculeACE target 'chembl204_ki'"),
        ([30], "index 30 is out of range.*0 to 29"),
        ([-1], "index -1 is out of range"),
        ([1.0], "Unknown MoleculeACE target 1.0"),
        (["CHEMBL204_Ki", 0], r"more than once"),
        ([], "targets is empty"),
    ],
)
def test_bad_targets_raise_and_list_the_valid_ones(targets, message):
    # checked before any data is read, so no MoleculeACE needed
    with pytest.raises(ValueError, match=message):
        load_moleculeace(targets=targets)


@pytest.mark.parametrize("params", [dict(radius=-1), dict(n_bits=0), dict(as_frame="yes"),
                                    dict(active_threshold=np.nan), dict(active_threshold="7")])
def test_bad_parameters_raise(params):
    with pytest.raises(ValueError):
        load_moleculeace(targets="CHEMBL4616_EC50", **params)


# --- output forms and the cache ----------------------------------------------------------


@needs_chem
def test_as_frame_names_columns_by_task(small):
    pd = pytest.importorskip("pandas")
    framed = load_moleculeace(targets=SMALL, as_frame=True)
    assert isinstance(framed.data, pd.DataFrame) and isinstance(framed.target, pd.DataFrame)
    assert list(framed.target.columns) == SMALL
    assert list(framed.is_test.columns) == SMALL
    assert list(framed.data.columns) == small.feature_names
    assert (framed.data.dtypes == np.uint8).all()
    assert_array_equal(framed.data.to_numpy(), small.data)
    assert_array_equal(framed.target.to_numpy(), small.target)
    assert_array_equal(framed.is_cliff.to_numpy(), small.is_cliff)
    assert_array_equal(framed.smiles.to_numpy(), small.smiles)
    assert list(framed.frame.columns) == ["smiles", *small.feature_names, *SMALL]
    assert framed.frame.shape == (N_SMALL, 1 + 2048 + 3)


@needs_chem
def test_return_X_y_and_load_dataset(small):
    X, Y = load_moleculeace(targets=SMALL, return_X_y=True)
    assert_array_equal(X, small.data)
    assert_array_equal(Y, small.target)
    bunch = load_dataset("moleculeace", targets=SMALL)
    assert_array_equal(bunch.target, small.target)


@needs_chem
def test_cached_result_cannot_be_changed_through_a_returned_array(small):
    first = load_moleculeace(targets=SMALL)
    assert first.data is not small.data
    first.data[:] = 7
    first.target[:] = 0.0
    first.smiles[0] = "C"
    again = load_moleculeace(targets=SMALL)
    assert_array_equal(again.data, small.data)
    assert_array_equal(again.target, small.target)
    assert again.smiles[0] == small.smiles[0] != "C"


# --- missing packages and imports ---------------------------------------------------------


def test_missing_moleculeace_names_the_extra_and_the_no_deps_command(monkeypatch):
    find_spec = importlib.util.find_spec

    def not_installed(name, *args):
        return None if name == "MoleculeACE" else find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", not_installed)
    with pytest.raises(ImportError) as info:
        load_moleculeace(targets="CHEMBL4616_EC50")
    message = str(info.value)
    assert "'MoleculeACE'" in message
    assert "pip install 'skmtl[chem]'" in message
    assert "pip install --no-deps MoleculeACE==3.0.0" in message


@needs_chem
def test_missing_rdkit_names_the_extra_even_when_cached(small, monkeypatch):
    monkeypatch.setitem(sys.modules, "rdkit", None)
    with pytest.raises(ImportError, match=r"'rdkit'.*skmtl\[chem\].*--no-deps MoleculeACE"):
        load_moleculeace(targets=SMALL)


@needs_chem
def test_loading_imports_neither_moleculeace_nor_torch_nor_tensorflow():
    code = (
        "import sys; from skmtl.datasets import load_moleculeace; "
        "load_moleculeace(targets='CHEMBL4616_EC50'); "
        "print(sorted(m for m in ('MoleculeACE', 'torch', 'tensorflow', 'torch_geometric', "
        "'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
    assert out.stderr == ""  # no deprecation warning from rdkit, no parser chatter


# --- all 30 targets ----------------------------------------------------------------------


@needs_chem
@pytest.mark.slow
def test_all_targets_match_the_files_and_the_listing():
    bunch = load_moleculeace()
    (row,) = [r for r in list_datasets() if r["name"] == "moleculeace"]
    assert bunch.data.shape == (row["n_samples"], row["n_features"]) == (35633, 2048)
    assert bunch.target.shape == (35633, row["n_tasks"]) == (35633, 30)
    assert list(bunch.task_names) == list(_TASKS)
    assert sorted(_TASKS) == sorted(f[:-4] for f in os.listdir(_benchmark_folder())
                                    if f.endswith(".csv"))
    measured = ~np.isnan(bunch.target)
    sizes = [len(read_csv(task)) for task in _TASKS]
    assert measured.sum(axis=0).tolist() == sizes and sum(sizes) == 48714
    assert measured.any(axis=1).all()
    assert np.isnan(bunch.target).mean() == pytest.approx(1 - 48714 / (35633 * 30))  # 95.4 %
    assert measured.sum(axis=1).max() == 9
    assert DATASETS["moleculeace"] is load_moleculeace


@needs_chem
def test_active_threshold_turns_potency_into_active_inactive_labels(small):
    active = load_moleculeace(targets=SMALL, active_threshold=7.0)
    assert active.task_type == "classification" and small.task_type == "regression"
    measured = ~np.isnan(small.target)
    np.testing.assert_array_equal(np.isnan(active.target), ~measured)
    np.testing.assert_array_equal(active.target[measured], small.target[measured] >= 7.0)
    # the traced molecule: Ki 0.5 nM on CHEMBL2835 is pK 9.3, active at 100 nM, not at 0.1 nM
    row = int(np.flatnonzero(small.smiles == TRACED_SMILES)[0])
    column = list(small.task_names).index("CHEMBL2835_Ki")
    assert active.target[row, column] == 1.0
    assert load_moleculeace(targets=SMALL, active_threshold=10.0).target[row, column] == 0.0
