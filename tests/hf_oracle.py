"""Hugging Face `transformers` oracle for attnspec's tests.

An independent float64 reference, built only from `transformers` (PyTorch) and numpy:

* `make_tiny_checkpoint` writes small random checkpoints of the four supported families
  (see `VARIANTS`) with weights scaled so that attention patterns are non-trivial;
* `capture` runs a checkpoint in eager attention and records, per layer, the normalised
  attention input `X`, the queries `Q` and keys `K` exactly as the attention kernel receives
  them (after bias and RoPE; keys not repeated for GQA) and the softmax scale;
* `weight_blocks` returns the per-head `W_Q^(h)` / `W_K^(g)` blocks (convention y = W x);
* the spectral reference functions (`field_singular_values`, `weights_singular_values`,
  `k_tau`, `erank`, ...) follow /work/shared/spec/METRICS.md with dense float64 SVDs.

Definitions of every quantity are in METRICS.md; this module only materialises them naively.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import sys
import zlib
from pathlib import Path

import numpy as np
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    BertConfig,
    BertForMaskedLM,
    BertModel,
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3Config,
    Gemma3ForCausalLM,
    Gemma3ForConditionalGeneration,
    Gemma3TextConfig,
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    OPTConfig,
    OPTForCausalLM,
    Phi3Config,
    Phi3ForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

__all__ = [
    "FAMILIES",
    "ENCODERS",
    "NO_ROPE",
    "VARIANTS",
    "make_tiny_checkpoint",
    "load_model",
    "capture",
    "capture_model",
    "weight_blocks",
    "kv_head_of",
    "single_threaded_blas",
    "energy_field",
    "field_singular_values",
    "causal_field_singular_values",
    "capped_field",
    "capped_field_singular_values",
    "causal_capped_field_singular_values",
    "QK_NORM_FAMILIES",
    "GEMMA_FAMILIES",
    "pre_norm",
    "weights_singular_values",
    "variance_fractions",
    "k_tau",
    "erank",
    "participation_ratio",
    "stable_rank",
    "spectral_gap",
]

# --------------------------------------------------------------------------------------------
# Families and tiny checkpoints
# --------------------------------------------------------------------------------------------

#: family name -> (config class, causal-LM class)
FAMILIES = {
    "gpt2": (GPT2Config, GPT2LMHeadModel),
    "llama": (LlamaConfig, LlamaForCausalLM),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM),
    "mistral": (MistralConfig, MistralForCausalLM),
    "qwen3": (Qwen3Config, Qwen3ForCausalLM),
    "phi3": (Phi3Config, Phi3ForCausalLM),
    "gpt_neox": (GPTNeoXConfig, GPTNeoXForCausalLM),
    "opt": (OPTConfig, OPTForCausalLM),
    "gemma2": (Gemma2Config, Gemma2ForCausalLM),
    "gemma3_text": (Gemma3TextConfig, Gemma3ForCausalLM),
    # The multimodal checkpoint (a tiny SigLIP tower beside the language model): attnspec reads
    # only the language model, from text_config and the language_model.* weights.
    "gemma3": (Gemma3Config, Gemma3ForConditionalGeneration),
    "bert": (BertConfig, BertForMaskedLM),
}

#: Encoders: bidirectional attention (no mask), post-LN blocks whose attention reads the residual
#: stream itself; loaded with AutoModel (the bare encoder).
ENCODERS = {"bert"}
#: Variants saved from another model class than FAMILIES gives (BertModel saves its tensors
#: without the "bert." prefix, as sentence-transformers checkpoints do).
_VARIANT_MODEL_CLASS = {("bert", "no_prefix"): BertModel}

#: Families whose queries and keys are RMS-normalised per head before RoPE (q_norm / k_norm).
QK_NORM_FAMILIES = {"qwen3", "gemma3_text", "gemma3"}
#: Families with (1 + w) RMSNorm and embeddings times sqrt(d).
GEMMA_FAMILIES = {"gemma2", "gemma3_text", "gemma3"}
#: Families with learned absolute positions (no RoPE).
LEARNED_POSITION_FAMILIES = {"gpt2", "opt", "bert"}
#: Families with learned absolute positions instead of rotary embeddings.
NO_ROPE = LEARNED_POSITION_FAMILIES

_VOCAB = 512

# Llama-3 rope scaling, shrunk to a tiny model.  With rope_theta 5e5 and head_dim 32 the RoPE
# wavelengths 2*pi*theta^(2i/32) are 6.3, 14.4, 32.9, 75.2, 172, ... tokens.  With
# original_max_position_embeddings 128 the llama3 rule leaves wavelengths < 128/4 = 32 alone
# (bands 0, 1), smooths 32..128 (bands 2, 3) and divides the rest (bands 4..15) by `factor`,
# so all three branches of the rule are exercised.  max_position_embeddings = 128 * 32 mirrors
# how the real checkpoints extend their context by the factor.
LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 32.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 128,
}

#: (family, variant) -> config keyword arguments (family-native names).  Shapes noted as
#: d / H / G / d_h.  Contexts used by the tests are 24-40 tokens.
VARIANTS: dict[tuple[str, str], dict] = {
    # d 64 / H 4 / G 4 / d_h 16, learned positions, tied (GPT-2 always ties by default).
    ("gpt2", "base"): dict(n_embd=64, n_head=4, n_layer=3, n_positions=128, vocab_size=_VOCAB),
    # d 96 / H 3 / d_h 32; scale of layer l is 1/sqrt(d_h)/(l+1).  Untied lm_head.
    ("gpt2", "inv_layer_scale"): dict(
        n_embd=96, n_head=3, n_layer=4, n_positions=128, vocab_size=_VOCAB,
        scale_attn_by_inverse_layer_idx=True, tie_word_embeddings=False,
    ),
    # d 64 / H 4 / G 4 (GQA ratio 1) / d_h 16 derived, tied.
    ("llama", "base"): dict(
        hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=4,
        num_hidden_layers=3, vocab_size=_VOCAB, tie_word_embeddings=True,
    ),
    # d 96 / H 4 / G 2 (ratio 2) / explicit d_h 32 != 96/4 = 24, untied.
    ("llama", "head_dim32"): dict(
        hidden_size=96, intermediate_size=192, num_attention_heads=4, num_key_value_heads=2,
        head_dim=32, num_hidden_layers=3, vocab_size=_VOCAB, tie_word_embeddings=False,
    ),
    # d 128 / H 8 / G 2 (ratio 4) / d_h 16, untied, 4 layers.
    ("llama", "gqa4"): dict(
        hidden_size=128, intermediate_size=256, num_attention_heads=8, num_key_value_heads=2,
        num_hidden_layers=4, vocab_size=_VOCAB, tie_word_embeddings=False,
    ),
    # d 128 / H 4 / G 2 / d_h 32 with Llama-3 rope scaling (see LLAMA3_ROPE), tied.
    ("llama", "llama3_rope"): dict(
        hidden_size=128, intermediate_size=256, num_attention_heads=4, num_key_value_heads=2,
        num_hidden_layers=2, vocab_size=_VOCAB, tie_word_embeddings=True,
        max_position_embeddings=128 * 32, rope_parameters=dict(LLAMA3_ROPE),
    ),
    # d 64 / H 4 / G 2 / d_h 16, q/k/v biases, theta 1e6, tied (like Qwen2.5-3B).
    ("qwen2", "base"): dict(
        hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
        num_hidden_layers=3, vocab_size=_VOCAB, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
    ),
    # d 128 / H 2 / G 1 / d_h 64, untied.
    ("qwen2", "head_dim64"): dict(
        hidden_size=128, intermediate_size=256, num_attention_heads=2, num_key_value_heads=1,
        num_hidden_layers=2, vocab_size=_VOCAB, tie_word_embeddings=False,
    ),
    # d 128 / H 8 / G 2 (ratio 4) / d_h 16, sliding window 8, untied.
    ("mistral", "base"): dict(
        hidden_size=128, intermediate_size=256, num_attention_heads=8, num_key_value_heads=2,
        num_hidden_layers=3, vocab_size=_VOCAB, sliding_window=8, tie_word_embeddings=False,
    ),
    # d 64 / H 4 / G 4 / explicit d_h 32 (H*d_h = 128 != d), sliding window 12, tied.
    ("mistral", "head_dim32"): dict(
        hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=4,
        head_dim=32, num_hidden_layers=2, vocab_size=_VOCAB, sliding_window=12,
        tie_word_embeddings=True,
    ),
    # d 64 / H 4 / G 2 / explicit d_h 32, per-head q/k RMSNorm, tied (like Qwen3-0.6B).
    ("qwen3", "base"): dict(
        hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
        head_dim=32, num_hidden_layers=3, vocab_size=_VOCAB, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
    ),
    # d 64 / H 2 / G 1 / explicit d_h 16, q/k/v/o biases (attention_bias), sliding window 8 on
    # layers >= 1 (use_sliding_window + max_window_layers), untied.
    ("qwen3", "bias_window"): dict(
        hidden_size=64, intermediate_size=128, num_attention_heads=2, num_key_value_heads=1,
        head_dim=16, num_hidden_layers=3, vocab_size=_VOCAB, tie_word_embeddings=False,
        attention_bias=True, use_sliding_window=True, sliding_window=8, max_window_layers=1,
    ),
    # d 64 / H 4 / G 2 / d_h 16, fused qkv_proj and gate_up_proj, partial rotary 0.5 (8 of 16 dims),
    # sliding window 12 on every layer, untied.
    ("phi3", "base"): dict(
        hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
        num_hidden_layers=3, vocab_size=_VOCAB, tie_word_embeddings=False, sliding_window=12,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5},
        pad_token_id=0,
    ),
    # d 64 / H 4 / d_h 16, rotary over 4 of 16 dims (rotary_pct 0.25), fused per-head
    # query_key_value, parallel residual, LayerNorm and linear biases, exact gelu (Pythia).
    ("gpt_neox", "base"): dict(
        hidden_size=64, intermediate_size=256, num_attention_heads=4, num_hidden_layers=3,
        vocab_size=_VOCAB, rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25},
    ),
    # d 96 / H 3 / d_h 32, full rotary, sequential residual (use_parallel_residual = false), tied.
    ("gpt_neox", "sequential"): dict(
        hidden_size=96, intermediate_size=192, num_attention_heads=3, num_hidden_layers=2,
        vocab_size=_VOCAB, use_parallel_residual=False, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 1.0},
    ),
    # d 64 / H 4 / d_h 16, pre-LN, learned positions at offset 2, ReLU fc1/fc2, biases, tied (OPT-125m).
    ("opt", "base"): dict(
        hidden_size=64, ffn_dim=256, num_attention_heads=4, num_hidden_layers=3, vocab_size=_VOCAB,
        max_position_embeddings=128, word_embed_proj_dim=64, pad_token_id=1,
    ),
    # OPT-350m's shape: post-LN (do_layer_norm_before = false) and a 32-wide embedding widened by
    # project_in; d 64 / H 2 / d_h 32.
    ("opt", "post_ln_project"): dict(
        hidden_size=64, ffn_dim=128, num_attention_heads=2, num_hidden_layers=2, vocab_size=_VOCAB,
        max_position_embeddings=128, word_embed_proj_dim=32, do_layer_norm_before=False, pad_token_id=1,
    ),
    # d 64 / H 4 / G 2 / explicit d_h 32, query_pre_attn_scalar 24 (s = 24^-0.5 != d_h^-0.5),
    # logit soft-capping at 2 (the logits here reach several units, so the cap bites), layers
    # 0 and 2 sliding with window 8, 1 and 3 global; tied.
    ("gemma2", "base"): dict(
        hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
        head_dim=32, num_hidden_layers=4, vocab_size=_VOCAB, sliding_window=8, query_pre_attn_scalar=24,
        attn_logit_softcapping=2.0, final_logit_softcapping=30.0, pad_token_id=0,
    ),
    # d 64 / H 2 / G 1 / d_h 16, q/k RMSNorm, layer_types sliding, sliding, full (pattern 3), window
    # 8, local RoPE base 10000 and global 1e6 with linear scaling x2 (like gemma-3-4b), untied.
    ("gemma3_text", "base"): dict(
        hidden_size=64, intermediate_size=128, num_attention_heads=2, num_key_value_heads=1,
        head_dim=16, num_hidden_layers=3, vocab_size=_VOCAB, sliding_window=8, query_pre_attn_scalar=16,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"], tie_word_embeddings=False,
        rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "linear", "rope_theta": 1000000.0, "factor": 2.0},
        },
        pad_token_id=0,
    ),
    # The multimodal config around a text model: d 64 / H 2 / G 1 / d_h 16, two layers (sliding,
    # full by sliding_window_pattern 2), default RoPE bases (global 1e6, local 1e4).
    ("gemma3", "multimodal"): dict(
        hidden_size=64, intermediate_size=128, num_attention_heads=2, num_key_value_heads=1,
        head_dim=16, num_hidden_layers=2, vocab_size=_VOCAB, sliding_window=8, query_pre_attn_scalar=16,
        sliding_window_pattern=2, pad_token_id=0,
    ),
    # d 64 / H 4 / G 4 / d_h 16, encoder: post-LN, learned positions, token types, exact GELU,
    # biases everywhere; BertForMaskedLM saves tensors under "bert.".
    ("bert", "base"): dict(
        hidden_size=64, intermediate_size=128, num_attention_heads=4, num_hidden_layers=3,
        vocab_size=_VOCAB, max_position_embeddings=128, type_vocab_size=2,
    ),
    # d 96 / H 3 / d_h 32, tanh GELU, saved by BertModel (no "bert." prefix, as sentence-transformers).
    ("bert", "no_prefix"): dict(
        hidden_size=96, intermediate_size=192, num_attention_heads=3, num_hidden_layers=2,
        vocab_size=_VOCAB, max_position_embeddings=64, type_vocab_size=1, hidden_act="gelu_new",
    ),
}

# Initialisation scales.  Inputs of the q/k projections are normalised (entries O(1)), so
# std = gain / sqrt(d) gives q.k / sqrt(d_h) logits with a spread of roughly gain^2: large
# enough for peaked, position- and content-dependent attention, small enough to stay finite.
_QK_GAIN = 1.6
_BIAS_STD = 0.3
_NORM_WEIGHT_JITTER = 0.2


def _config_for(family: str, variant: str, overrides: dict):
    """Build the `transformers` config of (family, variant) with keyword overrides applied."""
    if (family, variant) not in VARIANTS:
        raise KeyError(f"unknown variant {(family, variant)}; known: {sorted(VARIANTS)}")
    config_cls, _ = FAMILIES[family]
    kwargs = dict(VARIANTS[(family, variant)])
    kwargs.update(overrides)
    if family == "gemma3":
        from transformers import SiglipVisionConfig

        text = Gemma3TextConfig(bos_token_id=1, eos_token_id=2, max_position_embeddings=256, **kwargs)
        vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                    image_size=32, patch_size=8)
        # Image marker ids inside the vocabulary: no token of a text window is replaced.
        return Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4, image_token_index=_VOCAB - 1,
                            boi_token_index=_VOCAB - 2, eoi_token_index=_VOCAB - 3)
    if family in ("gpt_neox", "opt"):
        kwargs.setdefault("bos_token_id", 0)
        kwargs.setdefault("eos_token_id", 2)
        for key in ("hidden_dropout", "attention_dropout", "dropout", "activation_dropout"):
            kwargs.setdefault(key, 0.0)
        if family == "gpt_neox":
            kwargs.setdefault("max_position_embeddings", 256)
    elif family in ENCODERS:
        kwargs.setdefault("hidden_dropout_prob", 0.0)
        kwargs.setdefault("attention_probs_dropout_prob", 0.0)
    elif family == "gpt2":
        # Dropout would make capture and recomputation disagree if anything ever ran in train mode.
        kwargs.setdefault("resid_pdrop", 0.0)
        kwargs.setdefault("embd_pdrop", 0.0)
        kwargs.setdefault("attn_pdrop", 0.0)
        kwargs.setdefault("bos_token_id", 0)
        kwargs.setdefault("eos_token_id", 0)
    else:
        kwargs.setdefault("bos_token_id", 1)
        kwargs.setdefault("eos_token_id", 2)
        kwargs.setdefault("max_position_embeddings", 256)
    return config_cls(**kwargs)


def _reinit_(model: torch.nn.Module, d: int, seed: int) -> None:
    """Deterministically re-initialise every parameter at scales that make attention non-trivial.

    Projection matrices get std gain/sqrt(fan_in); q/k get the larger `_QK_GAIN`; every bias
    (qwen2 q/k/v, gpt2 c_attn/c_proj/MLP, LayerNorm) is non-zero; norm weights are 1 + jitter
    so that X = norm(h) is not just a rescaled h.
    """
    gen = torch.Generator().manual_seed(seed)

    def normal(shape, std):
        return torch.randn(shape, generator=gen, dtype=torch.float32) * std

    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            leaf = name.rsplit(".", 1)[-1]
            is_norm = any(t in name for t in ("norm", "ln_", "LayerNorm"))
            if is_norm and leaf == "weight":
                p.copy_(1.0 + normal(p.shape, _NORM_WEIGHT_JITTER))
            elif is_norm and leaf == "bias":
                p.copy_(normal(p.shape, 0.1))
            elif leaf == "bias":
                p.copy_(normal(p.shape, _BIAS_STD))
            elif "embed_tokens" in name or name.endswith("wte.weight") or "embed_in" in name or "word_embeddings" in name:
                p.copy_(normal(p.shape, 1.0))
            elif name.endswith("wpe.weight") or "embed_positions" in name or "position_embeddings" in name or "token_type" in name:
                p.copy_(normal(p.shape, 0.5))
            elif "query_key_value" in name:
                # GPT-NeoX stores [heads, (q, k, v), d_h] rows: q and k rows get the q/k gain.
                w = normal(p.shape, 1.0 / d**0.5)
                heads = text_config(model.config).num_attention_heads
                w.view(heads, 3, -1, w.shape[-1])[:, :2] *= _QK_GAIN
                p.copy_(w)
            elif "qkv_proj" in name:
                # Phi-3 stores Q | K | V row blocks: the first H*d_h + G*d_h rows get the gain.
                cfg = text_config(model.config)
                d_h = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
                w = normal(p.shape, 1.0 / d**0.5)
                w[: (cfg.num_attention_heads + cfg.num_key_value_heads) * d_h] *= _QK_GAIN
                p.copy_(w)
            elif "c_attn" in name:
                # GPT-2 Conv1D stores [in, 3d]: q|k get the q/k gain, v the plain one.
                w = normal(p.shape, 1.0 / d**0.5)
                w[:, : 2 * d] *= _QK_GAIN
                p.copy_(w)
            elif any(t in name for t in ("q_proj", "k_proj", "self.query", "self.key")):
                p.copy_(normal(p.shape, _QK_GAIN / d**0.5))
            elif p.dim() == 2:
                # Linear stores [out, in], Conv1D [in, out]; use the larger dim as a safe fan-in.
                p.copy_(normal(p.shape, 1.0 / max(p.shape) ** 0.5))
            else:
                p.copy_(normal(p.shape, 0.1))


def make_tiny_checkpoint(
    family: str, out_dir, *, variant: str = "base", dtype: str = "float32", seed: int = 0, **overrides
) -> Path:
    """Write a random tiny `family`/`variant` checkpoint (safetensors) to `out_dir`; return the path.

    `overrides` are config keyword arguments (family-native names, e.g. `n_layer` for gpt2) applied
    on top of `VARIANTS[(family, variant)]`.  `dtype` is "float32" or "bfloat16"; the bf16 file is
    the float32 model rounded by `model.to(torch.bfloat16)`.
    """
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {dtype!r}")
    config = _config_for(family, variant, overrides)
    model_cls = _VARIANT_MODEL_CLASS.get((family, variant), FAMILIES[family][1])
    torch.manual_seed(seed)  # the constructor's own init; overwritten below anyway
    model = model_cls(config).eval()
    # Mix the variant into the seed so that variants sharing parameter shapes still differ.
    _reinit_(model, text_config(config).hidden_size, seed * 1_000_003 + zlib.crc32(f"{family}/{variant}".encode()))
    if dtype == "bfloat16":
        model = model.to(torch.bfloat16)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    return out


# --------------------------------------------------------------------------------------------
# Loading and capture
# --------------------------------------------------------------------------------------------


def load_model(model_dir, *, dtype: torch.dtype = torch.float32, **config_overrides):
    """Load a checkpoint for inference in eager attention (the reference softmax path).

    `config_overrides` are set on the loaded config before the weights are built (used by the
    tests, e.g. to drop the llama3 rope scaling while keeping the same weights).
    """
    config = AutoConfig.from_pretrained(model_dir)
    for key, value in config_overrides.items():
        setattr(config, key, value)
    # transformers 5 renamed `torch_dtype` to `dtype`.
    auto = AutoModel if config.model_type in ENCODERS else AutoModelForCausalLM
    model = auto.from_pretrained(
        model_dir, config=config, dtype=dtype, attn_implementation="eager"
    )
    if model.config._attn_implementation != "eager":
        raise RuntimeError(f"expected eager attention, got {model.config._attn_implementation!r}")
    return model.eval()


def _family_of(model) -> str:
    family = model.config.model_type
    if family not in FAMILIES:
        raise ValueError(f"unsupported model_type {family!r}")
    return family


def _layers(model):
    """The decoder blocks, in order."""
    family = _family_of(model)
    if family in ENCODERS:
        return model.encoder.layer
    if family == "gpt2":
        return model.transformer.h
    if family == "gpt_neox":
        return model.gpt_neox.layers
    if family == "opt":
        return model.model.decoder.layers
    if family == "gemma3":
        return model.model.language_model.layers
    return model.model.layers


def _attn_and_norm(block, family: str):
    """(attention module, pre-attention norm module) of one decoder block. For OPT with
    do_layer_norm_before = false the norm comes after attention (post-LN): see `pre_norm`."""
    if family in ENCODERS:  # post-LN: no norm before the attention, which reads the block input
        return block.attention.self, None
    if family == "gpt2":
        return block.attn, block.ln_1
    if family == "gpt_neox":
        return block.attention, block.input_layernorm
    if family == "opt":
        return block.self_attn, block.self_attn_layer_norm
    return block.self_attn, block.input_layernorm


def text_config(config):
    """The language model's config (multimodal Gemma3 nests it as text_config)."""
    return config.text_config if config.model_type == "gemma3" else config


def pre_norm(model) -> bool:
    """True when X = norm(h) (every family but post-LN OPT, whose attention sees h itself)."""
    family = _family_of(model)
    if family in ENCODERS:
        return False
    return family != "opt" or bool(model.config.do_layer_norm_before)


def _rope_parameters_of(cfg, layer_type=None):
    """The RoPE parameter dict a layer uses (Gemma3: one per layer type)."""
    rope = getattr(cfg, "rope_parameters", None)
    if isinstance(rope, dict) and "full_attention" in rope:
        return rope[layer_type or "full_attention"]
    return rope


def _shape_facts(model) -> dict:
    """H, G, d_h, d, n_layers, as the model's modules actually use them."""
    family = _family_of(model)
    cfg = text_config(model.config)
    attn, _ = _attn_and_norm(_layers(model)[0], family)
    H = cfg.num_attention_heads
    G = getattr(cfg, "num_key_value_heads", None) or H  # gpt2, gpt_neox, opt: no GQA
    d_h = attn.head_size if family == "gpt_neox" else attn.attention_head_size if family in ENCODERS else attn.head_dim
    facts = dict(
        family=family,
        H=H,
        G=G,
        d_h=d_h,  # from the module: honours an explicit config.head_dim
        d=cfg.hidden_size,
        n_layers=cfg.num_hidden_layers,
        vocab_size=cfg.vocab_size,
        tie_word_embeddings=bool(getattr(cfg, "tie_word_embeddings", False)),
        rope_parameters=getattr(cfg, "rope_parameters", None),
        causal=family not in ENCODERS,
    )
    return facts


def _sliding_window_of(model, layer: int):
    """Sliding window of `layer` (None = full causal), as the family decides it."""
    cfg = text_config(model.config)
    family = _family_of(model)
    if family == "mistral":
        return getattr(cfg, "sliding_window", None)
    if family in ("qwen2", "qwen3", "gemma2", "gemma3_text", "gemma3"):
        attn, _ = _attn_and_norm(_layers(model)[layer], family)
        return attn.sliding_window
    if family == "phi3":
        return getattr(cfg, "sliding_window", None)
    return None


def layer_type_of(model, layer: int):
    """'sliding_attention' / 'full_attention' where the config names layer types, else None."""
    types = getattr(text_config(model.config), "layer_types", None)
    return None if types is None else types[layer]


@contextlib.contextmanager
def _patched_eager_attention(model, records: dict):
    """Temporarily wrap the family's `eager_attention_forward` to record its inputs.

    Every family's attention module looks up `eager_attention_forward` as a module global at
    call time (`ALL_ATTENTION_FUNCTIONS.get_interface("eager", eager_attention_forward)` falls
    back to it), so replacing that global sees exactly the (query, key, value, mask, scaling)
    the softmax consumes: post-bias, post-RoPE, keys/values not yet repeated for GQA.
    """
    # The module of the model's (decoder or encoder layer's, not a vision tower's) attention class,
    # for any architecture, not only the families above.
    mod = next(sys.modules[type(m).__module__] for m in model.modules()
               if type(m).__name__.endswith("Attention") and hasattr(m, "layer_idx")
               and hasattr(sys.modules[type(m).__module__], "eager_attention_forward"))
    original = mod.eager_attention_forward

    opt = model.config.model_type == "opt"

    def recording(module, query, key, value, attention_mask, *args, **kwargs):
        scaling = kwargs["scaling"] if "scaling" in kwargs else (args[0] if args else None)
        q = query.detach().clone()
        if opt:
            # OPT multiplies q_proj's output by d_h^-0.5 and passes scaling 1.0; METRICS.md's Q is
            # the projection itself and s the softmax scale, so undo the product here.
            assert scaling == 1.0, scaling
            scaling = module.scaling
            q = q / scaling
        records[module.layer_idx] = dict(
            query=q,
            key=key.detach().clone(),
            value=value.detach().clone(),
            mask=None if attention_mask is None else attention_mask.detach().clone(),
            scaling=scaling,
            softcap=kwargs.get("softcap"),
        )
        return original(module, query, key, value, attention_mask, *args, **kwargs)

    mod.eager_attention_forward = recording
    try:
        yield
    finally:
        mod.eager_attention_forward = original


def _np64(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy()


def capture_model(model, token_ids) -> dict:
    """Run `token_ids` (1-D, batch 1) through a loaded eager model and capture every layer.

    Returns a dict of float64 numpy arrays (L layers, n tokens):
      X      [L, n, d]     the attention module's input (ln_1 / input_layernorm output; h for post-LN OPT)
      Q      [L, H, n, d_h] queries as the softmax consumes them (bias, RoPE applied)
      K      [L, G, n, d_h] keys likewise, one per KV head (not repeated to H)
      V      [L, G, n, d_h] values likewise
      scale  [L]           softmax scale the layer passed to the attention kernel (OPT: d_h^-0.5, see
                           `_patched_eager_attention`)
      softcap list of L     Gemma2's attn_logit_softcapping per layer (None: no cap)
      layer_types list of L 'sliding_attention' / 'full_attention' where the config names them
      resid  [L, n, d]     hidden state entering the block (input of the norm)
      attn_out [L, n, d]   attention module output (after o_proj / c_proj, before the residual)
      visible [L, n, n]    bool, True where the model's additive mask lets query i see key j
      sliding_window  list of L (int or None) per the config
      logits [n, vocab]    (None for an encoder, loaded without its head)
      config  dict: family, H, G, d_h, d, n_layers, n, vocab_size, tie_word_embeddings, rope_parameters,
              causal (False for an encoder: no mask, every key visible)
    """
    family = _family_of(model)
    facts = _shape_facts(model)
    layers = _layers(model)
    ids = torch.as_tensor(list(token_ids), dtype=torch.long).reshape(1, -1)
    n = ids.shape[1]

    records: dict[int, dict] = {}
    resid, X, out = {}, {}, {}
    handles = []

    def grab_input(idx):
        def hook(module, args, kwargs):
            h = args[0] if args else kwargs["hidden_states"]
            resid[idx] = h.detach().clone()

        return hook

    def grab_attention_input(idx):
        # X is what the attention module is handed: norm(h) in pre-norm blocks, h for post-LN OPT.
        def hook(module, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            X[idx] = x.detach().clone()

        return hook

    def grab_output(store, idx):
        def hook(module, args, output):
            o = output[0] if isinstance(output, tuple) else output
            store[idx] = o.detach().clone()

        return hook

    for idx, block in enumerate(layers):
        attn, norm = _attn_and_norm(block, family)
        handles.append(block.register_forward_pre_hook(grab_input(idx), with_kwargs=True))
        handles.append(attn.register_forward_pre_hook(grab_attention_input(idx), with_kwargs=True))
        # The attention block's output before the residual add: BERT's output projection sits
        # outside its self-attention module.
        out_module = block.attention.output.dense if family in ENCODERS else attn
        handles.append(out_module.register_forward_hook(grab_output(out, idx)))
    try:
        with torch.no_grad(), _patched_eager_attention(model, records):
            result = model(input_ids=ids, use_cache=False)
            logits = getattr(result, "logits", None)  # encoders: None (no LM head loaded)
    finally:
        for h in handles:
            h.remove()

    L = facts["n_layers"]
    missing = [l for l in range(L) if l not in records]
    if missing:
        # e.g. GPT-2 with reorder_and_upcast_attn bypasses the attention interface.
        raise RuntimeError(f"eager attention was not called for layers {missing}")

    def visible(mask):
        if mask is None:  # no mask at all means every key is visible
            return np.ones((n, n), dtype=bool)
        m = mask[0, 0] if mask.dim() == 4 else mask
        return (m > torch.finfo(m.dtype).min / 2).cpu().numpy()

    return dict(
        X=np.stack([_np64(X[l][0]) for l in range(L)]),
        Q=np.stack([_np64(records[l]["query"][0]) for l in range(L)]),
        K=np.stack([_np64(records[l]["key"][0]) for l in range(L)]),
        V=np.stack([_np64(records[l]["value"][0]) for l in range(L)]),
        scale=np.array([float(records[l]["scaling"]) for l in range(L)], dtype=np.float64),
        softcap=[records[l]["softcap"] for l in range(L)],
        layer_types=[layer_type_of(model, l) for l in range(L)],
        resid=np.stack([_np64(resid[l][0]) for l in range(L)]),
        attn_out=np.stack([_np64(out[l][0]) for l in range(L)]),
        visible=np.stack([visible(records[l]["mask"]) for l in range(L)]),
        sliding_window=[_sliding_window_of(model, l) for l in range(L)],
        logits=None if logits is None else _np64(logits[0]),
        config=dict(facts, n=n),
    )


def capture(model_dir, token_ids, *, dtype: torch.dtype = torch.float32, **config_overrides) -> dict:
    """Load `model_dir` in eager attention at `dtype` and `capture_model` it (see there for keys)."""
    return capture_model(load_model(model_dir, dtype=dtype, **config_overrides), token_ids)


# --------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------


def _projection_matrices(attn, family: str, d: int):
    """(W_q, W_k, W_v, b_q, b_k, b_v) of one attention module, y = W x convention, float64.

    GPT-2's Conv1D computes y = x @ weight + bias with weight [in, out] = [d, 3d], the output
    split q|k|v; so W = weight[:, slice].T.  Missing biases are returned as None.
    """
    if family == "gpt2":
        w, b = _np64(attn.c_attn.weight), _np64(attn.c_attn.bias)
        Ws = [w[:, i * d : (i + 1) * d].T for i in range(3)]
        bs = [b[i * d : (i + 1) * d] for i in range(3)]
        return (*Ws, *bs)
    if family == "gpt_neox":
        # query_key_value's output is viewed as [heads, 3 * d_h] and chunked into q, k, v per head.
        lin = attn.query_key_value
        w = _np64(lin.weight).reshape(-1, 3, attn.head_size, d)
        Ws = [w[:, i].reshape(-1, d) for i in range(3)]
        bs = [None] * 3
        if lin.bias is not None:
            b = _np64(lin.bias).reshape(-1, 3, attn.head_size)
            bs = [b[:, i].reshape(-1) for i in range(3)]
        return (*Ws, *bs)
    if family == "phi3":
        # qkv_proj's output is sliced q | k | v along its rows.
        w = _np64(attn.qkv_proj.weight)
        qd = attn.config.num_attention_heads * attn.head_dim
        kvd = attn.num_key_value_heads * attn.head_dim
        return w[:qd], w[qd : qd + kvd], w[qd + kvd :], None, None, None
    projs = (attn.query, attn.key, attn.value) if family in ENCODERS else (attn.q_proj, attn.k_proj, attn.v_proj)
    Ws = [_np64(p.weight) for p in projs]
    bs = [None if p.bias is None else _np64(p.bias) for p in projs]
    return (*Ws, *bs)


def _output_projection(attn, family: str, block=None):
    """(W_o [d, H*d_h], b_o or None) in y = W x convention, float64."""
    if family == "gpt2":
        return _np64(attn.c_proj.weight).T, _np64(attn.c_proj.bias)
    if family in ENCODERS:
        o = block.attention.output.dense
    else:
        o = getattr(attn, {"gpt_neox": "dense", "opt": "out_proj"}.get(family, "o_proj"))
    return _np64(o.weight), None if o.bias is None else _np64(o.bias)


def weight_blocks_of(model) -> dict:
    """Per-head projection blocks of a loaded model (see `weight_blocks`)."""
    family = _family_of(model)
    facts = _shape_facts(model)
    H, G, d_h, d = facts["H"], facts["G"], facts["d_h"], facts["d"]
    Wq, Wk, Wv, bq, bk, bv, Wo, bo = ([] for _ in range(8))
    for block in _layers(model):
        attn, _ = _attn_and_norm(block, family)
        wq, wk, wv, b_q, b_k, b_v = _projection_matrices(attn, family, d)
        # Rows h*d_h:(h+1)*d_h of the projection are head h: the modules view the output as
        # [..., heads, d_h] (row-major), the same split `view(hidden_shape)` performs.
        Wq.append(wq.reshape(H, d_h, d))
        Wk.append(wk.reshape(G, d_h, d))
        Wv.append(wv.reshape(G, d_h, d))
        bq.append(None if b_q is None else b_q.reshape(H, d_h))
        bk.append(None if b_k is None else b_k.reshape(G, d_h))
        bv.append(None if b_v is None else b_v.reshape(G, d_h))
        w_o, b_o = _output_projection(attn, family, block)
        Wo.append(w_o)
        bo.append(b_o)

    def stack_or_none(xs):
        return None if xs[0] is None else np.stack(xs)

    return dict(
        Wq=np.stack(Wq), Wk=np.stack(Wk), Wv=np.stack(Wv),
        bq=stack_or_none(bq), bk=stack_or_none(bk), bv=stack_or_none(bv),
        Wo=np.stack(Wo), bo=stack_or_none(bo),
        config=facts,
    )


def weight_blocks(model_dir) -> dict:
    """Per-head projection blocks of a checkpoint, float64 (loaded through transformers in fp32).

    Returns
      Wq [L, H, d_h, d]   W_Q^(h) of layer l is Wq[l, h]   (y = W x convention)
      Wk [L, G, d_h, d]   W_K^(g)
      Wv [L, G, d_h, d]   W_V^(g)
      bq [L, H, d_h], bk [L, G, d_h], bv [L, G, d_h]   or None when the family has no bias
      Wo [L, d, H*d_h], bo [L, d] or None               output projection
      config  dict as in `capture` (without n)
    """
    return weight_blocks_of(load_model(model_dir, dtype=torch.float32))


def kv_head_of(h: int, H: int, G: int) -> int:
    """KV head serving query head h under GQA, as `repeat_kv` maps it."""
    return h // (H // G)


# --------------------------------------------------------------------------------------------
# Reference spectra (dense, float64) and summaries, per METRICS.md
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _openblas_thread_api():
    """(get, set) thread-count functions of the OpenBLAS numpy loaded, or None if not found.

    Multi-threaded OpenBLAS is 20-70x *slower* than one thread on these small SVDs when the
    (2-core) machine is busy, because its workers spin; so the dense references run on one thread.
    """
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower()})
    except OSError:
        return None
    names = [
        ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
        ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
        ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
        ("openblas_get_num_threads", "openblas_set_num_threads"),
    ]
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get_name, set_name in names:
            if hasattr(lib, get_name) and hasattr(lib, set_name):
                return getattr(lib, get_name), getattr(lib, set_name)
    return None


@contextlib.contextmanager
def single_threaded_blas():
    """Run the block with numpy's OpenBLAS on one thread (no-op if it cannot be found)."""
    api = _openblas_thread_api()
    if api is None:
        yield
        return
    get, set_ = api
    old = int(get())
    set_(1)
    try:
        yield
    finally:
        set_(old)


def _svals(A: np.ndarray) -> np.ndarray:
    """Singular values, descending, of a float64 copy of A (dense LAPACK SVD)."""
    with single_threaded_blas():
        return np.linalg.svd(np.asarray(A, dtype=np.float64), compute_uv=False)


def energy_field(Qh, Kg, scale: float) -> np.ndarray:
    """E~ = s Q K^T with each row minus its mean over all n keys (no mask), n x n."""
    E = float(scale) * np.asarray(Qh, np.float64) @ np.asarray(Kg, np.float64).T
    return E - E.mean(axis=1, keepdims=True)


def field_singular_values(Qh, Kg, scale: float) -> np.ndarray:
    """Singular values (descending) of the row-centred logit field E~; first min(n, d_h) of them."""
    n, d_h = np.shape(Qh)
    return _svals(energy_field(Qh, Kg, scale))[: min(n, d_h)]


def capped_field(Qh, Kg, scale: float, cap: float) -> np.ndarray:
    """Soft-capped logits cap * tanh(s Q K^T / cap) (Gemma2), row-centred over all n keys, no mask:
    the capped counterpart of `energy_field`."""
    E = float(scale) * np.asarray(Qh, np.float64) @ np.asarray(Kg, np.float64).T
    C = cap * np.tanh(E / cap)
    return C - C.mean(axis=1, keepdims=True)


def capped_field_singular_values(Qh, Kg, scale: float, cap: float) -> np.ndarray:
    """All n singular values (descending) of `capped_field` (full rank in general)."""
    return _svals(capped_field(Qh, Kg, scale, cap))


def causal_capped_field_singular_values(Qh, Kg, scale: float, cap: float, window=None) -> np.ndarray:
    """All n singular values of the capped logits in the E~c convention: row i keeps the keys it
    sees (j <= i, and i - j < window when the layer has one), centred over them; zero elsewhere."""
    E = float(scale) * np.asarray(Qh, np.float64) @ np.asarray(Kg, np.float64).T
    C = cap * np.tanh(E / cap)
    n = C.shape[0]
    i, j = np.indices((n, n))
    keep = j <= i
    if window is not None:
        keep &= (i - j) < window
    C = np.where(keep, C, 0.0)
    C -= np.where(keep, C.sum(axis=1, keepdims=True) / keep.sum(axis=1, keepdims=True), 0.0)
    return _svals(C)


def causal_field_singular_values(Qh, Kg, scale: float) -> np.ndarray:
    """All n singular values of the causal energy field E~c (METRICS.md: row i centred over keys
    j <= i only, entries j > i zero; plain causal, no sliding window)."""
    E = float(scale) * np.asarray(Qh, np.float64) @ np.asarray(Kg, np.float64).T
    n = E.shape[0]
    keep = np.tril(np.ones((n, n), dtype=bool))
    Ec = np.where(keep, E, 0.0)
    Ec -= np.where(keep, Ec.sum(axis=1, keepdims=True) / np.arange(1, n + 1)[:, None], 0.0)
    return _svals(Ec)


def weights_singular_values(Wq_h, Wk_g) -> np.ndarray:
    """Singular values of M = W_Q^(h)T W_K^(g) (d x d, dense SVD); first d_h of them."""
    Wq_h = np.asarray(Wq_h, np.float64)
    return _svals(Wq_h.T @ np.asarray(Wk_g, np.float64))[: Wq_h.shape[0]]


def variance_fractions(svals) -> np.ndarray:
    """c_k = sum_{i<=k} sigma_i^2 / sum sigma_i^2 for k = 1..r (last entry exactly 1)."""
    cs = np.cumsum(np.asarray(svals, np.float64) ** 2)
    return cs / cs[-1]


def k_tau(svals, tau: float) -> int:
    """Smallest k with c_k >= tau (0 for an all-zero spectrum)."""
    s = np.asarray(svals, np.float64)
    if s.size == 0 or not np.any(s > 0):
        return 0
    if not 0.0 < tau <= 1.0:
        raise ValueError(f"tau must be in (0, 1], got {tau}")
    return int(np.argmax(variance_fractions(s) >= tau)) + 1


def erank(svals) -> float:
    """Roy & Vetterli effective rank exp(-sum p ln p), p_i = sigma_i / sum sigma (0 if all zero)."""
    s = np.asarray(svals, np.float64)
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s[s > 0] / total
    return float(np.exp(-np.sum(p * np.log(p))))


def participation_ratio(svals) -> float:
    """(sum sigma^2)^2 / sum sigma^4 (0 if all zero)."""
    s2 = np.asarray(svals, np.float64) ** 2
    den = np.sum(s2**2)
    return float(np.sum(s2) ** 2 / den) if den > 0 else 0.0


def stable_rank(svals) -> float:
    """sum sigma^2 / sigma_1^2 (0 if all zero)."""
    s = np.asarray(svals, np.float64)
    top = np.max(s) if s.size else 0.0
    return float(np.sum(s**2) / top**2) if top > 0 else 0.0


def spectral_gap(svals_M, svals_E, tau: float = 0.90) -> dict:
    """k_tau(M)/k_tau(E~) and erank(M)/erank(E~)."""
    return dict(
        k_tau=k_tau(svals_M, tau) / k_tau(svals_E, tau),
        erank=erank(svals_M) / erank(svals_E),
    )


def assert_attnspec_matches(hf_model, ours, token_ids, *, qk_tol: float, what: str) -> dict:
    """attnspec's loaded model `ours` (attnspec.Model) against the transformers model `hf_model` on
    the same ids: the attention input X, Q and K of every layer within `qk_tol` of the largest
    entry; every head's field spectrum against a dense SVD of E~ from transformers' Q and K
    (1e-4 of sigma_1) and its W_Q^T W_K spectrum against a dense SVD of the weight blocks (1e-6).
    Returns the captured reference."""
    ref = capture_model(hf_model, token_ids)
    c = ref["config"]
    for layer, got in enumerate(ours.capture(token_ids)):
        for key in ("X", "Q", "K"):
            diff = np.max(np.abs(got[key] - ref[key][layer])) / np.max(np.abs(ref[key][layer]))
            assert diff < qk_tol, f"{what} layer {layer} {key}: {diff:.2e}"
    field, weights = ours.field_spectra(token_ids), ours.weight_spectra()
    blocks = weight_blocks_of(hf_model)
    for layer in range(c["n_layers"]):
        for h in range(c["H"]):
            g = kv_head_of(h, c["H"], c["G"])
            dense_e = field_singular_values(ref["Q"][layer, h], ref["K"][layer, g], ref["scale"][layer])
            dense_m = weights_singular_values(blocks["Wq"][layer, h], blocks["Wk"][layer, g])
            # When d_h > d, W_Q^T W_K has rank <= d; attnspec gives the d_h values of its core.
            dense_m = np.pad(dense_m, (0, len(weights[layer, h]) - len(dense_m)))
            assert np.max(np.abs(field[layer, h] - dense_e)) < 1e-4 * dense_e[0], (what, layer, h)
            assert np.max(np.abs(weights[layer, h] - dense_m)) < 1e-6 * dense_m[0], (what, layer, h)
    return ref
