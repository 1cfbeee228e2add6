"""PyInstaller's entry script: the same `main` as the `dashfleet-agent` console script."""

import sys

from desktop_agent.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
