"""Discovery of skmtl's public estimators (the table the common tests run over)."""

import importlib
import importlib.util
import inspect
import pkgutil

from sklearn.base import BaseEstimator

__all__ = ["all_estimators"]

# Subpackages whose import needs an optional extra; skipped when it is not installed.
_OPTIONAL = {"skmtl.deep": "torch", "skmtl.plotting": "matplotlib"}


def all_estimators():
    """Every public estimator class of skmtl.

    Walks the skmtl package (skipping private modules, tests and subpackages whose optional
    dependency is missing) and collects the public :class:`~sklearn.base.BaseEstimator`
    subclasses defined in it that have ``fit``. Parts configured through ``get_params`` but
    never fitted on data themselves (the loss weightings of :mod:`skmtl.deep.weighting`, like
    scikit-learn's kernels) are not estimators of this table.

    Returns
    -------
    estimators : list of (name, class) tuples
        Sorted by name.

    Examples
    --------
    >>> from skmtl.utils.discovery import all_estimators
    >>> names = [name for name, _ in all_estimators()]
    >>> "IndependentTasks" in names and "PooledTasks" in names
    True
    """
    import skmtl

    found = {}
    for info in pkgutil.walk_packages(skmtl.__path__, prefix="skmtl."):
        parts = info.name.split(".")
        if any(part.startswith("_") for part in parts[1:]) or "tests" in parts:
            continue
        root = ".".join(parts[:2])
        if root in _OPTIONAL and importlib.util.find_spec(_OPTIONAL[root]) is None:
            continue
        module = importlib.import_module(info.name)
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, BaseEstimator)
                and cls.__module__.startswith("skmtl.")
                and not cls_name.startswith("_")
                and not inspect.isabstract(cls)
                and callable(getattr(cls, "fit", None))
            ):
                found[cls_name] = cls
    return sorted(found.items())
