// The query/key maps against their definitions on small random data (float64 throughout).
#include "attnspec/spectra/subspace.h"

#include <cmath>
#include <numeric>
#include <random>

#include <gtest/gtest.h>

#include "attnspec/spectra/spectra.h"

namespace attnspec {
namespace {

std::vector<double> random_matrix(int rows, int cols, unsigned seed, double scale_decay = 0.0) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> nd;
  std::vector<double> a(size_t(rows) * cols);  // column-major; column j scaled by exp(-decay j)
  for (int j = 0; j < cols; ++j)
    for (int i = 0; i < rows; ++i) a[size_t(j) * rows + i] = nd(gen) * std::exp(-scale_decay * j);
  return a;
}

// S = X^T X for X n x d column-major.
std::vector<double> gram(const std::vector<double>& X, int n, int d) {
  std::vector<double> S(size_t(d) * d, 0.0);
  for (int a = 0; a < d; ++a)
    for (int b = 0; b < d; ++b)
      for (int i = 0; i < n; ++i) S[size_t(b) * d + a] += X[size_t(a) * n + i] * X[size_t(b) * n + i];
  return S;
}

// || Q (I - L R^T) Kc^T ||_F^2 for Q, K n x d column-major.
double field_error(const std::vector<double>& Q, const std::vector<double>& K, int n, int d, const QueryKeyMap& m) {
  std::vector<double> M(size_t(d) * d, 0.0);  // I - L R^T
  for (int i = 0; i < d; ++i) M[size_t(i) * d + i] = 1.0;
  for (int c = 0; c < m.k; ++c)
    for (int j = 0; j < d; ++j)
      for (int i = 0; i < d; ++i) M[size_t(j) * d + i] -= m.L[size_t(c) * d + i] * m.R[size_t(c) * d + j];
  double err = 0;
  for (int r = 0; r < n; ++r)
    for (int t = 0; t < n; ++t) {
      double e = 0;
      for (int i = 0; i < d; ++i)
        for (int j = 0; j < d; ++j) e += Q[size_t(i) * n + r] * M[size_t(j) * d + i] * K[size_t(j) * n + t];
      err += e * e;
    }
  return err;
}

TEST(Subspace, FieldMapAtFullRankIsTheIdentity) {
  const int n = 40, d = 6;
  const auto Q = random_matrix(n, d, 1), K = random_matrix(n, d, 2);
  const auto m = whitened_map(gram(Q, n, d), gram(K, n, d), d, d);
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) {
      double v = 0;
      for (int c = 0; c < d; ++c) v += m.L[size_t(c) * d + i] * m.R[size_t(c) * d + j];
      EXPECT_NEAR(v, i == j ? 1.0 : 0.0, 1e-9) << i << "," << j;
    }
}

TEST(Subspace, FieldMapIsEckartYoungOptimalAndBeatsPca) {
  const int n = 30, d = 7;
  const auto Q = random_matrix(n, d, 3, 0.3), K = random_matrix(n, d, 4, 0.1);
  const auto SQ = gram(Q, n, d), SK = gram(K, n, d);
  const auto s = whitened_spectrum(SQ, SK, d);
  for (int k = 1; k < d; ++k) {
    double tail = 0;
    for (int i = k; i < d; ++i) tail += s[i] * s[i];
    const double field = field_error(Q, K, n, d, whitened_map(SQ, SK, d, k));
    EXPECT_NEAR(field, tail, 1e-8 * (1 + tail)) << k;  // the error is exactly the spectrum's tail
    EXPECT_LE(field, field_error(Q, K, n, d, pca_map(SK, d, k)) * (1 + 1e-12)) << k;
  }
}

TEST(Subspace, WeightSpectrumIsThatOfTheInteraction) {
  const int dm = 12, d = 4;  // W_Q^T, W_K^T: dm x d column-major; S = W W^T = (W^T)^T (W^T)
  auto wq = random_matrix(dm, d, 5), wk = random_matrix(dm, d, 6);
  const auto s = whitened_spectrum(gram(wq, dm, d), gram(wk, dm, d), d);
  const auto expected = interaction_singular_values(wq.data(), wk.data(), dm, d);
  for (int i = 0; i < d; ++i) EXPECT_NEAR(s[i], expected[i], 1e-9 * expected[0]) << i;
}

TEST(Subspace, PcaKeepsTheLeadingEigenvectors) {
  const int d = 3;  // S = diag(1, 9, 4): the top two are e1 (9) then e2 (4)
  const std::vector<double> S = {1, 0, 0, 0, 9, 0, 0, 0, 4};
  const auto m = pca_map(S, d, 2);
  EXPECT_NEAR(std::abs(m.R[1]), 1.0, 1e-12);
  EXPECT_NEAR(std::abs(m.R[3 + 2]), 1.0, 1e-12);
  EXPECT_EQ(m.L, m.R);
}

TEST(Subspace, FieldRanksShareTheBudgetByFieldEnergy) {
  // Head 0 concentrated (one dominant value), head 1 flat: the flat head needs the dimensions.
  const std::vector<std::vector<double>> spectra = {{10, 0.1, 0.1, 0.1}, {1, 1, 1, 1}};
  EXPECT_EQ(field_ranks(spectra, 4, 2), (std::vector<int>{1, 1}));
  EXPECT_EQ(field_ranks(spectra, 4, 5), (std::vector<int>{1, 4}));
  EXPECT_EQ(field_ranks(spectra, 4, 8), (std::vector<int>{4, 4}));
  const auto k = field_ranks({{3, 2, 1, 0}, {5, 4, 0, 0}, {1, 1, 1, 1}}, 4, 7);
  EXPECT_EQ(std::accumulate(k.begin(), k.end(), 0), 7);
  EXPECT_THROW(field_ranks(spectra, 4, 9), std::logic_error);
}

}  // namespace
}  // namespace attnspec
