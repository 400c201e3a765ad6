#!/bin/bash
# cis: 5.1.6
# title: /etc/cron.monthly is owned by root:root with mode 0700
# ssg-rules: file_owner_cron_monthly file_groupowner_cron_monthly file_permissions_cron_monthly
# env: CIS_ROOT
set -euo pipefail
CIS_ID=5.1.6
# shellcheck source-path=SCRIPTDIR source=lib/cis-lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/cis-lib.sh"

ensure_perms /etc/cron.monthly root root 0700
