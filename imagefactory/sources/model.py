"""The install sources a root layer is made from, as the configuration declares them.

They live with the code that fetches and builds them (iso.py, standin.py), below the config
that reads them: imagefactory.config builds these from its `sources:` section.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IsoSource:
    name: str
    url: str
    sha256: str
    os: str = ""


@dataclass(frozen=True)
class StandinSource:
    """A small Debian guest built from packages on the build host (the CI stand-in for OL8)."""

    name: str
    suite: str
    packages: tuple[str, ...]
    epoch: str
    disk_size_mib: int = 2048
    os: str = "debian12"


Source = IsoSource | StandinSource
