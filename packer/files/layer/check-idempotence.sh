#!/bin/bash
# Idempotence proof for a layer with `reboot: true`. The engine records /etc once the layer's
# scripts have run, reboots the guest, runs the same scripts again and compares: a second run
# that changes a file (content, owner, mode or type) fails the layer and shows the difference.
# Content is compared, not times. Files the boot itself rewrites are left out.
set -euo pipefail
mode="${1:?usage: check-idempotence.sh record|compare STATE_FILE}"
state="${2:?usage: check-idempotence.sh record|compare STATE_FILE}"

snapshot() {
    # /etc/.updated, hwdb.bin and ld.so.cache: refreshed at boot after package changes
    # (ConditionNeedsUpdate=/etc); resolv.conf and adjtime: DHCP and the clock; lvm: metadata
    # archives written when the volume group is activated.
    local prune=(\( -path /etc/.updated -o -path /etc/udev/hwdb.bin -o -path /etc/ld.so.cache
        -o -path /etc/resolv.conf -o -path /etc/adjtime -o -path /etc/mtab
        -o -path /etc/lvm/archive -o -path /etc/lvm/backup -o -path /etc/lvm/cache \) -prune)
    # One find for type, owner, mode and link targets; one sha256sum for all regular files.
    find /etc -xdev "${prune[@]}" -o -printf '%y %u:%g %m %p %l\n' | LC_ALL=C sort
    find /etc -xdev "${prune[@]}" -o -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum
}

case "$mode" in
record)
    snapshot >"$state"
    echo "recorded $(wc -l <"$state") paths under /etc"
    ;;
compare)
    if ! diff -u "$state" <(snapshot) >"$state.diff"; then
        echo "the layer's scripts are not idempotent: a second run after the reboot changed /etc:" >&2
        head -n 60 "$state.diff" >&2
        exit 1
    fi
    echo "second run after the reboot changed nothing under /etc ($(wc -l <"$state") paths)"
    ;;
*)
    echo "usage: check-idempotence.sh record|compare STATE_FILE" >&2
    exit 2
    ;;
esac
