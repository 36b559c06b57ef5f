"""Renderers of a report (bench.output.report_model.Report): one self-contained HTML file, or GitHub Markdown with
its figures in a folder beside it. Every string is escaped: record strings (names, reasons) are input."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from bench.output.report_model import Report

__all__ = ["render_html", "render_markdown"]


_CSS = (
    "body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}table{border-collapse:collapse;"
    "font-size:12px;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}"
    "th{background:#f3f3f3}img{max-width:100%}p.note{color:#666;font-size:12px}"
)


def render_html(report: Report) -> str:
    """One self-contained HTML file: inline style, images as data: URIs, no scripts, every string escaped."""
    e = html.escape
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(report.title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{e(report.title)}</h1>"
    ]
    for section in report.sections:
        parts.append(f"<h2>{e(section.title)}</h2>")
        if section.text:
            parts.append(f"<p>{_bold_html(e(section.text))}</p>")
        if section.bullets:
            parts.append("<ul>" + "".join(f"<li>{e(b)}</li>" for b in section.bullets) + "</ul>")
        if section.figure:
            data = base64.b64encode(section.figure).decode()
            parts.append(f"<img alt='{e(section.figure_alt)}' src='data:image/png;base64,{data}'>")
        for table in section.tables:
            if table.title:
                parts.append(f"<h3>{e(table.title)}</h3>")
            if table.rows:  # a table with no rows is its title and note only
                parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in table.headers) + "</tr>")
                parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in table.rows]
                parts.append("</table>")
            if table.note:
                parts.append(f"<p class='note'>{e(table.note)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _bold_html(text: str) -> str:
    pieces = text.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(pieces))


def render_markdown(report: Report, figures_dir: Path, link_prefix: str) -> str:
    """GitHub Markdown; each figure is written as PNG into `figures_dir` and linked as `link_prefix/NAME`. Every
    string is HTML-escaped (GitHub renders inline HTML, and record strings -- reasons, names -- are input)."""

    def text(value: object) -> str:
        return html.escape(str(value), quote=False)

    def esc(value: object) -> str:
        return text(value).replace("|", "\\|").replace("\n", " ")

    lines = [f"# {text(report.title)}", ""]
    for section in report.sections:
        lines += [f"## {text(section.title)}", ""]
        if section.text:
            lines += [text(section.text), ""]
        if section.bullets:
            lines += [f"- {text(b)}" for b in section.bullets] + [""]
        if section.figure and section.figure_name:
            figures_dir.mkdir(parents=True, exist_ok=True)
            from bench.core.outfile import write_output  # never through a symlink or onto a run's records

            write_output(figures_dir / section.figure_name, section.figure, "--out")
            lines += [f"![{section.figure_alt}]({link_prefix}/{section.figure_name})", ""]
        for table in section.tables:
            if table.title:
                lines += [f"### {esc(table.title)}", ""]
            if table.rows:  # a table with no rows is its title and note only
                lines.append("| " + " | ".join(esc(h) for h in table.headers) + " |")
                lines.append("|" + "---|" * len(table.headers))
                lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in table.rows]
                lines.append("")
            if table.note:
                lines += [f"_{esc(table.note)}_", ""]
    return "\n".join(lines) + "\n"
