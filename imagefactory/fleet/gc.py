"""fleet.gc: the hypervisors' template cache. A template stays while any overlay on its host
is built on it (read from the overlays themselves, whatever defined them) or a channel points
at its version; the rest is listed, and removed with --apply."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from imagefactory.fleet import hypervisor as hvm
from imagefactory.fleet.disks import storage_for
from imagefactory.fleet.hypervisor import Connections
from imagefactory.fleet.model import Fleet


def collect_templates(
    fleet: Fleet,
    pinned: dict[str, str],
    *,
    host: str | None = None,
    apply: bool = False,
    conns: Connections | None = None,
    say: Callable[[str], None] = print,
) -> list[Path]:
    """Unused templates per host (removed when apply). `pinned`: family -> the version its
    channel points at, never removed."""
    unused = []
    with hvm.connections(conns) as pool:
        for name, hv in sorted(fleet.hypervisors.items()):
            if host is not None and name != host:
                continue
            storage = storage_for(hv, pool.get(hv))
            used = storage.backing_files()
            for template in storage.templates():
                keep = [
                    why
                    for why in (
                        "an overlay is built on it" if template in used else "",
                        *(
                            f"channel {fleet.channel} points at it"
                            for family, version in pinned.items()
                            if template == storage.template(family, version).resolve()
                        ),
                    )
                    if why
                ]
                if keep:
                    say(f"{name}: keep {template.name} ({'; '.join(keep)})")
                    continue
                unused.append(template)
                if apply:
                    storage.remove_template(template)
                    say(f"{name}: removed {template.name}")
                else:
                    say(f"{name}: unused {template.name} (dry run: --apply removes it)")
    return unused
