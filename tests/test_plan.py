import pytest

from backends import registry
from backends.base import Availability, Capabilities
from backends.torch_backend import TorchCpuBackend
from bench.core.errors import UsageError
from bench.core.sweep import Matrix, Sweep
from bench.runs.plan import plan_sweep


def plan(**kw):
    return plan_sweep(Sweep((Matrix(**kw),)))


def test_aliases_resolve_and_defaults_fill_generation_length():
    cells = plan(models=("bert-base-tiny", "gpt2-tiny"), backends=("cpu",), seq_lens=(32,)).cells
    assert [c.workload for c in cells] == ["bert-base-uncased-tiny", "gpt2-tiny"]
    assert cells[0].new_tokens is None  # encoders do not generate
    assert cells[1].new_tokens == 8  # the workload's default generation length


def test_new_tokens_apply_to_generation_workloads_only():
    cells = plan(models=("bert-base", "gpt2"), backends=("cpu",), new_tokens=(16,)).cells
    assert [c.new_tokens for c in cells] == [None, 16]


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"models": ("no-such-model",)}, "model: 'no-such-model' is not allowed; expected one of"),
        ({"models": ("gpt2",), "backends": ("tpu",)}, "backend: 'tpu' is not allowed; expected one of cpu"),
        ({"models": ("gpt2",), "precisions": ("fp16",)}, "precision (backend cpu): 'fp16'"),
        ({"models": ("bert-base",), "seq_lens": (513,)}, "seq_len: 513 is not allowed for bert-base-uncased"),
        ({"models": ("gpt2",), "seq_lens": (1000,), "new_tokens": (32,)}, "seq_len + new_tokens <= 1024"),
        ({"models": ("gpt2",), "options": ((("threads", 0),),)}, "options.threads: 0"),
        ({"models": ("gpt2",), "options": ((("thread", 2),),)}, "options.thread: 'thread' is not an option"),
    ],
)
def test_bad_cells_are_refused_before_anything_runs(kw, message):
    with pytest.raises(UsageError) as err:
        plan(**kw)
    assert message in str(err.value)


class StandInMissingDevice(TorchCpuBackend):
    """Stand-in for a device that is absent here: its probe says so, as a real adapter's would."""

    name = "stand-in-npu"
    capabilities = Capabilities(precisions=("fp32",))

    @classmethod
    def probe(cls):
        return Availability(False, "no stand-in device present")


@pytest.fixture
def registry_with_missing_device(monkeypatch):
    import sys
    import types

    module = types.ModuleType("stand_in_backend_module")
    module.StandInMissingDevice = StandInMissingDevice
    monkeypatch.setitem(sys.modules, "stand_in_backend_module", module)
    monkeypatch.setitem(registry.BACKENDS, "stand-in-npu", "stand_in_backend_module:StandInMissingDevice")


def test_wildcard_keeps_available_backends_and_says_why_others_are_left_out(registry_with_missing_device):
    result = plan(models=("gpt2-tiny",), backends=("*",))
    # onnxruntime: prefill only, and gpt2-tiny generates 8 tokens; simulated devices are not in "*"
    assert {c.backend for c in result.cells} == {"cpu"}
    assert result.skipped_backends["stand-in-npu"] == "no stand-in device present"
    assert not result.unavailable
    assert {(spec.backend, reason.split(",")[0]) for spec, reason in result.left_out} == {
        ("onnxruntime", "new_tokens: 8 is not allowed for gpt2-tiny on backend onnxruntime")
    }


def test_explicit_unavailable_backend_plans_unavailable_cells_with_the_reason(registry_with_missing_device):
    result = plan(models=("gpt2-tiny",), backends=("stand-in-npu", "cpu"))
    assert [c.backend for c in result.cells] == ["stand-in-npu", "cpu"]
    assert list(result.unavailable.values()) == ["no stand-in device present"]
    assert [c.backend for c in result.runnable] == ["cpu"]


def test_default_suite_plans_on_this_machine():
    from bench.cli.run_sweep_args import default_suite

    cells = plan_sweep(default_suite()).cells
    assert {c.workload for c in cells} == {"bert-base-uncased", "resnet-50", "gpt2", "qwen2.5-0.5b", "deepseek-v3"}
    assert all(c.seq_len is None for c in cells if c.workload == "resnet-50")
    assert {c.backend for c in cells} <= {"cpu", "onnxruntime", "cuda", "simulated"}
    simulated = [c for c in cells if c.backend == "simulated"]
    assert {c.option("profile") for c in simulated} == {"ascend-910b2", "h100"}
    assert all(c.new_tokens in (None, 1) for c in cells if c.backend == "onnxruntime")
