"""The trust chain: nothing the store keeps is reused, listed as good, or signed for unless it
is proven to be what its signed manifest says (directory store and a real S3 server)."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from imagefactory.store import layout
from imagefactory.store.audit import audit_store
from imagefactory.store.backend import StoreBackend, StoreError
from imagefactory.store.blob_check import BlobFacts, check_blob
from imagefactory.store.channels import promote, read_channel
from imagefactory.store.fs_backend import FsBackend
from imagefactory.store.listing import images_report, list_images
from imagefactory.store.prune import apply_prune, plan_removal
from imagefactory.store.publish import publish_image
from imagefactory.store.pull import pull_image
from imagefactory.store.s3_backend import S3Backend
from imagefactory.store.s3_multipart import MultipartUpload
from imagefactory.store.signing import SignatureError
from tests.clikit import run_task
from tests.storekit import SigningKeys, make_sealed_image

pytestmark = pytest.mark.integration
MIB = 1024 * 1024
REPO = Path(__file__).resolve().parents[3]


def _damage(backend: StoreBackend, key: str) -> None:
    """Same size, one byte flipped in the middle (what a size check cannot see)."""
    data = bytearray(backend.get_bytes(key))
    data[len(data) // 2] ^= 0xFF
    backend.put_bytes(key, bytes(data))


def _tamper_score(backend: StoreBackend, family: str, version: str) -> None:
    key = layout.manifest_key(family, version)
    doc = json.loads(backend.get_bytes(key))
    doc["compliance"]["score"] = 100.0
    backend.put_bytes(key, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())


def test_republish_repairs_a_damaged_blob(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    """Re-publishing a version whose blob is damaged uploads it again instead of saying done."""
    sealed = make_sealed_image(tmp_path / "s", size=6 * MIB + 3, seed=40)
    first = publish_image(backend, sealed, keys.private_key, show_progress=False)
    _damage(backend, layout.blob_key("persistence", first.version))
    again = publish_image(backend, sealed, keys.private_key, show_progress=False)
    assert (again.version, again.bytes_uploaded, again.deduplicated) == (
        first.version,
        6 * MIB + 3,
        "",
    )
    assert len(again.notes) == 1 and again.notes[0].startswith("repaired ")
    got = pull_image(backend, "persistence", tmp_path / "hv", keys.allowed_signers)
    assert got.path.read_bytes() == (sealed / "persistence.qcow2").read_bytes()


def test_damaged_twin_is_not_copied(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    """A new version with the same content is uploaded, not copied from a damaged blob."""
    first = publish_image(
        backend, make_sealed_image(tmp_path / "a", size=6 * MIB, seed=41), keys.private_key
    )
    _damage(backend, layout.blob_key("persistence", first.version))
    later = make_sealed_image(
        tmp_path / "b", size=6 * MIB, seed=41, finished=datetime(2026, 11, 30, tzinfo=UTC)
    )
    res = publish_image(backend, later, keys.private_key, show_progress=False)
    assert (res.bytes_uploaded, res.deduplicated) == (6 * MIB, "")
    assert "not copied from" in res.notes[0] and first.version in res.notes[0]
    got = pull_image(
        backend, "persistence", tmp_path / "hv", keys.allowed_signers, version=res.version
    )
    assert got.path.read_bytes() == (later / "persistence.qcow2").read_bytes()


def test_sound_twin_is_still_copied(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    """The proof lets a sound blob be copied in the store: no bytes sent from this host."""
    publish_image(
        backend, make_sealed_image(tmp_path / "a", size=6 * MIB, seed=42), keys.private_key
    )
    later = make_sealed_image(
        tmp_path / "b", size=6 * MIB, seed=42, finished=datetime(2026, 11, 30, tzinfo=UTC)
    )
    res = publish_image(backend, later, keys.private_key, show_progress=False)
    assert (res.bytes_uploaded, res.deduplicated, res.notes) == (0, "copied in store", ())


def test_s3_blob_is_proven_by_the_servers_checksum(
    s3_server: Any, new_bucket: str, keys: SigningKeys, tmp_path: Path
) -> None:
    """On S3 a sound blob is proven by its stored CRC32, a replaced one disproven, no download."""
    backend = S3Backend(s3_server.settings(new_bucket), s3_server.credentials())
    sealed = make_sealed_image(tmp_path / "s", size=11 * MIB, seed=43)
    res = publish_image(backend, sealed, keys.private_key, show_progress=False)
    doc = json.loads(backend.get_bytes(layout.manifest_key("persistence", res.version)))
    assert doc["store"]["blob_crc32"].endswith("-3") and doc["store"]["part_size"] == 5 * MIB
    facts = BlobFacts.of_manifest(doc)
    blob = layout.blob_key("persistence", res.version)
    assert check_blob(backend, blob, facts) == ("", "server CRC32")
    assert check_blob(backend, blob, facts, local=sealed / "persistence.qcow2") == (
        "",
        "server CRC32",
    )
    other = tmp_path / "other"
    data = bytearray((sealed / "persistence.qcow2").read_bytes())
    data[7 * MIB] ^= 0x01
    other.write_bytes(data)
    upload = MultipartUpload(backend.client, new_bucket, blob, part_size=5 * MIB, workers=2)
    with other.open("rb") as fh:
        upload.run(fh, len(data))
    problem, how = check_blob(backend, blob, facts)
    assert how == "server CRC32" and "the server's checksum of the blob is CRC32" in problem


def test_images_marks_a_changed_manifest(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    """A manifest changed after signing is listed as SIGNED BAD, its score marked unverified."""
    res = publish_image(
        backend,
        make_sealed_image(tmp_path / "s", size=MIB, seed=44),
        keys.private_key,
        channel="stable",
    )
    _tamper_score(backend, "persistence", res.version)
    rows = list_images(backend, allowed_signers=keys.allowed_signers)
    assert [(r.score, r.signed, r.channels) for r in rows] == [(100.0, "BAD", "stable(unverified)")]
    text = images_report(backend, None, keys.allowed_signers)
    assert "100.0?" in text
    assert f"persistence/{res.version}: persistence {res.version} manifest: signature" in text


def test_promote_refuses_a_changed_manifest(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    """Promote never signs a pointer to a manifest whose signature does not match."""
    res = publish_image(
        backend,
        make_sealed_image(tmp_path / "s", size=MIB, seed=45),
        keys.private_key,
        channel="nightly",
    )
    _tamper_score(backend, "persistence", res.version)
    with pytest.raises(SignatureError, match="signature does not match.*not promoting it"):
        promote(
            backend,
            "persistence",
            res.version,
            "stable",
            keys.private_key,
            allowed_signers=keys.allowed_signers,
        )
    assert read_channel(backend, "persistence", "stable") is None


def test_store_verify_passes_a_sound_store(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    """store.verify says all good for what publish wrote, by CRC32 and by re-hash."""
    publish_image(
        backend,
        make_sealed_image(tmp_path / "s", size=6 * MIB, seed=46),
        keys.private_key,
        channel="stable",
    )
    for rehash in (False, True):
        audit = audit_store(backend, keys.allowed_signers, rehash=rehash)
        assert audit.ok, audit.describe()
        assert audit.describe().endswith("1 version(s), 1 channel(s) checked: all good")


def test_store_verify_names_each_damage(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    """store.verify finds a damaged blob, a changed manifest, a changed report, a bad pointer."""
    versions = []
    for day, seed in ((24, 47), (25, 48), (26, 49)):
        sealed = make_sealed_image(
            tmp_path / str(day),
            size=MIB,
            seed=seed,
            finished=datetime(2026, 11, day, tzinfo=UTC),
        )
        versions.append(publish_image(backend, sealed, keys.private_key).version)
    promote(
        backend,
        "persistence",
        versions[1],
        "stable",
        keys.private_key,
        allowed_signers=keys.allowed_signers,
    )
    _damage(backend, layout.blob_key("persistence", versions[0]))
    _tamper_score(backend, "persistence", versions[1])
    backend.put_bytes(layout.image_prefix("persistence", versions[2]) + "junit.xml", b"<x/>\n")
    audit = audit_store(backend, keys.allowed_signers)
    text = audit.describe()
    assert not audit.ok
    assert f"BAD persistence {versions[0]}: blob: " in text
    assert f"BAD persistence {versions[1]}: manifest: " in text
    assert (
        f"BAD persistence {versions[2]}: report junit.xml does not match its sha256 in SHA256SUMS"
        in text
    )
    assert "BAD channel persistence/stable: signed for a manifest.json with sha256" in text
    assert text.endswith(
        "3 version(s), 1 channel(s) checked: 4 damaged (see docs/store.md, Repair)"
    )


def test_store_remove_deletes_one_version_no_channel_points_at(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    """A named version is removed (repair of a damaged one); a channel target is refused."""
    pinned = publish_image(
        backend,
        make_sealed_image(tmp_path / "a", size=MIB, seed=50),
        keys.private_key,
        channel="stable",
    ).version
    later = make_sealed_image(
        tmp_path / "b", size=MIB, seed=51, finished=datetime(2026, 11, 30, tzinfo=UTC)
    )
    damaged = publish_image(backend, later, keys.private_key).version
    _damage(backend, layout.blob_key("persistence", damaged))
    with pytest.raises(StoreError, match="target of channel\\(s\\) stable; promote them"):
        plan_removal(backend, "persistence", pinned)
    plan = plan_removal(backend, "persistence", damaged)
    assert plan.describe(applied=False).splitlines() == [
        f"would delete persistence {damaged}",
        "dry run: nothing deleted (run again with --apply)",
    ]
    apply_prune(backend, plan)
    assert backend.list_keys(layout.image_prefix("persistence", damaged)) == []
    assert backend.list_keys("sha256/") == [
        layout.index_key(
            json.loads(backend.get_bytes(layout.manifest_key("persistence", pinned)))["image"][
                "sha256"
            ]
        )
    ]
    assert audit_store(backend, keys.allowed_signers).ok


def test_store_verify_task_exits_1_on_damage_and_0_after_repair(
    keys: SigningKeys, tmp_path: Path
) -> None:
    """`invoke store.verify` fails with a BAD line; `publish` repairs; then it passes."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "store.yaml").write_text(
        "store:\n  kind: fs\n  path: store\n"
        f"  allowed_signers: {keys.allowed_signers}\n  signing_key: {keys.private_key}\n"
    )
    sealed = make_sealed_image(tmp_path / "art" / "images" / "persistence", size=MIB, seed=52)
    store = FsBackend(conf / "store")
    version = publish_image(store, sealed, keys.private_key, show_progress=False).version
    _damage(store, layout.blob_key("persistence", version))

    def task(*args: str) -> subprocess.CompletedProcess[str]:
        artifacts = {"INVOKE_FACTORY_ARTIFACTS": str(tmp_path / "art")}
        return run_task(*args, cwd=tmp_path, env=artifacts)

    bad = task("store.verify", f"--config={conf / 'store.yaml'}")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert f"BAD persistence {version}: blob: the blob's bytes hash to sha256" in bad.stderr
    assert "Traceback" not in bad.stderr
    fixed = task("publish", "--family=persistence", f"--config={conf / 'store.yaml'}")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert f"  repaired images/persistence/{version}/" in fixed.stdout
    good = task("store.verify", "--family=persistence", f"--config={conf / 'store.yaml'}")
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.strip().endswith("1 version(s), 1 channel(s) checked: all good")
