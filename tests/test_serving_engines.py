"""The serving model's engines, modes and speculative decoding: capabilities bound the search, bad combinations are
one-line errors before anything is projected, and the published corpus covers what the issue asks of it."""

from __future__ import annotations

import json

import pytest

from bench.cli import main
from bench.core.errors import UsageError
from bench.projection.engines import default_engine, get_engine, load_engines
from bench.projection.project import ServingQuery, project, resolve
from bench.projection.published import load_published
from bench.projection.query import arch_of_model

DS = dict(model="deepseek-r1", input_tokens=4096, output_tokens=1024, tpot_slo_ms=50)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(model="deepseek-r1", profile="h100", engine="vlm"), "did you mean 'vllm'"),
        (dict(model="deepseek-r1", profile="h100", engine="mindie"), "runs on npu devices"),
        (dict(model="llama-3.1-70b", profile="h100", engine="deepseek"), "does not serve dense"),
        (
            dict(
                model="deepseek-r1",
                profile="ascend-910c",
                precision="int8",
                engine="cloudmatrix-infer",
                mode="colocated",
            ),
            "colocated",
        ),
        (dict(model="deepseek-r1", profile="h100", spec_tokens=2, acceptance_length=3.5), "acceptance_length"),
        (dict(model="deepseek-r1", profile="h100", spec_tokens=2, acceptance_length=0.5), "acceptance_length"),
        (dict(model="llama-3.1-70b", profile="h100", spec_tokens=2, acceptance_length=2, spec_method="mtp"), "mtp"),
        (dict(model="deepseek-r1", profile="h100", mode="both"), "mode"),
        (dict(model="deepseek-r1", profile="h100", search="all"), "search"),
    ],
)
def test_engine_combinations_that_cannot_run_are_one_line_errors(kwargs, match):
    with pytest.raises(UsageError, match=match) as caught:
        resolve(ServingQuery(**{"chips": 16, "precision": "fp8", **kwargs}))
    assert "\n" not in str(caught.value)


def test_cli_refuses_a_bad_engine_before_writing_anything(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["run", "--model", "deepseek-r1", "--backend", "simulated", "--profile", "h100", "--precision", "fp8",
               "-O", "spec_tokens=2", "-O", "acceptance_length=4", "--out", str(out), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "acceptance_length" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert main(["simulate", "--model", "deepseek-r1", "--profile", "h100", "--engine", "mindie"]) == 2
    assert "runs on npu devices" in capsys.readouterr().err


def test_the_default_engine_is_the_best_published_stack_of_the_device_kind():
    assert default_engine("gpu", "moe_mla").key == "trtllm"
    assert default_engine("npu", "moe_mla").key == "cloudmatrix-infer"
    # CloudMatrix-Infer serves only DeepSeek-style models: a dense model on Ascend falls to a general engine
    assert default_engine("npu", "dense").key in {"mindie", "vllm-ascend", "sglang-ascend"}


def test_the_search_visits_only_what_the_engine_runs():
    """vLLM-Ascend's capabilities for dense models have no decode pipeline parallelism; with --search any the same
    query may use any split and is labelled a what-if."""
    q = ServingQuery("llama-3.1-70b", "ascend-910b3", chips=16, precision="int8", engine="vllm-ascend",
                     mode="disaggregated", tpot_slo_ms=100)  # fmt: skip
    caps = get_engine("vllm-ascend").capabilities("dense")
    engine_run = project(q, bands=False)
    decode = engine_run.decode
    assert decode is not None
    if not caps.pp_decode:
        assert decode.parallel.pp == 1
    what_if = project(ServingQuery(**{**q.__dict__, "search": "any"}), bands=False)
    assert what_if.decode.tokens_per_s_per_chip >= decode.tokens_per_s_per_chip * 0.999
    assert what_if.to_dict()["engine"]["capabilities"].startswith("unconstrained")
    assert isinstance(engine_run.to_dict()["engine"]["capabilities"], dict)


def test_a_slower_engine_projects_fewer_tokens_on_the_same_silicon():
    """The software lever: the same chips, model and bounds, a general engine against the best published stack."""
    best = project(ServingQuery(profile="ascend-910c", chips=32, precision="int8", mode="disaggregated", **DS),
                   bands=False)  # fmt: skip
    general = project(ServingQuery(profile="ascend-910c", chips=32, precision="int8", engine="vllm-ascend",
                                   mode="disaggregated", **DS), bands=False)  # fmt: skip
    assert best.resolved.engine.key == "cloudmatrix-infer"
    assert 0 < general.headline()["output_tokens_per_s_per_chip"] < best.headline()["output_tokens_per_s_per_chip"]


def test_colocated_and_disaggregated_heads_follow_the_mode():
    base = dict(profile="h100", chips=16, precision="fp8", engine="sglang", **DS)
    colocated = project(ServingQuery(mode="colocated", **base), bands=False)
    split = project(ServingQuery(mode="disaggregated", **base), bands=False)
    c, d = colocated.headline(), split.headline()
    assert c["output_tokens_per_s_per_chip"] == c["colocated_tokens_per_s_per_chip"]
    assert d["output_tokens_per_s_per_chip"] == d["decode_tokens_per_s_per_chip"]
    point = colocated.colocated
    assert point.tpot_s * 1e3 <= 50 and point.prefill_tokens_per_step > 0
    # a colocated step also prefills: at the same batch it is slower than a decode-only step
    assert point.step.flops > 0 and c["tpot_ms"] <= 50


def test_speculation_costs_a_draft_and_pays_with_accepted_tokens():
    base = dict(model="llama-3.1-70b", profile="h100", chips=8, precision="fp8", engine="vllm",
                mode="disaggregated", tpot_slo_ms=30)  # fmt: skip
    plain = project(ServingQuery(**base), bands=False).decode
    eagle = project(ServingQuery(spec_tokens=3, acceptance_length=2.5, **base), bands=False).decode
    drafted = project(
        ServingQuery(spec_tokens=3, acceptance_length=2.5, spec_method="draft", draft_model="llama-3.2-1b", **base),
        bands=False,
    ).decode
    assert eagle.step.draft_s > 0 and drafted.step.draft_s > 0
    assert eagle.tokens_per_s_per_chip > plain.tokens_per_s_per_chip
    # no acceptance beyond the bonus token: all cost, no gain
    none = project(ServingQuery(spec_tokens=3, acceptance_length=1.0, **base), bands=False).decode
    assert none.tokens_per_s_per_chip < plain.tokens_per_s_per_chip


def test_expert_load_balancing_is_an_engine_capability():
    q = ServingQuery(profile="h100", chips=32, precision="fp8", mode="disaggregated", parallel="tp=1,ep=32",
                     **DS)  # fmt: skip
    balanced = resolve(q).deployment
    assert balanced.eplb == get_engine("trtllm").capabilities("moe_mla").eplb
    with_eplb = project(q, bands=False).decode.tokens_per_s_per_chip
    eff = balanced.efficiency
    if balanced.eplb and eff.moe_imbalance_eplb < eff.moe_imbalance:
        from dataclasses import replace

        off = resolve(q).deployment
        off = replace(off, options=replace(off.options, eplb=False))
        assert not off.eplb
        from bench.projection.search import search_decode

        unbalanced = search_decode(off, q.chips, q.input_tokens, q.output_tokens, q.tpot_slo_ms / 1e3)
        assert unbalanced is None or unbalanced.tokens_per_s_per_chip < with_eplb


def test_the_corpus_covers_kinds_families_modes_and_engines():
    published = load_published()
    rows = published.rows
    assert len(rows) >= 30 and len({r.source_group for r in rows}) >= 8
    kinds = {get_engine(r.engine).device_kind for r in rows}
    families = {"moe" if arch_of_model(r.model).moe_layers else "dense" for r in rows}
    phases = {r.phase for r in rows}
    assert kinds == {"gpu", "npu"} and families == {"moe", "dense"}
    assert {"colocated", "decode"} <= phases and len({r.engine for r in rows}) >= 4
    assert published.held_out() and published.for_fitting()
    assert all(r.engine in load_engines() for r in rows)


def test_simulate_json_names_engine_mode_and_speculation(capsys):
    rc = main(["simulate", "--model", "llama-3.1-70b", "--profile", "h100", "--chips", "8", "--precision", "fp8",
               "--engine", "vllm", "--spec-tokens", "3", "--acceptance-length", "2.5", "--format", "json"])  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["engine"]["key"] == "vllm" and out["mode"] == "colocated"
    assert out["speculation"]["tokens"] == 3 and out["colocated"]["tpot_ms"] > 0
    assert 0 < out["engine"]["kernels"] <= 1.2
