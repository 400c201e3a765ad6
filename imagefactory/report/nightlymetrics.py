"""`invoke nightly`'s metrics (imagefactory_nightly.prom): per family the last success and
failure, the time it took, and the image its channel has; per night the wall time.

A night of some families keeps the others' samples, and a failed family keeps its last
success time and its image's facts (metrics.merge); a timestamp of 0 means "never".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagefactory.report.metrics import (
    Metric,
    Sample,
    gauge,
    merge,
    previous_value,
    read_state,
    write_atomically,
)

STEM = "imagefactory_nightly"
SUCCESS = "imagefactory_nightly_last_success_timestamp_seconds"
FAILURE = "imagefactory_nightly_last_failure_timestamp_seconds"


@dataclass(frozen=True)
class ImageFacts:
    """The sealed image a family's channel has after its night, from its manifest."""

    version: str
    size_bytes: int
    cis_score: float | None  # None: no compliance scan recorded
    layer_seconds: tuple[tuple[str, float], ...]  # (layer, build seconds), base first

    @classmethod
    def from_manifest(cls, version: str, doc: dict[str, Any]) -> ImageFacts:
        comp = doc.get("compliance")
        score = comp.get("score") if isinstance(comp, dict) else None
        return cls(
            version,
            int(doc["image"]["size"]),
            None if score is None else float(score),
            tuple((str(x["name"]), float(x["build_seconds"])) for x in doc.get("layers", [])),
        )


@dataclass(frozen=True)
class FamilyNight:
    family: str
    ok: bool
    seconds: float
    finished: float  # Unix time
    image: ImageFacts | None  # None when the night failed before the image was known


def nightly_metrics(
    directory: Path, nights: Sequence[FamilyNight], night_seconds: float, now: float
) -> Path:
    """Write imagefactory_nightly.prom for this night (other families' samples kept)."""
    previous = read_state(directory, STEM)
    ran = {n.family for n in nights}

    def stamp(name: str, n: FamilyNight, happened: bool) -> Sample:
        value = n.finished if happened else previous_value(previous, name, family=n.family)
        return Sample.of(value, family=n.family)

    new = [
        gauge(
            SUCCESS,
            "Unix time of the family's last successful nightly (published or nothing to do); "
            "0: never.",
            (stamp(SUCCESS, n, n.ok) for n in nights),
        ),
        gauge(
            FAILURE,
            "Unix time of the family's last failed nightly; 0: never.",
            (stamp(FAILURE, n, not n.ok) for n in nights),
        ),
        gauge(
            "imagefactory_nightly_family_duration_seconds",
            "Wall time of the family's last nightly run.",
            (Sample.of(n.seconds, family=n.family) for n in nights),
        ),
        gauge(
            "imagefactory_nightly_duration_seconds",
            "Wall time of the last nightly run, all its families.",
            [Sample.of(night_seconds)],
        ),
        gauge(
            "imagefactory_nightly_last_run_timestamp_seconds",
            "Unix time the last nightly run ended.",
            [Sample.of(now)],
        ),
    ]
    with_image = {n.family for n in nights if n.image is not None}
    image = _image_metrics(nights)
    names = {m.name for m in image}
    # A failed family keeps the facts of the image its channel still has.
    final = merge({k: v for k, v in previous.items() if k not in names}, new, "family", ran)
    final += merge({k: v for k, v in previous.items() if k in names}, image, "family", with_image)
    return write_atomically(directory, STEM, final)


def _image_metrics(nights: Sequence[FamilyNight]) -> list[Metric]:
    facts = [(n.family, n.image) for n in nights if n.image is not None]
    return [
        gauge(
            "imagefactory_image_size_bytes",
            "Size of the sealed image (qcow2) the family's nightly channel has.",
            (Sample.of(i.size_bytes, family=f, version=i.version) for f, i in facts),
        ),
        gauge(
            "imagefactory_image_cis_score",
            "CIS compliance score (oscap) of that image, when its verify ran a scan.",
            (
                Sample.of(i.cis_score, family=f, version=i.version)
                for f, i in facts
                if i.cis_score is not None
            ),
        ),
        gauge(
            "imagefactory_image_layer_build_seconds",
            "Build time of each layer of that image (a layer taken from the cache keeps the "
            "time of the build that made it).",
            (
                Sample.of(s, family=f, layer=layer, version=i.version)
                for f, i in facts
                for layer, s in i.layer_seconds
            ),
        ),
    ]
