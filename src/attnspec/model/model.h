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
enum class MlpKind { GeluTanh, GeluExact, SwiGLU };

struct ModelConfig {
  std::string family;      // "gpt2", "llama", "qwen2", "mistral", "bert"
  int n_layers = 0;
  int d_model = 0;         // d
  int n_heads = 0;         // H, query heads
  int n_kv_heads = 0;      // G, key/value heads (grouped-query attention when G < H)
  int head_dim = 0;        // d_h
  int d_ff = 0;
  int vocab_size = 0;
  int max_positions = 0;
  NormKind norm = NormKind::RMSNorm;
  double norm_eps = 1e-5;
  MlpKind mlp = MlpKind::SwiGLU;
  bool learned_positions = false;  // GPT-2's wpe; otherwise rotary
  // Rotary embedding (rotate-half convention over the first rotary_dim dims of each head).
  int rotary_dim = 0;
  std::vector<float> inv_freq;      // [rotary_dim / 2], scaling (llama3, linear) already applied
  float rope_attention_scaling = 1.0f;
  std::string rope_description;     // e.g. "rope theta=500000 llama3(factor=32,...)"
  std::vector<double> softmax_scale;  // per layer: s in E = s q.k
  std::vector<int> sliding_window;    // per layer: 0 = full causal, W = keys with i - j < W
  // Encoders (BERT) attend bidirectionally: every query sees all n keys, so the unmasked E~ is
  // exactly the field their softmax sees. Decoders see keys j <= i.
  bool causal = true;
  // Post-LN blocks (BERT): the attention reads the residual stream h itself, and
  // h = norm1(h + attention(h)), h = norm2(h + MLP(h)). Pre-LN (the decoders): x = norm1(h) feeds
  // the attention and h += attention(x), h += MLP(norm2(h)).
  bool post_norm = false;
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
};

struct LayerSpec {
  std::string attn_norm_weight, attn_norm_bias;  // bias empty for RMSNorm
  std::string mlp_norm_weight, mlp_norm_bias;
  LinearSpec q, k, v, o;
  LinearSpec up, gate, down;  // gate only for SwiGLU
};

struct Model {
  std::filesystem::path path;  // a checkpoint folder, or one GGUF / llama2.c file
  std::string format;          // "safetensors", "gguf" or "llama2.c"
  nlohmann::json hf_config;    // config.json, or what it would be for a one-file format
  ModelConfig config;
  std::unique_ptr<TensorStore> store;
  std::string embed;      // [vocab, d]
  std::string pos_embed;  // [max_positions, d], learned positions only
  std::string type_embed;                          // [type_vocab_size, d] or empty (BERT)
  std::string embed_norm_weight, embed_norm_bias;  // LayerNorm of the embeddings or empty (BERT)
  std::vector<LayerSpec> layers;
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
