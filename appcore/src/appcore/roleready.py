"""Asking the ScyllaDB, Redpanda or Hazelcast member on this VM for the answers its probe
judges (appcore.probes), and the planned-stop steps of those roles. Every server is asked on
127.0.0.1 at its documented admin port; what "ready" means lives in the probes only."""

import json
import time
import urllib.error
import urllib.request
from typing import Any, Callable, List, Optional, Sequence

from appcore import probes
from appcore.errors import RoleError
from appcore.runner import Runner

# The closed set of roles with their own readiness (catalogue key "readiness").
KINDS = ("scylla", "redpanda", "hazelcast")
SCYLLA_API = "http://127.0.0.1:10000"  # ScyllaDB's REST API (api_port)
REDPANDA_ADMIN = "http://127.0.0.1:9644"  # Redpanda's admin API
HAZELCAST_REST = "http://127.0.0.1:5701"  # Hazelcast member port, HEALTH_CHECK group
# A drain or a maintenance-mode leadership transfer can take minutes on a loaded node.
STOP_STEP_TIMEOUT = 600.0


class Unanswered(Exception):
    """The local server did not give a usable answer (not listening, error status, not JSON)."""


Fetch = Callable[[str, str], Any]  # (method, url) -> the answer, parsed JSON


def fetch_json(method: str, url: str, timeout: float = 5.0) -> Any:
    """One request to a local admin API; its JSON answer (None for an empty body)."""
    data = b"" if method in ("POST", "PUT") else None
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            body = answer.read()
    except urllib.error.HTTPError as exc:
        raise Unanswered(f"{method} {url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unanswered(f"{method} {url}: no answer ({reason})") from None
    if not body.strip():
        return None
    try:
        return json.loads(body.decode("utf-8"))
    except ValueError:
        raise Unanswered(f"{method} {url}: the answer is not JSON") from None


class Member:
    """This VM's member of a ScyllaDB, Redpanda or Hazelcast cluster; `ip` its address and
    `peers` every member's address, as App-Core rendered them at boot."""

    def __init__(
        self,
        kind: str,
        runner: Runner,
        ip: str,
        peers: Sequence[str],
        fetch: Fetch = fetch_json,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if kind not in KINDS:
            raise RoleError(f"unknown readiness kind {kind!r} (one of {list(KINDS)})")
        self.kind, self.runner, self.ip, self.peers = kind, runner, ip, list(peers)
        self.fetch, self.sleep, self.clock = fetch, sleep, clock

    def problems(self) -> List[str]:
        """What must clear before this member counts as ready; [] when ready."""
        try:
            return getattr(self, "_" + self.kind + "_problems")()  # type: ignore[no-any-return]
        except Unanswered as exc:
            return [str(exc)]

    def poststart_needed(self) -> str:
        """poststart_due, with a server that does not answer counted as not due."""
        try:
            return self.poststart_due()
        except Unanswered:
            return ""

    def _scylla_problems(self) -> List[str]:
        done = self.runner.run(["nodetool", "status"], check=False)
        if done.returncode != 0:
            why = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return [f"nodetool status failed (exit {done.returncode}): {why[0]}"]
        return probes.scylla_ready(
            done.stdout,
            self.fetch("GET", SCYLLA_API + "/storage_service/native_transport"),
            self.fetch("GET", SCYLLA_API + "/storage_proxy/schema_versions"),
            self.ip,
            self.peers,
        )

    def _redpanda_problems(self) -> List[str]:
        overview = self.fetch("GET", REDPANDA_ADMIN + "/v1/cluster/health_overview")
        if not isinstance(overview, dict):
            return ["health overview: not a JSON object"]
        # Broker ids are given by the cluster, not the fleet: the count is what is expected.
        registered = [n for n in overview.get("all_nodes") or [] if isinstance(n, int)]
        problems = probes.redpanda_ready(overview, registered)
        if len(registered) != len(self.peers):
            problems.append(f"{len(registered)} of {len(self.peers)} brokers registered")
        due = self.poststart_due()
        return problems + ([due] if due else [])

    def poststart_due(self) -> str:
        """Why `poststart` must run now ("" if not): a Redpanda broker still in the
        maintenance mode its pre-stop step put it in (the cluster keeps it across restarts)."""
        if self.kind != "redpanda":
            return ""
        broker = self._redpanda_node_id()
        answer = self.fetch("GET", f"{REDPANDA_ADMIN}/v1/brokers/{broker}")
        status = answer.get("maintenance_status") if isinstance(answer, dict) else None
        if isinstance(status, dict) and status.get("draining"):
            return f"broker {broker} is in maintenance mode"
        return ""

    def _hazelcast_problems(self) -> List[str]:
        health = self.fetch("GET", HAZELCAST_REST + "/hazelcast/health")
        if not isinstance(health, dict):
            return ["health: not a JSON object"]
        return probes.hazelcast_ready(health, self.peers)

    def prestop(self) -> Optional[str]:
        """The role's step before a planned stop, waited for; what was done."""
        try:
            return self._prestop()
        except Unanswered as exc:  # e.g. Redpanda's 400: another broker holds maintenance
            raise RoleError(f"{self.kind} pre-stop step refused: {exc}") from None

    def _prestop(self) -> str:
        if self.kind == "scylla":
            self.fetch("POST", SCYLLA_API + "/storage_service/drain")
            self._wait(
                "nodetool drain",
                lambda: probes.scylla_drained(
                    self.fetch("GET", SCYLLA_API + "/storage_service/operation_mode")
                ),
            )
            return "drained (operation mode DRAINED)"
        if self.kind == "redpanda":
            broker = self._redpanda_node_id()
            self.fetch("PUT", f"{REDPANDA_ADMIN}/v1/brokers/{broker}/maintenance")
            self._wait(
                "maintenance mode",
                lambda: probes.redpanda_maintenance_done(
                    self.fetch("GET", f"{REDPANDA_ADMIN}/v1/brokers/{broker}")
                ),
            )
            return f"broker {broker} in maintenance mode, leadership moved"
        # Hazelcast: stopping is graceful only while every partition has its backup in sync.
        self._wait("cluster-safe", self._hazelcast_problems)
        return "cluster safe: partitions backed up before the graceful shutdown"

    def poststart(self) -> Optional[str]:
        """The role's step after a planned start; what was done."""
        if self.kind != "redpanda":
            return None
        try:
            broker = self._redpanda_node_id()
            self.fetch("DELETE", f"{REDPANDA_ADMIN}/v1/brokers/{broker}/maintenance")
        except Unanswered as exc:
            raise RoleError(f"redpanda post-start step refused: {exc}") from None
        return f"broker {broker} out of maintenance mode"

    def _redpanda_node_id(self) -> int:
        config = self.fetch("GET", REDPANDA_ADMIN + "/v1/node_config")
        node = config.get("node_id") if isinstance(config, dict) else None
        if not isinstance(node, int):
            raise Unanswered("Redpanda's /v1/node_config gives no node_id: cannot name this broker")
        return node

    def _wait(self, step: str, problems_now: Callable[[], List[str]]) -> None:
        deadline = self.clock() + STOP_STEP_TIMEOUT
        while True:
            try:
                left = problems_now()
            except Unanswered as exc:
                left = [str(exc)]
            if not left:
                return
            if self.clock() >= deadline:
                raise RoleError(
                    f"{self.kind} {step}: not done after {STOP_STEP_TIMEOUT:g} s: "
                    + "; ".join(left)
                )
            self.sleep(2.0)
