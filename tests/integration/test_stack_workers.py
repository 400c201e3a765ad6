"""The workers stack's unit rendering, run for real into a temporary root and checked with
systemd's own tools (systemd-analyze verify and security --offline) on this host."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from imagefactory.config import load_config
from tests.prereq import require_tool

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
RENDER = REPO / "packer/scripts/stack-workers/40-install-worker-units.sh"
TEMPLATE = REPO / "packer/files/workers/worker.service.in"
ROLES_JSON = REPO / "appcore/catalogue/roles.json"

UNITS = {
    "APP": "app-worker.service",
    "API": "api-worker.service",
    "REPORT": "report-worker.service",
    "NOTIFY_SMS": "notify-sms-worker.service",
    "NOTIFY_EMAIL": "notify-email-worker.service",
    "NOTIFY_WHATSAPP": "notify-whatsapp-worker.service",
    "PG": "pg-worker.service",
    "INVOICE": "invoice-worker.service",
}
JAVA = "/usr/lib/jvm/jre-17/bin/java"
# Measured with systemd 252 (Debian 12) `systemd-analyze security --offline=yes`: 1.9 for every
# worker unit. Dropping any one of the sandbox settings in REQUIRED scores 2.0 or more, except
# LockPersonality= (weight 0.1: still 1.9), which test_unit_has_the_hardening_settings covers.
MAX_EXPOSURE = 2.0
REQUIRED = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictSUIDSGID": "yes",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "CapabilityBoundingSet": "",
    "User": "workers",
    "Group": "workers",
}
# Every [Unit]/[Service]/[Install] key the template may use. Each one is in the unit-file table
# of the systemd 239 that OL8 ships (RHEL 8 build), which ignores unknown keys with a warning.
# ProtectClock=, ProtectHostname=, ProtectKernelLogs=, ProtectProc= and ProcSubset= are not.
KNOWN_TO_OL8_SYSTEMD = {
    "Description",
    "Wants",
    "After",
    "ConditionPathExists",
    "WantedBy",
    "Type",
    "User",
    "Group",
    "EnvironmentFile",
    "WorkingDirectory",
    "ExecStart",
    "SuccessExitStatus",
    "Restart",
    "RestartSec",
    "TimeoutStopSec",
    "SyslogIdentifier",
    "StateDirectory",
    "StateDirectoryMode",
    "LogsDirectory",
    "LogsDirectoryMode",
    "ReadWritePaths",
    "UMask",
    "NoNewPrivileges",
    "CapabilityBoundingSet",
    "AmbientCapabilities",
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
    "PrivateDevices",
    "PrivateMounts",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectControlGroups",
    "RestrictSUIDSGID",
    "RestrictNamespaces",
    "RestrictRealtime",
    "LockPersonality",
    "RemoveIPC",
    "RestrictAddressFamilies",
    "SystemCallArchitectures",
    "SystemCallFilter",
    "SystemCallErrorNumber",
}


def layer_env() -> dict[str, str]:
    """The stack-workers layer's IF_* variables, as factory.yaml passes them to the scripts."""
    layer = load_config(REPO / "factory.yaml").layers["stack-workers"]
    return {k: str(v) for k, v in layer.variables.items()}


def render(root: Path, **overrides: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "IF_FILES": str(REPO / "packer/files"),
        "DESTDIR": str(root),
        **layer_env(),
        **overrides,
    }
    return subprocess.run(["bash", str(RENDER)], env=env, capture_output=True, text=True)


def make_root(root: Path) -> Path:
    """A root with the units rendered, a stand-in JDK 17 java and the host's system units."""
    proc = render(root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    java = root / JAVA.lstrip("/")
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\nexit 0\n")
    java.chmod(0o755)
    # verify resolves the units' dependencies (sysinit.target, network-online.target, ...)
    # inside --root; give it the host's unit directory (absent on a host without systemd,
    # where the systemd-analyze tests skip or, in CI, fail).
    host_units = Path("/usr/lib/systemd/system")
    if host_units.is_dir():
        shutil.copytree(host_units, root / "usr/lib/systemd/system", symlinks=True)
    return root


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_root(tmp_path_factory.mktemp("workers-root"))


def unit_path(root: Path, unit: str) -> Path:
    return root / "etc/systemd/system" / unit


def parse_unit(path: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) for each setting, in order; joins backslash continuations."""
    out: list[tuple[str, str, str]] = []
    section, pending = "", ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip() if pending else raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def settings(path: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for _, key, value in parse_unit(path):
        found.setdefault(key, []).append(value)
    return found


def verify(root: Path, unit: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", "--man=no", "--generators=no", unit],
        capture_output=True,
        text=True,
    )


def exposure(root: Path, unit: str) -> float:
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", f"--root={root}", "--no-pager", unit],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout)
    assert found, proc.stdout
    return float(found.group(1))


def test_render_installs_exactly_the_eight_worker_units(root: Path) -> None:
    """One unit per worker role, named as App-Core's catalogue expects; nothing else."""
    names = sorted(p.name for p in (root / "etc/systemd/system").iterdir())
    assert names == sorted(UNITS.values())


def test_units_are_installed_not_enabled(root: Path) -> None:
    """Rendering enables nothing: no .wants/.requires links anywhere in the root's /etc."""
    links = [p for p in (root / "etc").rglob("*") if p.is_symlink() or p.name.endswith(".wants")]
    assert links == []


def test_render_is_idempotent(tmp_path: Path) -> None:
    """A second run leaves byte-identical units and no temporary files behind."""
    assert render(tmp_path).returncode == 0
    first = {p.name: p.read_bytes() for p in (tmp_path / "etc/systemd/system").iterdir()}
    assert render(tmp_path).returncode == 0
    second = {p.name: p.read_bytes() for p in (tmp_path / "etc/systemd/system").iterdir()}
    assert second == first


def test_render_rejects_a_bad_role_id(tmp_path: Path) -> None:
    """A role ID that is not A-Z/0-9/_ fails the script before anything is written."""
    proc = render(tmp_path, IF_WORKER_ROLES="APP ../evil")
    assert proc.returncode != 0
    assert "../evil" in proc.stderr
    assert not (tmp_path / "etc").exists()


def test_render_leaves_no_placeholder(root: Path) -> None:
    """Every @NAME@ placeholder of the template is filled in."""
    for unit in UNITS.values():
        assert re.findall(r"@[A-Z_]+@", unit_path(root, unit).read_text()) == [], unit


def test_layer_roles_are_the_catalogue_workers_roles() -> None:
    """factory.yaml's IF_WORKER_ROLES are the workers roles of App-Core's catalogue, and the
    units App-Core will enable are the ones rendered."""
    roles = json.loads(ROLES_JSON.read_text())["roles"]
    workers = {rid: r for rid, r in roles.items() if r["family"] == "workers"}
    assert sorted(layer_env()["IF_WORKER_ROLES"].split()) == sorted(workers)
    assert {rid: r["services"] for rid, r in workers.items()} == {
        rid: [unit] for rid, unit in UNITS.items()
    }


@pytest.mark.parametrize("role", sorted(UNITS))
def test_environment_file_is_appcore_config_dir(root: Path, role: str) -> None:
    """The required EnvironmentFile is App-Core's worker.env in the role's config_dir."""
    catalogue = json.loads(ROLES_JSON.read_text())["roles"][role]
    assert "worker.env" in catalogue["templates"]
    files = settings(unit_path(root, UNITS[role]))["EnvironmentFile"]
    required = [f for f in files if not f.startswith("-")]
    assert required == [catalogue["config_dir"] + "/worker.env"]


@pytest.mark.parametrize("unit", sorted(UNITS.values()))
def test_unit_passes_systemd_analyze_verify(root: Path, unit: str) -> None:
    """verify exits 0 and prints nothing: no unknown or unparsable line, java found."""
    require_tool("systemd-analyze")
    proc = verify(root, unit)
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


def test_verify_check_catches_a_dropped_setting(tmp_path: Path) -> None:
    """The verify check can fail: a misspelt key (ignored by systemd) is reported."""
    require_tool("systemd-analyze")
    broken = make_root(tmp_path)
    path = unit_path(broken, "app-worker.service")
    path.write_text(path.read_text().replace("\nProtectHome=yes\n", "\nProtectHomes=yes\n"))
    proc = verify(broken, "app-worker.service")
    assert "ProtectHomes" in proc.stdout + proc.stderr


def test_verify_check_catches_a_missing_java(tmp_path: Path) -> None:
    """The verify check can fail: without JDK 17's java at the units' path, verify errors."""
    require_tool("systemd-analyze")
    broken = make_root(tmp_path)
    (broken / JAVA.lstrip("/")).unlink()
    proc = verify(broken, "app-worker.service")
    assert proc.returncode != 0
    assert JAVA in proc.stdout + proc.stderr


@pytest.mark.parametrize("unit", sorted(UNITS.values()))
def test_unit_has_the_hardening_settings(root: Path, unit: str) -> None:
    """Each required sandbox setting is present exactly once with the expected value."""
    found = settings(unit_path(root, unit))
    assert {k: found.get(k) for k in REQUIRED} == {k: [v] for k, v in REQUIRED.items()}


@pytest.mark.parametrize("unit", sorted(UNITS.values()))
def test_unit_leaves_jit_memory_allowed(root: Path, unit: str) -> None:
    """MemoryDenyWriteExecute is not set (the JIT needs W+X memory) and the reason is given."""
    text = unit_path(root, unit).read_text()
    assert "MemoryDenyWriteExecute" not in settings(unit_path(root, unit))
    assert "JIT" in text


@pytest.mark.parametrize("unit", sorted(UNITS.values()))
def test_unit_uses_only_settings_ol8_systemd_knows(root: Path, unit: str) -> None:
    """No key that OL8's systemd 239 would ignore as unknown."""
    keys = {key for _, key, _ in parse_unit(unit_path(root, unit))}
    assert keys - KNOWN_TO_OL8_SYSTEMD == set()


@pytest.mark.parametrize("role", sorted(UNITS))
def test_writable_paths_are_only_state_and_logs(root: Path, role: str) -> None:
    """ReadWritePaths lists exactly the role's state and log directories."""
    found = settings(unit_path(root, UNITS[role]))
    lower = role.lower()
    assert found["StateDirectory"] == [f"workers/{lower} workers/{lower}/tmp"]
    assert found["LogsDirectory"] == [f"workers/{lower}"]
    assert found["ReadWritePaths"] == [f"/var/lib/workers/{lower} /var/log/workers/{lower}"]


@pytest.mark.parametrize("role", sorted(UNITS))
def test_java_tmpdir_is_exec_allowed_state_dir(root: Path, role: str) -> None:
    """java.io.tmpdir is the role's state tmp dir: not under /tmp or /var/tmp, and writable."""
    found = settings(unit_path(root, UNITS[role]))
    (exec_start,) = found["ExecStart"]
    argv = exec_start.split()
    assert argv[0] == JAVA
    tmpdirs = [a.split("=", 1)[1] for a in argv if a.startswith("-Djava.io.tmpdir=")]
    assert tmpdirs == [f"/var/lib/workers/{role.lower()}/tmp"]
    tmpdir = Path(tmpdirs[0])
    for noexec in (Path("/tmp"), Path("/var/tmp")):
        assert tmpdir != noexec and noexec not in tmpdir.parents
    state_dirs = ["/var/lib/" + d for d in found["StateDirectory"][0].split()]
    assert str(tmpdir) in state_dirs
    # After $JAVA_OPTS, so an application option cannot move it back to /tmp.
    assert argv.index("$JAVA_OPTS") < argv.index(f"-Djava.io.tmpdir={tmpdir}")


@pytest.mark.parametrize("role", sorted(UNITS))
def test_start_is_skipped_without_the_jar(root: Path, role: str) -> None:
    """ConditionPathExists names the jar ExecStart runs, so no jar means no start."""
    found = settings(unit_path(root, UNITS[role]))
    jar = f"/opt/workers/lib/{role.lower()}.jar"
    assert found["ConditionPathExists"] == [jar]
    assert found["ExecStart"][0].split()[-2:] == ["-jar", jar]


@pytest.mark.parametrize("unit", sorted(UNITS.values()))
def test_exposure_score_is_below_limit(root: Path, unit: str) -> None:
    """systemd-analyze security --offline scores the unit below MAX_EXPOSURE."""
    require_tool("systemd-analyze")
    assert exposure(root, unit) < MAX_EXPOSURE


def test_exposure_check_catches_a_weakened_unit(tmp_path: Path) -> None:
    """The score check can fail: the unit without its sandbox block scores far above it."""
    require_tool("systemd-analyze")
    weak = make_root(tmp_path)
    path = unit_path(weak, "app-worker.service")
    text = path.read_text()
    start, end = text.index("NoNewPrivileges=yes"), text.index("# MemoryDenyWriteExecute")
    path.write_text(text[:start] + text[end:])
    assert exposure(weak, "app-worker.service") > MAX_EXPOSURE + 3
