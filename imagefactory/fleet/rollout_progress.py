"""What a parallel rollout prints: many clusters move at once, so every line names the cluster
whose step it reports (`[pxc-main] pers-db-master-03: gate ok (41 s), now on ...`), taken
from the thread that says it; on a terminal a summary line (nodes done / in progress / left,
per cluster) stays under the lines and is redrawn, in a log there are only the lines."""

from __future__ import annotations

import shutil
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

_where = threading.local()


@contextmanager
def in_cluster(cluster: str | None) -> Iterator[None]:
    """Lines said by this thread meanwhile are about `cluster`."""
    before = getattr(_where, "cluster", None)
    _where.cluster = cluster
    try:
        yield
    finally:
        _where.cluster = before


def current_cluster() -> str | None:
    cluster = getattr(_where, "cluster", None)
    return str(cluster) if cluster is not None else None


class Progress:
    """Serialized output of one rollout, and its counts per cluster."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.lock = threading.Lock()
        self.total: dict[str, int] = {}
        self.done: Counter[str] = Counter()
        self.running: Counter[str] = Counter()

    def say(self, text: str) -> None:
        cluster = current_cluster()
        line = f"[{cluster}] {text.strip()}" if cluster else text
        with self.lock:
            self._write(line + "\n")

    def expect(self, cluster: str, nodes: int) -> None:
        """`nodes` of `cluster` are to be replaced."""
        with self.lock:
            self.total[cluster] = self.total.get(cluster, 0) + nodes

    def moved(self, cluster: str, started: int = 0, finished: int = 0) -> None:
        """Nodes of `cluster` taken down (started) or through their gate or stopped (finished)."""
        with self.lock:
            self.running[cluster] += started - finished
            self.done[cluster] += finished
            self._write("")

    def close(self) -> None:
        """The summary line goes; the report follows on a clean line."""
        if self.live:
            with self.lock:
                self.stream.write("\r\x1b[K")
                self.stream.flush()

    def summary(self) -> str:
        done, running = sum(self.done.values()), sum(self.running.values())
        left = sum(self.total.values()) - done - running
        busy = [
            f"{c} {self.done[c]}+{self.running[c]}/{n}"
            for c, n in sorted(self.total.items())
            if self.done[c] < n
        ]
        text = f"{done} done, {running} in progress, {left} left"
        return text + (" | " + " ".join(busy) if busy else "")

    def _write(self, text: str) -> None:
        if not self.live:
            self.stream.write(text)
        else:  # clear the summary, the line, then the summary again (cut to the width)
            width = shutil.get_terminal_size().columns - 1
            self.stream.write("\r\x1b[K" + text + self.summary()[:width])
        self.stream.flush()
