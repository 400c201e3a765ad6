#!/bin/bash
# cis: 6.2.6
# title: no two groups share a name (audit: fails, never renames)
# ssg-rules: group_unique_name
# env: CIS_ROOT
set -euo pipefail
CIS_ID=6.2.6
# shellcheck source-path=SCRIPTDIR source=lib/cis-lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/cis-lib.sh"

report_duplicates /etc/group 'group names' 1
