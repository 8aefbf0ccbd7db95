"""GGUF files written the way llama.cpp's convert_hf_to_gguf.py writes them, with the `gguf`
package (llama.cpp's own Python writer), from the tiny transformers checkpoints of the oracle tests.

What is replicated from the converter, per architecture (LlamaModel, Qwen2Model, Qwen3Model,
Phi3MiniModel, Gemma2Model, Gemma3Model, GPT2Model):
- architecture "llama" for Llama and Mistral checkpoints, and the family's own otherwise;
- the hyperparameter keys each class writes ({arch}.block_count, .context_length,
  .embedding_length, .feed_forward_length, .attention.head_count(_kv), .rope.freq_base,
  .rope.dimension_count, .attention.layer_norm_rms_epsilon / .layer_norm_epsilon,
  .attention.key_length/value_length, .attention.sliding_window, .attn_logit_softcapping, ...);
- tensor names from gguf's own HF -> GGUF name map;
- for "llama", LlamaModel.permute of the q_proj/k_proj rows (weights and biases) into
  interleaved RoPE pairs; for Gemma, every norm weight stored as 1 + w (the final norm, output_norm,
  too) and no lm_head (Gemma2Model / Gemma3Model drop it: llama.cpp's Gemma always ties its head to
  token_embd); for GPT-2, the Conv1D weights transposed to [out, in];
- the final norm as output_norm(.bias) and a separate lm_head as output; a tied head is not saved
  by transformers, so the file has no output and readers use token_embd;
- 1-D tensors (norms, biases) stay F32; 2-D tensors take the chosen type through
  gguf.quants.quantize, falling back to F16 (as the converter does on gguf.QuantError) for rows
  that are not whole blocks of the type (e.g. not a multiple of 32 for Q8_0).
One addition: for Mistral the sliding window is recorded as {arch}.attention.sliding_window
(the converter drops it for "llama"), so that both sides compute the same attention.
"""
from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file, save_file

TYPES = {name: gguf.GGMLQuantizationType[name] for name in
         ("F32", "F16", "BF16", "Q8_0", "Q5_1", "Q5_0", "Q4_1", "Q4_0", "MXFP4", "TQ2_0", "TQ1_0")}


def llama_permute(w: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """convert_hf_to_gguf.py LlamaModel.permute."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama_unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """The inverse of llama_permute for a tensor of n_head heads."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


#: Hugging Face model_type -> GGUF architecture of the converter class that writes it.
ARCH = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "phi3": "phi3",
        "gemma2": "gemma2", "gemma3_text": "gemma3", "gpt2": "gpt2"}
GPT2_CONV1D = (".c_attn.weight", ".c_proj.weight", ".c_fc.weight")


def stored_type(shape, type_name: str) -> str:
    """The type a tensor of this shape is written in when `type_name` is asked for: 1-D tensors
    stay F32; rows that are not whole blocks of the type fall back to F16, as the converter does
    when gguf.quants.quantize raises gguf.QuantError."""
    if len(shape) == 1 or type_name == "F32":
        return "F32"
    block = gguf.GGML_QUANT_SIZES[TYPES[type_name]][0]
    return type_name if shape[-1] % block == 0 else "F16"


def stored(w: np.ndarray, type_name: str):
    """(array to write, raw_dtype, float32 values it decodes to) for one tensor."""
    type_name = stored_type(w.shape, type_name)
    if type_name == "F32":
        w = w.astype(np.float32)
        return w, None, w
    qtype = TYPES[type_name]
    if type_name == "F16":
        h = w.astype(np.float16)
        return h, None, h.astype(np.float32)
    q = gguf.quants.quantize(w.astype(np.float32), qtype)
    return q, qtype, gguf.quants.dequantize(q, qtype).astype(np.float32).reshape(w.shape)


def _write_hparams(w: gguf.GGUFWriter, cfg: dict, family: str, arch: str, sliding_window_key: bool) -> None:
    """The keys each converter class writes (see the module docstring)."""
    rope = cfg.get("rope_parameters") or {}
    if family == "gpt2":  # GPT2Model
        w.add_block_count(cfg["n_layer"])
        w.add_context_length(cfg["n_positions"])
        w.add_embedding_length(cfg["n_embd"])
        w.add_feed_forward_length(4 * cfg["n_embd"])
        w.add_head_count(cfg["n_head"])
        w.add_layer_norm_eps(cfg["layer_norm_epsilon"])
        return
    n_head = cfg["num_attention_heads"]
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(cfg.get("num_key_value_heads", n_head))
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    if cfg.get("head_dim") is not None and family != "phi3":
        w.add_key_length(cfg["head_dim"])
        w.add_value_length(cfg["head_dim"])
    if family == "gemma2":  # Gemma2Model: no rope keys (base 10000)
        w.add_attn_logit_softcapping(cfg["attn_logit_softcapping"])
        w.add_final_logit_softcapping(cfg["final_logit_softcapping"])
        w.add_sliding_window(cfg["sliding_window"])
        return
    if family == "gemma3_text":  # Gemma3Model: the global layers' RoPE, linear scaling only
        glob = rope.get("full_attention", rope)
        w.add_rope_freq_base(float(glob.get("rope_theta", 1e6)))
        w.add_sliding_window(cfg["sliding_window"])
        if glob.get("rope_type", "default") == "linear":
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(glob["factor"])
        return
    w.add_rope_freq_base(float(cfg.get("rope_theta") or rope.get("rope_theta", 10000.0)))
    if family == "phi3":  # Phi3MiniModel: rotary dims from the partial factor, window 0 for none
        rot = int(rope.get("partial_rotary_factor", 1.0) * cfg["hidden_size"]) // n_head
        w.add_rope_dimension_count(rot)
        w.add_rope_scaling_orig_ctx_len(cfg.get("original_max_position_embeddings") or cfg["max_position_embeddings"])
        w.add_sliding_window(cfg.get("sliding_window") or 0)
    if arch == "llama":
        w.add_vocab_size(cfg["vocab_size"])
        w.add_rope_dimension_count(cfg.get("head_dim") or cfg["hidden_size"] // n_head)
    if family == "mistral" and sliding_window_key and cfg.get("sliding_window"):
        w.add_sliding_window(cfg["sliding_window"])


def write_gguf(hf_dir: Path, out: Path, type_name: str, *, reference_dir: Path | None = None,
               sliding_window_key: bool = True, spm_vocab: tuple[list[str], list[float]] | None = None) -> Path:
    """Writes `out` from the checkpoint folder `hf_dir`. With `reference_dir`, also writes there a
    safetensors folder holding exactly the float32 values the GGUF tensors decode to (same config;
    the converter's permutation, transposition and 1 + w undone in float32, as a reader does; a Gemma
    head the converter dropped is tied to the embedding there too, as in the file).
    `spm_vocab` (pieces with U+2581 for spaces, scores) adds a SentencePiece tokenizer, BOS 1."""
    cfg = json.loads((hf_dir / "config.json").read_text())
    family = cfg["model_type"]
    arch = ARCH[family]
    tensors = load_file(str(hf_dir / "model.safetensors"))
    n_layers = cfg.get("num_hidden_layers") or cfg["n_layer"]
    n_head = cfg.get("num_attention_heads") or cfg["n_head"]
    n_kv = cfg.get("num_key_value_heads") or n_head

    w = gguf.GGUFWriter(str(out), arch)
    _write_hparams(w, cfg, family, arch, sliding_window_key)
    w.add_file_type({"F32": 0, "F16": 1, "BF16": 32, "Q8_0": 7}[type_name])
    if spm_vocab is not None:
        w.add_tokenizer_model("llama")
        w.add_token_list(spm_vocab[0])
        w.add_token_scores(spm_vocab[1])
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_unk_token_id(0)
        w.add_pad_token_id(0)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.upper()], n_layers)
    gemma = family.startswith("gemma")
    reference = {}
    for name, t in tensors.items():
        t = t.astype(np.float32)
        if gemma and name == "lm_head.weight":  # Gemma2Model / Gemma3Model skip it: the file is tied
            cfg = dict(cfg, tie_word_embeddings=True)
            continue
        heads = n_head if name.endswith(("q_proj.weight", "q_proj.bias")) else n_kv
        permuted = arch == "llama" and name.endswith(("q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias"))
        transposed = family == "gpt2" and name.endswith(GPT2_CONV1D)
        shifted = gemma and name.endswith("norm.weight")
        data = t
        if permuted:
            data = llama_permute(t, n_head, heads)
        if transposed:
            data = np.ascontiguousarray(t.T)
        if shifted:
            data = t + np.float32(1)
        new_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        assert new_name is not None, name
        array, raw_dtype, decoded = stored(data, type_name)
        w.add_tensor(new_name, array, raw_dtype=raw_dtype)
        if permuted:
            decoded = llama_unpermute(decoded, heads)
        if transposed:
            decoded = decoded.T
        if shifted:
            decoded = decoded - np.float32(1)
        reference[name] = decoded
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    if reference_dir is not None:
        reference_dir.mkdir(parents=True, exist_ok=True)
        (reference_dir / "config.json").write_text(json.dumps(cfg))
        save_file({k: np.ascontiguousarray(v) for k, v in reference.items()}, str(reference_dir / "model.safetensors"))
    return out


def write_tokenizer_gguf(tokenizer_json: Path, out: Path, kind: str, pre: str | None = None) -> Path:
    """A GGUF file holding only the tokenizer of a tokenizer.json, as llama.cpp's converter writes it:
    tokens in id order, token types (1 normal, 3 control, 4 user defined, 6 byte), and either
    SentencePiece scores ("llama") or BPE merges and the pre-tokenizer name ("gpt2").

    For "llama" the scores are SentencePiece's: a BPE piece's score orders merges (higher merges
    first), which tokenizer.json keeps as the merge rank, so score = -rank of the merge that forms
    the piece (0 for pieces no merge forms)."""
    j = json.loads(tokenizer_json.read_text())
    model = j["model"]
    vocab = dict(model["vocab"])
    added = {t["id"]: t for t in j.get("added_tokens", [])}
    for t in added.values():
        vocab.setdefault(t["content"], t["id"])
    n = max(vocab.values()) + 1
    tokens = [""] * n
    for tok, i in vocab.items():
        tokens[i] = tok
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    types = []
    for i, tok in enumerate(tokens):
        if i in added:
            types.append(3 if added[i].get("special") else 4)
        elif kind == "llama" and tok.startswith("<0x") and tok.endswith(">") and len(tok) == 6:
            types.append(6)
        else:
            types.append(1)
    w = gguf.GGUFWriter(str(out), "llama")
    w.add_tokenizer_model(kind)
    if pre is not None:
        w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    if kind == "llama":
        scores = [0.0] * n
        for rank, m in enumerate(merges):
            merged = m.replace(" ", "", 1) if m.count(" ") == 1 else None
            if merged is not None and merged in vocab and scores[vocab[merged]] == 0.0:
                scores[vocab[merged]] = -float(rank + 1)
        w.add_token_scores(scores)
        w.add_bos_token_id(vocab["<s>"])
        w.add_eos_token_id(vocab["</s>"])
        w.add_unk_token_id(vocab["<unk>"])
        w.add_add_bos_token(True)
    else:
        w.add_token_merges(merges)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out
