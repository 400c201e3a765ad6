"""Read and validate the factory configuration (one YAML file) into its model.

Two passes, every problem collected before anything is reported:
1. shape: YAML syntax, duplicate keys, JSON Schema (unknown keys are errors);
2. meaning (validate.py): each layer's variables against its schema, references between
   families, layers, sources and files on disk.
When the first pass finds problems, the second still runs on the parts whose shape is valid
(a source, layer or family with a problem is left out of it), so both sets come at once.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jsonschema

from imagefactory import variables
from imagefactory.choices import LayerKind, SourceKind
from imagefactory.config.model import (
    BuildSettings,
    Config,
    Family,
    IsoSource,
    LayerDef,
    Source,
    StandinSource,
)
from imagefactory.config.validate import Unchecked, semantic_problems
from imagefactory.errors import ConfigError, Problem
from imagefactory.store.settings import store_settings_from_dict
from imagefactory.util import model
from imagefactory.util.configfile import read_yaml, schema_problems
from imagefactory.util.model import load_schema, schema_registry


def load_config(path: Path) -> Config:
    """Read, validate and model the configuration; raise ConfigError listing every problem."""
    path = path.resolve() if path.exists() else path
    doc = read_yaml(path)
    file = str(path)
    if doc is None:  # nothing but (maybe) comments
        raise ConfigError(
            [Problem(file, ".", "the file is empty", "start from standin.yaml or factory.yaml")]
        )
    problems = schema_problems(file, doc)
    checkable, unchecked = _checkable(doc, problems)
    if checkable is None:  # no part of it can be modelled: its shape problems are all
        raise ConfigError(problems)
    config = _model(path, checkable)
    schemas, more = _variables_schemas(config)
    config = dataclasses.replace(config, variables_schemas=schemas)
    problems += more
    problems += semantic_problems(config, unchecked)
    problems += store_settings_from_dict(checkable.get("store"), file)[1]
    if problems:
        raise ConfigError(problems)
    return config


_NAMED = ("sources", "layers", "families")  # sections of named parts, checked part by part


def _checkable(doc: Any, problems: list[Problem]) -> tuple[dict[str, Any] | None, Unchecked]:
    """The part of `doc` the meaning pass can judge despite its shape problems.

    A named source, layer or family with a shape problem is left out (a layer built on a
    left-out source too: its kind is unknown), as is a bad `build` or `store` section (its
    defaults stand in); their names are returned so that references to them are not called
    unknown. Only a schema-valid remainder is returned, else None (nothing is judged).
    """
    if not problems:
        return doc, Unchecked()
    if not isinstance(doc, dict):
        return None, Unchecked()
    schema = load_schema("factory")
    validator = jsonschema.Draft202012Validator(schema, registry=schema_registry())
    known = schema["properties"]
    drop: set[tuple[str, ...]] = set()
    for err in validator.iter_errors(doc):
        path = [str(p) for p in err.absolute_path]
        if not path:
            if err.validator != "additionalProperties":  # a section missing, or not a mapping
                return None, Unchecked()
            drop |= {(k,) for k in doc if k not in known}
        elif path[0] in _NAMED:
            if len(path) >= 2:
                drop.add((path[0], path[1]))
            elif "propertyNames" in err.schema_path:
                drop.add((path[0], str(err.instance)))  # a badly spelt name
            else:
                return None, Unchecked()
        elif path[0] in ("build", "store"):
            drop.add((path[0],))
        else:
            return None, Unchecked()
    part = {k: v for k, v in doc.items() if (k,) not in drop}
    for section in _NAMED:
        if isinstance(part.get(section), dict):
            part[section] = {k: v for k, v in part[section].items() if (section, k) not in drop}
    bad_sources = frozenset(k for s, *rest in drop if s == "sources" for k in rest)
    layers = part.get("layers", {})
    if isinstance(layers, dict):
        part["layers"] = {
            k: v
            for k, v in layers.items()
            if not (isinstance(v, dict) and v.get("source") in bad_sources)
        }
        dropped = set(layers) - set(part["layers"])
    else:
        dropped = set()
    bad_layers = frozenset({k for s, *rest in drop if s == "layers" for k in rest} | dropped)
    # What is left must be schema-valid to be modelled; a section emptied by leaving its
    # parts out is judged all the same (its emptiness is already reported).
    for err in validator.iter_errors(part):
        if not (err.validator == "minProperties" and len(err.absolute_path) == 1):
            return None, Unchecked()
    return part, Unchecked(bad_sources, bad_layers)


def _model(path: Path, doc: dict[str, Any]) -> Config:
    """The dataclasses of a schema-valid document; paths are relative to the file's directory."""
    root = path.parent
    sources: dict[str, Source] = {}
    for name, src in doc["sources"].items():
        fields = {k: v for k, v in src.items() if k != "kind"}
        if SourceKind(src["kind"]) is SourceKind.ISO:
            sources[name] = model.build(IsoSource, fields, root=root, given={"name": name})
        else:
            sources[name] = model.build(StandinSource, fields, root=root, given={"name": name})
    layers = {
        name: model.build(
            LayerDef,
            {k: v for k, v in ld.items() if k != "epoch_from"},
            root=root,
            given={
                "name": name,
                "kind": _layer_kind(doc, ld),
                "epoch_from_repomd": tuple(ld.get("epoch_from", {}).get("repomd", [])),
            },
        )
        for name, ld in doc["layers"].items()
    }
    families = {
        name: model.build(Family, f, root=root, given={"name": name})
        for name, f in doc["families"].items()
    }
    build = model.build(BuildSettings, doc.get("build", {}), root=root)
    store = store_settings_from_dict(doc.get("store"), str(path), root)[0]
    return Config(path, root, build, sources, layers, families, store)


def _variables_schemas(cfg: Config) -> tuple[dict[str, dict[str, Any]], list[Problem]]:
    """Each layer's variables schema: built in for the install kind, else its own file."""
    schemas: dict[str, dict[str, Any]] = {}
    problems: list[Problem] = []
    for layer in cfg.layers.values():
        if layer.kind is LayerKind.INSTALL:
            schemas[layer.name] = variables.install_schema()
        elif layer.variables_schema is not None:
            where = f".layers.{layer.name}.variables_schema"
            schema, bad = variables.read_schema(layer.variables_schema, str(cfg.path), where)
            problems += bad
            if schema is not None:
                schemas[layer.name] = schema
    return schemas, problems


def _layer_kind(doc: dict[str, Any], layer: dict[str, Any]) -> LayerKind:
    if "source" in layer:  # an unknown source is reported by validation; model it as install
        src = doc["sources"].get(layer["source"], {})
        return SourceKind(src.get("kind", SourceKind.ISO)).layer_kind
    return LayerKind.SEAL if layer.get("seal", False) else LayerKind.SCRIPTS
