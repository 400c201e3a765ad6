"""Names, versions, progress output and sealed-manifest checks."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from imagefactory.errors import ConfigError
from imagefactory.store import layout
from imagefactory.store.backend import StoreError
from imagefactory.store.fs_backend import FsBackend
from imagefactory.store.publish import load_sealed
from imagefactory.store.transfer_meter import Progress
from tests.storekit import make_sealed_image


def test_versions_sort_by_build_time() -> None:
    sha = "0123456789abcdef" * 4
    early = layout.derive_version(datetime(2026, 1, 9, 23, 0, tzinfo=UTC), "f" * 64)
    # 01:00 at +02:00 is 23:00 UTC the day before: UTC keeps the order right.
    later = layout.derive_version(
        datetime(2026, 1, 10, 1, 0, 1, tzinfo=timezone(timedelta(hours=2))), sha
    )
    assert early == "20260109T230000Z-ffffffffffff"
    assert later == "20260109T230001Z-0123456789ab"
    assert sorted([later, early]) == [early, later]
    assert layout.check_version(later) == later
    with pytest.raises(StoreError, match="invalid version"):
        layout.check_version("../../etc")


def test_key_layout_is_readable() -> None:
    v = "20260109T230000Z-ffffffffffff"
    assert layout.blob_key("web", v) == f"images/web/{v}/web-{v}.qcow2"
    assert layout.manifest_key("web", v) == f"images/web/{v}/manifest.json"
    assert layout.signature_key("web", v) == f"images/web/{v}/manifest.json.sig"
    assert layout.channel_key("web", "stable") == "channels/web/stable.json"


@pytest.mark.parametrize("bad", ["", "Web", "-x", "a/b", "..", "x" * 64])
def test_bad_names_rejected(bad: str) -> None:
    with pytest.raises(StoreError, match="invalid family name"):
        layout.check_name("family", bad)


def test_progress_lines_for_files() -> None:
    out = io.StringIO()
    bar = Progress("publish x", 100, stream=out)
    for _ in range(10):
        bar.update(10)
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 10  # one per 10% step below 100, plus the final line
    assert lines[0].startswith("publish x [##") and "10.0%" in lines[0]
    assert "100.0%" in lines[-1] and lines[-1].endswith("/s")


def test_load_sealed_accepts_engine_manifest(tmp_path: Path) -> None:
    sealed = load_sealed(make_sealed_image(tmp_path / "s", size=4096))
    assert sealed.family == "persistence" and sealed.size == 4096
    assert [p.name for p in sealed.reports] == [
        "compliance.html",
        "compliance.arf.xml",
        "junit.xml",
    ]


def test_load_sealed_reports_every_bad_field(tmp_path: Path) -> None:
    d = make_sealed_image(tmp_path / "s", size=4096)
    doc = json.loads((d / "manifest.json").read_text())
    doc["family"] = "Bad Name"
    doc["image"] = {"file": "../x", "sha256": "zz", "size": -1}
    (d / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError) as err:
        load_sealed(d)
    assert [p.path for p in err.value.problems] == [
        "family",
        "image.file",
        "image.sha256",
        "image.size",
    ]
    assert all(p.file == str(d / "manifest.json") for p in err.value.problems)


def test_load_sealed_size_mismatch_and_missing(tmp_path: Path) -> None:
    d = make_sealed_image(tmp_path / "s", size=4096)
    (d / "persistence.qcow2").write_bytes(b"short")
    with pytest.raises(ConfigError, match="says 4096 bytes"):
        load_sealed(d)
    with pytest.raises(ConfigError, match="sealed manifest not found"):
        load_sealed(tmp_path / "empty")
    (d / "manifest.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_sealed(d)


def test_an_object_put_under_images_by_hand_is_unusable_not_fatal(tmp_path: Path) -> None:
    """images/persistence/latest/manifest.json (not a version): listed as unusable with why."""
    backend = FsBackend(tmp_path / "store")
    backend.put_bytes("images/persistence/latest/manifest.json", b"{}")
    records, unusable = layout.scan_images(backend)
    assert records == []
    assert unusable[("persistence", "latest")].startswith(
        "not an image's place: invalid version 'latest'"
    )
