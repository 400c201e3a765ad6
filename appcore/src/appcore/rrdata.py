"""A round-robin member's data, as the fleet's rotation moves it: `appcore rr backup` streams
a physical backup to stdout (the fleet host puts it into the store: no store credential on
the VM), `appcore rr purge` gives the member an empty data directory, `appcore rr restore`
replaces it with a backup read from stdin.

Each works on the role's own data directory and service (catalogue `round_robin`), with the
tool of its server: XtraBackup for Percona XtraDB Cluster / Percona Server, Mariabackup on the
stand-in. The new data directory is made beside the old one on the data disk and swapped in
by rename, so a purge or restore that fails or is killed leaves the member's data where it
was (or, after the swap, under `<datadir>.replaced`, removed only once the server started on
the new one). Both are destructive: they run only when told this member's hostname
(`--confirm=HOSTNAME`), as the fleet does after it proved a verified backup."""

import os
import shutil
from typing import IO, TYPE_CHECKING, Dict, List

from appcore.discovery import current_hostname
from appcore.errors import RoleError
from appcore.hostfs import Host
from appcore.roundrobin import TOOLS
from appcore.runner import Runner

if TYPE_CHECKING:
    from appcore.catalogue import Role


OWNER = "mysql:mysql"


def _settings(role: "Role") -> Dict[str, str]:
    if role.round_robin is None:
        raise RoleError(f"role {role.id} is not a round-robin member")
    return role.round_robin


def _with_defaults(argv: List[str], defaults_file: str) -> List[str]:
    # Both servers' tools take --defaults-file only as their first option.
    return [argv[0], "--defaults-file=" + defaults_file] + argv[1:]


def _confirm(host: Host, role: "Role", confirm: str, what: str) -> None:
    name = current_hostname(host)
    if confirm != name:
        raise RoleError(
            "{} replaces this member's data directory {}: it runs only with "
            "--confirm={} (this member's hostname), got {!r}".format(
                what, _settings(role)["datadir"], name, confirm
            )
        )


def backup(host: Host, runner: Runner, role: "Role", out: IO[bytes]) -> None:
    """Stream a consistent physical backup of the running server to `out`; the tool's report
    (with the binlog position the fleet records) goes to stderr as it is."""
    rr = _settings(role)
    tool = TOOLS[rr["tool"]]
    scratch = host.path(rr["datadir"] + ".backup-tmp")  # the tool's own temporary files
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch, mode=0o700)
    try:
        argv = _with_defaults(tool.backup, rr["defaults_file"]) + ["--target-dir=" + scratch]
        runner.pipe(argv, stdin=None, stdout=out, stderr_through=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def has_database(host: Host, role: "Role") -> bool:
    datadir = host.path(_settings(role)["datadir"])
    return any(os.path.exists(os.path.join(datadir, f)) for f in ("ibdata1", "mysql"))


def prepare(host: Host, runner: Runner, role: "Role") -> bool:
    """Before the server's first start on a data disk: the tmp and log directories the
    role's config puts beside the data directory, and, where the server's unit does not
    initialise an empty one, an initialised data directory (made aside, renamed into place).
    True if it initialised one."""
    rr = _settings(role)
    parent = os.path.dirname(rr["datadir"].rstrip("/"))
    for sub in ("tmp", "log"):
        if not host.exists(parent + "/" + sub):
            os.makedirs(host.path(parent + "/" + sub), mode=0o750)
            runner.run(["chown", OWNER, host.path(parent + "/" + sub)])
    if TOOLS[rr["tool"]].init is None or has_database(host, role):
        return False
    staged = _initialised(host, runner, role, rr["datadir"] + ".new")
    real = host.path(rr["datadir"])
    if os.path.isdir(real) and not os.listdir(real):
        os.rmdir(real)
    os.rename(staged, real)
    return True


def purge(host: Host, runner: Runner, role: "Role", confirm: str) -> Dict[str, str]:
    """An empty (initialised) data directory in place of the member's, the server started."""
    _confirm(host, role, confirm, "purge")
    rr = _settings(role)
    staged = _initialised(host, runner, role, rr["datadir"] + ".new")
    _swap_in(host, runner, role, staged)
    return {"datadir": rr["datadir"], "data": "purged"}


def _initialised(host: Host, runner: Runner, role: "Role", guest_path: str) -> str:
    """A new data directory at guest_path for the server's user, initialised by the tool
    where the server's unit does not; its real path."""
    rr = _settings(role)
    init = TOOLS[rr["tool"]].init
    staged = _fresh(host.path(guest_path))
    try:
        if init is not None:
            runner.run(_with_defaults(init, rr["defaults_file"]) + ["--datadir=" + staged])
        runner.run(["chown", "-R", OWNER, staged])
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return staged


def restore(
    host: Host, runner: Runner, role: "Role", confirm: str, stream: IO[bytes]
) -> Dict[str, str]:
    """The backup on `stream` unpacked and prepared beside the data directory, then swapped
    in and the server started. Until the swap the member keeps its data and keeps running."""
    _confirm(host, role, confirm, "restore")
    rr = _settings(role)
    tool = TOOLS[rr["tool"]]
    staged = _fresh(host.path(rr["datadir"] + ".restore"))
    try:
        runner.pipe(tool.extract + [staged], stdin=stream, stdout=None)
        if not os.listdir(staged):
            raise RoleError("restore: the stream on stdin held no backup (nothing unpacked)")
        runner.run(tool.prepare + ["--target-dir=" + staged])
        runner.run(["chown", "-R", OWNER, staged])
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    _swap_in(host, runner, role, staged)
    return {"datadir": rr["datadir"], "data": "restored"}


def _fresh(path: str) -> str:
    shutil.rmtree(path, ignore_errors=True)  # left by a run that was killed before its swap
    os.makedirs(path, mode=0o750)
    return path


def _swap_in(host: Host, runner: Runner, role: "Role", staged: str) -> None:
    """Stop the server, the old data directory aside, `staged` in its place, start; the old
    one is removed only once the server runs on the new one."""
    real = host.path(_settings(role)["datadir"])
    old = real + ".replaced"
    service = role.services[0]
    runner.run(["systemctl", "stop", service])
    if os.path.lexists(real):
        if os.path.lexists(old):  # a swap killed after this step: it was already replaced
            shutil.rmtree(old)
        os.rename(real, old)
    os.rename(staged, real)
    runner.run(["systemctl", "start", service])
    shutil.rmtree(old, ignore_errors=True)
