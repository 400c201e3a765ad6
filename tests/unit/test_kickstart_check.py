"""The factory's own kickstart rules: one bad kickstart per rule, exact message and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefactory.errors import ConfigError
from imagefactory.guest.credential import BuildCredential
from imagefactory.sources.install import render_kickstart
from imagefactory.sources.kickstart_check import check_kickstart, min_disk_mib

REPO = Path(__file__).resolve().parents[2]
KEY = BuildCredential(Path("/nonexistent"), "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA test")
HASH = "grub.pbkdf2.sha512.10000.AB12.CD34"

# Clean; the numbered lines are the ones the tests below replace.
GOOD = f"""\
rootpw --lock
user --name=b --lock
selinux --enforcing
firewall --enabled --service=ssh
bootloader --append="audit=1 audit_backlog_limit=8192" --iscrypted --password={HASH}
part /boot --fstype=xfs --size=1024
part pv.01 --size=1 --grow
volgroup vg pv.01
logvol /              --vgname=vg --name=root   --size=8192
logvol /home          --vgname=vg --name=home   --size=1024 --fsoptions="nodev,nosuid"
logvol /var           --vgname=vg --name=var    --size=4096 --fsoptions="nodev,nosuid"
logvol /var/log       --vgname=vg --name=log    --size=2048 --fsoptions="nodev,nosuid,noexec"
logvol /var/log/audit --vgname=vg --name=audit  --size=1024 --fsoptions="nodev,nosuid,noexec"
logvol /var/tmp       --vgname=vg --name=vartmp --size=1024 --fsoptions="nodev,nosuid,noexec"
logvol /tmp           --vgname=vg --name=tmp    --size=2048 --fsoptions="nodev,nosuid,noexec"
%post --erroronfail
rootpw hunter2
firewall --disabled
%end
"""
ROOTPW, USER, SELINUX, FIREWALL, BOOTLOADER, BOOT = 1, 2, 3, 4, 5, 6
HOME, AUDIT, TMP = 10, 13, 15


def replace(line: int, new: str, text: str = GOOD) -> str:
    lines = text.splitlines()
    lines[line - 1] = new
    return "\n".join(lines) + "\n"


def found(text: str, *, uefi: bool = False) -> list[tuple[str, str]]:
    problems = check_kickstart(text, "t.ks", uefi=uefi)
    assert all(p.file == "t.ks" for p in problems)
    return [(p.path, p.message) for p in problems]


def test_good_kickstart_is_clean_and_script_sections_are_not_commands() -> None:
    assert found(GOOD) == []


def test_duplicate_mount_point() -> None:
    text = GOOD + 'logvol /tmp --vgname=vg --name=tmp2 --size=1 --fsoptions="nodev,nosuid,noexec"\n'
    assert found(text) == [("line 20", "mount point /tmp is defined twice (first on line 15)")]


def test_missing_mount_points_are_each_reported_at_the_layout() -> None:
    text = replace(HOME, "# no /home", replace(AUDIT, "# no /var/log/audit"))
    assert found(text) == [
        ("line 15", "no partition or logical volume for /var/log/audit"),
        ("line 15", "no partition or logical volume for /home"),
    ]


def test_uefi_needs_an_efi_system_partition() -> None:
    assert found(GOOD, uefi=True) == [
        (
            "line 15",
            "no partition or logical volume for /boot/efi "
            "(a UEFI boot needs an EFI system partition)",
        ),
    ]
    efi = GOOD + "part /boot/efi --fstype=efi --size=600\n"
    assert found(efi, uefi=True) == []
    assert found(efi.replace("--fstype=efi", "--fstype=vfat"), uefi=True) == [
        ("line 20", "/boot/efi needs --fstype=efi"),
    ]


def test_missing_mount_options() -> None:
    text = replace(TMP, "logvol /tmp --vgname=vg --name=tmp --size=2048 --fsoptions=nodev")
    text = replace(HOME, "logvol /home --vgname=vg --name=home --size=1024", text)
    assert found(text) == [
        ("line 10", "/home is mounted without nodev,nosuid"),
        ("line 15", "/tmp is mounted without nosuid,noexec"),
    ]
    problem = check_kickstart(text, "t.ks")[1]
    assert problem.hint == '--fsoptions="nodev,nosuid,noexec"'
    spaced = replace(HOME, 'logvol /home --vgname vg --name home --fsoptions "nodev,nosuid"')
    assert found(spaced) == []


@pytest.mark.parametrize(
    ("bootloader", "message"),
    [
        (
            "--password=grub.pbkdf2.sha512.10000.AB12.CD34",
            "bootloader --password without --iscrypted: a plain-text password",
        ),
        (
            "--iscrypted --password=hunter2",
            "bootloader --password is not a grub2-mkpasswd-pbkdf2 hash (grub.pbkdf2.sha512.…)",
        ),
        ("--iscrypted", "bootloader sets no password"),
    ],
)
def test_bootloader_password_must_be_a_grub_hash(bootloader: str, message: str) -> None:
    text = replace(
        BOOTLOADER, f'bootloader --append="audit=1 audit_backlog_limit=8192" {bootloader}'
    )
    assert found(text) == [("line 5", message)]


@pytest.mark.parametrize(
    ("line", "command", "message"),
    [
        (ROOTPW, "rootpw hunter2", "rootpw without --iscrypted: a plain-text password"),
        (ROOTPW, "rootpw --lock hunter2", "rootpw without --iscrypted: a plain-text password"),
        (ROOTPW, "rootpw --plaintext hunter2", "rootpw --plaintext: a plain-text password"),
        (ROOTPW, "rootpw --iscrypted hunter2", "rootpw --iscrypted value is not a crypt(3) hash"),
        (ROOTPW, "rootpw", "rootpw sets no password and does not --lock"),
        (
            USER,
            "user --name=b --password=hunter2",
            "user --password without --iscrypted: a plain-text password",
        ),
        (
            USER,
            "user --name=b --password hunter2 --plaintext",
            "user --plaintext: a plain-text password",
        ),
        (USER, "sshpw --username=b hunter2", "sshpw without --iscrypted: a plain-text password"),
    ],
)
def test_plaintext_passwords(line: int, command: str, message: str) -> None:
    assert found(replace(line, command)) == [(f"line {line}", message)]


def test_crypted_passwords_are_fine() -> None:
    text = replace(ROOTPW, "rootpw --iscrypted $6$salt$abcdef")
    text = replace(USER, "user --name=b --iscrypted --password=$y$j9T$salt$hash", text)
    assert found(text) == []


@pytest.mark.parametrize(
    ("line", "command", "message"),
    [
        (SELINUX, "selinux --permissive", "selinux --permissive: SELinux must be enforcing"),
        (SELINUX, "selinux --disabled", "selinux --disabled: SELinux must be enforcing"),
        (
            BOOTLOADER,
            f'bootloader --append="audit=1 audit_backlog_limit=8192 selinux=0" --iscrypted '
            f"--password={HASH}",
            "bootloader --append turns SELinux off (selinux=0 or enforcing=0)",
        ),
    ],
)
def test_selinux_must_be_enforcing(line: int, command: str, message: str) -> None:
    assert found(replace(line, command)) == [(f"line {line}", message)]


def test_firewall_must_be_enabled() -> None:
    assert found(replace(FIREWALL, "firewall --disabled")) == [
        ("line 4", "firewall is disabled; it must be enabled"),
    ]


@pytest.mark.parametrize(
    ("append", "message"),
    [
        ('--append="audit=1"', "bootloader --append lacks audit_backlog_limit=8192"),
        (
            '--append="audit=1 audit_backlog_limit=4096"',
            "bootloader --append lacks audit_backlog_limit=8192",
        ),
        ('--append="audit=0 audit_backlog_limit=8192"', "bootloader --append lacks audit=1"),
        ("", "bootloader --append lacks audit=1 audit_backlog_limit=8192"),
    ],
)
def test_audit_kernel_arguments(append: str, message: str) -> None:
    text = replace(BOOTLOADER, f"bootloader {append} --iscrypted --password={HASH}")
    assert found(text) == [("line 5", message)]


def test_no_bootloader_command_is_reported_at_the_end() -> None:
    assert found(replace(BOOTLOADER, "# none")) == [("line 19", "no bootloader command")]


def test_every_problem_is_reported_in_line_order() -> None:
    text = replace(TMP, "logvol /tmp --vgname=vg --name=tmp --size=2048")
    text = replace(FIREWALL, "firewall --disabled", text)
    text = replace(ROOTPW, "rootpw hunter2", text)
    assert [line for line, _ in found(text)] == ["line 1", "line 4", "line 15"]


def test_continuation_lines_join_and_report_their_first_line() -> None:
    text = replace(BOOTLOADER, f"bootloader --iscrypted --password={HASH} \\\n  --append=audit=1")
    assert found(text) == [("line 5", "bootloader --append lacks audit_backlog_limit=8192")]


def test_unreadable_lines_and_open_sections() -> None:
    text = replace(USER, 'user --name="b --lock') + "%pre\necho never closed\n"
    assert found(text) == [
        ("line 2", "cannot read the line: No closing quotation"),
        ("line 20", "section is not closed with %end"),
    ]


def render_real(tmp_path: Path, firmware: str, template: Path | None = None) -> str:
    out = tmp_path / f"{firmware}.ks"
    render_kickstart(
        template or REPO / "kickstart/ol8.ks",
        out,
        build_user="packer",
        credential=KEY,
        grub_hash=HASH,
        firmware=firmware,
    )
    return out.read_text()


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_real_kickstart_rendered_with_test_values_is_clean(tmp_path: Path, firmware: str) -> None:
    text = render_real(tmp_path, firmware)
    assert check_kickstart(text, "ol8.ks", uefi=firmware == "uefi") == []


def test_render_refuses_a_bad_kickstart_with_every_problem_and_template_lines(
    tmp_path: Path,
) -> None:
    """Rendering keeps the template's line numbers, and a failed check writes nothing."""
    real = (REPO / "kickstart/ol8.ks").read_text()
    bad = real.replace("selinux --enforcing", "selinux --permissive").replace(
        '--name=tmp     --fstype=xfs --size=2048 --fsoptions="nodev,nosuid,noexec"',
        '--name=tmp     --fstype=xfs --size=2048 --fsoptions="nodev,nosuid"',
    )
    template = tmp_path / "bad.ks"
    template.write_text(bad)
    with pytest.raises(ConfigError) as info:
        render_real(tmp_path, "uefi", template)
    lines = real.splitlines()
    want = [
        lines.index("selinux --enforcing") + 1,
        next(i for i, ln in enumerate(lines, 1) if ln.startswith("logvol /tmp ")),
    ]
    assert [p.path for p in info.value.problems] == [f"line {n}" for n in want]
    assert not (tmp_path / "uefi.ks").exists()


def test_min_disk_counts_partitions_and_logical_volumes_in_extents() -> None:
    # /boot 1024 + the volume group (19456 MiB of volumes + one 4 MiB extent) + 2 for the table
    assert min_disk_mib(GOOD) == 1024 + 19456 + 4 + 2
    odd = GOOD + "logvol /srv --vgname=vg --name=srv --size=1\nlogvol /x --vgname=vg --percent=5\n"
    assert min_disk_mib(odd) == min_disk_mib(GOOD) + 4
    big_pv = replace(7, "part pv.01 --size=30000")
    assert min_disk_mib(big_pv) == 1024 + 30000 + 2


def test_min_disk_of_the_real_kickstart(tmp_path: Path) -> None:
    assert min_disk_mib(render_real(tmp_path, "bios")) == 20486
    assert min_disk_mib(render_real(tmp_path, "uefi")) == 20486 + 600
