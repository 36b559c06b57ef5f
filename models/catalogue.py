"""The catalogue: published architecture configs as data. No logic beyond lookup.

Each full-size entry copies the architecture fields of the model's public `config.json`; each has a `-tiny`
variant of the same family with a few small layers, for tests. Weights are random (seeded): throughput does not
depend on weight values.
"""

from __future__ import annotations

from models.base import Workload
from bench.errors import invalid_value

__all__ = ["WORKLOADS", "ALIASES", "workload_names", "get_workload"]

# https://huggingface.co/google-bert/bert-base-uncased/blob/main/config.json
_BERT_BASE_UNCASED = {
    "model_type": "bert",
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
}

# https://huggingface.co/openai-community/gpt2/blob/main/config.json
_GPT2 = {
    "model_type": "gpt2",
    "vocab_size": 50257,
    "n_positions": 1024,
    "n_embd": 768,
    "n_layer": 12,
    "n_head": 12,
    "n_inner": None,
    "activation_function": "gelu_new",
    "layer_norm_epsilon": 1e-5,
    "bos_token_id": 50256,
    "eos_token_id": 50256,
}

_TINY_ENCODER = {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 512}
_TINY_GPT2 = {"n_embd": 128, "n_layer": 2, "n_head": 2}

_ENTRIES = [
    Workload(
        name="bert-base-uncased",
        family="encoder",
        task="encode",
        config=_BERT_BASE_UNCASED,
        description="BERT base (uncased) encoder, 12 layers, 110M parameters: one forward over batch x seq",
        source="huggingface.co/google-bert/bert-base-uncased config.json",
        aliases=("bert-base",),
    ),
    Workload(
        name="bert-base-uncased-tiny",
        family="encoder",
        task="encode",
        config={**_BERT_BASE_UNCASED, **_TINY_ENCODER},
        description="BERT architecture, 2 layers of width 128 (test variant)",
        source="bert-base-uncased config with smaller width and depth",
        aliases=("bert-base-tiny",),
        tiny_of="bert-base-uncased",
    ),
    Workload(
        name="gpt2",
        family="causal-lm",
        task="generate",
        config=_GPT2,
        description="GPT-2 (124M) causal LM: prefill the prompt, then greedy decode new_tokens, EOS ignored",
        source="huggingface.co/openai-community/gpt2 config.json",
        default_new_tokens=32,
        max_positions_key="n_positions",
    ),
    Workload(
        name="gpt2-tiny",
        family="causal-lm",
        task="generate",
        config={**_GPT2, **_TINY_GPT2},
        description="GPT-2 architecture, 2 layers of width 128 (test variant)",
        source="gpt2 config with smaller width and depth",
        tiny_of="gpt2",
        default_new_tokens=8,
        max_positions_key="n_positions",
    ),
]

WORKLOADS: dict[str, Workload] = {w.name: w for w in _ENTRIES}
ALIASES: dict[str, str] = {alias: w.name for w in _ENTRIES for alias in w.aliases}


def workload_names() -> tuple[str, ...]:
    return tuple(WORKLOADS)


def get_workload(name: str, field: str = "model") -> Workload:
    """The entry called `name` (or one of its aliases); a one-line UsageError for an unknown name."""
    canonical = ALIASES.get(name, name)
    if canonical not in WORKLOADS:
        raise invalid_value(field, name, workload_names() + tuple(ALIASES))
    return WORKLOADS[canonical]
