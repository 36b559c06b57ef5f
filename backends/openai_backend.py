"""`openai`: a serving engine measured from outside, over its OpenAI-compatible HTTP API.

vLLM, SGLang, TensorRT-LLM, TGI and llama.cpp's server on NVIDIA, MindIE and vLLM-Ascend on Ascend, and `bench
serve` here all speak it. The cell's workload names the catalogue entry the engine serves (its architecture, for
the report); `-O endpoint=URL` is where, `-O served_model=NAME` the name the engine knows it by (default: the
catalogue name). The prompt length is the spec's seq_len, the output length its new_tokens (max_tokens, with
vLLM's `ignore_eos` so every request runs to length where the engine honours it; the record keeps the tokens each
request really produced, from the server's `usage`).

Prompts (seeded): with `-O tokenizer=DIR` (a local Hugging Face tokenizer) random token ids decoded to text, so
the engine's tokenizer sees about seq_len tokens; otherwise the synthetic corpus: seq_len words drawn from
`SYNTHETIC_WORDS` -- exactly seq_len tokens for `bench serve` (one word, one token), roughly 1-1.5 tokens per word
for BPE tokenizers. The record holds the prompt tokens the server reported.

Secrets: an API key is read from $OPENAI_API_KEY (or the variable `-O api_key_env=NAME` names) and sent as a
bearer token; it is never recorded. The endpoint is recorded without user information or query string.

Failure handling: a refused connection, a timeout, an HTTP error status or a malformed stream fails that request
(counted and described in the record); the load goes on. `probe()` needs only aiohttp; an unreachable endpoint is
found at plan time (one line, exit 2) by `check_endpoint`.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, ClassVar

from backends.base import Availability, Capabilities, OptionSpec, PreparedCall, RemoteBackend
from bench.core.calls import StreamedRequest
from bench.core.errors import UsageError

if TYPE_CHECKING:
    from bench.core.spec import BenchmarkSpec
    from models.base import Workload

__all__ = ["OpenAIBackend", "OpenAIClient", "check_endpoint", "synthetic_prompt", "SYNTHETIC_WORDS"]

#: The synthetic corpus: common English words; a prompt is seq_len of them drawn with a seeded generator.
SYNTHETIC_WORDS = tuple(
    "the of and to in is was for on that with as by at from his it an were are which this be has or had first one "
    "their its new after who they have her she two been other when there all during into school time may years "
    "more most only over city some world would where later up such used many can state about national out known "
    "university united then made".split()
)

DEFAULT_TIMEOUT_S = 120.0


def public_endpoint(url: str) -> str:
    """The endpoint as recorded: scheme, host, port and path; no user, password, query or fragment."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def check_endpoint_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"options.endpoint: {url!r} is not allowed; expected an http(s) URL, e.g. http://127.0.0.1:8000"
        )
    return url.rstrip("/")


def synthetic_prompt(length: int, seed: int, tokenizer: Any = None) -> str:
    """A seeded prompt of about `length` tokens (exactly, for the synthetic word tokenizer of `bench serve`)."""
    rng = random.Random(seed)
    if tokenizer is not None:
        ids = [rng.randrange(100, tokenizer.vocab_size) for _ in range(length)]
        return tokenizer.decode(ids)
    return " ".join(rng.choice(SYNTHETIC_WORDS) for _ in range(length))


class OpenAIClient:
    """Streaming requests to one endpoint on an aiohttp session (one per event loop)."""

    def __init__(
        self, endpoint: str, api: str, model: str, timeout_s: float, ignore_eos: bool, api_key: str | None = None
    ) -> None:
        self.endpoint, self.api, self.model = endpoint, api, model
        self.timeout_s, self.ignore_eos, self.api_key = timeout_s, ignore_eos, api_key
        self.session = None

    async def __aenter__(self) -> "OpenAIClient":
        import aiohttp

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        self.session = aiohttp.ClientSession(
            headers=headers, connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout_s)
        )
        return self

    async def __aexit__(self, *exc) -> None:
        await self.session.close()

    def _body(self, prompt: str, max_tokens: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_tokens,
            "stream": True,
            "temperature": 0.0,
            "stream_options": {"include_usage": True},
        }
        if self.ignore_eos:
            body.update(ignore_eos=True, min_tokens=max_tokens)
        if self.api == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        return body

    async def identity(self) -> dict[str, Any]:
        """What serves the endpoint: /v1/models (model ids, owner, engine where given) and the Server header."""
        async with self.session.get(f"{self.endpoint}/v1/models") as response:
            data = await response.json(content_type=None)
            server = response.headers.get("Server")
        models = [m for m in (data.get("data") or []) if isinstance(m, dict)]
        served = next((m for m in models if m.get("id") == self.model), models[0] if models else {})
        return {
            "server_header": server,
            "models": [m.get("id") for m in models],
            "model": served.get("id"),
            "owned_by": served.get("owned_by"),
            "engine": served.get("engine"),
            "max_model_len": served.get("max_model_len"),
        }

    async def request(self, prompt: str, max_tokens: int, on_token: Any = None) -> StreamedRequest:
        """One streaming request; never raises for a request-level failure (it is returned, with the reason).
        `on_token()` is called as each content chunk arrives (LoadGen's first-token report)."""
        import aiohttp

        path = "/v1/chat/completions" if self.api == "chat" else "/v1/completions"
        start = time.perf_counter_ns()
        tokens: list[int] = []
        usage: dict[str, Any] = {}
        try:
            async with self.session.post(f"{self.endpoint}{path}", json=self._body(prompt, max_tokens)) as response:
                if response.status != 200:
                    text = (await response.text())[:200].replace("\n", " ")
                    return StreamedRequest(
                        False, start, tokens, time.perf_counter_ns(), error=f"HTTP {response.status}: {text}"
                    )
                async for raw in response.content:
                    line = raw.decode("utf-8", "replace").strip()
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        break
                    chunk = json.loads(payload)
                    if not isinstance(chunk, dict):
                        raise ValueError("a stream chunk is not a JSON object")
                    if chunk.get("error"):
                        message = chunk["error"].get("message") if isinstance(chunk["error"], dict) else chunk["error"]
                        raise ValueError(f"server error in stream: {message}")
                    if chunk.get("usage"):
                        usage = chunk["usage"]
                    if any(_content(choice) for choice in chunk.get("choices") or []):
                        tokens.append(time.perf_counter_ns())
                        if on_token is not None:
                            on_token()
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, UnicodeError) as exc:
            kind = "timeout" if isinstance(exc, asyncio.TimeoutError) else type(exc).__name__
            return StreamedRequest(False, start, tokens, time.perf_counter_ns(), error=f"{kind}: {str(exc)[:200]}")
        end = time.perf_counter_ns()
        if not tokens:
            return StreamedRequest(False, start, tokens, end, error="malformed stream: no content chunk before [DONE]")
        return StreamedRequest(
            True,
            start,
            tokens,
            end,
            output_tokens=usage.get("completion_tokens"),
            prompt_tokens=usage.get("prompt_tokens"),
        )


def _content(choice: Any) -> str:
    if not isinstance(choice, dict):
        return ""
    delta = choice.get("delta")
    return (delta.get("content") or "") if isinstance(delta, dict) else (choice.get("text") or "")


def check_endpoint(endpoint: str, timeout_s: float = 10.0) -> None:
    """One-line UsageError unless GET /v1/models answers (called at plan time, before anything runs)."""
    import aiohttp

    async def probe() -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
            async with session.get(f"{endpoint}/v1/models") as response:
                if response.status >= 500:
                    raise UsageError(f"options.endpoint: {public_endpoint(endpoint)!r} answered HTTP {response.status}")

    try:
        asyncio.run(probe())
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else str(exc).strip()[:150] or type(exc).__name__
        raise UsageError(f"options.endpoint: {public_endpoint(endpoint)!r} cannot be reached: {reason}") from None


class OpenAIBackend(RemoteBackend):
    name: ClassVar[str] = "openai"
    summary: ClassVar[str] = (
        "a serving engine over its OpenAI-compatible API (vLLM, SGLang, TGI, llama.cpp, MindIE, "
        "bench serve); -O endpoint=URL"
    )
    libraries: ClassVar[tuple[str, ...]] = ("aiohttp",)
    in_wildcard: ClassVar[bool] = False  # needs an endpoint
    capabilities: ClassVar[Capabilities] = Capabilities(
        precisions=("served",),
        options={
            "endpoint": OptionSpec(str, "base URL of the engine, e.g. http://127.0.0.1:8000 (required)"),
            "served_model": OptionSpec(str, "the model's name at the endpoint (default: the catalogue name)"),
            "api": OptionSpec(str, "completions or chat", choices=("completions", "chat"), default="completions"),
            "concurrency": OptionSpec(int, "requests in flight at most", minimum=1, default=1),
            "request_rate": OptionSpec(
                float, "Poisson arrivals per second (0: as fast as concurrency allows)", minimum=0, default=0.0
            ),
            "requests": OptionSpec(int, "requests per cell (default 32)", minimum=1, default=32),
            "request_timeout_s": OptionSpec(float, "per request", minimum=0.1, default=DEFAULT_TIMEOUT_S),
            "ignore_eos": OptionSpec(bool, "ask the engine to run every request to max_tokens", default=True),
            "tokenizer": OptionSpec(str, "local tokenizer directory for prompts of exact token length"),
            "seed": OptionSpec(int, "prompt and arrival seed", minimum=0, default=0),
            "slo_ttft_ms": OptionSpec(float, "goodput: TTFT bound", minimum=0),
            "slo_tpot_ms": OptionSpec(float, "goodput: TPOT bound", minimum=0),
            "slo_e2e_ms": OptionSpec(float, "goodput: end-to-end latency bound", minimum=0),
            "api_key_env": OptionSpec(str, "environment variable holding the API key", default="OPENAI_API_KEY"),
        },
        generation=True,
        loadgen=True,
        device="remote",
        kind="remote",
    )

    @classmethod
    def probe(cls) -> Availability:
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            return Availability(False, "aiohttp is not installed: pip install 'catchup-bench[serve]'")
        return Availability(True)

    @classmethod
    def validate_spec(cls, spec: "BenchmarkSpec", workload: "Workload | None" = None) -> None:
        super().validate_spec(spec, workload)
        endpoint = spec.option("endpoint")
        if not endpoint:
            raise UsageError(f"options.endpoint: missing for backend {cls.name}; expected -O endpoint=http://HOST:PORT")
        check_endpoint_url(str(endpoint))
        if workload is not None and workload.task != "generate":
            raise UsageError(
                f"model: {workload.name!r} is not allowed on backend {cls.name}; expected a generation "
                "model (the API serves text generation)"
            )

    @classmethod
    def check_ready(cls, spec: "BenchmarkSpec") -> None:
        check_endpoint(check_endpoint_url(str(spec.option("endpoint"))))

    def __init__(self, spec: "BenchmarkSpec") -> None:
        self.spec = spec
        self.endpoint = check_endpoint_url(str(spec.option("endpoint")))
        self.served_model = str(spec.option("served_model") or spec.workload)
        self.api_key = os.environ.get(str(spec.option("api_key_env", "OPENAI_API_KEY"))) or None

    def client(self) -> OpenAIClient:
        spec = self.spec
        return OpenAIClient(
            self.endpoint,
            str(spec.option("api", "completions")),
            self.served_model,
            float(spec.option("request_timeout_s", DEFAULT_TIMEOUT_S)),
            bool(spec.option("ignore_eos", True)),
            self.api_key,
        )

    def prompts(self, count: int) -> list[str]:
        """`count` seeded prompts of the spec's length."""
        tokenizer = None
        if self.spec.option("tokenizer"):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(self.spec.option("tokenizer")), local_files_only=True)
        seed = int(self.spec.option("seed", 0))
        return [synthetic_prompt(self.spec.seq_len or 128, seed * 1_000_003 + i, tokenizer) for i in range(count)]

    def prepare(self, workload: "Workload", spec: "BenchmarkSpec") -> PreparedCall:
        """For LoadGen scenarios (a network system under test): a call sends batch_size concurrent requests on
        this thread's event loop and stamps as the first request's tokens arrive; `take(rows)` sends those rows."""
        max_tokens = spec.new_tokens or workload.default_new_tokens or 16
        prompts = self.prompts(spec.batch_size)
        loop = asyncio.new_event_loop()
        client = self.client()
        loop.run_until_complete(client.__aenter__())

        def calls(rows: list[int]) -> PreparedCall:
            def call(stamp):
                first = loop.create_future()

                async def sent(row: int, report_first: bool) -> StreamedRequest:
                    result = await client.request(
                        prompts[row],
                        max_tokens,
                        on_token=((lambda: first.done() or first.set_result(stamp())) if report_first else None),
                    )
                    return result

                async def batch() -> list[StreamedRequest]:
                    return list(await asyncio.gather(*(sent(r, i == 0) for i, r in enumerate(rows))))

                results = loop.run_until_complete(batch())
                failed = [r for r in results if not r.ok]
                if failed:
                    raise RuntimeError(f"{len(failed)} of {len(results)} requests failed: {failed[0].error}")
                return [first.result(), stamp()]  # first token, then completion (LoadGen times samples itself)

            return PreparedCall(
                call=call,
                items_per_call=len(rows),
                tokens_per_call=len(rows) * max_tokens,
                facts={"technique": self.technique(spec)},
                uncountable="a remote engine's kernels",
                take=lambda taken: calls([rows[i] for i in taken]),
            )

        return calls(list(range(spec.batch_size)))

    def synchronize(self) -> None:
        pass

    def device_info(self) -> dict[str, Any]:
        return {
            "type": "remote",
            "name": f"{self.served_model} at {public_endpoint(self.endpoint)}",
            "endpoint": public_endpoint(self.endpoint),
            "api": self.spec.option("api", "completions"),
        }

    @staticmethod
    def technique(spec: "BenchmarkSpec") -> str:
        return f"engine at {public_endpoint(str(spec.option('endpoint')))} ({spec.option('api', 'completions')} API)"
