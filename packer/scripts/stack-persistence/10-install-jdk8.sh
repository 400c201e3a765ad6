#!/bin/bash
# Persistence family: OpenJDK 8 is the family's default `java`.
set -euo pipefail
echo "Installing OpenJDK 8 (headless)"
dnf -y install java-1.8.0-openjdk-headless
alternatives --set java "$(alternatives --display java | awk '/^\/.*1\.8\.0.*\/bin\/java/ {print $1; exit}')"
java -version 2>&1 | head -n 1
