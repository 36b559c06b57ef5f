"""`ascend`: a Huawei Ascend NPU through torch_npu when one works here, else a simulated Ascend (profile
ascend-910b2 by default; `-O profile=ascend-910c` etc.).

Real NPU path (`TorchNpuBackend`): the torch adapter over `NpuRuntime` (torch.npu: synchronize, Event timing,
max_memory_allocated, mem_get_info), precisions fp32/bf16/fp16, option `graph` = torchair graph mode
(`torch.compile` with torchair's NPU backend; mode reduce-overhead or max-autotune) when torchair is installed.
Written against torch_npu's documented API (../shared/reference/hardware.md); it has NOT run on an NPU: no
Ascend hardware was available anywhere this project was built. Tests drive the probe with a stand-in module.

Which one `ascend` is gets decided once per process by `resolve_ascend()` (the registry calls it): the probe
catches every exception, because a torch_npu without CANN raises ImportError or OSError at import.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from backends.base import Availability, Capabilities, OptionSpec, PreparedCall
from backends.runtime import NpuRuntime
from backends.simulated import SERVING_OPTIONS, SIMULATED_SETTINGS, SimulatedBackend
from backends.torch_backend import ATTN_OPTION, TorchBackend

if TYPE_CHECKING:
    from bench.core.spec import BenchmarkSpec
    from models.base import Workload

__all__ = [
    "TorchNpuBackend",
    "SimulatedAscendBackend",
    "resolve_ascend",
    "npu_unavailable_reason",
    "DEFAULT_ASCEND_PROFILE",
]

DEFAULT_ASCEND_PROFILE = "ascend-910b2"
ASCEND_PROFILES = ("ascend-910b2", "ascend-910b3", "ascend-910b4", "ascend-910c", "ascend-310p")


#: First, torch_npu is imported in a child process: an import that kills its process (abort, segfault: a torch_npu
#: built for another CANN) then kills only the child. Exceptions are the in-process probe's to report.
_IMPORT_CHECK = "import torch_npu"
PROBE_TIMEOUT_S = 120.0


def _import_kills() -> str | None:
    """Why importing torch_npu cannot be risked in this process (it killed a child that tried), or None."""
    env = dict(os.environ, TORCH_DEVICE_BACKEND_AUTOLOAD="0", PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    try:
        done = subprocess.run(
            [sys.executable, "-c", _IMPORT_CHECK], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, env=env
        )
    except subprocess.TimeoutExpired:
        return f"importing torch_npu did not finish within {PROBE_TIMEOUT_S:g} s"
    except OSError as exc:
        return f"the NPU probe could not start: {exc.strerror or exc}"
    if done.returncode >= 0:
        return None
    last = (done.stderr.strip().splitlines() or [""])[-1][:200]
    return f"importing torch_npu kills the process (signal {-done.returncode}){': ' + last if last else ''}"


def npu_unavailable_reason() -> str | None:
    """Why torch cannot drive an Ascend NPU here, or None (the probe in hardware.md, every exception caught).
    Isolated: torch's device-backend autoloading is off in this project (bench/__init__.py), and torch_npu is
    imported here only after a child process survived importing it; an ImportError or OSError names the missing
    CANN library (e.g. libhccl.so) in the reason."""
    if importlib.util.find_spec("torch_npu") is None:
        return "torch_npu is not installed"
    killed = _import_kills()
    if killed:
        return killed
    try:
        import torch_npu  # noqa: F401  (ImportError/OSError when CANN is missing or not sourced)
    except Exception as exc:
        return f"torch_npu cannot be imported: {type(exc).__name__}: {str(exc)[:200]}"
    import torch

    try:
        if not torch.npu.is_available() or torch.npu.device_count() < 1:
            return "no NPU visible (torch.npu.is_available() is False)"
    except Exception as exc:  # RuntimeError when no NPU is present
        return f"NPU unusable: {type(exc).__name__}: {str(exc)[:200]}"
    return None


class TorchNpuBackend(TorchBackend):
    name: ClassVar[str] = "ascend"
    summary: ClassVar[str] = "Huawei Ascend NPU through torch_npu (eager; torchair graph mode)"
    libraries: ClassVar[tuple[str, ...]] = ("torch", "torch_npu", "transformers", "safetensors")
    capabilities: ClassVar[Capabilities] = Capabilities(
        precisions=("fp32", "bf16", "fp16"),
        device_memory=True,
        device="npu",
        device_timer=True,
        options={
            "graph": OptionSpec(
                str,
                "torchair graph mode (none: eager)",
                choices=("none", "reduce-overhead", "max-autotune"),
                default="none",
            ),
            "attn": ATTN_OPTION,
        },
    )

    @classmethod
    def probe(cls) -> Availability:
        reason = npu_unavailable_reason()
        return Availability(reason is None, reason)

    def __init__(self, spec: "BenchmarkSpec") -> None:
        super().__init__(spec, NpuRuntime())

    def _transform(self, spec: "BenchmarkSpec") -> Callable[[Any], Any] | None:
        mode = spec.option("graph", "none")
        if mode == "none":
            return None

        def to_graph(model):
            import torch
            import torchair  # imported after torch_npu, as torchair requires

            config = torchair.CompilerConfig()
            config.mode = mode
            return torch.compile(model, backend=torchair.get_npu_backend(compiler_config=config), dynamic=False)

        return to_graph

    def prepare(self, workload: "Workload", spec: "BenchmarkSpec") -> PreparedCall:
        prepared = super().prepare(workload, spec)
        if spec.option("graph", "none") != "none":
            prepared.facts["graph"] = {"mode": spec.option("graph"), "first_call_s": self._first_call(prepared)}
            prepared.uncountable = "torchair graphs are not seen by FlopCounterMode"
        return prepared


class SimulatedAscendBackend(SimulatedBackend):
    name: ClassVar[str] = "ascend"
    in_wildcard: ClassVar[bool] = False  # "*" is every measured backend; simulations are asked for by name
    summary: ClassVar[str] = (
        f"simulated Huawei Ascend (no usable torch_npu here): profile {DEFAULT_ASCEND_PROFILE} unless -O profile=..."
    )
    capabilities: ClassVar[Capabilities] = Capabilities(
        precisions=("fp32", "bf16", "fp16", "int8", "int4"),
        kind="simulated",
        loadgen=False,
        reference_neutral_options=SIMULATED_SETTINGS,
        options={
            "profile": OptionSpec(
                str, "Ascend device profile", choices=ASCEND_PROFILES, default=DEFAULT_ASCEND_PROFILE
            ),
            "mode": OptionSpec(
                str,
                "trace projection: execution mode the overheads assume",
                choices=("eager", "graph"),
                default="eager",
            ),
            **SERVING_OPTIONS,
        },
    )
    npu_reason: ClassVar[str] = "not probed"

    @classmethod
    def variants(cls) -> dict[str, Availability]:
        return {"real NPU (torch_npu)": Availability(False, cls.npu_reason)}

    @classmethod
    def plan_notes(cls) -> tuple[str, ...]:
        return (f"backend ascend is simulated here (no usable NPU): {cls.npu_reason}",)


_RESOLVED: type | None = None


def resolve_ascend() -> type:
    """The real NPU adapter when torch_npu works here, else the simulated Ascend (decided once per process)."""
    global _RESOLVED
    if _RESOLVED is None:
        reason = npu_unavailable_reason()
        _RESOLVED = TorchNpuBackend if reason is None else SimulatedAscendBackend
        if reason is not None:
            SimulatedAscendBackend.npu_reason = reason
    return _RESOLVED
