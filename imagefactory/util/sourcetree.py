"""Which files of a directory are layer inputs: what git would commit, never what it ignores.

A layer's key and the files sent to its build VM must come from the same set, and that set
must be the same on every host that checks out one commit, whether or not the test suite or
an editor left tool caches (`.ruff_cache/`, `__pycache__/`) beside the sources. So the set
is git's: tracked files with their working-tree content, plus untracked files that no
.gitignore rule covers. A directory outside any git checkout (a release tarball) has no such
rule; there every file counts except `__pycache__`, and `hashing_rule` says so.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from imagefactory.errors import FactoryError
from imagefactory.util.tools import child_env

# Outside a checkout the only tool cache we can name for sure; everything else counts.
_NO_GIT_SKIPPED = "__pycache__"


@dataclass(frozen=True)
class SourceFile:
    """One file of a directory input: its path relative to the directory, and on disk."""

    relative: str
    path: Path


def in_checkout(directory: Path) -> bool:
    """True when `directory` lies inside a git work tree and git can say so."""
    if shutil.which("git") is None:
        return False
    done = subprocess.run(
        ["git", "-C", str(directory), "rev-parse", "--is-inside-work-tree"],
        capture_output=True,
        text=True,
        check=False,
        env=child_env(),
    )
    if "dubious ownership" in done.stderr:
        # Treating an untrusted checkout as "no git" would silently change every key.
        raise FactoryError(
            f"{directory}: git refuses this checkout (owned by another user); "
            "hint: git config --global --add safe.directory <checkout>"
        )
    return done.returncode == 0 and done.stdout.strip() == "true"


def source_files(directory: Path) -> list[SourceFile]:
    """The files under `directory` that are inputs, sorted by relative path."""
    if in_checkout(directory):
        names = _git_files(directory)
    else:
        names = [
            p.relative_to(directory).as_posix()
            for p in directory.rglob("*")
            if p.is_file() and _NO_GIT_SKIPPED not in p.relative_to(directory).parts
        ]
    found = [SourceFile(name, directory / name) for name in names]
    # A tracked file deleted in the work tree, or a submodule, is no file to hash or send.
    return sorted((f for f in found if f.path.is_file()), key=lambda f: f.relative)


def copy_sources(directory: Path, target: Path) -> None:
    """Copy the input files of `directory` to `target` (created), modes kept."""
    target.mkdir(parents=True)
    for item in source_files(directory):
        dest = target / item.relative
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(item.path, dest)


def hashing_rule(directory: Path) -> str:
    """One line saying which files of a directory input count, for plan and doctor."""
    if in_checkout(directory):
        return "files git would commit (tracked, and untracked ones no .gitignore rule covers)"
    return (
        f"every file except {_NO_GIT_SKIPPED}/ ({directory} is not in a git checkout: tool "
        "caches and other ignored files change layer keys here)"
    )


def _git_files(directory: Path) -> list[str]:
    done = subprocess.run(
        [
            "git",
            "-C",
            str(directory),
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
            ".",
        ],
        capture_output=True,
        check=False,
        env=child_env(),
    )
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise FactoryError(
            f"{directory}: git ls-files failed: {reason[-1] if reason else done.returncode}"
        )
    # Paths come relative to `directory`, unquoted with -z; a name appears once per stage.
    return sorted({n for n in done.stdout.decode("utf-8", "surrogateescape").split("\0") if n})
