"""Derive the OL8 CIS Level 1 Server selection from SSG's RHEL8 profile and render the tailoring.

The tailoring holds these profiles on the OL8 datastream:
  * the scan profile: every RHEL8 cis_server_l1 rule that OL8 content has, with RHEL8's values;
  * the remediation profile: the same minus the waivers that move a rule out of the SSG pass
    (kickstart, seal, exception);
  * one seal profile per `seal` waiver whose rule has an SSG fix, selecting only that rule.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from imagefactory.errors import FactoryError
from imagefactory.hardening.datastream import (
    XCCDF_NS,
    Benchmark,
    short_profile_id,
    short_rule_id,
)
from imagefactory.hardening.scripts import OwnScript
from imagefactory.hardening.waivers import Waiver

ID_NAMESPACE = "xccdf_org.imagefactory"
TAILORING_ID = f"{ID_NAMESPACE}_tailoring_cis_ol8"
SCAN_PROFILE_ID = f"{ID_NAMESPACE}_profile_cis_server_l1_ol8"
REMEDIATE_PROFILE_ID = f"{ID_NAMESPACE}_profile_cis_server_l1_ol8_remediate"
SEAL_PROFILE_PREFIX = f"{ID_NAMESPACE}_profile_cis_server_l1_ol8_seal_"


def seal_profile_id(rule: str) -> str:
    """One profile per seal rule: oscap 1.3.7 cannot generate a fix for a single rule."""
    return SEAL_PROFILE_PREFIX + short_rule_id(rule)


@dataclass(frozen=True)
class Derivation:
    """The rule sets the tailoring is made of, all as full XCCDF ids, sorted."""

    source_profile: str
    source_selected: tuple[str, ...]
    kept: tuple[str, ...]
    missing: tuple[str, ...]
    refine_values: tuple[tuple[str, str], ...]
    deselected: tuple[str, ...]
    seal_rules: tuple[str, ...]
    kept_without_bash_fix: tuple[str, ...]
    gaps: tuple[str, ...]

    @property
    def remediated(self) -> tuple[str, ...]:
        dropped = set(self.deselected)
        return tuple(r for r in self.kept if r not in dropped)


def derive(
    source: Benchmark,
    target: Benchmark,
    source_profile: str,
    waivers: Sequence[Waiver],
    scripts: Sequence[OwnScript],
) -> Derivation:
    """Compute kept/missing/deselected rules; fail if a refine-value has no OL8 counterpart."""
    profile = source.profile(source_profile)
    selected = sorted(set(profile.selected))
    unknown = [r for r in selected if r not in source.rules]
    if unknown:
        raise FactoryError(f"{source.path}: profile selects undefined rules: {', '.join(unknown)}")
    kept = [r for r in selected if r in target.rules]
    missing = [r for r in selected if r not in target.rules]
    bad_values = [
        f"{value}={selector}"
        for value, selector in profile.refine_values
        if selector not in target.values.get(value, frozenset())
    ]
    if bad_values:
        raise FactoryError(
            f"{target.path}: refine-values of {short_profile_id(profile.profile_id)} "
            f"have no OL8 counterpart: {', '.join(bad_values)}"
        )
    waived = {w.full_rule: w for w in waivers if w.rule}
    scripted = {rule for s in scripts for rule in s.full_rules}
    deselected = [r for r in kept if r in waived and waived[r].semantics.deselect_from_remediation]
    # Seal re-applies these with SSG's own fix, in waivers.yaml order (AIDE goes last there).
    seal = [
        w.full_rule
        for w in waivers
        if w.kind == "seal"
        and w.full_rule in target.rules
        and target.rules[w.full_rule].has_bash_fix
    ]
    no_fix = [r for r in kept if not target.rules[r].has_bash_fix]
    gaps = [r for r in (*missing, *no_fix) if r not in waived and r not in scripted]
    return Derivation(
        source_profile=profile.profile_id,
        source_selected=tuple(selected),
        kept=tuple(kept),
        missing=tuple(missing),
        refine_values=tuple(sorted(profile.refine_values)),
        deselected=tuple(deselected),
        seal_rules=tuple(seal),
        kept_without_bash_fix=tuple(no_fix),
        gaps=tuple(sorted(set(gaps))),
    )


def _profile(
    parent: ET.Element,
    profile_id: str,
    title: str,
    description: str,
    rules: Sequence[str],
    derivation: Derivation,
) -> None:
    x = f"{{{XCCDF_NS}}}"
    profile = ET.SubElement(parent, f"{x}Profile", {"id": profile_id})
    ET.SubElement(profile, f"{x}title", {"override": "true"}).text = title
    ET.SubElement(profile, f"{x}description", {"override": "true"}).text = description
    chosen = set(rules)
    # Every SSG rule defaults to selected="false", so listing the kept rules is enough; the
    # deselected ones are written out anyway so a reader sees them in the file.
    for rule in derivation.kept:
        ET.SubElement(
            profile,
            f"{x}select",
            {"idref": rule, "selected": "true" if rule in chosen else "false"},
        )
    for value, selector in derivation.refine_values:
        ET.SubElement(profile, f"{x}refine-value", {"idref": value, "selector": selector})


def render_tailoring(
    derivation: Derivation, benchmark_href: str, version: str, version_time: str
) -> str:
    """The tailoring document, pretty-printed: one element per line (OpenSCAP#1817)."""
    ET.register_namespace("xccdf", XCCDF_NS)
    x = f"{{{XCCDF_NS}}}"
    root = ET.Element(f"{x}Tailoring", {"id": TAILORING_ID})
    ET.SubElement(root, f"{x}benchmark", {"href": benchmark_href})
    ET.SubElement(root, f"{x}version", {"time": version_time}).text = version
    source = short_profile_id(derivation.source_profile)
    _profile(
        root,
        SCAN_PROFILE_ID,
        "CIS Level 1 Server for Oracle Linux 8 (derived from SSG RHEL8 " + source + ")",
        "Rules of the SSG RHEL8 profile " + source + " that exist in the OL8 content, "
        "with its value refinements. Used for the verify scan. Generated by imagefactory.",
        derivation.kept,
        derivation,
    )
    _profile(
        root,
        REMEDIATE_PROFILE_ID,
        "CIS Level 1 Server for Oracle Linux 8, build-time remediation",
        "The scan profile minus the rules waived out of the SSG pass "
        "(kickstart, seal, exception). Generated by imagefactory.",
        derivation.remediated,
        derivation,
    )
    for rule in derivation.seal_rules:
        _profile(
            root,
            seal_profile_id(rule),
            f"Seal step: {short_rule_id(rule)}",
            "Only this rule, re-applied with SSG's fix during seal. Generated by imagefactory.",
            (rule,),
            derivation,
        )
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode", xml_declaration=False)
    text = '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"
    profiles = 2 + len(derivation.seal_rules)
    check_one_element_per_line(text, len(derivation.kept) * profiles)
    return text


def check_one_element_per_line(text: str, expected_selects: int) -> None:
    """Guard against the oscap 1.3.7 parser bug: each <select> must sit on its own line."""
    lines = [line for line in text.splitlines() if "<xccdf:select " in line]
    crowded = [line for line in lines if line.count("<xccdf:") > 1]
    if len(lines) != expected_selects or crowded:
        raise FactoryError(
            f"tailoring is not one <select> per line ({len(lines)} lines for "
            f"{expected_selects} selects, {len(crowded)} crowded); oscap 1.3.7 would drop rules"
        )
