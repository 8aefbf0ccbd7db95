// The families attnspec describes, as data: which config.json fields give the shapes, and a table
// of weight names. Adding a family means adding a FamilyTable row and, if its config speaks a
// dialect of its own, a reader; the forward pass does not change.
#include <cmath>
#include <functional>
#include <map>
#include <numbers>

#include "attnspec/common/error.h"
#include "attnspec/io/checkpoint_file.h"
#include "attnspec/io/json_file.h"
#include "attnspec/model/model.h"

namespace attnspec {
namespace {

struct Biases { bool qkv = false, o = false, mlp = false, norm = false; };

struct FamilyTable {
  const char* model_type;
  std::vector<const char*> prefixes;  // tried in order; the one under which `embed` exists wins
  const char* embed;
  const char* pos_embed;              // "" when positions are rotary
  const char* attn_norm;              // ".weight" / ".bias" appended; {L} = layer index
  const char* mlp_norm;
  const char* q; const char* k; const char* v;  // all equal when Q, K, V are fused (GPT-2)
  const char* o; const char* up; const char* gate; const char* down;
  bool conv1d;                        // weights stored [in, out]
  std::function<void(const JsonFields&, ModelConfig&, Biases&)> read_config;
  const char* type_embed = "";        // token-type embedding (BERT), "" when none
  const char* embed_norm = "";        // norm applied to the embeddings (BERT), "" when none
};

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
void read_rope(const JsonFields& cfg, ModelConfig& c) {
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
  const double theta = rs.number("rope_theta", cfg.number("rope_theta", 10000.0));
  const double partial = rs.number("partial_rotary_factor", cfg.number("partial_rotary_factor", 1.0));
  c.rotary_dim = static_cast<int>(c.head_dim * partial);
  if (c.rotary_dim % 2 != 0 || c.rotary_dim <= 0)
    throw input_error(cfg.where(), "rotary dimension " + std::to_string(c.rotary_dim) + " must be even and positive");
  // inv_freq_i = theta^(-2i / rotary_dim), as transformers computes it (float32 result).
  std::vector<double> inv(c.rotary_dim / 2);
  for (int i = 0; i < c.rotary_dim / 2; ++i)
    inv[i] = static_cast<float>(1.0 / std::pow(theta, static_cast<double>(static_cast<float>(2 * i) / static_cast<float>(c.rotary_dim))));
  char buf[160];
  std::snprintf(buf, sizeof buf, "rope rotate-half theta=%g dim=%d", theta, c.rotary_dim);
  c.rope_description = buf;

  const std::string type = rs.string("rope_type", rs.string("type", "default"));
  if (type == "default") {
  } else if (type == "linear") {
    const double factor = rs.number("factor");
    for (double& f : inv) f /= factor;
    std::snprintf(buf, sizeof buf, " linear(factor=%g)", factor);
    c.rope_description += buf;
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
    c.rope_description += buf;
  } else {
    throw input_error(where, "rope type '" + type + "' is not supported (default, linear, llama3)");
  }
  c.inv_freq.assign(inv.begin(), inv.end());  // float32, as the model holds it
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

// BERT (encoder): learned positions, token types, LayerNorm after the embeddings and after each
// residual add (post-LN), exact GELU, biases everywhere, bidirectional attention.
void read_bert(const JsonFields& cfg, ModelConfig& c, Biases& b) {
  c.d_model = static_cast<int>(cfg.positive({"hidden_size"}));
  c.n_layers = static_cast<int>(cfg.positive({"num_hidden_layers"}));
  c.n_heads = static_cast<int>(cfg.positive({"num_attention_heads"}));
  if (c.d_model % c.n_heads != 0)
    throw input_error(cfg.where(), "hidden_size " + std::to_string(c.d_model) + " is not divisible by num_attention_heads " +
                                       std::to_string(c.n_heads));
  c.n_kv_heads = c.n_heads;
  c.head_dim = c.d_model / c.n_heads;
  c.d_ff = static_cast<int>(cfg.positive({"intermediate_size"}));
  c.vocab_size = static_cast<int>(cfg.positive({"vocab_size"}));
  c.max_positions = static_cast<int>(cfg.positive({"max_position_embeddings"}));
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

const std::vector<FamilyTable>& family_tables() {
  static const std::vector<FamilyTable> tables = {
      {"gpt2", {"transformer.", ""}, "wte.weight", "wpe.weight", "h.{L}.ln_1", "h.{L}.ln_2",
       "h.{L}.attn.c_attn", "h.{L}.attn.c_attn", "h.{L}.attn.c_attn", "h.{L}.attn.c_proj",
       "h.{L}.mlp.c_fc", "", "h.{L}.mlp.c_proj", true,
       [](const JsonFields& cfg, ModelConfig& c, Biases& b) {
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
         b = {true, true, true, true};
       }},
      {"llama", {"model.", ""}, "embed_tokens.weight", "", "layers.{L}.input_layernorm",
       "layers.{L}.post_attention_layernorm", "layers.{L}.self_attn.q_proj", "layers.{L}.self_attn.k_proj",
       "layers.{L}.self_attn.v_proj", "layers.{L}.self_attn.o_proj", "layers.{L}.mlp.up_proj",
       "layers.{L}.mlp.gate_proj", "layers.{L}.mlp.down_proj", false,
       [](const JsonFields& cfg, ModelConfig& c, Biases& b) {
         read_llama_like(cfg, c);
         const bool attn_bias = cfg.boolean("attention_bias", false);
         b = {attn_bias, attn_bias, cfg.boolean("mlp_bias", false), false};
       }},
      {"qwen2", {"model.", ""}, "embed_tokens.weight", "", "layers.{L}.input_layernorm",
       "layers.{L}.post_attention_layernorm", "layers.{L}.self_attn.q_proj", "layers.{L}.self_attn.k_proj",
       "layers.{L}.self_attn.v_proj", "layers.{L}.self_attn.o_proj", "layers.{L}.mlp.up_proj",
       "layers.{L}.mlp.gate_proj", "layers.{L}.mlp.down_proj", false,
       [](const JsonFields& cfg, ModelConfig& c, Biases& b) {
         read_llama_like(cfg, c);
         read_sliding_window(cfg, c, /*every_layer_by_default=*/false);
         b = {true, false, false, false};  // Qwen2: q/k/v carry biases, o_proj does not
       }},
      {"mistral", {"model.", ""}, "embed_tokens.weight", "", "layers.{L}.input_layernorm",
       "layers.{L}.post_attention_layernorm", "layers.{L}.self_attn.q_proj", "layers.{L}.self_attn.k_proj",
       "layers.{L}.self_attn.v_proj", "layers.{L}.self_attn.o_proj", "layers.{L}.mlp.up_proj",
       "layers.{L}.mlp.gate_proj", "layers.{L}.mlp.down_proj", false,
       [](const JsonFields& cfg, ModelConfig& c, Biases& b) {
         read_llama_like(cfg, c);
         read_sliding_window(cfg, c, /*every_layer_by_default=*/true);
         b = {false, false, false, false};
       }},
      // sentence-transformers checkpoints (BertModel) save without the "bert." prefix.
      {"bert", {"bert.", ""}, "embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
       "encoder.layer.{L}.attention.output.LayerNorm", "encoder.layer.{L}.output.LayerNorm",
       "encoder.layer.{L}.attention.self.query", "encoder.layer.{L}.attention.self.key",
       "encoder.layer.{L}.attention.self.value", "encoder.layer.{L}.attention.output.dense",
       "encoder.layer.{L}.intermediate.dense", "", "encoder.layer.{L}.output.dense", false, read_bert,
       "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm"},
  };
  return tables;
}

// Checks that `name` exists with `shape` and a supported dtype.
void expect_tensor(const TensorStore& store, const std::filesystem::path& dir, const std::string& name,
                   std::vector<int64_t> shape) {
  const TensorView* t = store.find(name);
  if (!t) throw input_error(dir.string(), "missing tensor '" + name + "' that config.json implies");
  if (t->shape != shape) {
    TensorView want;
    want.shape = shape;
    throw input_error(t->file->path().string(), "tensor '" + name + "' has shape " + t->shape_string() +
                                                    " but config.json implies " + want.shape_string());
  }
}

}  // namespace

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
                         {"max_position_embeddings", c.max_positions}})
    if (v > (1 << 24)) throw input_error(where, std::string(name) + " " + std::to_string(v) + " is implausibly large");
  if (int64_t(c.n_heads) * c.head_dim > (1 << 20) || int64_t(c.d_model) * c.d_ff > (int64_t(1) << 34))
    throw input_error(where, "attention or MLP width is implausibly large");
  return desc;
}

}  // namespace

ModelConfig read_model_config(const nlohmann::json& raw, const std::string& where) { return describe(raw, where).config; }

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
  Description desc = describe(model->hf_config, config_where);
  const FamilyTable* table = desc.table;
  const Biases bias = desc.bias;
  model->config = std::move(desc.config);
  ModelConfig& c = model->config;

  if (!model->store) model->store = TensorStore::open(path);
  const TensorStore& store = *model->store;
  std::string prefix;
  bool found = false;
  for (const char* p : table->prefixes)
    if (store.find(std::string(p) + table->embed)) { prefix = p; found = true; break; }
  if (!found) throw input_error(path.string(), std::string("missing tensor '") + table->prefixes[0] + table->embed + "' (the token embedding)");

  const int64_t d = c.d_model, qd = int64_t(c.n_heads) * c.head_dim, kvd = int64_t(c.n_kv_heads) * c.head_dim;
  model->embed = prefix + table->embed;
  expect_tensor(store, path, model->embed, {c.vocab_size, d});
  if (c.learned_positions) {
    model->pos_embed = prefix + table->pos_embed;
    expect_tensor(store, path, model->pos_embed, {c.max_positions, d});
  }

  auto linear = [&](const char* pattern, int layer, int64_t out, int64_t in, bool has_bias) {
    LinearSpec s;
    s.weight = prefix + with_layer(pattern, layer) + ".weight";
    s.bias = has_bias ? prefix + with_layer(pattern, layer) + ".bias" : "";
    s.out = out;
    s.in = in;
    s.in_out_layout = table->conv1d;
    return s;
  };
  // A norm's parameters: `.weight` / `.bias`, or `.gamma` / `.beta` as older BERT checkpoints
  // name them.
  auto norm_names = [&](const std::string& base, std::string& weight, std::string& bias_name) {
    const bool old_names = !store.find(base + ".weight") && store.find(base + ".gamma");
    weight = base + (old_names ? ".gamma" : ".weight");
    if (bias.norm) bias_name = base + (old_names ? ".beta" : ".bias");
  };
  if (*table->type_embed) {
    model->type_embed = prefix + table->type_embed;
    expect_tensor(store, path, model->type_embed, {c.type_vocab_size, d});
  }
  if (*table->embed_norm) {
    norm_names(prefix + table->embed_norm, model->embed_norm_weight, model->embed_norm_bias);
    for (const auto& n : {model->embed_norm_weight, model->embed_norm_bias})
      if (!n.empty()) expect_tensor(store, path, n, {d});
  }
  for (int l = 0; l < c.n_layers; ++l) {
    LayerSpec L;
    norm_names(prefix + with_layer(table->attn_norm, l), L.attn_norm_weight, L.attn_norm_bias);
    norm_names(prefix + with_layer(table->mlp_norm, l), L.mlp_norm_weight, L.mlp_norm_bias);
    for (const auto& n : {L.attn_norm_weight, L.attn_norm_bias, L.mlp_norm_weight, L.mlp_norm_bias})
      if (!n.empty()) expect_tensor(store, path, n, {d});

    if (table->conv1d) {
      // Fused c_attn: weight [d, 3d] holds Q | K | V column blocks, bias [3d] likewise.
      L.q = linear(table->q, l, qd, d, bias.qkv);
      L.k = linear(table->k, l, kvd, d, bias.qkv);
      L.v = linear(table->v, l, kvd, d, bias.qkv);
      L.k.col_offset = qd;
      L.v.col_offset = qd + kvd;
      expect_tensor(store, path, L.q.weight, {d, qd + 2 * kvd});
      if (bias.qkv) expect_tensor(store, path, L.q.bias, {qd + 2 * kvd});
      L.o = linear(table->o, l, d, qd, bias.o);
      L.up = linear(table->up, l, c.d_ff, d, bias.mlp);
      L.down = linear(table->down, l, d, c.d_ff, bias.mlp);
      for (const LinearSpec* s : {&L.o, &L.up, &L.down}) {
        expect_tensor(store, path, s->weight, {s->in, s->out});
        if (!s->bias.empty()) expect_tensor(store, path, s->bias, {s->out});
      }
    } else {
      L.q = linear(table->q, l, qd, d, bias.qkv);
      L.k = linear(table->k, l, kvd, d, bias.qkv);
      L.v = linear(table->v, l, kvd, d, bias.qkv);
      L.o = linear(table->o, l, d, qd, bias.o);
      L.up = linear(table->up, l, c.d_ff, d, bias.mlp);
      if (c.mlp == MlpKind::SwiGLU) L.gate = linear(table->gate, l, c.d_ff, d, bias.mlp);
      L.down = linear(table->down, l, d, c.d_ff, bias.mlp);
      for (const LinearSpec* s : {&L.q, &L.k, &L.v, &L.o, &L.up, &L.gate, &L.down}) {
        if (s->weight.empty()) continue;  // no gate outside SwiGLU
        expect_tensor(store, path, s->weight, {s->out, s->in});
        if (!s->bias.empty()) expect_tensor(store, path, s->bias, {s->out});
      }
    }
    model->layers.push_back(std::move(L));
  }
  // A tensor of a layer the config does not have means config and weights disagree.
  const std::string layer_root = prefix + std::string(table->attn_norm).substr(0, std::string(table->attn_norm).find("{L}"));
  for (const auto& [name, t] : store.tensors()) {
    if (name.rfind(layer_root, 0) == 0) {
      const int layer = std::atoi(name.c_str() + layer_root.size());
      if (layer >= c.n_layers)
        throw input_error(t.file->path().string(), "holds tensor '" + name + "' of layer " + std::to_string(layer) +
                                                       " but config.json has " + std::to_string(c.n_layers) + " layers");
    }
    c.parameter_count += t.numel();
  }
  return model;
}

}  // namespace attnspec
