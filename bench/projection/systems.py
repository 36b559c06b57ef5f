"""Whole systems (systems.toml): a chip profile, the chips one system holds, the system's power at the wall and its
price, each figure with a status and source; and the ASSUMED cost rule that turns them into dollars per million
output tokens. Validated when loaded (one-line errors naming the system and field)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from bench.core.errors import UsageError, invalid_value
from bench.core.tomlfile import read_toml
from bench.projection.profiles import Figure, get_profile
from bench.projection.profiles import parse_figure as _figure

__all__ = ["System", "CostRule", "load_systems", "get_system", "cost_rule", "SYSTEMS_FILE"]

SYSTEMS_FILE = Path(__file__).with_name("systems.toml")
_FIELDS = ("name", "profile", "chips", "power_w", "price_usd")


@dataclass(frozen=True)
class System:
    key: str
    name: str
    profile: str
    chips: int
    chips_figure: Figure
    power_w: Figure
    price_usd: Figure

    def power(self) -> float | None:
        return None if math.isnan(self.power_w.value) else self.power_w.value

    def price(self) -> float | None:
        return None if math.isnan(self.price_usd.value) else self.price_usd.value

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "profile": self.profile, "chips": self.chips,
                "power_w": self.power_w.to_dict(), "price_usd": self.price_usd.to_dict()}  # fmt: skip


@dataclass(frozen=True)
class CostRule:
    """Dollars per million output tokens = (price / amortization + power x electricity) / tokens, at full load."""

    amortization_years: Figure
    usd_per_kwh: Figure

    def usd_per_million_tokens(self, price: float | None, power_w: float | None, tokens_per_s: float) -> float | None:
        if price is None or power_w is None or not tokens_per_s:
            return None
        seconds = self.amortization_years.value * 365.25 * 24 * 3600
        usd_per_s = price / seconds + power_w / 1e3 * self.usd_per_kwh.value / 3600
        return usd_per_s / tokens_per_s * 1e6

    def to_dict(self) -> dict[str, Any]:
        return {"amortization_years": self.amortization_years.to_dict(), "usd_per_kwh": self.usd_per_kwh.to_dict()}


def _system(key: str, data: Any, where: str) -> System:
    if not isinstance(data, Mapping):
        raise invalid_value(where, data, "a table")
    for name in _FIELDS:
        if name not in data:
            raise UsageError(f"{where}.{name}: missing; a system needs {', '.join(_FIELDS)}")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise invalid_value(f"{where}.{unknown[0]}", unknown[0], _FIELDS)
    get_profile(str(data["profile"]), field=f"{where}.profile")
    chips = _figure(data["chips"], f"{where}.chips")
    if chips.value != int(chips.value) or chips.value > 1 << 20:
        raise invalid_value(f"{where}.chips.value", chips.value, "a whole number of chips up to 1,048,576")
    return System(key, str(data["name"]), str(data["profile"]), int(chips.value), chips,
                  _figure(data["power_w"], f"{where}.power_w", allow_nan=True),
                  _figure(data["price_usd"], f"{where}.price_usd", allow_nan=True))  # fmt: skip


def _raw() -> dict[str, Any]:
    return read_toml(SYSTEMS_FILE, "systems file")


def load_systems() -> dict[str, System]:
    raw = _raw()
    return {k: _system(k, v, f"{SYSTEMS_FILE.name}: [{k}]") for k, v in raw.items() if k != "cost"}


def get_system(key: str, field: str = "system") -> System:
    systems = load_systems()
    if key not in systems:
        raise invalid_value(field, key, tuple(systems))
    return systems[key]


def cost_rule() -> CostRule:
    cost = _raw().get("cost")
    if not isinstance(cost, Mapping):
        raise UsageError(f"{SYSTEMS_FILE.name}: [cost]: missing; expected amortization_years and usd_per_kwh")
    where = f"{SYSTEMS_FILE.name}: [cost]"
    return CostRule(_figure(cost.get("amortization_years"), f"{where}.amortization_years"),
                    _figure(cost.get("usd_per_kwh"), f"{where}.usd_per_kwh"))  # fmt: skip
