#!/usr/bin/env python3
"""Run the peer simulator GenZ (PyPI genz-llm 0.0.16, import `GenZ`; github.com/abhibambhaniya/GenZ-LLM-Analyzer)
on the rows of a published-serving corpus, to set its error beside the project's serving model.

    bash scripts/genz/setup.sh                     # once: .venv-genz with genz-llm 0.0.16
    .venv-genz/bin/python scripts/genz/compare.py bench/projection/published_serving.toml \
        [--profiles bench/projection/profiles.toml] [--json] [--approximate]

Files: compare.py (this entry point: the loop, the tables), genz_model.py (GenZ's import, model, system and
calls, with the traps below), genz_rows.py (a row's split, phases and unit), ours.py (the project's prediction).

Method. GenZ is used as shipped: its analytical roofline per operator (time = max(compute, memory, collective)),
its default efficiencies (system_eff = 1, i.e. peak compute and peak bandwidth), its 'GenZ' collective model
(ring all-reduce / all-to-all over one flat link). For every row the script builds a GenZ system from the
row's device profile, a GenZ ModelConfig (or zoo entry) for the row's model, and calls
`GenZ.prefill_moddeling` / `GenZ.decode_moddeling` with the row's TP/EP/PP, batch, lengths and precision.
The figure mirrors bench/projection/published.py's predict() phase by phase:
  decode      output tokens/s per chip = decode Throughput / chips of the GenZ instance; the step is evaluated
              at the mean context (input + output/2); a TPOT bound with no batch -> the largest batch (powers
              of two, then bisection) whose TPOT (= 1000 * batch / Throughput ms) is within the bound and which
              fits memory at the full context (input + output); no bound and no batch -> the largest batch that
              fits.
  prefill     input tokens/s per chip = batch * input / prefill time / chips; no batch (or a phase other than
              prefill) -> powers of two (within memory, the TTFT bound if given, and 65,536 prompt tokens per
              chip), the smallest batch within 2% of the best rate (the project's rule).
  colocated   prefill and decode share the chips: per request stream, output/s per chip =
              O / (I / prefill_rate + O / decode_rate), the prefill rate as for a prefill row and the decode rate
              as for a decode row (TPOT bound -> batch search). GenZ has no chunked-prefill step; this is the
              time-sharing of its two phases.
  system      a disaggregated deployment of prefill_chips + decode_chips, figure per chip of both (as the
              project): min(decode x decode_chips, prefill x prefill_chips x output / input) /
              (decode_chips + prefill_chips), the decode rate on decode_chips and the prefill rate on
              prefill_chips, each with its split searched (the row's `parallel`, if any, is not used, as the
              project does not use it for system rows).
  unit        output and input: the phase's own rate (decode, colocated, system: output; prefill: input);
              total = that rate x (input + output) / output, as the project (a unit other than the phase's own
              and not total is read as the project reads it, with a note).
  concurrency a cap on the batch of each GenZ instance: ceil(concurrency / instances on the row's chips), as the
              project divides it over its replicas (decode batch and, for colocated, the prompt batch too).
A row that uses data-parallel replicas without EP (chips = dp x tp x pp) is one GenZ instance of tp x pp chips;
its per-chip figure is the replica's. A row (or a system phase) with no `parallel` is searched, as the project
searches: TP over powers of two dividing the chips (<= 64, <= attention heads), the rest data-parallel replicas;
for MoE also EP (powers of two dividing the expert count) inside a TP group of all the chips; PP = 1; the split
with the highest rate wins.

Engines. GenZ has no notion of a serving engine (kernels, schedulers, overheads): rows that differ only in
`engine` get the same GenZ figure on the same hardware and setup. The engine is carried through to the output,
and the rows that differ only in engine are listed with the published spread GenZ cannot show.

The project's figure beside GenZ's (ours.py): bench.projection.published.predict(row) with the committed fit, in
the row's unit; the row's use (fit: published before [split].fit_published_before, else held_out) from
PublishedSet.is_fit, its group (dense/moe x gpu/npu) from the model's architecture and the profile's kind. It runs
in this interpreter where bench.projection imports (it needs numpy and the standard library), else in the
project's .venv/bin/python, handed over as JSON.

Mapping of the row's fields to GenZ arguments (unknown keys of a row are ignored).
  model        GenZ zoo entry where the zoo has that model and it is right (llama-3.1-8b/70b/405b, llama-2-*,
               mixtral-*); else a ModelConfig from our catalogue's HF config (models.catalogue WORKLOADS[name]
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
               int8 -> 'int8', fp4 -> 'fp4', int4 -> 'int4' (compute at the profile's int4 peak, else its int8
               peak), w4a8 -> 'int4' at the int8 peak. GenZ stores weights, KV cache and activations in these
               bits alike (a row's kv_precision is not expressible; a note says so where it differs).
  parallel     tp/ep/pp of the row (chips = dp x tp x pp, EP inside the stage, as the project reads it) ->
               GenZ tensor_parallel = tp / ep, expert_parallel = ep, pipeline_parallel = pp when dp = 1 (GenZ
               shards attention over tensor_parallel x expert_parallel, so its EP lives inside the attention TP
               group); ep = 1 -> tensor_parallel = tp on one replica; absent -> searched (above).
  lengths      input_tokens / output_tokens; batch_size; concurrency; tpot_slo_ms; ttft_slo_ms.

GenZ traps avoided (each is a workaround in genz_model.py):
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
  speculative decoding / MTP / EAGLE (spec_method, spec_tokens, acceptance_length): GenZ's spec_decode_modeling
  needs a separate draft model and is not the MTP head or an EAGLE head;
  expert counts not divisible by EP (GenZ asserts E % EP == 0); a profile without a peak for the precision or
  without interconnect figures for a multi-chip instance; a model in neither GenZ's zoo nor our catalogue;
  MoE models with mixed dense/MoE layers or shared experts other than DeepSeek's.
--approximate runs DeepSeek-V3/R1, attention-DP and speculative rows anyway, with these stated substitutions:
  MLA -> GenZ's own zoo attention shape for DeepSeek-V3 (128 query heads, 2 KV heads, head_dim 56), MoE as in
  trap 3; attention-DP over dp replicas -> GenZ's attention TP over the whole stage (tensor_parallel x
  expert_parallel = chips / pp); MTP/EAGLE speculation ignored (no speed-up counted). Those rows are marked
  'approx' and their notes say what was substituted; the median is printed both over all predicted rows and
  over the exact ones.

Known limitations of GenZ's modelling that remain (as shipped, not worked around): efficiency 1 (peak
compute and bandwidth); no engine; no causal halving of attention FLOPs; the input embedding is a GEMM over the
vocab in prefill; in decode, each chip of an EP group is charged ceil(top_k / EP) experts' weights but every token
of the batch (expert load neither balanced nor spread); the all-to-all moves batch x seq x top_k x hidden per
chip; memory is weights + KV only (no activations, no reserve) against the whole HBM.

Output: a table per row (id, use, engine, published date, phase/unit, published figure, GenZ, ours, GenZ/published,
ours/published, GenZ batch, reason or notes); a Markdown summary per group (dense/moe x gpu/npu, fit and held_out:
rows, rows each tool predicted, median |ln(predicted/published)|, rows within 2x) for GenZ and ours, overall
and on the rows both predicted; the rows that differ only in engine; GenZ's reasons counted. With --json, a JSON
object {row_id: {"genz", "reason", "published", "ours", "ours_reason", "use", "group", "engine", "published_on",
"phase", "unit", "genz_ratio", "ours_ratio", "notes", "batch", "prefill_batch", "tpot_ms", "ttft_ms",
"genz_parallel"}} on stdout and the summaries on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import tomllib
from compare_report import report_text, table_text
from genz_model import GENZ_VERSION, ROOT, NoFit, Unexpressible, installed_version
from genz_rows import predict
from ours import predictions

#: The repo's device profiles (the file moved from backends/ to bench/projection/); the first that exists.
PROFILE_FILES = (ROOT / "bench" / "projection" / "profiles.toml", ROOT / "backends" / "profiles.toml")
#: GenZ's exceptions for inputs it refuses (asserts, bad shapes) -> a reason for the row, not a crash.
GENZ_ERRORS = (AssertionError, ValueError, KeyError, ZeroDivisionError, IndexError, TypeError)


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


def genz_result(row: dict, profiles: dict, approximate: bool) -> dict:
    """GenZ's figure for one row with its reason, notes and operating point."""
    try:
        value, reason, notes, info = predict(row, profiles, approximate)
        if value is None:
            reason = info.pop("reason_nofit", "GenZ found no feasible point")
    except Unexpressible as exc:
        value, reason, notes, info = None, str(exc), [], {}
    except NoFit as exc:
        value, reason, notes, info = None, f"GenZ: {exc}", [], {}
    except GENZ_ERRORS as exc:  # GenZ refused the inputs
        value, reason, notes, info = None, f"GenZ error: {type(exc).__name__}: {exc}".splitlines()[0], [], {}
    keys = ("batch", "prefill_batch", "tpot_ms", "ttft_ms", "genz_parallel")
    out = {"genz": float(value) if value is not None else None, "reason": reason, "notes": notes}
    out.update({k: (float(info[k]) if k.endswith("_ms") else info[k]) if info.get(k) else None for k in keys})
    return out


def row_result(row: dict, genz: dict, ours: dict) -> dict:
    """The output entry of one row: its fields, GenZ's result and the project's."""
    published = row.get("figure")

    def ratio(value):
        return value / published if value and published else None

    return {
        "use": ours.get("use"),
        "group": ours.get("group", "?"),
        "engine": row.get("engine"),
        "published_on": str(row.get("published")),
        "phase": row.get("phase"),
        "unit": row.get("unit"),
        "published": published,
        **genz,
        "ours": ours.get("ours"),
        "ours_reason": ours.get("reason"),
        "genz_ratio": ratio(genz["genz"]),
        "ours_ratio": ratio(ours.get("ours")),
        "model": row.get("model"),
        "profile": row.get("profile"),
        "chips": row.get("chips"),
        "setup": {
            k: row.get(k)
            for k in ("precision", "input_tokens", "output_tokens", "parallel", "batch_size", "concurrency")
            if row.get(k) is not None
        },
    }


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("corpus", type=Path, help="TOML with [[row]] tables (published_serving.toml)")
    ap.add_argument(
        "--profiles",
        type=Path,
        default=next((p for p in PROFILE_FILES if p.exists()), PROFILE_FILES[0]),
        help="device profiles TOML (default: the repo's bench/projection/profiles.toml or backends/profiles.toml)",
    )
    ap.add_argument("--json", action="store_true", help="JSON {row_id: {genz, ours, reason, ...}} on stdout")
    ap.add_argument(
        "--approximate",
        action="store_true",
        help="run MLA (DeepSeek-V3/R1), attention-DP and speculative rows with stated substitutions",
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    start = time.monotonic()
    if installed_version() != GENZ_VERSION:
        print(
            f"warning: genz-llm {installed_version()} installed; this script was written for {GENZ_VERSION}",
            file=sys.stderr,
        )
    rows = load_rows(args.corpus)
    profiles = load_profiles(args.profiles)
    ours = predictions(args.corpus.resolve())
    results: dict[str, dict] = {}
    for row in rows:
        rid = str(row.get("id"))
        results[rid] = row_result(row, genz_result(row, profiles, args.approximate), ours["rows"].get(rid, {}))
    summary = report_text(results, args.approximate, installed_version(), ours.get("note"))
    summary += f"\nwall time of this run: {time.monotonic() - start:.1f} s"
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
        print(summary, file=sys.stderr)
    else:
        print(table_text(results))
        print()
        print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
