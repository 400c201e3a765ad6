"""packer/scripts/harden/20-apply-own-cis-scripts.sh: IF_CIS_SCRIPTS limits what runs."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from imagefactory.config import load_config

REPO = Path(__file__).resolve().parents[3]
APPLY = REPO / "packer" / "scripts" / "harden" / "20-apply-own-cis-scripts.sh"
NAMES = ("cis-1.1-first.sh", "cis-2.2-second.sh")


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A fake $IF_FILES with two tiny scripts that log their own name to $RAN_LOG."""
    scripts = tmp_path / "files" / "scripts"
    scripts.mkdir(parents=True)
    for name in NAMES:
        (scripts / name).write_text(f'#!/bin/bash\necho {name} >>"$RAN_LOG"\n')
    return tmp_path / "files"


def apply(files: Path, selection: str | None) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    log = files.parent / "ran.log"
    log.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "IF_CIS_SCRIPTS"}
    env |= {"IF_FILES": str(files), "RAN_LOG": str(log)}
    if selection is not None:
        env["IF_CIS_SCRIPTS"] = selection
    proc = subprocess.run(["bash", str(APPLY)], env=env, capture_output=True, text=True)
    return proc, log.read_text().split() if log.exists() else []


@pytest.mark.parametrize("selection", [None, ""])
def test_unset_or_empty_runs_all_in_file_name_order(files: Path, selection: str | None) -> None:
    proc, ran = apply(files, selection)
    assert proc.returncode == 0, proc.stderr
    assert ran == list(NAMES)
    assert "Running 2 of 2 CIS scripts" in proc.stdout


def test_selection_runs_only_the_named_scripts(files: Path) -> None:
    proc, ran = apply(files, "  cis-2.2-second.sh ")
    assert proc.returncode == 0, proc.stderr
    assert ran == ["cis-2.2-second.sh"]
    assert "Running 1 of 2 CIS scripts" in proc.stdout


def test_selection_keeps_file_name_order(files: Path) -> None:
    _, ran = apply(files, "cis-2.2-second.sh cis-1.1-first.sh")
    assert ran == list(NAMES)


@pytest.mark.parametrize("bad", ["cis-9.9-missing.sh", "lib/cis-lib.sh", "cis-1.1-first"])
def test_unknown_name_fails_before_anything_runs(files: Path, bad: str) -> None:
    proc, ran = apply(files, f"cis-1.1-first.sh {bad}")
    assert proc.returncode != 0
    assert f"IF_CIS_SCRIPTS names '{bad}'" in proc.stderr
    assert ran == []


def test_stand_in_selection_names_real_scripts_each_with_a_spec() -> None:
    """Every script the stand-in harden layer selects exists and has a CIS-id spec that both
    stand-in families run."""
    cfg = load_config(REPO / "standin.yaml")
    names = str(cfg.layers["harden"].variables["IF_CIS_SCRIPTS"]).split()
    existing = {p.name for p in (REPO / "hardening" / "scripts").glob("cis-*.sh")}
    assert names and sorted(set(names) - existing) == []
    for family in ("standin-alpha", "standin-beta"):
        specs = "\n".join(p.read_text() for p in cfg.families[family].specs)
        tests = set(re.findall(r"^def (test_[0-9_]+)_", specs, re.MULTILINE))
        cis_ids = [n.split("-")[1] for n in names]  # cis-<CIS id>-<topic>.sh
        missing = [c for c in cis_ids if "test_" + c.replace(".", "_") not in tests]
        assert missing == [], family
