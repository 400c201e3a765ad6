"""Configuration loading: valid files model correctly, bad ones list every problem."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest

from imagefactory.config import StandinSource, load_config
from imagefactory.errors import ConfigError
from tests.standinkit import script_layer, standin_config

REPO = Path(__file__).resolve().parents[2]

GOOD = standin_config(
    {"one": script_layer("one", variables={"IF_X": "1"}), "seal": script_layer("one", seal=True)},
    {"fam": ["base", "one", "seal"]},
)


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


def test_script_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    """A directory listed under scripts: is named with its field, not run as a script."""
    (tmp_path / "s" / "sub").mkdir(parents=True)
    found = problems(
        tmp_path, GOOD.replace("one: {scripts: [s/10-do-one.sh]", "one: {scripts: [s/sub]")
    )
    assert found == [
        f"{tmp_path / 'factory.yaml'}: .layers.one.scripts[0]: s/sub is a directory, not a script"
        " (hint: list each script of it (directories belong under files:))"
    ]


def test_file_that_is_not_utf8_is_one_problem_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "factory.yaml"
    path.write_bytes(b"version: 1\n# caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert [str(p) for p in info.value.problems] == [
        f"{path}: line 2, column 6: not UTF-8 text: byte 0xe9 cannot be decoded"
        " (hint: save the file as UTF-8)"
    ]


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n"])
def test_empty_file_says_it_is_empty(tmp_path: Path, text: str) -> None:
    found = problems(tmp_path, text)
    assert len(found) == 1 and found[0].startswith(
        f"{tmp_path / 'factory.yaml'}: .: the file is empty"
    )


def test_readme_example_reports_both_problems_at_once(tmp_path: Path) -> None:
    """README's example of configuration errors, exactly: factory.yaml with a bad
    accelerator and a misspelt layer gives both problems in one run, in README's order."""
    readme = (REPO / "README.md").read_text().splitlines()
    start = readme.index("error: 2 problems in configuration:")
    shown = [ln.removeprefix("  - factory.yaml: ") for ln in readme[start + 1 : start + 3]]
    text = (REPO / "factory.yaml").read_text()
    assert text.count("accelerator: auto ") == 1
    assert text.count("[install, update, harden, stack-workers, appcore, seal]") == 1
    text = text.replace("accelerator: auto ", "accelerator: fast ").replace(
        "[install, update, harden, stack-workers, appcore, seal]",
        "[install, update, harden, stack-worker, appcore, seal]",
    )
    copy = REPO / f".test-readme-{tmp_path.name}.yaml"  # beside factory.yaml: paths resolve
    copy.write_text(text)
    try:
        with pytest.raises(ConfigError) as info:
            load_config(copy)
    finally:
        copy.unlink()
    found = [str(p).removeprefix(f"{copy}: ") for p in info.value.problems]
    assert len(found) == len(shown) == 2
    for got, want in zip(found, shown, strict=True):
        assert got.startswith(want.split("…")[0]), (got, want)
        assert got.endswith(want.split("…")[-1]), (got, want)


def test_shape_and_meaning_problems_come_together_without_false_ones(tmp_path: Path) -> None:
    """A layer with a bad key is left out of the meaning pass: a family using it is not told
    the layer is unknown or out of order, while another family's unknown layer is reported."""
    bad = (
        GOOD.replace("seal: true}", "seal: true, bogus: 1}")
        + "  f2: {layers: [base, nope, seal]}\n"
    )
    found = problems(tmp_path, bad)
    assert len(found) == 2, found
    assert (
        ".layers.seal: Additional properties are not allowed ('bogus' was unexpected)" in found[0]
    )
    assert found[1].startswith(
        f"{tmp_path / 'factory.yaml'}: .families.f2.layers[1]: unknown layer 'nope'"
        " (hint: define it under layers: (known: base, one, seal))"
    )


def test_half_valid_documents_never_crash(tmp_path: Path) -> None:
    """Any one part of a valid document replaced by something of the wrong shape (or renamed
    badly) gives ConfigError, never another exception: the meaning pass only sees valid parts."""
    import copy as copying

    import yaml

    base = yaml.safe_load(GOOD)
    base["families"]["other"] = {"layers": ["base", "one", "seal"], "specs": ["absent.py"]}

    def parts(node: object, at: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        if isinstance(node, dict):
            return [at] + [p for k, v in node.items() for p in parts(v, (*at, k))]
        if isinstance(node, list):
            return [at] + [p for i, v in enumerate(node) for p in parts(v, (*at, i))]
        return [at]

    junk: list[object] = [None, 1, "x", [], {}, ["x"], {"a": 1}, {"kind": "standin"}, "Bad_Name"]
    for at in parts(base)[1:]:
        for value in [*junk, "rename"]:
            doc = copying.deepcopy(base)
            parent = doc
            for k in at[:-1]:
                parent = parent[k]  # type: ignore[index]
            if value == "rename":
                if not isinstance(parent, dict):
                    continue
                parent["Bad Key"] = parent.pop(at[-1])
            else:
                parent[at[-1]] = value  # type: ignore[index]
            with contextlib.suppress(ConfigError):  # a few replacements are valid
                load_config(write(tmp_path, yaml.safe_dump(doc)))
