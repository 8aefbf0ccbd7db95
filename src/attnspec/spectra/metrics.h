// Summaries of a spectrum sigma_1 >= ... >= sigma_r >= 0 (METRICS.md, "Spectra and summaries").
#pragma once

#include <array>
#include <span>

namespace attnspec {

// The k_tau thresholds every output reports; 0.90 is the headline.
inline constexpr std::array<double, 5> kTaus = {0.5, 0.8, 0.9, 0.95, 0.99};

struct SpectrumSummary {
  std::array<int, kTaus.size()> k_tau{};  // smallest k with c_k >= tau, per kTaus
  double effective_rank = 0;      // Roy & Vetterli: exp(-sum p ln p), p_i = sigma_i / sum sigma
  double participation_ratio = 0;  // (sum sigma^2)^2 / sum sigma^4
  double stable_rank = 0;         // sum sigma^2 / sigma_1^2
  double variance = 0;            // sum sigma^2 (squared Frobenius norm)

  int k90() const { return k_tau[2]; }
};

// c_k = sum_{i<=k} sigma_i^2 / sum_i sigma_i^2; the smallest k with c_k >= tau (0 for a zero
// spectrum).
int k_tau(std::span<const double> sigma, double tau);

// All summaries. A zero spectrum gives all zeros.
SpectrumSummary summarize(std::span<const double> sigma);

}  // namespace attnspec
