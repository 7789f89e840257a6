"""Pages a user opens in a browser, rendered by headless Chromium (slow; skipped without it).

Debian's ``chromium-headless-shell`` (``apt-get install chromium-headless-shell``) or
``chromium`` is enough; nothing is fetched from the network: the pages must render offline.
"""

import shutil
import subprocess

import numpy as np
import pytest

from skmtl.cli import main
from skmtl.datasets import make_multitask_regression

pytestmark = pytest.mark.slow

_BROWSER = shutil.which("chromium-headless-shell") or shutil.which("chromium")


def screenshot(page, path, *, width=1400, height=1800, dump_dom=False, extra=()):
    """Render ``page`` (a file path) headless, offline; the PNG's pixels, or the DOM."""
    if _BROWSER is None:
        pytest.skip("no headless Chromium (apt-get install chromium-headless-shell)")
    action = ["--dump-dom"] if dump_dom else [f"--screenshot={path}"]
    done = subprocess.run(
        [_BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--virtual-time-budget=5000", f"--window-size={width},{height}", *extra, *action,
         f"file://{page}"], capture_output=True, text=True, timeout=120, check=True)
    if dump_dom:
        return done.stdout
    import matplotlib.image

    return matplotlib.image.imread(path)[..., :3]


def share_of_colour(pixels, rgb, tol=0.04):
    return float(np.mean(np.all(np.abs(pixels - np.asarray(rgb)) < tol, axis=-1)))


def test_report_html_renders_its_table_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    X, Y = make_multitask_regression(n_samples=60, n_features=3, n_tasks=4, n_informative=2,
                                     random_state=0)
    path = tmp_path / "data.csv"
    header = "a,b,c,t0,t1,t2,t3"
    np.savetxt(path, np.column_stack([X, Y]), delimiter=",", header=header, comments="")
    assert main(["compare", "--csv", str(path), "--targets", "t0,t1,t2,t3", "--models",
                 "pooled", "--cv", "2", "--out", str(tmp_path / "o"), "--quiet"]) == 0
    capsys.readouterr()
    pixels = screenshot(tmp_path / "o" / "report.html", tmp_path / "report.png")
    # the embedded plot is drawn: its bars are matplotlib's tab:blue (or tab:red where
    # negative transfer is flagged), absent from the page's text and table
    bars = share_of_colour(pixels, (0.122, 0.467, 0.706)) + share_of_colour(
        pixels, (0.839, 0.153, 0.157))
    assert bars > 0.002
    dom = screenshot(tmp_path / "o" / "report.html", None, dump_dom=True)
    assert "<table" in dom and "pooled" in dom and "data:image/png;base64," in dom


_HTML = __import__("pathlib").Path(__file__).resolve().parents[1] / "docs" / "_build" / "html"


@pytest.mark.skipif(not (_HTML / "index.html").is_file(), reason="run `make docs` first")
def test_docs_front_page_and_gallery_render_with_their_images(tmp_path):
    pytest.importorskip("matplotlib")
    front = screenshot(_HTML / "index.html", tmp_path / "front.png")
    assert np.mean(front.sum(axis=-1) < 1.5) > 0.005  # dark text drawn on the page
    dom = screenshot(_HTML / "index.html", None, dump_dom=True)
    assert "skmtl: multi-task learning for scikit-learn" in dom
    # the gallery's thumbnails (PNG files of the build) are drawn: against the same page
    # rendered with images turned off, many more coloured pixels
    page = _HTML / "auto_examples" / "index.html"

    def coloured(pixels):
        return np.mean(pixels.max(axis=-1) - pixels.min(axis=-1) > 0.3)

    with_images = coloured(screenshot(page, tmp_path / "gallery.png"))
    without = coloured(screenshot(page, tmp_path / "no_images.png",
                                  extra=["--blink-settings=imagesEnabled=false"]))
    assert with_images > 3 * without + 0.002, (with_images, without)
