"""Device profiles: published figures (peak FLOP/s per dtype, memory, bandwidth, power, price), each with its status
and source, from `bench/projection/profiles.toml`, optionally overridden or extended by the user's own TOML file named in
`CATCHUP_BENCH_PROFILES` (a table for an existing profile replaces only the fields it gives, e.g. a price).

Every profile is validated when loaded: each required field present, each figure a positive number with a status
and a source (only `price_usd` and `tdp_w` may be nan: no sourced figure; at least one tensor peak; an optional
`released` date with its status, ANNOUNCED for a chip not yet shipping). A bad file is refused with one line naming the
file, the profile and the field.

The host CPU has no profile here: it is measured (`backends.calibrate`), never looked up.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from bench.core.errors import UsageError, invalid_value
from bench.core.tomlfile import read_toml  # noqa: F401  (also imported from here)
from bench.core.vocabulary import DEVICE_KINDS

__all__ = [
    "parse_figure",
    "Figure",
    "Release",
    "Profile",
    "load_profiles",
    "get_profile",
    "PROFILES_ENV",
    "STATUSES",
    "DTYPES",
    "INTERCONNECT",
]

PROFILES_ENV = "CATCHUP_BENCH_PROFILES"
BUILTIN = Path(__file__).with_name("profiles.toml")
STATUSES = ("OFF", "3P", "DER", "UNV", "ASSUMED", "MEASURED", "ANNOUNCED")
#: Tensor peaks a profile may give; it needs at least one (an announced chip may publish only fp8/fp4 figures).
DTYPES = ("bf16", "fp16", "fp8", "int8", "fp4")
#: Figures that may be nan (no sourced figure): per-watt and per-dollar figures are then left out.
OPTIONAL_FIGURES = ("tdp_w", "price_usd")
FIELDS = ("memory_gb", "bandwidth_tbs", "tdp_w", "price_usd")
KINDS = DEVICE_KINDS
#: Optional interconnect figures (all or none): per-chip scale-up bandwidth in GB/s per direction, chips in one
#: scale-up domain, a collective step's latency there in us, and the same for the scale-out network. A profile
#: without them can be projected on one chip only.
INTERCONNECT = ("scaleup_gbs", "scaleup_domain", "scaleup_latency_us", "scaleout_gbs", "scaleout_latency_us")


@dataclass(frozen=True)
class Figure:
    value: float
    status: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"value": None if math.isnan(self.value) else self.value, "status": self.status, "source": self.source}


@dataclass(frozen=True)
class Release:
    """When a chip shipped (or is announced to): "YYYY-MM-DD", "YYYY-MM", "YYYY-Qn" or "YYYY-Hn", with a status."""

    date: str
    status: str
    source: str

    @property
    def year(self) -> float:
        """The date as a decimal year at the middle of its period (2025-Q1 -> 2025.125, 2025-H2 -> 2025.75)."""
        year, _, rest = self.date.partition("-")
        if not rest:
            return int(year) + 0.5
        if rest[0] in "QH":
            n, parts = int(rest[1:]), 4 if rest[0] == "Q" else 2
            return int(year) + (n - 0.5) / parts
        return int(year) + (int(rest[:2]) - 0.5) / 12

    def to_dict(self) -> dict[str, Any]:
        return {"date": self.date, "status": self.status, "source": self.source, "year": self.year}


_RELEASE = re.compile(r"^(19|20)\d\d(-(0[1-9]|1[0-2])(-\d\d)?|-Q[1-4]|-H[12])?$")


def _release(data: Any, where: str) -> Release | None:
    if data is None:
        return None
    if not isinstance(data, Mapping) or not isinstance(data.get("value"), str) or not _RELEASE.match(data["value"]):
        raise invalid_value(f"{where}.value", data.get("value") if isinstance(data, Mapping) else data,
                            "a date YYYY, YYYY-MM, YYYY-MM-DD, YYYY-Qn or YYYY-Hn")  # fmt: skip
    if data.get("status") not in STATUSES:
        raise invalid_value(f"{where}.status", data.get("status"), STATUSES)
    if not isinstance(data.get("source"), str) or not data["source"].strip():
        raise invalid_value(f"{where}.source", data.get("source"), "where the date comes from")
    return Release(data["value"], data["status"], data["source"])


@dataclass(frozen=True)
class Profile:
    key: str
    name: str
    kind: str
    peak_tflops: Mapping[str, Figure]
    memory_gb: Figure
    bandwidth_tbs: Figure
    tdp_w: Figure
    price_usd: Figure
    interconnect: Mapping[str, Figure] | None = None
    released: "Release | None" = None

    @property
    def announced_only(self) -> bool:
        """Not shipping when its figures were published: every output using it says ANNOUNCED."""
        return self.released is not None and self.released.status == "ANNOUNCED"

    def has(self, dtype: str) -> bool:
        """Whether the device has a published peak for this compute dtype (e.g. no fp8 on Ascend or A100)."""
        return dtype in self.peak_tflops

    def link(self, name: str) -> float:
        """An interconnect figure's value; UsageError naming the profile where it has none."""
        if not self.interconnect:
            raise UsageError(
                f"profile {self.key!r} has no interconnect figures ({', '.join(INTERCONNECT)}), so "
                "it can be projected on one chip only; add them in $CATCHUP_BENCH_PROFILES"
            )
        return self.interconnect[name].value

    def peak_flops(self, dtype: str) -> float:
        return self.peak_tflops[dtype].value * 1e12

    @property
    def bandwidth_bytes_s(self) -> float:
        return self.bandwidth_tbs.value * 1e12

    @property
    def memory_bytes(self) -> float:
        return self.memory_gb.value * 1e9

    def assumed(self) -> list[str]:
        """Fields whose figure is an assumption (status ASSUMED), so estimates using them can say so."""
        out = [f"peak_tflops.{d}" for d, f in self.peak_tflops.items() if f.status == "ASSUMED"]
        out += [f"interconnect.{k}" for k, f in (self.interconnect or {}).items() if f.status == "ASSUMED"]
        return out + [f for f in FIELDS if getattr(self, f).status == "ASSUMED"]

    def figures_with_status(self, *statuses: str) -> list[str]:
        """Every figure of this profile whose status is one of `statuses` (e.g. "UNV", "ASSUMED")."""
        named = [(f"peak_tflops.{d}", f) for d, f in self.peak_tflops.items()]
        named += [(f"interconnect.{k}", f) for k, f in (self.interconnect or {}).items()]
        named += [(f, getattr(self, f)) for f in FIELDS]
        return [name for name, figure in named if figure.status in statuses]

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "kind": self.kind,
            "peak_tflops": {d: f.to_dict() for d, f in self.peak_tflops.items()},
            **{f: getattr(self, f).to_dict() for f in FIELDS},
            "interconnect": {k: f.to_dict() for k, f in self.interconnect.items()} if self.interconnect else None,
            "released": self.released.to_dict() if self.released else None,
        }


#: No figure of a chip reaches this in the units used (TFLOP/s, GB, TB/s, W, USD, GB/s, us, chips); a larger one is
#: a typo, and 1e308 would print as "inf GB" once multiplied.
MAX_FIGURE = 1e9


def _figure(data: Any, where: str, allow_nan: bool = False) -> Figure:
    if not isinstance(data, Mapping):
        raise UsageError(f"{where}: missing or not a table; expected {{ value = N, status = ..., source = ... }}")
    for key in ("value", "status", "source"):
        if key not in data:
            raise UsageError(f"{where}.{key}: missing; every figure needs value, status and source")
    value = data["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{where}.value: {value!r} is not allowed; expected a positive number")
    if math.isnan(value) and not allow_nan or (not math.isnan(value) and not 0 < value <= MAX_FIGURE):
        raise UsageError(
            f"{where}.value: {value!r} is not allowed; expected a positive number up to {MAX_FIGURE:g}"
            + (" (or nan: no sourced figure)" if allow_nan else "")
        )
    if data["status"] not in STATUSES:
        raise UsageError(f"{where}.status: {data['status']!r} is not allowed; expected one of {', '.join(STATUSES)}")
    if not isinstance(data["source"], str) or not data["source"].strip():
        raise UsageError(f"{where}.source: {data['source']!r} is not allowed; expected where the figure comes from")
    return Figure(float(value), data["status"], data["source"])


#: One sourced figure ({ value, status, source }) parsed with the profiles' rules (systems.toml uses it too).
parse_figure = _figure


def _profile(key: str, data: Any, where: str) -> Profile:
    if not isinstance(data, Mapping):
        raise UsageError(f"{where}: not a table")
    unknown = sorted(set(data) - {"name", "kind", "peak_tflops", "interconnect", "released", *FIELDS})
    if unknown:
        raise invalid_value(f"{where}.{unknown[0]}", unknown[0], ("name", "kind", "peak_tflops", "interconnect",
                                                                  "released", *FIELDS))  # fmt: skip
    for field in ("name", "kind", "peak_tflops", *FIELDS):
        if field not in data:
            raise UsageError(f"{where}.{field}: missing; a profile needs name, kind, peak_tflops, {', '.join(FIELDS)}")
    if data["kind"] not in KINDS:
        raise UsageError(f"{where}.kind: {data['kind']!r} is not allowed; expected one of {', '.join(KINDS)}")
    peaks_data = data["peak_tflops"]
    if not isinstance(peaks_data, Mapping):
        raise UsageError(f"{where}.peak_tflops: not a table of dtype = figure")
    if not any(dtype in peaks_data for dtype in DTYPES):
        raise UsageError(f"{where}.peak_tflops: no tensor peak; a profile gives at least one of {', '.join(DTYPES)}")
    peaks = {d: _figure(v, f"{where}.peak_tflops.{d}") for d, v in peaks_data.items()}
    figures = {f: _figure(data[f], f"{where}.{f}", allow_nan=(f in OPTIONAL_FIGURES)) for f in FIELDS}
    return Profile(
        key=key,
        name=str(data["name"]),
        kind=data["kind"],
        peak_tflops=peaks,
        **figures,
        interconnect=_interconnect(data.get("interconnect"), f"{where}.interconnect"),
        released=_release(data.get("released"), f"{where}.released"),
    )


def _interconnect(data: Any, where: str) -> dict[str, Figure] | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise UsageError(f"{where}: not a table of figures")
    missing = [k for k in INTERCONNECT if k not in data]
    if missing:
        raise UsageError(f"{where}.{missing[0]}: missing; an interconnect gives all of {', '.join(INTERCONNECT)}")
    return {k: _figure(data[k], f"{where}.{k}") for k in INTERCONNECT}


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if key in ("peak_tflops", "interconnect") and isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            merged[key] = {**base[key], **value}
        else:
            merged[key] = value
    return merged


def _stamp(path: str | Path | None) -> tuple[str, int] | None:
    """A file's identity for the cache: its path and modification time (None where it cannot be read)."""
    if not path:
        return None
    try:
        return str(path), os.stat(path).st_mtime_ns
    except OSError:
        return str(path), -1


_LOADED: dict[tuple, dict[str, Profile]] = {}


def load_profiles(user_file: str | None = None) -> dict[str, Profile]:
    """The built-in profiles, with the user's file (argument, else $CATCHUP_BENCH_PROFILES) merged over them.
    Parsed once per process for each state of the two files (a search asks for a profile thousands of times)."""
    user_file = user_file if user_file is not None else os.environ.get(PROFILES_ENV)
    key = (_stamp(BUILTIN), _stamp(user_file))
    if key not in _LOADED:
        _LOADED.clear()
        _LOADED[key] = _load_profiles(user_file)
    return dict(_LOADED[key])


def _load_profiles(user_file: str | None) -> dict[str, Profile]:
    raw = read_toml(BUILTIN, "profiles file")
    where_of = {key: f"profiles file {BUILTIN.name}: [{key}]" for key in raw}
    if user_file:
        user = read_toml(Path(user_file), "profiles file")
        for key, table in user.items():
            if not isinstance(table, Mapping):
                raise UsageError(f"profiles file {user_file!r}: [{key}]: not a table")
            raw[key] = _merge(raw.get(key, {}), table)
            where_of[key] = f"profiles file {user_file!r}: [{key}]"
    return {key: _profile(key, table, where_of[key]) for key, table in raw.items()}


def get_profile(key: str, field: str = "options.profile") -> Profile:
    profiles = load_profiles()
    if key not in profiles:
        from bench.core.errors import invalid_value

        raise invalid_value(field, key, tuple(profiles))
    return profiles[key]
