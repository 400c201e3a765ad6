"""imagefactory.util.model: frozen dataclasses from schema-validated mappings."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import pytest

from imagefactory.util.model import (
    build,
    load_schema,
    parse_size,
    schema_mismatches,
    schema_registry,
)

ROOT = Path("/etc/thing")


class Colour(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Inner:
    file: Path = Path("inner.txt")
    colour: Colour = Colour.RED


@dataclass(frozen=True)
class Outer:
    name: str
    path: Path = Path("data")
    maybe: Path | None = None
    paths: tuple[Path, ...] = ()
    pair: tuple[str, int] = ("a", 1)
    colour: Colour = Colour.BLUE
    size: int = field(default=1024, metadata={"parse": parse_size})
    ratio: float = 1.0
    flag: bool = False
    labels: Mapping[str, Path] = field(default_factory=dict)
    inner: Inner = field(default_factory=Inner)
    either: str | int = "x"


def test_written_values_are_converted_by_their_type() -> None:
    got = build(
        Outer,
        {
            "name": "n",
            "path": "rel/dir",
            "maybe": "/abs/file",
            "paths": ["a", "~/b", "/c"],
            "pair": ["b", 2],
            "colour": "red",
            "size": "64MiB",
            "ratio": 2,
            "flag": True,
            "labels": {"x": "x.txt"},
            "inner": {"file": "in", "colour": "blue"},
            "either": 3,
        },
        root=ROOT,
    )
    home = Path.home()
    assert got.path == ROOT / "rel/dir" and got.maybe == Path("/abs/file")
    assert got.paths == (ROOT / "a", home / "b", Path("/c"))
    assert got.pair == ("b", 2)
    assert got.colour is Colour.RED and got.inner.colour is Colour.BLUE
    assert got.size == 64 * 1024 * 1024
    assert got.ratio == 2.0 and isinstance(got.ratio, float)
    assert got.flag is True and got.either == 3
    assert got.labels == {"x": ROOT / "x.txt"}
    assert got.inner.file == ROOT / "in"


def test_defaults_are_converted_like_written_values() -> None:
    """A default path is relative to the file's directory, like a written one."""
    got = build(Outer, {"name": "n"}, root=ROOT)
    assert got.path == ROOT / "data" and got.maybe is None
    assert got.inner == Inner(file=ROOT / "inner.txt")
    assert got.size == 1024 and got.colour is Colour.BLUE


def test_without_root_relative_paths_stay_relative() -> None:
    assert build(Outer, {"name": "n"}) == Outer(name="n")
    assert build(Outer, {"name": "n", "path": "~/x"}).path == Path.home() / "x"


def test_given_values_are_used_as_they_are() -> None:
    got = build(Outer, {"path": "p"}, root=ROOT, given={"name": "from-the-key"})
    assert got.name == "from-the-key" and got.path == ROOT / "p"


def test_a_key_without_a_field_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="Outer has no field 'bogus'"):
        build(Outer, {"name": "n", "bogus": 1})
    with pytest.raises(TypeError, match="not a dataclass"):
        build(int, {})


def test_parse_size() -> None:
    assert parse_size(5) == 5
    assert parse_size("4096") == 4096
    assert parse_size("512KiB") == 512 * 1024
    assert parse_size(" 64 MiB ") == 64 * 1024**2
    assert parse_size("1GiB") == 1024**3
    with pytest.raises(ValueError, match="not a size"):
        parse_size("1GB")
    with pytest.raises(TypeError):
        parse_size(True)


def test_size_pattern_of_the_store_schema_agrees_with_parse_size() -> None:
    prop = load_schema("store")["properties"]["part_size"]
    check = jsonschema.Draft202012Validator(prop)
    for text in ("4096", "512KiB", " 64 MiB ", "1GiB", "1GB", "64mib", "-1", "1.5MiB"):
        try:
            parse_size(text)
            parses = True
        except ValueError:
            parses = False
        assert check.is_valid(text) == parses, text


def test_schemas_refer_to_each_other_by_file_name() -> None:
    check = jsonschema.Draft202012Validator(
        {"properties": {"store": {"$ref": "store.schema.json"}}}, registry=schema_registry()
    )
    assert check.is_valid({"store": {"kind": "s3"}})
    errors = list(check.iter_errors({"store": {"kind": "ftp"}}))
    assert [list(e.absolute_path) for e in errors] == [["store", "kind"]]


def test_schema_mismatches() -> None:
    schema = {
        "properties": {
            "file": {"type": "string"},
            "colour": {"enum": ["red"]},
            "extra": {"type": "string"},
            "refused": {"deprecated": True},
        }
    }
    assert schema_mismatches(Inner, schema) == [
        "Inner: schema property 'extra' has no field",
        "Inner.colour: schema enum ['red'] != Colour values ['blue', 'red']",
    ]
    nested = {
        "properties": {
            "inner": {"properties": {"file": {}}},
        }
    }
    found = schema_mismatches(Outer, nested)
    assert "Outer: field 'path' is not in the schema" in found
    assert "Inner: field 'colour' is not in the schema" in found
