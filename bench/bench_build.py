"""Benchmark of the layered build on the stand-in families; prints figures and ratios.

Run from the repository root as root: `.venv/bin/python bench/bench_build.py`.
It builds in a fresh temporary workspace (the stand-in base is built too unless
--reuse-base is given, which takes it from the e2e cache in ~/.cache/imagefactory-e2e).
The targets (no-op build, cached rebuild, parallel families) are printed beside each ratio;
nothing is asserted. Per layer it prints the wall time beside what the guest spent (boot to
SSH, provisioning, a reboot's wait), read from the timestamps of Packer's machine-readable log,
so that time nobody uses shows. --full-only stops after the first full build and its table.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from imagefactory import commands  # noqa: E402
from imagefactory.engine.cache import LayerCache  # noqa: E402
from imagefactory.engine.context import Artifacts  # noqa: E402
from imagefactory.engine.plan import Step  # noqa: E402
from imagefactory.util.tools import run  # noqa: E402

P = ParamSpec("P")
R = TypeVar("R")


def timed(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> tuple[R, float]:
    """fn's result and its wall-clock seconds."""
    start = time.monotonic()
    result = fn(*args, **kwargs)
    return result, time.monotonic() - start


def workspace(ws: Path, reuse_base: bool) -> tuple[Path, Path]:
    """A copy of the stand-in project in `ws`; (config, artifacts)."""
    ws.mkdir(parents=True)
    shutil.copy(REPO / "standin.yaml", ws)
    for rel in ("standin", "packer", "tests/images", "appcore", "hardening"):
        shutil.copytree(REPO / rel, ws / rel)
    cfg, art = ws / "standin.yaml", ws / "artifacts"
    if reuse_base:
        cache = Path.home() / ".cache/imagefactory-e2e"
        shutil.copytree(cache / "keys", art / "keys")
        shutil.copytree(cache / "layers", art / "cache" / "layers")
    return cfg, art


def packer_phases(log: Path) -> dict[str, float]:
    """Seconds of one layer's Packer run by phase, from the machine-readable log's timestamps:
    boot (waiting for SSH), provisioning (connected to halting, reboots included), reboot
    (from the reboot command's provisioner to the next provisioner after the pause), and
    shutdown (halting to finished)."""
    events: list[tuple[float, str]] = []
    for line in log.read_text(errors="replace").splitlines():
        parts = line.split(",", 4)
        if len(parts) == 5 and parts[2] == "ui" and parts[3] == "say" and parts[0].isdigit():
            events.append((float(parts[0]), parts[4]))

    def first(text: str, after: float = 0.0) -> float | None:
        return next((ts for ts, msg in events if text in msg and ts >= after), None)

    out: dict[str, float] = {}
    wait, up = first("Waiting for SSH"), first("Connected to SSH")
    halt, done = first("Gracefully halting"), first("finished after")
    if wait is not None and up is not None:
        out["boot"] = up - wait
    if up is not None and halt is not None:
        out["provisioning"] = halt - up
    if halt is not None and done is not None:
        out["shutdown"] = done - halt
    pause = first("Pausing")
    if pause is not None:
        starts = [ts for ts, msg in events if "Provisioning with" in msg]
        before = max((ts for ts in starts if ts < pause), default=None)
        after = min((ts for ts in starts if ts > pause), default=None)
        if before is not None and after is not None:
            out["reboot"] = after - before
    return out


def layer_table(art: Path, plan_steps: list[Step], cache: LayerCache) -> list[str]:
    lines = ["  per layer: wall = the engine's build time; the phases from Packer's log"]
    for step in plan_steps:
        facts = cache.facts(step.key)
        log = art / "logs" / str(facts.get("log"))
        phases = packer_phases(log) if log.is_file() else {}  # none: reused, or no Packer
        shown = "  ".join(f"{k} {v:5.1f}" for k, v in phases.items())
        lines.append(f"    {step.layer.name:<20} wall {facts['build_seconds']:6.1f} s   {shown}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--reuse-base",
        action="store_true",
        help="seed the stand-in base layer from ~/.cache/imagefactory-e2e",
    )
    parser.add_argument(
        "--full-only", action="store_true", help="only the first full build and its table"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        ws = Path(tmp)
        cfg, art = workspace(ws / "one", args.reuse_base)

        full, t_full = timed(commands.build, cfg, "standin-alpha", art)
        table = layer_table(art, list(full.plan.steps), Artifacts(art.resolve()).cache)
        if args.full_only:
            print(f"\nfull build standin-alpha ({', '.join(full.built)}): {t_full:7.1f} s")
            print("\n".join(table))
            return
        _, t_noop = timed(commands.build, cfg, "standin-alpha", art)
        beta, t_beta = timed(commands.build, cfg, "standin-beta", art)

        cache = Artifacts(art.resolve()).cache
        facts = {s.layer.name: cache.facts(s.key) for s in full.plan.steps}
        top_layer = full.plan.steps[-2].layer.name  # the layer just below seal
        stack_s, seal_s = facts[top_layer]["build_seconds"], facts["seal"]["build_seconds"]
        script = full.plan.steps[-2].layer.scripts[-1]  # the workspace copy
        script.write_text(script.read_text() + "echo revised\n")
        top, t_top = timed(commands.build, cfg, "standin-alpha", art)

        parent = cache.image(full.plan.steps[-2].key)
        unsealed = ws / "unsealed.qcow2"
        run(["qemu-img", "convert", "-O", "qcow2", str(parent), str(unsealed)])
        sealed_size = full.image.stat().st_size
        unsealed_size = unsealed.stat().st_size

        # Both families from the same starting point, in one parallel build.
        cfg2, art2 = workspace(ws / "both", args.reuse_base)
        both, t_both = timed(commands.build_families, cfg2, ["standin-alpha", "standin-beta"], art2)

    print("\nstand-in layered build benchmark (accelerator as probed; 2 cores)")
    print(f"  full build standin-alpha ({', '.join(full.built)}): {t_full:7.1f} s")
    print("\n".join(table))
    print(f"  no-op rebuild:                     {t_noop:7.2f} s   target <= 2 s")
    print(
        f"  top-layer change rebuild ({', '.join(top.built)}): {t_top:7.1f} s; own build "
        f"{top_layer} {stack_s:.1f} + seal {seal_s:.1f} s -> ratio {t_top / (stack_s + seal_s):.2f}"
        "   target <= 1.2"
    )
    print(
        f"  second family after first ({', '.join(beta.built)}): {t_beta:.1f} s; "
        f"sequential both / one = {(t_full + t_beta) / t_full:.2f}"
    )
    built = sum(len(r.built) for r in both)
    print(
        f"  both families in one parallel build ({built} layers): {t_both:.1f} s; "
        f"both / one = {t_both / t_full:.2f}   target <= 1.3"
    )
    print(
        f"  sealed {sealed_size / 2**20:.1f} MiB vs unsealed flattened {unsealed_size / 2**20:.1f}"
        f" MiB -> ratio {sealed_size / unsealed_size:.2f}   target <= 0.6"
    )


if __name__ == "__main__":
    main()
