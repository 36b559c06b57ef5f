"""Rendering records: plain functions from records to text. No statistics are computed here beyond unit
conversion; everything comes from `Record.latency()`, `Record.throughput()` and `Record.generation()`.

Columns (times in milliseconds):
  p50 [95% CI]   median latency per call and its distribution-free 95% interval (blank when n < 6)
  p90, p99       nearest-rank percentiles of per-call latency
  items/s        batch x iterations / timed-loop wall time
  TTFT, TPOT     generation only: medians of time to first token and time per output token
  tok/s          generation only: output tokens / timed-loop wall time
  GFLOP/s        counted FLOPs per call / median latency
  top-1 / cos    accuracy guard against the fp32 CPU reference: top-1 agreement of logits (- for encoders) and
                 cosine similarity of the outputs; blank for the reference itself
  peak RSS       peak resident memory of the worker process (build included), MiB
  scenario       a LoadGen scenario (blank: the latency loop); for those cells every figure is LoadGen's own:
                 p50/p90/p99 of its per-sample (per-query for multi-stream) latencies, items/s its samples per
                 second (with LoadGen's overhead), TTFT/TPOT its token latencies, and "LoadGen result" its
                 VALID/INVALID verdict, why, and the scenario's metric
A simulated record is marked "(simulated)" in every format; a loop that stopped before its precision target
"(not converged)"; a run whose first and last thirds differ "(drift)".
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Sequence

from bench.core.record import Record
from bench.output.columns import DEFAULT_PERCENTILES, TABLE_COLUMNS, summary_row
from bench.output.format import escape_markdown, markdown_table, text_table

__all__ = ["summary_row", "render", "render_sql", "FORMATS", "DEFAULT_PERCENTILES"]

FORMATS = ("table", "csv", "json", "jsonl", "md")


def _cells(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    used = [(name, get) for name, get in TABLE_COLUMNS if any(str(get(r)) != "" for r in rows) or name == "model"]
    return [name for name, _ in used], [[str(get(r)) for _, get in used] for r in rows]


def _reasons(rows: Sequence[dict[str, Any]]) -> list[str]:
    return [
        f"{r['model']} {r['backend']} {r['precision']} b={r['batch_size']}"
        + (f" s={r['seq_len']}" if r["seq_len"] else "")
        + f": {r['status']}: {r['reason']}"
        for r in rows
        if r["status"] != "ok"
    ]


def render_table(rows: Sequence[dict[str, Any]]) -> str:
    text = text_table(*_cells(rows))
    reasons = _reasons(rows)
    return text + ("\nNot ok:\n" + "".join(f"  {r}\n" for r in reasons) if reasons else "")


def render_markdown(rows: Sequence[dict[str, Any]]) -> str:
    text = markdown_table(*_cells(rows))
    reasons = _reasons(rows)
    return text + ("\n**Not ok:**\n\n" + "".join(f"- {escape_markdown(r)}\n" for r in reasons) if reasons else "")


def render_csv(rows: Sequence[dict[str, Any]]) -> str:
    names: list[str] = []
    for row in rows:
        names += [k for k in row if k not in names]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def render_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(rows), indent=2) + "\n"


def render_jsonl(rows: Sequence[dict[str, Any]]) -> str:
    """One JSON object per line (a cell's summary row), for jq and streaming readers."""
    return "".join(json.dumps(row) + "\n" for row in rows)


_RENDERERS = {
    "table": render_table,
    "csv": render_csv,
    "json": render_json,
    "jsonl": render_jsonl,
    "md": render_markdown,
}


def render(records: Sequence[Record], fmt: str = "table", percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> str:
    """Records in one of FORMATS."""
    return _RENDERERS[fmt]([summary_row(r, percentiles) for r in records])


def _sql_value(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return repr(value) if value == value and abs(value) != float("inf") else "NULL"
    return "'" + str(value).replace("'", "''") + "'"


def _sql_type(values: Sequence[Any]) -> str:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, (int, bool)) for v in present):
        return "INTEGER"
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "REAL"
    return "TEXT"


def render_sql(runs: Sequence[tuple[str, Sequence[Record]]], percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> str:
    """SQL text (as llama-bench's `-o sql`): one table per run, named after its directory, a row per cell; pipe it
    into `sqlite3 FILE`. Columns are the summary row's keys with SQLite types inferred from the values."""
    statements = []
    for name, records in runs:
        rows = [summary_row(r, percentiles) for r in records]
        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        table = '"run_' + "".join(c if c.isalnum() else "_" for c in name).strip("_") + '"'
        types = {c: _sql_type([row.get(c) for row in rows]) for c in columns}
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {table} (" + ", ".join(f'"{c}" {types[c]}' for c in columns) + ");"
        )
        statements += [
            f"INSERT INTO {table} ("
            + ", ".join(f'"{c}"' for c in columns)
            + ") VALUES ("
            + ", ".join(_sql_value(row.get(c)) for c in columns)
            + ");"
            for row in rows
        ]
    return "\n".join(statements) + "\n"


# ---------------------------------------------------------------------------------------------------------
# comparisons (bench compare)
