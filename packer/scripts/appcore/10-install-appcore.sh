#!/bin/bash
# App-Core layer: install the boot-time role controller for this image's family.
set -euo pipefail
: "${IF_FILES:?}" "${IF_FAMILY:?}"
echo "Installing App-Core for family ${IF_FAMILY}"
bash "$IF_FILES/appcore/install.sh" --family "$IF_FAMILY"
