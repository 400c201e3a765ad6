"""`derive_tailoring`: pinned SSG -> tailoring, fixes, coverage and provenance in one directory.

All outputs are produced in a staging directory and moved into place only when every step,
including the oscap checks, has succeeded: a failed run leaves the previous outputs untouched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagefactory.errors import ConfigError, FactoryError, Problem
from imagefactory.hardening import coverage as cov
from imagefactory.hardening import oscap
from imagefactory.hardening.datastream import Benchmark, X, load_benchmark, short_rule_id
from imagefactory.hardening.pin import SsgPin, check_benchmark_version, verify_pin
from imagefactory.hardening.scripts import OwnScript, check_scripts_against, load_scripts
from imagefactory.hardening.tailoring import (
    REMEDIATE_PROFILE_ID,
    SCAN_PROFILE_ID,
    Derivation,
    derive,
    render_tailoring,
    seal_profile_id,
)
from imagefactory.hardening.waivers import Waiver, check_waivers_against, load_waivers
from imagefactory.util.fsutil import canonical_json, sha256_file, write_atomic, write_json_atomic

DEFAULT_PIN_FILE = Path("hardening/ssg-pin.yaml")
DEFAULT_WAIVERS_FILE = Path("hardening/waivers.yaml")
DEFAULT_SCRIPTS_DIR = Path("hardening/scripts")
DEFAULT_OUT_DIR = Path("artifacts/hardening")
TAILORING_NAME = "tailoring-cis-ol8.xml"
BASH_FIX_NAME = "cis-ol8-remediate.sh"
ANSIBLE_FIX_NAME = "cis-ol8-remediate.yml"
COVERAGE_JSON = "coverage.json"
COVERAGE_TEXT = "coverage.txt"
PROVENANCE_NAME = "provenance.json"


SEAL_FIX_GLOB = "cis-ol8-seal-*.sh"


def seal_fix_name(step: int, rule: str) -> str:
    """Seal fix scripts sort in the order seal must run them."""
    return f"cis-ol8-seal-{step:02d}-{short_rule_id(rule)}.sh"


REMEDIATION_METHOD = (
    "oscap xccdf generate fix --fix-type bash on the build host, from the tailoring's "
    "remediation profile; the script is uploaded and run as root in the guest"
)


@dataclass(frozen=True)
class HardeningInputs:
    """Everything the derivation reads, loaded and cross-checked."""

    pin: SsgPin
    source: Benchmark
    target: Benchmark
    waivers: tuple[Waiver, ...]
    scripts: tuple[OwnScript, ...]
    derivation: Derivation


@dataclass(frozen=True)
class TailoringResult:
    """What derive_tailoring wrote and measured."""

    out_dir: Path
    tailoring: Path
    bash_fix: Path | None
    ansible_fix: Path | None
    seal_fixes: tuple[Path, ...]
    coverage: cov.CoverageReport
    provenance: dict[str, Any]


def load_inputs(
    pin: SsgPin, waivers_file: Path, scripts_dir: Path, pin_file: str = "ssg pin"
) -> HardeningInputs:
    """Verify the pin, parse both datastreams, load and cross-check waivers and scripts."""
    verify_pin(pin, pin_file)
    source = load_benchmark(pin.source_path)
    target = load_benchmark(pin.target_path)
    check_benchmark_version(pin, source.version, source.path)
    check_benchmark_version(pin, target.version, target.path)
    waivers = load_waivers(waivers_file)
    scripts = load_scripts(scripts_dir)
    selected = source.profile(pin.source_profile).selected
    check_waivers_against(waivers, str(waivers_file), source, target, selected)
    check_scripts_against(scripts, source, target, selected)
    derivation = derive(source, target, pin.source_profile, waivers, scripts)
    return HardeningInputs(pin, source, target, waivers, scripts, derivation)


def gap_problems(inputs: HardeningInputs, waivers_file: Path) -> list[Problem]:
    """Rules missing in OL8 or without an SSG fix that neither a script nor a waiver covers."""
    return [
        Problem(
            str(waivers_file),
            "waivers",
            f"rule {short_rule_id(rule)} (CIS {', '.join(inputs.source.rules[rule].cis_ids)}) "
            + ("is missing in OL8 content" if rule in inputs.derivation.missing else "has no fix")
            + " and is neither waived nor covered by a hardening/scripts/cis-*.sh",
            "add a script declaring it in '# ssg-rules:' or a waiver with a reason",
        )
        for rule in inputs.derivation.gaps
    ]


def _input_digest(inputs: HardeningInputs) -> str:
    doc = {
        "pin": [inputs.pin.version, inputs.pin.source.sha256, inputs.pin.target.sha256],
        "profile": inputs.pin.source_profile,
        "waivers": [[w.rule, w.cis, w.kind] for w in inputs.waivers],
        "scripts": [[s.name, list(s.ssg_rules)] for s in inputs.scripts],
    }
    return hashlib.sha256(canonical_json(doc).encode()).hexdigest()


def check_tailoring_idrefs(tailoring: Path, target: Benchmark) -> None:
    """Our own check, independent of oscap's warning text: every idref exists in the OL8 content."""
    root = ET.parse(tailoring).getroot()
    unknown = sorted(
        {s.get("idref", "") for s in root.iter(f"{X}select")} - set(target.rules)
        | {v.get("idref", "") for v in root.iter(f"{X}refine-value")} - set(target.values)
    )
    if unknown:
        raise FactoryError(f"{tailoring}: ids unknown to {target.path.name}: {', '.join(unknown)}")


def derive_tailoring(
    pin: SsgPin,
    waivers_file: Path = DEFAULT_WAIVERS_FILE,
    scripts_dir: Path = DEFAULT_SCRIPTS_DIR,
    out_dir: Path = DEFAULT_OUT_DIR,
    *,
    generate_fixes: bool = True,
    allow_gaps: bool = False,
    pin_file: str = "ssg pin",
) -> TailoringResult:
    """Derive the OL8 CIS L1 tailoring, check it with oscap, generate fixes and the coverage."""
    inputs = load_inputs(pin, waivers_file, scripts_dir, pin_file)
    if inputs.derivation.gaps and not allow_gaps:
        raise ConfigError(gap_problems(inputs, waivers_file))
    digest = _input_digest(inputs)
    text = render_tailoring(
        inputs.derivation,
        benchmark_href=pin.target.name,
        version=f"{pin.version}+{digest[:12]}",
        version_time=f"{inputs.target.status_date or '1970-01-01'}T00:00:00",
    )
    report = cov.coverage_report(
        inputs.source, inputs.target, inputs.derivation, inputs.waivers, inputs.scripts
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out_dir))
    try:
        tailoring = staging / TAILORING_NAME
        write_atomic(tailoring, text)
        check_tailoring_idrefs(tailoring, inputs.target)
        seal_ids = [seal_profile_id(r) for r in inputs.derivation.seal_rules]
        oscap.check_tailoring_info(tailoring, [SCAN_PROFILE_ID, REMEDIATE_PROFILE_ID, *seal_ids])
        fixes: dict[str, oscap.FixOutput] = {}
        if generate_fixes:
            for fix_type, name in (("bash", BASH_FIX_NAME), ("ansible", ANSIBLE_FIX_NAME)):
                fixes[fix_type] = oscap.generate_fix(
                    fix_type,
                    pin.target_path,
                    tailoring,
                    REMEDIATE_PROFILE_ID,
                    staging / name,
                    inputs.derivation.remediated,
                )
            for step, rule in enumerate(inputs.derivation.seal_rules, start=1):
                name = seal_fix_name(step, rule)
                fixes[name] = oscap.generate_fix(
                    "bash", pin.target_path, tailoring, seal_profile_id(rule), staging / name
                )
        write_json_atomic(staging / COVERAGE_JSON, report.to_json())
        write_atomic(staging / COVERAGE_TEXT, cov.render_text(report))
        provenance = _provenance(inputs, digest, fixes, staging)
        write_json_atomic(staging / PROVENANCE_NAME, provenance)
        made = sorted(p.name for p in staging.iterdir())
        for name in made:
            os.replace(staging / name, out_dir / name)
        if generate_fixes:
            # A seal rule that became a waiver of another kind must not leave its script
            # behind: the seal layer would still run it.
            for stale in out_dir.glob(SEAL_FIX_GLOB):
                if stale.name not in made:
                    stale.unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return TailoringResult(
        out_dir=out_dir,
        tailoring=out_dir / TAILORING_NAME,
        bash_fix=out_dir / BASH_FIX_NAME if "bash" in fixes else None,
        ansible_fix=out_dir / ANSIBLE_FIX_NAME if "ansible" in fixes else None,
        seal_fixes=tuple(
            out_dir / seal_fix_name(i, r)
            for i, r in enumerate(inputs.derivation.seal_rules, start=1)
            if generate_fixes
        ),
        coverage=report,
        provenance=provenance,
    )


def _provenance(
    inputs: HardeningInputs,
    digest: str,
    fixes: dict[str, oscap.FixOutput],
    staging: Path,
) -> dict[str, Any]:
    d = inputs.derivation
    return {
        "ssg_version": inputs.pin.version,
        "source": {"datastream": inputs.pin.source.name, "sha256": inputs.pin.source.sha256},
        "target": {"datastream": inputs.pin.target.name, "sha256": inputs.pin.target.sha256},
        "source_profile": inputs.pin.source_profile,
        "scan_profile": SCAN_PROFILE_ID,
        "remediation_profile": REMEDIATE_PROFILE_ID,
        "remediation_method": REMEDIATION_METHOD,
        "oscap_version": oscap.oscap_version(),
        "input_digest": digest,
        "counts": {
            "source_selected": len(d.source_selected),
            "kept_in_ol8": len(d.kept),
            "missing_in_ol8": len(d.missing),
            "refine_values": len(d.refine_values),
            "deselected_by_waiver": len(d.deselected),
            "seal_fixes": len(d.seal_rules),
            "remediated": len(d.remediated),
            "kept_without_bash_fix": len(d.kept_without_bash_fix),
            "gaps": len(d.gaps),
            "waivers": len(inputs.waivers),
            "own_scripts": len(inputs.scripts),
        },
        "missing_in_ol8": [short_rule_id(r) for r in d.missing],
        "deselected_by_waiver": [short_rule_id(r) for r in d.deselected],
        "seal_fix_order": [seal_fix_name(i, r) for i, r in enumerate(d.seal_rules, start=1)],
        "fixes": {
            kind: {
                "file": fix.path.name,
                "lines": fix.lines,
                "rules_with_fix": fix.fix_blocks - len(fix.missing_fix_rules)
                if fix.fix_type == "bash"
                else fix.fix_blocks,
                "rules_without_fix": [short_rule_id(r) for r in fix.missing_fix_rules],
            }
            for kind, fix in fixes.items()
        },
        "files": {p.name: sha256_file(p) for p in sorted(staging.iterdir()) if p.is_file()},
    }


def write_coverage(
    pin: SsgPin,
    waivers_file: Path = DEFAULT_WAIVERS_FILE,
    scripts_dir: Path = DEFAULT_SCRIPTS_DIR,
    out_dir: Path = DEFAULT_OUT_DIR,
    pin_file: str = "ssg pin",
) -> cov.CoverageReport:
    """Coverage report only (no oscap run): coverage.json and coverage.txt in `out_dir`."""
    inputs = load_inputs(pin, waivers_file, scripts_dir, pin_file)
    report = cov.coverage_report(
        inputs.source, inputs.target, inputs.derivation, inputs.waivers, inputs.scripts
    )
    write_json_atomic(out_dir / COVERAGE_JSON, report.to_json())
    write_atomic(out_dir / COVERAGE_TEXT, cov.render_text(report))
    return report
