"""The Ray executor: a sweep's cells as Ray tasks on a cluster, their records streamed back to this process.

Each cell is one Ray task, and the task does exactly what the local executor does on one machine: it starts the
isolated `python -m bench.runs.worker` process on its node and waits for it without spinning (`LocalExecutor.run`).
So a cell measured through Ray and one measured locally go through the same code, write the same record, and
carry the environment fingerprint of the process that measured: the node's, not the driver's. The task adds
`environment.executor` (Ray, node id, hostname), which is not part of the fingerprint.

Resources. A task asks for what its backend occupies (`Backend.device_kind`), so no two cells share a device:
  gpu   num_gpus=1 (Ray sets CUDA_VISIBLE_DEVICES to that card), 1 CPU
  npu   the custom resource NPU=1 (start Ascend nodes with `ray start --resources '{"NPU": 8}'`), 1 CPU
  cpu   the cell's `threads` option if set, else every CPU of the smallest node: an unpinned torch uses all the
        cores, and two timed cells on one host would disturb each other
Simulated cells run on a CPU node like cpu cells (their host validation is a measurement).

Project and store. The project is shipped to the nodes as the tasks' Ray working directory (without results/,
.git, .venv and docs/); the nodes need the same Python dependencies installed. The driver receives each record
(and LoadGen's log files) as the task finishes and appends it to the run directory on the driver: the store is
written in one place, and a later `--resume`, through either executor, sees every finished cell.

Failures. A cell that fails inside its worker comes back as a `failed` record like any other. A task whose
process or node dies is retried by Ray up to `retries` times (`max_retries`); after that the driver writes a
`failed` record with Ray's error. On Ctrl-C or SIGTERM the driver cancels the tasks still pending or running
(force: their worker processes are killed, and the measuring processes die with them) and the records already
appended stay; `--resume` runs the rest.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from bench.core.errors import UsageError
from bench.core.record import Record
from bench.core.settings import MeasureSettings
from bench.core.spec import BenchmarkSpec
from bench.runs.runner import PROJECT_ROOT, Executor, LocalExecutor, utc_now

__all__ = ["RayExecutor", "INSTALL_HINT", "ray_unavailable_reason"]

INSTALL_HINT = "pip install 'catchup-bench[ray]'"

#: Environment variables the driver passes on to the tasks (prefixes), e.g. HF_HUB_OFFLINE, CATCHUP_BENCH_CACHE.
FORWARDED_ENV_PREFIXES = ("HF_", "TRANSFORMERS_", "CATCHUP_BENCH_", "BENCH_FAULT_INJECT")

#: What the working directory shipped to the nodes leaves out.
WORKING_DIR_EXCLUDES = [".git", "results", ".venv", "docs", "*.egg-info", "__pycache__", ".pytest_cache"]


def ray_unavailable_reason() -> str | None:
    """Why the Ray executor cannot run here (Ray is not installed), found without importing Ray (slow)."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        return f"--executor: 'ray' needs Ray, which is not installed here: {INSTALL_HINT}"
    return None


#: How long the driver waits for a TCP connection to the head before calling the address unreachable.
CONNECT_TIMEOUT_S = 5.0


def check_reachable(address: str | None) -> None:
    """A one-line UsageError unless HOST:PORT (or ray://HOST:PORT) accepts a TCP connection within
    CONNECT_TIMEOUT_S: Ray itself retries an unreachable head for minutes. None and "auto" are left to Ray."""
    if address in (None, "auto", "local"):
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--ray-address: {address!r} is not allowed; expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise UsageError(
            f"--ray-address: {address!r} cannot be reached ({exc.strerror or exc}); is the head node "
            "up (`ray start --head`)?"
        ) from None


def _run_cell_task(
    spec_data: dict[str, Any], settings_data: dict[str, Any], secret_env: dict[str, str]
) -> tuple[dict, dict, float]:
    """The body of one Ray task: the local executor's isolated worker, on this node, with the secrets the cell
    reads from the environment (`secret_env`, from the submitting process) in the worker's environment."""
    import ray

    began = time.monotonic()
    spec = BenchmarkSpec.from_dict(spec_data)
    record = LocalExecutor(extra_env=secret_env).run(spec, MeasureSettings.from_dict(settings_data))
    record.environment["executor"] = {
        "name": "ray",
        "node_id": ray.get_runtime_context().get_node_id(),
        "hostname": socket.gethostname(),
    }
    return record.to_dict(), record.attachments, time.monotonic() - began


def _secret_env(spec: BenchmarkSpec) -> dict[str, str]:
    """The values of the environment variables that hold the cell's secrets (`Backend.secret_environment`), for
    its task: a Ray worker does not inherit this process's environment, and the runtime environment every task
    shares (and Ray's dashboard shows) is no place for them. Like the real endpoint, they travel as the task's
    arguments only."""
    from backends.registry import backend_class

    names = backend_class(spec.backend).secret_environment(spec)
    return {name: os.environ[name] for name in names if name in os.environ}


@dataclass
class RayExecutor(Executor):
    """Runs cells as Ray tasks on the cluster at `address` (None: a local Ray instance started for the sweep)."""

    streams = True
    address: str | None = None
    retries: int = 1
    _started: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        reason = ray_unavailable_reason()
        if reason:
            raise UsageError(reason)
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise UsageError(f"--ray-retries: {self.retries!r} is not allowed; expected a whole number >= 0")

    # -- connection ------------------------------------------------------------------------------------------

    def connect(self) -> None:
        """Join the cluster (or start a local instance); a one-line UsageError if the address cannot be reached."""
        import ray

        if self._started:
            return
        check_reachable(self.address)
        env_vars = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIXES)}
        env_vars.setdefault("HF_HUB_OFFLINE", "1")
        runtime_env = {"working_dir": str(PROJECT_ROOT), "excludes": WORKING_DIR_EXCLUDES, "env_vars": env_vars}
        try:
            ray.init(
                address=self.address,
                runtime_env=runtime_env,
                logging_level="ERROR",
                log_to_driver=False,
                include_dashboard=False,
                configure_logging=True,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [""])[0]
            raise UsageError(f"--ray-address: {self.address!r} cannot be reached: {first[:200]}") from None
        self._started = True

    def close(self) -> None:
        import ray

        if self._started:
            ray.shutdown()
            self._started = False

    def cluster_devices(self) -> frozenset[str]:
        """Device kinds some node of the cluster offers ("gpu" for the GPU resource, "npu" for the NPU resource)."""
        import ray

        self.connect()
        total = ray.cluster_resources()
        return frozenset(kind for kind, key in (("gpu", "GPU"), ("npu", "NPU")) if total.get(key, 0) >= 1)

    def _cpus_per_node(self) -> int:
        import ray

        counts = [int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")]
        counts = [c for c in counts if c > 0]
        if not counts:
            raise UsageError("--executor: the Ray cluster has no node with CPUs")
        return min(counts)

    # -- scheduling ------------------------------------------------------------------------------------------

    def resources_for(self, spec: BenchmarkSpec, cpus_per_node: int) -> dict[str, Any]:
        """The Ray resources one cell asks for (see the module docstring)."""
        from backends.registry import backend_class

        kind = backend_class(spec.backend).device_kind(spec)
        if kind == "gpu":
            return {"num_gpus": 1, "num_cpus": 1}
        if kind == "npu":
            return {"num_cpus": 1, "resources": {"NPU": 1}}
        threads = spec.option("threads")
        return {"num_cpus": min(int(threads), cpus_per_node) if threads else cpus_per_node}

    def stream(self, specs: Sequence[BenchmarkSpec], settings: MeasureSettings) -> Iterator[tuple[Record, float]]:
        """Submit every cell, then yield (record, seconds) as each finishes (completion order)."""
        import ray
        from ray.exceptions import RayError

        self.connect()
        if not specs:
            return
        task = ray.remote(_run_cell_task)
        cpus = self._cpus_per_node()
        pending = {}
        for spec in specs:
            options = {
                **self.resources_for(spec, cpus),
                "max_retries": self.retries,
                "retry_exceptions": False,
                "name": f"bench {spec.label}"[:200],
            }
            ref = task.options(**options).remote(self.real(spec).to_dict(), settings.to_dict(), _secret_env(spec))
            pending[ref] = (
                spec,
                utc_now(),
                time.monotonic(),
            )
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)  # blocks in Ray's core worker; no polling here
                spec, started, submitted = pending.pop(done[0])
                try:
                    data, attachments, seconds = ray.get(done[0])
                except RayError as exc:
                    yield self._lost(spec, started, exc), time.monotonic() - submitted
                    continue
                record = Record.from_dict(data)
                record.attachments = attachments
                yield record, seconds
        finally:
            for ref in pending:  # interrupted (or the consumer stopped): cancel what has not come back
                ray.cancel(ref, force=True)

    def _lost(self, spec: BenchmarkSpec, started: str, exc: Exception) -> Record:
        first = (str(exc).strip().splitlines() or [""])[0]
        reason = (
            f"ray task lost after {self.retries} retr{'y' if self.retries == 1 else 'ies'}: "
            f"{type(exc).__name__}: {first}"
        )[:500]
        return Record(
            spec,
            "failed",
            reason=reason,
            started_at=started,
            finished_at=utc_now(),
            environment={"executor": {"name": "ray"}},
            detail=str(exc)[-4000:] or None,
        )
