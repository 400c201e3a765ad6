#!/bin/bash
# cis: 4.2.2.3
# title: journald compresses large journal files
# ssg-rules: journald_compress
# env: CIS_ROOT
set -euo pipefail
CIS_ID=4.2.2.3
# shellcheck source-path=SCRIPTDIR source=lib/cis-lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/cis-lib.sh"

ensure_key_value /etc/systemd/journald.conf Compress yes '[Journal]'
restart_if_changed systemd-journald
