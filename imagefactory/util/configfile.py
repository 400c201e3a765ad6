"""Reading a config file: YAML that refuses duplicate keys, and JSON Schema violations as
Problems with their YAML path and a hint. factory.yaml and fleet.yaml are both read this way
(imagefactory.config, imagefactory.fleet.config).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

from imagefactory.errors import ConfigError, Problem
from imagefactory.util.model import load_schema, schema_registry


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys instead of keeping the last one."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}' (line {mark.line + 1})", mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_unique_mapping,
)


def _yaml_path(parts: Any) -> str:
    return "." + ".".join(str(p) for p in parts) if parts else "."


def _whole_number(checker: Any, instance: Any) -> bool:
    # JSON Schema counts 5.0 as an integer; the code reading the field does not (range(5.0)
    # fails, <vcpu>4.0</vcpu> is refused by libvirt): a count is written without a point.
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _whole_number),
)


def schema_problems(file: str, doc: Any, schema: str = "factory") -> list[Problem]:
    """Every JSON Schema violation of `doc` as a Problem with its YAML path and a hint."""
    validator = _Validator(load_schema(schema), registry=schema_registry())
    problems = []
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    # a value of the wrong type gets that one message, not also the range or value it misses
    mistyped = {_yaml_path(e.absolute_path) for e in errors if e.validator == "type"}
    for err in errors:
        path = _yaml_path(err.absolute_path)
        if path in mistyped and err.validator != "type":
            continue
        hint = ""
        if err.validator == "additionalProperties":
            props = err.schema.get("properties", {})
            # deprecated: keys declared only to be refused with their own message
            allowed = sorted(k for k, v in props.items() if not v.get("deprecated"))
            hint = f"known keys here: {', '.join(allowed)}" if allowed else ""
        elif err.validator == "enum":
            hint = "allowed: " + ", ".join(map(str, err.validator_value))
        elif err.validator == "pattern":
            hint = f"must match {err.validator_value}"
        elif err.validator == "type" and "integer" in str(err.validator_value):
            hint = "a whole number, written without a decimal point or quotes"
        problems.append(Problem(file, path, err.message, hint))
    return problems


def read_yaml(path: Path) -> Any:
    """Parse YAML safely; a syntax error, duplicate key or bytes that are not UTF-8 text
    become a ConfigError with the line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError([Problem(str(path), ".", f"cannot read file: {exc.strerror}")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            [
                Problem(
                    str(path),
                    f"line {line}, column {column}",
                    f"not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be decoded",
                    "save the file as UTF-8",
                )
            ]
        ) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "."
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem(str(path), where, f"invalid YAML: {problem}")]) from None
