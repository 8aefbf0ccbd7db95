#include "attnspec/spectra/metrics.h"

#include <cmath>

namespace attnspec {

int k_tau(std::span<const double> sigma, double tau) {
  double total = 0;
  for (double s : sigma) total += s * s;
  if (total <= 0) return 0;
  double acc = 0;
  for (size_t i = 0; i < sigma.size(); ++i) {
    acc += sigma[i] * sigma[i];
    if (acc / total >= tau) return static_cast<int>(i + 1);
  }
  return static_cast<int>(sigma.size());  // only reachable through rounding when tau ~ 1
}

SpectrumSummary summarize(std::span<const double> sigma) {
  SpectrumSummary s;
  double sum = 0, sum2 = 0, sum4 = 0;
  for (double x : sigma) {
    sum += x;
    sum2 += x * x;
    sum4 += x * x * x * x;
  }
  if (sum2 <= 0) return s;
  for (size_t t = 0; t < kTaus.size(); ++t) s.k_tau[t] = k_tau(sigma, kTaus[t]);
  double entropy = 0;
  for (double x : sigma) {
    const double p = x / sum;
    if (p > 0) entropy -= p * std::log(p);
  }
  s.effective_rank = std::exp(entropy);
  s.participation_ratio = sum2 * sum2 / sum4;
  s.stable_rank = sum2 / (sigma[0] * sigma[0]);
  s.variance = sum2;
  return s;
}

}  // namespace attnspec
