#!/bin/bash
# Harden layer, part 2: our own scripts for controls SSG's OL8 content lacks or cannot fix,
# each named after its CIS ID (hardening/scripts/).
set -euo pipefail
: "${IF_FILES:?}"
for script in "$IF_FILES"/scripts/cis-*.sh; do
    echo "Running $(basename "$script")"
    bash "$script"
done
