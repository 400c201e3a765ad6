"""The image SBOM: CycloneDX 1.6 JSON valid against the schema, complete, and reproducible."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from packageurl import PackageURL

from imagefactory.report.packages import ManifestFieldError
from imagefactory.report.sbom import SBOM_FILE, make_sbom, validate_sbom, write_sbom
from imagefactory.store import layout
from imagefactory.verify import PackageList, VerifyResult, _record

RPMS = [
    "NetworkManager-1.40.16-15.0.1.el8.x86_64",
    "bash-4.4.20-4.el8.x86_64",
    "glibc-2.28-236.0.1.el8.i686",
    "glibc-2.28-236.0.1.el8.x86_64",
    "gpg-pubkey-ad986da3-5cabf60d.(none)",
    "python3.11-libs-3.11.2-2.el8.x86_64",
]
DEBS = ["libc6=2.36-9+deb12u4 amd64", "openssh-server=1:9.2p1-2+deb12u3 amd64", "tzdata=2024a all"]


def sealed(
    packages: list[str] | None = RPMS, fmt: str = "rpm", os_name: str = "ol8"
) -> dict[str, Any]:
    """A sealed manifest as build + verify leave it (the fields the SBOM reads)."""
    return {
        "schema": 1,
        "family": "persistence",
        "os": os_name,
        "image": {"file": "persistence.qcow2", "sha256": "7425da154892" + "c" * 52, "size": 4096},
        "layers": [{"name": "install", "key": "a" * 64}, {"name": "harden", "key": "b" * 64}],
        "git": {"revision": "0123456789abcdef0123456789abcdef01234567", "dirty": False},
        "build": {
            "started": "2026-11-24T09:50:00+00:00",
            "finished": "2026-11-24T10:15:00+00:00",
            "host": "build01",
        },
        "packages": packages,
        "packages_format": fmt,
    }


def test_sbom_is_valid_cyclonedx() -> None:
    """The rpm and the dpkg SBOM pass the library's strict CycloneDX 1.6 JSON schema."""
    for manifest in (sealed(), sealed(DEBS, "dpkg", "debian12")):
        data = make_sbom(manifest)
        assert validate_sbom(data) is None
        doc = json.loads(data)
        assert (doc["bomFormat"], doc["specVersion"]) == ("CycloneDX", "1.6")


def test_broken_sbom_is_rejected() -> None:
    """The validator can fail: a component of an unknown type is refused, naming the value."""
    doc = json.loads(make_sbom(sealed()))
    doc["components"][0]["type"] = "rpm-package"
    problem = validate_sbom(json.dumps(doc).encode())
    assert problem is not None and "rpm-package" in problem


def test_every_package_is_a_component() -> None:
    """Name, version-release, arch and purl of each rpm; the arch-less key has no arch."""
    doc = json.loads(make_sbom(sealed()))
    got = {
        c["purl"]: (
            c["name"],
            c["version"],
            {p["name"]: p["value"] for p in c.get("properties", [])},
        )
        for c in doc["components"]
    }
    assert len(got) == len(RPMS)
    assert got["pkg:rpm/oracle/glibc@2.28-236.0.1.el8?arch=i686&distro=ol-8"] == (
        "glibc",
        "2.28-236.0.1.el8",
        {"imagefactory:arch": "i686"},
    )
    assert got["pkg:rpm/oracle/python3.11-libs@3.11.2-2.el8?arch=x86_64&distro=ol-8"][0] == (
        "python3.11-libs"
    )
    assert got["pkg:rpm/oracle/gpg-pubkey@ad986da3-5cabf60d?distro=ol-8"][2] == {}
    for purl in got:  # each purl parses back to the component's name
        assert PackageURL.from_string(purl).name == got[purl][0]


def test_debian_packages_get_deb_purls() -> None:
    """dpkg entries become pkg:deb/debian purls with the full version (epoch kept)."""
    doc = json.loads(make_sbom(sealed(DEBS, "dpkg", "debian12")))
    purls = {PackageURL.from_string(c["purl"]) for c in doc["components"]}
    ssh = next(p for p in purls if p.name == "openssh-server")
    assert (ssh.type, ssh.namespace, ssh.version) == ("deb", "debian", "1:9.2p1-2+deb12u3")
    assert ssh.qualifiers == {"arch": "amd64", "distro": "debian-12"}
    assert {p.name for p in purls} == {"libc6", "openssh-server", "tzdata"}


def test_image_is_the_described_component() -> None:
    """The metadata component is the image: family, coming version, sha256, layer keys."""
    manifest = sealed()
    image = json.loads(make_sbom(manifest))["metadata"]["component"]
    props = {p["name"]: p["value"] for p in image["properties"]}
    finished = datetime.fromisoformat(manifest["build"]["finished"])
    assert (image["type"], image["name"]) == ("operating-system", "persistence")
    assert image["version"] == layout.derive_version(finished, manifest["image"]["sha256"])
    assert image["hashes"] == [{"alg": "SHA-256", "content": manifest["image"]["sha256"]}]
    assert props["imagefactory:layer:install"] == "a" * 64
    assert props["imagefactory:layer:harden"] == "b" * 64
    assert props["imagefactory:layers"] == "install,harden"


def test_published_version_names_the_image() -> None:
    """A published manifest's own version wins over the derived one."""
    manifest = {**sealed(), "version": "20261201T000000Z-7425da154892"}
    image = json.loads(make_sbom(manifest))["metadata"]["component"]
    assert image["version"] == "20261201T000000Z-7425da154892"


def test_same_manifest_same_bytes() -> None:
    """No clock, no random ids: the serial comes from the image, the time from the build."""
    manifest = sealed()
    first = make_sbom(manifest)
    assert make_sbom(copy.deepcopy(manifest)) == first
    doc = json.loads(first)
    assert doc["metadata"]["timestamp"] == manifest["build"]["finished"]
    other = sealed()
    other["image"]["sha256"] = "d" * 64
    assert json.loads(make_sbom(other))["serialNumber"] != doc["serialNumber"]


def test_same_bytes_in_another_process() -> None:
    """Set and hash order play no part: other interpreters (hash seeds) give the same bytes."""
    manifest = sealed(DEBS + ["zlib1g=1:1.2.13.dfsg-1 amd64"], "dpkg", "debian12")
    code = (
        "import json, sys; from imagefactory.report.sbom import make_sbom; "
        "sys.stdout.buffer.write(make_sbom(json.load(sys.stdin)))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(manifest).encode(),
            capture_output=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert outputs == {make_sbom(manifest)}


def test_missing_build_time_names_the_field() -> None:
    """Without build.finished there is no reproducible timestamp: the field is named."""
    manifest = sealed()
    del manifest["build"]["finished"]
    with pytest.raises(ManifestFieldError, match=r"^build\.finished: missing"):
        make_sbom(manifest)


def test_malformed_package_names_its_index(tmp_path: Path) -> None:
    """A bad entry is reported with the manifest file and the entry's index."""
    manifest = sealed(["bash-4.4.20-4.el8.x86_64", "not a package"])
    with pytest.raises(ManifestFieldError, match=r"manifest\.json: packages\[1\]: 'not a package'"):
        write_sbom(tmp_path, manifest)
    assert not (tmp_path / SBOM_FILE).exists()


def test_verify_record_writes_the_sbom(tmp_path: Path) -> None:
    """Recording the verification writes sbom.cdx.json of the recorded packages and names it."""
    manifest = tmp_path / "image" / "manifest.json"
    manifest.parent.mkdir()
    manifest.write_text(json.dumps({**sealed(None), "sbom": "stale.json"}))
    report = tmp_path / "persistence.junit.xml"
    report.write_text("<testsuite tests='1'/>")
    _record(manifest, VerifyResult(True, 1, 0, report), None, (), PackageList("rpm", tuple(RPMS)))
    doc = json.loads(manifest.read_text())
    assert doc["sbom"] == SBOM_FILE
    data = (manifest.parent / SBOM_FILE).read_bytes()
    assert validate_sbom(data) is None
    assert data == make_sbom(doc)  # the SBOM of exactly what the manifest records
    assert len(json.loads(data)["components"]) == len(RPMS)


def test_verify_record_without_image_fields_skips_the_sbom(tmp_path: Path) -> None:
    """A manifest lacking what the SBOM needs still gets its verification, and no SBOM."""
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"family": "f", "sbom": "sbom.cdx.json"}))
    report = tmp_path / "r" / "f.junit.xml"
    report.parent.mkdir()
    report.write_text("<testsuite tests='1'/>")
    _record(manifest, VerifyResult(True, 1, 0, report), None, (), PackageList("rpm", tuple(RPMS)))
    doc = json.loads(manifest.read_text())
    assert doc["verification"]["passed"] is True and "sbom" not in doc
    assert not (tmp_path / SBOM_FILE).exists()
