"""Forming and recovering a Galera cluster: exactly one member bootstraps, and only the one
holding the most committed data; the others join one at a time.

Every member reports its position (App-Core: `appcore galera position --json`). The fleet
refuses, naming each member and its position, when a member did not report (unless the
operator names it as gone for good), when members with data disagree on the cluster's uuid,
or when a member's position is unknown. A member without data is chosen only when no member
has any: a new cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from imagefactory.errors import FactoryError

ZERO_UUID = "00000000-0000-0000-0000-000000000000"
# Between two readiness questions: each is an SSH login, which a small VM pays for in CPU
# while it receives its state transfer.
POLL_S = 3.0


class ClusterError(FactoryError):
    """The cluster cannot be formed or recovered safely as things stand; nothing was started."""


@dataclass(frozen=True)
class Report:
    """One member's answer: its stored position, or that its database is running."""

    uuid: str
    seqno: int
    safe_to_bootstrap: bool = False
    running: bool = False
    primary: bool = False  # running and in a Primary component

    @property
    def has_data(self) -> bool:
        return self.uuid != ZERO_UUID and self.seqno >= 0

    @property
    def unknown(self) -> bool:
        return self.uuid != ZERO_UUID and self.seqno < 0

    def label(self) -> str:
        if self.running:
            return "running" + (" in a Primary component" if self.primary else ", not Primary")
        if self.uuid == ZERO_UUID:
            return "no data (never joined)"
        safe = ", safe_to_bootstrap" if self.safe_to_bootstrap else ""
        return f"{self.uuid}:{self.seqno}{safe}"

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Report:
        return cls(
            str(doc.get("uuid", ZERO_UUID)),
            int(doc.get("seqno", -1)),
            bool(doc.get("safe_to_bootstrap", False)),
            bool(doc.get("running", False)),
            bool(doc.get("primary", False)),
        )


@dataclass(frozen=True)
class Decision:
    """What to do: bootstrap `bootstrap` (None: a Primary component runs), then join `joins`
    in this order."""

    bootstrap: str | None
    expect: Report | None
    joins: tuple[str, ...]
    why: str


def _table(reports: Mapping[str, Report | None]) -> str:
    return "; ".join(
        f"{node}: {r.label() if r is not None else 'did not report'}"
        for node, r in sorted(reports.items())
    )


def decide(reports: Mapping[str, Report | None], gone: frozenset[str] = frozenset()) -> Decision:
    """The one safe plan for these reports, or ClusterError naming every member's position."""
    unknown_gone = gone - set(reports)
    if unknown_gone:
        raise ClusterError(f"--gone names no member of this cluster: {sorted(unknown_gone)}")
    present = {n: r for n, r in reports.items() if n not in gone}
    stopped = sorted(n for n, r in present.items() if r is not None and not r.running)
    primary = sorted(n for n, r in present.items() if r is not None and r.primary)
    if primary:  # a Primary component exists: never a second one
        return Decision(None, None, tuple(stopped), f"{primary[0]} runs in a Primary component")
    silent = sorted(n for n, r in present.items() if r is None)
    if silent:
        raise ClusterError(
            f"not every member reported ({_table(reports)}); a member that is lost for good "
            f"can be named with --gone={','.join(silent)}, its data is then never considered"
        )
    running = sorted(n for n, r in present.items() if r is not None and r.running)
    if running:
        raise ClusterError(
            f"members run outside a Primary component ({_table(reports)}): stop them, then "
            "recover (their stored positions are what decides)"
        )
    known = {n: r for n, r in present.items() if r is not None}
    unsure = sorted(n for n, r in known.items() if r.unknown)
    if unsure:
        raise ClusterError(
            f"position unknown for {', '.join(unsure)} (seqno -1 after --wsrep-recover): "
            f"{_table(reports)}"
        )
    with_data = {n: r for n, r in known.items() if r.has_data}
    if not with_data:
        if gone:
            raise ClusterError(
                f"no remaining member has data ({_table(reports)}): bootstrapping would start an "
                "empty cluster while a member named gone may hold it; refused"
            )
        first = sorted(known)[0]
        return Decision(first, known[first], tuple(sorted(known)[1:]), "new cluster: no data")
    uuids = {r.uuid for r in with_data.values()}
    if len(uuids) > 1:
        raise ClusterError(f"members hold data of different clusters: {_table(reports)}")
    best = max(with_data.items(), key=lambda nr: (nr[1].seqno, nr[1].safe_to_bootstrap))[0]
    ties = sorted(n for n, r in with_data.items() if r.seqno == with_data[best].seqno)
    chosen = best if with_data[best].safe_to_bootstrap else ties[0]
    joins = tuple(n for n in sorted(known) if n != chosen)
    return Decision(chosen, known[chosen], joins, f"highest committed seqno {known[chosen].seqno}")


class GaleraMember(Protocol):
    """How the fleet reaches one member (SSH to App-Core in production)."""

    @property
    def name(self) -> str: ...

    def report(self) -> Report | None: ...

    def bootstrap(self, expect: Report) -> None: ...

    def join(self) -> None: ...

    def ready(self) -> list[str]: ...


def wait_ready(
    member: GaleraMember,
    timeout_s: float,
    say: Callable[[str], None],
    growing: bool = False,
) -> None:
    """Until `member` is ready (Primary, Synced, connected; and every member in, unless the
    cluster is `growing` one member at a time); ClusterError after the bounded wait, naming
    what it last reported. A state transfer in progress is "not synced": waited for."""
    deadline = time.monotonic() + timeout_s
    while problems := [p for p in member.ready() if not (growing and p.startswith("cluster size"))]:
        if time.monotonic() > deadline:
            raise ClusterError(
                f"{member.name} not ready after {timeout_s:.0f} s: {'; '.join(problems)}"
            )
        time.sleep(POLL_S)
    say(f"{member.name}: {'Primary and synced' if growing else 'ready'}")


def reports_of(
    members: list[GaleraMember], timeout_s: float, gone: frozenset[str] = frozenset()
) -> dict[str, Report | None]:
    """Every member's report; members still booting are asked again (every 5 s) until all
    answered or `timeout_s` passed (then the silent ones stay None: decide() names them)."""
    reports = {m.name: m.report() for m in members}
    deadline = time.monotonic() + timeout_s
    while any(r is None for n, r in reports.items() if n not in gone):
        if time.monotonic() > deadline:
            break
        time.sleep(5)
        for m in members:
            if reports[m.name] is None:
                reports[m.name] = m.report()
    return reports


def form(
    members: list[GaleraMember],
    gone: frozenset[str] = frozenset(),
    timeout_s: float = 300,
    say: Callable[[str], None] = print,
) -> Decision:
    """Bring the cluster up: one bootstrap (if no Primary component runs), then each other
    member joins and is synced before the next starts; at the end every member is ready."""
    by_name = {m.name: m for m in members}
    reports = reports_of(members, timeout_s, gone)
    decision = decide(reports, gone)
    say(f"positions: {_table(reports)}")
    if decision.bootstrap is not None and decision.expect is not None:
        say(f"bootstrap {decision.bootstrap} ({decision.why})")
        by_name[decision.bootstrap].bootstrap(decision.expect)
        wait_ready(by_name[decision.bootstrap], timeout_s, say, growing=True)
    for name in decision.joins:
        say(f"join {name}")
        by_name[name].join()
        wait_ready(by_name[name], timeout_s, say, growing=True)
    for member in members:
        if member.name not in gone:
            wait_ready(member, timeout_s, say)
    return decision
