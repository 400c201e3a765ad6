"""Small inline SVG line plots (no script, no external asset) with text alternatives.

Each plot carries a <title> and a <desc> naming every value, referenced by aria-labelledby,
so a screen reader gets the numbers, not a picture of them; each point has its own <title>.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 20, 20, 40  # margins: room for the axis labels


@dataclass(frozen=True)
class Point:
    label: str  # the version
    value: float


def _range(values: Sequence[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:  # one value, or all equal: a flat line in the middle
        pad = abs(lo) * 0.1 or 1.0
        return lo - pad, hi + pad
    return lo, hi


def line_plot(
    ident: str,
    title: str,
    points: Sequence[Point],
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
    note: str = "",
) -> str:
    """An SVG plot of `points` in order (oldest first); `ident` makes its element ids unique in
    the page, `note` adds to the description (e.g. which versions were left out and why)."""
    tid, did = f"{ident}-title", f"{ident}-desc"
    if points:
        desc = f"{len(points)} value(s), oldest first: " + "; ".join(
            f"{p.label}: {fmt(p.value)}" for p in points
        )
    else:
        desc = "no values to plot"
    if note:
        desc += f". {note}"
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'aria-labelledby="{escape(tid)} {escape(did)}">'
        f'<title id="{escape(tid)}">{escape(title)}</title>'
        f'<desc id="{escape(did)}">{escape(desc)}</desc>'
    )
    x0, x1 = _LEFT, WIDTH - _RIGHT
    y0, y1 = HEIGHT - _BOTTOM, _TOP  # y grows downwards: y0 is the bottom of the plot
    axes = (
        f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#444"/>'
        f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#444"/>'
    )
    if not points:
        empty = (
            f'<text x="{(x0 + x1) // 2}" y="{(y0 + y1) // 2}" text-anchor="middle">'
            "no values to plot</text>"
        )
        return head + axes + empty + "</svg>"
    lo, hi = _range([p.value for p in points])

    def xy(i: int, value: float) -> tuple[float, float]:
        x = (x0 + x1) / 2 if len(points) == 1 else x0 + (x1 - x0) * i / (len(points) - 1)
        y = y0 - (y0 - y1) * (value - lo) / (hi - lo)
        return round(x, 1), round(y, 1)

    coords = [xy(i, p.value) for i, p in enumerate(points)]
    parts = [head, axes]
    for value, at in ((hi, y1), (lo, y0)):  # the value at the top and at the bottom
        parts.append(
            f'<text x="{x0 - 6}" y="{at + 4}" text-anchor="end" font-size="12">'
            f"{escape(fmt(value))}</text>"
        )
    parts.append(
        f'<text x="{(x0 + x1) // 2}" y="{HEIGHT - 8}" text-anchor="middle" font-size="12">'
        "versions, oldest to newest</text>"
    )
    if len(coords) > 1:
        line = " ".join(f"{x},{y}" for x, y in coords)
        parts.append(f'<polyline points="{line}" fill="none" stroke="#1f5fa8" stroke-width="2"/>')
    for (cx, cy), p in zip(coords, points, strict=True):
        parts.append(
            f'<circle cx="{cx}" cy="{cy}" r="4" fill="#1f5fa8">'
            f"<title>{escape(p.label)}: {escape(fmt(p.value))}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)
