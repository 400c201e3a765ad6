"""App-Core is not installed in the venv (it is the guest's, Python 3.6, stdlib only): importing
this module puts its source tree and testkit on sys.path, for any test that imports it."""

import sys
from pathlib import Path

APPCORE_DIR = Path(__file__).resolve().parents[1] / "appcore"
for sub in ("src", "testing"):
    if str(APPCORE_DIR / sub) not in sys.path:
        sys.path.insert(0, str(APPCORE_DIR / sub))
