"""Small in-memory benchmarks, so unit tests need no 20 MB datastream."""

from __future__ import annotations

from pathlib import Path

from imagefactory.hardening.datastream import (
    PROFILE_PREFIX,
    RULE_PREFIX,
    Benchmark,
    ProfileInfo,
    RuleInfo,
)

SOURCE_PROFILE = PROFILE_PREFIX + "cis_server_l1"


def rule(short: str, cis: tuple[str, ...] = ("1.1",), bash: bool = True) -> RuleInfo:
    return RuleInfo(RULE_PREFIX + short, short.replace("_", " "), cis, bash, bash)


def bench(
    name: str,
    rules: list[RuleInfo],
    selected: tuple[str, ...] = (),
    refine: tuple[tuple[str, str], ...] = (),
    values: dict[str, frozenset[str]] | None = None,
) -> Benchmark:
    profiles = {}
    if selected or refine:
        profiles[SOURCE_PROFILE] = ProfileInfo(
            SOURCE_PROFILE, "CIS L1", tuple(RULE_PREFIX + s for s in selected), refine
        )
    return Benchmark(
        path=Path(f"/content/{name}"),
        benchmark_id=f"xccdf_org.ssgproject.content_benchmark_{name}",
        version="0.1.65",
        status_date="2022-12-21",
        rules={r.rule_id: r for r in rules},
        values=values or {},
        profiles=profiles,
    )
