"""`bench report`: sections, the catch-up estimate checked against the records it came from, self-contained HTML,
Markdown with images beside it, flat exports, and bad input."""

from __future__ import annotations

import json
import re

import pytest
from conftest import run_cli, run_here


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    """A tiny sweep across CPU techniques (measured) and two simulated profiles, in one run directory."""
    root = tmp_path_factory.mktemp("report")
    sweep = root / "sweep.toml"
    sweep.write_text(
        '[[matrix]]\nmodel = "bert-base-tiny"\nbackend = "cpu"\nprecision = ["fp32", "bf16", "int8"]\n'
        "batch_size = [1, 2]\nseq_len = 16\n"
        '[[matrix]]\nmodel = "bert-base-tiny"\nbackend = "simulated"\nprecision = ["bf16", "int8"]\n'
        'batch_size = [1, 2]\nseq_len = 16\noptions = {profile = ["h100", "ascend-910b2"]}\n'
    )
    out = root / "run"
    records = run_here(sweep.read_text(), out, cache=root / "cache")
    assert all(r.status == "ok" for r in records), [r.reason for r in records if r.status != "ok"]
    return out


def _records(out):
    from bench.runs.store import read_run_dirs

    return read_run_dirs([out]).records


def test_html_report_has_every_section_and_no_external_reference(mixed_run, tmp_path):
    out = tmp_path / "r.html"
    done = run_cli("report", str(mixed_run), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == f"report: {out}"
    text = out.read_text()
    for title in (
        "Environments",
        "Catch-up estimate",
        "Results per workload",
        "Latency distributions",
        "Throughput against batch size",
        "Roofline",
        "Failed and unavailable cells",
    ):
        assert f"<h2>{title}</h2>" in text
    assert text.count("src='data:image/png;base64,") >= 4
    assert not re.search(r"""(src|href)\s*=\s*['"](?!data:)""", text)
    assert "http://" not in text and "https://" not in text and "<script" not in text.lower()
    assert "(simulated)" in text and "<td>measured</td>" in text


def test_catch_up_ratios_equal_those_computed_from_the_records(mixed_run):
    from bench.analysis.catchup import deviation_of
    from bench.output.report import build_report

    records = _records(mixed_run)
    report = build_report(records, frontier="h100", constrained="ascend-910b2", reference="bf16")

    def throughput(profile, precision, batch):
        r = next(
            r
            for r in records
            if r.simulated
            and r.spec.options == (("profile", profile),)
            and r.spec.precision == precision
            and r.spec.batch_size == batch
        )
        return batch / r.simulation["estimate"]["latency_s"]

    for c in report.catch_ups:
        batch = c.shape[1]
        gap = throughput("h100", "bf16", batch) / throughput("ascend-910b2", "bf16", batch)
        # best: int8 only where its gain interval lies above 1 and its deviation is within the accuracy budget
        int8 = next(p for p in c.techniques if p.technique == "int8")
        gain = dict((p.technique, g) for p, g in c.gains())["int8"]
        eligible = gain.low > 1 and c.budget.allows(deviation_of(int8.record, records)[0])[0]
        assert c.eligibility(int8)[0] == eligible
        best = throughput("ascend-910b2", "int8" if eligible else "bf16", batch)
        assert c.hardware_gap().value == pytest.approx(gap)
        assert c.catch_up_ratio().value == pytest.approx(best / throughput("h100", "bf16", batch))
        gains = {p.technique: g.value for p, g in c.gains()}
        assert gains["int8"] == pytest.approx(
            throughput("ascend-910b2", "int8", batch) / throughput("ascend-910b2", "bf16", batch)
        )
        per_watt = c.per(c.tdp_w)["hardware_gap"].value
        assert per_watt == pytest.approx(gap * 400 / 700)  # TDPs: ascend-910b2 400 W, h100 700 W
        assert c.per(c.price_usd)["catch_up_ratio"] is None  # no sourced price for either profile
    assert len(report.catch_ups) == 2


def test_measured_device_can_be_the_constrained_side(mixed_run):
    from bench.output.report import build_report

    records = _records(mixed_run)
    report = build_report(records, frontier="h100", constrained="cpu", reference="bf16")
    c = report.catch_ups[0]
    assert c.constrained_reference.source == "measured" and c.frontier_reference.source == "simulated"
    assert {p.technique for p in c.techniques} == {"fp32", "bf16", "int8"}
    gap = c.hardware_gap()
    assert gap.inputs == ("simulated", "measured")
    assert gap.low <= gap.value <= gap.high


def test_markdown_report_writes_its_images_beside_it(mixed_run, tmp_path):
    out = tmp_path / "report.md"
    done = run_cli("report", str(mixed_run), "--format", "md", "--out", str(out))
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links and all(link.startswith("report_files/") for link in links)
    for link in links:
        assert (tmp_path / link).read_bytes().startswith(b"\x89PNG")
    assert "## Catch-up estimate" in text and "| workload | metric |" in text


def test_csv_export_has_one_row_per_cell(mixed_run, tmp_path):
    import pandas as pd

    out = tmp_path / "cells.csv"
    done = run_cli("report", str(mixed_run), "--format", "csv", "--out", str(out))
    assert done.returncode == 0, done.stderr
    frame = pd.read_csv(out)
    assert len(frame) == len(_records(mixed_run)) == 14
    assert set(frame["simulated"]) == {True, False}


def test_parquet_export_or_a_clear_reason(mixed_run, tmp_path):
    out = tmp_path / "cells.parquet"
    done = run_cli("report", str(mixed_run), "--format", "parquet", "--out", str(out))
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        assert done.returncode == 2
        assert done.stderr.strip().startswith("bench report: error: --format: 'parquet' needs pyarrow")
    else:
        assert done.returncode == 0 and out.is_file()


def test_bad_run_directories_are_one_line_errors(tmp_path):
    missing = run_cli("report", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"bench report: error: RUN_DIR: {str(tmp_path / 'nope')!r} holds no records.jsonl"
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "records.jsonl").write_text("")
    done = run_cli("report", str(empty))
    assert done.returncode == 2 and done.stderr.strip().endswith("holds no readable record")
    future = tmp_path / "future"
    future.mkdir()
    (future / "records.jsonl").write_text(json.dumps({"schema_version": 99, "spec": {}, "status": "ok"}) + "\n")
    done = run_cli("report", str(future))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "schema_version: 99 is newer than this catchup-bench reads" in lines[0]
