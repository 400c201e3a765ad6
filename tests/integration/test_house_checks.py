"""House checks over the whole repository: ruff lint, ruff format and mypy --strict.

Each runs the venv's tool from the repository root with the settings in pyproject.toml (mypy's
files: imagefactory, tasks.py, bench, appcore). shellcheck is checked elsewhere:
tests/integration/test_templates.py (packer/scripts, standin),
tests/integration/appcore/test_packaging.py (install.sh, the launcher) and
tests/integration/hardening/test_hardening_own_scripts.py (hardening/scripts).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def check(tool: str, *args: str) -> None:
    """Run a venv tool in the repository root; fail (never skip) if it is missing or reports."""
    exe = VENV_BIN / tool
    if not exe.is_file():
        pytest.fail(f"{tool} is not installed in {VENV_BIN}: pip install -e '.[dev]'")
    proc = subprocess.run([str(exe), *args], cwd=REPO, capture_output=True, text=True)
    code = proc.returncode
    assert code == 0, f"{' '.join([tool, *args])}:\n{proc.stdout}{proc.stderr}"


def test_ruff_check() -> None:
    """`ruff check .` finds nothing."""
    check("ruff", "check", ".")


def test_ruff_format() -> None:
    """`ruff format --check .` would reformat nothing."""
    check("ruff", "format", "--check", ".")


def test_mypy_strict() -> None:
    """`mypy` (strict, over pyproject's files) finds no error."""
    check("mypy")
