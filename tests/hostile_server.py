"""A hostile OpenAI-compatible server on loopback, one mode per attack, for the hardening tests.

Started in a thread of the test process (`HostileServer`, a context manager) on 127.0.0.1 and a free port; the
mode is the first path segment, so `-O endpoint=http://127.0.0.1:PORT/MODE` points a cell at one attack:

  ok            a well-behaved engine: max_tokens content chunks, correct usage, [DONE]
  echo_secret   HTTP 401 whose body echoes the Authorization header and the request's URL (query included);
                /v1/models names the Authorization header as the model's owner
  stream_secret a 200 stream whose error chunk echoes the Authorization header
  huge_error    HTTP 500 with a 100 MB body, sent 1 MiB at a time (never held whole here either)
  huge_models   /v1/models of about 6.6 MB (100,000 model entries); completions as `ok`
  typed_models  /v1/models with engine "vllm", id 5, max_model_len "long"; completions as `ok`
  many_chunks   225,000 content chunks whatever max_tokens asks for
  usage_list    usage is a JSON list;  choices_int: choices is 5;  deep_json: a chunk nested 100,000 deep
  long_line     one line of 600 KiB;  nan_usage: usage.completion_tokens NaN (bare, as Python's json writes it)
  tokens_N      usage.completion_tokens N over 4 content chunks: N in 100000, 0, -3, 1e308, many
  no_done       content and usage, then the stream ends without [DONE]
"""

from __future__ import annotations

import asyncio
import json
import threading

from aiohttp import web

MODES = (
    "ok",
    "echo_secret",
    "stream_secret",
    "huge_error",
    "huge_models",
    "typed_models",
    "many_chunks",
    "usage_list",
    "choices_int",
    "deep_json",
    "long_line",
    "nan_usage",
    "tokens_100000",
    "tokens_0",
    "tokens_-3",
    "tokens_1e308",
    "tokens_many",
    "no_done",
)

MIB = 1 << 20
SEEN = web.AppKey("seen", list)  # (mode, Authorization header, query string) of every completion request


def _chunk(text: str = " w1", usage: object = None, **extra) -> bytes:
    payload: dict = {"id": "cmpl-1", "object": "text_completion", "choices": [{"index": 0, "text": text}], **extra}
    if usage is not None:
        payload["usage"] = usage
    return f"data: {json.dumps(payload)}\n\n".encode()


async def _models(request: web.Request) -> web.StreamResponse:
    mode = request.match_info["mode"]
    if mode == "huge_models":
        data = [{"id": f"model-{i:06d}", "object": "model", "owned_by": "x" * 40} for i in range(100_000)]
        return web.json_response({"object": "list", "data": data})
    if mode == "typed_models":
        entry = {"id": 5, "owned_by": ["me"], "engine": "vllm", "max_model_len": "long"}
        return web.json_response({"object": "list", "data": [entry, {"id": "gpt2-tiny", "engine": "vllm"}]})
    owner = request.headers.get("Authorization", "") if mode == "echo_secret" else "hostile"
    entry = {"id": "gpt2-tiny", "owned_by": owner, "engine": {"name": "hostile"}}
    return web.json_response({"object": "list", "data": [entry]})


async def _stream(request: web.Request, lines: list[bytes]) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    try:
        for line in lines:
            await response.write(line)
        await response.write_eof()
    except (ConnectionResetError, ConnectionError):
        pass
    return response


async def _huge_error(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(status=500, headers={"Content-Type": "text/plain"})
    await response.prepare(request)
    block = b"E" * MIB
    try:
        for _ in range(100):
            await response.write(block)
        await response.write_eof()
    except (ConnectionResetError, ConnectionError):
        pass
    return response


def _token_lines(mode: str, max_tokens: int) -> list[bytes]:
    count = mode.partition("_")[2]
    usage = {"prompt_tokens": 8, "completion_tokens": "__COUNT__"}
    last = _chunk(text="", usage=usage).replace(b'"__COUNT__"', count.encode() if count != "many" else b'"many"')
    return [_chunk() for _ in range(4)] + [last, b"data: [DONE]\n\n"]


def _lines(mode: str, max_tokens: int, authorization: str) -> list[bytes]:
    done = b"data: [DONE]\n\n"
    usage = {"prompt_tokens": 8, "completion_tokens": max_tokens, "total_tokens": 8 + max_tokens}
    ok = [_chunk() for _ in range(max_tokens)] + [_chunk(text="", usage=usage), done]
    special = {
        "many_chunks": lambda: [_chunk()] * 225_000 + [done],
        "usage_list": lambda: [_chunk(), _chunk(text="", usage=[1, 2]), done],
        "choices_int": lambda: [b'data: {"choices": 5}\n\n', done],
        "deep_json": lambda: [b"data: " + b"[" * 100_000 + b"]" * 100_000 + b"\n\n", done],
        "long_line": lambda: [_chunk(text="x" * (600 * 1024)), done],
        "nan_usage": lambda: [_chunk(), b'data: {"choices": [], "usage": {"completion_tokens": NaN}}\n\n', done],
        "no_done": lambda: ok[:-1],
        "stream_secret": lambda: [_chunk(), f"data: {json.dumps({'error': {'message': authorization}})}\n\n".encode()],
    }
    if mode.startswith("tokens_"):
        return _token_lines(mode, max_tokens)
    return special.get(mode, lambda: ok)()


async def _complete(request: web.Request) -> web.StreamResponse:
    mode = request.match_info["mode"]
    authorization = request.headers.get("Authorization", "")
    request.app[SEEN].append((mode, authorization, request.query_string))
    if mode == "echo_secret":
        text = f"invalid credentials {authorization} for {request.url} ({request.query_string})"
        return web.json_response({"error": {"message": text}}, status=401)
    if mode == "huge_error":
        return await _huge_error(request)
    body = await request.json()
    return await _stream(request, _lines(mode, int(body.get("max_tokens", 4)), authorization))


def build_app(seen: list) -> web.Application:
    app = web.Application()
    app[SEEN] = seen
    app.add_routes(
        [
            web.get("/{mode}/v1/models", _models),
            web.post("/{mode}/v1/completions", _complete),
            web.post("/{mode}/v1/chat/completions", _complete),
        ]
    )
    return app


class HostileServer:
    """The app above in a daemon thread with its own event loop, on 127.0.0.1 and a free port (`url`)."""

    def __init__(self) -> None:
        self.url = ""
        self.seen: list[tuple[str, str, str]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hostile-server", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(build_app(self.seen), access_log=None, handle_signals=False)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        self._runner = runner
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def __enter__(self) -> "HostileServer":
        self._thread.start()
        self._ready.wait(30)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def endpoint(self, mode: str, credentials: str = "") -> str:
        """The endpoint of one mode, optionally with `user:password@` credentials in it."""
        scheme, _, rest = self.url.partition("://")
        return f"{scheme}://{credentials + '@' if credentials else ''}{rest}/{mode}"
