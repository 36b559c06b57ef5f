"""The report as plain data: sections of tables (lists of rows), bullets and figures (PNG bytes). Built by
bench.output.report and bench.output.report_catchup, rendered by bench.output.report_render."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Table", "Section", "Report", "draw"]


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass
class Section:
    title: str
    text: str = ""
    tables: list[Table] = field(default_factory=list)
    figure: bytes | None = None
    figure_name: str | None = None
    figure_alt: str = ""
    bullets: list[str] = field(default_factory=list)


@dataclass
class Report:
    title: str
    sections: list[Section]
    catch_ups: list[Any]


def draw(name: str, *args: Any) -> bytes | None:
    """A chart of bench.output.figures by name (matplotlib is imported only when a report draws)."""
    from bench.output import figures

    return getattr(figures, name)(*args)
