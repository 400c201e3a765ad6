"""Plans of a small test project (f.yaml in a temp dir) and a cache filled without building."""

from __future__ import annotations

from pathlib import Path

from imagefactory.config import load_config
from imagefactory.engine.cache import LayerCache
from imagefactory.engine.plan import Plan, Reuse, make_plan
from imagefactory.guest.credential import ensure_build_credential
from imagefactory.util.fsutil import sha256_file


def plan_of(project: Path, family: str = "fa") -> Plan:
    cfg = load_config(project / "f.yaml")
    reuse = Reuse(LayerCache(project / "cache"))
    return make_plan(cfg, cfg.family(family), reuse, ensure_build_credential(project / "keys"))


def fake_commit(project: Path, plan: Plan) -> None:
    """Record every layer of `plan` as built (a one-byte image) so the next plan is a no-op."""
    cache = LayerCache(project / "cache")
    for step in plan.steps:
        built = project / f"built-{step.short}"
        built.mkdir()
        (built / "layer.qcow2").write_bytes(b"x")
        parent = plan.parent(step)
        facts = {
            "image": "layer.qcow2",
            "sha256": sha256_file(built / "layer.qcow2"),
            "parent": parent.key if parent else None,
            "parent_sha256": cache.facts(parent.key)["sha256"] if parent else None,
        }
        cache.commit(step.key, built, step.inputs, facts)
        cache.set_ref(plan.family.name, step.layer.name, step.key)
