"""Benchmark of the layered build on the stand-in families; prints figures and ratios.

Run from the repository root as root: `.venv/bin/python bench/bench_build.py`.
It builds in a fresh temporary workspace (the stand-in base is built too unless
--reuse-base is given, which takes it from the e2e cache in ~/.cache/imagefactory-e2e).
The targets (no-op build, cached rebuild, parallel families) are printed beside each ratio;
nothing is asserted.
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
from imagefactory.engine.context import Artifacts  # noqa: E402
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--reuse-base",
        action="store_true",
        help="seed the stand-in base layer from ~/.cache/imagefactory-e2e",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        ws = Path(tmp)
        cfg, art = workspace(ws / "one", args.reuse_base)

        full, t_full = timed(commands.build, cfg, "standin-alpha", art)
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
