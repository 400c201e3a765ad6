#!/bin/bash
# cis: 5.1.9
# title: at is restricted by at.allow (root:root 0600), at.deny is gone
# ssg-rules: file_at_deny_not_exist file_groupowner_at_allow file_permissions_at_allow
# env: CIS_ROOT
set -euo pipefail
CIS_ID=5.1.9
# shellcheck source-path=SCRIPTDIR source=lib/cis-lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/cis-lib.sh"

ensure_absent /etc/at.deny
ensure_file /etc/at.allow root root 0600
