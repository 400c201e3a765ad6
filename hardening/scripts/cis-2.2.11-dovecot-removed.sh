#!/bin/bash
# cis: 2.2.11
# title: no IMAP/POP3 server package is installed
# ssg-rules: package_dovecot_removed
# env: CIS_ROOT
set -euo pipefail
CIS_ID=2.2.11
# shellcheck source-path=SCRIPTDIR source=lib/cis-lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/cis-lib.sh"

ensure_packages_absent dovecot dovecot-core
