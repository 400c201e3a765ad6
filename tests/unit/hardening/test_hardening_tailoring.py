"""Derivation sets and the shape of the rendered XCCDF 1.2 tailoring."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest
from hardening_builders import SOURCE_PROFILE

from imagefactory.errors import FactoryError
from imagefactory.hardening.datastream import RULE_PREFIX, XCCDF_NS, Benchmark
from imagefactory.hardening.tailoring import (
    REMEDIATE_PROFILE_ID,
    SCAN_PROFILE_ID,
    TAILORING_ID,
    check_one_element_per_line,
    derive,
    render_tailoring,
)
from imagefactory.hardening.waivers import parse_waivers

X = f"{{{XCCDF_NS}}}"
SEAL_AIDE_PROFILE = "xccdf_org.imagefactory_profile_cis_server_l1_ol8_seal_aide_build_database"
SEAL_AIDE = {"rule": "aide_build_database", "kind": "seal", "reason": "AIDE is built at seal"}


def r(short: str) -> str:
    return RULE_PREFIX + short


def test_kept_and_missing_follow_target_rules(pair: tuple[Benchmark, Benchmark]) -> None:
    """Rules the OL8 content lacks are 'missing', the rest 'kept'; both sorted."""
    source, target = pair
    d = derive(source, target, SOURCE_PROFILE, (), ())
    assert d.kept == (r("aide_build_database"), r("grub2_password"), r("sshd_set_idle_timeout"))
    assert d.missing == (r("file_owner_crontab"), r("journald_storage"))
    assert d.kept_without_bash_fix == (r("grub2_password"),)


def test_gaps_are_missing_or_unfixable_rules_nobody_covers(
    pair: tuple[Benchmark, Benchmark],
) -> None:
    """Without waivers or scripts every missing and every fix-less rule is a gap."""
    source, target = pair
    d = derive(source, target, SOURCE_PROFILE, (), ())
    assert d.gaps == (r("file_owner_crontab"), r("grub2_password"), r("journald_storage"))


def test_seal_waiver_deselects_from_remediation_only(pair: tuple[Benchmark, Benchmark]) -> None:
    """A seal waiver removes the rule from the remediation set, not from the scan set."""
    source, target = pair
    waivers = parse_waivers({"waivers": [SEAL_AIDE]}, "w.yaml")
    d = derive(source, target, SOURCE_PROFILE, waivers, ())
    assert r("aide_build_database") in d.kept
    assert d.deselected == (r("aide_build_database"),)
    assert r("aide_build_database") not in d.remediated


def test_refine_value_without_ol8_selector_fails(pair: tuple[Benchmark, Benchmark]) -> None:
    """A value refinement OL8 cannot honour stops the derivation."""
    source, target = pair
    narrowed = replace(target, values={k: frozenset({"022"}) for k in target.values})
    with pytest.raises(FactoryError, match="var_umask=027"):
        derive(source, narrowed, SOURCE_PROFILE, (), ())


def test_unknown_source_profile_lists_known(pair: tuple[Benchmark, Benchmark]) -> None:
    """Naming a profile the source lacks fails with the list of profiles present."""
    source, target = pair
    with pytest.raises(FactoryError, match="profiles present: cis_server_l1"):
        derive(source, target, "cis_workstation_l9", (), ())


def _render(pair: tuple[Benchmark, Benchmark]) -> str:
    source, target = pair
    waivers = parse_waivers({"waivers": [SEAL_AIDE]}, "w.yaml")
    d = derive(source, target, SOURCE_PROFILE, waivers, ())
    return render_tailoring(d, "ssg-ol8-ds.xml", "0.1.65+abc", "2022-12-21T00:00:00")


def test_tailoring_root_and_benchmark(pair: tuple[Benchmark, Benchmark]) -> None:
    """Root is an XCCDF 1.2 Tailoring pointing at the OL8 datastream with a version time."""
    root = ET.fromstring(_render(pair))
    assert root.tag == f"{X}Tailoring"
    assert root.get("id") == TAILORING_ID
    assert root.find(f"{X}benchmark").get("href") == "ssg-ol8-ds.xml"  # type: ignore[union-attr]
    version = root.find(f"{X}version")
    assert version is not None and version.text == "0.1.65+abc"
    assert version.get("time") == "2022-12-21T00:00:00"


def test_tailoring_profiles_select_flags(pair: tuple[Benchmark, Benchmark]) -> None:
    """Scan profile selects all kept rules; remediation profile deselects the waived one."""
    root = ET.fromstring(_render(pair))
    profiles = {p.get("id"): p for p in root.findall(f"{X}Profile")}
    assert list(profiles) == [SCAN_PROFILE_ID, REMEDIATE_PROFILE_ID, SEAL_AIDE_PROFILE]
    flags = {
        pid: {s.get("idref"): s.get("selected") for s in p.findall(f"{X}select")}
        for pid, p in profiles.items()
    }
    assert set(flags[SCAN_PROFILE_ID].values()) == {"true"}
    assert flags[REMEDIATE_PROFILE_ID][r("aide_build_database")] == "false"
    assert flags[REMEDIATE_PROFILE_ID][r("sshd_set_idle_timeout")] == "true"
    assert r("journald_storage") not in flags[SCAN_PROFILE_ID]
    seal = {rule for rule, flag in flags[SEAL_AIDE_PROFILE].items() if flag == "true"}
    assert seal == {r("aide_build_database")}


def test_tailoring_carries_refine_values(pair: tuple[Benchmark, Benchmark]) -> None:
    """Each profile repeats the source profile's value refinements."""
    root = ET.fromstring(_render(pair))
    for profile in root.findall(f"{X}Profile"):
        pairs = [(v.get("idref"), v.get("selector")) for v in profile.findall(f"{X}refine-value")]
        assert pairs == [("xccdf_org.ssgproject.content_value_var_umask", "027")]


def test_tailoring_one_select_per_line(pair: tuple[Benchmark, Benchmark]) -> None:
    """Pretty-printed: every <select> on its own line (oscap 1.3.7 drops every second one)."""
    text = _render(pair)
    lines = [line for line in text.splitlines() if "<xccdf:select " in line]
    assert len(lines) == 9  # 3 kept rules x (scan, remediation, one seal profile)
    assert all(line.strip().startswith("<xccdf:select ") for line in lines)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<xccdf:Tailoring ')


def test_single_line_tailoring_is_rejected(pair: tuple[Benchmark, Benchmark]) -> None:
    """The guard refuses a tailoring that puts several selects on one line."""
    squashed = "".join(line.strip() for line in _render(pair).splitlines())
    with pytest.raises(FactoryError, match="oscap 1.3.7 would drop rules"):
        check_one_element_per_line(squashed, 6)


def test_rendering_is_deterministic(pair: tuple[Benchmark, Benchmark]) -> None:
    """Same inputs, same bytes: the layer cache can key on the file."""
    assert _render(pair) == _render(pair)


def test_seal_rules_follow_waiver_order(pair: tuple[Benchmark, Benchmark]) -> None:
    """Seal fixes run in waivers.yaml order; rules without an SSG fix get no seal step."""
    source, target = pair
    entries = [
        {"rule": "sshd_set_idle_timeout", "kind": "seal", "reason": "re-applied at seal"},
        {"rule": "grub2_password", "kind": "seal", "reason": "no SSG fix exists"},
        SEAL_AIDE,
    ]
    d = derive(source, target, SOURCE_PROFILE, parse_waivers({"waivers": entries}, "w"), ())
    assert d.seal_rules == (r("sshd_set_idle_timeout"), r("aide_build_database"))
