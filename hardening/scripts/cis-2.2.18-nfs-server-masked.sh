#!/bin/bash
# cis: 2.2.18
# title: the NFS server unit is stopped and masked
# ssg-rules: service_nfs_disabled
# env: CIS_ROOT
set -euo pipefail
CIS_ID=2.2.18
# shellcheck source-path=SCRIPTDIR source=lib/cis-lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/cis-lib.sh"

ensure_unit_masked nfs-server.service
