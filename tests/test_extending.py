"""The documented seams, exercised as a newcomer would: a backend added from another package (one module and one
entry point, nothing edited here) is listed, planned, measured in its own worker and recorded like any other."""

from __future__ import annotations

import json
import textwrap

from conftest import QUICK, ROOT, run_cli

TOY_BACKEND = textwrap.dedent(
    '''
    """A toy measured backend: times a tiny pure-Python loop per item; builds no model."""
    from typing import ClassVar

    from backends.base import Availability, Capabilities, MeasuredBackend, OptionSpec, PreparedCall


    class ToyBackend(MeasuredBackend):
        name: ClassVar[str] = "toy"
        summary: ClassVar[str] = "a toy runtime from another package (test of the plugin seam)"
        libraries: ClassVar[tuple[str, ...]] = ()
        in_wildcard: ClassVar[bool] = False
        capabilities: ClassVar[Capabilities] = Capabilities(
            precisions=("fp32",),
            options={"spin": OptionSpec(int, "loop iterations per item", minimum=1, default=1000)},
            generation=False,
            loadgen=False,
        )

        @classmethod
        def probe(cls):
            return Availability(True)

        def __init__(self, spec):
            self.spec = spec

        def prepare(self, workload, spec):
            spin = int(spec.option("spin", 1000)) * spec.batch_size

            def call(stamp):
                total = 0
                for i in range(spin):
                    total += i
                return None

            return PreparedCall(call=call, items_per_call=spec.batch_size, facts={"technique": "toy loop"})

        def synchronize(self):
            pass

        def device_info(self):
            return {"type": "toy", "name": "toy device", "driver": None}
    '''
)


def _plugin_package(root):
    """A package `toy_bench` with the backend module and the metadata that registers it (an entry point)."""
    (root / "toy_bench").mkdir(parents=True)
    (root / "toy_bench" / "__init__.py").write_text("")
    (root / "toy_bench" / "backend.py").write_text(TOY_BACKEND)
    dist = root / "toy_bench-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-bench\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[catchup_bench.backends]\ntoy = toy_bench.backend:ToyBackend\n")
    return root


def test_a_backend_from_another_package_is_listed_run_and_recorded(tmp_path):
    env = {"PYTHONPATH": f"{_plugin_package(tmp_path / 'plugin')}:{ROOT}"}
    listed = run_cli("list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "toy" in listed.stdout and "a toy runtime from another package" in listed.stdout
    out = tmp_path / "run"
    done = run_cli(
        "run", "--model", "bert-base-tiny", "--backend", "toy", "-O", "spin=200", "--seq-len", "8", *QUICK,
        "--out", str(out), env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (record,) = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert record["status"] == "ok" and record["spec"]["backend"] == "toy"
    assert record["spec"]["options"] == {"spin": 200}
    assert record["environment"]["device"]["name"] == "toy device"
    assert len(record["measurement"]["samples_ns"]) >= 3
    refused = run_cli("run", "--model", "bert-base-tiny", "--backend", "toy", "-O", "spin=0", env=env)
    assert refused.returncode == 2 and "options.spin: 0 is not allowed" in refused.stderr
