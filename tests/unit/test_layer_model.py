"""The layer model: kinds derived once, recipes per kind, variables schemas, derived reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagefactory import commands, variables
from imagefactory.choices import LayerKind
from imagefactory.config import load_config
from imagefactory.engine import recipes
from imagefactory.engine.build import check_buildable
from imagefactory.engine.keys import explain
from imagefactory.errors import ConfigError
from tests.plankit import plan_of
from tests.prereq import require_tools
from tests.standinkit import Raw, script_layer, standin_config, write_standin

REPO = Path(__file__).resolve().parents[2]

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "x-unknown": {"message": "not a variable of the app layer", "hint": "IF_PORT, IF_NAME"},
    "required": ["IF_PORT", "IF_NAME"],
    "properties": {
        "IF_PORT": {"type": "integer", "minimum": 1, "maximum": 65535, "x-hint": "1..65535"},
        "IF_NAME": {"type": "string", "pattern": "^[a-z]+$", "x-hint": "lower-case letters"},
    },
}


def project(tmp_path: Path, variables_yaml: str, schema: object = SCHEMA) -> Path:
    (tmp_path / "app.schema.json").write_text(json.dumps(schema))
    values = Raw(variables_yaml)
    app = script_layer("app", variables_schema="app.schema.json", variables=values)
    layers = {"app": app, "seal": script_layer("seal", seal=True)}
    write_standin(tmp_path, standin_config(layers, {"fa": ["base", "app", "seal"]}))
    return tmp_path


def problems(path: Path) -> list[tuple[str, str, str]]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [(p.path, p.message, p.hint) for p in info.value.problems]


def test_kind_is_derived_once_from_source_and_seal(tmp_path: Path) -> None:
    """Each layer's kind comes from its source's kind and `seal:`, and picks its recipe."""
    cfg = load_config(project(tmp_path, "{IF_PORT: 80, IF_NAME: web}") / "f.yaml")
    kinds = {name: layer.kind for name, layer in cfg.layers.items()}
    assert kinds == {"base": LayerKind.STANDIN, "app": LayerKind.SCRIPTS, "seal": LayerKind.SEAL}
    made = {name: type(recipes.recipe_of(cfg, layer)) for name, layer in cfg.layers.items()}
    assert made == {
        "base": recipes.StandinRoot,
        "app": recipes.ScriptsRecipe,
        "seal": recipes.SealRecipe,
    }
    shipped = load_config(REPO / "factory.yaml")
    assert shipped.layers["install"].kind is LayerKind.INSTALL


def test_unknown_and_malformed_variables_fail_at_load_all_at_once(tmp_path: Path) -> None:
    """The layer's schema is checked at config load: every bad variable, with its field."""
    path = project(tmp_path, "{IF_PORT: 0, IF_NAME: Web, IF_COLOR: red}") / "f.yaml"
    assert problems(path) == [
        (".layers.app.variables.IF_COLOR", "not a variable of the app layer", "IF_PORT, IF_NAME"),
        (".layers.app.variables.IF_PORT", "0 is less than the minimum of 1", "1..65535"),
        (
            ".layers.app.variables.IF_NAME",
            "'Web' does not match '^[a-z]+$'",
            "lower-case letters",
        ),
    ]


def test_a_schema_that_is_not_a_schema_is_reported(tmp_path: Path) -> None:
    """A variables_schema file that is not a JSON Schema names the file and the field."""
    path = project(tmp_path, "{}", schema={"type": "no-such-type"}) / "f.yaml"
    ((where, message, _),) = problems(path)
    assert where == ".layers.app.variables_schema"
    assert message.startswith(f"{tmp_path / 'app.schema.json'} is not a JSON Schema:")


def test_a_missing_required_variable_is_named_by_plan_and_stops_the_build(
    tmp_path: Path,
) -> None:
    """Required values may be added later: plan names them, a build refuses before starting."""
    require_tools("packer", "qemu-img", "qemu-system-x86_64", "mmdebstrap", "ssh-keygen")
    root = project(tmp_path, "{IF_PORT: 80}")
    plan = plan_of(root)
    assert [(m.path, m.message) for m in plan.steps[1].missing] == [
        (".layers.app.variables.IF_NAME", "required but not set")
    ]
    with pytest.raises(ConfigError, match=r"f\.yaml: \.layers\.app\.variables\.IF_NAME"):
        check_buildable(plan.todo)
    text = commands.plan(root / "f.yaml", "fa", root / "artifacts")
    assert "needs .layers.app.variables.IF_NAME: lower-case letters" in text


def test_shipped_stack_schemas_accept_the_shipped_values() -> None:
    """factory.yaml's stack variables pass their schemas; only operator fingerprints are open."""
    cfg = load_config(REPO / "factory.yaml")
    where = ".layers.stack-persistence.variables"
    layer = cfg.layers["stack-persistence"]
    schema = cfg.variables_schemas["stack-persistence"]
    assert variables.problems(str(cfg.path), where, layer.variables, schema) == []
    missing = variables.missing(str(cfg.path), where, layer.variables, schema)
    assert [m.path.rsplit(".", 1)[1] for m in missing] == [
        "IF_REDPANDA_KEY_FPR",
        "IF_HAZELCAST_REPO_KEY_FPR",
        "IF_HAZELCAST_PKG_KEY_FPR",
    ]
    workers = cfg.layers["stack-workers"]
    schema = cfg.variables_schemas["stack-workers"]
    assert variables.missing(str(cfg.path), where, workers.variables, schema) == []


def test_explain_words_every_changed_field_from_the_documents() -> None:
    """Reasons are derived from the input documents: a new field needs no code to be named."""
    old = {
        "name": "a",
        "kind": "layer",
        "reboot": {"path": "packer/files/layer/check-idempotence.sh", "sha256": "1"},
        "variables": {"IF_X": "1"},
    }
    new = {
        "name": "b",
        "kind": "seal",
        "reboot": {"path": "packer/files/layer/check-idempotence.sh", "sha256": "2"},
        "variables": {"IF_X": "1"},
        "compression": "zstd",
        "some_new_input": [1, 2],
    }
    assert explain(old, new) == [
        "packer/files/layer/check-idempotence.sh changed",
        "compression changed: None -> 'zstd'",
        "kind changed: 'layer' -> 'seal'",
        "name changed: 'a' -> 'b'",
        "some_new_input changed: None -> [1, 2]",
    ]
    assert explain({**new, "reboot": None}, new) == ["reboot added"]


def test_every_config_section_is_declared_once_in_schema_and_dataclass() -> None:
    """The factory schema and the model's dataclasses name the same settings and choices."""
    from imagefactory.config import model as cfg_model
    from imagefactory.util.model import load_schema, schema_mismatches

    schema = load_schema("factory")["properties"]
    sources = schema["sources"]["additionalProperties"]["allOf"]
    iso, standin = (s["then"] for s in sources)
    derived = {"name", "kind", "epoch_from_repomd"}  # from the section's key and context
    out = schema_mismatches(cfg_model.BuildSettings, schema["build"])
    out += schema_mismatches(cfg_model.Family, schema["families"]["additionalProperties"])
    layer = schema["layers"]["additionalProperties"]
    out += [m for m in schema_mismatches(cfg_model.LayerDef, layer) if "epoch_from" not in m]
    for cls, section in ((cfg_model.IsoSource, iso), (cfg_model.StandinSource, standin)):
        out += [m for m in schema_mismatches(cls, section) if "'kind'" not in m]
    assert [m for m in out if not any(f"'{d}'" in m for d in derived)] == []
