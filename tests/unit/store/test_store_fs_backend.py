"""The directory store keeps keys inside its root and hides its temporaries."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefactory.store.backend import ObjectMissing, StoreError
from imagefactory.store.fs_backend import FsBackend


@pytest.mark.parametrize("key", ["../x", "a/../../x", ".hidden", "a//b", "", "a/./b"])
def test_keys_cannot_escape_or_hide(tmp_path: Path, key: str) -> None:
    with pytest.raises(StoreError, match="invalid store key"):
        FsBackend(tmp_path / "store").put_bytes(key, b"x")


def test_listing_skips_temporaries_and_missing_root(tmp_path: Path) -> None:
    store = FsBackend(tmp_path / "store")
    assert store.list_keys("images/") == []
    store.put_bytes("images/a/1/manifest.json", b"{}")
    (tmp_path / "store/images/a/1/.blob.qcow2.upload-123").write_bytes(b"partial")
    assert store.list_keys("images/") == ["images/a/1/manifest.json"]
    assert store.list_keys("images/a/1/man") == ["images/a/1/manifest.json"]
    assert store.abandoned_uploads("images/") == ["images/a/1/.blob.qcow2.upload-123"]
    assert store.discard_abandoned("images/") == 1
    assert store.abandoned_uploads("images/") == []


def test_ranged_read_and_delete_tidies_dirs(tmp_path: Path) -> None:
    store = FsBackend(tmp_path / "store")
    store.put_bytes("images/a/1/blob", b"0123456789")
    assert b"".join(store.iter_from("images/a/1/blob", 4)) == b"456789"
    store.delete("images/a/1/blob")
    assert not (tmp_path / "store/images").exists()
    with pytest.raises(ObjectMissing):
        store.get_bytes("images/a/1/blob")
    with pytest.raises(ObjectMissing):
        list(store.iter_from("images/a/1/blob", 0))
