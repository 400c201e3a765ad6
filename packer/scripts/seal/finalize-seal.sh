#!/bin/bash
# The seal layer's shutdown command (run through sudo by Packer, last thing in the build):
# remove the build user and its key, per-machine identity, logs and history, trim, power off.
# Usage: finalize-seal.sh BUILD_USER
set -euo pipefail
build_user="${1:?build user}"

# Overwrite before deleting: a freed block that shares a 64 KiB qcow2 cluster with live data
# survives discard, and the image would still carry the old bytes.
scrub() { find "$@" -xdev -type f -exec shred --zero --iterations=0 --remove {} + 2>/dev/null || true; }

echo "Removing the build user ${build_user}, its key and its sudo rule"
for rule in /etc/sudoers.d/*; do
    if grep -qE "^${build_user}[[:space:]]" "$rule"; then rm -f "$rule"; fi
done
scrub "/home/${build_user:?}"
userdel -f -r "$build_user" 2>/dev/null || userdel -f "$build_user"
rm -rf "/home/${build_user:?}"

echo "Removing SSH host keys (regenerated on first boot)"
scrub /etc/ssh -name 'ssh_host_*'
rm -f /etc/ssh/ssh_host_*

echo "Stopping the units that write at shutdown (random seed, wtmp shutdown record)"
# Each saves when it stops: stopped and masked (until this boot ends) here, before the files
# are removed, the poweroff below writes neither again. The host checks the image offline.
systemctl stop systemd-random-seed.service systemd-update-utmp.service
systemctl mask --runtime systemd-random-seed.service systemd-update-utmp.service >/dev/null

echo "Emptying machine-id (a new one is made on first boot)"
shred --zero --iterations=0 /etc/machine-id
truncate -s 0 /etc/machine-id
[ -L /var/lib/dbus/machine-id ] || rm -f /var/lib/dbus/machine-id
rm -f /var/lib/systemd/random-seed

echo "Forgetting any App-Core role pinned during the build (a template has no role)"
rm -rf /var/lib/appcore /run/appcore

echo "Clearing logs, temp files and shell history"
journalctl --rotate >/dev/null 2>&1 || true
rm -rf /var/log/journal/*
find /var/log -type f \( -name '*.gz' -o -name '*.[0-9]' -o -name '*.old' \) -delete
find /var/log -type f -exec truncate -s 0 {} +
rm -f /root/.bash_history /home/*/.bash_history
# Absent, nothing appends to them (sshd's logout record at poweroff included); systemd-tmpfiles
# makes them again at first boot.
rm -f /var/log/wtmp /var/log/btmp

# Per-OS last steps staged with this script (OL8: SSG's fixes for the CIS rules that must run
# at the very end, e.g. the AIDE baseline of the finished image), in file-name order.
here="$(dirname "$0")"
for last in "$here"/cis-*-seal-*.sh; do
    [ -e "$last" ] || continue
    echo "Running $(basename "$last")"
    bash "$last"
done
find /tmp /var/tmp -mindepth 1 -delete 2>/dev/null || true

echo "Trimming free space so deleted data does not reach the image"
sync
fstrim -a || true
systemctl poweroff
