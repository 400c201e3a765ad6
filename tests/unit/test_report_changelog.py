"""Changelogs between two manifests: package moves in rpm/dpkg order, layers, Markdown, JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest

from imagefactory.report.changelog import (
    LayerChange,
    PackageChange,
    diff_manifests,
    render_markdown,
    to_json,
)
from imagefactory.report.packages import ManifestFieldError

OLD_RPMS = [
    "bash-4.4.20-4.el8.x86_64",
    "kernel-core-4.18.0-477.10.1.el8_8.x86_64",
    "kernel-core-4.18.0-513.5.1.el8_9.x86_64",
    "openssl-libs-1.1.1k-9.el8.x86_64",
    "telnet-0.17-76.el8.x86_64",
    "tzdata-2024a-1.el8.noarch",
]
NEW_RPMS = [
    "bash-4.4.20-5.el8.x86_64",
    "kernel-core-4.18.0-513.5.1.el8_9.x86_64",
    "kernel-core-4.18.0-553.el8_10.x86_64",
    "openssl-libs-1.1.1k-12.el8.x86_64",
    "tzdata-2023c-1.el8.noarch",
    "vim-minimal-8.0.1763-19.el8.x86_64",
]


def manifest(
    version: str,
    packages: list[str] | None,
    fmt: str = "rpm",
    layers: dict[str, str] | None = None,
) -> dict[str, Any]:
    keys = layers if layers is not None else {"install": "a" * 64, "harden": "b" * 64}
    return {
        "family": "persistence",
        "version": version,
        "image": {"sha256": "e" * 64},
        "layers": [{"name": n, "key": k} for n, k in keys.items()],
        "packages": packages,
        "packages_format": fmt,
    }


OLD_V, NEW_V = "20261124T101500Z-111111111111", "20261125T101500Z-222222222222"


def test_packages_sorted_into_their_moves() -> None:
    """Added, removed, upgraded and downgraded, by rpm's order (12.el8 is newer than 9.el8)."""
    log = diff_manifests(manifest(OLD_V, OLD_RPMS), manifest(NEW_V, NEW_RPMS))
    assert log.upgraded == (
        PackageChange("bash", "x86_64", "4.4.20-4.el8", "4.4.20-5.el8"),
        PackageChange("kernel-core", "x86_64", "4.18.0-477.10.1.el8_8", "4.18.0-553.el8_10"),
        PackageChange("openssl-libs", "x86_64", "1.1.1k-9.el8", "1.1.1k-12.el8"),
    )
    assert log.downgraded == (PackageChange("tzdata", "noarch", "2024a-1.el8", "2023c-1.el8"),)
    assert log.added == (PackageChange("vim-minimal", "x86_64", None, "8.0.1763-19.el8"),)
    assert log.removed == (PackageChange("telnet", "x86_64", "0.17-76.el8", None),)
    assert (log.old_version, log.new_version, log.first) == (OLD_V, NEW_V, False)


def test_debian_versions_use_debian_order() -> None:
    """A ~rc before the release is older, so moving from it is an upgrade."""
    old = manifest(OLD_V, ["foo=1.0~rc1-1 amd64", "bar=2:1.0 all"], "dpkg")
    new = manifest(NEW_V, ["foo=1.0-1 amd64", "bar=1:9.0 all"], "dpkg")
    log = diff_manifests(old, new)
    assert log.upgraded == (PackageChange("foo", "amd64", "1.0~rc1-1", "1.0-1"),)
    assert log.downgraded == (PackageChange("bar", "all", "2:1.0", "1:9.0"),)


def test_layers_rebuilt_new_and_dropped() -> None:
    """A changed key is a rebuild; a layer only on one side is new or dropped."""
    old = manifest(OLD_V, OLD_RPMS, layers={"install": "a" * 64, "harden": "b" * 64, "x": "c" * 64})
    new = manifest(NEW_V, OLD_RPMS, layers={"install": "a" * 64, "harden": "d" * 64, "y": "e" * 64})
    log = diff_manifests(old, new)
    assert log.layers == (
        LayerChange("harden", "b" * 64, "d" * 64),
        LayerChange("y", None, "e" * 64),
        LayerChange("x", "c" * 64, None),
    )
    assert not (log.added or log.removed or log.upgraded or log.downgraded)
    assert render_markdown(log).endswith(
        f"## Layers rebuilt (3)\n\n- harden: {'b' * 12} -> {'d' * 12}\n"
        f"- y: new ({'e' * 12})\n- x: dropped (was {'c' * 12})\n"
    )


def test_identical_versions_say_so() -> None:
    """The same packages and layers: no change, and the Markdown says that."""
    log = diff_manifests(manifest(OLD_V, OLD_RPMS), manifest(NEW_V, OLD_RPMS))
    assert log.unchanged
    assert "No package or layer changed." in render_markdown(log)


def test_first_version_on_channel() -> None:
    """No previous version: the changelog says it is the first, in Markdown and JSON."""
    log = diff_manifests(None, manifest(NEW_V, NEW_RPMS))
    text = render_markdown(log)
    assert text.startswith(f"# persistence {NEW_V}\n")
    assert "first version on this channel" in text
    doc = json.loads(to_json(log))
    assert (doc["first"], doc["old_version"], doc["added"]) == (True, None, [])


def test_markdown_lists_every_change() -> None:
    """Each move gets a section with its count and one line per package or layer."""
    old = manifest(OLD_V, OLD_RPMS)
    new = manifest(NEW_V, NEW_RPMS, layers={"install": "a" * 64, "harden": "f" * 64})
    text = render_markdown(diff_manifests(old, new))
    assert f"Changes since {OLD_V}." in text
    assert "## Upgraded packages (3)\n\n- bash (x86_64): 4.4.20-4.el8 -> 4.4.20-5.el8\n" in text
    assert "## Downgraded packages (1)\n\n- tzdata (noarch): 2024a-1.el8 -> 2023c-1.el8\n" in text
    assert "## Added packages (1)\n\n- vim-minimal (x86_64): 8.0.1763-19.el8\n" in text
    assert "## Removed packages (1)\n\n- telnet (x86_64): 0.17-76.el8\n" in text
    assert f"## Layers rebuilt (1)\n\n- harden: {'b' * 12} -> {'f' * 12}\n" in text


def test_json_holds_the_changes() -> None:
    """The JSON form carries every change, full layer keys included, and sorts its keys."""
    new = manifest(NEW_V, NEW_RPMS, layers={"install": "a" * 64, "harden": "f" * 64})
    data = to_json(diff_manifests(manifest(OLD_V, OLD_RPMS), new))
    doc = json.loads(data)
    assert [c["name"] for c in doc["upgraded"]] == ["bash", "kernel-core", "openssl-libs"]
    assert doc["layers"] == [{"name": "harden", "old_key": "b" * 64, "new_key": "f" * 64}]
    assert data == (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def test_missing_package_list_is_a_note() -> None:
    """A version verified before packages were recorded: layers still compared, packages not."""
    old = manifest(OLD_V, None, layers={"install": "0" * 64, "harden": "b" * 64})
    log = diff_manifests(old, manifest(NEW_V, NEW_RPMS))
    assert log.notes == (f"packages not compared: {OLD_V} recorded none",)
    assert [layer.name for layer in log.layers] == ["install"]
    assert "## Notes\n\n- packages not compared" in render_markdown(log)


def test_other_package_format_is_not_compared() -> None:
    """rpm against dpkg compares nothing package by package."""
    log = diff_manifests(manifest(OLD_V, OLD_RPMS), manifest(NEW_V, ["a=1 all"], "dpkg"))
    assert log.notes == ("packages not compared: rpm packages before, dpkg now",)
    assert not (log.added or log.removed)


def test_malformed_entry_names_the_field() -> None:
    """A bad package entry is reported by its index, not compared as something else."""
    with pytest.raises(ManifestFieldError, match=r"packages\[0\]: 'bash' is not"):
        diff_manifests(manifest(OLD_V, ["bash"]), manifest(NEW_V, NEW_RPMS))
