"""Entry point for `python3 -m appcore`."""

import sys

from appcore.cli import main

if __name__ == "__main__":
    sys.exit(main())
