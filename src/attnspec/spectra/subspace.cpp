#include "attnspec/spectra/subspace.h"

#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <queue>
#include <stdexcept>

namespace attnspec {
namespace {

// Eigenvalues (ascending) and eigenvectors (columns of V) of the symmetric d x d S.
void eigen(const std::vector<double>& S, int d, std::vector<double>& w, std::vector<double>& V) {
  V = S;
  w.assign(d, 0.0);
  if (LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'U', d, V.data(), d, w.data()) != 0)
    throw std::runtime_error("dsyevd did not converge");
}

// C = A B for column-major d x d A and d x c B.
std::vector<double> mul(const std::vector<double>& A, const std::vector<double>& B, int d, int c) {
  std::vector<double> C(size_t(d) * c, 0.0);
  for (int j = 0; j < c; ++j)
    for (int l = 0; l < d; ++l) {
      const double b = B[size_t(j) * d + l];
      if (b != 0.0)
        for (int i = 0; i < d; ++i) C[size_t(j) * d + i] += A[size_t(l) * d + i] * b;
    }
  return C;
}

// The SVD of the d x d product A B: U, s (descending), V (columns).
void svd_of_product(const std::vector<double>& S_Q, const std::vector<double>& S_K, int d, std::vector<double>& U,
                    std::vector<double>& s, std::vector<double>& V, std::vector<double>& A_pinv,
                    std::vector<double>& B_pinv) {
  std::vector<double> A, B;
  psd_sqrt(S_Q, d, A, A_pinv);
  psd_sqrt(S_K, d, B, B_pinv);
  std::vector<double> AB = mul(A, B, d, d), Vt(size_t(d) * d);
  U.assign(size_t(d) * d, 0.0);
  s.assign(d, 0.0);
  if (LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'A', d, d, AB.data(), d, s.data(), U.data(), d, Vt.data(), d) != 0)
    throw std::runtime_error("dgesdd did not converge");
  V.assign(size_t(d) * d, 0.0);
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) V[size_t(j) * d + i] = Vt[size_t(i) * d + j];
}

}  // namespace

void psd_sqrt(const std::vector<double>& S, int d, std::vector<double>& root, std::vector<double>& pinv_root,
              double rel) {
  std::vector<double> w, V;
  eigen(S, d, w, V);
  const double floor = rel * std::max(w.back(), 0.0);
  root.assign(size_t(d) * d, 0.0);
  pinv_root.assign(size_t(d) * d, 0.0);
  for (int e = 0; e < d; ++e) {
    if (!(w[e] > floor) || w[e] <= 0) continue;  // a direction the data never moves
    const double r = std::sqrt(w[e]), ir = 1.0 / r;
    for (int j = 0; j < d; ++j)
      for (int i = 0; i < d; ++i) {
        const double vv = V[size_t(e) * d + i] * V[size_t(e) * d + j];
        root[size_t(j) * d + i] += r * vv;
        pinv_root[size_t(j) * d + i] += ir * vv;
      }
  }
}

QueryKeyMap pca_map(const std::vector<double>& S_K, int d, int k) {
  std::vector<double> w, V;
  eigen(S_K, d, w, V);
  QueryKeyMap m{d, k, std::vector<double>(size_t(d) * k), {}};
  for (int c = 0; c < k; ++c)  // eigenvalues ascend: the top k are the last columns
    std::copy_n(&V[size_t(d - 1 - c) * d], d, &m.L[size_t(c) * d]);
  m.R = m.L;
  return m;
}

QueryKeyMap whitened_map(const std::vector<double>& S_Q, const std::vector<double>& S_K, int d, int k) {
  std::vector<double> U, s, V, A_pinv, B_pinv;
  svd_of_product(S_Q, S_K, d, U, s, V, A_pinv, B_pinv);
  std::vector<double> Uk(size_t(d) * k), Vk(size_t(d) * k);
  for (int c = 0; c < k; ++c) {
    const double h = std::sqrt(s[c]);
    for (int i = 0; i < d; ++i) {
      Uk[size_t(c) * d + i] = U[size_t(c) * d + i] * h;
      Vk[size_t(c) * d + i] = V[size_t(c) * d + i] * h;
    }
  }
  return {d, k, mul(A_pinv, Uk, d, k), mul(B_pinv, Vk, d, k)};
}

std::vector<double> whitened_spectrum(const std::vector<double>& S_Q, const std::vector<double>& S_K, int d) {
  std::vector<double> U, s, V, A_pinv, B_pinv;
  svd_of_product(S_Q, S_K, d, U, s, V, A_pinv, B_pinv);
  return s;
}

std::vector<int> field_ranks(const std::vector<std::vector<double>>& spectra, int dh, long total) {
  const int heads = int(spectra.size());
  if (total < heads || total > long(heads) * dh) throw std::logic_error("field_ranks: budget outside [heads, heads * d_h]");
  std::vector<int> k(heads, 1);
  std::vector<double> energy(heads, 0.0);
  for (int h = 0; h < heads; ++h)
    for (double v : spectra[h]) energy[h] += v * v;
  // The share the next dimension of head h adds; a head without energy adds nothing.
  auto gain = [&](int h) {
    if (k[h] >= dh || k[h] >= int(spectra[h].size())) return -1.0;
    return energy[h] > 0 ? spectra[h][k[h]] * spectra[h][k[h]] / energy[h] : 0.0;
  };
  auto later = [&](const std::pair<double, int>& a, const std::pair<double, int>& b) {
    return a.first != b.first ? a.first < b.first : a.second > b.second;  // max gain, then lowest head
  };
  std::priority_queue<std::pair<double, int>, std::vector<std::pair<double, int>>, decltype(later)> next(later);
  for (int h = 0; h < heads; ++h) next.push({gain(h), h});
  for (long left = total - heads; left > 0 && !next.empty(); --left) {
    const int h = next.top().second;
    next.pop();
    ++k[h];
    if (k[h] < dh) next.push({gain(h), h});
  }
  return k;
}

}  // namespace attnspec
