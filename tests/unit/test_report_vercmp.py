"""Package version order and package entries: checked against rpm and dpkg themselves."""

from __future__ import annotations

import subprocess

import pytest

from imagefactory.report.packages import Package, parse_entry
from imagefactory.report.vercmp import compare_dpkg, compare_rpm, compare_versions
from tests.prereq import require_tool

# Pairs chosen for the rules' corners: numbers against letters, leading zeros, separators,
# '~' (pre-release), '^' (snapshot), epochs, releases with dist tags, longer strings.
RPM_PAIRS = [
    ("1.0", "1.0"),
    ("1.0", "2.0"),
    ("2.0.1", "2.0"),
    ("1.10", "1.9"),
    ("1.0a", "1.0"),
    ("1.0a", "1.0.1"),
    ("2.a", "2.1"),
    ("1.el8", "1.0.el8"),
    ("1.0", "1.0.0"),
    ("1.001", "1.1"),
    ("1.0~rc1", "1.0"),
    ("1.0~rc1", "1.0~rc2"),
    ("1.0~~", "1.0~"),
    ("1.0^", "1.0"),
    ("1.0^git1", "1.0.1"),
    ("1.0^git1", "1.0~rc1"),
    ("1.0^^", "1.0^"),
    ("1.0+b", "1.0_b"),
    ("1..0", "1.0"),
    ("1.0", "1.0."),
    ("xyz10", "xyz10.1"),
    ("abc", "abd"),
    ("1.2.3", "1.2.3.a"),
    ("5.5p1", "5.5p10"),
    ("8.0p1-24.el8", "8.0p1-25.el8"),
    ("1.0-1.el8", "1.0-1.el8_2"),
    ("4.18.0-477.10.1.el8_8", "4.18.0-513.5.1.el8_9"),
    ("2.02-148.0.1.el8", "2.02-150.el8"),
    ("1:1.0-1", "2.0-1"),
    ("0:2.0-1", "2.0-1"),
    ("1.0-10", "1.0-9"),
]

DPKG_PAIRS = [
    ("1.0", "1.0"),
    ("1.0", "1.0-0"),
    ("1.10", "1.9"),
    ("1.0~rc1", "1.0"),
    ("1.0~rc1-1", "1.0~rc2-1"),
    ("1.0~", "1.0~~"),
    ("1:0.9", "2.0"),
    ("0:1.0", "1.0"),
    ("2.36-9+deb12u4", "2.36-9+deb12u10"),
    ("1.0+dfsg-1", "1.0-1"),
    ("1.0a", "1.0+"),
    ("1.0.", "1.0"),
    ("1.0-1~bpo12+1", "1.0-1"),
    ("9.2p1-2+deb12u3", "9.2p1-2+deb12u2"),
    ("1.001", "1.1"),
    ("1.0-1", "1.0-1.1"),
    ("1.2.3-1", "1.2.10-1"),
    ("1.0a-1", "1.0-1"),
    ("3.0.11-1~deb12u2", "3.0.11-1"),
    ("1:9.2p1-2", "1:9.2p1-2+b1"),
]


def _sign(n: int) -> int:
    return (n > 0) - (n < 0)


def _rpm_says(pairs: list[tuple[str, str]]) -> list[int]:
    """rpm's own verdicts (its Lua rpm.vercmp), one rpm process for all pairs."""
    rpm = require_tool("rpm")
    table = ",".join(f'{{"{a}","{b}"}}' for a, b in pairs)
    lua = f'%{{lua: for _, p in ipairs({{{table}}}) do print(rpm.vercmp(p[1], p[2]) .. " ") end}}'
    out = subprocess.run([rpm, "--eval", lua], capture_output=True, text=True, check=True).stdout
    verdicts = [int(v) for v in out.split()]
    assert len(verdicts) == len(pairs), out
    return verdicts


def _dpkg_says(a: str, b: str) -> int:
    dpkg = require_tool("dpkg")
    for op, verdict in (("lt", -1), ("eq", 0)):
        if subprocess.run([dpkg, "--compare-versions", a, op, b], check=False).returncode == 0:
            return verdict
    return 1


def test_rpm_order_is_rpms() -> None:
    """compare_rpm agrees with rpm itself on every pair, both ways round."""
    pairs = RPM_PAIRS + [(b, a) for a, b in RPM_PAIRS]
    expected = _rpm_says(pairs)
    got = [_sign(compare_rpm(a, b)) for a, b in pairs]
    assert list(zip(pairs, got, strict=True)) == list(zip(pairs, expected, strict=True))


@pytest.mark.parametrize(("a", "b"), DPKG_PAIRS)
def test_dpkg_order_is_dpkgs(a: str, b: str) -> None:
    """compare_dpkg agrees with `dpkg --compare-versions`, both ways round."""
    assert (_sign(compare_dpkg(a, b)), _sign(compare_dpkg(b, a))) == (
        _dpkg_says(a, b),
        _dpkg_says(b, a),
    )


def test_unknown_format_is_refused() -> None:
    """A packages_format other than rpm or dpkg is an error, not a guess."""
    with pytest.raises(ValueError, match="unknown packages_format 'apk'"):
        compare_versions("apk", "1", "2")


@pytest.mark.parametrize(
    ("fmt", "entry", "expected"),
    [
        ("rpm", "bash-4.4.20-4.el8.x86_64", Package("bash", "4.4.20-4.el8", "x86_64")),
        (
            "rpm",
            "python3.11-libs-3.11.2-2.el8.x86_64",
            Package("python3.11-libs", "3.11.2-2.el8", "x86_64"),
        ),
        (
            "rpm",
            "gpg-pubkey-ad986da3-5cabf60d.(none)",
            Package("gpg-pubkey", "ad986da3-5cabf60d", ""),
        ),
        ("dpkg", "libc6=2.36-9+deb12u4 amd64", Package("libc6", "2.36-9+deb12u4", "amd64")),
        ("dpkg", "openssh-server=1:9.2p1-2 amd64", Package("openssh-server", "1:9.2p1-2", "amd64")),
    ],
)
def test_entries_parse(fmt: str, entry: str, expected: Package) -> None:
    """Names with dashes and dots, arch-less rpm keys, Debian epochs."""
    assert parse_entry(fmt, entry) == expected


@pytest.mark.parametrize(
    ("fmt", "entry"),
    [
        ("rpm", "bash-4.4.20"),  # no release, no arch
        ("rpm", "bash.x86_64"),
        ("dpkg", "libc6 2.36 amd64"),
        ("dpkg", "libc6=2.36"),
        ("apk", "musl-1.2"),
    ],
)
def test_malformed_entries_are_refused(fmt: str, entry: str) -> None:
    """An entry not of the format's shape is not parsed into something wrong."""
    assert parse_entry(fmt, entry) is None
