"""The catalogue as files: written to a directory (made aside, renamed into place) or uploaded
to the store under catalogue/ (catalogue/index.html is the entry)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from imagefactory.errors import FactoryError
from imagefactory.report.catalogue.html import family_page, file_path, render_family, render_index
from imagefactory.report.catalogue.model import Catalogue
from imagefactory.store import api

STORE_PREFIX = "catalogue/"
ENTRY = "index.html"
# Written into a site directory so that a later run knows it may replace that directory.
MARKER = ".imagefactory-catalogue"


def site_files(cat: Catalogue) -> dict[str, bytes]:
    """Relative path -> bytes of every file of the site: pages and the reports they link to."""
    files = {ENTRY: render_index(cat).encode()}
    for fam in cat.families:
        files[family_page(fam.name)] = render_family(cat, fam).encode()
        for v in fam.versions:
            for f in v.files:
                if f.data is not None:
                    files[file_path(v, f)] = f.data
    return files


def write_site(files: dict[str, bytes], out: Path) -> Path:
    """Write the site beside `out`, then rename it to `out`, replacing an earlier site there
    (never a directory this did not write: one without the marker is refused)."""
    out = out.absolute()
    if out.exists() and not out.is_dir():
        raise FactoryError(f"--out={out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise FactoryError(
            f"--out={out}: a directory that holds something other than a catalogue "
            f"(no {MARKER}); not replacing it (hint: give a new or empty directory)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for rel, data in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        (tmp / MARKER).write_text("made by `invoke catalogue`; the next run replaces this\n")
        if out.exists():
            out.rename(old)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            old.rename(out)  # put the earlier site back
        raise
    shutil.rmtree(old, ignore_errors=True)
    return out


def upload_site(backend: api.StoreBackend, files: dict[str, bytes]) -> int:
    """Put the site under catalogue/, the entry page last (a reader finds it complete), then
    remove what an earlier upload left that this one does not have; returns files written."""
    for rel, data in sorted(files.items()):
        if rel != ENTRY:
            backend.put_bytes(STORE_PREFIX + rel, data)
    backend.put_bytes(STORE_PREFIX + ENTRY, files[ENTRY])
    keep = {STORE_PREFIX + rel for rel in files}
    for key in backend.list_keys(STORE_PREFIX):
        if key not in keep:
            backend.delete(key)
    return len(files)
