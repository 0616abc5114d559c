"""``python -m skanimal``: the ``skanimal`` command (see :mod:`skanimal.cli`)."""

import sys

from skanimal.cli import main

if __name__ == "__main__":
    sys.exit(main())
