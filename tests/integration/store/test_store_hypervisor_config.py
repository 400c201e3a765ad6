"""A hypervisor's config, through the invoke tasks: the store tasks read only `store:` (a copy
of factory.yaml anywhere, or a store-only file), endpoint and bucket may come from the
environment, and a read-only identity can list and pull but not publish."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from imagefactory.store.publish import publish_image
from imagefactory.store.s3_backend import S3Backend
from imagefactory.store.settings import (
    ENV_ACCESS,
    ENV_BUCKET,
    ENV_CREDENTIALS_FILE,
    ENV_ENDPOINT,
    ENV_SECRET,
    Credentials,
)
from tests.clikit import run_task
from tests.integration.store.http_stubs import silent_server
from tests.loopback_s3 import LoopbackS3
from tests.storekit import SigningKeys, make_sealed_image

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
MIB = 1024 * 1024


def invoke(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """An invoke task as a user runs it, with only the IMAGEFACTORY_* variables of `env`."""
    return run_task(*args, cwd=cwd, env=env, without_store_env=True)


def key_env(key: Credentials) -> dict[str, str]:
    return {ENV_ACCESS: key.access_key, ENV_SECRET: key.secret_key}


def store_only_config(
    directory: Path, keys: SigningKeys, endpoint: str, secure: bool, **store: object
) -> Path:
    """/etc/imagefactory/store.yaml as a hypervisor has it: paths relative to the file."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(keys.allowed_signers, directory / "allowed_signers")
    section = {
        "kind": "s3",
        "endpoint": endpoint,
        "secure": secure,
        "allowed_signers": "allowed_signers",
        "image_dir": "images",
        **store,
    }
    path = directory / "store.yaml"
    path.write_text(yaml.safe_dump({"store": section}))
    return path


def publish_one(server: LoopbackS3, bucket: str, keys: SigningKeys, sealed: Path) -> str:
    """Publish an image on `stable` with the builder's key; its version."""
    backend = S3Backend(server.settings(bucket), server.credentials())
    image = make_sealed_image(sealed, size=2 * MIB, seed=41)
    return publish_image(
        backend, image, keys.private_key, channel="stable", show_progress=False
    ).version


def installed(image_dir: Path) -> list[str]:
    return sorted(p.name for p in image_dir.glob("*.qcow2"))


def test_copy_of_the_factory_config_outside_the_repo_serves_the_store_tasks(
    s3_server: LoopbackS3, new_bucket: str, keys: SigningKeys, tmp_path: Path
) -> None:
    """factory.yaml copied to a hypervisor: images, pull and prune work (the build paths in it
    do not exist there); endpoint and bucket come from the environment."""
    version = publish_one(s3_server, new_bucket, keys, tmp_path / "sealed")
    etc = tmp_path / "etc"
    etc.mkdir()
    text = (REPO / "factory.yaml").read_text()
    for key, value in {
        "secure": str(s3_server.secure).lower(),
        "allowed_signers": keys.allowed_signers,  # the hypervisor's own paths
        "image_dir": tmp_path / "hv",
    }.items():
        text, count = re.subn(rf"^  {key}: \S+", f"  {key}: {value}", text, flags=re.M)
        assert count == 1, key
    config = etc / "factory.yaml"
    config.write_text(text)
    env = {
        **key_env(s3_server.credentials()),
        ENV_ENDPOINT: s3_server.endpoint,
        ENV_BUCKET: new_bucket,
    }
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    for task in (["images"], ["pull", "--family=persistence"], ["prune"]):
        proc = invoke(*task, f"--config={config}", cwd=cwd, env=env)
        assert proc.returncode == 0, proc.stderr
        assert "problem" not in proc.stderr and "Traceback" not in proc.stderr
    assert installed(tmp_path / "hv") == [f"persistence-{version}.qcow2"]
    plan = invoke("plan", "--family=persistence", f"--config={config}", cwd=cwd, env=env)
    assert plan.returncode == 2 and "does not exist" in plan.stderr  # build tasks: whole file


def test_store_only_config_with_paths_relative_to_it(
    s3_server: LoopbackS3, new_bucket: str, keys: SigningKeys, tmp_path: Path
) -> None:
    """A file holding only `store:`: pull installs into its image_dir, relative to the file,
    whatever the working directory; images checks the pointer against its allowed_signers."""
    version = publish_one(s3_server, new_bucket, keys, tmp_path / "sealed")
    config = store_only_config(
        tmp_path / "etc", keys, s3_server.endpoint, s3_server.secure, bucket=new_bucket
    )
    env = key_env(s3_server.credentials())
    listing = invoke("images", f"--config={config}", cwd=tmp_path, env=env)
    assert listing.returncode == 0, listing.stderr
    assert version in listing.stdout and "stable" in listing.stdout
    assert "unverified" not in listing.stdout
    pulled = invoke("pull", "--family=persistence", f"--config={config}", cwd=tmp_path, env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert installed(tmp_path / "etc" / "images") == [f"persistence-{version}.qcow2"]
    assert not (tmp_path / "images").exists()


def test_bad_environment_value_is_one_clear_error(
    s3_server: LoopbackS3, keys: SigningKeys, tmp_path: Path
) -> None:
    """IMAGEFACTORY_STORE_ENDPOINT with a scheme: exit 2, naming the variable."""
    config = store_only_config(tmp_path / "etc", keys, s3_server.endpoint, s3_server.secure)
    env = {**key_env(s3_server.credentials()), ENV_ENDPOINT: f"http://{s3_server.endpoint}"}
    proc = invoke("images", f"--config={config}", cwd=tmp_path, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"environment: {ENV_ENDPOINT}: must not contain a scheme" in proc.stderr


def test_read_only_identity_lists_and_pulls_but_cannot_publish_or_promote(
    s3_server: LoopbackS3, new_bucket: str, keys: SigningKeys, tmp_path: Path
) -> None:
    """The hypervisor's identity (read and list only, from a credentials file): images and
    pull work; publish and promote fail with one clear message and change nothing.

    moto 5.2.6 fails this: it checks a HEAD of an object against an `s3:HeadObject` action
    that AWS does not have (AWS checks s3:GetObject). The policy is right; the lock keeps
    moto at 5.2.5 (docs/store.md, "moto 5.2.6 and HEAD")."""
    reader = s3_server.readonly_credentials()
    version = publish_one(s3_server, new_bucket, keys, tmp_path / "sealed")
    config = store_only_config(
        tmp_path / "etc",
        keys,
        s3_server.endpoint,
        s3_server.secure,
        bucket=new_bucket,
        signing_key=str(keys.private_key),
    )
    ini = tmp_path / "etc" / "s3.ini"
    ini.write_text(f"[s3]\naccess_key = {reader.access_key}\nsecret_key = {reader.secret_key}\n")
    ini.chmod(0o600)
    env = {ENV_CREDENTIALS_FILE: str(ini)}
    for task in (["images"], ["pull", "--family=persistence"]):
        proc = invoke(*task, f"--config={config}", cwd=tmp_path, env=env)
        assert proc.returncode == 0, proc.stderr
    assert installed(tmp_path / "etc" / "images") == [f"persistence-{version}.qcow2"]
    store = S3Backend(s3_server.settings(new_bucket), s3_server.credentials())
    before = {key: store.get_bytes(key) for key in store.list_keys("")}
    artifacts = tmp_path / "artifacts"
    make_sealed_image(artifacts / "images" / "persistence", size=MIB, seed=42)
    writes = (
        ["publish", "--family=persistence"],
        ["promote", "--family=persistence", f"--version={version}", "--channel=nightly"],
    )
    for task in writes:
        proc = invoke(
            *task,
            f"--config={config}",
            cwd=tmp_path,
            env={**env, "INVOKE_FACTORY_ARTIFACTS": str(artifacts)},
        )
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "credentials rejected (AccessDenied)" in errors[0], task
        assert reader.secret_key not in proc.stderr + proc.stdout
    assert {key: store.get_bytes(key) for key in store.list_keys("")} == before


def test_hung_store_fails_the_task_within_the_read_timeout(
    keys: SigningKeys, tmp_path: Path
) -> None:
    """A server that accepts connections and never answers: pull exits 1 after about
    2 x store.read_timeout with one line naming the setting, no traceback."""
    with silent_server() as endpoint:
        config = store_only_config(tmp_path / "etc", keys, endpoint, False, read_timeout=1)
        start = time.monotonic()
        proc = invoke(
            "pull",
            "--family=persistence",
            f"--config={config}",
            cwd=tmp_path,
            env=key_env(Credentials("AKIAEXAMPLE", "not-a-secret")),
        )
        elapsed = time.monotonic() - start
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no answer within 1 s (2 tries)" in errors[0], proc.stderr
    assert "raise store.read_timeout" in errors[0]
    assert elapsed < 2 * 1 + 10, elapsed  # 10 s: starting Python and invoke, twice over
