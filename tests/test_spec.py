import pytest

from bench.core.errors import UsageError
from bench.core.settings import MeasureSettings
from bench.core.spec import BenchmarkSpec
from bench.core.sweep import Matrix, load_sweep, parse_int_list, parse_name_list


def test_spec_is_frozen_hashable_and_keyed_by_content():
    a = BenchmarkSpec("gpt2", "cpu", "fp32", 1, 128, 32, {"threads": 2})
    b = BenchmarkSpec("gpt2", "cpu", "fp32", 1, 128, 32, (("threads", 2),))
    assert a == b and hash(a) == hash(b) and a.key == b.key
    assert len({a, b}) == 1
    assert BenchmarkSpec("gpt2", "cpu", batch_size=2).key != BenchmarkSpec("gpt2", "cpu", batch_size=1).key
    with pytest.raises(Exception):
        a.batch_size = 3  # frozen


def test_spec_round_trips_through_dict():
    spec = BenchmarkSpec("bert-base-uncased", "cpu", "bf16", 4, 64, None, {"threads": 1})
    assert BenchmarkSpec.from_dict(spec.to_dict()) == spec
    assert spec.to_dict()["options"] == {"threads": 1}


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": -3}, "batch_size"),
        ({"seq_len": 0}, "seq_len"),
        ({"new_tokens": 0}, "new_tokens"),
        ({"precision": "fp2"}, "precision"),
        ({"batch_size": True}, "batch_size"),
        ({"options": {"threads": [1]}}, "options.threads"),
    ],
)
def test_spec_rejects_bad_fields_naming_them(kwargs, field):
    with pytest.raises(UsageError) as err:
        BenchmarkSpec("gpt2", "cpu", **kwargs)
    assert str(err.value).startswith(field + ":")
    assert "expected" in str(err.value)


def test_measure_settings_validate():
    with pytest.raises(UsageError, match="max_iterations"):
        MeasureSettings(min_iterations=10, max_iterations=5)
    with pytest.raises(UsageError, match="min_time_s"):
        MeasureSettings(min_time_s=-1)
    with pytest.raises(UsageError, match="timeout_s"):
        MeasureSettings(timeout_s=0)
    assert MeasureSettings.from_dict({"min_time_s": 0.5}).min_time_s == 0.5


def test_value_lists_accept_repeats_and_commas():
    assert parse_int_list("--batch-size", ["1,4", "8", "4"]) == (1, 4, 8)
    assert parse_name_list("--model", ["a, b", "a"]) == ("a", "b")
    for bad in (["0"], ["-1"], ["x"], ["1.5"], [""]):
        with pytest.raises(UsageError, match="--batch-size"):
            parse_int_list("--batch-size", bad)


def test_matrix_expands_to_product():
    m = Matrix(models=("a", "b"), backends=("cpu",), precisions=("fp32", "bf16"), batch_sizes=(1, 2))
    cells = m.cells()
    assert len(cells) == 8 and len(set(cells)) == 8


def test_sweep_file(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        '[measure]\nmin_time_s = 0.5\n\n[[matrix]]\nmodel = ["gpt2"]\nbatch_size = [1, 2]\nthreads = [1, 2]\n'
        '\n[[matrix]]\nmodel = "bert-base"\nprecision = ["bf16"]\n'
    )
    sweep = load_sweep(path)
    assert sweep.measure.min_time_s == 0.5
    assert len(sweep.matrices[0].cells()) == 4
    assert {c.option("threads") for c in sweep.matrices[0].cells()} == {1, 2}
    assert sweep.matrices[1].cells()[0].precision == "bf16"


@pytest.mark.parametrize(
    "text, message",
    [
        ("model = [\n", "not valid TOML"),
        ('modle = ["gpt2"]\n', "modle"),
        ('[[matrix]]\nmodel = ["gpt2"]\nbatch_size = [0]\n', "matrix[0].batch_size: 0"),
        ('[[matrix]]\nbackend = ["cpu"]\n', "matrix[0].model: missing"),
        ('[measure]\nmin_time_s = "x"\n[[matrix]]\nmodel="gpt2"\n', "measure.min_time_s"),
        ('[measure]\nwarmup = 3\n[[matrix]]\nmodel="gpt2"\n', "measure.warmup"),
        ("", "no cells"),
    ],
)
def test_sweep_file_errors_are_one_line_and_name_the_field(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UsageError) as err:
        load_sweep(path)
    assert message in str(err.value)
    assert "\n" not in str(err.value).strip()
