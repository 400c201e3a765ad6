"""A rollout's memory: per hypervisor, which node is at which phase of which move, written
atomically before each step is taken; and the lock that lets one rollout (or recovery) run
per fleet at a time."""

from __future__ import annotations

import fcntl
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from imagefactory.fleet.hypervisor import FleetError
from imagefactory.fleet.model import Fleet
from imagefactory.fleet.nodes import Node
from imagefactory.util.fsutil import write_json_atomic

UNFINISHED = ("prepared", "replacing", "health", "rolling-back")
# A parallel rollout's lanes record steps at once, several in one host's file: each
# read-change-write of a state file is made under this one lock.
_WRITES = threading.Lock()


class RolloutState:
    """node -> {phase, from, to, updated}, one JSON file per hypervisor."""

    def __init__(self, fleet: Fleet) -> None:
        directory = fleet.rollout.state_dir
        self.dir = directory if directory is not None else fleet.path.parent / "rollout"
        self.fleet = fleet

    def _path(self, host: str) -> Path:
        return self.dir / f"{host}.json"

    def load(self, host: str) -> dict[str, dict[str, str]]:
        path = self._path(host)
        if not path.exists():
            return {}
        try:
            doc = json.loads(path.read_text())
            return {str(k): dict(v) for k, v in doc["nodes"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise FleetError(
                f"{path}: unreadable rollout state ({exc}); inspect it before "
                "removing it: it says which VMs are mid-rollout"
            ) from None

    def set(self, node: Node, phase: str, move: tuple[str, str], **extra: str) -> None:
        """Record `node` at `phase` of its move (old version, new version)."""
        old, new = move
        with _WRITES:
            nodes = self.load(node.host)
            entry = {**nodes.get(node.name, {}), **extra}
            entry.update(phase=phase, updated=datetime.now(UTC).isoformat(timespec="seconds"))
            entry["from"], entry["to"] = old, new
            nodes[node.name] = entry
            write_json_atomic(self._path(node.host), {"fleet": self.fleet.name, "nodes": nodes})

    def get(self, node: Node) -> dict[str, str] | None:
        return self.load(node.host).get(node.name)

    def forget(self, node: Node) -> None:
        """The VM is gone (fleet.destroy): nothing of its rollout is left to resume."""
        with _WRITES:
            nodes = self.load(node.host)
            if nodes.pop(node.name, None) is not None:
                write_json_atomic(self._path(node.host), {"fleet": self.fleet.name, "nodes": nodes})

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One rollout at a time per state dir (two could each take a member of one cluster
        down); apply, gc --apply, destroy and recover take it too."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / ".lock").open("w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise FleetError(
                    f"{self.dir}: another rollout of this fleet is running (or an apply, gc, "
                    "destroy or recovery: one at a time)"
                ) from None
            yield
