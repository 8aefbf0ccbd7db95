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
  AttnNorm, MlpNorm, QNorm, KNorm, AttnOutNorm, MlpOutNorm,  // each layer's norms
  Q, K, V, Qkv, O, Up, Gate, GateUp, Down,                   // its Linears; Qkv, GateUp fused
};

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
};

struct FamilyTable {
  const char* model_type;
  std::function<void(const JsonFields&, ModelConfig&, Biases&)> read_config;
  std::vector<const char*> prefixes;  // tried in order; the one under which the Embed row exists wins
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
  bool linear_conv1d = false;  // GGUF / llama2.c: llama.cpp's converter stores Conv1D weights as Linears
  const TensorStore* store = nullptr;
};

// One stored tensor a row names for a bound checkpoint.
struct TensorUse {
  TensorRow row;               // as stored: a GGUF file's Conv1D row reads as a Linear one
  std::string name;
  std::vector<int64_t> shape;
  bool bias = false;           // the row's bias (a LayerNorm's beta), not its weight
};

// Reads model.hf_config into model.config (config_where names it in errors) and binds its family's
// table to model.store, opened from model.path when null (after the config: its errors come
// first). Throws InputError when the token embedding is under none of the family's prefixes.
Binding bind_family(Model& model, const std::string& config_where);

// Calls fn for each tensor of layer `layer` (-1: the model's own, the embeddings) that the config
// uses, in table order, a row's weight before its bias.
void for_each_tensor(const Binding& b, int layer, const std::function<void(const TensorUse&)>& fn);

// load_model once model.path, format and hf_config are set: binds the family, checks every tensor
// it uses (in table order, so the first error is always the same) and records the names in model.
void resolve_tensors(Model& model, const std::string& config_where);

}  // namespace attnspec
