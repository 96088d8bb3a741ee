"""``python -m genmodels ...``: the command line, :mod:`genmodels.app.cli`."""

import sys

from .app.cli import main

if __name__ == "__main__":
    sys.exit(main())
