"""The local layer cache: one directory per layer key, committed by rename, locked per key.

<root>/layers/<key>/   image (layer.qcow2, or image.qcow2 for sealed layers),
                       inputs.json (what the key was computed from), layer.json (facts)
<root>/tmp/<key>.*/    build directories in progress (removed on failure or a stop; a build
                       removes those of dead builds: nobody holds their key's lock)
<root>/locks/<key>.lock
<root>/refs/<family>/<layer>   key last built or used for that family's layer
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imagefactory.errors import CacheError
from imagefactory.util.fsutil import write_atomic, write_json_atomic


class LayerCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def entry(self, key: str) -> Path:
        return self.root / "layers" / key

    def has(self, key: str) -> bool:
        return (self.entry(key) / "layer.json").is_file()

    def facts(self, key: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.entry(key) / "layer.json").read_text())
        return data

    def image(self, key: str) -> Path:
        return self.entry(key) / str(self.facts(key)["image"])

    def inputs(self, key: str) -> dict[str, Any] | None:
        path = self.entry(key) / "inputs.json"
        if not path.is_file():
            return None
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    @contextlib.contextmanager
    def _lock_file(self, key: str, wait: bool) -> Iterator[bool]:
        """The key's lock file, locked exclusively (True); when another process holds it,
        waited for (wait) or not taken (False)."""
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        with (locks / f"{key}.lock").open("a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    yield False
                    return
                print(
                    f"waiting for another build of layer {key[:12]} to finish...", file=sys.stderr
                )
                fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Hold an exclusive lock on one key, so two builds never produce it at once."""
        with self._lock_file(key, wait=True):
            yield

    @contextlib.contextmanager
    def try_lock(self, key: str) -> Iterator[bool]:
        """The key's lock if nobody holds it (True), else False at once."""
        with self._lock_file(key, wait=False) as held:
            yield held

    def clean_stale_staging(self) -> list[Path]:
        """Remove build directories whose build is gone (killed: nobody holds the key's lock,
        which a build holds for as long as its directory exists). Returns what was removed."""
        removed = []
        tmp_root = self.root / "tmp"
        for tmp in sorted(tmp_root.iterdir()) if tmp_root.is_dir() else []:
            key = tmp.name.split(".", 1)[0]
            if len(key) != 64:
                continue
            with self.try_lock(key) as free:
                if free:
                    shutil.rmtree(tmp, ignore_errors=True)
                    removed.append(tmp)
        return removed

    @contextlib.contextmanager
    def staging(self, key: str) -> Iterator[Path]:
        """A fresh temp directory for building `key` (under its lock); removed unless committed."""
        tmp_root = self.root / "tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=tmp_root))
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def commit(self, key: str, built: Path, inputs: dict[str, Any], facts: dict[str, Any]) -> Path:
        """Move a finished build into place. Facts are written last: they mark it complete."""
        if self.has(key):
            raise CacheError(f"layer {key} is already in the cache")
        write_json_atomic(built / "inputs.json", inputs)
        write_json_atomic(built / "layer.json", facts)
        dest = self.entry(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Facts are written before the rename, so a directory here without them was never
        # committed (a removal cut short, or a hand edit): it holds nothing to keep.
        if dest.exists():
            shutil.rmtree(dest)
        os.rename(built, dest)
        return dest

    def layer_keys(self) -> list[str]:
        """Every committed layer's key."""
        layers = self.root / "layers"
        return (
            sorted(p.name for p in layers.iterdir() if self.has(p.name)) if layers.is_dir() else []
        )

    def built_on(self, key: str, parent: str) -> bool:
        """`key` was built on the bytes `parent` has now (its record holds their sha256)."""
        return on_parent_bytes(self.facts(key).get("parent_sha256"), self.sha256(parent))

    def sha256(self, key: str) -> str | None:
        """The sha256 of the layer's image, as its record holds it."""
        found = self.facts(key).get("sha256")
        return str(found) if found is not None else None

    def remove(self, key: str) -> None:
        """Take one layer out of the cache (the caller holds its lock): its record first, so a
        removal cut short never leaves something that looks complete."""
        entry = self.entry(key)
        if not entry.exists():
            return
        doomed = self.root / "tmp" / f"{key}.removed"
        doomed.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(doomed, ignore_errors=True)
        os.rename(entry, doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    def refs(self) -> dict[str, dict[str, str]]:
        """family -> layer -> key of its last build."""
        out: dict[str, dict[str, str]] = {}
        refs = self.root / "refs"
        for path in sorted(refs.glob("*/*")) if refs.is_dir() else []:
            out.setdefault(path.parent.name, {})[path.name] = path.read_text().strip()
        return out

    def ref(self, family: str, layer: str) -> str | None:
        path = self.root / "refs" / family / layer
        return path.read_text().strip() if path.is_file() else None

    def set_ref(self, family: str, layer: str, key: str) -> None:
        write_atomic(self.root / "refs" / family / layer, key + "\n")


def on_parent_bytes(recorded: object, parent_sha256: object) -> bool:
    """The parent-bytes rule, its one home: an overlay is usable only on the exact bytes of
    the parent layer it was built on. `recorded`: the parent sha256 the overlay's record holds;
    `parent_sha256`: that of the parent it would sit on (in this host's cache, or the store's
    copy). A record without it proves nothing, so it is not usable."""
    return recorded is not None and recorded == parent_sha256
