#!/bin/bash
# cis: 5.6.4
# title: root's primary group is GID 0
# ssg-rules: accounts_root_gid_zero
# env: CIS_ROOT
set -euo pipefail
CIS_ID=5.6.4
# shellcheck source-path=SCRIPTDIR source=lib/cis-lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/cis-lib.sh"

gid=$(awk -F: '$1 == "root" { print $4 }' "$(cis_path /etc/passwd)")
if [[ $gid == 0 ]]; then
    cis_log "ok: root has GID 0"
elif cis_offline; then
    sed -i -E 's/^(root:[^:]*:[^:]*:)[^:]*:/\10:/' "$(cis_path /etc/passwd)"
    cis_log "changed: root GID $gid -> 0"
else
    usermod -g 0 root
    cis_log "changed: root GID $gid -> 0"
fi
