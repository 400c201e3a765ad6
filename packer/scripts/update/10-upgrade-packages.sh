#!/bin/bash
# Update layer: apply every available update, and record the package list. The layer key
# carries the repositories' state (epoch_from: repomd.xml of each) and an explicit epoch, so
# it rebuilds when new errata are published or someone bumps the epoch, never by accident.
set -euo pipefail
echo "Upgrading all packages"
dnf -y upgrade --refresh
echo "Recording the installed package list"
install -d -m 0755 /var/lib/imagefactory
rpm -qa --qf '%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\n' | sort >/var/lib/imagefactory/packages.txt
