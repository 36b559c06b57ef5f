"""The software lever measured on one host: one model, one load, several engines, one run directory.

    python scripts/engine_lever.py --engines bench,transformers,llama.cpp --out results/engine-lever
    bench report results/engine-lever --format md --out report.md          # the "Engine factors" section
    bench catchup ascend-910b2-vs-h100 --software-from results/engine-lever # the factor in place of the ASSUMED one

Each engine in turn serves the tiny random-weight Llama of scripts/engines/engines.py (`bench serve` eager torch
with the same safetensors through `--weights`, `transformers serve`, llama.cpp's `llama-server` from its GGUF)
on 127.0.0.1, and `bench run --backend openai` measures it with the same cells: `--seq-len`, `--new-tokens`,
`--requests` per cell at each of `--concurrency`, token-id prompts where the engine takes them, text trimmed to
length otherwise (exact on every engine). Everything lands in OUT (records.jsonl), so `bench report OUT` turns the
cells that differ only in engine into engine factors with their intervals (bench.analysis.engines).

vLLM-CPU is left out by default: its attention kernels refuse the catalogue's head size of 16 ("Unsupported CPU
attention configuration: head_dim=16"), so it cannot serve this model; `--engines vllm` serves it the head_dim-32
variant, a different model (its cells then compare a different model, said so in the output).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts" / "engines")]

import engines  # noqa: E402


def _server(name: str, model: Path, out: Path, threads: int):
    log = out / "logs" / f"{name}.log"
    if name == "bench":
        return engines.bench_server(model, log, threads=threads)
    if name == "transformers":
        return engines.transformers_server(model, log, threads=threads)
    if name == "llama.cpp":
        return engines.llama_server(engines.to_gguf(model), log, parallel=4, threads=threads)
    if name == "vllm":
        return engines.vllm_server(engines.tiny_llama(out / "model-head32", head_dim=32), log, threads=threads)
    raise SystemExit(f"--engines: {name!r} is not allowed; expected bench, transformers, llama.cpp or vllm")


def measure(name: str, url: str, served: str, args, out: Path) -> int:
    """`bench run` against one engine into the shared run directory; its exit status."""
    command = [sys.executable, "-m", "bench", "run", "--backend", "openai", "--model", engines.CATALOGUE_MODEL,
               "-O", f"endpoint={url}", "-O", f"served_model={served}", "-O", f"tokenizer={args.tokenizer}",
               "--seq-len", str(args.seq_len), "--new-tokens", str(args.new_tokens), "-O", f"requests={args.requests}",
               "-O", f"concurrency={args.concurrency}", "--out", str(out), "-q"]  # fmt: skip
    if (out / "records.jsonl").exists():  # the cells of this engine are new cells of the same run
        command.append("--resume")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    print(f"== {name} at {url}", file=sys.stderr, flush=True)
    return subprocess.run(command, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--engines", default="bench,transformers,llama.cpp")
    p.add_argument("--concurrency", default="1,4", help="a value list, as -O concurrency= takes it")
    p.add_argument("--requests", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="results/engine-lever")
    args = p.parse_args(argv)
    out = Path(args.out)
    model = engines.tiny_llama(out / "model")
    args.tokenizer = model
    status = 0
    for name in [e.strip() for e in args.engines.split(",") if e.strip()]:
        with _server(name, model, out, args.threads) as server:
            served = engines.MODEL_NAME if name in ("bench", "llama.cpp", "vllm") else str(model)
            status = max(status, measure(name, server.url, served, args, out))
    return status


if __name__ == "__main__":
    sys.exit(main())
