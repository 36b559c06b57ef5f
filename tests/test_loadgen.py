"""MLPerf LoadGen scenarios end to end through the CLI, on tiny workloads on the CPU, with the real LoadGen.

The record's figures must equal LoadGen's own summary (mlperf_log_summary.txt, kept beside the records): the
record is built from LoadGen's detail log, so this checks the reading of one log against the other."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import pytest
from conftest import run_cli, run_here

from bench.cli import main
from bench.core.errors import UsageError
from bench.core.settings import MeasureSettings
from bench.core.spec import BenchmarkSpec


def _needs_loadgen() -> None:
    pytest.importorskip("mlperf_loadgen", reason="needs the loadgen extra (installed by make test)")


SWEEP = """
[measure]
warmup_iterations = 2
warmup_time_s = 0.2
warmup_window = 0

[measure.loadgen]
min_duration_s = 0.5
min_queries = 16
max_duration_s = 20
search_steps = 1

[[matrix]]
model = "gpt2-tiny"
precision = "bf16"
seq_len = 16
new_tokens = 4
scenario = "single-stream"

[[matrix]]
model = "bert-base-tiny"
precision = "bf16"
batch_size = 2
seq_len = 16
scenario = ["multi-stream", "offline", "server"]
load = { target_qps = 20, latency_ms = 0.001 }   # a bound no machine meets

[[matrix]]
model = "bert-base-tiny"
seq_len = 16
scenario = "server"
load = { target_qps = "max", latency_ms = 1000 }
"""


@pytest.fixture(scope="module")
def loadgen_run(tmp_path_factory):
    _needs_loadgen()
    root = tmp_path_factory.mktemp("loadgen")
    (root / "sweep.toml").write_text(SWEEP)
    out = root / "run"
    run_here(SWEEP, out)  # in this process: LoadGen's own figures do not depend on a worker's isolation
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    return (
        out,
        types.SimpleNamespace(returncode=0, stderr=""),
        {r["spec"]["scenario"] + ("-max" if r["spec"]["load"].get("target_qps") == "max" else ""): r for r in records},
    )


def _summary(out: Path, record: dict) -> str:
    return (out / record["loadgen"]["logs"] / "mlperf_log_summary.txt").read_text()


def _stat(summary: str, pattern: str) -> float:
    found = re.search(pattern, summary, re.MULTILINE)
    assert found, f"{pattern!r} not in the summary"
    return float(found.group(1))


def test_every_scenario_runs_and_keeps_its_logs(loadgen_run):
    out, proc, records = loadgen_run
    assert proc.returncode == 0, proc.stderr
    assert sorted(records) == ["multi-stream", "offline", "server", "server-max", "single-stream"]
    for record in records.values():
        assert record["status"] == "ok" and record["measurement"] is None
        section = record["loadgen"]
        assert section["validity"] in ("VALID", "INVALID")
        assert section["loadgen_version"].startswith("6.")
        assert (out / section["logs"] / "mlperf_log_detail.txt").is_file()
        assert section["sut"]["error"] is None and section["sut"]["samples"] >= 1
    shown = run_cli("show", str(out))  # what a user reads after the run
    assert shown.returncode == 0 and "LoadGen result" in shown.stdout


def test_record_figures_equal_loadgen_summary(loadgen_run):
    out, _, records = loadgen_run
    for name, record in records.items():
        summary, section = _summary(out, record), record["loadgen"]
        results = section["results"]
        assert f"Result is : {section['validity']}" in summary
        percentiles = re.findall(r"^(\d+\.\d+) percentile latency \(ns\)\s*:\s*(\d+)", summary, re.MULTILINE)
        assert percentiles, name
        for percentile, value in percentiles:
            assert results[f"{percentile}_percentile_latency_ns"] == int(value), (name, percentile)
        assert results["mean_latency_ns"] == _stat(summary, r"^Mean latency \(ns\)\s*:\s*(\d+)")
    assert records["offline"]["loadgen"]["results"]["samples_per_second"] == pytest.approx(
        _stat(_summary(out, records["offline"]), r"^Samples per second\s*:\s*([\d.]+)"), rel=1e-3
    )
    single = records["single-stream"]["loadgen"]["results"]
    assert single["90.00_percentile_latency_ns"] == _stat(
        _summary(out, records["single-stream"]), r"^90.0th percentile latency \(ns\)\s*:\s*(\d+)"
    )
    assert single["qps_with_loadgen_overhead"] == pytest.approx(
        _stat(_summary(out, records["single-stream"]), r"^QPS w/ loadgen overhead\s*:\s*([\d.]+)"), rel=1e-3
    )


def test_language_model_reports_token_latencies(loadgen_run):
    out, _, records = loadgen_run
    record = records["single-stream"]
    section, summary = record["loadgen"], _summary(out, record)
    assert section["token_latencies"] and section["new_tokens"] == 4
    results = section["results"]
    assert results["first_token_50.00_percentile_latency_ns"] == _stat(
        summary, r"^50.00 percentile first token latency \(ns\)\s*:\s*(\d+)"
    )
    assert results["time_per_output_token_50.00_percentile_ns"] == _stat(
        summary, r"^50.00 percentile time to output token \(ns\)\s*:\s*(\d+)"
    )
    assert 0 < results["first_token_50.00_percentile_latency_ns"] < results["50.00_percentile_latency_ns"]


def test_impossible_server_target_is_invalid_with_the_reason(loadgen_run):
    out, _, records = loadgen_run
    section = records["server"]["loadgen"]
    assert section["validity"] == "INVALID"
    assert "latency constraint not met" in section["invalid_reasons"]
    assert "Performance constraints satisfied : NO" in _summary(out, records["server"])
    assert section["settings"]["target_qps"] == 20 and section["settings"]["target_latency_ns"] == 1000


def test_batching_follows_the_scenario(loadgen_run):
    _, _, records = loadgen_run
    multi = records["multi-stream"]["loadgen"]
    assert multi["settings"]["samples_per_query"] == 2 and multi["sut"]["largest_batch"] == 2
    offline = records["offline"]["loadgen"]
    assert offline["sut"]["largest_batch"] == 2 and offline["sut"]["batches"] >= offline["sut"]["samples"] / 2
    assert offline["sut"]["padded_samples"] == 0


def test_accuracy_only_run_feeds_the_accuracy_guard(loadgen_run):
    out, _, records = loadgen_run
    for name in ("single-stream", "offline"):
        accuracy = records[name]["accuracy"]
        assert accuracy["source"].startswith("LoadGen AccuracyOnly")
        assert accuracy["cosine_similarity"] > 0.99
        assert (out / records[name]["loadgen"]["accuracy_log"]).is_file()
    assert records["single-stream"]["accuracy"]["compared_shape"][0] == 1  # one sample, last-position logits
    assert records["server-max"]["accuracy"] is None  # fp32 on the CPU is the reference itself


def test_server_search_keeps_its_trail(loadgen_run):
    _, _, records = loadgen_run
    section = records["server-max"]["loadgen"]
    trail = section["search"]
    assert len(trail) == 2 and all(step["target_qps"] > 0 for step in trail)
    valid = [step["target_qps"] for step in trail if step["validity"] == "VALID"]
    if valid:
        assert section["validity"] == "VALID"
        assert section["settings"]["target_qps"] == pytest.approx(max(valid), rel=1e-3)
    else:
        assert section["validity"] == "INVALID"


def test_without_loadgen_cells_are_unavailable_with_the_install_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlperf_loadgen", None)  # as if the package were not installed
    out = tmp_path / "run"
    status = main(["run", "-m", "bert-base-tiny", "--seq-len", "16", "--scenario", "offline", "-q", "--out", str(out)])
    assert status == 2
    record = json.loads((out / "records.jsonl").read_text())
    assert record["status"] == "unavailable" and "pip install 'catchup-bench[loadgen]'" in record["reason"]
    assert "catchup-bench[loadgen]" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, field",
    [
        (["--scenario", "server", "--target-qps", "-5"], "--target-qps"),
        (["--scenario", "server"], "load.target_qps: missing"),
        (["--scenario", "offline", "--lg-min-duration", "0"], "--lg-min-duration"),
        (["--scenario", "offline", "--lg-max-duration", "-1"], "--lg-max-duration"),
        (["--scenario", "streaming"], "--scenario"),
        (["--scenario", "single-stream", "--batch-size", "4"], "single-stream"),
        (["--scenario", "server", "--target-qps", "5", "--backend", "simulated", "--profile", "h100"], "scenario"),
    ],
)
def test_bad_loadgen_settings_exit_2_with_one_line(tmp_path, capsys, flags, field):
    status = main(["run", "-m", "bert-base-tiny", "--seq-len", "16", "--out", str(tmp_path / "run"), *flags])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and field in err, err
    assert not (tmp_path / "run" / "records.jsonl").exists()


def test_bad_loadgen_table_in_a_sweep_file_names_the_field(tmp_path, capsys):
    sweep = tmp_path / "bad.toml"
    sweep.write_text('model = "bert-base-tiny"\nscenario = "offline"\n[measure.loadgen]\nmin_duration_s = 0\n')
    assert main(["run", str(sweep), "--out", str(tmp_path / "run")]) == 2
    assert "measure.loadgen.min_duration_s: 0 is not allowed" in capsys.readouterr().err


def test_scenario_and_load_are_part_of_the_cell_identity():
    latency = BenchmarkSpec("gpt2", "cpu")
    assert latency.key == "c92c1e8cfa56eaa1"  # unchanged from schema 2: old runs still resume and compare
    server = BenchmarkSpec("gpt2", "cpu", scenario="server", load={"target_qps": 5})
    assert server.key != latency.key != BenchmarkSpec("gpt2", "cpu", scenario="offline").key
    assert BenchmarkSpec.from_dict(server.to_dict()) == server
    with pytest.raises(UsageError, match="load.ttft_ms: 'ttft_ms' is not a parameter of scenario offline"):
        BenchmarkSpec("gpt2", "cpu", scenario="offline", load={"ttft_ms": 5})
    assert MeasureSettings().loadgen.run_length("server") == (5.0, 662, 300.0)
    official = MeasureSettings.from_dict({"loadgen": {"official": True}}).loadgen
    assert official.run_length("server") == (600.0, 270336, 0.0)


def test_report_has_a_loadgen_section(loadgen_run, tmp_path, capsys):
    out, _, records = loadgen_run
    assert main(["report", str(out), "--format", "md", "--out", str(tmp_path / "r.md")]) == 0
    text = (tmp_path / "r.md").read_text()
    assert "## LoadGen scenarios" in text and "### server" in text and "latency constraint not met" in text
    assert records["offline"]["loadgen"]["logs"] in text


def test_fixed_batch_runtime_pads_partial_batches_and_answers_the_asked_rows(tmp_path):
    """A runtime without PreparedCall.take (an exported graph, a CUDA graph) runs the whole batch for a partial one;
    in accuracy mode it must still answer each sample with that sample's own output."""
    _needs_loadgen()
    from backends.registry import backend_class
    from bench.measure.loadgen import run_loadgen_cell
    from models.catalogue import get_workload

    spec = BenchmarkSpec(
        "bert-base-uncased-tiny", "cpu", "bf16", batch_size=2, seq_len=8, scenario="server", load={"target_qps": 40}
    )
    settings = MeasureSettings.from_dict(
        {"warmup_time_s": 0.1, "warmup_window": 0, "loadgen": {"min_duration_s": 0.3, "min_queries": 12}}
    )
    backend = backend_class("cpu")(spec)
    workload = get_workload(spec.workload)
    prepared = backend.prepare(workload, spec)
    with backend.execution_context():
        reference = prepared.output().float()
    prepared.take = None  # as if the batch shape were fixed
    run = run_loadgen_cell(spec, settings, workload, backend, prepared, tmp_path, check_accuracy=True)
    sut = run.section["sut"]
    assert sut["samples"] >= 12 and sut["padded_samples"] == 2 * sut["batches"] - sut["samples"] > 0
    assert run.accuracy_output.shape == reference.shape
    assert (run.accuracy_output - reference).abs().max() < 1e-6  # every sample got its own row back
