#!/bin/bash
# Workers family: the system account every worker unit runs as (User=/Group=). It owns only
# the workers' state and log directories; it has no login shell and a locked password.
# IF_WORKER_APP: the account's name, also the application's name.
set -euo pipefail
: "${IF_WORKER_APP:?}"
user="$IF_WORKER_APP"
if ! getent group "$user" >/dev/null; then
    echo "Creating system group $user"
    groupadd --system "$user"
fi
if ! getent passwd "$user" >/dev/null; then
    echo "Creating system user $user"
    useradd --system --gid "$user" --home-dir "/var/lib/$user" --no-create-home \
        --shell /sbin/nologin --comment "Worker services" "$user"
fi
# Also if the account already existed: no login shell, password locked. Changed only when
# needed, so a rerun leaves /etc/passwd and /etc/shadow as they are.
if [[ "$(getent passwd "$user" | cut -d: -f7)" != /sbin/nologin ]]; then
    echo "Setting $user's shell to /sbin/nologin"
    usermod --shell /sbin/nologin "$user"
fi
if [[ "$(getent shadow "$user" | cut -d: -f2)" != '!'* ]]; then
    echo "Locking $user's password"
    usermod --lock "$user"
fi
