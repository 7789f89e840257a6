"""The scripts of benchmarks/ imported as modules, for the tests of their functions.

``tests/`` is on ``sys.path`` (rootdir conftest), so a test module imports it as
``_benchmarks``.
"""

import contextlib
import importlib.util
import os
import sys

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "benchmarks")


@contextlib.contextmanager
def benchmark_module(name):
    """``benchmarks/<name>.py`` as the module ``name``, registered in ``sys.modules`` while
    in use (dataclasses look their module up there)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(BENCHMARKS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(name, None)
