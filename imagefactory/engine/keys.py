"""Layer keys: a sha256 over a canonical description of everything a layer is made from.

The description (the layer's "inputs") is stored beside each cached layer, so when a key is
not found the plan can say which input changed instead of just "stale".
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from imagefactory.util.fsutil import canonical_json, sha256_file
from imagefactory.util.sourcetree import source_files

Inputs = dict[str, Any]


def tree_digest(path: Path) -> str:
    """sha256 over a file, or over a directory's input files: relative paths, exec bits and
    contents of what git would commit there (sourcetree.source_files)."""
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for item in source_files(path):
        executable = "x" if item.path.stat().st_mode & 0o111 else "-"
        digest.update(f"{item.relative}\0{executable}\0{sha256_file(item.path)}\n".encode())
    return digest.hexdigest()


def file_entry(path: Path, root: Path) -> dict[str, str]:
    try:
        shown = path.relative_to(root).as_posix()
    except ValueError:
        shown = str(path)
    return {"path": shown, "sha256": tree_digest(path)}


def layer_key(inputs: Inputs) -> str:
    return hashlib.sha256(canonical_json(inputs).encode()).hexdigest()


# Only the order reasons are listed in; which fields exist comes from the documents.
_REASON_ORDER = ("parent", "template", "reboot", "scripts", "files", "source_files")


def explain(old: Inputs | None, new: Inputs) -> list[str]:
    """Human reasons why `new` differs from `old` (both input documents of the same layer).

    Derived from the documents themselves: every field that differs gives a reason worded by
    the shape of its value (a file entry, a list of them, a mapping, a scalar), so a field
    added to the inputs is explained without a change here.
    """
    if old is None:
        return ["never built"]
    fields = sorted(set(old) | set(new), key=lambda f: (f not in _REASON_ORDER, _order(f), f))
    reasons: list[str] = []
    for name in fields:
        before, after = old.get(name), new.get(name)
        if before != after:
            reasons += _field_changed(name, before, after)
    if not reasons and old != new:
        reasons.append("layer definition changed")
    return reasons


def _order(name: str) -> int:
    return _REASON_ORDER.index(name) if name in _REASON_ORDER else 0


def _is_file_entry(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"path", "sha256"}


def _field_changed(name: str, old: Any, new: Any) -> list[str]:
    if name == "parent":
        return ["parent layer changed"]
    if name == "repo_state":
        return _repos_changed(old or [], new or [])
    if _is_file_entry(old) or _is_file_entry(new):
        return _files_changed(name, old, new)
    if isinstance(old or new, list) and all(_is_file_entry(e) for e in (old or []) + (new or [])):
        return _list_changed(old or [], new or [], name)
    if isinstance(old, dict) or isinstance(new, dict):
        return _dict_changed(old or {}, new or {}, name)
    return [f"{name} changed: {old!r} -> {new!r}"]


def _files_changed(name: str, old: dict[str, str] | None, new: dict[str, str] | None) -> list[str]:
    if old is None or new is None:
        return [f"{name} {'added' if new else 'removed'}"]
    if old["path"] == new["path"]:
        return [f"{new['path']} changed"]
    return [f"{name} changed: {old['path']} -> {new['path']}"]


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
