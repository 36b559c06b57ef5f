"""What broke under attack, each fixed and kept fixed: the run lock, records only the store writes, weights that
are not what they claim, reading that never writes, bounds on every size, a safe worker import path, escaping,
unreadable lines, a full disk, one-line errors, compare that passes only what it compared, stale temp dirs and a
busy host. Property-based tests (hypothesis) for the record reader and the sweep parser."""

import errno
import json
import os
import struct
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.core.errors import UsageError
from bench.core.record import SCHEMA_VERSION, Record
from bench.core.spec import BenchmarkSpec
from bench.core.sweep import sweep_from_mapping
from bench.runs.store import LOCK_FILE, RunStore, process_start_time, read_run_dirs
from tests.conftest import ROOT, cli_result

#: A cell that needs no measurement (the serving model): a quick, real run through the worker.
FAST = ["--model", "gpt2-tiny", "--backend", "simulated", "--profile", "h100", "-q"]


def fast_run(tmp_path, name="run"):
    out = tmp_path / name
    done = cli_result("run", *FAST, "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -- data integrity ------------------------------------------------------------------------------------------------


def test_a_second_writer_is_refused_and_a_stale_lock_is_taken_over(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with RunStore(out).lock():  # a live holder (another open file description: flock conflicts in one process too)
        done = cli_result("run", *FAST, "--out", str(out))
    assert done.returncode == 2 and "is in use by another bench run" in done.stderr
    assert f"pid {os.getpid()}" in done.stderr and done.stderr.count("\n") == 1
    assert not (out / "records.jsonl").read_text()
    (out / LOCK_FILE).write_text(json.dumps({"pid": dead_pid(), "start": 1.0}))  # what a killed run leaves
    done = cli_result("run", *FAST, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert len(RunStore(out).read().records) == 1 and not (out / LOCK_FILE).exists()


def test_no_other_command_writes_records_jsonl(tmp_path):
    out = fast_run(tmp_path)
    before = (out / "records.jsonl").read_bytes()
    for args in (
        ["report", str(out), "--out", str(out / "records.jsonl"), "--format", "md"],
        ["noise", str(out), str(out), "--write", str(out / "records.jsonl")],
    ):
        done = cli_result(*args)
        assert done.returncode == 2 and "only `bench run` writes" in done.stderr, done.stderr
    assert (out / "records.jsonl").read_bytes() == before


def _safetensors(path, tensors: dict) -> None:
    header = json.dumps(tensors).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header)


def _checkpoint(tmp_path, name, config):
    from models.catalogue import get_workload

    path = tmp_path / name
    path.mkdir()
    (path / "config.json").write_text(
        json.dumps(config if config is not None else None) if not isinstance(config, str) else config
    )
    _safetensors(path / "model.safetensors", {})
    return get_workload("bert-base-tiny"), str(path)


def test_weights_without_tensors_or_with_a_bad_config_are_refused(tmp_path):
    from models.weights import check_weights_dir

    workload, empty = _checkpoint(tmp_path, "empty", dict(get_config()))
    with pytest.raises(UsageError, match="holds no tensors"):
        check_weights_dir(workload, empty)
    for name, config in (("null", None), ("list", [1]), ("string", '"bert"')):
        workload, path = _checkpoint(tmp_path, name, config)
        with pytest.raises(UsageError, match="expected an object of config keys"):
            check_weights_dir(workload, path)


def get_config():
    from models.catalogue import get_workload

    return get_workload("bert-base-tiny").config


def test_weights_missing_parameters_are_named_not_recorded_as_real(tmp_path):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "partial"
    path.mkdir()
    (path / "config.json").write_text(json.dumps(dict(get_config())))
    save_file({"embeddings.word_embeddings.weight": torch.zeros(30522, 128)}, str(path / "model.safetensors"))
    out = tmp_path / "run"
    done = cli_result(
        "run",
        "--model",
        "bert-base-tiny",
        "--weights",
        str(path),
        "--out",
        str(out),
        "-q",
        "--max-time",
        "1",
        "--min-time",
        "0.1",
    )
    (record,) = RunStore(out).read().records
    assert done.returncode == 1 and record.status == "failed"
    assert "lacks" in record.reason and "parameter(s) of the model" in record.reason


def test_weights_of_other_shapes_are_one_line_naming_the_directory(tmp_path):
    """A checkpoint whose config keys agree but whose tensors have other shapes: one UsageError naming --weights
    (bench serve exits 2 with it), not transformers' RuntimeError and load report."""
    import torch
    from safetensors.torch import save_file

    from models.families.common import load_weights

    path = tmp_path / "other-shapes"
    path.mkdir()
    (path / "config.json").write_text(json.dumps(dict(get_config())))
    save_file({"embeddings.word_embeddings.weight": torch.zeros(30522, 64)}, str(path / "model.safetensors"))
    with pytest.raises(UsageError, match=r"--weights: .*other-shapes' does not match the model's architecture"):
        load_weights("AutoModel", path, torch.float32, "cpu")


# -- resource exhaustion -----------------------------------------------------------------------------------------


def test_absurd_sizes_are_refused_before_anything_runs(tmp_path):
    cases = [
        (["--target-qps", "1e308", "--scenario", "server"], "load.target_qps"),
        (["--timeout", "1e10"], "--timeout"),
        (["--batch-size", "100000"], "batch_size"),
        (
            [
                "--batch-size",
                "1,2,3,4,5,6,7,8,9,10",
                "--seq-len",
                ",".join(str(i) for i in range(1, 22)),
                "--precision",
                "fp32,bf16",
                "--threads",
                "1,2,3,4,5",
            ],
            "2,100 cells is more than 2,000",
        ),
        (["--out", ""], "--out: '' is not allowed"),
        (["--out", str(tmp_path / ("x" * 300))], "a path component of 300 bytes"),
        (["--weights", ""], "--weights: '' is not allowed"),
        (["--threads", "2", "-O", "threads=1"], "--threads: given twice"),
    ]
    for extra, message in cases:
        began = time.monotonic()
        done = cli_result("run", "--model", "bert-base", *extra)
        assert done.returncode == 2 and message in done.stderr, (extra, done.stderr)
        assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr
        assert time.monotonic() - began < 60
    assert not any(tmp_path.iterdir())


def test_a_batch_that_cannot_fit_is_recorded_unavailable_at_plan_time(tmp_path):
    out = tmp_path / "big"
    done = cli_result("run", "--model", "bert-base", "--batch-size", "65536", "--seq-len", "512", "--out", str(out))
    assert done.returncode == 2 and "does not fit" in done.stderr
    (record,) = RunStore(out).read().records
    assert record.status == "unavailable" and "activations" in record.reason


def test_sweep_files_that_are_not_small_utf8_toml_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe\x00")
    for path, message in ((str(bad), "not UTF-8"), ("/dev/zero", "more than 1024 KiB")):
        done = cli_result("run", path)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


# -- security ------------------------------------------------------------------------------------------------------


def _run_beside_a_hijacking_psutil(tmp_path, *python_flags: str):
    """`python [FLAGS] -m bench run` from a directory holding a psutil.py that leaves a marker when imported;
    (the finished process, the marker's path)."""
    marker = tmp_path / "imported"
    (tmp_path / "psutil.py").write_text(f"open({str(marker)!r}, 'w').write('hijacked')\nraise ImportError\n")
    done = subprocess.run(
        [sys.executable, *python_flags, "-m", "bench", "run", *FAST, "--out", str(tmp_path / "run")],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done, marker


def test_a_module_in_the_working_directory_is_not_imported_by_the_worker(tmp_path):
    done, marker = _run_beside_a_hijacking_psutil(tmp_path, "-P")
    assert done.returncode == 0, done.stderr
    assert not marker.exists()
    (record,) = RunStore(tmp_path / "run").read().records
    assert record.status == "ok"


def test_markdown_report_escapes_html_from_records(tmp_path):
    from bench.output.report import build_report, render_markdown

    spec = BenchmarkSpec("gpt2-tiny", "cpu", "fp32")
    bad = Record(spec, "failed", reason="<script>alert(1)</script>", started_at="x", finished_at="x")
    text = render_markdown(build_report([bad]), tmp_path / "files", "files")
    assert "<script>" not in text and "&lt;script&gt;" in text


# -- readers never trace back --------------------------------------------------------------------------------------


def _good_line(tmp_path) -> bytes:
    out = fast_run(tmp_path, "good")
    return (out / "records.jsonl").read_bytes().strip()


def test_lines_that_are_json_but_not_records_are_skipped(tmp_path):
    good = _good_line(tmp_path)
    run = tmp_path / "mixed"
    run.mkdir()
    (run / "records.jsonl").write_bytes(b"null\n5\n[1]\n" + b"[" * 100_000 + b"]" * 100_000 + b"\n" + good + b"\n")
    result = RunStore(run).read(warn=False)
    assert len(result.records) == 1 and len(result.skipped) == 4
    for command in (["show", str(run)], ["report", str(run), "--format", "md"], ["compare", str(run), str(run)]):
        done = cli_result(*command)
        assert "Traceback" not in done.stderr and done.returncode in (0, 1, 2), command
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "records.jsonl").write_text("null\n")
    with pytest.raises(UsageError, match="holds no readable record"):
        read_run_dirs([empty])
    done = cli_result("show", str(empty))
    assert done.returncode == 2 and "holds no readable record" in done.stderr


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.binary(max_size=200), max_size=6))
def test_arbitrary_bytes_never_raise_nor_lose_the_readable_record(tmp_path_factory, lines):
    good = _GOOD.get("line")
    if good is None:
        good = _GOOD["line"] = _good_line(tmp_path_factory.mktemp("g"))
    run = tmp_path_factory.mktemp("fuzz")
    (run / "records.jsonl").write_bytes(b"\n".join([*lines, good, *lines]) + b"\n")
    records = RunStore(run).read(warn=False).records
    assert any(r.spec.workload == "gpt2-tiny" and r.status == "ok" for r in records)


_GOOD: dict = {}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(value=json_values)
def test_arbitrary_json_values_are_skipped_or_read_never_raised(tmp_path_factory, value):
    run = tmp_path_factory.mktemp("json")
    (run / "records.jsonl").write_text(json.dumps(value) + "\n")
    RunStore(run).read(warn=False)  # no exception of any kind


@settings(max_examples=150, deadline=None)
@given(
    data=st.dictionaries(
        st.sampled_from(
            [
                "model",
                "backend",
                "precision",
                "batch_size",
                "seq_len",
                "new_tokens",
                "options",
                "measure",
                "matrix",
                "scenario",
                "load",
                "weights",
                "x",
            ]
        ),
        json_values,
        max_size=5,
    )
)
def test_sweep_parser_raises_only_one_line_usage_errors(data):
    try:
        sweep_from_mapping(data, where="fuzz")
    except UsageError as exc:
        assert "\n" not in str(exc)


# -- one-line errors and honest exits ----------------------------------------------------------------------------


def test_report_and_selfcheck_outputs_are_checked_before_any_work(tmp_path):
    out = fast_run(tmp_path)
    done = cli_result("report", str(out), "--out", str(tmp_path))
    assert done.returncode == 2 and "is a directory" in done.stderr
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("x")  # a path under a regular file cannot be created, whoever runs the test
    began = time.monotonic()
    done = cli_result("selfcheck", "--model", "bert-base-tiny", "--json", str(not_a_dir / "r.json"))
    assert done.returncode == 2 and "cannot be written" in done.stderr and time.monotonic() - began < 30
    done = cli_result("report", str(out), "--out", str(not_a_dir / "report.md"), "--format", "md")
    assert done.returncode == 2 and "cannot be written" in done.stderr


def test_compare_fails_when_nothing_was_compared_and_refuses_newer_records(tmp_path):
    out = fast_run(tmp_path)  # simulated only: nothing with samples to compare
    done = cli_result("compare", str(out), str(out))
    assert done.returncode == 2 and "a comparison of nothing is not a pass" in done.stderr
    newer = tmp_path / "newer"
    newer.mkdir()
    line = json.loads((out / "records.jsonl").read_text().splitlines()[0])
    line["schema_version"] = SCHEMA_VERSION + 1
    (newer / "records.jsonl").write_text(json.dumps(line) + "\n" + (out / "records.jsonl").read_text())
    done = cli_result("compare", str(out), str(newer))
    assert done.returncode == 2 and "is newer than this catchup-bench reads" in done.stderr


def test_a_full_disk_keeps_what_was_written_and_says_resume(tmp_path, monkeypatch, capsys):
    from bench import cli
    from bench.runs import store

    real_append, calls = store.RunStore.append, []

    def append_then_fill_the_disk(self, record):  # stand-in for a disk that fills after one record (absent here)
        calls.append(record)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_append(self, record)

    monkeypatch.setattr(store.RunStore, "append", append_then_fill_the_disk)
    out = tmp_path / "full"
    rc = cli.main(
        [
            "run",
            "--model",
            "gpt2-tiny,qwen2.5-0.5b-tiny",
            "--backend",
            "simulated",
            "--profile",
            "h100",
            "-q",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 3 and "No space left on device" in err and "--resume" in err and "1 records kept" in err
    assert len(RunStore(out).read().records) == 1 and not (out / LOCK_FILE).exists()


# -- leftovers and a busy host -----------------------------------------------------------------------------------


def test_stale_cell_directories_are_removed_live_ones_kept(tmp_path):
    from bench.runs.runner import CELL_DIR_PREFIX, OWNER_FILE, remove_stale_cell_dirs

    stale, live, foreign = (tmp_path / f"{CELL_DIR_PREFIX}{n}" for n in ("stale", "live", "foreign"))
    for path in (stale, live, foreign):
        path.mkdir()
    (stale / OWNER_FILE).write_text(json.dumps({"pid": dead_pid(), "start": 1.0}))
    (live / OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "start": process_start_time(os.getpid())}))
    assert remove_stale_cell_dirs(str(tmp_path)) == [str(stale)]
    assert live.exists() and foreign.exists() and not stale.exists()


def test_a_busy_host_is_seen_and_flagged(tmp_path):
    from bench.core.hostload import HostLoadSampler, busy_host_warning
    from bench.output.render import summary_row

    spin = [sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 2.5: pass"]
    sampler = HostLoadSampler()
    sampler.start()
    busy = subprocess.Popen(spin)
    time.sleep(1.5)
    load = sampler.stop()  # before waiting: the spinner is another process, not a finished child of ours
    warning = busy_host_warning(0.5)
    busy.wait()
    assert load["others_cores"] > 0.5 and load["contended"] is True
    assert warning and "the host is busy" in warning
    out = fast_run(tmp_path)
    data = json.loads((out / "records.jsonl").read_text().splitlines()[0])
    data["simulated"], data["simulation"] = False, None
    data["measurement"] = {
        "samples_ns": [1_000_000] * 20,
        "loop_wall_ns": 20_000_000,
        "items_per_iteration": 1,
        "warmup_iterations": 1,
        "warmup_ns": 1,
        "stopped_by": "min_reached",
        "settings": {},
        "host_load": load,
        "a_field_from_a_newer_minor_version": 1,
    }
    row = summary_row(Record.from_dict(data))
    assert row["contended"] is True


# == second round (issue 26): outputs, typed records, option values, the lock, data files, imports, the API ======


def _records_link_attacks(out):
    """Each way to name a run's records.jsonl without its name: a hard link and a symlink beside it."""
    hard, soft = out / "hard.html", out / "soft.md"
    os.link(out / "records.jsonl", hard)
    os.symlink(out / "records.jsonl", soft)
    return hard, soft


def test_outputs_never_overwrite_records_through_links(tmp_path):
    out = fast_run(tmp_path)
    before = (out / "records.jsonl").read_bytes()
    hard, soft = _records_link_attacks(out)
    copy = tmp_path / "copy.csv"  # a file holding a run's records under another name
    copy.write_bytes(before)
    attacks = [
        ["report", str(out), "--out", str(hard)],
        ["report", str(out), "--out", str(soft), "--format", "md"],
        ["report", str(out), "--out", str(copy), "--format", "csv"],
        ["noise", str(out), str(out), "--write", str(hard)],
        ["noise", str(out), str(out), "--write", str(soft)],
        ["selfcheck", "--model", "bert-base-tiny", "--json", str(hard)],
    ]
    for args in attacks:
        done = cli_result(*args)
        assert done.returncode == 2 and "is not allowed" in done.stderr, (args, done.stderr)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert (out / "records.jsonl").read_bytes() == before and copy.read_bytes() == before
    from bench.core.outfile import write_output

    with pytest.raises(UsageError, match="the same file"):  # the write itself checks the inode it opened
        write_output(out / "records.jsonl", "x", "--out", [out / "records.jsonl"])
    import bench

    with pytest.raises(UsageError, match="is not allowed"):
        bench.report(out, out=hard)
    assert (out / "records.jsonl").read_bytes() == before
    done = cli_result("report", str(out), "--out", str(tmp_path / "r.md"), "--format", "md")
    assert done.returncode == 0 and (tmp_path / "r.md").is_file()


def _serving_record(tmp_path) -> dict:
    """A well-formed serving record (as the openai backend writes one), built from the simulated run's record."""
    data = json.loads(_good_line(tmp_path))
    data["spec"] = {**data["spec"], "backend": "openai", "precision": "served", "options": {"endpoint": "http://h"}}
    data["simulated"], data["simulation"] = False, None
    data["measurement"] = {
        "samples_ns": [5_000_000, 6_000_000, 7_000_000],
        "loop_wall_ns": 20_000_000,
        "items_per_iteration": 1,
        "warmup_iterations": 1,
        "warmup_ns": 0,
        "stopped_by": "requests_sent",
        "settings": {},
        "token_marks_ns": [[1_000_000, 2_000_000], [1_500_000, 3_000_000], [900_000, 4_000_000]],
        "tokens_per_sample": [2, 2, 2],
    }
    data["serving"] = {
        "server": {"model": "gpt2-tiny", "engine": {"name": "vllm", "version": "0.9"}, "server_header": "x"},
        "load": {"requests": 3, "concurrency": 1, "request_rate": None},
        "requests_sent": 3,
        "requests_ok": 3,
        "requests_failed": 0,
        "failure_reasons": {},
        "failures": [],
        "output_tokens": [2, 2, 2],
        "prompt_tokens": [8, 8, 8],
        "chunks": [2, 2, 2],
        "slo_ms": {"ttft": 100.0},
    }
    return data


def _render_all(records) -> None:
    from bench.output.render import render, summary_row

    for record in records:
        summary_row(record)
    for fmt in ("table", "csv", "json", "md"):
        render(records, fmt)


def test_a_badly_typed_record_is_skipped_with_its_line_and_field(tmp_path):
    good = _serving_record(tmp_path)
    bad = []
    for path, value in (
        ("serving.server.engine", "vllm"),
        ("serving.output_tokens", ["many"]),
        ("measurement.samples_ns", ["a"]),
        ("measurement.token_marks_ns", [[1], [2]]),  # ragged: 2 rows for 3 samples
        ("measurement.token_marks_ns", [[1], [], [2]]),  # a sample without a token
        ("measurement.tokens_per_sample", [2, "2", 2]),
        ("memory.peak_rss_bytes", "1 GB"),
    ):
        line = json.loads(json.dumps(good))
        *parents, last = path.split(".")
        node = line
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
        bad.append((path, line))
    run = tmp_path / "typed"
    run.mkdir()
    lines = [json.dumps(line) for _, line in bad] + [json.dumps(good)]
    (run / "records.jsonl").write_text("\n".join(lines) + "\n")
    result = RunStore(run).read(warn=False)
    assert len(result.records) == 1 and len(result.skipped) == len(bad)
    for number, ((path, _), message) in enumerate(zip(bad, result.skipped), start=1):
        assert f"records.jsonl:{number}:" in message and path in message, message
    _render_all(result.records)
    for command in (["show", str(run)], ["show", str(run), "--format", "json"], ["report", str(run), "--format", "md"]):
        done = cli_result(*command, *(["--out", str(tmp_path / "r.md")] if command[0] == "report" else []))
        assert done.returncode == 0 and "Traceback" not in done.stderr and "serving.server.engine" in done.stderr
    import bench

    assert len(bench.load(run)) == 1


_GOOD_SERVING: dict = {}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(sorted(p for p in __import__("bench.core.record").core.record.FIELD_TYPES if "." in p)),
    value=json_values,
)
def test_any_value_in_any_typed_field_is_read_and_rendered_or_skipped(tmp_path_factory, path, value):
    """Property: whatever a field holds, the reader refuses that record (ValueError naming the field) or every
    renderer handles it -- never an exception from show, report or bench.load."""
    if "good" not in _GOOD_SERVING:
        _GOOD_SERVING["good"] = _serving_record(tmp_path_factory.mktemp("serving"))
    line = json.loads(json.dumps(_GOOD_SERVING["good"]))
    if path.startswith("simulation"):  # a simulated record: no measurement, the model's work counted
        line.update(simulated=True, measurement=None, work={"flops_per_call": 1e9})
        line["simulation"] = {"profile": {"key": "h100"}, "estimate": {"latency_s": 0.01}}
    if path.startswith("loadgen"):
        line["loadgen"] = {"scenario": "offline", "results": {}}
    *parents, last = path.split(".")
    node = line
    for key in parents:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[last] = value
    try:
        record = Record.from_dict(line)
    except ValueError:
        return
    _render_all([record])


def test_a_serving_cell_that_fits_nowhere_is_shown_after_its_run(tmp_path):
    """An unavailable simulated cell keeps its estimate's keys with a null latency; the run's summary table, show,
    report and bench.load render it (make bench once ended on it with a TypeError after writing every record)."""
    from bench.core.record import Record

    line = {
        "schema_version": 3,
        "spec": BenchmarkSpec("gpt2-tiny", "simulated", "bf16", 1, 4096, 1024).to_dict(),
        "status": "unavailable",
        "reason": "no disaggregated configuration fits memory and meets TPOT <= 50 ms",
        "simulated": True,
        "work": {"flops_per_call": 2e12, "min_bytes_per_call": 1e9},
        "simulation": {"profile": {"key": "ascend-910b2"}, "estimate": {"latency_s": None, "band": None}},
    }
    record = Record.from_dict(line)
    assert record.achieved_flops_per_s() is None
    _render_all([record])


def test_non_finite_option_values_are_refused_when_parsed(tmp_path):
    import bench
    from bench.core.sweep import parse_option_flags

    for flag in ("request_timeout_s=nan", "request_rate=inf", "slo_ttft_ms=-inf", "threads=NaN"):
        done = cli_result("run", "--model", "gpt2-tiny", "--backend", "openai", "-O", flag)
        assert done.returncode == 2 and "finite number" in done.stderr, (flag, done.stderr)
        assert done.stderr.count("\n") == 1
    done = cli_result("run", "--model", "gpt2-tiny", "--scenario", "server", "--target-qps", "nan")
    assert done.returncode == 2 and "--target-qps" in done.stderr
    sweep = tmp_path.parent / f"{tmp_path.name}-nan.toml"
    sweep.write_text('model = "gpt2-tiny"\nbackend = "openai"\noptions = { request_rate = nan }\n')
    done = cli_result("run", str(sweep))
    assert done.returncode == 2 and "finite number" in done.stderr
    with pytest.raises(UsageError, match="finite number"):
        BenchmarkSpec("gpt2-tiny", "cpu", options={"x": float("nan")})
    with pytest.raises(UsageError, match="finite number"):
        parse_option_flags("-O", ["slo_e2e_ms=1,nan"])
    with pytest.raises(UsageError, match="finite number"):
        bench.run({"model": "gpt2-tiny", "backend": "openai", "options": {"request_rate": float("inf")}}, out=tmp_path)
    assert not any(tmp_path.iterdir())


@settings(max_examples=200, deadline=None)
@given(
    raw=st.lists(
        st.text(max_size=30)
        | st.tuples(
            st.sampled_from(["x", "request_rate", " t "]), st.sampled_from(["nan", "inf", "-Infinity", "1e999"])
        ).map("=".join)
        | st.tuples(st.text(max_size=8), st.text(max_size=12)).map("=".join),
        max_size=4,
    )
)
def test_option_flag_parsing_raises_only_one_line_usage_errors_and_keeps_numbers_finite(raw):
    import math

    from bench.core.sweep import parse_option_flags

    try:
        parsed = parse_option_flags("--option", raw)
    except UsageError as exc:
        assert "\n" not in str(exc)
        return
    for values in parsed.values():
        assert all(not isinstance(v, float) or math.isfinite(v) for v in values)


def _contend(path: str, deadline: float, log: str, crash_every: int, seed: int) -> None:  # in a forked child
    import random

    from bench.runs.store import RunStore

    rng, held = random.Random(seed), 0
    while time.monotonic() < deadline:
        try:
            with RunStore(path).lock():
                inside = os.open(os.path.join(path, "inside"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # 2 holders
                os.close(inside)
                held += 1
                time.sleep(rng.uniform(0, 0.003))
                os.unlink(os.path.join(path, "inside"))
                if crash_every and held % crash_every == 0:  # die holding it: a stale lock for the others
                    with open(log, "a") as fh:
                        fh.write(f"{os.getpid()} {held}\n")
                    os._exit(0)
        except UsageError:
            time.sleep(rng.uniform(0, 0.002))
        except FileExistsError:
            with open(log, "a") as fh:
                fh.write("OVERLAP\n")
            os._exit(3)
    with open(log, "a") as fh:
        fh.write(f"{os.getpid()} {held}\n")
    os._exit(0)


def test_lock_takeover_is_atomic_under_many_contenders(tmp_path):
    """12 processes at a time take the run lock as fast as they can for a bounded time; a third of them die
    holding it (what a killed run leaves). Two holders at once would collide on an O_EXCL marker."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    run, log = tmp_path / "contended", tmp_path / "log"
    run.mkdir()
    deadline = time.monotonic() + 4.0
    procs, started = [], 0
    while time.monotonic() < deadline:
        procs = [p for p in procs if p.is_alive()]
        while len(procs) < 12:
            started += 1
            proc = ctx.Process(target=_contend, args=(str(run), deadline, str(log), 3 * (started % 3), started))
            proc.start()
            procs.append(proc)
        time.sleep(0.01)
    for proc in procs:
        proc.join(10)
    lines = log.read_text().split("\n")
    assert "OVERLAP" not in lines
    acquired = sum(int(line.split()[1]) for line in lines if line.strip() and line != "OVERLAP")
    died = sum(1 for line in lines if line.strip() and line != "OVERLAP" and int(line.split()[1]) % 3 == 0)
    print(
        f"lock stress: {started} contenders (12 at a time), {acquired} acquisitions, overlaps {lines.count('OVERLAP')}"
    )
    assert acquired > 100 and started > 12 and died  # contended, and locks of dead holders were taken over
    assert not (run / LOCK_FILE).exists() or RunStore(run).lock()


def test_data_files_that_are_not_tables_are_one_line_errors(tmp_path):
    from bench.projection.profiles import load_profiles

    cases = {
        "scalar.toml": b"h100 = 5\n",
        "deep.toml": b"x = " + b"[" * 10_000 + b"]" * 10_000 + b"\n",
        "latin1.toml": "name = 'caf\u00e9'\n".encode("latin-1"),
        "infinite.toml": b"[h100]\nmemory_gb = { value = 1e308, status = 'ASSUMED', source = 'x' }\n"
        b"[h100.tdp_w]\nvalue = inf\n",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    huge = tmp_path / "huge.toml"  # finite, but "inf GB" once multiplied
    huge.write_text('[h100]\nmemory_gb = { value = 1e308, status = "ASSUMED", source = "x" }\n')
    with pytest.raises(UsageError, match="memory_gb.value: 1e[+]?308 is not allowed"):
        load_profiles(str(huge))
    for path in [*(tmp_path / n for n in cases), "/dev/zero"]:
        with pytest.raises(UsageError) as raised:
            load_profiles(str(path))
        assert "\n" not in str(raised.value) and "profiles file" in str(raised.value), path
        done = cli_result("catchup", "--list", "--scenarios", str(path))
        assert done.returncode == 2 and "scenario" in done.stderr and "Traceback" not in done.stderr, path
        assert done.stderr.count("\n") == 1
    builtin = (ROOT / "bench/suites/scenarios.toml").read_text(encoding="utf-8")  # one of its scenarios, as a user file
    one = builtin[builtin.index("[h20-vs-h100]") : builtin.index("[h800-vs-h100]")]
    (tmp_path / "one.toml").write_text(one)
    done = cli_result("catchup", "--list", "--format", "json", "--scenarios", str(tmp_path / "one.toml"))
    assert done.returncode == 0 and [s["name"] for s in json.loads(done.stdout)] == ["h20-vs-h100"]


def test_repeated_parallel_keys_and_absurd_threads_are_refused_at_plan_time(tmp_path):
    from bench.projection.search import _parse_split_values

    with pytest.raises(UsageError, match="given twice"):
        _parse_split_values("tp=8,tp=4")
    assert _parse_split_values("tp=8,ep=4") == {"tp": 8, "pp": 1, "ep": 4}
    from bench.core.environment import max_threads

    began = time.monotonic()
    for backend in ("cpu", "onnxruntime"):
        done = cli_result("run", "--model", "bert-base-tiny", "--backend", backend, "--threads", "1000000")
        assert done.returncode == 2 and "options.threads" in done.stderr and f"<= {max_threads()}" in done.stderr
        assert done.stderr.count("\n") == 1
    assert time.monotonic() - began < 30 and not any(tmp_path.iterdir())


def test_the_python_api_refuses_bad_arguments_in_one_line(tmp_path, monkeypatch):
    import bench

    monkeypatch.chdir(tmp_path)
    spec = BenchmarkSpec("gpt2-tiny", "simulated", "fp32", options={"profile": "h100"})
    for kwargs in ({"out": ""}, {"out": None}, {"out": tmp_path / "a", "settings": {}}):
        with pytest.raises(UsageError) as raised:
            bench.run(spec, **kwargs)
        assert "\n" not in str(raised.value)
    for call in (
        lambda: bench.load(5),
        lambda: bench.records(None),
        lambda: bench.records([]),
        lambda: bench.load([1]),
    ):
        with pytest.raises(UsageError, match="run_dirs"):
            call()
    with pytest.raises(UsageError, match="run_dirs"):
        bench.compare(5, 5)
    big = {"model": ["gpt2-tiny"], "backend": ["simulated"], "batch_size": list(range(1, 2_002))}
    with pytest.raises(UsageError, match="more than 2,000"):
        bench.run(big, out=tmp_path / "big")
    assert not any(tmp_path.iterdir())


def test_python_m_bench_does_not_import_modules_from_the_working_directory(tmp_path):
    done, marker = _run_beside_a_hijacking_psutil(tmp_path)
    assert done.returncode == 0, done.stderr
    assert not marker.exists()


def _broken_torch_npu(root, body: str):
    """A stand-in torch_npu installed beside torch: its import fails as `body` says, and it registers itself for
    torch's device-backend autoloading (an entry point in the torch.backends group), as torch_npu >= 2.5 does."""
    (root / "torch_npu").mkdir(parents=True)
    (root / "torch_npu" / "__init__.py").write_text(body)
    info = root / "torch_npu-2.5.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torch_npu\nVersion: 2.5.1\n")
    (info / "entry_points.txt").write_text("[torch.backends]\ntorch_npu = torch_npu:_autoload\n")


def test_a_broken_torch_npu_cannot_crash_bench_list_and_the_fallback_names_the_library(tmp_path):
    missing = 'raise OSError("libascendcl.so: cannot open shared object file: No such file or directory")\n'
    _broken_torch_npu(tmp_path / "missing", missing)
    _broken_torch_npu(tmp_path / "aborts", "import os\nos.abort()\n")
    for root, expected in ((tmp_path / "missing", "libascendcl.so"), (tmp_path / "aborts", "kills the process")):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), str(ROOT)]))
        env.pop("TORCH_DEVICE_BACKEND_AUTOLOAD", None)
        done = subprocess.run(
            [sys.executable, "-m", "bench", "list"], env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert expected in done.stdout, done.stdout
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "missing"), str(ROOT)]))
    done = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--model", "gpt2-tiny", "--backend", "ascend", "-q"]
        + ["--out", str(tmp_path / "run")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "note: backend ascend is simulated here" in done.stderr and "libascendcl.so" in done.stderr
