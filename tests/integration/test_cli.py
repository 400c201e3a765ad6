"""The invoke tasks as a user runs them: documented, thin, clear exit codes on bad input."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.clikit import run_task
from tests.repomd_server import closed_port_url, serve, write_repomd
from tests.standinkit import script_layer, standin_config, write_standin

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def invoke(
    *args: str, cwd: Path = REPO, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_task(*args, cwd=cwd, env=env)


@contextlib.contextmanager
def factory_copy(tmp_path: Path, repos: list[str]) -> Iterator[Path]:
    """factory.yaml beside itself (same relative paths) with off-machine URLs made local:
    the DVD a missing file, the update layer's `epoch_from` repositories `repos`."""
    text = (REPO / "factory.yaml").read_text()
    doc = yaml.safe_load(text)
    dvd = doc["sources"]["ol8-dvd"]["url"]
    text = text.replace(dvd, (tmp_path / "OracleLinux-R8-U10.iso").as_uri())
    upstream = doc["layers"]["update"]["epoch_from"]["repomd"]
    assert len(upstream) == len(repos)
    for old, new in zip(upstream, repos, strict=True):
        text = text.replace(old, new)
    assert "yum.oracle.com" not in text
    config = REPO / f".test-factory-{tmp_path.name}.yaml"
    config.write_text(text)
    try:
        yield config
    finally:
        config.unlink()


@pytest.fixture
def local_repos(tmp_path: Path) -> Iterator[list[str]]:
    """Three dnf repositories on 127.0.0.1 standing in for OL8 BaseOS, AppStream and UEK R7."""
    names = ("baseos", "appstream", "uekr7")
    for name in names:
        write_repomd(tmp_path / "www" / name, "1700000000")
    with serve(tmp_path / "www") as served:
        yield [served.url + name + "/" for name in names]


def test_list_documents_every_task() -> None:
    out = invoke("--list").stdout
    for name in ("build", "plan", "verify", "doctor"):
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(name + " "))
        assert len(line.split()) > 2, f"task {name} has no docstring"


def test_unknown_family_exits_2_naming_known_ones() -> None:
    proc = invoke("plan", "--family=nope", "--config=standin.yaml")
    assert proc.returncode == 2
    assert "unknown family 'nope'" in proc.stderr and "standin-alpha" in proc.stderr


def test_malformed_yaml_exits_2_with_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nfamilies: [\n")
    proc = invoke("build", "--family=x", f"--config={bad}", cwd=tmp_path)
    assert proc.returncode == 2
    assert str(bad) in proc.stderr and "line" in proc.stderr
    assert not (tmp_path / "artifacts").exists()


def test_ol8_build_here_stops_at_the_dvd_and_points_at_standin(
    tmp_path: Path, local_repos: list[str]
) -> None:
    """The README's main command without the OL8 DVD fails clearly and caches nothing.

    The DVD URL is pointed at a missing local file and the update layer's repositories at a
    server on 127.0.0.1: tests send no traffic off this machine.
    """
    with factory_copy(tmp_path, local_repos) as config:
        proc = invoke("build", "--family=persistence", f"--config={config}", cwd=tmp_path)
    assert proc.returncode != 0
    assert "cannot download" in proc.stderr and "standin.yaml" in proc.stderr
    layers = tmp_path / "artifacts" / "cache" / "layers"
    assert not layers.exists() or list(layers.iterdir()) == []


def test_ol8_plan_keys_update_by_repository_state(tmp_path: Path, local_repos: list[str]) -> None:
    """`plan` reads the update layer's repositories (here local) and lists every layer."""
    with factory_copy(tmp_path, local_repos) as config:
        proc = invoke("plan", "--family=persistence", f"--config={config}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "family persistence (6 layers, 6 to build)" in proc.stdout
    assert any(
        ln.split()[:1] == ["update"] and "never built" in ln for ln in proc.stdout.splitlines()
    )


def test_ol8_plan_without_the_repositories_is_one_clear_error(tmp_path: Path) -> None:
    """Offline, `plan` of an OL8 family stops naming the repository URL and the field."""
    dead = closed_port_url()
    with factory_copy(tmp_path, [dead, dead + "appstream/", dead + "uekr7/"]) as config:
        proc = invoke("plan", "--family=persistence", f"--config={config}", cwd=tmp_path)
    assert proc.returncode == 1
    assert f"{config}: .layers.update.epoch_from.repomd[0]: " in proc.stderr
    assert f"cannot read the repository state from {dead}repodata/repomd.xml" in proc.stderr
    assert "standin.yaml" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_packer_is_named_with_install_command(tmp_path: Path) -> None:
    """With packer absent from PATH, plan fails with the tool and the apt command."""
    import os

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("qemu-img", "qemu-system-x86_64", "mmdebstrap", "ssh-keygen", "git"):
        found = subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip()
        if found:
            (bin_dir / tool).symlink_to(found)
    env = {**os.environ, "PATH": str(bin_dir)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "invoke",
            "-r",
            str(REPO),
            "plan",
            "--family=standin-alpha",
            f"--config={REPO / 'standin.yaml'}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 1
    assert "required tool 'packer' was not found" in proc.stderr
    assert "apt-get install packer" in proc.stderr


# A small project of its own (stand-in root, one scripts layer, seal) whose store is under
# its artifacts directory; the accelerator is set, so doctor boots no KVM probe guest.
SMALL = standin_config(
    {"one": script_layer("one"), "seal": script_layer("one", seal=True)},
    {"fa": ["base", "one", "seal"]},
    build={"accelerator": "tcg"},
)


def small_project(root: Path) -> Path:
    return write_standin(root, SMALL, "factory.yaml")


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("family", ["", ",", " , "])
def test_build_with_no_family_is_one_clear_error(tmp_path: Path, family: str) -> None:
    proc = invoke("build", f"--family={family}", f"--config={REPO / 'standin.yaml'}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "--family names no family" in proc.stderr and "standin-alpha" in proc.stderr
    assert tree(tmp_path) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"version: 1\n# caf\xe9\n", "line 2, column 6: not UTF-8 text: byte 0xe9"),
        (b"", ".: the file is empty"),
        (b"# nothing yet\n", ".: the file is empty"),
    ],
    ids=["latin-1", "empty", "comments-only"],
)
def test_unreadable_config_is_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    config = tmp_path / "factory.yaml"
    config.write_bytes(content)
    proc = invoke("plan", "--family=fa", f"--config={config}", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "None is not of type" not in proc.stderr
    assert f"{config}: {message}" in proc.stderr


@pytest.mark.parametrize("command", ["build", "plan", "verify"])
@pytest.mark.parametrize("under", [False, True], ids=["a-file", "under-a-file"])
def test_artifacts_path_that_cannot_be_a_directory(
    tmp_path: Path, command: str, under: bool
) -> None:
    """Artifacts set to a regular file (or below one): one line naming it, no traceback.
    (A read-only directory is covered by tests/unit/test_readonly_commands.py: these tests
    may run as root, whom a directory's mode does not stop.)"""
    afile = tmp_path / "afile"
    afile.write_text("not a directory\n")
    artifacts = afile / "artifacts" if under else afile
    proc = invoke(
        command,
        "--family=standin-alpha",
        f"--config={REPO / 'standin.yaml'}",
        cwd=tmp_path,
        env={"INVOKE_FACTORY_ARTIFACTS": str(artifacts)},
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"error: artifacts directory {artifacts}: {afile} is a regular file" in proc.stderr
    assert tree(tmp_path) == ["afile"]


def test_doctor_fails_an_artifacts_path_that_cannot_be_a_directory(tmp_path: Path) -> None:
    config = small_project(tmp_path / "project")
    afile = tmp_path / "afile"
    afile.write_text("not a directory\n")
    proc = invoke(
        "doctor",
        f"--config={config}",
        cwd=tmp_path,
        env={"INVOKE_FACTORY_ARTIFACTS": str(afile / "artifacts")},
    )
    assert proc.returncode == 1
    line = next(ln for ln in proc.stdout.splitlines() if " artifacts " in ln)
    assert "[FAIL]" in line and f"{afile} is a regular file" in line
    assert "some required prerequisites are missing" in proc.stderr


@pytest.mark.parametrize("command", ["plan", "doctor"])
def test_read_only_commands_create_nothing(tmp_path: Path, command: str) -> None:
    """plan and doctor against a fresh project: no artifacts/, no keys/, no store/."""
    config = small_project(tmp_path)
    before = tree(tmp_path)
    args = ["--family=fa"] if command == "plan" else []
    proc = invoke(command, *args, f"--config={config}", cwd=tmp_path)
    assert "Traceback" not in proc.stderr
    if command == "plan":
        assert proc.returncode == 0, proc.stderr
        assert "no build credential yet" in proc.stdout.splitlines()[1]
    else:
        assert " artifacts " in proc.stdout and " store " in proc.stdout
    assert tree(tmp_path) == before


def test_output_into_a_pipe_closed_early_ends_quietly(tmp_path: Path) -> None:
    """`invoke plan | head -1`: the reader goes away after one line; no traceback, ever."""
    for _ in range(6):  # the race is lost about half the time: several runs make it sure
        proc = subprocess.Popen(
            [sys.executable, "-m", "invoke", "-r", str(REPO), "plan", "--family=standin-alpha"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            cwd=tmp_path,
            env={**os.environ, "INVOKE_FACTORY_CONFIG": str(REPO / "standin.yaml")},
        )
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith(b"family standin-alpha")
        proc.stdout.close()
        stderr = proc.stderr.read().decode()
        proc.wait(timeout=120)
        assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
        assert proc.returncode in (0, 141)
