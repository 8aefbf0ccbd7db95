// The families' tensor tables (families.cpp), shared by load_model and its test: each stored
// tensor's role, name, shape in config sizes and layout. model.h is the public side.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "attnspec/io/json_file.h"
#include "attnspec/model/model.h"

namespace attnspec {

// Which optional tensors a family's layers carry. norm_weight false: LayerNorm without affine
// weights (OPT's layer_norm_elementwise_affine = false).
struct Biases { bool qkv = false, o = false, mlp = false, norm = false, norm_weight = true; };

// What a tensor is for: the field of Model or LayerSpec that takes its name. load_model checks a
// layer's tensors in table order, so tables list rows in this order (the test holds them to it).
enum class Role : uint8_t {
  Embed, EmbedProj, PosEmbed, TypeEmbed, EmbedNorm,          // once per model
  FinalNorm, ProjOut, Head,                                  // once per model, the output side (optional)
  AttnNorm, MlpNorm, QNorm, KNorm, AttnOutNorm, MlpOutNorm,  // each layer's norms
  Q, K, V, Qkv, O, Up, Gate, GateUp, Down,                   // its Linears; Qkv, GateUp fused
};

// The output side (final norm, OPT's project_out, LM head) is optional: only logits need it, so a
// checkpoint saved without it (a base model) loads as before and forward_logits says what is missing.
inline bool output_side(Role r) { return r == Role::FinalNorm || r == Role::ProjOut || r == Role::Head; }

// One dimension of a stored shape, in config sizes (named as in load_model).
enum class Dim : uint8_t {
  d,          // hidden size
  de,         // token embedding width (OPT's word_embed_proj_dim), d when not given
  qd, kvd,    // H d_h, G d_h
  qkvd,       // qd + 2 kvd: Q, K and V in one weight
  ff, ff2,    // intermediate size, twice it (gate and up in one weight)
  head_dim,
  vocab,
  positions,  // max_positions + position_offset rows
  types,      // token types
};

// How a Linear's weight holds its matrix (see LinearSpec).
enum class Layout : uint8_t {
  Linear,   // [out, in]; a fused weight stacks its parts' rows: Q | K | V, gate | up
  Conv1D,   // [in, out] (GPT-2); a fused weight holds its parts as column blocks
  PerHead,  // [out, in], a fused weight's rows by head: [head][Q, K, V][d_h] (GPT-NeoX)
};

struct TensorRow {
  Role role;
  const char* name;        // after the prefix (and a layer's block); ".weight" / ".bias" appended
  std::vector<Dim> shape;  // as stored
  Layout layout = Layout::Linear;
  bool at_root = false;    // named from the prefix's root instead (the LM head sits beside the base model)
};

// Where a family's names sit: the base model's prefix, and the root of the model that wraps it
// (where its LM head is), "" for all but the legacy multimodal Gemma3 (language_model.lm_head).
struct Prefix {
  Prefix(const char* model, const char* root = "") : model(model), root(root) {}
  const char* model;
  const char* root;
};

struct FamilyTable {
  const char* model_type;
  std::function<void(const JsonFields&, ModelConfig&, Biases&)> read_config;
  std::vector<Prefix> prefixes;       // tried in order; the one under which the Embed row exists wins
  std::vector<TensorRow> model_rows;  // Embed first
  const char* block;                  // a layer's path, {L} = its index
  std::vector<TensorRow> layer_rows;
};

const std::vector<FamilyTable>& family_tables();

// A family's table bound to one checkpoint: its config's sizes, which optional tensors it has,
// the prefix its names sit under.
struct Binding {
  const FamilyTable* table = nullptr;
  const ModelConfig* config = nullptr;
  Biases bias;
  std::string prefix;
  std::string root;            // of rows at_root (Prefix::root)
  bool linear_conv1d = false;  // GGUF / llama2.c: llama.cpp's converter stores Conv1D weights as Linears
  const TensorStore* store = nullptr;
};

// One stored tensor a row names for a bound checkpoint.
struct TensorUse {
  TensorRow row;               // as stored: a GGUF file's Conv1D row reads as a Linear one
  std::string name;
  std::vector<int64_t> shape;
  bool bias = false;           // the row's bias (a LayerNorm's beta), not its weight
  bool optional = false;       // output_side: its absence is no error at load
};

// Reads model.hf_config into model.config (config_where names it in errors) and binds its family's
// table to model.store, opened from model.path when null (after the config: its errors come
// first). Throws InputError when the token embedding is under none of the family's prefixes.
Binding bind_family(Model& model, const std::string& config_where);

// Calls fn for each tensor of layer `layer` (-1: the model's own, the embeddings and the output
// side) that the config uses, in table order, a row's weight before its bias. A tied LM head that
// is not stored is no tensor of its own (resolve_tensors makes the embedding the head).
void for_each_tensor(const Binding& b, int layer, const std::function<void(const TensorUse&)>& fn);

// load_model once model.path, format and hf_config are set: binds the family, checks every tensor
// it uses (in table order, so the first error is always the same) and records the names in model.
void resolve_tensors(Model& model, const std::string& config_where);

}  // namespace attnspec
