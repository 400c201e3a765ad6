"""Role discovery: precedence across channels, recording of the source, and fail-closed cases."""

from pathlib import Path

import pytest
from appcore.discovery import discover, parse_meta_data, parse_smbios_type11
from appcore.errors import RoleError
from appcore.hostfs import Host
from appcore_testkit import (
    CATALOGUE,
    RecordingRunner,
    add_fw_cfg,
    add_smbios,
    make_root,
    smbios_type11,
)

from appcore.catalogue import load_catalogue

CAT = load_catalogue(str(CATALOGUE))


def run(root: Path, runner=None):
    return discover(Host(str(root)), runner or RecordingRunner(), CAT)


def set_source(root: Path, source: str, role: str) -> None:
    if source == "cmdline":
        (root / "proc/cmdline").write_text(f"quiet appcore.role={role}\n")
    elif source == "smbios":
        add_smbios(root, ["other:thing=1", "appcore:role=" + role])
    elif source == "fw_cfg":
        add_fw_cfg(root, "role", role + "\n")
    elif source == "cidata":
        seed = root / "var/lib/cloud/seed/nocloud"
        seed.mkdir(parents=True)
        (seed / "meta-data").write_text(f"instance-id: i-1\nappcore-role: {role}\n")
    elif source == "hostname":
        example = {"APP": "wrk-app-07", "API": "wrk-api-07"}[role]
        (root / "proc/sys/kernel/hostname").write_text(example + "\n")
    elif source == "etc":
        (root / "etc/appcore/role").write_text(f"# set by the image\n{role}\n")


SOURCES = ["cmdline", "smbios", "fw_cfg", "cidata", "hostname", "etc"]


@pytest.mark.parametrize("source", SOURCES)
def test_each_channel_alone_is_found_and_recorded(tmp_path: Path, source: str) -> None:
    """Each channel on its own yields the role, and the channel is recorded as the source."""
    root = make_root(tmp_path)
    set_source(root, source, "APP")
    found = run(root)
    assert (found.role, found.source) == ("APP", source)


@pytest.mark.parametrize("higher,lower", list(zip(SOURCES[:-1], SOURCES[1:], strict=True)))
def test_higher_precedence_channel_wins(tmp_path: Path, higher: str, lower: str) -> None:
    """With two agreeing channels, the higher-precedence one is recorded as the source."""
    root = make_root(tmp_path)
    set_source(root, lower, "APP")
    set_source(root, higher, "APP")
    assert run(root).source == higher


def test_conflicting_channels_fail_closed(tmp_path: Path) -> None:
    """SMBIOS says APP and /etc/appcore/role says API: refused, naming both."""
    root = make_root(tmp_path)
    set_source(root, "smbios", "APP")
    set_source(root, "etc", "API")
    with pytest.raises(RoleError, match=r"conflicting roles \['API', 'APP'\]"):
        run(root)


def test_two_different_oem_strings_conflict(tmp_path: Path) -> None:
    """Two appcore:role strings with different values in SMBIOS are a conflict."""
    root = make_root(tmp_path)
    add_smbios(root, ["appcore:role=APP"], "11-0")
    add_smbios(root, ["appcore:role=PG"], "11-1")
    with pytest.raises(RoleError, match="conflicting roles"):
        run(root)


def test_no_role_anywhere_fails_closed(tmp_path: Path) -> None:
    """Without any channel there is no role and the error says how to set one."""
    with pytest.raises(RoleError, match="no role found in any channel"):
        run(make_root(tmp_path))


def test_unknown_role_fails_closed(tmp_path: Path) -> None:
    """A role that is not in the catalogue is refused, naming its channel."""
    root = make_root(tmp_path)
    set_source(root, "fw_cfg", "POSTGRES")
    with pytest.raises(RoleError, match="unknown role 'POSTGRES' from fw_cfg"):
        run(root)


def test_role_ids_match_case_insensitively(tmp_path: Path) -> None:
    """appcore:role=scylla_cluster resolves to SCYLLA_CLUSTER."""
    root = make_root(tmp_path)
    add_smbios(root, ["appcore:role=scylla_cluster"])
    assert run(root).role == "SCYLLA_CLUSTER"


def test_params_come_from_the_highest_channel(tmp_path: Path) -> None:
    """A key set in both cmdline and SMBIOS takes the cmdline value; others are merged."""
    root = make_root(tmp_path, cmdline="appcore.cluster=from-cmdline")
    add_smbios(root, ["appcore:role=APP", "appcore:cluster=from-smbios", "appcore:hostname=wrk-x"])
    assert run(root).params == {"cluster": "from-cmdline", "hostname": "wrk-x"}


def test_unsafe_param_value_is_ignored_with_a_note(tmp_path: Path) -> None:
    """A param value with characters that could inject config is dropped and noted."""
    root = make_root(tmp_path)
    add_smbios(root, ["appcore:role=APP", "appcore:cluster=a;rm -rf /"])
    found = run(root)
    assert "cluster" not in found.params
    assert "ignored smbios:cluster=" in found.notes[0]


def test_cidata_volume_is_mounted_read_only(tmp_path: Path) -> None:
    """Without cloud-init's copy, the cidata volume is mounted read-only, read and unmounted."""
    root = make_root(tmp_path)
    (root / "dev/disk/by-label").mkdir(parents=True)
    (root / "dev/disk/by-label/cidata").write_text("")
    (root / "run/appcore/cidata").mkdir(parents=True)
    (root / "run/appcore/cidata/meta-data").write_text("appcore-role: PG\n")
    runner = RecordingRunner()
    found = run(root, runner)
    assert found.role == "PG"
    mount = [a for a in runner.recorded if a[0] == "mount"][0]
    assert mount[:5] == ["mount", "-t", "iso9660,vfat", "-o", "ro,nodev,nosuid,noexec"]
    assert ["umount", str(root / "run/appcore/cidata")] in runner.recorded


def test_smbios_raw_parser_stops_at_double_nul() -> None:
    """The raw type 11 parser returns the strings and ignores bytes after the terminator."""
    raw = smbios_type11(["appcore:role=APP", "io.systemd.credential:x=y"]) + b"junk\0"
    assert parse_smbios_type11(raw) == ["appcore:role=APP", "io.systemd.credential:x=y"]


def test_smbios_parser_ignores_other_structure_types() -> None:
    """A raw structure that is not type 11 yields no strings."""
    assert parse_smbios_type11(bytes([1, 5, 0, 0, 1]) + b"appcore:role=APP\0\0") == []


def test_meta_data_parser_reads_yaml_and_json_lines() -> None:
    """Top-level key: value lines of meta-data are read, quoted or not."""
    text = 'instance-id: "i-9"\nlocal-hostname: wrk-pg-01 # comment\n  nested: no\n'
    assert parse_meta_data(text) == {"instance-id": "i-9", "local-hostname": "wrk-pg-01"}
