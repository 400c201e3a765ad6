"""Metrics files in tests: promtool's lint on a written file (a missing promtool fails in CI)
and the samples read back as written."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.prereq import require_tool


def promtool_check_metrics(path: Path) -> None:
    """Fails the test with promtool's own words unless the file passes its lint."""
    promtool = require_tool("promtool")
    with path.open("rb") as fh:
        done = subprocess.run(
            [promtool, "check", "metrics"], stdin=fh, capture_output=True, text=True
        )
    assert done.returncode == 0, f"promtool check metrics {path}:\n{done.stdout}{done.stderr}"


def samples(path: Path) -> dict[str, float]:
    """Each sample line as `name{labels}` (exactly as written) -> its value."""
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            out[series] = float(value)
    return out
