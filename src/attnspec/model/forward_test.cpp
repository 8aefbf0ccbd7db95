// The forward pass's contract with its caller, on every family variant the oracle saves
// (tests/data/family_names: the config and tensor shapes transformers writes), each written here as
// a safetensors checkpoint with random weights, so that every block wiring is covered (pre-norm,
// GPT-NeoX's parallel residual, post-LN OPT, Gemma's sandwich norms). forward_logits computes
// every layer exactly as forward does; q and k written by the callback are the ones the attention
// uses; an encoder has no LM head. Agreement of the logits with transformers is tests/test_logits.py's.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "attnspec/common/error.h"
#include "attnspec/model/forward.h"
#include "attnspec/model/saved_names_test.h"

namespace attnspec {
namespace {

using namespace saved_names;

// `s` as a checkpoint folder in `dir`: its config.json and one model.safetensors with every saved
// tensor in float32, the header padded so that the data is aligned. Values: norm weights 1 + 0.2 u,
// other vectors 0.2 u, embeddings u, matrices u / sqrt(columns), u uniform in [-sqrt 3, sqrt 3]
// (unit variance).
fs::path write_random_checkpoint(const Saved& s, const fs::path& dir) {
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << s.config.dump();
  nlohmann::json header = nlohmann::json::object();
  std::vector<float> data;
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> unit(-std::sqrt(3.0f), std::sqrt(3.0f));
  for (const auto& [name, shape] : s.tensors) {
    int64_t count = 1;
    for (int64_t x : shape) count *= x;
    const bool norm = name.find("norm") != std::string::npos || name.find("ln_") != std::string::npos ||
                      name.find("LayerNorm") != std::string::npos;
    const bool embedding = name.find("embed") != std::string::npos || name.find("wte") != std::string::npos ||
                           name.find("wpe") != std::string::npos;
    const float scale = shape.size() == 1 ? 0.2f : embedding ? 1.0f : 1.0f / std::sqrt(float(shape.back()));
    const float offset = shape.size() == 1 && norm && name.ends_with("weight") ? 1.0f : 0.0f;
    header[name] = {{"dtype", "F32"}, {"shape", shape}, {"data_offsets", {data.size() * 4, (data.size() + count) * 4}}};
    for (int64_t i = 0; i < count; ++i) data.push_back(offset + scale * unit(rng));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::ofstream out(dir / "model.safetensors", std::ios::binary);
  const uint64_t size = text.size();
  out.write(reinterpret_cast<const char*>(&size), 8);
  out.write(text.data(), std::streamsize(text.size()));
  out.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size() * 4));
  return dir;
}

struct Captured {
  std::vector<float> x, q, k;
};

class Forward : public testing::TestWithParam<fs::path> {
 protected:
  void SetUp() override {
    const Saved s = read_saved(GetParam());
    // A folder of this test's own: ctest runs the tests of one family in parallel processes.
    const std::string test = testing::UnitTest::GetInstance()->current_test_info()->name();
    dir = fs::path(testing::TempDir()) /
          ("forward_" + test.substr(0, test.find('/')) + "_" + test_name(GetParam()) + "_" + std::to_string(::getpid()));
    model = load_model(write_random_checkpoint(s, dir));
    std::mt19937 rng(5);
    for (int i = 0; i < 24; ++i) ids.push_back(int32_t(rng() % model->config.vocab_size));
  }
  void TearDown() override {
    model.reset();  // unmaps the file
    fs::remove_all(dir);
  }
  // Copies of every layer's x, q and k, by a callback that writes nothing.
  std::function<void(const LayerActivations&)> capture(std::vector<Captured>& into) const {
    const ModelConfig& c = model->config;
    return [&into, &c](const LayerActivations& a) {
      const size_t n = a.n, qd = size_t(c.n_heads) * c.head_dim, kvd = size_t(c.n_kv_heads) * c.head_dim;
      into.push_back({{a.x, a.x + n * c.d_model}, {a.q, a.q + n * qd}, {a.k, a.k + n * kvd}});
    };
  }
  fs::path dir;
  std::unique_ptr<Model> model;
  std::vector<int32_t> ids;
};

bool same_bytes(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// max |a - b| / max |b|
double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, top = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(double(a[i]) - b[i]));
    top = std::max(top, std::abs(double(b[i])));
  }
  return diff / top;
}

TEST_P(Forward, LogitsRunEveryLayerAsForwardDoes) {
  const ModelConfig& c = model->config;
  std::vector<Captured> by_forward, by_logits;
  forward(*model, ids, c.n_layers - 1, capture(by_forward));
  if (!c.causal) {  // an encoder: no head, one line naming the file
    try {
      forward_logits(*model, ids, capture(by_logits));
      FAIL() << "an encoder gave logits";
    } catch (const InputError& e) {
      EXPECT_EQ(std::string(e.what()), model->path.string() + ": no LM head (" + c.family +
                                           " is an encoder; attnspec reads no masked-LM head)");
    }
    return;
  }
  const std::vector<float> logits = forward_logits(*model, ids, capture(by_logits));
  EXPECT_EQ(logits.size(), ids.size() * size_t(c.vocab_size));
  ASSERT_EQ(by_logits.size(), size_t(c.n_layers));
  ASSERT_EQ(by_forward.size(), size_t(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l) {
    EXPECT_TRUE(same_bytes(by_logits[l].x, by_forward[l].x)) << "layer " << l;
    EXPECT_TRUE(same_bytes(by_logits[l].q, by_forward[l].q)) << "layer " << l;
    EXPECT_TRUE(same_bytes(by_logits[l].k, by_forward[l].k)) << "layer " << l;
  }
  // With or without a callback, the same logits.
  EXPECT_TRUE(same_bytes(forward_logits(*model, ids), logits));
}

TEST_P(Forward, AttentionUsesTheQueriesAndKeysTheCallbackWrites) {
  const ModelConfig& c = model->config;
  const size_t n = ids.size(), qd = size_t(c.n_heads) * c.head_dim, kvd = size_t(c.n_kv_heads) * c.head_dim;
  // Every layer's x, q and k as handed to `edit` (before it writes) and, for a decoder, the logits.
  struct Run {
    std::vector<Captured> layers;
    std::vector<float> logits;
  };
  auto run = [&](const std::function<void(const LayerActivations&)>& edit) {
    Run r;
    const auto record = capture(r.layers);
    auto both = [&](const LayerActivations& a) { record(a), edit(a); };
    if (c.causal) r.logits = forward_logits(*model, ids, both);
    else forward(*model, ids, c.n_layers - 1, both);  // an encoder: its layers are what there is to see
    return r;
  };
  const Run plain = run([](const LayerActivations&) {});
  // Writing back what the callback was handed changes nothing.
  const Run same = run([&](const LayerActivations& a) {
    const std::vector<float> q(a.q, a.q + n * qd), k(a.k, a.k + n * kvd);
    std::copy(q.begin(), q.end(), a.q);
    std::copy(k.begin(), k.end(), a.k);
  });
  EXPECT_TRUE(same_bytes(same.logits, plain.logits));
  for (int l = 0; l < c.n_layers; ++l) EXPECT_TRUE(same_bytes(same.layers[l].x, plain.layers[l].x)) << l;
  // Sharpening one layer's queries, or flattening its keys to their first row (every score of a
  // query the same: uniform attention), changes the next layer's input and the logits, and nothing
  // the layers up to it were handed: each layer's attention reads q and k after the callback.
  for (int target = 0; target < c.n_layers; ++target)
    for (const char* edit : {"q", "k"}) {
      const Run edited = run([&](const LayerActivations& a) {
        if (a.layer != target) return;
        if (edit[0] == 'q')
          for (size_t i = 0; i < n * qd; ++i) a.q[i] *= 8;
        else
          for (size_t i = 1; i < n; ++i) std::copy_n(a.k, kvd, a.k + i * kvd);
      });
      for (int l = 0; l <= target; ++l) {
        EXPECT_TRUE(same_bytes(edited.layers[l].q, plain.layers[l].q)) << edit << " of layer " << target << ": " << l;
        EXPECT_TRUE(same_bytes(edited.layers[l].k, plain.layers[l].k)) << edit << " of layer " << target << ": " << l;
      }
      if (target + 1 < c.n_layers)
        EXPECT_GT(rel_diff(edited.layers[target + 1].x, plain.layers[target + 1].x), 1e-4) << edit << " of layer " << target;
      if (c.causal) EXPECT_GT(rel_diff(edited.logits, plain.logits), 1e-4) << edit << " of layer " << target;
    }
}

INSTANTIATE_TEST_SUITE_P(Families, Forward, testing::ValuesIn(saved_files()),
                         [](const auto& info) { return test_name(info.param); });

}  // namespace
}  // namespace attnspec
