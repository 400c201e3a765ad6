"""OL8 persistence family: JDK 8 default with JDK 17 for Hazelcast only, the four vendor stacks
installed (not enabled) from pinned, signed, disabled repositories, data paths on /data and
their SELinux contexts. Run on the booted template before App-Core has configured a role."""

import configparser

import pytest
import yaml

pytestmark = [pytest.mark.image, pytest.mark.ol8]

SERVICES = ["mysql.service", "scylla-server.service", "redpanda.service", "hazelcast.service"]
REPO_FILES = ["percona", "scylla", "redpanda", "hazelcast"]
# Data disk mountpoint -> service whose drop-in requires it, and App-Core's SELinux type.
DISKS = {
    "/data/db": ("mysql.service", "mysqld_db_t"),
    "/data/ds": ("scylla-server.service", "var_lib_t"),
    "/data/ms": ("redpanda.service", "var_lib_t"),
    "/data/mg": ("hazelcast.service", "var_lib_t"),
}


def _repo(host, name):
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(host.file(f"/etc/yum.repos.d/{name}.repo").content_string)
    return parser


def _unit_env(host, unit):
    return host.check_output(f"systemctl show -p Environment --value {unit}")


def test_default_java_is_jdk8(host):
    """`java -version` reports 1.8.0: JDK 8 is the family's default java."""
    assert 'version "1.8.0' in host.run("java -version").stderr


def test_java_alternative_resolves_into_jdk8(host):
    """/usr/bin/java resolves into the OpenJDK 1.8.0 tree."""
    target = host.check_output("readlink -f /usr/bin/java")
    assert target.startswith("/usr/lib/jvm/java-1.8.0-openjdk")


def test_jdk17_is_installed_side_by_side(host):
    """/usr/lib/jvm/jre-17/bin/java is a Java 17 runtime."""
    assert 'version "17.' in host.run("/usr/lib/jvm/jre-17/bin/java -version").stderr


def test_hazelcast_unit_runs_on_jdk17(host):
    """hazelcast.service's environment sets JAVA_HOME to the JDK 17 link."""
    assert "JAVA_HOME=/usr/lib/jvm/jre-17" in _unit_env(host, "hazelcast.service").split()


@pytest.mark.parametrize("unit", ["mysql.service", "scylla-server.service", "redpanda.service"])
def test_other_units_are_not_pointed_at_jdk17(host, unit):
    """Only hazelcast.service gets JDK 17; the other stacks' units do not mention it."""
    assert "jre-17" not in _unit_env(host, unit)


@pytest.mark.parametrize(
    ("package", "version"),
    [
        ("percona-xtradb-cluster-server", "8.0.45-36."),
        ("scylla-server", "2026.1.0-"),
        ("redpanda", "26.2.1-"),
        ("hazelcast", "5.6.0-"),
    ],
)
def test_package_is_the_pinned_version(host, package, version):
    """Each stack's main package is installed at the version pinned in factory.yaml."""
    out = host.check_output(f"rpm -q --qf '%{{VERSION}}-%{{RELEASE}}' {package}")
    assert out.startswith(version)


@pytest.mark.parametrize("name", REPO_FILES)
def test_vendor_repo_checks_signatures(host, name):
    """Every section of the vendor's .repo file has gpgcheck=1 and a local gpgkey."""
    repo = _repo(host, name)
    assert repo.sections()
    for section in repo.sections():
        assert repo[section]["gpgcheck"] == "1"
        assert repo[section]["gpgkey"].startswith("file:///etc/pki/rpm-gpg/")


@pytest.mark.parametrize("name", REPO_FILES)
def test_vendor_repo_is_disabled(host, name):
    """Every section of the vendor's .repo file has enabled=0 (no vendor updates on upgrade)."""
    repo = _repo(host, name)
    assert repo.sections()
    assert all(repo[section]["enabled"] == "0" for section in repo.sections())


def test_hazelcast_repo_checks_metadata_signature(host):
    """The Hazelcast repository, whose metadata is signed, has repo_gpgcheck=1."""
    assert _repo(host, "hazelcast")["hazelcast"]["repo_gpgcheck"] == "1"


def test_epel_definition_is_disabled(host):
    """Oracle's EPEL repository file (added for ScyllaDB's dependencies) enables nothing."""
    text = host.check_output(
        "cat $(rpm -ql oracle-epel-release-el8 | grep '^/etc/yum.repos.d/.*[.]repo$')"
    )
    assert "enabled=1" not in text.replace(" ", "")


@pytest.mark.parametrize("keyid", ["8507efa5", "b007f39e"])
def test_pinned_vendor_key_is_imported(host, keyid):
    """The Percona and ScyllaDB signing keys (fingerprints pinned in factory.yaml) are in rpm."""
    assert keyid in host.check_output("rpm -q gpg-pubkey --qf '%{VERSION}\\n'").split()


@pytest.mark.parametrize("name", ["percona", "scylla", "redpanda", "hazelcast", "hazelcast-repo"])
def test_verified_vendor_key_file_is_present(host, name):
    """The verified key of each vendor is kept in /etc/pki/rpm-gpg, root-owned, mode 0644."""
    key = host.file(f"/etc/pki/rpm-gpg/RPM-GPG-KEY-imagefactory-{name}")
    assert key.is_file
    assert key.user == "root"
    assert key.mode == 0o644


def test_mysql_module_is_disabled(host):
    """EL8's mysql module, which hides the Percona packages, is disabled."""
    assert "state=disabled" in host.file("/etc/dnf/modules.d/mysql.module").content_string


@pytest.mark.parametrize("unit", SERVICES)
def test_service_is_installed(host, unit):
    """The stack's service unit is installed."""
    assert host.check_output(f"systemctl show -p LoadState --value {unit}") == "loaded"


@pytest.mark.parametrize("unit", SERVICES)
def test_service_is_not_enabled(host, unit):
    """The stack's service is disabled: App-Core enables the one the VM's role needs."""
    assert host.run(f"systemctl is-enabled {unit}").stdout.strip() == "disabled"


@pytest.mark.parametrize(("mount", "unit"), [(m, u) for m, (u, _) in DISKS.items()])
def test_service_requires_its_data_disk(host, mount, unit):
    """Each service's drop-in requires its /data mount and the directory unit for that disk."""
    requires = host.check_output(f"systemctl show -p Requires --value {unit}").split()
    disk = mount.rsplit("/", 1)[1]
    assert f"imagefactory-datadirs@{disk}.service" in requires
    mounts = host.check_output(f"systemctl show -p RequiresMountsFor --value {unit}").split()
    assert mount in mounts


@pytest.mark.parametrize("mount", list(DISKS))
def test_data_mountpoint_exists(host, mount):
    """The mountpoint App-Core mounts the data disk on exists, root-owned, mode 0755."""
    directory = host.file(mount)
    assert directory.is_directory
    assert directory.user == "root"
    assert directory.mode == 0o755


@pytest.mark.parametrize(("mount", "selinux_type"), [(m, t) for m, (_, t) in DISKS.items()])
def test_selinux_fcontext_rule_is_in_the_image(host, mount, selinux_type):
    """The local fcontext rule for the data disk (App-Core's rule) is in the policy store."""
    with host.sudo():
        rules = host.check_output("semanage fcontext -l -C")
    lines = [line for line in rules.splitlines() if line.split()[:1] == [f"{mount}(/.*)?"]]
    assert lines
    assert f":{selinux_type}:" in lines[0]


@pytest.mark.parametrize(("mount", "selinux_type"), [(m, t) for m, (_, t) in DISKS.items()])
def test_data_mountpoint_is_labelled(host, mount, selinux_type):
    """The bare mountpoint already carries the type of its fcontext rule."""
    assert f":{selinux_type}:" in host.check_output(f"stat -c %C {mount}")


def test_data_parent_is_traversable(host):
    """/data is labelled var_t, which the confined database domains may search."""
    assert ":var_t:" in host.check_output("stat -c %C /data")


def test_selinux_is_enforcing(host):
    """SELinux stays enforcing with the stacks installed."""
    assert host.check_output("getenforce") == "Enforcing"


def test_mysql_datadir_is_on_the_data_disk(host):
    """The last datadir in the mysqld option files is /data/db/mysql."""
    options = host.check_output("my_print_defaults mysqld").split()
    datadirs = [o for o in options if o.startswith("--datadir=")]
    assert datadirs[-1] == "--datadir=/data/db/mysql"


def test_mysql_includes_the_appcore_role_file(host):
    """/etc/my.cnf includes the role file App-Core renders on the data disk."""
    lines = host.file("/etc/my.cnf").content_string.splitlines()
    assert "!include /data/db/conf/appcore-role.cnf" in lines


def test_mysql_includes_the_round_robin_mode_file(host):
    """/etc/my.cnf includes the read_only mode App-Core keeps for a round-robin member."""
    lines = host.file("/etc/my.cnf").content_string.splitlines()
    assert "!include /data/db/conf/appcore-rr-mode.cnf" in lines


def test_scylla_directories_are_on_the_data_disk(host):
    """scylla.yaml puts data, commit log, hints and view hints under /data/ds."""
    conf = yaml.safe_load(host.file("/etc/scylla/scylla.yaml").content_string)
    assert conf["data_file_directories"] == ["/data/ds/data"]
    assert conf["commitlog_directory"] == "/data/ds/commitlog"
    assert conf["hints_directory"] == "/data/ds/hints"
    assert conf["view_hints_directory"] == "/data/ds/view_hints"


def test_redpanda_data_directory_is_on_the_data_disk(host):
    """redpanda.yaml's data_directory is /data/ms/data."""
    conf = yaml.safe_load(host.file("/etc/redpanda/redpanda.yaml").content_string)
    assert conf["redpanda"]["data_directory"] == "/data/ms/data"


def test_hazelcast_config_is_appcores_role_file(host):
    """hazelcast.service reads the member configuration App-Core renders under /data/mg/conf."""
    env = _unit_env(host, "hazelcast.service")
    assert "HAZELCAST_CONFIG=/data/mg/conf/appcore-role.yaml" in env.split()
    assert "-Dhazelcast.config=/data/mg/conf/appcore-role.yaml" in env


def test_hazelcast_logs_go_to_the_data_disk(host):
    """hazelcast.service uses the log4j2 file that writes to /data/mg/logs."""
    assert "-Dlog4j.configurationFile=file:/etc/hazelcast/log4j2.properties" in _unit_env(
        host, "hazelcast.service"
    )
    log4j = host.file("/etc/hazelcast/log4j2.properties").content_string
    assert "fileName = /data/mg/logs/hazelcast.log" in log4j


def test_hazelcast_logs_dir_is_not_world_writable(host):
    """The RPM's /usr/lib/hazelcast/logs (777 in its %post) is closed: mode 0750."""
    logs = host.file("/usr/lib/hazelcast/logs")
    assert logs.is_directory
    assert logs.mode == 0o750


def test_nothing_world_writable_under_hazelcast(host):
    """No world-writable file or directory under /usr/lib/hazelcast."""
    with host.sudo():
        found = host.check_output("find /usr/lib/hazelcast -xdev -perm -0002 ! -type l")
    assert found == ""


def test_datadirs_helper_lists_the_mysql_layout(host):
    """The boot-time helper creates the datadir, tmpdir and log directory for MySQL."""
    out = host.check_output("/usr/libexec/imagefactory/persistence-datadirs --list db")
    paths = [line.split()[0] for line in out.splitlines()]
    assert paths == ["/data/db/mysql", "/data/db/tmp", "/data/db/log"]
