#!/bin/bash
# cis: 5.1.2
# title: /etc/crontab is owned by root:root with mode 0600
# ssg-rules: file_owner_crontab file_groupowner_crontab file_permissions_crontab
# env: CIS_ROOT
set -euo pipefail
CIS_ID=5.1.2
# shellcheck source-path=SCRIPTDIR source=lib/cis-lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/cis-lib.sh"

ensure_perms /etc/crontab root root 0600
