#!/bin/bash
# cis: 5.1.4
# title: /etc/cron.daily is owned by root:root with mode 0700
# ssg-rules: file_owner_cron_daily file_groupowner_cron_daily file_permissions_cron_daily
# env: CIS_ROOT
set -euo pipefail
CIS_ID=5.1.4
# shellcheck source-path=SCRIPTDIR source=lib/cis-lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/cis-lib.sh"

ensure_perms /etc/cron.daily root root 0700
