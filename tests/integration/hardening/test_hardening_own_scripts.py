"""Our hardening/scripts: shellcheck clean, and applied to a scratch root they converge and are
idempotent (CIS_ROOT mode: file changes only; package/service steps need the live guest)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from imagefactory.hardening import load_scripts
from tests.prereq import require_root, require_tool

pytestmark = pytest.mark.integration

SCRIPTS = Path(__file__).parents[3] / "hardening" / "scripts"

FILES = {
    "etc/ssh/sshd_config": "PermitRootLogin no\n",
    "etc/crontab": "SHELL=/bin/sh\n",
    "etc/cron.deny": "",
    "etc/at.deny": "",
    "etc/systemd/journald.conf": "[Journal]\n#Storage=auto\n#Compress=yes\nForwardToSyslog=no\n",
    "etc/firewalld/firewalld.conf": "# firewalld config\nDefaultZone=drop\n",
    "usr/lib/firewalld/zones/public.xml": "<zone/>\n",
    "etc/sysconfig/chronyd": 'OPTIONS="-F 2"\n',
    "etc/login.defs": "UID_MIN                  1000\n",
    "etc/passwd": (
        "root:x:0:5:root:/root:/bin/bash\n"
        "sync:x:5:0:sync:/sbin:/bin/sync\n"
        "daemon:x:2:2:daemon:/sbin:/bin/bash\n"
        "alice:x:1000:1000::/home/alice:/bin/bash\n"
    ),
    "etc/group": "root:x:0:\ndaemon:x:2:\nalice:x:1000:\n",
}
DIRS = ["etc/cron.hourly", "etc/cron.daily", "etc/cron.weekly", "etc/cron.monthly", "etc/cron.d"]


@pytest.fixture
def scratch_root(tmp_path: Path) -> Path:
    require_root("the scripts chown to root:root")
    for rel, text in FILES.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o644)
    for rel in DIRS:
        (tmp_path / rel).mkdir(parents=True)
        (tmp_path / rel).chmod(0o755)
    return tmp_path


def run_all(root: Path) -> str:
    output = []
    for script in load_scripts(SCRIPTS):
        proc = subprocess.run(
            ["bash", str(script.path)],
            env={**os.environ, "CIS_ROOT": str(root)},
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, f"{script.name}: {proc.stdout}{proc.stderr}"
        output.append(proc.stdout)
    return "".join(output)


def mode_of(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def test_shellcheck_clean() -> None:
    """Every script and the shared library pass shellcheck (following the source line)."""
    require_tool("shellcheck")
    files = sorted(str(p) for p in SCRIPTS.rglob("*.sh"))
    proc = subprocess.run(["shellcheck", "-x", *files], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_scripts_converge_on_scratch_root(scratch_root: Path) -> None:
    """After one run, the file-level CIS settings hold."""
    run_all(scratch_root)
    assert mode_of(scratch_root / "etc/ssh/sshd_config") == (0, 0, 0o600)
    assert mode_of(scratch_root / "etc/crontab") == (0, 0, 0o600)
    for rel in DIRS:
        assert mode_of(scratch_root / rel) == (0, 0, 0o700), rel
    assert not (scratch_root / "etc/cron.deny").exists()
    assert not (scratch_root / "etc/at.deny").exists()
    assert mode_of(scratch_root / "etc/cron.allow") == (0, 0, 0o600)
    assert mode_of(scratch_root / "etc/at.allow") == (0, 0, 0o600)
    journald = (scratch_root / "etc/systemd/journald.conf").read_text().splitlines()
    assert journald == ["[Journal]", "Storage=persistent", "Compress=yes", "ForwardToSyslog=yes"]
    assert "DefaultZone=public" in (scratch_root / "etc/firewalld/firewalld.conf").read_text()
    assert (scratch_root / "etc/sysconfig/chronyd").read_text() == 'OPTIONS="-F 2 -u chrony"\n'
    modprobe = (scratch_root / "etc/modprobe.d/cis-udf.conf").read_text()
    assert modprobe == "install udf /bin/false\nblacklist udf\n"
    passwd = (scratch_root / "etc/passwd").read_text().splitlines()
    assert passwd[0] == "root:x:0:0:root:/root:/bin/bash"
    assert passwd[1] == "sync:x:5:0:sync:/sbin:/bin/sync"
    assert passwd[2] == "daemon:x:2:2:daemon:/sbin:/sbin/nologin"
    assert passwd[3] == "alice:x:1000:1000::/home/alice:/bin/bash"


def test_scripts_are_idempotent(scratch_root: Path) -> None:
    """A second run changes nothing and says so."""
    first = run_all(scratch_root)
    snapshot = {p: (p.read_bytes(), mode_of(p)) for p in scratch_root.rglob("*") if p.is_file()}
    second = run_all(scratch_root)
    assert "changed:" in first
    assert "changed:" not in second, second
    after = {p: (p.read_bytes(), mode_of(p)) for p in scratch_root.rglob("*") if p.is_file()}
    assert after == snapshot


def test_duplicate_gid_fails_the_audit_script(scratch_root: Path) -> None:
    """The 6.2.4 audit exits non-zero and names the duplicate GID instead of renumbering."""
    group = scratch_root / "etc/group"
    group.write_text(group.read_text() + "dupe:x:2:\n")
    proc = subprocess.run(
        ["bash", str(SCRIPTS / "cis-6.2.4-group-gids-unique.sh")],
        env={**os.environ, "CIS_ROOT": str(scratch_root)},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "duplicate GIDs in /etc/group: 2" in proc.stderr


def test_unknown_firewalld_zone_is_refused(scratch_root: Path) -> None:
    """FIREWALLD_DEFAULT_ZONE must name an existing zone; the config is left alone."""
    proc = subprocess.run(
        ["bash", str(SCRIPTS / "cis-3.4.1.5-firewalld-default-zone.sh")],
        env={**os.environ, "CIS_ROOT": str(scratch_root), "FIREWALLD_DEFAULT_ZONE": "nosuch"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "is not a firewalld zone" in proc.stderr
    assert "DefaultZone=drop" in (scratch_root / "etc/firewalld/firewalld.conf").read_text()
