"""The timed loop, driven by a seeded fake clock (a stand-in for perf_counter_ns) so results are exact."""

import gc
import random

from backends.base import PreparedCall
from bench.core.settings import MeasureSettings
from bench.measure.loop import run_timed_loop


class FakeClock:
    """Seeded fake clock: time moves only when the fake model call says it costs time."""

    def __init__(self, seed: int = 0) -> None:
        self.now = 0
        self.events: list[str] = []
        self.rng = random.Random(seed)

    def __call__(self) -> int:
        self.events.append("clock")
        return self.now

    def sync(self) -> None:
        self.events.append("sync")

    def advance(self, ns: int) -> None:
        self.now += ns


def settings(**kw):
    base = dict(
        warmup_iterations=0,
        warmup_time_s=0,
        warmup_window=0,
        min_iterations=1,
        min_time_s=0,
        ci_target=0,
        max_iterations=10_000,
        max_time_s=60,
    )
    base.update(kw)
    return MeasureSettings(**base)


def fixed_cost_call(clock: FakeClock, ns: int, log: list | None = None) -> PreparedCall:
    def call(stamp):
        if log is not None:
            log.append(gc.isenabled())
        clock.advance(ns)

    return PreparedCall(call=call, items_per_call=4)


def test_stops_when_both_minimum_count_and_time_are_met():
    clock = FakeClock()
    m = run_timed_loop(
        fixed_cost_call(clock, 1_000_000), clock.sync, settings(min_iterations=10, min_time_s=0.05), clock=clock
    )
    assert len(m.samples_ns) == 50 and set(m.samples_ns) == {1_000_000}
    assert m.stopped_by == "min_reached"
    assert m.loop_wall_ns == 50_000_000


def test_minimum_count_dominates_when_calls_are_slow():
    clock = FakeClock()
    m = run_timed_loop(
        fixed_cost_call(clock, 100_000_000), clock.sync, settings(min_iterations=7, min_time_s=0.01), clock=clock
    )
    assert len(m.samples_ns) == 7


def test_maximum_iterations_and_time_cap_the_loop():
    clock = FakeClock()
    m = run_timed_loop(
        fixed_cost_call(clock, 1000), clock.sync, settings(min_time_s=10, max_time_s=20, max_iterations=25), clock=clock
    )
    assert (len(m.samples_ns), m.stopped_by) == (25, "max_iterations")
    clock = FakeClock()
    m = run_timed_loop(
        fixed_cost_call(clock, 1_000_000),
        clock.sync,
        settings(min_iterations=1000, max_iterations=5000, max_time_s=0.03),
        clock=clock,
    )
    assert (len(m.samples_ns), m.stopped_by) == (30, "max_time")


def test_warm_up_runs_until_both_minima_and_is_not_timed():
    clock, seen = FakeClock(), []
    m = run_timed_loop(
        fixed_cost_call(clock, 1_000_000, seen),
        clock.sync,
        settings(warmup_iterations=3, warmup_time_s=0.005, min_iterations=4),
        clock=clock,
    )
    assert m.warmup_iterations == 5  # 3 calls are not yet 5 ms
    assert len(m.samples_ns) == 4
    assert len(seen) == 9


def test_every_clock_read_follows_a_device_sync():
    clock = FakeClock()
    run_timed_loop(fixed_cost_call(clock, 500), clock.sync, settings(min_iterations=20), clock=clock)
    reads = [i for i, e in enumerate(clock.events) if e == "clock"]
    assert reads and all(clock.events[i - 1] == "sync" for i in reads)


def test_gc_is_off_in_the_timed_loop_and_restored_after():
    clock, seen = FakeClock(), []
    assert gc.isenabled()
    run_timed_loop(
        fixed_cost_call(clock, 1000, seen), clock.sync, settings(warmup_iterations=2, min_iterations=5), clock=clock
    )
    assert seen[:2] == [True, True]  # warm-up: collector untouched
    assert seen[2:] == [False] * 5  # timed: collector off
    assert gc.isenabled()


def test_generation_marks_are_relative_to_each_call_start():
    clock = FakeClock(seed=1)

    def call(stamp):
        marks = []
        for cost in (5000, 1000, 1000):  # prefill, then two decode steps
            clock.advance(cost + clock.rng.randint(0, 10))
            marks.append(stamp())
        return marks

    m = run_timed_loop(
        PreparedCall(call=call, items_per_call=1, tokens_per_call=3),
        clock.sync,
        settings(min_iterations=6),
        clock=clock,
    )
    assert len(m.token_marks_ns) == 6
    for sample, marks in zip(m.samples_ns, m.token_marks_ns):
        assert 5000 <= marks[0] <= 5010
        assert marks[-1] == sample  # the last token is the end of the call
        assert marks == sorted(marks)


def noisy_call(clock: FakeClock, median_ns: int, sigma: float) -> PreparedCall:
    """A call whose cost is lognormal around `median_ns` (seeded): skewed like real latency."""

    def call(stamp):
        clock.advance(int(median_ns * clock.rng.lognormvariate(0.0, sigma)))

    return PreparedCall(call=call, items_per_call=1)


def test_stops_as_soon_as_the_median_is_precise_enough():
    from bench.core.stats import median_halfwidth_rel

    clock = FakeClock(seed=5)
    m = run_timed_loop(
        noisy_call(clock, 1_000_000, 0.05),
        clock.sync,
        settings(min_iterations=10, ci_target=0.01, max_time_s=600),
        clock=clock,
    )
    assert m.stopped_by == "precision_reached"
    assert median_halfwidth_rel(m.samples_ns) <= 0.01
    assert 30 <= len(m.samples_ns) < 1000  # a fixed 10,000-call run would be 10x longer or more


def test_noisier_calls_need_more_samples_and_may_not_converge():
    clock = FakeClock(seed=6)
    quiet = run_timed_loop(noisy_call(clock, 1_000_000, 0.02), clock.sync, settings(ci_target=0.01), clock=clock)
    clock = FakeClock(seed=6)
    loud = run_timed_loop(noisy_call(clock, 1_000_000, 0.3), clock.sync, settings(ci_target=0.01), clock=clock)
    assert len(loud.samples_ns) > 2 * len(quiet.samples_ns)
    clock = FakeClock(seed=6)
    capped = run_timed_loop(
        noisy_call(clock, 1_000_000, 0.5), clock.sync, settings(ci_target=0.001, max_time_s=0.2), clock=clock
    )
    assert capped.stopped_by == "max_time"


def test_warm_up_waits_for_stable_windows():
    clock, calls = FakeClock(), []

    def call(stamp):  # slow at first (caches, allocator), then flat
        calls.append(1)
        clock.advance(1_000_000 + (2_000_000 // len(calls) if len(calls) < 40 else 0))

    m = run_timed_loop(
        PreparedCall(call=call, items_per_call=1),
        clock.sync,
        settings(warmup_iterations=1, warmup_window=5, warmup_tolerance=0.02, warmup_max_time_s=10, min_iterations=5),
        clock=clock,
    )
    assert m.warmup_stable is True
    assert m.warmup_iterations >= 20  # did not stop while the cost was still falling


def test_warm_up_that_never_settles_is_flagged():
    clock, calls = FakeClock(), []

    def call(stamp):  # alternating cost by window: never stable
        calls.append(1)
        clock.advance(1_000_000 if (len(calls) // 5) % 2 else 1_500_000)

    m = run_timed_loop(
        PreparedCall(call=call, items_per_call=1),
        clock.sync,
        settings(warmup_window=5, warmup_max_time_s=0.2, min_iterations=5),
        clock=clock,
    )
    assert m.warmup_stable is False
