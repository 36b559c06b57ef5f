"""The failure table of a run's serving-engine cells: failed requests by reason, and retried ones apart.

One row per cell and reason: `failed` counts requests that failed with that reason (the first word(s) of their
error: `HTTP 422`, `timeout`, `ServerDisconnectedError`, `malformed stream`, ...); `retried` counts the attempts
that failed with it before any byte of a response arrived and were sent again (`-O retries`), whether or not the
retry then succeeded. Cells with neither are left out; no row, no table.
"""

from __future__ import annotations

from typing import Sequence

from bench.core.record import Record
from bench.output.format import text_table

__all__ = ["failure_rows", "render_failures"]


def _cell(record: Record) -> str:
    load = (record.serving or {}).get("load") or {}
    engine = ((record.serving or {}).get("server") or {}).get("engine_identity") or {}
    parts = [record.spec.workload, f"c={load.get('concurrency')}"]
    if load.get("request_rate"):
        parts.append(f"rate={load['request_rate']:g}")
    if engine.get("name"):
        parts.append(engine["name"])
    return " ".join(str(p) for p in parts)


def failure_rows(records: Sequence[Record]) -> list[list[str]]:
    """[cell, reason, failed, retried, of requests] for every reason of every serving cell (module docstring)."""
    rows = []
    for record in records:
        section = record.serving or {}
        failed = section.get("failure_reasons") or {}
        retried = section.get("retry_reasons") or {}
        for reason in sorted(set(failed) | set(retried)):
            rows.append(
                [
                    _cell(record),
                    reason,
                    str(failed.get(reason, 0)),
                    str(retried.get(reason, 0)),
                    str(section.get("requests_sent", "")),
                ]  # fmt: skip
            )
    return rows


def render_failures(records: Sequence[Record]) -> str:
    """The table as text, or "" when no serving cell had a failed or retried request."""
    rows = failure_rows(records)
    if not rows:
        return ""
    return "failed and retried requests by reason:\n" + text_table(["cell", "reason", "failed", "retried", "of"], rows)
