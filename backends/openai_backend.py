"""`openai`: a serving engine measured from outside, over its OpenAI-compatible HTTP API.

vLLM, SGLang, TensorRT-LLM, TGI, llama.cpp's server and `transformers serve`, MindIE and vLLM-Ascend on Ascend, and
`bench serve` here all speak it. The cell's workload names the catalogue entry the engine serves (its architecture,
for the report); `-O endpoint=URL` is where, `-O served_model=NAME` the name the engine knows it by (default: the
catalogue name). The prompt length is the spec's seq_len, the output length its new_tokens (max_tokens, with
vLLM's `ignore_eos` and `min_tokens` where the engine takes them; the record keeps the tokens each request really
produced, from the server's `usage`).

The parts: prompts of exact length (`backends.openai_prompts`), the probe of the engine before its load -- identity,
fields it refuses, token-id prompts (`backends.openai_probe`, `backends.openai_identity`), the streaming client
with its connection policy (`backends.openai_client`), and the bounded reading of what a server sends
(`backends.openai_stream`). This module declares the options, checks a cell before anything runs, and puts the
parts together for the worker (`probe_engine`, `prompt_sets`, `client`) and for LoadGen (`prepare`).

Secrets: an API key is read from $OPENAI_API_KEY (or the variable `-O api_key_env=NAME` names) and sent as a
bearer token; without one, the endpoint's user information is sent as Basic auth. The endpoint option is declared
`credentials`: the spec every record, key and line holds has it redacted (bench.core.secrets), only the worker
gets the real one, and the key and credentials are scrubbed from whatever text a server sends back.

Before anything runs (`check_ready`, once per cell's options): the endpoint answers GET /v1/models, and the probe
finds no field of `-O extra_body` refused (else one line naming the field, exit 2, nothing written).
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from backends.base import Availability, Capabilities, OptionSpec, PreparedCall, RemoteBackend
from backends.openai_client import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_RETRIES,
    OpenAIClient,
    endpoint_url,
    fresh_cache_salt,
)
from backends.openai_probe import Probe, probe_engine
from backends.openai_prompts import PROBE_STREAM, SYNTHETIC_WORDS, WARMUP_STREAM, PromptMaker, synthetic_prompt
from backends.openai_stream import ERROR_BODY_BYTES, ImplausibleUsage, MalformedStream, checked_usage
from bench.core.calls import StreamedRequest
from bench.core.errors import UsageError
from bench.core.secrets import redact_url, scrub, url_secrets

if TYPE_CHECKING:
    from bench.core.spec import BenchmarkSpec
    from models.base import Workload

__all__ = [
    "OpenAIBackend",
    "OpenAIClient",
    "check_endpoint",
    "check_endpoint_url",
    "public_endpoint",
    "parse_extra_body",
    "synthetic_prompt",
    "SYNTHETIC_WORDS",
    "ERROR_BODY_BYTES",
    "ImplausibleUsage",
    "MalformedStream",
    "checked_usage",
]

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
#: Distinct timed prompts made per cell (a longer load sends them again, in order).
MAX_PROMPTS = 1024
#: extra_body: its JSON text at most this long; fields the client sets itself are refused in it.
MAX_EXTRA_BODY = 16 * 1024
RESERVED_FIELDS = ("prompt", "messages", "stream", "max_tokens", "max_completion_tokens")
#: Files one of which a local Hugging Face tokenizer directory holds.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "vocab.txt")
#: engine_name: NAME[/VERSION], printable, at most this long.
MAX_ENGINE_NAME = 100
#: How `-O prefix_cache=off` reaches each engine that has a per-request switch (by the engine's name).
PREFIX_CACHE_SWITCHES = {"llama.cpp": "cache_prompt: false", "vllm": "a fresh cache_salt per request"}


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


def parse_extra_body(value: Any) -> dict[str, Any]:
    """`-O extra_body=JSON` as a dict, or a one-line UsageError: not JSON, not an object, too long, or setting a
    field the client sets itself (RESERVED_FIELDS)."""
    if value is None or value == "":
        return {}
    text = str(value)
    shown = text if len(text) <= 80 else text[:77] + "..."
    expected = "expected a JSON object, e.g. extra_body='{\"cache_prompt\": false}'"
    if len(text) > MAX_EXTRA_BODY:
        raise UsageError(
            f"options.extra_body: {len(text)} characters is not allowed; expected at most {MAX_EXTRA_BODY}"
        )
    try:
        parsed = json.loads(text, parse_constant=lambda name: float("nan"))
    except (ValueError, RecursionError) as exc:
        raise UsageError(
            f"options.extra_body: {shown!r} is not allowed (not JSON: {str(exc)[:60]}); {expected}"
        ) from None
    if not isinstance(parsed, dict):
        raise UsageError(f"options.extra_body: {shown!r} is not allowed (a JSON {type(parsed).__name__}); {expected}")
    reserved = [k for k in RESERVED_FIELDS if k in parsed]
    if reserved:
        raise UsageError(
            f"options.extra_body: field {reserved[0]!r} is not allowed; expected fields other than "
            f"{', '.join(RESERVED_FIELDS)} (the client sets those; --new-tokens sets max_tokens)"
        )
    return parsed


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


def _options() -> dict[str, OptionSpec]:
    """The options of the `openai` backend (docs/SERVING-ENGINES.md, "Options of the openai backend")."""
    on_off = ("on", "off")
    return {
        "endpoint": OptionSpec(str, "base URL of the engine, e.g. http://127.0.0.1:8000 (required)", credentials=True),
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
            float, "per request (each attempt)", minimum=0.1, maximum=MAX_REQUEST_TIMEOUT_S, default=DEFAULT_TIMEOUT_S
        ),
        "connect_timeout_s": OptionSpec(
            float, "connection set-up, per attempt", minimum=0.1, maximum=600.0, default=DEFAULT_CONNECT_TIMEOUT_S
        ),
        "retries": OptionSpec(
            int, "resend a request that failed before any response byte", minimum=0, maximum=10, default=DEFAULT_RETRIES
        ),
        "keepalive": OptionSpec(str, "keep connections alive between requests", choices=on_off, default="on"),
        "ignore_eos": OptionSpec(bool, "ask the engine to run every request to max_tokens", default=True),
        "extra_body": OptionSpec(str, "a JSON object merged into every request body"),
        "prefix_cache": OptionSpec(
            str, "off: the engine's per-request switch, where it has one", choices=on_off, default="on"
        ),
        "prompts": OptionSpec(
            str, "token ids, text trimmed to length, or auto", choices=("auto", "ids", "text"), default="auto"
        ),
        "engine_name": OptionSpec(str, "NAME[/VERSION] of an engine that does not say what it is"),
        "tokenizer": OptionSpec(str, "local tokenizer directory for prompts of exact token length"),
        "seed": OptionSpec(int, "prompt and arrival seed", minimum=0, maximum=2**32 - 1, default=0),
        "slo_ttft_ms": OptionSpec(float, "goodput: TTFT bound", minimum=0, maximum=MAX_SLO_MS),
        "slo_tpot_ms": OptionSpec(float, "goodput: TPOT bound", minimum=0, maximum=MAX_SLO_MS),
        "slo_e2e_ms": OptionSpec(float, "goodput: end-to-end latency bound", minimum=0, maximum=MAX_SLO_MS),
        "api_key_env": OptionSpec(str, "environment variable holding the API key", default="OPENAI_API_KEY"),
    }


class OpenAIBackend(RemoteBackend):
    name: ClassVar[str] = "openai"
    summary: ClassVar[str] = (
        "a serving engine over its OpenAI-compatible API (vLLM, SGLang, TGI, llama.cpp, transformers serve, "
        "MindIE, bench serve); -O endpoint=URL"
    )
    libraries: ClassVar[tuple[str, ...]] = ("aiohttp",)
    in_wildcard: ClassVar[bool] = False  # needs an endpoint
    capabilities: ClassVar[Capabilities] = Capabilities(
        precisions=("served",), options=_options(), generation=True, loadgen=True, device="remote", kind="remote"
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
        parse_extra_body(spec.option("extra_body"))
        rate = float(spec.option("request_rate", 0.0))
        if 0 < rate < MIN_REQUEST_RATE:
            raise UsageError(
                f"options.request_rate: {rate:g} is not allowed; expected 0 (closed loop) or a rate >= {MIN_REQUEST_RATE:g}"
            )
        cls._check_load(spec, workload)

    @classmethod
    def _check_load(cls, spec: "BenchmarkSpec", workload: "Workload | None") -> None:
        max_tokens = spec.new_tokens or (workload.default_new_tokens if workload is not None else None) or 16
        stamps = int(spec.option("requests", 32)) * max_tokens
        if stamps > MAX_TOKEN_STAMPS:
            raise UsageError(
                f"options.requests: {spec.option('requests', 32)} x {max_tokens} new tokens = {stamps:,} token stamps "
                f"is not allowed; expected at most {MAX_TOKEN_STAMPS:,} per cell (fewer requests or tokens)"
            )
        cls._check_prompts(spec)
        for key in ("slo_ttft_ms", "slo_tpot_ms", "slo_e2e_ms"):
            value = spec.option(key)
            if value is not None and float(value) <= 0:
                raise UsageError(
                    f"options.{key}: {value!r} is not allowed; expected a bound > 0 ms (leave it out for no bound)"
                )
        named = spec.option("engine_name")
        if named is not None and (not str(named).isprintable() or not 0 < len(str(named)) <= MAX_ENGINE_NAME):
            raise UsageError(
                f"options.engine_name: {str(named)[:60]!r} is not allowed; expected NAME[/VERSION], printable "
                f"characters, 1 to {MAX_ENGINE_NAME} of them"
            )
        if workload is not None and workload.task != "generate":
            raise UsageError(
                f"model: {workload.name!r} is not allowed on backend {cls.name}; expected a generation "
                "model (the API serves text generation)"
            )

    @classmethod
    def _check_prompts(cls, spec: "BenchmarkSpec") -> None:
        """`prompts` and `tokenizer` that can work together: ids or text need a tokenizer directory (one of
        TOKENIZER_FILES in it), and the chat API takes text only."""
        prompts, tokenizer = spec.option("prompts", "auto"), spec.option("tokenizer")
        if prompts != "auto" and not tokenizer:
            raise UsageError(
                f"options.prompts: {prompts!r} is not allowed without a tokenizer; expected "
                "-O tokenizer=DIR with it, or prompts=auto"
            )
        if prompts == "ids" and spec.option("api", "completions") == "chat":
            raise UsageError(
                "options.prompts: 'ids' is not allowed with api=chat; expected prompts=text or auto (the chat API "
                "takes text; token ids go to /v1/completions)"
            )
        if tokenizer:
            path = Path(str(tokenizer))
            why = ("does not exist" if not path.exists() else "is not a directory" if not path.is_dir()
                   else None if any((path / f).is_file() for f in TOKENIZER_FILES) else "holds no tokenizer file")  # fmt: skip
            if why:
                raise UsageError(
                    f"options.tokenizer: {str(tokenizer)!r} is not allowed ({why}); expected a local Hugging Face "
                    f"tokenizer directory (with {' or '.join(TOKENIZER_FILES[:2])}), e.g. the served model's"
                )

    @classmethod
    def least_seconds(cls, spec: "BenchmarkSpec") -> float:
        """Poisson arrivals at `request_rate`: `requests` of them take requests / rate on average."""
        rate = float(spec.option("request_rate", 0.0))
        return int(spec.option("requests", 32)) / rate if rate > 0 else 0.0

    @classmethod
    def secret_environment(cls, spec: "BenchmarkSpec") -> tuple[str, ...]:
        """The variable holding the API key (`api_key_env`, default OPENAI_API_KEY)."""
        return (str(spec.option("api_key_env", "OPENAI_API_KEY")),)

    @classmethod
    def check_ready(cls, spec: "BenchmarkSpec") -> None:
        """The endpoint answers, and the engine refuses no field of extra_body (a probe with a text prompt)."""
        check_endpoint(check_endpoint_url(str(spec.option("endpoint"))))
        if spec.option("extra_body"):
            cls(spec).probe_engine(with_tokenizer=False)

    def __init__(self, spec: "BenchmarkSpec") -> None:
        self.spec = spec
        self.endpoint = check_endpoint_url(str(spec.option("endpoint")))
        self.served_model = str(spec.option("served_model") or spec.workload)
        self.api_key = os.environ.get(str(spec.option("api_key_env", "OPENAI_API_KEY"))) or None
        self.found: Probe | None = None
        self._tokenizer: Any = None

    def client(self, found: Probe | None = None) -> OpenAIClient:
        """A client with the spec's connection policy and body, less the fields the probe found refused."""
        spec, found = self.spec, found or self.found
        client = OpenAIClient(
            self.endpoint,
            str(spec.option("api", "completions")),
            self.served_model,
            float(spec.option("request_timeout_s", DEFAULT_TIMEOUT_S)),
            bool(spec.option("ignore_eos", True)),
            self.api_key,
            keepalive=spec.option("keepalive", "on") == "on",
            retries=int(spec.option("retries", DEFAULT_RETRIES)),
            connect_timeout_s=float(spec.option("connect_timeout_s", DEFAULT_CONNECT_TIMEOUT_S)),
            extra_body=parse_extra_body(spec.option("extra_body")),
            drop=set(found.dropped) if found else set(),
        )
        if found is not None:
            client.known_identity = found.identity
            self._prefix_switch(client, found)
        return client

    def _prefix_switch(self, client: OpenAIClient, found: Probe) -> None:
        """`-O prefix_cache=off` as the engine's per-request switch (PREFIX_CACHE_SWITCHES), where it has one."""
        if self.spec.option("prefix_cache", "on") != "off":
            return
        name = (found.identity.get("engine_identity") or {}).get("name")
        if name == "llama.cpp":
            client.extra_body.setdefault("cache_prompt", False)
        elif name == "vllm":
            client.per_request = fresh_cache_salt

    def _maker(self, method: str | None = None) -> PromptMaker:
        spec = self.spec
        if spec.option("tokenizer") and self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(spec.option("tokenizer")), local_files_only=True)
        chat = spec.option("api", "completions") == "chat"
        if method is None:
            wanted = str(spec.option("prompts", "auto"))
            ids_ok = not chat and (self.found is None or self.found.ids_accepted is not False)
            method = "words" if self._tokenizer is None else "ids" if wanted == "ids" or (wanted == "auto" and ids_ok) else "text"  # fmt: skip
        return PromptMaker(spec.seq_len or 128, int(spec.option("seed", 0)), self._tokenizer, method, chat)

    def probe_engine(self, with_tokenizer: bool = True) -> Probe:
        """Probe the engine once (backends.openai_probe) with the prompt the load would send; kept for `client`
        and `prompt_sets`. At plan time (`with_tokenizer=False`) a word prompt, to check fields only."""
        maker = self._maker() if with_tokenizer else self._maker("words")
        text = maker if maker.method != "ids" else self._maker("text")
        prompt = maker.make(1, PROBE_STREAM)[0].payload
        fallback = str(text.make(1, PROBE_STREAM)[0].payload)

        async def run() -> Probe:
            async with self.client(Probe()) as client:
                client.known_identity = None
                required, declared = self.spec.option("prompts") == "ids", self.spec.option("engine_name")
                return await probe_engine(client, prompt, fallback, declared, ids_required=required)

        self.found = asyncio.run(run())
        return self.found

    def prompt_sets(self, requests: int, warmup: int) -> tuple[list, list]:
        """(timed prompts, warm-up prompts): at most MAX_PROMPTS timed ones, from disjoint seed streams."""
        maker = self._maker()
        return maker.make(min(requests, MAX_PROMPTS)), maker.make(warmup, WARMUP_STREAM)

    def request_section(self) -> dict[str, Any]:
        """How requests were made, for the record's `serving.request`."""
        found, spec = self.found or Probe(), self.spec
        body = self.client(found).body("<prompt>", 1)
        engine = (found.identity.get("engine_identity") or {}).get("name")
        prefix = spec.option("prefix_cache", "on")
        switch = PREFIX_CACHE_SWITCHES.get(engine) if prefix == "off" else None
        return {
            "prompt_method": self._maker().description,
            "fields": sorted(k for k in body if k not in ("prompt", "messages")),
            "extra_body_fields": sorted(parse_extra_body(spec.option("extra_body"))),
            "keepalive": spec.option("keepalive", "on"),
            "retries": int(spec.option("retries", DEFAULT_RETRIES)),
            "prefix_cache": prefix
            if prefix == "on" or switch
            else f"off asked; {engine or 'this engine'} has no switch",
            "prefix_cache_switch": switch,
            **found.to_dict(),
        }

    def prompts(self, count: int) -> list[str | list[int]]:
        """`count` seeded prompts of the spec's length (payloads only)."""
        return [p.payload for p in self._maker().make(count)]

    def prepare(self, workload: "Workload", spec: "BenchmarkSpec") -> PreparedCall:
        """For LoadGen scenarios (a network system under test): a call sends batch_size concurrent requests on
        this thread's event loop and stamps as the first request's tokens arrive; `take(rows)` sends those rows."""
        max_tokens = spec.new_tokens or workload.default_new_tokens or 16
        self.probe_engine()
        prompts = self.prompts(spec.batch_size)
        loop = asyncio.new_event_loop()
        client = self.client()
        loop.run_until_complete(client.__aenter__())

        def calls(rows: list[int]) -> PreparedCall:
            def call(stamp):
                first = loop.create_future()

                async def sent(row: int, report_first: bool) -> StreamedRequest:
                    report = (lambda: first.done() or first.set_result(stamp())) if report_first else None
                    return await client.request(prompts[row], max_tokens, on_token=report)

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
