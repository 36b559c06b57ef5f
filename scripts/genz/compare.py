#!/usr/bin/env python3
"""Run the peer simulator GenZ (PyPI genz-llm 0.0.16, import `GenZ`; github.com/abhibambhaniya/GenZ-LLM-Analyzer)
on the rows of a published-serving corpus, to set its error beside the project's serving model.

    bash scripts/genz/setup.sh                     # once: .venv-genz with genz-llm 0.0.16
    .venv-genz/bin/python scripts/genz/compare.py bench/projection/published_serving.toml \
        [--profiles bench/projection/profiles.toml] [--json] [--approximate]

Method. GenZ is used as shipped: its analytical roofline per operator (time = max(compute, memory, collective)),
its default efficiencies (system_eff = 1, i.e. peak compute and peak bandwidth), its 'GenZ' collective model
(ring all-reduce / all-to-all over one flat link). For every row the script builds a GenZ system from the
row's device profile, a GenZ ModelConfig (or zoo entry) for the row's model, and calls
`GenZ.prefill_moddeling` / `GenZ.decode_moddeling` with the row's TP/EP/PP, batch, lengths and precision:
  decode      figure = output tokens/s per chip = decode Throughput / chips of the GenZ instance; the step is
              evaluated at the mean context (input + output/2); a TPOT bound with no batch -> the largest batch
              (powers of two, then bisection) whose TPOT (= 1000 * batch / Throughput ms) is within the bound
              and which fits memory at the full context (input + output); no bound and no batch -> the largest
              batch that fits.
  prefill     figure = input tokens/s per chip = batch * input / prefill time / chips; no batch -> powers of
              two (within memory, the TTFT bound if given, and 65,536 prompt tokens per chip), the smallest
              batch within 2% of the best rate (the project's rule).
  aggregated  the same chips prefill `batch_size` prompts, then decode them to the end (static batching):
              batch * output / (prefill time + (output - 1) decode steps) / chips.
  colocated   prefill and decode share the chips: per request stream, output/s per chip =
              O / (I / prefill_rate + O / decode_rate), with the prefill rate as for a prefill row and the decode
              rate as for a decode row (TPOT bound -> batch search).
A row that uses data-parallel replicas without EP (chips = dp x tp x pp) is one GenZ instance of tp x pp chips;
its per-chip figure is the replica's.

Mapping of the row's fields to GenZ arguments.
  model        GenZ zoo entry where the zoo has that model and it is right (llama-3.1-8b/70b/405b, llama-2-*,
               mixtral-*); else a ModelConfig from our catalogue's HF config (models.catalogue.get_workload(name)
               .config): hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim,
               intermediate_size, vocab_size, num_ffi = 2 for gated (SwiGLU) MLPs and 1 otherwise (GPT-J,
               GPT-2); MoE: num_experts / expert_top_k, and intermediate_size = the EXPERT width
               (moe_intermediate_size), because GenZ's prefill/decode FFN builds every expert with
               `intermediate_size`.
  profile      system dict {Flops, Memory_size, Memory_BW, ICN, ICN_LL, real_values: True} from
               the profiles TOML: Flops = peak_tflops[row precision] x GenZ's compute multiplier for the
               bits (so GenZ's effective rate equals our peak for that dtype); Memory_size = memory_gb in GiB;
               Memory_BW = bandwidth_tbs in GiB/s; ICN/ICN_LL = interconnect.scaleup_gbs (per direction, in
               GiB/s) and scaleup_latency_us when the TP x EP collective group fits in the scale-up domain,
               else the scale-out figures -- the slowest link its collectives cross (GenZ's 'GenZ' collective
               model has one flat link; hierarchy needs its ASTRA-SIM path, whose binary is not shipped). PP
               hand-offs use the same link.
  precision    bits: bf16 -> 'bf16', fp16 -> 'bf16' (same bytes; GenZ has no 'fp16' key), fp8 -> 'fp8',
               int8 -> 'int8', int4 -> 'int4' (compute at the profile's int4 peak, else its int8 peak: w4a8).
               GenZ stores weights, KV cache and activations in these bits alike.
  parallel     tp/ep/pp of the row (chips = dp x tp x pp, EP inside the stage, as the project reads it) ->
               GenZ tensor_parallel = tp / ep, expert_parallel = ep, pipeline_parallel = pp when dp = 1 (GenZ
               shards attention over tensor_parallel x expert_parallel, so its EP lives inside the attention TP
               group); ep = 1 -> tensor_parallel = tp on one replica.
  lengths      input_tokens / output_tokens; batch_size; tpot_slo_ms; ttft_slo_ms.

GenZ traps avoided (each is a workaround in this script):
  1. Units: GenZ's memory unit is binary (Memory_size GB x 1024 MB x 2^20 B) and its bandwidth unit 'GBsec' is
     binary too (2^30 B/s), while FLOPS are decimal. Our GB and TB/s are decimal, so they are converted to GiB and
     GiB/s (80 GB -> 74.5 GiB; 3.35 TB/s -> 3,120 GiB/s); passing them as-is would overstate memory by 7% and
     bandwidth by 7.4%. (Its own 'H100_GPU' preset, Memory_BW = 3400, means 3.65 TB/s.)
  2. `decode_moddeling` defaults to Bb = 4 beams per request (4x the GEMM rows and generated-token KV, prompt KV
     shared, yet one token per request counted in Throughput); Bb = 1 is passed.
  3. GenZ's DeepSeek-V3 zoo entry ('deepseek-ai/DeepSeek-V3-Base') gives experts the dense FFN width: the
     prefill/decode FFN uses `intermediate_size` (18,432) for each of the 256 experts, not
     moe_intermediate_size (2,048) -- 9x the expert FLOPs and weights; its shared expert is also 18,432 wide.
     DeepSeek is built from our config instead (only with --approximate, see MLA below): experts 2,048 wide,
     top-k = 8 routed + 1 shared expert (the shared expert as an always-chosen expert of the same width; the 3
     dense layers, 18,432 = 9 x 2,048 wide, are then exact in FLOPs too, as GenZ has one layer type per model).
  4. Prefill `Throughput` is requests/s (1000 x batch / latency), not tokens/s; it is multiplied by input_tokens.
  5. `ModdelingOutput` is a dict: attribute access (`out.Latency`) returns the class default 0; keys are read.
  6. Zoo aliases: 'meta-llama/meta-llama-3.1-70b' is Llama-2-70B's config (vocab 32,000) in the zoo; canonical
     names ('meta-llama/Llama-3.1-70B') are used, and every zoo entry used is checked against our config.
  7. GenZ writes a CSV per model build to /tmp/genz/data/model and never deletes it; the files this script
     causes are deleted after each call (save_layers is wrapped only to record the names).
  8. Interconnect latency: the dict path defaults ICN_LL to 1 us; the profile's collective latency is passed.

Rows GenZ cannot express get a reason instead of a number (default, strict):
  MLA attention (DeepSeek-V2/V3/R1): GenZ has only MHA/GQA (its zoo fakes DeepSeek-V3 as 2 KV heads of 56);
  attention data-parallel with EP (dp > 1 and ep > 1, e.g. tp=1,ep=32 on 32 chips): GenZ shards attention
  over TP x EP (each chip holds max(1, KV heads / (TP x EP)) heads of the WHOLE batch's KV) -- no attention-DP;
  speculative decoding / MTP (spec_tokens, acceptance_length, mtp_acceptance): GenZ's spec_decode_modeling
  needs a separate draft model and is not the MTP head;
  expert counts not divisible by EP (GenZ asserts E % EP == 0); a profile without a peak for the precision or
  without interconnect figures for a multi-chip instance; a model in neither GenZ's zoo nor our catalogue;
  MoE models with mixed dense/MoE layers or shared experts other than DeepSeek's.
--approximate runs DeepSeek-V3/R1 and attention-DP rows anyway, with these stated substitutions: MLA ->
  GenZ's own zoo attention shape for DeepSeek-V3 (128 query heads, 2 KV heads, head_dim 56), MoE as in trap 3;
  attention-DP over dp replicas -> GenZ's attention TP over the whole stage (tensor_parallel x
  expert_parallel = chips / pp); MTP/speculation ignored (no speed-up counted). Those rows are marked
  'approx' and their notes say what was substituted; the median is printed both over all predicted rows and
  over the exact ones.

Known limitations of GenZ's modelling that remain (as shipped, not worked around): efficiency 1 (peak
compute and bandwidth); no causal halving of attention FLOPs; the input embedding is a GEMM over the vocab in
prefill; in decode, each chip of an EP group is charged ceil(top_k / EP) experts' weights but every token of
the batch (expert load neither balanced nor spread); the all-to-all moves batch x seq x top_k x hidden per
chip; memory is weights + KV only (no activations, no reserve) against the whole HBM.

Output: a table (row id, phase, published, GenZ, GenZ/published, batch, reason or notes) and the median
|ln(GenZ/published)|; with --json, a JSON object {row_id: {"genz", "reason", "published", "notes", "batch",
"tpot_ms", "ttft_ms", "genz_parallel", "phase"}} on stdout and the medians on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import statistics
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import tomllib

ROOT = Path(__file__).resolve().parents[2]
GIB = float(2**30)
MAX_DECODE_BATCH = 1 << 17  # per GenZ instance; memory stops the search long before
MAX_PREFILL_TOKENS_PER_CHIP = 65536  # as the project's search_prefill
GENZ_VERSION = "0.0.16"
#: The repo's device profiles (the file moved from backends/ to bench/projection/); the first that exists.
PROFILE_FILES = (ROOT / "bench" / "projection" / "profiles.toml", ROOT / "backends" / "profiles.toml")

warnings.simplefilter("ignore")
try:
    import GenZ.Models.get_language_model as _glm  # noqa: E402
    from GenZ import ModelConfig, decode_moddeling, prefill_moddeling  # noqa: E402
    from GenZ.Models.default_models import MODEL_DICT  # noqa: E402
    from GenZ.system import System  # noqa: E402
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


class Unexpressible(Exception):
    """The row cannot be put to GenZ; the message is the reason."""


class NoFit(Exception):
    """GenZ says weights + KV exceed the chips' memory."""


# -- inputs -------------------------------------------------------------------------------------------------------


def _value(entry: Any) -> Any:
    return entry.get("value") if isinstance(entry, dict) else entry


def load_rows(path: Path) -> list[dict]:
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    rows = data.get("row", [])
    if not isinstance(rows, list) or not rows:
        sys.exit(f"{path}: expected a list of [[row]] tables")
    return rows


def load_profiles(path: Path) -> dict[str, dict]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


def parse_parallel(text: str | None, chips: int) -> dict[str, int]:
    values = {"tp": 1, "pp": 1, "ep": 1}
    if not text:
        if chips != 1:
            raise Unexpressible("the row gives no parallel split for its chips (GenZ needs one)")
        return {**values, "dp": 1}
    for part in [p.strip() for p in str(text).split(",") if p.strip()]:
        key, _, value = part.partition("=")
        key = key.strip()
        if key not in values:
            raise Unexpressible(f"parallel {text!r}: unknown key {key!r}")
        values[key] = int(value)
    tp, pp, ep = values["tp"], values["pp"], values["ep"]
    if chips % (tp * pp):
        raise Unexpressible(f"parallel {text!r}: tp x pp does not divide chips = {chips}")
    per_stage = chips // pp
    if ep > 1 and per_stage % ep:
        raise Unexpressible(f"parallel {text!r}: ep does not divide the {per_stage} chips of a stage")
    return {**values, "dp": chips // (tp * pp)}


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


@dataclass
class Model:
    config: Any  # GenZ ModelConfig
    source: str
    experts: int = 1
    approx: list[tuple[str, str]] = field(default_factory=list)  # (strict reason, --approximate note)
    notes: list[str] = field(default_factory=list)  # informational


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
        hidden = hf["n_embd"]
        heads = hf["n_head"]
        fields = dict(
            hidden_size=hidden,
            num_decoder_layers=hf["n_layer"],
            num_attention_heads=heads,
            num_key_value_heads=heads,
            head_dim=hidden // heads,
            intermediate_size=hf.get("n_inner") or 4 * hidden,
            num_ffi=1,
            vocab_size=hf["vocab_size"],
        )
        return fields
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
    diffs = []
    for key in (
        "hidden_size",
        "num_decoder_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "intermediate_size",
        "vocab_size",
    ):
        if key in ours and int(getattr(zoo, key)) != int(ours[key]):
            diffs.append(f"{key} {getattr(zoo, key)} vs ours {ours[key]}")
    if diffs:
        model.notes.append("GenZ zoo entry differs from our config: " + "; ".join(diffs))


def build_model(name: str) -> Model:
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

    mt = hf.get("model_type", "")
    if "kv_lora_rank" in hf:  # MLA: DeepSeek-V2/V3/R1
        return _deepseek(name, hf)
    fields = _hf_fields(hf)
    experts = hf.get("num_experts") or hf.get("num_local_experts") or hf.get("n_routed_experts") or 1
    model = Model(None, f"our catalogue config ({mt})", experts=experts)
    if experts > 1:
        if hf.get("shared_expert_intermediate_size") or hf.get("n_shared_experts"):
            raise Unexpressible("shared experts: GenZ's prefill/decode FFN has routed experts only")
        if hf.get("mlp_only_layers") or hf.get("decoder_sparse_step", 1) != 1 or hf.get("first_k_dense_replace"):
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

BITS = {"bf16": "bf16", "fp16": "bf16", "fp8": "fp8", "int8": "int8", "int4": "int4", "fp4": "fp4"}


def build_system(profiles: dict, key: str, precision: str, group: int, pp: int) -> tuple[dict, str, list[str]]:
    """GenZ's system dict for one chip of the row's profile; `group` = chips of the TP x EP collectives."""
    notes: list[str] = []
    prof = profiles.get(key)
    if prof is None:
        raise Unexpressible(f"profile {key!r} is not in the profiles file")
    if precision not in BITS:
        raise Unexpressible(f"precision {precision!r} has no GenZ bits")
    bits = BITS[precision]
    peaks = {k: _value(v) for k, v in (prof.get("peak_tflops") or {}).items()}
    peak = peaks.get(precision)
    if peak is None and precision == "int4" and peaks.get("int8"):
        peak = peaks["int8"]
        notes.append("int4 computes at the int8 peak (no int4 figure)")
    if peak is None or not (peak > 0):
        raise Unexpressible(f"profile {key!r} has no {precision} peak")
    memory_gb, bandwidth_tbs = _value(prof.get("memory_gb")), _value(prof.get("bandwidth_tbs"))
    if not memory_gb or not bandwidth_tbs:
        raise Unexpressible(f"profile {key!r} lacks memory_gb or bandwidth_tbs")
    ic = {k: _value(v) for k, v in (prof.get("interconnect") or {}).items()}
    icn_gbs, icn_us = 150.0, 1.0  # GenZ's dict defaults; unused on one chip
    if group * pp > 1:
        if not ic.get("scaleup_gbs"):
            raise Unexpressible(f"profile {key!r} has no interconnect figures for a {group * pp}-chip instance")
        if group <= (ic.get("scaleup_domain") or 1) or not ic.get("scaleout_gbs"):
            icn_gbs, icn_us = ic["scaleup_gbs"], ic.get("scaleup_latency_us") or 1.0
            if pp > 1 and group * pp > (ic.get("scaleup_domain") or 1):
                notes.append("PP hand-offs between domains on the scale-up link (GenZ has one link)")
        else:
            icn_gbs, icn_us = ic["scaleout_gbs"], ic.get("scaleout_latency_us") or 1.0
            notes.append(
                f"{group}-chip TP x EP group exceeds the scale-up domain ({ic.get('scaleup_domain')}): "
                f"GenZ's one link = scale-out {icn_gbs:g} GB/s"
            )
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
    model: Model
    system: dict
    bits: str
    tp: int
    ep: int
    pp: int

    @property
    def chips(self) -> int:
        return self.tp * self.ep * self.pp

    def _kwargs(self) -> dict:
        return dict(
            model=self.model.config,
            system_name=self.system,
            bits=self.bits,
            tensor_parallel=self.tp,
            expert_parallel=self.ep,
            pipeline_parallel=self.pp,
        )

    def _call(self, fn: Callable, **kw) -> dict:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                return fn(**self._kwargs(), **kw)
        except ValueError as exc:
            if "would not fit" in str(exc):
                raise NoFit(str(exc).splitlines()[0]) from None
            raise
        finally:
            _cleanup()

    def prefill_ms(self, batch: int, input_tokens: int) -> float:
        """Time (ms) to prefill `batch` prompts of `input_tokens` (trap 4: Throughput is requests/s)."""
        out = self._call(prefill_moddeling, batch_size=batch, input_tokens=input_tokens)
        return 1000.0 * batch / out["Throughput"]  # trap 5: keys, not attributes

    def decode_step_ms(self, batch: int, context: int, generated: int) -> float:
        """One decode step of `batch` requests (Bb = 1, trap 2): KV of `context` prompt + `generated` tokens."""
        out = self._call(decode_moddeling, batch_size=batch, input_tokens=context, output_tokens=generated, Bb=1)
        return 1000.0 * batch / out["Throughput"]

    def decode_fits(self, batch: int, input_tokens: int, output_tokens: int) -> bool:
        try:
            self.decode_step_ms(batch, input_tokens, output_tokens)
            return True
        except NoFit:
            return False


def largest(ok: Callable[[int], bool], limit: int) -> int:
    """Largest b in [1, limit] with ok(b) (ok monotone: true then false): powers of two, then bisection."""
    if not ok(1):
        return 0
    low, high = 1, 2
    while high <= limit and ok(high):
        low, high = high, high * 2
    high = min(high, limit + 1)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if ok(mid) else (low, mid)
    return low


def decode_rate(inst: Instance, row: dict, info: dict) -> float | None:
    """Output tokens/s per chip for a decode instance; sets info['batch'], info['tpot_ms']."""
    inp, out = int(row["input_tokens"]), int(row["output_tokens"])
    mid = int(round(out / 2))
    tpot = row.get("tpot_slo_ms")
    cache: dict[int, float | None] = {}

    def step(b: int) -> float | None:
        if b not in cache:
            cache[b] = inst.decode_step_ms(b, inp, mid) if inst.decode_fits(b, inp, out) else None
        return cache[b]

    batch = row.get("batch_size")
    if batch:
        batch = int(batch)
        if step(batch) is None:
            info["reason_nofit"] = f"batch {batch} does not fit memory in GenZ"
            return None
    else:
        batch = largest(lambda b: step(b) is not None and (tpot is None or step(b) <= tpot), MAX_DECODE_BATCH)
        if batch == 0:
            info["reason_nofit"] = (
                "no batch fits memory in GenZ"
                if step(1) is None
                else f"GenZ TPOT at batch 1 is {step(1):.1f} ms > {tpot:g} ms"
            )
            return None
    info["batch"], info["tpot_ms"] = batch, step(batch)
    return 1000.0 * batch / step(batch) / inst.chips


def prefill_rate(inst: Instance, row: dict, info: dict, key: str = "batch") -> float | None:
    """Input tokens/s per chip for a prefill instance; sets info[key], info['ttft_ms']."""
    inp = int(row["input_tokens"])
    ttft = row.get("ttft_slo_ms")
    if row.get("batch_size") and row.get("phase") == "prefill":
        sizes = [int(row["batch_size"])]
    else:
        sizes, b = [], 1
        while b == 1 or b * inp <= MAX_PREFILL_TOKENS_PER_CHIP * inst.chips:
            sizes.append(b)
            b *= 2
    points = []
    for b in sizes:
        try:
            ms = inst.prefill_ms(b, inp)
        except NoFit:
            break
        if ttft is not None and ms > ttft:
            break
        points.append((b, ms, 1000.0 * b * inp / ms / inst.chips))
    if not points:
        info["reason_nofit"] = (
            "no prompt batch fits memory" + (f" within TTFT {ttft:g} ms" if ttft else "") + " in GenZ"
        )
        return None
    top = max(p[2] for p in points)
    b, ms, rate = next(p for p in points if p[2] >= 0.98 * top)
    info[key], info["ttft_ms"] = b, ms
    return rate


def predict(row: dict, profiles: dict, approximate: bool) -> tuple[float | None, str | None, list[str], dict]:
    """(GenZ figure, reason, notes, info) for one row. Every blocker found is named in the reason."""
    notes: list[str] = []
    soft: list[tuple[str, str]] = []  # (reason when strict, note when --approximate)
    hard: list[str] = []  # reasons even with --approximate
    info: dict = {}
    phase = row.get("phase")
    if phase not in ("decode", "prefill", "aggregated", "colocated"):
        raise Unexpressible(f"phase {phase!r} unknown")
    spec = [k for k in ("spec_tokens", "acceptance_length", "mtp_acceptance") if row.get(k)]
    if spec:
        soft.append(
            (
                f"speculative decoding / MTP ({', '.join(spec)}): GenZ's decode has none (its "
                "spec_decode_modeling needs a separate draft model)",
                "MTP/speculation ignored (no speed-up counted)",
            )
        )

    model = build_model(str(row["model"]))
    soft += model.approx
    notes += model.notes
    chips = int(row["chips"])
    par = parse_parallel(row.get("parallel"), chips)
    tp, pp, ep, dp = par["tp"], par["pp"], par["ep"], par["dp"]
    if ep > 1 and model.experts <= 1:
        raise Unexpressible(f"ep = {ep} for a dense model")
    if ep == 1:
        g_tp, g_ep = tp, 1  # dp independent replicas of tp x pp chips
        if dp > 1:
            notes.append(f"one of {dp} data-parallel replicas")
    elif dp == 1:
        if tp % ep:
            raise Unexpressible(
                f"parallel {row.get('parallel')!r}: GenZ's EP lives inside the attention TP group; ep must divide tp"
            )
        g_tp, g_ep = tp // ep, ep
    else:
        per_stage = chips // pp
        g_tp, g_ep = per_stage // ep, ep
        soft.append(
            (
                f"attention data-parallel (dp = {dp}) with EP {ep}: GenZ shards attention over TP x EP "
                "and has no attention-DP",
                f"attention-DP over {dp} replicas as attention TP over {per_stage} chips",
            )
        )
    if model.experts > 1 and model.experts % g_ep:
        hard.append(f"GenZ needs the expert count ({model.experts}) divisible by EP ({g_ep})")
    if hard or (soft and not approximate):
        raise Unexpressible("; ".join(hard + ([] if approximate else [r for r, _ in soft])))
    approx = [a for _, a in soft]
    system, bits, sys_notes = build_system(profiles, str(row["profile"]), str(row["precision"]), g_tp * g_ep, pp)
    notes += sys_notes
    inst = Instance(model, system, bits, g_tp, g_ep, pp)
    info["genz_parallel"] = f"tensor_parallel={g_tp},expert_parallel={g_ep},pipeline_parallel={pp}"

    if phase == "decode":
        value = decode_rate(inst, row, info)
    elif phase == "prefill":
        value = prefill_rate(inst, row, info)
    elif phase == "aggregated":
        batch = row.get("batch_size")
        if not batch:
            raise Unexpressible("an aggregated row needs batch_size")
        batch, inp, out = int(batch), int(row["input_tokens"]), int(row["output_tokens"])
        if not inst.decode_fits(batch, inp, out):
            info["reason_nofit"] = f"batch {batch} does not fit memory in GenZ"
            value = None
        else:
            pre = inst.prefill_ms(batch, inp)
            step = inst.decode_step_ms(batch, inp, int(round(out / 2)))
            info.update(batch=batch, ttft_ms=pre, tpot_ms=step)
            value = 1000.0 * batch * out / (pre + max(out - 1, 0) * step) / inst.chips
    else:  # colocated
        p_rate = prefill_rate(inst, row, info, key="prefill_batch")
        d_rate = decode_rate(inst, row, info)
        inp, out = int(row["input_tokens"]), int(row["output_tokens"])
        value = out / (inp / p_rate + out / d_rate) if p_rate and d_rate else None
    notes = [f"approx: {a}" for a in approx] + notes
    return value, None, notes, info


# -- main ----------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("corpus", type=Path, help="TOML with [[row]] tables")
    ap.add_argument(
        "--profiles",
        type=Path,
        default=next((p for p in PROFILE_FILES if p.exists()), PROFILE_FILES[0]),
        help="device profiles TOML (default: the repo's bench/projection/profiles.toml or backends/profiles.toml)",
    )
    ap.add_argument("--json", action="store_true", help="JSON {row_id: {genz, reason, published, ...}} on stdout")
    ap.add_argument(
        "--approximate",
        action="store_true",
        help="run MLA (DeepSeek-V3/R1), attention-DP and MTP rows with stated substitutions",
    )
    args = ap.parse_args(argv)

    if _installed_version() != GENZ_VERSION:
        print(
            f"warning: genz-llm {_installed_version()} installed; this script was written for {GENZ_VERSION}",
            file=sys.stderr,
        )
    rows = load_rows(args.corpus)
    profiles = load_profiles(args.profiles)
    results: dict[str, dict] = {}
    for row in rows:
        rid = str(row.get("id"))
        published = row.get("figure")
        try:
            value, reason, notes, info = predict(row, profiles, args.approximate)
            if value is None:
                reason = info.pop("reason_nofit", "GenZ found no feasible point")
        except Unexpressible as exc:
            value, reason, notes, info = None, str(exc), [], {}
        except (AssertionError, ValueError, KeyError, ZeroDivisionError) as exc:  # GenZ refused the inputs
            value, reason, notes, info = None, f"GenZ error: {type(exc).__name__}: {exc}".splitlines()[0], [], {}
        results[rid] = {
            "genz": value,
            "reason": reason,
            "published": published,
            "notes": notes,
            "batch": info.get("batch"),
            "tpot_ms": info.get("tpot_ms"),
            "ttft_ms": info.get("ttft_ms"),
            "genz_parallel": info.get("genz_parallel"),
            "phase": row.get("phase"),
        }

    errs_all = [abs(math.log(r["genz"] / r["published"])) for r in results.values() if r["genz"] and r["published"]]
    errs_exact = [
        abs(math.log(r["genz"] / r["published"]))
        for r in results.values()
        if r["genz"] and r["published"] and not any(n.startswith("approx:") for n in r["notes"])
    ]
    summary = _summary(errs_all, errs_exact, len(results), args.approximate)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
        print(summary, file=sys.stderr)
    else:
        _table(results)
        print(summary)
    return 0


def _installed_version() -> str:
    try:
        from importlib.metadata import version

        return version("genz-llm")
    except Exception:  # noqa: BLE001
        return "unknown"


def _summary(errs_all: list[float], errs_exact: list[float], n: int, approximate: bool) -> str:
    def med(errs):
        return f"{statistics.median(errs):.3f} (x{math.exp(statistics.median(errs)):.2f})" if errs else "n/a"

    text = f"GenZ {_installed_version()}: predicted {len(errs_all)} of {n} rows; median |ln(GenZ/published)| = {med(errs_all)}"
    if approximate:
        text += f"\n  over the {len(errs_exact)} rows without approximations: {med(errs_exact)}"
    return text


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:,.1f}"


def _table(results: dict[str, dict]) -> None:
    header = ("row", "phase", "published", "GenZ", "GenZ/pub", "batch", "reason / notes")
    lines = [header]
    for rid, r in results.items():
        ratio = f"{r['genz'] / r['published']:.3f}" if r["genz"] and r["published"] else "-"
        extra = r["reason"] if r["reason"] else "; ".join(r["notes"])
        if r["genz"] is not None and r.get("tpot_ms") is not None:
            extra = f"TPOT {r['tpot_ms']:.1f} ms" + ("; " + extra if extra else "")
        lines.append(
            (
                rid,
                str(r["phase"]),
                _fmt(r["published"]),
                _fmt(r["genz"]),
                ratio,
                str(r["batch"]) if r["batch"] else "-",
                extra,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    for line in lines:
        cells = [c.rjust(w) if i in (2, 3, 4, 5) else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))]
        print("  ".join(cells) + "  " + line[-1])


if __name__ == "__main__":
    sys.exit(main())
