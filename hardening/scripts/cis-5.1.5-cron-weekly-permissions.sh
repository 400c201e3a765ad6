#!/bin/bash
# cis: 5.1.5
# title: /etc/cron.weekly is owned by root:root with mode 0700
# ssg-rules: file_owner_cron_weekly file_groupowner_cron_weekly file_permissions_cron_weekly
# env: CIS_ROOT
set -euo pipefail
CIS_ID=5.1.5
# shellcheck source-path=SCRIPTDIR source=lib/cis-lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/cis-lib.sh"

ensure_perms /etc/cron.weekly root root 0700
