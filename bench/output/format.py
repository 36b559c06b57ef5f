"""One number formatter, one accuracy cell and one table writer for every text, Markdown and report output.

- `number`: None/NaN -> `missing`; 0 -> "0"; |x| >= 1000 with thousands separators and no decimals; |x| < 1 to
  `digits` significant digits; otherwise `digits` digits in all (12.3, 1.23). Booleans print yes/no.
- `accuracy_cell`: "top-1 agreement / cosine similarity" against the fp32 reference ("" when not compared).
- `markdown_table` escapes what record strings could smuggle in: `|` (it would split a cell) and `<`, `>`, `&`
  (GitHub renders inline HTML); `text_table` pads columns for a terminal.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

__all__ = ["number", "seconds", "accuracy_cell", "markdown_table", "text_table", "escape_markdown"]


def number(value: Any, digits: int = 3, missing: str = "") -> str:
    """A figure as every table shows it (rules in the module docstring)."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return missing
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0:
            return "0"
        magnitude = abs(value)
        if magnitude >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}" if magnitude < 1 else f"{value:.{max(1, digits - len(str(int(magnitude))))}f}"
    return str(value)


def seconds(value: float, places: int = 1) -> str:
    """A duration in seconds as progress lines show it: fixed decimals (1.0, 12.3), no unit."""
    return f"{value:.{places}f}"


def accuracy_cell(accuracy: Mapping[str, Any] | None) -> str:
    """Deviation from the fp32 reference in one cell: "top-1 / cosine" ("-" for a missing top-1)."""
    if not accuracy or accuracy.get("cosine_similarity") is None:
        return ""
    top1 = accuracy.get("top1_agreement")
    return f"{'-' if top1 is None else format(top1, '.3f')} / {accuracy['cosine_similarity']:.5f}"


def escape_markdown(text: Any) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table, every cell escaped; ends with a newline."""
    lines = [
        "| " + " | ".join(escape_markdown(h) for h in headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(escape_markdown(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns separated by two spaces, a dashed rule under the headers; ends with a newline."""
    body = [[str(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(line[i]) for line in body)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in body]
    return "\n".join(lines) + "\n"
