#!/bin/bash
# Persistence stack: final checks once every vendor package is in, so the layer fails here
# rather than in a booted template: JDK 8 is still the default `java` (vendor packages pull in
# other JDKs), only hazelcast.service runs on JDK 17, the four services are installed and not
# enabled, no vendor repository is left enabled, and systemd accepts our units and drop-ins.
set -euo pipefail
services=(mysql.service scylla-server.service redpanda.service hazelcast.service)
problems=()

jdk8="$(alternatives --display java | awk '/^\/.*1\.8\.0.*\/bin\/java/ {print $1; exit}')"
alternatives --set java "$jdk8"
if ! java -version 2>&1 | grep -q 'version "1\.8\.0'; then
    problems+=("the default java is not JDK 8: $(java -version 2>&1 | head -n 1)")
fi

for svc in "${services[@]}"; do
    if [[ $(systemctl show -p LoadState --value "$svc") != loaded ]]; then
        problems+=("$svc is not installed")
        continue
    fi
    state="$(systemctl is-enabled "$svc" 2>/dev/null || true)"
    [[ $state == disabled ]] || problems+=("$svc is '$state', expected disabled (App-Core enables it)")
    env="$(systemctl show -p Environment --value "$svc")"
    if [[ $svc == hazelcast.service ]]; then
        [[ $env == *JAVA_HOME=/usr/lib/jvm/jre-17* ]] || problems+=("$svc has no JDK 17 JAVA_HOME")
    elif [[ $env == *jre-17* ]]; then
        problems+=("$svc is pointed at JDK 17; only hazelcast.service should be")
    fi
    [[ $(systemctl show -p Requires --value "$svc") == *imagefactory-datadirs@* ]] ||
        problems+=("$svc does not require its imagefactory-datadirs@ instance")
done
# PXC 8.0's state transfers need XtraBackup 8.0 (a dependency of the server package); App-Core's
# round-robin backups and restores on MYSQL_RR_* members run it too (catalogue round_robin.tool).
for tool in xtrabackup xbstream; do
    command -v "$tool" >/dev/null || problems+=("$tool is not installed (percona-xtrabackup-80)")
done
if ! /usr/lib/jvm/jre-17/bin/java -version 2>&1 | grep -q 'version "17\.'; then
    problems+=("/usr/lib/jvm/jre-17 is not a Java 17 runtime")
fi

# Our repositories and the EPEL definition must all be off (enabled=1 anywhere is a finding).
mapfile -t repos < <(rpm -ql oracle-epel-release-el8 | grep '^/etc/yum.repos.d/.*\.repo$')
repos+=(/etc/yum.repos.d/{percona,scylla,redpanda,hazelcast}.repo)
enabled="$(grep -lE '^[[:space:]]*enabled[[:space:]]*=[[:space:]]*1' "${repos[@]}" || true)"
[[ -z $enabled ]] || problems+=("repository files still enable a repository: $enabled")

writable="$(find /usr/lib/hazelcast -xdev -perm -0002 ! -type l)"
[[ -z $writable ]] || problems+=("world-writable under /usr/lib/hazelcast: $writable")

# Messages about the vendor units are theirs; any message about our files fails the layer.
out="$(systemd-analyze verify "${services[@]}" imagefactory-datadirs@db.service 2>&1 || true)"
if grep -E 'imagefactory-datadirs@|40-imagefactory\.conf' <<<"$out" >&2; then
    problems+=("systemd-analyze verify reports problems in our units or drop-ins (above)")
fi

if ((${#problems[@]})); then
    printf 'stack-persistence check: %s\n' "${problems[@]}" >&2
    exit 1
fi
echo "Persistence stack in place:"
for pkg in percona-xtradb-cluster-server percona-xtrabackup-80 scylla-server redpanda hazelcast; do
    rpm -q "$pkg"
done
java -version 2>&1 | head -n 1
