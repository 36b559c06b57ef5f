"""`bench serve`: any measured backend's generation served over the OpenAI-compatible HTTP API, with streaming.

A baseline engine, not a fast one: one generation thread serves requests one at a time in arrival order
(first come, first served; no batching), each with the backend's technique (precision, compile, threads) and
greedy decoding with the KV cache, EOS ignored, so a request gets exactly `max_tokens` tokens.

Endpoints (aiohttp, bound to 127.0.0.1 unless told otherwise):
  GET  /v1/models             the served model (id = the catalogue name) and the engine's name and version
  POST /v1/completions        {"model", "prompt" (text or token ids), "max_tokens", "stream", "stream_options"}
  POST /v1/chat/completions   {"model", "messages", "max_tokens" | "max_completion_tokens", "stream", ...}
  GET  /bench/timings         the server's own per-request timings (ns, its monotonic clock): received, first
                              token, finished, tokens -- what the tests check the client's metrics against
  GET  /health                200 when the model is loaded

Text and tokens. Catalogue models are built with random weights and no tokenizer is available offline, so the
server uses a documented synthetic word tokenizer (`bench.serving.requests`): a prompt's whitespace-separated words are its tokens (each
word's CRC-32 modulo the vocabulary is its id), and output token id N is the text " wN". One word is one token,
so the client's synthetic prompts have exactly the prompt length asked for. Responses carry `usage`
(prompt_tokens, completion_tokens) as OpenAI's API does, and the header `server: catchup-bench/<version>`.

Under abuse: a request it cannot serve is refused with 400 naming the field (`parse_request`), a full queue with
503 + Retry-After; a client that goes away cancels its generation; /bench/timings keeps the last MAX_TIMINGS;
SIGINT/SIGTERM shut it down gracefully (`serve`).
"""

from __future__ import annotations

import asyncio
import collections
import json
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from bench.core import __version__
from bench.core.errors import UsageError
from bench.serving.requests import decode_token, encode_text, parse_request

__all__ = ["Engine", "EngineBusy", "build_app", "serve", "encode_text", "ENGINE_NAME"]

ENGINE_NAME = "catchup-bench"
SERVER_HEADER = f"{ENGINE_NAME}/{__version__}"
#: Requests waiting for the generation thread (beyond the one it serves); one more is answered 503 + Retry-After.
MAX_QUEUED = 256
RETRY_AFTER_S = 1
#: Per-request timings kept for /bench/timings (the oldest are dropped beyond it).
MAX_TIMINGS = 10_000
#: On SIGINT/SIGTERM: how long the request being generated may take to finish before it is cancelled.
SHUTDOWN_GRACE_S = 2.0
#: Largest request body (larger: HTTP 413); a prompt is also bounded by the model's positions.
MAX_BODY_BYTES = 1 << 20


class EngineBusy(Exception):
    """The engine's queue is full, or it is shutting down (HTTP 503 with Retry-After)."""


@dataclass
class _Request:
    prompt: list[int]
    max_tokens: int
    push: Callable[[int | None | BaseException], None]  # a token, None at the end, or the error
    timings: dict[str, Any] = field(default_factory=dict)
    cancelled: bool = False  # set when the client went away or the server shuts down: generation stops

    def cancel(self) -> None:
        self.cancelled = True


class Engine:
    """The generation thread: takes requests from a bounded queue and streams tokens back through each one's
    `push`; a cancelled request is skipped, or stopped after its current token step."""

    def __init__(
        self,
        generate: Callable[[list[int], int], Iterator[int]],
        context: Callable[[], Any],
        vocab_size: int,
        model: str,
        technique: str,
        max_positions: int | None = None,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self.generate, self.context, self.vocab_size = generate, context, vocab_size
        self.model, self.technique, self.max_positions = model, technique, max_positions
        self.requests: queue.Queue[_Request | None] = queue.Queue(maxsize=max_queued)
        self.timings: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_TIMINGS)
        self.current: _Request | None = None
        self.closing = False
        self.thread = threading.Thread(target=self._loop, name="bench-serve-engine", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def submit(self, request: _Request) -> None:
        """Queue a request, or EngineBusy when the queue is full or the engine is shutting down."""
        if self.closing:
            raise EngineBusy("the server is shutting down")
        request.timings["received_ns"] = time.monotonic_ns()
        try:
            self.requests.put_nowait(request)
        except queue.Full:
            raise EngineBusy(f"{self.requests.maxsize} requests are already waiting") from None

    def close(self) -> None:
        """Take no more requests and fail the waiting ones; the one being generated goes on (see `stop`)."""
        self.closing = True
        while True:
            try:
                waiting = self.requests.get_nowait()
            except queue.Empty:
                break
            if waiting is not None:
                waiting.cancel()
                waiting.push(EngineBusy("the server is shutting down"))

    def busy(self) -> bool:
        return self.current is not None

    def stop(self) -> None:
        """Cancel the request being generated (it ends after its current token step) and end the thread."""
        self.close()
        if self.current is not None:
            self.current.cancel()
        try:
            self.requests.put_nowait(None)
        except queue.Full:  # pragma: no cover - close() emptied it
            pass

    def _loop(self) -> None:
        with self.context():
            while (request := self.requests.get()) is not None:
                if request.cancelled:  # its client went away while it waited
                    continue
                self.current = request
                try:
                    self._serve(request)
                finally:
                    self.current = None

    def _serve(self, request: _Request) -> None:
        request.timings["started_ns"] = time.monotonic_ns()
        tokens = 0
        try:
            for token in self.generate(request.prompt, request.max_tokens):
                if request.cancelled:
                    break
                if tokens == 0:
                    request.timings["first_token_ns"] = time.monotonic_ns()
                tokens += 1
                request.push(token)
            request.push(EngineBusy("generation cancelled") if request.cancelled else None)
        except Exception as exc:  # the request fails; the engine goes on
            request.push(exc)
        request.timings.update(
            finished_ns=time.monotonic_ns(),
            tokens=tokens,
            prompt_tokens=len(request.prompt),
            cancelled=request.cancelled,
        )
        self.timings.append(request.timings)


# -- requests ------------------------------------------------------------------------------------------------


def _error(status: int, message: str, headers: dict[str, str] | None = None):
    from aiohttp import web

    body = {"error": {"message": message, "type": "invalid_request_error" if status < 500 else "server_error"}}
    return web.json_response(body, status=status, headers=headers)


# -- handlers ------------------------------------------------------------------------------------------------


def _app_keys() -> tuple[Any, Any]:
    """The application's keys for the engine and the request counter; made when this module is imported (an
    AppKey takes its name from the importing module), (None, None) without aiohttp (`bench serve` says so)."""
    try:
        from aiohttp import web
    except ImportError:  # pragma: no cover - the serve command checks first
        return None, None
    return web.AppKey("engine", Engine), web.AppKey("counter", Iterator)


_ENGINE_KEY, _COUNTER_KEY = _app_keys()


def _engine_of(request) -> Engine:
    return request.app[_ENGINE_KEY]


async def _models(request):
    from aiohttp import web

    engine = _engine_of(request)
    entry = {
        "id": engine.model,
        "object": "model",
        "owned_by": ENGINE_NAME,
        "technique": engine.technique,
        "engine": {"name": ENGINE_NAME, "version": __version__},
        "max_model_len": engine.max_positions,
    }
    return web.json_response({"object": "list", "data": [entry]})


async def _health(_request):
    from aiohttp import web

    return web.json_response({"status": "ok"})


async def _timings(request):
    from aiohttp import web

    return web.json_response({"requests": list(_engine_of(request).timings)})


async def _complete(request, chat: bool):
    """A completion: checked (400/404/413), queued (503 when full), then streamed or answered whole; the
    generation is cancelled whenever this handler ends before it (the client went away)."""
    engine = _engine_of(request)
    try:
        asked = parse_request(await request.read(), chat, engine.vocab_size, engine.max_positions, engine.model)
    except UsageError as exc:
        return _error(400, str(exc))
    if asked.model not in (None, engine.model):
        return _error(404, f"model: {asked.model[:80]!r} is not served here; expected {engine.model!r}")
    loop, tokens = asyncio.get_running_loop(), asyncio.Queue()
    ident = f"{'chatcmpl' if chat else 'cmpl'}-{next(request.app[_COUNTER_KEY])}"
    work = _Request(asked.prompt, asked.max_tokens, lambda item: loop.call_soon_threadsafe(tokens.put_nowait, item))
    work.timings["id"] = ident
    try:
        engine.submit(work)
    except EngineBusy as exc:
        return _error(503, f"busy: {exc}; retry later", {"Retry-After": str(RETRY_AFTER_S)})
    reply = _Reply(engine, ident, chat, {"prompt_tokens": len(work.prompt)}, tokens)
    try:
        return await (reply.stream(request, asked.include_usage) if asked.stream else reply.whole())
    finally:
        work.cancel()  # a no-op once it finished; else the client left (or the server stops): stop generating


async def _completions(request):
    return await _complete(request, chat=False)


async def _chat_completions(request):
    return await _complete(request, chat=True)


@dataclass
class _Reply:
    """The answer to one completion request, from the tokens its engine request pushes."""

    engine: Engine
    ident: str
    chat: bool
    usage: dict[str, int]
    tokens: asyncio.Queue

    def _choice(self, text: str, final: bool) -> dict[str, Any]:
        finish = "length" if final else None
        if self.chat:
            key, value = ("message", {"role": "assistant", "content": text}) if final else ("delta", {"content": text})
            return {"index": 0, key: value, "finish_reason": finish}
        return {"index": 0, "text": text, "finish_reason": finish}

    def _counted(self, count: int) -> dict[str, int]:
        return {**self.usage, "completion_tokens": count, "total_tokens": self.usage["prompt_tokens"] + count}

    async def whole(self):
        from aiohttp import web

        text = []
        while (item := await self.tokens.get()) is not None:
            if isinstance(item, BaseException):
                status = 503 if isinstance(item, EngineBusy) else 500
                return _error(status, f"generation failed: {type(item).__name__}: {item}")
            text.append(decode_token(item))
        body = {
            "id": self.ident,
            "object": "chat.completion" if self.chat else "text_completion",
            "created": int(time.time()),
            "model": self.engine.model,
            "choices": [self._choice("".join(text), final=True)],
            "usage": self._counted(len(text)),
        }
        return web.json_response(body)

    async def stream(self, request, include_usage: bool):
        from aiohttp import web

        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        kind = "chat.completion.chunk" if self.chat else "text_completion"
        head = {"id": self.ident, "object": kind, "model": self.engine.model}
        try:
            await response.prepare(request)
            count = await self._send_tokens(response, head)
            if count is not None and include_usage:
                await _send(response, {**head, "choices": [], "usage": self._counted(count)})
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except ConnectionError:  # the client went away: nothing to tell it, nothing to log
            pass
        return response

    async def _send_tokens(self, response, head: dict[str, Any]) -> int | None:
        """Each token as a chunk; the count sent, or None after an error chunk."""
        count = 0
        while (item := await self.tokens.get()) is not None:
            if isinstance(item, BaseException):
                await _send(response, {"error": {"message": f"generation failed: {type(item).__name__}: {item}"}})
                return None
            count += 1
            await _send(response, {**head, "choices": [self._choice(decode_token(item), final=False)]})
        return count


async def _send(response, payload: dict[str, Any]) -> None:
    await response.write(f"data: {json.dumps(payload)}\n\n".encode())


async def _server_header(_request, response) -> None:
    """Every response, streamed ones included, names this engine (never `Server: aiohttp`)."""
    response.headers["Server"] = SERVER_HEADER


def build_app(engine: Engine):
    """The aiohttp application serving `engine` (see the module docstring)."""
    from aiohttp import web

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[_ENGINE_KEY] = engine
    app[_COUNTER_KEY] = iter(range(1, 1 << 62))
    app.on_response_prepare.append(_server_header)
    app.add_routes(
        [
            web.get("/v1/models", _models),
            web.get("/health", _health),
            web.get("/bench/timings", _timings),
            web.post("/v1/completions", _completions),
            web.post("/v1/chat/completions", _chat_completions),
        ]
    )
    return app


def load_engine(
    model: str,
    backend: str,
    precision: str,
    options: tuple = (),
    weights: str | None = None,
    name: str | None = None,
    max_queued: int = MAX_QUEUED,
) -> Engine:
    """Build the model once with the backend's technique (as a cell would: seeded random weights, or `weights`, a
    directory of safetensors of the same architecture) and wrap it in an Engine serving it as `name` (default: the
    catalogue name), with at most `max_queued` requests waiting."""
    from backends.registry import backend_class
    from bench.core.spec import BenchmarkSpec
    from models.catalogue import get_workload

    workload = get_workload(model)
    if workload.task != "generate":
        raise UsageError(f"--model: {model!r} is not allowed; expected a generation model (task generate)")
    if weights:
        from models.weights import check_weights_dir

        check_weights_dir(workload, weights)
    spec = BenchmarkSpec(
        workload=workload.name,
        backend=backend,
        precision=precision,
        batch_size=1,
        seq_len=8,
        new_tokens=1,
        options=options,
        weights=weights,
    )
    cls = backend_class(backend)
    if cls.capabilities.simulated:
        raise UsageError(f"--backend: {backend!r} is not allowed; expected a measured backend (it runs the model)")
    availability = cls.availability(spec)
    if not availability.available:
        raise UsageError(f"--backend: {backend!r} is not available here: {availability.reason}")
    cls.validate_spec(spec, workload)
    instance = cls(spec)
    prepared = instance.prepare(workload, spec)
    if prepared.stream is None:
        raise UsageError(f"--backend: {backend!r} cannot stream tokens for {model!r}; expected a torch backend")
    technique = prepared.facts.get("technique") or f"{backend} {precision}"
    return Engine(
        prepared.stream,
        instance.execution_context,
        int(workload.config["vocab_size"]),
        name or workload.name,
        technique,
        max_positions=workload.max_positions,
        max_queued=max_queued,
    )


def serve(
    engine: Engine, host: str, port: int, ready: Callable[[int], None] | None = None, grace_s: float = SHUTDOWN_GRACE_S
) -> None:
    """Run the server until SIGINT or SIGTERM; `ready(port)` is called once it listens (port 0: a free one).

    Shutdown: stop accepting, answer the waiting requests 503, let the request being generated finish within
    `grace_s` seconds (else cancel it: its stream ends with an error chunk), close the connections, return. A
    second signal meanwhile ends the process at once (exit status 130), without a traceback."""
    engine.start()
    try:
        asyncio.run(_serve_until_signalled(engine, host, port, ready, grace_s))
    finally:
        engine.stop()


async def _serve_until_signalled(engine: Engine, host: str, port: int, ready, grace_s: float) -> None:
    from aiohttp import web

    runner = web.AppRunner(build_app(engine), access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    stop = asyncio.Event()
    _stop_on_signals(stop, grace_s)
    if ready:
        ready(site._server.sockets[0].getsockname()[1])  # the real port when 0 was asked for
    try:
        await stop.wait()
    finally:
        await _shut_down(runner, engine, grace_s)


def _stop_on_signals(stop: asyncio.Event, grace_s: float) -> None:
    """SIGINT/SIGTERM set `stop`; a second one exits at once. Nothing where signals cannot be handled here (a
    thread other than the main one): the caller stops the loop its own way."""
    import os
    import signal
    import sys

    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            print("stopped at once (second signal)", file=sys.stderr, flush=True)
            os._exit(130)
        print(f"stopping: finishing the request in progress (up to {grace_s:g} s) ...", file=sys.stderr, flush=True)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, on_signal)
        except (NotImplementedError, RuntimeError, ValueError):
            return


async def _shut_down(runner, engine: Engine, grace_s: float) -> None:
    """Stop listening, fail the queue, give the running request `grace_s` seconds, then close everything."""
    for site in list(runner.sites):
        await site.stop()
    engine.close()
    deadline = time.monotonic() + grace_s
    while engine.busy() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    engine.stop()
    await runner.cleanup()
