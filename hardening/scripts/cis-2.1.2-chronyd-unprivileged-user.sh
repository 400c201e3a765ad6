#!/bin/bash
# cis: 2.1.2
# title: chronyd drops root and runs as the chrony user
# ssg-rules: chronyd_run_as_chrony_user
# env: CIS_ROOT CHRONY_USER=chrony|_chrony
set -euo pipefail
CIS_ID=2.1.2
# shellcheck source-path=SCRIPTDIR source=lib/cis-lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/cis-lib.sh"

# EL passes the user on the command line (/etc/sysconfig/chronyd OPTIONS, what SSG checks);
# elsewhere the chrony.conf "user" directive does the same.
# The account is "chrony" on EL and "_chrony" on Debian (the stand-in guest).
sysconfig=$(cis_path /etc/sysconfig/chronyd)
user=${CHRONY_USER:-}
if [[ -z $user ]]; then
    if [[ -f $sysconfig ]] || grep -q '^chrony:' "$(cis_path /etc/passwd)"; then
        user=chrony
    else
        user=_chrony
    fi
fi
if [[ -f $sysconfig ]]; then
    current=$(sed -n -E 's/^OPTIONS="?([^"]*)"?$/\1/p' "$sysconfig" | tail -n 1)
    if [[ " $current " == *" -u $user "* ]]; then
        cis_log "ok: /etc/sysconfig/chronyd OPTIONS has -u $user"
    else
        ensure_key_value /etc/sysconfig/chronyd OPTIONS "\"${current:+$current }-u $user\""
    fi
else
    conf=""
    for candidate in /etc/chrony.conf /etc/chrony/chrony.conf; do
        if [[ -f $(cis_path "$candidate") ]]; then conf=$candidate; fi
    done
    if [[ -z $conf ]]; then
        cis_log "ok: chrony is not installed"
        exit 0
    fi
    if grep -Eq "^user[[:space:]]+${user}[[:space:]]*$" "$(cis_path "$conf")"; then
        cis_log "ok: $conf has user $user"
    else
        sed -i -E '/^user[[:space:]]/d' "$(cis_path "$conf")"
        printf 'user %s\n' "$user" >>"$(cis_path "$conf")"
        CIS_CHANGED=1
        cis_log "changed: $conf now has user $user"
    fi
fi
restart_if_changed chronyd
