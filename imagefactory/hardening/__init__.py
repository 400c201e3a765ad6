"""CIS Level 1 Server hardening for OL8, derived from SSG's RHEL8 profile.

Entry points for the Invoke tasks:
  * derive_tailoring(pin, waivers_file, scripts_dir, out_dir) -> TailoringResult
  * load_inputs(...) + coverage_report(...) for the coverage report alone
  * write_coverage(pin, waivers_file, scripts_dir, out_dir) -> CoverageReport (no oscap)
  * summarize_scan(arf, SCAN_PROFILE_ID, waivers, rule_cis) + gate_scan(summary) for verify
  * load_pin / verify_pin, load_waivers, load_scripts for validation
"""

from imagefactory.hardening.coverage import CoverageReport, coverage_report, render_text
from imagefactory.hardening.derive import (
    HardeningInputs,
    TailoringResult,
    derive_tailoring,
    load_inputs,
    write_coverage,
)
from imagefactory.hardening.pin import SsgPin, load_pin, verify_pin
from imagefactory.hardening.results import ScanSummary, gate_scan, summarize_scan
from imagefactory.hardening.scripts import OwnScript, load_scripts
from imagefactory.hardening.tailoring import REMEDIATE_PROFILE_ID, SCAN_PROFILE_ID
from imagefactory.hardening.waivers import Waiver, load_waivers

__all__ = [
    "REMEDIATE_PROFILE_ID",
    "SCAN_PROFILE_ID",
    "CoverageReport",
    "HardeningInputs",
    "OwnScript",
    "ScanSummary",
    "SsgPin",
    "TailoringResult",
    "Waiver",
    "coverage_report",
    "derive_tailoring",
    "gate_scan",
    "load_inputs",
    "load_pin",
    "load_scripts",
    "load_waivers",
    "render_text",
    "summarize_scan",
    "verify_pin",
    "write_coverage",
]
