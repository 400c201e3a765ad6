#!/bin/bash
# cis: 5.1.8
# title: cron is restricted by cron.allow (root:root 0600), cron.deny is gone
# ssg-rules: file_cron_deny_not_exist file_permissions_cron_allow
# env: CIS_ROOT
set -euo pipefail
CIS_ID=5.1.8
# shellcheck source-path=SCRIPTDIR source=lib/cis-lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/cis-lib.sh"

ensure_absent /etc/cron.deny
ensure_file /etc/cron.allow root root 0600
