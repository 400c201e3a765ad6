"""The package list the verify boot records in the manifest: parsing, order, digest, record."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from imagefactory.errors import FactoryError
from imagefactory.verify import (
    PACKAGE_QUERY,
    PackageList,
    VerifyResult,
    _record,
    parse_packages,
)


def test_rpm_output_is_sorted_by_code_point() -> None:
    out = (
        "rpm\n"
        "zlib-1.2.11-25.el8.x86_64\n"
        "NetworkManager-1.40.16-15.0.1.el8.x86_64\n"
        "\n"
        "openssh-server-8.0p1-24.el8.x86_64\n"
        "gpg-pubkey-ad986da3-5cabf60d.(none)\n"
    )
    got = parse_packages(out)
    assert got.format == "rpm"
    assert got.packages == (
        "NetworkManager-1.40.16-15.0.1.el8.x86_64",  # "N" < "g": C order
        "gpg-pubkey-ad986da3-5cabf60d.(none)",
        "openssh-server-8.0p1-24.el8.x86_64",
        "zlib-1.2.11-25.el8.x86_64",
    )


def test_dpkg_output_keeps_installed_packages_only() -> None:
    out = (
        "dpkg\n"
        "installed sudo=1.9.13p3-1+deb12u1 amd64\n"
        "config-files exim4-base=4.96-15 amd64\n"
        "installed openssh-server=1:9.2p1-2+deb12u3 amd64\n"
        "not-installed foo= \n"
        "installed libc6=2.36-9+deb12u7 amd64\n"
    )
    got = parse_packages(out)
    assert got.format == "dpkg"
    assert got.packages == (
        "libc6=2.36-9+deb12u7 amd64",
        "openssh-server=1:9.2p1-2+deb12u3 amd64",
        "sudo=1.9.13p3-1+deb12u1 amd64",
    )


def test_digest_is_the_sorted_list_as_a_text_file() -> None:
    got = parse_packages("rpm\nb-1-1.noarch\na-1-1.x86_64\n")
    assert got.sha256 == hashlib.sha256(b"a-1-1.x86_64\nb-1-1.noarch\n").hexdigest()
    assert parse_packages("rpm\na-1-1.x86_64\nb-1-1.noarch\n").sha256 == got.sha256
    assert got.to_manifest() == {
        "packages": ["a-1-1.x86_64", "b-1-1.noarch"],
        "packages_count": 2,
        "packages_sha256": got.sha256,
        "packages_format": "rpm",
    }


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("none\n", "neither rpm nor dpkg-query"),
        ("rpm\n\n", "rpm database lists no installed package"),
        ("dpkg\nconfig-files x=1 amd64\n", "dpkg database lists no installed package"),
        ("", "unexpected output"),
        ("-bash: syntax error\n", "unexpected output"),
    ],
)
def test_no_usable_list_is_an_error(out: str, message: str) -> None:
    with pytest.raises(FactoryError, match=message):
        parse_packages(out)


def test_query_asks_for_the_documented_formats() -> None:
    assert "rpm -qa --qf '%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\\n'" in PACKAGE_QUERY
    assert (
        "dpkg-query -W -f '${db:Status-Status} ${Package}=${Version} ${Architecture}\\n'"
        in PACKAGE_QUERY
    )


def test_record_writes_packages_with_the_verification(tmp_path: Path) -> None:
    manifest = tmp_path / "image" / "manifest.json"
    manifest.parent.mkdir()
    manifest.write_text(json.dumps({"family": "f", "packages": None, "verification": None}))
    report = tmp_path / "f.junit.xml"
    report.write_text("<testsuite tests='1'/>")
    packages = PackageList("dpkg", ("openssh-server=1:9.2p1-2 amd64", "sudo=1.9 amd64"))
    _record(manifest, VerifyResult(True, 1, 0, report), None, (), packages)
    doc = json.loads(manifest.read_text())
    assert doc["packages"] == ["openssh-server=1:9.2p1-2 amd64", "sudo=1.9 amd64"]
    assert doc["packages_count"] == 2 and doc["packages_sha256"] == packages.sha256
    assert doc["verification"]["passed"] is True
    assert (manifest.parent / report.name).is_file()
