"""Scale simulation of the fleet on libvirt's test driver: fleet.yaml copied K times (every
group and cluster once per copy, 6K hypervisors of the production size, one test:/// connection
each), then plan, render, apply and rollout (a health gate that sleeps --gate-s per node).

Run from the repository root:

    .venv/bin/python bench/bench_fleet_scale.py --copies=50 [--plan-copies=170] [--gate-s=60]

A run also measures a fleet a tenth the size (K/10 copies) the same way, so that the targets
are ratios measured in one run on one machine:

- plan at K copies <= 3 x (plan at K/10 copies x 10)   (near-linear placement)
- plan at --plan-copies (12,000 VMs at 170) < 60 s
- apply per VM at K copies <= 1.3 x apply per VM at K/10 copies
- rollout at K copies <= 1.5 x its lower bound (largest cluster x per-node time)

It prints wall times, peak memory, the quorum check after losing each host, and the
rollout's wall time against its lower bound. The rollout runs at K copies only, with
`rollout.max_unavailable` scaled with the fleet (10 per copy, as fleet.yaml has for one), so
that every cluster can have its one member down at once. The gate sleeps --gate-s per node,
by default the 60 s a real node takes: each node also costs the rollout real work on this
host (test-driver calls, qemu-img, state writes), tens of ms of CPU, and at 3,550 VMs that
work is minutes; a gate scaled down to seconds would measure this machine's CPUs, not the
schedule.

Prints figures; asserts nothing. Needs qemu-img and ssh-keygen (templates are real signed
qcow2 files in a directory store).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from imagefactory.fleet import commands  # noqa: E402
from imagefactory.fleet.config import load_fleet  # noqa: E402
from imagefactory.fleet.health import Health  # noqa: E402
from imagefactory.fleet.hypervisor import Connections  # noqa: E402
from imagefactory.fleet.model import Topology  # noqa: E402
from imagefactory.fleet.nodes import FleetPlan, Node, plan_fleet  # noqa: E402
from imagefactory.store.settings import StoreKind, StoreSettings  # noqa: E402
from tests.fleetkit import TemplateStore, scaled_production, simulated_host  # noqa: E402
from tests.storekit import make_signing_keys  # noqa: E402

FAMILIES = ("persistence", "workers")


def timed(what: str, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Run fn with its printing swallowed; return (result, seconds)."""
    start = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()):
        out = fn(*args, **kwargs)
    took = time.monotonic() - start
    print(f"  {what:<34} {took:8.2f} s")
    return out, took


def quorum_after_losing_each_host(plan: FleetPlan) -> str:
    """Every cluster keeps a majority whichever one host is lost (checked per cluster on the
    host holding most of its members, which is the worst loss)."""
    bad = []
    for cluster, groups in plan.fleet.clusters().items():
        if groups[0].topology is not Topology.CLUSTER:
            continue
        members = [plan.nodes[n] for g in groups for n in g.node_names]
        per_host: dict[str, int] = {}
        for m in members:
            per_host[m.host] = per_host.get(m.host, 0) + 1
        if len(members) - max(per_host.values()) < len(members) // 2 + 1:
            bad.append(cluster)
    hosts = len(plan.fleet.hypervisors)
    clusters = sum(1 for gs in plan.fleet.clusters().values() if gs[0].topology is Topology.CLUSTER)
    verdict = "kept" if not bad else f"LOST in {', '.join(sorted(bad))}"
    return f"quorum after losing any one of {hosts} hosts: {verdict} ({clusters} clusters)"


def setup_store(work: Path) -> TemplateStore:
    keys = make_signing_keys(work / "keys")
    settings = StoreSettings(
        kind=StoreKind.FS,
        path=work / "store",
        allowed_signers=keys.allowed_signers,
        image_dir=work / "pulled",
    )
    return TemplateStore(settings, keys.private_key)


def fleet_file(work: Path, copies: int, store: TemplateStore | None) -> Path:
    """The K-fold fleet; with a store, each hypervisor a test:/// host of its own."""
    work.mkdir(parents=True, exist_ok=True)
    uri = (lambda i: simulated_host(work, f"kvm-{i:04d}", 64, 120)) if store else None
    path = scaled_production(work, copies, uri)
    if store is not None:
        import yaml

        doc = yaml.safe_load(path.read_text())
        doc["store"] = store.store_section()
        # no SSH to simulated VMs: apply then leaves the Galera cluster unformed, says so
        doc["rollout"].pop("ssh_identity", None)
        doc["rollout"]["max_unavailable"] = 10 * copies
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run_size(work: Path, copies: int, gate_s: float, rollout: bool) -> dict[str, float]:
    """Plan, render, apply and rollout of one K-fold fleet, with a store of its own (version
    1 applied, version 2 rolled out)."""
    store = setup_store(work)
    for family in FAMILIES:
        store.publish(family, work / "sealed", day=24)
    path = fleet_file(work, copies, store)
    fleet = load_fleet(path)
    print(f"{copies} copies: {fleet.node_count} VMs on {len(fleet.hypervisors)} hypervisors")
    _, t_plan = timed("fleet.plan", commands.plan, path, fresh=True)
    _, t_render = timed("fleet.render", commands.render, path, work / "xml", "kvm")
    conns = Connections()
    try:
        _, t_apply = timed("fleet.apply (test driver)", commands.apply, path, conns=conns)
        print(f"  {'apply per VM':<34} {t_apply / fleet.node_count * 1000:8.2f} ms")
        plan = plan_fleet(load_fleet(path))
        print("  " + quorum_after_losing_each_host(plan))
        out = {"vms": fleet.node_count, "plan": t_plan, "render": t_render, "apply": t_apply}
        if rollout:
            for family in FAMILIES:
                store.publish(family, work / "sealed", day=25)

            def gate(node: Node) -> Health:
                time.sleep(gate_s)
                return Health(True, "simulated")

            _, t_roll = timed(
                "fleet.rollout (gate sleeps)", commands.rollout, path, conns=conns, health=gate
            )
            largest = max(sum(g.count for g in gs) for gs in fleet.clusters().values())
            bound = largest * gate_s
            ratio = f"{t_roll / bound:.1f} x" if bound else "n/a (gate 0 s)"
            print(
                f"  rollout {t_roll:.1f} s against its lower bound {bound:.1f} s "
                f"(largest cluster {largest} x {gate_s} s per node): {ratio}"
            )
            out["rollout"] = t_roll
            out["bound"] = bound
    finally:
        conns.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=50)
    ap.add_argument("--plan-copies", type=int, default=0, help="also plan (only) this many copies")
    ap.add_argument("--gate-s", type=float, default=60.0, help="the gate's sleep per node")
    ap.add_argument("--no-rollout", action="store_true")
    args = ap.parse_args()
    base_copies = max(1, args.copies // 10)
    with tempfile.TemporaryDirectory(prefix="bench-fleet-scale-") as tmp:
        work = Path(tmp)
        rollout = not args.no_rollout
        base = run_size(work / "base", base_copies, args.gate_s, False)
        big = run_size(work / "big", args.copies, args.gate_s, rollout)
        plan_big = None
        if args.plan_copies:
            path = fleet_file(work / "plan-only", args.plan_copies, None)
            n = load_fleet(path).node_count
            print(f"{args.plan_copies} copies: {n} VMs (plan only)")
            _, plan_big = timed("fleet.plan", commands.plan, path, fresh=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (max RSS): {peak:.0f} MiB")
    print("targets (measured in this run):")
    scale = big["vms"] / base["vms"]
    limit = 3 * base["plan"] * scale
    print(
        f"  plan at {big['vms']:.0f} VMs {big['plan']:.2f} s <= 3 x ({base['plan']:.3f} s at "
        f"{base['vms']:.0f} VMs x {scale:.0f}) = {limit:.2f} s: {verdict(big['plan'] <= limit)} "
        f"(ratio {big['plan'] / (base['plan'] * scale):.2f})"
    )
    if plan_big is not None:
        print(
            f"  plan at the --plan-copies fleet {plan_big:.1f} s < 60 s: {verdict(plan_big < 60)}"
        )
    per_base, per_big = base["apply"] / base["vms"], big["apply"] / big["vms"]
    print(
        f"  apply per VM {per_big * 1000:.1f} ms at {big['vms']:.0f} VMs <= 1.3 x "
        f"{per_base * 1000:.1f} ms at {base['vms']:.0f}: {verdict(per_big <= 1.3 * per_base)} "
        f"(ratio {per_big / per_base:.2f})"
    )
    if big.get("bound"):
        ratio = big["rollout"] / big["bound"]
        print(
            f"  rollout at {big['vms']:.0f} VMs {big['rollout']:.1f} s <= 1.5 x its lower bound "
            f"{big['bound']:.1f} s: {verdict(ratio <= 1.5)} (ratio {ratio:.2f})"
        )


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


if __name__ == "__main__":
    main()
