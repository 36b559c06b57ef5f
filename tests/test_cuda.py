"""The CUDA backend on a real NVIDIA GPU. Marked `cuda`: skipped, with the probe's reason, where there is none
(conftest.py); scripts/gpu_check.sh runs them on a GPU machine."""

from __future__ import annotations

import json

import pytest
from conftest import QUICK, run_cli

pytestmark = pytest.mark.cuda


def _records(out):
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def test_cuda_precisions_graphs_and_compile_on_an_encoder(tmp_path):
    out = tmp_path / "cuda-encoder"
    sweep = tmp_path / "cuda.toml"
    sweep.write_text(
        '[[matrix]]\nmodel = "bert-base-tiny"\nbackend = "cuda"\nprecision = ["fp32", "bf16", "fp16"]\n'
        "batch_size = 2\nseq_len = 32\n"
        '[[matrix]]\nmodel = "bert-base-tiny"\nbackend = "cuda"\nprecision = "bf16"\nbatch_size = 2\nseq_len = 32\n'
        "options = {graphs = true}\n"
        '[[matrix]]\nmodel = "bert-base-tiny"\nbackend = "cuda"\nprecision = "bf16"\nbatch_size = 2\nseq_len = 32\n'
        'options = {compile = "default"}\n'
    )
    done = run_cli("run", str(sweep), "--out", str(out), "-q", *QUICK)
    assert done.returncode == 0, done.stderr + done.stdout
    records = _records(out)
    assert len(records) == 5 and all(r["status"] == "ok" for r in records), [r["reason"] for r in records]
    for r in records:
        m = r["measurement"]
        assert len(m["device_samples_ns"]) == len(m["samples_ns"])
        # device time of a call cannot exceed its synchronised wall time (small slack for event resolution)
        assert (
            sorted(m["device_samples_ns"])[len(m["samples_ns"]) // 2]
            <= sorted(m["samples_ns"])[len(m["samples_ns"]) // 2] * 1.05
        )
        assert r["memory"]["device_peak_allocated_bytes"] > 0
        assert r["environment"]["device"]["type"] == "cuda"
        assert r["accuracy"]["cosine_similarity"] > 0.99
    graphs = next(r for r in records if r["spec"]["options"].get("graphs"))
    assert graphs["model"]["cuda_graph"] is True
    compiled = next(r for r in records if r["spec"]["options"].get("compile"))
    assert compiled["model"]["compile"]["first_call_s"] > 0


def test_cuda_generation_records_token_latencies_and_telemetry(tmp_path):
    out = tmp_path / "cuda-gpt2"
    done = run_cli(
        "run",
        "--model",
        "gpt2-tiny",
        "--backend",
        "cuda",
        "--precision",
        "bf16",
        "--seq-len",
        "32",
        "--new-tokens",
        "8",
        "--out",
        str(out),
        "-q",
        *QUICK,
    )
    assert done.returncode == 0, done.stderr
    (record,) = _records(out)
    assert record["status"] == "ok", record["reason"]
    assert all(len(marks) == 8 for marks in record["measurement"]["token_marks_ns"])
    telemetry = record["measurement"]["telemetry"]
    try:
        import pynvml  # noqa: F401
    except ImportError:
        assert "nvidia-ml-py is not installed" in telemetry["unavailable"]
    else:
        assert telemetry["energy_j"] > 0 and telemetry["samples"] >= 2


def test_onnxruntime_cuda_provider_when_installed(tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime-gpu is not installed here")
    out = tmp_path / "ort-cuda"
    done = run_cli(
        "run",
        "--model",
        "bert-base-tiny",
        "--backend",
        "onnxruntime",
        "-O",
        "provider=cuda",
        "--precision",
        "fp32,fp16",
        "--seq-len",
        "32",
        "--out",
        str(out),
        "-q",
        *QUICK,
    )
    assert done.returncode == 0, done.stderr
    assert all(r["status"] == "ok" for r in _records(out))
