"""Loader of the MoleculeACE bioactivity data: 30 ChEMBL targets, molecules x targets.

The CSV files ship inside the ``MoleculeACE`` package, which is located with
:func:`importlib.util.find_spec` and never imported (its ``__init__`` imports torch,
torch_geometric, transformers and tensorflow). The fingerprints are computed with ``rdkit``,
installed by the ``chem`` extra. MoleculeACE itself is installed without its dependencies:
``pip install --no-deps MoleculeACE==3.0.0``.
"""

import csv
import functools
import importlib.util
import os
import textwrap
from numbers import Integral, Real

import numpy as np
from sklearn.utils import Bunch

from skmtl.utils._optional import import_optional
from skmtl.utils._sklearn_compat import Interval, validate_params

__all__ = ["load_moleculeace"]

#: The 30 data sets of MoleculeACE 3.0.0, ``CHEMBL<target id>_<Ki or EC50>`` (the file stems),
#: in the order of the ChEMBL target id. CHEMBL237 (the kappa opioid receptor) has two.
_TASKS = (
    "CHEMBL204_Ki", "CHEMBL214_Ki", "CHEMBL218_EC50", "CHEMBL219_Ki", "CHEMBL228_Ki",
    "CHEMBL231_Ki", "CHEMBL233_Ki", "CHEMBL234_Ki", "CHEMBL235_EC50", "CHEMBL236_Ki",
    "CHEMBL237_EC50", "CHEMBL237_Ki", "CHEMBL238_Ki", "CHEMBL239_EC50", "CHEMBL244_Ki",
    "CHEMBL262_Ki", "CHEMBL264_Ki", "CHEMBL287_Ki", "CHEMBL1862_Ki", "CHEMBL1871_Ki",
    "CHEMBL2034_Ki", "CHEMBL2047_EC50", "CHEMBL2147_Ki", "CHEMBL2835_Ki", "CHEMBL2971_Ki",
    "CHEMBL3979_EC50", "CHEMBL4005_Ki", "CHEMBL4203_Ki", "CHEMBL4616_EC50", "CHEMBL4792_Ki",
)

_COLUMNS = ["smiles", "exp_mean [nM]", "y", "cliff_mol", "split"]

_INSTALL = (
    "Install rdkit with the skmtl extra and MoleculeACE without its dependencies (they would "
    "put an old rdkit build over rdkit): pip install 'skmtl[chem]' && "
    "pip install --no-deps MoleculeACE==3.0.0"
)


def _missing(package):
    return ImportError(
        f"The optional package {package!r} is needed for the MoleculeACE data set but is not "
        f"installed. {_INSTALL}"
    )


def _benchmark_folder():
    """The folder of MoleculeACE's CSV files, found without importing MoleculeACE."""
    spec = importlib.util.find_spec("MoleculeACE")
    if spec is None or not spec.submodule_search_locations:
        raise _missing("MoleculeACE")
    folder = os.path.join(list(spec.submodule_search_locations)[0], "Data", "benchmark_data")
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"The installed MoleculeACE package has no {folder}; MoleculeACE 3.0.0 ships it. "
            f"{_INSTALL}"
        )
    return folder


def _rdkit():
    """rdkit's ``Chem`` and ``rdFingerprintGenerator`` modules."""
    try:
        from rdkit import Chem
        from rdkit.Chem import rdFingerprintGenerator
    except ImportError as exc:
        raise _missing("rdkit") from exc
    return Chem, rdFingerprintGenerator


def _task_names(targets):
    """The chosen task names, in the order given; a ValueError naming the valid ones."""
    if targets is None:
        return _TASKS
    if isinstance(targets, str):
        targets = [targets]
    names = []
    for target in targets:
        if isinstance(target, Integral) and not isinstance(target, bool):
            if not 0 <= target < len(_TASKS):
                raise ValueError(
                    f"Target index {target} is out of range; MoleculeACE has {len(_TASKS)} "
                    f"targets, indices 0 to {len(_TASKS) - 1}."
                )
            names.append(_TASKS[target])
        elif isinstance(target, str) and target in _TASKS:
            names.append(target)
        else:
            raise ValueError(
                f"Unknown MoleculeACE target {target!r}; give names or indices (0 to "
                f"{len(_TASKS) - 1}) of: {', '.join(_TASKS)}."
            )
    if not names:
        raise ValueError("targets is empty; give at least one MoleculeACE target or None.")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"targets lists {repeated} more than once.")
    return tuple(names)


@functools.lru_cache(maxsize=len(_TASKS))
def _read_task(path):
    """One CSV file as (raw SMILES list, pK values, is_test, is_cliff); cached, do not modify."""
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header != _COLUMNS:
            raise ValueError(f"{path} has the columns {header}; expected {_COLUMNS}.")
        rows = list(reader)
    smiles = [row[0] for row in rows]
    # y = -log10(exp_mean in nM) = pK - 9, with pK = -log10(value in mol/L)
    pk = np.array([float(row[2]) for row in rows], dtype=np.float64) + 9.0
    split = np.array([row[4] for row in rows])
    cliff = np.array([row[3] for row in rows])
    if not np.isin(split, ["train", "test"]).all() or not np.isin(cliff, ["0", "1"]).all():
        raise ValueError(f"{path}: split must be train / test and cliff_mol 0 / 1.")
    if not np.isfinite(pk).all():
        raise ValueError(f"{path} has non-finite values in column y.")
    return smiles, pk, split == "test", cliff == "1"


@functools.lru_cache(maxsize=4)
def _load(folder, tasks, radius, n_bits):
    """The wide arrays for ``tasks``; cached in-process, callers copy before handing out."""
    Chem, rdFingerprintGenerator = _rdkit()
    paths = [os.path.join(folder, f"{task}.csv") for task in tasks]
    absent = [path for path in paths if not os.path.isfile(path)]
    if absent:
        raise FileNotFoundError(f"The installed MoleculeACE package lacks {absent}. {_INSTALL}")
    per_task = [_read_task(path) for path in paths]

    # Parse each distinct SMILES once: canonical SMILES and fingerprint from the same molecule.
    # A Morgan fingerprint does not depend on the atom order, so both are those of the
    # canonical molecule.
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    raw = sorted({smi for smiles, *_ in per_task for smi in smiles})
    canonical = np.empty(len(raw), dtype=object)
    fingerprints = np.empty((len(raw), n_bits), dtype=np.uint8)
    for i, smi in enumerate(raw):
        mol = Chem.MolFromSmiles(smi)
        if mol is None:
            raise ValueError(f"rdkit cannot parse the MoleculeACE SMILES {smi!r}.")
        canonical[i] = Chem.MolToSmiles(mol)
        fingerprints[i] = generator.GetFingerprintAsNumPy(mol)

    molecules, row_of_raw = np.unique(canonical, return_inverse=True)
    data = np.empty((len(molecules), n_bits), dtype=np.uint8)
    data[row_of_raw] = fingerprints  # raw spellings of one molecule share a fingerprint
    raw_index = {smi: i for i, smi in enumerate(raw)}

    shape = (len(molecules), len(tasks))
    total, count = np.zeros(shape), np.zeros(shape, dtype=np.int64)
    is_test, is_cliff = np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool)
    for j, (smiles, pk, test, cliff) in enumerate(per_task):
        rows = row_of_raw[[raw_index[smi] for smi in smiles]]
        # a molecule listed twice for one target (two spellings): mean value, test or cliff if
        # any of its rows is
        np.add.at(total[:, j], rows, pk)
        np.add.at(count[:, j], rows, 1)
        np.logical_or.at(is_test[:, j], rows, test)
        np.logical_or.at(is_cliff[:, j], rows, cliff)
    target = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    for array in (molecules, data, target, is_test, is_cliff):
        array.flags.writeable = False
    return molecules, data, target, is_test, is_cliff


_DESCR = """\
MoleculeACE bioactivity data: {n_molecules} molecules x {n_tasks} ChEMBL targets, as wide-format
multi-task regression with missing labels ({missing:.1%} of the molecule x target cells have no
value).

Each task is one MoleculeACE data set, named after its CSV file: ``CHEMBL<target id>_Ki``
(inhibition constant) or ``CHEMBL<target id>_EC50`` (half-maximal effective concentration);
CHEMBL237 has both. Tasks:
{tasks}.

Rows are the distinct molecules, by rdkit canonical SMILES (``smiles``), sorted. Features:
Morgan (ECFP-like) fingerprint bits, radius {radius}, {n_bits} bits, no chirality, from
rdkit.Chem.rdFingerprintGenerator.GetMorganGenerator, as uint8 0 / 1.

Target: pKi or pEC50 = -log10(Ki or EC50 in mol/L), float64, NaN where the molecule was not
measured on the target. MoleculeACE's own column ``y`` is -log10(value in nM) = pK - 9: the
target is ``y + 9``. MoleculeACE already averaged repeated measurements (``exp_mean [nM]``); a
molecule listed twice for one target would get the mean pK (none is, in MoleculeACE 3.0.0).
Values range from about 2.6 to 11 (about 2.5 mM to 10 pM).

``is_test``: the MoleculeACE test split of each target (20 % of its molecules, drawn per
cluster of similar molecules and stratified on activity cliffs), so results can be compared
with the benchmark; False where the molecule is in the training split or not measured.
``is_cliff``: MoleculeACE's ``cliff_mol`` flag (the molecule has a structurally similar
partner, similarity >= 0.9, whose potency differs at least tenfold on that target).
The split is per target, not per molecule: a molecule measured on two targets can be in the
training split of one and the test split of the other (3,545 of the 9,507 molecules measured on
several targets are), so for multi-task evaluation split the rows instead.

Source: the MoleculeACE 3.0.0 Python package (MoleculeACE/Data/benchmark_data/*.csv; MIT
licence, Copyright 2022 Derek van Tilborg), read without importing it; no network access. The
data were curated from ChEMBL, whose data are distributed by EMBL-EBI under CC BY-SA 3.0.

Reference: D. van Tilborg, A. Alenicheva and F. Grisoni (2022), Exposing the limitations of
molecular machine learning with activity cliffs, Journal of Chemical Information and Modeling
62(23): 5938-5951, doi:10.1021/acs.jcim.2c01073.
"""


@validate_params(
    {
        "targets": [None, str, "array-like"],
        "radius": [Interval(Integral, 0, None, closed="left")],
        "n_bits": [Interval(Integral, 1, None, closed="left")],
        "active_threshold": [None, Interval(Real, None, None, closed="neither")],
        "as_frame": ["boolean"],
        "return_X_y": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def load_moleculeace(*, targets=None, radius=2, n_bits=2048, active_threshold=None,
                     as_frame=False, return_X_y=False):
    """Load the MoleculeACE bioactivities: 30 ChEMBL targets, 35,633 molecules (wide regression).

    The drug-discovery case of multi-task learning: each task is the potency of molecules on
    one protein target, and each molecule was measured on one target or a few, so 95.4 % of
    the target matrix is missing (NaN). The rows are the distinct molecules (rdkit canonical
    SMILES, sorted), the features their Morgan fingerprint bits (ECFP4 with the defaults),
    the target the pKi or pEC50 on each of the 30 targets.

    The target is ``pK = -log10(K in mol/L)`` (pKi for the ``_Ki`` tasks, pEC50 for the
    ``_EC50`` ones): the column ``y`` of the MoleculeACE files, which is ``-log10(K in nM)``,
    plus 9. Higher is more potent; the values lie between about 2.6 and 11 (2.5 mM to 10 pM).

    The data ship as CSV files inside the ``MoleculeACE`` package, which is located but not
    imported (importing it would import torch and tensorflow); nothing is downloaded. Install
    ``pip install 'skmtl[chem]'`` (rdkit) and ``pip install --no-deps MoleculeACE==3.0.0``:
    MoleculeACE's declared dependencies would replace rdkit with an old build.

    Parsing and fingerprinting all 35,633 molecules takes about 15 s of CPU; the result is
    cached in the process for each ``(targets, radius, n_bits)``, so a second call costs only
    a copy.

    Parameters
    ----------
    targets : str, list of str or int, or None, default=None
        The targets to load, by name (``"CHEMBL204_Ki"``, see ``task_names``) or by index
        into the 30 names of ``load_moleculeace().task_names`` (ordered by ChEMBL target id),
        in the order of the columns wanted. None loads all 30. Only the molecules measured on
        at least one chosen target are rows.
    radius : int, default=2
        Radius of the Morgan fingerprint (2 gives ECFP4-like features).
    n_bits : int, default=2048
        Length of the fingerprint: the number of features.
    active_threshold : float or None, default=None
        None: the target is the potency pK (regression). A number: active / inactive
        classification, ``1.0`` where ``pK >= active_threshold`` and ``0.0`` below, NaN where
        not measured (``task_type`` is then ``"classification"``). ``7.0`` is 100 nM, the
        threshold of skmtl's real-data benchmark: 55 % of the measured pairs are active.
    as_frame : bool, default=False
        If True, ``data``, ``target``, ``is_test`` and ``is_cliff`` are pandas DataFrames
        (columns named by feature or task), ``smiles`` is a Series, and the Bunch also holds
        ``frame``: the SMILES, features and targets in one DataFrame. Needs pandas
        (``pip install 'skmtl[datasets]'``).
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    data : Bunch
        Dictionary-like object with the attributes

        data : ndarray of shape (n_molecules, n_bits) or DataFrame
            The fingerprint bits, uint8 in {0, 1} (1 byte each: 73 MB for all 30 targets,
            where float64 would take 584 MB). Estimators convert them as they need.
        target : ndarray of shape (n_molecules, n_tasks) or DataFrame
            pKi or pEC50, float64; NaN where the molecule was not measured on the target.
            With ``active_threshold``, 1.0 (active), 0.0 (inactive) or NaN.
        smiles : ndarray of shape (n_molecules,) of str, or Series
            The rdkit canonical SMILES of each row.
        is_test : ndarray of shape (n_molecules, n_tasks) of bool, or DataFrame
            True where the molecule is in MoleculeACE's test split of the target (80 / 20
            per target); False in its training split and where not measured.
        is_cliff : ndarray of shape (n_molecules, n_tasks) of bool, or DataFrame
            MoleculeACE's activity-cliff flag per molecule and target; False where not
            measured.
        feature_names : list of str
            ``"morgan_0"`` .. ``"morgan_{n_bits - 1}"``.
        task_names : ndarray of str
            The chosen target names, e.g. ``"CHEMBL204_Ki"``.
        frame : DataFrame
            Only with ``as_frame=True``: ``smiles``, the features and the targets.
        DESCR : str
            Description of the data set, with the source, licence and citation.
        task_type : str
            ``"regression"``, or ``"classification"`` with ``active_threshold``.
        format : str
            ``"wide"``: one column of ``target`` per task, NaN for a missing label.

    (data, target) : tuple
        With ``return_X_y=True``.

    Raises
    ------
    ImportError
        If ``MoleculeACE`` or ``rdkit`` is not installed; the message gives both commands.
    ValueError
        If ``targets`` names an unknown target (the message lists the valid ones), an index
        out of range, or a target twice.

    Notes
    -----
    MoleculeACE splits each target on its own, so ``is_test`` is not a split of the rows:
    3,545 of the 9,507 molecules measured on several targets are in the training split of one
    target and the test split of another. Use it to compare one-target results with the
    benchmark; to evaluate a multi-task model without showing it a test molecule's
    fingerprint, split the rows (e.g. :class:`~skmtl.model_selection.MultiTaskKFold`).

    Data: MoleculeACE 3.0.0 (MIT licence), curated from ChEMBL (CC BY-SA 3.0). D. van Tilborg,
    A. Alenicheva and F. Grisoni (2022), Exposing the limitations of molecular machine learning
    with activity cliffs, J. Chem. Inf. Model. 62(23): 5938-5951.

    Examples
    --------
    Two small targets load in about a second; molecules measured on only one of them have a
    NaN for the other:

    >>> import numpy as np
    >>> from skmtl.datasets import load_moleculeace
    >>> mace = load_moleculeace(targets=["CHEMBL2835_Ki", "CHEMBL2971_Ki"])
    >>> mace.data.shape, mace.data.dtype, mace.target.shape
    ((1047, 2048), dtype('uint8'), (1047, 2))
    >>> measured = ~np.isnan(mace.target)
    >>> measured.sum(axis=0), (measured.all(axis=1)).sum()  # per target; on both
    (array([615, 976]), np.int64(544))
    >>> active = load_moleculeace(targets=["CHEMBL2835_Ki"], active_threshold=7.0)
    >>> active.task_type, np.unique(active.target).tolist()
    ('classification', [0.0, 1.0])
    >>> X, Y = load_moleculeace(return_X_y=True)  # all 30 targets, about 15 s  # doctest: +SKIP
    >>> X.shape, Y.shape  # doctest: +SKIP
    ((35633, 2048), (35633, 30))
    """
    tasks = _task_names(targets)
    folder = _benchmark_folder()
    _rdkit()  # checked on every call: the cache of _load would hide a missing package
    molecules, data, target, is_test, is_cliff = _load(folder, tasks, int(radius), int(n_bits))
    data, target = data.copy(), target.copy()
    if active_threshold is not None:
        measured = ~np.isnan(target)
        target[measured] = (target[measured] >= active_threshold).astype(np.float64)
    smiles, is_test, is_cliff = molecules.copy(), is_test.copy(), is_cliff.copy()
    feature_names = [f"morgan_{i}" for i in range(n_bits)]
    task_names = np.array(tasks)
    if as_frame:
        pd = import_optional("pandas", "datasets", "as_frame=True")
        data = pd.DataFrame(data, columns=feature_names)
        target = pd.DataFrame(target, columns=list(tasks))
        is_test = pd.DataFrame(is_test, columns=list(tasks))
        is_cliff = pd.DataFrame(is_cliff, columns=list(tasks))
        smiles = pd.Series(smiles, name="smiles")
    if return_X_y:
        return data, target
    descr = _DESCR.format(
        n_molecules=f"{len(molecules):,}",
        n_tasks=len(tasks),
        missing=float(np.isnan(np.asarray(target)).mean()),
        tasks=textwrap.fill(", ".join(tasks), 92),
        radius=radius,
        n_bits=n_bits,
    )
    bunch = Bunch(
        data=data,
        target=target,
        smiles=smiles,
        is_test=is_test,
        is_cliff=is_cliff,
        feature_names=feature_names,
        task_names=task_names,
        DESCR=descr,
        task_type="regression" if active_threshold is None else "classification",
        format="wide",
    )
    if as_frame:
        bunch.frame = pd.concat([smiles, data, target], axis=1)
    return bunch
