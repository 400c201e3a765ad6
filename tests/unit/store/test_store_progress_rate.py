"""What the store's transfer meter says: the rate counts only bytes moved by this run."""

from __future__ import annotations

import io

import pytest

from imagefactory.store import transfer_meter
from imagefactory.store.transfer_meter import Progress

GIB = 1024**3
MIB = 1024**2


class FakeClock:
    """Stands in for the time module: monotonic() returns what the test sets."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(transfer_meter, "time", fake)
    return fake


def test_resumed_bytes_do_not_count_towards_the_rate(clock: FakeClock) -> None:
    """After a resume at 5 GiB, 10 MiB in 1 s is 10 MiB/s, not 5 GiB/s."""
    out = io.StringIO()
    bar = Progress("pull fam", 10 * GIB, stream=out)
    bar.start_at(5 * GIB)
    clock.now += 1.0
    bar.update(10 * MIB)
    first = out.getvalue().splitlines()[0]
    assert first.endswith(" 10.0 MiB/s"), first
    assert " 5.0 GiB/10.0 GiB " in first  # the resumed bytes still count as done
    assert bar.rate() == pytest.approx(10 * MIB)
