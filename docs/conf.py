"""Sphinx configuration for the skmtl documentation.

Build offline with ``make docs`` (``sphinx-build -b html -W --keep-going docs docs/_build/html``):
nothing is fetched at build time (no intersphinx, no remote images, fonts or analytics), and
nothing at view time: MathJax is served from the build, and a page that would load a script or a
stylesheet from the network fails the build.
"""

import importlib.metadata
import os
import re
import shutil
import sys
from pathlib import Path

import matplotlib
from sphinx.util import logging

matplotlib.use("Agg")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import skmtl  # noqa: E402

logger = logging.getLogger(__name__)

# -- Project information ------------------------------------------------------------------------
project = "skmtl"
author = "The skmtl developers"
copyright = "The skmtl developers"
release = skmtl.__version__
version = ".".join(release.split(".")[:2])

# -- General configuration ----------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "sg_execution_times.rst"]
root_doc = "index"
default_role = "literal"

# autodoc / autosummary: one page per public object, under generated/.
autosummary_generate = True
autodoc_typehints = "none"

# numpydoc renders the docstrings; the class template lists the members itself.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks = set()

# A word ending in "_" is a hyperlink reference in reStructuredText, so a type such as
# "ndarray of shape (n_features_in_,)" breaks the build ("Unknown target name"). Docstrings
# should quote it (``(`n_features_in_`,)``, as scikit-learn does); until every one does, quote
# such names in the type line of a parameter / attribute entry here. Only unquoted names
# inside the "shape (...)" of a "name : type" line are touched.
_TYPE_LINE = re.compile(r"^(\s*\**\w+(?:, \**\w+)*\s+: .*\bshape\s*)(\(.*?\))(.*)$")
_TRAILING_UNDERSCORE = re.compile(r"(?<![`\w])([A-Za-z]\w*_)(?![`\w])")


def _quote_shape_names(app, what, name, obj, options, lines):
    for i, line in enumerate(lines):
        match = _TYPE_LINE.match(line)
        if match:
            head, shape, tail = match.groups()
            lines[i] = head + _TRAILING_UNDERSCORE.sub(r"`\1`", shape) + tail


def _skip_routing_plumbing(app, what, name, obj, skip, options):
    """Hide scikit-learn's generated metadata-routing methods (``set_fit_request``, ...).

    They are scikit-learn's, documented there, and their docstrings point into scikit-learn's
    own user guide and glossary. ``task_ids`` routing is explained in the data formats page.
    """
    if what == "class" and (
        name == "get_metadata_routing" or (name.startswith("set_") and name.endswith("_request"))
    ):
        return True
    return None


# -- MathJax, served from the build -------------------------------------------------------------
# sphinx.ext.mathjax loads MathJax from a CDN by default, so formulas stay raw TeX offline. The
# `docs` extra installs django-static-mathjax, a copy of MathJax 3's files (it needs no Django);
# the parts that tex-mml-chtml.js loads (fonts, TeX extensions, menu, accessibility) are copied
# to _static/mathjax/ of the HTML build. After the build, every page is checked: one that loads a
# script or a stylesheet from another host fails the build (tests/test_docs.py checks the built
# pages too).
_MATHJAX_FILES = ("tex-mml-chtml.js", "a11y", "adaptors", "input", "output", "sre", "ui")
mathjax_path = "mathjax/tex-mml-chtml.js"  # relative to _static/


def _mathjax_source():
    try:
        dist = importlib.metadata.distribution("django-static-mathjax")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    source = dist and Path(dist.locate_file("mathjax/static/mathjax/es5"))
    if source is None or not (source / "tex-mml-chtml.js").is_file():
        raise ImportError(
            "building the docs needs MathJax's files from the django-static-mathjax package: "
            "install the docs extra, pip install 'skmtl[docs]' (make install does)"
        )
    return source


def _copy_mathjax(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    source = _mathjax_source()
    target = Path(app.outdir) / "_static" / "mathjax"
    for name in _MATHJAX_FILES:
        if (source / name).is_dir():
            shutil.copytree(source / name, target / name, dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, target / name)


# a <script src=...> or <link href=...> (stylesheet, preload, icon, ...) outside the build
_REMOTE_ASSET = re.compile(
    r"<(?:script|link)\b[^>]*?\b(?:src|href)\s*=\s*[\"']?((?:https?:)?//[^\"'\s>]+)", re.IGNORECASE
)


def remote_assets(html_dir):
    """``{page: [url, ...]}`` of the pages under ``html_dir`` that load a script or a stylesheet
    (any ``<script src>`` or ``<link href>``) from another host: they would not work offline."""
    found = {}
    for page in sorted(Path(html_dir).rglob("*.html")):
        urls = _REMOTE_ASSET.findall(page.read_text(encoding="utf-8", errors="replace"))
        if urls:
            found[page.relative_to(html_dir).as_posix()] = sorted(set(urls))
    return found


def _check_offline(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    for page, urls in remote_assets(app.outdir).items():
        logger.error("%s loads %s from the network: the page would break offline",
                     page, ", ".join(urls))


def setup(app):
    # before numpydoc (priority 500) parses the sections
    app.connect("autodoc-process-docstring", _quote_shape_names, priority=100)
    app.connect("autodoc-skip-member", _skip_routing_plumbing)
    _mathjax_source()  # fail early, before a long build, when MathJax is missing
    app.connect("build-finished", _copy_mathjax)
    app.connect("build-finished", _check_offline)


# -- sphinx-gallery -----------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": "/plot_",
    "ignore_pattern": r"__init__\.py",
    "image_scrapers": ("matplotlib",),
    "backreferences_dir": None,
    "remove_config_comments": True,
    "download_all_examples": False,
    # the timing pages load jQuery / DataTables from a CDN: not written
    "write_computation_times": False,
    "show_signature": False,
    "binder": {},
    "jupyterlite": None,
    "abort_on_example_error": True,
    "plot_gallery": "True",
    "reference_url": {},
    "within_subsection_order": "FileNameSortKey",
}
# Examples run in this process, headless.
os.environ.setdefault("MPLBACKEND", "Agg")

# -- HTML output --------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skmtl {release}"
html_static_path = []
html_show_sourcelink = False
html_theme_options = {
    "icon_links": [],
    "external_links": [],
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_context = {"default_mode": "light"}
