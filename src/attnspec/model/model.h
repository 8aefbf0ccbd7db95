// A model is data: a config (shapes, norm, positions, attention choices) and a table of where each
// weight lives in the checkpoint and how it is stored. One forward pass (forward.h) reads both.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attnspec/io/safetensors.h"

namespace attnspec {

enum class NormKind { LayerNorm, RMSNorm };
enum class MlpKind { GeluTanh, GeluExact, SwiGLU, GeGLU, Relu };  // GeGLU: gelu_tanh(gate) * up

struct ModelConfig {
  std::string family;      // config.json's model_type, e.g. "gpt2", "llama", "gemma2", "bert"
  int n_layers = 0;
  int d_model = 0;         // d
  int n_heads = 0;         // H, query heads
  int n_kv_heads = 0;      // G, key/value heads (grouped-query attention when G < H)
  int head_dim = 0;        // d_h
  int d_ff = 0;
  int vocab_size = 0;
  int embed_width = 0;     // token embedding width when it differs from d (OPT's word_embed_proj_dim); 0 = d
  int max_positions = 0;
  NormKind norm = NormKind::RMSNorm;
  double norm_eps = 1e-5;
  MlpKind mlp = MlpKind::SwiGLU;
  bool learned_positions = false;  // GPT-2's wpe; otherwise rotary
  int position_offset = 0;         // row of position 0 in the learned table (OPT: 2)
  float embed_scale = 1.0f;        // token embeddings times this (Gemma: sqrt(d), in the weights' dtype)
  bool norm_plus_one = false;      // RMSNorm multiplies by (1 + w) (Gemma)
  bool qk_norm = false;            // per-head RMSNorm of Q and K over d_h before RoPE (Qwen3, Gemma3)
  // Block wiring. Pre-norm (default): h += attn(norm1(h)); h += mlp(norm2(h)).
  //   parallel_residual (GPT-NeoX): h += attn(norm1(h)) + mlp(norm2(h)), both from the same h.
  //   post_norm (BERT, OPT with do_layer_norm_before = false): the attention reads the residual
  //     stream h itself, h = norm1(h + attn(h)); h = norm2(h + mlp(h)).
  // A layer's attn_out_norm / mlp_out_norm (Gemma2/3) normalise a block's output before it is added.
  bool parallel_residual = false;
  bool post_norm = false;
  double attn_softcap = 0;         // > 0: logits become cap * tanh(logits / cap) before the mask (Gemma2)
  // The output side. tie_word_embeddings: with no separate LM head stored, the token embedding is
  // the head (config.json's field, or the family's default). final_softcap > 0: the LM head's
  // logits become cap * tanh(logits / cap) (Gemma2's final_logit_softcapping).
  bool tie_word_embeddings = false;
  double final_softcap = 0;
  // Rotary embedding (rotate-half convention over the first rotary_dim dims of each head).
  int rotary_dim = 0;
  std::vector<float> inv_freq;      // [rotary_dim / 2], scaling (llama3, linear) already applied
  std::vector<float> inv_freq_sliding;  // non-empty: the RoPE of layers marked in local_rope (Gemma3's local base)
  std::vector<char> local_rope;         // per layer: 1 = sliding-attention layer using inv_freq_sliding
  float rope_attention_scaling = 1.0f;
  std::string rope_description;     // e.g. "rope theta=500000 llama3(factor=32,...)"
  std::vector<double> softmax_scale;  // per layer: s in E = s q.k
  std::vector<int> sliding_window;    // per layer: 0 = full causal, W = keys with i - j < W
  // Encoders (BERT) attend bidirectionally: every query sees all n keys, so the unmasked E~ is
  // exactly the field their softmax sees. Decoders see keys j <= i.
  bool causal = true;
  int type_vocab_size = 0;  // BERT's token_type_embeddings rows (type 0 is added to every token)

  int kv_head_of(int h) const { return h / (n_heads / n_kv_heads); }  // HF repeat_kv
  int64_t parameter_count = 0;  // of the tensors in the checkpoint
};

// y = x W^T + b for x of shape [n, in]. Hugging Face Linear stores W as [out, in]; GPT-2's Conv1D
// stores it transposed, [in, out_total], and its fused c_attn holds Q, K and V side by side, so a
// projection is a column range of that matrix.
struct LinearSpec {
  std::string weight;        // tensor name
  std::string bias;          // empty when the layer has none
  int64_t out = 0, in = 0;   // logical shape
  bool in_out_layout = false;
  int64_t col_offset = 0;    // first output column inside a fused [in, out_total] weight
  // Fused [out_total, in] weights (Phi-3's qkv_proj, GPT-NeoX's query_key_value): logical output
  // row o is stored at row_offset + o, or, when head_stride > 0, heads of head_rows rows are
  // head_stride rows apart: row_offset + (o / head_rows) * head_stride + o % head_rows.
  int64_t row_offset = 0;
  int64_t head_rows = 0, head_stride = 0;
  int64_t stored_row(int64_t o) const {
    return row_offset + (head_stride > 0 ? (o / head_rows) * head_stride + o % head_rows : o);
  }
};

struct LayerSpec {
  std::string attn_norm_weight, attn_norm_bias;  // bias empty for RMSNorm
  std::string mlp_norm_weight, mlp_norm_bias;
  LinearSpec q, k, v, o;
  LinearSpec up, gate, down;  // gate only for SwiGLU / GeGLU
  std::string q_norm_weight, k_norm_weight;            // [d_h], qk_norm only
  std::string attn_out_norm_weight, mlp_out_norm_weight;  // [d], empty when absent
};

struct Model {
  std::filesystem::path path;  // a checkpoint folder, or one GGUF / llama2.c file
  std::string format;          // "safetensors", "gguf" or "llama2.c"
  nlohmann::json hf_config;    // config.json, or what it would be for a one-file format
  ModelConfig config;
  std::unique_ptr<TensorStore> store;
  std::string embed;      // [vocab, d]
  std::string pos_embed;  // [max_positions + position_offset, d], learned positions only
  std::string type_embed;                          // [type_vocab_size, d] or empty (BERT)
  std::string embed_norm_weight, embed_norm_bias;  // LayerNorm of the embeddings or empty (BERT)
  LinearSpec embed_proj;  // OPT's project_in when word_embed_proj_dim != d; weight empty otherwise
  std::vector<LayerSpec> layers;
  // The output side, read by forward_logits only (analyze never needs it, so a checkpoint without
  // it loads as before): logits = softcap(project_out(final_norm(h)) W_head^T).
  std::string final_norm_weight, final_norm_bias;  // [d]; both empty when the family has none (post-LN OPT)
  LinearSpec project_out;  // OPT's [de, d] when word_embed_proj_dim != d; weight empty otherwise
  LinearSpec lm_head;      // [vocab, de]: the stored head, or the token embedding when tied
  // Why there is no LM head when lm_head.weight is empty (a missing or misshapen tensor, an
  // encoder): forward_logits throws it as "<path>: no LM head (<head_missing>)".
  std::string head_missing;
};

// Reads config.json (or, for a GGUF or llama2.c file, the config its reader derives; see
// io/checkpoint_file.h), describes the model by its family, resolves every weight name and checks
// each tensor's shape and dtype against the config before any compute. Throws InputError naming
// the file and the field or tensor that does not fit.
std::unique_ptr<Model> load_model(const std::filesystem::path& path);

// The config alone (config.json's parsed JSON; `where` names it in errors): for tests and fuzzing.
ModelConfig read_model_config(const nlohmann::json& raw, const std::string& where);

// Families this build describes, for messages and `attnspec models`.
std::vector<std::string> supported_families();
// One line on what attnspec reads for `family` (architecture, tensor names, tokenizer), for
// `attnspec models`; empty when there is nothing beyond the name.
std::string family_notes(const std::string& family);

}  // namespace attnspec
