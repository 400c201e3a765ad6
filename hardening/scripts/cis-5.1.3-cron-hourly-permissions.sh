#!/bin/bash
# cis: 5.1.3
# title: /etc/cron.hourly is owned by root:root with mode 0700
# ssg-rules: file_owner_cron_hourly file_groupowner_cron_hourly file_permissions_cron_hourly
# env: CIS_ROOT
set -euo pipefail
CIS_ID=5.1.3
# shellcheck source-path=SCRIPTDIR source=lib/cis-lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/cis-lib.sh"

ensure_perms /etc/cron.hourly root root 0700
