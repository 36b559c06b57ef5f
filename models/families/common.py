"""Building published architectures: seeded random weights without a wasted initialisation, real weights from
a local safetensors directory, and weightless (meta-device) builds for counting.

Fast random construction. transformers' `from_config` initialises every weight twice: each torch layer runs its
own `reset_parameters` (Kaiming) as it is created, then the model's `_init_weights` overwrites it with a normal
draw, all in fp32 before any cast. `build_random` instead creates the modules with every `torch.nn.init`
function and the model's `init_weights` turned into no-ops, directly at the target dtype and on the target
device, then fills each parameter once, cut at a seeded offset from one seeded pool of uniform values:
  - linear, embedding and expert weights: uniform with std `initializer_range` (transformers' convention, 0.02);
  - convolution weights: uniform with Kaiming std sqrt(2 / fan_in), so deep ReLU nets keep their scale;
  - normalisation weights 1, every bias and other 1-D parameter 0.
Buffers (rotary frequencies, position ids, batch-norm statistics) are computed by the modules' constructors as
usual. Throughput does not depend on weight values; the distribution only has to keep activations finite, so
that accuracy deviations between precisions mean something.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
from pathlib import Path
from typing import Any, Iterator

import torch

from models.base import INPUTS_SEED, WEIGHTS_SEED, Workload

__all__ = [
    "make_config",
    "skip_init",
    "build_random",
    "build_meta",
    "load_weights",
    "build_model",
    "model_facts",
    "seeded_token_ids",
    "forward_accepts",
    "package_weights_dir",
    "OutputOf",
    "finish_model",
]

_INIT_FUNCTIONS = (
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "eye_",
    "dirac_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
    "sparse_",
)


def make_config(workload: Workload):
    """The transformers config object for a catalogue entry, built locally (no hub)."""
    import transformers

    fields = copy.deepcopy(dict(workload.config))  # transformers normalises nested fields (rope_scaling) in place
    model_type = fields.pop("model_type")
    return transformers.AutoConfig.for_model(model_type, **fields)


@contextlib.contextmanager
def skip_init() -> Iterator[None]:
    """Make torch.nn.init functions and transformers' init_weights no-ops while modules are created."""
    import transformers

    saved = {name: getattr(torch.nn.init, name) for name in _INIT_FUNCTIONS if hasattr(torch.nn.init, name)}
    saved_init_weights = transformers.PreTrainedModel.init_weights
    try:
        for name in saved:
            setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
        transformers.PreTrainedModel.init_weights = lambda self, *args, **kwargs: None
        yield
    finally:
        for name, function in saved.items():
            setattr(torch.nn.init, name, function)
        transformers.PreTrainedModel.init_weights = saved_init_weights


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _is_norm(module: torch.nn.Module) -> bool:
    return isinstance(module, (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.modules.batchnorm._BatchNorm)) or (
        "norm" in type(module).__name__.lower()
    )


#: Length of the pool of seeded uniform values that weights are cut from: a prime, so that its period never
#: lines up with a power-of-two layer width, and large enough (16.8M) that no matrix under 16.8M elements
#: repeats a value pattern. Drawing 1.8B independent values would cost ~20 s on 2 cores; cutting from the
#: pool costs a memory copy.
POOL_SIZE = 16_777_259


class _UniformPool:
    """Seeded U(-sqrt(3), sqrt(3)) values (std 1), one copy per dtype, cut into parameters at seeded offsets."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        base = torch.rand(POOL_SIZE, generator=self.generator, dtype=torch.float32)
        self.values = {torch.float32: base.mul_(2 * math.sqrt(3.0)).sub_(math.sqrt(3.0))}

    def of(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        key = (dtype, str(device))
        if key not in self.values:
            self.values[key] = self.values[torch.float32].to(device=device, dtype=dtype)
        return self.values[key]

    def fill_(self, param: torch.Tensor, std: float) -> None:
        pool = self.of(param.dtype, param.device)
        flat = param.view(-1)
        offset = int(torch.randint(0, POOL_SIZE, (1,), generator=self.generator))
        done = 0
        while done < flat.numel():
            take = min(flat.numel() - done, POOL_SIZE - offset)
            flat[done : done + take].copy_(pool[offset : offset + take])
            done, offset = done + take, 0
        flat.mul_(std)


@torch.no_grad()
def fill_random_(model: torch.nn.Module, seed: int = WEIGHTS_SEED) -> None:
    """Fill every parameter once, deterministically (see the module docstring for the distributions)."""
    pool = _UniformPool(seed)
    std = float(getattr(model.config, "initializer_range", 0.02) or 0.02)
    seen: set[int] = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if id(param) in seen:  # tied weights
                continue
            seen.add(id(param))
            if _is_norm(module):
                param.fill_(1.0 if name == "weight" else 0.0)
            elif param.dim() <= 1:
                param.zero_()
            elif isinstance(module, torch.nn.Conv2d):
                pool.fill_(param, math.sqrt(2.0 / param[0].numel()))  # Kaiming: keeps ReLU nets' scale
            else:
                pool.fill_(param, std)


def _attn_kwargs(attn_implementation: str | None) -> dict[str, Any]:
    return {"attn_implementation": attn_implementation} if attn_implementation else {}


def build_random(
    workload: Workload, auto_class: str, dtype: torch.dtype, device: str, attn_implementation: str | None = None
) -> torch.nn.Module:
    """Instantiate `workload.config` through transformers' `auto_class` with seeded random weights, fast."""
    import transformers

    config = make_config(workload)
    with skip_init(), _default_dtype(dtype), torch.device(device):
        model = getattr(transformers, auto_class).from_config(config, **_attn_kwargs(attn_implementation))
    if str(device) != "meta":  # meta tensors hold no values: nothing to fill
        fill_random_(model)
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    return model.eval()


def build_meta(workload: Workload, auto_class: str) -> torch.nn.Module:
    """The architecture on the meta device: shapes and structure, no memory, any size (671B included)."""
    import transformers

    with skip_init(), torch.device("meta"):
        model = getattr(transformers, auto_class).from_config(make_config(workload))
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    return model.eval()


def package_weights_dir(workload: Workload) -> Path | None:
    """The directory of real weights shipped by `workload.weights_package`, if that package is installed."""
    if not workload.weights_package:
        return None
    try:
        module = __import__(workload.weights_package)
    except ImportError:
        return None
    directory = Path(module.__file__).resolve().parent / "model"
    return directory if (directory / "model.safetensors").is_file() else None


def load_weights(
    auto_class: str, directory: Path, dtype: torch.dtype, device: str, attn_implementation: str | None = None
) -> torch.nn.Module:
    """Real weights from a local directory: safetensors only, never remote code, never the network."""
    import transformers

    from bench.core.errors import UsageError

    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # its load report would precede our one line
    try:
        model, info = getattr(transformers, auto_class).from_pretrained(
            str(directory),
            use_safetensors=True,
            trust_remote_code=False,
            local_files_only=True,
            output_loading_info=True,
            **{_dtype_keyword(): dtype},
            **_attn_kwargs(attn_implementation),
        )
    except RuntimeError as exc:  # tensors of other shapes than the architecture's ("size mismatch")
        first = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line or "shape" in line),
                     str(exc).splitlines()[0] if str(exc) else type(exc).__name__)  # fmt: skip
        raise UsageError(
            f"--weights: {str(directory)!r} does not match the model's architecture ({first[:160]}); expected a "
            "checkpoint of the same configuration"
        ) from None
    finally:
        transformers.logging.set_verbosity(verbosity)
    missing = sorted(info.get("missing_keys") or [])
    if missing:  # a parameter left at its random initialisation would be recorded as "real" weights
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise UsageError(
            f"--weights: {str(directory)!r} lacks {len(missing)} parameter(s) of the model: {shown}; "
            "every parameter must come from the checkpoint"
        )
    return model.to(device).eval()


def _dtype_keyword() -> str:
    import transformers

    params = inspect.signature(transformers.PreTrainedModel.from_pretrained).parameters
    return "dtype" if "dtype" in params or int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"


def build_model(
    workload: Workload,
    auto_class: str,
    dtype: torch.dtype,
    device: str,
    weights: str | None,
    attn_implementation: str | None = None,
) -> tuple[torch.nn.Module, str]:
    """The model to benchmark and a description of its weights.

    Order: the user's --weights directory; else the entry's weights package when installed; else random.
    `attn_implementation` ("eager", "sdpa", "flash_attention_2") is passed to transformers; None keeps its
    default (sdpa where the model supports it)."""
    directory = Path(weights) if weights else package_weights_dir(workload)
    if directory is not None:
        return load_weights(auto_class, directory, dtype, device, attn_implementation), f"real ({directory})"
    note = f"random (seed {WEIGHTS_SEED})"
    if workload.weights_package:
        note += f"; package {workload.weights_package} not installed, so not its real weights"
    return build_random(workload, auto_class, dtype, device, attn_implementation), note


class OutputOf(torch.nn.Module):
    """`model` as a module of positional tensors (named `names`) returning one output tensor, for graph export."""

    def __init__(self, model: torch.nn.Module, names: list[str], pick, **fixed: Any) -> None:
        super().__init__()
        self.model, self.names, self.pick, self.fixed = model, list(names), pick, fixed

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.pick(self.model(**dict(zip(self.names, tensors)), **self.fixed))


def finish_model(model: torch.nn.Module, dtype: torch.dtype, weights: str, transform) -> tuple[torch.nn.Module, dict]:
    """The model's facts (taken before any transform: a quantized model hides its parameters), then the
    backend's transform (compilation, quantization) applied; returns (model to call, facts)."""
    facts = model_facts(model, dtype, weights)
    if transform is not None:
        model = transform(model)
    return model, facts


def model_facts(model: torch.nn.Module, dtype: torch.dtype, weights: str) -> dict[str, Any]:
    """Facts about the built model for the record: class, parameters, attention implementation, weights."""
    return {
        "class": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": str(dtype).replace("torch.", ""),
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "weights": weights,
        "inputs_seed": INPUTS_SEED,
    }


def seeded_token_ids(batch: int, length: int, vocab_size: int, device: str) -> torch.Tensor:
    """Deterministic token ids in [0, vocab_size), the same for every run of the same shape."""
    generator = torch.Generator().manual_seed(INPUTS_SEED)
    return torch.randint(0, vocab_size, (batch, length), generator=generator).to(device)


def take_rows(inputs: dict[str, torch.Tensor], rows) -> dict[str, torch.Tensor]:
    """A batch gathered from the given rows of every input (index_select on dim 0; the rows may repeat)."""
    first = next(iter(inputs.values()))
    index = torch.as_tensor(list(rows), dtype=torch.long, device=first.device)
    return {name: tensor.index_select(0, index) for name, tensor in inputs.items()}


def forward_accepts(model: torch.nn.Module, name: str) -> bool:
    """Whether the model's forward takes a keyword `name` (APIs differ between transformers versions)."""
    return name in inspect.signature(model.forward).parameters
