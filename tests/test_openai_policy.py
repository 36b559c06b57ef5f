"""The openai client's policies without a real engine (tests/test_engines.py has those): a request that fails before
any response byte is retried (counted apart), streams that end after a finish reason, the probe's field names, the
engine's identity, prompts of exact length, extra_body refused as bad input, and the software lever (engine
factors from records differing only in engine, `bench catchup --software-from`). Servers on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import threading
from pathlib import Path

import pytest
from conftest import cli_here

pytest.importorskip("aiohttp")

from bench.core.errors import UsageError  # noqa: E402

MODEL = "gpt2-tiny"


class DroppingServer:
    """A raw HTTP server on 127.0.0.1 that closes every other connection as soon as it has read the request (no
    byte of a response: what llama-server does to kept-alive connections), and answers the others with a valid
    stream of 4 chunks, usage in the last text chunk, no [DONE] (after a finish reason), `Connection: close`."""

    def __init__(self) -> None:
        self.connections = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        self.ready.set()
        self.loop.run_forever()

    async def _serve(self, reader, writer) -> None:
        self.connections += 1
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)  # fmt: skip
        await reader.readexactly(length)
        if self.connections % 2 == 1:
            writer.close()
            return
        chunks = [{"choices": [{"text": f" t{i}", "finish_reason": None}]} for i in range(3)]
        chunks.append({"choices": [{"text": " t3", "finish_reason": "length"}], "usage": {"completion_tokens": 4, "prompt_tokens": 2}})  # fmt: skip
        body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n")
        writer.write(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        writer.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


def _send(url: str, count: int, **policy) -> list:
    from backends.openai_client import OpenAIClient

    async def run():
        async with OpenAIClient(url, "completions", MODEL, 10, True, **policy) as client:
            return [await client.request("a b", 4) for _ in range(count)]

    return asyncio.run(run())


def test_a_request_failing_before_any_response_byte_is_retried_and_counted_apart():
    server = DroppingServer()
    try:
        retried = _send(server.url, 4)
        refused = _send(server.url, 4, retries=0)
    finally:
        server.stop()
    assert all(r.ok and r.output_tokens == 4 and len(r.token_ns) == 4 for r in retried)  # no [DONE]: finish reason
    assert all(len(r.retried) == 1 and "ServerDisconnected" in r.retried[0] for r in retried)
    assert sum(not r.ok for r in refused) == 2 and all(not r.retried for r in refused)


def test_the_failure_table_counts_failed_and_retried_requests_by_reason():
    from bench.core.record import Record
    from bench.core.spec import BenchmarkSpec
    from bench.output.failures import render_failures

    spec = BenchmarkSpec(workload=MODEL, backend="openai", precision="served", batch_size=1)
    serving = {"load": {"concurrency": 4}, "failure_reasons": {"timeout": 2}, "retry_reasons": {"ClientOSError": 14},
               "requests_sent": 100, "server": {"engine_identity": {"name": "llama.cpp"}}}  # fmt: skip
    text = render_failures([Record(spec, "ok", serving=serving), Record(spec, "ok", serving={"requests_sent": 3})])
    assert "gpt2-tiny c=4 llama.cpp  ClientOSError  0       14" in text and "timeout        2       0" in text
    assert render_failures([Record(spec, "ok", serving={"requests_sent": 3})]) == ""


def test_fields_named_by_a_refusal_and_the_engine_identity_from_what_the_server_says():
    from backends.openai_identity import engine_identity
    from backends.openai_probe import named_fields

    detail = "Unexpected fields in the request: {'ignore_eos', 'min_tokens'}"
    assert named_fields(detail, ("stream", "stream_options", "ignore_eos", "min_tokens")) == [
        "ignore_eos",
        "min_tokens",
    ]
    assert engine_identity({"owned_by": "llamacpp"}, props={"build_info": "b6000-abc"})["version"] == "b6000-abc"
    assert engine_identity({"owned_by": "vllm"}, version={"version": "0.32.0"}) == {
        "name": "vllm", "source": "/v1/models owned_by", "version": "0.32.0", "version_source": "/version"}  # fmt: skip
    assert engine_identity({"server_header": "uvicorn", "model_status": "loaded"})["name"] == "transformers"
    declared = engine_identity({"server_header": "uvicorn"}, declared="mindie/2.1")
    assert (declared["name"], declared["version"], declared["source"]) == ("mindie", "2.1", "option engine_name")
    assert engine_identity({}) == {}
    # a name given for a server that names itself: the server's version is not the named engine's
    renamed = engine_identity({"engine": {"name": "catchup-bench", "version": "0.1.0"}}, declared="vllm")
    assert renamed == {"name": "vllm", "source": "option engine_name"}


def test_prompts_have_exactly_the_length_asked_for_as_ids_text_and_chat():
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "scripts" / "engines"))
    import engines

    from backends.openai_prompts import PromptMaker

    with tempfile.TemporaryDirectory() as tmp:  # the tiny model's tokenizer alone: what prompts need
        tokenizer = engines._tokenizer(Path(tmp))
    for length in (1, 7, 64, 300):
        ids = PromptMaker(length, 3, tokenizer, "ids").make(4)
        assert all(len(p.payload) == length == p.sent for p in ids)
        assert not set(tokenizer.all_special_ids) & {i for p in ids for i in p.payload}
        for chat, wanted in ((False, length + 8), (True, length + 24)):  # the chat template alone is ~15 tokens
            maker = PromptMaker(wanted, 3, tokenizer, "text", chat=chat)
            texts = maker.make(4)
            assert all(maker.count(p.payload) == wanted == p.sent for p in texts), [p.sent for p in texts]
    timed, warm = PromptMaker(16, 0, tokenizer, "ids").make(4), PromptMaker(16, 0, tokenizer, "ids").make(4, 1 << 40)
    assert not {tuple(p.payload) for p in timed} & {tuple(p.payload) for p in warm}


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("[1, 2]", "a JSON list"),
        ("{nope", "not JSON"),
        ('{"stream": false}', "field 'stream'"),
        ("3", "expected a str"),
    ],
)
def test_extra_body_that_is_not_a_json_object_is_one_line_and_nothing_is_written(tmp_path, value, said):
    out = tmp_path / "never"
    status, _, err = cli_here("run", "--backend", "openai", "--model", MODEL, "-O", "endpoint=http://127.0.0.1:9",
                              "-O", f"extra_body={value}", "--out", str(out))  # fmt: skip
    assert status == 2 and err.count("\n") == 1 and "options.extra_body" in err and said in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["tokenizer=/no/such/dir"], "options.tokenizer: '/no/such/dir' is not allowed (does not exist)"),
        (["tokenizer=README.md"], "(is not a directory)"),
        (["tokenizer=docs"], "(holds no tokenizer file)"),
        (["prompts=ids"], "options.prompts: 'ids' is not allowed without a tokenizer"),
        (["api=chat", "prompts=ids", "tokenizer=tests"], "options.prompts: 'ids' is not allowed with api=chat"),
        (["slo_tpot_ms=0"], "options.slo_tpot_ms: 0 is not allowed; expected a bound > 0 ms"),
        (["engine_name=vllm\t0.3"], "options.engine_name"),
        (['extra_body={"max_tokens": 100}'], "field 'max_tokens' is not allowed"),
    ],
)
def test_options_that_cannot_work_are_one_line_before_the_run(tmp_path, options, said):
    """Refused at plan time, before the endpoint is tried (nothing listens on port 9) and nothing is written."""
    if "tokenizer=tests" in options:
        (tmp_path / "tok").mkdir()
        (tmp_path / "tok" / "tokenizer.json").write_text("{}")
        options = [o.replace("tokenizer=tests", f"tokenizer={tmp_path / 'tok'}") for o in options]
    out = tmp_path / "never"
    flags = [arg for option in options for arg in ("-O", option)]
    status, _, err = cli_here("run", "--backend", "openai", "--model", MODEL, "-O", "endpoint=http://127.0.0.1:9",
                              *flags, "--out", str(out))  # fmt: skip
    assert status == 2 and err.count("\n") == 1 and said in err, err
    assert not out.exists()


# -- the software lever ------------------------------------------------------------------------------------------


def _served(engine: str, tokens_per_s: float, concurrency: int = 4, requests: int = 64, seed: int = 0):
    """A serving-engine record of `requests` requests whose output rate is about `tokens_per_s` (2% noise)."""
    from bench.core.record import Measurement, Record
    from bench.core.spec import BenchmarkSpec

    rng = random.Random(seed)
    per_request = 32 / tokens_per_s * concurrency
    samples = [int(1e9 * per_request * rng.uniform(0.98, 1.02)) for _ in range(requests)]
    options = (("concurrency", concurrency), ("endpoint", f"http://127.0.0.1:{8000 + seed}"), ("requests", requests))
    spec = BenchmarkSpec(workload=MODEL, backend="openai", precision="served", batch_size=1, seq_len=64,
                         new_tokens=32, options=options)  # fmt: skip
    measurement = Measurement(samples_ns=samples, loop_wall_ns=int(sum(samples) / concurrency), items_per_iteration=1,
                              warmup_iterations=0, warmup_ns=0, stopped_by="requests_sent", settings={},
                              token_marks_ns=[[s // 32 * (i + 1) for i in range(32)] for s in samples],
                              tokens_per_sample=[32] * requests)  # fmt: skip
    serving = {"server": {"engine_identity": {"name": engine}}, "load": {"concurrency": concurrency}}
    return Record(spec, "ok", measurement=measurement, serving=serving)


def test_engine_factors_compare_runs_that_differ_only_in_engine_with_an_interval():
    from bench.analysis.engines import engine_factors, software_lever

    records = [_served("catchup-bench", 100, seed=1), _served("llama.cpp", 400, seed=2), _served("transformers", 150, seed=3),
               _served("llama.cpp", 300, concurrency=1, seed=4), _served("catchup-bench", 100, concurrency=1, seed=5)]  # fmt: skip
    factors = {dict(f.load)["concurrency"]: f for f in engine_factors(records)}
    loaded = factors[4]
    assert (loaded.best_engine, loaded.reference_engine) == ("llama.cpp", "catchup-bench")
    assert loaded.factor.value == pytest.approx(4.0, rel=0.05) and loaded.factor.kind == "measured/measured"
    assert loaded.factor.low < loaded.factor.value < loaded.factor.high < 4.4
    assert loaded.engines == ("llama.cpp", "transformers", "catchup-bench")
    chosen = software_lever(records)  # the highest concurrency
    assert dict(chosen.load)["concurrency"] == 4 and chosen.factor.value == loaded.factor.value
    assert software_lever(records, ("transformers", "catchup-bench")).factor.value == pytest.approx(1.5, rel=0.05)
    with pytest.raises(UsageError, match="--software-engines: 'vllm' is not allowed; expected engines in RUN_DIR"):
        software_lever(records, ("vllm", "llama.cpp"))
    with pytest.raises(UsageError, match="no pair of runs differing only in engine"):
        software_lever(records[:1])
    with pytest.raises(UsageError, match="has no interval"):
        software_lever([_served("a", 100, requests=10), _served("b", 200, requests=10, seed=9)])


def test_bench_catchup_takes_the_software_lever_from_a_run_directory(tmp_path):
    from bench.runs.store import RunStore

    store = RunStore(tmp_path / "engines")
    store.prepare()
    for record in (_served("catchup-bench", 100, seed=1), _served("llama.cpp", 300, seed=2)):
        store.append(record)
    args = ["catchup", "atlas-800i-a2-vs-dgx-h100", "--no-stability", "--format", "json", "--software-from", str(tmp_path / "engines")]  # fmt: skip
    status, out, err = cli_here(*args)
    assert status == 0, err
    measured = json.loads(out)["scenario"]["measured_software"]["constrained"]
    assert measured["value"] == pytest.approx(3.0, rel=0.05) and measured["low"] < measured["value"] < measured["high"]
    assert "llama.cpp / catchup-bench" in err and "measured/measured" in err
    status, _, err = cli_here(*args, "--software-engines", "vllm,llama.cpp")
    assert status == 2 and err.count("\n") == 1 and "'vllm' is not allowed" in err
    status, _, err = cli_here(*args, "--software-engines", "llama.cpp,llama.cpp")  # one record is no ratio
    assert status == 2 and err.count("\n") == 1 and "two different" in err
    status, _, err = cli_here(*args[:-2], "--software-from", str(tmp_path / "missing"))
    assert status == 2 and err.count("\n") == 1 and "--software-from" in err
