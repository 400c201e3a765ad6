"""What the role means by ready, and the steps around a planned stop: asked by the fleet
(`appcore ready --json`, `appcore prestop`, `appcore poststart`) so that its rollout waits on
the cluster's own health, not on systemd's "active"."""

from typing import Any, Dict, List, Optional

from appcore import galera, roleready, roundrobin
from appcore.catalogue import Catalogue, Role
from appcore.errors import RoleError
from appcore.hostfs import Host
from appcore.runner import Runner
from appcore.state import read_pin, read_state


def pinned_role(host: Host, catalogue: Catalogue) -> Role:
    pin = read_pin(host)
    if pin is None or pin.get("role") not in catalogue.roles:
        raise RoleError("no role is pinned on this node (appcore apply has not configured it)")
    return catalogue.roles[str(pin["role"])]


def ready(host: Host, runner: Runner, catalogue: Catalogue) -> Dict[str, Any]:
    """{"ready": bool, "problems": [...], "role": ...}: configured this boot, and then what the
    role means by ready (a Galera member: Primary, Synced, every member in; a ScyllaDB, Redpanda
    or Hazelcast member: what its cluster answers, appcore.roleready; and every role service
    active)."""
    state = read_state(host) or {}
    if state.get("status") != "configured":
        problem = "appcore status {}{}".format(
            state.get("status", "missing"), ": " + state["error"] if state.get("error") else ""
        )
        return {"ready": False, "problems": [problem], "role": state.get("role")}
    role = pinned_role(host, catalogue)
    report: Dict[str, Any] = {"role": role.id}
    if role.galera is not None:
        member = galera.member_of(runner, role.galera, host.path)
        status = member.status()
        starting = not status and bool(member.server_pids())
        report.update(galera.ready_report(status, int(state.get("members", 1)), starting))
        return report
    problems: List[str] = []
    if role.round_robin is not None:  # answers SQL, in the mode the fleet set
        problems += roundrobin.problems(host, runner, role)
    if role.readiness is not None:  # the cluster's view first: "active" is not "in the cluster"
        asked = role_member(runner, role, state)
        problems += asked.problems()
        due = asked.poststart_needed()
        if due:  # the fleet runs `appcore poststart` when it sees this
            report["poststart"] = due
    for service in role.services:
        done = runner.run(["systemctl", "is-active", service], check=False)
        if done.returncode != 0:
            problems.append(f"{service} is {done.stdout.strip() or 'not active'}")
    report.update(ready=not problems, problems=problems)
    return report


def role_member(runner: Runner, role: Role, state: Dict[str, Any]) -> roleready.Member:
    """This VM's ScyllaDB/Redpanda/Hazelcast member, with the address and peers of this boot."""
    peers = state.get("peers")
    if not isinstance(peers, list) or not state.get("ip"):
        raise RoleError("appcore state has no ip and peers for this member (apply at boot?)")
    return roleready.Member(str(role.readiness), runner, str(state["ip"]), peers)


def poststart(host: Host, runner: Runner, catalogue: Catalogue) -> Optional[str]:
    """After the fleet started this VM on a new version: a Galera member joins the running
    Primary component (the fleet checked that it exists); a Redpanda broker leaves maintenance
    mode. Returns what was done."""
    role = pinned_role(host, catalogue)
    if role.readiness is not None:
        return role_member(runner, role, read_state(host) or {}).poststart()
    if role.galera is None:
        return None
    galera.member_of(runner, role.galera, host.path).join()
    return "joined the Galera cluster"


def prestop(host: Host, runner: Runner, catalogue: Catalogue) -> Optional[str]:
    """Before the fleet stops this VM: a PXC member goes into maintenance, so that proxies
    stop sending it work before it leaves; ScyllaDB drains, a Redpanda broker enters
    maintenance mode, Hazelcast waits until its partitions are safe."""
    role = pinned_role(host, catalogue)
    if role.readiness is not None:
        return role_member(runner, role, read_state(host) or {}).prestop()
    if role.galera is None:
        return None
    member = galera.member_of(runner, role.galera, host.path)
    if not member.flavour.maint_mode or not member.is_running():
        return None
    runner.run(
        [
            "mysql",
            f"--defaults-file={member.defaults_file}",
            "-e",
            "SET GLOBAL pxc_maint_mode='MAINTENANCE'",
        ]
    )
    return "pxc_maint_mode=MAINTENANCE"
