#!/bin/bash
# cis: 2.2.10
# title: no HTTP server package is installed
# ssg-rules: package_httpd_removed
# env: CIS_ROOT
set -euo pipefail
CIS_ID=2.2.10
# shellcheck source-path=SCRIPTDIR source=lib/cis-lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/cis-lib.sh"

ensure_packages_absent httpd apache2
