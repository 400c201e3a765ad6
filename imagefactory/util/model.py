"""Frozen dataclasses from schema-validated mappings, so that each setting is declared once.

A section of a config file has two declarations, each saying something the other does not:

* its JSON Schema (imagefactory/schemas/*.schema.json) says what the file may contain: keys,
  JSON types, allowed values and ranges, and the messages a user sees about them;
* a frozen dataclass says what the program holds: Python types and defaults.

`build` joins the two. Given a mapping that the schema has already accepted, it constructs the
dataclass and converts each value by the field's type hint:

* ``Path``: ``~`` expanded; a relative path joined to `root`, the directory of the file that
  names it (paths in a file are relative to the file, wherever the program runs);
* an ``Enum``: the member with that value;
* ``tuple[X, ...]`` (or a fixed ``tuple[X, Y]``): a tuple of converted items (JSON has lists);
* ``Mapping[str, X]`` / ``dict[str, X]``: a dict of converted values;
* a dataclass: built recursively from the nested mapping, with the same `root`;
* ``X | None``: None stays None, anything else is converted as an X;
* ``float``: an integer from the file becomes a float;
* anything else (str, int, bool, a union of several types): the value as it is.

A field that needs its own conversion names it in its metadata, e.g. a size that may be written
as ``64MiB``::

    part_size: int = field(default=8 * MIB, metadata={"parse": parse_size})

Defaults go through the same conversion as written values, so a default path is relative to
`root` just like a written one. A conversion therefore has to accept the field's own default: the
built-in ones return a value of the field's type unchanged, and a `parse` callable must too
(parse_size returns an int as it is).

`build` trusts the schema: a value of the wrong shape raises (TypeError, ValueError, KeyError)
instead of being reported. Report a file's problems with the schema first (schema_registry gives
the validator every shipped schema, so one schema can `$ref` another by file name), then build,
then check the rules across fields on the built object. schema_mismatches lets a unit test keep a
schema and its dataclass in step.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import functools
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012, SchemaRegistry

T = TypeVar("T")

PARSE = "parse"  # the field metadata key of a custom conversion: Callable[[Any], value]
Parse = Callable[[Any], Any]

_SCHEMA_SUFFIX = ".schema.json"


@functools.cache
def schema_registry() -> SchemaRegistry:
    """Every schema in imagefactory/schemas under its file name, for a validator's `registry=`:
    ``{"$ref": "store.schema.json"}`` in one of them resolves to that file."""
    folder = resources.files("imagefactory").joinpath("schemas")
    found = [
        (
            item.name,
            Resource.from_contents(json.loads(item.read_text()), default_specification=DRAFT202012),
        )
        for item in folder.iterdir()
        if item.name.endswith(_SCHEMA_SUFFIX)
    ]
    registry: SchemaRegistry = Registry().with_resources(found)
    return registry


def load_schema(name: str) -> dict[str, Any]:
    """The shipped schema `name` ("store" for schemas/store.schema.json), as parsed JSON (a
    copy: the registry's own stays as shipped)."""
    contents = schema_registry().contents(name + _SCHEMA_SUFFIX)
    if not isinstance(contents, dict):
        raise TypeError(f"{name}{_SCHEMA_SUFFIX} is not a schema object")
    return copy.deepcopy(contents)


_SIZE = re.compile(r"\s*([0-9]+)\s*(KiB|MiB|GiB)?\s*")
_SIZE_UNITS = {None: 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def parse_size(value: int | str) -> int:
    """A number of bytes, from an int or from a string like '64MiB', '1GiB', '512KiB', '4096'.

    For ``field(metadata={"parse": parse_size})``; a schema property of this form is
    ``{"type": ["integer", "string"], "pattern": "^\\\\s*[0-9]+\\\\s*(KiB|MiB|GiB)?\\\\s*$"}``.
    Raises ValueError on any other string, TypeError on other types (bool included)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"a size is an int or a string, not {type(value).__name__}")
    if isinstance(value, int):
        return value
    match = _SIZE.fullmatch(value)
    if match is None:
        raise ValueError(f"not a size: {value!r} (expected bytes, or e.g. 64MiB or 1GiB)")
    return int(match[1]) * _SIZE_UNITS[match[2]]


def build(
    cls: type[T],
    data: Mapping[str, Any],
    *,
    root: Path | None = None,
    given: Mapping[str, Any] | None = None,
) -> T:
    """An instance of the dataclass `cls` from `data`, a mapping the section's schema accepted.

    Keys of `data` are field names; each value is converted by its field's type hint or `parse`
    metadata (see the module docstring), and so is the default of every field `data` leaves out.
    Relative paths are joined to `root`; with no root they stay relative. `given` supplies
    values that are not in the file (a section's name, say): they are used as they are.
    A key that is not an init field raises TypeError: the schema and the dataclass disagree."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"{cls!r} is not a dataclass")
    given = given or {}
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {', '.join(map(repr, unknown))}")
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name in given:
            values[name] = given[name]
            continue
        if name in data:
            raw = data[name]
        elif f.default is not dataclasses.MISSING:
            raw = f.default
        elif f.default_factory is not dataclasses.MISSING:
            raw = f.default_factory()
        else:
            continue  # required and missing: the constructor names it
        parse: Parse | None = f.metadata.get(PARSE)
        values[name] = parse(raw) if parse is not None else _convert(raw, hints[name], root)
    return cls(**values)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(value: Any, hint: Any, root: Path | None) -> Any:
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        arms = [a for a in args if a is not type(None)]
        return _convert(value, arms[0], root) if len(arms) == 1 else value
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(item, args[0], root) for item in value)
        return tuple(_convert(item, a, root) for item, a in zip(value, args, strict=True))
    if origin in (dict, Mapping):
        return {key: _convert(item, args[1], root) for key, item in value.items()}
    if not isinstance(hint, type):
        return value  # Any, Literal, a parametrised type not handled above
    if issubclass(hint, Path):
        path = Path(value).expanduser()
        return root / path if root is not None and not path.is_absolute() else path
    if issubclass(hint, enum.Enum):
        return hint(value)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):  # a default instance: rebuilt so its paths are resolved too
            value = {f.name: getattr(value, f.name) for f in dataclasses.fields(hint) if f.init}
        return build(hint, value, root=root)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def schema_mismatches(cls: type, schema: Mapping[str, Any]) -> list[str]:
    """Where the dataclass `cls` and the object schema of its section disagree: a property with
    no init field or the reverse, an Enum field whose schema `enum` lists other values, and
    the same for a nested dataclass described inline. A property marked ``"deprecated": true``
    is one the loader refuses with its own message, and has no field. Empty when they are in
    step; meant for one unit test per section."""
    out: list[str] = []
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    props = {k: p for k, p in schema.get("properties", {}).items() if not p.get("deprecated")}
    name = cls.__name__
    out += [f"{name}: schema property {p!r} has no field" for p in sorted(set(props) - fields)]
    out += [f"{name}: field {f!r} is not in the schema" for f in sorted(fields - set(props))]
    hints = _hints(cls)
    for key in sorted(fields & set(props)):
        hint, prop = _unoptional(hints[key]), props[key]
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            members = {m.value for m in hint}
            if set(prop.get("enum", ())) != members:
                out.append(
                    f"{name}.{key}: schema enum {prop.get('enum')} != {hint.__name__} "
                    f"values {sorted(members, key=str)}"
                )
        elif isinstance(hint, type) and dataclasses.is_dataclass(hint) and "properties" in prop:
            out += schema_mismatches(hint, prop)
    return out


def _unoptional(hint: Any) -> Any:
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        arms = [a for a in typing.get_args(hint) if a is not type(None)]
        return arms[0] if len(arms) == 1 else hint
    return hint
