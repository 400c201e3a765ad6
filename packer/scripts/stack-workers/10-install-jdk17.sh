#!/bin/bash
# Workers family: OpenJDK 17 is the family's `java`.
set -euo pipefail
echo "Installing OpenJDK 17 (headless)"
dnf -y install java-17-openjdk-headless
java -version 2>&1 | head -n 1
