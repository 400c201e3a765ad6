"""The optional per-family `compliance:` key: modelled when right, every problem named when not."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefactory.config import ComplianceScan, load_config
from imagefactory.errors import ConfigError
from tests.standinkit import Raw, script_layer, standin_config, write_standin

PROFILE = "xccdf_org.example_profile_cis_l1"
TAILORING = f"""<?xml version="1.0"?>
<xccdf-1.2:Tailoring xmlns:xccdf-1.2="http://checklists.nist.gov/xccdf/1.2" id="x">
  <xccdf-1.2:Profile id="{PROFILE}"/>
  <xccdf-1.2:Profile id="{PROFILE}_remediate"/>
</xccdf-1.2:Tailoring>
"""
GOOD = f"{{datastream: ds.xml, tailoring: t.xml, profile: {PROFILE}, waivers: w.yaml, gate: true}}"


def write(tmp_path: Path, compliance: str) -> Path:
    """Families fam (with `compliance`, YAML text) and plain, and the files GOOD names."""
    (tmp_path / "ds.xml").write_text("<ds/>\n")
    (tmp_path / "t.xml").write_text(TAILORING)
    (tmp_path / "w.yaml").write_text("waivers: []\n")
    config = standin_config(
        {"seal": script_layer("seal", seal=True)},
        {
            "fam": {"layers": ["base", "seal"], "compliance": Raw(compliance)},
            "plain": ["base", "seal"],
        },
    )
    return write_standin(tmp_path, config, "factory.yaml")


def test_compliance_is_modelled_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.families["fam"].compliance == ComplianceScan(
        datastream=tmp_path / "ds.xml",
        tailoring=tmp_path / "t.xml",
        profile=PROFILE,
        waivers=tmp_path / "w.yaml",
        gate=True,
    )
    assert cfg.families["plain"].compliance is None


def test_gate_and_waivers_are_optional_and_gate_defaults_off(tmp_path: Path) -> None:
    scan = (
        load_config(
            write(tmp_path, f"{{datastream: ds.xml, tailoring: t.xml, profile: {PROFILE}}}")
        )
        .families["fam"]
        .compliance
    )
    assert scan is not None and scan.gate is False and scan.waivers is None


@pytest.mark.parametrize(
    ("compliance", "path", "message"),
    [
        (
            GOOD.replace("gate: true", "gate: yes please"),
            ".families.fam.compliance.gate",
            "is not of type 'boolean'",
        ),
        (
            GOOD.replace(f"profile: {PROFILE}", "profile: cis"),
            ".families.fam.compliance.profile",
            "does not match",
        ),
        (
            GOOD.replace("tailoring: t.xml, ", ""),
            ".families.fam.compliance",
            "'tailoring' is a required property",
        ),
        (
            GOOD.replace("gate: true", "gate: true, score: 90"),
            ".families.fam.compliance",
            "'score' was unexpected",
        ),
        (
            GOOD.replace("ds.xml", "nope.xml"),
            ".families.fam.compliance.datastream",
            "nope.xml does not exist",
        ),
        (
            GOOD.replace(PROFILE, PROFILE + "_typo"),
            ".families.fam.compliance.profile",
            f"profile '{PROFILE}_typo' is not in t.xml",
        ),
    ],
)
def test_bad_compliance_names_file_and_field(
    tmp_path: Path, compliance: str, path: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, compliance))
    found = [(p.file, p.path, p.message) for p in info.value.problems]
    assert any(
        f == str(tmp_path / "factory.yaml") and p == path and message in m for f, p, m in found
    ), found


def test_every_missing_compliance_file_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("ds.xml", "a.xml").replace("w.yaml", "b.yaml"))
    (tmp_path / "t.xml").write_text("<not closed")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    paths = sorted(p.path for p in info.value.problems)
    assert paths == [
        ".families.fam.compliance.datastream",
        ".families.fam.compliance.tailoring",
        ".families.fam.compliance.waivers",
    ]
    assert "not valid XML" in str(info.value)
