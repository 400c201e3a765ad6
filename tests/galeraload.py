"""Write load and quorum samples for a Galera cluster under test, run inside the network
namespace where its members' addresses exist (the e2e starts it with nsenter):

    python -m tests.galeraload --hosts IP,IP,IP --out DIR

Until DIR/stop exists: every 0.25 s one numbered row is inserted through the first member that
answers (starting with the last one that did); its id is appended to DIR/acked only after the
server acknowledged the commit. Every 1 s each member is asked for its wsrep state; one JSON
line per sample goes to DIR/samples: the members in a Primary component taking queries
(wsrep_ready ON), those of them Synced, and their cluster state uuids. The password comes in
MYSQL_PWD (never on a command line).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

USER = "writer"
TABLE = "t.r"


def sql(host: str, query: str, timeout: float = 5.0) -> subprocess.CompletedProcess[str]:
    argv = ["mariadb", "-h", host, "-u", USER, "--connect-timeout=2", "-N", "-B", "-e", query]
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", "timed out")


def state(host: str) -> dict[str, str]:
    """The member's wsrep cluster status, local state, readiness, size and cluster state
    uuid ({} if it does not answer)."""
    done = sql(
        host,
        "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_cluster_status',"
        "'wsrep_local_state_comment','wsrep_ready','wsrep_cluster_size',"
        "'wsrep_cluster_state_uuid')",
        timeout=3.0,
    )
    if done.returncode != 0:
        return {}
    return dict(line.split("\t", 1) for line in done.stdout.splitlines() if "\t" in line)


def write(hosts: list[str], out: Path, stop: threading.Event) -> None:
    acked = (out / "acked").open("a")
    failed = (out / "failed").open("a")
    start, next_id = 0, 1
    while not stop.is_set():
        for k in range(len(hosts)):
            host = hosts[(start + k) % len(hosts)]
            done = sql(host, f"INSERT INTO {TABLE} (id) VALUES ({next_id})")
            if done.returncode == 0:
                acked.write(f"{next_id}\n")
                acked.flush()
                start = (start + k) % len(hosts)
                break
            failed.write(f"{next_id} {host} {done.stderr.strip()[:200]}\n")
            failed.flush()
        next_id += 1  # an unacknowledged attempt's outcome is unknown: never reuse its id
        time.sleep(0.25)


def sample(hosts: list[str], out: Path, stop: threading.Event) -> None:
    with (out / "samples").open("a") as fh:
        while not stop.is_set():
            began = time.monotonic()
            states = {h: state(h) for h in hosts}
            primary = [
                h
                for h, s in states.items()
                if s.get("wsrep_cluster_status") == "Primary" and s.get("wsrep_ready") == "ON"
            ]
            synced = [h for h in primary if states[h].get("wsrep_local_state_comment") == "Synced"]
            uuids = sorted({states[h].get("wsrep_cluster_state_uuid", "") for h in primary})
            line = {
                "t": time.time(),
                "primary_ready": primary,
                "synced_primary": synced,
                "uuids": uuids,
                "states": states,
            }
            fh.write(json.dumps(line) + "\n")
            fh.flush()
            time.sleep(max(0.0, 1.0 - (time.monotonic() - began)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.galeraload")
    ap.add_argument("--hosts", required=True, help="comma-separated member addresses")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    hosts = [h for h in args.hosts.split(",") if h]
    stop = threading.Event()
    threads = [
        threading.Thread(target=write, args=(hosts, args.out, stop), daemon=True),
        threading.Thread(target=sample, args=(hosts, args.out, stop), daemon=True),
    ]
    for t in threads:
        t.start()
    while not (args.out / "stop").exists():
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(timeout=15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
