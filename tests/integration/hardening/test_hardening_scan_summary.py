"""A real `oscap xccdf eval` with the derived tailoring, summarized for the image manifest.

On this non-OL8 host every rule is notapplicable; the test proves the command line, the ARF
parsing and the manifest fields. The OL8 results come from the scan in the booted image.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from imagefactory.errors import BuildError
from imagefactory.hardening import SCAN_PROFILE_ID, TailoringResult, load_waivers
from imagefactory.hardening.pin import SsgPin
from imagefactory.hardening.results import gate_scan, summarize_scan

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[3]


def test_eval_arf_summary_reaches_manifest_fields(
    derived: TailoringResult, pin: SsgPin, tmp_path: Path
) -> None:
    """The ARF of a real eval yields score, counts and failing rules for the manifest."""
    arf, html = tmp_path / "arf.xml", tmp_path / "report.html"
    proc = subprocess.run(
        [
            "oscap", "xccdf", "eval",
            "--tailoring-file", str(derived.tailoring),
            "--profile", SCAN_PROFILE_ID,
            "--results-arf", str(arf),
            "--report", str(html),
            str(pin.target_path),
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert proc.returncode in (0, 2), proc.stderr[-2000:]
    assert html.stat().st_size > 0
    waivers = load_waivers(REPO / "hardening" / "waivers.yaml")
    summary = summarize_scan(arf, SCAN_PROFILE_ID, waivers)
    doc = summary.to_manifest()
    assert doc["profile"] == SCAN_PROFILE_ID
    evaluated = sum(doc["counts"].values())
    # Every kept rule has a result except those oscap drops for an unmet XCCDF `requires`.
    assert 0 < derived.provenance["counts"]["kept_in_ol8"] - evaluated <= 2
    assert set(doc["failing_rules"]) >= set(doc["unwaived_failures"])
    if summary.blocking:
        with pytest.raises(BuildError):
            gate_scan(summary)
    else:
        gate_scan(summary)
