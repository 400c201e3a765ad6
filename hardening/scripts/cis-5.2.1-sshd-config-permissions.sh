#!/bin/bash
# cis: 5.2.1
# title: /etc/ssh/sshd_config is owned by root:root with mode 0600
# ssg-rules: file_owner_sshd_config file_groupowner_sshd_config file_permissions_sshd_config
# env: CIS_ROOT
set -euo pipefail
CIS_ID=5.2.1
# shellcheck source-path=SCRIPTDIR source=lib/cis-lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/cis-lib.sh"

ensure_perms /etc/ssh/sshd_config root root 0600
