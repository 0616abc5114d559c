"""The documentation builds without a single warning, and documents the public API.

Runs the same command as CI (``python -m sphinx -W --keep-going -b html docs ...``) in a
subprocess, into a temporary directory. ``nitpicky = True`` in ``docs/conf.py`` makes every
broken cross-reference to a skanimal object a warning, hence a failure here.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("numpydoc")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    """Build the HTML docs once for this module; return the output directory."""
    out = tmp_path_factory.mktemp("docs-html")
    doctrees = tmp_path_factory.mktemp("docs-doctrees")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(doctrees), str(DOCS), str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert result.returncode == 0, (
        f"sphinx failed ({result.returncode}):\n{result.stderr[-6000:]}\n{result.stdout[-2000:]}")
    return out


def test_docs_build_without_warnings(html):
    assert (html / "index.html").is_file()
    for page in ("install", "quickstart", "scaling", "examples", "api/index",
                 "guide/grid_search", "guide/persistence", "guide/cli"):
        assert (html / f"{page}.html").is_file(), page


def test_api_pages_exist(html):
    generated = html / "api" / "generated"
    page = generated / "skanimal.BottleneckFeatures.html"
    assert page.is_file()
    text = page.read_text(encoding="utf-8")
    # numpydoc rendered the sections and autodoc the methods
    assert "Parameters" in text and "pooling" in text
    assert "skanimal.BottleneckFeatures.transform" in text

    import skanimal

    for name in skanimal.__all__:
        if name != "__version__":
            assert (generated / f"skanimal.{name}.html").is_file(), name
    for name in ("classification_metrics", "write_report", "plot_history", "plot_confusion_matrix",
                 "plot_misclassified"):
        assert (generated / f"skanimal.report.{name}.html").is_file(), name
    for name in ("cache_info", "clear_cache", "resolve_cache_dir"):
        assert (generated / f"skanimal.cache.{name}.html").is_file(), name
