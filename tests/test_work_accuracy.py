"""FLOPs counted from real calls against the analytic formula, minimum bytes, and the accuracy guard."""

import importlib

import pytest
import torch

from bench.core.settings import MeasureSettings
from bench.core.spec import BenchmarkSpec
from bench.runs.worker import run_cell
from models.accuracy import deviation
from models.base import FAMILIES
from models.catalogue import WORKLOADS, get_workload
from models.facts import count_parameters
from models.work import Shape, analytic_flops, count_flops, min_bytes

TRANSFORMER_TINIES = [w.name for w in WORKLOADS.values() if w.tiny_of and w.config["model_type"] != "resnet"]
QUICK = MeasureSettings(
    warmup_iterations=1, warmup_time_s=0, warmup_window=0, min_iterations=3, min_time_s=0, ci_target=0
)


def counted_flops(name, batch, seq, new, dtype=torch.float32):
    workload = get_workload(name)
    spec = BenchmarkSpec(
        name, "cpu", "fp32", batch, seq if workload.takes_tokens else None, new if workload.generates else None
    )
    family = importlib.import_module(FAMILIES[workload.family])
    prepared = family.prepare(workload, dtype=dtype, device="cpu", spec=spec)
    with torch.inference_mode():
        counted = count_flops(prepared.call, lambda: 0)
    return counted, analytic_flops(workload.config, Shape(batch, spec.seq_len, spec.new_tokens))


@pytest.mark.parametrize("name", TRANSFORMER_TINIES)
def test_counted_flops_agree_with_the_formula_within_5_percent(name):
    counted, analytic = counted_flops(name, batch=2, seq=12, new=3)
    assert counted > 0
    assert counted == pytest.approx(analytic, rel=0.05)


@pytest.mark.parametrize("name", ["bert-base-uncased", "gpt2", "vit-base-patch16-224"])
def test_full_size_flops_agree_with_the_formula(name):
    counted, analytic = counted_flops(name, batch=1, seq=32, new=4, dtype=torch.bfloat16)
    assert counted == pytest.approx(analytic, rel=0.05)


def test_published_flop_figure_for_bert_base():
    # 2 x 85M matmul parameters x 128 tokens + attention: ~22.4 GFLOP is the usual figure for BERT-base at 128
    assert analytic_flops(get_workload("bert-base").config, Shape(1, 128, None)) == pytest.approx(22.35e9, rel=0.01)


def test_minimum_bytes_grow_with_generated_tokens_and_context():
    workload = get_workload("qwen2.5-0.5b")
    total, active, embedding = count_parameters(workload)
    one = min_bytes(workload.config, Shape(1, 128, 1), total, active, embedding, 2)
    many = min_bytes(workload.config, Shape(1, 128, 32), total, active, embedding, 2)
    # every decode step re-reads the weights (tied head included) and the KV cache so far
    assert one >= (active + embedding) * 2
    assert many > 31 * (active + embedding) * 2


def test_deviation_metrics():
    ref = torch.tensor([[1.0, 2.0, 3.0], [3.0, 1.0, 0.0]])
    same = deviation(ref.clone(), ref, logits=True)
    assert (
        same["max_abs_error"] == 0 and same["cosine_similarity"] == pytest.approx(1.0) and same["top1_agreement"] == 1
    )
    flipped = deviation(torch.tensor([[1.0, 2.0, 3.0], [0.0, 1.0, 3.0]]), ref, logits=True)
    assert flipped["top1_agreement"] == 0.5 and flipped["max_abs_error"] == 3.0
    assert deviation(ref, ref, logits=False)["top1_agreement"] is None


def test_bf16_records_carry_their_deviation_from_the_fp32_reference():
    bf16 = run_cell(BenchmarkSpec("gpt2-tiny", "cpu", "bf16", 1, 16, 3), QUICK)
    assert bf16.status == "ok", bf16.reason
    acc = bf16.accuracy
    assert acc["reference"].startswith("fp32") and acc["compared_shape"] == [1, 16, 50257]
    assert 0.99 < acc["cosine_similarity"] <= 1.0 and 0 < acc["max_abs_error"] < 1
    assert 0.8 <= acc["top1_agreement"] <= 1.0
    fp32 = run_cell(BenchmarkSpec("gpt2-tiny", "cpu", "fp32", 1, 16, 3), QUICK)
    assert fp32.accuracy is None  # the reference itself
    assert fp32.work["flops_per_call"] == pytest.approx(fp32.work["flops_per_call_analytic"], rel=0.05)
    assert fp32.achieved_flops_per_s() > 0 and fp32.achieved_bytes_per_s() > 0


def test_accuracy_reference_is_skipped_with_a_reason_when_it_cannot_fit(monkeypatch):
    import collections

    import psutil

    from backends.torch_backend import TorchCpuBackend
    from bench.runs.cell_facts import accuracy

    Memory = collections.namedtuple("Memory", "available total")
    monkeypatch.setattr(psutil, "virtual_memory", lambda: Memory(available=1 << 20, total=1 << 30))
    spec = BenchmarkSpec("gpt2-tiny", "cpu", "bf16", 1, 8, 2)
    result = accuracy(get_workload("gpt2-tiny"), spec, TorchCpuBackend, torch.zeros(1, 8, 50257))
    assert result["skipped"].startswith("the fp32 reference needs ~") and "GiB free" in result["skipped"]
