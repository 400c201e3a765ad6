"""`appcore ready`, `prestop` and `poststart` for ScyllaDB, Redpanda and Hazelcast members: the
recorded answers (tests/unit/appcore/recordings) are served over real HTTP on 127.0.0.1 and
`nodetool status` is the recorded text. Every unhealthy case has its services "active": the
old gate (configured + systemd active) let each of them through."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from appcore.errors import RoleError
from appcore.hostfs import Host
from appcore.runner import Result
from appcore.state import write_pin, write_state
from appcore_testkit import CATALOGUE, RecordingRunner, make_root

from appcore import lifecycle, roleready
from appcore.catalogue import load_catalogue

RECORDINGS = Path(__file__).parent / "recordings"
ROLES = {
    "scylla": ("SCYLLA_CLUSTER", "scylla-server.service", "10.20.0.11"),
    "redpanda": ("REDPANDA", "redpanda.service", "10.20.0.11"),
    "hazelcast": ("HAZELCAST", "hazelcast.service", "10.20.0.11"),
}
PEERS = ["10.20.0.11", "10.20.0.12", "10.20.0.13"]


class Answers:
    """What the fake local server answers: "METHOD path" -> a list of answers, served in order
    (the last one repeats); every request is recorded."""

    def __init__(self) -> None:
        self.by_request: dict[str, list[Any]] = {}
        self.asked: list[str] = []

    def load(self, system: str, case: str) -> None:
        recording = json.loads((RECORDINGS / system / f"{case}.json").read_text())
        for request, answer in recording["answers"].items():
            self.by_request.setdefault(request, []).append(answer)


@pytest.fixture
def server() -> Iterator[tuple[str, Answers]]:
    answers = Answers()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            request = f"{self.command} {self.path}"
            answers.asked.append(request)
            queue = answers.by_request.get(request)
            if not queue:
                self.send_response(404)
                self.end_headers()
                return
            body = json.dumps(queue.pop(0) if len(queue) > 1 else queue[0]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", answers
    httpd.shutdown()
    httpd.server_close()


class NodetoolRunner(RecordingRunner):
    """systemd as RecordingRunner simulates it; `nodetool status` prints a recorded text."""

    def __init__(self, active: list[str], nodetool: str | None = None) -> None:
        super().__init__(active=active)
        self.nodetool = nodetool

    def run(self, argv: list[str], check: bool = True) -> Result:
        if argv[0] == "nodetool":
            self.recorded.append(list(argv))
            if self.nodetool is None:
                return Result(list(argv), 1, "", "nodetool: Connection refused")
            return Result(list(argv), 0, self.nodetool, "")
        return super().run(argv, check)


@pytest.fixture
def local_apis(server: tuple[str, Answers], monkeypatch: pytest.MonkeyPatch) -> Answers:
    """The admin API addresses point at the fake server (the real client still speaks HTTP)."""
    url, answers = server
    for name in ("SCYLLA_API", "REDPANDA_ADMIN", "HAZELCAST_REST"):
        monkeypatch.setattr(roleready, name, url)
    return answers


def configured_node(tmp_path: Path, kind: str) -> Host:
    """A guest root where `appcore apply` configured the role of `kind` this boot."""
    role, service, ip = ROLES[kind]
    host = Host(str(make_root(tmp_path, services=[service])))
    write_pin(host, {"role": role, "family": "persistence", "source": "smbios"})
    state = {"status": "configured", "role": role, "members": 3, "peers": PEERS, "ip": ip}
    write_state(host, state)
    return host


def redpanda_broker(answers: Answers, maintenance: str = "maintenance_not_enabled") -> None:
    """This VM is broker 2; its maintenance status is the one recorded in `maintenance`."""
    answers.by_request["GET /v1/node_config"] = [{"node_id": 2}]
    answers.load("redpanda", maintenance)


def ready(tmp_path: Path, kind: str, runner: NodetoolRunner) -> dict[str, Any]:
    host = configured_node(tmp_path, kind)
    return lifecycle.ready(host, runner, load_catalogue(str(CATALOGUE)))


def scylla_runner(case: str) -> NodetoolRunner:
    text = (RECORDINGS / "scylla" / f"{case}.txt").read_text()
    return NodetoolRunner(["scylla-server.service"], text)


def test_scylla_healthy_member_is_ready(tmp_path: Path, local_apis: Answers) -> None:
    """A ScyllaDB member that is UN, sees every peer UN and serves CQL is ready."""
    local_apis.load("scylla", "healthy")
    report = ready(tmp_path, "scylla", scylla_runner("healthy"))
    assert (report["ready"], report["problems"]) == (True, [])


def test_scylla_peer_down_is_not_ready_though_active(tmp_path: Path, local_apis: Answers) -> None:
    """A peer the member sees as DN makes it not ready while systemd says active."""
    local_apis.load("scylla", "peer_down")
    report = ready(tmp_path, "scylla", scylla_runner("peer_down"))
    assert report["ready"] is False
    assert report["problems"] == ["member 10.20.0.13 is DN (down, normal) as this node sees it"]


def test_scylla_without_nodetool_answer_is_not_ready(tmp_path: Path, local_apis: Answers) -> None:
    """nodetool failing (the server still starting) is a problem, not a pass."""
    local_apis.load("scylla", "healthy")
    report = ready(tmp_path, "scylla", NodetoolRunner(["scylla-server.service"], None))
    assert report["problems"] == ["nodetool status failed (exit 1): nodetool: Connection refused"]


def test_redpanda_healthy_cluster_is_ready(tmp_path: Path, local_apis: Answers) -> None:
    """A healthy Redpanda cluster with all three brokers registered is ready."""
    local_apis.load("redpanda", "healthy")
    redpanda_broker(local_apis)
    report = ready(tmp_path, "redpanda", NodetoolRunner(["redpanda.service"]))
    assert (report["ready"], report["problems"]) == (True, [])


def test_redpanda_leaderless_is_not_ready_though_active(
    tmp_path: Path, local_apis: Answers
) -> None:
    """Leaderless partitions make the broker not ready while systemd says active."""
    local_apis.load("redpanda", "leaderless")
    redpanda_broker(local_apis)
    report = ready(tmp_path, "redpanda", NodetoolRunner(["redpanda.service"]))
    assert report["ready"] is False
    assert report["problems"] == [
        "cluster reports unhealthy: leaderless_partitions",
        "1 leaderless partition, e.g. kafka/orders/4",
    ]


def test_redpanda_missing_broker_is_counted(tmp_path: Path, local_apis: Answers) -> None:
    """A broker that never registered shows as fewer brokers than peers."""
    local_apis.load("redpanda", "broker_not_registered")
    redpanda_broker(local_apis)
    report = ready(tmp_path, "redpanda", NodetoolRunner(["redpanda.service"]))
    assert "2 of 3 brokers registered" in report["problems"]


def test_redpanda_broker_left_in_maintenance_asks_for_poststart(
    tmp_path: Path, local_apis: Answers
) -> None:
    """A restarted broker still in maintenance mode is not ready, and poststart is asked for."""
    local_apis.load("redpanda", "healthy")
    redpanda_broker(local_apis, "maintenance_draining")
    report = ready(tmp_path, "redpanda", NodetoolRunner(["redpanda.service"]))
    assert (report["ready"], report["problems"], report["poststart"]) == (
        False,
        ["broker 2 is in maintenance mode"],
        "broker 2 is in maintenance mode",
    )


def test_hazelcast_healthy_member_is_ready(tmp_path: Path, local_apis: Answers) -> None:
    """An ACTIVE, cluster-safe Hazelcast member in a cluster of three is ready."""
    local_apis.load("hazelcast", "healthy")
    report = ready(tmp_path, "hazelcast", NodetoolRunner(["hazelcast.service"]))
    assert (report["ready"], report["problems"]) == (True, [])


def test_hazelcast_alone_is_not_ready_though_active(tmp_path: Path, local_apis: Answers) -> None:
    """A member in a cluster of its own is not ready while systemd says active."""
    local_apis.load("hazelcast", "alone")
    report = ready(tmp_path, "hazelcast", NodetoolRunner(["hazelcast.service"]))
    assert report["ready"] is False
    assert "cluster has 1 member, expected 3" in report["problems"]


def test_no_server_listening_is_not_ready(tmp_path: Path, local_apis: Answers) -> None:
    """An admin API that does not answer is a problem naming the request."""
    report = ready(tmp_path, "hazelcast", NodetoolRunner(["hazelcast.service"]))
    assert report["ready"] is False
    assert report["problems"][0].startswith("GET http://127.0.0.1:")
    assert report["problems"][0].endswith("/hazelcast/health: HTTP 404")


def test_scylla_prestop_drains_until_drained(tmp_path: Path, local_apis: Answers) -> None:
    """prestop asks for a drain and waits until the operation mode is DRAINED."""
    for case in ("drain_in_progress", "drain_done"):
        local_apis.load("scylla", case)
    local_apis.by_request["POST /storage_service/drain"] = [None]
    host = configured_node(tmp_path, "scylla")
    member = lifecycle.role_member(
        NodetoolRunner([]),
        lifecycle.pinned_role(host, load_catalogue(str(CATALOGUE))),
        {"ip": "10.20.0.11", "peers": PEERS},
    )
    member.sleep = lambda _s: None
    assert member.prestop() == "drained (operation mode DRAINED)"
    assert local_apis.asked == [
        "POST /storage_service/drain",
        "GET /storage_service/operation_mode",
        "GET /storage_service/operation_mode",
    ]


def test_redpanda_prestop_gives_up_with_the_reason(tmp_path: Path, local_apis: Answers) -> None:
    """A maintenance drain with failed transfers is never taken as done: bounded, then refused."""
    local_apis.by_request["GET /v1/node_config"] = [{"node_id": 2}]
    local_apis.by_request["PUT /v1/brokers/2/maintenance"] = [None]
    local_apis.load("redpanda", "maintenance_failed_transfers")
    ticks = iter(range(0, 10_000, 300))
    member = roleready.Member(
        "redpanda",
        NodetoolRunner([]),
        "10.20.0.11",
        PEERS,
        sleep=lambda _s: None,
        clock=lambda: float(next(ticks)),
    )
    with pytest.raises(RoleError, match="maintenance mode: not done after 600 s: .*failed"):
        member.prestop()


def test_redpanda_poststart_leaves_maintenance(local_apis: Answers) -> None:
    """poststart takes this broker (by its node_id) out of maintenance mode."""
    local_apis.by_request["GET /v1/node_config"] = [{"node_id": 1}]
    local_apis.by_request["DELETE /v1/brokers/1/maintenance"] = [None]
    member = roleready.Member("redpanda", NodetoolRunner([]), "10.20.0.11", PEERS)
    assert member.poststart() == "broker 1 out of maintenance mode"
    assert local_apis.asked[-1] == "DELETE /v1/brokers/1/maintenance"


def test_catalogue_refuses_an_unknown_readiness_kind(tmp_path: Path) -> None:
    """A role naming a readiness kind App-Core cannot ask is refused with file and field."""
    doc = json.loads(CATALOGUE.read_text())
    doc["roles"]["REDPANDA"]["readiness"] = "kafka"
    bad = tmp_path / "roles.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(Exception, match=r"roles\.REDPANDA\.readiness: must be one of"):
        load_catalogue(str(bad), str(tmp_path / "none"), str(tmp_path / "none"))
