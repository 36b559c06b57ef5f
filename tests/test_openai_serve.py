"""`bench serve` (a measured backend behind the OpenAI-compatible API) and the `openai` backend (the client):
concurrency, Poisson and LoadGen loads, metrics checked against the server's own timings, failures counted, the
served model's identity recorded, secrets never recorded. Servers listen on 127.0.0.1 only; loads are bounded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT, cli_here, run_cli

pytest.importorskip("aiohttp")

MODEL = "gpt2-tiny"


def _launch_server(tmp_path: Path, name: str = "serve") -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    log = open(tmp_path / f"{name}.log", "w")
    return subprocess.Popen(
        [sys.executable, "-m", "bench", "serve", "--model", MODEL, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=env,
        cwd=ROOT,
    )


def _url_of(proc: subprocess.Popen, tmp_path: Path, name: str = "serve") -> str:
    url = proc.stdout.readline().strip()  # printed once the server listens
    assert url.startswith("http://127.0.0.1:"), (tmp_path / f"{name}.log").read_text()
    return url


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:  # the kill test's victim
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """The module's server and the one the kill test kills, started together (their start-ups, mostly imports,
    overlap on two cores: about 4 s saved)."""
    where = tmp_path_factory.mktemp("server")
    procs = {name: _launch_server(where, name) for name in ("serve", "victim")}
    urls = {name: _url_of(proc, where, name) for name, proc in procs.items()}
    yield {name: (procs[name], urls[name]) for name in procs}
    for proc in procs.values():
        _stop(proc)


@pytest.fixture(scope="module")
def server(servers):
    return servers["serve"][1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def _post(url: str, body: dict) -> tuple[dict, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read()), dict(response.headers)


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def test_server_speaks_the_openai_api(server):
    models = _get(f"{server}/v1/models")
    assert models["data"][0]["id"] == MODEL and models["data"][0]["engine"]["name"] == "catchup-bench"
    completion, headers = _post(
        f"{server}/v1/completions", {"model": MODEL, "prompt": "one two three", "max_tokens": 4}
    )
    assert completion["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert len(completion["choices"][0]["text"].split()) == 4 and headers["Server"].startswith("catchup-bench/")
    chat, _ = _post(
        f"{server}/v1/chat/completions",
        {"messages": [{"role": "user", "content": "hi there"}], "max_completion_tokens": 2},
    )
    assert chat["object"] == "chat.completion" and chat["usage"]["completion_tokens"] == 2
    with pytest.raises(urllib.error.HTTPError) as bad:
        _post(f"{server}/v1/completions", {"prompt": "x", "max_tokens": 0})
    assert bad.value.code == 400 and "max_tokens" in bad.value.read().decode()


def test_concurrency_and_poisson_loads_record_vllm_metrics_and_the_served_model(server, tmp_path):
    out = tmp_path / "load"
    done = run_cli(
        "run",
        "--backend",
        "openai",
        "--model",
        MODEL,
        "--seq-len",
        "8",
        "--new-tokens",
        "6",
        "-O",
        f"endpoint={server}",
        "-O",
        "requests=12",
        "-O",
        "concurrency=3",
        "-O",
        "request_rate=0,30",
        "-O",
        "api=chat",
        "-O",
        "slo_ttft_ms=60000",
        "--out",
        str(out),
        "-q",
        env={"OPENAI_API_KEY": "sk-do-not-record-me"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 remote cell(s) that take as long as their requests do" in done.stderr  # not "at most" a loop's limit
    records = _records(out)
    assert len(records) == 2 and all(r["status"] == "ok" for r in records)
    assert "sk-do-not-record-me" not in (out / "records.jsonl").read_text()
    for record in records:
        serving = record["serving"]
        assert serving["requests_ok"] == 12 and serving["requests_failed"] == 0
        assert serving["server"]["model"] == MODEL and serving["server"]["engine"]["name"] == "catchup-bench"
        assert serving["output_tokens"] == [6] * 12 and serving["prompt_tokens"] == [8] * 12
        assert all(len(marks) == 6 for marks in record["measurement"]["token_marks_ns"])
        assert record["environment"]["device"]["endpoint"] == server
    rows = json.loads(run_cli("show", str(out), "--format", "json", "--percentiles", "50,95").stdout)
    for row in rows:
        for metric in ("ttft", "tpot", "itl", "e2e"):
            assert row[f"{metric}_p50_ms"] > 0 and row[f"{metric}_p95_ms"] >= row[f"{metric}_p50_ms"]
        assert row["goodput_fraction"] == 1.0 and row["request_throughput"] > 0 and row["engine"].startswith("catchup")
    from bench.core import __version__

    table = cli_here("show", str(out))[1]
    assert table.splitlines()[0].split().count("engine") == 1 and f"catchup-bench {__version__}" in table
    poisson = [r for r in records if dict(r["spec"]["options"]).get("request_rate") == 30]
    assert poisson and all(r["serving"]["load"]["arrivals"] == "poisson" for r in poisson)


def test_client_metrics_agree_with_the_servers_own_timings(server, tmp_path):
    """Concurrency 1, so no request waits for another: the client's TTFT and end-to-end latency are the server's
    plus the network and HTTP overhead on loopback (small and positive)."""
    before = len(_get(f"{server}/bench/timings")["requests"])
    out = tmp_path / "agree"
    done = run_cli(
        "run",
        "--backend",
        "openai",
        "--model",
        MODEL,
        "--seq-len",
        "8",
        "--new-tokens",
        "8",
        "-O",
        f"endpoint={server}",
        "-O",
        "requests=10",
        "--out",
        str(out),
        "-q",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    [record] = _records(out)
    timed = _get(f"{server}/bench/timings")["requests"][before:][-10:]  # the warm-up requests come first
    server_ttft = sorted((t["first_token_ns"] - t["received_ns"]) / 1e6 for t in timed)
    server_e2e = sorted((t["finished_ns"] - t["received_ns"]) / 1e6 for t in timed)
    marks = record["measurement"]["token_marks_ns"]
    client_ttft = sorted(m[0] / 1e6 for m in marks)
    client_e2e = sorted(s / 1e6 for s in record["measurement"]["samples_ns"])
    for client, served in ((client_ttft, server_ttft), (client_e2e, server_e2e)):
        median_gap = client[len(client) // 2] - served[len(served) // 2]
        assert -1.0 <= median_gap <= 50.0, (client, served)


def test_loadgen_server_and_offline_through_the_network_client(server, tmp_path):
    out = tmp_path / "lg"
    done = run_cli(
        "run",
        "--backend",
        "openai",
        "--model",
        MODEL,
        "-O",
        f"endpoint={server}",
        "--seq-len",
        "8",
        "--new-tokens",
        "4",
        "--batch-size",
        "2",
        "--scenario",
        "server,offline",
        "--target-qps",
        "5",
        "--lg-min-duration",
        "1",
        "--lg-min-queries",
        "8",
        "--lg-max-duration",
        "20",
        "--lg-no-accuracy",
        "--out",
        str(out),
    )
    if "needs catchup-bench[loadgen]" in done.stderr or "mlperf_loadgen" in done.stdout:
        pytest.skip("LoadGen is not installed")
    assert done.returncode == 0, done.stderr[-2000:]
    records = {r["spec"]["scenario"]: r for r in _records(out)}
    assert set(records) == {"server", "offline"} and all(r["status"] == "ok" for r in records.values())
    offline = records["offline"]["loadgen"]  # LoadGen's own verdict; on a shared 2-core machine it may be INVALID
    assert offline["validity"] == "VALID" or offline["invalid_reasons"]
    assert offline["results"]["samples_per_second"] > 0
    assert records["server"]["loadgen"]["results"]["completed_samples_per_sec"] > 0
    assert "LoadGen logs:" in done.stderr


def test_killing_the_server_mid_run_gives_failed_requests_and_a_finished_run(servers, tmp_path):
    proc, url = servers["victim"]
    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench",
            "run",
            "--backend",
            "openai",
            "--model",
            MODEL,
            "-O",
            f"endpoint={url}",
            "-O",
            "requests=400",
            "-O",
            "concurrency=2",
            "-O",
            "request_timeout_s=5",
            "--seq-len",
            "8",
            "--new-tokens",
            "16",
            "--out",
            str(out),
            "-q",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    time.sleep(2.5)
    proc.kill()
    proc.wait()
    stdout, stderr = run.communicate(timeout=300)
    assert run.returncode in (0, 1) and "Traceback" not in stderr, stderr[-2000:]
    [record] = _records(out)
    serving = record["serving"]
    assert serving["requests_failed"] > 0 and serving["requests_sent"] == 400
    assert serving["requests_ok"] + serving["requests_failed"] == 400
    assert set(serving["failure_reasons"]) <= {
        "ClientConnectorError",
        "ServerDisconnectedError",
        "ClientOSError",
        "timeout",
        "ClientPayloadError",
        "malformed stream",
    }


def test_an_unreachable_endpoint_is_one_line_before_anything_runs(tmp_path):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "nothing"
    done = run_cli(
        "run", "--backend", "openai", "--model", MODEL, "-O", f"endpoint=http://127.0.0.1:{port}", "--out", str(out)
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and "options.endpoint" in done.stderr and "cannot be reached" in done.stderr
    assert not (out / "records.jsonl").exists()
    missing = run_cli("run", "--backend", "openai", "--model", MODEL, "--out", str(out))
    assert missing.returncode == 2 and "options.endpoint: missing" in missing.stderr
