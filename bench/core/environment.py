"""The environment fingerprint: what a result depends on besides the spec.

One small collector per area (cpu, memory, os, python, libraries, threads, device, project). Collected inside
the worker process, after the backend has set its threads, so it describes the process that measured.

`fingerprint` is a digest of the fields that make two results comparable (hardware, OS, library versions,
thread settings, device and driver). It leaves out the project's git commit, since comparing commits is the
point of a comparison, and the hostname, since CI runners of one kind differ only in name.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Sequence

import psutil

__all__ = ["collect_environment", "fingerprint_of", "cpu_model", "usable_cpu_count", "git_commit"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: Libraries whose versions change results; recorded by distribution metadata (no import needed).
#: Libraries every record names; each backend adds the ones its figures depend on (`Backend.libraries`).
TRACKED_LIBRARIES = ("numpy", "scipy")

#: Top-level keys that take part in the fingerprint digest.
FINGERPRINT_KEYS = ("cpu", "memory", "os", "python", "libraries", "threads", "device")


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cpu_count() -> int:
    """CPUs this process may run on (affinity-aware; os.cpu_count() overcounts under taskset/cgroups)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


#: Threads a cell may ask for, per CPU this process may use (oversubscription is a technique worth measuring; a
#: million threads is a typo): `max_threads()` = this x usable CPUs, at least MIN_THREADS_LIMIT (a cluster node
#: may have more CPUs than the machine that plans the sweep).
THREADS_PER_CPU = 8
MIN_THREADS_LIMIT = 64


def max_threads() -> int:
    """The most threads a cell may ask for on this host (see THREADS_PER_CPU)."""
    return max(MIN_THREADS_LIMIT, THREADS_PER_CPU * usable_cpu_count())


def collect_cpu() -> dict[str, Any]:
    freq = psutil.cpu_freq()
    return {
        "model": cpu_model(),
        "architecture": platform.machine(),
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": usable_cpu_count(),
        "max_frequency_mhz": round(freq.max, 1) if freq and freq.max else None,
    }


def collect_memory() -> dict[str, Any]:
    return {"total_bytes": psutil.virtual_memory().total}


def collect_os() -> dict[str, Any]:
    return {"system": platform.system(), "release": platform.release(), "platform": platform.platform()}


def collect_python() -> dict[str, Any]:
    return {"version": platform.python_version(), "implementation": platform.python_implementation()}


def collect_libraries(extra: Sequence[str] = ()) -> dict[str, str | None]:
    """Installed versions (None: not installed) of the always-tracked libraries and of `extra`."""
    versions: dict[str, str | None] = {}
    for name in dict.fromkeys((*TRACKED_LIBRARIES, *extra)):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """The project's commit and whether the work tree differs from it; None outside a git checkout."""
    if not (root / ".git").exists():
        return {"git_commit": None, "git_dirty": None}
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {"git_commit": None, "git_dirty": None}
    if commit.returncode != 0:
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit.stdout.strip(), "git_dirty": bool(status.stdout.strip())}


def collect_project() -> dict[str, Any]:
    from bench.core import __version__

    return {"version": __version__, **git_commit()}


def fingerprint_of(environment: Mapping[str, Any]) -> str:
    """Digest of the comparability-relevant parts of an environment dict (see module docstring)."""
    relevant = {key: environment.get(key) for key in FINGERPRINT_KEYS}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def collect_environment(
    threads: Mapping[str, Any], device: Mapping[str, Any], libraries: Sequence[str] = ()
) -> dict[str, Any]:
    """The full environment dict for a record; `threads`, `device` and `libraries` come from the backend."""
    env: dict[str, Any] = {
        "cpu": collect_cpu(),
        "memory": collect_memory(),
        "os": collect_os(),
        "python": collect_python(),
        "libraries": collect_libraries(libraries),
        "threads": dict(threads),
        "device": dict(device),
        "project": collect_project(),
        "hostname": socket.gethostname(),
    }
    env["fingerprint"] = fingerprint_of(env)
    return env
