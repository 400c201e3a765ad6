#!/bin/bash
# Stack layer of stand-in family "alpha" (persistence): MariaDB also reads what App-Core writes
# on the data disk for the STANDIN_RR role (as /etc/my.cnf does for MYSQL_RR_* on OL8): the
# role's config and the round-robin mode. A missing !include file is skipped, so a VM of
# another role (no such files) starts as before.
set -euo pipefail
: "${IF_LAYER:?}"
echo "MariaDB includes App-Core's round-robin config on the data disk"
cat >/etc/mysql/mariadb.conf.d/99-appcore-rr.cnf <<'CNF'
# App-Core renders these for role STANDIN_RR (the mode: appcore rr mode)
!include /data/db/conf/appcore-role.cnf
!include /data/db/conf/appcore-rr-mode.cnf
CNF
exit 0
