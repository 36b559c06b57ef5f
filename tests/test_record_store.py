import json
import warnings

import pytest

from bench.core.record import SCHEMA_VERSION, Measurement, Record
from bench.core.spec import BenchmarkSpec
from bench.runs.store import RunStore, StoreWarning


def make_record(batch=1, status="ok", samples=(1000, 1100, 1200, 900, 1000, 1050), marks=None, tokens=None):
    spec = BenchmarkSpec("gpt2-tiny", "cpu", "fp32", batch, 16, 3 if marks else None)
    if status != "ok":
        return Record(spec, status, reason="because")
    m = Measurement(
        samples_ns=list(samples),
        loop_wall_ns=sum(samples) + 100,
        items_per_iteration=batch,
        warmup_iterations=2,
        warmup_ns=5000,
        stopped_by="min_reached",
        settings={},
        token_marks_ns=marks,
        tokens_per_iteration=tokens,
    )
    return Record(spec, "ok", measurement=m, environment={"fingerprint": "abc"})


def test_generation_metrics_follow_vllm_definitions():
    # Two requests, 3 output tokens each; marks are times after request start at which each token was ready.
    record = make_record(samples=(100, 130), marks=[[40, 70, 100], [50, 90, 130]], tokens=3)
    g = record.generation()
    assert g.ttft.p50 == 40 and g.ttft.max == 50
    # TPOT per request = (e2e - ttft) / (tokens - 1): (100-40)/2 = 30 and (130-50)/2 = 40
    assert sorted([g.tpot.min, g.tpot.max]) == [30, 40]
    # ITL: every gap between consecutive tokens, pooled: 30, 30, 40, 40
    assert g.itl.n == 4 and g.itl.min == 30 and g.itl.max == 40
    # 2 requests x 3 tokens over a loop wall of 330 ns
    assert g.output_tokens_per_s == pytest.approx(6 / 330e-9)


def test_throughput_is_items_over_loop_wall_time():
    record = make_record(batch=4, samples=(1000,) * 10)
    assert record.throughput() == pytest.approx(4 * 10 / (10_100 / 1e9))


def test_store_round_trip_and_latest(tmp_path):
    store = RunStore(tmp_path / "run")
    store.prepare()
    first, second = make_record(status="failed"), make_record()
    store.append(first)
    store.append(second)
    read = store.read()
    assert [r.status for r in read.records] == ["failed", "ok"]
    assert read.records[1].measurement.samples_ns == list(second.measurement.samples_ns)
    assert [r.status for r in store.latest()] == ["ok"]
    assert store.ok_keys() == {second.spec.key}
    for line in store.path.read_text().splitlines():
        assert json.loads(line)["schema_version"] == SCHEMA_VERSION


def test_truncated_last_line_is_skipped_with_a_warning_and_later_appends_survive(tmp_path):
    store = RunStore(tmp_path)
    store.append(make_record(batch=1))
    store.append(make_record(batch=2))
    data = store.path.read_bytes()
    store.path.write_bytes(data[: len(data) - 40])  # a crash tore the last line
    with pytest.warns(StoreWarning, match="truncated last line"):
        records = store.read().records
    assert [r.spec.batch_size for r in records] == [1]
    store.append(make_record(batch=3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = store.read().records
    assert [r.spec.batch_size for r in records] == [1, 3]
    assert any("line 2" in str(w.message) or ":2:" in str(w.message) for w in caught)


def test_newer_schema_is_refused_not_misread(tmp_path):
    store = RunStore(tmp_path)
    data = make_record().to_dict()
    data["schema_version"] = SCHEMA_VERSION + 1
    store.path.write_text(json.dumps(data) + "\n")
    result = store.read(warn=False)
    assert result.records == [] and "newer" in result.skipped[0]


def test_record_requires_reason_when_not_ok():
    from bench.core.errors import UsageError

    with pytest.raises(UsageError, match="reason"):
        Record(BenchmarkSpec("gpt2", "cpu"), "failed")
    with pytest.raises(UsageError, match="status"):
        Record(BenchmarkSpec("gpt2", "cpu"), "weird", reason="x")
