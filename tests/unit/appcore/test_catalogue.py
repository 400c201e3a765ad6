"""Catalogue validation: the shipped catalogue is complete and every kind of mistake is caught."""

import json
import shutil
from pathlib import Path

import pytest
from appcore.errors import CatalogueError
from appcore_testkit import CATALOGUE, SELFTEST_ROLE

from appcore.catalogue import load_catalogue, template_identifiers

SEED_ROLES = {
    "MYSQL_MASTER": "persistence",
    "MYSQL_READONLY": "persistence",
    "MYSQL_RR_7D": "persistence",
    "MYSQL_RR_3M": "persistence",
    "SCYLLA_CLUSTER": "persistence",
    "SCYLLA_RR_7D": "persistence",
    "SCYLLA_RR_3M": "persistence",
    "REDPANDA": "persistence",
    "HAZELCAST": "persistence",
    "APP": "workers",
    "API": "workers",
    "REPORT": "workers",
    "NOTIFY_SMS": "workers",
    "NOTIFY_EMAIL": "workers",
    "NOTIFY_WHATSAPP": "workers",
    "PG": "workers",
    "INVOICE": "workers",
}


@pytest.fixture
def editable(tmp_path: Path) -> Path:
    """A copy of the shipped catalogue and templates that a test may break."""
    shutil.copytree(str(CATALOGUE.parent), str(tmp_path / "catalogue"))
    return tmp_path / "catalogue" / "roles.json"


def edit(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def problems_of(path: Path, extra_dir=None):
    with pytest.raises(CatalogueError) as err:
        load_catalogue(str(path), extra_dir)
    return err.value.problems


def test_shipped_catalogue_has_every_seed_role_in_its_family() -> None:
    """Every role from the design document is in the catalogue with the right family."""
    cat = load_catalogue(str(CATALOGUE))
    assert {r.id: r.family for r in cat.roles.values()} == SEED_ROLES


def test_persistence_roles_use_the_seed_data_disks() -> None:
    """MySQL, Scylla, Redpanda and Hazelcast roles mount DATA_DB/DS/MS/MG at /data/db/ds/ms/mg."""
    cat = load_catalogue(str(CATALOGUE))
    mounts = {r.id: [cat.disks[d].mount for d in r.disks] for r in cat.roles.values()}
    assert mounts["MYSQL_RR_3M"] == ["/data/db"]
    assert mounts["SCYLLA_CLUSTER"] == ["/data/ds"]
    assert mounts["REDPANDA"] == ["/data/ms"]
    assert mounts["HAZELCAST"] == ["/data/mg"]
    assert mounts["INVOICE"] == []


def test_shipped_disks_mount_nodev_nosuid() -> None:
    """Every data disk mounts with nodev and nosuid."""
    cat = load_catalogue(str(CATALOGUE))
    for disk in cat.disks.values():
        assert {"nodev", "nosuid"} <= set(disk.options.split(",")), disk.serial


def test_selftest_role_loads_as_an_extra_role_file(tmp_path: Path) -> None:
    """The stand-in SELFTEST role is added from a roles.d file without touching the catalogue."""
    (tmp_path / "roles.d").mkdir()
    shutil.copy(str(SELFTEST_ROLE), str(tmp_path / "roles.d" / "selftest.json"))
    cat = load_catalogue(str(CATALOGUE), str(tmp_path / "roles.d"))
    assert cat.roles["SELFTEST"].services == ["appcore-selftest.service"]


def test_extra_role_file_cannot_redefine_a_shipped_role(tmp_path: Path) -> None:
    """A roles.d file that redefines MYSQL_MASTER is refused."""
    doc = json.loads(SELFTEST_ROLE.read_text())
    doc["roles"]["MYSQL_MASTER"] = doc["roles"].pop("SELFTEST")
    (tmp_path / "roles.d").mkdir()
    (tmp_path / "roles.d" / "evil.json").write_text(json.dumps(doc))
    problems = problems_of(CATALOGUE, str(tmp_path / "roles.d"))
    assert any("roles.MYSQL_MASTER: already defined" in p for p in problems)


def test_long_serial_is_refused(editable: Path) -> None:
    """A serial longer than 12 characters (XFS label limit) is a catalogue error."""
    edit(editable, lambda d: d["disks"].update(DATA_DB_TOO_LONG_X=d["disks"].pop("DATA_DB")))
    assert any("disks.DATA_DB_TOO_LONG_X: serial must match" in p for p in problems_of(editable))


def test_mount_without_nodev_is_refused(editable: Path) -> None:
    """Mount options without nodev are a catalogue error."""
    edit(editable, lambda d: d["disks"]["DATA_DS"].update(options="nosuid,noatime"))
    assert any("disks.DATA_DS.options: must include nodev" in p for p in problems_of(editable))


def test_unknown_template_placeholder_is_refused(editable: Path) -> None:
    """A template placeholder that is neither built in nor a role param is a catalogue error."""
    tmpl = editable.parent / "templates" / "redpanda.yaml.tmpl"
    tmpl.write_text(tmpl.read_text() + "seeds: ${seed_list}\n")
    assert any("uses unknown placeholders ['seed_list']" in p for p in problems_of(editable))


def test_overlapping_hostname_patterns_are_refused(editable: Path) -> None:
    """A hostname pattern that also matches another role's example hostname is refused."""
    edit(editable, lambda d: d["roles"]["API"].update(hostname_pattern="^wrk-a[a-z]+-[0-9]{2}$"))
    problems = problems_of(editable)
    assert any(
        "roles.APP.hostname_example: 'wrk-app-01' matches ['API', 'APP']" in p for p in problems
    )


def test_unanchored_hostname_pattern_is_refused(editable: Path) -> None:
    """A hostname pattern without ^...$ is refused (patterns must be strict)."""
    edit(editable, lambda d: d["roles"]["PG"].update(hostname_pattern="wrk-pg"))
    assert any("roles.PG.hostname_pattern: must be anchored" in p for p in problems_of(editable))


def test_all_problems_are_reported_at_once(editable: Path) -> None:
    """Three independent mistakes give three problems in one error."""

    def change(d):
        d["roles"]["APP"]["family"] = "compute"
        d["roles"]["REDPANDA"]["disks"] = ["DATA_XX"]
        d["roles"]["API"]["services"] = ["api worker"]

    edit(editable, change)
    problems = problems_of(editable)
    assert len(problems) == 3, problems
    assert any(
        "roles.APP.family: 'compute' is not one of ['persistence', 'workers']" in p
        for p in problems
    )


def test_unreadable_catalogue_is_one_clear_problem(tmp_path: Path) -> None:
    """A catalogue that is not JSON names the file in the error."""
    bad = tmp_path / "roles.json"
    bad.write_text("{not json")
    problems = problems_of(bad)
    assert problems[0].startswith(str(bad) + ": cannot read")


def test_template_identifiers_finds_both_placeholder_forms() -> None:
    """$name and ${name} are both found; $$ is an escape, not a placeholder."""
    assert template_identifiers("a=$one b=${two} c=$$three") == ["one", "two"]
