"""GenZ (genz-llm 0.0.16) as scripts/genz/compare.py uses it: the import and its file cleanup (trap 7), a GenZ
model from a catalogue name (traps 3 and 6), a GenZ system dict from a device profile (traps 1 and 8), and one
GenZ instance's prefill and decode calls (traps 2, 4 and 5). compare.py's docstring says what each trap is."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
GIB = float(2**30)
GENZ_VERSION = "0.0.16"

warnings.simplefilter("ignore")
try:
    import GenZ.Models.get_language_model as _glm
    from GenZ import ModelConfig, decode_moddeling, prefill_moddeling
    from GenZ.Models.default_models import MODEL_DICT
    from GenZ.system import System
except ImportError as exc:  # pragma: no cover - environment problem
    sys.exit(f"GenZ is not importable ({exc}); run `bash scripts/genz/setup.sh` and use .venv-genz/bin/python")

# -- trap 7: GenZ leaves one CSV per model build in /tmp/genz/data/model; record and delete ours ---------------
_created: list[str] = []
_orig_save_layers = _glm.save_layers


def _recording_save_layers(layers, data_path, name):
    file_name = _orig_save_layers(layers=layers, data_path=data_path, name=name)
    _created.append(os.path.join(data_path, "model", file_name))
    return file_name


_glm.save_layers = _recording_save_layers


def _cleanup() -> None:
    while _created:
        with contextlib.suppress(OSError):
            os.remove(_created.pop())


def installed_version() -> str:
    try:
        from importlib.metadata import version

        return version("genz-llm")
    except Exception:  # noqa: BLE001
        return "unknown"


class Unexpressible(Exception):
    """The row cannot be put to GenZ; the message is the reason."""


class NoFit(Exception):
    """GenZ says weights + KV exceed the chips' memory."""


def value_of(entry: Any) -> Any:
    """A profile field's value: `{ value = X, ... }` tables or plain values."""
    return entry.get("value") if isinstance(entry, dict) else entry


# -- model ---------------------------------------------------------------------------------------------------------

#: Our catalogue names -> GenZ zoo names (canonical ones: some zoo aliases point at other models, trap 6).
ZOO_NAMES = {
    "llama-3.1-8b": "meta-llama/Llama-3.1-8B",
    "llama-3.1-70b": "meta-llama/Llama-3.1-70B",
    "llama-3.1-405b": "meta-llama/Llama-3.1-405B",
    "llama-3.2-1b": "meta-llama/Llama-3.2-1B",
    "llama-3.2-3b": "meta-llama/Llama-3.2-3B",
    "llama-2-7b": "meta-llama/Llama-2-7B",
    "llama-2-13b": "meta-llama/Llama-2-13B",
    "llama-2-70b": "meta-llama/Llama-2-70B",
    "mistral-7b": "mistralai/Mistral-7B",
    "mixtral-8x7b": "mistralai/Mixtral-8x7B",
    "mixtral-8x22b": "mistralai/Mixtral-8x22B",
}
#: Zoo entries known to be wrong for prefill/decode (trap 3): never used as they are.
ZOO_WRONG = {"deepseek-ai/DeepSeek-V3-Base", "deepseek-ai/deepseek-moe-16b-base"}
GATED = {
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen3",
    "qwen2_moe",
    "qwen3_moe",
    "deepseek_v2",
    "deepseek_v3",
    "gemma",
    "gemma2",
    "phi3",
}
UNGATED = {"gptj", "gpt2", "gpt_neox", "opt", "falcon"}
ZOO_CHECKED = (
    "hidden_size",
    "num_decoder_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "intermediate_size",
    "vocab_size",
)


@dataclass
class Model:
    config: Any  # GenZ ModelConfig
    source: str
    experts: int = 1
    approx: list[tuple[str, str]] = field(default_factory=list)  # (strict reason, --approximate note)
    notes: list[str] = field(default_factory=list)  # informational

    @property
    def heads(self) -> int:
        return int(self.config.num_attention_heads)


def _catalogue_config(name: str) -> dict | None:
    sys.path.insert(0, str(ROOT))
    try:
        from models.catalogue import ALIASES, WORKLOADS
    finally:
        sys.path.remove(str(ROOT))
    canonical = ALIASES.get(name, name)
    workload = WORKLOADS.get(canonical)
    return dict(workload.config) if workload is not None else None


def _hf_fields(hf: dict) -> dict:
    """The fields GenZ's ModelConfig takes, from an HF config dict (decoder LMs only)."""
    mt = hf.get("model_type", "")
    if mt in ("gptj", "gpt2"):
        hidden, heads = hf["n_embd"], hf["n_head"]
        return dict(
            hidden_size=hidden,
            num_decoder_layers=hf["n_layer"],
            num_attention_heads=heads,
            num_key_value_heads=heads,
            head_dim=hidden // heads,
            intermediate_size=hf.get("n_inner") or 4 * hidden,
            num_ffi=1,
            vocab_size=hf["vocab_size"],
        )
    if "hidden_size" not in hf or "num_hidden_layers" not in hf:
        raise Unexpressible(f"model_type {mt!r} is not a decoder LM GenZ can build")
    if mt not in GATED | UNGATED:
        raise Unexpressible(f"model_type {mt!r}: MLP form unknown to this script")
    heads = hf["num_attention_heads"]
    return dict(
        hidden_size=hf["hidden_size"],
        num_decoder_layers=hf["num_hidden_layers"],
        num_attention_heads=heads,
        num_key_value_heads=hf.get("num_key_value_heads") or heads,
        head_dim=hf.get("head_dim") or hf["hidden_size"] // heads,
        intermediate_size=hf.get("intermediate_size") or 4 * hf["hidden_size"],
        num_ffi=2 if mt in GATED else 1,
        vocab_size=hf["vocab_size"],
    )


def _zoo_check(zoo, hf: dict | None, model: Model) -> None:
    if hf is None:
        return
    try:
        ours = _hf_fields(hf)
    except Unexpressible:
        return
    diffs = [
        f"{key} {getattr(zoo, key)} vs ours {ours[key]}"
        for key in ZOO_CHECKED
        if key in ours and int(getattr(zoo, key)) != int(ours[key])
    ]
    if diffs:
        model.notes.append("GenZ zoo entry differs from our config: " + "; ".join(diffs))


def build_model(name: str) -> Model:
    """A GenZ model for a catalogue name: the zoo entry where it is right, else our HF config."""
    hf = _catalogue_config(name)
    zoo_name = ZOO_NAMES.get(name)
    if zoo_name is None and hf is None:
        zoo = MODEL_DICT.get_model(name)
        if zoo is not None and zoo.model not in ZOO_WRONG:
            zoo_name = zoo.model
    if zoo_name is not None:
        zoo = MODEL_DICT.get_model(zoo_name)
        if zoo is None:
            raise Unexpressible(f"GenZ zoo has no {zoo_name!r}")
        model = Model(zoo, f"GenZ zoo {zoo.model}", experts=zoo.num_experts)
        _zoo_check(zoo, hf, model)
        return model
    if hf is None:
        raise Unexpressible(f"model {name!r} is in neither our catalogue nor GenZ's zoo")
    if "kv_lora_rank" in hf:  # MLA: DeepSeek-V2/V3/R1
        return _deepseek(name, hf)
    return _from_hf(name, hf)


def _from_hf(name: str, hf: dict) -> Model:
    fields = _hf_fields(hf)
    experts = hf.get("num_experts") or hf.get("num_local_experts") or hf.get("n_routed_experts") or 1
    model = Model(None, f"our catalogue config ({hf.get('model_type', '')})", experts=experts)
    if experts > 1:
        if hf.get("shared_expert_intermediate_size") or hf.get("n_shared_experts"):
            raise Unexpressible("shared experts: GenZ's prefill/decode FFN has routed experts only")
        if (
            hf.get("mlp_only_layers")
            or hf.get("decoder_sparse_step", 1) not in (1, None)
            or hf.get("first_k_dense_replace")
        ):
            raise Unexpressible("mixed dense and MoE layers: GenZ builds one layer type per model")
        fields.update(
            num_experts=experts,
            expert_top_k=hf["num_experts_per_tok"],
            intermediate_size=hf.get("moe_intermediate_size") or fields["intermediate_size"],
        )
        fields["moe_intermediate_size"] = fields["intermediate_size"]
    model.config = ModelConfig(model=f"catchup/{name}", **fields)
    return model


def _deepseek(name: str, hf: dict) -> Model:
    zoo = MODEL_DICT.get_model("deepseek-ai/DeepSeek-V3-Base")
    if (
        hf.get("model_type") != "deepseek_v3"
        or zoo is None
        or zoo.hidden_size != hf["hidden_size"]
        or zoo.num_decoder_layers != hf["num_hidden_layers"]
        or zoo.num_attention_heads != hf["num_attention_heads"]
    ):
        raise Unexpressible("MLA attention: GenZ models only MHA/GQA and its zoo has no shape for this model")
    routed, shared = hf["num_experts_per_tok"], hf.get("n_shared_experts") or 0
    width = hf["moe_intermediate_size"]
    config = ModelConfig(
        model=f"catchup/{name}",
        hidden_size=hf["hidden_size"],
        num_decoder_layers=hf["num_hidden_layers"],
        num_attention_heads=zoo.num_attention_heads,
        num_key_value_heads=zoo.num_key_value_heads,
        head_dim=zoo.head_dim,
        num_ffi=2,
        vocab_size=hf["vocab_size"],
        num_experts=hf["n_routed_experts"],
        expert_top_k=routed + shared,
        intermediate_size=width,
        moe_intermediate_size=width,
    )
    model = Model(
        config, "our catalogue config (deepseek_v3) with GenZ zoo attention shape", experts=hf["n_routed_experts"]
    )
    model.approx.append(
        (
            "MLA attention: GenZ models only MHA/GQA",
            f"MLA as GenZ's zoo GQA shape ({zoo.num_attention_heads} heads, {zoo.num_key_value_heads} KV heads, "
            f"head_dim {zoo.head_dim})",
        )
    )
    model.notes.append(
        f"experts {width} wide (not the zoo's {zoo.intermediate_size}); top-k {routed}+{shared} "
        f"shared; the {hf.get('first_k_dense_replace', 0)} dense layers as MoE layers (same FLOPs)"
    )
    return model


# -- system --------------------------------------------------------------------------------------------------------

#: Row precision -> GenZ bits (one width for weights, KV cache and activations alike).
BITS = {"bf16": "bf16", "fp16": "bf16", "fp8": "fp8", "int8": "int8", "int4": "int4", "w4a8": "int4", "fp4": "fp4"}
#: Row precision -> the profile peaks its compute runs at, first found.
PEAK_KEYS = {"int4": ("int4", "int8"), "w4a8": ("int8",)}


def _peak(prof: dict, key: str, precision: str, notes: list[str]) -> float:
    peaks = {k: value_of(v) for k, v in (prof.get("peak_tflops") or {}).items()}
    for name in PEAK_KEYS.get(precision, (precision,)):
        if peaks.get(name):
            if name != precision:
                notes.append(f"{precision} computes at the {name} peak")
            return float(peaks[name])
    raise Unexpressible(f"profile {key!r} has no {precision} peak")


def _link(ic: dict, key: str, group: int, pp: int, notes: list[str]) -> tuple[float, float]:
    """(GB/s per direction, latency us) of GenZ's one link: the slowest link the TP x EP collectives cross."""
    if group * pp <= 1:
        return 150.0, 1.0  # GenZ's dict defaults; unused on one chip
    if not ic.get("scaleup_gbs"):
        raise Unexpressible(f"profile {key!r} has no interconnect figures for a {group * pp}-chip instance")
    domain = ic.get("scaleup_domain") or 1
    if group <= domain or not ic.get("scaleout_gbs"):
        if pp > 1 and group * pp > domain:
            notes.append("PP hand-offs between domains on the scale-up link (GenZ has one link)")
        return ic["scaleup_gbs"], ic.get("scaleup_latency_us") or 1.0
    notes.append(
        f"{group}-chip TP x EP group exceeds the scale-up domain ({domain}): "
        f"GenZ's one link = scale-out {ic['scaleout_gbs']:g} GB/s"
    )
    return ic["scaleout_gbs"], ic.get("scaleout_latency_us") or 1.0


def build_system(profiles: dict, key: str, precision: str, group: int, pp: int) -> tuple[dict, str, list[str]]:
    """GenZ's system dict for one chip of the row's profile; `group` = chips of the TP x EP collectives."""
    notes: list[str] = []
    prof = profiles.get(key)
    if prof is None:
        raise Unexpressible(f"profile {key!r} is not in the profiles file")
    if precision not in BITS:
        raise Unexpressible(f"precision {precision!r} has no GenZ bits")
    bits = BITS[precision]
    peak = _peak(prof, key, precision, notes)
    memory_gb, bandwidth_tbs = value_of(prof.get("memory_gb")), value_of(prof.get("bandwidth_tbs"))
    if not memory_gb or not bandwidth_tbs:
        raise Unexpressible(f"profile {key!r} lacks memory_gb or bandwidth_tbs")
    ic = {k: value_of(v) for k, v in (prof.get("interconnect") or {}).items()}
    icn_gbs, icn_us = _link(ic, key, group, pp, notes)
    system = {
        "Flops": peak * System.compute_multiplier[bits],  # GenZ divides compute time by this multiplier
        "Memory_size": memory_gb * 1e9 / GIB,  # trap 1: GenZ's GB is GiB
        "Memory_BW": bandwidth_tbs * 1e12 / GIB,  # trap 1: GenZ's GB/s is GiB/s
        "ICN": icn_gbs * 1e9 / GIB,
        "ICN_LL": icn_us,  # trap 8
        "real_values": True,
    }
    return system, bits, notes


# -- GenZ calls ----------------------------------------------------------------------------------------------------


@dataclass
class Instance:
    """One GenZ instance: tensor_parallel x expert_parallel x pipeline_parallel chips."""

    model: Model
    system: dict
    bits: str
    tp: int
    ep: int
    pp: int

    @property
    def chips(self) -> int:
        return self.tp * self.ep * self.pp

    @property
    def label(self) -> str:
        return f"tensor_parallel={self.tp},expert_parallel={self.ep},pipeline_parallel={self.pp}"

    def _call(self, fn: Callable, **kw) -> dict:
        args = dict(
            model=self.model.config,
            system_name=self.system,
            bits=self.bits,
            tensor_parallel=self.tp,
            expert_parallel=self.ep,
            pipeline_parallel=self.pp,
        )
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                return fn(**args, **kw)
        except ValueError as exc:
            if "would not fit" in str(exc):
                raise NoFit(str(exc).splitlines()[0]) from None
            raise
        finally:
            _cleanup()

    def prefill_ms(self, batch: int, input_tokens: int) -> float:
        """Time (ms) to prefill `batch` prompts of `input_tokens` (trap 4: Throughput is requests/s)."""
        out = self._call(prefill_moddeling, batch_size=batch, input_tokens=input_tokens)
        return 1000.0 * batch / float(out["Throughput"])  # trap 5: keys, not attributes

    def decode_step_ms(self, batch: int, context: int, generated: int) -> float:
        """One decode step of `batch` requests (Bb = 1, trap 2): KV of `context` prompt + `generated` tokens."""
        out = self._call(decode_moddeling, batch_size=batch, input_tokens=context, output_tokens=generated, Bb=1)
        return 1000.0 * batch / float(out["Throughput"])

    def decode_fits(self, batch: int, input_tokens: int, output_tokens: int) -> bool:
        try:
            self.decode_step_ms(batch, input_tokens, output_tokens)
            return True
        except NoFit:
            return False


def largest(ok: Callable[[int], bool], limit: int) -> int:
    """Largest b in [1, limit] with ok(b) (ok monotone): the same search as our model's
    (bench.projection.search.largest_fitting_batch, which needs only the standard library)."""
    sys.path.insert(0, str(ROOT))
    try:
        from bench.projection.search import largest_fitting_batch
    finally:
        sys.path.remove(str(ROOT))
    return largest_fitting_batch(ok, limit)
