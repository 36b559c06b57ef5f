"""What an OpenAI-compatible server sends, read within bounds: JSON, event-stream lines, chunks, usage.

Nothing a server sends can make the client hold more than these bounds per request, or raise anything but
`MalformedStream` / `ImplausibleUsage` (that request's failure, counted by reason). The three stream shapes the
field's engines send all parse: usage in the last text chunk (llama.cpp), usage in a separate chunk with no choices
(vLLM, `bench serve`), and a stream that ends after a chunk with a `finish_reason` but without `data: [DONE]`
(`transformers serve`). A stream that ends with neither [DONE] nor a finish reason was cut short (malformed).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from bench.core.spec import MAX_TOKENS

__all__ = [
    "ERROR_BODY_BYTES",
    "MODELS_BODY_BYTES",
    "MAX_LINE_BYTES",
    "MAX_IDENTITY_TEXT",
    "TOKEN_COUNT_TOLERANCE",
    "MAX_TOKENS_PER_CHUNK",
    "LINES_PER_CHUNK",
    "MalformedStream",
    "ImplausibleUsage",
    "Chunk",
    "parse_json",
    "short_text",
    "parse_chunk",
    "checked_usage",
    "read_at_most",
    "body_lines",
    "failure_kind",
]

#: What one server can make the client hold or accept (docs/SERVING-ENGINES.md, "What the client refuses").
ERROR_BODY_BYTES = 4096  # read of an error response's body (the rest is never read)
MODELS_BODY_BYTES = 1 << 20  # /v1/models, /version, /props
MAX_LINE_BYTES = 256 * 1024  # one line of the event stream
MAX_IDENTITY_TEXT = 200  # characters kept of each string the server describes itself with
#: A reported token count may differ from what the stream shows by this fraction (plus one token) before the
#: request is counted as failed: at most max_tokens x (1 + tolerance) + 1 tokens, at least content chunks /
#: (1 + tolerance) - 1, at most MAX_TOKENS_PER_CHUNK tokens per content chunk.
TOKEN_COUNT_TOLERANCE = 0.10
MAX_TOKENS_PER_CHUNK = 16
#: Lines (events, keep-alives, empty deltas) one stream may send per content chunk it may send.
LINES_PER_CHUNK = 4
#: The engine's own per-request timings kept from a chunk's `timings` object (llama.cpp), numbers only.
TIMING_KEYS = ("prompt_n", "prompt_ms", "predicted_n", "predicted_ms", "predicted_per_token_ms", "cache_n")


class MalformedStream(ValueError):
    """What the server sent cannot be a valid answer to the request (the request fails with this reason)."""


class ImplausibleUsage(ValueError):
    """The server's token counts contradict the stream it sent (the request fails with this reason)."""


@dataclass
class Chunk:
    """What one `data:` payload says: content or not, usage, finish reason, fingerprint, engine timings."""

    content: bool = False
    usage: dict[str, Any] | None = None
    finished: bool = False
    fingerprint: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


def _no_constant(name: str) -> Any:
    raise MalformedStream(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)  # one decoder: json.loads(..., kw) makes one per call


def parse_json(raw: bytes | str) -> Any:
    """JSON from a server: NaN/Infinity and nesting too deep for the parser are refused (MalformedStream)."""
    try:
        return _DECODER.decode(raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw)
    except RecursionError:
        raise MalformedStream("JSON nested too deeply") from None
    except UnicodeDecodeError:
        raise MalformedStream("not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise MalformedStream(f"not JSON ({exc.msg})") from None


def short_text(value: Any) -> str | None:
    """A string the server describes itself with, cut to MAX_IDENTITY_TEXT characters; None if not a string."""
    return value[:MAX_IDENTITY_TEXT] if isinstance(value, str) else None


def _content(choice: Any) -> bool:
    """Whether a choice of a chunk carries output text (a string; anything else is no content)."""
    if not isinstance(choice, dict):
        return False
    delta = choice.get("delta")
    text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
    return isinstance(text, str) and bool(text)


def _timings(value: Any) -> dict[str, float]:
    """The numeric fields of TIMING_KEYS from an engine's `timings` object; {} for anything else."""
    if not isinstance(value, dict):
        return {}
    kept = {k: value.get(k) for k in TIMING_KEYS}
    return {k: float(v) for k, v in kept.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0}


def parse_chunk(payload: str) -> Chunk:
    """One `data:` payload -> a Chunk; MalformedStream for an error chunk or a badly typed field."""
    chunk = parse_json(payload)
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
    content = finished = False
    for choice in choices or ():
        content = content or _content(choice)
        finished = finished or (isinstance(choice, dict) and isinstance(choice.get("finish_reason"), str))
    timings = chunk.get("timings")
    return Chunk(content, usage or None, finished, short_text(chunk.get("system_fingerprint")),
                 _timings(timings) if timings is not None else {})  # fmt: skip


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


async def read_at_most(content: Any, limit: int) -> bytes:
    """Up to `limit` bytes of a body (what arrives until then or the end): never more is read or held."""
    data = bytearray()
    while len(data) < limit:
        block = await content.read(limit - len(data))
        if not block:
            break
        data += block
    return bytes(data)


async def body_lines(content: Any, limit: int = MAX_LINE_BYTES) -> Any:
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


def failure_kind(exc: BaseException) -> str:
    """The reason's first word(s), by which failures are counted (`serving.failure_reasons`)."""
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, ImplausibleUsage):
        return "implausible usage"
    if isinstance(exc, MalformedStream):
        return "malformed stream"
    return type(exc).__name__
