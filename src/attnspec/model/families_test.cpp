// Each family's tensor table against the tensors transformers saves for it (tests/data/family_names,
// written by scripts/gen_family_names.py: config.json and every tensor's name and shape, no
// weights): every tensor of a layer has a role, every tensor the table names is there with its
// shape, the fused and transposed layouts cover their weights exactly, and a missing, renamed or
// misshapen tensor is the error that names it.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <regex>
#include <set>

#include "attnspec/common/error.h"
#include "attnspec/io/mapped_file.h"
#include "attnspec/model/families.h"
#include "attnspec/model/saved_names_test.h"

namespace attnspec {
namespace {

using namespace saved_names;

// What attnspec does not read: BERT's pooler and masked-LM head, and Gemma3's vision tower.
const std::regex kUnread("(cls\\.predictions\\..*|pooler\\.dense\\..*|vision_tower\\..*|multi_modal_projector\\..*)");

std::string where(const Saved& s) { return s.file.string() + " config"; }

// The saved checkpoint as load_model sees one: F32 views without data, in the names file (so
// errors name it).
std::unique_ptr<Model> model_of(const Saved& s, const std::string& format = "safetensors") {
  auto m = std::make_unique<Model>();
  m->path = s.file;
  m->format = format;
  m->hf_config = s.config;
  m->store = std::make_unique<TensorStore>();
  const MappedFile& file = m->store->adopt(std::make_unique<MappedFile>(s.file));
  for (const auto& [name, shape] : s.tensors) {
    TensorView v;
    v.name = name;
    v.shape = shape;
    v.file = &file;
    m->store->add_view(v);
  }
  return m;
}

// resolve_tensors's error, or "" when the tensors fit (and then, in `head_missing`, why the model has
// no LM head, "" when it has one).
std::string resolve_error(const Saved& s, const std::string& format = "safetensors", std::string* head_missing = nullptr) {
  auto m = model_of(s, format);
  try {
    resolve_tensors(*m, where(s));
  } catch (const InputError& e) {
    return e.what();
  }
  if (head_missing) *head_missing = m->head_missing;
  return "";
}

// Every tensor the table names for the saved config (model rows and every layer's), in check order.
std::vector<TensorUse> uses_of(const Saved& s) {
  auto m = model_of(s);
  const Binding b = bind_family(*m, where(s));
  std::vector<TensorUse> uses;
  for (int l = -1; l < m->config.n_layers; ++l) for_each_tensor(b, l, [&](const TensorUse& t) { uses.push_back(t); });
  return uses;
}

const FamilyTable& table_of(const Saved& s) {
  const auto& tables = family_tables();
  return *std::find_if(tables.begin(), tables.end(),
                       [&](const FamilyTable& t) { return s.config.at("model_type") == t.model_type; });
}

std::string shape_string(const Shape& shape) {
  TensorView t;
  t.shape = shape;
  return t.shape_string();
}

TEST(FamilyTables, EveryFamilyHasSavedNames) {
  std::set<std::string> saved;
  for (const auto& f : saved_files()) saved.insert(read_saved(f).config.at("model_type").get<std::string>());
  const auto families = supported_families();
  EXPECT_EQ(saved, std::set<std::string>(families.begin(), families.end())) << "in " << kNames;
}

TEST(FamilyTables, RowsInCheckOrder) {
  // load_model checks tensors in table order: Role order keeps its first error where it was.
  for (const auto& t : family_tables()) {
    SCOPED_TRACE(t.model_type);
    ASSERT_FALSE(t.model_rows.empty());
    EXPECT_EQ(t.model_rows[0].role, Role::Embed);
    for (const auto* rows : {&t.model_rows, &t.layer_rows})
      EXPECT_TRUE(std::is_sorted(rows->begin(), rows->end(),
                                 [](const TensorRow& a, const TensorRow& b) { return a.role < b.role; }));
    EXPECT_NE(std::string(t.block).find("{L}"), std::string::npos);
  }
}

class SavedNames : public testing::TestWithParam<fs::path> {
 protected:
  Saved s = read_saved(GetParam());
};

TEST_P(SavedNames, TableMatchesCheckpoint) {
  ASSERT_EQ(resolve_error(s), "");
  const auto uses = uses_of(s);
  std::set<std::string> claimed;
  for (const auto& t : uses) {
    EXPECT_TRUE(claimed.insert(t.name).second) << t.name << " is named twice";
    const auto it = s.tensors.find(t.name);
    ASSERT_NE(it, s.tensors.end()) << "the table names " << t.name << ", which transformers does not save";
    EXPECT_EQ(it->second, t.shape) << t.name;
  }
  // Every tensor of a layer has a role; outside the layers only what attnspec does not read is left.
  auto m = model_of(s);
  const Binding b = bind_family(*m, where(s));
  const std::string block = b.table->block, layer_root = b.prefix + block.substr(0, block.find("{L}"));
  for (const auto& [name, shape] : s.tensors) {
    if (claimed.count(name)) continue;
    EXPECT_NE(name.rfind(layer_root, 0), 0u) << name << " is in a layer but has no role";
    EXPECT_TRUE(std::regex_match(name, kUnread)) << name << " has no role";
  }
}

TEST_P(SavedNames, LinearsCoverTheirWeights) {
  // Each stored row (Conv1D: column) of a Linear's weight belongs to exactly one logical row of
  // exactly one of the Linears read from it: Q, K, V of a fused weight tile it without overlap.
  auto m = model_of(s);
  resolve_tensors(*m, where(s));
  const ModelConfig& c = m->config;
  ASSERT_EQ(int(m->layers.size()), c.n_layers);
  for (const LayerSpec& L : m->layers) {
    EXPECT_EQ(L.q.out, int64_t(c.n_heads) * c.head_dim);
    EXPECT_EQ(L.k.out, int64_t(c.n_kv_heads) * c.head_dim);
    EXPECT_EQ(L.v.out, L.k.out);
    EXPECT_EQ(L.q.in, c.d_model);
    std::map<std::string, std::vector<int>> hits;
    for (const LinearSpec* p : {&L.q, &L.k, &L.v, &L.o, &L.up, &L.gate, &L.down}) {
      if (p->weight.empty()) continue;
      const Shape& stored = s.tensors.at(p->weight);
      EXPECT_EQ(stored[p->in_out_layout ? 0 : 1], p->in) << p->weight;
      auto& h = hits.try_emplace(p->weight, stored[p->in_out_layout ? 1 : 0], 0).first->second;
      for (int64_t o = 0; o < p->out; ++o) {
        const int64_t at = p->in_out_layout ? p->col_offset + o : p->stored_row(o);
        ASSERT_TRUE(at >= 0 && at < int64_t(h.size())) << p->weight << " row " << o;
        ++h[at];
      }
    }
    for (const auto& [name, h] : hits)
      EXPECT_EQ(std::count(h.begin(), h.end(), 1), int64_t(h.size())) << name << ": rows read twice or never";
  }
}

TEST_P(SavedNames, MissingOrRenamedTensorIsAnError) {
  for (const auto& t : uses_of(s)) {
    Saved renamed = s;
    renamed.tensors[t.name + ".renamed"] = renamed.tensors.at(t.name);
    renamed.tensors.erase(t.name);
    std::string head_missing;
    const std::string error = resolve_error(renamed, "safetensors", &head_missing);
    if (t.optional) {  // the output side: the model loads, without a head, and says why
      EXPECT_EQ(error, "") << t.name;
      const bool untied_head = t.row.role == Role::Head;
      EXPECT_EQ(head_missing, "missing tensor '" + t.name + "'" + (untied_head ? " and tie_word_embeddings is false" : ""));
      continue;
    }
    // The embedding is looked for under every prefix and named under the first.
    const std::string want = t.row.role == Role::Embed
        ? std::string("missing tensor '") + table_of(s).prefixes[0].model + t.row.name + ".weight' (the token embedding)"
        : "missing tensor '" + t.name + "' that config.json implies";
    EXPECT_EQ(error, s.file.string() + ": " + want);
  }
}

TEST_P(SavedNames, MisshapenTensorIsAnError) {
  for (const auto& t : uses_of(s)) {
    Saved bad = s;
    Shape& shape = bad.tensors.at(t.name);
    ++shape[0];
    const std::string wrong = "tensor '" + t.name + "' has shape " + shape_string(shape) + " but config.json implies " +
                              shape_string(t.shape);
    std::string head_missing;
    const std::string error = resolve_error(bad, "safetensors", &head_missing);
    EXPECT_EQ(error, t.optional ? "" : s.file.string() + ": " + wrong);
    if (t.optional) EXPECT_EQ(head_missing, wrong);
  }
}

TEST_P(SavedNames, OutputSide) {
  // Every decoder the oracle saves has an LM head: its own tensor, or (tied) the token embedding;
  // the final norm unless post-LN; project_out exactly when the embedding is narrower than d.
  auto m = model_of(s);
  resolve_tensors(*m, where(s));
  const ModelConfig& c = m->config;
  if (!c.causal) {
    EXPECT_EQ(m->lm_head.weight, "");
    EXPECT_EQ(m->head_missing, c.family + " is an encoder; attnspec reads no masked-LM head");
    return;
  }
  EXPECT_EQ(m->head_missing, "");
  const std::string stored_head = c.family == "gpt_neox" ? "embed_out.weight" : "lm_head.weight";
  EXPECT_EQ(m->lm_head.weight, s.tensors.count(stored_head) ? stored_head : m->embed);
  EXPECT_EQ(m->lm_head.weight == m->embed, c.tie_word_embeddings) << "the saved configs tie exactly when no head is saved";
  EXPECT_EQ(m->lm_head.out, c.vocab_size);
  EXPECT_EQ(m->lm_head.in, s.tensors.at(m->embed)[1]);
  EXPECT_EQ(m->final_norm_weight.empty(), c.post_norm);
  EXPECT_EQ(m->project_out.weight.empty(), m->embed_proj.weight.empty());
  if (!m->project_out.weight.empty()) EXPECT_EQ(m->project_out.out, m->lm_head.in);
  EXPECT_EQ(c.final_softcap, c.family == "gemma2" ? 30.0 : 0.0);

  // Saved without its head (a base model): loads as before, with no head.
  Saved headless = s;
  if (headless.tensors.erase(stored_head)) {
    headless.config["tie_word_embeddings"] = false;
    std::string head_missing;
    EXPECT_EQ(resolve_error(headless, "safetensors", &head_missing), "");
    EXPECT_EQ(head_missing, "missing tensor '" + stored_head + "' and tie_word_embeddings is false");
  }
}

TEST_P(SavedNames, TensorOfAnExtraLayerIsAnError) {
  auto m = model_of(s);
  const Binding b = bind_family(*m, where(s));
  const int n = m->config.n_layers;
  Saved more = s;
  const std::string block = b.table->block;
  const std::string name = b.prefix + block.substr(0, block.find("{L}")) + std::to_string(n) + ".x.weight";
  more.tensors[name] = {1};
  EXPECT_EQ(resolve_error(more), s.file.string() + ": holds tensor '" + name + "' of layer " + std::to_string(n) +
                                     " but config.json has " + std::to_string(n) + " layers");
}

INSTANTIATE_TEST_SUITE_P(Families, SavedNames, testing::ValuesIn(saved_files()),
                         [](const auto& info) { return test_name(info.param); });

TEST(FamilyTables, Gpt2Conv1DIsReadTransposedFromGguf) {
  // Hugging Face's c_attn is [d, 3d] with Q | K | V column blocks; llama.cpp's converter stores it
  // as a [3d, d] Linear, so there Q | K | V are row blocks.
  const Saved hf = read_saved(kNames / "gpt2-base.json");
  auto m = model_of(hf);
  resolve_tensors(*m, where(hf));
  const LayerSpec& L = m->layers[0];
  for (const LinearSpec* p : {&L.q, &L.k, &L.v, &L.o, &L.up, &L.down}) EXPECT_TRUE(p->in_out_layout) << p->weight;
  EXPECT_EQ(L.k.col_offset, 64);
  EXPECT_EQ(L.v.col_offset, 128);
  EXPECT_NE(resolve_error(hf, "gguf").find("has shape [64, 192] but config.json implies [192, 64]"), std::string::npos);

  Saved gguf = hf;
  for (auto& [name, shape] : gguf.tensors)
    if (shape.size() == 2 && name.find(".h.") != std::string::npos) std::swap(shape[0], shape[1]);
  m = model_of(gguf, "gguf");
  resolve_tensors(*m, where(gguf));
  const LayerSpec& G = m->layers[0];
  for (const LinearSpec* p : {&G.q, &G.k, &G.v, &G.o, &G.up, &G.down}) EXPECT_FALSE(p->in_out_layout) << p->weight;
  EXPECT_EQ(G.k.row_offset, 64);
  EXPECT_EQ(G.v.row_offset, 128);
  EXPECT_EQ(G.down.out, 64);
  EXPECT_EQ(G.down.in, 256);
}

TEST(FamilyTables, HeadNames) {
  // The legacy multimodal Gemma3 files keep the head beside the language model
  // (language_model.lm_head), the newer ones at the root.
  Saved gemma3 = read_saved(kNames / "gemma3-multimodal.json");
  gemma3.config["tie_word_embeddings"] = false;
  gemma3.tensors["language_model.lm_head.weight"] = {512, 64};
  auto m = model_of(gemma3);
  resolve_tensors(*m, where(gemma3));
  EXPECT_EQ(m->lm_head.weight, "language_model.lm_head.weight");
  EXPECT_EQ(m->final_norm_weight, "language_model.model.norm.weight");
  // A tied config with a head stored anyway (as the converted stories260K is): transformers keeps
  // the stored head, and so does attnspec.
  Saved llama = read_saved(kNames / "llama-base.json");
  ASSERT_EQ(llama.config["tie_word_embeddings"], true);
  llama.tensors["lm_head.weight"] = {512, 64};
  m = model_of(llama);
  resolve_tensors(*m, where(llama));
  EXPECT_EQ(m->lm_head.weight, "lm_head.weight");
  // A config without the field takes the family's default: Llama unties, GPT-2 ties.
  llama.config.erase("tie_word_embeddings");
  llama.tensors.erase("lm_head.weight");
  std::string head_missing;
  EXPECT_EQ(resolve_error(llama, "safetensors", &head_missing), "");
  EXPECT_EQ(head_missing, "missing tensor 'lm_head.weight' and tie_word_embeddings is false");
  Saved gpt2 = read_saved(kNames / "gpt2-base.json");
  gpt2.config.erase("tie_word_embeddings");
  m = model_of(gpt2);
  resolve_tensors(*m, where(gpt2));
  EXPECT_EQ(m->lm_head.weight, "transformer.wte.weight");
  EXPECT_EQ(m->final_norm_bias, "transformer.ln_f.bias");
}

TEST(FamilyTables, OlderBertNormNames) {
  // Older BERT checkpoints name a LayerNorm's parameters gamma and beta.
  Saved s = read_saved(kNames / "bert-base.json");
  std::map<std::string, Shape> old;
  for (const auto& [name, shape] : s.tensors) {
    const std::string gamma = std::regex_replace(name, std::regex("LayerNorm\\.weight$"), "LayerNorm.gamma");
    old[std::regex_replace(gamma, std::regex("LayerNorm\\.bias$"), "LayerNorm.beta")] = shape;
  }
  s.tensors = old;
  auto m = model_of(s);
  resolve_tensors(*m, where(s));
  EXPECT_EQ(m->embed_norm_weight, "bert.embeddings.LayerNorm.gamma");
  EXPECT_EQ(m->embed_norm_bias, "bert.embeddings.LayerNorm.beta");
  EXPECT_EQ(m->layers[2].mlp_norm_bias, "bert.encoder.layer.2.output.LayerNorm.beta");
}

}  // namespace
}  // namespace attnspec
