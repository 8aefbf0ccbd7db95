// The soft-capped field: a cap far above every logit leaves tanh linear, so both conventions must
// reproduce the uncapped spectra (E~ from the exact reduction, E~c from its dense SVD); a small cap
// must change them and lift the rank above d_h.
#include <gtest/gtest.h>

#include <random>

#include "attnspec/spectra/capped.h"
#include "attnspec/spectra/causal.h"
#include "attnspec/spectra/spectra.h"

namespace attnspec {
namespace {

TEST(CappedField, LargeCapIsTheUncappedField) {
  const int n = 40, dh = 6;
  std::mt19937 rng(3);
  std::normal_distribution<double> normal;
  std::vector<double> q(size_t(n) * dh), k(size_t(n) * dh);
  for (double& x : q) x = normal(rng);
  for (double& x : k) x = 2.0 + normal(rng);
  const double s = 0.4, cap = 1e7;  // tanh(x / cap) * cap = x (1 - x^2 / (3 cap^2)): relative 1e-14
  const auto plain = energy_field_singular_values(q.data(), dh, k.data(), dh, n, dh, s);
  const auto capped = capped_field_singular_values(q.data(), dh, k.data(), dh, n, dh, s, cap, false, 0);
  ASSERT_EQ(capped.size(), size_t(n));
  for (int i = 0; i < dh; ++i) EXPECT_NEAR(capped[i], plain[i], 1e-10 * plain[0]);
  for (int i = dh; i < n; ++i) EXPECT_LT(capped[i], 1e-10 * plain[0]);  // rank <= d_h, as E~

  for (int window : {0, 7}) {
    CausalOptions o;
    o.method = CausalMethod::Dense;
    const auto causal = causal_field_spectrum(CausalFieldOperator(q.data(), dh, k.data(), dh, n, dh, s, window), o);
    const auto capped_c = capped_field_singular_values(q.data(), dh, k.data(), dh, n, dh, s, cap, true, window);
    ASSERT_EQ(capped_c.size(), causal.sigma.size());
    for (size_t i = 0; i < capped_c.size(); ++i) EXPECT_NEAR(capped_c[i], causal.sigma[i], 1e-10 * causal.sigma[0]);
  }

  // A cap of the logits' own size bends them: different spectrum, rank beyond d_h.
  const auto bent = capped_field_singular_values(q.data(), dh, k.data(), dh, n, dh, s, 1.0, false, 0);
  EXPECT_GT(std::abs(bent[0] - plain[0]), 1e-2 * plain[0]);
  EXPECT_GT(bent[dh], 1e-6 * bent[0]);
}

}  // namespace
}  // namespace attnspec
