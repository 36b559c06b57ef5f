"""A corpus row put to GenZ (scripts/genz/compare.py's method): the row's split (or a search over splits), the
phases' rates on one GenZ instance, and the row's figure in its unit, as bench/projection/published.py defines it
for phases decode, prefill, colocated and system and units output, input and total."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from genz_model import Instance, Model, NoFit, Unexpressible, build_model, build_system, largest

PHASES = ("decode", "prefill", "colocated", "system")
#: The unit each phase's rate comes in (as the project's predict: a total unit scales it by (input + output) / output).
NATIVE_UNIT = {"decode": "output", "colocated": "output", "system": "output", "prefill": "input"}
SPEC_KEYS = ("spec_method", "spec_tokens", "acceptance_length", "mtp_acceptance")
MAX_DECODE_BATCH = 1 << 17  # per GenZ instance; memory stops the search long before
MAX_PREFILL_TOKENS_PER_CHIP = 65536  # as the project's search_prefill
MAX_SEARCH_TP = 64  # as the project's candidates


@dataclass(frozen=True)
class Split:
    """The row's reading of a split: chips = dp x tp x pp, EP inside a stage (as the project reads `parallel`)."""

    tp: int
    pp: int
    ep: int
    dp: int

    def __str__(self) -> str:
        return f"tp={self.tp},pp={self.pp},ep={self.ep} (dp={self.dp})"


@dataclass
class Ctx:
    """What one row's prediction collects."""

    row: dict
    profiles: dict
    model: Model
    approximate: bool
    notes: list[str] = field(default_factory=list)
    approx: list[str] = field(default_factory=list)  # --approximate substitutions made
    info: dict = field(default_factory=dict)


def parse_parallel(text: str, chips: int) -> Split:
    values = {"tp": 1, "pp": 1, "ep": 1}
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
    return Split(tp=tp, pp=pp, ep=ep, dp=chips // (tp * pp))


def search_splits(model: Model, chips: int) -> list[Split]:
    """Splits tried where the row gives none: TP over powers of two dividing the chips (<= 64, <= heads) with the
    rest as data-parallel replicas; for MoE also EP (powers of two dividing the experts) inside a TP group over
    all the chips (GenZ's EP lives inside the attention group); PP = 1."""
    out, tp = [], 1
    while tp <= min(chips, MAX_SEARCH_TP, model.heads):
        if chips % tp == 0:
            out.append(Split(tp=tp, pp=1, ep=1, dp=chips // tp))
        tp *= 2
    if model.experts > 1 and any(s.tp == chips for s in out):
        ep = 2
        while ep <= chips:
            if chips % ep == 0 and model.experts % ep == 0:
                out.append(Split(tp=chips, pp=1, ep=ep, dp=1))
            ep *= 2
    return out


def _placement(ctx: Ctx, split: Split, chips: int, text: str) -> tuple[int, int, list[tuple[str, str]], list[str]]:
    """(GenZ tensor_parallel, expert_parallel, soft reasons, notes) for a split of `chips`."""
    soft: list[tuple[str, str]] = []
    notes: list[str] = []
    model = ctx.model
    if split.ep > 1 and model.experts <= 1:
        raise Unexpressible(f"ep = {split.ep} for a dense model")
    if split.ep == 1:
        g_tp, g_ep = split.tp, 1  # dp independent replicas of tp x pp chips
        if split.dp > 1:
            notes.append(f"one of {split.dp} data-parallel replicas")
    elif split.dp == 1:
        if split.tp % split.ep:
            raise Unexpressible(f"parallel {text!r}: GenZ's EP lives inside the attention TP group; ep must divide tp")
        g_tp, g_ep = split.tp // split.ep, split.ep
    else:
        per_stage = chips // split.pp
        g_tp, g_ep = per_stage // split.ep, split.ep
        soft.append(
            (
                f"attention data-parallel (dp = {split.dp}) with EP {split.ep}: GenZ shards attention over TP x EP "
                "and has no attention-DP",
                f"attention-DP over {split.dp} replicas as attention TP over {per_stage} chips",
            )
        )
    if model.experts > 1 and model.experts % g_ep:
        raise Unexpressible(f"GenZ needs the expert count ({model.experts}) divisible by EP ({g_ep})")
    return g_tp, g_ep, soft, notes


def make_instance(ctx: Ctx, split: Split, chips: int, text: str) -> tuple[Instance, list[str], list[str]]:
    """The GenZ instance for a split; (instance, notes, --approximate substitutions). Raises Unexpressible."""
    g_tp, g_ep, soft, notes = _placement(ctx, split, chips, text)
    if soft and not ctx.approximate:
        raise Unexpressible("; ".join(r for r, _ in soft))
    row = ctx.row
    system, bits, sys_notes = build_system(
        ctx.profiles, str(row["profile"]), str(row["precision"]), g_tp * g_ep, split.pp
    )
    return Instance(ctx.model, system, bits, g_tp, g_ep, split.pp), notes + sys_notes, [a for _, a in soft]


# -- the phases' rates on one instance ----------------------------------------------------------------------------


def decode_rate(inst: Instance, row: dict, info: dict, cap: int) -> float | None:
    """Output tokens/s per chip for a decode instance (batch <= cap); sets info['batch'], info['tpot_ms']."""
    inp, out = int(row["input_tokens"]), int(row["output_tokens"])
    mid = int(round(out / 2))
    tpot = row.get("tpot_slo_ms")
    cache: dict[int, float | None] = {}

    def step(b: int) -> float | None:
        if b not in cache:
            cache[b] = inst.decode_step_ms(b, inp, mid) if inst.decode_fits(b, inp, out) else None
        return cache[b]

    batch = int(row["batch_size"]) if row.get("batch_size") else None
    if batch:
        if step(batch) is None:
            info["reason_nofit"] = f"batch {batch} does not fit memory in GenZ"
            return None
    else:
        batch = largest(lambda b: step(b) is not None and (tpot is None or step(b) <= tpot), min(cap, MAX_DECODE_BATCH))
        if batch == 0:
            info["reason_nofit"] = (
                "no batch fits memory in GenZ"
                if step(1) is None
                else f"GenZ TPOT at batch 1 is {step(1):.1f} ms > {tpot:g} ms"
            )
            return None
    info["batch"], info["tpot_ms"] = batch, step(batch)
    return 1000.0 * batch / step(batch) / inst.chips


def prefill_rate(inst: Instance, row: dict, info: dict, cap: int, key: str = "batch") -> float | None:
    """Input tokens/s per chip for a prefill instance (batch <= cap); sets info[key], info['ttft_ms']."""
    inp = int(row["input_tokens"])
    ttft = row.get("ttft_slo_ms")
    if row.get("batch_size") and row.get("phase") == "prefill":
        sizes = [int(row["batch_size"])]
    else:
        sizes, b = [], 1
        while b <= cap and (b == 1 or b * inp <= MAX_PREFILL_TOKENS_PER_CHIP * inst.chips):
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


def colocated_rate(inst: Instance, row: dict, info: dict, cap: int) -> float | None:
    """Output tokens/s per chip when prefill and decode share the chips: O / (I / prefill rate + O / decode rate)."""
    p_rate = prefill_rate(inst, row, info, cap, key="prefill_batch")
    d_rate = decode_rate(inst, row, info, cap) if p_rate else None
    inp, out = int(row["input_tokens"]), int(row["output_tokens"])
    return out / (inp / p_rate + out / d_rate) if p_rate and d_rate else None


PHASE_RATE = {"decode": decode_rate, "prefill": prefill_rate, "colocated": colocated_rate}


# -- a phase over splits, and the row's figure ---------------------------------------------------------------------


def _cap(row: dict, chips: int, inst: Instance) -> int:
    """The batch limit of one GenZ instance from the row's concurrency (requests over the instances, as the
    project divides it over its replicas)."""
    concurrency = row.get("concurrency")
    if not concurrency:
        return MAX_DECODE_BATCH
    return max(1, math.ceil(int(concurrency) / max(1, chips // inst.chips)))


def best_rate(ctx: Ctx, phase: str, chips: int, text: str | None) -> tuple[float | None, dict]:
    """The best tokens/s per chip of `phase` on `chips`: on the row's split `text`, else over search_splits.
    Returns (rate or None, info with 'genz_parallel', batches, latencies, or 'reason_nofit')."""
    splits = [parse_parallel(text, chips)] if text else search_splits(ctx.model, chips)
    best: tuple[float, dict, list[str], list[str]] | None = None
    reasons: list[str] = []
    for split in splits:
        try:
            inst, notes, approx = make_instance(ctx, split, chips, text or "")
        except Unexpressible as exc:
            if text:
                raise
            reasons.append(f"{split}: {exc}")
            continue
        info: dict = {}
        rate = PHASE_RATE[phase](inst, ctx.row, info, _cap(ctx.row, chips, inst))
        if rate is None:
            reasons.append(info.get("reason_nofit", "no feasible point") + ("" if text else f" ({split})"))
        elif best is None or rate > best[0]:
            info["genz_parallel"] = inst.label + ("" if text else f" (searched; row split {split})")
            best = (rate, info, notes, approx)
    if best is None:
        return None, {"reason_nofit": "; ".join(dict.fromkeys(reasons)) or "no split to try"}
    ctx.notes += [n for n in best[2] if n not in ctx.notes]
    ctx.approx += [a for a in best[3] if a not in ctx.approx]
    return best[0], best[1]


def _system_rate(ctx: Ctx) -> float | None:
    """Output tokens/s per chip of a disaggregated system: min(decode x decode_chips, prefill x prefill_chips x
    output / input) / (decode_chips + prefill_chips), each phase on its own chips with its split searched."""
    row = ctx.row
    dc, pc = int(row["decode_chips"]), int(row["prefill_chips"])
    decode, d_info = best_rate(ctx, "decode", dc, None)
    prefill, p_info = best_rate(ctx, "prefill", pc, None) if decode else (None, {})
    ctx.info.update(
        batch=d_info.get("batch"),
        tpot_ms=d_info.get("tpot_ms"),
        prefill_batch=p_info.get("batch"),
        ttft_ms=p_info.get("ttft_ms"),
        genz_parallel=f"decode {dc} chips: {d_info.get('genz_parallel')}; prefill {pc} chips: "
        f"{p_info.get('genz_parallel')}",
    )
    if not decode or not prefill:
        which = "decode" if not decode else "prefill"
        ctx.info["reason_nofit"] = f"{which}: " + (d_info if not decode else p_info).get("reason_nofit", "")
        return None
    i, o = int(row["input_tokens"]), int(row["output_tokens"])
    return min(decode * dc, prefill * pc * o / i) / (dc + pc)


def _row_soft(row: dict, model: Model) -> list[tuple[str, str]]:
    """Row-level (strict reason, --approximate note) pairs: speculation and the model's own."""
    soft = []
    spec = [k for k in SPEC_KEYS if row.get(k)]
    if spec:
        soft.append(
            (
                f"speculative decoding / MTP ({', '.join(spec)}): GenZ's decode has none (its "
                "spec_decode_modeling needs a separate draft model)",
                "MTP/speculation ignored (no speed-up counted)",
            )
        )
    return soft + model.approx


def predict(row: dict, profiles: dict, approximate: bool) -> tuple[float | None, str | None, list[str], dict]:
    """(GenZ figure in the row's unit, reason, notes, info) for one row. Raises Unexpressible with every blocker
    known before any GenZ call named in it."""
    phase, unit = row.get("phase"), row.get("unit", NATIVE_UNIT.get(str(row.get("phase")), "output"))
    if phase not in PHASES:
        raise Unexpressible(f"phase {phase!r} unknown (expected one of {', '.join(PHASES)})")
    if phase == "system" and not (row.get("prefill_chips") and row.get("decode_chips")):
        raise Unexpressible("a system row needs prefill_chips and decode_chips")
    model = build_model(str(row["model"]))
    soft = _row_soft(row, model)
    if soft and not approximate:
        raise Unexpressible("; ".join(r for r, _ in soft))
    ctx = Ctx(row, profiles, model, approximate, notes=list(model.notes), approx=[a for _, a in soft])
    if phase == "system":
        rate = _system_rate(ctx)
    else:
        rate, info = best_rate(ctx, phase, int(row["chips"]), row.get("parallel"))
        ctx.info.update(info)
    if rate is not None and unit == "total":
        rate *= (int(row["input_tokens"]) + int(row["output_tokens"])) / int(row["output_tokens"])
    elif unit != "total" and unit != NATIVE_UNIT[phase]:
        ctx.notes.append(f"unit {unit!r} read as the {phase} phase's own rate ({NATIVE_UNIT[phase]}), as the project")
    kv = row.get("kv_precision")
    if kv and kv != row.get("precision"):
        ctx.notes.append(f"KV cache at GenZ's one width for {row.get('precision')} (row: kv {kv})")
    return rate, None, [f"approx: {a}" for a in ctx.approx] + ctx.notes, ctx.info
