"""End to end through the command line, as users run it."""

import csv
import io
import json
import shutil

import pytest
from conftest import QUICK, cli_here, cli_result, run_cli, run_here

from bench.core.record import SCHEMA_VERSION


@pytest.fixture(scope="module")
def encoder_run(tmp_path_factory):
    """The acceptance command: two batch sizes of the tiny BERT on the CPU backend."""
    out = tmp_path_factory.mktemp("enc") / "run"
    proc = run_cli(
        "run",
        "--model",
        "bert-base-tiny",
        "--backend",
        "cpu",
        "--batch-size",
        "1,4",
        "--seq-len",
        "32",
        "--out",
        str(out),
        *QUICK,
    )
    return out, proc


def read_lines(out):
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def test_run_writes_one_ok_record_per_cell(encoder_run):
    out, proc = encoder_run
    assert proc.returncode == 0, proc.stderr
    records = read_lines(out)
    assert [(r["status"], r["spec"]["batch_size"]) for r in records] == [("ok", 1), ("ok", 4)]
    for r in records:
        assert r["schema_version"] == SCHEMA_VERSION and r["simulated"] is False
        assert r["spec"]["workload"] == "bert-base-uncased-tiny" and r["spec"]["seq_len"] == 32
        assert len(r["measurement"]["samples_ns"]) >= 8
        assert r["environment"]["fingerprint"] and r["environment"]["project"]["version"]
    assert "2/2" in proc.stderr  # progress
    assert "bert-base-uncased-tiny" in proc.stdout and "p50 ms" in proc.stdout  # results table


def test_show_in_every_format(encoder_run):
    out, _ = encoder_run
    table = run_cli("show", str(out))
    assert table.returncode == 0 and table.stdout.count("bert-base-uncased-tiny") == 2
    rows = json.loads(run_cli("show", str(out), "--format", "json").stdout)
    assert [r["batch_size"] for r in rows] == [1, 4]
    assert all(r["p50_ms"] > 0 and r["p50_ci_low_ms"] <= r["p50_ms"] <= r["p50_ci_high_ms"] for r in rows)
    assert rows[1]["items_per_s"] > 0
    parsed = list(csv.DictReader(io.StringIO(run_cli("show", str(out), "-f", "csv").stdout)))
    assert len(parsed) == 2 and float(parsed[0]["p50_ms"]) == pytest.approx(rows[0]["p50_ms"])
    md = run_cli("show", str(out), "--format", "md").stdout
    assert md.startswith("| model |") and md.count("\n| bert-base-uncased-tiny") == 2


def test_generation_records_carry_ttft_tpot_and_tokens_per_second(tmp_path):
    out = tmp_path / "gen"
    run_here('[[matrix]]\nmodel = "gpt2-tiny"\nseq_len = 16\nnew_tokens = 4\n', out)  # the cell, in this process
    [row] = json.loads(run_cli("show", str(out), "--format", "json").stdout)
    assert row["new_tokens"] == 4
    assert 0 < row["ttft_p50_ms"] < row["p50_ms"]
    assert row["tpot_p50_ms"] > 0 and row["output_tokens_per_s"] > 0
    table = run_cli("show", str(out)).stdout
    assert "TTFT ms" in table and "tok/s" in table


def test_a_crashing_worker_leaves_a_failed_record_and_the_sweep_goes_on(tmp_path):
    out = tmp_path / "crash"
    proc = run_cli(
        "run",
        "-m",
        "bert-base-tiny,gpt2-tiny",
        "--seq-len",
        "16",
        "--out",
        str(out),
        *QUICK,
        env={"BENCH_FAULT_INJECT": "segfault@bert-base-uncased-tiny"},
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    records = read_lines(out)
    assert [r["status"] for r in records] == ["failed", "ok"]
    assert "SIGSEGV" in records[0]["reason"]
    # resume reruns only what is not ok, and nothing is duplicated or lost (the resume itself in this process)
    again = run_here('[[matrix]]\nmodel = ["bert-base-tiny", "gpt2-tiny"]\nseq_len = 16\n', out, resume=True)
    assert [r.spec.workload for r in again] == ["bert-base-uncased-tiny"]
    records = read_lines(out)
    assert [(r["spec"]["workload"], r["status"]) for r in records] == [
        ("bert-base-uncased-tiny", "failed"),
        ("gpt2-tiny", "ok"),
        ("bert-base-uncased-tiny", "ok"),
    ]
    rows = json.loads(cli_here("show", str(out), "--format", "json")[1])
    assert sorted(r["status"] for r in rows) == ["ok", "ok"]


def test_a_worker_past_its_timeout_is_killed_and_recorded(tmp_path):
    out = tmp_path / "hang"
    proc = run_cli(
        "run",
        "-m",
        "bert-base-tiny",
        "--seq-len",
        "8",
        "--out",
        str(out),
        *QUICK,
        "--timeout",
        "1",
        env={"BENCH_FAULT_INJECT": "hang@bert-base-uncased-tiny"},
    )
    assert proc.returncode == 1
    [record] = read_lines(out)
    assert record["status"] == "failed" and "timed out after 1 s" in record["reason"]


BAD_INPUTS = [
    (["run", "--model", "no-such-model"], "model: 'no-such-model' is not allowed"),
    (["run", "--model", "gpt2-tiny", "--backend", "tpu"], "backend: 'tpu' is not allowed"),
    (["run", "--model", "gpt2-tiny", "--batch-size", "0"], "--batch-size: '0' is not allowed"),
    (["run", "--model", "gpt2-tiny", "--seq-len", "-4"], "--seq-len: '-4' is not allowed"),
    (["run", "--model", "gpt2-tiny", "--batch-size", "two"], "--batch-size: 'two' is not allowed"),
    (["run", "--model", "gpt2-tiny", "--precision", "fp12"], "--precision: 'fp12' is not allowed"),
    (["run", "--model", "gpt2-tiny", "--precision", "fp16"], "precision (backend cpu): 'fp16' is not allowed"),
    (["run", "--model", "gpt2-tiny", "--min-time", "soon"], "--min-time: 'soon' is not allowed"),
    (["run", "--model", "gpt2-tiny", "--max-time", "-1"], "--max-time: -1.0 is not allowed"),
    (["run", "--model", "bert-base", "--seq-len", "4096"], "seq_len: 4096 is not allowed for bert-base-uncased"),
    (["run", "--bogus-flag"], "unrecognized arguments: --bogus-flag"),
    (["show", "/nonexistent/run"], "RUN_DIR: '/nonexistent/run' holds no records.jsonl"),
]


@pytest.mark.parametrize("args, message", BAD_INPUTS, ids=[" ".join(a[1:3]) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_leaves_records_untouched(encoder_run, tmp_path, args, message):
    source, _ = encoder_run
    out = tmp_path / "existing"
    shutil.copytree(source, out)
    before = (out / "records.jsonl").read_bytes()
    extra = ["--out", str(out), "--resume"] if args[0] == "run" and "--bogus-flag" not in args else []
    proc = cli_result(*args, *extra)  # the CLI's own code in this process (test_help_and_no_arguments runs it)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (out / "records.jsonl").read_bytes() == before


def test_malformed_sweep_file(tmp_path):
    sweep = tmp_path / "broken.toml"
    sweep.write_text("[[matrix]\nmodel = gpt2\n")
    proc = run_cli("run", str(sweep), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "not valid TOML" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_unwritable_output_path(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    proc = run_cli("run", "--model", "gpt2-tiny", "--out", str(blocker / "run"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("bench run: error: --out: ") and "cannot be written" in proc.stderr


def test_existing_run_needs_resume(encoder_run, tmp_path):
    source, _ = encoder_run
    out = tmp_path / "again"
    shutil.copytree(source, out)
    proc = run_cli("run", "--model", "bert-base-tiny", "--out", str(out))
    assert proc.returncode == 2 and "already holds 2 records; pass --resume" in proc.stderr


def test_resume_of_a_finished_run_runs_nothing(encoder_run, tmp_path):
    source, _ = encoder_run
    out = tmp_path / "done"
    shutil.copytree(source, out)
    proc = run_cli(
        "run",
        "--model",
        "bert-base-tiny",
        "--backend",
        "cpu",
        "--batch-size",
        "1,4",
        "--seq-len",
        "32",
        "--out",
        str(out),
        "--resume",
        *QUICK,
    )
    assert proc.returncode == 0 and "2 cells already ok" in proc.stderr
    assert len(read_lines(out)) == 2


def test_torn_last_line_is_reported_and_skipped_by_show(encoder_run, tmp_path):
    source, _ = encoder_run
    out = tmp_path / "torn"
    shutil.copytree(source, out)
    path = out / "records.jsonl"
    path.write_bytes(path.read_bytes()[:-25])
    proc = run_cli("show", str(out))
    assert proc.returncode == 0
    assert "skipped truncated last line" in proc.stderr
    assert proc.stdout.count("bert-base-uncased-tiny") == 1


def test_sweep_file_with_command_line_override(tmp_path):
    sweep = tmp_path / "s.toml"
    sweep.write_text(
        "[measure]\nmin_iterations = 6\nmin_time_s = 0.1\nwarmup_time_s = 0\n\n"
        '[[matrix]]\nmodel = ["bert-base-tiny"]\nbatch_size = [1]\nseq_len = [8]\nthreads = [1]\n'
    )
    from bench.cli import build_parser
    from bench.cli.run_sweep_args import build_sweep
    from bench.runs.plan import plan_sweep

    # what `bench run SWEEP --batch-size 2` plans (the run itself is the encoder_run fixture's business)
    args = build_parser().parse_args(["run", str(sweep), "--batch-size", "2", "--out", str(tmp_path / "out")])
    sweep_planned, is_default = build_sweep(args)
    [cell] = plan_sweep(sweep_planned).cells
    assert not is_default and cell.batch_size == 2 and cell.options == (("threads", 1),) and cell.seq_len == 8
    assert sweep_planned.measure.min_iterations == 6 and sweep_planned.measure.min_time_s == 0.1


def test_list_shows_workloads_and_backends(capsys):
    data = json.loads(cli_here("list", "--format", "json")[1])
    names = {w["name"] for w in data["workloads"]}
    assert {"bert-base-uncased", "bert-base-uncased-tiny", "gpt2", "gpt2-tiny"} <= names
    cpu = next(b for b in data["backends"] if b["name"] == "cpu")
    assert cpu["available"] is True and cpu["precisions"] == ["fp32", "bf16", "int8"]
    from bench.cli import main  # the table from the same command, in this process (the CLI path ran above)

    assert main(["list"]) == 0 and "alias bert-base" in capsys.readouterr().out


def test_help_and_no_arguments():
    assert run_cli("--help").returncode == 0
    helptext = run_cli("run", "--help").stdout
    for flag in ("--model", "--batch-size", "--resume", "--min-time", "--timeout"):
        assert flag in helptext
    assert run_cli().returncode == 2


@pytest.mark.slow
def test_selfcheck_compares_harness_and_bare_loop_in_one_worker(tmp_path):
    report = tmp_path / "selfcheck.json"
    proc = run_cli(
        "selfcheck",
        "--model",
        "bert-base-tiny",
        "--seq-len",
        "16",
        "--blocks",
        "4",
        "--block",
        "2",
        "--tolerance",
        "10",
        "--json",
        str(report),
    )
    assert proc.returncode == 0, proc.stderr
    assert "ratio harness/bare" in proc.stdout and "parent CPU while waiting" in proc.stdout
    data = json.loads(report.read_text())
    assert data["harness_median_ns"] > 0 and data["bare_median_ns"] > 0
    assert len(data["pair_ratios"]) == 4
    assert data["noop_harness_ns_per_iteration"] > 0
    assert data["parent_cpu_s"] < 0.1 * data["parent_wait_s"]


def test_selfcheck_rejects_bad_numbers():
    proc = run_cli("selfcheck", "--blocks", "0")
    assert proc.returncode == 2 and "--blocks: '0' is not allowed" in proc.stderr
    proc = run_cli("selfcheck", "--tolerance", "-1")
    assert proc.returncode == 2 and "--tolerance" in proc.stderr
