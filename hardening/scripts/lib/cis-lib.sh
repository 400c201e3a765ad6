#!/bin/bash
# Shared helpers for hardening/scripts/cis-*.sh. Sourced, not run.
# Every helper is idempotent: it checks the current state first and changes only what differs,
# logging "ok" or "changed" so a second run shows nothing to do.
#
# CIS_ROOT (default empty = the running system): apply file changes below this directory
# instead of /. Package, service and kernel-module steps need the live system and are
# skipped (with a log line) when CIS_ROOT is set.

CIS_ROOT="${CIS_ROOT:-}"
CIS_ROOT="${CIS_ROOT%/}"
CIS_CHANGED=0

cis_log() {
    printf 'cis %s: %s\n' "${CIS_ID:?CIS_ID must be set by the script}" "$*"
}

cis_die() {
    cis_log "ERROR: $*" >&2
    exit 1
}

# Path on the target: /etc/x -> $CIS_ROOT/etc/x
cis_path() {
    printf '%s%s' "$CIS_ROOT" "$1"
}

cis_offline() {
    [[ -n $CIS_ROOT ]]
}

# ensure_perms PATH OWNER GROUP MODE: set owner, group and octal mode of an existing path.
# An absent path is left absent (the package that owns it is not installed).
ensure_perms() {
    local target owner=$2 group=$3 mode=$4 current
    target=$(cis_path "$1")
    if [[ ! -e $target ]]; then
        cis_log "ok: $1 absent, nothing to set"
        return 0
    fi
    current=$(stat -c '%U %G %a' -- "$target")
    if [[ $current == "$owner $group $(printf '%o' "$((8#$mode))")" ]]; then
        cis_log "ok: $1 is $owner:$group $mode"
        return 0
    fi
    chown "$owner:$group" -- "$target"
    chmod "$mode" -- "$target"
    cis_log "changed: $1 was '$current', now $owner:$group $mode"
}

# ensure_file PATH OWNER GROUP MODE: create an empty file if missing, then ensure_perms.
ensure_file() {
    local target
    target=$(cis_path "$1")
    if [[ ! -e $target ]]; then
        mkdir -p -- "$(dirname -- "$target")"
        : >"$target"
        cis_log "changed: created $1"
    fi
    ensure_perms "$@"
}

# ensure_absent PATH: remove a file if present.
ensure_absent() {
    local target
    target=$(cis_path "$1")
    if [[ -e $target || -L $target ]]; then
        rm -f -- "$target"
        cis_log "changed: removed $1"
    else
        cis_log "ok: $1 does not exist"
    fi
}

# ensure_key_value FILE KEY VALUE [HEADER]: make "KEY=VALUE" the one active setting of an
# INI-like file (journald.conf, firewalld.conf). Replaces the first (possibly commented) KEY
# line and drops later active ones, else appends. HEADER (e.g. "[Journal]") starts a new file.
# Sets CIS_CHANGED=1 when it changed the file.
ensure_key_value() {
    local target key=$2 value=$3 header=${4:-} active tmp
    target=$(cis_path "$1")
    if [[ ! -e $target ]]; then
        mkdir -p -- "$(dirname -- "$target")"
        if [[ -n $header ]]; then printf '%s\n' "$header" >"$target"; else : >"$target"; fi
        cis_log "changed: created $1"
    fi
    active=$(grep -E "^[[:space:]]*${key}[[:space:]]*=" "$target" || true)
    if [[ $active == "${key}=${value}" ]]; then
        cis_log "ok: $1 has $key=$value"
        return 0
    fi
    tmp=$(mktemp "${target}.XXXXXX")
    awk -v key="$key" -v value="$value" '
        BEGIN { re = "^[[:space:]]*#?[[:space:]]*" key "[[:space:]]*=" }
        $0 ~ re && !done { print key "=" value; done = 1; next }
        $0 ~ re && $0 !~ /^[[:space:]]*#/ { next }
        { print }
        END { if (!done) print key "=" value }
    ' "$target" >"$tmp"
    cat -- "$tmp" >"$target"
    rm -f -- "$tmp"
    CIS_CHANGED=1
    cis_log "changed: $1 now has $key=$value"
}

# ensure_module_disabled MODULE: modprobe.d entry so the module can never load, and unload it.
ensure_module_disabled() {
    local module=$1 conf want
    conf="/etc/modprobe.d/cis-${module}.conf"
    want=$(printf 'install %s /bin/false\nblacklist %s' "$module" "$module")
    if [[ -f $(cis_path "$conf") && $(<"$(cis_path "$conf")") == "$want" ]]; then
        cis_log "ok: $conf disables $module"
    else
        mkdir -p -- "$(cis_path /etc/modprobe.d)"
        printf '%s\n' "$want" >"$(cis_path "$conf")"
        chmod 0644 -- "$(cis_path "$conf")"
        cis_log "changed: wrote $conf"
    fi
    if cis_offline; then
        cis_log "skipped: unloading $module (CIS_ROOT set)"
    elif grep -q "^${module} " /proc/modules; then
        modprobe -r "$module" || cis_die "$module is loaded and cannot be unloaded"
        cis_log "changed: unloaded $module"
    fi
}

# ensure_packages_absent NAME...: remove whichever of the named packages is installed
# (give the EL and the Debian name: the stand-in guest is Debian).
ensure_packages_absent() {
    local name
    if cis_offline; then
        cis_log "skipped: package removal of $* (CIS_ROOT set)"
        return 0
    fi
    for name in "$@"; do
        if command -v rpm >/dev/null 2>&1 && rpm -q --quiet "$name"; then
            if command -v dnf >/dev/null 2>&1; then dnf -y -q remove "$name"; else yum -y -q remove "$name"; fi
            cis_log "changed: removed package $name"
        elif command -v dpkg-query >/dev/null 2>&1 &&
            [[ $(dpkg-query -W -f '${Status}' "$name" 2>/dev/null || true) == "install ok installed" ]]; then
            DEBIAN_FRONTEND=noninteractive apt-get -y -q purge "$name"
            cis_log "changed: removed package $name"
        else
            cis_log "ok: package $name is not installed"
        fi
    done
}

# ensure_unit_masked UNIT: stop, disable and mask a systemd unit if it is installed.
ensure_unit_masked() {
    local unit=$1 state
    if cis_offline; then
        cis_log "skipped: masking $unit (CIS_ROOT set)"
        return 0
    fi
    state=$(systemctl show -p LoadState --value "$unit" 2>/dev/null || true)
    case $state in
    masked) cis_log "ok: $unit is masked" ;;
    not-found | "") cis_log "ok: $unit is not installed" ;;
    *)
        systemctl disable --now "$unit" >/dev/null 2>&1 || true
        systemctl mask "$unit" >/dev/null
        cis_log "changed: $unit stopped and masked"
        ;;
    esac
}

# restart_if_changed UNIT: apply a changed configuration (CIS_CHANGED=1) to a running service.
restart_if_changed() {
    if [[ ${CIS_CHANGED:-0} != 1 ]]; then
        return 0
    elif cis_offline; then
        cis_log "skipped: restart of $1 (CIS_ROOT set)"
    elif systemctl is-active --quiet "$1"; then
        systemctl restart "$1"
        cis_log "changed: restarted $1"
    fi
}

# report_duplicates WHAT FILE FIELD: fail if the colon-separated FILE has duplicate FIELD values.
report_duplicates() {
    local what=$2 file dups
    file=$(cis_path "$1")
    dups=$(cut -d: -f"$3" -- "$file" | sort | uniq -d | paste -sd, -)
    if [[ -n $dups ]]; then
        cis_die "duplicate $what in $1: $dups (resolve by hand; no automatic fix)"
    fi
    cis_log "ok: no duplicate $what in $1"
}
