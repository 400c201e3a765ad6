"""SBOMs travel with published images; changelogs compare signed manifests only
(`invoke images --diff=A..B`, and the channel changelog nightly publishing writes)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from imagefactory.errors import ConfigError
from imagefactory.report.published import changelog_for_publish, diff_published
from imagefactory.report.sbom import SBOM_FILE, validate_sbom
from imagefactory.store import layout
from imagefactory.store.audit import audit_store
from imagefactory.store.backend import StoreBackend, StoreError
from imagefactory.store.channels import promote
from imagefactory.store.fs_backend import FsBackend
from imagefactory.store.publish import publish_image
from imagefactory.store.signing import SignatureError
from tests.storekit import SigningKeys, make_sealed_image, read_json

pytestmark = pytest.mark.integration
MIB = 1024 * 1024
REPO = Path(__file__).resolve().parents[3]
OLD_RPMS = [
    "bash-4.4.20-4.el8.x86_64",
    "openssh-server-8.0p1-24.el8.x86_64",
    "telnet-0.17-76.el8.x86_64",
]
NEW_RPMS = [
    "bash-4.4.20-5.el8.x86_64",
    "openssh-server-8.0p1-24.el8.x86_64",
    "vim-minimal-8.0.1763-19.el8.x86_64",
]


def _publish(
    backend: StoreBackend,
    keys: SigningKeys,
    where: Path,
    packages: list[str],
    day: int,
    *,
    family: str = "persistence",
    seed: int | None = None,
    channel: str | None = None,
) -> str:
    sealed = make_sealed_image(
        where,
        family,
        size=MIB,
        seed=day if seed is None else seed,
        finished=datetime(2026, 11, day, 10, 15, tzinfo=UTC),
        packages=packages,
        sbom=True,
    )
    return publish_image(
        backend, sealed, keys.private_key, channel=channel, show_progress=False
    ).version


def test_published_sbom_is_listed_and_checked(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    """The SBOM is uploaded beside the image, in SHA256SUMS and store.reports, and valid."""
    version = _publish(backend, keys, tmp_path / "s", NEW_RPMS, 24)
    prefix = layout.image_prefix("persistence", version)
    data = backend.get_bytes(prefix + SBOM_FILE)
    assert validate_sbom(data) is None
    sums = backend.get_bytes(layout.sums_key("persistence", version)).decode()
    assert f"{hashlib.sha256(data).hexdigest()}  {SBOM_FILE}\n" in sums
    manifest = json.loads(backend.get_bytes(layout.manifest_key("persistence", version)))
    assert SBOM_FILE in manifest["store"]["reports"] and manifest["sbom"] == SBOM_FILE
    purls = {c["purl"] for c in json.loads(data)["components"]}
    assert "pkg:rpm/oracle/vim-minimal@8.0.1763-19.el8?arch=x86_64&distro=ol-8" in purls
    assert audit_store(backend, keys.allowed_signers).ok


def test_sealed_manifest_naming_a_missing_sbom_is_refused(
    keys: SigningKeys, tmp_path: Path
) -> None:
    """publish checks the SBOM the manifest names is there, as for every report."""
    sealed = make_sealed_image(tmp_path / "s", size=MIB, packages=OLD_RPMS, sbom=True)
    (sealed / SBOM_FILE).unlink()
    with pytest.raises(ConfigError, match=r"sbom: report 'sbom.cdx.json' not found"):
        publish_image(FsBackend(tmp_path / "store"), sealed, keys.private_key, show_progress=False)


def _invoke(tmp_path: Path, keys: SigningKeys, *args: str) -> subprocess.CompletedProcess[str]:
    conf = tmp_path / "store.yaml"
    conf.write_text(
        f"store:\n  kind: fs\n  path: {tmp_path / 'store'}\n"
        f"  allowed_signers: {keys.allowed_signers}\n"
    )
    return subprocess.run(
        [sys.executable, "-m", "invoke", "-r", str(REPO), "images", f"--config={conf}", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "INVOKE_FACTORY_ARTIFACTS": str(tmp_path / "art")},
    )


def test_images_diff_prints_the_changelog(keys: SigningKeys, tmp_path: Path) -> None:
    """`invoke images --diff=A..B` finds the family and prints what moved between them."""
    store = FsBackend(tmp_path / "store")
    old = _publish(store, keys, tmp_path / "a", OLD_RPMS, 24)
    new = _publish(store, keys, tmp_path / "b", NEW_RPMS, 25)
    run = _invoke(tmp_path, keys, f"--diff={old}..{new}")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith(f"# persistence {new}\n\nChanges since {old}.\n")
    assert (
        "## Upgraded packages (1)\n\n- bash (x86_64): 4.4.20-4.el8 -> 4.4.20-5.el8\n" in run.stdout
    )
    assert "## Added packages (1)\n\n- vim-minimal (x86_64): 8.0.1763-19.el8\n" in run.stdout
    assert "## Removed packages (1)\n\n- telnet (x86_64): 0.17-76.el8\n" in run.stdout
    back = _invoke(tmp_path, keys, f"--diff={new}..{old}", "--family=persistence")
    assert back.returncode == 0, back.stdout + back.stderr
    assert "- bash (x86_64): 4.4.20-5.el8 -> 4.4.20-4.el8" in back.stdout  # a downgrade


@pytest.mark.parametrize("spec", ["20261124T101500Z-1a2b3c4d5e6f", "a..b", "..", "x...y"])
def test_images_diff_bad_syntax(keys: SigningKeys, tmp_path: Path, spec: str) -> None:
    """A --diff that is not two versions: one line saying the expected form, exit 2."""
    run = _invoke(tmp_path, keys, f"--diff={spec}")
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.strip().splitlines() == [
        f"error: --diff={spec}: expected two published versions as A..B, e.g. "
        "--diff=20261124T101500Z-1a2b3c4d5e6f..20261125T101500Z-6f5e4d3c2b1a"
    ]


def test_images_diff_refuses_an_unverified_manifest(keys: SigningKeys, tmp_path: Path) -> None:
    """A manifest changed after signing is not compared; the message says which and why."""
    store = FsBackend(tmp_path / "store")
    old = _publish(store, keys, tmp_path / "a", OLD_RPMS, 24)
    new = _publish(store, keys, tmp_path / "b", NEW_RPMS, 25)
    key = layout.manifest_key("persistence", new)
    doc = json.loads(store.get_bytes(key))
    doc["packages"] = OLD_RPMS  # hide the changes
    store.put_bytes(key, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
    run = _invoke(tmp_path, keys, f"--diff={old}..{new}")
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"persistence {new} manifest" in run.stderr
    assert "not comparing it" in run.stderr and "Traceback" not in run.stderr
    assert run.stdout == ""


def test_family_must_be_unambiguous(keys: SigningKeys, tmp_path: Path) -> None:
    """Versions in two families need --family; versions of different families, or none,
    are named in the error."""
    store = FsBackend(tmp_path / "store")
    old = _publish(store, keys, tmp_path / "a", OLD_RPMS, 24)
    new = _publish(store, keys, tmp_path / "b", NEW_RPMS, 25)
    # The same sealed content under another family has the same version strings.
    _publish(store, keys, tmp_path / "c", OLD_RPMS, 24, family="web")
    _publish(store, keys, tmp_path / "d", NEW_RPMS, 25, family="web")
    with pytest.raises(StoreError, match="families persistence, web; the family is ambiguous"):
        diff_published(store, old, new, keys.allowed_signers)
    log = diff_published(store, old, new, keys.allowed_signers, family="web")
    assert (log.family, [c.name for c in log.added]) == ("web", ["vim-minimal"])
    other = _publish(store, keys, tmp_path / "e", NEW_RPMS, 26, family="db")
    with pytest.raises(StoreError, match=f"{old} is a version of persistence, web but {other}"):
        diff_published(store, old, other, keys.allowed_signers)
    missing = "20261130T000000Z-000000000000"
    with pytest.raises(StoreError, match=f"version {missing} is not published in any family"):
        diff_published(store, old, missing, keys.allowed_signers)
    with pytest.raises(StoreError, match=f"db has no published version {old}"):
        diff_published(store, old, other, keys.allowed_signers, family="db")


def test_channel_changelog_for_publish(keys: SigningKeys, tmp_path: Path) -> None:
    """Unset channel: the first version; then the change from what the channel points at."""
    store = FsBackend(tmp_path / "store")
    first = read_json(
        make_sealed_image(tmp_path / "a", size=MIB, packages=OLD_RPMS) / "manifest.json"
    )
    text, data = changelog_for_publish(store, "persistence", "nightly", first, keys.allowed_signers)
    assert "first version on this channel" in text and json.loads(data)["first"] is True
    old = _publish(store, keys, tmp_path / "a2", OLD_RPMS, 24, channel="nightly")
    sealed = make_sealed_image(
        tmp_path / "b",
        size=MIB,
        seed=25,
        packages=NEW_RPMS,
        finished=datetime(2026, 11, 25, 10, 15, tzinfo=UTC),
    )
    new = read_json(sealed / "manifest.json")
    text, data = changelog_for_publish(store, "persistence", "nightly", new, keys.allowed_signers)
    doc = json.loads(data)
    assert (doc["old_version"], doc["first"]) == (old, False)
    assert doc["new_version"] == layout.derive_version(
        datetime(2026, 11, 25, 10, 15, tzinfo=UTC), new["image"]["sha256"]
    )
    assert [c["name"] for c in doc["upgraded"]] == ["bash"]
    assert f"Changes since {old}." in text and "- telnet (x86_64): 0.17-76.el8" in text


def test_channel_changelog_refuses_an_untrusted_pointer(keys: SigningKeys, tmp_path: Path) -> None:
    """A pointer without a valid signature is not followed to an 'old' version."""
    store = FsBackend(tmp_path / "store")
    old = _publish(store, keys, tmp_path / "a", OLD_RPMS, 24)
    promote(
        store, "persistence", old, "nightly", keys.private_key, allowed_signers=keys.allowed_signers
    )
    store.delete(layout.channel_signature_key("persistence", "nightly"))
    new = read_json(
        make_sealed_image(tmp_path / "b", size=MIB, packages=NEW_RPMS) / "manifest.json"
    )
    with pytest.raises(SignatureError, match="not signed"):
        changelog_for_publish(store, "persistence", "nightly", new, keys.allowed_signers)
