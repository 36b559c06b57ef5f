"""How scripts/compare_clients.py runs each client and reads its figures.

Each builder takes (url, args, concurrency, seed, out) and returns (command, parse): the command asks for the
compared load (args.requests prompts of args.seq_len random tokens, args.new_tokens output tokens with EOS
ignored, `concurrency` in flight, no rate limit; the tokenizer of args.tokenizer); `parse(out)` returns the
client's figures mapped to our definitions {ttft_ms, tpot_ms, itl_ms, output_tokens_per_s, failed} (medians where it gives
them; None where it has no figure of that definition), read from the file it wrote into `out`
(docs/SERVING-ENGINES.md, the definitions table).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engines import ENGINES, ROOT


def ours(url: str, args, concurrency: int, seed: int, out: Path):
    command = [sys.executable, "-m", "bench", "run", "--backend", "openai", "--model", "llama-3.1-8b-tiny",
               "-O", f"endpoint={url}", "-O", f"served_model={args.model_name}", "-O", f"tokenizer={args.tokenizer}",
               "--seq-len", str(args.seq_len), "--new-tokens", str(args.new_tokens), "-O", f"requests={args.requests}",
               "-O", f"concurrency={concurrency}", "-O", f"seed={seed}", "--out", str(out), "-q"]  # fmt: skip

    def parse(out: Path) -> dict:
        shown = subprocess.run([sys.executable, "-m", "bench", "show", str(out), "--format", "json"],
                               capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
        (row,) = json.loads(shown.stdout)
        return {"ttft_ms": row.get("ttft_p50_ms"), "tpot_ms": row.get("tpot_p50_ms"), "itl_ms": row.get("itl_p50_ms"),
                "output_tokens_per_s": row.get("output_tokens_per_s"), "failed": row.get("requests_failed") or 0,
                "retried": row.get("requests_retried") or 0, **per_request_agreement(out)}  # fmt: skip

    return command, parse


def per_request_agreement(out: Path) -> dict:
    """Where the engine's stream carried its own per-request timings (llama.cpp): the median over requests of
    our TTFT - its prompt time (ms) and of our TPOT / its time per decode step - 1 (the same request each time)."""
    import statistics

    (line,) = (out / "records.jsonl").read_text().splitlines()[-1:]
    record = json.loads(line)
    timings, m = (record.get("serving") or {}).get("engine_timings"), record.get("measurement") or {}
    if not timings or not m:
        return {}
    ttft, tpot = [], []
    for e2e, marks, n, own in zip(m["samples_ns"], m["token_marks_ns"], m["tokens_per_sample"], timings):
        if own and own.get("predicted_n", 0) > 1 and n > 1:
            ttft.append(marks[0] / 1e6 - own["prompt_ms"])
            tpot.append((e2e - marks[0]) / 1e6 / (n - 1) / (own["predicted_ms"] / (own["predicted_n"] - 1)) - 1)
    if not ttft:
        return {}
    own_ttft = statistics.median(t["prompt_ms"] for t in timings if t)
    return {"ttft_minus_engine_ms": statistics.median(ttft), "tpot_vs_engine": statistics.median(tpot),
            "engine_prompt_ms_p50": own_ttft}  # fmt: skip


def vllm(url: str, args, concurrency: int, seed: int, out: Path):
    """`vllm bench serve`, random dataset of exact lengths, the OpenAI completions backend."""
    out.mkdir(parents=True, exist_ok=True)
    command = [str(ENGINES / "vllm" / "bin" / "vllm"), "bench", "serve", "--backend", "openai", "--base-url", url,
               "--model", args.model_name, "--tokenizer", str(args.tokenizer), "--dataset-name", "random",
               "--random-input-len", str(args.seq_len), "--random-output-len", str(args.new_tokens),
               "--random-range-ratio", "0", "--num-prompts", str(args.requests), "--max-concurrency",
               str(concurrency), "--request-rate", "inf", "--ignore-eos", "--seed", str(seed), "--disable-tqdm",
               "--percentile-metrics", "ttft,tpot,itl", "--metric-percentiles", "50", "--save-result",
               "--result-dir", str(out), "--result-filename", "result.json"]  # fmt: skip

    def parse(out: Path) -> dict:
        data = json.loads((out / "result.json").read_text())
        return {"ttft_ms": data.get("median_ttft_ms"), "tpot_ms": data.get("median_tpot_ms"),
                "itl_ms": data.get("median_itl_ms"), "output_tokens_per_s": data.get("output_throughput"),
                "failed": data.get("failed", 0)}  # fmt: skip

    return command, parse


def guidellm(url: str, args, concurrency: int, seed: int, out: Path):
    """guidellm, synthetic text of exact lengths (it sends ignore_eos), a concurrent profile at `concurrency`,
    the completions route."""
    out.mkdir(parents=True, exist_ok=True)
    command = [str(ENGINES / "guidellm" / "bin" / "guidellm"), "run",
               "--backend", f"kind=openai_http,target={url},model={args.model_name},request_format=/v1/completions",
               "--profile", f"kind=concurrent,streams={concurrency}",
               "--data", f"kind=synthetic_text,prompt_tokens={args.seq_len},output_tokens={args.new_tokens}",
               "--constraint", f"kind=max_requests,count={args.requests}",
               "--tokenizer", f"kind=huggingface_auto,model={args.tokenizer}",
               "--seed", f"kind=static,value={seed}", "--output", f"kind=json,path={out / 'report.json'}",
               "--disable-console"]  # fmt: skip

    def parse(out: Path) -> dict:
        report = json.loads((out / "report.json").read_text())
        benchmark = report["benchmarks"][0]
        metrics = benchmark["metrics"]
        median = lambda name: metrics[name]["successful"]["median"]
        totals = metrics.get("request_totals") or benchmark.get("request_totals") or {}
        tokens = metrics["output_token_count"]["successful"]["total_sum"]
        # guidellm's ITL is (last - first token) / (output tokens - 1) per request: our TPOT; its own TPOT divides
        # the time from the request's start by all output tokens (the first included); it has no pooled ITL
        return {"ttft_ms": median("time_to_first_token_ms"), "tpot_ms": median("inter_token_latency_ms"),
                "own_tpot_ms": median("time_per_output_token_ms"), "itl_ms": None,
                "output_tokens_per_s": tokens / benchmark["duration"], "failed": totals.get("errored", 0)}  # fmt: skip

    return command, parse


def aiperf(url: str, args, concurrency: int, seed: int, out: Path):
    """NVIDIA's aiperf, synthetic prompts of exact lengths (stddev 0), the completions endpoint, streaming."""
    out.mkdir(parents=True, exist_ok=True)
    command = [str(ENGINES / "aiperf" / "bin" / "aiperf"), "profile", "--model", args.model_name, "--url", url,
               "--endpoint-type", "completions", "--streaming", "--tokenizer", str(args.tokenizer),
               "--synthetic-input-tokens-mean", str(args.seq_len), "--synthetic-input-tokens-stddev", "0",
               "--output-tokens-mean", str(args.new_tokens), "--output-tokens-stddev", "0",
               "--extra-inputs", "ignore_eos:true", "--concurrency", str(concurrency),
               "--request-count", str(args.requests), "--random-seed", str(seed), "--artifact-dir", str(out),
               "--ui-type", "none"]  # fmt: skip

    def parse(out: Path) -> dict:
        data = json.loads(next(out.rglob("profile_export_aiperf.json")).read_text())
        figures = data.get("records", data)
        pick = lambda name, key="p50": (figures.get(name) or {}).get(key)
        return {"ttft_ms": pick("time_to_first_token"), "tpot_ms": pick("inter_token_latency"),
                "itl_ms": pick("inter_chunk_latency") or pick("inter_token_latency"),
                "output_tokens_per_s": pick("output_token_throughput", "avg"),
                "failed": (figures.get("error_request_count") or {}).get("avg", 0) or 0}  # fmt: skip

    return command, parse


PEERS = {"vllm": vllm, "guidellm": guidellm, "aiperf": aiperf}
