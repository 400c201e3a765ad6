#!/bin/bash
# Workers family: OpenJDK 17 (headless) is the family's `java`. The worker units run it through
# /usr/lib/jvm/jre-17, the package's JDK 17 alternatives link, so they stay on 17 whatever
# `java` points to later.
set -euo pipefail
echo "Installing OpenJDK 17 (headless)"
dnf -y install java-17-openjdk-headless
java17="$(alternatives --display java | awk '/^\/[^ ]*java-17-openjdk[^ ]*\/bin\/java / {print $1; exit}')"
if [[ -z $java17 ]]; then
    echo "no OpenJDK 17 entry in 'alternatives --display java'" >&2
    exit 1
fi
echo "Making $java17 the default java"
alternatives --set java "$java17"
if [[ ! -x /usr/lib/jvm/jre-17/bin/java ]]; then
    echo "/usr/lib/jvm/jre-17/bin/java is missing: the worker units' ExecStart= needs it" >&2
    exit 1
fi
version="$(java -version 2>&1)"
printf '%s\n' "${version%%$'\n'*}"
if [[ $version != *'version "17.'* ]]; then
    echo "java is not OpenJDK 17" >&2
    exit 1
fi
