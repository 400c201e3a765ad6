#!/bin/bash
# Boot time, run by imagefactory-datadirs@<disk>.service before the product's service: create
# the product's directories on its App-Core data disk (a freshly formatted disk has only
# App-Core's conf/), owned by the product's service user, then relabel them. Installed in the
# image as /usr/libexec/imagefactory/persistence-datadirs by the stack-persistence layer.
#
# Usage: persistence-datadirs DISK          create the layout of DISK (db, ds, ms or mg)
#        persistence-datadirs --list DISK   print "path owner:group mode" lines, change nothing
set -euo pipefail

# The one table of what each product keeps on its disk. Every /data path the product configs
# of the stack-persistence layer name is created here (checked in CI).
layout() {
    case "$1" in
    db) # Percona XtraDB Cluster: datadir, tmpdir, error log (the mysql user)
        printf '%s\n' "/data/db/mysql mysql:mysql 0751" \
            "/data/db/tmp mysql:mysql 0750" \
            "/data/db/log mysql:mysql 0750" ;;
    ds) # ScyllaDB: sstables, commit log, hints, materialized-view hints (the scylla user)
        printf '%s\n' "/data/ds/data scylla:scylla 0750" \
            "/data/ds/commitlog scylla:scylla 0750" \
            "/data/ds/hints scylla:scylla 0750" \
            "/data/ds/view_hints scylla:scylla 0750" ;;
    ms) # Redpanda: data_directory (the redpanda user)
        printf '%s\n' "/data/ms/data redpanda:redpanda 0750" ;;
    mg) # Hazelcast: log files (the hazelcast user); its config is App-Core's conf/
        printf '%s\n' "/data/mg/logs hazelcast:hazelcast 0750" ;;
    *) return 1 ;;
    esac
}

usage() {
    echo "usage: persistence-datadirs [--list] db|ds|ms|mg" >&2
    exit 2
}

list=0
if [[ ${1:-} == --list ]]; then
    list=1
    shift
fi
(($# == 1)) || usage
disk="$1"
table="$(layout "$disk")" || usage
if ((list)); then
    printf '%s\n' "$table"
    exit 0
fi

mount="/data/$disk"
# Never write into the bare mountpoint on the root filesystem: the unit's RequiresMountsFor=
# orders this after the mount, and this refuses to run if the disk is not there after all.
if ! mountpoint -q "$mount"; then
    echo "persistence-datadirs: $mount is not a mounted filesystem; not creating anything" >&2
    exit 1
fi
while read -r path owner mode; do
    install -d -o "${owner%%:*}" -g "${owner#*:}" -m "$mode" "$path"
done <<<"$table"
# The file-context rules are in the image (the layer added them); App-Core also relabels the
# mount. This covers the directories just created.
if command -v selinuxenabled >/dev/null && selinuxenabled; then
    restorecon -R "$mount"
fi
echo "persistence-datadirs: layout of $mount in place"
