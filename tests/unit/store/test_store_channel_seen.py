"""The hypervisor's record of the highest channel pointer sequence it has pulled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagefactory.store.backend import StoreError
from imagefactory.store.channels import ChannelPointer
from imagefactory.store.pull import SEEN_FILE, check_not_rolled_back, record_seen


def _pointer(sequence: int, version: str = "20261124T101500Z-0123456789ab") -> ChannelPointer:
    return ChannelPointer(
        "persistence", "stable", version, "a" * 64, sequence, "", "me@build01", "builder@x"
    )


def test_only_the_highest_sequence_is_kept_and_lower_ones_refused(tmp_path: Path) -> None:
    check_not_rolled_back(tmp_path, _pointer(5))  # nothing seen yet
    record_seen(tmp_path, _pointer(7, "20261125T101500Z-0123456789ab"))
    record_seen(tmp_path, _pointer(6))  # lower: not recorded
    entry = json.loads((tmp_path / SEEN_FILE).read_text())["persistence/stable"]
    assert (entry["sequence"], entry["version"]) == (7, "20261125T101500Z-0123456789ab")
    check_not_rolled_back(tmp_path, _pointer(7))
    check_not_rolled_back(tmp_path, _pointer(8))
    with pytest.raises(StoreError, match=r"sequence 6, .*\(sequence 7, .*refusing a rollback"):
        check_not_rolled_back(tmp_path, _pointer(6))
    other = ChannelPointer(
        "persistence", "nightly", "20261101T000000Z-0123456789ab", "b" * 64, 1, "", "", ""
    )
    check_not_rolled_back(tmp_path, other)  # channels are tracked separately


def test_unreadable_record_is_an_error_not_a_reset(tmp_path: Path) -> None:
    (tmp_path / SEEN_FILE).write_text("[1, 2")
    with pytest.raises(StoreError, match="remove it to forget"):
        check_not_rolled_back(tmp_path, _pointer(1))
