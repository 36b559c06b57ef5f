"""The streaming client of the `openai` backend: one endpoint, one aiohttp session per event loop.

Request body. `model`, the prompt (`prompt`: text or a list of token ids; or `messages` for the chat API),
`max_tokens`, `stream: true`, `temperature: 0`, and the default fields `stream_options: {include_usage: true}`,
`ignore_eos: true` and `min_tokens: max_tokens` (vLLM's, so every request runs to length) -- each default only
while the engine accepts it: a field the engine refused when probed (`backends.openai_probe`) is in `drop` and
never sent. `extra_body` (a JSON object, `-O extra_body=`) is merged last, so it wins over a default; `per_request`
adds fields that differ per request (vLLM's `cache_salt`, a fresh one each, for `-O prefix_cache=off`).

Connection policy. Connections are kept alive unless `keepalive` is False (a fresh connection per request). A
request that fails before any byte of its response arrived (a refused or reset connection, "Server
disconnected" on a kept-alive connection the server had closed, a request body that could not be written, a
connect timeout) is sent again on a fresh connection, at most `retries` times; its earlier attempts are kept as
`retried` reasons, counted apart from failures, and its timings are those of the attempt that got an answer.
Anything after the first byte (a timeout while streaming, a body cut short) fails the request: sending it again
would measure a different request. `timeout_s` bounds each request (each attempt), `connect_timeout_s` the
connection set-up.

Nothing a server sends can make it hold more than the bounds of `backends.openai_stream` per request, or raise:
every problem is that request's failure, with a reason scrubbed of the API key and the endpoint's credentials.
"""

from __future__ import annotations

import asyncio
import base64
import time
import urllib.parse
import uuid
from typing import Any, Callable

from backends.openai_identity import models_identity
from backends.openai_stream import (
    ERROR_BODY_BYTES,
    LINES_PER_CHUNK,
    MAX_IDENTITY_TEXT,
    MODELS_BODY_BYTES,
    TOKEN_COUNT_TOLERANCE,
    MalformedStream,
    body_lines,
    checked_usage,
    failure_kind,
    parse_chunk,
    parse_json,
    read_at_most,
)
from bench.core.calls import StreamedRequest
from bench.core.secrets import scrub, scrub_tree, url_secrets

__all__ = ["OpenAIClient", "endpoint_url", "DEFAULT_FIELDS", "DEFAULT_RETRIES", "DEFAULT_CONNECT_TIMEOUT_S"]

#: The fields sent by default that an engine may refuse (then dropped: `backends.openai_probe`).
DEFAULT_FIELDS = ("stream_options", "ignore_eos", "min_tokens", "temperature")
DEFAULT_RETRIES = 2
DEFAULT_CONNECT_TIMEOUT_S = 10.0


def endpoint_url(endpoint: str, path: str) -> str:
    """`path` under the endpoint, keeping the endpoint's query string (e.g. an api-key parameter) after it."""
    parts = urllib.parse.urlsplit(endpoint)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + path, parts.query, ""))


def _retryable(exc: BaseException, answered: bool) -> bool:
    """A failure before any byte of the response: a connection-level error, not a read timeout or a cut body."""
    import aiohttp

    if answered or isinstance(exc, aiohttp.SocketTimeoutError):
        return False
    if isinstance(exc, asyncio.TimeoutError) and not isinstance(exc, aiohttp.ConnectionTimeoutError):
        return False  # the request's own time ran out (a slow prefill): sending it again would not be the same
    return isinstance(exc, (aiohttp.ClientConnectionError, ConnectionError))


class OpenAIClient:
    """Streaming requests to one endpoint (module docstring); an async context manager."""

    def __init__(
        self,
        endpoint: str,
        api: str,
        model: str,
        timeout_s: float,
        ignore_eos: bool,
        api_key: str | None = None,
        *,
        keepalive: bool = True,
        retries: int = DEFAULT_RETRIES,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        extra_body: dict[str, Any] | None = None,
        drop: frozenset[str] | set[str] = frozenset(),
        per_request: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(endpoint)
        self.user = (urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password or ""))
        netloc = parts.netloc.rpartition("@")[2]  # user information is sent as Basic auth, not in the URL
        self.endpoint = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        self.api, self.model = api, model
        self.timeout_s, self.ignore_eos, self.api_key = timeout_s, ignore_eos, api_key
        self.keepalive, self.retries, self.connect_timeout_s = keepalive, retries, connect_timeout_s
        self.extra_body, self.drop, self.per_request = dict(extra_body or {}), set(drop), per_request
        self.secrets = tuple(filter(None, (api_key, *url_secrets(endpoint))))
        self.known_identity: dict[str, Any] | None = None  # set by the probe: identity() returns it
        self.session = self.fresh_session = None

    async def __aenter__(self) -> "OpenAIClient":
        headers = {}
        if self.api_key:  # the API key wins over user information in the endpoint
            headers["Authorization"] = f"Bearer {self.api_key}"
        elif any(self.user):
            headers["Authorization"] = "Basic " + base64.b64encode(":".join(self.user).encode()).decode()
        self.session = self._session(headers, force_close=not self.keepalive)
        # retries go out on connections of their own, never on a kept-alive one the server may have closed
        self.fresh_session = self.session if not self.keepalive else self._session(headers, force_close=True)
        return self

    def _session(self, headers: dict[str, str], force_close: bool):
        import aiohttp

        connector = aiohttp.TCPConnector(limit=0, force_close=force_close)
        timeout = aiohttp.ClientTimeout(total=self.timeout_s, sock_connect=self.connect_timeout_s)
        return aiohttp.ClientSession(headers=headers, connector=connector, timeout=timeout)

    async def __aexit__(self, *exc) -> None:
        await self.session.close()
        if self.fresh_session is not self.session:
            await self.fresh_session.close()

    def scrub(self, text: str) -> str:
        """Server or library text as it may be stored: one line, short, without a secret (bench.core.secrets)."""
        return scrub(" ".join(str(text).split())[:MAX_IDENTITY_TEXT], self.secrets)

    def body(self, prompt: str | list[int], max_tokens: int) -> dict[str, Any]:
        """The request body (module docstring): defaults the engine accepts, the prompt, extra_body last."""
        body: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens, "stream": True, "temperature": 0.0}
        body["stream_options"] = {"include_usage": True}
        if self.ignore_eos:
            body.update(ignore_eos=True, min_tokens=max_tokens)
        for name in self.drop:
            body.pop(name, None)
        if self.api == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        body.update(self.extra_body)
        if self.per_request is not None:
            body.update(self.per_request())
        return body

    async def get_json(self, path: str) -> tuple[Any, str | None]:
        """(JSON body, Server header) of GET `path`, at most MODELS_BODY_BYTES read; (None, header) when the
        answer is not 200 or not JSON; exceptions for a connection that fails."""
        async with self.session.get(endpoint_url(self.endpoint, path)) as response:
            raw = await read_at_most(response.content, MODELS_BODY_BYTES + 1)
            server, status = response.headers.get("Server"), response.status
            response.close()
        if len(raw) > MODELS_BODY_BYTES:
            raise MalformedStream(f"{path}: more than {MODELS_BODY_BYTES // 1024} KiB")
        if status != 200:
            return None, server
        try:
            return parse_json(raw), server
        except MalformedStream:
            return None, server

    async def identity(self) -> dict[str, Any]:
        """What serves the endpoint: the probe's finding when there was one, else /v1/models (model ids, owner,
        engine where given) and the Server header, typed and cut short; {"error": why} when it cannot be read."""
        if self.known_identity is not None:
            return self.known_identity
        try:
            data, server = await self.get_json("/v1/models")
            return scrub_tree(models_identity(data, self.model, server), self.secrets)
        except Exception as exc:  # identity is informative; the load decides whether the run worked
            return {"error": self.scrub(f"{type(exc).__name__}: {exc}")}

    async def request(self, prompt: str | list[int], max_tokens: int, on_token: Any = None) -> StreamedRequest:
        """One streaming request, sent again on a fresh connection while it fails before any byte of a response
        (at most `retries` times); never raises for a request-level failure (it is returned, with the reason).
        `on_token()` is called as each content chunk arrives (LoadGen's first-token report)."""
        retried: list[str] = []
        while True:
            result, retry = await self._attempt(prompt, max_tokens, on_token, fresh=bool(retried))
            if not retry or len(retried) >= self.retries:
                result.retried = retried
                return result
            retried.append(result.error or "unknown")

    async def _attempt(self, prompt, max_tokens: int, on_token: Any, fresh: bool) -> tuple[StreamedRequest, bool]:
        """One attempt: (its result, whether it may be sent again)."""
        path = "/v1/chat/completions" if self.api == "chat" else "/v1/completions"
        start = time.perf_counter_ns()
        tokens: list[int] = []
        state: dict[str, Any] = {"status": None}
        try:
            url, body = endpoint_url(self.endpoint, path), self.body(prompt, max_tokens)
            session = self.fresh_session if fresh else self.session
            async with session.post(url, json=body) as response:
                state["status"] = response.status
                if response.status != 200:
                    text = (await read_at_most(response.content, ERROR_BODY_BYTES)).decode("utf-8", "replace")
                    response.close()  # the rest of the body is never read
                    error = f"HTTP {response.status}: {self.scrub(text)}"
                    return StreamedRequest(False, start, tokens, time.perf_counter_ns(), error=error, status=response.status), False  # fmt: skip
                usage = await self._read_stream(response, max_tokens, tokens, on_token, state)
            output, prompt_tokens = checked_usage(usage, len(tokens), max_tokens)
        except Exception as exc:  # any request-level failure is that request's, with its reason
            error = f"{failure_kind(exc)}: {self.scrub(exc)}"
            failed = StreamedRequest(False, start, tokens, time.perf_counter_ns(), error=error, status=state["status"])
            return failed, _retryable(exc, state["status"] is not None)
        end = time.perf_counter_ns()
        if not tokens:
            error = "malformed stream: no content chunk before the end of the stream"
            return StreamedRequest(False, start, tokens, end, error=error, status=200), False
        done = StreamedRequest(True, start, tokens, end, output_tokens=output, prompt_tokens=prompt_tokens, status=200)
        done.engine_timings, done.fingerprint = state.get("timings") or None, state.get("fingerprint")
        return done, False

    async def _read_stream(self, response, max_tokens: int, tokens: list[int], on_token, state: dict) -> dict | None:
        """Read the event stream to [DONE] (or to its end after a finish reason), stamping each content chunk into
        `tokens`; the last usage object. The fingerprint and the engine's timings go into `state`."""
        most_chunks = int(max_tokens * (1 + TOKEN_COUNT_TOLERANCE)) + 1
        most_lines = LINES_PER_CHUNK * most_chunks + 64
        usage, lines, finished = None, 0, False
        async for raw in body_lines(response.content):
            lines += 1
            if lines > most_lines:
                raise MalformedStream(f"more than {most_lines} lines for max_tokens {max_tokens}")
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                return usage
            chunk = parse_chunk(payload)
            usage, finished = chunk.usage or usage, finished or chunk.finished
            state["fingerprint"] = state.get("fingerprint") or chunk.fingerprint
            state["timings"] = chunk.timings or state.get("timings")
            if chunk.content:
                tokens.append(time.perf_counter_ns())
                if len(tokens) > most_chunks:
                    raise MalformedStream(f"more than {most_chunks} content chunks for max_tokens {max_tokens}")
                if on_token is not None:
                    on_token()
        if finished:  # the engine said it finished and closed the stream (transformers serve sends no [DONE])
            return usage
        raise MalformedStream("the stream ended without [DONE] or a finish reason")


def fresh_cache_salt() -> dict[str, Any]:
    """vLLM's per-request `cache_salt`: a new one per request, so no request reuses another's prefix cache."""
    return {"cache_salt": uuid.uuid4().hex}
