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
bearer token; without one, the endpoint's user information is sent as Basic auth. The endpoint option is declared
`credentials`: the spec every record, key and line holds has it redacted (bench.core.secrets), only the worker
gets the real one, and the key and credentials are scrubbed from whatever text a server sends back.

Failure handling: a refused connection, a timeout, an HTTP error status, a malformed stream or token counts that
contradict the stream fail that request (counted and described in the record); the load goes on. Nothing a server
sends can make the client hold more than the bounds below, or raise. `probe()` needs only aiohttp; an unreachable
or malformed endpoint is found at plan time (one line, exit 2) by `check_endpoint_url` and `check_endpoint`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, ClassVar

from backends.base import Availability, Capabilities, OptionSpec, PreparedCall, RemoteBackend
from bench.core.calls import StreamedRequest
from bench.core.errors import UsageError
from bench.core.secrets import redact_url, scrub, scrub_tree, url_secrets
from bench.core.spec import MAX_TOKENS

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

#: Bounds on the load one cell may ask for, checked at plan time: requests per cell, requests in flight, the
#: Poisson rate (0, or between the bounds: a rate near 0 would only wait for the cell's timeout), a request's
#: timeout, goodput bounds, and requests x max_tokens (the token stamps a record holds: about 20 MB of JSON).
MAX_REQUESTS = 100_000
MAX_CONCURRENCY = 1_024
MIN_REQUEST_RATE = 0.01
MAX_REQUEST_RATE = 100_000.0
MAX_REQUEST_TIMEOUT_S = 3_600.0
MAX_SLO_MS = 3_600_000.0
MAX_TOKEN_STAMPS = 2_000_000

#: What one server can make the client hold or accept (docs/SERVING-ENGINES.md, "What the client refuses").
ERROR_BODY_BYTES = 4096  # read of an error response's body (the rest is never read)
MODELS_BODY_BYTES = 1 << 20  # /v1/models
MAX_LINE_BYTES = 256 * 1024  # one line of the event stream
MAX_IDENTITY_TEXT = 200  # characters kept of each string the server describes itself with
MAX_MODEL_IDS = 16  # model ids kept from /v1/models
#: A reported token count may differ from what the stream shows by this fraction (plus one token) before the
#: request is counted as failed: at most max_tokens x (1 + tolerance) + 1 tokens, at least content chunks /
#: (1 + tolerance) - 1, at most MAX_TOKENS_PER_CHUNK tokens per content chunk.
TOKEN_COUNT_TOLERANCE = 0.10
MAX_TOKENS_PER_CHUNK = 16
#: Lines (events, keep-alives, empty deltas) one stream may send per content chunk it may send.
LINES_PER_CHUNK = 4


class MalformedStream(ValueError):
    """What the server sent cannot be a valid answer to the request (the request fails with this reason)."""


class ImplausibleUsage(ValueError):
    """The server's token counts contradict the stream it sent (the request fails with this reason)."""


def _url_parts(url: str) -> urllib.parse.SplitResult:
    """urlsplit with its port checked; ValueError (malformed, port out of range) as a one-line UsageError."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port out of range)
    except ValueError as exc:
        raise UsageError(
            f"options.endpoint: {redact_url(url)!r} is not allowed ({exc}); expected an http(s) URL, e.g. "
            "http://127.0.0.1:8000"
        ) from None
    return parts


def public_endpoint(url: str) -> str:
    """The endpoint as recorded: scheme, host, port and path; no user, password, query or fragment."""
    try:
        parts = _url_parts(url)
    except UsageError:
        return redact_url(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def check_endpoint_url(url: str) -> str:
    """The endpoint without a trailing slash, or a one-line UsageError (credentials and query values redacted)."""
    parts = _url_parts(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"options.endpoint: {redact_url(url)!r} is not allowed; expected an http(s) URL, e.g. http://127.0.0.1:8000"
        )
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), parts.query, ""))


def endpoint_url(endpoint: str, path: str) -> str:
    """`path` under the endpoint, keeping the endpoint's query string (e.g. an api-key parameter) after it."""
    parts = urllib.parse.urlsplit(endpoint)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + path, parts.query, ""))


def synthetic_prompt(length: int, seed: int, tokenizer: Any = None) -> str:
    """A seeded prompt of about `length` tokens (exactly, for the synthetic word tokenizer of `bench serve`)."""
    rng = random.Random(seed)
    if tokenizer is not None:
        ids = [rng.randrange(100, tokenizer.vocab_size) for _ in range(length)]
        return tokenizer.decode(ids)
    return " ".join(rng.choice(SYNTHETIC_WORDS) for _ in range(length))


def _no_constant(name: str) -> Any:
    raise MalformedStream(f"{name} is not a JSON number")


def _json(raw: bytes | str) -> Any:
    """JSON from a server: NaN/Infinity and nesting too deep for the parser are refused (MalformedStream)."""
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise MalformedStream("JSON nested too deeply") from None
    except UnicodeDecodeError:
        raise MalformedStream("not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise MalformedStream(f"not JSON ({exc.msg})") from None


def _text(value: Any) -> str | None:
    """A string the server describes itself with, cut to MAX_IDENTITY_TEXT characters; None if not a string."""
    return value[:MAX_IDENTITY_TEXT] if isinstance(value, str) else None


def _engine(value: Any) -> dict[str, str] | None:
    """The engine's name and version as strings (a bare string is its name); None for anything else."""
    if isinstance(value, str):
        return {"name": value[:MAX_IDENTITY_TEXT]}
    if not isinstance(value, dict):
        return None
    found = {k: _text(value.get(k)) for k in ("name", "version")}
    return {k: v for k, v in found.items() if v} or None


def _identity(data: Any, model: str, server: str | None) -> dict[str, Any]:
    """What the record keeps of /v1/models: typed, each string cut short, at most MAX_MODEL_IDS ids."""
    listed = data.get("data") if isinstance(data, dict) else None
    models = [m for m in listed if isinstance(m, dict)] if isinstance(listed, list) else []
    served = next((m for m in models if m.get("id") == model), models[0] if models else {})
    length = served.get("max_model_len")
    return {
        "server_header": _text(server),
        "models": [_text(m.get("id")) for m in models[:MAX_MODEL_IDS]],
        "model": _text(served.get("id")),
        "owned_by": _text(served.get("owned_by")),
        "engine": _engine(served.get("engine")),
        "max_model_len": length if isinstance(length, int) and not isinstance(length, bool) and length > 0 else None,
    }


def _content(choice: Any) -> bool:
    """Whether a choice of a chunk carries output text (a string; anything else is no content)."""
    if not isinstance(choice, dict):
        return False
    delta = choice.get("delta")
    text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
    return isinstance(text, str) and bool(text)


def _chunk(payload: str) -> tuple[bool, dict[str, Any] | None]:
    """One `data:` payload -> (whether it carries content, its usage object or None); MalformedStream else."""
    chunk = _json(payload)
    if not isinstance(chunk, dict):
        raise MalformedStream("a chunk is not a JSON object")
    error = chunk.get("error")
    if error:
        message = error.get("message") if isinstance(error, dict) else error
        raise MalformedStream(f"server error in stream: {str(message)[:MAX_IDENTITY_TEXT]}")
    usage = chunk.get("usage")
    if usage is not None and not isinstance(usage, dict):
        raise MalformedStream(f"usage is a JSON {type(usage).__name__}, not an object")
    choices = chunk.get("choices")
    if choices is not None and not isinstance(choices, list):
        raise MalformedStream(f"choices is a JSON {type(choices).__name__}, not a list")
    return any(_content(choice) for choice in choices or []), usage or None


def _count(usage: dict[str, Any], name: str) -> int | None:
    value = usage.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS:
        raise ImplausibleUsage(f"usage.{name} {str(value)[:40]!r} is not a token count")
    return value


def checked_usage(usage: dict[str, Any] | None, chunks: int, max_tokens: int) -> tuple[int | None, int | None]:
    """(completion tokens, prompt tokens) the server reported, or ImplausibleUsage where they contradict the
    stream (see TOKEN_COUNT_TOLERANCE); (None, None) when the server reported none."""
    if not usage:
        return None, None
    output, prompt = _count(usage, "completion_tokens"), _count(usage, "prompt_tokens")
    if output is None:
        return None, prompt
    slack = 1 + TOKEN_COUNT_TOLERANCE
    if output > max_tokens * slack + 1:
        raise ImplausibleUsage(f"usage.completion_tokens {output} is more than max_tokens {max_tokens}")
    if output < chunks / slack - 1 or output > chunks * MAX_TOKENS_PER_CHUNK:
        raise ImplausibleUsage(f"usage.completion_tokens {output} for {chunks} content chunks")
    return output, prompt


async def _read_at_most(content: Any, limit: int) -> bytes:
    """Up to `limit` bytes of a body (what arrives until then or the end): never more is read or held."""
    data = bytearray()
    while len(data) < limit:
        block = await content.read(limit - len(data))
        if not block:
            break
        data += block
    return bytes(data)


async def _lines(content: Any, limit: int = MAX_LINE_BYTES) -> Any:
    """The lines of a response body, each at most `limit` bytes (MalformedStream beyond: nothing longer is held)."""
    buffer = b""
    async for block in content.iter_any():
        buffer += block
        *whole, buffer = buffer.split(b"\n")
        for line in whole:
            if len(line) > limit:
                raise MalformedStream(f"a line over {limit // 1024} KiB")
            yield line
        if len(buffer) > limit:
            raise MalformedStream(f"a line over {limit // 1024} KiB")
    if buffer:
        yield buffer


class OpenAIClient:
    """Streaming requests to one endpoint on an aiohttp session (one per event loop). Nothing a server sends can
    make it hold more than the bounds above per request, or raise: every problem is that request's failure,
    with a reason scrubbed of the API key and the endpoint's credentials."""

    def __init__(
        self, endpoint: str, api: str, model: str, timeout_s: float, ignore_eos: bool, api_key: str | None = None
    ) -> None:
        parts = urllib.parse.urlsplit(endpoint)
        self.user = (urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password or ""))
        netloc = parts.netloc.rpartition("@")[2]  # user information is sent as Basic auth, not in the URL
        self.endpoint = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        self.api, self.model = api, model
        self.timeout_s, self.ignore_eos, self.api_key = timeout_s, ignore_eos, api_key
        self.secrets = tuple(filter(None, (api_key, *url_secrets(endpoint))))
        self.session = None

    async def __aenter__(self) -> "OpenAIClient":
        import aiohttp

        headers = {}
        if self.api_key:  # the API key wins over user information in the endpoint
            headers["Authorization"] = f"Bearer {self.api_key}"
        elif any(self.user):
            headers["Authorization"] = "Basic " + base64.b64encode(":".join(self.user).encode()).decode()
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        self.session = aiohttp.ClientSession(
            headers=headers, connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout_s)
        )
        return self

    async def __aexit__(self, *exc) -> None:
        await self.session.close()

    def scrub(self, text: str) -> str:
        """Server or library text as it may be stored: one line, short, without a secret (bench.core.secrets)."""
        return scrub(" ".join(str(text).split())[:MAX_IDENTITY_TEXT], self.secrets)

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
        """What serves the endpoint: /v1/models (model ids, owner, engine where given) and the Server header,
        typed and cut short (`_identity`); {"error": why} when it cannot be read."""
        try:
            async with self.session.get(endpoint_url(self.endpoint, "/v1/models")) as response:
                raw = await _read_at_most(response.content, MODELS_BODY_BYTES + 1)
                server = response.headers.get("Server")
                response.close()
            if len(raw) > MODELS_BODY_BYTES:
                raise MalformedStream(f"/v1/models: more than {MODELS_BODY_BYTES // 1024} KiB")
            return scrub_tree(_identity(_json(raw), self.model, server), self.secrets)
        except Exception as exc:  # identity is informative; the load decides whether the run worked
            return {"error": self.scrub(f"{type(exc).__name__}: {exc}")}

    async def request(self, prompt: str, max_tokens: int, on_token: Any = None) -> StreamedRequest:
        """One streaming request; never raises for a request-level failure (it is returned, with the reason).
        `on_token()` is called as each content chunk arrives (LoadGen's first-token report)."""
        path = "/v1/chat/completions" if self.api == "chat" else "/v1/completions"
        start = time.perf_counter_ns()
        tokens: list[int] = []
        try:
            url, body = endpoint_url(self.endpoint, path), self._body(prompt, max_tokens)
            async with self.session.post(url, json=body) as response:
                if response.status != 200:
                    text = (await _read_at_most(response.content, ERROR_BODY_BYTES)).decode("utf-8", "replace")
                    response.close()  # the rest of the body is never read
                    error = f"HTTP {response.status}: {self.scrub(text)}"
                    return StreamedRequest(False, start, tokens, time.perf_counter_ns(), error=error)
                usage = await self._read_stream(response, max_tokens, tokens, on_token)
            output, prompt_tokens = checked_usage(usage, len(tokens), max_tokens)
        except Exception as exc:  # any request-level failure is that request's, with its reason
            kind = _failure_kind(exc)
            return StreamedRequest(False, start, tokens, time.perf_counter_ns(), error=f"{kind}: {self.scrub(exc)}")
        end = time.perf_counter_ns()
        if not tokens:
            return StreamedRequest(False, start, tokens, end, error="malformed stream: no content chunk before [DONE]")
        return StreamedRequest(True, start, tokens, end, output_tokens=output, prompt_tokens=prompt_tokens)

    async def _read_stream(self, response: Any, max_tokens: int, tokens: list[int], on_token: Any) -> dict | None:
        """Read the event stream to [DONE], stamping each content chunk into `tokens`; the last usage object."""
        most_chunks = int(max_tokens * (1 + TOKEN_COUNT_TOLERANCE)) + 1
        most_lines = LINES_PER_CHUNK * most_chunks + 64
        usage, lines = None, 0
        async for raw in _lines(response.content):
            lines += 1
            if lines > most_lines:
                raise MalformedStream(f"more than {most_lines} lines for max_tokens {max_tokens}")
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                return usage
            content, chunk_usage = _chunk(payload)
            usage = chunk_usage or usage
            if content:
                tokens.append(time.perf_counter_ns())
                if len(tokens) > most_chunks:
                    raise MalformedStream(f"more than {most_chunks} content chunks for max_tokens {max_tokens}")
                if on_token is not None:
                    on_token()
        raise MalformedStream("the stream ended without [DONE]")


def _failure_kind(exc: BaseException) -> str:
    """The reason's first word(s), by which failures are counted (`serving.failure_reasons`)."""
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, ImplausibleUsage):
        return "implausible usage"
    if isinstance(exc, MalformedStream):
        return "malformed stream"
    return type(exc).__name__


def check_endpoint(endpoint: str, timeout_s: float = 10.0) -> None:
    """One-line UsageError unless GET /v1/models answers (called at plan time, before anything runs)."""
    import aiohttp

    async def probe() -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
            async with session.get(endpoint_url(endpoint, "/v1/models")) as response:
                if response.status >= 500:
                    raise UsageError(f"options.endpoint: {public_endpoint(endpoint)!r} answered HTTP {response.status}")
                response.close()

    try:
        asyncio.run(probe())
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
        if isinstance(exc, UsageError):
            raise
        reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else str(exc).strip()[:150] or type(exc).__name__
        reason = scrub(reason, url_secrets(endpoint))
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
            "endpoint": OptionSpec(
                str, "base URL of the engine, e.g. http://127.0.0.1:8000 (required)", credentials=True
            ),
            "served_model": OptionSpec(str, "the model's name at the endpoint (default: the catalogue name)"),
            "api": OptionSpec(str, "completions or chat", choices=("completions", "chat"), default="completions"),
            "concurrency": OptionSpec(int, "requests in flight at most", minimum=1, maximum=MAX_CONCURRENCY, default=1),
            "request_rate": OptionSpec(
                float,
                f"Poisson arrivals per second (0: as fast as concurrency allows; else >= {MIN_REQUEST_RATE:g})",
                minimum=0,
                maximum=MAX_REQUEST_RATE,
                default=0.0,
            ),
            "requests": OptionSpec(int, "requests per cell (default 32)", minimum=1, maximum=MAX_REQUESTS, default=32),
            "request_timeout_s": OptionSpec(
                float, "per request", minimum=0.1, maximum=MAX_REQUEST_TIMEOUT_S, default=DEFAULT_TIMEOUT_S
            ),
            "ignore_eos": OptionSpec(bool, "ask the engine to run every request to max_tokens", default=True),
            "tokenizer": OptionSpec(str, "local tokenizer directory for prompts of exact token length"),
            "seed": OptionSpec(int, "prompt and arrival seed", minimum=0, maximum=2**32 - 1, default=0),
            "slo_ttft_ms": OptionSpec(float, "goodput: TTFT bound", minimum=0, maximum=MAX_SLO_MS),
            "slo_tpot_ms": OptionSpec(float, "goodput: TPOT bound", minimum=0, maximum=MAX_SLO_MS),
            "slo_e2e_ms": OptionSpec(float, "goodput: end-to-end latency bound", minimum=0, maximum=MAX_SLO_MS),
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
        rate = float(spec.option("request_rate", 0.0))
        if 0 < rate < MIN_REQUEST_RATE:
            raise UsageError(
                f"options.request_rate: {rate:g} is not allowed; expected 0 (closed loop) or a rate >= {MIN_REQUEST_RATE:g}"
            )
        max_tokens = spec.new_tokens or (workload.default_new_tokens if workload is not None else None) or 16
        stamps = int(spec.option("requests", 32)) * max_tokens
        if stamps > MAX_TOKEN_STAMPS:
            raise UsageError(
                f"options.requests: {spec.option('requests', 32)} x {max_tokens} new tokens = {stamps:,} token stamps "
                f"is not allowed; expected at most {MAX_TOKEN_STAMPS:,} per cell (fewer requests or tokens)"
            )
        if workload is not None and workload.task != "generate":
            raise UsageError(
                f"model: {workload.name!r} is not allowed on backend {cls.name}; expected a generation "
                "model (the API serves text generation)"
            )

    @classmethod
    def secret_values(cls, spec: "BenchmarkSpec") -> tuple[str, ...]:
        """The endpoint's credentials and the API key (never stored; scrubbed from any server text)."""
        key = os.environ.get(str(spec.option("api_key_env", "OPENAI_API_KEY")))
        return (*super().secret_values(spec), *((key,) if key else ()))

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
