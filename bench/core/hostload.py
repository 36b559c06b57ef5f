"""How busy the host was while a cell measured, and whether it is busy before a sweep starts.

A timed loop records, from the kernel's counters (psutil.cpu_times, /proc/stat on Linux), the CPU time every
process on the host used during the loop, minus what this process used: the *other* processes' CPU time, as an
average number of cores; the share of time the hypervisor stole from this VM (steal); and the 1-minute load
average at both ends. A cell is flagged **contended** when the others used more than `CONTENDED_CORES` of a core
on average, or steal exceeded `CONTENDED_STEAL` of the CPU time: its figures were measured on a shared machine
and may read slower than the code runs (on this project's 2-core machines a cell read 17x slower under load).

Before a sweep, `busy_host_warning()` samples the same counters for `PRECHECK_S` seconds (like pyperf's
`system show`) and says so when other processes already keep more than `BUSY_CORES` cores busy.
"""

from __future__ import annotations

import os
import time
from typing import Any

__all__ = ["HostLoadSampler", "busy_host_warning", "CONTENDED_CORES", "CONTENDED_STEAL", "BUSY_CORES"]

#: Other processes' average CPU use (cores) during a timed loop above which a cell is flagged contended.
CONTENDED_CORES = 0.25
#: Share of CPU time stolen by the hypervisor above which a cell is flagged contended.
CONTENDED_STEAL = 0.05
#: Other processes' CPU use (cores) before a sweep above which it warns.
BUSY_CORES = 0.5
PRECHECK_S = 1.0


def _busy_and_steal() -> tuple[float, float, float]:
    """(busy CPU seconds, stolen seconds, total seconds) summed over all CPUs since boot."""
    import psutil

    t = psutil.cpu_times()
    steal = getattr(t, "steal", 0.0)
    idle = t.idle + getattr(t, "iowait", 0.0)
    total = sum(t) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)  # guest time is inside user
    return total - idle - steal, steal, total


def _own_cpu_s() -> float:
    import psutil

    t = psutil.Process().cpu_times()
    return t.user + t.system + t.children_user + t.children_system


class HostLoadSampler:
    """start() before the timed loop, stop() after it: what the rest of the host did meanwhile."""

    def start(self) -> None:
        self._busy0, self._steal0, self._total0 = _busy_and_steal()
        self._own0 = _own_cpu_s()
        self._wall0 = time.monotonic()
        self._load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    def stop(self) -> dict[str, Any] | None:
        try:
            busy, steal, total = _busy_and_steal()
            own, wall = _own_cpu_s(), time.monotonic() - self._wall0
        except (OSError, AttributeError):
            return None
        if wall <= 0:
            return None
        others_s = max(0.0, (busy - self._busy0) - (own - self._own0))
        cpu_s = total - self._total0
        steal_fraction = (steal - self._steal0) / cpu_s if cpu_s > 0 else 0.0
        others_cores = others_s / wall
        return {
            "others_cpu_s": others_s,
            "others_cores": others_cores,
            "steal_fraction": steal_fraction,
            "loadavg_1m": [self._load0, os.getloadavg()[0] if hasattr(os, "getloadavg") else None],
            "window_s": wall,
            "contended": others_cores > CONTENDED_CORES or steal_fraction > CONTENDED_STEAL,
            "thresholds": {"others_cores": CONTENDED_CORES, "steal_fraction": CONTENDED_STEAL},
        }


def busy_host_warning(seconds: float = PRECHECK_S) -> str | None:
    """A sentence when other processes keep the host busy now (sampled for `seconds`), else None."""
    sampler = HostLoadSampler()
    try:
        sampler.start()
    except (OSError, AttributeError):
        return None
    time.sleep(seconds)
    load = sampler.stop()
    if not load or not (load["others_cores"] > BUSY_CORES or load["steal_fraction"] > CONTENDED_STEAL):
        return None
    cores = os.cpu_count() or 1
    return (
        f"the host is busy: other processes used {load['others_cores']:.1f} of {cores} cores over "
        f"{seconds:g} s (steal {load['steal_fraction']:.0%}); measurements will be flagged contended and may "
        "read slower than the code runs"
    )
