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
    (out / LOCK_FILE).write_text(json.dumps({"pid": os.getpid(), "start": process_start_time(os.getpid())}))
    done = cli_result("run", *FAST, "--out", str(out))
    assert done.returncode == 2 and "is in use by another bench run" in done.stderr
    assert done.stderr.count("\n") == 1 and not (out / "records.jsonl").read_text()
    (out / LOCK_FILE).write_text(json.dumps({"pid": dead_pid(), "start": 1.0}))
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


def test_a_module_in_the_working_directory_is_not_imported_by_the_worker(tmp_path):
    marker = tmp_path / "imported"
    (tmp_path / "psutil.py").write_text(f"open({str(marker)!r}, 'w').write('hijacked')\nraise ImportError\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-P", "-m", "bench", "run", *FAST, "--out", str(tmp_path / "run")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
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
