#!/bin/bash
# Persistence stack: OpenJDK 17 side by side with the family's JDK 8, for Hazelcast only
# (Hazelcast 5.x needs Java 17 or later; its unit gets /usr/lib/jvm/jre-17 as JAVA_HOME).
# JDK 8 stays the default `java`: the alternative is pinned back to it here and re-checked
# by 90-check-persistence-stack.sh after every vendor package is in.
set -euo pipefail

echo "Installing OpenJDK 17 (headless) next to JDK 8"
dnf -y install java-17-openjdk-headless
jdk17=/usr/lib/jvm/jre-17
if ! "$jdk17/bin/java" -version 2>&1 | grep -q 'version "17\.'; then
    echo "$jdk17/bin/java is not a Java 17 runtime:" >&2
    "$jdk17/bin/java" -version >&2 || true
    exit 1
fi

jdk8="$(alternatives --display java | awk '/^\/.*1\.8\.0.*\/bin\/java/ {print $1; exit}')"
if [[ -z $jdk8 ]]; then
    echo "no JDK 8 java alternative (10-install-jdk8.sh runs first)" >&2
    exit 1
fi
alternatives --set java "$jdk8"
java -version 2>&1 | head -n 1
