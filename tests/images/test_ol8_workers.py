"""OL8 workers family: JDK 17, the service user, /opt layout and the eight worker units."""

import pytest

pytestmark = [pytest.mark.image, pytest.mark.ol8]

# Unit name and lower-case role (App-Core's config_dir and our directory names), per role.
UNITS = {
    "APP": ("app-worker.service", "app"),
    "API": ("api-worker.service", "api"),
    "REPORT": ("report-worker.service", "report"),
    "NOTIFY_SMS": ("notify-sms-worker.service", "notify_sms"),
    "NOTIFY_EMAIL": ("notify-email-worker.service", "notify_email"),
    "NOTIFY_WHATSAPP": ("notify-whatsapp-worker.service", "notify_whatsapp"),
    "PG": ("pg-worker.service", "pg"),
    "INVOICE": ("invoice-worker.service", "invoice"),
}
UNIT_NAMES = [unit for unit, _ in UNITS.values()]
LOWER = [lower for _, lower in UNITS.values()]


def test_java_is_openjdk_17(host):
    """`java -version` reports OpenJDK 17."""
    out = host.run("java -version").stderr
    assert 'openjdk version "17.' in out


def test_default_java_is_the_jdk_17_alternative(host):
    """/usr/bin/java resolves into the OpenJDK 17 tree."""
    target = host.check_output("readlink -f /usr/bin/java")
    assert target.startswith("/usr/lib/jvm/java-17-openjdk")


def test_units_java_path_is_executable(host):
    """/usr/lib/jvm/jre-17/bin/java, which every worker unit runs, is executable."""
    assert host.run("test -x /usr/lib/jvm/jre-17/bin/java").rc == 0


def test_service_user_is_a_system_account(host):
    """User workers has a system UID, primary group workers and no other groups."""
    user = host.user("workers")
    assert user.exists
    assert 0 < user.uid < 1000
    assert user.group == "workers"
    assert user.groups == ["workers"]


def test_service_user_has_no_login_shell(host):
    """User workers' shell is /sbin/nologin."""
    assert host.user("workers").shell == "/sbin/nologin"


def test_service_user_password_is_locked(host):
    """User workers' password field in /etc/shadow starts with '!' (locked)."""
    with host.sudo():
        entry = host.check_output("getent shadow workers")
    assert entry.split(":")[1].startswith("!")


def test_application_tree_is_root_owned(host):
    """/opt/workers and its bin, lib, conf are root:root 0755: read-only to the service."""
    for path in ("/opt/workers", "/opt/workers/bin", "/opt/workers/lib", "/opt/workers/conf"):
        f = host.file(path)
        assert f.is_directory, path
        assert (f.user, f.group, f.mode) == ("root", "root", 0o755), path


@pytest.mark.parametrize("unit", UNIT_NAMES)
def test_unit_is_installed(host, unit):
    """The worker unit is a root:root 0644 file in /etc/systemd/system."""
    f = host.file(f"/etc/systemd/system/{unit}")
    assert f.is_file
    assert (f.user, f.group, f.mode) == ("root", "root", 0o644)


@pytest.mark.parametrize("unit", UNIT_NAMES)
def test_unit_is_not_enabled(host, unit):
    """The worker unit is disabled: App-Core enables only the booted role's unit."""
    assert host.run(f"systemctl is-enabled {unit}").stdout.strip() == "disabled"


@pytest.mark.parametrize("unit", UNIT_NAMES)
def test_unit_parses_cleanly_on_this_systemd(host, unit):
    """systemd-analyze verify has nothing to say about any line of the unit."""
    with host.sudo():
        out = host.run(f"systemd-analyze verify /etc/systemd/system/{unit}")
    assert out.rc == 0
    ours = [line for line in (out.stdout + out.stderr).splitlines() if unit in line]
    assert ours == []


@pytest.mark.parametrize("unit", UNIT_NAMES)
def test_unit_sandbox_is_in_effect(host, unit):
    """systemd reports the unit's sandbox settings as set (so none was dropped as unknown)."""
    expected = {
        "User": "workers",
        "Group": "workers",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictSUIDSGID": "yes",
        "LockPersonality": "yes",
        "RestrictRealtime": "yes",
        "MemoryDenyWriteExecute": "no",
        "CapabilityBoundingSet": "",
    }
    out = host.check_output(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in expected))
    shown = dict(line.split("=", 1) for line in out.splitlines())
    assert shown == expected


@pytest.mark.parametrize("role", sorted(UNITS))
def test_unit_reads_appcore_worker_env(host, role):
    """The unit's EnvironmentFile is App-Core's worker.env in the role's config_dir."""
    unit, lower = UNITS[role]
    text = host.file(f"/etc/systemd/system/{unit}").content_string
    assert f"EnvironmentFile=/etc/appcore/conf/{lower}/worker.env\n" in text


@pytest.mark.parametrize("lower", LOWER)
def test_state_log_and_temp_dirs_belong_to_service_user(host, lower):
    """/var/lib/workers/<role>, its tmp and /var/log/workers/<role> are workers:workers 0750."""
    for path in (
        f"/var/lib/workers/{lower}",
        f"/var/lib/workers/{lower}/tmp",
        f"/var/log/workers/{lower}",
    ):
        f = host.file(path)
        assert f.is_directory, path
        assert (f.user, f.group, f.mode) == ("workers", "workers", 0o750), path


@pytest.mark.parametrize("role", sorted(UNITS))
def test_java_tmpdir_is_the_role_state_tmp(host, role):
    """The unit sets -Djava.io.tmpdir=/var/lib/workers/<role>/tmp (not /tmp, not /var/tmp)."""
    unit, lower = UNITS[role]
    text = host.file(f"/etc/systemd/system/{unit}").content_string
    assert f"-Djava.io.tmpdir=/var/lib/workers/{lower}/tmp " in text


@pytest.mark.parametrize("lower", LOWER)
def test_java_tmpdir_filesystem_allows_exec(host, lower):
    """The filesystem holding /var/lib/workers/<role>/tmp is not mounted noexec."""
    options = host.check_output(f"findmnt -n -o OPTIONS --target /var/lib/workers/{lower}/tmp")
    assert "noexec" not in options.split(",")


def test_start_without_application_jar_is_skipped(host):
    """With no /opt/workers/lib/app.jar, starting app-worker is skipped, not failed."""
    assert not host.file("/opt/workers/lib/app.jar").exists
    with host.sudo():
        host.check_output("systemctl start app-worker.service")
    out = host.check_output("systemctl show app-worker.service -p ActiveState -p ConditionResult")
    assert sorted(out.splitlines()) == ["ActiveState=inactive", "ConditionResult=no"]
