#!/bin/bash
# cis: 3.4.1.5
# title: firewalld has an explicit default zone
# ssg-rules: set_firewalld_default_zone
# env: CIS_ROOT FIREWALLD_DEFAULT_ZONE=public
set -euo pipefail
CIS_ID=3.4.1.5
# shellcheck source-path=SCRIPTDIR source=lib/cis-lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/cis-lib.sh"

zone=${FIREWALLD_DEFAULT_ZONE:-public}
conf=/etc/firewalld/firewalld.conf
if [[ ! -f $(cis_path "$conf") ]]; then
    cis_die "$conf not found: firewalld must be installed (kickstart %packages)"
fi
if [[ ! -f $(cis_path "/usr/lib/firewalld/zones/${zone}.xml") && ! -f $(cis_path "/etc/firewalld/zones/${zone}.xml") ]]; then
    cis_die "FIREWALLD_DEFAULT_ZONE=$zone is not a firewalld zone"
fi
ensure_key_value "$conf" DefaultZone "$zone"
if [[ $CIS_CHANGED == 1 ]] && ! cis_offline && systemctl is-active --quiet firewalld; then
    firewall-cmd --reload >/dev/null
    cis_log "changed: firewalld reloaded"
fi
