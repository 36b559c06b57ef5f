"""Progress you can plan by, on stderr, for `bench run` and every command that runs a sweep.

On a terminal (rich): the sweep's done/total, elapsed time and ETA (mean seconds per finished cell x cells left),
and the running cell's phase (build, warm-up, measure, finish), its elapsed time, calls so far and running median
as its worker reports them; each finished cell is printed above as one line. Not a terminal (CI logs, pipes): the
same facts as plain lines, one when a cell starts and one when it finishes.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from bench.core.record import Record
from bench.core.spec import BenchmarkSpec
from bench.output.format import number, seconds
from bench.runs.runner import SweepProgress

__all__ = ["Progress", "clock"]


class Progress(SweepProgress):
    """The sweep's progress on `stream` (module docstring); `enabled=False` prints nothing."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self.done = 0
        self.cell: tuple[int, BenchmarkSpec] | None = None
        self.cell_info: dict = {}
        self.console = self.live = None
        if enabled and self.tty:
            from rich.console import Console
            from rich.live import Live

            self.console = Console(file=self.stream)
            self.live = Live(console=self.console, auto_refresh=False, transient=True)

    def _eta(self) -> str:
        elapsed = time.monotonic() - self.started
        if not self.done:
            return f"elapsed {clock(elapsed)}"
        left = (self.total - self.done) * elapsed / self.done
        return f"elapsed {clock(elapsed)}, ETA {clock(left)}"

    def _status_line(self) -> str:
        line = f"{self.done}/{self.total} cells, {self._eta()}"
        if self.cell is not None:
            info = self.cell_info
            phase = info.get("phase", "starting")
            extra = f", {info['calls']} calls" if info.get("calls") else ""
            extra += f", median {number(info['median_ms'], 4)} ms" if info.get("median_ms") else ""
            line += f"\n  {self.cell[1].label}: {phase} ({seconds(float(info.get('elapsed_s') or 0), 0)} s{extra})"
        return line

    def _refresh(self) -> None:
        if self.live is not None:
            if not self.live.is_started:
                self.live.start()
            from rich.text import Text

            self.live.update(Text(self._status_line()), refresh=True)

    def submitted(self, count: int) -> None:
        """A streaming executor took `count` cells at once; records arrive as they finish."""
        if self.enabled and count:
            self._print(f"{count} cells submitted; each is reported as it finishes")

    def _print(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, highlight=False, markup=False)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def start(self, index: int, spec: BenchmarkSpec) -> None:
        if not self.enabled:
            return
        self.cell, self.cell_info = (index, spec), {}
        if self.live is not None:
            self._refresh()
        else:
            self._print(f"[{index + 1}/{self.total}] running {spec.label} ({self._eta()})")

    def update(self, info: dict) -> None:
        """The running cell's phase, calls and running median (from its worker); redraws on a terminal."""
        if self.enabled and self.live is not None:
            self.cell_info = info
            self._refresh()

    def finish(self, index: int, record: Record, elapsed: float) -> None:
        self.done += 1
        if not self.enabled:
            return
        self.cell = None
        outcome = record.status if record.status == "ok" else f"{record.status}: {record.reason}"
        self._print(f"[{index + 1}/{self.total}] {outcome} ({seconds(elapsed)} s) {record.spec.label}")
        if self.live is not None:
            if self.done >= self.total:
                self.live.stop()
            else:
                self._refresh()

    def close(self) -> None:
        if self.live is not None and self.live.is_started:
            self.live.stop()


def clock(seconds: float) -> str:
    seconds = int(seconds)
    return (
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )
