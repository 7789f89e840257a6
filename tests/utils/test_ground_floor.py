"""The import layers: ``skmtl.utils`` is the ground floor, shared code imports no estimator.

Read from the source with :mod:`ast` (nothing is imported), so a forbidden import is found
wherever it is written: at module level, inside a function, or under ``if TYPE_CHECKING``.
Dynamic imports (``importlib.import_module`` of a computed name, as in
:func:`skmtl.utils.discovery.all_estimators`) are not seen, by design.
"""

import ast
from pathlib import Path

import pytest

import skmtl

PACKAGE = Path(skmtl.__file__).parent

# What the ground floor must not import: every layer built on it.
ABOVE_UTILS = ("skmtl.linear", "skmtl.deep", "skmtl.baselines", "skmtl._compare", "skmtl.cli",
               "skmtl.model_selection")
# The estimator modules of the linear family (shared code must not depend on one of them).
LINEAR_ESTIMATORS = ("skmtl.linear._block_sparse", "skmtl.linear._mean_clustered")


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path):
    """Every module an ``import`` statement of the file names, relative imports resolved.

    ``from a import b`` gives both ``a`` and ``a.b`` (``b`` may be a submodule).
    """
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _violations(paths, forbidden):
    """``(file, imported module)`` pairs where the module is, or is inside, a forbidden one."""
    return sorted(
        (str(path.relative_to(PACKAGE.parent)), name)
        for path in paths
        for name in imported_modules(path)
        if any(name == f or name.startswith(f + ".") or name.startswith(f + "_")
               for f in forbidden)
    )


def test_the_import_reader_sees_every_form_of_import(tmp_path, monkeypatch):
    fake = tmp_path / "skmtl" / "utils"
    fake.mkdir(parents=True)
    source = fake / "x.py"
    source.write_text(
        "import skmtl.linear\n"
        "from ..deep import MultiTaskRegressor\n"
        "from .. import baselines\n"
        "def f():\n"
        "    from skmtl.model_selection._transfer import transfer_report\n"
        "from skmtl.linear._mean_clustered_cv import MeanClusteredRegressorCV\n"
    )
    monkeypatch.setattr(f"{__name__}.PACKAGE", tmp_path / "skmtl")
    names = imported_modules(source)
    assert {"skmtl.linear", "skmtl.deep", "skmtl.baselines",
            "skmtl.model_selection._transfer"} <= names
    assert {name for _, name in _violations([source], ABOVE_UTILS)} == names - {"skmtl"}
    # the *_cv sibling of an estimator module counts as that module
    assert [name for _, name in _violations([source], LINEAR_ESTIMATORS)] == [
        "skmtl.linear._mean_clustered_cv",
        "skmtl.linear._mean_clustered_cv.MeanClusteredRegressorCV"]


def test_utils_imports_no_layer_above_it():
    paths = sorted((PACKAGE / "utils").rglob("*.py"))
    assert any(p.name == "estimator_checks.py" for p in paths)
    assert any(p.name == "discovery.py" for p in paths)
    assert _violations(paths, ABOVE_UTILS) == []


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        # the data contract: validation of every estimator's input
        ("utils/validation.py", (*ABOVE_UTILS, "skmtl.metrics", "skmtl.plotting")),
        # cross-validation code shared by the linear *CV estimators
        ("linear/_cv.py", LINEAR_ESTIMATORS),
    ],
)
def test_shared_code_imports_no_estimator_module(module, forbidden):
    assert _violations([PACKAGE / module], forbidden) == []
