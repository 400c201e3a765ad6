"""Our own remediation scripts for what SSG's OL8 content lacks or cannot fix.

Each script is `hardening/scripts/cis-<CIS id>-<topic>.sh` and declares in its header:
    # cis: 5.2.1
    # title: <one line>
    # ssg-rules: <short SSG rule ids it stands in for, or "none">
    # env: <VAR=default ... it reads, or "none">
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from imagefactory.errors import ConfigError, Problem
from imagefactory.hardening.datastream import Benchmark, full_rule_id, unusable_rule_reason

NAME_RE = re.compile(r"^cis-(?P<cis>\d+(?:\.\d+)*)-(?P<topic>[a-z0-9]+(?:-[a-z0-9]+)*)\.sh$")
HEADER_RE = re.compile(r"^# (?P<key>cis|title|ssg-rules|env): (?P<value>.+)$")
REQUIRED_HEADERS = ("cis", "title", "ssg-rules", "env")


@dataclass(frozen=True)
class OwnScript:
    """One script and what it declares it covers."""

    path: Path
    cis_id: str
    title: str
    ssg_rules: tuple[str, ...]
    env: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def full_rules(self) -> tuple[str, ...]:
        return tuple(full_rule_id(r) for r in self.ssg_rules)


def _parse(path: Path, problems: list[Problem]) -> OwnScript | None:
    match = NAME_RE.match(path.name)
    if not match:
        problems.append(
            Problem(str(path), "name", "must be cis-<CIS id>-<topic>.sh", "e.g. cis-5.2.1-sshd.sh")
        )
        return None
    lines = path.read_text(encoding="utf-8").splitlines()
    before = len(problems)
    if not lines or lines[0] != "#!/bin/bash":
        problems.append(Problem(str(path), "line 1", "must be #!/bin/bash"))
    if "set -euo pipefail" not in lines[:20]:
        problems.append(Problem(str(path), "header", "needs 'set -euo pipefail' near the top"))
    headers: dict[str, str] = {}
    for line in lines[:20]:
        found = HEADER_RE.match(line)
        if found:
            headers[found["key"]] = found["value"].strip()
    for key in REQUIRED_HEADERS:
        if key not in headers:
            problems.append(Problem(str(path), f"# {key}:", "required header line is missing"))
    if headers.get("cis", match["cis"]) != match["cis"]:
        problems.append(
            Problem(
                str(path), "# cis:", f"{headers['cis']} differs from the file name's {match['cis']}"
            )
        )
    if len(problems) > before:
        return None
    rules = headers["ssg-rules"].split()
    env = headers["env"].split()
    return OwnScript(
        path=path,
        cis_id=match["cis"],
        title=headers["title"],
        ssg_rules=tuple(r for r in rules if r != "none"),
        env=tuple(e for e in env if e != "none"),
    )


def load_scripts(directory: Path) -> tuple[OwnScript, ...]:
    """All cis-*.sh scripts in `directory`, sorted by CIS id, headers validated."""
    problems: list[Problem] = []
    if not directory.is_dir():
        raise ConfigError([Problem(str(directory), "", "scripts directory does not exist")])
    found = [_parse(p, problems) for p in sorted(directory.glob("*.sh"))]
    if problems:
        raise ConfigError(problems)
    return tuple(s for s in found if s is not None)


def check_scripts_against(
    scripts: Sequence[OwnScript], source: Benchmark, target: Benchmark, selected: Iterable[str]
) -> None:
    """Every rule a script names must exist and be selected by the source profile."""
    chosen = frozenset(selected)
    problems = [
        Problem(str(script.path), "# ssg-rules:", reason)
        for script in scripts
        for rule in script.ssg_rules
        if (reason := unusable_rule_reason(rule, source, target, chosen)) is not None
    ]
    if problems:
        raise ConfigError(problems)


def script_table_markdown(scripts: Sequence[OwnScript]) -> str:
    """The README's script table, generated so it cannot drift from the script headers."""
    rows = ["| Script | CIS | Stands in for SSG rules | Env |", "| --- | --- | --- | --- |"]
    for s in scripts:
        rules = " ".join(f"`{r}`" for r in s.ssg_rules) or "-"
        env = " ".join(f"`{e}`" for e in s.env).replace("|", "\\|") or "-"
        rows.append(f"| `{s.name}` | {s.cis_id} | {rules} | {env} |")
    return "\n".join(rows) + "\n"
