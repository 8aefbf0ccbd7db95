// The factors of E~ (singular vectors), the invariants and the rank-k compression curves,
// against direct float64 computations on the materialised n x n matrices.
#include <gtest/gtest.h>

#include <lapacke.h>

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>

#include "attnspec/spectra/compression.h"
#include "attnspec/spectra/field_factors.h"
#include "attnspec/spectra/invariants.h"
#include "attnspec/spectra/spectra.h"

namespace attnspec {
namespace {

struct Heads {
  int n, dh;
  std::vector<double> q, k;  // row-major [n, dh]
};

Heads random_heads(int n, int dh, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal;
  Heads h{n, dh, std::vector<double>(size_t(n) * dh), std::vector<double>(size_t(n) * dh)};
  for (int i = 0; i < n; ++i)
    for (int t = 0; t < dh; ++t) {
      h.q[size_t(i) * dh + t] = normal(rng);
      h.k[size_t(i) * dh + t] = 2.0 + normal(rng);
    }
  return h;
}

// Kc (row-major), keys centred over positions.
std::vector<double> centred_keys(const Heads& h) {
  std::vector<double> kc(h.k);
  for (int t = 0; t < h.dh; ++t) {
    double m = 0;
    for (int i = 0; i < h.n; ++i) m += h.k[size_t(i) * h.dh + t];
    m /= h.n;
    for (int i = 0; i < h.n; ++i) kc[size_t(i) * h.dh + t] -= m;
  }
  return kc;
}

// E~ = s Q Kc^T, row-major n x n.
std::vector<double> naive_field(const Heads& h, double s) {
  const auto kc = centred_keys(h);
  std::vector<double> e(size_t(h.n) * h.n);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, h.n, h.n, h.dh, s, h.q.data(), h.dh, kc.data(), h.dh, 0.0,
              e.data(), h.n);
  return e;
}

FieldFactors factors(const Heads& h, double s) {
  return field_factors(h.q.data(), h.dh, h.k.data(), h.dh, h.n, h.dh, s);
}

// Leverage scores of range(A) for a row-major n x c matrix of full column rank: diag(A (A^T A)^-1 A^T).
std::vector<double> naive_leverage(const std::vector<double>& a, int n, int c) {
  std::vector<double> g(size_t(c) * c);
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, c, c, n, 1.0, a.data(), c, a.data(), c, 0.0, g.data(), c);
  // X = G^-1 A^T (c x n, column-major: the same memory as row-major A).
  std::vector<double> at(a);
  EXPECT_EQ(LAPACKE_dposv(LAPACK_COL_MAJOR, 'U', c, n, g.data(), c, at.data(), c), 0);
  std::vector<double> lev(n, 0.0);
  for (int i = 0; i < n; ++i)
    for (int t = 0; t < c; ++t) lev[i] += a[size_t(i) * c + t] * at[size_t(i) * c + t];
  return lev;
}

TEST(FieldFactors, ReconstructE) {
  for (auto [n, dh] : {std::pair{70, 8}, {5, 8}, {64, 64}}) {
    const Heads h = random_heads(n, dh, 1 + n);
    const double s = 0.3;
    const FieldFactors f = factors(h, s);
    const auto e = naive_field(h, s);
    ASSERT_EQ(f.r, std::min(n, dh));
    double scale = 0;
    for (double x : e) scale = std::max(scale, std::abs(x));
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        double v = 0;
        for (int t = 0; t < f.r; ++t) v += f.left[size_t(t) * n + i] * f.sigma[t] * f.right[size_t(t) * n + j];
        ASSERT_NEAR(v, e[size_t(i) * n + j], 1e-12 * scale) << n << "x" << dh;
      }
    for (const auto* basis : {&f.left, &f.right})
      for (int a = 0; a < f.r; ++a)
        for (int b = 0; b < f.r; ++b) {
          const double d = cblas_ddot(n, basis->data() + size_t(a) * n, 1, basis->data() + size_t(b) * n, 1);
          EXPECT_NEAR(d, a == b ? 1.0 : 0.0, 1e-12);
        }
    const auto want = energy_field_singular_values(h.q.data(), h.dh, h.k.data(), h.dh, n, dh, s);
    for (int t = 0; t < f.r; ++t) EXPECT_NEAR(f.sigma[t], want[t], 1e-12 * want[0]);
    // Data side: singular values of Q and Kc.
    std::vector<double> qcm(size_t(n) * dh), kcm(size_t(n) * dh);
    const auto kc = centred_keys(h);
    for (int i = 0; i < n; ++i)
      for (int t = 0; t < dh; ++t) {
        qcm[size_t(t) * n + i] = h.q[size_t(i) * dh + t];
        kcm[size_t(t) * n + i] = kc[size_t(i) * dh + t];
      }
    const auto sq = dense_singular_values(qcm.data(), n, dh), sk = dense_singular_values(kcm.data(), n, dh);
    for (size_t t = 0; t < sq.size(); ++t) EXPECT_NEAR(f.q_sigma[t], sq[t], 1e-12 * sq[0]);
    for (size_t t = 0; t < sk.size(); ++t) EXPECT_NEAR(f.kc_sigma[t], sk[t], 1e-12 * sk[0]);
  }
}

TEST(DataSide, CentredSpectrum) {
  const Heads h = random_heads(50, 7, 3);  // keys have mean ~2: centring must matter
  const auto centred = data_singular_values(h.k.data(), h.dh, h.n, h.dh, true);
  const auto kc = centred_keys(h);
  std::vector<double> cm(size_t(h.n) * h.dh);
  for (int i = 0; i < h.n; ++i)
    for (int t = 0; t < h.dh; ++t) cm[size_t(t) * h.n + i] = kc[size_t(i) * h.dh + t];
  const auto want = dense_singular_values(cm.data(), h.n, h.dh);
  for (size_t t = 0; t < want.size(); ++t) EXPECT_NEAR(centred[t], want[t], 1e-12 * want[0]);
  const auto raw = data_singular_values(h.k.data(), h.dh, h.n, h.dh, false);
  EXPECT_GT(raw[0], 2 * centred[0]);
}

TEST(Invariants, MatchDirectComputation) {
  const Heads h = random_heads(200, 16, 5);
  const double s = 0.25;
  const FieldFactors f = factors(h, s);
  const FieldInvariants inv = field_invariants(f);
  const auto e = naive_field(h, s);
  const int n = h.n;
  double mx = 0, worst_row = 0;
  std::vector<double> c(n, 0.0);
  for (int i = 0; i < n; ++i) {
    double row = 0;
    for (int j = 0; j < n; ++j) {
      const double v = e[size_t(i) * n + j];
      mx = std::max(mx, std::abs(v));
      row += v;
      c[j] += v * v;
    }
    worst_row = std::max(worst_row, std::abs(row));
  }
  EXPECT_NEAR(inv.max_abs, mx, 1e-12 * mx);
  EXPECT_LT(inv.row_sum_residual, 1e-12);  // zero in exact arithmetic
  EXPECT_LT(worst_row / mx, 1e-12);
  EXPECT_EQ(inv.rank, 16);  // random factors: full rank d_h
  double sum = 0, sum2 = 0;
  for (double v : c) {
    sum += v;
    sum2 += v * v;
  }
  EXPECT_NEAR(inv.col_participation, sum * sum / sum2, 1e-9 * sum * sum / sum2);
  EXPECT_EQ(inv.col_top_position, int(std::max_element(c.begin(), c.end()) - c.begin()));
  std::vector<double> sorted(c);
  std::sort(sorted.begin(), sorted.end(), std::greater<double>());
  EXPECT_NEAR(inv.col_top1pct_share, (sorted[0] + sorted[1]) / sum, 1e-10);  // ceil(200 / 100) = 2 positions
  const auto lev = naive_leverage(centred_keys(h), n, h.dh);
  const auto it = std::max_element(lev.begin(), lev.end());
  EXPECT_NEAR(inv.key_coherence, *it * n / h.dh, 1e-9 * n);
  EXPECT_EQ(inv.key_coherence_position, int(it - lev.begin()));
  for (int i = 0; i < n; ++i) EXPECT_NEAR(f.kc_leverage[i], lev[i], 1e-10);
  double total_leverage = 0;
  for (double l : f.kc_leverage) total_leverage += l;
  EXPECT_NEAR(total_leverage, h.dh, 1e-10);  // trace of the projection = rank
}

TEST(Invariants, PlantedRankThreeField) {
  // Q = A M with A n x 3: E~ has rank exactly 3 < d_h = 12.
  std::mt19937 rng(6);
  std::normal_distribution<double> normal;
  Heads h = random_heads(150, 12, 7);
  std::vector<double> a(150 * 3), m(3 * 12);
  for (double& x : a) x = normal(rng);
  for (double& x : m) x = normal(rng);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 150, 12, 3, 1.0, a.data(), 3, m.data(), 12, 0.0, h.q.data(), 12);
  const FieldFactors f = factors(h, 1.0);
  const FieldInvariants inv = field_invariants(f);
  EXPECT_EQ(inv.rank, 3);
  EXPECT_GT(f.sigma[2], 1e-3 * f.sigma[0]);
  EXPECT_LT(f.sigma[3], 1e-12 * f.sigma[0]);
  // Rank 3 reproduces the attention exactly; rank 2 does not.
  const CompressionCurve curve = compression_curve(f, 0, compression_ranks(f.r, false));
  EXPECT_LT(curve.tv[3], 1e-10);
  EXPECT_LT(curve.kl[3], 1e-10);
  EXPECT_GT(curve.tv[2], 1e-3);
}

TEST(Invariants, OneDominantKeyPosition) {
  // One key far from the others: it holds (almost) all of Kc's leverage in its direction and
  // most of E~'s column energy: localised, coherent.
  Heads h = random_heads(300, 8, 8);
  const int p = 123;
  for (int t = 0; t < h.dh; ++t) h.k[size_t(p) * h.dh + t] += 200.0 * (t == 0 ? 1.0 : 0.3);
  const FieldInvariants inv = field_invariants(factors(h, 1.0));
  EXPECT_EQ(inv.key_coherence_position, p);
  EXPECT_GT(inv.key_coherence, 0.95 * 300.0 / 8);  // leverage ~1: coherence near its maximum n / rank
  EXPECT_EQ(inv.col_top_position, p);
  EXPECT_GT(inv.col_top1pct_share, 0.9);
  EXPECT_LT(inv.col_participation, 2.0);
  // Random keys for contrast: delocalised and incoherent.
  const FieldInvariants flat = field_invariants(factors(random_heads(300, 8, 9), 1.0));
  EXPECT_LT(flat.key_coherence, 0.3 * 300.0 / 8);
  EXPECT_GT(flat.col_participation, 100.0);
}

// Softmax over V_i of row-major logits, log-probabilities; row i sees keys [lo_i, i].
std::vector<double> log_softmax_rows(const std::vector<double>& logits, int n, int window) {
  std::vector<double> out(size_t(n) * n, -INFINITY);
  for (int i = 0; i < n; ++i) {
    const int lo = window > 0 ? std::max(0, i - window + 1) : 0;
    double mx = -INFINITY, z = 0;
    for (int j = lo; j <= i; ++j) mx = std::max(mx, logits[size_t(i) * n + j]);
    for (int j = lo; j <= i; ++j) z += std::exp(logits[size_t(i) * n + j] - mx);
    for (int j = lo; j <= i; ++j) out[size_t(i) * n + j] = logits[size_t(i) * n + j] - mx - std::log(z);
  }
  return out;
}

TEST(Compression, MatchesDenseTruncatedSvdAndSoftmax) {
  for (int window : {0, 9}) {
    const Heads h = random_heads(48, 6, 11 + window);
    const int n = h.n, dh = h.dh;
    const double s = 0.8;
    // The model's logits, un-centred, straight from Q K^T.
    std::vector<double> raw(size_t(n) * n);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, dh, s, h.q.data(), dh, h.k.data(), dh, 0.0, raw.data(), n);
    const auto logp = log_softmax_rows(raw, n, window);
    // Truncated SVDs of the materialised E~ by LAPACK.
    auto e = naive_field(h, s);
    std::vector<double> sv(n), u(size_t(n) * n), vt(size_t(n) * n);
    ASSERT_EQ(LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'A', n, n, e.data(), n, sv.data(), u.data(), n, vt.data(), n), 0);
    std::vector<int> ks = compression_ranks(std::min(n, dh), false);
    const CompressionCurve got = compression_curve(factors(h, s), window, ks);
    ASSERT_EQ(got.k, ks);
    for (size_t e_ = 0; e_ < ks.size(); ++e_) {
      const int k = ks[e_];
      std::vector<double> ek(size_t(n) * n, 0.0);
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j)
          for (int t = 0; t < k; ++t) ek[size_t(i) * n + j] += u[size_t(i) * n + t] * sv[t] * vt[size_t(t) * n + j];
      const auto logq = log_softmax_rows(ek, n, window);
      double tv = 0, kl = 0;
      for (int i = 0; i < n; ++i) {
        const int lo = window > 0 ? std::max(0, i - window + 1) : 0;
        double tvi = 0;
        for (int j = lo; j <= i; ++j) {
          const double p = std::exp(logp[size_t(i) * n + j]), q = std::exp(logq[size_t(i) * n + j]);
          tvi += std::abs(p - q);
          kl += p * (logp[size_t(i) * n + j] - logq[size_t(i) * n + j]);
        }
        tv += 0.5 * tvi;
      }
      tv /= n;
      kl /= n;
      EXPECT_NEAR(got.tv[e_], tv, 1e-10) << "window " << window << " k " << k;
      EXPECT_NEAR(got.kl[e_], kl, 1e-10) << "window " << window << " k " << k;
    }
    // Full rank is the model's attention (softmax ignores the row centring); k = 0 is uniform.
    EXPECT_LT(got.tv.back(), 1e-12);
    EXPECT_GT(got.tv.front(), 0.05);
  }
}

TEST(Compression, RankGrids) {
  EXPECT_EQ(compression_ranks(4, false), (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(compression_ranks(4, true), (std::vector<int>{0, 1, 2, 3, 4}));
  const auto g = compression_ranks(128, true);
  EXPECT_EQ(g.front(), 0);
  EXPECT_EQ(g.back(), 128);
  EXPECT_LT(g.size(), 30u);
  for (size_t i = 1; i < g.size(); ++i) EXPECT_GT(g[i], g[i - 1]);
  for (int k = 0; k <= 8; ++k) EXPECT_EQ(g[k], k);
}

}  // namespace
}  // namespace attnspec
