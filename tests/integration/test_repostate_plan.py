"""`epoch_from: {repomd: [...]}` against a real HTTP server on 127.0.0.1: the layer key follows
the repositories' published metadata, the plan says which one changed, and a repository that
cannot be read stops the plan with one clear error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from imagefactory.sources.repostate import RepoStateError
from tests.plankit import fake_commit, plan_of
from tests.prereq import require_tools
from tests.repomd_server import Served, closed_port_url, serve, write_repomd
from tests.standinkit import script_layer, standin_config, write_standin

pytestmark = pytest.mark.integration


def config(repomd: list[str]) -> str:
    """Families fa and fb share the layer `update`, whose epoch follows the `repomd` URLs."""
    update = script_layer("update", epoch="2026-11-24", epoch_from={"repomd": repomd})
    return standin_config(
        {
            "update": update,
            "other": script_layer("other"),
            "a": script_layer("a"),
            "seal": script_layer("seal", seal=True),
        },
        {
            "fa": ["base", "update", "a", "seal"],
            "fb": ["base", "update", "other", "seal"],
            "plain": ["base", "other", "seal"],
        },
    )


@pytest.fixture
def repos(tmp_path: Path) -> Iterator[Served]:
    write_repomd(tmp_path / "www" / "baseos", "1700000000")
    write_repomd(tmp_path / "www" / "appstream", "1700000100")
    with serve(tmp_path / "www") as served:
        yield served


@pytest.fixture
def project(tmp_path: Path, repos: Served) -> Path:
    require_tools("packer", "qemu-img", "qemu-system-x86_64", "mmdebstrap", "ssh-keygen")
    # The base URL without a trailing slash works too.
    write_standin(tmp_path, config([repos.url + "baseos/", repos.url + "appstream"]))
    return tmp_path


def test_key_is_stable_while_the_repositories_are_unchanged(project: Path, repos: Served) -> None:
    first = plan_of(project)
    fake_commit(project, first)
    again = plan_of(project)
    assert [s.key for s in again.steps] == [s.key for s in first.steps]
    assert again.todo == ()
    state = again.steps[1].inputs["repo_state"]
    assert [r["url"] for r in state] == [repos.url + "baseos/", repos.url + "appstream"]
    assert [r["revision"] for r in state] == ["1700000000", "1700000100"]
    assert all(len(r["sha256"]) == 64 for r in state)
    # One GET per repository per plan, for repomd.xml only.
    assert repos.requests == ["/baseos/repodata/repomd.xml", "/appstream/repodata/repomd.xml"] * 2


def test_new_metadata_rebuilds_from_update_and_says_why(
    project: Path, repos: Served, tmp_path: Path
) -> None:
    before = plan_of(project)
    fake_commit(project, before)
    write_repomd(tmp_path / "www" / "baseos", "1700003600")
    plan = plan_of(project)
    assert plan.steps[0].key == before.steps[0].key
    assert [s.layer.name for s in plan.todo] == ["update", "a", "seal"]
    assert plan.steps[1].reasons == (
        f"repo state changed: {repos.url}baseos/ revision 1700000000 -> 1700003600",
    )
    assert plan.steps[2].reasons == ("parent layer update changed",)


def test_same_revision_with_other_content_still_counts(
    project: Path, repos: Served, tmp_path: Path
) -> None:
    """The sha256 of repomd.xml catches a republish that kept the revision."""
    fake_commit(project, plan_of(project))
    write_repomd(tmp_path / "www" / "appstream", "1700000100", checksum="1" * 64)
    (reason,) = plan_of(project).steps[1].reasons
    assert reason.startswith(f"repo state changed: {repos.url}appstream repomd.xml sha256 ")


def test_layers_without_epoch_from_fetch_nothing(project: Path, repos: Served) -> None:
    plan = plan_of(project, "plain")
    assert all("repo_state" not in s.inputs for s in plan.steps)
    assert repos.requests == []


def test_unreachable_repository_is_one_clear_error(project: Path) -> None:
    text = (project / "f.yaml").read_text()
    dead = closed_port_url()
    url = next(u for u in text.split() if "appstream" in u).rstrip("]}")
    (project / "f.yaml").write_text(text.replace(url, dead))
    with pytest.raises(RepoStateError) as err:
        plan_of(project)
    message = str(err.value)
    assert message.startswith(f"{project / 'f.yaml'}: .layers.update.epoch_from.repomd[1]: ")
    assert f"cannot read the repository state from {dead}repodata/repomd.xml" in message
    assert "refused" in message.lower()
    assert not (project / "cache" / "layers").exists() or not any(
        (project / "cache" / "layers").iterdir()
    )


def test_missing_repomd_names_the_http_status(project: Path, repos: Served) -> None:
    text = (project / "f.yaml").read_text()
    (project / "f.yaml").write_text(text.replace(repos.url + "baseos/", repos.url + "nope/"))
    with pytest.raises(RepoStateError, match=r"repomd\[0\]: .*nope/repodata/repomd.xml: HTTP 404"):
        plan_of(project)
