"""The catch-up estimate an analyst can quote: log-symmetric bands, correlated ratios, "best" only within the
accuracy budget and outside noise, published quality, the scenario waterfall (bench catchup) and the report that
explains itself -- rendered in headless Chromium where it is installed."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess

import pytest
from conftest import run_cli, run_here

from bench.analysis.catchup import AccuracyBudget, CatchUp, Point, ratio
from bench.analysis.waterfall import Scenario, load_scenarios, log_band, waterfall
from bench.core.record import Record
from bench.core.spec import BenchmarkSpec


def test_a_projection_that_under_predicts_by_90_percent_has_a_band_that_covers_the_truth():
    from backends.trace_projection import _band

    truth_s = 1.0
    predicted_s = 0.1  # a 90% under-prediction of the latency: predicted / true - 1 = -0.9
    band = _band({"latency_s": predicted_s}, {"error": predicted_s / truth_s - 1}, {"key": "x"})
    assert band["low_s"] <= truth_s <= band["high_s"] * (1 + 1e-12)
    assert band["factor"] == pytest.approx(10.0)  # log-symmetric: a factor of 10, not 1 + 0.9
    low, high = log_band(100.0, -0.9)
    assert low == pytest.approx(10.0) and high == pytest.approx(1000.0)


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


def test_the_waterfall_multiplies_to_the_catch_up_ratio_and_every_band_holds_its_value():
    scenario = load_scenarios()["h20-vs-h100"]
    w = waterfall(scenario, validation_error=0.2)
    product = math.prod(step.factor for step in w.steps)
    assert product == pytest.approx(w.catch_up[0], rel=1e-9)
    assert w.end["central"] / w.start["central"] == pytest.approx(w.catch_up[0], rel=1e-9)
    for step in w.steps:
        assert step.low <= step.factor * (1 + 1e-9) and step.factor <= step.high * (1 + 1e-9), step
    assert w.catch_up[1] <= w.catch_up[0] <= w.catch_up[2]
    levers = [s.lever for s in w.steps]
    assert levers[:5] == ["hardware"] * 5 and {"software", "precision", "architecture", "serving"} <= set(levers)
    # the hardware path ends at the constrained chip itself: the hybrid after every swap is the real device
    from bench.analysis.waterfall import _devices, _rate

    _, constrained = _devices(scenario)
    direct = _rate(scenario.query("constrained", True), constrained, constrained.kind, "central")
    after_hardware = [s for s in w.steps if s.lever == "hardware"][-1].rate_after
    assert after_hardware == pytest.approx(direct, rel=1e-9)
    assert w.chips_to_match[0] == pytest.approx(scenario.chips / w.catch_up[0])
    assert any("software maturity" in f for f in w.figures_flagged)


def test_a_scenario_file_is_validated_with_one_line_errors(tmp_path):
    bad = tmp_path / "s.toml"
    bad.write_text('[x]\ntitle = "t"\nfrontier = "h100"\n')
    with pytest.raises(Exception, match="scenario x: constrained is missing"):
        load_scenarios(bad)
    with pytest.raises(Exception, match="profile"):
        Scenario.from_mapping("y", {**_scenario_fields(), "constrained": "no-such-chip"})


def _scenario_fields():
    return {
        "title": "t",
        "frontier": "h100",
        "constrained": "h20",
        "chips": 16,
        "model": "deepseek-r1",
        "reference_model": "llama-3.1-405b",
        "precision": "fp8",
        "reference_precision": "bf16",
        "input_tokens": 1024,
        "output_tokens": 256,
        "tpot_slo_ms": 150,
    }


def test_bench_catchup_lists_runs_and_refuses_unknown_names(tmp_path):
    listed = run_cli("catchup", "--list")
    assert listed.returncode == 0 and "h20-vs-h100" in listed.stdout and "ascend-910c-vs-h100" in listed.stdout
    done = run_cli("catchup", "h800-vs-h100", "--format", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["simulated"] is True and data["catch_up"][1] <= data["catch_up"][0] <= data["catch_up"][2]
    assert [s["lever"] for s in data["steps"]][-1] == "serving"
    typo = run_cli("catchup", "h20-vs-h10")
    assert typo.returncode == 2 and typo.stderr.count("\n") == 1 and "did you mean 'h20-vs-h100'" in typo.stderr


@pytest.fixture(scope="module")
def scenario_report(tmp_path_factory):
    """A report of a small simulated run with the 910C scenario's waterfall."""
    root = tmp_path_factory.mktemp("scen")
    out = root / "run"  # the cells in this process; the reports through the CLI, as users make them
    run_here(
        '[[matrix]]\nmodel = "gpt2-tiny"\nbackend = "simulated"\nprecision = ["bf16", "int8"]\n'
        'options = { profile = ["h100", "ascend-910b2"], chips = [8], tpot_slo_ms = [200] }\n',
        out,
    )
    html_path, md_path = root / "report.html", root / "report.md"
    for path, fmt in ((html_path, "html"), (md_path, "md")):
        made = run_cli("report", str(out), "--scenario", "ascend-910c-vs-h100", "--format", fmt, "--out", str(path))
        assert made.returncode == 0, made.stderr[-2000:]
    return html_path, md_path


def test_the_report_summary_agrees_with_its_tables_and_names_assumed_figures(scenario_report):
    _, md_path = scenario_report
    text = md_path.read_text()
    assert text.index("## Summary") < text.index("## Catch-up scenario") < text.index("## Appendix")
    summary = text[text.index("## Summary") : text.index("## Catch-up scenario")]
    claimed = re.search(
        r"one ascend-910c chip serves [\d,]+ output tokens/s, ([\d.]+)x \[([\d.]+), ([\d.]+)\]", summary
    )
    row = next(line for line in text.splitlines() if line.startswith("| end |"))
    table = re.search(r"x([\d.]+) \[([\d.]+), ([\d.]+)\]", row)
    assert claimed and table
    for said, shown in zip(claimed.groups(), table.groups()):
        assert float(said) == pytest.approx(float(shown), rel=0.01)
    assert "ASSUMED or UNV" in summary and "software maturity" in summary
    appendix = text[text.index("## Appendix") :]
    assert "### Device figures" in appendix and "### Validation errors" in appendix and "ASSUMED" in appendix


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
    assert seen["images"] >= 2 and seen["drawn"] == seen["images"], seen
    assert seen["external"] == []
    assert seen["headings"][0] == "Summary" and any(h.startswith("Catch-up scenario") for h in seen["headings"])
