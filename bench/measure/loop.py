"""The timed loop: warm-up until stable, then timed iterations until the median is known precisely enough.

Method (see MeasureSettings for the thresholds):
- Every stamp synchronises the device first (`synchronize` is supplied by the backend) and then reads
  `time.perf_counter_ns()`. A sample is end stamp - start stamp of one call; the loop's own bookkeeping lies
  between samples, never inside one.
- Warm-up calls are discarded: first the minimum count and time, then windows of calls until two consecutive
  window medians move by less than the tolerance (stable), or the warm-up cap passes (recorded as not stable).
- Python's cyclic garbage collector is collected once and disabled for the timed loop (as `timeit` does) and
  restored after, so a collection pause never lands inside a sample.
- Stopping on precision: once the minimum count and time are met, the relative half-width of the median's 95%
  distribution-free interval is checked at n = 30, 45, 68, ... (x1.5; a geometric schedule keeps the checks'
  cost negligible and limits optional-stopping effects); the loop stops when it is within `ci_target`. It stops
  on precision, never on a significance test. Reaching max_iterations or max_time_s first means not converged.
- Throughput is items x iterations / (last end stamp - first start stamp): items over the timed loop's wall
  time, which includes the gaps between calls, as a serving loop would see.
- Device time (where the backend has timing events, e.g. CUDA): a start event is recorded just before each
  timed call and an end event just after it; the elapsed device time is read once the end stamp has
  synchronised the device, so each call gets a device-side sample beside its wall-clock sample. Wall minus
  device time is host overhead (Python, launches, synchronisation).
- Telemetry (power, energy, clocks) is sampled from the first timed call's start stamp to the last one's end:
  warm-up is not in it.

The clock is a parameter so tests can drive the loop with a seeded fake clock.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from bench.core.calls import PreparedCall, Stamp, Telemetry, make_stamp
from bench.core.hostload import HostLoadSampler
from bench.core.record import Measurement
from bench.core.settings import MeasureSettings
from bench.core.stats import median_and_halfwidth

__all__ = ["run_timed_loop", "FIRST_PRECISION_CHECK", "CHECK_GROWTH"]

#: The first sample count at which the median's interval is checked, and the growth of the check schedule.
FIRST_PRECISION_CHECK = 30
CHECK_GROWTH = 1.5

#: Consecutive stable windows that make a process warm.
STABLE_WINDOWS = 2


def _warm_up(prepared: PreparedCall, stamp: Callable[[], int], settings: MeasureSettings):
    """Discarded calls: minimum count/time, then stability windows. Returns (count, ns, stable)."""
    need_ns = int(settings.warmup_time_s * 1e9)
    cap_ns = int(min(settings.warmup_max_time_s, settings.max_time_s) * 1e9)
    count, start = 0, stamp()
    elapsed = 0
    while (count < settings.warmup_iterations or elapsed < need_ns) and elapsed < cap_ns:
        prepared.call(stamp)
        count += 1
        elapsed = stamp() - start
    if settings.warmup_window == 0:
        return count, elapsed, None
    medians: list[float] = []
    calm = 0
    while elapsed < cap_ns:
        window = []
        for _ in range(settings.warmup_window):
            t0 = stamp()
            prepared.call(stamp)
            window.append(stamp() - t0)
        count += settings.warmup_window
        elapsed = stamp() - start
        medians.append(statistics.median(window))
        if len(medians) > 1 and abs(medians[-1] / medians[-2] - 1) < settings.warmup_tolerance:
            calm += 1
            if calm >= STABLE_WINDOWS:
                return count, elapsed, True
        else:
            calm = 0
    # the cap passed: unstable if there were enough windows to judge, undetermined otherwise
    return count, elapsed, (False if len(medians) > STABLE_WINDOWS else None)


@dataclass
class _StopRule:
    """When the timed loop ends: at least min_iterations and min_time; then, with a precision target, once the
    median's interval half-width is within it (checked on a geometric schedule, FIRST_PRECISION_CHECK x
    CHECK_GROWTH^k calls, so the sort costs O(n log n) in all); or at max_iterations or max_time."""

    settings: MeasureSettings
    report: Callable[[str, int, float | None], None]
    next_check: int = 0

    def __post_init__(self) -> None:
        self.min_ns = int(self.settings.min_time_s * 1e9)
        self.max_ns = int(self.settings.max_time_s * 1e9)
        self.next_check = max(FIRST_PRECISION_CHECK, self.settings.min_iterations)

    def stop(self, samples: list[int], elapsed: int) -> str | None:
        """Why the loop stops after this sample, or None to go on."""
        settings, n = self.settings, len(samples)
        if n >= settings.min_iterations and elapsed >= self.min_ns:
            if settings.ci_target == 0:
                return "min_reached"
            if n >= self.next_check:
                running, halfwidth = median_and_halfwidth(samples)  # one sort for both
                self.next_check = math.ceil(self.next_check * CHECK_GROWTH)
                self.report("measure", n, running)
                if halfwidth is not None and halfwidth <= settings.ci_target:
                    return "precision_reached"
        if n >= settings.max_iterations:
            return "max_iterations"
        if elapsed >= self.max_ns:
            return "max_time"
        return None


@dataclass
class _Timed:
    """What the loop collected: host samples, device samples, token marks (relative to each call's start)."""

    samples: list[int] = field(default_factory=list)
    device_samples: list[int] = field(default_factory=list)
    marks_per_call: list[list[int]] = field(default_factory=list)
    loop_wall_ns: int = 0
    stopped_by: str = ""


def _time_calls(call, stamp: Stamp, device_timer: Any, rule: _StopRule) -> _Timed:
    """The timed loop itself: stamp, call, stamp; the stopping rule runs between calls, outside any sample."""
    timed = _Timed()
    loop_start = start = stamp()
    while True:
        if device_timer is not None:
            device_timer.start()
            marks = call(stamp)
            device_timer.stop()
            end = stamp()
            timed.device_samples.append(device_timer.elapsed_ns())
        else:
            marks = call(stamp)
            end = stamp()
        timed.samples.append(end - start)
        if marks is not None:
            timed.marks_per_call.append([m - start for m in marks])
        why = rule.stop(timed.samples, end - loop_start)
        if why:
            timed.loop_wall_ns, timed.stopped_by = end - loop_start, why
            return timed
        start = stamp()


def run_timed_loop(
    prepared: PreparedCall,
    synchronize: Callable[[], None],
    settings: MeasureSettings,
    clock: Callable[[], int] = time.perf_counter_ns,
    device_timer: Any = None,
    telemetry: Telemetry | None = None,
    on_progress: Callable[[str, int, float | None], None] | None = None,
) -> Measurement:
    """Warm up, then time calls of `prepared` until the stopping rule in `settings` ends the loop.

    `device_timer` (start/stop/elapsed_ns) adds device-side samples; `telemetry` (start/stop) is sampled over
    the timed calls. Both come from the backend; None means the device has none. `on_progress(phase, calls,
    median_ns)` hears "warm-up" and "measure" as they start and the running median at each precision check
    (between calls, on the geometric check schedule, so it adds nothing to any sample). The garbage collector
    is off while the loop runs (after one collection), so a collection never lands inside a sample."""
    report = on_progress or (lambda phase, calls, median_ns: None)
    stamp = make_stamp(synchronize, clock)
    report("warm-up", 0, None)
    warmup_count, warmup_ns, warmup_stable = _warm_up(prepared, stamp, settings)
    report("measure", 0, None)
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    telemetry = telemetry or Telemetry()
    host_load = HostLoadSampler()
    try:
        host_load.start()
        telemetry.start()
        timed = _time_calls(prepared.call, stamp, device_timer, _StopRule(settings, report))
    finally:
        telemetry_figures = telemetry.stop()
        host_load_figures = host_load.stop()
        if gc_was_enabled:
            gc.enable()
    return Measurement(
        samples_ns=timed.samples,
        loop_wall_ns=timed.loop_wall_ns,
        items_per_iteration=prepared.items_per_call,
        warmup_iterations=warmup_count,
        warmup_ns=warmup_ns,
        stopped_by=timed.stopped_by,
        settings=settings.to_dict(),
        token_marks_ns=timed.marks_per_call or None,
        tokens_per_iteration=prepared.tokens_per_call,
        warmup_stable=warmup_stable,
        device_samples_ns=timed.device_samples or None,
        telemetry=telemetry_figures,
        host_load=host_load_figures,
    )
