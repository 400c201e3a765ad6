#!/bin/bash
# cis: 1.1.1.3
# title: the udf filesystem module cannot be loaded
# ssg-rules: kernel_module_udf_disabled
# env: CIS_ROOT
set -euo pipefail
CIS_ID=1.1.1.3
# shellcheck source-path=SCRIPTDIR source=lib/cis-lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/cis-lib.sh"

ensure_module_disabled udf
