"""Catch-up scenarios (bench/suites/scenarios.toml): two sides -- the frontier and the constrained -- each a chip
(or a whole system), its best precision, its best serving engine and its reference (open, general) engine; the
workload both serve (the scenario's model and the dense reference model of at most its quality, prompt and output
lengths, the TPOT bound); and the ranges over which the conclusions must hold (`ranges`).

Validated at construction, with every name and number checked in the serving model's words: a bad scenario is one
line naming it, the field, the value and what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from bench.core.errors import UsageError, invalid_value
from bench.core.tomlfile import read_toml

__all__ = ["Side", "Scenario", "load_scenarios", "get_scenario", "SCENARIOS_FILE", "REFERENCE_ENGINES", "RANGE_KEYS"]

SCENARIOS_FILE = Path(__file__).resolve().parents[2] / "suites" / "scenarios.toml"
SIDES = ("frontier", "constrained")
#: The reference (open, general) engine of each kind of device: the software a side starts from.
REFERENCE_ENGINES = {"gpu": "vllm", "npu": "vllm-ascend"}
#: Settings a scenario may declare ranges over (`ranges`), each swept one at a time by the stability analysis.
RANGE_KEYS = ("chips", "tpot_slo_ms", "input_tokens", "output_tokens", "frontier_engine", "constrained_engine")
_NUMBERS = {"chips": (1, 4096), "input_tokens": (1, 1 << 20), "output_tokens": (1, 1 << 20), "tpot_slo_ms": (1, 1e5)}
_KEYS = ("title", "frontier", "constrained", "chips", "systems", "model", "reference_model", "precision",
         "reference_precision", "input_tokens", "output_tokens", "tpot_slo_ms", "mtp_acceptance", "engines",
         "reference_engines", "ranges", "generations")  # fmt: skip
_REQUIRED = ("title", "model", "reference_model", "precision", "reference_precision", "input_tokens",
             "output_tokens", "tpot_slo_ms")  # fmt: skip


@dataclass(frozen=True)
class Side:
    """One side of a scenario: its chip, how many, its best precision and engines, and (system scenarios) the
    system whose power and price the per-watt and per-dollar figures use."""

    role: str  # frontier or constrained
    profile: str
    chips: int
    precision: str
    engine: str | None  # the best engine; None: the best published stack for the model family
    reference_engine: str
    system: str | None = None
    generations: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    frontier: Side
    constrained: Side
    model: str
    reference_model: str
    reference_precision: str
    input_tokens: int
    output_tokens: int
    tpot_slo_ms: float
    mtp_acceptance: float | None = None
    ranges: tuple[tuple[str, tuple[Any, ...]], ...] = field(default_factory=tuple)
    #: (role, (value, low, high)) pairs: a software lever measured on one host, replacing the modelled one
    measured_software: tuple[tuple[str, tuple[float, float, float]], ...] = ()

    def side(self, role: str) -> Side:
        return self.frontier if role == "frontier" else self.constrained

    @property
    def is_system(self) -> bool:
        return self.frontier.system is not None

    def setting(self, key: str) -> Any:
        """The scenario's value of a range key."""
        if key == "chips":
            return self.frontier.chips
        if key.endswith("_engine"):
            return self.side(key.split("_")[0]).engine
        return getattr(self, key)

    def with_setting(self, key: str, value: Any) -> "Scenario":
        """The same scenario with one range key set (chips: both sides; an engine: that side)."""
        if key == "chips":
            return replace(self, frontier=replace(self.frontier, chips=value),
                           constrained=replace(self.constrained, chips=value))  # fmt: skip
        if key.endswith("_engine"):
            role = key.split("_")[0]
            return replace(self, **{role: replace(self.side(role), engine=value)})
        return replace(self, **{key: value})

    def with_measured_software(self, role: str, value: float, low: float, high: float) -> "Scenario":
        """The scenario with `role`'s software lever measured (value and interval), e.g. from `bench catchup
        --software-from RUN_DIR`; validated: 0 < low <= value <= high."""
        if role not in SIDES:
            raise invalid_value("software side", role, SIDES)
        for name, x in (("value", value), ("low", low), ("high", high)):
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not (x > 0 and math.isfinite(x)):
                raise invalid_value(f"measured software.{name}", x, "a positive number")
        if not low <= value <= high:
            raise UsageError(f"measured software: expected low <= value <= high, got {low}, {value}, {high}")
        others = tuple((r, v) for r, v in self.measured_software if r != role)
        return replace(self, measured_software=others + ((role, (float(value), float(low), float(high))),))

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        out = asdict(self)
        out["ranges"] = {k: list(v) for k, v in self.ranges}
        out["measured_software"] = {r: dict(zip(("value", "low", "high"), v)) for r, v in self.measured_software}
        return out


def _number(where: str, value: Any, low: float, high: float, whole: bool) -> Any:
    kind = int if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not (low <= value <= high and math.isfinite(value)):
        allowed = f"a {'whole ' if whole else ''}number from {low:g} to {high:g}"
        raise invalid_value(where, value, allowed)
    return value


def _per_side(where: str, value: Any, default: Any = None) -> dict[str, Any]:
    """A value for both sides, or a table { frontier = ..., constrained = ... }."""
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(SIDES))
        if unknown:
            raise invalid_value(f"{where}.{unknown[0]}", unknown[0], SIDES)
        return {s: value.get(s, default) for s in SIDES}
    return {s: (value if value is not None else default) for s in SIDES}


def _ranges(name: str, data: Any) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if data is None:
        return ()
    if not isinstance(data, Mapping):
        raise invalid_value(f"scenario {name}: ranges", data, "a table of setting = [values]")
    out = []
    for key, values in data.items():
        if key not in RANGE_KEYS:
            raise invalid_value(f"scenario {name}: ranges.{key}", key, RANGE_KEYS)
        if not isinstance(values, list) or not 1 <= len(values) <= 12:
            raise invalid_value(f"scenario {name}: ranges.{key}", values, "a list of 1 to 12 values")
        if key in _NUMBERS:
            low, high = _NUMBERS[key]
            values = [_number(f"scenario {name}: ranges.{key}", v, low, high, key != "tpot_slo_ms") for v in values]
        elif not all(isinstance(v, str) for v in values):
            raise invalid_value(f"scenario {name}: ranges.{key}", values, "a list of engine names")
        out.append((key, tuple(values)))
    return tuple(out)


def _sides(name: str, data: Mapping[str, Any]) -> tuple[Side, Side]:
    from bench.projection.profiles import get_profile

    systems = _per_side(f"scenario {name}: systems", data.get("systems"))
    precision = _per_side(f"scenario {name}: precision", data["precision"])
    engines = _per_side(f"scenario {name}: engines", data.get("engines"))
    reference = _per_side(f"scenario {name}: reference_engines", data.get("reference_engines"))
    generations = _per_side(f"scenario {name}: generations", data.get("generations"), ())
    sides = []
    for role in SIDES:
        if systems[role] is not None:
            from bench.projection.systems import get_system

            system = get_system(str(systems[role]), field=f"scenario {name}: systems.{role}")
            profile, chips = system.profile, system.chips
        else:
            for key in (role, "chips"):
                if key not in data:
                    raise UsageError(f"scenario {name}: {key} is missing; a chip scenario names frontier, "
                                     "constrained and chips (or a system scenario names systems)")  # fmt: skip
            profile = str(data[role])
            chips = _number(f"scenario {name}: chips", data["chips"], 1, 4096, True)
        kind = get_profile(profile, field=f"scenario {name}: {role}").kind
        sides.append(Side(role, profile, chips, str(precision[role]), engines[role],
                          str(reference[role] or REFERENCE_ENGINES.get(kind, "")), systems[role],
                          tuple(str(g) for g in generations[role] or ())))  # fmt: skip
    return sides[0], sides[1]


def scenario_of(name: str, data: Any) -> Scenario:
    """One scenario from its table, validated (module docstring)."""
    if not isinstance(data, Mapping):
        raise invalid_value(f"scenario {name}", data, "a table")
    if "software" in data:
        raise UsageError(f"scenario {name}: software: no longer a figure; the software lever comes from the engines "
                         "(engines = {{ frontier = ..., constrained = ... }}, reference_engines = {{ ... }})")  # fmt: skip
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise invalid_value(f"scenario {name}: {unknown[0]}", unknown[0], _KEYS)
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise UsageError(f"scenario {name}: {missing[0]} is missing; required: {', '.join(_REQUIRED)}")
    frontier, constrained = _sides(name, data)
    mtp = data.get("mtp_acceptance")
    if mtp is not None:
        _number(f"scenario {name}: mtp_acceptance", mtp, 0.0, 1.0, False)
    scenario = Scenario(
        name, str(data["title"]), frontier, constrained, str(data["model"]), str(data["reference_model"]),
        str(data["reference_precision"]),
        _number(f"scenario {name}: input_tokens", data["input_tokens"], 1, 1 << 20, True),
        _number(f"scenario {name}: output_tokens", data["output_tokens"], 1, 1 << 20, True),
        float(_number(f"scenario {name}: tpot_slo_ms", data["tpot_slo_ms"], 1, 1e5, False)),
        mtp, _ranges(name, data.get("ranges")),
    )  # fmt: skip
    from bench.analysis.gap.configs import check_scenario

    try:  # every configuration the analysis will project, resolved now (names, precisions, engine rules)
        check_scenario(scenario)
    except UsageError as exc:
        raise UsageError(f"scenario {name}: {exc}") from None
    return scenario


def load_scenarios(path: Path | None = None) -> dict[str, Scenario]:
    """Every scenario of the file, validated (a bad one is a one-line error naming it)."""
    data = read_toml(Path(path or SCENARIOS_FILE), "scenarios file")
    return {name: scenario_of(name, table) for name, table in data.items()}


def get_scenario(name: str, path: Path | None = None) -> Scenario:
    data = read_toml(Path(path or SCENARIOS_FILE), "scenarios file")
    if name not in data:
        raise invalid_value("scenario", name, sorted(data))
    return scenario_of(name, data[name])
