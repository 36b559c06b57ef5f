"""The ONNX Runtime adapter (`onnxruntime`): the workload exported by torch.onnx, run by an execution provider.

Export. The torch model (built as for the `cpu` backend: same seeded weights, same seeded inputs) is exported
with `torch.onnx.export(..., dynamo=True)` at the spec's fixed shape (batch x seq_len), once: the file is cached
under `$CATCHUP_BENCH_CACHE/onnx/<key>/` (default `~/.cache/catchup-bench`), keyed by the workload's config,
weights, shape, export dtype and the torch / transformers / onnxscript versions, and reused by later runs.
Encoders export their hidden states, vision models their logits, decoders their prefill (logits at every
prompt position; the first output token is the argmax of the last one). Multi-token generation would need the
KV cache as graph inputs and outputs; it is not done, so decoders run with new_tokens 1 (time to first token).

Techniques.
  provider   cpu (CPUExecutionProvider), cuda (CUDAExecutionProvider, from onnxruntime-gpu), cann
             (CANNExecutionProvider, from onnxruntime-cann); a provider this onnxruntime lacks makes the cell
             `unavailable` with the package to install
  opt_level  graph optimisation level: disable, basic, extended, all (default)
  int8       onnxruntime.quantization.quantize_dynamic of the fp32 export (MatMul/Gemm weights int8, activations
             quantized per call), cached beside it; CPU provider
  fp16       the model exported at fp16; CUDA and CANN providers
  threads    intra-op threads (default: every usable CPU); inter-op threads are 1 with sequential execution;
             the thread pools do not spin while waiting (session.intra_op/inter_op.allow_spinning = 0), so an
             idle pool does not take a core from anything else. All recorded in the environment.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from backends.base import Availability, Capabilities, MeasuredBackend, OptionSpec, PreparedCall
from bench.core.environment import max_threads
from bench.core.errors import UsageError

if TYPE_CHECKING:
    from bench.core.spec import BenchmarkSpec
    from models.base import Workload

__all__ = ["OrtBackend", "PROVIDERS", "export_cache_root", "EXPORT_FORMAT"]

#: option value -> (ONNX Runtime provider name, package that ships it, OrtValue device type)
PROVIDERS = {
    "cpu": ("CPUExecutionProvider", "onnxruntime", "cpu"),
    "cuda": ("CUDAExecutionProvider", "onnxruntime-gpu", "cuda"),
    "cann": ("CANNExecutionProvider", "onnxruntime-cann", "cann"),
}
OPT_LEVELS = ("disable", "basic", "extended", "all")
#: Bump when the exported graph for the same inputs would change (invalidates the cache).
EXPORT_FORMAT = 1


def export_cache_root() -> Path:
    return Path(os.environ.get("CATCHUP_BENCH_CACHE") or Path.home() / ".cache" / "catchup-bench") / "onnx"


def _versions() -> dict[str, str]:
    import onnxscript
    import torch
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnxscript": onnxscript.__version__,
        "format": str(EXPORT_FORMAT),
    }


def _weights_identity(weights: str | None) -> Any:
    if not weights:
        return None
    files = sorted(Path(weights).glob("*.safetensors"))
    return [str(Path(weights).resolve())] + [[f.name, f.stat().st_size, int(f.stat().st_mtime)] for f in files]


def export_key(workload: "Workload", spec: "BenchmarkSpec", export_precision: str) -> str:
    """The cache key of an export: what determines the graph and its weights."""
    from models.families.common import package_weights_dir

    weights = spec.weights or (str(package_weights_dir(workload)) if package_weights_dir(workload) else None)
    identity = {
        "workload": workload.name,
        "config": dict(workload.config),
        "weights": _weights_identity(weights),
        "precision": export_precision,
        "batch_size": spec.batch_size,
        "seq_len": spec.seq_len,
        "versions": _versions(),
    }
    text = json.dumps(identity, sort_keys=True, default=str)
    return (
        f"{workload.name}-{export_precision}-b{spec.batch_size}-s{spec.seq_len}-"
        + hashlib.sha256(text.encode()).hexdigest()[:16]
    )


def _atomic_dir(final: Path, build) -> None:
    """Build a directory in a temporary sibling and rename it into place (a crash leaves no half export)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=final.name + ".tmp-", dir=final.parent))
    try:
        build(tmp)
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished the same export first: keep theirs
            if not (final / "model.onnx").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def export_onnx(export, directory: Path) -> None:
    """torch.onnx.export (dynamo) of an ExportSpec into directory/model.onnx (weights in model.onnx.data)."""
    import warnings

    import torch

    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            export.module,
            tuple(export.inputs.values()),
            dynamo=True,
            input_names=list(export.inputs),
            output_names=[export.output_name],
            verbose=False,
        )
        program.save(str(directory / "model.onnx"), external_data=True)


def quantize_onnx(source: Path, directory: Path) -> None:
    """onnxruntime.quantization.quantize_dynamic: int8 weights (per-channel off, signed), into directory."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source / "model.onnx"),
        str(directory / "model.onnx"),
        weight_type=QuantType.QInt8,
        use_external_data_format=True,
    )


class OrtBackend(MeasuredBackend):
    name: ClassVar[str] = "onnxruntime"
    summary: ClassVar[str] = "ONNX Runtime on a torch.onnx export (cached): CPU, CUDA and CANN providers, int8"
    libraries: ClassVar[tuple[str, ...]] = (
        "onnxruntime",
        "onnxruntime-gpu",
        "onnxruntime-cann",
        "onnx",
        "onnxscript",
        "torch",
        "transformers",
        "safetensors",
    )
    capabilities: ClassVar[Capabilities] = Capabilities(
        precisions=("fp32", "fp16", "int8"),
        generation=False,
        options={
            "provider": OptionSpec(str, "execution provider", choices=tuple(PROVIDERS), default="cpu"),
            "opt_level": OptionSpec(str, "graph optimisation level", choices=OPT_LEVELS, default="all"),
            "threads": OptionSpec(int, "intra-op threads (default: all usable CPUs)", minimum=1, maximum=max_threads),
        },
        reference_neutral_options=("threads",),
    )

    @classmethod
    def probe(cls) -> Availability:
        """onnxruntime importable (it is what runs), onnx and onnxscript installed (torch.onnx's exporter imports
        them when a cell exports; found here without importing them, which is slow)."""
        import importlib.util

        try:
            import onnxruntime  # noqa: F401
        except Exception as exc:
            return Availability(
                False, f"onnxruntime cannot be imported ({type(exc).__name__}; needed to run): pip install onnxruntime"
            )
        for module in ("onnx", "onnxscript"):
            if importlib.util.find_spec(module) is None:
                return Availability(
                    False, f"{module} is not installed (needed to export with torch.onnx): pip install {module}"
                )
        return Availability(True)

    @classmethod
    def availability(cls, spec: "BenchmarkSpec") -> Availability:
        found = cls.probe()
        if not found.available:
            return found
        import onnxruntime

        provider, package, _ = PROVIDERS[str(spec.option("provider", "cpu"))]
        present = onnxruntime.get_available_providers()
        if provider not in present:
            return Availability(
                False,
                f"{provider} is not in this onnxruntime's providers ({', '.join(present)}); it comes with {package}",
            )
        return found

    @classmethod
    def variants(cls) -> dict[str, Availability]:
        from bench.core.spec import BenchmarkSpec

        if not cls.probe().available:
            return {}
        return {
            f"provider={key}": cls.availability(BenchmarkSpec("-", cls.name, options={"provider": key}))
            for key in PROVIDERS
        }

    @classmethod
    def validate_spec(cls, spec: "BenchmarkSpec", workload: "Workload | None" = None) -> None:
        super().validate_spec(spec, workload)
        provider = spec.option("provider", "cpu")
        if spec.precision == "fp16" and provider == "cpu":
            raise UsageError(
                "precision: 'fp16' is not allowed on onnxruntime's cpu provider (no fp16 kernels for "
                "most operators); expected fp32 or int8, or provider cuda or cann"
            )
        if spec.precision == "int8" and provider != "cpu":
            raise UsageError(
                f"precision: 'int8' (dynamic quantization) is not allowed on onnxruntime's {provider} "
                "provider here; expected provider cpu"
            )

    @classmethod
    def device_kind(cls, spec: "BenchmarkSpec") -> str:
        return {"cuda": "gpu", "cann": "npu"}.get(str(spec.option("provider", "cpu")), "cpu")

    @classmethod
    def build_precision(cls, spec: "BenchmarkSpec") -> str:
        return "fp32" if spec.precision == "int8" else spec.precision

    @classmethod
    def threads_for(cls, spec: "BenchmarkSpec") -> int:
        from bench.core.environment import usable_cpu_count

        return int(spec.option("threads") or usable_cpu_count())

    @classmethod
    def worker_environment(cls, spec: "BenchmarkSpec") -> dict[str, str]:
        threads = str(cls.threads_for(spec))  # torch builds and exports the model in the same process
        return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}

    def __init__(self, spec: "BenchmarkSpec") -> None:
        import torch

        self.spec = spec
        self.provider_key = str(spec.option("provider", "cpu"))
        self.provider, _, self.device_type = PROVIDERS[self.provider_key]
        self.threads = self.threads_for(spec)
        torch.set_num_threads(self.threads)

    # -- preparing ---------------------------------------------------------------------------------------

    def _model_dir(self, workload: "Workload", spec: "BenchmarkSpec", export) -> tuple[Path, dict[str, Any]]:
        """The cached export (and int8 quantization) for this spec, made if missing; and facts about it."""
        export_precision = self.build_precision(spec)
        key = export_key(workload, spec, export_precision)
        root = export_cache_root()
        facts: dict[str, Any] = {"exporter": "torch.onnx.export(dynamo=True)", "export_key": key}
        fp_dir = root / key
        began = time.perf_counter()
        if (fp_dir / "model.onnx").is_file():
            facts["export"] = "cached"
        else:
            _atomic_dir(fp_dir, lambda tmp: export_onnx(export, tmp))
            facts["export"] = f"exported in {time.perf_counter() - began:.1f} s"
        if spec.precision != "int8":
            return fp_dir, facts
        q_dir = root / (key + "-int8-dynamic")
        if (q_dir / "model.onnx").is_file():
            facts["quantization"] = "onnxruntime.quantization.quantize_dynamic (QInt8 weights), cached"
        else:
            began = time.perf_counter()
            _atomic_dir(q_dir, lambda tmp: quantize_onnx(fp_dir, tmp))
            facts["quantization"] = (
                f"onnxruntime.quantization.quantize_dynamic (QInt8 weights), "
                f"done in {time.perf_counter() - began:.1f} s"
            )
        return q_dir, facts

    def _session(self, model_path: Path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[str(self.spec.option("opt_level", "all"))]
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        options.log_severity_level = 3
        return ort.InferenceSession(str(model_path), sess_options=options, providers=[self.provider])

    def prepare(self, workload: "Workload", spec: "BenchmarkSpec") -> PreparedCall:
        """Export (or reuse the cached export), open a session with its inputs bound once, and return the call:
        one run per call; for decoders the prefill and the first token (argmax of the last position)."""
        from backends.torch_backend import torch_dtype

        built = workload.prepare(dtype=torch_dtype(self.build_precision(spec)), device="cpu", spec=spec)
        if built.export is None:
            raise UsageError(f"model: {workload.name} has no ONNX export path")
        model_dir, export_facts = self._model_dir(workload, spec, built.export)
        feeds = {name: tensor.detach().cpu().numpy() for name, tensor in built.export.inputs.items()}
        output_name = built.export.output_name
        facts = {**built.facts, **export_facts}
        del built  # the torch model is not needed once exported
        session = self._session(model_dir / "model.onnx")
        binding = self._bound(session, feeds, output_name)
        call, output = self._calls(session, binding, workload.generates)
        facts.update(
            {
                "technique": self.technique(spec),
                "providers": session.get_providers(),
                "opt_level": spec.option("opt_level", "all"),
                "onnx_file_bytes": sum(f.stat().st_size for f in model_dir.iterdir()),
            }
        )
        if workload.generates:
            facts["decoding"] = "prefill only: first token = argmax of the last position's logits"
        return PreparedCall(
            call=call,
            items_per_call=spec.batch_size,
            tokens_per_call=spec.batch_size if workload.generates else None,
            facts=facts,
            output=output,
            uncountable="the call runs in onnxruntime, outside torch's dispatcher",
        )

    def _bound(self, session, feeds: dict[str, Any], output_name: str):
        """An IO binding with the inputs placed on the provider's device once, outside any timing."""
        import onnxruntime as ort

        binding = session.io_binding()
        for name, array in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, self.device_type, 0))
        binding.bind_output(output_name, self.device_type)
        return binding

    def _calls(self, session, binding, generates: bool):
        """(call, output): the timed call and the one that returns the compared tensor."""
        import numpy as np
        import torch

        def run() -> Any:
            session.run_with_iobinding(binding)
            return binding.get_outputs()[0]

        def first_token(stamp):
            logits = run().numpy() if self.device_type == "cpu" else binding.copy_outputs_to_cpu()[0]
            np.argmax(logits[:, -1, :], axis=-1)  # the first output token
            return [stamp()]

        def forward(stamp):
            run()
            return None

        def output():
            return torch.from_numpy(
                np.array(binding.copy_outputs_to_cpu()[0] if self.device_type != "cpu" else run().numpy())
            )

        return (first_token if generates else forward), output

    @staticmethod
    def technique(spec: "BenchmarkSpec") -> str:
        return f"onnxruntime {spec.precision} ({spec.option('provider', 'cpu')}, opt {spec.option('opt_level', 'all')})"

    # -- device facts --------------------------------------------------------------------------------------

    def synchronize(self) -> None:
        """run_with_iobinding returns once the provider's outputs are ready: nothing is left queued."""

    def available_memory_bytes(self) -> int | None:
        if self.device_type != "cpu":
            return None
        import psutil

        return psutil.virtual_memory().available

    def device_info(self) -> dict[str, Any]:
        import onnxruntime

        if self.device_type == "cpu":
            from backends.runtime import CpuRuntime

            info = CpuRuntime().device_info()
        else:
            info = {"type": self.device_type, "name": f"{self.provider} device 0", "driver": None}
        info["onnxruntime"] = onnxruntime.__version__
        info["provider"] = self.provider
        return info

    def thread_info(self) -> dict[str, Any]:
        return {
            "ort_intra_op": self.threads,
            "ort_inter_op": 1,
            "ort_execution_mode": "sequential",
            "ort_allow_spinning": False,
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        }
