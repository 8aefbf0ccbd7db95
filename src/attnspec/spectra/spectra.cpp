#include "attnspec/spectra/spectra.h"

#include <lapacke.h>

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace attnspec {
namespace {

// Thin QR of a column-major m x c matrix in place; returns R (min(m, c) x c, column-major).
std::vector<double> r_factor(double* a, int m, int c) {
  const int r = std::min(m, c);
  std::vector<double> tau(std::max(r, 1));
  if (r > 0) {
    const int info = LAPACKE_dgeqrf(LAPACK_COL_MAJOR, m, c, a, m, tau.data());
    if (info != 0) throw std::runtime_error("dgeqrf failed with info " + std::to_string(info));
  }
  std::vector<double> R(size_t(r) * c, 0.0);
  for (int j = 0; j < c; ++j)
    for (int i = 0; i <= std::min(j, r - 1); ++i) R[size_t(j) * r + i] = a[size_t(j) * m + i];
  return R;
}

}  // namespace

std::vector<double> dense_singular_values(const double* a, int m, int c) {
  const int r = std::min(m, c);
  if (r == 0) return {};
  std::vector<double> work(a, a + size_t(m) * c), s(r);
  // jobz='N': values only (dqds), accurate to a small multiple of eps * sigma_1.
  const int info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', m, c, work.data(), m, s.data(), nullptr, 1, nullptr, 1);
  if (info != 0) throw std::runtime_error("dgesdd failed with info " + std::to_string(info));
  return s;
}

std::vector<double> product_singular_values(double* a1, int m, int c1, double* a2, int c2) {
  if (c1 != c2) throw std::invalid_argument("product_singular_values: factors must have equal column counts");
  const int r1 = std::min(m, c1), r2 = std::min(m, c2);
  const std::vector<double> R1 = r_factor(a1, m, c1), R2 = r_factor(a2, m, c2);
  if (r1 == 0 || r2 == 0) return {};
  // C = R1 R2^T  [r1 x r2]; A1 A2^T = U1 C U2^T with orthonormal U1, U2.
  std::vector<double> C(size_t(r1) * r2);
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, r1, r2, std::max(c1, 1), 1.0, R1.data(), r1, R2.data(), r2,
              0.0, C.data(), r1);
  return dense_singular_values(C.data(), r1, r2);
}

template <typename T>
std::vector<double> energy_field_singular_values(const T* q, long ldq, const T* k, long ldk, int n, int dh,
                                                 double scale) {
  // Column-major float64 copies: A1 = Q, A2 = Kc (keys minus their mean over the n positions, so
  // that every row of Q Kc^T sums to zero: the row-centring of E).
  std::vector<double> a1(size_t(n) * dh), a2(size_t(n) * dh);
  for (int j = 0; j < dh; ++j) {
    double mean = 0;
    for (int i = 0; i < n; ++i) mean += static_cast<double>(k[i * ldk + j]);
    mean /= n;
    for (int i = 0; i < n; ++i) {
      a1[size_t(j) * n + i] = static_cast<double>(q[i * ldq + j]);
      a2[size_t(j) * n + i] = static_cast<double>(k[i * ldk + j]) - mean;
    }
  }
  std::vector<double> s = product_singular_values(a1.data(), n, dh, a2.data(), dh);
  for (double& x : s) x *= std::abs(scale);
  return s;
}

template std::vector<double> energy_field_singular_values<float>(const float*, long, const float*, long, int, int, double);
template std::vector<double> energy_field_singular_values<double>(const double*, long, const double*, long, int, int,
                                                                  double);

std::vector<double> interaction_singular_values(const double* wq_t, const double* wk_t, int d, int dh) {
  std::vector<double> a1(wq_t, wq_t + size_t(d) * dh), a2(wk_t, wk_t + size_t(d) * dh);
  return product_singular_values(a1.data(), d, dh, a2.data(), dh);
}

}  // namespace attnspec
