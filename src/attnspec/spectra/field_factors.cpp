#include "attnspec/spectra/field_factors.h"

#include <lapacke.h>

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "attnspec/spectra/causal.h"
#include "attnspec/spectra/spectra.h"

namespace attnspec {
namespace {

void check(int info, const char* what) {
  if (info != 0) throw std::runtime_error(std::string(what) + " failed with info " + std::to_string(info));
}

// Thin QR of the column-major m x c matrix `a` (copied): returns U (m x r, orthonormal) and R
// (r x c, upper trapezoidal), r = min(m, c).
void thin_qr(const std::vector<double>& a, int m, int c, std::vector<double>& U, std::vector<double>& R) {
  const int r = std::min(m, c);
  std::vector<double> work(a), tau(std::max(r, 1));
  check(LAPACKE_dgeqrf(LAPACK_COL_MAJOR, m, c, work.data(), m, tau.data()), "dgeqrf");
  R.assign(size_t(r) * c, 0.0);
  for (int j = 0; j < c; ++j)
    for (int i = 0; i <= std::min(j, r - 1); ++i) R[size_t(j) * r + i] = work[size_t(j) * m + i];
  U.assign(work.begin(), work.begin() + size_t(m) * r);
  check(LAPACKE_dorgqr(LAPACK_COL_MAJOR, m, r, r, U.data(), m, tau.data()), "dorgqr");
}

// Thin SVD of the column-major m x c matrix `a` (copied): a = W diag(s) Zt, W m x p, Zt p x c.
void thin_svd(const std::vector<double>& a, int m, int c, std::vector<double>& W, std::vector<double>& s,
              std::vector<double>& Zt) {
  const int p = std::min(m, c);
  std::vector<double> work(a);
  W.assign(size_t(m) * p, 0.0);
  Zt.assign(size_t(p) * c, 0.0);
  s.assign(p, 0.0);
  if (p == 0) return;
  check(LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'S', m, c, work.data(), m, s.data(), W.data(), m, Zt.data(), p), "dgesdd");
}

}  // namespace

template <typename T>
FieldFactors field_factors(const T* q, long ldq, const T* k, long ldk, int n, int dh, double scale) {
  FieldFactors f;
  f.n = n;
  f.dh = dh;
  f.scale = scale;
  f.q.resize(size_t(n) * dh);
  f.kc.resize(size_t(n) * dh);
  for (int t = 0; t < dh; ++t) {
    double mean = 0;
    for (int i = 0; i < n; ++i) mean += static_cast<double>(k[i * ldk + t]);
    mean /= n;
    for (int i = 0; i < n; ++i) {
      f.q[size_t(t) * n + i] = static_cast<double>(q[i * ldq + t]);
      f.kc[size_t(t) * n + i] = static_cast<double>(k[i * ldk + t]) - mean;
    }
  }
  std::vector<double> U1, R1, U2, R2;
  thin_qr(f.q, n, dh, U1, R1);
  thin_qr(f.kc, n, dh, U2, R2);
  const int r1 = std::min(n, dh), r2 = r1;
  f.r = r1;

  // C = R1 R2^T = W Sigma Z^T; left = U1 W, right = U2 Z.
  std::vector<double> C(size_t(r1) * r2), W, Zt;
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, r1, r2, dh, 1.0, R1.data(), r1, R2.data(), r2, 0.0, C.data(), r1);
  thin_svd(C, r1, r2, W, f.sigma, Zt);
  f.left.assign(size_t(n) * f.r, 0.0);
  f.right.assign(size_t(n) * f.r, 0.0);
  const double sign = scale < 0 ? -1.0 : 1.0;
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n, f.r, r1, sign, U1.data(), n, W.data(), r1, 0.0,
              f.left.data(), n);
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, n, f.r, r2, 1.0, U2.data(), n, Zt.data(), f.r, 0.0,
              f.right.data(), n);
  for (double& s : f.sigma) s *= std::abs(scale);

  // Data side: singular values of Q and Kc are those of R1, R2. The leverage scores of range(Kc)
  // are the squared row norms of U2 W2[:, :rank], R2 = W2 S2 Z2^T (exactly U2's when full rank).
  f.q_sigma = dense_singular_values(R1.data(), r1, dh);
  std::vector<double> W2, Z2t;
  thin_svd(R2, r2, dh, W2, f.kc_sigma, Z2t);
  f.kc_rank = numerical_rank(f.kc_sigma, n);
  f.kc_leverage.assign(n, 0.0);
  if (f.kc_rank > 0) {
    std::vector<double> B(size_t(n) * f.kc_rank);
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n, f.kc_rank, r2, 1.0, U2.data(), n, W2.data(), r2, 0.0,
                B.data(), n);
    for (int t = 0; t < f.kc_rank; ++t)
      for (int i = 0; i < n; ++i) f.kc_leverage[i] += B[size_t(t) * n + i] * B[size_t(t) * n + i];
  }
  return f;
}

template FieldFactors field_factors<float>(const float*, long, const float*, long, int, int, double);
template FieldFactors field_factors<double>(const double*, long, const double*, long, int, int, double);

template <typename T>
std::vector<double> data_singular_values(const T* x, long ld, int n, int d, bool centre) {
  std::vector<double> a(size_t(n) * d);
  for (int t = 0; t < d; ++t) {
    double mean = 0;
    if (centre) {
      for (int i = 0; i < n; ++i) mean += static_cast<double>(x[i * ld + t]);
      mean /= n;
    }
    for (int i = 0; i < n; ++i) a[size_t(t) * n + i] = static_cast<double>(x[i * ld + t]) - mean;
  }
  return dense_singular_values(a.data(), n, d);
}

template std::vector<double> data_singular_values<float>(const float*, long, int, int, bool);
template std::vector<double> data_singular_values<double>(const double*, long, int, int, bool);

}  // namespace attnspec
