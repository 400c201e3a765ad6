#!/bin/bash
# Harden layer, part 2: our own scripts for controls SSG's OL8 content lacks or cannot fix,
# each named after its CIS ID (hardening/scripts/), run in file-name order.
# IF_CIS_SCRIPTS (optional): space-separated file names limiting which scripts run (the
# Debian stand-in runs only the OS-neutral subset); unset or empty runs all of them.
set -euo pipefail
: "${IF_FILES:?}"
dir="$IF_FILES/scripts"
shopt -s nullglob
all=()
for path in "$dir"/cis-*.sh; do all+=("${path##*/}"); done
if ((${#all[@]} == 0)); then
    echo "no cis-*.sh scripts in $dir" >&2
    exit 1
fi
selected=("${all[@]}")
if [[ -n ${IF_CIS_SCRIPTS:-} ]]; then
    read -r -a wanted <<<"$IF_CIS_SCRIPTS"
    # A misspelt name must fail the layer, not silently skip a control.
    for name in "${wanted[@]}"; do
        if [[ $name != cis-*.sh || ! -f $dir/$name ]]; then
            echo "IF_CIS_SCRIPTS names '$name', which is not a cis-*.sh script in $dir" >&2
            exit 1
        fi
    done
    selected=()
    for name in "${all[@]}"; do
        if [[ " ${wanted[*]} " == *" $name "* ]]; then selected+=("$name"); fi
    done
fi
echo "Running ${#selected[@]} of ${#all[@]} CIS scripts"
for name in "${selected[@]}"; do
    echo "Running $name"
    bash "$dir/$name"
done
