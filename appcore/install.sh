#!/bin/bash
# Install App-Core from this source tree into a running guest (or into --root DIR for packaging
# and tests). The RPM spec runs this same script with --root %{buildroot} --files-only.
set -euo pipefail

usage() {
  echo "usage: install.sh --family NAME [--with-selftest] [--root DIR] [--files-only]" >&2
  echo "  --family NAME     image family written to /etc/appcore/image.json (persistence|workers)" >&2
  echo "  --with-selftest   also install the SELFTEST role (stand-in test images only)" >&2
  echo "  --root DIR        install below DIR instead of / (no running systemd is touched)" >&2
  echo "  --files-only      copy files only: no image.json, no enable (RPM %install)" >&2
  exit 2
}

src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root=/
family=""
selftest=0
files_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --family) family="${2:-}"; shift 2 ;;
    --with-selftest) selftest=1; shift ;;
    --root) root="${2:-}"; shift 2 ;;
    --files-only) files_only=1; shift ;;
    *) usage ;;
  esac
done
if [ "$files_only" -eq 0 ] && [ -z "$family" ]; then
  echo "install.sh: --family is required (e.g. --family persistence)" >&2
  usage
fi
if [ "$root" = / ] && [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root to install into the running system" >&2
  exit 1
fi
root="${root%/}"
if [ "$files_only" -eq 0 ]; then
  # Check the catalogue and family from the source tree first, so a bad call installs nothing.
  APPCORE_LIBDIR="$src/src" "$src/bin/appcore" --catalogue "$src/catalogue/roles.json" \
    image-init --family "$family" --check
fi

install -d -m 0755 "$root/usr/lib/appcore/appcore" "$root/usr/sbin" \
  "$root/usr/share/appcore/templates" "$root/usr/lib/systemd/system" \
  "$root/usr/share/doc/appcore" "$root/etc/appcore/roles.d" "$root/etc/appcore/templates"
install -m 0644 "$src"/src/appcore/*.py "$root/usr/lib/appcore/appcore/"
install -m 0755 "$src/bin/appcore" "$root/usr/sbin/appcore"
install -m 0644 "$src/catalogue/roles.json" "$root/usr/share/appcore/roles.json"
install -m 0644 "$src"/catalogue/templates/*.tmpl "$root/usr/share/appcore/templates/"
install -m 0644 "$src/systemd/appcore.service" "$src/systemd/appcore-disk@.service" \
  "$src/systemd/appcore-hostkeys.service" "$root/usr/lib/systemd/system/"
install -m 0644 "$src/README.md" "$root/usr/share/doc/appcore/README.md"
if [ "$selftest" -eq 1 ]; then
  install -m 0644 "$src/catalogue/selftest-role.json" "$root/etc/appcore/roles.d/selftest.json"
  install -m 0644 "$src/systemd/appcore-selftest.service" "$root/usr/lib/systemd/system/"
fi
[ "$files_only" -eq 1 ] && exit 0

appcore=(env "APPCORE_LIBDIR=$root/usr/lib/appcore" "$root/usr/sbin/appcore" --root "$root/")
"${appcore[@]}" validate
"${appcore[@]}" image-init --family "$family"
if [ "$root" = "" ]; then
  systemctl daemon-reload
  systemctl enable appcore.service
else
  systemctl --root="$root" enable appcore.service
fi
echo "install.sh: App-Core installed (family $family, selftest role: $selftest)"
