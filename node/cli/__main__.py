"""``python -m node.cli ARGS``: the ``scnode`` command."""

import sys

from node.cli._main import main

if __name__ == "__main__":
    sys.exit(main())
