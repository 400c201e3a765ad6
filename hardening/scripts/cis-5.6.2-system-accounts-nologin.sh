#!/bin/bash
# cis: 5.6.2
# title: system accounts other than root cannot log in with a shell
# ssg-rules: no_shelllogin_for_systemaccounts
# env: CIS_ROOT
set -euo pipefail
CIS_ID=5.6.2
# shellcheck source-path=SCRIPTDIR source=lib/cis-lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/cis-lib.sh"

# System accounts are UID 1..UID_MIN-1; sync, shutdown and halt keep their special shells.
uid_min=$(awk '/^UID_MIN/ { print $2 }' "$(cis_path /etc/login.defs)" 2>/dev/null || true)
uid_min=${uid_min:-1000}
nologin=/sbin/nologin
if [[ ! -x $(cis_path /sbin/nologin) && -x $(cis_path /usr/sbin/nologin) ]]; then nologin=/usr/sbin/nologin; fi
# Read the whole file first: usermod/sed replace /etc/passwd while we iterate.
mapfile -t entries <"$(cis_path /etc/passwd)"
for entry in "${entries[@]}"; do
    IFS=: read -r name _ uid _ _ _ shell <<<"$entry"
    if ((uid == 0 || uid >= uid_min)); then continue; fi
    case $name in sync | shutdown | halt) continue ;; esac
    case $shell in */nologin | /bin/false | /usr/bin/false) continue ;; esac
    if cis_offline; then
        sed -i -E "s#^(${name}:([^:]*:){5})[^:]*\$#\1${nologin}#" "$(cis_path /etc/passwd)"
    else
        usermod -s "$nologin" "$name"
    fi
    cis_log "changed: $name (uid $uid) shell $shell -> $nologin"
done
cis_log "ok: system accounts checked"
