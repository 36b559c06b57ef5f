"""The catch-up estimate: how far efficiency techniques close the gap between a constrained and a frontier device.

Definitions (per workload shape: model, batch size, sequence length, new tokens; metric = throughput: output
tokens/s for generation, items/s otherwise -- higher is better):
  hardware gap       metric(frontier, reference) / metric(constrained, reference)
  efficiency gain    metric(constrained, technique) / metric(constrained, reference), for every technique
  catch-up ratio     metric(constrained, best technique) / metric(frontier, reference); >= 1: efficiency alone
                     has closed the gap
  residual gap       metric(frontier, best technique) / metric(constrained, best technique)
The same per watt (metric / TDP of the device's profile) and per dollar (metric / price) where the profile
gives those figures.

Devices. A simulated record's device is its profile key (e.g. "ascend-910b2", "h100"); a measured record's
device is its backend and device name ("cpu AMD EPYC", "cuda NVIDIA H100 80GB HBM3"): `--frontier` and
`--constrained` select a profile key exactly or a measured device by a case-insensitive substring.
Techniques. A record's technique is its precision plus options (the profile and thread count excluded). The
reference technique is the reference precision with no options (default bf16: the accelerator baseline; no
Ascend fp32 peak is published, so an fp32 reference would rest on an assumption).

Intervals. Each metric carries a 95% interval: measured, from the batch-means throughput interval (none below 40
timed calls; for a serving engine's request load, where requests overlap, the relative interval of the mean
request time around the measured rate: `Record.throughput_interval`); simulated, from the estimate's band. A ratio of two independent quantities gets the
conservative interval [low_a / high_b, high_a / low_b]; without an input interval a ratio has none. Every input is
marked measured or simulated, and each technique's accuracy deviation is kept beside its gain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from bench.core.record import Record
from bench.core.stats import log_symmetric_factor
from bench.core.vocabulary import shape_of
from bench.core.vocabulary import technique_of as vocabulary_technique

__all__ = [
    "Point",
    "CatchUp",
    "AccuracyBudget",
    "device_of",
    "technique_of",
    "metric_of",
    "catch_up",
    "ratio",
    "deviation_of",
]


@dataclass(frozen=True)
class Point:
    """One device x technique x shape: the metric with its interval and where it came from."""

    record: Record
    device: str
    technique: str
    value: float
    low: float | None
    high: float | None
    simulated: bool
    unit: str
    method: str = "measured"  # "measured", or the simulation path: "serving" or "trace"
    error: float | None = None  # the simulation path's validation error behind the band (predicted/true - 1 or |.|)

    @property
    def source(self) -> str:
        return "simulated" if self.simulated else "measured"

    def per(self, figure: float | None) -> "Point | None":
        if not figure or math.isnan(figure):
            return None
        return Point(
            self.record,
            self.device,
            self.technique,
            self.value / figure,
            self.low / figure if self.low is not None else None,
            self.high / figure if self.high is not None else None,
            self.simulated,
            self.unit,
            self.method,
            self.error,
        )


@dataclass(frozen=True)
class Ratio:
    value: float
    low: float | None
    high: float | None
    inputs: tuple[str, str]  # "measured"/"simulated" of numerator and denominator
    combined: str = "independent"  # how the two inputs' intervals were combined

    @property
    def kind(self) -> str:
        """What the ratio combines: measured/measured, measured/simulated, simulated/simulated."""
        return "/".join(self.inputs)


def ratio(a: Point, b: Point) -> Ratio:
    """a / b with an interval. Independent inputs (two measurements, or a measurement and a projection): the
    conservative [low_a / high_b, high_a / low_b]. Two projections by one simulation path share its model, so
    their errors are not independent: the interval is the range of the ratio at matching ends (low/low,
    high/high), then widened log-symmetrically by the path's validation error: across two devices for two
    figures (x/÷ exp(sqrt(2) x |ln(1 - |e|)|)), since the device-specific part of the error does not cancel; on
    one device (a technique's gain) for one (x/÷ exp(|ln(1 - |e|)|)): the device's error is common to both sides,
    but the model's treatment of the technique is itself an estimate. An end at which either side has no
    figure (nothing meets the bounds there) is left out of the range; a simulated ratio always has a band."""
    if a.simulated and b.simulated and a.method == b.method:
        ends = [a.value / b.value] + [x / y for x, y in ((a.low, b.low), (a.high, b.high)) if x and y]
        error = max((abs(x) for x in (a.error, b.error) if x is not None), default=0.0)
        widen = log_symmetric_factor(-min(error, 0.999), figures=2 if a.device != b.device else 1)
        note = "" if len(ends) == 3 else "; an end where a side has no configuration left out"
        return Ratio(
            a.value / b.value,
            min(ends) / widen,
            max(ends) * widen,
            (a.source, b.source),
            f"one model ({a.method} projection): matching ends, widened by its validation error{note}",
        )
    low = a.low / b.high if a.low and b.high else None
    high = a.high / b.low if a.high and b.low else None
    if (low is None or high is None) and (a.simulated or b.simulated):
        error = max((abs(x) for x in (a.error, b.error) if x is not None), default=0.0)
        widen = log_symmetric_factor(-min(error, 0.999), figures=2)
        low = low if low is not None else a.value / b.value / widen
        high = high if high is not None else a.value / b.value * widen
        return Ratio(a.value / b.value, low, high, (a.source, b.source), "independent; a missing end taken from "
                     "the validation error")  # fmt: skip
    return Ratio(a.value / b.value, low, high, (a.source, b.source))


def device_of(record: Record) -> str:
    if record.simulated and record.simulation:
        return record.simulation["profile"]["key"]
    device = record.environment.get("device") or {}
    return f"{record.spec.backend} {device.get('name') or ''}".strip()


def technique_of(record: Record) -> str:
    """The record's technique as its backend declares it (bench.core.vocabulary); every option for a backend
    this version does not know."""
    from backends.registry import backend_class, is_registered

    spec = record.spec
    if is_registered(spec.backend):
        return backend_class(spec.backend).technique_name(spec)
    return vocabulary_technique(spec, spec.options)


def metric_of(record: Record) -> Point | None:
    """Throughput with its interval: output tokens/s for generation, items/s otherwise."""
    spec = record.spec
    device, technique = device_of(record), technique_of(record)
    if record.simulated:
        est = record.estimate() or {}
        if est.get("per_chip"):  # the serving model: output tokens/s per chip under the cell's bounds
            rate = est.get("output_tokens_per_s")
            if not rate:
                return None
            return Point(
                record,
                device,
                technique,
                rate,
                est.get("output_tokens_per_s_low"),
                est.get("output_tokens_per_s_high"),
                True,
                "output tokens/s per chip",
                "serving",
                est.get("validation_error"),
            )
        latency = est.get("latency_s")
        if not latency:
            return None
        work = (est.get("new_tokens") or 1) * spec.batch_size if est.get("ttft_s") is not None else spec.batch_size
        band = est.get("band") or {}
        low = work / band["high_s"] if band.get("high_s") else None
        high = work / band["low_s"] if band.get("low_s") else None
        unit = "output tokens/s" if est.get("ttft_s") is not None else "items/s"
        return Point(record, device, technique, work / latency, low, high, True, unit, "trace", band.get("relative"))
    if record.status != "ok" or not record.measurement:
        return None
    generation = record.generation()
    items = record.throughput()
    interval = record.throughput_interval()
    if generation:
        scale = generation.output_tokens_per_s / items if items else 1.0
        low, high = (interval[0] * scale, interval[1] * scale) if interval else (None, None)
        return Point(record, device, technique, generation.output_tokens_per_s, low, high, False, "output tokens/s")
    low, high = interval if interval else (None, None)
    return Point(record, device, technique, items, low, high, False, "items/s")


def _matches(selector: str, point: Point) -> bool:
    if point.simulated:
        return point.device == selector
    return selector.lower() in point.device.lower()


@dataclass(frozen=True)
class AccuracyBudget:
    """How much deviation from the fp32 reference a technique may cost and still count as "best": cosine
    similarity of the outputs >= `cosine_min` and, where the task has one, top-1 agreement >= `top1_min`. A
    technique whose deviation is unknown (a simulated technique no cell measured on this host) is not eligible."""

    cosine_min: float = 0.99
    top1_min: float = 0.95

    def allows(self, accuracy: dict | None) -> tuple[bool, str]:
        if not accuracy or accuracy.get("cosine_similarity") is None:
            return False, "accuracy unknown (no measured deviation for this technique and shape)"
        if accuracy["cosine_similarity"] < self.cosine_min:
            return False, f"cosine {accuracy['cosine_similarity']:.4f} < {self.cosine_min:g}"
        top1 = accuracy.get("top1_agreement")
        if top1 is not None and top1 < self.top1_min:
            return False, f"top-1 agreement {top1:.3f} < {self.top1_min:g}"
        return True, "within the accuracy budget"


def deviation_of(record: Record, records: Sequence[Record]) -> tuple[dict | None, str]:
    """A technique's deviation from the fp32 reference and where it comes from: the record's own, or for a
    simulated technique whose numerics were not run, the same precision measured on this host's CPU for the same
    workload and shape (said so)."""
    acc = record.accuracy or {}
    if acc and "skipped" not in acc:
        return acc, "measured with the cell"
    if not acc:
        return None, "reference numerics"
    for other in records:
        other_acc = other.accuracy or {}
        if (
            not other.simulated
            and other.spec.precision == record.spec.precision
            and other_acc
            and "skipped" not in other_acc
            and other.spec.workload == record.spec.workload
            and other.spec.batch_size == record.spec.batch_size
            and other.spec.seq_len == record.spec.seq_len
        ):
            return other_acc, f"measured: {other.spec.backend} {technique_of(other)} on this host"
    return None, acc.get("skipped", "not measured")


@dataclass
class CatchUp:
    """The catch-up estimate for one workload shape (see the module docstring)."""

    shape: tuple
    unit: str
    frontier: str
    constrained: str
    reference: str
    frontier_reference: Point | None
    constrained_reference: Point | None
    techniques: list[Point] = field(default_factory=list)  # constrained device, every technique
    frontier_techniques: list[Point] = field(default_factory=list)
    tdp_w: dict[str, float | None] = field(default_factory=dict)
    price_usd: dict[str, float | None] = field(default_factory=dict)
    budget: AccuracyBudget = field(default_factory=AccuracyBudget)
    all_records: Sequence[Record] = field(default_factory=list, repr=False)  # where host-measured deviations are

    @property
    def complete(self) -> bool:
        return self.frontier_reference is not None and self.constrained_reference is not None

    def hardware_gap(self) -> Ratio | None:
        return ratio(self.frontier_reference, self.constrained_reference) if self.complete else None

    def gains(self) -> list[tuple[Point, Ratio]]:
        if self.constrained_reference is None:
            return []
        return [(p, ratio(p, self.constrained_reference)) for p in self.techniques]

    def eligibility(self, point: Point) -> tuple[bool, str]:
        """Whether a constrained-device technique may be called best: the reference always may; any other only
        when its gain interval lies above 1 and its deviation is within the accuracy budget."""
        if point is self.constrained_reference:
            return True, "reference"
        if self.constrained_reference is None:
            return False, "no reference to gain against"
        gain = ratio(point, self.constrained_reference)
        if gain.low is None or gain.low <= 1.0:
            return False, "gain interval includes 1" if gain.low is not None else "gain has no interval"
        accuracy, _ = deviation_of(point.record, self.all_records)
        return self.budget.allows(accuracy)

    def best(self, points: Sequence[Point]) -> Point | None:
        """The highest-throughput technique that is eligible (see `eligibility`); the reference when none is."""
        if points is self.frontier_techniques:
            return max(points, key=lambda p: p.value) if points else None
        eligible = [p for p in points if self.eligibility(p)[0]]
        return max(eligible, key=lambda p: p.value) if eligible else self.constrained_reference

    def catch_up_ratio(self) -> Ratio | None:
        best = self.best(self.techniques)
        return ratio(best, self.frontier_reference) if best and self.frontier_reference else None

    def residual_gap(self) -> Ratio | None:
        best_c, best_f = self.best(self.techniques), self.best(self.frontier_techniques)
        return ratio(best_f, best_c) if best_c and best_f else None

    def _scaled(self, point: Point | None, figures: dict[str, float | None]) -> Point | None:
        return point.per(figures.get(point.device)) if point else None

    def per(self, figures: dict[str, float | None]) -> dict[str, Ratio | None]:
        """Hardware gap and catch-up ratio with each device's metric divided by its figure (TDP or price)."""
        f_ref = self._scaled(self.frontier_reference, figures)
        c_ref = self._scaled(self.constrained_reference, figures)
        c_best = self._scaled(self.best(self.techniques), figures)
        return {
            "hardware_gap": ratio(f_ref, c_ref) if f_ref and c_ref else None,
            "catch_up_ratio": ratio(c_best, f_ref) if c_best and f_ref else None,
        }


def _profile_figure(points: Iterable[Point], device: str, name: str) -> float | None:
    for p in points:
        if p.device == device and p.simulated:
            value = p.record.simulation["profile"][name]["value"]
            return value if value is not None else None
        if p.device == device and not p.simulated:
            return None
    return None


def catch_up(
    records: Sequence[Record],
    frontier: str,
    constrained: str,
    reference: str = "bf16",
    budget: AccuracyBudget | None = None,
) -> list[CatchUp]:
    """One CatchUp per workload shape that has at least one point on either device."""
    points = [p for p in (metric_of(r) for r in records if r.status == "ok") if p is not None]
    groups: dict[tuple, list[Point]] = {}
    for p in points:
        groups.setdefault(shape_of(p.record.spec), []).append(p)
    results = []
    for shape, members in groups.items():
        on_f = [p for p in members if _matches(frontier, p)]
        on_c = [p for p in members if _matches(constrained, p)]
        if not on_f and not on_c:
            continue
        f_ref = next((p for p in on_f if p.technique == reference), None)
        c_ref = next((p for p in on_c if p.technique == reference), None)
        devices = {p.device for p in on_f + on_c}
        results.append(
            CatchUp(
                shape=shape,
                unit=members[0].unit,
                frontier=frontier,
                constrained=constrained,
                reference=reference,
                frontier_reference=f_ref,
                constrained_reference=c_ref,
                techniques=sorted(on_c, key=lambda p: p.technique),
                frontier_techniques=on_f,
                tdp_w={d: _profile_figure(members, d, "tdp_w") for d in devices},
                price_usd={d: _profile_figure(members, d, "price_usd") for d in devices},
                budget=budget or AccuracyBudget(),
                all_records=records,
            )
        )
    return results
