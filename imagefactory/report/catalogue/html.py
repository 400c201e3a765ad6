"""The catalogue's pages as HTML: index.html and one page per family.

Plain static HTML: no script, no external asset, every link relative. Tables have a caption
and header cells with scope; whatever is marked (an untrusted signature, a revoked version)
says so in words, colour only repeats it. Every value from the store is escaped.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from imagefactory.report.catalogue.model import (
    Catalogue,
    ChannelEntry,
    FamilyEntry,
    SiteFile,
    VersionEntry,
)
from imagefactory.report.catalogue.svg import Point, line_plot
from imagefactory.report.changelog import Changelog, PackageChange

_STYLE = """
body { font-family: sans-serif; margin: 1.5rem; color: #111; max-width: 90rem; }
table { border-collapse: collapse; margin: 1rem 0; }
caption { text-align: left; font-weight: bold; padding: .3rem 0; }
th, td { border: 1px solid #999; padding: .3rem .5rem; vertical-align: top; text-align: left; }
.bad { overflow-wrap: anywhere; }
thead th { background: #e8e8e8; }
code { font-size: .85em; word-break: break-all; }
.bad, .revoked { color: #a00000; font-weight: bold; }
figure { margin: 1rem 0; }
ul { margin: 0; padding-left: 1.2rem; }
"""


def e(value: object) -> str:
    return escape(str(value), quote=True)


def family_page(family: str) -> str:
    """The family page's file name (families are plain names: NAME_RE)."""
    return f"family-{family}.html"


def file_path(version: VersionEntry, f: SiteFile) -> str:
    """Where a copied report lives in the site, relative to its pages."""
    return f"files/{version.family}/{version.version}/{f.name}"


def human_size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{int(count)} B" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def when(text: str) -> str:
    """An ISO time as "2026-11-24 10:15:00 UTC" (room to wrap in a table cell); as given if
    it is not one in UTC."""
    for utc in ("+00:00", "Z"):
        if text.endswith(utc) and "T" in text:
            return text[: -len(utc)].replace("T", " ", 1) + " UTC"
    return text or "-"


def _page(title: str, body: str, cat: Catalogue, nav: bool) -> str:
    back = '<nav><a href="index.html">All families</a></nav>' if nav else ""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{e(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<header>{back}<h1>{e(title)}</h1></header>\n<main>\n{body}</main>\n"
        f"<footer><p>Made {e(when(cat.generated))} from the store {e(cat.store)}. Only what "
        "verified against the store's allowed signers is shown as verified.</p></footer>\n"
        "</body>\n</html>\n"
    )


def _table(caption: str, headers: list[str], rows: list[list[str]]) -> str:
    """A table whose first cell per row is its row header; cells are HTML already."""
    head = "".join(f'<th scope="col">{e(h)}</th>' for h in headers)
    body = "".join(
        f'<tr><th scope="row">{r[0]}</th>' + "".join(f"<td>{c}</td>" for c in r[1:]) + "</tr>\n"
        for r in rows
    )
    return (
        f"<table>\n<caption>{e(caption)}</caption>\n<thead><tr>{head}</tr></thead>\n"
        f"<tbody>\n{body}</tbody>\n</table>\n"
    )


def _pointer(ch: ChannelEntry) -> str:
    if ch.trusted:
        return f"verified (signed by {e(ch.signer)})"
    return f'<span class="bad">NOT TRUSTED: {e(ch.problem)}</span>'


def _channel_version(ch: ChannelEntry) -> str:
    if not ch.version:
        return "unreadable"
    if ch.trusted:
        return f'<a href="{e(family_page(ch.family))}#v-{e(ch.version)}">{e(ch.version)}</a>'
    return f"{e(ch.version)} (claimed, not trusted)"


def render_index(cat: Catalogue) -> str:
    """index.html: every family with its versions and every channel pointer."""
    if not cat.families:
        return _page(
            "Image catalogue", "<p>No images are published in this store.</p>\n", cat, False
        )
    fam_rows = []
    for fam in cat.families:
        untrusted = sum(1 for v in fam.versions if not v.trusted)
        revoked = sum(1 for v in fam.versions if v.revoked is not None)
        newest = e(fam.versions[-1].version) if fam.versions else "none published"
        fam_rows.append(
            [
                f'<a href="{e(family_page(fam.name))}">{e(fam.name)}</a>',
                str(len(fam.versions)),
                newest,
                f'<span class="bad">{untrusted} not trusted</span>' if untrusted else "none",
                f'<span class="revoked">{revoked} revoked</span>' if revoked else "none",
            ]
        )
    body = _table(
        "Families",
        ["Family", "Versions", "Newest version", "Untrusted manifests", "Revoked versions"],
        fam_rows,
    )
    channels = [c for fam in cat.families for c in fam.channels]
    if channels:
        body += _table(
            "Channels",
            ["Family", "Channel", "Version", "Promoted", "Pointer signature"],
            [
                [e(c.family), e(c.channel), _channel_version(c), e(when(c.promoted)), _pointer(c)]
                for c in channels
            ],
        )
    else:
        body += "<p>No channel is set.</p>\n"
    return _page("Image catalogue", body, cat, False)


def _files(v: VersionEntry) -> str:
    if not v.trusted:
        return "not shown: the manifest is not trusted"
    if not v.files:
        return "none"
    items = []
    for f in v.files:
        if f.data is not None:
            items.append(
                f'<li><a href="{e(file_path(v, f))}">{e(f.label)}</a> ({human_size(f.size)})</li>'
            )
        else:
            items.append(
                f"<li>{e(f.label)}: too large to copy ({human_size(f.size)}), in the store "
                f"at <code>{e(f.store_key)}</code></li>"
            )
    return "<ul>" + "".join(items) + "</ul>"


def _claim(text: str, v: VersionEntry) -> str:
    return e(text) if v.trusted else f"{e(text)} (unverified claim)"


def _version_row(v: VersionEntry) -> list[str]:
    signature = "verified" if v.trusted else f'<span class="bad">FAILS: {e(v.problem)}</span>'
    score = "-" if v.score is None else f"{v.score:.1f}"
    status = (
        f'<strong class="revoked">revoked: {e(v.revoked)}</strong>'
        if v.revoked is not None
        else "not revoked"
    )
    return [
        f'<span id="v-{e(v.version)}">{e(v.version)}</span>',
        e(when(v.built)),
        e(when(v.published)),
        human_size(v.size),
        f"<code>{e(v.sha256)}</code>",
        _claim(score, v),
        _claim(v.verification, v),
        signature,
        e(", ".join(v.channels) or "none"),
        _files(v),
        status,
    ]


def _plots(fam: FamilyEntry) -> str:
    trusted = [v for v in fam.versions if v.trusted]
    left_out = len(fam.versions) - len(trusted)
    note = f"Left out: {left_out} version(s) whose manifest is not trusted" if left_out else ""
    series: list[tuple[str, str, Callable[[VersionEntry], float | None], Callable[[float], str]]]
    series = [
        ("score", "CIS score", lambda v: v.score, lambda x: f"{x:.1f}"),
        ("size", "Image size", lambda v: float(v.size), human_size),
        ("build", "Build time", lambda v: v.build_seconds, lambda x: f"{x:.0f} s"),
    ]
    out = ['<section aria-labelledby="trends">\n<h2 id="trends">Trends</h2>\n']
    for key, title, value, fmt in series:
        points = [Point(v.version, y) for v in trusted if (y := value(v)) is not None]
        svg = line_plot(f"plot-{key}", f"{title} of {fam.name} over versions", points, fmt, note)
        out.append(f"<figure>{svg}<figcaption>{e(title)} over versions</figcaption></figure>\n")
    return "".join(out) + "</section>\n"


def _channels(fam: FamilyEntry) -> str:
    if not fam.channels:
        return "<p>No channel is set for this family.</p>\n"
    out = _table(
        f"Channels of {fam.name}",
        ["Channel", "Version", "Promoted", "By", "Pointer signature"],
        [
            [e(c.channel), _channel_version(c), e(when(c.promoted)), e(c.by or "-"), _pointer(c)]
            for c in fam.channels
        ],
    )
    for c in fam.channels:
        out += f"<h3>History of {e(c.channel)}</h3>\n"
        if not c.history:
            out += f"<p>{e(c.history_note)}</p>\n"
            continue
        out += _table(
            f"Earlier versions of channel {c.channel}, newest first",
            ["Version", "Promoted", "By"],
            [[e(h.version), e(when(h.promoted)), e(h.by or "-")] for h in c.history],
        )
    return out


def _package_list(title: str, changes: tuple[PackageChange, ...], show: str) -> str:
    if not changes:
        return ""
    items = []
    for c in changes:
        arch = f" ({e(c.arch)})" if c.arch else ""
        what = {"both": f"{e(c.old)} to {e(c.new)}", "new": e(c.new), "old": e(c.old)}[show]
        items.append(f"<li>{e(c.name)}{arch}: {what}</li>")
    return f"<h4>{e(title)} ({len(changes)})</h4>\n<ul>{''.join(items)}</ul>\n"


def _changelog(cl: Changelog) -> str:
    if cl.unchanged and not cl.notes:
        return "<p>No package or layer changed.</p>\n"
    out = _package_list("Upgraded packages", cl.upgraded, "both")
    out += _package_list("Downgraded packages", cl.downgraded, "both")
    out += _package_list("Added packages", cl.added, "new")
    out += _package_list("Removed packages", cl.removed, "old")
    if cl.layers:
        items = []
        for layer in cl.layers:
            if layer.old_key is None:
                what = "new"
            elif layer.new_key is None:
                what = "dropped"
            else:
                what = f"rebuilt ({e(layer.old_key[:12])} to {e(layer.new_key[:12])})"
            items.append(f"<li>{e(layer.name)}: {what}</li>")
        out += f"<h4>Layers ({len(cl.layers)})</h4>\n<ul>{''.join(items)}</ul>\n"
    if cl.notes:
        out += "<h4>Notes</h4>\n<ul>" + "".join(f"<li>{e(n)}</li>" for n in cl.notes) + "</ul>\n"
    return out


def _changes(fam: FamilyEntry) -> str:
    out = ['<section aria-labelledby="changes">\n<h2 id="changes">Changes between versions</h2>\n']
    versions = list(fam.versions)
    for i in range(len(versions) - 1, -1, -1):  # newest first
        v = versions[i]
        since = f" since {versions[i - 1].version}" if i else ""
        out.append(f"<h3>{e(v.version)}{e(since)}</h3>\n")
        out.append(_changelog(v.changes) if v.changes else f"<p>{e(v.change_note)}</p>\n")
    return "".join(out) + "</section>\n"


def render_family(cat: Catalogue, fam: FamilyEntry) -> str:
    """The family's page: versions table, trend plots, channels with history, changelogs."""
    if fam.versions:
        versions = _table(
            f"Published versions of {fam.name}, oldest first",
            [
                "Version",
                "Built (finished)",
                "Published",
                "Size",
                "SHA-256",
                "CIS score",
                "Verification",
                "Manifest signature",
                "Channels",
                "Files",
                "Status",
            ],
            [_version_row(v) for v in fam.versions],
        )
    else:
        versions = "<p>No version of this family is published.</p>\n"
    body = (
        f'<section aria-labelledby="versions">\n<h2 id="versions">Versions</h2>\n{versions}'
        "</section>\n"
        + _plots(fam)
        + '<section aria-labelledby="channels">\n<h2 id="channels">Channels</h2>\n'
        + _channels(fam)
        + "</section>\n"
        + _changes(fam)
    )
    return _page(f"Family {fam.name}", body, cat, True)
