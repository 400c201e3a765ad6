#!/bin/bash
# Persistence stack: Percona XtraDB Cluster 8.0 at the pinned version, installed and NOT
# enabled (App-Core enables mysql.service for the MYSQL_* roles). Binaries stay in the RPM's
# paths; /etc/my.cnf points datadir, tmpdir and the error log at the data disk (/data/db) and
# includes the role file App-Core renders there. Install-time telemetry is switched off.
set -euo pipefail
: "${IF_FILES:?}" "${IF_PXC_VERSION:?}"
marker_begin="# --- imagefactory stack-persistence: begin ---"
marker_end="# --- imagefactory stack-persistence: end ---"

echo "Installing Percona XtraDB Cluster $IF_PXC_VERSION"
# The release carries the distribution suffix (8.0.45-36.1.el8): match any after the pin.
PERCONA_TELEMETRY_DISABLE=1 dnf -y --enablerepo=percona-pxc-80 \
    --setopt=install_weak_deps=False install "percona-xtradb-cluster-$IF_PXC_VERSION.*"
got="$(rpm -q --qf '%{VERSION}-%{RELEASE}' percona-xtradb-cluster-server)"
if [[ $got != "$IF_PXC_VERSION".* ]]; then
    echo "percona-xtradb-cluster-server is $got, pinned $IF_PXC_VERSION" >&2
    exit 1
fi

# Later options win in the option files, so a block at the end of /etc/my.cnf overrides the
# package's datadir and log settings. A missing !include file is skipped by the option parser
# (unlike !includedir), so the mysql client still works before App-Core has rendered it.
if ! grep -qxF "$marker_begin" /etc/my.cnf; then
    echo "Pointing /etc/my.cnf at /data/db"
    cat >>/etc/my.cnf <<CNF

$marker_begin
# Data, temporary files and the error log on the App-Core data disk DATA_DB (/data/db);
# imagefactory-datadirs@db.service creates the directories after the disk is mounted.
[mysqld]
datadir=/data/db/mysql
tmpdir=/data/db/tmp
log-error=/data/db/log/mysqld.log
# Role settings App-Core renders at boot (appcore/catalogue/templates/mysql.cnf.tmpl).
!include /data/db/conf/appcore-role.cnf
# A round-robin member's read_only, set by the fleet's rotation (appcore rr mode).
!include /data/db/conf/appcore-rr-mode.cnf
$marker_end
CNF
fi

install -D -m 0644 "$IF_FILES/support/dropins/mysql.service.conf" \
    /etc/systemd/system/mysql.service.d/40-imagefactory.conf
systemctl daemon-reload

if rpm -q percona-telemetry-agent >/dev/null 2>&1; then
    echo "Disabling percona-telemetry-agent (no phone-home from templates)"
    systemctl disable percona-telemetry-agent.service
fi
if systemctl is-enabled --quiet mysql.service; then
    systemctl disable mysql.service
fi
