"""Executors: the local runner and the Ray executor give the same records, survive a killed worker or runner,
and `--resume` completes a sweep with every cell exactly once, across executors.

The Ray tests start a real local Ray instance (`ray start --head --num-cpus 2`, stopped at the end)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import QUICK, ROOT, run_cli

from bench.cli import main

CELLS = ["--model", "bert-base-tiny", "--seq-len", "8", "--batch-size", "1,2", *QUICK]


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines() if line.strip()]


def _bench_workers() -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "bench.runs.worker" in cmdline:
            found.append(proc)
    return found


def _ray_worker_of(worker: psutil.Process) -> psutil.Process | None:
    """The Ray worker process running this bench.runs.worker's cell, or None (e.g. already orphaned)."""
    try:
        parent = worker.parent()
        text = " ".join(parent.cmdline()) if parent else ""
    except psutil.Error:
        return None
    return parent if parent and parent.pid > 1 and ("default_worker" in text or "ray::" in text) else None


def _wait_for(condition, timeout: float = 120.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def _start_cli(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), RAY_USAGE_STATS_ENABLED="0")
    env.pop("BENCH_FAULT_INJECT", None)
    return subprocess.Popen(
        [sys.executable, "-m", "bench", "run", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _exactly_once_ok(records: list[dict], keys: set[str]) -> None:
    ok = [r["spec_key"] for r in records if r["status"] == "ok"]
    assert sorted(ok) == sorted(keys), "every cell ok exactly once"


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """Two cells on the local executor, the runner sent SIGTERM while the second runs, then --resume."""
    out = tmp_path_factory.mktemp("local") / "run"
    proc = _start_cli(*CELLS, "--out", str(out))
    _wait_for(lambda: (out / "records.jsonl").is_file() and len(_records(out)) >= 1 and _bench_workers())
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    workers_gone = _wait_for(lambda: not _bench_workers(), timeout=10)
    kept = _records(out)
    resumed = run_cli("run", *CELLS, "--out", str(out), "--resume")
    return out, proc.returncode, stderr, workers_gone, kept, resumed


@pytest.mark.slow
def test_local_runner_killed_mid_sweep_resumes_exactly_once(local_run):
    out, returncode, stderr, workers_gone, kept, resumed = local_run
    assert returncode == 130 and "interrupted: 1 records kept" in stderr and "--resume" in stderr
    assert workers_gone  # the running cell's worker did not outlive the runner
    assert len(kept) == 1 and kept[0]["status"] == "ok"
    assert resumed.returncode == 0, resumed.stderr
    assert "resume: 1 cells already ok" in resumed.stderr
    records = _records(out)
    assert len(records) == 2
    _exactly_once_ok(records, {r["spec_key"] for r in records})


def test_ray_missing_is_one_line_with_the_install_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert main(["run", "-m", "bert-base-tiny", "--executor", "ray", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'catchup-bench[ray]'" in err
    assert main(["run", "-m", "bert-base-tiny", "--ray-retries", "2", "--out", str(tmp_path / "run")]) == 2


@pytest.mark.parametrize("address, says", [("127.0.0.1:1", "cannot be reached"), ("nonsense", "HOST:PORT")])
def test_bad_ray_address_is_one_line_not_minutes_of_retries(tmp_path, capsys, address, says):
    pytest.importorskip("ray", reason="needs the ray extra (installed by make test)")
    began = time.monotonic()
    status = main(
        ["run", "-m", "bert-base-tiny", "--executor", "ray", "--ray-address", address, "--out", str(tmp_path / "run")]
    )
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and "--ray-address" in err and says in err
    assert time.monotonic() - began < 10 and not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray instance with 2 CPUs, as `ray start` makes one on a cluster's head node."""
    pytest.importorskip("ray", reason="needs the ray extra (installed by make test)")
    ray_bin = str(Path(sys.executable).with_name("ray"))
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    started = subprocess.run(
        [ray_bin, "start", "--head", "--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert started.returncode == 0, started.stderr
    yield "auto"
    subprocess.run([ray_bin, "stop", "--force"], capture_output=True, env=env, timeout=120)


@pytest.mark.slow
def test_ray_executor_gives_the_same_records_as_local(ray_cluster, local_run, tmp_path):
    local, remote = local_run[0], tmp_path / "ray"
    proc = run_cli(
        "run",
        *CELLS,
        "--out",
        str(remote),
        "--executor",
        "ray",
        "--ray-address",
        ray_cluster,
        env={"RAY_USAGE_STATS_ENABLED": "0"},
    )
    assert proc.returncode == 0, proc.stderr
    by_executor = {name: {r["spec_key"]: r for r in _records(out)} for name, out in (("local", local), ("ray", remote))}
    assert by_executor["local"].keys() == by_executor["ray"].keys() and len(by_executor["ray"]) == 2
    for key, record in by_executor["ray"].items():
        twin = by_executor["local"][key]
        assert record["status"] == twin["status"] == "ok"
        assert set(record) == set(twin) and record["spec"] == twin["spec"]
        assert record["environment"]["fingerprint"] == twin["environment"]["fingerprint"]  # measured on the node
        assert record["environment"]["executor"]["name"] == "ray" and "executor" not in twin["environment"]
        assert len(record["measurement"]["samples_ns"]) >= 8


@pytest.mark.slow
def test_killed_ray_worker_is_recorded_failed_and_resume_fills_it(ray_cluster, tmp_path):
    out = tmp_path / "run"
    proc = _start_cli(
        *CELLS, "--out", str(out), "--executor", "ray", "--ray-address", ray_cluster, "--ray-retries", "0"
    )
    worker = _wait_for(lambda: [w for w in _bench_workers() if _ray_worker_of(w)])[0]
    _ray_worker_of(worker).kill()  # the Ray worker process running the task dies mid-cell
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1, stderr  # a failed cell, the sweep completed
    _wait_for(lambda: not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE, timeout=10)
    records = _records(out)
    assert sorted(r["status"] for r in records) == ["failed", "ok"]
    failed = next(r for r in records if r["status"] == "failed")
    assert failed["reason"].startswith("ray task lost after 0 retries")
    resumed = run_cli("run", *CELLS, "--out", str(out), "--resume")  # the local executor finishes it
    assert resumed.returncode == 0, resumed.stderr
    assert "resume: 1 cells already ok" in resumed.stderr
    records = _records(out)
    assert len(records) == 3
    _exactly_once_ok(records, {r["spec_key"] for r in records})


@pytest.mark.slow
def test_ray_retries_a_lost_cell_a_bounded_number_of_times(ray_cluster, tmp_path):
    out = tmp_path / "run"
    one_cell = [arg if arg != "1,2" else "1" for arg in CELLS]
    proc = _start_cli(
        *one_cell, "--out", str(out), "--executor", "ray", "--ray-address", ray_cluster, "--ray-retries", "1"
    )
    killed: list[int] = []

    def next_attempt() -> psutil.Process | None:
        parents = [_ray_worker_of(w) for w in _bench_workers()]
        return next((p for p in parents if p is not None and p.pid not in killed), None)

    for _ in range(2):  # the first attempt and its one retry (a second Ray worker), each killed once it runs
        ray_worker = _wait_for(next_attempt)
        killed.append(ray_worker.pid)
        ray_worker.kill()
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1, stderr
    (record,) = _records(out)
    assert record["status"] == "failed" and record["reason"].startswith("ray task lost after 1 retry")


@pytest.mark.slow
def test_ray_cells_get_the_real_secrets_and_record_none(ray_cluster, tmp_path):
    """The Ray executor hands a task the real endpoint and API key (the server sees them) while the records, the
    cell keys and the command's output hold only the redacted endpoint -- as the local executor does
    (tests/test_hostile.py)."""
    pytest.importorskip("aiohttp")
    from hostile_server import HostileServer

    password, token, key = "ray-pw-4410", "ray-qtok-93", "sk-ray-secret-77"
    out = tmp_path / "run"
    with HostileServer() as server:
        endpoints = [f"{server.endpoint(mode, f'ops:{password}')}?api-key={token}" for mode in ("ok", "echo_secret")]
        sweep = tmp_path / "sweep.toml"
        sweep.write_text(
            'model = "gpt2-tiny"\nbackend = "openai"\nseq_len = 8\nnew_tokens = 4\n'
            f"options = {{ endpoint = {json.dumps(endpoints)}, requests = 3 }}\n"
        )
        proc = run_cli(
            "run", str(sweep), "--out", str(out), "--min-time", "0", "--executor", "ray", "--ray-address",
            ray_cluster, env={"RAY_USAGE_STATS_ENABLED": "0", "OPENAI_API_KEY": key},
        )  # fmt: skip
        seen = list(server.seen)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]  # the echoing cell failed
    assert ("ok", f"Bearer {key}", f"api-key={token}") in seen  # the task had the real values
    records = _records(out)
    assert sorted(r["status"] for r in records) == ["failed", "ok"]
    assert all(r["environment"]["executor"]["name"] == "ray" for r in records if r["status"] == "ok")
    written = (out / "records.jsonl").read_text() + proc.stdout + proc.stderr
    assert not [s for s in (password, token, key) if s in written]
    assert all("***" in r["spec"]["options"]["endpoint"] for r in records)
