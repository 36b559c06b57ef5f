"""The project's own serving-model prediction of every corpus row, for scripts/genz/compare.py.

In-process where this interpreter can import bench.projection (it needs only the standard library, tomllib and
numpy for predict(); scipy only for fitting, which is not done here); else the project's virtual environment runs
this file and hands the result over as JSON:

    .venv/bin/python scripts/genz/ours.py CORPUS.toml      # {row_id: {"ours", "reason", "use", "group", ...}}

Per row: "ours" = bench.projection.published.predict(row) with the committed fit (tokens/s per chip in the row's
unit, or None with "reason"), "use" = "fit" / "held_out" (PublishedSet.is_fit: published before the corpus'
[split].fit_published_before), "group" = "dense|moe gpu|npu" (bench.projection.query.arch_of_model(...).moe_layers
and the profile's kind)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"


def _load(path: Path):
    """The corpus as a PublishedSet: load_published, or (where it refuses keys it does not know) the rows with
    only the fields the project's Row has."""
    from bench.core.errors import UsageError
    from bench.projection.published import PublishedSet, Row, load_published

    try:
        return load_published(path), None
    except UsageError as exc:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
        known = {f.name for f in fields(Row)}
        rows = tuple(Row(**{k: v for k, v in d.items() if k in known}) for d in data.get("row", []))
        note = f"load_published refused the corpus ({exc}); rows read with unknown keys dropped"
        return PublishedSet(rows, str((data.get("split") or {}).get("fit_published_before"))), note


def _group(row) -> str:
    from bench.projection.profiles import get_profile
    from bench.projection.query import arch_of_model

    moe = "moe" if arch_of_model(row.model).moe_layers else "dense"
    return f"{moe} {get_profile(row.profile).kind}"


def predictions_here(path: Path) -> dict:
    """{"rows": {row_id: {...}}, "note": str | None, "python": sys.executable} computed in this interpreter."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from bench.projection.published import predict

    published, note = _load(path)
    rows = {}
    for row in published.rows:
        entry = {"use": "fit" if published.is_fit(row) else "held_out", "engine": row.engine, "ours": None}
        entry["reason"] = None
        try:
            entry["group"] = _group(row)
            entry["ours"] = predict(row)
            if entry["ours"] is None:
                entry["reason"] = "no configuration fits memory and the bounds"
        except Exception as exc:  # noqa: BLE001 - one row's failure is reported, not fatal
            entry.setdefault("group", "?")
            entry["reason"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        rows[row.id] = entry
    return {"rows": rows, "note": note, "python": sys.executable}


def predictions(path: Path) -> dict:
    """As predictions_here, in this interpreter if it imports bench.projection, else in the project's .venv."""
    try:
        return predictions_here(path)
    except ImportError as exc:
        if not PROJECT_PYTHON.exists():
            sys.exit(f"bench.projection does not import here ({exc}) and {PROJECT_PYTHON} does not exist")
        done = subprocess.run(
            [str(PROJECT_PYTHON), str(Path(__file__).resolve()), str(path)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
        if done.returncode:
            sys.exit(f"{PROJECT_PYTHON} {Path(__file__).name} failed:\n{done.stderr[-2000:]}")
        result = json.loads(done.stdout)
        result["note"] = "; ".join(filter(None, [f"bench.projection not importable here ({exc})", result["note"]]))
        return result


if __name__ == "__main__":
    json.dump(predictions_here(Path(sys.argv[1]).resolve()), sys.stdout)
    sys.stdout.write("\n")
