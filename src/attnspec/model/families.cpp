// The families attnspec describes, as data: which config.json fields give the shapes (a reader
// per family), and a table of the tensors each model stores: role, name, shape in config sizes and
// layout (families.h). load_model walks the table; adding a family means adding a table entry and,
// if its config speaks a dialect of its own, a reader; the forward pass does not change.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <numbers>

#include "attnspec/common/error.h"
#include "attnspec/io/checkpoint_file.h"
#include "attnspec/io/json_file.h"
#include "attnspec/model/families.h"
#include "attnspec/model/model.h"

namespace attnspec {
namespace {

std::string with_layer(const char* pattern, int layer) {
  std::string s = pattern;
  const auto at = s.find("{L}");
  if (at != std::string::npos) s.replace(at, 3, std::to_string(layer));
  return s;
}

// --- Rotary embeddings: base frequencies and Hugging Face's rope_scaling types ------------------

// Hugging Face configs name RoPE in two dialects: `rope_theta` + `rope_scaling` (the published
// Llama/Qwen/Mistral configs) and a single `rope_parameters` object (transformers >= 5), which
// holds rope_theta, rope_type and the scaling fields together.
// One RoPE parameter set `rs` (rope_parameters, rope_scaling or one of Gemma3's per-layer-type
// objects): inverse frequencies over c.rotary_dim (set before) into `out`, described in `desc`.
void rope_from(const JsonFields& rs, double theta, const ModelConfig& c, std::vector<float>& out, std::string& desc) {
  // inv_freq_i = theta^(-2i / rotary_dim), as transformers computes it (float32 result).
  std::vector<double> inv(c.rotary_dim / 2);
  for (int i = 0; i < c.rotary_dim / 2; ++i)
    inv[i] = static_cast<float>(1.0 / std::pow(theta, static_cast<double>(static_cast<float>(2 * i) / static_cast<float>(c.rotary_dim))));
  char buf[160];
  std::snprintf(buf, sizeof buf, "rope rotate-half theta=%g dim=%d", theta, c.rotary_dim);
  desc = buf;

  const std::string type = rs.string("rope_type", rs.string("type", "default"));
  if (type == "default") {
  } else if (type == "linear") {
    const double factor = rs.number("factor");
    if (!(factor > 0)) throw input_error(rs.where(), "rope factor must be positive");
    for (double& f : inv) f /= factor;
    std::snprintf(buf, sizeof buf, " linear(factor=%g)", factor);
    desc += buf;
  } else if (type == "llama3") {
    // Llama-3.1/3.2: long wavelengths are slowed by `factor`, short ones kept, and the band in
    // between interpolated smoothly (transformers' _compute_llama3_parameters).
    const double factor = rs.number("factor"), low = rs.number("low_freq_factor"), high = rs.number("high_freq_factor"),
                 old_ctx = static_cast<double>(rs.integer("original_max_position_embeddings"));
    const double low_wavelen = old_ctx / low, high_wavelen = old_ctx / high;
    for (double& f : inv) {
      const double wavelen = 2 * std::numbers::pi / f;
      if (wavelen > low_wavelen) {
        f = f / factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (old_ctx / wavelen - low) / (high - low);
        f = (1 - smooth) * f / factor + smooth * f;
      }
    }
    std::snprintf(buf, sizeof buf, " llama3(factor=%g, low=%g, high=%g, original=%g)", factor, low, high, old_ctx);
    desc += buf;
  } else {
    throw input_error(rs.where(), "rope type '" + type + "' is not supported (default, linear, llama3)");
  }
  out.assign(inv.begin(), inv.end());  // float32, as the model holds it
}

// Hugging Face configs name RoPE in two dialects: `rope_theta` + `rope_scaling` (the published
// Llama/Qwen/Mistral configs) and a single `rope_parameters` object (transformers >= 5), which
// holds rope_theta, rope_type and the scaling fields together. `default_theta` / `default_partial`
// apply when neither names them (GPT-NeoX: rotary_emb_base and rotary_pct, 0.25).
void read_rope(const JsonFields& cfg, ModelConfig& c, double default_theta = 10000.0, double default_partial = 1.0) {
  const auto& raw = cfg.raw();
  const nlohmann::json* params = nullptr;
  std::string where = cfg.where();
  if (raw.contains("rope_parameters") && raw["rope_parameters"].is_object()) {
    params = &raw["rope_parameters"];
    where += " rope_parameters";
  } else if (raw.contains("rope_scaling") && raw["rope_scaling"].is_object()) {
    params = &raw["rope_scaling"];
    where += " rope_scaling";
  }
  const nlohmann::json empty = nlohmann::json::object();
  const JsonFields rs(params ? *params : empty, where);
  const double theta = rs.number("rope_theta", cfg.number("rope_theta", default_theta));
  const double partial = rs.number("partial_rotary_factor", cfg.number("partial_rotary_factor", default_partial));
  c.rotary_dim = static_cast<int>(c.head_dim * partial);
  if (c.rotary_dim % 2 != 0 || c.rotary_dim <= 0)
    throw input_error(cfg.where(), "rotary dimension " + std::to_string(c.rotary_dim) + " must be even and positive");
  rope_from(rs, theta, c, c.inv_freq, c.rope_description);
}

void read_llama_like(const JsonFields& cfg, ModelConfig& c) {
  c.d_model = static_cast<int>(cfg.positive({"hidden_size"}));
  c.n_layers = static_cast<int>(cfg.positive({"num_hidden_layers"}));
  c.n_heads = static_cast<int>(cfg.positive({"num_attention_heads"}));
  c.n_kv_heads = static_cast<int>(cfg.has("num_key_value_heads") ? cfg.positive({"num_key_value_heads"}) : c.n_heads);
  c.head_dim = static_cast<int>(cfg.has("head_dim") ? cfg.positive({"head_dim"}) : c.d_model / c.n_heads);
  if (!cfg.has("head_dim") && c.d_model % c.n_heads != 0)
    throw input_error(cfg.where(), "hidden_size " + std::to_string(c.d_model) + " is not divisible by num_attention_heads " +
                                       std::to_string(c.n_heads));
  c.d_ff = static_cast<int>(cfg.positive({"intermediate_size"}));
  c.vocab_size = static_cast<int>(cfg.positive({"vocab_size"}));
  c.max_positions = static_cast<int>(cfg.positive({"max_position_embeddings"}));
  c.norm = NormKind::RMSNorm;
  c.norm_eps = cfg.number("rms_norm_eps", 1e-6);
  const std::string act = cfg.string("hidden_act", "silu");
  if (act != "silu") throw input_error(cfg.where(), "hidden_act '" + act + "' is not supported for " + c.family + " (silu)");
  c.mlp = MlpKind::SwiGLU;
  read_rope(cfg, c);
  const double s = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  c.softmax_scale.assign(c.n_layers, s);
  c.sliding_window.assign(c.n_layers, 0);
  c.tie_word_embeddings = cfg.boolean("tie_word_embeddings", false);
}

// Which layers use a sliding window: an explicit `layer_types` list wins; otherwise the family's
// rule (Mistral: every layer; Qwen2: layers >= max_window_layers when use_sliding_window).
void read_sliding_window(const JsonFields& cfg, ModelConfig& c, bool every_layer_by_default) {
  if (!cfg.has("sliding_window")) return;
  const int window = static_cast<int>(cfg.integer("sliding_window"));
  if (window <= 0) return;
  const auto& raw = cfg.raw();
  if (raw.contains("layer_types") && raw["layer_types"].is_array()) {
    const auto& types = raw["layer_types"];
    if (static_cast<int>(types.size()) != c.n_layers)
      throw input_error(cfg.where(), "layer_types has " + std::to_string(types.size()) + " entries for " +
                                         std::to_string(c.n_layers) + " layers");
    for (int l = 0; l < c.n_layers; ++l)
      if (types[l] == "sliding_attention") c.sliding_window[l] = window;
    return;
  }
  if (every_layer_by_default) {
    c.sliding_window.assign(c.n_layers, window);
  } else if (cfg.boolean("use_sliding_window", false)) {
    const int first = static_cast<int>(cfg.integer("max_window_layers", c.n_layers));
    for (int l = first; l < c.n_layers; ++l) c.sliding_window[l] = window;
  }
}

// Per-layer attention types for configs that name them (`layer_types`, each "sliding_attention"
// or "full_attention"); otherwise `sliding_by_default(layer)` decides. 1 = sliding.
std::vector<char> sliding_layers(const JsonFields& cfg, const ModelConfig& c, const std::function<bool(int)>& sliding_by_default) {
  std::vector<char> out(c.n_layers);
  const auto& raw = cfg.raw();
  if (raw.contains("layer_types") && !raw["layer_types"].is_null()) {
    const auto& types = raw["layer_types"];
    if (!types.is_array() || static_cast<int>(types.size()) != c.n_layers)
      throw input_error(cfg.where(), "layer_types must be a list of " + std::to_string(c.n_layers) + " entries, one per layer");
    for (int l = 0; l < c.n_layers; ++l) {
      if (types[l] == "sliding_attention") out[l] = 1;
      else if (types[l] != "full_attention")
        throw input_error(cfg.where(), "layer_types[" + std::to_string(l) + "] is " + types[l].dump() +
                                           " (supported: sliding_attention, full_attention)");
    }
  } else {
    for (int l = 0; l < c.n_layers; ++l) out[l] = sliding_by_default(l) ? 1 : 0;
  }
  return out;
}
void read_gpt2(const JsonFields& cfg, ModelConfig& c, Biases& b) {
  c.d_model = static_cast<int>(cfg.positive({"n_embd", "hidden_size"}));
  c.n_layers = static_cast<int>(cfg.positive({"n_layer", "num_hidden_layers"}));
  c.n_heads = static_cast<int>(cfg.positive({"n_head", "num_attention_heads"}));
  if (c.d_model % c.n_heads != 0)
    throw input_error(cfg.where(), "n_embd " + std::to_string(c.d_model) + " is not divisible by n_head " +
                                       std::to_string(c.n_heads));
  c.n_kv_heads = c.n_heads;
  c.head_dim = c.d_model / c.n_heads;
  c.d_ff = static_cast<int>(cfg.has("n_inner") ? cfg.positive({"n_inner"}) : 4 * c.d_model);
  c.vocab_size = static_cast<int>(cfg.positive({"vocab_size"}));
  c.max_positions = static_cast<int>(cfg.positive({"n_positions", "max_position_embeddings"}));
  c.norm = NormKind::LayerNorm;
  c.norm_eps = cfg.number("layer_norm_epsilon", 1e-5);
  const std::string act = cfg.string("activation_function", "gelu_new");
  if (act == "gelu_new" || act == "gelu_pytorch_tanh" || act == "gelu_fast") c.mlp = MlpKind::GeluTanh;
  else if (act == "gelu") c.mlp = MlpKind::GeluExact;
  else throw input_error(cfg.where(), "activation_function '" + act + "' is not supported for gpt2 (gelu_new, gelu)");
  c.learned_positions = true;
  // GPT-2 divides by sqrt(d_h) (scale_attn_weights) and, in some variants, by layer + 1.
  const bool scale = cfg.boolean("scale_attn_weights", true);
  const bool by_layer = cfg.boolean("scale_attn_by_inverse_layer_idx", false);
  for (int l = 0; l < c.n_layers; ++l)
    c.softmax_scale.push_back((scale ? 1.0 / std::sqrt(static_cast<double>(c.head_dim)) : 1.0) /
                              (by_layer ? l + 1.0 : 1.0));
  c.sliding_window.assign(c.n_layers, 0);
  c.tie_word_embeddings = cfg.boolean("tie_word_embeddings", true);
  b = {true, true, true, true};
}

void read_llama(const JsonFields& cfg, ModelConfig& c, Biases& b) {
  read_llama_like(cfg, c);
  const bool attn_bias = cfg.boolean("attention_bias", false);
  b = {attn_bias, attn_bias, cfg.boolean("mlp_bias", false), false};
}

void read_qwen2(const JsonFields& cfg, ModelConfig& c, Biases& b) {
  read_llama_like(cfg, c);
  read_sliding_window(cfg, c, /*every_layer_by_default=*/false);
  b = {true, false, false, false};  // Qwen2: q/k/v carry biases, o_proj does not
}

void read_mistral(const JsonFields& cfg, ModelConfig& c, Biases& b) {
  read_llama_like(cfg, c);
  read_sliding_window(cfg, c, /*every_layer_by_default=*/true);
  b = {false, false, false, false};
}


// Qwen3: Qwen2's shapes and window rule, every projection biased or none (attention_bias), and
// the queries and keys of each head RMS-normalised over d_h before RoPE.
void read_qwen3(const JsonFields& cfg, ModelConfig& c, Biases& b) {
  read_llama_like(cfg, c);
  read_sliding_window(cfg, c, /*every_layer_by_default=*/false);
  c.qk_norm = true;
  const bool attn_bias = cfg.boolean("attention_bias", false);
  b = {attn_bias, attn_bias, false, false};
}

// Phi-3: Llama's block with fused qkv_proj / gate_up_proj, partial rotary, one window for all layers.
void read_phi3(const JsonFields& cfg, ModelConfig& c, Biases& b) {
  const auto& raw = cfg.raw();
  for (const char* key : {"rope_parameters", "rope_scaling"})
    if (raw.contains(key) && raw[key].is_object()) {
      const JsonFields rs(raw[key], cfg.where() + " " + key);
      const std::string type = rs.string("rope_type", rs.string("type", "default"));
      if (type != "default")
        throw input_error(rs.where(), "rope type '" + type + "' is not supported for phi3 (only default; longrope, " +
                                          "the 128k-context Phi-3 scaling, is not implemented)");
    }
  read_llama_like(cfg, c);
  read_sliding_window(cfg, c, /*every_layer_by_default=*/true);
  b = {false, false, false, false};
}

// Shapes of a model with one key/value head per query head and d_h = d / H (GPT-NeoX, OPT, BERT);
// `ff_key` names the MLP width.
void read_mha_shapes(const JsonFields& cfg, ModelConfig& c, const char* ff_key) {
  c.d_model = static_cast<int>(cfg.positive({"hidden_size"}));
  c.n_layers = static_cast<int>(cfg.positive({"num_hidden_layers"}));
  c.n_heads = static_cast<int>(cfg.positive({"num_attention_heads"}));
  if (c.d_model % c.n_heads != 0)
    throw input_error(cfg.where(), "hidden_size " + std::to_string(c.d_model) + " is not divisible by num_attention_heads " +
                                       std::to_string(c.n_heads));
  c.n_kv_heads = c.n_heads;
  c.head_dim = c.d_model / c.n_heads;
  c.d_ff = static_cast<int>(cfg.positive({ff_key}));
  c.vocab_size = static_cast<int>(cfg.positive({"vocab_size"}));
  c.max_positions = static_cast<int>(cfg.positive({"max_position_embeddings"}));
}

// GPT-NeoX (Pythia): LayerNorm with biases, a partial rotary (rotary_pct, 0.25 by default) over
// the first dims of each head, fused per-head query_key_value, and by default the parallel residual.
void read_gpt_neox(const JsonFields& cfg, ModelConfig& c, Biases& b) {
  read_mha_shapes(cfg, c, "intermediate_size");
  c.norm = NormKind::LayerNorm;
  c.norm_eps = cfg.number("layer_norm_eps", 1e-5);
  const std::string act = cfg.string("hidden_act", "gelu");
  if (act == "gelu") c.mlp = MlpKind::GeluExact;
  else if (act == "gelu_new" || act == "gelu_pytorch_tanh" || act == "gelu_fast") c.mlp = MlpKind::GeluTanh;
  else if (act == "relu") c.mlp = MlpKind::Relu;
  else throw input_error(cfg.where(), "hidden_act '" + act + "' is not supported for gpt_neox (gelu, gelu_new, relu)");
  read_rope(cfg, c, cfg.number("rotary_emb_base", 10000.0), cfg.number("rotary_pct", 0.25));
  c.parallel_residual = cfg.boolean("use_parallel_residual", true);
  c.softmax_scale.assign(c.n_layers, 1.0 / std::sqrt(static_cast<double>(c.head_dim)));
  c.sliding_window.assign(c.n_layers, 0);
  c.tie_word_embeddings = cfg.boolean("tie_word_embeddings", false);
  const bool attn_bias = cfg.boolean("attention_bias", true);
  b = {attn_bias, attn_bias, true, true};
}

// OPT: learned positions stored from row 2 on, LayerNorm, ReLU fc1/fc2, pre-norm or (OPT-350m)
// post-norm, and a narrower embedding widened by project_in when word_embed_proj_dim != d.
// transformers multiplies q_proj's output by d_h^-0.5 before the kernel; attnspec's Q is the
// projection itself and s = d_h^-0.5 the softmax scale (the same logits).
void read_opt(const JsonFields& cfg, ModelConfig& c, Biases& b) {
  read_mha_shapes(cfg, c, "ffn_dim");
  c.embed_width = static_cast<int>(cfg.has("word_embed_proj_dim") ? cfg.positive({"word_embed_proj_dim"}) : c.d_model);
  c.norm = NormKind::LayerNorm;
  c.norm_eps = 1e-5;  // nn.LayerNorm's default: OPT's config has no epsilon
  const std::string act = cfg.string("activation_function", "relu");
  if (act == "relu") c.mlp = MlpKind::Relu;
  else if (act == "gelu") c.mlp = MlpKind::GeluExact;
  else if (act == "gelu_new" || act == "gelu_pytorch_tanh") c.mlp = MlpKind::GeluTanh;
  else throw input_error(cfg.where(), "activation_function '" + act + "' is not supported for opt (relu, gelu, gelu_new)");
  c.learned_positions = true;
  c.position_offset = 2;
  c.post_norm = !cfg.boolean("do_layer_norm_before", true);  // then there is no final norm either
  c.softmax_scale.assign(c.n_layers, 1.0 / std::sqrt(static_cast<double>(c.head_dim)));
  c.sliding_window.assign(c.n_layers, 0);
  c.tie_word_embeddings = cfg.boolean("tie_word_embeddings", true);
  const bool bias = cfg.boolean("enable_bias", true), affine = cfg.boolean("layer_norm_elementwise_affine", true);
  b = {bias, bias, bias, affine, affine};
}

// A soft-cap field of a config: its value (> 0), `absent` when the config does not name it, and 0
// (no cap) when it is null, as transformers reads None.
double softcap_field(const JsonFields& cfg, const char* key, double absent) {
  if (!cfg.raw().contains(key)) return absent;
  if (!cfg.has(key)) return 0;
  const double cap = cfg.number(key);
  if (!(cap > 0)) throw input_error(cfg.where(), std::string(key) + " must be positive or null");
  return cap;
}

// Shared by Gemma2 and Gemma3: (1 + w) RMSNorm, embeddings times sqrt(d), GeGLU, explicit d_h,
// softmax scale query_pre_attn_scalar^-0.5, sandwich norms (see the table rows).
void read_gemma_common(const JsonFields& cfg, ModelConfig& c, Biases& b) {
  c.d_model = static_cast<int>(cfg.positive({"hidden_size"}));
  c.n_layers = static_cast<int>(cfg.positive({"num_hidden_layers"}));
  c.n_heads = static_cast<int>(cfg.positive({"num_attention_heads"}));
  c.n_kv_heads = static_cast<int>(cfg.has("num_key_value_heads") ? cfg.positive({"num_key_value_heads"}) : c.n_heads);
  c.head_dim = static_cast<int>(cfg.has("head_dim") ? cfg.positive({"head_dim"}) : c.d_model / c.n_heads);
  c.d_ff = static_cast<int>(cfg.positive({"intermediate_size"}));
  c.vocab_size = static_cast<int>(cfg.positive({"vocab_size"}));
  c.max_positions = static_cast<int>(cfg.positive({"max_position_embeddings"}));
  c.norm = NormKind::RMSNorm;
  c.norm_plus_one = true;
  c.norm_eps = cfg.number("rms_norm_eps", 1e-6);
  // Older configs name the activation hidden_act; transformers' Gemma2/3 read hidden_activation.
  const std::string act = cfg.string("hidden_activation", cfg.string("hidden_act", "gelu_pytorch_tanh"));
  if (act != "gelu_pytorch_tanh" && act != "gelu_new")
    throw input_error(cfg.where(), "hidden_activation '" + act + "' is not supported for " + c.family + " (gelu_pytorch_tanh)");
  c.mlp = MlpKind::GeGLU;
  c.embed_scale = static_cast<float>(std::sqrt(static_cast<double>(c.d_model)));  // rounded to the weights' dtype at load
  if (cfg.boolean("use_bidirectional_attention", false))
    throw input_error(cfg.where(), "use_bidirectional_attention is true: attnspec analyses causal attention only");
  const double scalar = cfg.number("query_pre_attn_scalar", 256.0);
  if (!(scalar > 0)) throw input_error(cfg.where(), "query_pre_attn_scalar must be positive");
  c.softmax_scale.assign(c.n_layers, 1.0 / std::sqrt(scalar));
  c.attn_softcap = softcap_field(cfg, "attn_logit_softcapping", 0);
  c.tie_word_embeddings = cfg.boolean("tie_word_embeddings", true);
  const bool attn_bias = cfg.boolean("attention_bias", false);
  b = {attn_bias, attn_bias, false, false};
}

// Sliding-window layers per `sliding`, with the config's window (none when it is null or 0).
void apply_windows(const JsonFields& cfg, ModelConfig& c, const std::vector<char>& sliding) {
  c.sliding_window.assign(c.n_layers, 0);
  const int64_t window = cfg.has("sliding_window") ? cfg.integer("sliding_window") : 0;
  if (window < 0 || window > (int64_t(1) << 30))
    throw input_error(cfg.where(), "sliding_window " + std::to_string(window) + " is out of range");
  for (int l = 0; l < c.n_layers; ++l)
    if (sliding[l]) c.sliding_window[l] = static_cast<int>(window);
}

// Gemma2: every other layer (0, 2, ...) local unless layer_types says otherwise; attention and
// final logits soft-capped (final_logit_softcapping: 30 unless the config says otherwise).
void read_gemma2(const JsonFields& cfg, ModelConfig& c, Biases& b) {
  read_gemma_common(cfg, c, b);
  c.final_softcap = softcap_field(cfg, "final_logit_softcapping", 30.0);
  read_rope(cfg, c);
  apply_windows(cfg, c, sliding_layers(cfg, c, [](int l) { return (l + 1) % 2 != 0; }));
}

// Gemma3 (text): Gemma2 plus per-head q/k RMSNorm, five local layers per global one
// (sliding_window_pattern), and the local layers' own RoPE base (rope_local_base_freq, 10000)
// while the global ones use rope_theta (1e6) with any rope_scaling.
void read_gemma3_text(const JsonFields& cfg, ModelConfig& c, Biases& b) {
  read_gemma_common(cfg, c, b);
  c.final_softcap = softcap_field(cfg, "final_logit_softcapping", 0);  // Gemma3ForCausalLM: none by default
  c.qk_norm = true;
  const int64_t pattern = cfg.integer("sliding_window_pattern", 6);
  if (pattern <= 0 || pattern > (int64_t(1) << 30))
    throw input_error(cfg.where(), "sliding_window_pattern " + std::to_string(pattern) + " is out of range");
  const std::vector<char> sliding = sliding_layers(cfg, c, [pattern](int l) { return (l + 1) % pattern != 0; });
  apply_windows(cfg, c, sliding);
  c.local_rope = sliding;
  const auto& raw = cfg.raw();
  if (c.head_dim % 2 != 0) throw input_error(cfg.where(), "head_dim " + std::to_string(c.head_dim) + " must be even for RoPE");
  c.rotary_dim = c.head_dim;
  const nlohmann::json empty = nlohmann::json::object();
  std::string local_desc;
  if (raw.contains("rope_parameters") && raw["rope_parameters"].is_object() &&
      (raw["rope_parameters"].contains("full_attention") || raw["rope_parameters"].contains("sliding_attention"))) {
    // transformers >= 5: one parameter set per layer type.
    const auto& p = raw["rope_parameters"];
    auto part = [&](const char* type) -> const nlohmann::json& {
      if (!p.contains(type) || p[type].is_null()) return empty;
      if (!p[type].is_object()) throw input_error(cfg.where(), std::string("rope_parameters.") + type + " must be an object");
      return p[type];
    };
    const JsonFields global(part("full_attention"), cfg.where() + " rope_parameters.full_attention");
    const JsonFields local(part("sliding_attention"), cfg.where() + " rope_parameters.sliding_attention");
    for (const JsonFields* f : {&global, &local})
      if (f->number("partial_rotary_factor", 1.0) != 1.0)
        throw input_error(f->where(), "partial_rotary_factor is not supported for gemma3");
    rope_from(global, global.number("rope_theta", cfg.number("rope_theta", 1e6)), c, c.inv_freq, c.rope_description);
    rope_from(local, local.number("rope_theta", cfg.number("rope_local_base_freq", 1e4)), c, c.inv_freq_sliding, local_desc);
  } else {
    read_rope(cfg, c, 1e6);  // rope_theta with rope_scaling: the global layers
    rope_from(JsonFields(empty, cfg.where()), cfg.number("rope_local_base_freq", 1e4), c, c.inv_freq_sliding, local_desc);
  }
  c.rope_description += "; sliding layers " + local_desc;
}

// Gemma3's multimodal config (model_type gemma3): the language model's config is text_config.
void read_gemma3(const JsonFields& cfg, ModelConfig& c, Biases& b) {
  const auto& raw = cfg.raw();
  if (!raw.contains("text_config") || !raw["text_config"].is_object())
    throw input_error(cfg.where(), "model_type gemma3 needs a text_config object (the language model's config)");
  // Published multimodal configs list only what differs from transformers' Gemma3TextConfig
  // defaults (gemma-3-4b's names neither heads nor vocabulary), so those defaults fill the gaps.
  nlohmann::json text = raw["text_config"];
  const std::pair<const char*, nlohmann::json> defaults[] = {
      {"vocab_size", 262208}, {"hidden_size", 2304}, {"intermediate_size", 9216}, {"num_hidden_layers", 26},
      {"num_attention_heads", 8}, {"num_key_value_heads", 4}, {"head_dim", 256}, {"max_position_embeddings", 131072},
      {"rms_norm_eps", 1e-6}, {"query_pre_attn_scalar", 256}, {"sliding_window", 4096}, {"rope_theta", 1e6},
      {"rope_local_base_freq", 1e4}};
  for (const auto& [key, value] : defaults)
    if (!text.contains(key)) text[key] = value;
  read_gemma3_text(JsonFields(text, cfg.where() + " text_config"), c, b);
  // The head is the wrapper's: tied by its own config, and Gemma3ForConditionalGeneration does not
  // soft-cap its logits.
  c.tie_word_embeddings = cfg.boolean("tie_word_embeddings", true);
  c.final_softcap = 0;
}

// BERT (encoder): learned positions, token types, LayerNorm after the embeddings and after each
// residual add (post-LN), exact GELU, biases everywhere, bidirectional attention.
void read_bert(const JsonFields& cfg, ModelConfig& c, Biases& b) {
  read_mha_shapes(cfg, c, "intermediate_size");
  c.type_vocab_size = static_cast<int>(cfg.has("type_vocab_size") ? cfg.positive({"type_vocab_size"}) : 2);
  c.norm = NormKind::LayerNorm;
  c.norm_eps = cfg.number("layer_norm_eps", 1e-12);
  const std::string act = cfg.string("hidden_act", "gelu");
  if (act == "gelu") c.mlp = MlpKind::GeluExact;
  else if (act == "gelu_new" || act == "gelu_pytorch_tanh") c.mlp = MlpKind::GeluTanh;
  else throw input_error(cfg.where(), "hidden_act '" + act + "' is not supported for bert (gelu, gelu_new)");
  const std::string positions = cfg.string("position_embedding_type", "absolute");
  if (positions != "absolute")
    throw input_error(cfg.where(), "position_embedding_type '" + positions + "' is not supported for bert (absolute)");
  if (cfg.boolean("is_decoder", false))
    throw input_error(cfg.where(), "is_decoder is true: a causal BERT is not supported (bert is read as an encoder)");
  c.learned_positions = true;
  c.causal = false;
  c.post_norm = true;
  c.softmax_scale.assign(c.n_layers, 1.0 / std::sqrt(static_cast<double>(c.head_dim)));
  c.sliding_window.assign(c.n_layers, 0);
  b = {true, true, true, true};
}

// "" when `t` has `shape`, else what is wrong.
std::string shape_mismatch(const TensorView& t, const std::vector<int64_t>& shape) {
  if (t.shape == shape) return "";
  TensorView want;
  want.shape = shape;
  return "tensor '" + t.name + "' has shape " + t.shape_string() + " but config.json implies " + want.shape_string();
}

// Checks that `name` exists with `shape` and a supported dtype.
void expect_tensor(const TensorStore& store, const std::filesystem::path& dir, const std::string& name,
                   std::vector<int64_t> shape) {
  const TensorView* t = store.find(name);
  if (!t) throw input_error(dir.string(), "missing tensor '" + name + "' that config.json implies");
  if (const std::string wrong = shape_mismatch(*t, shape); !wrong.empty()) throw input_error(t->file->path().string(), wrong);
}

// The output side's rows do not stop a load: what is missing or misshapen is kept in
// model.head_missing (the first such tensor in table order) for forward_logits to report.
void note_output_tensor(const TensorStore& store, const TensorUse& t, Model& m) {
  if (!m.head_missing.empty()) return;
  if (const TensorView* found = store.find(t.name)) m.head_missing = shape_mismatch(*found, t.shape);
  else if (t.row.role == Role::Head) m.head_missing = "missing tensor '" + t.name + "' and tie_word_embeddings is false";
  else m.head_missing = "missing tensor '" + t.name + "'";
}

int64_t size_of(Dim x, const ModelConfig& c) {
  const int64_t qd = int64_t(c.n_heads) * c.head_dim, kvd = int64_t(c.n_kv_heads) * c.head_dim;
  switch (x) {
    case Dim::d: return c.d_model;
    case Dim::de: return c.embed_width > 0 ? c.embed_width : c.d_model;
    case Dim::qd: return qd;
    case Dim::kvd: return kvd;
    case Dim::qkvd: return qd + 2 * kvd;
    case Dim::ff: return c.d_ff;
    case Dim::ff2: return 2 * int64_t(c.d_ff);
    case Dim::head_dim: return c.head_dim;
    case Dim::vocab: return c.vocab_size;
    case Dim::positions: return int64_t(c.max_positions) + c.position_offset;
    case Dim::types: return c.type_vocab_size;
  }
  return 0;
}

bool has_bias(Role r, const Biases& b) {
  switch (r) {
    case Role::Q: case Role::K: case Role::V: case Role::Qkv: return b.qkv;
    case Role::O: return b.o;
    case Role::Up: case Role::Gate: case Role::GateUp: case Role::Down: return b.mlp;
    default: return false;  // embeddings, project_in, the RMSNorms of Q, K and block outputs
  }
}

// The Linears a weight holds: itself, or the parts of a fused one (Q, K, V; gate, up), each at
// its first row or column.
std::vector<std::pair<Role, LinearSpec>> linear_parts(const TensorRow& row, const ModelConfig& c) {
  const bool conv1d = row.layout == Layout::Conv1D;
  std::vector<std::pair<Role, int64_t>> parts = {{row.role, size_of(row.shape[conv1d ? 1 : 0], c)}};
  if (row.role == Role::Qkv)
    parts = {{Role::Q, size_of(Dim::qd, c)}, {Role::K, size_of(Dim::kvd, c)}, {Role::V, size_of(Dim::kvd, c)}};
  if (row.role == Role::GateUp) parts = {{Role::Gate, c.d_ff}, {Role::Up, c.d_ff}};  // transformers' chunk(2)
  std::vector<std::pair<Role, LinearSpec>> specs;
  int64_t offset = 0;
  for (const auto& [role, out] : parts) {
    LinearSpec s;
    s.out = out;
    s.in = size_of(row.shape[conv1d ? 0 : 1], c);
    s.in_out_layout = conv1d;
    if (conv1d) {
      s.col_offset = offset;
    } else if (row.layout == Layout::PerHead) {
      s.head_rows = c.head_dim;
      s.head_stride = 3 * int64_t(c.head_dim);
      s.row_offset = int64_t(specs.size()) * c.head_dim;
    } else {
      s.row_offset = offset;
    }
    offset += out;
    specs.emplace_back(role, s);
  }
  return specs;
}

// Records a checked tensor's name where the forward pass reads it (model.h).
void assign(const TensorUse& t, const ModelConfig& c, Model& m, LayerSpec& L) {
  const auto norm = [&](std::string& weight, std::string& bias) { (t.bias ? bias : weight) = t.name; };
  switch (t.row.role) {
    case Role::Embed: m.embed = t.name; return;
    case Role::PosEmbed: m.pos_embed = t.name; return;
    case Role::TypeEmbed: m.type_embed = t.name; return;
    case Role::EmbedNorm: return norm(m.embed_norm_weight, m.embed_norm_bias);
    case Role::FinalNorm: return norm(m.final_norm_weight, m.final_norm_bias);
    case Role::AttnNorm: return norm(L.attn_norm_weight, L.attn_norm_bias);
    case Role::MlpNorm: return norm(L.mlp_norm_weight, L.mlp_norm_bias);
    case Role::QNorm: L.q_norm_weight = t.name; return;
    case Role::KNorm: L.k_norm_weight = t.name; return;
    case Role::AttnOutNorm: L.attn_out_norm_weight = t.name; return;
    case Role::MlpOutNorm: L.mlp_out_norm_weight = t.name; return;
    default: break;
  }
  for (auto& [role, part] : linear_parts(t.row, c)) {
    LinearSpec& s = role == Role::Q ? L.q : role == Role::K ? L.k : role == Role::V ? L.v : role == Role::O ? L.o
                  : role == Role::Up ? L.up : role == Role::Gate ? L.gate : role == Role::Down ? L.down
                  : role == Role::ProjOut ? m.project_out : role == Role::Head ? m.lm_head : m.embed_proj;
    if (t.bias) {
      s.bias = t.name;  // after its weight
    } else {
      s = part;
      s.weight = t.name;
    }
  }
}

}  // namespace

const std::vector<FamilyTable>& family_tables() {
  static const std::vector<FamilyTable> tables = [] {
    using enum Role;
    using enum Dim;
    using enum Layout;
    // Llama's names, which Mistral, Qwen2/3, Phi-3 and Gemma kept. The LM head sits beside the base
    // model (lm_head.weight at the root), the final norm inside it.
    const TensorRow embed = {Embed, "embed_tokens", {vocab, de}};
    const TensorRow final_norm = {FinalNorm, "norm", {d}}, lm_head = {Head, "lm_head", {vocab, de}, Linear, true};
    const std::vector<TensorRow> llama_top = {embed, final_norm, lm_head};
    const TensorRow input_norm = {AttnNorm, "input_layernorm", {d}}, post_norm = {MlpNorm, "post_attention_layernorm", {d}};
    const TensorRow q_norm = {QNorm, "self_attn.q_norm", {head_dim}}, k_norm = {KNorm, "self_attn.k_norm", {head_dim}};
    const TensorRow q = {Q, "self_attn.q_proj", {qd, d}}, k = {K, "self_attn.k_proj", {kvd, d}},
                    v = {V, "self_attn.v_proj", {kvd, d}}, o = {O, "self_attn.o_proj", {d, qd}};
    const TensorRow up = {Up, "mlp.up_proj", {ff, d}}, gate = {Gate, "mlp.gate_proj", {ff, d}},
                    down = {Down, "mlp.down_proj", {d, ff}};
    const std::vector<TensorRow> llama = {input_norm, post_norm, q, k, v, o, up, gate, down};
    // Gemma norms both sides of each block: post_attention_layernorm is the attention output's.
    const TensorRow pre_mlp = {MlpNorm, "pre_feedforward_layernorm", {d}},
                    attn_out = {AttnOutNorm, "post_attention_layernorm", {d}},
                    mlp_out = {MlpOutNorm, "post_feedforward_layernorm", {d}};
    const std::vector<TensorRow> gemma3 = {input_norm, pre_mlp, q_norm, k_norm, attn_out, mlp_out,
                                           q, k, v, o, up, gate, down};
    return std::vector<FamilyTable>{
        // Hugging Face stores Conv1D weights [in, out]; c_attn holds Q | K | V side by side.
        {"gpt2", read_gpt2, {"transformer.", ""},
         {{Embed, "wte", {vocab, de}}, {PosEmbed, "wpe", {positions, d}}, {FinalNorm, "ln_f", {d}}, lm_head}, "h.{L}.",
         {{AttnNorm, "ln_1", {d}}, {MlpNorm, "ln_2", {d}}, {Qkv, "attn.c_attn", {d, qkvd}, Conv1D},
          {O, "attn.c_proj", {qd, d}, Conv1D}, {Up, "mlp.c_fc", {d, ff}, Conv1D}, {Down, "mlp.c_proj", {ff, d}, Conv1D}}},
        {"llama", read_llama, {"model.", ""}, llama_top, "layers.{L}.", llama},
        {"qwen2", read_qwen2, {"model.", ""}, llama_top, "layers.{L}.", llama},
        {"mistral", read_mistral, {"model.", ""}, llama_top, "layers.{L}.", llama},
        {"qwen3", read_qwen3, {"model.", ""}, llama_top, "layers.{L}.",
         {input_norm, post_norm, q_norm, k_norm, q, k, v, o, up, gate, down}},
        {"phi3", read_phi3, {"model.", ""}, llama_top, "layers.{L}.",
         {input_norm, post_norm, {Qkv, "self_attn.qkv_proj", {qkvd, d}}, o, {GateUp, "mlp.gate_up_proj", {ff2, d}}, down}},
        {"gpt_neox", read_gpt_neox, {"gpt_neox.", ""},
         {{Embed, "embed_in", {vocab, de}}, {FinalNorm, "final_layer_norm", {d}}, {Head, "embed_out", {vocab, de}, Linear, true}},
         "layers.{L}.",
         {input_norm, post_norm, {Qkv, "attention.query_key_value", {qkvd, d}, PerHead}, {O, "attention.dense", {d, qd}},
          {Up, "mlp.dense_h_to_4h", {ff, d}}, {Down, "mlp.dense_4h_to_h", {d, ff}}}},
        // project_in widens a narrower embedding (OPT-350m) and project_out narrows the output back
        // for the tied head; positions start at row 2; post-LN OPT has no final norm.
        {"opt", read_opt, {"model.decoder.", "decoder."},
         {embed, {EmbedProj, "project_in", {d, de}}, {PosEmbed, "embed_positions", {positions, d}},
          {FinalNorm, "final_layer_norm", {d}}, {ProjOut, "project_out", {de, d}}, lm_head},
         "layers.{L}.",
         {{AttnNorm, "self_attn_layer_norm", {d}}, {MlpNorm, "final_layer_norm", {d}}, q, k, v,
          {O, "self_attn.out_proj", {d, qd}}, {Up, "fc1", {ff, d}}, {Down, "fc2", {d, ff}}}},
        {"gemma2", read_gemma2, {"model.", ""}, llama_top, "layers.{L}.",
         {input_norm, pre_mlp, attn_out, mlp_out, q, k, v, o, up, gate, down}},
        {"gemma3_text", read_gemma3_text, {"model.", ""}, llama_top, "layers.{L}.", gemma3},
        // The multimodal checkpoint: the same language model under the language model's prefix
        // (transformers >= 4.52 saves model.language_model., the published files language_model.model.,
        // whose head was language_model.lm_head).
        {"gemma3", read_gemma3, {"model.language_model.", {"language_model.model.", "language_model."}}, llama_top,
         "layers.{L}.", gemma3},
        // sentence-transformers checkpoints (BertModel) save without the "bert." prefix. An encoder:
        // no LM head is read (BertForMaskedLM's cls.predictions is not a causal LM's).
        {"bert", read_bert, {"bert.", ""},
         {{Embed, "embeddings.word_embeddings", {vocab, de}}, {PosEmbed, "embeddings.position_embeddings", {positions, d}},
          {TypeEmbed, "embeddings.token_type_embeddings", {types, d}}, {EmbedNorm, "embeddings.LayerNorm", {d}}},
         "encoder.layer.{L}.",
         {{AttnNorm, "attention.output.LayerNorm", {d}}, {MlpNorm, "output.LayerNorm", {d}},
          {Q, "attention.self.query", {qd, d}}, {K, "attention.self.key", {kvd, d}}, {V, "attention.self.value", {kvd, d}},
          {O, "attention.output.dense", {d, qd}}, {Up, "intermediate.dense", {ff, d}}, {Down, "output.dense", {d, ff}}}},
    };
  }();
  return tables;
}

std::vector<std::string> supported_families() {
  std::vector<std::string> names;
  for (const auto& t : family_tables()) names.push_back(t.model_type);
  return names;
}

std::string family_notes(const std::string& family) {
  static const std::map<std::string, std::string> notes = {
      {"gpt2", "decoder; learned positions, LayerNorm, fused Conv1D c_attn; tensors with or without 'transformer.'"},
      {"llama", "decoder; RoPE (default, linear, llama3 scaling), RMSNorm, SwiGLU, grouped-query attention"},
      {"qwen2", "decoder; as llama with q/k/v biases and sliding-window layers (use_sliding_window)"},
      {"mistral", "decoder; as llama with a sliding window on every layer"},
      {"qwen3", "decoder; as qwen2 with per-head RMSNorm of Q and K before RoPE, explicit head_dim"},
      {"phi3", "decoder; fused qkv_proj and gate_up_proj, partial rotary, sliding window (longrope refused)"},
      {"gpt_neox", "decoder (Pythia); fused per-head query_key_value, partial rotary (rotary_pct), LayerNorm, "
                   "parallel residual (or sequential)"},
      {"opt", "decoder; learned positions (offset 2), ReLU MLP, pre- or post-LN, project_in when "
              "word_embed_proj_dim differs"},
      {"gemma2", "decoder; (1+w) RMSNorm, four norms per layer, GeGLU, embeddings times sqrt(d), "
                 "query_pre_attn_scalar, logit soft-capping (field reported before and after the cap), "
                 "alternating sliding-window layers"},
      {"gemma3_text", "decoder; as gemma2 without soft-capping, with per-head Q/K norms and a separate RoPE base "
                      "for sliding layers"},
      {"gemma3", "the multimodal checkpoint's language model, read as gemma3_text from text_config"},
      {"bert", "encoder: bidirectional attention (no mask, so E~ is the field its softmax sees; --field causal "
               "refused); post-LN, learned positions + token type 0, embedding LayerNorm, exact GELU; tensors "
               "with or without 'bert.' (BertModel, BertForMaskedLM, sentence-transformers), LayerNorm weight/bias "
               "or gamma/beta; WordPiece tokenizer from tokenizer.json or vocab.txt, [CLS] ... [SEP] per window; "
               "max 512 positions"},
  };
  const auto it = notes.find(family);
  return it == notes.end() ? std::string() : it->second;
}

namespace {

// config.json -> the model's config, its family table and which biases it carries.
struct Description {
  ModelConfig config;
  const FamilyTable* table = nullptr;
  Biases bias;
};

Description describe(const nlohmann::json& raw, const std::string& where) {
  if (!raw.is_object()) throw input_error(where, "is not a JSON object");
  const JsonFields cfg(raw, where);
  const std::string type = cfg.string("model_type");
  const FamilyTable* table = nullptr;
  for (const auto& t : family_tables())
    if (type == t.model_type) table = &t;
  if (!table) {
    std::string list;
    for (const auto& f : supported_families()) list += (list.empty() ? "" : ", ") + f;
    throw input_error(where, "model_type '" + type + "' is not supported (supported: " + list + ")");
  }
  Description desc;
  desc.table = table;
  ModelConfig& c = desc.config;
  c.family = type;
  table->read_config(cfg, c, desc.bias);
  if (c.n_heads % c.n_kv_heads != 0)
    throw input_error(where, "num_key_value_heads " + std::to_string(c.n_kv_heads) + " does not divide num_attention_heads " +
                                 std::to_string(c.n_heads));
  // Guard against configs whose sizes would make every buffer absurd (and products overflow).
  for (auto [name, v] : {std::pair{"hidden size", c.d_model}, {"head_dim", c.head_dim}, {"intermediate size", c.d_ff},
                         {"layer count", c.n_layers}, {"head count", c.n_heads}, {"vocabulary size", c.vocab_size},
                         {"embedding width", c.embed_width},
                         {"max_position_embeddings", c.max_positions}})
    if (v > (1 << 24)) throw input_error(where, std::string(name) + " " + std::to_string(v) + " is implausibly large");
  if (int64_t(c.n_heads) * c.head_dim > (1 << 20) || int64_t(c.d_model) * c.d_ff > (int64_t(1) << 34))
    throw input_error(where, "attention or MLP width is implausibly large");
  return desc;
}

}  // namespace

ModelConfig read_model_config(const nlohmann::json& raw, const std::string& where) { return describe(raw, where).config; }

Binding bind_family(Model& model, const std::string& config_where) {
  Description desc = describe(model.hf_config, config_where);
  model.config = std::move(desc.config);
  if (!model.store) model.store = TensorStore::open(model.path);
  Binding b;
  b.table = desc.table;
  b.config = &model.config;
  b.bias = desc.bias;
  b.store = model.store.get();
  b.linear_conv1d = model.format != "safetensors";
  const auto& rows = b.table->model_rows;
  bool found = false;
  for (const Prefix& p : b.table->prefixes)
    if (b.store->find(p.model + std::string(rows[0].name) + ".weight")) {
      b.prefix = p.model;
      b.root = p.root;
      found = true;
      break;
    }
  if (!found)
    throw input_error(model.path.string(), std::string("missing tensor '") + b.table->prefixes[0].model + rows[0].name +
                                               ".weight' (the token embedding)");
  // A narrower embedding needs the row that widens it (OPT's project_in).
  const int64_t de = size_of(Dim::de, model.config), d = model.config.d_model;
  if (de != d && std::none_of(rows.begin(), rows.end(), [](const TensorRow& r) { return r.role == Role::EmbedProj; }))
    throw input_error(model.path.string(),
                      "embedding width " + std::to_string(de) + " differs from hidden size " + std::to_string(d));
  return b;
}

void for_each_tensor(const Binding& b, int layer, const std::function<void(const TensorUse&)>& fn) {
  const ModelConfig& c = *b.config;
  const bool gated = c.mlp == MlpKind::SwiGLU || c.mlp == MlpKind::GeGLU;
  const std::string base = b.prefix + (layer < 0 ? std::string() : with_layer(b.table->block, layer));
  for (const TensorRow& row : layer < 0 ? b.table->model_rows : b.table->layer_rows) {
    const Role r = row.role;
    if (((r == Role::EmbedProj || r == Role::ProjOut) && size_of(Dim::de, c) == c.d_model) ||
        (r == Role::PosEmbed && !c.learned_positions) || ((r == Role::QNorm || r == Role::KNorm) && !c.qk_norm) ||
        (r == Role::Gate && !gated) || (r == Role::FinalNorm && c.post_norm))
      continue;  // the config does without it
    TensorUse t{row, (row.at_root ? b.root : base) + row.name, {}, false, output_side(r)};
    // A tied model's head is its token embedding unless a head is stored (transformers then keeps
    // the stored one).
    if (r == Role::Head && c.tie_word_embeddings && !b.store->find(t.name + ".weight")) continue;
    if (row.layout == Layout::Conv1D && b.linear_conv1d) {  // transposed: c_attn holds Q | K | V row blocks
      t.row.layout = Layout::Linear;
      std::reverse(t.row.shape.begin(), t.row.shape.end());
    }
    for (Dim x : t.row.shape) t.shape.push_back(size_of(x, c));
    const std::string stem = t.name;
    if (r == Role::AttnNorm || r == Role::MlpNorm || r == Role::EmbedNorm || r == Role::FinalNorm) {
      // `.weight` / `.bias`, or `.gamma` / `.beta` as older BERT checkpoints name them.
      const bool old_names = !b.store->find(stem + ".weight") && b.store->find(stem + ".gamma");
      t.name = stem + (old_names ? ".gamma" : ".weight");
      if (b.bias.norm_weight) fn(t);
      t.name = stem + (old_names ? ".beta" : ".bias");
      t.bias = true;
      if (b.bias.norm) fn(t);
      continue;
    }
    t.name = stem + ".weight";
    fn(t);
    if (has_bias(r, b.bias)) {
      t.name = stem + ".bias";
      t.shape = {t.shape[t.row.layout == Layout::Conv1D ? 1 : 0]};  // [out]
      t.bias = true;
      fn(t);
    }
  }
}

void resolve_tensors(Model& model, const std::string& config_where) {
  const Binding b = bind_family(model, config_where);
  ModelConfig& c = model.config;
  const TensorStore& store = *model.store;
  auto check_into = [&](LayerSpec& L) {
    return [&](const TensorUse& t) {
      if (t.optional) {
        note_output_tensor(store, t, model);
        if (!model.head_missing.empty()) return;
      } else {
        expect_tensor(store, model.path, t.name, t.shape);
      }
      assign(t, c, model, L);
    };
  };
  LayerSpec none;  // the model's own rows fill Model's fields
  for_each_tensor(b, -1, check_into(none));
  const auto& top = b.table->model_rows;
  if (std::none_of(top.begin(), top.end(), [](const TensorRow& r) { return r.role == Role::Head; })) {
    model.head_missing = c.family + (c.causal ? " has no LM head in attnspec's family table"
                                              : " is an encoder; attnspec reads no masked-LM head");
  } else if (model.head_missing.empty() && model.lm_head.weight.empty()) {  // tied: the embedding is the head
    model.lm_head.weight = model.embed;
    model.lm_head.out = c.vocab_size;
    model.lm_head.in = size_of(Dim::de, c);
  }
  if (!model.head_missing.empty()) {  // all or nothing: logits need every part
    model.final_norm_weight.clear();
    model.final_norm_bias.clear();
    model.project_out = {};
    model.lm_head = {};
  }
  if (c.embed_scale != 1.0f) {
    // transformers casts the scale to the embedding's dtype before multiplying (Gemma: sqrt(d)
    // as bf16 in a bf16 checkpoint), so attnspec rounds it the same way.
    const DType t = store.at(model.embed).dtype;
    if (t == DType::BF16) {
      uint32_t bits;
      std::memcpy(&bits, &c.embed_scale, 4);
      bits = (bits + 0x7fff + ((bits >> 16) & 1)) & 0xffff0000u;  // round to nearest even
      std::memcpy(&c.embed_scale, &bits, 4);
    } else if (t == DType::F16) {
      // Nearest float16 (ties to even): keep 11 significant bits; spacing 2^-24 below the normals.
      const double x = c.embed_scale;
      const double spacing = std::ldexp(1.0, std::max(std::ilogb(x), -14) - 10);
      c.embed_scale = x > 65504 ? INFINITY : static_cast<float>(std::nearbyint(x / spacing) * spacing);
    }
  }
  const auto& rows = b.table->layer_rows;
  if (c.n_kv_heads != c.n_heads &&
      std::any_of(rows.begin(), rows.end(), [](const TensorRow& r) { return r.layout == Layout::PerHead; }))
    throw input_error(model.path.string(), "a per-head fused query_key_value needs as many key/value heads as query heads");
  for (int l = 0; l < c.n_layers; ++l) {
    LayerSpec L;
    for_each_tensor(b, l, check_into(L));
    model.layers.push_back(std::move(L));
  }
  // A tensor of a layer the config does not have means config and weights disagree.
  const std::string block = b.table->block, layer_root = b.prefix + block.substr(0, block.find("{L}"));
  for (const auto& [name, t] : store.tensors()) {
    if (name.rfind(layer_root, 0) == 0) {
      const int layer = std::atoi(name.c_str() + layer_root.size());
      if (layer >= c.n_layers)
        throw input_error(t.file->path().string(), "holds tensor '" + name + "' of layer " + std::to_string(layer) +
                                                       " but config.json has " + std::to_string(c.n_layers) + " layers");
    }
    c.parameter_count += t.numel();
  }
}

std::unique_ptr<Model> load_model(const std::filesystem::path& path) {
  auto model = std::make_unique<Model>();
  model->path = path;
  std::string config_where;
  if (std::filesystem::is_regular_file(path)) {  // GGUF or llama2.c: config and names derived
    FileCheckpoint file = open_checkpoint_file(path);
    model->format = file.format;
    model->hf_config = std::move(file.config);
    model->store = std::move(file.store);
    config_where = path.string() + " (" + model->format + " header)";
  } else {
    if (!std::filesystem::is_directory(path)) throw input_error(path.string(), "not a checkpoint folder");
    config_where = (path / "config.json").string();
    model->format = "safetensors";
    model->hf_config = read_json_file(config_where);
  }
  resolve_tensors(*model, config_where);
  return model;
}

}  // namespace attnspec
