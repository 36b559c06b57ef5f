"""Our client side by side with the field's benchmark clients, against one engine, with the engine's own timings as
the reference (docs/SERVING-ENGINES.md, "Side by side with the field's clients").

    python scripts/compare_clients.py --engine llama.cpp --concurrency 1,4 --requests 200 --rounds 2

Method. One engine (scripts/engines/engines.py: the tiny random-weight Llama and its locally trained tokenizer,
on 127.0.0.1) serves every client. In each round every client runs once per concurrency, the clients' order
rotating from round to round (so no client always runs first, or right after the same other one). A client is
one process (its own environment: scripts/engines/*.sh), started fresh for each run; each asks for the same
load: `--requests` prompts of `--seq-len` random tokens, `--new-tokens` output tokens with EOS ignored,
`--concurrency` requests in flight, as fast as the engine answers. Every client's prompts come from another
seed each run, so no prompt is in the engine's prefix cache.

Figures per run: the client's own median TTFT, TPOT and ITL and its output tokens/s, as it reports them (each by its
own definitions: the definitions table in the docs); client CPU per request = user + system CPU of the client's
process tree (resource.getrusage(RUSAGE_CHILDREN) around the run: start-up, warm-up and the load) / requests,
and the marginal CPU per request: each run is followed by one of a quarter as many requests, and (CPU of the run
- CPU of the short one) / (the difference of their request counts) leaves start-up, imports and warm-up out;
the engine's own timings over the same run from its /metrics counters (llama.cpp: prompt and generation seconds and
tokens; vLLM: prefill and decode time histograms): mean prefill ms per request (the reference for TTFT) and mean
decode ms per step (generation time / (generated tokens - requests): the reference for TPOT). Printed: the median
over rounds of each figure per client and concurrency, as a Markdown table; everything is also written to
OUT/compare.json.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts" / "engines")]

import engines  # noqa: E402
from compare_peers import PEERS, ours  # noqa: E402

CLIENTS = ("ours", "vllm", "guidellm", "aiperf")


def _metrics(url: str) -> dict[str, float]:
    """The engine's Prometheus counters and histogram sums/counts (name -> value, labels dropped, summed)."""
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return {}
    found: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+([-+0-9.eE]+|NaN)$", line)
        if match and match[3] != "NaN":
            found[match[1]] = found.get(match[1], 0.0) + float(match[3])
    return found


def engine_reference(before: dict[str, float], after: dict[str, float], seq_len: int) -> dict[str, float | None]:
    """Mean prefill ms per request and decode ms per step over a run, from the counters' differences. llama.cpp
    counts no requests: they are its prompt tokens (processed and cached) / seq_len (every client asks for exactly
    seq_len); its generation time runs from each request's first token to its last (n - 1 steps), as vLLM's
    decode time does."""
    d = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    if "llamacpp:prompt_seconds_total" in d:
        prompts = d["llamacpp:prompt_tokens_total"] + d.get("llamacpp:prompt_tokens_cached_total", 0.0)
        requests = round(prompts / seq_len)
        prompt_s, decode_s = d["llamacpp:prompt_seconds_total"], d["llamacpp:tokens_predicted_seconds_total"]
        tokens = d["llamacpp:tokens_predicted_total"]
    elif "vllm:request_prefill_time_seconds_sum" in d:
        requests = d["vllm:request_prefill_time_seconds_count"]
        prompt_s, decode_s = d["vllm:request_prefill_time_seconds_sum"], d["vllm:request_decode_time_seconds_sum"]
        tokens = d["vllm:generation_tokens_total"]
    else:
        return {"prefill_ms": None, "decode_step_ms": None}
    return {"prefill_ms": 1e3 * prompt_s / requests if requests else None,
            "decode_step_ms": 1e3 * decode_s / (tokens - requests) if requests and tokens > requests else None,
            "requests_seen": requests}  # fmt: skip


def run_client(name: str, url: str, args, concurrency: int, seed: int, out: Path) -> dict:
    """One run of one client: its figures, its CPU per request, the engine's reference over the run."""
    command, parse = (ours if name == "ours" else PEERS[name])(url, args, concurrency, seed, out)
    before_metrics, before = _metrics(url), resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, env=_env(name))
    wall = time.monotonic() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    reference = engine_reference(before_metrics, _metrics(url), args.seq_len)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    row = {"client": name, "concurrency": concurrency, "seed": seed, "wall_s": wall, "cpu_s": cpu,
           "cpu_ms_per_request": 1e3 * cpu / args.requests, "returncode": done.returncode, **reference}  # fmt: skip
    if done.returncode != 0:
        row["error"] = (done.stderr or done.stdout)[-600:]
        return row
    row.update(parse(out))
    return row


def paired_runs(client: str, url: str, args, concurrency: int, seed: int, out: Path) -> dict:
    """The run of `--requests` requests, then one of a quarter as many (another seed): the marginal CPU per
    request is the difference of their CPU over the difference of their request counts, so start-up, imports,
    tokenizer and warm-up cancel out."""
    row = run_client(client, url, args, concurrency, seed, out)
    small = argparse.Namespace(**{**vars(args), "requests": max(2, args.requests // 4)})
    short = run_client(client, url, small, concurrency, seed + 500_000, out.with_name(out.name + "-short"))
    row["cpu_ms_per_request_marginal"] = 1e3 * (row["cpu_s"] - short["cpu_s"]) / (args.requests - small.requests)
    row["short_run_cpu_s"] = short["cpu_s"]
    return row


def _env(client: str) -> dict[str, str]:
    """The client's environment: offline for the hub, except for aiperf, whose offline mode looks a local
    tokenizer directory up as a hub repository in the cache ("Failed to load tokenizer ... HFValidationError");
    online it loads the directory (no hub request was made: nothing else is reachable here anyway)."""
    import os

    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "VLLM_TARGET_DEVICE": "cpu"}  # fmt: skip
    if client == "aiperf":
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
            env.pop(name)
    return env


def _server(args, model: Path, log: Path):
    if args.engine == "llama.cpp":
        return engines.llama_server(engines.to_gguf(model), log, parallel=max(args.concurrency), threads=args.threads)
    if args.engine == "vllm":
        return engines.vllm_server(model, log, threads=args.threads)
    if args.engine == "transformers":
        return engines.transformers_server(model, log, threads=args.threads)
    return engines.bench_server(model, log, threads=args.threads)


def summary(rows: list[dict]) -> list[dict]:
    """Median over rounds of each figure, per client and concurrency."""
    keys = ("ttft_ms", "tpot_ms", "itl_ms", "output_tokens_per_s", "cpu_ms_per_request", "cpu_ms_per_request_marginal",
            "prefill_ms", "decode_step_ms", "failed", "retried", "ttft_minus_engine_ms", "tpot_vs_engine")  # fmt: skip
    out = []
    for concurrency in sorted({r["concurrency"] for r in rows}):
        for client in CLIENTS:
            runs = [r for r in rows if r["client"] == client and r["concurrency"] == concurrency and "ttft_ms" in r]
            if runs:
                medians = {k: statistics.median(r[k] for r in runs) if all(r.get(k) is not None for r in runs) else None for k in keys}  # fmt: skip
                medians["failed"] = sum(r.get("failed") or 0 for r in runs)  # over all rounds
                medians["retried"] = sum(r.get("retried") or 0 for r in runs)
                out.append({"client": client, "concurrency": concurrency, "runs": len(runs), **medians})
    return out


def markdown(summary_rows: list[dict]) -> str:
    """The summary as a Markdown table: medians over rounds; failed and retried requests summed over rounds."""
    head = ("| concurrency | client | TTFT ms | engine prefill ms | TPOT ms | engine decode step ms | ITL ms | "
            "output tok/s | client CPU ms/request (marginal) | failed | retried |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|\n")  # fmt: skip
    fmt = lambda v: "-" if v is None else f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    lines = [
        f"| {r['concurrency']} | {r['client']} | {fmt(r['ttft_ms'])} | {fmt(r['prefill_ms'])} | {fmt(r['tpot_ms'])} | "
        f"{fmt(r['decode_step_ms'])} | {fmt(r['itl_ms'])} | {fmt(r['output_tokens_per_s'])} | "
        f"{fmt(r['cpu_ms_per_request'])} ({fmt(r['cpu_ms_per_request_marginal'])}) | {r['failed']} | {r['retried']} |"
        for r in summary_rows
    ]
    agreement = [
        f"- ours at concurrency {r['concurrency']}, per request against llama.cpp's own timings: TTFT - its prompt "
        f"time, median {fmt(r['ttft_minus_engine_ms'])} ms; TPOT / its decode step - 1, median "
        f"{100 * r['tpot_vs_engine']:+.1f}%"
        for r in summary_rows
        if r["client"] == "ours" and r.get("ttft_minus_engine_ms") is not None
    ]
    return head + "\n".join(lines) + "\n" + ("\n" + "\n".join(agreement) + "\n" if agreement else "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--engine", choices=("llama.cpp", "vllm", "transformers", "bench"), default="llama.cpp")
    p.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated among " + ", ".join(CLIENTS))
    p.add_argument("--concurrency", default="1,4")
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=2, help="the engine's threads")
    p.add_argument("--timeout", type=float, default=900.0, help="per client run, seconds")
    p.add_argument("--out", default="results/compare-clients")
    args = p.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = engines.tiny_llama(out / "model", head_dim=32 if args.engine == "vllm" else None)
    args.tokenizer, args.model_name = model, engines.MODEL_NAME
    rows: list[dict] = []
    with _server(args, model, out / f"{args.engine}.log") as server:
        for round_ in range(args.rounds):
            order = clients[round_ % len(clients) :] + clients[: round_ % len(clients)]
            for concurrency in args.concurrency:
                for client in order:
                    seed = 1000 * round_ + 10 * concurrency + CLIENTS.index(client)
                    where = out / f"r{round_}-c{concurrency}-{client}"
                    row = paired_runs(client, server.url, args, concurrency, seed, where)
                    print(json.dumps(row), file=sys.stderr, flush=True)
                    rows.append(row)
    table = summary(rows)
    (out / "compare.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": rows,
                                                  "summary": table}, indent=1))  # fmt: skip
    print(markdown(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
