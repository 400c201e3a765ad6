#!/bin/bash
# Persistence stack: ScyllaDB at the pinned version, installed and NOT enabled (App-Core
# enables scylla-server.service for the SCYLLA_* roles). Binaries stay in the RPM's paths;
# /etc/scylla/scylla.yaml puts data, commit log and hints on the data disk (/data/ds).
# ScyllaDB's RHEL instructions add EPEL (on OL8: Oracle's ol8_developer_EPEL) and remove
# ABRT; EPEL is enabled for this one transaction and left disabled.
# scylla_setup is NOT run here: it tunes for the real hardware, so it belongs to first boot
# (docs/stacks.md), and its SELinux step would disable SELinux.
set -euo pipefail
: "${IF_FILES:?}" "${IF_SCYLLA_VERSION:?}"
conf=/etc/scylla/scylla.yaml
marker_begin="# --- imagefactory stack-persistence: begin ---"
marker_end="# --- imagefactory stack-persistence: end ---"

if rpm -q abrt >/dev/null 2>&1; then
    echo "Removing ABRT (conflicts with ScyllaDB's core dump setup)"
    dnf -y remove abrt
fi

echo "Adding Oracle's EPEL repository definition, disabled"
dnf -y install oracle-epel-release-el8
mapfile -t epel_repos < <(rpm -ql oracle-epel-release-el8 | grep '^/etc/yum.repos.d/.*\.repo$')
if ((${#epel_repos[@]} == 0)); then
    echo "oracle-epel-release-el8 installed no .repo file" >&2
    exit 1
fi
sed -i -E 's/^([[:space:]]*enabled[[:space:]]*=[[:space:]]*)1/\10/' "${epel_repos[@]}"

echo "Installing ScyllaDB $IF_SCYLLA_VERSION"
dnf -y --enablerepo=scylla,scylla-noarch,ol8_developer_EPEL \
    --setopt=install_weak_deps=False install "scylla-$IF_SCYLLA_VERSION"
got="$(rpm -q --qf '%{VERSION}' scylla-server)"
if [[ $got != "$IF_SCYLLA_VERSION" ]]; then
    echo "scylla-server is $got, pinned $IF_SCYLLA_VERSION" >&2
    exit 1
fi

# The package's scylla.yaml leaves these settings commented out (defaults under
# /var/lib/scylla). Refuse to add a second, conflicting value if a release ships them set.
keys='data_file_directories|commitlog_directory|hints_directory|view_hints_directory'
if ! grep -qxF "$marker_begin" "$conf"; then
    if grep -qE "^($keys):" "$conf"; then
        echo "$conf already sets one of $keys; not adding a duplicate:" >&2
        grep -nE "^($keys):" "$conf" >&2
        exit 1
    fi
    echo "Pointing $conf at /data/ds"
    cat >>"$conf" <<YAML

$marker_begin
# Data, commit log and hints on the App-Core data disk DATA_DS (/data/ds);
# imagefactory-datadirs@ds.service creates the directories after the disk is mounted.
data_file_directories:
    - /data/ds/data
commitlog_directory: /data/ds/commitlog
hints_directory: /data/ds/hints
view_hints_directory: /data/ds/view_hints
$marker_end
YAML
fi

install -D -m 0644 "$IF_FILES/support/dropins/scylla-server.service.conf" \
    /etc/systemd/system/scylla-server.service.d/40-imagefactory.conf
systemctl daemon-reload
if systemctl is-enabled --quiet scylla-server.service; then
    systemctl disable scylla-server.service
fi
