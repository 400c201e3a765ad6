"""The catalogue page (`invoke catalogue`, publish/promote --catalogue) from a real store of
signed versions, opened in a headless browser: rows, channels, the revoked mark, a manifest
whose signature fails said in words, and every local link and asset resolving to a file."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from imagefactory.config import load_store_settings
from imagefactory.report.catalogue import write_catalogue
from imagefactory.report.catalogue.model import collect
from imagefactory.report.catalogue.site import site_files, upload_site
from imagefactory.store import layout
from imagefactory.store.backend import StoreBackend
from imagefactory.store.channels import promote
from imagefactory.store.fs_backend import FsBackend
from imagefactory.store.publish import publish_image
from imagefactory.store.s3_backend import S3Backend
from imagefactory.store.signing import sign_bytes
from tests.clikit import run_task
from tests.prereq import require_tool
from tests.storekit import SigningKeys, make_sealed_image, make_signing_keys

pytestmark = pytest.mark.integration
KIB = 1024
RPMS = {
    24: ["bash-4.4.20-4.el8.x86_64", "telnet-0.17-76.el8.x86_64"],
    25: ["bash-4.4.20-5.el8.x86_64"],
    26: ["bash-4.4.20-5.el8.x86_64", "vim-minimal-8.0.1763-19.el8.x86_64"],
}
BROWSER_TIMEOUT = 120  # seconds per run: chromium is slow on a small shared machine


def _publish(store: StoreBackend, keys: SigningKeys, where: Path, family: str, day: int) -> str:
    finished = datetime(2026, 11, day, 10, 15, tzinfo=UTC)
    started = datetime(2026, 11, day, 9, day, tzinfo=UTC)  # a build time per version
    sealed = make_sealed_image(
        where / f"{family}-{day}",
        family,
        size=64 * KIB + day,
        seed=day,
        finished=finished,
        score=90.0 + day / 10,
        packages=RPMS[day],
        sbom=True,
        extra={"build": {"started": started.isoformat(), "finished": finished.isoformat()}},
    )
    res = publish_image(store, sealed, keys.private_key, channel="nightly", show_progress=False)
    return res.version


def _store_config(tmp_path: Path, keys: SigningKeys) -> Path:
    conf = tmp_path / "store.yaml"
    conf.write_text(
        f"store:\n  kind: fs\n  path: {tmp_path / 'store'}\n"
        f"  signing_key: {keys.private_key}\n  allowed_signers: {keys.allowed_signers}\n"
    )
    return conf


def _sign_with_a_stranger(store: StoreBackend, tmp_path: Path, family: str, version: str) -> None:
    """Replace the manifest's signature by one from a key allowed_signers does not trust."""
    stranger = make_signing_keys(tmp_path / "stranger", "stranger@elsewhere.test")
    data = store.get_bytes(layout.manifest_key(family, version))
    store.put_bytes(layout.signature_key(family, version), sign_bytes(data, stranger.private_key))


class Refs(HTMLParser):
    """The href/src attributes and element ids of one page."""

    def __init__(self, doc: str) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.ids: set[str] = set()
        self.feed(doc)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value is not None:
                self.refs.append(value)
            if name == "id" and value is not None:
                self.ids.add(value)


def broken_links(site: Path, pages: dict[Path, str]) -> list[str]:
    """Every link or asset of `pages` (path -> DOM) that is external, leaves the site, names
    no file, or names an anchor its page lacks."""
    bad = []
    for page, dom in pages.items():
        for ref in Refs(dom).refs:
            target, _, anchor = ref.partition("#")
            if ":" in target or target.startswith("/"):
                bad.append(f"{page.name}: {ref} is not a relative link")
                continue
            path = (page.parent / target).resolve() if target else page
            if not path.is_relative_to(site.resolve()) or not path.is_file():
                bad.append(f"{page.name}: {ref} names no file of the site")
            elif anchor and path.suffix == ".html" and anchor not in Refs(path.read_text()).ids:
                bad.append(f"{page.name}: {ref}: no element with id {anchor!r}")
    return bad


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One headless chromium run with a throwaway profile; fails on error or timeout."""
    exe = require_tool("chromium")
    cmd = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        *args,
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=BROWSER_TIMEOUT)
    assert run.returncode == 0, f"{' '.join(cmd)}:\n{run.stderr[-2000:]}"
    return run


def test_catalogue_site_in_a_browser(tmp_path: Path) -> None:
    """`invoke catalogue --out` writes a site whose pages render with every version row,
    channel, revoked mark and failing signature, and whose every local link resolves."""
    require_tool("chromium")
    keys = make_signing_keys(tmp_path / "keys")
    store = FsBackend(tmp_path / "store")
    v1, v2, v3 = (_publish(store, keys, tmp_path, "persistence", d) for d in (24, 25, 26))
    promote(
        store, "persistence", v2, "stable", keys.private_key, allowed_signers=keys.allowed_signers
    )
    bad = _publish(store, keys, tmp_path, "workers", 24)
    _sign_with_a_stranger(store, tmp_path, "workers", bad)
    conf = _store_config(tmp_path, keys)

    run = run_task("catalogue", f"--config={conf}", f"--out={tmp_path / 'site'}", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    site = tmp_path / "site"
    assert "catalogue: 2 families, 4 version(s), 15 file(s):" in run.stdout
    # v1 revoked through the CLI: the next site reads the signed record from the store
    revoke = run_task(
        "revoke",
        f"--config={conf}",
        "--family=persistence",
        f"--version={v1}",
        "--reason=CVE-2026-0001 in openssh",
        cwd=tmp_path,
    )
    assert revoke.returncode == 0, revoke.stdout + revoke.stderr
    revoked_site = tmp_path / "revoked-site"
    write_catalogue(load_store_settings(conf), revoked_site)

    index = chromium(tmp_path, "--dump-dom", (site / "index.html").as_uri()).stdout
    family_page = revoked_site / "family-persistence.html"
    family = chromium(tmp_path, "--dump-dom", family_page.as_uri()).stdout
    shot = tmp_path / "family.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", family_page.as_uri())
    assert shot.is_file() and shot.stat().st_size > 20_000

    assert '<a href="family-persistence.html">persistence</a>' in index
    assert '<a href="family-workers.html">workers</a>' in index
    for channel, version in (("nightly", v3), ("stable", v2)):
        assert (
            f'<th scope="row">persistence</th><td>{channel}</td><td><a href="family-persistence'
            f'.html#v-{version}">{version}</a></td>'
        ) in index
    assert f"<td>nightly</td><td>{bad} (claimed, not trusted)</td>" in index
    assert f"NOT TRUSTED: points at {bad}: its manifest is not trusted" in index
    assert '<span class="bad">1 not trusted</span>' in index

    for v in (v1, v2, v3):
        assert f'<tr><th scope="row"><span id="v-{v}">{v}</span></th>' in family
        assert f'href="files/persistence/{v}/sbom.cdx.json"' in family
    assert f"{v1}</span></th>" in family and "revoked: CVE-2026-0001 in openssh" in family
    assert family.count("not revoked") == 2
    assert "<li>vim-minimal (x86_64): 8.0.1763-19.el8</li>" in family  # v2 -> v3 changelog
    assert family.count("<circle") == 9  # three plots of three versions
    assert "History of stable" in family and "History of nightly" in family
    assert f'<tr><th scope="row">{v2}</th>' in family  # nightly's history: v2, then v1
    workers = (site / "family-workers.html").read_text()
    assert f"FAILS: workers {bad} manifest: signed by a key that is not in " in workers
    assert "(unverified claim)" in workers and "not shown: the manifest is not trusted" in workers

    for root, dumped in (
        (site, {site / "index.html": index}),
        (revoked_site, {family_page: family}),
    ):
        pages = {p: p.read_text() for p in root.glob("*.html")} | dumped
        assert len(pages) == 3
        assert broken_links(root, pages) == []


def test_broken_link_check_finds_what_is_missing(tmp_path: Path) -> None:
    """The link check itself fails on a missing file, a missing anchor and an outside asset."""
    (tmp_path / "index.html").write_text('<p id="here">x</p>')
    page = tmp_path / "index.html"
    dom = '<a href="gone.html">a</a><a href="index.html#nowhere">b</a><img src="https://x/y.png">'
    assert broken_links(tmp_path, {page: dom}) == [
        "index.html: gone.html names no file of the site",
        "index.html: index.html#nowhere: no element with id 'nowhere'",
        "index.html: https://x/y.png is not a relative link",
    ]


def test_promote_uploads_the_catalogue(tmp_path: Path) -> None:
    """`invoke promote --catalogue` moves the channel, then puts the page under catalogue/."""
    keys = make_signing_keys(tmp_path / "keys")
    store = FsBackend(tmp_path / "store")
    version = _publish(store, keys, tmp_path, "persistence", 24)
    conf = _store_config(tmp_path, keys)
    args = ("--family=persistence", f"--version={version}", "--channel=stable")
    run = run_task("promote", *args, "--catalogue", f"--config={conf}", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"persistence: stable -> {version}" in run.stdout
    assert "catalogue: 1 family, 1 version(s), 6 file(s):" in run.stdout
    page = store.get_bytes("catalogue/family-persistence.html").decode()
    assert f'<td><a href="family-persistence.html#v-{version}">{version}</a></td>' in page
    assert b"stable" in store.get_bytes("catalogue/index.html")


def test_upload_replaces_an_earlier_catalogue(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    """Uploading puts every file under catalogue/ and drops what the new site lacks."""
    old = _publish(backend, keys, tmp_path, "persistence", 24)
    backend.put_bytes("catalogue/family-gone.html", b"stale")
    files = site_files(collect(backend, keys.allowed_signers))
    assert upload_site(backend, files) == 6
    keys_now = set(backend.list_keys("catalogue/"))
    assert keys_now == {f"catalogue/{rel}" for rel in files}
    assert f"catalogue/files/persistence/{old}/sbom.cdx.json" in keys_now
    assert old in backend.get_bytes("catalogue/index.html").decode()
    if isinstance(backend, S3Backend):  # served from the bucket, a browser must see a page
        stat = backend.client.stat_object(backend.bucket, "catalogue/index.html")
        assert stat.content_type == "text/html; charset=utf-8"


def test_publish_says_it_stands_when_the_catalogue_fails(tmp_path: Path) -> None:
    """`invoke publish --catalogue`: the image is published; a page that cannot be made (no
    allowed_signers to check against) fails the task, saying the publish stands."""
    keys = make_signing_keys(tmp_path / "keys")
    art = tmp_path / "art"
    make_sealed_image(art / "images" / "persistence", size=64 * KIB, packages=RPMS[24])
    conf = tmp_path / "store.yaml"
    conf.write_text(
        f"store:\n  kind: fs\n  path: {tmp_path / 'store'}\n"
        f"  signing_key: {keys.private_key}\n  allowed_signers: {tmp_path / 'nowhere'}\n"
    )
    env = {"INVOKE_FACTORY_ARTIFACTS": str(art)}
    run = run_task(
        "publish", "--family=persistence", "--catalogue", f"--config={conf}", cwd=tmp_path, env=env
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "error: published persistence 20261124T101500Z-" in run.stderr
    assert "but the catalogue page was not uploaded: allowed_signers file" in run.stderr
    assert "Traceback" not in run.stderr
    store = FsBackend(tmp_path / "store")
    assert len(layout.visible_images(store)) == 1 and store.list_keys("catalogue/") == []
