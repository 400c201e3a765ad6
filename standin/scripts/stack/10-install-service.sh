#!/bin/bash
# Stack layer of stand-in family "alpha": a small always-on service standing in for a DB.
set -euo pipefail
: "${IF_LAYER:?}" "${IF_STACK:?}"
echo "Installing ${IF_STACK}.service"
install -d -m 0755 "/etc/${IF_STACK}"
printf 'stack=%s\n' "$IF_STACK" >"/etc/${IF_STACK}/${IF_STACK}.conf"
cat >"/etc/systemd/system/${IF_STACK}.service" <<UNIT
[Unit]
Description=Stand-in stack service ${IF_STACK}

[Service]
ExecStart=/bin/sleep infinity
DynamicUser=yes

[Install]
WantedBy=multi-user.target
UNIT
systemctl enable "${IF_STACK}.service"
sed -i "s/^LAYERS=.*/&,${IF_LAYER}/" /etc/imagefactory/release
