"""Fixtures for fleet tests: a directory store holding signed templates, and simulated
hypervisors (libvirt's test driver, one host XML each with its own CPUs and memory)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from imagefactory.store import api
from imagefactory.store.settings import StoreSettings
from imagefactory.store.testkit import make_sealed_image, make_signing_keys
from tests.conftest import require_tool

HOST_XML = """<node>
  <cpu><mhz>2000</mhz><model>x86_64</model><active>{cpus}</active><nodes>1</nodes>
    <sockets>1</sockets><cores>{cpus}</cores><threads>1</threads></cpu>
  <memory>{kib}</memory>
</node>
"""


def simulated_host(directory: Path, name: str, cpus: int = 16, memory_gib: int = 64) -> str:
    """A test:/// URI for a simulated hypervisor with these CPUs and this memory."""
    path = directory / f"{name}.xml"
    path.write_text(HOST_XML.format(cpus=cpus, kib=memory_gib * 1024 * 1024))
    return f"test://{path}"


@dataclasses.dataclass(frozen=True)
class TemplateStore:
    settings: StoreSettings  # as a hypervisor sees it (no signing key needed)
    signing_key: Path

    def publish(
        self, family: str, workdir: Path, seed: int = 0, channel: str = "stable", day: int = 24
    ) -> str:
        """A real (empty) qcow2 published as `family`; another `day` is another version."""
        sealed = make_sealed_image(
            workdir / f"{family}-{seed}-{day}",
            family,
            64 * 1024 * 1024,
            seed=seed,
            qcow2=True,
            finished=datetime(2026, 11, day, 10, 15, tzinfo=UTC),
        )
        settings = dataclasses.replace(self.settings, signing_key=self.signing_key)
        return api.publish(settings, sealed, channel, show_progress=False).version


@pytest.fixture
def template_store(tmp_path: Path) -> TemplateStore:
    require_tool("qemu-img", "ssh-keygen")
    keys = make_signing_keys(tmp_path / "keys")
    settings = StoreSettings(
        kind="fs",
        path=tmp_path / "store",
        allowed_signers=keys.allowed_signers,
        image_dir=tmp_path / "pulled",
    )
    return TemplateStore(settings, keys.private_key)
