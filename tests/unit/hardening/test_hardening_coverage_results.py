"""Coverage classification and the ARF scan summary/gate."""

from __future__ import annotations

from pathlib import Path

import pytest
from hardening_builders import SOURCE_PROFILE

from imagefactory.errors import BuildError
from imagefactory.hardening.coverage import coverage_report, render_text
from imagefactory.hardening.datastream import RULE_PREFIX, Benchmark
from imagefactory.hardening.results import gate_scan, summarize_scan
from imagefactory.hardening.scripts import OwnScript
from imagefactory.hardening.tailoring import SCAN_PROFILE_ID, derive
from imagefactory.hardening.waivers import parse_waivers

WAIVERS = {
    "waivers": [
        {"rule": "grub2_password", "kind": "kickstart", "reason": "kickstart sets the hash"},
        {"rule": "sshd_set_idle_timeout", "kind": "exception", "reason": "site keeps sessions"},
        {"cis": "1.2.1", "kind": "manual", "reason": "RHSM is not on Oracle Linux"},
    ]
}


def cron_script() -> OwnScript:
    return OwnScript(Path("cis-5.1.2-crontab.sh"), "5.1.2", "t", ("file_owner_crontab",), ())


def test_coverage_statuses(pair: tuple[Benchmark, Benchmark]) -> None:
    """SSG fix, own script, waiver, manual and not covered are told apart per CIS id."""
    source, target = pair
    waivers = parse_waivers(WAIVERS, "w.yaml")
    scripts = (cron_script(),)
    d = derive(source, target, SOURCE_PROFILE, waivers, scripts)
    report = coverage_report(source, target, d, waivers, scripts)
    status = {i.cis_id: i.status for i in report.items}
    assert status == {
        "1.2.1": "manual",
        "1.3.1": "ssg",
        "1.4.1": "waiver",
        "4.2.2.4": "not_covered",
        "5.1.2": "script",
        "5.2.16": "waiver",
    }
    assert report.counts["automatable"] == 5 and report.not_covered == ("4.2.2.4",)
    assert "4.2.2.4  not_covered  -  | journald_storage (uncovered)" in render_text(report)


ARF = """<?xml version="1.0"?>
<arf:asset-report-collection xmlns:arf="urn:oasis:names:tc:dfi:schema:arf:1.1"
    xmlns:x="http://checklists.nist.gov/xccdf/1.2">
 <arf:reports><arf:report id="r1"><arf:content>
  <x:TestResult id="xccdf_org.open-scap_testresult_p">
   <x:profile idref="{profile}"/>
   <x:rule-result idref="{p}a"><x:result>pass</x:result></x:rule-result>
   <x:rule-result idref="{p}b"><x:result>fail</x:result></x:rule-result>
   <x:rule-result idref="{p}sshd_set_idle_timeout"><x:result>fail</x:result></x:rule-result>
   <x:rule-result idref="{p}c"><x:result>notapplicable</x:result></x:rule-result>
   <x:rule-result idref="{p}d"><x:result>notselected</x:result></x:rule-result>
   <x:score system="urn:xccdf:scoring:default" maximum="100.000000">{score}</x:score>
  </x:TestResult>
 </arf:content></arf:report></arf:reports>
</arf:asset-report-collection>
"""


def write_arf(tmp_path: Path, score: str = "33.3") -> Path:
    arf = tmp_path / "arf.xml"
    arf.write_text(ARF.format(profile=SCAN_PROFILE_ID, p=RULE_PREFIX, score=score))
    return arf


def test_scan_summary_for_manifest(tmp_path: Path) -> None:
    """Score, counts, pass rate and failing rules split into waived and unwaived."""
    waivers = parse_waivers(WAIVERS, "w.yaml")
    cis = {RULE_PREFIX + "a": ["1.1"], RULE_PREFIX + "b": ["1.1", "1.2"]}
    summary = summarize_scan(write_arf(tmp_path), SCAN_PROFILE_ID, waivers, cis)
    doc = summary.to_manifest()
    assert doc["score"] == 33.3
    assert doc["counts"] == {"fail": 2, "notapplicable": 1, "pass": 1}
    assert doc["failing_rules"] == ["b", "sshd_set_idle_timeout"]
    assert doc["waived_failures"] == ["sshd_set_idle_timeout"]
    assert doc["unwaived_failures"] == ["b"]
    assert doc["pass_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert doc["cis_pass_rate"] == 0.0


def test_gate_fails_on_unwaived_failure(tmp_path: Path) -> None:
    """A failing rule without a tolerating waiver fails the build, naming the rule."""
    summary = summarize_scan(write_arf(tmp_path), SCAN_PROFILE_ID, (), None)
    with pytest.raises(BuildError, match=r"2 failing rule\(s\) without a waiver: b, sshd"):
        gate_scan(summary)


def test_gate_passes_when_every_failure_is_tolerated(tmp_path: Path) -> None:
    """Exception waivers tolerate their failures; kickstart/seal waivers do not."""
    extra = {"rule": "b", "kind": "exception", "reason": "accepted for this test"}
    waivers = parse_waivers({"waivers": [*WAIVERS["waivers"], extra]}, "w.yaml")
    gate_scan(summarize_scan(write_arf(tmp_path), SCAN_PROFILE_ID, waivers, None))


def test_missing_profile_in_arf(tmp_path: Path) -> None:
    """An ARF without the scan profile's TestResult is an error, not an empty pass."""
    with pytest.raises(Exception, match="no XCCDF TestResult for profile other"):
        summarize_scan(write_arf(tmp_path), "other", (), None)
