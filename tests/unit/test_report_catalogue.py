"""The catalogue page's plots and HTML, from hand-made catalogues (no store): text
alternatives, escaping, an empty store, one version, untrusted and revoked versions."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from imagefactory.errors import FactoryError
from imagefactory.report.catalogue.html import render_family, render_index, when
from imagefactory.report.catalogue.model import (
    Catalogue,
    ChannelEntry,
    FamilyEntry,
    HistoryEntry,
    SiteFile,
    VersionEntry,
    build_seconds,
    verification_words,
)
from imagefactory.report.catalogue.site import MARKER, site_files, write_site
from imagefactory.report.catalogue.svg import Point, line_plot
from imagefactory.report.changelog import Changelog, PackageChange

V1 = "20261124T101500Z-1a2b3c4d5e6f"
V2 = "20261125T101500Z-6f5e4d3c2b1a"


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text, of an HTML document."""

    def __init__(self, doc: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(doc)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag]


def version(ver: str = V1, **kw: object) -> VersionEntry:
    fields: dict[str, object] = {
        "family": "persistence",
        "version": ver,
        "built": "2026-11-24T10:15:00+00:00",
        "published": "2026-11-24T11:00:00+00:00",
        "size": 3 * 1024 * 1024,
        "sha256": "ab" * 32,
        "score": 97.1,
        "verification": "passed (12 tests)",
        "build_seconds": 600.0,
        "problem": "",
    }
    return VersionEntry(**(fields | kw))  # type: ignore[arg-type]


def catalogue(*families: FamilyEntry) -> Catalogue:
    return Catalogue("directory store /srv/store", "2026-11-26T00:00:00+00:00", families)


def test_plot_without_values_says_so() -> None:
    """No values: the plot says "no values to plot" in its text and its description."""
    svg = Tags(line_plot("p", "CIS score", []))
    assert svg.named("circle") == [] and svg.named("polyline") == []
    assert "no values to plot" in svg.text
    assert svg.named("svg")[0]["aria-labelledby"] == "p-title p-desc"


def test_plot_of_one_value_is_one_point() -> None:
    """One value: one point in the middle, no line, the value in title and description."""
    svg = line_plot("one", "Image size", [Point(V1, 42.0)], lambda x: f"{x:.0f} B")
    tags = Tags(svg)
    assert tags.named("polyline") == []
    assert tags.named("circle") == [{"cx": "345.0", "cy": "100.0", "r": "4", "fill": "#1f5fa8"}]
    assert f'<desc id="one-desc">1 value(s), oldest first: {V1}: 42 B</desc>' in svg
    assert f"<title>{V1}: 42 B</title>" in svg


def test_plot_scales_between_lowest_and_highest() -> None:
    """The lowest value sits on the axis, the highest at the top, the labels name both."""
    svg = line_plot("s", "score", [Point("a", 90.0), Point("b", 95.0), Point("c", 100.0)])
    tags = Tags(svg)
    assert tags.named("polyline")[0]["points"] == "70.0,180.0 345.0,100.0 620.0,20.0"
    assert "90" in tags.text and "100" in tags.text
    assert "3 value(s), oldest first: a: 90; b: 95; c: 100. left out: 1" in line_plot(
        "s", "score", [Point("a", 90.0), Point("b", 95.0), Point("c", 100.0)], note="left out: 1"
    )


def test_plot_escapes_its_text() -> None:
    """Title, labels and note are escaped: no markup gets in through a version or a title."""
    svg = line_plot("x", "a <b> & c", [Point("<v>", 1.0)], note="<n>")
    assert "<b>" not in svg and "<v>" not in svg and "<n>" not in svg
    assert "a &lt;b&gt; &amp; c" in svg and "&lt;v&gt;: 1" in svg


def test_empty_store_index() -> None:
    """An empty store: an index page that says nothing is published, in English."""
    page = render_index(catalogue())
    assert '<html lang="en">' in page
    assert "<p>No images are published in this store.</p>" in page
    assert site_files(catalogue()).keys() == {"index.html"}


def test_names_and_reasons_are_escaped() -> None:
    """A family, channel, pointer problem and revocation reason with markup come out as text."""
    fam = FamilyEntry(
        "x<y>",
        (version(family="x<y>", revoked="<script>alert(1)</script>"),),
        (ChannelEntry("x<y>", "st&ble", V2, "bad <sig>", history_note="not shown"),),
    )
    for page in (render_index(catalogue(fam)), render_family(catalogue(fam), fam)):
        assert "<y>" not in page and "<script>" not in page and "<sig>" not in page
    family = render_family(catalogue(fam), fam)
    assert "revoked: &lt;script&gt;alert(1)&lt;/script&gt;" in family
    assert "NOT TRUSTED: bad &lt;sig&gt;" in family
    assert 'href="family-x&lt;y&gt;.html"' in render_index(catalogue(fam))


def test_one_version_family_page() -> None:
    """One version: one row headed by it, every header cell scoped, each plot one point."""
    files = (SiteFile("SBOM (CycloneDX JSON)", "sbom.cdx.json", "images/k", 10, b"{}"),)
    fam = FamilyEntry(
        "persistence",
        (version(channels=("nightly",), files=files, change_note="first published version"),),
        (),
    )
    page = render_family(catalogue(fam), fam)
    tags = Tags(page)
    assert all(a.get("scope") in ("col", "row") for a in tags.named("th"))
    assert [a["scope"] for a in tags.named("th")].count("row") == 1
    assert len(tags.named("caption")) == 1 and len(tags.named("circle")) == 3
    assert f'href="files/persistence/{V1}/sbom.cdx.json"' in page
    assert "first published version" in page and "not revoked" in page
    assert "97.1" in page and "passed (12 tests)" in page and "3.0 MiB" in page
    assert "No channel is set for this family." in page


def test_untrusted_version_says_so_in_words() -> None:
    """A manifest whose signature fails: FAILS and the reason, claims flagged, no files,
    and it is left out of the plots (said in their description)."""
    bad = version(V2, problem="signature does not verify", score=99.9)
    fam = FamilyEntry("persistence", (version(), bad), ())
    page = render_family(catalogue(fam), fam)
    assert '<span class="bad">FAILS: signature does not verify</span>' in page
    assert "99.9 (unverified claim)" in page and "passed (12 tests) (unverified claim)" in page
    assert "not shown: the manifest is not trusted" in page
    assert len(Tags(page).named("circle")) == 3  # only V1, on each of the three plots
    assert "Left out: 1 version(s) whose manifest is not trusted" in page
    index = render_index(catalogue(fam))
    assert "1 not trusted" in index


def test_channels_history_and_changelog() -> None:
    """A channel with history gets a table of it; a changelog lists what changed."""
    changes = Changelog(
        "persistence",
        V1,
        V2,
        upgraded=(PackageChange("bash", "x86_64", "4.4.20-4.el8", "4.4.20-5.el8"),),
    )
    channel = ChannelEntry(
        "persistence",
        "stable",
        V2,
        "",
        "2026-11-25T12:00:00+00:00",
        "ops@host",
        "builder@imagefactory.test",
        (HistoryEntry(V1, "2026-11-24T12:00:00+00:00", "ops@host"),),
    )
    fam = FamilyEntry("persistence", (version(), version(V2, changes=changes)), (channel,))
    page = render_family(catalogue(fam), fam)
    assert "<caption>Earlier versions of channel stable, newest first</caption>" in page
    assert f'<tr><th scope="row">{V1}</th><td>2026-11-24 12:00:00 UTC</td>' in page
    assert "verified (signed by builder@imagefactory.test)" in page
    assert "<li>bash (x86_64): 4.4.20-4.el8 to 4.4.20-5.el8</li>" in page
    assert f"<h3>{V2} since {V1}</h3>" in page


def test_verification_and_build_time_words() -> None:
    """What the manifest's verification and build times become on the page."""
    assert verification_words({"verification": {"passed": True, "tests": 12}}) == (
        "passed (12 tests)"
    )
    assert verification_words({"verification": {"passed": False, "tests": 12, "failed": 1}}) == (
        "failed (1 of 12 tests)"
    )
    assert verification_words({}) == "not run"
    assert verification_words({"store": {"unverified_override": True}}) == (
        "not passed: published by override"
    )
    started, finished = "2026-11-24T10:00:00+00:00", "2026-11-24T10:15:00Z"
    assert build_seconds({"build": {"started": started, "finished": finished}}) == 900.0
    assert build_seconds({"build": {"finished": finished}}) is None
    assert when("2026-11-24T10:15:00+00:00") == when("2026-11-24T10:15:00Z")
    assert when("2026-11-24T10:15:00Z") == "2026-11-24 10:15:00 UTC"
    assert when("2026-11-24T11:15:00+01:00") == "2026-11-24T11:15:00+01:00"
    assert when("") == "-"


def test_write_site_replaces_only_a_catalogue(tmp_path: Path) -> None:
    """The site replaces an earlier one; a directory holding anything else is refused."""
    out = tmp_path / "site"
    write_site({"index.html": b"one", "old.html": b"x"}, out)
    write_site({"index.html": b"two"}, out)
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "index.html"]
    assert (out / "index.html").read_bytes() == b"two"
    other = tmp_path / "home"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(FactoryError, match=r"holds something other than a catalogue"):
        write_site({"index.html": b"x"}, other)
    assert (other / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "site"]  # no leftovers
