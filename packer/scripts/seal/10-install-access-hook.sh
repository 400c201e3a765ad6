#!/bin/bash
# Give the template its only way in: an admin user with no password whose SSH keys come
# from the hypervisor at boot (SMBIOS OEM strings). The build user is removed at the end.
set -euo pipefail
: "${IF_FILES:?}"
admin=ops
if ! getent passwd "$admin" >/dev/null; then
    echo "Creating admin user ${admin} (no password; key login only)"
    useradd -m -s /bin/bash "$admin"
fi
passwd -l "$admin" >/dev/null
group=wheel
getent group wheel >/dev/null || group=sudo
usermod -aG "$group" "$admin"
# Key-only login and a locked password: sudo cannot ask for a password it cannot check.
printf '%s ALL=(ALL) NOPASSWD: ALL\n' "$admin" >/etc/sudoers.d/50-admin
chmod 0440 /etc/sudoers.d/50-admin
visudo -cq

echo "Installing the boot-time key hook"
install -D -m 0755 "$IF_FILES/imagefactory-access-keys" /usr/libexec/imagefactory/imagefactory-access-keys
install -m 0644 "$IF_FILES/imagefactory-access-keys.service" /etc/systemd/system/
systemctl enable imagefactory-access-keys.service
