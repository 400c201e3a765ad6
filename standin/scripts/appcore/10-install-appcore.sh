#!/bin/bash
# App-Core layer of the stand-in families: the same source tree OL8 installs, plus the
# SELFTEST role (a tiny service that writes to its data disk), since the stand-in has no DBs.
set -euo pipefail
: "${IF_FILES:?}" "${IF_APPCORE_FAMILY:?}"
echo "Installing App-Core (family ${IF_APPCORE_FAMILY}, with the SELFTEST role)"
bash "$IF_FILES/appcore/install.sh" --family "$IF_APPCORE_FAMILY" --with-selftest
