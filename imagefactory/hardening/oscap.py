"""Run oscap on the tailoring: parse check and offline fix generation, failing on its warnings."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from imagefactory.errors import FactoryError, MissingToolError, ToolError
from imagefactory.util.fsutil import write_atomic
from imagefactory.util.tools import child_env

RULE_PREFIX = "xccdf_org.ssgproject.content_rule_"
OSCAP_INSTALL = "apt-get install openscap-scanner / dnf install openscap-scanner"
# oscap only warns (exit 0) for a tailoring select that names an unknown rule; we make it fatal.
SELECTOR_MISSING_RE = re.compile(r"Selector ID\s*\(?[^)]*\)?\s*does not exist")
FIX_BLOCK_RE = re.compile(r"^# BEGIN fix \(\d+ / (\d+)\)", re.MULTILINE)
MISSING_FIX_MARK = "FIX FOR THIS RULE"


@dataclass(frozen=True)
class FixOutput:
    """A generated fix file and what it contains."""

    fix_type: str
    path: Path
    lines: int
    fix_blocks: int
    missing_fix_rules: tuple[str, ...]


def oscap_binary() -> str:
    found = shutil.which("oscap")
    if found is None:
        raise MissingToolError("oscap", OSCAP_INSTALL)
    return found


def run_oscap(args: Sequence[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run oscap; any non-zero exit or a 'Selector ID ... does not exist' warning is an error."""
    argv = [oscap_binary(), *args]
    env = child_env({"LC_ALL": "C"})
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ToolError(argv, -1, f"timed out after {timeout:.0f}s") from exc
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise ToolError(argv, proc.returncode, "\n".join(output.splitlines()[-15:]))
    bad = [line for line in output.splitlines() if SELECTOR_MISSING_RE.search(line)]
    if bad:
        raise ToolError(
            argv,
            proc.returncode,
            "\n".join(bad[:20]),
            hint="the tailoring names rules unknown to OL8",
        )
    return proc


def oscap_version() -> str:
    first = run_oscap(["--version"]).stdout.splitlines()[0]
    return first.split(")")[-1].strip() if ")" in first else first.strip()


def check_tailoring_info(tailoring: Path, profile_ids: Sequence[str]) -> str:
    """`oscap info` must see an XCCDF Tailoring that lists every profile we wrote."""
    out = run_oscap(["info", str(tailoring)]).stdout
    if "XCCDF Tailoring" not in out:
        raise FactoryError(f"{tailoring}: oscap info does not see an XCCDF Tailoring:\n{out}")
    absent = [p for p in profile_ids if p not in out]
    if absent:
        raise FactoryError(f"{tailoring}: oscap info does not list profiles {', '.join(absent)}")
    return out


def generate_fix(
    fix_type: str,
    datastream: Path,
    tailoring: Path,
    profile_id: str,
    output: Path,
    rules: Sequence[str] = (),
) -> FixOutput:
    """`oscap xccdf generate fix` offline; written to a temp name, renamed when complete.

    For ansible, `rules` (full ids) are matched against the task tags to count covered rules.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".fix-") as tmp:
        scratch = Path(tmp) / output.name
        run_oscap(
            [
                "xccdf", "generate", "fix",
                "--fix-type", fix_type,
                "--tailoring-file", str(tailoring),
                "--profile", profile_id,
                "--output", str(scratch),
                str(datastream),
            ]
        )  # fmt: skip
        text = scratch.read_text(encoding="utf-8")
    write_atomic(output, text, mode=0o755 if fix_type == "bash" else 0o644)
    if fix_type == "ansible":
        tagged = _ansible_tagged_rules(text, rules)
        missing = tuple(sorted(set(rules) - tagged))
        return FixOutput(fix_type, output, text.count("\n"), len(tagged), missing)
    blocks = FIX_BLOCK_RE.findall(text)
    return FixOutput(fix_type, output, text.count("\n"), len(blocks), _missing_fix_rules(text))


def _ansible_tagged_rules(text: str, rules: Sequence[str]) -> set[str]:
    """SSG tags every task with its rule's short id; a rule with no tagged task has no fix."""
    tags = {line.strip()[2:] for line in text.splitlines() if line.strip().startswith("- ")}
    return {rule for rule in rules if rule.removeprefix(RULE_PREFIX) in tags}


def _missing_fix_rules(text: str) -> tuple[str, ...]:
    """Rule ids whose bash block says SSG has no fix for them."""
    rules: list[str] = []
    current = ""
    for line in text.splitlines():
        if line.startswith("# BEGIN fix"):
            current = line.rsplit("'", 2)[-2] if line.count("'") >= 2 else ""
        elif MISSING_FIX_MARK in line and current:
            rules.append(current)
    return tuple(sorted(set(rules)))
