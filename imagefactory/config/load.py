"""Read and validate the factory configuration (one YAML file) into its model.

Two passes, every problem collected before anything is reported:
1. shape: YAML syntax, duplicate keys, JSON Schema (unknown keys are errors);
2. meaning (validate.py): each layer's variables against its schema, references between
   families, layers, sources and files on disk.
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

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
from imagefactory.config.validate import semantic_problems
from imagefactory.errors import ConfigError, Problem
from imagefactory.store.settings import store_settings_from_dict
from imagefactory.util import model
from imagefactory.util.model import schema_registry


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


def _schema(name: str = "factory") -> dict[str, Any]:
    text = resources.files("imagefactory").joinpath(f"schemas/{name}.schema.json").read_text()
    doc: dict[str, Any] = json.loads(text)
    return doc


def _yaml_path(parts: Any) -> str:
    return "." + ".".join(str(p) for p in parts) if parts else "."


def schema_problems(file: str, doc: Any, schema: str = "factory") -> list[Problem]:
    """Every JSON Schema violation of `doc` as a Problem with its YAML path and a hint."""
    validator = jsonschema.Draft202012Validator(_schema(schema), registry=schema_registry())
    problems = []
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        path = _yaml_path(err.absolute_path)
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
        problems.append(Problem(file, path, err.message, hint))
    return problems


def read_yaml(path: Path) -> Any:
    """Parse YAML safely; a syntax error or duplicate key becomes a ConfigError with the line."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([Problem(str(path), ".", f"cannot read file: {exc.strerror}")]) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "."
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem(str(path), where, f"invalid YAML: {problem}")]) from None


def load_config(path: Path) -> Config:
    """Read, validate and model the configuration; raise ConfigError listing every problem."""
    path = path.resolve() if path.exists() else path
    doc = read_yaml(path)
    file = str(path)
    problems = schema_problems(file, doc)
    if problems:
        raise ConfigError(problems)
    config = _model(path, doc)
    schemas, problems = _variables_schemas(config)
    config = dataclasses.replace(config, variables_schemas=schemas)
    problems += semantic_problems(config)
    problems += store_settings_from_dict(doc.get("store"), file)[1]
    if problems:
        raise ConfigError(problems)
    return config


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
