"""Package version ordering as rpm and dpkg define it (no maintained Python library does both:
`packaging` knows only PEP 440). Written here from the two tools' documented rules; the unit
tests check them against `rpm` and `dpkg --compare-versions` themselves.

Every function returns <0, 0 or >0 like a C comparator.
"""

from __future__ import annotations

import re

_RPM_SEGMENT = re.compile(r"[0-9]+|[A-Za-z]+")


def _digit(c: str) -> bool:
    return "0" <= c <= "9"


def _sign(n: int) -> int:
    return (n > 0) - (n < 0)


def _rpm_skip(s: str) -> str:
    """Drop leading separators: anything but ASCII letters, digits, '~' and '^'."""
    i = 0
    while i < len(s) and not (s[i].isascii() and s[i].isalnum()) and s[i] not in "~^":
        i += 1
    return s[i:]


def rpmvercmp(a: str, b: str) -> int:
    """One version or release field compared as rpm does: runs of digits (numerically) and of
    letters (as text), separators ignored, a number newer than letters, '~' older than
    anything (pre-releases), '^' newer than the end of the string (post-release snapshots)."""
    if a == b:
        return 0
    while True:
        a, b = _rpm_skip(a), _rpm_skip(b)
        if a.startswith("~") or b.startswith("~"):
            if not a.startswith("~"):
                return 1
            if not b.startswith("~"):
                return -1
            a, b = a[1:], b[1:]
            continue
        if a.startswith("^") or b.startswith("^"):
            if not a:
                return -1
            if not b:
                return 1
            if not a.startswith("^"):
                return 1
            if not b.startswith("^"):
                return -1
            a, b = a[1:], b[1:]
            continue
        if not a or not b:
            break
        seg_a = _RPM_SEGMENT.match(a)
        seg_b = _RPM_SEGMENT.match(b)
        assert seg_a is not None and seg_b is not None  # both start alphanumeric
        x, y = seg_a.group(), seg_b.group()
        numeric = _digit(x[0])
        if numeric != _digit(y[0]):
            return 1 if numeric else -1  # a number is newer than letters
        a, b = a[len(x) :], b[len(y) :]
        if numeric:
            x, y = x.lstrip("0"), y.lstrip("0")
            if len(x) != len(y):
                return 1 if len(x) > len(y) else -1
        if x != y:
            return 1 if x > y else -1
    if not a and not b:
        return 0
    return 1 if a else -1


def _split_evr(evr: str) -> tuple[int, str, str]:
    """[epoch:]version[-release]; the release is after the last '-' (versions have none)."""
    epoch, sep, rest = evr.partition(":")
    if not sep or not (epoch.isascii() and epoch.isdigit()):
        epoch, rest = "0", evr
    version, _, release = rest.rpartition("-")
    if not version:
        version, release = rest, ""
    return int(epoch), version, release


def compare_rpm(a: str, b: str) -> int:
    """rpm's order of two `[epoch:]version-release` strings (epoch 0 when absent)."""
    ea, va, ra = _split_evr(a)
    eb, vb, rb = _split_evr(b)
    if ea != eb:
        return _sign(ea - eb)
    return rpmvercmp(va, vb) or rpmvercmp(ra, rb)


def _dpkg_order(c: str) -> int:
    """Weight of one non-digit character: '~' first, then the end, letters, everything else."""
    if c == "~":
        return -1
    if c.isascii() and c.isalpha():
        return ord(c)
    return ord(c) + 256


def _dpkg_part(a: str, b: str) -> int:
    """Debian's comparison of one upstream version or revision: alternating non-digit runs
    (character by character, by _dpkg_order; an exhausted string weighs 0) and digit runs
    (numerically)."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not _digit(a[i])) or (j < len(b) and not _digit(b[j])):
            wa = _dpkg_order(a[i]) if i < len(a) and not _digit(a[i]) else 0
            wb = _dpkg_order(b[j]) if j < len(b) and not _digit(b[j]) else 0
            if wa != wb:
                return _sign(wa - wb)
            i, j = i + 1, j + 1
        ni = i
        while ni < len(a) and _digit(a[ni]):
            ni += 1
        nj = j
        while nj < len(b) and _digit(b[nj]):
            nj += 1
        da, db = int(a[i:ni] or "0"), int(b[j:nj] or "0")
        if da != db:
            return _sign(da - db)
        i, j = ni, nj
    return 0


def _split_debian(v: str) -> tuple[int, str, str]:
    """[epoch:]upstream[-revision]; the revision is after the last '-'."""
    epoch, sep, rest = v.partition(":")
    if not sep:
        epoch, rest = "0", v
    upstream, dash, revision = rest.rpartition("-")
    if not dash:
        upstream, revision = rest, ""
    return int(epoch) if epoch.isascii() and epoch.isdigit() else 0, upstream, revision


def compare_dpkg(a: str, b: str) -> int:
    """Debian's order of two package versions (Debian Policy 5.6.12, as dpkg applies it)."""
    ea, ua, ra = _split_debian(a)
    eb, ub, rb = _split_debian(b)
    if ea != eb:
        return _sign(ea - eb)
    return _dpkg_part(ua, ub) or _dpkg_part(ra, rb)


def compare_versions(fmt: str, a: str, b: str) -> int:
    """Order of two versions of one package in a `packages_format` ("rpm" or "dpkg")."""
    if fmt == "rpm":
        return compare_rpm(a, b)
    if fmt == "dpkg":
        return compare_dpkg(a, b)
    raise ValueError(f"unknown packages_format {fmt!r} (expected rpm or dpkg)")
