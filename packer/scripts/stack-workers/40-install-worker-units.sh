#!/bin/bash
# Workers family: one systemd unit per worker role, all rendered from the single template
# $IF_FILES/workers/worker.service.in, so every role gets the same hardening. The units are
# installed, NOT enabled: App-Core enables the one unit the VM's role needs at boot.
# IF_WORKER_APP: application name (service user, /opt/<app>, /var/lib/<app>, /var/log/<app>).
# IF_WORKER_ROLES: space-separated App-Core role IDs (APP NOTIFY_SMS ...); unit names follow
# App-Core's catalogue: NOTIFY_SMS -> notify-sms-worker.service.
# DESTDIR (optional, tests): render below this root instead of / and skip the systemctl steps.
set -euo pipefail
: "${IF_FILES:?}" "${IF_WORKER_APP:?}" "${IF_WORKER_ROLES:?}"
destdir="${DESTDIR:-}"
template="$IF_FILES/workers/worker.service.in"
unit_dir="$destdir/etc/systemd/system"

if [[ ! $IF_WORKER_APP =~ ^[a-z][a-z0-9-]{0,30}$ ]]; then
    echo "IF_WORKER_APP '$IF_WORKER_APP' is not a lower-case name" >&2
    exit 1
fi
read -r -a roles <<<"$IF_WORKER_ROLES"
if ((${#roles[@]} == 0)); then
    echo "IF_WORKER_ROLES names no role" >&2
    exit 1
fi
for role in "${roles[@]}"; do
    if [[ ! $role =~ ^[A-Z][A-Z0-9_]*$ ]]; then
        echo "IF_WORKER_ROLES: '$role' is not an App-Core role ID (A-Z, 0-9, _)" >&2
        exit 1
    fi
done

install -d -m 0755 "$unit_dir"
units=()
for role in "${roles[@]}"; do
    lower="${role,,}"
    stem="${lower//_/-}-worker"
    unit="$stem.service"
    echo "Installing $unit (role $role)"
    text="$(sed -e "s|@ROLE@|$role|g" -e "s|@ROLE_LOWER@|$lower|g" -e "s|@APP@|$IF_WORKER_APP|g" \
        -e "s|@UNIT_STEM@|$stem|g" -e "s|@UNIT@|$unit|g" "$template")"
    if grep -qE '@[A-Z_]+@' <<<"$text"; then
        echo "$template has a placeholder this script does not fill:" >&2
        grep -nE '@[A-Z_]+@' <<<"$text" >&2
        exit 1
    fi
    # Write next to the target, then rename: a rerun replaces the unit whole, never half.
    tmp="$(mktemp "$unit_dir/.$unit.XXXXXX")"
    printf '%s\n' "$text" >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$unit_dir/$unit"
    units+=("$unit")
done

if [[ -n $destdir ]]; then
    exit 0
fi
systemctl daemon-reload
echo "Checking the units with systemd-analyze verify"
# A setting this systemd does not know or cannot parse is only a warning, and the setting is
# then ignored; verify still exits 0. Any message about one of our files fails the layer
# instead, so a hardening line never silently drops out of the image.
out="$(systemd-analyze verify "${units[@]/#/$unit_dir/}" 2>&1)" || {
    printf '%s\n' "$out" >&2
    exit 1
}
if grep -E "^$unit_dir/[a-z0-9-]+-worker\.service:[0-9]+:" <<<"$out" >&2; then
    echo "systemd-analyze verify ignored lines of the worker units (above)" >&2
    exit 1
fi
for unit in "${units[@]}"; do
    state="$(systemctl is-enabled "$unit" 2>/dev/null || true)"
    if [[ $state != disabled ]]; then
        echo "$unit is '$state', expected disabled: App-Core enables the role's unit" >&2
        exit 1
    fi
done
