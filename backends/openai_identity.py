"""What serves an endpoint: the engine's name and version, from what the server says about itself.

Read once per cell, each answer bounded (MODELS_BODY_BYTES) and cut short (MAX_IDENTITY_TEXT), never trusted for
anything but the record:
  /v1/models          model ids, `owned_by`, `max_model_len`, and an `engine` object where the server gives one
                      (`bench serve`: {"name": "catchup-bench", "version": ...})
  /version            {"version": ...}: vLLM (and SGLang)
  /props              {"build_info": "b1234-abcdef", ...}: llama.cpp's server
  Server header       the HTTP server's product (llama.cpp's, uvicorn under vLLM and `transformers serve`)
  system_fingerprint  from the first streamed chunk (llama.cpp's build; vLLM where it sends one)

The engine's name, first found: the `engine_name` option (the user's word, for a server that says nothing, e.g.
`transformers serve`), /v1/models' engine, /props (llama.cpp), an `owned_by` that names a known engine, /version
(vLLM when nothing else names it), `transformers` for a uvicorn server whose /v1/models entries carry a loading
`status` (what `transformers serve` lists), then the Server header's product. Its version: the option's `NAME/VERSION`,
the /v1/models engine's, /props' build, /version's, then the fingerprint. `source` says where each came from.
"""

from __future__ import annotations

from typing import Any

from backends.openai_stream import MAX_IDENTITY_TEXT, short_text

__all__ = ["MAX_MODEL_IDS", "models_identity", "engine_identity", "KNOWN_OWNERS"]

MAX_MODEL_IDS = 16  # model ids kept from /v1/models
#: `owned_by` values that name the engine serving the model.
KNOWN_OWNERS = {"vllm": "vllm", "sglang": "sglang", "llamacpp": "llama.cpp", "catchup-bench": "catchup-bench"}


def _engine_field(value: Any) -> dict[str, str] | None:
    """The engine's name and version as strings (a bare string is its name); None for anything else."""
    if isinstance(value, str):
        return {"name": value[:MAX_IDENTITY_TEXT]}
    if not isinstance(value, dict):
        return None
    found = {k: short_text(value.get(k)) for k in ("name", "version")}
    return {k: v for k, v in found.items() if v} or None


def models_identity(data: Any, model: str, server: str | None) -> dict[str, Any]:
    """What the record keeps of /v1/models: typed, each string cut short, at most MAX_MODEL_IDS ids."""
    listed = data.get("data") if isinstance(data, dict) else None
    models = [m for m in listed if isinstance(m, dict)] if isinstance(listed, list) else []
    served = next((m for m in models if m.get("id") == model), models[0] if models else {})
    length = served.get("max_model_len")
    return {
        "server_header": short_text(server),
        "models": [short_text(m.get("id")) for m in models[:MAX_MODEL_IDS]],
        "model": short_text(served.get("id")),
        "owned_by": short_text(served.get("owned_by")),
        "engine": _engine_field(served.get("engine")),
        "max_model_len": length if isinstance(length, int) and not isinstance(length, bool) and length > 0 else None,
        "model_status": short_text(status.get("value")) if isinstance(status := served.get("status"), dict) else None,
    }


def _declared(option: str | None) -> tuple[str | None, str | None]:
    if not option:
        return None, None
    name, _, version = option.partition("/")
    return name[:MAX_IDENTITY_TEXT] or None, version[:MAX_IDENTITY_TEXT] or None


def _first(*found: tuple[str | None, str]) -> tuple[str | None, str | None]:
    """The first (value, source) with a value."""
    return next(((value, source) for value, source in found if value), (None, None))


def engine_identity(
    identity: dict[str, Any],
    version: Any = None,
    props: Any = None,
    fingerprint: str | None = None,
    declared: str | None = None,
) -> dict[str, Any]:
    """The engine {"name", "version", "source"} from the pieces read (module docstring); {} when none says."""
    listed = identity.get("engine") or {}
    version_text = short_text(version.get("version")) if isinstance(version, dict) else None
    build = short_text(props.get("build_info")) if isinstance(props, dict) else None
    owner = KNOWN_OWNERS.get(str(identity.get("owned_by") or "").lower())
    header = identity.get("server_header") or ""
    product = header.split("/")[0].strip() or None
    option_name, option_version = _declared(declared)
    name, name_source = _first(
        (option_name, "option engine_name"),
        (listed.get("name"), "/v1/models engine"),
        ("llama.cpp" if build else None, "/props"),
        (owner, "/v1/models owned_by"),
        ("vllm" if version_text else None, "/version"),
        ("transformers" if product == "uvicorn" and identity.get("model_status") else None, "/v1/models status"),
        (product, "Server header"),
    )
    if name is None:
        return {}
    if name_source == "option engine_name":  # the user's word names another engine than the server may say
        found = {"name": name, "source": name_source}
        return {**found, "version": option_version, "version_source": name_source} if option_version else found
    number, number_source = _first(
        (option_version, "option engine_name"),
        (listed.get("version"), "/v1/models engine"),
        (build, "/props build_info"),
        (version_text, "/version"),
        (fingerprint, "system_fingerprint"),
        (header.partition("/")[2].strip() or None, "Server header"),
    )
    found = {"name": name, "source": name_source}
    if number:
        found.update(version=number, version_source=number_source)
    return found
