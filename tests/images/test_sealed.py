"""Specs every sealed template must pass: nothing of the build or of the build VM is left."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.image


def test_build_user_is_gone(host):
    """The build user does not exist and has no home directory."""
    assert not host.user("packer").exists
    assert not host.file("/home/packer").exists


def test_no_sudo_rule_for_build_user(host):
    """No sudoers drop-in mentions the build user."""
    out = host.check_output("sudo grep -rls '^packer' /etc/sudoers.d/ || true")
    assert out == ""


def test_login_is_by_injected_key_only(host):
    """The admin's authorized_keys holds exactly the key passed at boot, nothing else."""
    keys = host.check_output("cat ~/.ssh/authorized_keys").strip().splitlines()
    assert keys == [os.environ["IF_VERIFY_PUBKEY"]]


def test_host_keys_were_generated_at_first_boot(host):
    """SSH host keys are newer than this boot: the template shipped none."""
    boot = int(host.check_output("awk '/^btime/ {print $2}' /proc/stat"))
    born = int(host.check_output("sudo stat -c %Y /etc/ssh/ssh_host_ed25519_key"))
    assert born >= boot


def test_machine_id_was_generated_at_first_boot(host):
    """The journal of this boot shows systemd treating it as a first boot (empty machine-id)."""
    out = host.check_output(
        "sudo journalctl -b -o cat -u systemd-machine-id-commit.service "
        "--no-pager; sudo journalctl -b -o cat --no-pager -t systemd | "
        "grep -ci 'first boot' || true"
    )
    assert int(out.strip().splitlines()[-1]) >= 1


def test_no_shell_history(host):
    """No shell history of the build is left for root."""
    assert not host.file("/root/.bash_history").exists


def test_package_caches_are_empty(host):
    """Package manager caches were emptied by the seal layer."""
    out = host.check_output(
        "sudo find /var/cache/apt/archives /var/cache/dnf -name '*.deb' "
        "-o -name '*.rpm' 2>/dev/null | wc -l"
    )
    assert out.strip() == "0"


def test_sshd_is_running(host):
    """sshd runs (with the freshly generated host keys)."""
    assert host.service("ssh").is_running or host.service("sshd").is_running
