"""Waivers: rules (or CIS items) we deliberately do not remediate with SSG, each with a reason."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from imagefactory.errors import ConfigError, Problem
from imagefactory.hardening.datastream import Benchmark, full_rule_id, unusable_rule_reason

CIS_ID_RE = re.compile(r"^\d+(\.\d+)*$")
RULE_ID_RE = re.compile(r"^[a-z0-9_]+$")
WAIVER_FIELDS = frozenset({"rule", "cis", "kind", "reason"})


@dataclass(frozen=True)
class WaiverKind:
    """What a waiver kind means for the remediation pass and for the verify gate."""

    name: str
    meaning: str
    deselect_from_remediation: bool
    tolerate_scan_failure: bool
    needs_rule: bool


KINDS: dict[str, WaiverKind] = {
    k.name: k
    for k in (
        WaiverKind("kickstart", "done at install time by the kickstart", True, False, True),
        WaiverKind("seal", "applied during seal, after the build user is gone", True, False, True),
        WaiverKind("check_only", "SSG has no fix; the verify scan checks it", False, False, True),
        WaiverKind(
            "exception", "accepted deviation; a scan failure is tolerated", True, True, True
        ),
        WaiverKind("manual", "CIS manual/organisational item, no rule to run", False, True, False),
    )
}


@dataclass(frozen=True)
class Waiver:
    """One entry of waivers.yaml. `rule` is the short SSG rule id or empty for CIS-only items."""

    index: int
    rule: str
    cis: str
    kind: str
    reason: str

    @property
    def semantics(self) -> WaiverKind:
        return KINDS[self.kind]

    @property
    def full_rule(self) -> str:
        return full_rule_id(self.rule) if self.rule else ""


def _str(entry: dict[str, Any], key: str) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    return str(value).strip() if isinstance(value, str | int | float) else None


def _parse_entry(entry: Any, index: int, file: str, problems: list[Problem]) -> Waiver | None:
    path = f"waivers[{index}]"
    if not isinstance(entry, dict):
        problems.append(Problem(file, path, "must be a mapping with kind, reason and rule or cis"))
        return None
    before = len(problems)
    for key in sorted(set(entry) - WAIVER_FIELDS):
        problems.append(
            Problem(
                file,
                f"{path}.{key}",
                "unknown field",
                "allowed: " + ", ".join(sorted(WAIVER_FIELDS)),
            )
        )
    rule = _str(entry, "rule") or ""
    cis = _str(entry, "cis") or ""
    kind = _str(entry, "kind") or ""
    reason = _str(entry, "reason") or ""
    if rule and not RULE_ID_RE.match(rule):
        problems.append(
            Problem(
                file,
                f"{path}.rule",
                f"{rule!r} is not a short SSG rule id",
                "e.g. aide_build_database",
            )
        )
    if cis and not CIS_ID_RE.match(cis):
        problems.append(
            Problem(
                file, f"{path}.cis", f"{cis!r} is not a dotted CIS id", 'quote it: cis: "1.2.1"'
            )
        )
    if kind not in KINDS:
        problems.append(
            Problem(
                file,
                f"{path}.kind",
                f"{kind or 'missing'!s} is not a waiver kind",
                "one of: " + ", ".join(KINDS),
            )
        )
    elif KINDS[kind].needs_rule and not rule:
        problems.append(Problem(file, f"{path}.rule", f"kind {kind} needs a rule"))
    elif not KINDS[kind].needs_rule and not cis:
        problems.append(Problem(file, f"{path}.cis", f"kind {kind} needs a CIS id"))
    if not rule and not cis:
        problems.append(Problem(file, f"{path}.rule", "give a rule, a cis id, or both"))
    if len(reason) < 10:
        problems.append(
            Problem(file, f"{path}.reason", "a reason (at least 10 characters) is required")
        )
    if len(problems) > before:
        return None
    return Waiver(index=index, rule=rule, cis=cis, kind=kind, reason=reason)


def parse_waivers(doc: Any, file: str) -> tuple[Waiver, ...]:
    """Validate the YAML document's shape; every problem is reported with file and field."""
    if not isinstance(doc, dict) or not isinstance(doc.get("waivers"), list):
        raise ConfigError(
            [Problem(file, "waivers", "must be a list under the top-level key 'waivers'")]
        )
    problems: list[Problem] = []
    problems += [
        Problem(file, key, "unknown top-level field") for key in sorted(set(doc) - {"waivers"})
    ]
    waivers: list[Waiver] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(doc["waivers"]):
        waiver = _parse_entry(entry, index, file, problems)
        if waiver is None:
            continue
        key = waiver.rule or f"cis:{waiver.cis}"
        if key in seen:
            problems.append(
                Problem(file, f"waivers[{index}]", f"duplicate of waivers[{seen[key]}] ({key})")
            )
        seen[key] = index
        waivers.append(waiver)
    if problems:
        raise ConfigError(problems)
    return tuple(waivers)


def load_waivers(path: Path) -> tuple[Waiver, ...]:
    """Read and shape-check hardening/waivers.yaml."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError([Problem(str(path), "", f"cannot read YAML: {exc}")]) from exc
    return parse_waivers(doc, str(path))


def check_waivers_against(
    waivers: Sequence[Waiver],
    file: str,
    source: Benchmark,
    target: Benchmark,
    selected: Iterable[str],
) -> None:
    """A waiver must name a rule that exists and that the source profile selects."""
    chosen = frozenset(selected)
    problems: list[Problem] = []
    for w in waivers:
        if not w.rule:
            continue
        rid = w.full_rule
        reason = unusable_rule_reason(w.rule, source, target, chosen)
        if reason is not None:
            problems.append(Problem(file, f"waivers[{w.index}].rule", reason))
        elif w.kind == "check_only" and rid in target.rules and target.rules[rid].has_bash_fix:
            message = f"rule {w.rule} has an SSG bash fix, so check_only is wrong"
            problems.append(Problem(file, f"waivers[{w.index}].kind", message))
        if w.cis and rid in source.rules and w.cis not in source.rules[rid].cis_ids:
            known = ", ".join(source.rules[rid].cis_ids) or "none"
            message = f"rule {w.rule} references CIS {known}, not {w.cis}"
            problems.append(Problem(file, f"waivers[{w.index}].cis", message))
    if problems:
        raise ConfigError(problems)


def waiver_table_markdown(waivers: Sequence[Waiver]) -> str:
    """The README's waiver table, generated so it cannot drift from waivers.yaml."""
    rows = ["| Rule / CIS item | Kind | Reason |", "| --- | --- | --- |"]
    for w in waivers:
        what = f"`{w.rule}`" if w.rule else f"CIS {w.cis}"
        rows.append(f"| {what} | {w.kind} | {w.reason.replace('|', '/')} |")
    return "\n".join(rows) + "\n"
