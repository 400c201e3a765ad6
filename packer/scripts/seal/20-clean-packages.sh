#!/bin/bash
# Drop package caches and downloaded metadata: they are large and stale by first boot.
set -euo pipefail
if command -v dnf >/dev/null; then
    echo "Cleaning dnf caches"
    dnf -q clean all
    rm -rf /var/cache/dnf/*
elif command -v apt-get >/dev/null; then
    echo "Cleaning apt caches"
    apt-get -q clean
    rm -rf /var/lib/apt/lists/*
fi
