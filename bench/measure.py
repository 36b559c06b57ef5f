"""The timed loop: warm-up, then timed iterations until the stopping rule is met.

Method (see MeasureSettings for the thresholds):
- Every stamp synchronises the device first (`synchronize` is supplied by the backend) and then reads
  `time.perf_counter_ns()`. A sample is end stamp - start stamp of one call; the loop's own bookkeeping lies
  between samples, never inside one.
- Warm-up calls are run and discarded until both the minimum warm-up count and time are reached.
- Python's cyclic garbage collector is collected once and disabled for the timed loop (as `timeit` does) and
  restored after, so a collection pause never lands inside a sample.
- Throughput is items x iterations / (last end stamp - first start stamp): items over the timed loop's wall
  time, which includes the (sub-microsecond) gaps between calls, as a serving loop would see.

The clock is a parameter so tests can drive the loop with a seeded fake clock.
"""

from __future__ import annotations

import gc
import time
from typing import Callable

from backends.base import PreparedCall
from bench.record import Measurement
from bench.spec import MeasureSettings

__all__ = ["make_stamp", "run_timed_loop"]


def make_stamp(synchronize: Callable[[], None], clock: Callable[[], int] = time.perf_counter_ns) -> Callable[[], int]:
    """A clock that first waits for the device: the only way the loop reads time."""

    def stamp() -> int:
        synchronize()
        return clock()

    return stamp


def _warm_up(prepared: PreparedCall, stamp: Callable[[], int], settings: MeasureSettings) -> tuple[int, int]:
    """Run discarded calls until both warm-up minima are met (or max_time_s passes). Returns (count, ns)."""
    need_ns = int(settings.warmup_time_s * 1e9)
    cap_ns = int(settings.max_time_s * 1e9)
    count = 0
    start = stamp()
    elapsed = 0
    while (count < settings.warmup_iterations or elapsed < need_ns) and elapsed < cap_ns:
        prepared.call(stamp)
        count += 1
        elapsed = stamp() - start
    return count, elapsed


def run_timed_loop(
    prepared: PreparedCall,
    synchronize: Callable[[], None],
    settings: MeasureSettings,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> Measurement:
    """Warm up, then time calls of `prepared` until the stopping rule in `settings` ends the loop."""
    stamp = make_stamp(synchronize, clock)
    warmup_count, warmup_ns = _warm_up(prepared, stamp, settings)
    min_ns, max_ns = int(settings.min_time_s * 1e9), int(settings.max_time_s * 1e9)
    call = prepared.call
    samples: list[int] = []
    marks_per_call: list[list[int]] = []
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        loop_start = stamp()
        start = loop_start
        while True:
            marks = call(stamp)
            end = stamp()
            samples.append(end - start)
            if marks is not None:
                marks_per_call.append([m - start for m in marks])
            n, elapsed = len(samples), end - loop_start
            if n >= settings.max_iterations:
                stopped_by = "max_iterations"
                break
            if n >= settings.min_iterations and elapsed >= min_ns:
                stopped_by = "min_reached"
                break
            if elapsed >= max_ns:
                stopped_by = "max_time"
                break
            start = stamp()
    finally:
        if gc_was_enabled:
            gc.enable()
    return Measurement(
        samples_ns=samples,
        loop_wall_ns=end - loop_start,
        items_per_iteration=prepared.items_per_call,
        warmup_iterations=warmup_count,
        warmup_ns=warmup_ns,
        stopped_by=stopped_by,
        settings=settings.to_dict(),
        token_marks_ns=marks_per_call or None,
        tokens_per_iteration=prepared.tokens_per_call,
    )
