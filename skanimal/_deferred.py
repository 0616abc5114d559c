"""Import a few heavy modules on first use instead of when another module imports them.

scikit-learn imports ``scipy.stats`` (about a second here, half of scikit-learn's own import)
whenever any of it is imported — unpickling a model's ``Pipeline`` included — but a command
that predicts or sorts never calls into it. :func:`defer_imports` makes the *first* import
of each named module lazy with the standard library's :class:`importlib.util.LazyLoader`:
the module object is created and registered as usual, and it runs its code on the first
attribute access. Nothing else changes: an import error or a real use simply happens later.

Only the ``skanimal`` command calls it (it owns its process); ``import skanimal`` does not.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

#: Imported by scikit-learn at import time, used by none of skanimal's inference paths.
DEFERRED = ("scipy.stats",)


class _LazyFirstImport(importlib.abc.MetaPathFinder):
    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, name, path, target=None):
        if name not in self.names:
            return None
        self.names.discard(name)  # once: a later import finds it in sys.modules anyway
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec  # a namespace package or an old-style loader: import it normally
        spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def defer_imports(names=DEFERRED):
    """Make the first import of each of ``names`` lazy, in this process (idempotent)."""
    pending = [name for name in names if name not in sys.modules]
    if pending and not any(isinstance(f, _LazyFirstImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _LazyFirstImport(pending))
