"""Operating points of a deployment and the search over splits and batch.

Disaggregated serving (prefill and decode on separate instances, as large deployments run them): decode at the
mean context of the generation (input + output / 2, exact for costs linear in the context) with memory sized for
the longest; prefill of whole prompts (TTFT = one batch's time through every stage; queueing is not modelled).

Colocated serving (chunked prefill beside the decode batch on the same chips: vLLM, SGLang and TensorRT-LLM by
default; MLPerf offline and server): in steady state each step decodes the batch's B requests and prefills the
prompts of the requests that replace the finished ones, B x L x I / O tokens for prompts of I and outputs of O
tokens at L tokens per step; one step's tokens stay within the engine's chunk budget and B within its batch
limit. TPOT = the step's time / L; TTFT = the steps a new prompt needs at the budget left after the decode
tokens, times the step's time (no queueing); output tokens/s per chip = B x L / (step x chips of the replica).

Speculative decoding (K drafts, acceptance length L): each step verifies K + 1 tokens per request, yields L, and
pays the drafts' own cost (bench.projection.step.draft_cost_s).

Search: over the splits of the chips the engine runs (bench.projection.engines; all of them with `--search any`)
and the batch, the highest output (decode, colocated) or input (prefill) tokens/s per chip within memory and the
latency bounds; without a bound, the largest batch that fits (decode, colocated) or the smallest prefill batch
within 2% of the best rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from bench.core.errors import UsageError
from bench.projection.arch import Arch
from bench.projection.deployment import Deployment, Options, Parallel
from bench.projection.memory import Memory, memory
from bench.projection.step import StepCost, StepWork, draft_cost_s, stage_step

__all__ = [
    "DecodePoint",
    "PrefillPoint",
    "ColocatedPoint",
    "decode_point",
    "prefill_point",
    "colocated_point",
    "search_colocated",
    "aggregated_tokens_per_s_per_chip",
    "search_decode",
    "search_prefill",
    "candidates",
    "parse_parallel",
    "MAX_PREFILL_TOKENS_PER_CHIP",
    "MAX_DECODE_BATCH",
]

#: Largest prefill batch tried, in tokens per chip per forward (engines chunk prefill well below this).
MAX_PREFILL_TOKENS_PER_CHIP = 65536
#: Largest decode batch tried per replica (requests).
MAX_DECODE_BATCH = 1 << 14


@dataclass
class DecodePoint:
    parallel: Parallel
    batch: int  # requests per replica micro-batch
    options: Options
    step: StepCost
    memory: Memory
    tpot_s: float
    tokens_per_s_per_chip: float

    @property
    def fits(self) -> bool:
        return self.memory.fits

    @property
    def batch_per_chip(self) -> float:
        """Requests in flight per chip: pp micro-batches of `batch` over the replica's tp x pp chips."""
        return self.batch / self.parallel.tp


@dataclass
class PrefillPoint:
    parallel: Parallel
    batch: int  # prompts per replica forward
    options: Options
    step: StepCost
    memory: Memory
    ttft_s: float
    tokens_per_s_per_chip: float

    @property
    def fits(self) -> bool:
        return self.memory.fits


@dataclass
class ColocatedPoint:
    parallel: Parallel
    batch: int  # requests decoding per replica micro-batch
    options: Options
    step: StepCost
    memory: Memory
    tpot_s: float
    ttft_s: float
    prefill_tokens_per_step: float
    tokens_per_s_per_chip: float  # output tokens

    @property
    def fits(self) -> bool:
        return self.memory.fits

    @property
    def batch_per_chip(self) -> float:
        return self.batch / self.parallel.tp


def decode_point(dep: Deployment, batch: int, input_tokens: int, output_tokens: int) -> DecodePoint:
    opts, par = dep.options, dep.parallel
    q = opts.tokens_per_request_step
    mean_context = input_tokens + output_tokens / 2
    step = stage_step(dep, StepWork.decode(batch, q, mean_context))
    step.draft_s = draft_cost_s(dep, batch, mean_context)
    step.time_s += step.draft_s
    mem = memory(dep, batch, input_tokens + output_tokens, batch * q, batch * q)
    produced = opts.output_per_request_step
    tpot = par.pp * step.time_s / produced
    rate = batch * produced / (step.time_s * par.tp * par.pp)
    return DecodePoint(par, batch, opts, step, mem, tpot, rate)


def prefill_point(dep: Deployment, batch: int, input_tokens: int) -> PrefillPoint:
    par = dep.parallel
    step = stage_step(dep, StepWork.prefill(batch, input_tokens))
    mem = memory(dep, batch, input_tokens, batch * input_tokens, batch)
    ttft = par.pp * step.time_s
    rate = batch * input_tokens / (step.time_s * par.tp * par.pp)
    return PrefillPoint(par, batch, dep.options, step, mem, ttft, rate)


def colocated_point(dep: Deployment, batch: int, input_tokens: int, output_tokens: int) -> ColocatedPoint:
    """The steady state of `batch` requests per replica decoding while new prompts are prefilled in chunks."""
    opts, par = dep.options, dep.parallel
    q, produced = opts.tokens_per_request_step, opts.output_per_request_step
    mean_context = input_tokens + output_tokens / 2
    prefill_tokens = batch * produced * input_tokens / output_tokens
    work = StepWork(
        decode_requests=batch,
        query_tokens=q,
        context=mean_context,
        prefill_tokens=prefill_tokens,
        prefill_context=(input_tokens + 1) / 2,
        prefill_requests=prefill_tokens / input_tokens,
    )
    step = stage_step(dep, work)
    step.draft_s = draft_cost_s(dep, batch, mean_context)
    step.time_s += step.draft_s
    mem = memory(dep, batch, input_tokens + output_tokens, work.tokens, work.logits_rows)
    room = dep.chunk_tokens - batch * q  # prefill tokens a step can take beside the decode tokens
    keeps_up = room > 0 and prefill_tokens <= room  # else new prompts queue without end: not a steady state
    ttft = par.pp * step.time_s * max(1.0, input_tokens / room) if keeps_up else float("inf")
    tpot = par.pp * step.time_s / produced
    rate = batch * produced / (step.time_s * par.tp * par.pp)
    return ColocatedPoint(par, batch, opts, step, mem, tpot, ttft, prefill_tokens, rate)


def aggregated_tokens_per_s_per_chip(dep: Deployment, batch: int, input_tokens: int, output_tokens: int) -> float:
    """Output tokens/s per chip when the same chips prefill a batch of prompts and then decode it to the end
    (static batching, as early engines' max-throughput runs did): batch x output / (prefill + decode)."""
    pre = prefill_point(dep, batch, input_tokens)
    dec = decode_point(dep, batch, input_tokens, output_tokens)
    steps = max(output_tokens - 1, 0) / dep.options.output_per_request_step
    # pp micro-batches in flight: a replica finishes pp batches per pp x (prefill + decode steps) stage times
    total_s = pre.step.time_s + steps * dec.step.time_s
    return batch * output_tokens / total_s / (dep.parallel.tp * dep.parallel.pp)


# -- splits ----------------------------------------------------------------------------------------------------


def _powers_of_two(limit: int) -> list[int]:
    out, value = [], 1
    while value <= limit:
        out.append(value)
        value *= 2
    return out


def candidates(
    arch: Arch, chips: int, caps=None, phase: str = "decode", domain: int | None = None
) -> Iterator[Parallel]:
    """TP/PP/EP splits of `chips`: powers of two for TP (<= 64, <= heads) and PP (<= 16, <= layers); for MoE
    models EP over any power-of-two divisor of a stage's chips that TP divides, or the whole stage, or 1. With an
    engine's capabilities (`caps`) only what it runs for that phase: PP where it pipelines that phase, EP where it
    has expert parallelism, EP spanning several attention replicas (EP > TP) where it has data-parallel attention,
    EP beyond one scale-up domain of `domain` chips where it has wide EP; and PP only with each stage at least one
    whole scale-up domain (the engines' deployment guides: tensor parallelism within a node, pipeline parallelism
    across nodes, when the model does not fit one)."""
    pipelined = caps is None or (caps.pp_decode if phase == "decode" else caps.pp_prefill)
    for pp in _powers_of_two(min(16, arch.layers, chips) if pipelined else 1):
        if chips % pp:
            continue
        per_stage = chips // pp
        if caps is not None and pp > 1 and domain is not None and per_stage < domain:
            continue  # engines pipeline across scale-up domains, each stage at least one whole domain
        for tp in _powers_of_two(min(64, arch.heads, per_stage)):
            if per_stage % tp or (caps is not None and tp > 1 and not caps.tp):
                continue
            for ep in sorted(_eps(arch, per_stage, tp, caps, domain)):
                yield Parallel(tp=tp, pp=pp, ep=ep, dp=per_stage // tp)


def _eps(arch: Arch, per_stage: int, tp: int, caps, domain: int | None) -> set[int]:
    eps = {1}
    if not arch.moe_layers or (caps is not None and not caps.ep):
        return eps
    eps |= {
        d
        for d in _powers_of_two(per_stage) + [per_stage]
        if d >= 2 and per_stage % d == 0 and d % tp == 0 and d <= arch.experts * 8
    }
    if caps is not None:
        eps = {e for e in eps if e <= tp or caps.attention_dp}
        eps = {e for e in eps if domain is None or e <= domain or caps.wide_ep}
    return eps


def _parse_split_values(text: str) -> dict[str, int]:
    values, seen = {"tp": 1, "pp": 1, "ep": 1}, set()
    for part in [p for p in str(text).split(",") if p.strip()]:
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in values:
            raise UsageError(
                f"parallel: {part!r} is not allowed; expected KEY=N with KEY one of tp, pp, ep (e.g. tp=8,ep=32)"
            )
        if key in seen:
            raise UsageError(f"parallel.{key}: given twice in {text!r}; expected each of tp, pp, ep at most once")
        seen.add(key)
        try:
            values[key] = int(value)
        except ValueError:
            raise UsageError(f"parallel.{key}: {value!r} is not allowed; expected a whole number >= 1") from None
        if values[key] < 1:
            raise UsageError(f"parallel.{key}: {values[key]} is not allowed; expected a whole number >= 1")
    return values


def parse_parallel(text: str, arch: Arch, chips: int) -> Parallel:
    """`tp=8,ep=32[,pp=1]` -> Parallel for `chips` chips; one-line UsageError naming what is wrong."""
    values = _parse_split_values(text)
    tp, pp, ep = values["tp"], values["pp"], values["ep"]
    if chips % (tp * pp):
        raise UsageError(f"parallel: tp x pp = {tp * pp} does not divide chips = {chips}; expected a divisor")
    per_stage = chips // pp
    if ep > 1 and not arch.moe_layers:
        raise UsageError(f"parallel.ep: {ep} is not allowed for {arch.name}, which has no experts; expected 1")
    if ep > 1 and (per_stage % ep or ep % tp):
        raise UsageError(
            f"parallel.ep: {ep} is not allowed with tp={tp} on {per_stage} chips per stage; expected "
            "a divisor of the stage's chips that tp divides"
        )
    if tp > arch.heads:
        raise UsageError(f"parallel.tp: {tp} is not allowed; {arch.name} has {arch.heads} attention heads")
    return Parallel(tp=tp, pp=pp, ep=ep, dp=per_stage // tp)


# -- search ----------------------------------------------------------------------------------------------------


def largest_fitting_batch(fits: Callable[[int], bool], limit: int = MAX_DECODE_BATCH) -> int:
    """Largest b in [1, limit] with fits(b) true (fits is monotone: true then false): powers of two, then
    bisection; 0 if none. (The GenZ comparison, scripts/genz/, searches GenZ's batch with it too.)"""
    if limit < 1 or not fits(1):
        return 0
    low, high = 1, 2
    while high <= limit and fits(high):
        low, high = high, high * 2
    high = min(high, limit + 1)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low


def _splits(dep: Deployment, chips: int, parallel: Parallel | None, phase: str) -> Iterator[Deployment]:
    """The deployment on every split the search visits, with every engine setting it tries on that split."""
    domain = dep.device.links(dep.efficiency).domain if dep.device.links(dep.efficiency) else None
    for par in [parallel] if parallel else list(candidates(dep.arch, chips, dep.caps, phase, domain)):
        yield from dep.with_split(par).split_choices()


def _better(point, best, rate: str, latency: str) -> bool:
    """More tokens/s per chip (by > 0.5%), or within 0.5% at a lower latency."""
    if best is None:
        return True
    mine, theirs = getattr(point, rate), getattr(best, rate)
    return mine > theirs * 1.005 or (mine >= theirs * 0.995 and getattr(point, latency) < getattr(best, latency))


def search_decode(
    dep: Deployment,
    chips: int,
    input_tokens: int,
    output_tokens: int,
    tpot_slo_s: float | None = None,
    batch: int | None = None,
    parallel: Parallel | None = None,
) -> DecodePoint | None:
    """The decode configuration with the most output tokens/s per chip that fits memory and meets the TPOT
    bound; None where none does. Ties (within 0.5%) go to the lower TPOT."""
    best: DecodePoint | None = None
    for candidate in _splits(dep, chips, parallel, "decode"):

        def ok(b: int, candidate=candidate) -> bool:
            point = decode_point(candidate, b, input_tokens, output_tokens)
            return point.fits and (tpot_slo_s is None or point.tpot_s <= tpot_slo_s)

        b = batch if batch is not None and ok(batch) else (None if batch is not None else largest_fitting_batch(ok))
        if not b:
            continue
        point = decode_point(candidate, b, input_tokens, output_tokens)
        if _better(point, best, "tokens_per_s_per_chip", "tpot_s"):
            best = point
    return best


def search_prefill(
    dep: Deployment,
    chips: int,
    input_tokens: int,
    ttft_slo_s: float | None = None,
    batch: int | None = None,
    parallel: Parallel | None = None,
) -> PrefillPoint | None:
    """The prefill configuration with the most input tokens/s per chip within the TTFT bound and memory; per
    split, the smallest prompt batch (powers of two) within 2% of that split's best rate."""
    best: PrefillPoint | None = None
    for candidate in _splits(dep, chips, parallel, "prefill"):
        points = []
        limit = max(1, MAX_PREFILL_TOKENS_PER_CHIP * candidate.parallel.tp // input_tokens)
        for b in [batch] if batch else _powers_of_two(limit):
            point = prefill_point(candidate, b, input_tokens)
            if not point.fits or (ttft_slo_s is not None and point.ttft_s > ttft_slo_s):
                break
            points.append(point)
        if not points:
            continue
        top = max(p.tokens_per_s_per_chip for p in points)
        chosen = next(p for p in points if p.tokens_per_s_per_chip >= 0.98 * top)
        if _better(chosen, best, "tokens_per_s_per_chip", "ttft_s"):
            best = chosen
    return best


def search_colocated(
    dep: Deployment,
    chips: int,
    input_tokens: int,
    output_tokens: int,
    tpot_slo_s: float | None = None,
    ttft_slo_s: float | None = None,
    batch: int | None = None,
    parallel: Parallel | None = None,
) -> ColocatedPoint | None:
    """The colocated configuration with the most output tokens/s per chip that fits memory, the engine's batch
    limit and chunk budget, and both latency bounds; None where none does. Ties go to the lower TPOT."""
    best: ColocatedPoint | None = None
    limit = dep.max_batch or MAX_DECODE_BATCH
    for candidate in _splits(dep, chips, parallel, "decode"):

        def ok(b: int, candidate=candidate) -> bool:
            if b > limit:
                return False
            point = colocated_point(candidate, b, input_tokens, output_tokens)
            return (
                point.fits
                and point.ttft_s != float("inf")
                and (tpot_slo_s is None or point.tpot_s <= tpot_slo_s)
                and (ttft_slo_s is None or point.ttft_s <= ttft_slo_s)
            )

        b = batch if batch is not None and ok(batch) else (None if batch is not None else largest_fitting_batch(ok))
        if not b:
            continue
        point = colocated_point(candidate, b, input_tokens, output_tokens)
        if _better(point, best, "tokens_per_s_per_chip", "tpot_s"):
            best = point
    return best
