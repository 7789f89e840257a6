"""Optional dependencies: imported when used, with an error that names the extra to install."""

import importlib
import importlib.util

__all__ = ["import_optional", "find_optional_package"]


def _missing(package, extra, purpose):
    what = f" for {purpose}" if purpose else ""
    return ImportError(
        f"The optional package {package!r} is needed{what} but is not installed. "
        f"Install it with: pip install 'skmtl[{extra}]'"
    )


def import_optional(package, extra, purpose=None):
    """Import an optional package, or raise an ImportError naming the skmtl extra.

    Parameters
    ----------
    package : str
        Importable module name, e.g. ``"torch"``.
    extra : str
        The skmtl extra that installs it, e.g. ``"deep"``.
    purpose : str, default=None
        What it is needed for, used in the error message.

    Returns
    -------
    module : module
        The imported module.

    Raises
    ------
    ImportError
        If the package is not installed; the message says ``pip install 'skmtl[extra]'``.
    """
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise _missing(package, extra, purpose) from exc


def find_optional_package(package, extra, purpose=None):
    """Locate an optional package's folder without importing it.

    Some packages are installed only for the data files they ship; importing them can be slow
    or pull heavy dependencies. This returns the folder of the package.

    Parameters
    ----------
    package : str
        Top-level package name.
    extra : str
        The skmtl extra that installs it.
    purpose : str, default=None
        What it is needed for, used in the error message.

    Returns
    -------
    path : str
        The package's folder.

    Raises
    ------
    ImportError
        If the package is not installed; the message says ``pip install 'skmtl[extra]'``.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise _missing(package, extra, purpose)
    return list(spec.submodule_search_locations)[0]
