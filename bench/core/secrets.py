"""Secrets in option values: stored and shown redacted, used for real only where they are needed.

A URL's user information (`user:password@`) and the values of its query string (`?api-key=...`) are secrets. The
redacted form keeps the scheme, host, port, path and the query's parameter names, with `***` in place of each
secret part: `http://user:pw@host:8000/v1?key=abc` -> `http://***@host:8000/v1?key=***`. That form is what a
record, a cell key, a progress line, a table or a report holds; the real value travels only from the planner to the
worker that connects (its job file, in a private temporary directory). Text a server or a library produces (an
error body, an exception) is scrubbed of every known secret before it is stored (`scrub`, `scrub_tree`).

Redaction works on text, not on a parsed URL, so a malformed URL (`http://[::1`) is redacted as well.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from typing import Any, Iterable

__all__ = ["REDACTED", "redact_url", "redact_urls_in", "url_secrets", "scrub", "scrub_tree", "MIN_SECRET_LENGTH"]

REDACTED = "***"

#: Shorter secrets are not scrubbed from free text (a 2-letter password would turn every word it occurs in into
#: `***`); they are still redacted wherever they sit in a URL.
MIN_SECRET_LENGTH = 4

# scheme://userinfo@ -- userinfo runs to the last "@" before the host's end ("/", "?", "#", whitespace, quote)
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#\s\"'<>]*)@")
# scheme://authority/path?query -- the query runs to a fragment, whitespace or a quote
_QUERY = re.compile(r"(?P<base>[A-Za-z][A-Za-z0-9+.-]*://[^?#\s\"'<>]*)\?(?P<query>[^#\s\"'<>]*)")


def _redact_query(query: str) -> str:
    parts = []
    for part in query.split("&"):
        name, sep, _ = part.partition("=")
        parts.append(f"{name}={REDACTED}" if sep else REDACTED if part else part)
    return "&".join(parts)


def redact_urls_in(text: str) -> str:
    """`text` with the user information and query values of every URL in it replaced by `***`."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    return _QUERY.sub(lambda m: f"{m['base']}?{_redact_query(m['query'])}", text)


def redact_url(url: str) -> str:
    """One URL as it may be stored and shown (module docstring); the fragment is dropped."""
    return redact_urls_in(url.partition("#")[0])


def url_secrets(url: str) -> tuple[str, ...]:
    """The secret parts of a URL (user, password, query values), raw and percent-decoded, and the Basic auth
    credentials they make, for `scrub`."""
    found: list[str] = []
    match = _USERINFO.search(url)
    if match:
        user, _, password = match["userinfo"].partition(":")
        plain = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
        found += [user, password, base64.b64encode(plain.encode()).decode()]  # as a Basic auth header sends it
    query = _QUERY.search(url)
    if query:
        found += [part.partition("=")[2] or part for part in query["query"].split("&")]
    decoded = [urllib.parse.unquote_plus(s) for s in found]
    return tuple(dict.fromkeys(s for s in (*found, *decoded) if s and s != REDACTED))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret of at least MIN_SECRET_LENGTH characters replaced by `***`, and URLs redacted."""
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return redact_urls_in(text)


def scrub_tree(value: Any, secrets: Iterable[str]) -> Any:
    """A JSON-like value (dicts, lists, strings) with `scrub` applied to every string in it, keys included."""
    known = tuple(secrets)
    if isinstance(value, str):
        return scrub(value, known)
    if isinstance(value, dict):
        return {scrub_tree(k, known): scrub_tree(v, known) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(scrub_tree(v, known) for v in value)
    return value
