"""The catalogue against the published model cards, built on the meta device (no weights allocated)."""

import json

import pytest

from bench.core.errors import UsageError
from models.catalogue import WORKLOADS, get_workload
from models.facts import count_parameters, describe
from models.weights import check_weights_dir

FULL_SIZE = [w for w in WORKLOADS.values() if w.tiny_of is None]


def test_every_full_size_entry_has_a_tiny_variant_of_the_same_family():
    tinies = {w.tiny_of: w for w in WORKLOADS.values() if w.tiny_of}
    for entry in FULL_SIZE:
        tiny = tinies[entry.name]
        assert tiny.config["model_type"] == entry.config["model_type"]
        assert tiny.family == entry.family and tiny.task == entry.task


@pytest.mark.parametrize("entry", FULL_SIZE, ids=[w.name for w in FULL_SIZE])
def test_parameter_count_matches_the_model_card_within_1_percent(entry):
    total, active, embedding = count_parameters(entry)
    assert total == pytest.approx(entry.published_parameters, rel=0.01)
    if entry.published_active:
        # Cards round to two significant figures, and vendors differ on whether the input embedding table counts
        # (DeepSeek leaves it out, Qwen keeps it in): one of the two figures must match.
        ratios = [active / entry.published_active, (active + embedding) / entry.published_active]
        assert min(abs(r - 1) for r in ratios) < 0.025, ratios
    else:
        assert active + embedding == total


def test_facts_of_the_671b_model_need_no_memory():
    facts = describe(get_workload("deepseek-v3"), machine_memory_bytes=24 << 30)
    assert facts.total_parameters > 670e9
    assert facts.weight_bytes["bf16"] == 2 * facts.total_parameters
    assert not any(facts.fits_here.values()) and set(facts.fits_here) >= {"fp32", "bf16", "int8", "int4"}
    small = describe(get_workload("bert-base-uncased"), machine_memory_bytes=24 << 30)
    assert small.fits_here["fp32"] is True


def write_checkpoint(path, config, files=("model.safetensors",)):
    """A checkpoint directory whose safetensors files name one tensor in their header (the check reads headers
    only; pickle files are junk bytes, never read)."""
    import struct

    path.mkdir()
    (path / "config.json").write_text(json.dumps(config))
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    for name in files:
        data = struct.pack("<Q", len(header)) + header + b"\0" * 4 if name.endswith(".safetensors") else b"x"
        (path / name).write_bytes(data)
    return str(path)


def test_weights_directory_checks(tmp_path):
    entry = get_workload("all-minilm-l6-v2")
    good = write_checkpoint(tmp_path / "good", dict(entry.config))
    check_weights_dir(entry, good)
    wrong = write_checkpoint(tmp_path / "wrong", {**entry.config, "hidden_size": 768})
    with pytest.raises(UsageError, match="another architecture.*hidden_size = 768, expected 384"):
        check_weights_dir(entry, wrong)
    pickled = write_checkpoint(tmp_path / "pickled", dict(entry.config), files=("pytorch_model.bin",))
    with pytest.raises(UsageError, match=r"only pickle checkpoints \(pytorch_model.bin\)"):
        check_weights_dir(entry, pickled)
    with pytest.raises(UsageError, match="is not a directory"):
        check_weights_dir(entry, str(tmp_path / "absent"))


def test_the_committed_parameter_counts_are_those_of_the_configs():
    """models/parameter_counts.json (what `bench list` reads instead of building every model) equals a fresh
    meta-device count of every entry; refresh it with `python -m models.facts --write`."""
    import json

    from models.facts import COUNTS_FILE, fresh_counts

    assert json.loads(COUNTS_FILE.read_text()) == fresh_counts()
