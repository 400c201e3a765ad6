#!/bin/bash
# cis: 6.2.4
# title: no two groups share a GID (audit: fails, never renumbers)
# ssg-rules: group_unique_id
# env: CIS_ROOT
set -euo pipefail
CIS_ID=6.2.4
# shellcheck source-path=SCRIPTDIR source=lib/cis-lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/cis-lib.sh"

report_duplicates /etc/group GIDs 3
