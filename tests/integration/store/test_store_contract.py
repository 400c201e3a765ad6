"""One contract, two backends: the directory store and S3 (moto on 127.0.0.1, with auth)."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from imagefactory.store import layout
from imagefactory.store.backend import StoreBackend, StoreError
from imagefactory.store.channels import promote, read_channel
from imagefactory.store.listing import images_report, list_images
from imagefactory.store.prune import apply_prune, plan_prune
from imagefactory.store.publish import PublishResult, publish_image
from imagefactory.store.pull import SEEN_FILE, pull_image
from imagefactory.store.signing import SignatureError, sign_bytes
from tests.prereq import require_tool
from tests.storekit import SigningKeys, make_sealed_image, make_signing_keys

pytestmark = pytest.mark.integration
MIB = 1024 * 1024


def _publish(
    backend: StoreBackend,
    keys: SigningKeys,
    directory: Path,
    channel: str | None = None,
    **image: Any,
) -> PublishResult:
    """Publish a fresh sealed image made in `directory`."""
    sealed = make_sealed_image(directory, **image)
    return publish_image(backend, sealed, keys.private_key, channel=channel, show_progress=False)


def when(day: int) -> datetime:
    return datetime(2026, 11, day, 8, 0, 0, tzinfo=UTC)


def test_publish_layout_and_manifest(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    sealed = make_sealed_image(tmp_path / "sealed", size=7 * MIB + 13, seed=1)
    res = publish_image(backend, sealed, keys.private_key, channel="nightly", show_progress=False)
    sealed_doc = json.loads((sealed / "manifest.json").read_text())
    sha = sealed_doc["image"]["sha256"]
    assert res.version == f"20261124T101500Z-{sha[:12]}"
    assert res.bytes_uploaded == 7 * MIB + 13
    prefix = f"images/persistence/{res.version}/"
    assert backend.list_keys(prefix) == sorted(
        prefix + n
        for n in [
            "SHA256SUMS",
            "compliance.arf.xml",
            "compliance.html",
            "junit.xml",
            "manifest.json",
            "manifest.json.sig",
            f"persistence-{res.version}.qcow2",
        ]
    )
    doc = json.loads(backend.get_bytes(prefix + "manifest.json"))
    for key in (
        "family",
        "os",
        "layers",
        "git",
        "build",
        "packages",
        "compliance",
        "verification",
        "tools",
        "custom_key",
    ):
        assert doc[key] == sealed_doc[key], key
    assert doc["image"]["sha256"] == sha and doc["image"]["size"] == 7 * MIB + 13
    assert doc["version"] == res.version and doc["store"]["unverified_override"] is False
    sums = backend.get_bytes(prefix + "SHA256SUMS").decode()
    assert f"{sha}  persistence-{res.version}.qcow2\n" in sums
    html = (sealed / "compliance.html").read_bytes()
    assert f"{hashlib.sha256(html).hexdigest()}  compliance.html" in sums
    arf = (sealed / "compliance.arf.xml").read_bytes()
    assert f"{hashlib.sha256(arf).hexdigest()}  compliance.arf.xml" in sums
    assert backend.get_bytes(prefix + "compliance.arf.xml") == arf
    rows = list_images(backend, allowed_signers=keys.allowed_signers)
    assert [(r.family, r.version, r.channels, r.size, r.score) for r in rows] == [
        ("persistence", res.version, "nightly", 7 * MIB + 13, 97.1)
    ]


def test_republish_moves_no_bytes(backend: StoreBackend, keys: SigningKeys, tmp_path: Path) -> None:
    sealed = make_sealed_image(tmp_path / "a", size=6 * MIB, seed=2)
    first = publish_image(backend, sealed, keys.private_key, show_progress=False)
    again = publish_image(backend, sealed, keys.private_key, show_progress=False)
    assert (again.version, again.bytes_uploaded, again.deduplicated) == (
        first.version,
        0,
        "same version",
    )
    # Same content from a later build (new version), and under another family: copied
    # inside the store, nothing sent from this host.
    later = make_sealed_image(tmp_path / "b", size=6 * MIB, seed=2, finished=when(25))
    other = make_sealed_image(tmp_path / "c", family="web", size=6 * MIB, seed=2)
    for sealed_dir in (later, other):
        res = publish_image(backend, sealed_dir, keys.private_key, show_progress=False)
        assert res.bytes_uploaded == 0 and res.deduplicated == "copied in store"
    assert len(list_images(backend)) == 3
    assert {r.size for r in list_images(backend)} == {6 * MIB}


def test_only_verified_images_publish(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    failed = make_sealed_image(tmp_path / "f", size=MIB, passed=False)
    with pytest.raises(StoreError, match="verification did not pass"):
        publish_image(backend, failed, keys.private_key, show_progress=False)
    untested = make_sealed_image(tmp_path / "u", size=MIB, seed=3, passed=None)
    with pytest.raises(StoreError, match="verification was not run"):
        publish_image(backend, untested, keys.private_key, show_progress=False)
    assert backend.list_keys("") == []
    res = publish_image(
        backend, failed, keys.private_key, allow_unverified=True, show_progress=False
    )
    doc = json.loads(backend.get_bytes(layout.manifest_key("persistence", res.version)))
    assert doc["store"]["unverified_override"] is True
    assert [r.verified for r in list_images(backend)] == ["override"]


def test_image_changed_after_sealing_is_not_published(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    sealed = make_sealed_image(tmp_path / "s", size=6 * MIB, seed=4)
    with (sealed / "persistence.qcow2").open("r+b") as fh:
        fh.seek(3 * MIB)
        fh.write(b"X")
    with pytest.raises(StoreError, match="sha256 is .* but the manifest says"):
        publish_image(backend, sealed, keys.private_key, show_progress=False)
    assert list_images(backend) == []
    assert backend.list_keys("images/") == []


def test_channels_promote_with_history(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    v1 = _publish(
        backend, keys, tmp_path / "1", "nightly", size=MIB, seed=5, finished=when(1)
    ).version
    v2 = _publish(
        backend, keys, tmp_path / "2", "nightly", size=MIB, seed=6, finished=when(2)
    ).version
    first = promote(
        backend, "persistence", v1, "stable", keys.private_key, allowed_signers=keys.allowed_signers
    )
    doc = read_channel(backend, "persistence", "nightly")
    assert doc is not None and doc["version"] == v2
    assert [h["version"] for h in doc["history"]] == [v1]
    second = promote(
        backend, "persistence", v2, "stable", keys.private_key, allowed_signers=keys.allowed_signers
    )
    stable = read_channel(backend, "persistence", "stable")
    assert stable is not None and stable["version"] == v2
    assert [h["version"] for h in stable["history"]] == [v1]
    assert stable["history"][0]["sequence"] == first["sequence"] < second["sequence"]
    # The same target again: re-signed with a higher sequence, history unchanged.
    third = promote(
        backend, "persistence", v2, "stable", keys.private_key, allowed_signers=keys.allowed_signers
    )
    assert third["sequence"] > second["sequence"] and third["history"] == second["history"]
    rows = list_images(backend, allowed_signers=keys.allowed_signers)
    assert [r.channels for r in rows] == ["", "nightly,stable"]
    with pytest.raises(StoreError, match="not a complete published image"):
        promote(
            backend,
            "persistence",
            "20990101T000000Z-000000000000",
            "stable",
            keys.private_key,
            allowed_signers=keys.allowed_signers,
        )


def test_prune_keeps_last_n_and_channel_targets(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    versions = [
        publish_image(
            backend,
            make_sealed_image(tmp_path / str(day), size=MIB, seed=10 + day, finished=when(day)),
            keys.private_key,
            show_progress=False,
        ).version
        for day in range(1, 6)
    ]
    promote(
        backend,
        "persistence",
        versions[0],
        "stable",
        keys.private_key,
        allowed_signers=keys.allowed_signers,
    )
    # A killed publish: blob without manifest.
    backend.put_bytes(layout.blob_key("persistence", "20261101T000000Z-abcdefabcdef"), b"x")
    # Someone's own object under images/, in no image's place: never pruned.
    backend.put_bytes("images/persistence/notes/README", b"ours")
    plan = plan_prune(backend, keep_last=2)
    assert [v for _, v in plan.delete_versions] == versions[1:3]
    assert [v for _, v in plan.incomplete] == ["20261101T000000Z-abcdefabcdef"]
    assert plan.foreign == (("persistence", "notes"),)
    assert "dry run" in plan.describe(applied=False)
    assert "left alone images/persistence/notes/ (not an image's name)" in plan.describe(False)
    assert len(list_images(backend)) == 5  # dry run deleted nothing
    apply_prune(backend, plan)
    assert [r.version for r in list_images(backend)] == [versions[0], *versions[3:]]
    assert backend.list_keys("images/persistence/20261101T000000Z-abcdefabcdef/") == []
    assert backend.get_bytes("images/persistence/notes/README") == b"ours"


def _installed(image_dir: Path) -> list[str]:
    return sorted(p.name for p in image_dir.iterdir()) if image_dir.exists() else []


def test_pull_installs_read_only_versioned(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    sealed = make_sealed_image(tmp_path / "s", size=9 * MIB, seed=20)
    res = publish_image(backend, sealed, keys.private_key, channel="stable", show_progress=False)
    hv = tmp_path / "hv"
    got = pull_image(
        backend, "persistence", hv, keys.allowed_signers, channel="stable", show_progress=False
    )
    name = f"persistence-{res.version}.qcow2"
    assert got.path == hv / name and got.signer == keys.principal
    assert got.path.read_bytes() == (sealed / "persistence.qcow2").read_bytes()
    assert stat.S_IMODE(got.path.stat().st_mode) == 0o444
    assert _installed(hv) == [
        SEEN_FILE,  # highest channel sequence pulled, and its lock
        f"{SEEN_FILE}.lock",
        f"persistence-{res.version}.manifest.json",
        name,
    ]
    again = pull_image(
        backend, "persistence", hv, keys.allowed_signers, channel="stable", show_progress=False
    )
    assert again.already_installed and again.bytes_downloaded == 0


def test_pull_resumes_partial_download(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    sealed = make_sealed_image(tmp_path / "s", size=9 * MIB, seed=21)
    res = publish_image(backend, sealed, keys.private_key, show_progress=False)
    hv = tmp_path / "hv"
    hv.mkdir()
    data = (sealed / "persistence.qcow2").read_bytes()
    (hv / f".persistence-{res.version}.qcow2.part").write_bytes(data[: 3 * MIB + 5])
    got = pull_image(
        backend, "persistence", hv, keys.allowed_signers, version=res.version, show_progress=False
    )
    assert (got.resumed_from, got.bytes_downloaded) == (3 * MIB + 5, len(data) - 3 * MIB - 5)
    assert got.path.read_bytes() == data


def test_pull_never_overwrites_other_template(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    res = _publish(backend, keys, tmp_path / "s", size=MIB, seed=22)
    hv = tmp_path / "hv"
    hv.mkdir()
    target = hv / f"persistence-{res.version}.qcow2"
    target.write_bytes(b"a VM backing file")
    with pytest.raises(StoreError, match="refusing to overwrite"):
        pull_image(backend, "persistence", hv, keys.allowed_signers, show_progress=False)
    assert target.read_bytes() == b"a VM backing file"


def test_corrupted_blob_installs_nothing(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    sealed = make_sealed_image(tmp_path / "s", size=6 * MIB, seed=23)
    res = publish_image(backend, sealed, keys.private_key, show_progress=False)
    blob = bytearray((sealed / "persistence.qcow2").read_bytes())
    blob[5 * MIB] ^= 0xFF  # same size, one flipped byte: only the checksum can tell
    backend.put_bytes(layout.blob_key("persistence", res.version), bytes(blob))
    hv = tmp_path / "hv"
    with pytest.raises(StoreError, match="store copy is corrupt, nothing installed"):
        pull_image(backend, "persistence", hv, keys.allowed_signers, show_progress=False)
    assert _installed(hv) == []


def test_tampered_manifest_is_refused(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    res = _publish(backend, keys, tmp_path / "s", size=MIB, seed=24)
    key = layout.manifest_key("persistence", res.version)
    doc = json.loads(backend.get_bytes(key))
    doc["compliance"]["score"] = 100.0
    backend.put_bytes(key, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
    hv = tmp_path / "hv"
    with pytest.raises(SignatureError, match="signature does not match"):
        pull_image(backend, "persistence", hv, keys.allowed_signers, show_progress=False)
    assert _installed(hv) == []
    backend.delete(layout.signature_key("persistence", res.version))
    with pytest.raises(SignatureError, match="signature file is missing"):
        pull_image(backend, "persistence", hv, keys.allowed_signers, show_progress=False)


def test_unknown_signer_is_refused(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    stranger = make_signing_keys(tmp_path / "stranger", principal="someone@elsewhere")
    publish_image(
        backend,
        make_sealed_image(tmp_path / "s", size=MIB, seed=25),
        stranger.private_key,
        show_progress=False,
    )
    hv = tmp_path / "hv"
    with pytest.raises(SignatureError, match="unknown signer"):
        pull_image(backend, "persistence", hv, keys.allowed_signers, show_progress=False)
    assert _installed(hv) == []


def test_real_qcow2_template_backs_a_vm_disk(
    backend: StoreBackend,
    keys: SigningKeys,
    tmp_path: Path,
) -> None:
    qemu_img = require_tool("qemu-img")
    res = _publish(backend, keys, tmp_path / "s", "stable", size=64 * MIB, qcow2=True)
    hv = tmp_path / "hv"
    got = pull_image(backend, "persistence", hv, keys.allowed_signers, show_progress=False)
    info = subprocess.run(
        [qemu_img, "info", "--output=json", str(got.path)], capture_output=True, check=True
    )
    assert json.loads(info.stdout)["virtual-size"] == 64 * MIB
    overlay = hv / "vm1.qcow2"
    subprocess.run(
        [qemu_img, "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(got.path), str(overlay)],
        check=True,
    )
    assert got.path.name == f"persistence-{res.version}.qcow2"
    assert stat.S_IMODE(got.path.stat().st_mode) == 0o444


def test_unusable_signing_key_uploads_nothing(backend: StoreBackend, tmp_path: Path) -> None:
    sealed = make_sealed_image(tmp_path / "s", size=MIB)
    with pytest.raises(SignatureError, match="signing key .* does not exist"):
        publish_image(backend, sealed, tmp_path / "no-key", show_progress=False)
    assert backend.list_keys("") == []


# --- signed channel pointers -------------------------------------------------------------


def _pull_stable(backend: StoreBackend, keys: SigningKeys, hv: Path) -> Any:
    return pull_image(
        backend, "persistence", hv, keys.allowed_signers, channel="stable", show_progress=False
    )


def _two_versions(backend: StoreBackend, keys: SigningKeys, tmp_path: Path) -> tuple[str, str]:
    """v1 (older) and v2, stable -> v2, as after a normal promotion."""
    v1 = _publish(backend, keys, tmp_path / "1", "stable", size=MIB, seed=50, finished=when(1))
    v2 = _publish(backend, keys, tmp_path / "2", "stable", size=MIB, seed=51, finished=when(2))
    return v1.version, v2.version


def _put_pointer(backend: StoreBackend, doc: dict[str, Any], key: Path | None = None) -> None:
    """Write stable's pointer as given, signed with `key` (left unsigned-as-is when None)."""
    data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
    if key is not None:
        backend.put_bytes(
            layout.channel_signature_key("persistence", "stable"), sign_bytes(data, key)
        )
    backend.put_bytes(layout.channel_key("persistence", "stable"), data)


def _unverified(backend: StoreBackend, keys: SigningKeys) -> dict[str, str]:
    return {
        r.version: r.channels
        for r in list_images(backend, allowed_signers=keys.allowed_signers)
        if "(unverified)" in r.channels
    }


def test_channel_pointer_is_signed_and_names_its_target(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    res = _publish(backend, keys, tmp_path / "s", "stable", size=MIB, seed=52)
    data = backend.get_bytes(layout.channel_key("persistence", "stable"))
    sig = backend.get_bytes(layout.channel_signature_key("persistence", "stable"))
    assert sig.startswith(b"-----BEGIN SSH SIGNATURE-----")
    doc = json.loads(data)
    manifest = backend.get_bytes(layout.manifest_key("persistence", res.version))
    assert doc["family"] == "persistence" and doc["channel"] == "stable"
    assert doc["version"] == res.version
    assert doc["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()
    assert isinstance(doc["sequence"], int) and doc["sequence"] > 0
    assert doc["by"] and doc["promoted"] and doc["schema"] == 2
    # Checkable by hand with the documented ssh-keygen command.
    (tmp_path / "stable.json").write_bytes(data)
    (tmp_path / "stable.json.sig").write_bytes(sig)
    check = subprocess.run(
        [
            "ssh-keygen", "-Y", "verify", "-f", str(keys.allowed_signers), "-I", keys.principal,
            "-n", "imagefactory", "-s", str(tmp_path / "stable.json.sig"),
        ],
        input=data,
        capture_output=True,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    got = _pull_stable(backend, keys, tmp_path / "hv")
    assert got.version == res.version and got.channel_sequence == doc["sequence"]
    assert "unverified" not in images_report(backend, None, keys.allowed_signers)


def test_tampered_channel_pointer_is_refused(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    v1, v2 = _two_versions(backend, keys, tmp_path)
    key = layout.channel_key("persistence", "stable")
    doc = json.loads(backend.get_bytes(key))
    doc["version"] = v1  # roll stable back to the older, validly signed image
    _put_pointer(backend, doc)
    hv = tmp_path / "hv"
    with pytest.raises(SignatureError, match="pointer: signature does not match"):
        _pull_stable(backend, keys, hv)
    assert _installed(hv) == []
    assert _unverified(backend, keys) == {v1: "stable(unverified)"}
    report = images_report(backend, None, keys.allowed_signers)
    assert f"persistence/stable -> {v1}: persistence channel 'stable' pointer: signature" in report
    # The explicit version still pulls: only the pointer is distrusted.
    got = pull_image(backend, "persistence", hv, keys.allowed_signers, version=v2,
                     show_progress=False)  # fmt: skip
    assert got.channel_sequence is None


def test_unsigned_channel_pointer_is_refused(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    v1, _ = _two_versions(backend, keys, tmp_path)
    backend.delete(layout.channel_signature_key("persistence", "stable"))
    hv = tmp_path / "hv"
    with pytest.raises(SignatureError, match="pointer: not signed"):
        _pull_stable(backend, keys, hv)
    # A pointer in the old unsigned format (what a bucket writer could also put there).
    _put_pointer(backend, {"version": v1, "history": []})
    with pytest.raises(SignatureError, match="pointer: not signed"):
        _pull_stable(backend, keys, hv)
    assert _installed(hv) == []
    assert _unverified(backend, keys) == {v1: "stable(unverified)"}
    # Promoting again repairs it.
    promote(
        backend, "persistence", v1, "stable", keys.private_key, allowed_signers=keys.allowed_signers
    )
    assert _pull_stable(backend, keys, hv).version == v1
    assert _unverified(backend, keys) == {}


def test_channel_pointer_signed_by_unknown_key_is_refused(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    v1, _ = _two_versions(backend, keys, tmp_path)
    stranger = make_signing_keys(tmp_path / "stranger", principal="someone@elsewhere")
    promote(
        backend,
        "persistence",
        v1,
        "stable",
        stranger.private_key,
        allowed_signers=keys.allowed_signers,
    )
    with pytest.raises(SignatureError, match="pointer: signed by a key that is not in"):
        _pull_stable(backend, keys, tmp_path / "hv")
    assert _unverified(backend, keys) == {v1: "stable(unverified)"}


def test_pointer_naming_another_family_or_channel_is_refused(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    _two_versions(backend, keys, tmp_path)
    web = _publish(backend, keys, tmp_path / "w", "stable", family="web", size=MIB, seed=53)
    _publish(backend, keys, tmp_path / "n", "nightly", size=MIB, seed=54, finished=when(3))
    hv = tmp_path / "hv"
    for family, channel in (("web", "stable"), ("persistence", "nightly")):
        # A validly signed pointer copied over persistence's stable, signature and all.
        for key in (layout.channel_key, layout.channel_signature_key):
            backend.put_bytes(key("persistence", "stable"), backend.get_bytes(key(family, channel)))
        with pytest.raises(
            StoreError, match=f"signed, but for family '{family}' channel '{channel}'"
        ):
            _pull_stable(backend, keys, hv)
    assert _installed(hv) == []
    report = images_report(backend, "persistence", keys.allowed_signers)
    assert "persistence/stable" in report and "signed, but for family" in report
    assert web.version not in report  # the family filter also applies to channels


def test_pointer_manifest_sha_mismatch_is_refused(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    _, v2 = _two_versions(backend, keys, tmp_path)
    doc = json.loads(backend.get_bytes(layout.channel_key("persistence", "stable")))
    doc["manifest_sha256"] = "0" * 64  # signed by a trusted key, for another manifest
    doc["sequence"] += 1
    _put_pointer(backend, doc, keys.private_key)
    hv = tmp_path / "hv"
    with pytest.raises(StoreError, match="pointer was signed for a manifest.json with sha256 0+,"):
        _pull_stable(backend, keys, hv)
    assert _installed(hv) == []
    assert _unverified(backend, keys) == {v2: "stable(unverified)"}


def test_replayed_older_pointer_is_refused_by_the_hypervisor(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    v1 = _publish(backend, keys, tmp_path / "1", "stable", size=MIB, seed=55, finished=when(1))
    pointer_key = layout.channel_key("persistence", "stable")
    sig_key = layout.channel_signature_key("persistence", "stable")
    old_pair = backend.get_bytes(pointer_key), backend.get_bytes(sig_key)
    hv = tmp_path / "hv"
    assert _pull_stable(backend, keys, hv).version == v1.version
    v2 = _publish(backend, keys, tmp_path / "2", "stable", size=MIB, seed=56, finished=when(2))
    assert _pull_stable(backend, keys, hv).version == v2.version
    seen = json.loads((hv / SEEN_FILE).read_text())["persistence/stable"]
    # The old pointer is validly signed: only the host's memory of a newer one refuses it.
    backend.put_bytes(sig_key, old_pair[1])
    backend.put_bytes(pointer_key, old_pair[0])
    with pytest.raises(StoreError, match="refusing a rollback"):
        _pull_stable(backend, keys, hv)
    assert json.loads((hv / SEEN_FILE).read_text())["persistence/stable"] == seen
    # Going back on purpose: promote v1 again (a new, higher sequence).
    doc = promote(
        backend,
        "persistence",
        v1.version,
        "stable",
        keys.private_key,
        allowed_signers=keys.allowed_signers,
    )
    got = _pull_stable(backend, keys, hv)
    assert got.version == v1.version and got.already_installed
    assert (
        json.loads((hv / SEEN_FILE).read_text())["persistence/stable"]["sequence"]
        == (doc["sequence"])
    )
