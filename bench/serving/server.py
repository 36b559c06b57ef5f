"""`bench serve`: any measured backend's generation served over the OpenAI-compatible HTTP API, with streaming.

A baseline engine, not a fast one: one generation thread serves requests one at a time in arrival order
(first come, first served; no batching), each with the backend's technique (precision, compile, threads) and
greedy decoding with the KV cache, EOS ignored, so a request gets exactly `max_tokens` tokens.

Endpoints (aiohttp, bound to 127.0.0.1 unless told otherwise):
  GET  /v1/models             the served model (id = the catalogue name) and the engine's name and version
  POST /v1/completions        {"model", "prompt", "max_tokens", "stream", "stream_options": {"include_usage"}}
  POST /v1/chat/completions   {"model", "messages", "max_tokens" | "max_completion_tokens", "stream", ...}
  GET  /bench/timings         the server's own per-request timings (ns, its monotonic clock): received, first
                              token, finished, tokens -- what the tests check the client's metrics against
  GET  /health                200 when the model is loaded

Text and tokens. Catalogue models are built with random weights and no tokenizer is available offline, so the
server uses a documented synthetic word tokenizer: a prompt's whitespace-separated words are its tokens (each
word's CRC-32 modulo the vocabulary is its id), and output token id N is the text " wN". One word is one token,
so the client's synthetic prompts have exactly the prompt length asked for. Responses carry `usage`
(prompt_tokens, completion_tokens) as OpenAI's API does, and the header `server: catchup-bench/<version>`.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from bench.core import __version__
from bench.core.errors import UsageError

__all__ = ["Engine", "build_app", "serve", "encode_text", "ENGINE_NAME"]

ENGINE_NAME = "catchup-bench"
#: Most tokens one request may ask for (a request over it is refused with HTTP 400, naming the field).
MAX_TOKENS_LIMIT = 1 << 16


def encode_text(text: str, vocab_size: int) -> list[int]:
    """The synthetic word tokenizer: one token per whitespace-separated word, id = CRC-32(word) mod vocab."""
    return [zlib.crc32(word.encode()) % vocab_size for word in text.split()] or [0]


def decode_token(token: int) -> str:
    return f" w{token}"


@dataclass
class _Request:
    prompt: list[int]
    max_tokens: int
    push: Callable[[int | None | BaseException], None]  # a token, None at the end, or the error
    timings: dict[str, Any] = field(default_factory=dict)


class Engine:
    """The generation thread: takes requests from a queue and streams tokens back through each one's `push`."""

    def __init__(
        self,
        generate: Callable[[list[int], int], Iterator[int]],
        context: Callable[[], Any],
        vocab_size: int,
        model: str,
        technique: str,
    ) -> None:
        self.generate, self.context, self.vocab_size = generate, context, vocab_size
        self.model, self.technique = model, technique
        self.requests: queue.Queue[_Request | None] = queue.Queue()
        self.timings: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._loop, name="bench-serve-engine", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.requests.put(None)

    def submit(self, request: _Request) -> None:
        request.timings["received_ns"] = time.monotonic_ns()
        self.requests.put(request)

    def _loop(self) -> None:
        with self.context():
            while (request := self.requests.get()) is not None:
                self._serve(request)

    def _serve(self, request: _Request) -> None:
        request.timings["started_ns"] = time.monotonic_ns()
        tokens = 0
        try:
            for token in self.generate(request.prompt, request.max_tokens):
                if tokens == 0:
                    request.timings["first_token_ns"] = time.monotonic_ns()
                tokens += 1
                request.push(token)
            request.push(None)
        except Exception as exc:  # the request fails; the engine goes on
            request.push(exc)
        request.timings.update(finished_ns=time.monotonic_ns(), tokens=tokens, prompt_tokens=len(request.prompt))
        self.timings.append(request.timings)


def _error(status: int, message: str):
    from aiohttp import web

    return web.json_response({"error": {"message": message, "type": "invalid_request_error"}}, status=status)


def _max_tokens(body: dict[str, Any]) -> int:
    value = body.get("max_completion_tokens", body.get("max_tokens", 16))
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOKENS_LIMIT:
        raise UsageError(f"max_tokens: {value!r} is not allowed; expected a whole number from 1 to {MAX_TOKENS_LIMIT}")
    return value


def _prompt_text(body: dict[str, Any], chat: bool) -> str:
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise UsageError("messages: expected a non-empty list of {role, content}")
        return " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        prompt = " ".join(str(p) for p in prompt)
    if not isinstance(prompt, str):
        raise UsageError("prompt: expected a string")
    return prompt


def build_app(engine: Engine):
    """The aiohttp application serving `engine` (see the module docstring)."""
    from aiohttp import web

    counter = iter(range(1, 1 << 62))

    async def models(_request):
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {
                        "id": engine.model,
                        "object": "model",
                        "owned_by": ENGINE_NAME,
                        "technique": engine.technique,
                        "engine": {"name": ENGINE_NAME, "version": __version__},
                    }
                ],
            }
        )

    async def health(_request):
        return web.json_response({"status": "ok"})

    async def timings(_request):
        return web.json_response({"requests": engine.timings})

    async def complete(request, chat: bool):
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise UsageError("body: expected a JSON object")
            max_tokens, text = _max_tokens(body), _prompt_text(body, chat)
        except (UsageError, ValueError) as exc:
            return _error(400, str(exc))
        if body.get("model") not in (None, engine.model):
            return _error(404, f"model: {body.get('model')!r} is not served here; expected {engine.model!r}")
        loop, tokens = asyncio.get_running_loop(), asyncio.Queue()
        ident = f"{'chatcmpl' if chat else 'cmpl'}-{next(counter)}"
        work = _Request(
            encode_text(text, engine.vocab_size),
            max_tokens,
            lambda item: loop.call_soon_threadsafe(tokens.put_nowait, item),
            {"id": ident},
        )
        engine.submit(work)
        usage = {"prompt_tokens": len(work.prompt)}
        if body.get("stream"):
            return await _stream(request, tokens, ident, chat, usage, body)
        return await _whole(tokens, ident, chat, usage)

    async def _whole(tokens, ident, chat, usage):
        text, count = [], 0
        while (item := await tokens.get()) is not None:
            if isinstance(item, BaseException):
                return _error(500, f"generation failed: {type(item).__name__}: {item}")
            text.append(decode_token(item))
            count += 1
        usage.update(completion_tokens=count, total_tokens=usage["prompt_tokens"] + count)
        choice = (
            {"index": 0, "message": {"role": "assistant", "content": "".join(text)}, "finish_reason": "length"}
            if chat
            else {"index": 0, "text": "".join(text), "finish_reason": "length"}
        )
        return web.json_response(
            {
                "id": ident,
                "object": "chat.completion" if chat else "text_completion",
                "created": int(time.time()),
                "model": engine.model,
                "choices": [choice],
                "usage": usage,
            }
        )

    async def _stream(request, tokens, ident, chat, usage, body):
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        kind = "chat.completion.chunk" if chat else "text_completion"
        count = 0

        async def send(payload: dict[str, Any]) -> None:
            await response.write(f"data: {json.dumps(payload)}\n\n".encode())

        while (item := await tokens.get()) is not None:
            if isinstance(item, BaseException):
                await send({"error": {"message": f"generation failed: {type(item).__name__}: {item}"}})
                break
            count += 1
            piece = decode_token(item)
            choice = (
                {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                if chat
                else {"index": 0, "text": piece, "finish_reason": None}
            )
            await send({"id": ident, "object": kind, "model": engine.model, "choices": [choice]})
        if (body.get("stream_options") or {}).get("include_usage"):
            usage.update(completion_tokens=count, total_tokens=usage["prompt_tokens"] + count)
            await send({"id": ident, "object": kind, "model": engine.model, "choices": [], "usage": usage})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    @web.middleware
    async def server_header(request, handler):
        response = await handler(request)
        response.headers["Server"] = f"{ENGINE_NAME}/{__version__}"
        return response

    app = web.Application(middlewares=[server_header])
    app.add_routes(
        [
            web.get("/v1/models", models),
            web.get("/health", health),
            web.get("/bench/timings", timings),
            web.post("/v1/completions", lambda r: complete(r, chat=False)),
            web.post("/v1/chat/completions", lambda r: complete(r, chat=True)),
        ]
    )
    return app


def load_engine(model: str, backend: str, precision: str, options: tuple = ()) -> Engine:
    """Build the model once with the backend's technique (as a cell would) and wrap it in an Engine."""
    from backends.registry import backend_class
    from bench.core.spec import BenchmarkSpec
    from models.catalogue import get_workload

    workload = get_workload(model)
    if workload.task != "generate":
        raise UsageError(f"--model: {model!r} is not allowed; expected a generation model (task generate)")
    spec = BenchmarkSpec(
        workload=workload.name,
        backend=backend,
        precision=precision,
        batch_size=1,
        seq_len=8,
        new_tokens=1,
        options=options,
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
        prepared.stream, instance.execution_context, int(workload.config["vocab_size"]), workload.name, technique
    )


def serve(engine: Engine, host: str, port: int, ready: Callable[[int], None] | None = None) -> None:
    """Run the server until interrupted; `ready(port)` is called once it listens (port 0: a free one)."""
    from aiohttp import web

    async def main() -> None:
        runner = web.AppRunner(build_app(engine), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # the real port when 0 was asked for
        if ready:
            ready(bound)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    engine.start()
    try:
        asyncio.run(main())
    finally:
        engine.stop()
