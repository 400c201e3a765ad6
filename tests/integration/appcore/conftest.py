"""App-Core is not installed in the venv: put its source tree and testkit on sys.path."""

import sys
from pathlib import Path

APPCORE_DIR = Path(__file__).resolve().parents[3] / "appcore"
for sub in ("src", "testing"):
    if str(APPCORE_DIR / sub) not in sys.path:
        sys.path.insert(0, str(APPCORE_DIR / sub))
