#!/bin/bash
# Download a vendor's OpenPGP public key and keep it only if it is exactly the key pinned in
# factory.yaml: a single primary key whose fingerprint equals the pinned one, neither revoked
# nor expired. Nothing is written unless every check passes; the caller then `rpm --import`s
# DEST. OS-neutral (curl + gpg), so CI runs it for real against throwaway keys.
#
# Usage: fetch-verified-key.sh URL FINGERPRINT DEST
#   URL          https://... (or file:///... for a key staged on the machine)
#   FINGERPRINT  the primary key's fingerprint, 40 hex digits (spaces and case ignored)
#   DEST         file to write the verified key to (mode 0644)
set -euo pipefail

die() {
    echo "fetch-verified-key: $*" >&2
    exit 1
}

(($# == 3)) || die "usage: fetch-verified-key.sh URL FINGERPRINT DEST"
url="$1"
want="${2// /}"
want="${want^^}"
dest="$3"
[[ $want =~ ^[0-9A-F]{40}$ ]] || die "pinned fingerprint '$2' is not 40 hex digits"
case "$url" in
https://* | file:///*) ;;
*) die "refusing '$url': only https:// (or file:///) key URLs" ;;
esac
command -v gpg >/dev/null || die "gpg is not installed"
command -v curl >/dev/null || die "curl is not installed"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
curl --fail --silent --show-error --location --proto '=https,file' --proto-redir '=https' \
    --max-time 120 --output "$work/key" "$url" || die "could not download $url"

# A throwaway keyring: --show-keys only parses the file, it imports nothing anywhere.
mkdir -m 0700 "$work/gnupg"
listing="$(gpg --homedir "$work/gnupg" --batch --no-autostart --with-colons --show-keys \
    "$work/key" 2>"$work/gpg.err")" || die "$url is not an OpenPGP public key: $(head -c 300 "$work/gpg.err")"

# Each "pub" record (a primary key) is followed by its own "fpr" record; subkeys ("sub") have
# theirs too, which are not what is pinned. Field 2 of "pub" is the validity: r revoked,
# e expired.
primaries="$(awk -F: '
    $1 == "pub" { primary = 1; validity = $2; next }
    $1 == "sub" { primary = 0; next }
    $1 == "fpr" && primary { print $10 ":" validity; primary = 0 }
' <<<"$listing")"
count="$(grep -c . <<<"$primaries" || true)"
((count == 1)) || die "$url holds $count primary keys, expected exactly 1"
got="${primaries%%:*}"
validity="${primaries#*:}"
[[ $got == "$want" ]] || die "fingerprint mismatch for $url: pinned $want, downloaded $got"
case "$validity" in
r) die "key $got from $url is revoked" ;;
e) die "key $got from $url has expired" ;;
esac

install -d -m 0755 "$(dirname "$dest")"
install -m 0644 "$work/key" "$dest.tmp"
mv -f "$dest.tmp" "$dest"
echo "verified key $got from $url -> $dest"
