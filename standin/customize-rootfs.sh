#!/bin/bash
# mmdebstrap customize hook: turn a minbase tree into a bootable, SSH-reachable build guest.
# $1 is the root directory. Inputs come only from IF_* variables (see standin/README.md).
set -euo pipefail
root="$1"
: "${IF_BUILD_USER:?}" "${IF_BUILD_PUBKEY:?}" "${IF_HOSTNAME:=standin}"

echo "Setting hostname ${IF_HOSTNAME}"
echo "$IF_HOSTNAME" >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 %s\n' "$IF_HOSTNAME" >"$root/etc/hosts"

echo "Writing fstab (root by label: the disk is built without mounting anything)"
echo 'LABEL=root / ext4 defaults,errors=remount-ro,discard 0 1' >"$root/etc/fstab"

echo "Enabling DHCP on every ethernet interface"
mkdir -p "$root/etc/systemd/network"
printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n' >"$root/etc/systemd/network/10-dhcp.network"
chroot "$root" systemctl enable systemd-networkd.service
# slirp's resolver; resolved is not installed in minbase.
echo 'nameserver 10.0.2.3' >"$root/etc/resolv.conf"

echo "Regenerating SSH host keys at boot when the image ships without them (sealed images)"
cat >"$root/etc/systemd/system/ssh-hostkeys.service" <<'UNIT'
[Unit]
Description=Generate missing SSH host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
UNIT
chroot "$root" systemctl enable ssh-hostkeys.service
printf 'UseDNS no\n' >"$root/etc/ssh/sshd_config.d/10-nodns.conf"

echo "Creating build user ${IF_BUILD_USER} (key only, password locked)"
chroot "$root" useradd -m -s /bin/bash "$IF_BUILD_USER"
chroot "$root" passwd -l "$IF_BUILD_USER" >/dev/null
install -d -m 0700 "$root/home/$IF_BUILD_USER/.ssh"
printf '%s\n' "$IF_BUILD_PUBKEY" >"$root/home/$IF_BUILD_USER/.ssh/authorized_keys"
chmod 0600 "$root/home/$IF_BUILD_USER/.ssh/authorized_keys"
chroot "$root" chown -R "$IF_BUILD_USER:$IF_BUILD_USER" "/home/$IF_BUILD_USER/.ssh"
printf '%s ALL=(ALL) NOPASSWD: ALL\n' "$IF_BUILD_USER" >"$root/etc/sudoers.d/90-build-user"
chmod 0440 "$root/etc/sudoers.d/90-build-user"

# A Galera member must never start on its own judgement (appcore/src/appcore/galera.py).
if [ -e "$root/lib/systemd/system/mariadb.service" ]; then
  echo "MariaDB installed: not started at boot (App-Core and the fleet start it)"
  chroot "$root" systemctl disable mariadb.service
fi

echo "Keeping apt quiet and small in the guest"
printf 'Acquire::Languages "none";\n' >"$root/etc/apt/apt.conf.d/90-no-languages"
