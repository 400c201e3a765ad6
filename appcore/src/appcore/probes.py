"""Role-aware readiness and pre-stop probes for ScyllaDB, Redpanda and Hazelcast members.

"The service is active" says nothing about the cluster: a member can run while it joins,
while it sits alone in a cluster of its own, or while its peers see it down. Each probe
takes the answers a member gives (nodetool text, admin/REST JSON already parsed) and
returns the problems that must clear before the next member may go down: an empty list
means ready. The probes only read answers; asking the servers is the caller's job.

Answer formats are recorded in tests/unit/appcore/recordings (its README names the sources).
"""

import re
from typing import Any, Dict, List, NamedTuple, Sequence

UNREACHABLE = "UNREACHABLE"  # schema_versions key of live hosts that did not answer
_ROW = re.compile(r"^([UDX?])([NLJMS?])\s+(\S+)\s+(.*)$")
_HOST_ID = re.compile(r"\b([0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12})\b", re.IGNORECASE)
_STATUS = {"U": "up", "D": "down", "X": "excluded", "?": "unknown"}
_STATE = {"N": "normal", "L": "leaving", "J": "joining", "M": "moving", "S": "stopped"}


class NodeRow(NamedTuple):
    """One node line of `nodetool status`, as the queried node sees that node."""

    datacenter: str
    status: str  # U up, D down, X excluded
    state: str  # N normal, L leaving, J joining, M moving
    address: str
    host_id: str  # "" when the line has none
    rack: str

    @property
    def code(self) -> str:
        """The two letters nodetool prints, e.g. "UN"."""
        return self.status + self.state

    def describe(self) -> str:
        """The letters with their meaning, e.g. "DN (down, normal)"."""
        status = _STATUS.get(self.status, "?")
        return f"{self.code} ({status}, {_STATE.get(self.state, 'unknown')})"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def parse_nodetool_status(text: str) -> List[NodeRow]:
    """The node lines of `nodetool status` output, in order, with their datacenter."""
    rows: List[NodeRow] = []
    datacenter = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("Datacenter:"):
            datacenter = line.split(":", 1)[1].strip()
            continue
        match = _ROW.match(line)
        if not match:
            continue
        status, state, address, rest = match.groups()
        host = _HOST_ID.search(rest)
        after = rest[host.end() :].split() if host else rest.split()[-1:]
        host_id = host.group(1) if host else ""
        rows.append(NodeRow(datacenter, status, state, address, host_id, "".join(after[:1])))
    return rows


def scylla_ready(
    nodetool_status_text: str,
    native_transport: Any,
    schema_versions: Any,
    own_address: str,
    members: Sequence[str],
) -> List[str]:
    """Problems before a ScyllaDB member counts as in the cluster and serving.

    nodetool_status_text: `nodetool status` run on this member; native_transport: the JSON
    answer of GET /storage_service/native_transport; schema_versions: the JSON answer of GET
    /storage_proxy/schema_versions ([{"key": version, "value": [hosts]}]); members: the
    addresses the fleet expects, own_address among them.
    """
    problems: List[str] = []
    rows = {row.address: row for row in parse_nodetool_status(nodetool_status_text)}
    own = rows.get(own_address)
    if own is None:
        problems.append(f"this node ({own_address}) is not in nodetool status")
    elif own.code != "UN":
        problems.append(f"this node ({own_address}) is {own.describe()}, not UN")
    missing = [m for m in members if m not in rows]
    if [m for m in missing if m != own_address]:
        listed = len(members) - len(missing)
        problems.append(
            f"{listed} of {len(members)} members in nodetool status; missing: " + ", ".join(missing)
        )
    for address in members:
        row = rows.get(address)
        if address != own_address and row is not None and row.code != "UN":
            problems.append(f"member {address} is {row.describe()} as this node sees it")
    for address in rows:
        if address not in members:
            problems.append(f"nodetool status lists {address}, not an expected member")
    if native_transport is not True:
        problems.append("native transport (CQL) is not running on this node")
    answer = schema_versions if isinstance(schema_versions, list) else []
    versions = [v for v in answer if v.get("key") != UNREACHABLE]
    for entry in answer:
        if entry.get("key") == UNREACHABLE:
            problems.append("schema check unreachable on " + ", ".join(entry.get("value") or []))
    if not versions:
        problems.append("no schema version reported")
    elif len(versions) > 1:
        where = "; ".join(f"{v.get('key')} on {', '.join(v.get('value') or [])}" for v in versions)
        problems.append(f"schema disagreement, {_plural(len(versions), 'version')}: {where}")
    return problems


def scylla_drained(operation_mode: Any) -> List[str]:
    """Problems before a ScyllaDB member may stop after POST /storage_service/drain: GET
    /storage_service/operation_mode must answer "DRAINED"."""
    if operation_mode == "DRAINED":
        return []
    return [f"operation mode is {operation_mode}, not DRAINED"]


def _partitions(overview: Dict[str, Any], kind: str, label: str) -> List[str]:
    """One problem for the leaderless or under-replicated partitions, if any. The lists
    are truncated by the server; its *_count fields give the totals."""
    listed = overview.get(kind + "_partitions") or []
    count = max(overview.get(kind + "_count") or 0, len(listed))
    if not count:
        return []
    example = f", e.g. {', '.join(listed[:3])}" if listed else ""
    return [_plural(count, label) + example]


def redpanda_ready(health_overview: Dict[str, Any], members: Sequence[int]) -> List[str]:
    """Problems before a Redpanda cluster may lose its next broker, from the JSON answer of
    GET /v1/cluster/health_overview (what `rpk cluster health` prints); members: the broker
    (node) ids the fleet expects."""
    problems: List[str] = []
    if health_overview.get("is_healthy") is not True:
        reasons = health_overview.get("unhealthy_reasons") or []
        problems.append(
            "cluster reports unhealthy" + (": " + ", ".join(reasons) if reasons else "")
        )
    controller = health_overview.get("controller_id")
    if not isinstance(controller, int) or controller < 0:
        problems.append(f"no controller elected (controller_id {controller})")
    down = sorted(health_overview.get("nodes_down") or [])
    if down:
        problems.append("brokers down: " + ", ".join(str(n) for n in down))
    problems += _partitions(health_overview, "leaderless", "leaderless partition")
    problems += _partitions(health_overview, "under_replicated", "under-replicated partition")
    registered = health_overview.get("all_nodes") or []
    missing = [m for m in members if m not in registered]
    if missing:
        problems.append(
            f"{len(members) - len(missing)} of {len(members)} brokers registered; missing: "
            + ", ".join(str(m) for m in missing)
        )
    for node in registered:
        if node not in members:
            problems.append(f"broker {node} is registered but not an expected member")
    return problems


def redpanda_maintenance_done(broker: Dict[str, Any]) -> List[str]:
    """Problems before a broker in maintenance mode may stop, from the JSON answer of
    GET /v1/brokers/{id} (its "maintenance_status") or of GET /v1/maintenance (the status
    itself). Done is draining and finished, what `rpk cluster maintenance enable --wait`
    waits for, and here also no failed leadership transfers."""
    status = broker.get("maintenance_status", broker)
    if not isinstance(status, dict) or "draining" not in status:
        return ["no maintenance status in the answer (maintenance mode unsupported?)"]
    if not status.get("draining"):
        return ["maintenance mode is not enabled on this broker"]
    problems: List[str] = []
    if not status.get("finished"):
        problems.append(
            f"leadership drain not finished: {status.get('partitions', 0)} of "
            f"{status.get('eligible', 0)} eligible partitions moved, "
            f"{status.get('transferring', 0)} transferring"
        )
    if status.get("errors") or status.get("failed"):
        failed = _plural(status.get("failed") or 0, "failed leadership transfer")
        problems.append(f"drain errors: {failed} (see the broker log)")
    return problems


def hazelcast_ready(health: Dict[str, Any], members: Sequence[str]) -> List[str]:
    """Problems before a Hazelcast cluster may lose its next member, from the JSON answer
    of GET /hazelcast/health (HEALTH_CHECK endpoint group); members: the expected members."""
    problems: List[str] = []
    for key, what in (("nodeState", "member node state"), ("clusterState", "cluster state")):
        if health.get(key) != "ACTIVE":
            problems.append(f"{what} is {health.get(key)}, not ACTIVE")
    if health.get("clusterSafe") is not True:
        problems.append("cluster is not safe: partition backups not in sync or migrating")
    queued = health.get("migrationQueueSize")
    if not isinstance(queued, int):
        problems.append("migration queue size not reported")
    elif queued:
        problems.append(_plural(queued, "partition migration") + " pending")
    size = health.get("clusterSize")
    if size != len(members):
        seen = _plural(size, "member") if isinstance(size, int) else size
        problems.append(f"cluster has {seen}, expected {len(members)}")
    return problems
