"""Persistent pin (/var/lib/appcore/pin.json), image family (/etc/appcore/image.json) and the
per-boot result (/run/appcore/state.json)."""

import json
import time
from typing import Any, Dict, Optional

from appcore.catalogue import PARAM, Catalogue
from appcore.errors import CatalogueError
from appcore.hostfs import Host

IMAGE_JSON = "/etc/appcore/image.json"
PIN_JSON = "/var/lib/appcore/pin.json"
STATE_JSON = "/run/appcore/state.json"


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def image_family(host: Host, catalogue: Catalogue) -> str:
    """The family baked into this image; missing or unknown is a hard error (fail closed)."""
    if not host.exists(IMAGE_JSON):
        raise CatalogueError(
            IMAGE_JSON, ["missing: the image build must run `appcore image-init --family NAME`"]
        )
    try:
        doc = host.read_json(IMAGE_JSON)
    except ValueError as exc:
        raise CatalogueError(IMAGE_JSON, [f"not valid JSON: {exc}"]) from exc
    family = doc.get("family") if isinstance(doc, dict) else None
    if family not in catalogue.families:
        raise CatalogueError(
            IMAGE_JSON, [f"family: {family!r} is not one of {sorted(catalogue.families)}"]
        )
    return str(family)


def write_image_json(
    host: Host, catalogue: Catalogue, family: str, check_only: bool = False
) -> bool:
    if not PARAM.match(family) or family not in catalogue.families:
        raise CatalogueError("--family", [f"{family!r} is not one of {sorted(catalogue.families)}"])
    if check_only:
        return False
    return host.write_text(IMAGE_JSON, json.dumps({"family": family}, indent=2) + "\n")


def read_pin(host: Host) -> Optional[Dict[str, Any]]:
    if not host.exists(PIN_JSON):
        return None
    try:
        doc = host.read_json(PIN_JSON)
    except ValueError as exc:
        raise CatalogueError(
            PIN_JSON,
            [f"corrupt pin file ({exc}); inspect it, then remove it only if the role is known"],
        ) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("role"), str):
        raise CatalogueError(PIN_JSON, ["role: missing"])
    return doc


def write_pin(host: Host, doc: Dict[str, Any]) -> None:
    host.write_text(PIN_JSON, json.dumps(doc, indent=2, sort_keys=True) + "\n", 0o600)


def write_state(host: Host, doc: Dict[str, Any]) -> None:
    host.write_text(STATE_JSON, json.dumps(doc, indent=2, sort_keys=True) + "\n", 0o644)


def read_state(host: Host) -> Optional[Dict[str, Any]]:
    if not host.exists(STATE_JSON):
        return None
    doc = host.read_json(STATE_JSON)
    return doc if isinstance(doc, dict) else None
