"""``python -m vgloc.cli`` (and ``torchrun ... -m vgloc.cli train ...``) run the ``vgloc`` CLI."""

import sys

from vgloc.cli import main

if __name__ == "__main__":
    sys.exit(main())
