"""`fleet.rotate`: for each ended period of a round-robin group, in order,

1. the outgoing member (whose period ended) turns read-only and is backed up and verified;
2. the incoming member is purged and made writable only if the period it holds has a
   verified backup (or it holds no data). Otherwise nothing is purged, the outgoing member
   turns writable again and stays active, and the run fails naming member, period and why.

Each step is recorded in a state file (atomic writes) before the next starts, so a run killed
anywhere and run again finishes the same period without a second backup or purge; a lock
makes a second run wait. A backup that failed is retried by later runs while its member
still holds that period (it blocks only that member's own purge a cycle later).
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from imagefactory.errors import FactoryError
from imagefactory.fleet.backup_verify import Scratch, verify_backup
from imagefactory.fleet.backups import (
    BackupError,
    BackupTarget,
    is_verified,
    take_backup,
    user_tables,
)
from imagefactory.fleet.dbmember import DbMember
from imagefactory.fleet.rotation import (
    RotationGroup,
    ended_periods,
    may_purge,
    plan_switch,
    shift,
)
from imagefactory.store.api import StoreError
from imagefactory.util.fsutil import write_atomic


class RotationBlocked(FactoryError):
    """A switch was refused: its incoming member's data is not proven to be backed up."""


@dataclass
class GroupState:
    """What the rotation did so far for one group (the state file's entry for it)."""

    last_done: str | None = None
    holds: dict[str, str] = field(default_factory=dict)  # member -> period it holds
    steps: dict[str, dict[str, str]] = field(default_factory=dict)  # period -> step -> how

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> GroupState:
        return cls(doc.get("last_done"), dict(doc.get("holds", {})), dict(doc.get("steps", {})))


@contextmanager
def locked_state(path: Path) -> Iterator[dict[str, Any]]:
    """The whole state file under an exclusive lock (a second run waits here)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / (path.name + ".lock")).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield json.loads(path.read_text()) if path.exists() else {}
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Rotator:
    group: RotationGroup
    members: Mapping[str, DbMember]
    target: BackupTarget
    scratch: Scratch
    state_path: Path
    say: Callable[[str], None] = print

    def _save(self, doc: dict[str, Any], state: GroupState) -> None:
        doc[self.group.name] = {
            "last_done": state.last_done,
            "holds": state.holds,
            "steps": state.steps,
        }
        write_atomic(self.state_path, json.dumps(doc, indent=2, sort_keys=True) + "\n")

    def _backup(self, period: str, node: str) -> str:
        """Take (or finish) and verify the backup of `node` for `period`: "verified" or
        "failed: why"."""
        try:
            take_backup(self.target, self.members[node], self.group.name, period)
            checked = verify_backup(self.target, self.group.name, node, period, self.scratch)
        except (BackupError, StoreError) as exc:
            return f"failed: {exc}"
        return "verified" if checked.ok else f"failed: {checked.reason}"

    def _verified(self, node: str, period: str) -> tuple[bool, str]:
        return is_verified(self.target, self.group.name, node, period)

    def _has_data(self, node: str) -> bool:
        return bool(user_tables(self.members[node].sql))

    def run(self, now: datetime, dry_run: bool = False) -> None:
        """Rotate every ended period; RotationBlocked if a switch was refused."""
        with locked_state(self.state_path) as doc:
            state = GroupState.from_dict(doc.get(self.group.name, {}))
            self._retry_failed(doc, state, dry_run)
            for period in ended_periods(self.group, state.last_done, now):
                self._one(doc, state, period, dry_run)

    def _retry_failed(self, doc: dict[str, Any], state: GroupState, dry_run: bool) -> None:
        for period, steps in sorted(state.steps.items()):
            node = steps.get("node", "")
            if steps.get("backup", "").startswith("failed") and state.holds.get(node) == period:
                if dry_run:
                    self.say(f"{self.group.name}: would retry the backup of {node} {period}")
                    continue
                steps["backup"] = self._backup(period, node)
                self.say(f"{self.group.name}: retried backup {node} {period}: {steps['backup']}")
                self._save(doc, state)

    def _one(self, doc: dict[str, Any], state: GroupState, period: str, dry_run: bool) -> None:
        switch = plan_switch(self.group, period, state.holds)
        name, out, inc = self.group.name, switch.outgoing, switch.incoming
        steps = state.steps.setdefault(period, {"node": out})
        if dry_run:
            self.say(f"{name}: {period} ended: would back up {out}, then switch to {inc}")
            return
        if "backup" not in steps:
            self.members[out].set_read_only(True)
            state.holds[out] = period
            steps["backup"] = self._backup(period, out)
            self.say(f"{name}: backup of {out} for {period}: {steps['backup']}")
            self._save(doc, state)
        if "purged" not in steps:
            verdict = may_purge(switch, self._has_data(inc), self._verified)
            if not verdict.purge:
                self.members[out].set_read_only(False)
                del steps["backup"]  # it stays active: its next backup must see the new rows
                self._save(doc, state)
                raise RotationBlocked(
                    f"{name}: not switching to {inc} after {period}: {inc} not purged, "
                    f"{verdict.reason}; {out} stays active and writable"
                )
            self.members[inc].purge()
            steps["purged"] = switch.incoming_holds or "-"
            state.holds.pop(inc, None)
            self._save(doc, state)
            self.say(f"{name}: purged {inc} ({verdict.reason})")
        self.members[inc].set_read_only(False)
        state.holds[inc] = shift(self.group, period, 1)
        state.last_done = period
        self._save(doc, state)
        self.say(f"{name}: {inc} active for {shift(self.group, period, 1)}")
