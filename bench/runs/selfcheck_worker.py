"""The self-check's worker: harness loop and bare loop on the same model call, interleaved in one process.

Run as ``python -m bench.runs.selfcheck_worker JOB.json RESULT.json`` by `bench.runs.selfcheck`. It builds the model and
inputs exactly as `bench.runs.worker` does (same adapter, threads and inference mode), then alternates blocks of
`block` calls: the harness's `run_timed_loop` (stamps with device sync, GC off, stopping rule) and a bare loop
with nothing but `time.perf_counter_ns()` around each call. The order alternates ABBA so slow drift of a shared
machine falls equally on both sides.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    from backends.registry import backend_class
    from bench.core.settings import MeasureSettings
    from bench.core.spec import BenchmarkSpec
    from bench.measure.loop import run_timed_loop
    from models.catalogue import get_workload

    job = json.loads(Path(argv[0]).read_text())
    spec = BenchmarkSpec.from_dict(job["spec"])
    blocks, block = job["blocks"], job["block"]
    backend = backend_class(spec.backend)(spec)
    prepared = backend.prepare(get_workload(spec.workload), spec)
    call, sync, clock = prepared.call, backend.synchronize, time.perf_counter_ns
    harness_settings = MeasureSettings(
        warmup_iterations=0,
        warmup_time_s=0,
        warmup_window=0,
        min_iterations=block,
        max_iterations=block,
        min_time_s=0,
        ci_target=0,
        max_time_s=3600,
    )

    def harness() -> list[int]:
        return run_timed_loop(prepared, sync, harness_settings).samples_ns

    def bare() -> list[int]:
        samples = []
        for _ in range(block):
            t0 = clock()
            call(clock)
            sync()
            samples.append(clock() - t0)
        return samples

    out: dict[str, list[list[int]]] = {"harness": [], "bare": []}
    with backend.execution_context():
        for _ in range(job["warmup"]):
            call(clock)
        for index in range(blocks):
            order = (("harness", harness), ("bare", bare))
            for name, side in order if index % 2 == 0 else order[::-1]:
                out[name].append(side())
    Path(argv[1]).write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
