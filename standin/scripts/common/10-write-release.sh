#!/bin/bash
# Shared layer of the stand-in families: record which layers the image was built from.
set -euo pipefail
: "${IF_LAYER:?}" "${IF_RELEASE_NAME:?}"
echo "Writing /etc/imagefactory/release"
install -d -m 0755 /etc/imagefactory
printf 'NAME=%s\nLAYERS=%s\n' "$IF_RELEASE_NAME" "$IF_LAYER" >/etc/imagefactory/release
