"""Backends and techniques on this machine (CPU torch, ONNX Runtime), through the CLI as users run them, plus the
device-independent pieces of the CUDA path (NVML telemetry, device event timing) driven by stand-ins for the
absent GPU, each named as such. The CUDA tests proper are in test_cuda.py (marked `cuda`)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
from conftest import QUICK, cli_here, cli_result, run_cli, run_here


def _records(out):
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("onnx-cache"))


@pytest.fixture(scope="module")
def technique_run(tmp_path_factory, onnx_cache):
    """bert-base-tiny as torch fp32 / bf16 / int8-dynamic and ONNX Runtime fp32 / int8, one sweep file."""
    sweep = tmp_path_factory.mktemp("sweep") / "techniques.toml"
    sweep.write_text(
        'model = "bert-base-tiny"\nbatch_size = 2\nseq_len = 16\n'
        '[[matrix]]\nmodel = "bert-base-tiny"\nbackend = "cpu"\nprecision = ["fp32", "bf16", "int8"]\n'
        "batch_size = 2\nseq_len = 16\n"
        '[[matrix]]\nmodel = "bert-base-tiny"\nbackend = "onnxruntime"\nprecision = ["fp32", "int8"]\n'
        'batch_size = 2\nseq_len = 16\noptions = {opt_level = ["all"]}\n'
    )
    out = tmp_path_factory.mktemp("run") / "techniques"
    records = run_here(sweep.read_text(), out, cache=Path(onnx_cache))
    assert all(r.status == "ok" for r in records), [r.reason for r in records if r.status != "ok"]
    return out


def test_every_technique_runs_with_its_deviation_recorded(technique_run):
    out = technique_run
    records = {(r["spec"]["backend"], r["spec"]["precision"]): r for r in _records(out)}
    assert set(records) == {
        ("cpu", "fp32"),
        ("cpu", "bf16"),
        ("cpu", "int8"),
        ("onnxruntime", "fp32"),
        ("onnxruntime", "int8"),
    }
    assert all(r["status"] == "ok" for r in records.values())
    # opt_level=all is the default: it is dropped from the spec, so that cell has one identity
    assert records[("onnxruntime", "fp32")]["spec"]["options"] == {}
    assert records[("cpu", "fp32")]["accuracy"] is None  # the reference itself
    for key in [k for k in records if k != ("cpu", "fp32")]:
        accuracy = records[key]["accuracy"]
        assert accuracy["reference"] == "fp32, torch eager, CPU"
        assert accuracy["cosine_similarity"] > 0.99, (key, accuracy)
    # ONNX Runtime fp32 computes the same function: far closer to the reference than bf16 or int8
    assert records[("onnxruntime", "fp32")]["accuracy"]["max_abs_error"] < 1e-3
    assert (
        records[("cpu", "bf16")]["accuracy"]["max_abs_error"]
        > records[("onnxruntime", "fp32")]["accuracy"]["max_abs_error"]
    )
    assert "dynamic int8" in records[("cpu", "int8")]["model"]["quantization"]
    assert "quantize_dynamic" in records[("onnxruntime", "int8")]["model"]["quantization"]
    assert records[("onnxruntime", "int8")]["model"]["providers"] == ["CPUExecutionProvider"]
    env = records[("onnxruntime", "fp32")]["environment"]
    assert env["threads"]["ort_allow_spinning"] is False and env["threads"]["ort_inter_op"] == 1


def test_uncountable_calls_say_so_and_keep_the_analytic_flops(technique_run):
    out = technique_run
    for record in _records(out):
        work = record["work"]
        if (record["spec"]["backend"], record["spec"]["precision"]) in (("cpu", "fp32"), ("cpu", "bf16")):
            assert work["flops_per_call"] > 0
        else:
            assert work["flops_per_call"] is None and work["flop_counter"].startswith("not counted:")
            assert work["flops_per_call_analytic"] > 0


@pytest.mark.slow
def test_onnx_export_is_cached_and_reused(technique_run, onnx_cache, tmp_path):
    first = technique_run
    exported = {
        r["spec"]["precision"]: r["model"]["export"] for r in _records(first) if r["spec"]["backend"] == "onnxruntime"
    }
    assert exported["fp32"].startswith("exported in") or exported["int8"].startswith("exported in")
    out = tmp_path / "again"
    done = run_cli(
        "run",
        "--model",
        "bert-base-tiny",
        "--backend",
        "onnxruntime",
        "--precision",
        "fp32,int8",
        "--batch-size",
        "2",
        "--seq-len",
        "16",
        "--out",
        str(out),
        "-q",
        *QUICK,
        env={"CATCHUP_BENCH_CACHE": onnx_cache},
    )
    assert done.returncode == 0, done.stderr
    again = {r["spec"]["precision"]: r["model"] for r in _records(out)}
    assert again["fp32"]["export"] == "cached" and again["int8"]["export"] == "cached"
    assert again["int8"]["quantization"].endswith("cached")


@pytest.mark.slow
def test_decoder_prefill_on_onnxruntime_records_time_to_first_token(tmp_path, onnx_cache):
    out = tmp_path / "prefill"
    done = run_cli(
        "run",
        "--model",
        "gpt2-tiny",
        "--backend",
        "onnxruntime",
        "--seq-len",
        "16",
        "--new-tokens",
        "1",
        "--out",
        str(out),
        "-q",
        *QUICK,
        env={"CATCHUP_BENCH_CACHE": onnx_cache},
    )
    assert done.returncode == 0, done.stderr
    (record,) = _records(out)
    assert record["status"] == "ok"
    marks = record["measurement"]["token_marks_ns"]
    assert all(len(m) == 1 for m in marks)
    assert record["accuracy"]["top1_agreement"] == 1.0  # same function as the fp32 reference
    refused = run_cli(
        "run",
        "--model",
        "gpt2-tiny",
        "--backend",
        "onnxruntime",
        "--new-tokens",
        "4",
        "--out",
        str(tmp_path / "refused"),
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "bench run: error: new_tokens: 4 is not allowed for gpt2-tiny on backend onnxruntime, which runs decoders' "
        "prefill only; expected --new-tokens 1 (time to first token)"
    ]


@pytest.mark.slow
def test_compile_option_on_cpu(tmp_path):
    """torch.compile (inductor) on the CPU: the first call compiles in prepare, outside timing."""
    out = tmp_path / "compiled"
    done = run_cli(
        "run",
        "--model",
        "bert-base-tiny",
        "--seq-len",
        "16",
        "-O",
        "compile=none,default",
        "--out",
        str(out),
        "-q",
        *QUICK,
    )
    assert done.returncode == 0, done.stderr
    records = {r["spec"]["options"].get("compile", "none"): r for r in _records(out)}
    assert set(records) == {"none", "default"}
    compiled = records["default"]
    assert compiled["status"] == "ok"
    assert compiled["model"]["compile"]["mode"] == "default" and compiled["model"]["compile"]["first_call_s"] > 0
    assert compiled["model"]["technique"] == "torch fp32 + compile(default)"
    assert compiled["accuracy"]["cosine_similarity"] > 0.9999
    assert records["none"]["spec"]["options"] == {}  # compile=none is the default: same cell as no option


def test_missing_provider_is_an_unavailable_record_and_list_gives_the_same_reason(tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    out = tmp_path / "no-cuda-ep"
    done = run_cli(
        "run", "--model", "bert-base-tiny", "--backend", "onnxruntime", "-O", "provider=cuda", "--out", str(out), "-q"
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("bench run: error: backend: nothing requested can run")
    (record,) = _records(out)
    assert record["status"] == "unavailable"
    assert "onnxruntime-gpu" in record["reason"]
    listed = json.loads(cli_here("list", "--format", "json")[1])
    ort = next(b for b in listed["backends"] if b["name"] == "onnxruntime")
    assert ort["variants"]["provider=cuda"] == {"available": False, "reason": record["reason"]}


def test_missing_cuda_is_an_unavailable_record_beside_cells_that_run(tmp_path):
    from backends.torch_backend import cuda_unavailable_reason

    reason = cuda_unavailable_reason()
    if reason is None:
        pytest.skip("a CUDA device is present")
    out = tmp_path / "mixed"
    run_here('[[matrix]]\nmodel = "bert-base-tiny"\nbackend = ["cpu", "cuda"]\nseq_len = 8\n', out)
    statuses = {r["spec"]["backend"]: (r["status"], r["reason"]) for r in _records(out)}
    assert statuses == {"cpu": ("ok", None), "cuda": ("unavailable", reason)}
    # what `bench run` says before it starts (the planning, without running the cell again)
    done = cli_result(
        "run", "--model", "bert-base-tiny", "--backend", "cuda", "--seq-len", "8", "--out", str(tmp_path / "only-cuda")
    )
    assert f"note: 1 cell(s) unavailable here, recorded as such: {reason}" in done.stderr


@pytest.mark.parametrize(
    "flag, message",
    [
        (
            ["-O", "bogus=1"],
            "options.bogus: 'bogus' is not an option of backend cpu; allowed: threads, compile, attn, quantizer",
        ),
        (
            ["-O", "compile=fast"],
            "options.compile: 'fast' is not allowed; expected one of none, default, reduce-overhead, max-autotune",
        ),
        (["-O", "compile"], "--option: 'compile' is not allowed; expected KEY=VALUE[,VALUE...]"),
        (
            ["--backend", "onnxruntime", "-O", "provider=tpu"],
            "options.provider: 'tpu' is not allowed; expected one of cpu, cuda, cann",
        ),
        (
            ["--backend", "onnxruntime", "--precision", "fp16"],
            "precision: 'fp16' is not allowed on onnxruntime's cpu provider",
        ),
        (
            ["--backend", "cuda", "--precision", "int8"],
            "precision (backend cuda): 'int8' is not allowed; expected one of fp32, bf16, fp16",
        ),
    ],
)
def test_bad_technique_input_is_one_line(tmp_path, flag, message):
    done = cli_result("run", "--model", "bert-base-tiny", *flag, "--out", str(tmp_path / "x"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "x").exists()


def test_cuda_graphs_are_refused_for_generation_before_anything_runs():
    from bench.core.errors import UsageError
    from bench.core.sweep import Matrix, Sweep
    from bench.runs.plan import plan_sweep

    with pytest.raises(UsageError, match="options.graphs: CUDA graphs need a fixed-shape call; gpt2-tiny generates"):
        plan_sweep(Sweep((Matrix(models=("gpt2-tiny",), backends=("cuda",), options=((("graphs", True),),)),)))


# ---------------------------------------------------------------------------------------------------------
# CUDA pieces that do not need a GPU, driven by stand-ins


class StandInPynvml(types.ModuleType):
    """Stand-in for the absent `pynvml` (nvidia-ml-py): an energy counter that grows 300 mJ per read, a fixed
    300 W draw, clocks, temperature and a software power cap reason, as NVML would report them."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 1, 2, 0

    def __init__(self) -> None:
        super().__init__("pynvml")
        self.energy_mj = 1_000_000

    def nvmlInit(self):
        pass

    def nvmlDeviceGetHandleByIndex(self, index):
        return ("gpu", index)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        self.energy_mj += 300
        return self.energy_mj

    def nvmlDeviceGetPowerUsage(self, handle):
        return 300_000

    def nvmlDeviceGetClockInfo(self, handle, which):
        return 1980 if which == self.NVML_CLOCK_SM else 2619

    def nvmlDeviceGetTemperature(self, handle, which):
        return 61

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle):
        return 0x4 | 0x1


def test_nvml_telemetry_reads_energy_counter_and_names_throttle_reasons(monkeypatch):
    from backends.nvml import NvmlTelemetry

    stand_in = StandInPynvml()
    monkeypatch.setitem(sys.modules, "pynvml", stand_in)
    telemetry = NvmlTelemetry(0, interval_s=0.01)
    telemetry.start()
    import time

    time.sleep(0.05)
    figures = telemetry.stop()
    assert figures["energy_method"] == "total-energy counter difference"
    assert figures["energy_j"] == pytest.approx(0.3)  # one counter read at start, one at stop: +300 mJ
    assert figures["power_w"] == {"mean": 300.0, "max": 300.0}
    assert figures["sm_clock_mhz"]["median"] == 1980 and figures["temperature_c"]["max"] == 61
    assert figures["throttle_reasons"] == ["gpu_idle", "sw_power_cap"]
    assert figures["samples"] >= 3


def test_nvml_telemetry_without_nvidia_ml_py_says_why(monkeypatch):
    from backends.nvml import NvmlTelemetry

    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    telemetry = NvmlTelemetry()
    telemetry.start()
    assert telemetry.stop() == {
        "source": "nvml",
        "unavailable": "nvidia-ml-py is not installed (pip install nvidia-ml-py): no power or energy figures",
    }


class StandInEventTimer:
    """Stand-in for CUDA events: reports a device time of exactly 70% of the wall time since start()."""

    def __init__(self, clock) -> None:
        self.clock = clock

    def start(self):
        self.began = self.clock()

    def stop(self):
        self.ended = self.clock()

    def elapsed_ns(self):
        return int((self.ended - self.began) * 0.7)


def test_device_timer_gives_one_device_sample_per_call_and_telemetry_spans_the_timed_loop():
    from backends.base import PreparedCall, Telemetry
    from bench.core.record import Record
    from bench.core.settings import MeasureSettings
    from bench.core.spec import BenchmarkSpec
    from bench.measure.loop import run_timed_loop

    now = [0]

    def clock():
        return now[0]

    def call(stamp):
        now[0] += 1_000_000  # each call takes 1 ms of (fake) time

    class CountingTelemetry(Telemetry):
        def start(self):
            self.at_start = now[0]

        def stop(self):
            return {"energy_j": 2.0, "window_ns": now[0] - self.at_start}

    settings = MeasureSettings(
        warmup_iterations=1, warmup_time_s=0, warmup_window=0, min_iterations=10, min_time_s=0, ci_target=0
    )
    m = run_timed_loop(
        PreparedCall(call=call, items_per_call=4),
        lambda: None,
        settings,
        clock=clock,
        device_timer=StandInEventTimer(clock),
        telemetry=CountingTelemetry(),
    )
    assert len(m.device_samples_ns) == len(m.samples_ns) == 10
    assert all(d == 700_000 for d in m.device_samples_ns)
    assert m.telemetry["window_ns"] == 10_000_000  # the 10 timed calls, not the warm-up call
    record = Record(BenchmarkSpec("bert-base-tiny", "cuda"), "ok", measurement=m)
    assert record.device_latency().p50 == 700_000
    assert record.energy_per_item_j() == pytest.approx(2.0 / 40)


def test_gains_view_equals_the_ratio_of_recorded_medians(technique_run):
    from bench.core.stats import median as statistics_median

    class statistics:  # noqa: N801 - the one median (nearest rank) every output uses
        median = staticmethod(statistics_median)

    out = technique_run
    done = run_cli("show", str(out), "--format", "gains")
    assert done.returncode == 0, done.stderr
    records = {(r["spec"]["backend"], r["spec"]["precision"]): r for r in _records(out)}
    base = statistics.median(records[("cpu", "fp32")]["measurement"]["samples_ns"])
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines()[2:]]
    assert len(rows) == 5
    for cells in rows:
        backend, precision = cells[3].split()[:2]
        expected = base / statistics.median(records[(backend, precision)]["measurement"]["samples_ns"])
        speedup, interval = cells[5].strip().split(" ", 1)
        assert float(speedup) == pytest.approx(expected, abs=0.006)
        low, high = (float(x) for x in interval.strip("[]").split(","))
        assert low <= float(speedup) <= high
    assert "reference" in next(c for c in rows if c[3].strip() == "cpu fp32")[6]


def test_a_cells_p50_is_one_number_in_show_compare_gains_and_the_report(technique_run, tmp_path):
    from bench.core.stats import median
    from bench.output.format import number

    out = technique_run
    record = next(r for r in _records(out) if (r["spec"]["backend"], r["spec"]["precision"]) == ("cpu", "bf16"))
    p50 = number(median(record["measurement"]["samples_ns"]) / 1e6)
    label = "bert-base-uncased-tiny cpu bf16"
    show = run_cli("show", str(out), "--format", "md").stdout
    row = next(line for line in show.splitlines() if "| cpu | bf16 |" in line)
    assert f"| {p50} [" in row
    gains = run_cli("show", str(out), "--format", "gains").stdout
    assert f"| {p50} |" in next(line for line in gains.splitlines() if "| cpu bf16 |" in line)
    compared = run_cli("compare", str(out), str(out), "--format", "md").stdout
    assert f"| {p50} | {p50} |" in next(line for line in compared.splitlines() if label in line)
    report = tmp_path / "r.md"
    assert run_cli("report", str(out), "--format", "md", "--out", str(report)).returncode == 0
    assert f"{p50} [" in report.read_text()
