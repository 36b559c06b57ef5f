"""Device runtimes under the torch adapter: device string, synchronize, memory statistics, device facts.

One torch adapter serves every device torch can drive; what differs between devices lives here. Only the CPU
runtime exists so far; CUDA and Ascend NPU (torch_npu mirrors torch.cuda) are further small implementations of
the same class.
"""

from __future__ import annotations

import platform
from typing import Any

__all__ = ["DeviceRuntime", "CpuRuntime"]


class DeviceRuntime:
    """The device-specific part of running torch. Subclasses override what their device has."""

    device: str = "cpu"
    has_memory_stats: bool = False

    def synchronize(self) -> None:
        """Block until queued work is done. CPU kernels are synchronous, so this is a no-op there."""

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
        from bench.environment import cpu_model

        return {"type": "cpu", "name": cpu_model(), "driver": None, "architecture": platform.machine()}
