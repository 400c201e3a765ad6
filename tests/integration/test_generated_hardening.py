"""hardening/generated/ (what the harden layer uploads) is exactly what the derivation makes."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefactory.hardening import derive_tailoring, load_pin
from tests.prereq import require_tool

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_committed_fixes_match_a_fresh_derivation(tmp_path: Path) -> None:
    """Regenerate with: invoke hardening.tailor --out=hardening/generated"""
    require_tool("oscap")
    derive_tailoring(load_pin(REPO / "hardening/ssg-pin.yaml"), out_dir=tmp_path)
    committed = {p.name: p.read_bytes() for p in (REPO / "hardening/generated").iterdir()}
    fresh = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(committed) == sorted(fresh)
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert stale == [], f"hardening/generated is stale: {stale}"
