"""The catch-up estimate an analyst can quote: log-symmetric bands, correlated ratios, "best" only within the
accuracy budget and outside noise, published quality; scenarios with both sides at their best (bench catchup):
order-free attribution that adds up, chips to match above the memory minimum, stability over declared ranges,
the trajectory; and the report that explains itself -- rendered in headless Chromium where it is installed."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess

import pytest
from conftest import cli_here, run_cli, run_here

from bench.analysis.catchup import AccuracyBudget, CatchUp, Point, ratio
from bench.analysis.gap.analysis import analyse
from bench.analysis.gap.attribution import check_efficiency, shapley
from bench.analysis.gap.scenario import load_scenarios, scenario_of
from bench.core.record import Record
from bench.core.spec import BenchmarkSpec


def test_a_projection_that_under_predicts_by_90_percent_has_a_band_that_covers_the_truth():
    from backends.trace_projection import _band

    truth_s = 1.0
    predicted_s = 0.1  # a 90% under-prediction of the latency: predicted / true - 1 = -0.9
    band = _band({"latency_s": predicted_s}, {"error": predicted_s / truth_s - 1}, {"key": "x"})
    assert band["low_s"] <= truth_s <= band["high_s"] * (1 + 1e-12)
    assert band["factor"] == pytest.approx(10.0)  # log-symmetric: a factor of 10, not 1 + 0.9
    from bench.core.stats import log_symmetric_factor

    assert log_symmetric_factor(-0.9) == pytest.approx(10.0)


def _point(value, low, high, simulated=True, method="serving", error=0.2, technique="bf16", accuracy=None):
    spec = BenchmarkSpec("gpt2", "simulated", "bf16" if technique == "bf16" else "int8")
    record = Record(spec, "ok", simulated=simulated, accuracy=accuracy)
    return Point(record, "dev", technique, value, low, high, simulated, "tok/s", method, error)


def test_ratios_of_one_model_are_not_treated_as_independent_and_say_what_they_combine():
    a, b = _point(200, 150, 260), _point(100, 75, 130)
    same = ratio(a, b)
    assert same.kind == "simulated/simulated" and "one model" in same.combined
    assert same.low <= 2.0 <= same.high
    independent = ratio(_point(200, 150, 260, simulated=False, method="measured"), b)
    assert independent.kind == "measured/simulated" and independent.combined == "independent"
    assert independent.low == pytest.approx(150 / 130)


def test_best_is_never_outside_the_accuracy_budget_nor_a_gain_whose_interval_includes_one():
    reference = _point(100, 98, 102)
    noisy = _point(130, 95, 170, technique="int8", accuracy={"cosine_similarity": 0.9999, "top1_agreement": 1.0})
    inaccurate = _point(300, 290, 310, technique="int4", accuracy={"cosine_similarity": 0.90, "top1_agreement": 0.7})
    unknown = _point(250, 240, 260, technique="fp8", accuracy={"reference": "x", "skipped": "not measured"})
    catch = CatchUp(
        ("gpt2",),
        "tok/s",
        "f",
        "c",
        "bf16",
        _point(150, 140, 160),
        reference,
        techniques=[reference, noisy, inaccurate, unknown],
        budget=AccuracyBudget(),
    )
    assert catch.best(catch.techniques) is reference  # nothing qualifies: the reference stays best
    assert "includes 1" in catch.eligibility(noisy)[1]
    assert "cosine" in catch.eligibility(inaccurate)[1] and "unknown" in catch.eligibility(unknown)[1]
    good = _point(180, 170, 190, technique="int8", accuracy={"cosine_similarity": 0.999, "top1_agreement": 0.99})
    catch.techniques.append(good)
    assert catch.best(catch.techniques) is good


def test_quality_scores_are_sourced_and_compare_at_equal_quality():
    from models.quality import equal_or_better, scores_of

    v3 = scores_of("deepseek-v3")
    assert {"MMLU", "MMLU-Pro", "GPQA-Diamond"} <= set(v3) and all(s.source and s.date for s in v3.values())
    assert equal_or_better("deepseek-v3", "llama-3.1-405b")[0] is True
    assert equal_or_better("llama-3.1-8b", "llama-3.1-405b")[0] is False
    assert equal_or_better("gpt2", "llama-3.1-405b")[0] is None


# -- scenarios: both sides at their best --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def analyses():
    """Every shipped scenario analysed once (central, ends, attribution, chips to match; no stability sweep)."""
    return {name: analyse(s, stability=False) for name, s in load_scenarios().items()}


def test_shapley_shares_are_order_free_and_add_up_exactly():
    gains = {"a": 2.0, "b": 3.0, "c": 0.5}
    interaction = lambda s: 1.5 if {"a", "b"} <= s else 1.0  # noqa: E731
    value = lambda s: 10 * math.prod(gains[p] for p in s) * interaction(s)  # noqa: E731
    factors = shapley(["a", "b", "c"], value)
    assert check_efficiency(factors, value(frozenset("abc")) / value(frozenset()))
    assert factors["c"] == pytest.approx(0.5) and factors["a"] / 2 == pytest.approx(factors["b"] / 3)
    assert shapley(["c", "b", "a"], value) == pytest.approx(factors)  # the players' order does not matter
    assert shapley(["a", "b"], lambda s: None if s == {"a"} else 1.0) is None  # a subset without a value


def test_every_scenario_attribution_multiplies_to_its_total_and_chips_to_match_respect_memory(analyses):
    for name, a in analyses.items():
        for role in ("frontier", "constrained"):
            attribution = a.shapley[role]
            best, reference = a.rate(role, "best"), a.rate(role, "reference")
            if attribution["factors"] and reference:
                assert check_efficiency(attribution["factors"], best / reference), (name, role)
                assert attribution["method"] in ("shapley", "sequential") and set(attribution["factors"]) == set(
                    a.levers
                )
        split = a.hardware_split
        if split["factors"] and a.hardware_gap.value:
            assert check_efficiency(split["factors"], 1 / a.hardware_gap.value), name
        match = a.chips_to_match
        assert match["chips"] and match["chips"] >= match["memory_min_chips"] >= 1, name
        served = match["tokens_per_s_per_chip"] * match["chips"]
        assert served >= match["target_tokens_per_s"] * (1 - 1e-9), name
        gap = a.gap_at_best
        assert gap.low <= gap.value <= gap.high and a.gap_at_best.value > 0


def test_the_gap_at_best_compares_both_sides_at_their_best(analyses):
    a = analyses["h800-vs-h100"]
    f, c = a.served["frontier"]["best"]["central"], a.served["constrained"]["best"]["central"]
    assert a.gap_at_best.value == pytest.approx(f.rate / c.rate)
    assert f.engine == c.engine == "trtllm" and f.model == c.model == "deepseek-r1"
    catch = a.catch_up_from_reference.value
    assert catch == pytest.approx(c.rate / a.rate("frontier", "reference"))
    assert catch > a.gap_at_best.value  # "catch-up" credits the constrained side with the frontier's own levers
    system = analyses["cloudmatrix384-vs-gb200-nvl72"]
    assert system.per_system.value == pytest.approx(system.gap_at_best.value * 72 / 384)
    assert system.power["constrained"]["w"] == 559000 and "wall" in system.power["constrained"]["what"]
    assert all(system.cost_per_million_tokens.values())


def test_the_software_lever_comes_from_the_engines(analyses):
    a = analyses["ascend-910c-vs-h100"]
    assert a.software["constrained"]["best"]["engine"] == "cloudmatrix-infer"
    assert a.software["constrained"]["reference"]["engine"] == "vllm-ascend"
    assert a.software["frontier"]["best"]["engine"] == "trtllm" and a.shapley["constrained"]["factors"]["software"] > 1


def test_the_summary_is_five_sentences_whose_figures_are_the_tables(analyses):
    from bench.output.catchup import headline_rows, summary_sentences

    for a in analyses.values():
        d = a.to_dict()
        sentences = summary_sentences(d)
        assert len(sentences) <= 5
        rows = {row[0]: row[1] for row in headline_rows(d)}
        assert rows["gap at best"] in sentences[0]
        if d["hardware_gap"]["value"]:
            assert rows["hardware gap"] in sentences[1]
        assert not any("interconnect." in s for s in sentences)  # flagged names live in the appendix


def test_trajectory_dates_each_generation_and_labels_announced_chips():
    done = run_cli("catchup", "--trajectory", "ascend-910c-vs-h100", "--format", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    points = data["trajectory"]
    assert {"device", "date", "status", "tokens_per_s_per_chip", "tokens_per_s_per_system"} <= set(points[0])
    by_device = {p["device"]: p for p in points}
    assert by_device["rubin"]["status"] == "ANNOUNCED" and by_device["ascend-950dt"]["status"] == "ANNOUNCED"
    assert by_device["h100"]["status"] == "OFF" and by_device["h100"]["tokens_per_s_per_chip"] > 0
    assert by_device["ascend-960"]["search"] == "any" and "what-if" in by_device["ascend-960"]["note"]
    assert all(g["gap"] is None or g["gap"] > 0 for g in data["gap_over_time"])


def _fields(**changes):
    fields = {"title": "t", "frontier": "h100", "constrained": "h800", "chips": 16, "model": "deepseek-r1",
              "reference_model": "llama-3.1-405b", "precision": "fp8", "reference_precision": "bf16",
              "input_tokens": 1024, "output_tokens": 256, "tpot_slo_ms": 150}  # fmt: skip
    fields.update(changes)
    return {k: v for k, v in fields.items() if v is not None}


@pytest.mark.parametrize(
    "changes,match",
    [
        (dict(constrained=None), "constrained is missing"),
        (dict(constrained="no-such-chip"), "did you mean|not allowed"),
        (dict(chips=-1), "chips: -1 is not allowed"),
        (dict(tpot_slo_ms=0), "tpot_slo_ms: 0 is not allowed"),
        (dict(precision={"frontier": "fp8", "constrained": "fp2"}), "precision"),
        (dict(ranges={"chips": [0]}), "ranges.chips: 0"),
        (dict(ranges={"batch": [1]}), "ranges.batch"),
        (dict(engines={"constrained": "mindie"}), "runs on npu devices"),
        (dict(software={"value": 1.0}), "software: no longer a figure"),
    ],
)
def test_a_bad_scenario_is_one_line_naming_the_field(changes, match):
    from bench.core.errors import UsageError

    with pytest.raises(UsageError, match=match) as caught:
        scenario_of("x", _fields(**changes))
    assert "\n" not in str(caught.value) and "scenario x" in str(caught.value)


def test_catchup_json_interface_and_a_setting_where_nothing_fits(tmp_path):
    """The JSON interface through the CLI on a small scenario whose range holds a bound nothing meets: that setting
    is reported with the reason, never fatal; a scenario whose own setting fits nothing is one line, exit 2."""
    common = (
        'title = "t"\nfrontier = "h100"\nconstrained = "h800"\nchips = 16\nmodel = "deepseek-r1"\n'
        'reference_model = "llama-3.1-405b"\nprecision = "fp8"\nreference_precision = "bf16"\ninput_tokens = 1024\n'
        "output_tokens = 256\n"
    )
    scenarios = tmp_path / "s.toml"
    scenarios.write_text(
        f"[tight]\n{common}tpot_slo_ms = 150\nranges = {{ tpot_slo_ms = [1], chips = [32] }}\n\n"
        f"[impossible]\n{common}tpot_slo_ms = 1\n"
    )
    done = run_cli("catchup", "tight", "--scenarios", str(scenarios), "--format", "json")
    assert done.returncode == 0, done.stderr
    d = json.loads(done.stdout)
    for key in ("gap_at_best", "hardware_gap", "catch_up_from_reference"):
        assert set(d[key]) == {"value", "low", "high"}
    assert set(d["shapley"]) == {"frontier", "constrained"}
    assert {"chips", "memory_min_chips", "parallelism"} <= set(d["chips_to_match"])
    settings = {(row["setting"], row["value"]) for row in d["stability"]}
    assert ("chips", 32) in settings and ("efficiency factors", "low end") in settings
    for flip in d["flips"]:
        assert (flip["setting"], flip["value"]) in settings and flip["conclusion"]
    row = next(r for r in d["stability"] if r["setting"] == "tpot_slo_ms")
    assert row["gap_at_best"] is None and "no configuration" in row["note"]
    failed = run_cli("catchup", "impossible", "--scenarios", str(scenarios))
    assert failed.returncode == 2 and failed.stderr.count("\n") == 1 and "tpot_slo_ms" in failed.stderr
    typo = run_cli("catchup", "h20-vs-h10")
    assert typo.returncode == 2 and typo.stderr.count("\n") == 1 and "did you mean 'h20-vs-h100'" in typo.stderr
    listed = run_cli("catchup", "--list", "--format", "json")
    assert listed.returncode == 0 and any(s["name"] == "h20-vs-h100" for s in json.loads(listed.stdout))
    table = run_cli("catchup", "tight", "--scenarios", str(scenarios), "--no-stability")
    from bench.output.catchup import band_text

    assert table.returncode == 0 and band_text(d["gap_at_best"]) in table.stdout


@pytest.fixture(scope="module")
def scenario_report(tmp_path_factory):
    """A report of a small simulated run with the 910C scenario."""
    root = tmp_path_factory.mktemp("scen")
    out = root / "run"  # the cells in this process; the reports through the CLI, as users make them
    run_here(
        '[[matrix]]\nmodel = "gpt2-tiny"\nbackend = "simulated"\nprecision = ["bf16", "int8"]\n'
        'options = { profile = ["h100", "ascend-910b2"], chips = [8], tpot_slo_ms = [200] }\n',
        out,
    )
    html_path, md_path = root / "report.html", root / "report.md"
    made = run_cli("report", str(out), "--scenario", "ascend-910c-vs-h100", "--format", "html", "--out", str(html_path))
    assert made.returncode == 0, made.stderr[-2000:]
    status, _, err = cli_here(
        "report", str(out), "--scenario", "ascend-910c-vs-h100", "--format", "md", "--out", str(md_path)
    )
    assert status == 0, err[-2000:]  # the Markdown one in this process: the same command, without a second start-up
    return html_path, md_path


def test_the_report_summary_agrees_with_its_tables_and_lists_assumptions_in_the_appendix(scenario_report):
    _, md_path = scenario_report
    text = md_path.read_text()
    assert text.index("## Summary") < text.index("## Catch-up scenario") < text.index("## Appendix")
    summary = text[text.index("## Summary") : text.index("## Catch-up scenario")]
    paragraph = next(line for line in summary.splitlines() if line.startswith("SIMULATED"))
    assert len(re.findall(r"[.!?](?:\s|$)", re.sub(r"\d\.\d|e\.g\.", "", paragraph))) <= 5
    claimed = re.search(r"serves ([\d.]+x \[[\d.]+, [\d.]+\])", paragraph).group(1)
    row = next(line for line in text.splitlines() if line.startswith("| gap at best |"))
    assert claimed in row
    assert "scaleup_latency_us" not in summary and "(appendix)" in summary
    appendix = text[text.index("## Appendix") :]
    assert "### Device figures" in appendix and "### Validation errors" in appendix and "ASSUMED" in appendix
    assert "### Engine factors (the software lever)" in appendix
    assert "## Trajectory over chip generations" in text and "## Stability: ascend-910c-vs-h100" in text


def test_a_simulated_serving_cell_shows_the_batch_it_used(scenario_report):
    _, md_path = scenario_report
    rows = [line for line in md_path.read_text().splitlines() if line.startswith("| simulated / ")]
    assert rows and all("| searched: " in line for line in rows)


def test_the_html_report_renders_in_headless_chromium_with_its_charts_and_no_external_request(
    scenario_report, tmp_path
):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    html_path, _ = scenario_report
    probe = tmp_path / "probe.html"  # loads the report in a frame and reports what the browser saw
    probe.write_text(
        "<html><body><iframe id='r' src='" + html_path.as_uri() + "' width='1200' height='800'></iframe><script>"
        "document.getElementById('r').onload = function () {"
        " var d = this.contentDocument, imgs = Array.from(d.images);"
        " var res = this.contentWindow.performance.getEntriesByType('resource').map(function (e) { return e.name; });"
        " document.title = JSON.stringify({images: imgs.length, drawn: imgs.filter(function (i) {"
        "   return i.complete && i.naturalWidth > 0; }).length, external: res.filter(function (n) {"
        "   return /^https?:/.test(n); }), headings: Array.from(d.querySelectorAll('h2')).map(function (h) {"
        "   return h.textContent; })});"
        "};</script></body></html>"
    )
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--allow-file-access-from-files",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--virtual-time-budget=10000",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r"<title>(.*?)</title>", done.stdout, flags=re.S)
    if found is None:
        pytest.skip(f"chromium could not render here: {done.stderr.strip().splitlines()[-1:]}")
    import html

    seen = json.loads(html.unescape(found.group(1)))
    assert seen["images"] >= 3 and seen["drawn"] == seen["images"], seen
    assert seen["external"] == []
    assert seen["headings"][0] == "Summary" and any(h.startswith("Catch-up scenario") for h in seen["headings"])


def test_a_measured_software_factor_replaces_the_modelled_engine_difference(analyses):
    from bench.analysis.gap.scenario import get_scenario
    from bench.core.errors import UsageError

    base = get_scenario("atlas-800i-a2-vs-dgx-h100")
    measured = base.with_measured_software("constrained", 1.5, 1.4, 1.6)
    a = analyse(measured, stability=False)
    assert a.shapley["constrained"]["factors"]["software"] == pytest.approx(1.5)
    reference = a.rate("constrained", "reference")
    assert check_efficiency(a.shapley["constrained"]["factors"], a.rate("constrained", "best") / reference)
    assert a.to_dict()["scenario"]["measured_software"]["constrained"]["value"] == 1.5
    with pytest.raises(UsageError, match="low <= value <= high"):
        base.with_measured_software("constrained", 1.5, 1.6, 1.7)
