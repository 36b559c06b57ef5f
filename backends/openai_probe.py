"""One look at an engine before its load: what it is, which fields it takes, whether it takes token-id prompts.

`probe_engine` sends a few short requests (max_tokens 2, a prompt from a seed stream of its own, so nothing it
leaves in a prefix cache helps a timed request) with the body the load would send:
  - HTTP 400 or 422 whose text names a default field (`DEFAULT_FIELDS`: `ignore_eos`, `min_tokens`,
    `stream_options`, `temperature`): those fields are dropped from every request of the cell and the probe is
    sent again (`transformers serve` refuses `ignore_eos` and `min_tokens` with 422: every request failed before);
  - a 400/422 naming a field of `-O extra_body`: a UsageError naming the field and how to drop it (at plan
    time: one line, exit 2, nothing written);
  - a 400/422 naming `prompt` for a token-id prompt: the cell falls back to text trimmed to length (`-O
    prompts=ids` makes it a UsageError instead);
  - anything else (a 401, a 5xx, a malformed stream, a refused connection): the probe stops there and the load
    finds out, request by request, as it would have without a probe.
A field is "named" when it occurs in the error text as a whole word (`(?<![\\w])name(?![\\w])`). At most
MAX_PROBES requests. The probe also reads the engine's identity (`backends.openai_identity`: /v1/models,
/version, /props, the Server header, the stream's system_fingerprint).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from backends.openai_client import DEFAULT_FIELDS, OpenAIClient
from backends.openai_identity import engine_identity, models_identity
from bench.core.errors import UsageError
from bench.core.secrets import scrub_tree

__all__ = ["Probe", "probe_engine", "named_fields", "MAX_PROBES", "FIELD_STATUSES"]

MAX_PROBES = 4
#: The statuses by which engines refuse a field (FastAPI/pydantic: 422; vLLM, llama.cpp, bench serve: 400).
FIELD_STATUSES = (400, 422)
PROBE_TOKENS = 2


@dataclass
class Probe:
    """What the probe found: identity (with the engine), fields to drop, whether token-id prompts are taken."""

    identity: dict[str, Any] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    ids_accepted: bool | None = None  # None: not asked (no token-id prompt) or not found out
    answered: bool = False  # a probe request succeeded
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"dropped_fields": self.dropped, "ids_accepted": self.ids_accepted, "probe_answered": self.answered,
                "notes": self.notes}  # fmt: skip


def named_fields(text: str, names: list[str] | tuple[str, ...]) -> list[str]:
    """The names that occur in `text` as whole words."""
    return [n for n in names if re.search(rf"(?<![\w]){re.escape(n)}(?![\w])", text)]


async def _identity(client: OpenAIClient, declared: str | None, fingerprint: str | None) -> dict[str, Any]:
    """/v1/models, /version and /props, each optional; the engine's name and version from them."""
    found: dict[str, Any] = {}
    try:
        models, server = await client.get_json("/v1/models")
        found = models_identity(models, client.model, server)
    except Exception as exc:  # identity is informative; the load decides whether the run worked
        found = {"error": client.scrub(f"{type(exc).__name__}: {exc}")}
    extra: dict[str, Any] = {}
    for path in ("/version", "/props"):
        try:
            extra[path], _ = await client.get_json(path)
        except Exception:  # an engine without the path, or one that fails it: nothing learnt from it
            extra[path] = None
    found["engine_identity"] = engine_identity(found, extra["/version"], extra["/props"], fingerprint, declared)
    if fingerprint:
        found["system_fingerprint"] = fingerprint
    return scrub_tree(found, client.secrets)


async def probe_engine(
    client: OpenAIClient,
    prompt: str | list[int],
    text_prompt: str,
    declared_engine: str | None = None,
    ids_required: bool = False,
) -> Probe:
    """Probe the engine with the load's body (module docstring). `prompt` is what the load will send (token ids
    or text), `text_prompt` the text to fall back to. Raises UsageError for a refused extra_body field, or
    refused token ids when they are required."""
    probe = Probe(ids_accepted=True if isinstance(prompt, list) else None)
    fingerprint = None
    for _ in range(MAX_PROBES):
        result = await client.request(prompt, PROBE_TOKENS)
        if result.ok:
            probe.answered, fingerprint = True, result.fingerprint
            break
        if result.status not in FIELD_STATUSES:
            probe.notes.append(f"probe: {result.error}"[:240])
            break
        prompt = _refused(client, probe, result.error or "", prompt, text_prompt, ids_required)
        if prompt is None:
            break
    probe.identity = await _identity(client, declared_engine, fingerprint)
    return probe


def _refused(client, probe: Probe, error: str, prompt, text_prompt: str, ids_required: bool):
    """What to send next after a 400/422 (module docstring); None to stop probing."""
    extra = named_fields(error, list(client.extra_body))
    if extra:
        raise UsageError(
            f"options.extra_body: the engine refused field {extra[0]!r} ({error[:160]}); drop {extra[0]!r} "
            "from -O extra_body"
        )
    defaults = [n for n in named_fields(error, DEFAULT_FIELDS) if n not in client.drop]
    if defaults:
        client.drop.update(defaults)
        probe.dropped.extend(defaults)
        return prompt
    if isinstance(prompt, list) and named_fields(error, ("prompt", "prompts", "input")):
        if ids_required:
            raise UsageError(
                f"options.prompts: 'ids' is not allowed for this engine: it refused a token-id prompt "
                f"({error[:160]}); expected prompts=auto or prompts=text"
            )
        probe.ids_accepted = False
        return text_prompt
    probe.notes.append(f"probe: {error}"[:240])
    return None
