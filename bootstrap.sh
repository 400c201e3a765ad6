#!/bin/bash
# Set up a Debian 12 build host for imagefactory (run as root): system packages, then a
# Python virtual environment in .venv with the project and its test tools. Idempotent.
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(
  packer qemu-system-x86 qemu-utils ovmf
  mmdebstrap mtools dosfstools syslinux syslinux-common e2fsprogs fdisk
  openssh-client git python3 python3-venv
  openscap-scanner ssg-nondebian shellcheck
  rpm xfsprogs
)

if [ "$(id -u)" -ne 0 ]; then
  echo "bootstrap.sh installs system packages: run it as root" >&2
  exit 1
fi
echo "==> apt: ${APT_PACKAGES[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${APT_PACKAGES[@]}" >/dev/null

echo "==> python virtual environment in .venv"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[dev]'
echo "==> ready: .venv/bin/invoke --list"
