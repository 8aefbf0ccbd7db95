#include "attnspec/spectra/compression.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace attnspec {

std::vector<int> compression_ranks(int r, bool geometric) {
  std::vector<int> ks;
  for (int k = 0; k <= (geometric ? std::min(r, 8) : r); ++k) ks.push_back(k);
  while (ks.back() < r) ks.push_back(std::min(r, std::max(ks.back() + 1, int(std::ceil(ks.back() * 1.25)))));
  return ks;
}

CompressionCurve compression_curve(const FieldFactors& f, int window, const std::vector<int>& ks, bool causal) {
  const int n = f.n, dh = f.dh, r = f.r;
  const int W = causal && window > 0 && window < n ? window : 0;
  for (size_t t = 0; t < ks.size(); ++t)
    if (ks[t] < 0 || ks[t] > r || (t > 0 && ks[t] <= ks[t - 1]))
      throw std::invalid_argument("compression_curve: ranks must be ascending within [0, min(n, d_h)]");
  CompressionCurve out;
  out.k = ks;
  out.tv.assign(ks.size(), 0.0);
  out.kl.assign(ks.size(), 0.0);
  if (n == 0) return out;

  constexpr int kBlock = 64;
  const int max_cols = std::min(n, W > 0 ? kBlock + W - 1 : n);
  // Row-major [rows, cols] buffers: row a of the block is contiguous.
  std::vector<double> ref(size_t(kBlock) * max_cols), P(ref.size()), logP(ref.size()), L(ref.size()),
      scaled(size_t(kBlock) * std::max(r, 1));
  for (int i0 = 0; i0 < n; i0 += kBlock) {
    const int rows = std::min(kBlock, n - i0), i1 = i0 + rows;
    const int j0 = W > 0 ? std::max(0, i0 - W + 1) : 0, cols = (causal ? i1 : n) - j0;
    // ref^T (cols x rows, column-major) = s Kc[j0:i1] Q[i0:i1]^T: row a of ref = logits of query i0 + a.
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, cols, rows, dh, f.scale, f.kc.data() + j0, n, f.q.data() + i0,
                n, 0.0, ref.data(), cols);
    for (int a = 0; a < rows; ++a) {
      const int i = i0 + a, lo = (W > 0 ? std::max(0, i - W + 1) : 0) - j0, hi = (causal ? i : n - 1) - j0;
      const double* x = &ref[size_t(a) * cols];
      double mx = x[lo], z = 0;
      for (int c = lo; c <= hi; ++c) mx = std::max(mx, x[c]);
      for (int c = lo; c <= hi; ++c) z += std::exp(x[c] - mx);
      const double lse = mx + std::log(z);
      for (int c = lo; c <= hi; ++c) {
        logP[size_t(a) * cols + c] = x[c] - lse;
        P[size_t(a) * cols + c] = std::exp(x[c] - lse);
      }
    }
    std::fill(L.begin(), L.begin() + size_t(rows) * cols, 0.0);
    int prev = 0;
    for (size_t e = 0; e < ks.size(); ++e) {
      const int k = ks[e];
      if (k > prev) {
        // L^T += right[j0:i1, prev:k] (S left[i0:i1, prev:k])^T
        const int dk = k - prev;
        for (int t = 0; t < dk; ++t)
          for (int a = 0; a < rows; ++a)
            scaled[size_t(t) * rows + a] = f.sigma[prev + t] * f.left[size_t(prev + t) * n + i0 + a];
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, cols, rows, dk, 1.0, f.right.data() + size_t(prev) * n + j0,
                    n, scaled.data(), rows, 1.0, L.data(), cols);
        prev = k;
      }
      double tv_sum = 0, kl_sum = 0;
      for (int a = 0; a < rows; ++a) {
        const int i = i0 + a, lo = (W > 0 ? std::max(0, i - W + 1) : 0) - j0, hi = (causal ? i : n - 1) - j0;
        const double* x = &L[size_t(a) * cols];
        double mx = x[lo], z = 0;
        for (int c = lo; c <= hi; ++c) mx = std::max(mx, x[c]);
        for (int c = lo; c <= hi; ++c) z += std::exp(x[c] - mx);
        const double lse = mx + std::log(z);
        const double* p = &P[size_t(a) * cols];
        const double* lp = &logP[size_t(a) * cols];
        double tv = 0, kl = 0;
        for (int c = lo; c <= hi; ++c) {
          const double lq = x[c] - lse;
          tv += std::abs(p[c] - std::exp(lq));
          kl += p[c] * (lp[c] - lq);
        }
        tv_sum += 0.5 * tv;
        kl_sum += std::max(0.0, kl);
      }
      out.tv[e] += tv_sum;
      out.kl[e] += kl_sum;
    }
  }
  for (size_t e = 0; e < ks.size(); ++e) {
    out.tv[e] /= n;
    out.kl[e] /= n;
  }
  return out;
}

}  // namespace attnspec
