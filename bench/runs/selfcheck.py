"""Self-check: does the harness read the same time as a bare loop, and does its parent stay idle?

Method. One isolated worker process (started and awaited exactly as the runner does it: fresh interpreter,
thread environment from the backend, parent blocked on a pidfd) builds the model once and alternates blocks of
calls timed by the harness's `run_timed_loop` and by a bare `perf_counter_ns` loop (ABBA order; see
`bench.runs.selfcheck_worker`). Comparing inside one process, in short alternating blocks, matters on shared
machines: here, medians of 10-call blocks (2 s) of the same process swing by up to +-14% and separate processes
differ by up to 25%, far more than the effect being checked; blocks of 2 calls put both sides in nearly the
same conditions.

Reported:
- pooled medians of both sides, their ratio (harness / bare) and the difference per call in microseconds;
  also the median of the per-block-pair ratios, which is insensitive to drift between pairs;
- an A/A ratio (the bare loop's even blocks against its odd blocks): how far two identical loops differ under
  the same conditions, i.e. the noise floor the harness/bare ratio should be read against;
- the parent's CPU time while it waited, against the wall time of the wait;
- the harness loop's fixed cost per iteration, measured in-process on a no-op call over many iterations
  (the model-call comparison cannot resolve sub-microsecond costs through the noise);
- optionally (`spinning_parent=True`) the same check with a deliberately bad parent that polls the worker in a
  tight loop, to show what a spinning parent does to the measured time on this machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from backends.base import PreparedCall
from bench.core.settings import MeasureSettings
from bench.core.spec import BenchmarkSpec
from bench.core.stats import median
from bench.core.sweep import Matrix, Sweep
from bench.measure.loop import run_timed_loop
from bench.runs.plan import plan_sweep
from bench.runs.runner import SAFE_PATH_FLAG, LocalExecutor, wait_blocking

__all__ = ["SelfCheckResult", "run_selfcheck", "loop_overhead_ns", "format_selfcheck"]

#: Untimed calls before the first block.
WARMUP_CALLS = 5

#: Blocks per side in the spinning-parent demonstration (kept short: everything runs several times slower).
SPIN_DEMO_BLOCKS = 2

#: Iterations of the no-op loop used to measure the harness's fixed per-iteration cost.
NOOP_ITERATIONS = 200_000


@dataclass
class SelfCheckResult:
    spec: dict
    blocks: int
    calls_per_block: int
    harness_median_ns: float
    bare_median_ns: float
    pair_ratios: list[float] = field(default_factory=list)
    aa_ratio: float | None = None  # bare loop, even blocks / odd blocks: the noise floor of this comparison
    parent_cpu_s: float = 0.0
    parent_wait_s: float = 0.0
    noop_harness_ns_per_iteration: float = 0.0
    noop_bare_ns_per_iteration: float = 0.0
    tolerance: float = 0.03
    spinning_parent_bare_median_ns: float | None = None
    spinning_parent_cpu_s: float | None = None

    @property
    def ratio(self) -> float:
        return self.harness_median_ns / self.bare_median_ns

    @property
    def median_pair_ratio(self) -> float:
        return float(median(self.pair_ratios)) if self.pair_ratios else float("nan")

    @property
    def overhead_us(self) -> float:
        return (self.harness_median_ns - self.bare_median_ns) / 1e3

    @property
    def loop_overhead_us(self) -> float:
        return (self.noop_harness_ns_per_iteration - self.noop_bare_ns_per_iteration) / 1e3

    @property
    def within_tolerance(self) -> bool:
        return abs(self.ratio - 1) <= self.tolerance

    def to_dict(self) -> dict:
        data = asdict(self)
        data.update(
            ratio=self.ratio,
            median_pair_ratio=self.median_pair_ratio,
            overhead_us=self.overhead_us,
            loop_overhead_us=self.loop_overhead_us,
            within_tolerance=self.within_tolerance,
        )
        return data


def _spin_until_exit(proc: subprocess.Popen, timeout: float) -> int:
    """The anti-pattern, on purpose and only for the demonstration: poll the worker in a tight loop."""
    deadline = time.monotonic() + timeout
    spins = 0
    while proc.poll() is None:
        spins += 1
        if time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(proc.args, timeout)
    return proc.returncode


def _run_worker(spec: BenchmarkSpec, blocks: int, block: int, spin: bool, timeout_s: float):
    """Run the self-check worker; return (samples by side, parent CPU seconds, wait seconds)."""
    with tempfile.TemporaryDirectory(prefix="bench-selfcheck-") as tmp:
        job, result = Path(tmp, "job.json"), Path(tmp, "result.json")
        job.write_text(json.dumps({"spec": spec.to_dict(), "blocks": blocks, "block": block, "warmup": WARMUP_CALLS}))
        proc = subprocess.Popen(
            [sys.executable, *SAFE_PATH_FLAG, "-m", "bench.runs.selfcheck_worker", str(job), str(result)],
            env=LocalExecutor().worker_env(spec),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        cpu0, wall0 = time.process_time(), time.monotonic()
        try:
            code = _spin_until_exit(proc, timeout_s) if spin else wait_blocking(proc, timeout_s)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        if code != 0 or not result.is_file():
            raise RuntimeError(f"self-check worker failed with status {code}")
        return json.loads(result.read_text()), cpu, wall


def loop_overhead_ns(iterations: int = NOOP_ITERATIONS) -> tuple[float, float]:
    """Wall time per iteration of the harness loop and of a bare loop around a no-op call, in-process."""
    noop = PreparedCall(call=lambda stamp: None, items_per_call=1)
    settings = MeasureSettings(
        warmup_iterations=1000,
        warmup_time_s=0,
        warmup_window=0,
        min_iterations=iterations,
        max_iterations=iterations,
        min_time_s=0,
        ci_target=0,
        max_time_s=600,
    )
    harness = run_timed_loop(noop, lambda: None, settings)
    call, clock, samples = noop.call, time.perf_counter_ns, []
    start = clock()
    for _ in range(iterations):
        t0 = clock()
        call(clock)
        samples.append(clock() - t0)
    bare_wall = clock() - start
    return harness.loop_wall_ns / iterations, bare_wall / iterations


def _median(blocks: list[list[int]]) -> float:
    return float(median([s for b in blocks for s in b]))


def _aa_ratio(bare_blocks: list[list[int]]) -> float | None:
    """An A/A comparison from the bare side alone: median of its even blocks over median of its odd blocks."""
    even, odd = bare_blocks[0::2], bare_blocks[1::2]
    return _median(even) / _median(odd) if even and odd else None


def run_selfcheck(
    model: str = "bert-base-uncased",
    batch_size: int = 1,
    seq_len: int = 128,
    blocks: int = 40,
    block: int = 2,
    tolerance: float = 0.03,
    spinning_parent: bool = False,
    timeout_s: float = 3600,
) -> SelfCheckResult:
    spec = plan_sweep(
        Sweep((Matrix(models=(model,), backends=("cpu",), batch_sizes=(batch_size,), seq_lens=(seq_len,)),))
    ).cells[0]
    samples, cpu, wall = _run_worker(spec, blocks, block, spin=False, timeout_s=timeout_s)
    pairs = [median(h) / median(b) for h, b in zip(samples["harness"], samples["bare"])]
    noop_harness, noop_bare = loop_overhead_ns()
    result = SelfCheckResult(
        spec=spec.to_dict(),
        blocks=blocks,
        calls_per_block=block,
        harness_median_ns=_median(samples["harness"]),
        bare_median_ns=_median(samples["bare"]),
        pair_ratios=pairs,
        aa_ratio=_aa_ratio(samples["bare"]),
        parent_cpu_s=cpu,
        parent_wait_s=wall,
        noop_harness_ns_per_iteration=noop_harness,
        noop_bare_ns_per_iteration=noop_bare,
        tolerance=tolerance,
    )
    if spinning_parent:
        spun, spin_cpu, _ = _run_worker(spec, SPIN_DEMO_BLOCKS, block, spin=True, timeout_s=timeout_s)
        result.spinning_parent_bare_median_ns = _median(spun["bare"])
        result.spinning_parent_cpu_s = spin_cpu
    return result


def format_selfcheck(result: SelfCheckResult) -> str:
    spec = BenchmarkSpec.from_dict(result.spec)
    verdict = "PASS" if result.within_tolerance else "FAIL"
    lines = [
        f"selfcheck: {spec.label}; {result.blocks} blocks x {result.calls_per_block} calls per side, "
        f"interleaved in one worker; {os.cpu_count()} CPUs",
        f"  harness median     {result.harness_median_ns / 1e6:10.3f} ms",
        f"  bare loop median   {result.bare_median_ns / 1e6:10.3f} ms",
        f"  ratio harness/bare {result.ratio:.4f} (median of block-pair ratios {result.median_pair_ratio:.4f}); "
        f"difference {result.overhead_us:+.1f} us per call -> {verdict} (tolerance +-{result.tolerance:.0%})",
        f"  noise floor: A/A ratio of the bare loop's alternate blocks {result.aa_ratio or float('nan'):.4f}",
        f"  harness loop fixed cost {result.loop_overhead_us:+.3f} us per iteration "
        f"({result.noop_harness_ns_per_iteration:.0f} ns vs {result.noop_bare_ns_per_iteration:.0f} ns, no-op call)",
        f"  parent CPU while waiting: {result.parent_cpu_s:.3f} s over {result.parent_wait_s:.1f} s",
    ]
    if result.spinning_parent_bare_median_ns is not None:
        slowdown = result.spinning_parent_bare_median_ns / result.bare_median_ns
        lines.append(
            f"  with a spinning parent (demonstration): bare median {result.spinning_parent_bare_median_ns / 1e6:.3f} ms"
            f" = {slowdown:.2f}x; parent CPU {result.spinning_parent_cpu_s:.1f} s"
        )
    return "\n".join(lines)
