"""Layer variables, declared per layer by a JSON Schema (like an osbuild stage's options).

The install kind has a built-in schema (schemas/install-variables.schema.json); any other layer
names one with `variables_schema:`. Formats and unknown names are checked at config load, with
every problem at once. `required` names values an operator may still have to add (a key
fingerprint): they are checked when a family using the layer is planned, so one incomplete
layer does not make the whole file unusable, and a build stops before any VM starts.

Two extension keywords make the messages read like the rest of the config's: `x-message`
(`{value}` is the given value) and `x-hint` on a property or a `$defs` entry, and `x-unknown`
({message, hint}) at the top for a variable the schema does not know.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from imagefactory.errors import Problem

Schema = dict[str, Any]


def install_schema() -> Schema:
    text = resources.files("imagefactory").joinpath("schemas/install-variables.schema.json")
    doc: Schema = json.loads(text.read_text())
    return doc


def read_schema(path: Path, file: str, where: str) -> tuple[Schema | None, list[Problem]]:
    """A layer's `variables_schema` file, itself checked against the JSON Schema meta-schema."""
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        return None, [Problem(file, where, f"cannot read {path}: {exc.strerror}")]
    except ValueError as exc:
        return None, [Problem(file, where, f"{path} is not JSON: {exc}")]
    try:
        jsonschema.Draft202012Validator.check_schema(doc)
    except jsonschema.SchemaError as exc:
        return None, [Problem(file, where, f"{path} is not a JSON Schema: {exc.message}")]
    if not isinstance(doc, dict):
        return None, [Problem(file, where, f"{path} is not a JSON Schema object")]
    return doc, []


def problems(file: str, where: str, variables: Mapping[str, Any], schema: Schema) -> list[Problem]:
    """Unknown names and malformed values (not missing ones: see `missing`)."""
    shape = {k: v for k, v in schema.items() if k != "required"}
    known = schema.get("properties", {})
    unknown = schema.get("x-unknown", {})
    out: list[Problem] = []
    if schema.get("additionalProperties") is False:
        for name in variables:
            if name not in known:
                message = unknown.get("message", "not a variable of this layer")
                hint = unknown.get("hint", f"known: {', '.join(sorted(known))}")
                out.append(Problem(file, f"{where}.{name}", message, hint))
    seen: set[str] = set()
    validator = jsonschema.Draft202012Validator(shape)
    errors = [e for e in validator.iter_errors(dict(variables)) if e.absolute_path]
    order = {name: i for i, name in enumerate(known)}
    errors.sort(key=lambda e: order.get(str(e.absolute_path[0]), len(order)))
    for err in errors:
        name = str(err.absolute_path[0])
        if name in seen:
            continue
        seen.add(name)
        prop = known.get(name, {})
        value = variables[name]
        template = prop.get("x-message") or err.schema.get("x-message")
        message = template.format(value=value) if template else err.message
        hint = prop.get("x-hint") or err.schema.get("x-hint") or ""
        out.append(Problem(file, f"{where}.{name}", message, hint))
    return out


def missing(file: str, where: str, variables: Mapping[str, Any], schema: Schema) -> list[Problem]:
    """A problem for each required variable that has no value."""
    known = schema.get("properties", {})
    return [
        Problem(
            file,
            f"{where}.{name}",
            "required but not set",
            _hint(known.get(name, {}), schema) or "see the layer's variables_schema",
        )
        for name in schema.get("required", [])
        if name not in variables
    ]


def _hint(prop: Schema, schema: Schema) -> str:
    ref = prop.get("$ref", "")
    if ref.startswith("#/$defs/"):
        prop = schema.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
    return str(prop.get("x-hint", ""))
