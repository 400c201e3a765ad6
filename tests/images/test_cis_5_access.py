"""CIS 5.x items covered by hardening/scripts (checked on the booted image)."""

import pytest

pytestmark = pytest.mark.image


def owner_group_mode(host, path):
    f = host.file(path)
    assert f.exists, path
    return f.user, f.group, f.mode


def test_5_1_2_crontab_permissions(host):
    """/etc/crontab is root:root 0600."""
    assert owner_group_mode(host, "/etc/crontab") == ("root", "root", 0o600)


def test_5_1_3_cron_hourly_permissions(host):
    """/etc/cron.hourly is root:root 0700."""
    assert owner_group_mode(host, "/etc/cron.hourly") == ("root", "root", 0o700)


def test_5_1_4_cron_daily_permissions(host):
    """/etc/cron.daily is root:root 0700."""
    assert owner_group_mode(host, "/etc/cron.daily") == ("root", "root", 0o700)


def test_5_1_5_cron_weekly_permissions(host):
    """/etc/cron.weekly is root:root 0700."""
    assert owner_group_mode(host, "/etc/cron.weekly") == ("root", "root", 0o700)


def test_5_1_6_cron_monthly_permissions(host):
    """/etc/cron.monthly is root:root 0700."""
    assert owner_group_mode(host, "/etc/cron.monthly") == ("root", "root", 0o700)


def test_5_1_7_cron_d_permissions(host):
    """/etc/cron.d is root:root 0700."""
    assert owner_group_mode(host, "/etc/cron.d") == ("root", "root", 0o700)


def test_5_1_8_cron_restricted_to_allow_list(host):
    """cron.deny is gone and cron.allow is root:root 0600."""
    assert not host.file("/etc/cron.deny").exists
    assert owner_group_mode(host, "/etc/cron.allow") == ("root", "root", 0o600)


def test_5_1_9_at_restricted_to_allow_list(host):
    """at.deny is gone and at.allow is root:root 0600."""
    assert not host.file("/etc/at.deny").exists
    assert owner_group_mode(host, "/etc/at.allow") == ("root", "root", 0o600)


def test_5_2_1_sshd_config_permissions(host):
    """/etc/ssh/sshd_config is root:root 0600."""
    assert owner_group_mode(host, "/etc/ssh/sshd_config") == ("root", "root", 0o600)


def sudoers_lines(host):
    """Active (non-comment) lines of /etc/sudoers and every /etc/sudoers.d file."""
    with host.sudo():
        out = host.check_output("cat /etc/sudoers /etc/sudoers.d/*")
    return [ln.strip() for ln in out.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def test_5_3_4_nopasswd_only_for_the_admin_user(host):
    """The only NOPASSWD rule is the key-only admin user's (waiver: exception)."""
    assert [ln for ln in sudoers_lines(host) if "NOPASSWD" in ln] == ["ops ALL=(ALL) NOPASSWD: ALL"]


def test_5_3_4_no_rule_disables_authentication(host):
    """No sudoers rule or default uses !authenticate."""
    assert [ln for ln in sudoers_lines(host) if "!authenticate" in ln] == []


def test_5_3_4_admin_password_is_locked(host):
    """ops has no usable password, so NOPASSWD grants nothing a password would."""
    with host.sudo():
        status = host.check_output("passwd -S ops").split()
    assert status[1] in ("L", "LK")


def test_5_6_2_system_accounts_have_no_login_shell(host):
    """Accounts with 0 < UID < 1000 (except sync, shutdown, halt) have a nologin shell."""
    offenders = []
    for line in host.file("/etc/passwd").content_string.splitlines():
        name, _, uid, _, _, _, shell = line.split(":")
        system = 0 < int(uid) < 1000 and name not in ("sync", "shutdown", "halt")
        no_login = shell.endswith("/nologin") or shell in ("/bin/false", "/usr/bin/false")
        if system and not no_login:
            offenders.append(f"{name}:{shell}")
    assert offenders == []


def test_5_6_4_root_primary_group_is_gid_0(host):
    """root's primary group is GID 0."""
    assert host.user("root").gid == 0
