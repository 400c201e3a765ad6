#!/bin/bash
# Workers family: the directories the worker units expect. The application tree /opt/<app>
# (bin, lib, conf) is root's and only readable by the service; the per-role state, temp and
# log directories are the service user's. systemd's StateDirectory=/LogsDirectory= would
# create the latter at first start; making them here lets the image be checked before then.
# IF_WORKER_APP: application and service user name. IF_WORKER_ROLES: App-Core role IDs.
set -euo pipefail
: "${IF_WORKER_APP:?}" "${IF_WORKER_ROLES:?}"
app="$IF_WORKER_APP"
read -r -a roles <<<"$IF_WORKER_ROLES"
for role in "${roles[@]}"; do
    if [[ ! $role =~ ^[A-Z][A-Z0-9_]*$ ]]; then
        echo "IF_WORKER_ROLES: '$role' is not an App-Core role ID (A-Z, 0-9, _)" >&2
        exit 1
    fi
done
echo "Creating /opt/$app (root-owned, read-only to the service)"
for dir in "/opt/$app" "/opt/$app/bin" "/opt/$app/lib" "/opt/$app/conf"; do
    install -d -o root -g root -m 0755 "$dir"
done
install -d -o root -g root -m 0755 "/var/lib/$app" "/var/log/$app"
for role in "${roles[@]}"; do
    lower="${role,,}"
    echo "Creating state, temp and log directories of $role"
    # tmp is java.io.tmpdir: on /var, which CIS leaves exec-allowed (/tmp, /var/tmp are noexec).
    for dir in "/var/lib/$app/$lower" "/var/lib/$app/$lower/tmp" "/var/log/$app/$lower"; do
        install -d -o "$app" -g "$app" -m 0750 "$dir"
    done
done
if command -v restorecon >/dev/null; then
    restorecon -R "/opt/$app" "/var/lib/$app" "/var/log/$app"
fi
