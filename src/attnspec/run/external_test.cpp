// Spectra from Gram matrices computed elsewhere (external.h) against the native path on the same
// activations, and the nan an undefined W_Q^T W_K is written as.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "attnspec/common/error.h"
#include "attnspec/run/columns.h"
#include "attnspec/run/external.h"
#include "attnspec/run/outputs.h"
#include "attnspec/spectra/causal.h"
#include "attnspec/spectra/spectra.h"

namespace attnspec {
namespace {

// x [heads, n, dh] row-major; the Gram of each head's rows (less their mean when `centre`).
std::vector<double> grams(const std::vector<float>& x, int heads, int n, int dh, bool centre) {
  std::vector<double> g(size_t(heads) * dh * dh, 0.0);
  for (int h = 0; h < heads; ++h) {
    std::vector<double> mean(dh, 0.0);
    const float* xh = x.data() + size_t(h) * n * dh;
    if (centre)
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < dh; ++j) mean[j] += xh[i * dh + j] / double(n);
    for (int i = 0; i < n; ++i)
      for (int a = 0; a < dh; ++a)
        for (int b = 0; b < dh; ++b)
          g[size_t(h) * dh * dh + size_t(b) * dh + a] += (xh[i * dh + a] - mean[a]) * (xh[i * dh + b] - mean[b]);
  }
  return g;
}

TEST(External, LayerHeadsEqualTheNativeReduction) {
  const int H = 4, G = 2, n = 24, dh = 8, window = 5;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  std::vector<float> q(size_t(H) * n * dh), k(size_t(G) * n * dh);
  for (auto& v : q) v = normal(rng);
  for (auto& v : k) v = normal(rng) + 0.5f;  // a mean the centring must remove
  const std::vector<double> gq = grams(q, H, n, dh, false), gk = grams(k, G, n, dh, true);
  ExternalLayer a;
  a.layer = 3;
  a.n = n;
  a.n_heads = H;
  a.n_kv_heads = G;
  a.head_dim = dh;
  a.q_gram = gq.data();
  a.k_gram = gk.data();
  a.scale = 0.3;
  a.window = window;
  a.q = q.data();
  a.k = k.data();
  AnalysisOptions o;
  o.field = FieldMode::Both;
  const std::vector<HeadResult> heads = external_layer_heads(a, o);
  ASSERT_EQ(heads.size(), size_t(H));
  for (int h = 0; h < H; ++h) {
    const int g = h / (H / G);
    EXPECT_EQ(heads[h].layer, 3);
    EXPECT_EQ(heads[h].kv_head, g);
    const auto want = energy_field_singular_values(q.data() + size_t(h) * n * dh, dh, k.data() + size_t(g) * n * dh, dh,
                                                   n, dh, 0.3);
    ASSERT_EQ(heads[h].field.sigma.size(), want.size());
    for (size_t t = 0; t < want.size(); ++t) EXPECT_NEAR(heads[h].field.sigma[t], want[t], 1e-10 * want[0]);
    const CausalFieldOperator op(q.data() + size_t(h) * n * dh, dh, k.data() + size_t(g) * n * dh, dh, n, dh, 0.3, window);
    const CausalSpectrum causal = causal_field_spectrum(op, o.causal);
    ASSERT_EQ(heads[h].extras.causal.sigma.size(), causal.sigma.size());
    for (size_t t = 0; t < causal.sigma.size(); ++t)
      EXPECT_NEAR(heads[h].extras.causal.sigma[t], causal.sigma[t], 1e-12 * causal.sigma[0]);
  }
}

TEST(External, NonFiniteActivationsAreBadInput) {
  const int dh = 4;
  std::vector<double> gq(dh * dh, 0.0), gk(dh * dh, 0.0);
  for (int j = 0; j < dh; ++j) gq[j * dh + j] = gk[j * dh + j] = 1.0;
  gq[0] = std::nan("");
  ExternalLayer a;
  a.n = 8;
  a.n_heads = a.n_kv_heads = 1;
  a.head_dim = dh;
  a.q_gram = gq.data();
  a.k_gram = gk.data();
  a.scale = 1;
  EXPECT_THROW(external_layer_heads(a, {}), InputError);
}

TEST(External, UndefinedWeightsAreWrittenAsNan) {
  WindowResult w;
  w.n = 8;
  HeadResult h;
  h.field.sigma = {3.0, 0.5};  // 9 of 9.25: k90 = 1
  h.field.summary = summarize(h.field.sigma);
  w.heads.push_back(h);
  WeightSpectra weights;
  weights.n_heads = 1;
  weights.heads.push_back(undefined_spectrum());
  const CsvTable t = parse_csv(heads_csv_header() + heads_csv_rows(w, weights));
  ASSERT_EQ(t.rows.size(), 1u);
  for (const char* col : {"k90_weights", "erank_weights", "sigma1_weights", "gap_k90", "gap_erank", "k50_weights"})
    EXPECT_EQ(t.rows[0][t.column(col)], "nan") << col;
  EXPECT_EQ(t.rows[0][t.column("k90_field")], "1");
}

}  // namespace
}  // namespace attnspec
