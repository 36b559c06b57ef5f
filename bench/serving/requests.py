"""The requests `bench serve` takes: the synthetic word tokenizer and the checks of a completion request's body.

Catalogue models carry no tokenizer offline, so text is tokenized by a documented synthetic word tokenizer: a
prompt's whitespace-separated words are its tokens (each word's CRC-32 modulo the vocabulary is its id), and output
token id N is the text " wN". A request the server cannot serve is refused by `parse_request` with a UsageError
naming the field (HTTP 400).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any

from bench.core.errors import UsageError

__all__ = ["Asked", "MAX_TOKENS_LIMIT", "decode_token", "encode_text", "parse_request"]

#: Most tokens one request may ask for (a request over it is refused with HTTP 400, naming the field).
MAX_TOKENS_LIMIT = 1 << 16


def encode_text(text: str, vocab_size: int) -> list[int]:
    """The synthetic word tokenizer: one token per whitespace-separated word, id = CRC-32(word) mod vocab."""
    return [zlib.crc32(word.encode()) % vocab_size for word in text.split()] or [0]


def decode_token(token: int) -> str:
    return f" w{token}"


def _max_tokens(body: dict[str, Any]) -> int:
    value = body.get("max_completion_tokens", body.get("max_tokens", 16))
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOKENS_LIMIT:
        raise UsageError(f"max_tokens: {value!r} is not allowed; expected a whole number from 1 to {MAX_TOKENS_LIMIT}")
    return value


def _prompt_text(body: dict[str, Any], chat: bool) -> str:
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise UsageError("messages: expected a non-empty list of {role, content}")
        if not all(isinstance(m.get("content", ""), str) for m in messages):
            raise UsageError("messages: each content must be a string")
        return " ".join(m.get("content", "") for m in messages)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        prompt = " ".join(prompt)
    if not isinstance(prompt, str):
        raise UsageError("prompt: expected a string (or a list of strings, or a list of token ids)")
    return prompt


def _prompt_ids(body: dict[str, Any], chat: bool, vocab_size: int) -> list[int] | None:
    """A completion prompt given as token ids (as vLLM and llama.cpp take it), checked; None for text."""
    prompt = body.get("prompt")
    if chat or not isinstance(prompt, list) or not prompt or not any(isinstance(p, int) for p in prompt):
        return None
    if not all(isinstance(p, int) and not isinstance(p, bool) and 0 <= p < vocab_size for p in prompt):
        raise UsageError(f"prompt: token ids must be whole numbers from 0 to {vocab_size - 1}")
    return list(prompt)


def _streaming(body: dict[str, Any]) -> tuple[bool, bool]:
    """(stream, include usage) from the body; a string "false" or a non-object stream_options is refused."""
    stream, options = body.get("stream", False), body.get("stream_options")
    if not isinstance(stream, bool):
        raise UsageError(f"stream: {stream!r} is not allowed; expected true or false")
    if options is not None and not isinstance(options, dict):
        raise UsageError(f"stream_options: {json.dumps(options)[:60]} is not allowed; expected an object or null")
    usage = (options or {}).get("include_usage", False)
    if not isinstance(usage, bool):
        raise UsageError(f"stream_options.include_usage: {usage!r} is not allowed; expected true or false")
    return stream, usage


@dataclass
class Asked:
    """One checked request: prompt token ids, max_tokens, whether to stream and to send usage."""

    prompt: list[int]
    max_tokens: int
    stream: bool
    include_usage: bool
    model: str | None


def parse_request(raw: bytes, chat: bool, vocab_size: int, max_positions: int | None, model_name: str) -> Asked:
    """The body of a completion request, checked (UsageError -> HTTP 400 naming the field; 404 for a model that
    is not served is the caller's)."""
    try:
        body = json.loads(raw)
    except RecursionError:
        raise UsageError("body: JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"body: not JSON ({str(exc)[:80]})") from None
    if not isinstance(body, dict):
        raise UsageError("body: expected a JSON object")
    model = body.get("model")
    if not isinstance(model, (str, type(None))):
        raise UsageError("model: expected a string")
    max_tokens = _max_tokens(body)
    prompt = _prompt_ids(body, chat, vocab_size)
    if prompt is None:
        prompt = encode_text(_prompt_text(body, chat), vocab_size)
    stream, include_usage = _streaming(body)
    if max_positions and len(prompt) + max_tokens > max_positions:
        raise UsageError(
            f"max_tokens: {len(prompt)} prompt tokens + {max_tokens} is more than {model_name}'s "
            f"{max_positions} positions; expected a shorter prompt or fewer tokens"
        )
    return Asked(prompt, max_tokens, stream, include_usage, model)
