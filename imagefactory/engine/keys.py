"""Layer keys: a sha256 over a canonical description of everything a layer is made from.

The description (the layer's "inputs") is stored beside each cached layer, so when a key is
not found the plan can say which input changed instead of just "stale".
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from imagefactory.util.fsutil import canonical_json, sha256_file

Inputs = dict[str, Any]


def tree_digest(path: Path) -> str:
    """sha256 over a file, or over a directory's relative paths, exec bits and contents."""
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = item.relative_to(path).as_posix()
        if "__pycache__" in rel:
            continue
        executable = "x" if item.stat().st_mode & 0o111 else "-"
        digest.update(f"{rel}\0{executable}\0{sha256_file(item)}\n".encode())
    return digest.hexdigest()


def file_entry(path: Path, root: Path) -> dict[str, str]:
    try:
        shown = path.relative_to(root).as_posix()
    except ValueError:
        shown = str(path)
    return {"path": shown, "sha256": tree_digest(path)}


def layer_key(inputs: Inputs) -> str:
    return hashlib.sha256(canonical_json(inputs).encode()).hexdigest()


def explain(old: Inputs | None, new: Inputs) -> list[str]:
    """Human reasons why `new` differs from `old` (both input documents of the same layer)."""
    if old is None:
        return ["never built"]
    reasons: list[str] = []
    if old.get("parent") != new.get("parent"):
        reasons.append("parent layer changed")
    reasons += _files_changed(old.get("template"), new.get("template"))
    if bool(old.get("reboot")) != bool(new.get("reboot")):
        reasons.append(f"reboot {'added' if new.get('reboot') else 'removed'}")
    else:
        reasons += _files_changed(old.get("reboot"), new.get("reboot"))
    for kind in ("scripts", "files", "source_files"):
        reasons += _list_changed(old.get(kind) or [], new.get(kind) or [], kind)
    for kind in ("variables", "source", "tools"):
        reasons += _dict_changed(old.get(kind) or {}, new.get(kind) or {}, kind)
    reasons += _repos_changed(old.get("repo_state") or [], new.get("repo_state") or [])
    for scalar in ("epoch", "family", "build_key", "build_user", "disk_size_mib", "compression"):
        if old.get(scalar) != new.get(scalar):
            reasons.append(f"{scalar} changed: {old.get(scalar)!r} -> {new.get(scalar)!r}")
    if not reasons and old != new:
        reasons.append("layer definition changed")
    return reasons


def _files_changed(old: dict[str, str] | None, new: dict[str, str] | None) -> list[str]:
    if old == new:
        return []
    if old and new and old["path"] == new["path"]:
        return [f"{new['path']} changed"]
    return [f"template changed: {(old or {}).get('path')} -> {(new or {}).get('path')}"]


def _list_changed(old: list[dict[str, str]], new: list[dict[str, str]], kind: str) -> list[str]:
    if old == new:
        return []
    before = {e["path"]: e["sha256"] for e in old}
    after = {e["path"]: e["sha256"] for e in new}
    out = [f"{p} changed" for p in after if p in before and before[p] != after[p]]
    out += [f"{kind}: {p} added" for p in after if p not in before]
    out += [f"{kind}: {p} removed" for p in before if p not in after]
    if not out:
        out.append(f"{kind}: order changed")
    return out


def _repos_changed(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    """Reasons from `epoch_from` repository states: new metadata, or a URL added/removed."""
    if old == new:
        return []
    before = {r["url"]: r for r in old}
    after = {r["url"]: r for r in new}
    out = []
    for url, now in after.items():
        was = before.get(url)
        if was is None:
            out.append(f"repo state: {url} added")
        elif was.get("revision") != now.get("revision"):
            out.append(
                f"repo state changed: {url} revision {was.get('revision')} -> {now.get('revision')}"
            )
        elif was.get("sha256") != now.get("sha256"):
            out.append(
                f"repo state changed: {url} repomd.xml sha256 "
                f"{str(was.get('sha256'))[:12]} -> {str(now.get('sha256'))[:12]}"
            )
    out += [f"repo state: {url} removed" for url in before if url not in after]
    if not out:
        out.append("repo state: order changed")
    return out


def _dict_changed(old: dict[str, Any], new: dict[str, Any], kind: str) -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        if old.get(k) != new.get(k):
            out.append(f"{kind}: {k} {old.get(k)!r} -> {new.get(k)!r}")
    return out
