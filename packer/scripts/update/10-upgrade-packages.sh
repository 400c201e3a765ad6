#!/bin/bash
# Update layer: apply every available update (the layer key carries an explicit epoch, so a
# rebuild happens when someone bumps it, never by accident), and record the package list.
set -euo pipefail
echo "Upgrading all packages"
dnf -y upgrade --refresh
echo "Recording the installed package list"
install -d -m 0755 /var/lib/imagefactory
rpm -qa --qf '%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\n' | sort >/var/lib/imagefactory/packages.txt
