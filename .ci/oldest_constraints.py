"""Print pip constraints that pin every core dependency to the oldest minor release its lower
bound in pyproject.toml allows (``tensorflow>=2.16`` → ``tensorflow~=2.16.0``: the newest
patch of that minor, since patches fix bugs and keep the API).

Derived from pyproject.toml on each run, so the oldest-versions job cannot drift from the
declared bounds. Used by ``.ci/run``'s second job.
"""

import re
import sys
import tomllib
from pathlib import Path

pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
for requirement in pyproject["project"]["dependencies"]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*>=\s*([0-9.]+)", requirement)
    if not match:
        sys.exit(f"no lower bound to pin in {requirement!r}")
    name, version = match.groups()
    parts = version.split(".")
    print(f"{name}~={'.'.join((parts + ['0', '0'])[:3])}" if len(parts) < 3
          else f"{name}=={version}")
