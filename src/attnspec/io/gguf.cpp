// GGUF files: parsing (bounds-checked throughout), the model they hold described as a Hugging
// Face config with Hugging Face tensor names, and the tokenizer metadata they carry, as data.
#include "attnspec/io/gguf.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include "attnspec/common/error.h"
#include "attnspec/io/checkpoint_file.h"
#include "attnspec/io/mapped_file.h"

namespace attnspec {
namespace {

constexpr uint32_t kTypeArray = 9, kTypeString = 8;
constexpr int kMaxDims = 4;       // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;  // arrays of arrays: nothing real nests deeper
constexpr uint64_t kMaxArray = uint64_t(1) << 24;

class Reader {
 public:
  Reader(const std::byte* data, size_t size, const std::string& where) : data_(data), size_(size), where_(where) {}
  size_t pos() const { return pos_; }
  size_t left() const { return size_ - pos_; }
  [[noreturn]] void fail(const std::string& what) const {
    throw input_error(where_, "GGUF " + what + " (at byte " + std::to_string(pos_) + ")");
  }
  void need(uint64_t n, const char* what) {
    if (n > left()) fail(std::string("truncated in ") + what);
  }
  template <typename T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string string(const char* what) {
    const uint64_t n = get<uint64_t>(what);
    if (n > left()) fail(std::string("string length ") + std::to_string(n) + " in " + what + " runs past the end of the file");
    std::string s(reinterpret_cast<const char*>(data_ + pos_), size_t(n));
    pos_ += size_t(n);
    return s;
  }

 private:
  const std::byte* data_;
  size_t size_;
  size_t pos_ = 0;
  std::string where_;
};

// Smallest encoded size of a value of `type`: bounds array counts before anything is allocated.
uint64_t min_value_bytes(uint32_t type) {
  switch (type) {
    case 0: case 1: case 7: return 1;
    case 2: case 3: return 2;
    case 4: case 5: case 6: return 4;
    case 10: case 11: case 12: return 8;
    case kTypeString: return 8;
    case kTypeArray: return 12;
    default: return 0;
  }
}

nlohmann::json read_value(Reader& r, uint32_t type, const std::string& key, int depth) {
  switch (type) {
    case 0: return r.get<uint8_t>("a metadata value");
    case 1: return r.get<int8_t>("a metadata value");
    case 2: return r.get<uint16_t>("a metadata value");
    case 3: return r.get<int16_t>("a metadata value");
    case 4: return r.get<uint32_t>("a metadata value");
    case 5: return r.get<int32_t>("a metadata value");
    case 6: return r.get<float>("a metadata value");
    case 7: {
      const uint8_t b = r.get<uint8_t>("a metadata value");
      if (b > 1) r.fail("metadata '" + key + "' has a bool that is " + std::to_string(b));
      return b == 1;
    }
    case kTypeString: return r.string("a metadata string");
    case 10: return r.get<uint64_t>("a metadata value");
    case 11: return r.get<int64_t>("a metadata value");
    case 12: return r.get<double>("a metadata value");
    case kTypeArray: {
      if (depth >= kMaxArrayDepth) r.fail("metadata '" + key + "' nests arrays deeper than " + std::to_string(kMaxArrayDepth));
      const uint32_t elem = r.get<uint32_t>("an array type");
      const uint64_t n = r.get<uint64_t>("an array length");
      const uint64_t min = min_value_bytes(elem);
      if (min == 0) r.fail("metadata '" + key + "' is an array of unknown value type " + std::to_string(elem));
      if (n > r.left() / min)
        r.fail("metadata '" + key + "' claims " + std::to_string(n) + " array elements, more than the file can hold");
      // Real arrays (vocabularies, merges) hold at most a few hundred thousand entries; a larger
      // one would only make the reader allocate.
      if (n > kMaxArray) r.fail("metadata '" + key + "' has " + std::to_string(n) + " array elements (limit 2^24)");
      nlohmann::json a = nlohmann::json::array();
      a.get_ref<nlohmann::json::array_t&>().reserve(size_t(n));
      for (uint64_t i = 0; i < n; ++i) a.push_back(read_value(r, elem, key, depth + 1));
      return a;
    }
    default:
      r.fail("metadata '" + key + "' has unknown value type " + std::to_string(type));
  }
}

}  // namespace

GgufFile parse_gguf(const std::byte* data, size_t size, const std::string& where) {
  Reader r(data, size, where);
  if (size < 4 || std::memcmp(data, "GGUF", 4) != 0) throw input_error(where, "not a GGUF file (bad magic)");
  r.get<uint32_t>("the magic");
  GgufFile f;
  f.version = r.get<uint32_t>("the version");
  if (f.version != 2 && f.version != 3)
    throw input_error(where, "GGUF version " + std::to_string(f.version) + " is not supported (2, 3)");
  const uint64_t n_tensors = r.get<uint64_t>("the tensor count");
  const uint64_t n_kv = r.get<uint64_t>("the metadata count");
  // A key-value pair takes at least 8 + 4 + 1 bytes, a tensor info at least 8 + 4 + 8 + 4 + 8.
  if (n_kv > r.left() / 13) throw input_error(where, "GGUF metadata count " + std::to_string(n_kv) + " is more than the file can hold");
  if (n_tensors > r.left() / 32) throw input_error(where, "GGUF tensor count " + std::to_string(n_tensors) + " is more than the file can hold");
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = r.string("a metadata key");
    const uint32_t type = r.get<uint32_t>("a metadata type");
    nlohmann::json value = read_value(r, type, key, 0);
    if (f.metadata.count(key)) r.fail("metadata key '" + key + "' appears twice");
    f.metadata_types[key] = type;
    f.metadata.emplace(std::move(key), std::move(value));
  }
  if (const auto* a = f.find("general.alignment")) {
    if (!a->is_number_unsigned() || a->get<uint64_t>() == 0 || a->get<uint64_t>() > (1u << 20) ||
        (a->get<uint64_t>() & (a->get<uint64_t>() - 1)) != 0)
      throw input_error(where, "general.alignment " + a->dump() + " is not a power of two up to 2^20");
    f.alignment = a->get<uint64_t>();
  }
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.name = r.string("a tensor name");
    const uint32_t n_dims = r.get<uint32_t>("a tensor's dimension count");
    if (n_dims == 0 || n_dims > kMaxDims) r.fail("tensor '" + t.name + "' has " + std::to_string(n_dims) + " dimensions (1 to 4)");
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = r.get<uint64_t>("a tensor's dimensions");
      if (ne == 0 || ne > (uint64_t(1) << 40) || numel > (uint64_t(1) << 42) / ne)
        r.fail("tensor '" + t.name + "' has an implausible dimension " + std::to_string(ne));
      numel *= ne;
      t.ne.push_back(ne);
    }
    t.type = r.get<uint32_t>("a tensor's type");
    t.offset = r.get<uint64_t>("a tensor's offset");
    const TypeLayout* layout = type_layout(t.type);
    if (!layout)
      throw input_error(where, "tensor '" + t.name + "' has GGML type " + ggml_type_name(t.type) +
                                   ", which attnspec does not read (" + readable_types() + ")");
    if (t.ne[0] % layout->block != 0)
      r.fail(std::string(layout->name) + " tensor '" + t.name + "' has rows of " + std::to_string(t.ne[0]) +
             " values, not a multiple of its block of " + std::to_string(layout->block));
    t.nbytes = dtype_bytes(layout->type, numel);
    f.tensors.push_back(std::move(t));
  }
  f.data_offset = (r.pos() + f.alignment - 1) / f.alignment * f.alignment;
  if (f.data_offset > size) throw input_error(where, "GGUF data section starts past the end of the file");
  const uint64_t data_size = size - f.data_offset;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  std::map<std::string, int> seen;
  for (const auto& t : f.tensors) {
    if (seen[t.name]++) throw input_error(where, "tensor '" + t.name + "' appears twice");
    if (t.offset % f.alignment != 0)
      throw input_error(where, "tensor '" + t.name + "' offset " + std::to_string(t.offset) + " is not aligned to " +
                                   std::to_string(f.alignment));
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      throw input_error(where, std::string(ggml_type_name(t.type)) + " tensor '" + t.name + "' data [" + std::to_string(t.offset) +
                                   ", +" + std::to_string(t.nbytes) + ") lies outside the data section (" +
                                   std::to_string(data_size) + " bytes)");
    ranges.emplace_back(t.offset, t.offset + t.nbytes);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second) throw input_error(where, "tensor data ranges overlap");
  return f;
}

namespace {

// GGUF's metadata value types, by number.
std::string value_type_name(uint32_t type) {
  static const char* names[] = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
                                "bool",  "string", "array", "uint64", "int64", "float64"};
  return type < std::size(names) ? names[type] : "type " + std::to_string(type);
}

// Typed metadata access with errors naming the file, the key and the type found.
class Meta {
 public:
  Meta(const GgufFile& f, std::string where, std::string arch) : f_(f), where_(std::move(where)), arch_(std::move(arch)) {}
  const nlohmann::json* find(const std::string& key) const { return f_.find(expand(key)); }
  std::string expand(const std::string& key) const {
    return key.rfind("{arch}", 0) == 0 ? arch_ + key.substr(6) : key;
  }
  int64_t integer(const std::string& key) const {
    const auto* v = find(key);
    if (!v) throw input_error(where_, "GGUF metadata lacks '" + expand(key) + "'");
    return integer_of(key, *v);
  }
  int64_t integer(const std::string& key, int64_t fallback) const {
    const auto* v = find(key);
    return v ? integer_of(key, *v) : fallback;
  }
  double number(const std::string& key, double fallback) const {
    const auto* v = find(key);
    if (!v) return fallback;
    if (!v->is_number()) wrong_type(key, "a number");
    return v->get<double>();
  }
  bool boolean(const std::string& key, bool fallback) const {
    const auto* v = find(key);
    if (!v) return fallback;
    if (!v->is_boolean()) wrong_type(key, "a bool");
    return v->get<bool>();
  }
  std::string string(const std::string& key, const std::string& fallback) const {
    const auto* v = find(key);
    if (!v) return fallback;
    if (!v->is_string()) wrong_type(key, "a string");
    return v->get<std::string>();
  }
  // An array whose every element satisfies `ok`.
  const nlohmann::json* array(const std::string& key, bool (nlohmann::json::*ok)() const noexcept) const {
    const auto* v = find(key);
    if (!v) return nullptr;
    if (!v->is_array()) wrong_type(key, "an array");
    for (const auto& e : *v)
      if (!(e.*ok)()) throw input_error(where_, "GGUF metadata '" + expand(key) + "' holds an element of the wrong type");
    return v;
  }
  const std::string& where() const { return where_; }

 private:
  int64_t integer_of(const std::string& key, const nlohmann::json& v) const {
    if (!v.is_number_integer()) wrong_type(key, "an integer");
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX))
      throw input_error(where_, "GGUF metadata '" + expand(key) + "' is " + std::to_string(v.get<uint64_t>()) + ", out of range");
    return v.get<int64_t>();
  }
  [[noreturn]] void wrong_type(const std::string& key, const char* wanted) const {
    const auto it = f_.metadata_types.find(expand(key));
    const std::string found = it == f_.metadata_types.end() ? "a value of another type" : value_type_name(it->second);
    throw input_error(where_, "GGUF metadata '" + expand(key) + "' is " + found + ", not " + wanted);
  }
  const GgufFile& f_;
  std::string where_;
  std::string arch_;
};

// What llama.cpp's converter (convert_hf_to_gguf.py) did to each architecture it writes, so that
// attnspec can read the file back as the Hugging Face checkpoint it came from.
enum class NameStyle {
  Llama,  // model.layers.N.self_attn.q_proj, ... (llama, mistral, qwen2, qwen3)
  Gemma,  // Llama's, with four norms per layer (llama.cpp's ffn_norm is Gemma's pre_feedforward_layernorm)
  Phi3,   // Llama's, with fused attn_qkv (qkv_proj) and ffn_up holding gate and up rows (gate_up_proj)
  Gpt2,   // transformer.h.N.attn.c_attn, ...: Conv1D weights, which the converter transposed to [out, in]
};

struct GgufArch {
  const char* arch;        // general.architecture
  const char* model_type;  // the Hugging Face family it is read as
  NameStyle names;
  bool permuted;           // LlamaModel.permute: Q/K rows of each head in interleaved RoPE pairs
};

// Every other architecture uses rotate-half RoPE pairs as Hugging Face does (llama.cpp's NEOX rope
// type), so its Q/K rows are stored as they are.
constexpr GgufArch kArchs[] = {
    {"llama", "llama", NameStyle::Llama, true},   {"qwen2", "qwen2", NameStyle::Llama, false},
    {"qwen3", "qwen3", NameStyle::Llama, false},  {"phi3", "phi3", NameStyle::Phi3, false},
    {"gemma2", "gemma2", NameStyle::Gemma, false}, {"gemma3", "gemma3_text", NameStyle::Gemma, false},
    {"gpt2", "gpt2", NameStyle::Gpt2, false},
};

// GGUF tensor names -> Hugging Face names of the architecture's family.
std::string hf_name(const std::string& g, NameStyle style, bool* known) {
  *known = true;
  using Names = std::map<std::string, std::string>;
  static const Names llama_top = {{"token_embd", "model.embed_tokens"}, {"output_norm", "model.norm"}, {"output", "lm_head"}};
  static const Names gpt2_top = {{"token_embd", "transformer.wte"}, {"position_embd", "transformer.wpe"},
                                 {"output_norm", "transformer.ln_f"}, {"output", "lm_head"}};
  static const Names llama_block = {
      {"attn_norm", "input_layernorm"},       {"ffn_norm", "post_attention_layernorm"}, {"attn_q", "self_attn.q_proj"},
      {"attn_k", "self_attn.k_proj"},         {"attn_v", "self_attn.v_proj"},          {"attn_output", "self_attn.o_proj"},
      {"ffn_gate", "mlp.gate_proj"},          {"ffn_up", "mlp.up_proj"},               {"ffn_down", "mlp.down_proj"},
      {"attn_q_norm", "self_attn.q_norm"},    {"attn_k_norm", "self_attn.k_norm"}};
  // Parts whose Hugging Face name differs from Llama's, per style.
  static const Names gemma_block = {{"ffn_norm", "pre_feedforward_layernorm"},
                                    {"post_attention_norm", "post_attention_layernorm"},
                                    {"post_ffw_norm", "post_feedforward_layernorm"}};
  static const Names phi3_block = {{"attn_qkv", "self_attn.qkv_proj"}, {"ffn_up", "mlp.gate_up_proj"}};
  static const Names gpt2_block = {{"attn_norm", "ln_1"},         {"attn_qkv", "attn.c_attn"}, {"attn_output", "attn.c_proj"},
                                   {"ffn_norm", "ln_2"},          {"ffn_up", "mlp.c_fc"},      {"ffn_down", "mlp.c_proj"}};
  const bool gpt2 = style == NameStyle::Gpt2;
  // A block part is looked up in the style's own names first, then (but for GPT-2) in Llama's.
  const Names* own = style == NameStyle::Gemma ? &gemma_block
                     : style == NameStyle::Phi3 ? &phi3_block
                     : gpt2                     ? &gpt2_block
                                                : nullptr;
  const Names* base = gpt2 ? nullptr : &llama_block;
  const size_t dot = g.rfind('.');
  const std::string stem = dot == std::string::npos ? g : g.substr(0, dot), suffix = dot == std::string::npos ? "" : g.substr(dot);
  const Names& top = gpt2 ? gpt2_top : llama_top;
  if (auto it = top.find(stem); it != top.end()) return it->second + suffix;
  if (stem.rfind("blk.", 0) == 0) {
    const size_t second = stem.find('.', 4);
    if (second != std::string::npos) {
      const std::string layer = stem.substr(4, second - 4), part = stem.substr(second + 1);
      const bool digits = !layer.empty() && layer.size() < 8 && layer.find_first_not_of("0123456789") == std::string::npos;
      const std::string* hf = nullptr;
      for (const Names* names : {own, base}) {
        if (!names || hf) continue;
        if (auto it = names->find(part); it != names->end()) hf = &it->second;
      }
      if (digits && hf) return (gpt2 ? "transformer.h." : "model.layers.") + layer + "." + *hf + suffix;
    }
  }
  *known = false;
  return g;
}

// The config.json of the checkpoint the file was converted from, in the family's own dialect,
// from the {arch}.* metadata and what the tensors show (biases, a separate output matrix).
nlohmann::json hf_config(const Meta& m, const GgufArch& a, int64_t d, int64_t heads, int64_t kv_heads, int64_t head_dim,
                         int64_t vocab, bool has_output, bool has_q_bias) {
  const std::string type = a.model_type, where = m.where();
  if (type == "gpt2") {
    // GPT2Model writes no head_count_kv, rope or key_length: d_h = d / H, learned positions, tanh GELU.
    if (kv_heads != heads || head_dim * heads != d)
      throw input_error(where, "GGUF gpt2 file has " + std::to_string(kv_heads) + " KV heads and head dimension " +
                                   std::to_string(head_dim) + " (GPT-2 has one KV head per head and d / heads)");
    return {{"model_type", "gpt2"},
            {"n_embd", d},
            {"n_layer", m.integer("{arch}.block_count")},
            {"n_head", heads},
            {"n_inner", m.integer("{arch}.feed_forward_length")},
            {"n_positions", m.integer("{arch}.context_length")},
            {"vocab_size", vocab},
            {"layer_norm_epsilon", m.number("{arch}.attention.layer_norm_epsilon", 1e-5)},
            {"activation_function", "gelu_new"}};
  }
  const bool gemma = type.starts_with("gemma");
  nlohmann::json c = {{"model_type", type},
                      {"hidden_size", d},
                      {"num_hidden_layers", m.integer("{arch}.block_count")},
                      {"num_attention_heads", heads},
                      {"num_key_value_heads", kv_heads},
                      {"head_dim", head_dim},
                      {"intermediate_size", m.integer("{arch}.feed_forward_length")},
                      {"vocab_size", vocab},
                      {"max_position_embeddings", m.integer("{arch}.context_length")},
                      {"rms_norm_eps", m.number("{arch}.attention.layer_norm_rms_epsilon", gemma ? 1e-6 : 1e-5)},
                      {"rope_theta", m.number("{arch}.rope.freq_base", 10000.0)},
                      {"tie_word_embeddings", !has_output}};
  if (gemma) {
    c["hidden_activation"] = "gelu_pytorch_tanh";  // GeGLU with tanh GELU
  } else {
    c["hidden_act"] = "silu";
  }
  if (const int64_t rot = m.integer("{arch}.rope.dimension_count", head_dim); rot != head_dim)
    c["partial_rotary_factor"] = double(rot) / double(head_dim);
  const std::string scaling = m.string("{arch}.rope.scaling.type", "none");
  if (scaling == "linear") {
    c["rope_scaling"] = {{"rope_type", "linear"}, {"factor", m.number("{arch}.rope.scaling.factor", 1.0)}};
  } else if (scaling != "none") {
    throw input_error(where, "GGUF rope scaling '" + scaling + "' is not supported (none, linear)");
  } else if (const double factor = m.number("{arch}.rope.scaling.factor", 1.0); factor != 1.0) {
    c["rope_scaling"] = {{"rope_type", "linear"}, {"factor", factor}};
  }
  if (type == "llama" || type == "mistral" || type == "qwen3") c["attention_bias"] = has_q_bias;
  if (m.find("{arch}.attention.sliding_window")) c["sliding_window"] = m.integer("{arch}.attention.sliding_window");
  if (type == "gemma2") {
    // llama.cpp's Gemma 2: every other layer (0, 2, ...) local with a 4096 window unless the file
    // says otherwise, attention logits soft-capped at 50 and final logits at 30 unless it says
    // otherwise, and queries scaled by 1/sqrt(head_dim), except for the 46-layer 27B model, which
    // Google scales by 1/sqrt(d / heads) (query_pre_attn_scalar, which the file does not carry).
    c["query_pre_attn_scalar"] = m.integer("{arch}.block_count") == 46 ? d / heads : head_dim;
    c["attn_logit_softcapping"] = m.number("{arch}.attn_logit_softcapping", 50.0);
    c["final_logit_softcapping"] = m.number("{arch}.final_logit_softcapping", 30.0);
    if (!c.contains("sliding_window")) c["sliding_window"] = 4096;
  }
  if (type == "gemma3_text") {
    // llama.cpp's Gemma 3: five sliding layers per global one, the sliding layers' RoPE base fixed
    // at 10000, queries scaled by 1/sqrt(head_dim) (query_pre_attn_scalar = key_length, as
    // transformers reads these files).
    c["query_pre_attn_scalar"] = head_dim;
    c["rope_local_base_freq"] = 10000.0;
    c["sliding_window_pattern"] = 6;
  }
  return c;
}

}  // namespace

std::string gguf_architectures() {
  std::string s;
  for (const auto& a : kArchs) s += (s.empty() ? "" : ", ") + std::string(a.arch);
  return s;
}

FileCheckpoint read_gguf(std::unique_ptr<MappedFile> owned) {
  const std::string where = owned->path().string();
  const GgufFile f = parse_gguf(owned->data(), owned->size(), where);
  const auto arch_value = f.find("general.architecture");
  if (!arch_value || !arch_value->is_string()) throw input_error(where, "GGUF metadata lacks general.architecture");
  const std::string arch_name = arch_value->get<std::string>();
  const GgufArch* found = nullptr;
  for (const auto& a : kArchs)
    if (arch_name == a.arch) found = &a;
  if (!found) throw input_error(where, "GGUF architecture '" + arch_name + "' is not supported (" + gguf_architectures() + ")");
  GgufArch arch = *found;
  const Meta m(f, where, arch_name);
  // llama.cpp's converter writes Mistral checkpoints as "llama"; a sliding window, when recorded,
  // makes them Mistral again.
  if (arch_name == "llama" && m.find("{arch}.attention.sliding_window")) arch.model_type = "mistral";
  const bool gemma = arch.names == NameStyle::Gemma;

  FileCheckpoint ck;
  ck.format = "gguf";
  ck.store = std::make_unique<TensorStore>();
  const MappedFile& file = ck.store->adopt(std::move(owned));

  const int64_t d = m.integer("{arch}.embedding_length"), heads = m.integer("{arch}.attention.head_count");
  const int64_t kv_heads = m.integer("{arch}.attention.head_count_kv", heads);
  if (d <= 0 || heads <= 0 || kv_heads <= 0 || d > (1 << 24) || heads > (1 << 20) || kv_heads > heads)
    throw input_error(where, "GGUF embedding_length / head_count / head_count_kv are not plausible");
  const int64_t head_dim = m.integer("{arch}.attention.key_length", d / heads);
  if (head_dim <= 0 || head_dim % 2 != 0 || head_dim > (1 << 16))
    throw input_error(where, "GGUF head dimension " + std::to_string(head_dim) + " is not plausible");

  int64_t vocab = 0;
  bool has_output = false, has_q_bias = false;
  for (const auto& t : f.tensors) {
    bool known;
    const std::string name = hf_name(t.name, arch.names, &known);
    if (!known) {
      if (t.name == "rope_freqs.weight")
        throw input_error(where, "holds rope_freqs.weight (per-frequency RoPE scaling, as for Llama 3.1+), which attnspec does not read from GGUF");
      if (t.name.starts_with("rope_factors_"))
        throw input_error(where, "holds " + t.name + " (Phi-3's longrope scaling for long contexts), which attnspec does not implement");
      throw input_error(where, "tensor '" + t.name + "' has no Hugging Face counterpart for architecture " + arch_name);
    }
    TensorView v;
    v.name = name;
    v.dtype = DType(t.type);  // parse_gguf checked it is one attnspec reads
    for (auto it = t.ne.rbegin(); it != t.ne.rend(); ++it) v.shape.push_back(int64_t(*it));  // outermost first
    v.data = file.data() + f.data_offset + t.offset;
    v.nbytes = t.nbytes;
    v.file = &file;
    if (gemma && name.ends_with("norm.weight")) v.add = -1.0f;  // stored as 1 + w (see TensorView::add)
    const bool q = name.find(".self_attn.q_proj.") != std::string::npos, k = name.find(".self_attn.k_proj.") != std::string::npos;
    if (q && name.ends_with(".bias")) has_q_bias = true;
    if (arch.permuted && (q || k)) {
      // Undo LlamaModel.permute (interleaved pairs) back to Hugging Face's rotate-half rows.
      const int64_t n = q ? heads : kv_heads;
      if (v.shape[0] != n * head_dim)
        throw input_error(where, "tensor '" + t.name + "' has " + std::to_string(v.shape[0]) + " rows, not " +
                                     std::to_string(n) + " heads x " + std::to_string(head_dim));
      v.row_perm = rotate_half_rows(n, head_dim);
    }
    if (t.name == "token_embd.weight" && v.shape.size() == 2) vocab = v.shape[0];
    if (t.name == "output.weight") has_output = true;
    ck.store->add_view(std::move(v));
  }
  if (vocab == 0) throw input_error(where, "GGUF file lacks token_embd.weight");
  ck.config = hf_config(m, arch, d, heads, kv_heads, head_dim, vocab, has_output, has_q_bias);
  return ck;
}

FileCheckpoint open_gguf(const std::filesystem::path& path) { return read_gguf(std::make_unique<MappedFile>(path)); }

// --- The tokenizer in the metadata -----------------------------------------------------------

GgufTokenizerData gguf_tokenizer_data(const GgufFile& f, const std::string& where) {
  const Meta m(f, where, "");
  const std::string model = m.string("tokenizer.ggml.model", "");
  if (model.empty()) throw input_error(where, "GGUF file has no tokenizer (tokenizer.ggml.model); pass --tokenizer or --token-ids");
  const auto* tokens = m.array("tokenizer.ggml.tokens", &nlohmann::json::is_string);
  if (!tokens || tokens->empty()) throw input_error(where, "GGUF tokenizer lacks tokenizer.ggml.tokens");
  GgufTokenizerData t;
  t.tokens.reserve(tokens->size());
  for (const auto& token : *tokens) t.tokens.push_back(token.get<std::string>());
  const int64_t n = int64_t(t.tokens.size());
  auto special_id = [&](const char* key) -> std::optional<int32_t> {
    const auto* v = m.find(key);
    if (!v) return std::nullopt;
    const int64_t id = m.integer(key);
    if (id < 0 || id >= n) throw input_error(where, std::string("GGUF ") + key + " " + std::to_string(id) + " is not a token id");
    return int32_t(id);
  };
  t.bos = special_id("tokenizer.ggml.bos_token_id");
  t.eos = special_id("tokenizer.ggml.eos_token_id");
  t.unk = special_id("tokenizer.ggml.unknown_token_id");
  // llama.cpp's defaults: SentencePiece vocabularies add BOS, byte-level BPE ones do not.
  t.add_bos = m.boolean("tokenizer.ggml.add_bos_token", model == "llama");
  if (t.add_bos && !t.bos) throw input_error(where, "GGUF add_bos_token is set but tokenizer.ggml.bos_token_id is not");
  t.add_eos = m.boolean("tokenizer.ggml.add_eos_token", false);
  if (t.add_eos && !t.eos) throw input_error(where, "GGUF add_eos_token is set but tokenizer.ggml.eos_token_id is not");
  if (const auto* types = m.array("tokenizer.ggml.token_type", &nlohmann::json::is_number_integer)) {
    if (int64_t(types->size()) != n) throw input_error(where, "GGUF token_type and tokens differ in length");
    t.token_types.reserve(types->size());
    for (const auto& type : *types) t.token_types.push_back(type.get<int64_t>());
  }
  if (model == "llama") {
    t.model = GgufTokenizerModel::Llama;
    if (const auto* scores = m.array("tokenizer.ggml.scores", &nlohmann::json::is_number)) {
      if (int64_t(scores->size()) != n) throw input_error(where, "GGUF scores and tokens differ in length");
      t.scores.reserve(scores->size());
      for (const auto& score : *scores) t.scores.push_back(score.get<float>());
    }
    t.add_space_prefix = m.boolean("tokenizer.ggml.add_space_prefix", true);
    return t;
  }
  if (model == "gpt2") {
    t.model = GgufTokenizerModel::Gpt2;
    const auto* merges = m.array("tokenizer.ggml.merges", &nlohmann::json::is_string);
    if (!merges) throw input_error(where, "GGUF gpt2 tokenizer lacks tokenizer.ggml.merges");
    t.merges.reserve(merges->size());
    for (const auto& merge : *merges) t.merges.push_back(merge.get<std::string>());
    t.pre = m.string("tokenizer.ggml.pre", "default");
    return t;
  }
  throw input_error(where, "GGUF tokenizer model '" + model + "' is not supported (llama, gpt2)");
}

GgufTokenizerData read_gguf_tokenizer(const std::filesystem::path& path) {
  const std::string where = path.string();
  MappedFile file(path);
  return gguf_tokenizer_data(parse_gguf(file.data(), file.size(), where), where);
}

}  // namespace attnspec
