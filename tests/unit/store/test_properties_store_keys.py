"""Store keys and paths, for every name: a family, channel or version is refused with a clear
error, or every key built from it stays under its prefix; a directory store's key is refused
or names a file under its root."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from imagefactory.store import layer_cache, layout
from imagefactory.store.backend import ObjectMissing, StoreError
from imagefactory.store.fs_backend import FsBackend
from tests.propertykit import PROPERTIES

# Names an attacker or a typo could give: path syntax, NUL, unicode, empty, very long.
TRICKY = st.sampled_from(
    ["", ".", "..", "../x", "a/..", "a/b", "a\\b", "a\x00b", "/abs", "~", "é", "a" * 300]
)
NAMES = TRICKY | st.text(max_size=80) | st.from_regex(layout.NAME_RE, fullmatch=True)
VERSIONS = TRICKY | st.text(max_size=40) | st.from_regex(layout.VERSION_RE, fullmatch=True)
KEYS = TRICKY | st.text(max_size=80) | st.lists(NAMES, min_size=1, max_size=4).map("/".join)


def segments_under(key: str, prefix: str, parts: int) -> list[str]:
    """The key's parts after `prefix`, each a plain path segment."""
    assert key.startswith(prefix), key
    rest = key[len(prefix) :].split("/")
    assert len(rest) == parts, key
    for part in rest:
        assert part not in ("", ".", ".."), key
        assert "\\" not in part and "\x00" not in part, key
    return rest


def built_or_refused(
    builders: Iterable[Callable[[str, str], str]], a: str, b: str, valid: bool
) -> list[str]:
    """The keys the builders make of (a, b): all of them if valid, else each refuses."""
    keys = []
    for build in builders:
        try:
            keys.append(build(a, b))
        except StoreError as err:
            assert not valid and "invalid" in str(err), err
    assert valid or not keys, keys
    return keys


@PROPERTIES
@given(family=NAMES, version=VERSIONS)
@example(family="..", version="20261124T101500Z-1a2b3c4d5e6f")
def test_image_keys_stay_under_their_family_and_version(family: str, version: str) -> None:
    """Every image key builder refuses a family or version itself (no caller has to check
    first), or its key is images/<f>/<v>/<file>."""
    builders = (
        layout.blob_key,
        layout.manifest_key,
        layout.signature_key,
        layout.sums_key,
        layout.revocation_key,
    )
    valid = bool(layout.NAME_RE.match(family) and layout.VERSION_RE.match(version))
    for key in built_or_refused(builders, family, version, valid):
        if key.startswith("revocations/"):
            assert segments_under(key, "revocations/", 2)[0] == family
        else:
            assert segments_under(key, "images/", 3)[:2] == [family, version]


@PROPERTIES
@given(family=NAMES, channel=NAMES)
@example(family="fam", channel="../../images/fam/x")
def test_channel_keys_stay_under_channels(family: str, channel: str) -> None:
    """The channel key builders refuse a bad family or channel themselves, or the pointer is
    channels/<family>/<channel>.json."""
    valid = bool(layout.NAME_RE.match(family) and layout.NAME_RE.match(channel))
    builders = (layout.channel_key, layout.channel_signature_key)
    for key in built_or_refused(builders, family, channel, valid):
        assert segments_under(key, "channels/", 2)[0] == family


@PROPERTIES
@given(sha=st.text(max_size=70) | st.from_regex(r"[0-9a-f]{64}", fullmatch=True))
@example(sha="../" + "0" * 61)
def test_dedupe_index_keys_are_a_sha256_or_refused(sha: str) -> None:
    """The dedupe index key is sha256/<64 hex> or StoreError."""
    try:
        key = layout.index_key(sha)
    except StoreError as err:
        assert "invalid sha256" in str(err)
        return
    assert segments_under(key, "sha256/", 1) == [sha] and len(sha) == 64


@PROPERTIES
@given(key=KEYS, sha=st.from_regex(r"[0-9a-f]{64}", fullmatch=True))
def test_layer_cache_keys_stay_under_the_cache(key: str, sha: str) -> None:
    """A layer cache key that the record reader accepts (64 characters, no '/') keeps its
    record and blob under cache/layers/<key>/."""
    if "/" in key or len(key) != 64:
        return
    assert segments_under(layer_cache.record_key(key), layer_cache.PREFIX, 2)[0] == key
    assert segments_under(layer_cache.blob_key(key, sha), layer_cache.PREFIX, 2)[0] == key


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FsBackend:
    return FsBackend(tmp_path_factory.mktemp("store") / "root")


@PROPERTIES
@given(key=KEYS)
@example(key="a\x00b")
@example(key="a" * 300)
def test_directory_store_keys_are_refused_or_under_its_root(store: FsBackend, key: str) -> None:
    """Reading or writing any key: StoreError, or a file under the store's root."""
    store.root.mkdir(parents=True, exist_ok=True)
    try:
        store.put_bytes(key, b"x")
    except StoreError as err:
        assert repr(key) in str(err) or key in str(err)
        return
    written = [p for p in store.root.rglob("*") if p.is_file()]
    assert store.get_bytes(key) == b"x"
    assert all(p.resolve().is_relative_to(store.root.resolve()) for p in written)
    store.delete(key)
    with pytest.raises(ObjectMissing):
        store.get_bytes(key)
