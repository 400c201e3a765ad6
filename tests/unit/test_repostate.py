"""Repository state parsing and the plan's reasons for `epoch_from` (no network here)."""

from __future__ import annotations

import pytest

from imagefactory.engine.keys import explain, layer_key
from imagefactory.sources.repostate import parse_revision, repomd_url
from tests.repomd_server import REPOMD

URL = "https://repo.example/ol8/baseos/"


def state(revision: str | None, sha: str = "a" * 64, url: str = URL) -> dict[str, str | None]:
    return {"url": url, "revision": revision, "sha256": sha}


def test_repomd_url_with_or_without_trailing_slash() -> None:
    assert repomd_url(URL) == URL + "repodata/repomd.xml"
    assert repomd_url(URL.rstrip("/")) == URL + "repodata/repomd.xml"


def test_revision_is_read_in_the_repo_namespace() -> None:
    data = REPOMD.format(revision="1700000000", checksum="0" * 64).encode()
    assert parse_revision(data) == "1700000000"


def test_revision_is_optional_and_only_top_level() -> None:
    nested = b"<repomd><data type='x'><revision>9</revision></data></repomd>"
    assert parse_revision(nested) is None
    assert parse_revision(b"<repomd><revision> 42 </revision></repomd>") == "42"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<html><body>captive portal</body></html>", "root element is <html>"),
        (b"<repomd><revision>1", "not valid XML"),
        (b"", "not valid XML"),
    ],
)
def test_not_a_repomd_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_revision(data)


def test_new_revision_is_named() -> None:
    old = {"name": "update", "repo_state": [state("1700000000")]}
    new = {"name": "update", "repo_state": [state("1700003600", "b" * 64)]}
    assert explain(old, new) == [f"repo state changed: {URL} revision 1700000000 -> 1700003600"]
    assert layer_key(old) != layer_key(new)


def test_same_revision_new_checksum_is_named() -> None:
    old = {"repo_state": [state("1", "a" * 64)]}
    new = {"repo_state": [state("1", "b" * 64)]}
    assert explain(old, new) == [
        f"repo state changed: {URL} repomd.xml sha256 {'a' * 12} -> {'b' * 12}"
    ]


def test_repositories_added_removed_reordered() -> None:
    other = "https://repo.example/ol8/appstream/"
    base = {"epoch": "1"}
    assert explain(base, {**base, "repo_state": [state("1")]}) == [f"repo state: {URL} added"]
    both = [state("1"), state("2", url=other)]
    assert explain({"repo_state": both}, {"repo_state": both[:1]}) == [
        f"repo state: {other} removed"
    ]
    assert explain({"repo_state": both}, {"repo_state": both[::-1]}) == [
        "repo state: order changed"
    ]


def test_unchanged_state_gives_no_reason() -> None:
    doc = {"name": "update", "epoch": "1", "repo_state": [state("1")]}
    assert explain(doc, dict(doc)) == []
