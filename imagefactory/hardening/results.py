"""Read an in-guest `oscap xccdf eval` ARF: score, per-rule results, and the waiver gate.

The verify step stores the summary in the image manifest and fails the build on any failing
rule that no waiver tolerates.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagefactory.errors import BuildError, FactoryError
from imagefactory.hardening.datastream import X, short_rule_id
from imagefactory.hardening.waivers import Waiver

FAILING = frozenset({"fail", "error", "unknown"})
EVALUATED = frozenset({"pass", "fail", "error", "unknown", "fixed"})


@dataclass(frozen=True)
class ScanSummary:
    """What the manifest records about one scan."""

    profile: str
    score: float
    score_maximum: float
    counts: dict[str, int]
    failing: tuple[str, ...]
    tolerated: tuple[str, ...]
    pass_rate: float
    cis_pass_rate: float | None

    @property
    def blocking(self) -> tuple[str, ...]:
        allowed = set(self.tolerated)
        return tuple(r for r in self.failing if r not in allowed)

    def to_manifest(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "score": round(self.score, 2),
            "score_maximum": self.score_maximum,
            "counts": dict(sorted(self.counts.items())),
            "pass_rate": round(self.pass_rate, 4),
            "cis_pass_rate": None if self.cis_pass_rate is None else round(self.cis_pass_rate, 4),
            "failing_rules": list(self.failing),
            "waived_failures": [r for r in self.failing if r in set(self.tolerated)],
            "unwaived_failures": list(self.blocking),
        }


def _test_result(arf: Path, profile_id: str) -> ET.Element:
    found: ET.Element | None = None
    try:
        for _, elem in ET.iterparse(arf, events=("end",)):
            if elem.tag == f"{X}TestResult":
                profile = elem.find(f"{X}profile")
                if profile is not None and profile.get("idref") == profile_id:
                    found = elem
                    break
    except (OSError, ET.ParseError) as exc:
        raise FactoryError(f"{arf}: cannot read ARF results: {exc}") from exc
    if found is None:
        raise FactoryError(f"{arf}: no XCCDF TestResult for profile {profile_id}")
    return found


def summarize_scan(
    arf: Path,
    profile_id: str,
    waivers: Sequence[Waiver],
    rule_cis: Mapping[str, Sequence[str]] | None = None,
) -> ScanSummary:
    """Summarize the TestResult of `profile_id` in an ARF; `rule_cis` maps rule -> CIS ids."""
    result = _test_result(arf, profile_id)
    outcomes: dict[str, str] = {}
    for rr in result.findall(f"{X}rule-result"):
        value = rr.find(f"{X}result")
        outcomes[rr.get("idref", "")] = (value.text or "").strip() if value is not None else ""
    score_elem = result.find(f"{X}score")
    if score_elem is None or score_elem.text is None:
        raise FactoryError(f"{arf}: TestResult has no score")
    counts = Counter(v for v in outcomes.values() if v != "notselected")
    failing = tuple(sorted(short_rule_id(r) for r, v in outcomes.items() if v in FAILING))
    tolerated = tuple(
        sorted(w.rule for w in waivers if w.rule and w.semantics.tolerate_scan_failure)
    )
    evaluated = [v for v in outcomes.values() if v in EVALUATED]
    passed = sum(1 for v in evaluated if v not in FAILING)
    return ScanSummary(
        profile=profile_id,
        score=float(score_elem.text),
        score_maximum=float(score_elem.get("maximum", "100")),
        counts=dict(counts),
        failing=failing,
        tolerated=tolerated,
        pass_rate=passed / len(evaluated) if evaluated else 0.0,
        cis_pass_rate=_cis_pass_rate(outcomes, rule_cis) if rule_cis else None,
    )


def _cis_pass_rate(outcomes: Mapping[str, str], rule_cis: Mapping[str, Sequence[str]]) -> float:
    """Share of CIS items whose evaluated rules all pass (items with nothing evaluated skipped)."""
    per_item: dict[str, list[str]] = {}
    for rule, value in outcomes.items():
        if value in EVALUATED:
            for cis_id in rule_cis.get(rule, ()):
                per_item.setdefault(cis_id, []).append(value)
    if not per_item:
        return 0.0
    good = sum(1 for values in per_item.values() if not FAILING.intersection(values))
    return good / len(per_item)


def gate_scan(summary: ScanSummary) -> None:
    """Fail the build when a rule fails that no waiver tolerates."""
    if summary.blocking:
        raise BuildError(
            f"CIS scan ({summary.profile}): {len(summary.blocking)} failing rule(s) without a "
            f"waiver: {', '.join(summary.blocking)} (see the ARF/HTML report in artifacts/)"
        )
