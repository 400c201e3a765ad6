#!/bin/bash
# cis: 4.2.2.4
# title: journald writes logfiles to persistent disk
# ssg-rules: journald_storage
# env: CIS_ROOT
set -euo pipefail
CIS_ID=4.2.2.4
# shellcheck source-path=SCRIPTDIR source=lib/cis-lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/cis-lib.sh"

ensure_key_value /etc/systemd/journald.conf Storage persistent '[Journal]'
restart_if_changed systemd-journald
