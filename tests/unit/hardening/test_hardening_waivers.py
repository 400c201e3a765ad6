"""Waiver validation: each bad input names the file and the field; good input loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from imagefactory.errors import ConfigError
from imagefactory.hardening.datastream import Benchmark
from imagefactory.hardening.waivers import check_waivers_against, load_waivers, parse_waivers

GOOD = {"rule": "aide_build_database", "kind": "seal", "reason": "AIDE database is built last"}


def problems_of(doc: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as err:
        parse_waivers(doc, "hardening/waivers.yaml")
    assert all(p.file == "hardening/waivers.yaml" for p in err.value.problems)
    return [(p.path, p.message) for p in err.value.problems]


def test_valid_waiver_loads_with_its_semantics() -> None:
    """A complete entry parses and a seal waiver leaves the SSG pass but is still scanned."""
    (waiver,) = parse_waivers({"waivers": [GOOD]}, "w.yaml")
    assert waiver.full_rule == "xccdf_org.ssgproject.content_rule_aide_build_database"
    assert waiver.semantics.deselect_from_remediation is True
    assert waiver.semantics.tolerate_scan_failure is False


def test_cis_only_manual_waiver_loads() -> None:
    """A manual item needs only a CIS id."""
    doc = {"waivers": [{"cis": "1.2.1", "kind": "manual", "reason": "RHSM is not on OL"}]}
    (waiver,) = parse_waivers(doc, "w.yaml")
    assert (waiver.rule, waiver.cis) == ("", "1.2.1")


@pytest.mark.parametrize(
    ("entry", "path", "fragment"),
    [
        ({**GOOD, "reason": ""}, "waivers[0].reason", "reason"),
        ({**GOOD, "reason": "short"}, "waivers[0].reason", "at least 10"),
        ({**GOOD, "kind": "later"}, "waivers[0].kind", "not a waiver kind"),
        ({k: v for k, v in GOOD.items() if k != "kind"}, "waivers[0].kind", "missing"),
        ({**GOOD, "rule": "Not A Rule"}, "waivers[0].rule", "not a short SSG rule id"),
        ({**GOOD, "cis": "one.two"}, "waivers[0].cis", "not a dotted CIS id"),
        ({**GOOD, "until": "2027"}, "waivers[0].until", "unknown field"),
        ({"kind": "seal", "reason": "no rule given here"}, "waivers[0].rule", "needs a rule"),
        ({"kind": "manual", "reason": "no cis id given"}, "waivers[0].cis", "needs a CIS id"),
        ("just a string", "waivers[0]", "must be a mapping"),
    ],
)
def test_bad_entry_names_field(entry: Any, path: str, fragment: str) -> None:
    """Every malformed entry is reported with its list index and field."""
    found = problems_of({"waivers": [entry]})
    assert any(p == path and fragment in m for p, m in found), found


def test_duplicate_rule_is_rejected() -> None:
    """Two waivers for one rule are an error naming the second."""
    found = problems_of({"waivers": [GOOD, GOOD]})
    assert found == [("waivers[1]", "duplicate of waivers[0] (aide_build_database)")]


def test_all_problems_are_reported_at_once() -> None:
    """Problems in several entries come back together, not one per run."""
    found = problems_of({"waivers": [{**GOOD, "kind": "x"}, {**GOOD, "rule": "b", "reason": ""}]})
    assert {p for p, _ in found} == {"waivers[0].kind", "waivers[1].reason"}


@pytest.mark.parametrize("doc", [None, [], {"waiver": []}, {"waivers": {"a": 1}}])
def test_top_level_shape(doc: Any) -> None:
    """The document must be a mapping with a 'waivers' list."""
    assert problems_of(doc)[0][0] == "waivers"


def test_unreadable_yaml_names_file(tmp_path: Path) -> None:
    """A YAML syntax error is a ConfigError naming the file."""
    bad = tmp_path / "waivers.yaml"
    bad.write_text("waivers: [\n")
    with pytest.raises(ConfigError, match=str(bad)):
        load_waivers(bad)


def test_waiver_for_unknown_rule_is_error(pair: tuple[Benchmark, Benchmark]) -> None:
    """A waiver naming a rule in neither datastream is an error."""
    source, target = pair
    waivers = parse_waivers({"waivers": [{**GOOD, "rule": "no_such_rule"}]}, "w.yaml")
    with pytest.raises(ConfigError) as err:
        check_waivers_against(
            waivers, "w.yaml", source, target, source.profiles[next(iter(source.profiles))].selected
        )
    assert [(p.path, p.message) for p in err.value.problems] == [
        (
            "waivers[0].rule",
            "rule no_such_rule does not exist in ssg-rhel8-ds.xml or ssg-ol8-ds.xml",
        )
    ]


def test_waiver_for_unselected_rule_is_error(pair: tuple[Benchmark, Benchmark]) -> None:
    """A waiver for a rule the source profile does not select has no effect: error."""
    source, target = pair
    waivers = parse_waivers({"waivers": [{**GOOD, "rule": "unselected_rule"}]}, "w.yaml")
    selected = next(iter(source.profiles.values())).selected
    with pytest.raises(ConfigError, match="not selected by the source profile"):
        check_waivers_against(waivers, "w.yaml", source, target, selected)


def test_check_only_on_rule_with_fix_is_error(pair: tuple[Benchmark, Benchmark]) -> None:
    """check_only claims SSG has no fix; a rule with a bash fix contradicts it."""
    source, target = pair
    entry = {**GOOD, "kind": "check_only"}
    waivers = parse_waivers({"waivers": [entry]}, "w.yaml")
    selected = next(iter(source.profiles.values())).selected
    with pytest.raises(ConfigError, match="has an SSG bash fix"):
        check_waivers_against(waivers, "w.yaml", source, target, selected)


def test_wrong_cis_id_for_rule_is_error(pair: tuple[Benchmark, Benchmark]) -> None:
    """A waiver's cis must be one the rule references."""
    source, target = pair
    waivers = parse_waivers({"waivers": [{**GOOD, "cis": "5.5.5"}]}, "w.yaml")
    selected = next(iter(source.profiles.values())).selected
    with pytest.raises(ConfigError, match=r"references CIS 1\.3\.1, not 5\.5\.5"):
        check_waivers_against(waivers, "w.yaml", source, target, selected)


def test_repository_waivers_file_is_valid() -> None:
    """hardening/waivers.yaml itself passes the shape check."""
    waivers = load_waivers(Path(__file__).parents[3] / "hardening" / "waivers.yaml")
    assert {w.kind for w in waivers} >= {"kickstart", "seal", "check_only", "manual"}
