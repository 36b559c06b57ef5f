"""The public Python API, the layer contracts, one median everywhere, and forward-compatible record sections."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from bench.core.record import SCHEMA_VERSION, Record
from bench.core.stats import median, nearest_rank


def _readme_python_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has a Python example"
    return blocks[0]


def test_readme_python_example_runs_as_written(tmp_path, monkeypatch):
    """The README's notebook-style example, executed verbatim in a fresh directory."""
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_readme_python_block(), "README.md", "exec"), namespace)
    frame = namespace["frame"]
    assert list(frame["batch_size"]) == [1, 2] and (frame["status"] == "ok").all()
    assert (frame["p50_ms"] > 0).all() and (frame["output_tokens_per_s"] > 0).all()
    assert (tmp_path / "results/notebook/report.html").stat().st_size > 1000
    # the same cell's p50 is one number: DataFrame, record, comparison
    import bench

    record = bench.records("results/notebook")[0]
    assert frame.loc[0, "p50_ms"] == pytest.approx(record.median_latency_ns() / 1e6)
    same = bench.compare("results/notebook", "results/notebook")
    assert same.cells[0].current_median_ns == record.median_latency_ns()
    assert not same.regressions


def test_import_bench_loads_no_backend_library():
    code = (
        "import sys, bench, bench.cli; heavy = [m for m in ('torch', 'transformers', 'onnxruntime', 'ray', "
        "'mlperf_loadgen', 'pandas', 'matplotlib') if m in sys.modules]; print(heavy); assert not heavy"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_import_contracts_hold():
    """The layers written in pyproject.toml ([tool.importlinter]): downward imports only, no runtime in core."""
    pytest.importorskip("importlinter")
    script = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(script) if script.exists() else "lint-imports", "--no-cache"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_api_refuses_bad_input_with_one_line(tmp_path):
    import bench

    with pytest.raises(bench.UsageError, match="model"):
        bench.run({"model": ["no-such-model"]}, out=tmp_path / "x")
    with pytest.raises(bench.UsageError, match=r"out: .* expected a path ending in .html or .md"):
        bench.report(tmp_path, out=tmp_path / "report.pdf")
    with pytest.raises(bench.UsageError, match="RUN_DIR"):
        bench.load(tmp_path / "missing")


def test_median_is_the_nearest_rank_order_statistic_everywhere():
    import numpy as np

    from bench.core.stats import bootstrap_medians

    for n in (1, 2, 5, 6, 31):
        values = list(np.random.default_rng(n).integers(1, 1000, n))
        assert median(values) == nearest_rank(sorted(values), 0.5) == sorted(values)[(n + 1) // 2 - 1]
        # the bootstrap's medians (drawn from their exact distribution) are the same statistic: resample rows'
        # `median`, tallied by order statistic, agree with the drawn ones within sampling error
        rng = np.random.default_rng(100 + n)
        drawn = bootstrap_medians(values, 20_000, rng)
        rows = rng.choice(values, size=(20_000, n))
        resampled = np.array([median(row) for row in rows])
        for value in set(values):
            assert abs((drawn == value).mean() - (resampled == value).mean()) < 0.02, (n, value)
        assert set(drawn) <= set(values)


def _record_line(**extra_sections) -> dict:
    spec = {
        "workload": "gpt2-tiny",
        "backend": "cpu",
        "precision": "fp32",
        "batch_size": 1,
        "seq_len": 8,
        "new_tokens": 2,
        "options": [],
        "weights": None,
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "spec": spec,
        "status": "ok",
        "simulated": False,
        "measurement": {
            "samples_ns": [3, 1, 2, 4],
            "loop_wall_ns": 10,
            "items_per_iteration": 1,
            "warmup_iterations": 1,
            "warmup_ns": 1,
            "stopped_by": "min_reached",
            "settings": {},
            "added_by_a_newer_minor_version": [1, 2],
        },
        "environment": {"fingerprint": "abc", "new_environment_key": 1},
        "work": {"flops_per_call": 10.0, "new_work_key": "x"},
        "accuracy": {"reference": "cpu fp32", "cosine_similarity": 1.0, "new_accuracy_key": 2},
        "simulation": None,
        "loadgen": None,
        "a_new_top_level_key": {"anything": True},
        **extra_sections,
    }


def test_a_record_from_a_newer_minor_version_loads_and_keeps_its_figures():
    data = _record_line()
    data["spec"]["a_new_optional_spec_field"] = None  # left at null: the same cell
    record = Record.from_dict(json.loads(json.dumps(data)))
    assert record.median_latency_ns() == 2 and record.work["flops_per_call"] == 10.0
    assert record.accuracy["cosine_similarity"] == 1.0 and record.environment["fingerprint"] == "abc"


def test_a_newer_major_version_or_a_malformed_section_is_refused():
    with pytest.raises(ValueError, match="newer than this catchup-bench reads"):
        Record.from_dict({**_record_line(), "schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(ValueError, match="work: list is not allowed"):
        Record.from_dict(_record_line(work=[1, 2]))
