"""What the Ray executor costs on one machine: the same sweep through the local executor and through Ray.

Starts a local Ray instance (`ray start --head --num-cpus N`), runs SWEEP flags twice (local, then
`--executor ray --ray-address auto`), and prints each run's wall time, the cells' own time (their records'
started_at..finished_at), the median latency of each cell under both executors, and the CPU time Ray's own
processes (raylet, GCS, idle workers, monitors) used while the Ray run went on: load that runs beside the
measurement on the node. Stops the Ray instance at the end.

    python scripts/executor_overhead.py [--cpus 2] [-- extra bench run flags]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
CELLS = [
    "--model",
    "bert-base-tiny",
    "--seq-len",
    "32",
    "--batch-size",
    "1,2,4,8",
    "--min-time",
    "1",
    "--ci-target",
    "0",
    "-q",
]


def ray_daemons() -> list[psutil.Process]:
    """Ray's own processes (not task workers that run a cell: those are the measurement)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        text = " ".join(proc.info["cmdline"] or []) or proc.info["name"] or ""
        if any(
            key in text
            for key in (
                "raylet",
                "gcs_server",
                "ray::IDLE",
                "log_monitor",
                "monitor.py",
                "dashboard",
                "runtime_env",
                "ray_client_server",
            )
        ):
            found.append(proc)
    return found


def cpu_seconds(procs: list[psutil.Process]) -> dict[int, float]:
    total = {}
    for proc in procs:
        try:
            times = proc.cpu_times()
            total[proc.pid] = times.user + times.system
        except psutil.Error:
            pass
    return total


def run(args: list[str], out: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", RAY_USAGE_STATS_ENABLED="0")
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bench", "run", *CELLS, *args, "--out", str(out)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(done.stderr)
    return time.monotonic() - began


def medians(out: Path) -> dict[str, float]:
    rows = {}
    for line in (out / "records.jsonl").read_text().splitlines():
        record = json.loads(line)
        rows[record["spec"]["batch_size"]] = statistics.median(record["measurement"]["samples_ns"]) / 1e6
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpus", type=int, default=psutil.cpu_count())
    parser.add_argument("extra", nargs="*")
    args = parser.parse_args()
    ray_bin = str(Path(sys.executable).with_name("ray"))
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    with tempfile.TemporaryDirectory() as tmp:
        local_s = run(args.extra, Path(tmp, "local"))
        subprocess.run(
            [
                ray_bin,
                "start",
                "--head",
                "--num-cpus",
                str(args.cpus),
                "--include-dashboard=false",
                "--disable-usage-stats",
            ],
            check=True,
            capture_output=True,
            env=env,
        )
        try:
            time.sleep(5)  # let the instance settle
            before = cpu_seconds(ray_daemons())
            ray_s = run([*args.extra, "--executor", "ray", "--ray-address", "auto"], Path(tmp, "ray"))
            after = cpu_seconds(ray_daemons())
        finally:
            subprocess.run([ray_bin, "stop", "--force"], capture_output=True, env=env)
        daemons = sum(after[pid] - before.get(pid, 0.0) for pid in after)
        local_m, ray_m = medians(Path(tmp, "local")), medians(Path(tmp, "ray"))
    print(f"local executor: {local_s:.1f} s for {len(local_m)} cells")
    print(
        f"ray executor:   {ray_s:.1f} s for {len(ray_m)} cells (instance already running); Ray's own processes "
        f"used {daemons:.2f} s of CPU during it ({daemons / ray_s:.1%} of one core)"
    )
    print("batch  local p50 ms  ray p50 ms  ray/local")
    for batch in sorted(local_m):
        print(f"{batch:>5}  {local_m[batch]:>12.3f}  {ray_m[batch]:>10.3f}  {ray_m[batch] / local_m[batch]:>9.3f}")


if __name__ == "__main__":
    main()
