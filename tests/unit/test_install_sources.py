"""ISO fetching verifies before keeping anything; the kickstart renders only real hashes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from imagefactory.config import IsoSource
from imagefactory.errors import BuildError
from imagefactory.guest.credential import BuildCredential
from imagefactory.sources.install import GRUB_HASH_ENV, grub_password_hash, render_kickstart
from imagefactory.sources.iso import fetch_iso

KEY = BuildCredential(Path("/nonexistent"), "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA test")


def iso(tmp_path: Path, data: bytes, sha: str | None = None) -> IsoSource:
    path = tmp_path / "dvd.iso"
    path.write_bytes(data)
    return IsoSource("dvd", path.as_uri(), sha or hashlib.sha256(data).hexdigest())


def test_verified_iso_is_kept_once(tmp_path: Path) -> None:
    src = iso(tmp_path, b"installer")
    got = fetch_iso(src, tmp_path / "store", "f.yaml")
    assert got.read_bytes() == b"installer" and got.name == f"{src.sha256}.iso"
    (tmp_path / "dvd.iso").unlink()  # second call must not download again
    assert fetch_iso(src, tmp_path / "store", "f.yaml") == got


def test_wrong_checksum_names_field_and_keeps_nothing(tmp_path: Path) -> None:
    src = iso(tmp_path, b"installer", sha="0" * 64)
    with pytest.raises(BuildError, match=r"f\.yaml: \.sources\.dvd\.sha256: checksum mismatch"):
        fetch_iso(src, tmp_path / "store", "f.yaml")
    assert list((tmp_path / "store").iterdir()) == []


def test_unreachable_iso_points_at_standin(tmp_path: Path) -> None:
    src = IsoSource("dvd", (tmp_path / "absent.iso").as_uri(), "0" * 64)
    with pytest.raises(BuildError, match=r"\.sources\.dvd\.url: cannot download.*standin\.yaml"):
        fetch_iso(src, tmp_path / "store", "f.yaml")


def test_grub_hash_must_be_a_pbkdf2_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GRUB_HASH_ENV, "hunter2")
    with pytest.raises(BuildError, match="grub2-mkpasswd-pbkdf2"):
        grub_password_hash()
    monkeypatch.setenv(GRUB_HASH_ENV, "grub.pbkdf2.sha512.10000.ABCD.EF01")
    assert grub_password_hash().startswith("grub.pbkdf2")


def test_unknown_placeholder_is_an_error(tmp_path: Path) -> None:
    tpl = tmp_path / "x.ks"
    tpl.write_text("user --name=@BUILD_USER@\nrootpw @ROOT_PW@\n")
    with pytest.raises(BuildError, match="@ROOT_PW@"):
        render_kickstart(tpl, tmp_path / "out.ks", build_user="b", credential=KEY, grub_hash="h")
    assert not (tmp_path / "out.ks").exists()
