"""Read what the derivation needs from an SSG source datastream (XCCDF 1.2 inside SCAP 1.2).

Only the stdlib parser is used: the datastreams are trusted, pinned by sha256 before parsing.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from imagefactory.errors import FactoryError

XCCDF_NS = "http://checklists.nist.gov/xccdf/1.2"
X = f"{{{XCCDF_NS}}}"
RULE_PREFIX = "xccdf_org.ssgproject.content_rule_"
VALUE_PREFIX = "xccdf_org.ssgproject.content_value_"
PROFILE_PREFIX = "xccdf_org.ssgproject.content_profile_"
# SSG tags a rule with the CIS benchmark item it implements through this reference href.
CIS_BENCHMARK_HREF_PREFIX = "https://www.cisecurity.org/benchmark/"
FIX_BASH = "urn:xccdf:fix:script:sh"
FIX_ANSIBLE = "urn:xccdf:fix:script:ansible"


@dataclass(frozen=True)
class RuleInfo:
    """One XCCDF Rule: its id, title, CIS item references and which fix types it ships."""

    rule_id: str
    title: str
    cis_ids: tuple[str, ...]
    has_bash_fix: bool
    has_ansible_fix: bool

    @property
    def short_id(self) -> str:
        return short_rule_id(self.rule_id)


@dataclass(frozen=True)
class ProfileInfo:
    """A profile's selected rules (in document order) and its refine-value pairs."""

    profile_id: str
    title: str
    selected: tuple[str, ...]
    refine_values: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Benchmark:
    """The parts of one datastream's Benchmark the derivation uses."""

    path: Path
    benchmark_id: str
    version: str
    status_date: str
    rules: dict[str, RuleInfo]
    values: dict[str, frozenset[str]]
    profiles: dict[str, ProfileInfo]

    def profile(self, profile_id: str) -> ProfileInfo:
        full = profile_id if profile_id.startswith("xccdf_") else PROFILE_PREFIX + profile_id
        try:
            return self.profiles[full]
        except KeyError:
            known = ", ".join(sorted(short_profile_id(p) for p in self.profiles))
            raise FactoryError(
                f"{self.path}: profile {full} not found (profiles present: {known})"
            ) from None


def short_rule_id(rule_id: str) -> str:
    """`xccdf_org.ssgproject.content_rule_foo` -> `foo`."""
    return rule_id.removeprefix(RULE_PREFIX)


def full_rule_id(short: str) -> str:
    """`foo` -> `xccdf_org.ssgproject.content_rule_foo` (already full ids pass through)."""
    return short if short.startswith("xccdf_") else RULE_PREFIX + short


def short_profile_id(profile_id: str) -> str:
    return profile_id.removeprefix(PROFILE_PREFIX)


def cis_sort_key(cis_id: str) -> tuple[int, ...]:
    """Numeric order for dotted CIS ids: 1.1.10 sorts after 1.1.9."""
    return tuple(int(part) if part.isdigit() else 0 for part in cis_id.split("."))


def _text(elem: ET.Element | None) -> str:
    return " ".join((elem.text or "").split()) if elem is not None else ""


def _rule(elem: ET.Element) -> RuleInfo:
    cis = sorted(
        {
            (ref.text or "").strip()
            for ref in elem.findall(f"{X}reference")
            if (ref.get("href") or "").startswith(CIS_BENCHMARK_HREF_PREFIX) and ref.text
        },
        key=cis_sort_key,
    )
    systems = {fix.get("system") for fix in elem.findall(f"{X}fix")}
    return RuleInfo(
        rule_id=elem.get("id", ""),
        title=_text(elem.find(f"{X}title")),
        cis_ids=tuple(cis),
        has_bash_fix=FIX_BASH in systems,
        has_ansible_fix=FIX_ANSIBLE in systems,
    )


def _profile(elem: ET.Element) -> ProfileInfo:
    return ProfileInfo(
        profile_id=elem.get("id", ""),
        title=_text(elem.find(f"{X}title")),
        selected=tuple(
            s.get("idref", "") for s in elem.findall(f"{X}select") if s.get("selected") == "true"
        ),
        refine_values=tuple(
            (rv.get("idref", ""), rv.get("selector", "")) for rv in elem.findall(f"{X}refine-value")
        ),
    )


def load_benchmark(path: Path) -> Benchmark:
    """Parse the single XCCDF Benchmark of an SSG datastream."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise FactoryError(f"{path}: cannot read SCAP datastream: {exc}") from exc
    benchmarks = list(root.iter(f"{X}Benchmark"))
    if len(benchmarks) != 1:
        raise FactoryError(
            f"{path}: expected exactly one XCCDF 1.2 Benchmark, found {len(benchmarks)}"
        )
    bench = benchmarks[0]
    status = bench.find(f"{X}status")
    values = {
        v.get("id", ""): frozenset(
            s for s in (opt.get("selector") for opt in v.findall(f"{X}value")) if s is not None
        )
        for v in bench.iter(f"{X}Value")
    }
    rules = {r.rule_id: r for r in map(_rule, bench.iter(f"{X}Rule"))}
    profiles = {p.profile_id: p for p in map(_profile, bench.iter(f"{X}Profile"))}
    return Benchmark(
        path=path,
        benchmark_id=bench.get("id", ""),
        version=_text(bench.find(f"{X}version")),
        status_date=(status.get("date", "") if status is not None else ""),
        rules=rules,
        values=values,
        profiles=profiles,
    )


def unusable_rule_reason(
    short: str, source: Benchmark, target: Benchmark, selected: frozenset[str]
) -> str | None:
    """Why a rule named in our data (waiver, script header) cannot be used, or None if it can."""
    rid = full_rule_id(short)
    if rid not in source.rules and rid not in target.rules:
        return f"rule {short} does not exist in {source.path.name} or {target.path.name}"
    if rid not in selected:
        return f"rule {short} is not selected by the source profile (no effect)"
    return None
