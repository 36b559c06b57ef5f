"""The catch-up estimate as a waterfall: from the frontier device at its reference configuration to the constrained
device at its best, one factor per lever, every figure SIMULATED with the serving model (bench.projection).

Metric: decode output tokens/s per chip within the scenario's TPOT bound (the serving model's search over
parallelism and batch). The path, in this order (the factors multiply to the end-to-end ratio exactly; a
different order would split the same total differently, so the order is part of the definition):

  start          frontier chips, the dense reference model, reference precision, basic serving (TP within a
                 node, PP across nodes; no expert parallelism, no attention data parallelism, no multi-token
                 prediction, no micro-batch overlap)
  hardware       the same configuration on the constrained chip, split into compute peaks, memory bandwidth,
                 memory capacity, interconnect and achievable efficiency of its kind of chip (the serving model's
                 efficiency factors per kind), swapped one at a time
  software       the constrained side's software-stack maturity (the scenario's figure: ASSUMED unless measured)
  precision      reference precision -> the constrained side's best precision, on the dense model
  architecture   the dense model -> the scenario's model (MoE, MLA), only at equal or better published quality
                 (models/quality.toml); otherwise the lever is left out and says why
  serving        basic -> the serving model's best: expert and data parallelism searched, multi-token
                 prediction at the scenario's acceptance rate, micro-batch overlap searched
  end            the constrained chip at its best; catch-up ratio = end / start

Bands (never confidence intervals). Each projection is made at the efficiency factors' central values and at
both ends of their sourced ranges; the inputs of every ratio share the end (one model, correlated, not
independent), so a factor's band is the range of that factor over the three. The software figure moves with
the ends. A factor that compares two devices (hardware, and the end-to-end ratio) is then widened by the serving
model's held-out validation error, log-symmetric: x/÷ exp(sqrt(2) x |ln(1 + e)|), e the median |error| on
published serving results held out from the fit -- a miss of -90% is a factor of 10, not 1.9.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from bench.core.errors import UsageError, invalid_value
from bench.core.stats import log_symmetric_factor
from bench.core.tomlfile import read_toml

__all__ = ["Scenario", "load_scenarios", "waterfall", "Waterfall", "Step", "SCENARIOS_FILE", "log_band"]

SCENARIOS_FILE = Path(__file__).resolve().parents[1] / "suites" / "scenarios.toml"
ENDS = ("central", "low", "high")
_REQUIRED = (
    "title",
    "frontier",
    "constrained",
    "chips",
    "model",
    "reference_model",
    "precision",
    "reference_precision",
    "input_tokens",
    "output_tokens",
    "tpot_slo_ms",
)


def log_band(value: float, relative_error: float, figures: int = 1) -> tuple[float, float]:
    """A multiplicative band symmetric in log space around `value` for a model whose predictions miss by
    `relative_error` (predicted/true - 1): x/÷ exp(sqrt(figures) x |ln(1 + error)|)."""
    factor = log_symmetric_factor(relative_error, figures)
    return value / factor, value * factor


@dataclass(frozen=True)
class Scenario:
    """One named comparison (bench/suites/scenarios.toml); validated at construction."""

    name: str
    title: str
    frontier: str
    constrained: str
    chips: int
    model: str
    reference_model: str
    precision: str
    reference_precision: str
    input_tokens: int
    output_tokens: int
    tpot_slo_ms: float
    mtp_acceptance: float | None = None
    software: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, name: str, data: Mapping[str, Any]) -> "Scenario":
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise UsageError(f"scenario {name}: {missing[0]} is missing; required: {', '.join(_REQUIRED)}")
        unknown = sorted(set(data) - set(_REQUIRED) - {"mtp_acceptance", "software"})
        if unknown:
            raise invalid_value(f"scenario {name}", unknown[0], (*_REQUIRED, "mtp_acceptance", "software"))
        software = dict(
            data.get("software")
            or {"value": 1.0, "low": 1.0, "high": 1.0, "status": "ASSUMED", "source": "no software figure given: 1"}
        )
        for key in ("value", "low", "high"):
            value = software.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise invalid_value(f"scenario {name}: software.{key}", value, "a positive number")
        if not software["low"] <= software["value"] <= software["high"]:
            raise UsageError(f"scenario {name}: software: expected low <= value <= high")
        scenario = cls(
            name,
            str(data["title"]),
            str(data["frontier"]),
            str(data["constrained"]),
            data["chips"],
            str(data["model"]),
            str(data["reference_model"]),
            str(data["precision"]),
            str(data["reference_precision"]),
            data["input_tokens"],
            data["output_tokens"],
            float(data["tpot_slo_ms"]),
            data.get("mtp_acceptance"),
            software,
        )
        from bench.projection.project import resolve

        try:  # every name and number checked now, in the serving model's words
            resolve(scenario.query("frontier", basic=True))
            resolve(scenario.query("constrained", basic=True))
            resolve(scenario.query("constrained", basic=False, model=scenario.model, precision=scenario.precision))
        except UsageError as exc:
            raise UsageError(f"scenario {name}: {exc}") from None
        return scenario

    def query(self, side: str, basic: bool, model: str | None = None, precision: str | None = None):
        from bench.projection.project import ServingQuery

        chips = self.chips
        tp = min(chips, 8)
        return ServingQuery(
            model=model or self.reference_model,
            profile=self.frontier if side == "frontier" else self.constrained,
            chips=chips,
            precision=precision or self.reference_precision,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            tpot_slo_ms=self.tpot_slo_ms,
            parallel=f"tp={tp},pp={chips // tp}" if basic else None,
            mtp_acceptance=None if basic else self.mtp_acceptance,
            overlap=False if basic else None,
        )


def load_scenarios(path: Path | None = None) -> dict[str, Scenario]:
    """Every scenario of the file, validated (a bad one is a one-line error naming it)."""
    data = read_toml(Path(path or SCENARIOS_FILE), "scenarios file")
    bad = next((name for name, table in data.items() if not isinstance(table, Mapping)), None)
    if bad is not None:
        raise UsageError(f"scenarios file {str(path or SCENARIOS_FILE)!r}: {bad}: not a table; expected [{bad}]")
    return {name: Scenario.from_mapping(name, table) for name, table in data.items()}


def get_scenario(name: str, path: Path | None = None) -> Scenario:
    scenarios = load_scenarios(path)
    if name not in scenarios:
        raise invalid_value("scenario", name, sorted(scenarios))
    return scenarios[name]


@dataclass
class Step:
    """One lever: its factor (central) and band, what moved, and where the figures came from."""

    lever: str
    detail: str
    factor: float
    low: float
    high: float
    status: str
    source: str
    rate_after: float  # output tokens/s per chip once this lever is applied (central)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Waterfall:
    scenario: Scenario
    start: dict[str, float]  # central, low, high: tokens/s per chip
    end: dict[str, float]
    steps: list[Step]
    catch_up: tuple[float, float, float]  # central, low, high (validation-widened)
    hardware_gap: tuple[float, float, float]  # frontier / constrained at the start configuration
    chips_to_match: tuple[float, float, float]
    per_watt: tuple[float, float, float] | None
    per_dollar: tuple[float, float, float] | None
    quality: str
    validation_error: float | None
    figures_flagged: list[str]  # ASSUMED / UNV profile figures that enter the headline numbers
    tdp: dict[str, tuple[float | None, str]]
    price: dict[str, tuple[float | None, str]]
    configurations: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "simulated": True,
            "scenario": dataclasses.asdict(self.scenario),
            "metric": "decode output tokens/s per chip within the TPOT bound",
            "start": self.start,
            "end": self.end,
            "steps": [s.to_dict() for s in self.steps],
            "catch_up": self.catch_up,
            "hardware_gap": self.hardware_gap,
            "chips_to_match": self.chips_to_match,
            "per_watt": self.per_watt,
            "per_dollar": self.per_dollar,
            "quality": self.quality,
            "validation_median_abs_error": self.validation_error,
            "figures_flagged": self.figures_flagged,
            "tdp_w": self.tdp,
            "price_usd": self.price,
            "configurations": self.configurations,
        }

    def summary(self) -> list[str]:
        """Plain sentences with the headline figures and their status, fit to quote."""
        s, (c, c_lo, c_hi) = self.scenario, self.catch_up
        gap = self.hardware_gap
        sentences = [
            f"SIMULATED (serving model, not measured): {s.title}.",
            f"At the reference configuration ({s.reference_model}, {s.reference_precision}, basic serving) one "
            f"{s.frontier} chip serves {gap[0]:.2f}x [{gap[1]:.2f}, {gap[2]:.2f}] the output tokens/s of one "
            f"{s.constrained} chip: the hardware gap.",
            f"With every lever, one {s.constrained} chip serves {self.end['central']:,.0f} output tokens/s, "
            f"{c:.2f}x [{c_lo:.2f}, {c_hi:.2f}] what one {s.frontier} chip serves at the reference "
            f"({self.start['central']:,.0f}): efficiency "
            + (
                "closes the gap"
                if c_lo >= 1
                else "does not close the gap"
                if c_hi < 1
                else "may or may not close the gap (the band spans 1)"
            )
            + ".",
            f"{self.chips_to_match[0]:.1f} [{self.chips_to_match[1]:.1f}, {self.chips_to_match[2]:.1f}] "
            f"{s.constrained} chips at their best match {s.chips} {s.frontier} chips at the reference.",
        ]
        largest = max(self.steps, key=lambda st: abs(math.log(st.factor)))
        sentences.append(
            f"The largest lever is {largest.lever} ({largest.detail}): x{largest.factor:.2f} "
            f"[{largest.low:.2f}, {largest.high:.2f}], {largest.status}."
        )
        if self.per_watt:
            sentences.append(
                f"Per watt the catch-up ratio is {self.per_watt[0]:.2f}x [{self.per_watt[1]:.2f}, "
                f"{self.per_watt[2]:.2f}] (TDP {self.tdp[s.frontier][0]:g} W {self.tdp[s.frontier][1]} vs "
                f"{self.tdp[s.constrained][0]:g} W {self.tdp[s.constrained][1]})."
            )
        if self.figures_flagged:
            sentences.append(
                "Figures with status ASSUMED or UNV enter these numbers: " + ", ".join(self.figures_flagged) + "."
            )
        if self.validation_error is not None:
            sentences.append(
                f"Bands are the efficiency factors' sourced ranges, widened by the serving model's "
                f"held-out median error on published results ({100 * self.validation_error:.1f}%), "
                "log-symmetric; they are not confidence intervals."
            )
        return sentences


def _devices(scenario: Scenario):
    from bench.projection.deployment import Device
    from bench.projection.profiles import get_profile

    return Device.of_profile(get_profile(scenario.frontier)), Device.of_profile(get_profile(scenario.constrained))


def _rate(query, device, kind: str, end: str) -> float:
    from bench.projection.efficiency import load_efficiency
    from bench.projection.project import project

    projection = project(query, load_efficiency(kind).at(end), bands=False, device=device)
    if projection.decode is None:
        raise UsageError(
            f"scenario: {query.model} at {query.precision} on {query.chips} x {device.key} has no "
            f"configuration within TPOT {query.tpot_slo_ms:g} ms: {projection.note}"
        )
    return projection.decode.tokens_per_s_per_chip


def _hardware_path(scenario: Scenario):
    """(label, device, efficiency kind) from the frontier chip to the constrained one, one figure at a time."""
    frontier, constrained = _devices(scenario)
    steps, device = [], frontier
    for label, changes in (
        ("compute peaks", {"peak_flops": constrained.peak_flops}),
        ("memory bandwidth", {"bandwidth_bytes_s": constrained.bandwidth_bytes_s}),
        ("memory capacity", {"memory_bytes": constrained.memory_bytes}),
        ("interconnect", {"profile": constrained.profile}),
    ):
        device = dataclasses.replace(device, **changes)
        steps.append((label, device, frontier.kind))
    steps.append(("achievable efficiency of its kind of chip", constrained, constrained.kind))
    return frontier, constrained, steps


def waterfall(scenario: Scenario, validation_error: float | None = None) -> Waterfall:
    """Project every configuration of the path at the three efficiency ends and decompose (module docstring)."""
    from bench.projection.profiles import get_profile
    from models.quality import equal_or_better

    if validation_error is None:
        from bench.projection.published import held_out_error

        validation_error = held_out_error()
    frontier, constrained, hardware = _hardware_path(scenario)
    same_quality, quality = equal_or_better(scenario.model, scenario.reference_model)
    software = scenario.software
    rates: dict[str, list[tuple[str, str, float]]] = {}
    for end in ENDS:
        soft = {"central": software["value"], "low": software["low"], "high": software["high"]}[end]
        chain = [("start", "", _rate(scenario.query("frontier", True), frontier, frontier.kind, end))]
        for label, device, kind in hardware:
            chain.append(("hardware", label, _rate(scenario.query("constrained", True), device, kind, end)))
        chain.append(("software", "stack maturity", chain[-1][2] * soft))
        dense_best = (
            _rate(scenario.query("constrained", True, precision=scenario.precision), constrained, constrained.kind, end)
            * soft
        )
        chain.append(("precision", f"{scenario.reference_precision} → {scenario.precision}", dense_best))
        model = scenario.model if same_quality else scenario.reference_model
        if same_quality:
            arch = (
                _rate(
                    scenario.query("constrained", True, model=model, precision=scenario.precision),
                    constrained,
                    constrained.kind,
                    end,
                )
                * soft
            )
            chain.append(("architecture", f"{scenario.reference_model} → {scenario.model}", arch))
        full = (
            _rate(
                scenario.query("constrained", False, model=model, precision=scenario.precision),
                constrained,
                constrained.kind,
                end,
            )
            * soft
        )
        chain.append(("serving", "basic → expert and data parallelism, MTP, overlap (searched)", full))
        rates[end] = chain
    return _assemble(scenario, rates, validation_error, quality, same_quality, frontier, constrained, get_profile)


def _band_of(values: list[float], widen: float | None) -> tuple[float, float]:
    low, high = min(values), max(values)
    if widen:
        low, high = log_band(low, widen, figures=2)[0], log_band(high, widen, figures=2)[1]
    return low, high


def _assemble(scenario, rates, validation_error, quality, same_quality, frontier, constrained, get_profile):
    central = rates["central"]
    steps: list[Step] = []
    for i in range(1, len(central)):
        lever, detail, after = central[i]
        factors = [rates[end][i][2] / rates[end][i - 1][2] for end in ENDS]
        cross_device = lever == "hardware"
        low, high = _band_of(factors, validation_error if cross_device else None)
        status, source = _status_of(lever, scenario, validation_error)
        steps.append(Step(lever, detail, factors[0], low, high, status, source, after))
    if not same_quality:
        steps.append(
            Step(
                "architecture",
                f"{scenario.model} not used: {quality}",
                1.0,
                1.0,
                1.0,
                "left out",
                "models/quality.toml",
                central[-1][2],
            )
        )
    ratios = [rates[end][-1][2] / rates[end][0][2] for end in ENDS]
    c_low, c_high = _band_of(ratios, validation_error)
    gap_idx = len([s for s in central if s[0] in ("start", "hardware")]) - 1
    gaps = [rates[end][0][2] / rates[end][gap_idx][2] for end in ENDS]
    g_low, g_high = _band_of(gaps, validation_error)
    chips = (scenario.chips / ratios[0], scenario.chips / c_high, scenario.chips / c_low)
    f_profile, c_profile = get_profile(scenario.frontier), get_profile(scenario.constrained)
    tdp = {
        scenario.frontier: (f_profile.tdp_w.value, f_profile.tdp_w.status),
        scenario.constrained: (c_profile.tdp_w.value, c_profile.tdp_w.status),
    }
    price = {
        p.key: (None if math.isnan(p.price_usd.value) else p.price_usd.value, p.price_usd.status)
        for p in (f_profile, c_profile)
    }
    per_watt = _scaled((ratios[0], c_low, c_high), tdp[scenario.frontier][0], tdp[scenario.constrained][0])
    per_dollar = _scaled((ratios[0], c_low, c_high), price[scenario.frontier][0], price[scenario.constrained][0])
    flagged = [
        f"{p.key} {name}"
        for p in (f_profile, c_profile)
        for name in p.figures_with_status("ASSUMED", "UNV")
        if not name.startswith(("price", "tdp"))
    ]
    flagged += [f"{key} TDP ({status})" for key, (_, status) in tdp.items() if status in ("ASSUMED", "UNV")]
    flagged += [
        f"{key} price ({status})"
        for key, (value, status) in price.items()
        if status in ("ASSUMED", "UNV") and value is not None and per_dollar
    ]
    if scenario.software.get("status") in ("ASSUMED", "UNV"):
        flagged.append(
            f"software maturity x{scenario.software['value']:g} "
            f"[{scenario.software['low']:g}, {scenario.software['high']:g}] ({scenario.software['status']})"
        )
    return Waterfall(
        scenario=scenario,
        start={end: rates[end][0][2] for end in ENDS},
        end={end: rates[end][-1][2] for end in ENDS},
        steps=steps,
        catch_up=(ratios[0], c_low, c_high),
        hardware_gap=(gaps[0], g_low, g_high),
        chips_to_match=chips,
        per_watt=per_watt,
        per_dollar=per_dollar,
        quality=quality,
        validation_error=validation_error,
        figures_flagged=flagged,
        tdp=tdp,
        price=price,
        configurations={
            "start": _config(scenario, "frontier", True, scenario.reference_model, scenario.reference_precision),
            "end": _config(
                scenario,
                "constrained",
                False,
                scenario.model if same_quality else scenario.reference_model,
                scenario.precision,
            ),
        },
    )


def _config(scenario: Scenario, side: str, basic: bool, model: str, precision: str) -> dict[str, Any]:
    q = scenario.query(side, basic, model=model, precision=precision)
    return {
        "profile": q.profile,
        "chips": q.chips,
        "model": q.model,
        "precision": q.precision,
        "parallel": q.parallel or "searched",
        "mtp_acceptance": q.mtp_acceptance,
        "overlap": "searched" if q.overlap is None else q.overlap,
    }


def _scaled(ratio: tuple[float, float, float], frontier_figure, constrained_figure):
    """A catch-up ratio per watt or per dollar: x frontier figure / constrained figure (None without both)."""
    if not frontier_figure or not constrained_figure:
        return None
    k = frontier_figure / constrained_figure
    return (ratio[0] * k, ratio[1] * k, ratio[2] * k)


def _status_of(lever: str, scenario: Scenario, validation_error: float | None) -> tuple[str, str]:
    error = f"{100 * validation_error:.1f}%" if validation_error is not None else "unknown"
    if lever == "software":
        return str(scenario.software.get("status", "ASSUMED")), str(scenario.software.get("source", ""))
    if lever == "hardware":
        return (
            f"simulated (serving model; held-out validation error {error})",
            "device profiles (bench/projection/profiles.toml) and efficiency factors (efficiency.toml)",
        )
    return (
        f"simulated (serving model; held-out validation error {error})",
        "bench/projection: the same chip and model factors on both sides of the ratio",
    )
