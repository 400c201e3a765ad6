"""Coverage of CIS Level 1 Server items: SSG rule, our own script, waiver, or not covered.

CIS ids come from the SSG source rules' cisecurity.org benchmark references, plus the ids our
scripts and CIS-only waivers name (items no SSG rule implements).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from imagefactory.hardening.datastream import Benchmark, cis_sort_key, short_rule_id
from imagefactory.hardening.scripts import OwnScript
from imagefactory.hardening.tailoring import Derivation
from imagefactory.hardening.waivers import Waiver

STATUSES = ("ssg", "script", "waiver", "manual", "not_covered")


@dataclass(frozen=True)
class RuleCoverage:
    """How one source-profile rule is handled for OL8."""

    rule: str
    disposition: str  # ssg_fix | ssg_check | script | waiver | uncovered
    in_ol8: bool
    detail: str


@dataclass(frozen=True)
class CisItem:
    """One CIS recommendation id and everything that covers it."""

    cis_id: str
    status: str
    rules: tuple[RuleCoverage, ...]
    scripts: tuple[str, ...]
    waivers: tuple[str, ...]


@dataclass(frozen=True)
class CoverageReport:
    """Per-CIS-id coverage plus counts."""

    items: tuple[CisItem, ...]

    @property
    def counts(self) -> dict[str, int]:
        found = Counter(item.status for item in self.items)
        counts = {status: found.get(status, 0) for status in STATUSES}
        counts["total"] = len(self.items)
        counts["automatable"] = counts["total"] - counts["manual"]
        return counts

    @property
    def rule_counts(self) -> dict[str, int]:
        seen = {r.rule: r.disposition for item in self.items for r in item.rules}
        return dict(sorted(Counter(seen.values()).items()))

    @property
    def not_covered(self) -> tuple[str, ...]:
        return tuple(i.cis_id for i in self.items if i.status == "not_covered")

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "rule_counts": self.rule_counts,
            "not_covered": list(self.not_covered),
            "items": [
                {
                    "cis_id": i.cis_id,
                    "status": i.status,
                    "rules": [
                        {
                            "rule": r.rule,
                            "disposition": r.disposition,
                            "in_ol8": r.in_ol8,
                            "detail": r.detail,
                        }
                        for r in i.rules
                    ],
                    "scripts": list(i.scripts),
                    "waivers": list(i.waivers),
                }
                for i in self.items
            ],
        }


def _rule_coverage(
    rule: str,
    derivation: Derivation,
    target: Benchmark,
    waived: dict[str, Waiver],
    scripted: dict[str, list[str]],
) -> RuleCoverage:
    in_ol8 = rule in target.rules
    short = short_rule_id(rule)
    if rule in scripted:
        return RuleCoverage(short, "script", in_ol8, ", ".join(scripted[rule]))
    waiver = waived.get(rule)
    if waiver is not None and waiver.kind == "check_only":
        return RuleCoverage(short, "ssg_check", in_ol8, waiver.reason)
    if waiver is not None:
        return RuleCoverage(short, "waiver", in_ol8, f"{waiver.kind}: {waiver.reason}")
    if in_ol8 and rule not in derivation.kept_without_bash_fix:
        return RuleCoverage(short, "ssg_fix", in_ol8, "SSG bash fix in the remediation profile")
    why = "missing in OL8 content" if not in_ol8 else "SSG has no bash fix"
    return RuleCoverage(short, "uncovered", in_ol8, why)


def _status(
    rules: Sequence[RuleCoverage], scripts: Sequence[str], waivers: Sequence[Waiver]
) -> str:
    if any(r.disposition == "uncovered" for r in rules) and not scripts:
        return "not_covered"
    if any(r.disposition in ("ssg_fix", "ssg_check") for r in rules):
        return "ssg"
    if scripts or any(r.disposition == "script" for r in rules):
        return "script"
    if any(r.disposition == "waiver" for r in rules) or any(w.kind != "manual" for w in waivers):
        return "waiver"
    if waivers:
        return "manual"
    return "not_covered"


def coverage_report(
    source: Benchmark,
    target: Benchmark,
    derivation: Derivation,
    waivers: Sequence[Waiver],
    scripts: Sequence[OwnScript],
) -> CoverageReport:
    """Map every CIS id the source profile, our scripts or our waivers name to its coverage."""
    waived = {w.full_rule: w for w in waivers if w.rule}
    scripted: dict[str, list[str]] = {}
    for script in scripts:
        for rule in script.full_rules:
            scripted.setdefault(rule, []).append(script.name)
    by_cis: dict[str, list[RuleCoverage]] = {}
    for rule in derivation.source_selected:
        coverage = _rule_coverage(rule, derivation, target, waived, scripted)
        for cis_id in source.rules[rule].cis_ids or ("unreferenced",):
            by_cis.setdefault(cis_id, []).append(coverage)
    for script in scripts:
        by_cis.setdefault(script.cis_id, [])
    for waiver in waivers:
        if waiver.cis:
            by_cis.setdefault(waiver.cis, [])
    items = []
    for cis_id in sorted(by_cis, key=cis_sort_key):
        own = tuple(s.name for s in scripts if s.cis_id == cis_id)
        cis_waivers = [
            w for w in waivers if w.cis == cis_id or (w.rule and cis_id in _cis_of(source, w))
        ]
        rules = tuple(sorted(by_cis[cis_id], key=lambda r: r.rule))
        items.append(
            CisItem(
                cis_id=cis_id,
                status=_status(rules, own, cis_waivers),
                rules=rules,
                scripts=own,
                waivers=tuple(f"{w.rule or 'cis ' + w.cis} ({w.kind})" for w in cis_waivers),
            )
        )
    return CoverageReport(tuple(items))


def _cis_of(source: Benchmark, waiver: Waiver) -> tuple[str, ...]:
    info = source.rules.get(waiver.full_rule)
    return info.cis_ids if info is not None else ()


def render_text(report: CoverageReport) -> str:
    """A readable fixed-width table plus the counts."""
    rows = [("CIS ID", "STATUS", "SSG RULES", "OWN SCRIPTS / WAIVERS")]
    for item in report.items:
        ssg = [r.rule for r in item.rules if r.disposition in ("ssg_fix", "ssg_check")]
        other = [*item.scripts, *item.waivers]
        other += [f"{r.rule} (uncovered)" for r in item.rules if r.disposition == "uncovered"]
        rows.append((item.cis_id, item.status, " ".join(ssg) or "-", " ".join(other) or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}  | {r[3]}" for r in rows]
    counts = report.counts
    summary = ", ".join(f"{k}={counts[k]}" for k in (*STATUSES, "automatable", "total"))
    rules = ", ".join(f"{k}={v}" for k, v in report.rule_counts.items())
    return "\n".join([*lines, "", f"CIS items: {summary}", f"source rules: {rules}", ""])
