#!/bin/bash
# Persistence stack: the /data mountpoints App-Core mounts each data disk on (nodev,nosuid),
# their SELinux file-context rules (the same rules App-Core applies at mount time, so they are
# in the image and SELinux stays enforcing), and the boot-time unit that creates each
# product's directories on its freshly mounted disk before the product starts.
set -euo pipefail
: "${IF_FILES:?}"

echo "Installing semanage (policycoreutils-python-utils)"
dnf -y install policycoreutils-python-utils

install -d -m 0755 /data /data/db /data/ds /data/ms /data/mg

# spec=type. The /data(/.*)? rules are exactly App-Core's catalogue rules
# (appcore/catalogue/roles.json). /data itself gets var_t so confined daemons such as
# mysqld_t may traverse it (an unlabelled top-level directory is default_t).
rules=(
    "/data=var_t"
    "/data/db(/.*)?=mysqld_db_t"
    "/data/ds(/.*)?=var_lib_t"
    "/data/ms(/.*)?=var_lib_t"
    "/data/mg(/.*)?=var_lib_t"
)
local_rules="$(semanage fcontext -l -C)"
for rule in "${rules[@]}"; do
    spec="${rule%=*}"
    type="${rule##*=}"
    present="$(awk -v s="$spec" '$1 == s' <<<"$local_rules")"
    if grep -q ":$type:" <<<"$present"; then
        echo "fcontext $spec -> $type: already in place"
        continue
    fi
    verb=-a
    [[ -n $present ]] && verb=-m
    echo "fcontext $spec -> $type ($verb)"
    semanage fcontext "$verb" -t "$type" "$spec"
done
if selinuxenabled; then
    restorecon -R -v /data
else
    echo "SELinux is not enabled in the build VM; the rules are in the policy store only" >&2
fi

echo "Installing the boot-time directory unit imagefactory-datadirs@.service"
install -D -m 0755 "$IF_FILES/support/persistence-datadirs.sh" \
    /usr/libexec/imagefactory/persistence-datadirs
install -m 0644 "$IF_FILES/support/imagefactory-datadirs@.service" /etc/systemd/system/
systemctl daemon-reload
