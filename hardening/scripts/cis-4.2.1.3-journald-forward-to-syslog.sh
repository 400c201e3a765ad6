#!/bin/bash
# cis: 4.2.1.3
# title: journald forwards to rsyslog
# ssg-rules: journald_forward_to_syslog
# env: CIS_ROOT
set -euo pipefail
CIS_ID=4.2.1.3
# shellcheck source-path=SCRIPTDIR source=lib/cis-lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/cis-lib.sh"

ensure_key_value /etc/systemd/journald.conf ForwardToSyslog yes '[Journal]'
restart_if_changed systemd-journald
