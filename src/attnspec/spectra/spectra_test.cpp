// The exact reductions against LAPACK's dense SVD of the materialised matrices, and the metrics
// against hand-computed values.
#include <gtest/gtest.h>

#include <cblas.h>

#include <cmath>
#include <random>

#include "attnspec/spectra/metrics.h"
#include "attnspec/spectra/spectra.h"

namespace attnspec {
namespace {

std::vector<double> random_matrix(int m, int c, std::mt19937& rng) {
  std::normal_distribution<double> normal;
  std::vector<double> a(size_t(m) * c);
  for (double& x : a) x = normal(rng);
  return a;
}

// Dense reference: singular values of A1 A2^T (m x m), materialised.
std::vector<double> dense_product(const std::vector<double>& a1, const std::vector<double>& a2, int m, int c) {
  std::vector<double> p(size_t(m) * m);
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, m, m, c, 1.0, a1.data(), m, a2.data(), m, 0.0, p.data(), m);
  return dense_singular_values(p.data(), m, m);
}

void expect_spectra_match(const std::vector<double>& fast, const std::vector<double>& dense) {
  ASSERT_FALSE(fast.empty());
  ASSERT_LE(fast.size(), dense.size());
  const double tol = 1e-10 * dense[0];
  for (size_t i = 0; i < fast.size(); ++i) EXPECT_NEAR(fast[i], dense[i], tol) << "sigma_" << i + 1;
  for (size_t i = fast.size(); i < dense.size(); ++i) EXPECT_NEAR(dense[i], 0.0, tol) << "dense tail " << i + 1;
}

TEST(ProductSingularValues, MatchesDenseSvdOnRandomFactors) {
  std::mt19937 rng(1);
  for (auto [m, c] : {std::pair{200, 16}, {64, 64}, {300, 7}, {1000, 24}, {130, 128}}) {
    auto a1 = random_matrix(m, c, rng), a2 = random_matrix(m, c, rng);
    auto dense = dense_product(a1, a2, m, c);
    auto fast = product_singular_values(a1.data(), m, c, a2.data(), c);
    EXPECT_EQ(fast.size(), size_t(std::min(m, c)));
    expect_spectra_match(fast, dense);
  }
}

TEST(ProductSingularValues, RankDeficientFactors) {
  // A1 of rank 2 inside 10 columns: the product has exactly two non-zero singular values.
  std::mt19937 rng(2);
  const int m = 120, c = 10, r = 2;
  auto basis = random_matrix(m, r, rng), mix = random_matrix(r, c, rng), a2 = random_matrix(m, c, rng);
  std::vector<double> a1(size_t(m) * c);
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, m, c, r, 1.0, basis.data(), m, mix.data(), r, 0.0, a1.data(), m);
  auto dense = dense_product(a1, a2, m, c);
  auto fast = product_singular_values(a1.data(), m, c, a2.data(), c);
  expect_spectra_match(fast, dense);
  EXPECT_GT(fast[1], 1e-6 * fast[0]);
  for (int i = r; i < c; ++i) EXPECT_LT(fast[i], 1e-12 * fast[0]);
}

TEST(ProductSingularValues, FewerRowsThanColumns) {
  std::mt19937 rng(3);
  const int m = 5, c = 16;  // n < d_h
  auto a1 = random_matrix(m, c, rng), a2 = random_matrix(m, c, rng);
  auto dense = dense_product(a1, a2, m, c);
  auto fast = product_singular_values(a1.data(), m, c, a2.data(), c);
  EXPECT_EQ(fast.size(), size_t(m));
  expect_spectra_match(fast, dense);
}

TEST(EnergyField, RowCentredAndScaled) {
  // E~ = s Q (K - 1 kbar^T)^T materialised and row-centred directly, against the fast path. The
  // shapes cover the Gram's tiled path (d_h a multiple of 8; one chunk of rows, several, and a
  // partial last one) and its dsyrk path (d_h = 20).
  std::mt19937 rng(4);
  for (auto [n, dh] : {std::pair{40, 8}, {300, 64}, {150, 20}}) {
    const int heads = 3, h = 1;
    const double s = 0.35;
    std::normal_distribution<float> normal;
    std::vector<float> q(n * heads * dh), k(n * heads * dh);
    for (float& x : q) x = normal(rng);
    for (float& x : k) x = normal(rng) + 2.0f;  // a large common key offset that centring removes
    std::vector<double> e(size_t(n) * n);
    for (int i = 0; i < n; ++i) {
      double mean = 0;
      for (int j = 0; j < n; ++j) {
        double dot = 0;
        for (int t = 0; t < dh; ++t) dot += double(q[i * heads * dh + h * dh + t]) * k[j * heads * dh + h * dh + t];
        e[size_t(j) * n + i] = s * dot;
        mean += s * dot;
      }
      for (int j = 0; j < n; ++j) e[size_t(j) * n + i] -= mean / n;
    }
    auto dense = dense_singular_values(e.data(), n, n);
    auto fast = energy_field_singular_values(q.data() + h * dh, heads * dh, k.data() + h * dh, heads * dh, n, dh, s);
    SCOPED_TRACE("n " + std::to_string(n) + ", d_h " + std::to_string(dh));
    expect_spectra_match(fast, dense);
  }
}

TEST(Metrics, HandComputedValues) {
  const std::vector<double> sigma = {3, 2, 1};  // variances 9, 4, 1 of 14: c = 0.643, 0.929, 1
  const SpectrumSummary s = summarize(sigma);
  EXPECT_EQ(s.k_tau, (std::array<int, 5>{1, 2, 2, 3, 3}));
  const double p[] = {0.5, 1.0 / 3, 1.0 / 6};
  EXPECT_NEAR(s.effective_rank, std::exp(-(p[0] * std::log(p[0]) + p[1] * std::log(p[1]) + p[2] * std::log(p[2]))), 1e-12);
  EXPECT_NEAR(s.effective_rank, 2.7495, 1e-4);
  EXPECT_DOUBLE_EQ(s.participation_ratio, 196.0 / 98.0);
  EXPECT_DOUBLE_EQ(s.stable_rank, 14.0 / 9.0);
  EXPECT_DOUBLE_EQ(s.variance, 14.0);
}

TEST(Metrics, ThresholdReachedExactly) {
  const std::vector<double> sigma = {3, 1};  // c_1 = 0.9 exactly
  EXPECT_EQ(k_tau(sigma, 0.9), 1);
  EXPECT_EQ(k_tau(sigma, 0.95), 2);
}

TEST(Metrics, FlatAndZeroSpectra) {
  const std::vector<double> flat(8, 1.0);
  const SpectrumSummary s = summarize(flat);
  EXPECT_NEAR(s.effective_rank, 8.0, 1e-12);
  EXPECT_NEAR(s.participation_ratio, 8.0, 1e-12);
  EXPECT_EQ(s.k90(), 8);  // 0.9 * 8 = 7.2 -> 8 components
  EXPECT_EQ(summarize(std::vector<double>(4, 0.0)).k90(), 0);
}

}  // namespace
}  // namespace attnspec
