"""Device runtimes under the torch adapter: device string, synchronize, timing events, memory statistics, facts.

One torch adapter serves every device torch can drive; what differs between devices lives here, in three small
classes: `CpuRuntime`, `CudaRuntime` (torch.cuda) and `NpuRuntime` (torch.npu, registered by torch_npu, which
mirrors torch.cuda's API: synchronize, Event, max_memory_allocated, mem_get_info). Measurement code sees only
the `DeviceRuntime` interface.

Device event timing. Where the device has timing events, `event_timer()` returns an `EventTimer`: the loop
records a start event before each call and an end event after it, and reads the elapsed device time once the
call's end stamp has synchronised the device, so reading it never adds to a sample.
"""

from __future__ import annotations

import platform
from typing import Any

__all__ = ["DeviceRuntime", "CpuRuntime", "AcceleratorRuntime", "CudaRuntime", "NpuRuntime", "EventTimer"]


class EventTimer:
    """A pair of device timing events, reused for every call (`module` is torch.cuda or torch.npu)."""

    def __init__(self, module: Any) -> None:
        self._start = module.Event(enable_timing=True)
        self._end = module.Event(enable_timing=True)

    def start(self) -> None:
        self._start.record()

    def stop(self) -> None:
        self._end.record()

    def elapsed_ns(self) -> int:
        """Device time between the two events; call only after the device has been synchronised."""
        return int(round(self._start.elapsed_time(self._end) * 1e6))  # elapsed_time is in milliseconds


class DeviceRuntime:
    """The device-specific part of running torch. Subclasses override what their device has."""

    device: str = "cpu"

    def synchronize(self) -> None:
        """Block until queued work is done. CPU kernels are synchronous, so this is a no-op there."""

    def event_timer(self) -> EventTimer | None:
        """Device-side timing events, or None where the device has none (the wall clock is then the only timer)."""
        return None

    def reset_memory_stats(self) -> None:
        pass

    def memory_stats(self) -> dict[str, Any]:
        return {}

    def available_memory_bytes(self) -> int | None:
        return None

    def device_info(self) -> dict[str, Any]:
        raise NotImplementedError


class CpuRuntime(DeviceRuntime):
    """The host CPU. Its memory is reported by the worker (process RSS), not by the runtime."""

    device = "cpu"

    def available_memory_bytes(self) -> int | None:
        import psutil

        return psutil.virtual_memory().available

    def device_info(self) -> dict[str, Any]:
        from bench.core.environment import cpu_model

        return {"type": "cpu", "name": cpu_model(), "driver": None, "architecture": platform.machine()}


class AcceleratorRuntime(DeviceRuntime):
    """A device driven through a torch.cuda-like module (`torch.cuda`, `torch.npu`), device index 0."""

    module_name: str = "cuda"
    kind: str = "cuda"

    def __init__(self, index: int = 0) -> None:
        import torch

        self.module = getattr(torch, self.module_name)
        self.index = index
        self.device = f"{self.module_name}:{index}"
        self.module.set_device(index)

    def synchronize(self) -> None:
        self.module.synchronize()

    def event_timer(self) -> EventTimer:
        return EventTimer(self.module)

    def reset_memory_stats(self) -> None:
        self.module.reset_peak_memory_stats()

    def memory_stats(self) -> dict[str, Any]:
        """Peak bytes held by tensors and by the caching allocator since the last reset (the timed loop)."""
        return {
            "device_peak_allocated_bytes": int(self.module.max_memory_allocated()),
            "device_peak_reserved_bytes": int(self.module.max_memory_reserved()),
        }

    def available_memory_bytes(self) -> int | None:
        free, _total = self.module.mem_get_info()
        return int(free)

    def device_info(self) -> dict[str, Any]:
        props = self.module.get_device_properties(self.index)
        return {
            "type": self.kind,
            "name": self.module.get_device_name(self.index),
            "total_memory_bytes": int(getattr(props, "total_memory", 0)) or None,
            "multiprocessors": getattr(props, "multi_processor_count", None),
            "count": int(self.module.device_count()),
            **self.driver_info(props),
        }

    def driver_info(self, props: Any) -> dict[str, Any]:
        return {}


class CudaRuntime(AcceleratorRuntime):
    """An NVIDIA GPU through torch.cuda."""

    module_name = "cuda"
    kind = "cuda"

    def driver_info(self, props: Any) -> dict[str, Any]:
        import torch

        info = {
            "cuda_runtime": torch.version.cuda,
            "compute_capability": f"{props.major}.{props.minor}",
            "driver": None,
        }
        try:
            import pynvml

            pynvml.nvmlInit()
            info["driver"] = pynvml.nvmlSystemGetDriverVersion()
        except Exception:  # nvidia-ml-py absent or NVML unusable: the driver version stays unknown
            pass
        return info


class NpuRuntime(AcceleratorRuntime):
    """A Huawei Ascend NPU through torch.npu (needs `import torch_npu` first, which registers the namespace).

    Written against torch_npu's documented API; it has not run on an NPU here (no Ascend hardware)."""

    module_name = "npu"
    kind = "npu"

    def driver_info(self, props: Any) -> dict[str, Any]:
        info: dict[str, Any] = {"driver": None, "soc_version": None}
        try:
            import torch_npu

            info["torch_npu"] = getattr(torch_npu, "__version__", None)
            info["soc_version"] = torch_npu._C._npu_get_soc_version()
        except Exception:
            pass
        return info
