"""App-Core is not installed in the venv: its source tree and testkit go on sys.path."""

import tests.appcore_path  # noqa: F401
