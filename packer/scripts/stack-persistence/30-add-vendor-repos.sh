#!/bin/bash
# Persistence stack: the four vendors' RPM repositories, each trusted only through a key whose
# fingerprint is pinned in factory.yaml (support/fetch-verified-key.sh refuses any other key).
# The .repo files ship with enabled=0, so the build enables one repository per transaction and
# a later `dnf upgrade` on a template never pulls vendor updates. EL8's default mysql module
# hides Percona's packages (Percona's install guide), so it is disabled first.
set -euo pipefail
: "${IF_FILES:?}"
: "${IF_PXC_KEY_URL:?}" "${IF_PXC_KEY_FPR:?}"
: "${IF_SCYLLA_KEY_URL:?}" "${IF_SCYLLA_KEY_FPR:?}"
: "${IF_REDPANDA_KEY_URL:?}" "${IF_REDPANDA_KEY_FPR:?}"
: "${IF_HAZELCAST_REPO_KEY_URL:?}" "${IF_HAZELCAST_REPO_KEY_FPR:?}"
: "${IF_HAZELCAST_PKG_KEY_URL:?}" "${IF_HAZELCAST_PKG_KEY_FPR:?}"
fetch="$IF_FILES/support/fetch-verified-key.sh"
keys=/etc/pki/rpm-gpg

echo "Disabling the EL8 mysql module (it masks the Percona packages)"
dnf -y module disable mysql

echo "Installing the curl and gpg the key check needs"
dnf -y install curl gnupg2

# fetch-verified-key.sh writes the key only when it is the pinned one; rpm then trusts it.
import_key() { # import_key URL FINGERPRINT NAME
    bash "$fetch" "$1" "$2" "$keys/RPM-GPG-KEY-imagefactory-$3"
    rpm --import "$keys/RPM-GPG-KEY-imagefactory-$3"
}
import_key "$IF_PXC_KEY_URL" "$IF_PXC_KEY_FPR" percona
import_key "$IF_SCYLLA_KEY_URL" "$IF_SCYLLA_KEY_FPR" scylla
import_key "$IF_REDPANDA_KEY_URL" "$IF_REDPANDA_KEY_FPR" redpanda
import_key "$IF_HAZELCAST_REPO_KEY_URL" "$IF_HAZELCAST_REPO_KEY_FPR" hazelcast-repo
import_key "$IF_HAZELCAST_PKG_KEY_URL" "$IF_HAZELCAST_PKG_KEY_FPR" hazelcast

for repo in percona scylla redpanda hazelcast; do
    src="$IF_FILES/repos/$repo.repo"
    if grep -qE '^[[:space:]]*enabled[[:space:]]*=[[:space:]]*1' "$src"; then
        echo "$src enables a repository; every vendor repository must ship enabled=0" >&2
        exit 1
    fi
    echo "Adding /etc/yum.repos.d/$repo.repo (disabled)"
    install -m 0644 "$src" "/etc/yum.repos.d/$repo.repo"
done
