"""Prometheus' own tool on what imagefactory gives it: rendered metrics with hostile label
values (`promtool check metrics`), and the example alert rules (`promtool check rules`,
`promtool test rules` with their unit-test file, which proves the nightly alerts fire)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from imagefactory.report.metrics import Sample, gauge, write_atomically
from tests.metricskit import promtool_check_metrics
from tests.prereq import require_tool

pytestmark = pytest.mark.integration

ALERTS = Path(__file__).resolve().parents[2] / "docs" / "alerts"


def test_a_broken_label_value_is_escaped_and_passes_promtool(tmp_path: Path) -> None:
    """A quote, a backslash and a newline in a label value: escaped, and promtool agrees."""
    metric = gauge(
        "imagefactory_test_bytes",
        "A label value with every character the format escapes.",
        [Sample.of(1, family='we"ird\\fam\nily')],
    )
    path = write_atomically(tmp_path, "t", [metric])
    promtool_check_metrics(path)
    assert 'imagefactory_test_bytes{family="we\\"ird\\\\fam\\nily"} 1\n' in path.read_text()


def test_promtool_rejects_what_is_not_escaped(tmp_path: Path) -> None:
    """The check can fail: the same value written raw is refused by promtool."""
    promtool = require_tool("promtool")
    raw = tmp_path / "raw.prom"
    raw.write_text('# HELP m M.\n# TYPE m gauge\nm{family="we"ird"} 1\n')
    done = subprocess.run([promtool, "check", "metrics"], stdin=raw.open("rb"), capture_output=True)
    assert done.returncode != 0


def test_the_alert_rules_are_valid() -> None:
    """promtool check rules on docs/alerts/imagefactory.rules.yml."""
    promtool = require_tool("promtool")
    done = subprocess.run(
        [promtool, "check", "rules", str(ALERTS / "imagefactory.rules.yml")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 4 rules found" in done.stdout


def test_the_nightly_alerts_fire_in_promtools_rule_tests() -> None:
    """promtool test rules: nightly-failed and stale fire when they should, and only then."""
    promtool = require_tool("promtool")
    done = subprocess.run(
        [promtool, "test", "rules", "imagefactory.rules.test.yml"],
        capture_output=True,
        text=True,
        cwd=ALERTS,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
