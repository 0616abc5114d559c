"""Sphinx configuration of the skanimal documentation.

Build (warnings are errors, as in CI)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The API reference is generated from the numpydoc docstrings by autosummary into
``docs/api/generated/`` (git-ignored). No intersphinx: the build must work offline, so
references to other projects' objects are listed in ``nitpick_ignore_regex`` below and
rendered as plain code.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Document the checkout beside this file, whether or not (and wherever) it is installed.
sys.path.insert(0, str(ROOT))
# Importing skanimal imports TensorFlow: keep its C++ start-up chatter out of the build log.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import skanimal  # noqa: E402

# -- Project -------------------------------------------------------------------------------
project = "skanimal"
author = "skanimal developers"
copyright = "skanimal developers"  # noqa: A001 (Sphinx's name)
release = skanimal.__version__
version = ".".join(release.split(".")[:2])

# -- General -------------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "numpydoc",
]
templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"
language = "en"
pygments_style = "sphinx"

# -- autodoc / autosummary / numpydoc ------------------------------------------------------
autosummary_generate = True
autosummary_generate_overwrite = True
autodoc_typehints = "none"  # numpydoc "Parameters" sections carry the types
autodoc_member_order = "groupwise"
autodoc_inherit_docstrings = False  # never render a base class's (e.g. SciKeras') docstring
numpydoc_show_class_members = False  # the class template lists members instead
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False  # types such as "path-like" or "ndarray of shape (n, 3)"
numpydoc_attributes_as_param_list = True

# -- Cross-references ----------------------------------------------------------------------
# Broken references to skanimal's own objects fail the build. Objects of other projects
# cannot be resolved offline (no intersphinx inventories), so they are ignored by prefix.
nitpicky = True
_EXTERNAL = (
    "numpy", "np", "scipy", "sklearn", "scikeras", "keras", "tensorflow", "tf", "PIL",
    "matplotlib", "joblib", "pandas", "dask", "distributed", "platformdirs", "tqdm",
    # the standard library
    "os", "pathlib", "argparse", "collections", "concurrent", "typing", "threading",
    "hashlib", "json", "warnings", "numbers", "dataclasses", "tempfile", "io",
)
nitpick_ignore_regex = [
    (r"py:.*", rf"({'|'.join(_EXTERNAL)})(\..+)?"),
    # built-in types and names that appear in signatures and numpydoc sections
    (r"py:(class|obj|data)", r"(str|int|float|bool|bytes|dict|list|tuple|set|None|object"
                             r"|callable|Callable|Exception|ValueError|OSError|TypeError"
                             r"|UserWarning|ImportError|FileNotFoundError|PermissionError"
                             r"|KeyboardInterrupt|BrokenPipeError)"),
]

# -- HTML ----------------------------------------------------------------------------------
html_theme = "alabaster"
html_title = f"skanimal {release}"
html_static_path = []
html_theme_options = {
    "description": "Image classifiers by transfer learning, the scikit-learn way.",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "230px",
}
html_sidebars = {"**": ["about.html", "navigation.html", "relations.html", "searchbox.html"]}

# Dataclass fields referred to as :attr: in docstrings but not documented as attributes.
nitpick_ignore = [
    ("py:attr", "source"),
    ("py:attr", "seed"),
]


# -- Hooks ---------------------------------------------------------------------------------
def _skip_foreign_members(app, what, name, obj, skip, options):
    """Leave out members skanimal does not define itself (e.g. scikit-learn's generated
    ``set_fit_request``, SciKeras' inherited methods): their docstrings follow other
    projects' conventions and cross-reference their glossaries."""
    if skip:
        return None
    module = getattr(obj, "__module__", None)
    if module is None:
        module = getattr(getattr(obj, "fget", None), "__module__", None)
    if isinstance(module, str) and not module.startswith("skanimal"):
        return True
    return None


def _resolve_skanimal_reference(app, env, node, contnode):
    """Resolve a reference to a skanimal object written with its defining module.

    Docstrings name objects where they are defined (``skanimal.images.check_images``,
    ``AUGMENTATION_VERSION`` inside :mod:`skanimal.augmentation`), while the reference
    documents most of them where users import them (``skanimal.BottleneckFeatures``). Try the
    top-level name for ``skanimal.<module>.<name>``, and a unique documented skanimal object
    ending in ``.<name>`` for a short name. Anything else stays unresolved (and fails the
    build, since ``nitpicky = True``).
    """
    if node.get("refdomain") != "py":
        return None
    from sphinx.util.nodes import make_refnode

    target = node.get("reftarget", "")
    objects = env.get_domain("py").objects
    parts = target.split(".")
    if parts[0] == "skanimal" and len(parts) >= 3:
        candidates = [".".join(["skanimal", *parts[2:]])]
    elif parts[0] != "skanimal":
        suffix = "." + target
        candidates = sorted({name for name in objects
                             if name.startswith("skanimal.") and name.endswith(suffix)})
        if len(candidates) != 1:
            return None
    else:
        return None
    name = candidates[0]
    entry = objects.get(name)
    if entry is None:
        return None
    return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode,
                        name)


def setup(app):
    app.connect("autodoc-skip-member", _skip_foreign_members)
    app.connect("missing-reference", _resolve_skanimal_reference)
