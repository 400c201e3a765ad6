"""A round-robin database member (MYSQL_RR_7D, MYSQL_RR_3M): read-only unless the fleet's
rotation made it the active member of its group. The fleet says so with
`appcore rr mode --writable|--read-only`, never the clock here (fleet.rotate may refuse a
switch: the old active member then keeps the writes).

The mode is a server option file in the role's config directory, on the data disk: it holds
across reboots and a new overlay, and the server reads it at start (`!include`). apply creates
it read-only when it is missing and never rewrites it; only `rr mode` changes it, and changes
the running server too."""

import re
from typing import TYPE_CHECKING, Any, Dict, List, NamedTuple, Optional

from appcore.errors import RoleError
from appcore.hostfs import Host
from appcore.runner import Runner

if TYPE_CHECKING:  # the catalogue validates round_robin.kind against KINDS: no import cycle
    from appcore.catalogue import Role

KINDS = ("mysql",)  # the closed set of round-robin kinds (catalogue key "round_robin.kind")


class Tool(NamedTuple):
    backup: List[str]  # streams xbstream to stdout
    extract: List[str]  # reads xbstream on stdin into the directory given after it
    prepare: List[str]  # makes an extracted backup consistent (--target-dir after it)
    # Initialises an empty data directory (--datadir after it); None: the server's own unit
    # does so at start (PXC's mysql.service runs mysqld --initialize on an empty datadir).
    init: Optional[List[str]]


# The closed set of backup tools (catalogue "round_robin.tool"), by server: how its data is
# streamed, unpacked, made consistent and started empty (appcore.rrdata).
TOOLS: Dict[str, Tool] = {
    "xtrabackup": Tool(
        ["xtrabackup", "--backup", "--stream=xbstream"],
        ["xbstream", "-x", "-C"],
        ["xtrabackup", "--prepare"],
        None,
    ),
    "mariabackup": Tool(
        ["mariabackup", "--backup", "--stream=xbstream"],
        ["mbstream", "-x", "-C"],
        ["mariabackup", "--prepare"],
        ["mariadb-install-db", "--user=mysql", "--auth-root-authentication-method=socket"],
    ),
}
MODE_FILE = "appcore-rr-mode.cnf"
_SETTING = re.compile(r"^\s*read_only\s*=\s*(ON|OFF)\s*$", re.MULTILINE)


def mode_path(role: "Role") -> str:
    return role.config_dir + "/" + MODE_FILE


def mode_text(read_only: bool) -> str:
    return (
        "# Written by appcore (`appcore rr mode`, asked by the fleet's rotation); kept across\n"
        "# boots. A member is writable only while it is its group's active member.\n"
        "[mysqld]\nread_only={}\n".format("ON" if read_only else "OFF")
    )


def read_mode(host: Host, role: "Role") -> Optional[bool]:
    """True: read-only, False: writable, None: no mode file yet."""
    path = mode_path(role)
    if not host.exists(path):
        return None
    found = _SETTING.findall(host.read_text(path))
    if len(found) != 1:
        raise RoleError(f"{path}: expected one line read_only=ON|OFF (written by appcore rr mode)")
    return bool(found[0] == "ON")


def _client(role: "Role") -> List[str]:
    assert role.round_robin is not None
    return ["mysql", "--defaults-file=" + role.round_robin["defaults_file"], "-N", "-B", "-e"]


def server_read_only(runner: Runner, role: "Role") -> Optional[bool]:
    """The running server's @@GLOBAL.read_only; None when it does not answer."""
    done = runner.run(_client(role) + ["SELECT @@GLOBAL.read_only"], check=False)
    if done.returncode != 0 or done.stdout.strip() not in ("0", "1"):
        return None
    return done.stdout.strip() == "1"


def set_mode(host: Host, runner: Runner, role: "Role", read_only: bool) -> Dict[str, Any]:
    """Record the mode, then apply it to the running server (a stopped one reads it at start).
    Raises RoleError when the running server refused it: the file already says the new mode."""
    host.write_text(mode_path(role), mode_text(read_only), 0o644)
    service = role.services[0]
    running = runner.run(["systemctl", "is-active", service], check=False).returncode == 0
    if running:
        value = "ON" if read_only else "OFF"
        done = runner.run(_client(role) + [f"SET GLOBAL read_only = {value}"], check=False)
        if done.returncode != 0:
            raise RoleError(
                f"{mode_path(role)} now says read_only={value}, but the running server refused "
                f"it: {(done.stderr or done.stdout).strip()[-300:]}"
            )
    return {"read_only": read_only, "server": "set" if running else f"{service} not running"}


def problems(host: Host, runner: Runner, role: "Role") -> List[str]:
    """What keeps this member from being ready: a server that does not answer SQL, or one
    whose read_only is not the mode the fleet set."""
    wanted = read_mode(host, role)
    if wanted is None:
        return [f"no {mode_path(role)} (appcore apply writes it at boot)"]
    actual = server_read_only(runner, role)
    if actual is None:
        return [f"{role.services[0]} does not answer SQL"]
    if actual != wanted:
        return [
            "read_only is {} but {} says {} (appcore rr mode)".format(
                "ON" if actual else "OFF", mode_path(role), "ON" if wanted else "OFF"
            )
        ]
    return []
