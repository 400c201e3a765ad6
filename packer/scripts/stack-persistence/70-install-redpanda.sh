#!/bin/bash
# Persistence stack: Redpanda at the pinned version (redpanda, redpanda-rpk and
# redpanda-tuner), installed and NOT enabled (App-Core enables redpanda.service for the
# REDPANDA role). Binaries stay in the RPM's paths; /etc/redpanda/redpanda.yaml puts
# data_directory on the data disk (/data/ms). Tuning (`rpk redpanda tune`, `mode production`)
# depends on the VM's hardware and belongs to first boot (docs/stacks.md).
set -euo pipefail
: "${IF_FILES:?}" "${IF_REDPANDA_VERSION:?}"
conf=/etc/redpanda/redpanda.yaml
data=/data/ms/data

echo "Installing Redpanda $IF_REDPANDA_VERSION"
dnf -y --enablerepo=redpanda --setopt=install_weak_deps=False install \
    "redpanda-$IF_REDPANDA_VERSION" "redpanda-rpk-$IF_REDPANDA_VERSION" \
    "redpanda-tuner-$IF_REDPANDA_VERSION"
for pkg in redpanda redpanda-rpk redpanda-tuner; do
    got="$(rpm -q --qf '%{VERSION}' "$pkg")"
    if [[ $got != "$IF_REDPANDA_VERSION" ]]; then
        echo "$pkg is $got, pinned $IF_REDPANDA_VERSION" >&2
        exit 1
    fi
done

# rpk rewrites the whole file; only call it when the value differs, so a rerun leaves the
# file exactly as it is.
if ! grep -qE "^[[:space:]]+data_directory:[[:space:]]+$data\$" "$conf"; then
    echo "Pointing $conf at $data"
    rpk redpanda config set redpanda.data_directory "$data" --config "$conf"
fi
if ! grep -qE "^[[:space:]]+data_directory:[[:space:]]+$data\$" "$conf"; then
    echo "$conf does not show data_directory: $data after rpk set it" >&2
    exit 1
fi

install -D -m 0644 "$IF_FILES/support/dropins/redpanda.service.conf" \
    /etc/systemd/system/redpanda.service.d/40-imagefactory.conf
systemctl daemon-reload
if systemctl is-enabled --quiet redpanda.service; then
    systemctl disable redpanda.service
fi
