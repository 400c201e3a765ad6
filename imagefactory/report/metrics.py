"""Prometheus metrics as node_exporter's textfile collector reads them.

One file per writer (`<stem>.prom` in the configured metrics directory), written whole and
atomically (temp file beside it, fsync, rename), so the collector never reads half a file.
Beside it, `<stem>.state.json` holds the same samples as JSON: a writer that covers only part
of what it reports (one family, one cluster) keeps the other parts' samples from there, and a
failure keeps the time of the last success.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagefactory.errors import FactoryError
from imagefactory.util import progress
from imagefactory.util.fsutil import write_atomic, write_json_atomic

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Where the directory is set: per machine, as node_exporter's directory is (docs/fleet.md).
SETTING = "factory.metrics_dir (invoke.yaml, ~/.invoke.yaml or INVOKE_FACTORY_METRICS_DIR)"


class MetricType(enum.Enum):
    GAUGE = "gauge"
    COUNTER = "counter"


@dataclass(frozen=True)
class Sample:
    labels: tuple[tuple[str, str], ...]  # (name, value), in the order written
    value: float

    @classmethod
    def of(cls, value: float, **labels: str) -> Sample:
        return cls(tuple(labels.items()), float(value))

    def label(self, name: str) -> str | None:
        return dict(self.labels).get(name)


@dataclass(frozen=True)
class Metric:
    name: str
    help: str
    type: MetricType
    samples: tuple[Sample, ...]

    def __post_init__(self) -> None:
        # names are the program's, never the user's: a bad one is a bug, caught by the tests
        if not METRIC_NAME.match(self.name):
            raise ValueError(f"bad metric name {self.name!r}")
        for sample in self.samples:
            for label, _ in sample.labels:
                if not LABEL_NAME.match(label) or label.startswith("__"):
                    raise ValueError(f"{self.name}: bad label name {label!r}")


def gauge(name: str, help: str, samples: Iterable[Sample]) -> Metric:
    return Metric(name, help, MetricType.GAUGE, tuple(samples))


def escape_label(value: str) -> str:
    """A label value as the exposition format quotes it: backslash, quote, newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """HELP text: backslash and newline escaped (quotes are literal there)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def render(metrics: Iterable[Metric]) -> str:
    """The exposition text: HELP, TYPE and samples of each metric, sorted by name."""
    lines: list[str] = []
    for m in sorted(metrics, key=lambda m: m.name):
        lines.append(f"# HELP {m.name} {escape_help(m.help)}")
        lines.append(f"# TYPE {m.name} {m.type.value}")
        for s in sorted(m.samples, key=lambda s: s.labels):
            labels = ",".join(f'{k}="{escape_label(v)}"' for k, v in s.labels)
            lines.append(
                f"{m.name}{{{labels}}} {format_value(s.value)}"
                if labels
                else f"{m.name} {format_value(s.value)}"
            )
    return "\n".join(lines) + "\n"


def check_directory(directory: Path) -> Path:
    """The metrics directory must exist: a typo must not scatter files, nor a night fail late."""
    if not directory.is_dir():
        raise FactoryError(
            f"{SETTING}: metrics directory {directory} does not exist (node_exporter's "
            "--collector.textfile.directory: create it, or unset the setting)"
        )
    return directory


def write_atomically(directory: Path, stem: str, metrics: Iterable[Metric]) -> Path:
    """`<stem>.prom` (and its JSON state) in `directory`, each replaced whole."""
    ordered = sorted((m for m in metrics if m.samples), key=lambda m: m.name)
    write_json_atomic(directory / f"{stem}.state.json", [_to_json(m) for m in ordered])
    path = directory / f"{stem}.prom"
    write_atomic(path, render(ordered))
    return path


def read_state(directory: Path, stem: str) -> dict[str, Metric]:
    """The samples written last time (name -> metric); empty when there is no usable state."""
    try:
        doc: Any = json.loads((directory / f"{stem}.state.json").read_text())
        return {m.name: m for m in (_from_json(d) for d in doc)}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # metrics are a report, not a record: start afresh, but say what was lost
        progress.warn(f"{directory / (stem + '.state.json')} unreadable ({exc}); starting afresh")
        return {}


def merge(
    previous: Mapping[str, Metric], new: Iterable[Metric], scope: str, covered: set[str]
) -> list[Metric]:
    """This run's metrics, plus the earlier samples of what it did not cover: those whose
    `scope` label (family, cluster) is not in `covered`. A metric without that label is this
    run's when it has one, else the earlier one."""
    out = {m.name: m for m in new}
    for name, old in previous.items():
        kept = tuple(s for s in old.samples if s.label(scope) not in (None, *covered))
        unscoped = tuple(s for s in old.samples if s.label(scope) is None)
        m = out.get(name)
        if m is None and kept + unscoped:
            out[name] = Metric(name, old.help, old.type, kept + unscoped)
        elif m is not None and kept:
            out[name] = Metric(name, m.help, m.type, m.samples + kept)
    return sorted(out.values(), key=lambda m: m.name)


def previous_value(previous: Mapping[str, Metric], name: str, **labels: str) -> float:
    """The earlier value of one sample (matched on `labels`), 0 when there was none."""
    metric = previous.get(name)
    for s in metric.samples if metric else ():
        if all(s.label(k) == v for k, v in labels.items()):
            return s.value
    return 0.0


def _to_json(m: Metric) -> dict[str, Any]:
    return {
        "name": m.name,
        "help": m.help,
        "type": m.type.value,
        "samples": [{"labels": dict(s.labels), "value": s.value} for s in m.samples],
    }


def _from_json(d: dict[str, Any]) -> Metric:
    samples = tuple(
        Sample(tuple((str(k), str(v)) for k, v in s["labels"].items()), float(s["value"]))
        for s in d["samples"]
    )
    return Metric(str(d["name"]), str(d["help"]), MetricType(d["type"]), samples)
