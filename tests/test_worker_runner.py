"""The worker's cell logic in-process, the isolation wait, and failure handling."""

import subprocess
import sys
import time

import pytest

from bench.core.record import Record
from bench.core.settings import MeasureSettings
from bench.core.spec import BenchmarkSpec
from bench.runs.runner import _death_reason, wait_blocking
from bench.runs.worker import FAULT_ENV, run_cell

QUICK = MeasureSettings(
    warmup_iterations=1, warmup_time_s=0, warmup_window=0, min_iterations=6, min_time_s=0.05, ci_target=0
)


def test_encoder_cell_records_samples_environment_and_memory():
    record = run_cell(BenchmarkSpec("bert-base-uncased-tiny", "cpu", "fp32", 2, 16), QUICK)
    assert record.status == "ok", record.reason
    assert len(record.measurement.samples_ns) >= 6
    assert all(isinstance(s, int) and s > 0 for s in record.measurement.samples_ns)
    assert record.simulated is False
    env = record.environment
    assert env["threads"]["torch_intra_op"] >= 1 and env["libraries"]["torch"]
    assert env["cpu"]["model"] and env["device"]["type"] == "cpu" and len(env["fingerprint"]) == 16
    assert record.memory["peak_rss_bytes"] > 10 * 2**20
    assert record.model["parameters"] > 1000 and record.model["class"] == "BertModel"
    assert Record.from_dict(record.to_dict()).measurement == record.measurement


def test_generation_cell_produces_exactly_new_tokens_per_call():
    record = run_cell(BenchmarkSpec("gpt2-tiny", "cpu", "bf16", 1, 8, 5), QUICK)
    assert record.status == "ok", record.reason
    assert all(len(marks) == 5 for marks in record.measurement.token_marks_ns)
    assert record.measurement.tokens_per_iteration == 5
    g = record.generation()
    assert g.ttft.p50 > 0 and g.tpot.p50 > 0 and g.output_tokens_per_s > 0


def test_exception_in_a_cell_becomes_a_failed_record(monkeypatch):
    monkeypatch.setenv(FAULT_ENV, "raise@bert-base-uncased-tiny")
    record = run_cell(BenchmarkSpec("bert-base-uncased-tiny", "cpu", "fp32", 1, 8), QUICK)
    assert record.status == "failed"
    assert record.reason.startswith("RuntimeError: fault injected")
    assert "Traceback" in record.detail


def test_parent_wait_blocks_without_using_cpu():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    cpu_before, wall_before = time.process_time(), time.monotonic()
    assert wait_blocking(proc, timeout=30) == 0
    cpu_used, wall = time.process_time() - cpu_before, time.monotonic() - wall_before
    assert wall >= 1.0
    assert cpu_used < 0.02, f"parent used {cpu_used:.3f} s of CPU while waiting {wall:.1f} s"


def test_wait_times_out():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            wait_blocking(proc, timeout=0.3)
    finally:
        proc.kill()
        proc.wait()


def test_death_reasons_name_the_signal():
    assert "SIGKILL" in _death_reason(-9, "") and "out-of-memory" in _death_reason(-9, "")
    assert "SIGSEGV" in _death_reason(-11, "boom\nlast words")
    assert "last words" in _death_reason(-11, "boom\nlast words")
    assert "status 3" in _death_reason(3, "")
