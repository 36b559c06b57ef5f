"""NVIDIA GPU telemetry over the timed loop, through NVML (`nvidia-ml-py`, imported as `pynvml`).

Method. `start()` reads the GPU's total-energy counter (millijoules since the driver loaded; Volta and newer)
and starts a sampling thread; the thread sleeps on an Event between samples (it never spins, so it does not
take a core from the measurement) and every `interval_s` reads power draw, SM and memory clocks, temperature
and the clock-event (throttle) reasons bitmask. `stop()` reads the counter again. Energy over the window is the
counter difference when the GPU has the counter, else the trapezoidal integral of the sampled power (stated
in `energy_method`). Throttle reasons are the union of the reasons seen in any sample, by name; "gpu_idle"
and "applications_clocks_setting" are reported too but are not slow-downs.

Without nvidia-ml-py, or when NVML cannot start, `stop()` returns a dict that says why and holds no figures.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

from backends.base import Telemetry

__all__ = ["NvmlTelemetry", "THROTTLE_REASONS", "decode_throttle_reasons"]

#: NVML clock-event reason bits (nvml.h, nvmlClocksEventReason*/nvmlClocksThrottleReason*).
THROTTLE_REASONS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}


def decode_throttle_reasons(mask: int) -> list[str]:
    return [name for bit, name in THROTTLE_REASONS.items() if mask & bit]


class NvmlTelemetry(Telemetry):
    """Samples one GPU (NVML index `index`) between start() and stop()."""

    def __init__(self, index: int = 0, interval_s: float = 0.05) -> None:
        self.index = index
        self.interval_s = interval_s
        self.samples: list[tuple[float, float | None, int | None, int | None, int | None, int | None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: str | None = None
        self._nvml: Any = None
        self._handle: Any = None
        self._energy_start_mj: int | None = None
        self._started: float | None = None

    # -- NVML reads; each returns None where the GPU does not support the query -------------------------

    def _read(self, name: str, *args: Any) -> Any:
        function = getattr(self._nvml, name, None)
        if function is None:
            return None
        try:
            return function(self._handle, *args)
        except Exception:
            return None

    def _energy_mj(self) -> int | None:
        return self._read("nvmlDeviceGetTotalEnergyConsumption")

    def _sample(self) -> None:
        nvml = self._nvml
        power_mw = self._read("nvmlDeviceGetPowerUsage")
        reasons = self._read("nvmlDeviceGetCurrentClocksEventReasons")
        if reasons is None:
            reasons = self._read("nvmlDeviceGetCurrentClocksThrottleReasons")
        self.samples.append(
            (
                time.monotonic(),
                power_mw / 1000 if power_mw is not None else None,
                self._read("nvmlDeviceGetClockInfo", getattr(nvml, "NVML_CLOCK_SM", 1)),
                self._read("nvmlDeviceGetClockInfo", getattr(nvml, "NVML_CLOCK_MEM", 2)),
                self._read("nvmlDeviceGetTemperature", getattr(nvml, "NVML_TEMPERATURE_GPU", 0)),
                reasons,
            )
        )

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    # -- Telemetry protocol ------------------------------------------------------------------------------

    def start(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(self.index)
        except ImportError:
            self._error = "nvidia-ml-py is not installed (pip install nvidia-ml-py): no power or energy figures"
            return
        except Exception as exc:
            self._error = f"NVML unusable ({type(exc).__name__}: {exc}): no power or energy figures"
            return
        self._energy_start_mj = self._energy_mj()
        self._started = time.monotonic()
        self._sample()
        self._thread = threading.Thread(target=self._run, name="nvml-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, Any] | None:
        if self._error:
            return {"source": "nvml", "unavailable": self._error}
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        window_s = time.monotonic() - (self._started or time.monotonic())
        energy_end = self._energy_mj()
        result: dict[str, Any] = {
            "source": "nvml",
            "interval_s": self.interval_s,
            "samples": len(self.samples),
            "window_s": round(window_s, 6),
        }
        if self._energy_start_mj is not None and energy_end is not None:
            result["energy_j"] = (energy_end - self._energy_start_mj) / 1000
            result["energy_method"] = "total-energy counter difference"
        else:
            result["energy_j"] = self._integrated_energy_j()
            result["energy_method"] = "trapezoidal integral of sampled power"
        result.update(self._summaries())
        return result

    def _integrated_energy_j(self) -> float | None:
        points = [(t, p) for t, p, *_ in self.samples if p is not None]
        if len(points) < 2:
            return None
        return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(points, points[1:]))

    def _summaries(self) -> dict[str, Any]:
        def column(i: int) -> list[float]:
            return [s[i] for s in self.samples if s[i] is not None]

        power, sm, mem, temp = column(1), column(2), column(3), column(4)
        mask = 0
        for reasons in column(5):
            mask |= int(reasons)
        out: dict[str, Any] = {
            "power_w": {"mean": statistics.fmean(power), "max": max(power)} if power else None,
            "sm_clock_mhz": {"min": min(sm), "median": statistics.median(sm), "max": max(sm)} if sm else None,
            "mem_clock_mhz": {"min": min(mem), "max": max(mem)} if mem else None,
            "temperature_c": {"max": max(temp)} if temp else None,
            "throttle_reasons": decode_throttle_reasons(mask),
        }
        return out
