"""A round-robin group of two stand-in VMs (role STANDIN_RR: MariaDB on the data disk, the
same App-Core round-robin code as MYSQL_RR_7D) on the real libvirtd, rotated daily through
`invoke fleet.rotate --at`: three rotations, more than a cycle. Rows are written into the
active member of each day; every backup streams from the VM over SSH (`appcore rr backup`)
into a directory store and is verified by a restore test on this host before any purge; a
member is purged (`appcore rr purge`) only when the day it held has a verified backup; and
`invoke fleet.restore` of a purged day gives back tables with the same checksums.

Marker rr_e2e, deselected by default (CI's time): `.venv/bin/pytest -m rr_e2e tests/e2e`.
Runs after the Galera module (same session image and daemon; its own bridge and subnet).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from imagefactory.fleet.config import load_fleet
from imagefactory.fleet.hypervisor import Connections, lookup
from imagefactory.fleet.nodes import plan_fleet
from imagefactory.fleet.rotation import member_of
from imagefactory.fleet.rr_config import rotation_group
from tests import libvirtlab as lab
from tests.fleetkit import group, write_fleet
from tests.libvirtd import Libvirtd
from tests.libvirtlab import published_standin, show
from tests.prereq import require_tools
from tests.storekit import make_signing_keys

pytestmark = [pytest.mark.e2e, pytest.mark.rr_e2e]
BRIDGE = "br-rr"
SUBNET = "10.89.0"
GROUP = "standin-rr"
NODES = ("standin-rr-01", "standin-rr-02")
FIRST = date(2026, 12, 1)  # the day before the first rotation


@pytest.fixture(scope="module")
def rr(
    workspace: Path, libvirtd: Libvirtd, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Two STANDIN_RR members on one hypervisor entry, applied and running; backups go to a
    directory store with its own signing key."""
    require_tools("ssh", "dnsmasq", "mariadb", "mariabackup", "mbstream", "ip")
    work = tmp_path_factory.mktemp("rr")
    settings = published_standin(workspace, work)
    keys = make_signing_keys(work / "backup-keys")
    host = {
        "uri": libvirtd.uri,
        "storage_dir": str(work / "lab-rr"),
        "storage": "pool",
        "capacity": {"vcpu": 2, "memory_gib": 4, "storage_gb": 20},
        "network": {"bridge": BRIDGE},
    }
    members = group(
        "STANDIN_RR",
        "standin-alpha",
        2,
        "independent",
        GROUP,
        ("DATA_DB", 1),
        vcpu=1,
        memory_gib=1,
        os_disk_gb=3,
        rotation="daily",
        timezone="UTC",
        backup={
            "kind": "fs",
            "path": str(work / "backups"),
            "signing_key": str(keys.private_key),
            "allowed_signers": str(keys.allowed_signers),
        },
    )
    path = write_fleet(
        work,
        {"lab-rr": host},
        {GROUP: members},
        name="rr",
        catalogue="test",  # STANDIN_RR is a test-only role
        network={
            "subnet": f"{SUBNET}.0/24",
            "gateway": f"{SUBNET}.1",
            "dns": [f"{SUBNET}.1"],
            "first_host": 16,
        },
        store={
            "kind": "fs",
            "path": str(settings.path),
            "allowed_signers": str(settings.allowed_signers),
            "image_dir": str(work / "pulled"),
        },
        rollout={"ssh_identity": "ops_ed25519", "health_timeout_s": 600},
    )
    fleet = load_fleet(path)
    plan = plan_fleet(fleet)
    assert sorted(plan.nodes) == list(NODES)
    dnsmasq = lab.start_network(libvirtd, work, plan, BRIDGE, SUBNET)
    conns = Connections()
    try:
        applied = lab.invoke_in_ns(libvirtd, path, "fleet.apply")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        ips = {n: str(plan.nodes[n].ip) for n in NODES}
        wait_ready(libvirtd, path.parent / "ops_ed25519", ips)
        yield {"path": path, "ips": ips, "calendar": rotation_group(fleet.groups[GROUP])}
    finally:
        for name in NODES:
            dom = lookup(conns.get(fleet.hypervisors[plan.nodes[name].host]), name)
            if dom is not None and dom.isActive():
                dom.destroy()
        conns.close()
        dnsmasq.terminate()
        dnsmasq.wait(timeout=10)


def wait_ready(libvirtd: Libvirtd, key: Path, ips: dict[str, str], limit_s: float = 600) -> None:
    """Until `appcore ready` says so on every member (App-Core made its data directory,
    MariaDB answers, read-only as a new member is)."""
    deadline = time.monotonic() + limit_s
    last: dict[str, str] = {}
    while time.monotonic() < deadline:
        for node, ip in ips.items():
            done = lab.ssh_in_ns(libvirtd, key, ip, "sudo -n appcore ready --json")
            last[node] = (done.stdout or done.stderr).strip()[-300:]
        if all(json_ready(text) for text in last.values()):
            return
        time.sleep(5)
    pytest.fail(f"members not ready within {limit_s:g} s: {last}")


def json_ready(text: str) -> bool:
    try:
        return bool(json.loads(text).get("ready"))
    except ValueError:
        return False


def sql(libvirtd: Libvirtd, rr: dict[str, Any], node: str, query: str) -> str:
    done = lab.ssh_in_ns(
        libvirtd,
        rr["path"].parent / "ops_ed25519",
        rr["ips"][node],
        f'sudo -n mariadb -N -B -e "{query}"',
    )
    assert done.returncode == 0, f"{node}: {query}: {done.stderr}"
    return done.stdout


def rotate(libvirtd: Libvirtd, rr: dict[str, Any], day: date) -> subprocess.CompletedProcess[str]:
    """fleet.rotate as the midnight timer runs it, 30 s into `day`."""
    return lab.invoke_in_ns(libvirtd, rr["path"], "fleet.rotate", f"--at={day}T00:00:30")


def active(rr: dict[str, Any], day: date) -> str:
    return member_of(rr["calendar"], day.isoformat())


def write_day(libvirtd: Libvirtd, rr: dict[str, Any], day: date) -> None:
    """Rows naming `day`, as an application writes them into that day's active member."""
    values = ",".join(f"('{day}', {i})" for i in range(1, 21))
    sql(
        libvirtd,
        rr,
        active(rr, day),
        "CREATE DATABASE IF NOT EXISTS app; CREATE TABLE IF NOT EXISTS app.t "
        "(id INT PRIMARY KEY AUTO_INCREMENT, day CHAR(10), n INT) ENGINE=InnoDB; "
        f"INSERT INTO app.t (day, n) VALUES {values}",
    )


def days_held(libvirtd: Libvirtd, rr: dict[str, Any], node: str) -> list[str]:
    if "app" not in sql(libvirtd, rr, node, "SHOW DATABASES").split():
        return []
    return sql(libvirtd, rr, node, "SELECT DISTINCT day FROM app.t ORDER BY day").split()


def read_only(libvirtd: Libvirtd, rr: dict[str, Any], node: str) -> bool:
    return sql(libvirtd, rr, node, "SELECT @@GLOBAL.read_only").strip() == "1"


def test_rotations_back_up_before_every_purge(libvirtd: Libvirtd, rr, capsys) -> None:
    """Three daily rotations of two members: each ended day backed up and verified, each
    purge after the verified backup of the day that member held, writes on the day's member."""
    day0, day1, day2 = (FIRST + timedelta(days=i) for i in (1, 2, 3))
    outputs = []
    first = rotate(libvirtd, rr, day0)  # the group's first run: day0's member takes the writes
    outputs.append(first.stdout)
    assert first.returncode == 0, first.stdout + first.stderr
    assert not read_only(libvirtd, rr, active(rr, day0))
    for day, midnight in ((day0, day1), (day1, day2)):
        write_day(libvirtd, rr, day)
        done = rotate(libvirtd, rr, midnight)
        outputs.append(done.stdout)
        assert done.returncode == 0, done.stdout + done.stderr
    show(capsys, "round-robin rotations:\n" + "".join(outputs))
    text = "".join(outputs)
    a, b = active(rr, day0), active(rr, day1)
    assert re.findall(r"purged \S+ \(.*\)", text) == [
        f"purged {a} (it holds no data)",
        f"purged {b} (period {FIRST} has a verified backup)",
        f"purged {a} (period {day0} has a verified backup)",
    ]
    # Each purge of a member that held a day comes after that day's backup was verified.
    assert text.index(f"backup of {b} for {FIRST}: verified") < text.index(f"purged {b}")
    assert text.index(f"backup of {a} for {day0}: verified") < text.rindex(f"purged {a}")
    assert days_held(libvirtd, rr, active(rr, day1)) == [str(day1)]
    assert read_only(libvirtd, rr, active(rr, day1))
    assert days_held(libvirtd, rr, active(rr, day2)) == []  # purged after day0's backup
    assert not read_only(libvirtd, rr, active(rr, day2))
    listed = lab.invoke_in_ns(libvirtd, rr["path"], "fleet.backups")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    for node, day in ((active(rr, day0), day0), (active(rr, day1), day1)):
        rows = [ln.split() for ln in listed.stdout.splitlines()]
        assert [node, str(day)] + ["verified"] in [r[:2] + r[-1:] for r in rows], listed.stdout


def test_restore_of_a_purged_day_gives_back_its_tables(libvirtd: Libvirtd, rr, capsys) -> None:
    """fleet.restore of day0 (purged from its member) onto that member: the checksums of the
    restored tables equal the backup's, and the rows are day0's."""
    day0 = FIRST + timedelta(days=1)
    node = active(rr, day0)
    done = lab.invoke_in_ns(
        libvirtd, rr["path"], "fleet.restore", f"--node={node}", f"--period={day0}"
    )
    show(capsys, f"restore of {node} {day0}:\n{done.stdout}{done.stderr}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"restored {node} {day0} onto {node}: 1 table(s) match" in done.stdout
    assert days_held(libvirtd, rr, node) == [str(day0)]
    assert sql(libvirtd, rr, node, "SELECT COUNT(*) FROM app.t").strip() == "20"
