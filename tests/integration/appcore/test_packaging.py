"""Packaging and portability: RPM build, Python 3.6 compatibility, install.sh, unit files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from appcore.units import render_dropin, render_mount_unit
from appcore_testkit import APPCORE_DIR, CATALOGUE

from appcore.catalogue import load_catalogue
from tests.prereq import require_tool

pytestmark = pytest.mark.integration
VENV_BIN = Path(sys.executable).parent


def run(argv, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def vermin(path: Path) -> subprocess.CompletedProcess:
    exe = VENV_BIN / "vermin"
    if not exe.exists():
        require_tool("vermin")
        exe = Path("vermin")
    return run([exe, "-t=3.6-", "--no-tips", "--violations", "--eval-annotations", path])


def test_package_is_python36_compatible() -> None:
    """vermin finds nothing in the package that needs more than Python 3.6 (OL8 platform-python)."""
    result = vermin(APPCORE_DIR / "src" / "appcore")
    assert result.returncode == 0, result.stdout


def test_vermin_check_catches_newer_python(tmp_path: Path) -> None:
    """The same vermin check fails on code that needs Python 3.7 (dataclasses)."""
    (tmp_path / "new.py").write_text("from dataclasses import dataclass\n")
    assert vermin(tmp_path).returncode != 0


def test_rpm_builds_and_contains_the_controller(tmp_path: Path) -> None:
    """rpmbuild makes a noarch RPM with the launcher, package, catalogue and units."""
    require_tool("rpmbuild")
    result = run(
        [
            "rpmbuild",
            "-bb",
            "--define",
            f"_sourcedir {APPCORE_DIR}",
            "--define",
            f"_topdir {tmp_path}",
            APPCORE_DIR / "appcore.spec",
        ]
    )
    assert result.returncode == 0, result.stdout[-2000:]
    rpms = list((tmp_path / "RPMS" / "noarch").glob("appcore-*.noarch.rpm"))
    assert len(rpms) == 1
    files = run(["rpm", "-qlp", rpms[0]]).stdout.split()
    for expected in (
        "/usr/sbin/appcore",
        "/usr/lib/appcore/appcore/cli.py",
        "/usr/share/appcore/roles.json",
        "/usr/lib/systemd/system/appcore.service",
        "/usr/lib/systemd/system/appcore-disk@.service",
        "/usr/lib/systemd/system/appcore-hostkeys.service",
    ):
        assert expected in files
    assert "/etc/appcore/roles.d/selftest.json" not in files


def install(root: Path, *extra: str) -> subprocess.CompletedProcess:
    return run(["bash", APPCORE_DIR / "install.sh", "--root", root] + list(extra))


def test_install_sh_into_a_root_enables_the_unit(tmp_path: Path) -> None:
    """install.sh --root writes image.json and enables appcore.service in that root."""
    require_tool("systemctl")
    result = install(tmp_path, "--family", "workers")
    assert result.returncode == 0, result.stdout
    assert json.loads((tmp_path / "etc/appcore/image.json").read_text()) == {"family": "workers"}
    wants = tmp_path / "etc/systemd/system/multi-user.target.wants"
    assert (wants / "appcore.service").is_symlink()
    assert (wants / "appcore-hostkeys.service").is_symlink()  # Also= of appcore.service


def test_installed_launcher_runs_the_package(tmp_path: Path) -> None:
    """The installed /usr/sbin/appcore launcher validates the installed catalogue."""
    require_tool("systemctl")
    assert install(tmp_path, "--family", "persistence", "--with-selftest").returncode == 0
    env = dict(os.environ, APPCORE_LIBDIR=str(tmp_path / "usr/lib/appcore"))
    result = run([tmp_path / "usr/sbin/appcore", "--root", tmp_path, "validate"], env=env)
    assert result.returncode == 0, result.stdout
    # 17 production roles, SELFTEST, STANDIN_GALERA and STANDIN_RR
    assert "catalogue OK: 20 roles, 2 families, 4 data disks" in result.stdout


def test_install_sh_refuses_an_unknown_family(tmp_path: Path) -> None:
    """install.sh --family compute fails before installing anything."""
    result = install(tmp_path, "--family", "compute")
    assert result.returncode == 2
    assert "'compute' is not one of ['persistence', 'workers']" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_unit_files_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """Shipped units, a generated mount unit and a service drop-in pass systemd-analyze verify."""
    require_tool("systemd-analyze")
    launcher = tmp_path / "appcore"
    launcher.write_text("#!/bin/sh\n")
    launcher.chmod(0o755)
    for unit in (APPCORE_DIR / "systemd").glob("*.service"):
        text = unit.read_text().replace("/usr/sbin/appcore", str(launcher))
        (tmp_path / unit.name).write_text(text)
    cat = load_catalogue(str(CATALOGUE))
    (tmp_path / "data-db.mount").write_text(render_mount_unit(cat.disks["DATA_DB"], "xfs"))
    (tmp_path / "mysql.service").write_text("[Service]\nExecStart=/bin/true\n")
    (tmp_path / "mysql.service.d").mkdir()
    (tmp_path / "mysql.service.d/50-appcore.conf").write_text(
        render_dropin(cat.roles["MYSQL_MASTER"], ["/data/db"])
    )
    env = dict(os.environ, SYSTEMD_UNIT_PATH=f"{tmp_path}:")
    result = run(
        [
            "systemd-analyze",
            "verify",
            "--man=no",
            "appcore.service",
            "appcore-disk@DATA_DB.service",
            "appcore-hostkeys.service",
            "appcore-selftest.service",
            "data-db.mount",
            "mysql.service",
        ],
        env=env,
        cwd=str(tmp_path),
    )
    assert result.returncode == 0 and result.stdout == "", result.stdout


def test_shell_scripts_are_shellcheck_clean() -> None:
    """install.sh and the launcher pass shellcheck."""
    require_tool("shellcheck")
    result = run(["shellcheck", APPCORE_DIR / "install.sh", APPCORE_DIR / "bin" / "appcore"])
    assert result.returncode == 0, result.stdout
