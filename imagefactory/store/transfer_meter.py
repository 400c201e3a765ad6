"""The store's transfer meter: bytes moved, a bar and the throughput, for uploads and downloads
of large images (not the build's step output, which is imagefactory.util.progress)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

_RENDER_INTERVAL = 0.2  # seconds between redraws on a terminal


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1024
    return f"{count:.1f} GiB"  # pragma: no cover - loop always returns


class Progress:
    """Counts bytes; draws a bar on a terminal, or one line per 10% when output is a file."""

    def __init__(
        self, label: str, total: int, stream: TextIO | None = None, enabled: bool = True
    ) -> None:
        self.label = label
        self.total = max(total, 0)
        self.done = 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self._tty = self.stream.isatty()
        self._start = time.monotonic()
        self._base = 0  # bytes present before this run (a resume): done, but not moved now
        self._last_draw = 0.0
        self._last_decile = -1

    def start_at(self, done: int) -> None:
        """Resume: bytes already present count as done but not towards the rate."""
        self.done = self._base = done
        self._start = time.monotonic()

    def update(self, count: int) -> None:
        self.done += count
        if not self.enabled:
            return
        now = time.monotonic()
        if self._tty:
            if now - self._last_draw >= _RENDER_INTERVAL:
                self._last_draw = now
                self.stream.write("\r" + self._line(now))
                self.stream.flush()
            return
        decile = self.done * 10 // self.total if self.total else 10
        if decile != self._last_decile and decile < 10:
            self._last_decile = decile
            self.stream.write(self._line(now) + "\n")
            self.stream.flush()

    def rate(self, now: float | None = None) -> float:
        """Bytes per second moved by this run (resumed bytes left out)."""
        elapsed = (time.monotonic() if now is None else now) - self._start
        return (self.done - self._base) / elapsed if elapsed > 0 else 0.0

    def _line(self, now: float) -> str:
        pct = 100.0 * self.done / self.total if self.total else 100.0
        filled = int(pct / 5)
        rate = self.rate(now)
        return (
            f"{self.label} [{'#' * filled}{'.' * (20 - filled)}] {pct:5.1f}% "
            f"{human_bytes(self.done)}/{human_bytes(self.total)} "
            f"{human_bytes(rate)}/s"
        )

    def close(self) -> None:
        if not self.enabled:
            return
        end = "\n"
        self.stream.write(("\r" if self._tty else "") + self._line(time.monotonic()) + end)
        self.stream.flush()
