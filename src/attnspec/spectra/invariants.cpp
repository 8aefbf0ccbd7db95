#include "attnspec/spectra/invariants.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "attnspec/spectra/causal.h"

namespace attnspec {

FieldInvariants field_invariants(const FieldFactors& f) {
  FieldInvariants inv;
  const int n = f.n, r = f.r;
  if (n == 0) return inv;

  // max |E~_ij| over blocks of rows of s Q Kc^T.
  constexpr int kBlock = 128;
  std::vector<double> block(size_t(kBlock) * n);
  for (int i0 = 0; i0 < n; i0 += kBlock) {
    const int rows = std::min(kBlock, n - i0);
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, rows, n, f.dh, f.scale, f.q.data() + i0, n, f.kc.data(), n,
                0.0, block.data(), rows);
    for (size_t t = 0; t < size_t(rows) * n; ++t) inv.max_abs = std::max(inv.max_abs, std::abs(block[t]));
  }

  // Row sums of left diag(sigma) right^T: left * (sigma .* (right^T 1)).
  std::vector<double> colsum(r, 0.0), rowsum(n, 0.0);
  for (int t = 0; t < r; ++t) {
    double s = 0;
    for (int j = 0; j < n; ++j) s += f.right[size_t(t) * n + j];
    colsum[t] = f.sigma[t] * s;
  }
  if (r > 0)
    cblas_dgemv(CblasColMajor, CblasNoTrans, n, r, 1.0, f.left.data(), n, colsum.data(), 1, 0.0, rowsum.data(), 1);
  double worst = 0;
  for (double v : rowsum) worst = std::max(worst, std::abs(v));
  inv.row_sum_residual = inv.max_abs > 0 ? worst / inv.max_abs : 0.0;

  inv.rank = numerical_rank(f.sigma, n);
  inv.rank_tolerance = f.sigma.empty() ? 0.0 : n * kRankEps * f.sigma[0];

  // Column energies: c_j = sum_t sigma_t^2 right_jt^2 (left has orthonormal columns).
  std::vector<double> c(n, 0.0);
  for (int t = 0; t < r; ++t) {
    const double s2 = f.sigma[t] * f.sigma[t];
    for (int j = 0; j < n; ++j) c[j] += s2 * f.right[size_t(t) * n + j] * f.right[size_t(t) * n + j];
  }
  double sum = 0, sum2 = 0;
  for (double v : c) {
    sum += v;
    sum2 += v * v;
  }
  inv.col_top_position = static_cast<int>(std::max_element(c.begin(), c.end()) - c.begin());
  if (sum2 > 0) {
    inv.col_participation = sum * sum / sum2;
    const int top = (n + 99) / 100;
    std::vector<double> sorted(c);
    std::partial_sort(sorted.begin(), sorted.begin() + top, sorted.end(), std::greater<double>());
    double s = 0;
    for (int j = 0; j < top; ++j) s += sorted[j];
    inv.col_top1pct_share = s / sum;
  }

  inv.key_rank = f.kc_rank;
  if (f.kc_rank > 0) {
    const auto it = std::max_element(f.kc_leverage.begin(), f.kc_leverage.end());
    inv.key_coherence = *it * n / f.kc_rank;
    inv.key_coherence_position = static_cast<int>(it - f.kc_leverage.begin());
  }
  return inv;
}

}  // namespace attnspec
