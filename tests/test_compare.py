"""The regression gate on seeded synthetic latency (skewed and heavy-tailed), then end to end via the CLI."""

import json
import shutil

import numpy as np
import pytest
from conftest import run_cli, run_here

from bench.analysis.compare import compare_records, holm, noise_floors
from bench.core.errors import UsageError
from bench.core.record import Measurement, Record
from bench.core.spec import BenchmarkSpec


def record(samples, batch=1, env=None, simulated=False, status="ok"):
    spec = BenchmarkSpec("gpt2-tiny", "cpu", "fp32", batch, 16, 8)
    if status != "ok":
        return Record(spec, status, reason="x")
    m = Measurement(
        samples_ns=[int(s) for s in samples],
        loop_wall_ns=int(sum(samples)),
        items_per_iteration=batch,
        warmup_iterations=0,
        warmup_ns=0,
        stopped_by="min_reached",
        settings={},
    )
    return Record(
        spec,
        "ok",
        measurement=m,
        simulated=simulated,
        environment=env or {"cpu": {"model": "x"}, "threads": {"torch_intra_op": 2}},
    )


def lognormal(rng, n, scale=1.0, sigma=0.1):
    return rng.lognormal(np.log(1e6 * scale), sigma, n)


def heavy_tailed(rng, n, scale=1.0):
    return 1e6 * scale * (1 + rng.pareto(3.0, n) * 0.1)


def verdict(base, cur, **kw):
    return compare_records([record(base)], [record(cur)], **kw).cells[0].verdict


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([]) == []


@pytest.mark.parametrize("draw", [lognormal, heavy_tailed])
def test_false_positive_rate_over_many_aa_trials_is_below_alpha(draw):
    rng = np.random.default_rng(21)
    trials = 200
    verdicts = [verdict(draw(rng, 300), draw(rng, 300)) for _ in range(trials)]
    assert verdicts.count("regression") / trials <= 0.01
    assert verdicts.count("improvement") / trials <= 0.01
    assert verdicts.count("no change") / trials >= 0.8  # precise enough to say so most of the time


@pytest.mark.parametrize("draw", [lognormal, heavy_tailed])
def test_power_to_catch_a_10_percent_slowdown(draw):
    rng = np.random.default_rng(22)
    trials = 100
    caught = sum(verdict(draw(rng, 300), draw(rng, 300, scale=1.10)) == "regression" for _ in range(trials))
    assert caught / trials >= 0.8


def test_speedup_is_an_improvement_and_small_noisy_samples_are_inconclusive():
    rng = np.random.default_rng(23)
    assert verdict(lognormal(rng, 300), lognormal(rng, 300, scale=0.8)) == "improvement"
    assert verdict(lognormal(rng, 8, sigma=0.5), lognormal(rng, 8, sigma=0.5, scale=1.1)) == "inconclusive"


def test_noise_floor_raises_the_threshold():
    rng = np.random.default_rng(24)
    base, cur = lognormal(rng, 400, sigma=0.05), lognormal(rng, 400, scale=1.10, sigma=0.05)
    key = record(base).spec.key
    assert verdict(base, cur) == "regression"
    assert verdict(base, cur, noise={key: 0.05}) != "regression"  # 3 x 5% = 15% needed
    floors = noise_floors([[record(base)], [record(base * 1.02)], [record(base * 0.99)]])
    assert 0.005 < floors[key] < 0.05


def test_environment_mismatch_is_refused_unless_allowed():
    rng = np.random.default_rng(25)
    other = {"cpu": {"model": "x"}, "threads": {"torch_intra_op": 1}}
    with pytest.raises(UsageError, match=r"different environments \(threads\).*--allow-env-mismatch"):
        compare_records([record(lognormal(rng, 50))], [record(lognormal(rng, 50), env=other)])
    result = compare_records(
        [record(lognormal(rng, 50))], [record(lognormal(rng, 50), env=other)], allow_env_mismatch=True
    )
    assert result.environment_differences == ["threads"] and len(result.cells) == 1


def test_simulated_only_against_simulated_and_failed_cells_are_listed():
    rng = np.random.default_rng(26)
    result = compare_records([record(lognormal(rng, 50))], [record(lognormal(rng, 50), simulated=True)])
    assert result.cells == [] and "simulated" in result.not_compared[0][1]
    result = compare_records([record(lognormal(rng, 50))], [record([], status="failed")])
    assert result.cells == [] and "no ok record in the current" in result.not_compared[0][1]


# --- end to end -------------------------------------------------------------------------------------------

RUN = [
    "run",
    "--model",
    "bert-base",
    "--seq-len",
    "64",
    "--warmup-iterations",
    "2",
    "--warmup-time",
    "0",
    "--warmup-window",
    "0",
    "--min-iterations",
    "15",
    "--min-time",
    "0",
    "--ci-target",
    "0",
]


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    """Two runs of the same cell (A/A), one after the other; the cells in this process (what is compared are two
    record sets; separate processes are the slow tier's `one_cpu_run` and docs/CI.md's A/A figures)."""
    root = tmp_path_factory.mktemp("cmp")
    sweep = '[[matrix]]\nmodel = "bert-base"\nseq_len = 64\n'
    for name in ("a", "b"):
        run_here(sweep, root / name, min_iterations=15, min_time_s=0.0)
    return root


@pytest.fixture(scope="module")
def one_cpu_run(three_runs):
    """The same cell with one CPU instead of two: a real slowdown (and a different environment)."""
    if shutil.which("taskset") is None:
        pytest.skip("taskset is not installed")
    slow = run_cli(*RUN, "--out", str(three_runs / "one-cpu"), prefix=["taskset", "-c", "0"])
    assert slow.returncode == 0, slow.stderr[-1500:]
    return three_runs / "one-cpu"


def test_cli_aa_comparison_passes(three_runs):
    proc = run_cli("compare", str(three_runs / "a"), str(three_runs / "b"), "--min-effect", "0.25")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "REGRESSION" not in proc.stdout and "0 regression(s) in 1 compared cell(s)" in proc.stdout


def test_cli_environment_mismatch_is_one_line_exit_2(three_runs, tmp_path):
    other = tmp_path / "other-machine"  # run b as if measured elsewhere: another fingerprint (another CPU count)
    other.mkdir()
    lines = []
    for line in (three_runs / "b" / "records.jsonl").read_text().splitlines():
        record = json.loads(line)
        record["environment"]["cpu"]["usable_cores"] = 1
        record["environment"]["fingerprint"] = "0" * 16
        lines.append(json.dumps(record))
    (other / "records.jsonl").write_text("\n".join(lines) + "\n")
    proc = run_cli("compare", str(three_runs / "a"), str(other))
    assert proc.returncode == 2
    assert "different environments" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_fewer_threads_is_a_regression_with_exit_1(three_runs, one_cpu_run):
    proc = run_cli("compare", str(three_runs / "a"), str(one_cpu_run), "--allow-env-mismatch", "--format", "json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    [cell] = data["cells"]
    assert cell["verdict"] == "regression" and cell["ratio"] > 1.25
    md = run_cli("compare", str(three_runs / "a"), str(one_cpu_run), "--allow-env-mismatch", "-f", "md")
    assert md.stdout.startswith("| cell |") and "REGRESSION" in md.stdout


def test_cli_noise_writes_floors_that_compare_reads(three_runs, tmp_path):
    base = tmp_path / "a"
    shutil.copytree(three_runs / "a", base)
    proc = run_cli("noise", str(base), str(three_runs / "b"))
    assert proc.returncode == 0, proc.stderr
    floors = json.loads((base / "noise.json").read_text())["noise_floors"]
    assert len(floors) == 1
    assert run_cli("noise", str(base)).returncode == 2
