"""The SBOM of a sealed image: CycloneDX JSON made with cyclonedx-python-lib from the manifest.

The image is the metadata component (type operating-system, hashed, its layer keys as
properties); each installed package a component with a purl. Nothing in it depends on when
or where it is made (serial number from the image sha256, timestamp = build.finished, bom-refs
= purls), so the same manifest always gives the same bytes.
"""

from __future__ import annotations

import re
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from imagefactory.errors import FactoryError
from imagefactory.report.packages import (
    ManifestFieldError,
    Package,
    build_finished,
    image_sha256,
    layer_keys,
    packages_of,
    version_label,
)
from imagefactory.util.fsutil import write_atomic

SBOM_FILE = "sbom.cdx.json"
MANIFEST_FIELD = "sbom"  # the sealed manifest's field naming the file (publish uploads it)
# 1.6, not the library's newest (1.7): what SBOM consumers (scanners, Dependency-Track) read.
SCHEMA = SchemaVersion.V1_6
PROP = "imagefactory"
# purl namespace (vendor) and distro qualifier prefix for a manifest's `os` (e.g. ol8, debian12)
_VENDORS = {"ol": "oracle", "rhel": "redhat", "centos": "centos", "rocky": "rocky"}
_OS_RE = re.compile(r"^([a-z]+?)-?(\d+(?:\.\d+)*)$")


def _distro(os_name: str) -> tuple[str, str | None]:
    """(family of the OS, distro qualifier): ol8 -> ("ol", "ol-8"), debian12 -> debian-12."""
    m = _OS_RE.match(os_name)
    if m is None:
        return os_name, None
    return m.group(1), f"{m.group(1)}-{m.group(2)}"


def package_purl(fmt: str, os_name: str, pkg: Package) -> PackageURL:
    """pkg:rpm/<vendor>/name@version-release?arch=..&distro=.. or pkg:deb/debian/name@version."""
    family, distro = _distro(os_name)
    qualifiers = {"arch": pkg.arch} if pkg.arch else {}
    if distro:
        qualifiers["distro"] = distro
    if fmt == "rpm":
        return PackageURL(
            type="rpm",
            namespace=_VENDORS.get(family, family or None),
            name=pkg.name,
            version=pkg.version,
            qualifiers=qualifiers,
        )
    namespace = family if family in ("debian", "ubuntu") else "debian"
    return PackageURL(
        type="deb", namespace=namespace, name=pkg.name, version=pkg.version, qualifiers=qualifiers
    )


def _tool_version() -> str:
    try:
        return metadata.version("imagefactory")
    except metadata.PackageNotFoundError:
        return "unknown"


def _image_component(manifest: dict[str, Any], sha: str, fmt: str | None) -> Component:
    props = [Property(name=f"{PROP}:os", value=str(manifest.get("os", "")))]
    layers = layer_keys(manifest)
    # Properties are kept sorted by name; the order of the layers goes into one more.
    props.append(Property(name=f"{PROP}:layers", value=",".join(n for n, _ in layers)))
    props += [Property(name=f"{PROP}:layer:{name}", value=key) for name, key in layers]
    image = manifest.get("image") or {}
    for field in ("file", "size", "format"):
        if image.get(field) is not None:
            props.append(Property(name=f"{PROP}:image:{field}", value=str(image[field])))
    if fmt:
        props.append(Property(name=f"{PROP}:packages_format", value=fmt))
    revision = (manifest.get("git") or {}).get("revision")
    if isinstance(revision, str):
        props.append(Property(name=f"{PROP}:git_revision", value=revision))
    return Component(
        type=ComponentType.OPERATING_SYSTEM,
        name=str(manifest.get("family", "")),
        version=version_label(manifest),
        bom_ref=f"image:{sha}",
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=sha)],
        properties=props,
    )


def make_sbom(manifest: dict[str, Any]) -> bytes:
    """CycloneDX 1.6 JSON of a sealed (or published) manifest; ManifestFieldError names the
    field when one it needs is missing or malformed."""
    sha = image_sha256(manifest)
    finished = build_finished(manifest)
    if finished is None:
        raise ManifestFieldError("build.finished", "missing or not an ISO 8601 time")
    if not isinstance(manifest.get("family"), str) or not manifest["family"]:
        raise ManifestFieldError("family", "missing")
    recorded = packages_of(manifest)
    fmt, pkgs = recorded if recorded else (None, [])
    os_name = str(manifest.get("os", ""))
    components = []
    for pkg in sorted(set(pkgs)):
        purl = package_purl(str(fmt), os_name, pkg)
        props = [Property(name=f"{PROP}:arch", value=pkg.arch)] if pkg.arch else []
        components.append(
            Component(
                type=ComponentType.LIBRARY,
                name=pkg.name,
                version=pkg.version,
                purl=purl,
                bom_ref=purl.to_string(),
                properties=props,
            )
        )
    image = _image_component(manifest, sha, fmt)
    tool = Component(
        type=ComponentType.APPLICATION,
        name="imagefactory",
        version=_tool_version(),
        bom_ref="tool:imagefactory",
    )
    meta = BomMetaData(component=image, timestamp=finished)
    meta.tools.components.add(tool)
    bom = Bom(
        components=components,
        metadata=meta,
        serial_number=uuid5(NAMESPACE_URL, f"imagefactory:sbom:{sha}"),
    )
    bom.register_dependency(image, components)
    with warnings.catch_warnings():
        # An image without recorded packages has an empty graph; that is what it knows.
        warnings.simplefilter("ignore", UserWarning)
        text = JsonV1Dot6(bom).output_as_string(indent=2)
    return (text + "\n").encode()


def validate_sbom(data: bytes) -> str | None:
    """None if `data` is valid CycloneDX 1.6 JSON (the library's strict JSON schema, shipped
    with it: no network), else why not."""
    error = JsonStrictValidator(SCHEMA).validate_str(data.decode())
    return None if error is None else str(error)


def write_sbom(directory: Path, manifest: dict[str, Any]) -> str:
    """Write the SBOM of `manifest` atomically as <directory>/sbom.cdx.json; returns the file
    name for the manifest's `sbom` field. ManifestFieldError names the manifest file and the
    field it lacks."""
    where = directory / "manifest.json"
    try:
        data = make_sbom(manifest)
    except ManifestFieldError as exc:
        raise exc.at(str(where)) from None
    problem = validate_sbom(data)
    if problem is not None:  # a bug here, not bad input: never publish an invalid SBOM
        raise FactoryError(f"{where}: the SBOM made from it is not valid CycloneDX: {problem}")
    write_atomic(directory / SBOM_FILE, data)
    return SBOM_FILE
