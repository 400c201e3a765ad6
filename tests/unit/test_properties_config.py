"""Config loading, for every input: factory and fleet files either load or raise ConfigError
whose problems name the file and the field; never another exception."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from imagefactory.config import load_config
from imagefactory.errors import ConfigError, Problem
from imagefactory.fleet.config import load_fleet
from imagefactory.util.configfile import schema_problems
from tests.propertykit import PROPERTIES, SCALARS, Mutation, mutated, mutation, paths, yamlish

REPO = Path(__file__).resolve().parents[2]
CONFIGS = ("factory.yaml", "standin.yaml", "fleet.yaml")
DOCS = {name: yaml.safe_load((REPO / name).read_text()) for name in CONFIGS}
FACTORY_KEYS = [
    "version",
    "build",
    "store",
    "sources",
    "layers",
    "families",
    "kind",
    "source",
    "scripts",
    "files",
    "template",
    "variables",
    "seal",
    "reboot",
    "specs",
]
FLEET_KEYS = [
    "version",
    "fleet",
    "network",
    "hypervisors",
    "groups",
    "defaults",
    "store",
    "subnet",
    "gateway",
    "dns",
    "role",
    "family",
    "count",
    "topology",
    "cluster",
    "uri",
    "capacity",
    "vcpu",
    "memory_gib",
]


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory beside the shipped files: the scripts, templates and specs the real
    configurations name resolve, so that a mutated copy is judged like the original."""
    where = tmp_path_factory.mktemp("configs")
    for entry in REPO.iterdir():
        if entry.name not in CONFIGS and not entry.name.startswith("."):
            os.symlink(entry, where / entry.name)
    return where


def load(place: Path, name: str, doc: Any) -> tuple[Path, ConfigError | None]:
    """Write `doc` as `name` in `place` and load it with the loader of its kind."""
    path = place / name
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    loader: Callable[[Path], object] = load_fleet if name == "fleet.yaml" else load_config
    try:
        loader(path)
    except ConfigError as err:
        return path, err
    return path, None


def assert_names_file(path: Path, err: ConfigError) -> None:
    """Every problem names the file that was read and a place in it."""
    assert err.problems, "a ConfigError without problems"
    for p in err.problems:
        assert p.file == str(path), p
        assert p.path, p
        assert str(path) in str(err)


def names(p: Problem, change: Mutation) -> bool:
    """The problem is about the changed place: its path or message names a key on the way to
    it (or the key's new name; messages show odd characters escaped, as repr does)."""
    text = f"{p.path} {p.message}"
    keys = [*change.at, *([change.value] if change.action == "rename" else [])]
    return any(str(k) in text or repr(k)[1:-1] in text for k in keys if not isinstance(k, int))


@PROPERTIES
@given(name=st.sampled_from(["factory.yaml", "fleet.yaml"]), doc=st.data())
def test_any_yamlish_document_loads_or_is_a_config_error(
    place: Path, name: str, doc: st.DataObject
) -> None:
    """Random nestings of mappings, lists and scalars never crash a loader."""
    keys = FLEET_KEYS if name == "fleet.yaml" else FACTORY_KEYS
    value = doc.draw(yamlish(keys))
    path, err = load(place, name, value)
    if err is not None:
        assert_names_file(path, err)


@PROPERTIES
@given(text=st.text(max_size=60) | st.binary(max_size=60).map(lambda b: b.decode("latin-1")))
def test_any_text_loads_or_is_a_config_error(place: Path, text: str) -> None:
    """Any short text (not YAML, YAML tags, a scalar) is refused with a ConfigError."""
    path = place / "factory.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert_names_file(path, err.value)


@settings(PROPERTIES, max_examples=120)
@given(name=st.sampled_from(CONFIGS), data=st.data())
def test_a_mutated_shipped_file_loads_or_names_the_change(
    place: Path, name: str, data: st.DataObject
) -> None:
    """A field of a shipped file deleted, retyped or renamed: it loads, or the problems name
    the file and the changed field (or a field that refers to it)."""
    change: Mutation = data.draw(mutation(DOCS[name]))
    doc, applied = mutated(DOCS[name], [change])
    assert applied == [change]
    path, err = load(place, name, doc)
    if err is not None:
        assert_names_file(path, err)
        assert any(names(p, change) for p in err.problems), (change, err)


def breaks_shape(name: str, changes: list[Mutation]) -> bool:
    """Whether the changed file has JSON Schema problems (is refused for its shape)."""
    doc, _ = mutated(DOCS[name], changes)
    return bool(schema_problems(name, doc, "fleet" if name == "fleet.yaml" else "factory"))


def meaning_breakers(name: str) -> list[Mutation]:
    """Deletions that keep the file's shape but break its meaning: a layer families use, a
    layer's scripts (factory files); a data disk its role needs (fleet file)."""
    doc = DOCS[name]
    if name == "fleet.yaml":
        return [
            Mutation(("groups", g, "data_disk"), "delete")
            for g in doc["groups"]
            if "data_disk" in doc["groups"][g]
        ]
    used = {n for f in doc["families"].values() for n in f["layers"]}
    return [Mutation(("layers", n), "delete") for n in doc["layers"] if n in used] + [
        Mutation(("layers", n, "scripts"), "delete")
        for n, ld in doc["layers"].items()
        if "scripts" in ld and "source" not in ld
    ]


@st.composite
def shape_breaker(draw: st.DrawFn, name: str) -> Mutation:
    """A scalar field given a list or mapping, or a list or mapping given a scalar."""
    doc = DOCS[name]
    at = draw(st.sampled_from([p for p in paths(doc) if p]))
    value = doc
    for k in at:
        value = value[k]
    if isinstance(value, list | dict):
        return Mutation(at, "replace", draw(SCALARS))
    containers = yamlish(["x"]).filter(lambda v: isinstance(v, list | dict))
    return Mutation(at, "replace", draw(containers))


def apart(changes: list[Mutation]) -> bool:
    """Changes in different named parts (a group, a layer, a section's field): none is
    inside another, so each has its own problems."""
    parts = [c.at[:2] for c in changes]
    return all(a == b or b[: len(a)] != a for a in parts for b in parts)


@settings(PROPERTIES, max_examples=60)  # each example loads a whole file: ~60 ms
@given(name=st.sampled_from(CONFIGS), data=st.data())
def test_several_shape_problems_are_all_reported(
    place: Path, name: str, data: st.DataObject
) -> None:
    """Changes that each break the file's shape, in different parts: one error names them all."""
    changes: list[Mutation] = data.draw(
        st.lists(shape_breaker(name), min_size=2, max_size=4, unique_by=lambda c: c.at[:2])
    )
    assume(apart(changes) and all(breaks_shape(name, [c]) for c in changes))
    doc, applied = mutated(DOCS[name], changes)
    path, err = load(place, name, doc)
    assert err is not None
    assert_names_file(path, err)
    for change in changes:
        assert any(names(p, change) for p in err.problems), (change, err)


@settings(PROPERTIES, max_examples=40)  # few distinct subsets of a short list
@given(name=st.sampled_from(CONFIGS), data=st.data())
def test_several_meaning_problems_are_all_reported(
    place: Path, name: str, data: st.DataObject
) -> None:
    """Changes of a well-shaped file that each break its meaning (a required data disk or a
    referenced layer deleted, ...), in different parts: one error names them all."""
    changes: list[Mutation] = data.draw(
        st.lists(
            st.sampled_from(meaning_breakers(name)),
            min_size=2,
            max_size=4,
            unique_by=lambda c: c.at[:2],
        )
    )
    assert not breaks_shape(name, changes)
    doc, applied = mutated(DOCS[name], changes)
    path, err = load(place, name, doc)
    assert err is not None
    assert_names_file(path, err)
    for change in changes:
        assert any(names(p, change) for p in err.problems), (change, err)
