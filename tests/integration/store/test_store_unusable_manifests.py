"""`invoke images` and `store.verify` show every manifest they cannot use, with the reason:
one that does not parse, names another family or version, or states another size than its
blob's. None is left out of the listing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from imagefactory.store import layout
from imagefactory.store.audit import audit_store
from imagefactory.store.backend import StoreBackend
from imagefactory.store.listing import images_report
from imagefactory.store.publish import publish_image
from tests.storekit import SigningKeys, make_sealed_image

pytestmark = pytest.mark.integration
FAMILY = "persistence"


def _rewrite(backend: StoreBackend, version: str, change: Callable[[dict[str, Any]], None]) -> None:
    key = layout.manifest_key(FAMILY, version)
    doc = json.loads(backend.get_bytes(key))
    change(doc)
    backend.put_bytes(key, json.dumps(doc).encode())


def _other_family(doc: dict[str, Any]) -> None:
    doc["family"] = "workers"


def _other_version(doc: dict[str, Any]) -> None:
    doc["version"] = "20200101T000000Z-000000000000"


def _bigger(doc: dict[str, Any]) -> None:
    doc["image"]["size"] += 1


def _no_size(doc: dict[str, Any]) -> None:
    del doc["image"]["size"]


CASES: dict[str, tuple[Callable[[StoreBackend, str], None], str]] = {
    "unparseable": (
        lambda b, v: b.put_bytes(layout.manifest_key(FAMILY, v), b"{not json"),
        "manifest.json does not parse (not JSON, or image.size is not a number)",
    ),
    "no-size": (lambda b, v: _rewrite(b, v, _no_size), "manifest.json has no image.size"),
    "other-family": (
        lambda b, v: _rewrite(b, v, _other_family),
        "manifest.json names family 'workers' version '{v}'",
    ),
    "other-version": (
        lambda b, v: _rewrite(b, v, _other_version),
        "manifest.json names family 'persistence' version '20200101T000000Z-000000000000'",
    ),
    "size-mismatch": (
        lambda b, v: _rewrite(b, v, _bigger),
        "the blob is 1048576 bytes, manifest.json says 1048577 bytes",
    ),
    "blob-missing": (
        lambda b, v: b.delete(layout.blob_key(FAMILY, v)),
        "the blob is missing, manifest.json says 1048576 bytes",
    ),
}


@pytest.fixture
def published(backend: StoreBackend, keys: SigningKeys, tmp_path: Path) -> str:
    sealed = make_sealed_image(tmp_path / "s", size=1024 * 1024, seed=70)
    return publish_image(backend, sealed, keys.private_key, show_progress=False).version


@pytest.mark.parametrize("case", sorted(CASES))
def test_images_lists_an_unusable_manifest_with_its_reason(
    backend: StoreBackend, keys: SigningKeys, published: str, case: str
) -> None:
    """The version stays in the table (SIZE ?) and its reason is printed below it."""
    spoil, reason = CASES[case]
    spoil(backend, published)
    text = images_report(backend, None, keys.allowed_signers)
    row = next(line for line in text.splitlines() if published in line).split()
    assert row[:4] == [FAMILY, published, "-", "?"]
    assert f"  {FAMILY}/{published}: {reason.format(v=published)}" in text.splitlines()


@pytest.mark.parametrize("case", sorted(CASES))
def test_store_verify_names_the_reason(
    backend: StoreBackend, keys: SigningKeys, published: str, case: str
) -> None:
    """store.verify reports the same reason (beside the signature's verdict), exit-worthy."""
    spoil, reason = CASES[case]
    spoil(backend, published)
    audit = audit_store(backend, keys.allowed_signers)
    assert not audit.ok
    line = f"BAD {FAMILY} {published}: manifest: unusable: {reason.format(v=published)}"
    assert line in audit.describe().splitlines()


def test_a_sound_version_is_not_marked(
    backend: StoreBackend, keys: SigningKeys, published: str
) -> None:
    text = images_report(backend, None, keys.allowed_signers)
    assert "unusable" not in text
    assert audit_store(backend, keys.allowed_signers).ok
