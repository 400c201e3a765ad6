#!/bin/bash
# Persistence stack: Hazelcast at the pinned version, installed and NOT enabled (App-Core
# enables hazelcast.service for the HAZELCAST role). Binaries stay in /usr/lib/hazelcast; the
# unit's drop-in gives it JAVA_HOME=JDK 17 (the family default `java` stays JDK 8), the
# member configuration App-Core renders under /data/mg/conf and logs under /data/mg/logs.
# The RPM's %post makes /usr/lib/hazelcast/logs mode 777 (a CIS world-writable finding):
# it is closed to the hazelcast user here, and nothing writes there any more.
set -euo pipefail
: "${IF_FILES:?}" "${IF_HAZELCAST_VERSION:?}"

echo "Installing Hazelcast $IF_HAZELCAST_VERSION"
# The package requires a Java runtime package of its own choosing; it is installed as a
# dependency, but the unit runs on /usr/lib/jvm/jre-17 (20-install-jdk17.sh).
dnf -y --enablerepo=hazelcast --setopt=install_weak_deps=False install \
    "hazelcast-$IF_HAZELCAST_VERSION"
got="$(rpm -q --qf '%{VERSION}' hazelcast)"
if [[ $got != "$IF_HAZELCAST_VERSION" ]]; then
    echo "hazelcast is $got, pinned $IF_HAZELCAST_VERSION" >&2
    exit 1
fi

echo "Closing the RPM's world-writable /usr/lib/hazelcast/logs"
install -d -o hazelcast -g hazelcast -m 0750 /usr/lib/hazelcast/logs
chmod 0750 /usr/lib/hazelcast/logs
writable="$(find /usr/lib/hazelcast -xdev -perm -0002 ! -type l)"
if [[ -n $writable ]]; then
    echo "world-writable paths remain under /usr/lib/hazelcast:" >&2
    printf '%s\n' "$writable" >&2
    exit 1
fi

install -D -m 0644 "$IF_FILES/support/hazelcast-log4j2.properties" \
    /etc/hazelcast/log4j2.properties
install -D -m 0644 "$IF_FILES/support/dropins/hazelcast.service.conf" \
    /etc/systemd/system/hazelcast.service.d/40-imagefactory.conf
systemctl daemon-reload
if systemctl is-enabled --quiet hazelcast.service; then
    systemctl disable hazelcast.service
fi
