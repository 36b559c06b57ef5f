"""Ascend and simulated devices: profiles, the dispatch tracer, the cost model, simulated records end to end through
the CLI, and the torch_npu probe driven by stand-ins for the absent module (named as such)."""

from __future__ import annotations

import json
import sys
import types

import pytest
from conftest import run_cli, run_here


def _records(out):
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------------------------------------------------
# profiles


def test_builtin_profiles_carry_a_status_and_source_for_every_figure():
    from bench.projection.profiles import STATUSES, load_profiles

    profiles = load_profiles(user_file="")
    assert {
        "ascend-910b2",
        "ascend-910b3",
        "ascend-910b4",
        "ascend-910c",
        "ascend-310p",
        "h100",
        "h200",
        "h20",
        "a100",
        "l40s",
    } <= set(profiles)
    for profile in profiles.values():
        data = profile.to_dict()
        figures = list(data["peak_tflops"].values()) + [
            data[f] for f in ("memory_gb", "bandwidth_tbs", "tdp_w", "price_usd")
        ]
        for figure in figures:
            assert figure["status"] in STATUSES and figure["source"]
    assert profiles["h100"].peak_flops("bf16") == 989e12 and profiles["h100"].bandwidth_bytes_s == 3.35e12
    assert profiles["ascend-910b2"].assumed() == [
        "peak_tflops.fp32",
        "interconnect.scaleup_latency_us",
        "interconnect.scaleout_latency_us",
    ]
    assert profiles["h800"].link("scaleup_gbs") == 200 and profiles["ascend-910c"].link("scaleup_domain") == 384


@pytest.mark.parametrize(
    "text, message",
    [
        (
            '[h100]\nbandwidth_tbs = { value = -1, status = "OFF", source = "x" }\n',
            "[h100].bandwidth_tbs.value: -1 is not allowed; expected a positive number",
        ),
        (
            '[mine]\nname = "x"\nkind = "gpu"\nmemory_gb = { value = 1, status = "OFF", source = "x" }\n',
            "[mine].peak_tflops: missing",
        ),
        (
            '[h100]\ntdp_w = { value = 700, status = "GUESS", source = "x" }\n',
            "[h100].tdp_w.status: 'GUESS' is not allowed; expected one of OFF, 3P, DER, UNV, ASSUMED, MEASURED",
        ),
        ("[h100\n", "not valid TOML"),
    ],
)
def test_a_bad_profile_file_is_refused_with_one_line_naming_it(tmp_path, text, message):
    bad = tmp_path / "profiles.toml"
    bad.write_text(text)
    done = run_cli(
        "run",
        "--model",
        "bert-base-tiny",
        "--backend",
        "simulated",
        "--profile",
        "h100",
        "--out",
        str(tmp_path / "x"),
        env={"CATCHUP_BENCH_PROFILES": str(bad)},
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and str(bad) in lines[0], lines
    assert not (tmp_path / "x").exists()


def test_a_user_file_overrides_one_figure_and_keeps_the_rest(tmp_path):
    from bench.projection.profiles import load_profiles

    mine = tmp_path / "prices.toml"
    mine.write_text('[h100]\nprice_usd = { value = 25000, status = "UNV", source = "our purchase order" }\n')
    h100 = load_profiles(user_file=str(mine))["h100"]
    assert h100.price_usd.value == 25000 and h100.price_usd.source == "our purchase order"
    assert h100.peak_flops("bf16") == 989e12


# ---------------------------------------------------------------------------------------------------------
# tracer and cost model


def test_tracer_counts_the_same_flops_as_the_counter_and_splits_generation_into_token_phases():
    import torch

    from backends.trace import trace_call
    from bench.core.spec import BenchmarkSpec
    from models.catalogue import get_workload
    from models.work import count_flops

    workload = get_workload("gpt2-tiny")
    prepared = workload.prepare(torch.float32, "cpu", BenchmarkSpec(workload.name, "cpu", seq_len=16, new_tokens=4))
    phases = trace_call(prepared)
    assert len(phases) == 4  # prefill + 3 decode steps
    traced = sum(flops * count for phase in phases for _, _, flops, _, count in phase)
    assert traced == count_flops(prepared.call, lambda: 0)
    assert all(nbytes == 0 for phase in phases for cls, _, _, nbytes, _ in phase if cls == "view")


def test_cost_model_is_a_roofline_with_overheads():
    from backends.costmodel import Efficiency, Target, estimate

    target = Target("t", {"bf16": 100e12, "fp32": 10e12, "int8": 200e12}, 1e12, Efficiency(0.5, 0.8, 2e-6, 3e-6))
    phases = [
        [
            ("matmul", "bf16", 10**12, 10**6, 1),  # compute-bound: 1e12 / (0.5 x 100e12) = 20 ms
            ("matmul", "bf16", 10**6, 8 * 10**9, 1),  # memory-bound: 8e9 / (0.8 x 1e12) = 10 ms
            ("memory", "bf16", 0, 8 * 10**8, 2),  # 2 x 1 ms
            ("view", "bf16", 0, 0, 5),
        ]
    ]
    point = estimate(phases, target, "bf16", batch_size=4)
    assert point["latency_s"] == pytest.approx(0.020 + 0.010 + 0.002 + 2 * 2e-6 + 2 * 3e-6)
    assert point["compute_bound_s"] == pytest.approx(0.020) and point["memory_bound_s"] == pytest.approx(0.012)
    assert point["items_per_s"] == pytest.approx(4 / point["latency_s"])
    int8 = estimate(phases, target, "int8", batch_size=4)  # matmuls at the int8 peak with 1-byte operands
    assert int8["latency_s"] == pytest.approx(0.010 + 0.005 + 0.002 + 10e-6)


# ---------------------------------------------------------------------------------------------------------
# simulated records through the CLI


@pytest.fixture(scope="module")
def simulated_run(tmp_path_factory):
    """Ascend without an NPU: the trace projection of two tiny models, run in this process; `done` is what
    `bench show` prints of them, as a user reads it."""
    out = tmp_path_factory.mktemp("sim") / "ascend"
    run_here(
        '[[matrix]]\nmodel = ["bert-base-tiny", "gpt2-tiny"]\nbackend = "ascend"\nseq_len = 16\nnew_tokens = 4\n'
        'options = { projection = ["trace"] }\n',
        out,
    )
    return run_cli("show", str(out)), out


def test_ascend_without_an_npu_is_simulated_and_says_so_everywhere(simulated_run):
    done, out = simulated_run
    assert done.returncode == 0, done.stderr
    for record in _records(out):
        assert record["status"] == "ok" and record["simulated"] is True
        assert record["measurement"] is None  # no invented samples
        sim = record["simulation"]
        assert sim["profile"]["key"] == "ascend-910b2" and sim["cost_model_version"] == 1
        assert sim["profile"]["peak_tflops"]["fp32"]["status"] == "ASSUMED"
        assert "peak_tflops.fp32" in sim["assumed_figures"]
        validation = sim["host_validation"]
        assert validation["error"] == pytest.approx(validation["predicted_s"] / validation["measured_p50_s"] - 1)
        band = sim["estimate"]["band"]
        assert band["relative"] == pytest.approx(abs(validation["error"]))
        assert band["low_s"] < sim["estimate"]["latency_s"] < band["high_s"]
        assert record["environment"]["device"]["type"] == "simulated"
    gpt2 = next(r for r in _records(out) if r["spec"]["workload"] == "gpt2-tiny")
    estimate = gpt2["simulation"]["estimate"]
    assert estimate["new_tokens"] == 4
    assert estimate["ttft_s"] + 3 * estimate["tpot_s"] == pytest.approx(estimate["latency_s"])
    assert "ok (simulated)" in done.stdout and "band [" in done.stdout and "sim host err" in done.stdout


def test_simulated_rows_hold_estimates_never_sample_statistics(simulated_run):
    _, out = simulated_run
    done = run_cli("show", str(out), "--format", "json")
    rows = json.loads(done.stdout)
    assert all(r["simulated"] and r.get("p50_ms") is None and r["estimate_ms"] > 0 for r in rows)
    assert all(r.get("iterations") is None and r["profile"] == "ascend-910b2" for r in rows)


@pytest.mark.slow
def test_deepseek_v3_decode_is_simulated_on_the_meta_device_without_its_weights(tmp_path):
    out = tmp_path / "dsv3"
    done = run_cli(
        "run",
        "--model",
        "deepseek-v3",
        "--backend",
        "simulated",
        "--profile",
        "ascend-910c,h100",
        "--precision",
        "bf16",
        "--seq-len",
        "64",
        "--new-tokens",
        "2",
        "-O",
        "projection=trace",
        "--out",
        str(out),
        "-q",
    )
    assert done.returncode == 0, done.stderr
    records = {r["spec"]["options"]["profile"]: r for r in _records(out)}
    for record in records.values():
        sim = record["simulation"]
        assert sim["traced_on"] == "meta" and "skipped" in sim["host_validation"]
        assert sim["estimate"]["tpot_s"] > 0
        assert record["work"]["flops_per_call"] > 1e12
        assert sim["fits_device_memory"] is False  # 671B parameters do not fit one device
    # same trace, two profiles: decode is memory-bound, so the ratio follows bandwidth x efficiency (+ overheads)
    assert records["h100"]["work"]["flops_per_call"] == records["ascend-910c"]["work"]["flops_per_call"]
    assert (
        records["h100"]["simulation"]["estimate"]["tpot_s"] < records["ascend-910c"]["simulation"]["estimate"]["tpot_s"]
    )


def test_simulated_backend_needs_a_known_profile(tmp_path):
    done = run_cli("run", "--model", "bert-base-tiny", "--backend", "simulated", "--out", str(tmp_path / "x"))
    assert done.returncode == 2
    assert done.stderr.strip().startswith(
        "bench run: error: options.profile: missing; backend simulated needs --profile NAME, one of ascend-910b2"
    )
    done = run_cli(
        "run",
        "--model",
        "bert-base-tiny",
        "--backend",
        "simulated",
        "--profile",
        "tpu-v9",
        "--out",
        str(tmp_path / "y"),
    )
    assert done.returncode == 2 and "options.profile: 'tpu-v9' is not allowed; expected one of" in done.stderr


def test_validation_table_from_runs(simulated_run, tmp_path):
    _, out = simulated_run
    done = run_cli("simulate", "--from", str(out), env={"CATCHUP_BENCH_CACHE": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert "| bert-base-uncased-tiny | fp32 |" in done.stdout and "Median |error|" in done.stdout
    assert not list(tmp_path.rglob("validation-*.json"))  # tabulating runs reads; it never replaces the summary


# ---------------------------------------------------------------------------------------------------------
# the real NPU path's probe, with stand-ins for torch_npu


def _stand_in_torch_npu(monkeypatch, *, available: bool = True):
    """Install a stand-in `torch_npu` (and a stand-in `torch.npu` namespace) that answers as the documented API."""
    import importlib.machinery

    import torch

    module = types.ModuleType("torch_npu")
    module.__spec__ = importlib.machinery.ModuleSpec("torch_npu", None)
    npu = types.SimpleNamespace(is_available=lambda: available, device_count=lambda: 1 if available else 0)
    monkeypatch.setitem(sys.modules, "torch_npu", module)
    monkeypatch.setattr(torch, "npu", npu, raising=False)
    monkeypatch.setattr(
        "importlib.util.find_spec",
        lambda name, *a: module.__spec__ if name == "torch_npu" else importlib.machinery.PathFinder.find_spec(name),
    )


def test_npu_probe_reasons_with_stand_ins(monkeypatch, tmp_path):
    from backends import ascend

    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    assert ascend.npu_unavailable_reason() == "torch_npu is not installed"
    monkeypatch.undo()

    # a stand-in torch_npu package whose import fails as it does when CANN is not installed or not sourced
    (tmp_path / "torch_npu").mkdir()
    (tmp_path / "torch_npu" / "__init__.py").write_text(
        'raise OSError("libhccl.so: cannot open shared object file: No such file or directory")\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "torch_npu", raising=False)
    assert ascend.npu_unavailable_reason() == (
        "torch_npu cannot be imported: OSError: libhccl.so: cannot open shared object file: No such file or directory"
    )
    monkeypatch.undo()

    _stand_in_torch_npu(monkeypatch, available=False)
    assert ascend.npu_unavailable_reason() == "no NPU visible (torch.npu.is_available() is False)"
    monkeypatch.undo()

    _stand_in_torch_npu(monkeypatch, available=True)
    assert ascend.npu_unavailable_reason() is None
    monkeypatch.setattr(ascend, "_RESOLVED", None)
    assert ascend.resolve_ascend() is ascend.TorchNpuBackend
    monkeypatch.setattr(ascend, "_RESOLVED", None)


def test_npu_runtime_uses_the_torch_npu_api(monkeypatch):
    """NpuRuntime against a stand-in torch.npu namespace that records the calls the documented API would get."""
    import torch

    from backends.runtime import NpuRuntime

    calls = []

    class StandInEvent:
        def __init__(self, enable_timing):
            assert enable_timing
            self.t = None

        def record(self):
            calls.append("record")

        def elapsed_time(self, other):
            return 1.5  # ms

    npu = types.SimpleNamespace(
        set_device=lambda i: calls.append(f"set_device {i}"),
        synchronize=lambda: calls.append("synchronize"),
        Event=StandInEvent,
        reset_peak_memory_stats=lambda: calls.append("reset"),
        max_memory_allocated=lambda: 123,
        max_memory_reserved=lambda: 456,
        mem_get_info=lambda: (7, 9),
        get_device_name=lambda i: "Ascend910B2",
        device_count=lambda: 8,
        get_device_properties=lambda i: types.SimpleNamespace(total_memory=64 << 30),
    )
    monkeypatch.setattr(torch, "npu", npu, raising=False)
    runtime = NpuRuntime()
    runtime.synchronize()
    timer = runtime.event_timer()
    timer.start()
    timer.stop()
    assert timer.elapsed_ns() == 1_500_000
    assert runtime.memory_stats() == {"device_peak_allocated_bytes": 123, "device_peak_reserved_bytes": 456}
    assert runtime.available_memory_bytes() == 7 and runtime.device == "npu:0"
    info = runtime.device_info()
    assert info["type"] == "npu" and info["name"] == "Ascend910B2" and info["count"] == 8
    assert calls[:2] == ["set_device 0", "synchronize"]


@pytest.mark.slow
def test_simulate_validate_runs_the_given_models_and_prints_the_table(tmp_path):
    done = run_cli(
        "simulate",
        "--validate",
        "--model",
        "bert-base-tiny",
        "--no-fit",
        "--out",
        str(tmp_path / "v"),
        env={"CATCHUP_BENCH_CACHE": str(tmp_path / "cache")},
    )
    assert done.returncode == 0, done.stderr
    assert "| bert-base-uncased-tiny | fp32 | 1 | 128 |" in done.stdout
    assert "Median |error| with the default host model" in done.stdout
    (record,) = _records(tmp_path / "v")
    assert record["simulated"] and record["simulation"]["host_validation"]["host"]["matmul_curve"]["fp32"]
    # a subset of the validation set does not replace the stored band; reading runs never writes it
    assert "summary not stored" in done.stderr
    assert not list((tmp_path / "cache").rglob("validation-*.json"))
    again = run_cli("simulate", "--from", str(tmp_path / "v"), env={"CATCHUP_BENCH_CACHE": str(tmp_path / "cache")})
    assert again.returncode == 0 and not list((tmp_path / "cache").rglob("validation-*.json"))
    refused = run_cli("simulate", "--validate", "--model", "bert-base-tiny", "--out", str(tmp_path / "v"))
    assert refused.returncode == 2 and "already holds records" in refused.stderr
