"""Command line: apply (the boot unit), status, check-disk, image-init, validate."""

import argparse
import fcntl
import json
import os
import sys
from typing import Any, Dict, List, Optional

from appcore import VERSION, disks, galera, hostkeys, lifecycle, roundrobin, rrdata, units
from appcore.apply import Applier
from appcore.catalogue import Catalogue, load_catalogue
from appcore.errors import AppcoreError, DiskError, RoleError
from appcore.hostfs import Host
from appcore.runner import Runner
from appcore.state import (
    IMAGE_JSON,
    PIN_JSON,
    STATE_JSON,
    now,
    read_pin,
    read_state,
    write_image_json,
    write_state,
)

DEFAULT_CATALOGUE = "/usr/share/appcore/roles.json"
EXTRA_ROLES = "/etc/appcore/roles.d"
EXTRA_TEMPLATES = "/etc/appcore/templates"


def stderr_is_journal() -> bool:
    """True when stderr is the journal stream systemd connected (JOURNAL_STREAM=dev:inode)."""
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return os.environ.get("JOURNAL_STREAM") == f"{st.st_dev}:{st.st_ino}"


def log(level: str, message: str) -> None:
    """stderr goes to the journal under the unit; a <N> prefix sets the syslog priority there."""
    prefix = {"err": "<3>", "warning": "<4>", "info": "<6>"}[level]
    if not stderr_is_journal():
        prefix = level + ": "
    for line in message.splitlines() or [""]:
        sys.stderr.write(f"{prefix}appcore: {line}\n")
    sys.stderr.flush()


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="appcore", description="App-Core role controller " + VERSION)
    ap.add_argument("--root", default="/", help="host root prefix (tests); default /")
    ap.add_argument("--catalogue", help="roles.json (default <root>" + DEFAULT_CATALOGUE + ")")
    sub = ap.add_subparsers(dest="command")
    p = sub.add_parser("apply", help="discover the role and configure the node (boot unit)")
    p.add_argument("--dry-run", action="store_true", help="show what would change; change nothing")
    p.add_argument(
        "--force-role-change",
        action="store_true",
        help="accept a role different from the pinned one (only with blank data disks)",
    )
    p.add_argument("--disk-wait", type=int, default=30, help="seconds to wait for a data disk")
    p = sub.add_parser("status", help="role, where it came from and what the last run did")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("check-disk", help="exit 0 only if the disk SERIAL is ours (mount gate)")
    p.add_argument("serial")
    p = sub.add_parser("image-init", help="record the image family in /etc/appcore/image.json")
    p.add_argument("--family", required=True)
    p.add_argument("--check", action="store_true", help="only check the family name")
    sub.add_parser("validate", help="validate the role catalogue and templates")
    p = sub.add_parser("ready", help="is the role ready by its own meaning (exit 0 if so)")
    p.add_argument("--json", action="store_true")
    sub.add_parser(
        "poststart",
        help="after a planned start: a Galera member joins, a Redpanda broker leaves maintenance",
    )
    sub.add_parser(
        "prestop",
        help="before a planned stop: PXC maintenance, ScyllaDB drain, Redpanda maintenance, "
        "Hazelcast cluster-safe",
    )
    p = sub.add_parser("hostkeys", help="print the SSH host key fingerprints (boot unit)")
    p.add_argument("--console", help="also write them to this terminal, e.g. /dev/ttyS0")
    p = sub.add_parser(
        "rr", help="this round-robin member: its mode and its data, as the fleet's rotation asks"
    )
    p.add_argument(
        "action",
        choices=("mode", "backup", "purge", "restore"),
        help="mode: print or set; backup: a physical backup to stdout; purge: an empty data "
        "directory; restore: the backup on stdin in place of the data directory",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("--writable", action="store_true", help="the group's active member")
    group.add_argument("--read-only", action="store_true", help="a member holding past data")
    p.add_argument("--confirm", metavar="HOSTNAME", help="purge/restore: this member's hostname")
    p = sub.add_parser("galera", help="this Galera member: position, bootstrap, join, ready")
    p.add_argument("action", choices=("position", "bootstrap", "join", "ready"))
    p.add_argument("--flavour", choices=sorted(galera.FLAVOURS), help="default: the role's")
    p.add_argument("--defaults-file", help="server and client config (default: the role's)")
    p.add_argument("--datadir", help="holds grastate.dat (default: the role's)")
    p.add_argument("--expect", help="bootstrap: UUID:SEQNO the fleet chose this member at")
    p.add_argument("--members", type=int, default=1, help="ready: members of the cluster")
    return ap


def galera_config(host: Host, args: argparse.Namespace) -> Dict[str, str]:
    """The member's settings: the pinned role's catalogue entry, each overridable."""
    config: Dict[str, str] = {}
    if not (args.flavour and args.defaults_file and args.datadir):
        role = lifecycle.pinned_role(host, open_catalogue(host, args.catalogue))
        if role.galera is None:
            raise galera.GaleraError(f"role {role.id} is not a Galera member")
        config.update(role.galera)
    for key in ("flavour", "defaults_file", "datadir"):
        if getattr(args, key):
            config[key] = getattr(args, key)
    return config


def galera_member(host: Host, runner: Runner, args: argparse.Namespace) -> galera.Member:
    return galera.member_of(runner, galera_config(host, args), host.path)


def cmd_ready(host: Host, runner: Runner, args: argparse.Namespace) -> int:
    report = lifecycle.ready(host, runner, open_catalogue(host, args.catalogue))
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        print("ready" if report["ready"] else "not ready: " + "; ".join(report["problems"]))
    return 0 if report["ready"] else 3


def cmd_rr(host: Host, runner: Runner, args: argparse.Namespace) -> int:
    """Print (JSON) or set this round-robin member's mode; back up, purge or restore its data."""
    role = lifecycle.pinned_role(host, open_catalogue(host, args.catalogue))
    if role.round_robin is None:
        raise RoleError(f"role {role.id} is not a round-robin member")
    if args.action != "mode" and (args.writable or args.read_only):
        raise RoleError(f"rr {args.action}: --writable/--read-only belong to rr mode")
    if args.action in ("mode", "backup") and args.confirm is not None:
        raise RoleError(f"rr {args.action}: --confirm belongs to rr purge and rr restore")
    report: Dict[str, Any]
    if args.action == "backup":
        sys.stdout.flush()
        rrdata.backup(host, runner, role, sys.stdout.buffer)
        return 0
    if args.action in ("purge", "restore"):
        if args.action == "purge":
            report = rrdata.purge(host, runner, role, args.confirm or "")
        else:
            report = rrdata.restore(host, runner, role, args.confirm or "", sys.stdin.buffer)
        log("info", "round-robin data {}: {}".format(report["data"], report["datadir"]))
    elif args.writable or args.read_only:
        report = roundrobin.set_mode(host, runner, role, read_only=bool(args.read_only))
        log("info", "round-robin mode: " + ("read-only" if args.read_only else "writable"))
    else:
        report = {"read_only": roundrobin.read_mode(host, role)}
    print(json.dumps(report, sort_keys=True))
    return 0


def cmd_galera(host: Host, runner: Runner, args: argparse.Namespace) -> int:
    """One Galera step; prints JSON (position, ready) and exits 0 only on success/ready."""
    member = galera_member(host, runner, args)
    if args.action == "ready":
        status = member.status()
        report = galera.ready_report(
            status, args.members, not status and bool(member.server_pids())
        )
        print(json.dumps(report, sort_keys=True))
        return 0 if report["ready"] else 3
    if args.action == "position":
        print(json.dumps(member.locked_report(), sort_keys=True))
        return 0
    if args.action == "bootstrap":
        uuid, sep, seqno = (args.expect or "").rpartition(":")
        if not sep or not uuid or not seqno.lstrip("-").isdigit():
            raise galera.GaleraError(
                f"bootstrap needs --expect=UUID:SEQNO (from the fleet), got {args.expect!r}"
            )
        member.bootstrap(galera.Position(uuid, int(seqno), False, "fleet"))
        log("info", f"bootstrapped a new Primary component at {uuid}:{seqno}")
        return 0
    member.join()
    log("info", "started to join the cluster")
    return 0


def open_catalogue(host: Host, path: Optional[str]) -> Catalogue:
    return load_catalogue(
        path or host.path(DEFAULT_CATALOGUE), host.path(EXTRA_ROLES), host.path(EXTRA_TEMPLATES)
    )


def cmd_apply(host: Host, runner: Runner, args: argparse.Namespace) -> int:
    host.makedirs("/run/appcore")
    with open(host.path("/run/appcore/lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a manual run and the boot unit never overlap
        state: Dict[str, Any] = {
            "version": VERSION,
            "started": now(),
            "status": "failed",
            "dry_run": args.dry_run,
        }
        code = 0
        try:
            catalogue = open_catalogue(host, args.catalogue)
            applier = Applier(
                host,
                runner,
                catalogue,
                dry_run=args.dry_run,
                force=args.force_role_change,
                disk_wait=args.disk_wait,
            )
            state = applier.state
            applier.run()
        except AppcoreError as exc:
            state.update(
                status="failed", error=str(exc), error_type=type(exc).__name__, finished=now()
            )
            log("err", "configuring nothing more: " + str(exc))
            code = exc.exit_code
        for note in state.get("notes", []):
            log("warning", note)
        for change in state.get("changes", []):
            log("info", change)
        if not args.dry_run:
            write_state(host, state)
        summary = {k: state.get(k) for k in ("status", "role", "source", "family", "error")}
        summary["changes"] = len(state.get("changes", []))
        print(json.dumps(summary, sort_keys=True))
        if args.dry_run:
            print(json.dumps(state, indent=2, sort_keys=True))
        return code


def cmd_status(host: Host, args: argparse.Namespace) -> int:
    state = read_state(host)
    try:
        pin = read_pin(host)
    except PermissionError:
        pin = {"role": "? (run as root to read " + PIN_JSON + ")"}
    if args.json:
        print(json.dumps({"state": state, "pin": pin}, indent=2, sort_keys=True))
    else:
        print(render_status(state, pin))
    return 0 if state and state.get("status") == "configured" else 3


def render_status(state: Optional[Dict[str, Any]], pin: Optional[Dict[str, Any]]) -> str:
    if state is None:
        lines = [f"status:  never run this boot ({STATE_JSON} missing)"]
    else:
        lines = [
            "status:  {} ({} .. {})".format(
                state.get("status"), state.get("started"), state.get("finished")
            ),
            "role:    {} (from {}: {})".format(
                state.get("role", "-"), state.get("source", "-"), state.get("source_detail", "-")
            ),
            "family:  {}".format(state.get("family", "-")),
        ]
        for disk in state.get("disks") or []:
            lines.append(
                "disk:    {serial} {device} -> {mount}: {decision} ({reason})".format(**disk)
            )
        if state.get("selinux"):
            lines.append("selinux: " + state["selinux"])
        if state.get("error"):
            lines.append("error:   " + state["error"])
        idle = "nothing (already in place)" if state.get("status") == "configured" else "nothing"
        changes = state.get("changes") or [idle]
        lines.extend("done:    " + c for c in changes)
    lines.append(
        "pinned:  {}".format(
            "{} since {} (from {})".format(pin["role"], pin.get("pinned_at"), pin.get("source"))
            if pin
            else "no (" + PIN_JSON + ")"
        )
    )
    return "\n".join(lines)


def cmd_hostkeys(host: Host, args: argparse.Namespace) -> int:
    """The block on stdout (journal) and on the console the fleet reads; exit 1 without keys."""
    text, problems = hostkeys.block(host)
    for problem in problems:
        log("err", problem)
    if not text:
        return 1
    sys.stdout.write(text)
    if args.console:
        # "\r\n": the serial line may not translate newlines; the fleet accepts both.
        with open(host.path(args.console), "w") as console:
            console.write(text.replace("\n", "\r\n"))
    return 0


def cmd_check_disk(host: Host, runner: Runner, args: argparse.Namespace) -> int:
    catalogue = open_catalogue(host, args.catalogue)
    disk = catalogue.disks.get(args.serial)
    if disk is None:
        raise DiskError(
            f"unknown data disk serial {args.serial!r}; known: {sorted(catalogue.disks)}"
        )
    decision = disks.check_ours(
        host.path(units.by_id(disk.serial)), disk.label, disk.fstypes, runner
    )
    log("info", f"{units.by_id(disk.serial)}: {decision.reason}")
    return 0


def main(argv: Optional[List[str]] = None, runner: Optional[Runner] = None) -> int:
    args = parser().parse_args(argv)
    if not args.command:
        parser().print_help()
        return 2
    host = Host(args.root)
    runner = runner or Runner()
    try:
        if args.command == "apply":
            return cmd_apply(host, runner, args)
        if args.command == "status":
            return cmd_status(host, args)
        if args.command == "check-disk":
            return cmd_check_disk(host, runner, args)
        if args.command == "galera":
            return cmd_galera(host, runner, args)
        if args.command == "rr":
            return cmd_rr(host, runner, args)
        if args.command == "ready":
            return cmd_ready(host, runner, args)
        if args.command == "hostkeys":
            return cmd_hostkeys(host, args)
        if args.command in ("poststart", "prestop"):
            step = lifecycle.poststart if args.command == "poststart" else lifecycle.prestop
            done = step(host, runner, open_catalogue(host, args.catalogue))
            log("info", f"{args.command}: {done or 'nothing to do for this role'}")
            return 0
        catalogue = open_catalogue(host, args.catalogue)
        if args.command == "image-init":
            write_image_json(host, catalogue, args.family, check_only=args.check)
            log(
                "info",
                "image family {} {}".format(
                    args.family, "is valid" if args.check else "written to " + IMAGE_JSON
                ),
            )
        else:
            log(
                "info",
                f"catalogue OK: {len(catalogue.roles)} roles, {len(catalogue.families)} "
                f"families, {len(catalogue.disks)} data disks",
            )
        return 0
    except AppcoreError as exc:
        log("err", str(exc))
        return exc.exit_code
