#!/bin/bash
# Persistence stack: check every pinned input (versions, key URLs, key fingerprints) before the
# layer changes anything, so a missing or malformed value fails in seconds, not after half the
# packages are in. Fingerprints with no value in factory.yaml are for the build-host operator
# to establish and add: docs/stacks.md ("Keys the operator pins") names the command.
set -euo pipefail
: "${IF_FILES:?}"

problems=()
need() { # need VAR REGEX WHAT
    local value="${!1:-}"
    if [[ -z $value ]]; then
        problems+=("$1 is not set: add it to layers.stack-persistence.variables ($3; docs/stacks.md)")
    elif [[ ! $value =~ $2 ]]; then
        problems+=("$1='$value' is not $3")
    fi
}

fpr='^[0-9A-F]{40}$'
url='^https://[^[:space:]]+$'
need IF_PXC_VERSION '^8\.0\.[0-9]+-[0-9]+$' "a PXC 8.0 version-release such as 8.0.45-36"
need IF_PXC_KEY_URL "$url" "an https URL"
need IF_PXC_KEY_FPR "$fpr" "a 40-hex-digit upper-case fingerprint"
need IF_SCYLLA_VERSION '^[0-9]{4}\.[0-9]+\.[0-9]+$' "a ScyllaDB version such as 2026.1.0"
need IF_SCYLLA_KEY_URL "$url" "an https URL"
need IF_SCYLLA_KEY_FPR "$fpr" "a 40-hex-digit upper-case fingerprint"
need IF_REDPANDA_VERSION '^[0-9]+\.[0-9]+\.[0-9]+$' "a Redpanda version such as 26.2.1"
need IF_REDPANDA_KEY_URL "$url" "an https URL"
need IF_REDPANDA_KEY_FPR "$fpr" "a 40-hex-digit upper-case fingerprint"
need IF_HAZELCAST_VERSION '^5\.[0-9]+\.[0-9]+$' "a Hazelcast 5.x version such as 5.6.0"
need IF_HAZELCAST_REPO_KEY_URL "$url" "an https URL"
need IF_HAZELCAST_REPO_KEY_FPR "$fpr" "a 40-hex-digit upper-case fingerprint"
need IF_HAZELCAST_PKG_KEY_URL "$url" "an https URL"
need IF_HAZELCAST_PKG_KEY_FPR "$fpr" "a 40-hex-digit upper-case fingerprint"

# The ScyllaDB repository is per release stream; it must be the pinned version's stream.
stream="${IF_SCYLLA_VERSION:-}"
stream="${stream%.*}"
if [[ -n $stream ]] && ! grep -q "/scylladb-$stream/" "$IF_FILES/repos/scylla.repo"; then
    problems+=("repos/scylla.repo is not the scylladb-$stream stream of IF_SCYLLA_VERSION")
fi
for repo in percona scylla redpanda hazelcast; do
    [[ -f $IF_FILES/repos/$repo.repo ]] || problems+=("repos/$repo.repo was not uploaded")
done

if ((${#problems[@]})); then
    printf 'stack-persistence input: %s\n' "${problems[@]}" >&2
    exit 1
fi
echo "Persistence stack inputs: PXC $IF_PXC_VERSION, ScyllaDB $IF_SCYLLA_VERSION," \
    "Redpanda $IF_REDPANDA_VERSION, Hazelcast $IF_HAZELCAST_VERSION; all keys pinned"
