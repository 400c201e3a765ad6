#!/bin/bash
# cis: 5.1.7
# title: /etc/cron.d is owned by root:root with mode 0700
# ssg-rules: file_owner_cron_d file_groupowner_cron_d file_permissions_cron_d
# env: CIS_ROOT
set -euo pipefail
CIS_ID=5.1.7
# shellcheck source-path=SCRIPTDIR source=lib/cis-lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/cis-lib.sh"

ensure_perms /etc/cron.d root root 0700
