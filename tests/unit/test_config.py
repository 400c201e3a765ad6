"""Configuration loading: valid files model correctly, bad ones list every problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from imagefactory.config import StandinSource, load_config
from imagefactory.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

GOOD = """
version: 1
sources:
  deb: {kind: standin, suite: bookworm, epoch: "1", packages: [sudo]}
layers:
  base: {source: deb}
  one: {scripts: [s/10-do-one.sh], variables: {IF_X: "1"}}
  seal: {scripts: [s/10-do-one.sh], seal: true}
families:
  fam: {layers: [base, one, seal]}
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "s").mkdir(exist_ok=True)
    (tmp_path / "s" / "10-do-one.sh").write_text("#!/bin/bash\n")
    path = tmp_path / "factory.yaml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return [str(p) for p in info.value.problems]


def test_good_config_is_modelled(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert isinstance(cfg.sources["deb"], StandinSource)
    assert cfg.families["fam"].layers == ("base", "one", "seal")
    assert cfg.layers["one"].scripts == (tmp_path / "s" / "10-do-one.sh",)
    assert cfg.layers["one"].variables == {"IF_X": "1"}
    assert cfg.build.accelerator == "auto"


@pytest.mark.parametrize("config", ["factory.yaml", "standin.yaml"])
def test_shipped_configs_are_valid(config: str) -> None:
    cfg = load_config(REPO / config)
    assert cfg.families


def test_all_schema_errors_reported_at_once(tmp_path: Path) -> None:
    bad = (
        GOOD.replace("version: 1", "version: 1\nbogus: 2")
        .replace("suite: bookworm", "suite: jessie")
        .replace("IF_X", "X")
    )
    found = problems(tmp_path, bad)
    assert len(found) == 3
    assert any(".sources.deb.suite" in p and "allowed: bookworm" in p for p in found)
    assert any("'bogus' was unexpected" in p for p in found)
    assert any(".layers.one.variables" in p for p in found)
    assert all(p.startswith(str(tmp_path / "factory.yaml")) for p in found)


def test_semantic_errors_name_path_and_hint(tmp_path: Path) -> None:
    bad = GOOD.replace("[base, one, seal]", "[one, nothere, base]").replace(
        "s/10-do-one.sh], var", "s/missing.sh], var"
    )
    found = problems(tmp_path, bad)
    joined = "\n".join(found)
    assert ".families.fam.layers[1]: unknown layer 'nothere'" in joined
    assert "first layer 'one' has no source" in joined
    assert "last layer 'base' is not a seal layer" in joined
    assert ".layers.one.scripts[0]: s/missing.sh does not exist" in joined


def test_yaml_syntax_error_gives_line(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD + "families: [\n")
    assert len(found) == 1 and "line" in found[0]


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    found = problems(
        tmp_path, GOOD.replace("  seal: {scripts", "  one: {scripts: [x]}\n  seal: {scripts")
    )
    assert "duplicate key 'one'" in found[0]


def test_unknown_family_lists_known(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    with pytest.raises(ConfigError, match="unknown family 'nope'.*one of: fam"):
        cfg.family("nope")


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        load_config(tmp_path / "absent.yaml")


def test_shipped_standin_copy_still_valid(tmp_path: Path) -> None:
    """The e2e copies standin.yaml with the scripts it names; that copy must load too."""
    shutil.copy(REPO / "standin.yaml", tmp_path)
    for rel in ("standin", "packer", "tests/images", "appcore", "hardening"):
        shutil.copytree(REPO / rel, tmp_path / rel)
    assert load_config(tmp_path / "standin.yaml").families["standin-alpha"].layers[-1] == "seal"


def test_only_a_scripts_layer_can_reboot(tmp_path: Path) -> None:
    """`reboot: true` on a seal or root layer is refused with its path and a hint."""
    bad = GOOD.replace("seal: true}", "seal: true, reboot: true}").replace(
        "base: {source: deb}", "base: {source: deb, reboot: true}"
    )
    found = problems(tmp_path, bad)
    assert [p for p in found if "only a scripts layer can reboot" in p] == [
        f"{tmp_path / 'factory.yaml'}: .layers.base.reboot: only a scripts layer can reboot"
        " (hint: seal and root layers end with their own shutdown)",
        f"{tmp_path / 'factory.yaml'}: .layers.seal.reboot: only a scripts layer can reboot"
        " (hint: seal and root layers end with their own shutdown)",
    ]


def test_parallel_build_checks_every_family_first(tmp_path: Path) -> None:
    """An unknown family in a multi-family build fails before any layer is planned or built."""
    from imagefactory.commands import build_families

    path = write(tmp_path, GOOD)
    with pytest.raises(ConfigError, match="unknown family 'nope'"):
        build_families(path, ["fam", "nope"], tmp_path / "artifacts")
    assert not (tmp_path / "artifacts").exists()
