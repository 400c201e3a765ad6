"""Own-script header validation, the repository's scripts, and the SSG pin."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from imagefactory.errors import ConfigError
from imagefactory.hardening.pin import load_pin, verify_pin
from imagefactory.hardening.scripts import load_scripts, script_table_markdown
from imagefactory.hardening.waivers import load_waivers, waiver_table_markdown

REPO = Path(__file__).parents[3]
HEADER = (
    "#!/bin/bash\n# cis: {cis}\n# title: t\n# ssg-rules: {rules}\n# env: none\nset -euo pipefail\n"
)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def test_valid_script_header_parses(tmp_path: Path) -> None:
    """Name and header give the CIS id and the SSG rules the script stands in for."""
    write(tmp_path, "cis-5.2.1-sshd.sh", HEADER.format(cis="5.2.1", rules="a_rule b_rule"))
    (script,) = load_scripts(tmp_path)
    assert (script.cis_id, script.ssg_rules, script.env) == ("5.2.1", ("a_rule", "b_rule"), ())


@pytest.mark.parametrize(
    ("name", "text", "field"),
    [
        ("sshd.sh", HEADER.format(cis="5.2.1", rules="none"), "name"),
        ("cis-5.2.1-sshd.sh", HEADER.format(cis="5.2.2", rules="none"), "# cis:"),
        (
            "cis-5.2.1-sshd.sh",
            HEADER.replace("# env: none\n", "").format(cis="5.2.1", rules="x"),
            "# env:",
        ),
        (
            "cis-5.2.1-sshd.sh",
            HEADER.replace("set -euo pipefail", "").format(cis="5.2.1", rules="x"),
            "header",
        ),
        ("cis-5.2.1-sshd.sh", "#!/bin/sh\n" + HEADER.format(cis="5.2.1", rules="x"), "line 1"),
    ],
)
def test_bad_script_names_file_and_field(tmp_path: Path, name: str, text: str, field: str) -> None:
    """Each malformed script is reported with its path and the offending field."""
    path = write(tmp_path, name, text)
    with pytest.raises(ConfigError) as err:
        load_scripts(tmp_path)
    assert (str(path), field) in [(p.file, p.path) for p in err.value.problems]


def test_repository_scripts_each_have_an_image_test() -> None:
    """Every hardening/scripts/cis-*.sh has a testinfra test named after its CIS id."""
    scripts = load_scripts(REPO / "hardening" / "scripts")
    tests = "\n".join(p.read_text() for p in (REPO / "tests" / "images").glob("test_cis_*.py"))
    names = set(re.findall(r"^def (test_[0-9_]+)_", tests, re.MULTILINE))
    missing = [s.name for s in scripts if "test_" + s.cis_id.replace(".", "_") not in names]
    assert scripts and missing == []


PIN = """\
ssg_version: "0.1.65"
content_dir: {dir}
source_profile: xccdf_org.ssgproject.content_profile_cis_server_l1
source: {{datastream: rhel8.xml, sha256: {a}}}
target: {{datastream: ol8.xml, sha256: {b}}}
"""


def test_pin_sha256_mismatch_names_field(tmp_path: Path) -> None:
    """A datastream whose digest differs from the pin fails naming target.sha256."""
    (tmp_path / "rhel8.xml").write_text("")
    (tmp_path / "ol8.xml").write_text("changed")
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    pin_file = write(tmp_path, "pin.yaml", PIN.format(dir=tmp_path, a=empty, b=empty))
    with pytest.raises(ConfigError) as err:
        verify_pin(load_pin(pin_file), str(pin_file))
    assert [p.path for p in err.value.problems] == ["target.sha256"]


def test_pin_missing_datastream_names_field(tmp_path: Path) -> None:
    """An absent datastream is reported with an install hint."""
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    pin_file = write(tmp_path, "pin.yaml", PIN.format(dir=tmp_path, a=empty, b=empty))
    with pytest.raises(ConfigError, match="ssg-nondebian") as err:
        verify_pin(load_pin(pin_file), str(pin_file))
    assert [p.path for p in err.value.problems] == ["source.datastream", "target.datastream"]


def test_pin_bad_fields(tmp_path: Path) -> None:
    """Malformed digests, unknown keys and a missing version are all reported."""
    text = PIN.format(dir=tmp_path, a="XYZ", b="ab" * 32).replace(
        'ssg_version: "0.1.65"', "extra: 1"
    )
    pin_file = write(tmp_path, "pin.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_pin(pin_file)
    assert {p.path for p in err.value.problems} == {"ssg_version", "source.sha256", "extra"}


def test_repository_pin_loads() -> None:
    """hardening/ssg-pin.yaml is well formed."""
    pin = load_pin(REPO / "hardening" / "ssg-pin.yaml")
    assert pin.source_path.name == "ssg-rhel8-ds.xml" and pin.target_path.name == "ssg-ol8-ds.xml"


def test_readme_tables_match_the_data() -> None:
    """hardening/README.md carries the current generated waiver and script tables."""
    readme = (REPO / "hardening" / "README.md").read_text()
    waivers = load_waivers(REPO / "hardening" / "waivers.yaml")
    assert waiver_table_markdown(waivers) in readme
    assert script_table_markdown(load_scripts(REPO / "hardening" / "scripts")) in readme
