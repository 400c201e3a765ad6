"""`invoke revoke` through the CLI, on the directory store and a real S3 server: the signed
record, promote refusing it, images showing it, a forged record reported and never taken as
valid, unknown versions refused, revoking twice."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from imagefactory.store import layout
from imagefactory.store.backend import StoreBackend, StoreError
from imagefactory.store.channels import read_channel
from imagefactory.store.fs_backend import FsBackend
from imagefactory.store.publish import publish_image
from imagefactory.store.revocation import read_revocations
from imagefactory.store.s3_backend import S3Backend
from imagefactory.store.settings import ENV_ACCESS, ENV_SECRET
from tests.clikit import run_task
from tests.loopback_s3 import LoopbackS3
from tests.storekit import SigningKeys, make_sealed_image

pytestmark = pytest.mark.integration
REASON = "CVE-2026-0001 in openssl"


@dataclasses.dataclass(frozen=True)
class Cli:
    """The invoke tasks pointed at the test's store (config file and environment)."""

    backend: StoreBackend
    config: Path
    env: dict[str, str]
    cwd: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_task(
            *args, f"--config={self.config}", cwd=self.cwd, env=self.env, without_store_env=True
        )


@pytest.fixture
def cli(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path, request: pytest.FixtureRequest
) -> Cli:
    section: dict[str, object] = {
        "allowed_signers": str(keys.allowed_signers),
        "signing_key": str(keys.private_key),
        "image_dir": str(tmp_path / "pulled"),
    }
    env: dict[str, str] = {}
    if isinstance(backend, FsBackend):
        section |= {"kind": "fs", "path": str(backend.root)}
    else:
        assert isinstance(backend, S3Backend)
        server: LoopbackS3 = request.getfixturevalue("s3_server")
        s = backend.settings
        section |= {"kind": "s3", "endpoint": s.endpoint, "bucket": s.bucket, "secure": s.secure}
        env = {ENV_ACCESS: server.access_key, ENV_SECRET: server.secret_key}
    config = tmp_path / "store.yaml"
    config.write_text(yaml.safe_dump({"store": section}))
    return Cli(backend, config, env, tmp_path)


def publish(cli: Cli, keys: SigningKeys, day: int, channel: str | None = "stable") -> str:
    """A 1 MiB image of `persistence` built on that day of November 2026; its version."""
    sealed = make_sealed_image(
        cli.cwd / f"sealed-{day}",
        seed=day,
        finished=datetime(2026, 11, day, 10, 15, tzinfo=UTC),
        score=90.0 + day / 10,
    )
    return publish_image(
        cli.backend, sealed, keys.private_key, channel=channel, show_progress=False
    ).version


def test_revoked_version_cannot_be_promoted(cli: Cli, keys: SigningKeys) -> None:
    """revoke V2, then promote V2 to stable: exit 1 naming family, version and reason; stable
    still on V1."""
    v1 = publish(cli, keys, 24)
    v2 = publish(cli, keys, 25, channel=None)
    done = cli.run("revoke", "--family=persistence", f"--version={v2}", f"--reason={REASON}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == f"revoked persistence {v2}: {REASON}"
    refused = cli.run("promote", "--family=persistence", f"--version={v2}", "--channel=stable")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"persistence {v2} is revoked ({REASON}; at " in refused.stderr
    assert "not promoting it to stable" in refused.stderr and "Traceback" not in refused.stderr
    assert (read_channel(cli.backend, "persistence", "stable") or {})["version"] == v1


def test_a_hypervisor_does_not_pull_a_revoked_version(cli: Cli, keys: SigningKeys) -> None:
    """stable points at V1, then V1 is revoked: pull of the channel (and of V1 by name)
    exits 1 naming the version and reason, and nothing is installed."""
    v1 = publish(cli, keys, 24)
    done = cli.run("revoke", "--family=persistence", f"--version={v1}", f"--reason={REASON}")
    assert done.returncode == 0, done.stdout + done.stderr
    for extra in ((), (f"--version={v1}",)):
        refused = cli.run("pull", "--family=persistence", *extra)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"persistence {v1} is revoked ({REASON}; at " in refused.stderr
    assert not list((cli.cwd / "pulled").glob("**/*.qcow2"))


def test_images_shows_the_revoked_version_and_reason(cli: Cli, keys: SigningKeys) -> None:
    """images: the revoked row says REVOKED yes, the other -, and the reason is listed."""
    v1 = publish(cli, keys, 24)
    v2 = publish(cli, keys, 25, channel=None)
    cli.run("revoke", "--family=persistence", f"--version={v1}", f"--reason={REASON}")
    out = cli.run("images")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[-1] == "REVOKED"
    assert [ln.split()[1] + " " + ln.split()[-1] for ln in lines[1:3]] == [
        f"{v1} yes",
        f"{v2} -",
    ]
    assert lines[4] == "revoked versions (promote and the fleet refuse them):"
    assert lines[5].startswith(f"  persistence/{v1}: {REASON} (at ")


def test_forged_revocation_record_is_reported_and_refused(cli: Cli, keys: SigningKeys) -> None:
    """A record changed after signing: images marks it BAD and says why, the forged reason is
    not shown as a revocation, and promote refuses the version until it is repaired."""
    publish(cli, keys, 24)
    v2 = publish(cli, keys, 25, channel=None)
    cli.run("revoke", "--family=persistence", f"--version={v2}", f"--reason={REASON}")
    key = layout.revocation_key("persistence", v2)
    doc = json.loads(cli.backend.get_bytes(key))
    doc["reason"] = "nothing wrong, deploy it"
    cli.backend.put_bytes(key, json.dumps(doc).encode())
    out = cli.run("images")
    assert out.returncode == 0, out.stdout + out.stderr
    row = next(ln for ln in out.stdout.splitlines() if ln.startswith(f"persistence  {v2}"))
    assert row.split()[-1] == "BAD"
    assert "revoked versions" not in out.stdout and "nothing wrong" not in out.stdout
    assert (
        f"  persistence/{v2}: persistence {v2} revocation record: signature does not match "
        "its content" in out.stdout
    )
    refused = cli.run("promote", "--family=persistence", f"--version={v2}", "--channel=stable")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "has a revocation record that does not verify" in refused.stderr
    again = cli.run("revoke", "--family=persistence", f"--version={v2}", "--reason=re-signed")
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.splitlines()[1].startswith("  replaced a record that did not verify: ")
    rec = read_revocations(cli.backend, "persistence", keys.allowed_signers)[v2]
    assert (rec.verified, rec.reason) == (True, "re-signed")


def test_revoking_an_unknown_version_is_refused(cli: Cli, keys: SigningKeys) -> None:
    """A well-formed version the store does not have: exit 1, no record written."""
    publish(cli, keys, 24)
    absent = "20261130T101500Z-000000000000"
    out = cli.run("revoke", "--family=persistence", f"--version={absent}", f"--reason={REASON}")
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"persistence {absent} is not a published version; nothing revoked" in out.stderr
    assert cli.backend.list_keys("revocations/") == []


def test_revoking_twice_says_already_and_warns_of_channels(cli: Cli, keys: SigningKeys) -> None:
    """Revoking stable's target warns that stable points at it; the second revoke changes
    nothing and says it was already revoked, with the first reason."""
    v1 = publish(cli, keys, 24)
    first = cli.run("revoke", "--family=persistence", f"--version={v1}", f"--reason={REASON}")
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.splitlines()[1].startswith(
        f"warning: channel(s) stable of persistence still point at {v1}; promote another "
    )
    record = cli.backend.get_bytes(layout.revocation_key("persistence", v1))
    second = cli.run("revoke", "--family=persistence", f"--version={v1}", "--reason=other")
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.splitlines()[0].startswith(
        f"persistence {v1} is already revoked: {REASON} (at "
    )
    assert cli.backend.get_bytes(layout.revocation_key("persistence", v1)) == record


def test_republishing_a_revoked_version_does_not_move_a_channel(
    cli: Cli, keys: SigningKeys
) -> None:
    """Publishing the same sealed image again with a channel: refused once it is revoked."""
    v1 = publish(cli, keys, 24, channel=None)
    cli.run("revoke", "--family=persistence", f"--version={v1}", f"--reason={REASON}")
    with pytest.raises(StoreError, match="has a revocation record; not moving stable to it"):
        publish(cli, keys, 24)
    assert read_channel(cli.backend, "persistence", "stable") is None
