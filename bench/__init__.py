"""catchup-bench: inference latency and throughput you can trust, and an honest catch-up estimate.

The public API (docs/API.md) is imported lazily, so `import bench` loads no backend library:

    bench.run(spec_or_sweep, out=DIR)   plan and run cells into a run directory; the records
    bench.load(DIR)                     a pandas DataFrame, one row per cell (the CSV columns)
    bench.records(DIR)                  the latest Record per cell
    bench.compare(BASE, CURRENT)        the regression gate's comparison
    bench.report(DIR, out=PATH)         the HTML or Markdown report

Packages, lowest layer first: bench.core (spec, record, stats, call types), bench.measure (timed loop, LoadGen),
bench.runs (plan, store, executors, workers), bench.analysis (compare, catch-up, techniques), bench.output
(formatting, text, report, figures), bench.cli (one module per command). `backends` and `models` import only
bench.core. docs/ARCHITECTURE.md draws the layers; pyproject.toml holds them as import-linter contracts.
"""

import os as _os

# torch >= 2.5 imports every installed device extension (torch_npu, ...) inside `import torch`; one that cannot load
# (torch_npu without CANN) makes `import torch` itself raise, and with it `bench list`. Extensions are imported
# explicitly where they are used (backends/ascend.py probes torch_npu in a child process). A user's own setting wins.
_os.environ.setdefault("TORCH_DEVICE_BACKEND_AUTOLOAD", "0")

from bench.core import __version__  # noqa: E402
from bench.core.errors import UsageError  # noqa: E402
from bench.core.settings import MeasureSettings  # noqa: E402
from bench.core.spec import BenchmarkSpec  # noqa: E402
from bench.core.sweep import Matrix, Sweep  # noqa: E402

__all__ = [
    "__version__",
    "UsageError",
    "BenchmarkSpec",
    "Matrix",
    "MeasureSettings",
    "Sweep",
    "run",
    "records",
    "load",
    "compare",
    "report",
]

_API = {"run", "records", "load", "compare", "report"}


def __getattr__(name: str):
    if name in _API:
        from bench import api

        return getattr(api, name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
