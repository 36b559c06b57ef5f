"""Reading what LoadGen wrote: its detail log (`mlperf_log_detail.txt`, one `:::MLLOG {json}` entry per line)
into the figures a LoadGen record holds -- LoadGen's own, nothing timed by the harness -- and its accuracy log
into the outputs the accuracy guard compares.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

__all__ = ["parse_detail_log", "summarize_run", "read_accuracy_log"]

_MLLOG = ":::MLLOG "
_ESTIMATE = re.compile(r"Early stopping (\d+(?:\.\d+)?)th percentile estimate: (\d+)")


def parse_detail_log(path: Path) -> dict[str, Any]:
    """LoadGen's detail log (one `:::MLLOG {json}` entry per line) -> {key: value} of every entry, plus
    "errors"/"warnings" (messages flagged so in the entries' metadata). A key logged twice keeps its last value."""
    entries: dict[str, Any] = {"errors": [], "warnings": []}
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith(_MLLOG):
            continue
        try:
            entry = json.loads(line[len(_MLLOG) :])
        except ValueError:
            continue
        meta = entry.get("metadata") or {}
        if meta.get("is_error"):
            entries["errors"].append(str(entry.get("value")))
        elif meta.get("is_warning"):
            entries["warnings"].append(str(entry.get("value")))
        entries[entry.get("key")] = entry.get("value")
    return entries


def _early_stopping_estimates(text: str | None) -> dict[str, int]:
    """ "Early stopping 90.0th percentile estimate: 5218263" -> {"p90": 5218263} (nanoseconds)."""
    return {f"p{float(q):g}": int(ns) for q, ns in _ESTIMATE.findall(text or "")}


def summarize_run(entries: dict[str, Any]) -> dict[str, Any]:
    """The figures of one LoadGen run, from its detail-log entries: validity and why, LoadGen's results
    (`result_*` keys without the prefix; latencies in ns, rates per second), early stopping, settings in force."""
    results = {
        key[len("result_") :]: value
        for key, value in entries.items()
        if key.startswith("result_") and key not in ("result_validity", "result_invalid_reason")
    }
    early = {key: value for key, value in entries.items() if key.startswith("early_stopping_")}
    estimates: dict[str, Any] = {}
    for key in ("early_stopping_result", "early_stopping_ttft_result", "early_stopping_tpot_result"):
        found = _early_stopping_estimates(entries.get(key))
        if found:
            estimates[key[len("early_stopping_") : -len("_result")] or "latency"] = found
    unmet = [
        what
        for key, what in (
            ("result_perf_constraints_met", "latency constraint not met"),
            ("result_min_duration_met", "minimum duration not met"),
            ("result_min_queries_met", "minimum query count not met"),
            ("early_stopping_met", "early stopping not satisfied"),
        )
        if entries.get(key) is False
    ]
    reason = (entries.get("result_invalid_reason") or "").strip()
    return {
        "validity": entries.get("result_validity"),
        "invalid_reasons": unmet + ([reason] if reason else []),
        "results": results,
        "early_stopping": early,
        "early_stopping_estimates_ns": estimates,
        "settings": {key[len("effective_") :]: value for key, value in entries.items() if key.startswith("effective_")},
        "loadgen_version": entries.get("loadgen_version"),
        "errors": entries["errors"],
        "warnings": entries["warnings"],
    }


def read_accuracy_log(path: Path, count: int) -> Any:
    """LoadGen's mlperf_log_accuracy.json -> a float32 tensor [count, values] of the responses in sample order."""
    import numpy as np
    import torch

    entries = json.loads(path.read_text())
    by_index: dict[int, Any] = {}
    for entry in entries:
        by_index[int(entry["qsl_idx"])] = np.frombuffer(bytes.fromhex(entry["data"]), dtype=np.float32)
    missing = [i for i in range(count) if i not in by_index]
    if missing:
        raise ValueError(f"LoadGen's accuracy log has no response for samples {missing[:5]}")
    return torch.from_numpy(np.stack([by_index[i] for i in range(count)]))


# ---------------------------------------------------------------------------------------------------------
# One cell
