"""Derive the OL8 tailoring from the real pinned SSG content and check it with real oscap."""

from __future__ import annotations

import json
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from imagefactory.errors import ConfigError, ToolError
from imagefactory.hardening import (
    REMEDIATE_PROFILE_ID,
    SCAN_PROFILE_ID,
    TailoringResult,
    derive_tailoring,
    load_waivers,
)
from imagefactory.hardening.oscap import generate_fix
from imagefactory.hardening.pin import SsgPin
from tests.prereq import require_tool

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[3]
X = "{http://checklists.nist.gov/xccdf/1.2}"
PREFIX = "xccdf_org.ssgproject.content_rule_"


def independent_sets(pin: SsgPin) -> tuple[set[str], set[str]]:
    """RHEL8 cis_server_l1 selected rules and OL8 rule ids, read straight from the files."""
    selected: set[str] = set()
    for _, elem in ET.iterparse(pin.source_path):
        if elem.tag == f"{X}Profile" and elem.get("id") == pin.source_profile:
            selected = {
                s.get("idref", "") for s in elem.iter(f"{X}select") if s.get("selected") == "true"
            }
            break
    ol8 = {e.get("id", "") for _, e in ET.iterparse(pin.target_path) if e.tag == f"{X}Rule"}
    return selected, ol8


def test_counts_match_the_datastreams(derived: TailoringResult, pin: SsgPin) -> None:
    """kept = selected ∩ OL8, missing = selected − OL8, computed independently."""
    selected, ol8 = independent_sets(pin)
    counts = derived.provenance["counts"]
    assert counts["source_selected"] == len(selected) > 0
    assert counts["kept_in_ol8"] == len(selected & ol8)
    assert counts["missing_in_ol8"] == len(selected - ol8) > 0
    assert sorted(derived.provenance["missing_in_ol8"]) == sorted(
        r.removeprefix(PREFIX) for r in selected - ol8
    )


def test_every_missing_rule_is_scripted_or_waived(derived: TailoringResult) -> None:
    """No rule the OL8 content lacks is left without our script or a waiver."""
    coverage = json.loads((derived.out_dir / "coverage.json").read_text())
    by_rule = {r["rule"]: r for item in coverage["items"] for r in item["rules"]}
    for rule in derived.provenance["missing_in_ol8"]:
        assert by_rule[rule]["disposition"] in ("script", "waiver"), rule
    assert coverage["counts"]["not_covered"] == 0
    assert coverage["not_covered"] == []


def test_oscap_info_lists_both_profiles(derived: TailoringResult) -> None:
    """oscap sees an XCCDF Tailoring with the scan and remediation profiles."""
    out = subprocess.run(
        ["oscap", "info", str(derived.tailoring)], capture_output=True, text=True, check=True
    ).stdout
    assert "Document type: XCCDF Tailoring" in out
    assert SCAN_PROFILE_ID in out and REMEDIATE_PROFILE_ID in out


def test_tailoring_validates_against_xccdf_schema(derived: TailoringResult) -> None:
    """The XSD check (schematron skipped: oscap 1.3.7 has none for tailorings) passes."""
    proc = subprocess.run(
        ["oscap", "xccdf", "validate", "--skip-schematron", str(derived.tailoring)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_bash_fix_has_one_block_per_remediated_rule(derived: TailoringResult) -> None:
    """oscap honoured every select: blocks == remediated rules, waived rules absent."""
    assert derived.bash_fix is not None
    text = derived.bash_fix.read_text()
    blocks = re.findall(r"^# BEGIN fix \(\d+ / (\d+)\) for '([^']+)'", text, re.MULTILINE)
    counts = derived.provenance["counts"]
    assert (
        len(blocks)
        == counts["remediated"]
        == counts["kept_in_ol8"] - counts["deselected_by_waiver"]
    )
    fixed = {rule.removeprefix(PREFIX) for _, rule in blocks}
    assert fixed.isdisjoint(derived.provenance["deselected_by_waiver"])
    assert {"aide_build_database", "sudo_require_authentication"} <= set(
        derived.provenance["deselected_by_waiver"]
    )


def test_bash_fix_syntax_and_shellcheck(derived: TailoringResult) -> None:
    """The generated script parses (bash -n) and has no shellcheck warnings or errors."""
    require_tool("shellcheck")
    assert derived.bash_fix is not None
    subprocess.run(["bash", "-n", str(derived.bash_fix)], check=True)
    proc = subprocess.run(
        ["shellcheck", "-S", "warning", str(derived.bash_fix)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_ansible_fix_is_a_playbook(derived: TailoringResult) -> None:
    """The Ansible output is one play with tasks for most remediated rules."""
    assert derived.ansible_fix is not None
    plays = yaml.safe_load(derived.ansible_fix.read_text())
    assert isinstance(plays, list) and len(plays) == 1 and plays[0]["tasks"]
    ansible = derived.provenance["fixes"]["ansible"]
    assert 0 < ansible["rules_with_fix"] <= derived.provenance["counts"]["remediated"]


def test_rules_without_bash_fix_are_scripted_or_check_only(derived: TailoringResult) -> None:
    """Every rule SSG cannot fix is either one of our scripts' rules or a check_only waiver."""
    waivers = {w.rule: w.kind for w in load_waivers(REPO / "hardening" / "waivers.yaml")}
    coverage = json.loads((derived.out_dir / "coverage.json").read_text())
    by_rule = {r["rule"]: r["disposition"] for i in coverage["items"] for r in i["rules"]}
    for rule in derived.provenance["fixes"]["bash"]["rules_without_fix"]:
        assert by_rule[rule] == "script" or waivers.get(rule) == "check_only", rule


def test_unknown_selector_fails_fix_generation(
    derived: TailoringResult, pin: SsgPin, tmp_path: Path
) -> None:
    """oscap only warns about an unknown rule id; generate_fix turns that into an error."""
    bogus = derived.tailoring.read_text().replace(
        PREFIX + "package_aide_installed", PREFIX + "does_not_exist_anywhere", 1
    )
    tailoring = tmp_path / "bogus.xml"
    tailoring.write_text(bogus)
    with pytest.raises(ToolError, match="does_not_exist_anywhere"):
        generate_fix("bash", pin.target_path, tailoring, SCAN_PROFILE_ID, tmp_path / "fix.sh")
    assert not (tmp_path / "fix.sh").exists()


def test_gap_fails_and_keeps_previous_outputs(pin: SsgPin, tmp_path: Path) -> None:
    """Without our scripts the derivation fails naming the uncovered rules, writing nothing."""
    empty = tmp_path / "scripts"
    empty.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "tailoring-cis-ol8.xml").write_text("previous")
    with pytest.raises(ConfigError, match="journald_storage .*missing in OL8 content"):
        derive_tailoring(pin, REPO / "hardening" / "waivers.yaml", empty, out)
    assert (out / "tailoring-cis-ol8.xml").read_text() == "previous"
    assert sorted(p.name for p in out.iterdir()) == ["tailoring-cis-ol8.xml"]


def test_coverage_text_and_counts_agree(derived: TailoringResult) -> None:
    """The text table has one row per CIS id and the counts add up."""
    counts = derived.coverage.counts
    parts = ("ssg", "script", "waiver", "manual", "not_covered")
    assert sum(counts[k] for k in parts) == counts["total"] == len(derived.coverage.items)
    text = (derived.out_dir / "coverage.txt").read_text()
    assert len([line for line in text.splitlines() if re.match(r"^\d", line)]) == counts["total"]
    assert f"automatable={counts['automatable']}" in text


def test_derivation_is_reproducible(derived: TailoringResult, pin: SsgPin, tmp_path: Path) -> None:
    """A second run writes byte-identical tailoring and fix script."""
    again = derive_tailoring(
        pin, REPO / "hardening" / "waivers.yaml", REPO / "hardening" / "scripts", tmp_path
    )
    assert again.tailoring.read_bytes() == derived.tailoring.read_bytes()
    assert again.provenance["files"] == derived.provenance["files"]


def test_seal_fixes_one_rule_each_aide_last(derived: TailoringResult) -> None:
    """Each seal script fixes exactly its rule; the AIDE database build is the last one."""
    assert derived.seal_fixes
    names = [p.name for p in derived.seal_fixes]
    assert names == sorted(names) and names[-1].endswith("-aide_build_database.sh")
    for path in derived.seal_fixes:
        text = path.read_text()
        rules = re.findall(r"^# BEGIN fix \(1 / 1\) for '([^']+)'", text, re.MULTILINE)
        assert rules == [PREFIX + path.name.split("-", 4)[-1].removesuffix(".sh")]
        subprocess.run(["bash", "-n", str(path)], check=True)
