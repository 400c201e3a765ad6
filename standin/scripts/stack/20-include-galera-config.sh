#!/bin/bash
# Stack layer of stand-in family "alpha" (persistence): MariaDB, installed in the base, reads
# the Galera config App-Core renders for the STANDIN_GALERA role, as PXC's /etc/my.cnf does on
# OL8. The directory exists in every image so the include never names a missing directory.
set -euo pipefail
: "${IF_LAYER:?}"
echo "MariaDB includes App-Core's Galera config directory"
install -d -m 0755 /etc/appcore/conf/galera
printf '# App-Core renders the Galera member config here (role STANDIN_GALERA)\n!includedir /etc/appcore/conf/galera\n' \
  >/etc/mysql/mariadb.conf.d/99-appcore-galera.cnf
systemctl is-enabled mariadb.service >/dev/null 2>&1 && systemctl disable mariadb.service
exit 0
