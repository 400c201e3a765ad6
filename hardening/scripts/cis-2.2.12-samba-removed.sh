#!/bin/bash
# cis: 2.2.12
# title: the Samba server package is not installed
# ssg-rules: package_samba_removed
# env: CIS_ROOT
set -euo pipefail
CIS_ID=2.2.12
# shellcheck source-path=SCRIPTDIR source=lib/cis-lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/cis-lib.sh"

ensure_packages_absent samba
