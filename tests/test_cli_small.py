"""Small things users hit: "did you mean", help text, the imprecise flag, JSON Lines and SQL output, progress lines
with an ETA, percentiles of serving metrics. Library calls (the CLI adds nothing to what is checked here)."""

from __future__ import annotations

import io
import json
import sqlite3

import pytest

from bench.core.errors import invalid_value
from bench.core.record import Measurement, Record
from bench.core.spec import BenchmarkSpec


def test_unknown_names_suggest_the_closest_allowed_one():
    message = str(invalid_value("backend", "onnxrutime", ("cpu", "cuda", "onnxruntime")))
    assert message.startswith("backend: 'onnxrutime' is not allowed; expected one of cpu, cuda, onnxruntime")
    assert message.endswith("did you mean 'onnxruntime'?")
    assert "did you mean" not in str(invalid_value("backend", "zzz", ("cpu", "cuda")))
    from models.catalogue import get_workload

    with pytest.raises(Exception, match="did you mean 'gpt2-tiny'"):
        get_workload("gpt2-tinny")


def test_every_help_text_prints_percent_signs_literally():
    from bench.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in subparsers.items():
        text = sub.format_help()
        assert "%%" not in text, name
    assert "95% interval" in subparsers["compare"].format_help()
    assert "+-1%" in subparsers["run"].format_help()


def _record(samples, marks=None, **kw) -> Record:
    m = Measurement(
        samples_ns=samples,
        loop_wall_ns=sum(samples),
        items_per_iteration=1,
        warmup_iterations=0,
        warmup_ns=0,
        stopped_by="min_reached",
        settings={},
        token_marks_ns=marks,
        **kw,
    )
    return Record(BenchmarkSpec("gpt2-tiny", "cpu"), "ok", measurement=m)


def test_a_cell_with_a_wide_interval_is_marked_imprecise():
    from bench.output.render import render

    steady = _record([1_000_000 + i for i in range(60)])
    noisy = _record([(1 + (i % 7)) * 1_000_000 for i in range(12)])
    assert "imprecise" not in render([steady], "table")
    assert "imprecise" in render([noisy], "table")


def test_jsonl_and_sql_outputs_load_as_they_claim():
    from bench.output.render import render, render_sql

    records = [_record([2_000_000, 3_000_000, 2_500_000] * 4)]
    lines = render(records, "jsonl").splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["p50_ms"] == pytest.approx(2.5)
    db = sqlite3.connect(":memory:")
    db.executescript(render_sql([("my run-1", records), ("other", records)]))
    assert db.execute('SELECT count(*), max(p50_ms) FROM "run_my_run_1"').fetchone() == (1, 2.5)
    assert db.execute('SELECT model FROM "run_other"').fetchone() == ("gpt2-tiny",)


def test_progress_without_a_terminal_prints_plain_lines_with_elapsed_and_eta():
    from bench.output.progress import Progress

    stream = io.StringIO()
    progress = Progress(3, stream=stream)
    spec = BenchmarkSpec("gpt2-tiny", "cpu")
    progress.start(0, spec)
    progress.update({"phase": "measure", "calls": 10, "median_ms": 1.0})  # a terminal-only redraw: no line here
    progress.finish(0, Record(spec, "ok"), 1.0)
    progress.start(1, spec)
    text = stream.getvalue()
    assert "[1/3] running gpt2-tiny" in text and "[1/3] ok (1.0 s)" in text
    assert "ETA" in text.splitlines()[-1] and "\x1b" not in text


def test_serving_percentiles_and_goodput_are_derived_from_the_requests():
    from bench.output.render import summary_row

    marks = [[10_000_000, 20_000_000, 30_000_000]] * 9 + [[90_000_000, 100_000_000, 110_000_000]]
    record = _record([40_000_000] * 9 + [120_000_000], marks, tokens_per_sample=[3] * 10)
    record.serving = {"requests_ok": 10, "requests_failed": 2, "slo_ms": {"ttft": 50}, "server": {}, "load": {}}
    row = summary_row(record, percentiles=(50, 95))
    assert row["ttft_p50_ms"] == 10.0 and row["ttft_p95_ms"] == 90.0
    assert row["e2e_p95_ms"] == 120.0 and row["itl_p50_ms"] == 10.0
    assert row["goodput_fraction"] == pytest.approx(0.9) and row["requests_failed"] == 2
