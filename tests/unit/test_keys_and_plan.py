"""Layer keys and plans: keys follow inputs, plans explain what changed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from imagefactory.config import load_config
from imagefactory.engine.cache import LayerCache
from imagefactory.engine.keys import explain, layer_key, tree_digest
from imagefactory.util import tools
from tests.plankit import fake_commit, plan_of
from tests.prereq import require_tools
from tests.standinkit import script_layer, standin_config, write_standin

CONFIG = standin_config(
    {
        "common": script_layer("common"),
        "a": script_layer("a", variables={"IF_X": "1"}),
        "b": script_layer("b"),
        "seal": script_layer("seal", seal=True, per_family=True),
    },
    {"fa": ["base", "common", "a", "seal"], "fb": ["base", "common", "b", "seal"]},
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    require_tools("packer", "qemu-img", "qemu-system-x86_64", "mmdebstrap", "ssh-keygen")
    write_standin(tmp_path, CONFIG)
    return tmp_path


def test_keys_are_stable(project: Path) -> None:
    assert [s.key for s in plan_of(project).steps] == [s.key for s in plan_of(project).steps]


def test_families_share_common_prefix_keys(project: Path) -> None:
    fa, fb = plan_of(project, "fa"), plan_of(project, "fb")
    assert [s.key for s in fa.steps[:2]] == [s.key for s in fb.steps[:2]]
    assert fa.steps[2].key != fb.steps[2].key


def test_script_change_changes_only_downstream_keys(project: Path) -> None:
    before = [s.key for s in plan_of(project).steps]
    (project / "s" / "10-do-a.sh").write_text("#!/bin/bash\necho changed\n")
    after = [s.key for s in plan_of(project).steps]
    assert before[:2] == after[:2]
    assert before[2] != after[2] and before[3] != after[3]


def test_plan_says_why_layers_are_stale(project: Path) -> None:
    fake_commit(project, plan_of(project))
    assert plan_of(project).todo == ()
    (project / "s" / "10-do-a.sh").write_text("#!/bin/bash\necho changed\n")
    plan = plan_of(project)
    assert [s.layer.name for s in plan.todo] == ["a", "seal"]
    assert plan.steps[2].reasons == ("s/10-do-a.sh changed",)
    assert plan.steps[3].reasons == ("parent layer a changed",)


def test_variable_and_epoch_changes_are_named(project: Path) -> None:
    fake_commit(project, plan_of(project))
    text = (project / "f.yaml").read_text()
    (project / "f.yaml").write_text(
        text.replace('IF_X: "1"', 'IF_X: "2"').replace('epoch: "1"', 'epoch: "2"')
    )
    plan = plan_of(project)
    assert len(plan.todo) == 4
    assert "source: epoch '1' -> '2'" in plan.steps[0].reasons
    assert "variables: IF_X '1' -> '2'" in plan.steps[2].reasons


def test_overlay_needs_its_parent_chain(project: Path) -> None:
    """A cached overlay whose parent left the cache is rebuilt; the whole chain is."""
    plan = plan_of(project)
    fake_commit(project, plan)
    cache = LayerCache(project / "cache")
    import shutil

    shutil.rmtree(cache.entry(plan.steps[1].key))
    shutil.rmtree(cache.entry(plan.steps[3].key))
    again = plan_of(project)
    assert [s.layer.name for s in again.todo] == ["common", "a", "seal"]
    assert again.steps[2].reasons == ("cached, but a layer below it is missing from the cache",)


def test_per_family_layer_key_includes_family(project: Path) -> None:
    assert plan_of(project, "fa").steps[3].inputs["family"] == "fa"


def test_tree_digest_sees_renames_and_modes(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    f = tmp_path / "d" / "x.sh"
    f.write_text("a")
    first = tree_digest(tmp_path / "d")
    f.chmod(0o755)
    second = tree_digest(tmp_path / "d")
    f.rename(tmp_path / "d" / "y.sh")
    assert len({first, second, tree_digest(tmp_path / "d")}) == 3


def test_explain_without_history() -> None:
    assert explain(None, {"name": "x"}) == ["never built"]
    assert layer_key({"a": 1, "b": 2}) == layer_key({"b": 2, "a": 1})


def test_tool_versions_are_parsed() -> None:
    require_tools("packer", "qemu-img")
    assert tools.version("packer").count(".") >= 2
    assert tools.version("qemu-img")[0].isdigit()


def test_reboot_is_an_input_of_the_layer(project: Path) -> None:
    """Turning on `reboot` rebuilds that layer and its children, and says why."""
    fake_commit(project, plan_of(project))
    text = (project / "f.yaml").read_text()
    (project / "f.yaml").write_text(text.replace("a: {scripts:", "a: {reboot: true, scripts:"))
    plan = plan_of(project)
    assert [s.layer.name for s in plan.todo] == ["a", "seal"]
    assert list(plan.steps[2].reasons) == ["reboot added"]


def test_reboot_layer_runs_its_scripts_twice_under_set_e(project: Path, tmp_path: Path) -> None:
    """A reboot layer stages its scripts and the /etc check; the rerun stops at a failure."""
    from imagefactory.engine.recipes import ScriptsRecipe

    cfg = load_config(project / "f.yaml")
    layer = dataclasses.replace(cfg.layers["a"], reboot=True)
    files = tmp_path / "files"
    files.mkdir()
    got = ScriptsRecipe(cfg, layer)._reboot_variables(files)
    assert got["reboot_inline"][0] == got["after_reboot_inline"][0] == "set -euo pipefail"
    assert got["reboot_inline"][-1].startswith("systemd-run --on-active=2 ")
    assert got["reboot_inline"][-1].endswith(" systemctl reboot")
    assert "boot_id" in got["after_reboot_inline"][1] and "!=" in got["after_reboot_inline"][1]
    assert "/.layer/scripts/10-do-a.sh" in got["after_reboot_inline"][2]
    assert "check-idempotence.sh compare" in got["after_reboot_inline"][-2]
    assert (files / ".layer/scripts/10-do-a.sh").read_text() == "#!/bin/bash\necho a\n"
    assert (files / ".layer/check-idempotence.sh").exists()
    plain = ScriptsRecipe(cfg, cfg.layers["a"])._reboot_variables(files)
    assert plain == {
        "reboot_inline": ["true"],
        "after_reboot_inline": ["true"],
        "after_reboot_pause": "0s",
    }
