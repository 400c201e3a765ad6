"""The textfile metrics format (imagefactory/report/metrics.py): rendering, escaping, the
atomic write and the merge that keeps what a run did not cover. promtool checks the output
of real runs in tests/integration/test_metrics_promtool.py and the nightly and fleet tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefactory.errors import FactoryError
from imagefactory.report.metrics import (
    Metric,
    MetricType,
    Sample,
    check_directory,
    gauge,
    merge,
    read_state,
    render,
    write_atomically,
)


def test_render_writes_help_type_and_samples_sorted() -> None:
    """HELP and TYPE before the samples, metrics by name, whole numbers without a point."""
    text = render(
        [
            gauge("b_seconds", "B.", [Sample.of(1.5, family="x")]),
            gauge("a_bytes", "A.", [Sample.of(3, family="y"), Sample.of(2, family="x")]),
        ]
    )
    assert text == (
        "# HELP a_bytes A.\n# TYPE a_bytes gauge\n"
        'a_bytes{family="x"} 2\na_bytes{family="y"} 3\n'
        "# HELP b_seconds B.\n# TYPE b_seconds gauge\n"
        'b_seconds{family="x"} 1.5\n'
    )


def test_label_values_and_help_are_escaped() -> None:
    """Backslash, quote and newline in a label value; backslash and newline in HELP."""
    text = render([gauge("m", 'a\\b\nc "q"', [Sample.of(1, v='a"b\\c\nd')])])
    assert text == '# HELP m a\\\\b\\nc "q"\n# TYPE m gauge\nm{v="a\\"b\\\\c\\nd"} 1\n'


def test_a_bad_metric_or_label_name_is_refused() -> None:
    """Names are the program's: a bad one is a bug and raises at once."""
    with pytest.raises(ValueError, match="bad metric name"):
        gauge("imagefactory-x", "x", [])
    with pytest.raises(ValueError, match="bad label name"):
        gauge("m", "x", [Sample.of(1, **{"__name__": "x"})])


def test_write_replaces_the_file_whole_and_leaves_no_temp(tmp_path: Path) -> None:
    """The .prom file and its state are written; no temp file is left beside them."""
    write_atomically(tmp_path, "t", [gauge("m", "M.", [Sample.of(1, family="a")])])
    write_atomically(tmp_path, "t", [gauge("m", "M.", [Sample.of(2, family="a")])])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.prom", "t.state.json"]
    assert (tmp_path / "t.prom").read_text().endswith('m{family="a"} 2\n')
    assert read_state(tmp_path, "t")["m"].samples == (Sample((("family", "a"),), 2.0),)


def test_merge_keeps_samples_the_run_did_not_cover() -> None:
    """fb's old sample stays, fa's is replaced, an unscoped metric is the new one."""
    old = {
        "m": gauge("m", "M.", [Sample.of(1, family="fa"), Sample.of(2, family="fb")]),
        "night": gauge("night", "N.", [Sample.of(10)]),
    }
    new = [gauge("m", "M.", [Sample.of(5, family="fa")]), gauge("night", "N.", [Sample.of(11)])]
    merged = {m.name: m for m in merge(old, new, "family", {"fa"})}
    assert sorted((s.label("family"), s.value) for s in merged["m"].samples) == [
        ("fa", 5.0),
        ("fb", 2.0),
    ]
    assert merged["night"].samples == (Sample((), 11.0),)


def test_a_missing_metrics_directory_is_refused(tmp_path: Path) -> None:
    """The message names the setting and the directory."""
    with pytest.raises(FactoryError, match=r"factory.metrics_dir .*: metrics directory .*/nope"):
        check_directory(tmp_path / "nope")


def test_metric_type_is_written_as_its_value() -> None:
    """A counter says counter."""
    text = render([Metric("c_total", "C.", MetricType.COUNTER, (Sample.of(7),))])
    assert "# TYPE c_total counter\nc_total 7\n" in text
