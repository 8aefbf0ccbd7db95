// The causal energy field E~c: the matrix-free operator, its exact Frobenius norm, the dense and
// the Lanczos spectra, against a naive float64 construction straight from the definition.
#include <gtest/gtest.h>

#include <cblas.h>

#include <cmath>
#include <random>

#include "attnspec/spectra/causal.h"
#include "attnspec/spectra/metrics.h"
#include "attnspec/spectra/spectra.h"

namespace attnspec {
namespace {

// Row-major [n, dh] Q and K; keys get a large common offset (as real keys do), which the
// centring must remove without losing digits.
struct Heads {
  int n, dh;
  std::vector<double> q, k;
};

Heads random_heads(int n, int dh, unsigned seed, double key_offset = 5.0) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal;
  Heads h{n, dh, std::vector<double>(size_t(n) * dh), std::vector<double>(size_t(n) * dh)};
  std::vector<double> offset(dh);
  for (double& o : offset) o = key_offset * normal(rng);
  for (int i = 0; i < n; ++i)
    for (int t = 0; t < dh; ++t) {
      h.q[size_t(i) * dh + t] = normal(rng);
      h.k[size_t(i) * dh + t] = offset[t] + normal(rng);
    }
  return h;
}

// E~c from the definition, column-major n x n: row i over V_i = {j <= i, i - j < W}.
std::vector<double> naive_causal(const Heads& h, double s, int window) {
  const int n = h.n;
  std::vector<double> a(size_t(n) * n, 0.0);
  for (int i = 0; i < n; ++i) {
    const int lo = window > 0 ? std::max(0, i - window + 1) : 0;
    std::vector<double> e(i - lo + 1);
    double mean = 0;
    for (int j = lo; j <= i; ++j) {
      double v = 0;
      for (int t = 0; t < h.dh; ++t) v += h.q[size_t(i) * h.dh + t] * h.k[size_t(j) * h.dh + t];
      e[j - lo] = s * v;
      mean += s * v;
    }
    mean /= (i - lo + 1);
    for (int j = lo; j <= i; ++j) a[size_t(j) * n + i] = e[j - lo] - mean;
  }
  return a;
}

CausalFieldOperator make_op(const Heads& h, double s, int window) {
  return CausalFieldOperator(h.q.data(), h.dh, h.k.data(), h.dh, h.n, h.dh, s, window);
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

TEST(CausalField, OperatorMatchesDefinition) {
  for (int window : {0, 2, 7, 20, 60}) {  // (window 1: E~c = 0, see KnownAnswers)
    const Heads h = random_heads(60, 6, 1 + window);
    const double s = 0.37;
    const auto ref = naive_causal(h, s, window);
    const auto op = make_op(h, s, window);
    const auto dense = op.materialise();
    const double scale = max_abs(ref);
    for (size_t t = 0; t < ref.size(); ++t) ASSERT_NEAR(dense[t], ref[t], 1e-12 * scale) << "window " << window;

    double frob = 0;
    for (double x : ref) frob += x * x;
    EXPECT_NEAR(op.frobenius2(), frob, 1e-12 * frob) << "window " << window;

    std::mt19937 rng(9);
    std::normal_distribution<double> normal;
    std::vector<double> x(h.n), y(h.n), ax(h.n), aty(h.n), ref_ax(h.n), ref_aty(h.n);
    for (int i = 0; i < h.n; ++i) {
      x[i] = normal(rng);
      y[i] = normal(rng);
    }
    op.apply(x.data(), ax.data());
    op.apply_t(y.data(), aty.data());
    cblas_dgemv(CblasColMajor, CblasNoTrans, h.n, h.n, 1.0, ref.data(), h.n, x.data(), 1, 0.0, ref_ax.data(), 1);
    cblas_dgemv(CblasColMajor, CblasTrans, h.n, h.n, 1.0, ref.data(), h.n, y.data(), 1, 0.0, ref_aty.data(), 1);
    const double sa = max_abs(ref_ax), st = max_abs(ref_aty);
    for (int i = 0; i < h.n; ++i) {
      EXPECT_NEAR(ax[i], ref_ax[i], 1e-11 * sa) << "E~c x, window " << window << " row " << i;
      EXPECT_NEAR(aty[i], ref_aty[i], 1e-11 * st) << "E~c^T y, window " << window << " col " << i;
    }
  }
}

TEST(CausalField, RowsSumToZeroAndFirstRowVanishes) {
  const Heads h = random_heads(40, 5, 3);
  const auto a = make_op(h, 1.0, 0).materialise();
  for (int i = 0; i < h.n; ++i) {
    double s = 0;
    for (int j = 0; j < h.n; ++j) s += a[size_t(j) * h.n + i];
    EXPECT_NEAR(s, 0.0, 1e-11);
  }
  for (int j = 0; j < h.n; ++j) EXPECT_EQ(a[size_t(j) * h.n], 0.0);  // row 0 sees one key: centred to 0
}

TEST(CausalField, DenseSpectrumMatchesLapackOnTheDefinition) {
  const Heads h = random_heads(120, 8, 4);
  for (int window : {0, 16}) {
    const auto ref = naive_causal(h, 0.5, window);
    const auto want = dense_singular_values(ref.data(), h.n, h.n);
    CausalOptions o;
    o.method = CausalMethod::Dense;
    const CausalSpectrum got = causal_field_spectrum(make_op(h, 0.5, window), o);
    ASSERT_EQ(got.sigma.size(), want.size());
    EXPECT_EQ(got.method, "dense");
    EXPECT_TRUE(got.complete && got.k_tau_exact);
    for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got.sigma[i], want[i], 1e-11 * want[0]);
    const SpectrumSummary s = summarize(want);
    EXPECT_EQ(got.summary.k_tau, s.k_tau);
    EXPECT_NEAR(got.summary.effective_rank, s.effective_rank, 1e-9);
    // Full rank in general, unlike E~ (rank <= d_h): the causal mask breaks the low-rank structure.
    EXPECT_GT(got.numerical_rank, 8 * 4);
  }
}

// The iterative method against dense on n = 300..600: every bound it states must hold.
TEST(CausalField, LanczosHonoursItsErrorBounds) {
  int settled = 0;
  for (auto [n, dh, window] : {std::tuple{300, 8, 0}, {450, 16, 0}, {600, 16, 64}, {400, 32, 0}}) {
    const Heads h = random_heads(n, dh, 10 + n, 3.0);
    const double s = 1.0 / std::sqrt(double(dh));
    const auto op = make_op(h, s, window);
    const auto dense_m = op.materialise();
    const auto dense = dense_singular_values(dense_m.data(), n, n);
    double total = 0;
    for (double x : dense) total += x * x;
    for (int max_values : {64, 200, 512}) {
      CausalOptions o;
      o.method = CausalMethod::Lanczos;
      o.max_values = max_values;
      const CausalSpectrum got = causal_field_spectrum(op, o);
      SCOPED_TRACE("n " + std::to_string(n) + " max_values " + std::to_string(max_values));
      EXPECT_EQ(got.method, "lanczos");
      EXPECT_NEAR(got.variance, total, 1e-10 * total);
      const int m = static_cast<int>(got.sigma.size());
      ASSERT_GT(m, 0);
      EXPECT_LE(m, std::min(n, max_values));
      const double tol = 1e-10 * dense[0];
      for (int i = 0; i < m; ++i) {
        EXPECT_LE(got.sigma[i], dense[i] + tol) << "lower bound, value " << i;                        // Ritz <= true
        EXPECT_LE(dense[i] * dense[i], got.sigma[i] * got.sigma[i] + got.unexplained + tol * dense[0])  // Weyl
            << "upper bound, value " << i;
      }
      // Each leading value up to k99 has a true singular value within the stated residual.
      const int upto = got.k_tau.back() > 0 ? got.k_tau.back() : m;
      for (int i = 0; i < upto; ++i) {
        double nearest = 1e300;
        for (double d : dense) nearest = std::min(nearest, std::abs(d - got.sigma[i]));
        EXPECT_LE(nearest, got.residual * got.sigma[0] + tol) << "residual bound, value " << i;
      }
      // Rigorous brackets always; equality when certified, and when converged (every Ritz pair
      // up to k99 with residual <= 1e-10 sigma_1, the Lanczos stopping test).
      const SpectrumSummary truth = summarize(dense);
      const bool converged = got.k_tau.back() > 0 && got.residual <= 1e-10;
      for (size_t t = 0; t < kTaus.size(); ++t) {
        EXPECT_LE(got.k_tau_lower[t], truth.k_tau[t]) << "tau " << kTaus[t];
        if (got.k_tau[t] > 0) EXPECT_GE(got.k_tau[t], truth.k_tau[t]) << "tau " << kTaus[t];
        if (got.k_tau_exact || converged) EXPECT_EQ(got.k_tau[t], truth.k_tau[t]) << "tau " << kTaus[t];
      }
      // The leading value converges fast.
      EXPECT_NEAR(got.sigma[0], dense[0], 1e-8 * dense[0]);
      settled += got.k_tau_exact || converged;
    }
  }
  EXPECT_GE(settled, 4);  // with enough steps every case settles
}

TEST(CausalField, LanczosCertifiesWhenTheSpaceFills) {
  // n = 40 <= max_values: at the latest the Krylov space is all of R^n and everything is exact.
  const Heads h = random_heads(40, 4, 21);
  const auto op = make_op(h, 0.5, 0);
  const auto m = op.materialise();
  const auto dense = dense_singular_values(m.data(), 40, 40);
  CausalOptions o;
  o.method = CausalMethod::Lanczos;
  o.max_values = 40;
  const CausalSpectrum got = causal_field_spectrum(op, o);
  const SpectrumSummary truth = summarize(dense);
  EXPECT_EQ(got.k_tau, truth.k_tau);
  EXPECT_TRUE(got.k_tau_exact || got.residual <= 1e-10);
  for (size_t i = 0; i < got.sigma.size(); ++i) EXPECT_LE(got.sigma[i], dense[i] + 1e-10 * dense[0]);
}

TEST(CausalField, RequestedLeadingValuesConverge) {
  const Heads h = random_heads(500, 16, 77, 2.0);
  const auto op = make_op(h, 0.25, 0);
  const auto dense_m = op.materialise();
  const auto dense = dense_singular_values(dense_m.data(), h.n, h.n);
  CausalOptions o;
  o.method = CausalMethod::Lanczos;
  o.values = 5;
  const CausalSpectrum got = causal_field_spectrum(op, o);
  ASSERT_EQ(got.sigma.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(got.sigma[i], dense[i], 1e-8 * dense[0]);
}

TEST(CausalField, AutoPicksDenseUpToTheThreshold) {
  const Heads h = random_heads(100, 4, 5);
  CausalOptions o;
  o.dense_max = 100;
  EXPECT_EQ(causal_field_spectrum(make_op(h, 1.0, 0), o).method, "dense");
  o.dense_max = 99;
  EXPECT_EQ(causal_field_spectrum(make_op(h, 1.0, 0), o).method, "lanczos");
}

TEST(CausalField, KnownAnswers) {
  // A window of 1: every row sees only its own key and is centred to zero, E~c = 0.
  const Heads h = random_heads(50, 6, 8);
  const CausalSpectrum z = causal_field_spectrum(make_op(h, 1.0, 1), {});
  EXPECT_NEAR(z.variance, 0.0, 1e-20);
  for (double s : z.sigma) EXPECT_NEAR(s, 0.0, 1e-12);
  // Keys k_j = f_j u and one query q for every row: E~c_ij = s (q.u) (f_j - mean_{j'<=i} f_j').
  // With f_j = j: entries s c (j - i/2) on j <= i, whose Frobenius norm is s^2 c^2 sum_i (i+1)((i+1)^2 - 1)/12.
  const int n = 30, dh = 3;
  Heads g{n, dh, std::vector<double>(size_t(n) * dh), std::vector<double>(size_t(n) * dh)};
  const double u[3] = {1.0, -2.0, 0.5}, q[3] = {0.3, 0.1, 2.0};
  for (int i = 0; i < n; ++i)
    for (int t = 0; t < dh; ++t) {
      g.q[size_t(i) * dh + t] = q[t];
      g.k[size_t(i) * dh + t] = i * u[t];
    }
  const double c = q[0] * u[0] + q[1] * u[1] + q[2] * u[2], s = 0.7;
  double want = 0;
  for (int i = 0; i < n; ++i) want += s * s * c * c * (i + 1.0) * ((i + 1.0) * (i + 1.0) - 1.0) / 12.0;
  const auto op = make_op(g, s, 0);
  EXPECT_NEAR(op.frobenius2(), want, 1e-10 * want);
  const auto a = op.materialise();
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j)
      EXPECT_NEAR(a[size_t(j) * n + i], j <= i ? s * c * (j - i / 2.0) : 0.0, 1e-10);
}

}  // namespace
}  // namespace attnspec
