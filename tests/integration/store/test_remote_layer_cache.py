"""The remote layer cache: layers pushed to a real store (directory and S3) by one host and
fetched by another, verified before use; the real engine with fake layer builders
(tests/enginekit.py) so no VM boots."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from imagefactory import commands
from imagefactory.config import load_config
from imagefactory.engine.build import BuildResult, build_family
from imagefactory.engine.context import Artifacts
from imagefactory.engine.remote import RemoteCache
from imagefactory.store import layer_cache, layout
from imagefactory.store.backend import StoreBackend
from imagefactory.store.prune import apply_prune, plan_prune
from imagefactory.store.publish import publish_image
from imagefactory.store.s3_backend import S3Backend
from imagefactory.util.fsutil import sha256_file
from tests.enginekit import make_project
from tests.storekit import RecordingStore, SigningKeys, make_sealed_image, make_signing_keys

pytestmark = pytest.mark.integration
LAYERS = ("base", "common", "harden", "stack", "seal")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return make_project(tmp_path, monkeypatch)


def host(project: Path, name: str, first: str | None = None) -> Artifacts:
    """A build host's artifacts dir; every host is given the team's build credential (an
    input of every layer key), as docs/store.md says."""
    art = Artifacts(project / name)
    if first is not None:
        shutil.copytree(project / first / "keys", art.credentials)
    return art


def remote(backend: Any, keys: SigningKeys) -> RemoteCache:
    return RemoteCache(
        backend, keys.private_key, keys.allowed_signers, layer_cache.listing(backend)
    )


def build(
    project: Path, art: Artifacts, backend: StoreBackend, keys: SigningKeys, family: str = "fa"
) -> BuildResult:
    cfg = load_config(project / "f.yaml")
    return build_family(cfg, cfg.family(family), art, remote(backend, keys))


def sealed_sha(art: Artifacts, family: str = "fa") -> str:
    return sha256_file(art.images(family) / f"{family}.qcow2")


def test_a_fresh_host_fetches_instead_of_building(
    project: Path, backend: StoreBackend, keys: SigningKeys
) -> None:
    """Host A pushes every layer it builds; a fresh host B gets the sealed image by fetching."""
    a = host(project, "a")
    assert build(project, a, backend, keys).built == LAYERS
    assert sorted(layer_cache.listing(backend)) == sorted(a.cache.layer_keys())
    b = host(project, "b", first="a")
    res = build(project, b, backend, keys)
    assert (res.built, res.fetched) == ((), ("seal",))  # a sealed image needs no parents
    assert sealed_sha(b) == sealed_sha(a)
    # Family fb shares base/common/harden (fetched as a chain); its own seal was never pushed.
    res_fb = build(project, b, backend, keys, "fb")
    assert (res_fb.built, res_fb.fetched) == (("seal",), ("base", "common", "harden"))


def test_plan_says_cached_here_in_the_store_or_to_build(
    project: Path, backend: StoreBackend, keys: SigningKeys
) -> None:
    """Host B's plan names the layer to fetch; --no-remote-cache plans every layer as built."""
    a = host(project, "a")
    build(project, a, backend, keys)
    cfg = load_config(project / "f.yaml")
    b = host(project, "b", first="a")
    from imagefactory.commands import _read_only_plan

    plan = _read_only_plan(cfg, cfg.family("fa"), b, remote(backend, keys))
    assert [s.fetch for s in plan.steps] == [False, False, False, False, True]
    assert plan.todo == ()
    text = commands.plan(project / "f.yaml", "fa", b.root, remote=False)
    assert text.splitlines()[0] == "family fa (5 layers, 5 to build)"


def test_a_warm_host_asks_the_store_for_one_listing_only(
    project: Path, backend: StoreBackend, keys: SigningKeys
) -> None:
    """With every layer cached here and in the store, a build reads nothing else from it."""
    a = host(project, "a")
    build(project, a, backend, keys)
    watched = RecordingStore(backend)
    cfg = load_config(project / "f.yaml")
    res = build_family(cfg, cfg.family("fa"), a, remote(watched, keys))
    assert res.built == () and res.fetched == ()
    assert watched.calls == ["list_keys cache/layers/"]


def test_a_tampered_record_or_image_is_never_used(
    project: Path, backend: StoreBackend, keys: SigningKeys, capsys: pytest.CaptureFixture[str]
) -> None:
    """A changed record fails its signature, a changed image its sha256: built here instead."""
    a = host(project, "a")
    build(project, a, backend, keys)
    seal = a.cache.ref("fa", "seal")
    stack = a.cache.ref("fa", "stack")
    assert seal is not None and stack is not None
    wrapper = json.loads(backend.get_bytes(layer_cache.record_key(seal)))
    wrapper["record"]["facts"]["build_seconds"] = 12345.6  # any change breaks the signature
    backend.put_bytes(layer_cache.record_key(seal), json.dumps(wrapper).encode())
    record = wrapper["record"]
    stack_sha = json.loads(backend.get_bytes(layer_cache.record_key(stack)))["record"]["sha256"]
    blob = layer_cache.blob_key(stack, stack_sha)
    data = bytearray(backend.get_bytes(blob))
    data[len(data) // 2] ^= 0xFF
    backend.put_bytes(blob, bytes(data))
    b = host(project, "b", first="a")
    capsys.readouterr()
    res = build(project, b, backend, keys)
    err = capsys.readouterr().err
    assert "seal" in res.built and "stack" in res.built
    assert res.fetched == ("base", "common", "harden")
    assert "signature does not match" in err and record["name"] == "seal"
    assert f"its image has {len(data)} bytes, sha256" in err


def test_the_first_push_wins_and_the_losers_children_stay_home(
    project: Path, backend: StoreBackend, keys: SigningKeys, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two hosts build the same keys: the store keeps one consistent chain, usable by a third."""
    a, b = host(project, "a"), None
    cfg = load_config(project / "f.yaml")
    stale_listing = RemoteCache(backend, keys.private_key, keys.allowed_signers, frozenset())
    build(project, a, backend, keys)
    b = host(project, "b", first="a")
    capsys.readouterr()
    # B planned before A's pushes landed: it builds everything, then loses every push race.
    res_b = build_family(cfg, cfg.family("fa"), b, stale_listing)
    assert res_b.built == LAYERS
    out = capsys.readouterr().out
    assert "base" in out and "not used: the store keeps another build of it" in out
    assert "not pushed common" in out
    for name in LAYERS:
        key = a.cache.ref("fa", name)
        assert key is not None
        rec = json.loads(backend.get_bytes(layer_cache.record_key(key)))["record"]
        assert rec["sha256"] == a.cache.facts(key)["sha256"], name
    c = host(project, "c", first="a")
    assert build(project, c, backend, keys).fetched == ("seal",)
    assert sealed_sha(c) == sealed_sha(a) != sealed_sha(b)


def test_concurrent_pushes_of_one_key_leave_one_consistent_record(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    """Racing pushers of one key: one record, naming an image with its own bytes."""
    key = "ab" * 32
    images = []
    for n in range(4):
        path = tmp_path / f"img{n}"
        path.write_bytes(bytes([n + 1]) * (3 * 1024 * 1024 + n))
        images.append(path)
    start = threading.Barrier(len(images))
    results: list[Any] = [None] * len(images)

    def push(n: int) -> None:
        record = {
            "key": key,
            "name": "common",
            "image": "layer.qcow2",
            "sha256": sha256_file(images[n]),
            "size": images[n].stat().st_size,
            "parent": None,
            "parent_sha256": None,
            "inputs": {},
            "facts": {},
            "manifest": None,
        }
        start.wait()
        results[n] = layer_cache.push(
            backend, record, images[n], keys.private_key, keys.allowed_signers
        )

    threads = [threading.Thread(target=push, args=(n,)) for n in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    layer = layer_cache.read_record(backend, key, keys.allowed_signers)
    assert layer is not None
    assert sum(1 for r in results if r.won) == 1
    assert all(r.store_sha256 == layer.sha256 for r in results)
    fetched = tmp_path / "fetched"
    layer_cache.fetch_image(backend, layer, fetched, show_progress=False)
    assert sha256_file(fetched) == layer.sha256


def built_and_published(
    project: Path, backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> tuple[Artifacts, list[str | None]]:
    """Host a builds fa (pushing every layer); an image naming those layers is published."""
    a = host(project, "a")
    build(project, a, backend, keys)
    kept = [a.cache.ref("fa", name) for name in LAYERS]
    sealed = make_sealed_image(
        tmp_path / "img", family="fa", extra={"layers": [{"name": "x", "key": k} for k in kept]}
    )
    publish_image(backend, sealed, keys.private_key, channel="stable")
    return a, kept


def test_prune_removes_layers_no_kept_image_names(
    project: Path, backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    """The remote layers of a kept image stay; others go with prune --apply."""
    a, kept = built_and_published(project, backend, keys, tmp_path)
    build(project, a, backend, keys, "fb")  # pushes fb's own seal, named by no image
    fb_seal = a.cache.ref("fb", "seal")
    plan = plan_prune(backend, 5)
    assert plan.delete_layers == (fb_seal,)
    assert f"would delete remote layer {fb_seal}" in plan.describe(applied=False)
    apply_prune(backend, plan)
    assert layer_cache.listing(backend) == frozenset(k for k in kept if k)
    assert backend.list_keys(f"{layer_cache.PREFIX}{fb_seal}/") == []
    assert layout.visible_images(backend)


def test_plan_with_a_layer_cache_store_creates_nothing(project: Path, keys: SigningKeys) -> None:
    """`plan` stays read-only with a directory store as its layer cache: no store dir made."""
    config = project / "f.yaml"
    config.write_text(
        config.read_text()
        + "store:\n  kind: fs\n  path: store\n  layer_cache: true\n"
        + f"  signing_key: {keys.private_key}\n  allowed_signers: {keys.allowed_signers}\n"
    )
    text = commands.plan(config, "fa", project / "artifacts")
    assert text.splitlines()[0] == "family fa (5 layers, 5 to build)"
    assert not (project / "store").exists()


def _opened(backend: StoreBackend, signing_key: Path, allowed_signers: Path) -> RemoteCache:
    """The cache as a build opens it: push preconditions proven before anything is built."""
    blocked = layer_cache.push_problem(backend, signing_key, allowed_signers)
    return RemoteCache(backend, signing_key, allowed_signers, layer_cache.listing(backend), blocked)


def _layer_objects(backend: StoreBackend) -> list[str]:
    return backend.list_keys("cache/")


@pytest.mark.parametrize("problem", ["missing key", "untrusted key"])
def test_a_host_that_cannot_sign_pushes_no_byte(
    project: Path, backend: StoreBackend, keys: SigningKeys, tmp_path: Path, problem: str
) -> None:
    """A missing signing key, or one readers would not trust, is found before any upload: the
    build still builds (and fetches), the store holds no blob without its record."""
    if problem == "missing key":
        signing_key, why = tmp_path / "no-such-key", "does not exist"
    else:
        other = make_signing_keys(tmp_path / "other", principal="stranger@elsewhere")
        signing_key, why = other.private_key, "a probe signed with store.signing_key"
    cache = _opened(backend, signing_key, keys.allowed_signers)
    assert cache.push_blocked is not None and why in cache.push_blocked
    cfg = load_config(project / "f.yaml")
    res = build_family(cfg, cfg.family("fa"), host(project, "a"), cache)
    assert res.built == LAYERS
    assert _layer_objects(backend) == []


def test_a_read_only_s3_identity_is_found_before_the_first_byte(
    project: Path, keys: SigningKeys, s3_server: Any, new_bucket: str
) -> None:
    """The hypervisors' read-only identity: the build fetches only and uploads nothing."""
    reader = S3Backend(s3_server.settings(new_bucket), s3_server.readonly_credentials())
    cache = _opened(reader, keys.private_key, keys.allowed_signers)
    assert cache.push_blocked is not None
    assert "refuses this host's writes" in cache.push_blocked
    cfg = load_config(project / "f.yaml")
    res = build_family(cfg, cfg.family("fa"), host(project, "a"), cache)
    assert res.built == LAYERS
    writer = S3Backend(s3_server.settings(new_bucket), s3_server.credentials())
    assert _layer_objects(writer) == []


def test_prune_removes_what_an_interrupted_push_left(
    project: Path, backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    """A blob without its record (push killed before the record) and a record whose blob is
    gone are orphans: prune lists and removes them; the sound layers stay usable."""
    a, kept = built_and_published(project, backend, keys, tmp_path)
    stack, harden = a.cache.ref("fa", "stack"), a.cache.ref("fa", "harden")
    assert stack is not None and harden is not None
    stray = layer_cache.blob_key(stack, "0" * 64)  # a lost push's image: no record names it
    backend.put_bytes(stray, b"half a layer")
    harden_sha = json.loads(backend.get_bytes(layer_cache.record_key(harden)))["record"]["sha256"]
    backend.delete(layer_cache.blob_key(harden, harden_sha))  # a record without its image
    plan = plan_prune(backend, 5)
    assert sorted(plan.orphans) == sorted([stray, layer_cache.record_key(harden)])
    assert f"would delete orphan {stray}" in plan.describe(applied=False)
    apply_prune(backend, plan)
    assert backend.size(stray) is None
    assert layer_cache.listing(backend) == frozenset(k for k in kept if k and k != harden)
    assert plan_prune(backend, 5).orphans == ()


def test_a_record_whose_image_is_gone_is_replaced_by_the_next_push(
    project: Path, backend: StoreBackend, keys: SigningKeys
) -> None:
    """Else it would fail every fetch and block every push of its key."""
    a = host(project, "a")
    build(project, a, backend, keys)
    seal = a.cache.ref("fa", "seal")
    assert seal is not None
    sha = json.loads(backend.get_bytes(layer_cache.record_key(seal)))["record"]["sha256"]
    backend.delete(layer_cache.blob_key(seal, sha))
    fresh = Artifacts(project / "a2")
    shutil.copytree(project / "a" / "keys", fresh.credentials)
    build(project, fresh, backend, keys)  # builds seal again (fetch fails) and pushes it
    record = layer_cache.read_record(backend, seal, keys.allowed_signers)
    assert record is not None
    assert backend.size(layer_cache.blob_key(seal, record.sha256)) == record.size
