"""Small stand-in projects for tests: a config whose root layer `base` is built from the
Debian stand-in source `deb`, and a directory holding it with every script its layers name.

    config = standin_config(
        {"one": script_layer("one"), "seal": script_layer("seal", seal=True)},
        {"fa": ["base", "one", "seal"]},
    )
    write_standin(tmp_path, config)  # tmp_path/f.yaml, s/10-do-one.sh, s/10-do-seal.sh

The text is flow-style YAML, one entry a line, as a test would write it by hand, so a test
may still edit it with str.replace (`epoch: "1"`, `seal: true}`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml


class Raw(str):
    """YAML text the config holds as it is written (e.g. a malformed value under test)."""

    __slots__ = ()


def script_layer(name: str, **fields: object) -> dict[str, object]:
    """The usual layer: `{scripts: [s/10-do-NAME.sh], ...fields}`."""
    return {"scripts": [f"s/10-do-{name}.sh"], **fields}


def standin_config(
    layers: Mapping[str, object],
    families: Mapping[str, Sequence[str] | Mapping[str, object]],
    *,
    epoch: str = "1",
    build: Mapping[str, object] | None = None,
    sources: Mapping[str, object] | None = None,
) -> str:
    """A config of the stand-in source `deb` (with `epoch`), its root layer `base`, then
    `layers`; a family given as a list of layers is `{layers: [...]}`. `build` and further
    `sources` are added when given."""
    deb = {"kind": "standin", "suite": "bookworm", "epoch": epoch, "packages": ["sudo"]}
    sections: dict[str, Mapping[str, object]] = {
        "sources": {"deb": deb, **(sources or {})},
        "layers": {"base": {"source": "deb"}, **layers},
        "families": {name: _family(value) for name, value in families.items()},
    }
    lines = ["version: 1"] + ([f"build: {_flow(build)}"] if build is not None else [])
    for section, entries in sections.items():
        lines.append(f"{section}:")
        lines += [f"  {name}: {_flow(value)}" for name, value in entries.items()]
    return "\n".join(lines) + "\n"


def write_standin(root: Path, config: str, name: str = "f.yaml") -> Path:
    """Write `config` as root/name and each script its layers name (one echoing the name of
    the first layer that names it); returns the config's path."""
    root.mkdir(parents=True, exist_ok=True)
    scripts: dict[str, str] = {}
    for layer, body in yaml.safe_load(config)["layers"].items():
        for script in body.get("scripts", []):
            scripts.setdefault(script, layer)
    for script, layer in scripts.items():
        (root / script).parent.mkdir(parents=True, exist_ok=True)
        (root / script).write_text(f"#!/bin/bash\necho {layer}\n")
    (root / name).write_text(config)
    return root / name


def _family(value: Sequence[str] | Mapping[str, object]) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {"layers": list(value)}


def _flow(value: object) -> str:
    """`value` as one line of flow-style YAML; a string is quoted only where YAML would
    otherwise read something else (`"1"`, a date)."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value if _reads_back(value) else json.dumps(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    raise TypeError(f"no flow YAML for {value!r}")


def _reads_back(text: str) -> bool:
    """Whether `text`, unquoted in a flow sequence, reads back as this very string."""
    try:
        return bool(yaml.safe_load(f"[{text}]") == [text])
    except yaml.YAMLError:
        return False
